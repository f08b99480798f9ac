"""Hardening: no secret anywhere in anything written; hostile identifiers quoted; private files 0600."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.seed import KINDS, seed
from stuckgen.reference.provider import ProviderStandIn
from stuckgen.reference.server import ReferenceDeployment
from tests.vercel_standin import vercel_standin

runner = CliRunner()
SECRET = "Internal-S3cret-4c1f9e7b2d"
BYPASS = "Bypass-S3cret-9a8b7c6d5e"
PASSWORD = "Db-Passw0rd-1e2d3c4b"
VERCEL = "Vercel-T0ken-77aa88bb"
VERCEL_VALUE = "Vercel-Side-S3cret-Value-0a1b2c3d"  # what Vercel's single-variable GET returns
VERCEL_BYPASS_OTHER = "0ther-Bypass-On-The-Project-4d5e"  # a key of the project's protectionBypass
REPLICATE = "r8_Repl1cate-T0ken-5e6f7a8b"
WEBHOOK_SECRET = "whsec_V2ViaG9va1NpZ25pbmdTZWNyZXQ0Mg=="
HOSTILE = "'; DROP TABLE generations; --"
SLACK_TOKEN = "SlackH00kT0ken-3c4d5e6f"  # the path of a Slack incoming webhook is its credential
ROUTING_KEY = "PagerDutyR0utingKey-8899aabbccdd"
NOTIFY_URL_TOKEN = "Hook-Url-T0ken-1a2b3c"
NOTIFY_SIGNING = "whsec_Tm90aWZ5U2lnbmluZ1NlY3JldDQyNDI0Mg=="
HEARTBEAT_TOKEN = "beat-5e6f7a8b-0000-4000-8000-00000000cafe"  # a ping URL lets anyone ping


def _vercel_state() -> Any:
    """The Vercel API stand-in: the secret's value readable, the project's bypass secrets as keys."""
    from tests.vercel_standin import VercelStandIn, recorded

    project = recorded("project.json")
    project["protectionBypass"] = {BYPASS: {"createdAt": 1764590400000, "createdBy": "u", "scope": "automation-bypass"},
                                   VERCEL_BYPASS_OTHER: {"createdAt": 1761955200000, "createdBy": "u",
                                                         "scope": "automation-bypass", "isEnvVar": False}}
    single = {**recorded("env_single_with_value.json"), "value": VERCEL_VALUE}
    return VercelStandIn(token=VERCEL, project_body=project, values={"Xq1k9RwL2mC4vN8d": single})


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in list(os.environ):
        if (var.startswith("STUCKGEN_") and var != "STUCKGEN_TEST_DSN") or var in (
                "DATABASE_URL", "SUPABASE_DB_URL", "INTERNAL_API_SECRET", "VERCEL_AUTOMATION_BYPASS_SECRET",
                "VERCEL_TOKEN", "VERCEL_PROJECT_ID", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS",
                "REPLICATE_API_TOKEN", "REPLICATE_API_KEY", "REPLICATE_WEBHOOK_SECRET"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def with_password(dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    params["password"] = PASSWORD  # the test servers trust; the value only has to travel
    return make_conninfo(**params)


def test_no_secret_in_any_output_of_any_command_at_any_verbosity(db, tmp_path, monkeypatch):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {k: 2 for k in KINDS})
        ids = [r[0] for r in conn.execute("SELECT id::text FROM generations WHERE status = 'processing' ORDER BY id")]
    dsn = with_password(db)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    from stuckgen.reference.receiver import PAGERDUTY_ACCEPTED, SLACK_OK, RecordingReceiver

    with ReferenceDeployment(db, "protected", secret=SECRET, bypass_secret=BYPASS,
                             work_seconds=0.01, heartbeat_interval=0.01) as dep, \
            ProviderStandIn(token=REPLICATE, webhook_secret=WEBHOOK_SECRET) as provider, \
            RecordingReceiver(SLACK_OK) as slack, RecordingReceiver(PAGERDUTY_ACCEPTED) as pd, \
            RecordingReceiver() as hook, RecordingReceiver() as monitor, \
            vercel_standin(_vercel_state()) as vercel:
        with psycopg.connect(db, autocommit=True) as conn:
            # The stuck provider rows' predictions, one succeeded (a lost callback) and one unknown.
            pids = [r[0] for r in conn.execute(
                "SELECT parameters->>'replicatePredictionId' FROM generations "
                "WHERE parameters ? 'replicatePredictionId' ORDER BY id")]
        for i, pid in enumerate(pids):
            if i % 2 == 0:
                provider.add("succeeded", prediction_id=pid)
        cookie = "; ".join(f"{k}={v}" for k, v in dep.session_cookie().items())
        cookie_values = [v for v in dep.session_cookie().values()]
        env = {"DATABASE_URL": dsn, "INTERNAL_API_SECRET": SECRET, "STUCKGEN_COOKIE": cookie,
               "VERCEL_AUTOMATION_BYPASS_SECRET": BYPASS, "VERCEL_TOKEN": VERCEL,
               "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(out_dir / "summary.md"),
               "STUCKGEN_AUDIT_FILE": str(out_dir / "audit.jsonl"), "REPLICATE_API_TOKEN": REPLICATE,
               "REPLICATE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STUCKGEN_REPLICATE_API_URL": provider.url,
               "STUCKGEN_SLACK_WEBHOOK_URL": f"{slack.url}/services/T1/B2/{SLACK_TOKEN}",
               "STUCKGEN_PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "STUCKGEN_PAGERDUTY_EVENTS_URL": pd.url + "/v2/enqueue",
               "STUCKGEN_NOTIFY_WEBHOOK_URL": f"{hook.url}/in/{NOTIFY_URL_TOKEN}",
               "STUCKGEN_NOTIFY_WEBHOOK_SECRET": NOTIFY_SIGNING,
               "STUCKGEN_HEARTBEAT_URL": f"{monitor.url}/ping/{HEARTBEAT_TOKEN}",
               "VERCEL_PROJECT_ID": "genapp", "STUCKGEN_VERCEL_API_URL": vercel.url}
        url = ["--url", dep.url]
        commands = [
            ["scan", "-f", "json"], ["scan", "-f", "csv"], ["scan", "-f", "table"],
            ["schema", "-f", "json"], ["show", ids[0], "-f", "json"], ["show", ids[1], "-f", "table"],
            ["probe-auth", *url, "-f", "json"], ["probe-auth", *url, "-f", "markdown"],
            ["doctor", *url, "-f", "json", "--repeat", "1"],
            ["doctor", *url, "--repeat", "1", "-o", str(out_dir / "report.md")],
            ["check", "--probe", *url, "--junit", str(out_dir / "junit.xml"), "-f", "json"],
            ["check", "--metrics-file", str(out_dir / "stuckgen.prom"), "-f", "openmetrics"],
            ["retrigger", ids[0], *url, "--yes", "-f", "json"],
            ["fail", "--all-stuck", "--yes", "-f", "json", "--batch-size", "4"],
            ["history", "-f", "json"],
            ["reconcile", "-f", "json"], ["reconcile", "-f", "table"], ["reconcile", "-f", "csv"],
            ["reconcile", "-f", "markdown"],
            ["reconcile", "--apply", *url, "--yes", "-f", "json"],
            ["reconcile", "--apply", "--via", "webhook", "--webhook-signature", "app", *url, "--yes", "-f", "table"],
            ["reconcile", "-f", "json", "--provider-url", "http://provider.example/v1"],
            ["reconcile", "-f", "json", "--provider-url", "http://127.0.0.1:1/v1", "--tries", "1"],
            # error paths: a refused connection, a malformed URL, a bad option (messages quote inputs)
            ["scan", "-d", dsn.replace(conninfo_to_dict(dsn).get("dbname", "x"), "nodb_x"), "-f", "json"],
            ["scan", "-d", f"postgresql://u:{PASSWORD}@127.0.0.1:1/x", "--connect-timeout", "2s"],
            ["scan", "-d", f"postgresql://u:{PASSWORD}@[::1/x"],
            ["probe-auth", "--url", "http://app.example.com", "-f", "json"],
        ]
        texts: list[str] = []
        for debug in ([], ["--debug"]):
            for cmd in commands:
                r = runner.invoke(app, [*cmd, *debug], env=env)
                assert r.exit_code != 4, (cmd, r.stderr)
                texts += [r.stdout, r.stderr]
            run = json.loads(runner.invoke(app, ["history", "-f", "json"], env=env).stdout)
            run_ids = [x["run_id"] for x in (run.get("runs") if isinstance(run, dict) else run)
                       if x.get("action") == "fail"]
            for rid in run_ids[:1]:
                r = runner.invoke(app, ["undo", rid, "--yes", "-f", "json", *debug], env=env)
                texts += [r.stdout, r.stderr]
        dep.wait_idle()
        assert slack.got and pd.got and hook.got and monitor.got, "every channel was exercised"
        sent = [m.body.decode(errors="replace") for m in slack.got + hook.got + monitor.got]
        # PagerDuty's body must carry its own routing key, and nothing else secret.
        sent += [m.body.decode().replace(ROUTING_KEY, "<routing key>") for m in pd.got]
    written = {p: p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()}
    assert {"audit.jsonl", "report.md", "junit.xml", "summary.md", "stuckgen.prom"} <= {p.name for p in written}
    everything = "\n".join(texts + list(written.values()) + sent)
    assert any(p.startswith("/v1/projects/genapp/env/") for p, _ in vercel.requests), "doctor read a value"
    for name, value in [("secret", SECRET), ("bypass", BYPASS), ("password", PASSWORD), ("vercel token", VERCEL),
                        ("vercel value", VERCEL_VALUE), ("vercel bypass", VERCEL_BYPASS_OTHER),
                        ("provider token", REPLICATE), ("webhook signing secret", WEBHOOK_SECRET),
                        ("webhook signing key", WEBHOOK_SECRET.removeprefix("whsec_")),
                        ("slack webhook", SLACK_TOKEN), ("pagerduty routing key", ROUTING_KEY),
                        ("notify webhook url", NOTIFY_URL_TOKEN), ("notify signing secret", NOTIFY_SIGNING),
                        ("notify signing key", NOTIFY_SIGNING.removeprefix("whsec_")),
                        ("heartbeat url", HEARTBEAT_TOKEN),
                        *(("cookie", v) for v in cookie_values)]:
        assert value not in everything, f"the {name} leaked"
    assert "sha256:" in everything, "secrets are shown as fingerprints"
    for p in written:
        if p.name in ("audit.jsonl", "report.md", "junit.xml"):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, f"{p.name} must be owner-only"


def test_hostile_identifiers_and_values_are_quoted_never_executed(db, tmp_path):
    hostile_table = 'gen"s\'; DROP TABLE generations; --'
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 2, "stalled": 1})
        conn.execute(psycopg.sql.SQL("CREATE TABLE {} (LIKE generations INCLUDING ALL)").format(
            psycopg.sql.Identifier(hostile_table)))
        conn.execute(psycopg.sql.SQL("INSERT INTO {} SELECT * FROM generations").format(
            psycopg.sql.Identifier(hostile_table)))
        conn.execute("UPDATE generations SET status = %s WHERE id IN (SELECT id FROM generations LIMIT 1)", (HOSTILE,))

    def tables() -> set[str]:
        with psycopg.connect(db, autocommit=True) as c:
            return {r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}

    r = runner.invoke(app, ["scan", "-d", db, "--table", hostile_table, "-f", "json"])
    assert r.exit_code == 1, r.stderr
    assert len(json.loads(r.stdout)["rows"]) == 3
    r = runner.invoke(app, ["scan", "-d", db, "--inflight-statuses", f"processing,{HOSTILE}", "-f", "json",
                            "--map", "heartbeat=parameters.x'); DROP TABLE generations; --"])
    assert r.exit_code == 1, r.stderr
    assert any(x["status"] == HOSTILE for x in json.loads(r.stdout)["rows"])
    (tmp_path / "stuckgen.toml").write_text(f'table = "{HOSTILE}"\n')
    r = runner.invoke(app, ["scan", "-d", db, "-f", "json"])
    assert r.exit_code == 2 and "not found" in r.stderr
    (tmp_path / "stuckgen.toml").unlink()
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", db, "--yes", "-f", "json", "--failed-status", HOSTILE,
                            "--reason", HOSTILE, "--audit-table", 'audit"; DROP TABLE generations; --'])
    assert r.exit_code == 0, (r.exit_code, r.stderr)
    assert {"generations", hostile_table, 'audit"; DROP TABLE generations; --'} <= tables()
    with psycopg.connect(db, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM generations WHERE status = %s", (HOSTILE,)).fetchone()[0] >= 2


def test_audit_file_is_owner_only_even_with_a_permissive_umask(db, tmp_path):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 2})
    old = os.umask(0)
    try:
        r = runner.invoke(app, ["fail", "--all-stuck", "-d", db, "--yes", "-f", "json",
                                "--audit-file", str(tmp_path / "a.jsonl")])
        r2 = runner.invoke(app, ["doctor", "-d", db, "--no-probe", "-o", str(tmp_path / "r.md")])
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.stderr
    assert r2.exit_code == 0, (r2.exit_code, r2.stderr)  # the stuck rows were just failed: nothing left
    for name in ("a.jsonl", "r.md"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


# -- every way libpq carries a secret in a connection string ------------------------------------

DSN_SECRET = "Dsn-S3cret-5f6e7d8c"


def _dsn_forms(db: str) -> list[tuple[str, str]]:
    """(name, DSN) pairs carrying DSN_SECRET each way libpq reads a secret; all connect to ``db``."""
    from urllib.parse import quote

    p = conninfo_to_dict(db)
    host, port, user, name = p.get("host", "127.0.0.1"), p.get("port", "5432"), p.get("user", "postgres"), p["dbname"]
    uhost = quote(host, safe="")  # a unix-socket directory (the embedded server) is percent-encoded in a URL
    base = f"postgresql://{user}@{uhost}:{port}/{name}"
    kv = f"host={host} port={port} user={user} dbname={name}"
    enc = quote(DSN_SECRET + "@:/", safe="")
    return [
        ("userinfo", f"postgresql://{user}:{DSN_SECRET}@{uhost}:{port}/{name}"),
        ("userinfo percent-encoded", f"postgres://{user}:{enc}@{uhost}:{port}/{name}"),
        ("url password=", f"{base}?password={DSN_SECRET}"),
        ("url sslpassword=", f"{base}?sslmode=disable&sslpassword={DSN_SECRET}"),
        ("url options", f"{base}?options=" + quote(f"-c app.db_password={DSN_SECRET}", safe="")),
        ("keyword password=", f"{kv} password={DSN_SECRET}"),
        ("keyword quoted password", f"{kv} password = '{DSN_SECRET} x\\'y'"),
        ("keyword sslpassword=", f"{kv} sslpassword={DSN_SECRET}"),
        ("keyword options", f"{kv} options='-c app.api_token={DSN_SECRET} -c search_path=public'"),
    ]


MALFORMED = [
    ("one slash", f"postgresql:/alice:{DSN_SECRET}@127.0.0.1/db"),
    ("unclosed ipv6", f"postgresql://alice:{DSN_SECRET}@[::1/db"),
    ("bad query key", f"postgresql://alice@127.0.0.1/db?passwd={DSN_SECRET}"),
    ("keyword without =", f"host=127.0.0.1 {DSN_SECRET}"),
    ("unterminated quote", f"host=127.0.0.1 password='{DSN_SECRET}"),
]


def test_redact_dsn_masks_every_form_and_keeps_where_it_points(db):
    from stuckgen.secrets import dsn_secrets, redact_dsn

    name = conninfo_to_dict(db)["dbname"]
    for form, dsn in _dsn_forms(db):
        shown = redact_dsn(dsn)
        assert DSN_SECRET not in shown and "S3cret" not in shown, (form, shown)
        assert name in shown and "***" in shown, (form, shown)
        assert any(DSN_SECRET in s for s in dsn_secrets(dsn)), form
    assert "search_path=public" in redact_dsn(_dsn_forms(db)[-1][1]), "a harmless option stays readable"
    for form, dsn in MALFORMED:
        shown = redact_dsn(dsn)
        assert "S3cret" not in shown and "alice" not in shown and "sha256:" in shown, (form, shown)


@pytest.mark.parametrize("fmt", ["json", "markdown", "text"])
def test_doctor_configuration_never_shows_a_dsn_secret_in_any_format(db, fmt, tmp_path):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 1})
    for form, dsn in _dsn_forms(db):
        r = runner.invoke(app, ["doctor", "-d", dsn, "--no-probe", "-f", fmt, "--debug"])
        assert r.exit_code == 1, (form, r.stderr)  # it connected (the stuck row is a finding)
        assert "S3cret" not in r.stdout + r.stderr, (form, fmt)
        assert "***" in r.stdout, (form, fmt)
        env_file = tmp_path / f"{fmt}.env"
        env_file.write_text("DATABASE_URL=\"" + dsn.replace("\\", "\\\\") + "\"\n")
        r = runner.invoke(app, ["doctor", "--env-file", str(env_file), "--no-probe", "-f", fmt])
        assert r.exit_code == 1 and "S3cret" not in r.stdout + r.stderr, (form, fmt, r.stderr)


def test_a_malformed_dsn_is_described_never_echoed(tmp_path):
    for form, dsn in MALFORMED:
        for cmd in (["scan", "-d", dsn], ["doctor", "-d", dsn, "--no-probe", "-f", "json"],
                    ["scan", "-d", dsn, "--debug"], ["check", "-d", dsn], ["fail", "--all-stuck", "-d", dsn]):
            r = runner.invoke(app, cmd)
            text = r.stdout + r.stderr
            assert "S3cret" not in text and "alice" not in text, (form, cmd, text)
            assert r.exit_code == 2, (form, cmd, r.exit_code, text)
        r = runner.invoke(app, ["scan", "-d", dsn])
        assert "malformed" in r.stderr and "sha256:" in r.stderr, r.stderr
    r = runner.invoke(app, ["scan", "-d", MALFORMED[0][1]])
    assert "two slashes" in r.stderr, r.stderr


def test_connection_errors_scrub_every_dsn_secret(db):
    """A refused connection quotes host and port, never a secret: each form against a closed port."""
    for form, dsn in _dsn_forms(db):
        port = conninfo_to_dict(dsn).get("port") or "5432"
        closed = dsn.replace(f":{port}/", ":1/").replace(f"port={port}", "port=1")
        assert closed != dsn, form
        for debug in ([], ["--debug"]):
            r = runner.invoke(app, ["scan", "-d", closed, "--connect-timeout", "2s", *debug])
            assert r.exit_code == 3, (form, r.stderr)
            assert "S3cret" not in r.stdout + r.stderr, (form, debug)


# -- the audit table on Supabase: not readable through its Data API --------------------------------


def _supabase_roles(dsn: str) -> None:
    """The roles and grants a Supabase project has (supabase/postgres init scripts), in this database.

    Roles are cluster-wide: created once, never dropped (other databases may use them). The
    grants and default privileges are per database and go with it.
    """
    with psycopg.connect(dsn, autocommit=True) as c:
        for role in ("anon", "authenticated", "service_role"):
            try:
                c.execute(f"CREATE ROLE {role} NOLOGIN NOINHERIT" + (" BYPASSRLS" if role == "service_role" else ""))
            except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                pass  # another test (or an earlier run) made it
        c.execute("GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role")
        for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
            c.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON {kind} TO anon, authenticated, service_role")


def _as_role(dsn: str, role: str, query: str) -> "int | str":
    """What ``role`` gets from ``query``: a row count, or the error's SQLSTATE class."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"SET ROLE {role}")
        try:
            return len(c.execute(query).fetchall())
        except psycopg.errors.InsufficientPrivilege:
            return "permission denied"


