/*
 * rank_compact.c -- bounded memory over long retention: minute detail only
 * for recent data, granule resolution for the rest, still exact.
 *
 * Design (issue 12 item 2).  Memory of the plain index grows with the
 * number of (entity, minute) pairs with events: 20 B per cumulative entry
 * plus 8 B per entity per block at each level.  At 500 comments/s over
 * 200k Zipf contents nearly every content moves every hour, so 30 days of
 * minute detail would be tens of GB.  Compaction keeps:
 *
 *   - detail minutes [horizon, open]: everything as before;
 *   - compacted minutes [expired, horizon), horizon a multiple of the
 *     granule G = 4^clevel minutes, horizon = floor_G(open - detail):
 *       * per entity ONE cumulative entry per granule with events, stored
 *         at the granule's start minute and holding the cumulative through
 *         the granule's END -- so cum_before(m) stays exact for every m
 *         that is a multiple of G (and for every m >= horizon);
 *       * no blocks of levels < clevel;
 *       * blocks of levels >= clevel as before; the level-clevel block of a
 *         compacted granule becomes a "leaf": its e[] is the member list
 *         of the granule (every entity with an event in it, which the list
 *         built from the children before they were freed already is) and
 *         it is rebuilt like a level-0 block, from the cumulative vectors.
 *
 * Old data then costs about (entities active per granule) x (20 + 8 x
 * levels >= clevel) bytes per granule instead of per minute.
 *
 * Queries: a window [from, to) whose edges are granule-aligned, or in the
 * detail range, is answered from the index alone.  An edge inside a
 * compacted granule splits off a "fringe": [from, ceil_G(from)) and/or
 * [floor_G(to), to) (or all of [from, to) inside one granule).  The index
 * answers the aligned inner window and asks the fringe provider (tierd:
 * comment_minute in MariaDB) for the exact per-content sums of the fringe
 * minutes; rank_query.c treats them as one more sorted list per service
 * (for the threshold) and adds them in random access.  The provider runs
 * without the lock; the query re-derives the fringe under the lock and
 * asks again if the horizon moved in between (tier_rank_top()).
 *
 * The shorter side: the database read is what a fringe costs (about
 * 11,400 rows per minute on the benchmark workload, seconds for a few
 * hundred minutes), and a part of a granule can be up to G - 1 minutes.
 * But the index knows each content's exact total over a whole compacted
 * granule (its cumulatives at the two boundaries) and the granule's leaf
 * block lists every content with an event in it.  So a part longer than
 * G/2 is read through its complement: the provider returns the other
 * minutes of the granule ([gs, from) for a left edge, [to, gs + G) for a
 * right edge, both for a window inside one granule) and rank_fringe.c
 * derives the part as granule total - complement, per member of the
 * granule.  No part then reads more than G/2 minutes.
 *
 * Backfilled events into compacted minutes land in their granule's entry
 * and leaf block (tier_rank.c apply_event), so the invariant "the index
 * holds exactly the count changes committed within retention" holds, at
 * granule resolution for old data.  A rebuild that streams comment_minute
 * in minute order compacts as the open minute advances, so it never holds
 * more than `detail` minutes of detail.
 */
#include "rank_internal.h"

#include <stdlib.h>
#include <string.h>

#include "tier_status.h"

