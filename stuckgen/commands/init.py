"""`init`: inspect the database and write a commented stuckgen.toml for its job table."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from stuckgen.console import Output
from stuckgen.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from stuckgen.session import Session


def run_init(session: Session, out: Output, *, output: str = "stuckgen.toml", force: bool = False,
             yes: bool = False) -> int:
    """Propose a configuration and write it to ``output`` ('-': stdout); asks first on a terminal unless ``yes``."""
    from stuckgen.discover import QueueProposal, config_text, propose_config
    from stuckgen.secrets import redact_dsn

    s = session.settings
    target = None if output == "-" else Path(output)
    if target is not None and target.exists() and not force:
        raise ConfigError(f"{target} exists; pass --force to overwrite it (or --output PATH)")
    # Only flags, the environment and .env name the table: the file being generated must not configure itself.
    chosen = s.table if s.sources.get("table", "default").startswith(("flag", "environment", ".env")) else None
    with session.read():
        proposal = propose_config(session.connection(), table=chosen, db_schema=s.db_schema,
                                  naive_tz=s.naive_timezone, threshold=s.threshold)
    text = config_text(proposal, generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     source=redact_dsn(s.database_url or ""))
    if target is None:
        out.lines(text.rstrip("\n").splitlines())
        return ExitCode.OK
    if out.interactive() and not yes:
        out.note(text)
        if not out.ask(f"Write this to {target}?", default=True):
            out.note("nothing written")
            return ExitCode.OK
    write(target, text)
    if isinstance(proposal, QueueProposal):  # queue mode: the libraries' own tables are the job table
        out.note(f"wrote {target}: queue_library {', '.join(proposal.libraries)}; check it with `stuckgen scan`")
        return ExitCode.OK
    inflight: list[str] = next((c.value for c in proposal.top if c.key == "inflight_statuses"), [])
    out.note(f"wrote {target}: table {proposal.table!r}, in flight {', '.join(map(repr, inflight)) or 'none'}; "
             f"check it with `stuckgen schema`, then `stuckgen scan`")
    return ExitCode.OK


def write(path: Path, text: str) -> None:
    """Replace ``path`` in one step (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
