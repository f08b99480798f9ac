"""Logical fields -> columns or JSON key paths, resolved by introspection with overrides.

Each logical field (heartbeat, last step, ...) maps to a real column, a key path
inside a JSON column, or nothing. A field mapped to nothing lowers what scan can
conclude; it never breaks a command. ``stuckgen schema`` prints the result.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg import sql

from stuckgen.db import Connection
from stuckgen.errors import ConfigError, SchemaError

if TYPE_CHECKING:
    from stuckgen.settings import Settings


# Logical fields of the generations table, in display order.
FIELDS: tuple[str, ...] = (
    "id", "status", "created", "updated", "heartbeat", "last_step",
    "step_log", "error", "user", "processing_lock", "webhook", "routing_retry",
)
TIME_FIELDS = frozenset({"created", "updated", "heartbeat", "processing_lock", "routing_retry"})

# Candidates tried in order when nothing is configured. Column candidates first
# (real columns beat keys inside JSON), then keys inside the JSON columns.
_COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "id": ("id", "generation_id", "uuid"),
    "status": ("status", "state"),
    "created": ("created_at", "createdAt", "inserted_at", "created"),
    "updated": ("updated_at", "updatedAt", "modified_at", "modifiedAt"),
    "heartbeat": ("last_heartbeat_at", "lastHeartbeatAt", "last_heartbeat", "lastHeartbeat",
                  "heartbeat_at", "heartbeatAt"),
    "last_step": ("last_step", "lastStep", "current_step", "currentStep"),
    "step_log": ("debug_logs", "debugLogs", "step_log", "stepLog"),
    "error": ("error", "error_message", "errorMessage", "failure_reason"),
    "user": ("user_id", "userId", "owner_id", "ownerId"),
    "processing_lock": ("processing_started_at", "processingStartedAt"),
    "webhook": ("replicate_prediction_id", "replicatePredictionId", "prediction_id", "predictionId",
                "replicate_id", "replicateId", "fal_request_id", "falRequestId"),
    "routing_retry": ("routing_retry_at", "routingRetryAt"),
}
_JSON_KEY_CANDIDATES: dict[str, tuple[str, ...]] = {
    "heartbeat": ("lastHeartbeatAt", "lastHeartbeat", "last_heartbeat_at", "heartbeatAt"),
    "last_step": ("lastStep", "last_step", "step"),
    "step_log": ("debugLogs", "debug_logs", "stepLog", "steps"),
    "error": ("error", "errorMessage", "triggerErrorText", "error_message"),
    "processing_lock": ("processingStartedAt", "processing_started_at"),
    "webhook": ("replicatePredictionId", "predictionId", "replicate_prediction_id"),
    # When the provider router will try again (the process route's routing reschedule).
    "routing_retry": ("routingRetryAt", "routing_retry_at"),
}
_JSON_CONTAINERS = ("parameters", "params", "metadata", "meta", "data", "payload")
_JSON_TYPES = frozenset({"json", "jsonb"})


@dataclass(frozen=True)
class FieldMap:
    """Where one logical field lives: a column, a key path in a JSON column, or nowhere."""

    field: str
    column: str | None = None
    path: tuple[str, ...] = ()
    data_type: str | None = None  # the column's SQL type
    source: str = "not found"

    @property
    def present(self) -> bool:
        return self.column is not None

    def ident(self) -> sql.Identifier:
        """The column as an identifier; SchemaError when the field is mapped to nothing."""
        if self.column is None:
            raise SchemaError(f"the {self.field} field is mapped to nothing; this needs a column")
        return sql.Identifier(self.column)

    def describe(self) -> str:
        """The field as a spec string, the same syntax overrides use: ``parameters.lastStep``."""
        if self.column is None:
            return "-"
        return ".".join((self.column, *self.path))


@dataclass(frozen=True)
class SideTable:
    """A related table (outputs, queue jobs) keyed by a foreign key to the generation id."""

    table: str | None
    key: str | None = None
    columns: MappingABC[str, str] = field(default_factory=dict)  # logical -> column
    types: MappingABC[str, str] = field(default_factory=dict)
    source: str = "not found"

    @property
    def present(self) -> bool:
        return self.table is not None and self.key is not None

    def qualified(self, db_schema: str) -> sql.Identifier:
        """schema.table; SchemaError when there is no such side table."""
        if self.table is None:
            raise SchemaError("a side table is used but not mapped")
        return sql.Identifier(db_schema, self.table)

    def key_ident(self) -> sql.Identifier:
        if self.key is None:
            raise SchemaError(f"side table {self.table} has no key mapped")
        return sql.Identifier(self.key)


@dataclass(frozen=True)
class SchemaMapping:
    """The resolved mapping of the generations table and its side tables."""

    db_schema: str
    table: str
    fields: MappingABC[str, FieldMap]
    outputs: SideTable
    queue: SideTable
    columns: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    row_estimate: float = -1.0  # the planner's estimate of the table's rows (pg_class.reltuples; -1 unknown)

    def __getitem__(self, name: str) -> FieldMap:
        return self.fields[name]

    def has(self, name: str) -> bool:
        return self.fields[name].present

    # -- SQL fragments, all composed from identifiers and literals ---------------------------

    def qualified(self) -> sql.Composable:
        return sql.Identifier(self.db_schema, self.table)

    def raw(self, name: str, alias: str = "g") -> sql.Composable:
        """The field as stored: a column, or ``col #> path`` (jsonb) for a JSON key."""
        f = self.fields[name]
        if f.column is None:
            return sql.SQL("NULL")
        col = sql.Identifier(alias, f.column)
        if not f.path:
            return col
        cast = sql.SQL("::jsonb") if f.data_type == "json" else sql.SQL("")
        return sql.SQL("({}{} #> {})").format(col, cast, sql.Literal(list(f.path)))

    def text(self, name: str, alias: str = "g") -> sql.Composable:
        """The field as text (JSON strings unquoted)."""
        f = self.fields[name]
        if f.column is None:
            return sql.SQL("NULL::text")
        if f.path:
            col = sql.Identifier(alias, f.column)
            cast = sql.SQL("::jsonb") if f.data_type == "json" else sql.SQL("")
            return sql.SQL("({}{} #>> {})").format(col, cast, sql.Literal(list(f.path)))
        return sql.SQL("{}::text").format(sql.Identifier(alias, f.column))

    def timestamp(self, name: str, alias: str = "g", *, naive_tz: str = "UTC") -> sql.Composable:
        """The field as timestamptz; NULL when absent or not a valid time (never an error)."""
        f = self.fields[name]
        if f.column is None:
            return sql.SQL("NULL::timestamptz")
        if not f.path:
            t = (f.data_type or "").lower()
            col = sql.Identifier(alias, f.column)
            if t == "timestamp with time zone":
                return col
            if t.startswith("timestamp"):
                return sql.SQL("({} AT TIME ZONE {})").format(col, sql.Literal(naive_tz))
            if t in ("bigint", "integer", "numeric", "double precision", "real"):
                return _epoch_sql(sql.SQL("{}::double precision").format(col))
            if t in _JSON_TYPES:
                return _json_time_sql(sql.SQL("{}::jsonb").format(col), naive_tz)
            return _text_time_sql(sql.SQL("{}::text").format(col), naive_tz)
        return _json_time_sql(self.raw(name, alias), naive_tz)


