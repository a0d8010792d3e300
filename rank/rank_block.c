/*
 * rank_block.c -- the sorted lists: blocks of 4^L aligned minutes.
 *
 * A block's list holds every entity of its service with at least one event
 * in the block, with its net change there, sorted by change descending.
 * The threshold algorithm (rank_query.c) reads these lists from either end.
 *
 * Building:
 *   - level 0 (one minute): e[] already names the entities touched in the
 *     minute; each one's change is the difference of two neighbouring
 *     cumulatives of its vector, then the list is sorted;
 *   - level L > 0: the four children (level L-1) are built first, their
 *     changes summed per entity in a dense scratch array indexed by entity
 *     id (r->acc, with r->stamp telling which slots belong to this build),
 *     then sorted.  No per-block hash maps: random access goes through the
 *     entity vectors, so a block costs 8 bytes per entity it holds.
 *
 * A block is (re)built when its version differs from the version it was
 * built at.  Ingest bumps the versions of every block containing the
 * event's minute, so a backfilled event simply makes the lists covering it
 * stale and the next query (or the next advance of the open minute)
 * rebuilds them.  Builds run either under the exclusive lock or under the
 * shared lock plus build_mu: never two at once, which is what makes the
 * shared scratch arrays safe.
 *
 * Order: change descending, and within equal changes cid ascending (cids
 * are unique within a service, and a block belongs to one service).
 * Sorting is an LSD radix sort on the 32-bit key ~(delta ^ sign) that skips
 * the byte passes in which every key agrees (changes are mostly small, so
 * typically one or two passes run), then a cid sort of each run of ties.
 */
#include "rank_internal.h"

#include <stdlib.h>
#include <string.h>

#include "tier_status.h"

/* ---- block vectors ---- */

static int bv_prepend(tier_rank *r, rank_blockvec *bv, int64_t no)
{
    uint32_t gap = (uint32_t)(bv->first - no);
    if (rank_reserve(r, (void **)&bv->v, &bv->cap, bv->n + gap, sizeof(rank_block *)) != 0)
        return -1;
    memmove(bv->v + gap, bv->v, (size_t)bv->n * sizeof(rank_block *));
    memset(bv->v, 0, (size_t)gap * sizeof(rank_block *));
    bv->n += gap;
    bv->first = no;
    return 0;
}

static int bv_extend(tier_rank *r, rank_blockvec *bv, int64_t no)
{
    uint32_t need = (uint32_t)(no - bv->first + 1);
    if (rank_reserve(r, (void **)&bv->v, &bv->cap, need, sizeof(rank_block *)) != 0)
        return -1;
    memset(bv->v + bv->n, 0, (size_t)(need - bv->n) * sizeof(rank_block *));
    bv->n = need;
    return 0;
}

static rank_block *block_new(tier_rank *r, int level, int64_t start)
{
    rank_block *b = rank_realloc(r, NULL, 0, sizeof(rank_block));
    if (b != NULL) {
        memset(b, 0, sizeof(*b));
        b->level = (uint8_t)level;
        b->start = start;
    }
    return b;
}

rank_block *rank_block_get(tier_rank *r, rank_blockvec *bv, int level, int64_t start, int create)
{
    int64_t no = start >> (2 * level);
    if (bv->n == 0 && create)
        bv->first = no;
    if (no < bv->first || no >= bv->first + bv->n) {
        if (!create)
            return NULL;
        if (no < bv->first ? bv_prepend(r, bv, no) != 0 : bv_extend(r, bv, no) != 0)
            return NULL;
    }
    rank_block **slot = &bv->v[no - bv->first];
    if (*slot == NULL && create)
        *slot = block_new(r, level, start);
    return *slot;
}

static void block_free(tier_rank *r, rank_block *b)
{
    if (b == NULL)
        return;
    rank_release(r, b->e, (size_t)b->cap * sizeof(rank_entry));
    rank_release(r, b, sizeof(*b));
}

void rank_blocks_expire(tier_rank *r, rank_blockvec *bv, int level, int64_t before)
{
    uint32_t k = 0;
    while (k < bv->n && ((bv->first + k) << (2 * level)) < before)
        block_free(r, bv->v[k++]);
    memmove(bv->v, bv->v + k, (size_t)(bv->n - k) * sizeof(rank_block *));
    bv->n -= k;
    bv->first += k;
}

