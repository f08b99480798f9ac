"""Select stuck rows and classify why each is stuck; classes are data (``Rule``), not code.

Stuck: status in the in-flight statuses and no sign of life for longer than the
threshold, where the last sign of life is coalesce(heartbeat, updated, created)
measured with the database's clock. Evidence for each row is extracted in SQL
(a few short values, never the whole parameters document) and matched against
the rules in order; the first rule whose every condition holds names the class.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from psycopg import sql

from stuckgen import deadline
from stuckgen.db import Connection, scalar
from stuckgen.errors import ConfigError
from stuckgen.schema import SchemaMapping
from stuckgen.durations import iso_utc
from stuckgen.trigger_failures import DEFAULT_ERROR_PATTERN, TriggerFailures

if TYPE_CHECKING:
    from stuckgen.settings import Settings


CLASSES: tuple[str, ...] = (
    "never-started", "trigger-failed", "timed-out", "stalled", "awaiting-webhook",
    "queued-not-drained", "outputs-not-finalized", "unknown",
)

QUEUE_LOCK_SECONDS = 60.0  # the app's GENERATION_QUEUE_LOCK_TIMEOUT_MS default (60 000)
# Rows handed to an outside provider get the app's own grace (liveness.ts WEBHOOK_GRACE_MINUTES):
# a provider takes minutes, and its callback, not a heartbeat, is the sign of progress.
DEFAULT_GRACE: tuple[tuple[str, float], ...] = (("awaiting-webhook", 1800.0),)
ROUTING_RETRY_GRACE = 300.0  # liveness.ts ROUTING_RETRY_GRACE_MINUTES
# The last steps that say a provider will call back (src/app/api/generate/route.ts sets
# 'webhook:submitted'; the process route logs 'process:skipped-webhook-active' when it leaves such a
# row alone). The default grace is for those rows only: an app that polls its provider (Photoshot)
# has no callback to wait for, and its provider rows move only when someone polls.
CALLBACK_STEPS: tuple[str, ...] = ("webhook:submitted", "process:skipped-webhook-active")


@dataclass(frozen=True)
class Rule:
    """A class and the conditions (all must hold) under which a stuck row belongs to it.

    A condition on a field the schema does not map is unknown, so the rule does not match.
    """

    cls: str
    why: str
    steps_any: tuple[str, ...] = ()   # the step log holds at least one of these
    steps_none: tuple[str, ...] = ()  # ... and none of these
    last_step_in: tuple[str, ...] = ()
    heartbeat: bool | None = None     # a heartbeat was ever written
    outputs: bool | None = None       # outputs exist
    webhook: bool | None = None       # a provider prediction id is set
    job: tuple[str, ...] = ()         # queue job state in: unclaimed, lock-expired, locked
    # the worker started more than max_duration + deadline.GRACE ago (unknown without --max-duration)
    past_max_duration: bool | None = None
    source: str = "default"           # where the rule came from (schema and doctor show it)

    def conditions(self) -> str:
        """The conditions as the [[rules]] keys that set them: ``heartbeat=false, last_step_in=[...]``."""
        parts = []
        for key in ("steps_any", "steps_none", "last_step_in", "job"):
            v = getattr(self, key)
            if v:
                parts.append(f"{key}=[{', '.join(v)}]")
        for key in ("heartbeat", "outputs", "webhook", "past_max_duration"):
            v = getattr(self, key)
            if v is not None:
                parts.append(f"{key}={'true' if v else 'false'}")
        return ", ".join(parts) or "(always)"

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "why": self.why, "conditions": self.conditions(), "source": self.source}

    def matches(self, ev: "Evidence") -> bool:
        # Runs once per rule per stuck row: plain comparisons, no reflection. An unknown
        # (None) fact never equals a wanted True/False, so the rule does not match.
        if self.steps_any and (ev.steps is None or ev.steps.isdisjoint(self.steps_any)):
            return False
        if self.steps_none and (ev.steps is None or not ev.steps.isdisjoint(self.steps_none)):
            return False
        if self.last_step_in and ev.last_step not in self.last_step_in:
            return False
        if self.heartbeat is not None and ev.has_heartbeat is not self.heartbeat:
            return False
        if self.outputs is not None and ev.has_outputs is not self.outputs:
            return False
        if self.webhook is not None and ev.has_webhook is not self.webhook:
            return False
        if self.job and ev.job_state not in self.job:
            return False
        if self.past_max_duration is not None and ev.past_max_duration is not self.past_max_duration:
            return False
        return True


TRIGGER_FAILED_STEPS = ("process:trigger-failed-http", "process:trigger-failed-exception")
WORKER_STEPS = ("process:start", "model:generate:start", "model:generate:heartbeat", "model:generate:end")
CREATE_STEPS = ("generate:create", "process:triggered", "process:trigger-timeout-expected")

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(cls="outputs-not-finalized", why="outputs exist but the status was never set", outputs=True),
    Rule(cls="trigger-failed", why="the step log records a failed trigger and no worker ever started",
         steps_any=TRIGGER_FAILED_STEPS, steps_none=WORKER_STEPS),
    Rule(cls="awaiting-webhook", why="handed to an outside provider and no callback settled it within its grace "
                                     "(`stuckgen reconcile` tells a lost callback from a slow provider)",
         steps_any=("webhook:submitted",)),
    Rule(cls="awaiting-webhook", why="a provider prediction id is set and nothing brought its result back within "
                                     "its grace (`stuckgen reconcile` tells a lost callback from a slow provider)",
         webhook=True),
    Rule(cls="queued-not-drained", why="queued but never claimed, or claimed and the lock expired",
         job=("unclaimed", "lock-expired")),
    # stalled, when its worker started longer ago than the function may run (--max-duration; deadline.py):
    Rule(cls="timed-out", why="a worker wrote heartbeats, then went silent, and it started longer ago than the "
                              "function's maximum duration plus a minute: provably dead",
         heartbeat=True, past_max_duration=True),
    Rule(cls="timed-out", why="a worker started longer ago than the function's maximum duration plus a minute: "
                              "provably dead", steps_any=WORKER_STEPS, past_max_duration=True),
    Rule(cls="stalled", why="a worker wrote heartbeats, then went silent", heartbeat=True),
    Rule(cls="stalled", why="a worker started but died before its first heartbeat",
         steps_any=WORKER_STEPS),
    # never-started, told by what the step log shows of the trigger (src/app/api/generate/route.ts):
    Rule(cls="never-started", why="trigger timed out; the request was probably received, but no worker ever "
                                  "wrote a step", heartbeat=False, last_step_in=("process:trigger-timeout-expected",)),
    Rule(cls="never-started", why="the process route accepted the trigger, but no worker ever wrote a step "
                                  "(its background work was cut off before it began)",
         heartbeat=False, last_step_in=("process:triggered",)),
    Rule(cls="never-started", why="no step after the create step: the trigger never reached the process route",
         heartbeat=False, last_step_in=CREATE_STEPS),
)

_RULE_KEYS = {"class", "why", "steps_any", "steps_none", "last_step_in", "heartbeat", "outputs", "webhook", "job",
              "past_max_duration"}


def rules_in_force(items: Sequence[Mapping[str, Any]] | None, *, replace_defaults: bool = False,
                   source: str = "stuckgen.toml") -> tuple[Rule, ...]:
    """The rules scan applies, in order: the configured [[rules]] first (so they win), then the
    defaults, unless ``replace_default_rules = true`` asked for the configured ones alone."""
    custom = rules_from_config(items or (), source=source)
    if replace_defaults:
        if not custom:
            raise ConfigError(f"{source}: replace_default_rules = true but no [[rules]]: every row would be 'unknown'")
        return custom
    return custom + DEFAULT_RULES


def rules_from_config(items: Sequence[Mapping[str, Any]], *, source: str = "stuckgen.toml") -> tuple[Rule, ...]:
    """[[rules]] tables from stuckgen.toml -> rules; ConfigError on anything unknown."""
    out: list[Rule] = []
    for i, item in enumerate(items, 1):
        unknown = set(item) - _RULE_KEYS
        if unknown:
            raise ConfigError(f"rules[{i}]: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_RULE_KEYS))}")
        cls = item.get("class")
        if not isinstance(cls, str) or not cls:
            raise ConfigError(f"rules[{i}]: 'class' must be a non-empty string")
        kwargs: dict[str, Any] = {"cls": cls, "why": str(item.get("why", cls)), "source": f"{source} [[rules]] #{i}"}
        for key in ("steps_any", "steps_none", "last_step_in", "job"):
            if key in item:
                v = item[key]
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise ConfigError(f"rules[{i}]: {key!r} must be a list of strings")
                kwargs[key] = tuple(v)
        for key in ("heartbeat", "outputs", "webhook", "past_max_duration"):
            if key in item:
                if not isinstance(item[key], bool):
                    raise ConfigError(f"rules[{i}]: {key!r} must be true or false")
                kwargs[key] = item[key]
        out.append(Rule(**kwargs))
    return tuple(out)


class Evidence(NamedTuple):
    """What the database says about one row; None means 'not mapped, unknown'."""

    steps: frozenset[str] | None
    last_step: str | None
    has_heartbeat: bool | None
    has_outputs: bool | None
    has_webhook: bool | None
    job_state: str | None  # None: no queue table or no job
    past_max_duration: bool | None = None  # None: no --max-duration, or no worker start known


@dataclass(frozen=True, kw_only=True)
class StuckRow:
    """One stuck generation, its class and the evidence behind it."""

    id: str
    status: str
    cls: str
    why: str
    created_at: datetime | None
    last_sign_of_life: datetime | None
    quiet_seconds: float
    age_seconds: float | None
    heartbeat_at: datetime | None
    last_step: str | None
    trigger_status: int | None
    trigger_failures: int
    error: str | None
    outputs: int | None
    job_state: str | None
    user_id: str | None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "class": self.cls,
            "why": self.why,
            "created_at": iso_utc(self.created_at),
            "last_sign_of_life": iso_utc(self.last_sign_of_life),
            "quiet_seconds": round_ms(self.quiet_seconds),
            "age_seconds": None if self.age_seconds is None else round_ms(self.age_seconds),
            "heartbeat_at": iso_utc(self.heartbeat_at),
            "last_step": self.last_step,
            "trigger_status": self.trigger_status,
            "trigger_failures": self.trigger_failures,
            "error": self.error,
            "outputs": self.outputs,
            "job_state": self.job_state,
            "user_id": self.user_id,
            "notes": list(self.notes),
        }


def round_ms(seconds: float) -> float:
    """Seconds to the millisecond, half away from zero on the exact microsecond value.

    ``round(x, 3)`` rounds the binary float (12.3455 may go down); this is what PostgreSQL's
    numeric ``round`` does, so a row rendered by the server (scan_render) reads the same.
    """
    return float(Decimal(repr(seconds)).quantize(_MS, ROUND_HALF_UP))


_MS = Decimal("0.001")



@dataclass(frozen=True, kw_only=True)
class ScanOptions:
    threshold: float = 120.0
    since: float | None = 86400.0
    inflight_statuses: tuple[str, ...] = ("processing", "queued")
    classes: tuple[str, ...] = ()
    limit: int | None = None
    older_than: float | None = None  # only rows quiet for at least this long (remediation)
    ids: tuple[str, ...] = ()
    naive_timezone: str = "UTC"
    # Select the stuck rows created *before* the window instead of those in it (the
    # window governs the stuck rate, never whether a stuck row is reported).
    before_window: bool = False
    # Failed rows read as evidence of a failed trigger (stuckgen.trigger_failures); () reads none.
    trigger_statuses: tuple[str, ...] = ("failed",)
    trigger_window: float = 3600.0  # the recent window their count and rate are judged on
    trigger_error_pattern: str = DEFAULT_ERROR_PATTERN
    # Signs of life besides the heartbeat (the app's own; see alive_sql).
    queue_lock: float = QUEUE_LOCK_SECONDS  # a job locked this recently is being worked on
    grace: tuple[tuple[str, float], ...] = DEFAULT_GRACE  # (class, quiet time) before a row of it is stuck
    grace_configured: tuple[str, ...] = ()  # classes whose grace was configured (applies to all their rows)
    routing_retry_grace: float = ROUTING_RETRY_GRACE  # past a scheduled routing retry, before stuck
    max_duration: float | None = None  # the worker function's maximum duration: names timed-out rows

    def grace_for(self, cls: str, *, last_step: str | None = None) -> float:
        """The quiet time after which a row of ``cls`` is stuck: its grace, never below the threshold.

        The default awaiting-webhook grace needs a callback to wait for (``CALLBACK_STEPS``)."""
        if cls == "awaiting-webhook" and cls not in self.grace_configured and last_step not in CALLBACK_STEPS:
            return self.threshold
        return max([self.threshold, *(g for c, g in self.grace if c == cls)])


def trigger_statuses(settings: Any) -> tuple[str, ...]:
    """The statuses read for trigger failures: as configured, else the app's failed status."""
    sources = getattr(settings, "sources", {}) or {}
    if sources.get("trigger_statuses", "default") != "default":
        return tuple(settings.trigger_statuses)
    return (settings.failed_status,)


