"""The auth matrix: send the process route each kind of credential and read every answer.

A probe always carries ``{"generationId": <random uuid>}`` that matches no row,
so no probe can process or claim real work. Redirects are never followed (a
3xx is recorded with its ``Location``), bodies are read up to a cap, and
transport failures become fields of the result: nothing but stuckgen's own
errors leaves :func:`probe`.
"""

from __future__ import annotations

import contextlib
import json
import queue
import secrets as _secrets
import socket
import ssl
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from stuckgen.http import is_insecure
from stuckgen.errors import AbortedError, ConfigError, InsecureTransportError
from stuckgen.secrets import describe, scrub

DEFAULT_ROUTE = "/api/generate/process"
MAX_BODY_BYTES = 64 * 1024
# Probes per mode by default. A deployment where a fraction p of the instances lacks the
# secret answers n probes all alike with probability p^n + (1-p)^n: at n = 10 and p = 1/2
# that is 0.2% (at n = 1 it is certain, and one answer says "healthy" or "rejected" at
# random from run to run); an instance in four without it is seen 94 times in 100.
DEFAULT_REPEAT = 10
# Below this many answers per mode a target is never called healthy: one answer cannot
# tell an intermittent fault from a consistent one.
MIN_ANSWERS_TO_JUDGE = 2
EXCERPT_CHARS = 200


@dataclass(frozen=True, kw_only=True)
class ProbeMode:
    """One kind of credential set."""

    name: str
    secret: str | None  # None, "right" or "wrong"
    cookie: bool
    bypass: bool


_BASE_MODES = (
    ProbeMode(name="none", secret=None, cookie=False, bypass=False),
    ProbeMode(name="wrong-secret", secret="wrong", cookie=False, bypass=False),
    ProbeMode(name="secret", secret="right", cookie=False, bypass=False),
    ProbeMode(name="cookie", secret=None, cookie=True, bypass=False),
    ProbeMode(name="secret+cookie", secret="right", cookie=True, bypass=False),
)
# Each base mode again behind the Deployment Protection bypass header.
MODES: tuple[ProbeMode, ...] = _BASE_MODES + tuple(
    ProbeMode(name="bypass" if m.name == "none" else f"bypass+{m.name}", secret=m.secret, cookie=m.cookie, bypass=True)
    for m in _BASE_MODES
)
MODE_NAMES = tuple(m.name for m in MODES)


def base_mode(name: str) -> str:
    """``bypass+secret`` -> ``secret``; ``bypass`` -> ``none``."""
    if name == "bypass":
        return "none"
    return name.removeprefix("bypass+")


@dataclass(frozen=True, kw_only=True)
class ProbeTarget:
    """A deployment to probe: its base URL and an optional label (``production``)."""

    url: str
    label: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"target {self.url!r} is not an http(s) URL", hint="e.g. --url https://app.example.com")
        # What httpx would only refuse mid-probe (a bad port, an empty or invalid
        # IDNA label, a control character) is a usage error, found before sending.
        try:
            parts.port
            httpx.URL(self.url).host
            parts.hostname.encode("idna")
        except (httpx.InvalidURL, ValueError) as exc:  # UnicodeError and idna's IDNAError are ValueErrors
            raise ConfigError(f"target {self.url!r} is not a usable URL: {exc}",
                              hint="e.g. --url https://app.example.com") from None

    @property
    def name(self) -> str:
        return self.label or self.url.rstrip("/")

    @property
    def insecure(self) -> bool:
        """Plain HTTP to a host that is not loopback."""
        return is_insecure(self.url)

    def endpoint(self, route: str) -> str:
        return self.url.rstrip("/") + "/" + route.lstrip("/")


