"""How a scan is run: ``ScanOptions`` (threshold, window, in-flight statuses, graces), made from the settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stuckgen.trigger_failures import DEFAULT_ERROR_PATTERN

if TYPE_CHECKING:
    from stuckgen.settings import Settings


QUEUE_LOCK_SECONDS = 60.0  # the app's GENERATION_QUEUE_LOCK_TIMEOUT_MS default (60 000)


# Rows handed to an outside provider get the app's own grace (liveness.ts WEBHOOK_GRACE_MINUTES):
# a provider takes minutes, and its callback, not a heartbeat, is the sign of progress.
DEFAULT_GRACE: tuple[tuple[str, float], ...] = (("awaiting-webhook", 1800.0),)


ROUTING_RETRY_GRACE = 300.0  # liveness.ts ROUTING_RETRY_GRACE_MINUTES


# The last steps that say a provider will call back (src/app/api/generate/route.ts sets
# 'webhook:submitted'; the process route logs 'process:skipped-webhook-active' when it leaves such a
# row alone). The default grace is for those rows only: an app that polls its provider (Photoshot)
# has no callback to wait for, and its provider rows move only when someone polls.
CALLBACK_STEPS: tuple[str, ...] = ("webhook:submitted", "process:skipped-webhook-active")


@dataclass(frozen=True, kw_only=True)
class ScanOptions:
    threshold: float = 120.0
    since: float | None = 86400.0
    inflight_statuses: tuple[str, ...] = ("processing", "queued")
    classes: tuple[str, ...] = ()
    limit: int | None = None
    older_than: float | None = None  # only rows quiet for at least this long (remediation)
    ids: tuple[str, ...] = ()
    naive_timezone: str = "UTC"
    # Select the stuck rows created *before* the window instead of those in it (the
    # window governs the stuck rate, never whether a stuck row is reported).
    before_window: bool = False
    # Failed rows read as evidence of a failed trigger (stuckgen.trigger_failures); () reads none.
    trigger_statuses: tuple[str, ...] = ("failed",)
    trigger_window: float = 3600.0  # the recent window their count and rate are judged on
    trigger_error_pattern: str = DEFAULT_ERROR_PATTERN
    # Signs of life besides the heartbeat (the app's own; see alive_sql).
    queue_lock: float = QUEUE_LOCK_SECONDS  # a job locked this recently is being worked on
    grace: tuple[tuple[str, float], ...] = DEFAULT_GRACE  # (class, quiet time) before a row of it is stuck
    grace_configured: tuple[str, ...] = ()  # classes whose grace was configured (applies to all their rows)
    routing_retry_grace: float = ROUTING_RETRY_GRACE  # past a scheduled routing retry, before stuck
    max_duration: float | None = None  # the worker function's maximum duration: names timed-out rows

    def grace_for(self, cls: str, *, last_step: str | None = None) -> float:
        """The quiet time after which a row of ``cls`` is stuck: its grace, never below the threshold.

        The default awaiting-webhook grace needs a callback to wait for (``CALLBACK_STEPS``)."""
        if cls == "awaiting-webhook" and cls not in self.grace_configured and last_step not in CALLBACK_STEPS:
            return self.threshold
        return max([self.threshold, *(g for c, g in self.grace if c == cls)])


def trigger_statuses(settings: Any) -> tuple[str, ...]:
    """The statuses read for trigger failures: as configured, else the app's failed status."""
    sources = getattr(settings, "sources", {}) or {}
    if sources.get("trigger_statuses", "default") != "default":
        return tuple(settings.trigger_statuses)
    return (settings.failed_status,)


def merge_grace(configured: Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """The default grace overridden by the configured one; 0 switches a class's grace off."""
    out = dict(DEFAULT_GRACE)
    out.update(configured)
    return tuple(sorted((c, g) for c, g in out.items() if g > 0))


def scan_options(settings: Settings, **overrides: Any) -> ScanOptions:
    """ScanOptions from the settings; ``overrides`` that are not None win."""
    kw: dict[str, Any] = dict(threshold=settings.threshold, since=settings.since,
                              inflight_statuses=tuple(settings.inflight_statuses),
                              naive_timezone=settings.naive_timezone,
                              trigger_statuses=trigger_statuses(settings),
                              trigger_window=settings.trigger_window,
                              trigger_error_pattern=settings.trigger_error_pattern,
                              queue_lock=settings.queue_lock, grace=merge_grace(settings.grace),
                              grace_configured=tuple(c for c, _ in settings.grace),
                              routing_retry_grace=settings.routing_retry_grace,
                              max_duration=getattr(settings, "max_duration", None))
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return ScanOptions(**kw)
