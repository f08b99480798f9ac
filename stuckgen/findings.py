"""Evidence -> ranked findings, each with a stable id, a one-line verdict and a fix.

``Finding`` is general (``doctor`` builds them from other evidence);
``analyze_probe`` turns a probe matrix into them. Findings never contain a
secret or cookie value: secrets appear as ``describe()`` (length and fingerprint).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import urljoin, urlsplit

from stuckgen.durations import format_duration
from stuckgen.cookies import HEADER_LIMITS, MAX_CHUNKS, MAX_COOKIE_BYTES, CookieInfo
from stuckgen.probe import (
    DEFAULT_REPEAT, MIN_ANSWERS_TO_JUDGE, PLATFORM_ERRORS, ProbeMatrix, ProbeResult, base_mode,
)
from stuckgen.secrets import describe, hygiene_problems


class Severity(IntEnum):
    """How bad a finding is; compares as critical > error > warning > info."""

    INFO = 10
    WARNING = 20
    ERROR = 30
    CRITICAL = 40

    def __str__(self) -> str:
        return self.name.lower()

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One conclusion: what is wrong, the evidence for it, and what to do."""

    id: str
    severity: Severity
    title: str
    evidence: tuple[str, ...]
    fix: str
    target: str | None = None


# Order within one severity: security, then the platform, then the app, then inputs.
FINDING_ORDER = (
    "open-route",
    "wrong-secret-accepted",
    "unreachable",
    "platform-error",
    "deployment-protection",
    "redirect",
    "route-missing",
    "method-not-allowed",
    "secret-whitespace",
    "secret-rejected",
    "secret-intermittent",
    "cookie-expired",
    "cookie-rejected",
    "cookie-missing",
    "cookie-oversized",
    "cookie-duplicate",
    "cookie-notes",
    "server-error",
    "timeout",
    "unexpected-answer",
    "probe-inconclusive",
    "modes-skipped",
)


