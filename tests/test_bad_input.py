"""Hardening: bad input gives one clear line on stderr, the documented exit code, no traceback, nothing written.

Every network peer here is on loopback. DNS failures use the reserved ``.invalid``
TLD, answered locally by ``no_dns_leaves`` as an RFC 6761 resolver would, so no
query ever leaves the machine.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.cookies import parse_cookies
from stuckgen.durations import parse_duration
from stuckgen.errors import ConfigError, InsecureTransportError, StuckgenError
from stuckgen.probe import ProbeTarget, probe
from stuckgen.reference.seed import KINDS, seed
from stuckgen.settings import load_settings

from conftest import start_pgbouncer, stop_pgbouncer

runner = CliRunner()
SECRET = "s3cr3t-internal-value-0123456789"


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in list(os.environ):
        if var.startswith("STUCKGEN_") and var != "STUCKGEN_TEST_DSN" or var in (
                "DATABASE_URL", "SUPABASE_DB_URL", "INTERNAL_API_SECRET", "VERCEL_AUTOMATION_BYPASS_SECRET",
                "VERCEL_TOKEN", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def no_dns_leaves(monkeypatch):
    """Names under the reserved .invalid TLD fail locally; nothing is sent to a name server."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name.rstrip(".").lower().endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def files_in(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def assert_one_line_error(result, code: int, *needles: str, notes: int = 0) -> None:
    """The documented exit code, one error line (plus an optional hint), nothing on stdout.

    ``notes``: informational lines a command prints before it fails (probe-auth's secret fingerprint).
    """
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()[notes:]
    assert lines and lines[0].startswith("stuckgen: error: "), result.stderr
    assert all(line.startswith("  hint: ") for line in lines[1:]), result.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert result.stdout == "", result.stdout


@pytest.fixture
def seeded(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {k: 1 for k in KINDS})
    return db


