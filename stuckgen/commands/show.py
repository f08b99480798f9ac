"""`show ID`: one generation's whole story, read-only, with what the provider and the platform say."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stuckgen.console import Output
from stuckgen.errors import ExitCode

if TYPE_CHECKING:
    from stuckgen.audit import AuditLog
    from stuckgen.session import Session
    from stuckgen.show import GenerationStory


def run_show(session: Session, out: Output, *, generation_id: str, fmt: str) -> int:
    """Write the story in ``fmt`` (table, json, markdown); FINDINGS when the row is stuck."""
    from stuckgen.queues import libraries_in_force
    from stuckgen.render.show import show_json_lines, show_markdown_lines, show_renderables

    if libraries := libraries_in_force(session.settings):  # queue mode: a library's job, by its rules
        from stuckgen.commands.queues import run_show_job

        return run_show_job(session, out, libraries, generation_id, fmt=fmt)
    story = load(session, generation_id)
    if fmt == "json":
        out.lines(show_json_lines(story))
    elif fmt == "markdown":
        out.lines(show_markdown_lines(story))
    else:
        for part in show_renderables(story):
            out.out.print(part)
    return ExitCode.FINDINGS if story.stuck else ExitCode.OK


def load(session: Session, generation_id: str) -> GenerationStory:
    """The row's story from the database, then each outside source the settings make available."""
    from stuckgen.show import load_story

    s = session.settings
    with session.read():
        mapping = session.mapping()
        story = load_story(session.connection(), mapping, generation_id, options=session.scan_options(),
                           rules=session.rules(), audit=_audit(session), redact=s.secrets())
    if s.replicate_api_token:
        story = with_provider(session, story)
    if s.vercel_token and s.vercel_project and story.created_at is not None:
        story = with_platform_logs(session, story)
    if s.max_duration and story.stuck is not None:
        story = with_dead_worker(session, story)
    return story


def _audit(session: Session) -> AuditLog | None:
    """The audit log whose actions on the row are shown; none with --audit-table none."""
    s = session.settings
    if s.audit_file or str(s.audit_table or "none").strip().lower() != "none":
        return session.audit()
    return None


def with_provider(session: Session, story: GenerationStory) -> GenerationStory:
    """The story plus what the provider says about the row's prediction (when it carries one)."""
    from datetime import datetime, timezone

    from stuckgen import reconcile
    from stuckgen.remediate import Target, coerce_id

    mapping = session.mapping()
    if not mapping.has("webhook"):
        return story
    with session.read():
        rows, _ = reconcile.prediction_ids(
            session.connection(), mapping, [Target(id=story.id, key=coerce_id(mapping, story.id),
                                                   cls=story.stuck.cls if story.stuck else None)])
    if not rows:
        return story
    result = reconcile.reconcile_rows(session.http_client(concurrency=1), rows,
                                      options=session.provider_options(concurrency=1),
                                      now=datetime.now(timezone.utc), stuck_rows=1, without_prediction=0)
    return replace(story, provider=result.verdicts[0]) if result.verdicts else story


def with_platform_logs(session: Session, story: GenerationStory) -> GenerationStory:
    """The story plus Vercel's runtime log lines around its trigger: the process route's answers, the row's own lines."""
    from stuckgen.vercel.logs import log_deployments, near
    from stuckgen.errors import StuckgenError
    from stuckgen.vercel import VercelClient

    s, at = session.settings, story.created_at
    assert at is not None and s.vercel_token and s.vercel_project
    found = []
    try:
        vc = VercelClient(session.http_client(trust_env=True), token=s.vercel_token, project=s.vercel_project,
                          team=s.vercel_team, base_url=s.vercel_api_url)
        deployments = [*vc.list_deployments(target="production", live_before=at),
                       *vc.list_deployments(target="preview", live_before=at)]
        for d in log_deployments([d for d in deployments if d.created_at is None or d.created_at <= at]):
            for x in near(vc.runtime_logs(d.uid), at, before=5, after=120):
                if story.id in x.message or (x.path == s.route and x.source == "request"):
                    found.append(replace(x, deployment=d.url or d.uid))
    except StuckgenError as exc:
        session.out.note(f"note: Vercel's runtime logs not read: {exc.message}")
        return story
    return replace(story, platform_logs=tuple(sorted(found, key=lambda x: x.at)))


def with_dead_worker(session: Session, story: GenerationStory) -> GenerationStory:
    """The story plus the worker proven dead by --max-duration, when it is."""
    from stuckgen.deadline import dead_workers

    s = session.settings
    with session.read():
        dead = dead_workers(session.connection(), session.mapping(), [story.id],
                            max_duration=float(s.max_duration), naive_tz=s.naive_timezone)
    return replace(story, dead_worker=dead[story.id]) if story.id in dead else story
