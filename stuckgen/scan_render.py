"""The scan with its per-row work done by PostgreSQL: rows arrive as finished JSON or CSV lines.

``ScanRun`` (scan/run.py) builds a ``StuckRow`` per stuck row in Python (~100 us a row); at
100,000 stuck rows that is most of a scan. Here one statement classifies each row with the
rules in force (``rule_sql`` over the scan's evidence columns), writes its JSON (or CSV)
line exactly as ``StuckRow.as_dict`` + ``json.dumps`` would, and ends with one more row:
the summary (counts by class, trigger statuses, oldest, onset, per hour) aggregated over
the same rows. Python passes the lines through.

A row whose text the server cannot write byte for byte as Python would (a value that
Python's ``repr`` would escape, an error excerpt that is not a string, a log entry of
exactly the cut length, a creation time in the future) comes with its evidence instead,
and ``scan.classify.row_to_stuck`` renders it: same output, whatever the data.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from psycopg import sql

from stuckgen import deadline
from stuckgen.scan import (
    DEFAULT_RULES, Rule, ScanOptions, StuckRow, Summary, apply_counts, build_scan_query, check_classes,
    rule_sql, sample_pct,
)
from stuckgen.scan.classify import row_to_stuck
from stuckgen.scan.predicates import RuleFacts
from stuckgen.scan.window import scaled_count, window_count_sql
from stuckgen.schema import SchemaMapping

FORMATS = ("json", "csv", "table")
# The evidence columns row_to_stuck reads, in the order the statement returns them (fallback rows).
_EVIDENCE = ("id", "status", "created_at", "last_sign", "heartbeat_at", "heartbeat_raw", "last_step", "error",
             "user_id", "has_webhook", "steps", "trigger_entry", "trigger_failures", "outputs", "job_state", "db_now",
             "worker_started_at", "past_max_duration", "max_duration")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CUT = 600  # the scan cuts a failed trigger's log entry to this many characters
# What Python's repr() writes as 'text' unchanged: printable ASCII without quote or backslash.
_PLAIN = "'^[ -&(-\\[\\]-~]*$'"


def _q(text: str) -> sql.Composable:
    return sql.Literal(text)


def _j(expr: sql.Composable) -> sql.Composable:
    """A JSON value for ``json.dumps``' output: strings escaped by to_json, NULL as null."""
    return sql.SQL("coalesce(to_json({})::text, 'null')").format(expr)


def _seconds(us: str) -> str:
    """Microseconds -> seconds as Python's repr of ``round_ms`` writes them (``12.0``, ``3.457``)."""
    ms = f"round({us}::numeric / 1000)"
    return (f"(CASE WHEN {us} IS NULL THEN NULL WHEN {ms} % 1000 = 0 THEN ({ms} / 1000)::bigint::text || '.0' "
            f"ELSE trim_scale({ms} / 1000)::text END)")


def _iso(t: str) -> str:
    """``datetime.isoformat()`` in UTC with ``Z``: microseconds only when there are any."""
    return (f"(CASE WHEN {t} IS NULL THEN NULL ELSE to_char({t} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
            f"CASE WHEN to_char({t}, 'US') <> '000000' THEN '.' || to_char({t}, 'US') ELSE '' END || 'Z' END)")


def _truthy(v: str) -> str:
    """Python truthiness of a jsonb value (``obj.get(k) or ...``)."""
    return (f"({v} IS NOT NULL AND jsonb_typeof({v}) <> 'null' AND {v} NOT IN ('\"\"'::jsonb, 'false'::jsonb, "
            f"'[]'::jsonb, '{{}}'::jsonb) AND NOT (jsonb_typeof({v}) = 'number' AND ({v} #>> '{{}}')::numeric = 0))")


def evidence_facts(m: SchemaMapping, opts: ScanOptions | None = None) -> RuleFacts:
    """The rule facts read from the scan's evidence columns (row ``e``), as ``row_to_stuck`` reads them."""
    return RuleFacts(
        steps=sql.SQL("e.steps") if m.has("step_log") else None,
        last_step=sql.SQL("e.last_step"),
        heartbeat=sql.SQL("(e.heartbeat_raw IS NOT NULL)") if m.has("heartbeat") else None,
        outputs=sql.SQL("(e.outputs > 0)") if m.outputs.present else None,
        webhook=sql.SQL("e.has_webhook") if m.has("webhook") else None,
        job_state=sql.SQL("e.job_state"),
        past_max_duration=sql.SQL("e.past_max_duration") if opts is not None and opts.max_duration is not None else None,
    )


