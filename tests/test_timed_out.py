"""`timed-out`: a stalled row whose worker started longer ago than the function may run is its own class.

The worker start is read on the database's clock; rows are aged with seed ages and
``backdate``, never by sleeping.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen import db as dbmod
from stuckgen.cli import app
from stuckgen.deadline import GRACE
from stuckgen.reference.seed import backdate, seed
from stuckgen.scan import CLASSES, DEFAULT_RULES, ScanOptions, ScanRun, rules_from_config
from stuckgen.scan_render import RenderedScan
from stuckgen.schema import MappingConfig, resolve

runner = CliRunner()
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "STUCKGEN_MAX_DURATION", "STUCKGEN_BASE_URL",
                "REPLICATE_API_TOKEN", "VERCEL_TOKEN", "INTERNAL_API_SECRET", "STUCKGEN_THRESHOLD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def _classes(dsn: str, **opts) -> dict[str, str]:
    """Row id -> class, by both scan paths (which must agree), in one transaction."""
    conn = dbmod.connect(dsn)
    with conn, dbmod.transaction(conn, read_only=True):
        m = resolve(conn, MappingConfig())
        options = ScanOptions(**opts)
        py = {r.id: r.cls for r in ScanRun(conn, m, options)}
        sq = {(d := json.loads(line))["id"]: d["class"] for line in RenderedScan(conn, m, options, fmt="json")}
    assert py == sq
    return py


@pytest.fixture
def edge(db):
    """Two stalled rows either side of 300 s + the grace (the seed starts a worker at 0.2% of a row's age)."""
    with psycopg.connect(db, autocommit=True) as conn:
        younger = seed(conn, {"stalled": 1}, min_age=350, max_age=350, seed=1)[0].id  # worker started ~349 s ago
        older = seed(conn, {"stalled": 1}, min_age=372, max_age=372, seed=2)[0].id  # ~371 s ago
    return db, younger, older


def test_the_limit_plus_the_grace_is_the_boundary_on_the_database_clock(edge):
    db, younger, older = edge
    assert 300 + GRACE == 360
    assert _classes(db, max_duration=300.0) == {younger: "stalled", older: "timed-out"}
    with psycopg.connect(db, autocommit=True) as conn:
        backdate(conn, 30)  # both workers now started more than 360 s ago
    assert _classes(db, max_duration=300.0) == {younger: "timed-out", older: "timed-out"}
    assert _classes(db, max_duration=600.0) == {younger: "stalled", older: "stalled"}


def test_without_a_maximum_duration_nothing_changes(edge):
    db, younger, older = edge
    assert _classes(db) == {younger: "stalled", older: "stalled"}
    plain = json.loads(runner.invoke(app, ["scan", "-d", db, "-f", "json"]).stdout)
    assert {r["class"] for r in plain["rows"]} == {"stalled"}
    # --class timed-out is a known class, and nothing is of it
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json", "--class", "timed-out"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == []


def test_scan_names_the_class_with_its_evidence_in_every_format(edge):
    db, younger, older = edge
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json", "--max-duration", "300s"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    row = next(x for x in doc["rows"] if x["id"] == older)
    assert row["class"] == "timed-out"
    assert re.fullmatch(r"worker started 6m1[0-9]s ago, function limit 300 s: provably dead", row["why"]), row["why"]
    assert doc["summary"]["by_class"] == {"timed-out": 1, "stalled": 1}
    only = json.loads(runner.invoke(app, ["scan", "-d", db, "-f", "json", "--max-duration", "300s",
                                          "--class", "timed-out"]).stdout)
    assert [x["id"] for x in only["rows"]] == [older]
    env = {"STUCKGEN_MAX_DURATION": "5m"}
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["scan", "-d", db, "-f", "csv"], env=env).stdout)))
    assert {x["id"]: x["class"] for x in rows} == {younger: "stalled", older: "timed-out"}
    table = runner.invoke(app, ["scan", "-d", db, "-f", "table"], env=env).stdout
    assert "timed-out" in table and "provably dead" in table


def test_check_fails_on_timed_out_rows_and_counts_them_in_its_metrics(edge):
    db, _, _ = edge
    r = runner.invoke(app, ["check", "-d", db, "--max-stuck", "1", "-f", "openmetrics", "--max-duration", "300s"])
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    assert 'stuckgen_stuck{class="timed-out"} 1' in lines and 'stuckgen_stuck{class="stalled"} 1' in lines
    r = runner.invoke(app, ["check", "-d", db, "--max-stuck", "2", "-f", "json"], env={"STUCKGEN_MAX_DURATION": "5m"})
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["metrics"]["by_class"] == {"timed-out": 1, "stalled": 1}


