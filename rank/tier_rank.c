/*
 * tier_rank.c -- the ranking index: entities, ingest, retention.
 *
 * An event for (service, cid) at minute m does three things:
 *
 *   1. the entity's cumulative vector gets the event added at m: appended
 *      when m is its newest minute (the common case, O(1)), otherwise
 *      inserted and every later cumulative shifted (backfill, O(len));
 *   2. when the entity had no entry at m yet, it is appended to the level-0
 *      block of (service, m) -- that list is exactly "who moved in minute
 *      m", the material every sorted list is built from;
 *   3. the version of the blocks containing m, at every level, is bumped,
 *      which invalidates their sorted lists (this is how a backfilled event
 *      dirties an already built block).
 *
 * Invariants:
 *   - an entity appears in a level-0 block iff it has a cumulative entry at
 *     that minute, and then exactly once;
 *   - every minute with data is >= r->expired, except per-entity sentinels
 *     (see rank_entity) which only carry the base of the cumulatives;
 *   - open only moves forward; blocks whose end <= open are complete and
 *     get built when open passes them (rank_build_completed), so queries
 *     mostly find their lists ready.
 *
 * Retention is enforced in two ways: tier_rank_expire() on demand, and
 * automatically whenever the open minute gets more than retention + 1/16
 * retention ahead of the expired boundary (the slack amortises the memmoves
 * of trimming the entity vectors).
 */
#include "rank_internal.h"

#include <stdlib.h>
#include <string.h>

#include "tier_status.h"

void *rank_realloc(tier_rank *r, void *p, size_t old_bytes, size_t new_bytes)
{
    void *q = realloc(p, new_bytes);
    if (q == NULL && new_bytes > 0)
        return NULL;
    atomic_fetch_add_explicit(&r->mem, new_bytes, memory_order_relaxed);
    atomic_fetch_sub_explicit(&r->mem, old_bytes, memory_order_relaxed);
    return q;
}

void rank_release(tier_rank *r, void *p, size_t bytes)
{
    free(p);
    atomic_fetch_sub_explicit(&r->mem, bytes, memory_order_relaxed);
}

int rank_reserve(tier_rank *r, void **p, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    uint64_t nc = *cap ? (uint64_t)*cap + *cap / 2 : 4;
    if (nc < need)
        nc = need;
    if (nc > UINT32_MAX - 1)
        return -1;
    void *q = rank_realloc(r, *p, (size_t)*cap * size, (size_t)nc * size);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = (uint32_t)nc;
    return 0;
}

/* ---- cumulative vectors ---- */

uint32_t rank_lower_bound(const rank_entity *e, int64_t m)
{
    /* windows reaching past an entity's newest minute (or before its oldest)
     * are the common case of long queries: no search */
    if (e->n == 0 || e->c[e->n - 1].minute < m)
        return e->n;
    if (e->c[0].minute >= m)
        return 0;
    uint32_t lo = 0, hi = e->n - 1; /* the answer is in (0, n - 1] */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e->c[mid].minute < m)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

rank_cum rank_cum_before(const rank_entity *e, int64_t m)
{
    uint32_t i = rank_lower_bound(e, m);
    if (i == 0) {
        rank_cum z = {0};
        return z;
    }
    return e->c[i - 1];
}

static void cum_add(rank_cum *c, const tier_rank_event *ev)
{
    c->delta += (uint32_t)ev->delta;
    c->created += (uint32_t)ev->created;
    c->deleted += (uint32_t)ev->deleted;
    c->restored += (uint32_t)ev->restored;
}

/* Adds ev at minute m.  Returns 1 when a new minute entry was created, 0
 * when an existing one was updated, -1 on allocation failure (unchanged). */
static int entity_add(tier_rank *r, rank_entity *e, int32_t m, const tier_rank_event *ev)
{
    uint32_t n = e->n;
    if (n > 0 && e->c[n - 1].minute == m) {
        cum_add(&e->c[n - 1], ev);
        return 0;
    }
    uint32_t i = (n == 0 || e->c[n - 1].minute < m) ? n : rank_lower_bound(e, m);
    int fresh = (i == n || e->c[i].minute != m);
    if (fresh) {
        if (rank_reserve(r, (void **)&e->c, &e->cap, n + 1, sizeof(rank_cum)) != 0)
            return -1;
        memmove(&e->c[i + 1], &e->c[i], (size_t)(n - i) * sizeof(rank_cum));
        rank_cum base = {0};
        e->c[i] = i > 0 ? e->c[i - 1] : base;
        e->c[i].minute = m;
        e->n = ++n;
    }
    for (uint32_t j = i; j < n; j++)
        cum_add(&e->c[j], ev);
    return fresh;
}

