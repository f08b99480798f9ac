"""The incident app's provider routes in the reference deployment: submit with a webhook, the webhook, the sync route.

Each follows the app's code (tensalir/Loop-Vesper, read at c3caa5c):

* submission (``src/app/api/generate/route.ts``, ``USE_REPLICATE_WEBHOOKS``): the
  generate route submits the prediction with ``webhook = {origin}/api/webhooks/replicate``
  and ``webhook_events_filter: ['completed']``, then rewrites ``parameters`` as
  ``{...generationParameters, replicatePredictionId, webhookUrl, submittedAt,
  webhookSubmittedAt, webhookActive: true, lastHeartbeatAt, lastStep: 'webhook:submitted'}``
  (the debug log written at create is not carried over: the app spreads the
  request's parameters, not the row's);
* ``POST /api/webhooks/replicate`` (``src/app/api/webhooks/replicate/route.ts``):
  with ``REPLICATE_WEBHOOK_SECRET`` set, ``verifyWebhookSignature`` (``t=..,v1=<hex>``,
  see :func:`stuckgen.replicate.verify_app`) or 401 ``Invalid signature``; the row
  is found by ``parameters.replicatePredictionId``; a terminal row is skipped;
  succeeded -> outputs + ``completed`` (+ ``webhookCompletedAt``); failed/canceled
  -> ``failed`` with the provider's error;
* ``POST /api/generations/{id}/sync`` (``src/app/api/generations/[id]/sync/route.ts``):
  ``Authorization: Bearer <Supabase access token>`` of the row's owner (401, 404,
  403 otherwise), 400 without a prediction id, terminal rows answered
  ``synced: false``; else it asks the provider (``GET /predictions/{id}``; a non-OK
  answer is a 500) and settles the row like the webhook (``syncedAt``,
  ``syncReason: 'manual'``). Like the app, it reads and then writes without a
  compare-and-set.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import httpx
from psycopg.types.json import Jsonb

from stuckgen.cookies import decode_jwt_payload
from stuckgen.reference.cookies import REFERENCE_JWT_KEY, verify_jwt_signature
from stuckgen.replicate import verify_app

WEBHOOK_ROUTE = "/api/webhooks/replicate"
SYNC_PREFIX = "/api/generations/"
SYNC_SUFFIX = "/sync"
TERMINAL = ("completed", "failed", "cancelled")


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _output_urls(output: Any) -> list[str]:
    if isinstance(output, list):
        return [str(u) for u in output]
    if isinstance(output, str):
        return [output]
    return []


class ProviderRoutes:
    """Mixed into ReferenceDeployment: reads its provider settings and uses its pool and answers."""

    provider_url: str | None
    _provider_token: str | None
    _webhook_secret: str | None
    url: str

    # -- submission (the generate route with USE_REPLICATE_WEBHOOKS=true) -------------------------

    def _submit_prediction(self, conn: Any, generation_id: str, generation_parameters: dict[str, Any]) -> bool:
        """Submit with a webhook and record the prediction id; False when submission failed."""
        assert self.provider_url is not None
        webhook_url = f"{self.url}{WEBHOOK_ROUTE}"
        try:
            with httpx.Client(trust_env=False, timeout=5.0, follow_redirects=False) as client:
                r = client.post(f"{self.provider_url}/predictions",
                                headers={"authorization": f"Token {self._provider_token}"},
                                json={"version": "latest", "input": {"prompt": "reference"},
                                      "webhook": webhook_url, "webhook_events_filter": ["completed"]})
            if r.status_code >= 300:
                return False
            prediction_id = r.json()["id"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False  # the app falls back to the process route
        submitted = _iso_now()
        params = {**generation_parameters, "replicatePredictionId": prediction_id, "webhookUrl": webhook_url,
                  "submittedAt": submitted, "webhookSubmittedAt": submitted, "webhookActive": True,
                  "lastHeartbeatAt": submitted, "lastStep": "webhook:submitted"}
        conn.execute("UPDATE generations SET parameters = %s WHERE id = %s", (Jsonb(params), generation_id))
        return True

    # -- POST /api/webhooks/replicate ----------------------------------------------------------------

    def _webhook(self, h: Any, path: str) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(min(length, 1 << 20)) if length > 0 else b""
        try:
            payload = json.loads(raw or b"null")
            prediction_id = payload["id"]
        except (ValueError, TypeError, KeyError):
            self._send_json(h, 500, {"error": "Webhook processing failed"}, path=path)  # type: ignore[attr-defined]
            return
        if self._webhook_secret and not verify_app(self._webhook_secret, h.headers.get("webhook-signature"), raw):
            self._count_webhook("rejected")
            self._send_json(h, 401, {"error": "Invalid signature"}, path=path)  # type: ignore[attr-defined]
            return
        with self._pool.connection() as conn:  # type: ignore[attr-defined]
            row = conn.execute(
                "SELECT id::text, status, parameters FROM generations "
                "WHERE parameters->>'replicatePredictionId' = %s LIMIT 1", (str(prediction_id),)).fetchone()
            if row is None:
                self._send_json(h, 200, {"received": True, "warning": "Generation not found",  # type: ignore[attr-defined]
                                         "predictionId": prediction_id}, path=path)
                return
            gid, status, params = row
            if status in TERMINAL:
                self._send_json(h, 200, {"received": True, "skipped": True,  # type: ignore[attr-defined]
                                         "reason": f"Already {status}"}, path=path)
                return
            result = self._settle(conn, gid, dict(params or {}), payload, via="webhook")
        self._count_webhook("settled" if result.get("status") in ("completed", "failed") else "acknowledged")
        self._send_json(h, 200, {"received": True, **result}, path=path)  # type: ignore[attr-defined]

    def _settle(self, conn: Any, gid: str, params: dict[str, Any], prediction: dict[str, Any], *,
                via: str) -> dict[str, Any]:
        """Write what the provider said, as the webhook (or sync) route does; the answer's fields."""
        status = prediction.get("status")
        stamp = {"webhookCompletedAt": _iso_now()} if via == "webhook" else {"syncedAt": _iso_now(),
                                                                               "syncReason": "manual"}
        if status == "succeeded":
            urls = _output_urls(prediction.get("output"))
            if not urls:
                error = "No output URLs in webhook payload" if via == "webhook" else \
                    "Replicate succeeded but no output URLs found"
                conn.execute("UPDATE generations SET status = 'failed', parameters = %s WHERE id = %s",
                             (Jsonb({**params, "error": error}), gid))
                return {"status": "failed", "error": "No output URLs"}
            with conn.transaction():
                for url in urls:
                    conn.execute("INSERT INTO outputs (id, generation_id, file_url, file_type) "
                                 "VALUES (%s, %s, %s, 'image')", (str(uuid.uuid4()), gid, url))
                metrics: dict[str, Any] = prediction["metrics"] if isinstance(prediction.get("metrics"), dict) else {}
                conn.execute("UPDATE generations SET status = 'completed', parameters = %s WHERE id = %s",
                             (Jsonb({**params, **stamp, "replicatePredictTime": metrics.get("predict_time")}), gid))
            return {"generationId": gid, "status": "completed", "outputCount": len(urls)}
        if status in ("failed", "canceled"):
            error = prediction.get("error") or (f"Prediction {status}" if via == "webhook" else f"Replicate {status}")
            extra = {"webhookStatus": status, "webhookFailedAt": _iso_now()} if via == "webhook" else stamp
            conn.execute("UPDATE generations SET status = 'failed', parameters = %s WHERE id = %s",
                         (Jsonb({**params, "error": error, **extra}), gid))
            return {"generationId": gid, "status": "failed", "error": prediction.get("error")}
        return {"status": status}

    def _count_webhook(self, what: str) -> None:
        with self._lock:  # type: ignore[attr-defined]
            self._counters["webhooks"][what] += 1  # type: ignore[attr-defined]

    # -- POST /api/generations/{id}/sync -------------------------------------------------------------

    def _bearer_user(self, h: Any) -> str | None:
        auth = h.headers.get("authorization") or ""
        token = auth.replace("Bearer ", "", 1).strip()
        if not token or not verify_jwt_signature(token, key=REFERENCE_JWT_KEY):
            return None
        claims = decode_jwt_payload(token) or {}
        exp, sub = claims.get("exp"), claims.get("sub")
        if not isinstance(exp, (int, float)) or exp <= time.time() or not isinstance(sub, str):
            return None
        return sub

    def _sync(self, h: Any, path: str, raw_id: str) -> None:
        send = self._send_json  # type: ignore[attr-defined]
        user = self._bearer_user(h)
        if user is None:
            send(h, 401, {"error": "Unauthorized"}, path=path)
            return
        try:
            gid = str(uuid.UUID(raw_id))
        except ValueError:
            send(h, 404, {"error": "Generation not found"}, path=path)
            return
        with self._pool.connection() as conn:  # type: ignore[attr-defined]
            row = conn.execute("SELECT user_id::text, status, parameters FROM generations WHERE id = %s",
                               (gid,)).fetchone()
            if row is None:
                send(h, 404, {"error": "Generation not found"}, path=path)
                return
            owner, status, params = row
            params = dict(params or {})
            if owner != user:
                send(h, 403, {"error": "Forbidden"}, path=path)
                return
            prediction_id = params.get("replicatePredictionId")
            if not prediction_id:
                send(h, 400, {"error": "Not a Replicate generation or missing prediction ID",
                              "generationId": gid, "status": status}, path=path)
                return
            if status in TERMINAL:
                send(h, 200, {"message": "Generation already in terminal state", "generationId": gid,
                              "status": status, "synced": False}, path=path)
                return
            prediction = self._ask_provider(str(prediction_id))
            if isinstance(prediction, str):
                send(h, 500, {"error": prediction}, path=path)
                return
            result = self._settle(conn, gid, params, prediction, via="sync")
        if result.get("status") in ("completed", "failed"):
            message = ("Generation synced successfully" if result["status"] == "completed"
                       else f"Generation {prediction.get('status')} on Replicate")
            send(h, 200, {"message": message, "generationId": gid, **result, "synced": True}, path=path)
        else:
            send(h, 200, {"message": "Generation still processing on Replicate", "generationId": gid,
                          "localStatus": status, "replicateStatus": prediction.get("status"), "synced": False},
                 path=path)

    def _ask_provider(self, prediction_id: str) -> dict[str, Any] | str:
        """The prediction (getPredictionStatus), or the error message the app throws."""
        if not self.provider_url or not self._provider_token:
            return "REPLICATE_API_TOKEN is not configured"
        try:
            with httpx.Client(trust_env=False, timeout=5.0, follow_redirects=False) as client:
                r = client.get(f"{self.provider_url}/predictions/{prediction_id}",
                               headers={"authorization": f"Token {self._provider_token}"})
        except httpx.HTTPError as exc:
            return f"fetch failed: {type(exc).__name__}"
        if r.status_code >= 300:
            return f"Failed to get prediction status: {r.status_code}"
        try:
            doc = r.json()
        except ValueError:
            return "Sync failed"
        return doc if isinstance(doc, dict) else "Sync failed"
