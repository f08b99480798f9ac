"""`stuckgen init`: inspect the database and write a commented stuckgen.toml."""


import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from stuckgen.cli._app import ConnectTimeoutOpt, DatabaseUrlOpt, DbSchemaOpt, Output, StatementTimeoutOpt, TableOpt
from stuckgen.cli.options import command, group
from stuckgen.errors import ConfigError, ExitCode
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
    written with its reason beside it. Reads only. Never overwrites without --force;
    asks before writing on a terminal, writes without asking in a pipe or with --yes.

    \b
    Examples:
      stuckgen init --table Shot
      stuckgen init --table Shot --output - | less
      stuckgen init --force --yes

    Exit: 0 written (or declined), 2 no job table / the file exists / bad option,
    3 database unreachable.
    """
    from stuckgen.discover import propose, toml_text
    from stuckgen.secrets import redact_dsn

    settings = session.settings
    target = None if output == "-" else Path(output)
    if target is not None and target.exists() and not force:
        raise ConfigError(f"{target} exists; pass --force to overwrite it (or --output PATH)")
    chosen = settings.table if settings.sources.get("table", "default").startswith(("flag", "environment", ".env")) else None
    with session.read():
        proposal = propose(session.connection(), table=chosen, db_schema=settings.db_schema,
                           naive_tz=settings.naive_timezone, threshold=settings.threshold)
    text = toml_text(proposal, generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     source=redact_dsn(settings.database_url or ""))
    if target is None:
        out.lines(text.rstrip("\n").splitlines())
        return ExitCode.OK
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if interactive and not yes:
        sys.stderr.write(text + "\n")
        if not typer.confirm(f"Write this to {target}?", default=True, err=True):
            out.note("nothing written")
            return ExitCode.OK
    _write(target, text)
    inflight: list[str] = next((c.value for c in proposal.top if c.key == "inflight_statuses"), [])
    out.note(f"wrote {target}: table {proposal.table!r}, in flight {', '.join(map(repr, inflight)) or 'none'}; "
             f"check it with `stuckgen schema`, then `stuckgen scan`")
    return ExitCode.OK


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