/* ---- entity table: (service, cid) -> dense id ---- */

static uint32_t slot_hash(uint32_t svc, int64_t cid)
{
    uint64_t x = (uint64_t)cid * 0x9E3779B97F4A7C15ULL + svc;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static uint32_t slot_find(const tier_rank *r, uint32_t svc, int64_t cid, uint32_t *pos)
{
    uint32_t i = slot_hash(svc, cid) & r->slot_mask;
    for (;; i = (i + 1) & r->slot_mask) {
        uint32_t id = r->slots[i];
        if (id == RANK_NONE || (r->ent[id].cid == cid && r->ent[id].svc == svc)) {
            *pos = i;
            return id;
        }
    }
}

uint32_t rank_entity_find(const tier_rank *r, uint32_t svc, int64_t cid)
{
    uint32_t pos;
    return slot_find(r, svc, cid, &pos);
}

static int slots_grow(tier_rank *r)
{
    uint32_t ncap = (r->slot_mask + 1) * 2;
    uint32_t *ns = rank_realloc(r, NULL, 0, (size_t)ncap * sizeof(uint32_t));
    if (ns == NULL)
        return -1;
    memset(ns, 0xff, (size_t)ncap * sizeof(uint32_t));
    uint32_t *old = r->slots;
    uint32_t oldcap = r->slot_mask + 1;
    r->slots = ns;
    r->slot_mask = ncap - 1;
    for (uint32_t i = 0; i < oldcap; i++) {
        uint32_t id = old[i], pos;
        if (id != RANK_NONE) {
            slot_find(r, r->ent[id].svc, r->ent[id].cid, &pos);
            ns[pos] = id;
        }
    }
    rank_release(r, old, (size_t)oldcap * sizeof(uint32_t));
    return 0;
}

/* Linear probing deletion by backward shift: no tombstones to age. */
static void slot_delete(tier_rank *r, uint32_t pos)
{
    uint32_t i = pos, j = pos;
    for (;;) {
        j = (j + 1) & r->slot_mask;
        uint32_t id = r->slots[j];
        if (id == RANK_NONE)
            break;
        uint32_t home = slot_hash(r->ent[id].svc, r->ent[id].cid) & r->slot_mask;
        /* keep slot j where it is if its home lies cyclically in (i, j] */
        if (((j - home) & r->slot_mask) < ((j - i) & r->slot_mask))
            continue;
        r->slots[i] = id;
        i = j;
    }
    r->slots[i] = RANK_NONE;
}

static int scratch_fit(tier_rank *r, uint32_t need)
{
    if (need <= r->scratch_cap)
        return 0;
    uint32_t old = r->scratch_cap;
    uint32_t cap = old > 512 ? old * 2 : 1024;
    int64_t *acc = rank_realloc(r, r->acc, old * sizeof(int64_t), cap * sizeof(int64_t));
    if (acc == NULL)
        return -1;
    r->acc = acc;
    uint32_t *st = rank_realloc(r, r->stamp, old * sizeof(uint32_t), cap * sizeof(uint32_t));
    if (st == NULL) {
        /* shrink acc back so both keep the capacity scratch_cap says */
        int64_t *back = rank_realloc(r, acc, cap * sizeof(int64_t), old * sizeof(int64_t));
        if (back != NULL || old == 0)
            r->acc = back;
        return -1;
    }
    r->stamp = st;
    memset(st + old, 0, (size_t)(cap - old) * sizeof(uint32_t));
    r->scratch_cap = cap;
    return 0;
}

static uint32_t entity_new_id(tier_rank *r)
{
    if (r->nfree > 0)
        return r->freeids[--r->nfree];
    if (rank_reserve(r, (void **)&r->ent, &r->ent_cap, r->nent + 1, sizeof(rank_entity)) != 0)
        return RANK_NONE;
    if (scratch_fit(r, r->nent + 1) != 0)
        return RANK_NONE;
    return r->nent++;
}

static uint32_t entity_get(tier_rank *r, uint32_t svc, int64_t cid)
{
    uint32_t pos;
    uint32_t id = slot_find(r, svc, cid, &pos);
    if (id != RANK_NONE)
        return id;
    if ((r->nlive + 1) * 2 > r->slot_mask + 1) {
        if (slots_grow(r) != 0)
            return RANK_NONE;
        slot_find(r, svc, cid, &pos);
    }
    id = entity_new_id(r);
    if (id == RANK_NONE)
        return RANK_NONE;
    rank_entity *e = &r->ent[id];
    memset(e, 0, sizeof(*e));
    e->cid = cid;
    e->svc = svc;
    r->slots[pos] = id;
    r->nlive++;
    return id;
}

static uint32_t service_intern(tier_rank *r, const char *name)
{
    for (uint32_t i = 0; i < r->nsvc; i++)
        if (strcmp(r->svc[i].name, name) == 0)
            return i;
    if (rank_reserve(r, (void **)&r->svc, &r->svc_cap, r->nsvc + 1, sizeof(rank_service)) != 0)
        return RANK_NONE;
    size_t len = strlen(name) + 1;
    char *copy = rank_realloc(r, NULL, 0, len);
    if (copy == NULL)
        return RANK_NONE;
    memcpy(copy, name, len);
    rank_service *s = &r->svc[r->nsvc];
    memset(s, 0, sizeof(*s));
    s->name = copy;
    return r->nsvc++;
}

/* ---- lifecycle ---- */

int tier_rank_alloc(tier_rank **out, int64_t retention_minutes)
{
    if (out == NULL || retention_minutes < 1 || retention_minutes > ((int64_t)1 << 26))
        return TIER_INVALID_ARGUMENT;
    tier_rank *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    atomic_init(&r->mem, sizeof(*r));
    r->retention = retention_minutes;
    while (r->nlevels < RANK_LEVELS_MAX && rank_level_len(r->nlevels) <= retention_minutes)
        r->nlevels++;
    r->open = -1;
    r->slots = rank_realloc(r, NULL, 0, 1024 * sizeof(uint32_t));
    if (r->slots == NULL) {
        free(r);
        return TIER_RESOURCE_EXHAUSTED;
    }
    memset(r->slots, 0xff, 1024 * sizeof(uint32_t));
    r->slot_mask = 1023;
    if (rank_hot_init(r) != 0) {
        free(r->slots);
        free(r);
        return TIER_RESOURCE_EXHAUSTED;
    }
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* a steady stream of queries must not starve ingest */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&r->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&r->build_mu, NULL);
    *out = r;
    return TIER_OK;
}

