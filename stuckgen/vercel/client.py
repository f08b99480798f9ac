"""Read-only HTTP access to Vercel's REST API for one project: variables and deployments.

The caller builds the ``httpx.Client`` (timeouts, proxies, transport); ``VercelClient``
adds the token, pages, retries a 429 once and turns every failure into a named error
whose message never holds the token.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from stuckgen.durations import format_duration
from stuckgen.errors import ConfigError, InsecureTransportError, StuckgenError, VercelUnreachableError
from stuckgen.secrets import scrub
from stuckgen.http import is_insecure, parse_retry_after
from stuckgen.vercel.records import (
    DEFAULT_TARGETS,
    VercelDeployment,
    VercelEnvVar,
    VercelEvidence,
    VercelProject,
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
# A team's slug: lower-case letters, digits and hyphens. A user id has capitals.
_TEAM_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
# Answers that ask for an interactive step-up (the CLI's env/challenge-recovery.ts).
_CHALLENGE_CODES = frozenset({"challenge_required", "challenge_required_email_otp", "user_auth_required"})


@dataclass(frozen=True)
class _ApiError:
    """Vercel's ``{"error": {"code", "message", "invalidToken"}}`` (or the same keys unwrapped)."""

    code: str | None = None
    line: str = ""  # ``code: message``, one short line
    invalid_token: bool = False


def _api_error(body: bytes) -> _ApiError:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _ApiError()
    if not isinstance(data, dict):
        return _ApiError()
    inner = data.get("error")
    err: Mapping[str, Any] = inner if isinstance(inner, Mapping) else data
    code, message = _text(err.get("code")), _text(err.get("message"))
    line = " ".join(": ".join(p for p in (code, message) if p).split())[:200]
    return _ApiError(code=code, line=line, invalid_token=err.get("invalidToken") is True)


