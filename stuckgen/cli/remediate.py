"""`stuckgen retrigger`, `stuckgen fail`, `stuckgen undo` and `stuckgen history` (bodies: stuckgen.commands.remediate)."""


from typing import TYPE_CHECKING, Annotated, Optional

import typer

from stuckgen.cli._app import Output, setting
from stuckgen.cli.options import (
    AUDIT, DATABASE, DEPLOYMENT, PICK, QUEUE_MODE, STUCK_ANY_AGE, YesOpt, command, formats, group, pick_format,
)
from stuckgen.commands import remediate as core
from stuckgen.session import Session

if TYPE_CHECKING:
    from stuckgen.remediate.runner import Pick

FormatOpt = Annotated[Optional[str], formats(*core.FORMATS)]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, metavar="N", help="Rows per transaction.")]
FAILED_STATUS = group(failed_status=Annotated[Optional[str], setting("failed_status", metavar="STATUS",
                                                                     help="Status to set. Default failed.")])


@command(PICK, DATABASE, STUCK_ANY_AGE, QUEUE_MODE, FAILED_STATUS, AUDIT)
def fail(
    session: Session,
    out: Output,
    pick: "Pick",
    reason: Annotated[Optional[str], typer.Option(
        "--reason", show_default=False, metavar="TEXT",
        help="Error message written to the row. Default: one naming stuckgen, the class and the quiet time.")] = None,
    batch_size: BatchSizeOpt = 2000,
    yes: YesOpt = False,
    fmt: FormatOpt = None,
) -> int:
    """Mark stuck rows as failed, with an error saying why. Destructive (undo with `stuckgen undo RUN_ID`).

    Sets the failed status, the error field and the updated time (where the schema
    has them) in batches, one transaction each, locking with FOR UPDATE SKIP LOCKED
    and re-checking by the database clock that each row is still stuck: a row a
    worker completed, touched or holds locked meanwhile is skipped and reported,
    never overwritten. Every change is audited with the previous values.
    Without --yes it is a dry run.

    Example:

        stuckgen fail --all-stuck --older-than 30m --yes

        stuckgen fail 0b6f6a52-2a2c-4d1e-9a57-3f1c2d7e8a90 --reason "provider outage" --yes

    Exit: 0 every selected row failed, 1 some were skipped, 2 usage error, 3 database
    unreachable, 130 interrupted (batches done stay done).
    """
    return core.run_fail(session, out, pick=pick, reason=reason, batch_size=batch_size, yes=yes,
                         fmt=pick_format(fmt, out, core.FORMATS))


@command(PICK, DATABASE, STUCK_ANY_AGE, QUEUE_MODE, DEPLOYMENT, AUDIT)
def retrigger(
    session: Session,
    out: Output,
    pick: "Pick",
    body_template: Annotated[str, typer.Option(
        "--body-template", metavar="TEMPLATE", help="JSON body; {id} is replaced by the row id.")] = '{"generationId": "{id}"}',
    idempotency_header: Annotated[str, typer.Option(
        "--idempotency-header", metavar="HEADER", help="Header carrying stuckgen-<id>-<attempt>; 'none' to send none.")] = "Idempotency-Key",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, metavar="N", help="Triggers in flight at once.")] = 4,
    max_attempts: Annotated[int, typer.Option(
        "--max-attempts", min=1, metavar="N", help="Triggers per row across runs (from the audit log); then 'exhausted'.")] = 3,
    tries: Annotated[int, typer.Option(
        "--tries", min=1, metavar="N", help="HTTP tries per trigger on timeouts, 429 and 5xx (backoff with jitter).")] = 3,
    wait: Annotated[Optional[str], typer.Option(
        "--wait", metavar="DURATION", show_default=False,
        help="After triggering, wait up to this long for the rows to leave processing, then verify.")] = None,
    via: Annotated[str, typer.Option(
        "--via", metavar="ROUTE",
        help="process (the process route) or sync: the app's recovery route for provider rows, "
             "POST /api/generations/{id}/sync, as the rows' owner (session cookie); it asks the provider "
             "and settles the row.")] = "process",
    yes: YesOpt = False,
    fmt: FormatOpt = None,
) -> int:
    """Call the process route again for stuck rows, the way the app's server does. Fires production work.

    Sends POST {url}{route} with {"generationId": ID}, the internal secret header
    (INTERNAL_API_SECRET, never printed) and an Idempotency-Key, with bounded
    concurrency and retries (timeouts, 429, 5xx; Retry-After honoured). Each row is
    re-read just before sending and skipped if it moved on. The first 401/403 stops
    the run before any further row is sent. A row triggered --max-attempts times is
    reported as exhausted (use `stuckgen fail`). Redirects are never followed. Without
    --yes it is a dry run.

    --all-stuck takes only classes a new trigger cannot harm (never-started,
    trigger-failed, queued-not-drained, timed-out) and lists what it left out and why; other
    classes need --class CLASS and come with a warning of what the app will do
    (outputs-not-finalized and stalled: the process route runs them again and the
    provider may bill again; awaiting-webhook: skipped, settle those with the app's
    sync route POST /api/generations/{id}/sync). With --wait, only real progress
    counts: a new worker step in the log, or a finished status; a rewritten
    heartbeat alone does not.

    Example:

        stuckgen retrigger --all-stuck --class never-started --url https://app.example.com --wait 60s --yes

        stuckgen retrigger --via sync --all-stuck --class awaiting-webhook --url https://app.example.com --yes

    Exit: 0 every row accepted (and, with --wait, moved on), 1 some were not, 2 usage
    error, 3 database or deployment unreachable, 130 interrupted.
    """
    return core.run_retrigger(session, out, pick=pick, via=via, max_attempts=max_attempts, wait=wait, concurrency=concurrency, tries=tries,
                              body_template=body_template, idempotency_header=idempotency_header, yes=yes,
                              fmt=pick_format(fmt, out, core.FORMATS))


@command(DATABASE, AUDIT)
def undo(
    session: Session,
    out: Output,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The fail run to undo (see `stuckgen history`).")],
    batch_size: BatchSizeOpt = 2000,
    yes: YesOpt = False,
    fmt: FormatOpt = None,
) -> int:
    """Restore the rows a `fail` run changed to their previous values. Destructive (it writes them back).

    Compare-and-set: a row changed since the run (a worker finished it, someone
    edited it) is skipped and reported, never overwritten. The undo itself is
    audited. Without --yes it is a dry run that says which rows would be restored.

    Example:

        stuckgen undo 20261128T103540Z-3fa2c1 --yes

    Exit: 0 every row restored, 1 some were skipped, 2 no such fail run, 3 database
    unreachable, 130 interrupted.
    """
    return core.run_undo(session, out, run_id=run_id, batch_size=batch_size, yes=yes,
                         fmt=pick_format(fmt, out, core.FORMATS))


@command(DATABASE, AUDIT)
def history(
    session: Session,
    out: Output,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, metavar="N", help="Most recent runs to list.")] = 20,
    fmt: FormatOpt = None,
) -> int:
    """List recent remediation runs from the audit log (read only).

    One line per run: id, action, operator, table, start, rows and outcomes.

    Example:

        stuckgen history --limit 5

        stuckgen history --audit-file /var/log/stuckgen.jsonl --format json

    Exit: 0 listed (even none), 2 usage error, 3 database unreachable.
    """
    return core.run_history(session, out, limit=limit, fmt=pick_format(fmt, out, core.FORMATS))
