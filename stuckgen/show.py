"""One generation's whole story: fields, scan's verdict, step-log timeline, outputs, queue job, audit.

Everything is read for one row only, by its id, inside the caller's (read-only)
transaction. The verdict reuses scan's own query and rules with the id as the
only filter and no creation window, so ``show`` never disagrees with ``scan``
about a row.
"""

from __future__ import annotations

import re

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from stuckgen.audit import AuditLog, AuditRecord, FileAudit, TableAudit
from stuckgen.db import Connection, scalar
from stuckgen.errors import ConfigError, SelectionError
from stuckgen.scan import (
    DEFAULT_RULES, Rule, ScanOptions, ScanRun, StuckRow, alive_reasons, last_sign_sql, step_log_array,
)
from stuckgen.schema import SchemaMapping
from stuckgen.secrets import scrub
from stuckgen.durations import iso_utc


SHOW_SCHEMA = "stuckgen.show/v1"
TIMELINE_LIMIT = 200  # the app keeps the last 100 steps; anything longer is cut, and says so
OUTPUTS_LIMIT = 100
EXTRA_CHARS = 300  # an extra value (an error excerpt) is cut to this many characters
ERROR_CHARS = 2000


@dataclass(frozen=True, kw_only=True)
class StepEntry:
    """One entry of the step log: when, which step, and the extras the app logged with it."""

    n: int  # position in the log, from 1
    at: datetime | None
    at_raw: str | None
    step: str | None
    extra: dict[str, Any]

    def as_dict(self, *, created_at: datetime | None = None) -> dict[str, Any]:
        offset = None
        if self.at is not None and created_at is not None:
            offset = round((self.at - created_at).total_seconds(), 3)
        return {"n": self.n, "at": iso_utc(self.at) if self.at else self.at_raw, "offset_seconds": offset,
                "step": self.step, "extra": self.extra}


@dataclass(frozen=True, kw_only=True)
class GenerationStory:
    """Everything stuckgen knows about one generation. ``None`` collections: not mapped / no such table."""

    id: str
    table: str
    status: str
    created_at: datetime | None
    last_sign_of_life: datetime | None
    quiet_seconds: float | None
    age_seconds: float | None
    heartbeat_at: datetime | None
    last_step: str | None
    user_id: str | None
    error: str | None
    database_now: datetime
    threshold: float
    inflight: bool
    stuck: StuckRow | None
    timeline: tuple[StepEntry, ...] | None
    timeline_total: int
    outputs: tuple[dict[str, Any], ...] | None
    outputs_total: int
    job: dict[str, Any] | None
    queue_mapped: bool
    actions: tuple[AuditRecord, ...] | None
    audit_where: str | None
    provider_id: str | None = None  # the provider's prediction id: what to look the job up by
    provider_page: str | None = None
    provider: Any = None  # reconcile.Verdict: what the model provider says (with a token configured)
    dead_worker: Any = None  # deadline.DeadWorker: the worker started longer ago than the function may run
    platform_logs: tuple[Any, ...] | None = None  # vercel.logs.RuntimeLog near the trigger (with a Vercel token)
    alive: tuple[str, ...] = ()  # why a row quiet past the threshold is still judged alive


    @property
    def verdict(self) -> str:
        """``stuck: trigger-failed (why)`` or ``not stuck: completed, last sign of life 4m10s ago``."""
        from stuckgen.durations import format_duration

        if self.stuck is not None:
            from stuckgen.remediate.safety import SYNC_ROUTE

            advice = (f"; settle it with the app's sync route {SYNC_ROUTE.replace('{id}', self.id)} (a retrigger "
                      "only rewrites its heartbeat)" if self.stuck.cls == "awaiting-webhook" else "")
            return f"stuck: {self.stuck.cls} ({self.stuck.why}){advice}"
        if self.quiet_seconds is None:
            life = "no sign of life recorded"
        else:
            life = f"last sign of life {format_duration(self.quiet_seconds)} ago"
        if self.inflight and self.alive:
            return f"not stuck: {self.status}, {life}; " + "; ".join(self.alive)
        if self.inflight:
            return f"not stuck: {self.status}, {life} (threshold {format_duration(self.threshold)})"
        return f"not stuck: {self.status}, {life}"

    def as_dict(self) -> dict[str, Any]:
        """The ``stuckgen.show/v1`` document without its envelope (see render/show.py)."""
        return {
            "generation": {
                "id": self.id, "status": self.status, "created_at": iso_utc(self.created_at),
                "last_sign_of_life": iso_utc(self.last_sign_of_life),
                "quiet_seconds": _round(self.quiet_seconds), "age_seconds": _round(self.age_seconds),
                "heartbeat_at": iso_utc(self.heartbeat_at), "last_step": self.last_step, "user_id": self.user_id,
                "error": self.error, "provider_id": self.provider_id, "provider_page": self.provider_page,
            },
            "stuck": self.stuck is not None,
            "class": self.stuck.cls if self.stuck else None,
            "why": self.stuck.why if self.stuck else None,
            "verdict": self.verdict,
            "alive": list(self.alive),
            "scan": self.stuck.as_dict() if self.stuck else None,
            "timeline": None if self.timeline is None else {
                "total": self.timeline_total, "shown": len(self.timeline),
                "entries": [e.as_dict(created_at=self.created_at) for e in self.timeline]},
            "outputs": None if self.outputs is None else {"total": self.outputs_total, "rows": list(self.outputs)},
            "job": self.job,
            "queue_mapped": self.queue_mapped,
            "audit": None if self.actions is None else {
                "where": self.audit_where,
                "actions": [{k: v for k, v in a.as_dict().items() if k != "schema"} for a in self.actions]},
            "database_now": iso_utc(self.database_now),
            "provider": self.provider.as_dict() if self.provider is not None else None,
            "dead_worker": self.dead_worker.as_dict() if self.dead_worker is not None else None,
            "platform_logs": None if self.platform_logs is None else [x.as_dict() for x in self.platform_logs],
        }



