"""``ScanRun``: the stuck rows streamed from a server-side cursor, classified and summed up as they pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from stuckgen.db import Connection, scalar
from stuckgen.scan.classify import row_to_stuck
from stuckgen.scan.options import ScanOptions
from stuckgen.scan.results import StuckRow, Summary
from stuckgen.scan.rules import DEFAULT_RULES, Rule, check_classes
from stuckgen.scan.statements import build_scan_query
from stuckgen.scan.window import apply_counts, window_facts
from stuckgen.schema import SchemaMapping


class ScanRun:
    """Iterate stuck rows from a server-side cursor; ``summary`` is complete once exhausted.

    Must be consumed inside the (read-only) transaction the caller opened.
    """

    def __init__(self, conn: Connection, mapping: SchemaMapping, options: ScanOptions,
                 rules: Sequence[Rule] = DEFAULT_RULES, *, fetch_size: int = 2000,
                 on_row: Callable[[], None] | None = None) -> None:
        self.on_row = on_row  # called per row read (progress)
        self.conn = conn
        self.mapping = mapping
        self.options = options
        self.rules = tuple(rules)
        self.fetch_size = fetch_size
        self.summary = Summary()
        check_classes(options.classes, self.rules)

    def count_window(self, conn: Connection | None = None) -> None:
        """Count rows created in the window (for the stuck rate) and stuck rows before it.

        ``conn``: another connection to count on (the CLI runs this in a thread on a
        second connection, so the count's pass over the table overlaps the scan's).
        """
        self.apply_counts(window_facts(conn or self.conn, self.mapping, self.options, self.rules))
        if self.summary.database_now is None:
            self.summary.database_now = scalar(self.conn, "SELECT now()")

    def apply_counts(self, counts: tuple[Any, ...]) -> Summary:
        """(created in the window, stuck before it[, BeforeWindow][, TriggerFailures]) into the summary."""
        return apply_counts(self.summary, counts)

    def __iter__(self) -> Iterator[StuckRow]:
        from psycopg.rows import dict_row

        # --limit shortens the list, never the counts: every stuck row is read and counted,
        # only the first ``limit`` are yielded.
        limit = self.options.limit
        query = build_scan_query(self.mapping, replace(self.options, limit=None), self.rules)
        want = set(self.options.classes)
        with self.conn.cursor(name="stuckgen_scan", row_factory=dict_row) as cur:
            cur.itersize = self.fetch_size
            cur.execute(query)
            for rec in cur:
                if self.on_row is not None:
                    self.on_row()
                row = row_to_stuck(rec, self.mapping, self.rules)
                if want and row.cls not in want:
                    continue
                if self.summary.database_now is None:
                    self.summary.database_now = rec["db_now"]
                self.summary.add(row)
                if limit is not None and self.summary.stuck > limit:
                    self.summary.truncated = True
                    continue
                yield row
