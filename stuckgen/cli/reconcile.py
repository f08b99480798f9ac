"""`stuckgen reconcile` (body: stuckgen.commands.reconcile)."""


from typing import TYPE_CHECKING, Annotated, Optional

import typer

from stuckgen.cli._app import Output, setting
from stuckgen.cli.options import (
    AUDIT, DATABASE, DEPLOYMENT, PICK_BY_ID, STUCK_ANY_AGE, command, formats, group, pick_format,
)
from stuckgen.commands import reconcile as core
from stuckgen.session import Session

if TYPE_CHECKING:
    from stuckgen.remediate.runner import Pick

PROVIDER = group(replicate_api_url=Annotated[Optional[str], setting(
    "replicate_api_url", "--provider-url", metavar="URL", help="The provider's API base. Default https://api.replicate.com/v1.")])


@command(PICK_BY_ID, DATABASE, STUCK_ANY_AGE, PROVIDER, DEPLOYMENT, AUDIT)
def reconcile(
    session: Session,
    out: Output,
    pick: "Pick",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, metavar="N",
                                             help="Provider requests in flight at once.")] = 4,
    tries: Annotated[int, typer.Option(
        "--tries", min=1, metavar="N", help="HTTP tries per prediction on timeouts, 429 and 5xx (Retry-After honoured).")] = 3,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Settle the rows the provider finished (succeeded, failed, canceled) through the app "
                        "(dry run unless --yes).")] = False,
    via: Annotated[str, typer.Option(
        "--via", metavar="ROUTE",
        help="How --apply settles a row: sync (the app's POST /api/generations/{id}/sync, as the rows' owner) "
             "or webhook (replay the provider's callback to /api/webhooks/replicate).")] = "sync",
    webhook_signature: Annotated[str, typer.Option(
        "--webhook-signature", metavar="SCHEME",
        help="--via webhook: sign as the provider does (standard: Standard Webhooks) or as the app's route "
             "verifies (app: t=<ts>,v1=<hex>). The key is REPLICATE_WEBHOOK_SECRET.")] = "standard",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --apply: act. Without it: a dry run.")] = False,
    fmt: Annotated[Optional[str], formats(*core.FORMATS)] = None,
) -> int:
    """Ask the model provider how each stuck provider row really ended. Read-only.

    For every stuck row carrying a provider prediction id (parameters.replicatePredictionId),
    GET {provider-url}/predictions/{id} with REPLICATE_API_TOKEN (never printed), with
    bounded concurrency, timeouts and retries (429 and 5xx, Retry-After honoured), and
    give one verdict per row: provider-succeeded-callback-lost, provider-failed-callback-lost,
    provider-canceled, provider-still-running, provider-unknown-prediction,
    provider-unreachable. The first answer refusing the token stops the run.

    With --apply, the rows the provider finished are settled through the app itself,
    never by writing outputs: --via sync calls the app's recovery route as the rows'
    owner (session cookie), --via webhook replays the provider's callback signed with
    REPLICATE_WEBHOOK_SECRET. A dry run unless --yes; each row is re-read just before
    it is sent and skipped if it moved on; every send is audited; afterwards each row
    is re-read and what changed is reported.

    Example:

        REPLICATE_API_TOKEN=r8_... stuckgen reconcile --class awaiting-webhook

        stuckgen reconcile --apply --via webhook --webhook-signature app --url https://app.example.com --yes

        stuckgen reconcile --format json | jq -r '.rows[] | select(.verdict == "provider-succeeded-callback-lost") | .id'

    Exit: 0 every provider row is still running there (or none is stuck; with --apply:
    every finished row was settled), 1 some row needs action (or was not settled), 2
    usage or configuration error (no token), 3 the database, the provider or the
    deployment could not be reached (nothing answered), 130 interrupted.
    """
    return core.run_reconcile(session, out, pick=pick, concurrency=concurrency, tries=tries, apply=apply, via=via, webhook_signature=webhook_signature, yes=yes,
                              fmt=pick_format(fmt, out, core.FORMATS))
