"""Option groups declared once, and ``command``: the one way a command runs.

A command declares only its own options and names the groups it takes, and its
body hands them to one core function (``stuckgen.commands``):

    @command(DATABASE, STUCK, QUEUE_MODE)
    def scan(session: Session, out: Output, limit: LimitOpt = None, fmt: ... = None) -> int:
        # (the docstring here is the command's --help)
        return run_scan(session, out, fmt=pick_format(fmt, out, ("table", "json", "csv")), limit=limit)

``command`` adds the groups' options (and --env-file, --config, --debug) to the
command's signature, resolves them into ``Settings`` (precedence, stated once in
``stuckgen.settings``: flag > environment > .env > stuckgen.toml > default),
opens a ``Session`` with the ``Output`` and hands both to the body; the error
boundary (``handle_errors``) turns the tool's exceptions into exit codes.

The same thing has the same option everywhere: one meaning per short flag
(-d database, -t threshold, -u url, -f format, -n limit, -r repeat, -c class,
-y yes, -o output, -i interval), every duration parsed by ``durations.parse_duration``,
one vocabulary of formats (``FORMATS``).
"""


import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import typer

from stuckgen.cli._app import (
    AuditFileOpt, AuditTableOpt, ConfigOpt, ConnectTimeoutOpt, DatabaseUrlOpt, DbSchemaOpt, DebugOpt, EnvFileOpt,
    GraceOpt, InflightOpt, LockTimeoutOpt, MapOpt, MaxDurationOpt, OperatorOpt, Output, QueueLibraryOpt, QueueLockOpt,
    RepeatOpt, SecretOpt, SinceOpt, StatementTimeoutOpt, TableOpt, ThresholdOpt, app, default_format, env_help,
    dashed, handle_errors, setting,
)
from stuckgen.errors import ConfigError

# Every format a command can write, by one name each. A command accepts a subset.
FORMATS = {
    "table": "for a person (a table or a report; colour only on a terminal)",
    "json": "one JSON document (JSON lines for watch)",
    "csv": "comma-separated rows",
    "markdown": "a report to paste into an incident",
    "openmetrics": "metrics for a node_exporter textfile",
    "html": "one self-contained page (a chart, findings, rows)",
}


def formats(*names: str, default: str = "table on a terminal, json in a pipe") -> Any:
    """The --format/-f option of a command accepting ``names`` (a subset of ``FORMATS``):
    ``fmt: Annotated[Optional[str], formats("table", "json")] = None``."""
    assert all(n in FORMATS for n in names), names
    return typer.Option("--format", "-f", show_default=False, metavar="FORMAT",
                        help=f"{' | '.join(names)}. Default: {default}.")


def pick_format(fmt: str | None, out: Output, allowed: tuple[str, ...], *, default: str | None = None) -> str:
    """The format to write: the flag, else ``default``, else table on a terminal and json in a pipe.

    ``text`` (doctor's and check's earlier name for the human format) and ``live`` (watch's)
    are read as ``table``: scripts written for them keep working.
    """
    chosen = fmt or default or default_format(None, tty=out.is_tty)
    chosen = "table" if chosen in ("text", "live") else chosen
    if chosen not in allowed:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(allowed)}")
    return chosen


# -- selecting rows to act on (fail, retrigger, reconcile) ---------------------------------------------
IdsArg = Annotated[Optional[list[str]], typer.Argument(
    metavar="[ID]...", show_default=False, help="Row ids (validated against the id column's type first).")]
AllStuckOpt = Annotated[bool, typer.Option("--all-stuck", help="Select every stuck row matching the filters.")]
OlderThanOpt = Annotated[Optional[str], typer.Option(
    "--older-than", metavar="DURATION", show_default=False,
    help="Only rows quiet for at least this long (e.g. 30m); re-checked by the database clock when acting.")]
