"""The reference deployment really reproduces each scenario, in HTTP and in the database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from stuckgen.errors import ConfigError
from stuckgen.reference import SCENARIOS, ReferenceDeployment, Scenario
from stuckgen.reference.cookies import cookie_header, make_session_cookie
from stuckgen.reference.scenarios import spread

SECRET = "ref-secret-0123456789abcdef"
BYPASS = "ref-bypass-0123456789"
FAST = {"work_seconds": 0.1, "heartbeat_interval": 0.03, "trigger_backoff": 0.01, "trigger_timeout": 0.5}


def deployment(db: str, scenario: str | Scenario, **kw: Any) -> ReferenceDeployment:
    return ReferenceDeployment(db, scenario, secret=SECRET, bypass_secret=BYPASS, **{**FAST, **kw})


def row(db: str, generation_id: str) -> tuple[str, dict[str, Any], int]:
    with psycopg.connect(db) as conn:
        found = conn.execute(
            "SELECT status, parameters, (SELECT count(*) FROM outputs o WHERE o.generation_id = g.id)"
            " FROM generations g WHERE id = %s",
            (generation_id,),
        ).fetchone()
    assert found is not None
    return found[0], found[1], found[2]


def steps(parameters: dict[str, Any]) -> list[str]:
    return [entry["step"] for entry in parameters["debugLogs"]]


def generate(dep: ReferenceDeployment, client: httpx.Client, **headers: str) -> str:
    response = client.post(dep.url + "/api/generate", json={"prompt": "a fox"},
                           headers={"cookie": cookie_header(dep.session_cookie()), **headers})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processing"
    return response.json()["id"]


def raw_post(dep: ReferenceDeployment, header_line: str, body: str) -> str:
    """A POST written byte by byte, for header values an HTTP client would refuse to send."""
    host, port = dep.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(
            f"POST /api/generate/process HTTP/1.1\r\nhost: {host}\r\n{header_line}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n{body}".encode()
        )
        return s.recv(65536).decode()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def test_every_scenario_is_data_with_a_description() -> None:
    assert set(SCENARIOS) == {
        "healthy", "secret-missing", "secret-missing-marked-failed", "secret-mismatch", "secret-whitespace", "intermittent", "protected",
        "redirect", "cookie-expired", "dropped-trigger", "worker-crash", "slow", "lost-callback",
    }
    assert all(s.description for s in SCENARIOS.values())


def test_spread_is_even_and_deterministic() -> None:
    assert [spread(i, 0.25) for i in range(8)] == [False, False, False, True] * 2
    assert sum(spread(i, 0.5) for i in range(10)) == 5


def test_unknown_scenario_and_non_loopback_host_are_refused(db: str) -> None:
    with pytest.raises(ConfigError, match="unknown scenario"):
        ReferenceDeployment(db, "nope", secret=SECRET)
    with pytest.raises(ConfigError, match="loopback"):
        ReferenceDeployment(db, secret=SECRET, host="0.0.0.0")


def test_healthy_rows_complete_with_heartbeats_and_an_output(db: str, client: httpx.Client) -> None:
    with deployment(db, "healthy") as dep:
        gid = generate(dep, client)
        assert dep.wait_idle(5)
        status, params, outputs = row(db, gid)
        counters = dep.counters
    assert status == "completed" and outputs == 1
    s = steps(params)
    assert s[0] == "generate:create"
    # The trigger logs process:triggered when the 202 arrives; the worker it started runs
    # concurrently (as in the app, where both write the same row), so on a loaded machine
    # it may be past process:start, even model:generate:start, by then. Only the worker's
    # own order is fixed.
    assert s.count("process:triggered") == 1 and 1 <= s.index("process:triggered")
    worker = [x for x in s[1:] if x != "process:triggered"]
    assert worker[:2] == ["process:start", "model:generate:start"]
    assert s.count("model:generate:heartbeat") >= 2
    assert worker[-2:] == ["model:generate:end", "process:completed"]
    assert params["lastStep"] == "process:completed"
    assert params["lastHeartbeatAt"].endswith("Z")
    assert isinstance(params["processingStartedAt"], int)
    assert next(e for e in params["debugLogs"] if e["step"] == "process:triggered")["status"] == 202
    assert counters.accepted == {gid: 1} and counters.started == {gid: 1}
    assert counters.max_in_flight == {gid: 1}
    assert counters.errors == ()


def test_process_route_answers(db: str, client: httpx.Client) -> None:
    with deployment(db, "healthy") as dep:
        gid = generate(dep, client)
        route = dep.url + "/api/generate/process"
        other = make_session_cookie("00000000-0000-4000-8000-000000000001", expires_in=60, project_ref="refproj")
        answers = {
            "none": client.post(route, json={"generationId": gid}),
            "unknown": client.post(route, json={"generationId": "3f0c1a2b-0000-4000-8000-000000000000"},
                                   headers={"cookie": cookie_header(dep.session_cookie())}),
            "foreign": client.post(route, json={"generationId": gid}, headers={"cookie": cookie_header(other)}),
            "no-id": client.post(route, json={}, headers={"x-internal-secret": SECRET}),
            "get": client.get(route),
            "missing": client.post(dep.url + "/api/nope"),
        }
        padded = raw_post(dep, f"x-internal-secret: {SECRET}  \t", f'{{"generationId": "{gid}"}}')
        dep.wait_idle(5)
    assert (answers["none"].status_code, answers["none"].json()) == (401, {"error": "Unauthorized"})
    assert (answers["unknown"].status_code, answers["unknown"].json()) == (404, {"error": "Generation not found"})
    assert (answers["foreign"].status_code, answers["foreign"].json()) == (403, {"error": "Forbidden"})
    assert answers["no-id"].status_code == 400
    assert answers["get"].status_code == 405
    assert answers["missing"].status_code == 404 and answers["missing"].headers["x-vercel-error"] == "NOT_FOUND"
    # HTTP strips surrounding whitespace from header values.
    assert padded.startswith("HTTP/1.1 202")
    assert all("x-vercel-id" in r.headers for r in answers.values())


def test_a_second_trigger_for_a_locked_row_is_skipped(db: str, client: httpx.Client) -> None:
    with deployment(db, "healthy", work_seconds=0.3) as dep:
        gid = generate(dep, client)
        # Whichever of the app's own trigger and this one takes the lock first, the other is skipped.
        second = client.post(dep.url + "/api/generate/process", json={"generationId": gid},
                             headers={"x-internal-secret": SECRET})
        dep.wait_idle(5)
        counters = dep.counters
        status, params, outputs = row(db, gid)
    assert second.status_code == 202
    assert dep.accepted_calls(gid) == 2
    assert counters.started[gid] == 1
    assert "process:skipped-duplicate" in steps(params)
    assert status == "completed" and outputs == 1


@pytest.mark.parametrize("scenario", ["secret-missing", "secret-mismatch", "secret-whitespace"])
def test_rejected_secret_leaves_rows_processing_with_three_401s(db: str, client: httpx.Client, scenario: str) -> None:
    with deployment(db, scenario) as dep:
        gid = generate(dep, client)
        dep.wait_idle(5)
        status, params, outputs = row(db, gid)
        assert dep.counters.triggers_sent == 3
        probe = client.post(dep.url + "/api/generate/process", json={"generationId": gid},
                            headers={"x-internal-secret": SECRET})
    assert (status, outputs) == ("processing", 0)
    assert steps(params) == ["generate:create"] + ["process:trigger-failed-http"] * 3
    assert [e["status"] for e in params["debugLogs"][1:]] == [401, 401, 401]
    assert "Unauthorized" in params["debugLogs"][1]["error"]
    assert probe.status_code == 401


def test_mark_failed_reproduces_the_app_as_written(db: str, client: httpx.Client) -> None:
    with deployment(db, "secret-missing", mark_failed=True) as dep:
        gid = generate(dep, client)
        dep.wait_idle(5)
    status, params, _ = row(db, gid)
    # src/app/api/generate/route.ts: the failed update spreads the request's parameters (the step
    # log so far is dropped), then appendDebugLog logs the last try only.
    assert status == "failed"
    assert params["error"] == "Failed to trigger processing: 401 Unauthorized"
    assert params["triggerErrorText"] == '{"error":"Unauthorized"}' or "Unauthorized" in params["triggerErrorText"]
    assert params["lastStep"] == "process:trigger-failed-http"
    assert [(e["step"], e.get("status")) for e in params["debugLogs"]] == [("process:trigger-failed-http", 401)]


def test_intermittent_some_rows_complete_and_some_stick(db: str, client: httpx.Client) -> None:
    with deployment(db, "intermittent") as dep:
        ids = []
        for _ in range(4):
            ids.append(generate(dep, client))
            dep.wait_idle(5)
        outcomes = [row(db, gid)[0] for gid in ids]
        stuck = [row(db, gid)[1] for gid in ids if row(db, gid)[0] == "processing"]
    assert "completed" in outcomes and "processing" in outcomes
    # The generating instance lacked the variable, so no header was sent at all.
    assert all(p["lastStep"] == "process:trigger-failed-http" for p in stuck)


def test_protected_wall_bypass_and_stuck_rows(db: str, client: httpx.Client) -> None:
    with deployment(db, "protected") as dep:
        route = dep.url + "/api/generate/process"
        wall = client.post(route, json={"generationId": "x"}, headers={"x-internal-secret": SECRET})
        browser = client.post(route, headers={"accept": "text/html,application/xhtml+xml"})
        through = client.post(route, json={"generationId": "3f0c1a2b-0000-4000-8000-000000000000"},
                              headers={"x-internal-secret": SECRET, "x-vercel-protection-bypass": BYPASS})
        gid = generate(dep, client, **{"x-vercel-protection-bypass": BYPASS})
        dep.wait_idle(5)
        status, params, _ = row(db, gid)
    assert wall.status_code == 401 and "Authentication Required" in wall.text
    assert wall.headers["content-type"].startswith("text/html")
    assert wall.headers["set-cookie"].startswith("_vercel_sso_nonce=")
    assert browser.status_code == 307 and browser.headers["location"].startswith("https://vercel.com/sso-api?")
    assert through.status_code == 202
    # The app's own trigger carries no bypass header: it meets the wall.
    assert status == "processing"
    assert [e["status"] for e in params["debugLogs"][1:]] == [401, 401, 401]


def test_redirect_goes_to_a_real_second_server_that_refuses(db: str, client: httpx.Client) -> None:
    with deployment(db, "redirect") as dep:
        route = dep.url + "/api/generate/process"
        first = client.post(route, json={"generationId": "x"}, headers={"x-internal-secret": SECRET})
        location = first.headers["location"]
        assert dep.redirect_url and location.startswith(dep.redirect_url)
        # What a client following it would send: no secret, no cookies.
        followed = client.post(location, json={"generationId": "3f0c1a2b-0000-4000-8000-000000000000"})
        gid = generate(dep, client)
        dep.wait_idle(5)
        status, params, _ = row(db, gid)
        second = dep.redirect_url
    assert first.status_code == 308
    assert followed.status_code == 401
    assert status == "processing" and [e["status"] for e in params["debugLogs"][1:]] == [308, 308, 308]
    with pytest.raises(httpx.ConnectError):
        client.post(second + "/api/generate/process")


def test_cookie_expired_sessions_are_refused(db: str, client: httpx.Client) -> None:
    with deployment(db, "cookie-expired") as dep:
        route = dep.url + "/api/generate/process"
        unknown = {"generationId": "3f0c1a2b-0000-4000-8000-000000000000"}
        issued = client.post(route, json=unknown, headers={"cookie": cookie_header(dep.session_cookie())})
        fresh = client.post(route, json=unknown, headers={
            "cookie": cookie_header(make_session_cookie(dep.user_id, expires_in=60, project_ref="refproj"))})
        login = client.post(dep.url + "/auth/login")
    assert issued.status_code == 401
    assert fresh.status_code == 404
    assert login.status_code == 200 and "sb-refproj-auth-token" in login.headers["set-cookie"]


def test_dropped_trigger_rows_stay_at_generate_create(db: str, client: httpx.Client) -> None:
    with deployment(db, "dropped-trigger") as dep:
        gid = generate(dep, client)
        dep.wait_idle(5)
        sent = dep.counters.triggers_sent
    status, params, outputs = row(db, gid)
    assert (status, params["lastStep"], outputs, sent) == ("processing", "generate:create", 0, 0)
    assert "lastHeartbeatAt" not in params


def test_worker_crash_heartbeats_then_silence(db: str, client: httpx.Client) -> None:
    with deployment(db, "worker-crash") as dep:
        gid = generate(dep, client)
        dep.wait_idle(5)
        _, before, _ = row(db, gid)
        time.sleep(0.1)  # three heartbeat intervals: nothing more may arrive
        status, after, outputs = row(db, gid)
    assert status == "processing" and outputs == 0
    assert steps(after).count("model:generate:heartbeat") == 2
    assert after["lastStep"] == "model:generate:heartbeat"
    assert after["lastHeartbeatAt"] == before["lastHeartbeatAt"]


def test_slow_adds_latency_and_some_calls_hang(db: str, client: httpx.Client) -> None:
    with deployment(db, "slow", latency=0.05) as dep:
        started = time.perf_counter()
        client.post(dep.url + "/api/nope")
        assert time.perf_counter() - started >= 0.05
        outcomes = []
        with httpx.Client(timeout=0.3) as short:
            for _ in range(4):
                try:
                    outcomes.append(short.post(dep.url + "/api/generate/process").status_code)
                except httpx.TimeoutException:
                    outcomes.append("timeout")
    assert outcomes.count("timeout") == 1 and outcomes.count(401) == 3


def test_stop_leaves_no_thread_or_socket(db: str, client: httpx.Client) -> None:
    before = threading.active_count()
    dep = deployment(db, "slow", hang_seconds=30).start()
    url = dep.url
    # A request hanging in the handler and a client that never sends a byte.
    with httpx.Client(timeout=0.2) as short:
        for _ in range(4):
            try:
                short.post(url + "/api/generate/process")
            except httpx.TimeoutException:
                pass
    silent = socket.create_connection((dep.host, int(url.rsplit(":", 1)[1])))
    started = time.perf_counter()
    dep.stop()
    silent.close()
    assert time.perf_counter() - started < 3
    assert threading.active_count() == before
    with pytest.raises(httpx.ConnectError):
        client.get(url)


def test_command_line_starts_prints_url_and_stops_on_ctrl_c(db: str) -> None:
    env = {**os.environ, "INTERNAL_API_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stuckgen.reference", "--dsn", db, "--scenario", "healthy", "--latency", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.post(url + "/api/generate/process").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert SECRET not in err and "sha256:" in err
