"""Benchmark remediation: retrigger against the reference deployment, fail against one plain UPDATE.

    python benchmarks/bench_remediate.py [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
                                         [--rows 1000] [--fail-rows 100000]

1. retrigger 1,000 stuck rows against the reference deployment answering each
   call after 50 ms, at concurrency 8. Floor: rows / 8 x 50 ms (6.25 s). Target:
   within 1.25x.
2. fail over 100,000 stuck rows (selection of ids and classes in one query,
   then per batch one statement: FOR UPDATE SKIP LOCKED, compare-and-set, UPDATE,
   audit rows with the values replaced) against one plain UPDATE doing the same change to
   the same rows, on identical copies of the database; median of 5, for each batch
   size given. Target: within 1.5x.

Creates scratch databases on the server given (or an embedded one when none
answers), prints the figures and ratios, and drops them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stuckgen import db as dbmod
from stuckgen import remediate
from stuckgen.audit import TableAudit
from stuckgen.reference.seed import db_now, generate, insert_rows
from stuckgen.scan import ScanOptions, where_stuck
from stuckgen.schema import MappingConfig, resolve

SCHEMA_SQL = (Path(__file__).resolve().parent.parent / "stuckgen" / "reference" / "schema.sql").read_text()
SECRET = "bench-secret"


@contextmanager
def server(dsn: str | None) -> Iterator[str]:
    if dsn:
        try:
            psycopg.connect(dsn, connect_timeout=3).close()
            yield dsn
            return
        except psycopg.OperationalError as exc:
            print(f"note: {exc.__class__.__name__} on the given server; using an embedded one", file=sys.stderr)
    import tempfile

    import pgserver

    datadir = tempfile.mkdtemp(prefix="stuckgen-bench-")
    srv = pgserver.get_server(datadir, cleanup_mode="delete")
    try:
        yield srv.get_uri()
    finally:
        srv.cleanup()


@contextmanager
def scratch(server_dsn: str, *, template: str | None = None) -> Iterator[str]:
    name = "stuckgen_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(server_dsn, autocommit=True) as c:
        if template:
            c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
        else:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(**{**conninfo_to_dict(server_dsn), "dbname": name})
    try:
        yield dsn
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def seed_stuck(dsn: str, n: int, *, padding: int = 0) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(SCHEMA_SQL)
        insert_rows(c, generate({"never-started": n}, now=db_now(c), padding=padding))
        c.execute("VACUUM ANALYZE")


_SERVE = """
import sys
from stuckgen.reference import ReferenceDeployment
with ReferenceDeployment(sys.argv[1], "healthy", secret=sys.argv[2], latency=float(sys.argv[3]),
                         work_seconds=0.05, heartbeat_interval=0.05) as dep:
    print(dep.url + dep.route, flush=True)
    sys.stdin.read()
    dep.wait_idle(30)
"""


@contextmanager
def deployment_process(dsn: str, latency: float) -> Iterator[str]:
    """The reference deployment in its own process, as a real deployment is: it must not share our GIL."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, dsn, SECRET, str(latency)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(60)


def bench_retrigger(server_dsn: str, rows: int, concurrency: int, latency: float) -> float:
    with scratch(server_dsn) as dsn:
        seed_stuck(dsn, rows)
        conn = dbmod.connect(dsn)
        with dbmod.transaction(conn, read_only=True):
            m = resolve(conn, MappingConfig())
            opts = ScanOptions(since=None)
            sel = remediate.select_rows(conn, m, opts, all_stuck=True)
        audit = TableAudit("stuckgen_audit", default_schema=m.db_schema)
        with dbmod.transaction(conn, read_only=False):
            audit.prepare(conn)
        with deployment_process(dsn, latency) as endpoint:
            options = remediate.RetriggerOptions(url=endpoint, scan=opts, secret=SECRET,
                                                 concurrency=concurrency)
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            with httpx.Client(follow_redirects=False, timeout=10.0, limits=limits) as client:
                t0 = time.perf_counter()
                res = remediate.retrigger_rows(client, conn, m, sel.targets, options=options, audit=audit,
                                               run_id="bench-rt", operator="bench")
                elapsed = time.perf_counter() - t0
        conn.close()
        floor = rows / concurrency * latency
        print(f"retrigger: {rows} rows, concurrency {concurrency}, {latency * 1000:.0f} ms per call: "
              f"{elapsed:.2f} s, floor {floor:.2f} s, ratio {elapsed / floor:.3f} (target <= 1.25); "
              f"outcomes {res.counts}")
        return elapsed / floor


