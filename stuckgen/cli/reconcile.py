"""`stuckgen reconcile`: ask the provider how each stuck provider row really ended."""


from typing import Annotated, Any, Optional

import typer

from stuckgen.cli._app import (
    AuditFileOpt, AuditTableOpt, OperatorOpt, ConfigOpt, ConnectTimeoutOpt, DatabaseUrlOpt, DbSchemaOpt, DebugOpt, EnvFileOpt, InflightOpt, MapOpt, Output,
    StatementTimeoutOpt, TableOpt, ThresholdOpt, app, default_format, env_help, handle_errors, settings_from,
)
from stuckgen.cli.remediate import ClassOpt, IdsArg, OlderThanOpt, SinceOpt
from stuckgen.errors import ConfigError, ExitCode

FORMATS = ("table", "json", "csv", "markdown")

ProviderUrlOpt = Annotated[Optional[str], typer.Option(
    "--provider-url", show_default=False, metavar="URL",
    help=env_help("replicate_api_url", "The provider's API base. Default https://api.replicate.com/v1."))]


def provider_options(settings: Any, *, concurrency: int = 4, tries: int = 3, allow_insecure: bool = False):
    """ProviderOptions from the settings; ConfigError without a token (it is never printed)."""
    from stuckgen.replicate import ProviderOptions

    token = settings.replicate_api_token
    if not token:
        raise ConfigError("no provider token: set REPLICATE_API_TOKEN (the app's own variable) to ask the provider",
                          hint="it is read from the environment or .env, never from a flag, and never printed")
    url = str(settings.replicate_api_url).rstrip("/")
    if "://" not in url:
        raise ConfigError(f"--provider-url: {url!r} has no scheme (write https://...)")
    return ProviderOptions(api_url=url, token=token, timeout=settings.http_timeout, tries=tries,
                           concurrency=concurrency, allow_insecure=allow_insecure)


def provider_client(settings: Any, *, concurrency: int):
    """The HTTP client for the provider: no redirects (the token would follow), no proxy variables."""
    from stuckgen import http

    return http.client(timeout=settings.http_timeout, concurrency=concurrency)


def render(out: Output, fmt: str, result: Any) -> None:
    from stuckgen.render.reconcile import (
        reconcile_csv_lines, reconcile_json_lines, reconcile_markdown_lines, reconcile_table, summary_lines,
    )

    if fmt == "json":
        out.lines(reconcile_json_lines(result))
    elif fmt == "csv":
        out.lines(reconcile_csv_lines(result))
    elif fmt == "markdown":
        out.lines(reconcile_markdown_lines(result))
        return
    else:
        if result.verdicts:
            table, hidden = reconcile_table(result, max_rows=50 if out.is_tty else None)
            out.out.print(table)
            if hidden:
                out.out.print(f"... and {hidden} more (see --format json)", markup=False)
            out.out.print()
        for line in summary_lines(result):
            out.out.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    for line in summary_lines(result):
        out.note(line)


