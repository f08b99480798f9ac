"""doctor as one self-contained HTML page: a timeline chart, the ranked findings, the stuck rows.

No script and no external asset: the chart is SVG drawn here, the style is
inline, and a Content-Security-Policy forbids the page to load anything, so the
file can be mailed, attached to a ticket or opened offline. It reads on a phone
(the layout is one column; wide tables scroll inside their box and the stuck
rows become cards) and prints (no backgrounds needed to read it, sections kept
whole across pages). Every text is escaped; the report never holds a secret
(configuration shows lengths and fingerprints).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from html import escape
from typing import Any

from stuckgen.doctor import DoctorReport
from stuckgen.durations import format_duration

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

# Colour-blind-safe (Okabe-Ito) and distinct in greyscale print by pattern of lightness.
COLOURS = {"completed": "#009E73", "failed_at_trigger": "#E69F00", "failed_other": "#CC79A7",
           "stuck": "#D55E00", "other": "#BBBBBB"}
LABELS = {"completed": "completed", "failed_at_trigger": "failed at the trigger", "failed_other": "failed (other)",
          "stuck": "stuck", "other": "running or other"}

STYLE = """
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #ffffff; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--fg); background: var(--bg); }
main { max-width: 980px; margin: 0 auto; padding: 16px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; }
h2 { font-size: 1.15rem; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta { color: var(--muted); font-size: .9rem; margin: 0 0 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 8px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.card b { display: block; font-size: 1.3rem; }
.card span { color: var(--muted); font-size: .85rem; }
.chart { border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.chart .plot { overflow-x: auto; }
.chart svg { width: 100%; min-width: 600px; height: auto; display: block; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: .85rem; color: var(--muted); margin-top: 6px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
ol.findings { padding-left: 1.4em; }
ol.findings > li { margin: 0 0 14px; break-inside: avoid; page-break-inside: avoid; }
.sev { display: inline-block; font-size: .75rem; font-weight: 600; text-transform: uppercase; padding: 1px 6px;
       border-radius: 4px; border: 1px solid currentColor; margin-right: 6px; }
.sev.critical, .sev.error { color: #b42318; } .sev.warning { color: #9a6700; } .sev.info { color: var(--muted); }
.fid { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; color: var(--muted); }
ul.evidence { margin: 4px 0; padding-left: 1.2em; color: var(--fg); }
.fix { background: var(--soft); border-left: 3px solid var(--line); padding: 6px 10px; margin-top: 4px;
       overflow-wrap: anywhere; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em;
       background: var(--soft); padding: 0 3px; border-radius: 3px; white-space: pre-wrap; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .8rem; word-break: break-all; }
td.num { text-align: right; white-space: nowrap; }
details { margin-top: 8px; }
footer { color: var(--muted); font-size: .8rem; margin: 32px 0 8px; }
@media (max-width: 640px) {
  main { padding: 10px; }
  table.rows thead { display: none; }
  table.rows, table.rows tbody, table.rows tr, table.rows td { display: block; width: 100%; }
  table.rows tr { border: 1px solid var(--line); border-radius: 6px; margin-bottom: 8px; padding: 4px 0; }
  table.rows td, table.rows td.num { border: 0; padding: 2px 10px; text-align: left; }
  table.rows td::before { content: attr(data-label) ": "; color: var(--muted); font-weight: 600; }
}
@media print {
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  .chart, table.rows tr, .card { break-inside: avoid; page-break-inside: avoid; }
  .scroll, .chart .plot { overflow: visible; }
  .chart svg { min-width: 0; }
  details > summary { display: none; }
  a { color: inherit; text-decoration: none; }
}
""".strip()


def _t(t: datetime | None) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if t else "-"


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def doctor_html_lines(r: DoctorReport) -> Iterator[str]:
    """The whole page, a line at a time."""
    s = r.summary
    table = r.database.get("table") or "-"
    yield "<!DOCTYPE html>"
    yield '<html lang="en">'
    yield "<head>"
    yield '<meta charset="utf-8">'
    yield f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    yield '<meta name="viewport" content="width=device-width, initial-scale=1">'
    yield '<meta name="referrer" content="no-referrer">'
    yield f"<title>Stuck generations: incident report, {escape(table)}, {escape(_t(r.generated_at))}</title>"
    yield f"<style>\n{STYLE}\n</style>"
    yield "</head>"
    yield "<body>"
    yield "<main>"
    yield "<h1>Stuck generations: incident report</h1>"
    yield f'<p class="meta">Table <code>{escape(table)}</code> · generated by stuckgen at {escape(_t(r.generated_at))}</p>'
    yield from _cards(r)
    yield '<section id="timeline">'
    yield "<h2>Timeline</h2>"
    if r.timeline is not None and r.timeline.buckets:
        yield from _chart(r.timeline)
    elif not r.database.get("reachable"):
        yield f"<p>The database was not consulted: {escape(str(r.database.get('error') or ''))}.</p>"
    else:
        yield "<p>No generation was created in the window.</p>"
    yield "</section>"
    yield '<section id="findings">'
    yield "<h2>Findings, most likely cause first</h2>"
    if not r.findings:
        yield "<p>Nothing wrong was found.</p>"
    else:
        yield '<ol class="findings">'
        for f in r.findings:
            yield "<li>"
            yield (f'<div><span class="sev {escape(f.severity.label)}">{escape(f.severity.label)}</span>'
                   f"<strong>{escape(f.title)}</strong> <span class=\"fid\">{escape(f.id)}</span></div>")
            if f.evidence:
                yield '<ul class="evidence">' + "".join(f"<li>{_inline(e)}</li>" for e in f.evidence) + "</ul>"
            yield f'<div class="fix"><strong>Fix:</strong> {_inline(f.fix)}</div>'
            yield "</li>"
        yield "</ol>"
    yield "</section>"
    yield from _rows(r)
    if r.remediation or r.next_steps:
        yield '<section id="next">'
        yield "<h2>Remediation and next steps</h2>"
        yield "<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in [*r.remediation, *r.next_steps]) + "</ul>"
        yield "</section>"
    yield '<section id="configuration">'
    yield "<h2>Configuration</h2>"
    yield "<details><summary>What was set, and where from (secrets as length and fingerprint only)</summary>"
    yield '<div class="scroll"><table><thead><tr><th>setting</th><th>value</th><th>from</th></tr></thead><tbody>'
    for c in r.config:
        yield f"<tr><td>{escape(c.name)}</td><td>{escape(c.value)}</td><td>{escape(c.source)}</td></tr>"
    yield "</tbody></table></div></details>"
    yield "</section>"
    yield "<footer>stuckgen doctor --format html · one file, no script, nothing loaded from elsewhere.</footer>"
    yield "</main>"
    yield "</body>"
    yield "</html>"


def _inline(text: str) -> str:
    """Escape ``text`` and show `backticked` parts as code (the fixes quote commands that way)."""
    parts = str(text).split("`")
    return "".join(f"<code>{escape(p)}</code>" if i % 2 else escape(p) for i, p in enumerate(parts))


def _cards(r: DoctorReport) -> Iterator[str]:
    s = r.summary
    cards: list[tuple[str, str]] = []
    if s is not None:
        cards.append((str(s.stuck), "stuck now"))
        if s.stuck_rate is not None:
            cards.append((f"{s.stuck_rate:.1%}", f"of {s.created_in_window} created"))
        if s.stuck_before_window:
            cards.append((str(s.stuck_before_window), "stuck since before the window"))
        cards.append((_t(s.onset).replace(" UTC", "") if s.onset else "-", "onset (UTC)"))
        if s.oldest is not None:
            cards.append((format_duration(s.oldest.quiet_seconds), "oldest quiet"))
    top = r.findings[0] if r.findings else None
    if top is not None:
        cards.append((top.id, "most likely cause"))
    if not cards:
        return
    yield '<div class="cards">'
    for value, label in cards:
        yield f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
    yield "</div>"


def _axis(n: int) -> tuple[int, int]:
    """(top of the y axis, tick step): whole numbers, four or five ticks."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000):
        if n <= step * 4:
            return step * 4, step
    step = 10 ** (len(str(n // 4)))
    return ((n + step - 1) // step) * step, step


def _span(seconds: int) -> str:
    """10 min, 1 hour, 6 hours, 1 day: the bucket as people say it."""
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day" + ("s" if seconds > 86400 else "")
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour" + ("s" if seconds > 3600 else "")
    return f"{seconds // 60} min"


@dataclass(frozen=True)
class _Plot:
    """The chart's geometry: the SVG's size, the plot area inside its margins, and the scales."""

    tl: Any
    W: int = 960
    H: int = 300
    left: int = 44
    right: int = 12
    top: int = 28
    bottom: int = 46

    @property
    def pw(self) -> int:
        return self.W - self.left - self.right

    @property
    def ph(self) -> int:
        return self.H - self.top - self.bottom

    @cached_property
    def axis(self) -> tuple[int, int]:
        """(top of the y axis, its step)."""
        return _axis(max(1, max(b.created for b in self.tl.buckets)))

    @cached_property
    def bw(self) -> float:
        """The width of one bucket."""
        return self.pw / len(self.tl.buckets)

    def x_at(self, t: datetime) -> float:
        t0 = self.tl.start.timestamp()
        span = max(1.0, self.tl.end.timestamp() - t0)
        return self.left + (t.timestamp() - t0) / span * self.pw

    def y(self, v: float) -> float:
        return self.top + self.ph - v / self.axis[0] * self.ph


def _grid(p: _Plot) -> Iterator[str]:
    """The horizontal grid lines and the y axis labels."""
    ymax, ystep = p.axis
    for i in range(ymax // ystep + 1):
        v = i * ystep
        yy = p.y(v)
        yield (f'<line x1="{p.left}" x2="{p.W - p.right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#d0d7de" '
               f'stroke-width="{1 if i == 0 else 0.5}"/>')
        yield f'<text x="{p.left - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#57606a">{v:g}</text>'


def _bars(p: _Plot) -> Iterator[str]:
    """One stacked bar per bucket: completed, failed at the trigger, other failures, stuck, the rest (bottom to top)."""
    for i, b in enumerate(p.tl.buckets):
        x = p.left + i * p.bw + p.bw * 0.1
        w = max(1.0, p.bw * 0.8)
        base = 0
        parts = (("completed", b.completed), ("failed_at_trigger", b.failed_at_trigger),
                 ("failed_other", b.failed - b.failed_at_trigger), ("stuck", b.stuck), ("other", b.other))
        tip = (f"{_t(b.start)}: {b.created} created, {b.completed} completed, {b.failed_at_trigger} failed at the "
               f"trigger, {b.failed - b.failed_at_trigger} failed otherwise, {b.stuck} stuck")
        yield f'<g class="bucket" data-start="{_iso(b.start)}"><title>{escape(tip)}</title>'
        for name, v in parts:
            if v <= 0:
                continue
            y1, y0 = p.y(base + v), p.y(base)
            yield (f'<rect class="bar {name}" x="{x:.1f}" y="{y1:.1f}" width="{w:.1f}" height="{max(0.5, y0 - y1):.1f}" '
                   f'fill="{COLOURS[name]}" data-value="{v}"/>')
            base += v
        yield "</g>"


def _x_labels(p: _Plot, step: str) -> Iterator[str]:
    """About 8 time labels at bucket boundaries, and the axis title."""
    tl, n = p.tl, len(p.tl.buckets)
    every = max(1, round(n / 8))
    fmt = "%H:%M" if tl.bucket_seconds < 86400 else "%m-%d"
    days = {b.start.date() for b in tl.buckets}
    for i in range(0, n, every):
        b = tl.buckets[i]
        label = b.start.strftime(fmt if len(days) == 1 or fmt == "%m-%d" else "%m-%d %H:%M")
        xx = p.left + i * p.bw
        yield f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{p.top + p.ph}" y2="{p.top + p.ph + 4}" stroke="#57606a"/>'
        yield f'<text x="{xx:.1f}" y="{p.top + p.ph + 16}" text-anchor="middle" fill="#57606a">{escape(label)}</text>'
    yield (f'<text x="{p.left + p.pw / 2:.1f}" y="{p.H - 8}" text-anchor="middle" fill="#57606a">'
           f'UTC, by creation time, one bar per {escape(step)}</text>')


def _markers(p: _Plot) -> Iterator[str]:
    """Deploys and variable changes, then the onset on top."""
    tl, top, ph = p.tl, p.top, p.ph
    for k, m in enumerate(tl.markers):
        xx = p.x_at(m.at)
        colour = "#0072B2" if m.kind == "deploy" else "#6F42C1"
        yield (f'<g class="marker {escape(m.kind)}"><title>{escape(m.label)} at {escape(_t(m.at))}</title>'
               f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{top + ph}" stroke="{colour}" stroke-width="1.5"/>'
               f'<text x="{xx + 3:.1f}" y="{top + 10 + (k % 2) * 11}" fill="{colour}">{escape(_short(m.label))}</text></g>')
    if tl.onset is not None and tl.start <= tl.onset <= tl.end:
        xx = p.x_at(tl.onset)
        yield (f'<g class="marker onset"><title>onset: first stuck generation created {escape(_t(tl.onset))}</title>'
               f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top - 14}" y2="{top + ph}" stroke="#b42318" stroke-width="2" '
               f'stroke-dasharray="5 3"/>'
               f'<text x="{xx + 4:.1f}" y="{top - 4}" fill="#b42318" font-weight="600">onset {escape(tl.onset.strftime("%H:%M"))}</text></g>')


def _chart(tl: Any) -> Iterator[str]:
    """Stacked bars per interval (by creation time), the onset and the Vercel markers, as inline SVG."""
    p = _Plot(tl)
    step = _span(tl.bucket_seconds)
    desc = (f"Generations per {step} by creation time, {_t(tl.start)} to {_t(tl.end)}: "
            f"{sum(b.created for b in tl.buckets)} created, {sum(b.stuck for b in tl.buckets)} stuck, "
            f"{sum(b.failed_at_trigger for b in tl.buckets)} failed at the trigger.")
    yield '<div class="chart"><div class="plot">'
    yield (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {p.W} {p.H}" role="img" '
           f'aria-labelledby="chart-title chart-desc" font-family="system-ui, sans-serif" font-size="11">')
    yield f'<title id="chart-title">Timeline of generations per {escape(step)}</title>'
    yield f'<desc id="chart-desc">{escape(desc)}</desc>'
    yield from _grid(p)
    yield from _bars(p)
    yield from _x_labels(p, step)
    yield from _markers(p)
    yield "</svg></div>"
    yield '<div class="legend">' + "".join(
        f'<span><i style="background:{COLOURS[k]}"></i>{escape(LABELS[k])}</span>' for k in COLOURS) + (
        '<span><i style="background:#b42318"></i>onset</span>'
        + ('<span><i style="background:#0072B2"></i>deploy</span><span><i style="background:#6F42C1"></i>variable '
           'changed</span>' if tl.markers else "")) + "</div>"
    yield "</div>"


def _short(label: str, n: int = 28) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _rows(r: DoctorReport) -> Iterator[str]:
    rows = r.stuck_sample
    s = r.summary
    yield '<section id="rows">'
    yield "<h2>Stuck rows</h2>"
    if not rows:
        yield "<p>None.</p>"
        yield "</section>"
        return
    more = (s.stuck - len(rows)) if s is not None else 0
    yield (f"<p>The first {len(rows)} of {s.stuck} stuck rows (list them all with <code>stuckgen scan</code>).</p>"
           if more > 0 else f"<p>All {len(rows)} stuck rows.</p>")
    yield '<div class="scroll"><table class="rows"><thead><tr><th>id</th><th>class</th><th>quiet</th>' \
          "<th>created (UTC)</th><th>last step</th><th>why</th></tr></thead><tbody>"
    for row in rows:
        created = row.created_at.astimezone(timezone.utc).strftime("%m-%d %H:%M:%S") if row.created_at else "-"
        yield (f'<tr><td class="id" data-label="id">{escape(row.id)}</td><td data-label="class">{escape(row.cls)}</td>'
               f'<td class="num" data-label="quiet">{escape(format_duration(row.quiet_seconds))}</td>'
               f'<td data-label="created">{escape(created)}</td>'
               f'<td data-label="last step">{escape(row.last_step or "-")}</td><td data-label="why">{escape(row.why)}</td></tr>')
    yield "</tbody></table></div>"
    yield "</section>"
