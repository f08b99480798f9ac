"""Doctor output: terminal text, a Markdown incident report, and JSON (``stuckgen.doctor/v1``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from stuckgen.doctor import DoctorReport
from stuckgen.durations import format_duration
from stuckgen.findings import Severity

DOCTOR_SCHEMA = "stuckgen.doctor/v1"


def _when(t: Any) -> str:
    from datetime import timezone

    # The database hands back times in its session's zone, which need not be UTC.
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if t is not None else "-"


def doctor_document(r: DoctorReport) -> dict[str, Any]:
    from stuckgen.render.probe import finding_dict

    s = r.summary
    return {
        "schema": DOCTOR_SCHEMA,
        "generated_at": r.generated_at.isoformat().replace("+00:00", "Z"),
        "config": [{"name": c.name, "value": c.value, "source": c.source} for c in r.config],
        "database": r.database,
        "summary": s.as_dict() if s is not None else None,
        "rules": [x.as_dict() for x in r.rules],
        "step_evidence": r.step_evidence,
        "queues": [q.as_dict() for q in r.queues],
        "probe": None if r.probe_matrix is None else {
            "targets": [t.name for t in r.probe_matrix.targets],
            "cells": [{"target": c.target, "mode": c.mode, "answers": c.summary()} for c in r.probe_matrix.cells()],
        },
        "vercel": r.vercel,
        "provider": r.provider,
        "dead_workers": r.dead_workers,
        "findings": [{**finding_dict(x.finding), "support": round(x.support, 3)} for x in r.ranked],
        "worst": r.worst.label if r.worst is not None else None,
        "remediation": r.remediation,
        "next_steps": r.next_steps,
    }


def doctor_json_lines(r: DoctorReport) -> Iterator[str]:
    yield from json.dumps(doctor_document(r), indent=2).splitlines()


def trigger_failure_lines(s: Any) -> Iterator[str]:
    """The failed-at-the-trigger evidence beside the stuck counts (doctor, scan, watch)."""
    tf = getattr(s, "trigger_failures", None)
    if tf is None or not tf.statuses:
        return
    if not tf.groups:
        yield f"no {'/'.join(tf.statuses)} row failed at the trigger in the window"
        return
    window = format_duration(tf.recent_window)
    rate = f" ({tf.recent_rate:.1%} of {tf.created_recent} created)" if tf.recent_rate is not None else ""
    yield (f"{tf.total} ended {'/'.join(tf.statuses)} at the trigger in the window, {tf.recent} in the last "
           f"{window}{rate}; onset {_when(tf.onset)}")
    yield "  by cause: " + ", ".join(f"{g.label} x{g.count}" for g in tf.groups)


def doctor_text_lines(r: DoctorReport) -> Iterator[str]:
    """Plain lines for a terminal or a log."""
    yield "Configuration"
    for c in r.config:
        yield f"  {c.name:<16} {c.value}  [{c.source}]"
    yield ""
    yield "Database"
    if r.database.get("reachable"):
        table = r.database.get("table")
        where = f"table {table}" if table else f"table not read: {r.database.get('error')}"
        yield f"  reachable, PostgreSQL {r.database.get('server_version')}, {where}"
        if r.database.get("pooler"):
            yield f"  {r.database['pooler']}"
    else:
        yield f"  not consulted: {r.database.get('error')}"
    s = r.summary
    if s is not None:
        if s.stuck:
            rate = f" ({s.stuck_rate:.1%} of {s.created_in_window} created)" if s.stuck_rate is not None else ""
            yield f"  {s.stuck} stuck{rate}; onset {_when(s.onset)}; oldest quiet {format_duration(s.oldest.quiet_seconds) if s.oldest else '-'}"
            yield "  by class: " + ", ".join(f"{c} {n}" for c, n in s.by_class.most_common())
        elif not s.stuck_before_window:
            yield "  no stuck generations"
        for line in trigger_failure_lines(s):
            yield f"  {line}"
        from stuckgen.render.scan import before_window_lines
        yield from before_window_lines(s, since=r.since_seconds, indent="  ")
    for line in r.step_evidence:
        yield f"  {line}"
    if r.rules:
        custom = [x for x in r.rules if x.source != "default"]
        defaults = len(r.rules) - len(custom)
        yield ""
        yield (f"Rules in force: {len(custom)} from configuration, then {defaults} default"
               if custom else f"Rules in force: the {defaults} default rules")
        for i, x in enumerate(custom, 1):
            yield f"  {i}. {x.cls}: {x.conditions()}  [{x.source}]"
        if custom and not defaults:
            yield "  (replace_default_rules = true: the defaults are off; rows no rule matches are 'unknown')"
    if r.probe_matrix is not None:
        yield ""
        yield "Process route (probe-auth)"
        for c in r.probe_matrix.cells():
            yield f"  {c.target:<28} {c.mode:<20} {c.summary()}"
    if r.vercel:
        yield ""
        yield "Vercel"
        if r.vercel.get("consulted"):
            yield f"  {r.vercel['variables']} variables, {r.vercel['deployments']} deployments read"
            if "secret_values_compared" in r.vercel:
                yield (f"  secret values: {r.vercel['secret_values_compared']} compared, "
                       f"{r.vercel['secret_values_unreadable']} not readable with this token")
            for c in r.vercel.get("runtime_logs") or []:
                yield f"  runtime logs of {c['deployment']}: {_calls_line(c)}"
            if r.vercel.get("runtime_logs_error"):
                yield f"  runtime logs not read: {r.vercel['runtime_logs_error']}"
        else:
            yield f"  not consulted: {r.vercel.get('error')}"
    if r.provider:
        yield ""
        yield "Provider (reconcile)"
        yield from (f"  {line}" for line in provider_lines(r.provider))
    yield ""
    yield "Findings, most likely cause first"
    if not r.ranked:
        yield "  none"
    for i, x in enumerate(r.ranked, 1):
        f = x.finding
        yield f"  {i}. [{f.severity.label}] {f.id}: {f.title}"
        for e in f.evidence:
            yield f"       - {e}"
        yield f"       fix: {f.fix}"
    if r.remediation:
        yield ""
        yield "Remediation"
        for line in r.remediation:
            yield f"  - {line}"


def _md_summary(r: DoctorReport) -> Iterator[str]:
    """The summary: how many are stuck, by class, since when, and the most likely cause."""
    s = r.summary
    top = r.ranked[0].finding if r.ranked else None
    yield "## Summary"
    yield ""
    if s is not None and s.stuck:
        rate = f" ({s.stuck_rate:.1%} of {s.created_in_window} created in the window)" if s.stuck_rate is not None else ""
        yield f"- **{s.stuck} generations stuck**{rate}."
        yield "- By class: " + ", ".join(f"`{c}` {n}" for c, n in s.by_class.most_common()) + "."
    elif s is not None and not s.stuck_before_window:
        yield "- No generation is stuck right now."
    for line in trigger_failure_lines(s) if s is not None else ():
        yield f"- {line.strip()}"
    if s is not None and s.stuck_before_window:
        ids = ", ".join(f"`{x.id}`" for x in s.before_window.rows[:5]) if s.before_window else ""
        yield (f"- **{s.stuck_before_window} more stuck since before the window**"
               + (f" (e.g. {ids})" if ids else "") + "; list them with `stuckgen scan --since all`.")
    elif r.database.get("reachable"):
        yield f"- The database answered but the job table was not read: {r.database.get('error')}."
    else:
        yield f"- The database was not consulted: {r.database.get('error')}."
    if top is not None and top.severity >= Severity.WARNING:
        yield f"- **Most likely cause:** {top.title} (`{top.id}`)."


def _md_timeline(r: DoctorReport) -> Iterator[str]:
    """The timeline: onset, the oldest stuck row, stuck rows per hour, Vercel's changes, this report."""
    s = r.summary
    yield "## Timeline"
    yield ""
    if s is not None and s.onset is not None:
        yield f"- {_when(s.onset)}: first stuck generation created (onset)."
        if s.oldest is not None:
            yield f"- Oldest stuck row `{s.oldest.id}` has been quiet for {format_duration(s.oldest.quiet_seconds)}."
        if s.per_hour:
            yield ""
            yield "| hour (UTC) | stuck |"
            yield "|---|---:|"
            for h, n in sorted(s.per_hour.items()):
                yield f"| {h.strftime('%Y-%m-%d %H:00')} | {n} |"
    for x in r.ranked:
        if x.finding.id.startswith("vercel-onset"):
            yield f"- {x.finding.title}"
    yield f"- {_when(r.generated_at)}: this report."


