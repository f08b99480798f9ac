"""Scan output: streamed JSON (``stuckgen.scan/v1``), CSV, and terminal tables."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any


from stuckgen.durations import format_duration
from stuckgen.render import RawJSON, streamed_json
from stuckgen.scan import Estimate, StuckRow, Summary

SCAN_SCHEMA = "stuckgen.scan/v1"

CSV_COLUMNS = ("id", "status", "class", "quiet_seconds", "age_seconds", "created_at", "last_sign_of_life",
               "heartbeat_at", "last_step", "trigger_status", "trigger_failures", "outputs", "job_state",
               "user_id", "error", "why")

CLASS_STYLE = {
    "never-started": "bold red", "trigger-failed": "red", "timed-out": "dark_orange", "stalled": "yellow",
    "awaiting-webhook": "cyan", "queued-not-drained": "magenta", "outputs-not-finalized": "green",
    "unknown": "dim",
}


def scan_json_lines(rows: Iterable[StuckRow | str], summary: Callable[[], Summary], meta: dict[str, Any]) -> Iterator[str]:
    """One JSON document, streamed: the header, one line per row, then the summary.

    Shape (v1): {"schema", "generated_at", "table", "threshold_seconds", "since_seconds",
    "rows": [row...], "summary": {...}}. Rows are written as they arrive, so memory
    does not grow with the number of stuck rows. A row is a ``StuckRow``, or its JSON
    already written by the database (``scan_render``).
    """
    rows = _started(rows)
    head = {"schema": SCAN_SCHEMA, "generated_at": _now_iso(), **meta}
    # A row is a StuckRow, or its JSON already written by the database (scan_render).
    items = (RawJSON(row) if isinstance(row, str) else row.as_dict() for row in rows)
    yield from streamed_json(head, items, tail=lambda: {"summary": summary().as_dict()})


def _started(rows: Iterable[Any]) -> Iterator[Any]:
    """Fetch the first row before any output: a statement the database rejects
    (a mapped column of the wrong type) then fails with nothing written on stdout."""
    it = iter(rows)
    first = next(it, None)  # eager: this runs when the caller asks for the first line
    return itertools.chain((first,), it) if first is not None else iter(())


def csv_row(row: StuckRow) -> str:
    """One CSV line (no line end) of ``CSV_COLUMNS``; a field holding a line break is quoted."""
    d = row.as_dict()
    buf = io.StringIO()
    # "\r\n" as the terminator makes the writer quote fields with CR or LF; it is cut off again.
    csv.writer(buf, lineterminator="\r\n").writerow(["" if d[c] is None else d[c] for c in CSV_COLUMNS])
    return buf.getvalue()[:-2]


def scan_csv_lines(rows: Iterable[StuckRow | str]) -> Iterator[str]:
    rows = _started(rows)
    yield ",".join(CSV_COLUMNS)
    for row in rows:
        yield row if isinstance(row, str) else csv_row(row)


def scan_table(rows: Iterable[StuckRow], *, max_rows: int | None, width: int | None = None) -> tuple[Any, int]:
    """What the terminal shows of the first ``max_rows`` rows, fitted to ``width``; and how many were left out.

    id, class and quiet are always there and never wrap; ``why`` is last and wraps
    between words; ``created`` and then ``last step`` are left out when keeping
    them would squeeze ``why`` (at 80 columns: the compact layout, why under each row).
    """
    from stuckgen.render.layout import fit_table

    cells: list[dict[str, str]] = []
    hidden = 0
    for i, row in enumerate(rows):
        if max_rows is not None and i >= max_rows:
            hidden += 1
            continue
        # The failed trigger's error excerpt repeats what `why` says (its HTTP status); JSON keeps it.
        notes = [n for n in row.notes if not n.startswith("process:trigger-failed")]
        cells.append({"id": row.id, "class": row.cls, "quiet": format_duration(row.quiet_seconds),
                      "created": _short_time(row.created_at), "last step": row.last_step or "-",
                      "why": row.why + "".join(f"; {n}" for n in notes)})
    fitted = fit_table(cells, order=("id", "class", "quiet", "created", "last step"), required=("id", "class", "quiet"),
                       drop=("created", "last step"), last="why", width=width, right=("quiet",),
                       style=lambda col, v: CLASS_STYLE.get(v, "") if col == "class" else "")
    return fitted, hidden


def summary_lines(s: Summary, *, threshold: float, since: float | None) -> Iterator[str]:
    """The summary as plain lines (also used under the table on a terminal)."""
    window = "all time" if since is None else f"the last {format_duration(since)}"
    if s.stuck == 0:
        yield f"No generation quiet for more than {format_duration(threshold)} (created in {window})."
    else:
        rate = ""
        if s.stuck_rate is not None:
            approx = "~" if isinstance(s.created_in_window, Estimate) else ""
            rate = f" of {approx}{s.created_in_window} created in {window} ({approx}{s.stuck_rate:.1%})"
        else:
            rate = f" (created in {window})"
        yield f"{s.stuck} stuck{rate}, quiet for more than {format_duration(threshold)}."
        yield "By class: " + ", ".join(f"{c} {n}" for c, n in s.as_dict()["by_class"].items())
        if s.trigger_statuses:
            yield "Failed triggers answered: " + ", ".join(f"HTTP {k} x{v}" for k, v in sorted(s.trigger_statuses.items()))
        if s.oldest is not None:
            yield f"Oldest: {s.oldest.id}, quiet for {format_duration(s.oldest.quiet_seconds)}."
        if s.onset is not None:
            yield f"Onset: first stuck row created {_short_time(s.onset, full=True)}."
        if len(s.per_hour) > 0:
            yield "Per hour (UTC, by creation):"
            peak = max(s.per_hour.values())
            for hour, n in sorted(s.per_hour.items()):
                bar = "#" * max(1, round(30 * n / peak))
                yield f"  {hour.strftime('%Y-%m-%d %H:00')}  {n:>6}  {bar}"
    tf = s.trigger_failures
    if tf is not None and tf.groups:
        rate = f" ({tf.recent_rate:.1%} of {tf.created_recent} created)" if tf.recent_rate is not None else ""
        yield (f"Failed at the trigger: {tf.total} rows ended {'/'.join(tf.statuses)} with a failed trigger in "
               f"{window}, {tf.recent} in the last {format_duration(tf.recent_window)}{rate}: "
               + ", ".join(f"{g.label} x{g.count}" for g in tf.groups) + ".")
        if tf.onset is not None:
            yield f"Onset: first failed at the trigger {_short_time(tf.onset, full=True)}."
    yield from before_window_lines(s, since=since)
    if s.truncated:
        yield "The list stops at --limit; the counts above cover every stuck row."


def before_window_lines(s: Summary, *, since: float | None, indent: str = "") -> Iterator[str]:
    """Stuck rows created before the window: counted by class and named, never a bare number."""
    n = s.stuck_before_window
    if not n or since is None:
        return
    window = f"the last {format_duration(since)}"
    bw = s.before_window
    by = f" ({', '.join(f'{c} {k}' for c, k in bw.as_dict()['by_class'].items())})" if bw and bw.by_class else ""
    yield f"{indent}Also {n} stuck row{'s' if n != 1 else ''} created before {window}{by}; they are part of the incident:"
    if bw is not None:
        for r in bw.rows:
            yield (f"{indent}  {r.id}  {r.cls}, created {_short_time(r.created_at, full=True)}, "
                   f"quiet {format_duration(r.quiet_seconds)}")
        if n > len(bw.rows):
            yield f"{indent}  ... and {n - len(bw.rows)} more"
    yield f"{indent}List them all with --since all."


def _short_time(t: datetime | None, *, full: bool = False) -> str:
    if t is None:
        return "-"
    t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%SZ") if full else t.strftime("%m-%d %H:%M:%S")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
