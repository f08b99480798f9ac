"""Load benchmark (a script, not a test): memory stays flat as the work grows.

1. scan over --rows generations (realistic JSONB parameters of a few KB with a step
   log): peak RSS of `stuckgen scan --format json` at 1k, 10k and 100k stuck rows;
   ratio largest/smallest (target <= 1.2).
2. probe-auth --repeat N at concurrency 20 against the reference deployment: no
   errors, and peak RSS at N vs N/10 (no growth).
3. retrigger of --retrigger rows against the reference deployment: peak RSS at that
   size vs a tenth of it (flat).

    python benchmarks/bench_load.py                          # 5,000,000 rows (long: seeding dominates)
    python benchmarks/bench_load.py --rows 300000 --stuck 1000,10000,100000 --retrigger 10000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _common import STUCKGEN, run_measured, scratch_database  # noqa: E402

from stuckgen.reference.seed import db_now, generate, insert_rows  # noqa: E402
from stuckgen.reference.server import ReferenceDeployment  # noqa: E402

SECRET = "bench-load-secret-0123456789abcdef"


def _insert(dsn: str, kind: str, n: int, *, padding: int, seed: int) -> None:
    chunk = 100_000
    with psycopg.connect(dsn, autocommit=True) as c:
        now = db_now(c)
        i = 0
        while n > 0:
            k = min(chunk, n)
            insert_rows(c, generate({kind: k}, now=now, seed=seed + i, padding=padding, max_age=20 * 3600))
            n -= k
            i += 1


def _mb(kib: int) -> float:
    return kib / 1024


def bench_scan(dsn: str, rows: int, stuck_steps: list[int], padding: int, env: dict[str, str]) -> None:
    stuck_steps = sorted(stuck_steps)
    t0 = time.perf_counter()
    _insert(dsn, "completed", rows - stuck_steps[-1], padding=padding, seed=1000)
    print(f"seeded {rows - stuck_steps[-1]:,} completed rows in {time.perf_counter() - t0:.0f} s", flush=True)
    have = 0
    peaks: list[tuple[int, float]] = []
    for target in stuck_steps:
        _insert(dsn, "never-started", target - have, padding=padding, seed=5000 + target)
        have = target
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("VACUUM ANALYZE generations")
        t, code, rss = run_measured([STUCKGEN, "scan", "-d", dsn, "--format", "json"], env=env)
        assert code == 1, f"scan exited {code}"
        peaks.append((target, _mb(rss)))
        print(f"scan: {target:>7,} stuck of {rows:,} rows: {t:6.2f} s, peak RSS {_mb(rss):6.1f} MB", flush=True)
    ratio = peaks[-1][1] / peaks[0][1]
    print(f"scan memory ratio {peaks[-1][0]:,}/{peaks[0][0]:,} stuck = {ratio:.2f} (target <= 1.2)"
          f" {'OK' if ratio <= 1.2 else 'OVER'}", flush=True)


def bench_probe(dsn: str, repeat: int, env: dict[str, str]) -> None:
    with ReferenceDeployment(dsn, "healthy", secret=SECRET) as dep:
        penv = {**env, "INTERNAL_API_SECRET": SECRET}
        results = []
        for n in (max(1, repeat // 10), repeat):
            out = f"/tmp/stuckgen-bench-probe-{os.getpid()}.json"
            with open(out, "w") as fh:
                t, code, rss = run_measured([STUCKGEN, "probe-auth", "--url", dep.url, "--repeat", str(n),
                                             "--concurrency", "20", "--format", "json"], env=penv, stdout=fh)
            doc = json.load(open(out))
            os.unlink(out)
            failures = sum(sum(c.get("failures", {}).values()) for tgt in doc["targets"] for c in tgt["cells"])
            sent = sum(c["sent"] for tgt in doc["targets"] for c in tgt["cells"])
            results.append((n, _mb(rss)))
            print(f"probe-auth --repeat {n:>5} --concurrency 20: {sent:,} probes in {t:.1f} s "
                  f"({sent / t:.0f}/s), transport failures {failures}, exit {code}, peak RSS {_mb(rss):.1f} MB",
                  flush=True)
        print(f"probe-auth memory ratio {results[1][0]}/{results[0][0]} repeats = {results[1][1] / results[0][1]:.2f}",
              flush=True)


def bench_retrigger(dsn: str, n: int, env: dict[str, str]) -> None:
    peaks = []
    for size in (max(1, n // 10), n):
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("DELETE FROM generations WHERE status <> 'completed'")
        _insert(dsn, "never-started", size, padding=500, seed=9000 + size)
        with ReferenceDeployment(dsn, "healthy", secret=SECRET, work_seconds=0.0, heartbeat_interval=0.05) as dep:
            t, code, rss = run_measured([STUCKGEN, "retrigger", "--all-stuck", "--url", dep.url, "--yes",
                                         "--format", "json", "--concurrency", "8", "--tries", "1"],
                                        env={**env, "INTERNAL_API_SECRET": SECRET, "DATABASE_URL": dsn})
            dep.wait_idle(60)
        peaks.append((size, _mb(rss)))
        print(f"retrigger {size:>6,} rows: {t:.1f} s, exit {code}, peak RSS {_mb(rss):.1f} MB", flush=True)
    print(f"retrigger memory ratio {peaks[1][0]:,}/{peaks[0][0]:,} rows = {peaks[1][1] / peaks[0][1]:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--stuck", default="1000,10000,100000", help="stuck counts to measure, comma-separated")
    ap.add_argument("--padding", type=int, default=2500, help="bytes of extra JSON per row")
    ap.add_argument("--repeat", type=int, default=1000, help="probe-auth --repeat")
    ap.add_argument("--retrigger", type=int, default=10_000, help="rows to retrigger (0: skip)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: scan,probe,retrigger")
    a = ap.parse_args()
    env = {**os.environ, "NO_COLOR": "1"}
    skip = set(filter(None, a.skip.split(",")))
    stuck = [int(x) for x in a.stuck.split(",")]
    if a.rows < max(stuck):
        ap.error("--rows must be at least the largest --stuck")
    with scratch_database("stuckgen_load") as dsn:
        env["DATABASE_URL"] = dsn
        if "scan" not in skip:
            bench_scan(dsn, a.rows, stuck, a.padding, env)
        if "probe" not in skip:
            bench_probe(dsn, a.repeat, env)
        if "retrigger" not in skip and a.retrigger:
            bench_retrigger(dsn, a.retrigger, env)


if __name__ == "__main__":
    main()
