"""Every command is documented: a docstring with an example and exit codes, and a README section."""

from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from stuckgen.cli import app

README = (Path(__file__).parent.parent / "README.md").read_text()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


def test_the_commands_the_issues_ask_for_exist():
    assert set(COMMANDS) >= {"scan", "schema", "probe-auth", "retrigger", "fail", "undo", "history", "show",
                             "doctor", "check", "watch", "demo"}


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_has_an_example_and_exit_codes(name):
    r = CliRunner().invoke(app, [name, "--help"], env={"NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    assert "Example" in r.stdout, f"{name} --help has no example"
    assert "Exit" in r.stdout, f"{name} --help does not document its exit codes"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_is_in_the_readme_with_an_example(name):
    assert f"`stuckgen {name}" in README, f"README has no section for {name}"
    assert f"stuckgen {name}" in README.split(f"`stuckgen {name}", 1)[1], f"README shows no example of {name}"


def test_readme_starts_with_the_two_commands_a_newcomer_types():
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "stuckgen demo" in first_block and "pytest" in first_block


def test_every_exit_status_is_an_exit_code_member_and_the_top_level_help_lists_them_all():
    import re
    from pathlib import Path

    from typer.testing import CliRunner

    from stuckgen.cli import app
    from stuckgen.errors import ExitCode

    text = " ".join(CliRunner().invoke(app, ["--help"], terminal_width=200).stdout.split())
    for code in ExitCode:
        assert re.search(rf"\b{int(code)} ", text), (code, text)
    # No bare numbers where an exit status is produced: typer.Exit(130), return 130, code = 4.
    bare = re.compile(r"(typer\.Exit\(\s*\d|return\s+(1[0-9]{2}|[2-9])\b|\.code\s*=\s*\d)")
    root = Path(__file__).parent.parent / "stuckgen"
    offenders = [f"{p.relative_to(root)}:{n}: {line.strip()}"
                 for p in root.rglob("*.py") if "reference" not in p.parts
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if bare.search(line) and "Exit(0)" not in line]
    assert offenders == [], offenders


DEPLOYMENT_FLAGS = ("--url", "--route", "--secret-header", "--secret", "--bypass-secret", "--cookie", "--cookie-file",
                    "--cookie-name", "--http-timeout", "--allow-insecure")


@pytest.mark.parametrize("name", ["probe-auth", "doctor", "check", "retrigger", "reconcile"])
def test_every_command_that_talks_to_the_deployment_takes_the_same_deployment_options(name):
    r = CliRunner().invoke(app, [name, "--help"], env={"NO_COLOR": "1"}, terminal_width=200)
    missing = [f for f in DEPLOYMENT_FLAGS if f" {f} " not in r.stdout and f" {f}," not in r.stdout]
    assert missing == [], (name, missing)


@pytest.mark.parametrize("name", ["fail", "retrigger", "reconcile", "doctor", "check"])
def test_commands_that_classify_rows_take_scans_tuning_flags(name):
    r = CliRunner().invoke(app, [name, "--help"], env={"NO_COLOR": "1"}, terminal_width=200)
    assert all(f" {f} " in r.stdout for f in ("--grace", "--queue-lock", "--max-duration")), name


@pytest.mark.parametrize("name", ["doctor", "check"])
def test_doctor_and_check_name_the_human_format_table_and_still_take_text(name):
    r = CliRunner().invoke(app, [name, "--help"], env={"NO_COLOR": "1"}, terminal_width=200)
    assert "table |" in r.stdout and "text |" not in r.stdout
    from stuckgen.cli.options import pick_format
    from stuckgen.console import Output

    assert pick_format("text", Output(is_tty=False), ("table", "json")) == "table"
