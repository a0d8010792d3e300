-- 011_comment_post: a post's request, remembered with the comment it made.
--
-- libtier resends a call whose connection dropped with the same
-- (client_id, request_id) (rpc.proto).  One tierd answers such a resend
-- from its reply cache; but when the writer died after committing a post
-- and before answering, the resend reaches the new writer, which has no
-- cache of the old one's replies, and the comment would be stored twice.
-- So every post that carries a request id records (client_id, request_id,
-- seq = its index in the call) with the comment's id, in the same
-- transaction as the comment.  A resend finds its rows and is answered
-- with the stored ids, and nothing is stored or counted again
-- (store/tier_comments.c, tier_comments_apply).  The common case costs one
-- multi-row INSERT per group commit; the lookup only runs when that
-- INSERT meets a key already there.  Rows older than an hour are purged:
-- resends happen within a call's timeout.
--
-- Re-runnable.

CREATE TABLE IF NOT EXISTS comment_post (
    client_id BIGINT UNSIGNED NOT NULL,
    request_id BIGINT UNSIGNED NOT NULL,
    seq INT UNSIGNED NOT NULL,
    comment_id BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (client_id, request_id, seq),
    KEY created (created_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
