"""The reference deployment's provider routes against the provider stand-in: submit with a webhook, the
webhook route (verifying as the app does), the sync route (owner's bearer token), and the lost-callback scenario."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import pytest

from stuckgen.cookies import session_token
from stuckgen.reference import ReferenceDeployment, Scenario
from stuckgen.reference.provider import ProviderStandIn
from stuckgen.replicate import webhook_headers

TOKEN = "r8_reference_provider_token"
SECRET = "internal-secret-for-reference"
WEBHOOKS_OPEN = Scenario(name="webhooks", description="webhooks, no signing secret", use_webhooks=True)
FAST: dict[str, Any] = {"work_seconds": 0.05, "heartbeat_interval": 0.02, "trigger_backoff": 0.01,
                        "trigger_timeout": 0.5}


def _generate(dep: ReferenceDeployment, n: int) -> list[str]:
    with httpx.Client(trust_env=False, cookies=dep.session_cookie()) as c:
        return [c.post(dep.url + "/api/generate", json={"prompt": "p"}).json()["id"] for _ in range(n)]


def _rows(db: str) -> dict[str, tuple[str, dict[str, Any], int]]:
    with psycopg.connect(db) as c:
        return {r[0]: (r[1], r[2], r[3]) for r in c.execute(
            "SELECT g.id::text, g.status, g.parameters, (SELECT count(*) FROM outputs o WHERE o.generation_id = g.id) "
            "FROM generations g")}


def _access_token(dep: ReferenceDeployment, user_id: str | None = None) -> str:
    _, token, _ = session_token(dep.session_cookie(user_id))
    assert token
    return token


def test_lost_callback_every_real_signature_is_rejected_and_rows_wait(db):
    with ProviderStandIn(token=TOKEN, run_seconds=0.05) as provider, \
            ReferenceDeployment(db, "lost-callback", secret=SECRET, provider_url=provider.url,
                                provider_token=TOKEN, **FAST) as dep:
        ids = _generate(dep, 3)
        assert provider.wait_idle(10)
        counters = dep.counters
    rows = _rows(db)
    assert [d.status for d in provider.deliveries] == [401, 401, 401]
    for gid in ids:
        status, params, outputs = rows[gid]
        assert status == "processing" and outputs == 0
        assert params["lastStep"] == "webhook:submitted" and params["webhookActive"] is True
        assert provider.get(params["replicatePredictionId"]).status == "succeeded"
    assert counters.accepted == {}  # the process route was never called: the webhook path was taken


def test_an_accepted_webhook_settles_rows_with_outputs(db):
    with ProviderStandIn(token=TOKEN, run_seconds=0.05) as provider, \
            ReferenceDeployment(db, WEBHOOKS_OPEN, secret=SECRET, provider_url=provider.url,
                                provider_token=TOKEN, **FAST) as dep:
        ids = _generate(dep, 2)
        assert provider.wait_idle(10)
    rows = _rows(db)
    assert [d.status for d in provider.deliveries] == [200, 200]
    for gid in ids:
        status, params, outputs = rows[gid]
        assert status == "completed" and outputs == 1 and "webhookCompletedAt" in params


def test_a_replay_signed_the_apps_way_passes_and_the_providers_way_does_not(db):
    secret = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLXRlc3Rz"
    with ProviderStandIn(token=TOKEN, run_seconds=0.05) as provider, \
            ReferenceDeployment(db, "lost-callback", secret=SECRET, provider_url=provider.url,
                                provider_token=TOKEN, webhook_secret=secret, **FAST) as dep:
        (gid,) = _generate(dep, 1)
        assert provider.wait_idle(10)
        pid = _rows(db)[gid][1]["replicatePredictionId"]
        body = json.dumps(provider.get(pid).document()).encode()
        with httpx.Client(trust_env=False) as c:
            standard = c.post(dep.url + "/api/webhooks/replicate", content=body,
                              headers=webhook_headers("standard", secret, body))
            assert standard.status_code == 401 and standard.json() == {"error": "Invalid signature"}
            assert _rows(db)[gid][0] == "processing"
            app_style = c.post(dep.url + "/api/webhooks/replicate", content=body,
                               headers=webhook_headers("app", secret, body))
            again = c.post(dep.url + "/api/webhooks/replicate", content=body,
                           headers=webhook_headers("app", secret, body))
    assert app_style.status_code == 200 and app_style.json()["status"] == "completed"
    assert again.json() == {"received": True, "skipped": True, "reason": "Already completed"}
    status, params, outputs = _rows(db)[gid]
    assert status == "completed" and outputs == 1


def test_the_sync_route_settles_for_the_owner_only(db):
    with ProviderStandIn(token=TOKEN, run_seconds=0.05) as provider, \
            ReferenceDeployment(db, "lost-callback", secret=SECRET, provider_url=provider.url,
                                provider_token=TOKEN, **FAST) as dep:
        done, failed, running = _generate(dep, 3)
        assert provider.wait_idle(10)
        rows = _rows(db)
        # Make the second prediction a failure and the third one still running at the provider.
        for gid, status in ((failed, "failed"), (running, "processing")):
            provider.add(status, prediction_id=rows[gid][1]["replicatePredictionId"])
        owner = {"authorization": f"Bearer {_access_token(dep)}"}
        stranger = {"authorization": f"Bearer {_access_token(dep, '00000000-0000-4000-8000-000000000001')}"}
        with httpx.Client(trust_env=False) as c:
            sync = lambda gid, h: c.post(f"{dep.url}/api/generations/{gid}/sync", headers=h)  # noqa: E731
            assert sync(done, {}).status_code == 401
            assert sync(done, stranger).status_code == 403
            assert sync("8d7e1f6e-0000-4000-8000-000000000000", owner).status_code == 404
            ok = sync(done, owner)
            assert ok.status_code == 200 and ok.json()["synced"] is True and ok.json()["status"] == "completed"
            assert sync(done, owner).json()["synced"] is False  # terminal now
            f = sync(failed, owner).json()
            assert f["status"] == "failed" and f["synced"] is True
            r = sync(running, owner).json()
            assert r["synced"] is False and r["replicateStatus"] == "processing"
    rows = _rows(db)
    assert rows[done][0] == "completed" and rows[done][2] == 1 and rows[done][1]["syncReason"] == "manual"
    assert rows[failed][0] == "failed" and "CUDA" in rows[failed][1]["error"]
    assert rows[running][0] == "processing"
