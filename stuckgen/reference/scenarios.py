"""Fault scenarios of the reference deployment, as data.

Each scenario is a set of switches the server reads; none of them is a
special case in the request handlers beyond reading its switch. The
``expected_finding`` is what ``probe-auth`` should name against the scenario
(None: the auth path is fine and the fault is only visible in the database,
which is ``scan``'s and ``doctor``'s job).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stuckgen.errors import ConfigError

# How the deployment's INTERNAL_API_SECRET relates to the operator's value:
#   same              identical;
#   missing           the variable is not set for this deployment;
#   different         another value (set for another target, or rotated); the
#                     trigger's sender holds the operator's value;
#   trailing-newline  the operator's value plus "\n", as stored by
#                     ``echo "$SECRET" | vercel env add``. HTTP strips
#                     whitespace from header values, so no request can ever
#                     match it, including the app's own trigger.
SecretTransform = Literal["same", "missing", "different", "trailing-newline"]


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """Switches that make the reference deployment fail one particular way."""

    name: str
    description: str
    secret_value_transform: SecretTransform = "same"
    # Fraction of "instances" that have the secret; requests are spread over
    # ``instances`` round-robin so runs are deterministic.
    secret_fraction: float = 1.0
    instances: int = 2
    protected: bool = False  # Vercel Deployment Protection in front of the app
    redirect: int | None = None  # process route answers this 3xx to a second server
    cookie_expired: bool = False  # the deployment issues already expired sessions
    drop_trigger: bool = False  # /api/generate never calls the process route
    crash_after_heartbeats: int | None = None  # worker stops silently after N heartbeats
    latency: float = 0.0  # seconds added to every request
    # Fraction of process-route requests that hang (until the hang time or
    # stop), spread evenly over the request sequence.
    timeout_fraction: float = 0.0
    # USE_REPLICATE_WEBHOOKS=true: generations go to the model provider with a webhook
    # (needs a provider: ReferenceDeployment(provider_url=..., provider_token=...)).
    use_webhooks: bool = False
    # The deployment holds REPLICATE_WEBHOOK_SECRET (its webhook route then verifies signatures).
    webhook_secret_set: bool = False
    # The app as written today: after the trigger's third non-OK answer the row is marked failed.
    mark_failed: bool = False
    expected_finding: str | None = None
    # The cause ``doctor`` must rank first against this scenario (None: nothing is wrong).
    # ``demo`` exits 0 only when its diagnosis names it: anything else is a bug in stuckgen.
    planted: str | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="healthy",
            description="Everything works: the trigger is accepted, rows complete with an output.",
        ),
        Scenario(
            name="secret-missing",
            description="INTERNAL_API_SECRET is not set for this deployment: every internal call gets 401.",
            secret_value_transform="missing",
            expected_finding="secret-rejected",
            planted="secret-rejected",
        ),
        Scenario(
            name="secret-mismatch",
            description=(
                "The process route's deployment holds a different INTERNAL_API_SECRET than the sender "
                "(the operator, or a preview triggering production through the app URL): every internal call gets 401."
            ),
            secret_value_transform="different",
            expected_finding="secret-rejected",
            planted="secret-rejected",
        ),
        Scenario(
            name="secret-missing-marked-failed",
            description=(
                "The app as written today: INTERNAL_API_SECRET is missing, every trigger gets 401, and after "
                "the third the generate route marks the row failed ('Failed to trigger processing: 401 "
                "Unauthorized'). Nothing stays in processing: the incident is in the failed rows."
            ),
            secret_value_transform="missing",
            mark_failed=True,
            expected_finding="secret-rejected",
            planted="secret-rejected",
        ),
        Scenario(
            name="secret-whitespace",
            description=(
                "The deployment's value is the operator's plus a trailing newline (echo | vercel env add); "
                "headers cannot carry it, so every internal call gets 401. Probe with the value as pulled "
                "(with the newline) to see the hygiene finding."
            ),
            secret_value_transform="trailing-newline",
            expected_finding="secret-whitespace",
            planted="secret-whitespace",
        ),
        Scenario(
            name="intermittent",
            description="Half of the instances lack the secret: some triggers pass, some get 401.",
            secret_fraction=0.5,
            instances=2,
            expected_finding="secret-intermittent",
            planted="secret-intermittent",
        ),
        Scenario(
            name="protected",
            description=(
                "Vercel Deployment Protection answers before the app: 401 HTML + _vercel_sso_nonce, "
                "or a 307 to vercel.com/sso-api for browsers; x-vercel-protection-bypass passes."
            ),
            protected=True,
            expected_finding="deployment-protection",
            planted="deployment-protection",
        ),
        Scenario(
            name="redirect",
            description=(
                "The process route 308-redirects to a second host:port; anything following it arrives "
                "there without the secret or cookies and gets 401."
            ),
            redirect=308,
            expected_finding="redirect",
            planted="redirect",
        ),
        Scenario(
            name="cookie-expired",
            description="The session cookies the deployment issues are already expired: the cookie path gets 401.",
            cookie_expired=True,
            expected_finding="cookie-expired",
            planted="cookie-expired",
        ),
        Scenario(
            name="dropped-trigger",
            description="Rows are created but the trigger is never sent: they stay at generate:create.",
            drop_trigger=True,
            planted="stuck-never-started",
        ),
        Scenario(
            name="worker-crash",
            description="The process call is accepted, heartbeats twice, then the worker stops silently.",
            crash_after_heartbeats=2,
            planted="stuck-stalled",
        ),
        Scenario(
            name="lost-callback",
            description=(
                "Generations go to the model provider with a webhook; the deployment holds "
                "REPLICATE_WEBHOOK_SECRET and verifies it the way the app does (t=,v1=hex), which no "
                "Replicate signature passes: every callback gets 401 and rows wait forever."
            ),
            use_webhooks=True,
            webhook_secret_set=True,
            planted="webhook-signature-rejected",
        ),
        Scenario(
            name="slow",
            description="Every request is slow and a quarter of process calls hang past any sane timeout.",
            latency=0.05,
            timeout_fraction=0.25,
            expected_finding="timeout",
            planted="timeout",
        ),
    )
}


def get_scenario(scenario: str | Scenario) -> Scenario:
    """The Scenario named ``scenario`` (or ``scenario`` itself); ConfigError lists the names."""
    if isinstance(scenario, Scenario):
        return scenario
    try:
        return SCENARIOS[scenario]
    except KeyError:
        raise ConfigError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}") from None


def spread(index: int, fraction: float) -> bool:
    """Whether the ``index``-th item of a sequence is among ``fraction`` of them, evenly spread.

    Bresenham-style: over any window the count is within one of
    ``fraction * len``, and the pattern is deterministic.
    """
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    return int((index + 1) * fraction) > int(index * fraction)
