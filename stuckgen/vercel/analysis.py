"""Findings from a Vercel project's variables and deployments: one function per finding.

Values are compared by fingerprint only (``ValueDigest``); nothing here sees a secret.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from stuckgen.durations import format_duration
from stuckgen.findings import Finding, Severity, rank
from stuckgen.vercel.records import (
    DEFAULT_TARGETS,
    ValueDigest,
    VercelDeployment,
    VercelEnvVar,
    VercelEvidence,
    VercelProject,
    _aware,
    _target_key,
)

SECRET_KEY = "INTERNAL_API_SECRET"
BYPASS_KEY = "VERCEL_AUTOMATION_BYPASS_SECRET"
# A deployment that went live this soon before the first stuck row is a suspect.
ONSET_SUSPECT_WINDOW = timedelta(hours=1)


def _at(when: datetime | None) -> str:
    if when is None:
        return "at an unknown time"
    return _aware(when).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _set_fix(key: str, target: str, branch: str | None = None) -> str:
    if branch:
        scope = f" {branch}"
    else:
        scope = " (leave the Git branch empty so every preview branch gets it)" if target == "preview" else ""
    # printf, not echo: echo adds a newline that becomes part of the value.
    return f'printf %s "${key}" | vercel env add {key} {target}{scope}'


def _redeploy_fix(deployment: VercelDeployment | None, target: str) -> str:
    if deployment is None:
        return f"then redeploy {target}: a variable reaches only deployments built after it changed"
    return f"then redeploy {target} (a variable reaches only deployments built after it changed): " \
           f"vercel redeploy {deployment.https_url}"


@dataclass
class _Project:
    """Indexes over one project's evidence, shared by every rule below."""

    envs: Sequence[VercelEnvVar]
    ready: dict[str, list[VercelDeployment]] = field(default_factory=dict)  # newest first
    labels: dict[str, str] = field(default_factory=dict)  # custom environment id -> slug
    rolled_back: list[VercelDeployment] = field(default_factory=list)
    info: VercelProject | None = None
    hidden_production: int = 0

    @classmethod
    def build(
        cls,
        envs: Sequence[VercelEnvVar],
        deployments: Sequence[VercelDeployment],
        *,
        info: VercelProject | None = None,
        hidden_production: int = 0,
    ) -> "_Project":
        """Index the deployments that served: READY, never STAGED, and not rolled back from.

        A production deployment newer than the project's current production one
        (``targets.production``) was rolled back from (or never promoted): it does
        not serve now, and it is not what was live unless nothing newer says so.
        """
        current = info.production if info is not None else None
        listed = list(deployments)
        if current is not None and current.uid not in {d.uid for d in listed}:
            listed.append(current)
        ready: dict[str, list[VercelDeployment]] = {}
        labels: dict[str, str] = {}
        rolled_back: list[VercelDeployment] = []
        for d in listed:
            if d.environment:
                labels[d.target] = d.environment
            if not d.is_ready or d.staged or d.live_since is None:
                continue
            if (d.target == "production" and current is not None and current.live_since is not None
                    and d.uid != current.uid and d.live_since > current.live_since):
                rolled_back.append(d)
                continue
            ready.setdefault(d.target, []).append(d)
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        for items in ready.values():
            items.sort(key=lambda d: d.live_since or epoch, reverse=True)
        return cls(envs=envs, ready=ready, labels=labels, rolled_back=rolled_back, info=info,
                   hidden_production=hidden_production)

    def name(self, target: str) -> str:
        """How a person calls a target: "production", or "custom environment staging"."""
        return f"custom environment {self.labels[target]}" if target in self.labels else target

    def cli_target(self, target: str) -> str:
        """The environment argument ``vercel env add`` takes: a custom environment by its slug."""
        return self.labels.get(target, target)

    def vars(self, key: str, target: str) -> list[VercelEnvVar]:
        return [v for v in self.envs if v.key == key and target in v.targets]

    def serving(self, target: str, var: VercelEnvVar | None = None) -> VercelDeployment | None:
        """The newest READY deployment of ``target`` that ``var`` applies to.

        A branch-scoped variable applies to its branch's deployments; an unscoped
        one to every deployment whose branch has no branch-scoped override.
        """
        if var is None:
            items = self.ready.get(target, [])
            return items[0] if items else None
        overridden = {v.git_branch for v in self.vars(var.key, target) if v.git_branch}
        for d in self.ready.get(target, []):
            if var.git_branch is not None and d.branch == var.git_branch:
                return d
            if var.git_branch is None and d.branch not in overridden:
                return d
        return None

    def live_at(self, target: str, when: datetime) -> tuple[VercelDeployment | None, VercelDeployment | None]:
        """The deployment serving ``target`` at ``when`` and the one before it."""
        items = [d for d in self.ready.get(target, []) if d.live_since is not None and d.live_since <= when]
        return (items[0] if items else None, items[1] if len(items) > 1 else None)


