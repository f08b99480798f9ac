"""`stuckgen doctor` (the incident) and `stuckgen check` (the scheduled CI job); bodies: stuckgen.commands.doctor."""


from typing import Annotated, Optional

import typer

from stuckgen.cli._app import Output, RepeatOpt, setting
from stuckgen.cli.options import (
    AUDIT, DATABASE, DEPLOYMENT, NOTIFY, QUEUE_MODE, STUCK, command, formats, group, pick_format,
)
from stuckgen.commands import doctor as core
from stuckgen.session import Session


# Settings `check` takes as flags (each also from the environment, .env or stuckgen.toml).
CHECK_SETTINGS = group(
    max_trigger_failures=Annotated[Optional[int], setting("max_trigger_failures", metavar="N", min=0, help=(
        "Fail when more rows than this failed at the trigger in --trigger-window (and over the rate). Default: 2."))],
    max_trigger_failure_rate=Annotated[Optional[str], setting("max_trigger_failure_rate", metavar="RATE", help=(
        "... and they are more than this share of the rows created in the window. Default: 10%."))],
    trigger_window=Annotated[Optional[str], setting("trigger_window", metavar="DURATION", help=(
        "Recent window the trigger failures are judged on. Default: 1h."))],
    metrics_file=Annotated[Optional[str], setting("metrics_file", metavar="PATH", help=(
        "Write OpenMetrics here atomically (0644) after every run, whatever its exit code (node_exporter's "
        "textfile collector)."))],
    heartbeat_url=Annotated[Optional[str], setting("heartbeat_url", metavar="URL", help=(
        "Cron monitor ping URL: /start when the run starts, then the URL itself (exit 0) or /<exit code> "
        "(healthchecks.io convention)."))],
    retrigger_classes=Annotated[Optional[list[str]], setting("retrigger_classes", "--retrigger-class", metavar="CLASS",
                                                             help=(
        "Policy: also retrigger rows of this class (repeatable). By default only never-started, trigger-failed, "
        "queued-not-drained and timed-out, which a new trigger cannot harm; the rest are listed as left out."))],
)


@command(DATABASE, STUCK, QUEUE_MODE, DEPLOYMENT)
def doctor(
    session: Session,
    out: Output,
    repeat: RepeatOpt = None,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="Do not call the deployment.")] = False,
    fmt: Annotated[Optional[str], formats(*core.FORMATS, default="table on a terminal, json in a pipe; "
                                                                  "from -o NAME.md/.html")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", metavar="PATH", show_default=False,
                                                  help="Write the report to this file (created owner-only) instead of stdout.")] = None,
) -> int:
    """Gather every piece of evidence and rank the causes of stuck generations.

    Configuration (what is set, from where; secrets as length and fingerprint), the
    database and its schema mapping, the scan summary with onset and stuck rate, the
    step-log evidence of stuck rows, probe-auth against every --url, and, with
    VERCEL_TOKEN and VERCEL_PROJECT_ID, the project's variables and deployments.
    Reads only.

    \b
    Examples:
      stuckgen doctor --url https://app.example.com --url https://app-git-feat.vercel.app
      stuckgen doctor --format markdown -o incident.md
      stuckgen doctor --format html --output incident.html   (one page: timeline chart, findings, rows)

    Exit: 0 nothing wrong, 1 a warning or worse, 2 configuration error, 3 nothing could be reached.
    """
    fmt = pick_format(fmt, out, core.FORMATS, default=core.format_for(output))
    return core.run_doctor(session, out, probe=not no_probe, repeat=repeat, fmt=fmt, output=output)