void rank_blockvec_free(tier_rank *r, rank_blockvec *bv)
{
    for (uint32_t i = 0; i < bv->n; i++)
        block_free(r, bv->v[i]);
    rank_release(r, bv->v, (size_t)bv->cap * sizeof(rank_block *));
    memset(bv, 0, sizeof(*bv));
}

/* ---- sorting ---- */

static uint32_t sort_key(int32_t delta)
{
    return ~((uint32_t)delta ^ 0x80000000u); /* ascending key = descending delta */
}

static void insertion_sort(rank_entry *e, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        rank_entry x = e[i];
        uint32_t j = i;
        while (j > 0 && e[j - 1].delta < x.delta) {
            e[j] = e[j - 1];
            j--;
        }
        e[j] = x;
    }
}

static int radix_sort(rank_entry *e, uint32_t n)
{
    if (n < 64) {
        insertion_sort(e, n);
        return 0;
    }
    rank_entry *tmp = malloc((size_t)n * sizeof(rank_entry));
    if (tmp == NULL)
        return -1;
    rank_entry *src = e, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        uint32_t cnt[256] = {0};
        for (uint32_t i = 0; i < n; i++)
            cnt[(sort_key(src[i].delta) >> shift) & 255]++;
        if (cnt[(sort_key(src[0].delta) >> shift) & 255] == n)
            continue; /* every key has the same byte here */
        uint32_t sum = 0;
        for (int b = 0; b < 256; b++) {
            uint32_t c = cnt[b];
            cnt[b] = sum;
            sum += c;
        }
        for (uint32_t i = 0; i < n; i++)
            dst[cnt[(sort_key(src[i].delta) >> shift) & 255]++] = src[i];
        rank_entry *t = src;
        src = dst;
        dst = t;
    }
    if (src != e)
        memcpy(e, src, (size_t)n * sizeof(rank_entry));
    free(tmp);
    return 0;
}

/* Within each run of equal changes, orders entries by cid ascending, so the
 * query can bound the cid of an unseen entity that would tie (see
 * rank_query.c).  Runs are found after the radix sort by change. */
