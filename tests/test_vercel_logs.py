"""Vercel runtime logs as evidence: the recorded stream shape pinned with respx, the counts, and doctor's findings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from stuckgen.errors import ConfigError, StuckgenError
from stuckgen.vercel import VercelClient
from stuckgen.vercel.logs import count_calls, near, parse_runtime_logs

BASE = "https://api.vercel.com"
TOKEN = "vcp_L0gsT0kenNeverShown_1a2b3c4d"
PROJECT = "genapp"
TEAM = "team_acme42"
DEPLOYMENT = "dpl_1ProdLive"
FIXTURE = (Path(__file__).parent / "data" / "vercel" / "runtime_logs_incident.ndjson").read_text()
LOGS_PATH = f"/v1/projects/{PROJECT}/deployments/{DEPLOYMENT}/runtime-logs"


def client(http: httpx.Client) -> VercelClient:
    return VercelClient(http, token=TOKEN, project=PROJECT, team=TEAM, base_url=BASE)


def test_the_runtime_log_stream_is_read_with_the_token_and_team_and_counted():
    with respx.mock(base_url=BASE) as api, httpx.Client() as http:
        route = api.get(LOGS_PATH, params={"teamId": TEAM}).mock(return_value=httpx.Response(
            200, text=FIXTURE, headers={"content-type": "application/stream+json"}))
        logs = client(http).runtime_logs(DEPLOYMENT)
    assert route.called
    req = route.calls[0].request
    assert req.headers["authorization"] == f"Bearer {TOKEN}" and req.headers["accept"] == "application/stream+json"
    assert len(logs) == len(FIXTURE.splitlines())
    calls = count_calls(logs, "/api/generate/process", deployment="genapp-p9o8i7u6y-acme.vercel.app")
    assert calls.by_status == {401: 31, 202: 2} and calls.total == 33
    assert calls.timeouts == 1 and calls.timeout_seconds == 300
    assert calls.line().startswith("31 of 33 calls to /api/generate/process on genapp-p9o8i7u6y-acme.vercel.app "
                                   "answered 401 between 10:21 and 11:37 UTC")
    assert "1 timed out after 300 s" in calls.line()


def test_console_lines_of_a_request_are_not_counted_as_calls():
    logs = parse_runtime_logs(FIXTURE.encode(), deployment=DEPLOYMENT)
    generate = count_calls(logs, "/api/generate", deployment=DEPLOYMENT)
    assert generate.by_status == {200: 32}  # 32 requests, not 32 + their 63 console lines


def test_lines_near_a_trigger_time_name_the_generation():
    logs = parse_runtime_logs(FIXTURE.encode(), deployment=DEPLOYMENT)
    first = next(x for x in logs if x.path == "/api/generate" and x.source == "request")
    around = near(logs, first.at, before=1, after=5)
    assert [x.status for x in around if x.path == "/api/generate/process"] == [401]
    assert any("Failed to trigger processing: 401" in x.message for x in around)


def test_blank_and_foreign_lines_are_skipped():
    body = b'\n{"level":"info"}\nnot json\n' + FIXTURE.splitlines()[0].encode() + b"\n"
    assert len(parse_runtime_logs(body, deployment=DEPLOYMENT)) == 1


@pytest.mark.parametrize("status,error", [(401, ConfigError), (403, ConfigError), (404, ConfigError),
                                          (500, StuckgenError)])
def test_a_refusal_is_a_named_error_without_the_token(status: int, error: type[Exception]):
    with respx.mock(base_url=BASE) as api, httpx.Client() as http:
        api.get(LOGS_PATH).mock(return_value=httpx.Response(
            status, json={"error": {"code": "forbidden", "message": f"echo Bearer {TOKEN}"}}))
        with pytest.raises(error) as info:
            client(http).runtime_logs(DEPLOYMENT)
    assert TOKEN not in str(info.value) and "runtime logs" in str(info.value)


def test_doctor_counts_the_refused_calls_and_the_timeouts_from_the_logs(tmp_path: Path) -> None:
    from stuckgen.doctor import diagnose
    from stuckgen.render.doctor import doctor_json_lines, doctor_text_lines
    from stuckgen.settings import load_settings
    from tests.vercel_standin import VercelStandIn, vercel_standin

    state = VercelStandIn(token=TOKEN, runtime_logs={DEPLOYMENT: FIXTURE})
    with vercel_standin(state) as standin:
        settings = load_settings({"vercel_token": TOKEN, "vercel_project": PROJECT, "vercel_team": TEAM,
                                  "vercel_api_url": standin.url}, environ={}, cwd=tmp_path)
        with httpx.Client(timeout=2.0) as http:
            report = diagnose(settings, conn=None, db_error="not needed here", vercel_http=http)
    by_id: dict[str, Any] = {r.finding.id: r.finding for r in report.ranked}
    assert "platform-logs-refused" in by_id and "platform-logs-timeouts" in by_id
    assert by_id["platform-logs-refused"].title.startswith("31 of 33 calls to /api/generate/process")
    logs = {c["deployment"]: c for c in report.vercel["runtime_logs"]}
    assert logs["genapp-p9o8i7u6y-acme.vercel.app"]["by_status"] == {"202": 2, "401": 31}
    assert any(p == LOGS_PATH for p, _ in state.requests)
    text = "\n".join([*doctor_text_lines(report), *doctor_json_lines(report)])
    assert "runtime logs of genapp-p9o8i7u6y-acme.vercel.app: /api/generate/process: HTTP 202 x2, HTTP 401 x31" in text
    assert TOKEN not in text


def test_show_prints_the_platforms_lines_around_the_rows_trigger(db, tmp_path: Path) -> None:
    import json
    import uuid

    import psycopg
    from psycopg.types.json import Jsonb
    from typer.testing import CliRunner

    from stuckgen.cli import app
    from tests.vercel_standin import VercelStandIn, vercel_standin

    gid = str(uuid.UUID(int=1000, version=4))  # the first generation of the recorded incident
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO generations (id, session_id, user_id, model_id, prompt, parameters, status, created_at) "
            "VALUES (%s, gen_random_uuid(), gen_random_uuid(), 'flux-dev', 'p', %s, 'processing', "
            "'2025-12-17 10:41:07.000')",
            (gid, Jsonb({"lastStep": "process:trigger-failed-http", "debugLogs": [
                {"at": "2025-12-17T10:41:07.190Z", "step": "process:trigger-failed-http", "status": 401}]})))
    state = VercelStandIn(token=TOKEN, runtime_logs={DEPLOYMENT: FIXTURE})
    with vercel_standin(state) as standin:
        env = {"STUCKGEN_DATABASE_URL": db, "VERCEL_TOKEN": TOKEN, "VERCEL_PROJECT_ID": PROJECT,
               "VERCEL_TEAM_ID": TEAM, "STUCKGEN_VERCEL_API_URL": standin.url}
        r = CliRunner().invoke(app, ["show", gid, "-f", "json"], env=env)
        md = CliRunner().invoke(app, ["show", gid, "-f", "markdown"], env=env)
    assert r.exit_code == 1, r.output
    lines = json.loads(r.stdout)["platform_logs"]
    first = lines[:3]
    assert [x["status"] for x in first if x["path"] == "/api/generate/process"] == [401]
    assert any(f"[{gid}] Failed to trigger processing: 401 Unauthorized" in x["message"] for x in first)
    assert all(x["deployment"] == "genapp-p9o8i7u6y-acme.vercel.app" for x in lines)
    assert "| platform log | 10:41:07 POST /api/generate/process HTTP 401" in md.stdout
    assert TOKEN not in r.output + md.output
