"""The command line: a thin Typer layer over the core. See _app.py for the shared shape."""


import sys

from stuckgen.cli._app import app

# Each module registers its commands on ``app`` when imported.
from stuckgen.cli import scan as _scan  # noqa: E402,F401
from stuckgen.cli import show as _show  # noqa: E402,F401
from stuckgen.cli import watch as _watch  # noqa: E402,F401
from stuckgen.cli import probe as _probe  # noqa: E402,F401
from stuckgen.cli import doctor as _doctor  # noqa: E402,F401
from stuckgen.cli import demo as _demo  # noqa: E402,F401
from stuckgen.cli import remediate as _remediate  # noqa: E402,F401
from stuckgen.cli import init as _init  # noqa: E402,F401
from stuckgen.cli import jobs as _jobs  # noqa: E402,F401
from stuckgen.cli import reconcile as _reconcile  # noqa: E402,F401


def main() -> int:
    """Console entry point."""
    try:
        app(prog_name="stuckgen")
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    return 0


__all__ = ["app", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
