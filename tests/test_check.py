"""check: exit codes, CI outputs (annotations, step summary, JUnit XML, OpenMetrics)."""

from __future__ import annotations

import json
import os
import stat
import xml.etree.ElementTree as ET

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.seed import seed

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "GITHUB_ACTIONS",
                "GITHUB_STEP_SUMMARY", "STUCKGEN_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def stuck_db(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 6, "trigger-failed": 2, "stalled": 1})
    return db


@pytest.fixture
def healthy_db(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 5, "running": 2})
    return db


def test_healthy_database_exits_0(healthy_db):
    r = runner.invoke(app, ["check", "-d", healthy_db])
    assert r.exit_code == 0, r.output
    assert "result: healthy" in r.stdout


def test_stuck_rows_over_the_limit_exit_1_and_under_it_exit_0(stuck_db):
    r = runner.invoke(app, ["check", "-d", stuck_db])
    assert r.exit_code == 1, r.output
    assert "FAIL stuck-count: 3 stuck" in r.stdout
    r = runner.invoke(app, ["check", "-d", stuck_db, "--max-stuck", "3"])
    assert r.exit_code == 0, r.output


def test_stuck_rate_threshold(stuck_db):
    r = runner.invoke(app, ["check", "-d", stuck_db, "--max-stuck", "10", "--max-stuck-rate", "50%"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["check", "-d", stuck_db, "--max-stuck", "10", "--max-stuck-rate", "0.2", "-f", "json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["schema"] == "stuckgen.check/v1" and doc["failed"] is True
    rate = next(c for c in doc["checks"] if c["name"] == "stuck-rate")
    assert rate["passed"] is False and doc["metrics"]["stuck"] == 3


def test_github_annotations_and_step_summary(stuck_db, tmp_path):
    summary = tmp_path / "summary.md"
    r = runner.invoke(app, ["check", "-d", stuck_db],
                      env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert r.exit_code == 1
    assert any(line.startswith("::error title=stuckgen stuck-count::3 stuck generations") for line in r.stderr.splitlines())
    text = summary.read_text()
    assert "# Stuck generations: incident report" in text and "`trigger-failed` 2" in text
    # appended, never truncated: a second run adds to what the job wrote before
    runner.invoke(app, ["check", "-d", stuck_db], env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.read_text().count("# Stuck generations") == 2


def test_junit_file_is_valid_xml_owner_only(stuck_db, tmp_path):
    path = tmp_path / "out" / "stuckgen.xml"
    path.parent.mkdir()
    r = runner.invoke(app, ["check", "-d", stuck_db, "--junit", str(path)])
    assert r.exit_code == 1
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "1"
    case = root.find("./testsuite/testcase[@name='stuck-count']")
    assert case is not None and case.find("failure") is not None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_openmetrics_output(stuck_db):
    r = runner.invoke(app, ["check", "-d", stuck_db, "-f", "openmetrics"])
    lines = r.stdout.splitlines()
    assert 'stuckgen_stuck{class="trigger-failed"} 2' in lines
    assert 'stuckgen_stuck{class="stalled"} 1' in lines
    assert 'stuckgen_stuck{class="never-started"} 0' in lines
    assert lines[-1] == "# EOF" and "stuckgen_check_failed 1" in lines


def test_unreachable_database_is_exit_3(tmp_path):
    r = runner.invoke(app, ["check", "-d", "postgresql://x:pw-hidden-123@127.0.0.1:1/db", "--connect-timeout", "2s"])
    assert r.exit_code == 3, r.output
    assert "pw-hidden-123" not in r.output


def test_check_with_probe_fails_on_an_auth_finding(db):
    from stuckgen.reference import ReferenceDeployment

    with ReferenceDeployment(db, "secret-missing", secret="ci-secret-value-123") as dep:
        r = runner.invoke(app, ["check", "-d", db, "--probe", "--url", dep.url, "-f", "json"],
                          env={"INTERNAL_API_SECRET": "ci-secret-value-123"})
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    failed = [c["name"] for c in doc["checks"] if not c["passed"]]
    assert "probe:secret-rejected" in failed
    assert "ci-secret-value-123" not in r.output
