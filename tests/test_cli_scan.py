"""The scan and schema commands end to end: exit codes, stdout vs stderr, formats, errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.seed import KINDS, generate, db_now, insert_rows, seed

runner = CliRunner()


@pytest.fixture
def seeded(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {k: 2 for k in KINDS})
    return db


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "STUCKGEN_MAP"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def test_scan_json_has_documented_shape_and_exit_1(seeded):
    r = runner.invoke(app, ["scan", "-d", seeded, "--format", "json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == "stuckgen.scan/v1"
    assert set(doc) >= {"generated_at", "table", "threshold_seconds", "since_seconds", "rows", "summary"}
    assert len(doc["rows"]) == 14
    row = doc["rows"][0]
    assert set(row) >= {"id", "status", "class", "why", "created_at", "quiet_seconds", "last_step", "trigger_status"}
    assert doc["summary"]["stuck"] == 14
    assert sum(doc["summary"]["by_class"].values()) == 14
    assert doc["summary"]["created_in_window"] == 18


def test_scan_csv_and_summary_on_stderr(seeded):
    r = runner.invoke(app, ["scan", "-d", seeded, "--format", "csv", "--class", "stalled"])
    assert r.exit_code == 1, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 2 and {x["class"] for x in rows} == {"stalled"}
    assert "2 stuck" in r.stderr


def test_scan_table_format(seeded):
    r = runner.invoke(app, ["scan", "-d", seeded, "--format", "table"])
    assert r.exit_code == 1, r.output
    assert "never-started" in r.stdout and "By class:" in r.stdout and "Onset:" in r.stdout
    assert "\x1b[" not in r.stdout, "no colour when stdout is not a terminal"


def test_scan_nothing_stuck_exits_0(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 3, "running": 2})
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == []


def test_scan_limit_marks_truncation(seeded):
    r = runner.invoke(app, ["scan", "-d", seeded, "-f", "json", "--limit", "3"])
    doc = json.loads(r.stdout)
    assert len(doc["rows"]) == 3 and doc["summary"]["truncated"] is True


def test_database_url_from_env_and_dotenv(seeded, tmp_path):
    r = runner.invoke(app, ["scan", "-f", "json"], env={"DATABASE_URL": seeded})
    assert r.exit_code == 1, r.output
    (tmp_path / ".env").write_text(f"SUPABASE_DB_URL={seeded}\n")
    r = runner.invoke(app, ["scan", "-f", "json"])
    assert r.exit_code == 1, r.output


@pytest.mark.parametrize("args,needle", [
    (["scan", "--threshold", "soon"], "--threshold"),
    (["scan", "--since", "5"], "--since"),
    (["scan", "--format", "xml"], "--format"),
    (["scan", "--map", "beat=x"], "unknown field"),
])
def test_bad_input_is_one_line_and_exit_2(seeded, args, needle):
    r = runner.invoke(app, args + ["-d", seeded])
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and "Traceback" not in r.output
    assert r.stdout == ""


def test_no_database_configured_is_exit_2():
    r = runner.invoke(app, ["scan"])
    assert r.exit_code == 2
    assert "DATABASE_URL" in r.stderr


def test_unreachable_database_is_exit_3_and_password_never_printed():
    r = runner.invoke(app, ["scan", "-d", "postgresql://app:s3cr3t-pw-xyz@127.0.0.1:1/db", "--connect-timeout", "2s"])
    assert r.exit_code == 3, r.output
    assert "s3cr3t-pw-xyz" not in r.output
    first, *hints = r.stderr.strip().splitlines()
    assert first.startswith("stuckgen: error: cannot connect") and all(h.startswith("  hint: ") for h in hints)


def test_missing_table_is_exit_2_listing_tables(db):
    r = runner.invoke(app, ["scan", "-d", db, "--table", "jobs"])
    assert r.exit_code == 2
    assert "generations" in r.stderr and "outputs" in r.stderr


def test_schema_command_reports_fields_and_sources(db):
    r = runner.invoke(app, ["schema", "-d", db, "-f", "json", "--map", "error=parameters.triggerErrorText"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["fields"]["created"]["spec"] == "created_at"
    assert doc["fields"]["heartbeat"]["spec"] == "parameters.lastHeartbeatAt"
    assert doc["fields"]["error"] == {"spec": "parameters.triggerErrorText", "type": "jsonb", "source": "flag --map"}
    assert doc["fields"]["updated"]["spec"] is None
    assert doc["queue"]["table"] == "generation_jobs"


def test_debug_shows_traceback_only_when_asked(db):
    r = runner.invoke(app, ["scan", "-d", db, "--table", "nope"])
    assert "Traceback" not in r.stderr
    r = runner.invoke(app, ["scan", "-d", db, "--table", "nope", "--debug"])
    assert "Traceback" in r.stderr


def test_installed_console_script_runs_scan(seeded, tmp_path):
    exe = Path(sys.executable).parent / "stuckgen"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env["NO_COLOR"] = "1"
    p = subprocess.run([str(exe), "scan", "-d", seeded], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert json.loads(p.stdout)["summary"]["stuck"] == 14, "a pipe gets JSON by default"
    v = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
    assert v.returncode == 0 and v.stdout.startswith("stuckgen ")


def test_scan_streams_many_rows_as_valid_json(db):
    with psycopg.connect(db, autocommit=True) as conn:
        insert_rows(conn, generate({"never-started": 5000}, now=db_now(conn)))
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json"])
    doc = json.loads(r.stdout)
    assert len(doc["rows"]) == 5000 and doc["summary"]["by_class"] == {"never-started": 5000}


def test_closed_output_pipe_ends_quietly_with_141(db, tmp_path):
    with psycopg.connect(db, autocommit=True) as conn:
        insert_rows(conn, generate({"never-started": 20000}, now=db_now(conn)))
    exe = Path(sys.executable).parent / "stuckgen"
    p = subprocess.Popen([str(exe), "scan", "-d", db, "-f", "csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=tmp_path)
    p.stdout.readline()
    p.stdout.close()  # the reader goes away, like `| head -1`
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141
    assert "Traceback" not in err and "internal error" not in err


def test_slow_sequential_scan_of_a_large_table_prints_the_partial_index_that_fixes_it(db, monkeypatch):
    from stuckgen.commands import scan as scan_cli

    # Every scan counts as slow here; on a real table "slow" is over SLOW_SCAN_SECONDS.
    monkeypatch.setattr(scan_cli, "SLOW_SCAN_SECONDS", 0.0)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""INSERT INTO generations (id, session_id, user_id, model_id, prompt, parameters, status, created_at)
            SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'm', 'p',
                   jsonb_build_object('lastStep', 'process:completed'), 'completed',
                   (now() AT TIME ZONE 'UTC') - (n || ' seconds')::interval
            FROM generate_series(1, 60000) n""")
        seed(conn, {"never-started": 3})
        conn.execute("ANALYZE generations")
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json"])
    assert r.exit_code == 1, r.output
    ddl = next(line.strip() for line in r.stderr.splitlines() if "CREATE INDEX CONCURRENTLY" in line)
    assert ddl == ('CREATE INDEX CONCURRENTLY "generations_inflight_created_at_idx" ON "public"."generations" '
                   "(\"created_at\") WHERE \"status\" IN ('processing', 'queued');")
    s = runner.invoke(app, ["schema", "-d", db, "-f", "json"])
    assert s.exit_code == 0 and json.loads(s.stdout)["index_advice"] == ddl, "schema gives the same advice"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(ddl)
        conn.execute("ANALYZE generations")
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json"])
    assert r.exit_code == 1 and "CREATE INDEX" not in r.stderr, "with the index in place the advice goes away"
    assert json.loads(r.stdout)["summary"]["stuck"] == 3
    s = runner.invoke(app, ["schema", "-d", db, "-f", "json"])
    assert json.loads(s.stdout)["index_advice"] is None