def test_the_default_audit_lives_in_its_own_schema_out_of_the_apps_and_the_apis_reach(db):
    _supabase_roles(db)
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 3})
        app_tables = {r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", db, "--yes", "-f", "json", "--operator", "alice"])
    assert r.exit_code == 0, r.stderr
    with psycopg.connect(db, autocommit=True) as c:
        # Nothing new in the app's schema: a migration tool (prisma migrate dev) sees no drift.
        assert {r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")} == app_tables
        rls, policies = c.execute(
            "SELECT c.relrowsecurity, (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
            "FROM pg_class c WHERE c.oid = 'stuckgen.audit'::regclass").fetchone()
        assert rls and policies == 0
        assert c.execute("SELECT count(*) FROM stuckgen.audit").fetchone()[0] == 3  # the owner reads it
    for role in ("anon", "authenticated"):
        assert _as_role(db, role, "SELECT * FROM stuckgen.audit") == "permission denied", role
    # Exposed later by hand (schema added to the API, a broad grant): row-level security still shows nothing.
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("GRANT USAGE ON SCHEMA stuckgen TO anon, authenticated")
        c.execute("GRANT SELECT ON ALL TABLES IN SCHEMA stuckgen TO anon, authenticated")
    for role in ("anon", "authenticated"):
        assert _as_role(db, role, "SELECT * FROM stuckgen.audit") == 0, role
    assert _as_role(db, "service_role", "SELECT * FROM stuckgen.audit") == "permission denied"
    r = runner.invoke(app, ["history", "-d", db, "-f", "json"])
    assert r.exit_code == 0 and "stuckgen.audit" in r.stdout, r.stderr


def test_an_audit_table_put_in_public_is_revoked_from_supabase_api_roles(db):
    _supabase_roles(db)
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 2})
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", db, "--yes", "-f", "json",
                            "--audit-table", "public.ops_audit"])
    assert r.exit_code == 0, r.stderr
    with psycopg.connect(db, autocommit=True) as c:
        # Supabase's default privileges granted everything on creation; stuckgen took it back.
        for role in ("anon", "authenticated"):
            for obj, kind in (("public.ops_audit", "table"), ("public.ops_audit_id_seq", "sequence")):
                assert not c.execute(f"SELECT has_{kind}_privilege(%s, %s, 'SELECT')", (role, obj)).fetchone()[0]
        assert c.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'public.ops_audit'::regclass").fetchone()[0]
    for role in ("anon", "authenticated"):
        assert _as_role(db, role, "SELECT * FROM public.ops_audit") == "permission denied", role
    run_id = json.loads(r.stdout)["run_id"]
    r = runner.invoke(app, ["undo", run_id, "-d", db, "--yes", "-f", "json", "--audit-table", "public.ops_audit"])
    assert r.exit_code == 0, r.stderr  # the owner still reads and writes it


