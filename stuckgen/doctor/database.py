"""What the database says: the mapping, the scan and its step logs, the server, the queues, the audit table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from stuckgen.db import scalar
from stuckgen.doctor.provider import provider_advice, provider_mode
from stuckgen.doctor.queues import queue_findings
from stuckgen.doctor.report import DoctorReport, RankedFinding
from stuckgen.doctor.stuck import scan_findings
from stuckgen.doctor.trigger import trigger_failure_findings
from stuckgen.errors import SchemaError
from stuckgen.findings import Finding, Severity

if TYPE_CHECKING:
    from stuckgen.db import Connection


def _unseen_statuses(conn: Connection, settings: Any, mapping: Any) -> RankedFinding | None:
    """A finding when configured in-flight statuses occur in no row (defaults are not judged:
    ``queued`` is legitimately absent where the app has no queue)."""
    from stuckgen.discover import census, statuses_unseen

    source = settings.sources.get("inflight_statuses", "default")
    if source == "default":
        return None
    unseen = statuses_unseen(conn, mapping, tuple(settings.values.get("inflight_statuses") or ()))
    if not unseen:
        return None
    cen = census(conn, mapping, naive_tz=settings.values.get("naive_timezone") or "UTC")
    present = ", ".join(f"{v.value} ({v.rows})" for v in cen.values if v.rows) or "none (the table is empty)"
    names = ", ".join(repr(u) for u in unseen)
    return RankedFinding(support=0.8, finding=Finding(
        id="inflight-status-unseen", severity=Severity.WARNING,
        title=f"in-flight status {names} occurs in no row of {mapping.table}: rows are never looked for under "
              f"{'that name' if len(unseen) == 1 else 'those names'} (a typo?)",
        evidence=(f"inflight_statuses: {', '.join(settings.values.get('inflight_statuses') or ())} [{source}]",
                  f"statuses in {mapping.table}: {present}"),
        fix="correct --inflight-statuses (STUCKGEN_INFLIGHT_STATUSES, inflight_statuses in stuckgen.toml) to "
            "statuses the table holds; stuckgen schema shows them all"))


def _audit_exposed(conn: Connection, settings: Any, schema: str) -> tuple[str, list[str]] | None:
    """(table, roles) when the audit table can be read through Supabase's Data API roles."""
    from stuckgen.audit import TableAudit, audit_log

    if settings.values.get("audit_file") or str(settings.values.get("audit_table") or "none").lower() == "none":
        return None
    log = audit_log(audit_file=None, audit_table=settings.values.get("audit_table"), default_schema=schema)
    roles = log.readable_by(conn) if isinstance(log, TableAudit) else []
    return (f"{log.schema}.{log.table}", roles) if roles and isinstance(log, TableAudit) else None


def _pooler(conn: Connection, settings: Any) -> str | None:
    """How a transaction-mode pooler shows itself: the port, or a server backend that changes per transaction."""
    from stuckgen import db as dbmod

    handled = "handled: no prepared statements, settings per transaction"
    pids, server_port = set(), None
    for _ in range(3):
        with dbmod.read_tx(conn, settings):
            pid, server_port = conn.execute("SELECT pg_backend_pid(), inet_server_port()").fetchone() or (None, None)
            pids.add(pid)
    if len(pids) > 1:
        return f"transaction-mode pooler detected (transactions ran on different server connections); {handled}"
    client_port = str(conn.info.port or "")
    if server_port is not None and client_port and client_port != str(server_port) and conn.info.host[:1] != "/":
        return f"a pooler or proxy sits in between (connected to port {client_port}, the server listens on {server_port}); {handled}"
    if client_port == "6543":
        return "port 6543: Supabase's transaction pooler; handled: no prepared statements, settings per transaction"
    return None


def _scan(conn: Connection, settings: Any, report: DoctorReport, run: Any, opts: Any, *,
          sample_rows: int, timeline: bool) -> list[Any]:
    """Run the scan: keep the first ``sample_rows`` stuck rows and, for the timeline, count stuck rows per minute."""
    from stuckgen import timeline as tl

    run.count_window()
    rows: list[Any] = []
    stuck_minutes: Counter = Counter()  # bounded by the window's minutes, never by the rows
    for r in run:
        if len(rows) < sample_rows:
            rows.append(r)
        at = r.created_at or r.last_sign_of_life
        if timeline and at is not None:
            stuck_minutes[tl.minute(at)] += 1
    if timeline:
        step_s, buckets = tl.query(conn, run.mapping, since=opts.since, naive_tz=opts.naive_timezone,
                                   completed_status=settings.values.get("completed_status") or "completed",
                                   failed_status=settings.failed_status)
        report.timeline = tl.build(step_s, buckets, stuck_minutes, onset=run.summary.onset)
    report.summary = run.summary
    report.since_seconds = opts.since
    report.stuck_sample = rows[:20]
    report.waiting_rows = [r for r in rows if r.cls == "awaiting-webhook"][:200]
    report.sample_rows = rows
    return rows


