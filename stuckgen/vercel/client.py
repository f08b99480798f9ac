"""Read-only HTTP access to Vercel's REST API for one project: variables and deployments.

The caller builds the ``httpx.Client`` (timeouts, proxies, transport); ``VercelClient``
adds the token, pages, retries a 429 once and turns every failure into a named error
whose message never holds the token.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from stuckgen.durations import format_duration
from stuckgen.errors import ConfigError, InsecureTransportError, StuckgenError, VercelUnreachableError
from stuckgen.secrets import scrub
from stuckgen.transport import is_loopback
from stuckgen.vercel.records import (
    DEFAULT_TARGETS,
    VercelDeployment,
    VercelEnvVar,
    VercelEvidence,
    _aware,
    _target_key,
    _text,
)

DEFAULT_BASE_URL = "https://api.vercel.com"

# A large project's variable list (encrypted values included) is well under
# 1 MiB; anything far bigger is not the API we think we are talking to.
MAX_BODY_BYTES = 4 * 1024 * 1024
PAGE_LIMIT = 50
MAX_PAGES = 5
# Longer waits than this are not worth holding an incident command for.
MAX_RETRY_WAIT = 30.0
DEFAULT_RETRY_WAIT = 2.0

_E = TypeVar("_E", bound=StuckgenError)


def _retry_after(response: httpx.Response, now: float) -> float:
    """Seconds to wait before retrying a 429: Retry-After (seconds or date), else the rate-limit reset."""
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=timezone.utc)
                return max(0.0, when.timestamp() - now)
    reset = response.headers.get("x-ratelimit-reset")  # Vercel: epoch seconds
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    return DEFAULT_RETRY_WAIT


class VercelClient:
    """Read-only access to one project's variables and deployments.

    The caller owns ``http`` (timeouts, proxies, transport); this class adds the
    Bearer token and ``teamId`` to each request and turns every failure into a
    ``ConfigError`` or ``VercelUnreachableError`` whose message never holds the token.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        token: str,
        project: str,
        team: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        max_pages: int = MAX_PAGES,
        max_retry_wait: float = MAX_RETRY_WAIT,
        max_body_bytes: int = MAX_BODY_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        token = (token or "").strip()  # a token read from a file often ends with a newline
        if not token:
            raise ConfigError("VERCEL_TOKEN is empty", hint="create one at https://vercel.com/account/tokens")
        if any(c.isspace() for c in token):
            raise ConfigError("VERCEL_TOKEN contains whitespace: copy the token again")
        if not (project or "").strip():
            raise ConfigError("the Vercel project is not set (VERCEL_PROJECT_ID: a prj_... id or the project name)")
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(f"the Vercel API base URL {base_url!r} is not an http(s) URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise InsecureTransportError(
                f"the Vercel API base URL {base_url} is plain HTTP: the token would travel unencrypted (use https)"
            )
        self._http = http
        self._token = token
        self.project = project.strip()
        self.team = (team or "").strip() or None
        self.base_url = base_url.rstrip("/")
        self.max_pages = max(1, max_pages)
        self.max_retry_wait = max_retry_wait
        self.max_body_bytes = max_body_bytes
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"VercelClient(project={self.project!r}, team={self.team!r}, base_url={self.base_url!r})"

    # -- public reads

    def list_env(self, *, decrypt: bool = False) -> list[VercelEnvVar]:
        """The project's environment variables; ``decrypt`` asks for values where Vercel allows it."""
        params: dict[str, str] = {"decrypt": "true"} if decrypt else {}
        path = f"/v10/projects/{quote(self.project, safe='')}/env"
        out: list[VercelEnvVar] = []
        seen: set[str] = set()
        for data in self._pages(path, params, what="environment variables"):
            if isinstance(data.get("envs"), list):
                items = data["envs"]
            elif "key" in data:  # the API answers a lone variable unwrapped
                items = [data]
            else:
                raise self._unexpected("environment variables", "no 'envs' list")
            for raw in items:
                var = VercelEnvVar.from_json(raw)
                if var is None:
                    continue
                ident = var.id or f"{var.key}|{var.targets}|{var.git_branch}"
                if ident not in seen:  # pages may overlap at their edges
                    seen.add(ident)
                    out.append(var)
        return out

    def list_deployments(
        self, *, target: str | None = None, limit: int = PAGE_LIMIT, live_before: datetime | None = None
    ) -> list[VercelDeployment]:
        """Recent deployments, newest first.

        Follows ``pagination.next`` (at most ``max_pages`` pages) only until the list
        holds a READY deployment live before ``live_before`` (or any READY one when
        None): that is the deployment ``analyze_vercel`` needs, and older ones are noise.
        """
        params: dict[str, str] = {"projectId": self.project, "limit": str(limit)}
        if target:
            params["target"] = target
        cutoff = _aware(live_before) if live_before is not None else None
        out: list[VercelDeployment] = []
        seen: set[str] = set()

        def enough() -> bool:
            return any(
                d.is_ready and (cutoff is None or (d.live_since is not None and d.live_since <= cutoff))
                for d in out
            )

        for data in self._pages("/v6/deployments", params, what="deployments", stop=enough):
            items = data.get("deployments")
            if not isinstance(items, list):
                raise self._unexpected("deployments", "no 'deployments' list")
            for raw in items:
                dep = VercelDeployment.from_json(raw)
                if dep is not None and dep.uid not in seen:
                    seen.add(dep.uid)
                    out.append(dep)
        return out

    def gather(
        self,
        *,
        targets: Collection[str] = DEFAULT_TARGETS,
        onset: datetime | None = None,
        decrypt: bool = True,
    ) -> VercelEvidence:
        """Variables and, for each deployable target in use, its recent deployments."""
        envs = self.list_env(decrypt=decrypt)
        deployments: list[VercelDeployment] = []
        # Only production and preview have deployments this endpoint filters by;
        # "development" is the developers' own machines.
        for target in sorted({t.lower() for t in targets} & {"production", "preview"}, key=_target_key):
            deployments.extend(self.list_deployments(target=target, live_before=onset))
        return VercelEvidence(envs=tuple(envs), deployments=tuple(deployments))

    # -- transport

    def _pages(
        self,
        path: str,
        params: dict[str, str],
        *,
        what: str,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[dict[str, Any]]:
        params = dict(params)
        for _ in range(self.max_pages):
            data = self._get_json(path, params, what=what)
            yield data
            pagination = data.get("pagination")
            nxt = pagination.get("next") if isinstance(pagination, Mapping) else None
            if isinstance(nxt, bool) or not isinstance(nxt, (int, float, str)) or nxt in ("", 0) or stop():
                return
            params["until"] = str(int(nxt)) if isinstance(nxt, (int, float)) else nxt

    def _get_json(self, path: str, params: dict[str, str], *, what: str) -> dict[str, Any]:
        url = self.base_url + path
        query = dict(params)
        if self.team:
            query["teamId"] = self.team
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        host = urlsplit(self.base_url).netloc
        waited: float | None = None
        while True:
            try:
                with self._http.stream("GET", url, params=query, headers=headers) as response:
                    body = self._read_capped(response, what=what)
            except httpx.TimeoutException as exc:
                raise self._error(
                    VercelUnreachableError,
                    f"the Vercel API ({host}) did not answer in time while listing {what}",
                    hint="check the network or proxy; raise --http-timeout if the API is slow",
                ) from exc
            except httpx.RequestError as exc:
                raise self._error(
                    VercelUnreachableError,
                    f"cannot reach the Vercel API ({host}) while listing {what}: {type(exc).__name__}",
                    hint="check the network, DNS and any HTTPS proxy",
                ) from exc
            status = response.status_code
            if status == 429 and waited is None:
                wait = _retry_after(response, self._clock())
                if wait > self.max_retry_wait:
                    raise self._error(
                        VercelUnreachableError,
                        f"the Vercel API is rate-limiting this token (HTTP 429); it asks to wait {format_duration(wait)}",
                    )
                self._sleep(wait)
                waited = wait
                continue
            break
        if 200 <= status < 300:
            return self._parse(body, response, what=what)
        detail = self._api_error(body)
        suffix = f": {detail}" if detail else ""
        team = f" (team {self.team})" if self.team else ""
        if status in (401, 403):
            raise self._error(
                ConfigError,
                f"the Vercel token was rejected (HTTP {status}{suffix}) while listing {what}",
                hint=(
                    "check VERCEL_TOKEN"
                    + (f" and that it can access team {self.team} (VERCEL_TEAM_ID)" if self.team
                       else "; a project owned by a team also needs VERCEL_TEAM_ID")
                ),
            )
        if status == 404:
            raise self._error(
                ConfigError,
                f"Vercel project {self.project!r} was not found{team}{suffix}",
                hint="check VERCEL_PROJECT_ID (a prj_... id or the project name) and VERCEL_TEAM_ID",
            )
        if status == 429:
            raise self._error(
                VercelUnreachableError,
                f"the Vercel API is still rate-limiting this token (HTTP 429) after waiting "
                f"{format_duration(waited or 0.0)}; try again later",
            )
        if 400 <= status < 500:
            raise self._error(ConfigError, f"the Vercel API refused to list {what} (HTTP {status}{suffix})")
        raise self._error(
            VercelUnreachableError,
            f"the Vercel API ({host}) answered HTTP {status} while listing {what}{suffix}",
            hint="a 3xx means the base URL is wrong; a 5xx is Vercel's side, try again shortly",
        )

    def _read_capped(self, response: httpx.Response, *, what: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._error(
                    VercelUnreachableError,
                    f"the Vercel API's answer listing {what} exceeded {self.max_body_bytes // 1024} KiB; "
                    "this is not the answer we expect (check the base URL and any proxy)",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _parse(self, body: bytes, response: httpx.Response, *, what: str) -> dict[str, Any]:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            ctype = response.headers.get("content-type", "no content-type").split(";")[0]
            raise self._error(
                VercelUnreachableError,
                f"the Vercel API answered HTTP {response.status_code} listing {what} with a body that is not "
                f"complete JSON ({ctype}, {len(body)} bytes)",
                hint="check the base URL and any proxy in between",
            ) from exc
        if not isinstance(data, dict):
            raise self._unexpected(what, f"a JSON {type(data).__name__} instead of an object")
        return data

    def _api_error(self, body: bytes) -> str:
        """``code: message`` from Vercel's ``{"error": {...}}``, one short line; "" if none."""
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return ""
        err = data.get("error") if isinstance(data, dict) else None
        if not isinstance(err, Mapping):
            return ""
        parts = [p for p in (_text(err.get("code")), _text(err.get("message"))) if p]
        line = " ".join(": ".join(parts).split())
        return line[:200]

    def _unexpected(self, what: str, why: str) -> VercelUnreachableError:
        return self._error(
            VercelUnreachableError,
            f"the Vercel API's answer listing {what} has an unexpected shape ({why})",
            hint="check the base URL and any proxy in between",
        )

    def _error(self, cls: type[_E], message: str, *, hint: str | None = None) -> _E:
        # Last line of defence: nothing we build holds the token, but an API
        # message is echoed and a proxy could reflect the header back.
        return cls(scrub(message, [self._token]), hint=scrub(hint, [self._token]) if hint else None)
