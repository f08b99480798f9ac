"""A second real app: Photoshot (github.com/baptadn/photoshot), Next.js + Prisma + Replicate.

The tables are written from its Prisma migrations (prisma/migrations/*_shot, *_hd_status,
*_hd_prediction_id, ...): a quoted camelCase table "Shot" with text (cuid) ids, Replicate's
statuses stored verbatim in a text column, createdAt/updatedAt as timestamp(3) without time
zone (Prisma writes UTC there, and fills @default(now()) and @updatedAt itself), the
prediction id in "replicateId", and the 4K upscale tracked by the enum "HdStatus".

Rows are written as its code leaves them:
- POST /api/projects/[id]/predictions creates the prediction at Replicate first, then the
  row with status 'starting' and replicateId set (src/app/api/projects/[id]/predictions/route.ts);
- the browser polls GET .../predictions/[predictionId] every 5 s while the shot has no output
  (ShotCard.tsx, react-query refetchInterval); each poll copies the prediction's status and
  output into the row, and Prisma bumps updatedAt. No webhook, no heartbeat, no step log:
  when nobody watches, nothing moves the row;
- the 4K upscale: POST .../hd sets hdStatus 'PENDING' and hdPredictionId; the polling GET
  sets 'PROCESSED' with hdOutputUrl once the prediction has output.
The database server runs at +05:45 (Asia/Kathmandu), which must not shift any time.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

import psycopg

SERVER_TIMEZONE = "Asia/Kathmandu"  # +05:45, no daylight saving

SCHEMA = """
CREATE TABLE "Project" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "replicateModelId" TEXT,
    "modelVersionId" TEXT,
    "modelStatus" TEXT,
    "instanceName" TEXT NOT NULL,
    "instanceClass" TEXT NOT NULL,
    "imageUrls" TEXT[],
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "userId" TEXT,
    "credits" INTEGER NOT NULL DEFAULT 100,
    CONSTRAINT "Project_pkey" PRIMARY KEY ("id")
);
CREATE TABLE "Shot" (
    "id" TEXT NOT NULL,
    "prompt" TEXT NOT NULL,
    "replicateId" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "projectId" TEXT,
    "outputUrl" TEXT,
    "bookmarked" BOOLEAN DEFAULT false,
    "blurhash" TEXT,
    "seed" INTEGER,
    CONSTRAINT "Shot_pkey" PRIMARY KEY ("id")
);
ALTER TABLE "Shot" ADD CONSTRAINT "Shot_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id")
    ON DELETE SET NULL ON UPDATE CASCADE;
