"""`stuckgen probe-auth`."""


import time
from typing import Annotated, Optional

import typer

from stuckgen.cli._app import (
    ConfigOpt, ConnectTimeoutOpt, DatabaseUrlOpt, DebugOpt, EnvFileOpt, Output, app, default_format, env_help,
    handle_errors, SecretOpt, settings_from,
)
from stuckgen.errors import ConfigError, ExitCode

FORMATS = ("table", "json", "markdown")
PROGRESS_AFTER = 20  # probes; below this the run is over before a bar is useful


@app.command("probe-auth")
@handle_errors
def probe_auth(
    base_url: Annotated[Optional[list[str]], typer.Option(
        "--url", "-u", metavar="URL", show_default=False,
        help=env_help("base_url", "Deployment to probe (repeatable: production and preview side by side)."))] = None,
    route: Annotated[Optional[str], typer.Option(
        "--route", metavar="PATH", show_default=False,
        help=env_help("route", "Path of the process route. Default /api/generate/process."))] = None,
    internal_secret: SecretOpt = None,
    cookie: Annotated[Optional[str], typer.Option(
        "--cookie", metavar="HEADER", show_default=False,
        help=env_help("cookie", "Session cookies as a Cookie header 'name=value; ...' (never printed)."))] = None,
    cookie_file: Annotated[Optional[str], typer.Option(
        "--cookie-file", metavar="PATH", show_default=False,
        help=env_help("cookie_file", "File with the cookies: Netscape cookies.txt or a Cookie header."))] = None,
    cookie_name: Annotated[Optional[str], typer.Option(
        "--cookie-name", metavar="NAME", show_default=False,
        help=env_help("cookie_name", "The app's session cookie name when not sb-<ref>-auth-token (auth.storageKey)."))] = None,
    bypass_secret: Annotated[Optional[str], typer.Option(
        "--bypass-secret", metavar="VALUE", show_default=False,
        help=env_help("bypass_secret", "Vercel Deployment Protection bypass secret (never printed)."))] = None,
    repeat: Annotated[Optional[int], typer.Option(
        "--repeat", "-r", min=1, max=1000, metavar="N", show_default=False,
        help="Send each probe this many times. Default 10: enough to tell instances that disagree from a "
             "consistent answer; a target is never called healthy on fewer than 2 answers per mode.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=100, metavar="N", help="Probes in flight at once.")] = 10,
    http_timeout: Annotated[Optional[str], typer.Option(
        "--http-timeout", metavar="DURATION", show_default=False,
        help=env_help("http_timeout", "Per-probe timeout. Default 10s."))] = None,
    allow_insecure: Annotated[bool, typer.Option(
        "--allow-insecure", help="Allow sending the secret or cookie over plain HTTP to a non-loopback host.")] = False,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", show_default=False, metavar="FORMAT",
                                               help="table | json | markdown. Default: table on a terminal, json in a pipe.")] = None,
    database_url: DatabaseUrlOpt = None,
    connect_timeout: ConnectTimeoutOpt = None,
    env_file: EnvFileOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> int:
    """Find out why the process route says 401: probe it with each kind of credential.

    Sends POST {route} to every --url with: no credentials, a wrong secret, the
    secret, the session cookie, secret and cookie, and each of those again with
    the Deployment Protection bypass header when --bypass-secret is given. Every
    probe carries {"generationId": <random uuid>} that matches no row (checked
    against the database when one is configured), so it cannot process or claim
    real work. Redirects are recorded, never followed. The secret, cookie and
    bypass secret are never printed: they appear as length and sha256 fingerprint.

    \b
    Examples:
      INTERNAL_API_SECRET=... stuckgen probe-auth --url https://app.example.com --repeat 10
      stuckgen probe-auth -u https://app.example.com -u https://app-git-main.vercel.app \\
          --cookie-file cookies.txt --format markdown

    Exit: 0 auth behaves as it should, 1 a warning or worse, 2 configuration error,
    3 no target answered.
    """
    from stuckgen.findings import Severity, analyze_probe
    from stuckgen.probe import DEFAULT_REPEAT, ProbeTarget, probe
    from stuckgen.render.probe import findings_table, probe_json_lines, probe_markdown_lines, probe_table
    from stuckgen.secrets import describe
    from stuckgen.session import Session

    settings = settings_from(locals())
    out = Output()
    fmt = default_format(fmt, tty=out.is_tty)
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if not settings.base_url:
        raise ConfigError("no deployment to probe", hint="pass --url or set STUCKGEN_BASE_URL")
    targets = [ProbeTarget(url=u) for u in settings.base_url]
    repeat = repeat or DEFAULT_REPEAT

    session = Session(settings, out, allow_insecure=allow_insecure)
    cookie_info = session.cookie()
    secret = settings.internal_secret
    out.note(f"secret: {describe(secret)}; bypass secret: {describe(settings.bypass_secret)}")

    estimate = len(targets) * repeat * 10
    with session, out.progress("probing", total=None, estimate=estimate, at_least=PROGRESS_AFTER) as bar:
        matrix = probe(
            session.http_client(concurrency=concurrency),
            targets,
            route=settings.route,
            secret=secret,
            cookie_header=session.cookie_header(),
            bypass_secret=settings.bypass_secret,
            repeat=repeat,
            concurrency=concurrency,
            timeout=settings.http_timeout,
            # The probe id must match no row: checked on the session's one connection.
            id_in_use=session.id_in_use if settings.database_url else None,
            on_progress=bar.update if bar else None,
            allow_insecure=allow_insecure,
            secret_header=settings.secret_header,
        )
    findings = analyze_probe(matrix, secret=secret, cookie_info=cookie_info, now=time.time())

    if fmt == "json":
        out.lines(probe_json_lines(matrix, findings, cookie_info=cookie_info, now=time.time()))
    elif fmt == "markdown":
        out.lines(probe_markdown_lines(matrix, findings))
    else:
        table = probe_table(matrix, width=out.width)
        out.out.print(table)
        if table.left_out:
            out.out.print(f"({', '.join(table.left_out)} left out at {out.width} columns: "
                          "widen the terminal, or use --format json)", markup=False)
        out.out.print()
        if findings:
            out.out.print(findings_table(findings))
        else:
            out.out.print("No findings: the route accepts the secret and the cookie and refuses everything else.",
                          markup=False)

    if not matrix.any_answered:
        out.note("no target answered")
        return ExitCode.UNREACHABLE
    if any(f.severity >= Severity.WARNING for f in findings):
        return ExitCode.FINDINGS
    return ExitCode.OK
