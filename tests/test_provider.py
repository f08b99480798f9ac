"""The provider stand-in (a real loopback server speaking Replicate's prediction API) and the client that reads it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from stuckgen.reference.provider import ProviderStandIn
from stuckgen.replicate import (
    ProviderOptions, get_prediction, sign_app, sign_standard, verify_app, verify_standard, webhook_headers,
)

TOKEN = "r8_" + "T" * 37


@pytest.fixture
def provider():
    with ProviderStandIn(token=TOKEN, run_seconds=0.05) as p:
        yield p


def _opts(provider: ProviderStandIn, **kw: Any) -> ProviderOptions:
    base: dict[str, Any] = dict(api_url=provider.url, token=TOKEN, timeout=2.0, backoff=0.01, max_backoff=0.02)
    base.update(kw)
    return ProviderOptions(**base)


@pytest.mark.parametrize("status", ["starting", "processing", "succeeded", "failed", "canceled"])
def test_every_prediction_state_is_read_back(provider: ProviderStandIn, status: str) -> None:
    pid = provider.add(status, age=900, run_time=40)
    with httpx.Client(trust_env=False) as client:
        ans = get_prediction(client, pid, _opts(provider))
    assert ans.http_status == 200 and ans.status == status and ans.answered
    assert ans.created_at is not None
    if status in ("succeeded", "failed", "canceled"):
        assert ans.completed_at is not None and (ans.completed_at - ans.created_at).total_seconds() == pytest.approx(40, abs=0.01)
    else:
        assert ans.completed_at is None
    assert ans.output_count == (1 if status == "succeeded" else 0)
    assert (ans.error is not None) == (status == "failed")


def test_unknown_prediction_is_a_404_answer(provider: ProviderStandIn) -> None:
    with httpx.Client(trust_env=False) as client:
        ans = get_prediction(client, "doesnotexist0000000000000a", _opts(provider))
    assert ans.http_status == 404 and ans.status is None and ans.answered


def test_a_wrong_token_is_refused_and_not_retried(provider: ProviderStandIn) -> None:
    pid = provider.add("succeeded")
    with httpx.Client(trust_env=False) as client:
        ans = get_prediction(client, pid, _opts(provider, token="r8_wrong"))
    assert ans.auth_refused and ans.http_status == 401 and ans.tries == 1 and not ans.answered
    assert provider.requests == {("get", 401): 1}


def test_the_app_style_token_header_is_accepted(provider: ProviderStandIn) -> None:
    # The incident app sends "Authorization: Token ..." (src/lib/models/replicate-utils.ts).
    pid = provider.add("processing")
    r = httpx.get(f"{provider.url}/predictions/{pid}", headers={"authorization": f"Token {TOKEN}"}, trust_env=False)
    assert r.status_code == 200 and r.json()["status"] == "processing"


def test_429_is_retried_honouring_retry_after(provider: ProviderStandIn) -> None:
    pid = provider.add("succeeded")
    provider.throttle(pid, 2, retry_after="0")
    with httpx.Client(trust_env=False) as client:
        ans = get_prediction(client, pid, _opts(provider, tries=3))
    assert ans.status == "succeeded" and ans.tries == 3
    assert provider.requests[("get", 429)] == 2


def test_429_past_the_tries_is_no_answer(provider: ProviderStandIn) -> None:
    pid = provider.add("succeeded")
    provider.throttle(pid, 5, retry_after="0")
    with httpx.Client(trust_env=False) as client:
        ans = get_prediction(client, pid, _opts(provider, tries=2))
    assert ans.status is None and ans.http_status == 429 and not ans.answered
    assert "rate-limited" in (ans.problem or "")


def test_a_slow_answer_times_out(provider: ProviderStandIn) -> None:
    pid = provider.add("succeeded")
    provider.slow(pid, 5.0)
    with httpx.Client(trust_env=False) as client:
        ans = get_prediction(client, pid, _opts(provider, timeout=0.2, tries=1))
    assert ans.http_status is None and not ans.answered
    assert "no answer within 0.2s" in (ans.problem or "")


def test_an_id_that_is_not_a_prediction_id_is_never_sent(provider: ProviderStandIn) -> None:
    with httpx.Client(trust_env=False) as client:
        ans = get_prediction(client, "../../v1/webhooks/default/secret", _opts(provider))
    assert ans.tries == 0 and not ans.answered and provider.requests == {}


def test_standard_webhooks_signature_matches_the_spec_vector() -> None:
    # The test vector of the Standard Webhooks specification (github.com/standard-webhooks).
    sig = sign_standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
                        timestamp=1614265330, body=b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_apps_verifier_rejects_every_standard_signature() -> None:
    # Loop-Vesper src/app/api/webhooks/replicate/route.ts splits on ',' and '=' expecting t=..,v1=<hex>.
    body = b'{"id":"abc","status":"succeeded"}'
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    h = webhook_headers("standard", secret, body)
    assert verify_standard(secret, h, body)
    assert not verify_app(secret, h["webhook-signature"], body)
    ts = int(h["webhook-timestamp"])
    assert verify_app(secret, sign_app(secret, timestamp=ts, body=body), body)
    assert not verify_app(secret, sign_app(secret, timestamp=ts, body=body), body + b" ")
    assert not verify_app(secret, sign_app(secret, timestamp=ts - 301, body=body), body, now=ts)


def test_a_created_prediction_runs_and_calls_its_webhook_signed_like_replicate(provider: ProviderStandIn) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            return

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=hook.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/api/webhooks/replicate"
        r = httpx.post(f"{provider.url}/predictions", headers={"authorization": f"Bearer {TOKEN}"}, trust_env=False,
                       json={"version": "x", "input": {"prompt": "a cat"}, "webhook": url,
                             "webhook_events_filter": ["completed"]})
        assert r.status_code == 201 and r.json()["status"] == "starting"
        assert provider.wait_idle(5)
    finally:
        hook.shutdown()
        hook.server_close()
    assert len(received) == 1
    headers, body = received[0]
    assert verify_standard(provider.webhook_secret, headers, body)
    doc = json.loads(body)
    assert doc["id"] == r.json()["id"] and doc["status"] == "succeeded" and doc["output"]
    assert [d.status for d in provider.deliveries] == [200]


def test_webhooks_go_only_to_loopback(provider: ProviderStandIn) -> None:
    r = httpx.post(f"{provider.url}/predictions", headers={"authorization": f"Bearer {TOKEN}"}, trust_env=False,
                   json={"input": {}, "webhook": "https://example.com/hook"})
    assert r.status_code == 422


def test_the_signing_secret_is_served_to_the_token_holder_only(provider: ProviderStandIn) -> None:
    ok = httpx.get(f"{provider.url}/webhooks/default/secret", headers={"authorization": f"Bearer {TOKEN}"}, trust_env=False)
    assert ok.json() == {"key": provider.webhook_secret}
    assert httpx.get(f"{provider.url}/webhooks/default/secret", trust_env=False).status_code == 401
    assert provider.webhook_secret not in repr(provider) and TOKEN not in repr(provider)
