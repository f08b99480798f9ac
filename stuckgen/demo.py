"""`stuckgen demo`: an embedded PostgreSQL, the reference deployment in a fault scenario,
real generation traffic, then the diagnosis — on a machine with nothing configured.

Everything it starts it stops (also on Ctrl-C), and everything it writes lives
in one temporary directory that it removes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stuckgen.db import scalar
from stuckgen.errors import ConfigError, DatabaseUnreachableError, StuckgenError

if TYPE_CHECKING:
    from stuckgen.session import Session

DEFAULT_SCENARIO = "intermittent"  # the incident: some internal triggers get 401


@dataclass(frozen=True, kw_only=True)
class DemoEnvironment:
    """What the demo started: where to point the other commands."""

    dsn: str
    url: str
    scenario: str
    workdir: Path
    env_file: Path  # DATABASE_URL, STUCKGEN_BASE_URL, INTERNAL_API_SECRET, STUCKGEN_COOKIE (0600)
    traffic_cookie: str = field(repr=False)  # a fresh session for the traffic (the probe's cookie may be expired)
    bypass_secret: str = field(repr=False, default="")  # users of a protected deployment are past the wall


@contextmanager
def quiet_runtime_dir() -> Iterator[None]:
    # pgserver asks platformdirs for a runtime directory (for its lock file) when imported and
    # when starting; without XDG_RUNTIME_DIR (root, CI, containers) platformdirs warns and falls
    # back to /tmp/runtime-$UID, which is fine for us. The warning is not ours to show a user.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        yield


def import_pgserver() -> Any:
    """Import the embedded PostgreSQL package without its runtime-directory warning."""
    with quiet_runtime_dir():
        import pgserver

    return pgserver


@contextmanager
def embedded_postgres(workdir: Path) -> Iterator[str]:
    """A throwaway PostgreSQL in ``workdir`` (pgserver); yields a DSN."""
    try:
        pgserver = import_pgserver()
    except ImportError as exc:
        raise ConfigError("the demo needs an embedded PostgreSQL: pip install 'stuckgen[demo]'",
                          hint="or point it at a server you have: stuckgen demo --database-url URL") from exc
    server = None
    for attempt in (1, 2):
        # initdb under a root-owned tree has been seen to fail once and work on a fresh directory.
        datadir = workdir / f"pgdata{attempt}"
        datadir.mkdir()
        try:
            with quiet_runtime_dir():
                server = pgserver.get_server(str(datadir), cleanup_mode="stop")
            break
        except Exception as exc:  # pgserver raises plain exceptions for initdb/start failures
            if attempt == 2:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise DatabaseUnreachableError(f"could not start the embedded PostgreSQL: {first}",
                                               hint="use a server you have: stuckgen demo --database-url URL") from exc
    assert server is not None
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _fresh_database(server_dsn: str) -> tuple[str, Callable[[], None]]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = "stuckgen_demo_" + secrets.token_hex(4)
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = name

    def drop() -> None:
        # Best effort: a server that is going away (embedded, or interrupted) takes it along.
        try:
            with psycopg.connect(server_dsn, autocommit=True, connect_timeout=5) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass

    return make_conninfo("", **params), drop


def _write_env_file(path: Path, values: dict[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for k, v in values.items():
            if "\n" in v:  # double quotes: python-dotenv decodes \n there (the value as `vercel env pull` gives it)
                fh.write(f'{k}="{v.replace(chr(10), chr(92) + "n")}"\n')
            else:
                fh.write(f"{k}='{v}'\n")


def demo_tuning(threshold: float) -> dict[str, str]:
    """The settings the demo judges with, as environment variables: its env file carries them,
    so `stuckgen scan --env-file demo.env` finds what the demo found (a 3 s threshold, not 2 min)."""
    return {"STUCKGEN_THRESHOLD": f"{threshold:g}s", "STUCKGEN_SINCE": "1h"}


@contextmanager
def demo_environment(*, scenario: str = DEFAULT_SCENARIO, database_url: str | None = None,
                     threshold: float | None = None,
                     progress: Callable[[str], None] = lambda _m: None) -> Iterator[DemoEnvironment]:
    """Start PostgreSQL (embedded unless ``database_url``) and the reference deployment."""
    from stuckgen.reference import ReferenceDeployment, make_session_cookie
    from stuckgen.reference.scenarios import get_scenario
    from stuckgen.reference.server import ensure_schema

    get_scenario(scenario)  # a bad name fails before anything starts
    workdir = Path(tempfile.mkdtemp(prefix="stuckgen-demo-"))
    try:
        with _server(workdir, database_url, progress) as server_dsn:
            dsn, drop = _fresh_database(server_dsn)
            try:
                ensure_schema(dsn)
                secret = secrets.token_hex(32)
                bypass = secrets.token_hex(16)
                provider_env: dict[str, str] = {}
                with _provider(get_scenario(scenario).use_webhooks, progress) as provider:
                    progress(f"starting the reference deployment (scenario {scenario})")
                    with ReferenceDeployment(dsn, scenario, secret=secret, bypass_secret=bypass,
                                             work_seconds=0.4, heartbeat_interval=0.1, trigger_timeout=1.0,
                                             **_provider_kwargs(provider, provider_env)) as dep:
                        cookie = "; ".join(f"{k}={v}" for k, v in dep.session_cookie().items())
                        env_file = workdir / "demo.env"
                        # The operator holds the value as the platform gives it back: in secret-whitespace that
                        # is the stored value with its trailing newline, which is what lets doctor name it.
                        pulled = secret + "\n" if get_scenario(scenario).secret_value_transform == "trailing-newline" else secret
                        _write_env_file(env_file, {"DATABASE_URL": dsn, "STUCKGEN_BASE_URL": dep.url,
                                                   "INTERNAL_API_SECRET": pulled, "STUCKGEN_COOKIE": cookie,
                                                   "STUCKGEN_BYPASS_SECRET": dep.bypass_secret or "", **provider_env,
                                                   **(demo_tuning(threshold) if threshold is not None else {})})
                        fresh = make_session_cookie(dep.user_id, expires_in=3600, project_ref=dep.project_ref)
                        env = DemoEnvironment(dsn=dsn, url=dep.url, scenario=scenario, workdir=workdir, env_file=env_file,
                                              traffic_cookie="; ".join(f"{k}={v}" for k, v in fresh.items()),
                                              bypass_secret=bypass)
                        try:
                            yield env
                        finally:
                            dep.wait_idle(timeout=5)
            finally:
                drop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _provider(wanted: bool, progress: Callable[[str], None]) -> Iterator[Any]:
    """The model provider's stand-in, for scenarios whose generations go to a provider with a webhook."""
    if not wanted:
        yield None
        return
    from stuckgen.reference.provider import ProviderStandIn

    progress("starting the model provider's stand-in (Replicate's prediction API)")
    with ProviderStandIn(token="r8_" + secrets.token_hex(18), run_seconds=0.3) as provider:
        yield provider


