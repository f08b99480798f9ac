"""The model provider's side of a generation: Replicate's prediction API and its webhook signatures.

Reading: ``GET {base}/predictions/{id}`` with ``Authorization: Bearer <token>``
(base ``https://api.replicate.com/v1``). The answer is a prediction object
(``id``, ``status`` in starting / processing / succeeded / failed / canceled,
``output``, ``error``, ``created_at``, ``started_at``, ``completed_at``,
``metrics``), as documented at https://replicate.com/docs/topics/predictions.

Signing: Replicate signs each webhook the Standard Webhooks way
(https://replicate.com/docs/topics/webhooks/verify-webhook): headers
``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(space-separated ``v1,<base64>``), the HMAC-SHA256 of ``{id}.{timestamp}.{body}``
keyed with the base64 part of the ``whsec_...`` secret.

The incident app verifies something else (Loop-Vesper
``src/app/api/webhooks/replicate/route.ts``, ``verifyWebhookSignature``): it
splits ``webhook-signature`` on ``,`` and reads ``t=<timestamp>`` and
``v1=<hex>``, the HMAC-SHA256 hex of ``{timestamp}.{body}`` keyed with the raw
``REPLICATE_WEBHOOK_SECRET``. No signature Replicate sends can pass that check,
so with the secret set every real callback is answered 401 "Invalid signature".
Both schemes live here so a replay can be signed the way the receiver verifies.

The token and the secrets never leave this module in a repr, a message or an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets as _secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

DEFAULT_API_URL = "https://api.replicate.com/v1"
PREDICTION_STATUSES = ("starting", "processing", "succeeded", "failed", "canceled")
TERMINAL_STATUSES = ("succeeded", "failed", "canceled")
# Replicate prediction ids are lower-case base32-ish strings; anything else is not sent.
_PREDICTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

SignatureScheme = Literal["standard", "app"]
SIGNATURE_SCHEMES: tuple[str, ...] = ("standard", "app")


# -- signatures ---------------------------------------------------------------------------------


def _standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after ``whsec_`` (the raw bytes otherwise)."""
    body = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        return secret.encode("utf-8")