def test_scan_limit_shortens_the_list_never_the_counts(seeded):
    full = json.loads(runner.invoke(app, ["scan", "-d", seeded, "-f", "json"]).stdout)["summary"]
    assert full["stuck"] > 2
    r = runner.invoke(app, ["scan", "-d", seeded, "-f", "json", "-n", "2"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert len(doc["rows"]) == 2 and doc["summary"]["truncated"] is True
    for key in ("stuck", "by_class", "stuck_rate", "onset", "per_hour"):
        assert doc["summary"][key] == full[key], key
    assert doc["summary"]["oldest"]["id"] == full["oldest"]["id"]
    r = runner.invoke(app, ["scan", "-d", seeded, "-f", "table", "-n", "2"], terminal_width=100)
    assert f"{full['stuck']} stuck of" in r.stdout and "counts above cover every stuck row" in r.stdout, r.stdout
    r = runner.invoke(app, ["scan", "-d", seeded, "-f", "json", "-n", str(full["stuck"])])
    assert json.loads(r.stdout)["summary"]["truncated"] is False  # nothing was left out


def test_a_fast_scan_runs_no_explain(db, monkeypatch):
    from stuckgen import scan as scan_core
    from stuckgen.commands import scan as scan_cli

    calls = []
    monkeypatch.setattr(scan_core, "explain_advice", lambda *a, **k: calls.append(a) or None)
    monkeypatch.setattr(scan_cli, "SLOW_SCAN_SECONDS", 3600.0)
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 3})
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json"])
    assert r.exit_code == 1, r.output
    assert calls == [], "EXPLAIN is paid only when the scan was slow"
