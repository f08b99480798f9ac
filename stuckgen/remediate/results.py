"""What a remediation run reports: one outcome per row, and the run around them.

The outcome vocabulary is closed (``Outcome``): renderers, the audit log and the
exit code all read it, so a new outcome is added here with its text.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from stuckgen.errors import ExitCode
from stuckgen.durations import iso_utc

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10
    class StrEnum(str, Enum):
        """``enum.StrEnum`` before Python 3.11: members are their values as strings."""

        def __str__(self) -> str:
            return str(self.value)

RESULT_SCHEMA = "stuckgen.remediation/v1"


class Outcome(StrEnum):
    """How a row ended. ``RowOutcome.ok`` says whether it counts as remediated."""

    FAILED = "failed"
    RESTORED = "restored"
    ACCEPTED = "accepted"
    WOULD_FAIL = "would-fail"
    WOULD_TRIGGER = "would-trigger"
    WOULD_RESTORE = "would-restore"
    NOT_FOUND = "not-found"
    NOT_STUCK = "not-stuck"
    SKIPPED_COMPLETED = "skipped-completed"
    SKIPPED_TOUCHED = "skipped-touched"
    SKIPPED_LOCKED = "skipped-locked"
    SKIPPED_MISSING = "skipped-missing"
    SKIPPED_CHANGED = "skipped-changed"
    ALREADY_UNDONE = "already-undone"
    EXHAUSTED = "exhausted"
    AUTH_REJECTED = "auth-rejected"
    REDIRECTED = "redirected"
    REJECTED = "rejected"
    GAVE_UP = "gave-up"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    NOT_SENT = "not-sent"
    NOT_ATTEMPTED = "not-attempted"
    LEFT_OUT = "left-out"


# What a run did, and what a dry run promises: ``remediated`` counts only the first.
DONE = frozenset({Outcome.FAILED, Outcome.RESTORED, Outcome.ACCEPTED})
WOULD = frozenset({Outcome.WOULD_FAIL, Outcome.WOULD_TRIGGER, Outcome.WOULD_RESTORE})

# What each outcome means, in the words the renderers use.
OUTCOME_TEXT: dict[Outcome, str] = {
    Outcome.FAILED: "set to the failed status",
    Outcome.RESTORED: "previous values restored",
    Outcome.ACCEPTED: "the process route accepted the trigger",
    Outcome.WOULD_FAIL: "dry run: would be set to the failed status",
    Outcome.WOULD_TRIGGER: "dry run: would be triggered",
    Outcome.WOULD_RESTORE: "dry run: would be restored",
    Outcome.NOT_FOUND: "no such row",
    Outcome.NOT_STUCK: "not stuck",
    Outcome.SKIPPED_COMPLETED: "left the in-flight statuses meanwhile",
    Outcome.SKIPPED_TOUCHED: "showed a sign of life meanwhile",
    Outcome.SKIPPED_LOCKED: "locked by another transaction; not waited for",
    Outcome.SKIPPED_MISSING: "deleted meanwhile",
    Outcome.SKIPPED_CHANGED: "changed since the run; not overwritten",
    Outcome.ALREADY_UNDONE: "an earlier undo already restored it",
    Outcome.EXHAUSTED: "attempt limit reached; leave it for `stuckgen fail`",
    Outcome.AUTH_REJECTED: "the deployment refused the credentials",
    Outcome.REDIRECTED: "the process route redirected; not followed",
    Outcome.REJECTED: "the process route refused the trigger",
    Outcome.GAVE_UP: "the deployment kept failing (429/5xx)",
    Outcome.TIMEOUT: "no answer in time (the app may have started it)",
    Outcome.UNREACHABLE: "could not reach the deployment",
    Outcome.LEFT_OUT: "not taken: a new trigger is not safe for its class (take it with --class)",
    Outcome.NOT_SENT: "not sent",
    Outcome.NOT_ATTEMPTED: "not attempted (interrupted)",
}



@dataclass(frozen=True, kw_only=True)
class RowOutcome:
    """What happened to one row."""

    id: str
    outcome: Outcome
    ok: bool
    reason: str = ""
    cls: str | None = None
    http_status: int | None = None
    attempt: int | None = None
    tries: int | None = None
    verify: str | None = None

    def __post_init__(self) -> None:
        # Callers may pass the plain string; an unknown one is a bug, not a new outcome.
        object.__setattr__(self, "outcome", Outcome(self.outcome))

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": str(self.outcome), "ok": self.ok, "reason": self.reason, "class": self.cls,
                "http_status": self.http_status, "attempt": self.attempt, "tries": self.tries, "verify": self.verify}


@dataclass(frozen=True, kw_only=True)
class RemediationResult:
    """A run of ``fail``, ``retrigger`` or ``undo`` (or its dry run)."""

    action: str
    run_id: str | None
    dry_run: bool
    table: str
    audit: str
    operator: str
    outcomes: tuple[RowOutcome, ...]
    started_at: datetime
    finished_at: datetime
    batches_done: int = 0
    batches_total: int = 0
    interrupted: bool = False
    stopped: str | None = None  # why the run stopped early (circuit breaker)
    stop_kind: str | None = None  # auth | redirect | platform | unreachable
    undo_of: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(str(o.outcome) for o in self.outcomes).most_common())

    @property
    def remediated(self) -> int:
        """Rows this run changed or triggered: never a dry run's promise, never an earlier run's work."""
        return sum(1 for o in self.outcomes if o.outcome in DONE)

    @property
    def would_remediate(self) -> int:
        """Rows a dry run would change or trigger."""
        return sum(1 for o in self.outcomes if o.outcome in WOULD)

    @property
    def exit_code(self) -> ExitCode:
        if self.stop_kind == "unreachable":
            return ExitCode.UNREACHABLE
        if self.stopped or self.interrupted or any(not o.ok for o in self.outcomes):
            return ExitCode.FINDINGS
        return ExitCode.OK

    def as_dict(self, *, rows: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": RESULT_SCHEMA, "action": self.action, "run_id": self.run_id, "dry_run": self.dry_run,
            "table": self.table, "audit": self.audit, "operator": self.operator,
            "started_at": iso_utc(self.started_at), "finished_at": iso_utc(self.finished_at),
            "selected": len(self.outcomes), "remediated": self.remediated,
            "would_remediate": self.would_remediate, "counts": self.counts,
            "batches": {"done": self.batches_done, "total": self.batches_total},
            "interrupted": self.interrupted, "stopped": self.stopped, "stop_kind": self.stop_kind,
            "undo_of": self.undo_of, "notes": list(self.notes),
        }
        if rows:
            d["rows"] = [o.as_dict() for o in self.outcomes]
        return d



def utcnow() -> datetime:
    return datetime.now(timezone.utc)