def sign_standard(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>``: the Standard Webhooks signature Replicate sends."""
    mac = hmac.new(_standard_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def verify_standard(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
                    tolerance: float = 300.0) -> bool:
    """True when one of the ``webhook-signature`` entries matches (and the timestamp is within tolerance)."""
    msg_id, ts, sig = (headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature"))
    if not msg_id or not ts or not sig or not ts.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(ts)) > tolerance:
        return False
    expected = sign_standard(secret, msg_id=msg_id, timestamp=int(ts), body=body)
    return any(hmac.compare_digest(part, expected) for part in sig.split())


def sign_app(secret: str, *, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex>``: the format Loop-Vesper's webhook route verifies."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_app(secret: str, signature: str | None, body: bytes, *, now: float | None = None) -> bool:
    """Loop-Vesper's ``verifyWebhookSignature``, step for step (route.ts): split on ',', then on '='."""
    if not signature:
        return False
    parts = signature.split(",")
    ts_part = parts[0] if parts else ""
    sig_part = parts[1] if len(parts) > 1 else ""
    ts = ts_part.split("=")[1] if "=" in ts_part else ""
    sig = sig_part.split("=")[1] if "=" in sig_part else ""
    if not ts or not sig:
        return False  # "Invalid signature format": every Standard Webhooks signature ends here
    try:
        sent = int(ts)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > 300:
        return False
    expected = hmac.new(secret.encode("utf-8"), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, expected)


def webhook_headers(scheme: str, secret: str, body: bytes, *, msg_id: str | None = None,
                    timestamp: int | None = None) -> dict[str, str]:
    """The three webhook headers for ``body``, signed by ``scheme`` (``standard`` or ``app``)."""
    msg_id = msg_id or "msg_" + _secrets.token_hex(12)
    timestamp = int(time.time()) if timestamp is None else timestamp
    if scheme == "standard":
        signature = sign_standard(secret, msg_id=msg_id, timestamp=timestamp, body=body)
    elif scheme == "app":
        signature = sign_app(secret, timestamp=timestamp, body=body)
    else:
        raise ValueError(f"unknown signature scheme {scheme!r}")
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


# -- reading predictions --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProviderAnswer:
    """What the provider said about one prediction (or why it said nothing usable)."""

    prediction_id: str
    http_status: int | None  # None: no HTTP answer at all
    status: str | None = None  # the prediction's status when the answer was a prediction
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None  # the prediction's error (failed)
    output_count: int | None = None
    predict_time: float | None = None
    document: Mapping[str, Any] | None = field(default=None, repr=False)  # the prediction as answered
    problem: str | None = None  # why there is no prediction: not found, refused, throttled, timed out
    auth_refused: bool = False
    tries: int = 1
    elapsed: float = 0.0

    @property
    def answered(self) -> bool:
        """The provider gave a readable answer about this prediction (a prediction or a 404)."""
        return self.status is not None or self.http_status == 404


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as Replicate writes it (``2023-09-08T16:19:34.765994Z``); None otherwise."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _output_count(output: Any) -> int | None:
    if output is None:
        return 0
    if isinstance(output, list):
        return len(output)
    if isinstance(output, (str, dict)):
        return 1
    return None


def answer_from_document(prediction_id: str, http_status: int, doc: Any, *, tries: int,
                         elapsed: float) -> ProviderAnswer:
    """A ProviderAnswer from a 200 body; one that is not a prediction is a problem, not a status."""
    status = doc.get("status") if isinstance(doc, dict) else None
    if status not in PREDICTION_STATUSES:
        return ProviderAnswer(prediction_id=prediction_id, http_status=http_status, tries=tries, elapsed=elapsed,
                              problem="answered 200 with something that is not a prediction (is the API URL right?)")
    metrics = doc.get("metrics") if isinstance(doc.get("metrics"), dict) else {}
    pt = metrics.get("predict_time")
    err = doc.get("error")
    return ProviderAnswer(
        prediction_id=prediction_id, http_status=http_status, status=status,
        created_at=parse_time(doc.get("created_at")), started_at=parse_time(doc.get("started_at")),
        completed_at=parse_time(doc.get("completed_at")),
        error=None if err in (None, "") else str(err)[:500], output_count=_output_count(doc.get("output")),
        predict_time=float(pt) if isinstance(pt, (int, float)) else None, document=doc, tries=tries,
        elapsed=elapsed)


@dataclass(frozen=True, kw_only=True)
class ProviderOptions:
    """How the provider is asked: where, with which token, how patiently."""

    api_url: str = DEFAULT_API_URL
    token: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    tries: int = 3  # per prediction, on timeouts, 429 and 5xx
    backoff: float = 0.5
    max_backoff: float = 10.0
    concurrency: int = 4
    allow_insecure: bool = False


def valid_prediction_id(value: str) -> bool:
    return bool(_PREDICTION_ID.match(value))


def get_prediction(client: Any, prediction_id: str, options: ProviderOptions, *,
                   stop: threading.Event | None = None) -> ProviderAnswer:
    """GET one prediction with retries (timeouts, 429 honouring Retry-After, 5xx); never raises for HTTP."""
    import httpx

    from stuckgen.http import MAX_RETRY_AFTER, parse_retry_after, retry_delay

    stop = stop or threading.Event()
    if not valid_prediction_id(prediction_id):
        return ProviderAnswer(prediction_id=prediction_id, http_status=None, tries=0,
                              problem="not a prediction id (not sent)")
    url = options.api_url.rstrip("/") + "/predictions/" + prediction_id
    headers = {"accept": "application/json"}
    if options.token:
        headers["authorization"] = f"Bearer {options.token}"
    started = time.monotonic()
    problem = "not sent"
    status: int | None = None
    n = 0
    for n in range(1, options.tries + 1):
        retry_after: float | None = None
        try:
            resp = client.get(url, headers=headers, timeout=options.timeout)
        except httpx.TimeoutException:
            status, problem = None, f"no answer within {options.timeout:g}s"
        except httpx.TransportError as exc:
            status, problem = None, f"could not connect ({type(exc).__name__})"
        else:
            status = resp.status_code
            elapsed = time.monotonic() - started
            if status == 200:
                try:
                    doc = resp.json()
                except ValueError:
                    return ProviderAnswer(prediction_id=prediction_id, http_status=status, tries=n, elapsed=elapsed,
                                          problem="answered 200 with something that is not JSON")
                return answer_from_document(prediction_id, status, doc, tries=n, elapsed=elapsed)
            if status == 404:
                return ProviderAnswer(prediction_id=prediction_id, http_status=404, tries=n, elapsed=elapsed,
                                      problem="the provider knows no such prediction")
            if status in (401, 403):
                return ProviderAnswer(prediction_id=prediction_id, http_status=status, tries=n, elapsed=elapsed,
                                      auth_refused=True,
                                      problem=f"the provider refused the token (HTTP {status}): REPLICATE_API_TOKEN "
                                              "is missing, wrong or revoked")
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
                problem = ("rate-limited (HTTP 429)" if status == 429 else f"HTTP {status}") + f" after {n} tries"
            else:
                return ProviderAnswer(prediction_id=prediction_id, http_status=status, tries=n, elapsed=elapsed,
                                      problem=f"unexpected HTTP {status}")
        if n < options.tries:
            pause = retry_delay(n, base=options.backoff, cap=options.max_backoff, retry_after=retry_after)
            if stop.wait(min(pause, MAX_RETRY_AFTER)):
                break
    if status is None:
        problem = f"{problem} ({n} tries)"
    return ProviderAnswer(prediction_id=prediction_id, http_status=status, tries=n,
                          elapsed=time.monotonic() - started, problem=problem)


def webhook_payload(answer: ProviderAnswer) -> bytes:
    """The body Replicate would POST to the webhook: the prediction object itself."""
    if answer.document is None:
        raise ValueError("no prediction document to replay")
    return json.dumps(answer.document, separators=(",", ":")).encode("utf-8")
