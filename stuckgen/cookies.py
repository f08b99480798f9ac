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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from stuckgen.errors import ConfigError

# Browsers drop a single cookie whose name plus value exceed 4096 bytes
# (RFC 6265 asks for at least that much, and Chrome/Firefox stop there).
MAX_COOKIE_BYTES = 4096
# Server limits a Cookie header can cross, smallest first: (bytes, who, what happens).
# nginx checks each header line against one large_client_header_buffers buffer (8k by
# default); Node.js (Next.js) checks all headers together against --max-http-header-size,
# 16 KiB by default since Node 14 (Node 20 included). A 3-chunk session (~8.5 KB) crosses
# only the first.
HEADER_LIMITS: tuple[tuple[int, str, str], ...] = (
    (8192, "nginx's default per-header buffer (large_client_header_buffers 8k)",
     "a proxy or self-hosted server with nginx defaults answers 400 'Request Header Or Cookie Too Large'"),
    (16384, "Node.js's default header limit (--max-http-header-size, 16 KiB on Node 20)",
     "Next.js on Node answers 431 Request Header Fields Too Large"),
)
MAX_HEADER_BYTES = HEADER_LIMITS[-1][0]  # past this even Node refuses the request
# supabase-js splits values at about 3180 characters; more than a handful of
# chunks means the session carries bulky metadata.
MAX_CHUNKS = 4

_AUTH_NAME = re.compile(r"sb-(?P<ref>.+?)-auth-token")
# A chunk's name as the library makes it (``isChunkLike``): the base, a dot, an index without leading zeros.
_CHUNK_NAME = re.compile(r"(.*)[.](0|[1-9][0-9]*)")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


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
    notes: tuple[str, ...] = ()  # odd but harmless to @supabase/ssr: stale chunks, a custom name
    duplicates: tuple[str, ...] = ()  # cookie names given twice with different values
    # The cookies @supabase/ssr reads, ready to send; never shown (repr=False): it is a credential.
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
        """Past a limit that refuses the request wherever the app runs (browser, Node, chunk count)."""
        return (
            self.largest_cookie > MAX_COOKIE_BYTES
            or self.total_size > MAX_HEADER_BYTES
            or self.chunk_count > MAX_CHUNKS
        )

    @property
    def header_limits_crossed(self) -> tuple[tuple[int, str, str], ...]:
        """The server limits (``HEADER_LIMITS``) this Cookie header is over."""
        size = self.total_size + len("Cookie: ")
        return tuple(limit for limit in HEADER_LIMITS if size > limit[0])


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


def parse_cookie_header(header: str) -> list[tuple[str, str]]:
    """Every ``name=value`` of a request's Cookie header as the ``cookie`` package (v1) splits it.

    What ``parseCookieHeader`` of @supabase/ssr hands the library, before it keeps the first
    of each name: parts without ``=`` are skipped, spaces and tabs trimmed, quotes kept.
    """
    pairs: list[tuple[str, str]] = []
    for part in header.split(";"):
        name, eq, value = part.partition("=")
        name = name.strip(" \t")
        if eq and name:
            pairs.append((name, value.strip(" \t")))
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


def _base64url_text(data: str) -> str | None:
    """``stringFromBase64URL`` of @supabase/ssr: whitespace and ``=`` skipped, any other stray character fails."""
    cleaned = "".join(c for c in data if c not in " \t\n\r=")
    if not _BASE64URL.fullmatch(cleaned):
        return None
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _cookie_value(raw: str) -> str:
    """A Cookie header value as the ``cookie`` package (v1) decodes it: %-escapes only, raw when invalid."""
    if "%" not in raw:
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return raw


