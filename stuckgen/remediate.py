"""Remediation of stuck rows: retrigger them, fail them honestly, undo a fail run.

Everything here is safe to run against production while the app keeps writing:

* ``fail_rows`` works in batches, one transaction each, with ``lock_timeout``;
  each batch locks its rows with ``FOR UPDATE SKIP LOCKED`` (a row a worker is
  writing is skipped, never waited for) and updates them with a compare-and-set
  that re-checks the stuck predicate by the database clock, so a completion
  written a moment earlier is never overwritten. ``RETURNING`` says what changed.
* ``undo`` restores a fail run's previous values by compare-and-set against the
  hash of what the run wrote: a row changed since is skipped and reported.
* ``retrigger_rows`` calls the app's process route the way its own server
  does, with bounded concurrency, retries with backoff and jitter, an
  idempotency key, an attempt limit across runs, and a circuit breaker that
  stops at the first 401/403.

Every change and trigger goes to the audit log (``stuckgen.audit``); a table
audit is written inside the batch's transaction. SIGINT/SIGTERM between
statements roll the current batch back; while a batch commits and its audit is
written they are held and delivered right after, so every batch is all or
nothing. No Typer, no rich: the CLI renders what these functions return.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from psycopg import sql
from psycopg.rows import dict_row

from stuckgen.audit import AUDIT_SCHEMA, AUDIT_SCHEMA_V1, AuditLog, AuditRecord, TableAudit, require_run
from stuckgen.db import transaction
from stuckgen.durations import format_duration
from stuckgen.errors import (
    AuditWriteError, ConfigError, ExitCode, InsecureTransportError, SchemaError, SelectionError, StuckgenError,
)
from stuckgen.scan import DEFAULT_RULES, Rule, ScanOptions, build_class_query, check_classes, where_stuck
from stuckgen.schema import SchemaMapping, parse_spec
from stuckgen.secrets import fingerprint, scrub

RESULT_SCHEMA = "stuckgen.remediation/v1"
DEFAULT_BODY_TEMPLATE = '{"generationId": "{id}"}'
DEFAULT_IDEMPOTENCY_HEADER = "Idempotency-Key"
BYPASS_HEADER = "x-vercel-protection-bypass"
MAX_EXCERPT = 2048
MAX_RETRY_AFTER = 60.0

# Outcomes a row can end with. ``ok`` on RowOutcome says whether it counts as remediated.
OUTCOME_TEXT: dict[str, str] = {
    "failed": "set to the failed status",
    "restored": "previous values restored",
    "accepted": "the process route accepted the trigger",
    "would-fail": "dry run: would be set to the failed status",
    "would-trigger": "dry run: would be triggered",
    "would-restore": "dry run: would be restored",
    "not-found": "no such row",
    "not-stuck": "not stuck",
    "skipped-completed": "left the in-flight statuses meanwhile",
    "skipped-touched": "showed a sign of life meanwhile",
    "skipped-locked": "locked by another transaction; not waited for",
    "skipped-missing": "deleted meanwhile",
    "skipped-changed": "changed since the run; not overwritten",
    "already-undone": "an earlier undo already restored it",
    "exhausted": "attempt limit reached; leave it for `stuckgen fail`",
    "auth-rejected": "the deployment refused the credentials",
    "redirected": "the process route redirected; not followed",
    "rejected": "the process route refused the trigger",
    "gave-up": "the deployment kept failing (429/5xx)",
    "timeout": "no answer in time (the app may have started it)",
    "unreachable": "could not reach the deployment",
    "not-sent": "not sent",
    "not-attempted": "not attempted (interrupted)",
}


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RowOutcome:
    """What happened to one row."""

    id: str
    outcome: str
    ok: bool
    reason: str = ""
    cls: str | None = None
    http_status: int | None = None
    attempt: int | None = None
    tries: int | None = None
    verify: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome, "ok": self.ok, "reason": self.reason, "class": self.cls,
                "http_status": self.http_status, "attempt": self.attempt, "tries": self.tries, "verify": self.verify}


@dataclass(frozen=True, kw_only=True)
class RemediationResult:
    """A run of ``fail``, ``retrigger`` or ``undo`` (or its dry run)."""

    action: str
    run_id: str | None
    dry_run: bool
    table: str
    audit: str
    operator: str
    outcomes: tuple[RowOutcome, ...]
    started_at: datetime
    finished_at: datetime
    batches_done: int = 0
    batches_total: int = 0
    interrupted: bool = False
    stopped: str | None = None  # why the run stopped early (circuit breaker)
    stop_kind: str | None = None  # auth | redirect | unreachable
    undo_of: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(o.outcome for o in self.outcomes).most_common())

    @property
    def remediated(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def exit_code(self) -> ExitCode:
        if self.stop_kind == "unreachable":
            return ExitCode.UNREACHABLE
        if self.stopped or self.interrupted or any(not o.ok for o in self.outcomes):
            return ExitCode.FINDINGS
        return ExitCode.OK

    def as_dict(self, *, rows: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": RESULT_SCHEMA, "action": self.action, "run_id": self.run_id, "dry_run": self.dry_run,
            "table": self.table, "audit": self.audit, "operator": self.operator,
            "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
            "selected": len(self.outcomes), "remediated": self.remediated, "counts": self.counts,
            "batches": {"done": self.batches_done, "total": self.batches_total},
            "interrupted": self.interrupted, "stopped": self.stopped, "stop_kind": self.stop_kind,
            "undo_of": self.undo_of, "notes": list(self.notes),
        }
        if rows:
            d["rows"] = [o.as_dict() for o in self.outcomes]
        return d


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- selection ------------------------------------------------------------------------------------

_INT_TYPES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
_TEXT_TYPES = {"text", "character varying", "character", "citext", "name"}


def coerce_id(mapping: SchemaMapping, raw: str) -> Any:
    """``raw`` as a value of the id column's type (uuid.UUID, int or str); ValueError when it is not one."""
    f = mapping["id"]
    t = (f.data_type or "").lower()
    s = raw.strip()
    if t == "uuid":
        return uuid.UUID(s)
    if t in _INT_TYPES or t == "numeric":
        if not s.lstrip("-").isdigit():
            raise ValueError("not a whole number")
        n = int(s)
        bound = _INT_TYPES.get(t)
        if bound is not None and not -bound <= n < bound:
            raise ValueError(f"out of range for {t}")
        return n
    if not s or "\x00" in s:
        raise ValueError("empty or contains NUL")
    return s


