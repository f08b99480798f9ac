"""Which stuck classes a new trigger may take without doing harm, and what it does to the others.

What a trigger does depends on the app's process route. For the incident app
(src/app/api/generate/process/route.ts): a row with a prediction id is skipped but
its ``lastHeartbeatAt`` rewritten; any other row whose 60-second processing lock
expired is run again from the start, without looking at outputs already written.
So only rows no worker ever ran (or whose queue job was never run) are safe to
trigger again, and rows whose worker provably died (``timed-out``: it started longer
ago than the function may run, so no worker can still be running them; re-checked
on the database's clock just before each row is sent); the rest need an explicit
``--class`` and get a warning that says what the app will do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stuckgen.durations import format_duration
from stuckgen.remediate.results import Outcome, RowOutcome
from stuckgen.remediate.select import Selection, Target

# A new trigger cannot duplicate work: no worker ever ran these rows, or (timed-out) none can still be running.
SAFE_CLASSES: tuple[str, ...] = ("never-started", "trigger-failed", "queued-not-drained", "timed-out")

SYNC_ROUTE = "POST /api/generations/{id}/sync"

# What the app does when such a row is triggered again.
UNSAFE: dict[str, str] = {
    "outputs-not-finalized": "the process route runs the whole generation again (its lock expired and it does not "
                             "look at existing outputs): duplicate outputs and a second bill from the model provider",
    "awaiting-webhook": "the process route skips a row waiting on its provider but rewrites lastHeartbeatAt, so "
                        f"nothing moves; settle it with the app's sync route ({SYNC_ROUTE}, which asks the "
                        "provider) or see how it ended with `stuckgen reconcile`",
    "stalled": "a worker already ran it and may have reached the model provider before it died (or, quiet, may still "
               "be running): the process route runs it again from the start, and the provider may bill twice; with "
               "--max-duration, stalled rows whose worker started longer ago than the limit are timed-out, and safe",
    "unknown": "no rule explains the row, so what a new trigger does is unknown; read it with `stuckgen show ID`",
}


def is_safe(cls: str | None) -> bool:
    return cls in SAFE_CLASSES


def why_safe_timed_out(dead: Mapping[str, Any], targets: Sequence[Target]) -> list[str]:
    """Why the timed-out rows about to be triggered are safe, from ``deadline.DeadWorker``s by id:
    'the worker cannot still be running (started 14m05s ago, limit 300 s)' (a range for several)."""
    rows = [dead[t.id] for t in targets if t.cls == "timed-out" and t.id in dead]
    if not rows:
        return []
    ages = sorted(d.age_seconds for d in rows)
    started = format_duration(ages[0]) if len(ages) == 1 or format_duration(ages[0]) == format_duration(ages[-1]) \
        else f"{format_duration(ages[0])} to {format_duration(ages[-1])}"
    return [f"{len(rows)} timed-out row(s) taken: the worker cannot still be running (started {started} ago, "
            f"limit {rows[0].max_duration:g} s)"]


def why_unsafe(cls: str | None) -> str:
    if cls in UNSAFE:
        return UNSAFE[cls]
    return (f"{cls!r} is a configured class: stuckgen does not know what a new trigger does to it")


def split(selection: Selection, *, explicit: Sequence[str] = ()) -> tuple[Selection, tuple[RowOutcome, ...]]:
    """(what --all-stuck takes, what it left out and why).

    Rows of safe classes, and of classes named explicitly with --class, are taken;
    the rest are left out, each with the reason.
    """
    wanted = set(explicit)
    taken: list[Target] = []
    left: list[RowOutcome] = []
    for t in selection.targets:
        if is_safe(t.cls) or t.cls in wanted:
            taken.append(t)
        else:
            left.append(RowOutcome(id=t.id, outcome=Outcome.LEFT_OUT, ok=False, cls=t.cls,
                                   reason=f"left out ({t.cls}): {why_unsafe(t.cls)}; take it with --class {t.cls}"))
    return Selection(targets=tuple(taken), rejected=selection.rejected + tuple(left), by_ids=selection.by_ids), \
        tuple(left)


def warnings_for(targets: Sequence[Target]) -> list[str]:
    """One warning per unsafe class among rows about to be triggered (taken by id or by --class)."""
    counts: dict[str, int] = {}
    for t in targets:
        if not is_safe(t.cls):
            counts[t.cls or "unknown"] = counts.get(t.cls or "unknown", 0) + 1
    return [f"{n} {cls} row(s) will be triggered: {why_unsafe(cls)}" for cls, n in sorted(counts.items())]


def left_out_summary(left: Sequence[RowOutcome]) -> list[str]:
    """'left out 2 outputs-not-finalized row(s): <why>; take them with --class ...' per class."""
    counts: dict[str, int] = {}
    for o in left:
        counts[o.cls or "unknown"] = counts.get(o.cls or "unknown", 0) + 1
    return [f"left out {n} {cls} row(s): {why_unsafe(cls)}; take them with --class {cls}"
            for cls, n in sorted(counts.items())]
