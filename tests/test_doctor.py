"""doctor against the reference deployment in every scenario: the right top cause, and none for healthy."""

from __future__ import annotations

import httpx
import pytest

from stuckgen.demo import demo_environment, send_traffic, settings_for, wait_until_stuck
from stuckgen.doctor import diagnose
from stuckgen.findings import Severity
from stuckgen.reference.scenarios import SCENARIOS
from stuckgen.render.doctor import doctor_json_lines, doctor_markdown_lines, doctor_text_lines
from stuckgen.settings import load_settings

# scenario -> the finding doctor must rank first (the scenario's own record, which demo checks too)
EXPECTED_TOP = {name: sc.planted for name, sc in SCENARIOS.items() if sc.planted}


def run_doctor(pg_server: str, scenario: str, *, local_secret_suffix: str = ""):
    with demo_environment(scenario=scenario, database_url=pg_server) as env:
        base = settings_for(env, threshold=1.5)
        flags = {"threshold": "1.5s", "since": "1h", "http_timeout": "1s"}
        if SCENARIOS[scenario].use_webhooks:
            flags["grace"] = "awaiting-webhook=1.5s"  # as the demo compresses the app's 30-minute webhook grace
        if local_secret_suffix:
            flags["internal_secret"] = base.internal_secret + local_secret_suffix
        settings = load_settings(flags, environ={}, cwd=env.workdir, env_file=str(env.env_file))
        ids = send_traffic(env, count=4)
        wait_until_stuck(env.dsn, ids=ids, threshold=1.5, timeout=20)
        from stuckgen import db as dbmod
        from stuckgen.cookies import parse_cookies
        import time

        conn = dbmod.connect(settings.database_url)
        info = parse_cookies(settings.cookie, now=time.time())
        with conn, httpx.Client(follow_redirects=False, timeout=1.0) as http, \
                httpx.Client(follow_redirects=False, timeout=1.0, trust_env=False) as provider_http:
            report = diagnose(settings, conn=conn, http=http, cookie_header=info.header, cookie_info=info,
                              provider_http=provider_http if settings.replicate_api_token else None,
                              repeat=4, concurrency=1 if scenario == "intermittent" else 4)
    return report, settings


@pytest.mark.parametrize("scenario", sorted(EXPECTED_TOP))
def test_doctor_names_the_right_top_cause(pg_server, scenario):
    suffix = "\n" if scenario == "secret-whitespace" else ""  # the operator pulled the stored value
    report, settings = run_doctor(pg_server, scenario, local_secret_suffix=suffix)
    top = report.ranked[0].finding
    assert top.id == EXPECTED_TOP[scenario], [(r.finding.id, round(r.support, 2)) for r in report.ranked[:4]]
    assert top.severity >= Severity.WARNING
    text = "\n".join(doctor_text_lines(report)) + "\n".join(doctor_markdown_lines(report)) + "\n".join(doctor_json_lines(report))
    for secret in settings.secrets():
        assert secret.strip() not in text


def test_doctor_on_a_healthy_deployment_finds_nothing_wrong(pg_server):
    report, _ = run_doctor(pg_server, "healthy")
    assert report.summary.stuck == 0
    assert report.worst is None or report.worst < Severity.WARNING, [r.finding.id for r in report.ranked]


def test_markdown_report_has_the_sections_a_team_pastes(pg_server):
    report, _ = run_doctor(pg_server, "secret-missing")
    md = "\n".join(doctor_markdown_lines(report))
    for heading in ("# Stuck generations", "## Summary", "## Timeline", "## Evidence", "## Causes, ranked",
                    "## Remediation", "## Next steps"):
        assert heading in md
    assert "logged a failed trigger with HTTP 401" in md
    assert "**Most likely cause:**" in md and "secret-rejected" in md


def test_doctor_without_database_still_probes_and_says_why(tmp_path):
    s = load_settings({"database_url": "postgresql://u:pw-never-shown@127.0.0.1:1/x"}, environ={}, cwd=tmp_path)
    report = diagnose(s, conn=None, db_error="cannot connect (127.0.0.1:1/x)")
    ids = [r.finding.id for r in report.ranked]
    assert "database-unreachable" in ids and "no-target" in ids
    assert "pw-never-shown" not in "\n".join(doctor_text_lines(report))


def test_doctor_with_a_missing_table_reports_what_it_could_and_names_the_table(db):
    import json

    from typer.testing import CliRunner

    from stuckgen.cli import app
    from stuckgen.reference import ReferenceDeployment

    runner = CliRunner()
    with ReferenceDeployment(db, "secret-missing", secret="doc-secret-value-123") as dep:
        for fmt in ("json", "text", "markdown"):
            r = runner.invoke(app, ["doctor", "-d", db, "--table", "jobz", "--url", dep.url, "--repeat", "2",
                                    "-f", fmt], env={"INTERNAL_API_SECRET": "doc-secret-value-123"})
            assert r.exit_code == 2, (fmt, r.output)  # a configuration error, reported in full
            assert "jobz" in r.stdout and "generations" in r.stdout, fmt  # the table named, the ones there listed
            assert "secret-rejected" in r.stdout, fmt  # the probe still ran
            if fmt == "json":
                doc = json.loads(r.stdout)
                ids = [f["id"] for f in doc["findings"]]
                assert "table-not-found" in ids and doc["database"]["reachable"] is True, doc["database"]
        dep.wait_idle()
    r = runner.invoke(app, ["check", "-d", db, "--table", "jobz"])
    assert r.exit_code == 2 and "jobz" in r.stderr and "healthy" not in r.stdout, r.output
