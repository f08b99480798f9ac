"""Fixed costs and usable output: what a command imports, how many catalog round trips the
mapping costs, the terminal table's cap, and progress on stderr."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import psycopg
import pytest

from stuckgen.reference.seed import db_now, generate, insert_rows, seed
from stuckgen.schema import MappingConfig, resolve


def _imported_after(argv: list[str]) -> set[str]:
    code = ("import sys; from stuckgen import cli; cli._register(cli.command_modules(sys.argv[1:])); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('stuckgen'))))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_a_command_imports_only_its_own_module():
    mods = _imported_after(["scan", "--format", "json"])
    assert "stuckgen.cli.scan" in mods
    assert not mods & {"stuckgen.cli.remediate", "stuckgen.cli.doctor", "stuckgen.cli.watch", "stuckgen.cli.probe",
                       "stuckgen.remediate", "stuckgen.probe", "stuckgen.vercel"}
    assert {"stuckgen.cli.remediate", "stuckgen.cli.doctor"} <= _imported_after(["--help"])


def test_every_command_is_mapped_to_the_module_that_registers_it():
    from stuckgen import cli

    app = cli.app
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    assert names == set(cli.COMMAND_MODULES)
    for name, module in cli.COMMAND_MODULES.items():
        cmd = next(c for c in app.registered_commands if (c.name or c.callback.__name__.replace("_", "-")) == name)
        assert cmd.callback.__module__ == f"stuckgen.cli.{module}"


def test_mapping_resolution_costs_two_round_trips(db):
    """One catalog query for every table's columns and row estimate, one sample of the JSON keys."""
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 2, "completed": 2})
    statements: list[str] = []
    with psycopg.connect(db) as conn:
        conn.add_notice_handler(lambda n: None)
        real = conn.execute

        def counting(query, *args, **kwargs):
            statements.append(str(query))
            return real(query, *args, **kwargs)

        conn.execute = counting  # type: ignore[method-assign]
        m = resolve(conn, MappingConfig())
    assert m.has("heartbeat") and m.outputs.present and m.queue.present
    assert len(statements) == 2, statements


def test_mapping_types_match_information_schema(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE DOMAIN label AS varchar(20)")
        conn.execute("CREATE TABLE odd (id bigint PRIMARY KEY, status label, created timestamptz, "
                     "tags text[], n numeric(10, 2), c char(3))")
        from stuckgen.schema import _catalog

        cat = _catalog(conn, None, ["odd", "generations"])
        for table in ("odd", "generations"):
            info = conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                                (table,)).fetchall()
            assert list(cat.of(table).items()) == info


@pytest.mark.parametrize("columns", ["80", "100"])
def test_terminal_table_shows_a_screenful_and_counts_every_row(db, monkeypatch, columns):
    from typer.testing import CliRunner

    from stuckgen.cli import app
    from stuckgen.console import Output
    from stuckgen.render import TERMINAL_ROWS

    with psycopg.connect(db, autocommit=True) as conn:
        insert_rows(conn, generate({"never-started": TERMINAL_ROWS + 7}, now=db_now(conn)))
    # A terminal: stdout says it is one (the runner's stream is not).
    real_init = Output.__post_init__

    def as_tty(self):
        real_init(self)
        self.is_tty = True

    monkeypatch.setattr(Output, "__post_init__", as_tty)
    monkeypatch.setenv("COLUMNS", columns)
    r = CliRunner().invoke(app, ["scan", "-d", db, "-f", "table"])
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    assert sum(1 for line in lines if "never-started" in line and "By class" not in line) == TERMINAL_ROWS
    assert "7 more; use --limit or --format json" in r.stdout
    assert max(len(line) for line in lines) <= int(columns)
    assert f"{TERMINAL_ROWS + 7} stuck" in r.stdout, "the summary counts every row, not the rows shown"
    r = CliRunner().invoke(app, ["scan", "-d", db, "-f", "table", "--limit", "3"])
    assert "more; use" not in r.stdout


