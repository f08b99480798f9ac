"""Vercel evidence for ``doctor``: the project's variables and deployments, and what they mean.

``VercelClient`` reads two REST endpoints through an ``httpx.Client`` the caller
builds; ``analyze_vercel`` turns the parsed records into findings. Secret values
never leave the parser: a readable value is reduced at once to a ``ValueDigest``
(length, fingerprint, whitespace faults) and the value itself is dropped.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from stuckgen.durations import format_duration
from stuckgen.transport import is_loopback
from stuckgen.errors import ConfigError, InsecureTransportError, StuckgenError, VercelUnreachableError
from stuckgen.findings import Finding, Severity, rank
from stuckgen.secrets import fingerprint, hygiene_problems, scrub

DEFAULT_BASE_URL = "https://api.vercel.com"
DEFAULT_TARGETS: frozenset[str] = frozenset({"production", "preview"})
SECRET_KEY = "INTERNAL_API_SECRET"
BYPASS_KEY = "VERCEL_AUTOMATION_BYPASS_SECRET"

# A large project's variable list (encrypted values included) is well under
# 1 MiB; anything far bigger is not the API we think we are talking to.
MAX_BODY_BYTES = 4 * 1024 * 1024
PAGE_LIMIT = 50
MAX_PAGES = 5
# Longer waits than this are not worth holding an incident command for.
MAX_RETRY_WAIT = 30.0
DEFAULT_RETRY_WAIT = 2.0
# A deployment that went live this soon before the first stuck row is a suspect.
ONSET_SUSPECT_WINDOW = timedelta(hours=1)

_TARGET_ORDER = ("production", "preview", "development")
_E = TypeVar("_E", bound=StuckgenError)


# -- parsing -------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A non-empty string, or None for anything else (the API sends null, "" or omits)."""
    if isinstance(value, str) and value.strip():
        return value
    return None


