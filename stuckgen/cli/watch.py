"""`stuckgen watch`: the stuck set, refreshed, over one read-only connection."""


import json
import sys
import time
import uuid
from typing import Annotated, Any, Optional

import typer

from stuckgen.cli import _alerting
from stuckgen.cli._alerting import PagerDutyOpt, SlackOpt, WebhookOpt
from stuckgen.cli._app import (
    GraceOpt, QueueLockOpt,
    AuditFileOpt, AuditTableOpt, ConfigOpt, ConnectTimeoutOpt, DatabaseUrlOpt, DbSchemaOpt, DebugOpt, EnvFileOpt, InflightOpt, LockTimeoutOpt,
    MapOpt, Output, RepeatOpt, SecretOpt, SinceOpt, StatementTimeoutOpt, TableOpt, ThresholdOpt, app, env_help, handle_errors,
    settings_from,
)
from stuckgen.errors import ConfigError, ExitCode

FORMATS = ("live", "json")
MIN_PROBE_INTERVAL = 30.0  # each probe round sends ~10 requests per target: not every few seconds


def wait(seconds: float) -> None:
    """Sleep between refreshes (a seam for tests; Ctrl-C interrupts it)."""
    time.sleep(seconds)


@app.command()
@handle_errors
def watch(
    database_url: DatabaseUrlOpt = None,
    threshold: ThresholdOpt = None,
    grace: GraceOpt = None,
    queue_lock: QueueLockOpt = None,
    since: SinceOpt = None,
    interval: Annotated[str, typer.Option(
        "--interval", "-i", metavar="DURATION", help="Time between refreshes.")] = "5s",
    count: Annotated[Optional[int], typer.Option(
        "--count", min=1, metavar="N", show_default=False,
        help="Stop after N refreshes (default: until Ctrl-C).")] = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", "-f", metavar="FORMAT", show_default=False,
        help="live | json (one JSON line per refresh). Default: live on a terminal, json in a pipe.")] = None,
    with_probe: Annotated[bool, typer.Option(
        "--probe", help="Also run probe-auth against --url and show the latest matrix.")] = False,
    probe_interval: Annotated[str, typer.Option(
        "--probe-interval", metavar="DURATION", help="Time between probe rounds (at least 30s).")] = "60s",
    repeat: RepeatOpt = None,
    internal_secret: SecretOpt = None,
    base_url: Annotated[Optional[list[str]], typer.Option(
        "--url", "-u", metavar="URL", show_default=False,
        help=env_help("base_url", "Deployment to probe with --probe (repeatable)."))] = None,
    slack_webhook_url: SlackOpt = None,
    pagerduty_routing_key: PagerDutyOpt = None,
    notify_webhook_url: WebhookOpt = None,
    allow_insecure: Annotated[bool, typer.Option(
        "--allow-insecure", help="Allow notifications over plain HTTP to a non-loopback host.")] = False,
    audit_table: AuditTableOpt = None,
    audit_file: AuditFileOpt = None,
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
    """Watch the stuck set during an incident: counts by class, rows that became stuck or recovered.

    Refreshes every --interval over ONE database connection, each refresh a READ
    ONLY transaction; it never writes the app's tables. With --slack-webhook,
    --pagerduty-routing-key or --notify-webhook it tells them when a stuck class
    appears, doubles or clears (as `check` does), keeping that state in the audit
    log. The first refresh is the baseline: later
    ones list rows that became stuck and rows that recovered (with their status
    now) since the start. With --probe, probe-auth runs every --probe-interval
    (the secret from --secret or INTERNAL_API_SECRET; cookie and bypass secret
    from the environment, as for probe-auth) and its latest matrix is shown.
    Ctrl-C (or SIGTERM) leaves with a one-line summary on stderr. In a pipe it prints one JSON line per refresh instead.

    \b
    Examples:
      stuckgen watch --threshold 5m --interval 10s
      stuckgen watch --probe --url https://app.example.com
      stuckgen watch --count 12 --interval 5s | jq -c '{stuck, by_class}'

    Exit: 0 nothing stuck at the end of --count refreshes, 1 rows stuck then, 2
    configuration error, 3 database unreachable, 130 stopped by Ctrl-C or SIGTERM
    (after the one-line summary).
    """
    from stuckgen.cli import _db
    from stuckgen.durations import parse_duration
    from stuckgen.scan import ScanRun
    from stuckgen.watch import Watcher, statuses_of

    settings = settings_from(locals())
    out = Output()
    fmt = fmt or ("live" if out.is_tty else "json")
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    every = parse_duration(interval, option="--interval")
    if every <= 0:
        raise ConfigError("--interval must be positive")
    probe_every = max(MIN_PROBE_INTERVAL, parse_duration(probe_interval, option="--probe-interval"))
    prober = _Prober(settings, every=probe_every, repeat=repeat) if with_probe else None
    opts = _db.scan_options(settings)
    rules = _db.rules(settings)
    watcher = Watcher()
    last = None
    live = None
    chans = _alerting.channels(settings, allow_insecure=allow_insecure)
    client = _alerting.http_client(settings) if chans else None
    conn = _db.connect(settings)  # the only connection, for the whole watch
    interrupted = False
    try:
        with conn:
            mapping = None
            while True:
                with _db.read_tx(conn, settings):
                    if mapping is None:
                        mapping = _db.resolve_mapping(conn, settings)
                        for w in mapping.warnings:
                            out.note(f"note: {w}")
                    run = ScanRun(conn, mapping, opts, rules)
                    run.count_window()
                    m = mapping
                    last = watcher.refresh((r.id for r in run), run.summary,
                                           lookup_status=lambda ids: statuses_of(conn, m, ids),
                                           probe=prober.maybe(conn, m) if prober else None)
                if chans:
                    from stuckgen.notify import class_incidents

                    # Every stuck row is an incident while watching: one per class, told on change only.
                    _alerting.send(settings, conn, client, chans, mapping=mapping,
                                   incidents=class_incidents(last.by_class), observed=lambda c: True)
                if fmt == "json":
                    out.lines([json.dumps(last.as_dict(), default=str)])
                else:
                    from rich.live import Live

                    from stuckgen.render.watch import watch_renderable

                    view = watch_renderable(last, threshold=opts.threshold, interval=every,
                                            probe_matrix=prober.table() if prober else None)
                    if live is None:
                        live = Live(view, console=out.out, auto_refresh=False, transient=False, redirect_stdout=False,
                                    redirect_stderr=False)
                        live.start()
                    live.update(view, refresh=True)
                if count is not None and last.n >= count:
                    break
                wait(every)
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C or SIGTERM: the summary below, then 130
    finally:
        if live is not None:
            live.stop()
        if prober is not None:
            prober.close()
        if client is not None:
            client.close()
    if last is None:
        sys.stderr.write("watch: interrupted before the first refresh\n")
        return ExitCode.INTERRUPTED
    sys.stderr.write(last.summary_line() + "\n")  # one line, unwrapped, whatever the terminal width
    if interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.FINDINGS if last.stuck else ExitCode.OK


