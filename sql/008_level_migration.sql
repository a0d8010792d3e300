-- 008_level_migration: a level whose directory changed while it held
-- contents (issue 10, item 7).
--
-- SetLevels may give a level that holds contents a new directory.  It
-- writes the new level table and one row here per such level in ONE
-- transaction (fenced like every tiering write), so MySQL always knows a
-- migration is running: level.path is the new directory, old_path the one
-- the files are still being moved out of.  tierd moves every file with
-- ordinary move jobs (same level, old directory -> new), within the
-- policy's budgets; when no content of the level is left in old_path and
-- no job for one remains, it removes old_path (if empty) and deletes the
-- row.  A move within the level commits the same content_level, so the
-- triggers of 002 write no update_history row for it.
--
-- Paths are canonical, absolute, and end in '/' as level.path does.
--
-- Re-runnable: the table is created once.

CREATE TABLE IF NOT EXISTS level_migration (
    content_level VARCHAR(32) NOT NULL PRIMARY KEY,
    old_path VARCHAR(4096) NOT NULL,
    new_path VARCHAR(4096) NOT NULL,
    started_ms BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