# x-vercel-error codes with which Vercel answers for a deployment instead of running it
# (https://vercel.com/docs/errors): what each means, and what fixes it. None is the app's fault.
PLATFORM_ERRORS: dict[str, tuple[str, str]] = {
    "DEPLOYMENT_PAUSED": (
        "the project is paused (by its owner, or by spend management when a budget was reached)",
        "Resume the project in the Vercel dashboard (Project Settings, or Spend Management if a budget "
        "paused it); the function's logs hold nothing, the app never ran.",
    ),
    "DEPLOYMENT_DISABLED": (
        "the deployment is disabled: the account is past its plan's limits or has a billing problem (402)",
        "The team owner must settle billing or usage (Settings > Billing); nothing in the app can fix it.",
    ),
    "DEPLOYMENT_DELETED": (
        "the deployment was deleted (410)",
        "Point the trigger (and --url) at a live deployment: the production domain, or one `vercel ls` lists.",
    ),
    "DEPLOYMENT_BLOCKED": (
        "Vercel blocked the deployment (403): a policy or abuse block, not an auth answer",
        "Read the notice on the project in the Vercel dashboard and contact Vercel support; credentials "
        "play no part in this answer.",
    ),
}


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """One answer (or failure) for one probe."""

    target: str  # ProbeTarget.name
    mode: str
    attempt: int
    status: int | None = None
    error: str | None = None  # the app's JSON "error" field
    accepted: bool = False  # JSON {"accepted": true}
    content_type: str | None = None
    html_auth_page: bool = False  # Vercel's "Authentication Required" page
    sso_nonce: bool = False  # set-cookie: _vercel_sso_nonce
    sso_redirect: bool = False  # Location to vercel.com/sso-api
    vercel_id: str | None = None
    vercel_error: str | None = None  # x-vercel-error (e.g. NOT_FOUND)
    vercel_mitigated: str | None = None  # x-vercel-mitigated: the firewall answered (deny, challenge)
    location: str | None = None
    body_excerpt: str = ""
    body_truncated: bool = False
    latency: float = 0.0  # seconds until the answer was read (or the failure)
    failure: str | None = None  # timeout | connect | dns | tls | protocol | network | too-slow
    failure_detail: str | None = None

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def platform_error(self) -> str | None:
        """The x-vercel-error code when Vercel answered for the deployment instead of running it."""
        return self.vercel_error if self.vercel_error in PLATFORM_ERRORS else None

    @property
    def wall_kind(self) -> str | None:
        """Which wall answered before the app ran, or None when the app answered.

        Vercel Authentication shows itself (the SSO nonce cookie, the "Authentication Required"
        page, a redirect to vercel.com/sso-api); the firewall sets x-vercel-mitigated. A 401/403
        page in HTML from Vercel with none of these (password protection, Trusted IPs) is a wall
        of a kind we cannot name: the app's own refusals are JSON, and calling such a page "the
        secret was rejected" would send the operator after the wrong value.
        """
        if self.platform_error is not None:
            return None
        if self.sso_redirect or (self.status == 401 and (self.html_auth_page or self.sso_nonce)):
            return "vercel-authentication"
        if self.status in (401, 403, 429) and self.vercel_mitigated:
            return f"firewall ({self.vercel_mitigated})"
        if (self.status in (401, 403) and self.error is None
                and "text/html" in (self.content_type or "") and self.vercel_id is not None):
            return "unknown"
        return None

    @property
    def behind_wall(self) -> bool:
        """Answered by a platform wall (Deployment Protection, the firewall), not by the app."""
        return self.wall_kind is not None


@dataclass(frozen=True, kw_only=True)
class ProbeCell:
    """Every result of one mode against one target."""

    target: str
    mode: str
    results: tuple[ProbeResult, ...]

    @property
    def sent(self) -> int:
        return len(self.results)

    @property
    def answered(self) -> tuple[ProbeResult, ...]:
        return tuple(r for r in self.results if r.answered)

    @property
    def status_counts(self) -> Counter[int]:
        return Counter(r.status for r in self.results if r.status is not None)

    @property
    def failure_counts(self) -> Counter[str]:
        return Counter(r.failure for r in self.results if r.status is None and r.failure)

    @property
    def latency_median(self) -> float | None:
        values = [r.latency for r in self.results]
        return statistics.median(values) if values else None

    @property
    def latency_max(self) -> float | None:
        return max((r.latency for r in self.results), default=None)

    def summary(self) -> str:
        """``401 x3, 202 x1, timeout x1``: most frequent first."""
        parts = [f"{s} x{n}" for s, n in self.status_counts.most_common()]
        parts += [f"{f} x{n}" for f, n in self.failure_counts.most_common()]
        return ", ".join(parts) or "-"


