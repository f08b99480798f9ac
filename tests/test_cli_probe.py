"""`stuckgen probe-auth` end to end against the reference deployment: exit codes, streams, no leaks."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference import ReferenceDeployment
from stuckgen.reference.cookies import cookie_header

SECRET = "cli-secret-7b9b1a0c9f3f4d2a8e6c1d0b"
BYPASS = "cli-bypass-0123456789"
FAST = {"work_seconds": 0.05, "heartbeat_interval": 0.02, "trigger_backoff": 0.01, "trigger_timeout": 0.3}
runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "STUCKGEN_COOKIE",
                "STUCKGEN_BASE_URL", "VERCEL_AUTOMATION_BYPASS_SECRET", "STUCKGEN_INTERNAL_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def healthy(db: str) -> Iterator[ReferenceDeployment]:
    with ReferenceDeployment(db, "healthy", secret=SECRET, **FAST) as dep:
        yield dep


def invoke(args: list[str], **env: str):
    return runner.invoke(app, ["probe-auth", *args], env={"INTERNAL_API_SECRET": SECRET, **env})


def test_healthy_exits_0_with_json_on_stdout(healthy: ReferenceDeployment, db: str) -> None:
    cookie = cookie_header(healthy.session_cookie())
    r = invoke(["--url", healthy.url, "--format", "json", "--repeat", "2", "-d", db], STUCKGEN_COOKIE=cookie)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == "stuckgen.probe/v1"
    assert doc["worst"] == "info"
    assert SECRET not in r.stdout + r.stderr
    assert cookie.split("=", 1)[1][:30] not in r.stdout + r.stderr
    assert "sha256:" in r.stderr


def test_secret_missing_exits_1_and_names_the_finding(db: str) -> None:
    with ReferenceDeployment(db, "secret-missing", secret=SECRET, **FAST) as dep:
        r = invoke(["--url", dep.url, "--format", "markdown"])
    assert r.exit_code == 1, r.output
    assert "`secret-rejected`" in r.stdout
    assert SECRET not in r.stdout + r.stderr


def test_protected_table_with_bypass(db: str) -> None:
    with ReferenceDeployment(db, "protected", secret=SECRET, bypass_secret=BYPASS, **FAST) as dep:
        r = invoke(["--url", dep.url, "--format", "table"], VERCEL_AUTOMATION_BYPASS_SECRET=BYPASS)
    assert r.exit_code == 1, r.output
    assert "deployment-protection" in r.stdout and "bypass+secret" in r.stdout
    assert BYPASS not in r.stdout + r.stderr


def test_no_target_answering_exits_3() -> None:
    with ReferenceDeployment("dbname=unused", "healthy", secret=SECRET) as dep:
        url = dep.url
    r = invoke(["--url", url, "--format", "json", "--http-timeout", "1s"])
    assert r.exit_code == 3, r.output
    assert "no target answered" in r.stderr


def test_plain_http_to_remote_host_is_refused_with_exit_2() -> None:
    r = invoke(["--url", "http://app.example.com", "--format", "json"])
    assert r.exit_code == 2, r.output
    assert "plain HTTP" in r.stderr and "--allow-insecure" in r.stderr
    assert r.stdout == ""


def test_missing_url_is_a_usage_error() -> None:
    r = invoke(["--format", "json"])
    assert r.exit_code == 2
    assert "--url" in r.stderr
