"""Job-queue libraries read by their own rules: graphile-worker and pg-boss (read-only).

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

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
    "lock-expired": "locked longer than graphile-worker's 4-hour lock (the job, or its named queue): the worker "
                    "that took it is gone (a running worker would have unlocked it)",
    "locked": "locked by a worker less than 4 hours ago (running, or its worker died: graphile-worker cannot tell)",
    "queued-not-drained": "available and due for longer than the threshold: no worker is taking jobs",
    "waiting": "available, due within the threshold or later (run_at in the future: a retry or a scheduled job), "
               "or behind the job running in its named queue",
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


# graphile-worker's classes, one CASE for the census and the job list (j: _private_jobs, q: its named queue,
# if any). A job in a named queue runs only once the queue's lock is free: behind a job running in its queue
# it is waiting; behind a queue lock older than the 4-hour lock (a gone worker's) it is lock-expired too.
_GRAPHILE_KIND = (
    "CASE WHEN j.attempts >= j.max_attempts THEN 'failed' "
    "WHEN j.locked_at IS NOT NULL AND j.locked_at < now() - make_interval(secs => %(exp)s) THEN 'lock-expired' "
    "WHEN j.locked_at IS NOT NULL THEN 'locked' "
    "WHEN q.locked_at IS NOT NULL AND q.locked_at < now() - make_interval(secs => %(exp)s) "
    "AND j.run_at < now() - make_interval(secs => %(t)s) THEN 'lock-expired' "
    "WHEN q.locked_at IS NOT NULL THEN 'waiting' "
    "WHEN j.run_at < now() - make_interval(secs => %(t)s) THEN 'queued-not-drained' ELSE 'waiting' END")
_GRAPHILE_FROM = ("FROM graphile_worker._private_jobs j "
                  "LEFT JOIN graphile_worker._private_job_queues q ON q.id = j.job_queue_id ")


def graphile_census(conn: Connection, *, threshold: float, examples: int = 3) -> QueueCensus | None:
    if not _present(conn, "graphile_worker._private_jobs"):
        return None
    rows = conn.execute(
        "WITH j AS (SELECT j.id::text AS id, " + _GRAPHILE_KIND + " AS kind, coalesce(j.locked_at, j.run_at) AS t "
        + _GRAPHILE_FROM + ") "
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


# -- jobs, one by one ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One library job as stuckgen reports it; ``kind`` is its class by the library's rules."""

    library: str
    id: str
    task: str | None
    kind: str
    attempts: int | None
    max_attempts: int | None
    locked_by: str | None
    quiet_seconds: float | None
    last_error: str | None
    queue: str | None = None
    state: str | None = None  # pg-boss's state; graphile-worker: locked, available or failed
    created_at: datetime | None = None
    run_at: datetime | None = None  # graphile-worker run_at, pg-boss start_after
    locked_at: datetime | None = None  # graphile-worker locked_at, pg-boss started_on
    expire_in_seconds: float | None = None  # pg-boss expire_in

    @property
    def stuck(self) -> bool:
        return self.kind in STUCK_KINDS

    @property
    def table(self) -> str:
        return TABLES[self.library]

    def as_dict(self) -> dict[str, Any]:
        return {"library": self.library, "id": self.id, "task": self.task, "kind": self.kind,
                "attempts": self.attempts, "max_attempts": self.max_attempts, "locked_by": self.locked_by,
                "quiet_seconds": None if self.quiet_seconds is None else round(self.quiet_seconds, 3),
                "last_error": self.last_error}

    def row(self) -> dict[str, Any]:
        """The job as a scan row (``stuckgen.jobs-scan/v1``)."""
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t is not None else None

        return {"id": self.id, "library": self.library, "task": self.task, "queue": self.queue,
                "class": self.kind, "state": self.state,
                "quiet_seconds": None if self.quiet_seconds is None else round(self.quiet_seconds, 3),
                "attempts": self.attempts, "max_attempts": self.max_attempts, "locked_by": self.locked_by,
                "created_at": iso(self.created_at), "run_at": iso(self.run_at), "locked_at": iso(self.locked_at),
                "expire_in_seconds": self.expire_in_seconds, "last_error": self.last_error,
                "why": MEANING[self.library].get(self.kind, self.kind)}


TABLES = {"graphile-worker": "graphile_worker._private_jobs", "pg-boss": "pgboss.job"}
MEANING = {"graphile-worker": _GRAPHILE_MEANING, "pg-boss": _PGBOSS_MEANING}

