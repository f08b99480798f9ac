"""`stuckgen reconcile`: stuck provider rows against a real loopback provider, one verdict per row, every format."""

from __future__ import annotations

import csv
import io
import json
import socket

import psycopg
import pytest
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.provider import ProviderStandIn
from stuckgen.reference.seed import seed

runner = CliRunner()
TOKEN = "r8_reconcile_token_do_not_print_0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "REPLICATE_API_TOKEN", "REPLICATE_API_KEY",
                "STUCKGEN_REPLICATE_API_TOKEN", "STUCKGEN_REPLICATE_API_URL", "STUCKGEN_MAP", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def provider():
    with ProviderStandIn(token=TOKEN) as p:
        yield p


def _set_prediction(dsn: str, row_id: str, pid: str | None) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        params = c.execute("SELECT parameters FROM generations WHERE id = %s", (row_id,)).fetchone()[0]
        if pid is None:
            params.pop("replicatePredictionId", None)
        else:
            params["replicatePredictionId"] = pid
        c.execute("UPDATE generations SET parameters = %s WHERE id = %s", (Jsonb(params), row_id))


@pytest.fixture
def world(db, provider):
    """Seven stuck provider rows, one per provider state (plus a 404 and a throttled read), and a stuck row without one."""
    with psycopg.connect(db, autocommit=True) as conn:
        rows = seed(conn, {"awaiting-webhook": 7, "never-started": 1, "completed": 1}, min_age=3600, max_age=7200)
    provider_rows = [r for r in rows if r.kind == "awaiting-webhook"]
    states = ["succeeded", "failed", "canceled", "processing", "starting", None, "succeeded"]
    expected: dict[str, str] = {}
    verdict = {"succeeded": "provider-succeeded-callback-lost", "failed": "provider-failed-callback-lost",
               "canceled": "provider-canceled", "processing": "provider-still-running",
               "starting": "provider-still-running", None: "provider-unknown-prediction"}
    for r, st in zip(provider_rows, states):
        pid = provider.add(st, age=3000, run_time=60) if st else "neverexisted00000000000000"
        _set_prediction(db, r.id, pid)
        expected[r.id] = verdict[st]
    provider.throttle(pid, 1, retry_after="0")  # the last row's first read is a 429
    return db, expected, [r for r in rows if r.kind == "never-started"][0].id


def _env(db: str, provider: ProviderStandIn, **extra: str) -> dict[str, str]:
    return {"STUCKGEN_DATABASE_URL": db, "REPLICATE_API_TOKEN": TOKEN, "STUCKGEN_REPLICATE_API_URL": provider.url,
            **extra}


def test_each_provider_row_gets_the_verdict_of_its_prediction(world, provider):
    db, expected, no_pid = world
    r = runner.invoke(app, ["reconcile", "--format", "json"], env=_env(db, provider))
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == "stuckgen.reconcile/v1"
    got = {row["id"]: row["verdict"] for row in doc["rows"]}
    assert got == expected
    assert no_pid not in got and doc["without_prediction"] == 1 and doc["stuck_rows"] == 8
    assert doc["counts"]["provider-succeeded-callback-lost"] == 2
    lost = [row for row in doc["rows"] if row["verdict"] == "provider-succeeded-callback-lost"]
    assert all(row["outputs"] == 1 and row["provider_completed_at"] and row["completed_ago_seconds"] > 2000
               for row in lost)
    failed = [row for row in doc["rows"] if row["verdict"] == "provider-failed-callback-lost"][0]
    assert "CUDA out of memory" in failed["detail"] and failed["provider_error"]
    assert doc["lost_callbacks_since"] is not None
    assert provider.requests[("get", 429)] == 1
    assert TOKEN not in r.output


def test_nothing_is_written_to_the_database(world, provider):
    db, _, _ = world
    with psycopg.connect(db) as c:
        before = c.execute("SELECT md5(string_agg(g::text, ',' ORDER BY id)) FROM generations g").fetchone()[0]
    runner.invoke(app, ["reconcile", "--format", "json"], env=_env(db, provider))
    with psycopg.connect(db) as c:
        after = c.execute("SELECT md5(string_agg(g::text, ',' ORDER BY id)) FROM generations g").fetchone()[0]
        assert c.execute("SELECT to_regclass('stuckgen.audit')").fetchone()[0] is None
    assert before == after


def test_every_row_still_running_exits_0(db, provider):
    with psycopg.connect(db, autocommit=True) as conn:
        rows = seed(conn, {"awaiting-webhook": 2}, min_age=3600, max_age=7200)
    for r in rows:
        _set_prediction(db, r.id, provider.add("processing", age=3000))
    r = runner.invoke(app, ["reconcile", "--format", "json"], env=_env(db, provider))
    assert r.exit_code == 0, r.output
    assert {row["verdict"] for row in json.loads(r.stdout)["rows"]} == {"provider-still-running"}


