"""Select stuck rows and classify why each is stuck; classes are data (``Rule``), not code.

Stuck: status in the in-flight statuses and no sign of life for longer than the
threshold, where the last sign of life is coalesce(heartbeat, updated, created)
measured with the database's clock. Evidence for each row is extracted in SQL
(a few short values, never the whole parameters document) and matched against
the rules in order; the first rule whose every condition holds names the class.

One module per job; the names the rest of stuckgen uses are re-exported here:

- ``rules``: the classes, ``Rule`` and the default rules, [[rules]] from stuckgen.toml
- ``options``: ``ScanOptions`` (threshold, window, graces) and how settings become them
- ``results``: what a scan yields: ``StuckRow``, ``Summary``, ``BeforeWindow``, ``Estimate``
- ``predicates``: the stuck predicate (``where_stuck``, shared with remediation's compare-and-set),
  the signs of life, the graces, and ``Rule`` as a SQL condition
- ``statements``: the scan statement and the classification statement (remediation's)
- ``classify``: a row's evidence -> ``StuckRow`` with its class and why
- ``window``: what the window holds besides the stuck rows: counts (sampled on large tables),
  the stuck rows created before it, the rows failed at the trigger
- ``advice``: the partial index that serves the scan, when EXPLAIN says it reads the whole table
- ``run``: ``ScanRun``, the streaming scan
"""

from stuckgen.scan.advice import explain_advice
from stuckgen.scan.options import ScanOptions, scan_options
from stuckgen.scan.predicates import (
    alive_reasons, last_sign_sql, past_deadline_sql, rule_sql, step_log_array, where_stuck,
)
from stuckgen.scan.results import Estimate, StuckRow, Summary
from stuckgen.scan.rules import CLASSES, DEFAULT_RULES, Rule, check_classes, rules_from_config, rules_in_force
from stuckgen.scan.run import ScanRun
from stuckgen.scan.statements import build_class_query, build_scan_query
from stuckgen.scan.window import apply_counts, before_window, sample_pct, trigger_failures_in

# The names the rest of stuckgen uses; the modules hold the rest.
__all__ = [
    "CLASSES", "DEFAULT_RULES", "Estimate", "Rule", "ScanOptions", "ScanRun", "StuckRow", "Summary",
    "alive_reasons", "apply_counts", "before_window", "build_class_query", "build_scan_query", "check_classes",
    "explain_advice", "last_sign_sql", "past_deadline_sql", "rule_sql", "rules_from_config", "rules_in_force",
    "sample_pct", "scan_options", "step_log_array", "trigger_failures_in", "where_stuck",
]