def _epoch_sql(num: sql.Composable) -> sql.Composable:
    # Epoch seconds or milliseconds (the app's processingStartedAt is Date.now()). Anything
    # beyond year ~5000 (or NaN/Infinity) is no time: NULL, never "timestamp out of range".
    return sql.SQL(
        "(CASE WHEN abs({n}) < 100000000000 THEN to_timestamp({n}) "
        "WHEN abs({n}) < 100000000000000 THEN to_timestamp({n} / 1000.0) END)").format(n=num)


def _text_time_sql(txt: sql.Composable, naive_tz: str) -> sql.Composable:
    # jsonpath's .datetime() with silent => true returns NULL instead of raising on a
    # malformed value, so one bad row never aborts a scan. It does not know 'Z'.
    norm = sql.SQL("jsonb_path_query_first(to_jsonb(regexp_replace({t}, '[zZ]$', '+00:00')), '$.datetime()', '{{}}', true)").format(t=txt)
    return sql.SQL(
        "(CASE WHEN {t} ~ '^\\d{{4}}-\\d\\d-\\d\\d[T ]\\d\\d:\\d\\d' THEN "
        "(CASE WHEN ({n} #>> '{{}}') ~ '[+-]\\d\\d:?\\d\\d$' THEN ({n} #>> '{{}}')::timestamptz "
        "ELSE (({n} #>> '{{}}')::timestamp AT TIME ZONE {tz}) END) END)"
    ).format(t=txt, n=norm, tz=sql.Literal(naive_tz))