def _ms_time(value: Any) -> datetime | None:
    """Epoch milliseconds (number or numeric string) as an aware UTC datetime; None if unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _targets(value: Any) -> tuple[str, ...]:
    """``target`` comes as a list, a single string, or (older shapes) a comma-separated string."""
    items: Iterable[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return ()
    out: list[str] = []
    for item in items:
        if isinstance(item, str) and item.strip() and item.strip().lower() not in out:
            out.append(item.strip().lower())
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class ValueDigest:
    """What may be said about a secret value without revealing it."""

    length: int
    fingerprint: str
    stripped_fingerprint: str  # of the value without surrounding whitespace
    problems: tuple[str, ...] = ()  # copy-paste faults: newline, whitespace, quotes

    @classmethod
    def of(cls, value: str) -> "ValueDigest":
        return cls(
            length=len(value),
            fingerprint=fingerprint(value),
            stripped_fingerprint=fingerprint(value.strip()),
            problems=tuple(hygiene_problems(value)),
        )

    def __str__(self) -> str:
        return f"{self.length} chars, {self.fingerprint}"

    @property
    def whitespace_problems(self) -> tuple[str, ...]:
        # Quotes survive HTTP unchanged; whitespace around a header value does not.
        return tuple(p for p in self.problems if "quote" not in p)


@dataclass(frozen=True, kw_only=True)
class VercelEnvVar:
    """One project environment variable, as the API listed it; its value only as a digest."""

    key: str
    targets: tuple[str, ...] = ()
    type: str | None = None
    git_branch: str | None = None  # None: every branch of the targets
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: str | None = None
    digest: ValueDigest | None = None  # only when the API returned the plain value

    @classmethod
    def from_json(cls, raw: Any) -> "VercelEnvVar | None":
        """Parse one item of ``envs``; None when it has no key (nothing to reason about)."""
        if not isinstance(raw, Mapping):
            return None
        key = _text(raw.get("key"))
        if key is None:
            return None
        kind = _text(raw.get("type"))
        value = raw.get("value")
        digest = None
        # Only a decrypted value (or a legacy plain one) is the real value; an
        # "encrypted" value without decrypted=true is ciphertext, and "sensitive"
        # values are never returned. Comparing ciphertext would be a false alarm.
        if isinstance(value, str) and (raw.get("decrypted") is True or kind == "plain"):
            digest = ValueDigest.of(value)
        return cls(
            key=key,
            targets=_targets(raw.get("target")),
            type=kind,
            git_branch=_text(raw.get("gitBranch")),
            created_at=_ms_time(raw.get("createdAt")),
            updated_at=_ms_time(raw.get("updatedAt")),
            id=_text(raw.get("id")),
            digest=digest,
        )

    @property
    def changed_at(self) -> datetime | None:
        """When the value last changed: its update time, else its creation."""
        return self.updated_at or self.created_at

    @property
    def scope(self) -> str:
        return f"branch {self.git_branch}" if self.git_branch else "all branches"

    def covers(self, target: str, branch: str | None) -> bool:
        """Whether a deployment of ``target`` built from ``branch`` gets this variable."""
        return target in self.targets and (self.git_branch is None or self.git_branch == branch)


@dataclass(frozen=True, kw_only=True)
class VercelDeployment:
    """One deployment as ``/v6/deployments`` listed it."""

    uid: str
    url: str | None = None
    target: str = "preview"  # the API says null for preview deployments
    state: str | None = None
    created_at: datetime | None = None
    ready_at: datetime | None = None
    branch: str | None = None
    commit_sha: str | None = None

    @classmethod
    def from_json(cls, raw: Any) -> "VercelDeployment | None":
        """Parse one item of ``deployments``; None when it has no id."""
        if not isinstance(raw, Mapping):
            return None
        uid = _text(raw.get("uid")) or _text(raw.get("id"))
        if uid is None:
            return None
        meta = raw.get("meta") if isinstance(raw.get("meta"), Mapping) else {}
        state = _text(raw.get("state")) or _text(raw.get("readyState"))
        url = _text(raw.get("url"))
        if url is not None:
            url = url.removeprefix("https://").removeprefix("http://").rstrip("/")
        return cls(
            uid=uid,
            url=url,
            target=(_text(raw.get("target")) or "preview").lower(),
            state=state.upper() if state else None,
            created_at=_ms_time(raw.get("created")) or _ms_time(raw.get("createdAt")),
            ready_at=_ms_time(raw.get("ready")),
            branch=_text(meta.get("githubCommitRef")) or _text(meta.get("gitlabCommitRef"))
            or _text(meta.get("bitbucketCommitRef")),
            commit_sha=_text(meta.get("githubCommitSha")),
        )

    @property
    def is_ready(self) -> bool:
        return self.state == "READY"

    @property
    def live_since(self) -> datetime | None:
        """When it started serving: when it became ready, else when it was created."""
        return self.ready_at or self.created_at

    @property
    def label(self) -> str:
        """``dpl_x (preview, branch feat/y)``."""
        branch = f", branch {self.branch}" if self.branch else ""
        return f"{self.uid} ({self.target}{branch})"

    @property
    def https_url(self) -> str:
        return f"https://{self.url}" if self.url else self.uid


@dataclass(frozen=True, kw_only=True)
class VercelEvidence:
    """Everything ``analyze_vercel`` needs, as fetched for one project."""

    envs: tuple[VercelEnvVar, ...] = ()
    deployments: tuple[VercelDeployment, ...] = ()


# -- the client ----------------------------------------------------------------------


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


# -- analysis ------------------------------------------------------------------------


def _aware(when: datetime) -> datetime:
    # The app's timestamps are UTC without a zone (Prisma); treat naive as UTC.
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def _at(when: datetime | None) -> str:
    if when is None:
        return "at an unknown time"
    return _aware(when).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _target_key(target: str) -> tuple[int, str]:
    return (_TARGET_ORDER.index(target) if target in _TARGET_ORDER else len(_TARGET_ORDER), target)


def _set_fix(key: str, target: str, branch: str | None = None) -> str:
    if branch:
        scope = f" {branch}"
    else:
        scope = " (leave the Git branch empty so every preview branch gets it)" if target == "preview" else ""
    # printf, not echo: echo adds a newline that becomes part of the value.
    return f'printf %s "${key}" | vercel env add {key} {target}{scope}'


def _redeploy_fix(deployment: VercelDeployment | None, target: str) -> str:
    if deployment is None:
        return f"then redeploy {target}: a variable reaches only deployments built after it changed"
    return f"then redeploy {target} (a variable reaches only deployments built after it changed): " \
           f"vercel redeploy {deployment.https_url}"


@dataclass
class _Project:
    """Indexes over one project's evidence, shared by every rule below."""

    envs: Sequence[VercelEnvVar]
    ready: dict[str, list[VercelDeployment]] = field(default_factory=dict)  # newest first

    @classmethod
    def build(cls, envs: Sequence[VercelEnvVar], deployments: Sequence[VercelDeployment]) -> "_Project":
        ready: dict[str, list[VercelDeployment]] = {}
        for d in deployments:
            if d.is_ready and d.live_since is not None:
                ready.setdefault(d.target, []).append(d)
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        for items in ready.values():
            items.sort(key=lambda d: d.live_since or epoch, reverse=True)
        return cls(envs=envs, ready=ready)

    def vars(self, key: str, target: str) -> list[VercelEnvVar]:
        return [v for v in self.envs if v.key == key and target in v.targets]

    def serving(self, target: str, var: VercelEnvVar | None = None) -> VercelDeployment | None:
        """The newest READY deployment of ``target`` that ``var`` applies to.

        A branch-scoped variable applies to its branch's deployments; an unscoped
        one to every deployment whose branch has no branch-scoped override.
        """
        if var is None:
            items = self.ready.get(target, [])
            return items[0] if items else None
        overridden = {v.git_branch for v in self.vars(var.key, target) if v.git_branch}
        for d in self.ready.get(target, []):
            if var.git_branch is not None and d.branch == var.git_branch:
                return d
            if var.git_branch is None and d.branch not in overridden:
                return d
        return None

    def live_at(self, target: str, when: datetime) -> tuple[VercelDeployment | None, VercelDeployment | None]:
        """The deployment serving ``target`` at ``when`` and the one before it."""
        items = [d for d in self.ready.get(target, []) if d.live_since is not None and d.live_since <= when]
        return (items[0] if items else None, items[1] if len(items) > 1 else None)


