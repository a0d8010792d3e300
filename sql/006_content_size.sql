-- 006_content_size: every content's file size, in bytes.
--
-- A capacity policy (bytes per level) needs each content's size without
-- stat'ing the level directories on every decision, so tierd keeps it in
-- memory and here: AddContent / AddContents record the size they lstat,
-- and a move's commit records the size the worker reports for the file it
-- moved (CompleteJobRequest.sizes).
--
-- -1 = not known yet.  Rows from before this migration start at -1; tierd's
-- background size pass (tierd/tiering_sizes.c) fills them in from the stats
-- it takes anyway, so an upgraded database gets its sizes without operator
-- action.  The column changes no level, so the triggers of 002 write no
-- history row for it.
--
-- Re-runnable: the column is added once.

ALTER TABLE contents ADD COLUMN IF NOT EXISTS size_bytes BIGINT NOT NULL DEFAULT -1;
