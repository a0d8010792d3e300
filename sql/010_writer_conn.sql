-- 010_writer_conn: the MySQL connections of each shard's writer.
--
-- A writer whose host loses power leaves its connections open on the
-- server: no FIN or RST ever comes, and the server waits wait_timeout (8 h
-- by default) before it drops them.  An open write transaction of such a
-- connection holds the shared lock it took on its writer_fence row, so the
-- new writer's fence raise (SELECT ... FOR UPDATE) waits for it forever
-- and the shard is never taken over.
--
-- So every connection a writer opens records itself here (tier_db_open:
-- its CONNECTION_ID() and the client address the server sees), and a new
-- writer, once it holds the Redis lease and before it raises the fence,
-- KILLs the connections of older tokens of its shard that are still in
-- the process list with the same address (store/tier_writer.c,
-- tier_writer_conns_kill).  A user may kill its own connections without
-- any privilege.  The address check keeps a connection id that MariaDB
-- reused after a restart from being killed by mistake.  Rows of older
-- tokens are deleted by the new writer.
--
-- Re-runnable.

CREATE TABLE IF NOT EXISTS writer_conn (
    fence_id SMALLINT NOT NULL,
    token BIGINT NOT NULL,
    conn_id BIGINT UNSIGNED NOT NULL,
    host VARCHAR(255) NOT NULL,
    PRIMARY KEY (fence_id, conn_id, token)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
