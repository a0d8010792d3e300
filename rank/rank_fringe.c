/*
 * rank_fringe.c -- the fringe of a window over compacted history: the
 * per-content sums of the few minutes between a window edge and the
 * granule boundary next to it (see rank_compact.c for why they exist).
 *
 * Two stages, because the provider (tierd: a MariaDB query) must run
 * without the index lock:
 *   - tier_rank_fringe: the sink the provider fills, lock-free and knowing
 *     nothing of the index (service names are copied into a small local
 *     table: a query names one service or the few there are).  It sums
 *     rows per content as they arrive (a hash on (service, cid)), so a
 *     provider can stream raw per-minute rows and the sink stays the size
 *     of the distinct contents, not of the rows;
 *   - rank_fringe_view: the sinks (one per fringe part) resolved under the
 *     lock to entity ids, summed per entity (sorted by id, for
 *     binary-search random access) and, per service, sorted like a block
 *     list (change descending, cid ascending) so the threshold algorithm
 *     reads it as one more list.  A part read through its complement (the
 *     shorter side of its granule, rank_compact.c) is derived here from
 *     the granule's totals, see part_complement().
 * Rows naming a content the index does not hold are dropped: the index is
 * the reference (such a row is a write not yet applied, or expired).
 */
#include "rank_internal.h"

#include <stdlib.h>
#include <string.h>

#include "tier_status.h"

typedef struct {
    uint32_t name;
    int64_t cid;
    int64_t delta, created, deleted, restored;
} fringe_row;

struct tier_rank_fringe {
    char **names;
    uint32_t nnames;
    fringe_row *rows;
    size_t n, cap;
    uint32_t *slots; /* open addressing (name, cid) -> row index, RANK_NONE empty */
    uint32_t mask;
};

tier_rank_fringe *rank_fringe_new(void)
{
    return calloc(1, sizeof(tier_rank_fringe));
}

void rank_fringe_free(tier_rank_fringe *f)
{
    if (f == NULL)
        return;
    for (uint32_t i = 0; i < f->nnames; i++)
        free(f->names[i]);
    free(f->names);
    free(f->rows);
    free(f->slots);
    free(f);
}

static int64_t name_index(tier_rank_fringe *f, const char *name)
{
    for (uint32_t i = 0; i < f->nnames; i++)
        if (strcmp(f->names[i], name) == 0)
            return i;
    char **nn = realloc(f->names, (f->nnames + 1) * sizeof(char *));
    if (nn == NULL)
        return -1;
    f->names = nn;
    if ((nn[f->nnames] = strdup(name)) == NULL)
        return -1;
    return f->nnames++;
}

static uint32_t row_hash(uint32_t name, int64_t cid)
{
    uint64_t x = (uint64_t)cid * 0x9E3779B97F4A7C15ULL + name;
    x ^= x >> 32;
    return (uint32_t)x;
}

/* The slot of (name, cid): its row's index, or the empty slot to take. */
static uint32_t *row_slot(tier_rank_fringe *f, uint32_t name, int64_t cid)
{
    for (uint32_t i = row_hash(name, cid) & f->mask;; i = (i + 1) & f->mask) {
        uint32_t k = f->slots[i];
        if (k == RANK_NONE || (f->rows[k].cid == cid && f->rows[k].name == name))
            return &f->slots[i];
    }
}

static int slots_fit(tier_rank_fringe *f)
{
    if (f->slots != NULL && (f->n + 1) * 2 <= (size_t)f->mask + 1)
        return 0;
    uint32_t ncap = f->slots ? (f->mask + 1) * 2 : 1024;
    uint32_t *ns = malloc((size_t)ncap * sizeof(uint32_t));
    if (ns == NULL)
        return -1;
    memset(ns, 0xff, (size_t)ncap * sizeof(uint32_t));
    free(f->slots);
    f->slots = ns;
    f->mask = ncap - 1;
    for (size_t k = 0; k < f->n; k++)
        *row_slot(f, f->rows[k].name, f->rows[k].cid) = (uint32_t)k;
    return 0;
}

