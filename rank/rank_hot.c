/*
 * rank_hot.c -- the hot order: contents ranked by a decayed comment count,
 *
 *     hot(c, now) = sum over retained minutes m of change(c, m) * 2^(-(now - m) * 60 / H)
 *
 * (H the half-life in seconds), as Reddit's and Hacker News's front pages
 * weigh recency.
 *
 * The order between contents does not depend on now: every term shares the
 * factor 2^(-now * 60 / H).  So each entity keeps
 *
 *     S = sum of change(c, m) * 2^((m - B) * 60 / H)
 *
 * for a base minute B, updated by one multiply-add per event (a backfilled
 * event is just a smaller term), and hot = S * 2^((B - now) * 60 / H) is
 * computed only for the rows returned.  Entities sit in indexed binary
 * max-heaps ordered by (S descending, cid, service): one per service and
 * one for all services.  Each event moves its entity up or down both heaps
 * (O(log n)); the top k is a best-first walk from the root with a small
 * frontier heap, O(k log k).  A paging key only filters what the walk
 * emits (nodes at or before the key are skipped but still expanded, since
 * their children may come after it), so page p costs O(p * k log).
 *
 * B moves forward in steps of `unit` minutes, the smallest step whose
 * factor 2^(-step * 60 / H) is an exact power of two, once the newest
 * minute gets more than REBASE_HALF_LIVES half-lives past it: S values stay
 * far from double overflow (2^1023) and rescaling them is exact, so the
 * heaps keep their order.  Terms more than ~1074 half-lives older than B
 * underflow to 0; tierd bounds H to retention * 60 / 64, so what expiry
 * leaves out never weighs more than 2^-64 of a current event anyway.
 *
 * Expiry: when an entity loses minutes, the terms of those minutes are
 * subtracted from its S (rank_hot_expire), so scores stay the formula over
 * the retained minutes.  Why subtract rather than recompute from the
 * cumulative vector: once history is compacted (rank_compact.c) the vector
 * holds old minutes at granule resolution, and a recomputed score would
 * weigh them at their granule's end.  The entries being expired may be
 * granule-resolution too, but tierd bounds H so that they weigh below
 * 2^-64 of a current event: the difference is below double rounding.  An
 * entity freed leaves both heaps.
 */
#include "rank_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tier_status.h"

#define REBASE_HALF_LIVES 500

typedef struct {
    uint32_t *v; /* entity ids, v[0] the best */
    uint32_t n, cap;
    int all; /* the all-services heap: positions in pos_all, else pos_svc */
} hot_heap;

struct rank_hot {
    int64_t half_life_s;
    int64_t unit; /* minutes: B is a multiple, and step * 60 / H an integer */
    int64_t base; /* B; -1 before the first event */
    int64_t wmin; /* weight(wmin) == wval: most events fall in the open minute */
    double wval;
    double *score;
    uint32_t *pos_svc, *pos_all; /* RANK_NONE: not in the heaps */
    uint32_t cap;
    hot_heap all;
    hot_heap *svc;
    uint32_t nsvc;
};

/* ---- ordering and heaps ---- */

static int hot_better(const tier_rank *r, uint32_t a, uint32_t b)
{
    const struct rank_hot *h = r->hot;
    if (h->score[a] != h->score[b])
        return h->score[a] > h->score[b];
    const rank_entity *ea = &r->ent[a], *eb = &r->ent[b];
    if (ea->cid != eb->cid)
        return ea->cid < eb->cid;
    return strcmp(r->svc[ea->svc].name, r->svc[eb->svc].name) < 0;
}

static uint32_t *heap_pos(tier_rank *r, const hot_heap *hp)
{
    return hp->all ? r->hot->pos_all : r->hot->pos_svc;
}

static void heap_set(tier_rank *r, hot_heap *hp, uint32_t i, uint32_t id)
{
    hp->v[i] = id;
    heap_pos(r, hp)[id] = i;
}