def decode_session_value(value: str) -> tuple[dict[str, object] | None, str | None]:
    """(session, problem): what @supabase/ssr's storage returns for one combined cookie value.

    A ``base64-`` value is base64url-decoded and must be JSON; any other value is taken as
    it is (the library reads it as JSON too). Then auth-js keeps it only when it is an object
    with ``access_token``, ``refresh_token`` and ``expires_at`` (``_isValidSession``): the old
    auth-helpers array ``[access_token, refresh_token, ...]`` is thrown away, the user signed out.
    """
    if value.startswith("base64-"):
        text = _base64url_text(value[len("base64-"):])
        if text is None:
            return None, ("the auth-token value is neither base64- JSON nor JSON: its base64url does not decode "
                          "(@supabase/ssr treats it as absent)")
    else:
        text = value
    try:
        session = json.loads(text)
    except (ValueError, RecursionError):
        return None, "the auth-token value is not JSON (@supabase/ssr treats it as absent: chunks from different writes?)"
    if isinstance(session, list) and session and isinstance(session[0], str):
        return None, ("the auth-token value is the old auth-helpers array [access_token, refresh_token, ...]; "
                      "an app on @supabase/ssr throws it away and the user is signed out")
    if not isinstance(session, dict):
        return None, "the auth-token value is JSON but not a session object"
    missing = [k for k in ("access_token", "refresh_token", "expires_at") if k not in session]
    if missing:
        return None, (f"the session has no {', '.join(missing)}: @supabase/ssr discards it as invalid "
                      "and the user is signed out")
    return session, None


@dataclass(frozen=True, kw_only=True)
class SessionRead:
    """What @supabase/ssr reads from a set of cookies: which cookies, which session, what is odd."""

    storage_key: str | None  # the cookie's base name (the client's storageKey)
    chunks: tuple[str, ...] = ()  # the cookie names read, in order
    token: str | None = field(default=None, repr=False)
    problems: tuple[str, ...] = ()  # why there is no session
    notes: tuple[str, ...] = ()  # odd but harmless to the library: stale chunks, a custom name
    duplicates: tuple[str, ...] = ()  # names given more than once with different values


