"""probe-auth output: JSON (``stuckgen.probe/v1``), Markdown, and rich tables.

Nothing here sees a secret or cookie value: the matrix carries the secret's
``describe()`` only, and answer excerpts were scrubbed when they were read.

JSON shape (v1)::

    {"schema": "stuckgen.probe/v1",
     "route": "/api/generate/process", "probe_id": "<uuid>", "repeat": N,
     "secret": "64 chars, sha256:1a2b3c4d" | "not set",
     "cookie": {"auth_cookie", "project_ref", "chunks", "size", "expires_in_seconds", "problems",
                "notes", "duplicates"} | null,
     "elapsed_seconds": float,
     "targets": [{"target", "url", "answered",
                  "cells": [{"mode", "sent", "statuses": {"401": 3}, "failures": {"timeout": 1},
                             "errors": {"Unauthorized": 3}, "latency_ms": {"median", "max"},
                             "vercel": {"auth_page", "sso_nonce", "sso_redirect", "vercel_id"},
                             "locations": [...]}]}],
     "skipped": [{"mode", "reason"}],
     "findings": [{"id", "severity", "title", "evidence": [...], "fix", "target"}],
     "worst": "error" | null}
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from stuckgen.cookies import CookieInfo
from stuckgen.findings import Finding, Severity, worst
from stuckgen.probe import ProbeCell, ProbeMatrix

PROBE_SCHEMA = "stuckgen.probe/v1"

SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.ERROR: "bold red",
    Severity.WARNING: "yellow",
    Severity.INFO: "dim",
}


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _cell_dict(cell: ProbeCell) -> dict[str, Any]:
    rs = cell.results
    return {
        "mode": cell.mode,
        "sent": cell.sent,
        "statuses": {str(s): n for s, n in cell.status_counts.most_common()},
        "failures": dict(cell.failure_counts.most_common()),
        "errors": dict(Counter(r.error for r in rs if r.error).most_common()),
        "latency_ms": {"median": _ms(cell.latency_median), "max": _ms(cell.latency_max)},
        "vercel": {
            "auth_page": sum(r.html_auth_page for r in rs),
            "sso_nonce": sum(r.sso_nonce for r in rs),
            "sso_redirect": sum(r.sso_redirect for r in rs),
            "vercel_id": sum(r.vercel_id is not None for r in rs),
        },
        "locations": sorted({r.location for r in rs if r.location}),
    }


def finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "id": f.id,
        "severity": f.severity.label,
        "title": f.title,
        "evidence": list(f.evidence),
        "fix": f.fix,
        "target": f.target,
    }


def cookie_dict(info: CookieInfo | None, *, now: float | None = None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "auth_cookie": info.auth_cookie,
        "project_ref": info.project_ref,
        "chunks": info.chunk_count,
        "size": info.total_size,
        "expires_in_seconds": (
            round(info.exp - now) if now is not None and info.exp is not None else
            (round(info.seconds_to_expiry) if info.seconds_to_expiry is not None else None)
        ),
        "problems": list(info.problems),
        "notes": list(info.notes),  # odd but harmless to @supabase/ssr (stale chunks, a custom name)
        "duplicates": list(info.duplicates),  # names given twice with different values
    }


def probe_document(
    matrix: ProbeMatrix, findings: Sequence[Finding], *, cookie_info: CookieInfo | None = None, now: float | None = None
) -> dict[str, Any]:
    """The v1 document as a dict (see the module docstring)."""
    w = worst(findings)
    return {
        "schema": PROBE_SCHEMA,
        "route": matrix.route,
        "probe_id": matrix.probe_id,
        "repeat": matrix.repeat,
        "secret": matrix.secret,
        "cookie": cookie_dict(cookie_info, now=now),
        "elapsed_seconds": round(matrix.elapsed, 3),
        "targets": [
            {
                "target": t.name,
                "url": t.url,
                "answered": t.name not in matrix.unreachable_targets,
                "cells": [_cell_dict(matrix.cell(t.name, m)) for m in matrix.modes],
            }
            for t in matrix.targets
        ],
        "skipped": [{"mode": m, "reason": r} for m, r in matrix.skipped],
        "findings": [finding_dict(f) for f in findings],
        "worst": w.label if w is not None else None,
    }


def probe_json_lines(
    matrix: ProbeMatrix, findings: Sequence[Finding], *, cookie_info: CookieInfo | None = None, now: float | None = None
) -> Iterator[str]:
    """The v1 document, pretty-printed, one line at a time."""
    yield from json.dumps(probe_document(matrix, findings, cookie_info=cookie_info, now=now), indent=2).splitlines()


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def probe_markdown_lines(matrix: ProbeMatrix, findings: Sequence[Finding]) -> Iterator[str]:
    """A Markdown report: the matrix as a table, then the findings with evidence and fix."""
    yield f"# probe-auth: `{matrix.route}`"
    yield ""
    yield (
        f"Probe id `{matrix.probe_id}` (matches no row), {matrix.repeat} repeat(s), "
        f"secret: {matrix.secret}, {len(matrix.results)} probes in {matrix.elapsed:.2f}s."
    )
    yield ""
    yield "| target | mode | answers | median ms | max ms |"
    yield "|---|---|---|---:|---:|"
    for cell in matrix.cells():
        yield (
            f"| {_md(cell.target)} | {cell.mode} | {_md(cell.summary())} | "
            f"{_ms(cell.latency_median) or 0} | {_ms(cell.latency_max) or 0} |"
        )
    for mode, reason in matrix.skipped:
        yield f"| | {mode} | skipped: {_md(reason)} | | |"
    yield ""
    yield "## Findings"
    yield ""
    if not findings:
        yield "None: the route accepts the secret and the cookie and refuses everything else."
    for f in findings:
        where = f" ({_md(f.target)})" if f.target else ""
        yield f"### {f.severity.label.upper()} `{f.id}`{where}"
        yield ""
        yield _md(f.title)
        yield ""
        for e in f.evidence:
            yield f"- {_md(e)}"
        yield ""
        yield f"**Fix:** {_md(f.fix)}"
        yield ""


def probe_table(matrix: ProbeMatrix, *, width: int | None = None) -> Any:
    """The terminal matrix, fitted to ``width``: one row per target x mode, answers as counts (last, wrapping),
    latency median/max; the vercel, max and median columns go first when the answers would be squeezed."""
    from stuckgen.render.layout import fit_table

    cells: list[dict[str, str]] = []
    styles: dict[int, str] = {}
    previous = None
    for cell in matrix.cells():
        rs = cell.results
        markers = []
        if any(r.html_auth_page or r.sso_nonce or r.sso_redirect for r in rs):
            markers.append("auth wall")
        if any(r.location and not r.sso_redirect for r in rs):
            markers.append("-> " + next(r.location for r in rs if r.location and not r.sso_redirect))
        if not markers and any(r.vercel_id for r in rs):
            markers.append("x-vercel-id")
        styles[len(cells)] = _answer_style(cell)
        cells.append({"target": cell.target if cell.target != previous else "", "mode": cell.mode,
                      "median": f"{_ms(cell.latency_median)} ms" if cell.latency_median is not None else "-",
                      "max": f"{_ms(cell.latency_max)} ms" if cell.latency_max is not None else "-",
                      "vercel": ", ".join(markers), "answers": cell.summary()})
        previous = cell.target
    for mode, reason in matrix.skipped:
        styles[len(cells)] = "dim"
        cells.append({"target": "", "mode": mode, "median": "", "max": "", "vercel": "",
                      "answers": f"skipped: {reason}"})
    by_answer = {c["answers"]: styles[i] for i, c in enumerate(cells)}
    return fit_table(cells, order=("target", "mode", "median", "max", "vercel"), required=("target", "mode"),
                     drop=("vercel", "max", "median"), last="answers", width=width, right=("median", "max"),
                     style=lambda col, v: by_answer.get(v, "") if col == "answers" else "")


def _answer_style(cell: ProbeCell) -> str:
    statuses = set(cell.status_counts)
    if cell.failure_counts or any(s >= 500 for s in statuses):
        return "red"
    if len(statuses) > 1:
        return "yellow"
    return ""


def findings_table(findings: Sequence[Finding]) -> Table:
    """Findings, most severe first: severity, id, verdict with evidence and fix."""
    table = Table(show_edge=False, header_style="bold", pad_edge=False, show_lines=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("finding", no_wrap=True)
    table.add_column("verdict, evidence and fix", ratio=1)
    for f in findings:
        body = Text(f.title, style="bold")
        for e in f.evidence:
            body.append("\n  " + e, style="")
        body.append("\nfix: ", style="green")
        body.append(f.fix)
        table.add_row(Text(f.severity.label, style=SEVERITY_STYLE[f.severity]), f.id, body)
    return table