void tier_rank_free(tier_rank *r)
{
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < r->nsvc; i++) {
        for (int l = 0; l < RANK_LEVELS_MAX; l++)
            rank_blockvec_free(r, &r->svc[i].lv[l]);
        free(r->svc[i].name);
    }
    for (uint32_t i = 0; i < r->nent; i++)
        free(r->ent[i].c);
    free(r->svc);
    free(r->ent);
    free(r->freeids);
    free(r->slots);
    free(r->acc);
    free(r->stamp);
    rank_hot_free(r);
    pthread_rwlock_destroy(&r->lock);
    pthread_mutex_destroy(&r->build_mu);
    free(r);
}

size_t tier_rank_memory(const tier_rank *r)
{
    return r ? atomic_load_explicit(&((tier_rank *)r)->mem, memory_order_relaxed) : 0;
}

/* ---- expiry ---- */

/* Drops entries older than `before`, keeping the newest of them as the
 * sentinel base.  Returns 1 when nothing at or after `before` remains. */
static int entity_trim(tier_rank *r, rank_entity *e, int64_t before)
{
    uint32_t i = rank_lower_bound(e, before);
    if (i == e->n) {
        rank_release(r, e->c, (size_t)e->cap * sizeof(rank_cum));
        e->c = NULL;
        e->n = e->cap = 0;
        return 1;
    }
    if (i >= 2) {
        memmove(e->c, &e->c[i - 1], (size_t)(e->n - i + 1) * sizeof(rank_cum));
        e->n -= i - 1;
    }
    return 0;
}

static void entity_drop(tier_rank *r, uint32_t id)
{
    uint32_t pos;
    rank_hot_drop(r, id);
    slot_find(r, r->ent[id].svc, r->ent[id].cid, &pos);
    slot_delete(r, pos);
    r->nlive--;
    r->ent[id].cid = -1;
    r->ent[id].svc = RANK_NONE;
    /* freeids never needs more than nent slots; failure just leaks the id */
    if (rank_reserve(r, (void **)&r->freeids, &r->free_cap, r->nfree + 1, sizeof(uint32_t)) == 0)
        r->freeids[r->nfree++] = id;
}

