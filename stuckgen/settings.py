"""The one place that reads configuration: flags, environment, .env and stuckgen.toml.

Precedence, highest first: command-line flag > process environment > .env file
(the working directory's, or --env-file) > stuckgen.toml (or [tool.stuckgen] in
pyproject.toml, or --config) > built-in default. ``Settings.sources`` records
which one supplied each value, so `doctor` can say where a value came from.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from stuckgen.durations import parse_duration
from stuckgen.errors import ConfigError
from stuckgen.trigger_failures import DEFAULT_ERROR_PATTERN as DEFAULT_TRIGGER_ERROR_PATTERN

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]


def _duration(name: str, maximum: float | None = None) -> Callable[[Any], float]:
    def parse(v: Any) -> float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            seconds = float(v)
            if not 0 <= seconds < float("inf"):
                raise ConfigError(f"{name}: {v!r} is not a duration")
        else:
            seconds = parse_duration(str(v), option=name)
        if maximum is not None and seconds > maximum:
            raise ConfigError(f"{name}: {v!r} is longer than the {maximum / 86400:.0f} days PostgreSQL allows")
        return seconds
    return parse


# statement_timeout and lock_timeout are int milliseconds on the server.
_PG_TIMEOUT_MAX = 2_147_483.0


def _since(v: Any) -> float | None:
    if isinstance(v, str) and v.strip().lower() in ("all", "0", "none"):
        return None
    return _duration("--since")(v)


def _int(name: str, lo: int = 0) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        try:
            n = int(str(v).strip())
        except ValueError:
            raise ConfigError(f"{name}: {v!r} is not a whole number") from None
        if n < lo:
            raise ConfigError(f"{name}: must be at least {lo}, got {n}")
        return n
    return parse


def _float(name: str) -> Callable[[Any], float]:
    def parse(v: Any) -> float:
        return parse_rate(v, option=name)
    return parse


def parse_rate(value: Any, *, option: str) -> float:
    """A number, or a percentage (``5%`` is 0.05); ConfigError naming ``option`` otherwise."""
    text = str(value).strip()
    try:
        return float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a number") from None


def _list(v: Any) -> tuple[str, ...]:
    if isinstance(v, (list, tuple)):
        items = [str(x) for x in v]
    else:
        items = str(v).split(",")
    return tuple(x.strip() for x in items if x.strip())


def _statuses(v: Any) -> tuple[str, ...]:
    """A status list; 'none' is the empty list (read no such rows)."""
    items = _list(v)
    return () if tuple(x.lower() for x in items) == ("none",) else items


def _grace(v: Any) -> tuple[tuple[str, float], ...]:
    """Per-class grace as configured: 'awaiting-webhook=30m,stalled=10m', a list of such items, or a
    TOML table. 'CLASS=none' (or 0) is kept as 0: it switches a default grace off. The defaults
    themselves are merged in by scan.scan_options, which needs to know what was configured."""
    if isinstance(v, tuple) and all(isinstance(x, tuple) for x in v):
        return v
    items: list[tuple[str, Any]]
    if isinstance(v, dict):
        items = list(v.items())
    else:
        items = []
        for part in _list(v):
            cls, sep, dur = part.partition("=")
            if not sep or not cls.strip():
                raise ConfigError(f"--grace: {part!r} is not CLASS=DURATION (e.g. awaiting-webhook=30m)")
            items.append((cls.strip(), dur.strip()))
    out: dict[str, float] = {}
    for cls, dur in items:
        out[cls] = 0.0 if str(dur).strip().lower() in ("none", "0", "") else _duration(f"--grace {cls}")(dur)
    return tuple(sorted(out.items()))


def _str(v: Any) -> str:
    return str(v)


def _secret(v: Any) -> str:
    # Secrets are kept byte for byte: a trailing newline is a finding, not noise to strip.
    return str(v)


def _choice(name: str, allowed: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        value = str(v).strip().lower()
        if value not in allowed:
            raise ConfigError(f"{name}: {v!r} is not one of {', '.join(allowed)}")
        return value
    return parse


def _timezone(v: Any) -> str:
    name = str(v).strip()
    if name.upper() in ("UTC", "Z", "GMT"):
        return "UTC"
    if name[:1] in "+-" or name[:1].isdigit():
        # PostgreSQL reads '+05:45' POSIX-style (east is negative): a zone name cannot be misread.
        raise ConfigError(f"naive_timezone: {name!r}: give a zone name (Asia/Kathmandu, Europe/Berlin), not an offset")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise ConfigError(f"naive_timezone: {name!r} is not a time zone name (e.g. UTC, Europe/Berlin)") from None
    return name


# Settings that existed once: a file still naming one is told why it is gone.
REMOVED: dict[str, str] = {
    "completed_status": "it was never used (fail writes failed_status; nothing writes a completed status)",
}


QUEUE_LIBRARIES = ("graphile-worker", "pg-boss")


def _queue_libraries(v: Any) -> tuple[str, ...]:
    """graphile-worker, pg-boss, both (comma-separated or a TOML array), or 'none'."""
    items = _statuses(v)
    for lib in items:
        if lib.lower() not in QUEUE_LIBRARIES:
            raise ConfigError(f"queue_library: {lib!r} is not one of {', '.join(QUEUE_LIBRARIES)} (or none)")
    return tuple(dict.fromkeys(x.lower() for x in items))


def _url_list(v: Any) -> tuple[str, ...]:
    urls = _list(v)
    for u in urls:
        if "://" not in u:
            raise ConfigError(f"--url: {u!r} has no scheme (write https://{u})")
        scheme = u.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise ConfigError(f"--url: {u!r}: scheme must be http or https")
        netloc = u.split("://", 1)[1].split("/", 1)[0]
        if not netloc:
            raise ConfigError(f"--url: {u!r} has no host")
        if "@" in netloc:
            # httpx would send them as Basic auth with every probe, "no credentials" included.
            raise ConfigError("--url: remove the user:password@ part; credentials in a URL go with every request")
    # The same deployment given twice (with and without a trailing slash) is probed once.
    return tuple(dict.fromkeys(u.rstrip("/") for u in urls))


@dataclass(frozen=True)
class Option:
    """One configuration value: its environment variables, default and parser (from a Settings field)."""

    name: str
    env: tuple[str, ...]
    default: Any
    parse: Callable[[Any], Any]
    secret: bool = False
    help: str = ""


def _opt(default: Any, parse: Callable[[Any], Any], *aliases: str, secret: bool = False, help: str = "") -> Any:
    """A Settings field that is a configuration option: read from ``STUCKGEN_<NAME>``, then ``aliases``."""
    # A secret stays out of repr: a Settings in a traceback or a debug print must not show it.
    return field(default=default, repr=not secret, metadata={"option": (aliases, parse, secret, help)})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Resolved configuration: one typed field per option (this class is the option table).

    ``sources`` says where each value came from (``flag --x``, ``environment X``,
    ``.env X``, ``stuckgen.toml x``, ``default``), so `doctor` can show it.
    """

    database_url: str | None = _opt(None, _secret, "DATABASE_URL", "SUPABASE_DB_URL",
        secret=True, help="PostgreSQL URL of the app's database")
    internal_secret: str | None = _opt(None, _secret, "INTERNAL_API_SECRET",
        secret=True, help="the value the process route expects in x-internal-secret")
    base_url: tuple[str, ...] = _opt((), _url_list, help="deployment URL(s), comma-separated")
    route: str = _opt("/api/generate/process", _str, help="path of the process route")
    secret_header: str = _opt("x-internal-secret", _str, help="header carrying the internal secret")
    cookie: str | None = _opt(None, _secret, secret=True, help="session cookie header value (name=value; ...)")
    cookie_file: str | None = _opt(None, _str, help="file holding cookies (cookies.txt or a Cookie header)")
    cookie_name: str | None = _opt(None, _str,
        help="the app's session cookie name (auth.storageKey / cookieOptions.name); default sb-<ref>-auth-token")
    bypass_secret: str | None = _opt(None, _secret, "VERCEL_AUTOMATION_BYPASS_SECRET",
        secret=True, help="Vercel Deployment Protection bypass secret")
    threshold: float = _opt(120.0, _duration("--threshold"), help="quiet time after which a row is stuck")
    since: float | None = _opt(86400.0, _since,
        help="window of created rows listed and rated ('all': no limit); stuck rows created earlier are still counted and named")
    statement_timeout: float = _opt(30.0, _duration("--statement-timeout", _PG_TIMEOUT_MAX),
        help="the database cancels any statement of stuckgen running longer")
    lock_timeout: float = _opt(5.0, _duration("--lock-timeout", _PG_TIMEOUT_MAX),
        help="give up waiting for a row lock after this (remediation never waits on a worker)")
    connect_timeout: float = _opt(10.0, _duration("--connect-timeout"),
        help="give up connecting to the database after this")
    http_timeout: float = _opt(10.0, _duration("--http-timeout"),
        help="timeout of each HTTP request (probe, retrigger, APIs)")
    max_duration: float = _opt(None, _duration("--max-duration"),
        help="the worker function's maximum duration (Vercel maxDuration, e.g. 300s): a stalled row whose worker "
              "started longer ago than this plus a minute is provably dead")
    table: str = _opt("generations", _str, help="the job table (case-sensitive: a Prisma model Shot is \"Shot\")")
    db_schema: str | None = _opt(None, _str, help="PostgreSQL schema of the table (default: the current schema)")
    inflight_statuses: tuple[str, ...] = _opt(("processing", "queued"), _list,
        help="status values meaning work not finished; only rows in these can be stuck")
    failed_status: str = _opt("failed", _str,
        help="the status fail writes (checked against the column: enum label, CHECK) before anything is promised")
    trigger_statuses: tuple[str, ...] = _opt(("failed",), _statuses,
        help="statuses of rows read for evidence of a failed trigger ('none' reads none; default: the failed status)")
    trigger_window: float = _opt(3600.0, _duration("--trigger-window"),
        help="recent window on which check judges trigger failures (count and rate)")
    trigger_error_pattern: str = _opt(DEFAULT_TRIGGER_ERROR_PATTERN, _str,
        help="error text (PostgreSQL regex, case-insensitive) that says the trigger failed")
    queue_lock: float = _opt(60.0, _duration("--queue-lock"),
        help="how long a queue job's lock lasts (the app's GENERATION_QUEUE_LOCK_TIMEOUT_MS); a job locked "
             "more recently is alive")
    grace: tuple[tuple[str, float], ...] = _opt((), _grace,
        help="per class, the quiet time before a row of it is stuck: CLASS=DURATION,... (default "
             "awaiting-webhook=30m for rows waiting on a callback, the app's webhook grace)")
    routing_retry_grace: float = _opt(300.0, _duration("--routing-retry-grace"),
        help="a row whose routing retry (routingRetryAt) is ahead, or less than this behind, is alive")
    retrigger_classes: tuple[str, ...] = _opt((), _list,
        help="classes check's policy retriggers besides the safe ones (never-started, trigger-failed, "
             "queued-not-drained, timed-out)")
    max_trigger_failures: int = _opt(2, _int("--max-trigger-failures"),
        help="check fails when more rows than this failed at the trigger in the trigger window ...")
    max_trigger_failure_rate: float = _opt(0.10, _float("--max-trigger-failure-rate"),
        help="... and they are more than this share of the rows created in it (0.1 or 10%)")
    naive_timezone: str = _opt("UTC", _timezone,
        help="zone of times stored without one (timestamp without time zone, ISO strings without offset)")
    provider_results: str = _opt("auto", _choice("provider_results", ("auto", "webhook", "sync", "polling", "none")),
        help="how the app learns a provider's result: webhook, sync (a route that asks the provider), "
              "polling (the browser asks while the page is open), none; auto: from the step log")
    outputs: str = _opt("outputs.generation_id", _str,
        help="TABLE.FK_COLUMN of the outputs table pointing at the job row, or none")
    queue: str = _opt("generation_jobs.generation_id", _str,
        help="TABLE.FK_COLUMN of the queue table (lock/attempt columns) pointing at the job row, or none")
    queue_library: tuple[str, ...] = _opt((), _queue_libraries,
        help="read the jobs of this job-queue library (graphile-worker, pg-boss, or both comma-separated) "
             "by its own rules instead of an app table")
    audit_table: str = _opt("stuckgen.audit", _str,
        help="audit table of every change and trigger, created on first use")
    audit_file: str | None = _opt(None, _str, help="keep the audit log in this JSON Lines file instead of a table")
    operator: str | None = _opt(None, _str, "USER", help="who runs this, for the audit log")
    metrics_file: str | None = _opt(None, _str, help="OpenMetrics file check writes after every run")
    slack_webhook_url: str | None = _opt(None, _secret,
        secret=True, help="Slack incoming webhook for incident messages")
    pagerduty_routing_key: str | None = _opt(None, _secret, secret=True, help="PagerDuty Events API v2 routing key")
    pagerduty_events_url: str | None = _opt(None, _str, help="PagerDuty Events API v2 endpoint (default PagerDuty's)")
    notify_webhook_url: str | None = _opt(None, _secret, secret=True, help="webhook that receives incident events")
    notify_webhook_secret: str | None = _opt(None, _secret,
        secret=True, help="Standard Webhooks signing secret (base64, optionally whsec_)")
    heartbeat_url: str | None = _opt(None, _secret,
        secret=True, help="cron monitor ping URL (healthchecks.io convention)")
    vercel_token: str | None = _opt(None, _secret, "VERCEL_TOKEN",
        secret=True, help="Vercel API token (read-only use)")
    vercel_project: str | None = _opt(None, _str, "VERCEL_PROJECT_ID", help="Vercel project id or name")
    vercel_team: str | None = _opt(None, _str, "VERCEL_TEAM_ID", "VERCEL_ORG_ID", help="Vercel team id (teamId)")
    replicate_api_url: str = _opt("https://api.replicate.com/v1", _str,
        help="the provider's API base (Replicate's prediction API)")
    replicate_api_token: str | None = _opt(None, _secret, "REPLICATE_API_TOKEN", "REPLICATE_API_KEY",
        secret=True, help="the provider's API token (the app's REPLICATE_API_TOKEN)")
    replicate_webhook_secret: str | None = _opt(None, _secret, "REPLICATE_WEBHOOK_SECRET",
        secret=True, help="the secret the app's webhook route verifies (replaying a callback)")
    vercel_api_url: str = _opt("https://api.vercel.com", _str,
        help="Vercel REST API base URL (an HTTPS proxy in front of it; plain HTTP only on loopback)")

    sources: Mapping[str, str] = field(default_factory=dict)
    mapping_overrides: Mapping[str, str] = field(default_factory=dict)
    mapping_sources: Mapping[str, str] = field(default_factory=dict)
    rules: tuple[Mapping[str, Any], ...] | None = None
    replace_default_rules: bool = False  # [[rules]] replace the defaults instead of coming before them
    config_file: str | None = None
    env_file: str | None = None

    @property
    def values(self) -> dict[str, Any]:
        """Every option's value by name."""
        return {name: getattr(self, name) for name in OPTIONS}

    def from_flag(self, name: str) -> bool:
        """Whether the command line gave this option (not the environment, a file or the default)."""
        return self.sources.get(name, "").startswith("flag")

    def secrets(self) -> list[str]:
        """Every secret value in play (of the DSN, only its password), for scrubbing and leak tests."""
        out = [getattr(self, o.name) for o in OPTIONS.values() if o.secret and o.name != "database_url"]
        if self.database_url:
            from stuckgen.secrets import dsn_password
            out.append(dsn_password(self.database_url))
        return [s for s in out if s]


