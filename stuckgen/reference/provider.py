"""A stand-in for the model provider (Replicate) on loopback: its prediction API and its signed webhooks.

    with ProviderStandIn(token="r8_test") as provider:
        pid = provider.add("succeeded", age=600)
        httpx.get(f"{provider.url}/predictions/{pid}", headers={"authorization": "Bearer r8_test"})

What it speaks (shapes from https://replicate.com/docs/topics/predictions and
the HTTP API reference):

* ``GET /v1/predictions/{id}``: the prediction object; ``Authorization`` must be
  ``Bearer <token>`` or ``Token <token>`` (the incident app sends ``Token``,
  ``src/lib/models/replicate-utils.ts``), else 401 problem+json; unknown id 404.
* ``POST /v1/predictions``: creates a prediction (``starting``); it "runs" for
  ``run_seconds`` and ends in ``outcome``; with ``webhook`` set it then POSTs the
  prediction to that URL, signed with the Standard Webhooks headers the way
  Replicate signs (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
  Every delivery and the status it got are recorded (``deliveries``).
* ``POST /v1/predictions/{id}/cancel`` and ``GET /v1/webhooks/default/secret``.

Faults, per prediction: ``throttle(id, times, retry_after)`` answers 429 with
Retry-After that many times; ``slow(id, seconds)`` delays the answer. It only
binds to loopback and only delivers webhooks to loopback URLs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets as _secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

from stuckgen.errors import ConfigError
from stuckgen.replicate import PREDICTION_STATUSES, TERMINAL_STATUSES, webhook_headers
from stuckgen.http import is_loopback

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_HOST = "https://api.replicate.com"  # what the ``urls`` of a prediction say, as the real API's do


def new_prediction_id() -> str:
    """An id shaped like Replicate's (26 lower-case letters and digits)."""
    return "".join(_secrets.choice(_ALPHABET) for _ in range(26))


def new_webhook_secret() -> str:
    """A signing secret shaped like Replicate's: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(_secrets.token_bytes(24)).decode("ascii")


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, kw_only=True)
class Prediction:
    """One prediction as the provider keeps it."""

    id: str
    status: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    output: Any = None
    error: str | None = None
    model: str = "black-forest-labs/flux-dev"
    input: dict[str, Any] = field(default_factory=dict)
    webhook: str | None = None
    webhook_events_filter: tuple[str, ...] = ("completed",)
    predict_time: float | None = None

    def document(self) -> dict[str, Any]:
        """The JSON object the API answers with (and a webhook carries)."""
        metrics: dict[str, Any] = {}
        if self.predict_time is not None:
            metrics["predict_time"] = self.predict_time
            if self.completed_at is not None:
                metrics["total_time"] = round((self.completed_at - self.created_at).total_seconds(), 6)
        return {
            "id": self.id,
            "model": self.model,
            "version": "hidden",
            "input": self.input,
            "logs": "" if self.status != "starting" else None,
            "output": self.output,
            "data_removed": False,
            "error": self.error,
            "status": self.status,
            "source": "api",
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
            "urls": {
                "cancel": f"{_HOST}/v1/predictions/{self.id}/cancel",
                "get": f"{_HOST}/v1/predictions/{self.id}",
                "web": f"https://replicate.com/p/{self.id}",
            },
            "metrics": metrics,
        }


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One webhook POST the provider made: where, and what it got back."""

    prediction_id: str
    url: str
    status: int | None  # None: no answer (refused, timed out)
    error: str | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], provider: ProviderStandIn) -> None:
        self.provider = provider
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "cloudflare"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return  # request lines never reach a log: quiet tests, and no token in a terminal

    def do_GET(self) -> None:
        self.server.provider._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.provider._handle(self, "POST")


