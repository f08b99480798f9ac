"""The stuck predicate and its parts in SQL, over row ``g``: quiet past the threshold, no other sign of life,
each class's grace, and ``Rule`` as a condition. ``where_stuck`` is shared by the scan and by the
compare-and-set of remediation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from psycopg import sql

from stuckgen import deadline
from stuckgen.scan.options import CALLBACK_STEPS, ScanOptions
from stuckgen.scan.rules import Rule
from stuckgen.schema import SchemaMapping


def step_log_array(m: SchemaMapping) -> sql.Composable:
    raw = m.raw("step_log")
    return sql.SQL("(CASE WHEN jsonb_typeof({r}::jsonb) = 'array' THEN {r}::jsonb ELSE '[]'::jsonb END)").format(r=raw)


def last_sign_sql(m: SchemaMapping, opts: ScanOptions) -> sql.Composable:
    parts = [m.timestamp(f, naive_tz=opts.naive_timezone) for f in ("heartbeat", "updated", "created") if m.has(f)]
    return sql.SQL("coalesce({})").format(sql.SQL(", ").join(parts))


def past_deadline_sql(m: SchemaMapping, opts: ScanOptions) -> sql.Composable | None:
    """Over row ``g``: its worker started more than max_duration + grace ago; None without --max-duration."""
    if opts.max_duration is None:
        return None
    return deadline.past_limit_sql(m, max_duration=opts.max_duration, naive_tz=opts.naive_timezone)


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
    from stuckgen.scan.run import ScanRun  # here, not above: the scan imports these predicates

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
