"""The census of a status column: counts per value overall and in the last day, and the role of each value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from stuckgen.db import Connection
from stuckgen.discover.catalog import enum_labels
from stuckgen.discover.vocab import word
from stuckgen.schema import SchemaMapping


@dataclass(frozen=True)
class ValueCount:
    value: str
    rows: int
    last_day: int
    newest_sign_seconds: float | None  # how long ago the liveliest row in this status showed life
    role: str | None
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "rows": self.rows, "last_day": self.last_day,
                "newest_sign_of_life_seconds_ago": None if self.newest_sign_seconds is None
                else round(self.newest_sign_seconds, 3), "role": self.role, "why": self.why}


@dataclass(frozen=True)
class Census:
    """Status values of one table, with the role each plays."""

    table: str
    column: str
    data_type: str
    enum: tuple[str, ...] | None
    values: tuple[ValueCount, ...]
    total: int
    database_now: datetime | None = None

    def role_values(self, role: str) -> list[str]:
        return [v.value for v in self.values if v.role == role]

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "column": self.column, "type": self.data_type,
                "enum_labels": list(self.enum) if self.enum is not None else None, "rows": self.total,
                "values": [v.as_dict() for v in self.values]}


MAX_VALUES = 60


def census(conn: Connection, mapping: SchemaMapping, *, naive_tz: str = "UTC") -> Census:
    """Counts per status value (overall, last day) and the newest sign of life in each."""
    from stuckgen.scan import ScanOptions, last_sign_sql

    m = mapping
    status = m["status"]
    opts = ScanOptions(naive_timezone=naive_tz)
    created = m.timestamp("created", naive_tz=naive_tz) if m.has("created") else sql.SQL("NULL::timestamptz")
    last = last_sign_sql(m, opts)
    q = sql.SQL(
        "SELECT {s}::text AS v, count(*), count(*) FILTER (WHERE {c} >= now() - interval '1 day'), "
        "extract(epoch FROM now() - max({ls}))::float8, now() FROM {t} g GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {n}"
    ).format(s=m.raw("status"), c=created, ls=last, t=m.qualified(), n=sql.Literal(MAX_VALUES))
    rows = conn.execute(q).fetchall()
    labels = enum_labels(conn, m.db_schema, m.table, status.column) if status.column and not status.path else None
    values: list[ValueCount] = []
    now = rows[0][4] if rows else None
    seen = set()
    for v, n, day, newest, _now in rows:
        value = "" if v is None else v
        seen.add(value)
        role, why = _role(value, v is None)
        values.append(ValueCount(value=value, rows=int(n), last_day=int(day), newest_sign_seconds=newest,
                                 role=role, why=why))
    for label in labels or ():
        if label not in seen:  # an enum label no row holds yet still has a role
            role, why = _role(label, False)
            values.append(ValueCount(value=label, rows=0, last_day=0, newest_sign_seconds=None, role=role, why=why))
    return Census(table=m.table, column=status.describe(), data_type=status.data_type or "",
                  enum=labels, values=tuple(values), total=sum(v.rows for v in values), database_now=now)


def statuses_unseen(conn: Connection, mapping: SchemaMapping, statuses: Sequence[str]) -> tuple[str, ...]:
    """The given statuses that no row holds: a typo in the in-flight statuses finds nothing, forever.

    One EXISTS per status, so a status that occurs costs a short read; only an absent one
    reads the whole table (or its status index).
    """
    if not statuses:
        return ()
    q = sql.SQL(
        "SELECT u.s FROM unnest({v}::text[]) WITH ORDINALITY u(s, i) "
        "WHERE NOT EXISTS (SELECT 1 FROM {t} g WHERE {st} = u.s) ORDER BY u.i"
    ).format(v=sql.Literal(list(statuses)), t=mapping.qualified(), st=mapping.text("status"))
    return tuple(r[0] for r in conn.execute(q).fetchall())


def _role(value: str, is_null: bool) -> tuple[str | None, str]:
    if is_null:
        return None, "NULL status: never in flight"
    w = word(value)
    if w is None:
        return None, "no vocabulary stuckgen knows names it: left out of the in-flight statuses (add it if it means work in progress)"
    return w.role, w.source
