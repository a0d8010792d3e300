/*
 * tier_comments.h -- MySQL storage of comments (seed 003's hsb_cache) and
 * of their per-minute count changes (seed 003's hsb_rank).
 *
 * Writes come in batches from one writer, the ranking batcher's flusher
 * (store/tier_batch.h): tier_comments_apply() runs a whole batch of posts,
 * edits, deletes and restores as one transaction and hands back the batch's
 * count changes aggregated per (minute, service, cid), which it has also
 * added to comment_minute in that same transaction.  So the comments and
 * their counts never disagree, and one writer means no lock fights on the
 * hot rows of a popular content's current minute.
 *
 * Reads (latest comments, the rebuild scan) use any pooled connection.
 * Every statement is prepared; data never becomes SQL text.
 */
#ifndef TIER_COMMENTS_H
#define TIER_COMMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier_db.h"

#define TIER_COMMENT_SERVICE_MAX 64
#define TIER_COMMENT_AUTHOR_MAX 255
#define TIER_COMMENT_BODY_MAX 65536

/* A comment as read back.  Strings are NUL-terminated. */
typedef struct {
    int64_t id;
    char *service;
    int64_t cid;
    char *author;
    char *body;
    size_t body_len;
    int64_t created_ms;
    int64_t modified_ms;
    bool deleted;
} tier_comment;

typedef enum {
    TIER_COP_POST = 0,
    TIER_COP_EDIT,
    TIER_COP_DELETE,
    TIER_COP_RESTORE,
} tier_comment_op_kind;

/* What a refused change's time had to follow. */
typedef enum {
    TIER_FLOOR_NONE = 0,
    TIER_FLOOR_CREATED, /* the comment's creation */
    TIER_FLOOR_DELETE,  /* its last delete (a restore) */
    TIER_FLOOR_RESTORE, /* its last restore (a delete) */
    /* Not a time: the comment's content (op->cid, set then) is in another
     * shard's slots (docs/CLUSTER.md), so its writer must change it. */
    TIER_FLOOR_SHARD,
} tier_comment_floor;

/*
 * One write.  Inputs are borrowed (they must live until tier_comments_apply
 * returns); the caller has validated them (lengths, cid > 0).
 *   POST:    service, cid, author, body, time_ms (the creation time)
 *   EDIT:    id, body, time_ms (becomes modified_ms)
 *   DELETE:  id, time_ms (the minute charged -1)
 *   RESTORE: id, time_ms (the minute charged +1)
 *   live:    time_ms is the server's clock, not a backfill (EDIT, DELETE,
 *            RESTORE): never refused for its time, moved up to the floor
 *            below instead when that is later
 * A change's time must not precede its floor: the creation for an edit;
 * for a delete or restore the comment's last delete or restore (the
 * comments.last_transition_ms column), or its creation when it has none.
 * So every comment's history stays a sequence ordered in time, and no
 * window can count it twice (sql/005_comment_transitions.sql).
 * Outputs: code (OK, NOT_FOUND, FAILED_PRECONDITION: delete or edit of a
 * deleted comment, restore of a live one, or a time_ms before its floor:
 * then floor says which and floor_ms when), id (POST), and for
 * EDIT/DELETE/RESTORE the comment after the change in `after` (its strings
 * malloc'ed: free with tier_comment_clear).
 */
typedef struct {
    tier_comment_op_kind kind;
    int64_t id;
    const char *service;
    size_t service_len;
    int64_t cid;
    const char *author;
    size_t author_len;
    const char *body;
    size_t body_len;
    int64_t time_ms;
    /* POST: the call that sent it, (client_id, request_id) of rpc.proto,
     * and its index in the call; client_id 0 = none.  A post whose key is
     * already stored (a resend after a takeover, sql/011) is not stored
     * again: `replayed` is set and id/time_ms are the stored ones. */
    uint64_t client_id, request_id;
    uint32_t seq;
    bool replayed;

    bool live;
    /* EDIT, DELETE, RESTORE: `after` without its body (an empty one): the
     * batch calls, whose replies must fit 4 MiB for 10,000 items. */
    bool no_body;

    int code;
    tier_comment_floor floor; /* why time_ms was refused; NONE otherwise */
    int64_t floor_ms;         /* the earliest time_ms it could have had */
    tier_comment after;
} tier_comment_op;

