"""Run every check the configuration allows, each source in its turn, and rank what they found.

``diagnose`` takes what the CLI opened (a connection, HTTP clients) and never
prints; each source that cannot be consulted becomes a finding of its own
instead of stopping the diagnosis. ``gather`` opens those through a session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from stuckgen.doctor.config import config_facts, config_findings, trigger_notices_apply
from stuckgen.doctor.database import database_findings
from stuckgen.doctor.deadline import deadline_findings, max_duration_from_vercel
from stuckgen.doctor.probe import probe_findings
from stuckgen.doctor.provider import provider_evidence
from stuckgen.doctor.ranking import plan, rank_causes
from stuckgen.doctor.report import DoctorReport, RankedFinding
from stuckgen.doctor.vercel import vercel_findings
from stuckgen.errors import ExitCode
from stuckgen.findings import Severity

if TYPE_CHECKING:
    from stuckgen.db import Connection
    from stuckgen.session import Session
    from stuckgen.settings import Settings


def diagnose(
    settings: Settings,
    *,
    conn: Connection | None,
    db_error: str | None = None,
    db_fix: str | None = None,
    http: Any | None = None,
    vercel_http: Any | None = None,
    provider_http: Any | None = None,
    cookie_header: str | None = None,
    cookie_info: Any | None = None,
    repeat: int | None = None,
    concurrency: int = 10,
    allow_insecure: bool = False,
    rules: Sequence[Any] | None = None,
    now: float | None = None,
    on_step: Callable[[str], None] | None = None,
    sample_rows: int = 2000,
    timeline: bool = False,
) -> DoctorReport:
    """Run every check that the configuration allows and rank what they found.

    ``db_error``/``db_fix``: why the database could not be opened and what to do (the error's hint).
    """
    step = on_step or (lambda _msg: None)
    now = time.time() if now is None else now
    markers: list[Any] = []
    report = DoctorReport(generated_at=datetime.fromtimestamp(now, tz=timezone.utc))
    deadline_note = None
    if (vercel_http is not None and not settings.values.get("max_duration") and settings.values.get("vercel_token")
            and settings.values.get("vercel_project")):
        # Before the scan, so that the rows past the limit Vercel states are classed timed-out.
        step("reading the process route's maximum duration from Vercel")
        settings, deadline_note = max_duration_from_vercel(settings, vercel_http)
    report.config = config_facts(settings)
    ranked: list[RankedFinding] = config_findings(settings)
    if deadline_note is not None:
        ranked.append(deadline_note)

    # The database: mapping, scan, step-log evidence.
    ranked += database_findings(conn, settings, report, db_error=db_error, db_fix=db_fix, rules=rules,
                                sample_rows=sample_rows, step=step, timeline=timeline)
    if conn is not None and not trigger_notices_apply(settings, report.mapping, report.summary):
        # No process route in this app's evidence: notices about its secret and URL are noise.
        ranked = [r for r in ranked if r.finding.id not in ("secret-not-configured", "no-target")]
    # Provably dead workers: started longer ago than the function may run.
    max_duration = settings.values.get("max_duration")
    if max_duration:
        ranked += deadline_findings(report, settings, conn, float(max_duration))
        if any(r.finding.id == "timed-out" for r in ranked):  # it says more than the class's own finding
            ranked = [r for r in ranked if r.finding.id != "stuck-timed-out"]
    # The provider: how the stuck provider rows really ended.
    if conn is not None and provider_http is not None and report.summary is not None and report.summary.stuck:
        ranked += provider_evidence(report, settings, conn, provider_http, report.waiting_rows, http=http,
                                    allow_insecure=allow_insecure, step=step)
    if settings.values.get("base_url") and http is not None:
        ranked = probe_findings(report, settings, conn, http, ranked, cookie_header=cookie_header,
                                cookie_info=cookie_info, repeat=repeat, concurrency=concurrency,
                                allow_insecure=allow_insecure, now=now, step=step)
    if settings.values.get("vercel_token") and settings.values.get("vercel_project") and vercel_http is not None:
        found, markers = vercel_findings(report, settings, vercel_http, timeline=timeline, step=step)
        ranked += found
    if markers and report.timeline is not None:
        from stuckgen import timeline as tl

        report.timeline = tl.with_markers(report.timeline, markers)
    report.ranked = rank_causes(ranked)
    report.remediation, report.next_steps = plan(report)
    return report


def gather(session: Session, *, probe: bool, repeat: int | None, timeline: bool = False,
           on_step: Callable[[str], None] | None = None) -> DoctorReport:
    """Open what the configuration allows (database, deployment, Vercel, provider) through the session; diagnose.

    An unreachable database is evidence, not an error: the report says so.
    """
    from stuckgen.errors import UnreachableError
    from stuckgen.probe import DEFAULT_REPEAT

    s = session.settings
    conn: Connection | None = None
    db_error = db_fix = None
    if s.database_url:
        try:
            conn = session.connection()
        except UnreachableError as exc:
            db_error, db_fix = exc.message, exc.hint
    http = session.http_client() if probe and s.base_url else None
    # The Vercel API may sit behind the operator's proxy; the deployment is called directly.
    vercel = session.http_client(trust_env=True) if s.vercel_token and s.vercel_project else None
    provider = session.http_client() if s.replicate_api_token else None
    return diagnose(s, conn=conn, db_error=db_error, db_fix=db_fix, http=http, vercel_http=vercel, provider_http=provider,
                    timeline=timeline, cookie_header=session.cookie_header(), cookie_info=session.cookie(),
                    repeat=repeat or DEFAULT_REPEAT, allow_insecure=session.allow_insecure, rules=session.rules(),
                    now=time.time(), on_step=on_step)


def exit_code(report: DoctorReport, *, database_configured: bool) -> ExitCode:
    """3 when every source doctor tried (database, deployment, Vercel) failed to answer; else by the worst finding."""
    tried = database_configured or report.probe_matrix is not None or bool(report.vercel)
    reached = (bool(report.database.get("reachable"))
               or (report.probe_matrix is not None and report.probe_matrix.any_answered)
               or bool(report.vercel.get("consulted")))
    if tried and not reached:
        return ExitCode.UNREACHABLE
    w = report.worst
    return ExitCode.FINDINGS if w is not None and w >= Severity.WARNING else ExitCode.OK
