"""The body of `stuckgen demo`: start the reference deployment in a fault scenario, make rows stuck, diagnose."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from stuckgen.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from stuckgen.console import Output
    from stuckgen.doctor import DoctorReport
    from stuckgen.session import Session


def run_demo(out: Output, *, scenario: str, generations: int, threshold: str, keep: bool,
             database_url: str | None) -> int:
    """`stuckgen demo`: 0 when the diagnosis named the cause the scenario planted, else 1."""
    from stuckgen.demo import NEXT_STEPS, judge
    from stuckgen.durations import parse_duration
    from stuckgen.reference.scenarios import get_scenario
    from stuckgen.session import interruptible

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
    out.note("\n" + "\n".join(NEXT_STEPS) + "\n")
    out.note(verdict.line)
    return ExitCode.OK if verdict.ok else ExitCode.FINDINGS


def _run(out: Output, scenario: str, *, database_url: str | None, generations: int, threshold: float, keep: bool,
         t0: float) -> DoctorReport:
    from stuckgen.demo import demo_environment, send_traffic, settings_for, wait_until_stuck
    from stuckgen.session import Session

    with demo_environment(scenario=scenario, database_url=database_url, threshold=threshold,
                          progress=lambda m: out.note(f"  {m} ...")) as env:
        out.note(f"  sending {generations} generations through {env.url}/api/generate ...")
        ids = send_traffic(env, count=generations)
        out.note(f"  waiting until rows finish or stay quiet for {threshold:g}s ...")
        wait_until_stuck(env.dsn, ids=ids, threshold=threshold, timeout=threshold + 20)
        with Session(settings_for(env, threshold=threshold), out) as session:
            report = _diagnose(session, out, scenario, t0=t0)
        if keep:
            _keep_running(out, env.env_file, threshold)
    return report


def _diagnose(session: Session, out: Output, scenario: str, *, t0: float) -> DoctorReport:
    """Doctor's report on the stuck rows; for lost callbacks, then settle them as the rows' owner would."""
    from stuckgen.commands.doctor import steps
    from stuckgen.demo import settle_lost_callbacks
    from stuckgen.doctor import gather
    from stuckgen.reference.scenarios import get_scenario
    from stuckgen.render.doctor import doctor_text_lines

    out.note("  running doctor ...")
    report = gather(session, probe=True, repeat=4, on_step=steps(out))
    out.note(f"  done in {time.monotonic() - t0:.1f}s\n")
    out.lines(doctor_text_lines(report))
    if get_scenario(scenario).use_webhooks:
        out.note("\n  settling the lost callbacks through the app "
                 "(stuckgen reconcile --apply --via sync --yes, as the rows' owner) ...")
        for line in settle_lost_callbacks(session):
            out.note(f"  {line}")
    return report


def _keep_running(out: Output, env_file: object, threshold: float) -> None:
    """--keep: tell how to point the other commands at the demo, and wait for Ctrl-C."""
    try:
        out.note(
            f"\nThe database and the deployment keep running until Ctrl-C. In another shell:\n"
            f"  stuckgen scan --env-file {env_file}\n"
            f"  stuckgen probe-auth --env-file {env_file} --repeat 10\n"
            f"  stuckgen doctor --env-file {env_file} --format markdown\n"
            f"(the file holds DATABASE_URL, STUCKGEN_BASE_URL, INTERNAL_API_SECRET, a session cookie and the "
            f"demo's threshold ({threshold:g}s) and window; "
            f"it is readable by you only and removed on exit)")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        out.note("stopping ...")
