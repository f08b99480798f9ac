"""Benchmark `stuckgen scan` against the floors an engineer would otherwise use, side by side.

Every figure is the median of --runs whole processes, the two sides alternating (the machine
is shared; single runs are noise). Printed, with the issue's targets:

  1. scan --format json, 10,000 stuck of 1,000,000 rows, vs psql running the same statement
     (stuckgen's own, printed by scan_render) with the same rows out          target <= 1.3
  2. the same with 100,000 stuck rows                                         target <= 1.5
  3. scan --limit 1 vs a Python floor: a script that imports typer and psycopg, connects and
     runs the same statement                                                  target <= 1.3
  4. with the advised partial index, scan time at --grow-to rows / at --rows  target <= 1.2
  5. peak RSS of scan --format json at 100,000 stuck rows                     target <= 100 MB

Figures 1-3 and 5 are measured with the partial index that scan advises (and once without
it, for 1). The database is kept (--db) so a second run reuses the seed: seeding a million
realistic rows costs minutes here (Python writes ~50,000, the server copies the rest).

    python benchmarks/bench_scan.py                                  # 1M rows, 10k/100k stuck, grow to 5M
    python benchmarks/bench_scan.py --rows 300000 --grow-to 1500000  # smaller, same ratios
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _common import STUCKGEN, grow_completed, kept_database, median_time, run_measured  # noqa: E402

from stuckgen import db as dbmod  # noqa: E402
from stuckgen.reference.seed import db_now, generate, insert_rows  # noqa: E402
from stuckgen.scan import DEFAULT_RULES, ScanOptions, sample_pct  # noqa: E402
from stuckgen.scan_render import build_render_query  # noqa: E402
from stuckgen.schema import MappingConfig, resolve  # noqa: E402

INDEX = ('CREATE INDEX IF NOT EXISTS "generations_inflight_created_at_idx" ON generations (created_at) '
         "WHERE status IN ('processing', 'queued')")
FLOOR = """
import sys, typer, psycopg
with psycopg.connect(sys.argv[1]) as c:
    for row in c.execute(sys.argv[2]):
        sys.stdout.write(row[0] + "\\n") if row[0] is not None else None
"""


def seed(dsn: str, rows: int, stuck: int, padding: int) -> None:
    """``stuck`` stuck rows of three classes, then completed rows up to ``rows`` (copied on the server)."""
    mix = {"never-started": stuck // 2, "trigger-failed": stuck // 4, "stalled": stuck - stuck // 2 - stuck // 4}
    with psycopg.connect(dsn, autocommit=True) as c:
        now = db_now(c)
        insert_rows(c, generate(mix, now=now, seed=1, padding=padding, max_age=20 * 3600))
        insert_rows(c, generate({"completed": min(50_000, rows - stuck)}, now=now, seed=2, padding=padding,
                                max_age=20 * 3600))
    grow_completed(dsn, rows)


def set_stuck(dsn: str, n: int) -> None:
    """Make exactly ``n`` rows stuck: completed rows become never-started ones (marked), or back."""
    with psycopg.connect(dsn, autocommit=True) as c:
        have = c.execute("SELECT count(*) FROM generations WHERE status IN ('processing', 'queued')").fetchone()[0]
        if have < n:
            tpl = c.execute("SELECT parameters FROM generations WHERE status = 'processing' "
                            "AND parameters->>'lastStep' = 'generate:create' LIMIT 1").fetchone()[0]
            from psycopg.types.json import Jsonb
            c.execute("UPDATE generations SET status = 'processing', parameters = %s || '{\"benchStuck\": true}' "
                      "WHERE id IN (SELECT id FROM generations WHERE status = 'completed' LIMIT %s)",
                      (Jsonb(tpl), n - have))
        elif have > n:
            c.execute("UPDATE generations SET status = 'completed' WHERE id IN (SELECT id FROM generations "
                      "WHERE status = 'processing' AND parameters ? 'benchStuck' LIMIT %s)", (have - n,))
        c.execute("VACUUM ANALYZE generations")


def copy_grown(dsn: str, rows: int) -> str:
    """A kept copy of the seeded database (CREATE DATABASE ... TEMPLATE) grown to ``rows``."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from _common import SERVER_DSN

    name = f"{conninfo_to_dict(dsn)['dbname']}_grown_{rows}"
    with psycopg.connect(SERVER_DSN, autocommit=True) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{conninfo_to_dict(dsn)["dbname"]}"')
    big = make_conninfo(**{**conninfo_to_dict(SERVER_DSN), "dbname": name})
    grow_completed(big, rows)
    return big


def statement(dsn: str, **opts: object) -> str:
    """The statement `scan --format json` runs, as text (what psql and the floor script run)."""
    conn = dbmod.connect(dsn)
    with conn, dbmod.transaction(conn, read_only=True):
        m = resolve(conn, MappingConfig())
        options = ScanOptions(**opts)  # type: ignore[arg-type]
        return build_render_query(m, options, DEFAULT_RULES, fmt="json", pct=sample_pct(m)).as_string(conn)