int tier_rank_fringe_add(tier_rank_fringe *f, const tier_rank_event *ev)
{
    if (f == NULL || ev == NULL || ev->service == NULL || ev->service[0] == '\0')
        return TIER_INVALID_ARGUMENT;
    int64_t name = name_index(f, ev->service);
    if (name < 0 || f->n >= UINT32_MAX - 1 || slots_fit(f) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    uint32_t *slot = row_slot(f, (uint32_t)name, ev->cid);
    if (*slot != RANK_NONE) { /* the content's sums so far */
        fringe_row *x = &f->rows[*slot];
        x->delta += ev->delta;
        x->created += ev->created;
        x->deleted += ev->deleted;
        x->restored += ev->restored;
        return TIER_OK;
    }
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 256;
        fringe_row *nr = realloc(f->rows, nc * sizeof(fringe_row));
        if (nr == NULL)
            return TIER_RESOURCE_EXHAUSTED;
        f->rows = nr;
        f->cap = nc;
    }
    *slot = (uint32_t)f->n;
    f->rows[f->n++] =
        (fringe_row){(uint32_t)name, ev->cid, ev->delta, ev->created, ev->deleted, ev->restored};
    return TIER_OK;
}

void rank_fringe_clear(tier_rank_fringe *f)
{
    f->n = 0;
    if (f->slots != NULL)
        memset(f->slots, 0xff, ((size_t)f->mask + 1) * sizeof(uint32_t));
}

/* ---- resolving ---- */

static int cmp_sum(const void *pa, const void *pb)
{
    const rank_fringe_sum *a = pa, *b = pb;
    return a->ent < b->ent ? -1 : a->ent > b->ent;
}

/* The list sort key, with the cid inline: comparing through r->ent would
 * cost two cache misses per comparison on 200k-entry fringes. */
typedef struct {
    uint32_t svc;
    int32_t delta;
    int64_t cid;
    uint32_t ent;
} list_key;

static int cmp_list(const void *pa, const void *pb)
{
    const list_key *a = pa, *b = pb;
    if (a->svc != b->svc)
        return a->svc < b->svc ? -1 : 1;
    if (a->delta != b->delta)
        return a->delta > b->delta ? -1 : 1;
    return a->cid < b->cid ? -1 : a->cid > b->cid;
}

/* Sorts s[0..n) by entity and adds up the sums of each entity; returns
 * the number of distinct entities. */
static uint32_t sums_merge(rank_fringe_sum *s, uint32_t n)
{
    qsort(s, n, sizeof(rank_fringe_sum), cmp_sum);
    uint32_t w = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (w > 0 && s[w - 1].ent == s[i].ent) {
            s[w - 1].delta += s[i].delta;
            s[w - 1].created += s[i].created;
            s[w - 1].deleted += s[i].deleted;
            s[w - 1].restored += s[i].restored;
        } else {
            s[w++] = s[i];
        }
    }
    return w;
}

/* The service of each of f's names among [svc_lo, svc_hi), RANK_NONE when
 * not one of them (malloc'ed; NULL when out of memory). */
static uint32_t *sink_services(tier_rank *r, const tier_rank_fringe *f, uint32_t svc_lo,
                               uint32_t svc_hi)
{
    uint32_t *svc_of = malloc((f->nnames ? f->nnames : 1) * sizeof(uint32_t));
    for (uint32_t i = 0; svc_of != NULL && i < f->nnames; i++) {
        svc_of[i] = RANK_NONE;
        for (uint32_t s = svc_lo; s < svc_hi; s++)
            if (strcmp(r->svc[s].name, f->names[i]) == 0)
                svc_of[i] = s;
    }
    return svc_of;
}

/* f's rows as entity sums of services [svc_lo, svc_hi), summed per entity
 * and sorted by id, into *out (malloc'ed); the count, or -1. */
static int64_t sink_sums(tier_rank *r, const tier_rank_fringe *f, uint32_t svc_lo, uint32_t svc_hi,
                         rank_fringe_sum **out)
{
    uint32_t *svc_of = sink_services(r, f, svc_lo, svc_hi);
    rank_fringe_sum *sum = malloc((f->n ? f->n : 1) * sizeof(rank_fringe_sum));
    if (svc_of == NULL || sum == NULL) {
        free(svc_of);
        free(sum);
        return -1;
    }
    uint32_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        const fringe_row *x = &f->rows[i];
        uint32_t svc = svc_of[x->name];
        uint32_t ent = svc == RANK_NONE ? RANK_NONE : rank_entity_find(r, svc, x->cid);
        if (ent != RANK_NONE)
            sum[n++] = (rank_fringe_sum){ent, x->delta, x->created, x->deleted, x->restored};
    }
    free(svc_of);
    *out = sum;
    return sums_merge(sum, n);
}

