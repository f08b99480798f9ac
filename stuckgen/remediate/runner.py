"""How a remediation command runs, without a terminal: select, check, ask, prepare the audit, act.

``fail`` and ``retrigger`` (and ``check``'s policy, which builds the same options)
share this body; the CLI hands in how to ask (``confirm``) and how to show
progress, and renders the result. Nothing is written or sent unless ``confirm``
says yes: otherwise the result is the dry run (``plan``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stuckgen.remediate.fail import FailOptions, check_fail_writes, fail_rows
from stuckgen.remediate.results import RemediationResult
from stuckgen.remediate.retrigger import (
    DEFAULT_BODY_TEMPLATE, DEFAULT_IDEMPOTENCY_HEADER, RetriggerOptions, render_body, retrigger_rows,
)
from stuckgen.remediate.select import Selection, plan, select_rows, table_name
from stuckgen.remediate.undo import UndoOptions, undo

if TYPE_CHECKING:
    from stuckgen.audit import AuditLog, RunSummary
    from stuckgen.scan import ScanOptions
    from stuckgen.session import Session

# ``progress(label, total)``: a context manager yielding a callback advanced by rows done (or None).
Progress = Callable[[str, int], AbstractContextManager["Callable[[int], None] | None"]]
# ``confirm(question, preview)``: the dry run (``preview``) is what a person is shown before answering.
Confirm = Callable[[str, RemediationResult], bool]


@dataclass(frozen=True, kw_only=True)
class Pick:
    """Which rows: ids, or every stuck row (``all_stuck``), narrowed by class and quiet time."""

    ids: Sequence[str] = ()
    all_stuck: bool = False
    classes: Sequence[str] = ()
    older_than: float | None = None


def select(session: Session, pick: Pick) -> tuple[Selection, ScanOptions]:
    """The rows ``pick`` names, selected in a read transaction, and the scan options that re-check them."""
    opts = session.remediation_scan_options(classes=tuple(pick.classes), older_than=pick.older_than)
    mapping = session.mapping()
    with session.read():
        selection = select_rows(session.connection(), mapping, opts, ids=tuple(pick.ids), all_stuck=pick.all_stuck,
                                rules=session.rules())
    return selection, opts


def fail_options(session: Session, *, scan: ScanOptions, reason: str | None = None,
                 batch_size: int = 500) -> FailOptions:
    s = session.settings
    return FailOptions(scan=scan, failed_status=s.failed_status, reason=reason, batch_size=batch_size,
                       statement_timeout=s.statement_timeout, lock_timeout=s.lock_timeout)


def retrigger_options(session: Session, *, endpoint: str, scan: ScanOptions, allow_insecure: bool, max_attempts: int,
                      wait: float = 0.0, concurrency: int = 4, tries: int = 3, body_template: str | None = None,
                      idempotency_header: str | None = None) -> RetriggerOptions:
    """RetriggerOptions from the settings (secret, headers, timeouts) and the command's flags."""
    s = session.settings
    header = DEFAULT_IDEMPOTENCY_HEADER if idempotency_header is None else idempotency_header
    return RetriggerOptions(
        url=endpoint, scan=scan, secret=s.internal_secret, secret_header=s.secret_header,
        bypass_secret=s.bypass_secret, body_template=body_template or DEFAULT_BODY_TEMPLATE,
        idempotency_header=None if header.strip().lower() in ("", "none") else header,
        concurrency=concurrency, max_attempts=max_attempts, tries=tries, wait=wait, allow_insecure=allow_insecure,
        statement_timeout=s.statement_timeout, lock_timeout=s.lock_timeout)


def _run(session: Session, action: str, pick: Pick, *, yes: bool, question: Callable[[int, str], str],
         confirm: Confirm, check: Callable[[Selection, ScanOptions], None],
         act: Callable[[Selection, ScanOptions, AuditLog, str, str], RemediationResult],
         narrow: Callable[[Selection], Selection] | None = None) -> RemediationResult:
    from stuckgen.audit import new_run_id

    mapping = session.mapping()
    selection, opts = select(session, pick)
    if narrow is not None:
        selection = narrow(selection)
    audit = session.audit()
    op = session.operator()
    tname = table_name(mapping)
    if not selection.targets:
        # Nothing selected is a result, not an error (exit 0), and not a dry run when --yes was given.
        return plan(action, selection, table=tname, audit=audit.where, operator=op, dry_run=not yes)
    check(selection, opts)
    preview = plan(action, selection, table=tname, audit=audit.where, operator=op)
    if not confirm(question(len(selection.targets), tname), preview):
        return preview
    session.prepare_audit(audit)
    return act(selection, opts, audit, new_run_id(), op)


def fail(session: Session, pick: Pick, *, reason: str | None, batch_size: int, yes: bool, confirm: Confirm,
         progress: Progress) -> RemediationResult:
    """Fail the picked rows by compare-and-set (a dry run unless ``confirm`` says yes). Destructive."""
    conn, mapping = session.connection(), session.mapping()

    def check(selection: Selection, opts: ScanOptions) -> None:
        # Before anything is promised: would the database take the values? (enum labels, CHECK, type)
        check_fail_writes(conn, mapping, selection.targets, options=fail_options(session, scan=opts, reason=reason,
                                                                                 batch_size=batch_size))

    def act(selection: Selection, opts: ScanOptions, audit: AuditLog, run_id: str, op: str) -> RemediationResult:
        options = fail_options(session, scan=opts, reason=reason, batch_size=batch_size)
        with progress("failing", len(selection.targets)) as advance:
            return fail_rows(conn, mapping, selection.targets, options=options, audit=audit, run_id=run_id,
                             operator=op, progress=advance, rejected=selection.rejected)

    return _run(session, "fail", pick, yes=yes, confirm=confirm, check=check, act=act,
                question=lambda n, t: f"Set {n} row(s) in {t} to {session.settings.failed_status!r}?")