class _Prober:
    """probe-auth every ``every`` seconds against the configured targets; keeps only the latest matrix."""

    def __init__(self, settings: Any, *, every: float, repeat: Optional[int] = None) -> None:
        from stuckgen import http
        from stuckgen.cookies import CookieInfo, configured_cookie
        from stuckgen.probe import DEFAULT_REPEAT, ProbeTarget

        if not settings.base_url:
            raise ConfigError("--probe needs a deployment", hint="pass --url or set STUCKGEN_BASE_URL")
        self.settings = settings
        self.every = every
        self.repeat = repeat or DEFAULT_REPEAT
        self.targets = [ProbeTarget(url=u) for u in settings.base_url]
        self.cookie_info: CookieInfo | None = configured_cookie(settings.cookie, settings.cookie_file,
                                                                now=time.time(), cookie_name=settings.cookie_name)
        self.client = http.client(timeout=settings.http_timeout)
        self.last_run: float | None = None
        self.matrix: Any = None
        self.document: dict[str, Any] | None = None

    def maybe(self, conn: Any, mapping: Any) -> dict[str, Any] | None:
        """Probe when due (inside the refresh's read-only transaction, for the id check); the latest document."""
        from stuckgen.findings import analyze_probe
        from stuckgen.probe import probe
        from stuckgen.render.probe import probe_document
        from stuckgen.show import id_exists

        if self.last_run is None or time.monotonic() - self.last_run >= self.every:
            probe_id = str(uuid.uuid4())
            while id_exists(conn, mapping, probe_id):  # a probe must match no row
                probe_id = str(uuid.uuid4())
            s = self.settings
            self.matrix = probe(
                self.client, self.targets, route=s.route, secret=s.internal_secret,
                cookie_header=self.cookie_info.header if self.cookie_info and self.cookie_info.header else None,
                bypass_secret=s.bypass_secret, timeout=s.http_timeout, probe_id=probe_id,
                secret_header=s.secret_header, repeat=self.repeat,
            )
            self.last_run = time.monotonic()
            findings = analyze_probe(self.matrix, secret=s.internal_secret, cookie_info=self.cookie_info,
                                     now=time.time())
            doc = probe_document(self.matrix, findings, cookie_info=self.cookie_info, now=time.time())
            doc["probed_at"] = _utc_now()
            self.document = doc
        return self.document

    def table(self) -> Any:
        from stuckgen.render.probe import probe_table

        return probe_table(self.matrix) if self.matrix is not None else None

    def close(self) -> None:
        self.client.close()


def _utc_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
