"""Findings from the rows that ended failed at the trigger: one per (cause, HTTP status), with the probe that confirms it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stuckgen.doctor.report import RankedFinding
from stuckgen.findings import Finding, Severity


# What confirms each kind of trigger failure, and what fixes it (by HTTP status class).
_PROBE = "`stuckgen probe-auth --url https://<deployment>` (or `stuckgen doctor --url ...`)"
_TRIGGER_FIXES: dict[str, str] = {
    "401": "give the deployment and its trigger the same INTERNAL_API_SECRET (every Vercel target, no trailing "
           "newline; a change reaches only deployments built after it) and check Deployment Protection; confirm with "
           f"{_PROBE}: the secret path must answer 202, an HTML 401 page means Deployment Protection",
    "403": f"the process route recognised the caller and refused it: check its ownership/role rules; confirm with {_PROBE}",
    "3xx": "the trigger's origin redirects (http to https, apex to www) and the trigger does not follow redirects: "
           f"point it at the final origin; confirm with {_PROBE}, which shows the redirect",
    "404": f"the process route is not deployed at the origin the trigger calls; confirm with {_PROBE}",
    "5xx": f"the process route fails before accepting: read its logs from the onset; confirm with {_PROBE}",
    "other": f"confirm what the process route answers with {_PROBE}",
    "trigger-error": "the generate route could not reach its own origin (DNS, TLS, network, a stopped function): read "
                     f"the platform's logs from the onset; confirm the route answers with {_PROBE}",
    "trigger-timeout": f"the process route did not answer in time: check its cold start and load; confirm with {_PROBE}",
}


def _trigger_fix(cause: str, status: int | None) -> str:
    if cause != "trigger-refused" or status is None:
        return _TRIGGER_FIXES.get(cause, _TRIGGER_FIXES["other"])
    if status in (401, 403, 404):
        return _TRIGGER_FIXES[str(status)]
    if 300 <= status < 400:
        return _TRIGGER_FIXES["3xx"]
    if status >= 500:
        return _TRIGGER_FIXES["5xx"]
    return _TRIGGER_FIXES["other"]


def trigger_failure_findings(tf: Any, *, max_count: int = 2, max_rate: float = 0.10) -> list[RankedFinding]:
    """One finding per (cause, HTTP status) of the rows that ended failed at the trigger.

    From these rows alone (no URL needed) doctor names the cause; the probe that would
    confirm it is in the fix. Severity follows check's limits on the recent window: an
    error when both are crossed, a warning for trigger failures beyond one stray, else info.
    """
    from stuckgen.durations import format_duration
    from stuckgen.trigger_failures import exceeds, status_meaning

    out: list[RankedFinding] = []
    if tf is None or not tf.groups:
        return out
    window = format_duration(tf.recent_window)
    whole = "all time" if tf.since is None else f"the last {format_duration(tf.since)}"
    for g in tf.groups:
        rate = g.recent / tf.created_recent if tf.created_recent else None
        if exceeds(g.recent, tf.created_recent, max_count=max_count, max_rate=max_rate):
            sev = Severity.ERROR
        elif g.count > max_count:
            sev = Severity.WARNING
        else:
            sev = Severity.INFO
        of = f" of {tf.created_recent} created" if tf.created_recent else ""
        pct = f" ({rate:.1%})" if rate is not None else ""
        more = f"; {g.count} in {whole}" if tf.since is None or tf.since > tf.recent_window else ""
        ev = [f"{g.recent}{of} in the last {window}{pct}{more}; status {' or '.join(tf.statuses)}",
              f"onset: first created {_when(g.onset)}; latest {_when(g.latest)}"]
        if g.error:
            ev.append(f"error: {g.error}")
        if g.cause == "trigger-refused" and g.http_status is not None:
            ev.append(f"HTTP {g.http_status}: {status_meaning(g.http_status)}")
        if g.sample:
            ev.append("e.g. " + ", ".join(g.sample))
        what = f"with HTTP {g.http_status}" if g.http_status is not None else {
            "trigger-error": "with an error before any answer", "trigger-timeout": "with a timeout"}.get(g.cause, "")
        out.append(RankedFinding(
            # At most 1: a probe finding that confirms the cause (0.5 + share explained) ranks above it.
            support=0.5 * min(1.0, rate if rate is not None else 1.0) + (0.5 if sev >= Severity.ERROR else 0.0),
            finding=Finding(
                id=f"{g.cause}-{g.http_status}" if g.http_status is not None else g.cause, severity=sev,
                title=f"{g.count} generations failed at the trigger {what} (status {g.cause}); the app marked "
                      "them failed, so no scan of stuck rows sees them",
                evidence=tuple(ev), fix=_trigger_fix(g.cause, g.http_status))))
    return out


def _when(t: datetime | None) -> str:
    from datetime import timezone

    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if t is not None else "unknown"