def _json_time_sql(j: sql.Composable, naive_tz: str) -> sql.Composable:
    return sql.SQL(
        "(CASE jsonb_typeof({j}) WHEN 'number' THEN {num} WHEN 'string' THEN {txt} END)"
    ).format(
        j=j,
        num=_epoch_sql(sql.SQL("({} #>> '{{}}')::double precision").format(j)),
        txt=_text_time_sql(sql.SQL("({} #>> '{{}}')").format(j), naive_tz),
    )


# -- resolution ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingConfig:
    """What the user asked for: table names and per-field overrides (spec strings)."""

    table: str = "generations"
    db_schema: str | None = None
    overrides: MappingABC[str, str] = field(default_factory=dict)  # field -> "col" / "col.key" / "none"
    override_source: MappingABC[str, str] = field(default_factory=dict)
    outputs: str | None = "outputs.generation_id"  # "table.fk_column" or None/"none"
    queue: str | None = "generation_jobs.generation_id"
    sample_rows: int = 200
    # Configured (flag, env, toml) rather than the defaults: joined as asked, without a foreign-key check.
    outputs_explicit: bool = True
    queue_explicit: bool = True


def parse_spec(spec: str, *, option: str) -> tuple[str | None, tuple[str, ...]]:
    """``parameters.lastHeartbeatAt`` -> ("parameters", ("lastHeartbeatAt",)); ``none`` -> (None, ())."""
    s = spec.strip()
    if s.lower() in ("", "none", "-", "null"):
        return None, ()
    parts = [p for p in s.replace("->>", ".").replace("->", ".").split(".")]
    if any(p == "" for p in parts):
        raise ConfigError(f"{option}: {spec!r} is not a column or column.json.key path")
    return parts[0], tuple(parts[1:])


# information_schema.columns' data_type, computed from pg_catalog: the information_schema
# views are joins over every relation and cost ~10-30 ms a query; pg_attribute by oid is ~1 ms.
_DATA_TYPE = """CASE WHEN t.typtype = 'd' THEN
    CASE WHEN bt.typelem <> 0 AND bt.typlen = -1 THEN 'ARRAY'
         WHEN bt.typnamespace = 'pg_catalog'::regnamespace THEN format_type(t.typbasetype, NULL)
         ELSE 'USER-DEFINED' END
  ELSE CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN 'ARRAY'
            WHEN t.typnamespace = 'pg_catalog'::regnamespace THEN format_type(a.atttypid, NULL)
            ELSE 'USER-DEFINED' END END"""

_CATALOG = f"""SELECT s.nsp, c.relname, a.attname, {_DATA_TYPE}, c.reltuples
FROM (SELECT coalesce(%(schema)s, current_schema()) AS nsp) s
LEFT JOIN pg_namespace n ON n.nspname = s.nsp
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = ANY(%(tables)s::text[])
                     AND c.relkind IN ('r', 'p', 'v', 'f')
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                         AND has_column_privilege(c.oid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES')
LEFT JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
ORDER BY c.relname, a.attnum"""


@dataclass(frozen=True)
class _Catalog:
    """The columns (name -> information_schema data_type) of the tables asked for, from one query."""

    db_schema: str
    columns: MappingABC[str, dict[str, str]]
    reltuples: MappingABC[str, float]

    def of(self, table: str) -> dict[str, str]:
        return self.columns.get(table, {})


def _catalog(conn: Connection, db_schema: str | None, tables: Sequence[str]) -> _Catalog:
    """The schema name, and every table's columns and row estimate, in one round trip."""
    cols: dict[str, dict[str, str]] = {}
    est: dict[str, float] = {}
    nsp = db_schema or ""
    for nsp, rel, col, dtype, reltuples in conn.execute(_CATALOG, {"schema": db_schema, "tables": list(tables)}).fetchall():
        if rel is None or col is None:
            continue
        cols.setdefault(rel, {})[col] = dtype
        est[rel] = reltuples
    return _Catalog(db_schema=nsp, columns=cols, reltuples=est)


def _tables(conn: Connection, db_schema: str) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
        (db_schema,),
    ).fetchall()
    return [r[0] for r in rows]


