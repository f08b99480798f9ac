"""A probe matrix -> findings: one small function per finding over a per-target view.

``analyze_probe`` builds a ``TargetView`` per target (its answers by mode; the
app's own answers, which behind Deployment Protection are only the bypass
probes'), runs every per-target check on it, then the checks over all targets
(the secret's hygiene, the cookie's decoding, skipped modes), and ranks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from stuckgen.cookies import CookieInfo
from stuckgen.findings.cookie import cookie_findings, expired, expires_in
from stuckgen.findings.model import Finding, Severity, rank
from stuckgen.probe import (
    DEFAULT_REPEAT, MIN_ANSWERS_TO_JUDGE, PLATFORM_ERRORS, ProbeMatrix, ProbeResult, ProbeTarget, base_mode,
)
from stuckgen.secrets import describe, hygiene_problems


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


# -- the view of one target --------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What every check may consult besides the target's answers."""

    route: str
    secret: str | None
    hygiene: tuple[str, ...]  # what is wrong with the local secret's whitespace, if anything
    cookie_info: CookieInfo | None
    now: float


@dataclass(frozen=True)
class TargetView:
    """One target's answers: every probe by mode, and the app's own answers (``view``)."""

    target: ProbeTarget
    by_mode: dict[str, tuple[ProbeResult, ...]]
    plain: dict[str, tuple[ProbeResult, ...]]  # the modes without the bypass header
    bypass: dict[str, tuple[ProbeResult, ...]]  # the bypass modes, by their plain mode's name
    view: dict[str, tuple[ProbeResult, ...]]  # the app's answers (neither the wall's nor the platform's)

    @classmethod
    def of(cls, matrix: ProbeMatrix, target: ProbeTarget) -> TargetView:
        by_mode = {m: tuple(matrix.cell(target.name, m).results) for m in matrix.modes}
        plain = {m: rs for m, rs in by_mode.items() if m == base_mode(m)}
        bypass = {base_mode(m): rs for m, rs in by_mode.items() if m != base_mode(m)}
        walled = any(kind(r) == "wall" for rs in plain.values() for r in rs)
        # Behind the wall, only the bypass probes reach the app.
        seen = bypass if (walled and bypass) else plain
        view = {m: tuple(r for r in rs if kind(r) not in ("wall", "platform")) for m, rs in seen.items()}
        return cls(target=target, by_mode=by_mode, plain=plain, bypass=bypass, view=view)

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def all_results(self) -> list[ProbeResult]:
        return [r for rs in self.by_mode.values() for r in rs]

    @property
    def wall(self) -> list[ProbeResult]:
        return [r for rs in self.plain.values() for r in rs if kind(r) == "wall"]

    @property
    def app_answers(self) -> list[ProbeResult]:
        return [r for rs in self.view.values() for r in rs if r.answered]

    def answered(self, mode: str) -> list[ProbeResult]:
        return [r for r in self.view.get(mode, ()) if r.answered]

    def count(self, mode: str, k: str) -> int:
        return sum(1 for r in self.view.get(mode, ()) if kind(r) == k)

    def evidence_of(self, k: str) -> tuple[str, ...]:
        """One evidence line per mode with an answer of kind ``k``."""
        return tuple(_ev(m, rs) for m, rs in self.view.items() if any(kind(r) == k for r in rs))


# -- the checks on one target: each returns its finding or None ----------------------


def unreachable(t: TargetView, ctx: Context) -> Finding | None:
    """Transport first: a target that never answered has nothing else to say."""
    results = t.all_results
    failures = [r for r in results if not r.answered and kind(r) not in ("timeout",)]
    if not failures:
        return None
    by_failure = Counter(r.failure for r in failures)
    dead = not any(r.answered for r in results)
    return Finding(
        id="unreachable",
        severity=Severity.ERROR if dead else Severity.WARNING,
        title=(f"{t.name} did not answer ({', '.join(f for f in by_failure if f)})" if dead
               else f"{t.name} failed to answer {len(failures)} of {len(results)} probes"),
        evidence=tuple(
            f"{f}: {n} of {len(results)} probes; e.g. {next(r.failure_detail for r in failures if r.failure == f)}"
            for f, n in by_failure.most_common()),
        fix=("Check the URL and that the deployment exists: dns = the host name does not resolve, "
             "connect = nothing listens there, tls = the certificate does not match the host "
             "(use the deployment's own *.vercel.app name or the production domain)."),
        target=t.name,
    )


