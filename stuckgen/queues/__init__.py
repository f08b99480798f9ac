"""Job-queue libraries that keep job state in their own tables: graphile-worker and pg-boss.

``read``: census, jobs and their classes, scan and one job's story, by each library's own rules
(read-only). ``remediate``: graphile-worker's own admin functions, audited; pg-boss is refused.
"""

from stuckgen.queues.read import (
    GRAPHILE_LOCK_EXPIRY_SECONDS, MEANING, STUCK_KINDS, TABLES, Job, JobScan, JobStory, QueueCensus,
    find_job, fix_for, graphile_census, graphile_jobs, job_findings_evidence, job_story, libraries_in_force,
    pgboss_census, pgboss_jobs, queue_census, require, scan_jobs, stuck_jobs,
)
from stuckgen.queues.remediate import JobOutcome, graphile_remediate

__all__ = [
    "GRAPHILE_LOCK_EXPIRY_SECONDS", "MEANING", "STUCK_KINDS", "TABLES", "Job", "JobOutcome", "JobScan",
    "JobStory", "QueueCensus", "find_job", "fix_for", "graphile_census", "graphile_jobs", "graphile_remediate",
    "job_findings_evidence", "job_story", "libraries_in_force", "pgboss_census", "pgboss_jobs", "queue_census",
    "require", "scan_jobs", "stuck_jobs",
]
