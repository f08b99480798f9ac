"""Telling people, for `check` and `watch`: the notification channels, their client, the heartbeat.

The logic lives in ``stuckgen.notify`` and ``stuckgen.heartbeat``; this builds them from
the settings and reports deliveries and failures on stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from stuckgen.db import Connection
    from stuckgen.heartbeat import Heartbeat
    from stuckgen.notify import Channel, NotifyResult
    from stuckgen.schema import SchemaMapping
    from stuckgen.settings import Settings


def http_client(settings: Settings) -> httpx.Client:
    """The client for notifications and pings: outside services, so proxy variables apply (as for Vercel)."""
    from stuckgen import __version__, http

    return http.client(timeout=settings.http_timeout, trust_env=True, headers={"user-agent": f"stuckgen/{__version__}"})


def channels(settings: Settings, *, allow_insecure: bool) -> list[Channel]:
    from stuckgen.notify import channels_from

    return channels_from(settings, allow_insecure=allow_insecure)


def heartbeat(settings: Settings, client: httpx.Client, *, allow_insecure: bool) -> Heartbeat | None:
    from stuckgen.heartbeat import Heartbeat
    from stuckgen.notify import check_url

    if not settings.heartbeat_url:
        return None
    return Heartbeat(client, check_url(settings.heartbeat_url, option="--heartbeat-url", allow_insecure=allow_insecure))


def send(settings: Settings, conn: Connection, client: httpx.Client | None, chans: list[Channel], *,
         mapping: SchemaMapping, incidents: Any, observed: Any, report: Any = None) -> NotifyResult:
    """Notify on state change over ``conn``; failures are written to stderr and returned."""
    from stuckgen import db
    from stuckgen.audit import audit_log, operator_name
    from stuckgen.notify import StateStore, notify, scope_for

    audit = audit_log(audit_file=settings.audit_file, audit_table=settings.audit_table,
                      default_schema=mapping.db_schema)
    scope = scope_for(settings.database_url, f"{mapping.db_schema}.{mapping.table}")
    result = notify(conn, client, channels=chans, store=StateStore(audit, operator=operator_name(settings.operator)),
                    scope=scope, incidents=incidents, observed=observed, report=report, secrets=settings.secrets(),
                    read_tx=lambda: db.read_tx(conn, settings),
                    write_tx=lambda: db.transaction(conn, read_only=False, statement_timeout=settings.statement_timeout,
                                                    lock_timeout=settings.lock_timeout))
    for d in result.deliveries:
        if d.ok:
            sys.stderr.write(f"stuckgen: notified {d.event.channel}: {d.event.kind} {d.event.cause}\n")
    for msg in result.failed:
        sys.stderr.write(f"stuckgen: notification failed: {msg}\n")
    return result
