"""`stuckgen jobs`: stuck jobs of graphile-worker and pg-boss, and graphile-worker's own retry/fail."""


import json
import sys
from typing import Annotated, Optional

import typer

from stuckgen.cli._app import (
    AuditFileOpt, AuditTableOpt, ConnectTimeoutOpt, DatabaseUrlOpt, DebugOpt, EnvFileOpt, LockTimeoutOpt, OperatorOpt,
    Output, StatementTimeoutOpt, ThresholdOpt, app, default_format, handle_errors, settings_from,
)
from stuckgen.errors import ConfigError, ExitCode, SelectionError


@app.command()
@handle_errors
def jobs(
    ids: Annotated[Optional[list[str]], typer.Argument(metavar="[JOB_ID]...", show_default=False,
                                                       help="graphile-worker job ids to act on.")] = None,
    retry: Annotated[bool, typer.Option("--retry", help="Unlock jobs held by a gone worker "
                                        "(graphile_worker.force_unlock_workers) so a live worker runs them again.")] = False,
    fail: Annotated[bool, typer.Option("--fail", help="End jobs for good (graphile_worker.permanently_fail_jobs). "
                                       "Destructive.")] = False,
    all_stuck: Annotated[bool, typer.Option("--all-stuck", help="Act on every stuck graphile-worker job.")] = False,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="last_error written by --fail.")]
    = "failed by stuckgen: stuck",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Act (without it: a dry run, or one question on a terminal).")]
    = False,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", show_default=False, metavar="FORMAT",
                                               help="table | json. Default: table on a terminal, json in a pipe.")] = None,
    threshold: ThresholdOpt = None,
    audit_table: AuditTableOpt = None,
    audit_file: AuditFileOpt = None,
    operator: OperatorOpt = None,
    database_url: DatabaseUrlOpt = None,
    statement_timeout: StatementTimeoutOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    connect_timeout: ConnectTimeoutOpt = None,
    env_file: EnvFileOpt = None,
    debug: DebugOpt = False,
) -> int:
    """Stuck jobs of job-queue libraries (graphile-worker, pg-boss), by each library's own rules.

    graphile-worker: locked longer than its 4-hour lock (lock-expired: the worker is
    gone), or due longer than --threshold with no worker taking it (queued-not-drained).
    pg-boss: active past started_on + expire_in (expired-active), or created/retry due
    longer than --threshold. --retry and --fail act on graphile-worker jobs through its
    own admin functions (force_unlock_workers, permanently_fail_jobs), in one
    transaction, audited; without --yes they are a dry run. pg-boss jobs are retried or
    failed by pg-boss itself (its supervisor, boss.retry / boss.fail): stuckgen does not
    write its tables.

    \b
    Examples:
      stuckgen jobs
      stuckgen jobs --retry --all-stuck --yes
      stuckgen jobs --fail 42 43 --reason "provider outage" --yes

    Exit: 0 nothing stuck / every job acted on, 1 stuck jobs (listing) or jobs skipped,
    2 usage error, 3 database unreachable.
    """
    from stuckgen import db
    from stuckgen.audit import audit_log, new_run_id, operator_name
    from stuckgen.cli import _db
    from stuckgen.queues import graphile_jobs, graphile_remediate, stuck_jobs

    settings = settings_from(locals())
    out = Output()
    fmt = default_format(fmt, tty=out.is_tty)
    if fmt not in ("table", "json"):
        raise ConfigError(f"--format: {fmt!r} is not one of table, json")
    if retry and fail:
        raise ConfigError("--retry and --fail: choose one")
    acting = retry or fail
    if (ids or all_stuck) and not acting:
        raise ConfigError("job ids and --all-stuck go with --retry or --fail")
    if acting and not ids and not all_stuck:
        raise ConfigError("--retry/--fail need job ids or --all-stuck")
    if ids and not all(i.isdigit() for i in ids):
        raise SelectionError("graphile-worker job ids are whole numbers; pg-boss jobs are retried by pg-boss itself")
    conn = _db.connect(settings)
    with conn:
        with _db.read_tx(conn, settings):
            if not acting:
                found = stuck_jobs(conn, threshold=settings.threshold)
            elif conn.execute("SELECT to_regclass('graphile_worker._private_jobs') IS NULL").fetchone()[0]:
                raise ConfigError("no graphile-worker queue in this database (schema graphile_worker); "
                                  "pg-boss jobs are retried or failed by pg-boss itself (boss.retry / boss.fail)")
            else:
                found = graphile_jobs(conn, threshold=settings.threshold, ids=list(ids) if ids else None)
        if not acting:
            if fmt == "json":
                out.lines([json.dumps({"schema": "stuckgen.jobs/v1", "jobs": [j.as_dict() for j in found]})])
            else:
                for j in found:
                    out.out.print(f"{j.library:<16} {j.id:<38} {j.kind:<19} {j.task or '-':<16} "
                                  f"attempts {j.attempts}/{j.max_attempts}  {j.locked_by or ''}", markup=False)
                out.out.print(f"{len(found)} stuck job(s)" if found else "No stuck jobs.", markup=False)
            return ExitCode.FINDINGS if found else ExitCode.OK
        if ids:
            missing = sorted(set(ids) - {j.id for j in found})
            if missing:
                raise SelectionError(f"no graphile-worker job {', '.join(missing)}")
        action = "retry" if retry else "fail"
        do = yes or (sys.stdin.isatty() and out.err.is_terminal and typer.confirm(
            f"{action} {len(found)} graphile-worker job(s)?", default=False, err=True))
        audit = audit_log(audit_file=settings.audit_file, audit_table=settings.audit_table,
                          default_schema="public") if do else None
        if audit is not None:
            with db.transaction(conn, read_only=False, statement_timeout=settings.statement_timeout,
                                lock_timeout=settings.lock_timeout):
                audit.prepare(conn)
        run_id = new_run_id() if do else ""
        with db.transaction(conn, read_only=not do, statement_timeout=settings.statement_timeout,
                            lock_timeout=settings.lock_timeout):
            outcomes = graphile_remediate(conn, found, action=action, reason=reason, dry_run=not do,
                                          audit=audit if audit is not None and audit.in_transaction else None,
                                          run_id=run_id, operator=operator_name(settings.operator))
    if audit is not None and not audit.in_transaction:
        _file_audit(audit, outcomes, found, action, reason, run_id, operator_name(settings.operator))
    if fmt == "json":
        out.lines([json.dumps({"schema": "stuckgen.jobs/v1", "action": action, "dry_run": not do,
                               "run_id": run_id or None, "outcomes": [o.as_dict() for o in outcomes]})])
    else:
        for o in outcomes:
            out.out.print(f"{o.id:<12} {o.outcome:<12} {o.reason}", markup=False)
    if not do:
        out.note(f"dry run: nothing changed; add --yes to {action}")
    skipped = any(o.outcome == "skipped" for o in outcomes)
    return ExitCode.FINDINGS if skipped else ExitCode.OK


def _file_audit(audit, outcomes, found, action, reason, run_id, operator) -> None:
    from datetime import datetime, timezone

    from stuckgen.audit import AuditRecord

    kinds = {j.id: j.kind for j in found}
    now = datetime.now(timezone.utc)
    audit.append(None, [AuditRecord(run_id=run_id, action=f"jobs-{action}", row_id=o.id,
                                    table="graphile_worker._private_jobs", at=now, operator=operator,
                                    outcome=o.outcome, detail={"library": "graphile-worker", "kind": kinds.get(o.id),
                                                               "reason": reason})
                        for o in outcomes if o.outcome in ("retried", "failed")])