@dataclass(frozen=True, kw_only=True)
class ProbeMatrix:
    """Every probe sent, with what was skipped and why."""

    targets: tuple[ProbeTarget, ...]
    route: str
    modes: tuple[str, ...]  # modes that ran, in order
    skipped: tuple[tuple[str, str], ...]  # (mode, reason)
    results: tuple[ProbeResult, ...]
    repeat: int
    probe_id: str
    secret: str  # describe() of the secret: length and fingerprint, never the value
    elapsed: float

    @property
    def any_answered(self) -> bool:
        """False when no target answered at all (the CLI exits 3)."""
        return any(r.answered for r in self.results)

    @property
    def unreachable_targets(self) -> tuple[str, ...]:
        return tuple(
            t.name for t in self.targets if not any(r.answered for r in self.results if r.target == t.name)
        )

    def cell(self, target: str, mode: str) -> ProbeCell:
        return ProbeCell(
            target=target, mode=mode, results=tuple(r for r in self.results if r.target == target and r.mode == mode)
        )

    def cells(self) -> list[ProbeCell]:
        """Rows of the matrix: target x mode, in probing order."""
        return [self.cell(t.name, m) for t in self.targets for m in self.modes]


# -- sending -----------------------------------------------------------------------


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _wrong_secret(secret: str | None) -> str:
    # Same length as the real one when known, so a length check alone cannot pass it.
    length = max(16, len(secret.strip())) if secret else 32
    while True:
        candidate = _secrets.token_hex(length)[:length]
        if candidate != (secret or "").strip():
            return candidate


def _classify_transport(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 10:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    if any(isinstance(e, ssl.SSLError) for e in chain) or any(
        k in str(e) for e in chain for k in ("SSL", "CERTIFICATE", "certificate")
    ):
        return "tls"
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        k in str(e).lower() for e in chain for k in ("name or service not known", "nodename nor servname", "getaddrinfo", "name resolution")
    ):
        return "dns"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "protocol"
    return "network"


def _json_fields(body: bytes, content_type: str | None) -> tuple[str | None, bool]:
    if not body or "json" not in (content_type or "") and not body.lstrip().startswith(b"{"):
        return None, False
    try:
        data = json.loads(body)
    except ValueError:
        return None, False
    if not isinstance(data, dict):
        return None, False
    err = data.get("error")
    if isinstance(err, dict):  # {"error": {"code": ..., "message": ...}} (Vercel's own errors)
        err = err.get("message") or err.get("code")
    return (str(err)[:EXCERPT_CHARS] if err is not None else None), data.get("accepted") is True


