"""scan against a real PostgreSQL: classes, thresholds, clocks, mappings, errors, streaming."""

from __future__ import annotations

import time


import psycopg
import pytest

from stuckgen import db as dbmod
from stuckgen.errors import ConfigError, DatabaseQueryError, DatabaseUnreachableError, SchemaError
from stuckgen.reference.seed import KINDS, db_now, insert_rows, make_row, seed
from stuckgen.scan import DEFAULT_RULES, ScanOptions, ScanRun, build_class_query, rules_from_config
from stuckgen.schema import MappingConfig, resolve

STUCK_KINDS = [k for k in KINDS if k not in ("completed", "running")]


def run_scan(dsn: str, cfg: MappingConfig | None = None, rules=DEFAULT_RULES, **opts):
    conn = dbmod.connect(dsn)
    with conn, dbmod.transaction(conn, read_only=True):
        mapping = resolve(conn, cfg or MappingConfig())
        run = ScanRun(conn, mapping, ScanOptions(**opts), rules)
        run.count_window()
        rows = list(run)
    return rows, run.summary, mapping


@pytest.fixture
def seeded(db):
    with psycopg.connect(db, autocommit=True) as conn:
        rows = seed(conn, {k: 3 for k in KINDS})
    return db, rows


def test_every_kind_gets_its_class_and_healthy_rows_are_not_listed(seeded):
    dsn, seeded_rows = seeded
    rows, summary, _ = run_scan(dsn)
    got = {r.id: r.cls for r in rows}
    for s in seeded_rows:
        if s.kind in ("completed", "running"):
            assert s.id not in got, f"{s.kind} row listed as stuck"
        else:
            assert got[s.id] == s.kind, f"{s.kind} row classified as {got.get(s.id)}"
    assert summary.stuck == 3 * len(STUCK_KINDS)
    assert dict(summary.by_class) == {k: 3 for k in STUCK_KINDS}


def test_trigger_failed_names_the_http_status(seeded):
    dsn, _ = seeded
    rows, summary, _ = run_scan(dsn, classes=("trigger-failed",))
    assert rows and all(r.trigger_status == 401 and r.trigger_failures == 3 for r in rows)
    assert "HTTP 401" in rows[0].why
    assert summary.trigger_statuses == {401: 3}


def test_summary_rate_onset_oldest_and_histogram(seeded):
    dsn, seeded_rows = seeded
    rows, s, _ = run_scan(dsn)
    assert s.created_in_window == len(seeded_rows)
    assert s.stuck_rate == pytest.approx(len(rows) / len(seeded_rows))
    assert s.oldest is not None and s.oldest.quiet_seconds == max(r.quiet_seconds for r in rows)
    assert s.onset == min(r.created_at for r in rows)
    assert sum(s.per_hour.values()) == len(rows)
    # rows come oldest sign of life first
    lives = [r.last_sign_of_life for r in rows]
    assert lives == sorted(lives)


def test_threshold_decides_what_is_stuck(db):
    with psycopg.connect(db, autocommit=True) as conn:
        now = db_now(conn)
        import random
        rng = random.Random(1)
        young = make_row("never-started", now=now, age=60, rng=rng)
        old = make_row("never-started", now=now, age=600, rng=rng)
        insert_rows(conn, [young, old])
    ids = {r.id for r in run_scan(db, threshold=120)[0]}
    assert ids == {old.id}
    ids = {r.id for r in run_scan(db, threshold=30)[0]}
    assert ids == {old.id, young.id}
    assert run_scan(db, threshold=3600)[0] == []


def test_since_window_limits_rows_and_counts_the_older_ones(db):
    with psycopg.connect(db, autocommit=True) as conn:
        now = db_now(conn)
        import random
        rng = random.Random(2)
        recent = make_row("never-started", now=now, age=3600, rng=rng)
        ancient = make_row("never-started", now=now, age=3 * 86400, rng=rng)
        insert_rows(conn, [recent, ancient])
    rows, s, _ = run_scan(db, since=86400)
    assert [r.id for r in rows] == [recent.id] and s.stuck_before_window == 1
    rows, s, _ = run_scan(db, since=None)
    assert {r.id for r in rows} == {recent.id, ancient.id}


def test_local_clock_and_time_zone_do_not_matter(seeded, monkeypatch):
    dsn, _ = seeded
    baseline = {r.id: r.cls for r in run_scan(dsn)[0]}
    monkeypatch.setattr(time, "time", lambda: 0.0)  # a laptop clock in 1970
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    monkeypatch.setenv("PGTZ", "America/Adak")
    time.tzset()
    try:
        assert {r.id: r.cls for r in run_scan(dsn)[0]} == baseline
    finally:
        monkeypatch.undo()
        time.tzset()


