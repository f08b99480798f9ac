"""Benchmark `stuckgen scan --format json` against psql running the same query.

Seeds N generations (realistic parameters of a few KB with a step log), K of them
stuck, then times whole processes side by side (median of 5) and prints ratios:
  scan / psql (target <= 1.5), peak memory at 100k stuck rows (target < 150 MB),
  `stuckgen --help` / `python -c "import typer, rich"` (target <= 1.5).

    python benchmarks/bench_scan.py                      # 1,000,000 rows, 10,000 stuck
    python benchmarks/bench_scan.py --rows 200000 --stuck 5000
"""

from __future__ import annotations

import argparse
import os
import sys

import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _common import STUCKGEN, median_time, run_measured, scratch_database  # noqa: E402

from stuckgen import db as dbmod  # noqa: E402
from stuckgen.reference.seed import db_now, generate, insert_rows  # noqa: E402
from stuckgen.scan import ScanOptions, build_scan_query  # noqa: E402
from stuckgen.schema import MappingConfig, resolve  # noqa: E402


def seed(dsn: str, rows: int, stuck: int, padding: int) -> None:
    mix = {"never-started": stuck // 2, "trigger-failed": stuck // 4, "stalled": stuck - stuck // 2 - stuck // 4}
    with psycopg.connect(dsn, autocommit=True) as c:
        now = db_now(c)
        insert_rows(c, generate(mix, now=now, seed=1, padding=padding, max_age=20 * 3600))
        left = rows - stuck
        chunk = 100_000
        i = 0
        while left > 0:
            n = min(chunk, left)
            insert_rows(c, generate({"completed": n}, now=now, seed=100 + i, padding=padding, max_age=20 * 3600))
            left -= n
            i += 1
        c.execute("VACUUM ANALYZE generations")
        c.execute("VACUUM ANALYZE outputs")


def install_mode() -> str:
    """An editable install adds an import hook (~15 ms per start) that a regular install does not have."""
    import json
    from importlib.metadata import distribution

    raw = distribution("stuckgen").read_text("direct_url.json") or "{}"
    return "editable" if json.loads(raw).get("dir_info", {}).get("editable") else "regular"


def query_text(dsn: str) -> str:
    conn = dbmod.connect(dsn)
    with conn, dbmod.transaction(conn, read_only=True):
        m = resolve(conn, MappingConfig())
        return build_scan_query(m, ScanOptions()).as_string(conn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--stuck", type=int, default=10_000)
    ap.add_argument("--big-stuck", type=int, default=100_000, help="stuck rows for the memory measurement")
    ap.add_argument("--padding", type=int, default=2500, help="bytes of extra JSON per row")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--reuse", metavar="DSN", help="a database this script seeded before (skips seeding; no memory step)")
    a = ap.parse_args()
    env = {**os.environ, "NO_COLOR": "1"}

    help_t, _ = median_time([STUCKGEN, "--help"], runs=a.runs, env=env)
    imp_t, _ = median_time([sys.executable, "-c", "import typer, rich"], runs=a.runs, env=env)
    print(f"stuckgen --help: {help_t*1000:.0f} ms vs import typer, rich: {imp_t*1000:.0f} ms -> ratio {help_t/imp_t:.2f} "
          f"(target <= 1.5; {install_mode()} install)")

    if a.reuse:
        compare(a.reuse, a, env, big=False)
        return
    with scratch_database() as dsn:
        print(f"seeding {a.rows:,} rows ({a.stuck:,} stuck, ~{a.padding} B padding each) ...", flush=True)
        seed(dsn, a.rows, a.stuck, a.padding)
        compare(dsn, a, env, big=True)


def compare(dsn: str, a: argparse.Namespace, env: dict[str, str], *, big: bool) -> None:
    q = query_text(dsn)
    psql = ["psql", "-X", "-q", "-A", "-t", "-d", dsn, "-c", q]
    scan = [STUCKGEN, "scan", "-d", dsn, "--format", "json"]
    t_psql, _ = median_time(psql, runs=a.runs, env=env)
    t_scan, rss = median_time(scan, runs=a.runs, env=env)
    print(f"scan {a.stuck:,} stuck of {a.rows:,}: stuckgen {t_scan:.3f} s vs psql {t_psql:.3f} s -> ratio {t_scan/t_psql:.2f} (target <= 1.5); peak RSS {rss/1024:.0f} MB")
    more = a.big_stuck - a.stuck
    if big and more > 0:
        with psycopg.connect(dsn, autocommit=True) as c:
            insert_rows(c, generate({"never-started": more}, now=db_now(c), seed=9, padding=a.padding))
            c.execute("VACUUM ANALYZE generations")
        t, code, rss_big = run_measured(scan, env=env)
        print(f"scan with {a.big_stuck:,} stuck rows: {t:.2f} s, peak RSS {rss_big/1024:.0f} MB (target < 150 MB); "
              f"memory ratio {a.big_stuck//1000}k/{a.stuck//1000}k stuck = {rss_big/rss:.2f}")


if __name__ == "__main__":
    main()