def timeout(t: TargetView, ctx: Context) -> Finding | None:
    results = t.all_results
    timeouts = [r for r in results if kind(r) == "timeout"]
    if not timeouts:
        return None
    return Finding(
        id="timeout",
        severity=Severity.ERROR if len(timeouts) == len(results) else Severity.WARNING,
        title=f"{len(timeouts)} of {len(results)} probes to {t.name} timed out",
        evidence=tuple(_ev(m, rs) for m, rs in t.by_mode.items() if any(kind(r) == "timeout" for r in rs)),
        fix=("The route hangs before answering: the app's trigger treats a timeout as 'probably "
             "started', so such rows stay in processing. Check the function's logs for cold starts or "
             "a blocked database pool, and make the route answer 202 before doing work (waitUntil)."),
        target=t.name,
    )


def _wall_markers(wall: Sequence[ProbeResult]) -> list[str]:
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
    return markers


def deployment_protection(t: TargetView, ctx: Context) -> Finding | None:
    wall = t.wall
    if not wall:
        return None
    through = [r for rs in t.bypass.values() for r in rs if r.answered and kind(r) != "wall"]
    blocked = [r for rs in t.bypass.values() for r in rs if kind(r) == "wall"]
    evidence = [_ev(m, rs, " answered by the platform's auth wall")
                for m, rs in t.plain.items() if any(kind(r) == "wall" for r in rs)]
    evidence.append("markers: " + ", ".join(_wall_markers(wall)))
    if t.bypass:
        evidence.append(
            f"with x-vercel-protection-bypass: {len(through)} of {len(through) + len(blocked)} got through to the app")
    else:
        evidence.append("no bypass secret given: the app behind the wall was not tested")
    return Finding(
        id="deployment-protection",
        severity=Severity.ERROR,
        title=f"Vercel Deployment Protection answers for {t.name} before the app runs",
        evidence=tuple(evidence),
        fix=("Have the server-side trigger call the production domain instead of VERCEL_URL, or send "
             "'x-vercel-protection-bypass: $VERCEL_AUTOMATION_BYPASS_SECRET' with it (Project Settings > "
             "Deployment Protection > Protection Bypass for Automation)"
             + ("; the bypass secret given was refused too: check it." if blocked and not through else
                "; re-run with --bypass-secret to test the app behind the wall." if not t.bypass else ".")),
        target=t.name,
    )


def platform_error(t: TargetView, ctx: Context) -> Finding | None:
    results = t.all_results
    platform = [r for r in results if kind(r) == "platform"]
    if not platform:
        return None
    codes = Counter(r.platform_error for r in platform)
    code = codes.most_common(1)[0][0] or ""
    meaning, fix = PLATFORM_ERRORS[code]
    return Finding(
        id="platform-error",
        severity=Severity.ERROR,
        title=f"Vercel answers {code} for {t.name}: {meaning}",
        evidence=tuple(f"x-vercel-error: {c} (HTTP {next(r.status for r in platform if r.platform_error == c)}) "
                       f"on {n} of {len(results)} probes" for c, n in codes.most_common())
        + ("the app never ran: no credential was judged, so no secret or cookie finding follows from these",),
        fix=fix,
        target=t.name,
    )


def redirect(t: TargetView, ctx: Context) -> Finding | None:
    redirects = [r for rs in t.view.values() for r in rs if kind(r) == "redirect"]
    if not redirects:
        return None
    first = redirects[0]
    location = urljoin(t.target.endpoint(ctx.route), first.location or "")
    why = []
    if _origin(location) != _origin(t.target.url):
        why.append("it crosses origins, so cookies (and Authorization) are not sent again")
    if any(r.status in (301, 302, 303) for r in redirects):
        why.append("a 301/302/303 turns the POST into a GET (then 405)")
    why.append("the app's trigger does not follow redirects, so it counts as a failure")
    return Finding(
        id="redirect",
        severity=Severity.ERROR,
        title=f"The process route on {t.name} redirects ({first.status} to {location}): credentials are lost on the way",
        evidence=tuple(_ev(m, rs, f" -> {rs[0].location}") for m, rs in t.view.items()
                       if rs and all(kind(r) == "redirect" for r in rs)) + tuple(why),
        fix=(f"Point the trigger (and --url) at the final address ({_origin_text(location)}): set the app "
             "URL the trigger is built from to the canonical domain, or stop redirecting /api/* "
             "(apex to www, http to https)."),
        target=t.name,
    )