def merge_grace(configured: Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """The default grace overridden by the configured one; 0 switches a class's grace off."""
    out = dict(DEFAULT_GRACE)
    out.update(configured)
    return tuple(sorted((c, g) for c, g in out.items() if g > 0))


def scan_options(settings: Settings, **overrides: Any) -> ScanOptions:
    """ScanOptions from the settings; ``overrides`` that are not None win."""
    kw: dict[str, Any] = dict(threshold=settings.threshold, since=settings.since,
                              inflight_statuses=tuple(settings.inflight_statuses),
                              naive_timezone=settings.naive_timezone,
                              trigger_statuses=trigger_statuses(settings),
                              trigger_window=settings.trigger_window,
                              trigger_error_pattern=settings.trigger_error_pattern,
                              queue_lock=settings.queue_lock, grace=merge_grace(settings.grace),
                              grace_configured=tuple(c for c, _ in settings.grace),
                              routing_retry_grace=settings.routing_retry_grace,
                              max_duration=getattr(settings, "max_duration", None))
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return ScanOptions(**kw)


@dataclass
class Summary:
    """Aggregates built while rows stream past: memory is O(classes + hours), not O(rows)."""

    database_now: datetime | None = None
    stuck: int = 0
    by_class: Counter = field(default_factory=Counter)
    trigger_statuses: Counter = field(default_factory=Counter)
    created_in_window: int | None = None
    stuck_before_window: int | None = None
    before_window: "BeforeWindow | None" = None
    oldest: StuckRow | None = None
    onset: datetime | None = None
    per_hour: Counter = field(default_factory=Counter)
    truncated: bool = False
    trigger_failures: TriggerFailures | None = None  # failed rows with a failed trigger (the other evidence)

    def add(self, row: StuckRow) -> None:
        self.stuck += 1
        self.by_class[row.cls] += 1
        if row.trigger_status is not None:
            self.trigger_statuses[row.trigger_status] += 1
        if self.oldest is None or row.quiet_seconds > self.oldest.quiet_seconds:
            self.oldest = row
        t = row.created_at or row.last_sign_of_life
        if t is not None:
            if self.onset is None or t < self.onset:
                self.onset = t
            self.per_hour[t.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)] += 1

    @property
    def failed_trigger_statuses(self) -> dict[Any, int]:
        """Rows that ended failed at the trigger in the window, by HTTP status (or cause without one)."""
        out: dict[Any, int] = {}
        for g in self.trigger_failures.groups if self.trigger_failures is not None else ():
            key = g.http_status if g.http_status is not None else g.cause
            out[key] = out.get(key, 0) + g.count
        return out

    @property
    def stuck_rate(self) -> float | None:
        if not self.created_in_window:
            return None
        return self.stuck / self.created_in_window

    def as_dict(self) -> dict[str, Any]:
        return {
            "stuck": self.stuck,
            "by_class": {c: self.by_class.get(c, 0) for c in _class_order(self.by_class)},
            "trigger_statuses": {str(k): v for k, v in sorted(self.trigger_statuses.items())},
            "created_in_window": None if self.created_in_window is None else int(self.created_in_window),
            "created_in_window_estimated": isinstance(self.created_in_window, Estimate),
            "stuck_rate": None if self.stuck_rate is None else round(self.stuck_rate, 6),
            "stuck_before_window": self.stuck_before_window,
            "before_window": None if self.before_window is None else self.before_window.as_dict(),
            "oldest": None if self.oldest is None else {
                "id": self.oldest.id, "created_at": iso_utc(self.oldest.created_at),
                "quiet_seconds": round_ms(self.oldest.quiet_seconds)},
            "onset": iso_utc(self.onset),
            "per_hour": [{"hour": iso_utc(h), "stuck": n} for h, n in sorted(self.per_hour.items())],
            "truncated": self.truncated,
            "database_now": iso_utc(self.database_now),
            "failed_at_trigger": None if self.trigger_failures is None else self.trigger_failures.as_dict(),
        }


