"""What the deployment says: the auth matrix of the process route, read into findings."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stuckgen.doctor.ranking import probe_support
from stuckgen.doctor.report import DoctorReport, RankedFinding

if TYPE_CHECKING:
    from stuckgen.db import Connection


def _id_check(conn: Connection | None, settings: Any, mapping: Any) -> Callable[[str], bool] | None:
    """Whether a probe id matches a row, when the table can be read (a probe must never process real work)."""
    if conn is None or mapping is None:
        return None
    from stuckgen import db as dbmod
    from stuckgen.show import id_exists

    def id_in_use(probe_id: str) -> bool:
        with dbmod.read_tx(conn, settings):
            return id_exists(conn, mapping, probe_id)

    return id_in_use


def probe_findings(report: DoctorReport, settings: Any, conn: Connection | None, http: Any, ranked: list[RankedFinding],
                   *, cookie_header: str | None, cookie_info: Any | None, repeat: int | None, concurrency: int,
                   allow_insecure: bool, now: float, step: Callable[[str], None]) -> list[RankedFinding]:
    """Probe every target; return ``ranked`` with the probe's findings added.

    The probe's own ``secret-whitespace`` (it saw the deployment's answer) replaces the
    configuration's finding of the same id.
    """
    from stuckgen.findings import analyze_probe
    from stuckgen.probe import DEFAULT_REPEAT, probe

    targets = tuple(settings.values.get("base_url") or ())
    step(f"probing {len(targets)} target(s)")
    matrix = probe(http, targets, route=settings.route, secret=settings.internal_secret,
                   cookie_header=cookie_header, bypass_secret=settings.bypass_secret,
                   repeat=repeat or DEFAULT_REPEAT,
                   concurrency=concurrency, timeout=settings.http_timeout, allow_insecure=allow_insecure,
                   id_in_use=_id_check(conn, settings, report.mapping))
    report.probe_matrix = matrix
    report.probe_findings = analyze_probe(matrix, secret=settings.internal_secret, cookie_info=cookie_info, now=now)
    ranked = list(ranked)
    have = {r.finding.id for r in ranked}
    for f in report.probe_findings:
        if f.id in have and f.id == "secret-whitespace":
            ranked = [r for r in ranked if r.finding.id != f.id]
        ranked.append(RankedFinding(support=probe_support(f, report.summary), finding=f))
    return ranked
