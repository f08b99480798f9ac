"""Benchmark: 100 probes (5 modes x 20 repeats) at concurrency 10 against the
reference deployment with 50 ms latency. The floor is 100 / 10 x 50 ms = 0.5 s;
the target is a ratio of at most 1.3.

    STUCKGEN_TEST_DSN=postgresql://postgres@127.0.0.1:5432/postgres python benchmarks/bench_probe.py
"""

from __future__ import annotations

import os
import statistics
import sys
import uuid

import httpx
import psycopg

from stuckgen.probe import probe
from stuckgen.reference import ReferenceDeployment
from stuckgen.reference.cookies import cookie_header

LATENCY = 0.05
CONCURRENCY = 10
REPEAT = 20
MODES = 5
FLOOR = MODES * REPEAT / CONCURRENCY * LATENCY


def main() -> int:
    server_dsn = os.environ.get("STUCKGEN_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    dbname = "stuckgen_bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=dbname)
    secret = uuid.uuid4().hex
    try:
        with ReferenceDeployment(dsn, "healthy", secret=secret, latency=LATENCY, create_schema=True) as dep, \
                httpx.Client(limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
            cookie = cookie_header(dep.session_cookie())
            probe(client, [dep.url], secret=secret, cookie_header=cookie, repeat=1, concurrency=CONCURRENCY)  # warm-up
            times = []
            for _ in range(5):
                matrix = probe(
                    client, [dep.url], secret=secret, cookie_header=cookie,
                    repeat=REPEAT, concurrency=CONCURRENCY, timeout=5.0,
                )
                assert len(matrix.results) == MODES * REPEAT, len(matrix.results)
                assert all(r.answered for r in matrix.results)
                times.append(matrix.elapsed)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    best, median = min(times), statistics.median(times)
    print(f"probes: {MODES * REPEAT} at concurrency {CONCURRENCY}, latency {LATENCY * 1000:.0f} ms, floor {FLOOR:.3f} s")
    print(f"measured: median {median:.3f} s (best {best:.3f} s) over {len(times)} runs")
    print(f"ratio: {median / FLOOR:.2f}x (target <= 1.30x)")
    return 0 if median / FLOOR <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
