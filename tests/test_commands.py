"""Command bodies run without Typer: a Session and an Output the test builds itself (stuckgen.commands)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import psycopg
import pytest

from stuckgen.commands.jobs import run_jobs
from stuckgen.commands.scan import run_scan
from stuckgen.console import Output
from stuckgen.errors import ConfigError, ExitCode
from stuckgen.reference.seed import seed
from stuckgen.session import Session
from stuckgen.settings import load_settings


def _session(dsn: str, tmp_path: Path, out: Output) -> Session:
    settings = load_settings({"database_url": dsn}, environ={}, cwd=tmp_path)
    return Session(settings, out)


def test_run_scan_writes_to_the_output_it_is_handed_and_opens_one_connection(db: str, tmp_path: Path) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 2, "completed": 1})
    out = Output(stdout=io.StringIO(), stderr=io.StringIO(), is_tty=False)
    with _session(db, tmp_path, out) as session:
        code = run_scan(session, out, fmt="json")
        assert session._conn is not None and not session._conn.closed, "the session owns the connection"
    assert session._conn is None, "closed with the session"
    assert code == ExitCode.FINDINGS
    doc = json.loads(out.stdout.getvalue())  # type: ignore[attr-defined]
    assert doc["summary"]["stuck"] == 2 and {r["class"] for r in doc["rows"]} == {"never-started"}
    assert out.stderr.getvalue() == ""  # type: ignore[attr-defined]


def test_run_jobs_refuses_ids_without_an_action_before_connecting(tmp_path: Path) -> None:
    out = Output(stdout=io.StringIO(), stderr=io.StringIO(), is_tty=False)
    # An address nothing listens on: the usage error must come first.
    with _session("postgresql://nobody@127.0.0.1:9/none", tmp_path, out) as session:
        with pytest.raises(ConfigError, match="go with --retry or --fail"):
            run_jobs(session, out, fmt="json", ids=("42",))
        assert session._conn is None
    assert out.stdout.getvalue() == ""  # type: ignore[attr-defined]
