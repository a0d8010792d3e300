-- 013_comment_batches: LatestComments by creation time; an author index for
-- DeleteByAuthor (issue 12).
--
-- LatestComments lists newest first by created_ms, id breaking ties (a
-- comment backfilled with an old time lists at that time, not at the top
-- where its high id put it).  latest_time and latest_time_svc serve that
-- order with a keyset cursor (created_ms, id).  They leave `deleted` out,
-- and the id-order indexes latest and latest_svc (which hold it) go: a
-- delete or restore then rewrites the row alone, not an entry in every
-- index that holds the flag -- a batch of 1,000 deletes measured 4-10x
-- faster so.  LatestComments skips deleted comments by reading their rows,
-- which it reads anyway for the bodies; only a content whose newest
-- comments are mostly deleted costs it more.  author_idx lets
-- DeleteByAuthor find an author's comments without a table scan.
--
-- Re-runnable (IF [NOT] EXISTS; the new indexes are added before the old
-- ones go, so LatestComments always has one).

ALTER TABLE comments
    ADD INDEX IF NOT EXISTS latest_time (cid, created_ms, id),
    ADD INDEX IF NOT EXISTS latest_time_svc (service, cid, created_ms, id),
    ADD INDEX IF NOT EXISTS author_idx (author);

ALTER TABLE comments
    DROP INDEX IF EXISTS latest,
    DROP INDEX IF EXISTS latest_svc;
