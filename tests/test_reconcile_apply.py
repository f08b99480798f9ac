"""`reconcile --apply`: lost callbacks settled through the app (sync route or replayed webhook), audited and verified."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference import ReferenceDeployment
from stuckgen.reference.provider import ProviderStandIn
from stuckgen.reference.seed import backdate

runner = CliRunner()
TOKEN = "r8_apply_token_never_printed_42"
WEBHOOK_SECRET = "whsec_YXBwbHktd2ViaG9vay1zZWNyZXQtNDI="
FAST: dict[str, Any] = {"work_seconds": 0.05, "heartbeat_interval": 0.02, "trigger_backoff": 0.01,
                        "trigger_timeout": 0.5}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "REPLICATE_API_TOKEN", "REPLICATE_API_KEY",
                "REPLICATE_WEBHOOK_SECRET", "STUCKGEN_REPLICATE_API_URL", "STUCKGEN_MAP", "STUCKGEN_COOKIE",
                "STUCKGEN_BASE_URL", "STUCKGEN_AUDIT_FILE", "INTERNAL_API_SECRET", "VERCEL_AUTOMATION_BYPASS_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def incident(db) -> Iterator[tuple[str, ProviderStandIn, ReferenceDeployment, list[str]]]:
    """The lost-callback incident: three rows the provider finished, every callback rejected, an hour ago."""
    with ProviderStandIn(token=TOKEN, run_seconds=0.05) as provider, \
            ReferenceDeployment(db, "lost-callback", secret="internal", provider_url=provider.url,
                                provider_token=TOKEN, webhook_secret=WEBHOOK_SECRET, **FAST) as dep:
        with httpx.Client(trust_env=False, cookies=dep.session_cookie()) as c:
            ids = [c.post(dep.url + "/api/generate", json={"prompt": "p"}).json()["id"] for _ in range(3)]
        assert provider.wait_idle(10)
        assert [d.status for d in provider.deliveries] == [401, 401, 401]
        with psycopg.connect(db, autocommit=True) as conn:
            backdate(conn, 3600)
        yield db, provider, dep, ids


def _env(db: str, provider: ProviderStandIn, dep: ReferenceDeployment, **extra: str) -> dict[str, str]:
    return {"STUCKGEN_DATABASE_URL": db, "REPLICATE_API_TOKEN": TOKEN, "STUCKGEN_REPLICATE_API_URL": provider.url,
            "STUCKGEN_BASE_URL": dep.url, **extra}


def _cookie(dep: ReferenceDeployment, user: str | None = None) -> str:
    return "; ".join(f"{k}={v}" for k, v in dep.session_cookie(user).items())


def _rows(db: str) -> dict[str, tuple[str, int]]:
    with psycopg.connect(db) as c:
        return {r[0]: (r[1], r[2]) for r in c.execute(
            "SELECT g.id::text, g.status, (SELECT count(*) FROM outputs o WHERE o.generation_id = g.id) "
            "FROM generations g")}


def _audit(db: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(db) as c:
        if not c.execute("SELECT to_regclass('stuckgen.audit') IS NOT NULL").fetchone()[0]:
            return []
        return [(r[0], r[1], r[2]) for r in c.execute("SELECT action, row_id, outcome FROM stuckgen.audit")]


def test_without_yes_it_is_a_dry_run_that_sends_nothing(incident):
    db, provider, dep, ids = incident
    before = _rows(db)
    r = runner.invoke(app, ["reconcile", "--apply", "-f", "json"], env=_env(db, provider, dep, STUCKGEN_COOKIE=_cookie(dep)))
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["dry_run"] and {row["outcome"] for row in doc["rows"]} == {"would-settle"} and len(doc["rows"]) == 3
    assert _rows(db) == before and _audit(db) == []
    assert "dry run: would settle 3 row(s)" in r.stderr


def test_the_sync_route_settles_every_lost_callback_and_the_change_is_verified(incident):
    db, provider, dep, ids = incident
    cookie = _cookie(dep)
    r = runner.invoke(app, ["reconcile", "--apply", "--via", "sync", "--yes", "-f", "json"],
                      env=_env(db, provider, dep, STUCKGEN_COOKIE=cookie))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {row["id"]: row["outcome"] for row in doc["rows"]} == {i: "settled" for i in ids}
    assert all(row["change"] == "processing -> completed, outputs 0 -> 1" for row in doc["rows"])
    assert _rows(db) == {i: ("completed", 1) for i in ids}
    assert sorted(_audit(db)) == sorted(("reconcile", i, "settled") for i in ids)
    assert "stuckgen wrote nothing to the rows" in r.stderr
    for secret in (TOKEN, cookie.split("=", 1)[1][:40]):
        assert secret not in r.output
    # A second run finds nothing stuck: nothing left to settle, and nothing is sent.
    again = runner.invoke(app, ["reconcile", "--apply", "--yes", "-f", "json"],
                          env=_env(db, provider, dep, STUCKGEN_COOKIE=cookie))
    assert again.exit_code == 0 and json.loads(again.stdout)["rows"] == []


def test_the_sync_route_refuses_rows_of_another_user(incident):
    db, provider, dep, ids = incident
    r = runner.invoke(app, ["reconcile", "--apply", "--via", "sync", "--yes", "-f", "json"],
                      env=_env(db, provider, dep, STUCKGEN_COOKIE=_cookie(dep, "00000000-0000-4000-8000-00000000abcd")))
    assert r.exit_code == 1, r.output
    assert {row["outcome"] for row in json.loads(r.stdout)["rows"]} == {"forbidden"}
    assert {s for s, _ in _rows(db).values()} == {"processing"}


def test_a_replay_signed_as_the_provider_signs_is_rejected_and_stops_the_run(incident):
    # The app's own verifier cannot read a Standard Webhooks signature: the cause of this incident.
    db, provider, dep, ids = incident
    r = runner.invoke(app, ["reconcile", "--apply", "--via", "webhook", "--yes", "-f", "json", "--concurrency", "1"],
                      env=_env(db, provider, dep, REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET))
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    outcomes = sorted(row["outcome"] for row in doc["rows"])
    assert outcomes == ["auth-rejected", "not-sent", "not-sent"]
    assert "rejected the signature" in doc["stopped"]
    assert {s for s, _ in _rows(db).values()} == {"processing"}
    assert WEBHOOK_SECRET not in r.output


def test_a_replay_signed_the_way_the_app_verifies_settles_the_rows(incident):
    db, provider, dep, ids = incident
    pid = None
    with psycopg.connect(db) as c:
        pid = c.execute("SELECT parameters->>'replicatePredictionId' FROM generations WHERE id = %s",
                        (ids[0],)).fetchone()[0]
    provider.add("failed", prediction_id=pid)  # this one failed at the provider
    r = runner.invoke(app, ["reconcile", "--apply", "--via", "webhook", "--webhook-signature", "app", "--yes",
                            "-f", "json"], env=_env(db, provider, dep, REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET))
    assert r.exit_code == 0, r.output
    rows = {row["id"]: row for row in json.loads(r.stdout)["rows"]}
    assert rows[ids[0]]["verdict"] == "provider-failed-callback-lost" and rows[ids[0]]["change"] == "processing -> failed"
    assert _rows(db) == {ids[0]: ("failed", 0), ids[1]: ("completed", 1), ids[2]: ("completed", 1)}


def test_rows_still_running_at_the_provider_are_left_alone(incident):
    db, provider, dep, ids = incident
    with psycopg.connect(db) as c:
        pids = [c.execute("SELECT parameters->>'replicatePredictionId' FROM generations WHERE id = %s",
                          (i,)).fetchone()[0] for i in ids]
    for pid in pids:
        provider.add("processing", prediction_id=pid)
    r = runner.invoke(app, ["reconcile", "--apply", "--yes", "-f", "json"],
                      env=_env(db, provider, dep, STUCKGEN_COOKIE=_cookie(dep)))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["rows"] == [] and doc["left"] == {"provider-still-running": 3}
    assert "left alone: 3 provider-still-running" in r.stderr


def test_sync_without_a_session_cookie_is_a_configuration_error(incident):
    db, provider, dep, _ = incident
    r = runner.invoke(app, ["reconcile", "--apply", "--via", "sync", "--yes"], env=_env(db, provider, dep))
    assert r.exit_code == 2 and "owner" in r.stderr and r.stdout == ""


def test_retrigger_via_sync_uses_the_apps_recovery_route_with_retriggers_safety(incident):
    db, provider, dep, ids = incident
    env = {"STUCKGEN_DATABASE_URL": db, "STUCKGEN_BASE_URL": dep.url, "STUCKGEN_COOKIE": _cookie(dep)}
    dry = runner.invoke(app, ["retrigger", "--via", "sync", "--all-stuck", "--class", "awaiting-webhook", "-f", "json"],
                        env=env)
    assert dry.exit_code == 1, dry.output
    assert {row["outcome"] for row in json.loads(dry.stdout)["rows"]} == {"would-settle"}
    assert {s for s, _ in _rows(db).values()} == {"processing"}
    # No provider token is needed: the app asks the provider itself.
    r = runner.invoke(app, ["retrigger", "--via", "sync", *ids, "--yes", "-f", "json"], env=env)
    assert r.exit_code == 0, r.output
    assert {row["outcome"] for row in json.loads(r.stdout)["rows"]} == {"settled"}
    assert _rows(db) == {i: ("completed", 1) for i in ids}
    assert sorted(a[2] for a in _audit(db)) == ["settled"] * 3


def test_retrigger_via_sync_leaves_out_rows_without_a_prediction_id(db):
    from stuckgen.reference.seed import seed

    with ReferenceDeployment(db, "healthy", secret="internal", **FAST) as dep:
        with psycopg.connect(db, autocommit=True) as conn:
            rows = seed(conn, {"never-started": 2}, min_age=600, max_age=900)
        env = {"STUCKGEN_DATABASE_URL": db, "STUCKGEN_BASE_URL": dep.url, "STUCKGEN_COOKIE": _cookie(dep)}
        r = runner.invoke(app, ["retrigger", "--via", "sync", "--all-stuck", "--yes", "-f", "json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == []
    assert "2 selected row(s) carry no provider prediction id" in r.stderr


def test_doctor_ranks_the_lost_callback_incident_and_the_probe_names_its_cause(incident):
    db, provider, dep, ids = incident
    env = _env(db, provider, dep, REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET, INTERNAL_API_SECRET="internal")
    r = runner.invoke(app, ["doctor", "-f", "json", "--repeat", "1"], env=env)
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    ids_ranked = [f["id"] for f in doc["findings"]]
    assert ids_ranked[:2] == ["webhook-signature-rejected", "lost-callback"], ids_ranked
    assert doc["provider"]["counts"] == {"provider-succeeded-callback-lost": 3}
    assert doc["provider"]["webhook_probe"]["kind"] == "signature-rejected"
    lost = next(f for f in doc["findings"] if f["id"] == "lost-callback")
    assert any("likely causes" in e for e in lost["evidence"])
    # The probe's callback matched no row: nothing was settled by it.
    assert {s for s, _ in _rows(db).values()} == {"processing"}
    assert WEBHOOK_SECRET not in r.output and TOKEN not in r.output
    text = runner.invoke(app, ["doctor", "-f", "text", "--repeat", "1"], env=env)
    assert "Provider (reconcile)" in text.stdout and "callbacks lost since" in text.stdout


def test_doctor_without_a_provider_token_does_not_ask_the_provider(incident):
    db, provider, dep, ids = incident
    env = {"STUCKGEN_DATABASE_URL": db, "STUCKGEN_BASE_URL": dep.url, "INTERNAL_API_SECRET": "internal"}
    r = runner.invoke(app, ["doctor", "-f", "json", "--repeat", "1"], env=env)
    doc = json.loads(r.stdout)
    assert doc["provider"] == {} and not [k for k in provider.requests if k[0] == "get"]
    assert "lost-callback" not in [f["id"] for f in doc["findings"]]


def test_show_tells_what_the_provider_says_about_the_row(incident):
    db, provider, dep, ids = incident
    r = runner.invoke(app, ["show", ids[0], "-f", "json"], env=_env(db, provider, dep))
    assert r.exit_code == 1, r.output
    p = json.loads(r.stdout)["provider"]
    assert p["verdict"] == "provider-succeeded-callback-lost" and p["outputs"] == 1
    md = runner.invoke(app, ["show", ids[0], "-f", "markdown"], env=_env(db, provider, dep))
    assert "| provider | provider-succeeded-callback-lost: succeeded at the provider" in md.stdout
    plain = runner.invoke(app, ["show", ids[0], "-f", "json"], env={"STUCKGEN_DATABASE_URL": db})
    assert json.loads(plain.stdout)["provider"] is None
