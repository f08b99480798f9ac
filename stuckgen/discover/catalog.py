"""The catalogs, read: tables, their columns (text or enum status, times, provider ids) and the candidate job tables."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from stuckgen.db import Connection


_STATUS_NAME = re.compile(r"^(status|state)$|(_status|Status|_state|State)$")
_PROVIDER_EXACT = ("replicate_prediction_id", "replicatePredictionId", "prediction_id", "predictionId",
                   "replicate_id", "replicateId", "fal_request_id", "falRequestId", "provider_job_id",
                   "providerJobId", "request_id", "requestId", "external_id", "externalId")
_PROVIDER_PATTERN = re.compile(r"(prediction_?id|PredictionId|_request_id|RequestId|replicate_?id|ReplicateId)$")
_GENERIC_PROVIDER = {"request_id", "requestId", "external_id", "externalId"}
_TIME_TYPES = ("timestamp without time zone", "timestamp with time zone")


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    udt: str
    not_null: bool


def catalog(conn: Connection, db_schema: str) -> dict[str, list[Column]]:
    rows = conn.execute(
        "SELECT c.table_name, c.column_name, c.data_type, c.udt_name, c.is_nullable = 'NO' "
        "FROM information_schema.columns c JOIN information_schema.tables t "
        "ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE' "
        "WHERE c.table_schema = %s ORDER BY c.table_name, c.ordinal_position", (db_schema,)).fetchall()
    out: dict[str, list[Column]] = {}
    for t, name, dt, udt, nn in rows:
        out.setdefault(t, []).append(Column(name, dt, udt, bool(nn)))
    return out


def _estimates(conn: Connection, db_schema: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT c.relname, greatest(c.reltuples, coalesce(s.n_live_tup, 0))::bigint FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')", (db_schema,)).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def enum_labels(conn: Connection, db_schema: str, table: str, column: str) -> tuple[str, ...] | None:
    """The labels of an enum column in their declared order; None when the column is no enum."""
    rows = conn.execute(
        "SELECT e.enumlabel FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "JOIN pg_enum e ON e.enumtypid = t.oid WHERE a.attrelid = to_regclass(%s) AND a.attname = %s "
        "ORDER BY e.enumsortorder", (sql.Identifier(db_schema, table).as_string(conn), column)).fetchall()
    return tuple(r[0] for r in rows) or None


def status_columns(cols: Sequence[Column]) -> list[Column]:
    return [c for c in cols if _STATUS_NAME.search(c.name)
            and (c.data_type in ("text", "character varying", "character") or c.data_type == "USER-DEFINED")]


def _prefix(status_col: str) -> str:
    return re.sub(r"(_?status|_?state|Status|State)$", "", status_col)


def provider_columns(cols: Sequence[Column], status_col: str, other_status: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Columns that may hold the provider's id for rows of ``status_col``, best first, each with why."""
    names = [c.name for c in cols if c.data_type in ("text", "character varying", "uuid", "character")]
    prefix = _prefix(status_col).lower()
    others = [_prefix(s).lower() for s in other_status if s != status_col and _prefix(s)]
    found: list[tuple[int, str, str]] = []
    for n in names:
        exact = n in _PROVIDER_EXACT
        if not exact and not _PROVIDER_PATTERN.search(n):
            continue
        score = 0 if exact else 1
        why = "a provider id by name" + (" (a generic name: check it holds the provider's id)" if n in _GENERIC_PROVIDER else "")
        if n in _GENERIC_PROVIDER:
            score += 2
        low = n.lower()
        if prefix and low.startswith(prefix):
            score -= 4
            why = f"a provider id named like the status column {status_col!r} (same prefix {_prefix(status_col)!r})"
        elif any(o and low.startswith(o) for o in others):
            score += 4  # another status column's provider id (hdStatus -> hdPredictionId)
            why += ", but named like another status column"
        found.append((score, n, why))
    return [(n, why) for _s, n, why in sorted(found)]


@dataclass(frozen=True)
class Candidate:
    """A table that looks like a job table: a status column beside a creation time."""

    table: str
    status: str
    created: str | None
    rows: int
    score: int
    reasons: tuple[str, ...]


def candidates(conn: Connection, db_schema: str) -> list[Candidate]:
    """Job-table candidates in ``db_schema``, best first."""
    cat = catalog(conn, db_schema)
    est = _estimates(conn, db_schema)
    out: list[Candidate] = []
    for table, cols in cat.items():
        if table.startswith("stuckgen_") or table.startswith("_prisma"):
            continue
        statuses = status_columns(cols)
        if not statuses:
            continue
        names = {c.name for c in cols}
        times = [c.name for c in cols if c.data_type in _TIME_TYPES or c.data_type in ("bigint",)]
        created = next((t for t in ("created_at", "createdAt", "inserted_at", "created", "created_on", "createdon")
                        if t in names), None)
        status = next((c for c in statuses if c.name in ("status", "state")), statuses[0])
        reasons = [f"status column {status.name!r} ({status.udt if status.data_type == 'USER-DEFINED' else status.data_type})"]
        score = 2
        if created:
            score += 2
            reasons.append(f"creation time {created!r}")
        elif not times:
            continue
        if any(n in names for n in ("updated_at", "updatedAt", "modified_at")):
            score += 1
        prov = provider_columns(cols, status.name, [s.name for s in statuses])
        if prov:
            score += 3
            reasons.append(f"provider id {prov[0][0]!r}")
        if any(c.data_type in ("json", "jsonb") for c in cols):
            score += 1
        if re.search(r"generat|job|shot|prediction|task|render|image|video|run", table, re.I):
            score += 2
            reasons.append("a name used for generation jobs")
        out.append(Candidate(table=table, status=status.name, created=created, rows=est.get(table, 0),
                             score=score, reasons=tuple(reasons)))
    return sorted(out, key=lambda c: (-c.score, -c.rows, c.table))
