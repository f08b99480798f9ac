"""Settle provider rows through the app itself, never by writing outputs ourselves.

Two ways in, both the app's own code doing the writing:

* ``sync``: ``POST {url}/api/generations/{id}/sync`` (Loop-Vesper
  ``src/app/api/generations/[id]/sync/route.ts``). The app asks the provider and
  settles the row. It takes ``Authorization: Bearer <Supabase access token>`` and
  only for the row's owner (403 otherwise): stuckgen sends the access token of the
  configured session cookie.
* ``webhook``: replay the provider's callback to ``POST {url}/api/webhooks/replicate``
  (``src/app/api/webhooks/replicate/route.ts``): the prediction as the provider
  answers it now, signed with ``REPLICATE_WEBHOOK_SECRET`` the way the provider
  signs (``standard``) or the way the app's route verifies (``app``; see
  :mod:`stuckgen.replicate`). The app finds the row by its prediction id.

Safety, as for ``retrigger``: a dry run unless asked; each row re-read just before
it is sent and skipped if it left the in-flight statuses or showed a sign of life;
bounded concurrency; retries with backoff on timeouts, 429 (Retry-After) and 5xx;
a breaker that stops at the first 401 or redirect; credentials never over plain
HTTP to a remote host and never in output. Afterwards every row is re-read and
the change reported (status and outputs before and after). Each send is audited
(action ``reconcile``). stuckgen itself writes nothing to the row, so there is
nothing of its own to undo: the audit records what the app changed.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from stuckgen.audit import AuditLog, AuditRecord
from stuckgen.db import Connection, transaction
from stuckgen.errors import ConfigError, ExitCode
from stuckgen.fanout import fan_out
from stuckgen.reconcile import SETTLEABLE, VERDICT_TEXT, ProviderRow, Verdict
from stuckgen.replicate import ProviderOptions, get_prediction, webhook_headers
from stuckgen.scan import ScanOptions
from stuckgen.schema import SchemaMapping
from stuckgen.secrets import scrub

SETTLE_SCHEMA = "stuckgen.settle/v1"
VIAS = ("sync", "webhook")
SYNC_ROUTE = "/api/generations/{id}/sync"
WEBHOOK_ROUTE = "/api/webhooks/replicate"
BYPASS_HEADER = "x-vercel-protection-bypass"

OUTCOME_TEXT = {
    "settled": "the app settled the row",
    "would-settle": "dry run: would be settled through the app",
    "unchanged": "the app answered but the row did not change",
    "skipped-completed": "left the in-flight statuses meanwhile; not sent",
    "skipped-touched": "showed a sign of life meanwhile; not sent",
    "skipped-missing": "deleted meanwhile",
    "forbidden": "the sync route answered 403: only the row's owner may sync it",
    "auth-rejected": "the deployment refused the credentials",
    "redirected": "the route redirected; not followed",
    "rejected": "the route refused the request",
    "gave-up": "the deployment kept failing (429/5xx)",
    "timeout": "no answer in time",
    "unreachable": "could not reach the deployment",
    "not-sent": "not sent",
    "provider-changed": "the provider's answer changed since reconcile; not replayed",
}


@dataclass(frozen=True, kw_only=True)
class SettleOptions:
    """Where and how rows are settled."""

    url: str  # the deployment's base URL
    scan: ScanOptions  # the stuck predicate re-checked before each send
    via: str = "sync"
    access_token: str | None = field(default=None, repr=False)  # sync: the row owner's Supabase access token
    webhook_secret: str | None = field(default=None, repr=False)  # webhook: REPLICATE_WEBHOOK_SECRET
    signature: str = "standard"  # webhook: "standard" (as Replicate signs) or "app" (as the app verifies)
    bypass_secret: str | None = field(default=None, repr=False)
    sync_route: str = SYNC_ROUTE
    webhook_route: str = WEBHOOK_ROUTE
    concurrency: int = 4
    tries: int = 3
    backoff: float = 0.5
    max_backoff: float = 10.0
    allow_insecure: bool = False
    statement_timeout: float = 30.0
    lock_timeout: float = 5.0


@dataclass(frozen=True, kw_only=True)
class SettleOutcome:
    """What happened to one row: what was sent, what the app said, and what changed in our database."""

    id: str
    prediction_id: str
    verdict: str
    outcome: str
    ok: bool
    reason: str = ""
    http_status: int | None = None
    tries: int = 0
    status_before: str | None = None
    status_after: str | None = None
    outputs_before: int | None = None
    outputs_after: int | None = None

    @property
    def change(self) -> str:
        if self.status_after is None:
            return "-"
        outs = ""
        if self.outputs_before is not None and self.outputs_after is not None and self.outputs_after != self.outputs_before:
            outs = f", outputs {self.outputs_before} -> {self.outputs_after}"
        if self.status_after == self.status_before and not outs:
            return f"unchanged ({self.status_after})"
        return f"{self.status_before} -> {self.status_after}{outs}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "prediction_id": self.prediction_id, "verdict": self.verdict, "outcome": self.outcome,
                "ok": self.ok, "reason": self.reason, "http_status": self.http_status, "tries": self.tries,
                "status_before": self.status_before, "status_after": self.status_after,
                "outputs_before": self.outputs_before, "outputs_after": self.outputs_after, "change": self.change}


@dataclass(frozen=True, kw_only=True)
class SettleResult:
    """A settle run (or its dry run)."""

    run_id: str | None
    dry_run: bool
    via: str
    url: str
    audit: str
    operator: str
    outcomes: tuple[SettleOutcome, ...]
    left: dict[str, int]  # verdicts not settled (still running, unknown, unreachable): counts
    stopped: str | None = None
    interrupted: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(o.outcome for o in self.outcomes))

    @property
    def exit_code(self) -> ExitCode:
        if self.dry_run:  # the rows are still unsettled: a finding, as reconcile without --apply says
            return ExitCode.FINDINGS if self.outcomes else ExitCode.OK
        if self.outcomes and all(o.outcome == "unreachable" for o in self.outcomes):
            return ExitCode.UNREACHABLE
        return ExitCode.OK if all(o.ok for o in self.outcomes) else ExitCode.FINDINGS

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SETTLE_SCHEMA, "run_id": self.run_id, "dry_run": self.dry_run, "via": self.via,
                "url": self.url, "audit": self.audit, "operator": self.operator, "counts": self.counts,
                "left": self.left, "stopped": self.stopped, "interrupted": self.interrupted,
                "rows": [o.as_dict() for o in self.outcomes]}


NOT_ASKED = "not-asked"  # retrigger --via sync: the app asks the provider itself


def unasked(rows: Sequence[ProviderRow]) -> list[Verdict]:
    """Verdicts for rows stuckgen did not ask the provider about: the sync route will."""
    return [Verdict(id=r.id, cls=r.cls, prediction_id=r.prediction_id, verdict=NOT_ASKED,
                    detail="the provider was not asked; the app's sync route asks it") for r in rows]


def settleable(verdicts: Sequence[Verdict]) -> tuple[list[Verdict], dict[str, int]]:
    """The verdicts a settle run takes, and counts of those it leaves alone (and why: VERDICT_TEXT)."""
    take = [v for v in verdicts if v.verdict in SETTLEABLE or v.verdict == NOT_ASKED]
    left = Counter(v.verdict for v in verdicts if v.verdict not in SETTLEABLE and v.verdict != NOT_ASKED)
    return take, dict(left)


def check_options(options: SettleOptions) -> None:
    """ConfigError before anything is sent: the route's credentials must be there and travel safely."""
    from stuckgen.http import check_transport

    if options.via not in VIAS:
        raise ConfigError(f"--via: {options.via!r} is not one of {', '.join(VIAS)}")
    if options.via == "sync" and not options.access_token:
        raise ConfigError(
            "--via sync needs the session of the rows' owner: the app's sync route takes only "
            "'Authorization: Bearer <Supabase access token>' of the user who owns the row",
            hint="set STUCKGEN_COOKIE or --cookie-file to that user's session cookie, or use --via webhook")
    if options.via == "webhook" and options.signature not in ("standard", "app"):
        raise ConfigError(f"--webhook-signature: {options.signature!r} is not one of standard, app")
    check_transport(options.url, sends_credentials=True, allow_insecure=options.allow_insecure)


