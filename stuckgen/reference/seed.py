"""Seed realistic generations of every kind (tests, demo, benchmarks), as the incident app writes them.

Times are relative to the database's clock, never the local one. Rows are
written with COPY, so a million rows seed in reasonable time.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

KINDS: tuple[str, ...] = (
    "completed", "running", "never-started", "trigger-failed", "stalled", "awaiting-webhook",
    "queued-not-drained", "outputs-not-finalized", "unknown",
)

_PROMPTS = (
    "a lighthouse on a cliff at dusk, volumetric fog, 35mm",
    "isometric cozy coffee shop interior, warm lighting",
    "portrait of an astronaut cat, studio lighting, hyperrealistic",
    "cinematic drone shot over a neon city in the rain",
)


@dataclass(frozen=True, kw_only=True)
class SeededRow:
    id: str
    kind: str
    status: str
    created_at: datetime  # naive UTC, as Prisma stores it
    parameters: dict[str, Any]
    user_id: str
    session_id: str
    outputs: int = 0
    job: dict[str, Any] | None = None


def _iso(t: datetime) -> str:
    return t.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _log(t: datetime, step: str, **extra: Any) -> dict[str, Any]:
    return {"at": _iso(t), "step": step, **extra}


def make_row(kind: str, *, now: datetime, age: float, rng: random.Random, user_id: str | None = None,
             session_id: str | None = None, padding: int = 0, trigger_status: int = 401) -> SeededRow:
    """One generation of ``kind`` created ``age`` seconds before ``now`` (naive UTC)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    created = now - timedelta(seconds=age)
    gid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    logs: list[dict[str, Any]] = [_log(created, "generate:create")]
    params: dict[str, Any] = {
        "width": 1024, "height": 1024, "steps": 30, "guidance": round(rng.uniform(3, 9), 1),
        "seed": rng.randrange(2**31), "sampler": "dpmpp_2m", "scheduler": "karras",
        "aspectRatio": "1:1", "numOutputs": 1,
    }
    status = "processing"
    outputs = 0
    job = None
    step = "generate:create"
    hb: datetime | None = None

    def at(frac: float) -> datetime:
        return created + timedelta(seconds=age * frac)

    if kind in ("completed", "running", "stalled", "outputs-not-finalized"):
        logs.append(_log(at(0.001), "process:triggered", status=202))
        logs.append(_log(at(0.002), "process:start"))
        logs.append(_log(at(0.003), "model:generate:start", model="flux-dev"))
        n_hb = 3 if kind != "running" else 5
        for i in range(n_hb):
            hb = at(0.004 + 0.01 * i) if kind != "running" else now - timedelta(seconds=5 * (n_hb - i))
            logs.append(_log(hb, "model:generate:heartbeat"))
        step = "model:generate:heartbeat"
        if kind in ("completed", "outputs-not-finalized"):
            logs.append(_log(at(0.05), "model:generate:end"))
            step = "model:generate:end"
            outputs = 1
        if kind == "completed":
            logs.append(_log(at(0.06), "process:completed"))
            step, status = "process:completed", "completed"
    elif kind == "trigger-failed":
        for i in range(3):
            logs.append(_log(at(0.001 * (i + 1)), "process:trigger-failed-http", status=trigger_status,
                             error='{"error":"Unauthorized"}'))
        step = "process:trigger-failed-http"
    elif kind == "awaiting-webhook":
        logs.append(_log(at(0.001), "process:triggered", status=202))
        logs.append(_log(at(0.002), "process:start"))
        logs.append(_log(at(0.003), "webhook:submitted"))
        params["replicatePredictionId"] = "p" + uuid.UUID(int=rng.getrandbits(128)).hex[:20]
        step = "webhook:submitted"
    elif kind == "queued-not-drained":
        status = "queued"
        job = {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "run_after": None, "attempts": 0,
               "locked_at": None, "created_at": created}
    elif kind == "unknown":
        logs.append(_log(at(0.001), "process:triggered", status=202))
        logs.append(_log(at(0.002), "process:failed", error="provider returned 500"))
        step = "process:failed"
    params["lastStep"] = step
    params["debugLogs"] = logs[-100:]
    if hb is not None:
        params["lastHeartbeatAt"] = _iso(hb)
    if padding:
        # Realistic weight: prompts expanded by the app, model metadata, provider echoes.
        params["providerInput"] = {"prompt_expanded": " ".join(rng.choice(_PROMPTS) for _ in range(padding // 48 + 1))[:padding]}
    return SeededRow(
        id=gid, kind=kind, status=status, created_at=created, parameters=params,
        user_id=user_id or str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        session_id=session_id or str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        outputs=outputs, job=job,
    )


def db_now(conn: Any) -> datetime:
    """The database's current time as naive UTC."""
    return conn.execute("SELECT (now() AT TIME ZONE 'UTC')").fetchone()[0]


def insert_rows(conn: Any, rows: Iterable[SeededRow], *, batch: int = 5000) -> int:
    """COPY rows (and their outputs and queue jobs) into the reference schema; returns the count."""
    n = 0
    gen_buf: list[SeededRow] = []

    def flush() -> None:
        if not gen_buf:
            return
        with conn.cursor() as cur:
            with cur.copy("COPY generations (id, session_id, user_id, model_id, prompt, parameters, status, created_at) FROM STDIN") as cp:
                for r in gen_buf:
                    cp.write_row((r.id, r.session_id, r.user_id, "flux-dev", _PROMPTS[hash(r.id) % len(_PROMPTS)],
                                  json.dumps(r.parameters), r.status, r.created_at))
            with cur.copy("COPY outputs (id, generation_id, file_url, file_type, created_at) FROM STDIN") as cp:
                for r in gen_buf:
                    for i in range(r.outputs):
                        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{r.id}/{i}"))
                        cp.write_row((oid, r.id, f"https://cdn.example.invalid/{r.id}/{i}.png", "image", r.created_at))
            with cur.copy("COPY generation_jobs (id, generation_id, run_after, attempts, locked_at, created_at) FROM STDIN") as cp:
                for r in gen_buf:
                    if r.job:
                        cp.write_row((r.job["id"], r.id, r.job["run_after"], r.job["attempts"], r.job["locked_at"], r.job["created_at"]))
        gen_buf.clear()

    for r in rows:
        gen_buf.append(r)
        n += 1
        if len(gen_buf) >= batch:
            flush()
    flush()
    return n


def generate(counts: Mapping[str, int], *, now: datetime, seed: int = 7, min_age: float = 300.0,
             max_age: float = 6 * 3600.0, padding: int = 0) -> Iterator[SeededRow]:
    """Rows of each kind in ``counts`` with ages spread in [min_age, max_age] ("running" rows are fresh)."""
    rng = random.Random(seed)
    for kind, count in counts.items():
        for _ in range(count):
            age = rng.uniform(30, 90) if kind == "running" else rng.uniform(min_age, max_age)
            yield make_row(kind, now=now, age=age, rng=rng, padding=padding)


def seed(conn: Any, counts: Mapping[str, int], **kw: Any) -> list[SeededRow]:
    """Insert rows per kind and return them (for small test sets; use generate+insert_rows for large ones)."""
    rows = list(generate(counts, now=db_now(conn), **kw))
    insert_rows(conn, rows)
    return rows


def backdate(conn: Any, seconds: float) -> None:
    """Move every recorded time in the reference tables ``seconds`` into the past.

    Tests use it instead of sleeping: rows age on the database's clock at once
    (creation, heartbeats, step log, lock, queue jobs, audit entries), so a
    threshold of one second is crossed without waiting for it.
    """
    shift = timedelta(seconds=seconds)
    ms = int(seconds * 1000)

    def older(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        try:
            t = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        if t.tzinfo is not None:
            t = t.astimezone(timezone.utc).replace(tzinfo=None)
        return _iso(t - shift)

    with conn.transaction():
        rows = conn.execute("SELECT id, parameters FROM generations").fetchall()
        for gid, params in rows:
            params = dict(params or {})
            for key in ("lastHeartbeatAt", "routingRetryAt", "submittedAt", "webhookSubmittedAt"):
                if key in params:
                    params[key] = older(params[key])
            if isinstance(params.get("processingStartedAt"), (int, float)):
                params["processingStartedAt"] = params["processingStartedAt"] - ms
            if isinstance(params.get("debugLogs"), list):
                params["debugLogs"] = [
                    {**e, "at": older(e.get("at"))} if isinstance(e, dict) else e for e in params["debugLogs"]
                ]
            conn.execute("UPDATE generations SET parameters = %s, created_at = created_at - %s WHERE id = %s",
                         (json.dumps(params), shift, gid))
        conn.execute("UPDATE outputs SET created_at = created_at - %s", (shift,))
        conn.execute("UPDATE generation_jobs SET created_at = created_at - %s, run_after = run_after - %s, "
                     "locked_at = locked_at - %s", (shift, shift, shift))
        for schema, table in (("stuckgen", "audit"), ("public", "stuckgen_audit")):  # the default, the old default
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{table}",)).fetchone()[0]:
                cols = {r[0] for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                    "AND data_type LIKE 'timestamp%%'", (schema, table))}
                for col in sorted(cols):
                    conn.execute(f'UPDATE "{schema}"."{table}" SET "{col}" = "{col}" - %s', (shift,))