def _json_keys(conn: Connection, db_schema: str, table: str, column: str, data_type: str,
               order_by: str | None, sample: int, rows: float) -> set[str]:
    """Top-level keys present in the JSON column of recent (small table) or sampled (large) rows.

    ``rows``: the table's row estimate (pg_class.reltuples; -1 when never analyzed).
    """
    col = sql.Identifier(column)
    cast = sql.SQL("::jsonb") if data_type == "json" else sql.SQL("")
    tbl = sql.Identifier(db_schema, table)
    if rows > 20 * sample:
        # A large table: sorting it by time would read all of it; a block sample reads a few pages.
        pct = min(100.0, max(0.01, 100.0 * 10 * sample / rows))
        source = sql.SQL("{} TABLESAMPLE SYSTEM ({})").format(tbl, sql.Literal(pct))
        order: sql.Composable = sql.SQL("")
    else:
        source = sql.Composed([tbl])
        order = sql.SQL("ORDER BY {} DESC").format(sql.Identifier(order_by)) if order_by else sql.SQL("")
    q = sql.SQL(
        "SELECT DISTINCT k FROM (SELECT {col}{cast} AS j FROM {src} {order} LIMIT {n}) s, "
        "LATERAL jsonb_object_keys(CASE WHEN jsonb_typeof(s.j) = 'object' THEN s.j ELSE '{{}}'::jsonb END) k"
    ).format(col=col, cast=cast, src=source, order=order, n=sql.Literal(sample))
    return {r[0] for r in conn.execute(q).fetchall()}


def _override_field(name: str, cfg: MappingConfig, cols: MappingABC[str, str]) -> FieldMap:
    """A field the configuration maps (--map, STUCKGEN_MAP, [mapping]): checked against the table's columns."""
    src = cfg.override_source.get(name, "override")
    column, path = parse_spec(cfg.overrides[name], option=f"mapping {name}")
    if column is None:
        return FieldMap(field=name, source=f"{src}: none")
    if column not in cols:
        raise SchemaError(
            f"mapping {name}: column {column!r} not found in {cfg.table}; "
            f"columns: {', '.join(cols)}"
        )
    if path and cols[column] not in _JSON_TYPES:
        raise SchemaError(
            f"mapping {name}: {column!r} is {cols[column]}, not json/jsonb, so it has no key {'.'.join(path)!r}"
        )
    if name == "step_log" and not path and cols[column] not in _JSON_TYPES:
        # The step log is read as a JSON array; casting text would fail on the first odd row.
        raise SchemaError(f"mapping step_log: {column!r} is {cols[column]}, not json/jsonb")
    return FieldMap(field=name, column=column, path=path, data_type=cols[column], source=src)


def _column_fields(cfg: MappingConfig, cols: MappingABC[str, str]) -> dict[str, FieldMap]:
    """Every field from the configuration or a column of a known name; the id and status must be found."""
    fields: dict[str, FieldMap] = {}
    for name in FIELDS:
        if name in cfg.overrides:
            fields[name] = _override_field(name, cfg, cols)
            continue
        found = next((c for c in _COLUMN_CANDIDATES.get(name, ())
                      if c in cols and (name != "step_log" or cols[c] in _JSON_TYPES)), None)
        if found:
            fields[name] = FieldMap(field=name, column=found, data_type=cols[found], source="introspected column")
        else:
            fields[name] = FieldMap(field=name)
    if not fields["id"].present:
        raise SchemaError(f"no id column found in {cfg.table}; columns: {', '.join(cols)}",
                          hint="map it with --map id=COLUMN")
    if not fields["status"].present:
        raise SchemaError(f"no status column found in {cfg.table}; columns: {', '.join(cols)}",
                          hint="map it with --map status=COLUMN")
    return fields


