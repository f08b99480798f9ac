"""`stuckgen init` and the status census, on apps stuckgen was not written for.

The Photoshot fixture (tests/photoshot.py) is a second public app built from its Prisma
migrations; the reference schema is the incident app; a Prisma enum table stands for
apps whose status is a PostgreSQL enum.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.reference.seed import KINDS, seed

sys.path.insert(0, str(Path(__file__).parent))
import photoshot  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "STUCKGEN_TABLE", "STUCKGEN_MAP",
                "STUCKGEN_INFLIGHT_STATUSES", "STUCKGEN_SINCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def shots(empty_db):
    return empty_db, photoshot.create(empty_db)


def _init(dsn: str, *args: str) -> tuple[dict, str]:
    r = runner.invoke(app, ["init", "-d", dsn, *args])
    assert r.exit_code == 0, r.output
    text = Path("stuckgen.toml").read_text()
    return tomllib.loads(text), text


def test_init_on_photoshot_finds_every_stuck_shot_and_no_healthy_one(shots):
    dsn, rows = shots
    cfg, text = _init(dsn, "--table", "Shot")
    assert cfg["table"] == "Shot"
    assert set(cfg["inflight_statuses"]) == {"starting", "processing"}
    assert cfg["mapping"]["webhook"] == "replicateId"
    assert cfg["mapping"]["updated"] == "updatedAt" and cfg["mapping"]["created"] == "createdAt"
    assert cfg["failed_status"] == "failed"
    # The reasons are written beside the choices.
    assert "'starting': 5 rows (5 in the last day), Replicate's first status" in text.replace("\n# ", " ")
    assert "'hdStatus'" in text and "Asia/Kathmandu" in text

    r = runner.invoke(app, ["scan", "-d", dsn, "-f", "json", "--since", "all"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    got = {row["id"]: row["class"] for row in doc["rows"]}
    stuck = {s.id for s in rows if s.stuck}
    assert set(got) == stuck and len(stuck) == photoshot.STUCK_COUNT
    assert set(got.values()) == {"awaiting-webhook"}
    # Times are right on a +05:45 server: the 2-hour row is quiet for 2 hours, not 7h45 or -3h45.
    two_hours = next(s for s in rows if s.kind == "stuck-left-at-create" and s.updated_ago == 7200)
    quiet = next(row["quiet_seconds"] for row in doc["rows"] if row["id"] == two_hours.id)
    assert 7200 <= quiet < 7200 + 600


def test_default_window_names_the_shot_stuck_for_nine_days(shots):
    dsn, rows = shots
    _init(dsn, "--table", "Shot")
    doc = json.loads(runner.invoke(app, ["scan", "-d", dsn, "-f", "json"]).stdout)
    old = next(s for s in rows if s.kind == "stuck-days-ago")
    assert [x["id"] for x in doc["summary"]["before_window"]["rows"]] == [old.id]
    assert len(doc["rows"]) == photoshot.STUCK_COUNT - 1


def test_init_without_a_table_picks_shot_and_lists_the_other_candidates(shots):
    dsn, _ = shots
    cfg, text = _init(dsn)
    assert cfg["table"] == "Shot"
    assert "Other candidate tables" in text and "Payment" in text


def test_init_never_overwrites_without_force(shots):
    dsn, _ = shots
    Path("stuckgen.toml").write_text("# mine\n")
    r = runner.invoke(app, ["init", "-d", dsn, "--table", "Shot"])
    assert r.exit_code == 2
    assert "--force" in r.stderr and Path("stuckgen.toml").read_text() == "# mine\n"
    r = runner.invoke(app, ["init", "-d", dsn, "--table", "Shot", "--force"])
    assert r.exit_code == 0, r.output
    assert "inflight_statuses" in Path("stuckgen.toml").read_text()


def test_init_to_stdout_writes_no_file(shots):
    dsn, _ = shots
    r = runner.invoke(app, ["init", "-d", dsn, "--table", "Shot", "-o", "-"])
    assert r.exit_code == 0, r.output
    assert tomllib.loads(r.stdout)["table"] == "Shot"
    assert not Path("stuckgen.toml").exists()


def test_unknown_table_lists_the_tables_and_says_names_are_case_sensitive(shots):
    dsn, _ = shots
    r = runner.invoke(app, ["init", "-d", dsn, "--table", "shot"])
    assert r.exit_code == 2
    assert "Shot" in r.stderr and "case-sensitive" in r.stderr


def test_schema_shows_the_census_and_the_status_nobody_configured(shots):
    dsn, _ = shots
    r = runner.invoke(app, ["schema", "-d", dsn, "--table", "Shot", "-f", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    values = {v["value"]: v for v in doc["census"]["values"]}
    assert values["starting"]["rows"] == 5 and values["starting"]["role"] == "in flight"
    assert values["succeeded"]["role"] == "completed" and values["canceled"]["role"] == "cancelled"
    assert any("'starting' (5 rows) is a known in-flight status but not in inflight_statuses" in n
               for n in doc["census_notes"])
    # Zero configuration already knows replicateId for the provider id.
    assert doc["fields"]["webhook"]["spec"] == "replicateId"


def test_init_on_the_incident_app_agrees_with_the_defaults(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seeded = seed(conn, {k: 2 for k in KINDS})
    cfg, text = _init(db)
    assert cfg["table"] == "generations"
    assert set(cfg["inflight_statuses"]) == {"processing", "queued"}
    assert cfg["mapping"]["heartbeat"] == "parameters.lastHeartbeatAt"
    assert cfg["mapping"]["step_log"] == "parameters.debugLogs"
    assert cfg["mapping"]["queue"] == "generation_jobs.generation_id"
    assert cfg["mapping"]["outputs"] == "outputs.generation_id"
    with_init = json.loads(runner.invoke(app, ["scan", "-d", db, "-f", "json"]).stdout)
    defaults = json.loads(runner.invoke(app, ["scan", "-d", db, "-f", "json", "--config", "/dev/null"]).stdout)
    assert {(r["id"], r["class"]) for r in with_init["rows"]} == {(r["id"], r["class"]) for r in defaults["rows"]}
    assert with_init["rows"]


PRISMA_ENUM_SCHEMA = """
CREATE TYPE "RenderStatus" AS ENUM ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELED');
CREATE TABLE "Render" (
    "id" TEXT PRIMARY KEY,
    "status" "RenderStatus" NOT NULL DEFAULT 'PENDING',
    "predictionId" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL
);
INSERT INTO "Render" VALUES
  ('r1', 'PENDING', NULL, now() AT TIME ZONE 'UTC' - interval '1 hour', now() AT TIME ZONE 'UTC' - interval '1 hour'),
  ('r2', 'RUNNING', 'p2', now() AT TIME ZONE 'UTC' - interval '30 minutes', now() AT TIME ZONE 'UTC' - interval '30 minutes'),
  ('r3', 'RUNNING', 'p3', now() AT TIME ZONE 'UTC' - interval '1 minute', now() AT TIME ZONE 'UTC' - interval '5 seconds'),
  ('r4', 'SUCCEEDED', 'p4', now() AT TIME ZONE 'UTC' - interval '2 hours', now() AT TIME ZONE 'UTC' - interval '2 hours');
