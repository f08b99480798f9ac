"""Find a database's job table and propose the configuration that reads it (`stuckgen init`, `schema`).

Everything here only reads: the catalogs, then a census of the status column (counts
per value overall and in the last day, the newest sign of life per value). Status
values are sorted into in flight / completed / failed / cancelled by the vocabularies
of the apps and providers stuckgen knows; a value no vocabulary knows is never
guessed into the in-flight list, it is shown so a person decides. Every choice
carries the reason that is written beside it in the generated stuckgen.toml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import sql

from stuckgen.db import Connection, scalar
from stuckgen.errors import SchemaError
from stuckgen.schema import MappingConfig, SchemaMapping, resolve


# -- vocabularies -------------------------------------------------------------------------------

INFLIGHT, COMPLETED, FAILED, CANCELLED = "in flight", "completed", "failed", "cancelled"


@dataclass(frozen=True)
class Word:
    role: str
    source: str


def _words(role: str, source: str, *names: str) -> dict[str, Word]:
    return {n: Word(role, source) for n in names}


# Keys are normalised (lower case, '-' and ' ' as '_'). The first vocabulary to name a word wins,
# so the more specific sources come first.
VOCABULARY: dict[str, Word] = {}
for _chunk in (
    _words(INFLIGHT, "Replicate's first status (the prediction is booting)", "starting"),
    _words(INFLIGHT, "Replicate's and the incident app's running status", "processing"),
    _words(COMPLETED, "Replicate's success status", "succeeded"),
    _words(CANCELLED, "Replicate's cancelled status", "canceled"),
    _words(FAILED, "Replicate's and the incident app's failure status", "failed"),
    _words(CANCELLED, "Replicate's status for a prediction stopped by its deadline", "aborted"),
    _words(INFLIGHT, "the incident app's status before processing", "queued"),
    _words(COMPLETED, "the incident app's success status", "completed"),
    _words(CANCELLED, "the incident app's cancelled status", "cancelled"),
    _words(CANCELLED, "the incident app's status for a row its sweeper dismissed", "dismissed"),
    _words(INFLIGHT, "fal's queue status", "in_queue"),
    _words(INFLIGHT, "fal's running status (also a common word)", "in_progress"),
    _words(INFLIGHT, "pg-boss's state for a job waiting to run", "created"),
    _words(INFLIGHT, "pg-boss's state for a job waiting to be retried", "retry"),
    _words(INFLIGHT, "pg-boss's state for a job being worked on", "active"),
    _words(FAILED, "pg-boss's state for a job whose expiry passed (older versions)", "expired"),
    _words(INFLIGHT, "a common word for work not finished", "pending", "running", "started", "submitted",
           "waiting", "scheduled", "generating", "uploading", "training", "inprogress", "in_flight",
           "enqueued", "dispatched", "claimed", "locked", "working", "busy", "new", "initiated", "initializing"),
    _words(COMPLETED, "a common word for finished work", "done", "success", "successful", "complete", "finished",
           "processed", "ready", "ok", "delivered", "uploaded", "generated"),
    _words(FAILED, "a common word for failed work", "error", "errored", "failure", "timeout", "timed_out",
           "rejected", "dead", "killed", "crashed", "stuck_failed"),
    _words(CANCELLED, "a common word for abandoned work", "skipped", "abandoned", "revoked", "discarded"),
):
    for _k, _w in _chunk.items():
        VOCABULARY.setdefault(_k, _w)


def normalise(value: str) -> str:
    return re.sub(r"[\s-]+", "_", value.strip()).lower()


def word(value: str) -> Word | None:
    return VOCABULARY.get(normalise(value))


# -- catalog ------------------------------------------------------------------------------------

_STATUS_NAME = re.compile(r"^(status|state)$|(_status|Status|_state|State)$")
_PROVIDER_EXACT = ("replicate_prediction_id", "replicatePredictionId", "prediction_id", "predictionId",
                   "replicate_id", "replicateId", "fal_request_id", "falRequestId", "provider_job_id",
                   "providerJobId", "request_id", "requestId", "external_id", "externalId")
_PROVIDER_PATTERN = re.compile(r"(prediction_?id|PredictionId|_request_id|RequestId|replicate_?id|ReplicateId)$")
_GENERIC_PROVIDER = {"request_id", "requestId", "external_id", "externalId"}
_TIME_TYPES = ("timestamp without time zone", "timestamp with time zone")


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    udt: str
    not_null: bool


def _catalog(conn: Connection, db_schema: str) -> dict[str, list[Column]]:
    rows = conn.execute(
        "SELECT c.table_name, c.column_name, c.data_type, c.udt_name, c.is_nullable = 'NO' "
        "FROM information_schema.columns c JOIN information_schema.tables t "
        "ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE' "
        "WHERE c.table_schema = %s ORDER BY c.table_name, c.ordinal_position", (db_schema,)).fetchall()
    out: dict[str, list[Column]] = {}
    for t, name, dt, udt, nn in rows:
        out.setdefault(t, []).append(Column(name, dt, udt, bool(nn)))
    return out


def _estimates(conn: Connection, db_schema: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT c.relname, greatest(c.reltuples, coalesce(s.n_live_tup, 0))::bigint FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')", (db_schema,)).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def enum_labels(conn: Connection, db_schema: str, table: str, column: str) -> tuple[str, ...] | None:
    """The labels of an enum column in their declared order; None when the column is no enum."""
    rows = conn.execute(
        "SELECT e.enumlabel FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "JOIN pg_enum e ON e.enumtypid = t.oid WHERE a.attrelid = to_regclass(%s) AND a.attname = %s "
        "ORDER BY e.enumsortorder", (sql.Identifier(db_schema, table).as_string(conn), column)).fetchall()
    return tuple(r[0] for r in rows) or None


def _status_columns(cols: Sequence[Column]) -> list[Column]:
    return [c for c in cols if _STATUS_NAME.search(c.name)
            and (c.data_type in ("text", "character varying", "character") or c.data_type == "USER-DEFINED")]


def _prefix(status_col: str) -> str:
    return re.sub(r"(_?status|_?state|Status|State)$", "", status_col)


def provider_columns(cols: Sequence[Column], status_col: str, other_status: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Columns that may hold the provider's id for rows of ``status_col``, best first, each with why."""
    names = [c.name for c in cols if c.data_type in ("text", "character varying", "uuid", "character")]
    prefix = _prefix(status_col).lower()
    others = [_prefix(s).lower() for s in other_status if s != status_col and _prefix(s)]
    found: list[tuple[int, str, str]] = []
    for n in names:
        exact = n in _PROVIDER_EXACT
        if not exact and not _PROVIDER_PATTERN.search(n):
            continue
        score = 0 if exact else 1
        why = "a provider id by name" + (" (a generic name: check it holds the provider's id)" if n in _GENERIC_PROVIDER else "")
        if n in _GENERIC_PROVIDER:
            score += 2
        low = n.lower()
        if prefix and low.startswith(prefix):
            score -= 4
            why = f"a provider id named like the status column {status_col!r} (same prefix {_prefix(status_col)!r})"
        elif any(o and low.startswith(o) for o in others):
            score += 4  # another status column's provider id (hdStatus -> hdPredictionId)
            why += ", but named like another status column"
        found.append((score, n, why))
    return [(n, why) for _s, n, why in sorted(found)]


