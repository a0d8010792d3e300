/*
 * rank_query.c -- exact top-K over a window: Fagin's Threshold Algorithm.
 *
 * The window [from, to) is cut into the fewest aligned complete blocks
 * (greedy: at each minute take the largest level whose block starts there
 * and fits, so at most ~6 blocks per level) plus the open minute, whose
 * level-0 list is (re)sorted on demand like any other block.  Each block of
 * each queried service is one sorted list of (entity, change).
 *
 * TA reads the lists round-robin from the good end (largest changes first
 * for INCREASE, smallest for DECREASE).  Each entity met for the first time
 * gets its exact window sum by random access (two binary searches in its
 * cumulative vector) and competes for the `limit` slots of a heap whose
 * root is the worst kept row.
 *
 * Why stopping is safe: an entity not yet met belongs to one service s; in
 * each list of s it either sits at or after the read position (so its
 * change there is <= the next unread value) or is absent (its change in
 * that block is exactly 0).  Its window sum is therefore at most
 *      T_s = sum over lists j of s of max(next_j, 0)   (exhausted lists: 0)
 * and T = max over services with an unexhausted list of T_s.  Once the heap
 * is full and its worst row is STRICTLY better than T, nobody unseen can
 * enter -- not even on a tie, where a smaller cid would win; hence the
 * strictness.  When every list is exhausted every candidate was seen.
 * DECREASE mirrors it with min(next, 0), min over services.  Taking the max
 * per service rather than one sum over all lists keeps "all services"
 * queries as sharp as single-service ones.
 *
 * Ties: a worst row EQUAL to T would force reading every tied entry.
 * Lists order ties by cid ascending in reading order, which bounds the cid
 * of an unseen entity that could reach T exactly (see threshold()); when
 * that bound exceeds the worst row's cid, ties cannot displace it either.
 *
 * Paging (tier_rank_top_after): with a key K, candidates at or before K in
 * the ranking order are never offered (offer()), so the heap holds the best
 * `limit` rows after K among those seen.  Every stopping rule here argues
 * only "an unseen entity cannot be better than the worst kept row w": that
 * bound is about the entity's sum and cid, not about K, so it still holds;
 * an unseen entity that is at or before K could not enter anyway.  And
 * while the heap is not full, no rule stops before every list is read.  So
 * the answer is exactly the first `limit` rows after K.  Deep pages cost
 * more reading: page p of k rows fills its heap only after about p * k
 * candidates were met.
 *
 * DECREASE is not symmetric to INCREASE in practice: over hours fewer than
 * `limit` contents lose comments, and the answer is padded with the
 * smallest cids whose change is exactly 0, then the smallest positive
 * changes.  T cannot rise above 0, so TA alone would read nearly every
 * list to the end.  run_decrease() runs TA on the negative entries only and
 * then merges the remaining entries of all lists in ranking order.
 *
 * Compacted history (rank_compact.c): the window's edges inside compacted
 * granules become a fringe whose per-content sums come from outside; the
 * blocks cover the aligned inner window [from, to) of ta_query, the fringe
 * is one more list per service (entities absent from it have 0 there, so
 * every bound above holds unchanged) and random access adds its sums.
 * Whether a part was read directly or through its complement (the shorter
 * side of its granule) does not matter here: the view holds the part's own
 * sums either way, and only contents with an event in it.
 */
#include "rank_internal.h"

#include <stdlib.h>
#include <string.h>

#include "tier_status.h"

#define TA_STEP 16

/* pos counts the entries read; cur is the array index of the next one.
 * INCREASE reads e[] forwards.  DECREASE reads the runs of equal change
 * from the last run to the first, each run forwards, [run_lo, run_hi), so
 * that both orders meet ties by cid ascending. */
typedef struct {
    const rank_entry *e;
    uint32_t n, pos, svc;
    uint32_t cur, run_lo, run_hi;
    const rank_entry *full; /* DECREASE: the whole block list ... */
    uint32_t nonneg;        /* ... whose entries [0, nonneg) are >= 0 */
    int64_t hcid;           /* DECREASE: cid of e[cur], see merge_nonnegative() */
} ta_list;

typedef struct {
    int64_t sum;
    uint32_t ent;
} ta_cand;