def _md_evidence(r: DoctorReport) -> Iterator[str]:
    """The evidence: step logs, the probe matrix, the provider, the configuration."""
    yield "## Evidence"
    yield ""
    for line in r.step_evidence:
        yield f"- {line}"
    if r.probe_matrix is not None:
        yield ""
        yield "| target | mode | answers |"
        yield "|---|---|---|"
        for c in r.probe_matrix.cells():
            yield f"| {c.target} | {c.mode} | {c.summary()} |"
    for line in provider_lines(r.provider):
        yield f"- Provider: {line}"
    yield ""
    yield "Configuration (secrets shown as length and fingerprint only):"
    yield ""
    for c in r.config:
        yield f"- `{c.name}`: {c.value} _({c.source})_"


def _md_causes(r: DoctorReport) -> Iterator[str]:
    """Every finding in rank order, with its evidence and fix."""
    yield "## Causes, ranked"
    yield ""
    for i, x in enumerate(r.ranked, 1):
        f = x.finding
        yield f"{i}. **{f.title}** — `{f.id}`, {f.severity.label}"
        for e in f.evidence:
            yield f"   - {e}"
        yield f"   - Fix: {f.fix}"


def _md_plan(r: DoctorReport, actions: list[str] | None, proposed: list[str] | None) -> Iterator[str]:
    """What was done, what is proposed, and the next steps."""
    yield "## Remediation"
    yield ""
    for a in actions or []:
        yield f"- Taken: {a}"
    for line in (proposed or []) + (r.remediation or ([] if proposed else ["none needed"])):
        yield f"- Proposed: {line}"
    yield ""
    yield "## Next steps"
    yield ""
    for line in r.next_steps:
        yield f"- [ ] {line}"