def _class_order(counter: Mapping[str, int]) -> list[str]:
    known = [c for c in CLASSES if counter.get(c)]
    return known + sorted(c for c in counter if c not in CLASSES)


# -- SQL ---------------------------------------------------------------------------------------


def evidence_steps(rules: Iterable[Rule]) -> tuple[str, ...]:
    """Steps whose log entries carry detail we report (the failed trigger's HTTP status)."""
    return TRIGGER_FAILED_STEPS


def step_log_array(m: SchemaMapping) -> sql.Composable:
    raw = m.raw("step_log")
    return sql.SQL("(CASE WHEN jsonb_typeof({r}::jsonb) = 'array' THEN {r}::jsonb ELSE '[]'::jsonb END)").format(r=raw)


def last_sign_sql(m: SchemaMapping, opts: ScanOptions) -> sql.Composable:
    parts = [m.timestamp(f, naive_tz=opts.naive_timezone) for f in ("heartbeat", "updated", "created") if m.has(f)]
    return sql.SQL("coalesce({})").format(sql.SQL(", ").join(parts))


def build_scan_query(m: SchemaMapping, opts: ScanOptions, rules: Sequence[Rule] = DEFAULT_RULES, *,
                     extra: Sequence[sql.Composable] = (),
                     ordered: bool = True) -> sql.Composed:
    """The scan statement: stuck rows with their evidence, quietest-longest first.

    ``extra``: more output columns over row ``g`` (scan_render adds the rule that matched);
    ``ordered=False`` leaves the order (and the limit) to an enclosing query, which orders by
    ``last_sign`` and ``key`` (the id as stored, so a uuid or an integer sorts as itself).
    """
    tz = opts.naive_timezone
    last_sign = last_sign_sql(m, opts)
    created = m.timestamp("created", naive_tz=tz)
    selects: list[sql.Composable] = [
        sql.SQL("{}::text AS id").format(m.raw("id")),
        sql.SQL("{}::text AS status").format(m.raw("status")),
        sql.SQL("{} AS created_at").format(created),
        sql.SQL("{} AS last_sign").format(last_sign),
        sql.SQL("{} AS heartbeat_at").format(m.timestamp("heartbeat", naive_tz=tz)),
        sql.SQL("left({}, 60) AS heartbeat_raw").format(m.text("heartbeat")),
        sql.SQL("left({}, 200) AS last_step").format(m.text("last_step")),
        sql.SQL("left({}, 300) AS error").format(m.text("error")),
        sql.SQL("left({}, 80) AS user_id").format(m.text("user")),
        sql.SQL("({} IS NOT NULL AND {} <> '') AS has_webhook").format(m.text("webhook"), m.text("webhook"))
        if m.has("webhook") else sql.SQL("NULL::boolean AS has_webhook"),
    ]
    if m.has("step_log"):
        arr = step_log_array(m)
        failed = sql.Literal(list(evidence_steps(())))
        selects.append(sql.SQL(
            "ARRAY(SELECT DISTINCT e->>'step' FROM jsonb_array_elements({a}) e "
            "WHERE jsonb_typeof(e) = 'object' AND e->>'step' IS NOT NULL) AS steps").format(a=arr))
        selects.append(sql.SQL(
            "(SELECT left(e::text, 600) FROM jsonb_array_elements({a}) WITH ORDINALITY x(e, n) "
            "WHERE jsonb_typeof(e) = 'object' AND e->>'step' = ANY({f}) ORDER BY n DESC LIMIT 1) AS trigger_entry").format(a=arr, f=failed))
        selects.append(sql.SQL(
            "(SELECT count(*) FROM jsonb_array_elements({a}) e WHERE jsonb_typeof(e) = 'object' "
            "AND e->>'step' = ANY({f})) AS trigger_failures").format(a=arr, f=failed))
    else:
        selects += [sql.SQL("NULL::text[] AS steps"), sql.SQL("NULL::text AS trigger_entry"),
                    sql.SQL("0::bigint AS trigger_failures")]
    if m.outputs.present:
        selects.append(sql.SQL("(SELECT count(*) FROM {t} o WHERE o.{k} = {id}) AS outputs").format(
            t=m.outputs.qualified(m.db_schema), k=m.outputs.key_ident(), id=m.raw("id")))
    else:
        selects.append(sql.SQL("NULL::bigint AS outputs"))
    job_state, join = _job_state_sql(m, tz, opts.queue_lock)
    selects.append(sql.SQL("{} AS job_state").format(job_state))
    selects.extend(deadline_columns(m, opts))
    selects.append(sql.SQL("now() AS db_now"))
    selects.append(sql.SQL("{} AS key").format(m.raw("id")))
    selects.extend(extra)

    where = sql.SQL("{} AND {}").format(where_stuck(m, opts), grace_sql(m, opts, rules, steps=steps_sql(m),
                                                                        job_state=job_state))
    if not ordered:
        return sql.SQL("SELECT {sel} FROM {tbl} g {join} WHERE {where}").format(
            sel=sql.SQL(", ").join(selects), tbl=m.qualified(), join=join, where=where)
    limit = sql.SQL("LIMIT {}").format(sql.Literal(opts.limit)) if opts.limit is not None else sql.SQL("")
    return sql.SQL("SELECT {sel} FROM {tbl} g {join} WHERE {where} ORDER BY {ls} ASC NULLS FIRST, {id} {limit}").format(
        sel=sql.SQL(", ").join(selects), tbl=m.qualified(), join=join, where=where, ls=last_sign,
        id=m.raw("id"), limit=limit)