def _classified(m: SchemaMapping, opts: ScanOptions, rules: tuple[Rule, ...]) -> sql.Composable:
    """CTE ``c``: each row's class (the first rule that matches its evidence) and the failed trigger's details."""
    facts = evidence_facts(m, opts)
    rule_no = sql.SQL("CASE {} ELSE 0 END").format(sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(rule_sql(r, m, facts=facts), sql.Literal(i + 1)) for i, r in enumerate(rules))) \
        if rules else sql.SQL("0")
    classes = sql.Literal(["unknown"] + [r.cls for r in rules])
    whys = sql.Literal(["no rule matched"] + [r.why for r in rules])
    has_hb = "(e.heartbeat_raw IS NOT NULL)" if m.has("heartbeat") else "NULL::boolean"
    return sql.SQL(
        "SELECT e.*, ({classes}::text[])[n.rule_no + 1] AS cls, ({whys}::text[])[n.rule_no + 1] AS rule_why, "
        "{has_hb} AS has_hb, "
        "CASE WHEN length(e.trigger_entry) < {cut} THEN e.trigger_entry::jsonb END AS tobj, "
        "coalesce(length(e.trigger_entry) >= {cut}, false) AS tcut, "
        "coalesce(length(e.trigger_entry) = {cut}, false) AS tedge, "
        "(extract(epoch FROM e.db_now - e.last_sign) * 1000000)::bigint AS quiet_us, "
        "(extract(epoch FROM e.db_now - e.created_at) * 1000000)::bigint AS age_us, "
        "(extract(epoch FROM e.db_now - e.worker_started_at) * 1000000)::bigint AS worker_us "
        "FROM e CROSS JOIN LATERAL (SELECT {rule_no} AS rule_no) n"
    ).format(classes=classes, whys=whys, has_hb=sql.SQL(has_hb), cut=sql.Literal(_CUT), rule_no=rule_no)


def _trigger_details() -> sql.Composable:
    """CTE ``t``: the trigger status (Python: ``int(st)`` when ``str(st).isdigit()``) and the error excerpt."""
    err = (f"CASE WHEN {_truthy(chr(99) + '.tobj -> ' + chr(39) + 'error' + chr(39))} THEN c.tobj -> 'error' "
           f"WHEN {_truthy('c.tobj -> ' + chr(39) + 'errorText' + chr(39))} THEN c.tobj -> 'errorText' "
           f"WHEN {_truthy('c.tobj -> ' + chr(39) + 'message' + chr(39))} THEN c.tobj -> 'message' END")
    return sql.SQL(
        "SELECT c.*, CASE WHEN jsonb_typeof(c.tobj -> 'status') IN ('number', 'string') "
        "AND (c.tobj ->> 'status') ~ '^[0-9]+$' THEN (c.tobj ->> 'status')::numeric END AS tstatus, "
        "(jsonb_typeof(c.tobj -> 'status') = 'string' AND (c.tobj ->> 'status') !~ '^[ -~]*$') AS todd, "
        "{err} AS terr FROM c").format(err=sql.SQL(err))


