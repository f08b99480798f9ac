"""The options for telling people (check, watch); the glue lives in ``stuckgen.commands.alerting``
(re-exported here until `watch` imports it from there)."""


from typing import Annotated, Optional

import typer

from stuckgen.cli._app import env_help
from stuckgen.commands.alerting import channels, heartbeat, http_client, send

SlackOpt = Annotated[Optional[str], typer.Option(
    "--slack-webhook", metavar="URL", show_default=False,
    help=env_help("slack_webhook_url", "Slack incoming webhook: one message when an incident starts, gets worse, "
                                       "and is resolved (never printed)."))]
PagerDutyOpt = Annotated[Optional[str], typer.Option(
    "--pagerduty-routing-key", metavar="KEY", show_default=False,
    help=env_help("pagerduty_routing_key", "PagerDuty Events API v2 routing key: trigger per cause, resolve when "
                                           "clean (prefer the environment: a flag is visible in `ps`)."))]
WebhookOpt = Annotated[Optional[str], typer.Option(
    "--notify-webhook", metavar="URL", show_default=False,
    help=env_help("notify_webhook_url", "POST incident events with the JSON report here, signed (Standard "
                                        "Webhooks) when STUCKGEN_NOTIFY_WEBHOOK_SECRET is set."))]

__all__ = ["PagerDutyOpt", "SlackOpt", "WebhookOpt", "channels", "heartbeat", "http_client", "send"]
