"""The exception tree and the exit codes every command shares.

    StuckgenError                 anything the tool reports as one line (exit 2 unless said)
    ├── ConfigError               a flag, variable, .env or stuckgen.toml value is invalid (2)
    │   ├── SchemaError           a table or column the mapping needs does not exist (2)
    │   └── InsecureTransportError   credentials would travel over plain HTTP (2)
    ├── SelectionError            ids or filters select nothing usable (2)
    ├── DatabaseQueryError        the database rejected a statement (a wrong type, a read-only violation) (2)
    ├── UnreachableError          cannot reach something we must talk to (3)
    │   ├── DatabaseUnreachableError  connect failed, server went away (3)
    │   │   └── DatabaseAuthError     the server rejected the user or password (3)
    │   ├── DatabaseTimeoutError      statement_timeout or lock_timeout fired (3)
    │   ├── DeploymentUnreachableError  no target answered (3)
    │   └── VercelUnreachableError    the Vercel API did not answer, or not with its API (3)
    ├── AuditWriteError           a batch committed but its audit lines could not be written (1)
    └── AbortedError              interrupted (Ctrl-C / SIGTERM), saying how far it got (130)

Lower-level errors (psycopg, httpx, OSError) are translated at the boundary
with ``raise X(...) from exc`` so that the CLI only ever catches these.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit status of every stuckgen command."""

    OK = 0  # nothing found: no stuck rows, auth healthy, every row remediated
    FINDINGS = 1  # findings: stuck rows, a warning finding, rows not remediated
    USAGE = 2  # usage or configuration error: bad flag, bad config, missing table
    UNREACHABLE = 3  # cannot reach the database or the deployment
    INTERNAL = 4  # a bug: an exception that is not the tool's own (traceback with --debug)
    INTERRUPTED = 130  # Ctrl-C or SIGTERM (128 + SIGINT, as shells report it); batches done stay done
    PIPE_CLOSED = 141  # the reader of stdout went away (128 + SIGPIPE): `stuckgen scan | head`


class StuckgenError(Exception):
    """An error stuckgen reports as one line, without a traceback."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(StuckgenError):
    """A configuration value (flag, environment, .env, stuckgen.toml) is invalid."""


class SchemaError(ConfigError):
    """The database lacks a table or column the schema mapping needs."""


class InsecureTransportError(ConfigError):
    """A secret or cookie would be sent over plain HTTP to a non-loopback host."""


class SelectionError(StuckgenError):
    """The ids or filters given select nothing that can be acted on."""


class DatabaseQueryError(StuckgenError):
    """The database rejected a statement: a mapped column of an unexpected type, a read-only violation."""


class UnreachableError(StuckgenError):
    """Something stuckgen must talk to cannot be reached."""

    exit_code = ExitCode.UNREACHABLE


class DatabaseUnreachableError(UnreachableError):
    """The database refused, timed out, rejected the credentials or went away."""


class DatabaseAuthError(DatabaseUnreachableError):
    """The database server answered and rejected the user or password."""


class DatabaseTimeoutError(UnreachableError):
    """A statement ran past statement_timeout or waited past lock_timeout."""


class DeploymentUnreachableError(UnreachableError):
    """No deployment target answered."""


class VercelUnreachableError(UnreachableError):
    """The Vercel REST API timed out, refused, rate-limited us, or answered with something else."""


class AuditWriteError(StuckgenError):
    """A batch was committed but its audit lines could not be written to the audit file."""

    exit_code = ExitCode.FINDINGS


class AbortedError(StuckgenError):
    """The run was interrupted; the message says how far it got."""

    exit_code = ExitCode.INTERRUPTED
