"""Notifications on state change: Slack, PagerDuty (Events API v2) and any webhook (Standard Webhooks).

An *incident* is one cause in one table of one database: a stuck class
(``stuck-trigger-failed``) while the check fails on stuck rows, or a probe
finding (``probe:secret-rejected``) of warning or worse. Its ``dedup_key``
(``stuckgen:<db>@<fingerprint>:<schema.table>:<cause>``) is stable across runs,
so each channel hears exactly:

    trigger   the first run that sees the incident
    update    a later run that sees it worse: a higher severity, or at least twice the rows last told
    resolve   the first run that can observe the cause and no longer sees it

and nothing on the runs in between. What each channel was last told is kept
where the audit log lives (its table or its file) as ``notify`` records, one
per delivery: only a delivered event changes the state, so a failed delivery
is tried again on the next run. A probe cause is only resolved by a run that
probed. A notification carries the finding's title, evidence and fix (which
never hold a secret: at most a fingerprint) and is scrubbed of every
configured secret before it leaves; a failed delivery is reported and never
makes a failing check pass.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from stuckgen import __version__
from stuckgen.errors import ConfigError, StuckgenError
from stuckgen.findings import Severity
from stuckgen.secrets import scrub

if TYPE_CHECKING:
    from stuckgen.db import Connection

DEFAULT_PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
NOTIFY_SCHEMA = "stuckgen.notify/v1"
EVENTS = ("trigger", "update", "resolve")
ACTION = "notify"  # the audit log's action for delivery records
MAX_WAIT = 10.0  # a notification is not worth holding a scheduled check longer than this per try
WORSE_FACTOR = 2  # an open incident is "worse" when its rows at least doubled since the last message
USER_AGENT = f"stuckgen/{__version__}"


class NotifyError(StuckgenError):
    """A notification could not be delivered (reported; never changes a failing check into a passing one)."""


# -- what is notified -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Scope:
    """The database and table a check looked at; part of every dedup key. Never holds a password."""

    database: str  # dbname@host:port, for people
    fingerprint: str  # short hash of host, port and dbname, so two servers with one dbname differ
    table: str  # schema.table

    def key(self, cause: str) -> str:
        db = self.database.split("@", 1)[0] or "db"
        return f"stuckgen:{db}@{self.fingerprint}:{self.table}:{cause}"


def scope_for(dsn: str | None, table: str) -> Scope:
    """The scope of a database URL (its host, port and name only) and a qualified table name."""
    params: dict[str, Any] = {}
    if dsn:
        try:
            from psycopg.conninfo import conninfo_to_dict

            params = conninfo_to_dict(dsn)
        except Exception:  # a DSN psycopg cannot read was refused before we got here
            params = {}
    host = str(params.get("host") or "localhost")
    port = str(params.get("port") or "5432")
    dbname = str(params.get("dbname") or params.get("user") or "postgres")
    fp = hashlib.sha256(f"{host}:{port}/{dbname}".encode()).hexdigest()[:8]
    return Scope(database=f"{dbname}@{host}:{port}", fingerprint=fp, table=table)


@dataclass(frozen=True, kw_only=True)
class Incident:
    """One cause seen now, with what a person needs to act on it."""

    cause: str
    severity: Severity
    title: str
    count: int
    evidence: tuple[str, ...] = ()
    fix: str = ""


def class_incidents(by_class: Mapping[str, int]) -> list[Incident]:
    """One incident per stuck class present (the same titles, severities and fixes as doctor's findings)."""
    from stuckgen.doctor.stuck import CLASS_CAUSES, class_severity

    total = sum(by_class.values())
    out = []
    for cls, n in by_class.items():
        if not n:
            continue
        cause, fix = CLASS_CAUSES.get(cls, CLASS_CAUSES["unknown"])
        out.append(Incident(cause=f"stuck-{cls}", severity=class_severity(cls), count=int(n),
                            title=f"{n} generations stuck as {cls}: {cause}",
                            evidence=(f"{n} of {total} stuck rows are {cls}",), fix=fix))
    return out


def check_incidents(result: Any) -> tuple[list[Incident], Callable[[str], bool]]:
    """The incidents of a check result, and which causes this run could observe (only those may resolve)."""
    report = result.report
    stuck_failed = any(not o.passed and o.name in ("stuck-count", "stuck-rate") for o in result.outcomes)
    out: list[Incident] = []
    if stuck_failed:
        ranked = {r.finding.id: r.finding for r in report.ranked}
        for inc in class_incidents(dict(report.summary.by_class) if report.summary is not None else {}):
            f = ranked.get(inc.cause)
            out.append(inc if f is None else Incident(cause=inc.cause, severity=f.severity, title=f.title,
                                                      count=inc.count, evidence=f.evidence, fix=f.fix))
        older = getattr(report.summary, "stuck_before_window", None) or 0
        f = ranked.get("stuck-before-window")
        if older and f is not None:  # rows stuck since before the window are part of the incident too
            out.append(Incident(cause=f.id, severity=f.severity, title=f.title, count=int(older),
                                evidence=f.evidence, fix=f.fix))
    for f in report.probe_findings:
        if f.severity >= Severity.WARNING:
            out.append(Incident(cause=f"probe:{f.id}", severity=f.severity, count=1,
                                title=f.title if not f.target or f.target in f.title else f"{f.title} ({f.target})",
                                evidence=f.evidence, fix=f.fix))
    probed = report.probe_matrix is not None

    def observed(cause: str) -> bool:
        return probed or not cause.startswith("probe:")

    return out, observed


# -- state ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Told:
    """What one channel was last told about one incident."""

    key: str
    channel: str
    event: str
    severity: Severity
    count: int

    @property
    def open(self) -> bool:
        return self.event != "resolve"


@dataclass(frozen=True, kw_only=True)
class Event:
    """One message to one channel."""

    kind: str  # trigger | update | resolve
    channel: str
    key: str
    cause: str
    severity: Severity
    title: str
    count: int
    evidence: tuple[str, ...] = ()
    fix: str = ""
    scope: Scope
    report: Mapping[str, Any] | None = None
    message_id: str = field(default_factory=lambda: "msg_" + uuid.uuid4().hex)


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """The result of sending one event."""

    event: Event
    ok: bool
    error: str | None = None
    status: int | None = None


def plan(incidents: Sequence[Incident], told: Mapping[tuple[str, str], Told], channels: Iterable[str], *,
         scope: Scope, observed: Callable[[str], bool] = lambda _c: True,
         report: Mapping[str, Any] | None = None) -> list[Event]:
    """The events a run sends: trigger new incidents, update worse ones, resolve cleared ones. Pure."""
    events: list[Event] = []
    now = {scope.key(i.cause): i for i in incidents}
    prefix = scope.key("")
    for ch in channels:
        for key, inc in now.items():
            last = told.get((key, ch))
            kind = None
            if last is None or not last.open:
                kind = "trigger"
            elif inc.severity > last.severity or (inc.count > last.count and inc.count >= WORSE_FACTOR * max(last.count, 1)):
                kind = "update"
            if kind:
                events.append(Event(kind=kind, channel=ch, key=key, cause=inc.cause, severity=inc.severity,
                                    title=inc.title, count=inc.count, evidence=inc.evidence, fix=inc.fix,
                                    scope=scope, report=report))
        for (key, c), last in sorted(told.items()):
            if c != ch or not last.open or key in now or not key.startswith(prefix):
                continue
            cause = key[len(prefix):]
            if not observed(cause):
                continue
            events.append(Event(kind="resolve", channel=ch, key=key, cause=cause, severity=last.severity,
                                title=f"resolved: {cause} in {scope.table} is no longer seen", count=0,
                                scope=scope, report=report))
    return events


class StateStore:
    """What each channel was last told, kept as ``notify`` records in the audit log (its table or file)."""

    def __init__(self, audit: Any, *, operator: str) -> None:
        self.audit = audit
        self.operator = operator

    def load(self, conn: Connection, scope: Scope) -> dict[tuple[str, str], Told]:
        out: dict[tuple[str, str], Told] = {}
        for r in self.audit.last_notifications(conn, table=scope.table):
            d = r.detail
            try:
                sev = Severity[str(d.get("severity", "error")).upper()]
            except KeyError:
                sev = Severity.ERROR
            out[(r.row_id, str(d.get("channel")))] = Told(key=r.row_id, channel=str(d.get("channel")),
                                                          event=str(d.get("event")), severity=sev,
                                                          count=int(d.get("count") or 0))
        return out

    def save(self, conn: Connection, deliveries: Sequence[Delivery]) -> None:
        from stuckgen.audit import AuditRecord, new_run_id

        if not deliveries:
            return
        run_id = new_run_id()
        at = datetime.now(timezone.utc)
        records = [AuditRecord(run_id=run_id, action=ACTION, row_id=d.event.key, table=d.event.scope.table, at=at,
                               operator=self.operator, outcome="sent" if d.ok else "failed",
                               detail={"channel": d.event.channel, "event": d.event.kind, "cause": d.event.cause,
                                       "severity": d.event.severity.label, "count": d.event.count,
                                       **({"error": d.error} if d.error else {})})
                   for d in deliveries]
        self.audit.append(conn, records)


# -- channels -------------------------------------------------------------------------------------


def check_url(url: str, *, option: str, allow_insecure: bool) -> str:
    """A notification URL: http(s) with a host; plain HTTP only to loopback unless allowed (stuckgen.http's rule)."""
    from stuckgen.http import check_transport

    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"{option}: not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{option}: must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise ConfigError(f"{option}: remove the user:password@ part")
    # The URL is a credential itself (a Slack webhook path, a ping id): it is never quoted in a message.
    check_transport(f"{parts.scheme}://{parts.netloc}/", sends_credentials=True, allow_insecure=allow_insecure,
                    what=f"the {option} notification (its URL is a credential)")
    return url.strip()


def _where(url: str) -> str:
    """A URL for messages: scheme and host only (webhook paths are credentials)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}" + (f":{p.port}" if p.port else "")


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 (after an optional ``whsec_`` prefix), as the spec says."""
    import base64
    import binascii

    body = secret.strip()
    body = body[len("whsec_"):] if body.startswith("whsec_") else body
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ConfigError("STUCKGEN_NOTIFY_WEBHOOK_SECRET: not a Standard Webhooks secret (base64, optionally "
                          "prefixed whsec_)", hint="generate one with: echo whsec_$(openssl rand -base64 32)")
    return key


def sign(key: bytes, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    import base64
    import hmac

    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


class Channel(ABC):
    name: str

    def __init__(self, url: str) -> None:
        self.url = url

    @abstractmethod
    def request(self, event: Event) -> tuple[dict[str, str], bytes]:
        """Headers and body for ``event``."""

    def accepted(self, status: int, body: bytes) -> bool:
        return 200 <= status < 300

    def __repr__(self) -> str:  # the URL may be a credential (Slack webhooks): never in a repr
        return f"{type(self).__name__}({_where(self.url)})"


def _text(e: Event) -> str:
    head = {"trigger": "TRIGGERED", "update": "WORSE", "resolve": "RESOLVED"}[e.kind]
    lines = [f"[stuckgen] {head} [{e.severity.label}] {e.title}",
             f"where: {e.scope.table} in {e.scope.database}"]
    lines += [f"- {x}" for x in e.evidence[:5]]
    if e.fix and e.kind != "resolve":
        lines.append(f"fix: {e.fix}")
    return "\n".join(lines)


class SlackChannel(Channel):
    """A Slack incoming webhook: ``{"text": ...}``; Slack answers 200 ``ok``."""

    name = "slack"

    def request(self, event: Event) -> tuple[dict[str, str], bytes]:
        return {"content-type": "application/json"}, json.dumps({"text": _text(event)}).encode()


PAGERDUTY_SEVERITY = {Severity.CRITICAL: "critical", Severity.ERROR: "error", Severity.WARNING: "warning",
                      Severity.INFO: "info"}


class PagerDutyChannel(Channel):
    """PagerDuty Events API v2: trigger (an update is a trigger with the same dedup_key) and resolve."""

    name = "pagerduty"

    def __init__(self, url: str, routing_key: str) -> None:
        super().__init__(url)
        self._routing_key = routing_key

    def request(self, event: Event) -> tuple[dict[str, str], bytes]:
        doc: dict[str, Any] = {"routing_key": self._routing_key, "dedup_key": event.key,
                               "event_action": "resolve" if event.kind == "resolve" else "trigger"}
        if event.kind != "resolve":
            doc["client"] = "stuckgen"
            doc["payload"] = {
                "summary": event.title[:1024], "source": event.scope.database, "severity": PAGERDUTY_SEVERITY[event.severity],
                "component": event.scope.table, "group": "stuckgen", "class": event.cause,
                "custom_details": {"rows": event.count, "evidence": list(event.evidence), "fix": event.fix,
                                   "update": event.kind == "update"},
            }
        return {"content-type": "application/json"}, json.dumps(doc).encode()

    def accepted(self, status: int, body: bytes) -> bool:
        return status == 202


class WebhookChannel(Channel):
    """Any endpoint: the event and the JSON report as the body, signed the Standard Webhooks way when keyed."""

    name = "webhook"

    def __init__(self, url: str, key: bytes | None) -> None:
        super().__init__(url)
        self._key = key

    def request(self, event: Event) -> tuple[dict[str, str], bytes]:
        ts = int(time.time())
        body = json.dumps({
            "schema": NOTIFY_SCHEMA,
            "type": {"trigger": "incident.triggered", "update": "incident.updated", "resolve": "incident.resolved"}[event.kind],
            "timestamp": datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z"),
            "data": {"dedup_key": event.key, "cause": event.cause, "severity": event.severity.label,
                     "title": event.title, "rows": event.count, "evidence": list(event.evidence), "fix": event.fix,
                     "database": event.scope.database, "table": event.scope.table, "report": event.report},
        }, default=str).encode()
        headers = {"content-type": "application/json", "webhook-id": event.message_id, "webhook-timestamp": str(ts)}
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, msg_id=event.message_id, timestamp=ts, body=body)
        return headers, body


def channels_from(settings: Any, *, allow_insecure: bool) -> list[Channel]:
    """The configured channels; checked before anything runs (a bad URL is a usage error, exit 2)."""
    out: list[Channel] = []
    v = settings.values
    if v.get("slack_webhook_url"):
        out.append(SlackChannel(check_url(v["slack_webhook_url"], option="--slack-webhook",
                                          allow_insecure=allow_insecure)))
    if v.get("pagerduty_routing_key"):
        url = check_url(v.get("pagerduty_events_url") or DEFAULT_PAGERDUTY_EVENTS_URL,
                        option="STUCKGEN_PAGERDUTY_EVENTS_URL", allow_insecure=allow_insecure)
        out.append(PagerDutyChannel(url, v["pagerduty_routing_key"]))
    if v.get("notify_webhook_url"):
        secret = v.get("notify_webhook_secret")
        out.append(WebhookChannel(check_url(v["notify_webhook_url"], option="--notify-webhook",
                                            allow_insecure=allow_insecure),
                                  webhook_key(secret) if secret else None))
    return out


def deliver(client: Any, channels: Sequence[Channel], events: Sequence[Event], *, secrets: Sequence[str] = (),
            tries: int = 3, backoff: float = 0.5) -> list[Delivery]:
    """Send each event to its channel: retries on timeouts, 429 and 5xx (Retry-After, at most 10 s)."""
    import httpx

    from stuckgen.http import parse_retry_after, retry_delay

    by_name = {c.name: c for c in channels}
    out: list[Delivery] = []
    for e in events:
        ch = by_name[e.channel]
        headers, body = ch.request(e)
        # Last line of defence: the notification text is ours, but a configured secret must never leave.
        text = body.decode("utf-8")
        scrubbed = scrub(text, list(secrets)) if e.channel != "pagerduty" else _scrub_except_routing_key(text, secrets, ch)
        if scrubbed != text:
            body = scrubbed.encode("utf-8")
            if isinstance(ch, WebhookChannel):
                headers, body = _resign(ch, e, body, headers)
        headers = {**headers, "user-agent": USER_AGENT}
        status, error = None, None
        for attempt in range(1, tries + 1):
            try:
                r = client.post(ch.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__} calling {_where(ch.url)}"
            else:
                status = r.status_code
                if ch.accepted(status, r.content):
                    error = None
                    break
                error = f"{_where(ch.url)} answered HTTP {status}" + (f": {_excerpt(r.text, secrets)}" if r.text else "")
                if status != 429 and status < 500:
                    break
                if attempt < tries:
                    time.sleep(min(MAX_WAIT, retry_delay(attempt, base=backoff, cap=MAX_WAIT,
                                                         retry_after=parse_retry_after(r.headers.get("retry-after")))))
                continue
            if attempt < tries and backoff:
                time.sleep(retry_delay(attempt, base=backoff, cap=MAX_WAIT, retry_after=None))
        out.append(Delivery(event=e, ok=error is None, error=error, status=status))
    return out


def _scrub_except_routing_key(text: str, secrets: Sequence[str], ch: Channel) -> str:
    # The routing key is how PagerDuty's API is addressed: the one secret that must be in its body.
    key = getattr(ch, "_routing_key", None)
    return scrub(text, [s for s in secrets if s != key])


def _resign(ch: WebhookChannel, e: Event, body: bytes, headers: dict[str, str]) -> tuple[dict[str, str], bytes]:
    if ch._key is None:
        return headers, body
    ts = int(headers["webhook-timestamp"])
    return {**headers, "webhook-signature": sign(ch._key, msg_id=e.message_id, timestamp=ts, body=body)}, body


def _excerpt(text: str, secrets: Sequence[str]) -> str:
    one = " ".join(text.split())
    return scrub(one[:120] + ("…" if len(one) > 120 else ""), list(secrets))


@dataclass(frozen=True, kw_only=True)
class NotifyResult:
    deliveries: tuple[Delivery, ...] = ()
    state_error: str | None = None

    @property
    def failed(self) -> list[str]:
        msgs = [f"{d.event.channel} {d.event.kind} {d.event.cause}: {d.error}" for d in self.deliveries if not d.ok]
        if self.state_error:
            msgs.append(f"notification state not saved: {self.state_error}")
        return msgs

    def as_dict(self) -> dict[str, Any]:
        return {"sent": [{"channel": d.event.channel, "event": d.event.kind, "dedup_key": d.event.key,
                          "ok": d.ok, **({"error": d.error} if d.error else {})} for d in self.deliveries],
                "state_error": self.state_error}


def notify(conn: Connection, client: Any, *, channels: Sequence[Channel], store: StateStore, scope: Scope,
           incidents: Sequence[Incident], observed: Callable[[str], bool] = lambda _c: True,
           report: Mapping[str, Any] | None = None, secrets: Sequence[str] = (),
           write_tx: Callable[[], Any], read_tx: Callable[[], Any], backoff: float = 0.5) -> NotifyResult:
    """Load what each channel was told, send what changed, save what was delivered."""
    if not channels:
        return NotifyResult()
    try:
        with read_tx():
            told = store.load(conn, scope)
    except StuckgenError as exc:
        # Without the state every open incident would page again each run: say so, and send nothing.
        return NotifyResult(state_error=f"cannot read it from the audit log ({store.audit.where}): {exc.message}")
    events = plan(incidents, told, [c.name for c in channels], scope=scope, observed=observed, report=report)
    deliveries = deliver(client, channels, events, secrets=secrets, backoff=backoff)
    state_error = None
    try:
        with write_tx():
            store.audit.prepare(conn)
            store.save(conn, deliveries)
    except StuckgenError as exc:
        state_error = f"{store.audit.where}: {exc.message}"
    return NotifyResult(deliveries=tuple(deliveries), state_error=state_error)
