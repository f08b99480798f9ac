"""The bodies of `doctor` (the incident report) and `check` (the scheduled health check and its rescuer).

Both gather through ``stuckgen.doctor.gather``; `check` then judges thresholds
(``stuckgen.checks``), may run the policy (``stuckgen.policy``), tells people
(``commands.alerting``) and, however the run ends, writes the metrics file and
sends the heartbeat's end ping.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stuckgen.errors import ConfigError, ExitCode, SchemaError, StuckgenError, UnreachableError

if TYPE_CHECKING:
    from stuckgen.checks import CheckResult
    from stuckgen.console import Output
    from stuckgen.doctor import DoctorReport
    from stuckgen.policy import Policy, PolicyResult
    from stuckgen.session import Session

FORMATS = ("table", "markdown", "json", "html")
CHECK_FORMATS = ("table", "json", "openmetrics")


def steps(out: Output) -> Callable[[str], None] | None:
    """Doctor's progress on a terminal ("doctor: reading the database ..."), nothing in a pipe."""
    return (lambda m: out.note(f"doctor: {m} ...")) if out.is_tty else None


def format_for(output: str | None) -> str | None:
    """The report format a file name asks for (incident.md: markdown, incident.html: html)."""
    return {".md": "markdown", ".html": "html", ".htm": "html"}.get(Path(output).suffix.lower()) if output else None


def run_doctor(session: Session, out: Output, *, probe: bool = True, repeat: int | None = None, fmt: str = "table",
               output: str | None = None) -> int:
    """`stuckgen doctor`: every piece of evidence, the causes ranked; 2 when the configuration names no table."""
    from stuckgen.doctor import exit_code, gather

    report = gather(session, probe=probe, repeat=repeat, timeline=fmt == "html", on_step=steps(out))
    write_report(out, fmt, report, output)
    code = exit_code(report, database_configured=bool(session.settings.database_url))
    if code != ExitCode.UNREACHABLE and report.database.get("reachable") and report.database.get("table") is None:
        return ExitCode.USAGE  # the report names the missing table or mapping; the configuration is wrong
    return code


def write_report(out: Output, fmt: str, report: DoctorReport, output: str | None) -> None:
    from stuckgen.render.doctor import doctor_json_lines, doctor_markdown_lines, doctor_text_lines
    from stuckgen.render.html import doctor_html_lines
    from stuckgen.render.layout import wrap_lines

    lines = {"table": doctor_text_lines, "markdown": doctor_markdown_lines, "json": doctor_json_lines,
             "html": doctor_html_lines}[fmt](report)
    if output:
        write_private(Path(output), lines)
        out.note(f"report written to {output}")
    else:  # a person's report wraps between words, never inside a command to copy
        out.lines(wrap_lines(lines, out.width) if fmt == "table" else lines)


def write_private(path: Path, lines: Iterable[str], *, append: bool = False) -> None:
    """Write (or append) lines to a file only the owner can read: reports may hold row ids and errors."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC), 0o600)
        if not append:
            os.chmod(path, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "a" if append else "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")


@dataclass(frozen=True, kw_only=True)
class CheckOptions:
    """`check`'s own flags: thresholds, the probe, the remediation policy and where results go."""

    max_stuck: int = 0
    max_stuck_rate: str | None = None
    probe: bool = False
    repeat: int | None = None
    retrigger_after: str | None = None
    fail_after: str | None = None
    max_attempts: int = 3
    remediate: bool = False
    wait: str | None = None
    fmt: str = "table"
    junit: str | None = None


@dataclass
class CheckRun:
    """What a check run has learned so far, for what must happen however it ends (metrics, the end ping)."""

    started: float = field(default_factory=time.time)
    result: CheckResult | None = None
    code: int = ExitCode.INTERNAL  # unless the run says otherwise
    error: str | None = None
    channels: list[Any] = field(default_factory=list)
    client: Any = None


