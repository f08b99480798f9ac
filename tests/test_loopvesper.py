"""stuckgen against Loop-Vesper's real schema, with rows written the way the app's code writes them."""

from __future__ import annotations

import json

import psycopg
from typer.testing import CliRunner

import loopvesper
from stuckgen.cli import app

runner = CliRunner()


def _scan(dsn: str, *args: str) -> dict:
    r = runner.invoke(app, ["scan", "--database-url", dsn, "--format", "json", *args])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


def test_fixture_is_the_apps_schema_in_a_non_utc_zone(loopvesper_db):
    dsn, lv = loopvesper_db
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SHOW timezone").fetchone()[0] == loopvesper.SERVER_TIMEZONE
        cols = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'generations'").fetchall())
        assert cols["created_at"] == "timestamp without time zone" and cols["parameters"] == "jsonb"
        assert "updated_at" not in cols
        names = {r[0] for r in conn.execute("SELECT migration_name FROM _prisma_migrations")}
    assert len(names) == 25 and "0_init" in names and "20250107_add_output_analysis" in names


def test_migrations_that_prisma_order_cannot_apply_are_deferred(empty_db):
    with psycopg.connect(empty_db, autocommit=True) as conn:
        deferred = loopvesper.apply_migrations(conn)
    assert deferred == ["20250105_add_product_render_angle", "20260507_add_cmf_collaboration"]



