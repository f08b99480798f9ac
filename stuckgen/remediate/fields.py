"""SQL shared by fail and undo: the fields a fail sets, their snapshot, hash and restore."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from psycopg import sql

from stuckgen.errors import SchemaError
from stuckgen.remediate.select import INT_TYPES, table_name
from stuckgen.schema import SchemaMapping, parse_spec

def columns_snapshot(columns: Sequence[str], alias: str) -> sql.Composable:
    """jsonb of exactly the touched columns: what a v1 audit record's undo restores and compares."""
    return sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(
        sql.SQL("{}, to_jsonb({})").format(sql.Literal(c), sql.Identifier(alias, c)) for c in columns))


@dataclass(frozen=True)
class Field:
    """A field fail sets: a column, or a key path inside a JSON column; ``key`` is how the audit names it."""

    key: str
    column: str
    path: tuple[str, ...] = ()


def field_value(f: Field) -> sql.Composable:
    col = sql.Identifier("g", f.column)
    if f.path:
        return sql.SQL("({}::jsonb #> {})").format(col, sql.Literal(list(f.path)))
    return sql.SQL("to_jsonb({})").format(col)


def fields_snapshot(fields: Sequence[Field]) -> sql.Composable:
    """jsonb of the fields' values in row ``g`` (an absent JSON key reads null): what the check hashes."""
    return sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(f.key), field_value(f)) for f in fields))


def fields_previous(fields: Sequence[Field]) -> sql.Composable:
    """The v2 ``previous``: each field's value in row ``g``, leaving out JSON keys that do not exist.

    A JSON column that is NULL is recorded whole under its column name (fail
    turns it into an object holding the keys it sets; undo puts the NULL back).
    """
    parts: list[sql.Composable] = []
    for f in fields:
        if not f.path:
            parts.append(sql.SQL("jsonb_build_object({}, {})").format(sql.Literal(f.key), field_value(f)))
            continue
        parts.append(sql.SQL(
            "CASE WHEN {col} IS NULL THEN jsonb_build_object({c}, NULL::jsonb) WHEN {v} IS NOT NULL "
            "THEN jsonb_build_object({k}, {v}) ELSE '{{}}'::jsonb END"
        ).format(col=sql.Identifier("g", f.column), c=sql.Literal(f.column), v=field_value(f), k=sql.Literal(f.key)))
    return sql.SQL(" || ").join(parts)


def fields_restore(fields: Sequence[Field], tbl: sql.Composable) -> sql.Composable:
    """SET list of undo for v2 records: each field back to ``v.prev`` (a missing JSON key is removed again)."""

    def as_column(col: str, value: sql.Composable) -> sql.Composable:
        # jsonb -> the column's own type, whatever it is (text, json, jsonb, timestamp...).
        return sql.SQL("(jsonb_populate_record(NULL::{t}, jsonb_build_object({c}, {v}))).{i}").format(
            t=tbl, c=sql.Literal(col), v=value, i=sql.Identifier(col))

    sets: list[sql.Composable] = []
    by_column: dict[str, list[Field]] = {}
    for f in fields:
        if f.path:
            by_column.setdefault(f.column, []).append(f)
        else:
            sets.append(sql.SQL("{} = {}").format(
                sql.Identifier(f.column), as_column(f.column, sql.SQL("v.prev -> {}").format(sql.Literal(f.key)))))
    for col, items in by_column.items():
        doc: sql.Composable = sql.SQL("{}::jsonb").format(sql.Identifier("g", col))
        expr = doc
        for f in items:
            expr = sql.SQL("CASE WHEN v.prev ? {k} THEN jsonb_set({e}, {p}, v.prev -> {k}, true) ELSE {e} #- {p} END").format(
                k=sql.Literal(f.key), e=expr, p=sql.Literal(list(f.path)))
        sets.append(sql.SQL(
            "{i} = CASE WHEN v.prev ? {c} THEN {whole} WHEN jsonb_typeof({d}) = 'object' THEN {restored} ELSE {g} END"
        ).format(i=sql.Identifier(col), c=sql.Literal(col), whole=as_column(col, sql.SQL("v.prev -> {}").format(sql.Literal(col))),
                 d=doc, restored=as_column(col, expr), g=sql.Identifier("g", col)))
    return sql.SQL(", ").join(sets)


def fields_from_keys(m: SchemaMapping, keys: Iterable[str]) -> tuple[Field, ...]:
    """The fields a v2 record names (its ``new`` keys), checked against the table's columns."""
    out: list[Field] = []
    for key in sorted(keys):
        column, path = parse_spec(key, option="audit record")
        if column is None or column not in m.columns:
            raise SchemaError(f"the audit record names {key!r}, which {table_name(m)} does not have")
        out.append(Field(key=key, column=column, path=path))
    return tuple(out)



def ids_param(m: SchemaMapping) -> sql.Composable:
    """The ``ids`` parameter as an array ``unnest`` can type.

    psycopg sends Python strings as ``unknown``, and ``unnest(unknown, text[], ...)``
    is ambiguous: ids that ``coerce_id`` keeps as text (text, varchar, char, ...)
    are cast to ``text[]``; uuid and integer keys already arrive typed.
    """
    t = (m["id"].data_type or "").lower()
    if t == "uuid" or t in INT_TYPES or t == "numeric":
        return sql.SQL("%(ids)s")
    return sql.SQL("%(ids)s::text[]")
