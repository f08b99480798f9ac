"""`stuckgen show ID` end to end against a real PostgreSQL: every class, every format, errors, audit, secrets."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import psycopg
import pytest
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from stuckgen.audit import AuditRecord, FileAudit, TableAudit
from stuckgen.cli import app
from stuckgen.reference.seed import KINDS, SeededRow, seed

runner = CliRunner()
NOT_STUCK = ("completed", "running")
SECRET = "show-secret-5d1c0e9a7b3f4a2e"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "STUCKGEN_MAP",
                "STUCKGEN_AUDIT_TABLE", "STUCKGEN_AUDIT_FILE", "STUCKGEN_INTERNAL_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def rows(db: str) -> dict[str, SeededRow]:
    with psycopg.connect(db, autocommit=True) as conn:
        return {r.kind: r for r in seed(conn, {k: 1 for k in KINDS})}


def show(db: str, *args: str, **env: str):
    return runner.invoke(app, ["show", *args, "-d", db], env=env or None)


def test_every_class_in_every_format(db: str, rows: dict[str, SeededRow]) -> None:
    for kind, row in rows.items():
        expected_exit = 0 if kind in NOT_STUCK else 1
        r = show(db, row.id, "--format", "json")
        assert r.exit_code == expected_exit, (kind, r.output)
        assert r.stderr == ""
        doc = json.loads(r.stdout)
        assert doc["schema"] == "stuckgen.show/v1"
        assert doc["generation"]["id"] == row.id and doc["generation"]["status"] == row.status
        assert doc["stuck"] is (kind not in NOT_STUCK)
        assert doc["class"] == (None if kind in NOT_STUCK else kind)
        assert doc["timeline"]["total"] == len(row.parameters["debugLogs"])
        assert [e["step"] for e in doc["timeline"]["entries"]] == [e["step"] for e in row.parameters["debugLogs"]]
        assert doc["outputs"]["total"] == row.outputs
        assert (doc["job"] is not None) is (row.job is not None)

        md = show(db, row.id, "--format", "markdown")
        assert md.exit_code == expected_exit, md.output
        assert md.stdout.startswith(f"### Generation `{row.id}`")
        assert "#### Timeline" in md.stdout and "#### stuckgen actions" in md.stdout
        assert (f"| class | {kind} |" in md.stdout) is (kind not in NOT_STUCK)

        tbl = show(db, row.id, "--format", "table")
        assert tbl.exit_code == expected_exit, tbl.output
        assert ("stuck: " + kind) in tbl.stdout if kind not in NOT_STUCK else "not stuck: " in tbl.stdout
        assert "\x1b[" not in tbl.stdout


def test_timeline_carries_the_failed_triggers_http_status(db: str, rows: dict[str, SeededRow]) -> None:
    gid = rows["trigger-failed"].id
    doc = json.loads(show(db, gid, "-f", "json").stdout)
    failed = [e for e in doc["timeline"]["entries"] if e["step"] == "process:trigger-failed-http"]
    assert len(failed) == 3 and all(e["extra"]["status"] == 401 for e in failed)
    assert failed[0]["extra"]["error"] == '{"error":"Unauthorized"}'
    assert failed[0]["offset_seconds"] > 0
    assert doc["scan"]["trigger_status"] == 401 and "HTTP 401" in doc["why"]
    md = show(db, gid, "-f", "markdown").stdout
    assert "| `process:trigger-failed-http` | " in md and "status=401" in md and "HTTP 401 x3" in md
    assert "status=401" in show(db, gid, "-f", "table").stdout


def test_not_stuck_row_says_status_and_last_sign_of_life(db: str, rows: dict[str, SeededRow]) -> None:
    r = show(db, rows["completed"].id, "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["verdict"].startswith("not stuck: completed, last sign of life ")
    assert doc["verdict"].endswith(" ago") and doc["scan"] is None
    running = json.loads(show(db, rows["running"].id, "-f", "json").stdout)
    assert running["verdict"].startswith("not stuck: processing") and "threshold 2m" in running["verdict"]


def test_malformed_id_exits_2_with_one_line(db: str, rows: dict[str, SeededRow]) -> None:
    r = show(db, "not-a-uuid")
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == ["stuckgen: error: 'not-a-uuid' is not a UUID, and generations.id is uuid"]


def test_unknown_id_exits_2_not_found(db: str, rows: dict[str, SeededRow]) -> None:
    missing = str(uuid.uuid4())
    r = show(db, missing.upper())  # normalised before the lookup
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr == f"stuckgen: error: no generation {missing} in public.generations\n"


def _record(gid: str, action: str, outcome: str, **detail: object) -> AuditRecord:
    return AuditRecord(run_id="20261128T103540Z-abc123", action=action, row_id=gid, table="generations",
                       at=datetime.now(timezone.utc), operator="oncall", outcome=outcome,
                       previous={"status": "processing"} if action == "fail" else None,
                       new={"status": "failed"} if action == "fail" else None, detail=dict(detail))


def test_audit_actions_from_the_table(db: str, rows: dict[str, SeededRow]) -> None:
    gid = rows["trigger-failed"].id
    log = TableAudit("stuckgen_audit", default_schema="public")
    with psycopg.connect(db, autocommit=True) as conn:
        log.prepare(conn)
        log.append(conn, [_record(gid, "retrigger", "accepted", status=202, attempt=1),
                          _record(gid, "fail", "changed", reason="trigger 401"),
                          _record(rows["stalled"].id, "fail", "changed")])
    doc = json.loads(show(db, gid, "-f", "json").stdout)
    assert doc["audit"]["where"] == "table public.stuckgen_audit"
    assert [(a["action"], a["outcome"]) for a in doc["audit"]["actions"]] == [("retrigger", "accepted"),
                                                                             ("fail", "changed")]
    assert doc["audit"]["actions"][0]["detail"] == {"status": 202, "attempt": 1}
    md = show(db, gid, "-f", "markdown").stdout
    assert "| retrigger | accepted | oncall | status=202; attempt=1 |" in md
    assert "set status" in md
    assert "retrigger" in show(db, gid, "-f", "table").stdout


def test_audit_actions_from_a_file_and_none_configured(db: str, rows: dict[str, SeededRow], tmp_path) -> None:
    gid = rows["stalled"].id
    path = tmp_path / "audit.jsonl"
    FileAudit(path).append(None, [_record(gid, "fail", "changed"), _record(str(uuid.uuid4()), "fail", "changed")])
    doc = json.loads(show(db, gid, "-f", "json", "--audit-file", str(path)).stdout)
    assert doc["audit"]["where"] == f"file {path}" and len(doc["audit"]["actions"]) == 1
    none = json.loads(show(db, gid, "-f", "json", "--audit-table", "none").stdout)
    assert none["audit"] is None
    assert "No audit log configured." in show(db, gid, "-f", "markdown", "--audit-table", "none").stdout
    # The table does not exist yet in this database: no actions, and nothing is created (read only).
    assert json.loads(show(db, gid, "-f", "json").stdout)["audit"]["actions"] == []


def test_no_secret_or_signed_url_token_is_printed(db: str, rows: dict[str, SeededRow]) -> None:
    gid = rows["trigger-failed"].id
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE generations SET parameters = jsonb_set(parameters, '{debugLogs}', parameters->'debugLogs' || %s)"
            " WHERE id = %s",
            (Jsonb([{"at": "2026-01-01T00:00:00.000Z", "step": "process:trigger-failed-http", "status": 401,
                     "error": f"sent x-internal-secret {SECRET}"}]), gid))
        conn.execute("INSERT INTO outputs (id, generation_id, file_url, file_type) VALUES (%s, %s, %s, 'image')",
                      (str(uuid.uuid4()), gid, "https://cdn.example.invalid/o.png?token=signed-token-123"))
    dsn = db + " password=hunter2-pw"  # trust authentication ignores it; it must still never be printed
    for fmt in ("json", "markdown", "table"):
        r = show(dsn, gid, "-f", fmt, INTERNAL_API_SECRET=SECRET)
        assert r.exit_code == 1, r.output
        text = r.stdout + r.stderr
        assert SECRET not in text and "hunter2-pw" not in text and "signed-token-123" not in text
        assert "cdn.example.invalid/o.png" in text and "***" in text


def test_unmapped_step_log_says_so(db: str, rows: dict[str, SeededRow]) -> None:
    gid = rows["stalled"].id
    r = show(db, gid, "-f", "json", "--map", "step_log=none")
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["timeline"] is None
    assert "No step log mapped" in show(db, gid, "-f", "markdown", "--map", "step_log=none").stdout
