"""show output: JSON (``stuckgen.show/v1``), Markdown for an incident, rich panels for a terminal.

JSON shape (v1)::

    {"schema": "stuckgen.show/v1", "generated_at", "table", "threshold_seconds",
     "generation": {"id", "status", "created_at", "last_sign_of_life", "quiet_seconds", "age_seconds",
                    "heartbeat_at", "last_step", "user_id", "error"},
     "stuck": bool, "class": str | null, "why": str | null, "verdict": str,
     "scan": {scan's row, as in stuckgen.scan/v1} | null,
     "timeline": {"total", "shown", "entries": [{"n", "at", "offset_seconds", "step", "extra": {...}}]} | null,
     "outputs": {"total", "rows": [{column: value}]} | null,
     "job": {column: value, ..., "state": "unclaimed" | "lock-expired" | "locked" | null} | null,
     "queue_mapped": bool,
     "audit": {"where", "actions": [{"run_id", "action", "row_id", "table", "at", "operator", "outcome",
                                     "previous", "new", "check", "detail"}]} | null,
     "database_now"}

``null`` for timeline/outputs/audit means "not mapped / not configured", an empty
list means "none".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from stuckgen.durations import format_ago, format_duration
from stuckgen.render.scan import CLASS_STYLE
from stuckgen.show import SHOW_SCHEMA, GenerationStory, StepEntry

FAILED_STEP_STYLE = "red"


def show_document(story: GenerationStory) -> dict[str, Any]:
    return {"schema": SHOW_SCHEMA, "generated_at": _now_iso(), "table": story.table,
            "threshold_seconds": story.threshold, **story.as_dict()}


def show_json_lines(story: GenerationStory) -> Iterator[str]:
    """The v1 document, pretty-printed, one line at a time."""
    yield from json.dumps(show_document(story), indent=2, default=str).splitlines()


# -- Markdown -----------------------------------------------------------------------------------


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _extras(e: StepEntry) -> str:
    return ", ".join(f"{k}={_fmt_extra(v)}" for k, v in e.extra.items())


def _fmt_extra(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def show_markdown_lines(story: GenerationStory) -> Iterator[str]:
    """A Markdown section to paste into an incident: verdict, fields, timeline, outputs, job, actions."""
    g = story.as_dict()["generation"]
    yield f"### Generation `{story.id}`"
    yield ""
    yield f"**{'STUCK' if story.stuck else 'Not stuck'}**: {_md(story.verdict.split(': ', 1)[1])}"
    yield ""
    yield "| field | value |"
    yield "|---|---|"
    for label, value in _field_rows(story, g):
        yield f"| {label} | {_md(value)} |"
    if story.stuck and story.stuck.notes:
        yield ""
        for n in story.stuck.notes:
            yield f"- {_md(n)}"
    yield ""
    yield "#### Timeline"
    yield ""
    if story.timeline is None:
        yield "No step log mapped (see `stuckgen schema`)."
    elif not story.timeline:
        yield "The step log is empty."
    else:
        if story.timeline_total > len(story.timeline):
            yield f"Last {len(story.timeline)} of {story.timeline_total} entries."
            yield ""
        yield "| time (UTC) | +since created | step | extras |"
        yield "|---|---:|---|---|"
        for e in story.timeline:
            yield f"| {_time(e)} | {_offset(e, story)} | `{_md(e.step or '-')}` | {_md(_extras(e))} |"
    yield ""
    yield "#### Outputs"
    yield ""
    if story.outputs is None:
        yield "No outputs table."
    elif not story.outputs:
        yield "None."
    else:
        for o in story.outputs:
            yield "- " + _md(_output_line(o))
        if story.outputs_total > len(story.outputs):
            yield f"- ... and {story.outputs_total - len(story.outputs)} more"
    yield ""
    yield "#### Queue job"
    yield ""
    if not story.queue_mapped:
        yield "No queue table."
    elif story.job is None:
        yield "None."
    else:
        yield _md(_job_line(story.job))
    yield ""
    yield "#### stuckgen actions"
    yield ""
    if story.actions is None:
        yield "No audit log configured."
    elif not story.actions:
        yield f"None recorded ({_md(story.audit_where)})."
    else:
        yield "| time (UTC) | run | action | outcome | operator | detail |"
        yield "|---|---|---|---|---|---|"
        for a in story.actions:
            yield (f"| {_short(a.at)} | `{_md(a.run_id)}` | {_md(a.action)} | {_md(a.outcome)} | {_md(a.operator)} | "
                   f"{_md(_detail(a.detail, a.new))} |")


def _field_rows(story: GenerationStory, g: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("status", story.status),
        ("class", story.stuck.cls if story.stuck else "-"),
        ("created", f"{_short(story.created_at)} ({format_ago(story.age_seconds)})"),
        ("last sign of life", f"{_short(story.last_sign_of_life)} ({format_ago(story.quiet_seconds)})"),
        ("heartbeat", _short(story.heartbeat_at)),
        ("last step", story.last_step or "-"),
        ("user", story.user_id or "-"),
        ("error", story.error or "-"),
    ]
    if story.provider_id:
        rows.append(("provider id", story.provider_id + (f"  {story.provider_page}" if story.provider_page else "")))
    if story.stuck and story.stuck.trigger_status is not None:
        rows.append(("failed trigger", f"HTTP {story.stuck.trigger_status} x{story.stuck.trigger_failures}"))
    if story.provider is not None:
        rows.append(("provider", f"{story.provider.verdict}: {story.provider.detail}"))
    if story.dead_worker is not None:
        rows.append(("worker", f"timed-out: {story.dead_worker.evidence}"))
    for x in (story.platform_logs or ())[:8]:
        status = f"HTTP {x.status}" if x.status else x.level
        rows.append(("platform log", f"{x.at:%H:%M:%S} {x.method or ''} {x.path or ''} {status}"
                                     f"{': ' + x.message[:100] if x.message else ''} ({x.deployment})"))
    return rows


def _output_line(o: dict[str, Any]) -> str:
    kind = o.get("file_type") or o.get("fileType") or o.get("type") or "output"
    url = o.get("file_url") or o.get("fileUrl") or o.get("url") or o.get("id") or "-"
    when = o.get("created_at") or o.get("createdAt")
    return f"{kind} {url}" + (f" ({when})" if when else "")


def _job_line(job: dict[str, Any]) -> str:
    keys = ("state", "attempts", "locked_at", "run_after", "created_at")
    parts = [f"{k} {job[k] if job.get(k) is not None else '-'}" for k in keys if k in job]
    return ", ".join(parts) or json.dumps(job, default=str)


def _detail(detail: dict[str, Any], new: dict[str, Any] | None) -> str:
    bits = [f"{k}={_fmt_extra(v)}" for k, v in (detail or {}).items()]
    if new:
        bits.append("set " + ", ".join(sorted(new)))
    return "; ".join(bits) or "-"


def _time(e: StepEntry) -> str:
    if e.at is None:
        return e.at_raw or "-"
    return e.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _offset(e: StepEntry, story: GenerationStory) -> str:
    if e.at is None or story.created_at is None:
        return "-"
    secs = (e.at - story.created_at).total_seconds()
    if abs(secs) < 0.05:  # created_at is stored to the millisecond, the log's first entry may round either way
        return "+0.0s"
    sign = "-" if secs < 0 else "+"
    return f"{sign}{abs(secs):.1f}s" if abs(secs) < 60 else sign + format_duration(abs(secs))


def _short(t: datetime | None) -> str:
    return "-" if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")




def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- terminal -----------------------------------------------------------------------------------


def show_renderables(story: GenerationStory) -> list[RenderableType]:
    """Rich panels for a terminal: verdict and fields, timeline, outputs and job, actions."""
    g = story.as_dict()["generation"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(ratio=1)
    for label, value in _field_rows(story, g):
        style = CLASS_STYLE.get(value, "") if label == "class" else ""
        head.add_row(label, Text(value, style=style))
    verdict = Text(story.verdict, style="bold red" if story.stuck else "bold green")
    notes = [Text("note: " + n, style="dim") for n in (story.stuck.notes if story.stuck else ())]
    out: list[RenderableType] = [Panel(Group(verdict, Text(""), head, *notes), title=f"generation {story.id}",
                                       title_align="left", subtitle=story.table, subtitle_align="right")]

    if story.timeline is None:
        out.append(Panel(Text("no step log mapped (see stuckgen schema)", style="dim"), title="timeline",
                         title_align="left"))
    else:
        t = Table(show_edge=False, header_style="bold", pad_edge=False, expand=True)
        t.add_column("time (UTC)", no_wrap=True)
        t.add_column("+", justify="right", no_wrap=True)
        t.add_column("step", no_wrap=True)
        t.add_column("extras", ratio=1)
        for e in story.timeline:
            failed = bool(e.step and ("failed" in e.step or "timeout" in e.step))
            t.add_row(_time(e), _offset(e, story), Text(e.step or "-", style=FAILED_STEP_STYLE if failed else ""),
                      Text(_extras(e)))
        title = "timeline" + (f" (last {len(story.timeline)} of {story.timeline_total})"
                              if story.timeline_total > len(story.timeline) else f" ({story.timeline_total} steps)")
        out.append(Panel(t if story.timeline else Text("the step log is empty", style="dim"), title=title,
                         title_align="left"))

    side = Table.grid(padding=(0, 2))
    side.add_column(style="bold", no_wrap=True)
    side.add_column(ratio=1)
    if story.outputs is None:
        side.add_row("outputs", Text("no outputs table", style="dim"))
    elif not story.outputs:
        side.add_row("outputs", "none")
    else:
        lines = [_output_line(o) for o in story.outputs]
        if story.outputs_total > len(story.outputs):
            lines.append(f"... and {story.outputs_total - len(story.outputs)} more")
        side.add_row(f"outputs ({story.outputs_total})", Text("\n".join(lines)))
    if not story.queue_mapped:
        side.add_row("queue job", Text("no queue table", style="dim"))
    else:
        side.add_row("queue job", _job_line(story.job) if story.job else "none")
    out.append(Panel(side, title="outputs and queue", title_align="left"))

    if story.actions is None:
        out.append(Panel(Text("no audit log configured", style="dim"), title="stuckgen actions", title_align="left"))
    elif not story.actions:
        out.append(Panel(Text(f"none recorded ({story.audit_where})", style="dim"), title="stuckgen actions",
                         title_align="left"))
    else:
        a_t = Table(show_edge=False, header_style="bold", pad_edge=False, expand=True)
        for col in ("time (UTC)", "run", "action", "outcome", "operator"):
            a_t.add_column(col, no_wrap=True)
        a_t.add_column("detail", ratio=1)
        for a in story.actions:
            a_t.add_row(_short(a.at), a.run_id, a.action, a.outcome, a.operator, _detail(a.detail, a.new))
        out.append(Panel(a_t, title=f"stuckgen actions ({story.audit_where})", title_align="left"))
    return out
