"""Gather every piece of evidence and rank the causes: configuration, scan, step log, probe, Vercel.

``diagnose`` takes what the CLI opened (a connection, HTTP clients) and never
prints; each source that cannot be consulted becomes a finding of its own
instead of stopping the diagnosis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stuckgen.db import scalar
from stuckgen.errors import ExitCode, SchemaError, StuckgenError
from stuckgen.findings import Finding, Severity
from stuckgen.secrets import describe, hygiene_problems

if TYPE_CHECKING:
    from stuckgen.db import Connection
    from stuckgen.session import Session
    from stuckgen.settings import Settings


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


@dataclass(frozen=True, kw_only=True)
class ConfigFact:
    name: str
    value: str
    source: str


@dataclass(frozen=True, kw_only=True)
class RankedFinding:
    """A finding and how much of the evidence it explains (0..1), used to rank causes."""

    finding: Finding
    support: float


@dataclass(kw_only=True)
class DoctorReport:
    """Everything doctor learned; renderers turn it into text, Markdown or JSON."""

    generated_at: datetime
    config: list[ConfigFact] = field(default_factory=list)
    database: dict[str, Any] = field(default_factory=dict)
    mapping: Any = None
    summary: Any = None  # scan.Summary
    since_seconds: float | None = None
    queues: list[Any] = field(default_factory=list)  # queues.QueueCensus of graphile-worker / pg-boss
    provider_results: str | None = None  # how the app gets provider results back (setting or evidence)  # the scan's window (stuck rows before it are still reported)
    stuck_sample: list[Any] = field(default_factory=list)  # first StuckRows
    waiting_rows: list[Any] = field(default_factory=list)  # awaiting-webhook StuckRows (<= 200) to ask the provider about
    sample_rows: list[Any] = field(default_factory=list)  # the sampled StuckRows (for per-row follow-up reads)
    dead_workers: list[Any] = field(default_factory=list)  # deadline.DeadWorker dicts (with --max-duration)
    step_evidence: list[str] = field(default_factory=list)
    probe_matrix: Any = None
    probe_findings: list[Finding] = field(default_factory=list)
    vercel: dict[str, Any] = field(default_factory=dict)
    provider: dict[str, Any] = field(default_factory=dict)  # reconcile verdicts (stuckgen.reconcile/v1, no rows)
    ranked: list[RankedFinding] = field(default_factory=list)
    remediation: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    timeline: Any = None  # timeline.Timeline, when asked for (the HTML report)
    rules: tuple[Any, ...] = ()  # the classification rules in force (scan.Rule), first match wins

    @property
    def findings(self) -> list[Finding]:
        return [r.finding for r in self.ranked]

    @property
    def worst(self) -> Severity | None:
        return max((r.finding.severity for r in self.ranked), default=None)


def config_facts(settings: Settings) -> list[ConfigFact]:
    """What is set and where from; secrets as length and fingerprint only."""
    from stuckgen.db import check_dsn, is_transaction_pooler
    from stuckgen.secrets import redact_dsn

    facts: list[ConfigFact] = []
    for name in ("database_url", "base_url", "route", "internal_secret", "bypass_secret", "cookie",
                 "cookie_file", "threshold", "since", "table", "vercel_token", "vercel_project", "vercel_team"):
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


def _config_findings(settings: Settings) -> list[RankedFinding]:
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


def _unseen_statuses(conn: Connection, settings: Any, mapping: Any) -> RankedFinding | None:
    """A finding when configured in-flight statuses occur in no row (defaults are not judged:
    ``queued`` is legitimately absent where the app has no queue)."""
    from stuckgen.discover import census, statuses_unseen

    source = settings.sources.get("inflight_statuses", "default")
    if source == "default":
        return None
    unseen = statuses_unseen(conn, mapping, tuple(settings.values.get("inflight_statuses") or ()))
    if not unseen:
        return None
    cen = census(conn, mapping, naive_tz=settings.values.get("naive_timezone") or "UTC")
    present = ", ".join(f"{v.value} ({v.rows})" for v in cen.values if v.rows) or "none (the table is empty)"
    names = ", ".join(repr(u) for u in unseen)
    return RankedFinding(support=0.8, finding=Finding(
        id="inflight-status-unseen", severity=Severity.WARNING,
        title=f"in-flight status {names} occurs in no row of {mapping.table}: rows are never looked for under "
              f"{'that name' if len(unseen) == 1 else 'those names'} (a typo?)",
        evidence=(f"inflight_statuses: {', '.join(settings.values.get('inflight_statuses') or ())} [{source}]",
                  f"statuses in {mapping.table}: {present}"),
        fix="correct --inflight-statuses (STUCKGEN_INFLIGHT_STATUSES, inflight_statuses in stuckgen.toml) to "
            "statuses the table holds; stuckgen schema shows them all"))


def _audit_exposed(conn: Connection, settings: Any, schema: str) -> tuple[str, list[str]] | None:
    """(table, roles) when the audit table can be read through Supabase's Data API roles."""
    from stuckgen.audit import TableAudit, audit_log

    if settings.values.get("audit_file") or str(settings.values.get("audit_table") or "none").lower() == "none":
        return None
    log = audit_log(audit_file=None, audit_table=settings.values.get("audit_table"), default_schema=schema)
    roles = log.readable_by(conn) if isinstance(log, TableAudit) else []
    return (f"{log.schema}.{log.table}", roles) if roles and isinstance(log, TableAudit) else None