# One statement per library: every job classified by the library's own rules, filtered by kind or id.
_GRAPHILE_JOBS = (
    "SELECT * FROM (SELECT j.id::text AS id, t.identifier, " + _GRAPHILE_KIND + " AS kind, "
    "j.attempts::int, j.max_attempts::int, coalesce(j.locked_by, q.locked_by), "
    "extract(epoch FROM now() - coalesce(j.locked_at, j.run_at))::float8 AS quiet, left(j.last_error, 300), "
    "q.queue_name, CASE WHEN j.attempts >= j.max_attempts THEN 'failed' WHEN j.locked_at IS NOT NULL THEN 'locked' "
    "WHEN q.locked_at IS NOT NULL THEN 'queue-locked' ELSE 'available' END, j.created_at, j.run_at, "
    "coalesce(j.locked_at, q.locked_at), NULL::float8 "
    + _GRAPHILE_FROM + "LEFT JOIN graphile_worker._private_tasks t ON t.id = j.task_id) jobs ")

_PGBOSS_JOBS = (
    "SELECT * FROM (SELECT id::text AS id, name, CASE "
    "WHEN state = 'active' AND started_on + expire_in < now() THEN 'expired-active' "
    "WHEN state = 'active' THEN 'active' "
    "WHEN state IN ('created', 'retry') AND start_after < now() - make_interval(secs => %(t)s) "
    "THEN 'queued-not-drained' WHEN state IN ('created', 'retry') THEN 'waiting' ELSE state::text END AS kind, "
    "retry_count, retry_limit, NULL::text, "
    "extract(epoch FROM now() - coalesce(started_on, start_after))::float8 AS quiet, "
    "CASE WHEN state IN ('retry', 'failed') THEN left(output::text, 300) END, name, state::text, created_on, "
    "start_after, started_on, extract(epoch FROM expire_in)::float8 FROM pgboss.job) jobs ")


def _select(conn: Connection, library: str, *, threshold: float, ids: Sequence[str] | None = None,
            kinds: Sequence[str] = (), limit: int | None = None) -> list[Job]:
    """Jobs of ``library`` with ``ids``, else of ``kinds``; quietest first."""
    if library == "graphile-worker":
        sql = _GRAPHILE_JOBS
        ids = [i for i in ids if i.strip().isdigit()] if ids is not None else None
    else:
        sql = _PGBOSS_JOBS
        ids = [i for i in ids if _is_uuid(i)] if ids is not None else None
    if ids is not None and not ids:
        return []
    where = "WHERE id = ANY(%(ids)s)" if ids is not None else "WHERE kind = ANY(%(kinds)s)"
    rows = conn.execute(sql + where + " ORDER BY quiet DESC NULLS LAST, id" + (" LIMIT %(n)s" if limit else ""),
                        {"exp": GRAPHILE_LOCK_EXPIRY_SECONDS, "t": threshold, "kinds": list(kinds),
                         "ids": [i.strip() for i in ids or ()], "n": limit}).fetchall()
    return [Job(library, *r) for r in rows]


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text.strip())
    except ValueError:
        return False
    return True


def graphile_jobs(conn: Connection, *, threshold: float, ids: list[str] | None = None,
                  kinds: tuple[str, ...] = tuple(sorted(STUCK_KINDS))) -> list[Job]:
    """graphile-worker's jobs of ``kinds`` (default: the stuck ones), or exactly ``ids``; quietest first."""
    return _select(conn, "graphile-worker", threshold=threshold, ids=ids or None, kinds=kinds)


def pgboss_jobs(conn: Connection, *, threshold: float) -> list[Job]:
    return _select(conn, "pg-boss", threshold=threshold, kinds=tuple(sorted(STUCK_KINDS)))


def stuck_jobs(conn: Connection, *, threshold: float) -> list[Job]:
    """Stuck jobs of every library found, by each library's rules."""
    out: list[Job] = []
    for library, table in TABLES.items():
        if _present(conn, table):
            out += _select(conn, library, threshold=threshold, kinds=tuple(sorted(STUCK_KINDS)))
    return out


# -- queue mode: scan, show, check and doctor read a library's jobs instead of an app table ------

# A --table naming a library's own job table means the library (graphile_worker.jobs is its public view).
_LIBRARY_TABLES = {"graphile_worker.jobs": "graphile-worker", "graphile_worker._private_jobs": "graphile-worker",
                   "pgboss.job": "pg-boss"}


def libraries_in_force(settings: Any) -> tuple[str, ...]:
    """The job-queue libraries configured instead of an app table: ``queue_library``, or a ``table``
    (with ``db_schema``) that names a library's own job table."""
    if settings.queue_library:
        return tuple(settings.queue_library)
    lib = library_of_table(str(settings.table), settings.db_schema)
    return (lib,) if lib else ()


def library_of_table(table: str, db_schema: str | None = None) -> str | None:
    """The job-queue library whose own job table ``table`` (in ``db_schema`` unless qualified) is, if any."""
    return _LIBRARY_TABLES.get(qualified_name(table, db_schema).lower())


