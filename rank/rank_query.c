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
 * Ties: a worst row EQUAL to T would force reading every tied entry (e.g.
 * DECREASE over hours, where fewer than `limit` contents lost comments and
 * the answer is padded with the smallest cids whose change is exactly 0).
 * Lists order ties by cid ascending in reading order, which bounds the cid
 * of an unseen entity that could reach T exactly (see threshold()); when
 * that bound exceeds the worst row's cid, ties cannot displace it either.
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
    int64_t *tsum;
    uint8_t *talive;
    int64_t *strict_max, *zero_min; /* cid bounds for ties, see tie_blocked() */
    uint8_t *nstrict, *nzero;
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

static void offer(ta_query *q, ta_cand c)
{
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

static int add_list(ta_query *q, uint32_t svc, int level, int64_t start)
{
    rank_service *s = &q->r->svc[svc];
    rank_block *b = rank_block_get(q->r, &s->lv[level], level, start, 0);
    if (b == NULL)
        return TIER_OK;
    if (rank_block_ensure(q->r, s, b) != TIER_OK)
        return TIER_RESOURCE_EXHAUSTED;
    if (b->n == 0)
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
    l->e = b->e;
    l->n = b->n;
    l->pos = 0;
    l->svc = svc;
    l->run_hi = b->n;
    l->run_lo = l->cur = 0;
    if (q->dec)
        list_next_run(l);
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
    if (r->open >= q->from && r->open < q->to && r->open >= r->expired)
        return add_block_all(q, 0, r->open);
    return TIER_OK;
}

/* ---- the algorithm ---- */

static int64_t window_sum(const ta_query *q, uint32_t ent)
{
    const rank_entity *e = &q->r->ent[ent];
    uint32_t hi = rank_cum_before(e, q->to).delta, lo = rank_cum_before(e, q->from).delta;
    return (int32_t)(hi - lo);
}

static int read_list(ta_query *q, ta_list *l, uint32_t count)
{
    for (; count > 0 && l->pos < l->n; count--, list_advance(q, l)) {
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

static int run_ta(ta_query *q)
{
    for (;;) {
        for (uint32_t j = 0; j < q->nlists; j++)
            if (worth_reading(q, &q->lists[j]) && read_list(q, &q->lists[j], TA_STEP) != TIER_OK)
                return TIER_RESOURCE_EXHAUSTED;
        if (done(q))
            return TIER_OK;
    }
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

static int query_locked(ta_query *q, const char *service, tier_rank_row *rows, size_t *nrows)
{
    tier_rank *r = q->r;
    if (r->open < 0 || !find_service(r, service, &q->svc_lo, &q->svc_hi) || q->svc_lo == q->svc_hi)
        return TIER_OK;
    if (q->from < r->expired)
        q->from = r->expired;
    if (q->from >= q->to)
        return TIER_OK;
    uint32_t ns = q->svc_hi - q->svc_lo;
    q->heap = malloc((size_t)q->limit * sizeof(ta_cand));
    q->tsum = malloc((size_t)ns * sizeof(int64_t));
    q->talive = malloc(ns);
    q->strict_max = malloc((size_t)ns * sizeof(int64_t));
    q->zero_min = malloc((size_t)ns * sizeof(int64_t));
    q->nstrict = malloc(ns);
    q->nzero = malloc(ns);
    if (q->heap == NULL || q->tsum == NULL || q->talive == NULL || q->strict_max == NULL ||
        q->zero_min == NULL || q->nstrict == NULL || q->nzero == NULL || seen_grow(q) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    pthread_mutex_lock(&r->build_mu);
    int rc = collect_lists(q, q->from, q->to < r->open ? q->to : r->open);
    pthread_mutex_unlock(&r->build_mu);
    if (rc == TIER_OK)
        rc = run_ta(q);
    if (rc == TIER_OK)
        fill_rows(q, rows, nrows);
    return rc;
}

int tier_rank_top(tier_rank *r, const char *service, int64_t from_minute, int64_t to_minute,
                  int decrease, uint32_t limit, tier_rank_row *rows, size_t *nrows)
{
    if (r == NULL || rows == NULL || nrows == NULL || from_minute >= to_minute ||
        to_minute - from_minute > r->retention || limit == 0 || limit > TIER_RANK_LIMIT_MAX)
        return TIER_INVALID_ARGUMENT;
    *nrows = 0;
    ta_query q;
    memset(&q, 0, sizeof(q));
    q.r = r;
    q.dec = decrease != 0;
    q.from = from_minute;
    q.to = to_minute;
    q.limit = limit;
    pthread_rwlock_rdlock(&r->lock);
    int rc = query_locked(&q, service, rows, nrows);
    pthread_rwlock_unlock(&r->lock);
    free(q.lists);
    free(q.heap);
    free(q.seen);
    free(q.tsum);
    free(q.talive);
    free(q.strict_max);
    free(q.zero_min);
    free(q.nstrict);
    free(q.nzero);
    return rc;
}