def provider_mode(settings: Any, mapping: Any, rows: Sequence[Any]) -> str:
    """How this app learns a provider's result: the setting, else what the step log shows, else unknown."""
    mode = str(settings.values.get("provider_results") or "auto")
    if mode != "auto":
        return mode
    if mapping is not None and mapping.has("step_log") and any(
            r.last_step == "webhook:submitted" or (r.why or "").startswith("handed to an outside provider")
            for r in rows if r.cls == "awaiting-webhook"):
        return "webhook"
    return "unknown"


def provider_advice(mode: str, *, token: bool) -> tuple[str, str]:
    """(cause, fix) for rows waiting on the provider, for the way this app gets results back."""
    ask = ("`stuckgen reconcile` asks the provider how each prediction ended" if token else
           "set REPLICATE_API_TOKEN and `stuckgen reconcile` asks the provider how each prediction ended")
    if mode == "webhook":
        return ("the provider's webhook never arrived (wrong callback URL, or the webhook route is behind protection)",
                f"check the webhook URL the app registers and that it is reachable without auth; {ask}, and "
                "`stuckgen reconcile --apply --via webhook` replays the lost callbacks (or `--via sync` settles "
                "them through the app's sync route, POST /api/generations/{id}/sync); not a retrigger: the "
                "process route skips them and only rewrites their heartbeat")
    if mode == "sync":
        return ("nothing called the app's sync route for these rows, so their result was never fetched",
                f"{ask}; `stuckgen reconcile --apply --via sync` settles them through the app's sync route")
    if mode == "polling":
        return ("the app only learns a result while a browser polls for it, and nobody had these pages open",
                f"{ask}; then open the rows in the app (its poll settles them) or `stuckgen fail` the ones "
                "the provider never finished; a webhook or a scheduled sync would settle them without a browser")
    if mode == "none":
        return ("nothing in the app brings the provider's result back once it is handed over",
                f"{ask}; add a webhook route or a scheduled sync, and `stuckgen fail` what the provider never finished")
    return ("rows hold a provider id and nothing finished them: the way the app gets results back "
            "(webhook, sync route, browser polling) did not run for them",
            f"{ask}; say how the app gets results (provider_results = webhook | sync | polling | none) "
            "for a precise fix")


_TRIGGER_CLASSES = ("trigger-failed", "never-started", "queued-not-drained")


def _trigger_notices_apply(settings: Any, mapping: Any, summary: Any) -> bool:
    """Notices about the internal secret and the process route apply to apps that trigger a process route."""
    if settings.values.get("base_url") or settings.values.get("internal_secret"):
        return True
    if mapping is None:
        return True
    if summary is not None and any(summary.by_class.get(c) for c in _TRIGGER_CLASSES):
        return True
    # The incident app's shape: a step log of trigger steps. An app without one has no such route to probe.
    return bool(mapping.has("step_log"))