def past_deadline_sql(m: SchemaMapping, opts: ScanOptions) -> sql.Composable | None:
    """Over row ``g``: its worker started more than max_duration + grace ago; None without --max-duration."""
    if opts.max_duration is None:
        return None
    return deadline.past_limit_sql(m, max_duration=opts.max_duration, naive_tz=opts.naive_timezone)


def deadline_columns(m: SchemaMapping, opts: ScanOptions) -> list[sql.Composable]:
    """The scan's evidence for ``timed-out``: when the worker started, past the limit, and the limit."""
    past = past_deadline_sql(m, opts)
    if past is None:
        return [sql.SQL("NULL::timestamptz AS worker_started_at"), sql.SQL("NULL::boolean AS past_max_duration"),
                sql.SQL("NULL::float8 AS max_duration")]
    return [sql.SQL("{} AS worker_started_at").format(deadline.worker_started_sql(m, naive_tz=opts.naive_timezone)),
            sql.SQL("{} AS past_max_duration").format(past),
            sql.SQL("{}::float8 AS max_duration").format(sql.Literal(opts.max_duration))]


def _job_state_sql(m: SchemaMapping, tz: str, queue_lock: float = QUEUE_LOCK_SECONDS
                   ) -> tuple[sql.Composable, sql.Composable]:
    """The queue job's state (unclaimed, lock-expired, locked; NULL: no job or no queue) and the join it needs."""
    if not m.queue.present:
        return sql.SQL("NULL::text"), sql.SQL("")
    locked = m.queue.columns.get("locked_at")
    if locked:
        lt = (m.queue.types.get(locked) or "").lower()
        lock_ts = sql.Identifier("j", locked) if lt == "timestamp with time zone" else \
            sql.SQL("({} AT TIME ZONE {})").format(sql.Identifier("j", locked), sql.Literal(tz))
        state = sql.SQL(
            "CASE WHEN j.{k} IS NULL THEN NULL WHEN {l} IS NULL THEN 'unclaimed' "
            "WHEN {l} < now() - make_interval(secs => {ttl}) THEN 'lock-expired' ELSE 'locked' END"
        ).format(k=m.queue.key_ident(), l=lock_ts, ttl=sql.Literal(queue_lock))
    else:
        state = sql.SQL("CASE WHEN j.{k} IS NULL THEN NULL ELSE 'unclaimed' END").format(k=m.queue.key_ident())
    # One job per row even when the queue keeps a job per attempt: the most recently claimed one.
    order = sql.SQL("ORDER BY {} DESC NULLS LAST").format(sql.Identifier(locked)) if locked else sql.SQL("")
    join = sql.SQL("LEFT JOIN LATERAL (SELECT * FROM {t} jj WHERE jj.{k} = {id} {order} LIMIT 1) j ON true").format(
        t=m.queue.qualified(m.db_schema), k=m.queue.key_ident(), id=m.raw("id"), order=order)
    return state, join


class RuleFacts(NamedTuple):
    """What ``Rule`` conditions test, as SQL expressions; None: the field is not mapped (unknown)."""

    steps: sql.Composable | None      # text[] of the step names in the log
    last_step: sql.Composable         # text, at most 200 characters (NULL when unmapped)
    heartbeat: sql.Composable | None  # boolean: a heartbeat was ever written
    outputs: sql.Composable | None    # boolean: outputs exist
    webhook: sql.Composable | None    # boolean: a provider prediction id is set
    job_state: sql.Composable         # text: unclaimed, lock-expired, locked (NULL: no job)
    past_max_duration: sql.Composable | None = None  # boolean, NULL when the worker start is unknown


def row_facts(m: SchemaMapping, *, steps: sql.Composable, job_state: sql.Composable,
              past_max_duration: sql.Composable | None = None) -> RuleFacts:
    """The facts read from row ``g`` of the generations table."""
    return RuleFacts(
        steps=steps if m.has("step_log") else None,
        last_step=sql.SQL("left({}, 200)").format(m.text("last_step")),
        heartbeat=sql.SQL("({} IS NOT NULL)").format(m.text("heartbeat")) if m.has("heartbeat") else None,
        outputs=sql.SQL("EXISTS (SELECT 1 FROM {t} o WHERE o.{k} = {id})").format(
            t=m.outputs.qualified(m.db_schema), k=m.outputs.key_ident(), id=m.raw("id"))
        if m.outputs.present else None,
        webhook=sql.SQL("({w} IS NOT NULL AND {w} <> '')").format(w=m.text("webhook")) if m.has("webhook") else None,
        job_state=job_state,
        past_max_duration=past_max_duration,
    )


def rule_sql(rule: Rule, m: SchemaMapping, *, steps: sql.Composable | None = None,
             job_state: sql.Composable | None = None, facts: RuleFacts | None = None,
             past_max_duration: sql.Composable | None = None) -> sql.Composable:
    """``rule.matches`` as a SQL condition: over row ``g`` (``steps`` is the text[] of its step
    names), or over ``facts`` (scan_render tests the scan's evidence columns).

    Same three-valued reading as ``Rule.matches``: a condition on a field the
    mapping does not have is unknown, and an unknown condition does not hold.
    """
    if facts is None:
        assert steps is not None and job_state is not None
        facts = row_facts(m, steps=steps, job_state=job_state, past_max_duration=past_max_duration)
    conds: list[sql.Composable] = []
    if rule.steps_any:
        conds.append(sql.SQL("({} && {}::text[])").format(facts.steps, sql.Literal(list(rule.steps_any)))
                     if facts.steps is not None else sql.SQL("false"))
    if rule.steps_none:
        conds.append(sql.SQL("NOT ({} && {}::text[])").format(facts.steps, sql.Literal(list(rule.steps_none)))
                     if facts.steps is not None else sql.SQL("false"))
    if rule.last_step_in:
        conds.append(sql.SQL("coalesce({} = ANY({}::text[]), false)").format(
            facts.last_step, sql.Literal(list(rule.last_step_in))))
    for attr in ("heartbeat", "outputs", "webhook"):
        want = getattr(rule, attr)
        fact = getattr(facts, attr)
        if want is not None:
            conds.append(sql.SQL("false") if fact is None else fact if want else sql.SQL("NOT {}").format(fact))
    if rule.job:
        conds.append(sql.SQL("coalesce({} = ANY({}::text[]), false)").format(facts.job_state, sql.Literal(list(rule.job))))
    if rule.past_max_duration is not None:
        # NULL (no worker start known) holds neither way, as None in Rule.matches.
        conds.append(sql.SQL("false") if facts.past_max_duration is None else sql.SQL("coalesce({}{}, false)").format(
            sql.SQL("" if rule.past_max_duration else "NOT "), facts.past_max_duration))
    return sql.SQL(" AND ").join(conds) if conds else sql.SQL("true")


