"""Queue mode in the CLI: scan, show, fail and retrigger on a job-queue library's jobs (``queue_library``).

Each command checks ``queues.libraries_in_force(settings)`` and, when a library is
configured, hands over to the function here: open, one core call, render, exit code.
"""


from typing import Any, Optional

from stuckgen.cli._app import Output, default_format
from stuckgen.errors import ConfigError, ExitCode


def _format(fmt: Optional[str], out: Output, allowed: tuple[str, ...]) -> str:
    chosen = default_format(fmt, tty=out.is_tty)
    chosen = "table" if chosen in ("text", "live") else chosen
    if chosen not in allowed:
        raise ConfigError(f"--format: {chosen!r} is not one of {', '.join(allowed)}")
    return chosen


def scan(settings: Any, libraries: tuple[str, ...], *, fmt: Optional[str], classes: tuple[str, ...] = (),
         limit: Optional[int] = None) -> int:
    """`stuckgen scan` with queue_library: the libraries' stuck jobs as rows. Exit 1 when any is stuck."""
    from stuckgen import db
    from stuckgen.queues import scan_jobs
    from stuckgen.render import TERMINAL_ROWS
    from stuckgen.render.jobs import jobs_csv_lines, jobs_json_lines, jobs_table_lines, summary_lines

    out = Output()
    fmt = _format(fmt, out, ("table", "json", "csv"))
    shown = limit if limit is not None else (TERMINAL_ROWS if fmt == "table" and out.is_tty else None)
    with db.connect(settings.database_url, connect_timeout=settings.connect_timeout) as conn:
        with db.read_tx(conn, settings):
            result = scan_jobs(conn, libraries, threshold=settings.threshold, classes=classes, limit=shown)
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


def show(settings: Any, libraries: tuple[str, ...], job_id: str, *, fmt: Optional[str]) -> int:
    """`stuckgen show JOB_ID` with queue_library: one job by its library's rules. Exit 1 when stuck."""
    from stuckgen import db
    from stuckgen.queues import job_story
    from stuckgen.render.jobs import story_json_lines, story_lines

    out = Output()
    fmt = _format(fmt, out, ("table", "json", "markdown"))
    with db.connect(settings.database_url, connect_timeout=settings.connect_timeout) as conn:
        with db.read_tx(conn, settings):
            story = job_story(conn, libraries, job_id, threshold=settings.threshold)
    if fmt == "json":
        out.lines(story_json_lines(story))
    else:
        for line in story_lines(story, markdown=fmt == "markdown"):
            out.out.print(line, markup=False, soft_wrap=True)
    return ExitCode.FINDINGS if story.stuck else ExitCode.OK
