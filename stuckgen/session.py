"""How a command runs: the one object that owns its connection, mapping, audit log, HTTP clients and interrupts.

A ``Session`` is built from resolved ``Settings`` and an output for messages (the
CLI's ``Output``; tests hand in their own). It opens nothing until asked, opens
each thing once, and closes everything it opened:

* ``connection()``: one connection for the whole command (``db.connect``).
* ``read()``: a READ ONLY transaction with the configured timeouts.
* ``mapping()``: the schema mapping, resolved once; its warnings told once.
* ``rules()``, ``scan_options()``, ``remediation_scan_options()``: what a scan needs.
* ``audit()`` / ``prepare_audit()``: the audit log for the mapping's schema.
* ``cookie()``: the operator's session cookie (``--cookie`` or ``--cookie-file``).
* ``http_client()``: clients built by ``stuckgen.http`` (no redirects, proxies off);
  ``provider_options()``: how to ask the provider's API.
* ``id_in_use()`` / ``probe_id()``: a probe's id must match no row.
* ``interruptible()``: SIGTERM behaves like Ctrl-C (``KeyboardInterrupt``, exit 130);
  inside a batch both are held until it commits (``remediate.DeferredSignals``).

Domain functions never receive the session or the settings: they take a
connection, a mapping and options, which the session provides.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx

    from stuckgen.audit import AuditLog
    from stuckgen.cookies import CookieInfo
    from stuckgen.db import Connection
    from stuckgen.replicate import ProviderOptions
    from stuckgen.scan import Rule, ScanOptions
    from stuckgen.schema import SchemaMapping
    from stuckgen.settings import Settings


class Messages(Protocol):
    """Where a session tells the operator things (stderr in the CLI)."""

    def note(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


class Session:
    """One command's resources, opened lazily and once; a context manager that closes them."""

    def __init__(self, settings: Settings, out: Messages, *, allow_insecure: bool = False) -> None:
        self.settings = settings
        self.out = out
        # --allow-insecure: the operator accepts credentials over plain HTTP to a remote host.
        self.allow_insecure = allow_insecure
        self._conn: Connection | None = None
        self._mapping: SchemaMapping | None = None
        self._cookie: tuple[CookieInfo | None] | None = None
        self._clients: list[httpx.Client] = []

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- database ---------------------------------------------------------------------------

    def connection(self) -> Connection:
        """The command's connection, opened on first use (UnreachableError when it cannot be)."""
        if self._conn is None:
            from stuckgen import db

            self._conn = db.connect(self.settings.database_url, connect_timeout=self.settings.connect_timeout)
        return self._conn

    def open_connection(self) -> Connection:
        """Another connection, for work that overlaps the command's own (the caller closes it)."""
        from stuckgen import db

        return db.connect(self.settings.database_url, connect_timeout=self.settings.connect_timeout)

    def read(self, conn: Connection | None = None) -> AbstractContextManager[Any]:
        """A READ ONLY transaction with the configured statement and lock timeouts."""
        from stuckgen import db

        return db.read_tx(conn or self.connection(), self.settings)

    def write(self) -> AbstractContextManager[Any]:
        """A read-write transaction with the configured timeouts (the audit table's creation)."""
        from stuckgen import db

        return db.transaction(self.connection(), read_only=False, statement_timeout=self.settings.statement_timeout,
                              lock_timeout=self.settings.lock_timeout)

    def mapping(self, *, announce: bool = True) -> SchemaMapping:
        """The schema mapping, resolved once (inside a read transaction); its warnings are told once
        (``announce=False``: the caller shows them itself, as `schema` does)."""
        if self._mapping is None:
            from stuckgen.schema import mapping_config, resolve

            conn = self.connection()
            if _idle(conn):  # resolve in a transaction of its own
                with self.read():
                    self._mapping = resolve(conn, mapping_config(self.settings))
            else:
                self._mapping = resolve(conn, mapping_config(self.settings))
            for w in self._mapping.warnings if announce else ():
                self.out.note(f"note: {w}")
        return self._mapping

    def rules(self) -> Sequence[Rule]:
        from pathlib import Path

        from stuckgen.scan import rules_in_force

        # [[rules]] before the defaults (replace_default_rules = true: instead of them), each with its source.
        cfg = self.settings.config_file
        return rules_in_force(self.settings.rules, replace_defaults=self.settings.replace_default_rules,
                              source=Path(cfg).name if cfg else "stuckgen.toml")

    def scan_options(self, **overrides: Any) -> ScanOptions:
        """ScanOptions from the settings; ``overrides`` that are not None win."""
        from stuckgen.scan import scan_options

        return scan_options(self.settings, **overrides)

    def remediation_scan_options(self, *, classes: tuple[str, ...] = (), older_than: float | None = None) -> ScanOptions:
        """What remediation selects with: --since only when given as a flag (its 24h default would
        hide the oldest stuck rows, the ones most in need of remediation)."""
        since = self.settings.since if self.settings.from_flag("since") else None
        return replace(self.scan_options(classes=classes, older_than=older_than), since=since)

    # -- audit ------------------------------------------------------------------------------

    def audit(self) -> AuditLog:
        """The configured audit log (file or table) for the mapping's schema."""
        from stuckgen.audit import audit_log

        return audit_log(audit_file=self.settings.audit_file, audit_table=self.settings.audit_table,
                         default_schema=self.mapping().db_schema)

    def prepare_audit(self, audit: AuditLog) -> None:
        """Create the audit table or file: only ever before a real run."""
        with self.write():
            audit.prepare(self.connection())

    def operator(self) -> str:
        from stuckgen.audit import operator_name

        return operator_name(self.settings.operator)

    # -- deployment -------------------------------------------------------------------------

    def cookie(self) -> CookieInfo | None:
        """The operator's session cookie (--cookie wins over --cookie-file), read once."""
        if self._cookie is None:
            from stuckgen.cookies import configured_cookie

            self._cookie = (configured_cookie(self.settings.cookie, self.settings.cookie_file, now=time.time(),
                                              cookie_name=self.settings.cookie_name),)
        return self._cookie[0]

    def cookie_header(self) -> str | None:
        info = self.cookie()
        return info.header if info is not None and info.header else None

    def http_client(self, *, concurrency: int | None = None, trust_env: bool = False) -> httpx.Client:
        """A client from ``stuckgen.http`` with the configured timeout, closed with the session."""
        from stuckgen import http

        client = http.client(timeout=self.settings.http_timeout, concurrency=concurrency, trust_env=trust_env)
        self._clients.append(client)
        return client

    def provider_options(self, *, concurrency: int = 4, tries: int = 3) -> ProviderOptions:
        """How to ask the provider (Replicate's API); ConfigError without a token (it is never printed)."""
        from stuckgen.errors import ConfigError
        from stuckgen.replicate import ProviderOptions

        token = self.settings.replicate_api_token
        if not token:
            raise ConfigError("no provider token: set REPLICATE_API_TOKEN (the app's own variable) to ask the provider",
                              hint="it is read from the environment or .env, never from a flag, and never printed")
        url = str(self.settings.replicate_api_url).rstrip("/")
        if "://" not in url:
            raise ConfigError(f"--provider-url: {url!r} has no scheme (write https://...)")
        return ProviderOptions(api_url=url, token=token, timeout=self.settings.http_timeout, tries=tries,
                               concurrency=concurrency, allow_insecure=self.allow_insecure)

    def endpoint(self) -> str:
        """The one process-route URL triggers go to; refuses the secret over plain HTTP to a remote host."""
        from stuckgen import http
        from stuckgen.errors import ConfigError

        urls = self.settings.base_url
        if not urls:
            raise ConfigError("no deployment URL: pass --url or set STUCKGEN_BASE_URL")
        if len(urls) > 1:
            raise ConfigError(f"this sends to one deployment; got {len(urls)} URLs ({', '.join(urls)})")
        endpoint = urls[0].rstrip("/") + "/" + self.settings.route.lstrip("/")
        http.check_transport(endpoint, sends_credentials=bool(self.settings.internal_secret or self.settings.bypass_secret),
                             allow_insecure=self.allow_insecure)
        return endpoint

    def id_in_use(self, probe_id: str) -> bool:
        """Whether a generation has this id: a probe must match no row, so it can never process real work."""
        from stuckgen.show import id_exists

        conn = self.connection()
        mapping = self.mapping(announce=False)  # a probe has no use for the mapping's gaps
        if not _idle(conn):  # already inside the caller's read transaction
            return id_exists(conn, mapping, probe_id)
        with self.read():
            return id_exists(conn, mapping, probe_id)

    def probe_id(self) -> str:
        """A random UUID that matches no row (checked when a database is configured)."""
        while True:
            candidate = str(uuid.uuid4())
            if not self.settings.database_url or not self.id_in_use(candidate):
                return candidate

    # -- interruption -----------------------------------------------------------------------

    def interruptible(self) -> AbstractContextManager[None]:
        """SIGTERM behaves like Ctrl-C while the command runs (see ``interruptible``)."""
        return interruptible()

def _idle(conn: Connection) -> bool:
    from psycopg import pq

    return conn.info.transaction_status == pq.TransactionStatus.IDLE


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: ``KeyboardInterrupt``, so the core reports how far it got (exit 130).

    Inside a remediation batch both signals are held until the batch commits and is
    audited (``remediate.DeferredSignals``), so every batch is all or nothing. Only
    the main thread can own signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
