-- 005_comment_transitions: when a comment was last deleted or restored.
--
-- DeleteComment and RestoreComment may carry a backfilled time (imports
-- replaying history).  Checked against created_ms alone, a restore could be
-- charged before the delete it undoes (post at -50 min, delete at -20,
-- restore at -40: a window counting +2 for one comment).  tierd now refuses
-- a delete or restore charged before the comment's last transition, so it
-- keeps that time here: 0 = never deleted nor restored (created_ms is then
-- the floor).
--
-- Rows from before this migration: a deleted one's delete time is unknown,
-- so it is taken as now (a restore of it cannot be backfilled before this
-- moment); a live one may have been deleted and restored before, which is
-- not recorded anywhere, so only its created_ms is known.
--
-- Re-runnable: the column is added once, and the UPDATE only touches
-- deleted rows still at 0 (a rerun after tierd wrote times changes none of
-- those: a deleted comment always has its delete time).

ALTER TABLE comments ADD COLUMN IF NOT EXISTS last_transition_ms BIGINT NOT NULL DEFAULT 0;

UPDATE comments SET last_transition_ms = GREATEST(created_ms, FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000))
    WHERE deleted = 1 AND last_transition_ms = 0;