def _provider_kwargs(provider: Any, env: dict[str, str]) -> dict[str, Any]:
    """The deployment's provider settings; ``env`` gets the operator's (token, API URL, webhook secret)."""
    if provider is None:
        return {}
    token = provider._token  # the demo made it; the operator holds the app's own value
    env.update({"REPLICATE_API_TOKEN": token, "STUCKGEN_REPLICATE_API_URL": provider.url,
                "REPLICATE_WEBHOOK_SECRET": provider.webhook_secret})
    # The app's REPLICATE_WEBHOOK_SECRET is the provider's signing secret, as its setup asks.
    return {"provider_url": provider.url, "provider_token": token, "webhook_secret": provider.webhook_secret}


@contextmanager
def _server(workdir: Path, database_url: str | None, progress: Callable[[str], None]) -> Iterator[str]:
    if database_url:
        yield database_url
        return
    progress("starting an embedded PostgreSQL")
    with embedded_postgres(workdir) as dsn:
        yield dsn


def send_traffic(env: DemoEnvironment, *, count: int, timeout: float = 10.0,
                 progress: Callable[[int, int], None] = lambda _d, _t: None) -> list[str]:
    """POST /api/generate ``count`` times as a signed-in user; returns the generation ids."""
    from stuckgen import http

    ids: list[str] = []
    with http.client(base_url=env.url, timeout=timeout,
                     headers={"cookie": env.traffic_cookie, "x-vercel-protection-bypass": env.bypass_secret}) as client:
        for i in range(count):
            r = client.post("/api/generate", json={"prompt": f"demo generation {i + 1}", "modelId": "flux-dev"})
            if r.status_code >= 400:
                raise StuckgenError(f"the reference deployment refused /api/generate: HTTP {r.status_code}")
            ids.append(r.json().get("id", ""))
            progress(i + 1, count)
    return ids


