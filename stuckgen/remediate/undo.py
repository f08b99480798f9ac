"""``undo``: put back what a fail run wrote, by compare-and-set against the hash of what it wrote."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


from psycopg import sql
from psycopg.rows import dict_row

from stuckgen.audit import AUDIT_SCHEMA, AUDIT_SCHEMA_V1, AuditLog, AuditRecord, TableAudit, require_run
from stuckgen.db import Connection, transaction
from stuckgen.errors import ConfigError, SchemaError, SelectionError
from stuckgen.remediate.batches import apply_batches
from stuckgen.remediate.fields import (
    columns_snapshot, fields_from_keys, fields_restore, fields_snapshot, ids_param,
)
from stuckgen.remediate.results import OUTCOME_TEXT, Outcome, RemediationResult, RowOutcome, utcnow
from stuckgen.remediate.select import check_remediable, coerce_id, table_name
from stuckgen.schema import SchemaMapping

@dataclass(frozen=True, kw_only=True)
class UndoOptions:
    batch_size: int = 2000
    statement_timeout: float = 30.0
    lock_timeout: float = 5.0
    dry_run: bool = False


def _pending_groups(conn: Connection, audit: AuditLog, run_id: str, *, table: str, done_before: set[str],
                    outcomes: list[RowOutcome], page: int) -> Iterator[list[AuditRecord]]:
    """The run's fail records still to restore, a page at a time, grouped by how each is undone.

    Records an earlier undo restored become ``already-undone`` outcomes (appended to ``outcomes``), not batches.
    """
    for records in audit.run_pages(conn, run_id, action="fail", outcome=Outcome.FAILED, page=page):
        fresh = []
        for rec in records:
            if rec.table and rec.table != table:
                raise ConfigError(f"run {run_id} changed {rec.table}, but the mapping points at {table}",
                                  hint="pass --table/--db-schema as for the fail run")
            if rec.row_id in done_before:
                outcomes.append(RowOutcome(id=rec.row_id, outcome=Outcome.ALREADY_UNDONE, ok=True,
                                           cls=rec.detail.get("class"), reason=OUTCOME_TEXT[Outcome.ALREADY_UNDONE]))
            else:
                fresh.append(rec)
        # One statement per record schema and set of fields (a run uses one mapping, so normally one).
        groups: dict[tuple[str, tuple[str, ...]], list[AuditRecord]] = {}
        for rec in fresh:
            groups.setdefault(_undo_group(rec), []).append(rec)
        yield from groups.values()


def _restore_parts(mapping: SchemaMapping, run_id: str, schema: str,
                   names: tuple[str, ...]) -> tuple[sql.Composable, sql.Composable]:
    """(snapshot compared with the run's check, SET list) for one group of records."""
    if schema == AUDIT_SCHEMA_V1:
        unknown = [c for c in names if c not in mapping.columns]
        if not names or unknown:
            raise SchemaError(f"run {run_id} recorded columns {', '.join(names) or '(none)'}, "
                              f"which {table_name(mapping)} does not have all of")
        return columns_snapshot(names, "g"), _columns_restore(names, mapping.qualified())
    if not names:
        raise SchemaError(f"run {run_id} recorded no fields it set; nothing to restore")
    fields = fields_from_keys(mapping, names)
    return fields_snapshot(fields), fields_restore(fields, mapping.qualified())


def _row_outcome(r: dict[str, Any], cls: str | None, *, run_id: str, dry_run: bool) -> RowOutcome:
    """What the compare-and-set did to one row."""
    if r["changed"]:
        return RowOutcome(id=r["id"], outcome=Outcome.WOULD_RESTORE if dry_run else Outcome.RESTORED, ok=True,
                          cls=cls, reason="previous values restored" if not dry_run else
                          "dry run: unchanged since the run, would be restored")
    if r["got_lock"]:
        return RowOutcome(id=r["id"], outcome=Outcome.SKIPPED_CHANGED, ok=False, cls=cls,
                          reason=f"changed since run {run_id} (now {r['status_now']!r}); not overwritten")
    if r["still_exists"]:
        return RowOutcome(id=r["id"], outcome=Outcome.SKIPPED_LOCKED, ok=False, cls=cls,
                          reason=OUTCOME_TEXT[Outcome.SKIPPED_LOCKED])
    return RowOutcome(id=r["id"], outcome=Outcome.SKIPPED_MISSING, ok=False, cls=cls, reason="deleted since the run")


def _restore_batch(conn: Connection, mapping: SchemaMapping, batch: Sequence[AuditRecord], *, run_id: str,
                   new_run_id: str, operator: str, audit: AuditLog,
                   dry_run: bool) -> tuple[list[RowOutcome], list[AuditRecord]]:
    """Restore one group by compare-and-set: each row's outcome, and the audit records a file log needs
    (a table log is written by the statement itself)."""
    from psycopg.types.json import Jsonb

    tname = table_name(mapping)
    schema, names = _undo_group(batch[0])
    snap, sets = _restore_parts(mapping, run_id, schema, names)
    keys = [coerce_id(mapping, rec.row_id) for rec in batch]
    _check_restores(conn, mapping, batch, names, keys)
    params = {"ids": keys, "prev": [Jsonb(rec.previous) for rec in batch], "chk": [rec.check or "" for rec in batch],
              "run": new_run_id, "op": operator, "tname": tname, "of": run_id}
    stmt = _undo_statement(mapping, snap=snap, sets=sets, audit=audit, dry_run=dry_run)
    rows = conn.cursor(row_factory=dict_row).execute(stmt, params).fetchall()
    by_id = {rec.row_id: rec for rec in batch}
    outs: list[RowOutcome] = []
    recs: list[AuditRecord] = []
    now = utcnow()
    for r in rows:
        rec = by_id[r["id"]]
        cls = rec.detail.get("class")
        outs.append(_row_outcome(r, cls, run_id=run_id, dry_run=dry_run))
        if r["changed"] and not dry_run and not audit.in_transaction:
            recs.append(AuditRecord(run_id=new_run_id, action="undo", row_id=r["id"], table=tname, at=now,
                                    operator=operator, outcome=Outcome.RESTORED, previous=r["cur"],
                                    new=rec.previous, check=r["chk"], detail={"undo_of": run_id, "class": cls}))
    return outs, recs


def undo(conn: Connection, mapping: SchemaMapping, run_id: str, *, audit: AuditLog, new_run_id: str, operator: str,
         options: UndoOptions = UndoOptions(), progress: Callable[[int], None] | None = None) -> RemediationResult:
    """Restore the previous values of the rows a ``fail`` run changed, by compare-and-set.

    Destructive (it writes the old values back). A row whose touched columns no
    longer hash to what the run wrote was changed since (a worker finished it,
    someone edited it): skipped and reported. Rows an earlier undo restored are
    reported as already undone.
    """
    check_remediable(mapping)
    started = utcnow()
    tname = table_name(mapping)
    with transaction(conn, read_only=True, statement_timeout=options.statement_timeout):
        actions = require_run(audit, conn, run_id)
        if "fail" not in actions:
            kinds = ", ".join(sorted(actions))
            raise SelectionError(f"run {run_id} is a {kinds} run; only fail runs can be undone "
                                 "(a trigger cannot be taken back)")
        done_before = audit.undone_rows(conn, run_id)
    # Batches hold only rows still to restore: rows an earlier undo restored are reported, not batched.
    total = -(-max(actions["fail"] - len(done_before), 0) // options.batch_size)
    outcomes: list[RowOutcome] = []
    notes: list[str] = []
    pages = _pending_groups(conn, audit, run_id, table=tname, done_before=done_before, outcomes=outcomes,
                            page=options.batch_size)

    def apply(batch: Sequence[AuditRecord]) -> tuple[list[RowOutcome], list[AuditRecord]]:
        return _restore_batch(conn, mapping, batch, run_id=run_id, new_run_id=new_run_id, operator=operator,
                              audit=audit, dry_run=options.dry_run)

    state = apply_batches(conn, pages, apply, audit=audit, statement_timeout=options.statement_timeout,
                          lock_timeout=options.lock_timeout, run_id=new_run_id, progress=progress, pending=None,
                          total=total)
    if state.interrupted:
        left = actions["fail"] - len(done_before) - sum(1 for o in state.outcomes)
        notes.append(f"interrupted: {max(left, 0)} row(s) of run {run_id} were not attempted; run undo again to finish")
    return RemediationResult(action="undo", run_id=None if options.dry_run else new_run_id, dry_run=options.dry_run,
                             table=tname, audit=audit.where, operator=operator,
                             outcomes=tuple(outcomes) + tuple(state.outcomes), started_at=started, finished_at=utcnow(),
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
    ).format(ids=ids_param(m), idc=idc, snap=snap, status=m.raw("status"), tbl=tbl,
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


def _check_restores(conn: Connection, mapping: SchemaMapping, batch: Sequence[AuditRecord], names: Sequence[str],
                    keys: Sequence[Any]) -> None:
    """WriteRefusedError before a batch whose previous values the column would now refuse (an enum
    label gone, a CHECK added since the run): the dry run says so instead of promising the restore."""
    from stuckgen.remediate.validate import check_writes

    for name in names:
        if "." in name or name not in mapping.columns:
            continue  # a key inside a JSON column: any JSON value goes back
        by_value: dict[str, list[Any]] = {}
        for rec, key in zip(batch, keys):
            value = (rec.previous or {}).get(name)
            if isinstance(value, str):
                by_value.setdefault(value, []).append(key)
        for value, rows in sorted(by_value.items()):
            check_writes(conn, mapping, [("the column back to accept it (the run's previous values are restored "
                                          "as recorded)", name, value)], keys=rows, action="undo")
