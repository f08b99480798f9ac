"""Reading answers into findings, from pinned response shapes (respx at the transport)."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable

import httpx
import pytest
import respx

from stuckgen.cookies import parse_cookies
from stuckgen.errors import ConfigError, InsecureTransportError
from stuckgen.findings import Finding, Severity, analyze_probe, rank
from stuckgen.probe import ProbeMatrix, probe
from stuckgen.reference.cookies import cookie_header, make_session_cookie

URL = "https://app.example.com"
ROUTE = URL + "/api/generate/process"
SECRET = "7b9b1a0c9f3f4d2a8e6c1d0b3a5f9e2c"
BYPASS = "bypass-0123456789abcdef"
NOW = 1_800_000_000.0
USER = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
COOKIE = cookie_header(make_session_cookie(USER, project_ref="abcd", now=NOW, expires_in=3600))
VERCEL = {"x-vercel-id": "fra1::iad1::abc-1-def"}

Responder = Callable[[httpx.Request], httpx.Response]


def unauthorized() -> httpx.Response:
    return httpx.Response(401, json={"error": "Unauthorized"}, headers=VERCEL)


def accepted(request: httpx.Request) -> httpx.Response:
    body = request.read()
    return httpx.Response(202, json={"accepted": True, "generationIds": [body.decode()[17:53]]}, headers=VERCEL)


def not_found() -> httpx.Response:
    return httpx.Response(404, json={"error": "Generation not found"}, headers=VERCEL)


def app(*, secret_ok: Callable[[], bool] = lambda: True, cookie_ok: bool = True) -> Responder:
    """The app's auth rule, as the real route answers it."""

    def respond(request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-internal-secret") == SECRET and secret_ok():
            return accepted(request)
        if "sb-abcd-auth-token" in request.headers.get("cookie", "") and cookie_ok:
            return not_found()
        return unauthorized()

    return respond


def run(
    responder: Responder,
    *,
    secret: str | None = SECRET,
    cookie: str | None = COOKIE,
    bypass: str | None = None,
    repeat: int = 2,
    url: str = URL,
) -> tuple[ProbeMatrix, list[Finding]]:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(url.rstrip("/") + "/api/generate/process").mock(side_effect=responder)
        with httpx.Client() as client:
            matrix = probe(
                client, [url], secret=secret, cookie_header=cookie, bypass_secret=bypass, repeat=repeat,
                concurrency=1, timeout=2.0,
            )
    info = parse_cookies(cookie, now=NOW) if cookie else None
    return matrix, analyze_probe(matrix, secret=secret, cookie_info=info, now=NOW + 60)


def serious(findings: list[Finding]) -> set[str]:
    return {f.id for f in findings if f.severity >= Severity.WARNING}


def test_severity_orders_critical_first() -> None:
    assert Severity.CRITICAL > Severity.ERROR > Severity.WARNING > Severity.INFO
    fs = [
        Finding(id="timeout", severity=Severity.WARNING, title="t", evidence=(), fix="f"),
        Finding(id="open-route", severity=Severity.CRITICAL, title="o", evidence=(), fix="f"),
        Finding(id="secret-rejected", severity=Severity.ERROR, title="s", evidence=(), fix="f"),
    ]
    assert [f.id for f in rank(fs)] == ["open-route", "secret-rejected", "timeout"]
    assert str(Severity.ERROR) == "error"


def test_healthy_shape_yields_nothing_serious() -> None:
    matrix, findings = run(app())
    assert serious(findings) == set()
    assert matrix.cell(URL, "secret").status_counts == {202: 2}
    assert matrix.cell(URL, "cookie").status_counts == {404: 2}
    assert [f.id for f in findings] == ["modes-skipped"]


def test_every_probe_carries_the_same_unmatched_id_and_never_an_empty_body() -> None:
    seen: list[bytes] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        return unauthorized()

    matrix, _ = run(respond)
    assert len(seen) == len(matrix.results) == 10
    assert set(seen) == {f'{{"generationId":"{matrix.probe_id}"}}'.encode()}


def test_open_route() -> None:
    _, findings = run(lambda r: accepted(r))
    assert findings[0].id == "open-route"
    assert findings[0].severity is Severity.CRITICAL
    assert "none: 202 x2 of 2" in findings[0].evidence[0]


def test_wrong_secret_accepted() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return accepted(request) if "x-internal-secret" in request.headers else unauthorized()

    _, findings = run(respond)
    assert findings[0].id == "wrong-secret-accepted"
    assert findings[0].severity is Severity.CRITICAL
    assert "open-route" not in serious(findings)


def test_secret_rejected_while_cookie_works() -> None:
    _, findings = run(app(secret_ok=lambda: False))
    assert serious(findings) == {"secret-rejected"}
    f = findings[0]
    assert f.evidence[0] == 'secret: 401 x2 of 2 (error: "Unauthorized")'
    assert "(the cookie path works)" in f.evidence[1]
    assert "32 chars, sha256:" in f.evidence[2]
    assert "redeploy" in f.fix


def test_secret_intermittent_counts_how_many_of_n() -> None:
    flip = itertools.cycle([True, False])
    _, findings = run(app(secret_ok=lambda: next(flip)), cookie=None, repeat=4)
    assert serious(findings) == {"secret-intermittent"}
    assert "401 on 2 of 4 tries" in findings[0].title


def test_secret_whitespace_alone_is_a_warning() -> None:
    _, findings = run(app(), secret=SECRET + "\n")
    assert serious(findings) == {"secret-whitespace"}
    f = next(f for f in findings if f.id == "secret-whitespace")
    assert f.severity is Severity.WARNING
    assert "ends with a newline" in f.evidence[0]


def test_secret_whitespace_with_rejection_replaces_secret_rejected() -> None:
    _, findings = run(app(secret_ok=lambda: False), secret=SECRET + "\n")
    assert serious(findings) == {"secret-whitespace"}
    assert findings[0].severity is Severity.ERROR


def test_secret_wrapped_in_quotes_is_sent_as_is_and_flagged() -> None:
    _, findings = run(app(), secret=f'"{SECRET}"')
    assert serious(findings) == {"secret-whitespace"}
    assert "wrapped in quotes" in findings[0].title


def test_deployment_protection_html_page_and_nonce() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-vercel-protection-bypass") == BYPASS:
            return app()(request)
        return httpx.Response(
            401,
            text="<!doctype html><title>Authentication Required</title>",
            headers={**VERCEL, "content-type": "text/html; charset=utf-8",
                     "set-cookie": "_vercel_sso_nonce=abc; Path=/; HttpOnly"},
        )

    matrix, findings = run(respond, bypass=BYPASS)
    assert serious(findings) == {"deployment-protection"}
    f = findings[0]
    assert "HTML 'Authentication Required' page, set-cookie _vercel_sso_nonce" in " ".join(f.evidence)
    assert "got through to the app" in f.evidence[-1]
    assert matrix.cell(URL, "bypass+secret").status_counts == {202: 2}


def test_deployment_protection_sso_redirect_without_bypass() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={**VERCEL, "location": "https://vercel.com/sso-api?url=x&nonce=y"})

    _, findings = run(respond)
    assert serious(findings) == {"deployment-protection"}
    assert "redirect to vercel.com/sso-api" in " ".join(findings[0].evidence)
    assert "--bypass-secret" in findings[0].fix


