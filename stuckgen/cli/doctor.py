"""`stuckgen doctor` (the incident) and `stuckgen check` (the scheduled CI job)."""


import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from stuckgen.cli import _alerting
from stuckgen.cli._alerting import HeartbeatOpt, PagerDutyOpt, SlackOpt, WebhookOpt
from stuckgen.cli._app import (
    MaxDurationOpt,
    GraceOpt, QueueLibraryOpt, QueueLockOpt,
    AuditFileOpt, AuditTableOpt, ConfigOpt, ConnectTimeoutOpt, DatabaseUrlOpt, DbSchemaOpt, DebugOpt, EnvFileOpt,
    InflightOpt, LockTimeoutOpt, MapOpt, OperatorOpt, Output, RepeatOpt, SecretOpt, SinceOpt, StatementTimeoutOpt,
    TableOpt, ThresholdOpt, app, default_format, env_help, handle_errors, settings_from,
)
from stuckgen.durations import parse_duration
from stuckgen.errors import ConfigError, ExitCode, SchemaError, StuckgenError, UnreachableError

UrlOpt = Annotated[Optional[list[str]], typer.Option(
    "--url", "-u", show_default=False, metavar="URL",
    help=env_help("base_url", "Deployment to probe (repeatable: production and preview side by side)."))]
CookieOpt = Annotated[Optional[str], typer.Option(
    "--cookie", show_default=False, metavar="HEADER", help=env_help("cookie", "Session cookie header (never printed)."))]
CookieFileOpt = Annotated[Optional[str], typer.Option(
    "--cookie-file", show_default=False, metavar="PATH", help=env_help("cookie_file", "Cookie file (cookies.txt or a Cookie header)."))]
CookieNameOpt = Annotated[Optional[str], typer.Option(
    "--cookie-name", show_default=False, metavar="NAME",
    help=env_help("cookie_name", "The app's session cookie name when not sb-<ref>-auth-token (auth.storageKey)."))]
AllowInsecureOpt = Annotated[bool, typer.Option(
    "--allow-insecure", help="Allow sending credentials over plain HTTP to a non-loopback host.")]


def gather(settings: Any, *, out: Output, probe: bool, repeat: Optional[int], allow_insecure: bool,
           timeline: bool = False) -> Any:
    """Open what the configuration allows (database, HTTP, Vercel, provider) and run the diagnosis."""
    from stuckgen import doctor
    from stuckgen.session import Session

    with Session(settings, out, allow_insecure=allow_insecure) as session:
        return doctor.gather(session, probe=probe, repeat=repeat, timeline=timeline,
                             on_step=(lambda m: out.note(f"doctor: {m} ...")) if out.is_tty else None)


