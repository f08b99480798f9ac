"""Review findings: answer shapes and inputs an on-call engineer meets that probe-auth and doctor misread."""

from __future__ import annotations

import socket

import httpx
import pytest
import respx
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.cookies import parse_cookies
from stuckgen.errors import ConfigError
from stuckgen.findings import Severity, analyze_probe
from stuckgen.probe import ProbeTarget, probe
from stuckgen.reference.cookies import cookie_header, make_session_cookie

URL = "https://app.example.com"
ROUTE = URL + "/api/generate/process"
SECRET = "7b9b1a0c9f3f4d2a8e6c1d0b3a5f9e2c"
NOW = 1_800_000_000.0
USER = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
COOKIE = cookie_header(make_session_cookie(USER, project_ref="abcd", now=NOW, expires_in=3600))

runner = CliRunner()


def test_a_cookie_set_by_an_answer_never_rides_along_on_later_probes() -> None:
    """Supabase middleware refreshes the session with Set-Cookie; the client's jar must not send it on.

    Otherwise the 'none' and 'wrong-secret' probes carry a session and pass: a false open-route.
    """
    sent: dict[str, list[str]] = {}

    def respond(request: httpx.Request) -> httpx.Response:
        cookie = request.headers.get("cookie", "")
        mode = "secret" if request.headers.get("x-internal-secret") == SECRET else "other"
        sent.setdefault(mode, []).append(cookie)
        if mode == "secret":
            return httpx.Response(202, json={"accepted": True})
        if "sb-abcd-auth-token" in cookie:
            return httpx.Response(404, json={"error": "Generation not found"},
                                  headers={"set-cookie": "sb-abcd-auth-token=refreshed-session; Path=/; HttpOnly"})
        return httpx.Response(401, json={"error": "Unauthorized"})

    with respx.mock() as mock:
        mock.post(ROUTE).mock(side_effect=respond)
        with httpx.Client() as client:
            matrix = probe(client, [URL], secret=SECRET, cookie_header=COOKIE, repeat=3, concurrency=1)
    findings = analyze_probe(matrix, secret=SECRET, cookie_info=parse_cookies(COOKIE, now=NOW), now=NOW)
    assert matrix.cell(URL, "none").status_counts == {401: 3}
    assert matrix.cell(URL, "wrong-secret").status_counts == {401: 3}
    assert {f.id for f in findings if f.severity >= Severity.WARNING} == set()
    # the cookie modes send exactly the cookie given, never the refreshed one from the jar
    assert all("refreshed-session" not in c for cs in sent.values() for c in cs)


@pytest.mark.parametrize("url", [
    "https://app.example.com:abc",  # port that is not a number
    "https://app.example.com:99999",  # port out of range
    "https://a..b.example.com",  # empty DNS label
    "https://xn--zz.example.com",  # invalid punycode label
])
def test_a_url_httpx_cannot_use_is_a_config_error_not_an_internal_error(url: str) -> None:
    with pytest.raises(ConfigError):
        ProbeTarget(url=url)
    r = runner.invoke(app, ["probe-auth", "--url", url, "-f", "json"], env={"INTERNAL_API_SECRET": SECRET})
    assert r.exit_code == 2, r.output
    assert "internal error" not in r.output


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_doctor_exits_3_when_the_only_thing_it_could_try_did_not_answer(monkeypatch, tmp_path) -> None:
    """No database configured and the one deployment does not answer: nothing could be reached (3), as probe-auth."""
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "STUCKGEN_BASE_URL",
                "VERCEL_TOKEN", "VERCEL_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{_refused_port()}"
    r = runner.invoke(app, ["probe-auth", "--url", url, "-f", "json", "--http-timeout", "2s"])
    assert r.exit_code == 3, r.output
    r = runner.invoke(app, ["doctor", "--url", url, "-f", "json", "--repeat", "1"])
    assert r.exit_code == 3, r.output


def test_check_with_probe_exits_3_when_the_deployment_does_not_answer(db, monkeypatch, tmp_path) -> None:
    """check's documented exit 3 is 'database or deployment unreachable': a dead --probe target is not a finding."""
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "STUCKGEN_BASE_URL",
                "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "VERCEL_TOKEN", "VERCEL_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    junit = tmp_path / "check.xml"
    r = runner.invoke(app, ["check", "-d", db, "--probe", "--url", f"http://127.0.0.1:{_refused_port()}",
                            "--junit", str(junit)])
    assert r.exit_code == 3, r.output
    assert "FAIL probe:unreachable" in r.stdout and junit.exists()  # the outputs are still written
