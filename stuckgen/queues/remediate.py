"""Retry or fail job-queue library jobs through the library's own admin functions, audited.

graphile-worker: its SQL admin functions are its documented way to act on jobs from outside a
worker (``force_unlock_workers``, ``permanently_fail_jobs``, ``reschedule_jobs``); each of them
leaves alone a job locked within the last 4 hours. pg-boss acts on its jobs only through its
Node API (``boss.retry``, ``boss.fail``) and documents no SQL for it: stuckgen refuses to write
its jobs (``PGBOSS_REFUSAL``).

The jobs are re-read and locked (``FOR UPDATE``, which graphile-worker's own job fetch skips)
in the writing transaction and planned again: a job a worker finished, took or that changed
class meanwhile is skipped, never acted on from a stale read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from stuckgen.db import Connection
from stuckgen.durations import format_duration
from stuckgen.queues.read import GRAPHILE_LOCK_EXPIRY_SECONDS, Job, _select, find_job, require, scan_jobs

PGBOSS_REFUSAL = (
    "pg-boss jobs are retried and failed by pg-boss itself, through its Node API; pg-boss documents no SQL for "
    "it, and a raw UPDATE of pgboss.job would bypass its state rules (retry counts and backoff, expiry, "
    "dead letters). From the app's code: boss.retry(name, id) or boss.fail(name, id, data); or run a pg-boss "
    "instance with its supervisor on (supervise: true), which expires active jobs past expire_in itself")


@dataclass(frozen=True)
class JobOutcome:
    id: str
    outcome: str  # would-retry, retried, would-fail, failed, skipped
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome, "reason": self.reason}


@dataclass(frozen=True)
class JobRemediation:
    """What ``fail``/``retrigger`` did (or, in a dry run, would do) to library jobs."""

    action: str  # retry | fail
    dry_run: bool
    run_id: str | None
    outcomes: tuple[JobOutcome, ...]

    @property
    def skipped(self) -> int:
        return sum(1 for o in self.outcomes if o.outcome == "skipped")

    def as_dict(self) -> dict[str, Any]:
        return {"schema": "stuckgen.jobs/v1", "action": self.action, "dry_run": self.dry_run, "run_id": self.run_id,
                "outcomes": [o.as_dict() for o in self.outcomes]}


def select_jobs(conn: Connection, libraries: Sequence[str], *, threshold: float, ids: Sequence[str] = (),
                all_stuck: bool = False, classes: Sequence[str] = (), older_than: float | None = None) -> list[Job]:
    """The jobs named by id (any class), or every stuck one of ``classes``; quiet at least ``older_than``."""
    from stuckgen.errors import ConfigError

    require(conn, libraries)
    if ids:
        jobs = [find_job(conn, libraries, i, threshold=threshold) for i in dict.fromkeys(ids)]
    elif all_stuck:
        jobs = list(scan_jobs(conn, libraries, threshold=threshold, classes=classes).jobs)
    else:
        raise ConfigError("name job ids, or pass --all-stuck")
    if older_than is not None:
        jobs = [j for j in jobs if (j.quiet_seconds or 0.0) >= older_than]
    return jobs


def plan(jobs: Sequence[Job], action: str) -> tuple[list[Job], list[JobOutcome]]:
    """The jobs ``action`` may act on by the library's rules, and why each other one is skipped."""
    take: list[Job] = []
    skipped: list[JobOutcome] = []
    for j in jobs:
        why = _skip_reason(j, action)
        if why is None:
            take.append(j)
        else:
            skipped.append(JobOutcome(j.id, "skipped", why))
    return take, skipped


def _skip_reason(j: Job, action: str) -> str | None:
    if j.library == "pg-boss":
        return PGBOSS_REFUSAL
    live = (f"locked by {j.locked_by} {format_duration(max(0.0, j.quiet_seconds or 0.0))} ago, within graphile-worker's "
            "4-hour lock: its worker may be running it")
    if action == "retry":
        return {
            "lock-expired": None if j.locked_by else "lock-expired without a worker id",
            "failed": None,  # attempts used up: reschedule_jobs gives it its attempts again
            "queued-not-drained": "no worker is taking jobs: start one (graphile-worker runs a due job as soon as a "
                                  "worker is up; nothing to unlock)",
            "locked": live,
            "waiting": "waiting for its run_at or a worker's next poll: nothing to retry",
        }.get(j.kind, f"{j.kind}: nothing to retry")
    return {"lock-expired": None, "queued-not-drained": None, "waiting": None, "locked": live,
            "failed": "already failed for good (attempts used up)"}.get(j.kind, f"{j.kind}: cannot fail")


_SNAPSHOT = ("SELECT id::text, jsonb_build_object('locked_at', locked_at, 'locked_by', locked_by, 'attempts', attempts, "
             "'max_attempts', max_attempts, 'run_at', run_at, 'last_error', last_error) "
             "FROM graphile_worker._private_jobs WHERE id = ANY(%s::bigint[])")