def run_check(session: Session, out: Output, options: CheckOptions) -> int:
    """`stuckgen check`: the exit code of the thresholds; metrics and the heartbeat whatever happens."""
    from stuckgen.commands import alerting

    s, run = session.settings, CheckRun()
    # Channels and the ping URL are checked before anything runs: a bad one is a usage error (exit 2).
    run.channels = alerting.channels(s, allow_insecure=session.allow_insecure)
    if run.channels or s.heartbeat_url:
        run.client = alerting.http_client(s)
    beat = alerting.heartbeat(s, run.client, allow_insecure=session.allow_insecure) if run.client else None
    _ping(out, beat.start() if beat else None)
    try:
        run.code = _check(session, out, run, options)
    except StuckgenError as exc:
        run.code, run.error = int(exc.exit_code), exc.message
        raise
    except KeyboardInterrupt:
        run.code, run.error = ExitCode.INTERRUPTED, "interrupted"
        raise
    finally:
        try:
            if s.metrics_file:
                _write_metrics(out, s.metrics_file, run)
        finally:
            _ping(out, beat.finish(run.code, _ping_log(run, session)) if beat else None)
            if run.client is not None:
                run.client.close()
    return run.code


def _check(session: Session, out: Output, run: CheckRun, o: CheckOptions) -> int:
    from stuckgen.checks import evaluate, exit_code
    from stuckgen.durations import parse_duration
    from stuckgen.settings import parse_rate

    s = session.settings
    rate_limit = parse_rate(o.max_stuck_rate, option="--max-stuck-rate") if o.max_stuck_rate is not None else None
    if not s.database_url:
        raise ConfigError("no database configured: set DATABASE_URL or pass --database-url")
    policy, endpoint = _policy(session, o)
    wait = parse_duration(o.wait, option="--wait") if o.wait else 0.0
    report = _diagnose(session, out, o)
    rescued = _rescue(session, out, policy, endpoint=endpoint, act=o.remediate, wait=wait) if policy else None
    result = evaluate(report, max_stuck=o.max_stuck, max_stuck_rate=rate_limit, policy=rescued,
                      max_trigger_failures=s.max_trigger_failures,
                      max_trigger_failure_rate=s.max_trigger_failure_rate)
    if run.channels:
        result = _notify(session, run, result)
    run.result = result
    code = exit_code(result)
    _publish(out, o, run, result, code)
    if rescued is not None and rescued.retrigger is not None and rescued.retrigger.stopped:
        out.note(f"stuckgen: {rescued.retrigger.stopped}")
    return code


def _policy(session: Session, o: CheckOptions) -> tuple[Policy | None, str | None]:
    """The policy from the flags (None: no policy), and the trigger endpoint when it will be used."""
    from stuckgen import policy as rescuer
    from stuckgen.durations import parse_duration

    policy = rescuer.from_flags(
        retrigger_after=parse_duration(o.retrigger_after, option="--retrigger-after") if o.retrigger_after else None,
        fail_after=parse_duration(o.fail_after, option="--fail-after") if o.fail_after else None,
        max_attempts=o.max_attempts, act=o.remediate, retrigger_classes=tuple(session.settings.retrigger_classes))
    if policy is None or not (o.remediate and policy.retrigger_after):
        return policy, None
    # Checked before anything is read: a bad URL or plain HTTP to a remote host is a usage error.
    return policy, session.endpoint()


def _diagnose(session: Session, out: Output, o: CheckOptions) -> DoctorReport:
    """Doctor's report; a check that could not count rows is never a pass."""
    from stuckgen.doctor import gather

    if o.probe and not session.settings.base_url:
        # A probe that cannot run must not leave a check that says "healthy".
        raise ConfigError("--probe needs a deployment to probe", hint="pass --url URL or set STUCKGEN_BASE_URL")
    report = gather(session, probe=o.probe, repeat=o.repeat, on_step=steps(out))
    if not report.database.get("reachable"):
        raise UnreachableError(report.database.get("error") or "the database could not be reached")
    if report.database.get("table") is None:
        raise SchemaError(report.database.get("error") or "the job table could not be read")
    return report