def _where_set(project: _Project, key: str) -> str:
    described = sorted(
        {(t, f"{project.name(t)} ({v.scope})") for v in project.envs if v.key == key for t in v.targets},
        key=lambda pair: _target_key(pair[0]),
    )
    if described:
        return f"{key} is set for: {', '.join(text for _, text in described)}"
    return f"{key} is not set for any target"


def analyze_evidence(evidence: VercelEvidence, **options: Any) -> list[Finding]:
    """``analyze_vercel`` over what ``VercelClient.gather`` fetched."""
    return analyze_vercel(evidence.envs, evidence.deployments, project=evidence.project,
                          project_error=evidence.project_error, hidden_production=evidence.hidden_production,
                          custom_environments=evidence.custom_environments, **options)


def analyze_vercel(
    envs: Sequence[VercelEnvVar],
    deployments: Sequence[VercelDeployment],
    *,
    local_secret: str | None,
    local_bypass: str | None,
    onset: datetime | None,
    targets_in_use: Collection[str] = DEFAULT_TARGETS,
    secret_key: str = SECRET_KEY,
    protection_seen: bool = False,
    project: VercelProject | None = None,
    project_error: str | None = None,
    hidden_production: int = 0,
    custom_environments: Sequence[tuple[str, str]] = (),
) -> list[Finding]:
    """Findings from a project's variables, deployments and settings, ranked most severe first.

    ``onset`` is when the first stuck row appeared (naive means UTC);
    ``protection_seen`` says whether probing met Deployment Protection, which
    is when a missing bypass secret matters. Values are compared by fingerprint.
    Custom environments that have deployments are judged like the targets in use.
    """
    proj = _Project.build(envs, deployments, info=project, hidden_production=hidden_production)
    in_use = set(proj.labels)  # custom environments that have deployments
    for env_id, slug in custom_environments:
        proj.labels.setdefault(env_id, slug)
    when = _aware(onset) if onset is not None else None
    local = ValueDigest.of(local_secret) if local_secret else None
    findings: list[Finding] = []
    wanted = {t.strip().lower() for t in targets_in_use if t.strip()} | in_use
    targets = sorted(wanted, key=_target_key)

    for target in targets:
        live_at_onset = proj.live_at(target, when)[0] if when is not None else None
        findings.extend(_secret_hidden(proj, target, secret_key))
        findings.extend(_secret_missing(proj, target, secret_key, live_at_onset))
        findings.extend(_secret_branch_scoped(proj, target, secret_key, live_at_onset))
        for var in proj.vars(secret_key, target):
            findings.extend(_secret_value_whitespace(proj, var, target, local, secret_key))
            findings.extend(_secret_value_differs(proj, var, target, local, secret_key))
            findings.extend(_secret_changed_after_deploy(proj, var, target))
        if when is not None:
            findings.extend(_onset_after_deploy(proj, target, when, secret_key))
    findings.extend(_secret_value_unread(proj, targets, secret_key, local))

    local_bp = ValueDigest.of(local_bypass) if local_bypass else None
    findings.extend(_bypass_missing(proj, local_bp, protection_seen, project_error))
    findings.extend(_bypass_value_differs(proj, local_bp))
    return rank(findings)