class ProviderStandIn:
    """The provider on loopback; a context manager. ``url`` is the API base (``.../v1``)."""

    def __init__(self, *, token: str, webhook_secret: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 run_seconds: float = 0.2, outcome: str = "succeeded", webhook_timeout: float = 2.0) -> None:
        if not is_loopback(host):
            raise ConfigError(f"the provider stand-in only listens on loopback, not {host!r}")
        if outcome not in TERMINAL_STATUSES:
            raise ConfigError(f"outcome must be one of {', '.join(TERMINAL_STATUSES)}")
        self._token = token
        self.webhook_secret = webhook_secret or new_webhook_secret()
        self.host = host
        self.port = port
        self.run_seconds = run_seconds
        self.outcome = outcome
        self.webhook_timeout = webhook_timeout
        self.url = ""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._predictions: dict[str, Prediction] = {}
        self._throttle: dict[str, tuple[int, str]] = {}
        self._slow: dict[str, float] = {}
        self._deliveries: list[Delivery] = []
        self._requests: Counter[tuple[str, int]] = Counter()
        self._in_flight = 0
        self.max_in_flight = 0
        self._threads: set[threading.Thread] = set()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None

    def __repr__(self) -> str:  # the token and the signing secret stay out of reprs
        return f"ProviderStandIn(url={self.url!r}, predictions={len(self._predictions)})"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ProviderStandIn:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self._serve_thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                              daemon=True, name="provider-standin")
        self._serve_thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}/v1"
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout)
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)
        self._server = None

    def __enter__(self) -> ProviderStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state, for tests and the demo ------------------------------------------------------------

    def add(self, status: str, *, age: float = 600.0, run_time: float = 30.0, output: Any = None,
            error: str | None = None, prediction_id: str | None = None, webhook: str | None = None) -> str:
        """A prediction created ``age`` seconds ago, now in ``status``; returns its id.

        Terminal predictions completed ``run_time`` seconds after creation (capped at now);
        a succeeded one gets an output URL unless ``output`` is given.
        """
        if status not in PREDICTION_STATUSES:
            raise ValueError(f"status must be one of {', '.join(PREDICTION_STATUSES)}")
        now = datetime.now(timezone.utc)
        created = now - timedelta(seconds=age)
        pid = prediction_id or new_prediction_id()
        started = None if status == "starting" else created + timedelta(seconds=min(1.0, age))
        completed = None
        if status in TERMINAL_STATUSES:
            completed = min(now, created + timedelta(seconds=run_time))
        if status == "succeeded" and output is None:
            output = [f"https://replicate.delivery/xezq/{pid}/out-0.webp"]
        if status == "failed" and error is None:
            error = "CUDA out of memory. Tried to allocate 2.00 GiB"
        p = Prediction(id=pid, status=status, created_at=created, started_at=started, completed_at=completed,
                       output=output, error=error, webhook=webhook,
                       predict_time=round(run_time * 0.9, 3) if completed else None)
        with self._lock:
            self._predictions[pid] = p
        return pid

    def get(self, prediction_id: str) -> Prediction | None:
        with self._lock:
            return self._predictions.get(prediction_id)

    def throttle(self, prediction_id: str, times: int, retry_after: str = "1") -> None:
        """The next ``times`` reads of this prediction answer 429 with this Retry-After."""
        with self._lock:
            self._throttle[prediction_id] = (times, retry_after)

    def slow(self, prediction_id: str, seconds: float) -> None:
        """Reads of this prediction answer after ``seconds`` (or never, if the client gives up first)."""
        with self._lock:
            self._slow[prediction_id] = seconds

    @property
    def deliveries(self) -> tuple[Delivery, ...]:
        with self._lock:
            return tuple(self._deliveries)

    @property
    def requests(self) -> dict[tuple[str, int], int]:
        """(route kind, status) -> count; kinds: get, create, cancel, secret."""
        with self._lock:
            return dict(self._requests)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no prediction is running and no webhook is being delivered."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._threads)
            if not threads:
                return True
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                with self._lock:
                    return not self._threads

    # -- HTTP --------------------------------------------------------------------------------------

    def _handle(self, h: _Handler, method: str) -> None:
        path = urlsplit(h.path).path.rstrip("/")
        h.close_connection = True
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._route(h, method, path)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass  # the client gave up (a timeout test): nothing to answer
        finally:
            with self._lock:
                self._in_flight -= 1

    def _route(self, h: _Handler, method: str, path: str) -> None:
        parts = path.split("/")
        kind = "get"
        if len(parts) >= 3 and parts[1] == "v1" and parts[2] == "predictions":
            kind = "create" if len(parts) == 3 else ("cancel" if len(parts) == 5 and parts[4] == "cancel" else "get")
        elif path == "/v1/webhooks/default/secret":
            kind = "secret"
        else:
            self._problem(h, kind, 404, "Not found", "The requested resource could not be found.")
            return
        if not self._authorized(h):
            self._problem(h, kind, 401, "Unauthenticated", "You did not pass a valid authentication token")
            return
        if kind == "secret" and method == "GET":
            self._json(h, kind, 200, {"key": self.webhook_secret})
        elif kind == "create" and method == "POST":
            self._create(h)
        elif kind == "cancel" and method == "POST":
            self._cancel(h, parts[3])
        elif kind == "get" and method == "GET" and len(parts) == 4:
            self._read(h, parts[3])
        else:
            self._problem(h, kind, 405, "Method not allowed", f"{method} is not allowed here")

    def _authorized(self, h: _Handler) -> bool:
        given = (h.headers.get("authorization") or "").strip()
        scheme, _, value = given.partition(" ")
        return scheme.lower() in ("bearer", "token") and _secrets.compare_digest(
            value.strip().encode(), self._token.encode())

    def _read(self, h: _Handler, pid: str) -> None:
        with self._lock:
            throttled = self._throttle.get(pid)
            if throttled and throttled[0] > 0:
                self._throttle[pid] = (throttled[0] - 1, throttled[1])
            delay = self._slow.get(pid, 0.0)
            p = self._predictions.get(pid)
        if throttled and throttled[0] > 0:
            self._problem(h, "get", 429, "Request was throttled.",
                          "Request was throttled. Expected available in 1 second.",
                          headers={"retry-after": throttled[1]})
            return
        if delay and self._stopping.wait(delay):
            return
        if p is None:
            self._problem(h, "get", 404, "Not found", "The requested resource could not be found.")
            return
        self._json(h, "get", 200, p.document())

    def _create(self, h: _Handler) -> None:
        try:
            length = int(h.headers.get("content-length") or 0)
            body = json.loads(h.rfile.read(min(length, 1 << 20)) or b"{}")
        except ValueError:
            self._problem(h, "create", 400, "Invalid JSON", "The request body is not JSON")
            return
        webhook = body.get("webhook") if isinstance(body, dict) else None
        if webhook is not None:
            host = urlsplit(str(webhook)).hostname or ""
            if not is_loopback(host):
                self._problem(h, "create", 422, "Invalid webhook", "the stand-in only calls loopback webhooks")
                return
        events = body.get("webhook_events_filter") if isinstance(body.get("webhook_events_filter"), list) else None
        p = Prediction(id=new_prediction_id(), status="starting", created_at=datetime.now(timezone.utc),
                       input=body.get("input") if isinstance(body.get("input"), dict) else {},
                       webhook=str(webhook) if webhook else None,
                       webhook_events_filter=tuple(events or ("completed",)))
        with self._lock:
            self._predictions[p.id] = p
        self._spawn(self._run, p.id)
        self._json(h, "create", 201, p.document())

    def _cancel(self, h: _Handler, pid: str) -> None:
        p = self._finish(pid, "canceled")
        if p is None:
            self._problem(h, "cancel", 404, "Not found", "The requested resource could not be found.")
            return
        self._json(h, "cancel", 200, p.document())

    # -- running predictions and delivering webhooks ----------------------------------------------

    def _run(self, pid: str) -> None:
        with self._lock:
            p = self._predictions[pid]
            self._predictions[pid] = replace(p, status="processing", started_at=datetime.now(timezone.utc))
        if self._stopping.wait(self.run_seconds):
            return
        done = self._finish(pid, self.outcome)
        if done is not None and done.webhook and "completed" in p.webhook_events_filter:
            self.deliver(pid)

    def _finish(self, pid: str, status: str) -> Prediction | None:
        with self._lock:
            p = self._predictions.get(pid)
            if p is None:
                return None
            if p.status in TERMINAL_STATUSES:
                return p
            now = datetime.now(timezone.utc)
            p = replace(p, status=status, completed_at=now, started_at=p.started_at or now,
                        output=[f"https://replicate.delivery/xezq/{pid}/out-0.webp"] if status == "succeeded" else None,
                        error="CUDA out of memory. Tried to allocate 2.00 GiB" if status == "failed" else None,
                        predict_time=round((now - p.created_at).total_seconds(), 3))
            self._predictions[pid] = p
            return p

    def deliver(self, pid: str, url: str | None = None) -> Delivery:
        """POST the prediction to its webhook (or ``url``), signed as Replicate signs; record the answer."""
        p = self.get(pid)
        if p is None:
            raise KeyError(pid)
        target = url or p.webhook
        if not target or not is_loopback(urlsplit(target).hostname or ""):
            raise ConfigError("the stand-in only delivers webhooks to loopback URLs")
        body = json.dumps(p.document(), separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "user-agent": "Replicate-Webhook/1.0",
                   **webhook_headers("standard", self.webhook_secret, body)}
        try:
            # A webhook sender does not follow redirects with the signed body: a 3xx is a failed delivery.
            with httpx.Client(follow_redirects=False, trust_env=False, timeout=self.webhook_timeout) as client:
                status: int | None = client.post(target, content=body, headers=headers).status_code
            error = None
        except httpx.HTTPError as exc:
            status, error = None, type(exc).__name__
        d = Delivery(prediction_id=pid, url=target, status=status, error=error)
        with self._lock:
            self._deliveries.append(d)
        return d

    def _spawn(self, target: Any, *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        t = threading.Thread(target=run, daemon=True, name="provider-run")
        with self._lock:
            if self._stopping.is_set():
                return
            self._threads.add(t)
            t.start()

    # -- answers ---------------------------------------------------------------------------------

    def _json(self, h: _Handler, kind: str, status: int, payload: object, *,
              content_type: str = "application/json", headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        with self._lock:
            self._requests[(kind, status)] += 1
        with contextlib.suppress(OSError):
            h.send_response(status)
            h.send_header("content-type", content_type)
            h.send_header("content-length", str(len(body)))
            h.send_header("connection", "close")
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()

    def _problem(self, h: _Handler, kind: str, status: int, title: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        # Replicate answers errors as RFC 7807 problem details.
        self._json(h, kind, status, {"title": title, "detail": detail, "status": status},
                   content_type="application/problem+json", headers=headers)