typedef struct {
    tier_rank *r;
    int dec;
    int64_t from, to;
    uint32_t svc_lo, svc_hi; /* queried services: [svc_lo, svc_hi) */
    ta_list *lists;
    uint32_t nlists, lists_cap;
    ta_cand *heap;
    uint32_t nheap, limit;
    uint32_t *seen; /* open addressing set of entity ids, RANK_NONE empty */
    uint32_t seen_mask, nseen;
    uint64_t *bits;  /* DECREASE: the seen set as a bitmap over entity ids */
    uint32_t *batch; /* DECREASE: fresh entity ids awaiting their sums */
    uint32_t *mheap; /* DECREASE: merge_nonnegative()'s heap of list indices */
    uint64_t nread;  /* entries read so far */
    int64_t *tsum;
    uint8_t *talive;
    int64_t *strict_max, *zero_min; /* cid bounds for ties, see tie_blocked() */
    uint8_t *nstrict, *nzero;
    const tier_rank_key *after; /* paging: only rows strictly after it, see offer() */
    const rank_fringe_view *fv; /* NULL: no fringe */
} ta_query;

/* ---- ordering ---- */

static int better(const ta_query *q, const ta_cand *a, const ta_cand *b)
{
    if (a->sum != b->sum)
        return q->dec ? a->sum < b->sum : a->sum > b->sum;
    const rank_entity *ea = &q->r->ent[a->ent], *eb = &q->r->ent[b->ent];
    if (ea->cid != eb->cid)
        return ea->cid < eb->cid;
    return strcmp(q->r->svc[ea->svc].name, q->r->svc[eb->svc].name) < 0;
}

static void swap_cand(ta_cand *a, ta_cand *b)
{
    ta_cand t = *a;
    *a = *b;
    *b = t;
}

/* The heap keeps its worst candidate at the root. */
static void sift_down(const ta_query *q, ta_cand *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t w = i, l = 2 * i + 1, rr = l + 1;
        if (l < n && better(q, &h[w], &h[l]))
            w = l;
        if (rr < n && better(q, &h[w], &h[rr]))
            w = rr;
        if (w == i)
            return;
        swap_cand(&h[i], &h[w]);
        i = w;
    }
}

/* Whether c comes strictly after the paging key (always, without one). */
static int after_key(const ta_query *q, const ta_cand *c)
{
    if (q->after == NULL)
        return 1;
    const rank_entity *e = &q->r->ent[c->ent];
    tier_rank_row row = {.service = q->r->svc[e->svc].name, .cid = e->cid, .change = c->sum};
    return tier_rank_row_after(&row, q->after, q->dec, 0);
}

static void offer(ta_query *q, ta_cand c)
{
    if (!after_key(q, &c))
        return;
    if (q->nheap < q->limit) {
        uint32_t i = q->nheap++;
        q->heap[i] = c;
        while (i > 0 && better(q, &q->heap[(i - 1) / 2], &q->heap[i])) {
            swap_cand(&q->heap[(i - 1) / 2], &q->heap[i]);
            i = (i - 1) / 2;
        }
    } else if (better(q, &c, &q->heap[0])) {
        q->heap[0] = c;
        sift_down(q, q->heap, q->nheap, 0);
    }
}

/* ---- seen set ---- */

static uint32_t id_hash(uint32_t id)
{
    return id * 0x9E3779B1u;
}

static int seen_grow(ta_query *q)
{
    uint32_t ncap = q->seen ? (q->seen_mask + 1) * 2 : 1024;
    uint32_t *ns = malloc((size_t)ncap * sizeof(uint32_t));
    if (ns == NULL)
        return -1;
    memset(ns, 0xff, (size_t)ncap * sizeof(uint32_t));
    for (uint32_t i = 0; q->seen && i <= q->seen_mask; i++) {
        uint32_t id = q->seen[i];
        if (id == RANK_NONE)
            continue;
        uint32_t j = id_hash(id) & (ncap - 1);
        while (ns[j] != RANK_NONE)
            j = (j + 1) & (ncap - 1);
        ns[j] = id;
    }
    free(q->seen);
    q->seen = ns;
    q->seen_mask = ncap - 1;
    return 0;
}

/* 1 when id was new, 0 when already seen, -1 on allocation failure. */
static int seen_insert(ta_query *q, uint32_t id)
{
    if (q->bits != NULL) {
        uint64_t m = (uint64_t)1 << (id & 63);
        if (q->bits[id >> 6] & m)
            return 0;
        q->bits[id >> 6] |= m;
        q->nseen++;
        return 1;
    }
    if ((q->nseen + 1) * 2 > q->seen_mask + 1 && seen_grow(q) != 0)
        return -1;
    uint32_t j = id_hash(id) & q->seen_mask;
    while (q->seen[j] != RANK_NONE) {
        if (q->seen[j] == id)
            return 0;
        j = (j + 1) & q->seen_mask;
    }
    q->seen[j] = id;
    q->nseen++;
    return 1;
}

/* ---- lists ---- */

/* DECREASE: moves to the run of equal change that ends at run_hi. */
static void list_next_run(ta_list *l)
{
    if (l->run_hi == 0)
        return;
    int32_t v = l->e[l->run_hi - 1].delta;
    uint32_t lo = 0, hi = l->run_hi - 1; /* first index with delta <= v */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (l->e[mid].delta > v)
            lo = mid + 1;
        else
            hi = mid;
    }
    l->run_lo = l->cur = lo;
}