def side_by_side(a: list[str], b: list[str], runs: int, env: dict[str, str]) -> tuple[float, float, int]:
    """Median wall time of ``a`` and ``b``, alternating; and a's peak RSS (KiB)."""
    ta, tb, peak = [], [], 0
    for _ in range(runs):
        t, _, rss = run_measured(a, env=env)
        ta.append(t)
        peak = max(peak, rss)
        t, _, _ = run_measured(b, env=env)
        tb.append(t)
    return statistics.median(ta), statistics.median(tb), peak


def report(label: str, ours: float, floor: float, floor_name: str, target: float) -> float:
    ratio = ours / floor
    verdict = "OK" if ratio <= target else "OVER"
    print(f"{label}: stuckgen {ours:.3f} s vs {floor_name} {floor:.3f} s -> ratio {ratio:.2f} "
          f"(target <= {target}) {verdict}", flush=True)
    return ratio


def psql(dsn: str, q: str) -> list[str]:
    return ["psql", "-X", "-q", "-A", "-t", "-d", dsn, "-c", q]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--stuck", type=int, default=10_000)
    ap.add_argument("--big-stuck", type=int, default=100_000, help="stuck rows for figures 2 and 5")
    ap.add_argument("--grow-to", type=int, default=5_000_000, help="table size for figure 4 (0: skip)")
    ap.add_argument("--padding", type=int, default=2500, help="bytes of extra JSON per row")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--db", default=None, help="kept database name (default stuckgen_bench_<rows>)")
    ap.add_argument("--skip", default="", help="comma-separated: noindex,big,limit,grow")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    env = {**os.environ, "NO_COLOR": "1"}
    dsn, created = kept_database(a.db or f"stuckgen_bench_{a.rows}")
    if created:
        t0 = time.perf_counter()
        print(f"seeding {a.rows:,} rows ({a.stuck:,} stuck, ~{a.padding} B of JSON padding each) ...", flush=True)
        seed(dsn, a.rows, a.stuck, a.padding)
        print(f"  seeded in {time.perf_counter() - t0:.0f} s", flush=True)
    set_stuck(dsn, a.stuck)
    scan = [STUCKGEN, "scan", "-d", dsn, "--format", "json"]

    help_t, _ = median_time([STUCKGEN, "--help"], runs=a.runs, env=env)
    imp_t, _ = median_time([sys.executable, "-c", "import typer, rich"], runs=a.runs, env=env)
    print(f"start-up: stuckgen --help {help_t * 1000:.0f} ms vs python -c 'import typer, rich' {imp_t * 1000:.0f} ms "
          f"-> ratio {help_t / imp_t:.2f}", flush=True)

    if "noindex" not in skip:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute('DROP INDEX IF EXISTS "generations_inflight_created_at_idx"')
            c.execute("ANALYZE generations")
        ours, floor, _ = side_by_side(scan, psql(dsn, statement(dsn)), a.runs, env)
        report(f"[no index] scan --format json, {a.stuck:,} stuck of {a.rows:,}", ours, floor, "psql", 1.3)

    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(INDEX)
        c.execute("ANALYZE generations")
    ours, floor, _ = side_by_side(scan, psql(dsn, statement(dsn)), a.runs, env)
    base_scan = ours
    report(f"[1] scan --format json, {a.stuck:,} stuck of {a.rows:,}", ours, floor, "psql", 1.3)

    if "limit" not in skip:
        q1 = statement(dsn, limit=1)
        ours, floor, _ = side_by_side(scan + ["--limit", "1"], [sys.executable, "-c", FLOOR, dsn, q1], a.runs, env)
        report(f"[3] scan --limit 1, {a.stuck:,} stuck of {a.rows:,}", ours, floor,
               "python floor (typer + psycopg, same statement)", 1.3)

    if "big" not in skip:
        set_stuck(dsn, a.big_stuck)
        ours, floor, rss = side_by_side(scan, psql(dsn, statement(dsn)), a.runs, env)
        report(f"[2] scan --format json, {a.big_stuck:,} stuck of {a.rows:,}", ours, floor, "psql", 1.5)
        print(f"[5] peak RSS of scan --format json at {a.big_stuck:,} stuck rows: {rss / 1024:.0f} MB "
              f"(target <= 100 MB) {'OK' if rss / 1024 <= 100 else 'OVER'}", flush=True)
        set_stuck(dsn, a.stuck)

    if "grow" not in skip and a.grow_to > a.rows:
        t0 = time.perf_counter()
        big = copy_grown(dsn, a.grow_to)
        print(f"  {a.grow_to:,} rows ready in {time.perf_counter() - t0:.0f} s", flush=True)
        set_stuck(big, a.stuck)
        with psycopg.connect(big, autocommit=True) as c:
            c.execute(INDEX)
            c.execute("ANALYZE generations")
        small_t, big_t, _ = side_by_side(scan, [STUCKGEN, "scan", "-d", big, "--format", "json"], a.runs, env)
        print(f"[4] with the partial index, {a.stuck:,} stuck: scan at {a.grow_to:,} rows {big_t:.3f} s / at "
              f"{a.rows:,} rows {small_t:.3f} s -> ratio {big_t / small_t:.2f} (target <= 1.2) "
              f"{'OK' if big_t / small_t <= 1.2 else 'OVER'}", flush=True)
        del base_scan


if __name__ == "__main__":
    main()