def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


# -- the id ------------------------------------------------------------------------------------


def check_id(mapping: SchemaMapping, text: str) -> str:
    """The id normalised for its column's type; SelectionError (exit 2) when it cannot be one."""
    value = text.strip()
    if not value:
        raise SelectionError("the generation id is empty")
    kind = (mapping["id"].data_type or "").lower() if not mapping["id"].path else ""
    if kind == "uuid":
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise SelectionError(f"{text!r} is not a UUID, and {mapping.table}.{mapping['id'].column} is uuid") from None
    if kind in ("integer", "bigint", "smallint"):
        if not value.lstrip("-").isdigit():
            raise SelectionError(f"{text!r} is not a whole number, and {mapping.table}.{mapping['id'].column} is {kind}")
    return value


def id_matches(mapping: SchemaMapping, value: str) -> sql.Composable:
    """``g.id = 'value'``: an untyped literal takes the column's type, so the primary key index serves it."""
    if mapping["id"].path:
        return sql.SQL("{} = {}").format(mapping.text("id"), sql.Literal(value))
    return sql.SQL("{} = {}").format(mapping.raw("id"), sql.Literal(value))


def id_exists(conn: Connection, mapping: SchemaMapping, value: str) -> bool:
    """Whether a generation has this id (the probe's 'matches no row' hook uses it too)."""
    q = sql.SQL("SELECT EXISTS (SELECT 1 FROM {t} g WHERE {w})").format(t=mapping.qualified(), w=id_matches(mapping, value))
    return bool(scalar(conn.cursor(row_factory=tuple_row), q))


# -- reading -----------------------------------------------------------------------------------


