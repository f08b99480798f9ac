"""Session cookies written by the real @supabase/ssr, read back by stuckgen and by the library itself.

Every cookie here is written by @supabase/ssr (signing in, refreshing) through tests/node; the
truth is the library's own read path (createServerClient + getSession over parseCookieHeader),
never stuckgen's decoder. stuckgen (``stuckgen.cookies``) and the reference deployment must read
what the library reads: the same session, or none.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from stuckgen.cookies import decode_jwt_payload, parse_cookie_header, parse_cookies, read_session
from stuckgen.findings import analyze_probe
from stuckgen.reference import ReferenceDeployment
from stuckgen.reference.cookies import REFERENCE_JWT_KEY, sign_jwt
from tests.supabase_ssr import Browser, ensure_installed, run_ops

REF = "abcdefghijklmnopqrst"
URL = f"https://{REF}.supabase.co"
KEY = f"sb-{REF}-auth-token"
USER = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
NOW = int(time.time())  # the session is issued now, so the library reads it as current
HOUR = 3600


def session(*, issued: int, padding: int = 0, sub: str = USER, ref: str = REF, marker: str = "") -> dict[str, Any]:
    """Supabase Auth's token answer (what POST /token returns), with an HS256 JWT the reference can verify."""
    metadata: dict[str, Any] = {"full_name": f"Reference User {marker}".strip()}
    if padding:
        metadata["avatar"] = "x" * padding
    token = sign_jwt({"aud": "authenticated", "iss": f"https://{ref}.supabase.co/auth/v1", "sub": sub,
                      "exp": issued + HOUR, "iat": issued, "role": "authenticated",
                      "session_id": str(uuid.uuid4()), "user_metadata": metadata}, key=REFERENCE_JWT_KEY)
    return {"access_token": token, "token_type": "bearer", "expires_in": HOUR, "expires_at": issued + HOUR,
            "refresh_token": uuid.uuid4().hex[:12],
            "user": {"id": sub, "aud": "authenticated", "role": "authenticated", "user_metadata": metadata}}


@dataclass
class Case:
    header: str
    read_at: int  # epoch seconds at which the library's read below was made
    truth: dict[str, Any]  # the library's read: session, access_token, refresh_attempted
    cookie_name: str | None = None
    chunks_written: int = 0


def signin(options: dict[str, Any] | None = None, *, padding: int = 0, issued: int = NOW, marker: str = "",
           jar: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"op": "signin", "url": URL, "options": options or {}, "jar": jar or [], "now": issued * 1000,
            "session": session(issued=issued, padding=padding, marker=marker)}


