"""`stuckgen demo` (body: stuckgen.commands.demo).

No option groups: the demo configures its own database and deployment, and reads
no stuckgen.toml, .env or environment settings that could point it elsewhere.
"""


from typing import Annotated, Optional

import typer

from stuckgen.cli._app import DebugOpt, Output, app, handle_errors


@app.command()
@handle_errors
def demo(
    scenario: Annotated[str, typer.Option("--scenario", "-s", metavar="NAME",
                                          help="Fault to reproduce: healthy, secret-missing, secret-mismatch, "
                                               "secret-whitespace, intermittent, protected, redirect, cookie-expired, "
                                               "dropped-trigger, worker-crash, slow, lost-callback.")] = "intermittent",
    generations: Annotated[int, typer.Option("--generations", "-g", min=1, max=500, metavar="N",
                                             help="Generations to send through /api/generate.")] = 12,
    threshold: Annotated[str, typer.Option("--threshold", "-t", metavar="DURATION",
                                           help="Quiet time after which the demo calls a row stuck (0.5s to 10m).")] = "3s",
    keep: Annotated[bool, typer.Option("--keep", help="Leave the database and the deployment running until Ctrl-C, "
                                                      "and print how to point the other commands at them.")] = False,
    database_url: Annotated[Optional[str], typer.Option(
        "--database-url", "-d", metavar="URL", show_default=False,
        help="Use this PostgreSQL server (a scratch database is created and dropped) instead of an embedded one. "
             "[env: STUCKGEN_DEMO_DATABASE_URL]", envvar="STUCKGEN_DEMO_DATABASE_URL")] = None,
    debug: DebugOpt = False,
) -> int:
    """Reproduce the incident on this machine and diagnose it, in well under a minute.

    Starts an embedded PostgreSQL and the reference deployment (a real HTTP server
    on loopback) in a fault scenario, sends generation traffic through
    /api/generate, waits until rows get stuck, then runs doctor against them.
    Everything started is stopped and removed afterwards, also on Ctrl-C.

    \b
    Examples:
      stuckgen demo
      stuckgen demo --scenario protected
      stuckgen demo --keep        # then, in another shell: stuckgen scan --env-file <printed path>

    Exit: 0 the diagnosis named the cause the scenario planted ("diagnosed: ..., as
    planted"; for --scenario healthy: nothing wrong), 1 it did not (a bug in stuckgen),
    2 bad option, 3 the embedded database could not start. Unlike doctor, a fault
    found by design is success here: the demo's job is the diagnosis.
    """
    from stuckgen.commands.demo import run_demo

    return run_demo(Output(), scenario=scenario, generations=generations, threshold=threshold, keep=keep,
                    database_url=database_url)
