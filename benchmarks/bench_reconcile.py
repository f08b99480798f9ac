"""reconcile against the provider stand-in: bounded concurrency and Retry-After, side by side in one run.

    python benchmarks/bench_reconcile.py [--rows 40] [--delay 0.1]

Each prediction's answer takes --delay seconds (the provider's latency). Prints the wall time of
asking about every row at concurrency 1, 4 and 8, and the ratios to concurrency 1; then the cost
of a 429 with Retry-After: 1 on every row (one wait per row, overlapped by the concurrency).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

import httpx

from stuckgen.reconcile import ProviderRow, reconcile_rows
from stuckgen.reference.provider import ProviderStandIn
from stuckgen.replicate import ProviderOptions

TOKEN = "r8_bench"


def run(provider: ProviderStandIn, rows: list[ProviderRow], concurrency: int) -> float:
    opts = ProviderOptions(api_url=provider.url, token=TOKEN, concurrency=concurrency, timeout=10, backoff=0.01)
    t0 = time.perf_counter()
    with httpx.Client(trust_env=False, limits=httpx.Limits(max_connections=concurrency)) as client:
        result = reconcile_rows(client, rows, options=opts, now=datetime.now(timezone.utc),
                                stuck_rows=len(rows), without_prediction=0)
    elapsed = time.perf_counter() - t0
    assert len(result.verdicts) == len(rows) and result.counts == {"provider-succeeded-callback-lost": len(rows)}
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--delay", type=float, default=0.1)
    a = ap.parse_args()
    with ProviderStandIn(token=TOKEN) as provider:
        rows = []
        for i in range(a.rows):
            pid = provider.add("succeeded")
            provider.slow(pid, a.delay)
            rows.append(ProviderRow(id=str(i), key=i, cls="awaiting-webhook", prediction_id=pid))
        base = run(provider, rows, 1)
        print(f"{a.rows} rows, {a.delay:g}s per answer")
        print(f"  concurrency 1: {base:6.2f}s  (1.00x)")
        for c in (4, 8):
            t = run(provider, rows, c)
            print(f"  concurrency {c}: {t:6.2f}s  ({base / t:.2f}x faster)")
        for r in rows:
            provider.throttle(r.prediction_id, 1, retry_after="1")
        t = run(provider, rows, 8)
        print(f"  concurrency 8 with one 429 (Retry-After: 1) per row: {t:6.2f}s")


if __name__ == "__main__":
    main()