def _secret_hidden(project: _Project, target: str, key: str) -> list[Finding]:
    """vercel-secret-hidden: production variables are hidden from this token, so absence proves nothing."""
    if target != "production" or project.hidden_production <= 0 or project.vars(key, target):
        return []
    return [
        Finding(
            id="vercel-secret-hidden",
            severity=Severity.INFO,
            title=f"This token cannot see production variables, so whether {key} is set for production is unknown",
            evidence=(
                f"the variable list says hiddenProductionEnvCount = {project.hidden_production}: that many "
                "production variables exist but are not shown to this token",
                _where_set(project, key),
            ),
            fix=(
                "Use a token of a member who may see production variables (Owner, or a role with production "
                "environment access), or check Project Settings > Environment Variables > Production by hand."
            ),
            target=target,
        )
    ]


def _secret_missing(
    project: _Project, target: str, key: str, live_at_onset: VercelDeployment | None
) -> list[Finding]:
    """vercel-secret-missing: no variable of ``key`` reaches ``target`` at all."""
    if project.vars(key, target):
        return []
    if target == "production" and project.hidden_production > 0:
        return []  # it may be one of the hidden ones: vercel-secret-hidden says so
    latest = project.serving(target)
    evidence = [
        _where_set(project, key),
        f"the app adds x-internal-secret only when {key} is set, so every internal trigger "
        f"from a {project.name(target)} deployment arrives without it and gets 401",
    ]
    if latest is not None:
        evidence.append(f"latest READY {project.name(target)} deployment: {latest.label}, live since {_at(latest.live_since)}")
    if live_at_onset is not None:
        evidence.append(f"serving {project.name(target)} when the first stuck row appeared: {live_at_onset.label}")
    return [
        Finding(
            id="vercel-secret-missing",
            severity=Severity.CRITICAL,
            title=f"{key} is not set for {project.name(target)} deployments",
            evidence=tuple(evidence),
            fix=f"{_set_fix(key, project.cli_target(target))}; {_redeploy_fix(latest, project.cli_target(target))}.",
            target=target,
        )
    ]


def _secret_branch_scoped(
    project: _Project, target: str, key: str, live_at_onset: VercelDeployment | None
) -> list[Finding]:
    """vercel-secret-branch-scoped: ``key`` reaches ``target`` only on some git branches."""
    found = project.vars(key, target)
    if not found or any(v.git_branch is None for v in found):
        return []
    branches = sorted({v.git_branch for v in found if v.git_branch})
    uncovered = [d for d in project.ready.get(target, []) if d.branch not in branches]
    evidence = [f"{key} for {target} is scoped to git branch {', '.join(branches)} only"]
    if uncovered:
        shown = ", ".join(d.label for d in uncovered[:3])
        more = f" and {len(uncovered) - 3} more" if len(uncovered) > 3 else ""
        evidence.append(f"READY {target} deployments on other branches get no {key}: {shown}{more}")
    hit = False
    if live_at_onset is not None and live_at_onset.branch not in branches:
        hit = True
        evidence.append(
            f"the {target} deployment serving when the first stuck row appeared, {live_at_onset.label}, "
            f"is on another branch and has no {key}"
        )
    return [
        Finding(
            id="vercel-secret-branch-scoped",
            severity=Severity.CRITICAL if hit else Severity.ERROR,
            title=f"{key} is set for {target} only on branch {', '.join(branches)}",
            evidence=tuple(evidence),
            fix=f"Add it for every {target} branch: {_set_fix(key, target)}; "
                f"{_redeploy_fix(uncovered[0] if uncovered else None, target)}.",
            target=target,
        )
    ]


