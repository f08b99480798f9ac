"""The Vercel client against recorded response shapes (respx), and the findings drawn from them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from stuckgen.errors import (
    ConfigError,
    ExitCode,
    InsecureTransportError,
    StuckgenError,
    UnreachableError,
    VercelUnreachableError,
)
from stuckgen.findings import Finding, Severity
from stuckgen.secrets import fingerprint
from stuckgen.vercel import (
    ValueDigest,
    VercelProject,
    analyze_evidence,
    VercelClient,
    VercelDeployment,
    VercelEnvVar,
    analyze_vercel,
)

DATA = Path(__file__).parent / "data" / "vercel"
BASE = "https://api.vercel.com"
TOKEN = "vcp_T0k3nNeverShown_8f7e6d5c4b3a2918"
PROJECT = "genapp"
TEAM = "team_acme42"
LOCAL_SECRET = "7b9b1a0c9f3f4d2a8e6c1d0b3a5f9e2c6a8d4f1b0c7e2a9d5f3c1e8b2a6d9c0f"
OTHER_SECRET = "0ther-v4lue-set-in-the-dashboard-5e4d3c2b1a09"
BYPASS = "bypassS3cretFromProtectionSettings01"
ENV_PATH = f"/v10/projects/{PROJECT}/env"
ONSET = datetime(2025, 12, 17, 15, 5, tzinfo=timezone.utc)


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=timezone.utc).timestamp() * 1000)


def recorded(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def env_json(key: str = "INTERNAL_API_SECRET", *, target: Any = ("production", "preview"),
             branch: str | None = None, created: int | None = None, updated: int | None = None,
             value: str | None = None, decrypted: bool = False, kind: str = "encrypted",
             ident: str | None = None) -> dict[str, Any]:
    """One item of /v10/projects/{id}/env, in the shape the API returns."""
    created = created if created is not None else ms(2025, 12, 1, 12)
    item: dict[str, Any] = {
        "type": kind,
        "target": list(target) if isinstance(target, tuple) else target,
        "configurationId": None,
        "comment": "",
        "id": ident or f"env_{key}_{branch or 'all'}_{target}",
        "key": key,
        "createdAt": created,
        "updatedAt": updated if updated is not None else created,
        "createdBy": "BbfRMQ0rayldOPM5XPXAe2BC",
        "updatedBy": None,
        "gitBranch": branch,
        "customEnvironmentIds": [],
        "decrypted": decrypted,
    }
    if value is not None:
        item["value"] = value
    elif kind == "encrypted":
        item["value"] = "eyJ2IjoxLCJjIjoiY2lwaGVydGV4dCJ9"
    return item


def dep_json(uid: str, *, target: str | None, created: int, ready: int | None = None,
             branch: str | None = "main", state: str = "READY") -> dict[str, Any]:
    """One item of /v6/deployments, in the shape the API returns."""
    return {
        "uid": uid,
        "name": PROJECT,
        "url": f"{PROJECT}-{uid[4:12].lower()}-acme.vercel.app",
        "created": created,
        "createdAt": created,
        "ready": ready if ready is not None else created + 90_000,
        "source": "git",
        "state": state,
        "readyState": state,
        "type": "LAMBDAS",
        "creator": {"uid": "BbfRMQ0rayldOPM5XPXAe2BC", "username": "dev"},
        "meta": {"githubCommitRef": branch} if branch else {},
        "target": target,
    }


def envs(*items: dict[str, Any]) -> list[VercelEnvVar]:
    return [v for v in (VercelEnvVar.from_json(i) for i in items) if v is not None]


def deps(*items: dict[str, Any]) -> list[VercelDeployment]:
    return [d for d in (VercelDeployment.from_json(i) for i in items) if d is not None]


def by_id(findings: list[Finding], fid: str, target: str | None = "__any__") -> list[Finding]:
    return [f for f in findings if f.id == fid and (target == "__any__" or f.target == target)]


def text_of(findings: list[Finding]) -> str:
    return "\n".join(f"{f.id} {f.title} {' '.join(f.evidence)} {f.fix} {f.target}" for f in findings)


# -- the client -------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as client:
        yield client


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def vc(http: httpx.Client, slept: list[float]) -> VercelClient:
    return VercelClient(http, token=TOKEN, project=PROJECT, team=TEAM, sleep=slept.append, clock=lambda: 1_000_000.0)


def test_list_env_sends_bearer_token_and_team_id(api: respx.MockRouter, vc: VercelClient) -> None:
    route = api.get(ENV_PATH).mock(return_value=httpx.Response(200, json=recorded("env_incident.json")))
    found = vc.list_env()
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.url.params["teamId"] == TEAM
    assert "decrypt" not in request.url.params
    assert [v.key for v in found] == ["INTERNAL_API_SECRET", "DATABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"]
    secret = found[0]
    assert secret.targets == ("production",)
    assert secret.git_branch is None
    assert secret.created_at == datetime(2025, 12, 16, 16, tzinfo=timezone.utc)
    assert secret.digest is None  # ciphertext is not the value


def test_list_env_without_team_sends_no_team_id(api: respx.MockRouter, http: httpx.Client) -> None:
    route = api.get(ENV_PATH).mock(return_value=httpx.Response(200, json={"envs": []}))
    VercelClient(http, token=TOKEN, project=PROJECT).list_env(decrypt=True)
    params = route.calls.last.request.url.params
    assert "teamId" not in params
    assert params["decrypt"] == "true"


def test_project_name_is_escaped_in_the_path(api: respx.MockRouter, http: httpx.Client) -> None:
    route = api.get("/v10/projects/my%2Fapp/env").mock(return_value=httpx.Response(200, json={"envs": []}))
    VercelClient(http, token=TOKEN, project="my/app").list_env()
    assert route.called


def test_decrypted_value_is_kept_only_as_a_digest(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(200, json={"envs": [
        env_json(value=OTHER_SECRET, decrypted=True),
        env_json("INTERNAL_API_SECRET", target=("development",), value="dev-secret-value-1234", kind="plain"),
    ]}))
    first, second = vc.list_env(decrypt=True)
    assert first.digest is not None and first.digest.fingerprint == fingerprint(OTHER_SECRET)
    assert first.digest.length == len(OTHER_SECRET)
    assert second.digest is not None  # legacy "plain" values are the value
    for var in (first, second):
        assert OTHER_SECRET not in repr(var) and "dev-secret-value-1234" not in repr(var)
        assert not hasattr(var, "value")


@pytest.mark.parametrize("status", [401, 403])
def test_token_rejected_is_a_config_error_without_the_token(
    api: respx.MockRouter, vc: VercelClient, status: int
) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(status, json={
        "error": {"code": "forbidden", "message": "Not authorized", "invalidToken": True}}))
    with pytest.raises(ConfigError) as info:
        vc.list_env()
    err = info.value
    assert "the Vercel token was rejected" in str(err)
    assert f"HTTP {status}" in str(err) and "forbidden: Not authorized" in str(err)
    assert TEAM in (err.hint or "")
    assert err.exit_code == ExitCode.USAGE
    assert TOKEN not in str(err) and TOKEN not in (err.hint or "")


def test_project_not_found_names_the_project(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(404, json={
        "error": {"code": "not_found", "message": "Project not found"}}))
    with pytest.raises(ConfigError, match=r"Vercel project 'genapp' was not found \(team team_acme42\)"):
        vc.list_env()


def test_other_client_error_is_a_config_error(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(400, json={
        "error": {"code": "bad_request", "message": "Invalid request: `teamId` should be a string"}}))
    with pytest.raises(ConfigError, match="refused to return environment variables .HTTP 400: bad_request"):
        vc.list_env()


def test_api_echoing_the_token_is_scrubbed(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(403, json={
        "error": {"code": "forbidden", "message": f"token {TOKEN} lacks scope"}}))
    with pytest.raises(ConfigError) as info:
        vc.list_env()
    assert TOKEN not in str(info.value)
    assert "***" in str(info.value)


def test_rate_limited_then_ok_waits_retry_after_once(
    api: respx.MockRouter, vc: VercelClient, slept: list[float]
) -> None:
    route = api.get(ENV_PATH).mock(side_effect=[
        httpx.Response(429, headers={"retry-after": "3"}, json={
            "error": {"code": "rate_limited", "message": "Rate limit exceeded"}}),
        httpx.Response(200, json=recorded("env_incident.json")),
    ])
    assert len(vc.list_env()) == 3
    assert route.call_count == 2
    assert slept == [3.0]


def test_rate_limit_falls_back_to_the_reset_header(
    api: respx.MockRouter, vc: VercelClient, slept: list[float]
) -> None:
    api.get(ENV_PATH).mock(side_effect=[
        httpx.Response(429, headers={"x-ratelimit-reset": str(1_000_000 + 4)}),
        httpx.Response(200, json={"envs": []}),
    ])
    vc.list_env()
    assert slept == [4.0]


def test_rate_limited_twice_is_an_unreachable_error(
    api: respx.MockRouter, vc: VercelClient, slept: list[float]
) -> None:
    route = api.get(ENV_PATH).mock(return_value=httpx.Response(429, headers={"retry-after": "1"}))
    with pytest.raises(VercelUnreachableError, match="still rate-limiting"):
        vc.list_env()
    assert route.call_count == 2 and slept == [1.0]


def test_rate_limit_with_a_long_wait_does_not_sleep(
    api: respx.MockRouter, vc: VercelClient, slept: list[float]
) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(429, headers={"retry-after": "600"}))
    with pytest.raises(VercelUnreachableError, match=r"HTTP 429.*10m00s"):
        vc.list_env()
    assert slept == []


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("timed out"), httpx.ConnectTimeout("timed out")])
def test_timeout_is_an_unreachable_error(api: respx.MockRouter, vc: VercelClient, exc: Exception) -> None:
    api.get(ENV_PATH).mock(side_effect=exc)
    with pytest.raises(VercelUnreachableError, match="did not answer in time") as info:
        vc.list_env()
    assert isinstance(info.value, UnreachableError)
    assert info.value.exit_code == ExitCode.UNREACHABLE
    assert isinstance(info.value.__cause__, httpx.TimeoutException)


def test_connect_error_is_an_unreachable_error(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(side_effect=httpx.ConnectError("[Errno -2] Name or service not known"))
    with pytest.raises(VercelUnreachableError, match=r"cannot reach the Vercel API \(api.vercel.com\).*ConnectError"):
        vc.list_env()


def test_server_error_is_an_unreachable_error(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(503, text="<html>upstream</html>"))
    with pytest.raises(VercelUnreachableError, match="answered HTTP 503"):
        vc.list_env()


def test_non_json_body_is_one_clear_line(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(
        200, headers={"content-type": "text/html; charset=utf-8"}, text="<html><body>Sign in to the proxy</body></html>"))
    with pytest.raises(VercelUnreachableError) as info:
        vc.list_env()
    message = str(info.value)
    assert "not complete JSON (text/html" in message
    assert "\n" not in message


def test_truncated_json_body(api: respx.MockRouter, vc: VercelClient) -> None:
    body = json.dumps(recorded("env_incident.json")).encode()[:150]
    api.get(ENV_PATH).mock(return_value=httpx.Response(200, content=body, headers={"content-type": "application/json"}))
    with pytest.raises(VercelUnreachableError, match=r"not complete JSON \(application/json, 150 bytes\)"):
        vc.list_env()


def test_connection_dropped_mid_body(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(side_effect=httpx.RemoteProtocolError("peer closed connection without sending complete message body"))
    with pytest.raises(VercelUnreachableError, match="RemoteProtocolError"):
        vc.list_env()


def test_body_over_the_cap_is_refused(api: respx.MockRouter, http: httpx.Client) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(200, json={"envs": [env_json() for _ in range(40)]}))
    client = VercelClient(http, token=TOKEN, project=PROJECT, max_body_bytes=2048)
    with pytest.raises(VercelUnreachableError, match="exceeded 2 KiB"):
        client.list_env()


@pytest.mark.parametrize("body", [[{"key": "A"}], {"something": "else"}])
def test_unexpected_json_shape(api: respx.MockRouter, vc: VercelClient, body: Any) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(VercelUnreachableError, match="unexpected shape"):
        vc.list_env()


def test_deployments_query_and_parse(api: respx.MockRouter, vc: VercelClient) -> None:
    route = api.get("/v6/deployments").mock(return_value=httpx.Response(200, json=recorded("deployments_preview.json")))
    found = vc.list_deployments(target="preview", limit=20)
    params = route.calls.last.request.url.params
    assert (params["projectId"], params["target"], params["limit"], params["teamId"]) == (PROJECT, "preview", "20", TEAM)
    assert [d.uid for d in found] == ["dpl_4mFeatY7pReview", "dpl_3ErrBuildPreview", "dpl_2MainPreview"]
    live = found[0]
    assert live.target == "preview"  # the API says null
    assert live.branch == "feat/session-feed" and live.is_ready
    assert live.live_since == datetime(2025, 12, 17, 15, 1, tzinfo=timezone.utc)
    assert live.https_url == "https://genapp-k3j2h1g0f-acme.vercel.app"
    assert not found[1].is_ready and found[1].ready_at is None


def test_deployments_pagination_stops_once_the_onset_deployment_is_found(
    api: respx.MockRouter, vc: VercelClient
) -> None:
    page1 = {"deployments": [dep_json("dpl_new", target="production", created=ms(2025, 12, 17, 16))],
             "pagination": {"count": 1, "next": ms(2025, 12, 17, 16) - 1, "prev": None}}
    page2 = {"deployments": [dep_json("dpl_err", target="production", created=ms(2025, 12, 17, 14), state="ERROR"),
                             dep_json("dpl_live", target="production", created=ms(2025, 12, 17, 9))],
             "pagination": {"count": 2, "next": ms(2025, 12, 17, 9) - 1, "prev": ms(2025, 12, 17, 14)}}
    route = api.get("/v6/deployments").mock(side_effect=[
        httpx.Response(200, json=page1), httpx.Response(200, json=page2),
        httpx.Response(500),  # a third request would be a bug: the onset deployment is known
    ])
    found = vc.list_deployments(target="production", live_before=ONSET)
    assert [d.uid for d in found] == ["dpl_new", "dpl_err", "dpl_live"]
    assert route.call_count == 2
    assert "until" not in route.calls[0].request.url.params
    assert route.calls[1].request.url.params["until"] == str(ms(2025, 12, 17, 16) - 1)


def test_deployments_pagination_is_bounded(api: respx.MockRouter, http: httpx.Client) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("until", "10"))
        return httpx.Response(200, json={
            "deployments": [dep_json(f"dpl_building{n}", target="preview", created=ms(2025, 12, 17, 12), state="BUILDING")],
            "pagination": {"count": 1, "next": n - 1, "prev": None}})

    route = api.get("/v6/deployments").mock(side_effect=page)
    found = VercelClient(http, token=TOKEN, project=PROJECT, max_pages=3).list_deployments(target="preview")
    assert route.call_count == 3 and len(found) == 3


def test_env_pagination_follows_next_and_deduplicates(api: respx.MockRouter, vc: VercelClient) -> None:
    shared = env_json("SHARED", ident="env_shared")
    route = api.get(ENV_PATH).mock(side_effect=[
        httpx.Response(200, json={"envs": [env_json("A", ident="env_a"), shared], "pagination": {"next": 1765000000000}}),
        httpx.Response(200, json={"envs": [shared, env_json("B", ident="env_b")], "pagination": {"next": None}}),
    ])
    assert [v.key for v in vc.list_env()] == ["A", "SHARED", "B"]
    assert route.calls[1].request.url.params["until"] == "1765000000000"


def test_gather_reads_env_values_one_by_one_the_project_and_both_targets(
    api: respx.MockRouter, vc: VercelClient
) -> None:
    listing = api.get(ENV_PATH).mock(return_value=httpx.Response(200, json=recorded("env_incident.json")))
    single = api.get(f"/v1/projects/{PROJECT}/env/Xq1k9RwL2mC4vN8d").mock(
        return_value=httpx.Response(200, json=recorded("env_single_with_value.json")))
    project = api.get(f"/v9/projects/{PROJECT}").mock(return_value=httpx.Response(200, json=recorded("project.json")))
    route = api.get("/v6/deployments").mock(side_effect=[
        httpx.Response(200, json=recorded("deployments_production.json")),
        httpx.Response(200, json=recorded("deployments_preview.json")),
    ])
    evidence = vc.gather(onset=ONSET, targets={"preview", "production", "development"},
                         value_keys={"INTERNAL_API_SECRET"})
    assert "decrypt" not in listing.calls.last.request.url.params  # deprecated: ciphertext anyway
    assert single.call_count == 1 and project.called
    assert [c.request.url.params["target"] for c in route.calls] == ["production", "preview"]
    assert len(evidence.envs) == 3 and len(evidence.deployments) == 5
    secret = next(v for v in evidence.envs if v.key == "INTERNAL_API_SECRET")
    assert secret.digest is not None and secret.digest.fingerprint == fingerprint(OTHER_SECRET)
    assert evidence.project is not None and evidence.project.production is not None
    assert evidence.project.production.uid == "dpl_0ProdOld"
    assert [b.scope for b in evidence.project.bypass].count("automation-bypass") == 2


def test_secret_value_read_through_the_single_variable_endpoint_is_compared(
    api: respx.MockRouter, vc: VercelClient
) -> None:
    # The list answers ciphertext (decrypted: false): before, no value was ever compared.
    api.get(ENV_PATH).mock(return_value=httpx.Response(200, json=recorded("env_incident.json")))
    api.get(f"/v1/projects/{PROJECT}/env/Xq1k9RwL2mC4vN8d").mock(
        return_value=httpx.Response(200, json=recorded("env_single_with_value.json")))
    api.get(f"/v9/projects/{PROJECT}").mock(return_value=httpx.Response(200, json=recorded("project.json")))
    api.get("/v6/deployments").mock(return_value=httpx.Response(200, json={"deployments": []}))
    evidence = vc.gather(value_keys={"INTERNAL_API_SECRET"})
    findings = analyze_evidence(evidence, local_secret=LOCAL_SECRET, local_bypass=BYPASS, onset=None)
    differs = by_id(findings, "vercel-secret-value-differs", "production")
    assert len(differs) == 1 and fingerprint(LOCAL_SECRET) in text_of(differs)
    assert not by_id(findings, "vercel-secret-value-unread")


def test_sensitive_value_is_never_read_and_doctor_says_it_cannot_compare(
    api: respx.MockRouter, vc: VercelClient
) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(200, json=recorded("env_visibility_secret.json")))
    single = api.get(url__regex=r"/v1/projects/.*/env/.*").mock(
        return_value=httpx.Response(200, json=recorded("env_single_sensitive.json")))
    api.get(f"/v9/projects/{PROJECT}").mock(return_value=httpx.Response(200, json=recorded("project.json")))
    api.get("/v6/deployments").mock(return_value=httpx.Response(200, json={"deployments": []}))
    evidence = vc.gather(value_keys={"INTERNAL_API_SECRET"})
    assert not single.called  # visibility "secret": no token can read it, so no request is spent on it
    findings = analyze_evidence(evidence, local_secret=LOCAL_SECRET, local_bypass=None, onset=None)
    unread = by_id(findings, "vercel-secret-value-unread")
    assert len(unread) == 1 and unread[0].severity == Severity.INFO
    assert "sensitive variable (visibility secret)" in text_of(unread)
    assert not by_id(findings, "vercel-secret-value-differs")


def test_single_variable_answer_without_value_is_unread_with_the_reason(
    api: respx.MockRouter, vc: VercelClient
) -> None:
    var = envs(env_json(ident="Xq1k9RwL2mC4vN8d"))[0]
    api.get(f"/v1/projects/{PROJECT}/env/Xq1k9RwL2mC4vN8d").mock(
        return_value=httpx.Response(200, json=recorded("env_single_sensitive.json")))
    read = vc.read_value(var)
    assert read.digest is None and "sensitive" in (read.unreadable or "")
    api.get(f"/v1/projects/{PROJECT}/env/Xq1k9RwL2mC4vN8d").mock(
        return_value=httpx.Response(403, json=recorded("error_challenge_required.json")))
    read = vc.read_value(var)
    assert read.digest is None and "challenge_required" in (read.unreadable or "")


def test_challenge_required_is_not_a_rejected_token(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(403, json=recorded("error_challenge_required.json")))
    with pytest.raises(ConfigError) as info:
        vc.list_env()
    assert "challenge" in str(info.value) and "rejected" not in str(info.value)


def test_forbidden_without_invalid_token_says_access_not_rejection(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(403, json=recorded("error_forbidden.json")))
    with pytest.raises(ConfigError) as info:
        vc.list_env()
    assert "may not read environment variables in team team_acme42" in str(info.value)
    assert "rejected" not in str(info.value)


@pytest.mark.parametrize(("team", "params"), [
    ("team_acme42", {"teamId": "team_acme42"}),
    ("acme-studio", {"slug": "acme-studio"}),
    ("BbfRMQ0rayldOPM5XPXAe2BC", {}),  # VERCEL_ORG_ID of a personal project: a user id, never sent
])
def test_account_is_sent_the_way_the_cli_sends_it(
    api: respx.MockRouter, http: httpx.Client, team: str, params: dict[str, str]
) -> None:
    route = api.get(ENV_PATH).mock(return_value=httpx.Response(200, json={"envs": []}))
    VercelClient(http, token=TOKEN, project=PROJECT, team=team).list_env()
    sent = dict(route.calls.last.request.url.params)
    assert {k: v for k, v in sent.items() if k in ("teamId", "slug")} == params


def test_env_paging_stops_when_the_cursor_does_not_move(api: respx.MockRouter, vc: VercelClient) -> None:
    stuck = {"envs": [env_json("A", ident="env_a")], "pagination": {"next": 1765000000000}}
    route = api.get(ENV_PATH).mock(return_value=httpx.Response(200, json=stuck))
    assert [v.key for v in vc.list_env()] == ["A"]
    assert route.call_count == 2  # the first page, then the one cursor; never the same request again


def test_plain_http_base_url_is_refused_except_on_loopback(http: httpx.Client) -> None:
    with pytest.raises(InsecureTransportError, match="plain HTTP"):
        VercelClient(http, token=TOKEN, project=PROJECT, base_url="http://vercel-proxy.corp.example")
    VercelClient(http, token=TOKEN, project=PROJECT, base_url="http://127.0.0.1:8080")


def test_empty_token_or_project_is_a_config_error(http: httpx.Client) -> None:
    with pytest.raises(ConfigError, match="VERCEL_TOKEN is empty"):
        VercelClient(http, token="  ", project=PROJECT)
    with pytest.raises(ConfigError, match="project is not set"):
        VercelClient(http, token=TOKEN, project="")


def test_token_read_with_a_newline_is_stripped(api: respx.MockRouter, http: httpx.Client) -> None:
    route = api.get(ENV_PATH).mock(return_value=httpx.Response(200, json={"envs": []}))
    VercelClient(http, token=TOKEN + "\n", project=PROJECT).list_env()
    assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"


def test_repr_does_not_hold_the_token(vc: VercelClient) -> None:
    assert TOKEN not in repr(vc) and PROJECT in repr(vc)


# -- parsing ----------------------------------------------------------------------------


def test_env_parsing_never_crashes_on_odd_items() -> None:
    items: list[Any] = [
        None, 42, "x", {}, {"key": ""}, {"key": None},
        {"key": "INTERNAL_API_SECRET"},
        {"key": "INTERNAL_API_SECRET", "target": "production,Preview", "createdAt": "1765900800000",
         "updatedAt": "soon", "gitBranch": "", "value": 12, "decrypted": True},
        {"key": "INTERNAL_API_SECRET", "target": [None, "preview", 3], "createdAt": True, "updatedAt": -5,
         "type": ["odd"]},
        {"key": "INTERNAL_API_SECRET", "target": {"weird": 1}, "createdAt": 1e30},
    ]
    parsed = [VercelEnvVar.from_json(i) for i in items]
    assert parsed[:6] == [None] * 6
    bare = parsed[6]
    assert bare is not None and bare.targets == () and bare.changed_at is None
    odd = parsed[7]
    assert odd is not None and odd.targets == ("production", "preview") and odd.git_branch is None
    assert odd.created_at == datetime(2025, 12, 16, 16, tzinfo=timezone.utc) and odd.updated_at is None
    assert odd.digest is None
    assert parsed[8] is not None and parsed[8].targets == ("preview",) and parsed[8].created_at is None
    assert parsed[9] is not None and parsed[9].targets == () and parsed[9].created_at is None


def test_deployment_parsing_never_crashes_on_odd_items() -> None:
    assert VercelDeployment.from_json({"name": "no id"}) is None
    assert VercelDeployment.from_json([]) is None
    d = VercelDeployment.from_json({"id": "dpl_x", "readyState": "ready", "createdAt": 1765962000000,
                                    "meta": "not a dict", "target": "Production", "url": "https://x.vercel.app/"})
    assert d is not None
    assert (d.uid, d.state, d.target, d.branch, d.url) == ("dpl_x", "READY", "production", None, "x.vercel.app")
    assert d.live_since == datetime(2025, 12, 17, 9, tzinfo=timezone.utc)
    assert d.label == "dpl_x (production)"


def test_value_digest_describes_whitespace() -> None:
    digest = ValueDigest.of(LOCAL_SECRET + "\n")
    assert str(digest) == f"65 chars, {fingerprint(LOCAL_SECRET + chr(10))}"
    assert digest.stripped_fingerprint == fingerprint(LOCAL_SECRET)
    assert digest.whitespace_problems == ("ends with a newline",)
    assert ValueDigest.of('"quoted-value"').whitespace_problems == ()


# -- analysis ---------------------------------------------------------------------------


def incident_deployments() -> list[VercelDeployment]:
    return deps(*recorded("deployments_production.json")["deployments"],
                *recorded("deployments_preview.json")["deployments"])


def analyze(env_items: list[VercelEnvVar], dep_items: list[VercelDeployment] | None = None,
            **kw: Any) -> list[Finding]:
    kw.setdefault("local_secret", LOCAL_SECRET)
    kw.setdefault("local_bypass", None)
    kw.setdefault("onset", None)
    return analyze_vercel(env_items, incident_deployments() if dep_items is None else dep_items, **kw)


def test_secret_missing_for_preview_is_the_incident() -> None:
    env_items = envs(*recorded("env_incident.json")["envs"])
    findings = analyze(env_items, onset=ONSET)
    missing = by_id(findings, "vercel-secret-missing")
    assert [f.target for f in missing] == ["preview"]
    f = missing[0]
    assert f.severity == Severity.CRITICAL
    assert findings[0] == f  # ranked first
    assert f.title == "INTERNAL_API_SECRET is not set for preview deployments"
    assert "INTERNAL_API_SECRET is set for: production (all branches)" in f.evidence
    assert any("dpl_4mFeatY7pReview" in e and "first stuck row" in e for e in f.evidence)
    assert 'printf %s "$INTERNAL_API_SECRET" | vercel env add INTERNAL_API_SECRET preview' in f.fix
    assert "vercel redeploy https://genapp-k3j2h1g0f-acme.vercel.app" in f.fix


def test_healthy_project_has_no_secret_findings() -> None:
    env_items = envs(env_json(created=ms(2025, 12, 1, 12)))
    assert analyze(env_items) == []


def test_secret_missing_everywhere_says_so() -> None:
    findings = analyze(envs(env_json("DATABASE_URL")), [])
    assert sorted(f.target or "" for f in by_id(findings, "vercel-secret-missing")) == ["preview", "production"]
    assert "INTERNAL_API_SECRET is not set for any target" in findings[0].evidence
    assert "vercel redeploy" not in findings[0].fix  # no deployment known to name


def test_targets_in_use_limit_what_is_reported() -> None:
    env_items = envs(env_json(target=("production",)))
    assert analyze(env_items, targets_in_use={"production"}) == []
    dev = analyze(env_items, targets_in_use={"production", "development"})
    assert [(f.id, f.target) for f in dev] == [("vercel-secret-missing", "development")]


def test_branch_scoped_secret() -> None:
    env_items = envs(env_json(target=("production",)),
                     env_json(target=("preview",), branch="feat/session-feed"))
    findings = analyze(env_items)
    scoped = by_id(findings, "vercel-secret-branch-scoped", "preview")
    assert len(scoped) == 1 and not by_id(findings, "vercel-secret-missing")
    f = scoped[0]
    assert f.severity == Severity.ERROR
    assert "scoped to git branch feat/session-feed only" in f.evidence[0]
    assert "dpl_2MainPreview (preview, branch main)" in f.evidence[1]
    assert "vercel env add INTERNAL_API_SECRET preview (leave the Git branch empty" in f.fix
    assert "vercel redeploy https://genapp-a1b2c3d4e-acme.vercel.app" in f.fix


def test_branch_scoped_secret_is_critical_when_the_onset_deployment_is_on_another_branch() -> None:
    env_items = envs(env_json(target=("production",)), env_json(target=("preview",), branch="main"))
    f = by_id(analyze(env_items, onset=ONSET), "vercel-secret-branch-scoped", "preview")[0]
    assert f.severity == Severity.CRITICAL
    assert any("dpl_4mFeatY7pReview (preview, branch feat/session-feed)" in e and "has no INTERNAL_API_SECRET" in e
               for e in f.evidence)


def test_changed_after_deploy_needs_a_redeploy() -> None:
    # Rotated at 10:30 on the 17th; production was built at 09:00.
    env_items = envs(env_json(created=ms(2025, 12, 1, 12), updated=ms(2025, 12, 17, 10, 30), target=("production",)),
                     env_json(target=("preview",), created=ms(2025, 12, 1, 12)))
    findings = analyze(env_items)
    changed = by_id(findings, "vercel-secret-changed-after-deploy")
    assert [f.target for f in changed] == ["production"]
    f = changed[0]
    assert f.severity == Severity.ERROR
    assert "dpl_1ProdLive" in f.title
    assert "last changed 2025-12-17 10:30:00 UTC" in f.evidence[0]
    assert "built 2025-12-17 09:00:00 UTC, 1h30m earlier" in f.evidence[1]
    assert "still has the previous value" in f.evidence[2]
    assert f.fix.endswith("vercel redeploy https://genapp-p9o8i7u6y-acme.vercel.app")


def test_added_after_deploy_says_the_build_lacks_it() -> None:
    env_items = envs(env_json(created=ms(2025, 12, 17, 15, 30)))
    f = by_id(analyze(env_items), "vercel-secret-changed-after-deploy", "preview")[0]
    assert "was added 2025-12-17 15:30:00 UTC" in f.evidence[0]
    assert "built without it" in f.evidence[2]
    assert "dpl_4mFeatY7pReview" in f.title


def test_branch_scoped_variable_is_compared_with_its_own_branch_deployment() -> None:
    # main's preview was built at 09:00, feat/session-feed's at 15:00; the main-scoped
    # variable changed at 12:00, so only main's deployment is stale.
    env_items = envs(env_json(target=("production",)),
                     env_json(target=("preview",), branch="main", updated=ms(2025, 12, 17, 12)),
                     env_json(target=("preview",)))
    changed = by_id(analyze(env_items), "vercel-secret-changed-after-deploy", "preview")
    assert len(changed) == 1 and "dpl_2MainPreview" in changed[0].title


def test_decrypted_value_differing_shows_fingerprints_only() -> None:
    env_items = envs(env_json(value=OTHER_SECRET, decrypted=True))
    findings = analyze(env_items)
    differs = by_id(findings, "vercel-secret-value-differs")
    assert sorted(f.target or "" for f in differs) == ["preview", "production"]
    f = by_id(findings, "vercel-secret-value-differs", "production")[0]
    assert f.severity == Severity.ERROR
    assert f"Vercel value (production, all branches): {len(OTHER_SECRET)} chars, {fingerprint(OTHER_SECRET)}" in f.evidence
    assert f"local INTERNAL_API_SECRET: 64 chars, {fingerprint(LOCAL_SECRET)}" in f.evidence
    assert "vercel env rm INTERNAL_API_SECRET production" in f.fix
    assert OTHER_SECRET not in text_of(findings) and LOCAL_SECRET not in text_of(findings)


def test_equal_decrypted_value_and_encrypted_values_raise_nothing() -> None:
    assert analyze(envs(env_json(value=LOCAL_SECRET, decrypted=True))) == []
    # An encrypted value that came back without decryption is ciphertext: never compared.
    assert analyze(envs(env_json(value=OTHER_SECRET, decrypted=False))) == []


def test_vercel_value_with_a_trailing_newline_is_critical() -> None:
    env_items = envs(env_json(value=LOCAL_SECRET + "\n", decrypted=True, target=("production",)),
                     env_json(target=("preview",)))
    findings = analyze(env_items)
    assert not by_id(findings, "vercel-secret-value-differs")
    f = by_id(findings, "vercel-secret-value-whitespace", "production")[0]
    assert f.severity == Severity.CRITICAL
    assert f.title == "The production value of INTERNAL_API_SECRET ends with a newline"
    assert any("even the app's own trigger gets 401" in e for e in f.evidence)
    assert any("equal to the Vercel value once the whitespace is removed" in e for e in f.evidence)
    assert "printf %s" in f.fix


def test_whitespace_fix_for_a_branch_scoped_value_keeps_the_branch() -> None:
    env_items = envs(env_json(target=("production",)),
                     env_json(target=("preview",), branch="main", value=LOCAL_SECRET + "\n", decrypted=True))
    f = by_id(analyze(env_items), "vercel-secret-value-whitespace", "preview")[0]
    assert "vercel env rm INTERNAL_API_SECRET preview main, then" in f.fix
    assert 'vercel env add INTERNAL_API_SECRET preview main;' in f.fix
    assert "vercel redeploy https://genapp-a1b2c3d4e-acme.vercel.app" in f.fix  # main's own deployment


def test_local_copy_with_the_whitespace_fault_is_named() -> None:
    f = by_id(analyze(envs(env_json(value=LOCAL_SECRET, decrypted=True)), local_secret=LOCAL_SECRET + "\n"),
              "vercel-secret-value-differs", "production")[0]
    assert any("the local copy has the fault" in e for e in f.evidence)


def test_onset_correlation_names_the_deployment_live_at_onset() -> None:
    env_items = envs(*recorded("env_incident.json")["envs"])
    findings = analyze(env_items, onset=ONSET)
    f = by_id(findings, "vercel-onset-after-deploy", "preview")[0]
    assert f.title == ("The first stuck row appeared 4m00s after deployment "
                       "dpl_4mFeatY7pReview (preview, branch feat/session-feed) went live")
    assert f.severity == Severity.WARNING
    assert "before it: dpl_2MainPreview (preview, branch main), live since 2025-12-17 09:01:30 UTC" in f.evidence
    assert any("does not apply to this deployment" in e for e in f.evidence)
    assert "vercel redeploy https://genapp-k3j2h1g0f-acme.vercel.app" in f.fix
    prod = by_id(findings, "vercel-onset-after-deploy", "production")[0]
    assert prod.severity == Severity.INFO  # six hours before: not a suspect
    assert "6h03m after deployment dpl_1ProdLive" in prod.title
    assert "vercel rollback https://genapp-z1x2c3v4b-acme.vercel.app" in prod.fix


def test_onset_ignores_failed_deployments_and_later_ones() -> None:
    dep_items = deps(dep_json("dpl_before", target="production", created=ms(2025, 12, 17, 14)),
                     dep_json("dpl_failed", target="production", created=ms(2025, 12, 17, 15), state="ERROR"),
                     dep_json("dpl_after", target="production", created=ms(2025, 12, 17, 15, 10)))
    findings = analyze(envs(env_json(created=ms(2025, 12, 1))), dep_items, onset=ONSET,
                       targets_in_use={"production"})
    f = by_id(findings, "vercel-onset-after-deploy", "production")[0]
    assert "dpl_before" in f.title
    assert any("1 READY production deployment(s) went live after the onset, newest dpl_after" in e for e in f.evidence)
    assert any("before this deployment was built" in e for e in f.evidence)


def test_naive_onset_is_utc() -> None:
    naive = ONSET.replace(tzinfo=None)
    env_items = envs(*recorded("env_incident.json")["envs"])
    assert text_of(analyze(env_items, onset=naive)) == text_of(analyze(env_items, onset=ONSET))


def test_no_deployment_before_onset_gives_no_onset_finding() -> None:
    early = ONSET - timedelta(days=30)
    assert not by_id(analyze(envs(env_json()), onset=early), "vercel-onset-after-deploy")


def project_info(raw: dict[str, Any] | None = None) -> VercelProject:
    info = VercelProject.from_json(recorded("project.json") if raw is None else raw)
    assert info is not None
    return info


def test_bypass_secret_is_read_from_the_project_not_the_variables() -> None:
    # VERCEL_AUTOMATION_BYPASS_SECRET is a system variable injected at build time: it is never
    # among the listed variables. Before, bypass-missing fired whenever protection was seen.
    env_items = envs(env_json(created=ms(2025, 12, 1)))
    assert not by_id(analyze(env_items), "vercel-bypass-missing")
    findings = analyze(env_items, protection_seen=True, project=project_info())
    assert not [f for f in findings if f.id.startswith("vercel-bypass")]
    bare = project_info({**recorded("project.json"), "protectionBypass": {}})
    f = by_id(analyze(env_items, protection_seen=True, project=bare), "vercel-bypass-missing")[0]
    assert f.severity == Severity.INFO and f.target is None
    assert "stuckgen has no bypass secret configured" in f.evidence
    assert "x-vercel-protection-bypass" in f.fix and "redeploy" in f.fix


def test_bypass_unknown_when_the_project_cannot_be_read() -> None:
    findings = analyze(envs(env_json()), protection_seen=True, project=None,
                       project_error="the Vercel token may not read the project")
    assert not by_id(findings, "vercel-bypass-missing")
    f = by_id(findings, "vercel-bypass-unknown")[0]
    assert "may not read the project" in " ".join(f.evidence)


def test_bypass_value_differs_compares_with_every_automation_secret() -> None:
    env_items = envs(env_json(created=ms(2025, 12, 1)))
    assert not by_id(analyze(env_items, local_bypass=BYPASS, project=project_info()), "vercel-bypass-value-differs")
    # The older, non-default automation secret passes Deployment Protection too.
    assert not by_id(analyze(env_items, local_bypass="0lderBypassKeptForTheCiPipeline77", project=project_info()),
                     "vercel-bypass-value-differs")
    differs = by_id(analyze(env_items, local_bypass="stale-bypass-value-9988", project=project_info()),
                    "vercel-bypass-value-differs")
    assert len(differs) == 1 and differs[0].severity == Severity.WARNING
    assert fingerprint("stale-bypass-value-9988") in differs[0].evidence[-1]
    assert fingerprint(BYPASS) in text_of(differs) and "(the one deployments get)" in text_of(differs)
    assert "injects VERCEL_AUTOMATION_BYPASS_SECRET at build time" in differs[0].fix


def test_hidden_production_variables_are_not_reported_missing() -> None:
    env_items = envs(*recorded("env_hidden_production.json")["envs"])
    findings = analyze(env_items, hidden_production=3)
    assert not by_id(findings, "vercel-secret-missing")  # was CRITICAL "not set for production"
    hidden = by_id(findings, "vercel-secret-hidden", "production")
    assert len(hidden) == 1 and hidden[0].severity == Severity.INFO
    assert "hiddenProductionEnvCount = 3" in hidden[0].evidence[0]


def test_hidden_count_is_read_from_the_listing(api: respx.MockRouter, vc: VercelClient) -> None:
    api.get(ENV_PATH).mock(return_value=httpx.Response(200, json=recorded("env_hidden_production.json")))
    listed, hidden = vc.env_listing()
    assert hidden == 3 and [v.targets for v in listed] == [("preview",)]


def test_custom_environment_variables_and_deployments() -> None:
    env_items = envs(*recorded("env_custom_environment.json")["envs"])
    dep_items = deps(*recorded("deployments_custom_environment.json")["deployments"])
    custom = next(v for v in env_items if v.id == "Cs4tAg1NgX8eNv2q")
    assert custom.targets == ("env_8staging4custom",)
    staging = next(d for d in dep_items if d.uid == "dpl_6StagingEnv")
    assert staging.target == "env_8staging4custom" and "custom environment staging" in staging.label
    findings = analyze(env_items, dep_items)
    assert "not set for any target" not in text_of(findings)
    assert not by_id(findings, "vercel-secret-missing")
    # Without its own variable the custom environment is named, and not as preview.
    only_shared = [v for v in env_items if v.id != "Cs4tAg1NgX8eNv2q"]
    missing = by_id(analyze(only_shared, dep_items), "vercel-secret-missing")
    assert [f.title for f in missing] == [
        "INTERNAL_API_SECRET is not set for custom environment staging deployments"]
    assert "vercel env add INTERNAL_API_SECRET staging" in missing[0].fix
    assert "dpl_6StagingEnv" in text_of(missing)


def test_gather_lists_custom_environment_deployments_by_slug(api: respx.MockRouter, vc: VercelClient) -> None:
    only_shared = {"envs": [e for e in recorded("env_custom_environment.json")["envs"]]}
    api.get(ENV_PATH).mock(return_value=httpx.Response(200, json=only_shared))
    api.get(f"/v9/projects/{PROJECT}").mock(return_value=httpx.Response(200, json=recorded("project.json")))
    api.get(f"/v9/projects/{PROJECT}/custom-environments").mock(
        return_value=httpx.Response(200, json=recorded("custom_environments.json")))
    staging = [d for d in recorded("deployments_custom_environment.json")["deployments"]
               if d["uid"] == "dpl_6StagingEnv"]
    for d in staging:
        d.pop("customEnvironment")  # even when the list leaves it out, the slug asked for names it

    def answer(request: httpx.Request) -> httpx.Response:
        target = request.url.params.get("target")
        return httpx.Response(200, json={"deployments": staging if target == "staging" else []})

    route = api.get("/v6/deployments").mock(side_effect=answer)
    evidence = vc.gather()
    assert [c.request.url.params["target"] for c in route.calls] == ["production", "preview", "staging"]
    dep = next(d for d in evidence.deployments if d.uid == "dpl_6StagingEnv")
    assert dep.target == "env_8staging4custom" and dep.environment == "staging"
    assert evidence.custom_environments == (("env_8staging4custom", "staging"),)


def test_custom_environment_without_deployments_is_named_not_judged() -> None:
    env_items = [v for v in envs(*recorded("env_custom_environment.json")["envs"]) if v.id == "Cs4tAg1NgX8eNv2q"]
    findings = analyze(env_items, [], custom_environments=[("env_8staging4custom", "staging")])
    text = text_of(findings)
    # Before, such a variable was "not set for any target".
    assert "INTERNAL_API_SECRET is set for: custom environment staging (all branches)" in text
    assert "env_8staging4custom" not in text
    assert not [f for f in findings if f.target == "env_8staging4custom"]


def test_staged_production_deployment_is_not_blamed_for_the_onset() -> None:
    dep_items = deps(*recorded("deployments_staged.json")["deployments"])
    assert [d.staged for d in dep_items] == [True, False, False]
    onset = datetime(2025, 12, 17, 10, 5, tzinfo=timezone.utc)  # after the staged one was READY
    f = by_id(analyze(envs(env_json(created=ms(2025, 12, 1))), dep_items, onset=onset),
              "vercel-onset-after-deploy", "production")[0]
    assert "dpl_1ProdLive" in f.title and "dpl_5ProdStaged" not in f.title


def test_rolled_back_production_deployment_is_not_the_live_one() -> None:
    dep_items = deps(*recorded("deployments_production.json")["deployments"])
    onset = datetime(2025, 12, 17, 10, 5, tzinfo=timezone.utc)
    env_items = envs(env_json(created=ms(2025, 12, 1)))
    before = by_id(analyze(env_items, dep_items, onset=onset), "vercel-onset-after-deploy", "production")[0]
    assert "dpl_1ProdLive" in before.title
    # The project now serves dpl_0ProdOld: dpl_1ProdLive was rolled back from.
    f = by_id(analyze(env_items, dep_items, onset=onset, project=project_info()),
              "vercel-onset-after-deploy", "production")[0]
    assert "dpl_0ProdOld" in f.title
    assert any("dpl_1ProdLive" in e and "rolled back" in e for e in f.evidence)


def test_custom_secret_key() -> None:
    env_items = envs(env_json("CRON_SECRET", target=("production",)))
    findings = analyze(env_items, secret_key="CRON_SECRET", targets_in_use={"production", "preview"})
    assert [(f.id, f.target) for f in findings] == [("vercel-secret-missing", "preview")]
    assert "vercel env add CRON_SECRET preview" in findings[0].fix


def test_findings_are_ranked_and_ids_are_stable() -> None:
    env_items = envs(env_json(target=("production",), value=OTHER_SECRET, decrypted=True,
                              updated=ms(2025, 12, 17, 10)))
    bare = project_info({**recorded("project.json"), "protectionBypass": {}, "targets": {}})
    findings = analyze(env_items, onset=ONSET, protection_seen=True, project=bare)
    assert [f.severity for f in findings] == sorted((f.severity for f in findings), reverse=True)
    assert {f.id for f in findings} == {
        "vercel-secret-missing", "vercel-secret-value-differs", "vercel-secret-changed-after-deploy",
        "vercel-onset-after-deploy", "vercel-bypass-missing",
    }


def test_token_and_secret_values_never_appear(api: respx.MockRouter, vc: VercelClient) -> None:
    values = [TOKEN, LOCAL_SECRET, OTHER_SECRET, BYPASS, "stale-bypass-value-9988", LOCAL_SECRET[:16],
              "0lderBypassKeptForTheCiPipeline77", "integrati0nBypassSecretForChecks55"]
    texts: list[str] = []
    # The project's bypass secrets are the keys of protectionBypass: they exist only as digests.
    info = project_info()
    texts.append(repr(info))
    texts.append(text_of(analyze(envs(env_json()), local_bypass="stale-bypass-value-9988", protection_seen=True,
                                 project=info)))
    api.get(f"/v9/projects/{PROJECT}").mock(return_value=httpx.Response(200, json=recorded("project.json")))
    texts.append(repr(vc.get_project()))
    api.get(f"/v1/projects/{PROJECT}/env/x1").mock(return_value=httpx.Response(200, json=recorded(
        "env_single_with_value.json")))
    texts.append(repr(vc.read_value(envs(env_json(ident="x1"))[0])))
    env_items = envs(env_json(target=("production",), value=OTHER_SECRET, decrypted=True, updated=ms(2025, 12, 17, 10)),
                     env_json(target=("preview",), branch="main", value=LOCAL_SECRET + "\n", decrypted=True),
                     env_json("VERCEL_AUTOMATION_BYPASS_SECRET", value="stale-bypass-value-9988", decrypted=True))
    findings = analyze(env_items, onset=ONSET, local_bypass=BYPASS, protection_seen=True)
    assert len({f.id for f in findings}) >= 6
    texts.append(text_of(findings))
    texts.extend(repr(v) for v in env_items)
    texts.append(repr(vc))
    for status in (401, 403, 404, 400, 429, 500):
        api.get(ENV_PATH).mock(return_value=httpx.Response(
            status, headers={"retry-after": "0"},
            json={"error": {"code": "x", "message": f"echo of the header: Bearer {TOKEN}"}}))
        with pytest.raises(StuckgenError) as info:
            vc.list_env()
        texts.append(f"{info.value} {info.value.hint} {info.value!r}")
    for exc in (httpx.ReadTimeout("t"), httpx.ConnectError("c")):
        api.get(ENV_PATH).mock(side_effect=exc)
        with pytest.raises(StuckgenError) as info:
            vc.list_env()
        texts.append(f"{info.value} {info.value.hint}")
    blob = "\n".join(texts)
    for value in values:
        assert value not in blob


# -- doctor against a loopback stand-in of the API ------------------------------------------


def doctor_with_vercel(tmp_path: Path, standin: Any, **flags: str) -> Any:
    from stuckgen.doctor import diagnose
    from stuckgen.settings import load_settings

    values = {"vercel_token": TOKEN, "vercel_project": PROJECT, "vercel_team": TEAM,
              "vercel_api_url": standin.url, "internal_secret": LOCAL_SECRET, **flags}
    settings = load_settings(values, environ={}, cwd=tmp_path)
    with httpx.Client(timeout=2.0) as http:
        return diagnose(settings, conn=None, db_error="not needed here", vercel_http=http)


def test_doctor_compares_the_secret_value_when_vercel_lets_the_token_read_it(tmp_path: Path) -> None:
    from tests.vercel_standin import VercelStandIn, vercel_standin
    from stuckgen.render.doctor import doctor_json_lines, doctor_text_lines

    state = VercelStandIn(token=TOKEN, values={"Xq1k9RwL2mC4vN8d": recorded("env_single_with_value.json")})
    with vercel_standin(state) as standin:
        report = doctor_with_vercel(tmp_path, standin)
    ids = [r.finding.id for r in report.ranked]
    assert "vercel-secret-value-differs" in ids and "vercel-secret-value-unread" not in ids
    assert report.vercel["secret_values_compared"] == 1 and report.vercel["secret_values_unreadable"] == 0
    assert any(p == f"/v1/projects/{PROJECT}/env/Xq1k9RwL2mC4vN8d" for p, _ in state.requests)
    assert all(q.get("teamId") == [TEAM] for _, q in state.requests)
    text = "\n".join([*doctor_text_lines(report), *doctor_json_lines(report)])
    assert "secret values: 1 compared, 0 not readable" in text
    for value in (TOKEN, LOCAL_SECRET, OTHER_SECRET, BYPASS, "0lderBypassKeptForTheCiPipeline77"):
        assert value not in text


def test_doctor_says_plainly_when_the_value_cannot_be_read(tmp_path: Path) -> None:
    from tests.vercel_standin import VercelStandIn, vercel_standin
    from stuckgen.render.doctor import doctor_text_lines

    state = VercelStandIn(token=TOKEN, values={"Xq1k9RwL2mC4vN8d": recorded("env_single_sensitive.json")})
    with vercel_standin(state) as standin:
        report = doctor_with_vercel(tmp_path, standin)
    unread = [r.finding for r in report.ranked if r.finding.id == "vercel-secret-value-unread"]
    assert len(unread) == 1 and "sensitive" in " ".join(unread[0].evidence)
    assert "secret values: 0 compared, 1 not readable" in "\n".join(doctor_text_lines(report))
