/*
 * rank_internal.h -- data structures shared by the files of the ranking
 * index (tier_rank.c: entities, ingest, expiry; rank_block.c: the sorted
 * block lists; rank_query.c: the threshold-algorithm query).
 *
 * Two views of the same events are kept:
 *
 *   - random access: per entity (a (service, cid) pair, numbered densely) a
 *     vector of cumulative sums sorted by minute, so the exact sum of any
 *     window is two binary searches away;
 *
 *   - sorted access: per service, blocks of 4^L aligned minutes
 *     (L = 0..nlevels-1) holding every entity with an event in the block and
 *     its net change there, sorted by change descending.
 *
 * Compaction (rank_compact.c): minutes older than the detail horizon keep
 * only granule resolution (4^clevel minutes): one cumulative entry per
 * entity and granule, no blocks below level clevel, and the level-clevel
 * block of a compacted granule is a "leaf" like a level-0 block.  Window
 * edges inside compacted granules are completed by a fringe read from the
 * outside (rank_fringe.c).
 *
 * The cumulative sums are kept modulo 2^32 (uint32): a difference of two
 * of them is exact whenever the true difference fits in int32, which is all
 * we promise, and it halves the memory of 64-bit sums.
 */
#ifndef RANK_INTERNAL_H
#define RANK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tier_rank.h"

#define RANK_LEVELS_MAX 14
#define RANK_NONE UINT32_MAX

/* Cumulative counts of one entity up to and including `minute`. */
typedef struct {
    int32_t minute;
    uint32_t delta, created, deleted, restored;
} rank_cum;

/* One entity's change within a block. */
typedef struct {
    uint32_t ent;
    int32_t delta;
} rank_entry;

/* A block of 4^level minutes starting at `start` (a multiple of 4^level).
 * version counts the events that fell into it; the sorted list e[] is valid
 * when built and built_version == version.  For level 0, e[] is also the
 * list of entities touched in the minute (appended unsorted by ingest). */
typedef struct {
    int64_t start;
    rank_entry *e;
    uint32_t n, cap;
    uint32_t version, built_version;
    uint8_t level, built;
    uint8_t leaf; /* compacted granule: e[] is its member list, built like level 0 */
} rank_block;

/* Blocks of one level of one service: v[i] is block number first + i, or
 * NULL when that block has no events. */
typedef struct {
    int64_t first;
    rank_block **v;
    uint32_t n, cap;
} rank_blockvec;

typedef struct {
    char *name;
    rank_blockvec lv[RANK_LEVELS_MAX];
} rank_service;

/* c[0..n) sorted by minute, strictly increasing.  After expiry c[0] may be a
 * sentinel older than the retained range that only serves as the base. */
typedef struct {
    int64_t cid;
    rank_cum *c;
    uint32_t svc;
    uint32_t n, cap;
} rank_entity;

struct tier_rank {
    pthread_rwlock_t lock;    /* shared: queries; exclusive: everything else */
    pthread_mutex_t build_mu; /* serialises block builds done under `lock` shared */
    int64_t retention;
    int nlevels;
    int64_t open;    /* the open minute, -1 before any */
    int64_t expired; /* minutes < expired are gone */

    rank_service *svc;
    uint32_t nsvc, svc_cap;

    rank_entity *ent;
    uint32_t nent, ent_cap;
    uint32_t *freeids;
    uint32_t nfree, free_cap;

    uint32_t *slots; /* open addressing (service, cid) -> entity, RANK_NONE empty */
    uint32_t slot_mask, nlive;

    int64_t *acc; /* build scratch, indexed by entity, under build_mu */
    uint32_t *stamp;
    uint32_t scratch_cap, cur_stamp;

    struct rank_hot *hot; /* the hot order's scores and heaps (rank_hot.c) */
    /* compaction, see rank_compact.c: minutes < horizon (a multiple of
     * 4^clevel) hold granule resolution; detail 0 = never compact */
    int64_t detail, horizon;
    int clevel;
    tier_rank_fringe_fn fringe_fn;
    void *fringe_ctx;

    _Atomic size_t mem;
};

/* Memory helpers that keep r->mem equal to the bytes held. */
void *rank_realloc(tier_rank *r, void *p, size_t old_bytes, size_t new_bytes);
void rank_release(tier_rank *r, void *p, size_t bytes);
/* Grows *p (elements of `size`, capacity *cap) to hold `need`; 0 or -1. */
int rank_reserve(tier_rank *r, void **p, uint32_t *cap, uint32_t need, size_t size);

static inline int64_t rank_level_len(int level)
{
    return (int64_t)1 << (2 * level);
}

