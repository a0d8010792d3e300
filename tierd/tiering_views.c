/*
 * tiering_views.c -- what a policy decides from: each content's cumulative
 * view count, its last view, and (under a window policy) its views per
 * bucket; made durable through a group commit (store/tier_batch.h) into
 * content_views and content_view_bucket (sql/007_policy.sql).
 *
 * What is durable, and why:
 *   - an increment (ViewReport.views) is the only record of those views, so
 *     it is answered only once committed; a crash loses nothing acknowledged;
 *   - under a window policy, an absolute count that changed is committed
 *     too (its rise is the views of the window);
 *   - under the seed policy an absolute count is not stored: the client
 *     holds the truth and sends it again, and the seed's hot path stays
 *     memory-only.  Such a content has count -1 after a restart until it
 *     is reported again.
 * The first absolute count seen for a content whose count is unknown is
 * taken as its baseline and adds no views: its views happened at unknown
 * times, and crediting a lifetime to this minute would promote everything
 * at once after a switch to a window policy.
 *
 * A content's bucket ring is rebuilt when the policy's bucket_s or window
 * changes (tiering_views_rebucket), lazily per content if a report meets a
 * ring of the old shape first (views_bs tags each ring).
 */
#include "tiering_int.h"

#include <stdlib.h>
#include <string.h>

#include "tier_batch.h"
#include "tier_crash.h"
#include "tier_log.h"
#include "tier_time.h"

#define SEED_BUCKET_S 3600  /* rows of increments under the seed policy */
#define KEEP_S (32 * 86400) /* buckets loaded: the longest window and a day */
#define VIEWS_BATCH 4096

struct tl_views {
    tier_batcher *batcher;
    _Atomic int64_t bucket_s; /* of the current policy; SEED_BUCKET_S under seed */
    _Atomic unsigned nb;      /* buckets per ring; 0: no rings (seed) */
};

static void shape_of(const tier_policy *p, int64_t *bs, unsigned *nb)
{
    *bs = p->mode == TIER_POLICY_WINDOW ? p->bucket_s : SEED_BUCKET_S;
    *nb = p->mode == TIER_POLICY_WINDOW ? (unsigned)(p->window_s / p->bucket_s) : 0;
}

/* Re-adds an old bucket into c's new ring (c->views, c->views_bs). */
static void add_old(void *arg, int64_t start_s, int64_t views)
{
    content *c = arg;
    tier_policy_views_add(c->views, c->views_bs, start_s * 1000, views);
}

/* Gives c a ring of nb buckets of bs seconds holding its old views (c's
 * stripe mutex held, or c not yet shared).  nb 0 frees it.  A bucket of
 * the old ring lands in the new bucket holding its start time. */
