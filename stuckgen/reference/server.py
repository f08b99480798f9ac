"""The reference deployment: the incident's Next.js routes on a loopback HTTP server.

``POST /api/generate`` creates a row and triggers ``POST /api/generate/process``
on its own origin the way the app does; the process route applies the app's
auth rule and runs the work in a background thread (the app's ``waitUntil``),
with heartbeats in ``parameters`` and an ``outputs`` row at the end. A
:class:`~stuckgen.reference.scenarios.Scenario` switches one fault on.

Choices where the app's behaviour had to be pinned down:

* After the trigger's last failed try the app marks the row ``failed``. In the
  incident that write never happened (the fire-and-forget fetch outlived its
  function), which is what left rows in ``processing``; so by default
  (``mark_failed=False``) the deployment logs each failed try in ``debugLogs``
  and leaves the row ``processing``. Pass ``mark_failed=True`` (or a scenario
  with ``mark_failed``) for the app as written today: the row ends ``failed``
  with ``"Failed to trigger processing: 401 Unauthorized"`` and only the last
  try in its step log.
* Times are scaled down: the trigger waits ``trigger_timeout`` (default 1 s,
  the app's 10 s) and pauses ``trigger_backoff * attempt`` between tries.
* Header values are stripped of surrounding whitespace, as HTTP and fetch do;
  the deployment's secret is compared as stored, so a stored trailing newline
  can never match.

Only loopback is used: the server binds to ``host`` (loopback enforced) and the
only outgoing calls are the trigger to its own origin.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets as _secrets
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import psycopg
from psycopg.types.json import Jsonb

from stuckgen.cookies import decode_jwt_payload, parse_cookie_header, session_token
from stuckgen.http import is_loopback
from stuckgen.errors import ConfigError, DatabaseUnreachableError
from stuckgen.reference.cookies import REFERENCE_JWT_KEY, make_session_cookie, verify_jwt_signature
from stuckgen.reference.provider_routes import SYNC_PREFIX, SYNC_SUFFIX, WEBHOOK_ROUTE, ProviderRoutes
from stuckgen.reference.scenarios import Scenario, get_scenario, spread

GENERATE_ROUTE = "/api/generate"
PROCESS_ROUTE = "/api/generate/process"
LOGIN_ROUTE = "/auth/login"
SCHEMA_PATH = Path(__file__).with_name("schema.sql")
LOCK_MS = 60_000  # the app's processingStartedAt lock
MAX_DEBUG_LOGS = 100
MAX_BODY = 1 << 20

_AUTH_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authentication Required</title></head>
<body><main><h1>Authentication Required</h1>
<p>Vercel Authentication is enabled for this deployment. Sign in to continue.</p>
</main></body></html>
"""
_NOT_FOUND = "The page could not be found\n\nNOT_FOUND\n"


