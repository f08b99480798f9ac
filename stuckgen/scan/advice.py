"""When the scan would read all of a large table: the partial index that fixes it."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from stuckgen.db import Connection, scalar
from stuckgen.scan.options import ScanOptions
from stuckgen.scan.statements import build_scan_query
from stuckgen.schema import SchemaMapping


def explain_advice(conn: Connection, mapping: SchemaMapping, options: ScanOptions, *, min_rows: int = 50000) -> str | None:
    """When the scan would read all of a large table, the partial index that fixes it.

    "All of it": a sequential scan, or an index whose leading column is not the
    status and that has no predicate (the incident's (session_id, status) index is
    read end to end to find the in-flight rows).
    """
    from psycopg.rows import tuple_row

    cur = conn.cursor(row_factory=tuple_row)
    regclass = sql.Literal(mapping.qualified().as_string(conn))
    est = cur.execute(sql.SQL("SELECT reltuples FROM pg_class WHERE oid = to_regclass({})").format(regclass)).fetchone()
    if not est or est[0] is None or est[0] < min_rows:
        return None
    plan = scalar(cur, sql.SQL("EXPLAIN (FORMAT JSON) {}").format(build_scan_query(mapping, options)))
    seq, indexes = _table_access(plan, mapping.table)
    if not seq and indexes:
        serving = scalar(cur, sql.SQL(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = to_regclass({}) AND c.relname = ANY({}) AND (i.indpred IS NOT NULL OR a.attname = {})"
        ).format(regclass, sql.Literal(sorted(indexes)), sql.Literal(mapping["status"].column)))
        if serving:
            return None
    elif not seq:
        return None
    return index_ddl(conn, mapping, options)


def _table_access(node: Any, table: str) -> tuple[bool, set[str]]:
    """(a sequential scan of ``table``, names of the indexes the plan reads) anywhere in the plan."""
    seq, indexes = False, set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, list):
            stack.extend(n)
        elif isinstance(n, dict):
            kind = n.get("Node Type", "")
            if kind == "Seq Scan" and n.get("Relation Name") == table:
                seq = True
            if kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan") and n.get("Index Name") \
                    and n.get("Relation Name", table) == table:
                indexes.add(n["Index Name"])
            stack.extend(v for k, v in n.items() if k in ("Plan", "Plans"))
    return seq, indexes


def index_ddl(conn: Connection, m: SchemaMapping, options: ScanOptions) -> str:
    col = m["created"].column if m.has("created") and not m["created"].path else m["id"].column
    q = sql.SQL("CREATE INDEX CONCURRENTLY {name} ON {tbl} ({col}) WHERE {status} IN ({vals});").format(
        name=sql.Identifier(f"{m.table}_inflight_{col}_idx"[:63]),
        tbl=m.qualified(),
        col=sql.Identifier(col or "id"),
        status=m["status"].ident(),
        vals=sql.SQL(", ").join(sql.Literal(s) for s in options.inflight_statuses),
    )
    return q.as_string(conn)
