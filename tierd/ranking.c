/*
 * ranking.c -- seed 003: comments, exact top contents by comment-count
 * change over any window of minutes, latest comments.  This file holds the
 * module's lifetime; see ranking_int.h for the map.
 *
 * Start-up: the next comment id comes from max(id) in MySQL, and the rank
 * index is rebuilt by streaming comment_minute (within the retention) in
 * minute order, so a restarted tierd answers exactly as before.
 *
 * The tick: once a second the index learns the current minute
 * (tier_rank_set_now), which closes finished minutes (their sorted lists get
 * built) and, every retention/16, drops what fell out of the retention.
 * Every ten minutes comment_minute rows older than the retention are purged
 * from MySQL in small chunks.
 *
 * Compacted history (rank/rank_compact.c, docs/RANKING_MEMORY.md): the
 * index keeps minute detail for rank_detail_min minutes and 4^L-minute
 * granules before; a window edge inside an old granule makes the index
 * ask ranking_fringe() for the per-content sums of the minutes between the
 * edge and the granule boundary, read from comment_minute.  The rebuild
 * streams in minute order and the index compacts as it goes, so it never
 * holds more than the detail range at minute resolution.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranking_int.h"
#include "tier_comments_fringe.h"
#include "tier_log.h"
#include "tier_methods.h"
#include "tier_time.h"

/* ------------------------------------------------------------ rebuild */

#define REBUILD_CHUNK 16384

typedef struct {
    tier_rank *rank;
    tier_rank_event ev[REBUILD_CHUNK];
    char svc[REBUILD_CHUNK][TIER_COMMENT_SERVICE_MAX * 4 + 1];
    size_t n;
    unsigned long long rows;
    int rv;
} rebuild;

static int rebuild_flush(rebuild *b)
{
    if (b->n > 0 && b->rv == TIER_OK)
        b->rv = tier_rank_add_batch(b->rank, b->ev, b->n);
    b->n = 0;
    return b->rv;
}

static int rebuild_row(void *arg, const tier_comment_minute *m)
{
    rebuild *b = arg;

    snprintf(b->svc[b->n], sizeof(b->svc[b->n]), "%s", m->service);
    b->ev[b->n] = (tier_rank_event){b->svc[b->n], m->cid,     m->minute,  m->delta,
                                    m->created,   m->deleted, m->restored};
    b->rows++;
    if (++b->n == REBUILD_CHUNK && rebuild_flush(b) != TIER_OK)
        return 1;
    return 0;
}

/* Loads next_id and the index from MySQL. */
static int ranking_load(ranking *r)
{
    int64_t t0 = tier_mono_ms(), now_min = ranking_minute(tier_now_ms());
    tier_db *db = tier_pool_get(r->deps->db);
    rebuild *b = calloc(1, sizeof(*b));
    int rv = TIER_RESOURCE_EXHAUSTED;

    if (db == NULL || b == NULL)
        goto out;
    b->rank = r->rank;
    if ((rv = ranking_load_next_id(r, db)) != TIER_OK ||
        (rv = tier_comments_scan_minutes(db, now_min - r->retention, rebuild_row, b)) != TIER_OK ||
        (rv = rebuild_flush(b)) != TIER_OK)
        goto out;
    tier_rank_set_now(r->rank, now_min);
    tier_rank_expire(r->rank, now_min - r->retention);
    tier_info("ranking: index rebuilt from %llu minute rows in %lld ms, %zu bytes; next id %lld",
              b->rows, (long long)(tier_mono_ms() - t0), tier_rank_memory(r->rank),
              (long long)r->next_id);
out:
    if (db != NULL)
        tier_db_pool_put(r->deps->db, db);
    free(b);
    return rv;
}

/* ------------------------------------------------------------ fringe */

static int fringe_row(void *arg, const tier_comment_minute *m)
{
    tier_rank_event ev = {m->service, m->cid,     m->minute,  m->delta,
                          m->created, m->deleted, m->restored};
    return tier_rank_fringe_add(arg, &ev) != TIER_OK;
}

/* The index's fringe provider: runs on the querying thread, without the
 * index lock, with a pooled connection (its shard's slots). */
static int ranking_fringe(void *ctx, const char *service, int64_t from, int64_t to,
                          tier_rank_fringe *sink)
{
    ranking *r = ctx;
    tier_db *db = tier_pool_get(r->deps->db);
    if (db == NULL)
        return TIER_UNAVAILABLE;
    int rv = tier_comments_fringe_rows(db, service, from, to, fringe_row, sink);
    tier_db_pool_put(r->deps->db, db);
    return rv;
}

/* Compaction is on unless turned off, or meaningless for this retention
 * (detail covering it all, or a granule as long as it). */
