"""probe-auth against the real reference deployment: each scenario yields exactly its finding."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from rich.console import Console

from stuckgen.cookies import parse_cookies
from stuckgen.findings import Finding, Severity, analyze_probe
from stuckgen.probe import MODE_NAMES, ProbeMatrix, probe
from stuckgen.reference import SCENARIOS, ReferenceDeployment
from stuckgen.reference.cookies import cookie_header
from stuckgen.render.probe import PROBE_SCHEMA, findings_table, probe_json_lines, probe_markdown_lines, probe_table

SECRET = "7b9b1a0c9f3f4d2a8e6c1d0b3a5f9e2c6a8d4f1b0c7e2a9d5f3c1e8b2a6d9c0f"
BYPASS = "bypass-5f3c1e8b2a6d9c0f"
FAST = {"work_seconds": 0.05, "heartbeat_interval": 0.02, "trigger_backoff": 0.01, "trigger_timeout": 0.3,
        "hang_seconds": 10}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def run(
    dep: ReferenceDeployment, client: httpx.Client, *, secret: str = SECRET, bypass: str | None = None,
    repeat: int = 4, concurrency: int = 10, timeout: float = 5.0,
) -> tuple[ProbeMatrix, list[Finding], str]:
    # A generous timeout: on a loaded machine 0.5 s made healthy scenarios report a timeout.
    # Only the scenario whose requests hang on purpose needs a short one.
    cookie = cookie_header(dep.session_cookie())
    matrix = probe(client, [dep.url], secret=secret, cookie_header=cookie, bypass_secret=bypass,
                   repeat=repeat, concurrency=concurrency, timeout=timeout)
    now = time.time()
    findings = analyze_probe(matrix, secret=secret, cookie_info=parse_cookies(cookie, now=now), now=now)
    return matrix, findings, cookie


def serious(findings: list[Finding]) -> set[str]:
    return {f.id for f in findings if f.severity >= Severity.WARNING}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_names_exactly_its_finding(db: str, client: httpx.Client, name: str) -> None:
    scenario = SCENARIOS[name]
    # The operator pulled the deployment's value, newline included.
    secret = SECRET + "\n" if name == "secret-whitespace" else SECRET
    with ReferenceDeployment(db, scenario, secret=SECRET, bypass_secret=BYPASS, **FAST) as dep:
        # Intermittent instances alternate per request: probe one at a time so
        # the secret mode meets both kinds deterministically.
        matrix, findings, _ = run(dep, client, secret=secret, concurrency=1 if name == "intermittent" else 10,
                                  timeout=0.5 if scenario.timeout_fraction else 5.0)
        dep.wait_idle(5)
        counters = dep.counters
    expected = {scenario.expected_finding} if scenario.expected_finding else set()
    assert serious(findings) == expected, [(f.id, f.title) for f in findings]
    assert matrix.any_answered
    # The probe id matched no row: nothing was processed.
    assert counters.started == {}
    assert counters.errors == ()


def test_healthy_answers_match_the_app_rule(db: str, client: httpx.Client) -> None:
    with ReferenceDeployment(db, "healthy", secret=SECRET, **FAST) as dep:
        matrix, findings, _ = run(dep, client, repeat=2)
    summary = {cell.mode: cell.summary() for cell in matrix.cells()}
    assert summary == {
        "none": "401 x2", "wrong-secret": "401 x2", "secret": "202 x2", "cookie": "404 x2", "secret+cookie": "202 x2",
    }
    assert all(r.vercel_id for r in matrix.results)
    assert [f.id for f in findings] == ["modes-skipped"]


def test_protected_with_bypass_reaches_the_app_behind_the_wall(db: str, client: httpx.Client) -> None:
    with ReferenceDeployment(db, "protected", secret=SECRET, bypass_secret=BYPASS, **FAST) as dep:
        matrix, findings, _ = run(dep, client, bypass=BYPASS, repeat=2)
    assert serious(findings) == {"deployment-protection"}
    assert matrix.cell(dep.url, "bypass+secret").summary() == "202 x2"
    assert matrix.cell(dep.url, "secret").summary() == "401 x2"
    assert all(r.html_auth_page and r.sso_nonce for r in matrix.cell(dep.url, "secret").results)


def test_redirect_target_is_recorded(db: str, client: httpx.Client) -> None:
    with ReferenceDeployment(db, "redirect", secret=SECRET, **FAST) as dep:
        matrix, findings, _ = run(dep, client, repeat=1)
        second = dep.redirect_url
    assert {r.location for r in matrix.results} == {f"{second}/api/generate/process"}
    assert second in findings[0].fix


def test_no_target_answering_is_visible_on_the_matrix(client: httpx.Client) -> None:
    with ReferenceDeployment("dbname=unused", "healthy", secret=SECRET) as dep:
        url = dep.url
    matrix = probe(client, [url], secret=SECRET, timeout=0.5)
    assert not matrix.any_answered
    assert {r.failure for r in matrix.results} == {"connect"}


def render_everything(matrix: ProbeMatrix, findings: list[Finding], cookie: str) -> dict[str, str]:
    now = time.time()
    info = parse_cookies(cookie, now=now)
    console = Console(file=io.StringIO(), record=True, width=200)
    console.print(probe_table(matrix))
    console.print(findings_table(findings))
    return {
        "json": "\n".join(probe_json_lines(matrix, findings, cookie_info=info, now=now)),
        "markdown": "\n".join(probe_markdown_lines(matrix, findings)),
        "table": console.export_text(),
        "repr": repr(matrix) + repr(findings) + repr(info),
    }


@pytest.mark.parametrize("scenario", ["protected", "secret-whitespace", "redirect"])
def test_no_credential_appears_in_any_output(db: str, client: httpx.Client, scenario: str) -> None:
    secret = SECRET + "\n" if scenario == "secret-whitespace" else SECRET
    with ReferenceDeployment(db, scenario, secret=SECRET, bypass_secret=BYPASS, **FAST) as dep:
        matrix, findings, cookie = run(dep, client, secret=secret, bypass=BYPASS, repeat=2)
    assert set(matrix.modes) == set(MODE_NAMES)  # every mode ran
    outputs = render_everything(matrix, findings, cookie)
    values = [SECRET, BYPASS] + [part.split("=", 1)[1] for part in cookie.split("; ")]
    for kind, text in outputs.items():
        for value in values:
            assert value not in text, kind
            assert value[:24] not in text, kind
    assert "sha256:" in outputs["json"]


def test_json_document_shape(db: str, client: httpx.Client) -> None:
    with ReferenceDeployment(db, "secret-missing", secret=SECRET, **FAST) as dep:
        matrix, findings, cookie = run(dep, client, repeat=3)
    doc = json.loads("\n".join(probe_json_lines(matrix, findings, cookie_info=parse_cookies(cookie, now=time.time()))))
    assert doc["schema"] == PROBE_SCHEMA
    assert doc["secret"].startswith("64 chars, sha256:")
    assert doc["worst"] == "error"
    cells = {c["mode"]: c for c in doc["targets"][0]["cells"]}
    assert cells["secret"]["statuses"] == {"401": 3}
    assert cells["secret"]["errors"] == {"Unauthorized": 3}
    assert cells["secret"]["latency_ms"]["max"] >= cells["secret"]["latency_ms"]["median"]
    assert cells["cookie"]["statuses"] == {"404": 3}
    assert doc["findings"][0]["id"] == "secret-rejected"
    assert doc["cookie"]["chunks"] == 1 and doc["cookie"]["expires_in_seconds"] > 0
    assert {s["mode"] for s in doc["skipped"]} == {m for m in MODE_NAMES if m.startswith("bypass")}
    markdown = "\n".join(probe_markdown_lines(matrix, findings))
    assert "| http://127.0.0.1:" in markdown and "### ERROR `secret-rejected`" in markdown


def test_progress_is_reported_from_the_calling_thread(db: str, client: httpx.Client) -> None:
    seen: list[tuple[int, int]] = []
    with ReferenceDeployment(db, "healthy", secret=SECRET, **FAST) as dep:
        probe(client, [dep.url], secret=SECRET, repeat=3, on_progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 9) and seen[-1] == (9, 9)


def test_two_targets_side_by_side(db: str, client: httpx.Client) -> None:
    with ReferenceDeployment(db, "healthy", secret=SECRET, **FAST) as prod, \
            ReferenceDeployment(db, "secret-missing", secret=SECRET, **FAST) as preview:
        cookie = cookie_header(prod.session_cookie())
        matrix = probe(client, [prod.url, preview.url], secret=SECRET, cookie_header=cookie, repeat=2)
    findings = analyze_probe(matrix, secret=SECRET, cookie_info=None, now=time.time())
    assert [(f.id, f.target) for f in findings if f.severity >= Severity.WARNING] == [("secret-rejected", preview.url)]
