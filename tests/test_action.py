"""The GitHub Action (action.yml): its run: lines executed as the runner executes them, in a clean venv.

The runner runs each composite step's ``run:`` with ``bash --noprofile --norc
-eo pipefail FILE``, after evaluating ``${{ inputs.* }}`` in the step's ``env:``
and with GITHUB_ACTION_PATH, RUNNER_TEMP, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY
set. This test does the same (it evaluates only the ``inputs`` context: the
action must not use any other expression in a step), so what is tested is the
file a workflow would run. Installing the checkout into a fresh virtual
environment happens once per test session.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml

from stuckgen.reference.seed import seed

ROOT = Path(__file__).parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")

pytestmark = pytest.mark.slow


def _evaluate(value: str, inputs: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        expr = m.group(1)
        assert expr.startswith("inputs."), f"the action's steps may only read inputs, not {expr!r}"
        name = expr.removeprefix("inputs.")
        assert name in ACTION["inputs"], f"unknown input {name!r}"
        return inputs.get(name, str(ACTION["inputs"][name].get("default", "")))

    return EXPR.sub(sub, str(value))


def run_step(step: dict, *, inputs: dict[str, str], env: dict[str, str], work: Path) -> subprocess.CompletedProcess:
    """One composite step, as the runner would run it."""
    assert step["shell"] == "bash"
    assert not EXPR.search(step["run"]), "inputs reach the script through env, never pasted into it"
    script = work / f"step-{os.urandom(4).hex()}.sh"
    script.write_text(step["run"])
    step_env = {k: _evaluate(v, inputs) for k, v in (step.get("env") or {}).items()}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                          env={**env, **step_env}, cwd=work, capture_output=True, text=True, timeout=600)


def runner_env(work: Path, runner_temp: Path, **extra: str) -> dict[str, str]:
    (work / "output").write_text("")
    (work / "summary.md").write_text("")
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
                                       "PIP_FIND_LINKS", "PIP_CERT", "SSL_CERT_FILE", "PIP_CONFIG_FILE")
            if k in os.environ}
    return {**keep, "GITHUB_ACTION_PATH": str(ROOT), "RUNNER_TEMP": str(runner_temp), "CI": "true",
            "GITHUB_OUTPUT": str(work / "output"), "GITHUB_STEP_SUMMARY": str(work / "summary.md"), **extra}


def outputs(work: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (work / "output").read_text().splitlines() if "=" in line)


@pytest.fixture(scope="session")
def runner_temp(tmp_path_factory) -> Path:
    """RUNNER_TEMP with the action's venv installed by the action's own install step (once per session)."""
    temp = tmp_path_factory.mktemp("runner-temp")
    work = tmp_path_factory.mktemp("runner-work")
    install = ACTION["runs"]["steps"][0]
    r = run_step(install, inputs={}, env=runner_env(work, temp), work=work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.match(r"stuckgen \d", r.stdout.strip().splitlines()[-1])
    return temp


def check_step() -> dict:
    return next(s for s in ACTION["runs"]["steps"] if s.get("id") == "check")


def test_install_step_uses_the_actions_checkout_never_a_package_name():
    install = ACTION["runs"]["steps"][0]["run"]
    assert '"$GITHUB_ACTION_PATH"' in install
    assert not re.search(r"pip install[^\n]*\bstuckgen\b", install)


def test_the_installed_package_is_this_checkout(runner_temp):
    venv = runner_temp / "stuckgen-action-venv"
    r = subprocess.run([str(venv / "bin" / "python"), "-c", "import stuckgen, sys; print(stuckgen.__file__)"],
                       capture_output=True, text=True, cwd=runner_temp)
    assert r.returncode == 0 and str(venv) in r.stdout  # a copy in the venv, not this source tree on sys.path


def test_action_fails_an_incident_with_annotations_summary_and_outputs(runner_temp, db, tmp_path):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 6, "trigger-failed": 2, "stalled": 1})
    env = runner_env(tmp_path, runner_temp, DATABASE_URL=db)
    r = run_step(check_step(), inputs={"junit": str(tmp_path / "junit.xml"),
                                       "metrics-file": str(tmp_path / "stuckgen.prom")}, env=env, work=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "::error title=stuckgen stuck-count::3 stuck generations" in r.stderr
    assert "FAIL stuck-count: 3 stuck generations" in r.stdout and "result: FAILED" in r.stdout
    summary = (tmp_path / "summary.md").read_text()
    assert "# Stuck generations: incident report" in summary and "`trigger-failed` 2" in summary
    out = outputs(tmp_path)
    assert out["exit-code"] == "1" and out["stuck"] == "3" and out["failed"] == "true"
    assert Path(out["report"]).is_file()
    assert (tmp_path / "junit.xml").is_file() and "stuckgen_stuck_rows 3" in (tmp_path / "stuckgen.prom").read_text()


def test_action_passes_a_healthy_database(runner_temp, db, tmp_path):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 4, "running": 1})
    env = runner_env(tmp_path, runner_temp, DATABASE_URL=db)
    r = run_step(check_step(), inputs={"junit": "", "max-stuck-rate": "5%"}, env=env, work=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "::error" not in r.stderr and "result: healthy" in r.stdout
    assert outputs(tmp_path) == {"exit-code": "0", "report": outputs(tmp_path)["report"], "stuck": "0",
                                 "failed": "false"}


def test_an_input_cannot_inject_shell_code(runner_temp, db, tmp_path):
    env = runner_env(tmp_path, runner_temp, DATABASE_URL=db)
    marker = tmp_path / "pwned"
    r = run_step(check_step(), inputs={"threshold": f"2m; touch {marker}", "junit": ""}, env=env, work=tmp_path)
    assert not marker.exists()
    assert r.returncode == 2 and "--threshold" in r.stderr  # the whole value reached stuckgen as one argument
    assert outputs(tmp_path)["exit-code"] == "2"


def test_unreachable_database_exits_3_and_keeps_the_secret(runner_temp, tmp_path):
    env = runner_env(tmp_path, runner_temp, DATABASE_URL="postgresql://ci:pw-action-secret@127.0.0.1:1/db",
                     STUCKGEN_CONNECT_TIMEOUT="2s")
    r = run_step(check_step(), inputs={"junit": ""}, env=env, work=tmp_path)
    assert r.returncode == 3
    assert "pw-action-secret" not in r.stdout + r.stderr + (tmp_path / "summary.md").read_text()


def test_example_workflow_uses_the_action_and_passes_secrets_through_env():
    wf = yaml.safe_load((ROOT / "examples" / "stuckgen-check.yml").read_text())
    steps = wf["jobs"]["check"]["steps"]
    uses = [s for s in steps if "stuckgen" in str(s.get("uses", ""))]
    assert len(uses) == 1, steps
    step = uses[0]
    assert "secrets." not in str(step.get("with", {})), "secrets only through env"
    assert "${{ secrets.DATABASE_URL }}" in step["env"].values()
    assert set(step.get("with", {})) <= set(ACTION["inputs"])
    text = (ROOT / "examples" / "stuckgen-check.yml").read_text()
    assert not re.search(r"pip install\s+(-\S+\s+)*stuckgen\b", text)


def test_no_install_instruction_names_the_unclaimed_package():
    for path in [ROOT / "README.md", *sorted((ROOT / "examples").iterdir())]:
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"pip install\s+(-\S+\s+)*['\"]?stuckgen\b(?![/.\w-])", text), path
            assert "pipx install stuckgen" not in text and "uv tool install stuckgen" not in text, path
