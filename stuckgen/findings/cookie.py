"""The session cookie's own findings: decoded once, judged with every target's answers to it."""

from __future__ import annotations

from stuckgen.cookies import HEADER_LIMITS, MAX_CHUNKS, MAX_COOKIE_BYTES, CookieInfo
from stuckgen.durations import format_duration
from stuckgen.findings.model import Finding, Severity


def expired(info: CookieInfo, now: float) -> bool:
    return info.exp is not None and info.exp <= now


def expires_in(info: CookieInfo, now: float) -> str:
    return format_duration(info.exp - now) if info.exp is not None else "unknown"



def cookie_findings(info: CookieInfo, now: float, evidence: list[str], unauthorized: int) -> list[Finding]:
    out: list[Finding] = []
    if not info.usable:
        out.append(
            Finding(
                id="cookie-missing",
                severity=Severity.ERROR if unauthorized else Severity.WARNING,
                title="The cookie given holds no usable Supabase session",
                evidence=tuple(info.problems) + (f"cookie names: {', '.join(info.names[:8]) or 'none'}",) + tuple(evidence),
                fix=(
                    "Copy every sb-<project-ref>-auth-token cookie (all .0, .1, ... chunks) from the browser's "
                    "devtools for this deployment's domain, or export them as cookies.txt; an app that names its "
                    "cookie otherwise (auth.storageKey, cookieOptions.name) needs --cookie-name NAME."
                ),
            )
        )
    elif expired(info, now):
        out.append(
            Finding(
                id="cookie-expired",
                severity=Severity.ERROR if unauthorized else Severity.WARNING,
                title=f"The session cookie expired {expires_in(info, now).lstrip('-')} ago",
                evidence=(f"{info.auth_cookie}: access_token exp is {expires_in(info, now).lstrip('-')} in the past",)
                + tuple(evidence),
                fix=(
                    "The browser fallback gives up at once on this 401: refresh the session in middleware "
                    "(supabase.auth.getUser() in middleware.ts rewrites the cookie) and copy a fresh cookie to probe."
                ),
            )
        )
    crossed = info.header_limits_crossed
    if info.oversized or crossed:
        evidence = [f"largest single cookie: {info.largest_cookie} bytes (browsers drop more than {MAX_COOKIE_BYTES})",
                    f"whole Cookie header: {info.total_size} bytes"]
        evidence += [f"over {who} ({limit} bytes): {what}" for limit, who, what in crossed]
        evidence += [f"within {who} ({limit} bytes)" for limit, who, _ in HEADER_LIMITS if (limit, who, _) not in crossed]
        evidence.append(f"chunks: {info.chunk_count} (more than {MAX_CHUNKS} means bulky session metadata)")
        where = f"over {crossed[-1][1]}" if crossed else "large"
        out.append(
            Finding(
                id="cookie-oversized",
                # Only nginx's 8 KB buffer crossed: harmless on Vercel (Node), fatal behind nginx.
                severity=Severity.WARNING if info.oversized else Severity.INFO,
                title=f"The session cookie is {where} ({info.total_size} bytes in {info.chunk_count} chunk(s))",
                evidence=tuple(evidence),
                fix="Keep large data out of user_metadata (it is copied into every token) and clear stale sb-* cookies"
                    + ("; behind nginx, raise large_client_header_buffers (e.g. 4 16k)." if crossed and not info.oversized
                       else "."),
            )
        )
    if info.duplicates:
        out.append(
            Finding(
                id="cookie-duplicate",
                severity=Severity.WARNING,
                title=f"The cookie header holds {', '.join(info.duplicates[:3])} more than once, with different values",
                evidence=(
                    "@supabase/ssr's parseCookieHeader keeps the first of each name; Next.js's cookies() keeps the "
                    "last, so an app on Next.js may read another session than stuckgen and the library do",
                    "the same name twice usually means one cookie per path or domain (e.g. host-only and .domain)",
                ),
                fix="Delete the older copy in the browser (devtools > Application > Cookies, every path and domain) "
                    "and sign in again; stuckgen probes with the first one.",
            )
        )
    if info.usable and info.notes:
        out.append(
            Finding(
                id="cookie-notes",
                severity=Severity.INFO,
                title="The session cookie reads fine, with something worth knowing",
                evidence=info.notes,
                fix="Nothing blocks the session; clear leftover chunks by signing out and in again.",
            )
        )
    return out