static void ranking_compaction(ranking *r)
{
    const tierd_config *cfg = r->deps->cfg;
    int64_t detail = cfg->rank_detail_min;
    if (detail <= 0 || detail >= r->retention)
        return;
    if (tier_rank_set_compaction(r->rank, detail, (int)cfg->rank_coarse_level) != TIER_OK) {
        tier_info("ranking: granules of 4^%u minutes do not fit a retention of %lld minutes: "
                  "history kept at minute detail",
                  cfg->rank_coarse_level, (long long)r->retention);
        return;
    }
    tier_rank_set_fringe_provider(r->rank, ranking_fringe, r);
}

/* ------------------------------------------------------------ tick */

#define POST_KEYS_MS (3600 * 1000) /* how long a post's request key is kept */

static void purge_old_minutes(ranking *r, int64_t before)
{
    tier_db *db = tier_pool_get(r->deps->db);
    unsigned long long n = 0, total = 0;

    if (db == NULL)
        return;
    /* Small chunks: each DELETE is a short transaction of its own. */
    do {
        if (tier_comments_purge_minutes(db, before, 10000, &n) != TIER_OK)
            break;
        total += n;
    } while (n == 10000 && !r->stop);
    /* Post keys (sql/011) serve resends within a call's timeout: an hour. */
    do {
        if (tier_comments_purge_posts(db, tier_now_ms() - POST_KEYS_MS, 10000, &n) != TIER_OK)
            break;
    } while (n == 10000 && !r->stop);
    tier_db_pool_put(r->deps->db, db);
    if (total > 0)
        tier_info("ranking: purged %llu comment_minute rows before minute %lld", total,
                  (long long)before);
}

