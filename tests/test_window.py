"""Nothing silently outside the window: stuck rows created before --since are counted, named and judged."""

from __future__ import annotations

import csv
import io
import json
import random

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.seed import db_now, insert_rows, make_row

runner = CliRunner()
DAY = 86400


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "GITHUB_ACTIONS",
                "GITHUB_STEP_SUMMARY", "STUCKGEN_BASE_URL", "STUCKGEN_SINCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def old_and_new(db):
    """One row stuck for an hour, two stuck for 9 and 3 days (different classes), one healthy old row."""
    rng = random.Random(7)
    with psycopg.connect(db, autocommit=True) as conn:
        now = db_now(conn)
        recent = make_row("trigger-failed", now=now, age=3600, rng=rng)
        nine_days = make_row("stalled", now=now, age=9 * DAY, rng=rng)
        three_days = make_row("never-started", now=now, age=3 * DAY, rng=rng)
        done = make_row("completed", now=now, age=5 * DAY, rng=rng)
        insert_rows(conn, [recent, nine_days, three_days, done])
    return db, recent, nine_days, three_days


def test_scan_json_names_the_stuck_rows_created_before_the_window(old_and_new):
    db, recent, nine, three = old_and_new
    r = runner.invoke(app, ["scan", "-d", db, "--since", "24h", "-f", "json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert [row["id"] for row in doc["rows"]] == [recent.id]
    s = doc["summary"]
    assert s["stuck_before_window"] == 2
    bw = s["before_window"]
    # Quietest longest first, each with the class the same rules give it in the scan.
    assert [(x["id"], x["class"]) for x in bw["rows"]] == [(nine.id, "stalled"), (three.id, "never-started")]
    assert bw["by_class"] == {"never-started": 1, "stalled": 1}
    assert bw["rows"][1]["quiet_seconds"] > 2 * DAY


def test_only_old_stuck_rows_still_exit_1_and_are_named_under_the_table(old_and_new, monkeypatch):
    db, recent, nine, three = old_and_new
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DELETE FROM generations WHERE id = %s", (recent.id,))
    r = runner.invoke(app, ["scan", "-d", db, "-f", "table"])
    assert r.exit_code == 1, r.output
    assert "Also 2 stuck rows created before the last 24h (never-started 1, stalled 1)" in r.stdout
    assert nine.id in r.stdout and three.id in r.stdout
    assert "--since all" in r.stdout


def test_csv_names_them_on_stderr_and_keeps_stdout_rows_only(old_and_new):
    db, recent, nine, three = old_and_new
    r = runner.invoke(app, ["scan", "-d", db, "-f", "csv"])
    assert r.exit_code == 1, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [x["id"] for x in rows] == [recent.id]
    assert nine.id in r.stderr and three.id in r.stderr


def test_class_filter_applies_to_the_rows_before_the_window_too(old_and_new):
    db, recent, nine, three = old_and_new
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json", "--class", "stalled"])
    doc = json.loads(r.stdout)
    assert doc["rows"] == []
    assert doc["summary"]["stuck_before_window"] == 1
    assert [x["id"] for x in doc["summary"]["before_window"]["rows"]] == [nine.id]


def test_since_all_lists_them_as_rows(old_and_new):
    db, recent, nine, three = old_and_new
    doc = json.loads(runner.invoke(app, ["scan", "-d", db, "-f", "json", "--since", "all"]).stdout)
    assert {row["id"] for row in doc["rows"]} == {recent.id, nine.id, three.id}
    assert doc["summary"]["before_window"] is None


def test_check_judges_rows_stuck_for_days(old_and_new):
    db, recent, nine, three = old_and_new
    r = runner.invoke(app, ["check", "-d", db, "--max-stuck", "1"])
    assert r.exit_code == 1, r.output
    assert "FAIL stuck-count: 3 stuck generations (1 created in the window, 2 before it" in r.stdout
    assert nine.id in r.stdout
    r = runner.invoke(app, ["check", "-d", db, "--max-stuck", "3", "-f", "json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)["metrics"]
    assert (m["stuck"], m["stuck_in_window"], m["stuck_before_window"]) == (3, 1, 2)
    assert m["by_class"] == {"trigger-failed": 1, "stalled": 1, "never-started": 1}
    om = runner.invoke(app, ["check", "-d", db, "--max-stuck", "3", "-f", "openmetrics"]).stdout
    assert "stuckgen_stuck_before_window 2" in om


def test_doctor_reports_them_as_a_finding(old_and_new):
    db, recent, nine, three = old_and_new
    r = runner.invoke(app, ["doctor", "-d", db, "-f", "json"])
    doc = json.loads(r.stdout)
    found = [f for f in doc["findings"] if f["id"] == "stuck-before-window"]
    assert found and nine.id in " ".join(found[0]["evidence"])
    md = runner.invoke(app, ["doctor", "-d", db, "-f", "markdown"]).stdout
    assert "2 more stuck since before the window" in md and f"`{nine.id}`" in md