def load_story(conn: Connection, mapping: SchemaMapping, generation_id: str, *, options: ScanOptions,
               rules: Sequence[Rule] = DEFAULT_RULES, audit: AuditLog | None = None,
               redact: Sequence[str] = ()) -> GenerationStory:
    """Read one generation's story. SelectionError when the id is malformed or matches no row.

    ``redact``: secret values to scrub from anything the app logged (errors, step extras).
    """
    gid = check_id(mapping, generation_id)
    m = mapping
    tz = options.naive_timezone
    base = sql.SQL(
        "SELECT {id}::text AS id, {status}::text AS status, {created} AS created_at, {ls} AS last_sign, "
        "{hb} AS heartbeat_at, left({step}, 200) AS last_step, left({user}, 80) AS user_id, "
        "left({err}, {n}) AS error, left({prov}, 200) AS provider_id, now() AS db_now FROM {t} g WHERE {w}"
    ).format(id=m.raw("id"), status=m.raw("status"), created=m.timestamp("created", naive_tz=tz),
             ls=last_sign_sql(m, options), hb=m.timestamp("heartbeat", naive_tz=tz), step=m.text("last_step"),
             user=m.text("user"), err=m.text("error"), n=sql.Literal(ERROR_CHARS), t=m.qualified(),
             prov=m.text("webhook"),
             w=id_matches(m, gid))
    rec = conn.cursor(row_factory=dict_row).execute(base).fetchone()
    if rec is None:
        raise SelectionError(f"no generation {gid} in {m.db_schema}.{m.table}")
    now: datetime = rec["db_now"]
    gid = rec["id"]

    # scan's own query and rules, restricted to this id and without the creation window.
    stuck_opts = replace(options, ids=(gid,), since=None, classes=(), limit=None, older_than=None)
    stuck = next(iter(ScanRun(conn, m, stuck_opts, rules)), None)
    if stuck is not None and redact:
        stuck = replace(stuck, error=_scrub(stuck.error, redact), why=_scrub(stuck.why, redact) or "",
                        notes=tuple(_scrub(n, redact) or "" for n in stuck.notes))

    timeline, total = _timeline(conn, m, gid, redact) if m.has("step_log") else (None, 0)
    outputs, n_outputs = _outputs(conn, m, gid) if m.outputs.present else (None, 0)
    job = _job(conn, m, gid) if m.queue.present else None
    if job is not None:
        job["state"] = stuck.job_state if stuck is not None else None
    actions = tuple(actions_for(audit, conn, table=m.table, db_schema=m.db_schema, row_id=gid)) if audit else None

    last_sign = rec["last_sign"]
    created = rec["created_at"]
    inflight = rec["status"] in options.inflight_statuses
    alive = alive_reasons(conn, m, replace(options, classes=()), rules, gid) if stuck is None and inflight else ()
    return GenerationStory(
        id=gid, table=f"{m.db_schema}.{m.table}", status=rec["status"], created_at=created,
        last_sign_of_life=last_sign,
        quiet_seconds=(now - last_sign).total_seconds() if last_sign else None,
        age_seconds=(now - created).total_seconds() if created else None,
        heartbeat_at=rec["heartbeat_at"], last_step=rec["last_step"], user_id=rec["user_id"],
        error=_scrub(rec["error"], redact), database_now=now, threshold=options.threshold,
        inflight=inflight, stuck=stuck,
        timeline=timeline, timeline_total=total, outputs=outputs, outputs_total=n_outputs,
        job=job, queue_mapped=m.queue.present, actions=actions, audit_where=audit.where if audit else None,
        provider_id=rec["provider_id"] or None, provider_page=provider_page(m, rec["provider_id"]),
        alive=alive,
    )


_REPLICATE_ID = re.compile(r"^[a-z0-9]{20,40}$")


def provider_page(m: SchemaMapping, provider_id: str | None) -> str | None:
    """The provider's own page for a prediction, where there is one (Replicate: replicate.com/p/ID)."""
    if not provider_id or not m.has("webhook"):
        return None
    if "replicate" in m["webhook"].describe().lower() and _REPLICATE_ID.match(provider_id):
        return f"https://replicate.com/p/{provider_id}"
    return None


def _scrub(text: str | None, redact: Sequence[str]) -> str | None:
    return None if text is None else scrub(text, list(redact))


def _timeline(conn: Connection, m: SchemaMapping, gid: str, redact: Sequence[str]) -> tuple[tuple[StepEntry, ...], int]:
    """The step log of this one row, in log order (the last TIMELINE_LIMIT entries), and its length."""
    arr = step_log_array(m)
    q = sql.SQL(
        "SELECT x.n, x.e, jsonb_array_length(a.arr) AS total FROM (SELECT {arr} AS arr FROM {t} g WHERE {w}) a, "
        "LATERAL jsonb_array_elements(a.arr) WITH ORDINALITY x(e, n) "
        "WHERE x.n > jsonb_array_length(a.arr) - {lim} ORDER BY x.n"
    ).format(arr=arr, t=m.qualified(), w=id_matches(m, gid), lim=sql.Literal(TIMELINE_LIMIT))
    rows = conn.cursor(row_factory=tuple_row).execute(q).fetchall()
    total = int(rows[0][2]) if rows else 0
    return tuple(_entry(int(n), e, redact) for n, e, _ in rows), total


