"""Queue mode (``queue_library``): scan and show on a job-queue library's jobs, by the library's own rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stuckgen.console import Output
from stuckgen.errors import ExitCode

if TYPE_CHECKING:
    from stuckgen.session import Session


def run_scan_jobs(session: Session, out: Output, libraries: tuple[str, ...], *, fmt: str,
                  classes: tuple[str, ...] = (), limit: int | None = None) -> int:
    """`scan` with queue_library: the libraries' stuck jobs as rows. FINDINGS when any is stuck."""
    from stuckgen.queues import scan_jobs
    from stuckgen.render import TERMINAL_ROWS
    from stuckgen.render.jobs import jobs_csv_lines, jobs_json_lines, jobs_table_lines, summary_lines

    shown = limit if limit is not None else (TERMINAL_ROWS if fmt == "table" and out.is_tty else None)
    with session.read():
        result = scan_jobs(session.connection(), libraries, threshold=session.settings.threshold, classes=classes,
                           limit=shown)
    if fmt == "json":
        out.lines(jobs_json_lines(result))
    elif fmt == "csv":
        out.lines(jobs_csv_lines(result))
        for line in summary_lines(result):
            out.note(line)
    else:
        for line in jobs_table_lines(result, width=out.width or 0):
            out.out.print(line, markup=False, soft_wrap=True)
    return ExitCode.FINDINGS if result.stuck else ExitCode.OK


def run_show_job(session: Session, out: Output, libraries: tuple[str, ...], job_id: str, *, fmt: str) -> int:
    """`show JOB_ID` with queue_library: one job by its library's rules. FINDINGS when stuck."""
    from stuckgen.queues import job_story
    from stuckgen.render.jobs import story_json_lines, story_lines

    with session.read():
        story = job_story(session.connection(), libraries, job_id, threshold=session.settings.threshold)
    if fmt == "json":
        out.lines(story_json_lines(story))
    else:
        for line in story_lines(story, markdown=fmt == "markdown"):
            out.out.print(line, markup=False, soft_wrap=True)
    return ExitCode.FINDINGS if story.stuck else ExitCode.OK