_QUEUE_FIX = {
    "graphile-worker": (
        "start a worker: a running graphile-worker unlocks jobs locked longer than 4 hours and takes due jobs. "
        "To retry now with its own admin functions: SELECT graphile_worker.force_unlock_workers(ARRAY['<locked_by>']); "
        "to give up: SELECT graphile_worker.permanently_fail_jobs(ARRAY[<job ids>], 'reason')"),
    "pg-boss": (
        "run a pg-boss instance with its supervisor on (supervise: true): maintenance retries or fails expired "
        "active jobs; consumers (boss.work) drain created/retry jobs. From code: boss.retry(name, id) / "
        "boss.fail(name, id, data)"),
}


def queue_findings(queues: Sequence[Any]) -> list[RankedFinding]:
    """One finding per job-queue library holding stuck jobs, read by the library's own rules."""
    out: list[RankedFinding] = []
    for q in queues:
        if not q.stuck:
            continue
        kinds = [k for k in ("lock-expired", "expired-active", "queued-not-drained") if q.counts.get(k)]
        ev = tuple(f"{q.counts[k]} {k} (e.g. {', '.join(q.examples.get(k, [])[:3])}): {q.meaning.get(k, k)}"
                   for k in kinds)
        out.append(RankedFinding(support=0.5, finding=Finding(
            id=f"queue-{q.library}", severity=Severity.WARNING,
            title=f"{q.stuck} {q.library} jobs stuck in {q.table}", evidence=ev,
            fix=_QUEUE_FIX.get(q.library, "start the library's workers"))))
    return out


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


def rank_causes(items: Sequence[RankedFinding]) -> list[RankedFinding]:
    """Security first, then by severity, then by how much evidence supports each."""
    security = {"open-route", "wrong-secret-accepted"}
    return sorted(items, key=lambda r: (r.finding.id not in security, r.finding.severity < Severity.WARNING,
                                        -r.support, -int(r.finding.severity), r.finding.id))


