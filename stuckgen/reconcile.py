"""Ask the provider about stuck rows that carry its prediction id, and give each row one verdict.

A row handed to the model provider (``parameters.replicatePredictionId`` in the
incident app) waits for the provider's webhook. Only the provider knows how that
prediction ended; ``reconcile`` asks it (read-only, bounded concurrency,
timeouts, 429 with Retry-After) and names what happened:

    provider-succeeded-callback-lost   the provider finished with outputs; our row never heard
    provider-failed-callback-lost      the provider failed it; our row never heard
    provider-canceled                  canceled at the provider
    provider-still-running             not stuck on our side: the provider is still at it
    provider-unknown-prediction        404: wrong account or token, or an id never created
    provider-unreachable               no readable answer (timeouts, 429/5xx past the tries, token refused)

No Typer, no rich: the CLI renders what these functions return.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import sql

from stuckgen.durations import format_duration, iso_utc
from stuckgen.errors import ExitCode, SchemaError
from stuckgen.fanout import fan_out
from stuckgen.replicate import ProviderAnswer, ProviderOptions, get_prediction
from stuckgen.scan import DEFAULT_RULES, Rule, ScanOptions
from stuckgen.schema import SchemaMapping

if TYPE_CHECKING:
    from stuckgen.db import Connection

RESULT_SCHEMA = "stuckgen.reconcile/v1"

SUCCEEDED = "provider-succeeded-callback-lost"
FAILED = "provider-failed-callback-lost"
CANCELED = "provider-canceled"
RUNNING = "provider-still-running"
UNKNOWN = "provider-unknown-prediction"
UNREACHABLE = "provider-unreachable"
VERDICTS: tuple[str, ...] = (SUCCEEDED, FAILED, CANCELED, RUNNING, UNKNOWN, UNREACHABLE)

# What each verdict means for the row, said once for every format.
VERDICT_TEXT: dict[str, str] = {
    SUCCEEDED: "the provider finished with outputs; the callback never settled our row",
    FAILED: "the provider failed the prediction; the callback never settled our row",
    CANCELED: "the prediction was canceled at the provider; our row never heard",
    RUNNING: "not stuck on our side: the provider is still running it",
    UNKNOWN: "the provider knows no such prediction (another account or token, or never created)",
    UNREACHABLE: "no readable answer from the provider",
}
# The rows a settle run may take: the provider has the final word and our row lacks it.
SETTLEABLE: tuple[str, ...] = (SUCCEEDED, FAILED, CANCELED)


@dataclass(frozen=True, kw_only=True)
class ProviderRow:
    """A stuck row and the provider's prediction id it carries."""

    id: str
    key: Any
    cls: str | None
    prediction_id: str


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The provider's side of one row."""

    id: str
    cls: str | None
    prediction_id: str
    verdict: str
    detail: str
    provider_status: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    completed_ago_seconds: float | None = None
    error: str | None = None
    outputs: int | None = None
    http_status: int | None = None
    tries: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "class": self.cls, "prediction_id": self.prediction_id, "verdict": self.verdict,
                "detail": self.detail, "provider_status": self.provider_status,
                "provider_created_at": iso_utc(self.created_at), "provider_started_at": iso_utc(self.started_at),
                "provider_completed_at": iso_utc(self.completed_at),
                "completed_ago_seconds": None if self.completed_ago_seconds is None else round(self.completed_ago_seconds, 3),
                "provider_error": self.error, "outputs": self.outputs, "http_status": self.http_status,
                "tries": self.tries}


