"""`stuckgen scan` and `stuckgen schema` (bodies: stuckgen.commands.scan)."""


from typing import Annotated, Optional

import typer

from stuckgen.cli.options import DATABASE, QUEUE_MODE, STUCK, Output, command, formats, pick_format
from stuckgen.session import Session

ClassesOpt = Annotated[Optional[list[str]], typer.Option(
    "--class", "-c", metavar="CLASS", show_default=False,
    help="Only rows of this class (repeatable): never-started, trigger-failed, timed-out, stalled, awaiting-webhook, "
         "queued-not-drained, outputs-not-finalized, unknown.")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", "-n", min=1, show_default=False, metavar="N",
                                                 help="At most this many rows.")]


@command(DATABASE, STUCK, QUEUE_MODE)
def scan(session: Session, out: Output, cls: ClassesOpt = None, limit: LimitOpt = None,
         fmt: Annotated[Optional[str], formats("table", "json", "csv")] = None) -> int:
    """List generations stuck past a threshold and classify why each one is stuck.

    Stuck: status in the in-flight statuses (processing, queued) and no sign of life
    (heartbeat, else updated, else created time) for longer than --threshold, measured
    with the database's clock. Reads only, in a READ ONLY transaction with timeouts.

    \b
    Examples:
      stuckgen scan --threshold 5m --since 6h
      stuckgen scan --format json | jq '.rows[] | select(.class == "trigger-failed") | .id'

    Also reads the rows that ended failed at the trigger (status failed, a failed
    trigger in the step log or error text), grouped by cause and HTTP status in the
    summary; they count as findings past check's limits (--max-trigger-failures,
    --max-trigger-failure-rate in the trigger window, defaults 2, 10%, 1h).

    Exit: 0 none stuck, 1 stuck rows found (or trigger failures past the limits),
    2 configuration error, 3 database unreachable.
    """
    from stuckgen.commands.scan import run_scan

    return run_scan(session, out, fmt=pick_format(fmt, out, ("table", "json", "csv")), classes=tuple(cls or ()),
                    limit=limit)


@command(DATABASE, QUEUE_MODE)
def schema(session: Session, out: Output, fmt: Annotated[Optional[str], formats("table", "json")] = None) -> int:
    """Print the schema mapping stuckgen resolved, where each field came from, and the rules in force.

    Each logical field maps to a column, a key inside a JSON column, or nothing
    (which lowers what scan can conclude). Override with --map or [mapping] in stuckgen.toml.
    On a large table it also checks (EXPLAIN) that an index serves the stuck-row scan,
    and prints the partial index that would.
    [[rules]] in stuckgen.toml come before the default rules (first match wins) unless
    replace_default_rules = true; each rule is listed with its source.

    \b
    Example:
      stuckgen schema --map heartbeat=parameters.lastHeartbeatAt

    Exit: 0 resolved, 2 a table or column is missing, 3 database unreachable.
    """
    from stuckgen.commands.scan import run_schema

    return run_schema(session, out, fmt=pick_format(fmt, out, ("table", "json")))
