"""`stuckgen show ID` (body: stuckgen.commands.show)."""


from typing import Annotated, Optional

import typer

from stuckgen.cli.options import (
    CLASSIFY, DATABASE, QUEUE_MODE, Output, ThresholdOpt, command, formats, group, pick_format, setting,
)
from stuckgen.session import Session

# show reads the audit log (never writes it): its own help for the same two options.
SHOW_AUDIT = group(
    audit_table=Annotated[Optional[str], setting("audit_table", metavar="NAME", help=(
        "Audit log table whose actions are shown ('none' to skip). Default stuckgen.audit (a schema of its own)."))],
    audit_file=Annotated[Optional[str], setting("audit_file", metavar="PATH", help=(
        "Read the audit log from this JSON Lines file instead of the table."))])


@command(DATABASE, group(threshold=ThresholdOpt), CLASSIFY, QUEUE_MODE, SHOW_AUDIT)
def show(session: Session, out: Output,
         generation_id: Annotated[str, typer.Argument(metavar="ID", show_default=False,
                                                      help="The generation's id (a UUID in the reference schema).")],
         fmt: Annotated[Optional[str], formats("table", "json", "markdown")] = None) -> int:
    """Show one generation's whole story: fields, verdict, step-log timeline, outputs, queue job, actions.

    The verdict is scan's (same query and rules, this id only, no --since window):
    the class and why when the row is stuck, else "not stuck: <status>, last sign of
    life N ago". The timeline is the row's step log with the extras the app logged,
    such as a failed trigger's HTTP status. Reads only, in a READ ONLY transaction.

    \b
    Examples:
      stuckgen show 3f2b6c1e-8a4d-4e5f-9b0a-1c2d3e4f5a6b
      stuckgen show 3f2b6c1e-8a4d-4e5f-9b0a-1c2d3e4f5a6b --format markdown >> incident.md

    Exit: 0 not stuck, 1 stuck, 2 malformed id, unknown id or configuration error,
    3 database unreachable.
    """
    from stuckgen.commands.show import run_show

    return run_show(session, out, generation_id=generation_id, fmt=pick_format(fmt, out, ("table", "json", "markdown")))