def _rescue(session: Session, out: Output, policy: Policy, *, endpoint: str | None, act: bool,
            wait: float) -> PolicyResult:
    from stuckgen import policy as rescuer

    if endpoint is not None and not session.settings.internal_secret:
        out.warn("INTERNAL_API_SECRET is not set: triggers go without the secret header and will likely get 401")
    with session.interruptible():
        return rescuer.run(session, policy, act=act, endpoint=endpoint, wait=wait)


def _publish(out: Output, o: CheckOptions, run: CheckRun, result: CheckResult, code: int) -> None:
    """The result on stdout; GitHub annotations and step summary under Actions; --junit."""
    from stuckgen.render.check import (
        check_json_lines, check_text_lines, github_annotations, junit_xml_lines, openmetrics_lines, policy_summary,
    )
    from stuckgen.render.doctor import doctor_markdown_lines
    from stuckgen.render.layout import wrap_lines

    if o.fmt == "openmetrics":
        out.lines(openmetrics_lines(result, checked_at=run.started, duration=time.time() - run.started,
                                    exit_code=code))
    else:
        out.lines(wrap_lines(check_text_lines(result), out.width) if o.fmt == "table" else check_json_lines(result))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(result):
            out.note(line)
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        taken, proposed = policy_summary(result)
        write_private(Path(summary_path), doctor_markdown_lines(result.report, actions=taken, proposed=proposed),
                      append=True)
    if o.junit:
        write_private(Path(o.junit), junit_xml_lines(result))


def _notify(session: Session, run: CheckRun, result: CheckResult) -> CheckResult:
    """Tell the channels what changed; a failed delivery becomes a failing `notify` outcome (never a pass)."""
    from stuckgen.checks import CheckOutcome
    from stuckgen.commands import alerting
    from stuckgen.findings import Severity
    from stuckgen.notify import check_incidents
    from stuckgen.render.check import check_document

    incidents, observed = check_incidents(result)
    sent = alerting.send(session.settings, session.connection(), run.client, run.channels,
                         mapping=result.report.mapping, incidents=incidents, observed=observed,
                         report=check_document(result))
    extra = [CheckOutcome(name="notify", passed=False, severity=Severity.WARNING, message="; ".join(sent.failed))] \
        if sent.failed else []
    if sent.deliveries and not sent.failed:
        extra.append(CheckOutcome(name="notify", passed=True, message=", ".join(
            f"{d.event.channel} {d.event.kind} {d.event.cause}" for d in sent.deliveries)))
    return replace(result, outcomes=result.outcomes + tuple(extra)) if extra else result


def _ping(out: Output, error: str | None) -> None:
    if error:
        out.note(f"stuckgen: {error}")


def _ping_log(run: CheckRun, session: Session) -> str:
    """The end ping's body: the check's text lines (never a secret), or why it stopped."""
    from stuckgen.render.check import check_text_lines
    from stuckgen.secrets import scrub

    lines = list(check_text_lines(run.result)) if run.result is not None else []
    if run.error:
        lines.append(f"error: {run.error}")
    lines.append(f"exit {run.code}")
    return scrub("\n".join(lines), session.settings.secrets())


def _write_metrics(out: Output, path: str, run: CheckRun) -> None:
    """The metrics file after every run: a failed write is reported and never turns a red run green."""
    from stuckgen.metrics import check_families, exposition_lines, write_atomic
    from stuckgen.scan import CLASSES

    fams = check_families(run.result, checked_at=run.started, duration=time.time() - run.started, exit_code=run.code,
                          classes=CLASSES)
    try:
        write_atomic(path, exposition_lines(fams))
    except ConfigError as exc:
        out.note(f"stuckgen: error: {exc.message}")
        if run.code == ExitCode.OK:
            raise