@dataclass(frozen=True)
class Candidate:
    """A table that looks like a job table: a status column beside a creation time."""

    table: str
    status: str
    created: str | None
    rows: int
    score: int
    reasons: tuple[str, ...]


def candidates(conn: Connection, db_schema: str) -> list[Candidate]:
    """Job-table candidates in ``db_schema``, best first."""
    cat = _catalog(conn, db_schema)
    est = _estimates(conn, db_schema)
    out: list[Candidate] = []
    for table, cols in cat.items():
        if table.startswith("stuckgen_") or table.startswith("_prisma"):
            continue
        statuses = _status_columns(cols)
        if not statuses:
            continue
        names = {c.name for c in cols}
        times = [c.name for c in cols if c.data_type in _TIME_TYPES or c.data_type in ("bigint",)]
        created = next((t for t in ("created_at", "createdAt", "inserted_at", "created", "created_on", "createdon")
                        if t in names), None)
        status = next((c for c in statuses if c.name in ("status", "state")), statuses[0])
        reasons = [f"status column {status.name!r} ({status.udt if status.data_type == 'USER-DEFINED' else status.data_type})"]
        score = 2
        if created:
            score += 2
            reasons.append(f"creation time {created!r}")
        elif not times:
            continue
        if any(n in names for n in ("updated_at", "updatedAt", "modified_at")):
            score += 1
        prov = provider_columns(cols, status.name, [s.name for s in statuses])
        if prov:
            score += 3
            reasons.append(f"provider id {prov[0][0]!r}")
        if any(c.data_type in ("json", "jsonb") for c in cols):
            score += 1
        if re.search(r"generat|job|shot|prediction|task|render|image|video|run", table, re.I):
            score += 2
            reasons.append("a name used for generation jobs")
        out.append(Candidate(table=table, status=status.name, created=created, rows=est.get(table, 0),
                             score=score, reasons=tuple(reasons)))
    return sorted(out, key=lambda c: (-c.score, -c.rows, c.table))