def class_rows_sql(m: SchemaMapping, opts: ScanOptions, rules: Sequence[Rule]) -> sql.Composed:
    """Stuck rows as (key, id, cls, last_sign, created_at), classified in SQL; unordered, every class."""
    tz = opts.naive_timezone
    job_state, join = _job_state_sql(m, tz, opts.queue_lock)
    steps = sql.SQL("s.steps")
    lateral: sql.Composable = sql.SQL("")
    if m.has("step_log"):
        lateral = sql.SQL(
            "CROSS JOIN LATERAL (SELECT ARRAY(SELECT e->>'step' FROM jsonb_array_elements({a}) e "
            "WHERE jsonb_typeof(e) = 'object' AND e->>'step' <> '') AS steps OFFSET 0) s").format(a=step_log_array(m))
    cls = class_sql(m, rules, steps=steps, job_state=job_state, past_max_duration=past_deadline_sql(m, opts))
    inner = sql.SQL(
        "SELECT {id} AS key, {id}::text AS id, {cls} AS cls, {ls} AS last_sign, {created} AS created_at "
        "FROM {tbl} g {join} {lateral} WHERE {where}").format(
            id=m.raw("id"), cls=cls, ls=last_sign_sql(m, opts), tbl=m.qualified(), join=join, lateral=lateral,
            where=sql.SQL("{} AND {}").format(where_stuck(m, opts),
                                              grace_sql(m, opts, rules, steps=steps, job_state=job_state)),
            created=m.timestamp("created", naive_tz=tz))
    return inner


def build_class_query(m: SchemaMapping, opts: ScanOptions, rules: Sequence[Rule]) -> sql.Composed:
    """Stuck rows as (key, id, class) only, classified in SQL by the same rules; the scan's order.

    For remediation, which needs every stuck row's id and class but none of the
    evidence the scan reports: no step-log details, no per-row Python.
    """
    inner = class_rows_sql(m, opts, rules)
    wanted = sql.SQL("WHERE c.cls = ANY({}::text[])").format(sql.Literal(list(opts.classes))) if opts.classes \
        else sql.SQL("")
    limit = sql.SQL("LIMIT {}").format(sql.Literal(opts.limit)) if opts.limit is not None else sql.SQL("")
    return sql.SQL("SELECT c.key, c.id, c.cls FROM ({inner}) c {wanted} ORDER BY c.last_sign ASC NULLS FIRST, c.key "
                   "{limit}").format(inner=inner, wanted=wanted, limit=limit)


BEFORE_WINDOW_NAMED = 20  # ids of stuck rows created before the window, listed by name


@dataclass(frozen=True, kw_only=True)
class BeforeWindowRow:
    id: str
    cls: str
    created_at: datetime | None
    quiet_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "class": self.cls, "created_at": iso_utc(self.created_at),
                "quiet_seconds": round_ms(self.quiet_seconds)}


@dataclass(frozen=True, kw_only=True)
class BeforeWindow:
    """Stuck rows created before the --since window: counted by class, the quietest named."""

    stuck: int
    by_class: Mapping[str, int]
    rows: tuple[BeforeWindowRow, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"stuck": self.stuck, "by_class": {c: self.by_class[c] for c in _class_order(self.by_class)},
                "rows": [r.as_dict() for r in self.rows], "listed": len(self.rows)}


def build_before_window_query(m: SchemaMapping, opts: ScanOptions, rules: Sequence[Rule], *,
                              named: int = BEFORE_WINDOW_NAMED) -> sql.Composed | None:
    """Stuck rows created before the window, classified by the same rules: counts by class and the first ``named``.

    One statement; classification in SQL (``build_class_query``), so it costs one pass over
    the old in-flight rows whatever their number.
    """
    if opts.since is None or not m.has("created"):
        return None
    inner = class_rows_sql(m, replace(opts, before_window=True), rules)
    wanted = sql.SQL("WHERE cls = ANY({}::text[])").format(sql.Literal(list(opts.classes))) if opts.classes \
        else sql.SQL("")
    return sql.SQL(
        "WITH c AS MATERIALIZED (SELECT * FROM ({inner}) c0 {wanted}) "
        "SELECT (SELECT coalesce(jsonb_object_agg(cls, n), '{{}}'::jsonb) FROM "
        "(SELECT cls, count(*) AS n FROM c GROUP BY cls) x), "
        "(SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'cls', cls, "
        "'created', extract(epoch FROM created_at), 'quiet', extract(epoch FROM now() - last_sign)) "
        "ORDER BY n), '[]'::jsonb) FROM (SELECT c.*, row_number() OVER (ORDER BY last_sign ASC NULLS FIRST, key) AS n "
        "FROM c ORDER BY n LIMIT {named}) y)"
    ).format(inner=inner, wanted=wanted, named=sql.Literal(named))


def before_window(conn: Connection, mapping: SchemaMapping, options: ScanOptions, rules: Sequence[Rule], *,
                  named: int = BEFORE_WINDOW_NAMED) -> BeforeWindow | None:
    """The stuck rows the window leaves out of the scan's list; None without a window."""
    from psycopg.rows import tuple_row

    q = build_before_window_query(mapping, options, rules, named=named)
    if q is None:
        return None
    row = conn.cursor(row_factory=tuple_row).execute(q).fetchone()
    assert row is not None  # an aggregate always returns its row
    counts, named_rows = row
    rows = tuple(BeforeWindowRow(
        id=str(r["id"]), cls=str(r["cls"]), quiet_seconds=float(r["quiet"] or 0.0),
        created_at=None if r["created"] is None else datetime.fromtimestamp(float(r["created"]), tz=timezone.utc))
        for r in named_rows or ())
    by_class = {str(k): int(v) for k, v in (counts or {}).items()}
    return BeforeWindow(stuck=sum(by_class.values()), by_class=by_class, rows=rows)
def steps_sql(m: SchemaMapping) -> sql.Composable:
    """The row's step names as text[] (an empty array without a step log)."""
    if not m.has("step_log"):
        return sql.SQL("ARRAY[]::text[]")
    return sql.SQL("ARRAY(SELECT e->>'step' FROM jsonb_array_elements({a}) e "
                   "WHERE jsonb_typeof(e) = 'object' AND e->>'step' <> '')").format(a=step_log_array(m))


def class_sql(m: SchemaMapping, rules: Sequence[Rule], *, steps: sql.Composable,
              job_state: sql.Composable, past_max_duration: sql.Composable | None = None) -> sql.Composable:
    """The row's class by the rules, in SQL (``classify``'s twin)."""
    if not rules:
        return sql.SQL("'unknown'")
    whens = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(rule_sql(r, m, steps=steps, job_state=job_state,
                                                   past_max_duration=past_max_duration), sql.Literal(r.cls))
        for r in rules)
    return sql.SQL("CASE {} ELSE 'unknown' END").format(whens)


def grace_sql(m: SchemaMapping, opts: ScanOptions, rules: Sequence[Rule], *, steps: sql.Composable,
              job_state: sql.Composable) -> sql.Composable:
    """Rows of a class with a grace longer than the threshold are stuck only once quiet past it."""
    longer = sorted({(g, c) for c, g in opts.grace if g > max(opts.threshold, opts.older_than or 0.0)})
    if not longer:
        return sql.SQL("true")
    cls = class_sql(m, rules, steps=steps, job_state=job_state, past_max_duration=past_deadline_sql(m, opts))
    callback = sql.SQL("coalesce(left({}, 200) = ANY({}::text[]), false)").format(
        m.text("last_step"), sql.Literal(list(CALLBACK_STEPS)))
    conds = [sql.SQL("NOT ({cls} = {c} AND {ls} >= now() - make_interval(secs => {g}){cb})").format(
        cls=cls, c=sql.Literal(c), ls=last_sign_sql(m, opts), g=sql.Literal(g),
        cb=sql.SQL(" AND {}").format(callback) if c == "awaiting-webhook" and c not in opts.grace_configured
        else sql.SQL("")) for g, c in longer]
    return sql.SQL(" AND ").join(conds)


