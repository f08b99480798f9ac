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
    from pathlib import Path

    from stuckgen.scan import rules_in_force

    return rules_in_force(settings.rules, replace_defaults=settings.replace_default_rules,
                          source=Path(settings.config_file).name if settings.config_file else "stuckgen.toml")


def scan_options(settings: Settings, **overrides: Any):
    from stuckgen.scan import scan_options

    return scan_options(settings, **overrides)