def _read_database(conn: Connection, settings: Any, report: DoctorReport, *, rules: Sequence[Any] | None,
                   sample_rows: int, step: Callable[[str], None], timeline: bool = False) -> list[RankedFinding]:
    """Mapping, scan and step-log evidence; fills ``report`` and returns the findings. SchemaError passes up."""
    from stuckgen import db as dbmod
    from stuckgen.scan import DEFAULT_RULES, ScanRun, explain_advice, scan_options
    from stuckgen.schema import mapping_config, resolve

    ranked: list[RankedFinding] = []

    step("reading the database")
    opts = scan_options(settings)
    with dbmod.read_tx(conn, settings):
        mapping = resolve(conn, mapping_config(settings))
        report.mapping = mapping
        report.rules = tuple(rules or DEFAULT_RULES)
        run = ScanRun(conn, mapping, opts, report.rules)
        run.count_window()
        rows: list[Any] = []
        from collections import Counter

        from stuckgen import timeline as tl

        stuck_minutes: Counter = Counter()  # bounded by the window's minutes, never by the rows
        for r in run:
            if len(rows) < sample_rows:
                rows.append(r)
            at = r.created_at or r.last_sign_of_life
            if timeline and at is not None:
                stuck_minutes[tl.minute(at)] += 1
        if timeline:
            step_s, buckets = tl.query(conn, mapping, since=opts.since, naive_tz=opts.naive_timezone,
                                       completed_status=settings.values.get("completed_status") or "completed",
                                       failed_status=settings.failed_status)
            report.timeline = tl.build(step_s, buckets, stuck_minutes, onset=run.summary.onset)
        report.summary = run.summary
        report.since_seconds = opts.since
        report.stuck_sample = rows[:20]
        report.waiting_rows = [r for r in rows if r.cls == "awaiting-webhook"][:200]
        report.sample_rows = rows
        advice = explain_advice(conn, mapping, opts)
        version = scalar(conn, "SHOW server_version")
        exposed = _audit_exposed(conn, settings, mapping.db_schema)
        unseen = _unseen_statuses(conn, settings, mapping)
        from stuckgen.queues import queue_census

        report.queues = queue_census(conn, threshold=settings.threshold)
    ranked += queue_findings(report.queues)
    report.database = {"reachable": True, "server_version": version, "table": f"{mapping.db_schema}.{mapping.table}",
                       "pooler": _pooler(conn, settings)}
    if unseen:
        ranked.append(unseen)
    if exposed:
        where, roles = exposed
        ranked.append(RankedFinding(support=0.3, finding=Finding(
            id="audit-table-exposed", severity=Severity.WARNING,
            title=f"the audit table {where} is readable by {', '.join(roles)} (Supabase's Data API roles)",
            evidence=(f"{where}: row-level security off, SELECT granted to {', '.join(roles)}",),
            fix=f"ALTER TABLE {where} ENABLE ROW LEVEL SECURITY; REVOKE ALL ON {where} FROM "
                f"{', '.join(roles)}  (stuckgen does this itself on its next real run as the table's owner)")))
    for w in mapping.warnings:
        ranked.append(RankedFinding(support=0.05, finding=Finding(
            id="mapping-gap", severity=Severity.INFO, title=w, evidence=(f"table {mapping.table}",),
            fix="map the field with --map or [mapping] in stuckgen.toml if the app keeps it elsewhere")))
    if advice:
        ranked.append(RankedFinding(support=0.05, finding=Finding(
            id="index-advice", severity=Severity.INFO,
            title=f"the stuck-row scan reads all of {mapping.table}: no index serves the in-flight statuses",
            evidence=("EXPLAIN shows a sequential scan, or a whole-index scan, of a large table",), fix=advice)))
    token = bool(settings.values.get("replicate_api_token"))
    report.provider_results = provider_mode(settings, mapping, rows)
    found, report.step_evidence = scan_findings(
        run.summary, rows, causes={"awaiting-webhook": provider_advice(report.provider_results, token=token)})
    ranked += found
    ranked += trigger_failure_findings(run.summary.trigger_failures, max_count=settings.max_trigger_failures,
                                       max_rate=settings.max_trigger_failure_rate)
    return ranked