def test_redirect_cross_origin_is_recorded_not_followed() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(308, headers={**VERCEL, "location": "https://www.example.com/api/generate/process"})

    with respx.mock(assert_all_called=False) as mock:
        mock.post(ROUTE).mock(side_effect=respond)
        followed = mock.post("https://www.example.com/api/generate/process").mock(return_value=httpx.Response(200))
        with httpx.Client(follow_redirects=True) as client:
            matrix = probe(client, [URL], secret=SECRET, cookie_header=COOKIE, concurrency=2)
    assert not followed.called
    findings = analyze_probe(matrix, secret=SECRET, cookie_info=None, now=NOW)
    assert serious(findings) == {"redirect"}
    assert "crosses origins" in " ".join(findings[0].evidence)
    assert "https://www.example.com" in findings[0].fix


def test_redirect_301_turns_post_into_get() -> None:
    _, findings = run(lambda r: httpx.Response(301, headers={"location": "/api/generate/process/"}))
    f = next(f for f in findings if f.id == "redirect")
    joined = " ".join(f.evidence)
    assert "turns the POST into a GET" in joined
    assert "crosses origins" not in joined


def test_cookie_expired() -> None:
    expired = cookie_header(make_session_cookie(USER, project_ref="abcd", now=NOW - 7200, expires_in=3600))
    _, findings = run(app(cookie_ok=False), cookie=expired)
    assert serious(findings) == {"cookie-expired"}
    f = findings[0]
    assert f.severity is Severity.ERROR
    assert "expired 1h01m ago" in f.title


def test_cookie_missing_chunk() -> None:
    cookies = make_session_cookie(USER, project_ref="abcd", now=NOW, expires_in=3600, metadata_padding=1500)
    del cookies["sb-abcd-auth-token.0"]
    _, findings = run(app(cookie_ok=False), cookie=cookie_header(cookies))
    assert serious(findings) == {"cookie-missing"}
    assert any(".0 missing" in e for e in findings[0].evidence)


def test_cookie_oversized() -> None:
    big = cookie_header(make_session_cookie(USER, project_ref="abcd", now=NOW, expires_in=3600, metadata_padding=20000))
    _, findings = run(app(), cookie=big)
    assert serious(findings) == {"cookie-oversized"}


def test_cookie_rejected_although_valid() -> None:
    _, findings = run(app(cookie_ok=False))
    assert serious(findings) == {"cookie-rejected"}
    assert "ref abcd" in findings[0].fix


