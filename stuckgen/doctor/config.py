"""The configuration as doctor shows it (secrets described, never echoed) and the findings it alone supports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stuckgen.doctor.report import ConfigFact, RankedFinding
from stuckgen.errors import StuckgenError
from stuckgen.findings import Finding, Severity
from stuckgen.secrets import describe, hygiene_problems

if TYPE_CHECKING:
    from stuckgen.settings import Settings


def config_facts(settings: Settings) -> list[ConfigFact]:
    """What is set and where from; secrets as length and fingerprint only."""
    from stuckgen.db import check_dsn, is_transaction_pooler
    from stuckgen.secrets import redact_dsn

    facts: list[ConfigFact] = []
    for name in ("database_url", "base_url", "route", "internal_secret", "bypass_secret", "cookie",
                 "cookie_file", "threshold", "since", "table", "queue_library", "vercel_token", "vercel_project",
                 "vercel_team"):
        if name == "queue_library" and not settings.values.get(name):
            continue  # shown only in queue mode
        v = settings.values.get(name)
        src = settings.sources.get(name, "default")
        if name == "database_url":
            shown = redact_dsn(v) if v else "not set"
            if v:
                try:
                    if is_transaction_pooler(check_dsn(v)):
                        shown += "  (transaction pooler: prepared statements disabled)"
                except StuckgenError:
                    shown = f"malformed {shown}"  # described (length, fingerprint), never echoed
        elif name in ("internal_secret", "bypass_secret", "cookie", "vercel_token"):
            shown = describe(v)
        elif name in ("threshold", "since") and isinstance(v, float):
            from stuckgen.durations import format_duration

            shown = format_duration(v)
        elif isinstance(v, tuple):
            shown = ", ".join(v) or "not set"
        elif v is None:
            shown = "all" if name == "since" else "not set"
        else:
            shown = str(v)
        facts.append(ConfigFact(name=name, value=shown, source=src))
    return facts


def config_findings(settings: Settings) -> list[RankedFinding]:
    out: list[RankedFinding] = []
    secret = settings.values.get("internal_secret")
    if secret:
        problems = hygiene_problems(secret)
        if problems:
            out.append(RankedFinding(support=0.9, finding=Finding(
                id="secret-whitespace", severity=Severity.ERROR,
                title=f"the local INTERNAL_API_SECRET {', '.join(problems)}",
                evidence=(f"local secret: {describe(secret)} ({settings.sources.get('internal_secret')})",
                          f"stripped: {describe(secret.strip().strip(chr(34)).strip(chr(39)))}"),
                fix="set the variable again without the newline/quotes, here and in every Vercel target, then redeploy")))
    else:
        out.append(RankedFinding(support=0.1, finding=Finding(
            id="secret-not-configured", severity=Severity.INFO,
            title="no INTERNAL_API_SECRET here, so the secret path cannot be probed",
            evidence=("internal_secret: not set",),
            fix="export INTERNAL_API_SECRET (the value the deployment should have) before running doctor")))
    if not settings.values.get("base_url"):
        out.append(RankedFinding(support=0.1, finding=Finding(
            id="no-target", severity=Severity.INFO,
            title="no deployment URL configured, so the process route was not probed",
            evidence=("base_url: not set",),
            fix="pass --url https://<deployment> (repeatable) or set STUCKGEN_BASE_URL")))
    return out



_TRIGGER_CLASSES = ("trigger-failed", "never-started", "queued-not-drained")


def trigger_notices_apply(settings: Any, mapping: Any, summary: Any) -> bool:
    """Notices about the internal secret and the process route apply to apps that trigger a process route."""
    if settings.values.get("base_url") or settings.values.get("internal_secret"):
        return True
    from stuckgen.queues import libraries_in_force

    if libraries_in_force(settings):  # a job-queue library's workers take jobs; no process route is triggered
        return False
    if mapping is None:
        return True
    if summary is not None and any(summary.by_class.get(c) for c in _TRIGGER_CLASSES):
        return True
    # The incident app's shape: a step log of trigger steps. An app without one has no such route to probe.
    return bool(mapping.has("step_log"))
