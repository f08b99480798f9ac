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

from stuckgen.db import Connection, scalar

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


def _present(conn: Connection, regclass: str) -> bool:
    return scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (regclass,))


def graphile_census(conn: Connection, *, threshold: float, examples: int = 3) -> QueueCensus | None:
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


def pgboss_census(conn: Connection, *, threshold: float, examples: int = 3) -> QueueCensus | None:
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


def queue_census(conn: Connection, *, threshold: float = 120.0) -> list[QueueCensus]:
    """Every job-queue library found in the database, with its jobs counted by their own rules."""
    return [c for c in (graphile_census(conn, threshold=threshold), pgboss_census(conn, threshold=threshold))
            if c is not None]


# -- graphile-worker remediation through its own admin functions ---------------------------------


@dataclass(frozen=True)
class Job:
    """One library job as stuckgen reports it."""

    library: str
    id: str
    task: str | None
    kind: str
    attempts: int | None
    max_attempts: int | None
    locked_by: str | None
    quiet_seconds: float | None
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"library": self.library, "id": self.id, "task": self.task, "kind": self.kind,
                "attempts": self.attempts, "max_attempts": self.max_attempts, "locked_by": self.locked_by,
                "quiet_seconds": None if self.quiet_seconds is None else round(self.quiet_seconds, 3),
                "last_error": self.last_error}


_GRAPHILE_JOBS = (
    "SELECT j.id::text, t.identifier, CASE "
    "WHEN j.attempts >= j.max_attempts THEN 'failed' "
    "WHEN j.locked_at IS NOT NULL AND j.locked_at < now() - make_interval(secs => %(exp)s) THEN 'lock-expired' "
    "WHEN j.locked_at IS NOT NULL THEN 'locked' "
    "WHEN j.run_at < now() - make_interval(secs => %(t)s) THEN 'queued-not-drained' ELSE 'waiting' END, "
    "j.attempts, j.max_attempts, j.locked_by, extract(epoch FROM now() - coalesce(j.locked_at, j.run_at))::float8, "
    "left(j.last_error, 300) FROM graphile_worker._private_jobs j "
    "LEFT JOIN graphile_worker._private_tasks t ON t.id = j.task_id ")


def graphile_jobs(conn: Connection, *, threshold: float, ids: list[str] | None = None,
                  kinds: tuple[str, ...] = tuple(sorted(STUCK_KINDS))) -> list[Job]:
    """graphile-worker's jobs of ``kinds`` (default: the stuck ones), or exactly ``ids``; quietest first."""
    where = "WHERE j.id = ANY(%(ids)s::bigint[])" if ids else ""
    rows = conn.execute(_GRAPHILE_JOBS + where + " ORDER BY 7 DESC NULLS LAST, j.id",
                        {"exp": GRAPHILE_LOCK_EXPIRY_SECONDS, "t": threshold, "ids": ids or []}).fetchall()
    jobs = [Job("graphile-worker", *r) for r in rows]
    return jobs if ids else [j for j in jobs if j.kind in kinds]


def pgboss_jobs(conn: Connection, *, threshold: float) -> list[Job]:
    rows = conn.execute(
        "SELECT id::text, name, CASE WHEN state = 'active' AND started_on + expire_in < now() THEN 'expired-active' "
        "ELSE 'queued-not-drained' END, retry_count, retry_limit, NULL::text, "
        "extract(epoch FROM now() - coalesce(started_on, start_after))::float8, NULL::text FROM pgboss.job "
        "WHERE (state = 'active' AND started_on + expire_in < now()) OR (state IN ('created', 'retry') "
        "AND start_after < now() - make_interval(secs => %(t)s)) ORDER BY 7 DESC, 1", {"t": threshold}).fetchall()
    return [Job("pg-boss", *r) for r in rows]


