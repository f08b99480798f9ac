"""``python -m stuckgen.reference --dsn DSN --scenario NAME``: serve until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from stuckgen.errors import StuckgenError
from stuckgen.reference.scenarios import SCENARIOS
from stuckgen.reference.server import ReferenceDeployment
from stuckgen.secrets import describe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stuckgen.reference", description=__doc__)
    parser.add_argument("--dsn", default=os.environ.get("STUCKGEN_DSN"), help="PostgreSQL DSN (tables are created if missing)")
    parser.add_argument("--scenario", default="healthy", choices=sorted(SCENARIOS))
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--latency", type=float, default=None, help="seconds added to every request")
    parser.add_argument("--work-seconds", type=float, default=3.0)
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("--dsn (or STUCKGEN_DSN) is required")
    # Read from the environment so they never show up in `ps`.
    secret = os.environ.get("INTERNAL_API_SECRET") or "reference-internal-secret"
    bypass = os.environ.get("VERCEL_AUTOMATION_BYPASS_SECRET") or "reference-bypass-secret"
    deployment = ReferenceDeployment(
        args.dsn,
        args.scenario,
        secret=secret,
        bypass_secret=bypass,
        latency=args.latency,
        port=args.port,
        work_seconds=args.work_seconds,
        heartbeat_interval=args.heartbeat_interval,
        create_schema=True,
    )
    try:
        deployment.start()
    except (StuckgenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(deployment.url, flush=True)
    print(
        f"scenario {deployment.scenario.name}: {deployment.scenario.description}\n"
        f"INTERNAL_API_SECRET: {describe(secret)}; bypass secret: {describe(bypass)}; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        deployment.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
