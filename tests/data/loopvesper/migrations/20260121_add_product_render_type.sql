-- Source: github.com/tensalir/Loop-Vesper prisma/migrations/20260121_add_product_render_type/migration.sql at commit c3caa5c43446fe43f5220dd5b4448fd3fbb02316
-- Copied unchanged below this header as test data (the app's real schema for the Loop-Vesper fixture).
-- Add render_type column to product_renders table
ALTER TABLE "product_renders" ADD COLUMN "render_type" TEXT;

-- Add index for filtering by name + render_type
CREATE INDEX IF NOT EXISTS "product_renders_name_render_type_idx" ON "product_renders"("name", "render_type");