def _send_one(
    client: httpx.Client,
    *,
    target: ProbeTarget,
    mode: ProbeMode,
    attempt: int,
    url: str,
    headers: dict[str, str],
    body: dict[str, str],
    timeout: float,
    max_body: int,
    known: list[str | None],
) -> ProbeResult:
    started = time.perf_counter()
    base: dict[str, Any] = {"target": target.name, "mode": mode.name, "attempt": attempt}
    try:
        request = client.build_request("POST", url, json=body, headers=headers, timeout=httpx.Timeout(timeout))
        # The client's jar keeps what earlier answers set (a session the app's
        # middleware refreshed, _vercel_sso_nonce): a probe carries exactly the
        # credentials of its mode, or 'none' would pass with a stored session.
        request.headers.pop("cookie", None)
        if "cookie" in headers:
            request.headers["cookie"] = headers["cookie"]
        with contextlib.closing(client.send(request, stream=True, follow_redirects=False)) as response:
            chunks: list[bytes] = []
            size = 0
            truncated = False
            too_slow = False
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= max_body:
                    truncated = True
                    break
                # httpx timeouts are per read; a server trickling bytes must not hold us forever.
                if time.perf_counter() - started > timeout:
                    too_slow = True
                    break
            raw = b"".join(chunks)[:max_body]
            latency = time.perf_counter() - started
            content_type = response.headers.get("content-type")
            error, accepted = _json_fields(raw if not truncated else b"", content_type)
            text = raw[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
            location = response.headers.get("location")
            set_cookies = response.headers.get_list("set-cookie")
            return ProbeResult(
                **base,
                status=response.status_code,
                error=scrub(error, known) if error else None,
                accepted=accepted,
                content_type=content_type,
                html_auth_page="text/html" in (content_type or "") and "Authentication Required" in text,
                sso_nonce=any(c.lstrip().startswith("_vercel_sso_nonce=") for c in set_cookies),
                sso_redirect=bool(location) and "vercel.com/sso-api" in (location or ""),
                vercel_id=response.headers.get("x-vercel-id"),
                vercel_error=response.headers.get("x-vercel-error"),
                vercel_mitigated=response.headers.get("x-vercel-mitigated"),
                location=scrub(location, known) if location else None,
                body_excerpt=scrub(text[:EXCERPT_CHARS], known),
                body_truncated=truncated,
                latency=latency,
                failure="too-slow" if too_slow else None,
            )
    except httpx.HTTPError as exc:
        return ProbeResult(
            **base,
            latency=time.perf_counter() - started,
            failure=_classify_transport(exc),
            failure_detail=scrub(f"{type(exc).__name__}: {exc}", known)[:EXCERPT_CHARS],
        )


def _runnable_modes(*, sent_secret: str | None, cookie_header: str | None,
                    bypass_secret: str | None) -> tuple[list[ProbeMode], list[tuple[str, str]]]:
    """The modes the given credentials allow, and (mode, why) for each one skipped."""
    skipped: list[tuple[str, str]] = []
    runnable: list[ProbeMode] = []
    for mode in MODES:
        reason = None
        if mode.bypass and not bypass_secret:
            reason = "no bypass secret given"
        elif mode.bypass and not _header_safe(bypass_secret or ""):
            reason = "the bypass secret has characters a header cannot carry"
        elif mode.secret == "right" and not sent_secret:
            reason = "no secret given"
        elif mode.secret == "right" and not _header_safe(sent_secret or ""):
            reason = "the secret has characters a header cannot carry (line break or non-ASCII)"
        elif mode.cookie and not cookie_header:
            reason = "no session cookie given"
        elif mode.cookie and not _header_safe(cookie_header or ""):
            reason = "the cookie has characters a header cannot carry"
        if reason:
            skipped.append((mode.name, reason))
        else:
            runnable.append(mode)
    return runnable, skipped


def _refuse_plain_http(targets: Sequence[ProbeTarget], modes: Sequence[ProbeMode], *, allow_insecure: bool) -> None:
    """InsecureTransportError when a mode would carry credentials over plain HTTP (unless allowed)."""
    carries_credentials = any(m.secret == "right" or m.cookie or m.bypass for m in modes)
    if carries_credentials and not allow_insecure:
        insecure = [t.url for t in targets if t.insecure]
        if insecure:
            raise InsecureTransportError(
                f"refusing to send the secret or cookie over plain HTTP to {', '.join(insecure)}",
                hint="use https://, or pass --allow-insecure if you accept the risk",
            )


def _mode_headers(mode: ProbeMode, *, secret_header: str, sent_secret: str | None, wrong: str,
                  cookie_header: str | None, bypass_secret: str | None) -> dict[str, str]:
    """The headers one mode sends: exactly its own credentials."""
    headers = {"content-type": "application/json", "accept": "application/json"}
    if mode.secret == "right":
        headers[secret_header] = sent_secret  # type: ignore[assignment]
    elif mode.secret == "wrong":
        headers[secret_header] = wrong
    if mode.cookie:
        headers["cookie"] = cookie_header  # type: ignore[assignment]
    if mode.bypass:
        headers["x-vercel-protection-bypass"] = bypass_secret  # type: ignore[assignment]
    return headers


def _run_on_daemons(total: int, run: Callable[[int], None], *, concurrency: int,
                    on_progress: Callable[[int, int], None] | None) -> None:
    """Call ``run(i)`` for each of ``total`` jobs on up to ``concurrency`` workers; AbortedError on Ctrl-C.

    Daemon workers, not a ThreadPoolExecutor: the interpreter joins an executor's threads at
    exit, so Ctrl-C would wait for every probe in flight to time out (18 s was measured
    against a server that never answers). Daemon threads end with the process.
    """
    stop = threading.Event()
    done = 0
    if on_progress:
        on_progress(0, total)
    jobs_q: queue.SimpleQueue[int] = queue.SimpleQueue()
    done_q: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
    for i in range(total):
        jobs_q.put(i)

    def worker() -> None:
        while not stop.is_set():
            try:
                index = jobs_q.get_nowait()
            except queue.Empty:
                return
            try:
                if not stop.is_set():
                    run(index)
                done_q.put(None)
            except BaseException as exc:  # a bug in _send_one: re-raised in the calling thread
                done_q.put(exc)

    try:
        for _ in range(min(concurrency, max(1, total))):
            threading.Thread(target=worker, name="probe", daemon=True).start()
        while done < total:
            try:
                failure = done_q.get(timeout=0.2)
            except queue.Empty:
                continue
            if failure is not None:
                raise failure
            done += 1
            if on_progress:
                on_progress(done, total)
    except KeyboardInterrupt:
        # Do not wait for probes in flight: the workers are daemons and stop taking jobs.
        stop.set()
        raise AbortedError(f"interrupted after {done} of {total} probes") from None
    except BaseException:
        stop.set()
        raise


def probe(
    client: httpx.Client,
    targets: Sequence[ProbeTarget | str],
    *,
    route: str = DEFAULT_ROUTE,
    secret: str | None = None,
    cookie_header: str | None = None,
    bypass_secret: str | None = None,
    repeat: int = 1,
    concurrency: int = 10,
    probe_id: str | None = None,
    id_in_use: Callable[[str], bool] | None = None,
    timeout: float = 10.0,
    on_progress: Callable[[int, int], None] | None = None,
    allow_insecure: bool = False,
    max_body: int = MAX_BODY_BYTES,
    secret_header: str = "x-internal-secret",
) -> ProbeMatrix:
    """Send every applicable mode ``repeat`` times to each target; never follows redirects.

    ``id_in_use(id)`` is the hook that checks the probe id against the database;
    a generated id is replaced if it is taken, a given one is refused.
    ``on_progress(done, total)`` is called from the calling thread.
    """
    if repeat < 1:
        raise ConfigError("--repeat must be at least 1")
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if timeout <= 0:
        raise ConfigError("--timeout must be positive")
    resolved = tuple(t if isinstance(t, ProbeTarget) else ProbeTarget(url=t) for t in targets)
    if not resolved:
        raise ConfigError("no target to probe", hint="pass --url or set STUCKGEN_BASE_URL")
    probe_id = _choose_probe_id(probe_id, id_in_use)

    # What goes on the wire: header values cannot carry surrounding whitespace,
    # so the secret is sent stripped (as fetch would); the raw value is judged
    # separately by the findings (secret-whitespace).
    sent_secret = secret.strip() if secret else None
    runnable, skipped = _runnable_modes(sent_secret=sent_secret, cookie_header=cookie_header,
                                        bypass_secret=bypass_secret)
    _refuse_plain_http(resolved, runnable, allow_insecure=allow_insecure)
    wrong = _wrong_secret(secret)
    known = [secret, sent_secret, cookie_header, bypass_secret]
    body = {"generationId": probe_id}
    # Repeat-major order spreads each mode over time, which is what catches
    # instances that disagree.
    jobs = [(target, mode, attempt, _mode_headers(mode, secret_header=secret_header, sent_secret=sent_secret,
                                                  wrong=wrong, cookie_header=cookie_header,
                                                  bypass_secret=bypass_secret))
            for attempt in range(1, repeat + 1) for target in resolved for mode in runnable]

    started = time.perf_counter()
    results: list[ProbeResult | None] = [None] * len(jobs)

    def run(index: int) -> None:
        target, mode, attempt, headers = jobs[index]
        results[index] = _send_one(client, target=target, mode=mode, attempt=attempt, url=target.endpoint(route),
                                   headers=headers, body=body, timeout=timeout, max_body=max_body, known=known)

    _run_on_daemons(len(jobs), run, concurrency=concurrency, on_progress=on_progress)
    return ProbeMatrix(
        targets=resolved,
        route=route,
        modes=tuple(m.name for m in runnable),
        skipped=tuple(skipped),
        results=tuple(r for r in results if r is not None),
        repeat=repeat,
        probe_id=probe_id,
        secret=describe(secret),
        elapsed=time.perf_counter() - started,
    )


def _choose_probe_id(probe_id: str | None, id_in_use: Callable[[str], bool] | None) -> str:
    if probe_id is not None:
        try:
            probe_id = str(uuid.UUID(probe_id))
        except ValueError:
            raise ConfigError(f"probe id {probe_id!r} is not a UUID") from None
        if id_in_use and id_in_use(probe_id):
            raise ConfigError(f"probe id {probe_id} matches a generation; a probe must match no row")
        return probe_id
    for _ in range(5):
        candidate = str(uuid.uuid4())
        if not id_in_use or not id_in_use(candidate):
            return candidate
    raise ConfigError("could not find a probe id that matches no row")  # five uuid4 collisions: a broken hook
