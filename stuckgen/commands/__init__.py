"""Each command's body, without Typer: ``run_<name>(session, out, *, options) -> ExitCode``.

The CLI (``stuckgen.cli``) declares the options and calls one of these; the
``Session`` opens what the command needs and the ``Output`` is where it writes,
so a test can run a command with its own streams. One module per family:
scan (scan, schema), show, watch, jobs, probe (probe-auth), init, doctor (doctor,
check), remediate (fail, retrigger, undo, history), reconcile, demo; alerting and
queues serve several.
"""

from __future__ import annotations

from typing import Any

from stuckgen.console import Output


def print_fitted(out: Output, table: Any) -> None:
    """A table fitted to the terminal, and what it left out to fit (``render.layout.fit_table``)."""
    out.out.print(table)
    if table.left_out:
        # Short enough for 80 columns with the usual one or two columns named: "--format json" must not break.
        out.out.print(f"({', '.join(table.left_out)} left out at {out.width} columns; --format json has them)",
                      markup=False)


def index_note(table: str, advice: str) -> str:
    """The partial index that makes the stuck-row scan cheap (scan and schema give the same advice)."""
    return (f"note: the stuck-row scan reads all of {table} (no index serves the in-flight statuses); "
            f"this partial index makes it cheap:\n  {advice}")
