"""Remediation core against a real PostgreSQL: selection, fail, undo (retrigger: test_retrigger.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from datetime import datetime, timezone
from typing import Any

import psycopg
import pytest

from stuckgen import db as dbmod
from stuckgen import remediate
from stuckgen.audit import AuditRecord, FileAudit
from stuckgen.errors import ConfigError, SelectionError
from stuckgen.reference.seed import generate, insert_rows, seed
from stuckgen.scan import ScanOptions
from stuckgen.schema import MappingConfig, resolve
from remediation_helpers import OPTS, audit_rows, mapping_of, select, statuses, table_audit

SECRET = "s3cret-value-for-tests-4f1a"


def fail(conn, m, targets, audit, **kw) -> remediate.RemediationResult:
    opts = remediate.FailOptions(scan=kw.pop("scan", OPTS), **{k: kw.pop(k) for k in list(kw) if k in (
        "batch_size", "lock_timeout", "reason", "failed_status")})
    return remediate.fail_rows(conn, m, targets, options=opts, audit=audit, run_id=kw.pop("run_id", "run-1"),
                               operator="tester", **kw)


# -- selection ------------------------------------------------------------------------------------


def test_ids_of_the_wrong_type_are_rejected_before_anything_runs(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 1})
    m = mapping_of(conn)
    with pytest.raises(SelectionError, match="not valid for generations.id \\(uuid\\): 'nope'"):
        select(conn, m, ids=["nope", "42"])
    assert set(statuses(db).values()) == {"processing"}


def test_ids_not_found_or_not_stuck_are_reported_with_the_reason(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 1, "completed": 1, "running": 1})
    m = mapping_of(conn)
    missing = "00000000-0000-4000-8000-000000000000"
    sel = select(conn, m, ids=[r.id for r in rows] + [missing, rows[0].id.upper()])
    assert [t.id for t in sel.targets] == [rows[0].id]
    why = {o.id: (o.outcome, o.reason) for o in sel.rejected}
    assert why[rows[1].id][0] == "not-stuck" and "'completed'" in why[rows[1].id][1]
    assert why[rows[2].id][0] == "not-stuck" and "sign of life" in why[rows[2].id][1]
    assert why[missing][0] == "not-found"


def test_ids_none_usable_is_a_selection_error(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"completed": 2})
    m = mapping_of(conn)
    with pytest.raises(SelectionError, match="none of the 2 id"):
        select(conn, m, ids=[r.id for r in rows])


def test_all_stuck_respects_class_and_older_than(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 3, "stalled": 2, "completed": 2})
    m = mapping_of(conn)
    assert len(select(conn, m, all_stuck=True).targets) == 5
    sel = select(conn, m, all_stuck=True, opts=ScanOptions(since=None, classes=("stalled",)))
    assert [t.cls for t in sel.targets] == ["stalled", "stalled"]
    assert select(conn, m, all_stuck=True, opts=ScanOptions(since=None, older_than=10 * 3600)).targets == ()


def test_selection_needs_ids_or_all_stuck(conn, db):
    m = mapping_of(conn)
    with pytest.raises(ConfigError, match="nothing selected"):
        select(conn, m)


# -- fail -------------------------------------------------------------------------------------------


def test_fail_sets_status_and_error_inside_parameters_and_audits_previous_values(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 3, "completed": 1, "running": 1})
    m = mapping_of(conn)
    sel = select(conn, m, all_stuck=True)
    res = fail(conn, m, sel.targets, table_audit(conn, m))
    assert res.counts == {"failed": 3} and res.exit_code == 0 and res.batches_done == 1
    with psycopg.connect(db) as c:
        got = {str(r[0]): (r[1], r[2]) for r in c.execute("SELECT id, status, parameters FROM generations")}
    for r in rows:
        status, params = got[r.id]
        if r.kind == "never-started":
            assert status == "failed"
            assert params["error"].startswith("Marked failed by stuckgen: stuck (never-started)")
            assert {k: v for k, v in params.items() if k != "error"} == r.parameters
        else:
            assert (status, params) == (r.status, r.parameters)
    audited = {a[0]: a for a in audit_rows(db)}
    assert set(audited) == {r.id for r in rows if r.kind == "never-started"}
    one = next(r for r in rows if r.kind == "never-started")
    # Only what fail replaced: the status; the error key did not exist, so it is not in previous.
    assert audited[one.id][2] == {"status": "processing"}
    assert audited[one.id][3]["status"] == "failed" and "parameters.error" in audited[one.id][3]


def test_fail_writes_a_real_error_column_and_updated_at_when_the_schema_has_them(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("ALTER TABLE generations ADD COLUMN error_message text, ADD COLUMN updated_at timestamptz")
        seed(c, {"never-started": 2})
        c.execute("UPDATE generations SET updated_at = now() - interval '1 hour'")
    with dbmod.transaction(conn, read_only=True):
        m = resolve(conn, MappingConfig(overrides={"error": "error_message"}))
    res = fail(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m), reason="provider outage")
    assert res.counts == {"failed": 2}
    with psycopg.connect(db) as c:
        r = c.execute("SELECT status, error_message, updated_at > now() - interval '1 minute', "
                      "parameters ? 'error' FROM generations").fetchall()
    assert set(r) == {("failed", "provider outage", True, False)}
    prev = audit_rows(db)[0][2]
    assert set(prev) == {"status", "error_message", "updated_at"}


def test_fail_skips_rows_completed_or_touched_or_deleted_meanwhile(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 5})
    m = mapping_of(conn)
    sel = select(conn, m, all_stuck=True)
    done, touched, gone = rows[0].id, rows[1].id, rows[2].id
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE generations SET status = 'completed' WHERE id = %s", (done,))
        c.execute("UPDATE generations SET parameters = jsonb_set(parameters, '{lastHeartbeatAt}', "
                  "to_jsonb(to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))) WHERE id = %s",
                  (touched,))
        c.execute("DELETE FROM generations WHERE id = %s", (gone,))
    res = fail(conn, m, sel.targets, table_audit(conn, m))
    by = {o.id: o.outcome for o in res.outcomes}
    assert by[done] == "skipped-completed" and by[touched] == "skipped-touched" and by[gone] == "skipped-missing"
    assert res.counts["failed"] == 2 and res.exit_code == 1
    st = statuses(db)
    assert st[done] == "completed" and st[touched] == "processing"
    assert len(audit_rows(db)) == 2


def test_fail_skips_a_locked_row_without_waiting_past_lock_timeout(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 3})
    m = mapping_of(conn)
    sel = select(conn, m, all_stuck=True)
    locker = psycopg.connect(db)
    try:
        locker.execute("SELECT 1 FROM generations WHERE id = %s FOR UPDATE", (rows[0].id,))
        t0 = time.monotonic()
        res = fail(conn, m, sel.targets, table_audit(conn, m), lock_timeout=1.0)
        assert time.monotonic() - t0 < 1.0
    finally:
        locker.rollback()
        locker.close()
    by = {o.id: o for o in res.outcomes}
    assert by[rows[0].id].outcome == "skipped-locked" and "not waited" in by[rows[0].id].reason
    assert res.counts == {"failed": 2, "skipped-locked": 1}
    assert statuses(db)[rows[0].id] == "processing"


def test_race_a_worker_completing_rows_while_fail_runs_over_1000_rows(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 1000})
    m = mapping_of(conn)
    sel = select(conn, m, all_stuck=True)
    ids = [r.id for r in rows]
    rng = random.Random(3)
    early = ids[:10]  # completed after selection, before fail: must be skipped
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE generations SET status = 'completed' WHERE id = ANY(%s::uuid[])", (early,))
    completed: list[str] = list(early)
    stop = threading.Event()

    def worker() -> None:
        with psycopg.connect(db, autocommit=True) as c:
            pool = ids[10:]
            rng.shuffle(pool)
            for rid in pool:
                if stop.is_set():
                    return
                with c.transaction():
                    c.execute("SELECT 1 FROM generations WHERE id = %s FOR UPDATE", (rid,))
                    time.sleep(0.0005)  # a worker holding its row while it writes
                    c.execute("UPDATE generations SET status = 'completed' WHERE id = %s", (rid,))
                completed.append(rid)

    t = threading.Thread(target=worker)
    t.start()
    try:
        res = fail(conn, m, sel.targets, table_audit(conn, m), batch_size=50)
    finally:
        stop.set()
        t.join()
    st = statuses(db)
    assert all(st[rid] == "completed" for rid in completed)
    by = {o.id: o.outcome for o in res.outcomes}
    assert all(by[rid] == "skipped-completed" for rid in early)
    assert len(by) == 1000 and res.batches_done == 20
    # What fail says it changed is exactly what the audit holds.
    assert {a[0] for a in audit_rows(db)} == {o.id for o in res.outcomes if o.ok}
    assert len(completed) > 10


@pytest.mark.parametrize("kind", ["table", "file"])
def test_sigint_during_fail_leaves_whole_batches_and_a_matching_audit(conn, db, tmp_path, kind):
    with psycopg.connect(db, autocommit=True) as c:
        insert_rows(c, generate({"never-started": 1500}, now=seed_now(c)))
    m = mapping_of(conn)
    sel = select(conn, m, all_stuck=True)
    audit = table_audit(conn, m) if kind == "table" else FileAudit(tmp_path / "audit.jsonl")
    calls = {"n": 0}

    def progress(n: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # arrives while batch 3 is being committed and audited: held, then delivered
            os.kill(os.getpid(), signal.SIGINT)

    res = fail(conn, m, sel.targets, audit, batch_size=100, progress=progress)
    assert res.interrupted and res.batches_done == 3 and res.exit_code == 1
    assert res.counts == {"failed": 300, "not-attempted": 1200}
    failed = {k for k, v in statuses(db).items() if v == "failed"}
    assert failed == {o.id for o in res.outcomes if o.ok}
    if kind == "table":
        assert {a[0] for a in audit_rows(db)} == failed
    else:
        lines = (tmp_path / "audit.jsonl").read_text().splitlines()
        assert {json.loads(x)["row_id"] for x in lines} == failed


def test_sigint_at_random_moments_never_splits_a_batch(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        insert_rows(c, generate({"never-started": 3000}, now=seed_now(c)))
    m = mapping_of(conn)
    audit = table_audit(conn, m)
    rng = random.Random(11)
    for round_ in range(3):
        sel = select(conn, m, all_stuck=True)
        if not sel.targets:
            break
        timer = threading.Timer(rng.uniform(0.005, 0.08), os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            res = fail(conn, m, sel.targets, audit, batch_size=40, run_id=f"run-{round_}")
        except KeyboardInterrupt:  # landed outside the batch loop: nothing half-done either
            res = None
        finally:
            timer.join()
        with psycopg.connect(db) as c:
            per_run = c.execute("SELECT count(*) FROM stuckgen_audit WHERE run_id = %s", (f"run-{round_}",)).fetchone()[0]
        assert per_run % 40 == 0 or (res is not None and not res.interrupted)
        if res is not None:
            assert per_run == res.counts.get("failed", 0)
    with psycopg.connect(db) as c:
        n_failed = c.execute("SELECT count(*) FROM generations WHERE status = 'failed'").fetchone()[0]
        n_audit = c.execute("SELECT count(*) FROM stuckgen_audit").fetchone()[0]
    assert n_failed == n_audit


def seed_now(c: psycopg.Connection):
    from stuckgen.reference.seed import db_now

    return db_now(c)


# -- undo -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["table", "file"])
def test_undo_restores_a_fail_run_and_skips_a_row_changed_since(conn, db, tmp_path, kind):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 4})
    m = mapping_of(conn)
    audit = table_audit(conn, m) if kind == "table" else FileAudit(tmp_path / "a.jsonl")
    res = fail(conn, m, select(conn, m, all_stuck=True).targets, audit, run_id="run-f")
    assert res.counts == {"failed": 4}
    changed = rows[0].id
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE generations SET status = 'completed' WHERE id = %s", (changed,))
    dry = remediate.undo(conn, m, "run-f", audit=audit, new_run_id="run-u0", operator="t",
                         options=remediate.UndoOptions(dry_run=True))
    assert dry.counts == {"would-restore": 3, "skipped-changed": 1}
    assert statuses(db)[rows[1].id] == "failed"
    u = remediate.undo(conn, m, "run-f", audit=audit, new_run_id="run-u", operator="t")
    assert u.counts == {"restored": 3, "skipped-changed": 1} and u.exit_code == 1
    with psycopg.connect(db) as c:
        got = {str(r[0]): (r[1], r[2]) for r in c.execute("SELECT id, status, parameters FROM generations")}
    for r in rows[1:]:
        assert got[r.id] == ("processing", r.parameters)
    assert got[changed][0] == "completed"
    again = remediate.undo(conn, m, "run-f", audit=audit, new_run_id="run-u2", operator="t")
    assert again.counts == {"already-undone": 3, "skipped-changed": 1}


def documents(dsn: str) -> dict[str, tuple[str, Any]]:
    with psycopg.connect(dsn) as c:
        return {str(r[0]): (r[1], r[2]) for r in c.execute("SELECT id, status, parameters FROM generations")}


@pytest.mark.parametrize("kind", ["table", "file"])
def test_undo_restores_the_exact_previous_document_from_the_lean_audit(conn, db, tmp_path, kind):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 3})
        # An old error key, a JSON null error, and no error key at all: undo must tell them apart.
        c.execute("UPDATE generations SET parameters = parameters || '{\"error\": {\"code\": 7}}' WHERE id = %s",
                  (rows[0].id,))
        c.execute("UPDATE generations SET parameters = parameters || '{\"error\": null}' WHERE id = %s", (rows[1].id,))
    before = documents(db)
    m = mapping_of(conn)
    audit = table_audit(conn, m) if kind == "table" else FileAudit(tmp_path / "a.jsonl")
    assert fail(conn, m, select(conn, m, all_stuck=True).targets, audit, run_id="run-f").counts == {"failed": 3}
    prev = {rec.row_id: rec.previous for page in audit.run_pages(conn, "run-f", action="fail", outcome="failed")
            for rec in page}
    assert prev == {rows[0].id: {"status": "processing", "parameters.error": {"code": 7}},
                    rows[1].id: {"status": "processing", "parameters.error": None},
                    rows[2].id: {"status": "processing"}}
    u = remediate.undo(conn, m, "run-f", audit=audit, new_run_id="run-u", operator="t")
    assert u.counts == {"restored": 3}
    assert documents(db) == before


def test_undo_keeps_keys_written_since_and_skips_rows_whose_error_changed(conn, db):
    """Undo compares and restores only the fields fail set: a key the app wrote since is kept, not reverted."""
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 3})
    before = documents(db)
    m = mapping_of(conn)
    audit = table_audit(conn, m)
    assert fail(conn, m, select(conn, m, all_stuck=True).targets, audit, run_id="run-f").counts == {"failed": 3}
    noted, rewritten = rows[0].id, rows[1].id
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE generations SET parameters = parameters || '{\"note\": \"seen by support\"}' WHERE id = %s",
                  (noted,))
        c.execute("UPDATE generations SET parameters = jsonb_set(parameters, '{error}', '\"worker: OOM\"') "
                  "WHERE id = %s", (rewritten,))
    u = remediate.undo(conn, m, "run-f", audit=audit, new_run_id="run-u", operator="t")
    assert {o.id: o.outcome for o in u.outcomes} == {noted: "restored", rewritten: "skipped-changed",
                                                     rows[2].id: "restored"}
    after = documents(db)
    assert after[noted] == ("processing", {**before[noted][1], "note": "seen by support"})
    assert after[rewritten][0] == "failed" and after[rewritten][1]["error"] == "worker: OOM"
    assert after[rows[2].id] == before[rows[2].id]


def test_undo_puts_back_a_json_document_that_was_null(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("ALTER TABLE generations ALTER COLUMN parameters DROP NOT NULL")
        rows = seed(c, {"never-started": 2})
        c.execute("UPDATE generations SET parameters = NULL WHERE id = %s", (rows[0].id,))
    before = documents(db)
    m = mapping_of(conn)
    audit = table_audit(conn, m)
    assert fail(conn, m, select(conn, m, all_stuck=True).targets, audit, run_id="run-f").counts == {"failed": 2}
    assert documents(db)[rows[0].id][1]["error"].startswith("Marked failed by stuckgen")
    assert remediate.undo(conn, m, "run-f", audit=audit, new_run_id="run-u", operator="t").counts == {"restored": 2}
    assert documents(db) == before


def test_undo_still_restores_a_v1_record_that_kept_whole_columns(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 2})
    before = documents(db)
    m = mapping_of(conn)
    audit = table_audit(conn, m)
    assert fail(conn, m, select(conn, m, all_stuck=True).targets, audit, run_id="run-f").counts == {"failed": 2}
    # Rewrite the records as stuckgen.audit/v1 wrote them: whole previous columns, hash over whole columns.
    with psycopg.connect(db, autocommit=True) as c:
        for r in rows:
            c.execute("UPDATE stuckgen_audit a SET previous = jsonb_build_object('parameters', %s::jsonb, "
                      "'status', 'processing'), detail = a.detail - 'schema', check_hash = (SELECT md5("
                      "jsonb_build_object('parameters', to_jsonb(g.parameters), 'status', to_jsonb(g.status))::text) "
                      "FROM generations g WHERE g.id::text = a.row_id) WHERE a.row_id = %s",
                      (json.dumps(before[r.id][1]), r.id))
    assert remediate.undo(conn, m, "run-f", audit=audit, new_run_id="run-u", operator="t").counts == {"restored": 2}
    assert documents(db) == before


def test_undo_of_an_unknown_run_or_a_retrigger_run_is_a_selection_error(conn, db):
    m = mapping_of(conn)
    audit = table_audit(conn, m)
    with pytest.raises(SelectionError, match="not in the audit log"):
        remediate.undo(conn, m, "no-such-run", audit=audit, new_run_id="x", operator="t")
    with dbmod.transaction(conn, read_only=False):
        audit.append(conn, [AuditRecord(run_id="rt", action="retrigger", row_id="a", table="public.generations",
                                        at=datetime.now(timezone.utc), operator="t", outcome="accepted")])
    with pytest.raises(SelectionError, match="only fail runs can be undone"):
        remediate.undo(conn, m, "rt", audit=audit, new_run_id="x", operator="t")
