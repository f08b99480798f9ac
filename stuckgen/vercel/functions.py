"""The process route's maximum duration as Vercel's API tells it: the deployment's ``functions``.

``GET /v13/deployments/{idOrUrl}`` returns the ``functions`` configuration the deployment was
built with (vercel.json's ``functions``: a glob over source files -> ``{maxDuration, memory, ...}``).
A limit the route sets in its own code (Next.js ``export const maxDuration``) is not in it, and the
project's default (``resourceConfig.functionDefaultTimeout``) is overridden by that export, so only
an entry whose glob matches the route's source file names a limit that holds. Where several
match, the longest wins: a limit too long calls fewer workers dead, never a live one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_EXTENSIONS = ("ts", "js", "mjs", "cjs", "tsx", "jsx", "py", "go", "rb")


@dataclass(frozen=True, kw_only=True)
class FunctionLimit:
    """A function's maximum duration, and where Vercel's API said it."""

    seconds: float
    pattern: str     # the vercel.json ``functions`` glob that matched the route's file
    deployment: str  # the deployment's URL (or id) it was read from

    @property
    def source(self) -> str:
        return f"Vercel: functions[{self.pattern!r}].maxDuration of deployment {self.deployment}"


def route_files(route: str) -> list[str]:
    """Source files that serve ``route`` (``/api/generate/process``): the App Router's route handler,
    the Pages Router's API file, or a file in the project's ``api`` directory; with and without ``src/``."""
    path = "/" + route.strip().strip("/")
    stems = [f"app{path}/route", f"pages{path}", f"pages{path}/index"]
    out: list[str] = []
    for prefix in ("", "src/"):
        out += [f"{prefix}{stem}.{ext}" for stem in stems for ext in _EXTENSIONS]
    out += [f"{path[1:]}.{ext}" for ext in _EXTENSIONS] + [f"{path[1:]}/index.{ext}" for ext in _EXTENSIONS]
    return out


def glob_regex(pattern: str) -> re.Pattern[str]:
    """vercel.json's glob as a regular expression: ``**`` any depth, ``*`` and ``?`` within a name, ``{a,b}``."""
    out: list[str] = []
    i = 0
    p = pattern.strip().lstrip("/")
    while i < len(p):
        c = p[i]
        if p.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if p.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{" and "}" in p[i:]:
            end = p.index("}", i)
            out.append("(?:" + "|".join(re.escape(a) for a in p[i + 1:end].split(",")) + ")")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def limit_for_route(functions: Any, route: str, *, deployment: str) -> FunctionLimit | None:
    """The longest ``maxDuration`` among the ``functions`` entries whose glob matches the route's file."""
    if not isinstance(functions, Mapping):
        return None
    files = route_files(route)
    best: FunctionLimit | None = None
    for pattern, config in functions.items():
        if not isinstance(pattern, str) or not isinstance(config, Mapping):
            continue
        seconds = config.get("maxDuration")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            continue
        rx = glob_regex(pattern)
        if any(rx.fullmatch(f) for f in files) and (best is None or seconds > best.seconds):
            best = FunctionLimit(seconds=float(seconds), pattern=pattern, deployment=deployment)
    return best


def read_limit(client: Any, route: str) -> tuple[FunctionLimit | None, str]:
    """(the route's maximum duration on the production deployment, or None and why not).

    ``client`` is a ``VercelClient``; its errors (``StuckgenError``) pass up.
    """
    project = client.get_project()
    dep = project.production
    if dep is None:
        return None, "the project has no production deployment to read the functions' configuration from"
    name = dep.url or dep.uid
    data = client.get_deployment(dep.uid)
    functions = data.get("functions")
    limit = limit_for_route(functions, route, deployment=name)
    if limit is not None:
        return limit, ""
    if not isinstance(functions, Mapping) or not functions:
        return None, f"deployment {name} was built without a `functions` configuration (vercel.json)"
    return None, (f"no `functions` entry of deployment {name} with a maxDuration matches {route} "
                  f"({', '.join(sorted(str(k) for k in functions))})")