def validate_ids(mapping: SchemaMapping, ids: Iterable[str]) -> tuple[Any, ...]:
    """Typed, de-duplicated ids; SelectionError naming every id that is not of the column's type."""
    _check_remediable(mapping)
    out: list[Any] = []
    seen: set[str] = set()
    bad: list[str] = []
    for raw in ids:
        try:
            key = coerce_id(mapping, raw)
        except ValueError:
            bad.append(raw)
            continue
        if str(key) not in seen:
            seen.add(str(key))
            out.append(key)
    if bad:
        shown = ", ".join(repr(b[:60]) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise SelectionError(
            f"{len(bad)} id(s) are not valid for {mapping.table}.{mapping['id'].column} "
            f"({mapping['id'].data_type}): {shown}")
    return tuple(out)


def _check_remediable(mapping: SchemaMapping) -> None:
    for name in ("id", "status"):
        f = mapping[name]
        if f.path:
            raise SchemaError(f"{name} is mapped inside JSON ({f.describe()}); remediation needs a real column")


@dataclass(frozen=True, kw_only=True)
class Target:
    """A selected row: its id as text, as a typed key, and its stuck class."""

    id: str
    key: Any
    cls: str | None = None


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Rows to act on, and the rows asked for that cannot be (not found, not stuck)."""

    targets: tuple[Target, ...]
    rejected: tuple[RowOutcome, ...] = ()
    by_ids: bool = False


def select_rows(conn: Any, mapping: SchemaMapping, options: ScanOptions, *, ids: Sequence[str] = (),
                all_stuck: bool = False, rules: Sequence[Rule] = DEFAULT_RULES) -> Selection:
    """Rows by id (validated first) or every stuck row matching the scan filters.

    Runs inside the caller's (read-only) transaction. Ids that exist but are not
    stuck, or not of a requested class, are rejected with the reason; when none
    of the ids is usable, SelectionError.
    """
    _check_remediable(mapping)
    if ids and all_stuck:
        raise ConfigError("give row ids or --all-stuck, not both")
    if not ids and not all_stuck:
        raise ConfigError("nothing selected: give row ids, or --all-stuck to select every stuck row",
                          hint="e.g. --all-stuck --older-than 30m --class never-started")
    check_classes(options.classes, rules)
    _no_jit(conn)
    if all_stuck:
        return Selection(targets=tuple(_stuck_targets(conn, mapping, replace(options, ids=(), limit=None), rules)))

    keys = validate_ids(mapping, ids)
    wanted = set(options.classes)
    found = {t.id: t for t in _stuck_targets(conn, mapping, replace(options, ids=tuple(str(k) for k in keys),
                                                                    since=None, classes=(), limit=None), rules)}
    targets_l: list[Target] = []
    rejected: list[RowOutcome] = []
    missing = [k for k in keys if str(k) not in found]
    status_of: dict[str, str] = {}
    if missing:
        q = sql.SQL("SELECT {id}::text, {st}::text FROM {t} g WHERE {id} = ANY(%s)").format(
            id=mapping.raw("id"), st=mapping.raw("status"), t=mapping.qualified())
        status_of = {r[0]: r[1] for r in conn.execute(q, (list(missing),)).fetchall()}
    for k in keys:
        s = str(k)
        row = found.get(s)
        if row is not None:
            if wanted and row.cls not in wanted:
                rejected.append(RowOutcome(id=s, outcome="not-stuck", ok=False, cls=row.cls,
                                           reason=f"stuck as {row.cls}, not one of --class {', '.join(sorted(wanted))}"))
            else:
                targets_l.append(Target(id=s, key=k, cls=row.cls))
        elif s in status_of:
            st = status_of[s]
            why = (f"status is {st!r}, not in flight ({', '.join(options.inflight_statuses)})"
                   if st not in options.inflight_statuses else
                   f"in flight but showed a sign of life within {format_duration(max(options.threshold, options.older_than or 0))}")
            rejected.append(RowOutcome(id=s, outcome="not-stuck", ok=False, reason=why))
        else:
            rejected.append(RowOutcome(id=s, outcome="not-found", ok=False, reason=f"no row with this id in {mapping.table}"))
    if not targets_l:
        detail = "; ".join(f"{r.id}: {r.reason}" for r in rejected[:3]) + (" ..." if len(rejected) > 3 else "")
        raise SelectionError(f"none of the {len(keys)} id(s) can be acted on: {detail}")
    return Selection(targets=tuple(targets_l), rejected=tuple(rejected), by_ids=True)


def _stuck_targets(conn: Any, mapping: SchemaMapping, options: ScanOptions,
                   rules: Sequence[Rule]) -> Iterator[Target]:
    """Stuck rows as targets, classified in SQL (``build_class_query``), in the scan's order.

    Remediation needs each row's id and class, not the scan's evidence: extracting
    the step log's details and classifying in Python cost more than the updates.
    """
    seen: set[str] = set()
    with conn.cursor(name="stuckgen_select") as cur:
        cur.itersize = 5000
        cur.execute(build_class_query(mapping, options, rules))
        for key, rid, cls in cur:
            # A queue table without UNIQUE on its key (one job row per attempt) joins a row
            # more than once: a second target would be triggered (or failed) twice.
            if rid in seen:
                continue
            seen.add(rid)
            # The driver already returns uuid/int/str keys; anything else (numeric) goes through the validator.
            yield Target(id=rid, key=key if isinstance(key, (uuid.UUID, int, str)) else coerce_id(mapping, rid), cls=cls)


def plan(action: str, selection: Selection, *, table: str, audit: str, operator: str) -> RemediationResult:
    """The dry run: what ``action`` would do to the selection; nothing is written or sent."""
    verb = {"fail": "would-fail", "retrigger": "would-trigger"}[action]
    now = _now()
    outcomes = tuple(RowOutcome(id=t.id, outcome=verb, ok=True, cls=t.cls, reason=OUTCOME_TEXT[verb])
                     for t in selection.targets) + selection.rejected
    return RemediationResult(action=action, run_id=None, dry_run=True, table=table, audit=audit, operator=operator,
                             outcomes=outcomes, started_at=now, finished_at=now)


def table_name(mapping: SchemaMapping) -> str:
    return f"{mapping.db_schema}.{mapping.table}"


# -- signals --------------------------------------------------------------------------------------


class DeferredSignals:
    """Hold SIGINT/SIGTERM from ``arm()`` until ``release()``, then deliver them.

    Armed for the whole of a batch (statement, commit, audit append), so a
    signal never lands inside the database driver: the batch finishes and the
    interrupt is delivered between batches. A second signal while armed cancels
    the running statement (``on_repeat``), so a batch stuck on a slow statement
    still rolls back promptly. Only the main thread can own signal handlers;
    elsewhere this does nothing.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_repeat: Callable[[], None] | None = None) -> None:
        self._saved: dict[int, Any] = {}
        self._pending: list[int] = []
        self._on_repeat = on_repeat
        self.forced = False

    def arm(self) -> None:
        if self._saved or threading.current_thread() is not threading.main_thread():
            return
        for sig in self._SIGNALS:
            self._saved[sig] = signal.getsignal(sig)
            signal.signal(sig, self._hold)

    def _hold(self, signum: int, frame: Any) -> None:
        self._pending.append(signum)
        if len(self._pending) > 1 and not self.forced and self._on_repeat is not None:
            self.forced = True
            self._on_repeat()

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def release(self) -> None:
        saved, self._saved = self._saved, {}
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if not self._pending:
            return
        sig = self._pending[0]
        self._pending.clear()
        handler = saved.get(sig)
        if callable(handler):
            handler(sig, None)
        elif handler == signal.SIG_IGN:
            return
        elif sig == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            os.kill(os.getpid(), sig)


# -- shared SQL -------------------------------------------------------------------------------------


def _snapshot(columns: Sequence[str], alias: str) -> sql.Composable:
    """jsonb of exactly the touched columns: what a v1 audit record's undo restores and compares."""
    return sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(
        sql.SQL("{}, to_jsonb({})").format(sql.Literal(c), sql.Identifier(alias, c)) for c in columns))


@dataclass(frozen=True)
class _Field:
    """A field fail sets: a column, or a key path inside a JSON column; ``key`` is how the audit names it."""

    key: str
    column: str
    path: tuple[str, ...] = ()


def _field_value(f: _Field) -> sql.Composable:
    col = sql.Identifier("g", f.column)
    if f.path:
        return sql.SQL("({}::jsonb #> {})").format(col, sql.Literal(list(f.path)))
    return sql.SQL("to_jsonb({})").format(col)


def _fields_snapshot(fields: Sequence[_Field]) -> sql.Composable:
    """jsonb of the fields' values in row ``g`` (an absent JSON key reads null): what the check hashes."""
    return sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(f.key), _field_value(f)) for f in fields))