def route_missing(t: TargetView, ctx: Context) -> Finding | None:
    answers = t.app_answers
    if not answers or not all(kind(r) == "not-found" for r in answers):
        return None
    vercel_404 = any(r.vercel_error == "NOT_FOUND" for r in answers)
    gone = any(r.vercel_error == "DEPLOYMENT_NOT_FOUND" for r in answers)
    return Finding(
        id="route-missing",
        severity=Severity.ERROR,
        title=(f"{t.name} is not a live deployment: Vercel answers DEPLOYMENT_NOT_FOUND" if gone else
               f"{ctx.route} does not exist on {t.name}: every probe got 404"),
        evidence=tuple(_ev(m, rs) for m, rs in t.view.items() if rs)
        + (("x-vercel-error: NOT_FOUND (the platform found no such function)",) if vercel_404 else ())
        + (("x-vercel-error: DEPLOYMENT_NOT_FOUND (deleted, or a preview URL that never existed)",) if gone else ()),
        fix=("Probe a deployment that exists (`vercel ls`), and make the trigger use the current "
             "deployment's URL, not a stored preview URL." if gone else
             "Check --route and that this deployment was built from a commit that has the process route."),
        target=t.name,
    )


def method_not_allowed(t: TargetView, ctx: Context) -> Finding | None:
    if not any(kind(r) == "method" for r in t.app_answers):
        return None
    return Finding(
        id="method-not-allowed",
        severity=Severity.ERROR,
        title=f"{t.name} answers 405 to POST {ctx.route}",
        evidence=t.evidence_of("method"),
        fix="The route must export a POST handler; if a proxy rewrote the method, call the final URL directly.",
        target=t.name,
    )


def server_error(t: TargetView, ctx: Context) -> Finding | None:
    errors5 = [r for r in t.app_answers if kind(r) == "server-error"]
    if not errors5:
        return None
    return Finding(
        id="server-error",
        severity=Severity.ERROR,
        title=f"{t.name} answered {len(errors5)} probes with a server error",
        evidence=t.evidence_of("server-error")
        + tuple(sorted({f"body: {r.body_excerpt[:120]}" for r in errors5 if r.body_excerpt})[:2]),
        fix="Read the function's logs for this time window (the x-vercel-id of each answer identifies the request).",
        target=t.name,
    )


def unexpected_answer(t: TargetView, ctx: Context) -> Finding | None:
    other = [r for r in t.app_answers if kind(r) == "other"]
    if not other:
        return None
    return Finding(
        id="unexpected-answer",
        severity=Severity.WARNING,
        title=f"{t.name} gave answers probe-auth cannot read ({_summary(other)})",
        evidence=t.evidence_of("other"),
        fix="Look at the matrix and the function's logs; a firewall or rate limit may answer before the app.",
        target=t.name,
    )


def open_route(t: TargetView, ctx: Context) -> Finding | None:
    """Security: what gets in that must not (no credentials at all)."""
    if not t.count("none", "passed"):
        return None
    return Finding(
        id="open-route",
        severity=Severity.CRITICAL,
        title=f"{ctx.route} on {t.name} accepts calls with no credentials at all",
        evidence=(_ev("none", t.answered("none")),),
        fix=("Reject the request before reading the body unless x-internal-secret equals a non-empty "
             "INTERNAL_API_SECRET or the session cookie names a user; anyone can trigger or claim work now."),
        target=t.name,
    )


