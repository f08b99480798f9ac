"""Status vocabularies: which words mean in flight, completed, failed or cancelled, and whose word each is."""

from __future__ import annotations

import re
from dataclasses import dataclass


INFLIGHT, COMPLETED, FAILED, CANCELLED = "in flight", "completed", "failed", "cancelled"


@dataclass(frozen=True)
class Word:
    role: str
    source: str


def _words(role: str, source: str, *names: str) -> dict[str, Word]:
    return {n: Word(role, source) for n in names}


# Keys are normalised (lower case, '-' and ' ' as '_'). The first vocabulary to name a word wins,
# so the more specific sources come first.
VOCABULARY: dict[str, Word] = {}
for _chunk in (
    _words(INFLIGHT, "Replicate's first status (the prediction is booting)", "starting"),
    _words(INFLIGHT, "Replicate's and the incident app's running status", "processing"),
    _words(COMPLETED, "Replicate's success status", "succeeded"),
    _words(CANCELLED, "Replicate's cancelled status", "canceled"),
    _words(FAILED, "Replicate's and the incident app's failure status", "failed"),
    _words(CANCELLED, "Replicate's status for a prediction stopped by its deadline", "aborted"),
    _words(INFLIGHT, "the incident app's status before processing", "queued"),
    _words(COMPLETED, "the incident app's success status", "completed"),
    _words(CANCELLED, "the incident app's cancelled status", "cancelled"),
    _words(CANCELLED, "the incident app's status for a row its sweeper dismissed", "dismissed"),
    _words(INFLIGHT, "fal's queue status", "in_queue"),
    _words(INFLIGHT, "fal's running status (also a common word)", "in_progress"),
    _words(INFLIGHT, "pg-boss's state for a job waiting to run", "created"),
    _words(INFLIGHT, "pg-boss's state for a job waiting to be retried", "retry"),
    _words(INFLIGHT, "pg-boss's state for a job being worked on", "active"),
    _words(FAILED, "pg-boss's state for a job whose expiry passed (older versions)", "expired"),
    _words(INFLIGHT, "a common word for work not finished", "pending", "running", "started", "submitted",
           "waiting", "scheduled", "generating", "uploading", "training", "inprogress", "in_flight",
           "enqueued", "dispatched", "claimed", "locked", "working", "busy", "new", "initiated", "initializing"),
    _words(COMPLETED, "a common word for finished work", "done", "success", "successful", "complete", "finished",
           "processed", "ready", "ok", "delivered", "uploaded", "generated"),
    _words(FAILED, "a common word for failed work", "error", "errored", "failure", "timeout", "timed_out",
           "rejected", "dead", "killed", "crashed", "stuck_failed"),
    _words(CANCELLED, "a common word for abandoned work", "skipped", "abandoned", "revoked", "discarded"),
):
    for _k, _w in _chunk.items():
        VOCABULARY.setdefault(_k, _w)


def normalise(value: str) -> str:
    return re.sub(r"[\s-]+", "_", value.strip()).lower()


def word(value: str) -> Word | None:
    return VOCABULARY.get(normalise(value))
