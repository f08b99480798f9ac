"""Queue mode (``queue_library``): scan and show on a job-queue library's jobs, by the library's own rules."""

from __future__ import annotations

from collections.abc import Sequence
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


def run_schema_jobs(session: Session, out: Output, libraries: tuple[str, ...], *, fmt: str) -> int:
    """`schema` with queue_library: each library's table and its jobs counted by what they mean, with the
    rule behind each kind (what `scan` lists as stuck, what it leaves alone)."""
    import json

    from stuckgen.queues import STUCK_KINDS, queue_census, require

    threshold = session.settings.threshold
    with session.read():
        conn = session.connection()
        require(conn, libraries)
        found = [c for c in queue_census(conn, threshold=threshold) if c.library in libraries]
    if fmt == "json":
        doc = {"mode": "queue", "threshold_seconds": threshold, "stuck_kinds": sorted(STUCK_KINDS),
               "libraries": [{**c.as_dict(), "meaning": dict(c.meaning)} for c in found]}
        out.lines([json.dumps(doc, indent=2)])
        return ExitCode.OK
    for c in found:
        out.out.print(f"{c.library}: {c.table} (queue mode: read by {c.library}'s own rules, "
                      f"threshold {threshold:g} s)", markup=False)
        for kind, meaning in c.meaning.items():
            mark = "stuck" if kind in STUCK_KINDS else ""
            out.out.print(f"  {kind:<20} {c.counts.get(kind, 0):>7,}  {mark:<5}  {meaning}", markup=False,
                          soft_wrap=True)
        out.out.print("", markup=False)
    return ExitCode.OK


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


def run_remediate_jobs(session: Session, out: Output, libraries: tuple[str, ...], *, action: str,
                       ids: Sequence[str] = (), all_stuck: bool = False, classes: Sequence[str] = (),
                       older_than: float | None = None, reason: str | None = None, yes: bool = False,
                       fmt: str = "table") -> int:
    """`retrigger` (action ``retry``) and `fail` with queue_library: graphile-worker's own admin functions,
    audited, a dry run unless ``yes``; pg-boss is refused (ConfigError, exit 2): pg-boss acts on its jobs
    only through its Node API. OK when every selected job was acted on, FINDINGS when some were skipped."""
    import json

    from stuckgen.audit import audit_log, new_run_id
    from stuckgen.errors import ConfigError
    from stuckgen.queues.remediate import PGBOSS_REFUSAL, JobRemediation, act, preview, select_jobs

    s = session.settings
    conn = session.connection()
    with session.read():
        jobs = select_jobs(conn, libraries, threshold=s.threshold, ids=ids, all_stuck=all_stuck, classes=classes,
                           older_than=older_than)
    if any(j.library == "pg-boss" for j in jobs) and all(j.library == "pg-boss" for j in jobs) or libraries == ("pg-boss",):
        raise ConfigError(f"stuckgen does not write pg-boss jobs: {PGBOSS_REFUSAL}")
    planned = preview(jobs, action)
    do = yes and any(o.outcome.startswith("would-") for o in planned)
    if not do:
        result = JobRemediation(action=action, dry_run=not yes, run_id=None, outcomes=tuple(planned))
    else:
        audit = audit_log(audit_file=s.audit_file, audit_table=s.audit_table, default_schema="stuckgen")
        session.prepare_audit(audit)
        run_id = new_run_id()
        with session.write():
            outcomes, records = act(conn, jobs, action=action, reason=reason, threshold=s.threshold, run_id=run_id,
                                    operator=session.operator())
            if records and audit.in_transaction:  # the audit commits with the change, or neither does
                audit.append(conn, records)
        if records and not audit.in_transaction:
            audit.append(conn, records)
        result = JobRemediation(action=action, dry_run=False, run_id=run_id, outcomes=tuple(outcomes))
    if fmt == "json":
        out.lines([json.dumps(result.as_dict())])
    else:
        for o in result.outcomes:
            out.out.print(f"{o.id:<38} {o.outcome:<12} {o.reason}", markup=False, soft_wrap=True)
    if result.dry_run:
        out.note(f"dry run: nothing changed; add --yes to {'retrigger' if action == 'retry' else 'fail'}")
    elif result.run_id:
        out.note(f"run {result.run_id}: audited as jobs-{action}")
    return ExitCode.FINDINGS if result.skipped else ExitCode.OK
