-- A copy of stuckgen/reference/schema.sql: the tables of the app behind the incident, as Prisma creates them.
-- The reference schema: the incident app's tables, as Prisma creates them.
-- created_at is timestamp(3) WITHOUT time zone holding UTC; liveness lives in
-- parameters (JSONB): lastHeartbeatAt, lastStep, debugLogs, processingStartedAt,
-- error, replicatePredictionId. There is no updated_at column.
CREATE TABLE IF NOT EXISTS generations (
    id              uuid PRIMARY KEY,
    session_id      uuid NOT NULL,
    user_id         uuid NOT NULL,
    model_id        text NOT NULL,
    prompt          text NOT NULL,
    negative_prompt text NULL,
    parameters      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status          text NOT NULL,
    cost            numeric(10, 6) NULL,
    created_at      timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);
CREATE INDEX IF NOT EXISTS generations_session_id_idx ON generations (session_id);
CREATE INDEX IF NOT EXISTS generations_user_id_idx ON generations (user_id);
CREATE INDEX IF NOT EXISTS generations_session_id_status_idx ON generations (session_id, status);
CREATE INDEX IF NOT EXISTS generations_session_id_created_at_id_idx ON generations (session_id, created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS outputs (
    id            uuid PRIMARY KEY,
    generation_id uuid NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    file_url      text NOT NULL,
    file_type     text NOT NULL,
    created_at    timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);
CREATE INDEX IF NOT EXISTS outputs_generation_id_idx ON outputs (generation_id);

-- Only used when the app runs with GENERATION_QUEUE_ENABLED=true.
CREATE TABLE IF NOT EXISTS generation_jobs (
    id            uuid PRIMARY KEY,
    generation_id uuid NOT NULL UNIQUE REFERENCES generations (id) ON DELETE CASCADE,
    run_after     timestamp(3) NULL,
    attempts      integer NOT NULL DEFAULT 0,
    locked_at     timestamp(3) NULL,
    created_at    timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);