def _why_and_notes(opts: ScanOptions) -> sql.Composable:
    """CTE ``w``: why, the notes, and whether Python must render this row (see the module docstring)."""
    unknown_bits = (
        "'no rule matched: ' || CASE WHEN coalesce(t.last_step, '') <> '' THEN 'last step ''' || t.last_step || '''' "
        "ELSE 'no last step' END || ', ' || CASE WHEN t.has_hb THEN 'heartbeat seen' WHEN NOT t.has_hb "
        "THEN 'no heartbeat' ELSE 'heartbeat not mapped' END || ', ' || "
        "CASE WHEN t.outputs IS NOT NULL THEN t.outputs || ' outputs' ELSE 'outputs not mapped' END")
    return sql.SQL(
        "SELECT t.*, CASE WHEN t.cls = 'unknown' THEN " + unknown_bits + " "
        # As scan.classify.row_to_stuck: the app logs only its last attempt, so one entry claims no count.
        "WHEN t.cls = 'trigger-failed' AND t.tstatus IS NOT NULL THEN 'the trigger got HTTP ' || t.tstatus || "
        "' and no worker ever started' || CASE WHEN coalesce(t.trigger_failures, 0) > 1 THEN ' (the last of ' || "
        "t.trigger_failures || ' logged attempts)' ELSE ' (the app logs only its last attempt)' END "
        # As scan.classify.row_to_stuck: a timed-out row says how long ago its worker started (deadline.evidence).
        "WHEN t.cls = 'timed-out' AND t.worker_us IS NOT NULL AND t.max_duration IS NOT NULL THEN {dead} "
        "ELSE t.rule_why END AS why, "
        "array_remove(ARRAY["
        "CASE WHEN t.heartbeat_raw IS NOT NULL AND t.heartbeat_at IS NULL "
        "THEN 'heartbeat ''' || t.heartbeat_raw || ''' is not a timestamp' END, "
        "CASE WHEN t.tcut THEN 'the failed-trigger log entry is cut or not JSON' "
        "WHEN t.terr IS NOT NULL THEN (t.tobj ->> 'step') || ': ' || left(t.terr #>> '{{}}', 160) END"
        "], NULL) AS notes, "
        "coalesce(t.tedge OR t.todd OR (t.terr IS NOT NULL AND jsonb_typeof(t.terr) <> 'string') OR t.age_us < 0 "
        "OR (t.heartbeat_raw IS NOT NULL AND t.heartbeat_at IS NULL AND t.heartbeat_raw !~ " + _PLAIN + ") "
        "OR (t.cls = 'unknown' AND t.last_step !~ " + _PLAIN + ") "
        "OR (t.cls = 'timed-out' AND (t.worker_us <= 0 OR t.worker_us % 1000000 = 500000)), false) AS fallback, "
        + ", ".join(f"{_iso('t.' + c)} AS {c}_s" for c in ("created_at", "last_sign", "heartbeat_at")) + ", "
        + _seconds("t.quiet_us") + " AS quiet_s, " + _seconds("t.age_us") + " AS age_s "
        "FROM t").format(dead=deadline.evidence_sql(sql.SQL("t.worker_us"), opts.max_duration or 0.0))


def _summary_row(m: SchemaMapping, opts: ScanOptions, pct: float | None) -> sql.Composable:
    """The last row: counts by class and trigger status, per hour, onset, the oldest, and the window's counts."""
    nulls = sql.SQL(", ").join(sql.SQL("NULL") for _ in _EVIDENCE)
    # The window's counts come with the summary: one statement, one connection (window_count_sql).
    counts = window_count_sql(m, opts, sample_pct=pct) or (sql.SQL("NULL::bigint"), sql.SQL("NULL::bigint"))
    return sql.SQL(
        "SELECT NULL::text, NULL::text, NULL::bigint, NULL::numeric, {nulls}, "
        "(SELECT count(*) FROM r), "
        "(SELECT jsonb_object_agg(cls, k) FROM (SELECT cls, count(*) AS k FROM r GROUP BY cls) x), "
        "(SELECT jsonb_object_agg(tstatus::text, k) FROM (SELECT tstatus, count(*) AS k FROM r "
        "WHERE tstatus IS NOT NULL GROUP BY tstatus) x), "
        "(SELECT jsonb_object_agg(h, k) FROM (SELECT extract(epoch FROM date_trunc('hour', "
        "coalesce(created_at, last_sign) AT TIME ZONE 'UTC'))::bigint::text AS h, count(*) AS k FROM r "
        "WHERE coalesce(created_at, last_sign) IS NOT NULL GROUP BY 1) x), "
        "(SELECT min(coalesce(created_at, last_sign)) FROM r), "
        "(SELECT jsonb_build_array(id, (extract(epoch FROM created_at) * 1000000)::bigint, quiet_us) FROM r WHERE n = 1), "
        "now(), {created}, {before}").format(nulls=nulls, created=counts[0], before=counts[1])