def test_watch_and_doctor_see_the_class(edge):
    db, _, older = edge
    env = {"STUCKGEN_MAX_DURATION": "300s"}
    r = runner.invoke(app, ["watch", "-d", db, "--count", "1", "-f", "json"], env=env)
    assert '"timed-out": 1' in r.stdout, r.output
    doc = json.loads(runner.invoke(app, ["doctor", "-f", "json", "-d", db], env=env).stdout)
    f = next(x for x in doc["findings"] if x["id"] == "timed-out")
    assert f["title"].startswith("1 stalled generations are provably dead")
    assert any(e.startswith(f"{older}: worker started ") for e in f["evidence"])
    assert "stuck-timed-out" not in [x["id"] for x in doc["findings"]]  # one finding, not two
    assert [d["id"] for d in doc["dead_workers"]] == [older]


def test_the_rule_is_data_listed_by_schema_and_configurable():
    rule = next(r for r in DEFAULT_RULES if r.cls == "timed-out")
    assert "past_max_duration=true" in rule.conditions()
    first_stalled = next(i for i, r in enumerate(DEFAULT_RULES) if r.cls == "stalled")
    assert all(i < first_stalled for i, r in enumerate(DEFAULT_RULES) if r.cls == "timed-out")
    custom = rules_from_config([{"class": "zombie", "past_max_duration": True}])
    assert custom[0].past_max_duration is True and custom[0].conditions() == "past_max_duration=true"


def test_schema_lists_the_timed_out_rules(db):
    r = runner.invoke(app, ["schema", "-d", db, "-f", "json"])
    assert r.exit_code == 0, r.output
    rules = json.loads(r.stdout)["rules"]
    assert [x["conditions"] for x in rules if x["class"] == "timed-out"] == [
        "heartbeat=true, past_max_duration=true", "steps_any=[process:start, model:generate:start, "
        "model:generate:heartbeat, model:generate:end], past_max_duration=true"]


def test_a_custom_rule_on_the_worker_start_agrees_on_both_paths(edge):
    db, younger, older = edge
    rules = rules_from_config([{"class": "young-worker", "past_max_duration": False, "heartbeat": True}]) + DEFAULT_RULES
    conn = dbmod.connect(db)
    with conn, dbmod.transaction(conn, read_only=True):
        m = resolve(conn, MappingConfig())
        for opts in (ScanOptions(max_duration=300.0), ScanOptions()):
            py = [json.dumps(r.as_dict()) for r in ScanRun(conn, m, opts, rules)]
            assert list(RenderedScan(conn, m, opts, rules, fmt="json")) == py
        got = {json.loads(x)["id"]: json.loads(x)["class"]
               for x in RenderedScan(conn, m, ScanOptions(max_duration=300.0), rules, fmt="json")}
        assert got == {younger: "young-worker", older: "timed-out"}
        # Unknown without a maximum duration: the custom rule holds neither way
        assert {r.cls for r in ScanRun(conn, m, ScanOptions(), rules)} == {"stalled"}


def test_every_class_is_in_the_readme_class_table():
    text = README.read_text()
    for cls in CLASSES:
        assert f"| `{cls}` |" in text, cls


# -- retrigger: timed-out rows are safe, and re-checked on the database's clock before each is sent -----


@pytest.fixture
def dead_and_young(db):
    with psycopg.connect(db, autocommit=True) as conn:
        dead = seed(conn, {"stalled": 1}, min_age=3600, max_age=3600, seed=3)[0].id  # worker started ~1 h ago
        young = seed(conn, {"stalled": 1}, min_age=240, max_age=240, seed=4)[0].id  # ~4 min ago: may be alive
    return db, dead, young


def test_retrigger_all_stuck_takes_timed_out_rows_and_leaves_young_stalled_ones_out(dead_and_young):
    from stuckgen.reference import ReferenceDeployment

    db, dead, young = dead_and_young
    secret = "retrigger-secret-0123456789"
    env = {"INTERNAL_API_SECRET": secret, "STUCKGEN_MAX_DURATION": "300s"}
    with ReferenceDeployment(db, "healthy", secret=secret) as dep:
        r = runner.invoke(app, ["retrigger", "--all-stuck", "-d", db, "--url", dep.url, "-f", "json"], env=env)
        doc = json.loads(r.stdout)
        got = {x["id"]: (x["class"], x["outcome"]) for x in doc["rows"]}
        assert got == {dead: ("timed-out", "would-trigger"), young: ("stalled", "left-out")}, r.output
        assert re.search(r"1 timed-out row\(s\) taken: the worker cannot still be running \(started 59m5\ds ago, "
                         r"limit 300 s\)", r.stderr), r.stderr
        assert "left out 1 stalled row(s)" in r.stderr
        r = runner.invoke(app, ["retrigger", "--all-stuck", "-d", db, "--url", dep.url, "-f", "json", "--yes"], env=env)
        dep.wait_idle()
    doc = json.loads(r.stdout)
    outcomes = {x["id"]: x["outcome"] for x in doc["rows"]}
    assert outcomes[young] == "left-out" and outcomes[dead] not in ("left-out", "would-trigger", "skipped-touched")
    assert doc["remediated"] == 1, r.output
    # Without a maximum duration the old row is stalled like the young one: both left out.
    with psycopg.connect(db, autocommit=True) as conn:
        backdate(conn, 3600)
    r = runner.invoke(app, ["retrigger", "--all-stuck", "-d", db, "--url", "https://app.example.com", "-f", "json"],
                      env={"INTERNAL_API_SECRET": secret})
    assert {x["outcome"] for x in json.loads(r.stdout)["rows"]} == {"left-out"}, r.output


