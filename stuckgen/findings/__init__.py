"""Evidence -> ranked findings, each with a stable id, a one-line verdict and a fix.

``model``: ``Finding``, ``Severity`` and how findings rank. ``probe``: a probe
matrix -> findings, one function per finding over a per-target view.
"""

from stuckgen.findings.model import FINDING_ORDER, Finding, Severity, rank, worst
from stuckgen.findings.probe import TARGET_CHECKS, TargetView, analyze_probe, kind

__all__ = ["FINDING_ORDER", "TARGET_CHECKS", "Finding", "Severity", "TargetView", "analyze_probe", "kind", "rank",
           "worst"]
