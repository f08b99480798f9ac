"""HTTP transport rules, in one place for every sender (probe-auth, retrigger, watch, doctor, Vercel, provider).

* Credentials never travel over plain HTTP to a host that is not loopback
  (``check_transport``), unless the operator says ``--allow-insecure``.
* Clients never follow redirects (the secret would follow them) and ignore proxy
  variables: the deployment is called directly, the way its own server calls it
  (``client``). Only clients of outside services (the Vercel API, notifications, heartbeat pings) may use a proxy.
* Retries wait what the server asks (``parse_retry_after``, capped) or back off
  exponentially with jitter (``retry_delay``).
* A body is read up to a cap, never whole (``read_capped``).
"""

from __future__ import annotations

import email.utils
import ipaddress
import random
import time
from collections.abc import Iterable
from datetime import timezone
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from stuckgen.errors import ConfigError, InsecureTransportError

if TYPE_CHECKING:
    import httpx

# A longer wait than this is not worth holding an incident command for.
MAX_RETRY_AFTER = 60.0


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1), bracketed or not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_insecure(url: str) -> bool:
    """Plain HTTP to a host that is not loopback: credentials sent there could be read on the way."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname or "")


def check_transport(url: str, *, sends_credentials: bool, allow_insecure: bool = False,
                    what: str = "the secret") -> None:
    """ConfigError when ``url`` is not http(s); InsecureTransportError when ``what`` would go over plain HTTP."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--url: {url!r} is not an http(s) URL", hint="e.g. --url https://app.example.com")
    if sends_credentials and not allow_insecure and is_insecure(url):
        raise InsecureTransportError(
            f"refusing to send {what} over plain HTTP to {parts.hostname}",
            hint="use https://, or pass --allow-insecure if you accept the risk")


def client(*, timeout: float, concurrency: int | None = None, trust_env: bool = False,
           headers: dict[str, str] | None = None, base_url: str = "") -> httpx.Client:
    """An ``httpx.Client`` that never follows redirects and, unless ``trust_env``, ignores proxy variables."""
    import httpx

    limits = (httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
              if concurrency else httpx.Limits())
    return httpx.Client(follow_redirects=False, timeout=httpx.Timeout(timeout), limits=limits,
                        trust_env=trust_env, headers=headers, base_url=base_url)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    v = value.strip()
    try:
        seconds = float(v)
    except ValueError:
        pass
    else:
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_delay(attempt: int, *, base: float, cap: float, retry_after: float | None,
                rng: random.Random | None = None) -> float:
    """Pause before try ``attempt + 1``: Retry-After when given (capped), else exponential with jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    r = rng or random
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return ceiling / 2 + r.uniform(0, ceiling / 2)


def read_capped(chunks: Iterable[bytes], limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of a streamed body, and whether there was more: a server may send gigabytes."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) >= limit:
            return bytes(buf[:limit]), len(buf) > limit
    return bytes(buf), False
