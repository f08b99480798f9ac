"""fail, undo and history run as core bodies (stuckgen.commands.remediate) on a Session and an Output the test
builds: on a terminal, the dry run and the write's target come before the one question."""

from __future__ import annotations

import io
import json
from pathlib import Path

import psycopg

from stuckgen.commands.remediate import pick, run_fail, run_history, run_undo
from stuckgen.console import Output
from stuckgen.errors import ExitCode
from stuckgen.reference.seed import seed
from stuckgen.session import Session
from stuckgen.settings import load_settings
from tests.remediation_helpers import statuses


class Terminal(io.StringIO):
    """A stream that says it is a terminal (a person at the keyboard)."""

    def isatty(self) -> bool:
        return True


def _session(dsn: str, tmp_path: Path, out: Output) -> Session:
    settings = load_settings({"database_url": dsn, "audit_file": str(tmp_path / "audit.jsonl")}, environ={},
                             cwd=tmp_path)
    return Session(settings, out)


def _terminal(answer: str) -> Output:
    return Output(stdout=io.StringIO(), stderr=Terminal(), stdin=Terminal(answer), is_tty=False)


def test_fail_on_a_terminal_shows_the_rows_and_the_target_then_a_no_changes_nothing(db: str, tmp_path: Path) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 2, "completed": 1})
    before = statuses(db)
    out = _terminal("n\n")
    with _session(db, tmp_path, out) as session:
        run_fail(session, out, pick=pick(all_stuck=True), fmt="json")
    err = out.stderr.getvalue()  # type: ignore[attr-defined]
    assert "target: " in err and "Set 2 row(s)" in err and "[y/N]" in err
    assert err.index("target: ") < err.index("Set 2 row(s)")
    assert json.loads(out.stdout.getvalue())["dry_run"] is True  # type: ignore[attr-defined]
    assert statuses(db) == before and not (tmp_path / "audit.jsonl").exists()


def test_fail_then_undo_and_history_through_the_bodies(db: str, tmp_path: Path) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 2})
    before = statuses(db)
    out = _terminal("y\n")
    with _session(db, tmp_path, out) as session:
        assert run_fail(session, out, pick=pick(all_stuck=True), fmt="json") == ExitCode.OK
    assert set(statuses(db).values()) == {"failed"}

    out = Output(stdout=io.StringIO(), stderr=io.StringIO(), is_tty=False)
    with _session(db, tmp_path, out) as session:
        assert run_history(session, out, fmt="json") == ExitCode.OK
    runs = json.loads(out.stdout.getvalue())["runs"]  # type: ignore[attr-defined]
    assert [r["action"] for r in runs] == ["fail"] and runs[0]["rows"] == 2

    out = Output(stdout=io.StringIO(), stderr=io.StringIO(), is_tty=False)
    with _session(db, tmp_path, out) as session:  # not a terminal, no --yes: a dry run
        run_undo(session, out, run_id=runs[0]["run_id"], fmt="json")
    assert set(statuses(db).values()) == {"failed"}
    with _session(db, tmp_path, out) as session:
        assert run_undo(session, out, run_id=runs[0]["run_id"], yes=True, fmt="json") == ExitCode.OK
    assert statuses(db) == before
