"""The statements that select stuck rows: the scan's (rows with their evidence) and the classification
statement (ids and classes only, classified in SQL, for remediation and the window)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from psycopg import sql

from stuckgen import deadline
from stuckgen.scan.options import QUEUE_LOCK_SECONDS, ScanOptions
from stuckgen.scan.predicates import (
    class_sql, grace_sql, last_sign_sql, past_deadline_sql, step_log_array, steps_sql, where_stuck,
)
from stuckgen.scan.rules import DEFAULT_RULES, TRIGGER_FAILED_STEPS, Rule
from stuckgen.schema import SchemaMapping


def evidence_steps(rules: Iterable[Rule]) -> tuple[str, ...]:
    """Steps whose log entries carry detail we report (the failed trigger's HTTP status)."""
    return TRIGGER_FAILED_STEPS


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