def _retry_after(response: httpx.Response, now: float) -> float:
    """Seconds to wait before retrying a 429: Retry-After (seconds or date), else the rate-limit reset."""
    seconds = parse_retry_after(response.headers.get("retry-after"), now=now)
    if seconds is not None:
        return seconds
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
        if is_insecure(base_url):
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
        """The project's environment variables; ``decrypt`` asks for values (deprecated by Vercel)."""
        return list(self.env_listing(decrypt=decrypt)[0])

    def env_listing(self, *, decrypt: bool = False) -> tuple[list[VercelEnvVar], int]:
        """(variables, ``hiddenProductionEnvCount``): the listing and how many production ones it hides.

        The API answers ``{envs, pagination}``, ``{envs, hiddenProductionEnvCount}``
        or one variable unwrapped (vercel/sdk ``FilterProjectEnvsResponseBody1/2/3``).
        A token that may not see production variables gets them counted, not listed.
        """
        params: dict[str, str] = {"decrypt": "true"} if decrypt else {}
        path = f"/v10/projects/{quote(self.project, safe='')}/env"
        out: list[VercelEnvVar] = []
        seen: set[str] = set()
        hidden = 0
        for data in self._pages(path, params, what="environment variables"):
            if isinstance(data.get("envs"), list):
                items = data["envs"]
            elif "key" in data:  # the API answers a lone variable unwrapped
                items = [data]
            else:
                raise self._unexpected("environment variables", "no 'envs' list")
            count = data.get("hiddenProductionEnvCount")
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                hidden = max(hidden, count)
            for raw in items:
                var = VercelEnvVar.from_json(raw)
                if var is None:
                    continue
                ident = var.id or f"{var.key}|{var.targets}|{var.git_branch}"
                if ident not in seen:  # pages may overlap at their edges
                    seen.add(ident)
                    out.append(var)
        return out, hidden

    def read_value(self, var: VercelEnvVar) -> VercelEnvVar:
        """``var`` with its value's digest from ``GET /v1/projects/{idOrName}/env/{id}``, or why not.

        The list endpoint returns ciphertext even with ``decrypt=true`` (vercel/vercel#9072,
        vercel/sdk#118); the single-variable endpoint returns ``value`` when this token may
        read it. Sensitive variables never return one. A failed read is recorded in
        ``unreadable``, never raised: the rest of the evidence still counts.
        """
        if var.digest is not None:
            return var
        if var.sensitive:
            why = "type sensitive" if (var.type or "").lower() in ("sensitive", "secret") else "visibility secret"
            return replace(var, unreadable=f"it is a sensitive variable ({why}): Vercel never returns its value")
        if var.id is None:
            return replace(var, unreadable="the listing gave it no id to read it by")
        path = f"/v1/projects/{quote(self.project, safe='')}/env/{quote(var.id, safe='')}"
        try:
            data = self._get_json(path, {}, what=f"the value of {var.key}")
        except StuckgenError as exc:
            return replace(var, unreadable=exc.message)
        read = var.with_value_from(data)
        if read.digest is None:
            if isinstance(data.get("type"), str) and data["type"].lower() == "sensitive":
                return replace(var, unreadable="it is a sensitive variable: Vercel never returns its value")
            return replace(var, unreadable="Vercel answered without a readable value (decrypted: false)")
        return read

    def get_project(self) -> VercelProject:
        """The project's current production deployment and its automation bypass secrets (as digests)."""
        data = self._get_json(f"/v9/projects/{quote(self.project, safe='')}", {}, what="the project")
        project = VercelProject.from_json(data)
        if project is None:
            raise self._unexpected("the project", "not a project object")
        return project

    def get_deployment(self, deployment: str) -> dict[str, Any]:
        """One deployment as ``GET /v13/deployments/{idOrUrl}`` returns it, with the ``functions``
        configuration it was built with (vercel.json: a glob -> ``{maxDuration, memory, ...}``)."""
        return self._get_json(f"/v13/deployments/{quote(deployment, safe='')}", {}, what="the deployment")

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
                d.is_ready and not d.staged
                and (cutoff is None or (d.live_since is not None and d.live_since <= cutoff))
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
        decrypt: bool = False,
        value_keys: Collection[str] = (),
    ) -> VercelEvidence:
        """Variables (values of ``value_keys`` read one by one), the project, and recent deployments.

        The project is read for its bypass secrets and current production deployment;
        a token that may not read it still yields the rest (``project_error`` says why).
        """
        envs, hidden = self.env_listing(decrypt=decrypt)
        wanted = set(value_keys)
        envs = [self.read_value(v) if v.key in wanted else v for v in envs]
        project: VercelProject | None = None
        project_error: str | None = None
        try:
            project = self.get_project()
        except StuckgenError as exc:
            project_error = exc.message
        deployments: list[VercelDeployment] = []
        # Only production and preview have deployments this endpoint filters by;
        # "development" is the developers' own machines.
        for target in sorted({t.lower() for t in targets} & {"production", "preview"}, key=_target_key):
            deployments.extend(self.list_deployments(target=target, live_before=onset))
        # Custom environments: only when a variable is scoped to one (the CLI lists their
        # deployments with target=<slug>); a token that may not list them loses only these.
        custom_ids = {t for v in envs for t in v.targets if t not in ("production", "preview", "development")}
        environments: list[tuple[str, str]] = []
        if custom_ids:
            try:
                environments = self.list_custom_environments()
            except StuckgenError:
                environments = []
            seen = {d.uid for d in deployments}
            for env_id, slug in environments:
                for d in self.list_deployments(target=slug, live_before=onset):
                    if d.uid not in seen:
                        seen.add(d.uid)
                        deployments.append(d if d.environment else replace(d, target=env_id, environment=slug))
        return VercelEvidence(envs=tuple(envs), deployments=tuple(deployments), project=project,
                              project_error=project_error, hidden_production=hidden,
                              custom_environments=tuple(environments))

    def list_custom_environments(self) -> list[tuple[str, str]]:
        """(id, slug) of the project's custom environments (``GET /v9/projects/{idOrName}/custom-environments``)."""
        data = self._get_json(f"/v9/projects/{quote(self.project, safe='')}/custom-environments", {},
                              what="custom environments")
        items = data.get("environments")
        if not isinstance(items, list):
            raise self._unexpected("custom environments", "no 'environments' list")
        out: list[tuple[str, str]] = []
        for raw in items:
            if isinstance(raw, Mapping) and _text(raw.get("id")):
                env_id = str(raw["id"]).lower()  # variables' customEnvironmentIds are compared lower-cased
                out.append((env_id, _text(raw.get("slug")) or env_id))
        return out

    # -- transport

    def _scope(self) -> dict[str, str]:
        """The account a request acts for, the way the Vercel CLI sends it.

        A ``team_...`` id goes as ``teamId``; a lower-case name as the team's ``slug``;
        anything else is a personal account's user id (``VERCEL_ORG_ID`` of a personal
        project), which must not be sent at all (the CLI's ``client.ts`` drops
        ``teamId`` unless the id starts with ``team_``).
        """
        if self.team is None:
            return {}
        if self.team.startswith("team_"):
            return {"teamId": self.team}
        if _TEAM_SLUG.fullmatch(self.team):
            return {"slug": self.team}
        return {}

    @property
    def account(self) -> str:
        """How messages name the account the requests act for."""
        scope = self._scope()
        if "teamId" in scope:
            return f"team {scope['teamId']}"
        if "slug" in scope:
            return f"team {scope['slug']}"
        return "the token's personal account"

    def _pages(
        self,
        path: str,
        params: dict[str, str],
        *,
        what: str,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[dict[str, Any]]:
        params = dict(params)
        asked: set[str] = set()
        for _ in range(self.max_pages):
            data = self._get_json(path, params, what=what)
            yield data
            pagination = data.get("pagination")
            nxt = pagination.get("next") if isinstance(pagination, Mapping) else None
            if isinstance(nxt, bool) or not isinstance(nxt, (int, float, str)) or nxt in ("", 0) or stop():
                return
            cursor = str(int(nxt)) if isinstance(nxt, (int, float)) else nxt
            # A cursor that does not move would ask for the same page again.
            if cursor == params.get("until") or cursor in asked:
                return
            asked.add(cursor)
            params["until"] = cursor

    def runtime_logs(self, deployment_id: str, *, max_lines: int = 20000) -> list[Any]:
        """The deployment's runtime log lines (``GET /v1/projects/{id}/deployments/{id}/runtime-logs``).

        The answer is ``application/stream+json``: one JSON object per line, and the
        connection may stay open for new lines. Reading stops at ``max_lines``, at
        the body cap, or when no line came for the client's read timeout: what was
        read is what Vercel still keeps.
        """
        from stuckgen.vercel.logs import parse_runtime_log_line

        path = (f"/v1/projects/{quote(self.project, safe='')}/deployments/"
                f"{quote(deployment_id, safe='')}/runtime-logs")
        what = f"the runtime logs of deployment {deployment_id}"
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/stream+json"}
        host = urlsplit(self.base_url).netloc
        lines: list[Any] = []
        size = 0
        try:
            with self._http.stream("GET", url, params=self._scope(), headers=headers) as response:
                if not 200 <= response.status_code < 300:
                    body = self._read_capped(response, what=what)
                    raise self._status_error(response.status_code, body, what=what)
                try:
                    for raw in response.iter_lines():
                        size += len(raw)
                        line = parse_runtime_log_line(raw, deployment=deployment_id)
                        if line is not None:
                            lines.append(line)
                        if len(lines) >= max_lines or size > self.max_body_bytes:
                            break
                except httpx.ReadTimeout:
                    pass  # the stream stayed open with nothing new: the history has been read
        except httpx.TimeoutException as exc:
            raise self._error(VercelUnreachableError, f"the Vercel API ({host}) did not answer in time while reading {what}",
                              hint="raise --http-timeout if the API is slow") from exc
        except httpx.RequestError as exc:
            raise self._error(VercelUnreachableError,
                              f"cannot reach the Vercel API ({host}) while reading {what}: {type(exc).__name__}") from exc
        return lines

    def _status_error(self, status: int, body: bytes, *, what: str) -> StuckgenError:
        """The named error for a non-2xx answer (the same words as every other read)."""
        error = _api_error(body)
        suffix = f": {error.line}" if error.line else ""
        if status == 401 or (status == 403 and error.invalid_token):
            return self._error(ConfigError, f"the Vercel token was rejected (HTTP {status}{suffix}) while reading {what}",
                               hint="check VERCEL_TOKEN and VERCEL_TEAM_ID")
        if status in (403, 404):
            return self._error(ConfigError, f"the Vercel API refused to return {what} in {self.account} (HTTP {status}{suffix})",
                               hint="check that the token may read this project's logs, and the deployment id")
        if 400 <= status < 500:
            return self._error(ConfigError, f"the Vercel API refused to return {what} (HTTP {status}{suffix})")
        return self._error(VercelUnreachableError, f"the Vercel API answered HTTP {status} while reading {what}{suffix}")

    def _get_json(self, path: str, params: dict[str, str], *, what: str) -> dict[str, Any]:
        """GET one API document; a named error for every answer that is not one."""
        query = dict(params)
        query.update(self._scope())
        status, body, response, waited = self._fetch(self.base_url + path, query, what=what)
        if 200 <= status < 300:
            return self._parse(body, response, what=what)
        raise self._answer_error(status, body, what=what, waited=waited)

    def _fetch(self, url: str, query: dict[str, str], *,
               what: str) -> tuple[int, bytes, httpx.Response, float | None]:
        """(status, body, response, seconds waited) of a GET; one HTTP 429 is waited out when its wait is short."""
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
                    f"the Vercel API ({host}) did not answer in time while reading {what}",
                    hint="check the network or proxy; raise --http-timeout if the API is slow",
                ) from exc
            except httpx.RequestError as exc:
                raise self._error(
                    VercelUnreachableError,
                    f"cannot reach the Vercel API ({host}) while reading {what}: {type(exc).__name__}",
                    hint="check the network, DNS and any HTTPS proxy",
                ) from exc
            if response.status_code != 429 or waited is not None:
                return response.status_code, body, response, waited
            wait = _retry_after(response, self._clock())
            if wait > self.max_retry_wait:
                raise self._error(
                    VercelUnreachableError,
                    f"the Vercel API is rate-limiting this token (HTTP 429); it asks to wait {format_duration(wait)}",
                )
            self._sleep(wait)
            waited = wait

    def _answer_error(self, status: int, body: bytes, *, what: str, waited: float | None) -> StuckgenError:
        """The named error for a document read answered with a non-2xx status."""
        error = _api_error(body)
        suffix = f": {error.line}" if error.line else ""
        if error.code in _CHALLENGE_CODES:
            return self._error(
                ConfigError,
                f"the Vercel API asks for a fresh sign-in challenge ({error.code}, HTTP {status}) before it "
                f"returns {what}",
                hint="sensitive reads need an interactive step-up that a token cannot answer; "
                     "compare the value by hand in the dashboard",
            )
        if status == 401 or (status == 403 and error.invalid_token):
            return self._error(
                ConfigError,
                f"the Vercel token was rejected (HTTP {status}{suffix}) while reading {what}",
                hint=(
                    "check VERCEL_TOKEN"
                    + (f" and that it can access {self.account} (VERCEL_TEAM_ID)" if self._scope()
                       else "; a project owned by a team also needs VERCEL_TEAM_ID")
                ),
            )
        if status == 403:
            return self._error(
                ConfigError,
                f"the Vercel token may not read {what} in {self.account} (HTTP 403{suffix})",
                hint="the token is valid but lacks access: give it a role that can read this project, "
                     "or set VERCEL_TEAM_ID to the team that owns it",
            )
        if status == 404:
            return self._error(
                ConfigError,
                f"Vercel project {self.project!r} was not found ({self.account}) while reading {what}{suffix}",
                hint="check VERCEL_PROJECT_ID (a prj_... id or the project name) and VERCEL_TEAM_ID "
                     "(team_... id or slug; leave it unset for a personal account)",
            )
        if status == 429:
            return self._error(
                VercelUnreachableError,
                f"the Vercel API is still rate-limiting this token (HTTP 429) after waiting "
                f"{format_duration(waited or 0.0)}; try again later",
            )
        if 400 <= status < 500:
            return self._error(ConfigError, f"the Vercel API refused to return {what} (HTTP {status}{suffix})")
        host = urlsplit(self.base_url).netloc
        return self._error(
            VercelUnreachableError,
            f"the Vercel API ({host}) answered HTTP {status} while reading {what}{suffix}",
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
