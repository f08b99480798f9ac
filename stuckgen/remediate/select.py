"""Which rows a remediation acts on: ids validated against the id column's type, or every stuck row."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from psycopg import sql

from stuckgen.durations import format_duration
from stuckgen.errors import ConfigError, SchemaError, SelectionError
from stuckgen.remediate.results import OUTCOME_TEXT, Outcome, RemediationResult, RowOutcome, utcnow
from stuckgen.scan import DEFAULT_RULES, Rule, ScanOptions, build_class_query, check_classes
from stuckgen.schema import SchemaMapping

if TYPE_CHECKING:
    from stuckgen.db import Connection

INT_TYPES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
TEXT_TYPES = {"text", "character varying", "character", "citext", "name"}


def coerce_id(mapping: SchemaMapping, raw: str) -> Any:
    """``raw`` as a value of the id column's type (uuid.UUID, int or str); ValueError when it is not one."""
    f = mapping["id"]
    t = (f.data_type or "").lower()
    s = raw.strip()
    if t == "uuid":
        return uuid.UUID(s)
    if t in INT_TYPES or t == "numeric":
        if not s.lstrip("-").isdigit():
            raise ValueError("not a whole number")
        n = int(s)
        bound = INT_TYPES.get(t)
        if bound is not None and not -bound <= n < bound:
            raise ValueError(f"out of range for {t}")
        return n
    if not s or "\x00" in s:
        raise ValueError("empty or contains NUL")
    return s