def _replace_fix(project: _Project, var: VercelEnvVar, target: str, key: str) -> str:
    """Remove and re-add one variable's value, then redeploy what it serves."""
    return (
        f"vercel env rm {key} {target}{' ' + var.git_branch if var.git_branch else ''}, then "
        f"{_set_fix(key, target, var.git_branch)}; {_redeploy_fix(project.serving(target, var), target)}."
    )


def _secret_value_whitespace(
    project: _Project, var: VercelEnvVar, target: str, local: ValueDigest | None, key: str
) -> list[Finding]:
    """vercel-secret-value-whitespace: Vercel's value carries whitespace no header can carry."""
    digest = var.digest
    if digest is None or not digest.whitespace_problems:
        return []
    where = f"{target}, {var.scope}"
    evidence = [
        f"Vercel value ({where}): {digest}, which {', '.join(digest.problems)}",
        "HTTP strips whitespace around header values, so no request can carry this exact value: "
        "even the app's own trigger gets 401",
        f"without the whitespace: {digest.stripped_fingerprint}",
    ]
    if local is not None:
        same = local.stripped_fingerprint == digest.stripped_fingerprint
        evidence.append(
            f"local {key}: {local}"
            + ("; equal to the Vercel value once the whitespace is removed" if same else "; a different value")
        )
    return [
        Finding(
            id="vercel-secret-value-whitespace",
            severity=Severity.CRITICAL,
            title=f"The {target} value of {key} {digest.whitespace_problems[0]}",
            evidence=tuple(evidence),
            fix=_replace_fix(project, var, target, key),
            target=target,
        )
    ]


def _secret_value_differs(
    project: _Project, var: VercelEnvVar, target: str, local: ValueDigest | None, key: str
) -> list[Finding]:
    """vercel-secret-value-differs: Vercel's value is not the local one (whitespace faults reported apart)."""
    digest = var.digest
    if digest is None or digest.whitespace_problems or local is None or local.fingerprint == digest.fingerprint:
        return []
    where = f"{target}, {var.scope}"
    serving = project.serving(target, var)
    fix = _replace_fix(project, var, target, key)
    evidence = [f"Vercel value ({where}): {digest}", f"local {key}: {local}"]
    if local.stripped_fingerprint == digest.stripped_fingerprint:
        evidence.append("they are equal once surrounding whitespace is removed: the local copy has the fault")
    if digest.problems:
        evidence.append(f"the Vercel value {', '.join(digest.problems)}")
    if serving is not None and var.changed_at and serving.created_at and var.changed_at > serving.created_at:
        evidence.append(f"{serving.label} was built before this value was set and may still hold an older one")
    return [
        Finding(
            id="vercel-secret-value-differs",
            severity=Severity.ERROR,
            title=f"The {target} value of {key} is not the local one: probes and retriggers will get 401",
            evidence=tuple(evidence),
            fix=(
                f"Decide which value is current. To keep the local one: {fix} "
                f"To keep Vercel's: set the local {key} to it and compare fingerprints again."
            ),
            target=target,
        )
    ]


def _secret_changed_after_deploy(project: _Project, var: VercelEnvVar, target: str) -> list[Finding]:
    """vercel-secret-changed-after-deploy: the serving deployment predates the variable's last change."""
    serving = project.serving(target, var)
    changed = var.changed_at
    if serving is None or changed is None or serving.created_at is None or changed <= serving.created_at:
        return []
    added = var.updated_at is None or var.updated_at == var.created_at
    gap = format_duration((changed - serving.created_at).total_seconds())
    evidence = [
        f"{var.key} ({target}, {var.scope}) was {'added' if added else 'last changed'} {_at(changed)}",
        f"the deployment serving {target}, {serving.label}, was built {_at(serving.created_at)}, {gap} earlier",
        "Vercel reads variables when a build starts: "
        + ("this deployment was built without it" if added else "this deployment still has the previous value"),
    ]
    return [
        Finding(
            id="vercel-secret-changed-after-deploy",
            severity=Severity.ERROR,
            title=f"{var.key} changed after the {target} deployment {serving.uid} was built: a redeploy is needed",
            evidence=tuple(evidence),
            fix=f"Redeploy so the build picks up the current value: vercel redeploy {serving.https_url}",
            target=target,
        )
    ]