def _where_set(project: _Project, key: str) -> str:
    described = sorted(
        {f"{t} ({v.scope})" for v in project.envs if v.key == key for t in v.targets},
        key=lambda s: _target_key(s.split(" ")[0]),
    )
    return f"{key} is set for: {', '.join(described)}" if described else f"{key} is not set for any target"


def analyze_vercel(
    envs: Sequence[VercelEnvVar],
    deployments: Sequence[VercelDeployment],
    *,
    local_secret: str | None,
    local_bypass: str | None,
    onset: datetime | None,
    targets_in_use: Collection[str] = DEFAULT_TARGETS,
    secret_key: str = SECRET_KEY,
    bypass_key: str = BYPASS_KEY,
    protection_seen: bool = False,
) -> list[Finding]:
    """Findings from a project's variables and deployments, ranked most severe first.

    ``onset`` is when the first stuck row appeared (naive means UTC);
    ``protection_seen`` says whether probing met Deployment Protection, which
    is when a missing bypass secret matters. Values are compared by fingerprint.
    """
    project = _Project.build(envs, deployments)
    when = _aware(onset) if onset is not None else None
    local = ValueDigest.of(local_secret) if local_secret else None
    findings: list[Finding] = []
    targets = sorted({t.strip().lower() for t in targets_in_use if t.strip()}, key=_target_key)

    for target in targets:
        live_at_onset = project.live_at(target, when)[0] if when is not None else None
        findings.extend(_coverage(project, target, secret_key, live_at_onset))
        for var in project.vars(secret_key, target):
            findings.extend(_value(project, var, target, local, secret_key))
            findings.extend(_stale(project, var, target))
        if when is not None:
            findings.extend(_onset(project, target, when, secret_key))

    findings.extend(_bypass(project, targets, bypass_key, local_bypass, protection_seen))
    return rank(findings)