/* A count change of one content in one minute (minute = ms / 60000). */
typedef struct {
    const char *service; /* borrowed from the ops (or their `after`) */
    int64_t cid;
    int64_t minute;
    int32_t delta, created, deleted, restored;
} tier_comment_minute;

void tier_comment_clear(tier_comment *c);

/* The largest comment id stored, 0 when there is none. */
int tier_comments_max_id(tier_db *db, int64_t *out);

/*
 * Applies ops[0..n) in one transaction: posts first (ids from *next_id on,
 * in order), then edits/deletes/restores: all their comments read FOR
 * UPDATE at once (one statement per 1000 ids), the ops judged and applied
 * in memory in submission order (exactly as if one by one: delete then
 * restore of one comment in one batch both succeed), the final rows
 * written back with multi-row statements; then the aggregated count
 * changes are upserted into comment_minute; then COMMIT.  So a flush costs
 * a constant number of statements however many changes it carries.
 *
 * On TIER_OK every op has its code, *next_id has advanced, and *mins (malloc'ed,
 * caller frees; valid while the ops live) holds *nmins aggregated changes,
 * each (minute, service, cid) once.  On error the transaction is rolled
 * back, *next_id is unchanged and nothing is durable.
 *
 * db must have autocommit off (tier_db_autocommit(db, false)): its first
 * statement then opens the transaction, which saves a BEGIN round trip on
 * every group commit.
 */
int tier_comments_apply(tier_db *db, tier_comment_op **ops, size_t n, int64_t *next_id,
                        tier_comment_minute **mins, size_t *nmins);

/* Called per row; return non-zero to stop early. */
typedef int (*tier_comment_fn)(void *arg, const tier_comment *c);

/* Live comments of cid (of service, when service_len > 0), newest first
 * by (created_ms, id) (a backfilled comment lists at its time), those
 * before the keyset cursor (before_ms, before_id) only, at most limit. */
int tier_comments_latest(tier_db *db, int64_t cid, const char *service, size_t service_len,
                         int64_t before_ms, int64_t before_id, uint32_t limit, tier_comment_fn fn,
                         void *arg);

/* The created_ms of comment id (deleted or not); NOT_FOUND when absent. */
int tier_comments_created_of(tier_db *db, int64_t id, int64_t *created_ms);

/* Up to limit ids of author's live comments (of service, when service_len >
 * 0) whose content is in the connection's shard's slots, ascending; with
 * at_ms > 0 only those a delete at at_ms may change (created and last
 * restored at or before it), so a backfilled DeleteByAuthor never picks a
 * comment it must refuse. */
int tier_comments_by_author(tier_db *db, const char *author, size_t author_len, const char *service,
                            size_t service_len, int64_t at_ms, uint32_t limit, int64_t *ids,
                            size_t *n);

/* Streams comment_minute rows with minute >= from_minute in minute order
 * (rows are not buffered: memory stays flat however many there are). */
typedef int (*tier_minute_fn)(void *arg, const tier_comment_minute *m);
int tier_comments_scan_minutes(tier_db *db, int64_t from_minute, tier_minute_fn fn, void *arg);

/* Deletes up to `limit` comment_minute rows with minute < before_minute;
 * *deleted gets how many. */
/* Forgets post keys (sql/011) older than before_ms, at most limit rows. */
int tier_comments_purge_posts(tier_db *db, int64_t before_ms, unsigned limit,
                              unsigned long long *deleted);
int tier_comments_purge_minutes(tier_db *db, int64_t before_minute, unsigned limit,
                                unsigned long long *deleted);

#endif