"""


def test_prisma_enum_status_labels_are_read_and_failed_is_a_label(empty_db):
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(PRISMA_ENUM_SCHEMA)
    cfg, text = _init(empty_db, "--table", "Render")
    assert cfg["inflight_statuses"] == ["PENDING", "RUNNING"] or set(cfg["inflight_statuses"]) == {"PENDING", "RUNNING"}
    assert cfg["failed_status"] == "FAILED"
    assert "labels: PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED" in text
    doc = json.loads(runner.invoke(app, ["scan", "-d", empty_db, "-f", "json"]).stdout)
    assert {(r["id"], r["class"]) for r in doc["rows"]} == {("r1", "unknown"), ("r2", "awaiting-webhook")}


def test_the_generated_file_never_holds_the_database_password(shots):
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    dsn, _ = shots
    params = conninfo_to_dict(dsn)
    params["password"] = "pw-" + "q7" * 12  # trust auth ignores it; stuckgen must not write it
    r = runner.invoke(app, ["init", "-d", make_conninfo(**params), "--table", "Shot"])
    assert r.exit_code == 0, r.output
    text = Path("stuckgen.toml").read_text()
    assert params["password"] not in text and params["password"] not in r.output


def test_init_proposes_the_threshold_from_the_heartbeat(db):
    # The incident app beats a heartbeat: the threshold counts from it, and stays the default.
    cfg, text = _init(db)
    assert cfg["threshold"] == "2m00s" and "# threshold: quiet time counts from the heartbeat" in text


def test_init_without_a_heartbeat_proposes_a_threshold_from_how_long_completed_rows_took(empty_db):
    # No heartbeat: completed rows took 1..10 minutes from created to updated, so a healthy run may be
    # quiet up to p99 (9.9 min): the threshold is that rounded up to the minute.
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE jobs (id text PRIMARY KEY, status text NOT NULL, created_at timestamptz NOT NULL, "
                     "updated_at timestamptz NOT NULL)")
        conn.execute("INSERT INTO jobs SELECT 'done' || i, 'completed', now() - interval '1 day', "
                     "now() - interval '1 day' + make_interval(mins => i) FROM generate_series(1, 10) i")
        conn.execute("INSERT INTO jobs VALUES ('slow', 'processing', now() - interval '8 minutes', now() - interval '8 minutes'), "
                     "('stuck', 'processing', now() - interval '30 minutes', now() - interval '30 minutes')")
    cfg, text = _init(empty_db, "--table", "jobs")
    assert cfg["threshold"] == "10m00s", text
    assert "10 completed rows took 5m30s (median) and 9m55s (p99) from created to updated" in text
    r = runner.invoke(app, ["scan", "-d", empty_db, "-f", "json"])
    assert r.exit_code == 1, r.output
    assert [row["id"] for row in json.loads(r.stdout)["rows"]] == ["stuck"]  # the 8-minute run is within what healthy runs take
