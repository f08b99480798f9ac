"""Shared benchmark helpers: a scratch database, timing whole processes, peak memory."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_SQL = (ROOT / "stuckgen" / "reference" / "schema.sql").read_text()
STUCKGEN = str(Path(sys.executable).parent / "stuckgen")


@contextmanager
def scratch_database(prefix: str = "stuckgen_bench") -> Iterator[str]:
    """A fresh database on STUCKGEN_BENCH_DSN (default: the local server), or an embedded one."""
    server = os.environ.get("STUCKGEN_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    embedded = None
    try:
        psycopg.connect(server, connect_timeout=3).close()
    except psycopg.OperationalError:
        import pgserver, tempfile

        embedded = pgserver.get_server(tempfile.mkdtemp(prefix="stuckgen-bench-pg-"), cleanup_mode="delete")
        server = embedded.get_uri()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server)
    params["dbname"] = name
    dsn = make_conninfo(**params)
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(SCHEMA_SQL)
        yield dsn
    finally:
        with psycopg.connect(server, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if embedded is not None:
            embedded.cleanup()


def run_measured(cmd: list[str], *, env: dict[str, str] | None = None, stdout=subprocess.DEVNULL) -> tuple[float, int, int]:
    """(wall seconds, exit code, peak RSS in KiB) of one whole process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, p.returncode, usage.ru_maxrss


def median_time(cmd: list[str], *, runs: int = 5, env: dict[str, str] | None = None) -> tuple[float, int]:
    times, peaks = [], []
    for _ in range(runs):
        t, _, rss = run_measured(cmd, env=env)
        times.append(t)
        peaks.append(rss)
    return statistics.median(times), max(peaks)


SERVER_DSN = os.environ.get("STUCKGEN_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def kept_database(name: str) -> tuple[str, bool]:
    """(dsn, created) of a database that outlives the run, so a large seed is paid once (``--db``)."""
    with psycopg.connect(SERVER_DSN, autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        if not exists:
            c.execute(f'CREATE DATABASE "{name}"')
    dsn = make_conninfo(**{**conninfo_to_dict(SERVER_DSN), "dbname": name})
    if not exists:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(SCHEMA_SQL)
    return dsn, not exists


def grow_completed(dsn: str, rows: int, *, max_age_hours: float = 20.0, chunk: int = 250_000) -> int:
    """Add completed rows until the table holds ``rows``, by copying completed rows on the server.

    Generating rows in Python costs ~1 ms each on a busy machine (a million take tens of
    minutes); copies of realistic rows with new ids and creation times spread over the
    window are as heavy for a scan and cost only the server's writes.
    """
    with psycopg.connect(dsn, autocommit=True) as c:
        have = c.execute("SELECT count(*) FROM generations").fetchone()[0]
        while have < rows:
            n = min(chunk, rows - have)
            c.execute(
                "INSERT INTO generations (id, session_id, user_id, model_id, prompt, negative_prompt, parameters, "
                "status, cost, created_at) "
                "SELECT gen_random_uuid(), session_id, user_id, model_id, prompt, negative_prompt, parameters, status, "
                "cost, (now() AT TIME ZONE 'UTC') - random() * make_interval(secs => %s * 3600.0) "
                "FROM (SELECT * FROM generations WHERE status = 'completed' LIMIT %s) s", (max_age_hours, n))
            have = c.execute("SELECT count(*) FROM generations").fetchone()[0]
        c.execute("VACUUM ANALYZE generations")
    return have