def _table_findings(mapping: Any, *, exposed: tuple[str, list[str]] | None, advice: str | None) -> list[RankedFinding]:
    """An audit table others can read, fields the mapping lacks, and a scan no index serves."""
    out: list[RankedFinding] = []
    if exposed:
        where, roles = exposed
        out.append(RankedFinding(support=0.3, finding=Finding(
            id="audit-table-exposed", severity=Severity.WARNING,
            title=f"the audit table {where} is readable by {', '.join(roles)} (Supabase's Data API roles)",
            evidence=(f"{where}: row-level security off, SELECT granted to {', '.join(roles)}",),
            fix=f"ALTER TABLE {where} ENABLE ROW LEVEL SECURITY; REVOKE ALL ON {where} FROM "
                f"{', '.join(roles)}  (stuckgen does this itself on its next real run as the table's owner)")))
    for w in mapping.warnings:
        out.append(RankedFinding(support=0.05, finding=Finding(
            id="mapping-gap", severity=Severity.INFO, title=w, evidence=(f"table {mapping.table}",),
            fix="map the field with --map or [mapping] in stuckgen.toml if the app keeps it elsewhere")))
    if advice:
        out.append(RankedFinding(support=0.05, finding=Finding(
            id="index-advice", severity=Severity.INFO,
            title=f"the stuck-row scan reads all of {mapping.table}: no index serves the in-flight statuses",
            evidence=("EXPLAIN shows a sequential scan, or a whole-index scan, of a large table",), fix=advice)))
    return out


def read_database(conn: Connection, settings: Any, report: DoctorReport, *, rules: Sequence[Any] | None,
                  sample_rows: int, step: Callable[[str], None], timeline: bool = False) -> list[RankedFinding]:
    """Mapping, scan and step-log evidence; fills ``report`` and returns the findings. SchemaError passes up."""
    from stuckgen import db as dbmod
    from stuckgen.queues import queue_census
    from stuckgen.scan import DEFAULT_RULES, ScanRun, explain_advice, scan_options
    from stuckgen.schema import mapping_config, resolve

    step("reading the database")
    opts = scan_options(settings)
    with dbmod.read_tx(conn, settings):
        mapping = resolve(conn, mapping_config(settings))
        report.mapping = mapping
        report.rules = tuple(rules or DEFAULT_RULES)
        run = ScanRun(conn, mapping, opts, report.rules)
        rows = _scan(conn, settings, report, run, opts, sample_rows=sample_rows, timeline=timeline)
        advice = explain_advice(conn, mapping, opts)
        version = scalar(conn, "SHOW server_version")
        exposed = _audit_exposed(conn, settings, mapping.db_schema)
        unseen = _unseen_statuses(conn, settings, mapping)
        report.queues = queue_census(conn, threshold=settings.threshold)
    ranked = queue_findings(report.queues)
    report.database = {"reachable": True, "server_version": version, "table": f"{mapping.db_schema}.{mapping.table}",
                       "pooler": _pooler(conn, settings)}
    if unseen:
        ranked.append(unseen)
    ranked += _table_findings(mapping, exposed=exposed, advice=advice)
    token = bool(settings.values.get("replicate_api_token"))
    report.provider_results = provider_mode(settings, mapping, rows)
    found, report.step_evidence = scan_findings(
        run.summary, rows, causes={"awaiting-webhook": provider_advice(report.provider_results, token=token)})
    ranked += found
    ranked += trigger_failure_findings(run.summary.trigger_failures, max_count=settings.max_trigger_failures,
                                       max_rate=settings.max_trigger_failure_rate)
    return ranked


def database_findings(conn: Connection | None, settings: Any, report: DoctorReport, *, db_error: str | None,
                      db_fix: str | None, rules: Sequence[Any] | None, sample_rows: int,
                      step: Callable[[str], None], timeline: bool) -> list[RankedFinding]:
    """The database's evidence, or a finding that names why there is none (not reachable, no table, a bad mapping)."""
    from stuckgen import db as dbmod

    if conn is None:
        report.database = {"reachable": False, "error": db_error or "no database configured"}
        return [RankedFinding(support=0.5, finding=Finding(
            id="database-unreachable", severity=Severity.WARNING if db_error else Severity.INFO,
            title="the database could not be consulted, so stuck rows were not counted",
            evidence=(db_error or "database_url: not set",),
            fix=db_fix or ("set DATABASE_URL (a read-only role is enough for doctor)" if not db_error
                           else "check the host and port in DATABASE_URL, and that this machine may reach them")))]
    from stuckgen.queues import libraries_in_force

    try:
        if libraries_in_force(settings):  # queue mode: the library's jobs are the job table
            from stuckgen.doctor.queues import read_queues

            return read_queues(conn, settings, report, libraries_in_force(settings))
        return read_database(conn, settings, report, rules=rules, sample_rows=sample_rows, step=step,
                             timeline=timeline)
    except SchemaError as exc:
        # Report what could be gathered (configuration, server, probe, Vercel) and name the gap.
        with dbmod.read_tx(conn, settings):
            version = scalar(conn, "SHOW server_version")
        report.database = {"reachable": True, "server_version": version, "table": None, "error": exc.message}
        missing = exc.message.startswith("table ")
        return [RankedFinding(support=1.0, finding=Finding(
            id="table-not-found" if missing else "mapping-invalid", severity=Severity.ERROR,
            title=(f"the job table is not there, so stuck rows were not counted: {exc.message}" if missing
                   else f"the schema mapping does not fit the table, so stuck rows were not counted: {exc.message}"),
            evidence=(exc.message,),
            fix=exc.hint or ("pass --table NAME (and --db-schema NAME), or set table in stuckgen.toml; "
                             "stuckgen schema lists what it finds" if missing
                             else "fix the mapping with --map FIELD=SPEC or [mapping] in stuckgen.toml")))]