def iso_now() -> str:
    """UTC now as JavaScript's ``toISOString()`` writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ensure_schema(dsn: str) -> None:
    """Create the reference tables if they are missing."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(SCHEMA_PATH.read_text())  # trusted file
    except psycopg.OperationalError as exc:
        raise DatabaseUnreachableError(f"cannot reach the database: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class DeploymentCounters:
    """A snapshot of what the deployment saw, for tests and benchmarks."""

    requests: dict[tuple[str, int], int]  # (path, status) -> count
    accepted: dict[str, int]  # generation id -> process calls accepted (202)
    started: dict[str, int]  # generation id -> workers that took the lock
    max_in_flight: dict[str, int]  # generation id -> most workers alive at once
    triggers_sent: int
    workers_completed: int
    errors: tuple[str, ...]  # unexpected exceptions in handlers and threads


class _Pool:
    """A few reusable autocommit connections; psycopg_pool is not a dependency."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if self._closed or conn.closed:
                conn.close()
            else:
                self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _Server(ThreadingHTTPServer):
    """Joins its handler threads on close and can cut open connections."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops SYNs under concurrent probes,
    # which costs a one-second retransmit: a fake timeout.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: ReferenceDeployment, *, primary: bool) -> None:
        self.app = app
        self.primary = primary
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        # A handler blocked reading a silent client would otherwise keep
        # server_close() waiting.
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "Vercel"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        # Silent: request lines may carry tokens, and tests want quiet output.
        return

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        self.close_connection = True
        try:
            app._handle(self, method, primary=self.server.primary)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError) as exc:
            if not app._stopping.is_set():
                app._record_error(f"{type(exc).__name__} while answering {method} {self.path}")
        except Exception as exc:  # a bug in the reference app: answer 500 like Next.js would
            app._record_error(f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(OSError):
                app._send_json(self, 500, {"error": "Internal Server Error"}, path=urlsplit(self.path).path)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        # HTTP field values carry no surrounding whitespace.
        return value.strip(" \t\r\n") if value is not None else None


class ReferenceDeployment(ProviderRoutes):
    """The incident app on loopback, in one scenario; a context manager.

    ``secret`` is the operator's INTERNAL_API_SECRET; the scenario decides what
    the deployment itself holds. ``bypass_secret`` is the Deployment
    Protection bypass value (``protected`` scenario). ``provider_url`` and
    ``provider_token`` point at the model provider (a ProviderStandIn);
    ``webhook_secret`` is the deployment's REPLICATE_WEBHOOK_SECRET (unset: the
    webhook route accepts unsigned callbacks, as the app does).
    """

    def __init__(
        self,
        dsn: str,
        scenario: str | Scenario = "healthy",
        *,
        secret: str,
        bypass_secret: str | None = None,
        latency: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        work_seconds: float = 0.3,
        heartbeat_interval: float = 0.1,
        project_ref: str = "refproj",
        cookie_name: str | None = None,
        trigger_timeout: float = 1.0,
        trigger_backoff: float = 0.05,
        hang_seconds: float = 30.0,
        mark_failed: bool = False,
        user_id: str | None = None,
        create_schema: bool = False,
        provider_url: str | None = None,
        provider_token: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        if not is_loopback(host):
            raise ConfigError(f"the reference deployment only listens on loopback, not {host!r}")
        self.dsn = dsn
        self.scenario = get_scenario(scenario)
        self.latency = self.scenario.latency if latency is None else latency
        self.host = host
        self.port = port
        self.work_seconds = work_seconds
        self.heartbeat_interval = heartbeat_interval
        self.project_ref = project_ref
        # The app's storage key (auth.storageKey / cookieOptions.name); Supabase's default otherwise.
        self.cookie_name = cookie_name or f"sb-{project_ref}-auth-token"
        self.trigger_timeout = trigger_timeout
        self.trigger_backoff = trigger_backoff
        self.hang_seconds = hang_seconds
        self.mark_failed = mark_failed or self.scenario.mark_failed
        self.bypass_secret = bypass_secret
        self.user_id = user_id or str(uuid.uuid4())
        self.session_id = str(uuid.uuid4())
        self.route = PROCESS_ROUTE
        self._create_schema = create_schema
        self.provider_url = provider_url.rstrip("/") if provider_url else None
        self._provider_token = provider_token
        self._webhook_secret = webhook_secret or (
            "whsec_" + _secrets.token_urlsafe(24) if self.scenario.webhook_secret_set else None)
        self._deployment_secret = self._stored_secret(secret, self.scenario)
        # Who sends the trigger: normally this deployment itself. In
        # ``different`` the sender holds the operator's value while the process
        # route's deployment holds another (a preview triggering production
        # through the app URL, or a rotation that reached one side only).
        self._sender_secret = secret if self.scenario.secret_value_transform == "different" else self._deployment_secret

        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._counters: dict[str, Counter[Any]] = {
            "requests": Counter(),
            "accepted": Counter(),
            "started": Counter(),
            "in_flight": Counter(),
            "max_in_flight": Counter(),
            "webhooks": Counter(),  # rejected / settled / acknowledged
        }
        self._route_calls: Counter[str] = Counter()
        self._triggers_sent = 0
        self._workers_completed = 0
        self._errors: list[str] = []
        self._pool = _Pool(dsn)
        self._servers: list[_Server] = []
        self._serve_threads: list[threading.Thread] = []
        self._client: httpx.Client | None = None
        self.url = ""
        self.redirect_url: str | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> ReferenceDeployment:
        """Bind, serve in background threads and return self; ``url`` is then set."""
        if self._servers:
            return self
        if self._create_schema:
            ensure_schema(self.dsn)
        primary = _Server((self.host, self.port), self, primary=True)
        self._servers.append(primary)
        if self.scenario.redirect is not None:
            # The "other host" the redirect points at: a real server with the
            # same app, where a followed request arrives without credentials.
            self._servers.append(_Server((self.host, 0), self, primary=False))
        for server in self._servers:
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            self._serve_threads.append(t)
        self.url = self._origin(primary)
        if len(self._servers) > 1:
            self.redirect_url = self._origin(self._servers[1])
        # Own-origin trigger client: never follows redirects (a 3xx is a failure in the app).
        self._client = httpx.Client(follow_redirects=False, timeout=self.trigger_timeout, trust_env=False)
        return self

    def _origin(self, server: _Server) -> str:
        host, port = server.server_address[:2]
        name = str(host)
        return f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, wake sleeping work, join every thread, close sockets and connections."""
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
        for server in self._servers:
            server.cut_connections()
            server.server_close()
        for t in self._serve_threads:
            t.join(timeout)
        self.wait_idle(timeout)
        if self._client is not None:
            self._client.close()
        self._pool.close()
        self._servers.clear()
        self._serve_threads.clear()

    def __enter__(self) -> ReferenceDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait for triggers and workers to finish; True when none is left."""
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

    # -- for tests and the demo -------------------------------------------

    def session_cookie(self, user_id: str | None = None, *, metadata_padding: int = 0) -> dict[str, str]:
        """Cookies the deployment issues at sign-in (already expired in ``cookie-expired``)."""
        if self.scenario.cookie_expired:
            # Issued over an hour ago and never refreshed by middleware.
            return make_session_cookie(
                user_id or self.user_id,
                expires_in=3600,
                now=time.time() - 3660,
                project_ref=self.project_ref,
                metadata_padding=metadata_padding,
                cookie_name=self.cookie_name,
            )
        return make_session_cookie(
            user_id or self.user_id, expires_in=3600, project_ref=self.project_ref, metadata_padding=metadata_padding,
            cookie_name=self.cookie_name,
        )

    def accepted_calls(self, generation_id: str) -> int:
        """How many process calls were accepted (202) for this generation."""
        with self._lock:
            return self._counters["accepted"][generation_id]

    @property
    def counters(self) -> DeploymentCounters:
        with self._lock:
            return DeploymentCounters(
                requests=dict(self._counters["requests"]),
                accepted=dict(self._counters["accepted"]),
                started=dict(self._counters["started"]),
                max_in_flight=dict(self._counters["max_in_flight"]),
                triggers_sent=self._triggers_sent,
                workers_completed=self._workers_completed,
                errors=tuple(self._errors),
            )

    # -- the scenario's environment ----------------------------------------

    @staticmethod
    def _stored_secret(secret: str, scenario: Scenario) -> str | None:
        transform = scenario.secret_value_transform
        if transform == "missing":
            return None
        if transform == "different":
            return "rotated-" + _secrets.token_hex(16)
        if transform == "trailing-newline":
            return secret + "\n"
        return secret

    def _instance_secret(self, path: str, *, stream: str = "") -> str | None:
        """The secret the instance serving this request sees (round-robin per route).

        ``stream`` keeps its own rotation: calls presenting the same credentials
        alternate between instances among themselves, so each probe mode meets
        both kinds of instance whatever other modes are interleaved with it.
        """
        key = path + stream
        with self._lock:
            n = self._route_calls[key]
            self._route_calls[key] += 1
        instance = n % max(1, self.scenario.instances)
        if not spread(instance, self.scenario.secret_fraction):
            return None
        return self._sender_secret if path == GENERATE_ROUTE else self._deployment_secret

    def _should_hang(self) -> bool:
        with self._lock:
            n = self._route_calls["hang"]
            self._route_calls["hang"] += 1
        return spread(n, self.scenario.timeout_fraction)

    # -- plumbing ------------------------------------------------------------

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except Exception as exc:
                if not self._stopping.is_set():
                    self._record_error(f"{target.__name__}: {type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        t = threading.Thread(target=run, name=f"reference-{target.__name__}", daemon=True)
        # Started under the lock: wait_idle copies the set under the same lock, so it never
        # sees (and joins) a thread that is registered but not yet started. The thread's own
        # discard waits for the lock, so it cannot run before the add.
        with self._lock:
            if self._stopping.is_set():
                return
            self._threads.add(t)
            t.start()

    def _vercel_id(self) -> str:
        return f"lhr1::iad1::{_secrets.token_hex(4)}-{int(time.time() * 1000)}-{_secrets.token_hex(6)}"

    def _send(
        self,
        h: _Handler,
        status: int,
        body: bytes,
        *,
        content_type: str,
        path: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._counters["requests"][(path, status)] += 1
        h.send_response(status)
        h.send_header("content-type", content_type)
        h.send_header("content-length", str(len(body)))
        h.send_header("x-vercel-id", self._vercel_id())
        h.send_header("connection", "close")
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
        h.wfile.flush()

    def _send_json(self, h: _Handler, status: int, payload: object, *, path: str, headers: dict[str, str] | None = None) -> None:
        self._send(
            h, status, json.dumps(payload).encode(), content_type="application/json", path=path, headers=headers
        )

    def _read_json(self, h: _Handler) -> tuple[dict[str, Any] | None, bool]:
        """(body, ok): an empty body is ``({}, True)``; malformed JSON is ``(None, False)``."""
        try:
            length = int(h.headers.get("content-length") or 0)
        except ValueError:
            return None, False
        if length <= 0:
            return {}, True
        raw = h.rfile.read(min(length, MAX_BODY))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return None, False
        return (body, True) if isinstance(body, dict) else (None, False)

    def _cookie_user(self, h: _Handler) -> str | None:
        """The user id of a valid, unexpired session cookie for this project, else None.

        Read the way @supabase/ssr reads it (``stuckgen.cookies.read_session``): the first
        cookie of each name, chunks up to the first missing index, stale ones ignored.
        """
        header = "; ".join(h.headers.get_all("cookie") or [])
        _, token, _ = session_token(parse_cookie_header(header), cookie_name=self.cookie_name)
        if token is None or not verify_jwt_signature(token, key=REFERENCE_JWT_KEY):
            return None
        claims = decode_jwt_payload(token) or {}
        exp, sub = claims.get("exp"), claims.get("sub")
        if not isinstance(exp, (int, float)) or exp <= time.time() or not isinstance(sub, str):
            return None
        return sub

    # -- routes --------------------------------------------------------------

    def _handle(self, h: _Handler, method: str, *, primary: bool) -> None:
        path = urlsplit(h.path).path
        if self.latency > 0 and self._stopping.wait(self.latency):
            return
        if self.scenario.protected and primary and not self._bypassed(h):
            self._wall(h, path)
            return
        if primary and self.scenario.redirect is not None and path == self.route:
            assert self.redirect_url is not None
            self._send_json(
                h,
                self.scenario.redirect,
                {"redirect": self.redirect_url + h.path},
                path=path,
                headers={"location": self.redirect_url + h.path},
            )
            return
        if path == WEBHOOK_ROUTE and method == "POST":
            self._webhook(h, path)
            return
        if path.startswith(SYNC_PREFIX) and path.endswith(SYNC_SUFFIX) and method == "POST":
            self._sync(h, path, path[len(SYNC_PREFIX):-len(SYNC_SUFFIX)])
            return
        if path in (GENERATE_ROUTE, self.route, LOGIN_ROUTE):
            if method != "POST":
                self._send_json(h, 405, {"error": "Method Not Allowed"}, path=path, headers={"allow": "POST"})
                return
            if path == GENERATE_ROUTE:
                self._generate(h, path)
            elif path == LOGIN_ROUTE:
                self._login(h, path)
            else:
                self._process(h, path)
            return
        self._send(h, 404, _NOT_FOUND.encode(), content_type="text/plain; charset=utf-8", path=path,
                   headers={"x-vercel-error": "NOT_FOUND"})

    def _bypassed(self, h: _Handler) -> bool:
        given = h.header("x-vercel-protection-bypass")
        return bool(self.bypass_secret) and given is not None and _secrets.compare_digest(
            given.encode(), self.bypass_secret.encode()  # type: ignore[union-attr]
        )

    def _wall(self, h: _Handler, path: str) -> None:
        nonce = _secrets.token_urlsafe(16)
        if "text/html" in (h.headers.get("accept") or ""):
            location = f"https://vercel.com/sso-api?url={quote(self.url + h.path, safe='')}&nonce={nonce}"
            self._send(h, 307, b"Redirecting...\n", content_type="text/plain", path=path, headers={"location": location})
            return
        self._send(
            h,
            401,
            _AUTH_PAGE.encode(),
            content_type="text/html; charset=utf-8",
            path=path,
            headers={"set-cookie": f"_vercel_sso_nonce={nonce}; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"},
        )

    def _login(self, h: _Handler, path: str) -> None:
        cookies = self.session_cookie()
        with self._lock:
            self._counters["requests"][(path, 200)] += 1
        body = json.dumps({"user": {"id": self.user_id}}).encode()
        h.send_response(200)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(body)))
        h.send_header("x-vercel-id", self._vercel_id())
        h.send_header("connection", "close")
        for name, value in cookies.items():
            h.send_header("set-cookie", f"{name}={value}; Path=/; SameSite=Lax")
        h.end_headers()
        h.wfile.write(body)

    def _generate(self, h: _Handler, path: str) -> None:
        user = self._cookie_user(h)
        if user is None:
            self._send_json(h, 401, {"error": "Unauthorized"}, path=path)
            return
        body, ok = self._read_json(h)
        if not ok or body is None:
            self._send_json(h, 400, {"error": "Invalid JSON body"}, path=path)
            return
        generation_id = str(uuid.uuid4())
        extra: dict[str, Any] = body["parameters"] if isinstance(body.get("parameters"), dict) else {}
        parameters: dict[str, Any] = {
            "aspectRatio": "1:1",
            "numOutputs": 1,
            "outputFormat": "png",
            "guidance": 3.5,
            "resolution": "1024x1024",
            "referenceImages": [],
            **extra,
            "lastStep": "generate:create",
            "debugLogs": [{"at": iso_now(), "step": "generate:create"}],
        }
        session_id = body.get("sessionId")
        try:
            session_id = str(uuid.UUID(str(session_id))) if session_id else self.session_id
        except ValueError:
            session_id = self.session_id
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO generations (id, session_id, user_id, model_id, prompt, negative_prompt,"
                " parameters, status, cost) VALUES (%s, %s, %s, %s, %s, %s, %s, 'processing', %s)",
                (
                    generation_id,
                    session_id,
                    user,
                    str(body.get("model") or body.get("modelId") or "flux-1.1-pro"),
                    str(body.get("prompt") or "a lighthouse at dusk, volumetric light"),
                    body.get("negativePrompt") if isinstance(body.get("negativePrompt"), str) else None,
                    Jsonb(parameters),
                    0.04,
                ),
            )
        if self.scenario.use_webhooks and self.provider_url:
            # USE_REPLICATE_WEBHOOKS: submit with a webhook; the process route is called only on failure.
            with self._pool.connection() as conn:
                submitted = self._submit_prediction(
                    conn, generation_id, {k: v for k, v in parameters.items() if k not in ("lastStep", "debugLogs")})
            if submitted:
                self._send_json(h, 200, {"id": generation_id, "status": "processing",
                                         "message": "Generation started. Results will arrive via webhook."}, path=path)
                return
        # The header is added only when this instance has the variable; fetch
        # strips surrounding whitespace from header values.
        instance_secret = self._instance_secret(GENERATE_ROUTE)
        if not self.scenario.drop_trigger:
            self._spawn(self._trigger, generation_id, instance_secret)
        self._send_json(h, 200, {"id": generation_id, "status": "processing"}, path=path)

    def _process(self, h: _Handler, path: str) -> None:
        received = h.header("x-internal-secret")
        stream = "" if received is None else "|" + hashlib.sha256(received.encode()).hexdigest()[:8]
        stream += ("|cookie" if h.header("cookie") else "") + ("|bypass" if h.header("x-vercel-protection-bypass") else "")
        stored = self._instance_secret(path, stream=stream)
        hang = self._should_hang()
        internal = bool(stored) and received is not None and received == stored
        user = None if internal else self._cookie_user(h)
        if hang and self._stopping.wait(self.hang_seconds):
            return  # stopped while hanging: drop the connection without an answer
        if not internal and user is None:
            self._send_json(h, 401, {"error": "Unauthorized"}, path=path)
            return
        body, ok = self._read_json(h)
        if not ok or body is None:
            self._send_json(h, 400, {"error": "Invalid JSON body"}, path=path)
            return
        raw_id = body.get("generationId")
        if not raw_id:
            # Queue mode is off in the reference app: no id is a bad request.
            self._send_json(h, 400, {"error": "generationId is required"}, path=path)
            return
        try:
            generation_id = str(uuid.UUID(str(raw_id)))
        except ValueError:
            self._send_json(h, 400, {"error": "Invalid generationId"}, path=path)
            return
        if not internal:
            with self._pool.connection() as conn:
                row = conn.execute("SELECT user_id FROM generations WHERE id = %s", (generation_id,)).fetchone()
            if row is None:
                self._send_json(h, 404, {"error": "Generation not found"}, path=path)
                return
            if str(row[0]) != user:
                self._send_json(h, 403, {"error": "Forbidden"}, path=path)
                return
        with self._lock:
            self._counters["accepted"][generation_id] += 1
        self._spawn(self._work, generation_id)
        self._send_json(h, 202, {"accepted": True, "generationIds": [generation_id]}, path=path)

    # -- background work -------------------------------------------------------

    def _log_step(
        self,
        conn: psycopg.Connection[Any],
        generation_id: str,
        step: str,
        *,
        set_params: dict[str, Any] | None = None,
        row_status: str | None = None,
        **extra: Any,
    ) -> dict[str, Any] | None:
        """Append ``step`` to debugLogs (last 100), set lastStep and more, in one transaction."""
        with conn.transaction():
            row = conn.execute(
                "SELECT parameters FROM generations WHERE id = %s FOR UPDATE", (generation_id,)
            ).fetchone()
            if row is None:
                return None
            params: dict[str, Any] = dict(row[0] or {})
            logs = list(params.get("debugLogs") or [])
            logs.append({"at": iso_now(), "step": step, **extra})
            params["debugLogs"] = logs[-MAX_DEBUG_LOGS:]
            params["lastStep"] = step
            params.update(set_params or {})
            conn.execute(
                "UPDATE generations SET parameters = %s, status = coalesce(%s, status) WHERE id = %s",
                (Jsonb(params), row_status, generation_id),
            )
            return params

    def _trigger(self, generation_id: str, instance_secret: str | None) -> None:
        """The app's server-side trigger: 3 tries, no redirects, growing pause."""
        assert self._client is not None
        headers = {"content-type": "application/json"}
        if instance_secret and instance_secret.strip():
            headers["x-internal-secret"] = instance_secret.strip()
        last_status: int | None = None
        last_text = last_reason = ""
        with self._pool.connection() as conn:
            for attempt in range(1, 4):
                if self._stopping.is_set():
                    return
                with self._lock:
                    self._triggers_sent += 1
                try:
                    response = self._client.post(
                        self.url + self.route, json={"generationId": generation_id}, headers=headers
                    )
                except httpx.TimeoutException:
                    # The app treats a timeout as "probably started".
                    self._log_step(conn, generation_id, "process:trigger-timeout-expected", attempt=attempt)
                    return
                except httpx.HTTPError as exc:
                    last_status, last_text = None, f"{type(exc).__name__}: {exc}"[:200]
                    if not self.mark_failed:
                        self._log_step(
                            conn, generation_id, "process:trigger-failed-exception", attempt=attempt, error=last_text
                        )
                else:
                    if response.is_success:
                        self._log_step(conn, generation_id, "process:triggered", status=response.status_code)
                        return
                    last_status, last_text = response.status_code, response.text[:200]
                    last_reason = response.reason_phrase
                    if not self.mark_failed:
                        self._log_step(
                            conn,
                            generation_id,
                            "process:trigger-failed-http",
                            attempt=attempt,
                            status=response.status_code,
                            error=last_text,
                        )
                if attempt < 3 and self._stopping.wait(self.trigger_backoff * attempt):
                    return
            if self.mark_failed:
                self._mark_failed(conn, generation_id, last_status, last_reason, last_text)

    def _mark_failed(self, conn: psycopg.Connection[Any], generation_id: str, status: int | None, reason: str,
                     text: str) -> None:
        """The app as written today (src/app/api/generate/route.ts): after the last failed try the row is
        marked ``failed`` with parameters = {...generationParameters, error, triggerErrorText} (the spread
        drops the step log written so far), then appendDebugLog logs that last try only."""
        extra: dict[str, Any]
        if status is not None:
            error = f"Failed to trigger processing: {status} {reason}"
            step, extra = "process:trigger-failed-http", {"status": status, "error": text}
        else:
            error = f"Failed to start background processing: {text}"
            step, extra = "process:trigger-failed-exception", {"error": text}
        with conn.transaction():
            row = conn.execute("SELECT parameters FROM generations WHERE id = %s FOR UPDATE",
                               (generation_id,)).fetchone()
            if row is None:
                return
            request = {k: v for k, v in dict(row[0] or {}).items() if k not in ("debugLogs", "lastStep")}
            params = {**request, "error": error, **({"triggerErrorText": text} if status is not None else {})}
            conn.execute("UPDATE generations SET parameters = %s, status = 'failed' WHERE id = %s",
                         (Jsonb(params), generation_id))
        self._log_step(conn, generation_id, step, **extra)

    def _work(self, generation_id: str) -> None:
        """The process route's waitUntil work: lock, heartbeats, output, completion."""
        with self._lock:
            self._counters["in_flight"][generation_id] += 1
            now_in = self._counters["in_flight"][generation_id]
            if now_in > self._counters["max_in_flight"][generation_id]:
                self._counters["max_in_flight"][generation_id] = now_in
        try:
            self._work_inner(generation_id)
        finally:
            with self._lock:
                self._counters["in_flight"][generation_id] -= 1

    def _work_inner(self, generation_id: str) -> None:
        with self._pool.connection() as conn:
            with conn.transaction():
                row = conn.execute(
                    "SELECT status, parameters FROM generations WHERE id = %s FOR UPDATE", (generation_id,)
                ).fetchone()
                if row is None or row[0] != "processing":
                    return  # unknown id (a probe) or already finished: nothing to do
                lock = (row[1] or {}).get("processingStartedAt")
                now_ms = int(time.time() * 1000)
                duplicate = isinstance(lock, (int, float)) and now_ms - lock < LOCK_MS
                if not duplicate:
                    # Taken while the row lock is held, like the app's single conditional UPDATE
                    # (src/app/api/generate/process/route.ts, "ATOMIC LOCK"): two callers can
                    # never both see the lock free.
                    self._log_step(conn, generation_id, "process:start", set_params={"processingStartedAt": now_ms})
            if duplicate:
                self._log_step(conn, generation_id, "process:skipped-duplicate")
                return
            with self._lock:
                self._counters["started"][generation_id] += 1
            self._log_step(conn, generation_id, "model:generate:start")
            crash_after = self.scenario.crash_after_heartbeats
            beats = crash_after if crash_after is not None else max(1, round(self.work_seconds / self.heartbeat_interval))
            for _ in range(beats):
                if self._stopping.wait(self.heartbeat_interval):
                    return
                self._log_step(
                    conn, generation_id, "model:generate:heartbeat", set_params={"lastHeartbeatAt": iso_now()}
                )
            if crash_after is not None:
                return  # the instance was stopped mid-step: the heartbeat simply stops
            with conn.transaction():
                conn.execute(
                    "INSERT INTO outputs (id, generation_id, file_url, file_type) VALUES (%s, %s, %s, 'image')",
                    (str(uuid.uuid4()), generation_id, f"https://cdn.reference.invalid/outputs/{generation_id}.png"),
                )
                self._log_step(conn, generation_id, "model:generate:end")
                self._log_step(conn, generation_id, "process:completed", row_status="completed")
            with self._lock:
                self._workers_completed += 1
