"""Glue from Settings to the database core: connection, mapping config, scan options, rules."""


from typing import Any

from stuckgen.settings import Settings


def connect(settings: Settings):
    from stuckgen import db

    return db.connect(settings.database_url, connect_timeout=settings.connect_timeout)


def read_tx(conn: Any, settings: Settings):
    from stuckgen import db

    return db.read_tx(conn, settings)


def mapping_config(settings: Settings):
    from stuckgen.schema import mapping_config

    return mapping_config(settings)


def resolve_mapping(conn: Any, settings: Settings):
    from stuckgen.schema import resolve

    return resolve(conn, mapping_config(settings))


def rules(settings: Settings):
    from stuckgen.scan import DEFAULT_RULES, rules_from_config

    return rules_from_config(settings.rules) if settings.rules else DEFAULT_RULES


def scan_options(settings: Settings, **overrides: Any):
    from stuckgen.scan import scan_options

    return scan_options(settings, **overrides)
