"""What doctor learned: the report, its configuration facts and its findings with their support."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stuckgen.findings import Finding, Severity


@dataclass(frozen=True, kw_only=True)
class ConfigFact:
    name: str
    value: str
    source: str


@dataclass(frozen=True, kw_only=True)
class RankedFinding:
    """A finding and how much of the evidence it explains (0..1), used to rank causes."""

    finding: Finding
    support: float


@dataclass(kw_only=True)
class DoctorReport:
    """Everything doctor learned; renderers turn it into text, Markdown or JSON."""

    generated_at: datetime
    config: list[ConfigFact] = field(default_factory=list)
    database: dict[str, Any] = field(default_factory=dict)
    mapping: Any = None
    summary: Any = None  # scan.Summary
    since_seconds: float | None = None
    queues: list[Any] = field(default_factory=list)  # queues.QueueCensus of graphile-worker / pg-boss
    provider_results: str | None = None  # how the app gets provider results back (setting or evidence)  # the scan's window (stuck rows before it are still reported)
    stuck_sample: list[Any] = field(default_factory=list)  # first StuckRows
    waiting_rows: list[Any] = field(default_factory=list)  # awaiting-webhook StuckRows (<= 200) to ask the provider about
    sample_rows: list[Any] = field(default_factory=list)  # the sampled StuckRows (for per-row follow-up reads)
    dead_workers: list[Any] = field(default_factory=list)  # deadline.DeadWorker dicts (with --max-duration)
    step_evidence: list[str] = field(default_factory=list)
    probe_matrix: Any = None
    probe_findings: list[Finding] = field(default_factory=list)
    vercel: dict[str, Any] = field(default_factory=dict)
    provider: dict[str, Any] = field(default_factory=dict)  # reconcile verdicts (stuckgen.reconcile/v1, no rows)
    ranked: list[RankedFinding] = field(default_factory=list)
    remediation: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    timeline: Any = None  # timeline.Timeline, when asked for (the HTML report)
    rules: tuple[Any, ...] = ()  # the classification rules in force (scan.Rule), first match wins

    @property
    def findings(self) -> list[Finding]:
        return [r.finding for r in self.ranked]

    @property
    def worst(self) -> Severity | None:
        return max((r.finding.severity for r in self.ranked), default=None)
