-- Source: github.com/tensalir/Loop-Vesper prisma/migrations/20250105_add_product_render_angle/migration.sql at commit c3caa5c43446fe43f5220dd5b4448fd3fbb02316
-- Copied unchanged below this header as test data (the app's real schema for the Loop-Vesper fixture).
-- Add angle and sort_order fields to product_renders table
ALTER TABLE "product_renders" 
ADD COLUMN IF NOT EXISTS "angle" TEXT,
ADD COLUMN IF NOT EXISTS "sort_order" INTEGER NOT NULL DEFAULT 0;

-- Add composite index for product + colorway
CREATE INDEX IF NOT EXISTS "product_renders_name_colorway_idx" ON "product_renders"("name", "colorway");

