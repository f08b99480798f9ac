"""Vercel's API records as stuckgen reads them: variables and deployments, parsed defensively.

Secret values never leave the parser: a readable value is reduced at once to a
``ValueDigest`` (length, fingerprint, whitespace faults) and the value itself is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from stuckgen.secrets import fingerprint, hygiene_problems

DEFAULT_TARGETS: frozenset[str] = frozenset({"production", "preview"})
_TARGET_ORDER = ("production", "preview", "development")


def _aware(when: datetime) -> datetime:
    # The app's timestamps are UTC without a zone (Prisma); treat naive as UTC.
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def _target_key(target: str) -> tuple[int, str]:
    return (_TARGET_ORDER.index(target) if target in _TARGET_ORDER else len(_TARGET_ORDER), target)


def _obj(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one: answers are read without trusting their shape."""
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    """A non-empty string, or None for anything else (the API sends null, "" or omits)."""
    if isinstance(value, str) and value.strip():
        return value
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one (the API sends null or omits)."""
    return value if isinstance(value, Mapping) else {}


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
    """One project environment variable, as the API listed it; its value only as a digest.

    ``targets`` holds the standard targets and, for a variable scoped to custom
    environments (``customEnvironmentIds``, with ``target: []``), their ids:
    a deployment's target is the custom environment's id too (see
    ``VercelDeployment.target``), so one lookup serves both.
    """

    key: str
    targets: tuple[str, ...] = ()
    type: str | None = None
    visibility: str | None = None  # "secret" or "config" on newer projects
    git_branch: str | None = None  # None: every branch of the targets
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: str | None = None
    digest: ValueDigest | None = None  # only when the API returned the plain value
    unreadable: str | None = None  # why the value could not be read, once a read was tried

    @classmethod
    def from_json(cls, raw: Any) -> "VercelEnvVar | None":
        """Parse one item of ``envs`` (or the single-variable answer); None when it has no key."""
        if not isinstance(raw, Mapping):
            return None
        key = _text(raw.get("key"))
        if key is None:
            return None
        kind = _text(raw.get("type"))
        visibility = _text(raw.get("visibility"))
        custom = raw.get("customEnvironmentIds")
        custom_ids = _targets(custom) if isinstance(custom, (list, tuple)) else ()
        return cls(
            key=key,
            targets=tuple(dict.fromkeys(_targets(raw.get("target")) + custom_ids)),
            type=kind,
            visibility=visibility.lower() if visibility else None,
            git_branch=_text(raw.get("gitBranch")),
            created_at=_ms_time(raw.get("createdAt")),
            updated_at=_ms_time(raw.get("updatedAt")),
            id=_text(raw.get("id")),
            digest=_plain_value_digest(raw, kind),
        )

    def with_value_from(self, raw: Any) -> "VercelEnvVar":
        """This variable with the digest of the single-variable answer's value, when it holds one."""
        digest = _plain_value_digest(raw, _text(raw.get("type")) if isinstance(raw, Mapping) else None,
                                     single=True)
        return replace(self, digest=digest) if digest is not None else self

    @property
    def sensitive(self) -> bool:
        """Vercel never returns this variable's value, to any token."""
        return (self.type or "").lower() in ("sensitive", "secret") or self.visibility == "secret"

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


def _plain_value_digest(raw: Any, kind: str | None, *, single: bool = False) -> ValueDigest | None:
    """The digest of a value that is the real value; None for ciphertext, absent or sensitive values.

    The list endpoint returns ciphertext (``decrypted: false``) even when asked to
    decrypt (``decrypt=true`` is deprecated); a legacy ``plain`` value is the value.
    The single-variable endpoint returns the decrypted ``value`` when the token may
    read it and no ``value`` at all for sensitive variables (vercel/sdk
    ``GetProjectEnvResponseBody1``/``2``). Comparing ciphertext would be a false alarm.
    """
    if not isinstance(raw, Mapping):
        return None
    value = raw.get("value")
    if not isinstance(value, str) or (kind or "").lower() in ("sensitive", "secret"):
        return None
    decrypted = raw.get("decrypted")
    if decrypted is True or (kind or "").lower() == "plain" or (single and decrypted is None):
        return ValueDigest.of(value)
    return None


