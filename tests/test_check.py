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


def test_check_probe_gives_the_same_verdict_run_after_run_when_instances_disagree(db):
    """Half the instances lack the secret: every run says so (never 'healthy', never 'secret-rejected')."""
    from stuckgen.reference import ReferenceDeployment

    verdicts = []
    with ReferenceDeployment(db, "intermittent", secret="ci-secret-value-123") as dep:
        for _ in range(4):
            r = runner.invoke(app, ["check", "-d", db, "--probe", "--url", dep.url, "-f", "json"],
                              env={"INTERNAL_API_SECRET": "ci-secret-value-123"})
            assert r.exit_code == 1, r.output
            verdicts.append(sorted(c["name"] for c in json.loads(r.stdout)["checks"] if not c["passed"]))
        dep.wait_idle()
    assert verdicts == [["probe:secret-intermittent"]] * 4, verdicts


def test_check_probe_healthy_says_how_many_probes_and_never_judges_on_one_answer(db):
    from stuckgen.reference import ReferenceDeployment

    env = {"INTERNAL_API_SECRET": "ci-secret-value-123"}
    with ReferenceDeployment(db, "healthy", secret="ci-secret-value-123") as dep:
        r = runner.invoke(app, ["check", "-d", db, "--probe", "--url", dep.url], env=env)
        assert r.exit_code == 0, r.output
        assert "10 probes per mode" in r.stdout, r.stdout
        r = runner.invoke(app, ["check", "-d", db, "--probe", "--url", dep.url, "--repeat", "1", "-f", "json"], env=env)
        assert r.exit_code == 1, r.output
        failed = [c for c in json.loads(r.stdout)["checks"] if not c["passed"]]
        assert [c["name"] for c in failed] == ["probe:probe-inconclusive"], failed
        dep.wait_idle()


def test_check_probe_without_a_deployment_is_a_configuration_error(db):
    r = runner.invoke(app, ["check", "-d", db, "--probe"])
    assert r.exit_code == 2, r.output
    assert "--probe needs a deployment" in r.stderr and "--url" in r.stderr
    assert "healthy" not in r.stdout


def test_the_repeat_help_states_the_default_the_code_uses():
    from stuckgen.probe import DEFAULT_REPEAT, MIN_ANSWERS_TO_JUDGE

    for cmd in ("check", "doctor", "watch", "probe-auth"):
        text = " ".join(runner.invoke(app, [cmd, "--help"], terminal_width=200).stdout.split())
        assert f"Default {DEFAULT_REPEAT}:" in text, cmd
        assert f"fewer than {MIN_ANSWERS_TO_JUDGE} answers per mode" in text, cmd


def test_an_inflight_status_no_row_has_fails_the_check_and_names_the_statuses_there(stuck_db):
    r = runner.invoke(app, ["check", "-d", stuck_db, "--inflight-statuses", "processsing", "-f", "json"])
    assert r.exit_code == 1, r.output
    failed = {c["name"]: c["message"] for c in json.loads(r.stdout)["checks"] if not c["passed"]}
    assert list(failed) == ["config:inflight-statuses"], failed
    assert "'processsing'" in failed["config:inflight-statuses"] and "processing (3)" in failed["config:inflight-statuses"]
    r = runner.invoke(app, ["check", "-d", stuck_db, "--inflight-statuses", "processsing"])
    assert r.exit_code == 1 and "result: FAILED" in r.stdout, r.output
    # Statuses that occur, and the defaults (queued is absent here), are not judged.
    r = runner.invoke(app, ["check", "-d", stuck_db, "--inflight-statuses", "processing", "--max-stuck", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["check", "-d", stuck_db, "--max-stuck", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["doctor", "-d", stuck_db, "--no-probe", "--inflight-statuses", "processing,bogus", "-f", "json"])
    assert "inflight-status-unseen" in [f["id"] for f in json.loads(r.stdout)["findings"]]
