"""Notifications on state change (Slack, PagerDuty, Standard Webhooks) and the heartbeat, with real receivers.

Each receiver is an HTTP server on loopback that records every request and
answers the way the real service does (Slack ``200 ok``, PagerDuty ``202``
JSON, a webhook ``204``, a cron monitor ``200 OK``). An incident that starts,
gets worse and clears across check runs must give each channel exactly
trigger, update, resolve — and the runs in between nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.receiver import Received, RecordingReceiver
from stuckgen.reference.seed import seed

runner = CliRunner()
SECRET = "notify-internal-secret-value-42"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"a webhook signing key, 32 bytes!").decode()


def Receiver(answer):  # noqa: N802 - reads like the class it builds
    return RecordingReceiver(answer)


@pytest.fixture
def receivers():
    slack = Receiver((200, "text/html", b"ok"))
    pd = Receiver((202, "application/json", b'{"status":"success","message":"Event processed"}'))
    hook = Receiver((204, "text/plain", b""))
    yield slack, pd, hook
    for r in (slack, pd, hook):
        r.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "GITHUB_ACTIONS",
                "GITHUB_STEP_SUMMARY", "STUCKGEN_BASE_URL", "STUCKGEN_SLACK_WEBHOOK_URL",
                "STUCKGEN_PAGERDUTY_ROUTING_KEY", "STUCKGEN_PAGERDUTY_EVENTS_URL", "STUCKGEN_NOTIFY_WEBHOOK_URL",
                "STUCKGEN_NOTIFY_WEBHOOK_SECRET", "STUCKGEN_HEARTBEAT_URL", "STUCKGEN_AUDIT_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def verify_standard_webhook(secret: str, r: Received) -> bool:
    """The receiving side of Standard Webhooks, written from the spec (not from stuckgen's code)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{r.headers['webhook-id']}.{r.headers['webhook-timestamp']}.".encode() + r.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(part.split(",", 1) == ["v1", expected] for part in r.headers["webhook-signature"].split(" "))


def env_for(slack, pd, hook) -> dict[str, str]:
    return {"STUCKGEN_SLACK_WEBHOOK_URL": slack.url + "/services/T000/B000/XXXXSLACKTOKEN",
            "STUCKGEN_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "STUCKGEN_PAGERDUTY_EVENTS_URL": pd.url + "/v2/enqueue",
            "STUCKGEN_NOTIFY_WEBHOOK_URL": hook.url + "/hooks/stuckgen",
            "STUCKGEN_NOTIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "INTERNAL_API_SECRET": SECRET}


def check(db: str, env: dict[str, str], *extra: str):
    return runner.invoke(app, ["check", "-d", db, *extra], env=env)


def add_stuck(db: str, n: int, seed_no: int) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"trigger-failed": n}, seed=seed_no)


def clear_stuck(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE generations SET status = 'completed' WHERE status IN ('processing', 'queued')")


@pytest.mark.parametrize("where", ["table", "file"])
def test_incident_starts_worsens_clears_gives_trigger_update_resolve_on_each_channel(db, receivers, tmp_path, where):
    slack, pd, hook = receivers
    env = env_for(slack, pd, hook)
    audit = ["--audit-file", str(tmp_path / "audit.jsonl")] if where == "file" else []
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 4})

    r = check(db, env, *audit)  # healthy, nothing open: nothing to say
    assert r.exit_code == 0, r.output
    assert not slack.got and not pd.got and not hook.got

    add_stuck(db, 2, seed_no=11)
    r = check(db, env, *audit)  # starts
    assert r.exit_code == 1, r.output
    assert [len(x.got) for x in (slack, pd, hook)] == [1, 1, 1]
    assert "ok   notify: slack trigger stuck-trigger-failed" in r.stdout

    r = check(db, env, *audit)  # same incident, same size: silence
    assert r.exit_code == 1
    assert [len(x.got) for x in (slack, pd, hook)] == [1, 1, 1]

    add_stuck(db, 3, seed_no=12)
    r = check(db, env, *audit)  # 2 -> 5 rows: worse
    assert r.exit_code == 1
    assert [len(x.got) for x in (slack, pd, hook)] == [2, 2, 2]

    add_stuck(db, 1, seed_no=13)
    r = check(db, env, *audit)  # 5 -> 6: not twice as bad, no message
    assert [len(x.got) for x in (slack, pd, hook)] == [2, 2, 2]

    clear_stuck(db)
    r = check(db, env, *audit)  # clears
    assert r.exit_code == 0, r.output
    assert [len(x.got) for x in (slack, pd, hook)] == [3, 3, 3]
    r = check(db, env, *audit)
    assert r.exit_code == 0
    assert [len(x.got) for x in (slack, pd, hook)] == [3, 3, 3]

    # Slack: three messages, in order.
    texts = [m.json()["text"] for m in slack.got]
    assert [t.split()[1] for t in texts] == ["TRIGGERED", "WORSE", "RESOLVED"]
    assert "2 generations stuck as trigger-failed" in texts[0] and "5 generations" in texts[1]
    assert all(m.path == "/services/T000/B000/XXXXSLACKTOKEN" for m in slack.got)

    # PagerDuty: trigger, trigger (same dedup_key: an update of the same alert), resolve; Events API v2 shapes.
    events = [m.json() for m in pd.got]
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "resolve"]
    keys = {e["dedup_key"] for e in events}
    assert len(keys) == 1 and next(iter(keys)).endswith(":public.generations:stuck-trigger-failed")
    assert all(e["routing_key"] == ROUTING_KEY for e in events)
    for e in events[:2]:
        p = e["payload"]
        assert p["severity"] == "error" and p["source"] and p["summary"] and len(p["summary"]) <= 1024
        assert p["class"] == "stuck-trigger-failed" and p["component"] == "public.generations"
    assert "payload" not in events[2]
    assert all(m.path == "/v2/enqueue" and m.headers["content-type"] == "application/json" for m in pd.got)

    # Webhook: signed events carrying the report.
    docs = [m.json() for m in hook.got]
    assert [d["type"] for d in docs] == ["incident.triggered", "incident.updated", "incident.resolved"]
    assert all(verify_standard_webhook(WEBHOOK_SECRET, m) for m in hook.got)
    assert len({m.headers["webhook-id"] for m in hook.got}) == 3
    assert docs[0]["data"]["report"]["schema"] == "stuckgen.check/v1" and docs[0]["data"]["rows"] == 2
    assert docs[0]["data"]["dedup_key"] == events[0]["dedup_key"]

    # Never a secret, a cookie or the routing key outside PagerDuty's own field.
    for m in slack.got + hook.got:
        assert SECRET.encode() not in m.body and ROUTING_KEY.encode() not in m.body
        assert b"XXXXSLACKTOKEN" not in m.body
    for m in pd.got:
        assert SECRET.encode() not in m.body
    assert "XXXXSLACKTOKEN" not in r.output and ROUTING_KEY not in r.output