def _fields_previous(fields: Sequence[_Field]) -> sql.Composable:
    """The v2 ``previous``: each field's value in row ``g``, leaving out JSON keys that do not exist.

    A JSON column that is NULL is recorded whole under its column name (fail
    turns it into an object holding the keys it sets; undo puts the NULL back).
    """
    parts: list[sql.Composable] = []
    for f in fields:
        if not f.path:
            parts.append(sql.SQL("jsonb_build_object({}, {})").format(sql.Literal(f.key), _field_value(f)))
            continue
        parts.append(sql.SQL(
            "CASE WHEN {col} IS NULL THEN jsonb_build_object({c}, NULL::jsonb) WHEN {v} IS NOT NULL "
            "THEN jsonb_build_object({k}, {v}) ELSE '{{}}'::jsonb END"
        ).format(col=sql.Identifier("g", f.column), c=sql.Literal(f.column), v=_field_value(f), k=sql.Literal(f.key)))
    return sql.SQL(" || ").join(parts)


def _fields_restore(fields: Sequence[_Field], tbl: sql.Composable) -> sql.Composable:
    """SET list of undo for v2 records: each field back to ``v.prev`` (a missing JSON key is removed again)."""

    def as_column(col: str, value: sql.Composable) -> sql.Composable:
        # jsonb -> the column's own type, whatever it is (text, json, jsonb, timestamp...).
        return sql.SQL("(jsonb_populate_record(NULL::{t}, jsonb_build_object({c}, {v}))).{i}").format(
            t=tbl, c=sql.Literal(col), v=value, i=sql.Identifier(col))

    sets: list[sql.Composable] = []
    by_column: dict[str, list[_Field]] = {}
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


def _fields_from_keys(m: SchemaMapping, keys: Iterable[str]) -> tuple[_Field, ...]:
    """The fields a v2 record names (its ``new`` keys), checked against the table's columns."""
    out: list[_Field] = []
    for key in sorted(keys):
        column, path = parse_spec(key, option="audit record")
        if column is None or column not in m.columns:
            raise SchemaError(f"the audit record names {key!r}, which {table_name(m)} does not have")
        out.append(_Field(key=key, column=column, path=path))
    return tuple(out)


def _recheck(options: ScanOptions) -> ScanOptions:
    return replace(options, ids=(), since=None, classes=(), limit=None)


@dataclass(frozen=True)
class _Change:
    columns: tuple[str, ...]
    fields: tuple[_Field, ...]  # what is set, as the audit names it (the keys of new_values)
    assignments: sql.Composable
    new_values: sql.Composable  # jsonb describing what was set, per row (references v.reason)
    notes: tuple[str, ...]


_ISO_NOW = sql.SQL("to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")


def _time_value(data_type: str, naive_tz: str) -> sql.Composable | None:
    t = data_type.lower()
    if t == "timestamp with time zone":
        return sql.SQL("now()")
    if t.startswith("timestamp"):
        return sql.SQL("(now() AT TIME ZONE {})").format(sql.Literal(naive_tz))
    if t in ("bigint", "numeric", "double precision"):
        return sql.SQL("(extract(epoch FROM now()) * 1000)::bigint")
    if t in _TEXT_TYPES:
        return _ISO_NOW
    return None


def _fail_change(m: SchemaMapping, *, failed_status: str, naive_tz: str) -> _Change:
    """SET list for fail: status, the error (column or JSON key) and ``updated`` when mapped."""
    status_col = m["status"].column
    assert status_col is not None
    sets: list[sql.Composable] = [sql.SQL("{} = {}").format(sql.Identifier(status_col), sql.Literal(failed_status))]
    columns: list[str] = [status_col]
    news: list[sql.Composable] = [sql.Literal(m["status"].describe()), sql.Literal(failed_status)]
    fields: list[_Field] = [_Field(key=m["status"].describe(), column=status_col)]
    json_sets: dict[str, list[tuple[tuple[str, ...], sql.Composable]]] = {}
    notes: list[str] = []

    def plain(col: str, value: sql.Composable) -> None:
        sets.append(sql.SQL("{} = {}").format(sql.Identifier(col), value))
        if col not in columns:
            columns.append(col)

    for name, text_value, as_time in (("error", sql.SQL("v.reason"), False), ("updated", None, True)):
        f = m[name]
        if not f.present:
            if name == "error":
                notes.append("no error field is mapped: only the status is set")
            continue
        assert f.column is not None
        dtype = (f.data_type or "").lower()
        if f.path:
            value = sql.SQL("to_jsonb({})").format(_ISO_NOW if as_time else text_value)
            json_sets.setdefault(f.column, []).append((f.path, value))
            news += [sql.Literal(f.describe()), value]
            fields.append(_Field(key=f.describe(), column=f.column, path=f.path))
            continue
        if as_time:
            tv = _time_value(dtype, naive_tz)
            if tv is None:
                notes.append(f"updated column {f.column} is {dtype}: left unchanged")
                continue
            plain(f.column, tv)
            news += [sql.Literal(f.describe()), sql.SQL("to_jsonb({})").format(tv)]
        elif dtype in _TEXT_TYPES:
            plain(f.column, sql.SQL("v.reason"))
            news += [sql.Literal(f.describe()), sql.SQL("to_jsonb(v.reason)")]
        elif dtype in ("json", "jsonb"):
            plain(f.column, sql.SQL("to_jsonb(v.reason)::{}").format(sql.SQL(dtype)))
            news += [sql.Literal(f.describe()), sql.SQL("to_jsonb(v.reason)")]
        else:
            notes.append(f"error column {f.column} is {dtype}: left unchanged")
            continue
        fields.append(_Field(key=f.describe(), column=f.column))

    for col, items in json_sets.items():
        dtype = next(m[n].data_type for n in ("error", "updated") if m[n].column == col)
        doc: sql.Composable = sql.SQL("coalesce({}::jsonb, '{{}}'::jsonb)").format(sql.Identifier("g", col))
        expr = doc
        for path, value in items:
            expr = sql.SQL("jsonb_set({}, {}, {}, true)").format(expr, sql.Literal(list(path)), value)
        full = sql.SQL("CASE WHEN jsonb_typeof({d}) = 'object' THEN {e} ELSE {d} END").format(d=doc, e=expr)
        if (dtype or "").lower() == "json":
            full = sql.SQL("({})::json").format(full)
        plain(col, full)
    ordered = tuple(c for c in m.columns if c in columns) or tuple(columns)
    return _Change(columns=ordered, fields=tuple(fields), assignments=sql.SQL(", ").join(sets),
                   new_values=sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(news)),
                   notes=tuple(notes))


def _no_jit(conn: Any) -> None:
    # A batch statement's row estimates (CTEs over unnest) are wildly high, which makes
    # PostgreSQL JIT-compile it: hundreds of milliseconds per batch for microseconds of work.
    conn.execute("SELECT set_config('jit', 'off', true)")


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@dataclass
class _Progress:
    outcomes: list[RowOutcome] = field(default_factory=list)
    done: int = 0
    interrupted: bool = False