def test_a_refused_token_stops_the_run_and_nothing_answered_exits_3(world, provider):
    db, expected, _ = world
    r = runner.invoke(app, ["reconcile", "--format", "json", "--concurrency", "1"],
                      env=_env(db, provider, REPLICATE_API_TOKEN="r8_wrong_token"))
    assert r.exit_code == 3, r.output
    doc = json.loads(r.stdout)
    assert {row["verdict"] for row in doc["rows"]} == {"provider-unreachable"}
    assert "refused the token" in doc["stopped"]
    assert provider.requests.get(("get", 401)) == 1  # one refusal, then no further row was sent
    assert "r8_wrong_token" not in r.output


def test_an_unreachable_provider_exits_3(world):
    db, _, _ = world
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    r = runner.invoke(app, ["reconcile", "--format", "json", "--tries", "1"],
                      env={"STUCKGEN_DATABASE_URL": db, "REPLICATE_API_TOKEN": TOKEN,
                           "STUCKGEN_REPLICATE_API_URL": f"http://127.0.0.1:{port}/v1"})
    assert r.exit_code == 3, r.output
    rows = json.loads(r.stdout)["rows"]
    assert rows and all(row["verdict"] == "provider-unreachable" and "could not connect" in row["detail"] for row in rows)


def test_a_slow_provider_is_unreachable_with_the_reason(world, provider):
    db, expected, _ = world
    some = next(iter(expected))
    with psycopg.connect(db) as c:
        pid = c.execute("SELECT parameters->>'replicatePredictionId' FROM generations WHERE id = %s", (some,)).fetchone()[0]
    provider.slow(pid, 5.0)
    r = runner.invoke(app, ["reconcile", some, "--format", "json", "--tries", "1", "--http-timeout", "0.3s"],
                      env=_env(db, provider))
    assert r.exit_code == 3, r.output
    (row,) = json.loads(r.stdout)["rows"]
    assert row["verdict"] == "provider-unreachable" and "no answer within 0.3s" in row["detail"]


def test_without_a_token_it_is_a_configuration_error(world, provider):
    db, _, _ = world
    r = runner.invoke(app, ["reconcile"], env={"STUCKGEN_DATABASE_URL": db, "STUCKGEN_REPLICATE_API_URL": provider.url})
    assert r.exit_code == 2
    assert "REPLICATE_API_TOKEN" in r.stderr and r.stdout == ""


def test_the_token_is_refused_over_plain_http_to_a_remote_host(world):
    db, _, _ = world
    r = runner.invoke(app, ["reconcile"], env={"STUCKGEN_DATABASE_URL": db, "REPLICATE_API_TOKEN": TOKEN,
                                               "STUCKGEN_REPLICATE_API_URL": "http://provider.example/v1"})
    assert r.exit_code == 2 and "plain HTTP" in r.stderr and TOKEN not in r.output


def test_csv_and_markdown_carry_the_same_verdicts(world, provider):
    db, expected, _ = world
    r = runner.invoke(app, ["reconcile", "--format", "csv"], env=_env(db, provider))
    assert r.exit_code == 1
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {row["id"]: row["verdict"] for row in rows} == expected
    assert "verdicts:" in r.stderr
    md = runner.invoke(app, ["reconcile", "--format", "markdown"], env=_env(db, provider))
    assert md.exit_code == 1
    for rid, v in expected.items():
        assert f"| `{rid}` |" in md.stdout and f"**{v}**" in md.stdout
    assert "lost callbacks: 3 prediction(s)" in md.stdout


@pytest.mark.parametrize("width", [80, 100])
def test_the_table_fits_the_terminal(world, provider, width):
    import httpx
    from rich.console import Console

    from stuckgen import reconcile as core
    from stuckgen.render.reconcile import reconcile_table, summary_lines
    from stuckgen.replicate import ProviderOptions
    from stuckgen.scan import ScanOptions
    from stuckgen.schema import MappingConfig, resolve

    db, expected, _ = world
    with psycopg.connect(db) as conn:
        mapping = resolve(conn, MappingConfig())
        rows, without, _ = core.provider_rows(conn, mapping, ScanOptions(since=None))
        now = conn.execute("SELECT now()").fetchone()[0]
    with httpx.Client(trust_env=False) as client:
        result = core.reconcile_rows(client, rows, options=ProviderOptions(api_url=provider.url, token=TOKEN, backoff=0.01),
                                     now=now, stuck_rows=len(rows) + without, without_prediction=without)
    buf = io.StringIO()
    console = Console(file=buf, width=width, no_color=True, highlight=False)
    table, hidden = reconcile_table(result, max_rows=None)
    console.print(table)
    for line in summary_lines(result):
        console.print(line, markup=False)
    lines = buf.getvalue().splitlines()
    assert hidden == 0 and all(len(line) <= width for line in lines), max(lines, key=len)
    text = buf.getvalue().replace("\n", "")
    for rid in expected:
        assert rid in text
    assert "provider-succeeded-callback-lost" in text.replace(" ", "")
