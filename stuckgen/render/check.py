"""check output: text, JSON (``stuckgen.check/v1``), OpenMetrics, GitHub annotations, JUnit XML."""

from __future__ import annotations

import json
from collections.abc import Iterator
from xml.sax.saxutils import escape, quoteattr

from stuckgen.checks import CheckResult, metrics
from stuckgen.findings import Severity
from stuckgen.scan import CLASSES

CHECK_SCHEMA = "stuckgen.check/v1"


def check_text_lines(r: CheckResult) -> Iterator[str]:
    for o in r.outcomes:
        yield f"{'ok  ' if o.passed else 'FAIL'} {o.name}: {o.message}"
    yield "result: " + ("FAILED" if r.failed else "healthy")


def check_json_lines(r: CheckResult) -> Iterator[str]:
    doc = {
        "schema": CHECK_SCHEMA,
        "failed": r.failed,
        "checks": [{"name": o.name, "passed": o.passed, "severity": o.severity.label, "message": o.message}
                   for o in r.outcomes],
        "metrics": metrics(r),
        "policy": r.policy.as_dict() if r.policy is not None else None,
    }
    yield json.dumps(doc)


def _esc_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics_lines(r: CheckResult) -> Iterator[str]:
    m = metrics(r)
    yield "# TYPE stuckgen_stuck gauge"
    yield "# HELP stuckgen_stuck Generations stuck past the threshold, by class."
    classes = list(CLASSES) + sorted(c for c in m["by_class"] if c not in CLASSES)
    for c in classes:
        yield f'stuckgen_stuck{{class="{_esc_label(c)}"}} {m["by_class"].get(c, 0)}'
    yield "# TYPE stuckgen_oldest_quiet_seconds gauge"
    yield "# HELP stuckgen_oldest_quiet_seconds Quiet time of the oldest stuck generation."
    yield f"stuckgen_oldest_quiet_seconds {m['oldest_quiet_seconds']:.3f}"
    if m["stuck_rate"] is not None:
        yield "# TYPE stuckgen_stuck_rate gauge"
        yield f"stuckgen_stuck_rate {m['stuck_rate']:.6f}"
    matrix = r.report.probe_matrix
    if matrix is not None:
        yield "# TYPE stuckgen_probe_answers gauge"
        yield "# HELP stuckgen_probe_answers Probe answers by target, mode and HTTP status (0: no answer)."
        for cell in matrix.cells():
            counts = cell.status_counts
            if not counts:
                yield f'stuckgen_probe_answers{{target="{_esc_label(cell.target)}",mode="{cell.mode}",status="0"}} {cell.sent}'
            for status, n in sorted(counts.items()):
                yield f'stuckgen_probe_answers{{target="{_esc_label(cell.target)}",mode="{cell.mode}",status="{status}"}} {n}'
    if m["policy"]:
        yield "# TYPE stuckgen_policy_rows gauge"
        yield "# HELP stuckgen_policy_rows Rows the remediation policy took, by rule and outcome (would-*: dry run)."
        for rule, counts in m["policy"].items():
            for outcome, n in sorted(counts.items()):
                yield f'stuckgen_policy_rows{{rule="{rule}",outcome="{_esc_label(outcome)}"}} {n}'
    yield "# TYPE stuckgen_check_failed gauge"
    yield f"stuckgen_check_failed {1 if r.failed else 0}"
    yield "# EOF"


def _gh_escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def policy_summary(r: CheckResult) -> tuple[list[str], list[str]]:
    """(taken, proposed): the policy's lines for the incident report's Remediation section."""
    taken: list[str] = []
    proposed: list[str] = []
    for o in r.outcomes:
        if o.name.startswith("policy:"):
            (proposed if r.policy is not None and not r.policy.acted else taken).append(f"{o.name}: {o.message}")
    return taken, proposed


def github_annotations(r: CheckResult) -> Iterator[str]:
    for o in r.outcomes:
        if o.passed:
            continue
        level = "error" if o.severity >= Severity.ERROR or o.name.startswith("stuck") else "warning"
        yield f"::{level} title=stuckgen {o.name}::{_gh_escape(o.message)}"


def junit_xml_lines(r: CheckResult) -> Iterator[str]:
    failures = sum(1 for o in r.outcomes if not o.passed)
    yield '<?xml version="1.0" encoding="UTF-8"?>'
    yield f'<testsuites name="stuckgen" tests="{len(r.outcomes)}" failures="{failures}">'
    yield f'  <testsuite name="stuckgen.check" tests="{len(r.outcomes)}" failures="{failures}" errors="0">'
    for o in r.outcomes:
        yield f"    <testcase classname=\"stuckgen\" name={quoteattr(o.name)}>"
        if not o.passed:
            yield f"      <failure message={quoteattr(o.message)} type={quoteattr(o.severity.label)}>{escape(o.message)}</failure>"
        yield "    </testcase>"
    yield "  </testsuite>"
    yield "</testsuites>"