OPTIONS: dict[str, Option] = {
    f.name: Option(name=f.name, env=(f"STUCKGEN_{f.name.upper()}", *f.metadata["option"][0]), default=f.default,
                   parse=f.metadata["option"][1], secret=f.metadata["option"][2], help=f.metadata["option"][3])
    for f in fields(Settings) if "option" in f.metadata
}


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a .env file; a line that is not KEY=VALUE is a ConfigError naming the line."""
    from dotenv.parser import parse_stream

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--env-file: cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    out: dict[str, str] = {}
    import io
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise ConfigError(f"{path}:{binding.original.line}: not a KEY=VALUE line")
        if binding.key is not None and binding.value is not None:
            out[binding.key] = binding.value
    return out


def read_config_file(path: Path | None, cwd: Path) -> tuple[dict[str, Any], str | None]:
    """stuckgen.toml, or [tool.stuckgen] in pyproject.toml; (table, file name)."""
    candidates: list[tuple[Path, bool]] = []
    if path is not None:
        candidates.append((path, path.name == "pyproject.toml"))
        if not path.exists():
            raise ConfigError(f"--config: {path} does not exist")
    else:
        candidates += [(cwd / "stuckgen.toml", False), (cwd / "pyproject.toml", True)]
    for p, is_pyproject in candidates:
        if not p.is_file():
            continue
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read: {exc}") from exc
        if is_pyproject:
            table = data.get("tool", {}).get("stuckgen")
            if table is None:
                continue
        else:
            table = data
        if not isinstance(table, dict):
            raise ConfigError(f"{p}: [tool.stuckgen] must be a table")
        return table, str(p)
    return {}, None


def parse_map_flags(items: tuple[str, ...] | list[str], *, option: str = "--map") -> dict[str, str]:
    if not items:
        return {}
    # schema.FIELDS is the one list of logical fields; importing it costs psycopg, so only when mapping.
    from stuckgen.schema import FIELDS

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"{option}: {item!r} is not FIELD=COLUMN[.json.key]")
        if key not in FIELDS:
            raise ConfigError(f"{option}: unknown field {key!r}; fields: {', '.join(sorted(FIELDS))}")
        out[key] = value.strip()
    return out


def unknown_setting(where: str, key: str) -> str:
    """The message for a key no setting has: the closest names, then every valid key."""
    import difflib

    name = key.replace("-", "_")
    if name in REMOVED:
        return f"{where}: setting {key!r} was removed: {REMOVED[name]}; delete the line"
    close = difflib.get_close_matches(name, list(OPTIONS), n=2, cutoff=0.6)
    guess = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return (f"{where}: unknown setting {key!r}{guess}; valid keys: {', '.join(OPTIONS)}, "
            "and the tables [mapping] and [[rules]]")


def _strength(source: str) -> int:
    """Precedence of a source: flag > environment > .env > stuckgen.toml > default."""
    for rank, prefix in ((4, "flag "), (3, "environment "), (2, ".env ")):
        if source.startswith(prefix):
            return rank
    return 0 if source == "default" else 1


def _one_of(values: dict[str, Any], sources: dict[str, str], a: str, b: str) -> None:
    """Two options that give one thing (a cookie header, a cookie file): the stronger source wins.

    A flag always beats the environment, whichever of the two each names; both as flags is
    a usage error; at equal strength ``a`` wins (documented precedence).
    """
    if not values.get(a) or not values.get(b):
        return
    sa, sb = _strength(sources[a]), _strength(sources[b])
    if sa == sb == 4:
        raise ConfigError(f"{sources[a].removeprefix('flag ')} and {sources[b].removeprefix('flag ')} both given: "
                          "pass one of them")
    loser, winner = (b, a) if sa >= sb else (a, b)
    values[loser] = OPTIONS[loser].default
    sources[loser] = f"not used: {sources[winner]} wins over {sources[loser]}"


def _dotenv(env_file: str | None, cwd: Path) -> tuple[Path | None, dict[str, str]]:
    """The .env file read (``--env-file``, else ``./.env`` when there is one) and its variables."""
    env_path: Path | None
    if env_file:
        env_path = Path(env_file)
        if not env_path.is_file():
            raise ConfigError(f"--env-file: {env_file} does not exist")
    else:
        env_path = cwd / ".env" if (cwd / ".env").is_file() else None
    return env_path, read_env_file(env_path) if env_path else {}


def _toml_options(toml: Mapping[str, Any], toml_name: str | None) -> dict[str, Any]:
    """The options stuckgen.toml sets at its top level (not its tables, rules or mapping); an unknown one is an error."""
    opts = {k: v for k, v in toml.items()
            if (not isinstance(v, dict) or k == "grace") and k not in ("rules", "replace_default_rules")}
    for k in opts:
        if k.replace("-", "_") not in OPTIONS:
            raise ConfigError(unknown_setting(str(toml_name), k))
    return opts


def _raw_value(name: str, opt: Option, *, flags: Mapping[str, Any], environ: Mapping[str, str],
               dotenv: Mapping[str, str], toml_opts: Mapping[str, Any], toml_name: str | None,
               flag_names: Mapping[str, str] | None) -> tuple[Any, str]:
    """(raw value, source) of one option by precedence: flag > environment > .env > toml > default."""
    if name in flags:
        return flags[name], "flag " + (flag_names or {}).get(name, "--" + name.replace("_", "-"))
    for source, variables in (("environment", environ), (".env", dotenv)):
        for var in opt.env:
            if var in variables and variables[var] != "":
                return variables[var], f"{source} {var}"
    key = name if name in toml_opts else name.replace("_", "-")
    if key in toml_opts:
        return toml_opts[key], f"{Path(toml_name or '').name} {key}"
    return None, "default"


def _mapping_overrides(toml: Mapping[str, Any], toml_name: str | None, values: dict[str, Any],
                       sources: dict[str, str], *, environ: Mapping[str, str], dotenv: Mapping[str, str],
                       map_flags: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """Field mappings from toml's [mapping], STUCKGEN_MAP and --map (later wins), with their sources.

    [mapping]'s table, schema, outputs and queue fill those options when nothing else set them.
    """
    overrides: dict[str, str] = {}
    override_src: dict[str, str] = {}
    toml_map = toml.get("mapping", {})
    if not isinstance(toml_map, dict):
        raise ConfigError(f"{toml_name}: [mapping] must be a table")
    for k, v in toml_map.items():
        if k in ("table", "schema", "outputs", "queue"):
            continue
        for key, value in parse_map_flags([f"{k}={v}"], option=f"{toml_name} [mapping]").items():
            overrides[key], override_src[key] = value, f"{Path(toml_name or '').name} [mapping]"
    for k, opt_name in (("table", "table"), ("schema", "db_schema"), ("outputs", "outputs"), ("queue", "queue")):
        if k in toml_map and sources[opt_name] == "default":
            values[opt_name] = str(toml_map[k])
            sources[opt_name] = f"{Path(toml_name or '').name} [mapping] {k}"
    env_map = environ.get("STUCKGEN_MAP") or dotenv.get("STUCKGEN_MAP")
    if env_map:
        for key, value in parse_map_flags(env_map.split(","), option="STUCKGEN_MAP").items():
            overrides[key], override_src[key] = value, "environment STUCKGEN_MAP"
    for key, value in parse_map_flags(tuple(map_flags)).items():
        overrides[key], override_src[key] = value, "flag --map"
    return overrides, override_src


def _toml_rules(toml: Mapping[str, Any], toml_name: str | None) -> tuple[tuple[dict[str, Any], ...] | None, bool]:
    """stuckgen.toml's [[rules]] and whether they replace the default rules."""
    rules = toml.get("rules")
    if rules is not None and not (isinstance(rules, list) and all(isinstance(r, dict) for r in rules)):
        raise ConfigError(f"{toml_name}: rules must be an array of tables ([[rules]])")
    replace_rules = toml.get("replace_default_rules", False)
    if not isinstance(replace_rules, bool):
        raise ConfigError(f"{toml_name}: replace_default_rules must be true or false")
    return (tuple(rules) if rules else None), replace_rules


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    env_file: str | None = None,
    config_file: str | None = None,
    map_flags: tuple[str, ...] = (),
    flag_names: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every option by precedence. Raises ConfigError naming the bad option.

    ``flag_names``: the command's own spelling of each option's flag (``base_url`` is
    ``--url``), so that sources and messages name flags that exist.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None and v != ()}
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    env_path, dotenv = _dotenv(env_file, cwd)
    toml, toml_name = read_config_file(Path(config_file) if config_file else None, cwd)
    toml_opts = _toml_options(toml, toml_name)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, opt in OPTIONS.items():
        raw, src = _raw_value(name, opt, flags=flags, environ=environ, dotenv=dotenv, toml_opts=toml_opts,
                              toml_name=toml_name, flag_names=flag_names)
        if src == "default":
            values[name] = opt.default
        else:
            try:
                values[name] = opt.parse(raw)
            except ConfigError as exc:
                raise ConfigError(f"{exc.message} (from {src})") from None
        sources[name] = src

    _one_of(values, sources, "cookie", "cookie_file")
    overrides, override_src = _mapping_overrides(toml, toml_name, values, sources, environ=environ, dotenv=dotenv,
                                                 map_flags=map_flags)
    rules, replace_rules = _toml_rules(toml, toml_name)
    return Settings(**values, sources=sources, mapping_overrides=overrides, mapping_sources=override_src,
                    rules=rules, replace_default_rules=replace_rules, config_file=toml_name,
                    env_file=str(env_path) if env_path else None)
