-- Source: github.com/tensalir/Loop-Vesper prisma/migrations/20250108_add_project_briefing/migration.sql at commit c3caa5c43446fe43f5220dd5b4448fd3fbb02316
-- Copied unchanged below this header as test data (the app's real schema for the Loop-Vesper fixture).
-- AlterTable
ALTER TABLE "projects" ADD COLUMN "briefing" TEXT;