def build_render_query(m: SchemaMapping, opts: ScanOptions, rules: Sequence[Rule], *, fmt: str,
                       shown: int | None = None, pct: float | None = None) -> sql.Composed:
    """Rows (``line``, or the evidence of a fallback row) in the scan's order, then one summary row.

    ``fmt``: json or csv lines; ``table`` writes JSON lines for the first ``shown`` rows only
    (the rest are counted, not sent). Every row the filters keep is in the summary, with the
    window's counts (``pct``: the window's rows counted in a block sample, see scan.sample_pct).
    """
    if fmt not in FORMATS:
        raise ValueError(fmt)
    c, t, w = _classified(m, opts, tuple(rules)), _trigger_details(), _why_and_notes(opts)
    wanted = sql.SQL("WHERE w.cls = ANY({}::text[])").format(sql.Literal(list(opts.classes))) if opts.classes \
        else sql.SQL("")
    # OFFSET 0 keeps the evidence a subquery of its own: each column (the step list above all) is
    # computed once per row, not again wherever a rule reads it.
    evidence = sql.SQL("SELECT * FROM ({}) e0 OFFSET 0").format(
        build_scan_query(m, replace(opts, limit=None, classes=()), ordered=False))
    # r: the rows kept, numbered in the scan's order, materialized once for the lines and the summary.
    r = sql.SQL(
        "SELECT w.*, row_number() OVER (ORDER BY w.last_sign ASC NULLS FIRST, w.key) AS n FROM w {wanted} "
        "ORDER BY w.last_sign ASC NULLS FIRST, w.key").format(wanted=wanted)
    line = _json_line() if fmt in ("json", "table") else _csv_line()
    cap = listed(fmt, shown, opts.limit)
    if cap is not None:  # --limit shortens the list, never the counts: later rows are counted, not sent
        line = sql.SQL("CASE WHEN r.n <= {} THEN {} END").format(sql.Literal(cap), line)
    fb = sql.SQL(", ").join(sql.SQL("CASE WHEN r.fallback THEN r.{} END").format(sql.Identifier(col)) for col in _EVIDENCE)
    return sql.SQL(
        "WITH e AS ({evidence}), c AS ({c}), t AS ({t}), w AS ({w}), r AS MATERIALIZED ({r}) "
        "SELECT {line}, r.cls, r.n, r.tstatus, {fb}, NULL::bigint, NULL::jsonb, NULL::jsonb, NULL::jsonb, "
        "NULL::timestamptz, NULL::jsonb, NULL::timestamptz, NULL::bigint, NULL::bigint FROM r "
        "UNION ALL {summary}"
    ).format(evidence=evidence, c=c, t=t, w=w, r=r, line=line, fb=fb, summary=_summary_row(m, opts, pct))


def listed(fmt: str, shown: int | None, limit: int | None) -> int | None:
    """How many rows are sent as lines (None: all): --limit, and for a table what it shows."""
    caps = [n for n in (limit, shown if fmt == "table" else None) if n is not None]
    return min(caps) if caps else None


def _json_line() -> sql.Composable:
    """``json.dumps(StuckRow.as_dict())``, keys in the same order, separators ", " and ": "."""
    parts = [
        ("id", _j(sql.SQL("r.id"))), ("status", _j(sql.SQL("r.status"))), ("class", _j(sql.SQL("r.cls"))),
        ("why", _j(sql.SQL("r.why"))), ("created_at", _j(sql.SQL("r.created_at_s"))),
        ("last_sign_of_life", _j(sql.SQL("r.last_sign_s"))),
        ("quiet_seconds", sql.SQL("coalesce(r.quiet_s, '0.0')")),
        ("age_seconds", sql.SQL("coalesce(r.age_s, 'null')")),
        ("heartbeat_at", _j(sql.SQL("r.heartbeat_at_s"))), ("last_step", _j(sql.SQL("r.last_step"))),
        ("trigger_status", sql.SQL("coalesce(r.tstatus::text, 'null')")),
        ("trigger_failures", sql.SQL("coalesce(r.trigger_failures, 0)::text")),
        ("error", _j(sql.SQL("r.error"))), ("outputs", sql.SQL("coalesce(r.outputs::text, 'null')")),
        ("job_state", _j(sql.SQL("r.job_state"))), ("user_id", _j(sql.SQL("r.user_id"))),
        # At most two notes (a heartbeat that is no time, the failed trigger's error).
        ("notes", sql.SQL("CASE cardinality(r.notes) WHEN 0 THEN '[]' WHEN 1 THEN '[' || to_json(r.notes[1])::text || ']' "
                          "ELSE '[' || to_json(r.notes[1])::text || ', ' || to_json(r.notes[2])::text || ']' END")),
    ]
    pieces: list[sql.Composable] = []
    for i, (key, value) in enumerate(parts):
        pieces.append(sql.Literal(("{" if i == 0 else ", ") + json.dumps(key) + ": "))
        pieces.append(value)
    pieces.append(sql.Literal("}"))
    return sql.SQL("CASE WHEN r.fallback THEN NULL ELSE {} END").format(sql.SQL(" || ").join(pieces))


