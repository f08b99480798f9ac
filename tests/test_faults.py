"""Hardening: faults around the tool — a transaction-mode pooler, slow statements, locks,
odd session time zones, a database that goes away, and signals in the middle of a batch."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.seed import KINDS, db_now, generate, insert_rows, seed
from stuckgen.reference.server import ReferenceDeployment

runner = CliRunner()
EXE = str(Path(sys.executable).parent / "stuckgen")
SECRET = "faults-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in list(os.environ):
        if (var.startswith("STUCKGEN_") and var != "STUCKGEN_TEST_DSN") or var in (
                "DATABASE_URL", "SUPABASE_DB_URL", "INTERNAL_API_SECRET", "PGTZ"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUCKGEN_") and k not in ("DATABASE_URL",)}
    env["NO_COLOR"] = "1"
    return env


def _count(dsn: str, q: str, *args) -> int:
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(q, args).fetchone()[0]


# -- PgBouncer in transaction mode -----------------------------------------------------------------


def test_every_command_works_through_pgbouncer_in_transaction_mode(pgbouncer, db):
    with psycopg.connect(db, autocommit=True) as conn:
        rows = seed(conn, {k: 2 for k in KINDS})
    direct = json.loads(runner.invoke(app, ["scan", "-d", db, "-f", "json"]).stdout)
    pooled = pgbouncer.route(db)
    xacts_before = sum(s["total_xact_count"] for s in pgbouncer.admin("SHOW STATS") if s["database"] in db)

    r = runner.invoke(app, ["scan", "-d", pooled, "-f", "json"])
    assert r.exit_code == 1, r.stderr
    doc = json.loads(r.stdout)
    assert [x["id"] for x in doc["rows"]] == [x["id"] for x in direct["rows"]] and doc["rows"]

    r = runner.invoke(app, ["schema", "-d", pooled, "-f", "json"])
    assert r.exit_code == 0, r.stderr
    sid = doc["rows"][0]["id"]
    r = runner.invoke(app, ["show", sid, "-d", pooled, "-f", "json"])
    assert r.exit_code == 1 and sid in r.stdout, (r.exit_code, r.stderr)
    r = runner.invoke(app, ["doctor", "-d", pooled, "--no-probe", "-f", "json"])
    assert r.exit_code == 1, (r.exit_code, r.stderr)

    with ReferenceDeployment(db, "healthy", secret=SECRET, work_seconds=0.01, heartbeat_interval=0.01) as dep:
        trig = [x["id"] for x in doc["rows"] if x["class"] == "never-started"]
        r = runner.invoke(app, ["retrigger", *trig, "-d", pooled, "--url", dep.url, "--yes", "-f", "json"],
                          env={"INTERNAL_API_SECRET": SECRET})
        assert r.exit_code == 0, (r.exit_code, r.stderr)
        assert json.loads(r.stdout)["counts"], r.stdout
        dep.wait_idle()

    r = runner.invoke(app, ["fail", "--all-stuck", "-d", pooled, "--yes", "-f", "json", "--batch-size", "3"])
    assert r.exit_code == 0, (r.exit_code, r.stderr)
    fail = json.loads(r.stdout)
    assert fail["remediated"] > 0
    r = runner.invoke(app, ["undo", fail["run_id"], "-d", pooled, "--yes", "-f", "json"])
    assert r.exit_code == 0, (r.exit_code, r.stderr)
    assert json.loads(r.stdout)["remediated"] == fail["remediated"]
    r = runner.invoke(app, ["history", "-d", pooled, "-f", "json"])
    assert r.exit_code == 0, r.stderr

    xacts_after = sum(s["total_xact_count"] for s in pgbouncer.admin("SHOW STATS") if s["database"] in db)
    assert xacts_after > xacts_before, "the commands really went through PgBouncer"
    assert len(rows) == 18


# -- statement_timeout, lock_timeout ------------------------------------------------------------


@pytest.mark.parametrize("pooled", [False, True], ids=["direct", "pgbouncer"])
def test_statement_timeout_is_honoured(request, db, pooled):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 20})
        # Every row costs a second: unbounded, the scan would run for 20 s.
        conn.execute("CREATE VIEW slow_generations AS SELECT g.* FROM generations g "
                     "WHERE pg_sleep(1)::text = ''")
    dsn = request.getfixturevalue("pgbouncer").route(db) if pooled else db
    t0 = time.monotonic()
    r = runner.invoke(app, ["scan", "-d", dsn, "--table", "slow_generations", "--statement-timeout", "1s", "-f", "json"])
    elapsed = time.monotonic() - t0
    assert r.exit_code == 3, r.stderr
    assert r.stderr.startswith("stuckgen: error: the database cancelled a statement") and "statement timeout" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert elapsed < 20 / 4


def test_a_table_lock_held_elsewhere_ends_at_lock_timeout(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 3})
    holder = psycopg.connect(db)
    try:
        holder.execute("LOCK TABLE generations IN ACCESS EXCLUSIVE MODE")
        t0 = time.monotonic()
        r = runner.invoke(app, ["scan", "-d", db, "--lock-timeout", "1s", "--statement-timeout", "30s", "-f", "json"])
        elapsed = time.monotonic() - t0
    finally:
        holder.rollback()
        holder.close()
    assert r.exit_code == 3, r.stderr
    assert "lock" in r.stderr.splitlines()[0] and r.stdout == ""
    assert elapsed < 30 / 4


def test_fail_skips_a_row_locked_by_another_transaction_without_waiting(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 6})
        ids = [r[0] for r in conn.execute("SELECT id::text FROM generations ORDER BY id")]
    holder = psycopg.connect(db)
    try:
        holder.execute("SELECT 1 FROM generations WHERE id = %s FOR UPDATE", (ids[0],))
        t0 = time.monotonic()
        r = runner.invoke(app, ["fail", "--all-stuck", "-d", db, "--yes", "-f", "json", "--lock-timeout", "2s"])
        elapsed = time.monotonic() - t0
        assert elapsed < 3 * 2, "it must not wait past lock_timeout for a locked row"
    finally:
        holder.rollback()
        holder.close()
    assert r.exit_code == 1, r.stderr
    doc = json.loads(r.stdout)
    outcome = {x["id"]: x for x in doc["rows"]}
    assert not outcome[ids[0]]["ok"], "the locked row is reported, not failed"
    assert all(outcome[i]["ok"] for i in ids[1:])
    assert _count(db, "SELECT count(*) FROM generations WHERE status = 'processing'") == 1


# -- the session's time zone ------------------------------------------------------------------------


@pytest.mark.parametrize("server_tz,client_tz", [("Pacific/Chatham", "America/St_Johns"), ("Asia/Kathmandu", None),
                                                ("America/Los_Angeles", "Pacific/Kiritimati")])
def test_ages_and_thresholds_are_right_whatever_the_session_time_zone(empty_db, monkeypatch, server_tz, client_tz):
    with psycopg.connect(empty_db, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f"ALTER DATABASE \"{dbname}\" SET timezone = '{server_tz}'")
    if client_tz:
        monkeypatch.setenv("PGTZ", client_tz)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE jobs (id uuid PRIMARY KEY, status text, created_at timestamp(3), "
            "heartbeat_tz timestamptz, heartbeat_naive timestamp(3), parameters jsonb)")
        # created 10 min ago (naive UTC, Prisma's way); heartbeats 3 min (stuck) or 1 min (alive) ago.
        for quiet in (180, 60):
            conn.execute(
                "INSERT INTO jobs VALUES (gen_random_uuid(), 'processing', (now() AT TIME ZONE 'UTC') - interval '10 min', "
                "now() - make_interval(secs => %s), (now() AT TIME ZONE 'UTC') - make_interval(secs => %s), "
                "jsonb_build_object('lastHeartbeatAt', to_char((now() - make_interval(secs => %s)) AT TIME ZONE 'Asia/Kolkata', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS.MS') || '+05:30'))", (quiet, quiet, quiet))
    for hb in ("heartbeat_tz", "heartbeat_naive", "parameters.lastHeartbeatAt"):
        r = runner.invoke(app, ["scan", "-d", empty_db, "--table", "jobs", "--map", f"heartbeat={hb}",
                                "--threshold", "2m", "-f", "json"])
        assert r.exit_code == 1, (hb, r.stderr)
        rows = json.loads(r.stdout)["rows"]
        assert len(rows) == 1, (hb, rows)
        assert 170 <= rows[0]["quiet_seconds"] <= 240, (hb, rows[0])
        assert 590 <= rows[0]["age_seconds"] <= 660, (hb, rows[0])
        assert rows[0]["created_at"].endswith("Z")


# -- the database goes away -------------------------------------------------------------------------


def _terminate(db: str, application: str = "stuckgen") -> int:
    with psycopg.connect(db, autocommit=True) as c:
        return c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()",
                         (application,)).fetchone()[0]


def test_database_disappearing_mid_scan_is_exit_3_one_line(db):
    with psycopg.connect(db, autocommit=True) as conn:
        insert_rows(conn, generate({"never-started": 20000}, now=db_now(conn)))
    p = subprocess.Popen([EXE, "scan", "-d", db, "-f", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env(), text=True)
    first = p.stdout.readline()  # the scan is streaming: the cursor is open, the pipe is full
    assert first.startswith("{")
    assert _terminate(db) == 1
    out, err = p.communicate(timeout=60)
    assert p.returncode == 3, err
    assert err.startswith("stuckgen: error: lost the database connection") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert (first + out).count('"id"') < 20000


def test_database_disappearing_mid_fail_keeps_batches_whole_and_audited(db):
    with psycopg.connect(db, autocommit=True) as conn:
        insert_rows(conn, generate({"never-started": 4000}, now=db_now(conn)))
    p = subprocess.Popen([EXE, "fail", "--all-stuck", "-d", db, "--yes", "-f", "json", "--batch-size", "50"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
    deadline = time.monotonic() + 30
    killed = 0
    while p.poll() is None and time.monotonic() < deadline:
        try:
            if _count(db, "SELECT count(*) FROM stuckgen.audit") > 0:
                killed = _terminate(db)
                break
        except psycopg.errors.UndefinedTable:
            pass
        time.sleep(0.005)
    out, err = p.communicate(timeout=60)
    failed = _count(db, "SELECT count(*) FROM generations WHERE status = 'failed'")
    audited = _count(db, "SELECT count(*) FROM stuckgen.audit WHERE action = 'fail' AND outcome = 'failed'")
    assert failed == audited, "the audit log matches what changed"
    assert failed % 50 == 0, "every batch all or nothing"
    if killed:
        assert p.returncode == 3, err
        assert "Traceback" not in err and "stuckgen: error:" in err
        assert 0 < failed < 4000


# -- signals in the middle of remediation -----------------------------------------------------------


def _run_and_signal(cmd: list[str], sig: int, db: str, progress_sql: str,
                    extra: float) -> tuple[int, str, str, bool]:
    """Run ``cmd``; once ``progress_sql`` counts a committed batch, wait ``extra`` s and send ``sig``.

    Returns (exit code, stdout, stderr, whether the signal was sent to a running command).
    """
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(p.stdout.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while p.poll() is None and time.monotonic() < deadline:
        try:
            if _count(db, progress_sql) > 0:
                break
        except psycopg.errors.UndefinedTable:
            pass
        time.sleep(0.002)
    time.sleep(extra)
    signalled = p.poll() is None
    if signalled:
        p.send_signal(sig)
    err = p.stderr.read()
    p.wait(60)
    reader.join(10)
    return p.returncode, "".join(chunks), err, signalled


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupting_fail_then_undo_keeps_batches_whole_and_the_audit_true(db, sig):
    rng = random.Random(int(sig))
    with psycopg.connect(db, autocommit=True) as conn:
        insert_rows(conn, generate({"never-started": 3000}, now=db_now(conn)))
    code, out, err, _ = _run_and_signal([EXE, "fail", "--all-stuck", "-d", db, "--yes", "-f", "json",
                                      "--batch-size", "40"], sig, db, "SELECT count(*) FROM stuckgen.audit",
                                     rng.uniform(0, 0.2))
    assert "Traceback" not in err
    assert code == 130, (code, err)  # signalled after the first committed batch, long before the last
    failed_ids = {r[0] for r in psycopg.connect(db, autocommit=True).execute(
        "SELECT id::text FROM generations WHERE status = 'failed'")}
    with psycopg.connect(db, autocommit=True) as c:
        audit = {r[0] for r in c.execute("SELECT row_id FROM stuckgen.audit WHERE action = 'fail' AND outcome = 'failed'")}
        run_id = c.execute("SELECT run_id FROM stuckgen.audit WHERE action = 'fail' LIMIT 1").fetchone()
    assert failed_ids == audit, "the audit log matches what changed"
    assert len(failed_ids) % 40 == 0 or len(failed_ids) == 3000, "every batch all or nothing"
    if code == 130:
        assert "interrupted" in err or "interrupted" in out
        doc = json.loads(out)
        assert doc["interrupted"] is True and doc["remediated"] == len(failed_ids)
        assert doc["batches"]["done"] * 40 == len(failed_ids), "it reports how far it got"
    if not failed_ids:
        return
    code, out, err, signalled = _run_and_signal([EXE, "undo", run_id[0], "-d", db, "--yes", "-f", "json", "--batch-size", "40"],
                                     sig, db, "SELECT count(*) FROM stuckgen.audit WHERE action = 'undo'",
                                     rng.uniform(0, 0.1))
    # Signalled while running: 130; finished before the signal could be sent: 0.
    assert code == (130 if signalled else 0) and "Traceback" not in err, (code, signalled, err)
    with psycopg.connect(db, autocommit=True) as c:
        restored = {r[0] for r in c.execute("SELECT row_id FROM stuckgen.audit WHERE action = 'undo' AND outcome = 'restored'")}
        still_failed = {r[0] for r in c.execute("SELECT id::text FROM generations WHERE status = 'failed'")}
    assert restored | still_failed == failed_ids and not (restored & still_failed)
    if code == 130:
        assert json.loads(out)["remediated"] == len(restored)


def test_doctor_says_a_pooler_sits_in_between(pgbouncer, db):
    from typer.testing import CliRunner

    from stuckgen.cli import app

    from psycopg.conninfo import conninfo_to_dict

    r = CliRunner().invoke(app, ["doctor", "-d", pgbouncer.route(db), "--no-probe", "-f", "json"])
    assert r.exit_code == 0, (r.exit_code, r.output)
    doc = json.loads(r.stdout)
    # Over TCP the pooler's port differs from the server's; over unix sockets (the embedded
    # server) nothing tells a pooler that hands back the same server connection apart.
    if not str(conninfo_to_dict(db).get("host", "")).startswith("/"):
        assert "pooler" in (doc["database"]["pooler"] or ""), doc["database"]
    r = CliRunner().invoke(app, ["doctor", "-d", db, "--no-probe", "-f", "json"])
    assert json.loads(r.stdout)["database"]["pooler"] is None


def test_probe_auth_interrupted_exits_130_at_once_whatever_is_in_flight():
    """A server that accepts and never answers: Ctrl-C must not wait for the probes' timeouts."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])  # kept open, never answered
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}"
    p = subprocess.Popen([EXE, "probe-auth", "--url", url, "--http-timeout", "30s", "-f", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
    try:
        deadline = time.monotonic() + 30
        while len(accepted) < 2 and time.monotonic() < deadline:  # probes are in flight
            time.sleep(0.01)
        assert accepted, "the probes never connected"
        p.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = p.communicate(timeout=20)
        elapsed = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
        stop.set()
        for s in accepted:
            s.close()
        srv.close()
    assert p.returncode == 130, (p.returncode, err)
    assert elapsed < 5, f"the exit waited {elapsed:.1f}s for probes in flight"
    assert "interrupted after" in err and "Traceback" not in err, err