CREATE TYPE "HdStatus" AS ENUM ('NO', 'PENDING', 'PROCESSED');
ALTER TABLE "Shot" ADD COLUMN "hdStatus" "HdStatus" NOT NULL DEFAULT 'NO';
ALTER TABLE "Shot" ADD COLUMN "hdPredictionId" TEXT;
ALTER TABLE "Shot" ADD COLUMN "hdOutputUrl" TEXT;
CREATE TABLE "Payment" (
    "id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "stripeSessionId" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "projectId" TEXT,
    CONSTRAINT "Payment_pkey" PRIMARY KEY ("id")
);
"""


def cuid(rng: random.Random) -> str:
    return "cl" + "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(23))


def prediction_id(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(26))


@dataclass(frozen=True)
class ShotRow:
    id: str
    kind: str
    status: str
    replicate_id: str
    created_ago: float  # seconds
    updated_ago: float
    output: bool = False
    hd: str = "NO"
    hd_prediction: str | None = None

    @property
    def stuck(self) -> bool:
        return self.kind.startswith("stuck")


# (kind, status, created seconds ago, updatedAt seconds ago, output, hdStatus)
PLAN: tuple[tuple[str, str, float, float, bool, str], ...] = (
    # The browser is on the page: polled 3-5 s ago, healthy however long it has run.
    ("polling", "starting", 20, 4, False, "NO"),
    ("polling", "processing", 90, 3, False, "NO"),
    ("polling", "processing", 400, 5, False, "NO"),
    # Created, then the tab was closed: nothing ever polled it again.
    ("stuck-left-at-create", "starting", 2 * 3600, 2 * 3600, False, "NO"),
    ("stuck-left-at-create", "starting", 50 * 60, 50 * 60, False, "NO"),
    ("stuck-left-at-create", "starting", 7 * 60, 7 * 60, False, "NO"),
    # Polled a while, then the tab was closed mid-run.
    ("stuck-left-running", "processing", 3 * 3600, 3 * 3600 - 40, False, "NO"),
    ("stuck-left-running", "processing", 30 * 60, 29 * 60, False, "NO"),
    ("stuck-left-running", "processing", 10 * 60, 9 * 60, False, "NO"),
    ("stuck-left-running", "starting", 20 * 60, 19 * 60 + 30, False, "NO"),
    # Stuck since long before the 24 h window.
    ("stuck-days-ago", "processing", 9 * 86400, 9 * 86400 - 60, False, "NO"),
    # Finished: Replicate's terminal statuses, copied verbatim by the last poll.
    ("done", "succeeded", 5 * 3600, 5 * 3600 - 30, True, "NO"),
    ("done", "succeeded", 3600, 3600 - 25, True, "PROCESSED"),
    ("done", "succeeded", 2 * 86400, 2 * 86400 - 20, True, "NO"),
    ("done", "failed", 4 * 3600, 4 * 3600 - 10, False, "NO"),
    ("done", "canceled", 6 * 3600, 6 * 3600 - 15, False, "NO"),
    # Succeeded, then a 4K upscale that nobody polled to the end.
    ("hd-pending", "succeeded", 8 * 3600, 8 * 3600 - 30, True, "PENDING"),
)

STUCK_COUNT = sum(1 for p in PLAN if p[0].startswith("stuck"))


def create(dsn: str, *, seed: int = 15) -> list[ShotRow]:
    """The Photoshot schema on a +05:45 server, one project, and the rows of PLAN."""
    rng = random.Random(seed)
    rows: list[ShotRow] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET timezone TO \'{SERVER_TIMEZONE}\'')
    with psycopg.connect(dsn, autocommit=True) as conn:  # a new session takes the server's zone
        assert conn.execute("SHOW TimeZone").fetchone()[0] == SERVER_TIMEZONE
        conn.execute(SCHEMA)
        project = cuid(rng)
        # Prisma sends its own UTC times for @default(now()) and @updatedAt.
        conn.execute(
            'INSERT INTO "Project" ("id", "name", "instanceName", "instanceClass", "createdAt", "updatedAt", '
            '"modelStatus", "replicateModelId") VALUES (%s, %s, %s, %s, now() AT TIME ZONE \'UTC\' - interval \'20 days\', '
            'now() AT TIME ZONE \'UTC\' - interval \'20 days\', %s, %s)',
            (project, "me", "sks", "man", "succeeded", prediction_id(rng)))
        for kind, status, created, updated, output, hd in PLAN:
            r = ShotRow(id=cuid(rng), kind=kind, status=status, replicate_id=prediction_id(rng), created_ago=created,
                        updated_ago=updated, output=output, hd=hd,
                        hd_prediction=prediction_id(rng) if hd != "NO" else None)
            conn.execute(
                'INSERT INTO "Shot" ("id", "prompt", "replicateId", "status", "createdAt", "updatedAt", "projectId", '
                '"outputUrl", "hdStatus", "hdPredictionId", "hdOutputUrl") VALUES (%s, %s, %s, %s, '
                "now() AT TIME ZONE 'UTC' - make_interval(secs => %s), now() AT TIME ZONE 'UTC' - make_interval(secs => %s), "
                '%s, %s, %s, %s, %s)',
                (r.id, "portrait, cinematic", r.replicate_id, r.status, created, updated, project,
                 f"https://replicate.delivery/pbxt/{r.replicate_id}/out-0.png" if output else None, hd,
                 r.hd_prediction, f"https://replicate.delivery/pbxt/{r.hd_prediction}/4k.png" if hd == "PROCESSED" else None))
            rows.append(r)
        conn.execute('INSERT INTO "Payment" VALUES (%s, %s, %s, %s, now() AT TIME ZONE \'UTC\', %s)',
                     (cuid(rng), "studio", "paid", "cs_test_1", project))
    return rows


def backdate(conn: psycopg.Connection, seconds: float) -> None:
    """Shift every recorded time of the Photoshot tables into the past (instead of sleeping)."""
    for table in ("Shot", "Project", "Payment"):
        cols = ['"createdAt"'] + (['"updatedAt"'] if table != "Payment" else [])
        sets = ", ".join(f"{c} = {c} - make_interval(secs => %s)" for c in cols)
        conn.execute(f'UPDATE "{table}" SET {sets}', [seconds] * len(cols))
