"""watch output for a terminal: one rich renderable per refresh (the JSON line is ``Refresh.as_dict``)."""

from __future__ import annotations

from datetime import timezone

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from stuckgen.durations import format_duration
from stuckgen.render.scan import CLASS_STYLE
from stuckgen.watch import Refresh

IDS_ON_SCREEN = 8


def watch_renderable(r: Refresh, *, threshold: float, interval: float,
                     probe_matrix: RenderableType | None = None) -> RenderableType:
    """Counts by class, rate, rows that became stuck / recovered since the start, and the probe matrix."""
    at = r.at.astimezone(timezone.utc).strftime("%H:%M:%SZ") if r.at else "-"
    started = r.started_at.astimezone(timezone.utc).strftime("%H:%M:%SZ") if r.started_at else "-"
    head = Text()
    head.append(f"{r.stuck} stuck", style="bold red" if r.stuck else "bold green")
    if r.stuck_rate is not None:
        head.append(f"  ({r.stuck_rate:.1%} of {r.created_in_window} created in the window)")
    if r.oldest_quiet_seconds is not None:
        head.append(f"  oldest quiet {format_duration(r.oldest_quiet_seconds)}")
    if r.stuck_before_window:
        shown = ", ".join(r.before_window_ids[:3])
        head.append(f"\n+ {r.stuck_before_window} stuck since before the window"
                    + (f" (e.g. {shown})" if shown else "") + "; see `stuckgen scan --since all`", style="red")
    head.append(f"\nquiet > {format_duration(threshold)}; refresh #{r.n} at {at} (database clock), "
                f"every {_every(interval)}; watching since {started}. Ctrl-C to leave.", style="dim")

    classes = Table(show_edge=False, header_style="bold", pad_edge=False)
    classes.add_column("class", no_wrap=True)
    classes.add_column("stuck", justify="right")
    for cls, n in r.by_class.items():
        classes.add_row(Text(cls, style=CLASS_STYLE.get(cls, "")), str(n))
    if not r.by_class:
        classes.add_row(Text("none", style="dim"), "0")

    moves = Table(show_edge=False, header_style="bold", pad_edge=False, expand=True)
    moves.add_column(f"became stuck since start ({r.new_total})", ratio=1)
    moves.add_column(f"recovered since start ({r.recovered_total})", ratio=1)
    new = [(i, "bold" if i in r.new_now else "") for i in r.new_ids[-IDS_ON_SCREEN:]]
    now_ids = {x.id for x in r.recovered_now}
    rec = [(f"{x.id} -> {x.status or 'deleted'}", "bold" if x.id in now_ids else "") for x in r.recovered[-IDS_ON_SCREEN:]]
    for k in range(max(len(new), len(rec))):
        a = Text(new[k][0], style=new[k][1]) if k < len(new) else Text("")
        b = Text(rec[k][0], style=rec[k][1]) if k < len(rec) else Text("")
        moves.add_row(a, b)
    more = []
    if r.new_total > len(new):
        more.append(f"{r.new_total - len(new)} earlier became stuck")
    if r.recovered_total > len(rec):
        more.append(f"{r.recovered_total - len(rec)} earlier recovered")
    parts: list[RenderableType] = [head, Text(""), classes, Text(""), moves]
    tf = r.failed_at_trigger
    if tf and tf.get("groups"):
        window = format_duration(tf["recent_window_seconds"])
        rate = f" ({tf['recent_rate']:.1%} of {tf['created_recent']} created)" if tf.get("recent_rate") is not None else ""
        line = Text()
        line.append(f"failed at the trigger: {tf['recent']} in the last {window}{rate}",
                    style="bold red" if tf["recent"] else "")
        line.append("; " + ", ".join(
            (f"{g['cause']} HTTP {g['http_status']}" if g["http_status"] is not None else g["cause"]) + f" x{g['count']}"
            for g in tf["groups"]) + f" in the window")
        parts += [Text(""), line]
    if more:
        parts.append(Text("... and " + ", ".join(more) + " (newest shown, bold: this refresh)", style="dim"))
    if r.capped:
        parts.append(Text(f"id tracking capped at {r.tracked} ids: new/recovered lists are partial", style="yellow"))
    out: list[RenderableType] = [Panel(Group(*parts), title="stuckgen watch", title_align="left")]
    if r.probe is not None and probe_matrix is not None:
        worst = r.probe.get("worst")
        titles = [f["title"] for f in r.probe.get("findings", [])[:3]]
        body: list[RenderableType] = [probe_matrix]
        for t in titles:
            body.append(Text("finding: " + t, style="yellow"))
        out.append(Panel(Group(*body), title=f"probe-auth at {r.probe.get('probed_at', '-')}"
                         + (f" (worst: {worst})" if worst else ""), title_align="left"))
    return Group(*out)


def _every(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 10 else format_duration(seconds)