def wrong_secret_accepted(t: TargetView, ctx: Context) -> Finding | None:
    """Security: a wrong secret gets in (reported only when no credentials do not already)."""
    if t.count("none", "passed") or not t.count("wrong-secret", "passed"):
        return None
    return Finding(
        id="wrong-secret-accepted",
        severity=Severity.CRITICAL,
        title=f"{ctx.route} on {t.name} accepts a wrong x-internal-secret",
        evidence=(_ev("wrong-secret", t.answered("wrong-secret")), _ev("none", t.answered("none"))),
        fix=("Compare the header with plain equality against a non-empty secret; a check such as "
             "'if (!expected || header === expected)' lets anything in when the variable is missing."),
        target=t.name,
    )


def _secret_evidence(t: TargetView) -> list[str]:
    evidence = [_ev("secret", t.answered("secret"))]
    if t.answered("cookie"):
        works = t.count("cookie", "passed") > 0
        evidence.append(_ev("cookie", t.answered("cookie"), " (the cookie path works)" if works else ""))
    return evidence


def secret_rejected_always(t: TargetView) -> bool:
    """The correct secret got 401 on every try that reached the app."""
    return bool(t.count("secret", "unauthorized")) and not t.count("secret", "passed")


def secret_intermittent(t: TargetView, ctx: Context) -> Finding | None:
    rejected, passed = t.count("secret", "unauthorized"), t.count("secret", "passed")
    if not (rejected and passed):
        return None
    return Finding(
        id="secret-intermittent",
        severity=Severity.ERROR,
        title=f"The correct secret gets 401 on {rejected} of {rejected + passed} tries on {t.name}: instances disagree",
        evidence=tuple(_secret_evidence(t)),
        fix=("Some instances or deployments do not have this value: set INTERNAL_API_SECRET for every "
             "target (Production, Preview, Development) without a branch filter, then redeploy so no "
             "instance built before the change keeps serving."),
        target=t.name,
    )


def secret_rejected(t: TargetView, ctx: Context) -> Finding | None:
    if not secret_rejected_always(t) or ctx.hygiene:
        return None
    return Finding(
        id="secret-rejected",
        severity=Severity.ERROR,
        title=f"{t.name} rejects the correct secret: the deployment does not have this value",
        evidence=tuple(_secret_evidence(t)) + (f"local secret: {describe(ctx.secret)}",),
        fix=("Set INTERNAL_API_SECRET for this deployment's target (and branch) to exactly this value, "
             "then redeploy: a variable reaches only deployments built after the change. Compare "
             "fingerprints without showing the value: printf %s \"$INTERNAL_API_SECRET\" | sha256sum | cut -c1-8"),
        target=t.name,
    )


def secret_whitespace_rejected(t: TargetView, ctx: Context) -> Finding | None:
    if not secret_rejected_always(t) or not ctx.hygiene:
        return None
    return Finding(
        id="secret-whitespace",
        severity=Severity.ERROR,
        title=f"{t.name} rejects the secret, and the secret {ctx.hygiene[0]}: the copies differ by whitespace",
        evidence=tuple(_secret_evidence(t)) + (f"local secret: {describe(ctx.secret)}, which {', '.join(ctx.hygiene)}",
                                               f"sent without surrounding whitespace: {_stripped(ctx.secret)}"),
        fix=_WHITESPACE_FIX,
        target=t.name,
    )


def cookie_rejected(t: TargetView, ctx: Context) -> Finding | None:
    info = ctx.cookie_info
    rejected, passed = t.count("cookie", "unauthorized"), t.count("cookie", "passed")
    if not rejected or passed or info is None or not info.usable or expired(info, ctx.now):
        return None
    return Finding(
        id="cookie-rejected",
        severity=Severity.ERROR,
        title=f"{t.name} rejects a session cookie that decodes and has not expired",
        evidence=(_ev("cookie", t.answered("cookie")), f"cookie: {info.auth_cookie}, "
                  f"{info.chunk_count} chunk(s), expires in {expires_in(info, ctx.now)}"),
        fix=(f"The cookie may belong to another Supabase project (ref {info.project_ref}) or a "
             "revoked session; sign in again on this deployment's domain and copy the fresh cookie."),
        target=t.name,
    )