def _plain_update(dsn: str, opts: ScanOptions, reason: str) -> tuple[float, int]:
    """One plain UPDATE with the same predicate and the same change: the floor."""
    with psycopg.connect(dsn, autocommit=True) as c:
        with dbmod.transaction(c, read_only=True):
            m = resolve(c, MappingConfig())
        c.execute("CHECKPOINT")
        stmt = sql.SQL("UPDATE {t} g SET status = %s, parameters = jsonb_set(parameters, '{{error}}', "
                       "to_jsonb(%s::text), true) WHERE {w}").format(
            t=m.qualified(), w=where_stuck(m, opts, window=False))
        t0 = time.perf_counter()
        n = c.execute(stmt, ("failed", reason)).rowcount
        return time.perf_counter() - t0, n


def _stuckgen_fail(dsn: str, opts: ScanOptions, batch_size: int) -> tuple[float, float, dict[str, int]]:
    """stuckgen: mapping, selection, audit table, batches with compare-and-set and audit rows."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CHECKPOINT")
    conn = dbmod.connect(dsn)
    try:
        t0 = time.perf_counter()
        with dbmod.transaction(conn, read_only=True):
            m = resolve(conn, MappingConfig())
            sel = remediate.select_rows(conn, m, opts, all_stuck=True)
        t_select = time.perf_counter() - t0
        audit = TableAudit("stuckgen_audit", default_schema=m.db_schema)
        with dbmod.transaction(conn, read_only=False):
            audit.prepare(conn)
        res = remediate.fail_rows(conn, m, sel.targets, options=remediate.FailOptions(scan=opts, batch_size=batch_size),
                                  audit=audit, run_id="bench-fail", operator="bench")
        return time.perf_counter() - t0, t_select, res.counts
    finally:
        conn.close()


def bench_fail(server_dsn: str, rows: int, batch_sizes: list[int], padding: int, runs: int) -> float:
    """Each run: fresh copies of one seeded database, the plain UPDATE on one and stuckgen on the
    other, back to back; medians over the runs (the machine is shared, single runs are noise)."""
    import statistics

    with scratch(server_dsn) as base:
        seed_stuck(base, rows, padding=padding)
        base_name = conninfo_to_dict(base)["dbname"]
        opts = ScanOptions(since=None)
        reason = remediate.default_reason("never-started", opts)
        plain: list[float] = []
        ours: dict[int, list[float]] = {b: [] for b in batch_sizes}
        select: list[float] = []
        counts: dict[str, int] = {}
        for _ in range(runs):
            with scratch(server_dsn, template=base_name) as copy:
                t, n_plain = _plain_update(copy, opts, reason)
                plain.append(t)
            for b in batch_sizes:
                with scratch(server_dsn, template=base_name) as copy:
                    t, t_sel, counts = _stuckgen_fail(copy, opts, b)
                    ours[b].append(t)
                    select.append(t_sel)
        floor = statistics.median(plain)
        print(f"fail: {rows:,} stuck rows, median of {runs}: one plain UPDATE {floor:.2f} s ({n_plain:,} rows); "
              f"stuckgen's selection {statistics.median(select):.2f} s; outcomes {counts}")
        best = float("inf")
        for b in batch_sizes:
            t = statistics.median(ours[b])
            best = min(best, t / floor)
            print(f"  batches of {b:>5}: stuckgen {t:.2f} s -> ratio {t / floor:.2f} (target <= 1.5)")
        return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--rows", type=int, default=1000, help="rows to retrigger")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--fail-rows", type=int, default=100_000)
    ap.add_argument("--batch-size", default="500,1000,2000,5000", help="batch sizes to compare, comma-separated")
    ap.add_argument("--runs", type=int, default=5, help="fail: runs per figure (median)")
    ap.add_argument("--padding", type=int, default=0, help="extra bytes of realistic parameters per row")
    ap.add_argument("--only", choices=("retrigger", "fail"))
    args = ap.parse_args()
    with server(args.dsn) as srv:
        if args.only in (None, "retrigger"):
            bench_retrigger(srv, args.rows, args.concurrency, args.latency)
        if args.only in (None, "fail"):
            bench_fail(srv, args.fail_rows, [int(b) for b in args.batch_size.split(",")], args.padding, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