# -- census -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueCount:
    value: str
    rows: int
    last_day: int
    newest_sign_seconds: float | None  # how long ago the liveliest row in this status showed life
    role: str | None
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "rows": self.rows, "last_day": self.last_day,
                "newest_sign_of_life_seconds_ago": None if self.newest_sign_seconds is None
                else round(self.newest_sign_seconds, 3), "role": self.role, "why": self.why}


@dataclass(frozen=True)
class Census:
    """Status values of one table, with the role each plays."""

    table: str
    column: str
    data_type: str
    enum: tuple[str, ...] | None
    values: tuple[ValueCount, ...]
    total: int
    database_now: datetime | None = None

    def role_values(self, role: str) -> list[str]:
        return [v.value for v in self.values if v.role == role]

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "column": self.column, "type": self.data_type,
                "enum_labels": list(self.enum) if self.enum is not None else None, "rows": self.total,
                "values": [v.as_dict() for v in self.values]}


MAX_VALUES = 60


def census(conn: Connection, mapping: SchemaMapping, *, naive_tz: str = "UTC") -> Census:
    """Counts per status value (overall, last day) and the newest sign of life in each."""
    from stuckgen.scan import ScanOptions, last_sign_sql

    m = mapping
    status = m["status"]
    opts = ScanOptions(naive_timezone=naive_tz)
    created = m.timestamp("created", naive_tz=naive_tz) if m.has("created") else sql.SQL("NULL::timestamptz")
    last = last_sign_sql(m, opts)
    q = sql.SQL(
        "SELECT {s}::text AS v, count(*), count(*) FILTER (WHERE {c} >= now() - interval '1 day'), "
        "extract(epoch FROM now() - max({ls}))::float8, now() FROM {t} g GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {n}"
    ).format(s=m.raw("status"), c=created, ls=last, t=m.qualified(), n=sql.Literal(MAX_VALUES))
    rows = conn.execute(q).fetchall()
    labels = enum_labels(conn, m.db_schema, m.table, status.column) if status.column and not status.path else None
    values: list[ValueCount] = []
    now = rows[0][4] if rows else None
    seen = set()
    for v, n, day, newest, _now in rows:
        value = "" if v is None else v
        seen.add(value)
        role, why = _role(value, v is None)
        values.append(ValueCount(value=value, rows=int(n), last_day=int(day), newest_sign_seconds=newest,
                                 role=role, why=why))
    for label in labels or ():
        if label not in seen:  # an enum label no row holds yet still has a role
            role, why = _role(label, False)
            values.append(ValueCount(value=label, rows=0, last_day=0, newest_sign_seconds=None, role=role, why=why))
    return Census(table=m.table, column=status.describe(), data_type=status.data_type or "",
                  enum=labels, values=tuple(values), total=sum(v.rows for v in values), database_now=now)


def statuses_unseen(conn: Connection, mapping: SchemaMapping, statuses: Sequence[str]) -> tuple[str, ...]:
    """The given statuses that no row holds: a typo in the in-flight statuses finds nothing, forever.

    One EXISTS per status, so a status that occurs costs a short read; only an absent one
    reads the whole table (or its status index).
    """
    if not statuses:
        return ()
    q = sql.SQL(
        "SELECT u.s FROM unnest({v}::text[]) WITH ORDINALITY u(s, i) "
        "WHERE NOT EXISTS (SELECT 1 FROM {t} g WHERE {st} = u.s) ORDER BY u.i"
    ).format(v=sql.Literal(list(statuses)), t=mapping.qualified(), st=mapping.text("status"))
    return tuple(r[0] for r in conn.execute(q).fetchall())