# -- loopback servers that misbehave --------------------------------------------------------------


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def tcp_server(handle: Callable[[socket.socket, dict], None], *, ssl_context: ssl.SSLContext | None = None,
               host: str = "127.0.0.1") -> Iterator[tuple[str, dict]]:
    """A raw TCP server on loopback; ``handle(sock, state)`` does whatever misbehaviour is wanted."""
    state: dict = {"connections": 0, "sent": 0, "stop": threading.Event()}

    class H(socketserver.BaseRequestHandler):
        def handle(self):
            state["connections"] += 1
            sock = self.request
            if ssl_context is not None:
                try:
                    sock = ssl_context.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError):
                    return
            try:
                handle(sock, state)
            except OSError:
                pass

    srv = _Server((host, 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"{host}:{srv.server_address[1]}", state
    finally:
        state["stop"].set()
        srv.shutdown()
        srv.server_close()


def _read_request(sock: socket.socket) -> bytes:
    data = b""
    sock.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def silent(sock, state):
    """Accept and never answer (until the test ends)."""
    state["stop"].wait(30)


def http_answer(status: int, body: bytes, headers: dict[str, str] | None = None):
    def handle(sock, state):
        _read_request(sock)
        head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\nconnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        sock.sendall(head.encode() + b"\r\n" + body)
        state["requests"] = state.get("requests", 0) + 1
    return handle


def huge_body(size: int):
    def handle(sock, state):
        _read_request(sock)
        sock.sendall(f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {size}\r\n\r\n".encode())
        block = b"[" * 65536
        while state["sent"] < size and not state["stop"].is_set():
            sock.sendall(block)
            state["sent"] += len(block)
    return handle


def trickle(sock, state):
    _read_request(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n")
    for _ in range(1000):
        if state["stop"].wait(0.05):
            return
        sock.sendall(b" ")


def run_probe(url: str, *, timeout: float = 2.0, **kw):
    with httpx.Client(follow_redirects=False, trust_env=False) as client:
        return probe(client, [url], secret=kw.pop("secret", SECRET), timeout=timeout, repeat=1, **kw)


# -- configuration: durations, ids, URLs, cookies, .env, stuckgen.toml ------------------------------


@pytest.mark.parametrize("args,needle", [
    (["--threshold", "soon"], "--threshold"),
    (["--threshold", "-5m"], "--threshold"),
    (["--threshold", "5"], "--threshold"),
    (["--threshold", "PT"], "--threshold"),
    (["--threshold", "1h30"], "--threshold"),
    (["--threshold", "99999999999999999999w"], "--threshold"),
    (["--since", "12 parsecs"], "--since"),
    (["--since", "99999999999999999999w"], "--since"),
    (["--statement-timeout", "9999999w"], "--statement-timeout"),
    (["--lock-timeout", "forever"], "--lock-timeout"),
    (["--connect-timeout", ""], "--connect-timeout"),
    (["--format", "xml"], "--format"),
    (["--map", "beat=x"], "unknown field"),
    (["--map", "heartbeat"], "--map"),
    (["--map", "heartbeat=parameters..x"], "heartbeat"),
    (["--map", "heartbeat=nope"], "'nope' not found"),
    (["--map", "heartbeat=prompt.key"], "not json"),
    (["--map", "step_log=prompt"], "step_log"),
    (["--table", "jobs"], "'jobs' not found"),
    (["--class", "zombie"], "--class"),
    (["--db-schema", "nowhere"], "not found"),
])
def test_scan_bad_option_is_one_line_exit_2_nothing_written(seeded, tmp_path, args, needle):
    before = files_in(tmp_path)
    r = runner.invoke(app, ["scan", "-d", seeded, "-f", "json", *args])
    assert_one_line_error(r, 2, needle)
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("dsn,code,needle", [
    ("not a dsn", 2, "malformed"),
    ("postgresql://app:PW-x9y8z7@[::1/db", 2, "malformed"),
    ("mysql://app:PW-x9y8z7@127.0.0.1/db", 2, "malformed"),
    ("host=127.0.0.1 password=PW-x9y8z7 bogus=1", 2, "malformed"),
    ("postgresql://app:PW-x9y8z7@127.0.0.1:notaport/db", 2, "port"),
    ("postgresql://app:PW-x9y8z7@127.0.0.1:99999/db", 2, "port"),
    ("postgresql://app:PW-x9y8z7@127.0.0.1:5432/db?sslmode=bogus", 2, "sslmode"),
    ("postgresql://app:PW-x9y8z7@127.0.0.1:1/db", 3, "cannot connect"),
    ("postgresql://app:PW-x9y8z7@db.nonexistent.invalid:5432/db", 3, "cannot connect"),
])
@pytest.mark.parametrize("debug", [False, True])
def test_bad_database_url_names_the_problem_never_the_password(dsn, code, needle, debug):
    r = runner.invoke(app, ["scan", "-d", dsn, "--connect-timeout", "2s", *(["--debug"] if debug else [])])
    assert r.exit_code == code, (r.stdout, r.stderr)
    assert "PW-x9y8z7" not in r.stdout + r.stderr
    if not debug:
        assert_one_line_error(r, code, needle)


def test_wrong_password_is_exit_3_and_never_echoed(pg_server, db, tmp_path):
    # A PgBouncer that checks passwords (md5 against its auth file) in front of the test server.
    bouncer = start_pgbouncer(pg_server, tmp_path / "pgb", auth_type="md5",
                              users={"app_user": "right-pw-123456"}, force_user="postgres")
    try:
        good = bouncer.route(db, user="app_user", password="right-pw-123456")
        r = runner.invoke(app, ["schema", "-d", good, "-f", "json"])
        assert r.exit_code == 0, r.stderr
        bad = bouncer.route(db, user="app_user", password="Wr0ng-Pa55-abcdef")
        for extra in ([], ["--debug"]):
            r = runner.invoke(app, ["scan", "-d", bad, *extra])
            assert r.exit_code == 3, r.stderr
            assert "Wr0ng-Pa55-abcdef" not in r.stdout + r.stderr
            assert "password authentication failed" in r.stderr
        # Named as what it is, with a fix about the credentials, not the network.
        assert_one_line_error(runner.invoke(app, ["scan", "-d", bad]), 3, "rejected the credentials")
        r = runner.invoke(app, ["doctor", "-d", bad, "--no-probe", "-f", "json"])
        assert r.exit_code == 3, r.stderr
        finding = next(f for f in json.loads(r.stdout)["findings"] if f["id"] == "database-unreachable")
        assert "password" in finding["fix"] and "network" not in finding["fix"], finding
        assert "Wr0ng-Pa55-abcdef" not in r.stdout + r.stderr
    finally:
        stop_pgbouncer(bouncer)


def test_unreachable_database_fails_within_the_connect_timeout():
    # A loopback peer that accepts TCP and never speaks: only the connect timeout can end the wait.
    with tcp_server(silent) as (addr, state):
        t0 = time.monotonic()
        r = runner.invoke(app, ["scan", "-d", f"postgresql://app@{addr}/db", "--connect-timeout", "2s"])
        elapsed = time.monotonic() - t0
    assert_one_line_error(r, 3, "cannot connect")
    assert state["connections"] >= 1
    assert elapsed < 3 * 2.0, f"took {elapsed:.1f}s for a 2s connect timeout"


@pytest.mark.parametrize("setup,code,needle", [
    ("ALTER TABLE generations DROP COLUMN status", 2, "status"),
    ("ALTER TABLE generations RENAME TO gens", 2, "'generations' not found"),
    ("ALTER TABLE generations DROP COLUMN created_at", 0, ""),
])
def test_missing_table_or_column(db, setup, code, needle):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(setup)
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json"])
    if code:
        assert_one_line_error(r, code, needle)
    else:  # no created column: scan still works from the heartbeat, and says what it cannot tell
        assert r.exit_code == 0, r.stderr
        assert "no created time" in r.stderr


@pytest.mark.parametrize("column,sql_type,value", [
    ("prompt", None, None),                      # text that is no time
    ("cost", None, None),                        # numeric: read as epoch seconds
    ("session_id", None, None),                  # uuid
    ("flag", "boolean", "true"),
    ("blob", "bytea", "'\\x00ff'::bytea"),
    ("tags", "text[]", "ARRAY['a','b']"),
])
def test_heartbeat_mapped_to_a_column_of_an_unexpected_type_never_aborts_the_scan(seeded, column, sql_type, value):
    if sql_type:
        with psycopg.connect(seeded, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE generations ADD COLUMN {column} {sql_type}")
            conn.execute(f"UPDATE generations SET {column} = {value}")
    r = runner.invoke(app, ["scan", "-d", seeded, "-f", "json", "--map", f"heartbeat={column}"])
    assert r.exit_code == 1, (r.exit_code, r.stderr)  # the seeded stuck rows are still found
    doc = json.loads(r.stdout)
    assert doc["summary"]["stuck"] == len(doc["rows"])


def test_json_fields_missing_in_some_rows_and_malformed_in_others(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {k: 1 for k in KINDS})
        bad = [
            '{}', 'null', '[]', '"a string"', '42',
            '{"lastHeartbeatAt": "yesterday", "lastStep": "model:generate:heartbeat"}',
            '{"lastHeartbeatAt": "2026-13-45T99:99:00Z"}',
            '{"lastHeartbeatAt": "2026-02-30T10:00:00Z"}',
            '{"lastHeartbeatAt": {"nested": true}, "debugLogs": "not-an-array"}',
            '{"lastHeartbeatAt": [1, 2], "debugLogs": [1, "x", null, {"step": 5}, {"at": "x"}]}',
            '{"lastStep": 42, "debugLogs": [{"step": "process:trigger-failed-http", "status": "abc"}]}',
            '{"lastHeartbeatAt": 1e400}',
            '{"lastHeartbeatAt": -99999999999999999999}',
            '{"lastHeartbeatAt": true, "error": {"deep": [1]}}',
        ]
        for params in bad:
            conn.execute(
                "INSERT INTO generations (id, session_id, user_id, model_id, prompt, parameters, status, created_at) "
                "VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'm', 'p', %s::jsonb, 'processing', "
                "(now() AT TIME ZONE 'UTC') - interval '1 hour')", (params.replace("1e400", "1e300"),))
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json"])
    assert r.exit_code == 1, r.stderr
    doc = json.loads(r.stdout)
    ids_seen = {row["id"] for row in doc["rows"]}
    assert len(ids_seen) == doc["summary"]["stuck"] >= len(bad)
    notes = [n for row in doc["rows"] for n in row["notes"]]
    assert any("'yesterday' is not a timestamp" in n for n in notes)
    assert any("2026-13-45" in n for n in notes)


# -- property-based: durations, config files, cookies, URLs, ids -----------------------------------


@given(st.text(max_size=40))
@hsettings(max_examples=400, deadline=None)
def test_any_duration_text_parses_to_a_bounded_number_or_a_config_error(text):
    try:
        v = parse_duration(text, option="--threshold")
    except ConfigError as exc:
        assert "--threshold" in exc.message
        return
    assert 0 <= v < float("inf")


@given(st.integers(min_value=0, max_value=10**30), st.sampled_from(["ms", "s", "m", "h", "d", "w"]))
@hsettings(max_examples=200, deadline=None)
def test_any_number_with_a_unit_is_accepted_or_refused_as_too_long(n, unit):
    try:
        v = parse_duration(f"{n}{unit}", option="--since")
    except ConfigError as exc:
        assert "--since" in exc.message
        return
    assert v <= 100 * 366 * 86400


_toml_scalars = st.one_of(st.text(max_size=12), st.integers(-10**20, 10**20), st.booleans(),
                          st.floats(allow_nan=False, allow_infinity=False), st.lists(st.text(max_size=5), max_size=3))
_keys = st.sampled_from(["threshold", "since", "table", "inflight_statuses", "statement_timeout", "base_url",
                         "lock-timeout", "outputs", "queue", "bogus", "database_url", "naive_timezone"])


def _toml_value(v) -> str:
    return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")


@given(st.dictionaries(_keys, _toml_scalars, max_size=5),
       st.dictionaries(st.sampled_from(["heartbeat", "step_log", "table", "nope"]), _toml_scalars, max_size=2),
       st.lists(st.dictionaries(st.sampled_from(["class", "why", "heartbeat", "steps_any", "job", "x"]),
                                _toml_scalars, max_size=3), max_size=2))
@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_stuckgen_toml_loads_or_raises_config_error(tmp_path, top, mapping, rules):
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    if mapping:
        lines.append("[mapping]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in mapping.items()]
    for rule in rules:
        lines.append("[[rules]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in rule.items()]
    cfg = tmp_path / "stuckgen.toml"
    cfg.write_text("\n".join(lines) + "\n")
    try:
        s = load_settings({}, environ={}, cwd=tmp_path)
        if s.rules:
            from stuckgen.scan import rules_from_config
            rules_from_config(s.rules)
    except ConfigError as exc:
        assert exc.message


@given(st.text(max_size=300))
@hsettings(max_examples=300, deadline=None)
def test_any_cookie_string_is_described_never_raises(text):
    info = parse_cookies(text, now=1.8e9)
    assert info.usable or info.problems or not info.auth_cookie
    if len(info.header) >= 8:
        assert info.header not in repr(info), "the cookie value is a credential: never in a repr"


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=60))
@hsettings(max_examples=300, deadline=None)
def test_any_url_is_a_target_or_a_config_error(text):
    try:
        urls = load_settings({"base_url": text}, environ={}, cwd=Path("/")).base_url
        for u in urls:
            ProbeTarget(url=u)
    except ConfigError as exc:
        assert exc.message


@given(st.one_of(st.text(max_size=50), st.integers().map(str), st.uuids().map(lambda u: str(u)[:-1])))
@hsettings(max_examples=200, deadline=None)
def test_probe_ids_of_the_wrong_type_are_refused(text):
    from stuckgen.probe import _choose_probe_id
    import uuid as _uuid

    try:
        _uuid.UUID(text)
        return
    except ValueError:
        pass
    with pytest.raises(ConfigError, match="is not a UUID"):
        _choose_probe_id(text, None)


@pytest.mark.parametrize("content,needle", [
    ("DATABASE_URL='unterminated\n", ".env:"),
    ("this is not a line\n", ".env:1"),
    ("OK=1\nexport = =\n", ".env:2"),
    (b"\xff\xfe garbage", "UTF-8"),
])
def test_env_file_with_syntax_errors(tmp_path, content, needle):
    p = tmp_path / ".env"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = files_in(tmp_path)
    r = runner.invoke(app, ["scan"])
    assert_one_line_error(r, 2, needle)
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("content,needle", [
    ("threshold = \n", "invalid TOML"),
    ("[mapping\nheartbeat='x'", "invalid TOML"),
    ("threshold = '5 fortnights'\n", "--threshold"),
    ("colour = 'blue'\n", "unknown setting"),
    ("mapping = 5\n", "mapping"),
    ("rules = 'all'\n", "rules must be an array"),
    ("[[rules]]\nclass = 'x'\nheartbeat = 'yes'\n", "true or false"),
    ("[mapping]\nbeat = 'x'\n", "unknown field"),
    ("base_url = 'app.example.com'\n", "no scheme"),
])
def test_broken_stuckgen_toml(seeded, tmp_path, content, needle):
    (tmp_path / "stuckgen.toml").write_text(content)
    before = files_in(tmp_path)
    r = runner.invoke(app, ["scan", "-d", seeded, "-f", "json"])
    assert_one_line_error(r, 2, needle)
    assert files_in(tmp_path) == before


# -- HTTP: the probe against misbehaving loopback peers ---------------------------------------------


def test_url_without_scheme_is_refused(tmp_path):
    r = runner.invoke(app, ["probe-auth", "--url", "app.example.com", "-f", "json"], env={"INTERNAL_API_SECRET": SECRET})
    assert_one_line_error(r, 2, "no scheme")


def test_plain_http_to_a_non_loopback_host_with_a_secret_sends_nothing():
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda req: sent.append(req) or httpx.Response(202))
    with httpx.Client(transport=transport) as client:
        with pytest.raises(InsecureTransportError, match="plain HTTP"):
            probe(client, ["http://app.example.com"], secret=SECRET, timeout=1)
    assert sent == []
    r = runner.invoke(app, ["probe-auth", "--url", "http://app.example.com", "-f", "json"],
                      env={"INTERNAL_API_SECRET": SECRET})
    assert_one_line_error(r, 2, "plain HTTP", notes=1)
    assert SECRET not in r.stderr


def test_redirect_to_another_origin_is_recorded_never_followed():
    with tcp_server(http_answer(202, b'{"accepted": true}', {"content-type": "application/json"})) as (other, seen):
        with tcp_server(http_answer(307, b"", {"location": f"http://{other}/api/generate/process"})) as (addr, _):
            m = run_probe(f"http://{addr}")
    assert seen.get("requests", 0) == 0, "the other origin must never receive the secret"
    assert {r.status for r in m.results} == {307}
    assert all(r.location and other in r.location for r in m.results)
    from stuckgen.findings import analyze_probe

    f = [x for x in analyze_probe(m, secret=SECRET, cookie_info=None, now=time.time()) if x.id == "redirect"]
    assert f and "crosses origins" in " ".join((f[0].title, *f[0].evidence, f[0].fix))


def plain_http_server(sock, state):
    """What a plain HTTP server says to a TLS ClientHello: a 400 in clear text."""
    sock.recv(4096)
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")


def test_tls_failure_plain_tcp_on_an_https_url():
    with tcp_server(plain_http_server) as (addr, _):
        m = run_probe(f"https://{addr}")
    assert m.results and {r.failure for r in m.results} == {"tls"}
    assert not m.any_answered


def test_tls_failure_self_signed_certificate(tmp_path):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    with tcp_server(http_answer(202, b'{"accepted": true}'), ssl_context=ctx) as (addr, _):
        m = run_probe(f"https://{addr}")
    assert {r.failure for r in m.results} == {"tls"}


def test_dns_failure():
    m = run_probe("https://app.nonexistent.invalid")
    assert {r.failure for r in m.results} == {"dns"}
    r = runner.invoke(app, ["probe-auth", "--url", "https://app.nonexistent.invalid", "-f", "json", "--http-timeout", "2s"],
                      env={"INTERNAL_API_SECRET": SECRET})
    assert r.exit_code == 3, r.stderr
    assert "Traceback" not in r.stderr and SECRET not in r.stdout + r.stderr


def test_a_body_of_many_megabytes_is_read_with_a_cap():
    size = 64 * 1024 * 1024
    with tcp_server(huge_body(size)) as (addr, state):
        tracemalloc.start()
        try:
            m = run_probe(f"http://{addr}", timeout=5)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert all(r.body_truncated and r.status == 200 for r in m.results)
    assert peak < size / 16, f"peak {peak} bytes for a {size}-byte body"
    assert state["sent"] < size / 2, "the client stopped reading long before the end"


def test_a_non_json_body_is_reported_not_parsed():
    for body, ctype in ((b"<html>Internal oops</html>", "text/html"), (b'{"error": "Unauth', "application/json"),
                        (b"\xff\xfe\x00binary", "application/json"), (b"[1,2,3]", "application/json")):
        with tcp_server(http_answer(500, body, {"content-type": ctype})) as (addr, _):
            m = run_probe(f"http://{addr}")
        assert {r.status for r in m.results} == {500}
        assert all(r.error is None and not r.accepted for r in m.results)


def test_a_server_that_never_answers_times_out():
    with tcp_server(silent) as (addr, _):
        t0 = time.monotonic()
        m = run_probe(f"http://{addr}", timeout=0.5)
        elapsed = time.monotonic() - t0
    assert {r.failure for r in m.results} == {"timeout"}
    assert all(r.latency < 3 * 0.5 for r in m.results)
    assert elapsed < 3 * 0.5 * len(m.results)


def test_a_server_that_trickles_is_cut_off():
    with tcp_server(trickle) as (addr, _):
        m = run_probe(f"http://{addr}", timeout=0.5)
    assert {r.failure for r in m.results} <= {"too-slow", "timeout"} and m.results
    assert all(r.latency < 3 * 0.5 for r in m.results)


@pytest.mark.parametrize("cookie", [
    "garbage", ";;;;", "=", "sb-x-auth-token=", "sb-x-auth-token=base64-%%%%", "sb-x-auth-token=base64-" + "A" * 5000,
    "sb-x-auth-token.0=a; sb-x-auth-token.7=b", "\x00\x01", "sb-x-auth-token=eyJ.eyJ.sig",
])
def test_a_garbage_cookie_is_described_and_never_sent_as_a_session(cookie):
    info = parse_cookies(cookie, now=1.8e9)
    assert not info.usable
    assert info.problems
    with tcp_server(http_answer(401, b'{"error": "Unauthorized"}', {"content-type": "application/json"})) as (addr, _):
        r = runner.invoke(app, ["probe-auth", "--url", f"http://{addr}", "-f", "json", "--cookie", cookie])
    assert r.exit_code == 1, (r.exit_code, r.stderr)  # the unusable cookie is a finding
    assert "Traceback" not in r.stderr
    if len(cookie) > 8:
        assert cookie not in r.stdout + r.stderr


def test_the_console_script_never_shows_a_traceback(tmp_path):
    exe = Path(sys.executable).parent / "stuckgen"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUCKGEN_") and k != "DATABASE_URL"}
    (tmp_path / "stuckgen.toml").write_text("threshold = \n")
    p = subprocess.run([str(exe), "scan"], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.startswith("stuckgen: error: ") and "Traceback" not in p.stderr
    assert p.stdout == ""
