"""The audit log of remediation: every change and every trigger, in a table or a JSON Lines file.

A record holds the run id, the action (``fail``, ``retrigger``, ``undo``), the row
id, the new and the previous values of exactly the fields that were set, keyed
by field (``status``, ``parameters.error``: a column or a key inside a JSON
column), a hash of those fields after the change (``check``: what ``undo``
compares before restoring), the time, the operator, the outcome and a little
detail (class, reason, attempt, HTTP status). Never a secret: at most its
fingerprint.

Record schemas: ``stuckgen.audit/v2`` (this one) keeps in ``previous`` only the
values the change replaced: a JSON key that did not exist is missing from
``previous`` (undo removes it again), and a JSON column that was NULL is kept
whole under its column name. ``stuckgen.audit/v1`` kept the whole previous value
of every touched column, keyed by column name; undo still reads it. A file line
names its schema; a table row keeps it in ``detail`` (``schema``), and a row
without one is v1.

``TableAudit`` writes inside the caller's transaction, so an audit row exists
exactly when the change it describes was committed.

Where the table lives: by default ``stuckgen.audit``, in a schema of its own, because
(1) migration tools diff the app's schema and treat a table they did not create as
drift (``prisma migrate dev`` then proposes a reset; Prisma has no way to ignore one
table, prisma/orm#8864) while they leave other schemas alone; (2) Supabase's REST API
serves only the schemas it exposes (``public`` by default) and grants ``anon`` and
``authenticated`` usage of ``public`` alone, with default privileges on every new table
there. Wherever it is created, it also gets row-level security with no policy and no
privileges for ``anon``, ``authenticated`` or PUBLIC: if the schema is ever exposed, or
``--audit-table`` puts it in ``public``, the API still reads nothing. Its owner (the role
that created it) and roles with BYPASSRLS read and write it as before. An audit table at
the old default, ``<app schema>.stuckgen_audit``, is still used when ``stuckgen.audit``
does not exist, so earlier runs stay undoable. ``FileAudit`` appends after
the commit and fsyncs; the file is created owner-only (0600).
"""

from __future__ import annotations

import getpass
import json
import os
import secrets as _secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from stuckgen.db import Connection, scalar
from stuckgen.errors import AuditWriteError, ConfigError, SelectionError
from stuckgen.durations import iso_utc


AUDIT_SCHEMA = "stuckgen.audit/v2"
AUDIT_SCHEMA_V1 = "stuckgen.audit/v1"
ACTIONS = ("fail", "retrigger", "undo")  # remediation; ``notify`` records keep notification state
# Outcomes of a trigger that may have started work in the app: they count
# towards --max-attempts. A 401, a redirect or a refused connection never ran anything.
COUNTED_TRIGGER_OUTCOMES = ("accepted", "timeout", "gave-up")

DEFAULT_TABLE = "stuckgen.audit"
LEGACY_TABLE = "stuckgen_audit"  # the default before 0.x: in the app's schema
# Roles that reach tables through Supabase's Data API (PostgREST); revoked where they exist.
API_ROLES = ("anon", "authenticated")

# Column order of the table and of ``TableAudit.insert_select``.
COLUMNS = ("run_id", "action", "row_id", "table_name", "at", "operator", "outcome", "previous", "new", "check_hash",
           "detail")


def new_run_id() -> str:
    """A sortable, unique run id: ``20261128T103540Z-3fa2c1``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + _secrets.token_hex(3)


def operator_name(configured: str | None) -> str:
    """``--operator`` / ``$USER``, else the login name, else ``unknown``."""
    if configured and configured.strip():
        return configured.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"



@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One audited action on one row."""

    run_id: str
    action: str
    row_id: str
    table: str
    at: datetime
    operator: str
    outcome: str
    previous: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    check: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    schema: str = AUDIT_SCHEMA

    def as_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "run_id": self.run_id, "action": self.action, "row_id": self.row_id,
                "table": self.table, "at": iso_utc(self.at), "operator": self.operator, "outcome": self.outcome,
                "previous": self.previous, "new": self.new, "check": self.check, "detail": self.detail}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuditRecord:
        at = d.get("at")
        return cls(run_id=str(d["run_id"]), action=str(d["action"]), row_id=str(d["row_id"]),
                   table=str(d.get("table") or ""),
                   at=datetime.fromisoformat(at.replace("Z", "+00:00")) if isinstance(at, str) else
                   datetime.now(timezone.utc),
                   operator=str(d.get("operator") or ""), outcome=str(d.get("outcome") or ""),
                   previous=d.get("previous"), new=d.get("new"), check=d.get("check"),
                   detail=d.get("detail") or {}, schema=str(d.get("schema") or AUDIT_SCHEMA_V1))


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """One run as ``history`` lists it."""

    run_id: str
    action: str
    operator: str
    table: str
    started_at: datetime | None
    finished_at: datetime | None
    rows: int
    outcomes: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "action": self.action, "operator": self.operator, "table": self.table,
                "started_at": iso_utc(self.started_at), "finished_at": iso_utc(self.finished_at), "rows": self.rows,
                "outcomes": dict(self.outcomes)}


