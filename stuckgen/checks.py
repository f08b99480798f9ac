"""Turn a doctor report into pass/fail checks for a scheduled CI job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stuckgen.doctor import DoctorReport
from stuckgen.findings import Severity


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

    @property
    def failed(self) -> bool:
        return any(not o.passed for o in self.outcomes)


def evaluate(report: DoctorReport, *, max_stuck: int = 0, max_stuck_rate: float | None = None) -> CheckResult:
    s = report.summary
    outcomes: list[CheckOutcome] = []
    stuck = s.stuck if s is not None else 0
    by = ", ".join(f"{c} {n}" for c, n in s.by_class.most_common()) if s is not None and stuck else "none"
    outcomes.append(CheckOutcome(
        name="stuck-count", passed=stuck <= max_stuck,
        message=f"{stuck} stuck generations (limit {max_stuck}); by class: {by}"))
    if max_stuck_rate is not None:
        rate = s.stuck_rate if s is not None else None
        outcomes.append(CheckOutcome(
            name="stuck-rate", passed=rate is None or rate <= max_stuck_rate,
            message=f"stuck rate {'n/a' if rate is None else f'{rate:.2%}'} (limit {max_stuck_rate:.2%})"))
    for f in report.probe_findings:
        outcomes.append(CheckOutcome(
            name=f"probe:{f.id}", passed=f.severity < Severity.WARNING, severity=f.severity,
            message=f"{f.title} — fix: {f.fix}"))
    if report.probe_matrix is not None and not report.probe_findings:
        outcomes.append(CheckOutcome(name="probe", passed=True, message="the process route treats every credential as it should"))
    return CheckResult(report=report, outcomes=tuple(outcomes))


def metrics(result: CheckResult) -> dict[str, Any]:
    s = result.report.summary
    return {
        "stuck": s.stuck if s is not None else 0,
        "by_class": dict(s.by_class) if s is not None else {},
        "oldest_quiet_seconds": s.oldest.quiet_seconds if s is not None and s.oldest is not None else 0.0,
        "stuck_rate": s.stuck_rate if s is not None else None,
    }