@dataclass(frozen=True, kw_only=True)
class ReconcileResult:
    """Every provider row's verdict, and what was left out."""

    verdicts: tuple[Verdict, ...]
    provider_url: str
    checked_at: datetime
    stuck_rows: int  # stuck rows selected
    without_prediction: int  # ... of which carry no prediction id (not asked)
    stopped: str | None = None  # why the remaining rows were not asked
    interrupted: bool = False

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(v.verdict for v in self.verdicts)
        return {k: c[k] for k in VERDICTS if c[k]}

    @property
    def nothing_answered(self) -> bool:
        return bool(self.verdicts) and all(v.verdict == UNREACHABLE for v in self.verdicts)

    @property
    def exit_code(self) -> ExitCode:
        """3 when the provider answered nothing, 1 when a row needs action, 0 when every row is still running."""
        if self.nothing_answered:
            return ExitCode.UNREACHABLE
        if any(v.verdict != RUNNING for v in self.verdicts):
            return ExitCode.FINDINGS
        return ExitCode.OK

    def onset(self) -> tuple[datetime, int] | None:
        """The earliest provider completion among lost callbacks, and how many there are."""
        lost = [v.completed_at for v in self.verdicts if v.verdict in (SUCCEEDED, FAILED) and v.completed_at]
        return (min(lost), len(lost)) if lost else None

    def as_dict(self, *, rows: bool = True) -> dict[str, Any]:
        onset = self.onset()
        d: dict[str, Any] = {
            "schema": RESULT_SCHEMA, "provider_url": self.provider_url, "checked_at": iso_utc(self.checked_at),
            "stuck_rows": self.stuck_rows, "without_prediction": self.without_prediction,
            "asked": len(self.verdicts), "counts": self.counts, "stopped": self.stopped,
            "interrupted": self.interrupted,
            "lost_callbacks_since": iso_utc(onset[0]) if onset else None,
        }
        if rows:
            d["rows"] = [v.as_dict() for v in self.verdicts]
        return d


# -- selection --------------------------------------------------------------------------------------


def provider_rows(conn: Connection, mapping: SchemaMapping, options: ScanOptions, *, ids: Sequence[str] = (),
                  rules: Sequence[Rule] = DEFAULT_RULES) -> tuple[list[ProviderRow], int, tuple[Any, ...]]:
    """Stuck rows (all, or the given ids) with their prediction ids: (rows, stuck without an id, rejected ids).

    Runs inside the caller's read-only transaction.
    """
    from stuckgen.remediate import select_rows

    if not mapping.has("webhook"):
        raise SchemaError(
            f"no provider prediction id found in {mapping.table}: map it, e.g. "
            "--map webhook=parameters.replicatePredictionId")
    selection = select_rows(conn, mapping, options, ids=tuple(ids), all_stuck=not ids, rules=rules)
    rows, without = prediction_ids(conn, mapping, selection.targets)
    return rows, len(without), selection.rejected


def prediction_ids(conn: Connection, mapping: SchemaMapping, targets: Sequence[Any]) -> tuple[list[ProviderRow], list[str]]:
    """The selected targets that carry a prediction id (as ProviderRows), and the ids of those that do not."""
    if not targets:
        return [], []
    if not mapping.has("webhook"):
        raise SchemaError(
            f"no provider prediction id found in {mapping.table}: map it, e.g. "
            "--map webhook=parameters.replicatePredictionId")
    q = sql.SQL("SELECT g.{idc}::text, {pid} FROM {t} g WHERE g.{idc} = ANY(%s)").format(
        idc=sql.Identifier(mapping["id"].column or "id"), pid=mapping.text("webhook"), t=mapping.qualified())
    pids = {r[0]: r[1] for r in conn.execute(q, ([t.key for t in targets],)).fetchall()}
    rows = [ProviderRow(id=t.id, key=t.key, cls=t.cls, prediction_id=pids[t.id].strip())
            for t in targets if pids.get(t.id) and pids[t.id].strip()]
    have = {r.id for r in rows}
    return rows, [t.id for t in targets if t.id not in have]


# -- verdicts ------------------------------------------------------------------------------------------


