"""`stuckgen retrigger`, `stuckgen fail`, `stuckgen undo` and `stuckgen history`.

Dry run unless --yes; on a terminal without --yes, one question showing the
count. SIGTERM behaves like Ctrl-C (stuckgen.signals), so the core
reports how far it got and every batch stays all or nothing.
"""


import sys
from typing import Annotated, Any, Optional

import typer

from stuckgen.cli._app import (
    AuditFileOpt, AuditTableOpt, ConfigOpt, ConnectTimeoutOpt, DatabaseUrlOpt, DbSchemaOpt, DebugOpt, EnvFileOpt,
    InflightOpt, LockTimeoutOpt, MapOpt, OperatorOpt, Output, QueueLibraryOpt, SecretOpt, StatementTimeoutOpt, TableOpt, ThresholdOpt,
    app, default_format, env_help, handle_errors, settings_from,
)
from stuckgen.errors import ConfigError, ExitCode

FORMATS = ("table", "json")

IdsArg = Annotated[Optional[list[str]], typer.Argument(
    metavar="[ID]...", show_default=False, help="Row ids (validated against the id column's type first).")]
AllStuckOpt = Annotated[bool, typer.Option("--all-stuck", help="Select every stuck row matching the filters.")]
OlderThanOpt = Annotated[Optional[str], typer.Option(
    "--older-than", metavar="DURATION", show_default=False,
    help="Only rows quiet for at least this long (e.g. 30m); re-checked by the database clock when acting.")]
ClassOpt = Annotated[Optional[list[str]], typer.Option(
    "--class", "-c", metavar="CLASS", show_default=False, help="Only rows of this stuck class (repeatable).")]
SinceOpt = Annotated[Optional[str], typer.Option(
    "--since", metavar="DURATION", show_default=False,
    help="Only rows created within this window. Default: any age.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Act. Without it: a dry run (or one question on a terminal).")]
