"""The configuration proposed for an app's job table: each value with the reason written beside it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from stuckgen.db import Connection, scalar
from stuckgen.discover.catalog import Candidate, Column, candidates, catalog, provider_columns, status_columns
from stuckgen.discover.census import Census, census
from stuckgen.discover.vocab import CANCELLED, COMPLETED, FAILED, INFLIGHT, normalise
from stuckgen.errors import SchemaError
from stuckgen.schema import MappingConfig, SchemaMapping, resolve


@dataclass(frozen=True)
class Choice:
    key: str
    value: Any
    why: str


@dataclass(frozen=True)
class Proposal:
    """The configuration init writes, each value with its reason."""

    db_schema: str
    table: str
    census: Census
    top: tuple[Choice, ...]
    mapping: tuple[Choice, ...]
    notes: tuple[str, ...]
    others: tuple[Candidate, ...] = ()
    library: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    queues: tuple[Any, ...] = ()  # queues.QueueCensus of graphile-worker / pg-boss found beside the table


def propose(conn: Connection, *, table: str | None = None, db_schema: str | None = None,
            naive_tz: str = "UTC", threshold: float = 120.0) -> Proposal:
    """Inspect the database and propose a configuration; SchemaError when no job table is found."""
    from stuckgen.queues import queue_census

    schema_name = db_schema or scalar(conn, "SELECT current_schema()")
    cat = catalog(conn, schema_name)
    queues = tuple(queue_census(conn, threshold=threshold))
    table, others, pick_why = _choose_table(conn, schema_name, cat, table, queues)
    statuses = status_columns(cat[table])
    if not statuses:
        raise SchemaError(f"{table!r} has no status or state column (text or enum); columns: "
                          + ", ".join(c.name for c in cat[table]),
                          hint="map it: stuckgen init --table NAME --map status=COLUMN")
    status = next((c for c in statuses if c.name in ("status", "state")), statuses[0])
    prov = provider_columns(cat[table], status.name, [s.name for s in statuses])
    overrides = {**({"status": status.name} if status.name not in ("status", "state") else {}),
                 **({"webhook": prov[0][0]} if prov else {})}
    m = resolve(conn, MappingConfig(table=table, db_schema=schema_name, overrides=overrides, outputs=None, queue=None))
    cen = census(conn, m, naive_tz=naive_tz)
    top = [Choice("table", table, pick_why)]
    if db_schema:
        top.append(Choice("db_schema", schema_name, "named with --db-schema"))
    top += _top_choices(conn, m, cen, status, naive_tz=naive_tz, threshold=threshold)
    mapping = _mapping_choices(m, cen, prov, naive_tz=naive_tz) + [
        Choice(side, spec, reason) for side, (spec, reason) in _side_tables(conn, schema_name, table, m, cat)]
    return Proposal(db_schema=schema_name, table=table, census=cen, top=tuple(top), mapping=tuple(mapping),
                    notes=tuple(_notes(cen, prov, [s.name for s in statuses if s.name != status.name])),
                    others=others, warnings=tuple(m.warnings), queues=queues)


def _choose_table(conn: Connection, schema_name: str, cat: Mapping[str, Sequence[Column]], table: str | None,
                  queues: Sequence[Any]) -> tuple[str, tuple[Candidate, ...], str]:
    """The job table (named, or the best candidate), the runners-up, and why it was chosen."""
    if table is not None:
        if table not in cat:
            tables = ", ".join(sorted(cat)[:30]) or "none"
            raise SchemaError(f"table {table!r} not found in schema {schema_name!r}; tables there: {tables}",
                              hint="table names are case-sensitive: a Prisma model Shot is the table \"Shot\"")
        return table, (), "named with --table"
    cands = candidates(conn, schema_name)
    if not cands:
        tables = ", ".join(sorted(cat)[:30]) or "none"
        found = "; ".join(queue_summary(q) for q in queues)
        raise SchemaError(f"no table in schema {schema_name!r} has a status column beside a time; tables: {tables}"
                          + (f"; job-queue libraries found: {found}" if found else ""),
                          hint="name it: stuckgen init --table NAME (and --map status=COLUMN if needed)")
    chosen = cands[0]
    return chosen.table, tuple(cands[1:6]), f"the best of {len(cands)} candidate tables: " + ", ".join(chosen.reasons)


def _top_choices(conn: Connection, m: SchemaMapping, cen: Census, status: Column, *, naive_tz: str,
                 threshold: float) -> list[Choice]:
    """The top-level settings: in-flight statuses, naive_timezone, threshold, failed_status, provider_results."""
    top: list[Choice] = []
    inflight = cen.role_values(INFLIGHT)
    if inflight:
        why = "; ".join(f"{v.value!r}: {v.rows} rows ({v.last_day} in the last day), {v.why}"
                        for v in cen.values if v.role == INFLIGHT)
        top.append(Choice("inflight_statuses", inflight, why))
    else:
        top.append(Choice("inflight_statuses", [], "no status value is a known in-flight word: fill this in"))
    naive = [n for n, f in m.fields.items() if f.present and not f.path and f.data_type == "timestamp without time zone"]
    if naive:
        server_tz = scalar(conn, "SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'")
        top.append(Choice("naive_timezone", naive_tz,
                          f"{', '.join(naive)} {'is' if len(naive) == 1 else 'are'} timestamp without time zone; "
                          f"Prisma and most ORMs write UTC there whatever the server's TimeZone ({server_tz}), "
                          "and stuckgen measures on the database clock in UTC"))
    top.append(_threshold_choice(conn, m, cen, threshold))
    failed = _pick(cen, FAILED)
    enum_note = f" (an enum label of {status.udt})" if cen.enum else ""
    if failed:
        top.append(Choice("failed_status", failed, f"what `fail` writes: {failed!r} is the failure value{enum_note}"))
    else:
        valid = f"; valid labels: {', '.join(cen.enum)}" if cen.enum else ""
        top.append(Choice("failed_status", None,
                          f"no failure value exists for {status.name!r}{valid}: `fail` cannot mark rows failed here"))
    if m.has("webhook"):
        top.append(Choice("provider_results", None,
                          "how does the app learn a provider's result: webhook, sync (a route asking the provider), "
                          "polling (the browser asks while the page is open) or none? The database does not say; "
                          "doctor's advice for rows waiting on the provider follows this"))
    return top


def _mapping_choices(m: SchemaMapping, cen: Census, prov: Sequence[tuple[str, str]], *,
                     naive_tz: str) -> list[Choice]:
    """Where each logical field lives, with the reason (or why it is missing)."""
    choices: list[Choice] = []
    for name, f in m.fields.items():
        if name in ("id",) and f.column == "id":
            continue
        if not f.present:
            choices.append(Choice(name, "none", _MISSING.get(name, "not found")))
            continue
        why = f.source
        if name == "webhook":
            how = prov[0][1] if prov and prov[0][0] == f.column and not f.path else f.source
            why = f"the provider's prediction id ({how}): rows that have one wait on the provider"
        elif name == "status":
            why = f"the status column ({cen.total} rows, {len(cen.values)} values)"
        elif name in ("created", "updated") and f.data_type == "timestamp without time zone":
            why = f"{f.source}; timestamp without time zone, read as {naive_tz} (naive_timezone)"
        choices.append(Choice(name, f.describe(), why))
    return choices


def _notes(cen: Census, prov: Sequence[tuple[str, str]], other_status: Sequence[str]) -> list[str]:
    """The terminal values, values no vocabulary knows, other provider id and status columns."""
    notes: list[str] = []
    for role in (COMPLETED, FAILED, CANCELLED):
        vals = cen.role_values(role)
        if vals:
            notes.append(f"terminal ({role}): " + ", ".join(f"{v!r}" for v in vals))
    for v in cen.values:
        if v.role is None and v.value:
            notes.append(f"{v.value!r} ({v.rows} rows): {v.why}")
    if len(prov) > 1:
        notes.append("other provider id columns: " + ", ".join(f"{n!r} ({w})" for n, w in prov[1:]))
    if other_status:
        notes.append("other status columns (each can be its own configuration with --map status=COLUMN): "
                     + ", ".join(repr(s) for s in other_status))
    return notes


def _threshold_choice(conn: Connection, m: SchemaMapping, cen: Census, threshold: float) -> Choice:
    """The threshold, with its reason: from the heartbeat when there is one, else from how long completed rows
    took (created to updated): a healthy run without a heartbeat may be quiet that long."""
    import math

    from stuckgen.durations import format_duration as fd

    if m.has("heartbeat"):
        return Choice("threshold", fd(threshold),
                      f"quiet time counts from the heartbeat ({m.fields['heartbeat'].describe()}): {fd(threshold)} is "
                      "several beats of a worker that beats every 30s or less; keep it at 3-4 of the app's intervals")
    done = cen.role_values(COMPLETED)
    c, u, st = m.fields.get("created"), m.fields.get("updated"), m.fields.get("status")
    timed = all(f is not None and f.present and not f.path and str(f.data_type or "").startswith("timestamp")
                for f in (c, u))
    if done and timed and c is not None and u is not None and st is not None and st.column and not st.path:
        q = sql.SQL("SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY d), "
                    "percentile_cont(0.99) WITHIN GROUP (ORDER BY d) FROM (SELECT extract(epoch FROM {u} - {c})::float8 "
                    "AS d FROM {t} WHERE {s}::text = ANY(%s) AND {u} >= {c} ORDER BY {c} DESC LIMIT 10000) x").format(
            u=sql.Identifier(str(u.column)), c=sql.Identifier(str(c.column)), t=m.qualified(),
            s=sql.Identifier(st.column))
        n, p50, p99 = conn.execute(q, (done,)).fetchone() or (0, None, None)
        if n and p50 is not None and p99 is not None:
            proposed = float(max(threshold, math.ceil(p99 / 60.0) * 60.0))
            how = (f"the default {fd(threshold)} is above that" if proposed == threshold
                   else "so the threshold is that p99 rounded up to the minute, or live rows would look stuck")
            return Choice("threshold", fd(proposed),
                          f"{n} completed rows took {fd(p50)} (median) and {fd(p99)} (p99) from created to updated, and "
                          f"the app writes no heartbeat, so a healthy run can be quiet that long; {how}")
    return Choice("threshold", fd(threshold),
                  "the default: no heartbeat, and no completed rows with both times to measure how long work takes; "
                  "raise it above the longest quiet time of a healthy run")


def queue_summary(q: Any) -> str:
    counts = ", ".join(f"{n} {k}" for k, n in sorted(q.counts.items())) or "no jobs"
    return f"{q.library} ({q.table}: {counts})"


_MISSING = {
    "updated": "no update time: quiet time is measured from the heartbeat or the creation time",
    "heartbeat": "no heartbeat column or JSON key: a running row and a dead one look alike until the threshold",
    "last_step": "no last-step field",
    "step_log": "no step log: trigger failures and steps cannot be read",
    "error": "no error field",
    "user": "no user column",
    "processing_lock": "no processing lock",
    "webhook": "no provider id: rows handed to a provider cannot be told apart",
    "created": "no creation time: the stuck rate and the window are unavailable",
}


def _pick(cen: Census, role: str) -> str | None:
    """The value ``fail`` should write: one rows already hold, else an enum label; the vocabulary's first."""
    vals = [v for v in cen.values if v.role == role]
    if not vals:
        return None
    exact = next((v.value for v in vals if normalise(v.value) == "failed"), None)
    return exact or max(vals, key=lambda v: v.rows).value