@dataclass(frozen=True, kw_only=True)
class VercelDeployment:
    """One deployment as ``/v6/deployments`` (or a project's ``targets``) listed it.

    ``target`` is "production", "preview" (the API says null), or the id of the
    custom environment it was deployed to (``customEnvironment.id``): a custom
    environment is not preview, and variables scoped to it name it by that id.
    """

    uid: str
    url: str | None = None
    target: str = "preview"
    environment: str | None = None  # a custom environment's slug, for people
    state: str | None = None
    ready_substate: str | None = None  # PROMOTED, ROLLING or STAGED (never served production)
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
        meta = _mapping(raw.get("meta"))
        state = _text(raw.get("state")) or _text(raw.get("readyState"))
        substate = _text(raw.get("readySubstate"))
        url = _text(raw.get("url"))
        if url is not None:
            url = url.removeprefix("https://").removeprefix("http://").rstrip("/")
        custom = _mapping(raw.get("customEnvironment"))
        custom_id = _text(custom.get("id"))
        return cls(
            uid=uid,
            url=url,
            target=custom_id.lower() if custom_id else (_text(raw.get("target")) or "preview").lower(),
            environment=(_text(custom.get("slug")) or custom_id) if custom_id else None,
            state=state.upper() if state else None,
            ready_substate=substate.upper() if substate else None,
            created_at=_ms_time(raw.get("created")) or _ms_time(raw.get("createdAt")),
            ready_at=_ms_time(raw.get("ready")) or _ms_time(raw.get("readyAt")),
            branch=_text(meta.get("githubCommitRef")) or _text(meta.get("gitlabCommitRef"))
            or _text(meta.get("bitbucketCommitRef")),
            commit_sha=_text(meta.get("githubCommitSha")),
        )

    @property
    def is_ready(self) -> bool:
        return self.state == "READY"

    @property
    def staged(self) -> bool:
        """Built for production but never served it (``readySubstate: STAGED``)."""
        return self.ready_substate == "STAGED"

    @property
    def live_since(self) -> datetime | None:
        """When it started serving: when it became ready, else when it was created."""
        return self.ready_at or self.created_at

    @property
    def label(self) -> str:
        """``dpl_x (preview, branch feat/y)``."""
        branch = f", branch {self.branch}" if self.branch else ""
        where = f"custom environment {self.environment}" if self.environment else self.target
        return f"{self.uid} ({where}{branch})"

    @property
    def https_url(self) -> str:
        return f"https://{self.url}" if self.url else self.uid


@dataclass(frozen=True, kw_only=True)
class BypassSecret:
    """One Protection Bypass for Automation secret, as its digest only.

    The project's ``protectionBypass`` is keyed by the secret itself (the CLI
    picks the key whose ``scope`` is ``automation-bypass``); ``is_env_var`` marks
    the one deployments receive as ``VERCEL_AUTOMATION_BYPASS_SECRET`` (absent
    means it is that one, per the SDK's ``GetProjectProtectionBypass2``).
    """

    digest: ValueDigest
    scope: str
    is_env_var: bool
    created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class VercelProject:
    """What ``GET /v9/projects/{idOrName}`` says that matters here; no secret in clear."""

    id: str | None = None
    name: str | None = None
    production: VercelDeployment | None = None  # the deployment serving production now
    bypass: tuple[BypassSecret, ...] = ()

    @classmethod
    def from_json(cls, raw: Any) -> "VercelProject | None":
        if not isinstance(raw, Mapping):
            return None
        targets = _mapping(raw.get("targets"))
        production = VercelDeployment.from_json(targets.get("production"))
        if production is not None and production.target != "production":
            production = replace(production, target="production")
        bypass: list[BypassSecret] = []
        entries = raw.get("protectionBypass")
        for secret, meta in (entries.items() if isinstance(entries, Mapping) else ()):
            if not isinstance(secret, str) or not secret or not isinstance(meta, Mapping):
                continue
            scope = _text(meta.get("scope")) or "unknown"
            if scope not in ("automation-bypass", "integration-automation-bypass"):
                continue  # shareable-link and other bypasses do not open the door to a trigger
            bypass.append(BypassSecret(
                digest=ValueDigest.of(secret),
                scope=scope,
                is_env_var=meta.get("isEnvVar") is not False,
                created_at=_ms_time(meta.get("createdAt")),
            ))
        return cls(id=_text(raw.get("id")), name=_text(raw.get("name")), production=production,
                   bypass=tuple(bypass))

    @property
    def automation_bypass(self) -> tuple[BypassSecret, ...]:
        return tuple(b for b in self.bypass if b.scope == "automation-bypass")


@dataclass(frozen=True, kw_only=True)
class VercelEvidence:
    """Everything ``analyze_vercel`` needs, as fetched for one project."""

    envs: tuple[VercelEnvVar, ...] = ()
    deployments: tuple[VercelDeployment, ...] = ()
    project: VercelProject | None = None
    project_error: str | None = None  # why the project (bypass secrets, production) could not be read
    hidden_production: int = 0  # hiddenProductionEnvCount: production variables this token may not see
    custom_environments: tuple[tuple[str, str], ...] = ()  # (id, slug) of the project's custom environments
