"""retrigger: the process route called again, its request shape, retries, breaker, attempt limit, verification."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from typing import Any

import httpx
import psycopg
import pytest
import respx

from stuckgen import db as dbmod
from stuckgen import http as transport
from stuckgen import remediate
from stuckgen.audit import AuditRecord
from stuckgen.errors import ConfigError, InsecureTransportError
from stuckgen.reference import ReferenceDeployment
from stuckgen.reference.seed import seed
from remediation_helpers import OPTS, audit_rows, mapping_of, select, statuses, table_audit

SECRET = "s3cret-value-for-tests-4f1a"


# -- retrigger: helpers -------------------------------------------------------------------------------


def rt_options(url: str, **kw: Any) -> remediate.RetriggerOptions:
    base = dict(url=url, scan=OPTS, secret=SECRET, backoff=0.01, max_backoff=0.05, poll=0.1)
    base.update(kw)
    return remediate.RetriggerOptions(**base)


def retrigger(conn, m, targets, audit, options, client=None, run_id="rt-1"):
    own = client is None
    client = client or httpx.Client(follow_redirects=False, timeout=2.0)
    try:
        return remediate.retrigger_rows(client, conn, m, targets, options=options, audit=audit, run_id=run_id,
                                        operator="tester")
    finally:
        if own:
            client.close()


def test_retry_delay_backs_off_with_jitter_and_honours_retry_after():
    rng = random.Random(1)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (8, 10.0)):
        d = transport.retry_delay(attempt, base=0.5, cap=10.0, retry_after=None, rng=rng)
        assert ceiling / 2 <= d <= ceiling
    assert transport.retry_delay(1, base=0.5, cap=10, retry_after=7) == 7
    assert transport.retry_delay(1, base=0.5, cap=10, retry_after=3600) == transport.MAX_RETRY_AFTER
    assert transport.parse_retry_after("12") == 12
    assert transport.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert transport.parse_retry_after("soon") is None


def test_body_template_substitutes_the_id_and_must_name_it():
    assert json.loads(remediate.render_body('{"generationId": "{id}", "n": 1}', "abc")) == {"generationId": "abc", "n": 1}
    with pytest.raises(ConfigError, match="must contain"):
        remediate.render_body('{"a": 1}', "abc")
    with pytest.raises(ConfigError, match="not JSON"):
        remediate.render_body("{", "abc")


def test_no_secret_over_plain_http_to_a_non_loopback_host(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 1})
    m = mapping_of(conn)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post("http://app.example.com/api/generate/process").respond(202)
        with pytest.raises(InsecureTransportError, match="plain HTTP to app.example.com"):
            retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                      rt_options("http://app.example.com/api/generate/process"))
        assert not route.called
    transport.check_transport("http://127.0.0.1:9/x", sends_credentials=True)
    transport.check_transport("http://[::1]:9/x", sends_credentials=True)
    transport.check_transport("http://app.example.com/x", sends_credentials=False)


def test_a_client_that_follows_redirects_is_refused(conn, db):
    m = mapping_of(conn)
    with httpx.Client(follow_redirects=True) as client, pytest.raises(ConfigError, match="redirects"):
        retrigger(conn, m, [], table_audit(conn, m), rt_options("https://app.example.com/p"), client=client)


# -- retrigger: exact HTTP shapes (respx) ------------------------------------------------------------

URL = "https://app.example.com/api/generate/process"


def test_retrigger_retries_503_and_429_then_succeeds_with_the_apps_request_shape(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 1})
    m = mapping_of(conn)
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=[
            httpx.Response(503), httpx.Response(429, headers={"retry-after": "0"}),
            httpx.Response(202, json={"accepted": True, "generationIds": [rows[0].id]})])
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m), rt_options(URL))
    o = res.outcomes[0]
    assert (o.outcome, o.tries, o.attempt, o.http_status) == ("accepted", 3, 1, 202)
    assert route.call_count == 3
    req = route.calls[-1].request
    assert json.loads(req.content) == {"generationId": rows[0].id}
    assert req.headers["x-internal-secret"] == SECRET
    assert req.headers["idempotency-key"] == f"stuckgen-{rows[0].id}-1"
    assert {c.request.headers["idempotency-key"] for c in route.calls} == {f"stuckgen-{rows[0].id}-1"}
    assert "cookie" not in req.headers
    rec = audit_rows(db, "retrigger")
    assert [(r[0], r[1]) for r in rec] == [(rows[0].id, "accepted")]


def test_retrigger_retries_timeouts_then_reports_them(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 1})
    m = mapping_of(conn)
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=httpx.ReadTimeout("slow"))
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m), rt_options(URL))
    assert route.call_count == 3
    assert (res.outcomes[0].outcome, res.exit_code) == ("timeout", 1)


def test_circuit_breaker_stops_at_the_first_401(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 10})
    m = mapping_of(conn)
    with respx.mock() as mock:
        route = mock.post(URL).respond(401, json={"error": "Unauthorized"})
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                        rt_options(URL, concurrency=1))
    assert route.call_count == 1
    assert res.counts == {"auth-rejected": 1, "not-sent": 9}
    assert res.stop_kind == "auth" and "probe-auth" in (res.stopped or "") and "INTERNAL_API_SECRET" in res.stopped


@pytest.mark.parametrize(("status", "code", "words"), [
    (503, "DEPLOYMENT_PAUSED", "Resume the project"),  # a 5xx, yet not worth a retry: the project is paused
    (403, "DEPLOYMENT_BLOCKED", "credentials play no part"),  # a 403, yet not the app's secret
])
def test_a_platform_wall_stops_the_run_at_once_and_names_its_fix(conn, db, status, code, words):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 5})
    m = mapping_of(conn)
    with respx.mock() as mock:
        route = mock.post(URL).respond(status, text=f"{status}: {code}\nCode: {code}\n",
                                       headers={"content-type": "text/plain; charset=utf-8", "x-vercel-error": code})
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                        rt_options(URL, concurrency=1))
    assert route.call_count == 1  # no retries, no further row
    assert res.counts == {"rejected": 1, "not-sent": 4}
    assert res.stop_kind == "platform" and code in (res.stopped or "") and words in (res.stopped or "")
    assert "INTERNAL_API_SECRET" not in (res.stopped or "") and res.exit_code == 1


def test_a_redirect_is_not_followed_and_stops_the_run(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 3})
    m = mapping_of(conn)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(URL).respond(308, headers={"location": "https://other.example.net/api/generate/process"})
        other = mock.post("https://other.example.net/api/generate/process").respond(202)
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                        rt_options(URL, concurrency=1))
    assert route.call_count == 1 and not other.called
    assert res.counts == {"redirected": 1, "not-sent": 2} and "other.example.net" in (res.stopped or "")


def test_rows_that_moved_on_are_re_read_and_not_sent(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 2})
    m = mapping_of(conn)
    sel = select(conn, m, all_stuck=True)
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE generations SET status = 'completed' WHERE id = %s", (rows[0].id,))
    with respx.mock() as mock:
        route = mock.post(URL).respond(202)
        res = retrigger(conn, m, sel.targets, table_audit(conn, m), rt_options(URL))
    assert route.call_count == 1
    assert json.loads(route.calls[0].request.content) == {"generationId": rows[1].id}
    assert {o.id: o.outcome for o in res.outcomes}[rows[0].id] == "skipped-completed"


def test_attempt_limit_is_counted_from_the_audit_log_across_runs(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 2})
    m = mapping_of(conn)
    audit = table_audit(conn, m)
    a, b = rows[0].id, rows[1].id

    def rec(rid: str, outcome: str, run: str) -> AuditRecord:
        return AuditRecord(run_id=run, action="retrigger", row_id=rid, table="public.generations",
                           at=datetime.now(timezone.utc), operator="t", outcome=outcome)

    with dbmod.transaction(conn, read_only=False):
        audit.append(conn, [rec(a, "accepted", "r1"), rec(a, "timeout", "r2"), rec(a, "gave-up", "r3"),
                            rec(b, "accepted", "r1"), rec(b, "auth-rejected", "r2")])  # a 401 never ran anything
    with respx.mock() as mock:
        route = mock.post(URL).respond(202)
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, audit, rt_options(URL))
    by = {o.id: o for o in res.outcomes}
    assert by[a].outcome == "exhausted" and "stuckgen fail" in by[a].reason and not by[a].ok
    assert by[b].outcome == "accepted" and by[b].attempt == 2
    assert route.call_count == 1 and route.calls[0].request.headers["idempotency-key"] == f"stuckgen-{b}-2"


def test_an_unreachable_deployment_stops_the_run_with_exit_3(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 6})
    m = mapping_of(conn)
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                    rt_options(f"http://127.0.0.1:{port}/api/generate/process", concurrency=1, tries=1))
    assert res.counts == {"unreachable": 3, "not-sent": 3}
    assert res.stop_kind == "unreachable" and res.exit_code == 3


# -- retrigger against the reference deployment ------------------------------------------------------


def test_retrigger_turns_never_started_rows_into_completed_ones(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        rows = seed(c, {"never-started": 6, "completed": 1})
    m = mapping_of(conn)
    with ReferenceDeployment(db, "healthy", secret=SECRET, work_seconds=0.2, heartbeat_interval=0.05) as dep:
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                        rt_options(dep.url + dep.route, wait=10.0))
        counters = dep.counters
    stuck = [r.id for r in rows if r.kind == "never-started"]
    assert res.counts == {"accepted": 6} and res.exit_code == 0
    assert {o.verify for o in res.outcomes} == {"completed"}
    st = statuses(db)
    assert all(st[rid] == "completed" for rid in stuck)
    assert all(counters.accepted.get(rid) == 1 and counters.max_in_flight.get(rid) == 1 for rid in stuck)
    assert len(audit_rows(db, "retrigger")) == 6


def test_circuit_breaker_against_a_deployment_without_the_secret(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 12})
    m = mapping_of(conn)
    with ReferenceDeployment(db, "secret-missing", secret=SECRET) as dep:
        res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                        rt_options(dep.url + dep.route, concurrency=4))
        sent = sum(v for (path, _), v in dep.counters.requests.items() if path == dep.route)
    assert res.stop_kind == "auth" and "probe-auth" in (res.stopped or "")
    assert res.counts.get("auth-rejected", 0) >= 1 and res.counts.get("not-sent", 0) >= 8
    assert sent <= 4  # at most the ones already in flight when the first 401 arrived
    assert set(statuses(db).values()) == {"processing"}


def test_retries_against_a_deployment_that_hangs_on_some_calls(conn, db):
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 8})
    m = mapping_of(conn)
    with ReferenceDeployment(db, "slow", secret=SECRET, latency=0.01, hang_seconds=5.0, work_seconds=0.1,
                             heartbeat_interval=0.05) as dep:
        with httpx.Client(follow_redirects=False, timeout=0.4) as client:
            res = retrigger(conn, m, select(conn, m, all_stuck=True).targets, table_audit(conn, m),
                            rt_options(dep.url + dep.route, concurrency=4, tries=4), client=client)
    assert res.counts == {"accepted": 8}, res.outcomes
    assert any((o.tries or 0) > 1 for o in res.outcomes)


def test_retrigger_options_repr_never_shows_the_secrets():
    o = remediate.RetriggerOptions(url="https://app.example.com/api/generate/process", scan=OPTS, secret=SECRET, bypass_secret="bypass-" + SECRET)
    assert SECRET not in repr(o) and SECRET not in str(o)
