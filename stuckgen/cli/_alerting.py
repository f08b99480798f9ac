"""Options and glue shared by `check` and `watch` for telling people: notifications and the heartbeat.

The logic lives in the core (stuckgen.notify, stuckgen.heartbeat); this module
only builds the channels and clients from settings and reports failures on stderr.
"""


import sys
from typing import Annotated, Any, Optional

import typer

from stuckgen.cli._app import env_help

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
HeartbeatOpt = Annotated[Optional[str], typer.Option(
    "--heartbeat-url", metavar="URL", show_default=False,
    help=env_help("heartbeat_url", "Cron monitor ping URL: /start when the run starts, then the URL itself "
                                   "(exit 0) or /<exit code> (healthchecks.io convention)."))]


def http_client(settings: Any) -> Any:
    """The client for notifications and pings: outside services, so proxy variables apply (as for Vercel)."""
    from stuckgen import __version__, http

    return http.client(timeout=settings.http_timeout, trust_env=True, headers={"user-agent": f"stuckgen/{__version__}"})


def channels(settings: Any, *, allow_insecure: bool) -> list[Any]:
    from stuckgen.notify import channels_from

    return channels_from(settings, allow_insecure=allow_insecure)


def heartbeat(settings: Any, client: Any, *, allow_insecure: bool) -> Any:
    from stuckgen.heartbeat import Heartbeat
    from stuckgen.notify import check_url

    if not settings.heartbeat_url:
        return None
    return Heartbeat(client, check_url(settings.heartbeat_url, option="--heartbeat-url", allow_insecure=allow_insecure))


def store(settings: Any, mapping: Any) -> Any:
    from stuckgen.audit import audit_log, operator_name
    from stuckgen.notify import StateStore

    audit = audit_log(audit_file=settings.audit_file, audit_table=settings.audit_table,
                      default_schema=mapping.db_schema)
    return StateStore(audit, operator=operator_name(settings.operator))


def send(settings: Any, conn: Any, client: Any, chans: list[Any], *, mapping: Any, incidents: Any, observed: Any,
         report: Any = None) -> Any:
    """Notify on state change over ``conn``; failures are written to stderr and returned."""
    from stuckgen import db
    from stuckgen.notify import notify, scope_for

    scope = scope_for(settings.database_url, f"{mapping.db_schema}.{mapping.table}")
    result = notify(conn, client, channels=chans, store=store(settings, mapping), scope=scope, incidents=incidents,
                    observed=observed, report=report, secrets=settings.secrets(),
                    read_tx=lambda: db.read_tx(conn, settings),
                    write_tx=lambda: db.transaction(conn, read_only=False, statement_timeout=settings.statement_timeout,
                                                    lock_timeout=settings.lock_timeout))
    for d in result.deliveries:
        if d.ok:
            sys.stderr.write(f"stuckgen: notified {d.event.channel}: {d.event.kind} {d.event.cause}\n")
    for msg in result.failed:
        sys.stderr.write(f"stuckgen: notification failed: {msg}\n")
    return result