@app.command()
@handle_errors
def doctor(
    database_url: DatabaseUrlOpt = None,
    url: UrlOpt = None,
    internal_secret: SecretOpt = None,
    cookie: CookieOpt = None,
    cookie_file: CookieFileOpt = None,
    cookie_name: CookieNameOpt = None,
    repeat: RepeatOpt = None,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="Do not call the deployment.")] = False,
    allow_insecure: AllowInsecureOpt = False,
    threshold: ThresholdOpt = None,
    grace: GraceOpt = None,
    queue_lock: QueueLockOpt = None,
    queue_library: QueueLibraryOpt = None,
    since: SinceOpt = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", metavar="FORMAT", show_default=False,
                                               help="text | markdown | json | html. Default: text on a terminal, json in a pipe; from -o NAME.md/.html.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", metavar="PATH", show_default=False,
                                                  help="Write the report to this file (created owner-only) instead of stdout.")] = None,
    table: TableOpt = None,
    db_schema: DbSchemaOpt = None,
    map: MapOpt = None,
    inflight_statuses: InflightOpt = None,
    statement_timeout: StatementTimeoutOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    connect_timeout: ConnectTimeoutOpt = None,
    env_file: EnvFileOpt = None,
    config: ConfigOpt = None,
    max_duration: MaxDurationOpt = None,
    debug: DebugOpt = False,
) -> int:
    """Gather every piece of evidence and rank the causes of stuck generations.

    Configuration (what is set, from where; secrets as length and fingerprint), the
    database and its schema mapping, the scan summary with onset and stuck rate, the
    step-log evidence of stuck rows, probe-auth against every --url, and, with
    VERCEL_TOKEN and VERCEL_PROJECT_ID, the project's variables and deployments.
    Reads only.

    \b
    Examples:
      stuckgen doctor --url https://app.example.com --url https://app-git-feat.vercel.app
      stuckgen doctor --format markdown -o incident.md
      stuckgen doctor --format html --output incident.html   (one page: timeline chart, findings, rows)

    Exit: 0 nothing wrong, 1 a warning or worse, 2 configuration error, 3 nothing could be reached.
    """
    from stuckgen.findings import Severity
    from stuckgen.render.doctor import doctor_json_lines, doctor_markdown_lines, doctor_text_lines
    from stuckgen.render.html import doctor_html_lines

    params = dict(locals())
    params["base_url"] = ",".join(url) if url else None
    settings = settings_from(params)
    out = Output()
    by_suffix = {".md": "markdown", ".html": "html", ".htm": "html"}
    suffix = Path(output).suffix.lower() if output else ""
    fmt = fmt or by_suffix.get(suffix) or default_format(None, tty=out.is_tty).replace("table", "text")
    if fmt not in ("text", "markdown", "json", "html"):
        raise ConfigError(f"--format: {fmt!r} is not one of text, markdown, json, html")
    report = gather(settings, out=out, probe=not no_probe, repeat=repeat, allow_insecure=allow_insecure,
                    timeline=fmt == "html")
    lines = {"text": doctor_text_lines, "markdown": doctor_markdown_lines, "json": doctor_json_lines,
             "html": doctor_html_lines}[fmt](report)
    if fmt == "text" and not output:
        from stuckgen.render.layout import wrap_lines

        lines = wrap_lines(lines, out.width)  # between words, never inside a command to copy
    if output:
        write_private(Path(output), lines)
        out.note(f"report written to {output}")
    else:
        out.lines(lines)
    # 3 when every source doctor tried (database, deployment, Vercel) failed to answer.
    tried = bool(settings.database_url) or report.probe_matrix is not None or bool(report.vercel)
    reached = (bool(report.database.get("reachable"))
               or (report.probe_matrix is not None and report.probe_matrix.any_answered)
               or bool(report.vercel.get("consulted")))
    if tried and not reached:
        return ExitCode.UNREACHABLE
    if report.database.get("reachable") and report.database.get("table") is None:
        return ExitCode.USAGE  # the report names the missing table or mapping; the configuration is wrong
    w = report.worst
    return ExitCode.FINDINGS if w is not None and w >= Severity.WARNING else ExitCode.OK