def test_an_audit_table_at_the_old_default_keeps_being_used_and_is_hardened(db):
    from stuckgen.audit import TableAudit

    _supabase_roles(db)
    with psycopg.connect(db, autocommit=True) as c:
        seed(c, {"never-started": 2})
    # The old default: public.stuckgen_audit, created without row-level security, open to the API roles.
    r = runner.invoke(app, ["fail", "--all-stuck", "-d", db, "--yes", "-f", "json", "--audit-table", "stuckgen_audit"])
    assert r.exit_code == 0, r.stderr
    run_id = json.loads(r.stdout)["run_id"]
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("ALTER TABLE public.stuckgen_audit DISABLE ROW LEVEL SECURITY")
        c.execute("GRANT ALL ON public.stuckgen_audit TO anon, authenticated")
        assert TableAudit("stuckgen_audit", default_schema="public").readable_by(c) == ["anon", "authenticated"]
    assert _as_role(db, "anon", "SELECT * FROM public.stuckgen_audit") == 2
    r = runner.invoke(app, ["doctor", "-d", db, "--no-probe", "-f", "json"])
    exposed = [f for f in json.loads(r.stdout)["findings"] if f["id"] == "audit-table-exposed"]
    assert exposed and "anon, authenticated" in exposed[0]["title"], r.stdout
    r = runner.invoke(app, ["undo", run_id, "-d", db, "--yes", "-f", "json"])  # no --audit-table: the default
    assert r.exit_code == 0, r.stderr
    assert "public.stuckgen_audit" in r.stdout
    with psycopg.connect(db, autocommit=True) as c:
        assert c.execute("SELECT to_regclass('stuckgen.audit')").fetchone()[0] is None
        assert TableAudit("stuckgen_audit", default_schema="public").readable_by(c) == []
    assert _as_role(db, "anon", "SELECT * FROM public.stuckgen_audit") == "permission denied"