def stuck_jobs(conn: Connection, *, threshold: float) -> list[Job]:
    """Stuck jobs of every library found, by each library's rules."""
    out: list[Job] = []
    if _present(conn, "graphile_worker._private_jobs"):
        out += graphile_jobs(conn, threshold=threshold)
    if _present(conn, "pgboss.job"):
        out += pgboss_jobs(conn, threshold=threshold)
    return out


@dataclass(frozen=True)
class JobOutcome:
    id: str
    outcome: str  # would-retry, retried, would-fail, failed, skipped
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome, "reason": self.reason}


_SNAPSHOT = ("SELECT id::text, jsonb_build_object('locked_at', locked_at, 'locked_by', locked_by, 'attempts', attempts, "
             "'max_attempts', max_attempts, 'last_error', last_error) FROM graphile_worker._private_jobs "
             "WHERE id = ANY(%s::bigint[])")


def graphile_remediate(conn: Connection, jobs: list[Job], *, action: str, reason: str, dry_run: bool,
                       audit: Any = None, run_id: str = "", operator: str = "") -> list[JobOutcome]:
    """Retry or fail graphile-worker jobs with its own admin functions, in one transaction, audited.

    retry: ``force_unlock_workers`` for the workers holding lock-expired jobs (their worker is
    gone), so a live worker takes them again with their attempts counted; a job no worker holds
    needs a worker, not stuckgen. fail: ``permanently_fail_jobs``, which itself leaves alone a
    job locked by a worker within the last 4 hours.
    """
    from datetime import datetime, timezone

    from stuckgen.audit import AuditRecord

    outs: list[JobOutcome] = []
    if action == "retry":
        take = [j for j in jobs if j.kind == "lock-expired" and j.locked_by]
        for j in jobs:
            if j not in take:
                why = ("no worker is taking jobs: start one (graphile-worker runs it when a worker is up)"
                       if j.kind == "queued-not-drained" else f"{j.kind}: not held by a dead worker")
                outs.append(JobOutcome(j.id, "skipped", why))
    else:
        take = [j for j in jobs if j.kind in ("lock-expired", "queued-not-drained", "waiting", "locked")]
        outs += [JobOutcome(j.id, "skipped", f"{j.kind}: already ended") for j in jobs if j not in take]
    if dry_run or not take:
        verb = "would-retry" if action == "retry" else "would-fail"
        return [JobOutcome(j.id, verb, "dry run") for j in take] + outs if dry_run else outs
    ids = [j.id for j in take]
    before = dict(conn.execute(_SNAPSHOT, (ids,)).fetchall())
    if action == "retry":
        workers = sorted({j.locked_by for j in take if j.locked_by})
        conn.execute("SELECT graphile_worker.force_unlock_workers(%s::text[])", (workers,))
        changed = {r[0] for r in conn.execute(
            "SELECT id::text FROM graphile_worker._private_jobs WHERE id = ANY(%s::bigint[]) AND locked_at IS NULL",
            (ids,)).fetchall()}
        done = "retried"
    else:
        changed = {r[0] for r in conn.execute(
            "SELECT id::text FROM graphile_worker.permanently_fail_jobs(%s::bigint[], %s)", (ids, reason)).fetchall()}
        done = "failed"
    after = dict(conn.execute(_SNAPSHOT, (ids,)).fetchall())
    now = datetime.now(timezone.utc)
    records = []
    for j in take:
        if j.id in changed:
            outs.append(JobOutcome(j.id, done, reason if action == "fail" else f"worker {j.locked_by} unlocked"))
            records.append(AuditRecord(run_id=run_id, action=f"jobs-{action}", row_id=j.id,
                                       table="graphile_worker._private_jobs", at=now, operator=operator,
                                       outcome=done, previous=before.get(j.id), new=after.get(j.id),
                                       detail={"library": "graphile-worker", "kind": j.kind, "reason": reason}))
        else:
            outs.append(JobOutcome(j.id, "skipped", "changed meanwhile, or locked by a live worker"))
    if audit is not None and records:
        audit.append(conn, records)
    return outs
