"""`stuckgen watch` (body: stuckgen.commands.watch)."""


from typing import Annotated, Optional

import typer

from stuckgen.cli.options import (
    AUDIT, DATABASE, DEPLOYMENT, NOTIFY, QUEUE_MODE, STUCK, Output, RepeatOpt, command, formats, pick_format,
)
from stuckgen.durations import parse_duration
from stuckgen.session import Session


@command(DATABASE, STUCK, QUEUE_MODE, DEPLOYMENT, NOTIFY, AUDIT)
def watch(session: Session, out: Output,
          interval: Annotated[str, typer.Option("--interval", "-i", metavar="DURATION",
                                                help="Time between refreshes.")] = "5s",
          count: Annotated[Optional[int], typer.Option("--count", min=1, metavar="N", show_default=False,
                                                       help="Stop after N refreshes (default: until Ctrl-C).")] = None,
          fmt: Annotated[Optional[str], formats(
              "table", "json", default="table (a live view) on a terminal, json (one line per refresh) in a pipe")] = None,
          probe: Annotated[bool, typer.Option("--probe", help="Also run probe-auth against --url and show the "
                                                              "latest matrix.")] = False,
          probe_interval: Annotated[str, typer.Option("--probe-interval", metavar="DURATION",
                                                      help="Time between probe rounds (at least 30s).")] = "60s",
          repeat: RepeatOpt = None) -> int:
    """Watch the stuck set during an incident: counts by class, rows that became stuck or recovered.

    Refreshes every --interval over ONE database connection, each refresh a READ
    ONLY transaction; it never writes the app's tables. With --slack-webhook,
    --pagerduty-routing-key or --notify-webhook it tells them when a stuck class
    appears, doubles or clears (as `check` does), keeping that state in the audit
    log. The first refresh is the baseline: later
    ones list rows that became stuck and rows that recovered (with their status
    now) since the start. With --probe, probe-auth runs every --probe-interval
    (with the same deployment options as probe-auth) and its latest matrix is shown.
    Ctrl-C (or SIGTERM) leaves with a one-line summary on stderr. In a pipe it prints one JSON line per refresh instead.

    \b
    Examples:
      stuckgen watch --threshold 5m --interval 10s
      stuckgen watch --probe --url https://app.example.com
      stuckgen watch --count 12 --interval 5s | jq -c '{stuck, by_class}'

    Exit: 0 nothing stuck at the end of --count refreshes, 1 rows stuck then, 2
    configuration error, 3 database unreachable, 130 stopped by Ctrl-C or SIGTERM
    (after the one-line summary).
    """
    from stuckgen.commands.watch import run_watch

    return run_watch(session, out, fmt=pick_format(fmt, out, ("table", "json")), count=count, probe=probe,
                     interval=parse_duration(interval, option="--interval"), repeat=repeat,
                     probe_interval=parse_duration(probe_interval, option="--probe-interval"))