def diagnose(
    settings: Settings,
    *,
    conn: Connection | None,
    db_error: str | None = None,
    db_fix: str | None = None,
    http: Any | None = None,
    vercel_http: Any | None = None,
    provider_http: Any | None = None,
    cookie_header: str | None = None,
    cookie_info: Any | None = None,
    repeat: int | None = None,
    concurrency: int = 10,
    allow_insecure: bool = False,
    rules: Sequence[Any] | None = None,
    now: float | None = None,
    on_step: Callable[[str], None] | None = None,
    sample_rows: int = 2000,
    timeline: bool = False,
) -> DoctorReport:
    """Run every check that the configuration allows and rank what they found.

    ``db_error``/``db_fix``: why the database could not be opened and what to do (the error's hint).
    """
    from datetime import timezone

    step = on_step or (lambda _msg: None)
    now = time.time() if now is None else now
    markers: list[Any] = []
    report = DoctorReport(generated_at=datetime.fromtimestamp(now, tz=timezone.utc))
    report.config = config_facts(settings)
    ranked: list[RankedFinding] = _config_findings(settings)

    # -- database: mapping, scan, step-log evidence -------------------------------------------
    if conn is None:
        report.database = {"reachable": False, "error": db_error or "no database configured"}
        ranked.append(RankedFinding(support=0.5, finding=Finding(
            id="database-unreachable", severity=Severity.WARNING if db_error else Severity.INFO,
            title="the database could not be consulted, so stuck rows were not counted",
            evidence=(db_error or "database_url: not set",),
            fix=db_fix or ("set DATABASE_URL (a read-only role is enough for doctor)" if not db_error
                           else "check the host and port in DATABASE_URL, and that this machine may reach them"))))
    else:
        from stuckgen import db as dbmod

        try:
            ranked += _read_database(conn, settings, report, rules=rules, sample_rows=sample_rows, step=step,
                                     timeline=timeline)
        except SchemaError as exc:
            # Report what could be gathered (configuration, server, probe, Vercel) and name the gap.
            with dbmod.read_tx(conn, settings):
                version = scalar(conn, "SHOW server_version")
            report.database = {"reachable": True, "server_version": version, "table": None, "error": exc.message}
            missing = exc.message.startswith("table ")
            ranked.append(RankedFinding(support=1.0, finding=Finding(
                id="table-not-found" if missing else "mapping-invalid", severity=Severity.ERROR,
                title=(f"the job table is not there, so stuck rows were not counted: {exc.message}" if missing
                       else f"the schema mapping does not fit the table, so stuck rows were not counted: {exc.message}"),
                evidence=(exc.message,),
                fix=exc.hint or ("pass --table NAME (and --db-schema NAME), or set table in stuckgen.toml; "
                                 "stuckgen schema lists what it finds" if missing
                                 else "fix the mapping with --map FIELD=SPEC or [mapping] in stuckgen.toml"))))
        if not _trigger_notices_apply(settings, report.mapping, report.summary):
            # No process route in this app's evidence: notices about its secret and URL are noise.
            ranked = [r for r in ranked if r.finding.id not in ("secret-not-configured", "no-target")]

    # -- provably dead workers: started longer ago than the function may run -------------------
    max_duration = settings.values.get("max_duration")
    if max_duration:
        ranked += _deadline_findings(report, settings, conn, float(max_duration))

    # -- the provider: how the stuck provider rows really ended --------------------------------
    if conn is not None and provider_http is not None and report.summary is not None and report.summary.stuck:
        ranked += _provider_evidence(report, settings, conn, provider_http, report.waiting_rows, http=http,
                                     allow_insecure=allow_insecure, step=step)

    # -- probe-auth --------------------------------------------------------------------------
    targets = tuple(settings.values.get("base_url") or ())
    if targets and http is not None:
        from stuckgen.findings import analyze_probe
        from stuckgen.probe import probe

        id_in_use: Callable[[str], bool] | None = None
        if conn is not None and report.mapping is not None:
            from stuckgen import db as dbmod
            from stuckgen.show import id_exists

            mapping_ = report.mapping

            def _id_in_use(probe_id: str) -> bool:
                # The probe's id must match no row, so that a probe can never process real work.
                with dbmod.read_tx(conn, settings):
                    return id_exists(conn, mapping_, probe_id)

            id_in_use = _id_in_use

        step(f"probing {len(targets)} target(s)")
        from stuckgen.probe import DEFAULT_REPEAT

        matrix = probe(http, targets, route=settings.route, secret=settings.internal_secret,
                       cookie_header=cookie_header, bypass_secret=settings.bypass_secret,
                       repeat=repeat or DEFAULT_REPEAT,
                       concurrency=concurrency, timeout=settings.http_timeout, allow_insecure=allow_insecure,
                       id_in_use=id_in_use)
        report.probe_matrix = matrix
        report.probe_findings = analyze_probe(matrix, secret=settings.internal_secret, cookie_info=cookie_info, now=now)
        have = {r.finding.id for r in ranked}
        for f in report.probe_findings:
            if f.id in have and f.id == "secret-whitespace":
                ranked = [r for r in ranked if r.finding.id != f.id]
            ranked.append(RankedFinding(support=_probe_support(f, report.summary), finding=f))

    # -- Vercel ------------------------------------------------------------------------------
    token, project = settings.values.get("vercel_token"), settings.values.get("vercel_project")
    if token and project and vercel_http is not None:
        from stuckgen.vercel import SECRET_KEY, VercelClient, analyze_evidence

        step("reading the Vercel project")
        try:
            client = VercelClient(vercel_http, token=token, project=project, team=settings.values.get("vercel_team"),
                                  base_url=settings.values.get("vercel_api_url") or "https://api.vercel.com")
            onset = report.summary.onset if report.summary else None
            # Values are read one variable at a time (the list returns ciphertext); a value the
            # token may not read becomes a finding that says so, never a silent skip.
            ev = client.gather(onset=onset, value_keys={SECRET_KEY})
            protection = any(f.id == "deployment-protection" for f in report.probe_findings)
            vf = analyze_evidence(ev, local_secret=settings.internal_secret, local_bypass=settings.bypass_secret,
                                  onset=onset, protection_seen=protection)
            secrets = [v for v in ev.envs if v.key == SECRET_KEY]
            if timeline:
                from stuckgen.timeline import vercel_markers

                markers = vercel_markers(ev.envs, ev.deployments)
            report.vercel = {
                "consulted": True, "variables": len(ev.envs), "deployments": len(ev.deployments),
                "secret_values_compared": sum(v.digest is not None for v in secrets),
                "secret_values_unreadable": sum(v.digest is None for v in secrets),
                "hidden_production_variables": ev.hidden_production,
                "project_read": ev.project is not None,
            }
            for f in vf:
                support = _probe_support(f, report.summary) + 0.1 if f.severity >= Severity.WARNING else 0.2
                ranked.append(RankedFinding(support=support, finding=f))
            step("reading the runtime logs")
            ranked += _runtime_log_findings(report, client, ev.deployments, route=settings.route)
        except StuckgenError as exc:
            report.vercel = {"consulted": False, "error": exc.message}
            ranked.append(RankedFinding(support=0.1, finding=Finding(
                id="vercel-unavailable", severity=Severity.INFO, title="the Vercel API could not be consulted",
                evidence=(exc.message,), fix=exc.hint or "check VERCEL_TOKEN, VERCEL_PROJECT_ID and VERCEL_TEAM_ID")))
    if markers and report.timeline is not None:
        from stuckgen import timeline as tl

        report.timeline = tl.with_markers(report.timeline, markers)
    report.ranked = rank_causes(ranked)
    report.remediation, report.next_steps = _plan(report)
    return report