class AuditLog(ABC):
    """Where records go. ``in_transaction``: written inside the batch's transaction (a table)."""

    in_transaction: bool = False

    @property
    @abstractmethod
    def where(self) -> str:
        """Human description: ``table public.stuckgen_audit`` / ``file /var/log/x.jsonl``."""

    @abstractmethod
    def prepare(self, conn: Connection) -> None:
        """Create the table or file when missing (only called before a real run)."""

    @abstractmethod
    def append(self, conn: Connection, records: Sequence[AuditRecord]) -> None:
        """Write records (a table: in the caller's open transaction; a file: appended and fsynced)."""

    def append_alone(self, conn: Connection, records: Sequence[AuditRecord], *, statement_timeout: float,
                     lock_timeout: float) -> None:
        """Write records outside any batch: a table in a transaction of its own, a file appended."""
        if not self.in_transaction:
            self.append(conn, records)
            return
        from stuckgen.db import transaction

        with transaction(conn, read_only=False, statement_timeout=statement_timeout, lock_timeout=lock_timeout):
            self.append(conn, records)

    @abstractmethod
    def attempts(self, conn: Connection, *, table: str, row_ids: Sequence[str]) -> dict[str, int]:
        """Triggers per row that may have started work (COUNTED_TRIGGER_OUTCOMES), across runs."""

    @abstractmethod
    def run_pages(self, conn: Connection, run_id: str, *, action: str, outcome: str, page: int = 500) -> Iterator[list[AuditRecord]]:
        """The run's records with this action and outcome, a page at a time (bounded memory)."""

    @abstractmethod
    def run_actions(self, conn: Connection, run_id: str) -> dict[str, int]:
        """Records of the run per action (empty: no such run)."""

    @abstractmethod
    def undone_rows(self, conn: Connection, run_id: str) -> set[str]:
        """Row ids an earlier ``undo`` of this run already restored."""

    @abstractmethod
    def runs(self, conn: Connection, *, limit: int = 20) -> list[RunSummary]:
        """The most recent runs, newest first."""


# -- table ----------------------------------------------------------------------------------------