def _csv_field(col: str) -> sql.Composable:
    """``csv.writer`` (QUOTE_MINIMAL): quoted when it holds , " CR or LF; NULL is empty."""
    v = f"({col})::text"
    return sql.SQL(f"CASE WHEN {col} IS NULL THEN '' WHEN {v} ~ '[,\"\\r\\n]' "
                   f"THEN '\"' || replace({v}, '\"', '\"\"') || '\"' ELSE {v} END")


def _csv_line() -> sql.Composable:
    """One row of render.scan.CSV_COLUMNS, as ``scan_csv_lines`` writes it."""
    cols = ["r.id", "r.status", "r.cls", "coalesce(r.quiet_s, '0.0')", "r.age_s", "r.created_at_s", "r.last_sign_s",
            "r.heartbeat_at_s", "r.last_step", "r.tstatus", "coalesce(r.trigger_failures, 0)", "r.outputs",
            "r.job_state", "r.user_id", "r.error", "r.why"]
    return sql.SQL("CASE WHEN r.fallback THEN NULL ELSE {} END").format(
        sql.SQL(" || ',' || ").join(_csv_field(c) for c in cols))


class RenderedScan:
    """Iterate the scan's rows as rendered lines (or, for ``table``, ``StuckRow``s of the rows shown);
    ``summary`` is complete once exhausted. Consume it inside the caller's read-only transaction.

    Same rows, order, classes, text and counts as ``ScanRun`` with ``render.scan`` (``--limit``
    shortens the list, never the counts).
    """

    def __init__(self, conn: Any, mapping: SchemaMapping, options: ScanOptions, rules: Sequence[Rule] = DEFAULT_RULES,
                 *, fmt: str, shown: int | None = None, fetch_size: int = 5000, on_rows: Any = None) -> None:
        self.conn = conn
        self.mapping = mapping
        self.options = options
        self.rules = tuple(rules)
        self.fmt = fmt
        self.shown = shown
        self.fetch_size = fetch_size
        self.on_rows = on_rows  # called with the number of rows of each fetch (progress)
        self.summary = Summary()
        self._stream: Any = None
        check_classes(options.classes, self.rules)

    def apply_counts(self, counts: tuple[Any, ...]) -> Summary:
        """More counts (realapp's window evidence) into the summary, as for ScanRun."""
        return apply_counts(self.summary, counts)

    def __iter__(self) -> Iterator[Any]:
        from psycopg.rows import tuple_row

        pct = sample_pct(self.mapping)
        cap = listed(self.fmt, self.shown, self.options.limit)
        query = build_render_query(self.mapping, self.options, self.rules, fmt=self.fmt, shown=self.shown, pct=pct)
        # Streamed in chunks (libpq's chunked rows mode), not through a DECLAREd cursor: the server
        # plans and runs it as psql would (a cursor is planned for its first rows and never runs in
        # parallel), and memory holds one chunk at a time.
        cur = self.conn.cursor(row_factory=tuple_row)
        self._stream = stream = cur.stream(query, size=self.fetch_size)
        try:
            yield from self._lines(stream, cap, pct)
        finally:
            self.close()
        # The other evidence, as ScanRun.count_window reads it: rows that ended failed at the trigger.
        if self.summary.trigger_failures is None:
            from stuckgen.scan import trigger_failures_in

            self.summary.trigger_failures = trigger_failures_in(self.conn, self.mapping, self.options)

    def close(self) -> None:
        """End the statement if its rows were not all read (a reader that stopped early, `| head`):
        psycopg cancels it, so the transaction can end. Call it before the transaction ends."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def _lines(self, stream: Iterator[tuple[Any, ...]], cap: int | None, pct: float | None) -> Iterator[Any]:
        from stuckgen.render.scan import csv_row

        by_class: Counter = Counter()
        statuses: Counter = Counter()
        while True:
            batch = list(itertools.islice(stream, self.fetch_size))
            if not batch:
                break
            if self.on_rows is not None:
                self.on_rows(len(batch))
            for rec in batch:
                line = rec[0]
                if line is not None:
                    if self.fmt == "table":
                        yield row_from_json(line)
                    elif self.fmt == "json" and (not line.isascii() or "\x7f" in line):
                        # json.dumps escapes what is not printable ASCII; PostgreSQL writes UTF-8.
                        yield json.dumps(json.loads(line))
                    else:
                        yield line
                    continue
                if rec[2] is None:  # the summary row: the last one
                    self._summarize(rec, by_class, statuses, pct)
                    continue
                if rec[4] is None:  # past the list's end, written by the server: counted, not sent
                    continue
                row = self._python_row(rec)
                # Python's reading wins for this row; keep the summary's counts in step with it.
                by_class[row.cls] += 1
                by_class[rec[1]] -= 1
                if row.trigger_status is not None:
                    statuses[row.trigger_status] += 1
                if rec[3] is not None:
                    statuses[int(rec[3])] -= 1
                if cap is not None and rec[2] > cap:  # counted, not listed
                    continue
                yield row if self.fmt == "table" else (
                    json.dumps(row.as_dict()) if self.fmt == "json" else csv_row(row))

    def _python_row(self, rec: tuple[Any, ...]) -> StuckRow:
        ev = dict(zip(_EVIDENCE, rec[4:4 + len(_EVIDENCE)]))
        return row_to_stuck(ev, self.mapping, self.rules)

    def _summarize(self, rec: tuple[Any, ...], by_class: Counter, statuses: Counter, pct: float | None) -> None:
        s = self.summary
        (stuck, classes, trig, hours, onset, oldest, now, created, before) = rec[4 + len(_EVIDENCE):]
        s.created_in_window, s.stuck_before_window = scaled_count(created, pct), before
        s.stuck = stuck
        s.by_class = Counter(classes or {}) + Counter()
        s.by_class.update(by_class)
        s.by_class = +s.by_class  # drop classes a fallback row moved to zero
        s.trigger_statuses = Counter({int(k): v for k, v in (trig or {}).items()})
        s.trigger_statuses.update(statuses)
        s.trigger_statuses = +s.trigger_statuses
        s.per_hour = Counter({datetime.fromtimestamp(int(k), timezone.utc): v for k, v in (hours or {}).items()})
        s.onset = onset
        s.database_now = now
        if oldest is not None:
            oid, created, quiet_us = oldest
            s.oldest = StuckRow(
                id=oid, status="", cls="", why="",
                created_at=None if created is None else _EPOCH + timedelta(microseconds=created), last_sign_of_life=None,
                quiet_seconds=quiet_us / 1e6, age_seconds=None, heartbeat_at=None, last_step=None,
                trigger_status=None, trigger_failures=0, error=None, outputs=None, job_state=None, user_id=None)
        if self.options.limit is not None and s.stuck > self.options.limit:
            s.truncated = True


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def row_from_json(line: str) -> StuckRow:
    """A ``StuckRow`` from its JSON line (the terminal table's rows)."""
    d = json.loads(line)
    return StuckRow(
        id=d["id"], status=d["status"], cls=d["class"], why=d["why"], created_at=_parse_time(d["created_at"]),
        last_sign_of_life=_parse_time(d["last_sign_of_life"]), quiet_seconds=d["quiet_seconds"],
        age_seconds=d["age_seconds"], heartbeat_at=_parse_time(d["heartbeat_at"]), last_step=d["last_step"],
        trigger_status=d["trigger_status"], trigger_failures=d["trigger_failures"], error=d["error"],
        outputs=d["outputs"], job_state=d["job_state"], user_id=d["user_id"], notes=tuple(d["notes"]))