def _role(value: str, is_null: bool) -> tuple[str | None, str]:
    if is_null:
        return None, "NULL status: never in flight"
    w = word(value)
    if w is None:
        return None, "no vocabulary stuckgen knows names it: left out of the in-flight statuses (add it if it means work in progress)"
    return w.role, w.source


# -- the proposal -------------------------------------------------------------------------------


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
    cands = candidates(conn, schema_name)
    cat = _catalog(conn, schema_name)
    queues = tuple(queue_census(conn, threshold=threshold))
    if table is None:
        if not cands:
            tables = ", ".join(sorted(cat)[:30]) or "none"
            found = "; ".join(queue_summary(q) for q in queues)
            raise SchemaError(f"no table in schema {schema_name!r} has a status column beside a time; tables: {tables}"
                              + (f"; job-queue libraries found: {found}" if found else ""),
                              hint="name it: stuckgen init --table NAME (and --map status=COLUMN if needed)")
        chosen = cands[0]
        table = chosen.table
        others = tuple(c for c in cands[1:6])
        pick_why = f"the best of {len(cands)} candidate tables: " + ", ".join(chosen.reasons)
    else:
        if table not in cat:
            tables = ", ".join(sorted(cat)[:30]) or "none"
            raise SchemaError(f"table {table!r} not found in schema {schema_name!r}; tables there: {tables}",
                              hint="table names are case-sensitive: a Prisma model Shot is the table \"Shot\"")
        others = ()
        pick_why = "named with --table"
    cols = cat[table]
    statuses = _status_columns(cols)
    if not statuses:
        raise SchemaError(f"{table!r} has no status or state column (text or enum); columns: "
                          + ", ".join(c.name for c in cols), hint="map it: stuckgen init --table NAME --map status=COLUMN")
    status = next((c for c in statuses if c.name in ("status", "state")), statuses[0])

    mapping_choices: list[Choice] = []
    overrides: dict[str, str] = {}
    if status.name not in ("status", "state"):
        overrides["status"] = status.name
    prov = provider_columns(cols, status.name, [s.name for s in statuses])
    if prov:
        overrides["webhook"] = prov[0][0]
    m = resolve(conn, MappingConfig(table=table, db_schema=schema_name, overrides=overrides, outputs=None, queue=None))
    cen = census(conn, m, naive_tz=naive_tz)

    top: list[Choice] = [Choice("table", table, pick_why)]
    if db_schema:
        top.append(Choice("db_schema", schema_name, "named with --db-schema"))
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
    notes: list[str] = []
    for role in (COMPLETED, FAILED, CANCELLED):
        vals = cen.role_values(role)
        if vals:
            notes.append(f"terminal ({role}): " + ", ".join(f"{v!r}" for v in vals))
    unknown = [v for v in cen.values if v.role is None and v.value]
    for v in unknown:
        notes.append(f"{v.value!r} ({v.rows} rows): {v.why}")

    for name, f in m.fields.items():
        if name in ("id",) and f.column == "id":
            continue
        if f.present:
            why = f.source
            if name == "webhook":
                how = prov[0][1] if prov and prov[0][0] == f.column and not f.path else f.source
                why = f"the provider's prediction id ({how}): rows that have one wait on the provider"
            elif name == "status":
                why = f"the status column ({cen.total} rows, {len(cen.values)} values)"
            elif name in ("created", "updated") and f.data_type == "timestamp without time zone":
                why = f"{f.source}; timestamp without time zone, read as {naive_tz} (naive_timezone)"
            mapping_choices.append(Choice(name, f.describe(), why))
        else:
            mapping_choices.append(Choice(name, "none", _MISSING.get(name, "not found")))
    for side, (spec, reason) in _side_tables(conn, schema_name, table, m, cat):
        mapping_choices.append(Choice(side, spec, reason))
    if len(prov) > 1:
        notes.append("other provider id columns: " + ", ".join(f"{n!r} ({w})" for n, w in prov[1:]))
    other_status = [s.name for s in statuses if s.name != status.name]
    if other_status:
        notes.append("other status columns (each can be its own configuration with --map status=COLUMN): "
                     + ", ".join(repr(s) for s in other_status))
    return Proposal(db_schema=schema_name, table=table, census=cen, top=tuple(top), mapping=tuple(mapping_choices),
                    notes=tuple(notes), others=others, warnings=tuple(m.warnings), queues=queues)


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


# -- stuckgen.toml ------------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    import json

    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a TOML basic string is a JSON string for these values