def _provider_evidence(report: DoctorReport, settings: Any, conn: Connection, provider_http: Any, rows: Sequence[Any], *,
                       http: Any | None, allow_insecure: bool, step: Callable[[str], None]) -> list[RankedFinding]:
    """Ask the provider about the stuck provider rows (at most 200) and probe the webhook route when callbacks were lost."""
    from datetime import timezone

    from stuckgen import db as dbmod
    from stuckgen import reconcile
    from stuckgen.replicate import ProviderOptions

    token = settings.values.get("replicate_api_token")
    if not token:
        return []
    with dbmod.read_tx(conn, settings):
        prows = reconcile.rows_by_ids(conn, report.mapping, list(rows)) \
            if report.mapping is not None and report.mapping.has("webhook") else []
    if not prows:
        return []
    step(f"asking the provider about {len(prows)} row(s)")
    options = ProviderOptions(api_url=str(settings.values.get("replicate_api_url")).rstrip("/"), token=token,
                              timeout=settings.http_timeout, allow_insecure=allow_insecure)
    try:
        result = reconcile.reconcile_rows(provider_http, prows, options=options, now=datetime.now(timezone.utc),
                                          stuck_rows=report.summary.stuck, without_prediction=0)
    except StuckgenError as exc:
        report.provider = {"consulted": False, "error": exc.message}
        return [RankedFinding(support=0.1, finding=Finding(
            id="provider-unreachable", severity=Severity.INFO, title="the provider could not be asked",
            evidence=(exc.message,), fix=exc.hint or "check STUCKGEN_REPLICATE_API_URL"))]
    report.provider = {"consulted": True, **result.as_dict(rows=False)}
    probe = None
    lost = sum(1 for v in result.verdicts if v.verdict in (reconcile.SUCCEEDED, reconcile.FAILED))
    targets = tuple(settings.values.get("base_url") or ())
    if lost and http is not None and targets:
        step("probing the webhook route")
        probe = reconcile.probe_webhook(http, targets[0], secret=settings.values.get("replicate_webhook_secret"),
                                        bypass_secret=settings.values.get("bypass_secret"))
        report.provider["webhook_probe"] = {"url": probe.url, "http_status": probe.http_status, "kind": probe.kind,
                                            "detail": probe.detail, "signed": probe.signed}
    return [RankedFinding(support=s, finding=f)
            for s, f in reconcile.provider_findings(result, probe, stuck_total=report.summary.stuck)]


