"""Row ids in remediation: text ids in another schema, char(n) ids, a row joined to several queue jobs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
import respx

from stuckgen import db as dbmod
from stuckgen import remediate
from stuckgen.audit import FileAudit, TableAudit
from stuckgen.reference.seed import seed
from stuckgen.scan import ScanOptions
from stuckgen.schema import MappingConfig, resolve

SECRET = "s3cret-value-for-review-9c2e"
OPTS = ScanOptions(since=None)
URL = "https://app.example.com/api/generate/process"


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    c = dbmod.connect(db)
    yield c
    c.close()


def _audit(conn: psycopg.Connection, kind: str, tmp_path, schema: str):
    if kind == "file":
        return FileAudit(tmp_path / "audit.jsonl")
    a = TableAudit("stuckgen_audit", default_schema=schema)
    with dbmod.transaction(conn, read_only=False):
        a.prepare(conn)
    return a


@pytest.mark.parametrize("kind", ["table", "file"])
def test_fail_and_undo_work_on_text_ids_in_another_schema_with_camelcase_columns(conn, db, tmp_path, kind):
    with psycopg.connect(db, autocommit=True) as c:
        c.execute('CREATE SCHEMA "App"; CREATE TABLE "App"."Generation" ("id" text PRIMARY KEY, '
                  '"status" text NOT NULL, "createdAt" timestamp(3) NOT NULL, "updatedAt" timestamptz, '
                  '"errorMessage" text, "parameters" jsonb NOT NULL DEFAULT \'{}\')')
        for i in ("gen-1", "gen 2", "gen'3"):
            c.execute('INSERT INTO "App"."Generation" VALUES (%s, \'processing\', '
                      "(now() AT TIME ZONE 'UTC') - interval '1 hour', now() - interval '1 hour', NULL, "
                      '\'{"lastStep": "generate:create"}\')', (i,))
    with dbmod.transaction(conn, read_only=True):
        m = resolve(conn, MappingConfig(table="Generation", db_schema="App", overrides={"error": "errorMessage"}))
    audit = _audit(conn, kind, tmp_path, m.db_schema)
    with dbmod.transaction(conn, read_only=True):
        sel = remediate.select_rows(conn, m, OPTS, ids=["gen-1", "gen'3", "nope"])
    assert sorted(t.id for t in sel.targets) == ["gen'3", "gen-1"]

    res = remediate.fail_rows(conn, m, sel.targets, options=remediate.FailOptions(scan=OPTS), audit=audit,
                              run_id="run-text", operator="tester", rejected=sel.rejected)
    assert res.counts == {"failed": 2, "not-found": 1}
    with psycopg.connect(db) as c:
        rows = dict(c.execute('SELECT "id", "status" FROM "App"."Generation"').fetchall())
    assert rows == {"gen-1": "failed", "gen 2": "processing", "gen'3": "failed"}

    u = remediate.undo(conn, m, "run-text", audit=audit, new_run_id="undo-text", operator="tester")
    assert u.counts == {"restored": 2}
    with psycopg.connect(db) as c:
        back = c.execute('SELECT "status", "errorMessage", "updatedAt" < now() - interval \'30 minutes\' '
                         'FROM "App"."Generation"').fetchall()
    assert set(back) == {("processing", None, True)}




def test_all_stuck_selects_a_row_once_when_the_queue_holds_several_jobs_for_it(conn, db):
    # A jobs table keeping one row per attempt (no UNIQUE on generation_id) must not
    # turn one stuck generation into two targets: retrigger would send it twice.
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("ALTER TABLE generation_jobs DROP CONSTRAINT generation_jobs_generation_id_key")
        rows = seed(c, {"never-started": 2})
        for r in rows:
            for _ in range(2):
                c.execute("INSERT INTO generation_jobs (id, generation_id, attempts) "
                          "VALUES (gen_random_uuid(), %s, 1)", (r.id,))
    with dbmod.transaction(conn, read_only=True):
        m = resolve(conn, MappingConfig())
    with dbmod.transaction(conn, read_only=True):
        sel = remediate.select_rows(conn, m, OPTS, all_stuck=True)
    assert sorted(t.id for t in sel.targets) == sorted(r.id for r in rows)

    audit = TableAudit("stuckgen_audit", default_schema=m.db_schema)
    with dbmod.transaction(conn, read_only=False):
        audit.prepare(conn)
    with respx.mock() as mock, httpx.Client(follow_redirects=False) as client:
        route = mock.post(URL).respond(202, json={"accepted": True})
        res = remediate.retrigger_rows(client, conn, m, sel.targets, audit=audit, run_id="rt", operator="tester",
                                       options=remediate.RetriggerOptions(url=URL, scan=OPTS, secret=SECRET))
    assert route.call_count == 2
    assert res.counts == {"accepted": 2}


def test_ids_of_a_char_n_column_are_selected_whole_not_cut_to_one_character(conn, db):
    # CAST(... AS char[]) means character(1)[]: 'abc123' became 'a' and the stuck row
    # was rejected as "showed a sign of life".
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE SCHEMA fixed; CREATE TABLE fixed.generations (id char(6) PRIMARY KEY, "
                  "status text NOT NULL, created_at timestamp(3) NOT NULL)")
        c.execute("INSERT INTO fixed.generations VALUES ('abc123', 'processing', "
                  "(now() AT TIME ZONE 'UTC') - interval '1 hour')")
    with dbmod.transaction(conn, read_only=True):
        m = resolve(conn, MappingConfig(db_schema="fixed", outputs=None, queue=None))
        sel = remediate.select_rows(conn, m, OPTS, ids=["abc123"])
    assert [t.id for t in sel.targets] == ["abc123"] and sel.rejected == ()
    audit = TableAudit("stuckgen_audit", default_schema=m.db_schema)
    with dbmod.transaction(conn, read_only=False):
        audit.prepare(conn)
    res = remediate.fail_rows(conn, m, sel.targets, options=remediate.FailOptions(scan=OPTS), audit=audit,
                              run_id="run-char", operator="tester")
    assert res.counts == {"failed": 1}
