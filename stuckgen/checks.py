"""Turn a doctor report into pass/fail checks for a scheduled CI job."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

from stuckgen.doctor import DoctorReport
from stuckgen.durations import format_duration
from stuckgen.findings import Severity
from stuckgen.policy import PolicyResult
from stuckgen.remediate import RemediationResult
from stuckgen.trigger_failures import TriggerFailures, status_meaning


@dataclass(frozen=True, kw_only=True)
class CheckOutcome:
    """One named check: passed or not, with the line that explains it."""

    name: str
    passed: bool
    message: str
    severity: Severity = Severity.ERROR


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    report: DoctorReport
    outcomes: tuple[CheckOutcome, ...] = field(default_factory=tuple)
    policy: PolicyResult | None = None

    @property
    def failed(self) -> bool:
        return any(not o.passed for o in self.outcomes)


def trigger_outcome(tf: TriggerFailures, *, max_count: int, max_rate: float) -> CheckOutcome:
    """Failed at the trigger in the recent window: fails when over the count AND over the rate
    (``trigger_failures.exceeds``)."""
    window = format_duration(tf.recent_window)
    limit = f"limit: more than {max_count} and over {max_rate:.0%}"
    n, rate = tf.recent, tf.recent_rate
    if n == 0:
        return CheckOutcome(name="trigger-failures", passed=True,
                            message=f"no generation failed at the trigger in the last {window} ({limit})")
    of = f" of {tf.created_recent}" if tf.created_recent else ""
    pct = f" ({rate:.1%})" if rate is not None else ""
    groups = [g for g in tf.groups if g.recent]
    what = ", ".join(f"{g.label} x{g.recent}" for g in groups)
    onset = min((g.onset for g in groups if g.onset is not None), default=None)
    since = f"; first {onset.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}" if onset else ""
    top = groups[0]
    meaning = f"; {top.label}: {status_meaning(top.http_status)}" if top.http_status is not None else ""
    passed = not tf.over(max_count=max_count, max_rate=max_rate)
    return CheckOutcome(name="trigger-failures", passed=passed,
                        message=f"{n}{of} generations created in the last {window} failed at the trigger{pct}: {what}"
                                f"{since}{meaning} ({limit})")


def evaluate(report: DoctorReport, *, max_stuck: int = 0, max_stuck_rate: float | None = None,
             policy: PolicyResult | None = None, max_trigger_failures: int = 2,
             max_trigger_failure_rate: float = 0.10) -> CheckResult:
    s = report.summary
    outcomes: list[CheckOutcome] = []
    in_window = s.stuck if s is not None else 0
    # A row stuck for days is part of the incident: the window governs the rate, not the count.
    older = (s.stuck_before_window or 0) if s is not None else 0
    stuck = in_window + older
    by_class = _all_classes(s) if s is not None else {}
    by = ", ".join(f"{c} {n}" for c, n in sorted(by_class.items(), key=lambda x: -x[1])) if stuck else "none"
    split = ""
    if older:
        named = [r.id for r in s.before_window.rows[:3]] if s is not None and s.before_window else []
        eg = f", e.g. {', '.join(named)}" if named else ""
        split = f" ({in_window} created in the window, {older} before it{eg})"
    if not report.database.get("queue_library"):  # queue mode: the queue:<library> checks below count the jobs
        outcomes.append(CheckOutcome(
            name="stuck-count", passed=stuck <= max_stuck,
            message=f"{stuck} stuck generations{split} (limit {max_stuck}); by class: {by}"))
    for q in getattr(report, "queues", ()) or ():
        # Library queues are judged by their own rules (graphile-worker's 4-hour lock, pg-boss's expire_in).
        counts = ", ".join(f"{n} {k}" for k, n in sorted(q.counts.items())) or "no jobs"
        outcomes.append(CheckOutcome(name=f"queue:{q.library}", passed=q.stuck <= max_stuck,
                                     message=f"{q.stuck} stuck jobs in {q.table} (limit {max_stuck}): {counts}"))
    if max_stuck_rate is not None:
        rate = s.stuck_rate if s is not None else None
        outcomes.append(CheckOutcome(
            name="stuck-rate", passed=rate is None or rate <= max_stuck_rate,
            message=f"stuck rate {'n/a' if rate is None else f'{rate:.2%}'} (limit {max_stuck_rate:.2%})"))
    # A configuration that can find nothing is not a pass (doctor's finding, judged here).
    for r in report.ranked:
        if r.finding.id == "inflight-status-unseen":
            outcomes.append(CheckOutcome(name="config:inflight-statuses", passed=False, severity=Severity.WARNING,
                                         message=f"{r.finding.title} — {r.finding.evidence[-1]}; fix: {r.finding.fix}"))
    if s is not None and s.trigger_failures is not None and s.trigger_failures.statuses:
        outcomes.append(trigger_outcome(s.trigger_failures, max_count=max_trigger_failures,
                                        max_rate=max_trigger_failure_rate))
    for f in report.probe_findings:
        outcomes.append(CheckOutcome(
            name=f"probe:{f.id}", passed=f.severity < Severity.WARNING, severity=f.severity,
            message=f"{f.title} — fix: {f.fix}"))
    if report.probe_matrix is not None and not any(f.severity >= Severity.WARNING for f in report.probe_findings):
        m = report.probe_matrix
        outcomes.append(CheckOutcome(
            name="probe", passed=True,
            message=f"the process route treats every credential as it should ({m.repeat} probes per mode on each of "
                    f"{len(m.targets)} target(s), all alike)"))
    if policy is not None:
        outcomes += policy_outcomes(policy)
    return CheckResult(report=report, outcomes=tuple(outcomes), policy=policy)


def _all_classes(s: Any) -> dict[str, int]:
    """Stuck rows by class, in the window and before it together."""
    out = dict(s.by_class)
    if s.before_window is not None:
        for c, n in s.before_window.by_class.items():
            out[c] = out.get(c, 0) + n
    return out


def _counts(r: RemediationResult) -> str:
    return ", ".join(f"{n} {k}" for k, n in r.counts.items())


def _rule_outcome(rule: str, r: RemediationResult, *, after: float, dry_verb: str, done_verb: str) -> CheckOutcome:
    """One rule of the policy: passed when it had nothing to do or remediated every row it took."""
    name = f"policy:{rule}"
    past = f"stuck past {format_duration(after)}"
    n = len(r.outcomes)
    if n == 0:
        return CheckOutcome(name=name, passed=True, message=f"no rows {past} to {dry_verb}")
    if r.dry_run:
        would = sum(1 for o in r.outcomes if o.outcome.startswith("would-"))
        rest = [f"{k} {c}" for k, c in r.counts.items() if not k.startswith("would-")]
        why = {"exhausted": "attempts used up", "left-out": "not safe to trigger again"}
        extra = (f" ({', '.join(rest)}: " + "; ".join(v for k, v in why.items() if k in r.counts)
                 + "; left to be failed)") if rest else ""
        return CheckOutcome(name=name, passed=False, severity=Severity.WARNING,
                            message=f"would {dry_verb} {would} of {n} row(s) {past}{extra}; nothing was changed "
                                    "(pass --remediate to act)")
    parts = [f"run {r.run_id}: {done_verb} {r.remediated} of {n} row(s) {past} ({_counts(r)})"]
    verified = [o.verify for o in r.outcomes if o.verify]
    if verified:
        by: dict[str, int] = {}
        for v in verified:
            by[v] = by.get(v, 0) + 1
        parts.append("verification: " + ", ".join(f"{c} {v}" for v, c in sorted(by.items(), key=lambda x: -x[1])))
    if r.stopped:
        parts.append(f"stopped: {r.stopped}")
    if r.interrupted:
        parts.append("interrupted")
    if rule == "fail" and r.remediated:
        parts.append(f"undo with: stuckgen undo {r.run_id}")
    return CheckOutcome(name=name, passed=r.remediated == n and not r.interrupted, message="; ".join(parts))


def policy_outcomes(p: PolicyResult) -> list[CheckOutcome]:
    """What the remediation policy did or, without --remediate, would do: one outcome per rule."""
    out: list[CheckOutcome] = []
    if p.retrigger is not None and p.policy.retrigger_after is not None:
        out.append(_rule_outcome("retrigger", p.retrigger, after=p.policy.retrigger_after,
                                 dry_verb="retrigger", done_verb="retriggered"))
    if p.fail is not None and p.policy.fail_after is not None:
        out.append(_rule_outcome("fail", p.fail, after=p.policy.fail_after, dry_verb="fail", done_verb="failed"))
    return out


def metrics(result: CheckResult) -> dict[str, Any]:
    s = result.report.summary
    return {
        "stuck": (s.stuck + (s.stuck_before_window or 0)) if s is not None else 0,
        "stuck_in_window": s.stuck if s is not None else 0,
        "stuck_before_window": (s.stuck_before_window or 0) if s is not None else 0,
        "by_class": _all_classes(s) if s is not None else {},
        "oldest_quiet_seconds": s.oldest.quiet_seconds if s is not None and s.oldest is not None else 0.0,
        "stuck_rate": s.stuck_rate if s is not None else None,
        "failed_at_trigger": (s.trigger_failures.by_label()
                              if s is not None and s.trigger_failures is not None else {}),
        "failed_at_trigger_recent": (s.trigger_failures.recent
                                     if s is not None and s.trigger_failures is not None else 0),
        "policy": {rule: r.counts for rule, r in (("retrigger", result.policy.retrigger), ("fail", result.policy.fail))
                   if r is not None} if result.policy is not None else {},
    }


def exit_code(result: CheckResult) -> int:
    """The check's exit status: interrupted 130, unreachable 3, failed 1, else 0 (see the CLI's help)."""
    from stuckgen.errors import ExitCode

    p = result.policy
    if p is not None and p.interrupted:
        return int(ExitCode.INTERRUPTED)
    if p is not None and p.unreachable:
        return int(ExitCode.UNREACHABLE)
    matrix = result.report.probe_matrix
    if matrix is not None and not matrix.any_answered:
        return int(ExitCode.UNREACHABLE)  # --probe and no target answered: as probe-auth
    return int(ExitCode.FINDINGS if result.failed else ExitCode.OK)
