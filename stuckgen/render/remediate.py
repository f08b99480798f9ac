"""Remediation output: streamed JSON (``stuckgen.remediation/v1``, ``stuckgen.history/v1``) and terminal tables."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from rich.table import Table

from stuckgen.audit import RunSummary
from stuckgen.remediate import RemediationResult, RowOutcome
from stuckgen.render import streamed_json

HISTORY_SCHEMA = "stuckgen.history/v1"

_STYLE = {"failed": "green", "accepted": "green", "restored": "green", "would-fail": "cyan",
          "would-trigger": "cyan", "would-restore": "cyan", "auth-rejected": "bold red", "redirected": "bold red",
          "exhausted": "yellow", "skipped-locked": "yellow", "skipped-completed": "yellow",
          "skipped-touched": "yellow", "skipped-changed": "yellow", "left-out": "yellow"}
_VERB = {"fail": "failed", "retrigger": "triggered", "undo": "restored"}


def result_json_lines(result: RemediationResult) -> Iterator[str]:
    """One JSON document, streamed: the run's fields, then ``rows`` one per line.

    Shape (v1): {"schema": "stuckgen.remediation/v1", "action", "run_id", "dry_run", "table", "audit",
    "operator", "started_at", "finished_at", "selected", "remediated", "counts": {outcome: n},
    "batches": {"done", "total"}, "interrupted", "stopped", "stop_kind", "undo_of", "notes",
    "rows": [{"id", "outcome", "ok", "reason", "class", "http_status", "attempt", "tries", "verify"}]}
    """
    yield from streamed_json(result.as_dict(rows=False), (o.as_dict() for o in result.outcomes))


def result_table(result: RemediationResult, *, max_rows: int | None, width: int | None = None) -> tuple[Any, int]:
    """Rows that need attention first, then the rest, fitted to ``width``; (renderable, rows not shown).

    id, class and outcome are never cut; ``reason`` is last and wraps between words;
    a retrigger's verify, try and http columns go first when they would squeeze it.
    """
    from stuckgen.render.layout import fit_table

    retrigger = result.action == "retrigger"
    ordered: Sequence[RowOutcome] = sorted(result.outcomes, key=lambda o: o.ok)
    shown = ordered if max_rows is None else ordered[:max_rows]
    cells = [{"id": o.id, "class": o.cls or "-", "outcome": o.outcome, "http": str(o.http_status or "-"),
              "try": str(o.attempt or "-"), "verify": o.verify or "-", "reason": o.reason} for o in shown]
    ok: dict[str, bool] = {str(o.outcome): o.ok for o in shown}

    def style(col: str, v: str) -> str:
        return _STYLE.get(v, "red" if not ok.get(v, True) else "") if col == "outcome" else ""

    order = ("id", "class", "outcome", *(("http", "try", "verify") if retrigger else ()))
    fitted = fit_table(cells, order=order, required=("id", "class", "outcome"), drop=("verify", "try", "http"),
                       last="reason", width=width, right=("http", "try"), style=style)
    return fitted, len(ordered) - len(shown)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def summary_lines(result: RemediationResult) -> list[str]:
    """A few plain lines: what was done, what was skipped and why, how to undo."""
    counts = result.counts
    n = len(result.outcomes)
    lines: list[str] = []
    if not result.outcomes:
        return ["nothing to do: no stuck rows match the filters; nothing was "
                + ("sent" if result.action == "retrigger" else "written")]
    earlier = counts.get("already-undone", 0)
    if result.action == "undo" and not result.dry_run and earlier == n:
        return [f"nothing to restore: all {n} row(s) of run {result.undo_of} were restored by an earlier undo"]
    if result.dry_run:
        would = result.would_remediate
        verb = {"fail": "fail", "retrigger": "trigger", "undo": "restore"}[result.action]
        lines.append(f"dry run: would {verb} {would} of {n} selected row(s) in {result.table}; nothing was "
                     f"{'sent' if result.action == 'retrigger' else 'written'}. Pass --yes to act.")
    elif result.run_id is None:  # --yes, but no selected row could be acted on
        lines.append(f"nothing to do: none of the {n} selected row(s) in {result.table} can be "
                     f"{_VERB[result.action]}; nothing was {'sent' if result.action == 'retrigger' else 'written'}")
    else:
        lines.append(f"run {result.run_id}: {_VERB[result.action]} {result.remediated} of {n} row(s) in "
                     f"{result.table} (operator {result.operator}, audit {result.audit})")
    other = {k: v for k, v in counts.items()
             if k not in ("failed", "accepted", "restored", "already-undone") and not k.startswith("would-")}
    if earlier:
        lines.append(f"already restored by an earlier undo: {earlier}")
    if other:
        lines.append("not remediated: " + ", ".join(f"{v} {k}" for k, v in other.items()))
    if result.action == "retrigger" and not result.dry_run:
        verdicts: dict[str, int] = {}
        for o in result.outcomes:
            if o.verify:
                verdicts[o.verify] = verdicts.get(o.verify, 0) + 1
        if verdicts:
            lines.append("verification: " + ", ".join(f"{v} {k}" for k, v in sorted(verdicts.items())))
    if result.batches_total and not result.dry_run:
        lines.append(f"batches: {result.batches_done} of {result.batches_total} applied")
    if result.stopped:
        lines.append(f"stopped: {result.stopped}")
    if result.interrupted:
        lines.append(f"interrupted: every batch is either fully applied or not at all; "
                     f"{result.remediated} row(s) were {_VERB[result.action]} before the interrupt")
    for note in result.notes:
        lines.append(f"note: {note}")
    if result.action == "fail" and not result.dry_run and result.remediated:
        lines.append(f"undo with: stuckgen undo {result.run_id}")
    return lines


def history_json_lines(runs: Sequence[RunSummary], *, audit: str) -> Iterator[str]:
    """``{"schema": "stuckgen.history/v1", "audit", "runs": [{"run_id", "action", "operator", "table",
    "started_at", "finished_at", "rows", "outcomes": {outcome: n}}]}``"""
    yield json.dumps({"schema": HISTORY_SCHEMA, "audit": audit, "runs": [r.as_dict() for r in runs]}, indent=2)


def history_table(runs: Sequence[RunSummary]) -> Table:
    t = Table(show_edge=False, header_style="bold", pad_edge=False)
    for col in ("run", "action", "operator", "table", "started", "rows", "outcomes"):
        t.add_column(col, justify="right" if col == "rows" else "left")
    for r in runs:
        started = r.started_at.strftime("%Y-%m-%d %H:%M:%SZ") if r.started_at else "-"
        t.add_row(r.run_id, r.action, r.operator, r.table, started, str(r.rows),
                  ", ".join(f"{v} {k}" for k, v in r.outcomes.items()))
    return t
