"""Rows that ended failed because the trigger to the process route failed: the other kind of evidence.

An app that gives up on a refused trigger marks the row ``failed`` (Loop-Vesper's
generate route does so after its third non-OK answer, src/app/api/generate/route.ts),
so during an auth incident nothing stays in flight and a stuck-row scan sees nothing.
These rows are read here: status in the configured failed statuses, created in the
window, with evidence of a failed trigger in the step log (``process:trigger-failed-http``
with the answer's HTTP ``status``, ``process:trigger-failed-exception``) or in the error
text (``Failed to trigger processing: 401 Unauthorized``). They are grouped in SQL by
cause and HTTP status, so the cost does not grow with the number of failed rows:

- ``trigger-refused``: the process route answered, with a non-2xx status (3xx included:
  the app does not follow redirects);
- ``trigger-timeout``: the call timed out (an app that counts that as a failure);
- ``trigger-error``: the call raised before any answer (network, DNS, TLS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stuckgen.durations import iso_utc

if TYPE_CHECKING:  # settings imports this module for its default; keep that import light
    from psycopg import sql

    from stuckgen.schema import SchemaMapping

TRIGGER_FAILED_HTTP = "process:trigger-failed-http"
TRIGGER_FAILED_EXCEPTION = "process:trigger-failed-exception"
CAUSES: tuple[str, ...] = ("trigger-refused", "trigger-timeout", "trigger-error")

# Error text that says the trigger failed (PostgreSQL regular expression, case-insensitive): the
# generate route's two messages. A team whose app words it differently sets trigger_error_pattern.
DEFAULT_ERROR_PATTERN = r"fail(ed|ure)? to (trigger|start background) processing"

# What a status means for the trigger, in the words an on-call engineer searches for.
STATUS_MEANING = {
    401: "Unauthorized: the process route did not accept the trigger's credentials (secret missing or different)",
    403: "Forbidden: the caller was recognised but not allowed",
    404: "Not Found: the process route is missing on that deployment (or the wrong origin)",
    405: "Method Not Allowed: the route exists but not for POST",
    500: "Internal Server Error: the process route crashed before accepting",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


def status_meaning(status: int | None) -> str:
    if status is None:
        return "no HTTP status recorded"
    if 300 <= status < 400:
        return "a redirect: the trigger does not follow it (and a redirect drops headers), so it counts as a failure"
    return STATUS_MEANING.get(status, f"HTTP {status}")


@dataclass(frozen=True, kw_only=True)
class TriggerFailureGroup:
    """Failed-at-the-trigger rows of one cause and HTTP status."""

    cause: str
    http_status: int | None
    count: int
    recent: int                 # of them, created in the recent window
    onset: datetime | None      # the first one's creation time
    latest: datetime | None
    sample: tuple[str, ...]     # a few ids, newest first
    error: str | None           # one error text, as the row has it

    @property
    def label(self) -> str:
        return f"{self.cause} HTTP {self.http_status}" if self.http_status is not None else self.cause

    def as_dict(self) -> dict[str, Any]:
        return {"cause": self.cause, "http_status": self.http_status, "count": self.count, "recent": self.recent,
                "onset": iso_utc(self.onset), "latest": iso_utc(self.latest), "sample": list(self.sample),
                "error": self.error}


@dataclass(frozen=True, kw_only=True)
class TriggerFailures:
    """Every group, with the window they were counted in and the rows created there (for rates)."""

    statuses: tuple[str, ...]
    since: float | None
    recent_window: float
    groups: tuple[TriggerFailureGroup, ...] = ()
    created_recent: int | None = None

    @property
    def total(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def recent(self) -> int:
        return sum(g.recent for g in self.groups)

    @property
    def recent_rate(self) -> float | None:
        return self.recent / self.created_recent if self.created_recent else None

    @property
    def onset(self) -> datetime | None:
        return min((g.onset for g in self.groups if g.onset is not None), default=None)

    def over(self, *, max_count: int, max_rate: float) -> bool:
        """The limits check pages on: more than ``max_count`` in the recent window AND over ``max_rate``."""
        return exceeds(self.recent, self.created_recent, max_count=max_count, max_rate=max_rate)

    def by_label(self) -> dict[str, int]:
        return {g.label: g.count for g in self.groups}

    def as_dict(self) -> dict[str, Any]:
        return {"statuses": list(self.statuses), "since_seconds": self.since,
                "recent_window_seconds": self.recent_window, "total": self.total, "recent": self.recent,
                "created_recent": self.created_recent,
                "recent_rate": None if self.recent_rate is None else round(self.recent_rate, 6),
                "onset": iso_utc(self.onset), "groups": [g.as_dict() for g in self.groups]}


def exceeds(n: int, created: int | None, *, max_count: int, max_rate: float) -> bool:
    """Both limits crossed, so that one stray refusal on a quiet hour does not page (count), nor
    do a few on a busy hour (rate); the 401 incident (12 of 18 in an hour) crosses both. Without
    a created count (no created time mapped) the count alone decides."""
    return n > max_count and (not created or n / created > max_rate)


def build_query(m: "SchemaMapping", *, statuses: tuple[str, ...], since: float | None, recent: float,
                naive_timezone: str, error_pattern: str = DEFAULT_ERROR_PATTERN) -> "sql.Composed":
    """Failed rows with trigger evidence, grouped by (cause, HTTP status); newest groups' samples first."""
    from psycopg import sql

    created = m.timestamp("created", naive_tz=naive_timezone)
    err = sql.SQL("left({}, 300)").format(m.text("error"))
    if m.has("step_log"):
        from stuckgen.scan import step_log_array

        # The last failed-trigger entry of the step log: its step and the answer's status.
        last = sql.SQL(
            "LEFT JOIN LATERAL (SELECT x.e->>'step' AS step, x.e->>'status' AS status "
            "FROM jsonb_array_elements({a}) WITH ORDINALITY x(e, n) WHERE jsonb_typeof(x.e) = 'object' "
            "AND x.e->>'step' = ANY({steps}) ORDER BY x.n DESC LIMIT 1) l ON true").format(
            a=step_log_array(m), steps=sql.Literal([TRIGGER_FAILED_HTTP, TRIGGER_FAILED_EXCEPTION]))
    else:
        last = sql.Composed([sql.SQL("LEFT JOIN LATERAL (SELECT NULL::text AS step, NULL::text AS status) l ON true")])
    # As text: a Prisma enum status column rejects a value that is not one of its labels.
    conds: list[Any] = [sql.SQL("{}::text = ANY({})").format(m.raw("status"), sql.Literal(list(statuses)))]
    if since is not None and m.has("created"):
        conds.append(sql.SQL("{} >= now() - make_interval(secs => {})").format(created, sql.Literal(since)))
    recent_cond = (sql.SQL("r.created >= now() - make_interval(secs => {})").format(sql.Literal(recent))
                   if m.has("created") else sql.SQL("true"))
    # One row per failed row: its evidence; rows without any are dropped before grouping.
    rows = sql.SQL(
        "SELECT {id}::text AS id, {created} AS created, {err} AS err, l.step, "
        "CASE WHEN l.status ~ '^[1-5][0-9][0-9]$' THEN l.status::int END AS step_status "
        "FROM {tbl} g {last} WHERE {where}").format(
        id=m.raw("id"), created=created, err=err,
        tbl=m.qualified(), last=last, where=sql.SQL(" AND ").join(conds))
    pattern = sql.Literal(error_pattern)
    status = sql.SQL(
        "coalesce(r.step_status, CASE WHEN r.step IS NULL OR r.step = {http} THEN coalesce("
        "substring(r.err from '\\m([1-5][0-9][0-9])\\M')::int, "
        "CASE WHEN r.err ~* 'unauthori[sz]ed' THEN 401 WHEN r.err ~* 'forbidden' THEN 403 END) END)").format(
        http=sql.Literal(TRIGGER_FAILED_HTTP))
    cause = sql.SQL(
        "CASE WHEN r.step = {http} OR (r.step IS NULL AND s.status IS NOT NULL) THEN 'trigger-refused' "
        "WHEN r.err ~* '(timed? ?out|timeout|abort)' THEN 'trigger-timeout' ELSE 'trigger-error' END").format(
        http=sql.Literal(TRIGGER_FAILED_HTTP))
    return sql.SQL(
        "SELECT {cause} AS cause, s.status AS http_status, count(*) AS n, count(*) FILTER (WHERE {recent}) AS recent, "
        "min(r.created) AS onset, max(r.created) AS latest, "
        "(array_agg(r.id ORDER BY r.created DESC NULLS LAST))[1:3] AS sample, "
        "(array_agg(r.err ORDER BY r.created DESC NULLS LAST))[1] AS error "
        "FROM ({rows}) r CROSS JOIN LATERAL (SELECT {status} AS status) s "
        "WHERE r.step IS NOT NULL OR coalesce(r.err ~* {pattern}, false) "
        "GROUP BY 1, 2 ORDER BY count(*) FILTER (WHERE {recent}) DESC, count(*) DESC, 1, 2").format(
        cause=cause, recent=recent_cond, rows=rows, status=status, pattern=pattern)


def read(conn: Any, m: "SchemaMapping", *, statuses: tuple[str, ...], since: float | None, recent: float,
         naive_timezone: str, error_pattern: str = DEFAULT_ERROR_PATTERN,
         created_recent: int | None = None) -> TriggerFailures:
    """The groups, read inside the caller's (read-only) transaction."""
    from psycopg.rows import tuple_row

    if not statuses:
        return TriggerFailures(statuses=(), since=since, recent_window=recent, created_recent=created_recent)
    q = build_query(m, statuses=statuses, since=since, recent=recent, naive_timezone=naive_timezone,
                    error_pattern=error_pattern)
    groups = tuple(
        TriggerFailureGroup(cause=c, http_status=st, count=n, recent=rc, onset=on, latest=la,
                            sample=tuple(sample or ()), error=err)
        for c, st, n, rc, on, la, sample, err in conn.cursor(row_factory=tuple_row).execute(q).fetchall())
    return TriggerFailures(statuses=statuses, since=since, recent_window=recent, groups=groups,
                           created_recent=created_recent)
