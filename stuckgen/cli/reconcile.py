"""`stuckgen reconcile`: ask the provider how each stuck provider row really ended."""


from typing import Annotated, Any, Optional

import typer

from stuckgen.cli._app import (
    ConfigOpt, ConnectTimeoutOpt, DatabaseUrlOpt, DbSchemaOpt, DebugOpt, EnvFileOpt, InflightOpt, MapOpt, Output,
    StatementTimeoutOpt, TableOpt, ThresholdOpt, app, default_format, env_help, handle_errors, settings_from,
)
from stuckgen.cli.remediate import ClassOpt, IdsArg, OlderThanOpt, SinceOpt
from stuckgen.errors import ConfigError

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
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.Client(follow_redirects=False, timeout=settings.http_timeout, limits=limits, trust_env=False)


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

    Example:

        REPLICATE_API_TOKEN=r8_... stuckgen reconcile --class awaiting-webhook

        stuckgen reconcile --format json | jq -r '.rows[] | select(.verdict == "provider-succeeded-callback-lost") | .id'

    Exit: 0 every provider row is still running there (or none is stuck), 1 some row
    needs action, 2 usage or configuration error (no token), 3 the database or the
    provider could not be reached (nothing answered), 130 interrupted.
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
    render(out, fmt, result)
    if result.interrupted:
        raise typer.Exit(130)
    return int(result.exit_code)
