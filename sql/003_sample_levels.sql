-- 003_sample_levels: the seed's three levels, under the storage root.
--
-- scripts/migrate.sh sets @storage_root (TIER_STORAGE_ROOT, no trailing
-- '/') before this file runs.  Inserted only into an empty level table, so a
-- deployment's own levels are never touched.

INSERT INTO level (content_level, min_counts, max_counts, path)
SELECT v.content_level, v.min_counts, v.max_counts, CONCAT(@storage_root, '/', v.content_level, '/')
FROM (
    SELECT 'bronze' AS content_level, 0 AS min_counts, 999 AS max_counts
    UNION ALL SELECT 'silver', 1000, 1999
    UNION ALL SELECT 'gold', 2000, 9223372036854775807
) AS v
WHERE NOT EXISTS (SELECT 1 FROM level);