def qualified_name(table: str, db_schema: str | None = None) -> str:
    """``schema.table`` when a schema is given and the name is not qualified already."""
    return table if "." in table or not db_schema else f"{db_schema}.{table}"


def require(conn: Connection, libraries: Sequence[str]) -> None:
    """SchemaError when a configured library's tables are not in the database."""
    from stuckgen.errors import SchemaError

    for lib in libraries:
        if not _present(conn, TABLES[lib]):
            raise SchemaError(f"queue_library {lib}: its job table {TABLES[lib]} is not in this database",
                              hint=f"{lib}'s own migrations create it (graphile-worker: `graphile-worker --schema-only`; "
                                   "pg-boss: boss.start()); or unset queue_library to read an app table")


# The way out of each stuck class, by the library's own means ({retry}/{fail}: stuckgen's command for it).
_FIX: dict[tuple[str, str], str] = {
    ("graphile-worker", "lock-expired"): (
        "its worker is gone: `{retry}` unlocks it with graphile_worker.force_unlock_workers so a live worker runs "
        "it again (a running worker also does this itself after 4 hours); `{fail}` ends it with "
        "graphile_worker.permanently_fail_jobs"),
    ("graphile-worker", "queued-not-drained"): (
        "no worker is taking jobs: start one (`graphile-worker` / run()) and check it connects to this database "
        "and knows the task; `{fail}` ends a job for good (graphile_worker.permanently_fail_jobs)"),
    ("pg-boss", "expired-active"): (
        "its consumer is gone: run a pg-boss instance with its supervisor on (supervise: true), whose maintenance "
        "turns expired jobs into a retry or a failure; or from code: boss.retry(name, id) / boss.fail(name, id, data)"),
    ("pg-boss", "queued-not-drained"): (
        "no consumer is fetching: start one (boss.work(name, handler)) against this database; "
        "from code: boss.cancel(name, id) to drop a job"),
}


def fix_for(library: str, kind: str, *, queue_mode: bool = True) -> str | None:
    """The way out of a stuck class; the stuckgen commands named are queue mode's, or `stuckgen jobs` beside an
    app table."""
    text = _FIX.get((library, kind))
    if text is None:
        return None
    if queue_mode:
        return text.format(retry="stuckgen retrigger --all-stuck --yes", fail="stuckgen fail ID --yes")
    return text.format(retry="stuckgen jobs --retry --all-stuck --yes", fail="stuckgen jobs --fail ID --yes")


@dataclass(frozen=True)
class JobScan:
    """Stuck jobs of the configured libraries: the ones listed (at most ``limit``) and every one counted."""

    libraries: tuple[str, ...]
    jobs: tuple[Job, ...]
    by_class: dict[str, int]
    census: tuple[QueueCensus, ...]
    threshold: float

    @property
    def stuck(self) -> int:
        return sum(self.by_class.values())

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(TABLES[lib] for lib in self.libraries)


def scan_jobs(conn: Connection, libraries: Sequence[str], *, threshold: float, classes: Sequence[str] = (),
              limit: int | None = None) -> JobScan:
    """The libraries' stuck jobs by their own rules, quietest first (all of them counted, ``limit`` listed)."""
    from stuckgen.errors import ConfigError

    unknown = [c for c in classes if c not in STUCK_KINDS]
    if unknown:
        raise ConfigError(f"--class: {', '.join(unknown)} is not a job class; job classes: {', '.join(sorted(STUCK_KINDS))}")
    require(conn, libraries)
    kinds = tuple(classes) or tuple(sorted(STUCK_KINDS))
    jobs: list[Job] = []
    for lib in libraries:
        jobs += _select(conn, lib, threshold=threshold, kinds=kinds, limit=limit)
    jobs.sort(key=lambda j: (-(j.quiet_seconds or 0.0), j.library, j.id))
    census = tuple(c for c in (graphile_census(conn, threshold=threshold) if "graphile-worker" in libraries else None,
                               pgboss_census(conn, threshold=threshold) if "pg-boss" in libraries else None)
                   if c is not None)
    by_class: dict[str, int] = {}
    for c in census:
        for k, n in c.counts.items():
            if k in kinds:
                by_class[k] = by_class.get(k, 0) + n
    return JobScan(libraries=tuple(libraries), jobs=tuple(jobs[:limit] if limit else jobs), by_class=by_class,
                   census=census, threshold=threshold)


