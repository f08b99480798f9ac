"""Stalled rows whose worker provably died: it started longer ago than the function may run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stuckgen.doctor.report import DoctorReport, RankedFinding
from stuckgen.findings import Finding, Severity

if TYPE_CHECKING:
    from stuckgen.db import Connection


def deadline_findings(report: DoctorReport, settings: Any, conn: Connection | None, max_duration: float) -> list[RankedFinding]:
    """The rows the scan classed timed-out (stalled, worker older than max_duration + grace); a threshold that is too short."""
    from stuckgen import db as dbmod
    from stuckgen import deadline

    out: list[RankedFinding] = []
    warning = deadline.threshold_warning(float(settings.threshold), max_duration)
    if warning:
        out.append(RankedFinding(support=0.05, finding=Finding(
            id="threshold-below-max-duration", severity=Severity.INFO, title=warning,
            evidence=(f"--threshold {settings.threshold:g} s, --max-duration {max_duration:g} s",),
            fix="raise --threshold, or read stalled rows younger than the maximum duration as possibly alive")))
    # The scan classified them (the timed-out rule, on the database's clock); the details of the
    # sampled ones are read for the JSON (when each worker started).
    n = report.summary.by_class.get("timed-out", 0) if report.summary is not None else 0
    timed_out = [r for r in report.sample_rows if r.cls == "timed-out"]
    if conn is None or not n or report.mapping is None:
        return out
    with dbmod.read_tx(conn, settings):
        dead = deadline.dead_workers(conn, report.mapping, [r.id for r in timed_out[:200]],
                                     max_duration=max_duration, naive_tz=settings.naive_timezone)
    report.dead_workers = [d.as_dict() for d in dead.values()]
    stalled = n + report.summary.by_class.get("stalled", 0)
    out.append(RankedFinding(support=0.3 + n / max(report.summary.stuck, 1), finding=Finding(
        id="timed-out", severity=Severity.WARNING,
        title=f"{n} stalled generations are provably dead: their workers started longer ago than the "
              f"function's maximum duration ({max_duration:g} s)",
        evidence=tuple(f"{r.id}: {r.why}" for r in timed_out[:3]) + (f"{n} of {stalled} stalled rows",)
        + tuple(f"function limit from {src}" for src in [settings.sources.get("max_duration", "")]
                if src.startswith("Vercel")),
        fix="no worker can still be running them, so a new trigger cannot duplicate a live run: "
            "`stuckgen retrigger --all-stuck --class timed-out --yes`; find why workers outlive the limit (raise "
            "maxDuration or split the work)")))
    return out


def max_duration_from_vercel(settings: Any, vercel_http: Any) -> tuple[Any, RankedFinding | None]:
    """``settings`` with the process route's maximum duration as Vercel's API tells it (the production
    deployment's vercel.json ``functions``), or unchanged with a note that says why it could not.

    Only when the maximum duration is not set: a setting always wins over what the API says.
    """
    from dataclasses import replace

    from stuckgen.errors import StuckgenError
    from stuckgen.vercel import VercelClient
    from stuckgen.vercel.functions import read_limit

    v = settings.values
    try:
        client = VercelClient(vercel_http, token=v.get("vercel_token"), project=v.get("vercel_project"),
                              team=v.get("vercel_team"), base_url=v.get("vercel_api_url") or "https://api.vercel.com")
        limit, why = read_limit(client, settings.route)
    except StuckgenError as exc:
        limit, why = None, f"the Vercel API could not be read: {exc.message}"
    if limit is not None:
        return replace(settings, max_duration=limit.seconds,
                       sources={**settings.sources, "max_duration": limit.source}), None
    return settings, RankedFinding(support=0.02, finding=Finding(
        id="max-duration-unknown", severity=Severity.INFO,
        title=f"Vercel's API does not say {settings.route}'s maximum duration, so no stalled row can be "
              "named timed-out (provably dead)",
        evidence=(why, "a maxDuration set in the route's own code (export const maxDuration) is not in Vercel's API"),
        fix="set --max-duration (STUCKGEN_MAX_DURATION, or max_duration in stuckgen.toml) to the route's "
            "maxDuration"))
