-- 012_slot_columns: each content's slot, stored and indexed.
--
-- A shard's writer loads only its own slots (docs/CLUSTER.md).  With the
-- filter written as CRC32(cid) % 1024 BETWEEN lo AND hi, MariaDB cannot use
-- an index, so every shard's writer read every row of the tables it loads
-- (bench_cluster mem: about 1.5 us per row of the other shards).  A
-- persistent generated column computes the same slot (common/tier_slot.h;
-- CRC32 is deterministic, so MariaDB allows it) and its index lets a
-- writer read its own rows only.  Nothing writes the column: MariaDB keeps
-- it.  comment_minute keeps the expression: its scan is bounded by the
-- retention window and runs on its primary key (minute first).
--
-- Re-runnable.

ALTER TABLE contents
    ADD COLUMN IF NOT EXISTS slot SMALLINT UNSIGNED AS (CRC32(cid) % 1024) PERSISTENT,
    ADD INDEX IF NOT EXISTS slot_idx (slot);

ALTER TABLE content_views
    ADD COLUMN IF NOT EXISTS slot SMALLINT UNSIGNED AS (CRC32(cid) % 1024) PERSISTENT,
    ADD INDEX IF NOT EXISTS slot_idx (slot);

ALTER TABLE content_view_bucket
    ADD COLUMN IF NOT EXISTS slot SMALLINT UNSIGNED AS (CRC32(cid) % 1024) PERSISTENT,
    ADD INDEX IF NOT EXISTS slot_idx (slot, start_s);