@app.command()
@handle_errors
def reconcile(
    ids: IdsArg = None,
    threshold: ThresholdOpt = None,
    older_than: OlderThanOpt = None,
    cls: ClassOpt = None,
    since: SinceOpt = None,
    replicate_api_url: ProviderUrlOpt = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, metavar="N",
                                             help="Provider requests in flight at once.")] = 4,
    tries: Annotated[int, typer.Option(
        "--tries", min=1, metavar="N", help="HTTP tries per prediction on timeouts, 429 and 5xx (Retry-After honoured).")] = 3,
    http_timeout: Annotated[Optional[str], typer.Option(
        "--http-timeout", metavar="DURATION", show_default=False,
        help=env_help("http_timeout", "Give up on one HTTP answer after this. Default 10s."))] = None,
    allow_insecure: Annotated[bool, typer.Option(
        "--allow-insecure", help="Allow sending the token over plain HTTP to a non-loopback host.")] = False,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Settle the rows the provider finished (succeeded, failed, canceled) through the app "
                        "(dry run unless --yes).")] = False,
    via: Annotated[str, typer.Option(
        "--via", metavar="ROUTE",
        help="How --apply settles a row: sync (the app's POST /api/generations/{id}/sync, as the rows' owner) "
             "or webhook (replay the provider's callback to /api/webhooks/replicate).")] = "sync",
    webhook_signature: Annotated[str, typer.Option(
        "--webhook-signature", metavar="SCHEME",
        help="--via webhook: sign as the provider does (standard: Standard Webhooks) or as the app's route "
             "verifies (app: t=<ts>,v1=<hex>). The key is REPLICATE_WEBHOOK_SECRET.")] = "standard",
    base_url: Annotated[Optional[str], typer.Option(
        "--url", "-u", show_default=False, metavar="URL",
        help=env_help("base_url", "--apply: the deployment's base URL, e.g. https://app.example.com."))] = None,
    cookie_file: Annotated[Optional[str], typer.Option(
        "--cookie-file", show_default=False, metavar="PATH",
        help=env_help("cookie_file", "--via sync: the rows' owner's session cookie (cookies.txt or a Cookie header)."))] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --apply: act. Without it: a dry run.")] = False,
    audit_table: AuditTableOpt = None,
    audit_file: AuditFileOpt = None,
    operator: OperatorOpt = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", "-f", show_default=False, metavar="FORMAT",
        help="table | json | csv | markdown. Default: table on a terminal, json in a pipe.")] = None,
    database_url: DatabaseUrlOpt = None,
    table: TableOpt = None,
    db_schema: DbSchemaOpt = None,
    map: MapOpt = None,
    inflight_statuses: InflightOpt = None,
    statement_timeout: StatementTimeoutOpt = None,
    connect_timeout: ConnectTimeoutOpt = None,
    env_file: EnvFileOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> int:
    """Ask the model provider how each stuck provider row really ended. Read-only.

    For every stuck row carrying a provider prediction id (parameters.replicatePredictionId),
    GET {provider-url}/predictions/{id} with REPLICATE_API_TOKEN (never printed), with
    bounded concurrency, timeouts and retries (429 and 5xx, Retry-After honoured), and
    give one verdict per row: provider-succeeded-callback-lost, provider-failed-callback-lost,
    provider-canceled, provider-still-running, provider-unknown-prediction,
    provider-unreachable. The first answer refusing the token stops the run.

    With --apply, the rows the provider finished are settled through the app itself,
    never by writing outputs: --via sync calls the app's recovery route as the rows'
    owner (session cookie), --via webhook replays the provider's callback signed with
    REPLICATE_WEBHOOK_SECRET. A dry run unless --yes; each row is re-read just before
    it is sent and skipped if it moved on; every send is audited; afterwards each row
    is re-read and what changed is reported.

    Example:

        REPLICATE_API_TOKEN=r8_... stuckgen reconcile --class awaiting-webhook

        stuckgen reconcile --apply --via webhook --webhook-signature app --url https://app.example.com --yes

        stuckgen reconcile --format json | jq -r '.rows[] | select(.verdict == "provider-succeeded-callback-lost") | .id'

    Exit: 0 every provider row is still running there (or none is stuck; with --apply:
    every finished row was settled), 1 some row needs action (or was not settled), 2
    usage or configuration error (no token), 3 the database, the provider or the
    deployment could not be reached (nothing answered), 130 interrupted.
    """
    from stuckgen import reconcile as core
    from stuckgen.cli import _db
    from stuckgen.cli.remediate import remediation_scan_options
    from stuckgen.durations import parse_duration

    settings = settings_from(locals())
    out = Output()
    fmt = default_format(fmt, tty=out.is_tty)
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    options = provider_options(settings, concurrency=concurrency, tries=tries, allow_insecure=allow_insecure)
    opts = remediation_scan_options(settings, classes=tuple(cls or ()),
                                    older_than=parse_duration(older_than, option="--older-than") if older_than else None)
    settle_opts = settle_options(settings, scan=opts, via=via, signature=webhook_signature, concurrency=concurrency,
                                 tries=tries, allow_insecure=allow_insecure) if apply else None
    conn = _db.connect(settings)
    with conn:
        with _db.read_tx(conn, settings):
            mapping = _db.resolve_mapping(conn, settings)
            rows, without, rejected = core.provider_rows(conn, mapping, opts, ids=tuple(ids or ()),
                                                         rules=_db.rules(settings))
            now = conn.execute("SELECT now()").fetchone()[0]
        for r in rejected:
            out.note(f"{r.id}: {r.reason}")
        with provider_client(settings, concurrency=concurrency) as client:
            result = core.reconcile_rows(client, rows, options=options, now=now, stuck_rows=len(rows) + without,
                                         without_prediction=without)
            if settle_opts is None:
                render(out, fmt, result)
                if result.interrupted:
                    raise typer.Exit(int(ExitCode.INTERRUPTED))
                return int(result.exit_code)
            return _apply(out, fmt, conn, settings, mapping, rows, result, settle_opts, client, options, yes=yes)


