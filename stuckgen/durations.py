"""Durations and times as people and JSON write them: ``90s``, ``2m``, ``1h30m``, ``PT2M``; ISO 8601 UTC."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from stuckgen.errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_HUMAN = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_ISO = re.compile(
    r"P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


# Longer than any window or timeout makes sense for; past it PostgreSQL's timestamps overflow
# ("timestamp out of range") after the output has started.
MAX_SECONDS = 100 * 366 * 86400.0


def parse_duration(text: str, *, option: str = "duration") -> float:
    """Seconds in ``text``; raises ConfigError naming ``option`` when it is not a duration."""
    seconds = _parse(text, option)
    if seconds > MAX_SECONDS:
        raise ConfigError(f"{option}: {str(text).strip()!r} is too long (at most 100 years)")
    return seconds


def _parse(text: str, option: str) -> float:
    raw = text.strip() if isinstance(text, str) else str(text)
    s = raw.lower().replace(" ", "")
    if not s:
        raise ConfigError(f"{option}: empty duration (use e.g. 90s, 2m, 1h30m or PT2M)")
    if s.startswith("p"):
        m = _ISO.fullmatch(s.upper())
        if m and any(m.group(k) for k in "wdhms") and not s.upper().endswith("T"):
            return (
                float(m.group("w") or 0) * 604800
                + float(m.group("d") or 0) * 86400
                + float(m.group("h") or 0) * 3600
                + float(m.group("m") or 0) * 60
                + float(m.group("s") or 0)
            )
        raise ConfigError(f"{option}: {raw!r} is not an ISO-8601 duration (e.g. PT2M, PT1H30M)")
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        raise ConfigError(f"{option}: {raw!r} has no unit (write {raw}s, {raw}m or {raw}h)")
    pos = 0
    total = 0.0
    for m in _HUMAN.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ConfigError(f"{option}: {raw!r} is not a duration (use e.g. 90s, 2m, 1h30m or PT2M)")
    return total


def format_duration(seconds: float) -> str:
    """Compact human form: ``45s``, ``3m05s``, ``2h10m``, ``3d4h``."""
    if seconds is None:
        return "-"
    neg = seconds < 0
    s = int(round(abs(seconds)))
    if s >= 3600 and s % 3600 == 0:
        out = f"{s // 86400}d" if s % 86400 == 0 and s >= 172800 else f"{s // 3600}h"
        return "-" + out if neg else out
    if s < 60:
        out = f"{s}s"
    elif s < 3600:
        out = f"{s // 60}m{s % 60:02d}s"
    elif s < 86400:
        out = f"{s // 3600}h{(s % 3600) // 60:02d}m"
    else:
        out = f"{s // 86400}d{(s % 86400) // 3600}h"
    return "-" + out if neg else out


def iso_utc(t: datetime | None) -> str | None:
    """``t`` in UTC as ISO 8601 with a ``Z`` (what every JSON document writes); None stays None."""
    return None if t is None else t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def format_ago(seconds: float | None, *, unknown: str = "-") -> str:
    """``3m05s ago``; ``unknown`` when there is no time."""
    return unknown if seconds is None else f"{format_duration(seconds)} ago"
