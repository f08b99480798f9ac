"""Findings from the job-queue libraries' own tables (graphile-worker, pg-boss)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stuckgen.doctor.report import RankedFinding
from stuckgen.findings import Finding, Severity


def queue_findings(queues: Sequence[Any], *, queue_mode: bool = False) -> list[RankedFinding]:
    """One finding per job-queue library holding stuck jobs, read by the library's own rules, with the
    library's way out for each stuck class it holds (``queue_mode``: the library is the configured job table)."""
    from stuckgen.queues import fix_for, job_findings_evidence

    out: list[RankedFinding] = []
    for q in queues:
        if not q.stuck:
            continue
        found = job_findings_evidence(q)
        out.append(RankedFinding(support=1.0 if queue_mode else 0.5, finding=Finding(
            id=f"queue-{q.library}", severity=Severity.WARNING,
            title=f"{q.stuck} {q.library} jobs stuck in {q.table}", evidence=tuple(ev for _, ev in found),
            fix="; ".join(f"{k}: {fix_for(q.library, k, queue_mode=queue_mode)}" for k, _ in found))))
    return out


def read_queues(conn: Any, settings: Any, report: Any, libraries: Sequence[str]) -> list[RankedFinding]:
    """Queue mode: the configured libraries' jobs by their own rules; fills ``report`` and returns the findings."""
    from stuckgen import db as dbmod
    from stuckgen.queues import scan_jobs

    with dbmod.read_tx(conn, settings):
        result = scan_jobs(conn, libraries, threshold=settings.threshold, limit=20)
        version = dbmod.scalar(conn, "SHOW server_version")
    report.queues = list(result.census)
    report.database = {"reachable": True, "server_version": version, "table": ", ".join(result.tables),
                       "queue_library": list(libraries)}
    return queue_findings(report.queues, queue_mode=True)
