"""Queue mode: scan, show, check, doctor, fail, retrigger and init on graphile-worker's and pg-boss's own tables.

The libraries are installed from npm and migrated by their own code (tests/queue_libs/fixture.mjs,
shared with test_queue_libs); time passes by backdating their timestamps on the database clock.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
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
    assert doc["verdict"] == "not stuck: locked"
    assert re.search(r"until its 4-hour lock passes \(in (59m\d\ds|1h)\)", doc["why"]), doc["why"]


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
    r = run("check", "-d", dsn, "-f", "openmetrics", env=env)
    assert r.exit_code == 1, r.output
    assert 'stuckgen_queue_stuck{library="graphile-worker"} 3' in r.stdout
    assert 'stuckgen_queue_jobs{library="pg-boss",class="expired-active"} 1' in r.stdout
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


def _job(dsn: str, job_id: str) -> tuple | None:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT locked_by, attempts, max_attempts, last_error, run_at <= now() "
                            "FROM graphile_worker._private_jobs WHERE id = %s", (int(job_id),)).fetchone()


GW = {"STUCKGEN_QUEUE_LIBRARY": "graphile-worker"}


def test_retrigger_unlocks_the_dead_workers_job_with_force_unlock_workers(stuck):
    dsn, ids = stuck
    dead = ids["graphile"]["dead_worker"]
    r = run("retrigger", "--all-stuck", "-d", dsn, "-f", "json", env=GW)
    assert r.exit_code == 1, r.output  # the undrained jobs need a worker, not stuckgen: skipped
    doc = json.loads(r.stdout)
    assert doc["dry_run"] and "dry run" in r.stderr
    got = {o["id"]: o for o in doc["outcomes"]}
    assert got[dead]["outcome"] == "would-retry" and "force_unlock_workers" in got[dead]["reason"]
    assert got[ids["graphile"]["waiting"]]["outcome"] == "skipped" and "start one" in got[ids["graphile"]["waiting"]]["reason"]
    assert _job(dsn, dead)[0] is not None  # the dry run changed nothing
    r = run("retrigger", dead, "--yes", "-d", dsn, "-f", "json", env=GW)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [o["outcome"] for o in doc["outcomes"]] == ["retried"] and doc["run_id"]
    locked_by, attempts, _max, _err, _due = _job(dsn, dead)
    assert locked_by is None and attempts == 1  # unlocked; the attempt it used stays counted
    with psycopg.connect(dsn) as conn:
        rec = conn.execute("SELECT action, outcome, previous, new FROM stuckgen.audit WHERE row_id = %s", (dead,)).fetchone()
    assert rec[0] == "jobs-retry" and rec[1] == "retried" and rec[2]["locked_by"] and rec[3]["locked_by"] is None
    # Unlocked and due: by graphile-worker's rules it now waits for a worker like any due job.
    r = run("scan", "-d", dsn, "-f", "json", env=GW)
    assert {row["id"]: row["class"] for row in json.loads(r.stdout)["rows"]}[dead] == "queued-not-drained"


def test_fail_uses_permanently_fail_jobs_and_leaves_a_live_lock_alone(queues, tmp_path, monkeypatch):  # noqa: F811
    dsn, ids = queues
    monkeypatch.chdir(tmp_path)
    dead, waiting = ids["graphile"]["dead_worker"], ids["graphile"]["waiting"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 3600)  # locked one hour ago: its worker may be alive
    r = run("fail", dead, waiting, "--yes", "-d", dsn, "-f", "json", "--audit-file", str(tmp_path / "a.jsonl"), env=GW)
    assert r.exit_code == 1, r.output
    got = {o["id"]: o for o in json.loads(r.stdout)["outcomes"]}
    assert got[dead]["outcome"] == "skipped" and "4-hour lock" in got[dead]["reason"]
    assert got[waiting]["outcome"] == "failed"
    assert _job(dsn, dead)[0] is not None and _job(dsn, dead)[1] == 1
    _lb, attempts, max_attempts, last_error, _due = _job(dsn, waiting)
    assert attempts == max_attempts and last_error == "failed by stuckgen: queued-not-drained"
    line = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[-1])
    assert line["action"] == "jobs-fail" and line["row_id"] == waiting and line["previous"]["attempts"] == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 4 * 3600)
    r = run("fail", "--all-stuck", "--class", "lock-expired", "--reason", "worker lost", "-d", dsn, "-f", "json", env=GW)
    assert r.exit_code == 0 and json.loads(r.stdout)["dry_run"] and _job(dsn, dead)[3] is None  # dry run
    r = run("fail", "--all-stuck", "--class", "lock-expired", "--reason", "worker lost", "--yes", "-d", dsn,
            "-f", "json", env=GW)
    assert r.exit_code == 0, r.output
    _lb, attempts, max_attempts, last_error, _due = _job(dsn, dead)
    assert attempts == max_attempts and last_error == "worker lost"
    r = run("show", dead, "-d", dsn, "-f", "json", env=GW)
    assert r.exit_code == 0 and json.loads(r.stdout)["verdict"] == "not stuck: failed"
    # retrigger gives a failed job its attempts back with graphile-worker's reschedule_jobs.
    r = run("retrigger", dead, "--yes", "-d", dsn, "-f", "json", env=GW)
    assert r.exit_code == 0, r.output
    assert "reschedule_jobs" in json.loads(r.stdout)["outcomes"][0]["reason"]
    _lb, attempts, _max, _err, due = _job(dsn, dead)
    assert attempts == 0 and due


def test_pg_boss_jobs_are_refused_with_the_node_call_to_use(stuck):
    dsn, ids = stuck
    boss = {"STUCKGEN_QUEUE_LIBRARY": "pg-boss"}
    for cmd in ("fail", "retrigger"):
        r = run(cmd, ids["pgboss"]["dead_consumer"], "--yes", "-d", dsn, env=boss)
        assert r.exit_code == 2, r.output
        assert "boss.retry(name, id)" in r.stderr and "boss.fail(name, id, data)" in r.stderr
    r = run("fail", "--all-stuck", "--yes", "-d", dsn, env=boss)
    assert r.exit_code == 2 and "stuckgen does not write pg-boss jobs" in r.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT state::text FROM pgboss.job WHERE id = %s",
                            (ids["pgboss"]["dead_consumer"],)).fetchone()[0] == "active"
    # Both libraries: graphile-worker's jobs are acted on, pg-boss's listed as skipped with the reason.
    r = run("fail", "--all-stuck", "-d", dsn, "-f", "json", env={"STUCKGEN_QUEUE_LIBRARY": "graphile-worker,pg-boss"})
    got = {o["id"]: o for o in json.loads(r.stdout)["outcomes"]}
    assert got[ids["pgboss"]["dead_consumer"]]["outcome"] == "skipped" and "boss.fail" in got[ids["pgboss"]["dead_consumer"]]["reason"]
    assert got[ids["graphile"]["dead_worker"]]["outcome"] == "would-fail"


def _init_then_scan(dsn: str, *init_args: str) -> tuple[str, dict, dict]:
    r = run("init", "-d", dsn, *init_args)
    assert r.exit_code == 0, r.output
    text = Path("stuckgen.toml").read_text()
    r = run("scan", "-d", dsn, "-f", "json")
    assert r.exit_code in (0, 1), r.output
    return text, tomllib.loads(text), json.loads(r.stdout)


def test_init_without_an_app_table_writes_queue_mode_and_scan_finds_every_stuck_job(stuck):
    dsn, ids = stuck
    text, cfg, doc = _init_then_scan(dsn)
    assert cfg == {"queue_library": ["graphile-worker", "pg-boss"], "threshold": "2m00s"}
    # Every choice with its reason: the libraries' census and rules, the threshold's meaning.
    assert "4 hours" in text and "expire_in" in text and "lock-expired: 1 job e.g. " + ids["graphile"]["dead_worker"] in text
    assert "# threshold: how long a due job may wait for a worker" in text
    assert {row["id"]: row["class"] for row in doc["rows"]} == _expected(ids)  # every stuck job, no healthy one


def test_init_naming_a_librarys_table_writes_queue_mode_for_it(stuck):
    dsn, ids = stuck
    text, cfg, doc = _init_then_scan(dsn, "--table", "pgboss.job")
    assert cfg["queue_library"] == ["pg-boss"] and "named with --table pgboss.job" in text
    assert {row["id"]: row["class"] for row in doc["rows"]} == {ids["pgboss"]["dead_consumer"]: "expired-active",
                                                                 ids["pgboss"]["waiting"]: "queued-not-drained"}


def test_init_on_fresh_queues_then_scan_finds_nothing_until_jobs_are_stuck(queues, tmp_path, monkeypatch):  # noqa: F811
    dsn, ids = queues
    monkeypatch.chdir(tmp_path)
    _text, cfg, doc = _init_then_scan(dsn, "--table", "graphile_worker.jobs")
    assert cfg["queue_library"] == ["graphile-worker"] and doc["rows"] == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        backdate(conn, 5 * 3600)
    r = run("scan", "-d", dsn, "-f", "json")
    assert r.exit_code == 1
    assert {row["id"] for row in json.loads(r.stdout)["rows"]} == {
        ids["graphile"]["dead_worker"], ids["graphile"]["waiting"], ids["graphile"]["future"]}


def test_a_named_queue_held_by_a_gone_worker_blocks_its_jobs_and_retrigger_frees_it(queues, tmp_path, monkeypatch):  # noqa: F811
    dsn, _ = queues
    monkeypatch.chdir(tmp_path)
    with psycopg.connect(dsn, autocommit=True) as conn:
        add = "SELECT id::text FROM graphile_worker.add_job('generate', '{}'::json, queue_name => %s)"
        blocked = conn.execute(add, ("serial-a",)).fetchone()[0]
        behind = conn.execute(add, ("serial-b",)).fetchone()[0]
        # As graphile-worker's get_job leaves them: a worker holds each queue while it runs the queue's job;
        # serial-a's worker took it 5 hours ago and is gone, serial-b's took it a minute ago.
        conn.execute("UPDATE graphile_worker._private_job_queues SET locked_by = 'gone', "
                     "locked_at = now() - interval '5 hours' WHERE queue_name = 'serial-a'")
        conn.execute("UPDATE graphile_worker._private_job_queues SET locked_by = 'alive', "
                     "locked_at = now() - interval '1 minute' WHERE queue_name = 'serial-b'")
        conn.execute("UPDATE graphile_worker._private_jobs SET run_at = now() - interval '5 hours' "
                     "WHERE id = ANY(%s::bigint[])", ([int(blocked), int(behind)],))
    got = {row["id"]: row for row in json.loads(run("scan", "-d", dsn, "-f", "json", env=GW).stdout)["rows"]}
    assert got[blocked]["class"] == "lock-expired" and got[blocked]["locked_by"] == "gone"
    assert behind not in got  # behind a job running in its queue: waiting, not stuck
    doc = json.loads(run("show", blocked, "-d", dsn, "-f", "json", env=GW).stdout)
    assert "its queue 'serial-a' is locked by gone" in doc["why"]
    r = run("retrigger", blocked, "--yes", "-d", dsn, "-f", "json", env=GW)
    assert r.exit_code == 0, r.output
    with psycopg.connect(dsn) as conn:
        locks = dict(conn.execute("SELECT queue_name, locked_by FROM graphile_worker._private_job_queues").fetchall())
    assert locks["serial-a"] is None and locks["serial-b"] == "alive"


def test_schema_in_queue_mode_counts_each_librarys_jobs_by_its_rules(stuck):
    # init's next step is `stuckgen schema`: in queue mode it must read the library, not look for an app table.
    dsn, ids = stuck
    Path("stuckgen.toml").write_text('queue_library = ["graphile-worker", "pg-boss"]\n')
    r = run("schema", "-d", dsn, "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["mode"] == "queue" and "lock-expired" in doc["stuck_kinds"]
    by_lib = {lib["library"]: lib for lib in doc["libraries"]}
    assert by_lib["graphile-worker"]["counts"]["lock-expired"] == 1
    assert by_lib["graphile-worker"]["counts"]["queued-not-drained"] == 2
    assert by_lib["pg-boss"]["counts"]["expired-active"] == 1
    assert "4-hour lock" in by_lib["graphile-worker"]["meaning"]["lock-expired"]
    r = run("schema", "-d", dsn, "-f", "table")
    assert r.exit_code == 0, r.output
    assert "graphile-worker: graphile_worker._private_jobs (queue mode" in r.stdout
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("expired-active"))
    assert line.split()[1] == "1" and "stuck" in line
    assert "not found" not in r.output


def test_schema_in_queue_mode_names_a_missing_library(stuck):
    dsn, _ = stuck
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA pgboss CASCADE")
    r = run("schema", "-d", dsn, "--queue-library", "pg-boss")
    assert r.exit_code == 2 and "pgboss.job is not in this database" in r.stderr


def test_watch_in_queue_mode_says_what_to_run_instead(stuck):
    dsn, _ = stuck
    r = run("watch", "-d", dsn, "--queue-library", "graphile-worker", "--count", "1", "-f", "json")
    assert r.exit_code == 2, r.output
    assert "queue mode" in r.stderr and "stuckgen scan" in r.stderr and "Traceback" not in r.output