def _coverage(
    project: _Project, target: str, key: str, live_at_onset: VercelDeployment | None
) -> list[Finding]:
    """vercel-secret-missing / vercel-secret-branch-scoped for one target."""
    found = project.vars(key, target)
    latest = project.serving(target)
    if not found:
        evidence = [
            _where_set(project, key),
            f"the app adds x-internal-secret only when {key} is set, so every internal trigger "
            f"from a {target} deployment arrives without it and gets 401",
        ]
        if latest is not None:
            evidence.append(f"latest READY {target} deployment: {latest.label}, live since {_at(latest.live_since)}")
        if live_at_onset is not None:
            evidence.append(f"serving {target} when the first stuck row appeared: {live_at_onset.label}")
        return [
            Finding(
                id="vercel-secret-missing",
                severity=Severity.CRITICAL,
                title=f"{key} is not set for {target} deployments",
                evidence=tuple(evidence),
                fix=f"{_set_fix(key, target)}; {_redeploy_fix(latest, target)}.",
                target=target,
            )
        ]
    if any(v.git_branch is None for v in found):
        return []
    branches = sorted({v.git_branch for v in found if v.git_branch})
    uncovered = [d for d in project.ready.get(target, []) if d.branch not in branches]
    evidence = [f"{key} for {target} is scoped to git branch {', '.join(branches)} only"]
    if uncovered:
        shown = ", ".join(d.label for d in uncovered[:3])
        more = f" and {len(uncovered) - 3} more" if len(uncovered) > 3 else ""
        evidence.append(f"READY {target} deployments on other branches get no {key}: {shown}{more}")
    hit = False
    if live_at_onset is not None and live_at_onset.branch not in branches:
        hit = True
        evidence.append(
            f"the {target} deployment serving when the first stuck row appeared, {live_at_onset.label}, "
            f"is on another branch and has no {key}"
        )
    return [
        Finding(
            id="vercel-secret-branch-scoped",
            severity=Severity.CRITICAL if hit else Severity.ERROR,
            title=f"{key} is set for {target} only on branch {', '.join(branches)}",
            evidence=tuple(evidence),
            fix=f"Add it for every {target} branch: {_set_fix(key, target)}; "
                f"{_redeploy_fix(uncovered[0] if uncovered else None, target)}.",
            target=target,
        )
    ]


def _value(
    project: _Project, var: VercelEnvVar, target: str, local: ValueDigest | None, key: str
) -> list[Finding]:
    """vercel-secret-value-whitespace / vercel-secret-value-differs for one variable."""
    digest = var.digest
    if digest is None:
        return []
    serving = project.serving(target, var)
    where = f"{target}, {var.scope}"
    fix = (
        f"vercel env rm {key} {target}{' ' + var.git_branch if var.git_branch else ''}, then "
        f"{_set_fix(key, target, var.git_branch)}; {_redeploy_fix(serving, target)}."
    )
    if digest.whitespace_problems:
        evidence = [
            f"Vercel value ({where}): {digest}, which {', '.join(digest.problems)}",
            "HTTP strips whitespace around header values, so no request can carry this exact value: "
            "even the app's own trigger gets 401",
            f"without the whitespace: {digest.stripped_fingerprint}",
        ]
        if local is not None:
            same = local.stripped_fingerprint == digest.stripped_fingerprint
            evidence.append(
                f"local {key}: {local}"
                + ("; equal to the Vercel value once the whitespace is removed" if same else "; a different value")
            )
        return [
            Finding(
                id="vercel-secret-value-whitespace",
                severity=Severity.CRITICAL,
                title=f"The {target} value of {key} {digest.whitespace_problems[0]}",
                evidence=tuple(evidence),
                fix=fix,
                target=target,
            )
        ]
    if local is None or local.fingerprint == digest.fingerprint:
        return []
    evidence = [f"Vercel value ({where}): {digest}", f"local {key}: {local}"]
    if local.stripped_fingerprint == digest.stripped_fingerprint:
        evidence.append("they are equal once surrounding whitespace is removed: the local copy has the fault")
    if digest.problems:
        evidence.append(f"the Vercel value {', '.join(digest.problems)}")
    if serving is not None and var.changed_at and serving.created_at and var.changed_at > serving.created_at:
        evidence.append(f"{serving.label} was built before this value was set and may still hold an older one")
    return [
        Finding(
            id="vercel-secret-value-differs",
            severity=Severity.ERROR,
            title=f"The {target} value of {key} is not the local one: probes and retriggers will get 401",
            evidence=tuple(evidence),
            fix=(
                f"Decide which value is current. To keep the local one: {fix} "
                f"To keep Vercel's: set the local {key} to it and compare fingerprints again."
            ),
            target=target,
        )
    ]


def _stale(project: _Project, var: VercelEnvVar, target: str) -> list[Finding]:
    """vercel-secret-changed-after-deploy: the serving deployment predates the variable's last change."""
    serving = project.serving(target, var)
    changed = var.changed_at
    if serving is None or changed is None or serving.created_at is None or changed <= serving.created_at:
        return []
    added = var.updated_at is None or var.updated_at == var.created_at
    gap = format_duration((changed - serving.created_at).total_seconds())
    evidence = [
        f"{var.key} ({target}, {var.scope}) was {'added' if added else 'last changed'} {_at(changed)}",
        f"the deployment serving {target}, {serving.label}, was built {_at(serving.created_at)}, {gap} earlier",
        "Vercel reads variables when a build starts: "
        + ("this deployment was built without it" if added else "this deployment still has the previous value"),
    ]
    return [
        Finding(
            id="vercel-secret-changed-after-deploy",
            severity=Severity.ERROR,
            title=f"{var.key} changed after the {target} deployment {serving.uid} was built: a redeploy is needed",
            evidence=tuple(evidence),
            fix=f"Redeploy so the build picks up the current value: vercel redeploy {serving.https_url}",
            target=target,
        )
    ]


