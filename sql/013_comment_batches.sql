-- 013_comment_batches: LatestComments by creation time; an author index for
-- DeleteByAuthor (issue 12).
--
-- LatestComments lists newest first by created_ms, id breaking ties (a
-- comment backfilled with an old time lists at that time, not at the top
-- where its high id put it).  latest_created and latest_created_svc serve
-- that order with a keyset cursor (created_ms, id), as latest and
-- latest_svc served the id order.  Those two go: every index holding
-- `deleted` is one more index entry rewritten by every delete and restore
-- (and every index one more per post), and the id order has no other user.
-- author_idx lets DeleteByAuthor find an author's comments without a
-- table scan; it leaves `deleted` out for the same reason (the author's
-- deleted comments are skipped by reading their rows).
--
-- Re-runnable (IF [NOT] EXISTS; the new indexes are added before the old
-- ones go, so LatestComments always has one).

ALTER TABLE comments
    ADD INDEX IF NOT EXISTS latest_created (cid, deleted, created_ms, id),
    ADD INDEX IF NOT EXISTS latest_created_svc (service, cid, deleted, created_ms, id),
    ADD INDEX IF NOT EXISTS author_idx (author);

ALTER TABLE comments
    DROP INDEX IF EXISTS latest,
    DROP INDEX IF EXISTS latest_svc;
