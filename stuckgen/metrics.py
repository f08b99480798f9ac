"""OpenMetrics for a scheduled check, and the atomic file write that keeps them true during an incident.

A metric family is data (name, type, help, unit, samples); ``exposition_lines``
turns families into the OpenMetrics text format: ``# HELP`` and ``# TYPE`` for
every family, ``# UNIT`` where there is one, counter samples ending in
``_total`` by construction, and ``# EOF`` last. ``check_families`` says what a
check measured; with no result (the database could not be read) it still says
when the check ran, how it ended and that the database was down, so a scrape
never shows the last good numbers as if they were current.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stuckgen.errors import ConfigError

TYPES = ("gauge", "counter", "info", "stateset", "unknown")


@dataclass(frozen=True, kw_only=True)
class Sample:
    labels: tuple[tuple[str, str], ...] = ()
    value: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Family:
    """One metric family. ``name`` is the family name: a counter's samples get ``_total`` appended."""

    name: str
    type: str
    help: str
    unit: str | None = None
    samples: tuple[Sample, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown metric type {self.type!r}")
        if self.type == "counter" and self.name.endswith("_total"):
            raise ValueError("a counter family is named without _total; its samples get it")
        if self.unit and not self.name.endswith("_" + self.unit):
            raise ValueError(f"{self.name}: a metric with unit {self.unit!r} must end in _{self.unit}")


def _label_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(float(v))


def exposition_lines(families: Iterable[Family]) -> Iterator[str]:
    """The OpenMetrics text exposition of ``families``, ending with ``# EOF``."""
    for f in families:
        yield f"# HELP {f.name} {_help(f.help)}"
        yield f"# TYPE {f.name} {f.type}"
        if f.unit:
            yield f"# UNIT {f.name} {f.unit}"
        sample_name = f.name + ("_total" if f.type == "counter" else "_info" if f.type == "info" else "")
        for s in f.samples:
            labels = ",".join(f'{k}="{_label_value(v)}"' for k, v in s.labels)
            yield f"{sample_name}{{{labels}}} {_number(s.value)}" if labels else f"{sample_name} {_number(s.value)}"
    yield "# EOF"


def _gauge(name: str, help: str, value: float | None = None, *, unit: str | None = None,
           samples: Iterable[Sample] = ()) -> Family:
    got = tuple(samples) if value is None else (Sample(value=value),)
    return Family(name=name, type="gauge", help=help, unit=unit, samples=got)


def _stuck_families(s: Any, classes: Iterable[str]) -> list[Family]:
    """The scan's side: stuck rows by class, before the window, failed triggers, the oldest, the window and rate."""
    from stuckgen.checks import _all_classes

    # Stuck rows created before the --since window are stuck all the same (they count here too).
    by_class: Mapping[str, int] = _all_classes(s) if s is not None else {}
    older = (s.stuck_before_window or 0) if s is not None else 0
    known = list(classes)
    order = known + sorted(c for c in by_class if c not in known)
    fams = [_gauge("stuckgen_stuck", "Generations stuck past the threshold, by class.", samples=(
        Sample(labels=(("class", c),), value=by_class.get(c, 0)) for c in order))]
    fams.append(_gauge("stuckgen_stuck_rows", "Generations stuck past the threshold, all classes.",
                       (s.stuck + older) if s is not None else 0))
    fams.append(_gauge("stuckgen_stuck_before_window",
                       "Of those, generations created before the --since window.", older))
    fams.append(_gauge("stuckgen_trigger_failures",
                       "Rows whose step log records a failed trigger, by the HTTP status answered and the row's state "
                       "(stuck: still in flight; failed: the app gave up and marked it failed).",
                       samples=(Sample(labels=(("status", str(st)), ("state", state)), value=n)
                                for state, st, n in trigger_failures(s))))
    oldest = s.oldest.quiet_seconds if s is not None and s.oldest is not None else 0.0
    if s is not None and s.before_window is not None and s.before_window.rows:
        oldest = max(oldest, s.before_window.rows[0].quiet_seconds)
    fams.append(_gauge("stuckgen_oldest_quiet_seconds",
                       "How long the oldest stuck generation has shown no sign of life (0: none stuck).",
                       oldest, unit="seconds"))
    created = s.created_in_window if s is not None else None
    fams.append(_gauge("stuckgen_created_in_window", "Generations created within the window (NaN: not counted).",
                       math.nan if created is None else created))
    rate = s.stuck_rate if s is not None else None
    fams.append(_gauge("stuckgen_stuck_rate",
                       "Stuck generations over those created in the window, 0..1 (NaN: none created).",
                       math.nan if rate is None else rate))
    return fams


def _queue_families(queues: Sequence[Any]) -> list[Family]:
    """graphile-worker / pg-boss jobs, by their own rules (queue mode, or beside the app's table)."""
    if not queues:
        return []
    return [_gauge("stuckgen_queue_jobs",
                   "Jobs of job-queue libraries by library and class, read by each library's own rules.",
                   samples=(Sample(labels=(("library", q.library), ("class", k)), value=n)
                            for q in queues for k, n in sorted(q.counts.items()))),
            _gauge("stuckgen_queue_stuck", "Stuck jobs of job-queue libraries, by library.",
                   samples=(Sample(labels=(("library", q.library),), value=q.stuck) for q in queues))]


def _probe_families(report: Any) -> list[Family]:
    """The auth probe's answers and findings, when it ran."""
    matrix = report.probe_matrix
    if matrix is None:
        return []
    answers: list[Sample] = []
    for cell in matrix.cells():
        counts = cell.status_counts
        base = (("target", cell.target), ("mode", str(cell.mode)))
        if not counts:
            answers.append(Sample(labels=(*base, ("status", "0")), value=cell.sent))
        for status, n in sorted(counts.items()):
            answers.append(Sample(labels=(*base, ("status", str(status))), value=n))
    return [_gauge("stuckgen_probe_answers",
                   "Probe answers by target, credential mode and HTTP status (0: no answer).", samples=answers),
            _gauge("stuckgen_probe_findings",
                   "Findings of the auth probe, by finding id, severity and target (1 while present).",
                   samples=(Sample(labels=(("finding", f.id), ("severity", f.severity.label),
                                           ("target", f.target or "")), value=1)
                            for f in report.probe_findings))]


def _policy_families(policy: Any) -> list[Family]:
    """The rows the remediation policy took, when it ran."""
    if policy is None:
        return []
    rows = [Sample(labels=(("rule", rule), ("outcome", outcome)), value=n)
            for rule, r in (("retrigger", policy.retrigger), ("fail", policy.fail)) if r is not None
            for outcome, n in sorted(r.counts.items())]
    return [_gauge("stuckgen_policy_rows",
                   "Rows the remediation policy took in this check, by rule and outcome (would-*: dry run).",
                   samples=rows)]


def check_families(result: Any | None, *, checked_at: float, duration: float, exit_code: int,
                   classes: Iterable[str] = ()) -> list[Family]:
    """The metrics of one check run. ``result`` is a ``checks.CheckResult``, or None when nothing was read."""
    fams: list[Family] = [
        _gauge("stuckgen_check_timestamp_seconds", "When this check ran (Unix time); alert when it stops moving.",
               checked_at, unit="seconds"),
        _gauge("stuckgen_check_duration_seconds", "How long this check took.", duration, unit="seconds"),
        _gauge("stuckgen_check_exit_code",
               "Exit code of this check: 0 healthy, 1 findings, 2 configuration error, 3 unreachable, 130 interrupted.",
               exit_code),
        _gauge("stuckgen_database_up", "1 when the database was read in this check, 0 when it could not be.",
               1 if result is not None else 0),
    ]
    if result is None:
        return fams
    report = result.report
    fams += _stuck_families(report.summary, classes)
    fams += _queue_families(getattr(report, "queues", None) or [])
    fams += _probe_families(report)
    fams += _policy_families(result.policy)
    fams.append(_gauge("stuckgen_check_failed", "1 when this check failed (a threshold crossed or a finding).",
                       1 if result.failed else 0))
    return fams


def trigger_failures(summary: Any) -> list[tuple[str, str, int]]:
    """(state, HTTP status, rows) for failed triggers: stuck rows, and failed rows when the scan counted them."""
    if summary is None:
        return []
    out = [("stuck", str(st), int(n)) for st, n in sorted(summary.trigger_statuses.items(), key=lambda x: str(x[0]))]
    failed = getattr(summary, "failed_trigger_statuses", None) or {}
    out += [("failed", str(st), int(n)) for st, n in sorted(failed.items(), key=lambda x: str(x[0]))]
    return out


def write_atomic(path: str | os.PathLike[str], lines: Iterable[str], *, mode: int = 0o644) -> None:
    """Write ``lines`` to ``path`` so that a reader sees the old file or the new one, never a part.

    The temporary file lives in the same directory (a rename is atomic only
    within one file system) and is named so that node_exporter's textfile
    collector, which reads ``*.prom``, never picks it up; it is removed if
    anything fails. The mode is set explicitly: a umask must not hide the
    metrics from the collector, and they hold no secret.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"--metrics-file: cannot write in {directory}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigError(f"--metrics-file: cannot write {target}: {exc.strerror}") from exc
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
