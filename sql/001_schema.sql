-- 001_schema: the tables of tiering (seed 000) and ranking (seed 003).
--
-- Applied by scripts/migrate.sh, which records it in schema_version.  Every
-- statement is re-runnable (IF NOT EXISTS) because MariaDB commits DDL one
-- statement at a time: a file that failed half-way is simply applied again.

CREATE TABLE IF NOT EXISTS schema_version (
    version INT NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    applied_at DATETIME(6) NOT NULL DEFAULT NOW(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A storage level: contents whose count lies in [min_counts, max_counts]
-- belong in directory `path` (absolute, ends in '/').
CREATE TABLE IF NOT EXISTS level (
    content_level VARCHAR(32) NOT NULL PRIMARY KEY,
    min_counts BIGINT NOT NULL,
    max_counts BIGINT NOT NULL,
    path VARCHAR(4096) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per content file.  content_level is where the file is now (the
-- truth the workers' moves are checked against).  filename is bytes, not
-- text, and unique across all levels: a file keeps its name when it moves
-- between level directories, so two contents may never share one.
CREATE TABLE IF NOT EXISTS contents (
    cid BIGINT NOT NULL PRIMARY KEY,
    content_level VARCHAR(32) NOT NULL,
    filename VARBINARY(255) NOT NULL,
    generate_time DATETIME(3) NOT NULL DEFAULT NOW(3),
    update_time DATETIME(3) NOT NULL DEFAULT NOW(3),
    UNIQUE KEY filename (filename),
    KEY content_level (content_level)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Level changes of contents, written by the triggers of 002 only.
CREATE TABLE IF NOT EXISTS update_history (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    cid BIGINT NOT NULL,
    old_updated_date DATETIME(3) NULL,
    old_content_level VARCHAR(32) NULL,
    new_updated_date DATETIME(3) NULL,
    new_content_level VARCHAR(32) NULL,
    KEY cid_id (cid, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Comments (seed 003's hsb_cache).  ids come from tierd; deletion is a mark
-- (seed's del_yn) so a comment can be restored.  The keys serve "latest N
-- comments of a content", with or without the service.
CREATE TABLE IF NOT EXISTS comments (
    id BIGINT NOT NULL PRIMARY KEY,
    service VARCHAR(64) NOT NULL,
    cid BIGINT NOT NULL,
    author VARCHAR(255) NOT NULL,
    body MEDIUMBLOB NOT NULL,
    created_ms BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL DEFAULT 0,
    deleted TINYINT NOT NULL DEFAULT 0,
    KEY latest (cid, deleted, id),
    KEY latest_svc (service, cid, deleted, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Per-minute change of a content's comment count (seed 003's hsb_rank).
-- minute is Unix time / 60; delta = created - deleted + restored.
CREATE TABLE IF NOT EXISTS comment_minute (
    minute INT NOT NULL,
    service VARCHAR(64) NOT NULL,
    cid BIGINT NOT NULL,
    delta INT NOT NULL,
    created INT NOT NULL,
    deleted INT NOT NULL,
    restored INT NOT NULL,
    PRIMARY KEY (minute, service, cid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
