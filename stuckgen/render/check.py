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
    yield json.dumps(check_document(r))


def check_document(r: CheckResult) -> dict:
    """The ``stuckgen.check/v1`` document (also the body of webhook notifications)."""
    return {
        "schema": CHECK_SCHEMA,
        "failed": r.failed,
        "checks": [{"name": o.name, "passed": o.passed, "severity": o.severity.label, "message": o.message}
                   for o in r.outcomes],
        "metrics": metrics(r),
        "policy": r.policy.as_dict() if r.policy is not None else None,
    }


def openmetrics_lines(r: CheckResult, *, checked_at: float, duration: float, exit_code: int) -> Iterator[str]:
    """The check as OpenMetrics (see ``stuckgen.metrics`` for the families)."""
    from stuckgen.metrics import check_families, exposition_lines

    return exposition_lines(check_families(r, checked_at=checked_at, duration=duration, exit_code=exit_code,
                                           classes=CLASSES))


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