def alive_sql(m: SchemaMapping, opts: ScanOptions) -> sql.Composable | None:
    """The app's signs of life besides the heartbeat, on row ``g`` alone (so a write can re-check it):

    - a queue job locked less than ``queue_lock`` ago: a worker claimed it (a batch of up to 5 runs
      one after another, so a claimed job may not have written a step yet), or a job released for
      a retry whose ``run_after`` is still ahead (GENERATION_QUEUE_RETRY_DELAY_MS);
    - a routing retry (``routingRetryAt``) ahead, or less than ``routing_retry_grace`` behind (the
      app's liveness.ts isRoutingRetryPending).
    None when the mapping has neither.
    """
    tz = opts.naive_timezone
    signs: list[sql.Composable] = []
    locked, run_after = m.queue.columns.get("locked_at"), m.queue.columns.get("run_after")
    if m.queue.present and (locked or run_after):
        def ts(col: str) -> sql.Composable:
            t = (m.queue.types.get(col) or "").lower()
            return sql.Identifier("jj", col) if t == "timestamp with time zone" else \
                sql.SQL("({} AT TIME ZONE {})").format(sql.Identifier("jj", col), sql.Literal(tz))
        job: list[sql.Composable] = []
        if locked:
            job.append(sql.SQL("{} >= now() - make_interval(secs => {})").format(ts(locked), sql.Literal(opts.queue_lock)))
        if run_after:
            job.append(sql.SQL("({l} {r} > now())").format(
                l=sql.SQL("{} IS NULL AND").format(sql.Identifier("jj", locked)) if locked else sql.SQL(""),
                r=ts(run_after)))
        signs.append(sql.SQL("EXISTS (SELECT 1 FROM {t} jj WHERE jj.{k} = {id} AND ({c}))").format(
            t=sql.Identifier(m.db_schema, m.queue.table or ""), k=sql.Identifier(m.queue.key or ""), id=m.raw("id"),
            c=sql.SQL(" OR ").join(job)))
    if m.has("routing_retry"):
        signs.append(sql.SQL("coalesce({} + make_interval(secs => {}) > now(), false)").format(
            m.timestamp("routing_retry", naive_tz=tz), sql.Literal(opts.routing_retry_grace)))
    return sql.SQL(" OR ").join(signs) if signs else None


def alive_reasons(conn: Any, m: SchemaMapping, opts: ScanOptions, rules: Sequence[Rule], row_id: str) -> tuple[str, ...]:
    """Why one in-flight row is judged alive although quiet past the threshold, in words (``show``).

    The same judgements as ``alive_sql`` and ``grace_sql``, read for this row; empty when the row
    is stuck, or simply not quiet long enough.
    """
    from psycopg.rows import tuple_row

    from stuckgen.durations import format_duration

    bare = replace(opts, grace=(), queue_lock=0.0, routing_retry_grace=-1e9, ids=(row_id,), since=None,
                   classes=(), limit=None, older_than=None)
    row = next(iter(ScanRun(conn, m, bare, rules)), None)
    if row is None:
        return ()
    out: list[str] = []
    cur = conn.cursor(row_factory=tuple_row)
    locked, run_after = m.queue.columns.get("locked_at"), m.queue.columns.get("run_after")
    if m.queue.present and (locked or run_after):
        tz = sql.Literal(opts.naive_timezone)

        def age(col: str | None) -> sql.Composable:
            if not col:
                return sql.SQL("NULL::float8")
            t = (m.queue.types.get(col) or "").lower()
            ts = sql.Identifier(col) if t == "timestamp with time zone" else \
                sql.SQL("({} AT TIME ZONE {})").format(sql.Identifier(col), tz)
            return sql.SQL("extract(epoch FROM now() - {})::float8").format(ts)
        q = sql.SQL("SELECT {lk}, {ra} FROM {t} WHERE {k}::text = {id} ORDER BY 1 ASC NULLS LAST LIMIT 1").format(
            lk=age(locked), ra=age(run_after), t=sql.Identifier(m.db_schema, m.queue.table or ""),
            k=sql.Identifier(m.queue.key or ""), id=sql.Literal(row_id))
        job = cur.execute(q).fetchone()
        if job is not None:
            lock_age, run_after_age = job
            if lock_age is not None and lock_age <= opts.queue_lock:
                out.append(f"alive: its queue job was claimed {format_duration(max(lock_age, 0))} ago and the lock "
                           f"lasts {format_duration(opts.queue_lock)} (the app's GENERATION_QUEUE_LOCK_TIMEOUT_MS): "
                           "a worker holds it, possibly behind other jobs of its batch")
            elif lock_age is None and run_after_age is not None and run_after_age < 0:
                out.append(f"alive: its queue job is scheduled to run again in {format_duration(-run_after_age)} "
                           "(run_after)")
    if m.has("routing_retry"):
        q = sql.SQL("SELECT extract(epoch FROM {} - now())::float8 FROM {} g WHERE {}::text = {}").format(
            m.timestamp("routing_retry", naive_tz=opts.naive_timezone), m.qualified(), m.raw("id"),
            sql.Literal(row_id))
        ahead = (cur.execute(q).fetchone() or (None,))[0]
        if ahead is not None and ahead + opts.routing_retry_grace > 0:
            when = f"in {format_duration(ahead)}" if ahead >= 0 else f"{format_duration(-ahead)} ago"
            out.append(f"alive: the provider router rescheduled it (routingRetryAt {when}; stuck only "
                       f"{format_duration(opts.routing_retry_grace)} past it, as the app's liveness.ts)")
    grace = opts.grace_for(row.cls, last_step=row.last_step)
    if row.quiet_seconds < grace:
        out.append(f"alive: {row.cls} rows get a grace of {format_duration(grace)} (quiet "
                   f"{format_duration(row.quiet_seconds)} so far); the app's liveness.ts waits 30m for a webhook")
    return tuple(out)


def where_stuck(m: SchemaMapping, opts: ScanOptions, *, window: bool = True) -> sql.Composable:
    """The stuck predicate, shared by scan and the compare-and-set of remediation.

    In flight, quiet past the threshold, and no other sign of life (``alive_sql``). A class's
    grace (``grace_sql``) needs the rules, so the selecting queries add it.
    """
    quiet = max(opts.threshold, opts.older_than or 0.0)
    conds: list[sql.Composable] = [
        sql.SQL("{} = ANY({})").format(m.raw("status"), sql.Literal(list(opts.inflight_statuses))),
        sql.SQL("{} < now() - make_interval(secs => {})").format(last_sign_sql(m, opts), sql.Literal(quiet)),
    ]
    alive = alive_sql(m, opts)
    if alive is not None:
        conds.append(sql.SQL("NOT ({})").format(alive))
    if window and opts.since is not None and m.has("created"):
        created = m.timestamp("created", naive_tz=opts.naive_timezone)
        if opts.before_window:
            # A row without a readable creation time is outside the window, not nowhere.
            conds.append(sql.SQL("coalesce({} < now() - make_interval(secs => {}), true)").format(
                created, sql.Literal(opts.since)))
        else:
            conds.append(sql.SQL("{} >= now() - make_interval(secs => {})").format(created, sql.Literal(opts.since)))
    if opts.ids:
        conds.append(id_in(m, opts.ids))
    return sql.SQL(" AND ").join(conds)


def id_in(m: SchemaMapping, ids: Sequence[str]) -> sql.Composable:
    """``id = ANY(array)`` in the id column's own type, so the primary key index serves it."""
    f = m["id"]
    if f.path or not f.data_type:
        return sql.SQL("{}::text = ANY({})").format(m.raw("id"), sql.Literal(list(ids)))
    # The cast's type name comes from the fixed table below, never from text the database or a user supplied.
    return sql.SQL("{} = ANY(CAST({} AS {}[]))").format(m.raw("id"), sql.Literal(list(ids)), sql.SQL(_SAFE_TYPES.get(f.data_type, "text")))