def verdict_for(row: ProviderRow, ans: ProviderAnswer, *, now: datetime) -> Verdict:
    """The one verdict the provider's answer gives this row."""
    base: dict[str, Any] = dict(id=row.id, cls=row.cls, prediction_id=row.prediction_id, http_status=ans.http_status,
                                tries=ans.tries, provider_status=ans.status, created_at=ans.created_at,
                                started_at=ans.started_at, completed_at=ans.completed_at, error=ans.error,
                                outputs=ans.output_count)
    ago = (now - ans.completed_at).total_seconds() if ans.completed_at else None
    base["completed_ago_seconds"] = ago
    when = f"{ans.completed_at:%Y-%m-%d %H:%M:%SZ} ({format_duration(max(ago or 0, 0))} ago)" if ans.completed_at else "at an unknown time"
    if ans.status == "succeeded":
        n = ans.output_count
        outs = f"{n} output(s)" if n is not None else "outputs"
        return Verdict(verdict=SUCCEEDED, detail=f"succeeded at the provider {when} with {outs}; our row never heard",
                       **base)
    if ans.status == "failed":
        err = (ans.error or "no error given").splitlines()[0][:160]
        return Verdict(verdict=FAILED, detail=f"failed at the provider {when}: {err}", **base)
    if ans.status == "canceled":
        return Verdict(verdict=CANCELED, detail=f"canceled at the provider {when}", **base)
    if ans.status in ("starting", "processing"):
        since = ans.started_at or ans.created_at
        s = (f"since {since:%Y-%m-%d %H:%M:%SZ} ({format_duration(max((now - since).total_seconds(), 0))})"
             if since else "since an unknown time")
        return Verdict(verdict=RUNNING, detail=f"{ans.status} at the provider {s}", **base)
    if ans.http_status == 404:
        return Verdict(verdict=UNKNOWN, detail="HTTP 404: the provider knows no such prediction (another account or "
                                               "token, or an id that was never created)", **base)
    return Verdict(verdict=UNREACHABLE, detail=ans.problem or "no answer", **base)


def reconcile_rows(client: Any, rows: Sequence[ProviderRow], *, options: ProviderOptions, now: datetime,
                   stuck_rows: int, without_prediction: int,
                   progress: Callable[[int], None] | None = None) -> ReconcileResult:
    """Ask the provider about every row, ``options.concurrency`` at a time; read-only.

    The first answer refusing the token stops the run (every further row would be
    refused the same way): those rows are ``provider-unreachable`` with the reason.
    """
    from stuckgen.http import check_transport

    check_transport(options.api_url, sends_credentials=bool(options.token), allow_insecure=options.allow_insecure,
                    what="the provider token")
    stop = threading.Event()
    stopped: list[str] = []
    verdicts: dict[str, Verdict] = {}

    def one(row: ProviderRow) -> Verdict:
        if stopped:
            return Verdict(id=row.id, cls=row.cls, prediction_id=row.prediction_id, verdict=UNREACHABLE,
                           detail="not asked: " + stopped[0])
        ans = get_prediction(client, row.prediction_id, options, stop=stop)
        if ans.auth_refused and not stopped:
            stopped.append(ans.problem or "the provider refused the token")
        return verdict_for(row, ans, now=now)

    def collect(row: ProviderRow, verdict: Verdict) -> None:
        verdicts[row.id] = verdict
        if progress and not stop.is_set():  # rows collected after Ctrl-C do not move the bar
            progress(1)

    run = fan_out(rows, one, concurrency=options.concurrency, on_result=collect, on_interrupt=stop.set,
                  thread_name="stuckgen-reconcile")
    ordered = tuple(verdicts[r.id] for r in rows if r.id in verdicts)
    return ReconcileResult(verdicts=ordered, provider_url=options.api_url, checked_at=now, stuck_rows=stuck_rows,
                           without_prediction=without_prediction, stopped=stopped[0] if stopped else None,
                           interrupted=run.interrupted)


# -- doctor and show: the provider as evidence ------------------------------------------------------


