"""The bodies of `fail`, `retrigger`, `undo` and `history`: pick rows, ask, act (``remediate.runner``), render.

Dry run unless --yes; on a terminal without --yes, one question after the rows and
the write's target are shown. Interrupted runs report how far they got (exit 130).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stuckgen.commands import print_fitted
from stuckgen.errors import ExitCode

if TYPE_CHECKING:
    from stuckgen.console import Output
    from stuckgen.remediate.results import RemediationResult
    from stuckgen.remediate.runner import Pick
    from stuckgen.session import Session
    from stuckgen.settings import Settings

FORMATS = ("table", "json")


def pick(*, ids: Sequence[str] | None = None, all_stuck: bool = False, cls: Sequence[str] | None = None,
         older_than: str | None = None) -> Pick:
    """The rows a remediation command names, from its selection options (``cls``: --class)."""
    from stuckgen.durations import parse_duration
    from stuckgen.remediate.runner import Pick

    return Pick(ids=tuple(ids or ()), all_stuck=all_stuck, classes=tuple(cls or ()),
                older_than=parse_duration(older_than, option="--older-than") if older_than else None)


def run_fail(session: Session, out: Output, *, pick: Pick, reason: str | None = None, batch_size: int = 2000,
             yes: bool = False, fmt: str = "table") -> int:
    """`stuckgen fail`: fail the picked rows by compare-and-set. Destructive."""
    from stuckgen.remediate import runner

    if libraries := queue_mode(session):  # graphile-worker's own admin functions; pg-boss refused
        return _jobs(session, out, libraries, "fail", pick, reason=reason, yes=yes, fmt=fmt)
    ask = Asker(session, out, yes)
    with session.interruptible():
        result = runner.fail(session, pick, reason=reason, batch_size=batch_size, yes=yes, confirm=ask,
                             progress=out.rows_progress)
    return finish(out, fmt, result, rows=not (result.dry_run and ask.shown))


def run_retrigger(session: Session, out: Output, *, pick: Pick, via: str = "process", max_attempts: int = 3,
                  wait: str | None = None, concurrency: int = 4, tries: int = 3, body_template: str | None = None,
                  idempotency_header: str | None = None, yes: bool = False, fmt: str = "table") -> int:
    """`stuckgen retrigger`: call the process route again for the picked rows (or, ``via="sync"``,
    the app's recovery route). Fires production work."""
    from stuckgen.durations import parse_duration
    from stuckgen.remediate import runner

    if libraries := queue_mode(session):  # graphile-worker's own admin functions; pg-boss refused
        return _jobs(session, out, libraries, "retry", pick, yes=yes, fmt=fmt)
    if via != "process":
        from stuckgen.commands.reconcile import run_sync

        return run_sync(session, out, pick, via=via, concurrency=concurrency, tries=tries, yes=yes, fmt=fmt)
    trigger = runner.Trigger(max_attempts=max_attempts, wait=parse_duration(wait, option="--wait") if wait else 0.0,
                             concurrency=concurrency, tries=tries,
                             body_template=body_template or runner.DEFAULT_BODY_TEMPLATE,
                             idempotency_header=(runner.DEFAULT_IDEMPOTENCY_HEADER if idempotency_header is None
                                                 else idempotency_header))
    ask = Asker(session, out, yes)
    with session.interruptible():
        result = runner.retrigger(session, pick, trigger, yes=yes, confirm=ask, progress=out.rows_progress)
    return finish(out, fmt, result, rows=not (result.dry_run and ask.shown))


def run_undo(session: Session, out: Output, *, run_id: str, batch_size: int = 2000, yes: bool = False,
             fmt: str = "table") -> int:
    """`stuckgen undo`: restore what a fail run changed, by compare-and-set. Destructive."""
    from stuckgen.remediate import runner

    ask = Asker(session, out, yes)
    with session.interruptible():
        result = runner.undo_run(session, run_id, batch_size=batch_size, act=yes,
                                 confirm=ask if ask.asks else None)
    return finish(out, fmt, result, rows=not (result.dry_run and ask.shown))


def run_history(session: Session, out: Output, *, limit: int = 20, fmt: str = "table") -> int:
    """`stuckgen history`: the most recent remediation runs in the audit log (read only)."""
    from stuckgen.remediate import runner
    from stuckgen.render.remediate import history_json_lines, history_table

    runs, where = runner.history(session, limit=limit)
    if fmt == "json":
        out.lines(history_json_lines(runs, audit=where))
    elif runs:
        out.out.print(history_table(runs))
    else:
        out.note(f"no runs in the audit log ({where})")
    return ExitCode.OK


def queue_mode(session: Session) -> tuple[str, ...]:
    """The job-queue libraries whose own jobs are acted on instead of the app's table (none: the app's)."""
    from stuckgen.queues import libraries_in_force

    return libraries_in_force(session.settings)


def _jobs(session: Session, out: Output, libraries: tuple[str, ...], action: str, pick: Pick, **kw: Any) -> int:
    """fail / retrigger with queue_library: the library's jobs (stuckgen.commands.queues)."""
    from stuckgen.commands.queues import run_remediate_jobs

    return run_remediate_jobs(session, out, libraries, action=action, ids=pick.ids, all_stuck=pick.all_stuck,
                              classes=pick.classes, older_than=pick.older_than, **kw)


@dataclass
class Asker:
    """The core's confirm hook: --yes acts; a terminal gets the dry run, the target and one question;
    anything else is a dry run. ``shown``: the rows were shown above the question."""

    session: Session
    out: Output
    yes: bool
    shown: bool = False

    @property
    def asks(self) -> bool:
        """Whether, without --yes, a person is asked (a terminal on both ends) rather than a silent dry run."""
        return not self.yes and self.out.interactive()

    def __call__(self, question: str, preview: RemediationResult | None = None) -> bool:
        if self.yes:
            return True
        if not self.asks:
            return False
        if preview is not None and preview.outcomes:
            from stuckgen.render.remediate import result_table

            tbl, hidden = result_table(preview, max_rows=50, width=self.out.width)
            self.out.err.print(tbl)
            if hidden:
                self.out.err.print(f"... and {hidden} more", markup=False)
            self.shown = True
        for line in target_lines(self.session.settings, preview.table if preview is not None else None):
            self.out.note(line)
        return self.out.ask(question)


def target_lines(settings: Settings, table: str | None) -> list[str]:
    """Where a write would go, and from which configuration (never a password)."""
    from pathlib import Path

    from stuckgen.db import describe_target

    if not settings.database_url:
        return []
    lines = [f"target: {describe_target(settings.database_url)}" + (f", table {table}" if table else "")]
    src = settings.sources.get("database_url", "")
    if src.startswith(".env ") and settings.env_file and Path(settings.env_file).resolve() == (Path.cwd() / ".env").resolve():
        lines.append(f"note: the database URL comes from ./.env ({src.removeprefix('.env ')}) in "
                     f"{Path.cwd()}: run from an app's repository, that is the app's own configuration, "
                     "often production's")
    elif src:
        lines.append(f"(database URL from {src})")
    return lines


def finish(out: Output, fmt: str, result: RemediationResult, *, rows: bool = True) -> int:
    """Render the result (``rows=False``: they were just shown above a question); its exit code."""
    render_result(out, fmt, result, rows=rows)
    return ExitCode.INTERRUPTED if result.interrupted else int(result.exit_code)


def render_result(out: Output, fmt: str, result: RemediationResult, *, rows: bool = True) -> None:
    from stuckgen.render.layout import wrap_lines
    from stuckgen.render.remediate import result_json_lines, result_table, summary_lines

    if fmt == "json":
        out.lines(result_json_lines(result))
        for line in summary_lines(result):
            out.note(line)
        return
    if result.outcomes and rows:
        from stuckgen.render import TERMINAL_ROWS

        table, hidden = result_table(result, max_rows=TERMINAL_ROWS if out.is_tty else None, width=out.width)
        print_fitted(out, table)
        if hidden:
            out.out.print(f"{hidden:,} more; use --format json", markup=False)
        out.out.print()
    # Wrapped between words, never inside a command to copy (`stuckgen undo RUN_ID` stays on one line).
    for line in wrap_lines(summary_lines(result), out.width):
        out.out.print(line, markup=False, highlight=False, soft_wrap=True)