def _first_wins(pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """name -> decoded value keeping the first of each name, as ``parseCookieHeader`` does; and the
    names that came again with another value (Next.js's ``cookies()`` keeps the last one)."""
    jar: dict[str, str] = {}
    differing: list[str] = []
    for name, raw in pairs:
        value = _cookie_value(raw)
        if name not in jar:
            jar[name] = value
        elif jar[name] != value and name not in differing:
            differing.append(name)
    return jar, differing


def _combine(jar: Mapping[str, str], key: str) -> tuple[str | None, list[str]]:
    """``combineChunks``: the whole cookie if set, else ``.0``, ``.1``, ... up to the first missing one."""
    if jar.get(key):
        return jar[key], [key]
    names: list[str] = []
    while jar.get(f"{key}.{len(names)}"):
        names.append(f"{key}.{len(names)}")
    if not names:
        return None, []
    return "".join(jar[n] for n in names), names


def _base_names(names: Iterable[str]) -> list[str]:
    """Every name a chunked or whole cookie could be stored under, in order of appearance."""
    out: list[str] = []
    for name in names:
        m = _CHUNK_NAME.fullmatch(name)
        base = m.group(1) if m else name
        if base not in out:
            out.append(base)
    return out


def read_session(pairs: Sequence[tuple[str, str]] | Mapping[str, str], *, cookie_name: str | None = None) -> SessionRead:
    """Read a session the way @supabase/ssr's server client does; never raises.

    ``cookie_name`` is the client's storage key (``auth.storageKey`` or ``cookieOptions.name``);
    without it, every ``sb-<ref>-auth-token`` is tried, then any cookie that holds a session
    (a custom name, said in ``notes``). Shared by the probe (to describe and send a cookie) and
    the reference deployment (to authenticate one), so both read exactly what the library reads.
    """
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
    jar, differing = _first_wins(items)
    if cookie_name:
        candidates, custom = [cookie_name], False
    else:
        candidates = [b for b in _base_names(jar) if _AUTH_NAME.fullmatch(b)]
        custom = not candidates
        if custom:
            candidates = _base_names(jar)
    tried: list[SessionRead] = []
    for key in candidates:
        value, names = _combine(jar, key)
        if value is None:
            chunks = sorted((n for n in jar if (m := _CHUNK_NAME.fullmatch(n)) and m.group(1) == key),
                            key=lambda n: int(n.rsplit(".", 1)[1]))
            if chunks and not custom:
                have = ", ".join("." + n.rsplit(".", 1)[1] for n in chunks[:6])
                tried.append(SessionRead(storage_key=key, problems=(
                    f"auth cookie chunk(s) .0 missing (have {have}): @supabase/ssr starts at .0 and finds no session",)))
            continue
        session, problem = decode_session_value(value)
        token = session.get("access_token") if session else None
        if session is not None and (not isinstance(token, str) or not token):
            session, problem = None, "the session's access_token is empty"
        if custom and session is None:
            continue  # an unrelated cookie (theme=dark): not a session under another name
        notes: list[str] = []
        if custom:
            notes.append(f"no sb-<project-ref>-auth-token cookie; {key!r} holds a Supabase session "
                         f"(a custom auth.storageKey or cookieOptions.name): pass --cookie-name {key}")
        read_names = set(names)
        stale = sorted((n for n in jar if n not in read_names and (m := _CHUNK_NAME.fullmatch(n)) and m.group(1) == key),
                       key=lambda n: int(n.rsplit(".", 1)[1]))
        if stale and names == [key]:
            notes.append(f"both {key} and chunks ({', '.join(stale[:4])}) are present: the whole cookie wins, "
                         "the chunks are left over")
        elif stale:
            notes.append(f"stale chunk(s) {', '.join(stale[:4])} ignored: @supabase/ssr stops at the first missing "
                         f"chunk ({key}.{len(names)}); a refresh shrank the session and its delete was lost")
        dups = [n for n in differing if n in read_names]
        problems = [] if session else [problem or "no session"]
        if session is None and stale and names != [key]:
            have = ", ".join("." + n.rsplit(".", 1)[1] for n in [*names, *stale][:6])
            problems.insert(0, f"auth cookie chunk(s) .{len(names)} missing (have {have}): @supabase/ssr reads "
                               f"{' + '.join('.' + n.rsplit('.', 1)[1] for n in names)} and stops there, "
                               "which is not a whole session")
            notes = [n for n in notes if not n.startswith("stale chunk")]
        read = SessionRead(storage_key=key, chunks=tuple(names), token=token if isinstance(token, str) and session else None,
                           problems=tuple(problems), notes=tuple(notes), duplicates=tuple(dups))
        if session is not None:
            others = [c for c in candidates if c != key and _combine(jar, c)[0] is not None and not custom]
            if others:
                read = replace(read, notes=read.notes + (f"auth cookies of other projects too: {', '.join(others)}",))
            return read
        tried.append(read)
    if tried:
        return tried[0]
    if cookie_name:
        present = [b for b in _base_names(jar)]
        return SessionRead(storage_key=cookie_name, problems=(
            f"no {cookie_name} cookie (nor {cookie_name}.0, .1, ...) in the input"
            + (f"; found: {', '.join(present[:6])}" if present else ""),))
    return SessionRead(storage_key=None, problems=("no sb-<project-ref>-auth-token cookie in the input, and no "
                                                   "other cookie holds a Supabase session",))


def session_token(cookies: Mapping[str, str] | Sequence[tuple[str, str]], *,
                  cookie_name: str | None = None) -> tuple[str | None, str | None, list[str]]:
    """(auth cookie base name, access token, problems) from raw cookie pairs, read as @supabase/ssr does."""
    read = read_session(cookies, cookie_name=cookie_name)
    return read.storage_key, read.token, list(read.problems)


def project_ref_of(claims: Mapping[str, object] | None, storage_key: str | None) -> str | None:
    """The Supabase project: from the token's issuer (``https://<ref>.supabase.co/auth/v1``), else the name."""
    iss = claims.get("iss") if claims else None
    if isinstance(iss, str):
        host = urlsplit(iss).hostname or ""
        if host.endswith(".supabase.co") and host.count(".") == 2:
            return host.split(".")[0]
    m = _AUTH_NAME.fullmatch(storage_key or "")
    return m.group("ref") if m else None


def parse_cookies(text: str, *, now: float, cookie_name: str | None = None) -> CookieInfo:
    """Describe a cookie string (header or Netscape form) as @supabase/ssr reads it; never raises."""
    pairs = split_netscape(text) if _looks_netscape(text) else split_header(text)
    problems: list[str] = []
    if not pairs:
        problems.append("no name=value cookie found in the input")
    read = read_session(pairs, cookie_name=cookie_name) if pairs else SessionRead(storage_key=None)
    problems.extend(read.problems)
    notes = list(read.notes)
    claims = None
    if read.token is not None:
        claims = decode_jwt_payload(read.token)
        if claims is None:
            problems.append("the access_token is not a decodable JWT")
    raw_exp = claims.get("exp") if claims else None
    exp: float | None = None
    if isinstance(raw_exp, (int, float)) and not isinstance(raw_exp, bool) and math.isfinite(raw_exp) \
            and abs(raw_exp) <= 1e13:
        exp = float(raw_exp)
    elif claims is not None:
        problems.append("the access_token has no plausible numeric exp")
    sub = claims.get("sub") if claims else None
    ref = project_ref_of(claims, read.storage_key)
    named = _AUTH_NAME.fullmatch(read.storage_key or "")
    if named and ref and named.group("ref") != ref:
        notes.append(f"the cookie is named for project {named.group('ref')} but its token was issued by project {ref} "
                     "(cookieOptions.name): the token's issuer is the project")
    # Send exactly what the library reads: the chunks it combines, the first of each name.
    wanted = set(read.chunks)
    seen: set[str] = set()
    auth_pairs = []
    for n, v in pairs:
        if n in wanted and n not in seen:
            seen.add(n)
            auth_pairs.append((n, v))
    sizes = [len(f"{n}={v}".encode("utf-8", "replace")) for n, v in pairs]
    header = "; ".join(f"{n}={v}" for n, v in auth_pairs)
    return CookieInfo(
        names=tuple(n for n, _ in pairs),
        auth_cookie=read.storage_key if read.chunks or read.storage_key else None,
        project_ref=ref,
        total_size=len("; ".join(f"{n}={v}" for n, v in pairs).encode("utf-8", "replace")),
        chunk_count=len(read.chunks),
        largest_cookie=max(sizes, default=0),
        base64_prefixed=any(v.startswith("base64-") for _, v in auth_pairs[:1]),
        subject=sub if isinstance(sub, str) else None,
        exp=int(exp) if exp is not None else None,
        seconds_to_expiry=(float(exp) - now) if exp is not None else None,
        problems=tuple(problems),
        notes=tuple(notes),
        duplicates=read.duplicates,
        header=header if read.token is not None else "",
    )


def load_cookie_file(path: str | Path, *, now: float, cookie_name: str | None = None) -> CookieInfo:
    """``parse_cookies`` on a file; ConfigError when it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read cookie file {path}: {exc.strerror or exc}") from exc
    return parse_cookies(text, now=now, cookie_name=cookie_name)


def configured_cookie(cookie: str | None, cookie_file: str | None, *, now: float,
                      cookie_name: str | None = None) -> CookieInfo | None:
    """The operator's cookie: ``--cookie`` (a header value) wins over ``--cookie-file``; None when neither."""
    if cookie:
        return parse_cookies(cookie, now=now, cookie_name=cookie_name)
    if cookie_file:
        return load_cookie_file(cookie_file, now=now, cookie_name=cookie_name)
    return None