def _comment(text: str, width: int = 96) -> list[str]:
    import textwrap

    return ["# " + line for line in textwrap.wrap(text, width - 2)] or ["#"]


def toml_text(p: Proposal, *, generated_at: str, source: str) -> str:
    """The commented stuckgen.toml: every choice with its reason on the lines above it."""
    lines = [f"# stuckgen.toml written by `stuckgen init` at {generated_at} from {source}.",
             "# Every value below has its reason above it; `stuckgen schema` shows the same census.",
             "# Precedence: flag > environment > .env > this file > default.", ""]
    lines.append(f"# Status census of {p.table}.{p.census.column} ({p.census.total} rows):")
    for v in p.census.values:
        ago = "-" if v.newest_sign_seconds is None else _ago(v.newest_sign_seconds)
        lines.append(f"#   {v.value!r:<24} {v.rows:>8} row{'s' if v.rows != 1 else ' '}, {v.last_day:>6} in the last day, "
                     f"newest sign of life {ago}: {v.role or 'unknown'}")
    if p.census.enum is not None:
        lines.append(f"# The column is an enum; its labels: {', '.join(p.census.enum)}")
    for n in p.notes:
        lines += _comment(n)
    for q in p.queues:
        lines.append(f"# Job-queue library {q.library} in {q.table}, read by its own rules"
                     f" ({q.stuck} stuck):")
        for kind, n in sorted(q.counts.items()):
            eg = f" e.g. {', '.join(q.examples.get(kind, [])[:3])}" if kind in ("lock-expired", "queued-not-drained",
                                                                                  "expired-active", "failed") else ""
            lines += _comment(f"  {kind}: {n} job{'s' if n != 1 else ''}{eg}: {q.meaning.get(kind, kind)}")
        lines.append("#   (stuckgen reports these here; scan/fail/retrigger read the job table configured below;")
        lines.append(f"#   to read the library's jobs instead: queue_library = \"{q.library}\")")
    if p.others:
        lines.append("# Other candidate tables (use --table to pick one):")
        for c in p.others:
            lines.append(f"#   {c.table}: {', '.join(c.reasons)}")
    lines.append("")
    for top in p.top:
        lines += _comment(f"{top.key}: {top.why}")
        if top.value is None and top.key == "provider_results":
            lines.append('# provider_results = "webhook"  # or "sync", "polling", "none"')
        elif top.value is None:
            lines.append(f"# {top.key} = \"\"")
        else:
            lines.append(f"{top.key} = {_toml_value(top.value)}")
        lines.append("")
    lines.append("[mapping]")
    lines.append("# Where each field lives: a column, column.json.key, or \"none\".")
    for choice in p.mapping:
        lines += _comment(f"{choice.key}: {choice.why}")
        lines.append(f"{choice.key} = {_toml_value(choice.value)}")
    return "\n".join(lines) + "\n"


def _ago(seconds: float) -> str:
    from stuckgen.durations import format_duration

    return f"{format_duration(max(0.0, seconds))} ago"


# -- job-queue libraries as the job table (queue mode) --------------------------------------------

# What each library's rules mean for stuckgen, written above queue_library in the generated file.
_LIBRARY_SEMANTICS = {
    "graphile-worker": (
        "graphile-worker keeps jobs in graphile_worker._private_jobs (its public view: graphile_worker.jobs). "
        "A worker takes a job by setting locked_at/locked_by; there is no heartbeat, and a running worker "
        "unlocks jobs locked longer than 4 hours, so a job locked longer than that is lock-expired (its worker "
        "is gone) and one locked less is alive as far as anyone can tell. An unlocked job due (run_at) longer "
        "than the threshold is queued-not-drained: no worker is taking jobs. attempts >= max_attempts is failed "
        "for good, with last_error; finished jobs are deleted. retrigger and fail use its own admin functions "
        "(force_unlock_workers, reschedule_jobs, permanently_fail_jobs)."),
    "pg-boss": (
        "pg-boss keeps jobs in pgboss.job with a state: created, retry, active, completed, cancelled, failed. "
        "An active job whose started_on + expire_in has passed is expired-active: its consumer is gone, and "
        "only pg-boss's supervisor (maintenance) turns it into a retry or a failure. A created/retry job due "
        "(start_after) longer than the threshold is queued-not-drained: no consumer is fetching. "
        "retry_count/retry_limit are its attempts. stuckgen never writes pg-boss jobs (boss.retry / boss.fail "
        "from the app's code)."),
}


