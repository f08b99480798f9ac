"""Remediation core against a real PostgreSQL and the reference deployment on loopback."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import psycopg
import pytest
import respx

from stuckgen import db as dbmod
from stuckgen import http as transport
from stuckgen import remediate
from stuckgen.audit import AuditRecord, FileAudit, TableAudit
from stuckgen.errors import ConfigError, InsecureTransportError, SelectionError
from stuckgen.reference import ReferenceDeployment
from stuckgen.reference.seed import generate, insert_rows, seed
from stuckgen.scan import ScanOptions
from stuckgen.schema import MappingConfig, SchemaMapping, resolve

SECRET = "s3cret-value-for-tests-4f1a"
OPTS = ScanOptions(since=None)


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    c = dbmod.connect(db)
    yield c
    c.close()


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


# -- retrigger: helpers -------------------------------------------------------------------------------


def rt_options(url: str, **kw: Any) -> remediate.RetriggerOptions:
    base = dict(url=url, scan=OPTS, secret=SECRET, backoff=0.01, max_backoff=0.05, poll=0.1)
    base.update(kw)
    return remediate.RetriggerOptions(**base)


def retrigger(conn, m, targets, audit, options, client=None, run_id="rt-1"):
    own = client is None
    client = client or httpx.Client(follow_redirects=False, timeout=2.0)
    try:
        return remediate.retrigger_rows(client, conn, m, targets, options=options, audit=audit, run_id=run_id,
                                        operator="tester")
    finally:
        if own:
            client.close()


def test_retry_delay_backs_off_with_jitter_and_honours_retry_after():
    rng = random.Random(1)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (8, 10.0)):
        d = transport.retry_delay(attempt, base=0.5, cap=10.0, retry_after=None, rng=rng)
        assert ceiling / 2 <= d <= ceiling
    assert transport.retry_delay(1, base=0.5, cap=10, retry_after=7) == 7
    assert transport.retry_delay(1, base=0.5, cap=10, retry_after=3600) == transport.MAX_RETRY_AFTER
    assert transport.parse_retry_after("12") == 12
    assert transport.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert transport.parse_retry_after("soon") is None


def test_body_template_substitutes_the_id_and_must_name_it():
    assert json.loads(remediate.render_body('{"generationId": "{id}", "n": 1}', "abc")) == {"generationId": "abc", "n": 1}
    with pytest.raises(ConfigError, match="must contain"):
        remediate.render_body('{"a": 1}', "abc")
    with pytest.raises(ConfigError, match="not JSON"):
        remediate.render_body("{", "abc")


def test_no_secret_over_plain_http_to_a_non_loopback_host(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 1})
    m = mapping_of(conn)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post("http://app.example.com/api/generate/process").respond(202)
        with pytest.raises(InsecureTransportError, match="plain HTTP to app.example.com"):
            retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                      rt_options("http://app.example.com/api/generate/process"))
        assert not route.called
    transport.check_transport("http://127.0.0.1:9/x", sends_credentials=True)
    transport.check_transport("http://[::1]:9/x", sends_credentials=True)
    transport.check_transport("http://app.example.com/x", sends_credentials=False)


def test_a_client_that_follows_redirects_is_refused(conn, db):
    m = mapping_of(conn)
    with httpx.Client(follow_redirects=True) as client, pytest.raises(ConfigError, match="redirects"):
        retrigger(conn, m, [], table_audit(conn, m), rt_options("https://app.example.com/p"), client=client)


# -- retrigger: exact HTTP shapes (respx) ------------------------------------------------------------

URL = "https://app.example.com/api/generate/process"


def test_retrigger_retries_503_and_429_then_succeeds_with_the_apps_request_shape(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 1})
    m = mapping_of(conn)
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=[
            httpx.Response(503), httpx.Response(429, headers={"retry-after": "0"}),
            httpx.Response(202, json={"accepted": True, "generationIds": [rows[0].id]})])
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m), rt_options(URL))
    o = res.outcomes[0]
    assert (o.outcome, o.tries, o.attempt, o.http_status) == ("accepted", 3, 1, 202)
    assert route.call_count == 3
    req = route.calls[-1].request
    assert json.loads(req.content) == {"generationId": rows[0].id}
    assert req.headers["x-internal-secret"] == SECRET
    assert req.headers["idempotency-key"] == f"stuckgen-{rows[0].id}-1"
    assert {c.request.headers["idempotency-key"] for c in route.calls} == {f"stuckgen-{rows[0].id}-1"}
    assert "cookie" not in req.headers
    rec = audit_rows(db, "retrigger")
    assert [(r[0], r[1]) for r in rec] == [(rows[0].id, "accepted")]


def test_retrigger_retries_timeouts_then_reports_them(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 1})
    m = mapping_of(conn)
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=httpx.ReadTimeout("slow"))
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m), rt_options(URL))
    assert route.call_count == 3
    assert (res.outcomes[0].outcome, res.exit_code) == ("timeout", 1)


def test_circuit_breaker_stops_at_the_first_401(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 10})
    m = mapping_of(conn)
    with respx.mock() as mock:
        route = mock.post(URL).respond(401, json={"error": "Unauthorized"})
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                        rt_options(URL, concurrency=1))
    assert route.call_count == 1
    assert res.counts == {"auth-rejected": 1, "not-sent": 9}
    assert res.stop_kind == "auth" and "probe-auth" in (res.stopped or "") and "INTERNAL_API_SECRET" in res.stopped


def test_a_redirect_is_not_followed_and_stops_the_run(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 3})
    m = mapping_of(conn)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(URL).respond(308, headers={"location": "https://other.example.net/api/generate/process"})
        other = mock.post("https://other.example.net/api/generate/process").respond(202)
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                        rt_options(URL, concurrency=1))
    assert route.call_count == 1 and not other.called
    assert res.counts == {"redirected": 1, "not-sent": 2} and "other.example.net" in (res.stopped or "")


def test_rows_that_moved_on_are_re_read_and_not_sent(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 2})
    m = mapping_of(conn)
    sel = select(conn, m, all_stuck=True)
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE generations SET status = 'completed' WHERE id = %s", (rows[0].id,))
    with respx.mock() as mock:
        route = mock.post(URL).respond(202)
        res = retrigger(conn, m, sel.targets, table_audit(conn, m), rt_options(URL))
    assert route.call_count == 1
    assert json.loads(route.calls[0].request.content) == {"generationId": rows[1].id}
    assert {o.id: o.outcome for o in res.outcomes}[rows[0].id] == "skipped-completed"


def test_attempt_limit_is_counted_from_the_audit_log_across_runs(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 2})
    m = mapping_of(conn)
    audit = table_audit(conn, m)
    a, b = rows[0].id, rows[1].id

    def rec(rid: str, outcome: str, run: str) -> AuditRecord:
        return AuditRecord(run_id=run, action="retrigger", row_id=rid, table="public.generations",
                           at=datetime.now(timezone.utc), operator="t", outcome=outcome)

    with dbmod.transaction(conn, read_only=False):
        audit.append(conn, [rec(a, "accepted", "r1"), rec(a, "timeout", "r2"), rec(a, "gave-up", "r3"),
                            rec(b, "accepted", "r1"), rec(b, "auth-rejected", "r2")])  # a 401 never ran anything
    with respx.mock() as mock:
        route = mock.post(URL).respond(202)
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, audit, rt_options(URL))
    by = {o.id: o for o in res.outcomes}
    assert by[a].outcome == "exhausted" and "stuckgen fail" in by[a].reason and not by[a].ok
    assert by[b].outcome == "accepted" and by[b].attempt == 2
    assert route.call_count == 1 and route.calls[0].request.headers["idempotency-key"] == f"stuckgen-{b}-2"


def test_an_unreachable_deployment_stops_the_run_with_exit_3(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 6})
    m = mapping_of(conn)
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                    rt_options(f"http://127.0.0.1:{port}/api/generate/process", concurrency=1, tries=1))
    assert res.counts == {"unreachable": 3, "not-sent": 3}
    assert res.stop_kind == "unreachable" and res.exit_code == 3


# -- retrigger against the reference deployment ------------------------------------------------------


def test_retrigger_turns_never_started_rows_into_completed_ones(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 6, "completed": 1})
    m = mapping_of(conn)
    with ReferenceDeployment(db, "healthy", secret=SECRET, work_seconds=0.2, heartbeat_interval=0.05) as dep:
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                        rt_options(dep.url + dep.route, wait=10.0))
        counters = dep.counters
    stuck = [r.id for r in rows if r.kind == "never-started"]
    assert res.counts == {"accepted": 6} and res.exit_code == 0
    assert {o.verify for o in res.outcomes} == {"completed"}
    st = statuses(db)
    assert all(st[rid] == "completed" for rid in stuck)
    assert all(counters.accepted.get(rid) == 1 and counters.max_in_flight.get(rid) == 1 for rid in stuck)
    assert len(audit_rows(db, "retrigger")) == 6


def test_circuit_breaker_against_a_deployment_without_the_secret(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 12})
    m = mapping_of(conn)
    with ReferenceDeployment(db, "secret-missing", secret=SECRET) as dep:
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                        rt_options(dep.url + dep.route, concurrency=4))
        sent = sum(v for (path, _), v in dep.counters.requests.items() if path == dep.route)
    assert res.stop_kind == "auth" and "probe-auth" in (res.stopped or "")
    assert res.counts.get("auth-rejected", 0) >= 1 and res.counts.get("not-sent", 0) >= 8
    assert sent <= 4  # at most the ones already in flight when the first 401 arrived
    assert set(statuses(db).values()) == {"processing"}


def test_retries_against_a_deployment_that_hangs_on_some_calls(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 8})
    m = mapping_of(conn)
    with ReferenceDeployment(db, "slow", secret=SECRET, latency=0.01, hang_seconds=5.0, work_seconds=0.1,
                             heartbeat_interval=0.05) as dep:
        with httpx.Client(follow_redirects=False, timeout=0.4) as client:
            res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                            rt_options(dep.url + dep.route, concurrency=4, tries=4), client=client)
    assert res.counts == {"accepted": 8}, res.outcomes
    assert any((o.tries or 0) > 1 for o in res.outcomes)
