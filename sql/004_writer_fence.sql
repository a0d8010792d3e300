-- 004_writer_fence: the MySQL half of the one-writer rule (store/tier_writer.h).
--
-- One row: the fencing token of the newest tierd that became the writer.  A
-- tierd raises it right after taking the writer lease in Redis, before it
-- loads any state; every tiering and ranking write transaction reads it
-- (LOCK IN SHARE MODE) and rolls back when it no longer holds that tierd's
-- own token.  So a tierd that lost the lease (paused, partitioned) cannot
-- commit anything once a newer writer has raised the fence, and the newer
-- writer's raise waits for any commit still holding the row.  The token
-- only ever grows.

CREATE TABLE IF NOT EXISTS writer_fence (
    id TINYINT NOT NULL PRIMARY KEY,
    token BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT IGNORE INTO writer_fence (id, token) VALUES (1, 0);
