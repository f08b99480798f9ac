"""Read a Supabase session cookie without trusting it: chunks, ``base64-`` values, JWT ``exp``.

Accepts a ``Cookie:`` header (``name=value; name2=value2``) or a Netscape
``cookies.txt`` export. Nothing here verifies a signature: the point is to tell
an operator, during an incident, whether the cookie they hold is expired,
incomplete or too large, before blaming the deployment. Garbage input yields
``problems``, never an exception; only an unreadable file raises ``ConfigError``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from stuckgen.errors import ConfigError

# Browsers drop a single cookie whose name plus value exceed 4096 bytes
# (RFC 6265 asks for at least that much, and Chrome/Firefox stop there).
MAX_COOKIE_BYTES = 4096
# Many proxies and Node's default header limit start refusing requests around
# 8 KiB of headers; a Cookie header alone past this is a likely 431/400.
MAX_HEADER_BYTES = 8192
# supabase-js splits values at about 3180 characters; more than a handful of
# chunks means the session carries bulky metadata.
MAX_CHUNKS = 4

_AUTH_NAME = re.compile(r"^sb-(?P<ref>.+?)-auth-token(?:\.(?P<idx>\d{1,4}))?$")


@dataclass(frozen=True, kw_only=True)
class CookieInfo:
    """What a cookie string holds, described without its values."""

    names: tuple[str, ...]  # every cookie name found, in order
    auth_cookie: str | None  # base name, e.g. ``sb-abcd-auth-token``
    project_ref: str | None  # ``abcd`` from the name above
    total_size: int  # bytes of the Cookie header holding every cookie given
    chunk_count: int  # 0 when absent, 1 when unchunked
    largest_cookie: int  # bytes of the largest single ``name=value``
    base64_prefixed: bool
    subject: str | None  # JWT ``sub`` (a user id)
    exp: int | None  # JWT ``exp``, epoch seconds
    seconds_to_expiry: float | None  # ``exp - now`` at parse time; negative = expired
    problems: tuple[str, ...]
    # Only the auth cookies, ready to send; never shown (repr=False) because it is a credential.
    header: str = field(default="", repr=False)

    @property
    def usable(self) -> bool:
        """True when a session with an access token was decoded."""
        return self.auth_cookie is not None and (self.subject is not None or self.exp is not None)

    @property
    def expired(self) -> bool:
        return self.seconds_to_expiry is not None and self.seconds_to_expiry <= 0

    @property
    def oversized(self) -> bool:
        return (
            self.largest_cookie > MAX_COOKIE_BYTES
            or self.total_size > MAX_HEADER_BYTES
            or self.chunk_count > MAX_CHUNKS
        )


def split_header(text: str) -> list[tuple[str, str]]:
    """``name=value`` pairs of a Cookie header (tolerates a ``Cookie:`` prefix and junk)."""
    text = text.strip()
    if text[:7].lower() == "cookie:":
        text = text[7:]
    pairs: list[tuple[str, str]] = []
    for part in re.split(r"[;\r\n]", text):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        pairs.append((name, value))
    return pairs


def split_netscape(text: str) -> list[tuple[str, str]]:
    """``name=value`` pairs of a Netscape cookies.txt export (domain is not filtered)."""
    pairs: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith("#HttpOnly_"):
            line = line[len("#HttpOnly_") :]
        elif line.startswith("#") or not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) >= 7 and fields[5].strip():
            pairs.append((fields[5].strip(), fields[6].strip()))
    return pairs


def _looks_netscape(text: str) -> bool:
    return "Netscape HTTP Cookie File" in text[:200] or any(
        line.count("\t") >= 6 for line in text.splitlines()[:50]
    )


def _b64url_decode(data: str) -> bytes:
    data = data.strip()
    # Accept both alphabets; supabase uses base64url without padding.
    data = data.replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def decode_jwt_payload(token: str) -> dict[str, object] | None:
    """The JWT's payload as a dict, without checking its signature; None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        payload = json.loads(_b64url_decode(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


def decode_session_value(value: str) -> tuple[dict[str, object] | None, str | None]:
    """(session dict, problem): a ``base64-`` or URL-encoded JSON session, or an old array form."""
    try:
        if value.startswith("base64-"):
            raw = _b64url_decode(value[len("base64-") :]).decode("utf-8")
        else:
            raw = unquote(value)
        session = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None, "the auth-token value is neither base64- JSON nor URL-encoded JSON"
    if isinstance(session, list) and session and isinstance(session[0], str):
        # auth-helpers stored [access_token, refresh_token, ...]
        return {"access_token": session[0]}, None
    if not isinstance(session, dict):
        return None, "the auth-token value is JSON but not a session object"
    return session, None


