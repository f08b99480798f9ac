"""The stuck-job rescuer of ``stuckgen check``: retrigger young stuck rows, fail old ones.

In the spirit of job queues' rescuers (Sidekiq, Oban, River): a row stuck past
``retrigger_after`` (but not yet past ``fail_after``) is triggered again, at most
``max_attempts`` times across runs as counted in the audit log; a row stuck past
``fail_after`` is failed with a reason naming the policy. A row whose attempts
are exhausted is left alone until the fail rule takes it.

Selection, triggering and failing are those of ``stuckgen.remediate`` (the same
compare-and-set, batches, audit and circuit breaker); this module only decides
which rows each rule takes. Without ``act`` it is a dry run that says what it
would do: nothing is written, sent or created (not even the audit table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from stuckgen.audit import AuditLog, new_run_id
from stuckgen.db import Connection, transaction
from stuckgen.durations import format_duration
from stuckgen.errors import ConfigError, ExitCode
from stuckgen.remediate import (
    FailOptions, RemediationResult, RetriggerOptions, Selection, check_fail_writes, fail_rows, partition_attempts, plan,
    retrigger_rows, select_rows, table_name,
)
from stuckgen.remediate import safety
from stuckgen.scan import DEFAULT_RULES, Rule, ScanOptions
from stuckgen.schema import SchemaMapping

if TYPE_CHECKING:
    from stuckgen.session import Session


@dataclass(frozen=True, kw_only=True)
class Policy:
    """When to retrigger and when to fail a stuck row (quiet time, in seconds)."""

    retrigger_after: float | None = None
    fail_after: float | None = None
    max_attempts: int = 3
    retrigger_classes: tuple[str, ...] = ()  # unsafe classes retriggered anyway (named explicitly)

    def __post_init__(self) -> None:
        if self.retrigger_after is None and self.fail_after is None:
            raise ConfigError("a remediation policy needs --retrigger-after, --fail-after or both")
        if self.max_attempts < 1:
            raise ConfigError("--max-attempts: must be at least 1")
        if (self.retrigger_after is not None and self.fail_after is not None
                and self.fail_after <= self.retrigger_after):
            raise ConfigError(
                f"--fail-after ({format_duration(self.fail_after)}) must be longer than --retrigger-after "
                f"({format_duration(self.retrigger_after)}): rows are retriggered first, failed later")

    @property
    def fail_reason(self) -> str:
        """The error written to a row the policy fails."""
        tried = (f" after up to {self.max_attempts} retrigger(s) past {format_duration(self.retrigger_after)}"
                 if self.retrigger_after is not None else "")
        return (f"Marked failed by stuckgen check: no sign of life for over {format_duration(self.fail_after or 0)}"
                f"{tried} (policy --fail-after {format_duration(self.fail_after or 0)})")

    def describe(self) -> str:
        parts = []
        if self.retrigger_after is not None:
            parts.append(f"retrigger after {format_duration(self.retrigger_after)} (at most {self.max_attempts} "
                         "attempt(s))")
        if self.fail_after is not None:
            parts.append(f"fail after {format_duration(self.fail_after)}")
        return ", ".join(parts)


@dataclass(frozen=True, kw_only=True)
class PolicyResult:
    """What each rule did (or, in a dry run, would do); None for a rule not configured."""

    policy: Policy
    acted: bool
    retrigger: RemediationResult | None = None
    fail: RemediationResult | None = None

    @property
    def interrupted(self) -> bool:
        return any(r is not None and r.interrupted for r in (self.retrigger, self.fail))

    @property
    def unreachable(self) -> bool:
        return self.retrigger is not None and self.retrigger.exit_code == ExitCode.UNREACHABLE

    def as_dict(self) -> dict[str, Any]:
        def one(r: RemediationResult | None) -> dict[str, Any] | None:
            if r is None:
                return None
            return {"run_id": r.run_id, "dry_run": r.dry_run, "selected": len(r.outcomes),
                    "remediated": r.remediated if not r.dry_run else 0, "counts": r.counts,
                    "stopped": r.stopped, "stop_kind": r.stop_kind, "interrupted": r.interrupted}

        p = self.policy
        return {"retrigger_after": p.retrigger_after, "fail_after": p.fail_after, "max_attempts": p.max_attempts,
                "remediate": self.acted, "retrigger": one(self.retrigger), "fail": one(self.fail)}


def select(conn: Connection, mapping: SchemaMapping, policy: Policy, scan: ScanOptions, *,
           rules: Sequence[Rule] = DEFAULT_RULES) -> tuple[Selection | None, Selection | None]:
    """(rows to retrigger, rows to fail): stuck past each limit; a row past both goes to fail only.

    Runs inside the caller's (read-only) transaction.
    """
    to_fail = (select_rows(conn, mapping, replace(scan, older_than=policy.fail_after), all_stuck=True, rules=rules)
               if policy.fail_after is not None else None)
    to_retrigger = None
    if policy.retrigger_after is not None:
        found = select_rows(conn, mapping, replace(scan, older_than=policy.retrigger_after), all_stuck=True,
                            rules=rules)
        taken = {t.id for t in to_fail.targets} if to_fail is not None else set()
        # Only classes a new trigger cannot harm; the rest are reported as left out, and wait for the fail rule.
        to_retrigger, _left = safety.split(Selection(targets=tuple(t for t in found.targets if t.id not in taken)),
                                           explicit=policy.retrigger_classes)
    return to_retrigger, to_fail


def apply(conn: Connection, mapping: SchemaMapping, policy: Policy, *, scan: ScanOptions, audit: AuditLog, operator: str,
          act: bool, client: Any = None, retrigger: RetriggerOptions | None = None,
          fail: FailOptions | None = None, rules: Sequence[Rule] = DEFAULT_RULES,
          statement_timeout: float = 30.0) -> PolicyResult:
    """Select by the policy and, with ``act``, fail then retrigger; otherwise say what would be done.

    Acting fires production work and is destructive (a fail run can be undone with
    ``stuckgen undo``). ``client``, ``retrigger`` and ``fail`` are needed only
    when acting on the rule they serve; ``audit`` must have been prepared.
    """
    with transaction(conn, read_only=True, statement_timeout=statement_timeout):
        to_retrigger, to_fail = select(conn, mapping, policy, scan, rules=rules)
        # Exhausted rows are reported, never sent: they wait for the fail rule.
        attempts = (audit.attempts(conn, table=table_name(mapping), row_ids=[t.id for t in to_retrigger.targets])
                    if to_retrigger is not None else {})
    tname = table_name(mapping)
    if not act:
        if to_fail is not None:
            # The dry run promises only what the real run can write.
            fail_check = replace(fail or FailOptions(scan=scan), reason=policy.fail_reason)
            check_fail_writes(conn, mapping, to_fail.targets,
                              options=replace(fail_check, scan=replace(fail_check.scan, older_than=policy.fail_after)))
        dry_fail = (plan("fail", to_fail, table=tname, audit=audit.where, operator=operator)
                    if to_fail is not None else None)
        dry_retrigger = None
        if to_retrigger is not None:
            under, exhausted = partition_attempts(to_retrigger.targets, attempts, max_attempts=policy.max_attempts)
            dry_retrigger = plan("retrigger", Selection(targets=tuple(under),
                                                        rejected=tuple(exhausted) + to_retrigger.rejected),
                                 table=tname, audit=audit.where, operator=operator)
        return PolicyResult(policy=policy, acted=False, retrigger=dry_retrigger, fail=dry_fail)

    failed = None
    if to_fail is not None:
        options = fail or FailOptions(scan=scan)
        options = replace(options, scan=replace(options.scan, older_than=policy.fail_after), reason=policy.fail_reason)
        failed = fail_rows(conn, mapping, to_fail.targets, options=options, audit=audit, run_id=new_run_id(),
                           operator=operator)
        if failed.interrupted:
            return PolicyResult(policy=policy, acted=True, fail=failed)
    triggered = None
    if to_retrigger is not None:
        if retrigger is None or client is None:
            raise ConfigError("retriggering needs the deployment URL: pass --url or set STUCKGEN_BASE_URL")
        options_r = replace(retrigger, max_attempts=policy.max_attempts,
                            scan=replace(retrigger.scan, older_than=policy.retrigger_after))
        triggered = retrigger_rows(client, conn, mapping, to_retrigger.targets, options=options_r, audit=audit,
                                   run_id=new_run_id(), operator=operator, rejected=to_retrigger.rejected)
    return PolicyResult(policy=policy, acted=True, retrigger=triggered, fail=failed)


def from_flags(*, retrigger_after: float | None, fail_after: float | None, max_attempts: int,
               act: bool, retrigger_classes: tuple[str, ...] = ()) -> Policy | None:
    """The policy the flags describe; None without a rule (ConfigError when asked to act on none)."""
    if retrigger_after is None and fail_after is None:
        if act:
            raise ConfigError("--remediate needs a policy: --retrigger-after, --fail-after or both",
                              hint="e.g. --retrigger-after 5m --fail-after 30m --remediate")
        return None
    return Policy(retrigger_after=retrigger_after, fail_after=fail_after, max_attempts=max_attempts,
                  retrigger_classes=retrigger_classes)


def run(session: Session, policy: Policy, *, act: bool, endpoint: str | None, wait: float) -> PolicyResult:
    """Apply the policy through the session: its connection, mapping, audit log and (to retrigger) a client.

    ``endpoint`` is None unless acting on retriggers (``Session.endpoint`` checked it before
    anything was read). Fires production work and is destructive when ``act``.
    """
    from stuckgen.remediate.runner import fail_options, retrigger_options

    from stuckgen.queues import libraries_in_force

    if libraries_in_force(session.settings):
        raise ConfigError("check's policy rescues rows of an app table; with queue_library, act on the library's "
                          "jobs with `stuckgen retrigger` / `stuckgen fail` (its own admin functions)")
    mapping = session.mapping(announce=False)  # check's report already names the mapping's gaps
    scan = session.remediation_scan_options()
    audit = session.audit()
    if act:
        session.prepare_audit(audit)
    retrigger = (retrigger_options(session, endpoint=endpoint, scan=scan, allow_insecure=session.allow_insecure,
                                   max_attempts=policy.max_attempts, wait=wait)
                 if endpoint is not None else None)
    client = session.http_client(concurrency=retrigger.concurrency) if retrigger is not None else None
    return apply(session.connection(), mapping, policy, scan=scan, audit=audit, operator=session.operator(),
                 act=act, client=client, retrigger=retrigger, fail=fail_options(session, scan=scan),
                 rules=session.rules(), statement_timeout=session.settings.statement_timeout)
