-- What only Supabase provides, stubbed for the Loop-Vesper fixture.
--
-- The app's Prisma migrations (migrations/ beside this file) create only tables in
-- "public"; its RLS scripts (prisma/scripts/enable_rls_policies.sql, not applied by
-- `prisma migrate deploy`) call auth.uid(). Supabase keeps its users in auth.users.
-- Roles (anon, authenticated, service_role) are cluster-wide objects, so the fixture
-- does not create them: nothing that runs here needs them, and tests share one server.
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.users (
    id uuid PRIMARY KEY,
    email text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;

-- The table `prisma migrate deploy` keeps its history in (Prisma's own DDL), so the
-- database looks like one Prisma manages: one more table stuckgen must ignore.
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
);