def rows_by_ids(conn: Connection, mapping: SchemaMapping, stuck: Sequence[Any]) -> list[ProviderRow]:
    """ProviderRows for scanned StuckRows (by their text ids) that carry a prediction id."""
    from stuckgen.remediate import Target, coerce_id

    targets = []
    for r in stuck:
        try:
            targets.append(Target(id=r.id, key=coerce_id(mapping, r.id), cls=r.cls))
        except ValueError:
            continue
    rows, _ = prediction_ids(conn, mapping, targets)
    return rows


@dataclass(frozen=True, kw_only=True)
class WebhookProbe:
    """What the app's webhook route answered a callback for a prediction that matches no row."""

    url: str
    http_status: int | None
    kind: str  # accepted, signature-rejected, protected, redirected, missing, failing, unreachable, other
    detail: str
    signed: str | None  # the scheme the probe was signed with, None when unsigned


def probe_webhook(client: Any, base_url: str, *, route: str = "/api/webhooks/replicate", secret: str | None,
                  bypass_secret: str | None = None) -> WebhookProbe:
    """POST a callback for a prediction id that matches no row, signed as Replicate signs when the secret is known.

    Safe by construction: the app looks the row up by prediction id, finds none and
    acknowledges; the status ``processing`` would not settle a row even if one matched.
    """
    import secrets as _secrets

    import httpx

    from stuckgen.replicate import webhook_headers
    from stuckgen.secrets import scrub

    url = base_url.rstrip("/") + route
    body = json.dumps({"id": "stuckgenprobe" + _secrets.token_hex(7), "status": "processing", "output": None,
                       "error": None}, separators=(",", ":")).encode()
    headers = {"content-type": "application/json", "user-agent": "stuckgen-webhook-probe"}
    if secret:
        headers.update(webhook_headers("standard", secret, body))
    if bypass_secret:
        headers["x-vercel-protection-bypass"] = bypass_secret
    signed = "standard" if secret else None
    try:
        resp = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return WebhookProbe(url=url, http_status=None, kind="unreachable", detail=type(exc).__name__, signed=signed)
    status = resp.status_code
    text = scrub(resp.text[:300], [secret, bypass_secret])
    if 200 <= status < 300:
        return WebhookProbe(url=url, http_status=status, kind="accepted", signed=signed,
                            detail="the route accepted the callback" + (" signed as Replicate signs" if secret else
                                                                        " (unsigned)"))
    if status == 401 and ("_vercel_sso_nonce" in resp.headers.get("set-cookie", "") or "Authentication Required" in text):
        return WebhookProbe(url=url, http_status=status, kind="protected", signed=signed,
                            detail="Vercel Deployment Protection answers before the app: the provider cannot get in")
    if status == 401:
        return WebhookProbe(url=url, http_status=status, kind="signature-rejected", signed=signed,
                            detail=f"HTTP 401 {text.strip()[:80]}")
    if 300 <= status < 400:
        return WebhookProbe(url=url, http_status=status, kind="redirected", signed=signed,
                            detail=f"HTTP {status} to {resp.headers.get('location', '?')}: webhook senders do not follow")
    if status == 404:
        return WebhookProbe(url=url, http_status=status, kind="missing", signed=signed, detail="HTTP 404: no route here")
    if status >= 500:
        return WebhookProbe(url=url, http_status=status, kind="failing", signed=signed, detail=f"HTTP {status}")
    return WebhookProbe(url=url, http_status=status, kind="other", signed=signed, detail=f"HTTP {status}")