def plan(verdicts: Sequence[Verdict], *, options: SettleOptions, audit: str, operator: str) -> SettleResult:
    """The dry run: what would be sent; nothing is."""
    take, left = settleable(verdicts)
    outs = tuple(SettleOutcome(id=v.id, prediction_id=v.prediction_id, verdict=v.verdict, outcome="would-settle",
                               ok=True, reason=f"dry run: would {_verb(options)}") for v in take)
    return SettleResult(run_id=None, dry_run=True, via=options.via, url=options.url, audit=audit, operator=operator,
                        outcomes=outs, left=left)


def _verb(options: SettleOptions) -> str:
    return ("call the app's sync route" if options.via == "sync"
            else f"replay the provider's webhook ({options.signature} signature)")


def _reread_query(mapping: SchemaMapping, options: ScanOptions) -> sql.Composed:
    from stuckgen.remediate.select import recheck_options  # the re-check predicate retrigger uses
    from stuckgen.scan import where_stuck

    outputs: sql.Composable = sql.SQL("NULL::bigint")
    if mapping.outputs.present:
        outputs = sql.SQL("(SELECT count(*) FROM {o} WHERE {fk} = g.{idc})").format(
            o=sql.Identifier(mapping.db_schema, mapping.outputs.table or ""), fk=sql.Identifier(mapping.outputs.key or ""),
            idc=sql.Identifier(mapping["id"].column or "id"))
    return sql.SQL("SELECT {st}::text AS status, ({pred}) AS stuck, {outs} AS outputs FROM {t} g "
                   "WHERE g.{idc} = %s").format(
        st=mapping.raw("status"), pred=where_stuck(mapping, recheck_options(options), window=False), outs=outputs,
        t=mapping.qualified(), idc=sql.Identifier(mapping["id"].column or "id"))