static void heap_up(tier_rank *r, hot_heap *hp, uint32_t i)
{
    uint32_t id = hp->v[i];
    while (i > 0 && hot_better(r, id, hp->v[(i - 1) / 2])) {
        heap_set(r, hp, i, hp->v[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(r, hp, i, id);
}

static void heap_down(tier_rank *r, hot_heap *hp, uint32_t i)
{
    uint32_t id = hp->v[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= hp->n)
            break;
        if (c + 1 < hp->n && hot_better(r, hp->v[c + 1], hp->v[c]))
            c++;
        if (!hot_better(r, hp->v[c], id))
            break;
        heap_set(r, hp, i, hp->v[c]);
        i = c;
    }
    heap_set(r, hp, i, id);
}

static void heap_fix(tier_rank *r, hot_heap *hp, uint32_t i)
{
    uint32_t id = hp->v[i];
    heap_up(r, hp, i);
    if (heap_pos(r, hp)[id] == i)
        heap_down(r, hp, i);
}

static void heap_insert(tier_rank *r, hot_heap *hp, uint32_t id)
{
    heap_set(r, hp, hp->n++, id); /* capacity reserved by rank_hot_reserve */
    heap_up(r, hp, hp->n - 1);
}

static void heap_remove(tier_rank *r, hot_heap *hp, uint32_t id)
{
    uint32_t i = heap_pos(r, hp)[id];
    heap_pos(r, hp)[id] = RANK_NONE;
    if (--hp->n == i)
        return;
    heap_set(r, hp, i, hp->v[hp->n]);
    heap_fix(r, hp, i);
}

static void heap_rebuild(tier_rank *r, hot_heap *hp)
{
    for (uint32_t i = hp->n / 2; i-- > 0;)
        heap_down(r, hp, i);
}

static void heaps_rebuild(tier_rank *r)
{
    heap_rebuild(r, &r->hot->all);
    for (uint32_t s = 0; s < r->hot->nsvc; s++)
        heap_rebuild(r, &r->hot->svc[s]);
}

/* Moves id to its place in both heaps after its score changed. */
static void heaps_fix(tier_rank *r, uint32_t id)
{
    struct rank_hot *h = r->hot;
    heap_fix(r, &h->svc[r->ent[id].svc], h->pos_svc[id]);
    heap_fix(r, &h->all, h->pos_all[id]);
}

/* ---- scores ---- */

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b != 0) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* 2^((m - B) * 60 / H). */
static double weight(const struct rank_hot *h, int64_t m)
{
    return exp2((double)(m - h->base) * 60.0 / (double)h->half_life_s);
}

/* S of e over the retained minutes (exact while e holds minute detail). */
static double score_of(tier_rank *r, const rank_entity *e)
{
    return rank_hot_terms(r, e, r->expired, INT64_MAX);
}

/* Moves B to the unit step at or below m, rescaling every score by an
 * exact power of two. */
static void rebase(tier_rank *r, int64_t m)
{
    struct rank_hot *h = r->hot;
    int64_t nb = m / h->unit * h->unit;
    int exp = (int)((nb - h->base) * 60 / h->half_life_s);
    for (uint32_t id = 0; id < r->nent && id < h->cap; id++)
        if (h->pos_all[id] != RANK_NONE)
            h->score[id] = ldexp(h->score[id], -exp);
    h->base = nb;
    h->wmin = -1;
    heaps_rebuild(r); /* underflow to 0 may have made scores equal */
}

/* ---- hooks (rank_internal.h) ---- */

int rank_hot_init(tier_rank *r)
{
    r->hot = rank_realloc(r, NULL, 0, sizeof(*r->hot));
    if (r->hot == NULL)
        return -1;
    memset(r->hot, 0, sizeof(*r->hot));
    r->hot->all.all = 1;
    r->hot->half_life_s = TIER_RANK_HOT_HALF_LIFE_S;
    r->hot->unit = TIER_RANK_HOT_HALF_LIFE_S / gcd64(TIER_RANK_HOT_HALF_LIFE_S, 60);
    r->hot->base = -1;
    r->hot->wmin = -1;
    return 0;
}

void rank_hot_free(tier_rank *r)
{
    struct rank_hot *h = r->hot;
    if (h == NULL)
        return;
    for (uint32_t s = 0; s < h->nsvc; s++)
        free(h->svc[s].v);
    free(h->svc);
    free(h->all.v);
    free(h->score);
    free(h->pos_svc);
    free(h->pos_all);
    free(h);
    r->hot = NULL;
}

static int grow_u32(tier_rank *r, uint32_t **p, uint32_t old, uint32_t cap)
{
    uint32_t *q =
        rank_realloc(r, *p, (size_t)old * sizeof(uint32_t), (size_t)cap * sizeof(uint32_t));
    if (q == NULL)
        return -1;
    *p = q;
    return 0;
}

static int reserve_entities(tier_rank *r, uint32_t id)
{
    struct rank_hot *h = r->hot;
    if (id < h->cap)
        return 0;
    uint32_t old = h->cap, cap = old ? old * 2 : 1024;
    while (cap <= id)
        cap *= 2;
    double *s = rank_realloc(r, h->score, old * sizeof(double), (size_t)cap * sizeof(double));
    if (s == NULL)
        return -1;
    h->score = s;
    if (grow_u32(r, &h->pos_svc, old, cap) != 0 || grow_u32(r, &h->pos_all, old, cap) != 0)
        return -1; /* the arrays that grew just have spare room; cap stays */
    memset(h->pos_svc + old, 0xff, (size_t)(cap - old) * sizeof(uint32_t));
    memset(h->pos_all + old, 0xff, (size_t)(cap - old) * sizeof(uint32_t));
    memset(h->score + old, 0, (size_t)(cap - old) * sizeof(double));
    h->cap = cap;
    return 0;
}

static int reserve_heap(tier_rank *r, hot_heap *hp)
{
    return rank_reserve(r, (void **)&hp->v, &hp->cap, hp->n + 1, sizeof(uint32_t));
}

int rank_hot_reserve(tier_rank *r, uint32_t id, uint32_t svc)
{
    struct rank_hot *h = r->hot;
    if (reserve_entities(r, id) != 0)
        return -1;
    if (svc >= h->nsvc) {
        hot_heap *ns = rank_realloc(r, h->svc, h->nsvc * sizeof(hot_heap),
                                    (size_t)(svc + 1) * sizeof(hot_heap));
        if (ns == NULL)
            return -1;
        memset(ns + h->nsvc, 0, (size_t)(svc + 1 - h->nsvc) * sizeof(hot_heap));
        h->svc = ns;
        h->nsvc = svc + 1;
    }
    if (h->pos_all[id] != RANK_NONE)
        return 0;
    return reserve_heap(r, &h->svc[svc]) != 0 || reserve_heap(r, &h->all) != 0 ? -1 : 0;
}

void rank_hot_add(tier_rank *r, uint32_t id, int64_t minute, int32_t delta)
{
    struct rank_hot *h = r->hot;
    if (h->base < 0) {
        h->base = minute / h->unit * h->unit;
        h->wmin = -1;
    } else if ((minute - h->base) * 60 > REBASE_HALF_LIVES * h->half_life_s)
        rebase(r, minute);
    if (minute != h->wmin) {
        h->wmin = minute;
        h->wval = weight(h, minute);
    }
    h->score[id] += (double)delta * h->wval;
    if (h->pos_all[id] == RANK_NONE) {
        heap_insert(r, &h->svc[r->ent[id].svc], id);
        heap_insert(r, &h->all, id);
    } else {
        heaps_fix(r, id);
    }
}

double rank_hot_terms(tier_rank *r, const rank_entity *e, int64_t from, int64_t to)
{
    double s = 0;
    uint32_t i = rank_lower_bound(e, from);
    uint32_t prev = i > 0 ? e->c[i - 1].delta : 0;
    for (; i < e->n && e->c[i].minute < to; i++) {
        s += (double)(int32_t)(e->c[i].delta - prev) * weight(r->hot, e->c[i].minute);
        prev = e->c[i].delta;
    }
    return s;
}

void rank_hot_expire(tier_rank *r, uint32_t id, double gone)
{
    struct rank_hot *h = r->hot;
    if (id >= h->cap || h->pos_all[id] == RANK_NONE)
        return;
    h->score[id] -= gone;
    heaps_fix(r, id);
}

void rank_hot_drop(tier_rank *r, uint32_t id)
{
    struct rank_hot *h = r->hot;
    if (id >= h->cap || h->pos_all[id] == RANK_NONE)
        return;
    heap_remove(r, &h->svc[r->ent[id].svc], id);
    heap_remove(r, &h->all, id);
    h->score[id] = 0;
}

/* ---- settings ---- */

int tier_rank_set_half_life(tier_rank *r, int64_t half_life_s)
{
    if (r == NULL || half_life_s < TIER_RANK_HOT_HALF_LIFE_MIN_S ||
        half_life_s > ((int64_t)1 << 31))
        return TIER_INVALID_ARGUMENT;
    pthread_rwlock_wrlock(&r->lock);
    struct rank_hot *h = r->hot;
    h->half_life_s = half_life_s;
    h->unit = half_life_s / gcd64(half_life_s, 60);
    h->base = r->open < 0 ? -1 : r->open / h->unit * h->unit;
    h->wmin = -1;
    for (uint32_t id = 0; id < r->nent && id < h->cap; id++)
        if (h->pos_all[id] != RANK_NONE)
            h->score[id] = score_of(r, &r->ent[id]);
    heaps_rebuild(r);
    pthread_rwlock_unlock(&r->lock);
    return TIER_OK;
}

int64_t tier_rank_half_life(tier_rank *r)
{
    pthread_rwlock_rdlock(&r->lock);
    int64_t v = r->hot->half_life_s;
    pthread_rwlock_unlock(&r->lock);
    return v;
}

/* ---- the query ---- */

typedef struct {
    tier_rank *r;
    const hot_heap *hp;
    uint32_t *f; /* frontier: indices into hp->v, best first at f[0] */
    uint32_t nf;
} hot_walk;

static int walk_better(const hot_walk *w, uint32_t a, uint32_t b)
{
    return hot_better(w->r, w->hp->v[a], w->hp->v[b]);
}

static void walk_push(hot_walk *w, uint32_t i)
{
    uint32_t k = w->nf++;
    while (k > 0 && walk_better(w, i, w->f[(k - 1) / 2])) {
        w->f[k] = w->f[(k - 1) / 2];
        k = (k - 1) / 2;
    }
    w->f[k] = i;
}

static uint32_t walk_pop(hot_walk *w)
{
    uint32_t top = w->f[0], x = w->f[--w->nf], k = 0;
    for (;;) {
        uint32_t c = 2 * k + 1;
        if (c >= w->nf)
            break;
        if (c + 1 < w->nf && walk_better(w, w->f[c + 1], w->f[c]))
            c++;
        if (!walk_better(w, w->f[c], x))
            break;
        w->f[k] = w->f[c];
        k = c;
    }
    if (w->nf > 0)
        w->f[k] = x;
    return top;
}

static void hot_row(tier_rank *r, uint32_t id, double factor, tier_rank_row *row)
{
    const rank_entity *e = &r->ent[id];
    rank_cum hi = e->n > 0 ? e->c[e->n - 1] : (rank_cum){0};
    rank_cum lo = rank_cum_before(e, r->expired);
    row->service = r->svc[e->svc].name;
    row->cid = e->cid;
    row->change = (int32_t)(hi.delta - lo.delta);
    row->created = (int32_t)(hi.created - lo.created);
    row->deleted = (int32_t)(hi.deleted - lo.deleted);
    row->restored = (int32_t)(hi.restored - lo.restored);
    row->hot = r->hot->score[id] * factor;
}

/* Whether entity id comes after the key; cheaper than building its row. */
static int hot_after(tier_rank *r, uint32_t id, double factor, const tier_rank_key *after)
{
    const rank_entity *e = &r->ent[id];
    tier_rank_row row = {.service = r->svc[e->svc].name, .cid = e->cid};
    row.hot = r->hot->score[id] * factor;
    return tier_rank_row_after(&row, after, 0, 1);
}

static const hot_heap *pick_heap(const tier_rank *r, const char *service)
{
    if (service == NULL || service[0] == '\0')
        return &r->hot->all;
    for (uint32_t i = 0; i < r->nsvc && i < r->hot->nsvc; i++)
        if (strcmp(r->svc[i].name, service) == 0)
            return &r->hot->svc[i];
    return NULL;
}

static int walk_locked(tier_rank *r, const hot_heap *hp, int64_t now, const tier_rank_key *after,
                       uint32_t limit, tier_rank_row *rows, size_t *nrows)
{
    struct rank_hot *h = r->hot;
    double factor = exp2((double)(h->base - now) * 60.0 / (double)h->half_life_s);
    hot_walk w = {r, hp, NULL, 0};
    uint32_t fcap = 2 * limit + 16;
    size_t n = 0;

    if (hp == NULL || hp->n == 0 || h->base < 0)
        return TIER_OK;
    if ((w.f = malloc((size_t)fcap * sizeof(uint32_t))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    walk_push(&w, 0);
    while (n < limit && w.nf > 0) {
        if (w.nf + 2 > fcap) { /* skipping rows before the key widens the frontier */
            uint32_t *nf = realloc(w.f, (size_t)fcap * 2 * sizeof(uint32_t));
            if (nf == NULL) {
                free(w.f);
                return TIER_RESOURCE_EXHAUSTED;
            }
            w.f = nf;
            fcap *= 2;
        }
        uint32_t i = walk_pop(&w);
        if (after == NULL || hot_after(r, hp->v[i], factor, after))
            hot_row(r, hp->v[i], factor, &rows[n++]);
        if (2 * i + 1 < hp->n)
            walk_push(&w, 2 * i + 1);
        if (2 * i + 2 < hp->n)
            walk_push(&w, 2 * i + 2);
    }
    free(w.f);
    *nrows = n;
    return TIER_OK;
}

int tier_rank_hot(tier_rank *r, const char *service, int64_t now_minute, const tier_rank_key *after,
                  uint32_t limit, tier_rank_row *rows, size_t *nrows)
{
    if (r == NULL || rows == NULL || nrows == NULL || now_minute < 0 || now_minute >= INT32_MAX ||
        limit == 0 || limit > TIER_RANK_LIMIT_MAX + 1 || (after != NULL && after->service == NULL))
        return TIER_INVALID_ARGUMENT;
    *nrows = 0;
    pthread_rwlock_rdlock(&r->lock);
    int rc = walk_locked(r, pick_heap(r, service), now_minute, after, limit, rows, nrows);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}
