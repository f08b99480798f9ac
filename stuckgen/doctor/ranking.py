"""How findings are ranked (security first, then severity, then support) and the plan drawn from them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stuckgen.doctor.report import DoctorReport, RankedFinding
from stuckgen.findings import Finding, Severity


def rank_causes(items: Sequence[RankedFinding]) -> list[RankedFinding]:
    """Security first, then by severity, then by how much evidence supports each."""
    security = {"open-route", "wrong-secret-accepted"}
    return sorted(items, key=lambda r: (r.finding.id not in security, r.finding.severity < Severity.WARNING,
                                        -r.support, -int(r.finding.severity), r.finding.id))


def probe_support(f: Finding, summary: Any) -> float:
    """A probe finding that explains the stuck classes seen ranks above one that does not."""
    # A cause outranks the symptom it explains: the stuck-class findings carry n/total (<= 1).
    tf = getattr(summary, "trigger_failures", None) if summary is not None else None
    failed_at_trigger = tf.total if tf is not None else 0
    if summary is None or not (summary.stuck or failed_at_trigger):
        return 0.5
    by = summary.by_class
    explained = (by.get("trigger-failed", 0) + by.get("never-started", 0) + failed_at_trigger) / (
        summary.stuck + failed_at_trigger)
    if f.id.startswith("vercel-secret") or f.id in (
            "secret-rejected", "secret-intermittent", "secret-whitespace", "deployment-protection", "redirect",
            "route-missing", "method-not-allowed", "server-error", "timeout"):
        return 0.5 + explained
    return 0.3


def plan(report: DoctorReport) -> tuple[list[str], list[str]]:
    remediation: list[str] = []
    steps: list[str] = []
    s = report.summary
    if s is not None and s.stuck:
        by = s.by_class
        retrig = [c for c in ("trigger-failed", "never-started", "queued-not-drained") if by.get(c)]
        if retrig:
            remediation.append("after fixing the trigger: " + "; ".join(
                f"`stuckgen retrigger --all-stuck --class {c}` (dry run), then add `--yes`" for c in retrig))
        if by.get("awaiting-webhook"):
            remediation.append("rows waiting on the provider: `stuckgen reconcile` (read-only) says how each prediction "
                               "ended; then settle them through the app or `stuckgen fail` the rest")
            remediation.append("provider rows: `stuckgen reconcile` shows how each ended at the provider; settle them "
                               "with the app's sync route POST /api/generations/{id}/sync (a retrigger only "
                               "rewrites their heartbeat)")
        if by.get("timed-out"):
            remediation.append("timed-out rows are provably dead (their workers started longer ago than the function "
                               "may run), so a new trigger cannot duplicate a live run: `stuckgen retrigger "
                               "--all-stuck --class timed-out` (dry run), then `--yes`")
        if by.get("outputs-not-finalized") or by.get("stalled"):
            remediation.append("do not retrigger outputs-not-finalized or stalled rows without thought: the process "
                               "route runs them again from the start (duplicate outputs, a second provider bill); "
                               "`stuckgen retrigger --all-stuck` leaves them out unless named with --class")
        if by.get("stalled") or by.get("outputs-not-finalized") or by.get("unknown"):
            remediation.append("end rows that will not recover: `stuckgen fail --all-stuck --older-than 30m` (dry run), then `--yes`; `stuckgen undo RUN_ID` reverts")
    for r in report.ranked[:3]:
        if r.finding.severity >= Severity.WARNING:
            steps.append(f"{r.finding.id}: {r.finding.fix}")
    steps.append("schedule `stuckgen check --max-stuck 0` every 10 minutes in CI to catch the next occurrence early")
    return remediation, steps
