"""A stuck row's evidence, as the scan statement returns it, read into a ``StuckRow``: its class by the first
rule that matches, and why in words."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from stuckgen import deadline
from stuckgen.scan.results import StuckRow
from stuckgen.scan.rules import Evidence, Rule
from stuckgen.schema import SchemaMapping


def classify(ev: Evidence, rules: Sequence[Rule]) -> tuple[str, str]:
    for rule in rules:
        if rule.matches(ev):
            return rule.cls, rule.why
    return "unknown", "no rule matched the evidence"


def row_to_stuck(rec: Mapping[str, Any], m: SchemaMapping, rules: Sequence[Rule]) -> StuckRow:
    notes: list[str] = []
    hb_raw = rec["heartbeat_raw"]
    hb_at = rec["heartbeat_at"]
    if hb_raw is not None and hb_at is None:
        notes.append(f"heartbeat {hb_raw!r} is not a timestamp")
    has_hb = (hb_raw is not None) if m.has("heartbeat") else None
    steps = frozenset(s for s in rec["steps"] if s) if rec["steps"] is not None else None
    last_step = rec["last_step"]
    if last_step is None and steps is not None and not m.has("last_step"):
        last_step = None
    trigger_status = None
    entry = rec["trigger_entry"]
    if entry:
        try:
            obj = json.loads(entry)
            st = obj.get("status")
            trigger_status = int(st) if st is not None and str(st).isdigit() else None
            err = obj.get("error") or obj.get("errorText") or obj.get("message")
            if err:
                notes.append(f"{obj.get('step')}: {str(err)[:160]}")
        except (ValueError, AttributeError):
            notes.append("the failed-trigger log entry is cut or not JSON")
    outputs = rec["outputs"]
    ev = Evidence(
        steps=steps,
        last_step=last_step,
        has_heartbeat=has_hb,
        has_outputs=None if outputs is None else outputs > 0,
        has_webhook=rec["has_webhook"],
        job_state=rec["job_state"],
        past_max_duration=rec.get("past_max_duration"),
    )
    cls, why = classify(ev, rules)
    if cls == "trigger-failed" and trigger_status is not None:
        why = f"the trigger got HTTP {trigger_status} and no worker ever started"
        # The app logs only its last attempt (src/app/api/generate/route.ts), so one entry says
        # nothing of how many attempts were made; several entries count the ones logged.
        n = int(rec["trigger_failures"] or 0)
        why += f" (the last of {n} logged attempts)" if n > 1 else " (the app logs only its last attempt)"
    if cls == "unknown":
        bits = [f"last step {last_step!r}" if last_step else "no last step",
                "heartbeat seen" if has_hb else ("no heartbeat" if has_hb is False else "heartbeat not mapped"),
                f"{outputs} outputs" if outputs is not None else "outputs not mapped"]
        why = "no rule matched: " + ", ".join(bits)
    now = rec["db_now"]
    started, limit = rec.get("worker_started_at"), rec.get("max_duration")
    if cls == "timed-out" and started is not None and limit is not None:
        why = deadline.evidence((now - started).total_seconds(), limit)
    last_sign = rec["last_sign"]
    created = rec["created_at"]
    return StuckRow(
        id=rec["id"], status=rec["status"], cls=cls, why=why, created_at=created,
        last_sign_of_life=last_sign,
        quiet_seconds=(now - last_sign).total_seconds() if last_sign else 0.0,
        age_seconds=(now - created).total_seconds() if created else None,
        heartbeat_at=hb_at, last_step=last_step, trigger_status=trigger_status,
        trigger_failures=int(rec["trigger_failures"] or 0), error=rec["error"], outputs=outputs,
        job_state=rec["job_state"], user_id=rec["user_id"], notes=tuple(notes),
    )