def _outcome(v: Verdict, outcome: str, ok: bool = False, **kw: Any) -> SettleOutcome:
    """The row's outcome; its reason defaults to the outcome's text."""
    kw.setdefault("reason", OUTCOME_TEXT.get(outcome, outcome))
    return SettleOutcome(id=v.id, prediction_id=v.prediction_id, verdict=v.verdict, outcome=outcome, ok=ok, **kw)


def _recheck(v: Verdict, before: dict[str, Any] | None, scan: ScanOptions) -> SettleOutcome | None:
    """Why the row, re-read just before sending, must not be sent (None: send it)."""
    if before is None:
        return _outcome(v, "skipped-missing")
    if before["status"] not in scan.inflight_statuses:
        return _outcome(v, "skipped-completed", reason=f"left the in-flight statuses meanwhile (now {before['status']!r}); "
                                                       "not sent", status_before=before["status"])
    if not before["stuck"]:
        return _outcome(v, "skipped-touched", status_before=before["status"])
    return None


def _changed(v: Verdict, sent: tuple[str, int | None, int, str], before: dict[str, Any],
             after: dict[str, Any] | None, scan: ScanOptions) -> SettleOutcome:
    """The outcome from what the row became: settled when it left the in-flight statuses, whatever the answer."""
    outcome, status, tries, reason = sent
    res_kw: dict[str, Any] = dict(http_status=status, tries=tries, status_before=before["status"],
                                  outputs_before=before["outputs"],
                                  status_after=None if after is None else after["status"],
                                  outputs_after=None if after is None else after["outputs"])
    if after is not None and after["status"] not in scan.inflight_statuses:
        return _outcome(v, "settled", ok=True, reason=f"HTTP {status}: {reason[:160]}" if status else reason, **res_kw)
    if outcome == "answered":
        return _outcome(v, "unchanged", reason=f"HTTP {status}: {reason[:160]}", **res_kw)
    return _outcome(v, outcome, reason=reason, **res_kw)