class TableAudit(AuditLog):
    """The audit log as a table, created on first use (``CREATE TABLE IF NOT EXISTS``)."""

    in_transaction = True

    def __init__(self, name: str, *, default_schema: str, legacy: str | None = None) -> None:
        schema, _, table = name.rpartition(".")
        if not table:
            raise ConfigError(f"--audit-table: {name!r} is not a table name")
        self.schema = schema or default_schema
        self.table = table
        # An older table to keep using while the configured one does not exist (see the module docstring).
        self._legacy: tuple[str, str] | None = None
        if legacy:
            lschema, _, ltable = legacy.rpartition(".")
            self._legacy = (lschema or default_schema, ltable)
        self._resolved = False

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    @property
    def where(self) -> str:
        return f"table {self.schema}.{self.table}"

    def _regclass(self, conn: Connection, schema: str, table: str) -> bool:
        ident = sql.Identifier(schema, table).as_string(conn)
        return bool(scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (ident,)))

    def exists(self, conn: Connection) -> bool:
        if not self._resolved:
            self._resolved = True
            if (self._legacy and not self._regclass(conn, self.schema, self.table)
                    and self._regclass(conn, *self._legacy)):
                self.schema, self.table = self._legacy
        return self._regclass(conn, self.schema, self.table)

    def prepare(self, conn: Connection) -> None:
        if self.exists(conn):
            self._harden(conn, created=False)
            return
        idx_run = sql.Identifier(f"{self.table}_run_idx"[:63])
        idx_row = sql.Identifier(f"{self.table}_row_idx"[:63])
        ddl = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {t} ("
            " id bigserial PRIMARY KEY, run_id text NOT NULL, action text NOT NULL, row_id text NOT NULL,"
            " table_name text NOT NULL, at timestamptz NOT NULL DEFAULT now(), operator text NOT NULL,"
            " outcome text NOT NULL, previous jsonb, new jsonb, check_hash text,"
            " detail jsonb NOT NULL DEFAULT '{{}}'::jsonb);"
            " CREATE INDEX IF NOT EXISTS {i1} ON {t} (run_id, id);"
            " CREATE INDEX IF NOT EXISTS {i2} ON {t} (table_name, row_id, action)"
        ).format(t=self.ident, i1=idx_run, i2=idx_row)
        try:
            if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone():
                # Only the audit's own schema is created; PUBLIC gets no usage of a new schema.
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            conn.execute(ddl)
        except pgerrors.InsufficientPrivilege as exc:
            raise ConfigError(
                f"may not create the audit table {self.schema}.{self.table}: {str(exc).splitlines()[0]}",
                hint="create it once as an owner (stuckgen fail --yes as that role creates it), pass "
                     "--audit-table SCHEMA.TABLE where this role may create tables, or keep the audit log in a "
                     "file with --audit-file PATH",
            ) from exc
        self._harden(conn, created=True)

    def _harden(self, conn: Connection, *, created: bool) -> None:
        """Row-level security with no policy; no privileges for PUBLIC or Supabase's API roles.

        On a table created elsewhere (the old default) this runs only where this role owns it:
        anyone else's table is theirs to change, and ``doctor`` says when it is readable.
        """
        row = conn.execute(
            "SELECT c.relrowsecurity, pg_has_role(c.relowner, 'USAGE'), "
            "       (SELECT s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid "
            "         WHERE d.refobjid = c.oid AND d.deptype = 'a' AND s.relkind = 'S' LIMIT 1) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (self.schema, self.table)).fetchone()
        if row is None or not row[1] or (row[0] and not created):
            return
        roles = [r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) ORDER BY 1",
                                            (list(API_ROLES),))]
        grantees = sql.SQL(", ").join([sql.SQL("PUBLIC"), *(sql.Identifier(r) for r in roles)])
        stmts = [sql.SQL("ALTER TABLE {t} ENABLE ROW LEVEL SECURITY").format(t=self.ident),
                 sql.SQL("REVOKE ALL ON TABLE {t} FROM {g}").format(t=self.ident, g=grantees)]
        if row[2]:
            seq = sql.Identifier(self.schema, row[2])
            stmts.append(sql.SQL("REVOKE ALL ON SEQUENCE {s} FROM {g}").format(s=seq, g=grantees))
        for stmt in stmts:
            conn.execute(stmt)

    def readable_by(self, conn: Connection) -> list[str]:
        """API roles (anon, authenticated) that could read this table through the Data API today."""
        if not self.exists(conn):
            return []
        ident = sql.Identifier(self.schema, self.table).as_string(conn)
        rows = conn.execute(
            "SELECT r.rolname FROM pg_roles r, pg_class c WHERE r.rolname = ANY(%s) AND c.oid = to_regclass(%s) "
            "AND has_schema_privilege(r.oid, c.relnamespace, 'USAGE') "
            "AND has_table_privilege(r.oid, c.oid, 'SELECT') AND NOT c.relrowsecurity ORDER BY 1",
            (list(API_ROLES), ident)).fetchall()
        return [r[0] for r in rows]

    def insert_select(self, select: sql.Composable) -> sql.Composed:
        """``INSERT INTO audit (COLUMNS) <select>``: the select yields COLUMNS in order."""
        return sql.SQL("INSERT INTO {t} ({cols}) {sel}").format(
            t=self.ident, cols=sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS), sel=select)

    def append(self, conn: Connection, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        q = sql.SQL("INSERT INTO {t} ({cols}) VALUES ({ph})").format(
            t=self.ident, cols=sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS),
            ph=sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)))
        with conn.cursor() as cur:
            cur.executemany(q, [(r.run_id, r.action, r.row_id, r.table, r.at, r.operator, r.outcome,
                                 None if r.previous is None else Jsonb(r.previous),
                                 None if r.new is None else Jsonb(r.new), r.check,
                                 Jsonb({**r.detail, "schema": r.schema}))
                                for r in records])

    def attempts(self, conn: Connection, *, table: str, row_ids: Sequence[str]) -> dict[str, int]:
        if not row_ids or not self.exists(conn):
            return {}
        q = sql.SQL("SELECT row_id, count(*) FROM {t} WHERE table_name = %s AND action = 'retrigger' "
                    "AND row_id = ANY(%s) AND outcome = ANY(%s) GROUP BY row_id").format(t=self.ident)
        rows = conn.execute(q, (table, list(row_ids), list(COUNTED_TRIGGER_OUTCOMES))).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    @staticmethod
    def record(r: Mapping[str, Any]) -> AuditRecord:
        """A table row (by column name) as a record; the schema comes out of ``detail``."""
        detail = dict(r["detail"] or {})
        schema = str(detail.pop("schema", None) or AUDIT_SCHEMA_V1)
        return AuditRecord(run_id=r["run_id"], action=r["action"], row_id=r["row_id"], table=r["table_name"],
                           at=r["at"], operator=r["operator"], outcome=r["outcome"], previous=r["previous"],
                           new=r["new"], check=r["check_hash"], detail=detail, schema=schema)

    def run_pages(self, conn: Connection, run_id: str, *, action: str, outcome: str, page: int = 500) -> Iterator[list[AuditRecord]]:
        from stuckgen.db import transaction

        q = sql.SQL("SELECT * FROM {t} WHERE run_id = %s AND action = %s AND outcome = %s AND id > %s "
                    "ORDER BY id LIMIT %s").format(t=self.ident)
        last = 0
        while True:
            # Keyset pages, each in its own short read: the caller commits its batches in between.
            with transaction(conn, read_only=True):
                if not self.exists(conn):
                    return
                rows = conn.cursor(row_factory=dict_row).execute(q, (run_id, action, outcome, last, page)).fetchall()
            if not rows:
                return
            last = rows[-1]["id"]
            yield [self.record(r) for r in rows]

    def run_actions(self, conn: Connection, run_id: str) -> dict[str, int]:
        if not self.exists(conn):
            return {}
        q = sql.SQL("SELECT action, count(*) FROM {t} WHERE run_id = %s GROUP BY action").format(t=self.ident)
        return {r[0]: int(r[1]) for r in conn.execute(q, (run_id,)).fetchall()}

    def undone_rows(self, conn: Connection, run_id: str) -> set[str]:
        if not self.exists(conn):
            return set()
        q = sql.SQL("SELECT row_id FROM {t} WHERE action = 'undo' AND outcome = 'restored' "
                    "AND detail->>'undo_of' = %s").format(t=self.ident)
        return {r[0] for r in conn.execute(q, (run_id,)).fetchall()}

    def last_notifications(self, conn: Connection, *, table: str) -> list[AuditRecord]:
        """The last delivered ``notify`` record per incident key and channel (stuckgen.notify's state)."""
        if not self.exists(conn):
            return []
        q = sql.SQL("SELECT DISTINCT ON (row_id, detail->>'channel') * FROM {t} "
                    "WHERE action = 'notify' AND outcome = 'sent' AND table_name = %s "
                    "ORDER BY row_id, detail->>'channel', id DESC").format(t=self.ident)
        return [self.record(r) for r in conn.cursor(row_factory=dict_row).execute(q, (table,)).fetchall()]

    def runs(self, conn: Connection, *, limit: int = 20) -> list[RunSummary]:
        if not self.exists(conn):
            return []
        q = sql.SQL(
            "WITH r AS (SELECT run_id, max(at) AS last FROM {t} GROUP BY run_id ORDER BY last DESC LIMIT %s) "
            "SELECT a.run_id, a.action, a.operator, a.table_name, a.outcome, count(*), min(a.at), max(a.at) "
            "FROM {t} a JOIN r USING (run_id) GROUP BY 1, 2, 3, 4, 5"
        ).format(t=self.ident)
        return _summaries((r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7])
                          for r in conn.execute(q, (limit,)).fetchall())[:limit]