static void *tick_main(void *arg)
{
    ranking *r = arg;
    int64_t last_purge = tier_mono_ms();

    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        if (r->stop)
            break;
        pthread_mutex_unlock(&r->mu);
        int64_t now_min = ranking_minute(tier_now_ms());
        tier_rank_set_now(r->rank, now_min);
        /* Backfills (imports, backfilled deletes) leave sorted lists stale;
         * rebuild them here rather than in the next query. */
        for (int i = 0; i < 64 && tier_rank_refresh(r->rank, 4) == 4; i++)
            ;
        if (tier_mono_ms() - last_purge >= 600000) {
            purge_old_minutes(r, now_min - r->retention);
            last_purge = tier_mono_ms();
        }
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ------------------------------------------------------------ module */

/* Health probe "ranking": always OK; its message reports the index and
 * WatchTop's held calls. */
static int probe_rank(void *arg, char *msg, size_t len)
{
    ranking *r = arg;
    char watches[128];

    ranking_watch_describe(r->watch, watches, sizeof(watches));
    snprintf(msg, len, "rank index %zu bytes; %s", tier_rank_memory(r->rank), watches);
    return TIER_OK;
}

size_t ranking_index_bytes(ranking *r)
{
    return tier_rank_memory(r->rank);
}

/* The hot order's half-life: --hot-half-life-s, lowered so that minutes
 * past the retention weigh below 2^-64 (H <= retention * 60 / 64). */
static int ranking_set_half_life(ranking *r)
{
    int64_t h = r->deps->cfg->hot_half_life_s, cap = r->retention * 60 / 64;

    if (h == 0)
        h = TIER_RANK_HOT_HALF_LIFE_S;
    if (h > cap) {
        h = cap < TIER_RANK_HOT_HALF_LIFE_MIN_S ? TIER_RANK_HOT_HALF_LIFE_MIN_S : cap;
        tier_warn("ranking: hot_half_life_s lowered to %lld s (retention_min * 60 / 64)",
                  (long long)h);
    }
    return tier_rank_set_half_life(r->rank, h);
}

/* --watch-max, 0 = half the contexts; never all of them (held calls keep
 * their context: with every one held nothing else would be served). */
static unsigned watch_max(const tierd_config *cfg)
{
    unsigned max = cfg->watch_max ? cfg->watch_max : cfg->contexts / 2;

    if (cfg->contexts > 1 && max > cfg->contexts - 1) {
        tier_warn("ranking: --watch-max %u cut to %u: --contexts is %u", max, cfg->contexts - 1,
                  cfg->contexts);
        max = cfg->contexts - 1;
    }
    return max > 0 ? max : 1;
}

int ranking_open(ranking **out, const tierd_deps *deps)
{
    ranking *r = calloc(1, sizeof(*r));
    int rv;

    if (r == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    r->deps = deps;
    r->retention = deps->cfg->retention_min;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->id_mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if ((rv = tier_rank_alloc(&r->rank, r->retention)) != TIER_OK) {
        tier_error("ranking: bad retention %lld minutes", (long long)r->retention);
        ranking_close(r);
        return rv;
    }
    ranking_compaction(r);
    if ((rv = ranking_set_half_life(r)) != TIER_OK || (rv = ranking_load(r)) != TIER_OK) {
        ranking_close(r);
        return rv;
    }
    if ((r->batcher = tier_batcher_alloc(RANKING_MAX_BATCH, RANKING_FLUSHERS, ranking_flush, r)) ==
            NULL ||
        pthread_create(&r->ticker, NULL, tick_main, r) != 0) {
        ranking_close(r);
        return TIER_RESOURCE_EXHAUSTED;
    }
    tier_batcher_set_metrics(r->batcher, "comments", deps->metrics->batch_size,
                             deps->metrics->batch_wait, deps->metrics->batch_flush);
    r->ticking = true;
    if ((rv = ranking_watch_open(&r->watch, r, watch_max(deps->cfg))) != TIER_OK) {
        ranking_close(r);
        return rv;
    }
    *out = r;
    return TIER_OK;
}

int ranking_register(ranking *r, tier_rpc_server *srv)
{
    static const struct {
        const char *name;
        const ProtobufCMessageDescriptor *req, *rep;
        tier_rpc_fn fn;
    } m[] = {
        {TIER_M_POST_COMMENT, &tier__post_comment_request__descriptor,
         &tier__post_comment_reply__descriptor, ranking_h_post_comment},
        {TIER_M_POST_COMMENTS, &tier__post_comments_request__descriptor,
         &tier__post_comments_reply__descriptor, ranking_h_post_comments},
        {TIER_M_EDIT_COMMENT, &tier__edit_comment_request__descriptor,
         &tier__comment_reply__descriptor, ranking_h_edit_comment},
        {TIER_M_DELETE_COMMENT, &tier__delete_comment_request__descriptor,
         &tier__comment_reply__descriptor, ranking_h_delete_comment},
        {TIER_M_RESTORE_COMMENT, &tier__restore_comment_request__descriptor,
         &tier__comment_reply__descriptor, ranking_h_restore_comment},
        /* Batches wait for their flushes on a pooled thread. */
        {TIER_M_DELETE_COMMENTS, &tier__delete_comments_request__descriptor,
         &tier__comments_reply__descriptor, ranking_h_delete_comments},
        {TIER_M_RESTORE_COMMENTS, &tier__restore_comments_request__descriptor,
         &tier__comments_reply__descriptor, ranking_h_restore_comments},
        {TIER_M_EDIT_COMMENTS, &tier__edit_comments_request__descriptor,
         &tier__comments_reply__descriptor, ranking_h_edit_comments},
        {TIER_M_DELETE_BY_AUTHOR, &tier__delete_by_author_request__descriptor,
         &tier__delete_by_author_reply__descriptor, ranking_h_delete_by_author},
        /* Pooled: the index query takes a read lock, which a flush or the
         * close of a minute may hold for a while. */
        {TIER_M_TOP_CONTENTS, &tier__top_contents_request__descriptor,
         &tier__top_contents_reply__descriptor, ranking_h_top_contents},
        {TIER_M_LATEST_COMMENTS, &tier__latest_comments_request__descriptor,
         &tier__latest_comments_reply__descriptor, ranking_h_latest_comments},
        /* Inline: it only validates, then answers from the shared list or
         * holds the call (ranking_watch.c). */
        {TIER_M_WATCH_TOP, &tier__watch_top_request__descriptor, &tier__watch_top_reply__descriptor,
         ranking_h_watch_top},
    };
    int rv;

    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        /* TIER_TOP_INLINE=1 runs TopContents on nng's callback instead (for
         * measuring both in bench_ranking; see docs/BENCHMARKS.md). */
        const char *inl = getenv("TIER_TOP_INLINE");
        unsigned flags =
            m[i].fn == ranking_h_top_contents && inl && strcmp(inl, "1") == 0 ? TIER_RPC_INLINE : 0;
        /* Single writes only validate and queue (their replies are
         * deferred until the group commit): no reason to use a thread. */
        if (m[i].fn == ranking_h_post_comment || m[i].fn == ranking_h_edit_comment ||
            m[i].fn == ranking_h_delete_comment || m[i].fn == ranking_h_restore_comment ||
            m[i].fn == ranking_h_watch_top)
            flags |= TIER_RPC_INLINE;
        if ((rv = tier_rpc_server_add(srv, m[i].name, m[i].req, m[i].rep, m[i].fn, r, flags)) !=
            TIER_OK)
            return rv;
    }
    ranking_watch_set_server(r->watch, srv);
    return tier_rpc_server_add_health(srv, "ranking", probe_rank, r);
}

void ranking_stop_watches(ranking *r)
{
    if (r != NULL)
        ranking_watch_stop(r->watch);
}

void ranking_close(ranking *r)
{
    if (r == NULL)
        return;
    if (r->ticking) {
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->ticker, NULL);
    }
    tier_batcher_free(r->batcher); /* applies what was submitted, then stops */
    ranking_watch_free(r->watch);  /* after the batcher: its flushes poke it */
    for (int i = 0; i < RANKING_FLUSHERS; i++)
        tier_db_close(r->wdb[i]);
    pthread_mutex_destroy(&r->id_mu);
    tier_rank_free(r->rank);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