@dataclass(frozen=True)
class JobStory:
    """One job by its library's rules: the job, the verdict and why, and the way out when it is stuck."""

    job: Job
    verdict: str
    why: str
    fix: str | None

    @property
    def stuck(self) -> bool:
        return self.job.stuck

    def as_dict(self) -> dict[str, Any]:
        return {"schema": "stuckgen.job/v1", "table": self.job.table, "job": self.job.row(), "stuck": self.stuck,
                "verdict": self.verdict, "why": self.why, "fix": self.fix}


def find_job(conn: Connection, libraries: Sequence[str], job_id: str, *, threshold: float) -> Job:
    """The job with this id in one of the libraries (graphile-worker ids are numbers, pg-boss's UUIDs)."""
    from stuckgen.errors import SelectionError

    require(conn, libraries)
    for lib in libraries:
        found = _select(conn, lib, threshold=threshold, ids=[job_id])
        if found:
            return found[0]
    shape = " and ".join(f"{lib} ids are {'whole numbers' if lib == 'graphile-worker' else 'UUIDs'}"
                         for lib in libraries)
    raise SelectionError(f"no job {job_id!r} in {', '.join(TABLES[lib] for lib in libraries)} ({shape}; "
                         "a finished graphile-worker job is deleted)")


def job_story(conn: Connection, libraries: Sequence[str], job_id: str, *, threshold: float) -> JobStory:
    """Why one job is or is not stuck, told by its library's rules."""
    from stuckgen.durations import format_duration as fd

    j = find_job(conn, libraries, job_id, threshold=threshold)
    quiet = fd(max(0.0, j.quiet_seconds or 0.0))
    if j.library == "graphile-worker":
        left = GRAPHILE_LOCK_EXPIRY_SECONDS - (j.quiet_seconds or 0.0)
        held = f"its queue {j.queue!r} is locked by {j.locked_by} since {_ago(j.locked_at)}" \
            if j.state == "queue-locked" else ""
        why = {
            "lock-expired": (f"{held}, longer than graphile-worker's 4-hour lock: the worker is gone, and the queue's "
                             "jobs wait for it" if held else
                             f"locked by {j.locked_by} {quiet} ago, longer than graphile-worker's 4-hour lock: the "
                             "worker that took it is gone (a running worker would have unlocked it)"),
            "locked": f"locked by {j.locked_by} {quiet} ago; graphile-worker has no heartbeat, so a live worker and "
                      f"a dead one look alike until its 4-hour lock passes (in {fd(max(0.0, left))})",
            "queued-not-drained": f"available and due since {quiet} ago, longer than the threshold "
                                  f"({fd(threshold)}): no worker is taking jobs",
            "waiting": (f"{held}: it runs after the job running in its queue" if held else
                        f"due in {fd(-(j.quiet_seconds or 0.0))} (run_at in the future: a retry's backoff or a "
                        "scheduled job)" if (j.quiet_seconds or 0.0) < 0
                        else f"due {quiet} ago, within the threshold ({fd(threshold)})"),
            "failed": f"attempts used up ({j.attempts}/{j.max_attempts}): failed for good"
                      + (f"; last_error: {j.last_error}" if j.last_error else ""),
        }[j.kind]
    else:
        exp = fd(j.expire_in_seconds or 0.0)
        why = {
            "expired-active": f"active since {quiet} ago, past its expire_in ({exp}): the consumer is gone, and only "
                              "pg-boss's supervisor turns an expired job into a retry or a failure",
            "active": f"active since {quiet} ago, within its expire_in ({exp})",
            "queued-not-drained": f"{j.state}, due since {quiet} ago, longer than the threshold ({fd(threshold)}): "
                                  "no consumer is fetching",
            "waiting": (f"{j.state}, due in {fd(-(j.quiet_seconds or 0.0))}" if (j.quiet_seconds or 0.0) < 0
                        else f"{j.state}, due {quiet} ago, within the threshold ({fd(threshold)})"),
        }.get(j.kind, f"{j.state}: ended" + (f"; output: {j.last_error}" if j.last_error else ""))
    verdict = f"stuck: {j.kind}" if j.stuck else f"not stuck: {j.kind}"
    return JobStory(job=j, verdict=verdict, why=why, fix=fix_for(j.library, j.kind))


def _ago(t: datetime | None) -> str:
    from datetime import timezone

    from stuckgen.durations import format_ago

    return format_ago(None if t is None else max(0.0, (datetime.now(timezone.utc) - t).total_seconds()),
                      unknown="an unknown time")


def job_findings_evidence(c: QueueCensus) -> list[tuple[str, str]]:
    """(kind, evidence line) for each stuck kind a census holds, with example ids and the library's rule."""
    return [(k, f"{c.counts[k]} {k} (e.g. {', '.join(c.examples.get(k, [])[:3])}): {c.meaning.get(k, k)}")
            for k in ("lock-expired", "expired-active", "queued-not-drained") if c.counts.get(k)]