def test_a_failed_delivery_is_reported_never_turns_red_green_and_is_retried(db, receivers):
    slack, pd, hook = receivers
    env = {"STUCKGEN_SLACK_WEBHOOK_URL": slack.url + "/services/x"}
    slack.answer = (500, "text/plain", b"internal_error")
    add_stuck(db, 2, seed_no=21)
    r = check(db, env)
    assert r.exit_code == 1
    assert "FAIL notify: slack trigger stuck-trigger-failed" in r.stdout and "HTTP 500" in r.stdout
    assert "notification failed" in r.stderr
    tries = len(slack.got)
    assert tries == 3  # 5xx is retried, then given up
    slack.answer = (200, "text/html", b"ok")
    r = check(db, env)  # the trigger was never delivered: sent now
    assert len(slack.got) == tries + 1 and "TRIGGERED" in slack.got[-1].json()["text"]
    r = check(db, env)
    assert len(slack.got) == tries + 1


def test_a_failed_resolve_makes_a_green_run_exit_1(db, receivers):
    slack, pd, hook = receivers
    env = {"STUCKGEN_PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "STUCKGEN_PAGERDUTY_EVENTS_URL": pd.url + "/v2/enqueue"}
    add_stuck(db, 1, seed_no=31)
    assert check(db, env).exit_code == 1 and len(pd.got) == 1
    clear_stuck(db)
    pd.answer = (400, "application/json", b'{"status":"invalid event","message":"Event object is invalid"}')
    r = check(db, env)
    assert r.exit_code == 1, r.output
    assert "FAIL notify: pagerduty resolve" in r.stdout and "HTTP 400" in r.stdout
    assert len(pd.got) == 2  # a 4xx is not retried


def test_plain_http_to_a_remote_host_is_refused_before_anything_runs(db):
    r = check(db, {"STUCKGEN_SLACK_WEBHOOK_URL": "http://hooks.example.com/services/T/B/SECRETPART"})
    assert r.exit_code == 2
    assert "plain HTTP" in r.stderr and "SECRETPART" not in r.output
    r = check(db, {"STUCKGEN_SLACK_WEBHOOK_URL": "http://hooks.example.com/services/T/B/SECRETPART"},
              "--allow-insecure", "--since", "1s", "--slack-webhook", "http://127.0.0.1:9/x")
    assert r.exit_code == 0  # nothing stuck, nothing open: no traffic at all


def test_a_webhook_secret_that_is_not_base64_is_a_usage_error(db, receivers):
    slack, pd, hook = receivers
    r = check(db, {"STUCKGEN_NOTIFY_WEBHOOK_URL": hook.url, "STUCKGEN_NOTIFY_WEBHOOK_SECRET": "not base64 at all!"})
    assert r.exit_code == 2 and "Standard Webhooks secret" in r.stderr
    assert "not base64 at all!" not in r.output


def test_unsigned_webhook_without_a_secret(db, receivers):
    slack, pd, hook = receivers
    add_stuck(db, 1, seed_no=41)
    r = check(db, {"STUCKGEN_NOTIFY_WEBHOOK_URL": hook.url + "/h"})
    assert r.exit_code == 1 and len(hook.got) == 1
    m = hook.got[0]
    assert "webhook-signature" not in m.headers and m.headers["webhook-id"].startswith("msg_")
    assert m.json()["data"]["severity"] == "error"


def test_probe_cause_triggers_and_is_resolved_only_by_a_run_that_probed(db, receivers):
    from stuckgen.reference import ReferenceDeployment

    slack, pd, hook = receivers
    env = {"STUCKGEN_PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "STUCKGEN_PAGERDUTY_EVENTS_URL": pd.url + "/v2/enqueue",
           "INTERNAL_API_SECRET": SECRET}
    with ReferenceDeployment(db, "secret-missing", secret=SECRET) as dep:
        r = check(db, env, "--probe", "--url", dep.url)
    assert r.exit_code == 1, r.output
    causes = {e.json()["payload"]["class"] for e in pd.got}
    assert "probe:secret-rejected" in causes
    n = len(pd.got)
    r = check(db, env)  # no probe: the probe cause is not observed, so not resolved
    assert len(pd.got) == n
    with ReferenceDeployment(db, "healthy", secret=SECRET) as dep:
        r = check(db, env, "--probe", "--url", dep.url)
    resolved = [e.json()["dedup_key"] for e in pd.got[n:] if e.json()["event_action"] == "resolve"]
    assert any(k.endswith(":probe:secret-rejected") for k in resolved), [e.json() for e in pd.got]


# -- the heartbeat ---------------------------------------------------------------------------------


@pytest.fixture
def monitor():
    m = Receiver((200, "text/plain", b"OK"))
    yield m
    m.close()


def pings(monitor: RecordingReceiver) -> list[tuple[str, str]]:
    from urllib.parse import parse_qs, urlsplit

    out = []
    for g in monitor.got:
        p = urlsplit(g.path)
        out.append((p.path, parse_qs(p.query)["rid"][0]))
    return out


def test_heartbeat_green_run_pings_start_then_success(db, monitor):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 2})
    url = monitor.url + "/ping/5b0c7e7e-0000-4000-8000-000000000001"
    r = check(db, {"STUCKGEN_HEARTBEAT_URL": url})
    assert r.exit_code == 0, r.output
    got = pings(monitor)
    assert [p for p, _ in got] == ["/ping/5b0c7e7e-0000-4000-8000-000000000001/start",
                                   "/ping/5b0c7e7e-0000-4000-8000-000000000001"]
    assert got[0][1] == got[1][1]  # one run id pairs the two pings
    assert b"result: healthy" in monitor.got[1].body and b"5b0c7e7e" not in monitor.got[1].body