def session_token(cookies: dict[str, str] | list[tuple[str, str]]) -> tuple[str | None, str | None, list[str]]:
    """(auth cookie base name, access token, problems) from raw cookie pairs.

    Shared by the probe (to describe a cookie) and the reference deployment (to
    authenticate one), so both reassemble chunks the same way.
    """
    pairs = list(cookies.items()) if isinstance(cookies, dict) else list(cookies)
    problems: list[str] = []
    groups: dict[str, dict[int | None, str]] = {}
    for name, value in pairs:
        m = _AUTH_NAME.match(name)
        if m:
            idx = m.group("idx")
            groups.setdefault(m.group("ref"), {})[int(idx) if idx is not None else None] = value
    if not groups:
        return None, None, ["no sb-<project-ref>-auth-token cookie in the input"]
    refs = sorted(groups)
    if len(refs) > 1:
        problems.append(f"auth cookies for {len(refs)} projects ({', '.join(refs)}); reading {refs[0]}")
    ref = refs[0]
    base = f"sb-{ref}-auth-token"
    chunks = groups[ref]
    if None in chunks:
        value = chunks[None]
        if len(chunks) > 1:
            problems.append("both a whole and a chunked auth cookie are present; the whole one wins")
    else:
        indexes = sorted(i for i in chunks if i is not None)
        missing = [i for i in range(indexes[-1] + 1) if i not in chunks]
        if missing:
            problems.append(
                f"auth cookie chunk(s) {', '.join(f'.{i}' for i in missing[:5])} missing "
                f"(have {', '.join(f'.{i}' for i in indexes[:5])})"
            )
            return base, None, problems
        value = "".join(chunks[i] for i in indexes)
    session, problem = decode_session_value(value)
    if problem:
        return base, None, problems + [problem]
    assert session is not None
    token = session.get("access_token")
    if not isinstance(token, str) or not token:
        return base, None, problems + ["the session has no access_token"]
    return base, token, problems


def session_claims(cookies: dict[str, str] | list[tuple[str, str]]) -> tuple[str | None, dict[str, object] | None, list[str]]:
    """(auth cookie base name, JWT claims unverified, problems) from raw cookie pairs."""
    base, token, problems = session_token(cookies)
    if token is None:
        return base, None, problems
    claims = decode_jwt_payload(token)
    if claims is None:
        return base, None, problems + ["the access_token is not a decodable JWT"]
    return base, claims, problems


def parse_cookies(text: str, *, now: float) -> CookieInfo:
    """Describe a cookie string (header or Netscape form); never raises on bad input."""
    pairs = split_netscape(text) if _looks_netscape(text) else split_header(text)
    problems: list[str] = []
    if not pairs:
        problems.append("no name=value cookie found in the input")
    base, claims, found = session_claims(pairs) if pairs else (None, None, [])
    problems.extend(found)
    auth_pairs = [(n, v) for n, v in pairs if (m := _AUTH_NAME.match(n)) and f"sb-{m.group('ref')}-auth-token" == base]
    chunk_count = len(auth_pairs)
    sizes = [len(f"{n}={v}".encode("utf-8", "replace")) for n, v in pairs]
    raw_exp = claims.get("exp") if claims else None
    exp: float | None = float(raw_exp) if isinstance(raw_exp, (int, float)) and not isinstance(raw_exp, bool) else None
    if claims is not None and (
        exp is None or not math.isfinite(exp) or abs(exp) > 1e13
    ):
        problems.append("the access_token has no plausible numeric exp")
        exp = None
    sub = claims.get("sub") if claims else None
    header = "; ".join(f"{n}={v}" for n, v in auth_pairs)
    return CookieInfo(
        names=tuple(n for n, _ in pairs),
        auth_cookie=base,
        project_ref=base[3 : -len("-auth-token")] if base else None,
        total_size=len("; ".join(f"{n}={v}" for n, v in pairs).encode("utf-8", "replace")),
        chunk_count=chunk_count,
        largest_cookie=max(sizes, default=0),
        base64_prefixed=any(v.startswith("base64-") for _, v in auth_pairs[:1]),
        subject=sub if isinstance(sub, str) else None,
        exp=int(exp) if exp is not None else None,
        seconds_to_expiry=(float(exp) - now) if exp is not None else None,
        problems=tuple(problems),
        header=header,
    )


def load_cookie_file(path: str | Path, *, now: float) -> CookieInfo:
    """``parse_cookies`` on a file; ConfigError when it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read cookie file {path}: {exc.strerror or exc}") from exc
    return parse_cookies(text, now=now)


def configured_cookie(cookie: str | None, cookie_file: str | None, *, now: float) -> CookieInfo | None:
    """The operator's cookie: ``--cookie`` (a header value) wins over ``--cookie-file``; None when neither."""
    if cookie:
        return parse_cookies(cookie, now=now)
    if cookie_file:
        return load_cookie_file(cookie_file, now=now)
    return None
