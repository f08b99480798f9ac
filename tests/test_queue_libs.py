"""graphile-worker and pg-boss, installed from npm and migrated by their own code, read by their own rules.

tests/queue_libs/fixture.mjs migrates both libraries, adds jobs through their APIs and leaves
a graphile-worker job locked by a worker that died and a pg-boss job fetched by a consumer that
never finished it. Time passes by backdating their timestamps on the database clock.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.queues import queue_census

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LIBS = Path(__file__).parent / "queue_libs"
runner = CliRunner()


@pytest.fixture(scope="session")
def node_libs() -> Path:
    """tests/queue_libs/node_modules, installed from the committed lockfile when missing (fails, never skips)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed for the graphile-worker/pg-boss tests (.ci/run installs them)",
                    pytrace=False)
    if not (LIBS / "node_modules" / "graphile-worker").is_dir() or not (LIBS / "node_modules" / "pg-boss").is_dir():
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=LIBS,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.fail(f"npm ci in {LIBS} failed: {r.stderr[-2000:]}", pytrace=False)
    return LIBS


def node_url(dsn: str) -> str:
    """A libpq DSN (keyword or URL form) as the URL node-postgres reads; a socket directory goes in ?host=."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(dsn)
    user = quote(str(p.get("user") or "postgres"), safe="")
    pw = f":{quote(str(p['password']), safe='')}" if p.get("password") else ""
    host = str(p.get("host") or "127.0.0.1")
    port = str(p.get("port") or "5432")
    db = quote(str(p.get("dbname") or "postgres"), safe="")
    if host.startswith("/"):
        return f"postgresql://{user}{pw}@/{db}?host={quote(host, safe='')}&port={port}"
    return f"postgresql://{user}{pw}@{host}:{port}/{db}"


@pytest.fixture
def queues(empty_db, node_libs):
    r = subprocess.run(["node", "fixture.mjs", node_url(empty_db)], cwd=node_libs, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    ids = json.loads(r.stdout.strip().splitlines()[-1])
    return empty_db, ids


def backdate(conn: psycopg.Connection, seconds: float) -> None:
    """Let time pass for both libraries' jobs (their own timestamp columns)."""
    conn.execute("UPDATE graphile_worker._private_jobs SET run_at = run_at - make_interval(secs => %(s)s), "
                 "created_at = created_at - make_interval(secs => %(s)s), "
                 "locked_at = locked_at - make_interval(secs => %(s)s)", {"s": seconds})
    conn.execute("UPDATE pgboss.job SET start_after = start_after - make_interval(secs => %(s)s), "
                 "created_on = created_on - make_interval(secs => %(s)s), "
                 "started_on = started_on - make_interval(secs => %(s)s)", {"s": seconds})


def census(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return {c.library: c for c in queue_census(conn, threshold=120)}


def test_fresh_jobs_are_not_stuck(queues):
    dsn, ids = queues
    c = census(dsn)
    assert c["graphile-worker"].counts == {"locked": 1, "waiting": 2}
    assert c["pg-boss"].counts == {"active": 1, "waiting": 1, "completed": 1}
    assert c["graphile-worker"].stuck == 0 and c["pg-boss"].stuck == 0


def test_a_dead_worker_and_an_idle_queue_by_each_librarys_rules(queues):
    dsn, ids = queues
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 3 * 3600)  # under graphile-worker's 4-hour lock, past pg-boss's 60 s expire_in
    c = census(dsn)
    gw, boss = c["graphile-worker"], c["pg-boss"]
    # The job scheduled an hour ahead is now due two hours ago: nothing took it either.
    assert gw.counts == {"locked": 1, "queued-not-drained": 2}
    assert boss.counts == {"expired-active": 1, "queued-not-drained": 1, "completed": 1}
    assert boss.examples["expired-active"] == [ids["pgboss"]["dead_consumer"]]
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 2 * 3600)  # now past the 4-hour lock; the scheduled job is due too
        conn.execute("SELECT graphile_worker.permanently_fail_jobs(ARRAY[%s::bigint], 'boom')",
                     (ids["graphile"]["waiting"],))
    gw = census(dsn)["graphile-worker"]
    assert gw.counts == {"lock-expired": 1, "queued-not-drained": 1, "failed": 1}
    assert gw.examples["lock-expired"] == [ids["graphile"]["dead_worker"]]
    assert gw.stuck == 2