def validate_ids(mapping: SchemaMapping, ids: Iterable[str]) -> tuple[Any, ...]:
    """Typed, de-duplicated ids; SelectionError naming every id that is not of the column's type."""
    check_remediable(mapping)
    out: list[Any] = []
    seen: set[str] = set()
    bad: list[str] = []
    for raw in ids:
        try:
            key = coerce_id(mapping, raw)
        except ValueError:
            bad.append(raw)
            continue
        if str(key) not in seen:
            seen.add(str(key))
            out.append(key)
    if bad:
        shown = ", ".join(repr(b[:60]) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise SelectionError(
            f"{len(bad)} id(s) are not valid for {mapping.table}.{mapping['id'].column} "
            f"({mapping['id'].data_type}): {shown}")
    return tuple(out)


def check_remediable(mapping: SchemaMapping) -> None:
    for name in ("id", "status"):
        f = mapping[name]
        if f.path:
            raise SchemaError(f"{name} is mapped inside JSON ({f.describe()}); remediation needs a real column")


@dataclass(frozen=True, kw_only=True)
class Target:
    """A selected row: its id as text, as a typed key, and its stuck class."""

    id: str
    key: Any
    cls: str | None = None


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Rows to act on, and the rows asked for that cannot be (not found, not stuck)."""

    targets: tuple[Target, ...]
    rejected: tuple[RowOutcome, ...] = ()
    by_ids: bool = False


def select_rows(conn: Connection, mapping: SchemaMapping, options: ScanOptions, *, ids: Sequence[str] = (),
                all_stuck: bool = False, rules: Sequence[Rule] = DEFAULT_RULES) -> Selection:
    """Rows by id (validated first) or every stuck row matching the scan filters.

    Runs inside the caller's (read-only) transaction. Ids that exist but are not
    stuck, or not of a requested class, are rejected with the reason; when none
    of the ids is usable, SelectionError.
    """
    check_remediable(mapping)
    if ids and all_stuck:
        raise ConfigError("give row ids or --all-stuck, not both")
    if not ids and not all_stuck:
        raise ConfigError("nothing selected: give row ids, or --all-stuck to select every stuck row",
                          hint="e.g. --all-stuck --older-than 30m --class never-started")
    check_classes(options.classes, rules)
    no_jit(conn)
    if all_stuck:
        return Selection(targets=tuple(_stuck_targets(conn, mapping, replace(options, ids=(), limit=None), rules)))

    keys = validate_ids(mapping, ids)
    wanted = set(options.classes)
    found = {t.id: t for t in _stuck_targets(conn, mapping, replace(options, ids=tuple(str(k) for k in keys),
                                                                    since=None, classes=(), limit=None), rules)}
    targets_l: list[Target] = []
    rejected: list[RowOutcome] = []
    missing = [k for k in keys if str(k) not in found]
    status_of: dict[str, str] = {}
    if missing:
        q = sql.SQL("SELECT {id}::text, {st}::text FROM {t} g WHERE {id} = ANY(%s)").format(
            id=mapping.raw("id"), st=mapping.raw("status"), t=mapping.qualified())
        status_of = {r[0]: r[1] for r in conn.execute(q, (list(missing),)).fetchall()}
    for k in keys:
        s = str(k)
        row = found.get(s)
        if row is not None:
            if wanted and row.cls not in wanted:
                rejected.append(RowOutcome(id=s, outcome=Outcome.NOT_STUCK, ok=False, cls=row.cls,
                                           reason=f"stuck as {row.cls}, not one of --class {', '.join(sorted(wanted))}"))
            else:
                targets_l.append(Target(id=s, key=k, cls=row.cls))
        elif s in status_of:
            st = status_of[s]
            why = (f"status is {st!r}, not in flight ({', '.join(options.inflight_statuses)})"
                   if st not in options.inflight_statuses else
                   f"in flight but showed a sign of life within {format_duration(max(options.threshold, options.older_than or 0))}")
            rejected.append(RowOutcome(id=s, outcome=Outcome.NOT_STUCK, ok=False, reason=why))
        else:
            rejected.append(RowOutcome(id=s, outcome=Outcome.NOT_FOUND, ok=False, reason=f"no row with this id in {mapping.table}"))
    if not targets_l:
        detail = "; ".join(f"{r.id}: {r.reason}" for r in rejected[:3]) + (" ..." if len(rejected) > 3 else "")
        raise SelectionError(f"none of the {len(keys)} id(s) can be acted on: {detail}")
    return Selection(targets=tuple(targets_l), rejected=tuple(rejected), by_ids=True)


def _stuck_targets(conn: Connection, mapping: SchemaMapping, options: ScanOptions,
                   rules: Sequence[Rule]) -> Iterator[Target]:
    """Stuck rows as targets, classified in SQL (``build_class_query``), in the scan's order.

    Remediation needs each row's id and class, not the scan's evidence: extracting
    the step log's details and classifying in Python cost more than the updates.
    """
    seen: set[str] = set()
    with conn.cursor(name="stuckgen_select") as cur:
        cur.itersize = 5000
        cur.execute(build_class_query(mapping, options, rules))
        for key, rid, cls in cur:
            # A queue table without UNIQUE on its key (one job row per attempt) joins a row
            # more than once: a second target would be triggered (or failed) twice.
            if rid in seen:
                continue
            seen.add(rid)
            # The driver already returns uuid/int/str keys; anything else (numeric) goes through the validator.
            yield Target(id=rid, key=key if isinstance(key, (uuid.UUID, int, str)) else coerce_id(mapping, rid), cls=cls)


def plan(action: str, selection: Selection, *, table: str, audit: str, operator: str,
         dry_run: bool = True) -> RemediationResult:
    """The dry run: what ``action`` would do to the selection; nothing is written or sent.

    ``dry_run=False`` only for an empty selection under --yes: nothing to do, and nothing promised.
    """
    verb = {"fail": Outcome.WOULD_FAIL, "retrigger": Outcome.WOULD_TRIGGER}[action]
    now = utcnow()
    outcomes = tuple(RowOutcome(id=t.id, outcome=verb, ok=True, cls=t.cls, reason=OUTCOME_TEXT[verb])
                     for t in selection.targets) + selection.rejected
    return RemediationResult(action=action, run_id=None, dry_run=dry_run, table=table, audit=audit,
                             operator=operator, outcomes=outcomes, started_at=now, finished_at=now)


def table_name(mapping: SchemaMapping) -> str:
    return f"{mapping.db_schema}.{mapping.table}"



def recheck_options(options: ScanOptions) -> ScanOptions:
    """The stuck predicate alone, as a write re-checks it per row (no window, ids, classes or limit)."""
    return replace(options, ids=(), since=None, classes=(), limit=None)


def no_jit(conn: Connection) -> None:
    # A batch statement's row estimates (CTEs over unnest) are wildly high, which makes
    # PostgreSQL JIT-compile it: hundreds of milliseconds per batch for microseconds of work.
    conn.execute("SELECT set_config('jit', 'off', true)")