static void expire_locked(tier_rank *r, int64_t before)
{
    /* a compacted granule is kept or dropped whole: its one entry per
     * entity cannot be split (rank_compact.c) */
    if (r->detail > 0 && before < r->horizon)
        before = before / rank_granule(r) * rank_granule(r);
    if (before <= r->expired)
        return;
    int64_t was = r->expired;
    r->expired = before;
    for (uint32_t i = 0; i < r->nsvc; i++)
        for (int l = 0; l < r->nlevels; l++)
            rank_blocks_expire(r, &r->svc[i].lv[l], l, before);
    for (uint32_t id = 0; id < r->nent; id++) {
        rank_entity *e = &r->ent[id];
        if (e->svc == RANK_NONE || e->n == 0)
            continue;
        /* entries in [was, before): events that leave the hot score */
        uint32_t first = rank_lower_bound(e, was);
        int had_old = first < e->n && e->c[first].minute < before;
        double gone = had_old ? rank_hot_terms(r, e, was, before) : 0;
        if (entity_trim(r, e, before))
            entity_drop(r, id);
        else if (had_old)
            rank_hot_expire(r, id, gone);
    }
}

void tier_rank_expire(tier_rank *r, int64_t before_minute)
{
    if (r == NULL)
        return;
    pthread_rwlock_wrlock(&r->lock);
    expire_locked(r, before_minute);
    pthread_rwlock_unlock(&r->lock);
}

/* ---- ingest ---- */

static int event_valid(const tier_rank_event *ev)
{
    return ev->service != NULL && ev->service[0] != '\0' && ev->minute >= 0 &&
           ev->minute < INT32_MAX;
}

static int event_empty(const tier_rank_event *ev)
{
    return ev->delta == 0 && ev->created == 0 && ev->deleted == 0 && ev->restored == 0;
}

static int bump_versions(tier_rank *r, rank_service *s, int64_t m, int from_level)
{
    for (int l = from_level; l < r->nlevels; l++) {
        int64_t len = rank_level_len(l);
        rank_block *b = rank_block_get(r, &s->lv[l], l, m / len * len, 1);
        if (b == NULL)
            return -1;
        b->version++;
    }
    return 0;
}