def write_private(path: Path, lines: Any) -> None:
    """Write lines to a file only the owner can read: reports may hold row ids and errors."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")


def append_private(path: Path, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(text)


@app.command()
@handle_errors
def check(
    database_url: DatabaseUrlOpt = None,
    max_stuck: Annotated[int, typer.Option("--max-stuck", min=0, metavar="N",
                                           help="Fail when more rows than this are stuck.")] = 0,
    max_stuck_rate: Annotated[Optional[str], typer.Option("--max-stuck-rate", metavar="RATE", show_default=False,
                                                          help="Fail when the stuck rate exceeds this (0.05 or 5%).")] = None,
    max_trigger_failures: Annotated[Optional[int], typer.Option(
        "--max-trigger-failures", min=0, metavar="N", show_default=False,
        help="Fail when more rows than this failed at the trigger in --trigger-window (and over the rate). "
             "Default: 2.")] = None,
    max_trigger_failure_rate: Annotated[Optional[str], typer.Option(
        "--max-trigger-failure-rate", metavar="RATE", show_default=False,
        help="... and they are more than this share of the rows created in the window. Default: 10%.")] = None,
    trigger_window: Annotated[Optional[str], typer.Option(
        "--trigger-window", metavar="DURATION", show_default=False,
        help="Recent window the trigger failures are judged on. Default: 1h.")] = None,
    probe: Annotated[bool, typer.Option("--probe", help="Also run probe-auth against --url targets.")] = False,
    repeat: RepeatOpt = None,
    url: UrlOpt = None,
    internal_secret: SecretOpt = None,
    cookie: CookieOpt = None,
    cookie_file: CookieFileOpt = None,
    cookie_name: CookieNameOpt = None,
    allow_insecure: AllowInsecureOpt = False,
    threshold: ThresholdOpt = None,
    grace: GraceOpt = None,
    queue_lock: QueueLockOpt = None,
    queue_library: QueueLibraryOpt = None,
    max_duration: MaxDurationOpt = None,
    since: SinceOpt = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", metavar="FORMAT", show_default=False,
                                               help="text | json | openmetrics. Default: text.")] = None,
    junit: Annotated[Optional[str], typer.Option("--junit", metavar="PATH", show_default=False,
                                                 help="Write a JUnit XML report here (for CI systems).")] = None,
    metrics_file: Annotated[Optional[str], typer.Option(
        "--metrics-file", metavar="PATH", show_default=False,
        help=env_help("metrics_file", "Write OpenMetrics here atomically (0644) after every run, whatever its "
                                      "exit code (node_exporter's textfile collector)."))] = None,
    slack_webhook_url: SlackOpt = None,
    pagerduty_routing_key: PagerDutyOpt = None,
    notify_webhook_url: WebhookOpt = None,
    heartbeat_url: HeartbeatOpt = None,
    retrigger_after: Annotated[Optional[str], typer.Option(
        "--retrigger-after", metavar="DURATION", show_default=False,
        help="Policy: retrigger rows quiet this long (and not yet past --fail-after), e.g. 5m.")] = None,
    fail_after: Annotated[Optional[str], typer.Option(
        "--fail-after", metavar="DURATION", show_default=False,
        help="Policy: fail rows quiet this long, with a reason naming the policy, e.g. 30m.")] = None,
    max_attempts: Annotated[int, typer.Option(
        "--max-attempts", min=1, metavar="N",
        help="Policy: triggers per row across runs (from the audit log); then left for --fail-after.")] = 3,
    retrigger_classes: Annotated[Optional[list[str]], typer.Option(
        "--retrigger-class", metavar="CLASS", show_default=False,
        help="Policy: also retrigger rows of this class (repeatable). By default only never-started, "
             "trigger-failed, queued-not-drained and timed-out, which a new trigger cannot harm; the rest are listed as "
             "left out.")] = None,
    remediate: Annotated[bool, typer.Option(
        "--remediate", help="Act on the policy. Without it the policy only reports what it would do.")] = False,
    wait: Annotated[Optional[str], typer.Option(
        "--wait", metavar="DURATION", show_default=False,
        help="After retriggering, wait up to this long for the rows to leave processing, then verify.")] = None,
    audit_table: AuditTableOpt = None,
    audit_file: AuditFileOpt = None,
    operator: OperatorOpt = None,
    table: TableOpt = None,
    db_schema: DbSchemaOpt = None,
    map: MapOpt = None,
    inflight_statuses: InflightOpt = None,
    statement_timeout: StatementTimeoutOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    connect_timeout: ConnectTimeoutOpt = None,
    env_file: EnvFileOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> int:
    """Health check for a scheduled CI job: thresholds, annotations, summaries, metrics, and a rescuer.

    Exit 1 when more than --max-stuck rows are stuck, the stuck rate exceeds
    --max-stuck-rate, more than --max-trigger-failures rows that are also over
    --max-trigger-failure-rate of those created in the last --trigger-window ended
    failed at the trigger (defaults 2, 10%, 1h: an incident pages, a stray refusal
    does not), or (with --probe) a warning finding exists. Under GitHub Actions
    it writes ::error:: / ::warning:: annotations and appends a Markdown summary to
    $GITHUB_STEP_SUMMARY; --junit writes JUnit XML; --format openmetrics prints metrics;
    --metrics-file writes them atomically after every run, whatever the exit code.

    An optional remediation policy rescues stuck rows like a job queue's rescuer:
    rows quiet past --retrigger-after (not yet past --fail-after) are triggered again
    at --url, at most --max-attempts times across runs (counted in the audit log;
    exhausted rows wait for the fail rule); rows quiet past --fail-after are failed
    with a reason naming the policy. Same safety as `retrigger` and `fail`:
    compare-and-set, batches, audit log, stop at the first 401/403, no secret over
    plain HTTP except to loopback. Without --remediate nothing changes: the policy
    reports what it would do. With --remediate it fires production work and is
    destructive (undo a fail run with `stuckgen undo RUN_ID`). Thresholds judge the
    rows found before remediation.

    \b
    Examples:
      stuckgen check --max-stuck 0 --junit stuckgen.xml
      stuckgen check --max-stuck 5 --max-stuck-rate 2% --probe --url https://app.example.com
      STUCKGEN_SLACK_WEBHOOK_URL=https://hooks.slack.com/... stuckgen check --heartbeat-url https://hc-ping.com/UUID
      stuckgen check --metrics-file /var/lib/node_exporter/textfile/stuckgen.prom
      stuckgen check --retrigger-after 5m --fail-after 30m --max-attempts 3 --url https://app.example.com --remediate

    Notifications (--slack-webhook, --pagerduty-routing-key, --notify-webhook) go
    out when an incident starts, gets worse and is resolved, not on every run; the
    state is kept in the audit log. --heartbeat-url pings URL/start, then URL (exit
    0) or URL/<exit code>, so a scheduler that stopped is noticed.

    Exit: 0 healthy, 1 a threshold crossed, a warning finding, rows the policy
    took left stuck or unremediated (always, without --remediate), or a
    notification not delivered, 2 configuration error, 3 database or deployment
    unreachable, 130 interrupted.
    """
    params = dict(locals())
    params["base_url"] = ",".join(url) if url else None
    settings = settings_from(params)
    started = time.time()
    run = _CheckRun(started=started)
    # Channels and the ping URL are checked before anything runs: a bad one is a usage error (exit 2).
    run.channels = _alerting.channels(settings, allow_insecure=allow_insecure)
    client = _alerting.http_client(settings) if run.channels or settings.heartbeat_url else None
    run.client = client
    beat = _alerting.heartbeat(settings, client, allow_insecure=allow_insecure) if client is not None else None
    if beat is not None:
        _report_ping(beat.start())
    try:
        run.code = _check(settings, run, max_stuck=max_stuck, max_stuck_rate=max_stuck_rate, probe=probe, repeat=repeat,
                          allow_insecure=allow_insecure, fmt=fmt, junit=junit, retrigger_after=retrigger_after,
                          fail_after=fail_after, max_attempts=max_attempts, remediate=remediate, wait=wait)
    except StuckgenError as exc:
        run.code = int(exc.exit_code)
        run.error = exc.message
        raise
    except typer.Exit as exc:
        run.code = int(exc.exit_code)
        raise
    except KeyboardInterrupt:
        run.code = ExitCode.INTERRUPTED
        run.error = "interrupted"
        raise
    finally:
        try:
            if settings.metrics_file:
                _write_metrics(settings.metrics_file, run)
        finally:
            if beat is not None:
                _report_ping(beat.finish(run.code, _ping_log(run, settings)))
            if client is not None:
                client.close()
    return run.code


def _report_ping(error: Optional[str]) -> None:
    if error:
        sys.stderr.write(f"stuckgen: {error}\n")


def _ping_log(run: "_CheckRun", settings: Any) -> str:
    """The end ping's body: the check's text lines (never a secret), or why it stopped."""
    from stuckgen.render.check import check_text_lines
    from stuckgen.secrets import scrub

    lines = list(check_text_lines(run.result)) if run.result is not None else []
    if run.error:
        lines.append(f"error: {run.error}")
    lines.append(f"exit {run.code}")
    return scrub("\n".join(lines), settings.secrets())


class _CheckRun:
    """What a check run has learned so far, for what must happen however it ends (the metrics file)."""

    def __init__(self, *, started: float) -> None:
        self.started = started
        self.result: Any = None
        self.code: int = ExitCode.INTERNAL  # unless the run says otherwise
        self.error: Optional[str] = None
        self.channels: list[Any] = []
        self.client: Any = None


def _write_metrics(path: str, run: "_CheckRun") -> None:
    """The metrics file after every run: a failed write is reported and never turns a red run green."""
    from stuckgen.metrics import check_families, exposition_lines, write_atomic
    from stuckgen.scan import CLASSES

    fams = check_families(run.result, checked_at=run.started, duration=time.time() - run.started, exit_code=run.code,
                          classes=CLASSES)
    try:
        write_atomic(path, exposition_lines(fams))
    except ConfigError as exc:
        sys.stderr.write(f"stuckgen: error: {exc.message}\n")
        if run.code == ExitCode.OK:
            raise


def _check(settings: Any, run: "_CheckRun", *, max_stuck: int, max_stuck_rate: Optional[str], probe: bool,
           repeat: Optional[int],
           allow_insecure: bool, fmt: Optional[str], junit: Optional[str], retrigger_after: Optional[str],
           fail_after: Optional[str], max_attempts: int, remediate: bool, wait: Optional[str]) -> int:
    from stuckgen.checks import evaluate, exit_code
    from stuckgen.render.check import (
        check_json_lines, check_text_lines, github_annotations, junit_xml_lines, openmetrics_lines, policy_summary,
    )
    from stuckgen.render.doctor import doctor_markdown_lines
    from stuckgen.settings import _float

    out = Output()
    fmt = fmt or "text"
    if fmt not in ("text", "json", "openmetrics"):
        raise ConfigError(f"--format: {fmt!r} is not one of text, json, openmetrics")
    rate_limit = _float("--max-stuck-rate")(max_stuck_rate) if max_stuck_rate is not None else None
    if not settings.database_url:
        raise ConfigError("no database configured: set DATABASE_URL or pass --database-url")
    policy, endpoint = _policy(settings, retrigger_after=retrigger_after, fail_after=fail_after,
                               max_attempts=max_attempts, act=remediate, allow_insecure=allow_insecure)
    wait_s = parse_duration(wait, option="--wait") if wait else 0.0
    if probe and not settings.base_url:
        # A probe that cannot run must not leave a check that says "healthy".
        raise ConfigError("--probe needs a deployment to probe", hint="pass --url URL or set STUCKGEN_BASE_URL")
    report = gather(settings, out=out, probe=probe, repeat=repeat, allow_insecure=allow_insecure)
    if not report.database.get("reachable"):
        raise UnreachableError(report.database.get("error") or "the database could not be reached")
    if report.database.get("table") is None:
        # No table read means no row counted: never a pass.
        raise SchemaError(report.database.get("error") or "the job table could not be read")
    rescued = None
    if policy is not None:
        if endpoint is not None and not settings.internal_secret:
            out.warn("INTERNAL_API_SECRET is not set: triggers go without the secret header and will likely get 401")
        rescued = run_policy(settings, policy, act=remediate, endpoint=endpoint, wait=wait_s,
                             allow_insecure=allow_insecure)
    result = evaluate(report, max_stuck=max_stuck, max_stuck_rate=rate_limit, policy=rescued,
                      max_trigger_failures=settings.max_trigger_failures,
                      max_trigger_failure_rate=settings.max_trigger_failure_rate)
    if run.channels:
        result = _notify(settings, run, result)
    run.result = result
    code = exit_code(result)
    if fmt == "openmetrics":
        out.lines(openmetrics_lines(result, checked_at=run.started, duration=time.time() - run.started,
                                    exit_code=code))
    else:
        from stuckgen.render.layout import wrap_lines

        out.lines(wrap_lines(check_text_lines(result), out.width) if fmt == "text" else check_json_lines(result))
    if rescued is not None and rescued.retrigger is not None and rescued.retrigger.stopped:
        out.note(f"stuckgen: {rescued.retrigger.stopped}")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(result):
            sys.stderr.write(line + "\n")
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        taken, proposed = policy_summary(result)
        append_private(Path(summary_path),
                       "\n".join(doctor_markdown_lines(report, actions=taken, proposed=proposed)) + "\n")
    if junit:
        write_private(Path(junit), junit_xml_lines(result))
    return code


def _notify(settings: Any, run: "_CheckRun", result: Any) -> Any:
    """Tell the channels what changed; a failed delivery becomes a failing `notify` outcome (never a pass)."""
    import dataclasses

    from stuckgen.checks import CheckOutcome
    from stuckgen.cli import _db
    from stuckgen.findings import Severity
    from stuckgen.notify import check_incidents
    from stuckgen.render.check import check_document

    incidents, observed = check_incidents(result)
    conn = _db.connect(settings)
    with conn:
        sent = _alerting.send(settings, conn, run.client, run.channels, mapping=result.report.mapping,
                              incidents=incidents, observed=observed, report=check_document(result))
    extra = [CheckOutcome(name="notify", passed=False, severity=Severity.WARNING, message="; ".join(sent.failed))] \
        if sent.failed else []
    if sent.deliveries and not sent.failed:
        extra.append(CheckOutcome(name="notify", passed=True, message=", ".join(
            f"{d.event.channel} {d.event.kind} {d.event.cause}" for d in sent.deliveries)))
    return dataclasses.replace(result, outcomes=result.outcomes + tuple(extra)) if extra else result


def _policy(settings: Any, *, retrigger_after: str | None, fail_after: str | None, max_attempts: int, act: bool,
            allow_insecure: bool) -> tuple[Any, str | None]:
    """The policy from the flags (None: no policy), and the trigger endpoint when it will be used."""
    from stuckgen import policy as rescuer
    from stuckgen.session import Session

    policy = rescuer.from_flags(
        retrigger_after=parse_duration(retrigger_after, option="--retrigger-after") if retrigger_after else None,
        fail_after=parse_duration(fail_after, option="--fail-after") if fail_after else None,
        max_attempts=max_attempts, act=act, retrigger_classes=tuple(settings.retrigger_classes))
    if policy is None or not (act and policy.retrigger_after):
        return policy, None
    # Checked before anything is read: a bad URL or plain HTTP to a remote host is a usage error.
    with Session(settings, Output(), allow_insecure=allow_insecure) as session:
        return policy, session.endpoint()


def run_policy(settings: Any, policy: Any, *, act: bool, endpoint: str | None, wait: float, allow_insecure: bool) -> Any:
    """Open the database (and, acting on retriggers, an HTTP client) and apply the policy."""
    from stuckgen import policy as rescuer
    from stuckgen.session import Session

    with Session(settings, Output(), allow_insecure=allow_insecure) as session, session.interruptible():
        return rescuer.run(session, policy, act=act, endpoint=endpoint, wait=wait)