def _onset(project: _Project, target: str, when: datetime, key: str) -> list[Finding]:
    """vercel-onset-after-deploy: which deployment was live when rows started getting stuck."""
    live, before = project.live_at(target, when)
    if live is None or live.live_since is None:
        return []
    gap = when - live.live_since
    evidence = [
        f"{live.label} went live {_at(live.live_since)} ({live.https_url})",
        f"the first stuck row appeared {_at(when)}, {format_duration(gap.total_seconds())} later",
    ]
    if before is not None:
        evidence.append(f"before it: {before.label}, live since {_at(before.live_since)}")
    later = [d for d in project.ready.get(target, []) if d.live_since is not None and d.live_since > when]
    if later:
        evidence.append(f"{len(later)} READY {target} deployment(s) went live after the onset, newest {later[0].uid}")
    covering = [v for v in project.vars(key, target) if v.covers(target, live.branch)]
    if not covering:
        evidence.append(f"{key} does not apply to this deployment ({target}, branch {live.branch or 'unknown'})")
    for v in covering:
        changed = v.changed_at
        if changed is not None and live.created_at is not None:
            side = "after" if changed > live.created_at else "before"
            evidence.append(f"{key} ({v.scope}) last changed {_at(changed)}, {side} this deployment was built")
    if target == "production" and before is not None:
        fix = (
            f"Compare {live.uid} with {before.uid} (vercel inspect {live.https_url}); if it introduced the "
            f"failure, roll back: vercel rollback {before.https_url}"
        )
    else:
        fix = (
            f"Check what {live.uid} changed (vercel inspect {live.https_url} --logs) and its {key} "
            f"coverage; after fixing the variables, vercel redeploy {live.https_url}"
        )
    return [
        Finding(
            id="vercel-onset-after-deploy",
            severity=Severity.WARNING if gap <= ONSET_SUSPECT_WINDOW else Severity.INFO,
            title=(
                f"The first stuck row appeared {format_duration(gap.total_seconds())} after deployment "
                f"{live.label} went live"
            ),
            evidence=tuple(evidence),
            fix=fix + ".",
            target=target,
        )
    ]


def _bypass(
    project: _Project, targets: Sequence[str], key: str, local_bypass: str | None, protection_seen: bool
) -> list[Finding]:
    """vercel-bypass-missing (info, only behind protection) / vercel-bypass-value-differs."""
    findings: list[Finding] = []
    local = ValueDigest.of(local_bypass) if local_bypass else None
    if protection_seen:
        missing = [t for t in targets if not project.vars(key, t)]
        if missing:
            evidence = [
                "Deployment Protection answered the probes (see the deployment-protection finding)",
                f"{key} is not among the project's variables for: {', '.join(missing)}",
                f"stuckgen's bypass secret: {local}" if local else "stuckgen has no bypass secret configured",
            ]
            findings.append(
                Finding(
                    id="vercel-bypass-missing",
                    severity=Severity.INFO,
                    title="No automation bypass secret is configured for the protected deployments",
                    evidence=tuple(evidence),
                    fix=(
                        "Project Settings > Deployment Protection > Protection Bypass for Automation: create the "
                        f"secret (deployments see it as {key}); have the app's trigger send it as "
                        f"x-vercel-protection-bypass, and give stuckgen the same value ({key})."
                    ),
                    target=None,
                )
            )
    if local is not None:
        for target in targets:
            for var in project.vars(key, target):
                if var.digest is not None and var.digest.fingerprint != local.fingerprint:
                    findings.append(
                        Finding(
                            id="vercel-bypass-value-differs",
                            severity=Severity.WARNING,
                            title=f"The {target} value of {key} is not the bypass secret stuckgen sends",
                            evidence=(f"Vercel value ({target}, {var.scope}): {var.digest}",
                                      f"stuckgen's bypass secret: {local}"),
                            fix=f"Copy the current secret from Project Settings > Deployment Protection into {key}.",
                            target=target,
                        )
                    )
    return findings