# Types an id column commonly has; anything else compares as text (correct, just unindexed).
_SAFE_TYPES = {"uuid": "uuid", "text": "text", "character varying": "varchar", "bigint": "bigint",
               "integer": "integer", "smallint": "smallint", "numeric": "numeric", "character": "bpchar"}


# Above this many rows (the planner's estimate) the window's row count is sampled: an exact count
# reads every row of the window, so on a large table it cost more than the scan of the stuck rows
# (which the partial index makes cheap) and grew with the table.
COUNT_SAMPLE_ROWS = 20_000
EXACT_COUNT_MAX_ROWS = 20 * COUNT_SAMPLE_ROWS


class Estimate(int):
    """A count estimated from a sample of the table (shown as ``~N``); otherwise an int."""


def window_count_sql(m: SchemaMapping, opts: ScanOptions, *,
                     sample_pct: float | None = None) -> tuple[sql.Composable, sql.Composable] | None:
    """Two scalar subqueries: rows created in the window, and stuck rows created before it.

    ``sample_pct``: count the window's rows in a block sample of this percentage of the table
    (the caller scales it up); the stuck rows before the window are counted exactly (the
    partial index serves them). None without a window or a created time.
    """
    if opts.since is None or not m.has("created"):
        return None
    c = m.timestamp("created", naive_tz=opts.naive_timezone)
    s = sql.Literal(opts.since)
    sample = sql.SQL("TABLESAMPLE SYSTEM ({})").format(sql.Literal(sample_pct)) if sample_pct is not None \
        else sql.SQL("")
    created = sql.SQL("(SELECT count(*) FROM {t} g {sample} WHERE {c} >= now() - make_interval(secs => {s}))").format(
        t=m.qualified(), sample=sample, c=c, s=s)
    before = sql.SQL("(SELECT count(*) FROM {t} g WHERE {c} < now() - make_interval(secs => {s}) AND {w})").format(
        t=m.qualified(), w=where_stuck(m, opts, window=False), c=c, s=s)
    return created, before


def sample_pct(m: SchemaMapping) -> float | None:
    """The block-sample percentage for counting the window's rows; None: count them all."""
    if m.row_estimate > EXACT_COUNT_MAX_ROWS:
        return min(100.0, 100.0 * COUNT_SAMPLE_ROWS / m.row_estimate)
    return None


def scaled_count(n: int | None, pct: float | None) -> int | None:
    """A count over a block sample scaled back (unbiased: each block is in it with probability pct/100)."""
    if n is None or pct is None:
        return n
    return Estimate(round(n * 100.0 / pct))


def build_window_counts(m: SchemaMapping, opts: ScanOptions, *, sample_pct: float | None = None) -> sql.Composed | None:
    """Rows created in the window, and stuck rows created before it (see window_count_sql)."""
    exprs = window_count_sql(m, opts, sample_pct=sample_pct)
    if exprs is None:
        return None
    return sql.SQL("SELECT {}, {}").format(*exprs)


# -- classification ----------------------------------------------------------------------------


def classify(ev: Evidence, rules: Sequence[Rule]) -> tuple[str, str]:
    for rule in rules:
        if rule.matches(ev):
            return rule.cls, rule.why
    return "unknown", "no rule matched the evidence"


def _row_to_stuck(rec: Mapping[str, Any], m: SchemaMapping, rules: Sequence[Rule]) -> StuckRow:
    notes: list[str] = []
    hb_raw = rec["heartbeat_raw"]
    hb_at = rec["heartbeat_at"]
    if hb_raw is not None and hb_at is None:
        notes.append(f"heartbeat {hb_raw!r} is not a timestamp")
    has_hb = (hb_raw is not None) if m.has("heartbeat") else None
    steps = frozenset(s for s in rec["steps"] if s) if rec["steps"] is not None else None
    last_step = rec["last_step"]
    if last_step is None and steps is not None and not m.has("last_step"):
        last_step = None
    trigger_status = None
    entry = rec["trigger_entry"]
    if entry:
        try:
            obj = json.loads(entry)
            st = obj.get("status")
            trigger_status = int(st) if st is not None and str(st).isdigit() else None
            err = obj.get("error") or obj.get("errorText") or obj.get("message")
            if err:
                notes.append(f"{obj.get('step')}: {str(err)[:160]}")
        except (ValueError, AttributeError):
            notes.append("the failed-trigger log entry is cut or not JSON")
    outputs = rec["outputs"]
    ev = Evidence(
        steps=steps,
        last_step=last_step,
        has_heartbeat=has_hb,
        has_outputs=None if outputs is None else outputs > 0,
        has_webhook=rec["has_webhook"],
        job_state=rec["job_state"],
        past_max_duration=rec.get("past_max_duration"),
    )
    cls, why = classify(ev, rules)
    if cls == "trigger-failed" and trigger_status is not None:
        why = f"the trigger got HTTP {trigger_status} and no worker ever started"
        # The app logs only its last attempt (src/app/api/generate/route.ts), so one entry says
        # nothing of how many attempts were made; several entries count the ones logged.
        n = int(rec["trigger_failures"] or 0)
        why += f" (the last of {n} logged attempts)" if n > 1 else " (the app logs only its last attempt)"
    if cls == "unknown":
        bits = [f"last step {last_step!r}" if last_step else "no last step",
                "heartbeat seen" if has_hb else ("no heartbeat" if has_hb is False else "heartbeat not mapped"),
                f"{outputs} outputs" if outputs is not None else "outputs not mapped"]
        why = "no rule matched: " + ", ".join(bits)
    now = rec["db_now"]
    started, limit = rec.get("worker_started_at"), rec.get("max_duration")
    if cls == "timed-out" and started is not None and limit is not None:
        why = deadline.evidence((now - started).total_seconds(), limit)
    last_sign = rec["last_sign"]
    created = rec["created_at"]
    return StuckRow(
        id=rec["id"], status=rec["status"], cls=cls, why=why, created_at=created,
        last_sign_of_life=last_sign,
        quiet_seconds=(now - last_sign).total_seconds() if last_sign else 0.0,
        age_seconds=(now - created).total_seconds() if created else None,
        heartbeat_at=hb_at, last_step=last_step, trigger_status=trigger_status,
        trigger_failures=int(rec["trigger_failures"] or 0), error=rec["error"], outputs=outputs,
        job_state=rec["job_state"], user_id=rec["user_id"], notes=tuple(notes),
    )


class WindowCounts(NamedTuple):
    """What the window holds besides the stuck rows: for rates, and the failed-at-the-trigger evidence."""

    created_in_window: int | None
    stuck_before_window: int | None
    trigger_failures: TriggerFailures | None = None


def trigger_failures_in(conn: Connection, mapping: SchemaMapping, options: ScanOptions) -> TriggerFailures:
    """The failed rows with a failed trigger (stuckgen.trigger_failures), and the rows created in the
    recent window (the rate's denominator)."""
    from psycopg.rows import tuple_row

    from stuckgen import trigger_failures

    created_recent = None
    if options.trigger_statuses and mapping.has("created"):
        q = sql.SQL("SELECT count(*) FROM {t} g WHERE {c} >= now() - make_interval(secs => {r})").format(
            t=mapping.qualified(), c=mapping.timestamp("created", naive_tz=options.naive_timezone),
            r=sql.Literal(options.trigger_window))
        counted = conn.cursor(row_factory=tuple_row).execute(q).fetchone()
        created_recent = counted[0] if counted is not None else None
    return trigger_failures.read(
        conn, mapping, statuses=options.trigger_statuses, since=options.since, recent=options.trigger_window,
        naive_timezone=options.naive_timezone, error_pattern=options.trigger_error_pattern,
        created_recent=created_recent)


