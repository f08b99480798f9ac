"""No dry run promises what the real run cannot do: fail's values are checked against the column first."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.seed import db_now, insert_rows, make_row

sys.path.insert(0, str(Path(__file__).parent))
import photoshot  # noqa: E402

runner = CliRunner()
# Photoshot's 4K upscale: status in the enum "HdStatus", the prediction id in hdPredictionId.
HD = ["--table", "Shot", "--map", "status=hdStatus", "--map", "webhook=hdPredictionId", "--map", "updated=updatedAt",
      "--inflight-statuses", "PENDING", "--since", "all"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "STUCKGEN_FAILED_STATUS", "STUCKGEN_MAP",
                "STUCKGEN_TABLE", "STUCKGEN_INFLIGHT_STATUSES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def shots(empty_db):
    return empty_db, photoshot.create(empty_db)


def hd_status(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as c:
        return {r[0]: r[1] for r in c.execute('SELECT "id", "hdStatus"::text FROM "Shot"')}


def test_fail_dry_run_refuses_a_status_the_enum_does_not_have_and_names_the_labels(shots):
    dsn, rows = shots
    pending = next(s for s in rows if s.kind == "hd-pending")
    scan = json.loads(runner.invoke(app, ["scan", "-d", dsn, "-f", "json", *HD]).stdout)
    assert [r["id"] for r in scan["rows"]] == [pending.id]
    before = hd_status(dsn)
    for extra in ([], ["--yes"]):
        r = runner.invoke(app, ["fail", "--all-stuck", "-d", dsn, "-f", "json", *HD, *extra])
        assert r.exit_code == 2, r.output
        assert "would fail" not in r.stderr and r.stdout == ""
        assert "not a label of the enum \"HdStatus\"" in r.stderr
        assert "'NO', 'PENDING', 'PROCESSED'" in r.stderr and "--failed-status" in r.stderr
        assert "nothing was written" in r.stderr
    assert hd_status(dsn) == before


def test_a_label_of_the_enum_passes_and_the_real_run_does_what_the_dry_run_said(shots):
    dsn, rows = shots
    pending = next(s for s in rows if s.kind == "hd-pending")
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", dsn, "-f", "json", *HD, "--failed-status", "NO"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"] == {"would-fail": 1}
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", dsn, "-f", "json", *HD, "--failed-status", "NO", "--yes"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"] == {"failed": 1}
    assert hd_status(dsn)[pending.id] == "NO"


@pytest.fixture
def checked(db):
    """The reference table with a CHECK on status that has no 'failed', and a two-column CHECK."""
    rng = random.Random(3)
    with psycopg.connect(db, autocommit=True) as conn:
        now = db_now(conn)
        rows = [make_row("never-started", now=now, age=3600, rng=rng) for _ in range(3)]
        insert_rows(conn, rows)
        conn.execute("ALTER TABLE generations ADD CONSTRAINT generations_status_check "
                     "CHECK (status IN ('queued', 'processing', 'completed', 'errored', 'cancelled'))")
    return db, rows


def test_a_check_constraint_refuses_in_the_dry_run_with_the_constraint_named(checked):
    dsn, rows = checked
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", dsn])
    assert r.exit_code == 2, r.output
    assert "violates the check constraint generations_status_check" in r.stderr
    assert "errored" in r.stderr  # the constraint's text says what is valid
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", dsn, "--failed-status", "errored", "--yes", "-f", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"] == {"failed": 3}


def test_a_constraint_over_two_columns_is_judged_on_the_selected_rows(checked):
    dsn, rows = checked
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE generations ADD CONSTRAINT errored_has_cost CHECK (status <> 'errored' OR cost IS NOT NULL)")
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", dsn, "--failed-status", "errored"])
    assert r.exit_code == 2, r.output
    assert "errored_has_cost" in r.stderr
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE generations SET cost = 0.01")
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", dsn, "--failed-status", "errored", "--yes", "-f", "json"])
    assert r.exit_code == 0, r.output


def test_check_policy_dry_run_refuses_too(shots):
    dsn, _ = shots
    r = runner.invoke(app, ["check", "-d", dsn, *HD, "--fail-after", "1h"])
    assert r.exit_code == 2, r.output
    assert "not a label of the enum" in r.stderr


def test_undo_dry_run_refuses_a_previous_value_a_constraint_added_since_forbids(checked, tmp_path):
    dsn, rows = checked
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", dsn, "--failed-status", "errored", "--yes", "-f", "json"])
    assert r.exit_code == 0, r.output
    run_id = json.loads(r.stdout)["run_id"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE generations DROP CONSTRAINT generations_status_check")
        conn.execute("ALTER TABLE generations ADD CONSTRAINT no_processing CHECK (status <> 'processing')")
    for extra in ([], ["--yes"]):
        r = runner.invoke(app, ["undo", run_id, "-d", dsn, *extra])
        assert r.exit_code == 2, r.output
        assert "undo would write 'processing'" in r.stderr and "no_processing" in r.stderr
    with psycopg.connect(dsn) as conn:
        assert {s for (s,) in conn.execute("SELECT status FROM generations")} == {"errored"}