def _deadline_findings(report: DoctorReport, settings: Any, conn: Connection | None, max_duration: float) -> list[RankedFinding]:
    """Stalled rows whose worker started more than max_duration + grace ago; a threshold that is too short."""
    from stuckgen import db as dbmod
    from stuckgen import deadline

    out: list[RankedFinding] = []
    warning = deadline.threshold_warning(float(settings.threshold), max_duration)
    if warning:
        out.append(RankedFinding(support=0.05, finding=Finding(
            id="threshold-below-max-duration", severity=Severity.INFO, title=warning,
            evidence=(f"--threshold {settings.threshold:g} s, --max-duration {max_duration:g} s",),
            fix="raise --threshold, or read stalled rows younger than the maximum duration as possibly alive")))
    stalled = [r.id for r in report.sample_rows if r.cls == "stalled"] if conn is not None else []
    if conn is None or not stalled or report.mapping is None:
        return out
    with dbmod.read_tx(conn, settings):
        dead = deadline.dead_workers(conn, report.mapping, stalled, max_duration=max_duration,
                                     naive_tz=settings.naive_timezone)
    report.dead_workers = [d.as_dict() for d in dead.values()]
    if dead:
        n = len(dead)
        ex = list(dead.values())[:3]
        out.append(RankedFinding(support=0.3 + n / max(report.summary.stuck, 1), finding=Finding(
            id="timed-out", severity=Severity.WARNING,
            title=f"{n} stalled generations are provably dead: their workers started longer ago than the "
                  f"function's maximum duration ({max_duration:g} s)",
            evidence=tuple(f"{d.id}: {d.evidence}" for d in ex) + (f"{n} of {len(stalled)} stalled rows",),
            fix="no worker can still be running them, so a new trigger cannot duplicate a live run: "
                "`stuckgen retrigger ID... --yes`; find why workers outlive the limit (raise maxDuration or split "
                "the work)")))
    return out


def _log_deployments(deployments: Sequence[Any], limit: int = 3) -> list[Any]:
    """The deployments whose runtime logs are read: the most recent ready ones (production first)."""
    ready = [d for d in deployments if (d.state or "").upper() == "READY"]
    ready.sort(key=lambda d: (d.target != "production", -(d.created_at.timestamp() if d.created_at else 0)))
    return ready[:limit]


def _runtime_log_findings(report: DoctorReport, client: Any, deployments: Sequence[Any], *,
                          route: str) -> list[RankedFinding]:
    """Count each recent deployment's calls of the process route by status, and its timeouts, from Vercel's logs."""
    from stuckgen.vercel.logs import count_calls

    counted = []
    for d in _log_deployments(deployments):
        try:
            logs = client.runtime_logs(d.uid)
        except StuckgenError as exc:
            report.vercel["runtime_logs_error"] = exc.message
            break
        counted.append(count_calls(logs, route, deployment=d.url or d.uid))
    report.vercel["runtime_logs"] = [c.as_dict() for c in counted]
    out: list[RankedFinding] = []
    stuck = report.summary.stuck if report.summary is not None else 0
    by = report.summary.by_class if report.summary is not None else {}
    for c in counted:
        refused = sum(n for s, n in c.by_status.items() if s in (401, 403))
        if c.total and refused * 2 >= c.total:
            explained = (by.get("trigger-failed", 0) + by.get("never-started", 0)) / stuck if stuck else 0.0
            out.append(RankedFinding(support=0.4 + explained, finding=Finding(
                id="platform-logs-refused", severity=Severity.ERROR, target=c.deployment,
                title=c.line(),
                evidence=(", ".join(f"HTTP {s} x{n}" for s, n in sorted(c.by_status.items())) + f" of {c.total} calls",
                          "source: Vercel's runtime logs of the deployment (what the route itself answered)"),
                fix="the deployment refuses its own trigger: see the secret findings above (INTERNAL_API_SECRET for "
                    "this deployment's target), then retrigger")))
        if c.timeouts:
            share = by.get("stalled", 0) / stuck if stuck else 0.0
            out.append(RankedFinding(support=0.2 + share, finding=Finding(
                id="platform-logs-timeouts", severity=Severity.WARNING, target=c.deployment,
                title=f"{c.timeouts} invocations of {route} on {c.deployment} were stopped at the function's maximum "
                      f"duration ({c.timeout_seconds:g} s): their workers are dead, not slow",
                evidence=(c.line(),),
                fix="raise maxDuration for the process route or split the work; rows whose worker started more than "
                    "that long ago can be re-run safely")))
    return out