ClassOpt = Annotated[Optional[list[str]], typer.Option(
    "--class", "-c", metavar="CLASS", show_default=False, help="Only rows of this stuck class (repeatable).")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Act. Without it: a dry run (or one question on a terminal).")]

# -- deployment options (probe-auth, doctor, check, watch, retrigger) ---------------------------------
UrlOpt = Annotated[Optional[list[str]], setting("base_url", "--url", "-u", metavar="URL", help=(
    "Deployment base URL, e.g. https://app.example.com (repeatable where several deployments are compared)."))]
RouteOpt = Annotated[Optional[str], setting("route", metavar="PATH",
                                            help="Path of the process route. Default /api/generate/process.")]
SecretHeaderOpt = Annotated[Optional[str], setting("secret_header", metavar="HEADER",
                                                   help="Header carrying INTERNAL_API_SECRET. Default x-internal-secret.")]
BypassSecretOpt = Annotated[Optional[str], setting("bypass_secret", metavar="VALUE",
                                                   help="Vercel Deployment Protection bypass secret (never printed).")]
CookieOpt = Annotated[Optional[str], setting("cookie", metavar="HEADER",
                                             help="Session cookies as a Cookie header 'name=value; ...' (never printed).")]
CookieFileOpt = Annotated[Optional[str], setting("cookie_file", metavar="PATH",
                                                 help="File with the cookies: Netscape cookies.txt or a Cookie header.")]
CookieNameOpt = Annotated[Optional[str], setting("cookie_name", metavar="NAME", help=(
    "The app's session cookie name when not sb-<ref>-auth-token (auth.storageKey)."))]
HttpTimeoutOpt = Annotated[Optional[str], setting("http_timeout", metavar="DURATION",
                                                  help="Give up on one HTTP answer after this. Default 10s.")]
AllowInsecureOpt = Annotated[bool, typer.Option(
    "--allow-insecure", help="Allow sending credentials over plain HTTP to a host that is not loopback.")]


@dataclass(frozen=True)
class Group:
    """Options several commands share, as the parameters ``command`` adds to each."""

    params: tuple[inspect.Parameter, ...]

    def __add__(self, other: "Group") -> "Group":
        return Group(self.params + tuple(p for p in other.params if p.name not in {q.name for q in self.params}))


@dataclass(frozen=True)
class Bundle:
    """Options that are not settings, handed to the body as one value ``build(**values)`` named ``name``
    (the row selection of fail, retrigger and reconcile arrives as one ``Pick``)."""

    name: str
    build: Callable[..., Any]
    group: Group


def group(**options: Any) -> Group:
    """A group from ``name=Annotated[...]``; each name is the option's key in ``settings.OPTIONS``."""
    return Group(tuple(
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann,
                          default=False if getattr(ann, "__origin__", None) is bool else None)
        for name, ann in options.items()))


def _pick(**values: Any) -> Any:
    from stuckgen.commands.remediate import pick

    return pick(**values)


# The rows a remediation command acts on, handed to its body as one ``remediate.runner.Pick``.
PICK = Bundle("pick", _pick, group(ids=IdsArg, all_stuck=AllStuckOpt, older_than=OlderThanOpt, cls=ClassOpt))
PICK_BY_ID = Bundle("pick", _pick, group(ids=IdsArg, older_than=OlderThanOpt, cls=ClassOpt))  # no --all-stuck

RemediationSinceOpt = Annotated[Optional[str], typer.Option(
    "--since", metavar="DURATION", show_default=False,
    help="Only rows created within this window. Default: any age (the oldest stuck rows need remediation most).")]

# The database and its timeouts (jobs: the queue libraries' own tables, no mapping).
CONNECTION = group(database_url=DatabaseUrlOpt, statement_timeout=StatementTimeoutOpt, lock_timeout=LockTimeoutOpt,
                   connect_timeout=ConnectTimeoutOpt)
# ... and the app's job table, mapped.
DATABASE = group(database_url=DatabaseUrlOpt, table=TableOpt, db_schema=DbSchemaOpt, map=MapOpt,
                 inflight_statuses=InflightOpt) + CONNECTION
# How rows are classified beyond the threshold (the classes' grace, the queue lock, the worker's max duration).
CLASSIFY = group(grace=GraceOpt, queue_lock=QueueLockOpt, max_duration=MaxDurationOpt)
# Stuck past --threshold, over the rows created in the --since window (remediation: any age unless given).
STUCK = group(threshold=ThresholdOpt, since=SinceOpt) + CLASSIFY
STUCK_ANY_AGE = group(threshold=ThresholdOpt, since=RemediationSinceOpt) + CLASSIFY
# A job-queue library's own table instead of the app's (scan, show).
QUEUE_MODE = group(queue_library=QueueLibraryOpt)
AUDIT = group(audit_table=AuditTableOpt, audit_file=AuditFileOpt, operator=OperatorOpt)
# The process route and how to reach it; the secret itself comes from the environment or .env.
ROUTE = group(base_url=UrlOpt, route=RouteOpt, secret_header=SecretHeaderOpt, bypass_secret=BypassSecretOpt,
              http_timeout=HttpTimeoutOpt, allow_insecure=AllowInsecureOpt)
