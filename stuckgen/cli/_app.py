"""The Typer app, shared options, output streams and the error boundary.

The CLI modules do not use ``from __future__ import annotations``: Typer would then
eval every option's annotation string on each start (about 20 ms of `--help`).

Commands live one concern per module (scan.py, probe.py, ...) and follow one shape:
options (``options.command``) -> ``Settings`` -> ``Session`` -> one ``run_<name>`` in
``stuckgen.commands``; the tool's own exceptions become one line on stderr and the
documented exit code (``handle_errors``). ``setting`` declares a setting's option once.
"""


import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any, Optional, TypeVar

import typer

from stuckgen import __version__
from stuckgen.console import Output, default_format
from stuckgen.errors import ExitCode, StuckgenError

HELP = """Find, explain and safely remediate background jobs stuck in 'processing'.

Exit codes (every command): 0 nothing found, 1 findings, 2 usage or configuration
error, 3 database or deployment unreachable, 4 internal error (a bug), 130
interrupted (Ctrl-C or SIGTERM), 141 output pipe closed.
"""

app = typer.Typer(
    name="stuckgen",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stuckgen {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Find, explain and safely remediate background jobs stuck in 'processing'."""


def env_help(name: str, text: str) -> str:
    """Help text that names the option's environment variables (single source: settings.OPTIONS)."""
    from stuckgen.settings import OPTIONS

    names = ", ".join(OPTIONS[name].env)
    return f"{text} [env: {names}]"


def dashed(name: str) -> str:
    """The flag a parameter or setting has unless it names another: ``--name-with-dashes``."""
    return "--" + name.replace("_", "-")


def setting(name: str, *decls: str, metavar: str, help: str, **kw: Any) -> Any:
    """The ``typer.Option`` of the setting ``name`` (a key of settings.OPTIONS): its flag is
    ``--name-with-dashes`` unless ``decls`` name one, and its help ends with its environment variables."""
    if not any(d.startswith("--") for d in decls):
        decls = (dashed(name), *decls)
    return typer.Option(*decls, metavar=metavar, show_default=False, help=env_help(name, help), **kw)


# -- shared options (grouped for commands in options.py) ----------------------------------------
DatabaseUrlOpt = Annotated[Optional[str], setting("database_url", "-d", metavar="URL",
                                                  help="PostgreSQL URL of the app's database (never printed).")]
ThresholdOpt = Annotated[Optional[str], setting("threshold", "-t", metavar="DURATION", help=(
    "Stuck when quiet longer than this: 90s, 2m, 1h30m, PT2M. Default 2m."))]
GraceOpt = Annotated[Optional[list[str]], setting("grace", metavar="CLASS=DURATION", help=(
    "Rows of this class are stuck only once quiet this long (repeatable; CLASS=none removes one). "
    "Default awaiting-webhook=30m, the app's webhook grace."))]
QueueLockOpt = Annotated[Optional[str], setting("queue_lock", metavar="DURATION", help=(
    "A queue job locked more recently than this is alive (the app's GENERATION_QUEUE_LOCK_TIMEOUT_MS). Default 60s."))]
SinceOpt = Annotated[Optional[str], setting("since", metavar="DURATION", help=(
    "List rows created within this window and rate them against it ('all' for no limit); stuck rows created "
    "earlier are still counted and named. Default 24h."))]
StatementTimeoutOpt = Annotated[Optional[str], setting("statement_timeout", metavar="DURATION",
                                                       help="Cancel any statement running longer. Default 30s.")]
LockTimeoutOpt = Annotated[Optional[str], setting("lock_timeout", metavar="DURATION",
                                                  help="Give up on a row lock after this. Default 5s.")]
ConnectTimeoutOpt = Annotated[Optional[str], setting("connect_timeout", metavar="DURATION",
                                                     help="Give up connecting after this. Default 10s.")]
TableOpt = Annotated[Optional[str], setting("table", metavar="NAME", help="Table of generations. Default generations.")]
DbSchemaOpt = Annotated[Optional[str], setting("db_schema", metavar="NAME",
                                               help="PostgreSQL schema. Default: the current schema.")]
MapOpt = Annotated[Optional[list[str]], typer.Option(
    "--map", show_default=False, metavar="FIELD=SPEC",
    help="Map a field to a column or JSON key, e.g. heartbeat=parameters.lastHeartbeatAt, "
         "updated=updatedAt, step_log=none. Repeatable. [env: STUCKGEN_MAP]")]
InflightOpt = Annotated[Optional[str], setting("inflight_statuses", metavar="A,B",
                                               help="Statuses that mean 'in flight'. Default processing,queued.")]
QueueLibraryOpt = Annotated[Optional[str], setting("queue_library", metavar="LIBRARY", help=(
    "Read the jobs of this job-queue library by its own rules instead of an app table: graphile-worker, "
    "pg-boss, or both comma-separated."))]
EnvFileOpt = Annotated[Optional[str], typer.Option(
    "--env-file", show_default=False, metavar="PATH", help="Read this .env file instead of ./.env.")]
ConfigOpt = Annotated[Optional[str], typer.Option(
    "--config", show_default=False, metavar="PATH",
    help="Read this stuckgen.toml (default: ./stuckgen.toml, or [tool.stuckgen] in ./pyproject.toml).")]
AuditTableOpt = Annotated[Optional[str], setting("audit_table", metavar="NAME", help=(
    "Audit table, created on first use. Default stuckgen.audit (a schema of its own)."))]
AuditFileOpt = Annotated[Optional[str], setting("audit_file", metavar="PATH", help=(
    "Keep the audit log in this JSON Lines file (created 0600) instead of a table."))]
OperatorOpt = Annotated[Optional[str], setting("operator", metavar="NAME",
                                               help="Who runs this, for the audit log. Default $USER.")]
# One story for the internal secret, in every command that sends it: INTERNAL_API_SECRET from the
# environment or .env, or --secret (visible in help everywhere; the environment is preferred).
SecretOpt = Annotated[Optional[str], setting("internal_secret", "--secret", metavar="VALUE", help=(
    "The process route's INTERNAL_API_SECRET (never printed). Prefer the environment or .env: a flag is "
    "visible to other users in `ps`."))]
# Probes per mode: stuckgen.probe.DEFAULT_REPEAT (10) when not given; the help says why (tests hold the two equal).
RepeatOpt = Annotated[Optional[int], typer.Option(
    "--repeat", "-r", min=1, max=1000, metavar="N", show_default=False,
    help="Probes per mode and target. Default 10: enough to tell instances that disagree from a consistent "
         "answer; a target is never called healthy on fewer than 2 answers per mode.")]
MaxDurationOpt = Annotated[Optional[str], setting("max_duration", metavar="DURATION", help=(
    "The worker function's maximum duration (Vercel maxDuration, e.g. 300s): a stalled row whose worker started "
    "longer ago (plus a minute) is named timed-out, provably dead."))]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.", envvar="STUCKGEN_DEBUG")]


F = TypeVar("F", bound=Callable[..., Any])


def _known_secrets(flags: dict[str, Any] | None = None) -> list[str]:
    """Secret values from the environment and from the command's own flags (DSNs: their secrets)."""
    from stuckgen.secrets import dsn_secrets
    from stuckgen.settings import OPTIONS

    vals: list[str] = []
    for opt in OPTIONS.values():
        if opt.secret:
            vals += [os.environ[v] for v in opt.env if os.environ.get(v)]
            flag = (flags or {}).get(opt.name)
            if isinstance(flag, str) and flag:
                vals.append(flag)
    for v in list(vals):
        if "://" in v or "=" in v:
            vals += dsn_secrets(v)
    return vals


def handle_errors(fn: F) -> F:
    """The error boundary: our exceptions -> one line + exit code; tracebacks only with --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from stuckgen.secrets import scrub

        debug = bool(kwargs.get("debug")) or os.environ.get("STUCKGEN_DEBUG", "") not in ("", "0", "false")
        from stuckgen.signals import sigterm_interrupts

        try:
            with sigterm_interrupts():
                code = fn(*args, **kwargs)
        except typer.Exit:
            raise
        except StuckgenError as exc:
            if debug:
                traceback.print_exc(file=sys.stderr)
            msg = scrub(f"stuckgen: error: {exc.message}", _known_secrets(kwargs))
            sys.stderr.write(msg + "\n")
            if exc.hint:
                sys.stderr.write(scrub(f"  hint: {exc.hint}", _known_secrets(kwargs)) + "\n")
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            sys.stderr.write("stuckgen: interrupted\n")
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except BrokenPipeError:
            # The reader went away (`stuckgen scan | head`): nothing more to say, and
            # Python must not complain again while flushing stdout at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(ExitCode.PIPE_CLOSED) from None
        except Exception as exc:  # a bug: say so in one line unless debugging
            if debug:
                raise
            msg = scrub(f"stuckgen: internal error: {type(exc).__name__}: {exc}", _known_secrets(kwargs))
            sys.stderr.write(msg + " (run again with --debug for a traceback)\n")
            raise typer.Exit(ExitCode.INTERNAL) from None
        raise typer.Exit(int(code or ExitCode.OK))

    return wrapper  # type: ignore[return-value]
