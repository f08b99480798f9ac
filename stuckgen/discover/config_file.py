"""The generated stuckgen.toml, for an app table or for queue mode (a job-queue library's own tables)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stuckgen.db import Connection, scalar
from stuckgen.discover.catalog import candidates
from stuckgen.durations import format_ago
from stuckgen.discover.proposal import Choice, Proposal, propose
from stuckgen.errors import SchemaError

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
        ago = format_ago(None if v.newest_sign_seconds is None else max(0.0, v.newest_sign_seconds))
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
    from stuckgen.queues.read import library_of_table, qualified_name

    if table is not None:
        name = qualified_name(table, db_schema)
        lib = library_of_table(table, db_schema)
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
