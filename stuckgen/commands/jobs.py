"""`jobs`: stuck jobs of graphile-worker and pg-boss, and graphile-worker's own retry/fail, audited."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from stuckgen.console import Output
from stuckgen.errors import ConfigError, ExitCode, SelectionError

if TYPE_CHECKING:
    from stuckgen.audit import AuditLog
    from stuckgen.queues import JobOutcome, Job
    from stuckgen.session import Session


def run_jobs(session: Session, out: Output, *, fmt: str, ids: Sequence[str] = (), retry: bool = False,
             fail: bool = False, all_stuck: bool = False, reason: str = "failed by stuckgen: stuck",
             yes: bool = False) -> int:
    """List the stuck jobs, or retry/fail graphile-worker jobs (a dry run unless ``yes`` or a terminal's yes)."""
    action = _action(ids, retry=retry, fail=fail, all_stuck=all_stuck)
    if action is None:
        return list_jobs(session, out, fmt=fmt)
    found = _selected(session, ids)
    do = out.confirmer(yes)(f"{action} {len(found)} graphile-worker job(s)?")
    outcomes, run_id = act(session, found, action=action, reason=reason, dry_run=not do)
    if fmt == "json":
        out.lines([json.dumps({"schema": "stuckgen.jobs/v1", "action": action, "dry_run": not do,
                               "run_id": run_id or None, "outcomes": [o.as_dict() for o in outcomes]})])
    else:
        for o in outcomes:
            out.out.print(f"{o.id:<12} {o.outcome:<12} {o.reason}", markup=False)
    if not do:
        out.note(f"dry run: nothing changed; add --yes to {action}")
    return ExitCode.FINDINGS if any(o.outcome == "skipped" for o in outcomes) else ExitCode.OK


def _action(ids: Sequence[str], *, retry: bool, fail: bool, all_stuck: bool) -> str | None:
    """retry, fail or None (listing); ConfigError/SelectionError for a combination that means nothing."""
    if retry and fail:
        raise ConfigError("--retry and --fail: choose one")
    if (ids or all_stuck) and not (retry or fail):
        raise ConfigError("job ids and --all-stuck go with --retry or --fail")
    if (retry or fail) and not ids and not all_stuck:
        raise ConfigError("--retry/--fail need job ids or --all-stuck")
    if ids and not all(i.isdigit() for i in ids):
        raise SelectionError("graphile-worker job ids are whole numbers; pg-boss jobs are retried by pg-boss itself")
    return "retry" if retry else "fail" if fail else None


def list_jobs(session: Session, out: Output, *, fmt: str) -> int:
    from stuckgen.queues import stuck_jobs

    with session.read():
        found = stuck_jobs(session.connection(), threshold=session.settings.threshold)
    if fmt == "json":
        out.lines([json.dumps({"schema": "stuckgen.jobs/v1", "jobs": [j.as_dict() for j in found]})])
    else:
        for j in found:
            out.out.print(f"{j.library:<16} {j.id:<38} {j.kind:<19} {j.task or '-':<16} "
                          f"attempts {j.attempts}/{j.max_attempts}  {j.locked_by or ''}", markup=False)
        out.out.print(f"{len(found)} stuck job(s)" if found else "No stuck jobs.", markup=False)
    return ExitCode.FINDINGS if found else ExitCode.OK


def _selected(session: Session, ids: Sequence[str]) -> list[Job]:
    """The stuck graphile-worker jobs to act on: ``ids`` (each must be one), else all of them."""
    from stuckgen.queues import graphile_jobs

    conn = session.connection()
    with session.read():
        if conn.execute("SELECT to_regclass('graphile_worker._private_jobs') IS NULL").fetchone()[0]:  # type: ignore[index]
            raise ConfigError("no graphile-worker queue in this database (schema graphile_worker); "
                              "pg-boss jobs are retried or failed by pg-boss itself (boss.retry / boss.fail)")
        found = graphile_jobs(conn, threshold=session.settings.threshold, ids=list(ids) or None)
    missing = sorted(set(ids) - {j.id for j in found})
    if missing:
        raise SelectionError(f"no graphile-worker job {', '.join(missing)}")
    return found


def act(session: Session, found: list[Job], *, action: str, reason: str,
        dry_run: bool) -> tuple[list[JobOutcome], str]:
    """Retry or fail ``found`` in one transaction through graphile-worker's own functions, audited."""
    from stuckgen import db
    from stuckgen.audit import audit_log, new_run_id
    from stuckgen.queues import graphile_remediate

    s = session.settings
    audit = None if dry_run else audit_log(audit_file=s.audit_file, audit_table=s.audit_table, default_schema="public")
    if audit is not None:
        session.prepare_audit(audit)
    run_id = "" if dry_run else new_run_id()
    with db.transaction(session.connection(), read_only=dry_run, statement_timeout=s.statement_timeout,
                        lock_timeout=s.lock_timeout):
        outcomes = graphile_remediate(session.connection(), found, action=action, reason=reason, dry_run=dry_run,
                                      audit=audit if audit is not None and audit.in_transaction else None,
                                      run_id=run_id, operator=session.operator())
    if audit is not None and not audit.in_transaction:
        _file_audit(session, audit, outcomes, found, action, reason, run_id)
    return outcomes, run_id


def _file_audit(session: Session, audit: AuditLog, outcomes: list[JobOutcome], found: list[Job], action: str,
                reason: str, run_id: str) -> None:
    """The audit file's records of what was done (a file is written after the transaction, a table inside it)."""
    from datetime import datetime, timezone

    from stuckgen.audit import AuditRecord

    kinds = {j.id: j.kind for j in found}
    now = datetime.now(timezone.utc)
    operator = session.operator()
    audit.append(session.connection(), [AuditRecord(run_id=run_id, action=f"jobs-{action}", row_id=o.id,
                                    table="graphile_worker._private_jobs", at=now, operator=operator,
                                    outcome=o.outcome, detail={"library": "graphile-worker", "kind": kinds.get(o.id),
                                                               "reason": reason})
                        for o in outcomes if o.outcome in ("retried", "failed")])