class _Tty(io.StringIO):
    """A terminal-like stream that signals each write (the test waits on it, no sleeping)."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.wrote = threading.Event()

    def isatty(self) -> bool:
        return True

    def write(self, s: str) -> int:
        n = super().write(s)
        self.wrote.set()
        return n


def test_progress_appears_after_the_delay_and_is_erased():
    from stuckgen.progress import Ticker

    stream = _Tty()
    ticker = Ticker("scanning", stream=stream, after=0.0, every=3600.0)
    ticker.add(1500)
    with ticker:
        assert stream.wrote.wait(30)
    assert stream.getvalue().startswith("\rscanning: 1,500 rows, 0s")
    assert stream.getvalue().endswith("\r"), "the line is cleared when the work ends"


def test_no_progress_off_a_terminal_or_for_quick_work():
    from stuckgen.progress import Ticker

    piped = io.StringIO()
    with Ticker("scanning", stream=piped, after=0.0, every=0.01) as t:
        t.add(10)
    assert piped.getvalue() == "" and not t.enabled
    quick = _Tty()
    with Ticker("scanning", stream=quick, after=3600.0):
        pass
    assert quick.getvalue() == ""


def test_a_transaction_costs_two_round_trips_and_leaves_no_read_only_behind(db):
    """BEGIN READ ONLY and one set_config for every setting; the next transaction is not read-only."""
    from stuckgen import db as dbmod

    conn = dbmod.connect(db)
    with conn:
        calls: list[str] = []
        real_execute = conn.execute

        def counting(query, *args, **kwargs):
            calls.append(str(query))
            return real_execute(query, *args, **kwargs)

        conn.execute = counting  # type: ignore[method-assign]
        with dbmod.transaction(conn, read_only=True, extra={"jit": "off"}):
            assert real_execute("SHOW transaction_read_only").fetchone()[0] == "on"
            assert real_execute("SHOW jit").fetchone()[0] == "off"
        assert len(calls) == 1, "one statement sets every setting (BEGIN READ ONLY is psycopg's own)"
        with dbmod.transaction(conn, read_only=False):
            assert real_execute("SHOW transaction_read_only").fetchone()[0] == "off"
        real_execute("SELECT 1")  # an implicit transaction outside ours
        assert real_execute("SHOW transaction_read_only").fetchone()[0] == "off"
        conn.rollback()


def test_a_large_table_samples_the_window_count_and_says_so(db, monkeypatch):
    """Past EXACT_COUNT_MAX_ROWS the rows created in the window are counted in a block sample
    (its cost does not grow with the table); the stuck rows before the window stay exact."""
    from typer.testing import CliRunner

    from stuckgen.cli import app
    from stuckgen.scan import window as scan_core

    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"never-started": 3, "completed": 5})
        conn.execute("ANALYZE generations")
    r = CliRunner().invoke(app, ["scan", "-d", db, "-f", "json"])
    exact = json.loads(r.stdout)["summary"]
    assert exact["created_in_window"] == 8 and exact["created_in_window_estimated"] is False
    # Every table is "large" now; a sample of all its blocks (the table is smaller than the sample) is exact.
    monkeypatch.setattr(scan_core, "EXACT_COUNT_MAX_ROWS", 0)
    r = CliRunner().invoke(app, ["scan", "-d", db, "-f", "json"])
    sampled = json.loads(r.stdout)["summary"]
    assert sampled["created_in_window"] == 8 and sampled["created_in_window_estimated"] is True
    assert sampled["stuck"] == 3 and sampled["stuck_rate"] == exact["stuck_rate"]
    t = CliRunner().invoke(app, ["scan", "-d", db, "-f", "table"])
    assert "3 stuck of ~8 created in the last 24h (~37.5%)" in t.stdout, t.stdout