TARGET_CHECKS: tuple[Callable[[TargetView, Context], Finding | None], ...] = (
    unreachable, timeout, deployment_protection, platform_error, redirect, route_missing, method_not_allowed,
    server_error, unexpected_answer, open_route, wrong_secret_accepted, secret_intermittent, secret_rejected,
    secret_whitespace_rejected, cookie_rejected,
)


def inconclusive(t: TargetView, found: Sequence[Finding]) -> Finding | None:
    """Never "healthy" on one answer: too few to tell an intermittent fault from a consistent one."""
    thin = {m: len(t.answered(m)) for m, rs in t.view.items() if rs and len(t.answered(m)) < MIN_ANSWERS_TO_JUDGE}
    if not thin or any(f.target == t.name and f.severity >= Severity.WARNING for f in found):
        return None
    return Finding(
        id="probe-inconclusive",
        severity=Severity.WARNING,
        title=f"{t.name}: too few answers to judge (at least {MIN_ANSWERS_TO_JUDGE} per mode are needed); "
              "one answer cannot tell an intermittent fault from a consistent one",
        evidence=tuple(f"{m}: {n} answer(s) of {len(t.view[m])} probe(s)" for m, n in thin.items()),
        fix=f"probe again with --repeat {DEFAULT_REPEAT} (the default of check, watch and doctor)",
        target=t.name,
    )


# -- the checks over every target ---------------------------------------------------------


def secret_whitespace(views: Sequence[TargetView], ctx: Context) -> Finding | None:
    """The local secret has stray whitespace, and no target's rejection already said so."""
    if not ctx.hygiene or any(secret_rejected_always(t) for t in views):
        return None
    return Finding(
        id="secret-whitespace",
        severity=Severity.WARNING,
        title=f"The local secret {ctx.hygiene[0]}: a copy-paste fault",
        evidence=(f"local secret: {describe(ctx.secret)}, which {', '.join(ctx.hygiene)}",
                  f"sent without surrounding whitespace: {_stripped(ctx.secret)}"),
        fix=_WHITESPACE_FIX,
    )


def modes_skipped(matrix: ProbeMatrix) -> Finding | None:
    if not matrix.skipped:
        return None
    return Finding(
        id="modes-skipped",
        severity=Severity.INFO,
        title=f"{len(matrix.skipped)} probe modes were skipped",
        evidence=tuple(f"{mode}: {reason}" for mode, reason in matrix.skipped),
        fix="Set INTERNAL_API_SECRET (or --secret), STUCKGEN_COOKIE (or --cookie) and "
            "VERCEL_AUTOMATION_BYPASS_SECRET to test every path.",
    )


def analyze_probe(matrix: ProbeMatrix, *, secret: str | None, cookie_info: CookieInfo | None,
                  now: float) -> list[Finding]:
    """Findings from a probe matrix, ranked. ``now`` is epoch seconds (for the cookie's exp)."""
    ctx = Context(route=matrix.route, secret=secret, hygiene=tuple(hygiene_problems(secret)) if secret else (),
                  cookie_info=cookie_info, now=now)
    views = [TargetView.of(matrix, target) for target in matrix.targets]
    found: list[Finding] = []
    for t in views:
        mine = [f for check in TARGET_CHECKS if (f := check(t, ctx)) is not None]
        found += mine + [f for f in (inconclusive(t, mine),) if f is not None]
    found += [f for f in (secret_whitespace(views, ctx), modes_skipped(matrix)) if f is not None]
    if cookie_info is not None:
        # The cookie's decoding is judged once, with every target's answers to it as evidence.
        evidence = [f"{t.name} " + _ev("cookie", t.answered("cookie")) for t in views if t.answered("cookie")]
        unauthorized = sum(t.count("cookie", "unauthorized") for t in views)
        found += cookie_findings(cookie_info, now, evidence, unauthorized)
    return rank(found)


def _stripped(secret: str | None) -> str:
    return describe(secret.strip() if secret else None)


_WHITESPACE_FIX = (
    "Set the variable again without the newline or quotes (printf %s 'VALUE' | vercel env add INTERNAL_API_SECRET "
    "production; echo adds a newline), fix the local copy the same way, redeploy, and compare fingerprints."
)

def _origin_text(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}"
