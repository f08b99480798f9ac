"""Provably dead workers: a serverless worker cannot outlive its function's maximum duration.

On Vercel the process route's work is bounded by ``maxDuration`` (the incident app sets
300 s for ``app/api/generate/process/route.ts`` in its ``vercel.json``); past it the
instance is stopped mid-step. So a stalled row whose worker started more than
``max_duration`` + ``GRACE`` ago is not quiet: no worker can still be running it, and
a new trigger cannot duplicate a live run. When the worker started is read from the
row itself, on the database's clock: the processing lock (``processingStartedAt``,
written when the worker takes the row), else the first ``process:start`` in the step log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from stuckgen.durations import format_duration
from stuckgen.schema import SchemaMapping

GRACE = 60.0  # clock skew between the platform and the database, and the instance's own teardown
WORKER_START_STEPS = ("process:start",)


@dataclass(frozen=True, kw_only=True)
class DeadWorker:
    """A row whose worker started longer ago than the function may run."""

    id: str
    started_at: datetime
    age_seconds: float
    max_duration: float

    @property
    def evidence(self) -> str:
        return evidence(self.age_seconds, self.max_duration)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "worker_started_at": self.started_at.isoformat().replace("+00:00", "Z"),
                "worker_age_seconds": round(self.age_seconds, 3), "max_duration_seconds": self.max_duration}


def evidence(age_seconds: float, max_duration: float) -> str:
    """The words for a provably dead worker (the ``why`` of a ``timed-out`` row)."""
    return f"worker started {format_duration(age_seconds)} ago, function limit {max_duration:g} s: provably dead"


def evidence_sql(age_us: sql.Composable, max_duration: float) -> sql.Composable:
    """``evidence`` written by PostgreSQL, from the worker's age in microseconds (a bigint, > 0).

    ``format_duration`` rounds half to even (Python's ``round``) and this rounds half up: they
    differ only on an age of exactly N.5 s, which the caller renders in Python.
    """
    s = sql.SQL("(({} + 500000) / 1000000)").format(age_us)
    fmt = sql.SQL(
        "CASE WHEN {s} >= 3600 AND {s} % 3600 = 0 THEN "
        "CASE WHEN {s} % 86400 = 0 AND {s} >= 172800 THEN ({s} / 86400)::text || 'd' ELSE ({s} / 3600)::text || 'h' END "
        "WHEN {s} < 60 THEN {s}::text || 's' "
        "WHEN {s} < 3600 THEN ({s} / 60)::text || 'm' || lpad(({s} % 60)::text, 2, '0') || 's' "
        "WHEN {s} < 86400 THEN ({s} / 3600)::text || 'h' || lpad((({s} % 3600) / 60)::text, 2, '0') || 'm' "
        "ELSE ({s} / 86400)::text || 'd' || (({s} % 86400) / 3600)::text || 'h' END").format(s=s)
    return sql.SQL("({} || {} || {})").format(
        sql.Literal("worker started "), fmt, sql.Literal(f" ago, function limit {max_duration:g} s: provably dead"))


def past_limit_sql(m: SchemaMapping, *, max_duration: float, naive_tz: str = "UTC",
                   grace: float = GRACE) -> sql.Composable | None:
    """Over row ``g``: its worker started more than ``max_duration + grace`` ago (database clock).

    NULL when the row does not say when its worker started; None when the mapping cannot tell.
    """
    if not (m.has("processing_lock") or m.has("step_log")):
        return None
    return sql.SQL("({} < now() - make_interval(secs => {}))").format(
        worker_started_sql(m, naive_tz=naive_tz), sql.Literal(float(max_duration + grace)))


def worker_started_sql(m: SchemaMapping, *, naive_tz: str = "UTC") -> sql.Composable:
    """When the row's worker started: its processing lock, else its first process:start step."""
    parts: list[sql.Composable] = []
    if m.has("processing_lock"):
        parts.append(m.timestamp("processing_lock", naive_tz=naive_tz))
    if m.has("step_log"):
        from stuckgen.scan import step_log_array

        parts.append(sql.SQL(
            "(SELECT min(CASE WHEN e->>'at' ~ '^\\d{{4}}-' THEN (e->>'at')::timestamptz END) "
            "FROM jsonb_array_elements({a}) e WHERE jsonb_typeof(e) = 'object' AND e->>'step' = ANY({s}))").format(
            a=step_log_array(m), s=sql.Literal(list(WORKER_START_STEPS))))
    if not parts:
        return sql.SQL("NULL::timestamptz")
    return sql.SQL("coalesce({})").format(sql.SQL(", ").join(parts))


def dead_workers(conn: Any, mapping: SchemaMapping, ids: Sequence[str], *, max_duration: float,
                 naive_tz: str = "UTC", grace: float = GRACE) -> dict[str, DeadWorker]:
    """Of ``ids``, the rows whose worker started more than ``max_duration + grace`` ago (database clock)."""
    from stuckgen.remediate import coerce_id

    keys = []
    for i in ids:
        try:
            keys.append(coerce_id(mapping, i))
        except ValueError:
            continue
    if not keys:
        return {}
    q = sql.SQL("SELECT g.{idc}::text, {st}, now() FROM {t} g WHERE g.{idc} = ANY(%s)").format(
        idc=sql.Identifier(mapping["id"].column or "id"), st=worker_started_sql(mapping, naive_tz=naive_tz),
        t=mapping.qualified())
    out: dict[str, DeadWorker] = {}
    for rid, started, now in conn.execute(q, (keys,)).fetchall():
        if started is None:
            continue
        age = (now - started).total_seconds()
        if age > max_duration + grace:
            out[rid] = DeadWorker(id=rid, started_at=started, age_seconds=age, max_duration=max_duration)
    return out


def threshold_warning(threshold: float, max_duration: float | None) -> str | None:
    """A warning when the stuck threshold is shorter than the maximum duration: it would call live workers stuck."""
    if max_duration is None or threshold >= max_duration:
        return None
    return (f"the stuck threshold ({format_duration(threshold)}) is shorter than the function's maximum duration "
            f"({max_duration:g} s): a worker that is still running and quiet between heartbeats may be called stuck; "
            f"prefer --threshold {format_duration(max_duration + GRACE)} for rows with a running worker")
