"""Provably dead workers: --max-duration names stalled rows whose worker started longer ago than the function may run."""

from __future__ import annotations

import json

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.deadline import dead_workers, threshold_warning
from stuckgen.reference.seed import seed
from stuckgen.schema import MappingConfig, resolve

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "STUCKGEN_MAX_DURATION", "STUCKGEN_BASE_URL",
                "REPLICATE_API_TOKEN", "VERCEL_TOKEN", "INTERNAL_API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def stalled(db):
    with psycopg.connect(db, autocommit=True) as conn:
        old = seed(conn, {"stalled": 3}, min_age=3600, max_age=5400)  # workers started an hour ago
        young = seed(conn, {"stalled": 1}, min_age=200, max_age=240, seed=11)  # started ~4 min ago
    return db, [r.id for r in old], young[0].id


def test_only_workers_older_than_the_limit_plus_grace_are_dead(stalled):
    db, old, young = stalled
    with psycopg.connect(db) as conn:
        mapping = resolve(conn, MappingConfig())
        dead = dead_workers(conn, mapping, [*old, young], max_duration=300)
    assert set(dead) == set(old)
    d = dead[old[0]]
    assert d.age_seconds > 3000 and d.evidence.endswith("function limit 300 s: provably dead")
    with psycopg.connect(db) as conn:
        assert dead_workers(conn, resolve(conn, MappingConfig()), [*old, young], max_duration=7200) == {}


def test_doctor_names_the_dead_workers_with_their_evidence(stalled):
    db, old, young = stalled
    r = runner.invoke(app, ["doctor", "-f", "json"], env={"STUCKGEN_DATABASE_URL": db, "STUCKGEN_MAX_DURATION": "300s"})
    doc = json.loads(r.stdout)
    f = next(x for x in doc["findings"] if x["id"] == "timed-out")
    assert f["title"].startswith("3 stalled generations are provably dead")
    assert {d["id"] for d in doc["dead_workers"]} == set(old)
    assert any("function limit 300 s" in e for e in f["evidence"])
    assert "threshold-below-max-duration" in [x["id"] for x in doc["findings"]]  # the default 2m < 300 s
    plain = json.loads(runner.invoke(app, ["doctor", "-f", "json"], env={"STUCKGEN_DATABASE_URL": db}).stdout)
    assert "timed-out" not in [x["id"] for x in plain["findings"]] and plain["dead_workers"] == []


def test_a_threshold_shorter_than_the_maximum_duration_is_warned_about():
    assert threshold_warning(120, 300) is not None and "shorter than the function's maximum duration" in threshold_warning(120, 300)
    assert threshold_warning(600, 300) is None and threshold_warning(120, None) is None


def test_show_says_the_worker_is_provably_dead(stalled):
    db, old, young = stalled
    env = {"STUCKGEN_DATABASE_URL": db, "STUCKGEN_MAX_DURATION": "5m"}
    doc = json.loads(runner.invoke(app, ["show", old[0], "-f", "json"], env=env).stdout)
    assert doc["dead_worker"]["max_duration_seconds"] == 300
    md = runner.invoke(app, ["show", old[0], "-f", "markdown"], env=env).stdout
    assert "| worker | timed-out: worker started " in md and "function limit 300 s: provably dead" in md
    assert json.loads(runner.invoke(app, ["show", young, "-f", "json"], env=env).stdout)["dead_worker"] is None


def test_the_flag_beats_the_environment(stalled):
    db, old, _ = stalled
    env = {"STUCKGEN_DATABASE_URL": db, "STUCKGEN_MAX_DURATION": "3h"}
    assert json.loads(runner.invoke(app, ["show", old[0], "-f", "json"], env=env).stdout)["dead_worker"] is None
    doc = json.loads(runner.invoke(app, ["show", old[0], "-f", "json", "--max-duration", "300s"], env=env).stdout)
    assert doc["dead_worker"]["max_duration_seconds"] == 300


@pytest.mark.parametrize("seconds", [361, 365.4, 599.6, 3599.4, 3600, 3660, 7199.7, 86399, 86400, 90000, 172800,
                                     172801, 259200, 3 * 86400 + 7200])
def test_the_database_writes_the_evidence_as_python_does(db, seconds):
    from psycopg import sql

    from stuckgen.deadline import evidence, evidence_sql

    us = int(round(seconds * 1_000_000))
    with psycopg.connect(db) as conn:
        got = conn.execute(sql.SQL("SELECT {}").format(evidence_sql(sql.Literal(us), 300.0))).fetchone()[0]
    assert got == evidence(us / 1_000_000, 300.0)
