"""What a scan yields: each ``StuckRow``, the ``Summary`` built while they stream past, the rows before the window."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from stuckgen.durations import iso_utc
from stuckgen.scan.rules import CLASSES
from stuckgen.trigger_failures import TriggerFailures


@dataclass(frozen=True, kw_only=True)
class StuckRow:
    """One stuck generation, its class and the evidence behind it."""

    id: str
    status: str
    cls: str
    why: str
    created_at: datetime | None
    last_sign_of_life: datetime | None
    quiet_seconds: float
    age_seconds: float | None
    heartbeat_at: datetime | None
    last_step: str | None
    trigger_status: int | None
    trigger_failures: int
    error: str | None
    outputs: int | None
    job_state: str | None
    user_id: str | None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "class": self.cls,
            "why": self.why,
            "created_at": iso_utc(self.created_at),
            "last_sign_of_life": iso_utc(self.last_sign_of_life),
            "quiet_seconds": round_ms(self.quiet_seconds),
            "age_seconds": None if self.age_seconds is None else round_ms(self.age_seconds),
            "heartbeat_at": iso_utc(self.heartbeat_at),
            "last_step": self.last_step,
            "trigger_status": self.trigger_status,
            "trigger_failures": self.trigger_failures,
            "error": self.error,
            "outputs": self.outputs,
            "job_state": self.job_state,
            "user_id": self.user_id,
            "notes": list(self.notes),
        }


def round_ms(seconds: float) -> float:
    """Seconds to the millisecond, half away from zero on the exact microsecond value.

    ``round(x, 3)`` rounds the binary float (12.3455 may go down); this is what PostgreSQL's
    numeric ``round`` does, so a row rendered by the server (scan_render) reads the same.
    """
    return float(Decimal(repr(seconds)).quantize(_MS, ROUND_HALF_UP))


_MS = Decimal("0.001")


@dataclass
class Summary:
    """Aggregates built while rows stream past: memory is O(classes + hours), not O(rows)."""

    database_now: datetime | None = None
    stuck: int = 0
    by_class: Counter = field(default_factory=Counter)
    trigger_statuses: Counter = field(default_factory=Counter)
    created_in_window: int | None = None
    stuck_before_window: int | None = None
    before_window: "BeforeWindow | None" = None
    oldest: StuckRow | None = None
    onset: datetime | None = None
    per_hour: Counter = field(default_factory=Counter)
    truncated: bool = False
    trigger_failures: TriggerFailures | None = None  # failed rows with a failed trigger (the other evidence)

    def add(self, row: StuckRow) -> None:
        self.stuck += 1
        self.by_class[row.cls] += 1
        if row.trigger_status is not None:
            self.trigger_statuses[row.trigger_status] += 1
        if self.oldest is None or row.quiet_seconds > self.oldest.quiet_seconds:
            self.oldest = row
        t = row.created_at or row.last_sign_of_life
        if t is not None:
            if self.onset is None or t < self.onset:
                self.onset = t
            self.per_hour[t.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)] += 1

    @property
    def failed_trigger_statuses(self) -> dict[Any, int]:
        """Rows that ended failed at the trigger in the window, by HTTP status (or cause without one)."""
        out: dict[Any, int] = {}
        for g in self.trigger_failures.groups if self.trigger_failures is not None else ():
            key = g.http_status if g.http_status is not None else g.cause
            out[key] = out.get(key, 0) + g.count
        return out

    @property
    def stuck_rate(self) -> float | None:
        if not self.created_in_window:
            return None
        return self.stuck / self.created_in_window

    def as_dict(self) -> dict[str, Any]:
        return {
            "stuck": self.stuck,
            "by_class": {c: self.by_class.get(c, 0) for c in _class_order(self.by_class)},
            "trigger_statuses": {str(k): v for k, v in sorted(self.trigger_statuses.items())},
            "created_in_window": None if self.created_in_window is None else int(self.created_in_window),
            "created_in_window_estimated": isinstance(self.created_in_window, Estimate),
            "stuck_rate": None if self.stuck_rate is None else round(self.stuck_rate, 6),
            "stuck_before_window": self.stuck_before_window,
            "before_window": None if self.before_window is None else self.before_window.as_dict(),
            "oldest": None if self.oldest is None else {
                "id": self.oldest.id, "created_at": iso_utc(self.oldest.created_at),
                "quiet_seconds": round_ms(self.oldest.quiet_seconds)},
            "onset": iso_utc(self.onset),
            "per_hour": [{"hour": iso_utc(h), "stuck": n} for h, n in sorted(self.per_hour.items())],
            "truncated": self.truncated,
            "database_now": iso_utc(self.database_now),
            "failed_at_trigger": None if self.trigger_failures is None else self.trigger_failures.as_dict(),
        }


def _class_order(counter: Mapping[str, int]) -> list[str]:
    known = [c for c in CLASSES if counter.get(c)]
    return known + sorted(c for c in counter if c not in CLASSES)


@dataclass(frozen=True, kw_only=True)
class BeforeWindowRow:
    id: str
    cls: str
    created_at: datetime | None
    quiet_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "class": self.cls, "created_at": iso_utc(self.created_at),
                "quiet_seconds": round_ms(self.quiet_seconds)}


@dataclass(frozen=True, kw_only=True)
class BeforeWindow:
    """Stuck rows created before the --since window: counted by class, the quietest named."""

    stuck: int
    by_class: Mapping[str, int]
    rows: tuple[BeforeWindowRow, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"stuck": self.stuck, "by_class": {c: self.by_class[c] for c in _class_order(self.by_class)},
                "rows": [r.as_dict() for r in self.rows], "listed": len(self.rows)}


class Estimate(int):
    """A count estimated from a sample of the table (shown as ``~N``); otherwise an int."""
