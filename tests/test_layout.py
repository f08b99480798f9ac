"""Terminal layout at 80 and 100 columns: tables fit, why wraps last, text wraps between words, commands stay whole."""

from __future__ import annotations

import re

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.seed import seed
from stuckgen.render.layout import tokens, wrap

runner = CliRunner()
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "STUCKGEN_BASE_URL",
                "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def incident(pg_server):
    import uuid

    from conftest import SCHEMA_SQL, dsn_for_database

    name = "stuckgen_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = dsn_for_database(pg_server, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
        seed(conn, {"completed": 5, "trigger-failed": 3, "stalled": 2, "never-started": 2, "awaiting-webhook": 1,
                    "outputs-not-finalized": 1})
    yield dsn
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def header(out: str) -> list[str]:
    return [c.strip() for c in out.splitlines()[0].split("┃")]


def rows_by_id(out: str) -> dict[str, list[str]]:
    """Each row's cells, continuation lines joined per column (what a reader sees as one cell)."""
    rows: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines()[2:]:
        if "│" not in line:
            break
        cells = [c.strip() for c in line.split("│")]
        if UUID.fullmatch(cells[0]):
            current = cells[0]
            rows[current] = cells
        elif current is not None:
            rows[current] = [(a + " " + b).strip() for a, b in zip(rows[current], cells)]
    return rows


def rows_stacked(out: str) -> dict[str, list[str]]:
    """The compact layout: ``id  class  quiet`` lines, each followed by its indented ``why``."""
    rows: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines()[1:]:
        if not line.strip() or line.startswith("("):
            break
        if UUID.match(line):
            current = line.split()[0]
            rows[current] = [*line.split(), ""]
        else:
            assert line.startswith("    ") and current is not None, line
            rows[current][3] = (rows[current][3] + " " + line.strip()).strip()
    return rows


@pytest.mark.parametrize("width", [80, 100])
def test_scan_table_fits_and_keeps_id_class_quiet_why(incident, width):
    r = runner.invoke(app, ["scan", "-d", incident, "-f", "table"], env={"COLUMNS": str(width), "NO_COLOR": "1"})
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    assert max(len(x) for x in lines) <= width, [x for x in lines if len(x) > width]
    assert "…" not in r.stdout  # nothing is cut: what does not fit is left out, and said so
    assert f"(created, last step left out at {width} columns" in r.stdout
    if width == 100:
        assert header(r.stdout) == ["id", "class", "quiet", "why"]
        rows = rows_by_id(r.stdout)
    else:  # the compact layout: why under each row, as wide as the terminal
        assert lines[0].split() == ["id", "class", "quiet"]
        rows = rows_stacked(r.stdout)
    assert len(rows) == 9
    import json

    doc = json.loads(runner.invoke(app, ["scan", "-d", incident, "-f", "json"]).stdout)
    for row in doc["rows"]:
        cells = rows[row["id"]]
        assert cells[1] == row["class"]
        assert cells[3] == row["why"], "why wraps between words: joined again it reads the same"


def test_scan_table_shows_every_column_when_there_is_room(incident):
    r = runner.invoke(app, ["scan", "-d", incident, "-f", "table"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert header(r.stdout) == ["id", "class", "quiet", "created", "last step", "why"]
    assert "left out" not in r.stdout and "process:trigger-failed-http" in r.stdout


@pytest.mark.parametrize("width", [80, 100])
def test_doctor_text_wraps_between_words_and_never_breaks_a_command(incident, width):
    r = runner.invoke(app, ["doctor", "-d", incident, "--no-probe", "-f", "text"], env={"COLUMNS": str(width)})
    assert r.exit_code == 1, r.output
    commands = re.findall(r"`[^`]+`", r.stdout)
    assert any("stuckgen retrigger --all-stuck --class trigger-failed" in c for c in commands)
    for line in r.stdout.splitlines():
        if len(line) > width:  # only a single token wider than the terminal may pass it
            assert len(tokens(line.strip())) == 1, line
        assert line.count("`") % 2 == 0, f"a command was broken across lines: {line!r}"
    unwrapped = runner.invoke(app, ["doctor", "-d", incident, "--no-probe", "-f", "text"], env={"COLUMNS": ""})
    assert " ".join(r.stdout.split()) == " ".join(unwrapped.stdout.split()), "wrapping changes only whitespace"


def test_check_text_wraps_to_the_terminal(incident):
    r = runner.invoke(app, ["check", "-d", incident], env={"COLUMNS": "80"})
    assert r.exit_code == 1
    assert max(len(x) for x in r.stdout.splitlines()) <= 80


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_:/.=,()", min_size=1, max_size=30)
commands = st.lists(words, min_size=1, max_size=6).map(lambda ws: "`" + " ".join(ws) + "`")


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(st.lists(st.one_of(words, commands), min_size=1, max_size=25), st.integers(min_value=20, max_value=120),
       st.sampled_from(["", "  ", "  1. ", "       - ", "       fix: "]))
def test_wrap_keeps_every_token_whole_and_fits_unless_one_token_is_wider(parts, width, lead):
    line = lead + " ".join(parts)
    out = wrap(line, width)
    assert tokens(" ".join(out)) == tokens(line)
    for o in out:
        assert len(o) <= width or len(tokens(o)) == 1
    for p in parts:
        if p.startswith("`"):
            assert any(p in o for o in out), p


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("command", [["retrigger", "--all-stuck", "--url", "http://127.0.0.1:9"],
                                     ["fail", "--all-stuck"]])
def test_remediation_tables_fit_and_never_cut_a_class_or_an_id(incident, width, command):
    r = runner.invoke(app, [*command, "-d", incident, "-f", "table"], env={"COLUMNS": str(width), "NO_COLOR": "1"})
    lines = r.stdout.splitlines()
    assert max(len(x) for x in lines) <= width, [x for x in lines if len(x) > width]
    assert "…" not in r.stdout
    assert "outputs-not-finalized" in r.stdout and len(UUID.findall(r.stdout)) >= 9
    assert "Pass --yes to act." in " ".join(r.stdout.split())


@pytest.mark.parametrize("width", [80, 100])
def test_probe_auth_table_fits_and_keeps_the_answers(db, width):
    from stuckgen.reference import ReferenceDeployment

    with ReferenceDeployment(db, "secret-missing", secret="layout-secret-value-1") as dep:
        r = runner.invoke(app, ["probe-auth", "--url", dep.url, "-f", "table", "--repeat", "2"],
                          env={"COLUMNS": str(width), "NO_COLOR": "1", "INTERNAL_API_SECRET": "layout-secret-value-1"})
    lines = r.stdout.splitlines()
    assert max(len(x) for x in lines) <= width, [x for x in lines if len(x) > width]
    assert "…" not in r.stdout
    assert header(r.stdout)[:2] == ["target", "mode"] and "answers" in header(r.stdout)
    assert sum("401 x2" in x for x in lines) >= 3
