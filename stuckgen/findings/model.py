"""Findings: a conclusion, its evidence and its fix; how they rank.

``Finding`` is general (``doctor`` and the Vercel analysis build them from other
evidence; ``findings.probe`` from a probe matrix). Findings never contain a secret
or cookie value: secrets appear as ``describe()`` (length and fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class Severity(IntEnum):
    """How bad a finding is; compares as critical > error > warning > info."""

    INFO = 10
    WARNING = 20
    ERROR = 30
    CRITICAL = 40

    def __str__(self) -> str:
        return self.name.lower()

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One conclusion: what is wrong, the evidence for it, and what to do."""

    id: str
    severity: Severity
    title: str
    evidence: tuple[str, ...]
    fix: str
    target: str | None = None


# Order within one severity: security, then the platform, then the app, then inputs.
FINDING_ORDER = (
    "open-route",
    "wrong-secret-accepted",
    "unreachable",
    "platform-error",
    "deployment-protection",
    "redirect",
    "route-missing",
    "method-not-allowed",
    "secret-whitespace",
    "secret-rejected",
    "secret-intermittent",
    "cookie-expired",
    "cookie-rejected",
    "cookie-missing",
    "cookie-oversized",
    "cookie-duplicate",
    "cookie-notes",
    "server-error",
    "timeout",
    "unexpected-answer",
    "probe-inconclusive",
    "modes-skipped",
)


def rank(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first (security findings are the critical ones), then a fixed order by id."""
    order = {fid: i for i, fid in enumerate(FINDING_ORDER)}
    return sorted(findings, key=lambda f: (-f.severity, order.get(f.id, len(order)), f.id, f.target or ""))


def worst(findings: Iterable[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)