def wait_until_stuck(dsn: str, *, ids: list[str], threshold: float, timeout: float,
                     tick: Callable[[float], None] = lambda _s: None) -> None:
    """Wait until every row has either finished or been quiet past ``threshold`` (DB clock)."""
    import psycopg

    deadline = time.monotonic() + timeout
    q = """SELECT count(*) FROM generations WHERE id = ANY(%s::uuid[]) AND status IN ('processing', 'queued')
           AND coalesce(CASE WHEN parameters->>'lastHeartbeatAt' ~ '^\\d{4}-' THEN (parameters->>'lastHeartbeatAt')::timestamptz END,
                        created_at AT TIME ZONE 'UTC') > now() - make_interval(secs => %s)"""
    with psycopg.connect(dsn, autocommit=True) as c:
        while time.monotonic() < deadline:
            pending = scalar(c, q, (ids, threshold))
            if pending == 0:
                return
            tick(max(0.0, deadline - time.monotonic()))
            time.sleep(0.25)


def settings_for(env: DemoEnvironment, *, threshold: float) -> Any:
    from stuckgen.settings import load_settings

    from stuckgen.reference.scenarios import get_scenario

    tuning = demo_tuning(threshold)  # the same values the env file carries
    flags: dict[str, Any] = {"threshold": tuning["STUCKGEN_THRESHOLD"], "since": tuning["STUCKGEN_SINCE"]}
    if get_scenario(env.scenario).use_webhooks:
        # The demo compresses time (seconds, not minutes): the app's 30-minute webhook grace
        # would hide every lost callback it just made.
        flags["grace"] = f"awaiting-webhook={threshold}s"
    return load_settings(flags, environ={}, cwd=env.workdir, env_file=str(env.env_file))


def settle_lost_callbacks(session: Session) -> list[str]:
    """The end of the lost-callback story: reconcile, then settle through the app's sync route (as the rows' owner)."""
    from datetime import datetime, timezone

    from stuckgen import reconcile, settle
    from stuckgen.audit import new_run_id
    from stuckgen.commands.reconcile import settle_options
    from stuckgen.render.reconcile import summary_lines

    opts = session.scan_options()
    conn, mapping = session.connection(), session.mapping(announce=False)
    with session.read():
        rows, without, _ = reconcile.provider_rows(conn, mapping, opts)
    http = session.http_client()
    result = reconcile.reconcile_rows(http, rows, options=session.provider_options(),
                                      now=datetime.now(timezone.utc), stuck_rows=len(rows) + without,
                                      without_prediction=without)
    options = settle_options(session, scan=opts, via="sync")
    audit = session.audit()
    session.prepare_audit(audit)
    done = settle.settle_rows(http, conn, mapping, rows, result.verdicts, options=options, audit=audit,
                              run_id=new_run_id(), operator=session.operator())
    # The reconcile hint ("settle them ... --apply") is what the demo does next: not repeated.
    return [*(line for line in summary_lines(result) if not line.startswith("settle them")),
            *settle.summary_lines(done)]


@dataclass(frozen=True)
class DemoVerdict:
    """Whether the demo's diagnosis named the cause its scenario planted."""

    ok: bool
    line: str


def judge(report: Any, scenario: str) -> DemoVerdict:
    """Compare doctor's top-ranked cause with the one the scenario planted.

    The demo succeeds when the diagnosis is right, not when nothing is wrong:
    a fault found by design is the demo working. A wrong or missing diagnosis
    is a bug in stuckgen, and says so.
    """
    from stuckgen.findings import Severity
    from stuckgen.reference.scenarios import get_scenario

    planted = get_scenario(scenario).planted
    ranked = [r.finding for r in report.ranked if r.finding.severity >= Severity.WARNING]
    top = ranked[0].id if ranked else None
    if planted is None:
        if top is None:
            return DemoVerdict(True, f"diagnosed: nothing wrong, as planted (scenario {scenario})")
        return DemoVerdict(False, f"NOT diagnosed: scenario {scenario} planted no fault, but doctor ranked {top} "
                                  "first; this is a bug in stuckgen")
    if top == planted:
        return DemoVerdict(True, f"diagnosed: {planted}, as planted (scenario {scenario})")
    got = f"ranked {top} first" if top else "found nothing wrong"
    return DemoVerdict(False, f"NOT diagnosed: scenario {scenario} planted {planted}, but doctor {got}; "
                              "this is a bug in stuckgen")


NEXT_STEPS = (
    "On your own app (settings may also live in ./.env or stuckgen.toml; see the README):",
    "  export DATABASE_URL='postgresql://...'    # a read-only role is enough to diagnose",
    "  stuckgen init                             # finds your job table, writes a commented stuckgen.toml",
    "  STUCKGEN_BASE_URL=https://your-app.example.com INTERNAL_API_SECRET=... stuckgen doctor",
)
