"""Vercel's API records as stuckgen reads them: variables and deployments, parsed defensively.

Secret values never leave the parser: a readable value is reduced at once to a
``ValueDigest`` (length, fingerprint, whitespace faults) and the value itself is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
