"""Glue from Settings to the database core: connection, mapping config, scan options, rules."""


from typing import Any

from stuckgen.settings import Settings


def connect(settings: Settings):
    from stuckgen import db

    return db.connect(settings.database_url, connect_timeout=settings.connect_timeout)


def read_tx(conn: Any, settings: Settings):
    from stuckgen import db

    return db.transaction(conn, read_only=True, statement_timeout=settings.statement_timeout,
                          lock_timeout=settings.lock_timeout)


def mapping_config(settings: Settings):
    from stuckgen.schema import MappingConfig

    return MappingConfig(
        table=settings.table, db_schema=settings.db_schema, overrides=dict(settings.mapping_overrides),
        override_source=dict(settings.mapping_sources),
        outputs=None if str(settings.outputs).lower() == "none" else settings.outputs,
        queue=None if str(settings.queue).lower() == "none" else settings.queue,
    )


def resolve_mapping(conn: Any, settings: Settings):
    from stuckgen.schema import resolve

    return resolve(conn, mapping_config(settings))


def rules(settings: Settings):
    from stuckgen.scan import DEFAULT_RULES, rules_from_config

    return rules_from_config(settings.rules) if settings.rules else DEFAULT_RULES


def scan_options(settings: Settings, **overrides: Any):
    from stuckgen.scan import ScanOptions

    kw: dict[str, Any] = dict(threshold=settings.threshold, since=settings.since,
                              inflight_statuses=tuple(settings.inflight_statuses),
                              naive_timezone=settings.naive_timezone)
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return ScanOptions(**kw)
