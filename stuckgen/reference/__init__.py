"""The reference deployment: the incident app on loopback, with named fault scenarios.

    from stuckgen.reference import ReferenceDeployment
    with ReferenceDeployment(dsn, "secret-missing", secret="s3cret") as dep:
        httpx.post(dep.url + "/api/generate", cookies=dep.session_cookie())

Used by the tests, ``stuckgen demo`` and the benchmarks; it only ever listens
on, and sends to, loopback addresses.
"""

from stuckgen.reference.cookies import make_session_cookie
from stuckgen.reference.scenarios import SCENARIOS, Scenario
from stuckgen.reference.server import DeploymentCounters, ReferenceDeployment

__all__ = ["SCENARIOS", "DeploymentCounters", "ReferenceDeployment", "Scenario", "make_session_cookie"]