class _Settler:
    """One settle run's sending: each row re-read, its request built, posted with retries, re-read, audited.

    The first 401 or redirect appends to ``stopped``: no further row is sent.
    """

    def __init__(self, client: Any, conn: Connection, mapping: SchemaMapping, rows: Sequence[ProviderRow], *,
                 options: SettleOptions, provider_client: Any | None, provider: ProviderOptions | None,
                 run_id: str, operator: str) -> None:
        self.client, self.conn, self.options = client, conn, options
        self.provider_client, self.provider = provider_client, provider
        self.run_id, self.operator = run_id, operator
        self.by_id = {r.id: r for r in rows}
        self.reread = _reread_query(mapping, options.scan)
        self.db_lock = threading.Lock()
        self.stop = threading.Event()
        self.stopped: list[str] = []
        self.secrets = [options.access_token, options.webhook_secret, options.bypass_secret]
        self.table = f"{mapping.db_schema}.{mapping.table}"

    def read(self, key: Any) -> dict[str, Any] | None:
        """The row's status, whether it is still stuck, and its outputs (one connection, shared by the workers)."""
        with self.db_lock, transaction(self.conn, read_only=True, statement_timeout=self.options.statement_timeout):
            return self.conn.cursor(row_factory=dict_row).execute(self.reread, (key,)).fetchone()

    def request(self, v: Verdict) -> tuple[str, bytes, dict[str, str]] | SettleOutcome:
        """(url, body, headers) to send for the row; an outcome instead when the provider's answer changed."""
        options = self.options
        headers = {"accept": "application/json"}
        if options.bypass_secret:
            headers[BYPASS_HEADER] = options.bypass_secret
        base = options.url.rstrip("/")
        if options.via == "sync":
            headers["authorization"] = f"Bearer {options.access_token}"
            return base + options.sync_route.replace("{id}", v.id), b"", headers
        assert self.provider is not None
        ans = get_prediction(self.provider_client, v.prediction_id, self.provider, stop=self.stop)
        if ans.document is None or ans.status not in ("succeeded", "failed", "canceled"):
            return _outcome(v, "provider-changed", reason=f"the provider now says {ans.status or ans.problem}; not replayed")
        body = json.dumps(ans.document, separators=(",", ":")).encode("utf-8")
        headers["content-type"] = "application/json"
        if options.webhook_secret:
            headers.update(webhook_headers(options.signature, options.webhook_secret, body))
        return base + options.webhook_route, body, headers

    def post(self, v: Verdict, url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int | None, int, str]:
        """Send with retries on timeouts, 429 and 5xx: (outcome, last HTTP status, tries, reason)."""
        import httpx

        from stuckgen.http import parse_retry_after, retry_delay

        options = self.options
        outcome, status, tries, reason = "not-sent", None, 0, "not sent"
        for n in range(1, options.tries + 1):
            if self.stopped and n > 1:
                break
            tries = n
            retry_after = None
            try:
                resp = self.client.post(url, content=body, headers=headers)
            except httpx.TimeoutException:
                outcome, status, reason = "timeout", None, "no answer in time (the app may have settled it)"
            except httpx.TransportError as exc:
                outcome, status, reason = "unreachable", None, f"could not reach the deployment: {type(exc).__name__}"
            else:
                status = resp.status_code
                excerpt = scrub(resp.text[:300], self.secrets).strip()
                if 200 <= status < 300:
                    outcome, reason = "answered", excerpt
                    break
                if status == 401:
                    why = ("the webhook route rejected the signature (--webhook-signature, REPLICATE_WEBHOOK_SECRET)"
                           if options.via == "webhook" else
                           "the sync route refused the access token (expired session cookie?)")
                    if "Authentication Required" in resp.text or "_vercel_sso_nonce" in resp.headers.get("set-cookie", ""):
                        why = "Vercel Deployment Protection answered before the app (VERCEL_AUTOMATION_BYPASS_SECRET)"
                    self.stopped.append(f"HTTP 401 for row {v.id}: {why}; stopped before sending any further row")
                    outcome, reason = "auth-rejected", f"HTTP 401: {why}"
                    break
                if status == 403 and options.via == "sync":
                    outcome, reason = "forbidden", OUTCOME_TEXT["forbidden"]
                    break
                if 300 <= status < 400:
                    loc = resp.headers.get("location", "?")
                    self.stopped.append(f"HTTP {status} redirecting to {loc}: use the final URL as --url")
                    outcome, reason = "redirected", f"HTTP {status} to {loc}; not followed"
                    break
                if status == 429 or status >= 500:
                    retry_after = parse_retry_after(resp.headers.get("retry-after"))
                    outcome, reason = "gave-up", f"HTTP {status} after {n} tries: {excerpt[:120]}"
                else:
                    outcome, reason = "rejected", f"HTTP {status}: {excerpt[:160]}"
                    break
            if n < options.tries and self.stop.wait(retry_delay(n, base=options.backoff, cap=options.max_backoff,
                                                                retry_after=retry_after)):
                break
        return outcome, status, tries, reason

    def one(self, v: Verdict) -> tuple[SettleOutcome, AuditRecord | None]:
        """Re-check, send and re-read one row; its outcome and (when something was sent) its audit record."""
        if self.stopped or self.stop.is_set():
            return _outcome(v, "not-sent", reason="not sent: " + (self.stopped[0] if self.stopped else "interrupted")), None
        row = self.by_id[v.id]
        before = self.read(row.key)
        skip = _recheck(v, before, self.options.scan)
        if skip is not None:
            return skip, None
        assert before is not None  # _recheck skips a missing row
        req = self.request(v)
        if isinstance(req, SettleOutcome):
            return req, None
        url, body, headers = req
        sent = self.post(v, url, body, headers)
        outcome, status, tries, _ = sent
        after = self.read(row.key) if outcome in ("answered", "timeout", "gave-up") else before
        result = _changed(v, sent, before, after, self.options.scan)
        options = self.options
        record = AuditRecord(
            run_id=self.run_id, action="reconcile", row_id=v.id, table=self.table, at=datetime.now(timezone.utc),
            operator=self.operator, outcome=result.outcome,
            previous={"status": before["status"], "outputs": before["outputs"]},
            new=None if after is None else {"status": after["status"], "outputs": after["outputs"]},
            detail={"via": options.via, "url": url, "prediction_id": v.prediction_id, "verdict": v.verdict,
                    "http_status": status, "tries": tries, "signature": options.signature if options.via == "webhook" else None})
        return result, record


