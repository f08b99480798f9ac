"""`probe-auth`: the process route probed with each kind of credential, and what its answers mean."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from stuckgen.commands import print_fitted
from stuckgen.console import Output
from stuckgen.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from stuckgen.findings import Finding
    from stuckgen.probe import ProbeMatrix
    from stuckgen.session import Session

PROGRESS_AFTER = 20  # probes; below this the run is over before a bar is useful


def run_probe_auth(session: Session, out: Output, *, fmt: str, repeat: int | None = None,
                   concurrency: int = 10) -> int:
    """Probe every configured deployment; UNREACHABLE when none answered, FINDINGS on a warning or worse."""
    from stuckgen.findings import Severity
    from stuckgen.probe import DEFAULT_REPEAT
    from stuckgen.secrets import describe

    s = session.settings
    targets = deployments(session)
    session.cookie()  # a cookie file that cannot be read stops the run before anything is said
    out.note(f"secret: {describe(s.internal_secret)}; bypass secret: {describe(s.bypass_secret)}")
    estimate = len(targets) * (repeat or DEFAULT_REPEAT) * 10
    with out.progress("probing", total=None, estimate=estimate, at_least=PROGRESS_AFTER) as bar:
        matrix = probe_matrix(session, repeat=repeat, concurrency=concurrency,
                              on_progress=bar.update if bar else None)
    findings = analyze(session, matrix)
    _write(out, fmt, matrix, findings, session)
    if not matrix.any_answered:
        out.note("no target answered")
        return ExitCode.UNREACHABLE
    return ExitCode.FINDINGS if any(f.severity >= Severity.WARNING for f in findings) else ExitCode.OK


def deployments(session: Session) -> list[str]:
    """The deployment URLs to probe; ConfigError when none is configured."""
    if not session.settings.base_url:
        raise ConfigError("no deployment to probe", hint="pass --url or set STUCKGEN_BASE_URL")
    return list(session.settings.base_url)


def probe_matrix(session: Session, *, repeat: int | None = None, concurrency: int = 10,
                 on_progress: Callable[[int, int], None] | None = None) -> ProbeMatrix:
    """One round of probes against every deployment, with the session's secret, cookie and client.

    The probe id must match no row: checked on the session's one connection when a
    database is configured (inside the caller's read transaction, if it has one).
    """
    from stuckgen.probe import DEFAULT_REPEAT, ProbeTarget, probe

    s = session.settings
    return probe(session.http_client(concurrency=concurrency), [ProbeTarget(url=u) for u in deployments(session)],
                 route=s.route, secret=s.internal_secret, cookie_header=session.cookie_header(),
                 bypass_secret=s.bypass_secret, repeat=repeat or DEFAULT_REPEAT, concurrency=concurrency,
                 timeout=s.http_timeout, id_in_use=session.id_in_use if s.database_url else None,
                 on_progress=on_progress, allow_insecure=session.allow_insecure, secret_header=s.secret_header)


def analyze(session: Session, matrix: ProbeMatrix) -> list[Finding]:
    from stuckgen.findings import analyze_probe

    return analyze_probe(matrix, secret=session.settings.internal_secret, cookie_info=session.cookie(),
                         now=time.time())


def _write(out: Output, fmt: str, matrix: ProbeMatrix, findings: list[Finding], session: Session) -> None:
    from stuckgen.render.probe import findings_table, probe_json_lines, probe_markdown_lines, probe_table

    if fmt == "json":
        out.lines(probe_json_lines(matrix, findings, cookie_info=session.cookie(), now=time.time()))
    elif fmt == "markdown":
        out.lines(probe_markdown_lines(matrix, findings))
    else:
        print_fitted(out, probe_table(matrix, width=out.width))
        out.out.print()
        if findings:
            out.out.print(findings_table(findings))
        else:
            out.out.print("No findings: the route accepts the secret and the cookie and refuses everything else.",
                          markup=False)
