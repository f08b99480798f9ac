"""``retrigger``: call the app's process route the way its own server does, and verify which rows moved.

Bounded concurrency, retries with backoff and jitter, an idempotency key, an
attempt limit across runs (counted from the audit log), and a circuit breaker
that stops at the first 401/403, redirect, or run of unreachable answers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from stuckgen.audit import AuditLog, AuditRecord
from stuckgen.db import Connection, scalar, transaction
from stuckgen.errors import ConfigError
from stuckgen.fanout import fan_out
from stuckgen.http import check_transport, parse_retry_after, read_capped, retry_delay
from stuckgen.remediate.results import OUTCOME_TEXT, Outcome, RemediationResult, RowOutcome, utcnow
from stuckgen.remediate.select import Target, check_remediable, recheck_options, table_name
from stuckgen.scan import ScanOptions, past_deadline_sql, where_stuck
from stuckgen.schema import SchemaMapping
from stuckgen.secrets import fingerprint, scrub

DEFAULT_BODY_TEMPLATE = '{"generationId": "{id}"}'
DEFAULT_IDEMPOTENCY_HEADER = "Idempotency-Key"
BYPASS_HEADER = "x-vercel-protection-bypass"
MAX_EXCERPT = 2048


@dataclass(frozen=True, kw_only=True)
class RetriggerOptions:
    """How ``retrigger_rows`` calls the process route."""

    url: str  # the full endpoint: base URL + route
    scan: ScanOptions  # the stuck predicate re-checked just before each send
    secret: str | None = field(default=None, repr=False)  # credentials: never in a repr or a traceback
    secret_header: str = "x-internal-secret"
    bypass_secret: str | None = field(default=None, repr=False)
    body_template: str = DEFAULT_BODY_TEMPLATE
    idempotency_header: str | None = DEFAULT_IDEMPOTENCY_HEADER
    concurrency: int = 4
    max_attempts: int = 3  # triggers per row across runs, counted from the audit log
    tries: int = 3  # HTTP tries per trigger (timeouts, 429, 5xx)
    backoff: float = 0.5  # first pause between tries; doubles, with jitter
    max_backoff: float = 10.0
    wait: float = 0.0  # verify after waiting up to this long for rows to leave in flight
    poll: float = 1.0
    allow_insecure: bool = False
    statement_timeout: float = 30.0
    lock_timeout: float = 5.0


def render_body(template: str, row_id: str) -> bytes:
    """The request body: the JSON template with every ``{id}`` replaced by the row id."""
    try:
        doc = json.loads(template)
    except ValueError as exc:
        raise ConfigError(f"--body-template: not JSON: {exc}") from None

    def sub(x: Any) -> Any:
        if isinstance(x, str):
            return x.replace("{id}", row_id)
        if isinstance(x, list):
            return [sub(i) for i in x]
        if isinstance(x, dict):
            return {k: sub(v) for k, v in x.items()}
        return x

    if "{id}" not in template:
        raise ConfigError("--body-template: must contain {id} where the row id goes, e.g. "
                          + DEFAULT_BODY_TEMPLATE)
    return json.dumps(sub(doc)).encode("utf-8")


class _Breaker:
    """Opens once, on the first answer that says every further row would fail the same way."""

    def __init__(self, unreachable_limit: int) -> None:
        self._lock = threading.Lock()
        self.reason: str | None = None
        self.kind: str | None = None
        self._unreachable_streak = 0
        self._unreachable_limit = unreachable_limit

    @property
    def open(self) -> bool:
        return self.reason is not None

    def trip(self, kind: str, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.kind, self.reason = kind, reason

    def record(self, outcome: Outcome, url: str) -> None:
        with self._lock:
            self._unreachable_streak = self._unreachable_streak + 1 if outcome == Outcome.UNREACHABLE else 0
            streak = self._unreachable_streak
        if streak >= self._unreachable_limit:
            self.trip("unreachable", f"{streak} rows in a row could not reach {url}; stopped")


def _platform_wall(status: int, headers: Any) -> str | None:
    """An x-vercel-error with which Vercel answers instead of running the app (a paused project, a
    disabled, deleted or blocked deployment): every further row would get the same answer, and retrying
    only delays the run. What it means and what fixes it, from probe.PLATFORM_ERRORS."""
    from stuckgen.probe import PLATFORM_ERRORS

    code = headers.get("x-vercel-error")
    if code not in PLATFORM_ERRORS:
        return None
    meaning, fix = PLATFORM_ERRORS[code]
    return f"{code} ({meaning}). {fix}"


def _auth_diagnosis(status: int, headers: Any, body: str, *, secret_sent: bool, secret_header: str) -> str:
    cookies = " ".join(headers.get_list("set-cookie")) if hasattr(headers, "get_list") else ""
    if "_vercel_sso_nonce" in cookies or "Authentication Required" in body:
        return ("Vercel Deployment Protection answered before the app; send the bypass secret "
                "(VERCEL_AUTOMATION_BYPASS_SECRET / --bypass-secret)")
    if status == 403:
        return "the app answered Forbidden: this caller may not process that row"
    if not secret_sent:
        return f"no secret was sent: set INTERNAL_API_SECRET so stuckgen can send {secret_header}"
    return ("the app rejected the internal secret: the deployment's INTERNAL_API_SECRET is missing, "
            "or differs from yours (another environment or branch, a rotated value, a trailing newline)")


def partition_attempts(targets: Sequence[Target], attempts: dict[str, int], *,
                       max_attempts: int) -> tuple[list[Target], list[RowOutcome]]:
    """Targets still under the attempt limit, and an ``exhausted`` outcome for each of the others."""
    under: list[Target] = []
    exhausted: list[RowOutcome] = []
    for t in targets:
        n = attempts.get(t.id, 0)
        if n >= max_attempts:
            exhausted.append(RowOutcome(id=t.id, outcome=Outcome.EXHAUSTED, ok=False, cls=t.cls, attempt=n,
                                        reason=f"triggered {n} time(s) already (--max-attempts {max_attempts}); "
                                               "leave it for `stuckgen fail`"))
        else:
            under.append(t)
    return under, exhausted


def _check_options(client: Any, mapping: SchemaMapping, options: RetriggerOptions) -> None:
    """ConfigError before anything is sent: limits, redirects, transport, the body template, the table."""
    if options.concurrency < 1:
        raise ConfigError("--concurrency: must be at least 1")
    if options.tries < 1 or options.max_attempts < 1:
        raise ConfigError("--tries and --max-attempts must be at least 1")
    if getattr(client, "follow_redirects", False):
        raise ConfigError("the HTTP client must not follow redirects (the secret would follow them)")
    check_transport(options.url, sends_credentials=bool(options.secret or options.bypass_secret),
                    allow_insecure=options.allow_insecure)
    render_body(options.body_template, "x")  # validate once, before anything is sent
    check_remediable(mapping)


class _Trigger:
    """One retrigger run's sending: each row re-read just before it is sent, triggered with retries, audited.

    The workers share one connection (behind a lock), the breaker and the audit writer.
    """

    def __init__(self, client: Any, conn: Connection, mapping: SchemaMapping, *, options: RetriggerOptions,
                 attempts: dict[str, int], audit: AuditLog, run_id: str, operator: str) -> None:
        self.client, self.conn, self.options, self.attempts = client, conn, options, attempts
        self.audit, self.run_id, self.operator = audit, run_id, operator
        self.table = table_name(mapping)
        self.db_lock = threading.Lock()
        self.stop = threading.Event()
        self.breaker = _Breaker(unreachable_limit=max(3, options.concurrency))
        pred = where_stuck(mapping, recheck_options(options.scan), window=False)
        # A timed-out row is safe only while its worker started longer ago than the function may run:
        # a new worker that took it since the scan makes it live again (past_deadline_sql is NULL or false).
        past = past_deadline_sql(mapping, options.scan) or sql.SQL("NULL::boolean")
        self.reread = sql.SQL("SELECT {st}::text AS status, ({pred}) AS stuck, coalesce({past}, false) AS dead "
                              "FROM {t} g WHERE g.{idc} = %s").format(
            st=mapping.raw("status"), pred=pred, past=past, t=mapping.qualified(),
            idc=sql.Identifier(mapping["id"].column or "id"))
        self.secret_fp = fingerprint(options.secret) if options.secret else None
        self.writer = _AuditWriter(self.flush_audit)

    def flush_audit(self, records: list[AuditRecord]) -> None:
        """Write a group of trigger records (from the writer's thread, so behind the connection's lock)."""
        with self.db_lock:
            self.audit.append_alone(self.conn, records, statement_timeout=self.options.statement_timeout,
                                    lock_timeout=self.options.lock_timeout)

    def recheck(self, t: Target) -> RowOutcome | None:
        """Why the row, re-read just before sending, must not be sent (None: send it)."""
        options = self.options
        with self.db_lock, transaction(self.conn, read_only=True, statement_timeout=options.statement_timeout):
            row = self.conn.cursor(row_factory=dict_row).execute(self.reread, (t.key,)).fetchone()
        if row is None:
            return RowOutcome(id=t.id, outcome=Outcome.SKIPPED_MISSING, ok=False, cls=t.cls, reason="deleted meanwhile")
        if row["status"] not in options.scan.inflight_statuses:
            return RowOutcome(id=t.id, outcome=Outcome.SKIPPED_COMPLETED, ok=False, cls=t.cls,
                              reason=f"left the in-flight statuses meanwhile (now {row['status']!r}); not sent")
        if not row["stuck"]:
            return RowOutcome(id=t.id, outcome=Outcome.SKIPPED_TOUCHED, ok=False, cls=t.cls,
                              reason="showed a sign of life meanwhile; not sent")
        if t.cls == "timed-out" and options.scan.max_duration is not None and not row["dead"]:
            return RowOutcome(id=t.id, outcome=Outcome.SKIPPED_TOUCHED, ok=False, cls=t.cls,
                              reason="a worker started it within the function's maximum duration meanwhile, so it "
                                     "may be running; not sent")
        return None

    def one(self, t: Target) -> RowOutcome:
        """Re-check and trigger one row; audit what was sent."""
        options = self.options
        attempt = self.attempts.get(t.id, 0) + 1
        if self.stop.is_set() or self.breaker.open:
            return RowOutcome(id=t.id, outcome=Outcome.NOT_SENT, ok=False, cls=t.cls,
                              reason="not sent: " + ("interrupted" if self.stop.is_set() else "the circuit breaker is open"))
        skip = self.recheck(t)
        if skip is not None:
            return skip
        key = f"stuckgen-{t.id}-{attempt}"
        outcome, status, tries, reason = _send(self.client, t.id, key, options, self.stop, self.breaker)
        self.breaker.record(outcome, options.url)
        if outcome != Outcome.NOT_SENT:
            detail: dict[str, Any] = {"class": t.cls, "attempt": attempt, "tries": tries, "http_status": status,
                                      "idempotency_key": key if options.idempotency_header else None,
                                      "url": options.url}
            if self.secret_fp:
                detail["secret_fingerprint"] = self.secret_fp
            self.writer.add(AuditRecord(run_id=self.run_id, action="retrigger", row_id=t.id, table=self.table,
                                        at=utcnow(), operator=self.operator, outcome=outcome, detail=detail))
        sent = outcome != Outcome.NOT_SENT  # a row never sent has no attempt and no try
        return RowOutcome(id=t.id, outcome=outcome, ok=outcome == Outcome.ACCEPTED, cls=t.cls, http_status=status,
                          attempt=attempt if sent else None, tries=tries if sent else None, reason=reason)


def _with_verdicts(conn: Connection, mapping: SchemaMapping, ordered: list[RowOutcome], keys: dict[str, Any], *,
                   since: datetime, options: RetriggerOptions) -> tuple[list[RowOutcome], bool]:
    """The accepted rows with what they became since the run began (``verify``); True when Ctrl-C cut it short."""
    accepted = [o.id for o in ordered if o.outcome == Outcome.ACCEPTED]
    try:
        verdicts = verify(conn, mapping, [keys[i] for i in accepted], since=since, options=options)
    except KeyboardInterrupt:
        return ordered, True
    waited = options.wait > 0
    # After waiting, a row whose heartbeat alone moved has not progressed (the route skipped it).
    return [replace(o, verify=verdicts.get(o.id),
                    ok=o.ok and not (waited and verdicts.get(o.id) in ("still-stuck", "touched-only")))
            if o.outcome == Outcome.ACCEPTED else o for o in ordered], False


def retrigger_rows(client: Any, conn: Connection, mapping: SchemaMapping, targets: Sequence[Target], *,
                   options: RetriggerOptions, audit: AuditLog, run_id: str, operator: str,
                   progress: Callable[[int], None] | None = None,
                   rejected: Sequence[RowOutcome] = ()) -> RemediationResult:
    """Trigger the process route for each target; verify afterwards which rows moved.

    Fires production work. ``client`` is an ``httpx.Client`` that must not follow
    redirects. Each row is re-read just before it is sent and skipped when it
    left the in-flight statuses or showed a sign of life; a row is never sent
    twice at once. The first 401/403 (or a redirect) opens the circuit breaker:
    no further row is sent.
    """
    _check_options(client, mapping, options)
    started = utcnow()
    with transaction(conn, read_only=True, statement_timeout=options.statement_timeout):
        attempts = audit.attempts(conn, table=table_name(mapping), row_ids=[t.id for t in targets])
        t0 = scalar(conn, "SELECT now()")
    to_send, exhausted = partition_attempts(targets, attempts, max_attempts=options.max_attempts)
    outcomes: dict[str, RowOutcome] = {o.id: o for o in exhausted}
    trigger = _Trigger(client, conn, mapping, options=options, attempts=attempts, audit=audit, run_id=run_id,
                       operator=operator)

    def collect(t: Target, outcome: RowOutcome) -> None:
        outcomes[t.id] = outcome
        if progress and not trigger.stop.is_set():  # rows collected after Ctrl-C do not move the bar
            progress(1)

    # Submit only as many as can run: rows not yet submitted when the breaker opens are never sent.
    try:
        run = fan_out(to_send, trigger.one, concurrency=options.concurrency, on_result=collect,
                      halted=lambda: trigger.breaker.open or trigger.stop.is_set(), on_interrupt=trigger.stop.set,
                      thread_name="stuckgen-retrigger")
    finally:
        trigger.writer.close()
    for t in run.unsent + run.lost:
        outcomes[t.id] = (RowOutcome(id=t.id, outcome=Outcome.NOT_ATTEMPTED, ok=False, cls=t.cls,
                                     reason=OUTCOME_TEXT[Outcome.NOT_ATTEMPTED]) if run.interrupted else
                          RowOutcome(id=t.id, outcome=Outcome.NOT_SENT, ok=False, cls=t.cls,
                                     reason="not sent: the circuit breaker is open"))
    ordered = [outcomes[t.id] for t in targets if t.id in outcomes]
    interrupted, notes = run.interrupted, []
    if not interrupted and any(o.outcome == Outcome.ACCEPTED for o in ordered):
        ordered, interrupted = _with_verdicts(conn, mapping, ordered, {t.id: t.key for t in targets}, since=t0,
                                              options=options)
        notes = ["verification interrupted"] if interrupted else []
    return RemediationResult(action="retrigger", run_id=run_id, dry_run=False, table=trigger.table, audit=audit.where,
                             operator=operator, outcomes=tuple(ordered) + tuple(rejected), started_at=started,
                             finished_at=utcnow(), batches_done=0, batches_total=0, interrupted=interrupted,
                             stopped=trigger.breaker.reason, stop_kind=trigger.breaker.kind, notes=tuple(notes))


class _AuditWriter:
    """Collects trigger records and writes them together, every ``interval`` seconds and at close.

    One commit per row would serialise the workers on the database's WAL flush;
    a group commit keeps the audit off the critical path. ``close`` writes what is
    left (also after an interrupt).
    """

    def __init__(self, flush: Callable[[list[AuditRecord]], None], *, interval: float = 0.2) -> None:
        self._flush = flush
        self._interval = interval
        self._lock = threading.Lock()
        self._records: list[AuditRecord] = []
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stuckgen-audit", daemon=True)
        self._thread.start()

    def add(self, record: AuditRecord) -> None:
        with self._lock:
            self._records.append(record)

    def _drain(self) -> None:
        with self._lock:
            records, self._records = self._records, []
        if records:
            self._flush(records)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._drain()
            except BaseException as exc:  # reported by close(), in the caller's thread
                self._error = exc
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._drain()


def _send(client: Any, row_id: str, key: str, options: RetriggerOptions, stop: threading.Event,
          breaker: _Breaker) -> tuple[Outcome, int | None, int, str]:
    """One trigger with its retries: (outcome, last HTTP status, tries, reason)."""
    import httpx

    headers = {"content-type": "application/json", "accept": "application/json"}
    if options.secret:
        headers[options.secret_header] = options.secret
    if options.bypass_secret:
        headers[BYPASS_HEADER] = options.bypass_secret
    if options.idempotency_header:
        headers[options.idempotency_header] = key
    body = render_body(options.body_template, row_id)
    last: tuple[Outcome, int | None, str] = (Outcome.NOT_SENT, None, "not sent")
    tries = 0
    for n in range(1, options.tries + 1):
        if breaker.open or (stop.is_set() and n > 1):
            break
        tries = n
        retry_after: float | None = None
        try:
            with client.stream("POST", options.url, content=body, headers=headers) as resp:
                # A server that echoes request headers must not put the secret into our report.
                excerpt = scrub(read_capped(resp.iter_bytes(), MAX_EXCERPT)[0].decode("utf-8", "replace"),
                                [options.secret, options.bypass_secret])
                status = resp.status_code
                resp_headers = resp.headers
        except httpx.TimeoutException:
            last = (Outcome.TIMEOUT, None, "no answer in time (the app treats that as probably started)")
        except httpx.TransportError as exc:
            last = (Outcome.UNREACHABLE, None, f"could not reach the deployment: {type(exc).__name__}")
        else:
            if 200 <= status < 300:
                return Outcome.ACCEPTED, status, n, f"HTTP {status}: accepted"
            if wall := _platform_wall(status, resp_headers):
                breaker.trip("platform", f"Vercel answered for the deployment instead of the app for row {row_id}: "
                                         f"{wall}. Stopped before sending any further row")
                return Outcome.REJECTED, status, n, f"HTTP {status}: {wall.split('.')[0]}"
            if status in (401, 403):
                why = _auth_diagnosis(status, resp_headers, excerpt, secret_sent=bool(options.secret),
                                      secret_header=options.secret_header)
                breaker.trip("auth", f"the deployment answered HTTP {status} for row {row_id}: {why}. "
                                     "Stopped before sending any further row; run `stuckgen probe-auth` for a diagnosis")
                return Outcome.AUTH_REJECTED, status, n, f"HTTP {status}: {why}"
            if 300 <= status < 400:
                loc = resp_headers.get("location", "?")
                breaker.trip("redirect", f"the process route answered HTTP {status} redirecting to {loc}; stuckgen "
                                         "does not follow redirects with the secret: use the final URL as --url")
                return Outcome.REDIRECTED, status, n, f"HTTP {status} to {loc}; not followed"
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(resp_headers.get("retry-after"))
                last = (Outcome.GAVE_UP, status, f"HTTP {status} after {n} tries")
            else:
                return Outcome.REJECTED, status, n, f"HTTP {status}: {excerpt[:160].strip()}"
        if n < options.tries:
            pause = retry_delay(n, base=options.backoff, cap=options.max_backoff, retry_after=retry_after)
            if stop.wait(pause):
                break
    outcome, status, reason = last
    if outcome == Outcome.GAVE_UP:
        reason = f"HTTP {status} after {tries} tries"
    elif outcome in (Outcome.TIMEOUT, Outcome.UNREACHABLE):
        reason = f"{reason} ({tries} tries)"
    return outcome, status, tries, reason


def progress_sql(mapping: SchemaMapping, tz: str) -> sql.Composable:
    """A worker step logged after %(since)s: real progress. Not ``process:start`` nor a skip (the
    process route logs both, and rewrites the heartbeat, for a row it then does not run), not a
    trigger-side step.
    Without a step log nothing proves progress, so this is false."""
    if not mapping.has("step_log"):
        return sql.SQL("false")
    from stuckgen.scan import step_log_array
    from stuckgen.schema import _text_time_sql

    at = _text_time_sql(sql.SQL("(e->>'at')"), tz)
    return sql.SQL(
        "EXISTS (SELECT 1 FROM jsonb_array_elements({a}) e WHERE jsonb_typeof(e) = 'object' "
        "AND NOT (coalesce(e->>'step', '') LIKE ANY (ARRAY['process:skipped%%', 'process:trigger%%', "
        "'process:start', 'generate:%%', ''])) AND {at} > %(since)s)").format(a=step_log_array(mapping), at=at)


def verify(conn: Connection, mapping: SchemaMapping, keys: Sequence[Any], *, since: datetime,
           options: RetriggerOptions) -> dict[str, str]:
    """Per row: its new status when it left in flight; ``progressing`` (a worker step logged since
    the run); ``touched-only`` (its heartbeat moved but no worker step: the route skipped it, which
    is not progress); ``still-stuck``; ``in-flight``.

    With ``options.wait`` > 0, polls until every row left the in-flight statuses or the time is up.
    """
    tz = options.scan.naive_timezone
    inflight = sql.SQL("{} = ANY({})").format(mapping.raw("status"), sql.Literal(list(options.scan.inflight_statuses)))
    q = sql.SQL(
        "SELECT g.{idc}::text AS id, {st}::text AS status, ({inf}) AS inflight, ({pred}) AS stuck, "
        "({prog}) AS progressing, coalesce({hb} > %(since)s, false) AS touched FROM {t} g WHERE g.{idc} = ANY(%(ids)s)"
    ).format(idc=sql.Identifier(mapping["id"].column or "id"), st=mapping.raw("status"), inf=inflight,
             pred=where_stuck(mapping, recheck_options(options.scan), window=False),
             prog=progress_sql(mapping, tz),
             hb=mapping.timestamp("heartbeat", naive_tz=tz) if mapping.has("heartbeat") else sql.SQL("NULL::timestamptz"),
             t=mapping.qualified())
    deadline = time.monotonic() + options.wait
    while True:
        with transaction(conn, read_only=True, statement_timeout=options.statement_timeout):
            rows = conn.cursor(row_factory=dict_row).execute(q, {"since": since, "ids": list(keys)}).fetchall()
        if not any(r["inflight"] for r in rows) or time.monotonic() >= deadline:
            break
        time.sleep(max(0.05, min(options.poll, deadline - time.monotonic())))
    out: dict[str, str] = {}
    for r in rows:
        if not r["inflight"]:
            out[r["id"]] = r["status"]
        elif r["progressing"]:
            out[r["id"]] = "progressing"
        elif r["touched"]:
            out[r["id"]] = "touched-only"
        elif r["stuck"]:
            out[r["id"]] = "still-stuck"
        else:
            out[r["id"]] = "in-flight"
    return out