def settle_options(settings: Any, *, scan: Any, via: str, signature: str, concurrency: int, tries: int,
                   allow_insecure: bool):
    """SettleOptions from the settings: the deployment URL, and the credentials the route takes."""
    from stuckgen import settle

    urls = settings.base_url
    if not urls:
        raise ConfigError("--apply settles rows through the app: pass --url or set STUCKGEN_BASE_URL")
    if len(urls) > 1:
        raise ConfigError(f"--apply sends to one deployment; got {len(urls)} URLs ({', '.join(urls)})")
    access_token = None
    if via == "sync":
        access_token = _access_token(settings)
    options = settle.SettleOptions(
        url=urls[0], scan=scan, via=via, access_token=access_token,
        webhook_secret=settings.replicate_webhook_secret, signature=signature, bypass_secret=settings.bypass_secret,
        concurrency=concurrency, tries=tries, allow_insecure=allow_insecure,
        statement_timeout=settings.statement_timeout, lock_timeout=settings.lock_timeout)
    settle.check_options(options)
    return options


def _access_token(settings: Any) -> str | None:
    """The Supabase access token inside the configured session cookie (the sync route's Bearer)."""
    import time

    from stuckgen.cookies import load_cookie_file, parse_cookies, session_token, split_header

    if settings.cookie:
        info = parse_cookies(settings.cookie, now=time.time(), cookie_name=settings.cookie_name)
    elif settings.cookie_file:
        info = load_cookie_file(settings.cookie_file, now=time.time(), cookie_name=settings.cookie_name)
    else:
        return None
    if info.expired:
        raise ConfigError("the session cookie has expired: the sync route would answer 401",
                          hint="sign in again and export a fresh cookie")
    _, token, _ = (session_token(split_header(info.header), cookie_name=settings.cookie_name) if info.header
                   else (None, None, []))
    if not token:
        raise ConfigError("the session cookie holds no Supabase access token (sb-<ref>-auth-token)")
    return token


def _apply(out: Output, fmt: str, conn: Any, settings: Any, mapping: Any, rows: Any, result: Any, options: Any,
           provider_http: Any, provider: Any, *, yes: bool) -> int:
    from stuckgen import settle
    from stuckgen.audit import new_run_id, operator_name
    from stuckgen.cli.remediate import _confirm, audit_for, http_client, prepare_audit
    from stuckgen.render.reconcile import summary_lines as reconcile_summary

    for line in reconcile_summary(result):
        out.note(line)
    if result.nothing_answered:
        return int(ExitCode.UNREACHABLE)
    audit = audit_for(settings, mapping)
    op = operator_name(settings.operator)
    take, _ = settle.settleable(result.verdicts)
    if take and _confirm(out, yes, f"Settle {len(take)} row(s) through the app at {options.url}?"):
        prepare_audit(conn, settings, audit)
        with http_client(settings, concurrency=options.concurrency) as client:
            outcome = settle.settle_rows(client, conn, mapping, rows, result.verdicts, options=options,
                                         provider_client=provider_http, provider=provider, audit=audit,
                                         run_id=new_run_id(), operator=op)
    else:
        outcome = settle.plan(result.verdicts, options=options, audit=audit.where, operator=op)
    render_settle(out, fmt, outcome)
    if outcome.interrupted:
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    return int(outcome.exit_code)


