"""`stuckgen scan` and `stuckgen schema`."""


import time
from typing import Annotated, Any, Optional

import typer

from stuckgen.cli._app import (
    GraceOpt, QueueLibraryOpt, QueueLockOpt,
    ConfigOpt, ConnectTimeoutOpt, DatabaseUrlOpt, DbSchemaOpt, DebugOpt, EnvFileOpt, InflightOpt, LockTimeoutOpt,
    MapOpt, Output, SinceOpt, StatementTimeoutOpt, TableOpt, ThresholdOpt, app, default_format, handle_errors,
    settings_from,
)
from stuckgen.errors import ConfigError, ExitCode

FORMATS = ("table", "json", "csv")
# A scan slower than this gets an EXPLAIN afterwards, to advise the index that makes it cheap.
SLOW_SCAN_SECONDS = 1.0


@app.command()
@handle_errors
def scan(
    database_url: DatabaseUrlOpt = None,
    threshold: ThresholdOpt = None,
    grace: GraceOpt = None,
    queue_lock: QueueLockOpt = None,
    since: SinceOpt = None,
    queue_library: QueueLibraryOpt = None,
    cls: Annotated[Optional[list[str]], typer.Option(
        "--class", "-c", metavar="CLASS", show_default=False,
        help="Only rows of this class (repeatable): never-started, trigger-failed, stalled, awaiting-webhook, "
             "queued-not-drained, outputs-not-finalized, unknown.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, show_default=False, metavar="N",
                                                 help="At most this many rows.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", show_default=False, metavar="FORMAT",
                                               help="table | json | csv. Default: table on a terminal, json in a pipe.")] = None,
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
    """List generations stuck past a threshold and classify why each one is stuck.

    Stuck: status in the in-flight statuses (processing, queued) and no sign of life
    (heartbeat, else updated, else created time) for longer than --threshold, measured
    with the database's clock. Reads only, in a READ ONLY transaction with timeouts.

    \b
    Examples:
      stuckgen scan --threshold 5m --since 6h
      stuckgen scan --format json | jq '.rows[] | select(.class == "trigger-failed") | .id'

    Also reads the rows that ended failed at the trigger (status failed, a failed
    trigger in the step log or error text), grouped by cause and HTTP status in the
    summary; they count as findings past check's limits (--max-trigger-failures,
    --max-trigger-failure-rate in the trigger window, defaults 2, 10%, 1h).

    Exit: 0 none stuck, 1 stuck rows found (or trigger failures past the limits),
    2 configuration error, 3 database unreachable.
    """
    from stuckgen.cli import _db
    from stuckgen.progress import Ticker
    from stuckgen.render import TERMINAL_ROWS
    from stuckgen.render.scan import scan_csv_lines, scan_json_lines, scan_table, summary_lines
    from stuckgen.scan import before_window, explain_advice
    from stuckgen.scan import trigger_failures_in
    from stuckgen.scan_render import RenderedScan

    settings = settings_from(locals())
    from stuckgen.queues import libraries_in_force

    if libraries := libraries_in_force(settings):  # queue mode: the library's jobs, by its rules
        from stuckgen.cli import _queues

        return _queues.scan(settings, libraries, fmt=fmt, classes=tuple(cls or ()), limit=limit)
    out = Output()
    fmt = default_format(fmt, tty=out.is_tty)
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    opts = _db.scan_options(settings, classes=tuple(cls or ()), limit=limit)
    conn = _db.connect(settings)
    # Rows streamed to the terminal itself would mix with a progress line; a table is printed at the end.
    ticker = Ticker("scanning", enabled=None if (fmt == "table" or not out.is_tty) else False)
    with conn:
        with _db.read_tx(conn, settings):
            mapping = _db.resolve_mapping(conn, settings)
            for w in mapping.warnings:
                out.note(f"note: {w}")
            from stuckgen.queues import queue_census

            for q in queue_census(conn, threshold=opts.threshold):
                if q.stuck:  # a job-queue library beside the app's table, by its own rules
                    out.note(f"note: {q.library} holds {q.stuck} stuck job(s) in {q.table}; see `stuckgen jobs`")
            shown = limit if limit is not None else (TERMINAL_ROWS if out.is_tty else None)
            # PostgreSQL classifies and writes each row, and counts the window in the same statement;
            # Python passes the lines through (scan_render).
            run = RenderedScan(conn, mapping, opts, _db.rules(settings), fmt=fmt, shown=shown, on_rows=ticker.add)
            meta = {"table": mapping.table, "threshold_seconds": opts.threshold, "since_seconds": opts.since,
                    "inflight_statuses": list(opts.inflight_statuses)}

            def summary() -> Any:  # complete once the rows are read (the statement's last row)
                s = run.summary
                if s.trigger_failures is None:  # the other evidence: rows that ended failed at the trigger
                    run.apply_counts((s.created_in_window, s.stuck_before_window,
                                      trigger_failures_in(conn, mapping, opts)))
                if s.stuck_before_window and s.before_window is None:  # named by class and id
                    run.apply_counts((s.created_in_window, s.stuck_before_window,
                                      before_window(conn, mapping, opts, run.rules)))
                return s

            started = time.monotonic()
            try:
                with ticker:
                    if fmt == "json":
                        out.lines(scan_json_lines(run, summary, meta))
                    elif fmt == "csv":
                        out.lines(scan_csv_lines(run))
                    else:
                        tbl, _ = scan_table(run, max_rows=None, width=out.width)
                    summary()
            finally:
                run.close()  # a reader gone early (| head): end the statement before the transaction
            if fmt == "csv":
                for line in summary_lines(summary(), threshold=opts.threshold, since=opts.since):
                    out.note(line)
            elif fmt == "table":
                if run.summary.stuck:
                    out.out.print(tbl)
                    if tbl.left_out:
                        out.out.print(f"({', '.join(tbl.left_out)} left out at {out.width} columns: "
                                      "widen the terminal, or use --format json)", markup=False)
                    hidden = run.summary.stuck - min(run.summary.stuck, shown if shown is not None else run.summary.stuck)
                    if hidden and limit is None:  # with --limit the summary says the list stops there
                        out.out.print(f"{hidden:,} more; use --limit or --format json", markup=False)
                    out.out.print()
                for line in summary_lines(summary(), threshold=opts.threshold, since=opts.since):
                    out.out.print(line, markup=False)
            # EXPLAIN costs a planning round trip: pay it only when the scan was slow enough to need an index.
            if time.monotonic() - started >= SLOW_SCAN_SECONDS:
                advice = explain_advice(conn, mapping, opts)
                if advice:
                    out.note(f"note: the scan reads all of {mapping.table} (no index serves the in-flight statuses); "
                             f"this partial index makes it cheap:\n  {advice}")
    tf = run.summary.trigger_failures
    paged = tf is not None and tf.over(max_count=settings.max_trigger_failures,
                                       max_rate=settings.max_trigger_failure_rate)
    return ExitCode.FINDINGS if run.summary.stuck or run.summary.stuck_before_window or paged else ExitCode.OK


@app.command()
@handle_errors
def schema(
    database_url: DatabaseUrlOpt = None,
    table: TableOpt = None,
    db_schema: DbSchemaOpt = None,
    map: MapOpt = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", show_default=False, metavar="FORMAT",
                                               help="table | json. Default: table on a terminal, json in a pipe.")] = None,
    statement_timeout: StatementTimeoutOpt = None,
    connect_timeout: ConnectTimeoutOpt = None,
    env_file: EnvFileOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> int:
    """Print the schema mapping stuckgen resolved, where each field came from, and the rules in force.

    Each logical field maps to a column, a key inside a JSON column, or nothing
    (which lowers what scan can conclude). Override with --map or [mapping] in stuckgen.toml.
    On a large table it also checks (EXPLAIN) that an index serves the stuck-row scan,
    and prints the partial index that would.
    [[rules]] in stuckgen.toml come before the default rules (first match wins) unless
    replace_default_rules = true; each rule is listed with its source.

    \b
    Example:
      stuckgen schema --map heartbeat=parameters.lastHeartbeatAt

    Exit: 0 resolved, 2 a table or column is missing, 3 database unreachable.
    """
    from stuckgen.cli import _db
    from stuckgen.discover import census
    from stuckgen.render.schema import mapping_json_lines, mapping_renderables
    from stuckgen.scan import explain_advice

    settings = settings_from(locals())
    out = Output()
    fmt = default_format(fmt, tty=out.is_tty)
    if fmt not in ("table", "json"):
        raise ConfigError(f"--format: {fmt!r} is not one of table, json")
    conn = _db.connect(settings)
    rules = _db.rules(settings)
    with conn:
        with _db.read_tx(conn, settings):
            m = _db.resolve_mapping(conn, settings)
            cen = census(conn, m, naive_tz=settings.naive_timezone)
            advice = explain_advice(conn, m, _db.scan_options(settings))
    inflight = list(settings.inflight_statuses)
    if fmt == "json":
        out.lines(mapping_json_lines(m, cen, inflight, advice, rules=rules))
        return ExitCode.OK
    for part in mapping_renderables(m, cen, inflight):
        out.out.print(part)
    if advice:
        out.out.print(f"note: the stuck-row scan reads all of {m.table} (no index serves the in-flight statuses); "
                      f"this partial index makes it cheap:\n  {advice}", markup=False, soft_wrap=True)
    out.out.print("", markup=False)
    out.out.print("Rules in force, first match wins:", markup=False)
    for i, r in enumerate(rules, 1):
        out.out.print(f"  {i:>2}. {r.cls:<22} {r.conditions()}  [{r.source}]", markup=False)
    return ExitCode.OK
