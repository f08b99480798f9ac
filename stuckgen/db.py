"""Connections and transactions: read-only with timeouts, pooler-safe, errors translated.

Only the CLI opens connections (``connect``); the core receives them. Statements
live with the module that owns the concern (scan/, remediate/), always
composed with ``psycopg.sql``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict

from stuckgen.errors import (
    ConfigError, DatabaseAuthError, DatabaseQueryError, DatabaseTimeoutError, DatabaseUnreachableError, StuckgenError,
)
from stuckgen.secrets import describe_dsn, malformed_reason, scrub, dsn_secrets

if TYPE_CHECKING:
    from stuckgen.settings import Settings

# The connection every core function receives (tuple rows unless a cursor asks for dicts).
Connection: TypeAlias = "psycopg.Connection[Any]"

APPLICATION_NAME = "stuckgen"
# libpq's messages for an option value it cannot use (port, sslmode, ...), raised before connecting.
_LIBPQ_OPTION_ERROR = re.compile(r"invalid (\S+ )*(value|number)\b|invalid (sslmode|gssencmode|target_session_attrs)")


def check_dsn(dsn: str | None) -> dict[str, Any]:
    """Parse a DSN; ConfigError (exit 2) when missing or malformed. Never echoes the password."""
    if not dsn:
        raise ConfigError(
            "no database configured: set DATABASE_URL (or SUPABASE_DB_URL, STUCKGEN_DATABASE_URL) or pass --database-url"
        )
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # "from None": psycopg's message quotes the whole DSN, password included, and
        # --debug would print it in the traceback's cause. The URL is described, never echoed.
        raise ConfigError(
            f"database URL is malformed: {malformed_reason(dsn)}; it is not shown because it may hold a "
            f"password ({describe_dsn(dsn)})",
            hint="the form is postgresql://USER:PASSWORD@HOST:5432/DBNAME, with @ : / ? # % in the password "
                 "percent-encoded (@ is %40), or host=HOST dbname=DBNAME user=USER",
        ) from None
    return params


def describe_target(dsn: str) -> str:
    """``database app on db.example.com:5432 as postgres``: where a write would go, never the password."""
    params = check_dsn(dsn)
    host = params.get("host") or params.get("hostaddr") or "the local socket"
    port = params.get("port") or "5432"
    db = params.get("dbname") or params.get("user") or "(default)"
    user = params.get("user") or "(current user)"
    return f"database {db} on {host}:{port} as {user}"


def is_transaction_pooler(params: dict[str, Any]) -> bool:
    """Supabase's transaction pooler listens on 6543; PgBouncer users often name it."""
    port = str(params.get("port") or "")
    host = str(params.get("host") or "")
    return port == "6543" or "pooler" in host or "pgbouncer" in host