static int apply_event(tier_rank *r, const tier_rank_event *ev, uint32_t *svc_cache)
{
    uint32_t svc = *svc_cache;
    if (svc == RANK_NONE || strcmp(r->svc[svc].name, ev->service) != 0)
        svc = *svc_cache = service_intern(r, ev->service);
    if (svc == RANK_NONE)
        return TIER_RESOURCE_EXHAUSTED;
    /* A compacted minute is charged to its granule (rank_compact.c): the
     * entity's entry at the granule start, the granule's leaf block. */
    int64_t m = ev->minute;
    int leaf = 0;
    if (m < r->horizon) {
        leaf = r->clevel;
        m = m / rank_granule(r) * rank_granule(r);
    }
    /* blocks first: once the entity changed the touch must not fail */
    if (bump_versions(r, &r->svc[svc], m, leaf) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    uint32_t id = entity_get(r, svc, ev->cid);
    if (id == RANK_NONE)
        return TIER_RESOURCE_EXHAUSTED;
    rank_block *b0 = rank_block_get(r, &r->svc[svc].lv[leaf], leaf, m, 1);
    if (b0 == NULL ||
        rank_reserve(r, (void **)&b0->e, &b0->cap, b0->n + 1, sizeof(rank_entry)) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    if (rank_hot_reserve(r, id, svc) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    if (leaf)
        b0->leaf = 1;
    /* the hot score takes the event's own minute (rank_hot_add below) */
    int fresh = entity_add(r, &r->ent[id], (int32_t)m, ev);
    if (fresh < 0)
        return TIER_RESOURCE_EXHAUSTED;
    rank_hot_add(r, id, ev->minute, ev->delta);
    if (fresh) { /* first event of this entity in the minute: capacity reserved above */
        b0->e[b0->n].ent = id;
        b0->e[b0->n].delta = 0;
        b0->n++;
    }
    return TIER_OK;
}

/* Moves the open minute to `m` (if later) and expires what fell more than
 * retention + retention/16 behind it.  Completed blocks are built by the
 * caller once its events are in. */
static void move_open(tier_rank *r, int64_t m)
{
    if (m <= r->open)
        return;
    r->open = m;
    int64_t keep_from = m - r->retention;
    if (keep_from - r->expired > r->retention / 16)
        expire_locked(r, keep_from);
    if (r->detail > 0 && m - r->detail >= r->horizon + rank_granule(r))
        rank_compact(r, m - r->detail);
}

int tier_rank_add_batch(tier_rank *r, const tier_rank_event *ev, size_t n)
{
    if (r == NULL || (ev == NULL && n > 0))
        return TIER_INVALID_ARGUMENT;
    int64_t maxm = -1;
    for (size_t i = 0; i < n; i++) {
        if (!event_valid(&ev[i]))
            return TIER_INVALID_ARGUMENT;
        if (ev[i].minute > maxm)
            maxm = ev[i].minute;
    }
    pthread_rwlock_wrlock(&r->lock);
    int64_t old_open = r->open;
    move_open(r, maxm); /* first, so the block vectors never span much more than retention */
    uint32_t svc_cache = RANK_NONE;
    int rc = TIER_OK;
    for (size_t i = 0; i < n && rc == TIER_OK; i++)
        if (ev[i].minute >= r->expired && !event_empty(&ev[i]))
            rc = apply_event(r, &ev[i], &svc_cache);
    if (old_open >= 0 && r->open > old_open) {
        int brc = rank_build_completed(r, old_open, r->open);
        if (rc == TIER_OK)
            rc = brc;
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

void tier_rank_set_now(tier_rank *r, int64_t minute)
{
    if (r == NULL || minute < 0 || minute >= INT32_MAX)
        return;
    pthread_rwlock_wrlock(&r->lock);
    int64_t old_open = r->open;
    move_open(r, minute);
    if (old_open >= 0 && r->open > old_open)
        rank_build_completed(r, old_open, r->open); /* best effort: queries retry */
    pthread_rwlock_unlock(&r->lock);
}

/*
 * Builds up to `budget` complete blocks whose sorted lists are missing
 * (never queried since a restart's reload) or stale (a backfilled event
 * fell into them after they were built), so that the next query touching
 * them need not.  Holds the shared lock and build_mu
 * while it works, like a query that builds; the budget bounds how long a
 * writer can be kept waiting.  Returns how many blocks it rebuilt.
 */
int tier_rank_refresh(tier_rank *r, int budget)
{
    int built = 0;

    pthread_rwlock_rdlock(&r->lock);
    pthread_mutex_lock(&r->build_mu);
    for (uint32_t si = 0; si < r->nsvc && built < budget; si++) {
        rank_service *s = &r->svc[si];
        for (int l = 0; l < r->nlevels && built < budget; l++) {
            rank_blockvec *bv = &s->lv[l];
            for (uint32_t i = 0; i < bv->n && built < budget; i++) {
                rank_block *b = bv->v[i];
                if (b == NULL || (b->built && b->built_version == b->version) ||
                    b->start + rank_level_len(l) > r->open)
                    continue;
                if (rank_block_ensure(r, s, b) == TIER_OK)
                    built++;
            }
        }
    }
    pthread_mutex_unlock(&r->build_mu);
    pthread_rwlock_unlock(&r->lock);
    return built;
}

/* ---- merging the tops of several shards ---- */

static int merge_cmp(const void *pa, const void *pb, void *arg)
{
    const tier_rank_row *a = pa, *b = pb;
    int dec = *(const int *)arg;

    if (a->change != b->change)
        return (dec ? a->change > b->change : a->change < b->change) ? 1 : -1;
    if (a->cid != b->cid)
        return a->cid < b->cid ? -1 : 1;
    return strcmp(a->service, b->service);
}

static int hot_cmp(const void *pa, const void *pb)
{
    const tier_rank_row *a = pa, *b = pb;

    if (a->hot != b->hot)
        return a->hot > b->hot ? -1 : 1;
    if (a->cid != b->cid)
        return a->cid < b->cid ? -1 : 1;
    return strcmp(a->service, b->service);
}

void tier_rank_merge_hot(const tier_rank_row *in, size_t n, uint32_t limit, tier_rank_row *rows,
                         size_t *nrows)
{
    if (rows != in)
        memmove(rows, in, n * sizeof(*rows));
    qsort(rows, n, sizeof(*rows), hot_cmp);
    *nrows = n < limit ? n : limit;
}

int tier_rank_row_after(const tier_rank_row *row, const tier_rank_key *key, int decrease, int hot)
{
    if (hot) {
        if (row->hot != key->hot)
            return row->hot < key->hot;
    } else if (row->change != key->change) {
        return decrease ? row->change > key->change : row->change < key->change;
    }
    if (row->cid != key->cid)
        return row->cid > key->cid;
    return strcmp(row->service, key->service) > 0;
}

void tier_rank_merge(const tier_rank_row *in, size_t n, int decrease, uint32_t limit,
                     tier_rank_row *rows, size_t *nrows)
{
    if (rows != in)
        memmove(rows, in, n * sizeof(*rows));
    qsort_r(rows, n, sizeof(*rows), merge_cmp, &decrease);
    *nrows = n < limit ? n : limit;
}