def test_init_writes_the_queue_census_beside_the_apps_table(queues, tmp_path, monkeypatch):
    dsn, ids = queues
    monkeypatch.chdir(tmp_path)
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 5 * 3600)
        conn.execute("CREATE TABLE generations (id uuid PRIMARY KEY, status text NOT NULL, created_at timestamptz)")
    r = runner.invoke(app, ["init", "-d", dsn])
    assert r.exit_code == 0, r.output
    text = Path("stuckgen.toml").read_text()
    assert tomllib.loads(text)["table"] == "generations"
    assert "graphile-worker in graphile_worker._private_jobs, read by its own rules (3 stuck)" in text
    assert "pg-boss in pgboss.job, read by its own rules (2 stuck)" in text
    assert f"lock-expired: 1 job e.g. {ids['graphile']['dead_worker']}" in text
    assert f"expired-active: 1 job e.g. {ids['pgboss']['dead_consumer']}" in text


@pytest.fixture
def queues_with_app_table(queues):
    dsn, ids = queues
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE generations (id uuid PRIMARY KEY, status text NOT NULL, created_at timestamp)")
    return dsn, ids


def test_check_fails_on_stuck_library_jobs_and_passes_on_fresh_ones(queues_with_app_table, tmp_path, monkeypatch):
    dsn, ids = queues_with_app_table
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["check", "-d", dsn, "-f", "json"])
    assert r.exit_code == 0, r.output
    names = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert names["queue:graphile-worker"]["passed"] and names["queue:pg-boss"]["passed"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 5 * 3600)
    r = runner.invoke(app, ["check", "-d", dsn])
    assert r.exit_code == 1, r.output
    assert "FAIL queue:graphile-worker: 3 stuck jobs in graphile_worker._private_jobs" in r.stdout
    assert "FAIL queue:pg-boss: 2 stuck jobs in pgboss.job" in r.stdout


def test_doctor_names_the_stuck_jobs_and_the_librarys_own_way_out(queues_with_app_table, tmp_path, monkeypatch):
    dsn, ids = queues_with_app_table
    monkeypatch.chdir(tmp_path)
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 5 * 3600)
    doc = json.loads(runner.invoke(app, ["doctor", "-d", dsn, "-f", "json"]).stdout)
    gw = next(f for f in doc["findings"] if f["id"] == "queue-graphile-worker")
    assert any(ids["graphile"]["dead_worker"] in e and "4-hour lock" in e for e in gw["evidence"])
    assert "graphile_worker.force_unlock_workers" in gw["fix"] and "permanently_fail_jobs" in gw["fix"]
    boss = next(f for f in doc["findings"] if f["id"] == "queue-pg-boss")
    assert any(ids["pgboss"]["dead_consumer"] in e for e in boss["evidence"])
    assert {q["library"] for q in doc["queues"]} == {"graphile-worker", "pg-boss"}


def _jobs(dsn: str, *args: str) -> tuple[int, dict, str]:
    r = runner.invoke(app, ["jobs", "-d", dsn, "-f", "json", *args])
    return r.exit_code, (json.loads(r.stdout) if r.stdout.strip() else {}), r.stderr


def _graphile(dsn: str, job_id: str) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT locked_by, attempts, max_attempts, last_error FROM graphile_worker._private_jobs "
                            "WHERE id = %s", (int(job_id),)).fetchone()