def test_server_time_zone_setting_does_not_shift_ages(seeded, pg_server):
    dsn, _ = seeded
    baseline = {r.id: round(r.quiet_seconds) for r in run_scan(dsn)[0]}
    with psycopg.connect(dsn, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET timezone TO \'Asia/Kathmandu\'')
    shifted = {r.id: round(r.quiet_seconds) for r in run_scan(dsn)[0]}
    assert shifted.keys() == baseline.keys()
    assert all(abs(shifted[k] - baseline[k]) <= 5 for k in baseline)


def test_malformed_heartbeat_is_reported_for_that_row_and_does_not_abort(db):
    with psycopg.connect(db, autocommit=True) as conn:
        now = db_now(conn)
        import random
        rng = random.Random(3)
        bad = make_row("stalled", now=now, age=900, rng=rng)
        bad.parameters["lastHeartbeatAt"] = "yesterday-ish"
        worse = make_row("stalled", now=now, age=900, rng=rng)
        worse.parameters["lastHeartbeatAt"] = "2025-02-30T10:00:00Z"
        numeric = make_row("stalled", now=now, age=900, rng=rng)
        numeric.parameters["lastHeartbeatAt"] = 1700000000000
        weird_log = make_row("never-started", now=now, age=900, rng=rng)
        weird_log.parameters["debugLogs"] = "not an array"
        ok = make_row("never-started", now=now, age=900, rng=rng)
        insert_rows(conn, [bad, worse, numeric, weird_log, ok])
    rows = {r.id: r for r in run_scan(db)[0]}
    assert set(rows) == {bad.id, worse.id, numeric.id, weird_log.id, ok.id}
    assert any("not a timestamp" in n for n in rows[bad.id].notes)
    assert any("not a timestamp" in n for n in rows[worse.id].notes)
    assert rows[numeric.id].heartbeat_at is not None and rows[numeric.id].heartbeat_at.year == 2023
    assert rows[bad.id].cls == "stalled"
    assert rows[ok.id].cls == "never-started"


CAMEL_SCHEMA = """
CREATE TABLE "Generation" (
  "id" text PRIMARY KEY, "status" text NOT NULL, "createdAt" timestamptz NOT NULL,
  "updatedAt" timestamptz NOT NULL, "lastHeartbeat" timestamptz NULL, "lastStep" text NULL,
  "errorMessage" text NULL, "userId" text NOT NULL
);
"""


def test_camel_case_columns_are_detected_and_used(empty_db):
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(CAMEL_SCHEMA)
        conn.execute("""INSERT INTO "Generation" VALUES
          ('a', 'processing', now() - interval '1 hour', now() - interval '1 hour', now() - interval '30 minutes', 'model:generate:heartbeat', NULL, 'u1'),
          ('b', 'processing', now() - interval '1 hour', now() - interval '1 hour', NULL, 'generate:create', NULL, 'u1'),
          ('c', 'processing', now() - interval '1 hour', now() - interval '10 seconds', NULL, 'generate:create', NULL, 'u1'),
          ('d', 'completed', now() - interval '1 hour', now() - interval '1 hour', NULL, 'process:completed', NULL, 'u1')""")
    rows, _, mapping = run_scan(empty_db, MappingConfig(table="Generation"))
    assert mapping["heartbeat"].column == "lastHeartbeat" and mapping["updated"].column == "updatedAt"
    assert mapping["created"].column == "createdAt" and mapping["last_step"].column == "lastStep"
    assert not mapping.has("step_log") and not mapping.outputs.present
    got = {r.id: r.cls for r in rows}
    assert got == {"a": "stalled", "b": "never-started"}, "c was touched 10s ago (updatedAt), so it is alive"


def test_overrides_win_over_introspection_and_none_disables_a_field(seeded):
    dsn, _ = seeded
    cfg = MappingConfig(overrides={"heartbeat": "none", "step_log": "none"}, override_source={"heartbeat": "flag --map"})
    rows, _, mapping = run_scan(dsn, cfg)
    assert not mapping.has("heartbeat") and mapping["heartbeat"].source.startswith("flag --map")
    classes = {r.cls for r in rows}
    assert "trigger-failed" not in classes, "without a step log a failed trigger cannot be seen"
    assert "outputs-not-finalized" in classes


def test_override_to_missing_column_lists_what_exists(db):
    with pytest.raises(SchemaError) as exc:
        run_scan(db, MappingConfig(overrides={"heartbeat": "last_beat"}))
    assert "last_beat" in exc.value.message and "parameters" in exc.value.message