static void list_advance(const ta_query *q, ta_list *l)
{
    l->pos++;
    l->cur++;
    if (q->dec && l->cur == l->run_hi) {
        l->run_hi = l->run_lo;
        list_next_run(l);
    }
}

/* Makes l read e[0..n) from the start (INCREASE) or from its last run
 * (DECREASE). */
static void list_reset(const ta_query *q, ta_list *l, const rank_entry *e, uint32_t n)
{
    l->e = e;
    l->n = n;
    l->pos = 0;
    l->run_hi = n;
    l->run_lo = l->cur = 0;
    if (q->dec)
        list_next_run(l);
}

/* Index of the first entry with a negative change (n when none). */
static uint32_t first_negative(const rank_entry *e, uint32_t n)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e[mid].delta >= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Adds e[0..n) (sorted like a block) as a list of service svc. */
static int add_entries(ta_query *q, uint32_t svc, const rank_entry *e, uint32_t n)
{
    if (n == 0)
        return TIER_OK;
    if (q->nlists == q->lists_cap) {
        uint32_t nc = q->lists_cap ? q->lists_cap * 2 : 32;
        ta_list *nl = realloc(q->lists, (size_t)nc * sizeof(ta_list));
        if (nl == NULL)
            return TIER_RESOURCE_EXHAUSTED;
        q->lists = nl;
        q->lists_cap = nc;
    }
    ta_list *l = &q->lists[q->nlists++];
    l->svc = svc;
    l->full = e;
    l->nonneg = q->dec ? first_negative(e, n) : n;
    if (q->dec) /* phase 1 reads only the negative tail, see run_decrease() */
        list_reset(q, l, e + l->nonneg, n - l->nonneg);
    else
        list_reset(q, l, e, n);
    return TIER_OK;
}

static int add_list(ta_query *q, uint32_t svc, int level, int64_t start)
{
    rank_service *s = &q->r->svc[svc];
    rank_block *b = rank_block_get(q->r, &s->lv[level], level, start, 0);
    if (b == NULL)
        return TIER_OK;
    if (rank_block_ensure(q->r, s, b) != TIER_OK)
        return TIER_RESOURCE_EXHAUSTED;
    return add_entries(q, svc, b->e, b->n);
}

/* The fringe's list of each queried service. */
static int add_fringe(ta_query *q)
{
    const rank_fringe_view *v = q->fv;
    for (uint32_t s = q->svc_lo; v != NULL && s < q->svc_hi; s++) {
        uint32_t lo = v->off[s - q->svc_lo], hi = v->off[s - q->svc_lo + 1];
        if (add_entries(q, s, v->list + lo, hi - lo) != TIER_OK)
            return TIER_RESOURCE_EXHAUSTED;
    }
    return TIER_OK;
}

static int add_block_all(ta_query *q, int level, int64_t start)
{
    for (uint32_t s = q->svc_lo; s < q->svc_hi; s++)
        if (add_list(q, s, level, start) != TIER_OK)
            return TIER_RESOURCE_EXHAUSTED;
    return TIER_OK;
}

/* Cuts [a, b) (complete minutes) into aligned blocks, plus the open minute
 * when the window holds it.  Runs under build_mu. */
static int collect_lists(ta_query *q, int64_t a, int64_t b)
{
    tier_rank *r = q->r;
    for (int64_t m = a; m < b;) {
        int l = 0;
        while (l + 1 < r->nlevels && m % rank_level_len(l + 1) == 0 &&
               m + rank_level_len(l + 1) <= b)
            l++;
        if (add_block_all(q, l, m) != TIER_OK)
            return TIER_RESOURCE_EXHAUSTED;
        m += rank_level_len(l);
    }
    if (r->open >= q->from && r->open < q->to && r->open >= r->expired &&
        add_block_all(q, 0, r->open) != TIER_OK)
        return TIER_RESOURCE_EXHAUSTED;
    return add_fringe(q);
}

/* ---- the algorithm ---- */

static int64_t window_sum(const ta_query *q, uint32_t ent)
{
    const rank_entity *e = &q->r->ent[ent];
    uint32_t hi = rank_cum_before(e, q->to).delta, lo = rank_cum_before(e, q->from).delta;
    const rank_fringe_sum *f = q->fv ? rank_fringe_lookup(q->fv, ent) : NULL;
    return (int32_t)(hi - lo) + (f ? f->delta : 0);
}