def _fresh_worker(dsn: str, gid: str) -> None:
    """A new worker takes the row now (the app's process route writes processingStartedAt = Date.now())."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE generations SET parameters = parameters || jsonb_build_object('processingStartedAt', "
                  "(extract(epoch FROM now()) * 1000)::bigint) WHERE id = %s", (gid,))


def test_a_row_whose_worker_restarted_after_the_scan_is_not_sent(conn, db):
    import httpx
    import respx

    from stuckgen import remediate
    from remediation_helpers import mapping_of, select, table_audit

    url = "https://app.example.com/api/generate/process"
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"stalled": 3}, min_age=3600, max_age=3600, seed=5)
        # processingStartedAt as the app writes it, when the worker started (with the first process:start)
        c.execute("UPDATE generations SET parameters = parameters || jsonb_build_object('processingStartedAt', "
                  "(extract(epoch FROM now() - interval '3590 seconds') * 1000)::bigint)")
    opts = ScanOptions(since=None, max_duration=300.0)
    m = mapping_of(conn)
    assert m.has("processing_lock")
    sel = select(conn, m, all_stuck=True, opts=opts)
    assert {t.cls for t in sel.targets} == {"timed-out"} and len(sel.targets) == 3
    _fresh_worker(db, rows[0].id)  # a new worker, its heartbeat not written yet: quiet, but not dead
    with psycopg.connect(db, autocommit=True) as c:  # and a heartbeat now on another
        c.execute("UPDATE generations SET parameters = parameters || jsonb_build_object('lastHeartbeatAt', "
                  "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) WHERE id = %s", (rows[1].id,))
    options = remediate.RetriggerOptions(url=url, scan=opts, secret="s3cret-value-for-tests-4f1a", backoff=0.01,
                                         max_backoff=0.05, poll=0.1)
    with respx.mock() as mock, httpx.Client(follow_redirects=False, timeout=2.0) as client:
        route = mock.post(url).respond(202)
        res = remediate.retrigger_rows(client, conn, m, sel.targets, options=options, audit=table_audit(conn, m),
                                       run_id="rt-dead", operator="tester")
    assert [json.loads(c.request.content)["generationId"] for c in route.calls] == [rows[2].id]
    by = {o.id: o for o in res.outcomes}
    assert by[rows[0].id].outcome == "skipped-touched" and "maximum duration" in by[rows[0].id].reason
    assert by[rows[1].id].outcome == "skipped-touched" and "sign of life" in by[rows[1].id].reason


def test_checks_policy_retriggers_timed_out_rows_but_not_young_stalled_ones(dead_and_young):
    db, dead, young = dead_and_young
    r = runner.invoke(app, ["check", "-d", db, "-f", "json", "--retrigger-after", "2m", "--max-duration", "300s",
                            "--url", "https://app.example.com"], env={"INTERNAL_API_SECRET": "x" * 32})
    assert r.exit_code == 1, r.output
    rows = json.loads(r.stdout)["policy"]["retrigger"]
    assert rows["counts"] == {"would-trigger": 1, "left-out": 1}, rows
    # Without the maximum duration the old row is stalled too, and the policy leaves both out.
    r = runner.invoke(app, ["check", "-d", db, "-f", "json", "--retrigger-after", "2m",
                            "--url", "https://app.example.com"], env={"INTERNAL_API_SECRET": "x" * 32})
    assert json.loads(r.stdout)["policy"]["retrigger"]["counts"] == {"left-out": 2}, r.output


# -- the maximum duration as Vercel's API says it: the deployment's vercel.json `functions` --------------

VERCEL = "https://api.vercel.com"
TEAM = "team_acme42"
PROCESS = "/api/generate/process"


def _vercel_json(name: str) -> dict:
    return json.loads((Path(__file__).parent / "data" / "vercel" / name).read_text())


def test_the_route_s_limit_is_read_from_the_production_deployment_s_functions():
    import httpx
    import respx

    from stuckgen.vercel import VercelClient
    from stuckgen.vercel.functions import read_limit

    with respx.mock(base_url=VERCEL, assert_all_called=True) as api, httpx.Client(timeout=2.0) as http:
        project = api.get("/v9/projects/genapp").respond(200, json=_vercel_json("project.json"))
        dep = api.get("/v13/deployments/dpl_0ProdOld").respond(200, json=_vercel_json("deployment_production.json"))
        client = VercelClient(http, token="vcp_t0ken", project="genapp", team=TEAM, base_url=VERCEL)
        limit, why = read_limit(client, PROCESS)
        assert dep.calls.last.request.url.params["teamId"] == TEAM and project.called
        assert limit is not None and limit.seconds == 300 and why == ""
        assert limit.pattern == "src/app/api/generate/process/route.ts"
        assert limit.source == ("Vercel: functions['src/app/api/generate/process/route.ts'].maxDuration of "
                                "deployment genapp-z1x2c3v4b-acme.vercel.app")
        # another route under the glob: its 60 s; a route no entry covers: none, and why
        other, _ = read_limit(client, "/api/generate")
        assert other is not None and other.seconds == 60 and other.pattern == "src/app/api/**/*.ts"
        none, why = read_limit(client, "/hooks/replicate")
        assert none is None and "no `functions` entry" in why and "src/app/api/**/*.ts" in why


def test_vercel_globs_match_the_route_s_source_file():
    from stuckgen.vercel.functions import limit_for_route

    def limit(functions):
        got = limit_for_route(functions, PROCESS, deployment="d")
        return None if got is None else got.seconds

    assert limit({"app/api/generate/process/route.ts": {"maxDuration": 300}}) == 300
    assert limit({"app/api/**/route.{js,ts}": {"maxDuration": 120}}) == 120
    assert limit({"pages/api/generate/process.ts": {"maxDuration": 90}}) == 90
    assert limit({"api/**/*.js": {"maxDuration": 45}}) == 45
    assert limit({"app/api/generate/route.ts": {"maxDuration": 300}, "app/*/route.ts": {"maxDuration": 30}}) is None
    assert limit({"app/api/**/*.ts": {"memory": 1024}}) is None  # no maxDuration
    # several match: the longest, so that no live worker is called dead
    assert limit({"app/api/**/*.ts": {"maxDuration": 60}, "app/api/generate/process/route.ts": {"maxDuration": 800}}) == 800
    assert limit(None) is None and limit({"app/api/**": {"maxDuration": True}}) is None


def test_doctor_classes_timed_out_rows_by_the_limit_vercel_states(dead_and_young):
    from vercel_standin import VercelStandIn, vercel_standin

    db, dead, young = dead_and_young
    state = VercelStandIn(token="vcp_T0k3nNeverShown_8f7e6d5c4b3a2918")
    env = {"VERCEL_TOKEN": state.token, "VERCEL_PROJECT_ID": "genapp", "VERCEL_TEAM_ID": TEAM}
    with vercel_standin(state) as standin:
        env["STUCKGEN_VERCEL_API_URL"] = standin.url
        doc = json.loads(runner.invoke(app, ["doctor", "-f", "json", "-d", db], env=env).stdout)
        f = next(x for x in doc["findings"] if x["id"] == "timed-out")
        assert f["title"].startswith("1 stalled generations are provably dead") and "(300 s)" in f["title"]
        assert ("function limit from Vercel: functions['src/app/api/generate/process/route.ts'].maxDuration of "
                "deployment genapp-z1x2c3v4b-acme.vercel.app") in f["evidence"]
        assert [d["id"] for d in doc["dead_workers"]] == [dead]
        assert any(p == "/v13/deployments/dpl_0ProdOld" for p, _ in state.requests)
        # A setting wins, and the API is not asked.
        state.requests.clear()
        doc = json.loads(runner.invoke(app, ["doctor", "-f", "json", "-d", db, "--max-duration", "2h"], env=env).stdout)
        assert "timed-out" not in [x["id"] for x in doc["findings"]]
        assert not any(p.startswith("/v13/") for p, _ in state.requests)
        # A deployment built without a functions entry for the route: doctor says so, nothing is timed-out.
        body = dict(state.deployment_bodies["dpl_0ProdOld"])
        body.pop("functions")
        state.deployment_bodies["dpl_0ProdOld"] = body
        doc = json.loads(runner.invoke(app, ["doctor", "-f", "json", "-d", db], env=env).stdout)
    ids = [x["id"] for x in doc["findings"]]
    assert "timed-out" not in ids and "max-duration-unknown" in ids
    note = next(x for x in doc["findings"] if x["id"] == "max-duration-unknown")
    assert "without a `functions` configuration" in note["evidence"][0] and "--max-duration" in note["fix"]
    assert state.token not in json.dumps(doc)