int tier_rank_set_compaction(tier_rank *r, int64_t detail_minutes, int coarse_level)
{
    if (r == NULL || detail_minutes < 0 || detail_minutes > r->retention ||
        (detail_minutes > 0 && (coarse_level < 1 || coarse_level >= r->nlevels)))
        return TIER_INVALID_ARGUMENT;
    pthread_rwlock_wrlock(&r->lock);
    int rc = r->open >= 0 ? TIER_FAILED_PRECONDITION : TIER_OK;
    if (rc == TIER_OK) {
        r->detail = detail_minutes;
        r->clevel = detail_minutes > 0 ? coarse_level : 0;
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

void tier_rank_set_fringe_provider(tier_rank *r, tier_rank_fringe_fn fn, void *ctx)
{
    if (r == NULL)
        return;
    pthread_rwlock_wrlock(&r->lock);
    r->fringe_fn = fn;
    r->fringe_ctx = ctx;
    pthread_rwlock_unlock(&r->lock);
}

/* Folds e's entries with minutes in [lo, hi) to one per granule, at the
 * granule's start, keeping the last cumulative of each granule. */
static void entity_fold(tier_rank *r, rank_entity *e, int64_t lo, int64_t hi, int64_t g)
{
    uint32_t i = rank_lower_bound(e, lo), j = rank_lower_bound(e, hi), w = i;
    for (uint32_t k = i; k < j; k++) {
        int32_t start = (int32_t)(e->c[k].minute / g * g);
        if (w > i && e->c[w - 1].minute == start)
            w--;
        e->c[w] = e->c[k];
        e->c[w++].minute = start;
    }
    if (w == j)
        return;
    memmove(&e->c[w], &e->c[j], (size_t)(e->n - j) * sizeof(rank_cum));
    e->n -= j - w;
    /* give the memory back: this is the point of compacting */
    if (e->cap > e->n + e->n / 4 + 4) {
        uint32_t nc = e->n + e->n / 8 + 2;
        rank_cum *c =
            rank_realloc(r, e->c, (size_t)e->cap * sizeof(rank_cum), nc * sizeof(rank_cum));
        if (c != NULL) {
            e->c = c;
            e->cap = nc;
        }
    }
}

/* Builds the level-clevel blocks of [lo, hi) from their children and turns
 * them into leaves; -1 when a build failed (nothing freed then). */
static int leaves_make(tier_rank *r, int64_t lo, int64_t hi)
{
    int l = r->clevel;
    for (uint32_t si = 0; si < r->nsvc; si++) {
        rank_blockvec *bv = &r->svc[si].lv[l];
        for (uint32_t i = 0; i < bv->n; i++) {
            rank_block *b = bv->v[i];
            if (b == NULL || b->leaf || b->start < lo || b->start >= hi)
                continue;
            if (rank_block_ensure(r, &r->svc[si], b) != TIER_OK)
                return -1;
            b->leaf = 1;
        }
    }
    return 0;
}

void rank_compact(tier_rank *r, int64_t horizon)
{
    if (r->detail <= 0)
        return;
    int64_t g = rank_granule(r);
    horizon = horizon / g * g;
    if (horizon <= r->horizon)
        return;
    int64_t lo = r->horizon;
    if (leaves_make(r, lo, horizon) != 0)
        return; /* out of memory: stay uncompacted, still exact */
    for (uint32_t si = 0; si < r->nsvc; si++)
        for (int l = 0; l < r->clevel; l++)
            rank_blocks_expire(r, &r->svc[si].lv[l], l, horizon);
    for (uint32_t id = 0; id < r->nent; id++)
        if (r->ent[id].svc != RANK_NONE && r->ent[id].n > 0)
            entity_fold(r, &r->ent[id], lo, horizon, g);
    r->horizon = horizon;
}

/* The part [lo, hi) of granule [gs, gs + g): read the shorter side. */
static rank_fringe_part fringe_part(int64_t lo, int64_t hi, int64_t g)
{
    int64_t gs = lo / g * g;
    return (rank_fringe_part){lo, hi, gs, (hi - lo) * 2 > g};
}

int rank_fringe_ranges(const tier_rank *r, int64_t from, int64_t to, rank_fringe_part p[2],
                       int64_t *a, int64_t *b)
{
    int64_t g = r->detail > 0 ? rank_granule(r) : 1;
    int n = 0;
    *a = from;
    *b = to;
    if (from < r->horizon && from % g != 0) {
        int64_t up = (from / g + 1) * g;
        *a = up < to ? up : to;
        p[n++] = fringe_part(from, *a, g);
    }
    if (*a < to && to < r->horizon && to % g != 0) {
        *b = to / g * g; /* >= *a: *a is aligned here */
        p[n++] = fringe_part(*b, to, g);
    }
    if (*b < *a)
        *b = *a;
    return n;
}

int rank_fringe_fetch_ranges(const rank_fringe_part *p, int64_t g, int64_t rg[2][2])
{
    int n = 0;
    if (!p->comp) {
        rg[n][0] = p->lo;
        rg[n++][1] = p->hi;
        return n;
    }
    if (p->gs < p->lo) {
        rg[n][0] = p->gs;
        rg[n++][1] = p->lo;
    }
    if (p->hi < p->gs + g) {
        rg[n][0] = p->hi;
        rg[n++][1] = p->gs + g;
    }
    return n;
}