static int read_list(ta_query *q, ta_list *l, uint32_t count)
{
    for (; count > 0 && l->pos < l->n; count--, list_advance(q, l), q->nread++) {
        uint32_t ent = l->e[l->cur].ent;
        int fresh = seen_insert(q, ent);
        if (fresh < 0)
            return TIER_RESOURCE_EXHAUSTED;
        if (fresh) {
            ta_cand c = {window_sum(q, ent), ent};
            offer(q, c);
        }
    }
    return TIER_OK;
}

static void threshold_list(ta_query *q, const ta_list *l)
{
    uint32_t s = l->svc - q->svc_lo;
    int64_t v = l->e[l->cur].delta, cid = q->r->ent[l->e[l->cur].ent].cid;
    q->talive[s] = 1;
    if (v != 0 && (v < 0) == q->dec) { /* a strictly useful next value */
        q->tsum[s] += v;
        if (!q->nstrict[s] || cid > q->strict_max[s])
            q->strict_max[s] = cid;
        q->nstrict[s] = 1;
    } else if (v == 0) {
        if (!q->nzero[s] || cid < q->zero_min[s])
            q->zero_min[s] = cid;
        q->nzero[s] = 1;
    }
}

/* Per service s with unread entries: T_s, the bound on the sum of an unseen
 * entity of s.  An unseen entity X whose sum EQUALS T_s takes the next value
 * of every list whose next value counts (so it sits in that list's current
 * run, whose cids ascend: cid(X) >= each such list's next cid) and 0 in the
 * others -- being in the window it is then in some list's run of zeros:
 * cid(X) >= the smallest next cid among lists whose next value is 0. */
static void threshold(ta_query *q)
{
    uint32_t ns = q->svc_hi - q->svc_lo;
    memset(q->tsum, 0, ns * sizeof(int64_t));
    memset(q->talive, 0, ns);
    memset(q->nstrict, 0, ns);
    memset(q->nzero, 0, ns);
    for (uint32_t j = 0; j < q->nlists; j++)
        if (q->lists[j].pos < q->lists[j].n)
            threshold_list(q, &q->lists[j]);
}

/* Can an unseen entity of service s still displace the worst kept row w? */
static int may_enter(const ta_query *q, uint32_t s, const ta_cand *w)
{
    int64_t t = q->tsum[s], wcid = q->r->ent[w->ent].cid;
    if (t != w->sum)
        return q->dec ? t < w->sum : t > w->sum;
    if (q->nstrict[s])
        return q->strict_max[s] <= wcid; /* equal cid: other service, be safe */
    if (q->nzero[s])
        return q->zero_min[s] <= wcid;
    return 0;
}

/* 1 when the answer is final. */
static int done(ta_query *q)
{
    threshold(q);
    uint32_t ns = q->svc_hi - q->svc_lo;
    for (uint32_t s = 0; s < ns; s++) {
        if (!q->talive[s])
            continue;
        if (q->nheap < q->limit || may_enter(q, s, &q->heap[0]))
            return 0;
    }
    return 1;
}

/* Whether reading list l can still reveal an entity that enters the heap.
 * Once the heap is full with worst row w, an entity all of whose unread
 * entries are 0 or of the wrong sign (negative for INCREASE, positive for
 * DECREASE) has a sum on the wrong side of 0, or exactly 0 and then a cid
 * >= the zero entry's (ties ascend by cid).  Entities with a useful entry
 * elsewhere are found through that list, so l may be skipped while its next
 * value cannot help: wrong sign unless w itself is on the wrong side of 0;
 * zero unless w is 0 with a cid not below the next one. */
static int worth_reading(const ta_query *q, const ta_list *l)
{
    if (l->pos >= l->n || q->nheap < q->limit)
        return 1;
    int64_t v = l->e[l->cur].delta, w = q->heap[0].sum;
    if (v != 0 && (v < 0) == q->dec)
        return 1; /* a useful value */
    if (q->dec ? w > 0 : w < 0)
        return 1; /* w itself is on the wrong side: anything may beat it */
    if (v != 0 || w != 0)
        return 0;
    return q->r->ent[l->e[l->cur].ent].cid <= q->r->ent[q->heap[0].ent].cid;
}

/* Round-robin TA reads until the answer is settled (*settled = 1) or
 * max_reads entries have been read (*settled = 0). */
static int ta_rounds(ta_query *q, uint64_t max_reads, int *settled)
{
    *settled = 0;
    for (;;) {
        for (uint32_t j = 0; j < q->nlists; j++)
            if (worth_reading(q, &q->lists[j]) && read_list(q, &q->lists[j], TA_STEP) != TIER_OK)
                return TIER_RESOURCE_EXHAUSTED;
        if (done(q)) {
            *settled = 1;
            return TIER_OK;
        }
        if (q->nread >= max_reads)
            return TIER_OK;
    }
}

static int run_ta(ta_query *q)
{
    int settled;
    return ta_rounds(q, UINT64_MAX, &settled);
}

