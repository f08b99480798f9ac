"""Findings from the scan: the stuck classes (what each most likely means) and rows stuck since before the window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stuckgen.doctor.report import RankedFinding
from stuckgen.findings import Finding, Severity


# What each class most likely means, and what to do about it.
CLASS_CAUSES: dict[str, tuple[str, str]] = {
    "trigger-failed": (
        "the internal trigger to the process route was refused",
        "fix the trigger's authentication (see the probe and Vercel findings), then "
        "`stuckgen retrigger --all-stuck --class trigger-failed --yes`",
    ),
    "never-started": (
        "the trigger never reached the process route (dropped fire-and-forget call, an auth wall, or a redirect)",
        "await the trigger (or hand it to waitUntil / the queue) in /api/generate; then "
        "`stuckgen retrigger --all-stuck --class never-started --yes`",
    ),
    "timed-out": (
        "workers started longer ago than the function's maximum duration (--max-duration) plus a minute: the "
        "platform stopped them, so they are provably dead",
        "no worker can still be running them, so a new trigger cannot duplicate a live run: "
        "`stuckgen retrigger --all-stuck --class timed-out --yes`; find why workers outlive the limit (raise "
        "maxDuration or split the work)",
    ),
    "stalled": (
        "workers started and then went silent: killed mid-run or past the function's maximum duration",
        "raise maxDuration for /api/generate/process or split the work; "
        "`stuckgen fail --all-stuck --class stalled --older-than 30m --yes` ends them honestly",
    ),
    "awaiting-webhook": (
        "no provider callback settled these rows within their grace: a lost callback (wrong callback URL, the "
        "webhook route behind protection) or a slow provider",
        "`stuckgen reconcile` asks the provider how each ended; settle them with the app's sync route "
        "(POST /api/generations/{id}/sync, which asks the provider and updates the row), not a retrigger (the "
        "process route skips them); check that the webhook URL the app registers is reachable without auth",
    ),
    "queued-not-drained": (
        "queued jobs are not being claimed: the queue worker/cron is not running or keeps failing",
        "check the worker's schedule (GENERATION_QUEUE_ENABLED, the cron route) and its logs",
    ),
    "outputs-not-finalized": (
        "outputs were written but the final status update failed",
        "look for errors after upload in the worker; `stuckgen fail` or finalize these rows",
    ),
    "unknown": (
        "rows whose evidence matches no known pattern",
        "inspect them one by one with `stuckgen show ID`",
    ),
}



def class_severity(cls: str) -> Severity:
    """How bad rows stuck in a class are: nothing at all runs for trigger failures and never-started rows."""
    return Severity.ERROR if cls in ("trigger-failed", "never-started") else Severity.WARNING


def scan_findings(summary: Any, rows: Sequence[Any], *,
                  causes: dict[str, tuple[str, str]] | None = None) -> tuple[list[RankedFinding], list[str]]:
    """Findings from the scan and the step logs of stuck rows, with evidence lines."""
    out: list[RankedFinding] = []
    evidence: list[str] = []
    total = summary.stuck
    older = summary.stuck_before_window or 0
    if older:
        bw = summary.before_window
        ev = [f"{older} stuck rows were created before the window"
              + (f" ({', '.join(f'{c} {n}' for c, n in bw.by_class.items())})" if bw and bw.by_class else "")]
        if bw and bw.rows:
            ev.append("e.g. " + ", ".join(r.id for r in bw.rows[:3]))
        out.append(RankedFinding(support=older / (total + older), finding=Finding(
            id="stuck-before-window", severity=Severity.WARNING,
            title=f"{older} generations stuck since before the window: still in flight, part of the incident",
            evidence=tuple(ev),
            fix="list them with `stuckgen scan --since all`; settle them with `stuckgen fail` or `stuckgen retrigger` "
                "(both take any age unless --since is given)")))
    if not total:
        return out, evidence
    rate = f" ({summary.stuck_rate:.1%} of {summary.created_in_window} created)" if summary.stuck_rate is not None else ""
    onset = summary.onset.strftime("%Y-%m-%d %H:%M UTC") if summary.onset else "unknown"
    for status, n in sorted(summary.trigger_statuses.items()):
        evidence.append(f"{n} of {total} stuck rows logged a failed trigger with HTTP {status}")
    for cls, n in summary.by_class.most_common():
        table = {**CLASS_CAUSES, **(causes or {})}
        cause, fix = table.get(cls, table["unknown"])
        ev = [f"{n} of {total} stuck rows{rate} are {cls}", f"onset: first stuck row created {onset}"]
        if cls == "trigger-failed" and summary.trigger_statuses:
            ev.append("trigger answers: " + ", ".join(f"HTTP {s} x{c}" for s, c in sorted(summary.trigger_statuses.items())))
        sample = [r.id for r in rows if r.cls == cls][:3]
        if sample:
            ev.append("e.g. " + ", ".join(sample))
        sev = class_severity(cls)
        out.append(RankedFinding(support=n / total, finding=Finding(
            id=f"stuck-{cls}", severity=sev, title=f"{n} generations stuck as {cls}: {cause}",
            evidence=tuple(ev), fix=fix)))
    return out, evidence
