"""Vercel runtime logs as evidence: how the process route answered each call, and which calls timed out.

The source is ``GET /v1/projects/{projectId}/deployments/{deploymentId}/runtime-logs``
(https://vercel.com/docs/rest-api/logs/get-logs-for-a-deployment): ``application/stream+json``,
one object per line with ``level`` (info, warning, error), ``message``, ``rowId``,
``source`` (delimiter, edge-function, edge-middleware, serverless, request),
``timestampInMs``, ``domain``, ``messageTruncated``, ``requestMethod``,
``requestPath`` and ``responseStatusCode``. A function stopped at its maximum
duration logs "Task timed out after N seconds".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

_TIMED_OUT = re.compile(r"Task timed out after ([0-9]+(?:\.[0-9]+)?) seconds")


@dataclass(frozen=True, kw_only=True)
class RuntimeLog:
    """One runtime log line of one deployment."""

    deployment: str
    at: datetime
    level: str
    source: str
    message: str
    path: str | None
    method: str | None
    status: int | None  # responseStatusCode; None or 0 when the line is not a response
    domain: str | None = None
    row_id: str | None = None
    truncated: bool = False

    @property
    def timed_out_after(self) -> float | None:
        """The seconds in "Task timed out after N seconds", when this line says so."""
        m = _TIMED_OUT.search(self.message)
        return float(m.group(1)) if m else None

    def as_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "at": self.at.isoformat().replace("+00:00", "Z"), "level": self.level,
                "source": self.source, "path": self.path, "method": self.method, "status": self.status,
                "timed_out_after": self.timed_out_after, "message": self.message[:300]}


def parse_runtime_log_line(raw: str | bytes, *, deployment: str) -> RuntimeLog | None:
    """One line of the stream; None for a blank line or anything that is not a log object."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    raw = raw.strip()
    if not raw:
        return None
    try:
        d = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("timestampInMs"), (int, float)):
        return None
    status = d.get("responseStatusCode")
    path = d.get("requestPath")
    return RuntimeLog(
        deployment=deployment,
        at=datetime.fromtimestamp(d["timestampInMs"] / 1000, tz=timezone.utc),
        level=str(d.get("level") or "info"), source=str(d.get("source") or ""),
        message=str(d.get("message") or ""),
        path=str(path).split("?", 1)[0] if path else None,
        method=str(d["requestMethod"]) if d.get("requestMethod") else None,
        status=int(status) if isinstance(status, (int, float)) and not isinstance(status, bool) and status > 0 else None,
        domain=str(d["domain"]) if d.get("domain") else None, row_id=str(d["rowId"]) if d.get("rowId") else None,
        truncated=d.get("messageTruncated") is True)


def parse_runtime_logs(body: bytes, *, deployment: str) -> list[RuntimeLog]:
    return [x for x in (parse_runtime_log_line(line, deployment=deployment) for line in body.splitlines()) if x]


def route_calls(logs: Iterable[RuntimeLog], route: str) -> list[RuntimeLog]:
    """The calls of ``route`` (one line per request) and its timeouts, oldest first.

    A request writes one ``request`` line and any number of console lines carrying the
    same path and status: when the log has ``request`` lines for the route, only those
    count as calls; timeouts are the lines saying "Task timed out after N seconds".
    """
    route = route.rstrip("/") or "/"
    matching = [x for x in logs if (x.path or "").rstrip("/") == route]
    requests = [x for x in matching if x.source == "request" and x.status]
    calls = requests if requests else [x for x in matching if x.status and not x.timed_out_after]
    timeouts = [x for x in matching if x.timed_out_after]
    return sorted({*calls, *timeouts}, key=lambda x: x.at)


def near(logs: Iterable[RuntimeLog], at: datetime, *, before: float = 5.0, after: float = 120.0) -> list[RuntimeLog]:
    """Lines from ``before`` seconds before ``at`` to ``after`` seconds after it."""
    lo, hi = at - timedelta(seconds=before), at + timedelta(seconds=after)
    return [x for x in logs if lo <= x.at <= hi]


@dataclass(frozen=True, kw_only=True)
class RouteCalls:
    """How one deployment's route answered, counted."""

    deployment: str
    route: str
    total: int
    by_status: dict[int, int]
    timeouts: int
    timeout_seconds: float | None
    first: datetime | None
    last: datetime | None

    def line(self) -> str:
        """``31 of 32 calls to /api/generate/process on dpl_x answered 401 between 10:41 and 11:40 UTC``."""
        span = (f" between {self.first:%H:%M} and {self.last:%H:%M} UTC" if self.first and self.last else "")
        if not self.by_status and not self.timeouts:
            return f"no calls to {self.route} on {self.deployment} in its runtime logs"
        parts = []
        if self.by_status:
            status, n = max(self.by_status.items(), key=lambda kv: kv[1])
            parts.append(f"{n} of {self.total} calls to {self.route} on {self.deployment} answered {status}{span}")
        if self.timeouts:
            parts.append(f"{self.timeouts} timed out after {self.timeout_seconds:g} s (the function's maximum duration)")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "route": self.route, "total": self.total,
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())}, "timeouts": self.timeouts,
                "timeout_seconds": self.timeout_seconds,
                "first": self.first.isoformat().replace("+00:00", "Z") if self.first else None,
                "last": self.last.isoformat().replace("+00:00", "Z") if self.last else None}


def count_calls(logs: Sequence[RuntimeLog], route: str, *, deployment: str) -> RouteCalls:
    calls = route_calls(logs, route)
    statuses = Counter(x.status for x in calls if x.status and not x.timed_out_after)
    outs = [x.timed_out_after for x in calls if x.timed_out_after]
    return RouteCalls(deployment=deployment, route=route, total=sum(statuses.values()), by_status=dict(statuses),
                      timeouts=len(outs), timeout_seconds=max(outs) if outs else None,
                      first=calls[0].at if calls else None, last=calls[-1].at if calls else None)


def log_deployments(deployments: Sequence[Any], limit: int = 3) -> list[Any]:
    """The deployments whose runtime logs are read: the most recent ready ones (production first)."""
    ready = [d for d in deployments if (d.state or "").upper() == "READY"]
    ready.sort(key=lambda d: (d.target != "production", -(d.created_at.timestamp() if d.created_at else 0)))
    return ready[:limit]
