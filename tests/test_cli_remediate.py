"""fail / retrigger / undo / history end to end: exit codes, stdout vs stderr, dry runs, secrets, signals."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference import ReferenceDeployment
from stuckgen.reference.seed import db_now, generate, insert_rows, seed

runner = CliRunner()
SECRET = "cli-secret-9c2e-do-not-print"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "STUCKGEN_MAP",
                "STUCKGEN_BASE_URL", "STUCKGEN_AUDIT_FILE", "STUCKGEN_AUDIT_TABLE", "STUCKGEN_OPERATOR",
                "VERCEL_AUTOMATION_BYPASS_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def stuck(db):
    with psycopg.connect(db, autocommit=True) as conn:
        rows = seed(conn, {"never-started": 4, "stalled": 2, "completed": 2})
    return db, rows


def statuses(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as c:
        return {str(r[0]): r[1] for r in c.execute("SELECT id, status FROM generations")}


def audit_table_exists(dsn: str) -> bool:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT to_regclass('stuckgen.audit') IS NOT NULL").fetchone()[0]


def test_fail_without_yes_is_a_dry_run_that_changes_nothing(stuck):
    dsn, rows = stuck
    before = statuses(dsn)
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", dsn, "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == "stuckgen.remediation/v1" and doc["dry_run"] is True and doc["run_id"] is None
    assert doc["counts"] == {"would-fail": 6}
    assert "dry run: would fail 6 of 6" in r.stderr and "--yes" in r.stderr
    assert statuses(dsn) == before and not audit_table_exists(dsn)


def test_fail_history_and_undo_round_trip(stuck):
    dsn, rows = stuck
    r = runner.invoke(app, ["fail", "--all-stuck", "--class", "never-started", "-d", dsn, "--yes", "--format", "json",
                            "--operator", "carol", "--reason", "provider outage 14:02"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    run_id = doc["run_id"]
    assert doc["counts"] == {"failed": 4} and doc["batches"] == {"done": 1, "total": 1} and doc["operator"] == "carol"
    assert {row["class"] for row in doc["rows"]} == {"never-started"}
    assert set(doc["rows"][0]) == {"id", "outcome", "ok", "reason", "class", "http_status", "attempt", "tries", "verify"}
    assert f"undo with: stuckgen undo {run_id}" in r.stderr
    st = statuses(dsn)
    assert sum(1 for v in st.values() if v == "failed") == 4

    h = runner.invoke(app, ["history", "-d", dsn, "--format", "json"])
    assert h.exit_code == 0, h.output
    hist = json.loads(h.stdout)
    assert hist["schema"] == "stuckgen.history/v1"
    assert hist["runs"][0] | {} == hist["runs"][0] and hist["runs"][0]["run_id"] == run_id
    assert hist["runs"][0]["outcomes"] == {"failed": 4} and hist["runs"][0]["operator"] == "carol"

    dry = runner.invoke(app, ["undo", run_id, "-d", dsn, "--format", "json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["counts"] == {"would-restore": 4}
    assert statuses(dsn) == st

    u = runner.invoke(app, ["undo", run_id, "-d", dsn, "--yes", "--format", "table"])
    assert u.exit_code == 0, u.output
    assert "restored 4 of 4" in u.stdout and u.stderr == ""
    assert set(statuses(dsn).values()) == {"processing", "completed"}

    h2 = runner.invoke(app, ["history", "-d", dsn, "--format", "table"])
    assert h2.exit_code == 0 and run_id in h2.stdout and "undo" in h2.stdout


def test_fail_by_ids_reports_unknown_ids_and_exits_1(stuck):
    dsn, rows = stuck
    target = next(r for r in rows if r.kind == "never-started")
    done = next(r for r in rows if r.kind == "completed")
    missing = "00000000-0000-4000-8000-000000000001"
    r = runner.invoke(app, ["fail", target.id, done.id, missing, "-d", dsn, "--yes", "--format", "json"])
    assert r.exit_code == 1, r.output
    by = {row["id"]: row["outcome"] for row in json.loads(r.stdout)["rows"]}
    assert by == {target.id: "failed", done.id: "not-stuck", missing: "not-found"}
    assert "not remediated: 1 not-stuck, 1 not-found" in r.stderr


def test_ids_of_the_wrong_type_exit_2_with_one_line_and_nothing_written(stuck):
    dsn, _ = stuck
    before = statuses(dsn)
    r = runner.invoke(app, ["fail", "12345", "-d", dsn, "--yes"])
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.startswith("stuckgen: error: 1 id(s) are not valid for generations.id (uuid): '12345'")
    assert statuses(dsn) == before and not audit_table_exists(dsn)


def test_selection_usage_errors_exit_2(stuck):
    dsn, rows = stuck
    r = runner.invoke(app, ["fail", "-d", dsn])
    assert r.exit_code == 2 and "nothing selected" in r.stderr and r.stdout == ""
    r = runner.invoke(app, ["fail", rows[0].id, "--all-stuck", "-d", dsn])
    assert r.exit_code == 2 and "not both" in r.stderr
    r = runner.invoke(app, ["undo", "20990101T000000Z-000000", "-d", dsn])
    assert r.exit_code == 2 and "not in the audit log" in r.stderr


def test_empty_all_stuck_selection_is_nothing_to_do(db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"completed": 2})
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", db, "--yes", "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["selected"] == 0 and doc["dry_run"] is False and doc["remediated"] == 0
    # One story in every format: nothing to do, no dry-run promise, no "Pass --yes".
    assert r.stderr.strip().splitlines() == ["nothing to do: no stuck rows match the filters; nothing was written"]
    r = runner.invoke(app, ["fail", "--all-stuck", "--older-than", "30m", "-d", db, "--yes", "--format", "table"])
    assert r.exit_code == 0, r.output
    assert "nothing to do" in r.stdout + r.stderr and "dry run" not in r.stdout + r.stderr
    assert "Pass --yes" not in r.stdout + r.stderr
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", db, "--format", "json"])  # without --yes: a dry run of nothing
    assert r.exit_code == 0 and json.loads(r.stdout)["dry_run"] is True, r.output


def test_a_second_undo_says_an_earlier_undo_restored_every_row(stuck):
    stuck, _ = stuck
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", stuck, "--yes", "-f", "json"])
    assert r.exit_code == 0, r.output
    run_id, n = json.loads(r.stdout)["run_id"], json.loads(r.stdout)["remediated"]
    r = runner.invoke(app, ["undo", run_id, "-d", stuck, "--yes", "-f", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["remediated"] == n, r.output
    r = runner.invoke(app, ["undo", run_id, "-d", stuck, "--yes", "-f", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["remediated"] == 0 and doc["counts"] == {"already-undone": n}
    assert doc["batches"] == {"done": 0, "total": 0}
    assert r.stderr.strip().splitlines() == [
        f"nothing to restore: all {n} row(s) of run {run_id} were restored by an earlier undo"], r.stderr


def test_a_retrigger_dry_run_promises_without_claiming_and_a_breaker_stop_is_said_once(db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 7})
    with ReferenceDeployment(db, "secret-missing", secret="retrigger-secret-0123456789") as dep:
        env = {"INTERNAL_API_SECRET": "retrigger-secret-0123456789"}
        r = runner.invoke(app, ["retrigger", "--all-stuck", "-d", db, "--url", dep.url, "-f", "json"], env=env)
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["dry_run"] is True and doc["remediated"] == 0 and doc["would_remediate"] == 7
        assert all(x["attempt"] is None and x["tries"] is None for x in doc["rows"])
        r = runner.invoke(app, ["retrigger", "--all-stuck", "-d", db, "--url", dep.url, "-f", "json", "--yes",
                                "--concurrency", "1"], env=env)
        dep.wait_idle()
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["stopped"] and doc["remediated"] == 0
    never_sent = [x for x in doc["rows"] if x["outcome"] == "not-sent"]
    assert never_sent and all(x["attempt"] is None and x["tries"] is None for x in never_sent)
    assert r.stderr.count(doc["stopped"]) == 1, r.stderr


def test_unreachable_database_exits_3(tmp_path):
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", "postgresql://u:pw-xyz@127.0.0.1:1/none",
                            "--connect-timeout", "1s", "--yes"])
    assert r.exit_code == 3 and r.stdout == "" and "pw-xyz" not in r.stderr


def test_retrigger_against_the_reference_deployment_with_a_jsonl_audit(stuck, monkeypatch, tmp_path):
    dsn, rows = stuck
    monkeypatch.setenv("INTERNAL_API_SECRET", SECRET)
    audit = tmp_path / "audit.jsonl"
    with ReferenceDeployment(dsn, "healthy", secret=SECRET, work_seconds=0.2, heartbeat_interval=0.05) as dep:
        r = runner.invoke(app, ["retrigger", "--all-stuck", "--class", "never-started", "-d", dsn, "--url", dep.url,
                                "--audit-file", str(audit), "--wait", "10s", "--yes", "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["counts"] == {"accepted": 4}
    assert {row["verify"] for row in doc["rows"]} == {"completed"}
    assert "verification: 4 completed" in r.stderr
    st = statuses(dsn)
    assert all(st[x.id] == "completed" for x in rows if x.kind == "never-started")
    assert stat.S_IMODE(os.stat(audit).st_mode) == 0o600
    text = audit.read_text()
    assert len(text.splitlines()) == 4
    rec = json.loads(text.splitlines()[0])
    assert rec["action"] == "retrigger" and rec["detail"]["secret_fingerprint"].startswith("sha256:")
    for out in (r.stdout, r.stderr, text):
        assert SECRET not in out


def test_retrigger_stops_at_the_first_401_and_points_to_probe_auth(stuck, monkeypatch):
    dsn, _ = stuck
    monkeypatch.setenv("INTERNAL_API_SECRET", SECRET)
    with ReferenceDeployment(dsn, "secret-missing", secret=SECRET) as dep:
        r = runner.invoke(app, ["retrigger", "--all-stuck", "-d", dsn, "--url", dep.url, "--concurrency", "1",
                                "--yes", "--format", "table"])
        sent = sum(v for (path, _), v in dep.counters.requests.items() if path == dep.route)
    assert r.exit_code == 1, r.output
    assert sent == 1
    assert "auth-rejected" in r.stdout and "not-sent" in r.stdout
    assert "stopped: the deployment answered HTTP 401" in r.stdout
    assert (r.stdout + r.stderr).count("stuckgen probe-auth") == 1, "the stop is said once"
    with psycopg.connect(dsn) as c:
        audit_text = json.dumps(c.execute("SELECT json_agg(a) FROM stuckgen.audit a").fetchone()[0])
    for out in (r.stdout, r.stderr, audit_text):
        assert SECRET not in out


def test_retrigger_dry_run_sends_nothing(stuck, monkeypatch):
    dsn, _ = stuck
    monkeypatch.setenv("INTERNAL_API_SECRET", SECRET)
    with ReferenceDeployment(dsn, "healthy", secret=SECRET) as dep:
        r = runner.invoke(app, ["retrigger", "--all-stuck", "-d", dsn, "--url", dep.url, "--format", "json"])
        sent = sum(v for (path, _), v in dep.counters.requests.items() if path == dep.route)
    # --all-stuck takes only the classes a new trigger cannot harm; the stalled rows are listed as left out.
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["counts"] == {"would-trigger": 4, "left-out": 2} and sent == 0
    assert "nothing was sent" in r.stderr and "left out 2 stalled row(s)" in r.stderr


def test_retrigger_refuses_plain_http_to_a_remote_host(stuck, monkeypatch):
    dsn, _ = stuck
    monkeypatch.setenv("INTERNAL_API_SECRET", SECRET)
    r = runner.invoke(app, ["retrigger", "--all-stuck", "-d", dsn, "--url", "http://app.example.com", "--yes"])
    assert r.exit_code == 2 and r.stdout == ""
    assert "refusing to send the secret over plain HTTP to app.example.com" in r.stderr and SECRET not in r.stderr


def test_retrigger_needs_a_url(stuck):
    dsn, _ = stuck
    r = runner.invoke(app, ["retrigger", "--all-stuck", "-d", dsn])
    assert r.exit_code == 2 and "no deployment URL" in r.stderr


def test_history_from_an_empty_audit_file(tmp_path):
    r = runner.invoke(app, ["history", "--audit-file", str(tmp_path / "none.jsonl"), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["runs"] == []


def test_commands_have_docstrings_with_examples():
    for name in ("fail", "retrigger", "undo", "history"):
        r = runner.invoke(app, [name, "--help"])
        assert r.exit_code == 0 and "Example" in r.stdout
    for name in ("fail", "retrigger", "undo"):
        assert any(w in runner.invoke(app, [name, "--help"]).stdout for w in ("Destructive", "Fires production work"))


def test_sigterm_during_fail_leaves_whole_batches_and_reports_how_far_it_got(db):
    with psycopg.connect(db, autocommit=True) as c:
        insert_rows(c, generate({"never-started": 20000}, now=db_now(c)))
    proc = subprocess.Popen([sys.executable, "-m", "stuckgen", "fail", "--all-stuck", "-d", db, "--yes",
                             "--batch-size", "20", "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    deadline = time.monotonic() + 30
    with psycopg.connect(db, autocommit=True) as c:
        while time.monotonic() < deadline:
            exists = c.execute("SELECT to_regclass('stuckgen.audit') IS NOT NULL").fetchone()[0]
            if exists and c.execute("SELECT count(*) FROM stuckgen.audit").fetchone()[0] > 0:
                break
            time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    doc = json.loads(out)
    assert doc["interrupted"] is True and 0 < doc["batches"]["done"] < 1000
    assert b"interrupted: every batch is either fully applied or not at all" in err
    with psycopg.connect(db) as c:
        failed = c.execute("SELECT count(*) FROM generations WHERE status = 'failed'").fetchone()[0]
        audited = c.execute("SELECT count(*) FROM stuckgen.audit").fetchone()[0]
    assert failed == audited == doc["counts"]["failed"] == 20 * doc["batches"]["done"]


def _on_a_terminal(cmd: list[str], cwd, answer: bytes) -> tuple[str, str, int]:
    """Run ``cmd`` with stdin/stdout/stderr on a pseudo-terminal; answer the first [y/N] question.

    Returns (everything before the question, everything after, exit code).
    """
    import pty
    import select

    m, s = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUCKGEN_") and k != "DATABASE_URL"}
    env.update(COLUMNS="100", LINES="50")
    p = subprocess.Popen(cmd, stdin=s, stdout=s, stderr=s, cwd=cwd, env=env, close_fds=True)
    os.close(s)
    before, after = b"", b""
    deadline = time.monotonic() + 60
    try:
        while b"[y/N]" not in before and time.monotonic() < deadline and p.poll() is None:
            if select.select([m], [], [], 0.2)[0]:
                before += os.read(m, 65536)
        os.write(m, answer)
        while time.monotonic() < deadline:
            if not select.select([m], [], [], 0.2)[0]:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(m, 65536)
            except OSError:
                break
            if not chunk:
                break
            after += chunk
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(m)
    return before.decode(errors="replace"), after.decode(errors="replace"), p.returncode


def test_on_a_terminal_the_plan_and_the_target_come_before_the_question(stuck, tmp_path):
    from psycopg.conninfo import conninfo_to_dict

    dsn, _ = stuck
    p = conninfo_to_dict(dsn)
    from urllib.parse import quote

    host = quote(p.get("host", "127.0.0.1"), safe="")  # the embedded server listens on a socket directory
    url = f"postgresql://{p.get('user', 'postgres')}:Env-Passw0rd-77@{host}:{p.get('port', 5432)}/{p['dbname']}"
    (tmp_path / ".env").write_text(f"DATABASE_URL={url}\n")
    exe = str(Path(sys.executable).parent / "stuckgen")
    before, after, code = _on_a_terminal([exe, "fail", "--all-stuck"], tmp_path, b"n\n")
    assert code == 0, before + after
    ids = [i for i, st in statuses(dsn).items() if st == "processing"]
    assert ids and all(i in before for i in ids), "every row is shown before the question"
    assert f"target: database {p['dbname']} on {p.get('host', '127.0.0.1')}:{p.get('port', 5432)}" in before
    assert "table public.generations" in before and "comes from ./.env" in before
    assert before.rindex("[y/N]") > max(before.index(i) for i in ids)
    assert "Env-Passw0rd-77" not in before + after
    assert "would fail 6 of 6" in after and not any(i in after for i in ids), "no second copy of the rows"
    assert set(statuses(dsn).values()) == {"processing", "completed"}, "nothing was written"