def _apply_batches(conn: Any, batches: Iterable[Sequence[Any]], apply: Callable[[Sequence[Any]], tuple[list[RowOutcome], list[AuditRecord]]],
                   *, audit: AuditLog, statement_timeout: float, lock_timeout: float, run_id: str,
                   progress: Callable[[int], None] | None, pending: Callable[[Sequence[Any]], list[RowOutcome]] | None,
                   total: int) -> _Progress:
    """Run each batch in its own transaction; each is fully applied (with its audit) or not at all.

    ``pending`` turns the batches left after an interrupt into outcomes (None: leave them unreported,
    when producing them would need the database again).
    """
    state = _Progress()
    it = iter(batches)
    batch: Sequence[Any] | None = None

    def cancel() -> None:
        try:
            conn.cancel_safe(timeout=2.0)
        except Exception:  # best effort: the statement_timeout still bounds the batch
            pass

    try:
        while True:
            deferred = DeferredSignals(on_repeat=cancel)
            deferred.arm()
            try:
                batch = next(it, None)
                if batch is None:
                    break
                try:
                    with transaction(conn, read_only=False, statement_timeout=statement_timeout,
                                     lock_timeout=lock_timeout):
                        outcomes, records = apply(batch)
                except StuckgenError:
                    if deferred.forced:  # our own cancel after a repeated Ctrl-C: the batch rolled back
                        raise KeyboardInterrupt from None
                    raise
                if not audit.in_transaction:
                    audit.append(conn, records)
                state.outcomes.extend(outcomes)
                state.done += 1
                batch = None
                if progress:
                    progress(len(outcomes))
            finally:
                deferred.release()
    except KeyboardInterrupt:
        state.interrupted = True
        if pending is not None:
            if batch is not None:
                state.outcomes.extend(pending(batch))
            for rest in it:
                state.outcomes.extend(pending(rest))
    except AuditWriteError as exc:
        raise AuditWriteError(f"{exc.message} (run {run_id}: {state.done} earlier batch(es) of {total} applied and "
                              f"audited; this one was applied but not audited)", hint=exc.hint) from exc
    except StuckgenError as exc:
        if state.done:
            raise type(exc)(f"{exc.message} (run {run_id}: {state.done} of {total} batch(es) were applied and "
                            f"audited before this; the failed batch was rolled back)", hint=exc.hint) from exc
        raise
    return state


# -- fail -------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FailOptions:
    """How ``fail_rows`` marks rows."""

    scan: ScanOptions  # the stuck predicate the compare-and-set re-checks
    failed_status: str = "failed"
    reason: str | None = None  # None: one naming stuckgen and the row's class
    batch_size: int = 500
    statement_timeout: float = 30.0
    lock_timeout: float = 5.0


def default_reason(cls: str | None, options: ScanOptions) -> str:
    quiet = format_duration(max(options.threshold, options.older_than or 0.0))
    return f"Marked failed by stuckgen: stuck ({cls or 'unclassified'}), no sign of life for over {quiet}"


