"""demo end to end in a subprocess: it diagnoses the incident and leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "stuckgen")
README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """The demo's temporary directory, outside pytest's own root (/tmp/pytest-of-$USER).

    As root, the embedded PostgreSQL runs as its own user and must traverse the directories
    above its data; every pytest run that starts makes pytest-of-$USER 0700 again, which cut
    a running demo off its data directory ("Permission denied") while another run started.
    """
    d = Path(tempfile.mkdtemp(prefix="stuckgen-demo-test-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUCKGEN_", "DATABASE_URL", "INTERNAL_API"))}
    env.update(TMPDIR=str(tmp_path), NO_COLOR="1")
    return env


def _leftovers(tmp_path: Path) -> tuple[list[str], list[str]]:
    dirs = [p.name for p in tmp_path.iterdir() if p.name.startswith("stuckgen-demo-")]
    procs = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(tmp_path) in cmd:
                procs.append(cmd)
    return dirs, procs


@pytest.mark.slow
def test_demo_diagnoses_the_incident_and_cleans_up(tmp_path):
    env = _env(tmp_path)
    env.pop("XDG_RUNTIME_DIR", None)  # as for root, CI and containers: no third-party warning may show
    p = subprocess.run([EXE, "demo"], capture_output=True, text=True, env=env, timeout=120)
    # The fault is found by design: the demo worked, so a setup script sees success.
    assert p.returncode == 0, p.stderr
    assert "secret-intermittent" in p.stdout.splitlines()[next(i for i, l in enumerate(p.stdout.splitlines()) if l.startswith("Findings"))+1]
    assert "trigger-failed" in p.stdout
    assert "demo cleaned up." in p.stderr
    assert p.stderr.rstrip().splitlines()[-1] == "diagnosed: secret-intermittent, as planted (scenario intermittent)"
    assert "Warning" not in p.stderr and "warning" not in p.stderr.lower(), p.stderr
    # what to run on your own app, the way the README says it
    assert "export DATABASE_URL=" in p.stderr and "stuckgen init" in p.stderr and "stuckgen doctor" in p.stderr
    from stuckgen.demo import NEXT_STEPS

    assert "\n".join(NEXT_STEPS) in p.stderr and "\n".join(NEXT_STEPS[1:]) in README
    assert _leftovers(tmp_path) == ([], [])


@pytest.mark.slow
def test_demo_healthy_scenario_exits_0(tmp_path):
    p = subprocess.run([EXE, "demo", "--scenario", "healthy", "--generations", "4", "--threshold", "8s"], capture_output=True, text=True,
                       env=_env(tmp_path), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "no stuck generations" in p.stdout
    assert "diagnosed: nothing wrong, as planted (scenario healthy)" in p.stderr
    assert _leftovers(tmp_path) == ([], [])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_demo_interrupted_cleans_up(tmp_path, sig):
    proc = subprocess.Popen([EXE, "demo", "--keep"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(tmp_path))
    try:
        deadline = time.monotonic() + 90
        seen = ""
        while time.monotonic() < deadline and "keep running until Ctrl-C" not in seen:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
        assert "keep running until Ctrl-C" in seen, seen
        env_file = next(tmp_path.glob("stuckgen-demo-*/demo.env"))
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        # The env file reproduces what the demo showed: its threshold, so the stuck rows are found now.
        text = env_file.read_text()
        assert "STUCKGEN_THRESHOLD=" in text and "STUCKGEN_SINCE=" in text
        scan = subprocess.run([EXE, "scan", "--env-file", str(env_file), "-f", "json"], capture_output=True, text=True,
                              env=_env(tmp_path), timeout=60)
        assert scan.returncode == 1, scan.stdout + scan.stderr
        assert json.loads(scan.stdout)["summary"]["stuck"] > 0
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        # Ctrl-C is how --keep ends: the demo then exits by its verdict (the default scenario is diagnosed).
        assert proc.returncode == 0, err
        assert "demo cleaned up." in err or "demo interrupted" in err
    finally:
        if proc.poll() is None:  # a failed assertion must not leave the demo running
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
    assert _leftovers(tmp_path) == ([], [])


def test_demo_rejects_unknown_scenario(tmp_path):
    p = subprocess.run([EXE, "demo", "--scenario", "nope"], capture_output=True, text=True, env=_env(tmp_path), timeout=60)
    assert p.returncode == 2
    assert "nope" in p.stderr and "Traceback" not in p.stderr


def _report(*ids_and_severities):
    from datetime import datetime, timezone

    from stuckgen.doctor import DoctorReport, RankedFinding
    from stuckgen.findings import Finding

    return DoctorReport(generated_at=datetime.now(timezone.utc), ranked=[
        RankedFinding(support=1.0 - i / 10, finding=Finding(id=fid, severity=sev, title=fid, evidence=(), fix=""))
        for i, (fid, sev) in enumerate(ids_and_severities)])


def test_demo_verdict_is_success_only_when_the_planted_cause_ranks_first():
    from stuckgen.demo import judge
    from stuckgen.findings import Severity

    ok = judge(_report(("secret-intermittent", Severity.ERROR), ("stuck-trigger-failed", Severity.ERROR)), "intermittent")
    assert ok.ok and ok.line == "diagnosed: secret-intermittent, as planted (scenario intermittent)"
    # an informational note ranked above it does not count as the diagnosis
    assert judge(_report(("pooler", Severity.INFO), ("secret-intermittent", Severity.ERROR)), "intermittent").ok

    wrong = judge(_report(("secret-rejected", Severity.ERROR), ("secret-intermittent", Severity.ERROR)), "intermittent")
    assert not wrong.ok
    assert wrong.line.startswith("NOT diagnosed: scenario intermittent planted secret-intermittent, but doctor ranked "
                                 "secret-rejected first")
    assert not judge(_report(), "intermittent").ok  # found nothing: the demo failed

    assert judge(_report(("pooler", Severity.INFO)), "healthy").ok
    assert not judge(_report(("secret-rejected", Severity.ERROR)), "healthy").ok


def test_every_fault_scenario_plants_a_cause():
    from stuckgen.reference.scenarios import SCENARIOS

    assert [n for n, s in SCENARIOS.items() if s.planted is None] == ["healthy"]


@pytest.mark.slow
def test_demo_lost_callback_tells_the_whole_story(tmp_path):
    p = subprocess.run([EXE, "demo", "--scenario", "lost-callback", "--generations", "4", "--threshold", "2s"],
                       capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    # Rows waiting, the provider finished, the callback lost, the cause named ...
    assert "asked about 4 stuck provider row(s): provider-succeeded-callback-lost 4" in p.stdout
    findings = p.stdout.split("Findings, most likely cause first", 1)[1].splitlines()
    assert "webhook-signature-rejected" in findings[1] and "lost-callback" in p.stdout
    # ... and reconcile settles them through the app.
    assert "the app settled 4 of 4 row(s) via sync" in p.stderr
    assert p.stderr.rstrip().splitlines()[-1] == "diagnosed: webhook-signature-rejected, as planted (scenario lost-callback)"
    assert _leftovers(tmp_path) == ([], [])
