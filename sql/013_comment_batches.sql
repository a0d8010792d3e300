-- 013_comment_batches: indexes for LatestComments by creation time and for
-- DeleteByAuthor (issue 12).
--
-- LatestComments lists newest first by created_ms, id breaking ties
-- (a comment backfilled with an old time lists at that time, not at the
-- top as its high id would put it).  latest_created and latest_created_svc
-- serve that order with a keyset cursor (created_ms, id) exactly as
-- latest / latest_svc serve the id order, which stays available
-- (LATEST_BY_ID in tier.proto).  author_live lets DeleteByAuthor find an
-- author's live comments without scanning the table.
--
-- Re-runnable.

ALTER TABLE comments
    ADD INDEX IF NOT EXISTS latest_created (cid, deleted, created_ms, id),
    ADD INDEX IF NOT EXISTS latest_created_svc (service, cid, deleted, created_ms, id),
    ADD INDEX IF NOT EXISTS author_live (author, deleted, id);