def act(conn: Connection, jobs: Sequence[Job], *, action: str, reason: str | None, threshold: float,
        run_id: str = "", operator: str = "") -> tuple[list[JobOutcome], list[Any]]:
    """Act on graphile-worker ``jobs`` inside the caller's write transaction: (outcomes, audit records).

    retry: a lock-expired job is unlocked with ``force_unlock_workers`` for its worker (gone: a
    worker that still holds a job locked within 4 hours is left alone), so a live worker runs it
    again with the attempt it used counted; a failed job gets its attempts back with
    ``reschedule_jobs(run_at => now(), attempts => 0)``. fail: ``permanently_fail_jobs`` with the
    reason (default: ``failed by stuckgen: <class>``).
    """
    from stuckgen.audit import AuditRecord

    ids = [j.id for j in jobs if j.library == "graphile-worker"]
    if not ids:
        return [], []
    conn.execute("SELECT id FROM graphile_worker._private_jobs WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
                 (ids,))
    fresh = {j.id: j for j in _select(conn, "graphile-worker", threshold=threshold, ids=ids)}
    outs: list[JobOutcome] = [JobOutcome(i, "skipped", "finished meanwhile (graphile-worker deletes finished jobs)")
                              for i in ids if i not in fresh]
    take, skipped = plan([fresh[i] for i in ids if i in fresh], action)
    outs += skipped
    if action == "retry":
        workers = sorted({j.locked_by for j in take if j.kind == "lock-expired" and j.locked_by})
        alive = {r[0] for r in conn.execute(
            "SELECT locked_by FROM graphile_worker._private_jobs WHERE locked_by = ANY(%(w)s) "
            "AND locked_at >= now() - make_interval(secs => %(exp)s) UNION "
            "SELECT locked_by FROM graphile_worker._private_job_queues WHERE locked_by = ANY(%(w)s) "
            "AND locked_at >= now() - make_interval(secs => %(exp)s)",
            {"w": workers, "exp": GRAPHILE_LOCK_EXPIRY_SECONDS}).fetchall()}
        for j in [j for j in take if j.locked_by in alive and j.kind == "lock-expired"]:
            take.remove(j)
            outs.append(JobOutcome(j.id, "skipped", f"worker {j.locked_by} holds another job locked within 4 hours: "
                                                    "it may be alive"))
    taken = [j.id for j in take]
    before = dict(conn.execute(_SNAPSHOT, (taken,)).fetchall()) if taken else {}
    changed: dict[str, str] = {}
    if action == "retry":
        gone = sorted({j.locked_by for j in take if j.kind == "lock-expired" and j.locked_by})
        if gone:
            conn.execute("SELECT graphile_worker.force_unlock_workers(%s::text[])", (gone,))
            for r in conn.execute("SELECT j.id::text FROM graphile_worker._private_jobs j "
                                  "LEFT JOIN graphile_worker._private_job_queues q ON q.id = j.job_queue_id "
                                  "WHERE j.id = ANY(%s::bigint[]) AND j.locked_at IS NULL AND q.locked_at IS NULL",
                                  ([j.id for j in take if j.kind == "lock-expired"],)).fetchall():
                changed[r[0]] = "unlocked with graphile_worker.force_unlock_workers: a live worker runs it again"
        failed = [j.id for j in take if j.kind == "failed"]
        if failed:
            for r in conn.execute("SELECT id::text FROM graphile_worker.reschedule_jobs(%s::bigint[], run_at => now(), "
                                  "attempts => 0)", (failed,)).fetchall():
                changed[r[0]] = "rescheduled now with its attempts back (graphile_worker.reschedule_jobs)"
        done = "retried"
    else:
        by_message: dict[str, list[str]] = {}
        for j in take:
            by_message.setdefault(reason or f"failed by stuckgen: {j.kind}", []).append(j.id)
        for message, group in by_message.items():
            for r in conn.execute("SELECT id::text FROM graphile_worker.permanently_fail_jobs(%s::bigint[], %s)",
                                  (group, message)).fetchall():
                changed[r[0]] = f"graphile_worker.permanently_fail_jobs: {message}"
        done = "failed"
    after = dict(conn.execute(_SNAPSHOT, (taken,)).fetchall()) if taken else {}
    now = datetime.now(timezone.utc)
    records = []
    for j in take:
        if j.id in changed:
            outs.append(JobOutcome(j.id, done, changed[j.id]))
            records.append(AuditRecord(run_id=run_id, action=f"jobs-{action}", row_id=j.id,
                                       table="graphile_worker._private_jobs", at=now, operator=operator,
                                       outcome=done, previous=before.get(j.id), new=after.get(j.id),
                                       detail={"library": "graphile-worker", "kind": j.kind,
                                               "reason": reason or changed[j.id]}))
        else:
            outs.append(JobOutcome(j.id, "skipped", "changed meanwhile, or locked by a live worker"))
    order = {i: n for n, i in enumerate(ids)}
    outs.sort(key=lambda o: order.get(o.id, len(order)))
    return outs, records


def preview(jobs: Sequence[Job], action: str) -> list[JobOutcome]:
    """The dry run: what ``act`` would do to each job, and why it would skip the others."""
    take, skipped = plan(jobs, action)
    verb = "would-retry" if action == "retry" else "would-fail"
    how = {"lock-expired": "graphile_worker.force_unlock_workers", "failed": "graphile_worker.reschedule_jobs"} \
        if action == "retry" else {}
    outs = [JobOutcome(j.id, verb, f"dry run: {how.get(j.kind, 'graphile_worker.permanently_fail_jobs')}")
            for j in take] + skipped
    order = {j.id: n for n, j in enumerate(jobs)}
    return sorted(outs, key=lambda o: order.get(o.id, len(order)))


def graphile_remediate(conn: Connection, jobs: list[Job], *, action: str, reason: str, dry_run: bool,
                       audit: Any = None, run_id: str = "", operator: str = "",
                       threshold: float = 120.0) -> list[JobOutcome]:
    """Retry or fail graphile-worker jobs with its own admin functions in the caller's transaction
    (``stuckgen jobs``); ``audit``: a log written in that transaction (a file is the caller's)."""
    if dry_run:
        return preview(jobs, action)
    outs, records = act(conn, jobs, action=action, reason=reason, threshold=threshold, run_id=run_id,
                        operator=operator)
    if audit is not None and records:
        audit.append(conn, records)
    return outs
