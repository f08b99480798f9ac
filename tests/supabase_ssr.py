"""Drive the real @supabase/ssr (tests/node/supabase_cookies.mjs) from the tests, and play the browser.

The Node packages are pinned in tests/node/package.json + package-lock.json. `.ci/run` installs
them; `ensure_installed` installs them once more (npm ci) when a developer's checkout lacks them,
and fails loudly when it cannot: these tests never skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "supabase_cookies.mjs"


def ensure_installed() -> None:
    """node_modules with @supabase/ssr, installed from the lockfile if missing; RuntimeError if impossible."""
    if (NODE_DIR / "node_modules" / "@supabase" / "ssr" / "package.json").is_file():
        return
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        raise RuntimeError("node and npm are needed to run @supabase/ssr for the cookie tests (.ci/run installs them)")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"npm ci in {NODE_DIR} failed:\n{done.stderr[-2000:]}")


def run_ops(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ops through the Node script (see its header); one result per op."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed to run @supabase/ssr for the cookie tests")
    done = subprocess.run([node, str(SCRIPT)], input=json.dumps({"ops": ops}), cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{SCRIPT.name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    results = json.loads(done.stdout)
    assert isinstance(results, list) and len(results) == len(ops)
    return results


@dataclass
class Browser:
    """A cookie jar for one site: Set-Cookie in, Cookie header out (in the order cookies were created).

    ``lose`` drops the deletions of those names: a response committed before every Set-Cookie
    reached the browser, which is how a refresh leaves a stale chunk behind.
    """

    jar: dict[str, str] = field(default_factory=dict)

    def apply(self, set_cookies: list[str], *, lose: tuple[str, ...] = ()) -> None:
        for line in set_cookies:
            name, _, value = line.split(";", 1)[0].partition("=")
            attrs = [a.strip().lower() for a in line.split(";")[1:]]
            deleting = value == "" or "max-age=0" in attrs
            if deleting:
                if name not in lose:
                    self.jar.pop(name, None)
            else:
                self.jar[name] = value

    def header(self) -> str:
        return "; ".join(f"{n}={v}" for n, v in self.jar.items())

    def jar_items(self) -> list[dict[str, str]]:
        """The jar as a server's getAll() sees it (values as the cookie package decodes them)."""
        from urllib.parse import unquote

        return [{"name": n, "value": unquote(v)} for n, v in self.jar.items()]