def doctor_markdown_lines(r: DoctorReport, *, actions: list[str] | None = None,
                          proposed: list[str] | None = None) -> Iterator[str]:
    """An incident report a team pastes into its tracker."""
    yield "# Stuck generations: incident report"
    yield ""
    yield f"_Generated by stuckgen at {_when(r.generated_at)}._"
    yield ""
    for section in (_md_summary(r), _md_timeline(r), _md_evidence(r), _md_causes(r)):
        yield from section
        yield ""
    yield from _md_plan(r, actions, proposed)


def provider_lines(p: dict[str, Any]) -> list[str]:
    """The provider's side in a few lines (doctor's text and Markdown)."""
    if not p:
        return []
    if not p.get("consulted"):
        return [f"not consulted: {p.get('error')}"]
    lines = [f"asked about {p.get('asked')} stuck provider row(s): "
             + (", ".join(f"{k} {n}" for k, n in (p.get("counts") or {}).items()) or "no answer")]
    if p.get("lost_callbacks_since"):
        lines.append(f"callbacks lost since {p['lost_callbacks_since']}")
    probe = p.get("webhook_probe")
    if probe:
        lines.append(f"webhook probe {probe['url']}: {probe['detail']}")
    return lines


def _calls_line(c: dict[str, Any]) -> str:
    """``/api/generate/process: HTTP 401 x31, 202 x1; 1 timed out after 300 s``."""
    parts = [f"{c['route']}: " + (", ".join(f"HTTP {s} x{n}" for s, n in c["by_status"].items()) or "no calls")]
    if c.get("timeouts"):
        parts.append(f"{c['timeouts']} timed out after {c['timeout_seconds']:g} s")
    return "; ".join(parts)