@dataclass(frozen=True)
class QueueProposal:
    """The configuration init writes when the jobs live in a job-queue library's own tables."""

    libraries: tuple[str, ...]
    queues: tuple[Any, ...]  # queues.QueueCensus
    threshold: Choice
    why: str


def propose_queues(conn: Connection, *, threshold: float, libraries: Sequence[str] | None = None,
                   why: str = "") -> QueueProposal | None:
    """queue_library for the libraries found (or named), with their census; None when there are none."""
    from stuckgen.durations import format_duration
    from stuckgen.queues import queue_census

    queues = tuple(q for q in queue_census(conn, threshold=threshold) if libraries is None or q.library in libraries)
    if not queues:
        return None
    choice = Choice("threshold", format_duration(threshold),
                    f"how long a due job may wait for a worker before it is queued-not-drained: {format_duration(threshold)} "
                    "is many poll intervals of both libraries (graphile-worker polls every 2s, pg-boss every 2s by "
                    "default; LISTEN/NOTIFY usually starts a job at once); raise it if the workers are busy for longer "
                    "at peak. graphile-worker's lock-expired (4 hours) and pg-boss's expired-active (each job's "
                    "expire_in) follow the library's own rules, whatever this is")
    return QueueProposal(libraries=tuple(q.library for q in queues), queues=queues, threshold=choice,
                         why=why or "no app table has a status column beside a time, and these libraries' tables are here")


def propose_config(conn: Connection, *, table: str | None = None, db_schema: str | None = None,
                   naive_tz: str = "UTC", threshold: float = 120.0) -> Proposal | QueueProposal:
    """``propose``, or queue mode when the jobs live in a library's tables: a --table naming the library's
    own table, or no app job table at all beside a library's."""
    from stuckgen.queues.read import _LIBRARY_TABLES

    if table is not None:
        name = table if "." in table or not db_schema else f"{db_schema}.{table}"
        lib = _LIBRARY_TABLES.get(name.lower())
        if lib:
            found = propose_queues(conn, threshold=threshold, libraries=(lib,), why=f"named with --table {table}")
            if found is None:
                raise SchemaError(f"{name} is {lib}'s table, and it is not in this database",
                                  hint=f"{lib}'s own migrations create it")
            return found
    if table is None and not candidates(conn, db_schema or scalar(conn, "SELECT current_schema()")):
        found = propose_queues(conn, threshold=threshold)
        if found is not None:
            return found
    return propose(conn, table=table, db_schema=db_schema, naive_tz=naive_tz, threshold=threshold)


def queue_toml_text(p: QueueProposal, *, generated_at: str, source: str) -> str:
    """The commented stuckgen.toml of queue mode: the libraries' census and rules, then the settings."""
    lines = [f"# stuckgen.toml written by `stuckgen init` at {generated_at} from {source}.",
             "# Queue mode: stuckgen reads the jobs of a job-queue library by its own rules instead of an app table",
             "# (scan, show, check, doctor; retrigger and fail through graphile-worker's own admin functions).",
             "# Precedence: flag > environment > .env > this file > default.", ""]
    for q in p.queues:
        lines.append(f"# {q.library} in {q.table}, read by its own rules ({q.stuck} stuck now):")
        for kind, n in sorted(q.counts.items()):
            eg = f" e.g. {', '.join(q.examples.get(kind, [])[:3])}" if kind not in ("completed", "cancelled") else ""
            lines += _comment(f"  {kind}: {n} job{'s' if n != 1 else ''}{eg}: {q.meaning.get(kind, kind)}")
        lines += _comment(_LIBRARY_SEMANTICS[q.library])
        lines.append("")
    lines += _comment(f"queue_library: {', '.join(p.libraries)} ({p.why})")
    lines.append(f"queue_library = {_toml_value(list(p.libraries))}")
    lines.append("")
    lines += _comment(f"threshold: {p.threshold.why}")
    lines.append(f"threshold = {_toml_value(p.threshold.value)}")
    return "\n".join(lines) + "\n"


def config_text(p: Proposal | QueueProposal, *, generated_at: str, source: str) -> str:
    """The generated stuckgen.toml for either kind of proposal."""
    if isinstance(p, QueueProposal):
        return queue_toml_text(p, generated_at=generated_at, source=source)
    return toml_text(p, generated_at=generated_at, source=source)