# Everything a probe can send: the route's options plus the secret and the session cookie.
DEPLOYMENT = ROUTE + group(internal_secret=SecretOpt, cookie=CookieOpt, cookie_file=CookieFileOpt,
                           cookie_name=CookieNameOpt)

SlackOpt = Annotated[Optional[str], setting("slack_webhook_url", "--slack-webhook", metavar="URL", help=(
    "Slack incoming webhook: one message when an incident starts, gets worse, and is resolved (never printed)."))]
PagerDutyOpt = Annotated[Optional[str], setting("pagerduty_routing_key", metavar="KEY", help=(
    "PagerDuty Events API v2 routing key: trigger per cause, resolve when clean (prefer the environment: a flag "
    "is visible in `ps`)."))]
WebhookOpt = Annotated[Optional[str], setting("notify_webhook_url", "--notify-webhook", metavar="URL", help=(
    "POST incident events with the JSON report here, signed (Standard Webhooks) when "
    "STUCKGEN_NOTIFY_WEBHOOK_SECRET is set."))]
# Where incidents are told (check, watch); the state of each incident is kept in the audit log.
NOTIFY = group(slack_webhook_url=SlackOpt, pagerduty_routing_key=PagerDutyOpt, notify_webhook_url=WebhookOpt)
COMMON = group(env_file=EnvFileOpt, config=ConfigOpt, debug=DebugOpt)


def _long_flag(p: inspect.Parameter) -> str:
    """The long flag of an ``Annotated[..., typer.Option(...)]`` parameter."""
    from typer.models import OptionInfo

    for meta in getattr(p.annotation, "__metadata__", ()):
        if isinstance(meta, OptionInfo):
            decls = [meta.default] if isinstance(meta.default, str) and meta.default.startswith("-") else []
            return next((d for d in [*decls, *(meta.param_decls or ())] if d.startswith("--")), dashed(p.name))
    return dashed(p.name)


def command(*groups: Group | Bundle, name: str | None = None,
            no_config: bool = False) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Register ``fn(session, out, **own_options)`` as a command taking ``groups``' options too.

    ``no_config``: the command reads no stuckgen.toml and has no --config (`init` writes that file).
    """
    import os

    from stuckgen.session import Session

    common = Group(tuple(p for p in COMMON.params if not (no_config and p.name == "config")))
    bundles = [g for g in groups if isinstance(g, Bundle)]
    shared = functools.reduce(lambda a, b: a + b, (*(g.group if isinstance(g, Bundle) else g for g in groups), common))

    def register(fn: Callable[..., int]) -> Callable[..., int]:
        from stuckgen.settings import OPTIONS, load_settings

        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name not in ("session", "out", *(b.name for b in bundles))]
        # An own option named like a setting (fail's --failed-status) is a flag for the settings too.
        names = {p.name for p in shared.params} | {p.name for p in own if p.name in OPTIONS}
        # Where a value came from names the flag as this command spells it (`flag --url` for base_url).
        flag_names = {p.name: _long_flag(p) for p in (*own, *shared.params)}

        @functools.wraps(fn)
        def run(**kwargs: Any) -> int:
            for b in bundles:
                kwargs[b.name] = b.build(**{p.name: kwargs.pop(p.name) for p in b.group.params})
            flags = {n: kwargs.pop(n) if n not in sig.parameters else kwargs[n] for n in names if n in kwargs}
            if no_config:
                flags["config"] = os.devnull
            settings = load_settings({k: v for k, v in flags.items() if k in OPTIONS}, env_file=flags.get("env_file"),
                                     config_file=flags.get("config"), map_flags=tuple(flags.get("map") or ()),
                                     flag_names=flag_names)
            out = Output()
            with Session(settings, out, allow_insecure=bool(flags.get("allow_insecure"))) as session:
                return fn(session, out, **kwargs)

        # Typer reads the signature: the command's own options first, then the shared ones.
        run.__signature__ = sig.replace(parameters=[  # type: ignore[attr-defined]
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.default is not inspect.Parameter.empty else p
            for p in own] + list(shared.params))
        del run.__wrapped__
        # Typer reads the hints too: a bundle's value is the body's, not an option.
        run.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k not in {b.name for b in bundles}}
        app.command(name)(handle_errors(run))
        return fn

    return register
