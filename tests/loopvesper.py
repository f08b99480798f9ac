"""The Loop-Vesper fixture: the app's real schema, and rows written the way its own code writes them.

Schema: the app's Prisma migrations (tests/data/loopvesper/migrations, copied from
github.com/tensalir/Loop-Vesper at the commit named in each file's header), applied
in `prisma migrate deploy`'s order (by directory name), each in its own transaction.
Two of them cannot run in that order on an empty database (each uses a table that a
later-named migration creates: 20250105_add_product_render_angle needs
20250106_add_product_renders, 20260507_add_cmf_collaboration needs
20260507_add_cmf_models), so `prisma migrate deploy` itself would stop there; the
fixture retries a failed migration after the others and records that it did.

Rows: every method of ``App`` names the source file whose writes it reproduces,
with the same keys, step names and value formats: ``created_at`` and the queue's
times are timestamp(3) without time zone holding UTC (Prisma), JSON times are
``Date.prototype.toISOString()`` (UTC, milliseconds, ``Z``), ``processingStartedAt``
is ``Date.now()`` (epoch milliseconds, a JSON number). Times are relative to the
database's clock (no sleeps); the database's time zone is not UTC.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

DATA = Path(__file__).parent / "data" / "loopvesper"
SERVER_TIMEZONE = "America/St_Johns"  # UTC-03:30 / -02:30: a half-hour offset catches more mistakes than a whole one

# Request parameters a client sends to POST /api/generate (src/app/api/generate/route.ts keeps them as
# `generationParameters`); the values do not matter to liveness.
REQUEST_PARAMETERS = {"aspectRatio": "1:1", "numOutputs": 1, "resolution": 1024}


def apply_migrations(conn: psycopg.Connection) -> list[str]:
    """Apply the stub, then the app's migrations in Prisma's order; returns the ones deferred."""
    conn.execute((DATA / "supabase_stub.sql").read_text())
    pending = sorted(p for p in (DATA / "migrations").glob("*.sql"))
    deferred: list[str] = []
    while pending:
        failed: list[Path] = []
        for path in pending:
            try:
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute(
                        "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)"
                        " VALUES (%s, %s, now(), %s, 1)", (str(uuid.uuid4()), "0" * 64, path.stem))
            except psycopg.errors.UndefinedTable:
                failed.append(path)
        if len(failed) == len(pending):
            raise RuntimeError(f"migrations that never apply: {[p.stem for p in failed]}")
        deferred += [p.stem for p in failed]
        pending = failed
    return deferred


def iso(t: datetime) -> str:
    """JavaScript's ``new Date().toISOString()``."""
    t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def naive_utc(t: datetime) -> datetime:
    """What Prisma stores in a timestamp(3) column: UTC wall time, no zone, milliseconds."""
    t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def epoch_ms(t: datetime) -> int:
    """JavaScript's ``Date.now()``."""
    return int(t.timestamp() * 1000)


@dataclass
class Gen:
    """One generation as the fixture built it, and what a correct tool must conclude."""

    id: str
    state: str                    # the fixture's name for the state
    expect: str | None            # stuck class, "trigger-refused"/"trigger-error" for failed at the trigger, None: healthy
    source: str                   # the app file whose writes produced it
    status: str = "processing"
    created: datetime | None = None
    params: dict[str, Any] = field(default_factory=dict)


