-- 007_policy: the tiering policy and what it decides from (issue 10).
--
-- tier_policy: every policy ever set, newest = highest version; the body is
-- the Policy message of proto/tier.proto in protobuf's JSON mapping, so an
-- operator reads it with a SELECT and tier reads it with the same decoder
-- the HTTP gateway uses.  No row: the built-in seed policy (version 0).
--
-- content_views: per content, its cumulative view count (the seed's count,
-- or the sum of its increments) and when it was last viewed.
-- content_view_bucket: its views per bucket (start_s: Unix seconds, aligned
-- to the policy's bucket_s when written).  Both are written by tierd's
-- view batcher (tierd/views.c) in the same transaction, fenced like every
-- tiering write; rows older than the longest window are pruned by tierd.

CREATE TABLE IF NOT EXISTS tier_policy (
    version BIGINT NOT NULL PRIMARY KEY,
    body TEXT NOT NULL,
    set_time_ms BIGINT NOT NULL,
    set_by VARCHAR(255) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS content_views (
    cid BIGINT NOT NULL PRIMARY KEY,
    view_count BIGINT NOT NULL,
    last_access_ms BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS content_view_bucket (
    cid BIGINT NOT NULL,
    start_s BIGINT NOT NULL,
    views BIGINT NOT NULL,
    PRIMARY KEY (cid, start_s),
    KEY start_s (start_s)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
