"""Describe secrets without revealing them: length and a short SHA-256 fingerprint."""

from __future__ import annotations

from collections.abc import Sequence

import hashlib
import re


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


# Every way libpq carries a secret in a connection string: these parameters, in URL
# query or keyword form, plus the password of the URL's userinfo and secret-looking
# settings passed to the server in ``options`` (``-c app.password=...``).
_SECRET_PARAMS = frozenset({"password", "sslpassword"})
_SECRET_NAME = re.compile(r"pass|pw|secret|token|key|auth|credential", re.IGNORECASE)
_URL_SCHEMES = ("postgresql://", "postgres://")
# A keyword-form pair as libpq reads it: a quoted value with backslash escapes, or a bare one.
_KV_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)('(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)*)")
MASK = "***"


class MalformedDSN(ValueError):
    """A connection string libpq cannot parse; its text says why without quoting the input."""


def redact_dsn(dsn: str) -> str:
    """The DSN as it may be shown: every secret libpq can read from it replaced by ``***``.

    The one masking function for every place that shows a DSN. It understands the
    URL form (``user:pw@``, ``?password=``, ``?sslpassword=``, ``?options=``) and the
    keyword form (``password=``, ``sslpassword=``, ``options='-c x.secret=...'``).
    A string libpq cannot parse is never echoed, only described (``describe_dsn``).
    """
    try:
        _parse(dsn)
    except MalformedDSN:
        return describe_dsn(dsn)
    if dsn.startswith(_URL_SCHEMES):
        return _mask_url(dsn)
    return _KV_PAIR.sub(_mask_pair, dsn)


def describe_dsn(dsn: str) -> str:
    """A connection string we will not show: its kind, length and fingerprint."""
    kind = "URL" if "://" in dsn or dsn.lower().startswith("postgres") else "connection string"
    return f"<unparseable {kind}: {describe(dsn)}>"


def malformed_reason(dsn: str) -> str:
    """Why libpq cannot parse ``dsn``, with every quoted fragment of the input left out."""
    try:
        _parse(dsn)
    except MalformedDSN as exc:
        return str(exc)
    return ""


def _parse(dsn: str) -> dict[str, str]:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    except ProgrammingError as exc:
        # libpq quotes the input (password included) in its message: keep its words,
        # drop its quotes of more than one character (a lone '=' or ']' is safe and useful).
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else "cannot be parsed"
        text = re.sub(r'"([^"]*)"', lambda q: q.group(0) if len(q.group(1)) <= 1 else '"…"', text)
        if re.match(r"postgres(ql)?:(?!//)", dsn, re.IGNORECASE):
            text += " (a URL starts with postgresql:// — two slashes)"
        raise MalformedDSN(text) from None


def _mask_url(dsn: str) -> str:
    scheme, rest = dsn.split("://", 1)
    # The authority ends at the first '/', '?' or '#'; userinfo ends at its last '@'.
    m = re.match(r"([^/?#]*)(.*)", rest, re.DOTALL)
    assert m is not None
    authority, tail = m.group(1), m.group(2)
    if "@" in authority:
        userinfo, _, hosts = authority.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        authority = f"{userinfo}@{hosts}"
    path, sep, query = tail.partition("?")
    if sep:
        fragment = ""
        if "#" in query:
            query, fragment = query.split("#", 1)
            fragment = "#" + fragment
        query = "&".join(_mask_query_item(item) for item in query.split("&")) + fragment
    return f"{scheme}://{authority}{path}{sep}{query}"


def _mask_query_item(item: str) -> str:
    from urllib.parse import quote, unquote

    name, eq, value = item.partition("=")
    key = unquote(name).lower()
    if key in _SECRET_PARAMS:
        return f"{name}={MASK}"
    if key == "options" and eq:
        return f"{name}={quote(_mask_options(unquote(value)), safe=' =-_.,*')}".replace(" ", "%20")
    return item


def _mask_pair(m: re.Match[str]) -> str:
    name, eq, value = m.group(1), m.group(2), m.group(3)
    if name.lower() in _SECRET_PARAMS:
        return f"{name}{eq}{MASK}"
    if name.lower() == "options":
        inner = _unquote_kv(value)
        masked = _mask_options(inner)
        if masked != inner:
            return f"{name}{eq}'" + masked.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return m.group(0)


def _unquote_kv(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return re.sub(r"\\(.)", r"\1", value)


def _mask_options(options: str) -> str:
    """``-c app.password=x -c search_path=s`` -> ``-c app.password=*** -c search_path=s``."""
    out: list[str] = []
    for token in re.split(r"(\s+)", options):
        name, eq, _value = token.partition("=")
        bare = name.removeprefix("--").removeprefix("-c").strip()
        out.append(f"{name}={MASK}" if eq and _SECRET_NAME.search(bare) else token)
    return "".join(out)


def dsn_secrets(dsn: str) -> list[str]:
    """Every secret value inside a DSN, as written and as decoded, so that output can be scrubbed."""
    from urllib.parse import quote, unquote

    found: list[str] = []
    try:
        params = _parse(dsn)
    except MalformedDSN:
        params = {}
    for key in _SECRET_PARAMS:
        if params.get(key):
            found.append(params[key])
    for token in (params.get("options") or "").split():
        name, eq, value = token.partition("=")
        if eq and value and _SECRET_NAME.search(name.removeprefix("--").removeprefix("-c")):
            found.append(value)
    # The URL's userinfo, as written (percent-encoded) too, also when libpq cannot parse the rest.
    m = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:/*([^/?#]*)@", dsn)
    if m and ":" in m.group(1):
        raw = m.group(1).rsplit("@", 1)[0].split(":", 1)[1] if "@" in m.group(1) else m.group(1).split(":", 1)[1]
        found += [raw, unquote(raw)]
    found += [quote(v, safe="") for v in list(found)]
    return list(dict.fromkeys(v for v in found if v))


def scrub(text: str, secrets: "Sequence[str | None]") -> str:
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
        return _parse(dsn).get("password") or None
    except MalformedDSN:  # a malformed DSN has no password libpq would use
        return None