/* ---- DECREASE ---- */

/* DECREASE runs in three phases over one pass of reading.
 *
 * Phase 1 is the threshold algorithm on the negative tails of the lists
 * only (add_list() cut them there).  An entity whose window sum is negative
 * has a negative change in at least one block, so it is in some tail; the
 * bound T_s of the file comment holds unchanged (an unseen entity is at or
 * after the read position of every tail it is in, and contributes >= 0
 * elsewhere).  If the heap fills with rows strictly better than T_s the
 * answer is final, and its worst row is negative.
 *
 * Over long windows it is not: a content that got a comment in one block
 * and lost it in a later one has a negative entry, so the tails are long
 * (the benchmark's 360-minute window: 46,000 entries, 42,000 contents),
 * while fewer than `limit` contents have a negative SUM.  T_s stays below
 * the worst row until nearly every tail is exhausted, so after a few times
 * `limit` reads TA gives up and the rest of the tails is read in bulk,
 * which skips TA's bookkeeping and computes the sums with prefetching (two
 * cache misses per content, overlapped).  Either way every entity with a
 * negative entry ends up with its exact sum, whatever that sum is.
 *
 * If the heap is then full and its worst row negative, nobody unseen (sum
 * >= 0) can enter: done.  Else the lists' non-negative parts are merged in
 * ranking order (merge_nonnegative(): zeros by cid, which is phase 2, then
 * positives ascending, phase 3) until the worst row beats the stream.
 *
 * This replaces reading the zero runs round-robin under the T_s bound,
 * which could only stop once every list had passed the worst cid. */

/* TA needs `limit` reads to fill the heap at all; when a few times that
 * did not settle the answer, the tails are long and read in bulk. */
#define PHASE1_TA_READS(limit) (16 + 4 * (uint64_t)(limit))
#define MERGE_CHUNK_MIN 64
#define MERGE_CHUNK_MAX 1024
#define PREFETCH_AHEAD 12

/* Offers ids[0..n) with their exact window sums.  The loop prefetches the
 * entity records PREFETCH_AHEAD ids ahead and their cumulative vectors half
 * as far ahead, so the misses of consecutive ids overlap. */
static void offer_batch(ta_query *q, const uint32_t *ids, uint32_t n)
{
    const rank_entity *ent = q->r->ent;
    for (uint32_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n)
            __builtin_prefetch(&ent[ids[i + PREFETCH_AHEAD]]);
        if (i + PREFETCH_AHEAD / 2 < n) {
            const rank_entity *e = &ent[ids[i + PREFETCH_AHEAD / 2]];
            if (e->n > 0) {
                __builtin_prefetch(e->c);
                __builtin_prefetch(&e->c[e->n - 1]);
            }
        }
        ta_cand c = {window_sum(q, ids[i]), ids[i]};
        offer(q, c);
    }
}

/* Phase 1: TA on the negative tails, then the rest of them in bulk. */
static int read_negative(ta_query *q)
{
    int settled;
    if (ta_rounds(q, PHASE1_TA_READS(q->limit), &settled) != TIER_OK)
        return TIER_RESOURCE_EXHAUSTED;
    if (settled)
        return TIER_OK;
    /* Unread entries of a tail: [0, run_lo) and [cur, run_hi), see ta_list. */
    uint32_t nb = 0;
    for (uint32_t j = 0; j < q->nlists; j++) {
        ta_list *l = &q->lists[j];
        if (l->pos >= l->n)
            continue;
        for (uint32_t k = 0; k < l->run_lo; k++)
            if (seen_insert(q, l->e[k].ent) == 1)
                q->batch[nb++] = l->e[k].ent;
        for (uint32_t k = l->cur; k < l->run_hi; k++)
            if (seen_insert(q, l->e[k].ent) == 1)
                q->batch[nb++] = l->e[k].ent;
        q->nread += l->n - l->pos;
        l->pos = l->n;
    }
    offer_batch(q, q->batch, nb);
    return TIER_OK;
}

/* The merge orders lists by their next entry: change ascending, then cid,
 * then service name.  hcid caches the next entry's cid. */
static void list_cache_head(const ta_query *q, ta_list *l)
{
    const rank_entity *ent = q->r->ent;
    if (l->cur + PREFETCH_AHEAD < l->run_hi)
        __builtin_prefetch(&ent[l->e[l->cur + PREFETCH_AHEAD].ent]);
    l->hcid = ent[l->e[l->cur].ent].cid;
}

static int head_less(const ta_query *q, const ta_list *a, const ta_list *b)
{
    int32_t da = a->e[a->cur].delta, db = b->e[b->cur].delta;
    if (da != db)
        return da < db;
    if (a->hcid != b->hcid)
        return a->hcid < b->hcid;
    return strcmp(q->r->svc[a->svc].name, q->r->svc[b->svc].name) < 0;
}

