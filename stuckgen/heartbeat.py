"""A dead-man's switch for the scheduled check: ping a cron monitor when a run starts and when it ends.

The convention of the common cron monitors (healthchecks.io and those that copy
it): ``<url>/start`` when the run starts, ``<url>`` when it ends well,
``<url>/<exit code>`` when it ends with a non-zero code (``/fail`` is the same
as ``/1``). Both pings carry ``rid=<uuid>`` so the monitor pairs them and
measures the run. The monitor pages when the end ping is late or missing: a
scheduler that stopped running, or a run that hangs, is noticed. A ping that
fails is reported and changes nothing else: the monitor notices the missing
ping by itself.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

MAX_BODY = 10_000  # healthchecks.io keeps the first 100 kB of a ping body; a summary needs far less


def ping_url(base: str, suffix: str, *, rid: str) -> str:
    """``base`` with ``/suffix`` added to its path (when given) and ``rid`` to its query."""
    p = urlsplit(base)
    path = p.path.rstrip("/") + (f"/{suffix}" if suffix else "")
    query = "&".join(x for x in (p.query, urlencode({"rid": rid})) if x)
    return urlunsplit((p.scheme, p.netloc, path or "/", query, ""))


class Heartbeat:
    """Start and end pings of one run. The URL is a credential: it is never printed, only its host."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self._url = url
        self.rid = str(uuid.uuid4())

    @property
    def where(self) -> str:
        p = urlsplit(self._url)
        return f"{p.scheme}://{p.hostname}"

    def start(self) -> str | None:
        """Ping ``/start``; an error message when it failed, else None."""
        return self._ping("start", b"")

    def finish(self, exit_code: int, log: str = "") -> str | None:
        """Ping success (exit 0) or ``/<exit code>``, with the run's summary as the body."""
        return self._ping("" if exit_code == 0 else str(int(exit_code)), log.encode("utf-8")[:MAX_BODY])

    def _ping(self, suffix: str, body: bytes) -> str | None:
        import httpx

        try:
            r = self.client.post(ping_url(self._url, suffix, rid=self.rid), content=body,
                                 headers={"content-type": "text/plain; charset=utf-8"})
        except httpx.HTTPError as exc:
            return f"heartbeat {suffix or 'success'} ping to {self.where} failed: {type(exc).__name__}"
        if r.status_code >= 300:
            return f"heartbeat {suffix or 'success'} ping to {self.where} answered HTTP {r.status_code}"
        return None

    def __repr__(self) -> str:
        return f"Heartbeat({self.where})"
