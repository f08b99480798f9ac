"""Findings from the job-queue libraries' own tables (graphile-worker, pg-boss)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stuckgen.doctor.report import RankedFinding
from stuckgen.findings import Finding, Severity


_QUEUE_FIX = {
    "graphile-worker": (
        "start a worker: a running graphile-worker unlocks jobs locked longer than 4 hours and takes due jobs. "
        "To retry now with its own admin functions: SELECT graphile_worker.force_unlock_workers(ARRAY['<locked_by>']); "
        "to give up: SELECT graphile_worker.permanently_fail_jobs(ARRAY[<job ids>], 'reason')"),
    "pg-boss": (
        "run a pg-boss instance with its supervisor on (supervise: true): maintenance retries or fails expired "
        "active jobs; consumers (boss.work) drain created/retry jobs. From code: boss.retry(name, id) / "
        "boss.fail(name, id, data)"),
}


def queue_findings(queues: Sequence[Any]) -> list[RankedFinding]:
    """One finding per job-queue library holding stuck jobs, read by the library's own rules."""
    out: list[RankedFinding] = []
    for q in queues:
        if not q.stuck:
            continue
        kinds = [k for k in ("lock-expired", "expired-active", "queued-not-drained") if q.counts.get(k)]
        ev = tuple(f"{q.counts[k]} {k} (e.g. {', '.join(q.examples.get(k, [])[:3])}): {q.meaning.get(k, k)}"
                   for k in kinds)
        out.append(RankedFinding(support=0.5, finding=Finding(
            id=f"queue-{q.library}", severity=Severity.WARNING,
            title=f"{q.stuck} {q.library} jobs stuck in {q.table}", evidence=ev,
            fix=_QUEUE_FIX.get(q.library, "start the library's workers"))))
    return out
