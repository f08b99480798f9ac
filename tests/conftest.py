"""Shared fixtures: a real PostgreSQL (STUCKGEN_TEST_DSN, or an embedded one) and fresh databases."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SCHEMA_SQL = (Path(__file__).parent.parent / "stuckgen" / "reference" / "schema.sql").read_text()


def _embedded_dsn() -> Iterator[str]:
    """Start a throwaway PostgreSQL (pgserver) for this test session."""
    import pgserver  # only needed when no server is configured

    datadir = tempfile.mkdtemp(prefix="stuckgen-pg-")
    server = pgserver.get_server(datadir, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of a PostgreSQL server we may create databases on."""
    dsn = os.environ.get("STUCKGEN_TEST_DSN")
    if dsn:
        yield dsn
        return
    yield from _embedded_dsn()


def dsn_for_database(server_dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture
def empty_db(pg_server: str) -> Iterator[str]:
    """A fresh, empty database (dropped afterwards); yields its DSN."""
    name = "stuckgen_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = dsn_for_database(pg_server, name)
    try:
        yield dsn
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(empty_db: str) -> str:
    """A fresh database holding the reference schema (no rows); yields its DSN."""
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    return empty_db
