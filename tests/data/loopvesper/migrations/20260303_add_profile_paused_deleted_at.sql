-- Source: github.com/tensalir/Loop-Vesper prisma/migrations/20260303_add_profile_paused_deleted_at/migration.sql at commit c3caa5c43446fe43f5220dd5b4448fd3fbb02316
-- Copied unchanged below this header as test data (the app's real schema for the Loop-Vesper fixture).
-- AlterTable
ALTER TABLE "profiles" ADD COLUMN "paused_at" TIMESTAMP(3);
ALTER TABLE "profiles" ADD COLUMN "deleted_at" TIMESTAMP(3);