def _onset_after_deploy(project: _Project, target: str, when: datetime, key: str) -> list[Finding]:
    """vercel-onset-after-deploy: which deployment was live when rows started getting stuck."""
    live, before = project.live_at(target, when)
    if live is None or live.live_since is None:
        return []
    gap = when - live.live_since
    evidence = [
        f"{live.label} went live {_at(live.live_since)} ({live.https_url})",
        f"the first stuck row appeared {_at(when)}, {format_duration(gap.total_seconds())} later",
    ]
    if before is not None:
        evidence.append(f"before it: {before.label}, live since {_at(before.live_since)}")
    if target == "production":
        for d in project.rolled_back[:3]:
            evidence.append(f"{d.label} is newer but does not serve production (rolled back or never promoted)")
    later = [d for d in project.ready.get(target, []) if d.live_since is not None and d.live_since > when]
    if later:
        evidence.append(f"{len(later)} READY {target} deployment(s) went live after the onset, newest {later[0].uid}")
    covering = [v for v in project.vars(key, target) if v.covers(target, live.branch)]
    if not covering:
        evidence.append(f"{key} does not apply to this deployment ({target}, branch {live.branch or 'unknown'})")
    for v in covering:
        changed = v.changed_at
        if changed is not None and live.created_at is not None:
            side = "after" if changed > live.created_at else "before"
            evidence.append(f"{key} ({v.scope}) last changed {_at(changed)}, {side} this deployment was built")
    if target == "production" and before is not None:
        fix = (
            f"Compare {live.uid} with {before.uid} (vercel inspect {live.https_url}); if it introduced the "
            f"failure, roll back: vercel rollback {before.https_url}"
        )
    else:
        fix = (
            f"Check what {live.uid} changed (vercel inspect {live.https_url} --logs) and its {key} "
            f"coverage; after fixing the variables, vercel redeploy {live.https_url}"
        )
    return [
        Finding(
            id="vercel-onset-after-deploy",
            severity=Severity.WARNING if gap <= ONSET_SUSPECT_WINDOW else Severity.INFO,
            title=(
                f"The first stuck row appeared {format_duration(gap.total_seconds())} after deployment "
                f"{live.label} went live"
            ),
            evidence=tuple(evidence),
            fix=fix + ".",
            target=target,
        )
    ]


def _secret_value_unread(
    project: _Project, targets: Sequence[str], key: str, local: ValueDigest | None
) -> list[Finding]:
    """vercel-secret-value-unread: values that could not be compared, and why (only with a local copy)."""
    if local is None:
        return []
    # Only reads that were tried (or could never succeed): a caller that did not ask for values did not fail.
    unread = [(t, v) for t in targets for v in project.vars(key, t)
              if v.digest is None and (v.unreadable is not None or v.sensitive)]
    if not unread:
        return []
    evidence = [
        f"{project.name(t)} ({v.scope}): not compared: {v.unreadable or 'it is a sensitive variable'}" for t, v in unread
    ]
    evidence.append(f"local {key}: {local}")
    sensitive = any(v.sensitive for _, v in unread)
    return [
        Finding(
            id="vercel-secret-value-unread",
            severity=Severity.INFO,
            title=f"stuckgen could not compare Vercel's value of {key} with the local one",
            evidence=tuple(evidence),
            fix=(
                ("A sensitive variable cannot be read back by anyone: if in doubt, set it again from the local copy "
                 f"({_set_fix(key, 'production')} --sensitive) and redeploy. " if sensitive else "")
                + "A token that may read the project's variables (and a non-sensitive variable) lets doctor "
                  "compare fingerprints."
            ),
            target=None,
        )
    ]


