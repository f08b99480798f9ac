"""How the app gets a provider's result back, and what the provider says about the rows waiting on it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stuckgen.doctor.report import DoctorReport, RankedFinding
from stuckgen.errors import StuckgenError
from stuckgen.findings import Finding, Severity

if TYPE_CHECKING:
    from stuckgen.db import Connection


def provider_mode(settings: Any, mapping: Any, rows: Sequence[Any]) -> str:
    """How this app learns a provider's result: the setting, else what the step log shows, else unknown."""
    mode = str(settings.values.get("provider_results") or "auto")
    if mode != "auto":
        return mode
    if mapping is not None and mapping.has("step_log") and any(
            r.last_step == "webhook:submitted" or (r.why or "").startswith("handed to an outside provider")
            for r in rows if r.cls == "awaiting-webhook"):
        return "webhook"
    return "unknown"


def provider_advice(mode: str, *, token: bool) -> tuple[str, str]:
    """(cause, fix) for rows waiting on the provider, for the way this app gets results back."""
    ask = ("`stuckgen reconcile` asks the provider how each prediction ended" if token else
           "set REPLICATE_API_TOKEN and `stuckgen reconcile` asks the provider how each prediction ended")
    if mode == "webhook":
        return ("the provider's webhook never arrived (wrong callback URL, or the webhook route is behind protection)",
                f"check the webhook URL the app registers and that it is reachable without auth; {ask}, and "
                "`stuckgen reconcile --apply --via webhook` replays the lost callbacks (or `--via sync` settles "
                "them through the app's sync route, POST /api/generations/{id}/sync); not a retrigger: the "
                "process route skips them and only rewrites their heartbeat")
    if mode == "sync":
        return ("nothing called the app's sync route for these rows, so their result was never fetched",
                f"{ask}; `stuckgen reconcile --apply --via sync` settles them through the app's sync route")
    if mode == "polling":
        return ("the app only learns a result while a browser polls for it, and nobody had these pages open",
                f"{ask}; then open the rows in the app (its poll settles them) or `stuckgen fail` the ones "
                "the provider never finished; a webhook or a scheduled sync would settle them without a browser")
    if mode == "none":
        return ("nothing in the app brings the provider's result back once it is handed over",
                f"{ask}; add a webhook route or a scheduled sync, and `stuckgen fail` what the provider never finished")
    return ("rows hold a provider id and nothing finished them: the way the app gets results back "
            "(webhook, sync route, browser polling) did not run for them",
            f"{ask}; say how the app gets results (provider_results = webhook | sync | polling | none) "
            "for a precise fix")



def provider_evidence(report: DoctorReport, settings: Any, conn: Connection, provider_http: Any, rows: Sequence[Any], *,
                       http: Any | None, allow_insecure: bool, step: Callable[[str], None]) -> list[RankedFinding]:
    """Ask the provider about the stuck provider rows (at most 200) and probe the webhook route when callbacks were lost."""
    from datetime import timezone

    from stuckgen import db as dbmod
    from stuckgen import reconcile
    from stuckgen.replicate import ProviderOptions

    token = settings.values.get("replicate_api_token")
    if not token:
        return []
    with dbmod.read_tx(conn, settings):
        prows = reconcile.rows_by_ids(conn, report.mapping, list(rows)) \
            if report.mapping is not None and report.mapping.has("webhook") else []
    if not prows:
        return []
    step(f"asking the provider about {len(prows)} row(s)")
    options = ProviderOptions(api_url=str(settings.values.get("replicate_api_url")).rstrip("/"), token=token,
                              timeout=settings.http_timeout, allow_insecure=allow_insecure)
    try:
        result = reconcile.reconcile_rows(provider_http, prows, options=options, now=datetime.now(timezone.utc),
                                          stuck_rows=report.summary.stuck, without_prediction=0)
    except StuckgenError as exc:
        report.provider = {"consulted": False, "error": exc.message}
        return [RankedFinding(support=0.1, finding=Finding(
            id="provider-unreachable", severity=Severity.INFO, title="the provider could not be asked",
            evidence=(exc.message,), fix=exc.hint or "check STUCKGEN_REPLICATE_API_URL"))]
    report.provider = {"consulted": True, **result.as_dict(rows=False)}
    probe = None
    lost = sum(1 for v in result.verdicts if v.verdict in (reconcile.SUCCEEDED, reconcile.FAILED))
    targets = tuple(settings.values.get("base_url") or ())
    if lost and http is not None and targets:
        step("probing the webhook route")
        probe = reconcile.probe_webhook(http, targets[0], secret=settings.values.get("replicate_webhook_secret"),
                                        bypass_secret=settings.values.get("bypass_secret"))
        report.provider["webhook_probe"] = {"url": probe.url, "http_status": probe.http_status, "kind": probe.kind,
                                            "detail": probe.detail, "signed": probe.signed}
    return [RankedFinding(support=s, finding=f)
            for s, f in reconcile.provider_findings(result, probe, stuck_total=report.summary.stuck)]