def _summaries(groups: Iterable[tuple[str, str, str, str, str, int, datetime, datetime]]) -> list[RunSummary]:
    acc: dict[str, dict[str, Any]] = {}
    for run_id, action, op, table, outcome, n, first, last in groups:
        a = acc.setdefault(run_id, {"action": action, "operator": op, "table": table, "rows": 0, "outcomes": {},
                                    "first": first, "last": last})
        a["rows"] += n
        a["outcomes"][outcome] = a["outcomes"].get(outcome, 0) + n
        a["first"] = min(a["first"], first)
        a["last"] = max(a["last"], last)
    out = [RunSummary(run_id=k, action=v["action"], operator=v["operator"], table=v["table"],
                      started_at=v["first"], finished_at=v["last"], rows=v["rows"],
                      outcomes=dict(sorted(v["outcomes"].items())))
           for k, v in acc.items()]
    out.sort(key=lambda s: (s.finished_at or datetime.min.replace(tzinfo=timezone.utc)), reverse=True)
    return out


# -- file -----------------------------------------------------------------------------------------


class FileAudit(AuditLog):
    """The audit log as JSON Lines, one record a line; created 0600, appended with O_APPEND and fsync."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def where(self) -> str:
        return f"file {self.path}"

    def prepare(self, conn: Connection) -> None:
        self._open().close()

    def _open(self) -> Any:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"--audit-file: cannot open {self.path}: {exc.strerror}") from exc
        return os.fdopen(fd, "ab")

    def append(self, conn: Connection, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r.as_dict(), default=str, separators=(",", ":")) + "\n" for r in records)
        with self._open() as f:
            try:
                import fcntl

                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            except (ImportError, OSError):  # no advisory locks here: O_APPEND still keeps lines whole
                pass
            try:
                f.write(data.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            except OSError as exc:
                # The file is written after the batch commits: say plainly what that means.
                raise AuditWriteError(
                    f"{len(records)} row change(s) were committed but their audit lines could not be written to "
                    f"{self.path}: {exc.strerror or exc}; the run stopped here",
                    hint="free the disk, then `stuckgen history`; --audit-table keeps the audit in the batch's transaction",
                ) from exc

    def _records(self) -> Iterator[AuditRecord]:
        if not self.path.exists():
            return
        try:
            with self.path.open("r", encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        yield AuditRecord.from_dict(json.loads(line))
                    except (ValueError, KeyError, TypeError) as exc:
                        raise ConfigError(f"{self.path}:{n}: not an audit record ({type(exc).__name__})") from exc
        except OSError as exc:
            raise ConfigError(f"--audit-file: cannot read {self.path}: {exc.strerror}") from exc

    def attempts(self, conn: Connection, *, table: str, row_ids: Sequence[str]) -> dict[str, int]:
        wanted = set(row_ids)
        out: dict[str, int] = {}
        for r in self._records():
            if (r.action == "retrigger" and r.table == table and r.row_id in wanted
                    and r.outcome in COUNTED_TRIGGER_OUTCOMES):
                out[r.row_id] = out.get(r.row_id, 0) + 1
        return out

    def run_pages(self, conn: Connection, run_id: str, *, action: str, outcome: str, page: int = 500) -> Iterator[list[AuditRecord]]:
        buf: list[AuditRecord] = []
        for r in self._records():
            if r.run_id == run_id and r.action == action and r.outcome == outcome:
                buf.append(r)
                if len(buf) >= page:
                    yield buf
                    buf = []
        if buf:
            yield buf

    def run_actions(self, conn: Connection, run_id: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self._records():
            if r.run_id == run_id:
                out[r.action] = out.get(r.action, 0) + 1
        return out

    def undone_rows(self, conn: Connection, run_id: str) -> set[str]:
        return {r.row_id for r in self._records()
                if r.action == "undo" and r.outcome == "restored" and r.detail.get("undo_of") == run_id}

    def last_notifications(self, conn: Connection, *, table: str) -> list[AuditRecord]:
        """The last delivered ``notify`` record per incident key and channel (stuckgen.notify's state)."""
        last: dict[tuple[str, str], AuditRecord] = {}
        for r in self._records():
            if r.action == "notify" and r.outcome == "sent" and r.table == table:
                last[(r.row_id, str(r.detail.get("channel")))] = r
        return list(last.values())

    def runs(self, conn: Connection | None, *, limit: int = 20) -> list[RunSummary]:
        groups: dict[tuple[str, str, str, str, str], list[Any]] = {}
        for r in self._records():
            key = (r.run_id, r.action, r.operator, r.table, r.outcome)
            g = groups.setdefault(key, [0, r.at, r.at])
            g[0] += 1
            g[1] = min(g[1], r.at)
            g[2] = max(g[2], r.at)
        return _summaries((*k, v[0], v[1], v[2]) for k, v in groups.items())[:limit]


def audit_log(*, audit_file: str | None, audit_table: str | None, default_schema: str) -> AuditLog:
    """The configured log: a file when --audit-file is set, else the table."""
    if audit_file:
        return FileAudit(audit_file)
    if not audit_table or audit_table.strip().lower() == "none":
        raise ConfigError("no audit log: set --audit-table NAME or --audit-file PATH (remediation is always audited)")
    # The default falls back to the old default's table while the new one does not exist.
    legacy = LEGACY_TABLE if audit_table.strip() == DEFAULT_TABLE else None
    return TableAudit(audit_table, default_schema=default_schema, legacy=legacy)


def require_run(log: AuditLog, conn: Connection, run_id: str) -> dict[str, int]:
    """The run's actions; SelectionError when the log has no such run."""
    actions = log.run_actions(conn, run_id)
    if not actions:
        raise SelectionError(f"run {run_id!r} is not in the audit log ({log.where})",
                             hint="stuckgen history lists recent runs")
    return actions
