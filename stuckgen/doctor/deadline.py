"""Stalled rows whose worker provably died: it started longer ago than the function may run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stuckgen.doctor.report import DoctorReport, RankedFinding
from stuckgen.findings import Finding, Severity

if TYPE_CHECKING:
    from stuckgen.db import Connection


def deadline_findings(report: DoctorReport, settings: Any, conn: Connection | None, max_duration: float) -> list[RankedFinding]:
    """Stalled rows whose worker started more than max_duration + grace ago; a threshold that is too short."""
    from stuckgen import db as dbmod
    from stuckgen import deadline

    out: list[RankedFinding] = []
    warning = deadline.threshold_warning(float(settings.threshold), max_duration)
    if warning:
        out.append(RankedFinding(support=0.05, finding=Finding(
            id="threshold-below-max-duration", severity=Severity.INFO, title=warning,
            evidence=(f"--threshold {settings.threshold:g} s, --max-duration {max_duration:g} s",),
            fix="raise --threshold, or read stalled rows younger than the maximum duration as possibly alive")))
    stalled = [r.id for r in report.sample_rows if r.cls == "stalled"] if conn is not None else []
    if conn is None or not stalled or report.mapping is None:
        return out
    with dbmod.read_tx(conn, settings):
        dead = deadline.dead_workers(conn, report.mapping, stalled, max_duration=max_duration,
                                     naive_tz=settings.naive_timezone)
    report.dead_workers = [d.as_dict() for d in dead.values()]
    if dead:
        n = len(dead)
        ex = list(dead.values())[:3]
        out.append(RankedFinding(support=0.3 + n / max(report.summary.stuck, 1), finding=Finding(
            id="timed-out", severity=Severity.WARNING,
            title=f"{n} stalled generations are provably dead: their workers started longer ago than the "
                  f"function's maximum duration ({max_duration:g} s)",
            evidence=tuple(f"{d.id}: {d.evidence}" for d in ex) + (f"{n} of {len(stalled)} stalled rows",),
            fix="no worker can still be running them, so a new trigger cannot duplicate a live run: "
                "`stuckgen retrigger ID... --yes`; find why workers outlive the limit (raise maxDuration or split "
                "the work)")))
    return out