@command(DATABASE, STUCK, QUEUE_MODE, DEPLOYMENT, AUDIT, NOTIFY, CHECK_SETTINGS)
def check(
    session: Session,
    out: Output,
    max_stuck: Annotated[int, typer.Option("--max-stuck", min=0, metavar="N",
                                           help="Fail when more rows than this are stuck.")] = 0,
    max_stuck_rate: Annotated[Optional[str], typer.Option("--max-stuck-rate", metavar="RATE", show_default=False,
                                                          help="Fail when the stuck rate exceeds this (0.05 or 5%).")] = None,
    probe: Annotated[bool, typer.Option("--probe", help="Also run probe-auth against --url targets.")] = False,
    repeat: RepeatOpt = None,
    fmt: Annotated[Optional[str], formats(*core.CHECK_FORMATS, default="table")] = None,
    junit: Annotated[Optional[str], typer.Option("--junit", metavar="PATH", show_default=False,
                                                 help="Write a JUnit XML report here (for CI systems).")] = None,
    retrigger_after: Annotated[Optional[str], typer.Option(
        "--retrigger-after", metavar="DURATION", show_default=False,
        help="Policy: retrigger rows quiet this long (and not yet past --fail-after), e.g. 5m.")] = None,
    fail_after: Annotated[Optional[str], typer.Option(
        "--fail-after", metavar="DURATION", show_default=False,
        help="Policy: fail rows quiet this long, with a reason naming the policy, e.g. 30m.")] = None,
    max_attempts: Annotated[int, typer.Option(
        "--max-attempts", min=1, metavar="N",
        help="Policy: triggers per row across runs (from the audit log); then left for --fail-after.")] = 3,
    remediate: Annotated[bool, typer.Option(
        "--remediate", help="Act on the policy. Without it the policy only reports what it would do.")] = False,
    wait: Annotated[Optional[str], typer.Option(
        "--wait", metavar="DURATION", show_default=False,
        help="After retriggering, wait up to this long for the rows to leave processing, then verify.")] = None,
) -> int:
    """Health check for a scheduled CI job: thresholds, annotations, summaries, metrics, and a rescuer.

    Exit 1 when more than --max-stuck rows are stuck, the stuck rate exceeds
    --max-stuck-rate, more than --max-trigger-failures rows that are also over
    --max-trigger-failure-rate of those created in the last --trigger-window ended
    failed at the trigger (defaults 2, 10%, 1h: an incident pages, a stray refusal
    does not), or (with --probe) a warning finding exists. Under GitHub Actions
    it writes ::error:: / ::warning:: annotations and appends a Markdown summary to
    $GITHUB_STEP_SUMMARY; --junit writes JUnit XML; --format openmetrics prints metrics;
    --metrics-file writes them atomically after every run, whatever the exit code.

    An optional remediation policy rescues stuck rows like a job queue's rescuer:
    rows quiet past --retrigger-after (not yet past --fail-after) are triggered again
    at --url, at most --max-attempts times across runs (counted in the audit log;
    exhausted rows wait for the fail rule); rows quiet past --fail-after are failed
    with a reason naming the policy. Same safety as `retrigger` and `fail`:
    compare-and-set, batches, audit log, stop at the first 401/403, no secret over
    plain HTTP except to loopback. Without --remediate nothing changes: the policy
    reports what it would do. With --remediate it fires production work and is
    destructive (undo a fail run with `stuckgen undo RUN_ID`). Thresholds judge the
    rows found before remediation.

    \b
    Examples:
      stuckgen check --max-stuck 0 --junit stuckgen.xml
      stuckgen check --max-stuck 5 --max-stuck-rate 2% --probe --url https://app.example.com
      STUCKGEN_SLACK_WEBHOOK_URL=https://hooks.slack.com/... stuckgen check --heartbeat-url https://hc-ping.com/UUID
      stuckgen check --metrics-file /var/lib/node_exporter/textfile/stuckgen.prom
      stuckgen check --retrigger-after 5m --fail-after 30m --max-attempts 3 --url https://app.example.com --remediate

    Notifications (--slack-webhook, --pagerduty-routing-key, --notify-webhook) go
    out when an incident starts, gets worse and is resolved, not on every run; the
    state is kept in the audit log. --heartbeat-url pings URL/start, then URL (exit
    0) or URL/<exit code>, so a scheduler that stopped is noticed.

    Exit: 0 healthy, 1 a threshold crossed, a warning finding, rows the policy
    took left stuck or unremediated (always, without --remediate), or a
    notification not delivered, 2 configuration error, 3 database or deployment
    unreachable, 130 interrupted.
    """
    return core.run_check(session, out, core.CheckOptions(
        max_stuck=max_stuck, max_stuck_rate=max_stuck_rate, probe=probe, repeat=repeat, junit=junit,
        retrigger_after=retrigger_after, fail_after=fail_after, max_attempts=max_attempts, remediate=remediate,
        wait=wait, fmt=pick_format(fmt, out, core.CHECK_FORMATS, default="table")))
