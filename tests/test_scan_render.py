"""The scan rendered by PostgreSQL (scan_render) writes what the Python path writes, byte for byte.

Both paths run in one transaction (one now()), over every kind of stuck row and over the
rows whose text is awkward to write in SQL: non-ASCII, quotes, line breaks, cut log
entries, odd statuses, a creation time in the future, other mappings.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg.types.json import Jsonb

from stuckgen import db as dbmod
from stuckgen.reference.seed import KINDS, seed
from stuckgen.render.scan import csv_row
from stuckgen.scan import DEFAULT_RULES, ScanOptions, ScanRun, rules_from_config
from stuckgen.scan_render import RenderedScan
from stuckgen.schema import MappingConfig, resolve

ODD_ROWS = [
    # (status, parameters, created seconds ago)
    ("processing", {"lastStep": "generate:create", "lastHeartbeatAt": "soon"}, 3600),
    ("processing", {"lastStep": "generate:create", "lastHeartbeatAt": "it's late"}, 3600),
    ("processing", {"lastStep": "weird 'step' \\ here", "debugLogs": [{"step": "x"}]}, 3600),
    ("processing", {"lastStep": "process:failed", "error": "ünïcödé — \u2028 and \x7f and \"quotes\", commas\nnewline"}, 3000),
    ("processing", {"lastStep": "process:trigger-failed-http", "debugLogs": [
        {"at": "2020-01-01T00:00:00Z", "step": "process:trigger-failed-http", "status": "503", "error": "x" * 900}]}, 3500),
    ("processing", {"lastStep": "process:trigger-failed-http", "debugLogs": [
        {"step": "process:trigger-failed-http", "status": 401.0, "errorText": "bad secret"},
        {"step": "process:trigger-failed-exception", "status": "007", "error": "", "message": "timeout, retrying"}]}, 3400),
    ("processing", {"lastStep": "process:trigger-failed-http", "debugLogs": [
        {"step": "process:trigger-failed-http", "status": "\u0664\u0660\u0661", "error": {"nested": True}}]}, 3300),
    ("processing", {"lastStep": "process:trigger-failed-http", "debugLogs": [
        {"step": "process:trigger-failed-http", "status": 429, "error": 0, "message": ["a"]}]}, 3200),
    ("processing", {"lastStep": "model:generate:heartbeat", "lastHeartbeatAt": 1700000000123}, 3100),
    ("queued", {"lastStep": "日本語のステップ", "lastHeartbeatAt": "2020-01-01T00:00:00.5+02:00"}, 3000),
    # Created in the future (a skewed clock), with a heartbeat long ago.
    ("processing", {"lastStep": "generate:create", "lastHeartbeatAt": "2020-01-01T00:00:00Z"}, -5),
    ("processing", {"lastStep": "generate:create", "debugLogs": "not a list"}, 2900),
]


@pytest.fixture
def odd(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {k: 3 for k in KINDS})
        for status, params, ago in ODD_ROWS:
            conn.execute(
                "INSERT INTO generations (id, session_id, user_id, model_id, prompt, parameters, status, created_at) "
                "VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'm', 'p', %s, %s, "
                "(now() AT TIME ZONE 'UTC') - make_interval(secs => %s))", (Jsonb(params), status, ago))
    return db


def both(dsn: str, cfg: MappingConfig | None = None, rules=DEFAULT_RULES, fmt: str = "json", **opts):
    """(Python's lines and summary, the server's lines and summary), read in one transaction."""
    conn = dbmod.connect(dsn)
    with conn, dbmod.transaction(conn, read_only=True):
        m = resolve(conn, cfg or MappingConfig())
        options = ScanOptions(**opts)
        py = ScanRun(conn, m, options, rules)
        py.count_window()
        render = json.dumps if fmt == "json" else None
        py_lines = [render(r.as_dict()) if render else csv_row(r) for r in py]
        sq = RenderedScan(conn, m, options, rules, fmt=fmt)
        sq_lines = list(sq)
    return (py_lines, py.summary.as_dict()), (sq_lines, sq.summary.as_dict())


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_every_row_and_the_summary_are_written_as_python_writes_them(odd, fmt):
    (py, py_sum), (sq, sq_sum) = both(odd, fmt=fmt)
    assert len(py) == 3 * 7 + len(ODD_ROWS)
    assert sq == py
    assert sq_sum == py_sum


def test_the_future_row_and_odd_statuses_are_covered(odd):
    (py, _), (sq, sq_sum) = both(odd)
    assert sq == py
    docs = [json.loads(line) for line in sq]
    assert any(d["age_seconds"] is not None and d["age_seconds"] < 0 for d in docs)
    assert {7, 401, 429} <= {d["trigger_status"] for d in docs}
    assert any("cut or not JSON" in n for d in docs for n in d["notes"])


def test_filters_limit_and_custom_rules_agree(odd):
    rules = rules_from_config([{"class": "mine", "why": "custom", "last_step_in": ["generate:create"]}]) + DEFAULT_RULES
    (py, py_sum), (sq, sq_sum) = both(odd, rules=rules, classes=("mine", "trigger-failed"))
    assert sq == py and sq_sum == py_sum
    (py, py_sum), (sq, sq_sum) = both(odd, limit=5)
    assert sq == py and sq_sum == py_sum and sq_sum["truncated"] is True


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_timed_out_rows_are_written_as_python_writes_them(odd, fmt):
    # Most seeded stalled rows started their worker an hour or more ago: past 300 s + the grace.
    (py, py_sum), (sq, sq_sum) = both(odd, fmt=fmt, max_duration=300.0)
    assert sq == py and sq_sum == py_sum
    assert py_sum["by_class"].get("timed-out", 0) >= 1
    if fmt == "json":
        dead = [json.loads(line) for line in sq if json.loads(line)["class"] == "timed-out"]
        assert dead and all(d["why"].startswith("worker started ") and
                            d["why"].endswith(" ago, function limit 300 s: provably dead") for d in dead)
    # A limit longer than every row's age: no row is timed-out, on either path.
    (py, py_sum), (sq, sq_sum) = both(odd, fmt=fmt, max_duration=30 * 86400.0)
    assert sq == py and sq_sum == py_sum and "timed-out" not in py_sum["by_class"]
    (py, py_sum), (sq, sq_sum) = both(odd, fmt=fmt, max_duration=300.0, classes=("timed-out",))
    assert sq == py and sq_sum == py_sum and set(py_sum["by_class"]) == {"timed-out"}


def test_other_mappings_agree(odd):
    cfg = MappingConfig(overrides={"heartbeat": "none", "step_log": "none"}, outputs=None, queue=None)
    (py, py_sum), (sq, sq_sum) = both(odd, cfg)
    assert sq == py and sq_sum == py_sum


def test_a_class_filter_applies_before_the_limit(odd):
    _, (sq, _) = both(odd, classes=("stalled",), limit=2)
    assert len(sq) == 2 and all(json.loads(line)["class"] == "stalled" for line in sq)


def test_table_rows_are_parsed_only_for_the_rows_shown(odd):
    conn = dbmod.connect(odd)
    with conn, dbmod.transaction(conn, read_only=True):
        m = resolve(conn, MappingConfig())
        py = list(ScanRun(conn, m, ScanOptions()))
        run = RenderedScan(conn, m, ScanOptions(), fmt="table", shown=4)
        shown = list(run)
    assert [r.as_dict() for r in shown] == [r.as_dict() for r in py[:4]]
    assert run.summary.stuck == len(py), "the summary counts every row"
