"""The command line: a thin Typer layer over the core. See _app.py for the shared shape."""


import importlib
import sys
from collections.abc import Iterable
from typing import Any

# The module that registers each command on the app. A run imports only its own command's
# module (each of the others costs 10-20 ms of start-up); --help, --version, no command or an
# unknown one import them all, in this order (the order `stuckgen --help` lists them).
COMMAND_MODULES: dict[str, str] = {
    "scan": "scan", "schema": "scan", "show": "show", "watch": "watch", "probe-auth": "probe",
    "doctor": "doctor", "check": "doctor", "demo": "demo",
    "fail": "remediate", "retrigger": "remediate", "undo": "remediate", "history": "remediate",
    "init": "init", "jobs": "jobs", "reconcile": "reconcile",
}
_ALL = ("scan", "show", "watch", "probe", "doctor", "demo", "remediate", "init", "jobs", "reconcile")


def _register(modules: Iterable[str]) -> Any:
    for name in modules:
        importlib.import_module(f"stuckgen.cli.{name}")
    from stuckgen.cli._app import app

    return app


def __getattr__(name: str) -> Any:
    # `from stuckgen.cli import app` (tests, embedding) gets the app with every command.
    if name == "app":
        return _register(_ALL)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def command_modules(argv: list[str]) -> tuple[str, ...]:
    """The command modules a run with these arguments needs."""
    cmd = next((a for a in argv if not a.startswith("-")), None)
    return (COMMAND_MODULES[cmd],) if cmd in COMMAND_MODULES else _ALL


def main() -> int:
    """Console entry point."""
    app = _register(command_modules(sys.argv[1:]))
    try:
        app(prog_name="stuckgen")
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    return 0


__all__ = ["app", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