def read(header: str, at: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"op": "read", "url": URL, "options": options or {}, "header": header, "now": at * 1000}


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    """Every scenario, written by the library (3 Node runs: sign-ins, refreshes, reads)."""
    ensure_installed()
    custom_key = {"auth": {"storageKey": "genapp-auth"}}
    custom_name = {"cookieOptions": {"name": "sb-legacyref-auth-token"}}
    raw = {"cookieEncoding": "raw"}
    early = NOW - 2 * HOUR
    writes = {
        "small": signin(),
        "chunked": signin(padding=2300),  # 3 chunks, ~8.5 KB: the size of the issue
        "small-raw": signin(raw),
        "chunked-raw": signin(raw, padding=2500),
        "expired": signin(issued=early),
        "custom-storage-key": signin(custom_key),
        "custom-cookie-name": signin(custom_name),
        "big-before-refresh": signin(padding=3300, issued=early),
        "duplicate-older": signin(marker="older"),
    }
    written = dict(zip(writes, run_ops(list(writes.values()))))
    browsers: dict[str, Browser] = {}
    for name, result in written.items():
        browsers[name] = Browser()
        browsers[name].apply(result["setCookie"])

    # A refresh shrinks the 4-chunk session to 2 chunks; the library deletes .2 and .3.
    big = browsers["big-before-refresh"]
    assert [n.rsplit(".", 1)[1] for n in big.jar] == ["0", "1", "2", "3"], list(big.jar)
    refresh = {"op": "refresh", "url": URL, "options": {}, "jar": big.jar_items(), "now": NOW * 1000,
               "session": session(issued=NOW, padding=1200, marker="refreshed")}
    refreshed = run_ops([refresh])[0]
    deletes = [c.split("=")[0] for c in refreshed["setCookie"] if "Max-Age=0" in c]
    assert sorted(deletes) == [f"{KEY}.2", f"{KEY}.3"], refreshed["setCookie"]
    for name, lose in (("stale-chunk", (f"{KEY}.3",)), ("stale-chunks-contiguous", (f"{KEY}.2", f"{KEY}.3")),
                       ("refreshed-clean", ())):
        b = Browser(jar=dict(big.jar))
        b.apply(refreshed["setCookie"], lose=lose)
        browsers[name] = b

    headers: dict[str, tuple[str, int, dict[str, Any] | None]] = {
        name: (browsers[name].header(), NOW, None)
        for name in ("small", "chunked", "small-raw", "chunked-raw", "stale-chunk", "stale-chunks-contiguous",
                     "refreshed-clean")
    }
    headers["expired"] = (browsers["expired"].header(), NOW, None)
    headers["expired-at-issue"] = (browsers["expired"].header(), early + 60, None)
    headers["custom-storage-key"] = (browsers["custom-storage-key"].header(), NOW, custom_key)
    headers["custom-cookie-name"] = (browsers["custom-cookie-name"].header(), NOW, custom_name)
    chunked = browsers["chunked"]
    headers["out-of-order"] = ("; ".join(f"{n}={v}" for n, v in reversed(list(chunked.jar.items()))), NOW, None)
    # The same name twice (a host-only and a .domain cookie): the newer session first, the older after.
    headers["duplicate"] = (browsers["small"].header() + "; " + browsers["duplicate-older"].header(), NOW, None)
    # The old auth-helpers format: a URL-encoded JSON array [access_token, refresh_token, ...].
    from urllib.parse import quote
    import json
    old = session(issued=NOW)
    headers["auth-helpers-array"] = (
        f"{KEY}=" + quote(json.dumps([old["access_token"], old["refresh_token"], None, None, None])), NOW, None)

    names = list(headers)
    truths = run_ops([read(h, at, opts) for h, at, opts in headers.values()])
    cookie_names = {"custom-storage-key": "genapp-auth", "custom-cookie-name": "sb-legacyref-auth-token"}
    return {name: Case(header=headers[name][0], read_at=headers[name][1], truth=truth,
                       cookie_name=cookie_names.get(name),
                       chunks_written=len(browsers[name].jar) if name in browsers else 0)
            for name, truth in zip(names, truths)}


def ours(case: Case, *, with_name: bool = True) -> tuple[Any, Any]:
    name = case.cookie_name if with_name else None
    return (read_session(parse_cookie_header(case.header), cookie_name=name),
            parse_cookies(case.header, now=case.read_at, cookie_name=name))