def fail_rows(conn: Any, mapping: SchemaMapping, targets: Sequence[Target], *, options: FailOptions,
              audit: AuditLog, run_id: str, operator: str,
              progress: Callable[[int], None] | None = None, rejected: Sequence[RowOutcome] = ()) -> RemediationResult:
    """Set the failed status and an error on ``targets``, batch by batch, by compare-and-set.

    Destructive. A row a worker completed, touched or holds locked in between is
    skipped and reported, never overwritten. Interrupted: the batches done stay
    done (and audited), the rest are reported as not attempted.
    """
    if options.batch_size < 1:
        raise ConfigError("--batch-size: must be at least 1")
    started = _now()
    change = _fail_change(mapping, failed_status=options.failed_status, naive_tz=options.scan.naive_timezone)
    stmt = _fail_statement(mapping, options.scan, change, audit)
    tname = table_name(mapping)
    file_audit = not audit.in_transaction

    def apply(batch: Sequence[Target]) -> tuple[list[RowOutcome], list[AuditRecord]]:
        reasons = [options.reason or default_reason(t.cls, options.scan) for t in batch]
        params = {"ids": [t.key for t in batch], "reasons": reasons, "classes": [t.cls or "" for t in batch],
                  "run": run_id, "op": operator, "tname": tname}
        _no_jit(conn)
        rows = conn.cursor(row_factory=dict_row).execute(stmt, params).fetchall()
        cls_of = {t.id: t.cls for t in batch}
        reason_of = dict(zip((t.id for t in batch), reasons))
        outs: list[RowOutcome] = []
        recs: list[AuditRecord] = []
        now = _now()
        for r in rows:
            rid = r["id"]
            oc = _fail_outcome(r, cls_of.get(rid), reason_of.get(rid, ""), options.failed_status)
            outs.append(oc)
            if oc.ok and file_audit:
                recs.append(AuditRecord(run_id=run_id, action="fail", row_id=rid, table=tname, at=now,
                                        operator=operator, outcome="failed", previous=r["prev"], new=r["new"],
                                        check=r["chk"], detail={"class": cls_of.get(rid), "reason": reason_of.get(rid)}))
        return outs, recs

    def pending(batch: Sequence[Target]) -> list[RowOutcome]:
        return [RowOutcome(id=t.id, outcome="not-attempted", ok=False, cls=t.cls, reason=OUTCOME_TEXT["not-attempted"])
                for t in batch]

    # Selection order, not table order: one row per page per batch lets PostgreSQL prune the
    # page and keep the update HOT; table order fills the page and makes every update non-HOT.
    ordered = list(targets)
    total = -(-len(ordered) // options.batch_size)
    state = _apply_batches(conn, _batches(ordered, options.batch_size), apply, audit=audit,
                           statement_timeout=options.statement_timeout, lock_timeout=options.lock_timeout,
                           run_id=run_id, progress=progress, pending=pending, total=total)
    return RemediationResult(action="fail", run_id=run_id, dry_run=False, table=tname, audit=audit.where,
                             operator=operator, outcomes=tuple(state.outcomes) + tuple(rejected),
                             started_at=started, finished_at=_now(), batches_done=state.done, batches_total=total,
                             interrupted=state.interrupted, notes=change.notes)


def _ids_param(m: SchemaMapping) -> sql.Composable:
    """The ``ids`` parameter as an array ``unnest`` can type.

    psycopg sends Python strings as ``unknown``, and ``unnest(unknown, text[], ...)``
    is ambiguous: ids that ``coerce_id`` keeps as text (text, varchar, char, ...)
    are cast to ``text[]``; uuid and integer keys already arrive typed.
    """
    t = (m["id"].data_type or "").lower()
    if t == "uuid" or t in _INT_TYPES or t == "numeric":
        return sql.SQL("%(ids)s")
    return sql.SQL("%(ids)s::text[]")


def _fail_statement(m: SchemaMapping, options: ScanOptions, change: _Change, audit: AuditLog) -> sql.Composed:
    idc = sql.Identifier(m["id"].column or "id")
    tbl = m.qualified()
    pred = where_stuck(m, _recheck(options), window=False)
    inflight = sql.SQL("{} = ANY({})").format(m.raw("status"), sql.Literal(list(options.inflight_statuses)))
    file_audit = not audit.in_transaction
    # The audit keeps only what fail replaces (v2): the status and the error key, not the whole
    # JSON document around it, which used to make the audit write as much as the update.
    parts: list[sql.Composable] = [sql.SQL(
        "WITH v AS (SELECT * FROM unnest({ids}, %(reasons)s::text[], %(classes)s::text[]) AS v(id, reason, cls)), "
        "cand AS (SELECT g.{idc} AS id, {prev} AS prev, {status}::text AS status_now, ({inflight}) AS inflight, "
        "({pred}) AS stuck FROM {tbl} g JOIN v ON g.{idc} = v.id FOR UPDATE OF g SKIP LOCKED), "
        "upd AS (UPDATE {tbl} g SET {sets} FROM cand c JOIN v ON v.id = c.id "
        "WHERE g.{idc} = c.id AND c.stuck AND {pred} RETURNING g.{idc} AS id, md5({snap}::text) AS chk)"
    ).format(ids=_ids_param(m), idc=idc, prev=_fields_previous(change.fields), snap=_fields_snapshot(change.fields),
             status=m.raw("status"), inflight=inflight, pred=pred, tbl=tbl, sets=change.assignments)]
    if isinstance(audit, TableAudit):
        parts.append(sql.SQL(", aud AS ({})").format(audit.insert_select(sql.SQL(
            "SELECT %(run)s, 'fail', u.id::text, %(tname)s, now(), %(op)s, 'failed', c.prev, {new}, u.chk, "
            "jsonb_build_object('class', nullif(v.cls, ''), 'reason', v.reason, 'schema', {schema}::text) "
            "FROM upd u JOIN cand c ON c.id = u.id JOIN v ON v.id = u.id").format(
                new=change.new_values, schema=sql.Literal(AUDIT_SCHEMA)))))
    parts.append(sql.SQL(
        " SELECT v.id::text AS id, c.id IS NOT NULL AS got_lock, c.inflight, c.stuck, c.status_now, "
        "u.id IS NOT NULL AS changed, "
        "CASE WHEN c.id IS NULL THEN EXISTS (SELECT 1 FROM {tbl} x WHERE x.{idc} = v.id) END AS still_exists, "
        "{prev} AS prev, {new} AS new, u.chk "
        "FROM v LEFT JOIN cand c ON c.id = v.id LEFT JOIN upd u ON u.id = v.id"
    ).format(tbl=tbl, idc=idc,
             prev=sql.SQL("CASE WHEN u.id IS NOT NULL THEN c.prev END") if file_audit else sql.SQL("NULL::jsonb"),
             new=sql.SQL("CASE WHEN u.id IS NOT NULL THEN {} END").format(change.new_values) if file_audit
             else sql.SQL("NULL::jsonb")))
    return sql.Composed(parts)


def _fail_outcome(r: dict[str, Any], cls: str | None, reason: str, failed_status: str) -> RowOutcome:
    rid = r["id"]
    if r["changed"]:
        return RowOutcome(id=rid, outcome="failed", ok=True, cls=cls, reason=f"status {failed_status!r}: {reason}")
    if r["got_lock"]:
        if not r["inflight"]:
            return RowOutcome(id=rid, outcome="skipped-completed", ok=False, cls=cls,
                              reason=f"left the in-flight statuses meanwhile (now {r['status_now']!r}); not overwritten")
        return RowOutcome(id=rid, outcome="skipped-touched", ok=False, cls=cls,
                          reason="showed a sign of life meanwhile (heartbeat or update within the threshold)")
    if r["still_exists"]:
        return RowOutcome(id=rid, outcome="skipped-locked", ok=False, cls=cls,
                          reason="locked by another transaction (probably a worker writing it); skipped, not waited for")
    return RowOutcome(id=rid, outcome="skipped-missing", ok=False, cls=cls, reason="deleted meanwhile")


# -- undo -------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UndoOptions:
    batch_size: int = 500
    statement_timeout: float = 30.0
    lock_timeout: float = 5.0
    dry_run: bool = False


def undo(conn: Any, mapping: SchemaMapping, run_id: str, *, audit: AuditLog, new_run_id: str, operator: str,
         options: UndoOptions = UndoOptions(), progress: Callable[[int], None] | None = None) -> RemediationResult:
    """Restore the previous values of the rows a ``fail`` run changed, by compare-and-set.

    Destructive (it writes the old values back). A row whose touched columns no
    longer hash to what the run wrote was changed since (a worker finished it,
    someone edited it): skipped and reported. Rows an earlier undo restored are
    reported as already undone.
    """
    _check_remediable(mapping)
    started = _now()
    tname = table_name(mapping)
    with transaction(conn, read_only=True, statement_timeout=options.statement_timeout):
        actions = require_run(audit, conn, run_id)
        if "fail" not in actions:
            kinds = ", ".join(sorted(actions))
            raise SelectionError(f"run {run_id} is a {kinds} run; only fail runs can be undone "
                                 "(a trigger cannot be taken back)")
        done_before = audit.undone_rows(conn, run_id)
    total = -(-actions["fail"] // options.batch_size)
    outcomes: list[RowOutcome] = []
    notes: list[str] = []

    def pages() -> Iterator[list[AuditRecord]]:
        for page in audit.run_pages(conn, run_id, action="fail", outcome="failed", page=options.batch_size):
            fresh = []
            for rec in page:
                if rec.table and rec.table != tname:
                    raise ConfigError(f"run {run_id} changed {rec.table}, but the mapping points at {tname}",
                                      hint="pass --table/--db-schema as for the fail run")
                if rec.row_id in done_before:
                    outcomes.append(RowOutcome(id=rec.row_id, outcome="already-undone", ok=True,
                                               cls=rec.detail.get("class"), reason=OUTCOME_TEXT["already-undone"]))
                else:
                    fresh.append(rec)
            # One statement per record schema and set of fields (a run uses one mapping, so normally one).
            groups: dict[tuple[str, tuple[str, ...]], list[AuditRecord]] = {}
            for rec in fresh:
                groups.setdefault(_undo_group(rec), []).append(rec)
            yield from groups.values()

    def apply(batch: Sequence[AuditRecord]) -> tuple[list[RowOutcome], list[AuditRecord]]:
        schema, names = _undo_group(batch[0])
        if schema == AUDIT_SCHEMA_V1:
            unknown = [c for c in names if c not in mapping.columns]
            if not names or unknown:
                raise SchemaError(f"run {run_id} recorded columns {', '.join(names) or '(none)'}, "
                                  f"which {tname} does not have all of")
            snap, sets = _snapshot(names, "g"), _columns_restore(names, mapping.qualified())
        else:
            if not names:
                raise SchemaError(f"run {run_id} recorded no fields it set; nothing to restore")
            fields = _fields_from_keys(mapping, names)
            snap, sets = _fields_snapshot(fields), _fields_restore(fields, mapping.qualified())
        keys = [coerce_id(mapping, rec.row_id) for rec in batch]
        from psycopg.types.json import Jsonb

        params = {"ids": keys, "prev": [Jsonb(rec.previous) for rec in batch], "chk": [rec.check or "" for rec in batch],
                  "run": new_run_id, "op": operator, "tname": tname, "of": run_id}
        stmt = _undo_statement(mapping, snap=snap, sets=sets, audit=audit, dry_run=options.dry_run)
        _no_jit(conn)
        rows = conn.cursor(row_factory=dict_row).execute(stmt, params).fetchall()
        by_id = {rec.row_id: rec for rec in batch}
        outs: list[RowOutcome] = []
        recs: list[AuditRecord] = []
        now = _now()
        for r in rows:
            rec = by_id[r["id"]]
            cls = rec.detail.get("class")
            if r["changed"]:
                outs.append(RowOutcome(id=r["id"], outcome="would-restore" if options.dry_run else "restored", ok=True,
                                       cls=cls, reason="previous values restored" if not options.dry_run else
                                       "dry run: unchanged since the run, would be restored"))
                if not options.dry_run and not audit.in_transaction:
                    recs.append(AuditRecord(run_id=new_run_id, action="undo", row_id=r["id"], table=tname, at=now,
                                            operator=operator, outcome="restored", previous=r["cur"],
                                            new=rec.previous, check=r["chk"], detail={"undo_of": run_id, "class": cls}))
            elif r["got_lock"]:
                outs.append(RowOutcome(id=r["id"], outcome="skipped-changed", ok=False, cls=cls,
                                       reason=f"changed since run {run_id} (now {r['status_now']!r}); not overwritten"))
            elif r["still_exists"]:
                outs.append(RowOutcome(id=r["id"], outcome="skipped-locked", ok=False, cls=cls,
                                       reason=OUTCOME_TEXT["skipped-locked"]))
            else:
                outs.append(RowOutcome(id=r["id"], outcome="skipped-missing", ok=False, cls=cls,
                                       reason="deleted since the run"))
        return outs, recs

    state = _apply_batches(conn, pages(), apply, audit=audit, statement_timeout=options.statement_timeout,
                           lock_timeout=options.lock_timeout, run_id=new_run_id, progress=progress, pending=None,
                           total=total)
    if state.interrupted:
        left = actions["fail"] - len(done_before) - sum(1 for o in state.outcomes)
        notes.append(f"interrupted: {max(left, 0)} row(s) of run {run_id} were not attempted; run undo again to finish")
    return RemediationResult(action="undo", run_id=None if options.dry_run else new_run_id, dry_run=options.dry_run,
                             table=tname, audit=audit.where, operator=operator,
                             outcomes=tuple(outcomes) + tuple(state.outcomes), started_at=started, finished_at=_now(),
                             batches_done=state.done, batches_total=total, interrupted=state.interrupted,
                             undo_of=run_id, notes=tuple(notes))


def _undo_group(rec: AuditRecord) -> tuple[str, tuple[str, ...]]:
    """How a fail record is undone: v1 by the columns it kept whole, v2 by the fields it set."""
    if rec.schema == AUDIT_SCHEMA_V1:
        return AUDIT_SCHEMA_V1, tuple(sorted((rec.previous or {}).keys()))
    return AUDIT_SCHEMA, tuple(sorted((rec.new or {}).keys()))


def _columns_restore(cols: Sequence[str], tbl: sql.Composable) -> sql.Composable:
    """SET list of undo for v1 records: every touched column back to its whole previous value."""
    return sql.SQL(", ").join(
        sql.SQL("{c} = (jsonb_populate_record(NULL::{t}, v.prev)).{c}").format(c=sql.Identifier(c), t=tbl)
        for c in cols)


def _undo_statement(m: SchemaMapping, *, snap: sql.Composable, sets: sql.Composable, audit: AuditLog,
                    dry_run: bool) -> sql.Composed:
    """Compare-and-set: rows whose ``snap`` still hashes to the run's check get ``sets`` (from ``v.prev``)."""
    idc = sql.Identifier(m["id"].column or "id")
    tbl = m.qualified()
    head = sql.SQL(
        "WITH v AS (SELECT * FROM unnest({ids}, %(prev)s::jsonb[], %(chk)s::text[]) AS v(id, prev, chk)), "
        "cand AS (SELECT g.{idc} AS id, {snap} AS cur, {status}::text AS status_now FROM {tbl} g "
        "JOIN v ON g.{idc} = v.id {lock})"
    ).format(ids=_ids_param(m), idc=idc, snap=snap, status=m.raw("status"), tbl=tbl,
             lock=sql.SQL("") if dry_run else sql.SQL("FOR UPDATE OF g SKIP LOCKED"))
    tail = sql.SQL(
        " SELECT v.id::text AS id, c.id IS NOT NULL AS got_lock, {changed} AS changed, c.status_now, "
        "CASE WHEN c.id IS NULL THEN EXISTS (SELECT 1 FROM {tbl} x WHERE x.{idc} = v.id) END AS still_exists, "
        "{cur} AS cur, {chk} AS chk FROM v LEFT JOIN cand c ON c.id = v.id {join}")
    if dry_run:
        return sql.Composed([head, tail.format(
            changed=sql.SQL("coalesce(md5(c.cur::text) = v.chk, false)"), tbl=tbl, idc=idc,
            cur=sql.SQL("NULL::jsonb"), chk=sql.SQL("NULL::text"), join=sql.SQL(""))])
    parts: list[sql.Composable] = [head, sql.SQL(
        ", upd AS (UPDATE {tbl} g SET {sets} FROM cand c JOIN v ON v.id = c.id "
        "WHERE g.{idc} = c.id AND md5(c.cur::text) = v.chk RETURNING g.{idc} AS id, md5({snap}::text) AS chk)"
    ).format(tbl=tbl, sets=sets, idc=idc, snap=snap)]
    if isinstance(audit, TableAudit):
        parts.append(sql.SQL(", aud AS ({})").format(audit.insert_select(sql.SQL(
            "SELECT %(run)s, 'undo', u.id::text, %(tname)s, now(), %(op)s, 'restored', c.cur, v.prev, u.chk, "
            "jsonb_build_object('undo_of', %(of)s::text, 'schema', {schema}::text) "
            "FROM upd u JOIN cand c ON c.id = u.id JOIN v ON v.id = u.id").format(schema=sql.Literal(AUDIT_SCHEMA)))))
    parts.append(tail.format(changed=sql.SQL("u.id IS NOT NULL"), tbl=tbl, idc=idc,
                             cur=sql.SQL("CASE WHEN u.id IS NOT NULL THEN c.cur END"), chk=sql.SQL("u.chk"),
                             join=sql.SQL("LEFT JOIN upd u ON u.id = v.id")))
    return sql.Composed(parts)


# -- retrigger ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RetriggerOptions:
    """How ``retrigger_rows`` calls the process route."""

    url: str  # the full endpoint: base URL + route
    scan: ScanOptions  # the stuck predicate re-checked just before each send
    secret: str | None = field(default=None, repr=False)  # credentials: never in a repr or a traceback
    secret_header: str = "x-internal-secret"
    bypass_secret: str | None = field(default=None, repr=False)
    body_template: str = DEFAULT_BODY_TEMPLATE
    idempotency_header: str | None = DEFAULT_IDEMPOTENCY_HEADER
    concurrency: int = 4
    max_attempts: int = 3  # triggers per row across runs, counted from the audit log
    tries: int = 3  # HTTP tries per trigger (timeouts, 429, 5xx)
    backoff: float = 0.5  # first pause between tries; doubles, with jitter
    max_backoff: float = 10.0
    wait: float = 0.0  # verify after waiting up to this long for rows to leave in flight
    poll: float = 1.0
    allow_insecure: bool = False
    statement_timeout: float = 30.0
    lock_timeout: float = 5.0


def is_loopback_host(host: str) -> bool:
    from stuckgen.probe import is_loopback

    return is_loopback(host)


def check_transport(url: str, *, sends_credentials: bool, allow_insecure: bool = False) -> None:
    """InsecureTransportError when credentials would go over plain HTTP to a host that is not loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--url: {url!r} is not an http(s) URL", hint="e.g. --url https://app.example.com")
    if sends_credentials and parts.scheme == "http" and not allow_insecure and not is_loopback_host(parts.hostname):
        raise InsecureTransportError(
            f"refusing to send the secret over plain HTTP to {parts.hostname}",
            hint="use https://, or pass --allow-insecure if you accept the risk")


def render_body(template: str, row_id: str) -> bytes:
    """The request body: the JSON template with every ``{id}`` replaced by the row id."""
    try:
        doc = json.loads(template)
    except ValueError as exc:
        raise ConfigError(f"--body-template: not JSON: {exc}") from None

    def sub(x: Any) -> Any:
        if isinstance(x, str):
            return x.replace("{id}", row_id)
        if isinstance(x, list):
            return [sub(i) for i in x]
        if isinstance(x, dict):
            return {k: sub(v) for k, v in x.items()}
        return x

    if "{id}" not in template:
        raise ConfigError("--body-template: must contain {id} where the row id goes, e.g. "
                          + DEFAULT_BODY_TEMPLATE)
    return json.dumps(sub(doc)).encode("utf-8")


def retry_delay(attempt: int, *, base: float, cap: float, retry_after: float | None,
                rng: random.Random | None = None) -> float:
    """Pause before try ``attempt + 1``: Retry-After when given (capped), else exponential with jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    r = rng or random
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return ceiling / 2 + r.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    v = value.strip()
    if v.isdigit():
        return float(v)
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Breaker:
    """Opens once, on the first answer that says every further row would fail the same way."""

    def __init__(self, unreachable_limit: int) -> None:
        self._lock = threading.Lock()
        self.reason: str | None = None
        self.kind: str | None = None
        self._unreachable_streak = 0
        self._unreachable_limit = unreachable_limit

    @property
    def open(self) -> bool:
        return self.reason is not None

    def trip(self, kind: str, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.kind, self.reason = kind, reason

    def record(self, outcome: str, url: str) -> None:
        with self._lock:
            self._unreachable_streak = self._unreachable_streak + 1 if outcome == "unreachable" else 0
            streak = self._unreachable_streak
        if streak >= self._unreachable_limit:
            self.trip("unreachable", f"{streak} rows in a row could not reach {url}; stopped")


def _auth_diagnosis(status: int, headers: Any, body: str, *, secret_sent: bool, secret_header: str) -> str:
    cookies = " ".join(headers.get_list("set-cookie")) if hasattr(headers, "get_list") else ""
    if "_vercel_sso_nonce" in cookies or "Authentication Required" in body:
        return ("Vercel Deployment Protection answered before the app; send the bypass secret "
                "(VERCEL_AUTOMATION_BYPASS_SECRET / --bypass-secret)")
    if status == 403:
        return "the app answered Forbidden: this caller may not process that row"
    if not secret_sent:
        return f"no secret was sent: set INTERNAL_API_SECRET so stuckgen can send {secret_header}"
    return ("the app rejected the internal secret: the deployment's INTERNAL_API_SECRET is missing, "
            "or differs from yours (another environment or branch, a rotated value, a trailing newline)")


def _read_excerpt(resp: Any) -> str:
    buf = b""
    for chunk in resp.iter_bytes():
        buf += chunk
        if len(buf) >= MAX_EXCERPT:
            break
    return buf[:MAX_EXCERPT].decode("utf-8", "replace")


def partition_attempts(targets: Sequence[Target], attempts: dict[str, int], *,
                       max_attempts: int) -> tuple[list[Target], list[RowOutcome]]:
    """Targets still under the attempt limit, and an ``exhausted`` outcome for each of the others."""
    under: list[Target] = []
    exhausted: list[RowOutcome] = []
    for t in targets:
        n = attempts.get(t.id, 0)
        if n >= max_attempts:
            exhausted.append(RowOutcome(id=t.id, outcome="exhausted", ok=False, cls=t.cls, attempt=n,
                                        reason=f"triggered {n} time(s) already (--max-attempts {max_attempts}); "
                                               "leave it for `stuckgen fail`"))
        else:
            under.append(t)
    return under, exhausted


def retrigger_rows(client: Any, conn: Any, mapping: SchemaMapping, targets: Sequence[Target], *,
                   options: RetriggerOptions, audit: AuditLog, run_id: str, operator: str,
                   progress: Callable[[int], None] | None = None,
                   rejected: Sequence[RowOutcome] = ()) -> RemediationResult:
    """Trigger the process route for each target; verify afterwards which rows moved.

    Fires production work. ``client`` is an ``httpx.Client`` that must not follow
    redirects. Each row is re-read just before it is sent and skipped when it
    left the in-flight statuses or showed a sign of life; a row is never sent
    twice at once. The first 401/403 (or a redirect) opens the circuit breaker:
    no further row is sent.
    """
    if options.concurrency < 1:
        raise ConfigError("--concurrency: must be at least 1")
    if options.tries < 1 or options.max_attempts < 1:
        raise ConfigError("--tries and --max-attempts must be at least 1")
    if getattr(client, "follow_redirects", False):
        raise ConfigError("the HTTP client must not follow redirects (the secret would follow them)")
    check_transport(options.url, sends_credentials=bool(options.secret or options.bypass_secret),
                    allow_insecure=options.allow_insecure)
    render_body(options.body_template, "x")  # validate once, before anything is sent
    _check_remediable(mapping)
    started = _now()
    tname = table_name(mapping)
    db_lock = threading.Lock()
    stop = threading.Event()
    breaker = _Breaker(unreachable_limit=max(3, options.concurrency))
    pred = where_stuck(mapping, _recheck(options.scan), window=False)
    reread = sql.SQL("SELECT {st}::text AS status, ({pred}) AS stuck FROM {t} g WHERE g.{idc} = %s").format(
        st=mapping.raw("status"), pred=pred, t=mapping.qualified(), idc=sql.Identifier(mapping["id"].column or "id"))
    secret_fp = fingerprint(options.secret) if options.secret else None

    with transaction(conn, read_only=True, statement_timeout=options.statement_timeout):
        attempts = audit.attempts(conn, table=tname, row_ids=[t.id for t in targets])
        t0 = conn.execute("SELECT now()").fetchone()[0]

    to_send, exhausted = partition_attempts(targets, attempts, max_attempts=options.max_attempts)
    outcomes: dict[str, RowOutcome] = {o.id: o for o in exhausted}

    def flush_audit(records: list[AuditRecord]) -> None:
        with db_lock:
            if audit.in_transaction:
                with transaction(conn, read_only=False, statement_timeout=options.statement_timeout,
                                 lock_timeout=options.lock_timeout):
                    audit.append(conn, records)
            else:
                audit.append(conn, records)

    writer = _AuditWriter(flush_audit)

    def one(t: Target) -> RowOutcome:
        attempt = attempts.get(t.id, 0) + 1
        if stop.is_set() or breaker.open:
            return RowOutcome(id=t.id, outcome="not-sent", ok=False, cls=t.cls,
                              reason="not sent: " + ("interrupted" if stop.is_set() else "the circuit breaker is open"))
        with db_lock, transaction(conn, read_only=True, statement_timeout=options.statement_timeout):
            row = conn.cursor(row_factory=dict_row).execute(reread, (t.key,)).fetchone()
        if row is None:
            return RowOutcome(id=t.id, outcome="skipped-missing", ok=False, cls=t.cls, reason="deleted meanwhile")
        if row["status"] not in options.scan.inflight_statuses:
            return RowOutcome(id=t.id, outcome="skipped-completed", ok=False, cls=t.cls,
                              reason=f"left the in-flight statuses meanwhile (now {row['status']!r}); not sent")
        if not row["stuck"]:
            return RowOutcome(id=t.id, outcome="skipped-touched", ok=False, cls=t.cls,
                              reason="showed a sign of life meanwhile; not sent")
        key = f"stuckgen-{t.id}-{attempt}"
        outcome, status, tries, reason = _send(client, t.id, key, options, stop, breaker)
        breaker.record(outcome, options.url)
        if outcome not in ("not-sent",):
            detail: dict[str, Any] = {"class": t.cls, "attempt": attempt, "tries": tries, "http_status": status,
                                      "idempotency_key": key if options.idempotency_header else None,
                                      "url": options.url}
            if secret_fp:
                detail["secret_fingerprint"] = secret_fp
            writer.add(AuditRecord(run_id=run_id, action="retrigger", row_id=t.id, table=tname, at=_now(),
                                    operator=operator, outcome=outcome, detail=detail))
        return RowOutcome(id=t.id, outcome=outcome, ok=outcome == "accepted", cls=t.cls, http_status=status,
                          attempt=attempt, tries=tries, reason=reason)

    interrupted = False
    pool = ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="stuckgen-retrigger")
    futures: dict[Future[RowOutcome], Target] = {}
    queue = list(reversed(to_send))
    try:
        # Submit only as many as can run: rows not yet submitted when the breaker opens are never sent.
        while queue or futures:
            while queue and len(futures) < options.concurrency and not breaker.open and not stop.is_set():
                t = queue.pop()
                futures[pool.submit(one, t)] = t
            if not futures:
                break
            done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            for fut in done:
                t = futures.pop(fut)
                outcomes[t.id] = fut.result()
                if progress:
                    progress(1)
            if breaker.open or stop.is_set():
                for rest in queue:
                    outcomes[rest.id] = RowOutcome(id=rest.id, outcome="not-sent", ok=False, cls=rest.cls,
                                                   reason="not sent: the circuit breaker is open")
                queue.clear()
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        for fut, t in futures.items():
            try:
                outcomes[t.id] = fut.result()
            except BaseException:  # the worker itself was interrupted: nothing was recorded for it
                outcomes[t.id] = RowOutcome(id=t.id, outcome="not-attempted", ok=False, cls=t.cls,
                                            reason=OUTCOME_TEXT["not-attempted"])
        for t in queue:
            outcomes[t.id] = RowOutcome(id=t.id, outcome="not-attempted", ok=False, cls=t.cls,
                                        reason=OUTCOME_TEXT["not-attempted"])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        writer.close()

    ordered = [outcomes[t.id] for t in targets if t.id in outcomes]
    notes: list[str] = []
    accepted = [t for t in targets if outcomes.get(t.id) and outcomes[t.id].outcome == "accepted"]
    if accepted and not interrupted:
        try:
            verdicts = verify(conn, mapping, [t.key for t in accepted], since=t0, options=options)
        except KeyboardInterrupt:
            interrupted = True
            verdicts = {}
            notes.append("verification interrupted")
        waited = options.wait > 0
        ordered = [replace(o, verify=verdicts.get(o.id), ok=o.ok and not (waited and verdicts.get(o.id) == "still-stuck"))
                   if o.outcome == "accepted" else o for o in ordered]
    return RemediationResult(action="retrigger", run_id=run_id, dry_run=False, table=tname, audit=audit.where,
                             operator=operator, outcomes=tuple(ordered) + tuple(rejected), started_at=started,
                             finished_at=_now(), batches_done=0, batches_total=0, interrupted=interrupted,
                             stopped=breaker.reason, stop_kind=breaker.kind, notes=tuple(notes))


class _AuditWriter:
    """Collects trigger records and writes them together, every ``interval`` seconds and at close.

    One commit per row would serialise the workers on the database's WAL flush;
    a group commit keeps the audit off the critical path. ``close`` writes what is
    left (also after an interrupt).
    """

    def __init__(self, flush: Callable[[list[AuditRecord]], None], *, interval: float = 0.2) -> None:
        self._flush = flush
        self._interval = interval
        self._lock = threading.Lock()
        self._records: list[AuditRecord] = []
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stuckgen-audit", daemon=True)
        self._thread.start()

    def add(self, record: AuditRecord) -> None:
        with self._lock:
            self._records.append(record)

    def _drain(self) -> None:
        with self._lock:
            records, self._records = self._records, []
        if records:
            self._flush(records)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._drain()
            except BaseException as exc:  # reported by close(), in the caller's thread
                self._error = exc
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._drain()


def _send(client: Any, row_id: str, key: str, options: RetriggerOptions, stop: threading.Event,
          breaker: _Breaker) -> tuple[str, int | None, int, str]:
    """One trigger with its retries: (outcome, last HTTP status, tries, reason)."""
    import httpx

    headers = {"content-type": "application/json", "accept": "application/json"}
    if options.secret:
        headers[options.secret_header] = options.secret
    if options.bypass_secret:
        headers[BYPASS_HEADER] = options.bypass_secret
    if options.idempotency_header:
        headers[options.idempotency_header] = key
    body = render_body(options.body_template, row_id)
    last: tuple[str, int | None, str] = ("not-sent", None, "not sent")
    tries = 0
    for n in range(1, options.tries + 1):
        if breaker.open or (stop.is_set() and n > 1):
            break
        tries = n
        retry_after: float | None = None
        try:
            with client.stream("POST", options.url, content=body, headers=headers) as resp:
                # A server that echoes request headers must not put the secret into our report.
                excerpt = scrub(_read_excerpt(resp), [options.secret, options.bypass_secret])
                status = resp.status_code
                resp_headers = resp.headers
        except httpx.TimeoutException:
            last = ("timeout", None, "no answer in time (the app treats that as probably started)")
        except httpx.TransportError as exc:
            last = ("unreachable", None, f"could not reach the deployment: {type(exc).__name__}")
        else:
            if 200 <= status < 300:
                return "accepted", status, n, f"HTTP {status}: accepted"
            if status in (401, 403):
                why = _auth_diagnosis(status, resp_headers, excerpt, secret_sent=bool(options.secret),
                                      secret_header=options.secret_header)
                breaker.trip("auth", f"the deployment answered HTTP {status} for row {row_id}: {why}. "
                                     "Stopped before sending any further row; run `stuckgen probe-auth` for a diagnosis")
                return "auth-rejected", status, n, f"HTTP {status}: {why}"
            if 300 <= status < 400:
                loc = resp_headers.get("location", "?")
                breaker.trip("redirect", f"the process route answered HTTP {status} redirecting to {loc}; stuckgen "
                                         "does not follow redirects with the secret: use the final URL as --url")
                return "redirected", status, n, f"HTTP {status} to {loc}; not followed"
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(resp_headers.get("retry-after"))
                last = ("gave-up", status, f"HTTP {status} after {n} tries")
            else:
                return "rejected", status, n, f"HTTP {status}: {excerpt[:160].strip()}"
        if n < options.tries:
            pause = retry_delay(n, base=options.backoff, cap=options.max_backoff, retry_after=retry_after)
            if stop.wait(pause):
                break
    outcome, status, reason = last
    if outcome == "gave-up":
        reason = f"HTTP {status} after {tries} tries"
    elif outcome in ("timeout", "unreachable"):
        reason = f"{reason} ({tries} tries)"
    return outcome, status, tries, reason


def verify(conn: Any, mapping: SchemaMapping, keys: Sequence[Any], *, since: datetime,
           options: RetriggerOptions) -> dict[str, str]:
    """Per row: its new status when it left in flight, ``alive`` (heartbeat since the run), ``still-stuck``, ``in-flight``.

    With ``options.wait`` > 0, polls until every row left the in-flight statuses or the time is up.
    """
    tz = options.scan.naive_timezone
    inflight = sql.SQL("{} = ANY({})").format(mapping.raw("status"), sql.Literal(list(options.scan.inflight_statuses)))
    q = sql.SQL(
        "SELECT g.{idc}::text AS id, {st}::text AS status, ({inf}) AS inflight, ({pred}) AS stuck, "
        "coalesce({hb} > %(since)s, false) AS alive FROM {t} g WHERE g.{idc} = ANY(%(ids)s)"
    ).format(idc=sql.Identifier(mapping["id"].column or "id"), st=mapping.raw("status"), inf=inflight,
             pred=where_stuck(mapping, _recheck(options.scan), window=False),
             hb=mapping.timestamp("heartbeat", naive_tz=tz) if mapping.has("heartbeat") else sql.SQL("NULL::timestamptz"),
             t=mapping.qualified())
    deadline = time.monotonic() + options.wait
    while True:
        with transaction(conn, read_only=True, statement_timeout=options.statement_timeout):
            rows = conn.cursor(row_factory=dict_row).execute(q, {"since": since, "ids": list(keys)}).fetchall()
        if not any(r["inflight"] for r in rows) or time.monotonic() >= deadline:
            break
        time.sleep(max(0.05, min(options.poll, deadline - time.monotonic())))
    out: dict[str, str] = {}
    for r in rows:
        if not r["inflight"]:
            out[r["id"]] = r["status"]
        elif r["alive"]:
            out[r["id"]] = "alive"
        elif r["stuck"]:
            out[r["id"]] = "still-stuck"
        else:
            out[r["id"]] = "in-flight"
    return out
