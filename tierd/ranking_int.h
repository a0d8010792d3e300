/*
 * ranking_int.h -- what the files of the ranking module share.
 *
 *   ranking.c        lifetime: rebuild of the index at start, the clock
 *                    tick, method registration, the Health probe
 *   ranking_write.c  PostComment(s), Edit/Delete/RestoreComment and the
 *                    batcher's flush (MySQL transaction, then the index)
 *   ranking_batch.c  Delete/Restore/EditComments and DeleteByAuthor
 *   ranking_read.c   TopContents (the index) and LatestComments (MySQL)
 *   ranking_cursor.c TopContents' paging cursor
 *   ranking_watch.c  WatchTop: held calls answered when a top list changes
 *
 * Invariant: the index holds exactly the count changes committed to
 * comment_minute within the retention, because the only writer of both is
 * the flusher, which feeds the index the very aggregates it just committed
 * (and start-up rebuilds the index from comment_minute).  Before the
 * index's detail horizon it holds them at granule resolution, and window
 * edges inside a granule read the rest from comment_minute
 * (docs/RANKING_MEMORY.md).
 */
#ifndef RANKING_INT_H
#define RANKING_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier_batch.h"
#include "tier_comments.h"
#include "tier.pb-c.h"
#include "tier_rank.h"
#include "tierd.h"

/* Backfilled comments may be at most this far in the future. */
#define RANKING_MAX_SKEW_MS 5000
/* Largest PostComments batch accepted. */
#define RANKING_MAX_POSTS 10000
/* Largest Delete/Restore/EditComments batch, and DeleteByAuthor's limit. */
#define RANKING_MAX_CHANGES 10000
/* Most items one flush commits at once. */
#define RANKING_MAX_BATCH 4096
/* Flushes in progress at once: while one waits for its COMMIT's fsync the
 * next one is already inserting (InnoDB then merges their fsyncs). */
#define RANKING_FLUSHERS 2

typedef struct ranking_watch ranking_watch;

struct ranking {
    const tierd_deps *deps;
    tier_rank *rank;
    int64_t retention; /* minutes */

    /* Write path: RANKING_FLUSHERS flushers, flusher i alone touches
     * wdb[i]; next_id is shared (id_mu): each flush reserves its ids. */
    tier_batcher *batcher;
    tier_db *wdb[RANKING_FLUSHERS];
    pthread_mutex_t id_mu;
    int64_t next_id;

    /* WatchTop's held calls (ranking_watch.c). */
    ranking_watch *watch;

    /* The clock tick. */
    pthread_t ticker;
    bool ticking;
    bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static inline int64_t ranking_minute(int64_t ms)
{
    return ms / 60000;
}

/* Validation shared by the handlers. */
bool ranking_service_valid(const char *s, size_t len);
bool ranking_utf8_valid(const char *s, size_t len);
bool ranking_body_valid(const char *s, size_t len);
/* Why a change was refused ("<why>: <id>", with the times when out of
 * order), as the single calls and the batches report it. */
void ranking_refusal_text(const tier_comment_op *op, char *buf, size_t len);
/* A comment copied into call's arena; NULL when out of memory. */
Tier__Comment *ranking_comment_reply(tier_rpc_ctx *call, const tier_comment *c);

/* TopContents' paging cursor (ranking_cursor.c). */
#define RANKING_CURSOR_MAX 256
typedef struct {
    int order;      /* Tier__Order */
    int64_t minute; /* HOT: the evaluation minute */
    tier_rank_key key;
    char service[65];
} ranking_cursor;
/* false when s is not a cursor (INVALID_ARGUMENT for the caller). */
bool ranking_cursor_parse(const char *s, ranking_cursor *c);
/* The cursor after row, in the call's arena (NULL when out of memory). */
char *ranking_cursor_format(tier_rpc_ctx *call, int order, int64_t minute,
                            const tier_rank_row *row);

/* Flush function given to the batcher (ranking_write.c). */
int ranking_flush(void *arg, unsigned flusher, void **items, size_t n);
/* Loads next_id from MySQL into r (ranking_write.c). */
int ranking_load_next_id(ranking *r, tier_db *db);

/* Handlers. */
int ranking_h_post_comment(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                           ProtobufCMessage *reply);
int ranking_h_post_comments(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                            ProtobufCMessage *reply);
int ranking_h_edit_comment(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                           ProtobufCMessage *reply);
int ranking_h_delete_comment(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                             ProtobufCMessage *reply);
int ranking_h_restore_comment(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                              ProtobufCMessage *reply);
/* Batches (ranking_batch.c). */
int ranking_h_delete_comments(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                              ProtobufCMessage *reply);
int ranking_h_restore_comments(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                               ProtobufCMessage *reply);
int ranking_h_edit_comments(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                            ProtobufCMessage *reply);
int ranking_h_delete_by_author(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                               ProtobufCMessage *reply);
int ranking_h_top_contents(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                           ProtobufCMessage *reply);
int ranking_h_latest_comments(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                              ProtobufCMessage *reply);
int ranking_h_watch_top(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                        ProtobufCMessage *reply);

/* WatchTop (ranking_watch.c).  At most max calls held at once. */
int ranking_watch_open(ranking_watch **out, ranking *r, unsigned max);
/* The server that computes the lists (TopContents, in-process). */
void ranking_watch_set_server(ranking_watch *w, tier_rpc_server *srv);
/* The index changed: held watches are looked at again (soon, not here). */
void ranking_watch_poke(ranking_watch *w);
/* Answers every held call UNAVAILABLE, refuses new ones, waits for the
 * computations under way: before the rpc server closes. */
void ranking_watch_stop(ranking_watch *w);
void ranking_watch_free(ranking_watch *w);
/* "N watches held on L lists, C lists computed" (the Health message). */
void ranking_watch_describe(ranking_watch *w, char *buf, size_t len);

#endif
