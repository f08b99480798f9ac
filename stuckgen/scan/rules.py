"""The stuck classes as data: ``Rule`` (a class and the conditions under which a row belongs to it),
the default rules in the order they are tried, and [[rules]] from stuckgen.toml."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from stuckgen.errors import ConfigError


CLASSES: tuple[str, ...] = (
    "never-started", "trigger-failed", "timed-out", "stalled", "awaiting-webhook",
    "queued-not-drained", "outputs-not-finalized", "unknown",
)


@dataclass(frozen=True)
class Rule:
    """A class and the conditions (all must hold) under which a stuck row belongs to it.

    A condition on a field the schema does not map is unknown, so the rule does not match.
    """

    cls: str
    why: str
    steps_any: tuple[str, ...] = ()   # the step log holds at least one of these
    steps_none: tuple[str, ...] = ()  # ... and none of these
    last_step_in: tuple[str, ...] = ()
    heartbeat: bool | None = None     # a heartbeat was ever written
    outputs: bool | None = None       # outputs exist
    webhook: bool | None = None       # a provider prediction id is set
    job: tuple[str, ...] = ()         # queue job state in: unclaimed, lock-expired, locked
    # the worker started more than max_duration + deadline.GRACE ago (unknown without --max-duration)
    past_max_duration: bool | None = None
    source: str = "default"           # where the rule came from (schema and doctor show it)

    def conditions(self) -> str:
        """The conditions as the [[rules]] keys that set them: ``heartbeat=false, last_step_in=[...]``."""
        parts = []
        for key in ("steps_any", "steps_none", "last_step_in", "job"):
            v = getattr(self, key)
            if v:
                parts.append(f"{key}=[{', '.join(v)}]")
        for key in ("heartbeat", "outputs", "webhook", "past_max_duration"):
            v = getattr(self, key)
            if v is not None:
                parts.append(f"{key}={'true' if v else 'false'}")
        return ", ".join(parts) or "(always)"

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "why": self.why, "conditions": self.conditions(), "source": self.source}

    def matches(self, ev: "Evidence") -> bool:
        # Runs once per rule per stuck row: plain comparisons, no reflection. An unknown
        # (None) fact never equals a wanted True/False, so the rule does not match.
        if self.steps_any and (ev.steps is None or ev.steps.isdisjoint(self.steps_any)):
            return False
        if self.steps_none and (ev.steps is None or not ev.steps.isdisjoint(self.steps_none)):
            return False
        if self.last_step_in and ev.last_step not in self.last_step_in:
            return False
        if self.heartbeat is not None and ev.has_heartbeat is not self.heartbeat:
            return False
        if self.outputs is not None and ev.has_outputs is not self.outputs:
            return False
        if self.webhook is not None and ev.has_webhook is not self.webhook:
            return False
        if self.job and ev.job_state not in self.job:
            return False
        if self.past_max_duration is not None and ev.past_max_duration is not self.past_max_duration:
            return False
        return True


TRIGGER_FAILED_STEPS = ("process:trigger-failed-http", "process:trigger-failed-exception")


WORKER_STEPS = ("process:start", "model:generate:start", "model:generate:heartbeat", "model:generate:end")


CREATE_STEPS = ("generate:create", "process:triggered", "process:trigger-timeout-expected")


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(cls="outputs-not-finalized", why="outputs exist but the status was never set", outputs=True),
    Rule(cls="trigger-failed", why="the step log records a failed trigger and no worker ever started",
         steps_any=TRIGGER_FAILED_STEPS, steps_none=WORKER_STEPS),
    Rule(cls="awaiting-webhook", why="handed to an outside provider and no callback settled it within its grace "
                                     "(`stuckgen reconcile` tells a lost callback from a slow provider)",
         steps_any=("webhook:submitted",)),
    Rule(cls="awaiting-webhook", why="a provider prediction id is set and nothing brought its result back within "
                                     "its grace (`stuckgen reconcile` tells a lost callback from a slow provider)",
         webhook=True),
    Rule(cls="queued-not-drained", why="queued but never claimed, or claimed and the lock expired",
         job=("unclaimed", "lock-expired")),
    # stalled, when its worker started longer ago than the function may run (--max-duration; deadline.py):
    Rule(cls="timed-out", why="a worker wrote heartbeats, then went silent, and it started longer ago than the "
                              "function's maximum duration plus a minute: provably dead",
         heartbeat=True, past_max_duration=True),
    Rule(cls="timed-out", why="a worker started longer ago than the function's maximum duration plus a minute: "
                              "provably dead", steps_any=WORKER_STEPS, past_max_duration=True),
    Rule(cls="stalled", why="a worker wrote heartbeats, then went silent", heartbeat=True),
    Rule(cls="stalled", why="a worker started but died before its first heartbeat",
         steps_any=WORKER_STEPS),
    # never-started, told by what the step log shows of the trigger (src/app/api/generate/route.ts):
    Rule(cls="never-started", why="trigger timed out; the request was probably received, but no worker ever "
                                  "wrote a step", heartbeat=False, last_step_in=("process:trigger-timeout-expected",)),
    Rule(cls="never-started", why="the process route accepted the trigger, but no worker ever wrote a step "
                                  "(its background work was cut off before it began)",
         heartbeat=False, last_step_in=("process:triggered",)),
    Rule(cls="never-started", why="no step after the create step: the trigger never reached the process route",
         heartbeat=False, last_step_in=CREATE_STEPS),
)


_RULE_KEYS = {"class", "why", "steps_any", "steps_none", "last_step_in", "heartbeat", "outputs", "webhook", "job",
              "past_max_duration"}


def rules_in_force(items: Sequence[Mapping[str, Any]] | None, *, replace_defaults: bool = False,
                   source: str = "stuckgen.toml") -> tuple[Rule, ...]:
    """The rules scan applies, in order: the configured [[rules]] first (so they win), then the
    defaults, unless ``replace_default_rules = true`` asked for the configured ones alone."""
    custom = rules_from_config(items or (), source=source)
    if replace_defaults:
        if not custom:
            raise ConfigError(f"{source}: replace_default_rules = true but no [[rules]]: every row would be 'unknown'")
        return custom
    return custom + DEFAULT_RULES


def rules_from_config(items: Sequence[Mapping[str, Any]], *, source: str = "stuckgen.toml") -> tuple[Rule, ...]:
    """[[rules]] tables from stuckgen.toml -> rules; ConfigError on anything unknown."""
    out: list[Rule] = []
    for i, item in enumerate(items, 1):
        unknown = set(item) - _RULE_KEYS
        if unknown:
            raise ConfigError(f"rules[{i}]: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_RULE_KEYS))}")
        cls = item.get("class")
        if not isinstance(cls, str) or not cls:
            raise ConfigError(f"rules[{i}]: 'class' must be a non-empty string")
        kwargs: dict[str, Any] = {"cls": cls, "why": str(item.get("why", cls)), "source": f"{source} [[rules]] #{i}"}
        for key in ("steps_any", "steps_none", "last_step_in", "job"):
            if key in item:
                v = item[key]
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise ConfigError(f"rules[{i}]: {key!r} must be a list of strings")
                kwargs[key] = tuple(v)
        for key in ("heartbeat", "outputs", "webhook", "past_max_duration"):
            if key in item:
                if not isinstance(item[key], bool):
                    raise ConfigError(f"rules[{i}]: {key!r} must be true or false")
                kwargs[key] = item[key]
        out.append(Rule(**kwargs))
    return tuple(out)


class Evidence(NamedTuple):
    """What the database says about one row; None means 'not mapped, unknown'."""

    steps: frozenset[str] | None
    last_step: str | None
    has_heartbeat: bool | None
    has_outputs: bool | None
    has_webhook: bool | None
    job_state: str | None  # None: no queue table or no job
    past_max_duration: bool | None = None  # None: no --max-duration, or no worker start known


def check_classes(classes: Iterable[str], rules: Sequence[Rule]) -> None:
    """ConfigError naming any of ``classes`` that no rule (nor ``unknown``) produces."""
    known = {r.cls for r in rules} | {"unknown"}
    unknown = [c for c in classes if c not in known]
    if unknown:
        raise ConfigError(f"--class: unknown class {', '.join(unknown)}; classes: {', '.join(sorted(known))}")
