"""Shared fixtures: a real PostgreSQL (STUCKGEN_TEST_DSN, or an embedded one) and fresh databases."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import psycopg.rows
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SCHEMA_SQL = (Path(__file__).parent.parent / "stuckgen" / "reference" / "schema.sql").read_text()


def _embedded_dsn() -> Iterator[str]:
    """Start a throwaway PostgreSQL (pgserver) for this test session."""
    from stuckgen.demo import import_pgserver, quiet_runtime_dir  # only needed when no server is configured

    pgserver = import_pgserver()

    datadir = tempfile.mkdtemp(prefix="stuckgen-pg-")
    with quiet_runtime_dir():
        server = pgserver.get_server(datadir, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of a PostgreSQL server we may create databases on."""
    dsn = os.environ.get("STUCKGEN_TEST_DSN")
    if dsn:
        yield dsn
        return
    yield from _embedded_dsn()


def dsn_for_database(server_dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture
def empty_db(pg_server: str) -> Iterator[str]:
    """A fresh, empty database (dropped afterwards); yields its DSN."""
    name = "stuckgen_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = dsn_for_database(pg_server, name)
    try:
        yield dsn
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(empty_db: str) -> str:
    """A fresh database holding the reference schema (no rows); yields its DSN."""
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    return empty_db


# -- PgBouncer in transaction mode (the pooler tests) ------------------------------------------


class PgBouncer:
    """A running PgBouncer in front of the test server; ``route(dsn)`` sends a DSN through it."""

    def __init__(self, port: int, proc: "subprocess.Popen[bytes]", log: Path) -> None:
        self.port = port
        self.proc = proc
        self.log = log

    def route(self, dsn: str, **overrides: str) -> str:
        """The same database (and user) through the pooler: only host and port change."""
        params = conninfo_to_dict(dsn)
        params.update(host="127.0.0.1", port=str(self.port), **overrides)
        return make_conninfo(**params)

    def admin(self, command: str) -> list[dict]:
        """Run a console command (SHOW STATS, SHOW POOLS) on PgBouncer's admin database."""
        with psycopg.connect(host="127.0.0.1", port=self.port, dbname="pgbouncer", user="postgres",
                             autocommit=True, prepare_threshold=None) as conn:
            cur = conn.cursor(row_factory=psycopg.rows.dict_row)
            cur.execute(command)
            return list(cur.fetchall())


def _pgbouncer_exe() -> str:
    exe = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None)
    if not exe:
        pytest.fail("pgbouncer is not installed; the pooler tests need it "
                    "(apt-get install pgbouncer; .ci/run installs it)", pytrace=False)
    return exe


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_pgbouncer(server_dsn: str, workdir: Path, *, auth_type: str = "trust",
                    users: dict[str, str] | None = None, force_user: str | None = None) -> PgBouncer:
    """Start PgBouncer (pool_mode=transaction) routing every database name to ``server_dsn``'s server.

    Works with a TCP server (STUCKGEN_TEST_DSN) and with pgserver's unix socket
    directory. As root it drops to ``nobody``, so its files and the socket
    directory must be reachable by that user.
    """
    import re
    import socket
    import subprocess
    import time

    exe = _pgbouncer_exe()
    target = conninfo_to_dict(server_dsn)
    host = target.get("host") or "/var/run/postgresql"
    port = target.get("port") or "5432"
    server_user = target.get("user") or "postgres"
    as_root = os.geteuid() == 0
    if as_root and host.startswith("/"):
        import grp

        # pgserver's socket directory is its data directory (0700, root's): let nobody's group in.
        gid = grp.getgrnam("nogroup").gr_gid
        os.chown(host, -1, gid)
        os.chmod(host, 0o750)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    users = dict(users or {})
    users.setdefault(server_user, target.get("password") or "")
    auth_file = workdir / "userlist.txt"
    auth_file.write_text("".join(f'"{u}" "{p}"\n' for u, p in users.items()))
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)", version)
    modern = bool(m) and (int(m.group(1)), int(m.group(2))) >= (1, 21)
    db_line = f"* = host={host} port={port}" + (f" user={force_user}" if force_user else "")
    log = workdir / "pgbouncer.log"
    for _attempt in range(5):
        listen = _free_port()
        ini = workdir / "pgbouncer.ini"
        ini.write_text("\n".join([
            "[databases]", db_line, "[pgbouncer]",
            "listen_addr = 127.0.0.1", f"listen_port = {listen}", "unix_socket_dir =",
            f"auth_type = {auth_type}", f"auth_file = {auth_file}",
            "pool_mode = transaction",
            "ignore_startup_parameters = extra_float_digits,options",
            # No server-side prepared statements may be relied on (only 1.21+ knows the setting;
            # older versions never support them in transaction mode anyway).
            *(["max_prepared_statements = 0"] if modern else []),
            f"admin_users = {server_user}", f"stats_users = {server_user}",
            "max_client_conn = 200", "default_pool_size = 20",
            "",
        ]))
        for f in (ini, auth_file):
            os.chmod(f, 0o644)
        cmd = [exe, *(["-u", "nobody"] if as_root else []), str(ini)]
        with open(log, "ab") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # it listens once its configuration is loaded
                socket.create_connection(("127.0.0.1", listen), timeout=2).close()
                return PgBouncer(listen, proc, log)
            except OSError:
                time.sleep(0.05)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)
        if "Address already in use" not in log.read_text(errors="replace"):
            break
    pytest.fail(f"pgbouncer did not start: {log.read_text(errors='replace')[-2000:]}", pytrace=False)


def stop_pgbouncer(bouncer: PgBouncer) -> None:
    bouncer.proc.terminate()
    try:
        bouncer.proc.wait(10)
    except Exception:
        bouncer.proc.kill()
        bouncer.proc.wait(10)


@pytest.fixture(scope="session")
def pgbouncer(pg_server: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the test server (fails, never skips, without it)."""
    workdir = Path(tempfile.mkdtemp(prefix="stuckgen-pgbouncer-"))
    bouncer = start_pgbouncer(pg_server, workdir)
    try:
        yield bouncer
    finally:
        stop_pgbouncer(bouncer)
        shutil.rmtree(workdir, ignore_errors=True)


# -- the Loop-Vesper fixture: the real app's schema and its own ways of writing rows ----------


@pytest.fixture
def loopvesper_db(empty_db: str) -> Iterator[tuple[str, "loopvesper_mod.App"]]:
    """A fresh database holding Loop-Vesper's real schema (its Prisma migrations), in a non-UTC
    server time zone; yields (DSN, App) where App writes rows as the app's code paths do."""
    import loopvesper as loopvesper_mod

    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{conninfo_to_dict(empty_db)['dbname']}\" "
                     f"SET timezone TO '{loopvesper_mod.SERVER_TIMEZONE}'")
    with psycopg.connect(empty_db, autocommit=True) as conn:
        loopvesper_mod.apply_migrations(conn)
        yield empty_db, loopvesper_mod.App(conn)


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    """A stuckgen connection to ``db`` (the remediation tests share it; a test file may define its own)."""
    from stuckgen import db as dbmod

    c = dbmod.connect(db)
    yield c
    c.close()