static const rank_fringe_sum *sum_find(const rank_fringe_sum *s, uint32_t n, uint32_t ent)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s[mid].ent < ent)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && s[lo].ent == ent ? &s[lo] : NULL;
}

/*
 * A part read through its complement (rank_fringe_part.comp): the sums
 * over [lo, hi) = the granule's total - the sums over the rest of it.
 *
 * Why this is exact and complete: the granule [gs, gs + G) is compacted,
 * so every entity with an event in it has its cumulative entry at gs
 * holding the cumulative through the granule's end, and cum_before() at
 * the two aligned boundaries gives its exact totals -- change and the
 * created/deleted/restored counts alike.  The granule's leaf block (level
 * clevel) lists every such entity (its member list), so iterating it
 * yields every entity that can have an event in [lo, hi), including those
 * whose events are all in [lo, hi) and which the complement does not
 * mention.  An entity whose derived sums are all zero had no event in
 * [lo, hi) (every event counts at least one create, delete or restore) and
 * is dropped, as a direct read would not have returned it.  Complement
 * rows of an entity that is not a member (a write the index has not
 * applied) are ignored: the index is the reference, as for direct rows.
 *
 * Cost: one pass over the member list (about 200,000 entities per
 * 256-minute granule on the benchmark: a bit, then two binary searches in
 * id order; no sort) and one hash lookup per complement row, instead of up
 * to G/2 more minutes from the database (about 11,400 rows each, each also
 * hashed and sorted).
 */
static int64_t part_complement(tier_rank *r, const tier_rank_fringe *f, const rank_fringe_part *p,
                               uint32_t svc_lo, uint32_t svc_hi, rank_fringe_sum **out)
{
    int l = r->clevel;
    int64_t end = p->gs + rank_granule(r);
    /* The members as a bitmap over entity ids: read back in id order it is
     * already the sorted list the view wants, with no sort; pos[] maps a
     * member to its slot for the complement rows.  Under build_mu: a
     * concurrent build sorts a block's e[] in place. */
    size_t words = ((size_t)r->nent + 63) / 64;
    uint64_t *bits = calloc(words ? words : 1, sizeof(uint64_t));
    uint32_t *pos = malloc((r->nent ? r->nent : 1) * sizeof(uint32_t));
    uint32_t *svc_of = sink_services(r, f, svc_lo, svc_hi);
    if (bits == NULL || pos == NULL || svc_of == NULL) {
        free(bits);
        free(pos);
        free(svc_of);
        return -1;
    }
    uint32_t n = 0;
    pthread_mutex_lock(&r->build_mu);
    for (uint32_t s = svc_lo; s < svc_hi; s++) {
        rank_block *b = rank_block_get(r, &r->svc[s].lv[l], l, p->gs, 0);
        for (uint32_t k = 0; b != NULL && k < b->n; k++) {
            uint32_t id = b->e[k].ent;
            uint64_t bit = (uint64_t)1 << (id & 63);
            n += !(bits[id >> 6] & bit);
            bits[id >> 6] |= bit;
        }
    }
    pthread_mutex_unlock(&r->build_mu);
    rank_fringe_sum *m = malloc((n ? n : 1) * sizeof(rank_fringe_sum));
    if (m == NULL) {
        free(bits);
        free(pos);
        free(svc_of);
        return -1;
    }
    n = 0;
    for (size_t w = 0; w < words; w++)
        for (uint64_t x = bits[w]; x != 0; x &= x - 1) {
            uint32_t id = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(x));
            pos[id] = n;
            m[n++].ent = id;
        }
    for (uint32_t i = 0; i < n; i++) { /* the granule totals, entities in id order */
        if (i + 8 < n)
            __builtin_prefetch(&r->ent[m[i + 8].ent]);
        if (i + 4 < n && r->ent[m[i + 4].ent].c != NULL)
            __builtin_prefetch(r->ent[m[i + 4].ent].c);
        const rank_entity *e = &r->ent[m[i].ent];
        rank_cum hi = rank_cum_before(e, end), lo = rank_cum_before(e, p->gs);
        m[i].delta = (int32_t)(hi.delta - lo.delta);
        m[i].created = (int32_t)(hi.created - lo.created);
        m[i].deleted = (int32_t)(hi.deleted - lo.deleted);
        m[i].restored = (int32_t)(hi.restored - lo.restored);
    }
    /* minus the complement: the sink holds one row per (service, cid) */
    for (size_t i = 0; i < f->n; i++) {
        const fringe_row *x = &f->rows[i];
        uint32_t svc = svc_of[x->name];
        uint32_t id = svc == RANK_NONE ? RANK_NONE : rank_entity_find(r, svc, x->cid);
        if (id == RANK_NONE || !(bits[id >> 6] & ((uint64_t)1 << (id & 63))))
            continue; /* not a member: no event of the granule in the index */
        rank_fringe_sum *y = &m[pos[id]];
        y->delta -= x->delta;
        y->created -= x->created;
        y->deleted -= x->deleted;
        y->restored -= x->restored;
    }
    free(bits);
    free(pos);
    free(svc_of);
    uint32_t w = 0;
    for (uint32_t i = 0; i < n; i++)
        if (m[i].delta != 0 || m[i].created != 0 || m[i].deleted != 0 || m[i].restored != 0)
            m[w++] = m[i];
    *out = m;
    return w;
}