static void merge_sift(const ta_query *q, uint32_t *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t m = i, l = 2 * i + 1, rr = l + 1;
        if (l < n && head_less(q, &q->lists[h[l]], &q->lists[h[m]]))
            m = l;
        if (rr < n && head_less(q, &q->lists[h[rr]], &q->lists[h[m]]))
            m = rr;
        if (m == i)
            return;
        uint32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Phases 2 and 3: reads the non-negative parts of all the lists as ONE
 * stream in ranking order -- change ascending, then cid, then service -- by
 * merging the lists' read orders (each list reads its run of zeros first,
 * then its positive runs from the smallest up, each run by cid ascending),
 * and stops once the worst kept row is strictly better than the next entry
 * of the stream.
 *
 * Why that is safe: it runs only after phase 1 read every negative entry,
 * so an entity X not yet seen has no negative entry anywhere and its window
 * sum is at least its change in any one list.  X has an event in the window,
 * so it is in at least one list j, at or after j's read position, hence
 *     (sum(X), cid(X)) >= (change_j(X), cid(X)) >= (next_j, cid(next_j))
 * in ranking order (within a run cids ascend; a later run has a larger
 * change).  On equality of change and cid X is the next entry of j itself
 * (same service, cids are unique in it).  So key(X) >= the head of the
 * merged stream, and a worst row strictly better than the head keeps
 * everyone unseen out -- ties included, since the comparison is the full
 * ranking order.  When the stream runs dry every candidate was seen.
 *
 * The zeros come first, in cid order: a window where fewer than `limit`
 * contents lost comments is padded with the smallest cids whose change is
 * exactly 0, and a zero-sum entity with no negative entry has 0 in every
 * list it is in.  Entities met here with a positive sum are offered too:
 * they are real candidates, and they are marked seen so the positive runs
 * do not offer them again.
 *
 * The stream is consumed in chunks of fresh entities whose sums are then
 * computed together (offer_batch()), checking the stopping rule between
 * chunks: offering more candidates than needed never changes the answer,
 * it only costs the overshoot, so chunks start small and grow. */
static int merge_nonnegative(ta_query *q)
{
    uint32_t *h = q->mheap, hn = 0;
    for (uint32_t j = 0; j < q->nlists; j++) {
        if (q->lists[j].pos < q->lists[j].n) {
            list_cache_head(q, &q->lists[j]);
            h[hn++] = j;
        }
    }
    for (uint32_t i = hn / 2; i-- > 0;)
        merge_sift(q, h, hn, i);
    for (uint32_t chunk = MERGE_CHUNK_MIN; hn > 0;) {
        if (q->nheap == q->limit) {
            const ta_list *l = &q->lists[h[0]];
            ta_cand head = {l->e[l->cur].delta, l->e[l->cur].ent};
            if (better(q, &q->heap[0], &head))
                return TIER_OK;
        }
        uint32_t nb = 0;
        while (hn > 0 && nb < chunk) {
            ta_list *l = &q->lists[h[0]];
            uint32_t id = l->e[l->cur].ent;
            int fresh = seen_insert(q, id);
            if (fresh < 0)
                return TIER_RESOURCE_EXHAUSTED;
            if (fresh)
                q->batch[nb++] = id;
            list_advance(q, l);
            q->nread++;
            if (l->pos < l->n)
                list_cache_head(q, l);
            else
                h[0] = h[--hn];
            merge_sift(q, h, hn, 0);
        }
        offer_batch(q, q->batch, nb);
        if (chunk < MERGE_CHUNK_MAX)
            chunk *= 2;
    }
    return TIER_OK;
}