def test_heartbeat_red_run_pings_start_then_its_exit_code(db, monitor):
    add_stuck(db, 2, seed_no=51)
    r = check(db, {}, "--heartbeat-url", monitor.url + "/ping/abc")
    assert r.exit_code == 1
    assert [p for p, _ in pings(monitor)] == ["/ping/abc/start", "/ping/abc/1"]
    assert b"FAIL stuck-count" in monitor.got[1].body


def test_heartbeat_unreachable_database_pings_exit_3(monitor):
    r = runner.invoke(app, ["check", "-d", "postgresql://u:pw-beat@127.0.0.1:1/db", "--connect-timeout", "2s",
                            "--heartbeat-url", monitor.url + "/ping/k"])
    assert r.exit_code == 3
    assert [p for p, _ in pings(monitor)] == ["/ping/k/start", "/ping/k/3"]
    assert b"pw-beat" not in monitor.got[1].body


def test_heartbeat_that_cannot_be_reached_changes_nothing(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 1})
    r = check(db, {"STUCKGEN_HEARTBEAT_URL": "http://127.0.0.1:9/ping/x"})
    assert r.exit_code == 0
    assert "heartbeat start ping to http://127.0.0.1 failed" in r.stderr and "/ping/x" not in r.stderr


def test_watch_notifies_on_change_with_state_shared_with_check(db, receivers, tmp_path, monkeypatch):
    from stuckgen.commands import watch as watch_cli

    slack, pd, hook = receivers
    env = {"STUCKGEN_SLACK_WEBHOOK_URL": slack.url + "/s", "STUCKGEN_AUDIT_FILE": str(tmp_path / "a.jsonl")}
    add_stuck(db, 2, seed_no=61)
    steps = iter([lambda: add_stuck(db, 4, seed_no=62), lambda: None, lambda: clear_stuck(db)])
    monkeypatch.setattr(watch_cli, "wait", lambda _s: next(steps)())
    r = runner.invoke(app, ["watch", "-d", db, "--count", "4", "--interval", "1s", "-f", "json"], env=env)
    assert r.exit_code == 0, r.output
    assert [m.json()["text"].split()[1] for m in slack.got] == ["TRIGGERED", "WORSE", "RESOLVED"]
    # check reads the same state: the incident is closed, a clean check says nothing
    assert check(db, env).exit_code == 0 and len(slack.got) == 3
