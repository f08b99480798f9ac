"""Answers Vercel gives instead of the app: platform errors (x-vercel-error) and walls that are not the app's 401.

The shapes are those of https://vercel.com/docs/errors (status and x-vercel-error per code; see
tests/data/vercel/SOURCES.md); respx pins them exactly.
"""

from __future__ import annotations

import httpx
import pytest
import respx

from stuckgen.findings import Finding, Severity, analyze_probe
from stuckgen.probe import probe

URL = "https://app.example.com"
ROUTE = URL + "/api/generate/process"
SECRET = "7b9b1a0c9f3f4d2a8e6c1d0b3a5f9e2c"
NOW = 1_800_000_000.0
VERCEL_ID = "fra1::abcde-1765962000000-0123456789ab"


def run(responder) -> list[Finding]:
    with respx.mock() as mock:
        mock.post(ROUTE).mock(side_effect=responder)
        with httpx.Client() as client:
            matrix = probe(client, [URL], secret=SECRET, repeat=2, concurrency=1)
    return analyze_probe(matrix, secret=SECRET, cookie_info=None, now=NOW)


def platform_page(status: int, code: str):
    def respond(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=f"{status}: {code}\nCode: {code}\nID: {VERCEL_ID}\n",
                              headers={"content-type": "text/plain; charset=utf-8", "x-vercel-error": code,
                                       "x-vercel-id": VERCEL_ID})
    return respond


@pytest.mark.parametrize(("status", "code", "words"), [
    (503, "DEPLOYMENT_PAUSED", "paused"),
    (402, "DEPLOYMENT_DISABLED", "billing"),
    (410, "DEPLOYMENT_DELETED", "deleted"),
    (403, "DEPLOYMENT_BLOCKED", "blocked"),
])
def test_platform_errors_are_named_not_read_as_app_failures(status: int, code: str, words: str) -> None:
    findings = run(platform_page(status, code))
    ids = {f.id for f in findings if f.severity >= Severity.WARNING}
    assert ids == {"platform-error"}, [(f.id, f.title) for f in findings]
    f = next(f for f in findings if f.id == "platform-error")
    assert code in f.title and words in (f.title + f.fix).lower()
    assert "function's logs" not in f.fix or code == "DEPLOYMENT_PAUSED"
    assert not {"server-error", "unexpected-answer", "secret-rejected", "open-route"} & {x.id for x in findings}


def test_an_html_wall_without_known_markers_is_protection_not_a_rejected_secret() -> None:
    # Password protection / Trusted IPs: an HTML 401 from Vercel, no SSO nonce, no "Authentication Required".
    def respond(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="<!doctype html><title>Password required</title><form>...</form>",
                              headers={"content-type": "text/html; charset=utf-8", "x-vercel-id": VERCEL_ID})
    findings = run(respond)
    ids = {f.id for f in findings if f.severity >= Severity.WARNING}
    assert "secret-rejected" not in ids and "deployment-protection" in ids
    f = next(f for f in findings if f.id == "deployment-protection")
    assert any("password protection or Trusted IPs" in e for e in f.evidence)


def test_firewall_answer_is_a_wall() -> None:
    def respond(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, text="<!doctype html><title>Security Checkpoint</title>",
                              headers={"content-type": "text/html; charset=utf-8", "x-vercel-id": VERCEL_ID,
                                       "x-vercel-mitigated": "challenge"})
    findings = run(respond)
    f = next(f for f in findings if f.id == "deployment-protection")
    assert any("x-vercel-mitigated: challenge" in e for e in f.evidence)
    assert not {"secret-rejected", "unexpected-answer"} & {x.id for x in findings}


def test_the_apps_own_json_401_is_still_a_rejected_secret() -> None:
    def respond(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "Unauthorized"}, headers={"x-vercel-id": VERCEL_ID})
    findings = run(respond)
    assert "secret-rejected" in {f.id for f in findings}
    assert "deployment-protection" not in {f.id for f in findings}