class App:
    """Writes rows as Loop-Vesper's code paths do; ``now`` is the database's clock at fixture time."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.now: datetime = conn.execute("SELECT now()").fetchone()[0]
        self.rows: list[Gen] = []
        self.user_id = str(uuid.uuid4())
        self.session_id = str(uuid.uuid4())
        project_id = str(uuid.uuid4())
        t = naive_utc(self.now - timedelta(days=30))
        conn.execute("INSERT INTO auth.users (id, email) VALUES (%s, 'oncall@example.com')", (self.user_id,))
        conn.execute("INSERT INTO profiles (id, username, created_at, updated_at) VALUES (%s, 'oncall', %s, %s)",
                     (self.user_id, t, t))
        conn.execute("INSERT INTO projects (id, name, owner_id, created_at, updated_at) VALUES (%s, 'p', %s, %s, %s)",
                     (project_id, self.user_id, t, t))
        conn.execute("INSERT INTO sessions (id, project_id, name, type, created_at, updated_at) "
                     "VALUES (%s, %s, 's', 'image', %s, %s)", (self.session_id, project_id, t, t))

    # -- building blocks, each the write of one function of the app ---------------------------

    def ago(self, **kw: float) -> datetime:
        return self.now - timedelta(**kw)

    @staticmethod
    def debug_log(params: dict[str, Any], step: str, at: datetime, **extra: Any) -> dict[str, Any]:
        """src/lib/api/debug-log.ts appendDebugLog: push {at, step, ...extra}, keep 100, set lastStep."""
        logs = list(params.get("debugLogs") or [])
        logs.append({"at": iso(at), "step": step, **extra})
        return {**params, "debugLogs": logs[-100:], "lastStep": step}

    @staticmethod
    def process_log(params: dict[str, Any], step: str, at: datetime, **extra: Any) -> dict[str, Any]:
        """src/app/api/generate/process/route.ts appendLog: as appendDebugLog, and lastHeartbeatAt = now."""
        logs = list(params.get("debugLogs") or [])
        logs.append({"at": iso(at), "step": step, **extra})
        return {**params, "lastHeartbeatAt": iso(at), "lastStep": step, "debugLogs": logs[-100:]}

    def _insert(self, g: Gen, *, queue_job: dict[str, Any] | None = None, outputs: int = 0) -> Gen:
        self.conn.execute(
            "INSERT INTO generations (id, session_id, user_id, model_id, prompt, parameters, status, created_at) "
            "VALUES (%s, %s, %s, %s, 'a lighthouse at dusk', %s, %s, %s)",
            (g.id, self.session_id, self.user_id, "gemini-nano-banana", Jsonb(g.params), g.status,
             naive_utc(g.created or self.now)))
        if queue_job is not None:
            self.conn.execute(
                "INSERT INTO generation_jobs (id, generation_id, run_after, attempts, locked_at, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (str(uuid.uuid4()), g.id, queue_job.get("run_after"), queue_job.get("attempts", 0),
                 queue_job.get("locked_at"), naive_utc(g.created or self.now)))
        for i in range(outputs):
            out_id = str(uuid.uuid4())
            self.conn.execute(
                "INSERT INTO outputs (id, generation_id, file_url, file_type, created_at) VALUES (%s, %s, %s, 'image', %s)",
                (out_id, g.id, f"https://storage.example/{g.id}/{i}.png", naive_utc(self.now - timedelta(minutes=20))))
            # process route: outputs are enqueued for analysis right after createMany
            self.conn.execute("INSERT INTO output_analyses (output_id, status, created_at, updated_at) "
                              "VALUES (%s, 'queued', %s, %s)", (out_id, naive_utc(self.now), naive_utc(self.now)))
        self.rows.append(g)
        return g

    def created(self, at: datetime) -> dict[str, Any]:
        """src/app/api/generate/route.ts: prisma.generation.create (status processing), then
        appendDebugLog(id, 'generate:create')."""
        return self.debug_log(dict(REQUEST_PARAMETERS), "generate:create", at + timedelta(milliseconds=40))

    def _gen(self, state: str, expect: str | None, source: str, created: datetime, params: dict[str, Any],
             status: str = "processing", **kw: Any) -> Gen:
        return self._insert(Gen(id=str(uuid.uuid4()), state=state, expect=expect, source=source, status=status,
                                created=created, params=params), **kw)

    # -- the trigger (generate route, not in queue mode) ---------------------------------------

    def trigger_never_answered(self, minutes: float) -> Gen:
        """Created; the waitUntil trigger was cut off before any answer: only generate:create."""
        t = self.ago(minutes=minutes)
        return self._gen("trigger-never-answered", "never-started", "src/app/api/generate/route.ts", t, self.created(t))

    def trigger_timeout_expected(self, minutes: float) -> Gen:
        """The trigger timed out (10 s); the app logs it as 'probably started' and stops trying."""
        t = self.ago(minutes=minutes)
        p = self.debug_log(self.created(t), "process:trigger-timeout-expected", t + timedelta(seconds=10),
                           note="Request likely received, processing continues")
        return self._gen("trigger-timeout-expected", "never-started", "src/app/api/generate/route.ts", t, p)

    def triggered_no_worker(self, minutes: float) -> Gen:
        """The process route answered 202 (process:triggered) but its waitUntil work never wrote a step."""
        t = self.ago(minutes=minutes)
        p = self.debug_log(self.created(t), "process:triggered", t + timedelta(seconds=1))
        return self._gen("triggered-no-worker", "never-started", "src/app/api/generate/route.ts", t, p)

    def trigger_refused(self, minutes: float, status: int = 401, reason: str = "Unauthorized",
                        body: str = '{"error":"Unauthorized"}') -> Gen:
        """Three non-OK answers: the row is marked failed with the last answer in parameters.error
        (the update spreads generationParameters, so the earlier debugLogs are dropped), then
        appendDebugLog(id, 'process:trigger-failed-http', {status, error})."""
        t = self.ago(minutes=minutes)
        self.created(t)  # written, then overwritten by the failed update below
        p = {**REQUEST_PARAMETERS, "error": f"Failed to trigger processing: {status} {reason}",
             "triggerErrorText": body[:1000]}
        p = self.debug_log(p, "process:trigger-failed-http", t + timedelta(seconds=7), status=status, error=body[:200])
        return self._gen(f"trigger-refused-{status}", "trigger-refused", "src/app/api/generate/route.ts", t, p,
                         status="failed")

    def trigger_exception(self, minutes: float, message: str = "fetch failed") -> Gen:
        """Three non-timeout exceptions: failed with 'Failed to start background processing: <message>',
        then appendDebugLog(id, 'process:trigger-failed-exception', {error})."""
        t = self.ago(minutes=minutes)
        p = {**REQUEST_PARAMETERS, "error": f"Failed to start background processing: {message}"}
        p = self.debug_log(p, "process:trigger-failed-exception", t + timedelta(seconds=7), error=message)
        return self._gen("trigger-exception", "trigger-error", "src/app/api/generate/route.ts", t, p, status="failed")

    # -- the worker (process route) -------------------------------------------------------------

    def _worker(self, t: datetime, *, beats: int, last: datetime) -> dict[str, Any]:
        """process:start, the processing lock, model:generate:start, heartbeats every 10 s up to ``last``."""
        p = self.debug_log(self.created(t), "process:triggered", t + timedelta(seconds=1))
        start = t + timedelta(seconds=1)
        p = self.process_log(p, "process:start", start)
        p = {**p, "processingStartedAt": epoch_ms(start)}
        p = self.process_log(p, "model:generate:start", start + timedelta(milliseconds=300), modelId="gemini-nano-banana")
        for i in range(beats):
            p = self.process_log(p, "model:generate:heartbeat", last - timedelta(seconds=10 * (beats - 1 - i)))
        return p

    def running(self, seconds_since_beat: float = 5) -> Gen:
        """Healthy: a worker writing heartbeats every 10 s."""
        t = self.ago(minutes=3)
        p = self._worker(t, beats=10, last=self.ago(seconds=seconds_since_beat))
        return self._gen("running", None, "src/app/api/generate/process/route.ts", t, p)

    def stalled(self, minutes_silent: float = 20) -> Gen:
        """Killed mid-run (maxDuration 300 s in vercel.json): the heartbeats simply stop."""
        t = self.ago(minutes=minutes_silent + 5)
        p = self._worker(t, beats=30, last=self.ago(minutes=minutes_silent))
        return self._gen("stalled", "stalled", "src/app/api/generate/process/route.ts", t, p)

    def outputs_not_finalized(self) -> Gen:
        """Outputs uploaded (output.createMany, analyses enqueued), killed before status 'completed'."""
        t = self.ago(minutes=25)
        p = self._worker(t, beats=6, last=self.ago(minutes=22))
        p = self.process_log(p, "model:generate:end", self.ago(minutes=21, seconds=50), status="completed")
        p = self.process_log(p, "storage:upload-batch:heartbeat", self.ago(minutes=21, seconds=40))
        return self._gen("outputs-not-finalized", "outputs-not-finalized", "src/app/api/generate/process/route.ts",
                         t, p, outputs=2)

    def completed(self, minutes: float) -> Gen:
        """Finished: status 'completed' with the parameters read after process:start, then process:completed."""
        t = self.ago(minutes=minutes)
        p = self._worker(t, beats=3, last=t + timedelta(seconds=35))
        p = self.process_log(p, "process:completed", t + timedelta(seconds=40), outputCount=1)
        return self._gen("completed", None, "src/app/api/generate/process/route.ts", t, p, status="completed",
                         outputs=1)

    def model_failed(self, minutes: float) -> Gen:
        """The model failed: status 'failed', error from the provider, process:failed. Not a trigger failure."""
        t = self.ago(minutes=minutes)
        p = self._worker(t, beats=2, last=t + timedelta(seconds=25))
        p = {**p, "error": "Gemini API error: 429 RESOURCE_EXHAUSTED"}
        p = self.process_log(p, "process:failed", t + timedelta(seconds=30),
                             error="Gemini API error: 429 RESOURCE_EXHAUSTED", category="rate_limit")
        return self._gen("model-failed", None, "src/app/api/generate/process/route.ts", t, p, status="failed")

    # -- provider (Replicate webhook) ---------------------------------------------------------

    def webhook_submitted(self, minutes: float, *, skipped_by_process: bool = False) -> Gen:
        """generate route, webhook path: parameters = {...generationParameters, replicatePredictionId, webhookUrl,
        submittedAt, webhookSubmittedAt, webhookActive, lastHeartbeatAt, lastStep: 'webhook:submitted'}
        (the step log written by generate:create is dropped by the spread). With ``skipped_by_process`` the
        browser's fallback call reached the process route, which skipped the row and appended
        process:skipped-webhook-active (rewriting lastHeartbeatAt)."""
        t = self.ago(minutes=minutes)
        sub = iso(t + timedelta(seconds=2))
        p = {**REQUEST_PARAMETERS, "replicatePredictionId": "q3k" + uuid.uuid4().hex[:20],
             "webhookUrl": "https://loop-vesper.example/api/webhooks/replicate", "submittedAt": sub,
             "webhookSubmittedAt": sub, "webhookActive": True, "lastHeartbeatAt": sub, "lastStep": "webhook:submitted"}
        source = "src/app/api/generate/route.ts"
        if skipped_by_process:
            p = self.process_log(p, "process:start", t + timedelta(seconds=5))
            p = self.process_log(p, "process:skipped-webhook-active", t + timedelta(seconds=5, milliseconds=200),
                                 predictionId=p["replicatePredictionId"])
            source += ", src/app/api/generate/process/route.ts"
        expect = "awaiting-webhook" if minutes > 30 else None  # liveness.ts WEBHOOK_GRACE_MINUTES
        return self._gen("webhook-" + ("stale" if expect else "young"), expect, source, t, p)

    def webhook_completed(self, minutes: float) -> Gen:
        """src/app/api/webhooks/replicate/route.ts: succeeded -> outputs, status 'completed', webhookCompletedAt."""
        t = self.ago(minutes=minutes)
        sub = iso(t + timedelta(seconds=2))
        p = {**REQUEST_PARAMETERS, "replicatePredictionId": "q3k" + uuid.uuid4().hex[:20], "submittedAt": sub,
             "webhookSubmittedAt": sub, "webhookActive": True, "lastHeartbeatAt": sub, "lastStep": "webhook:submitted",
             "webhookCompletedAt": iso(t + timedelta(seconds=50)), "replicatePredictTime": 41.2}
        return self._gen("webhook-completed", None, "src/app/api/webhooks/replicate/route.ts", t, p,
                         status="completed", outputs=1)

    # -- queue mode (GENERATION_QUEUE_ENABLED=true) -------------------------------------------

    def queued(self, minutes: float) -> Gen:
        """generate route in queue mode: create, generationJob.create({generationId}), generate:create; no trigger."""
        t = self.ago(minutes=minutes)
        return self._gen("queued-unclaimed", "queued-not-drained", "src/app/api/generate/route.ts", t,
                         self.created(t), queue_job={})

    def claimed_waiting(self, minutes_queued: float, lock_seconds: float) -> Gen:
        """claimGenerationJobs took it (lockedAt = now, attempts + 1) in a batch of up to 5 run one after
        another; this one has not started yet: no step, no heartbeat, a fresh lock."""
        t = self.ago(minutes=minutes_queued)
        expect = None if lock_seconds < 60 else "queued-not-drained"  # GENERATION_QUEUE_LOCK_TIMEOUT_MS 60 000
        return self._gen("claimed-" + ("fresh" if expect is None else "expired"), expect,
                         "src/app/api/generate/process/route.ts (claimGenerationJobs)", t, self.created(t),
                         queue_job={"locked_at": naive_utc(self.ago(seconds=lock_seconds)), "attempts": 1})

    def routing_delayed(self, retry_in_minutes: float) -> Gen:
        """Both providers rate-limited in queue mode: routing:reschedule, then the update spreads the parameters
        read after process:start with routingDelayed/routingRetryAt; the job is released (lockedAt null,
        runAfter now + 30 s, resolveJobHandle) and the status stays 'processing'."""
        t = self.ago(minutes=6)
        start = self.ago(minutes=5)
        p = self.process_log(self.created(t), "process:start", start)
        p = {**p, "routingDelayed": True, "routingDelayReason": "All providers rate limited",
             "routingRetryAt": iso(start + timedelta(minutes=5 + retry_in_minutes))}
        expect = None if retry_in_minutes > -5 else "queued-not-drained"  # liveness.ts ROUTING_RETRY_GRACE_MINUTES 5
        return self._gen("routing-delayed", expect, "src/app/api/generate/process/route.ts", t, p,
                         queue_job={"locked_at": None, "attempts": 1,
                                    "run_after": naive_utc(start + timedelta(seconds=31))})

    # -- endings written by other routes -------------------------------------------------------

    def cancelled(self, minutes: float) -> Gen:
        """src/app/api/generations/[id]/cancel/route.ts: status 'cancelled', cancelledAt, cancelledReason."""
        t = self.ago(minutes=minutes)
        p = {**self.created(t), "cancelledAt": iso(t + timedelta(seconds=20)), "cancelledReason": "User cancelled"}
        return self._gen("cancelled", None, "src/app/api/generations/[id]/cancel/route.ts", t, p, status="cancelled")

    def cleaned_up(self, minutes: float) -> Gen:
        """src/app/api/admin/cleanup-stuck-generations/route.ts: the app's sweeper failed a stuck row."""
        t = self.ago(minutes=minutes)
        p = {**self.created(t), "error": "Processing appears stuck (no progress heartbeat)",
             "timeoutDetectedAt": iso(t + timedelta(minutes=24))}
        return self._gen("cleaned-up", None, "src/app/api/admin/cleanup-stuck-generations/route.ts", t, p,
                         status="failed")

    def dismissed(self, minutes: float) -> Gen:
        """src/app/api/generations/[id]/route.ts: PATCH status 'dismissed' (parameters untouched)."""
        t = self.ago(minutes=minutes)
        return self._gen("dismissed", None, "src/app/api/generations/[id]/route.ts", t, self.created(t),
                         status="dismissed")

    def fresh(self) -> Gen:
        """Created seconds ago: young, whatever it shows."""
        t = self.ago(seconds=20)
        return self._gen("fresh", None, "src/app/api/generate/route.ts", t, self.created(t))

    # -- whole scenes ---------------------------------------------------------------------------

    def every_state(self) -> None:
        """One row of every state the app's code can leave, stuck or healthy (no trigger failures)."""
        self.trigger_never_answered(10)
        self.trigger_timeout_expected(12)
        self.triggered_no_worker(9)
        self.stalled()
        self.outputs_not_finalized()
        self.webhook_submitted(45)
        self.queued(10)
        self.claimed_waiting(10, lock_seconds=300)
        # healthy
        self.running()
        self.fresh()
        self.claimed_waiting(5, lock_seconds=20)
        self.webhook_submitted(10)
        self.webhook_submitted(12, skipped_by_process=True)
        self.routing_delayed(retry_in_minutes=3)
        self.completed(30)
        self.webhook_completed(40)
        self.model_failed(50)
        self.cancelled(20)
        self.cleaned_up(90)
        self.dismissed(70)

    def incident_401(self) -> None:
        """The 401 incident as the app records it today: 12 of the last hour's 18 generations failed at
        the trigger with 401; the other 6 completed. Nothing is stuck."""
        for i in range(12):
            self.trigger_refused(minutes=5 + i * 4)
        for i in range(6):
            self.completed(minutes=7 + i * 8)

    def quiet_day(self) -> None:
        """A normal day: generations complete, one model error, one cancel, one stray trigger failure."""
        for i in range(20):
            self.completed(minutes=10 + i * 30)
        self.model_failed(40)
        self.cancelled(100)
        self.trigger_refused(minutes=200, status=504, reason="Gateway Timeout", body="An error occurred")

    # -- output_analyses: a job table with the lock on the row (src/app/api/analyze/process/route.ts) --

    def analysis(self, status: str, *, created_minutes: float, locked_seconds: float | None = None,
                 attempts: int = 0) -> str:
        """An output_analyses row: enqueued 'queued' by the process route after output.createMany;
        claimAnalysisJobs sets status 'processing', lockedAt now, attempts + 1 (the lock lasts
        ANALYSIS_LOCK_TIMEOUT_MS, 120 s); the update trigger keeps updated_at."""
        done = self.completed(minutes=created_minutes + 1)
        out_id = self.conn.execute("SELECT id FROM outputs WHERE generation_id = %s", (done.id,)).fetchone()[0]
        self.conn.execute("DELETE FROM output_analyses WHERE output_id = %s", (out_id,))
        created = naive_utc(self.ago(minutes=created_minutes))
        if locked_seconds is not None:
            return self._claimed_analysis(out_id, status, created, naive_utc(self.ago(seconds=locked_seconds)),
                                          attempts)
        return str(self.conn.execute(
            "INSERT INTO output_analyses (output_id, status, attempts, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id", (out_id, status, attempts, created, created)).fetchone()[0])

    def _claimed_analysis(self, out_id: Any, status: str, created: datetime, locked: datetime, attempts: int) -> str:
        # Inserted as queued, then claimed: the table's trigger sets updated_at to the statement's
        # time, so the claim time is written afterwards the way the clock would have had it.
        aid = self.conn.execute(
            "INSERT INTO output_analyses (output_id, status, attempts, created_at, updated_at) "
            "VALUES (%s, 'queued', 0, %s, %s) RETURNING id", (out_id, created, created)).fetchone()[0]
        self.conn.execute("ALTER TABLE output_analyses DISABLE TRIGGER output_analyses_updated_at_trigger")
        try:
            self.conn.execute("UPDATE output_analyses SET status = %s, locked_at = %s, attempts = %s, updated_at = %s "
                              "WHERE id = %s", (status, locked, attempts, locked, aid))
        finally:
            self.conn.execute("ALTER TABLE output_analyses ENABLE TRIGGER output_analyses_updated_at_trigger")
        return str(aid)

    def by_state(self) -> dict[str, list[Gen]]:
        out: dict[str, list[Gen]] = {}
        for g in self.rows:
            out.setdefault(g.state, []).append(g)
        return out


def dump(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)