def _json_key_fields(conn: Connection, catalog: _Catalog, cfg: MappingConfig, cols: MappingABC[str, str],
                     fields: dict[str, FieldMap]) -> None:
    """Map the fields still unmapped to JSON keys seen in the JSON columns' recent rows (or the app's default key)."""
    json_cols = [c for c in _JSON_CONTAINERS if c in cols and cols[c] in _JSON_TYPES]
    json_cols += [c for c, t in cols.items() if t in _JSON_TYPES and c not in json_cols]
    created_col = fields["created"].column if fields["created"].present and not fields["created"].path else None
    rows = catalog.reltuples.get(cfg.table, -1.0)
    keys_by_col = {c: _json_keys(conn, catalog.db_schema, cfg.table, c, cols[c], created_col, cfg.sample_rows, rows)
                   for c in json_cols if any(not fields[f].present and f not in cfg.overrides for f in _JSON_KEY_CANDIDATES)}
    for name, candidates in _JSON_KEY_CANDIDATES.items():
        if fields[name].present or name in cfg.overrides:
            continue
        hit = next(((c, k) for c in json_cols for k in candidates if k in keys_by_col.get(c, ())), None)
        if hit:
            fields[name] = FieldMap(field=name, column=hit[0], path=(hit[1],), data_type=cols[hit[0]],
                                    source="introspected JSON key (seen in recent rows)")
        elif json_cols and json_cols[0] in _JSON_CONTAINERS:
            # Not seen yet (no row got that far), but the app's convention says where it goes.
            fields[name] = FieldMap(field=name, column=json_cols[0], path=(candidates[0],),
                                    data_type=cols[json_cols[0]],
                                    source="default JSON key (not seen in recent rows)")


def _row_lock_queue(cfg: MappingConfig, cols: MappingABC[str, str], fields: MappingABC[str, FieldMap],
                    queue: SideTable) -> SideTable:
    """The queue side table, or the job table itself when it keeps its lock on the row (locked_at, run_after)."""
    if not queue.present and (cfg.queue_explicit is False or not cfg.queue) and fields["id"].present \
            and not fields["id"].path:
        # A job table that keeps its lock on the row itself (the app's output_analyses: status,
        # attempts, locked_at, run_after): the row is its own queue job.
        own = {logical: next(n for n in names if n in cols) for logical, names in _LOCK_COLUMNS.items()
               if any(n in cols for n in names)}
        if "locked_at" in own or "run_after" in own:
            return SideTable(table=cfg.table, key=fields["id"].column, columns=own,
                             types={c: cols[c] for c in own.values()},
                             source=f"row-level lock columns of {cfg.table}" + (f" ({queue.source})"
                                                                                if queue.source else ""))
    return queue


def resolve(conn: Connection, cfg: MappingConfig) -> SchemaMapping:
    """Introspect the database and resolve every logical field. Raises SchemaError."""
    side_specs = {"outputs": _side_spec(cfg.outputs), "queue": _side_spec(cfg.queue)}
    catalog = _catalog(conn, cfg.db_schema, [cfg.table] + [t for t, _ in side_specs.values() if t])
    db_schema = catalog.db_schema
    cols = catalog.of(cfg.table)
    if not cols:
        tables = _tables(conn, db_schema)
        listing = ", ".join(tables[:30]) if tables else "none"
        raise SchemaError(
            f"table {cfg.table!r} not found in schema {db_schema!r}; tables there: {listing}",
            hint="set --table (STUCKGEN_TABLE) or [mapping] table in stuckgen.toml",
        )
    fields = _column_fields(cfg, cols)
    _json_key_fields(conn, catalog, cfg, cols, fields)
    warnings = [missing_consequence(name, fields) for name in ("created", "heartbeat", "last_step", "step_log")
                if not fields[name].present and name not in cfg.overrides]
    if not fields["created"].present and not fields["updated"].present and not fields["heartbeat"].present:
        raise SchemaError(
            f"{cfg.table} has no created, updated or heartbeat time, so age cannot be measured; "
            f"columns: {', '.join(cols)}", hint="map one with --map created=COLUMN"
        )
    outputs = _side_table(catalog, side_specs["outputs"], cfg.outputs, "outputs", {}, conn=conn,
                          db_schema=db_schema, main=cfg.table, explicit=cfg.outputs_explicit)
    queue = _side_table(catalog, side_specs["queue"], cfg.queue, "queue", _LOCK_COLUMNS, conn=conn,
                        db_schema=db_schema, main=cfg.table, explicit=cfg.queue_explicit)
    queue = _row_lock_queue(cfg, cols, fields, queue)
    return SchemaMapping(db_schema=db_schema, table=cfg.table, fields=fields, outputs=outputs,
                         queue=queue, columns=tuple(cols), warnings=tuple(warnings),
                         row_estimate=catalog.reltuples.get(cfg.table, -1.0))


