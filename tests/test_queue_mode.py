"""Queue mode: scan, show, check, doctor, fail, retrigger and init on graphile-worker's and pg-boss's own tables.

The libraries are installed from npm and migrated by their own code (tests/queue_libs/fixture.mjs,
shared with test_queue_libs); time passes by backdating their timestamps on the database clock.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from test_queue_libs import backdate, node_libs, queues  # noqa: F401  (fixtures)

runner = CliRunner()


def run(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def stuck(queues, tmp_path, monkeypatch):  # noqa: F811
    """Five hours on: graphile-worker's dead worker is past its 4-hour lock, both queued jobs and
    pg-boss's waiting job are undrained, and pg-boss's fetched job is past its 60 s expire_in."""
    dsn, ids = queues
    monkeypatch.chdir(tmp_path)
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 5 * 3600)
    return dsn, ids


def _expected(ids: dict) -> dict[str, str]:
    g, b = ids["graphile"], ids["pgboss"]
    return {g["dead_worker"]: "lock-expired", g["waiting"]: "queued-not-drained", g["future"]: "queued-not-drained",
            b["dead_consumer"]: "expired-active", b["waiting"]: "queued-not-drained"}


def test_scan_lists_nothing_while_the_jobs_are_fresh(queues, tmp_path, monkeypatch):  # noqa: F811
    dsn, _ = queues
    monkeypatch.chdir(tmp_path)
    r = run("scan", "-d", dsn, "--queue-library", "graphile-worker,pg-boss", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == "stuckgen.jobs-scan/v1" and doc["rows"] == [] and doc["summary"]["stuck"] == 0


def test_scan_lists_every_stuck_job_with_its_class_and_no_healthy_one(stuck):
    dsn, ids = stuck
    r = run("scan", "-d", dsn, "--queue-library", "graphile-worker,pg-boss", "-f", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert {row["id"]: row["class"] for row in doc["rows"]} == _expected(ids)
    assert ids["pgboss"]["finished"] not in {row["id"] for row in doc["rows"]}  # completed: not stuck
    dead = next(row for row in doc["rows"] if row["id"] == ids["graphile"]["dead_worker"])
    assert dead["task"] == "hang" and dead["locked_by"] and dead["attempts"] == 1 and dead["library"] == "graphile-worker"
    assert doc["summary"]["by_class"] == {"expired-active": 1, "lock-expired": 1, "queued-not-drained": 3}


def test_scan_of_one_library_by_environment_csv_and_table(stuck):
    dsn, ids = stuck
    env = {"STUCKGEN_QUEUE_LIBRARY": "pg-boss"}
    r = run("scan", "-d", dsn, "-f", "csv", env=env)
    assert r.exit_code == 1, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {row["id"]: row["class"] for row in rows} == {ids["pgboss"]["dead_consumer"]: "expired-active",
                                                          ids["pgboss"]["waiting"]: "queued-not-drained"}
    assert "2 stuck job(s) in pgboss.job" in r.stderr
    r = run("scan", "-d", dsn, "-f", "table", "--class", "lock-expired", env={"STUCKGEN_QUEUE_LIBRARY": "graphile-worker"})
    assert r.exit_code == 1, r.output
    assert ids["graphile"]["dead_worker"] in r.stdout and "lock-expired" in r.stdout
    assert "1 stuck job(s) in graphile_worker._private_jobs: lock-expired 1." in r.stdout
    assert "queued-not-drained" not in r.stdout.split("\n\n")[0]


def test_a_table_naming_the_librarys_own_table_is_queue_mode_too(stuck):
    dsn, ids = stuck
    r = run("scan", "-d", dsn, "--table", "graphile_worker.jobs", "-f", "json")
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["libraries"] == ["graphile-worker"]


def test_queue_mode_in_stuckgen_toml_and_a_missing_library(stuck):
    dsn, ids = stuck
    Path("stuckgen.toml").write_text('queue_library = ["graphile-worker"]\n')
    r = run("scan", "-d", dsn, "-f", "json")
    assert r.exit_code == 1 and len(json.loads(r.stdout)["rows"]) == 3
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA pgboss CASCADE")
    r = run("scan", "-d", dsn, "--queue-library", "pg-boss")
    assert r.exit_code == 2 and "pgboss.job is not in this database" in r.stderr
    r = run("scan", "-d", dsn, "--queue-library", "sidekiq")
    assert r.exit_code == 2 and "not one of graphile-worker, pg-boss" in r.stderr


def test_show_tells_a_dead_workers_job_by_graphile_workers_rules(stuck):
    dsn, ids = stuck
    dead = ids["graphile"]["dead_worker"]
    env = {"STUCKGEN_QUEUE_LIBRARY": "graphile-worker,pg-boss"}
    r = run("show", dead, "-d", dsn, "-f", "json", env=env)
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["stuck"] and doc["verdict"] == "stuck: lock-expired" and "4-hour lock" in doc["why"]
    assert "force_unlock_workers" in doc["fix"] and doc["job"]["task"] == "hang"
    r = run("show", ids["pgboss"]["dead_consumer"], "-d", dsn, "-f", "table", env=env)
    assert r.exit_code == 1, r.output
    assert "stuck: expired-active" in r.stdout and "expire_in (1m00s)" in r.stdout and "boss.retry" in r.stdout
    r = run("show", ids["pgboss"]["finished"], "-d", dsn, "-f", "markdown", env=env)
    assert r.exit_code == 0, r.output
    assert "**not stuck: completed**" in r.stdout
    r = run("show", "999999", "-d", dsn, env=env)
    assert r.exit_code == 2 and "no job '999999'" in r.stderr


def test_show_a_live_lock_is_not_stuck_yet(queues, tmp_path, monkeypatch):  # noqa: F811
    dsn, ids = queues
    monkeypatch.chdir(tmp_path)
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 3 * 3600)
    r = run("show", ids["graphile"]["dead_worker"], "-d", dsn, "--queue-library", "graphile-worker", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "not stuck: locked" and "in 1h" in doc["why"]


def test_check_fails_on_stuck_jobs_and_passes_on_fresh_ones(queues, tmp_path, monkeypatch):  # noqa: F811
    dsn, ids = queues
    monkeypatch.chdir(tmp_path)
    env = {"STUCKGEN_QUEUE_LIBRARY": "graphile-worker,pg-boss"}
    r = run("check", "-d", dsn, "-f", "json", env=env)
    assert r.exit_code == 0, r.output
    names = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert names["queue:graphile-worker"]["passed"] and names["queue:pg-boss"]["passed"]
    assert "stuck-count" not in names  # no app table: nothing to count there, and no false "0 stuck generations"
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 5 * 3600)
    r = run("check", "-d", dsn, env=env)
    assert r.exit_code == 1, r.output
    assert "FAIL queue:graphile-worker: 3 stuck jobs in graphile_worker._private_jobs" in r.stdout
    assert "FAIL queue:pg-boss: 2 stuck jobs in pgboss.job" in r.stdout
    r = run("check", "-d", dsn, "--fail-after", "1h", env=env)
    assert r.exit_code == 2 and "stuckgen retrigger" in r.stderr  # the policy acts on app tables only


def test_doctor_ranks_each_librarys_stuck_jobs_with_its_own_way_out(stuck):
    dsn, ids = stuck
    r = run("doctor", "-d", dsn, "--queue-library", "graphile-worker,pg-boss", "-f", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    ranked = [f["id"] for f in doc["findings"]]
    assert ranked[:2] == ["queue-graphile-worker", "queue-pg-boss"] or ranked[:2] == ["queue-pg-boss", "queue-graphile-worker"]
    assert not {"secret-not-configured", "no-target", "table-not-found"} & set(ranked)
    gw = next(f for f in doc["findings"] if f["id"] == "queue-graphile-worker")
    assert any(ids["graphile"]["dead_worker"] in e and "4-hour lock" in e for e in gw["evidence"])
    assert "lock-expired: its worker is gone: `stuckgen retrigger --all-stuck --yes`" in gw["fix"]
    assert "queued-not-drained: no worker is taking jobs" in gw["fix"]
    boss = next(f for f in doc["findings"] if f["id"] == "queue-pg-boss")
    assert any(ids["pgboss"]["dead_consumer"] in e for e in boss["evidence"]) and "boss.retry" in boss["fix"]
    assert doc["database"]["queue_library"] == ["graphile-worker", "pg-boss"]
    r = run("doctor", "-d", dsn, "--queue-library", "graphile-worker", "-f", "text")
    assert r.exit_code == 1, r.output
    assert "3 graphile-worker jobs stuck in graphile_worker._private_jobs" in r.stdout