def test_missing_table_lists_the_tables_that_exist(db):
    with pytest.raises(SchemaError) as exc:
        run_scan(db, MappingConfig(table="jobs"))
    assert "'jobs' not found" in exc.value.message and "generations" in exc.value.message


def test_custom_rules_from_config_change_the_classes(seeded):
    dsn, _ = seeded
    rules = rules_from_config([{"class": "dead-on-arrival", "last_step_in": ["generate:create"]}])
    rows, summary, _ = run_scan(dsn, rules=rules)
    assert summary.by_class["dead-on-arrival"] == 6  # never-started + queued rows (still at generate:create)
    assert set(summary.by_class) == {"dead-on-arrival", "unknown"}
    with pytest.raises(ConfigError, match="unknown key"):
        rules_from_config([{"class": "x", "step": ["a"]}])


def test_unknown_class_filter_is_a_config_error(seeded):
    with pytest.raises(ConfigError, match="unknown class"):
        run_scan(seeded[0], classes=("stuck-ish",))


def test_unreachable_database_is_exit_3_without_password():
    with pytest.raises(DatabaseUnreachableError) as exc:
        dbmod.connect("postgresql://u:hunter2-secret@127.0.0.1:1/x", connect_timeout=2)
    assert "hunter2-secret" not in exc.value.message and exc.value.exit_code == 3


def test_malformed_dsn_is_a_config_error():
    with pytest.raises(ConfigError, match="malformed"):
        dbmod.connect("host=localhost port=5432 = oops")


def test_reads_run_read_only(seeded):
    conn = dbmod.connect(seeded[0])
    with conn:
        with pytest.raises(DatabaseQueryError, match="read-only"):
            with dbmod.transaction(conn, read_only=True):
                conn.execute("UPDATE generations SET status = 'failed'")


CUSTOM_RULES = rules_from_config([
    {"class": "dead-on-arrival", "last_step_in": ["generate:create"], "heartbeat": False},
    {"class": "no-worker", "steps_any": ["process:triggered"], "steps_none": ["process:start"]},
    {"class": "hooked", "webhook": True, "outputs": False},
    {"class": "claimable", "job": ["unclaimed"]},
    {"class": "catch-all"},
])


@pytest.mark.parametrize("rules", [DEFAULT_RULES, CUSTOM_RULES, ()], ids=["default", "custom", "none"])
@pytest.mark.parametrize("cfg", [
    MappingConfig(),
    MappingConfig(overrides={"heartbeat": "none", "step_log": "none", "webhook": "none"}, outputs=None, queue=None),
], ids=["full-mapping", "sparse-mapping"])
def test_sql_classification_agrees_with_python_rules(seeded, rules, cfg):
    dsn, _ = seeded
    rows, _, _ = run_scan(dsn, cfg, rules, since=None)
    conn = dbmod.connect(dsn)
    with conn, dbmod.transaction(conn, read_only=True):
        mapping = resolve(conn, cfg)
        got = conn.execute(build_class_query(mapping, ScanOptions(since=None), rules)).fetchall()
    assert [(r[1], r[2]) for r in got] == [(r.id, r.cls) for r in rows]


def test_class_query_filters_by_class_like_the_scan(seeded):
    dsn, _ = seeded
    rows, _, mapping = run_scan(dsn, classes=("stalled", "trigger-failed"))
    conn = dbmod.connect(dsn)
    with conn, dbmod.transaction(conn, read_only=True):
        got = conn.execute(build_class_query(mapping, ScanOptions(classes=("stalled", "trigger-failed")),
                                             DEFAULT_RULES)).fetchall()
    assert sorted((r[1], r[2]) for r in got) == sorted((r.id, r.cls) for r in rows)
    assert {r[2] for r in got} == {"stalled", "trigger-failed"}


def test_a_row_with_several_queue_jobs_is_listed_once(db):
    with psycopg.connect(db, autocommit=True) as conn:
        # A queue that keeps one job per attempt (no unique constraint on generation_id).
        conn.execute("ALTER TABLE generation_jobs DROP CONSTRAINT generation_jobs_generation_id_key")
        rows = seed(conn, {"queued-not-drained": 1})
        gid = rows[0].id
        conn.execute("""INSERT INTO generation_jobs (id, generation_id, attempts, locked_at)
                        VALUES (gen_random_uuid(), %s, 1, (now() AT TIME ZONE 'UTC') - interval '10 minutes')""", (gid,))
    found, summary, _ = run_scan(db)
    assert [r.id for r in found] == [gid] and summary.stuck == 1
    assert found[0].job_state == "lock-expired", "the most recently claimed job speaks for the row"