_BYPASS_REDEPLOY = (
    "Vercel injects VERCEL_AUTOMATION_BYPASS_SECRET at build time: deployments built before the secret was "
    "created or regenerated carry the old one until they are redeployed."
)


def _bypass_missing(
    project: _Project, local: ValueDigest | None, protection_seen: bool, project_error: str | None
) -> list[Finding]:
    """vercel-bypass-missing (info): behind Deployment Protection, and no automation bypass secret exists.

    The secrets live in the project's ``protectionBypass`` (what the CLI reads), not
    among its variables: ``VERCEL_AUTOMATION_BYPASS_SECRET`` is a system variable
    injected at build time. When the project could not be read, say so instead.
    """
    if not protection_seen:
        return []
    ours = f"stuckgen's bypass secret: {local}" if local else "stuckgen has no bypass secret configured"
    if project.info is None:
        return [
            Finding(
                id="vercel-bypass-unknown",
                severity=Severity.INFO,
                title="Deployment Protection answered, and the project's bypass secrets could not be read",
                evidence=(
                    "Deployment Protection answered the probes (see the deployment-protection finding)",
                    f"reading the project failed: {project_error or 'not attempted'}",
                    ours,
                ),
                fix=(
                    "Check Project Settings > Deployment Protection > Protection Bypass for Automation by hand, "
                    "or give doctor a token that may read the project."
                ),
                target=None,
            )
        ]
    if project.info.automation_bypass:
        return []
    return [
        Finding(
            id="vercel-bypass-missing",
            severity=Severity.INFO,
            title="No automation bypass secret is configured for the protected deployments",
            evidence=(
                "Deployment Protection answered the probes (see the deployment-protection finding)",
                "the project's protectionBypass holds no secret of scope automation-bypass",
                ours,
            ),
            fix=(
                "Project Settings > Deployment Protection > Protection Bypass for Automation: create the "
                "secret (deployments see it as VERCEL_AUTOMATION_BYPASS_SECRET); have the app's trigger send it as "
                "x-vercel-protection-bypass, give stuckgen the same value, and redeploy. " + _BYPASS_REDEPLOY
            ),
            target=None,
        )
    ]


def _bypass_value_differs(project: _Project, local: ValueDigest | None) -> list[Finding]:
    """vercel-bypass-value-differs: stuckgen's bypass secret is none of the project's automation secrets."""
    secrets = project.info.automation_bypass if project.info is not None else ()
    if local is None or not secrets or any(b.digest.fingerprint == local.fingerprint for b in secrets):
        return []
    evidence = [
        f"project automation bypass secret{' (the one deployments get)' if b.is_env_var else ''}: {b.digest}"
        + (f", created {_at(b.created_at)}" if b.created_at else "")
        for b in secrets
    ]
    evidence.append(f"stuckgen's bypass secret: {local}")
    if any(b.digest.stripped_fingerprint == local.stripped_fingerprint for b in secrets):
        evidence.append("equal to one of them once surrounding whitespace is removed: the local copy has the fault")
    production = project.serving("production")
    current = next((b for b in secrets if b.is_env_var), None)
    if (current is not None and current.created_at and production is not None and production.created_at
            and current.created_at > production.created_at):
        evidence.append(
            f"the deployment serving production, {production.label}, was built before this secret was created: "
            "its VERCEL_AUTOMATION_BYPASS_SECRET is an older one"
        )
    return [
        Finding(
            id="vercel-bypass-value-differs",
            severity=Severity.WARNING,
            title="stuckgen's bypass secret is not one of the project's automation bypass secrets",
            evidence=tuple(evidence),
            fix=(
                "Copy the current secret from Project Settings > Deployment Protection > Protection Bypass for "
                "Automation into stuckgen's VERCEL_AUTOMATION_BYPASS_SECRET. " + _BYPASS_REDEPLOY
                + (f" Redeploy: vercel redeploy {production.https_url}" if production is not None else "")
            ),
            target=None,
        )
    ]
