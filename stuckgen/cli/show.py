"""`stuckgen show ID`: one generation's whole story, read-only."""


from typing import Annotated, Optional

import typer

from stuckgen.cli._app import (
    MaxDurationOpt,
    GraceOpt, QueueLibraryOpt, QueueLockOpt,
    ConfigOpt, ConnectTimeoutOpt, DatabaseUrlOpt, DbSchemaOpt, DebugOpt, EnvFileOpt, InflightOpt, LockTimeoutOpt,
    MapOpt, Output, StatementTimeoutOpt, TableOpt, ThresholdOpt, app, default_format, env_help, handle_errors,
    settings_from,
)
from stuckgen.errors import ConfigError, ExitCode

FORMATS = ("table", "json", "markdown")

AuditTableOpt = Annotated[Optional[str], typer.Option(
    "--audit-table", show_default=False, metavar="NAME",
    help=env_help("audit_table", "Audit log table whose actions are shown ('none' to skip). Default stuckgen.audit (a schema of its own)."))]
AuditFileOpt = Annotated[Optional[str], typer.Option(
    "--audit-file", show_default=False, metavar="PATH",
    help=env_help("audit_file", "Read the audit log from this JSON Lines file instead of the table."))]


@app.command()
@handle_errors
def show(
    generation_id: Annotated[str, typer.Argument(metavar="ID", show_default=False,
                                                 help="The generation's id (a UUID in the reference schema).")],
    database_url: DatabaseUrlOpt = None,
    threshold: ThresholdOpt = None,
    grace: GraceOpt = None,
    queue_lock: QueueLockOpt = None,
    queue_library: QueueLibraryOpt = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", "-f", show_default=False, metavar="FORMAT",
        help="table | json | markdown. Default: table on a terminal, json in a pipe.")] = None,
    audit_table: AuditTableOpt = None,
    audit_file: AuditFileOpt = None,
    table: TableOpt = None,
    db_schema: DbSchemaOpt = None,
    map: MapOpt = None,
    inflight_statuses: InflightOpt = None,
    statement_timeout: StatementTimeoutOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    connect_timeout: ConnectTimeoutOpt = None,
    env_file: EnvFileOpt = None,
    config: ConfigOpt = None,
    max_duration: MaxDurationOpt = None,
    debug: DebugOpt = False,
) -> int:
    """Show one generation's whole story: fields, verdict, step-log timeline, outputs, queue job, actions.

    The verdict is scan's (same query and rules, this id only, no --since window):
    the class and why when the row is stuck, else "not stuck: <status>, last sign of
    life N ago". The timeline is the row's step log with the extras the app logged,
    such as a failed trigger's HTTP status. Reads only, in a READ ONLY transaction.

    \b
    Examples:
      stuckgen show 3f2b6c1e-8a4d-4e5f-9b0a-1c2d3e4f5a6b
      stuckgen show 3f2b6c1e-8a4d-4e5f-9b0a-1c2d3e4f5a6b --format markdown >> incident.md

    Exit: 0 not stuck, 1 stuck, 2 malformed id, unknown id or configuration error,
    3 database unreachable.
    """
    from stuckgen.audit import audit_log
    from stuckgen.cli import _db
    from stuckgen.render.show import show_json_lines, show_markdown_lines, show_renderables
    from stuckgen.show import load_story

    settings = settings_from(locals())
    from stuckgen.queues import libraries_in_force

    if libraries := libraries_in_force(settings):  # queue mode: a library's job, by its rules
        from stuckgen.cli import _queues

        return _queues.show(settings, libraries, generation_id, fmt=fmt)
    out = Output()
    fmt = default_format(fmt, tty=out.is_tty)
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    opts = _db.scan_options(settings)
    conn = _db.connect(settings)
    with conn:
        with _db.read_tx(conn, settings):
            mapping = _db.resolve_mapping(conn, settings)
            for w in mapping.warnings:
                out.note(f"note: {w}")
            audit = None
            if settings.audit_file or str(settings.audit_table or "none").strip().lower() != "none":
                audit = audit_log(audit_file=settings.audit_file, audit_table=settings.audit_table,
                                  default_schema=mapping.db_schema)
            story = load_story(conn, mapping, generation_id, options=opts, rules=_db.rules(settings), audit=audit,
                               redact=settings.secrets())
        if settings.replicate_api_token:
            story = _with_provider(conn, settings, mapping, story)
        if settings.vercel_token and settings.vercel_project and story.created_at is not None:
            story = _with_platform_logs(out, settings, story)
        if settings.max_duration and story.stuck is not None:
            from dataclasses import replace

            from stuckgen.deadline import dead_workers

            with _db.read_tx(conn, settings):
                dead = dead_workers(conn, mapping, [story.id], max_duration=float(settings.max_duration),
                                    naive_tz=settings.naive_timezone)
            if story.id in dead:
                story = replace(story, dead_worker=dead[story.id])
    if fmt == "json":
        out.lines(show_json_lines(story))
    elif fmt == "markdown":
        out.lines(show_markdown_lines(story))
    else:
        for part in show_renderables(story):
            out.out.print(part)
    return ExitCode.FINDINGS if story.stuck else ExitCode.OK


def _with_provider(conn, settings, mapping, story):
    """The story plus what the provider says about the row's prediction (when it carries one)."""
    from dataclasses import replace
    from datetime import datetime, timezone

    from stuckgen import reconcile
    from stuckgen.cli import _db
    from stuckgen.cli.reconcile import provider_client, provider_options
    from stuckgen.remediate import Target, coerce_id

    if not mapping.has("webhook"):
        return story
    with _db.read_tx(conn, settings):
        rows, _ = reconcile.prediction_ids(
            conn, mapping, [Target(id=story.id, key=coerce_id(mapping, story.id),
                                   cls=story.stuck.cls if story.stuck else None)])
    if not rows:
        return story
    options = provider_options(settings, concurrency=1)
    with provider_client(settings, concurrency=1) as client:
        result = reconcile.reconcile_rows(client, rows, options=options, now=datetime.now(timezone.utc),
                                          stuck_rows=1, without_prediction=0)
    return replace(story, provider=result.verdicts[0]) if result.verdicts else story


def _with_platform_logs(out, settings, story):
    """The story plus Vercel's runtime log lines around its trigger: the process route's answers, the row's own lines."""
    from dataclasses import replace

    from stuckgen import http as transport
    from stuckgen.errors import StuckgenError
    from stuckgen.vercel import VercelClient
    from stuckgen.vercel.logs import log_deployments, near

    at = story.created_at
    found = []
    try:
        with transport.client(timeout=settings.http_timeout, trust_env=True) as http:
            vc = VercelClient(http, token=settings.vercel_token, project=settings.vercel_project,
                              team=settings.vercel_team, base_url=settings.vercel_api_url)
            deployments = [*vc.list_deployments(target="production", live_before=at),
                           *vc.list_deployments(target="preview", live_before=at)]
            for d in log_deployments([d for d in deployments if d.created_at is None or d.created_at <= at]):
                for x in near(vc.runtime_logs(d.uid), at, before=5, after=120):
                    if story.id in x.message or (x.path == settings.route and x.source == "request"):
                        found.append(replace(x, deployment=d.url or d.uid))
    except StuckgenError as exc:
        out.note(f"note: Vercel's runtime logs not read: {exc.message}")
        return story
    return replace(story, platform_logs=tuple(sorted(found, key=lambda x: x.at)))