def _pooler(conn: Connection, settings: Any) -> str | None:
    """How a transaction-mode pooler shows itself: the port, or a server backend that changes per transaction."""
    from stuckgen import db as dbmod

    handled = "handled: no prepared statements, settings per transaction"
    pids, server_port = set(), None
    for _ in range(3):
        with dbmod.read_tx(conn, settings):
            pid, server_port = conn.execute("SELECT pg_backend_pid(), inet_server_port()").fetchone() or (None, None)
            pids.add(pid)
    if len(pids) > 1:
        return f"transaction-mode pooler detected (transactions ran on different server connections); {handled}"
    client_port = str(conn.info.port or "")
    if server_port is not None and client_port and client_port != str(server_port) and conn.info.host[:1] != "/":
        return f"a pooler or proxy sits in between (connected to port {client_port}, the server listens on {server_port}); {handled}"
    if client_port == "6543":
        return "port 6543: Supabase's transaction pooler; handled: no prepared statements, settings per transaction"
    return None


def _probe_support(f: Finding, summary: Any) -> float:
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


def _plan(report: DoctorReport) -> tuple[list[str], list[str]]:
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


def gather(session: Session, *, probe: bool, repeat: int | None, timeline: bool = False,
           on_step: Callable[[str], None] | None = None) -> DoctorReport:
    """Open what the configuration allows (database, deployment, Vercel, provider) through the session; diagnose.

    An unreachable database is evidence, not an error: the report says so.
    """
    from stuckgen.errors import UnreachableError
    from stuckgen.probe import DEFAULT_REPEAT

    s = session.settings
    conn: Connection | None = None
    db_error = db_fix = None
    if s.database_url:
        try:
            conn = session.connection()
        except UnreachableError as exc:
            db_error, db_fix = exc.message, exc.hint
    http = session.http_client() if probe and s.base_url else None
    # The Vercel API may sit behind the operator's proxy; the deployment is called directly.
    vercel = session.http_client(trust_env=True) if s.vercel_token and s.vercel_project else None
    provider = session.http_client() if s.replicate_api_token else None
    return diagnose(s, conn=conn, db_error=db_error, db_fix=db_fix, http=http, vercel_http=vercel, provider_http=provider,
                    timeline=timeline, cookie_header=session.cookie_header(), cookie_info=session.cookie(),
                    repeat=repeat or DEFAULT_REPEAT, allow_insecure=session.allow_insecure, rules=session.rules(),
                    now=time.time(), on_step=on_step)


def exit_code(report: DoctorReport, *, database_configured: bool) -> ExitCode:
    """3 when every source doctor tried (database, deployment, Vercel) failed to answer; else by the worst finding."""
    tried = database_configured or report.probe_matrix is not None or bool(report.vercel)
    reached = (bool(report.database.get("reachable"))
               or (report.probe_matrix is not None and report.probe_matrix.any_answered)
               or bool(report.vercel.get("consulted")))
    if tried and not reached:
        return ExitCode.UNREACHABLE
    w = report.worst
    return ExitCode.FINDINGS if w is not None and w >= Severity.WARNING else ExitCode.OK