static void fit_ring(content *c, int64_t bs, unsigned nb)
{
    tier_policy_views *old = c->views;
    int64_t old_bs = c->views_bs;

    if (old != NULL && old_bs == bs && tier_policy_views_nb(old) == nb)
        return;
    c->views = nb ? tier_policy_views_alloc(nb) : NULL;
    c->views_bs = bs;
    if (old != NULL && c->views != NULL)
        tier_policy_views_each(old, old_bs, add_old, c);
    tier_policy_views_free(old);
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

bool tiering_views_note(tiering *t, content *c, int64_t count, int64_t views, int64_t now_ms,
                        tl_viewrec *rec)
{
    struct tl_views *v = t->views;
    int64_t bs = atomic_load(&v->bucket_s), delta = 0, before = c->count;
    unsigned nb = atomic_load(&v->nb);
    bool window = nb > 0;

    if (views > 0) {
        delta = views;
        c->count = sat_add(before < 0 ? 0 : before, views);
    } else {
        delta = before >= 0 && count > before ? count - before : 0;
        c->count = count;
    }
    if (delta > 0) {
        if (now_ms > c->last_access_ms)
            c->last_access_ms = now_ms;
        if (window) {
            fit_ring(c, bs, nb);
            if (c->views != NULL)
                tier_policy_views_add(c->views, bs, now_ms, delta);
        }
    }
    *rec = (tl_viewrec){c->cid, c->count, c->last_access_ms, now_ms / 1000 / bs * bs, delta};
    return views > 0 || (window && c->count != before);
}

/* ------------------------------------------------------------ durability */

static int flush(void *arg, unsigned flusher, void **items, size_t n)
{
    tiering *t = arg;
    tier_views_row *rows = malloc(n * sizeof(*rows));
    tier_db *db;
    int rv;

    (void)flusher;
    if (rows == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    /* Counts as they are now, not as submitted: two reports of one content
     * may reach the queue in either order; the newest value must win. */
    for (size_t i = 0; i < n; i++) {
        content *c = tiering_find(t, ((tl_viewrec *)items[i])->cid);
        rows[i] = *(tl_viewrec *)items[i];
        if (c != NULL) {
            tiering_lock(t, c);
            rows[i].count = c->count;
            rows[i].last_access_ms = c->last_access_ms;
            tiering_unlock(t, c);
        }
    }
    if ((db = tier_pool_get(t->deps->db)) == NULL) {
        free(rows);
        return TIER_UNAVAILABLE;
    }
    rv = tier_views_write(db, rows, n);
    tier_db_pool_put(t->deps->db, db);
    if (rv == TIER_OK)
        TIER_CRASH_AT("views.after_commit");
    free(rows);
    return rv;
}

int tiering_views_persist(tiering *t, tl_viewrec *recs, size_t n)
{
    void **items = malloc(n * sizeof(*items));
    int rv;

    if (items == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n; i++)
        items[i] = &recs[i];
    rv = tier_batcher_submit_many(t->views->batcher, items, n);
    free(items);
    return rv;
}

/* ------------------------------------------------------------ loading */

static int load_since(void *arg, int64_t cid, int64_t update_ms, int64_t generate_ms)
{
    content *c = tiering_find(arg, cid);
    if (c != NULL) {
        c->since_ms = update_ms;
        c->born_ms = generate_ms;
    }
    return 0;
}

static int load_state(void *arg, int64_t cid, int64_t count, int64_t last_ms)
{
    content *c = tiering_find(arg, cid);
    if (c != NULL) {
        c->count = count;
        c->last_access_ms = last_ms;
    }
    return 0;
}

static int load_bucket(void *arg, int64_t cid, int64_t start_s, int64_t views)
{
    tiering *t = arg;
    content *c = tiering_find(t, cid);
    unsigned nb = atomic_load(&t->views->nb);
    int64_t bs = atomic_load(&t->views->bucket_s);

    if (c == NULL || nb == 0)
        return 0;
    fit_ring(c, bs, nb);
    if (c->views == NULL)
        return 1; /* out of memory */
    tier_policy_views_add(c->views, bs, start_s * 1000, views);
    return 0;
}

int tiering_views_open(tiering *t)
{
    struct tl_views *v = calloc(1, sizeof(*v));
    tier_policy p;
    tier_db *db;
    int64_t bs;
    unsigned nb;
    int rv;

    if (v == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    t->views = v;
    tiering_policy_get(t, &p);
    shape_of(&p, &bs, &nb);
    atomic_store(&v->bucket_s, bs);
    atomic_store(&v->nb, nb);
    if ((db = tier_pool_get(t->deps->db)) == NULL) {
        tier_error("MySQL: cannot connect to load view counts");
        return TIER_UNAVAILABLE;
    }
    rv = tier_views_scan(db, tier_now_ms() / 1000 - KEEP_S, load_since, load_state, load_bucket, t);
    tier_db_pool_put(t->deps->db, db);
    if (rv != TIER_OK) {
        tier_error("tiering: cannot load view counts (%s)", tier_status_name(rv));
        return rv;
    }
    if ((v->batcher = tier_batcher_alloc(VIEWS_BATCH, 1, flush, t)) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    return TIER_OK;
}

void tiering_views_close(tiering *t)
{
    if (t->views == NULL)
        return;
    if (t->views->batcher != NULL)
        tier_batcher_free(t->views->batcher);
    free(t->views);
    t->views = NULL;
}

static void refit(void *arg, content *c)
{
    struct tl_views *v = arg;
    fit_ring(c, atomic_load(&v->bucket_s), atomic_load(&v->nb));
}

void tiering_views_rebucket(tiering *t, const tier_policy *old, const tier_policy *p)
{
    int64_t bs, obs;
    unsigned nb, onb;

    shape_of(p, &bs, &nb);
    shape_of(old, &obs, &onb);
    if (bs == obs && nb == onb)
        return;
    atomic_store(&t->views->bucket_s, bs);
    atomic_store(&t->views->nb, nb);
    tiering_each(t, refit, t->views);
}