def _side_tables(conn: Connection, db_schema: str, table: str, m: SchemaMapping,
                 cat: Mapping[str, Sequence[Column]]) -> list[tuple[str, tuple[str, str]]]:
    """Tables whose foreign key points at the job table: a queue (lock columns) or outputs (a URL)."""
    rows = conn.execute(
        "SELECT cl.relname, a.attname FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = cl.relnamespace JOIN pg_attribute a ON a.attrelid = c.conrelid "
        "AND a.attnum = c.conkey[1] WHERE c.contype = 'f' AND c.confrelid = to_regclass(%s) AND n.nspname = %s "
        "ORDER BY 1", (m.qualified().as_string(conn), db_schema)).fetchall()
    refs = list(rows)
    # Without a foreign key, a column named after the table (generation_id, shotId) still points at it.
    singular = table[:-1] if table.endswith("s") else table
    guesses = {f"{singular}_id", f"{singular.lower()}_id", f"{singular[:1].lower()}{singular[1:]}Id", "generation_id"}
    for other, cols in cat.items():
        if other != table and all(r[0] != other for r in refs):
            hit = next((c.name for c in cols if c.name in guesses), None)
            if hit:
                refs.append((other, hit))
    queue = outputs = None
    for ref_table, key in refs:
        names = {c.name for c in cat.get(ref_table, ())}
        if queue is None and names & {"locked_at", "lockedAt", "run_after", "runAfter", "attempts"}:
            queue = (f"{ref_table}.{key}", f"{ref_table!r} points at {table!r} through {key!r} and has lock/attempt columns")
        elif outputs is None and any(re.search(r"url|path|file", n, re.I) for n in names):
            outputs = (f"{ref_table}.{key}", f"{ref_table!r} points at {table!r} through {key!r} and holds files")
    return [("queue", queue or ("none", "no table with lock columns points at this table")),
            ("outputs", outputs or ("none", "no table of files points at this table"))]
