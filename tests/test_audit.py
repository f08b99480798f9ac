"""The audit log: table created on first use inside the caller's transaction, JSON Lines file 0600."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import datetime, timezone

import psycopg
import pytest

from stuckgen import db as dbmod
from stuckgen.audit import (
    AuditRecord, FileAudit, TableAudit, audit_log, new_run_id, operator_name, require_run,
)
from stuckgen.errors import ConfigError, SelectionError

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def rec(run: str, row: str, action: str = "fail", outcome: str = "failed", **kw) -> AuditRecord:
    return AuditRecord(run_id=run, action=action, row_id=row, table="public.generations", at=kw.pop("at", NOW),
                       operator="alice", outcome=outcome, **kw)


def test_file_audit_is_created_owner_only_and_round_trips(tmp_path):
    old = os.umask(0o000)  # even with a permissive umask
    try:
        log = FileAudit(tmp_path / "audit.jsonl")
        log.prepare(None)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "audit.jsonl").st_mode) == 0o600
    records = [rec("r1", "a", previous={"status": "processing"}, new={"status": "failed"}, check="abc",
                   detail={"class": "never-started"}), rec("r1", "b")]
    log.append(None, records)
    log.append(None, [rec("r2", "a", action="retrigger", outcome="accepted")])
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["schema"] == "stuckgen.audit/v2"
    pages = list(log.run_pages(None, "r1", action="fail", outcome="failed", page=1))
    assert [p[0] for p in pages] == records
    assert log.run_actions(None, "r2") == {"retrigger": 1}
    runs = log.runs(None)
    assert [r.run_id for r in runs] == ["r1", "r2"] or {r.run_id for r in runs} == {"r1", "r2"}
    assert next(r for r in runs if r.run_id == "r1").outcomes == {"failed": 2}


def test_file_attempts_count_only_triggers_that_may_have_run(tmp_path):
    log = FileAudit(tmp_path / "a.jsonl")
    log.append(None, [rec("r1", "a", "retrigger", "accepted"), rec("r2", "a", "retrigger", "timeout"),
                      rec("r3", "a", "retrigger", "auth-rejected"), rec("r1", "b", "retrigger", "gave-up"),
                      rec("r1", "c", "fail", "failed")])
    assert log.attempts(None, table="public.generations", row_ids=["a", "b", "c"]) == {"a": 2, "b": 1}
    assert log.attempts(None, table="other.generations", row_ids=["a"]) == {}


def test_a_corrupt_audit_file_line_is_reported_with_its_number(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps(rec("r1", "a").as_dict()) + "\n{not json\n")
    with pytest.raises(ConfigError, match=r"a.jsonl:2: not an audit record"):
        FileAudit(p).runs(None)


def test_table_audit_is_created_on_first_use_and_written_in_the_callers_transaction(db):
    conn = dbmod.connect(db)
    try:
        log = TableAudit("stuckgen_audit", default_schema="public")
        with dbmod.transaction(conn, read_only=True):
            assert not log.exists(conn)
            assert log.runs(conn) == [] and log.attempts(conn, table="t", row_ids=["a"]) == {}
        with dbmod.transaction(conn, read_only=False):
            log.prepare(conn)
            log.prepare(conn)  # idempotent
        with pytest.raises(RuntimeError):
            with dbmod.transaction(conn, read_only=False):
                log.append(conn, [rec("r0", "x")])
                raise RuntimeError("the batch failed")
        with dbmod.transaction(conn, read_only=False):
            log.append(conn, [rec("r1", "a", previous={"status": "processing"}), rec("r1", "b")])
        with dbmod.transaction(conn, read_only=True):
            assert log.run_actions(conn, "r0") == {}  # rolled back with its batch
            assert log.run_actions(conn, "r1") == {"fail": 2}
            [summary] = log.runs(conn)
            assert (summary.run_id, summary.rows, summary.outcomes, summary.operator) == ("r1", 2, {"failed": 2}, "alice")
            with pytest.raises(SelectionError, match="not in the audit log"):
                require_run(log, conn, "nope")
        pages = list(log.run_pages(conn, "r1", action="fail", outcome="failed", page=1))
        assert [p[0].row_id for p in pages] == ["a", "b"] and pages[0][0].previous == {"status": "processing"}
    finally:
        conn.close()


def test_table_audit_without_create_privilege_says_to_use_a_file(db, pg_server):
    role = "stuckgen_noddl_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server, autocommit=True) as c:
        c.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        with psycopg.connect(db, autocommit=True) as c:
            c.execute(f'REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO "{role}"')
        conn = dbmod.connect(make_conninfo(**{**conninfo_to_dict(db), "user": role}))
        try:
            log = TableAudit("stuckgen_audit", default_schema="public")
            with pytest.raises(ConfigError, match="may not create the audit table") as info:
                with dbmod.transaction(conn, read_only=False):
                    log.prepare(conn)
            assert "--audit-file" in (info.value.hint or "")
        finally:
            conn.close()
    finally:
        with psycopg.connect(db, autocommit=True) as c:
            c.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(pg_server, autocommit=True) as c:
            c.execute(f'DROP ROLE "{role}"')


def test_audit_log_choice_and_names():
    assert isinstance(audit_log(audit_file="/tmp/x.jsonl", audit_table="stuckgen_audit", default_schema="public"), FileAudit)
    t = audit_log(audit_file=None, audit_table="ops.audit", default_schema="public")
    assert isinstance(t, TableAudit) and t.where == "table ops.audit"
    with pytest.raises(ConfigError, match="no audit log"):
        audit_log(audit_file=None, audit_table="none", default_schema="public")
    assert operator_name(" bob ") == "bob" and operator_name(None)
    a, b = new_run_id(), new_run_id()
    assert a != b and len(a) == len("20261128T103540Z-3fa2c1")


def test_hostile_audit_table_name_is_quoted_not_executed(db):
    conn = dbmod.connect(db)
    try:
        log = TableAudit('audit"; DROP TABLE generations; --', default_schema="public")
        with dbmod.transaction(conn, read_only=False):
            log.prepare(conn)
            log.append(conn, [rec("r1", "a")])
        with dbmod.transaction(conn, read_only=True):
            assert log.run_actions(conn, "r1") == {"fail": 1}
            assert conn.execute("SELECT to_regclass('generations') IS NOT NULL").fetchone()[0]
    finally:
        conn.close()


def test_a_failing_audit_file_write_is_one_clear_error_after_the_commit(tmp_path, monkeypatch):
    import os as _os

    from stuckgen.audit import FileAudit
    from stuckgen.errors import AuditWriteError

    audit = FileAudit(tmp_path / "audit.jsonl")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_os, "fsync", full_disk)
    with pytest.raises(AuditWriteError) as exc:
        audit.append(None, [rec("r1", "row-1")])
    assert "No space left on device" in exc.value.message and exc.value.exit_code == 1
