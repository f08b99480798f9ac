"""`stuckgen watch`: the diffing core without a terminal, and the command over one read-only connection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from stuckgen import db as db_module
from stuckgen.cli import app
from stuckgen.commands import watch as watch_cli
from stuckgen.reference.seed import SeededRow, db_now, insert_rows, make_row, seed
from stuckgen.scan import Summary
from stuckgen.watch import WATCH_SCHEMA, Watcher

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "STUCKGEN_MAP", "STUCKGEN_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


# -- the core -----------------------------------------------------------------------------------


def _summary(n: int) -> Summary:
    s = Summary(database_now=datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc))
    s.stuck = n
    return s


def test_watcher_first_refresh_is_the_baseline_then_diffs() -> None:
    w = Watcher()
    r1 = w.refresh(["a", "b", "c"], _summary(3))
    assert (r1.new_total, r1.recovered_total, r1.new_now, r1.recovered_now) == (0, 0, (), ())
    r2 = w.refresh(["b", "c", "d"], _summary(3), lookup_status=lambda ids: {"a": "completed"})
    assert r2.new_now == ("d",) and [x.as_dict() for x in r2.recovered_now] == [{"id": "a", "status": "completed"}]
    r3 = w.refresh(["c", "d", "a"], _summary(3), lookup_status=lambda ids: {})
    assert r3.new_now == ("a",) and [x.as_dict() for x in r3.recovered_now] == [{"id": "b", "status": None}]
    assert r3.new_total == 2 and r3.recovered_total == 2
    assert [x.id for x in r3.recovered] == ["b"], "a is stuck again, so no longer listed as recovered"
    doc = r3.as_dict()
    assert doc["schema"] == WATCH_SCHEMA and doc["refresh"] == 3
    assert doc["since_start"]["became_stuck"] == {"count": 2, "ids": ["d", "a"]}
    assert "2 became stuck, 2 recovered" in r3.summary_line()


def test_watcher_keeps_bounded_memory_and_says_when_capped() -> None:
    w = Watcher(max_ids=5)
    w.refresh((str(i) for i in range(3)), _summary(3))
    r = w.refresh((str(i) for i in range(100)), _summary(100))
    assert r.capped and r.tracked == 5 and r.stuck == 100
    assert len(w.current) <= 5 and len(w.became) <= 5 and len(w.recovered) <= 5
    assert "capped" in r.summary_line()


# -- the command --------------------------------------------------------------------------------


def _stuck_row(conn: psycopg.Connection, kind: str = "never-started") -> SeededRow:
    import random

    row = make_row(kind, now=db_now(conn), age=600, rng=random.Random(uuid.uuid4().int))
    insert_rows(conn, [row])
    return row


@pytest.fixture
def read_only_dsn(db: str) -> Iterator[str]:
    """A role that may only SELECT: any write by watch would fail the run."""
    role = "stuckgen_ro_" + uuid.uuid4().hex[:8]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    params = conninfo_to_dict(db)
    params["user"] = role
    yield make_conninfo(**params)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"')
        conn.execute(f'REVOKE ALL ON SCHEMA public FROM "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


def test_watch_count_2_in_a_pipe_diffs_one_connection_read_only(db: str, read_only_dsn: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        rows = seed(conn, {"trigger-failed": 2, "stalled": 1, "completed": 1})
    recovering = next(r for r in rows if r.kind == "stalled")
    seen: dict[str, object] = {}
    connects: list[str] = []
    real_connect = db_module.connect

    def counting_connect(*args: object, **kwargs: object) -> psycopg.Connection:
        connects.append("x")
        return real_connect(*args, **kwargs)  # type: ignore[arg-type]

    def between_refreshes(seconds: float) -> None:
        with psycopg.connect(db, autocommit=True) as conn:
            seen["connections"] = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stuckgen' AND datname = %s",
                (conninfo_to_dict(db)["dbname"],)).fetchone()[0]
            conn.execute("UPDATE generations SET status = 'completed' WHERE id = %s", (recovering.id,))
            seen["new"] = _stuck_row(conn).id

    monkeypatch.setattr(db_module, "connect", counting_connect)
    monkeypatch.setattr(watch_cli, "wait", between_refreshes)
    r = runner.invoke(app, ["watch", "-d", read_only_dsn, "--count", "2", "--interval", "1s"])
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(x) for x in lines)
    assert first["schema"] == second["schema"] == "stuckgen.watch/v1"
    assert first["stuck"] == 3 and first["by_class"] == {"trigger-failed": 2, "stalled": 1}
    assert first["created_in_window"] == 4 and first["stuck_rate"] == 0.75
    assert second["this_refresh"]["became_stuck"] == [seen["new"]]
    assert second["this_refresh"]["recovered"] == [{"id": recovering.id, "status": "completed"}]
    assert second["since_start"]["recovered"]["count"] == 1
    assert second["by_class"] == {"never-started": 1, "trigger-failed": 2}
    assert connects == ["x"] and seen["connections"] == 1
    assert r.stderr.splitlines() == [
        "watch: 2 refreshes; 3 stuck now (60.0% of 5 created) [never-started 1, trigger-failed 2]; "
        "since start 1 became stuck, 1 recovered"]


def test_watch_exits_0_when_nothing_is_stuck(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 2})
    r = runner.invoke(app, ["watch", "-d", db, "--count", "1"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["stuck"] == 0
    assert r.stderr.startswith("watch: 1 refreshes; 0 stuck now")


def test_watch_rejects_a_bad_interval_and_probe_without_url(db: str) -> None:
    r = runner.invoke(app, ["watch", "-d", db, "--interval", "soon"])
    assert r.exit_code == 2 and r.stdout == "" and "--interval" in r.stderr
    r = runner.invoke(app, ["watch", "-d", db, "--probe", "--count", "1"])
    assert r.exit_code == 2 and r.stdout == "" and "--probe needs a deployment" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_leaves_with_a_one_line_summary_and_exit_130(db: str, sig: int) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 1})
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STUCKGEN_DATABASE_URL")}
    proc = subprocess.Popen([sys.executable, "-m", "stuckgen", "watch", "-d", db, "--interval", "10s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert json.loads(line)["stuck"] == 1
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert out == ""
    assert err.splitlines() == ["watch: 1 refreshes; 1 stuck now (100.0% of 1 created) [never-started 1]; "
                                "since start 0 became stuck, 0 recovered"]


def test_watch_with_probe_includes_the_latest_matrix(db: str) -> None:
    from stuckgen.reference import ReferenceDeployment

    secret = "watch-secret-3e8f1a2b9c4d5e6f"
    with ReferenceDeployment(db, "healthy", secret=secret, work_seconds=0.05, heartbeat_interval=0.02,
                             trigger_backoff=0.01, trigger_timeout=0.3) as dep:
        r = runner.invoke(app, ["watch", "-d", db, "--count", "2", "--interval", "100ms", "--probe", "--url", dep.url],
                          env={"INTERNAL_API_SECRET": secret})
    assert r.exit_code == 0, r.output
    first, second = (json.loads(x) for x in r.stdout.splitlines())
    assert first["probe"]["schema"] == "stuckgen.probe/v1"
    assert {c["mode"] for c in first["probe"]["targets"][0]["cells"]} >= {"none", "secret"}
    assert second["probe"]["probed_at"] == first["probe"]["probed_at"], "probes at most every --probe-interval"
    assert secret not in r.stdout + r.stderr


def test_live_view_renders_counts_and_moves(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"trigger-failed": 1, "stalled": 2})
    r = runner.invoke(app, ["watch", "-d", db, "--count", "1", "--format", "live"])
    assert r.exit_code == 1, r.output
    assert "stuckgen watch" in r.stdout and "3 stuck" in r.stdout
    assert "trigger-failed" in r.stdout and "became stuck since start (0)" in r.stdout
    assert r.stderr.startswith("watch: 1 refreshes; 3 stuck now")
