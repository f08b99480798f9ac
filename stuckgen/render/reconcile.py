"""Reconcile output: JSON (``stuckgen.reconcile/v1``), CSV, Markdown and a terminal table; renderers yield lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

from stuckgen.reconcile import RUNNING, SUCCEEDED, UNREACHABLE, VERDICT_TEXT, VERDICTS, ReconcileResult, Verdict

CSV_COLUMNS = ("id", "class", "prediction_id", "verdict", "provider_status", "provider_completed_at",
               "completed_ago_seconds", "outputs", "provider_error", "http_status", "tries", "detail")

VERDICT_STYLE = {SUCCEEDED: "bold red", "provider-failed-callback-lost": "red", "provider-canceled": "yellow",
                 RUNNING: "green", "provider-unknown-prediction": "magenta", UNREACHABLE: "dim"}


def _order(result: ReconcileResult) -> list[Verdict]:
    rank = {v: i for i, v in enumerate(VERDICTS)}
    return sorted(result.verdicts, key=lambda v: rank.get(v.verdict, len(rank)))


def reconcile_json_lines(result: ReconcileResult) -> Iterator[str]:
    """One document, rows one per line.

    Shape (v1): {"schema": "stuckgen.reconcile/v1", "provider_url", "checked_at", "stuck_rows",
    "without_prediction", "asked", "counts": {verdict: n}, "stopped", "interrupted", "lost_callbacks_since",
    "rows": [{"id", "class", "prediction_id", "verdict", "detail", "provider_status", "provider_created_at",
    "provider_started_at", "provider_completed_at", "completed_ago_seconds", "provider_error", "outputs",
    "http_status", "tries"}]}
    """
    yield json.dumps(result.as_dict(rows=False))[:-1] + ', "rows": ['
    for i, v in enumerate(result.verdicts):
        yield ("  " if i == 0 else ", ") + json.dumps(v.as_dict())
    yield "]}"


def reconcile_csv_lines(result: ReconcileResult) -> Iterator[str]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="")
    w.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    for v in result.verdicts:
        d = v.as_dict()
        buf.seek(0)
        buf.truncate()
        w.writerow(["" if d.get(c) is None else d.get(c) for c in CSV_COLUMNS])
        yield buf.getvalue()


def summary_lines(result: ReconcileResult) -> list[str]:
    """What was asked and what the provider said, in a few plain lines."""
    lines = [f"asked the provider ({result.provider_url}) about {len(result.verdicts)} of {result.stuck_rows} "
             f"stuck row(s); {result.without_prediction} carry no prediction id"]
    if result.counts:
        lines.append("verdicts: " + ", ".join(f"{k} {n}" for k, n in result.counts.items()))
    onset = result.onset()
    if onset:
        lines.append(f"lost callbacks: {onset[1]} prediction(s) finished at the provider since "
                     f"{onset[0]:%Y-%m-%d %H:%M:%SZ} and never settled our rows")
        lines.append("settle them through the app: stuckgen reconcile --apply --url URL (dry run unless --yes)")
    if result.stopped:
        lines.append(f"stopped: {result.stopped}")
    if result.nothing_answered:
        lines.append("the provider answered nothing readable (see the details); exit 3")
    if result.interrupted:
        lines.append("interrupted: rows not asked are left out")
    return lines


def reconcile_markdown_lines(result: ReconcileResult) -> Iterator[str]:
    yield "# reconcile: the provider's side of stuck rows"
    yield ""
    for line in summary_lines(result):
        yield f"- {line}"
    yield ""
    if result.verdicts:
        yield "| id | class | prediction | verdict | detail |"
        yield "|---|---|---|---|---|"
        for v in _order(result):
            yield (f"| `{v.id}` | {v.cls or '-'} | `{v.prediction_id}` | **{v.verdict}** | "
                   f"{_md(v.detail)} |")
        yield ""
        yield "Verdicts:"
        yield ""
        for k in VERDICTS:
            if k in result.counts:
                yield f"- `{k}`: {VERDICT_TEXT[k]}"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reconcile_table(result: ReconcileResult, *, max_rows: int | None) -> tuple[Any, int]:
    """Rows needing action first; (rich Table, rows not shown)."""
    from rich.markup import escape
    from rich.table import Table

    # Two columns with two lines each: a 36-character id and a 32-character verdict side by side
    # would leave an 80-column terminal no room for the provider's words.
    t = Table(show_edge=False, header_style="bold", pad_edge=False, show_lines=True)
    t.add_column("row / verdict", no_wrap=True, min_width=36)
    t.add_column("the provider says", overflow="fold")
    ordered: Sequence[Verdict] = _order(result)
    shown = ordered if max_rows is None else ordered[:max_rows]
    for v in shown:
        style = VERDICT_STYLE.get(v.verdict, "")
        verdict = f"[{style}]{v.verdict}[/]" if style else v.verdict
        t.add_row(f"{v.id}\n{verdict}", escape(f"prediction {v.prediction_id}: {v.detail}"))
    return t, len(ordered) - len(shown)


def settle_table(result: Any) -> Any:
    """A settle run's rows for a person: each row's outcome and what the app did."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(show_edge=False, header_style="bold", pad_edge=False, show_lines=True)
    t.add_column("row / outcome", no_wrap=True, min_width=36)
    t.add_column("what the app did", overflow="fold")
    for o in result.outcomes:
        style = "green" if o.ok else "red"
        t.add_row(f"{o.id}\n[{style}]{o.outcome}[/]", escape(f"{o.verdict}; {o.change}; {o.reason}"))
    return t
