"""`stuckgen jobs` (body: stuckgen.commands.jobs)."""


from typing import Annotated, Optional

import typer

from stuckgen.cli.options import (
    AUDIT, CONNECTION, Output, ThresholdOpt, YesOpt, command, formats, group, pick_format,
)
from stuckgen.session import Session


@command(CONNECTION, group(threshold=ThresholdOpt), AUDIT)
def jobs(session: Session, out: Output,
         ids: Annotated[Optional[list[str]], typer.Argument(metavar="[JOB_ID]...", show_default=False,
                                                            help="graphile-worker job ids to act on.")] = None,
         retry: Annotated[bool, typer.Option("--retry", help="Unlock jobs held by a gone worker (graphile_worker."
                                             "force_unlock_workers) so a live worker runs them again.")] = False,
         fail: Annotated[bool, typer.Option("--fail", help="End jobs for good (graphile_worker.permanently_fail_jobs)."
                                            " Destructive.")] = False,
         all_stuck: Annotated[bool, typer.Option("--all-stuck", help="Act on every stuck graphile-worker job.")] = False,
         reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="last_error written by --fail.")]
         = "failed by stuckgen: stuck",
         yes: YesOpt = False,
         fmt: Annotated[Optional[str], formats("table", "json")] = None) -> int:
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
    from stuckgen.commands.jobs import run_jobs

    return run_jobs(session, out, fmt=pick_format(fmt, out, ("table", "json")), ids=tuple(ids or ()), retry=retry,
                    fail=fail, all_stuck=all_stuck, reason=reason, yes=yes)
