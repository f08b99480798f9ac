"""`stuckgen init`: inspect the database and write a commented stuckgen.toml."""


from typing import Annotated

import typer

from stuckgen.cli.options import (
    ConnectTimeoutOpt, DatabaseUrlOpt, DbSchemaOpt, Output, StatementTimeoutOpt, TableOpt, command, group,
)
from stuckgen.session import Session

# Only flags, the environment and .env: the file being generated must not configure its own generation.
INIT_DATABASE = group(database_url=DatabaseUrlOpt, table=TableOpt, db_schema=DbSchemaOpt,
                      statement_timeout=StatementTimeoutOpt, connect_timeout=ConnectTimeoutOpt)


@command(INIT_DATABASE, no_config=True)
def init(
    session: Session,
    out: Output,
    output: Annotated[str, typer.Option("--output", "-o", metavar="PATH",
                                        help="Where to write ('-' for stdout).")] = "stuckgen.toml",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Write without asking (the default in a pipe).")] = False,
) -> int:
    """Inspect the database and write a commented stuckgen.toml for its job table.

    Finds candidate job tables (a status column, text or enum, beside a creation
    time), or takes the one named with --table; counts each status value (overall
    and in the last day) and sorts them into in flight, completed, failed and
    cancelled by known vocabularies (the incident app's, Replicate's, fal's,
    pg-boss's, common words); finds the timestamps, liveness fields (columns or
    JSON keys), the provider id column and tables that point at it. Every value is
    written with its reason beside it, the threshold too. With no app job table beside
    graphile-worker's or pg-boss's tables (or --table naming one), it writes queue mode
    (queue_library) with the library's rules in comments. Reads only. Never overwrites without --force;
    asks before writing on a terminal, writes without asking in a pipe or with --yes.

    \b
    Examples:
      stuckgen init --table Shot
      stuckgen init --table Shot --output - | less
      stuckgen init --force --yes
      stuckgen init --table graphile_worker.jobs

    Exit: 0 written (or declined), 2 no job table / the file exists / bad option,
    3 database unreachable.
    """
    from stuckgen.commands.init import run_init

    return run_init(session, out, output=output, force=force, yes=yes)
