"""Job-queue libraries that keep job state in their own tables: graphile-worker and pg-boss.

Read-only, with each library's own rules (from their source):

* graphile-worker (schema ``graphile_worker``, table ``_private_jobs``): a job is taken
  by setting ``locked_at``/``locked_by``; there is no heartbeat, and a running worker
  unlocks jobs locked longer than 4 hours (``resetLockedAt``: ``locked_at < now() -
  interval '4 hours'``). A job with ``attempts >= max_attempts`` has failed for good and
  stays in the table with ``last_error``; finished jobs are deleted.
* pg-boss (schema ``pgboss``, table ``job``): states created, retry, active, completed,
  cancelled, failed; an ``active`` job whose ``started_on + expire_in`` has passed is
  expired, which only pg-boss's supervisor (maintenance) turns into a retry or a failure.

``queue_census`` counts jobs by what they mean for an on-call engineer; ``stuckgen init``
writes it into the generated configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GRAPHILE_LOCK_EXPIRY_SECONDS = 4 * 3600.0  # graphile-worker's resetLockedAt


@dataclass(frozen=True)
class QueueCensus:
    """One library's jobs, counted by what they mean; a few ids of each kind."""

    library: str
    table: str
    counts: dict[str, int]
    examples: dict[str, list[str]] = field(default_factory=dict)
    meaning: dict[str, str] = field(default_factory=dict)

    @property
    def stuck(self) -> int:
        return sum(n for k, n in self.counts.items() if k in STUCK_KINDS)

    def as_dict(self) -> dict[str, Any]:
        return {"library": self.library, "table": self.table, "counts": dict(self.counts),
                "examples": {k: list(v) for k, v in self.examples.items()}, "stuck": self.stuck}


STUCK_KINDS = frozenset({"lock-expired", "queued-not-drained", "expired-active"})

_GRAPHILE_MEANING = {
    "lock-expired": "locked longer than graphile-worker's 4-hour lock: the worker that took it is gone "
                    "(a running worker would have unlocked it)",
    "locked": "locked by a worker less than 4 hours ago (running, or its worker died: graphile-worker cannot tell)",
    "queued-not-drained": "available and due for longer than the threshold: no worker is taking jobs",
    "waiting": "available, due within the threshold or later (run_at in the future: a retry or a scheduled job)",
    "failed": "attempts used up (attempts >= max_attempts): failed for good, last_error says why",
}
_PGBOSS_MEANING = {
    "expired-active": "active past started_on + expire_in: the consumer is gone and no supervisor expired it",
    "active": "active within its expire_in",
    "queued-not-drained": "created/retry and due for longer than the threshold: no consumer is fetching",
    "waiting": "created/retry, due within the threshold or later",
    "completed": "completed", "cancelled": "cancelled", "failed": "failed (retries used up)",
}


def _present(conn: Any, regclass: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (regclass,)).fetchone()[0]


def graphile_census(conn: Any, *, threshold: float, examples: int = 3) -> QueueCensus | None:
    if not _present(conn, "graphile_worker._private_jobs"):
        return None
    rows = conn.execute(
        "WITH j AS (SELECT id::text AS id, CASE "
        "WHEN attempts >= max_attempts THEN 'failed' "
        "WHEN locked_at IS NOT NULL AND locked_at < now() - make_interval(secs => %(exp)s) THEN 'lock-expired' "
        "WHEN locked_at IS NOT NULL THEN 'locked' "
        "WHEN run_at < now() - make_interval(secs => %(t)s) THEN 'queued-not-drained' "
        "ELSE 'waiting' END AS kind, coalesce(locked_at, run_at) AS t FROM graphile_worker._private_jobs) "
        "SELECT kind, count(*), (array_agg(id ORDER BY t, id))[1:%(n)s] FROM j GROUP BY kind ORDER BY kind",
        {"exp": GRAPHILE_LOCK_EXPIRY_SECONDS, "t": threshold, "n": examples}).fetchall()
    return QueueCensus(library="graphile-worker", table="graphile_worker._private_jobs",
                       counts={r[0]: int(r[1]) for r in rows}, examples={r[0]: list(r[2]) for r in rows},
                       meaning=_GRAPHILE_MEANING)


def pgboss_census(conn: Any, *, threshold: float, examples: int = 3) -> QueueCensus | None:
    if not _present(conn, "pgboss.job"):
        return None
    rows = conn.execute(
        "WITH j AS (SELECT id::text AS id, CASE "
        "WHEN state = 'active' AND started_on + expire_in < now() THEN 'expired-active' "
        "WHEN state = 'active' THEN 'active' "
        "WHEN state IN ('created', 'retry') AND start_after < now() - make_interval(secs => %(t)s) "
        "THEN 'queued-not-drained' "
        "WHEN state IN ('created', 'retry') THEN 'waiting' ELSE state::text END AS kind, "
        "coalesce(started_on, start_after) AS t FROM pgboss.job) "
        "SELECT kind, count(*), (array_agg(id ORDER BY t, id))[1:%(n)s] FROM j GROUP BY kind ORDER BY kind",
        {"t": threshold, "n": examples}).fetchall()
    return QueueCensus(library="pg-boss", table="pgboss.job", counts={r[0]: int(r[1]) for r in rows},
                       examples={r[0]: list(r[2]) for r in rows}, meaning=_PGBOSS_MEANING)


def queue_census(conn: Any, *, threshold: float = 120.0) -> list[QueueCensus]:
    """Every job-queue library found in the database, with its jobs counted by their own rules."""
    return [c for c in (graphile_census(conn, threshold=threshold), pgboss_census(conn, threshold=threshold))
            if c is not None]
