"""What Vercel says: the project's variables and deployments, and how the process route answered in the runtime logs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stuckgen.doctor.ranking import probe_support
from stuckgen.doctor.report import DoctorReport, RankedFinding
from stuckgen.errors import StuckgenError
from stuckgen.findings import Finding, Severity


def vercel_findings(report: DoctorReport, settings: Any, vercel_http: Any, *, timeline: bool,
                    step: Callable[[str], None]) -> tuple[list[RankedFinding], list[Any]]:
    """Findings from the Vercel project (and its runtime logs), and the timeline's markers when one is drawn.

    An API that cannot be consulted is a finding of its own, not an error.
    """
    from stuckgen.vercel import SECRET_KEY, VercelClient, analyze_evidence

    ranked: list[RankedFinding] = []
    markers: list[Any] = []
    step("reading the Vercel project")
    try:
        client = VercelClient(vercel_http, token=settings.values.get("vercel_token"),
                              project=settings.values.get("vercel_project"), team=settings.values.get("vercel_team"),
                              base_url=settings.values.get("vercel_api_url") or "https://api.vercel.com")
        onset = report.summary.onset if report.summary else None
        # Values are read one variable at a time (the list returns ciphertext); a value the
        # token may not read becomes a finding that says so, never a silent skip.
        ev = client.gather(onset=onset, value_keys={SECRET_KEY})
        protection = any(f.id == "deployment-protection" for f in report.probe_findings)
        vf = analyze_evidence(ev, local_secret=settings.internal_secret, local_bypass=settings.bypass_secret,
                              onset=onset, protection_seen=protection)
        secrets = [v for v in ev.envs if v.key == SECRET_KEY]
        if timeline:
            from stuckgen.timeline import vercel_markers

            markers = vercel_markers(ev.envs, ev.deployments)
        report.vercel = {
            "consulted": True, "variables": len(ev.envs), "deployments": len(ev.deployments),
            "secret_values_compared": sum(v.digest is not None for v in secrets),
            "secret_values_unreadable": sum(v.digest is None for v in secrets),
            "hidden_production_variables": ev.hidden_production,
            "project_read": ev.project is not None,
        }
        for f in vf:
            support = probe_support(f, report.summary) + 0.1 if f.severity >= Severity.WARNING else 0.2
            ranked.append(RankedFinding(support=support, finding=f))
        step("reading the runtime logs")
        ranked += _runtime_log_findings(report, client, ev.deployments, route=settings.route)
    except StuckgenError as exc:
        report.vercel = {"consulted": False, "error": exc.message}
        ranked.append(RankedFinding(support=0.1, finding=Finding(
            id="vercel-unavailable", severity=Severity.INFO, title="the Vercel API could not be consulted",
            evidence=(exc.message,), fix=exc.hint or "check VERCEL_TOKEN, VERCEL_PROJECT_ID and VERCEL_TEAM_ID")))
    return ranked, markers


def _runtime_log_findings(report: DoctorReport, client: Any, deployments: Sequence[Any], *,
                          route: str) -> list[RankedFinding]:
    """Count each recent deployment's calls of the process route by status, and its timeouts, from Vercel's logs."""
    from stuckgen.vercel.logs import count_calls, log_deployments

    counted = []
    for d in log_deployments(deployments):
        try:
            logs = client.runtime_logs(d.uid)
        except StuckgenError as exc:
            report.vercel["runtime_logs_error"] = exc.message
            break
        counted.append(count_calls(logs, route, deployment=d.url or d.uid))
    report.vercel["runtime_logs"] = [c.as_dict() for c in counted]
    out: list[RankedFinding] = []
    stuck = report.summary.stuck if report.summary is not None else 0
    by = report.summary.by_class if report.summary is not None else {}
    for c in counted:
        refused = sum(n for s, n in c.by_status.items() if s in (401, 403))
        if c.total and refused * 2 >= c.total:
            explained = (by.get("trigger-failed", 0) + by.get("never-started", 0)) / stuck if stuck else 0.0
            out.append(RankedFinding(support=0.4 + explained, finding=Finding(
                id="platform-logs-refused", severity=Severity.ERROR, target=c.deployment,
                title=c.line(),
                evidence=(", ".join(f"HTTP {s} x{n}" for s, n in sorted(c.by_status.items())) + f" of {c.total} calls",
                          "source: Vercel's runtime logs of the deployment (what the route itself answered)"),
                fix="the deployment refuses its own trigger: see the secret findings above (INTERNAL_API_SECRET for "
                    "this deployment's target), then retrigger")))
        if c.timeouts:
            share = by.get("stalled", 0) / stuck if stuck else 0.0
            out.append(RankedFinding(support=0.2 + share, finding=Finding(
                id="platform-logs-timeouts", severity=Severity.WARNING, target=c.deployment,
                title=f"{c.timeouts} invocations of {route} on {c.deployment} were stopped at the function's maximum "
                      f"duration ({c.timeout_seconds:g} s): their workers are dead, not slow",
                evidence=(c.line(),),
                fix="raise maxDuration for the process route or split the work; rows whose worker started more than "
                    "that long ago can be re-run safely")))
    return out