def test_jobs_lists_the_stuck_jobs_of_both_libraries(queues, tmp_path, monkeypatch):
    dsn, ids = queues
    monkeypatch.chdir(tmp_path)
    code, doc, _ = _jobs(dsn)
    assert code == 0 and doc["jobs"] == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 5 * 3600)
    code, doc, _ = _jobs(dsn)
    assert code == 1
    got = {(j["library"], j["id"]): j["kind"] for j in doc["jobs"]}
    assert got[("graphile-worker", ids["graphile"]["dead_worker"])] == "lock-expired"
    assert got[("pg-boss", ids["pgboss"]["dead_consumer"])] == "expired-active"
    assert got[("pg-boss", ids["pgboss"]["waiting"])] == "queued-not-drained"


def test_retry_unlocks_the_dead_workers_job_with_graphile_workers_own_function(queues, tmp_path, monkeypatch):
    dsn, ids = queues
    monkeypatch.chdir(tmp_path)
    dead = ids["graphile"]["dead_worker"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 5 * 3600)
    code, doc, err = _jobs(dsn, "--retry", "--all-stuck")
    assert code == 1 and doc["dry_run"] is True and "dry run" in err  # the queued jobs need a worker: skipped
    assert {o["id"]: o["outcome"] for o in doc["outcomes"]}[dead] == "would-retry"
    assert _graphile(dsn, dead)[0] is not None
    code, doc, _ = _jobs(dsn, "--retry", dead, "--yes", "--audit-file", str(tmp_path / "audit.jsonl"))
    assert code == 0, doc
    assert doc["outcomes"] == [{"id": dead, "outcome": "retried", "reason": doc["outcomes"][0]["reason"]}]
    locked_by, attempts, _max, _err = _graphile(dsn, dead)
    assert locked_by is None and attempts == 1  # the attempt it used is kept: graphile-worker counts it
    line = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert line["action"] == "jobs-retry" and line["row_id"] == dead


def test_fail_uses_permanently_fail_jobs_and_leaves_a_live_workers_job_alone(queues, tmp_path, monkeypatch):
    dsn, ids = queues
    monkeypatch.chdir(tmp_path)
    dead = ids["graphile"]["dead_worker"]
    # Locked one hour ago: graphile-worker itself refuses to fail it (its worker may be alive).
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 3600)
    code, doc, _ = _jobs(dsn, "--fail", dead, "--yes")
    assert code == 1 and doc["outcomes"][0]["outcome"] == "skipped"
    assert _graphile(dsn, dead)[0] is not None
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 4 * 3600)
    code, doc, _ = _jobs(dsn, "--fail", dead, "--reason", "worker lost", "--yes")
    assert code == 0, doc
    _locked_by, attempts, max_attempts, last_error = _graphile(dsn, dead)
    # graphile-worker's own function ends it: attempts used up, the reason as last_error.
    assert attempts == max_attempts and last_error == "worker lost"
    code, doc, _ = _jobs(dsn)
    assert dead not in {j["id"] for j in doc["jobs"]}
    with psycopg.connect(dsn) as conn:
        rec = conn.execute("SELECT action, outcome, previous FROM stuckgen.audit WHERE row_id = %s", (dead,)).fetchone()
    assert rec[0] == "jobs-fail" and rec[1] == "failed" and rec[2]["locked_by"]


def test_pg_boss_jobs_are_never_written(queues, tmp_path, monkeypatch):
    dsn, ids = queues
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["jobs", "-d", dsn, "--retry", ids["pgboss"]["dead_consumer"], "--yes"])
    assert r.exit_code == 2 and "pg-boss itself" in r.stderr


def test_scan_of_the_apps_table_points_at_stuck_library_jobs(queues_with_app_table, tmp_path, monkeypatch):
    dsn, _ = queues_with_app_table
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["scan", "-d", dsn, "-f", "json"])
    assert r.exit_code == 0 and "stuckgen jobs" not in r.stderr
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 5 * 3600)
    r = runner.invoke(app, ["scan", "-d", dsn, "-f", "json"])
    assert r.exit_code == 0, r.output  # the app's own table has nothing stuck
    assert "graphile-worker holds 3 stuck job(s)" in r.stderr and "pg-boss holds 2 stuck job(s)" in r.stderr
    assert "`stuckgen scan --queue-library graphile-worker`" in r.stderr
    assert json.loads(r.stdout)["rows"] == []