@dataclass(frozen=True, kw_only=True)
class Trigger:
    """How ``retrigger`` sends: the command's flags beyond the deployment settings."""

    max_attempts: int = 3
    wait: float = 0.0
    concurrency: int = 4
    tries: int = 3
    body_template: str = DEFAULT_BODY_TEMPLATE
    idempotency_header: str = DEFAULT_IDEMPOTENCY_HEADER


def retrigger(session: Session, pick: Pick, trigger: Trigger, *, yes: bool, confirm: Confirm,
              progress: Progress) -> RemediationResult:
    """Call the process route again for the picked rows (a dry run unless ``confirm`` says yes). Fires work."""
    endpoint = session.endpoint()
    render_body(trigger.body_template, "x")  # a bad template is a usage error before anything is read

    def check(selection: Selection, opts: ScanOptions) -> None:
        if not session.settings.internal_secret:
            session.out.warn("INTERNAL_API_SECRET is not set: triggers go without the secret header and will "
                             "likely get 401")

    def act(selection: Selection, opts: ScanOptions, audit: AuditLog, run_id: str, op: str) -> RemediationResult:
        options = retrigger_options(session, endpoint=endpoint, scan=opts, allow_insecure=session.allow_insecure,
                                    max_attempts=trigger.max_attempts, wait=trigger.wait,
                                    concurrency=trigger.concurrency, tries=trigger.tries,
                                    body_template=trigger.body_template,
                                    idempotency_header=trigger.idempotency_header)
        client = session.http_client(concurrency=trigger.concurrency)
        with progress("triggering", len(selection.targets)) as advance:
            return retrigger_rows(client, session.connection(), session.mapping(), selection.targets,
                                  options=options, audit=audit, run_id=run_id, operator=op,
                                  progress=advance, rejected=selection.rejected)

    def narrow(selection: Selection) -> Selection:
        # --all-stuck takes only classes a new trigger cannot harm, unless named with --class; rows
        # taken by id or by an unsafe --class come with a warning of what the app will do.
        from stuckgen.remediate import safety

        if pick.all_stuck:
            selection, left = safety.split(selection, explicit=tuple(pick.classes))
            for line in safety.left_out_summary(left):
                session.out.note(f"stuckgen: {line}")
        for line in safety.warnings_for(selection.targets):
            session.out.note(f"warning: {line}")
        max_duration = session.settings.max_duration
        if max_duration and any(t.cls == "timed-out" for t in selection.targets):
            from stuckgen.deadline import dead_workers

            with session.read():
                dead = dead_workers(session.connection(), session.mapping(),
                                    [t.id for t in selection.targets if t.cls == "timed-out"],
                                    max_duration=float(max_duration), naive_tz=session.settings.naive_timezone)
            for line in safety.why_safe_timed_out(dead, selection.targets):
                session.out.note(f"stuckgen: {line}")
        return selection

    return _run(session, "retrigger", pick, yes=yes, confirm=confirm, check=check, act=act, narrow=narrow,
                question=lambda n, t: f"Trigger {n} row(s) of {t} at {endpoint}?")


def undo_run(session: Session, run_id: str, *, batch_size: int, act: bool,
             confirm: Confirm | None = None) -> RemediationResult:
    """Undo a fail run (a dry run unless ``act``; ``confirm`` is asked, with the dry run, after it counted the rows)."""
    from stuckgen.audit import new_run_id

    conn, mapping, audit = session.connection(), session.mapping(), session.audit()
    s = session.settings
    new_id, op = new_run_id(), session.operator()

    def options(dry_run: bool) -> UndoOptions:
        return UndoOptions(batch_size=batch_size, statement_timeout=s.statement_timeout,
                           lock_timeout=s.lock_timeout, dry_run=dry_run)

    if not act and confirm is not None:
        preview = undo(conn, mapping, run_id, audit=audit, new_run_id=new_id, operator=op, options=options(True))
        n = sum(1 for o in preview.outcomes if o.outcome == "would-restore")
        act = n > 0 and confirm(f"Restore {n} row(s) of {table_name(mapping)} changed by run {run_id}?", preview)
        if not act:
            return preview
    if act:
        session.prepare_audit(audit)
    return undo(conn, mapping, run_id, audit=audit, new_run_id=new_id, operator=op, options=options(not act))


def history(session: Session, *, limit: int) -> tuple[list[RunSummary], str]:
    """The most recent runs in the audit log, and where that log is."""
    from stuckgen.audit import FileAudit, audit_log
    from stuckgen.db import scalar

    s = session.settings
    if s.audit_file:
        log = FileAudit(s.audit_file)
        return log.runs(None, limit=limit), log.where
    conn = session.connection()
    with session.read():
        schema = s.db_schema or scalar(conn, "SELECT current_schema()")
        table = audit_log(audit_file=None, audit_table=s.audit_table, default_schema=schema)
        return table.runs(conn, limit=limit), table.where
