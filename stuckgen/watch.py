"""What changed between refreshes of the stuck set: counts by class, rows that became stuck, rows that recovered.

``Watcher`` keeps ids only, never rows, and at most ``max_ids`` of each set
(current, became stuck, recovered); past that it stops tracking more and says
so (``capped``), so a long watch over a large incident has bounded memory.
It knows nothing about terminals or databases: the CLI feeds it each refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.rows import tuple_row

from stuckgen.durations import format_duration
from stuckgen.scan import Summary
from stuckgen.schema import SchemaMapping
from stuckgen.durations import iso_utc

if TYPE_CHECKING:
    from stuckgen.db import Connection

WATCH_SCHEMA = "stuckgen.watch/v1"
MAX_IDS = 10_000  # per tracked set; ~1 MB of uuids
IDS_IN_JSON = 50  # ids listed per set in each JSON line (counts are always complete)


@dataclass(frozen=True, kw_only=True)
class Recovered:
    """A row that left the stuck set, and its status when it was noticed (``None``: the row is gone)."""

    id: str
    status: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status}


@dataclass(frozen=True, kw_only=True)
class Refresh:
    """One refresh: the stuck set now, and how it moved since the previous refresh and since the start."""

    n: int
    at: datetime | None  # the database's clock
    started_at: datetime | None
    stuck: int
    by_class: Mapping[str, int]
    created_in_window: int | None
    stuck_rate: float | None
    oldest_quiet_seconds: float | None
    new_now: tuple[str, ...]  # became stuck since the previous refresh
    recovered_now: tuple[Recovered, ...]  # recovered since the previous refresh
    new_total: int  # became stuck since the start (and still or again stuck at some point)
    new_ids: tuple[str, ...]  # the most recent of those, newest last
    recovered_total: int
    recovered: tuple[Recovered, ...]  # the most recent recoveries, newest last
    tracked: int
    capped: bool
    probe: Mapping[str, Any] | None = None
    stuck_before_window: int = 0  # stuck rows created before the --since window (not in ``stuck``)
    before_window_ids: tuple[str, ...] = ()
    failed_at_trigger: Mapping[str, Any] | None = None  # TriggerFailures.as_dict(): the other evidence

    def as_dict(self, *, ids: int = IDS_IN_JSON) -> dict[str, Any]:
        def tail(items: Sequence[Any]) -> list[Any]:
            return list(items[-ids:]) if ids else []

        return {
            "schema": WATCH_SCHEMA,
            "refresh": self.n,
            "at": iso_utc(self.at),
            "started_at": iso_utc(self.started_at),
            "stuck": self.stuck,
            "stuck_before_window": self.stuck_before_window,
            "before_window_ids": list(self.before_window_ids),
            "by_class": dict(self.by_class),
            "created_in_window": self.created_in_window,
            "stuck_rate": None if self.stuck_rate is None else round(self.stuck_rate, 6),
            "oldest_quiet_seconds": None if self.oldest_quiet_seconds is None else round(self.oldest_quiet_seconds, 3),
            "this_refresh": {"became_stuck": tail(self.new_now),
                             "recovered": [r.as_dict() for r in tail(self.recovered_now)]},
            "since_start": {
                "became_stuck": {"count": self.new_total, "ids": tail(self.new_ids)},
                "recovered": {"count": self.recovered_total, "rows": [r.as_dict() for r in tail(self.recovered)]},
            },
            "tracked_ids": self.tracked,
            "capped": self.capped,
            "probe": dict(self.probe) if self.probe is not None else None,
            "failed_at_trigger": dict(self.failed_at_trigger) if self.failed_at_trigger is not None else None,
        }

    def summary_line(self) -> str:
        """The one line printed when the watch ends."""
        classes = ", ".join(f"{c} {n}" for c, n in self.by_class.items())
        rate = f" ({self.stuck_rate:.1%} of {self.created_in_window} created)" if self.stuck_rate is not None else ""
        older = f", and {self.stuck_before_window} created before the window" if self.stuck_before_window else ""
        tf = self.failed_at_trigger
        failed = (f"; {tf['recent']} failed at the trigger in the last {format_duration(tf['recent_window_seconds'])}"
                  if tf and tf.get("recent") else "")
        return (f"watch: {self.n} refreshes; {self.stuck} stuck now{rate}"
                + (f" [{classes}]" if classes else "") + older + failed
                + f"; since start {self.new_total} became stuck, {self.recovered_total} recovered"
                + ("; id tracking capped" if self.capped else ""))



@dataclass
class Watcher:
    """Diff the stuck id set between refreshes; the first refresh is the baseline.

    ``lookup_status(ids)`` tells what became of rows that left the stuck set
    (completed, failed, or still in flight with a fresh heartbeat); ids missing
    from its answer are reported with status ``None`` (deleted).
    """

    max_ids: int = MAX_IDS
    refreshes: int = 0
    started_at: datetime | None = None
    current: set[str] = field(default_factory=set)
    became: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    recovered: dict[str, Recovered] = field(default_factory=dict)
    new_total: int = 0
    recovered_total: int = 0
    capped: bool = False

    def refresh(self, ids: Iterable[str], summary: Summary, *,
                lookup_status: Callable[[Sequence[str]], Mapping[str, str]] | None = None,
                probe: Mapping[str, Any] | None = None) -> Refresh:
        """Take this refresh's stuck ids (streamed; consumed once) and the scan summary they came with."""
        now: set[str] = set()
        for i in ids:
            if len(now) >= self.max_ids:
                self.capped = True
                continue  # keep consuming so the caller's summary is complete
            now.add(i)
        # Past the cap the sets are partial: an id beyond it is neither new nor recovered.
        first = self.refreshes == 0
        self.refreshes += 1
        if first:
            self.started_at = summary.database_now
        appeared = [] if first else sorted(now - self.current)
        left = [] if first else sorted(self.current - now)
        if self.capped and not first and len(now) >= self.max_ids:
            left = []  # cannot tell "recovered" from "beyond the cap"
        statuses = dict(lookup_status(left)) if (lookup_status and left) else {}
        recovered_now = tuple(Recovered(id=i, status=statuses.get(i)) for i in left)

        for i in appeared:
            self.recovered.pop(i, None)  # stuck again
            if i not in self.became:
                self.new_total += 1
                self._bounded_add(self.became, i, None)
        for r in recovered_now:
            self.recovered_total += 1
            self._bounded_add(self.recovered, r.id, r)
        self.current = now
        oldest = summary.oldest.quiet_seconds if summary.oldest is not None else None
        return Refresh(
            n=self.refreshes, at=summary.database_now, started_at=self.started_at, stuck=summary.stuck,
            by_class=dict(summary.as_dict()["by_class"]), created_in_window=summary.created_in_window,
            stuck_rate=summary.stuck_rate, oldest_quiet_seconds=oldest,
            new_now=tuple(appeared), recovered_now=recovered_now,
            new_total=self.new_total, new_ids=tuple(self.became), recovered_total=self.recovered_total,
            recovered=tuple(self.recovered.values()), tracked=len(now), capped=self.capped, probe=probe,
            stuck_before_window=summary.stuck_before_window or 0,
            before_window_ids=tuple(r.id for r in summary.before_window.rows) if summary.before_window else (),
            failed_at_trigger=summary.trigger_failures.as_dict() if summary.trigger_failures is not None else None,
        )

    def _bounded_add(self, d: dict[str, Any], key: str, value: Any) -> None:
        d.pop(key, None)
        d[key] = value
        while len(d) > self.max_ids:
            self.capped = True
            d.pop(next(iter(d)))



def statuses_of(conn: Connection, mapping: SchemaMapping, ids: Sequence[str]) -> dict[str, str]:
    """Current status of the given rows (those that left the stuck set); a deleted row is absent."""
    if not ids:
        return {}
    # An untyped array literal takes the id column's type, so the primary key index serves it.
    target = mapping.text("id") if mapping["id"].path else mapping.raw("id")
    q = sql.SQL("SELECT {id}::text, {status}::text FROM {t} g WHERE {target} = ANY({ids})").format(
        id=mapping.raw("id"), status=mapping.raw("status"), t=mapping.qualified(), target=target,
        ids=sql.Literal(list(ids)))
    return {r[0]: r[1] for r in conn.cursor(row_factory=tuple_row).execute(q).fetchall()}