static int run_decrease(ta_query *q)
{
    uint64_t words = ((uint64_t)q->r->nent + 63) / 64, ntail = MERGE_CHUNK_MAX;
    for (uint32_t j = 0; j < q->nlists; j++)
        ntail += q->lists[j].n;
    q->bits = calloc(words ? words : 1, sizeof(uint64_t));
    q->batch = malloc(ntail * sizeof(uint32_t));
    q->mheap = malloc(((size_t)q->nlists + 1) * sizeof(uint32_t));
    if (q->bits == NULL || q->batch == NULL || q->mheap == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if (read_negative(q) != TIER_OK)
        return TIER_RESOURCE_EXHAUSTED;
    if (q->nheap == q->limit && q->heap[0].sum < 0)
        return TIER_OK;
    for (uint32_t j = 0; j < q->nlists; j++)
        list_reset(q, &q->lists[j], q->lists[j].full, q->lists[j].nonneg);
    return merge_nonnegative(q);
}

static void fill_rows(ta_query *q, tier_rank_row *rows, size_t *nrows)
{
    uint32_t n = q->nheap;
    /* heapsort: popping the worst to the back leaves best-first order */
    for (uint32_t end = n; end > 1; end--) {
        swap_cand(&q->heap[0], &q->heap[end - 1]);
        sift_down(q, q->heap, end - 1, 0);
    }
    for (uint32_t i = 0; i < n; i++) {
        const rank_entity *e = &q->r->ent[q->heap[i].ent];
        rank_cum hi = rank_cum_before(e, q->to), lo = rank_cum_before(e, q->from);
        rows[i].service = q->r->svc[e->svc].name;
        rows[i].cid = e->cid;
        rows[i].change = (int32_t)(hi.delta - lo.delta);
        rows[i].created = (int32_t)(hi.created - lo.created);
        rows[i].deleted = (int32_t)(hi.deleted - lo.deleted);
        rows[i].restored = (int32_t)(hi.restored - lo.restored);
        rows[i].hot = 0;
        const rank_fringe_sum *f = q->fv ? rank_fringe_lookup(q->fv, q->heap[i].ent) : NULL;
        if (f != NULL) {
            rows[i].change += f->delta;
            rows[i].created += f->created;
            rows[i].deleted += f->deleted;
            rows[i].restored += f->restored;
        }
    }
    *nrows = n;
}

static int find_service(const tier_rank *r, const char *name, uint32_t *lo, uint32_t *hi)
{
    if (name == NULL || name[0] == '\0') {
        *lo = 0;
        *hi = r->nsvc;
        return 1;
    }
    for (uint32_t i = 0; i < r->nsvc; i++) {
        if (strcmp(r->svc[i].name, name) == 0) {
            *lo = i;
            *hi = i + 1;
            return 1;
        }
    }
    return 0;
}

static int query_run(ta_query *q, tier_rank_row *rows, size_t *nrows)
{
    tier_rank *r = q->r;
    uint32_t ns = q->svc_hi - q->svc_lo;
    q->heap = malloc((size_t)q->limit * sizeof(ta_cand));
    q->tsum = malloc((size_t)ns * sizeof(int64_t));
    q->talive = malloc(ns);
    q->strict_max = malloc((size_t)ns * sizeof(int64_t));
    q->zero_min = malloc((size_t)ns * sizeof(int64_t));
    q->nstrict = malloc(ns);
    q->nzero = malloc(ns);
    if (q->heap == NULL || q->tsum == NULL || q->talive == NULL || q->strict_max == NULL ||
        q->zero_min == NULL || q->nstrict == NULL || q->nzero == NULL ||
        (!q->dec && seen_grow(q) != 0))
        return TIER_RESOURCE_EXHAUSTED;
    pthread_mutex_lock(&r->build_mu);
    int rc = collect_lists(q, q->from, q->to < r->open ? q->to : r->open);
    pthread_mutex_unlock(&r->build_mu);
    if (rc == TIER_OK)
        rc = q->dec ? run_decrease(q) : run_ta(q);
    if (rc == TIER_OK)
        fill_rows(q, rows, nrows);
    return rc;
}

/* The fringe parts the window needs now (0 when none), under the lock. */
static int window_fringe(const ta_query *q, rank_fringe_part p[2], int64_t *a, int64_t *b)
{
    const tier_rank *r = q->r;
    int64_t from = q->from < r->expired ? r->expired : q->from;
    *a = from;
    *b = q->to;
    if (r->open < 0 || from >= q->to)
        return 0;
    return rank_fringe_ranges(r, from, q->to, p, a, b);
}

static int parts_equal(const rank_fringe_part *x, const rank_fringe_part *y, int n)
{
    for (int i = 0; i < n; i++)
        if (x[i].lo != y[i].lo || x[i].hi != y[i].hi || x[i].gs != y[i].gs ||
            x[i].comp != y[i].comp)
            return 0;
    return 1;
}

/* f[i]: the fringe fetched for part p[i], i < np (unused when np is 0);
 * TIER_ABORTED when the window needs other parts now. */
static int query_locked(ta_query *q, const char *service, tier_rank_fringe *const *f,
                        const rank_fringe_part *p, int np, tier_rank_row *rows, size_t *nrows)
{
    tier_rank *r = q->r;
    rank_fringe_part now[2];
    int64_t a, b;
    int nnow = window_fringe(q, now, &a, &b);
    if (nnow != np || !parts_equal(now, p, np))
        return TIER_ABORTED;
    if (r->open < 0 || !find_service(r, service, &q->svc_lo, &q->svc_hi) || q->svc_lo == q->svc_hi)
        return TIER_OK;
    if (q->from < r->expired)
        q->from = r->expired;
    if (q->from >= q->to)
        return TIER_OK;
    rank_fringe_view fv;
    memset(&fv, 0, sizeof(fv));
    int rc = TIER_OK;
    if (np > 0 && (rc = rank_fringe_resolve(r, f, p, np, q->svc_lo, q->svc_hi, &fv)) == TIER_OK)
        q->fv = &fv;
    q->from = a; /* the blocks cover the inner window only */
    q->to = b;
    if (rc == TIER_OK)
        rc = query_run(q, rows, nrows);
    rank_fringe_view_free(&fv);
    return rc;
}

static void query_free(ta_query *q)
{
    free(q->lists);
    free(q->heap);
    free(q->seen);
    free(q->bits);
    free(q->batch);
    free(q->mheap);
    free(q->tsum);
    free(q->talive);
    free(q->strict_max);
    free(q->zero_min);
    free(q->nstrict);
    free(q->nzero);
    memset(q, 0, sizeof(*q));
}

/* Asks the provider for the minutes of each part p[i] into f[i] (the part
 * itself, or its complement: rank_fringe_fetch_ranges()).  g: the granule
 * the parts were derived with. */
static int fetch_fringe(tier_rank *r, const char *service, const rank_fringe_part *p, int np,
                        int64_t g, tier_rank_fringe *const *f)
{
    if (r->fringe_fn == NULL)
        return TIER_FAILED_PRECONDITION;
    for (int i = 0; i < np; i++) {
        int64_t rg[2][2];
        int nrg = rank_fringe_fetch_ranges(&p[i], g, rg);
        rank_fringe_clear(f[i]);
        for (int k = 0; k < nrg; k++) {
            int rc = r->fringe_fn(r->fringe_ctx, service, rg[k][0], rg[k][1], f[i]);
            if (rc != TIER_OK)
                return rc;
        }
    }
    return TIER_OK;
}

#define FRINGE_TRIES 4

int tier_rank_top(tier_rank *r, const char *service, int64_t from_minute, int64_t to_minute,
                  int decrease, uint32_t limit, tier_rank_row *rows, size_t *nrows)
{
    if (limit > TIER_RANK_LIMIT_MAX)
        return TIER_INVALID_ARGUMENT;
    return tier_rank_top_after(r, service, from_minute, to_minute, decrease, NULL, limit, rows,
                               nrows);
}

/*
 * Two phases when the window has a fringe: the parts (their minutes and
 * which side of the granule is read) are derived under the lock, fetched
 * without it (a database read must not hold off ingest), and the query
 * proper re-derives them under the lock; if the horizon moved meanwhile
 * (once per granule at most) it fetches again.  A complement is turned
 * into the part's sums under that same lock, from the granule totals the
 * index holds then.
 */
int tier_rank_top_after(tier_rank *r, const char *service, int64_t from_minute, int64_t to_minute,
                        int decrease, const tier_rank_key *after, uint32_t limit,
                        tier_rank_row *rows, size_t *nrows)
{
    if (r == NULL || rows == NULL || nrows == NULL || from_minute >= to_minute ||
        to_minute - from_minute > r->retention || limit == 0 || limit > TIER_RANK_LIMIT_MAX + 1 ||
        (after != NULL && after->service == NULL))
        return TIER_INVALID_ARGUMENT;
    *nrows = 0;
    ta_query q;
    memset(&q, 0, sizeof(q));
    tier_rank_fringe *f[2] = {NULL, NULL};
    rank_fringe_part p[2];
    int np = 0, rc = TIER_ABORTED;
    int64_t g = 1;
    for (int tries = 0; rc == TIER_ABORTED && tries < FRINGE_TRIES; tries++) {
        q.r = r;
        q.dec = decrease != 0;
        q.from = from_minute;
        q.to = to_minute;
        q.limit = limit;
        q.after = after;
        pthread_rwlock_rdlock(&r->lock);
        rc = query_locked(&q, service, f, p, np, rows, nrows);
        if (rc == TIER_ABORTED) {
            int64_t a, b;
            np = window_fringe(&q, p, &a, &b);
            g = r->detail > 0 ? rank_granule(r) : 1; /* fixed once set, read under the lock */
        }
        pthread_rwlock_unlock(&r->lock);
        query_free(&q);
        if (rc == TIER_ABORTED) {
            for (int i = 0; i < np && rc == TIER_ABORTED; i++)
                if (f[i] == NULL && (f[i] = rank_fringe_new()) == NULL)
                    rc = TIER_RESOURCE_EXHAUSTED;
            if (rc == TIER_ABORTED && (rc = fetch_fringe(r, service, p, np, g, f)) == TIER_OK)
                rc = TIER_ABORTED;
        }
    }
    rank_fringe_free(f[0]);
    rank_fringe_free(f[1]);
    if (rc == TIER_ABORTED)
        rc = TIER_UNAVAILABLE;
    return rc;
}
