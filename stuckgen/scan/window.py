"""What the --since window holds besides the stuck rows: the rows created in it (the stuck rate's denominator,
sampled on a large table), the stuck rows created before it, and the rows that failed at the trigger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, NamedTuple

from psycopg import sql

from stuckgen.db import Connection
from stuckgen.scan.options import ScanOptions
from stuckgen.scan.predicates import where_stuck
from stuckgen.scan.results import BeforeWindow, BeforeWindowRow, Estimate, Summary
from stuckgen.scan.rules import DEFAULT_RULES, Rule
from stuckgen.scan.statements import class_rows_sql
from stuckgen.schema import SchemaMapping
from stuckgen.trigger_failures import TriggerFailures


BEFORE_WINDOW_NAMED = 20  # ids of stuck rows created before the window, listed by name


def build_before_window_query(m: SchemaMapping, opts: ScanOptions, rules: Sequence[Rule], *,
                              named: int = BEFORE_WINDOW_NAMED) -> sql.Composed | None:
    """Stuck rows created before the window, classified by the same rules: counts by class and the first ``named``.

    One statement; classification in SQL (``build_class_query``), so it costs one pass over
    the old in-flight rows whatever their number.
    """
    if opts.since is None or not m.has("created"):
        return None
    inner = class_rows_sql(m, replace(opts, before_window=True), rules)
    wanted = sql.SQL("WHERE cls = ANY({}::text[])").format(sql.Literal(list(opts.classes))) if opts.classes \
        else sql.SQL("")
    return sql.SQL(
        "WITH c AS MATERIALIZED (SELECT * FROM ({inner}) c0 {wanted}) "
        "SELECT (SELECT coalesce(jsonb_object_agg(cls, n), '{{}}'::jsonb) FROM "
        "(SELECT cls, count(*) AS n FROM c GROUP BY cls) x), "
        "(SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'cls', cls, "
        "'created', extract(epoch FROM created_at), 'quiet', extract(epoch FROM now() - last_sign)) "
        "ORDER BY n), '[]'::jsonb) FROM (SELECT c.*, row_number() OVER (ORDER BY last_sign ASC NULLS FIRST, key) AS n "
        "FROM c ORDER BY n LIMIT {named}) y)"
    ).format(inner=inner, wanted=wanted, named=sql.Literal(named))


def before_window(conn: Connection, mapping: SchemaMapping, options: ScanOptions, rules: Sequence[Rule], *,
                  named: int = BEFORE_WINDOW_NAMED) -> BeforeWindow | None:
    """The stuck rows the window leaves out of the scan's list; None without a window."""
    from psycopg.rows import tuple_row

    q = build_before_window_query(mapping, options, rules, named=named)
    if q is None:
        return None
    row = conn.cursor(row_factory=tuple_row).execute(q).fetchone()
    assert row is not None  # an aggregate always returns its row
    counts, named_rows = row
    rows = tuple(BeforeWindowRow(
        id=str(r["id"]), cls=str(r["cls"]), quiet_seconds=float(r["quiet"] or 0.0),
        created_at=None if r["created"] is None else datetime.fromtimestamp(float(r["created"]), tz=timezone.utc))
        for r in named_rows or ())
    by_class = {str(k): int(v) for k, v in (counts or {}).items()}
    return BeforeWindow(stuck=sum(by_class.values()), by_class=by_class, rows=rows)


# Above this many rows (the planner's estimate) the window's row count is sampled: an exact count
# reads every row of the window, so on a large table it cost more than the scan of the stuck rows
# (which the partial index makes cheap) and grew with the table.
COUNT_SAMPLE_ROWS = 20_000


EXACT_COUNT_MAX_ROWS = 20 * COUNT_SAMPLE_ROWS


def window_count_sql(m: SchemaMapping, opts: ScanOptions, *,
                     sample_pct: float | None = None) -> tuple[sql.Composable, sql.Composable] | None:
    """Two scalar subqueries: rows created in the window, and stuck rows created before it.

    ``sample_pct``: count the window's rows in a block sample of this percentage of the table
    (the caller scales it up); the stuck rows before the window are counted exactly (the
    partial index serves them). None without a window or a created time.
    """
    if opts.since is None or not m.has("created"):
        return None
    c = m.timestamp("created", naive_tz=opts.naive_timezone)
    s = sql.Literal(opts.since)
    sample = sql.SQL("TABLESAMPLE SYSTEM ({})").format(sql.Literal(sample_pct)) if sample_pct is not None \
        else sql.SQL("")
    created = sql.SQL("(SELECT count(*) FROM {t} g {sample} WHERE {c} >= now() - make_interval(secs => {s}))").format(
        t=m.qualified(), sample=sample, c=c, s=s)
    before = sql.SQL("(SELECT count(*) FROM {t} g WHERE {c} < now() - make_interval(secs => {s}) AND {w})").format(
        t=m.qualified(), w=where_stuck(m, opts, window=False), c=c, s=s)
    return created, before


