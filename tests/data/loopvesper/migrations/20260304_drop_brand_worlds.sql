-- Source: github.com/tensalir/Loop-Vesper prisma/migrations/20260304_drop_brand_worlds/migration.sql at commit c3caa5c43446fe43f5220dd5b4448fd3fbb02316
-- Copied unchanged below this header as test data (the app's real schema for the Loop-Vesper fixture).
-- Drop the brand_worlds table (no meaningful data exists yet)
DROP TABLE IF EXISTS "brand_worlds";
