"""`scan` and `schema`: the stuck rows, classified; the mapping and rules they are read with."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from stuckgen.commands import index_note, print_fitted
from stuckgen.console import Output
from stuckgen.errors import ExitCode

if TYPE_CHECKING:
    from stuckgen.db import Connection
    from stuckgen.scan import ScanOptions, Summary
    from stuckgen.scan_render import RenderedScan
    from stuckgen.schema import SchemaMapping
    from stuckgen.session import Session

# A scan slower than this gets an EXPLAIN afterwards, to advise the index that makes it cheap.
SLOW_SCAN_SECONDS = 1.0


def run_scan(session: Session, out: Output, *, fmt: str, classes: tuple[str, ...] = (),
             limit: int | None = None) -> int:
    """List the stuck rows in ``fmt`` (table, json, csv) with the summary; FINDINGS when any is stuck."""
    from stuckgen.queues import libraries_in_force
    from stuckgen.render import TERMINAL_ROWS
    from stuckgen.scan_render import RenderedScan

    if libraries := libraries_in_force(session.settings):  # queue mode: the library's jobs, by its rules
        from stuckgen.commands.queues import run_scan_jobs

        return run_scan_jobs(session, out, libraries, fmt=fmt, classes=classes, limit=limit)
    opts = session.scan_options(classes=classes, limit=limit)
    conn = session.connection()
    with session.read():
        mapping = session.mapping()
        _note_queue_libraries(conn, out, threshold=opts.threshold)
        shown = limit if limit is not None else (TERMINAL_ROWS if out.is_tty else None)
        # PostgreSQL classifies and writes each row, and counts the window in the same statement;
        # Python passes the lines through (scan_render).
        started = time.monotonic()
        run = _write(out, RenderedScan(conn, mapping, opts, session.rules(), fmt=fmt, shown=shown),
                     conn, mapping, opts, fmt=fmt, shown=shown, limit=limit)
        # EXPLAIN costs a planning round trip: pay it only when the scan was slow enough to need an index.
        if time.monotonic() - started >= SLOW_SCAN_SECONDS:
            _note_index(conn, out, mapping, opts)
    s, settings = run.summary, session.settings
    paged = s.trigger_failures is not None and s.trigger_failures.over(
        max_count=settings.max_trigger_failures, max_rate=settings.max_trigger_failure_rate)
    return ExitCode.FINDINGS if s.stuck or s.stuck_before_window or paged else ExitCode.OK


def _note_queue_libraries(conn: Connection, out: Output, *, threshold: float) -> None:
    """A job-queue library beside the app's table holding stuck jobs, by its own rules."""
    from stuckgen.queues import queue_census

    for q in queue_census(conn, threshold=threshold):
        if q.stuck:
            out.note(f"note: {q.library} holds {q.stuck} stuck job(s) in {q.table}; list them with `stuckgen scan --queue-library {q.library}`")


def _note_index(conn: Connection, out: Output, mapping: SchemaMapping, opts: ScanOptions) -> None:
    from stuckgen.scan import explain_advice

    advice = explain_advice(conn, mapping, opts)
    if advice:
        out.note(index_note(mapping.table, advice))


def _completer(conn: Connection, mapping: SchemaMapping, opts: ScanOptions, run: RenderedScan) -> Any:
    """The summary, complete once the rows are read (the statement's last row): the rows that
    ended failed at the trigger, and the stuck rows created before the window by class and id."""
    from stuckgen.scan import before_window, trigger_failures_in

    def summary() -> Summary:
        s = run.summary
        if s.trigger_failures is None:
            run.apply_counts((s.created_in_window, s.stuck_before_window, trigger_failures_in(conn, mapping, opts)))
        if s.stuck_before_window and s.before_window is None:
            run.apply_counts((s.created_in_window, s.stuck_before_window,
                              before_window(conn, mapping, opts, run.rules)))
        return s
    return summary


def _write(out: Output, run: RenderedScan, conn: Connection, mapping: SchemaMapping, opts: ScanOptions, *,
           fmt: str, shown: int | None, limit: int | None) -> RenderedScan:
    """Stream the rows in ``fmt``, then the summary (stderr for csv, after the table for a person)."""
    from stuckgen.progress import Ticker
    from stuckgen.render.scan import scan_csv_lines, scan_json_lines, scan_table

    summary = _completer(conn, mapping, opts, run)
    meta = {"table": mapping.table, "threshold_seconds": opts.threshold, "since_seconds": opts.since,
            "inflight_statuses": list(opts.inflight_statuses)}
    # Rows streamed to the terminal itself would mix with a progress line; a table is printed at the end.
    ticker = Ticker("scanning", enabled=None if (fmt == "table" or not out.is_tty) else False)
    run.on_rows = ticker.add
    table = None
    try:
        with ticker:
            if fmt == "json":
                out.lines(scan_json_lines(run, summary, meta))
            elif fmt == "csv":
                out.lines(scan_csv_lines(run))
            else:
                table, _ = scan_table(run, max_rows=None, width=out.width)
            summary()
    finally:
        run.close()  # a reader gone early (| head): end the statement before the transaction
    _write_summary(out, summary(), table, opts, fmt=fmt, shown=shown, limit=limit)
    return run


def _write_summary(out: Output, s: Summary, table: Any, opts: ScanOptions, *, fmt: str, shown: int | None,
                   limit: int | None) -> None:
    """The summary on stderr after CSV; after the table (and what it left out) for a person."""
    from stuckgen.render.scan import summary_lines

    lines = summary_lines(s, threshold=opts.threshold, since=opts.since)
    if fmt == "csv":
        for line in lines:
            out.note(line)
    elif fmt == "table":
        if s.stuck:
            print_fitted(out, table)
            hidden = s.stuck - min(s.stuck, shown if shown is not None else s.stuck)
            if hidden and limit is None:  # with --limit the summary says the list stops there
                out.out.print(f"{hidden:,} more; use --limit or --format json", markup=False)
            out.out.print()
        for line in lines:
            out.out.print(line, markup=False)


def run_schema(session: Session, out: Output, *, fmt: str) -> int:
    """The resolved mapping with each field's source, the census, index advice and the rules in force."""
    from stuckgen.discover import census
    from stuckgen.render.schema import mapping_json_lines, mapping_renderables
    from stuckgen.queues import libraries_in_force
    from stuckgen.scan import explain_advice

    if libraries := libraries_in_force(session.settings):  # queue mode: the library's census and rules
        from stuckgen.commands.queues import run_schema_jobs

        return run_schema_jobs(session, out, libraries, fmt=fmt)
    conn, rules = session.connection(), session.rules()
    with session.read():
        m = session.mapping(announce=False)  # the table shows the gaps itself
        cen = census(conn, m, naive_tz=session.settings.naive_timezone)
        advice = explain_advice(conn, m, session.scan_options())
    inflight = list(session.settings.inflight_statuses)
    if fmt == "json":
        out.lines(mapping_json_lines(m, cen, inflight, advice, rules=rules))
        return ExitCode.OK
    for part in mapping_renderables(m, cen, inflight):
        out.out.print(part)
    if advice:
        out.out.print(index_note(m.table, advice), markup=False, soft_wrap=True)
    out.out.print("", markup=False)
    out.out.print("Rules in force, first match wins:", markup=False)
    for i, r in enumerate(rules, 1):
        out.out.print(f"  {i:>2}. {r.cls:<22} {r.conditions()}  [{r.source}]", markup=False)
    return ExitCode.OK