def test_route_missing() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="The page could not be found\n\nNOT_FOUND\n",
                              headers={**VERCEL, "x-vercel-error": "NOT_FOUND"})

    _, findings = run(respond)
    assert serious(findings) == {"route-missing"}
    assert any("x-vercel-error: NOT_FOUND" in e for e in findings[0].evidence)


def test_method_not_allowed() -> None:
    _, findings = run(lambda r: httpx.Response(405, headers={"allow": "GET"}))
    assert serious(findings) == {"method-not-allowed"}


def test_server_error_keeps_an_excerpt() -> None:
    _, findings = run(lambda r: httpx.Response(500, json={"error": "PrismaClientInitializationError"}))
    assert serious(findings) == {"server-error"}
    assert any("PrismaClientInitializationError" in e for e in findings[0].evidence)


def test_timeout_is_a_result_not_an_exception() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-internal-secret") == SECRET:
            raise httpx.ReadTimeout("timed out", request=request)
        return app()(request)

    matrix, findings = run(respond)
    assert serious(findings) == {"timeout"}
    assert matrix.cell(URL, "secret").failure_counts == {"timeout": 2}


def test_dns_and_refused_connections_are_unreachable() -> None:
    def dns(request: httpx.Request) -> httpx.Response:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError("[Errno -2] Name or service not known", request=request) from exc

    matrix, findings = run(dns)
    assert not matrix.any_answered
    assert matrix.unreachable_targets == (URL,)
    assert serious(findings) == {"unreachable"}
    assert "dns" in findings[0].title

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    matrix, _ = run(refused)
    assert {r.failure for r in matrix.results} == {"connect"}


def test_tls_failure_is_named() -> None:
    import ssl

    def tls(request: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLCertVerificationError("certificate verify failed: Hostname mismatch")
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    matrix, _ = run(tls)
    assert {r.failure for r in matrix.results} == {"tls"}


def test_huge_body_is_capped() -> None:
    matrix, _ = run(lambda r: httpx.Response(401, content=b"x" * (5 << 20)), cookie=None, secret=None, repeat=1)
    result = matrix.results[0]
    assert result.body_truncated
    assert len(result.body_excerpt) <= 200


def test_plain_http_to_a_remote_host_is_refused_with_credentials() -> None:
    with httpx.Client() as client:
        with pytest.raises(InsecureTransportError, match="plain HTTP"):
            probe(client, ["http://app.example.com"], secret=SECRET)
    matrix, _ = run(app(), url="http://app.example.com", secret=None, cookie=None, repeat=1)
    assert matrix.modes == ("none", "wrong-secret")


def test_allow_insecure_sends_anyway() -> None:
    with respx.mock() as mock:
        mock.post("http://app.example.com/api/generate/process").mock(side_effect=app())
        with httpx.Client() as client:
            matrix = probe(client, ["http://app.example.com"], secret=SECRET, allow_insecure=True)
    assert matrix.cell("http://app.example.com", "secret").status_counts == {202: 1}


def test_probe_id_hook() -> None:
    taken = "11111111-2222-4333-8444-555555555555"
    with respx.mock() as mock:
        mock.post(ROUTE).mock(side_effect=app())
        with httpx.Client() as client:
            with pytest.raises(ConfigError, match="matches a generation"):
                probe(client, [URL], probe_id=taken, id_in_use=lambda i: i == taken)
            with pytest.raises(ConfigError, match="not a UUID"):
                probe(client, [URL], probe_id="not-a-uuid")
            calls: list[str] = []
            matrix = probe(client, [URL], id_in_use=lambda i: calls.append(i) or len(calls) == 1)
    assert len(calls) == 2 and matrix.probe_id == calls[1]


def test_secret_with_an_inner_line_break_is_skipped_not_sent() -> None:
    matrix, findings = run(app(), secret="abc\ndef", cookie=None)
    assert "secret" not in matrix.modes
    assert ("secret", "the secret has characters a header cannot carry (line break or non-ASCII)") in matrix.skipped
    assert "secret-whitespace" in serious(findings)


def test_a_deleted_deployment_is_named_as_such_not_as_a_missing_route() -> None:
    import httpx
    import respx

    from stuckgen.findings import analyze_probe
    from stuckgen.probe import probe

    with respx.mock(assert_all_called=False) as mock:
        mock.post("https://gone-preview.example.com/api/generate/process").mock(return_value=httpx.Response(
            404, text="The deployment could not be found on Vercel.\n\nDEPLOYMENT_NOT_FOUND\n",
            headers={"x-vercel-error": "DEPLOYMENT_NOT_FOUND", "x-vercel-id": "fra1::abc"}))
        with httpx.Client(follow_redirects=False) as client:
            matrix = probe(client, ["https://gone-preview.example.com"], secret="s3cret-value", repeat=1)
    findings = analyze_probe(matrix, secret="s3cret-value", cookie_info=None, now=0.0)
    f = next(f for f in findings if f.id == "route-missing")
    assert "not a live deployment" in f.title and any("DEPLOYMENT_NOT_FOUND" in e for e in f.evidence)
