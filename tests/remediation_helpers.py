"""Helpers the remediation tests share: a connection, the resolved mapping, selection, audit and row reads."""

from __future__ import annotations

from typing import Any

import psycopg

from stuckgen import db as dbmod
from stuckgen import remediate
from stuckgen.audit import TableAudit
from stuckgen.scan import ScanOptions
from stuckgen.schema import MappingConfig, SchemaMapping, resolve

OPTS = ScanOptions(since=None)


def mapping_of(conn: psycopg.Connection) -> SchemaMapping:
    with dbmod.transaction(conn, read_only=True):
        return resolve(conn, MappingConfig())


def select(conn: psycopg.Connection, m: SchemaMapping, **kw: Any) -> remediate.Selection:
    with dbmod.transaction(conn, read_only=True):
        return remediate.select_rows(conn, m, kw.pop("opts", OPTS), **kw)


def table_audit(conn: psycopg.Connection, m: SchemaMapping) -> TableAudit:
    a = TableAudit("stuckgen_audit", default_schema=m.db_schema)
    with dbmod.transaction(conn, read_only=False):
        a.prepare(conn)
    return a


def statuses(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as c:
        return {str(r[0]): r[1] for r in c.execute("SELECT id, status FROM generations")}


def audit_rows(dsn: str, action: str = "fail") -> list[tuple]:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT row_id, outcome, previous, new, check_hash, run_id FROM stuckgen_audit "
                         "WHERE action = %s", (action,)).fetchall()
