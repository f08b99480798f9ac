"""Values checked against their column before a write is promised: enum labels, type, CHECK, NOT NULL.

A dry run that says "would fail 3" must mean the real run can: the status ``fail``
writes is checked against what the database will accept (the enum's labels, the
column's type and length, every CHECK constraint over the column, evaluated on the
selected rows themselves), read-only, before anything is planned or written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from stuckgen.db import scalar
from stuckgen.errors import ConfigError
from stuckgen.schema import SchemaMapping

if TYPE_CHECKING:
    from stuckgen.db import Connection


class WriteRefusedError(ConfigError):
    """The database would refuse a value a write would set (2): said before anything is written."""


@dataclass(frozen=True)
class ColumnRules:
    """What the database accepts in one column."""

    column: str
    type_sql: str  # format_type(): the column's own type, e.g. "character varying(20)", "\"HdStatus\""
    enum: tuple[str, ...] | None
    not_null: bool
    checks: tuple[tuple[str, str], ...]  # (constraint name, boolean expression)

    def describe_valid(self) -> str:
        if self.enum is not None:
            return "valid values (the enum's labels): " + ", ".join(repr(v) for v in self.enum)
        if self.checks:
            return "the column's constraints: " + "; ".join(f"{n}: CHECK {e}" for n, e in self.checks)
        return f"a value of type {self.type_sql}"


def column_rules(conn: Connection, m: SchemaMapping, column: str) -> ColumnRules:
    """Type, enum labels, NOT NULL and CHECK constraints of ``column``, from the catalog."""
    reg = m.qualified().as_string(conn)
    row = conn.execute(
        "SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = a.atttypid ORDER BY e.enumsortorder) "
        "FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped",
        (reg, column)).fetchone()
    if row is None:
        raise ConfigError(f"column {column!r} not found in {m.db_schema}.{m.table}")
    checks = conn.execute(
        "SELECT c.conname, pg_get_expr(c.conbin, c.conrelid) FROM pg_constraint c JOIN pg_attribute a "
        "ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) WHERE c.conrelid = to_regclass(%s) "
        "AND c.contype = 'c' AND a.attname = %s ORDER BY 1", (reg, column)).fetchall()
    return ColumnRules(column=column, type_sql=row[0], enum=tuple(row[2]) if row[2] else None, not_null=bool(row[1]),
                       checks=tuple((r[0], r[1]) for r in checks))


def refusal(conn: Connection, m: SchemaMapping, column: str, value: str | None, *,
            keys: Sequence[Any] = (), rules: ColumnRules | None = None) -> str | None:
    """Why the database would refuse ``value`` in ``column`` of the rows ``keys``; None when it accepts it.

    Runs inside the caller's (read-only) transaction; each probe in a savepoint, so a
    refused cast does not abort it.
    """
    r = rules or column_rules(conn, m, column)
    if value is None:
        return "the column is NOT NULL" if r.not_null else None
    if r.enum is not None and value not in r.enum:
        return f"{value!r} is not a label of the enum {r.type_sql} ({r.describe_valid()})"
    cast = sql.SQL("CAST({} AS {})").format(sql.Literal(value), sql.SQL(r.type_sql))  # type text from format_type()
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SELECT {}").format(cast))
    except psycopg.Error as exc:
        return f"{value!r} is not a valid {r.type_sql}: {_first_line(exc)}"
    for name, expr in r.checks:
        # The constraint evaluated on the selected rows as they would be after the write: every
        # column as it is, this one replaced, so multi-column constraints are judged exactly.
        others = [sql.SQL("g.{}").format(sql.Identifier(c)) if c != column else
                  sql.SQL("{} AS {}").format(cast, sql.Identifier(c)) for c in m.columns]
        if keys:
            source = sql.SQL("SELECT {cols} FROM {t} g WHERE g.{id} = ANY({ids})").format(
                cols=sql.SQL(", ").join(others), t=m.qualified(), id=sql.Identifier(m["id"].column or "id"),
                ids=sql.Literal(list(keys)))
        else:
            source = sql.SQL("SELECT {} AS {}").format(cast, sql.Identifier(column))
        q = sql.SQL("SELECT count(*) FILTER (WHERE NOT ({e})) FROM ({s}) t").format(e=sql.SQL(expr), s=source)
        try:
            with conn.transaction():
                bad = scalar(conn, q)
        except psycopg.Error:
            continue  # an expression over columns a single value cannot stand for: left to the real run
        if bad:
            return f"{value!r} violates the check constraint {name} (CHECK {expr})"
    return None


def check_writes(conn: Connection, m: SchemaMapping, writes: Sequence[tuple[str, str, str | None]], *,
                 keys: Sequence[Any] = (), action: str = "fail") -> None:
    """Raise WriteRefusedError for the first (setting, column, value) the database would refuse."""
    for setting, column, value in writes:
        why = refusal(conn, m, column, value, keys=keys)
        if why:
            raise WriteRefusedError(
                f"{action} would write {value!r} into {m.db_schema}.{m.table}.{column}, which the database refuses: {why}",
                hint=f"nothing was written; set {setting}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