def scalar(conn: Connection | psycopg.Cursor[Any], query: Any, params: Any = None) -> Any:
    """The first column of the first row ``query`` returns; DatabaseQueryError when it returns none."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise DatabaseQueryError("the database returned no row where one was expected")
    return row[0]


def connect(dsn: str | None, *, connect_timeout: float = 10.0, application_name: str = APPLICATION_NAME) -> psycopg.Connection:
    """Open a connection safe for transaction-mode poolers (no server-side prepared statements)."""
    params = check_dsn(dsn)
    params.setdefault("connect_timeout", max(1, int(round(connect_timeout))))
    params["application_name"] = application_name
    try:
        conn = psycopg.connect(**params, autocommit=False, prepare_threshold=None)
    except psycopg.OperationalError as exc:
        detail = _safe_line(exc, dsn).removeprefix("connection is bad: ")
        if _LIBPQ_OPTION_ERROR.match(detail):
            # libpq rejected an option value before any network traffic: a configuration error.
            raise ConfigError(f"database URL is malformed: {detail}") from None
        if _is_auth_failure(exc):
            raise DatabaseAuthError(
                f"the database rejected the credentials {_where(params)}: {detail}",
                hint="the user or password in the database URL is wrong (or the role may not log in): "
                     "copy the URL again from the database provider, percent-encoding the password",
            ) from None
        raise DatabaseUnreachableError(f"cannot connect to the database {_where(params)}: {detail}",
                                       hint="check the host and port, and that this machine may reach them") from None
    except psycopg.Error as exc:
        raise DatabaseUnreachableError(
            f"cannot connect to the database {_where(params)}: {_safe_line(exc, dsn)}") from None
    return conn


def _where(params: dict[str, Any]) -> str:
    host = params.get("host") or "local socket"
    port = params.get("port") or "5432"
    db = params.get("dbname") or params.get("user") or ""
    return f"({host}:{port}/{db})"


# SQLSTATE 28P01 (invalid_password) and 28000 (invalid_authorization_specification) name an
# authentication failure; libpq reports some before any SQLSTATE exists, so its words count too.
_AUTH_WORDS = re.compile(r"password authentication failed|authentication failed|no password supplied|"
                         r"password must be|no pg_hba.conf entry|role \"[^\"]*\" does not exist", re.IGNORECASE)


def _is_auth_failure(exc: psycopg.Error) -> bool:
    return getattr(exc, "sqlstate", None) in ("28P01", "28000") or bool(_AUTH_WORDS.search(str(exc)))


def _safe_line(exc: BaseException, dsn: str | None) -> str:
    """The first line of a driver error, with every secret of the DSN scrubbed out."""
    return scrub(_first_line(exc), dsn_secrets(dsn) if dsn else [])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line.removeprefix("connection failed: ")


def _ms(seconds: float) -> str:
    # Round up: 0.1ms must not become 0, which PostgreSQL reads as "no timeout at all".
    return f"{math.ceil(seconds * 1000)}ms"


def _set_local(conn: psycopg.Connection, *, statement_timeout: float, lock_timeout: float,
               extra: Mapping[str, str] | None = None) -> None:
    # SET LOCAL, not connection options: a transaction-mode pooler hands each
    # transaction a different server connection, so settings must live in the transaction.
    names = ["statement_timeout", "lock_timeout", "TimeZone", "application_name", *(extra or {})]
    values = [_ms(statement_timeout), _ms(lock_timeout), "UTC", APPLICATION_NAME, *(extra or {}).values()]
    conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("set_config({}, %s, true)").format(sql.Literal(n)) for n in names)), values)


@contextmanager
def transaction(conn: psycopg.Connection, *, read_only: bool, statement_timeout: float = 30.0,
                lock_timeout: float = 5.0, extra: Mapping[str, str] | None = None) -> Iterator[psycopg.Connection]:
    """One transaction (READ ONLY when asked) with timeouts; database errors become ours.

    ``extra``: more settings for this transaction only (``{"jit": "off"}``). Two round trips
    before the work: ``BEGIN READ ONLY`` (or ``READ WRITE``) and one ``set_config`` for all settings.
    """
    with translate_errors():
        outside = conn.info.transaction_status == TransactionStatus.IDLE
        before = conn.read_only
        if outside:
            conn.read_only = read_only  # psycopg puts it in the BEGIN it sends
        try:
            with conn.transaction():
                if not outside:
                    conn.execute("SET TRANSACTION READ ONLY" if read_only else "SET TRANSACTION READ WRITE")
                _set_local(conn, statement_timeout=statement_timeout, lock_timeout=lock_timeout, extra=extra)
                yield conn
        finally:
            # Only this transaction: a later implicit one must not inherit READ ONLY.
            if outside and conn.info.transaction_status == TransactionStatus.IDLE:
                conn.read_only = before


def read_tx(conn: Connection, settings: Settings) -> Any:
    """A READ ONLY transaction with the settings' statement and lock timeouts."""
    return transaction(conn, read_only=True, statement_timeout=settings.statement_timeout,
                       lock_timeout=settings.lock_timeout)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn psycopg errors into the tool's exceptions at the boundary."""
    try:
        yield
    except StuckgenError:
        raise
    except pgerrors.QueryCanceled as exc:
        raise DatabaseTimeoutError(
            f"the database cancelled a statement: {_first_line(exc)}",
            hint="raise --statement-timeout, or add the index scan suggests",
        ) from exc
    except pgerrors.LockNotAvailable as exc:
        raise DatabaseTimeoutError(f"a row lock was not granted within lock_timeout: {_first_line(exc)}") from exc
    except pgerrors.UndefinedTable as exc:
        raise ConfigError(f"the database says: {_first_line(exc)}") from exc
    except pgerrors.UndefinedColumn as exc:
        raise ConfigError(f"the database says: {_first_line(exc)}") from exc
    except pgerrors.InsufficientPrivilege as exc:
        raise ConfigError(f"the database refused: {_first_line(exc)}") from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise DatabaseUnreachableError(f"lost the database connection: {_first_line(exc)}") from exc
    except psycopg.Error as exc:
        raise DatabaseQueryError(f"the database rejected a statement: {_first_line(exc)}") from exc
