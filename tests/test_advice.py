"""Advice that fits the app: provider rows, notices that apply, the provider id in show, gaps by the mapping in force."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stuckgen.cli import app

sys.path.insert(0, str(Path(__file__).parent))
import photoshot  # noqa: E402

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "STUCKGEN_BASE_URL",
                "REPLICATE_API_TOKEN", "REPLICATE_API_KEY", "STUCKGEN_REPLICATE_API_TOKEN", "VERCEL_TOKEN",
                "STUCKGEN_PROVIDER_RESULTS", "STUCKGEN_TABLE", "STUCKGEN_MAP"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def shots(empty_db):
    rows = photoshot.create(empty_db)
    r = runner.invoke(app, ["init", "-d", empty_db, "--table", "Shot"])
    assert r.exit_code == 0, r.output
    return empty_db, rows


def _doctor(dsn: str, env: dict | None = None) -> dict:
    r = runner.invoke(app, ["doctor", "-d", dsn, "-f", "json"], env=env or {})
    return json.loads(r.stdout)


def test_init_asks_how_results_come_back(shots):
    text = Path("stuckgen.toml").read_text()
    assert '# provider_results = "webhook"  # or "sync", "polling", "none"' in text


def test_a_polling_app_is_told_about_polling_and_reconcile_not_a_webhook_route(shots):
    dsn, _ = shots
    doc = _doctor(dsn, {"STUCKGEN_PROVIDER_RESULTS": "polling"})
    f = next(f for f in doc["findings"] if f["id"] == "stuck-awaiting-webhook")
    assert "browser polls" in f["title"] and "callback URL" not in f["title"] + f["fix"]
    assert "set REPLICATE_API_TOKEN and `stuckgen reconcile`" in f["fix"]
    ids = {f["id"] for f in doc["findings"]}
    # No process route, no secret in this app: those notices would be noise.
    assert not ids & {"secret-not-configured", "no-target"}


def test_with_a_provider_token_the_fix_points_straight_at_reconcile(shots):
    dsn, _ = shots
    doc = _doctor(dsn, {"STUCKGEN_PROVIDER_RESULTS": "sync", "REPLICATE_API_TOKEN": "r8_" + "x" * 37})
    f = next(f for f in doc["findings"] if f["id"] == "stuck-awaiting-webhook")
    assert f["fix"].startswith("`stuckgen reconcile` asks the provider") and "--via sync" in f["fix"]
    assert "r8_" not in json.dumps(doc)


def test_without_the_setting_the_advice_names_the_ways_back_and_the_setting(shots):
    dsn, _ = shots
    f = next(f for f in _doctor(dsn)["findings"] if f["id"] == "stuck-awaiting-webhook")
    assert "provider_results" in f["fix"] and "browser polling" in f["title"]


def test_show_prints_the_provider_id_and_its_page(shots):
    dsn, rows = shots
    stuck = next(s for s in rows if s.kind == "stuck-left-at-create")
    r = runner.invoke(app, ["show", stuck.id, "-d", dsn, "-f", "json"])
    g = json.loads(r.stdout)["generation"]
    assert g["provider_id"] == stuck.replicate_id
    assert g["provider_page"] == f"https://replicate.com/p/{stuck.replicate_id}"
    r = runner.invoke(app, ["show", stuck.id, "-d", dsn, "-f", "markdown"])
    assert stuck.replicate_id in r.stdout


def test_missing_field_notes_follow_the_mapping_in_force(shots):
    dsn, _ = shots
    doc = json.loads(runner.invoke(app, ["schema", "-d", dsn, "--config", "/dev/null", "--table", "Shot",
                                         "-f", "json"]).stdout)
    warnings = " ".join(doc["warnings"])
    assert "rows handed to the provider are still told apart by replicateId" in warnings
    assert "webhooks cannot be seen" not in warnings
    assert "updatedAt is the sign of life" in warnings