def rank(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first (security findings are the critical ones), then a fixed order by id."""
    order = {fid: i for i, fid in enumerate(FINDING_ORDER)}
    return sorted(findings, key=lambda f: (-f.severity, order.get(f.id, len(order)), f.id, f.target or ""))


def worst(findings: Iterable[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)


# -- reading one answer -----------------------------------------------------------

_PASSED_ERRORS = {"Generation not found", "Forbidden"}


def kind(result: ProbeResult) -> str:
    """What one answer means for auth: passed, unauthorized, wall, redirect, ... or the failure."""
    if result.status is None:
        return "timeout" if result.failure in ("timeout", "too-slow") else (result.failure or "network")
    s = result.status
    if result.failure == "too-slow":
        return "timeout"
    # The platform's own answers first: they say nothing about the app or its credentials.
    if result.platform_error is not None:
        return "platform"
    if result.behind_wall:
        return "wall"
    if 300 <= s < 400:
        return "redirect"
    if s == 401:
        return "unauthorized"
    if 200 <= s < 300:
        return "passed"
    # Past auth the app looks the id up: a 404/403 with its own JSON error means
    # the credentials worked and the (random) id simply matched nothing.
    if s in (403, 404) and result.error in _PASSED_ERRORS:
        return "passed"
    if s == 404:
        return "not-found"
    if s == 405:
        return "method"
    if s >= 500:
        return "server-error"
    return "other"


def _summary(results: Sequence[ProbeResult]) -> str:
    parts = Counter(str(r.status) if r.status is not None else (r.failure or "no answer") for r in results)
    return ", ".join(f"{k} x{n}" for k, n in parts.most_common())


def _ev(mode: str, results: Sequence[ProbeResult], note: str = "") -> str:
    errors = Counter(r.error for r in results if r.error)
    err = f' (error: "{errors.most_common(1)[0][0]}")' if errors else ""
    return f"{mode}: {_summary(results)} of {len(results)}{err}{note}"


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    try:
        port = p.port or {"http": 80, "https": 443}.get(p.scheme)
    except ValueError:
        port = None
    return (p.scheme, (p.hostname or "").lower(), port)


# -- the matrix --------------------------------------------------------------------


def analyze_probe(
    matrix: ProbeMatrix,
    *,
    secret: str | None,
    cookie_info: CookieInfo | None,
    now: float,
) -> list[Finding]:
    """Findings from a probe matrix, ranked. ``now`` is epoch seconds (for the cookie's exp)."""
    findings: list[Finding] = []
    hygiene = hygiene_problems(secret) if secret else []
    secret_rejected_somewhere = False
    cookie_evidence: list[str] = []
    cookie_unauthorized = 0

    for target in matrix.targets:
        name = target.name
        by_mode = {m: matrix.cell(name, m).results for m in matrix.modes}
        plain = {m: rs for m, rs in by_mode.items() if m == base_mode(m)}
        bypass = {base_mode(m): rs for m, rs in by_mode.items() if m != base_mode(m)}
        all_results = [r for rs in by_mode.values() for r in rs]
        wall = [r for rs in plain.values() for r in rs if kind(r) == "wall"]
        # The app's own answers: behind the wall, only the bypass probes reach it.
        view = bypass if (wall and bypass) else plain
        view = {m: tuple(r for r in rs if kind(r) not in ("wall", "platform")) for m, rs in view.items()}

        def answered(mode: str) -> list[ProbeResult]:
            return [r for r in view.get(mode, []) if r.answered]

        def count(mode: str, k: str) -> int:
            return sum(1 for r in view.get(mode, []) if kind(r) == k)

        # Transport first: a target that never answered has nothing else to say.
        failures = [r for r in all_results if not r.answered and kind(r) not in ("timeout",)]
        if failures:
            by_failure = Counter(r.failure for r in failures)
            dead = not any(r.answered for r in all_results)
            findings.append(
                Finding(
                    id="unreachable",
                    severity=Severity.ERROR if dead else Severity.WARNING,
                    title=(
                        f"{name} did not answer ({', '.join(f for f in by_failure if f)})"
                        if dead
                        else f"{name} failed to answer {len(failures)} of {len(all_results)} probes"
                    ),
                    evidence=tuple(
                        f"{f}: {n} of {len(all_results)} probes; e.g. {next(r.failure_detail for r in failures if r.failure == f)}"
                        for f, n in by_failure.most_common()
                    ),
                    fix=(
                        "Check the URL and that the deployment exists: dns = the host name does not resolve, "
                        "connect = nothing listens there, tls = the certificate does not match the host "
                        "(use the deployment's own *.vercel.app name or the production domain)."
                    ),
                    target=name,
                )
            )

        timeouts = [r for r in all_results if kind(r) == "timeout"]
        if timeouts:
            findings.append(
                Finding(
                    id="timeout",
                    severity=Severity.ERROR if len(timeouts) == len(all_results) else Severity.WARNING,
                    title=f"{len(timeouts)} of {len(all_results)} probes to {name} timed out",
                    evidence=tuple(
                        _ev(m, rs) for m, rs in by_mode.items() if any(kind(r) == "timeout" for r in rs)
                    ),
                    fix=(
                        "The route hangs before answering: the app's trigger treats a timeout as 'probably "
                        "started', so such rows stay in processing. Check the function's logs for cold starts or "
                        "a blocked database pool, and make the route answer 202 before doing work (waitUntil)."
                    ),
                    target=name,
                )
            )

        if wall:
            through = [r for rs in bypass.values() for r in rs if r.answered and kind(r) != "wall"]
            blocked = [r for rs in bypass.values() for r in rs if kind(r) == "wall"]
            evidence = [
                _ev(m, rs, " answered by the platform's auth wall")
                for m, rs in plain.items()
                if any(kind(r) == "wall" for r in rs)
            ]
            markers = []
            if any(r.html_auth_page for r in wall):
                markers.append("HTML 'Authentication Required' page")
            if any(r.sso_nonce for r in wall):
                markers.append("set-cookie _vercel_sso_nonce")
            if any(r.sso_redirect for r in wall):
                markers.append("redirect to vercel.com/sso-api")
            markers.extend(sorted({f"x-vercel-mitigated: {r.vercel_mitigated}" for r in wall if r.vercel_mitigated}))
            if any(r.wall_kind == "unknown" for r in wall):
                markers.append("an HTML 401/403 from Vercel that is not the app's JSON (password protection or "
                               "Trusted IPs; none of Vercel Authentication's markers)")
            evidence.append("markers: " + ", ".join(markers))
            if bypass:
                evidence.append(
                    f"with x-vercel-protection-bypass: {len(through)} of {len(through) + len(blocked)} got through to the app"
                )
            else:
                evidence.append("no bypass secret given: the app behind the wall was not tested")
            findings.append(
                Finding(
                    id="deployment-protection",
                    severity=Severity.ERROR,
                    title=f"Vercel Deployment Protection answers for {name} before the app runs",
                    evidence=tuple(evidence),
                    fix=(
                        "Have the server-side trigger call the production domain instead of VERCEL_URL, or send "
                        "'x-vercel-protection-bypass: $VERCEL_AUTOMATION_BYPASS_SECRET' with it (Project Settings > "
                        "Deployment Protection > Protection Bypass for Automation)"
                        + ("; the bypass secret given was refused too: check it." if blocked and not through else
                           "; re-run with --bypass-secret to test the app behind the wall." if not bypass else ".")
                    ),
                    target=name,
                )
            )

        platform = [r for r in all_results if kind(r) == "platform"]
        if platform:
            codes = Counter(r.platform_error for r in platform)
            code = codes.most_common(1)[0][0] or ""
            meaning, fix = PLATFORM_ERRORS[code]
            findings.append(
                Finding(
                    id="platform-error",
                    severity=Severity.ERROR,
                    title=f"Vercel answers {code} for {name}: {meaning}",
                    evidence=tuple(f"x-vercel-error: {c} (HTTP {next(r.status for r in platform if r.platform_error == c)}) "
                                   f"on {n} of {len(all_results)} probes" for c, n in codes.most_common())
                    + ("the app never ran: no credential was judged, so no secret or cookie finding follows from these",),
                    fix=fix,
                    target=name,
                )
            )

        redirects = [r for rs in view.values() for r in rs if kind(r) == "redirect"]
        if redirects:
            first = redirects[0]
            location = urljoin(target.endpoint(matrix.route), first.location or "")
            cross = _origin(location) != _origin(target.url)
            to_get = any(r.status in (301, 302, 303) for r in redirects)
            why = []
            if cross:
                why.append("it crosses origins, so cookies (and Authorization) are not sent again")
            if to_get:
                why.append("a 301/302/303 turns the POST into a GET (then 405)")
            why.append("the app's trigger does not follow redirects, so it counts as a failure")
            findings.append(
                Finding(
                    id="redirect",
                    severity=Severity.ERROR,
                    title=f"The process route on {name} redirects ({first.status} to {location}): credentials are lost on the way",
                    evidence=tuple(_ev(m, rs, f" -> {rs[0].location}") for m, rs in view.items()
                                   if rs and all(kind(r) == "redirect" for r in rs))
                    + tuple(why),
                    fix=(
                        f"Point the trigger (and --url) at the final address ({_origin_text(location)}): set the app "
                        "URL the trigger is built from to the canonical domain, or stop redirecting /api/* "
                        "(apex to www, http to https)."
                    ),
                    target=name,
                )
            )

        answered_all = [r for rs in view.values() for r in rs if r.answered]
        if answered_all and all(kind(r) == "not-found" for r in answered_all):
            vercel_404 = any(r.vercel_error == "NOT_FOUND" for r in answered_all)
            gone = any(r.vercel_error == "DEPLOYMENT_NOT_FOUND" for r in answered_all)
            findings.append(
                Finding(
                    id="route-missing",
                    severity=Severity.ERROR,
                    title=(f"{name} is not a live deployment: Vercel answers DEPLOYMENT_NOT_FOUND" if gone else
                           f"{matrix.route} does not exist on {name}: every probe got 404"),
                    evidence=tuple(_ev(m, rs) for m, rs in view.items() if rs)
                    + (("x-vercel-error: NOT_FOUND (the platform found no such function)",) if vercel_404 else ())
                    + (("x-vercel-error: DEPLOYMENT_NOT_FOUND (deleted, or a preview URL that never existed)",)
                       if gone else ()),
                    fix=("Probe a deployment that exists (`vercel ls`), and make the trigger use the current "
                         "deployment's URL, not a stored preview URL." if gone else
                         "Check --route and that this deployment was built from a commit that has the process route."),
                    target=name,
                )
            )

        method = [r for r in answered_all if kind(r) == "method"]
        if method:
            findings.append(
                Finding(
                    id="method-not-allowed",
                    severity=Severity.ERROR,
                    title=f"{name} answers 405 to POST {matrix.route}",
                    evidence=tuple(_ev(m, rs) for m, rs in view.items() if any(kind(r) == "method" for r in rs)),
                    fix="The route must export a POST handler; if a proxy rewrote the method, call the final URL directly.",
                    target=name,
                )
            )

        errors5 = [r for r in answered_all if kind(r) == "server-error"]
        if errors5:
            findings.append(
                Finding(
                    id="server-error",
                    severity=Severity.ERROR,
                    title=f"{name} answered {len(errors5)} probes with a server error",
                    evidence=tuple(_ev(m, rs) for m, rs in view.items() if any(kind(r) == "server-error" for r in rs))
                    + tuple(sorted({f"body: {r.body_excerpt[:120]}" for r in errors5 if r.body_excerpt})[:2]),
                    fix="Read the function's logs for this time window (the x-vercel-id of each answer identifies the request).",
                    target=name,
                )
            )

        other = [r for r in answered_all if kind(r) == "other"]
        if other:
            findings.append(
                Finding(
                    id="unexpected-answer",
                    severity=Severity.WARNING,
                    title=f"{name} gave answers probe-auth cannot read ({_summary(other)})",
                    evidence=tuple(_ev(m, rs) for m, rs in view.items() if any(kind(r) == "other" for r in rs)),
                    fix="Look at the matrix and the function's logs; a firewall or rate limit may answer before the app.",
                    target=name,
                )
            )

        # Security: what gets in that must not.
        none_passed = count("none", "passed")
        if none_passed:
            findings.append(
                Finding(
                    id="open-route",
                    severity=Severity.CRITICAL,
                    title=f"{matrix.route} on {name} accepts calls with no credentials at all",
                    evidence=(_ev("none", answered("none")),),
                    fix=(
                        "Reject the request before reading the body unless x-internal-secret equals a non-empty "
                        "INTERNAL_API_SECRET or the session cookie names a user; anyone can trigger or claim work now."
                    ),
                    target=name,
                )
            )
        elif count("wrong-secret", "passed"):
            findings.append(
                Finding(
                    id="wrong-secret-accepted",
                    severity=Severity.CRITICAL,
                    title=f"{matrix.route} on {name} accepts a wrong x-internal-secret",
                    evidence=(_ev("wrong-secret", answered("wrong-secret")), _ev("none", answered("none"))),
                    fix=(
                        "Compare the header with plain equality against a non-empty secret; a check such as "
                        "'if (!expected || header === expected)' lets anything in when the variable is missing."
                    ),
                    target=name,
                )
            )

        # The secret path.
        rejected, passed = count("secret", "unauthorized"), count("secret", "passed")
        secret_ev = [_ev("secret", answered("secret"))]
        if answered("cookie"):
            works = count("cookie", "passed") > 0
            secret_ev.append(_ev("cookie", answered("cookie"), " (the cookie path works)" if works else ""))
        if rejected and passed:
            findings.append(
                Finding(
                    id="secret-intermittent",
                    severity=Severity.ERROR,
                    title=f"The correct secret gets 401 on {rejected} of {rejected + passed} tries on {name}: instances disagree",
                    evidence=tuple(secret_ev),
                    fix=(
                        "Some instances or deployments do not have this value: set INTERNAL_API_SECRET for every "
                        "target (Production, Preview, Development) without a branch filter, then redeploy so no "
                        "instance built before the change keeps serving."
                    ),
                    target=name,
                )
            )
        elif rejected:
            secret_rejected_somewhere = True
            if not hygiene:
                findings.append(
                    Finding(
                        id="secret-rejected",
                        severity=Severity.ERROR,
                        title=f"{name} rejects the correct secret: the deployment does not have this value",
                        evidence=tuple(secret_ev) + (f"local secret: {describe(secret)}",),
                        fix=(
                            "Set INTERNAL_API_SECRET for this deployment's target (and branch) to exactly this value, "
                            "then redeploy: a variable reaches only deployments built after the change. Compare "
                            "fingerprints without showing the value: printf %s \"$INTERNAL_API_SECRET\" | sha256sum | cut -c1-8"
                        ),
                        target=name,
                    )
                )
            else:
                secret_ev.append(f"local secret: {describe(secret)}, which {', '.join(hygiene)}")
                findings.append(
                    Finding(
                        id="secret-whitespace",
                        severity=Severity.ERROR,
                        title=f"{name} rejects the secret, and the secret {hygiene[0]}: the copies differ by whitespace",
                        evidence=tuple(secret_ev)
                        + (f"sent without surrounding whitespace: {describe(secret.strip() if secret else None)}",),
                        fix=_WHITESPACE_FIX,
                        target=name,
                    )
                )

        # The cookie path (its decoding is judged once, below).
        c_rejected, c_passed = count("cookie", "unauthorized"), count("cookie", "passed")
        if answered("cookie"):
            cookie_evidence.append(f"{name} " + _ev("cookie", answered("cookie")))
            cookie_unauthorized += c_rejected
        if (
            c_rejected
            and not c_passed
            and cookie_info is not None
            and cookie_info.usable
            and not _expired(cookie_info, now)
        ):
            findings.append(
                Finding(
                    id="cookie-rejected",
                    severity=Severity.ERROR,
                    title=f"{name} rejects a session cookie that decodes and has not expired",
                    evidence=(_ev("cookie", answered("cookie")), f"cookie: {cookie_info.auth_cookie}, "
                              f"{cookie_info.chunk_count} chunk(s), expires in {_in(cookie_info, now)}"),
                    fix=(
                        f"The cookie may belong to another Supabase project (ref {cookie_info.project_ref}) or a "
                        "revoked session; sign in again on this deployment's domain and copy the fresh cookie."
                    ),
                    target=name,
                )
            )

        # Never "healthy" on one answer: too few to tell an intermittent fault from a consistent one.
        thin = {m: len(answered(m)) for m, rs in view.items() if rs and len(answered(m)) < MIN_ANSWERS_TO_JUDGE}
        if thin and not any(f.target == name and f.severity >= Severity.WARNING for f in findings):
            findings.append(
                Finding(
                    id="probe-inconclusive",
                    severity=Severity.WARNING,
                    title=f"{name}: too few answers to judge (at least {MIN_ANSWERS_TO_JUDGE} per mode are needed); "
                          "one answer cannot tell an intermittent fault from a consistent one",
                    evidence=tuple(f"{m}: {n} answer(s) of {len(view[m])} probe(s)" for m, n in thin.items()),
                    fix=f"probe again with --repeat {DEFAULT_REPEAT} (the default of check, watch and doctor)",
                    target=name,
                )
            )

    if hygiene and not secret_rejected_somewhere:
        findings.append(
            Finding(
                id="secret-whitespace",
                severity=Severity.WARNING,
                title=f"The local secret {hygiene[0]}: a copy-paste fault",
                evidence=(
                    f"local secret: {describe(secret)}, which {', '.join(hygiene)}",
                    f"sent without surrounding whitespace: {describe(secret.strip() if secret else None)}",
                ),
                fix=_WHITESPACE_FIX,
            )
        )

    if cookie_info is not None:
        findings.extend(_cookie_findings(cookie_info, now, cookie_evidence, cookie_unauthorized))

    if matrix.skipped:
        findings.append(
            Finding(
                id="modes-skipped",
                severity=Severity.INFO,
                title=f"{len(matrix.skipped)} probe modes were skipped",
                evidence=tuple(f"{mode}: {reason}" for mode, reason in matrix.skipped),
                fix="Set INTERNAL_API_SECRET (or --secret), STUCKGEN_COOKIE (or --cookie) and "
                    "VERCEL_AUTOMATION_BYPASS_SECRET to test every path.",
            )
        )
    return rank(findings)


_WHITESPACE_FIX = (
    "Set the variable again without the newline or quotes (printf %s 'VALUE' | vercel env add INTERNAL_API_SECRET "
    "production; echo adds a newline), fix the local copy the same way, redeploy, and compare fingerprints."
)


def _expired(info: CookieInfo, now: float) -> bool:
    return info.exp is not None and info.exp <= now


def _in(info: CookieInfo, now: float) -> str:
    return format_duration(info.exp - now) if info.exp is not None else "unknown"


def _origin_text(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}"


def _cookie_findings(info: CookieInfo, now: float, evidence: list[str], unauthorized: int) -> list[Finding]:
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
    elif _expired(info, now):
        out.append(
            Finding(
                id="cookie-expired",
                severity=Severity.ERROR if unauthorized else Severity.WARNING,
                title=f"The session cookie expired {_in(info, now).lstrip('-')} ago",
                evidence=(f"{info.auth_cookie}: access_token exp is {_in(info, now).lstrip('-')} in the past",)
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