FormatOpt = Annotated[Optional[str], typer.Option(
    "--format", "-f", show_default=False, metavar="FORMAT", help="table | json. Default: table on a terminal, json in a pipe.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, metavar="N", help="Rows per transaction.")]


def _sigterm_interrupts() -> Any:
    """SIGTERM behaves like Ctrl-C for the duration of a command (stuckgen.signals)."""
    from stuckgen.signals import sigterm_interrupts

    return sigterm_interrupts()


def _confirm(out: Output, yes: bool, question: str, *, settings: Any = None, table: str | None = None,
             plan: Any = None) -> bool:
    """--yes acts; a terminal gets one question; anything else is a dry run.

    Before the question: the rows (``plan``, a dry-run result) and where the write goes
    (database, host, table; never the password), and whether that came from ./.env.
    """
    if yes:
        return True
    if _asks(out):
        if plan is not None and plan.outcomes:
            from stuckgen.render.remediate import result_table

            tbl, hidden = result_table(plan, max_rows=50, width=out.width)
            out.err.print(tbl)
            if hidden:
                out.err.print(f"... and {hidden} more", markup=False)
        for line in target_lines(settings, table):
            out.note(line)
        return typer.confirm(question, default=False, err=True)
    return False


def _confirmer(out: Output, yes: bool, settings: Any) -> Any:
    """The core's confirm hook: shows the dry run and the target, then asks (see ``_confirm``)."""
    return lambda question, preview: _confirm(out, yes, question, settings=settings, table=preview.table, plan=preview)


def _pick(ids: Optional[list[str]], all_stuck: bool, cls: Optional[list[str]], older_than: Optional[str]) -> Any:
    """The rows a remediation command names, from its selection options."""
    from stuckgen.durations import parse_duration
    from stuckgen.remediate.runner import Pick

    return Pick(ids=tuple(ids or ()), all_stuck=all_stuck, classes=tuple(cls or ()),
                older_than=parse_duration(older_than, option="--older-than") if older_than else None)


def _asks(out: Output) -> bool:
    """Whether a command without --yes asks (a terminal on both ends) instead of a silent dry run."""
    return sys.stdin.isatty() and out.err.is_terminal


def target_lines(settings: Any, table: str | None) -> list[str]:
    """Where a write would go, and from which configuration (never a password)."""
    from pathlib import Path

    from stuckgen.db import describe_target

    if settings is None or not settings.database_url:
        return []
    lines = [f"target: {describe_target(settings.database_url)}" + (f", table {table}" if table else "")]
    src = settings.sources.get("database_url", "")
    if src.startswith(".env ") and settings.env_file and Path(settings.env_file).resolve() == (Path.cwd() / ".env").resolve():
        lines.append(f"note: the database URL comes from ./.env ({src.removeprefix('.env ')}) in "
                     f"{Path.cwd()}: run from an app's repository, that is the app's own configuration, "
                     "often production's")
    elif src:
        lines.append(f"(database URL from {src})")
    return lines


def _render(out: Output, fmt: str, result: Any, *, rows: bool = True) -> None:
    """The result; ``rows=False`` when the rows were just shown above a question."""
    from stuckgen.render.remediate import result_json_lines, result_table, summary_lines

    if fmt == "json":
        out.lines(result_json_lines(result))
        for line in summary_lines(result):
            _note(out, line)
        return
    if result.outcomes and rows:
        from stuckgen.render import TERMINAL_ROWS

        table, hidden = result_table(result, max_rows=TERMINAL_ROWS if out.is_tty else None, width=out.width)
        out.out.print(table)
        if table.left_out:
            out.out.print(f"({', '.join(table.left_out)} left out at {out.width} columns: "
                          "widen the terminal, or use --format json)", markup=False)
        if hidden:
            out.out.print(f"{hidden:,} more; use --format json", markup=False)
        out.out.print()
    from stuckgen.render.layout import wrap_lines

    # Wrapped between words, never inside a command to copy (`stuckgen undo RUN_ID` stays on one line).
    for line in wrap_lines(summary_lines(result), out.width):
        out.out.print(line, markup=False, highlight=False, soft_wrap=True)


def _note(out: Output, line: str) -> None:
    """A message on stderr, never wrapped (lines are greppable)."""
    out.err.print(line, markup=False, highlight=False, soft_wrap=True)


def _queue_mode(settings: Any) -> tuple[str, ...]:
    from stuckgen.queues import libraries_in_force

    return libraries_in_force(settings)


def _jobs(settings: Any, out: Output, action: str, ids: Optional[list[str]], all_stuck: bool,
          cls: Optional[list[str]], older_than: Optional[str], **kw: Any) -> int:
    """fail / retrigger with queue_library: the library's jobs (stuckgen.commands.queues)."""
    from stuckgen.commands.queues import run_remediate_jobs
    from stuckgen.session import Session

    pick = _pick(ids, all_stuck, cls, older_than)
    with Session(settings, out) as session:
        return run_remediate_jobs(session, out, _queue_mode(settings), action=action, ids=pick.ids,
                                  all_stuck=all_stuck, classes=pick.classes, older_than=pick.older_than, **kw)


def _finish(result: Any) -> int:
    if result.interrupted:
        raise typer.Exit(ExitCode.INTERRUPTED)
    return int(result.exit_code)


def _format(fmt: str | None, out: Output) -> str:
    fmt = default_format(fmt, tty=out.is_tty)
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def remediation_scan_options(settings: Any, *, classes: tuple[str, ...] = (), older_than: float | None = None):
    """The scan options remediation selects with: --since only when given as a flag (its 24h
    default would hide the oldest stuck rows, the ones most in need of remediation)."""
    from dataclasses import replace

    from stuckgen.cli import _db

    since = settings.since if settings.sources.get("since", "").startswith("flag") else None
    return replace(_db.scan_options(settings, classes=classes, older_than=older_than), since=since)


def _selection(conn: Any, settings: Any, mapping: Any, *, ids: list[str] | None, all_stuck: bool,
               older_than: str | None, classes: list[str] | None):
    from stuckgen.cli import _db
    from stuckgen.durations import parse_duration
    from stuckgen.remediate import select_rows

    opts = remediation_scan_options(
        settings, classes=tuple(classes or ()),
        older_than=parse_duration(older_than, option="--older-than") if older_than else None)
    from stuckgen.progress import Ticker

    with _db.read_tx(conn, settings), Ticker("selecting stuck rows"):
        selection = select_rows(conn, mapping, opts, ids=tuple(ids or ()), all_stuck=all_stuck,
                                rules=_db.rules(settings))
    return selection, opts


def audit_for(settings: Any, mapping: Any):
    """The configured audit log (file or table) for this mapping's schema."""
    from stuckgen.audit import audit_log

    return audit_log(audit_file=settings.audit_file, audit_table=settings.audit_table,
                     default_schema=mapping.db_schema)


def prepare_audit(conn: Any, settings: Any, audit: Any) -> None:
    """Create the audit table or file: only ever before a real run."""
    from stuckgen import db

    with db.transaction(conn, read_only=False, statement_timeout=settings.statement_timeout,
                        lock_timeout=settings.lock_timeout):
        audit.prepare(conn)


def retrigger_endpoint(settings: Any, *, allow_insecure: bool) -> str:
    """The one process-route URL triggers go to; refuses the secret over plain HTTP to a remote host."""
    from stuckgen import http

    urls = settings.base_url
    if not urls:
        raise ConfigError("no deployment URL: pass --url or set STUCKGEN_BASE_URL")
    if len(urls) > 1:
        raise ConfigError(f"retrigger sends to one deployment; got {len(urls)} URLs ({', '.join(urls)})")
    endpoint = urls[0].rstrip("/") + "/" + settings.route.lstrip("/")
    http.check_transport(endpoint, sends_credentials=bool(settings.internal_secret or settings.bypass_secret),
                              allow_insecure=allow_insecure)
    return endpoint


def retrigger_options(settings: Any, *, endpoint: str, scan: Any, allow_insecure: bool, max_attempts: int,
                      wait: float = 0.0, concurrency: int = 4, tries: int = 3, body_template: str | None = None,
                      idempotency_header: str | None = None):
    """RetriggerOptions from the settings (secret, headers, timeouts) and the command's flags."""
    from stuckgen import remediate

    header = remediate.DEFAULT_IDEMPOTENCY_HEADER if idempotency_header is None else idempotency_header
    return remediate.RetriggerOptions(
        url=endpoint, scan=scan, secret=settings.internal_secret, secret_header=settings.secret_header,
        bypass_secret=settings.bypass_secret, body_template=body_template or remediate.DEFAULT_BODY_TEMPLATE,
        idempotency_header=None if header.strip().lower() in ("", "none") else header,
        concurrency=concurrency, max_attempts=max_attempts, tries=tries, wait=wait,
        allow_insecure=allow_insecure, statement_timeout=settings.statement_timeout,
        lock_timeout=settings.lock_timeout)


def fail_options(settings: Any, *, scan: Any, reason: str | None = None, batch_size: int = 2000):
    """FailOptions from the settings (failed status, timeouts) and the command's flags."""
    from stuckgen import remediate

    return remediate.FailOptions(scan=scan, failed_status=settings.failed_status, reason=reason,
                                 batch_size=batch_size, statement_timeout=settings.statement_timeout,
                                 lock_timeout=settings.lock_timeout)


def http_client(settings: Any, *, concurrency: int):
    """The HTTP client triggers go through: never follows redirects (the secret would follow them)."""
    from stuckgen import http

    return http.client(timeout=settings.http_timeout, concurrency=concurrency)


@app.command()
@handle_errors
def fail(
    ids: IdsArg = None,
    all_stuck: AllStuckOpt = False,
    threshold: ThresholdOpt = None,
    older_than: OlderThanOpt = None,
    cls: ClassOpt = None,
    since: SinceOpt = None,
    reason: Annotated[Optional[str], typer.Option(
        "--reason", show_default=False, metavar="TEXT",
        help="Error message written to the row. Default: one naming stuckgen, the class and the quiet time.")] = None,
    failed_status: Annotated[Optional[str], typer.Option(
        "--failed-status", show_default=False, metavar="STATUS", help=env_help("failed_status", "Status to set. Default failed."))] = None,
    batch_size: BatchSizeOpt = 2000,
    yes: YesOpt = False,
    fmt: FormatOpt = None,
    audit_table: AuditTableOpt = None,
    audit_file: AuditFileOpt = None,
    operator: OperatorOpt = None,
    queue_library: QueueLibraryOpt = None,
    database_url: DatabaseUrlOpt = None,
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
    """Mark stuck rows as failed, with an error saying why. Destructive (undo with `stuckgen undo RUN_ID`).

    Sets the failed status, the error field and the updated time (where the schema
    has them) in batches, one transaction each, locking with FOR UPDATE SKIP LOCKED
    and re-checking by the database clock that each row is still stuck: a row a
    worker completed, touched or holds locked meanwhile is skipped and reported,
    never overwritten. Every change is audited with the previous values.
    Without --yes it is a dry run.

    Example:

        stuckgen fail --all-stuck --older-than 30m --yes

        stuckgen fail 0b6f6a52-2a2c-4d1e-9a57-3f1c2d7e8a90 --reason "provider outage" --yes

    Exit: 0 every selected row failed, 1 some were skipped, 2 usage error, 3 database
    unreachable, 130 interrupted (batches done stay done).
    """
    from stuckgen.remediate import runner
    from stuckgen.session import Session

    settings = settings_from(locals())
    out = Output()
    fmt = _format(fmt, out)
    if _queue_mode(settings):  # graphile-worker's own admin functions; pg-boss refused
        return _jobs(settings, out, "fail", ids, all_stuck, cls, older_than, reason=reason, yes=yes, fmt=fmt)
    with Session(settings, out) as session, session.interruptible():
        result = runner.fail(session, _pick(ids, all_stuck, cls, older_than), reason=reason, batch_size=batch_size,
                             yes=yes, confirm=_confirmer(out, yes, settings), progress=out.rows_progress)
    _render(out, fmt, result, rows=not (result.dry_run and result.outcomes and not yes and _asks(out)))
    return _finish(result)


@app.command()
@handle_errors
def retrigger(
    ids: IdsArg = None,
    all_stuck: AllStuckOpt = False,
    threshold: ThresholdOpt = None,
    older_than: OlderThanOpt = None,
    cls: ClassOpt = None,
    since: SinceOpt = None,
    base_url: Annotated[Optional[str], typer.Option(
        "--url", "-u", show_default=False, metavar="URL",
        help=env_help("base_url", "Deployment base URL, e.g. https://app.example.com."))] = None,
    route: Annotated[Optional[str], typer.Option(
        "--route", show_default=False, metavar="PATH", help=env_help("route", "Path of the process route."))] = None,
    secret_header: Annotated[Optional[str], typer.Option(
        "--secret-header", show_default=False, metavar="HEADER",
        help=env_help("secret_header", "Header carrying the internal secret (--secret, INTERNAL_API_SECRET)."))] = None,
    internal_secret: SecretOpt = None,
    body_template: Annotated[str, typer.Option(
        "--body-template", metavar="TEMPLATE", help="JSON body; {id} is replaced by the row id.")] = '{"generationId": "{id}"}',
    idempotency_header: Annotated[str, typer.Option(
        "--idempotency-header", metavar="HEADER", help="Header carrying stuckgen-<id>-<attempt>; 'none' to send none.")] = "Idempotency-Key",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, metavar="N", help="Triggers in flight at once.")] = 4,
    max_attempts: Annotated[int, typer.Option(
        "--max-attempts", min=1, metavar="N", help="Triggers per row across runs (from the audit log); then 'exhausted'.")] = 3,
    tries: Annotated[int, typer.Option(
        "--tries", min=1, metavar="N", help="HTTP tries per trigger on timeouts, 429 and 5xx (backoff with jitter).")] = 3,
    wait: Annotated[Optional[str], typer.Option(
        "--wait", metavar="DURATION", show_default=False,
        help="After triggering, wait up to this long for the rows to leave processing, then verify.")] = None,
    http_timeout: Annotated[Optional[str], typer.Option(
        "--http-timeout", metavar="DURATION", show_default=False,
        help=env_help("http_timeout", "Give up on one HTTP answer after this. Default 10s."))] = None,
    allow_insecure: Annotated[bool, typer.Option(
        "--allow-insecure", help="Allow sending the secret over plain HTTP to a non-loopback host.")] = False,
    via: Annotated[str, typer.Option(
        "--via", metavar="ROUTE",
        help="process (the process route) or sync: the app's recovery route for provider rows, "
             "POST /api/generations/{id}/sync, as the rows' owner (session cookie); it asks the provider "
             "and settles the row.")] = "process",
    yes: YesOpt = False,
    fmt: FormatOpt = None,
    audit_table: AuditTableOpt = None,
    audit_file: AuditFileOpt = None,
    operator: OperatorOpt = None,
    queue_library: QueueLibraryOpt = None,
    database_url: DatabaseUrlOpt = None,
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
    """Call the process route again for stuck rows, the way the app's server does. Fires production work.

    Sends POST {url}{route} with {"generationId": ID}, the internal secret header
    (INTERNAL_API_SECRET, never printed) and an Idempotency-Key, with bounded
    concurrency and retries (timeouts, 429, 5xx; Retry-After honoured). Each row is
    re-read just before sending and skipped if it moved on. The first 401/403 stops
    the run before any further row is sent. A row triggered --max-attempts times is
    reported as exhausted (use `stuckgen fail`). Redirects are never followed. Without
    --yes it is a dry run.

    --all-stuck takes only classes a new trigger cannot harm (never-started,
    trigger-failed, queued-not-drained, timed-out) and lists what it left out and why; other
    classes need --class CLASS and come with a warning of what the app will do
    (outputs-not-finalized and stalled: the process route runs them again and the
    provider may bill again; awaiting-webhook: skipped, settle those with the app's
    sync route POST /api/generations/{id}/sync). With --wait, only real progress
    counts: a new worker step in the log, or a finished status; a rewritten
    heartbeat alone does not.

    Example:

        stuckgen retrigger --all-stuck --class never-started --url https://app.example.com --wait 60s --yes

        stuckgen retrigger --via sync --all-stuck --class awaiting-webhook --url https://app.example.com --yes

    Exit: 0 every row accepted (and, with --wait, moved on), 1 some were not, 2 usage
    error, 3 database or deployment unreachable, 130 interrupted.
    """
    from stuckgen.durations import parse_duration
    from stuckgen.remediate import runner
    from stuckgen.session import Session

    settings = settings_from(locals())
    out = Output()
    fmt = _format(fmt, out)
    if _queue_mode(settings):  # graphile-worker's own admin functions; pg-boss refused
        return _jobs(settings, out, "retry", ids, all_stuck, cls, older_than, yes=yes, fmt=fmt)
    if via != "process":
        from stuckgen.cli.reconcile import retrigger_via_sync

        return retrigger_via_sync(out, fmt, settings, via=via, ids=ids, all_stuck=all_stuck, older_than=older_than,
                                  classes=cls, concurrency=concurrency, tries=tries, allow_insecure=allow_insecure,
                                  yes=yes)
    trigger = runner.Trigger(max_attempts=max_attempts, wait=parse_duration(wait, option="--wait") if wait else 0.0,
                             concurrency=concurrency, tries=tries, body_template=body_template,
                             idempotency_header=idempotency_header)
    with Session(settings, out, allow_insecure=allow_insecure) as session, session.interruptible():
        result = runner.retrigger(session, _pick(ids, all_stuck, cls, older_than), trigger, yes=yes,
                                  confirm=_confirmer(out, yes, settings), progress=out.rows_progress)
    _render(out, fmt, result, rows=not (result.dry_run and result.outcomes and not yes and _asks(out)))
    return _finish(result)


@app.command()
@handle_errors
def undo(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The fail run to undo (see `stuckgen history`).")],
    batch_size: BatchSizeOpt = 2000,
    yes: YesOpt = False,
    fmt: FormatOpt = None,
    audit_table: AuditTableOpt = None,
    audit_file: AuditFileOpt = None,
    operator: OperatorOpt = None,
    database_url: DatabaseUrlOpt = None,
    table: TableOpt = None,
    db_schema: DbSchemaOpt = None,
    map: MapOpt = None,
    statement_timeout: StatementTimeoutOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    connect_timeout: ConnectTimeoutOpt = None,
    env_file: EnvFileOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> int:
    """Restore the rows a `fail` run changed to their previous values. Destructive (it writes them back).

    Compare-and-set: a row changed since the run (a worker finished it, someone
    edited it) is skipped and reported, never overwritten. The undo itself is
    audited. Without --yes it is a dry run that says which rows would be restored.

    Example:

        stuckgen undo 20261128T103540Z-3fa2c1 --yes

    Exit: 0 every row restored, 1 some were skipped, 2 no such fail run, 3 database
    unreachable, 130 interrupted.
    """
    from stuckgen import remediate
    from stuckgen.audit import new_run_id, operator_name
    from stuckgen.cli import _db

    settings = settings_from(locals())
    out = Output()
    fmt = _format(fmt, out)
    conn = _db.connect(settings)
    with conn, _sigterm_interrupts():
        with _db.read_tx(conn, settings):
            mapping = _db.resolve_mapping(conn, settings)
        audit = audit_for(settings, mapping)
        op = operator_name(settings.operator)
        common = dict(audit=audit, new_run_id=new_run_id(), operator=op)
        base = dict(batch_size=batch_size, statement_timeout=settings.statement_timeout,
                    lock_timeout=settings.lock_timeout)
        acting = yes
        if not yes and _asks(out):
            preview = remediate.undo(conn, mapping, run_id, options=remediate.UndoOptions(dry_run=True, **base), **common)
            n = sum(1 for o in preview.outcomes if o.outcome == "would-restore")
            acting = n > 0 and _confirm(out, False, f"Restore {n} row(s) of {remediate.table_name(mapping)} changed "
                                                     f"by run {run_id}?", settings=settings,
                                        table=remediate.table_name(mapping), plan=preview)
            if not acting:
                _render(out, fmt, preview, rows=n == 0)
                return int(preview.exit_code)
        if acting:
            prepare_audit(conn, settings, audit)
        result = remediate.undo(conn, mapping, run_id, options=remediate.UndoOptions(dry_run=not acting, **base),
                                **common)
        _render(out, fmt, result)
    return _finish(result)


@app.command()
@handle_errors
def history(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, metavar="N", help="Most recent runs to list.")] = 20,
    fmt: FormatOpt = None,
    audit_table: AuditTableOpt = None,
    audit_file: AuditFileOpt = None,
    database_url: DatabaseUrlOpt = None,
    table: TableOpt = None,
    db_schema: DbSchemaOpt = None,
    statement_timeout: StatementTimeoutOpt = None,
    connect_timeout: ConnectTimeoutOpt = None,
    env_file: EnvFileOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> int:
    """List recent remediation runs from the audit log (read only).

    One line per run: id, action, operator, table, start, rows and outcomes.

    Example:

        stuckgen history --limit 5

        stuckgen history --audit-file /var/log/stuckgen.jsonl --format json

    Exit: 0 listed (even none), 2 usage error, 3 database unreachable.
    """
    from stuckgen.audit import FileAudit, audit_log
    from stuckgen.cli import _db
    from stuckgen.render.remediate import history_json_lines, history_table

    settings = settings_from(locals())
    out = Output()
    fmt = _format(fmt, out)
    if settings.audit_file:
        audit: Any = FileAudit(settings.audit_file)
        runs = audit.runs(None, limit=limit)
    else:
        conn = _db.connect(settings)
        with conn:
            with _db.read_tx(conn, settings):
                schema = settings.db_schema or conn.execute("SELECT current_schema()").fetchone()[0]
                audit = audit_log(audit_file=None, audit_table=settings.audit_table, default_schema=schema)
                runs = audit.runs(conn, limit=limit)
    if fmt == "json":
        out.lines(history_json_lines(runs, audit=audit.where))
    elif runs:
        out.out.print(history_table(runs))
    else:
        _note(out, f"no runs in the audit log ({audit.where})")
    return ExitCode.OK