_MISSING_CONSEQUENCE = {
    "created": "no created time: rows are aged by update/heartbeat only, and the stuck rate is unavailable",
    "heartbeat": "no heartbeat: 'stalled' and 'never-started' cannot be told apart by heartbeat",
    "last_step": "no last step: 'never-started' is concluded from the step log only",
    "step_log": "no step log: failed triggers and webhooks cannot be seen",
}


_LOCK_COLUMNS = {"locked_at": ("locked_at", "lockedAt"), "run_after": ("run_after", "runAfter"),
                 "attempts": ("attempts",)}


def _references(conn: Any, db_schema: str, table: str, column: str) -> list[str]:
    """The tables a foreign key on ``table.column`` references (same schema: bare names)."""
    rows = conn.execute(
        "SELECT CASE WHEN n.nspname = %s THEN r.relname ELSE n.nspname || '.' || r.relname END "
        "FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid JOIN pg_namespace n ON n.oid = r.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "WHERE c.contype = 'f' AND c.conrelid = to_regclass(%s) AND a.attname = %s",
        (db_schema, sql.Identifier(db_schema, table).as_string(conn), column)).fetchall()
    return [r[0] for r in rows]
def missing_consequence(name: str, fields: MappingABC[str, FieldMap]) -> str:
    """What a missing field costs, given the rest of the mapping in force."""
    if name == "step_log":
        if fields["webhook"].present:
            return (f"no step log: failed triggers cannot be seen (rows handed to the provider are still told "
                    f"apart by {fields['webhook'].describe()})")
        return "no step log: failed triggers and provider hand-offs cannot be seen"
    if name == "heartbeat" and fields["updated"].present:
        return (f"no heartbeat: {fields['updated'].describe()} is the sign of life, so 'stalled' and "
                "'never-started' cannot be told apart by heartbeat")
    if name == "last_step" and not fields["step_log"].present:
        return "no last step and no step log: 'never-started' cannot be concluded"
    return _MISSING_CONSEQUENCE[name]


def _side_spec(spec: str | None) -> tuple[str | None, str]:
    """``"outputs.generation_id"`` -> ("outputs", "generation_id"); disabled -> (None, "")."""
    if not spec or spec.strip().lower() == "none":
        return None, ""
    table, _, key = spec.partition(".")
    return table, key or "generation_id"


def _side_table(catalog: _Catalog, parsed: tuple[str | None, str], spec: str | None, what: str,
                wanted: dict[str, tuple[str, ...]], *, conn: Any = None, db_schema: str = "public",
                main: str = "generations", explicit: bool = True) -> SideTable:
    table, key = parsed
    if table is None:
        return SideTable(table=None, source="disabled")
    cols = catalog.of(table)
    if not cols:
        return SideTable(table=None, source=f"table {table!r} not found")
    if key not in cols:
        if not explicit:
            return SideTable(table=None, source=f"default {spec} does not fit (no column {key!r})")
        raise SchemaError(f"{what} table {table!r} has no column {key!r}; columns: {', '.join(cols)}")
    if not explicit:
        # The default names the incident app's tables: join them to another table (--table
        # output_analyses) only when a foreign key says they belong to it.
        refs = _references(conn, db_schema, table, key)
        if (refs and main not in refs) or (not refs and main != "generations"):
            why = f"references {refs[0]}" if refs else "has no foreign key to it"
            return SideTable(table=None, source=f"default {table}.{key} not joined: it {why}, not {main}")
    found: dict[str, str] = {}
    for logical, names in wanted.items():
        hit = next((n for n in names if n in cols), None)
        if hit:
            found[logical] = hit
    return SideTable(table=table, key=key, columns=found, types={c: cols[c] for c in found.values()},
                     source="introspected")


def mapping_config(settings: Settings) -> MappingConfig:
    """What the settings ask of the mapping (table, schema, overrides, side tables)."""
    return MappingConfig(
        table=settings.table, db_schema=settings.db_schema, overrides=dict(settings.mapping_overrides),
        override_source=dict(settings.mapping_sources),
        outputs=None if str(settings.outputs).lower() == "none" else settings.outputs,
        queue=None if str(settings.queue).lower() == "none" else settings.queue,
        outputs_explicit=settings.sources.get("outputs", "default") != "default",
        queue_explicit=settings.sources.get("queue", "default") != "default",
    )
