"""Job-queue library output (queue mode): scan rows as a table, JSON (``stuckgen.jobs-scan/v1``) or CSV,
and one job's story (``stuckgen.job/v1``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone

from stuckgen.durations import format_duration
from stuckgen.queues import JobScan, JobStory

JOBS_SCAN_SCHEMA = "stuckgen.jobs-scan/v1"
CSV_COLUMNS = ("id", "library", "task", "queue", "class", "state", "quiet_seconds", "attempts", "max_attempts",
               "locked_by", "created_at", "run_at", "locked_at", "expire_in_seconds", "last_error", "why")


def _meta(scan: JobScan) -> dict:
    return {"schema": JOBS_SCAN_SCHEMA, "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "libraries": list(scan.libraries), "tables": list(scan.tables), "threshold_seconds": scan.threshold}


def jobs_json_lines(scan: JobScan) -> Iterator[str]:
    """One JSON document: the libraries, a row per stuck job, and the counts by class and by library."""
    doc = {**_meta(scan), "rows": [j.row() for j in scan.jobs],
           "summary": {"stuck": scan.stuck, "listed": len(scan.jobs), "by_class": dict(sorted(scan.by_class.items())),
                       "libraries": [c.as_dict() for c in scan.census]}}
    yield json.dumps(doc)


def jobs_csv_lines(scan: JobScan) -> Iterator[str]:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for j in scan.jobs:
        w.writerow(j.row())
    yield from buf.getvalue().rstrip("\n").splitlines()


def jobs_table_lines(scan: JobScan, *, width: int = 120) -> Iterator[str]:
    """A plain table, quietest first: id, library, task/queue, class, quiet, attempts, worker, last error."""
    if scan.jobs:
        yield f"{'ID':<38} {'LIBRARY':<16} {'TASK':<16} {'CLASS':<19} {'QUIET':>8} {'ATTEMPTS':>8}  LAST ERROR / WORKER"
        for j in scan.jobs:
            tries = f"{j.attempts}/{j.max_attempts}" if j.attempts is not None else "-"
            tail = j.last_error or (f"worker {j.locked_by}" if j.locked_by else "")
            line = (f"{j.id:<38} {j.library:<16} {(j.task or '-')[:16]:<16} {j.kind:<19} "
                    f"{format_duration(max(0.0, j.quiet_seconds or 0.0)):>8} {tries:>8}  {tail}")
            yield line[:width].rstrip() if width else line
        yield ""
    yield from summary_lines(scan)


def summary_lines(scan: JobScan) -> Iterator[str]:
    where = ", ".join(scan.tables)
    if not scan.stuck:
        yield f"No stuck jobs in {where} (by each library's own rules; threshold {format_duration(scan.threshold)})."
        return
    by = ", ".join(f"{k} {n}" for k, n in sorted(scan.by_class.items(), key=lambda x: (-x[1], x[0])))
    yield f"{scan.stuck} stuck job(s) in {where}: {by}."
    if len(scan.jobs) < scan.stuck:
        yield f"{scan.stuck - len(scan.jobs)} more; use --limit or --format json"
    for c in scan.census:
        for k in sorted(c.counts):
            if k in scan.by_class:
                yield f"  {c.library} {k}: {c.meaning.get(k, k)}"


def story_lines(story: JobStory, *, markdown: bool = False) -> Iterator[str]:
    """One job's story: verdict and why, its fields, and the library's way out when it is stuck."""
    j = story.job
    yield f"### {j.library} job `{j.id}`" if markdown else f"{j.library} job {j.id} ({j.table})"
    yield ""
    yield f"**{story.verdict}**: {story.why}" if markdown else f"{story.verdict}: {story.why}"
    yield ""
    fields = [("task" if j.library == "graphile-worker" else "name", j.task), ("queue", j.queue), ("state", j.state),
              ("attempts", f"{j.attempts}/{j.max_attempts}" if j.attempts is not None else None),
              ("created", _t(j.created_at)),
              ("run_at" if j.library == "graphile-worker" else "start_after", _t(j.run_at)),
              ("locked_at" if j.library == "graphile-worker" else "started_on", _t(j.locked_at)),
              ("locked_by", j.locked_by),
              ("expire_in", format_duration(j.expire_in_seconds) if j.expire_in_seconds is not None else None),
              ("last_error" if j.library == "graphile-worker" else "output", j.last_error)]
    for name, value in fields:
        if value not in (None, ""):
            yield f"- {name}: {value}" if markdown else f"  {name:<12} {value}"
    if story.fix:
        yield ""
        yield f"**fix**: {story.fix}" if markdown else f"fix: {story.fix}"


def story_json_lines(story: JobStory) -> Iterator[str]:
    yield json.dumps(story.as_dict())


def _t(t: datetime | None) -> str | None:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if t is not None else None