static int cmp_cid(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static int sort_runs_by_cid(const tier_rank *r, rank_entry *e, uint32_t n)
{
    int64_t *tmp = NULL;
    for (uint32_t lo = 0, hi; lo < n; lo = hi) {
        for (hi = lo + 1; hi < n && e[hi].delta == e[lo].delta; hi++)
            ;
        if (hi - lo < 2)
            continue;
        if (tmp == NULL && (tmp = malloc((size_t)n * 2 * sizeof(int64_t))) == NULL)
            return -1;
        for (uint32_t i = lo; i < hi; i++) {
            tmp[2 * (i - lo)] = r->ent[e[i].ent].cid;
            tmp[2 * (i - lo) + 1] = e[i].ent;
        }
        qsort(tmp, hi - lo, 2 * sizeof(int64_t), cmp_cid);
        for (uint32_t i = lo; i < hi; i++)
            e[i].ent = (uint32_t)tmp[2 * (i - lo) + 1];
    }
    free(tmp);
    return 0;
}

/* ---- building ---- */

static void build_leaf(tier_rank *r, rank_block *b)
{
    if (b->leaf) { /* a compacted granule: the difference across it */
        int64_t end = b->start + rank_level_len(b->level);
        for (uint32_t k = 0; k < b->n; k++) {
            const rank_entity *e = &r->ent[b->e[k].ent];
            uint32_t hi = rank_cum_before(e, end).delta, lo = rank_cum_before(e, b->start).delta;
            b->e[k].delta = (int32_t)(hi - lo);
        }
        return;
    }
    for (uint32_t k = 0; k < b->n; k++) {
        const rank_entity *e = &r->ent[b->e[k].ent];
        uint32_t i = rank_lower_bound(e, b->start); /* exists: see invariants */
        uint32_t prev = i > 0 ? e->c[i - 1].delta : 0;
        b->e[k].delta = (int32_t)(e->c[i].delta - prev);
    }
}

static uint32_t next_stamp(tier_rank *r)
{
    if (++r->cur_stamp == 0) {
        memset(r->stamp, 0, (size_t)r->scratch_cap * sizeof(uint32_t));
        r->cur_stamp = 1;
    }
    return r->cur_stamp;
}

/* Sums the children's lists into r->acc; returns the distinct count and
 * leaves the distinct entity ids in the first slots of `out` (sized by the
 * sum of the children's lengths). */
static uint32_t gather_children(tier_rank *r, rank_block *const kids[4], rank_entry *out)
{
    uint32_t st = next_stamp(r), m = 0;
    for (int c = 0; c < 4; c++) {
        if (kids[c] == NULL)
            continue;
        for (uint32_t k = 0; k < kids[c]->n; k++) {
            uint32_t id = kids[c]->e[k].ent;
            if (r->stamp[id] != st) {
                r->stamp[id] = st;
                r->acc[id] = 0;
                out[m++].ent = id;
            }
            r->acc[id] += kids[c]->e[k].delta;
        }
    }
    for (uint32_t k = 0; k < m; k++)
        out[k].delta = (int32_t)r->acc[out[k].ent];
    return m;
}

static int build_inner(tier_rank *r, rank_service *s, rank_block *b)
{
    rank_block *kids[4];
    int64_t step = rank_level_len(b->level - 1);
    uint64_t total = 0;
    for (int c = 0; c < 4; c++) {
        kids[c] = rank_block_get(r, &s->lv[b->level - 1], b->level - 1, b->start + c * step, 0);
        if (kids[c] != NULL && rank_block_ensure(r, s, kids[c]) != TIER_OK)
            return TIER_RESOURCE_EXHAUSTED;
        total += kids[c] ? kids[c]->n : 0;
    }
    uint32_t cap = (uint32_t)(total ? total : 1);
    rank_entry *out = rank_realloc(r, NULL, 0, (size_t)cap * sizeof(rank_entry));
    if (out == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    uint32_t m = gather_children(r, kids, out);
    /* shrink to fit: blocks are written once and read many times */
    uint32_t fitcap = m ? m : 1;
    rank_entry *fit =
        rank_realloc(r, out, (size_t)cap * sizeof(rank_entry), (size_t)fitcap * sizeof(rank_entry));
    if (fit != NULL) {
        out = fit;
        cap = fitcap;
    }
    rank_release(r, b->e, (size_t)b->cap * sizeof(rank_entry));
    b->e = out;
    b->n = m;
    b->cap = cap;
    return TIER_OK;
}

int rank_block_ensure(tier_rank *r, rank_service *s, rank_block *b)
{
    if (b->built && b->built_version == b->version)
        return TIER_OK;
    uint32_t version = b->version;
    if (b->level == 0 || b->leaf)
        build_leaf(r, b);
    else if (build_inner(r, s, b) != TIER_OK)
        return TIER_RESOURCE_EXHAUSTED;
    if (radix_sort(b->e, b->n) != 0 || sort_runs_by_cid(r, b->e, b->n) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    b->built = 1;
    b->built_version = version;
    return TIER_OK;
}

/* Builds every block whose end lies in (old_open, new_open]: they just
 * became complete.  Called under the exclusive lock. */
int rank_build_completed(tier_rank *r, int64_t old_open, int64_t new_open)
{
    int rc = TIER_OK;
    for (uint32_t si = 0; si < r->nsvc; si++) {
        rank_service *s = &r->svc[si];
        for (int l = 0; l < r->nlevels; l++) {
            rank_blockvec *bv = &s->lv[l];
            int64_t len = rank_level_len(l);
            int64_t lo = old_open / len, hi = new_open / len - 1;
            if (lo < bv->first)
                lo = bv->first;
            if (hi > bv->first + bv->n - 1)
                hi = bv->first + bv->n - 1;
            for (int64_t no = lo; no <= hi; no++) {
                rank_block *b = bv->v[no - bv->first];
                if (b != NULL && rank_block_ensure(r, s, b) != TIER_OK)
                    rc = TIER_RESOURCE_EXHAUSTED;
            }
        }
    }
    return rc;
}