/* Cumulative of entity e over minutes < m (zero when none). */
rank_cum rank_cum_before(const rank_entity *e, int64_t m);
/* Index of the first entry with minute >= m. */
uint32_t rank_lower_bound(const rank_entity *e, int64_t m);

/* Entity id of (svc, cid), RANK_NONE when absent (tier_rank.c). */
uint32_t rank_entity_find(const tier_rank *r, uint32_t svc, int64_t cid);

/* Compaction (rank_compact.c).  rank_compact() moves the horizon to
 * `horizon` (rounded down to a granule), under the exclusive lock. */
void rank_compact(tier_rank *r, int64_t horizon);
static inline int64_t rank_granule(const tier_rank *r)
{
    return rank_level_len(r->clevel);
}
/* One fringe part: the minutes [lo, hi) of the window inside the
 * compacted granule [gs, gs + G).  comp 0: the provider is asked for
 * [lo, hi) itself.  comp 1 (the part is longer than G/2): it is asked for
 * the complement [gs, lo) and [hi, gs + G) instead, and the part's sums are
 * the granule totals (from the index) minus the complement's, see
 * rank_fringe.c.  rank_fringe_fetch_ranges() lists the ranges to ask for. */
typedef struct {
    int64_t lo, hi, gs, comp;
} rank_fringe_part;

/* The parts of [from, to) the index holds at granule resolution only: up
 * to two, returned in p[], their count returned; *a and *b get the inner
 * window [a, b) that the index answers alone (a == b when the fringe
 * covers everything).  from must be >= r->expired. */
int rank_fringe_ranges(const tier_rank *r, int64_t from, int64_t to, rank_fringe_part p[2],
                       int64_t *a, int64_t *b);
/* The minute ranges the provider is asked for to get part p (G the
 * granule): up to two, in rg[], their count returned. */
int rank_fringe_fetch_ranges(const rank_fringe_part *p, int64_t g, int64_t rg[2][2]);

/* A fringe resolved against the index (rank_fringe.c): per entity sums of
 * the fringe minutes, sorted by entity id, and per service a sorted list
 * in block order (change descending, cid ascending). */
typedef struct {
    uint32_t ent;
    int64_t delta, created, deleted, restored;
} rank_fringe_sum;

typedef struct {
    rank_fringe_sum *sum;
    uint32_t nsum;
    rank_entry *list; /* by service: list[off[s]..off[s+1]) for s in [svc_lo, svc_hi) */
    uint32_t *off;
} rank_fringe_view;

tier_rank_fringe *rank_fringe_new(void);
void rank_fringe_clear(tier_rank_fringe *f);
void rank_fringe_free(tier_rank_fringe *f);
/* Resolves the sinks f[0..np), f[i] filled with the ranges of part p[i],
 * into v: the window's fringe sums over services [svc_lo, svc_hi).  Under
 * the index lock (shared); takes build_mu to read leaf blocks. */
int rank_fringe_resolve(tier_rank *r, tier_rank_fringe *const *f, const rank_fringe_part *p, int np,
                        uint32_t svc_lo, uint32_t svc_hi, rank_fringe_view *v);
const rank_fringe_sum *rank_fringe_lookup(const rank_fringe_view *v, uint32_t ent);
void rank_fringe_view_free(rank_fringe_view *v);

/* Blocks (rank_block.c). */
rank_block *rank_block_get(tier_rank *r, rank_blockvec *bv, int level, int64_t start, int create);
int rank_block_ensure(tier_rank *r, rank_service *s, rank_block *b);
void rank_blocks_expire(tier_rank *r, rank_blockvec *bv, int level, int64_t before);
void rank_blockvec_free(tier_rank *r, rank_blockvec *bv);
int rank_build_completed(tier_rank *r, int64_t old_open, int64_t new_open);

/* The hot order (rank_hot.c), hooked into ingest and expiry. */
int rank_hot_init(tier_rank *r);
void rank_hot_free(tier_rank *r);
/* Makes room for entity id of service svc; -1 when out of memory.  Called
 * before the entity changes so that rank_hot_add cannot fail. */
int rank_hot_reserve(tier_rank *r, uint32_t id, uint32_t svc);
void rank_hot_add(tier_rank *r, uint32_t id, int64_t minute, int32_t delta);
/* The hot terms of e's entries with minute in [from, to) (before a trim),
 * and their removal from entity id's score (rank_hot.c). */
double rank_hot_terms(tier_rank *r, const rank_entity *e, int64_t from, int64_t to);
void rank_hot_expire(tier_rank *r, uint32_t id, double gone);
/* Removes id from the order (the entity is being freed). */
void rank_hot_drop(tier_rank *r, uint32_t id);

#endif