def test_the_401_incident_recorded_as_failed_rows_is_evidence(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.incident_401()
    doc = _scan(dsn)
    assert doc["rows"] == []  # nothing is stuck: the app marked them failed
    f = doc["summary"]["failed_at_trigger"]
    assert f["total"] == 12 and f["recent"] == 12 and f["created_recent"] == 18
    [g] = f["groups"]
    assert (g["cause"], g["http_status"], g["count"]) == ("trigger-refused", 401, 12)
    assert g["error"] == "Failed to trigger processing: 401 Unauthorized"
    ids = {x.id for x in lv.rows if x.status == "failed"}
    assert set(g["sample"]) <= ids and len(g["sample"]) == 3


def test_check_with_no_flags_pages_on_the_401_incident_and_names_it(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.incident_401()
    r = runner.invoke(app, ["check", "--database-url", dsn])
    assert r.exit_code == 1, r.output
    line = next(x for x in r.stdout.splitlines() if "trigger-failures" in x)
    assert line.startswith("FAIL") and "12 of 18" in line and "HTTP 401 x12" in line and "Unauthorized" in line
    assert "result: FAILED" in r.stdout


def test_check_stays_green_on_a_quiet_day_with_one_stray_trigger_failure(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.quiet_day()
    lv.trigger_refused(minutes=20, status=502, reason="Bad Gateway", body="")  # one stray in the last hour
    r = runner.invoke(app, ["check", "--database-url", dsn])
    assert r.exit_code == 0, r.output
    assert "ok   trigger-failures: 1 of 4 generations created in the last 1h failed at the trigger (25.0%)" in r.stdout


def test_check_trigger_limits_are_knobs(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.quiet_day()
    lv.trigger_refused(minutes=20, status=502, reason="Bad Gateway", body="")
    r = runner.invoke(app, ["check", "--database-url", dsn, "--max-trigger-failures", "0",
                            "--max-trigger-failure-rate", "1%"])
    assert r.exit_code == 1, r.output
    r = runner.invoke(app, ["check", "--database-url", dsn, "--max-trigger-failures", "0", "--trigger-window", "10m"])
    assert r.exit_code == 0, r.output  # the stray is 20 minutes old


def test_doctor_names_the_401_from_the_failed_rows_alone(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.incident_401()
    r = runner.invoke(app, ["doctor", "--database-url", dsn, "--format", "json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    top = doc["findings"][0]
    assert top["id"] == "trigger-refused-401" and top["severity"] == "error"
    assert "probe-auth --url" in top["fix"] and "INTERNAL_API_SECRET" in top["fix"]
    assert any("Unauthorized" in e for e in top["evidence"])
    text = runner.invoke(app, ["doctor", "--database-url", dsn, "--format", "text"]).stdout
    assert "12 ended failed at the trigger in the window, 12 in the last 1h (66.7% of 18 created)" in text


def test_scan_summary_names_the_trigger_failures_in_every_format(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.incident_401()
    lv.trigger_exception(minutes=30)
    r = runner.invoke(app, ["scan", "--database-url", dsn, "--format", "table"])
    assert r.exit_code == 1, r.output
    assert "Failed at the trigger: 13 rows ended failed" in r.stdout
    assert "trigger-refused HTTP 401 x12, trigger-error x1" in r.stdout
    r = runner.invoke(app, ["scan", "--database-url", dsn, "--format", "csv"])
    assert "trigger-refused HTTP 401 x12" in r.stderr


def test_watch_shows_the_trigger_failures_live(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.incident_401()
    r = runner.invoke(app, ["watch", "-d", dsn, "--count", "1", "--format", "json"])
    assert r.exit_code in (0, 1), r.output
    doc = json.loads(r.stdout.splitlines()[0])
    f = doc["failed_at_trigger"]
    assert f["recent"] == 12 and f["groups"][0]["http_status"] == 401
    assert "12 failed at the trigger in the last 1h" in r.stderr


def test_check_openmetrics_and_json_carry_the_trigger_failures(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.incident_401()
    r = runner.invoke(app, ["check", "--database-url", dsn, "--format", "openmetrics"])
    assert r.exit_code == 1, r.output
    assert 'stuckgen_trigger_failures{status="401",state="failed"} 12' in r.stdout
    doc = json.loads(runner.invoke(app, ["check", "--database-url", dsn, "--format", "json"]).stdout)
    assert doc["metrics"]["failed_at_trigger"] == {"trigger-refused HTTP 401": 12}
    assert any(c["name"] == "trigger-failures" and not c["passed"] for c in doc["checks"])


def test_every_stuck_row_has_its_class_and_no_healthy_row_is_reported(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.every_state()
    doc = _scan(dsn)
    got = {r["id"]: r["class"] for r in doc["rows"]}
    want = {g.id: g.expect for g in lv.rows if g.expect and g.status == "processing"}
    wrong = {g.state: (got.get(g.id), g.expect, g.source) for g in lv.rows if got.get(g.id) != want.get(g.id)}
    assert not wrong


def test_signs_of_life_are_configurable(loopvesper_db):
    dsn, lv = loopvesper_db
    claimed = lv.claimed_waiting(5, lock_seconds=20)
    young_provider = lv.webhook_submitted(10)
    delayed = lv.routing_delayed(retry_in_minutes=3)
    assert _scan(dsn)["rows"] == []
    got = {r["id"]: r["class"] for r in _scan(dsn, "--queue-lock", "10s", "--grace", "awaiting-webhook=5m")["rows"]}
    assert got == {claimed.id: "queued-not-drained", young_provider.id: "awaiting-webhook"}
    assert delayed.id not in got  # its retry is 3 minutes ahead
    got = _scan(dsn, "--grace", "awaiting-webhook=none")["rows"]
    assert [r["id"] for r in got] == [young_provider.id]


def test_grace_from_stuckgen_toml(loopvesper_db, tmp_path):
    dsn, lv = loopvesper_db
    young_provider = lv.webhook_submitted(10)
    (tmp_path / "stuckgen.toml").write_text('[grace]\n"awaiting-webhook" = "5m"\n')
    got = _scan(dsn, "--config", str(tmp_path / "stuckgen.toml"))["rows"]
    assert [r["id"] for r in got] == [young_provider.id]


def test_a_routing_retry_long_past_is_stuck_again(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.routing_delayed(retry_in_minutes=-6)  # past the app's 5-minute routing-retry grace
    assert [r["class"] for r in _scan(dsn)["rows"]] == ["queued-not-drained"]


def test_show_tells_why_a_quiet_row_is_alive(loopvesper_db):
    dsn, lv = loopvesper_db
    claimed = lv.claimed_waiting(5, lock_seconds=20)
    young_provider = lv.webhook_submitted(10, skipped_by_process=True)
    delayed = lv.routing_delayed(retry_in_minutes=3)
    stuck = lv.stalled()

    def show(gid: str) -> dict:
        r = runner.invoke(app, ["show", gid, "--database-url", dsn, "--format", "json"])
        assert r.exit_code in (0, 1), r.output
        return json.loads(r.stdout)

    doc = show(claimed.id)
    assert not doc["stuck"] and "queue job was claimed" in doc["verdict"] and "lock lasts 1m" in doc["verdict"]
    doc = show(young_provider.id)
    assert not doc["stuck"] and "awaiting-webhook rows get a grace of 30m" in doc["alive"][0]
    doc = show(delayed.id)
    assert not doc["stuck"] and any("routingRetryAt in 2m5" in a or "routingRetryAt in 3m" in a for a in doc["alive"])
    doc = show(stuck.id)
    assert doc["stuck"] and doc["alive"] == []


def test_explanations_follow_the_evidence(loopvesper_db):
    dsn, lv = loopvesper_db
    timeout = lv.trigger_timeout_expected(12)
    triggered = lv.triggered_no_worker(9)
    never = lv.trigger_never_answered(10)
    why = {r["id"]: r["why"] for r in _scan(dsn)["rows"]}
    assert why[timeout.id].startswith("trigger timed out; the request was probably received, but no worker")
    assert "never arrived" not in why[timeout.id] and "never arrived" not in why[triggered.id]
    assert why[triggered.id].startswith("the process route accepted the trigger")
    assert why[never.id].startswith("no step after the create step")


def test_a_stuck_row_with_one_logged_refusal_does_not_claim_a_count(loopvesper_db):
    dsn, lv = loopvesper_db
    # A row the app never got to mark failed (the function ended between the last answer and the
    # update), keeping its one logged refusal: still in flight, so stuck as trigger-failed.
    g = lv.trigger_refused(minutes=10)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE generations SET status = 'processing' WHERE id = %s", (g.id,))
    [row] = _scan(dsn)["rows"]
    assert row["class"] == "trigger-failed"
    assert row["why"] == "the trigger got HTTP 401 and no worker ever started (the app logs only its last attempt)"


def test_configured_rules_come_before_the_defaults_and_say_where_from(loopvesper_db, tmp_path):
    dsn, lv = loopvesper_db
    lv.every_state()
    stalled = lv.by_state()["stalled"][0]
    cfg = tmp_path / "stuckgen.toml"
    cfg.write_text('[[rules]]\nclass = "worker-timeout"\nwhy = "killed at maxDuration"\nheartbeat = true\n'
                   'steps_any = ["model:generate:heartbeat"]\n')
    got = {r["id"]: r["class"] for r in _scan(dsn, "--config", str(cfg))["rows"]}
    assert got[stalled.id] == "worker-timeout"
    assert "unknown" not in got.values()  # the defaults still classify the rest
    # before the defaults, so it wins wherever it matches: this row's outputs rule comes later
    assert got[lv.by_state()["outputs-not-finalized"][0].id] == "worker-timeout"
    assert got[lv.by_state()["queued-unclaimed"][0].id] == "queued-not-drained"
    doc = json.loads(runner.invoke(app, ["schema", "--database-url", dsn, "--config", str(cfg), "--format", "json"]).stdout)
    assert doc["rules"][0]["class"] == "worker-timeout" and doc["rules"][0]["source"] == "stuckgen.toml [[rules]] #1"
    assert doc["rules"][1]["source"] == "default"
    text = runner.invoke(app, ["doctor", "--database-url", dsn, "--config", str(cfg), "--no-probe", "--format", "text"]).stdout
    from stuckgen.scan import DEFAULT_RULES

    assert f"Rules in force: 1 from configuration, then {len(DEFAULT_RULES)} default" in text


def test_replace_default_rules_is_explicit(loopvesper_db, tmp_path):
    dsn, lv = loopvesper_db
    lv.every_state()
    cfg = tmp_path / "stuckgen.toml"
    cfg.write_text('replace_default_rules = true\n[[rules]]\nclass = "worker-timeout"\nheartbeat = true\n')
    classes = {r["class"] for r in _scan(dsn, "--config", str(cfg))["rows"]}
    assert classes == {"worker-timeout", "unknown"}
    cfg.write_text('replace_default_rules = true\n')
    r = runner.invoke(app, ["scan", "--database-url", dsn, "--config", str(cfg)])
    assert r.exit_code == 2 and "every row would be 'unknown'" in r.stderr


def test_retrigger_all_stuck_takes_only_safe_classes_and_lists_the_rest(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.every_state()
    r = runner.invoke(app, ["retrigger", "--all-stuck", "--database-url", dsn, "--url", "http://127.0.0.1:9",
                            "--format", "json"])
    assert r.exit_code == 1, r.output  # a dry run that left rows out
    doc = json.loads(r.stdout)
    by = {o["id"]: (o["outcome"], o["class"]) for o in doc["rows"]}
    state = {g.id: g.state for g in lv.rows}
    would = sorted(state[i] for i, (o, _) in by.items() if o == "would-trigger")
    left = sorted(c for o, c in by.values() if o == "left-out")
    assert would == ["claimed-expired", "queued-unclaimed", "trigger-never-answered", "trigger-timeout-expected",
                     "triggered-no-worker"]
    assert left == ["awaiting-webhook", "outputs-not-finalized", "stalled"]
    assert "left out 1 outputs-not-finalized row(s): the process route runs the whole generation again" in r.stderr
    assert "POST /api/generations/{id}/sync" in r.stderr


def test_retrigger_of_an_unsafe_class_needs_it_named_and_warns(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.every_state()
    r = runner.invoke(app, ["retrigger", "--all-stuck", "--class", "outputs-not-finalized", "--database-url", dsn,
                            "--url", "http://127.0.0.1:9", "--format", "json"])
    doc = json.loads(r.stdout)
    assert [o["outcome"] for o in doc["rows"]] == ["would-trigger"]
    assert "duplicate outputs and a second bill" in r.stderr


def test_check_remediate_policy_leaves_unsafe_classes_out(loopvesper_db):
    dsn, lv = loopvesper_db
    lv.every_state()
    r = runner.invoke(app, ["check", "--database-url", dsn, "--retrigger-after", "1m", "--url", "http://127.0.0.1:9"])
    line = next(x for x in r.stdout.splitlines() if "policy:retrigger" in x)
    assert "would retrigger 5 of 8" in line and "left-out 3" in line and "not safe to trigger again" in line


def _process_route_skipping_webhook_rows(dsn: str):
    """A loopback stand-in for the app's process route on a row with a prediction id
    (src/app/api/generate/process/route.ts): appendLog('process:start'), then
    appendLog('process:skipped-webhook-active'), each rewriting lastHeartbeatAt; answers 202."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            gid = body["generationId"]
            with psycopg.connect(dsn, autocommit=True) as conn:
                for step in ("process:start", "process:skipped-webhook-active"):
                    conn.execute(
                        "UPDATE generations SET parameters = parameters || jsonb_build_object("
                        "'lastHeartbeatAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
                        "'lastStep', %s::text, 'debugLogs', coalesce(parameters->'debugLogs', '[]'::jsonb) || "
                        "jsonb_build_array(jsonb_build_object('at', to_char(now() AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'step', %s::text))) WHERE id = %s", (step, step, gid))
            out = json.dumps({"accepted": True, "generationIds": [gid]}).encode()
            self.send_response(202)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_rewritten_heartbeat_is_not_progress(loopvesper_db, tmp_path):
    dsn, lv = loopvesper_db
    stale = lv.webhook_submitted(45)
    server = _process_route_skipping_webhook_rows(dsn)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        r = runner.invoke(app, ["retrigger", stale.id, "--database-url", dsn, "--url", url, "--yes", "--wait", "1s",
                                "--audit-file", str(tmp_path / "audit.jsonl"), "--format", "json"],
                          env={"INTERNAL_API_SECRET": "s" * 32})
    finally:
        server.shutdown()
    assert "will be triggered: the process route skips a row waiting on its provider" in r.stderr
    doc = json.loads(r.stdout)
    [row] = doc["rows"]
    assert row["outcome"] == "accepted" and row["verify"] == "touched-only" and row["ok"] is False
    assert r.exit_code == 1, r.output


def test_doctor_and_show_advise_the_sync_route_for_provider_rows(loopvesper_db):
    dsn, lv = loopvesper_db
    stale = lv.webhook_submitted(45)
    doc = json.loads(runner.invoke(app, ["show", stale.id, "--database-url", dsn, "--format", "json"]).stdout)
    assert f"POST /api/generations/{stale.id}/sync" in doc["verdict"]
    doc = json.loads(runner.invoke(app, ["doctor", "--database-url", dsn, "--no-probe", "--format", "json"]).stdout)
    f = next(x for x in doc["findings"] if x["id"] == "stuck-awaiting-webhook")
    assert "POST /api/generations/{id}/sync" in f["fix"] and "stuckgen reconcile" in f["fix"]


def test_a_job_table_with_the_lock_on_the_row(loopvesper_db):
    dsn, lv = loopvesper_db
    never_claimed = lv.analysis("queued", created_minutes=10)
    claimed_recently = lv.analysis("processing", created_minutes=5, locked_seconds=90, attempts=1)
    lock_expired = lv.analysis("processing", created_minutes=20, locked_seconds=600, attempts=1)
    doc = json.loads(runner.invoke(app, ["schema", "--database-url", dsn, "--table", "output_analyses",
                                         "--format", "json"]).stdout)
    assert doc["queue"]["table"] == "output_analyses" and doc["queue"]["key"] == "id"
    assert doc["queue"]["columns"] == {"locked_at": "locked_at", "run_after": "run_after", "attempts": "attempts"}
    assert doc["outputs"]["table"] is None and "references generations" in doc["outputs"]["source"]
    # The app's analysis lock lasts 2 minutes (ANALYSIS_LOCK_TIMEOUT_MS).
    rows = _scan(dsn, "--table", "output_analyses", "--threshold", "1m", "--queue-lock", "2m")["rows"]
    got = {r["id"]: (r["class"], r["job_state"]) for r in rows}
    assert got == {never_claimed: ("queued-not-drained", "unclaimed"),
                   lock_expired: ("queued-not-drained", "lock-expired")}
    rows = _scan(dsn, "--table", "output_analyses", "--threshold", "1m")["rows"]  # a 60 s lock: 90 s is expired
    assert claimed_recently in {r["id"] for r in rows}
    # The generations table is untouched by this: its own queue is generation_jobs.
    doc = json.loads(runner.invoke(app, ["schema", "--database-url", dsn, "--format", "json"]).stdout)
    assert doc["queue"]["table"] == "generation_jobs" and doc["outputs"]["table"] == "outputs"


def test_reference_deployment_as_the_app_is_written_today_pages_check(db):
    """The reference deployment's scenario of the app's current behaviour: three 401s, then failed."""
    import httpx

    from stuckgen.reference import ReferenceDeployment

    secret = "r" * 40
    with ReferenceDeployment(db, "secret-missing-marked-failed", secret=secret) as dep:
        with httpx.Client(timeout=5) as client:
            for _ in range(4):
                cookie = "; ".join(f"{k}={v}" for k, v in dep.session_cookie().items())
                assert client.post(dep.url + "/api/generate", json={"prompt": "x"},
                                   headers={"cookie": cookie}).status_code == 200
        dep.wait_idle(10)
    with psycopg.connect(db) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM generations")]
    assert statuses == ["failed"] * 4
    r = runner.invoke(app, ["check", "--database-url", db])
    assert r.exit_code == 1, r.output
    assert "4 of 4 generations created in the last 1h failed at the trigger (100.0%): trigger-refused HTTP 401 x4" \
        in r.stdout