/* The parts' sums, per entity (a window's two parts are disjoint minutes,
 * so an entity in both adds up), sorted by id, into v->sum. */
static int resolve_sums(tier_rank *r, tier_rank_fringe *const *f, const rank_fringe_part *p, int np,
                        uint32_t svc_lo, uint32_t svc_hi, rank_fringe_view *v)
{
    rank_fringe_sum *ps[2] = {NULL, NULL};
    int64_t pn[2] = {0, 0}, total = 0;
    int rc = TIER_OK;
    for (int i = 0; i < np && i < 2 && rc == TIER_OK; i++) {
        pn[i] = p[i].comp ? part_complement(r, f[i], &p[i], svc_lo, svc_hi, &ps[i])
                          : sink_sums(r, f[i], svc_lo, svc_hi, &ps[i]);
        if (pn[i] < 0 || pn[i] + total >= UINT32_MAX)
            rc = TIER_RESOURCE_EXHAUSTED;
        else
            total += pn[i];
    }
    if (rc == TIER_OK) {
        v->sum = malloc((total ? (size_t)total : 1) * sizeof(rank_fringe_sum));
        if (v->sum == NULL)
            rc = TIER_RESOURCE_EXHAUSTED;
    }
    if (rc == TIER_OK) {
        uint32_t n = 0;
        for (int i = 0; i < np && i < 2; i++) {
            memcpy(v->sum + n, ps[i], (size_t)pn[i] * sizeof(rank_fringe_sum));
            n += (uint32_t)pn[i];
        }
        v->nsum = np > 1 ? sums_merge(v->sum, n) : n;
    }
    free(ps[0]);
    free(ps[1]);
    return rc;
}

int rank_fringe_resolve(tier_rank *r, tier_rank_fringe *const *f, const rank_fringe_part *p, int np,
                        uint32_t svc_lo, uint32_t svc_hi, rank_fringe_view *v)
{
    memset(v, 0, sizeof(*v));
    if (resolve_sums(r, f, p, np, svc_lo, svc_hi, v) != TIER_OK)
        return TIER_RESOURCE_EXHAUSTED;
    uint32_t ns = svc_hi - svc_lo;
    v->list = malloc((v->nsum ? v->nsum : 1) * sizeof(rank_entry));
    v->off = calloc(ns + 1, sizeof(uint32_t));
    if (v->list == NULL || v->off == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    /* by service, then in block order: change descending, cid ascending */
    list_key *k = malloc((v->nsum ? v->nsum : 1) * sizeof(list_key));
    if (k == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    for (uint32_t i = 0; i < v->nsum; i++) {
        const rank_entity *e = &r->ent[v->sum[i].ent];
        k[i] = (list_key){e->svc - svc_lo, (int32_t)v->sum[i].delta, e->cid, v->sum[i].ent};
        v->off[k[i].svc + 1]++;
    }
    qsort(k, v->nsum, sizeof(list_key), cmp_list);
    for (uint32_t s = 0; s < ns; s++)
        v->off[s + 1] += v->off[s];
    for (uint32_t i = 0; i < v->nsum; i++)
        v->list[i] = (rank_entry){k[i].ent, k[i].delta};
    free(k);
    return TIER_OK;
}

const rank_fringe_sum *rank_fringe_lookup(const rank_fringe_view *v, uint32_t ent)
{
    return sum_find(v->sum, v->nsum, ent);
}

void rank_fringe_view_free(rank_fringe_view *v)
{
    free(v->sum);
    free(v->list);
    free(v->off);
    memset(v, 0, sizeof(*v));
}
