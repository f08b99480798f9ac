"""``fail``: mark stuck rows failed by compare-and-set, batch by batch, never overwriting a row that moved."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.rows import dict_row

from stuckgen.audit import AUDIT_SCHEMA, AuditLog, AuditRecord, TableAudit
from stuckgen.durations import format_duration
from stuckgen.errors import ConfigError
from stuckgen.remediate.batches import apply_batches, chunks
from stuckgen.remediate.fields import Field, fields_previous, fields_snapshot, ids_param
from stuckgen.remediate.results import OUTCOME_TEXT, Outcome, RemediationResult, RowOutcome, utcnow
from stuckgen.remediate.select import TEXT_TYPES, Target, recheck_options, table_name
from stuckgen.scan import ScanOptions, where_stuck
from stuckgen.schema import SchemaMapping

if TYPE_CHECKING:
    from stuckgen.db import Connection


@dataclass(frozen=True)
class _Change:
    columns: tuple[str, ...]
    fields: tuple[Field, ...]  # what is set, as the audit names it (the keys of new_values)
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
    if t in TEXT_TYPES:
        return _ISO_NOW
    return None


def _fail_change(m: SchemaMapping, *, failed_status: str, naive_tz: str) -> _Change:
    """SET list for fail: status, the error (column or JSON key) and ``updated`` when mapped."""
    status_col = m["status"].column
    assert status_col is not None
    sets: list[sql.Composable] = [sql.SQL("{} = {}").format(sql.Identifier(status_col), sql.Literal(failed_status))]
    columns: list[str] = [status_col]
    news: list[sql.Composable] = [sql.Literal(m["status"].describe()), sql.Literal(failed_status)]
    fields: list[Field] = [Field(key=m["status"].describe(), column=status_col)]
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
            fields.append(Field(key=f.describe(), column=f.column, path=f.path))
            continue
        if as_time:
            tv = _time_value(dtype, naive_tz)
            if tv is None:
                notes.append(f"updated column {f.column} is {dtype}: left unchanged")
                continue
            plain(f.column, tv)
            news += [sql.Literal(f.describe()), sql.SQL("to_jsonb({})").format(tv)]
        elif dtype in TEXT_TYPES:
            plain(f.column, sql.SQL("v.reason"))
            news += [sql.Literal(f.describe()), sql.SQL("to_jsonb(v.reason)")]
        elif dtype in ("json", "jsonb"):
            plain(f.column, sql.SQL("to_jsonb(v.reason)::{}").format(sql.SQL(dtype)))
            news += [sql.Literal(f.describe()), sql.SQL("to_jsonb(v.reason)")]
        else:
            notes.append(f"error column {f.column} is {dtype}: left unchanged")
            continue
        fields.append(Field(key=f.describe(), column=f.column))

    for col, items in json_sets.items():
        dtype = next(m[n].data_type for n in ("error", "updated") if m[n].column == col) or ""
        doc: sql.Composable = sql.SQL("coalesce({}::jsonb, '{{}}'::jsonb)").format(sql.Identifier("g", col))
        expr: sql.Composable = doc
        for path, new in items:
            expr = sql.SQL("jsonb_set({}, {}, {}, true)").format(expr, sql.Literal(list(path)), new)
        full = sql.SQL("CASE WHEN jsonb_typeof({d}) = 'object' THEN {e} ELSE {d} END").format(d=doc, e=expr)
        if (dtype or "").lower() == "json":
            full = sql.SQL("({})::json").format(full)
        plain(col, full)
    ordered = tuple(c for c in m.columns if c in columns) or tuple(columns)
    return _Change(columns=ordered, fields=tuple(fields), assignments=sql.SQL(", ").join(sets),
                   new_values=sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(news)),
                   notes=tuple(notes))


@dataclass(frozen=True, kw_only=True)
class FailOptions:
    """How ``fail_rows`` marks rows."""

    scan: ScanOptions  # the stuck predicate the compare-and-set re-checks
    failed_status: str = "failed"
    reason: str | None = None  # None: one naming stuckgen and the row's class
    batch_size: int = 2000
    statement_timeout: float = 30.0
    lock_timeout: float = 5.0


def default_reason(cls: str | None, options: ScanOptions) -> str:
    quiet = format_duration(max(options.threshold, options.older_than or 0.0))
    return f"Marked failed by stuckgen: stuck ({cls or 'unclassified'}), no sign of life for over {quiet}"


FAILED_STATUS_SETTING = "--failed-status (STUCKGEN_FAILED_STATUS, failed_status in stuckgen.toml)"


def check_fail_writes(conn: Connection, mapping: SchemaMapping, targets: Sequence[Target], *, options: FailOptions) -> None:
    """WriteRefusedError when the database would refuse what fail writes into these rows.

    Read-only: runs in its own READ ONLY transaction. The dry run calls it before it
    promises anything, and ``fail_rows`` before its first batch.
    """
    from stuckgen.db import transaction
    from stuckgen.remediate.validate import check_writes

    if not targets:
        return
    writes: list[tuple[str, str, str | None]] = [
        (FAILED_STATUS_SETTING, mapping["status"].column or "status", options.failed_status)]
    err = mapping["error"]
    if err.present and not err.path and (err.data_type or "").lower() in TEXT_TYPES and err.column:
        reasons = {options.reason or default_reason(t.cls, options.scan) for t in targets}
        writes.append(("--reason", err.column, max(reasons, key=len)))
    with transaction(conn, read_only=True, statement_timeout=options.statement_timeout,
                     lock_timeout=options.lock_timeout):
        check_writes(conn, mapping, writes, keys=[t.key for t in targets], action="fail")


def fail_rows(conn: Connection, mapping: SchemaMapping, targets: Sequence[Target], *, options: FailOptions,
              audit: AuditLog, run_id: str, operator: str,
              progress: Callable[[int], None] | None = None, rejected: Sequence[RowOutcome] = ()) -> RemediationResult:
    """Set the failed status and an error on ``targets``, batch by batch, by compare-and-set.

    Destructive. A row a worker completed, touched or holds locked in between is
    skipped and reported, never overwritten. Interrupted: the batches done stay
    done (and audited), the rest are reported as not attempted.
    """
    if options.batch_size < 1:
        raise ConfigError("--batch-size: must be at least 1")
    check_fail_writes(conn, mapping, targets, options=options)
    started = utcnow()
    change = _fail_change(mapping, failed_status=options.failed_status, naive_tz=options.scan.naive_timezone)
    stmt = _fail_statement(mapping, options.scan, change, audit)
    tname = table_name(mapping)
    file_audit = not audit.in_transaction

    def apply(batch: Sequence[Target]) -> tuple[list[RowOutcome], list[AuditRecord]]:
        reasons = [options.reason or default_reason(t.cls, options.scan) for t in batch]
        params = {"ids": [t.key for t in batch], "reasons": reasons, "classes": [t.cls or "" for t in batch],
                  "run": run_id, "op": operator, "tname": tname}
        rows = conn.cursor(row_factory=dict_row).execute(stmt, params).fetchall()
        cls_of = {t.id: t.cls for t in batch}
        reason_of = dict(zip((t.id for t in batch), reasons))
        outs: list[RowOutcome] = []
        recs: list[AuditRecord] = []
        now = utcnow()
        for r in rows:
            rid = r["id"]
            oc = _fail_outcome(r, cls_of.get(rid), reason_of.get(rid, ""), options.failed_status)
            outs.append(oc)
            if oc.ok and file_audit:
                recs.append(AuditRecord(run_id=run_id, action="fail", row_id=rid, table=tname, at=now,
                                        operator=operator, outcome=Outcome.FAILED, previous=r["prev"], new=r["new"],
                                        check=r["chk"], detail={"class": cls_of.get(rid), "reason": reason_of.get(rid)}))
        return outs, recs

    def pending(batch: Sequence[Target]) -> list[RowOutcome]:
        return [RowOutcome(id=t.id, outcome=Outcome.NOT_ATTEMPTED, ok=False, cls=t.cls, reason=OUTCOME_TEXT[Outcome.NOT_ATTEMPTED])
                for t in batch]

    # Selection order, not table order: one row per page per batch lets PostgreSQL prune the
    # page and keep the update HOT; table order fills the page and makes every update non-HOT.
    ordered = list(targets)
    total = -(-len(ordered) // options.batch_size)
    state = apply_batches(conn, chunks(ordered, options.batch_size), apply, audit=audit,
                           statement_timeout=options.statement_timeout, lock_timeout=options.lock_timeout,
                           run_id=run_id, progress=progress, pending=pending, total=total)
    return RemediationResult(action="fail", run_id=run_id, dry_run=False, table=tname, audit=audit.where,
                             operator=operator, outcomes=tuple(state.outcomes) + tuple(rejected),
                             started_at=started, finished_at=utcnow(), batches_done=state.done, batches_total=total,
                             interrupted=state.interrupted, notes=change.notes)


def _fail_statement(m: SchemaMapping, options: ScanOptions, change: _Change, audit: AuditLog) -> sql.Composed:
    idc = sql.Identifier(m["id"].column or "id")
    tbl = m.qualified()
    pred = where_stuck(m, recheck_options(options), window=False)
    inflight = sql.SQL("{} = ANY({})").format(m.raw("status"), sql.Literal(list(options.inflight_statuses)))
    file_audit = not audit.in_transaction
    # ``cand`` evaluates the stuck predicate on the row version it locked (a row changed after the
    # statement's snapshot is re-read by the lock, EvalPlanQual), and the lock keeps that version
    # until commit: ``upd`` acts on ``c.stuck`` instead of evaluating the predicate a second time
    # (the heartbeat's JSON time parse was a third of the update's cost).
    # The audit keeps only what fail replaces (v2): the status and the error key, not the whole
    # JSON document around it, which used to make the audit write as much as the update.
    parts: list[sql.Composable] = [sql.SQL(
        "WITH v AS (SELECT * FROM unnest({ids}, %(reasons)s::text[], %(classes)s::text[]) AS v(id, reason, cls)), "
        "cand AS (SELECT g.{idc} AS id, {prev} AS prev, {status}::text AS status_now, ({inflight}) AS inflight, "
        "({pred}) AS stuck FROM {tbl} g JOIN v ON g.{idc} = v.id FOR UPDATE OF g SKIP LOCKED), "
        "upd AS (UPDATE {tbl} g SET {sets} FROM cand c JOIN v ON v.id = c.id "
        "WHERE g.{idc} = c.id AND c.stuck RETURNING g.{idc} AS id, md5({snap}::text) AS chk)"
    ).format(ids=ids_param(m), idc=idc, prev=fields_previous(change.fields), snap=fields_snapshot(change.fields),
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
        return RowOutcome(id=rid, outcome=Outcome.FAILED, ok=True, cls=cls, reason=f"status {failed_status!r}: {reason}")
    if r["got_lock"]:
        if not r["inflight"]:
            return RowOutcome(id=rid, outcome=Outcome.SKIPPED_COMPLETED, ok=False, cls=cls,
                              reason=f"left the in-flight statuses meanwhile (now {r['status_now']!r}); not overwritten")
        return RowOutcome(id=rid, outcome=Outcome.SKIPPED_TOUCHED, ok=False, cls=cls,
                          reason="showed a sign of life meanwhile (heartbeat or update within the threshold)")
    if r["still_exists"]:
        return RowOutcome(id=rid, outcome=Outcome.SKIPPED_LOCKED, ok=False, cls=cls,
                          reason="locked by another transaction (probably a worker writing it); skipped, not waited for")
    return RowOutcome(id=rid, outcome=Outcome.SKIPPED_MISSING, ok=False, cls=cls, reason="deleted meanwhile")
