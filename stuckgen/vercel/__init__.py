"""Vercel evidence for ``doctor``: the project's variables and deployments, and what they mean.

- ``records``  the API's records parsed defensively (``VercelEnvVar``, ``VercelDeployment``);
  a readable secret value is reduced at once to a ``ValueDigest`` and dropped.
- ``client``   ``VercelClient``: read-only HTTP over an ``httpx.Client`` the caller builds.
- ``analysis`` ``analyze_vercel``: records -> ranked findings, one function per finding.
"""

from __future__ import annotations

from stuckgen.vercel.analysis import BYPASS_KEY, ONSET_SUSPECT_WINDOW, SECRET_KEY, analyze_evidence, analyze_vercel
from stuckgen.vercel.client import (
    DEFAULT_BASE_URL,
    DEFAULT_RETRY_WAIT,
    MAX_BODY_BYTES,
    MAX_PAGES,
    MAX_RETRY_WAIT,
    PAGE_LIMIT,
    VercelClient,
)
from stuckgen.vercel.records import (
    DEFAULT_TARGETS,
    BypassSecret,
    VercelProject,
    ValueDigest,
    VercelDeployment,
    VercelEnvVar,
    VercelEvidence,
)

__all__ = [
    "BYPASS_KEY",
    "BypassSecret",
    "VercelProject",
    "analyze_evidence",
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRY_WAIT",
    "DEFAULT_TARGETS",
    "MAX_BODY_BYTES",
    "MAX_PAGES",
    "MAX_RETRY_WAIT",
    "ONSET_SUSPECT_WINDOW",
    "PAGE_LIMIT",
    "SECRET_KEY",
    "ValueDigest",
    "VercelClient",
    "VercelDeployment",
    "VercelEnvVar",
    "VercelEvidence",
    "analyze_vercel",
]
