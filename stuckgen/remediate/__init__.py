"""Remediation of stuck rows: retrigger them, fail them honestly, undo a fail run.

Everything here is safe to run against production while the app keeps writing:

* ``fail_rows`` works in batches, one transaction each, with ``lock_timeout``;
  each batch locks its rows with ``FOR UPDATE SKIP LOCKED`` (a row a worker is
  writing is skipped, never waited for) and updates them with a compare-and-set
  that re-checks the stuck predicate by the database clock, so a completion
  written a moment earlier is never overwritten. ``RETURNING`` says what changed.
* ``undo`` restores a fail run's previous values by compare-and-set against the
  hash of what the run wrote: a row changed since is skipped and reported.
* ``retrigger_rows`` calls the app's process route the way its own server
  does, with bounded concurrency, retries with backoff and jitter, an
  idempotency key, an attempt limit across runs, and a circuit breaker that
  stops at the first 401/403.

Every change and trigger goes to the audit log (``stuckgen.audit``); a table
audit is written inside the batch's transaction. SIGINT/SIGTERM between
statements roll the current batch back; while a batch commits and its audit is
written they are held and delivered right after, so every batch is all or
nothing. No Typer, no rich: the CLI renders what these functions return.

Modules: ``results`` (outcomes, the run), ``select`` (which rows), ``batches``
(all-or-nothing batches, held signals), ``fields`` (SQL fail and undo share),
``fail``, ``undo``, ``retrigger``. Import from ``stuckgen.remediate``.
"""

from stuckgen.remediate.batches import DeferredSignals
from stuckgen.remediate.fail import FailOptions, check_fail_writes, default_reason, fail_rows
from stuckgen.remediate.validate import WriteRefusedError
from stuckgen.remediate.results import OUTCOME_TEXT, RESULT_SCHEMA, Outcome, RemediationResult, RowOutcome
from stuckgen.remediate.retrigger import (
    BYPASS_HEADER, DEFAULT_BODY_TEMPLATE, DEFAULT_IDEMPOTENCY_HEADER, MAX_EXCERPT, RetriggerOptions, partition_attempts,
    render_body, retrigger_rows, verify,
)
from stuckgen.remediate.select import Selection, Target, coerce_id, plan, select_rows, table_name, validate_ids
from stuckgen.remediate.undo import UndoOptions, undo

__all__ = [
    "BYPASS_HEADER", "DEFAULT_BODY_TEMPLATE", "DEFAULT_IDEMPOTENCY_HEADER", "MAX_EXCERPT",
    "OUTCOME_TEXT", "RESULT_SCHEMA", "DeferredSignals", "FailOptions", "Outcome", "WriteRefusedError", "check_fail_writes", "RemediationResult",
    "RetriggerOptions", "RowOutcome", "Selection", "Target", "UndoOptions", "coerce_id",
    "default_reason", "fail_rows", "partition_attempts", "plan",
    "render_body", "retrigger_rows", "select_rows", "table_name", "undo", "validate_ids", "verify",
]
