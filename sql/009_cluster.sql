-- 009_cluster: several coordinators (docs/CLUSTER.md).
--
-- writer_fence gets one row per shard, id = shard + 1, so that row 1 stays
-- the single coordinator's (and shard 0's): a database upgraded from one
-- tierd keeps its fence.  A shard's writer inserts its row when it first
-- raises it (store/tier_writer.c).  Up to 128 shards: SMALLINT.
--
-- cluster_config remembers how many shards the cid -> slot -> shard
-- mapping was cut into.  Every cid's owner follows from it, so a tierd
-- started with another --shards would serve contents another shard also
-- serves: tierd refuses to start then.  The row is written by the first
-- tierd that starts against this database.
--
-- Re-runnable.

ALTER TABLE writer_fence MODIFY id SMALLINT NOT NULL;

CREATE TABLE IF NOT EXISTS cluster_config (
    id TINYINT NOT NULL PRIMARY KEY,
    shards SMALLINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