@pytest.mark.parametrize("name", [
    "small", "chunked", "small-raw", "chunked-raw", "expired-at-issue", "custom-storage-key", "custom-cookie-name",
    "stale-chunk", "refreshed-clean", "out-of-order", "duplicate",
])
def test_stuckgen_reads_the_session_the_library_reads(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    assert case.truth["session"] is True, case.truth
    read_, info = ours(case)
    assert read_.token == case.truth["access_token"]
    claims = decode_jwt_payload(case.truth["access_token"]) or {}
    assert info.usable and info.subject == claims["sub"] == USER
    assert info.project_ref == REF  # from the token's issuer, whatever the cookie is called
    assert not info.expired
    assert "cookie-missing" not in {f.id for f in _cookie_findings(info, case.read_at)}


@pytest.mark.parametrize("name", ["stale-chunks-contiguous", "auth-helpers-array"])
def test_stuckgen_finds_no_session_where_the_library_finds_none(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    assert case.truth["session"] is False and not case.truth["refresh_attempted"], case.truth
    read_, info = ours(case)
    assert read_.token is None and not info.usable and info.header == ""
    assert "cookie-missing" in {f.id for f in _cookie_findings(info, case.read_at)}


def test_chunked_sessions_really_are_chunked(cases: dict[str, Case]) -> None:
    assert cases["small"].chunks_written == 1
    assert cases["chunked"].chunks_written == 3 and cases["chunked-raw"].chunks_written >= 2
    assert "base64-" in cases["chunked"].header and "%7B%22access_token%22" in cases["chunked-raw"].header
    _, info = ours(cases["chunked"])
    assert info.chunk_count == cases["chunked"].chunks_written and info.base64_prefixed


def test_expired_session_is_expired_for_both(cases: dict[str, Case]) -> None:
    truth = cases["expired"].truth
    # The library found a stored session, judged it expired and tried to refresh it (refused here).
    assert truth["session"] is False and truth["refresh_attempted"] is True
    read_, info = ours(cases["expired"])
    assert read_.token == cases["expired-at-issue"].truth["access_token"]
    assert info.usable and info.expired
    assert "cookie-expired" in {f.id for f in _cookie_findings(info, cases["expired"].read_at)}


def test_stale_chunk_after_a_refresh_is_read_as_the_library_reads_it(cases: dict[str, Case]) -> None:
    case = cases["stale-chunk"]
    assert f"{KEY}.3=" in case.header and f"{KEY}.2=" not in case.header
    read_, info = ours(case)
    assert read_.chunks == (f"{KEY}.0", f"{KEY}.1")
    assert any("stale chunk(s)" in n and ".3" in n for n in info.notes)
    assert f"{KEY}.3" not in info.header  # the probe sends what the library reads
    findings = _cookie_findings(info, case.read_at)
    assert "cookie-notes" in {f.id for f in findings} and "cookie-missing" not in {f.id for f in findings}


def test_custom_storage_key_is_found_without_the_option_and_named(cases: dict[str, Case]) -> None:
    case = cases["custom-storage-key"]
    assert case.header.startswith("genapp-auth=")
    read_, info = ours(case, with_name=False)
    assert read_.token == case.truth["access_token"] and info.usable
    assert any("--cookie-name genapp-auth" in n for n in info.notes)
    # Given the name, nothing is odd.
    _, named = ours(case)
    assert named.usable and not named.notes


def test_custom_cookie_name_takes_the_project_from_the_token(cases: dict[str, Case]) -> None:
    case = cases["custom-cookie-name"]
    assert case.header.startswith("sb-legacyref-auth-token=")
    _, info = ours(case, with_name=False)
    assert info.project_ref == REF and info.auth_cookie == "sb-legacyref-auth-token"
    assert any("named for project legacyref" in n for n in info.notes)


def test_duplicate_names_keep_the_first_and_are_flagged(cases: dict[str, Case]) -> None:
    case = cases["duplicate"]
    read_, info = ours(case)
    assert read_.token == case.truth["access_token"]
    assert info.duplicates == (KEY,)
    assert info.header.count(KEY) == 1
    dup = [f for f in _cookie_findings(info, case.read_at) if f.id == "cookie-duplicate"]
    assert dup and "keeps the first" in " ".join(dup[0].evidence) and "keeps the last" in " ".join(dup[0].evidence)


def test_auth_helpers_array_is_flagged(cases: dict[str, Case]) -> None:
    _, info = ours(cases["auth-helpers-array"])
    assert any("auth-helpers array" in p for p in info.problems)


def test_three_chunk_session_crosses_only_nginx(cases: dict[str, Case]) -> None:
    _, info = ours(cases["chunked"])
    assert 8192 < info.total_size < 16384, info.total_size
    assert not info.oversized
    f = [f for f in _cookie_findings(info, cases["chunked"].read_at) if f.id == "cookie-oversized"]
    assert len(f) == 1 and f[0].severity.name == "INFO"
    assert "nginx" in f[0].title and any("within Node.js" in e for e in f[0].evidence)


def _cookie_findings(info: Any, now: float) -> list[Any]:
    from stuckgen.findings.cookie import cookie_findings

    return cookie_findings(info, now, [], 0)


# -- the reference deployment reads cookies the way the library does -------------------------


@pytest.mark.parametrize(("name", "accepted"), [
    ("small", True), ("chunked", True), ("chunked-raw", True), ("stale-chunk", True), ("out-of-order", True),
    ("duplicate", True), ("stale-chunks-contiguous", False), ("auth-helpers-array", False), ("expired", False),
])
def test_reference_deployment_accepts_exactly_what_the_library_reads(
    cases: dict[str, Case], db: str, name: str, accepted: bool
) -> None:
    case = cases[name]
    with ReferenceDeployment(db, "healthy", secret="reference-secret-value", project_ref=REF, user_id=USER) as dep:
        with httpx.Client(timeout=5.0) as client:
            r = client.post(dep.url + dep.route, json={"generationId": str(uuid.uuid4())},
                            headers={"cookie": case.header})
    # 404 "Generation not found": the session was read and the (random) id matched nothing.
    assert (r.status_code != 401) is accepted, (r.status_code, r.text)
    assert accepted == (case.truth["session"] is True)


def test_reference_deployment_with_a_custom_storage_key(cases: dict[str, Case], db: str) -> None:
    case = cases["custom-storage-key"]
    with ReferenceDeployment(db, "healthy", secret="reference-secret-value", project_ref=REF, user_id=USER,
                             cookie_name="genapp-auth") as dep:
        with httpx.Client(timeout=5.0) as client:
            ok = client.post(dep.url + dep.route, json={"generationId": str(uuid.uuid4())},
                             headers={"cookie": case.header})
            default = client.post(dep.url + dep.route, json={"generationId": str(uuid.uuid4())},
                                  headers={"cookie": cases["small"].header})
    assert ok.status_code != 401 and default.status_code == 401


def test_probe_with_a_stale_chunk_cookie_reaches_the_app(cases: dict[str, Case], db: str) -> None:
    from stuckgen.probe import probe

    case = cases["stale-chunk"]
    info = parse_cookies(case.header, now=time.time())
    with ReferenceDeployment(db, "healthy", secret="reference-secret-value", project_ref=REF, user_id=USER) as dep:
        with httpx.Client(timeout=5.0) as client:
            matrix = probe(client, [dep.url], cookie_header=info.header, repeat=1, concurrency=1)
    findings = analyze_probe(matrix, secret=None, cookie_info=info, now=time.time())
    assert matrix.cell(dep.url, "cookie").results[0].status == 404
    assert "cookie-missing" not in {f.id for f in findings}



@pytest.mark.parametrize("name", ["stale-chunk", "duplicate", "custom-storage-key", "auth-helpers-array"])
def test_no_cookie_value_appears_in_any_output(cases: dict[str, Case], db: str, name: str, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from stuckgen.cli import app

    case = cases[name]
    values = [v for part in case.header.split("; ") for v in [part.split("=", 1)[1]] if len(v) > 8]
    values += [case.truth["access_token"]] if case.truth.get("access_token") else []
    runner = CliRunner()
    texts: list[str] = []
    env = {"STUCKGEN_COOKIE": case.header, "NO_COLOR": "1"}
    if case.cookie_name:
        env["STUCKGEN_COOKIE_NAME"] = case.cookie_name
    with ReferenceDeployment(db, "healthy", secret="reference-secret-value", project_ref=REF, user_id=USER) as dep:
        for fmt in ("json", "markdown", "table"):
            r = runner.invoke(app, ["probe-auth", "--url", dep.url, "-f", fmt, "--repeat", "1"], env=env)
            assert r.exit_code == 1, (r.exit_code, r.output)
            texts += [r.stdout, r.stderr]
        r = runner.invoke(app, ["doctor", "--url", dep.url, "--repeat", "1", "-f", "json",
                                "-o", str(tmp_path / "report.json")], env=env)
        texts += [r.stdout, r.stderr, (tmp_path / "report.json").read_text() if (tmp_path / "report.json").exists() else ""]
    blob = "\n".join(texts)
    assert "cookie" in blob
    for value in values:
        assert value not in blob and value[:24] not in blob


def test_json_document_carries_the_notes_and_duplicates(cases: dict[str, Case]) -> None:
    from stuckgen.render.probe import cookie_dict

    stale = cookie_dict(ours(cases["stale-chunk"])[1])
    dup = cookie_dict(ours(cases["duplicate"])[1])
    assert stale is not None and any("stale chunk" in n for n in stale["notes"]) and stale["chunks"] == 2
    assert dup is not None and dup["duplicates"] == [KEY]