def provider_findings(result: ReconcileResult, probe: WebhookProbe | None, *, stuck_total: int) -> list[tuple[float, Any]]:
    """(support, Finding) pairs: the lost-callback incident with its likely causes, and what the probe confirmed."""
    from stuckgen.findings import Finding, Severity

    out: list[tuple[float, Any]] = []
    counts = result.counts
    lost = counts.get(SUCCEEDED, 0) + counts.get(FAILED, 0)
    share = lost / stuck_total if stuck_total else 0.0
    onset = result.onset()
    if lost:
        ev = [f"{result.counts.get(SUCCEEDED, 0)} succeeded and {counts.get(FAILED, 0)} failed at the provider, "
              f"{len(result.verdicts)} provider rows asked"]
        if onset:
            ev.append(f"first lost callback: the provider finished at {onset[0]:%Y-%m-%d %H:%M:%SZ}")
        ev.append("e.g. " + ", ".join([v.id for v in result.verdicts if v.verdict in (SUCCEEDED, FAILED)][:3]))
        ev.append("likely causes: the webhook route rejects the provider's signature (the incident app verifies "
                  "t=<ts>,v1=<hex>; Replicate signs v1,<base64> over id.timestamp.body); the webhook URL redirects "
                  "or sits behind Deployment Protection; the handler fails (5xx)")
        confirm = (f"the webhook probe of {probe.url}: {probe.detail}" if probe is not None else
                   "confirm with `stuckgen doctor --url URL` and REPLICATE_WEBHOOK_SECRET set: it posts a signed "
                   "callback for a prediction that matches no row and reads the answer")
        ev.append(confirm)
        out.append((0.5 + share, Finding(
            id="lost-callback", severity=Severity.ERROR,
            title=f"{lost} provider callbacks were lost: the provider finished these generations and the app never heard",
            evidence=tuple(ev),
            fix="fix the webhook route (see the probe), then settle the rows through the app: "
                "`stuckgen reconcile --apply --url URL` (dry run), then `--yes`")))
    if probe is not None and lost:
        causes = {
            "signature-rejected": ("webhook-signature-rejected",
                                   "the app's webhook route rejects a callback signed the way Replicate signs"
                                   if probe.signed else "the app's webhook route requires a signature this probe did not have",
                                   "make the route verify Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature "
                                   "'v1,<base64>' keyed with the base64 part of whsec_...), or unset REPLICATE_WEBHOOK_SECRET "
                                   "until it does; then `stuckgen reconcile --apply --via webhook --webhook-signature app`"),
            "protected": ("webhook-protected", "the webhook route is behind Vercel Deployment Protection",
                          "register a webhook URL on a public domain, or exempt the route from protection"),
            "redirected": ("webhook-redirected", "the webhook URL redirects; the provider does not follow redirects",
                           "register the final URL (https, the canonical host) as the webhook"),
            "missing": ("webhook-route-missing", "the webhook route does not exist at this URL",
                        "deploy the route, or register the URL where it lives"),
            "failing": ("webhook-handler-failing", "the webhook handler fails (5xx)",
                        "read the function's logs for /api/webhooks/replicate"),
        }
        c = causes.get(probe.kind)
        if c is not None:
            out.append((1.0 + share, Finding(
                id=c[0], severity=Severity.ERROR, title=c[1], target=probe.url,
                evidence=(f"POST {probe.url} ({'signed ' + probe.signed if probe.signed else 'unsigned'}, a prediction "
                          f"id that matches no row): {probe.detail}",
                          f"{lost} rows lost their callback"),
                fix=c[2])))
    if counts.get(UNKNOWN):
        out.append((0.2, Finding(
            id="provider-unknown-prediction", severity=Severity.WARNING,
            title=f"{counts[UNKNOWN]} provider rows name predictions the provider does not know",
            evidence=("HTTP 404 for their prediction ids",),
            fix="check that REPLICATE_API_TOKEN belongs to the account the app uses")))
    if result.nothing_answered:
        out.append((0.1, Finding(
            id="provider-unreachable", severity=Severity.INFO, title="the provider could not be asked",
            evidence=(result.stopped or (result.verdicts[0].detail if result.verdicts else "no answer"),),
            fix="check REPLICATE_API_TOKEN and STUCKGEN_REPLICATE_API_URL")))
    return out