def sample_pct(m: SchemaMapping) -> float | None:
    """The block-sample percentage for counting the window's rows; None: count them all."""
    if m.row_estimate > EXACT_COUNT_MAX_ROWS:
        return min(100.0, 100.0 * COUNT_SAMPLE_ROWS / m.row_estimate)
    return None


def scaled_count(n: int | None, pct: float | None) -> int | None:
    """A count over a block sample scaled back (unbiased: each block is in it with probability pct/100)."""
    if n is None or pct is None:
        return n
    return Estimate(round(n * 100.0 / pct))


def build_window_counts(m: SchemaMapping, opts: ScanOptions, *, sample_pct: float | None = None) -> sql.Composed | None:
    """Rows created in the window, and stuck rows created before it (see window_count_sql)."""
    exprs = window_count_sql(m, opts, sample_pct=sample_pct)
    if exprs is None:
        return None
    return sql.SQL("SELECT {}, {}").format(*exprs)


class WindowCounts(NamedTuple):
    """What the window holds besides the stuck rows: for rates, and the failed-at-the-trigger evidence."""

    created_in_window: int | None
    stuck_before_window: int | None
    trigger_failures: TriggerFailures | None = None


def trigger_failures_in(conn: Connection, mapping: SchemaMapping, options: ScanOptions) -> TriggerFailures:
    """The failed rows with a failed trigger (stuckgen.trigger_failures), and the rows created in the
    recent window (the rate's denominator)."""
    from psycopg.rows import tuple_row

    from stuckgen import trigger_failures

    created_recent = None
    if options.trigger_statuses and mapping.has("created"):
        q = sql.SQL("SELECT count(*) FROM {t} g WHERE {c} >= now() - make_interval(secs => {r})").format(
            t=mapping.qualified(), c=mapping.timestamp("created", naive_tz=options.naive_timezone),
            r=sql.Literal(options.trigger_window))
        counted = conn.cursor(row_factory=tuple_row).execute(q).fetchone()
        created_recent = counted[0] if counted is not None else None
    return trigger_failures.read(
        conn, mapping, statuses=options.trigger_statuses, since=options.since, recent=options.trigger_window,
        naive_timezone=options.naive_timezone, error_pattern=options.trigger_error_pattern,
        created_recent=created_recent)


def window_counts(conn: Connection, mapping: SchemaMapping, options: ScanOptions) -> WindowCounts:
    """(rows created in the window, stuck rows created before it); (None, None) without a window.

    On a table of more than EXACT_COUNT_MAX_ROWS rows the first is an ``Estimate`` from a block
    sample of about COUNT_SAMPLE_ROWS rows (a few percent off at worst; the stuck rate says ``~``),
    so the count costs the same on 1M rows as on 5M.
    """
    from psycopg.rows import tuple_row

    pct = sample_pct(mapping)
    q = build_window_counts(mapping, options, sample_pct=pct)
    row = conn.cursor(row_factory=tuple_row).execute(q).fetchone() if q is not None else (None, None)
    assert row is not None  # an aggregate always returns its row
    return WindowCounts(scaled_count(row[0], pct), row[1], trigger_failures_in(conn, mapping, options))


def window_facts(conn: Connection, mapping: SchemaMapping, options: ScanOptions,
                 rules: Sequence[Rule] = DEFAULT_RULES
                 ) -> tuple[int | None, int | None, BeforeWindow | None, TriggerFailures | None]:
    """``window_counts`` plus the stuck rows created before the window, by class and by name."""
    created, stuck_before, failures = window_counts(conn, mapping, options)
    older = before_window(conn, mapping, options, rules) if stuck_before else None
    return created, stuck_before, older, failures


def apply_counts(summary: Summary, counts: tuple[Any, ...]) -> Summary:
    """(created in the window, stuck before it[, BeforeWindow][, TriggerFailures]) into ``summary``."""
    summary.created_in_window, summary.stuck_before_window = counts[0], counts[1]
    for extra in counts[2:]:
        if isinstance(extra, BeforeWindow):
            summary.before_window = extra
            # The named rows follow --class; their count must agree with them.
            summary.stuck_before_window = extra.stuck
        elif isinstance(extra, TriggerFailures):
            summary.trigger_failures = extra
    return summary
