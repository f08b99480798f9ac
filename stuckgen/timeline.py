"""The incident as a story in time: generations created, completed, failed at the trigger and stuck per interval.

Rows are placed by their creation time (the app keeps no completion time). The
interval is chosen from the span of the window so that a chart has at most
about ``MAX_BUCKETS`` bars, always a whole number of minutes aligned on the
epoch: doctor counts stuck rows per minute while they stream past, and those
minutes nest exactly in any bucket. Deploys and environment-variable changes
from Vercel become markers on the same axis; the onset is the creation time of
the first stuck row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from psycopg import sql

if TYPE_CHECKING:
    from stuckgen.db import Connection

MAX_BUCKETS = 48
STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
# A failed row whose step log or error says the trigger failed: the app gave up after its 3 tries.
TRIGGER_FAILED_STEP = "process:trigger-failed"
TRIGGER_FAILED_ERROR = "Failed to trigger processing%"


@dataclass(frozen=True, kw_only=True)
class Bucket:
    start: datetime
    created: int = 0
    completed: int = 0
    failed: int = 0  # all failed rows, those failed at the trigger included
    failed_at_trigger: int = 0
    stuck: int = 0

    @property
    def other(self) -> int:
        """Created rows neither completed, failed nor stuck: still running, cancelled, queued in time."""
        return max(0, self.created - self.completed - self.failed - self.stuck)


@dataclass(frozen=True, kw_only=True)
class Marker:
    """Something that happened at a time: a deploy, an environment-variable change."""

    at: datetime
    kind: str  # deploy | env
    label: str


@dataclass(frozen=True, kw_only=True)
class Timeline:
    bucket_seconds: int
    buckets: tuple[Bucket, ...]
    onset: datetime | None = None
    markers: tuple[Marker, ...] = ()

    @property
    def start(self) -> datetime | None:
        return self.buckets[0].start if self.buckets else None

    @property
    def end(self) -> datetime | None:
        return self.buckets[-1].start + timedelta(seconds=self.bucket_seconds) if self.buckets else None


def choose_bucket(span_seconds: float, *, max_buckets: int = MAX_BUCKETS) -> int:
    """The smallest step that shows ``span_seconds`` in at most ``max_buckets`` bars."""
    for step in STEPS:
        if span_seconds / step <= max_buckets:
            return step
    return STEPS[-1] * max(1, int(span_seconds // (STEPS[-1] * max_buckets)) + 1)


def _floor(t: datetime, seconds: int) -> datetime:
    epoch = int(t.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=timezone.utc)


def minute(t: datetime) -> datetime:
    """The minute a time falls in (UTC): the unit doctor counts stuck rows by."""
    return _floor(t, 60)


def query(conn: Connection, mapping: Any, *, since: float | None, naive_tz: str = "UTC", completed_status: str = "completed",
          failed_status: str = "failed") -> tuple[int, list[tuple[datetime, int, int, int, int]]]:
    """(bucket seconds, [(bucket start, created, completed, failed, failed at the trigger)]) from the table.

    Two reads inside the caller's (read-only) transaction: the span, then one
    grouped pass. Without a created time there is no timeline: (60, []).
    """
    from psycopg.rows import tuple_row

    if not mapping.has("created"):
        return 60, []
    created = mapping.timestamp("created", naive_tz=naive_tz)
    window = (sql.SQL("{c} >= now() - make_interval(secs => {s})").format(c=created, s=sql.Literal(since))
              if since is not None else sql.SQL("{c} IS NOT NULL").format(c=created))
    cur = conn.cursor(row_factory=tuple_row)
    row = cur.execute(sql.SQL("SELECT min({c}), now() FROM {t} g WHERE {w}").format(
        c=created, t=mapping.qualified(), w=window)).fetchone()
    first, now = row if row is not None else (None, None)  # an aggregate returns its row
    if first is None:
        return 60, []
    step = choose_bucket(max(60.0, (now - first).total_seconds()))
    status = mapping.text("status")
    at_trigger: list[sql.Composable] = []
    if mapping.has("step_log"):
        at_trigger.append(sql.SQL("{} LIKE {}").format(mapping.text("step_log"), sql.Literal(f"%{TRIGGER_FAILED_STEP}%")))
    if mapping.has("last_step"):
        at_trigger.append(sql.SQL("{} LIKE {}").format(mapping.text("last_step"), sql.Literal(f"{TRIGGER_FAILED_STEP}%")))
    if mapping.has("error"):
        at_trigger.append(sql.SQL("{} ILIKE {}").format(mapping.text("error"), sql.Literal(TRIGGER_FAILED_ERROR)))
    trig = sql.SQL(" OR ").join(at_trigger) if at_trigger else sql.SQL("false")
    q = sql.SQL(
        "SELECT to_timestamp(floor(extract(epoch FROM {c}) / {n}) * {n}) AS b, count(*),"
        " count(*) FILTER (WHERE {st} = {done}), count(*) FILTER (WHERE {st} = {failed}),"
        " count(*) FILTER (WHERE {st} = {failed} AND ({trig}))"
        " FROM {t} g WHERE {w} GROUP BY 1 ORDER BY 1"
    ).format(c=created, n=sql.Literal(step), st=status, done=sql.Literal(completed_status),
             failed=sql.Literal(failed_status), trig=trig, t=mapping.qualified(), w=window)
    rows = [(b.astimezone(timezone.utc), int(a), int(c), int(f), int(ft)) for b, a, c, f, ft in cur.execute(q)]
    return step, rows


def build(step: int, rows: Sequence[tuple[datetime, int, int, int, int]], stuck_by_minute: Counter, *,
          onset: datetime | None = None, markers: Iterable[Marker] = ()) -> Timeline:
    """Buckets from the grouped rows and the stuck rows counted per minute; empty buckets filled in."""
    stuck: Counter = Counter()
    for m, n in stuck_by_minute.items():
        stuck[_floor(m, step)] += n
    by_start = {b: (a, c, f, ft) for b, a, c, f, ft in rows}
    starts = sorted(set(by_start) | set(stuck))
    if not starts:
        return Timeline(bucket_seconds=step, buckets=(), onset=onset, markers=tuple(markers))
    buckets = []
    t, end = starts[0], starts[-1]
    while t <= end:
        a, c, f, ft = by_start.get(t, (0, 0, 0, 0))
        buckets.append(Bucket(start=t, created=max(a, stuck.get(t, 0)), completed=c, failed=f, failed_at_trigger=ft,
                              stuck=stuck.get(t, 0)))
        t += timedelta(seconds=step)
    return with_markers(Timeline(bucket_seconds=step, buckets=tuple(buckets), onset=onset), markers)


def with_markers(tl: Timeline, markers: Iterable[Marker]) -> Timeline:
    """``tl`` with the markers that fall on its axis, in time order (the others would be drawn off the chart)."""
    import dataclasses

    lo, hi = tl.start, tl.end
    if not tl.buckets or lo is None or hi is None:
        return dataclasses.replace(tl, markers=tuple(markers))
    inside = tuple(sorted((m for m in markers if lo <= m.at <= hi), key=lambda m: m.at))
    return dataclasses.replace(tl, markers=inside)


def vercel_markers(envs: Iterable[Any], deployments: Iterable[Any], *, keys: Iterable[str] | None = None) -> list[Marker]:
    """Deploys (creation) and variable changes (update, else creation) as markers; values never appear."""
    wanted = set(keys) if keys is not None else None
    out: list[Marker] = []
    for d in deployments:
        if d.created_at is not None:
            where = d.environment or d.target or "preview"
            out.append(Marker(at=d.created_at.astimezone(timezone.utc), kind="deploy",
                              label=f"deploy {where}" + (f" {d.commit_sha[:7]}" if getattr(d, "commit_sha", None) else "")))
    for e in envs:
        if wanted is not None and e.key not in wanted:
            continue
        at = e.updated_at or e.created_at
        if at is not None:
            targets = ",".join(e.targets) if e.targets else "all"
            out.append(Marker(at=at.astimezone(timezone.utc), kind="env", label=f"{e.key} changed ({targets})"))
    return out
