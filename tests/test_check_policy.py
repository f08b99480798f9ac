"""check's remediation policy against the real database and the reference deployment.

Young stuck rows (quiet 7-15 minutes) fall under --retrigger-after 5m; old ones
(quiet 2-2.5 hours) under --fail-after 1h.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference import ReferenceDeployment
from stuckgen.reference.seed import backdate, db_now, generate, insert_rows, seed

runner = CliRunner()
SECRET = "policy-secret-4f1a-never-printed"
POLICY = ["--retrigger-after", "5m", "--fail-after", "1h"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "GITHUB_ACTIONS",
                "GITHUB_STEP_SUMMARY", "STUCKGEN_BASE_URL", "STUCKGEN_AUDIT_FILE", "STUCKGEN_AUDIT_TABLE",
                "STUCKGEN_OPERATOR", "STUCKGEN_MAP", "VERCEL_AUTOMATION_BYPASS_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INTERNAL_API_SECRET", SECRET)


@pytest.fixture
def rows(db):
    """3 young stuck rows, 2 old stuck rows and 2 completed ones; returns (dsn, young ids, old ids)."""
    with psycopg.connect(db, autocommit=True) as conn:
        now = db_now(conn)
        young = list(generate({"never-started": 3}, now=now, min_age=420, max_age=900, seed=1))
        old = list(generate({"trigger-failed": 2}, now=now, min_age=7200, max_age=9000, seed=2))
        insert_rows(conn, young + old)
        seed(conn, {"completed": 2}, seed=3)
    return db, [r.id for r in young], [r.id for r in old]


def snapshot(dsn: str) -> dict[str, tuple[str, str | None]]:
    with psycopg.connect(dsn) as c:
        return {str(r[0]): (r[1], r[2]) for r in c.execute("SELECT id, status, parameters->>'error' FROM generations")}


def audit_rows(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as c:
        if not c.execute("SELECT to_regclass('stuckgen.audit') IS NOT NULL").fetchone()[0]:
            return []
        return [tuple(r) for r in c.execute("SELECT action, row_id, outcome FROM stuckgen.audit ORDER BY id")]


def sent(dep: ReferenceDeployment) -> int:
    return sum(v for (path, _), v in dep.counters.requests.items() if path == dep.route)


def check(dsn: str, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["check", "-d", dsn, *args], env=env)


def policy_checks(doc: dict) -> dict[str, dict]:
    return {c["name"]: c for c in doc["checks"] if c["name"].startswith("policy:")}


def test_without_remediate_nothing_changes_and_the_proposal_is_reported(rows):
    dsn, young, old = rows
    before = snapshot(dsn)
    with ReferenceDeployment(dsn, "healthy", secret=SECRET) as dep:
        r = check(dsn, *POLICY, "--url", dep.url, "--format", "json")
        n_sent = sent(dep)
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["policy"]["remediate"] is False
    assert doc["policy"]["retrigger"]["counts"] == {"would-trigger": 3}
    assert doc["policy"]["fail"]["counts"] == {"would-fail": 2}
    checks = policy_checks(doc)
    assert checks["policy:retrigger"]["passed"] is False and checks["policy:retrigger"]["severity"] == "warning"
    assert "would retrigger 3 of 3 row(s) stuck past 5m" in checks["policy:retrigger"]["message"]
    assert "would fail 2 of 2 row(s) stuck past 1h" in checks["policy:fail"]["message"]
    assert "pass --remediate" in checks["policy:fail"]["message"]
    assert n_sent == 0 and snapshot(dsn) == before and audit_rows(dsn) == []
    assert SECRET not in r.output


def test_remediate_retriggers_young_rows_until_they_complete_and_fails_old_ones(rows):
    dsn, young, old = rows
    with ReferenceDeployment(dsn, "healthy", secret=SECRET, work_seconds=0.2, heartbeat_interval=0.05) as dep:
        r = check(dsn, *POLICY, "--url", dep.url, "--remediate", "--wait", "10s", "--max-stuck", "10",
                  "--format", "json", "--operator", "ci")
        n_sent = sent(dep)
    # every stuck row was remediated and the stuck count is within the limit: healthy
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["failed"] is False and n_sent == 3
    assert doc["policy"]["retrigger"]["counts"] == {"accepted": 3}
    assert doc["policy"]["fail"]["counts"] == {"failed": 2}
    checks = policy_checks(doc)
    assert "verification: 3 completed" in checks["policy:retrigger"]["message"]
    fail_run = doc["policy"]["fail"]["run_id"]
    assert f"undo with: stuckgen undo {fail_run}" in checks["policy:fail"]["message"]
    after = snapshot(dsn)
    assert all(after[i][0] == "completed" for i in young)
    for i in old:
        status, error = after[i]
        assert status == "failed" and "stuckgen check" in error and "--fail-after 1h" in error
    audit = audit_rows(dsn)
    assert sorted((a, o) for a, _, o in audit) == [("fail", "failed")] * 2 + [("retrigger", "accepted")] * 3
    assert SECRET not in r.output
    with psycopg.connect(dsn) as c:
        assert SECRET not in json.dumps(c.execute("SELECT json_agg(a) FROM stuckgen.audit a").fetchone()[0])

    # a fail run of the policy is undone like any other
    u = runner.invoke(app, ["undo", fail_run, "-d", dsn, "--yes", "--format", "json"])
    assert u.exit_code == 0, u.output
    assert all(snapshot(dsn)[i][0] == "processing" for i in old)


def test_remediated_rows_still_count_against_the_threshold_they_crossed(rows):
    dsn, _, _ = rows
    with ReferenceDeployment(dsn, "healthy", secret=SECRET, work_seconds=0.1, heartbeat_interval=0.05) as dep:
        r = check(dsn, *POLICY, "--url", dep.url, "--remediate", "--wait", "10s")
    assert r.exit_code == 1, r.output
    assert "FAIL stuck-count: 5 stuck" in r.stdout
    assert "ok   policy:retrigger: run " in r.stdout and "ok   policy:fail: run " in r.stdout


def test_attempts_across_runs_exhaust_and_leave_the_rows_for_the_fail_rule(db):
    with psycopg.connect(db, autocommit=True) as conn:
        young = [r.id for r in seed(conn, {"never-started": 2}, min_age=30, max_age=60)]
    # The worker accepts, heartbeats twice and dies: the row is stuck again a second later.
    # Stalled rows are re-run from the start by a new trigger, so the policy takes them only when named.
    policy = ["--threshold", "1s", "--retrigger-after", "1s", "--max-attempts", "2", "--max-stuck", "10",
              "--retrigger-class", "stalled"]
    with ReferenceDeployment(db, "worker-crash", secret=SECRET, heartbeat_interval=0.05) as dep:
        for attempt in (1, 2):
            r = check(db, *policy, "--url", dep.url, "--remediate", "--format", "json")
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["policy"]["retrigger"]["counts"] == {"accepted": 2}
            assert dep.wait_idle()  # the worker has died: nothing writes to the rows any more
            with psycopg.connect(db, autocommit=True) as conn:
                backdate(conn, 5)  # quiet past --threshold and --retrigger-after, on the database's clock
        before = sent(dep)
        r = check(db, *policy, "--url", dep.url, "--remediate", "--format", "json")
        assert sent(dep) == before  # exhausted rows are never sent
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["policy"]["retrigger"]["counts"] == {"exhausted": 2}
    assert not policy_checks(doc)["policy:retrigger"]["passed"]

    # the dry run says the same, and once past --fail-after the fail rule takes them
    r = check(db, *policy, "--fail-after", "1m", "--format", "json")
    assert json.loads(r.stdout)["policy"]["retrigger"]["counts"] == {"exhausted": 2}
    with psycopg.connect(db, autocommit=True) as conn:
        backdate(conn, 5)  # past --fail-after 2s
    r = check(db, "--threshold", "1s", "--retrigger-after", "1s", "--fail-after", "2s", "--max-attempts", "2",
              "--max-stuck", "10", "--remediate", "--url", "http://127.0.0.1:9", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["policy"]["fail"]["counts"] == {"failed": 2}
    assert all(snapshot(db)[i][0] == "failed" for i in young)


def test_a_401_opens_the_breaker_stops_retriggers_and_exits_1(rows):
    dsn, young, old = rows
    with ReferenceDeployment(dsn, "secret-missing", secret=SECRET) as dep:
        r = check(dsn, *POLICY, "--url", dep.url, "--remediate", "--max-stuck", "10", "--format", "json")
        n_sent = sent(dep)
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    counts = doc["policy"]["retrigger"]["counts"]
    assert counts.get("auth-rejected", 0) >= 1 and n_sent == counts["auth-rejected"] and n_sent < 3 + 1
    assert doc["policy"]["retrigger"]["stop_kind"] == "auth"
    retrigger = policy_checks(doc)["policy:retrigger"]
    assert not retrigger["passed"] and "stopped: the deployment answered HTTP 401" in retrigger["message"]
    assert "stuckgen probe-auth" in r.stderr
    # the fail rule needs no deployment: it still ran
    assert doc["policy"]["fail"]["counts"] == {"failed": 2}
    assert all(snapshot(dsn)[i][0] == "processing" for i in young)
    assert SECRET not in r.output


def test_breaker_with_concurrency_sends_at_most_a_few_rows(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 20})
    with ReferenceDeployment(db, "secret-missing", secret=SECRET) as dep:
        r = check(db, "--retrigger-after", "5m", "--url", dep.url, "--remediate", "--format", "json")
        n_sent = sent(dep)
    assert r.exit_code == 1, r.output
    counts = json.loads(r.stdout)["policy"]["retrigger"]["counts"]
    assert n_sent <= 4 and counts["not-sent"] >= 16


def test_ci_outputs_carry_the_policy(rows, tmp_path):
    dsn, _, _ = rows
    summary = tmp_path / "summary.md"
    junit = tmp_path / "check.xml"
    r = check(dsn, *POLICY, "--junit", str(junit),
              env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "INTERNAL_API_SECRET": SECRET})
    assert r.exit_code == 1, r.output
    assert "FAIL policy:retrigger: would retrigger 3 of 3" in r.stdout
    assert any(line.startswith("::warning title=stuckgen policy:fail::would fail 2 of 2")
               for line in r.stderr.splitlines())
    assert "- Proposed: policy:retrigger: would retrigger 3 of 3" in summary.read_text()
    root = ET.parse(junit).getroot()
    assert root.find("./testsuite/testcase[@name='policy:fail']/failure") is not None
    m = check(dsn, *POLICY, "--format", "openmetrics")
    assert 'stuckgen_policy_rows{rule="retrigger",outcome="would-trigger"} 3' in m.stdout.splitlines()
    for out in (r.output, summary.read_text(), junit.read_text(), m.output):
        assert SECRET not in out


def test_nothing_to_rescue_passes(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 3, "running": 1})
    r = check(db, *POLICY, "--remediate", "--url", "http://127.0.0.1:9")
    assert r.exit_code == 0, r.output
    assert "ok   policy:retrigger: no rows stuck past 5m" in r.stdout
    assert "ok   policy:fail: no rows stuck past 1h" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--remediate"], "--remediate needs a policy"),
    (["--retrigger-after", "30m", "--fail-after", "5m"], "--fail-after (5m"),
    (["--retrigger-after", "5m", "--remediate"], "no deployment URL"),
    (["--retrigger-after", "5m", "--remediate", "--url", "http://app.example.com"],
     "refusing to send the secret over plain HTTP to app.example.com"),
    (["--retrigger-after", "soon"], "--retrigger-after"),
])
def test_policy_usage_errors_exit_2_and_change_nothing(rows, args, message):
    dsn, _, _ = rows
    before = snapshot(dsn)
    r = check(dsn, *args)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and r.stdout == "" and SECRET not in r.stderr
    assert snapshot(dsn) == before and audit_rows(dsn) == []