def window_counts(conn: Connection, mapping: SchemaMapping, options: ScanOptions) -> WindowCounts:
    """(rows created in the window, stuck rows created before it); (None, None) without a window.

    On a table of more than EXACT_COUNT_MAX_ROWS rows the first is an ``Estimate`` from a block
    sample of about COUNT_SAMPLE_ROWS rows (a few percent off at worst; the stuck rate says ``~``),
    so the count costs the same on 1M rows as on 5M.
    """
    from psycopg.rows import tuple_row

    pct = sample_pct(mapping)
    q = build_window_counts(mapping, options, sample_pct=pct)
    row = conn.cursor(row_factory=tuple_row).execute(q).fetchone() if q is not None else (None, None)
    assert row is not None  # an aggregate always returns its row
    return WindowCounts(scaled_count(row[0], pct), row[1], trigger_failures_in(conn, mapping, options))


def window_facts(conn: Connection, mapping: SchemaMapping, options: ScanOptions,
                 rules: Sequence[Rule] = DEFAULT_RULES
                 ) -> tuple[int | None, int | None, BeforeWindow | None, TriggerFailures | None]:
    """``window_counts`` plus the stuck rows created before the window, by class and by name."""
    created, stuck_before, failures = window_counts(conn, mapping, options)
    older = before_window(conn, mapping, options, rules) if stuck_before else None
    return created, stuck_before, older, failures


def check_classes(classes: Iterable[str], rules: Sequence[Rule]) -> None:
    """ConfigError naming any of ``classes`` that no rule (nor ``unknown``) produces."""
    known = {r.cls for r in rules} | {"unknown"}
    unknown = [c for c in classes if c not in known]
    if unknown:
        raise ConfigError(f"--class: unknown class {', '.join(unknown)}; classes: {', '.join(sorted(known))}")


def apply_counts(summary: Summary, counts: tuple[Any, ...]) -> Summary:
    """(created in the window, stuck before it[, BeforeWindow][, TriggerFailures]) into ``summary``."""
    summary.created_in_window, summary.stuck_before_window = counts[0], counts[1]
    for extra in counts[2:]:
        if isinstance(extra, BeforeWindow):
            summary.before_window = extra
            # The named rows follow --class; their count must agree with them.
            summary.stuck_before_window = extra.stuck
        elif isinstance(extra, TriggerFailures):
            summary.trigger_failures = extra
    return summary


class ScanRun:
    """Iterate stuck rows from a server-side cursor; ``summary`` is complete once exhausted.

    Must be consumed inside the (read-only) transaction the caller opened.
    """

    def __init__(self, conn: Connection, mapping: SchemaMapping, options: ScanOptions,
                 rules: Sequence[Rule] = DEFAULT_RULES, *, fetch_size: int = 2000,
                 on_row: Callable[[], None] | None = None) -> None:
        self.on_row = on_row  # called per row read (progress)
        self.conn = conn
        self.mapping = mapping
        self.options = options
        self.rules = tuple(rules)
        self.fetch_size = fetch_size
        self.summary = Summary()
        check_classes(options.classes, self.rules)

    def count_window(self, conn: Connection | None = None) -> None:
        """Count rows created in the window (for the stuck rate) and stuck rows before it.

        ``conn``: another connection to count on (the CLI runs this in a thread on a
        second connection, so the count's pass over the table overlaps the scan's).
        """
        self.apply_counts(window_facts(conn or self.conn, self.mapping, self.options, self.rules))
        if self.summary.database_now is None:
            self.summary.database_now = scalar(self.conn, "SELECT now()")

    def apply_counts(self, counts: tuple[Any, ...]) -> Summary:
        """(created in the window, stuck before it[, BeforeWindow][, TriggerFailures]) into the summary."""
        return apply_counts(self.summary, counts)

    def __iter__(self) -> Iterator[StuckRow]:
        from psycopg.rows import dict_row

        # --limit shortens the list, never the counts: every stuck row is read and counted,
        # only the first ``limit`` are yielded.
        limit = self.options.limit
        query = build_scan_query(self.mapping, replace(self.options, limit=None), self.rules)
        want = set(self.options.classes)
        with self.conn.cursor(name="stuckgen_scan", row_factory=dict_row) as cur:
            cur.itersize = self.fetch_size
            cur.execute(query)
            for rec in cur:
                if self.on_row is not None:
                    self.on_row()
                row = _row_to_stuck(rec, self.mapping, self.rules)
                if want and row.cls not in want:
                    continue
                if self.summary.database_now is None:
                    self.summary.database_now = rec["db_now"]
                self.summary.add(row)
                if limit is not None and self.summary.stuck > limit:
                    self.summary.truncated = True
                    continue
                yield row


def explain_advice(conn: Connection, mapping: SchemaMapping, options: ScanOptions, *, min_rows: int = 50000) -> str | None:
    """When the scan would read all of a large table, the partial index that fixes it.

    "All of it": a sequential scan, or an index whose leading column is not the
    status and that has no predicate (the incident's (session_id, status) index is
    read end to end to find the in-flight rows).
    """
    from psycopg.rows import tuple_row

    cur = conn.cursor(row_factory=tuple_row)
    regclass = sql.Literal(mapping.qualified().as_string(conn))
    est = cur.execute(sql.SQL("SELECT reltuples FROM pg_class WHERE oid = to_regclass({})").format(regclass)).fetchone()
    if not est or est[0] is None or est[0] < min_rows:
        return None
    plan = scalar(cur, sql.SQL("EXPLAIN (FORMAT JSON) {}").format(build_scan_query(mapping, options)))
    seq, indexes = _table_access(plan, mapping.table)
    if not seq and indexes:
        serving = scalar(cur, sql.SQL(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = to_regclass({}) AND c.relname = ANY({}) AND (i.indpred IS NOT NULL OR a.attname = {})"
        ).format(regclass, sql.Literal(sorted(indexes)), sql.Literal(mapping["status"].column)))
        if serving:
            return None
    elif not seq:
        return None
    return index_ddl(conn, mapping, options)


def _table_access(node: Any, table: str) -> tuple[bool, set[str]]:
    """(a sequential scan of ``table``, names of the indexes the plan reads) anywhere in the plan."""
    seq, indexes = False, set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, list):
            stack.extend(n)
        elif isinstance(n, dict):
            kind = n.get("Node Type", "")
            if kind == "Seq Scan" and n.get("Relation Name") == table:
                seq = True
            if kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan") and n.get("Index Name") \
                    and n.get("Relation Name", table) == table:
                indexes.add(n["Index Name"])
            stack.extend(v for k, v in n.items() if k in ("Plan", "Plans"))
    return seq, indexes


def index_ddl(conn: Connection, m: SchemaMapping, options: ScanOptions) -> str:
    col = m["created"].column if m.has("created") and not m["created"].path else m["id"].column
    q = sql.SQL("CREATE INDEX CONCURRENTLY {name} ON {tbl} ({col}) WHERE {status} IN ({vals});").format(
        name=sql.Identifier(f"{m.table}_inflight_{col}_idx"[:63]),
        tbl=m.qualified(),
        col=sql.Identifier(col or "id"),
        status=m["status"].ident(),
        vals=sql.SQL(", ").join(sql.Literal(s) for s in options.inflight_statuses),
    )
    return q.as_string(conn)