def render_settle(out: Output, fmt: str, result: Any) -> None:
    import json

    from stuckgen.settle import summary_lines

    if fmt in ("json", "csv", "markdown"):
        # One document whatever the format asked for reconcile: the settle run is not a table of verdicts.
        out.lines([json.dumps(result.as_dict(), indent=2)])
        for line in summary_lines(result):
            out.note(line)
        return
    from rich.markup import escape
    from rich.table import Table

    if result.outcomes:
        t = Table(show_edge=False, header_style="bold", pad_edge=False, show_lines=True)
        t.add_column("row / outcome", no_wrap=True, min_width=36)
        t.add_column("what the app did", overflow="fold")
        for o in result.outcomes:
            style = "green" if o.ok else "red"
            t.add_row(f"{o.id}\n[{style}]{o.outcome}[/]", escape(f"{o.verdict}; {o.change}; {o.reason}"))
        out.out.print(t)
        out.out.print()
    for line in summary_lines(result):
        out.out.print(line, markup=False, highlight=False, soft_wrap=True)


def retrigger_via_sync(out: Output, fmt: str, settings: Any, *, via: str, ids: Any, all_stuck: bool,
                       older_than: Any, classes: Any, concurrency: int, tries: int, allow_insecure: bool,
                       yes: bool) -> int:
    """`retrigger --via sync`: the app's recovery route for provider rows, with retrigger's safety."""
    from stuckgen import reconcile as core
    from stuckgen import settle
    from stuckgen.audit import new_run_id, operator_name
    from stuckgen.cli import _db
    from stuckgen.cli.remediate import _confirm, _selection, audit_for, http_client, prepare_audit

    if via != "sync":
        raise ConfigError(f"--via: {via!r} is not one of process, sync",
                          hint="to replay the provider's webhook, use `stuckgen reconcile --apply --via webhook`")
    if fmt not in ("table", "json"):
        raise ConfigError(f"--format: {fmt!r} is not one of table, json")
    conn = _db.connect(settings)
    # scan=None for now: the options are checked (URL, owner session) before anything is read.
    settle_options(settings, scan=None, via="sync", signature="standard", concurrency=concurrency, tries=tries,
                   allow_insecure=allow_insecure)
    with conn:
        with _db.read_tx(conn, settings):
            mapping = _db.resolve_mapping(conn, settings)
        selection, opts = _selection(conn, settings, mapping, ids=ids, all_stuck=all_stuck, older_than=older_than,
                                     classes=classes)
        options = settle_options(settings, scan=opts, via="sync", signature="standard", concurrency=concurrency,
                                 tries=tries, allow_insecure=allow_insecure)
        with _db.read_tx(conn, settings):
            rows, without = core.prediction_ids(conn, mapping, selection.targets)
        for r in selection.rejected:
            out.note(f"{r.id}: {r.reason}")
        if without:
            out.note(f"{len(without)} selected row(s) carry no provider prediction id: the sync route would answer "
                     f"400; not sent ({', '.join(without[:3])}{' ...' if len(without) > 3 else ''})")
        verdicts = settle.unasked(rows)
        audit = audit_for(settings, mapping)
        op = operator_name(settings.operator)
        if rows and _confirm(out, yes, f"Sync {len(rows)} row(s) through {options.url}?"):
            prepare_audit(conn, settings, audit)
            with http_client(settings, concurrency=concurrency) as client:
                result = settle.settle_rows(client, conn, mapping, rows, verdicts, options=options, audit=audit,
                                            run_id=new_run_id(), operator=op)
        else:
            result = settle.plan(verdicts, options=options, audit=audit.where, operator=op)
    render_settle(out, fmt, result)
    if result.interrupted:
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    return int(result.exit_code)