def _entry(n: int, e: Any, redact: Sequence[str]) -> StepEntry:
    if not isinstance(e, dict):
        return StepEntry(n=n, at=None, at_raw=None, step=None, extra={"value": _cut(json.dumps(e), redact)})
    at_raw = e.get("at")
    step = e.get("step")
    extra = {str(k): _extra_value(v, redact) for k, v in e.items() if k not in ("at", "step")}
    return StepEntry(n=n, at=_parse_time(at_raw), at_raw=str(at_raw) if at_raw is not None else None,
                     step=str(step) if step is not None else None, extra=extra)


def _extra_value(v: Any, redact: Sequence[str]) -> Any:
    if isinstance(v, (bool, int, float)) or v is None:
        return v
    text = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return _cut(text, redact)


def _cut(text: str, redact: Sequence[str]) -> str:
    text = scrub(text, list(redact))
    return text if len(text) <= EXTRA_CHARS else text[:EXTRA_CHARS] + "..."


def _parse_time(v: Any) -> datetime | None:
    """The app writes ISO strings ending in Z; epoch milliseconds are accepted too. None when neither."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return datetime.fromtimestamp(v / 1000.0 if v > 1e11 else v, tz=timezone.utc)
    if not isinstance(v, str):
        return None
    text = v.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"  # Python 3.10's fromisoformat does not know the Z suffix
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _outputs(conn: Connection, m: SchemaMapping, gid: str) -> tuple[tuple[dict[str, Any], ...], int]:
    t = m.outputs.qualified(m.db_schema)
    q = sql.SQL("SELECT to_jsonb(o), count(*) OVER () FROM {t} o WHERE o.{k} = {id} LIMIT {n}").format(
        t=t, k=m.outputs.key_ident(), id=sql.Literal(gid), n=sql.Literal(OUTPUTS_LIMIT))
    rows = conn.cursor(row_factory=tuple_row).execute(q).fetchall()
    out = [{k: _safe_url(v) if isinstance(v, str) and "://" in v else v for k, v in r[0].items()} for r in rows]
    out.sort(key=lambda d: str(d.get("created_at") or d.get("createdAt") or ""))
    return tuple(out), int(rows[0][1]) if rows else 0


def _safe_url(url: str) -> str:
    """A signed storage URL carries its token in the query string: keep the path, drop the query."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query and "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "..." if parts.query else "", ""))


def _job(conn: Connection, m: SchemaMapping, gid: str) -> dict[str, Any] | None:
    t = m.queue.qualified(m.db_schema)
    q = sql.SQL("SELECT to_jsonb(j) FROM {t} j WHERE j.{k} = {id} LIMIT 1").format(
        t=t, k=m.queue.key_ident(), id=sql.Literal(gid))
    row = conn.cursor(row_factory=tuple_row).execute(q).fetchone()
    return dict(row[0]) if row else None


# -- the audit log -----------------------------------------------------------------------------


def actions_for(log: AuditLog, conn: Connection, *, table: str, db_schema: str, row_id: str) -> Iterator[AuditRecord]:
    """Every audited action on one row, oldest first. A log that does not exist yet has none."""
    tables = {table, f"{db_schema}.{table}"}
    if isinstance(log, TableAudit):
        if not log.exists(conn):
            return
        q = sql.SQL("SELECT run_id, action, row_id, table_name, at, operator, outcome, previous, new, check_hash, "
                    "detail FROM {t} WHERE row_id = %s AND table_name = ANY(%s) ORDER BY at, id").format(t=log.ident)
        for r in conn.cursor(row_factory=dict_row).execute(q, (row_id, sorted(tables))).fetchall():
            yield TableAudit.record(r)
    elif isinstance(log, FileAudit):
        yield from sorted(_file_records(log.path, row_id, tables), key=lambda a: a.at)
    else:
        raise ConfigError(f"cannot read actions from {log.where}")


def _file_records(path: Path, row_id: str, tables: set[str]) -> Iterator[AuditRecord]:
    if not path.exists():
        return
    try:
        with path.open("r", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if row_id not in line:  # cheap pre-filter: most lines are about other rows
                    continue
                try:
                    rec = AuditRecord.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ConfigError(f"{path}:{n}: not an audit record ({type(exc).__name__})") from exc
                if rec.row_id == row_id and rec.table in tables:
                    yield rec
    except OSError as exc:
        raise ConfigError(f"--audit-file: cannot read {path}: {exc.strerror}") from exc