def settle_rows(client: Any, conn: Connection, mapping: SchemaMapping, rows: Sequence[ProviderRow],
                verdicts: Sequence[Verdict], *, options: SettleOptions, provider_client: Any | None = None,
                provider: ProviderOptions | None = None, audit: AuditLog, run_id: str,
                operator: str) -> SettleResult:
    """Settle each row whose verdict says the provider has the final word, through the app; report what changed."""
    check_options(options)
    if options.via == "webhook" and any(v.verdict == NOT_ASKED for v in verdicts):
        raise ConfigError("a webhook replay carries what the provider says: ask it first (stuckgen reconcile --apply)")
    if options.via == "webhook" and (provider is None or provider_client is None):
        raise ConfigError("--via webhook replays what the provider says now: the provider must be configured")
    if getattr(client, "follow_redirects", False):
        raise ConfigError("the HTTP client must not follow redirects (credentials would follow them)")
    take, left = settleable(verdicts)
    settler = _Settler(client, conn, mapping, rows, options=options, provider_client=provider_client,
                       provider=provider, run_id=run_id, operator=operator)
    stopped = settler.stopped
    results: dict[str, SettleOutcome] = {}
    records: list[AuditRecord] = []

    def collect(v: Verdict, done: tuple[SettleOutcome, AuditRecord | None]) -> None:
        results[v.id] = done[0]
        if done[1] is not None:
            records.append(done[1])

    try:
        run = fan_out(take, settler.one, concurrency=options.concurrency, on_result=collect,
                      halted=lambda: bool(stopped), on_interrupt=settler.stop.set, thread_name="stuckgen-settle")
    finally:
        if records:
            audit.append_alone(conn, records, statement_timeout=options.statement_timeout,
                               lock_timeout=options.lock_timeout)
    if not run.interrupted:
        for v in run.unsent:
            results[v.id] = _outcome(v, "not-sent", reason="not sent: " + (stopped[0] if stopped else "stopped"))
    ordered = tuple(results[v.id] for v in take if v.id in results)
    return SettleResult(run_id=run_id, dry_run=False, via=options.via, url=options.url, audit=audit.where,
                        operator=operator, outcomes=ordered, left=left, stopped=stopped[0] if stopped else None,
                        interrupted=run.interrupted)


def summary_lines(result: SettleResult) -> list[str]:
    """What was settled, what was left alone and why."""
    n = len(result.outcomes)
    lines: list[str] = []
    if result.dry_run:
        lines.append(f"dry run: would settle {n} row(s) through the app ({'sync route' if result.via == 'sync' else 'webhook replay'}"
                     f" at {result.url}); nothing was sent. Pass --yes to act.")
    else:
        settled = sum(1 for o in result.outcomes if o.outcome == "settled")
        lines.append(f"run {result.run_id}: the app settled {settled} of {n} row(s) via {result.via} "
                     f"(operator {result.operator}, audit {result.audit})")
        other = {k: v for k, v in result.counts.items() if k != "settled"}
        if other:
            lines.append("not settled: " + ", ".join(f"{v} {k}" for k, v in other.items()))
        if settled:
            lines.append("the app wrote these changes itself; stuckgen wrote nothing to the rows (nothing to undo)")
    for verdict, count in result.left.items():
        lines.append(f"left alone: {count} {verdict} ({VERDICT_TEXT[verdict]})")
    if result.stopped:
        lines.append(f"stopped: {result.stopped}")
    if result.interrupted:
        lines.append("interrupted: rows not sent are left as they were")
    return lines
