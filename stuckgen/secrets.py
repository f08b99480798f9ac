"""Describe secrets without revealing them: length and a short SHA-256 fingerprint."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit, urlunsplit


def fingerprint(value: str) -> str:
    """A short, stable fingerprint two people can compare: ``sha256:1a2b3c4d``."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


def describe(value: str | None) -> str:
    """``64 chars, sha256:1a2b3c4d`` or ``not set``; never the value itself."""
    if value is None or value == "":
        return "not set"
    return f"{len(value)} chars, {fingerprint(value)}"


def hygiene_problems(value: str) -> list[str]:
    """Copy-paste faults in a secret value: whitespace, newlines, quotes."""
    problems: list[str] = []
    if value != value.strip():
        if value.rstrip("\r\n") != value:
            problems.append("ends with a newline")
        elif value[-1:].isspace():
            problems.append("has trailing whitespace")
        if value[:1].isspace():
            problems.append("has leading whitespace")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        problems.append("is wrapped in quotes")
    if any(c in value.strip() for c in "\r\n"):
        problems.append("contains a line break")
    return problems


_PASSWORD_IN_KV = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """A DSN with its password replaced by ``***`` (URL or key=value form)."""
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return "<unparseable DSN>"
        if parts.password is None:
            return dsn
        netloc = parts.netloc
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        return urlunsplit((parts.scheme, f"{user}:***@{hostport}", parts.path, parts.query, parts.fragment))
    return _PASSWORD_IN_KV.sub(r"\1***", dsn)


def scrub(text: str, secrets: "list[str | None]") -> str:
    """Replace every occurrence of each known secret in ``text`` (last line of defence)."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
            stripped = s.strip()
            if stripped and stripped != s and len(stripped) >= 4:
                text = text.replace(stripped, "***")
    return text


def dsn_password(dsn: str) -> str | None:
    """The password inside a DSN, so that it can be scrubbed from output (never shown)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        return conninfo_to_dict(dsn).get("password") or None
    except Exception:  # a malformed DSN has no password we can find
        return None
