"""`stuckgen demo`: the whole tool on a fresh machine, nothing configured."""


import time
from typing import Annotated, Any, Optional

import typer

from stuckgen.cli._app import DebugOpt, Output, app, handle_errors
from stuckgen.durations import parse_duration
from stuckgen.errors import ConfigError, ExitCode
from stuckgen.session import interruptible


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
    from stuckgen.demo import NEXT_STEPS, judge
    from stuckgen.reference.scenarios import get_scenario

    out = Output()
    sc = get_scenario(scenario)
    quiet = parse_duration(threshold, option="--threshold")
    if not 0.5 <= quiet <= 600:
        raise ConfigError("--threshold: must be between 0.5s and 10m")
    t0 = time.monotonic()
    with interruptible():
        out.note(f"stuckgen demo — scenario {sc.name}: {sc.description}")
        try:
            report = _run(out, sc.name, database_url=database_url, generations=generations, threshold=quiet,
                          keep=keep, t0=t0)
        except KeyboardInterrupt:
            out.note("demo interrupted; everything it started is stopped and removed.")
            raise
        out.note("demo cleaned up.")
    verdict = judge(report, sc.name)
    out.note("")
    out.note("\n".join(NEXT_STEPS))
    out.note("")
    out.note(verdict.line)
    return ExitCode.OK if verdict.ok else ExitCode.FINDINGS


def _run(out: Output, scenario: str, *, database_url: str | None, generations: int, threshold: float, keep: bool,
         t0: float) -> Any:
    from stuckgen.demo import demo_environment, send_traffic, settings_for, wait_until_stuck
    from stuckgen.doctor import gather
    from stuckgen.render.doctor import doctor_text_lines
    from stuckgen.session import Session

    with demo_environment(scenario=scenario, database_url=database_url, threshold=threshold,
                          progress=lambda m: out.note(f"  {m} ...")) as env:
        settings = settings_for(env, threshold=threshold)
        out.note(f"  sending {generations} generations through {env.url}/api/generate ...")
        ids = send_traffic(env, count=generations)
        out.note(f"  waiting until rows finish or stay quiet for {threshold:g}s ...")
        wait_until_stuck(env.dsn, ids=ids, threshold=threshold, timeout=threshold + 20)
        out.note("  running doctor ...")
        with Session(settings, out) as session:
            report = gather(session, probe=True, repeat=4,
                            on_step=(lambda m: out.note(f"doctor: {m} ...")) if out.is_tty else None)
        out.note(f"  done in {time.monotonic() - t0:.1f}s\n")
        out.lines(doctor_text_lines(report))
        from stuckgen.reference.scenarios import get_scenario

        if get_scenario(scenario).use_webhooks:
            from stuckgen.demo import settle_lost_callbacks

            out.note("\n  settling the lost callbacks through the app "
                     "(stuckgen reconcile --apply --via sync --yes, as the rows' owner) ...")
            for line in settle_lost_callbacks(settings):
                out.note(f"  {line}")
        if keep:
            try:
                out.note(
                    f"\nThe database and the deployment keep running until Ctrl-C. In another shell:\n"
                    f"  stuckgen scan --env-file {env.env_file}\n"
                    f"  stuckgen probe-auth --env-file {env.env_file} --repeat 10\n"
                    f"  stuckgen doctor --env-file {env.env_file} --format markdown\n"
                    f"(the file holds DATABASE_URL, STUCKGEN_BASE_URL, INTERNAL_API_SECRET, a session cookie and the "
                    f"demo's threshold ({threshold:g}s) and window; "
                    f"it is readable by you only and removed on exit)")
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                out.note("stopping ...")
    return report
