/*
 * bench_policy.c -- scores the tiering policy (policy/tier_policy.h) on a
 * synthetic week of views, replayed in simulated time through the real
 * plan and start code.
 *
 *   bench_policy [--contents N] [--days D] [--seed S] [--runs R] [--gold-per-h G]
 *                [--only I,J,...] [--quick]
 *
 * The trace: N contents, sizes log-uniform in 100 KiB .. 1 GiB.  Most
 * arrive during the week (the rest up to 14 days before it), each with a
 * burst of views that decays with a half-life of 4 h .. 3 days on top of a
 * small long-tail base rate; the burst's scale is Zipf-like (s = 0.9) over a
 * random rank.  An "oscillating slice" (2% of the contents) has a rate that
 * swings +-30% around the gold line with a period of 12 h .. 3 days.  Views
 * are Poisson per content per 5-minute step, drawn once per run (a sparse
 * list) so every policy replays the same views.
 *
 * The policies, each on three levels bronze/silver/gold, all contents
 * starting on bronze one simulated day before the scored week:
 *   seed-cum   the seed's rule on the cumulative count (levels 1000/2000,
 *              the seed's sample table), re-planned every step.
 *   seed-1h    the seed's rule on a client reporting its last hour's count
 *              (the window policy's lines per hour, as whole
 *              counts: 1 and 2 at the default line), re-planned every step.
 *   window ... tier_policy mode window with gold capacity 5% of all bytes,
 *              planned every plan_interval_s, started through
 *              tier_policy_start (budgets, max_inflight, capacity); a move
 *              takes size / 200 MB/s.  Several windows and hystereses are
 *              printed, all of them, and the documented defaults.
 *   oracle     each hour, the contents with the most views per byte in the
 *              NEXT hour fill gold (fractional knapsack, moves are free):
 *              the upper bound for the gold hit share.
 *   oracle-rate the same, but filling gold by the next hour's EXPECTED views
 *              per byte (the trace's rate; what a perfect popularity
 *              estimator could know), scored on the realized views: how
 *              much of the oracle's share is Poisson noise no policy sees.
 *   decay ...  window policies with half_life_s: the score weighs each
 *              bucket by 2^(-age / half-life); lines scaled to the weights.
 *
 * A view counts as served from gold when its content is on gold (its move
 * done) at the start of the view's step.  Columns are medians over R runs
 * (seeds S, S+1, ...), each column on its own.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_policy.h"

#define STEP_S 300 /* views are drawn per 5-minute step */
#define WARM_DAYS 1
#define NLV 3
#define GOLD 2
#define MOVE_BPS 200e6 /* a move's transfer rate */
/* The gold line in views per hour (--gold-per-h); silver's is half of it.
 * Capacity, not the line, should pick gold's contents: a high line keeps
 * small, moderately viewed (dense) contents out (docs/BENCHMARKS.md 9). */
static double gold_per_h = 1.0;
#define SLICE_PCT 2    /* the oscillating slice */
#define CAPACITY_PCT 5 /* gold capacity, % of all bytes */
#define MAX_RESULTS 16

#define die(...) (fprintf(stderr, __VA_ARGS__), exit(1))

/* ------------------------------------------------------------ random */

static uint64_t rng;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double unit(void)
{
    return (double)(next_u64() >> 11) / 9007199254740992.0;
}

/* Poisson(l): inversion for small means, a rounded normal for large ones
 * (the hot contents; their exact tail does not matter here). */
static uint32_t poisson(double l)
{
    if (l < 30) {
        double u = unit(), p = exp(-l), f = p;
        uint32_t k = 0;
        while (u > f && k < 1000) {
            p *= l / ++k;
            f += p;
        }
        return k;
    }
    double z = sqrt(-2 * log(1 - unit())) * cos(6.283185307179586 * unit());
    double x = floor(l + sqrt(l) * z + 0.5);
    return x < 0 ? 0 : (uint32_t)x;
}

/* ------------------------------------------------------------ the trace */

typedef struct {
    int64_t size;
    double arrive_h, hl_h, burst, base; /* views per hour */
    bool osc;
    double period_h, phase;
} content;

typedef struct {
    size_t n;
    int days, nsteps; /* steps from -WARM_DAYS to days */
    content *c;
    int64_t total_bytes, capacity;
    size_t *off; /* views of step s: v[off[s] .. off[s + 1]) */
    uint32_t *cid, *views;
    size_t nv, cap;
} trace;

static double hours_of(int step)
{
    return (double)step * STEP_S / 3600.0 - WARM_DAYS * 24;
}

static double rate(const content *c, double t_h)
{
    if (t_h < c->arrive_h)
        return 0;
    if (c->osc)
        return gold_per_h * (1 + 0.3 * sin(6.283185307179586 * t_h / c->period_h + c->phase));
    return c->base + c->burst * exp2(-(t_h - c->arrive_h) / c->hl_h);
}

/* The views a content had before the simulation starts (the cumulative
 * seed counts them): the integral of its rate, rounded. */
static int64_t prior_views(const content *c)
{
    double t0 = -WARM_DAYS * 24, d = t0 - c->arrive_h;
    if (d <= 0)
        return 0;
    if (c->osc)
        return (int64_t)(gold_per_h * d);
    return (int64_t)(c->base * d + c->burst * c->hl_h / M_LN2 * (1 - exp2(-d / c->hl_h)));
}

static void make_contents(trace *t, uint64_t seed)
{
    size_t *rank = malloc(t->n * sizeof(*rank));
    rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < t->n; i++)
        rank[i] = i + 1;
    for (size_t i = t->n - 1; i > 0; i--) { /* a random Zipf rank per content */
        size_t j = next_u64() % (i + 1), x = rank[i];
        rank[i] = rank[j];
        rank[j] = x;
    }
    t->total_bytes = 0;
    for (size_t i = 0; i < t->n; i++) {
        content *c = &t->c[i];
        c->size = (int64_t)exp(log(100 * 1024.0) + unit() * log(1024.0 * 1024 * 1024 / 102400));
        c->osc = next_u64() % 100 < SLICE_PCT;
        c->arrive_h =
            c->osc || unit() < 0.3 ? -24 * (WARM_DAYS + 14 * unit()) : unit() * 24 * t->days;
        c->hl_h = exp(log(4.0) + unit() * log(72.0 / 4));
        c->burst = 20000.0 / pow((double)rank[i], 0.9);
        c->base = 0.02 * c->burst;
        c->period_h = exp(log(12.0) + unit() * log(72.0 / 12));
        c->phase = unit() * 6.283185307179586;
        t->total_bytes += c->size;
    }
    t->capacity = t->total_bytes / 100 * CAPACITY_PCT;
    free(rank);
}

static void push_view(trace *t, uint32_t cid, uint32_t v)
{
    if (t->nv == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1 << 20;
        t->cid = realloc(t->cid, t->cap * sizeof(*t->cid));
        t->views = realloc(t->views, t->cap * sizeof(*t->views));
        if (!t->cid || !t->views)
            die("out of memory\n");
    }
    t->cid[t->nv] = cid;
    t->views[t->nv++] = v;
}

static void make_trace(trace *t, size_t n, int days, uint64_t seed)
{
    memset(t, 0, sizeof(*t));
    t->n = n;
    t->days = days;
    t->nsteps = (days + WARM_DAYS) * 86400 / STEP_S;
    t->c = calloc(n, sizeof(*t->c));
    t->off = calloc((size_t)t->nsteps + 1, sizeof(*t->off));
    make_contents(t, seed);
    for (int s = 0; s < t->nsteps; s++) {
        double mid = hours_of(s) + STEP_S / 7200.0;
        t->off[s] = t->nv;
        for (size_t i = 0; i < n; i++) {
            double l = rate(&t->c[i], mid) * STEP_S / 3600.0;
            uint32_t v = l > 0 ? poisson(l) : 0;
            if (v)
                push_view(t, (uint32_t)i, v);
        }
    }
    t->off[t->nsteps] = t->nv;
}

static void free_trace(trace *t)
{
    free(t->c);
    free(t->off);
    free(t->cid);
    free(t->views);
}

/* ------------------------------------------------------------ results */

typedef struct {
    double hit, moved_gb, slice_gb, moves_mean, moves_max, backlog, peak_ratio, secs;
} result;

typedef struct {
    int64_t gold_views, views;
    int64_t moved, slice_moved, max_backlog, gold_peak;
    int32_t *moves;
} score;

static result finish(const trace *t, score *sc, double secs)
{
    result r = {0};
    int32_t mx = 0;
    int64_t sum = 0;
    for (size_t i = 0; i < t->n; i++) {
        sum += sc->moves[i];
        mx = sc->moves[i] > mx ? sc->moves[i] : mx;
    }
    r.hit = sc->views ? (double)sc->gold_views / (double)sc->views : 0;
    r.moved_gb = (double)sc->moved / 1e9;
    r.slice_gb = (double)sc->slice_moved / 1e9;
    r.moves_mean = (double)sum / (double)t->n;
    r.moves_max = mx;
    r.backlog = (double)sc->max_backlog;
    r.peak_ratio = (double)sc->gold_peak / (double)t->capacity;
    r.secs = secs;
    free(sc->moves);
    return r;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ the oracle */

typedef struct {
    uint32_t cid;
    double key;    /* what gold is filled by: next hour's views, realized or expected */
    int64_t views; /* next hour's realized views (the partial content's credit) */
} want_t;

static const trace *cmp_t;

static int by_density(const void *a, const void *b)
{
    const want_t *x = a, *y = b;
    double dx = x->key / (double)cmp_t->c[x->cid].size;
    double dy = y->key / (double)cmp_t->c[y->cid].size;
    return dx != dy ? (dx > dy ? -1 : 1) : (x->cid > y->cid) - (x->cid < y->cid);
}

/* Gold for one hour: the densest contents of that hour by key[] (realized
 * or expected views); the last one that does not fit serves the fraction of
 * its realized views that would fit. */
static void oracle_hour(const trace *t, int s0, const double *key, const int64_t *hour_views,
                        bool *gold, score *sc)
{
    want_t *w = malloc(t->n * sizeof(*w));
    size_t m = 0;
    int64_t used = 0;
    for (size_t i = 0; i < t->n; i++)
        if (key[i] > 0)
            w[m++] = (want_t){(uint32_t)i, key[i], hour_views[i]};
    cmp_t = t;
    qsort(w, m, sizeof(*w), by_density);
    bool *next = calloc(t->n, sizeof(*next));
    for (size_t j = 0; j < m; j++) {
        int64_t sz = t->c[w[j].cid].size;
        if (used + sz <= t->capacity) {
            next[w[j].cid] = true;
            used += sz;
        } else if (used < t->capacity) {
            if (s0 >= WARM_DAYS * 86400 / STEP_S)
                sc->gold_views +=
                    (int64_t)((double)w[j].views * (double)(t->capacity - used) / (double)sz);
            used = t->capacity;
        }
    }
    for (size_t i = 0; i < t->n; i++) {
        if (next[i] != gold[i] && s0 >= WARM_DAYS * 86400 / STEP_S) {
            sc->moved += t->c[i].size;
            sc->slice_moved += t->c[i].osc ? t->c[i].size : 0;
            sc->moves[i]++;
        }
        gold[i] = next[i];
    }
    sc->gold_peak = used > sc->gold_peak ? used : sc->gold_peak;
    free(next);
    free(w);
}

/* expected: fill gold by the next hour's expected views (the rate the
 * trace draws from, summed over the hour's steps as drawn) -- what a
 * perfect estimator of popularity could know -- instead of its realized
 * (Poisson) views.  Both are scored on the realized views. */
static result run_oracle(const trace *t, bool expected)
{
    double t0 = now_s();
    score sc = {0};
    int per_h = 3600 / STEP_S, first = WARM_DAYS * 86400 / STEP_S;
    int64_t *hv = calloc(t->n, sizeof(*hv));
    double *key = calloc(t->n, sizeof(*key));
    bool *gold = calloc(t->n, sizeof(*gold));
    sc.moves = calloc(t->n, sizeof(*sc.moves));
    for (int s0 = 0; s0 < t->nsteps; s0 += per_h) {
        memset(hv, 0, t->n * sizeof(*hv));
        for (int s = s0; s < s0 + per_h && s < t->nsteps; s++)
            for (size_t k = t->off[s]; k < t->off[s + 1]; k++)
                hv[t->cid[k]] += t->views[k];
        for (size_t i = 0; i < t->n; i++) {
            key[i] = 0;
            if (!expected)
                key[i] = (double)hv[i];
            else
                for (int s = s0; s < s0 + per_h && s < t->nsteps; s++)
                    key[i] += rate(&t->c[i], hours_of(s) + STEP_S / 7200.0) * STEP_S / 3600.0;
        }
        oracle_hour(t, s0, key, hv, gold, &sc);
        for (int s = s0; s < s0 + per_h && s < t->nsteps && s >= first; s++)
            for (size_t k = t->off[s]; k < t->off[s + 1]; k++) {
                sc.views += t->views[k];
                sc.gold_views += gold[t->cid[k]] ? t->views[k] : 0;
            }
    }
    free(hv);
    free(key);
    free(gold);
    return finish(t, &sc, now_s() - t0);
}

/* ------------------------------------------------------------ a policy */

typedef enum { SCORE_CUMULATIVE, SCORE_LAST_HOUR, SCORE_WINDOW } score_kind;

typedef struct {
    const char *name;
    tier_policy p;
    score_kind kind;
    bool capacity;
    bool no_born; /* the planner is not told when contents arrived: no scaling of young ones */
} config;

/* A move in flight: done at done_ms (a binary heap on it). */
typedef struct {
    int64_t done_ms;
    uint32_t cid;
    int from, to;
} flight;

typedef struct {
    const trace *t;
    const config *cf;
    tier_policy_level lv[NLV];
    int8_t *level, *moving_to;
    int64_t *since_ms, *last_ms, *cum, *cached, *cached_at;
    tier_policy_views **ring;
    int64_t ring_bucket_s, score_window_s;
    tier_policy_decay decay; /* with a half-life: this plan's weights */
    tier_policy_item *items;
    tier_policy_move *pending;
    size_t npending;
    flight *heap;
    size_t nheap;
    tier_policy_gate gate;
    tier_policy_summary sum;
    score sc;
    bool retry, scored;
} sim;

static void heap_push(sim *m, flight f)
{
    size_t i = m->nheap++;
    while (i > 0 && m->heap[(i - 1) / 2].done_ms > f.done_ms) {
        m->heap[i] = m->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    m->heap[i] = f;
}

static flight heap_pop(sim *m)
{
    flight top = m->heap[0], last = m->heap[--m->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m->nheap)
            break;
        if (c + 1 < m->nheap && m->heap[c + 1].done_ms < m->heap[c].done_ms)
            c++;
        if (m->heap[c].done_ms >= last.done_ms)
            break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    if (m->nheap)
        m->heap[i] = last;
    return top;
}

/* A level's line as a whole count, at least 1 and above `below`. */
static int64_t line(double v, int64_t below)
{
    int64_t x = (int64_t)v;
    return x > below ? x : below + 1;
}

static void resolve_levels(sim *m)
{
    static const char *const names[NLV] = {"bronze", "silver", "gold"};
    int64_t mins[NLV] = {0, 1000, 2000}, maxs[NLV] = {999, 1999, INT64_MAX};
    char err[256];
    if (m->cf->kind == SCORE_LAST_HOUR) { /* the window lines, per hour */
        mins[1] = line(gold_per_h / 2, 0), mins[2] = line(gold_per_h, mins[1]);
        maxs[0] = mins[1] - 1, maxs[1] = mins[2] - 1;
    }
    if (tier_policy_resolve(&m->cf->p, names, mins, maxs, NLV, m->lv, err, sizeof(err)) != 0)
        die("%s: %s\n", m->cf->name, err);
}

static void sim_init(sim *m, const trace *t, const config *cf)
{
    memset(m, 0, sizeof(*m));
    m->t = t;
    m->cf = cf;
    resolve_levels(m);
    m->level = calloc(t->n, 1);
    m->moving_to = malloc(t->n);
    memset(m->moving_to, -1, t->n);
    m->since_ms = calloc(t->n, sizeof(int64_t));
    m->last_ms = calloc(t->n, sizeof(int64_t));
    m->cum = calloc(t->n, sizeof(int64_t));
    m->cached = calloc(t->n, sizeof(int64_t));
    m->cached_at = malloc(t->n * sizeof(int64_t));
    m->ring = calloc(t->n, sizeof(*m->ring));
    m->items = malloc(t->n * sizeof(*m->items));
    m->pending = malloc(t->n * sizeof(*m->pending));
    m->heap = malloc(t->n * sizeof(*m->heap));
    m->sc.moves = calloc(t->n, sizeof(int32_t));
    m->ring_bucket_s = cf->kind == SCORE_WINDOW ? cf->p.bucket_s : STEP_S;
    m->score_window_s = cf->kind == SCORE_WINDOW ? cf->p.window_s : 3600;
    for (size_t i = 0; i < t->n; i++) {
        m->since_ms[i] = -(int64_t)(WARM_DAYS + 30) * 86400000;
        m->cum[i] = prior_views(&t->c[i]);
        m->cached_at[i] = INT64_MIN;
    }
    tier_policy_gate_init(&m->gate, -(int64_t)WARM_DAYS * 86400000);
}

static void sim_free(sim *m)
{
    for (size_t i = 0; i < m->t->n; i++)
        tier_policy_views_free(m->ring[i]);
    free(m->ring);
    free(m->level);
    free(m->moving_to);
    free(m->since_ms);
    free(m->last_ms);
    free(m->cum);
    free(m->cached);
    free(m->cached_at);
    free(m->items);
    free(m->pending);
    free(m->heap);
}

static void add_views(sim *m, uint32_t cid, int64_t t_ms, uint32_t v)
{
    if (m->cf->kind == SCORE_CUMULATIVE) {
        m->cum[cid] += v;
    } else {
        if (!m->ring[cid])
            m->ring[cid] =
                tier_policy_views_alloc((unsigned)(m->score_window_s / m->ring_bucket_s));
        tier_policy_views_add(m->ring[cid], m->ring_bucket_s, t_ms, v);
        m->cached_at[cid] = INT64_MIN; /* its score changed */
    }
    m->last_ms[cid] = t_ms;
}

/* A content's score now: the cumulative count, or its views in the window
 * (recomputed only when it had views or the newest bucket changed), or its
 * decayed score (recomputed at every plan: m->decay holds its weights). */
static int64_t score_of(sim *m, size_t i, int64_t now_ms)
{
    int64_t sec = now_ms / 1000 - (now_ms % 1000 < 0);
    int64_t b = sec / m->ring_bucket_s - (sec % m->ring_bucket_s < 0);
    if (m->cf->kind == SCORE_CUMULATIVE)
        return m->cum[i];
    if (m->cf->p.half_life_s > 0) { /* the weights change with now: cached per instant */
        if (m->cached_at[i] != now_ms) {
            m->cached[i] = tier_policy_views_decayed(m->ring[i], &m->decay);
            m->cached_at[i] = now_ms;
        }
    } else if (m->cached_at[i] != b) {
        m->cached[i] =
            tier_policy_views_sum(m->ring[i], m->ring_bucket_s, now_ms, m->score_window_s);
        m->cached_at[i] = b;
    }
    return m->cached[i];
}

static void complete(sim *m, const flight *f)
{
    int64_t sz = m->t->c[f->cid].size;
    m->level[f->cid] = (int8_t)f->to;
    m->moving_to[f->cid] = -1;
    m->since_ms[f->cid] = f->done_ms;
    m->sum.bytes_now[f->from] -= sz; /* its room at the source is free now */
    m->sum.files_now[f->from]--;
    if (m->scored) {
        m->sc.moved += sz;
        m->sc.slice_moved += m->t->c[f->cid].osc ? sz : 0;
        m->sc.moves[f->cid]++;
    }
    m->retry = true;
}

static void check_gold(const sim *m)
{
    if (m->cf->capacity && m->sum.bytes_now[GOLD] > m->lv[GOLD].capacity_bytes)
        die("%s: gold holds %lld bytes, over its capacity %lld\n", m->cf->name,
            (long long)m->sum.bytes_now[GOLD], (long long)m->lv[GOLD].capacity_bytes);
}

/* Starts what the gate lets through; the rest stays pending. */
static void try_start(sim *m, int64_t now_ms)
{
    size_t room = m->cf->p.max_inflight > 0 ? (size_t)m->cf->p.max_inflight - m->nheap : SIZE_MAX;
    bool *go = malloc((m->npending ? m->npending : 1) * sizeof(*go));
    tier_policy_start_stats st;
    size_t k = 0;
    tier_policy_start(&m->cf->p, m->lv, NLV, &m->gate, now_ms, m->pending, m->npending, room,
                      &m->sum, go, &st);
    for (size_t i = 0; i < m->npending; i++) {
        const tier_policy_move *mv = &m->pending[i];
        if (!go[i]) {
            m->pending[k++] = *mv;
            continue;
        }
        int64_t ms = (int64_t)((double)mv->size / MOVE_BPS * 1000) + 1;
        m->moving_to[mv->cid] = (int8_t)mv->to;
        heap_push(m, (flight){now_ms + ms, (uint32_t)mv->cid, mv->from, mv->to});
    }
    m->npending = k;
    /* Tokens refill with time; room and capacity only with a completion. */
    m->retry = st.throttled > 0 && (size_t)st.started < room;
    check_gold(m);
    free(go);
}

/* When content i arrived, as tierd knows it from AddContent (0: not told;
 * also for arrivals before the simulated clock's 0, the policy's "unknown"). */
static int64_t born_of(const sim *m, size_t i)
{
    int64_t ms = (int64_t)(m->t->c[i].arrive_h * 3600000);
    return m->cf->no_born || ms <= 0 ? 0 : ms;
}

/* A content on bronze with no job whose score is below silver's line: the
 * plan would leave it where it is (the idle rule and dwell only act on a
 * wanted move, and bronze has no capacity), so it is not passed -- the
 * plan's sort is most of the bench's time.  Only the bronze counts of the
 * summary differ, which the bench does not use. */
static bool stays_bottom(sim *m, size_t i, int64_t now_ms)
{
    int64_t line = m->cf->p.mode == TIER_POLICY_SEED ? m->lv[1].min : m->lv[1].min_views;
    tier_policy_item it = {0};
    if (m->level[i] != 0 || m->moving_to[i] >= 0)
        return false;
    it.score = score_of(m, i, now_ms);
    it.born_ms = born_of(m, i);
    return tier_policy_score(&m->cf->p, &it, now_ms) <
           line; /* young ones scaled, as the plan does */
}

static void plan(sim *m, int64_t now_ms)
{
    size_t n = 0, nm = 0;
    if (m->cf->p.half_life_s > 0)
        tier_policy_decay_init(&m->decay, m->ring_bucket_s, now_ms, m->score_window_s,
                               m->cf->p.half_life_s);
    for (size_t i = 0; i < m->t->n; i++) {
        if (m->t->c[i].arrive_h * 3600000 > (double)now_ms)
            continue; /* not yet uploaded */
        if (stays_bottom(m, i, now_ms))
            continue;
        m->items[n++] = (tier_policy_item){
            (int64_t)i,    m->level[i],    m->moving_to[i], m->t->c[i].size, score_of(m, i, now_ms),
            m->last_ms[i], m->since_ms[i], born_of(m, i)};
    }
    if (tier_policy_plan(&m->cf->p, m->lv, NLV, m->items, n, now_ms, m->pending, &nm, &m->sum))
        die("out of memory\n");
    m->npending = nm;
    try_start(m, now_ms);
    if (m->scored && (int64_t)m->npending > m->sc.max_backlog)
        m->sc.max_backlog = (int64_t)m->npending;
}

/* Simulated time [from, to): moves land when done; pending moves are offered
 * again after a landing (room, capacity) or a second later (tokens). */
static void advance(sim *m, int64_t from_ms, int64_t to_ms)
{
    int64_t t = from_ms;
    while (t < to_ms) {
        int64_t next = to_ms;
        while (m->nheap && m->heap[0].done_ms <= t) {
            flight f = heap_pop(m);
            complete(m, &f);
        }
        if (m->npending && m->retry)
            try_start(m, t);
        if (m->npending && m->retry)
            next = t + 1000;
        if (m->nheap && m->heap[0].done_ms < next)
            next = m->heap[0].done_ms;
        t = next;
    }
}

static void gold_peak(sim *m)
{
    int64_t b = m->sum.bytes_now[GOLD];
    if (m->scored && b > m->sc.gold_peak)
        m->sc.gold_peak = b;
}

static void check_final(const sim *m)
{
    int64_t bytes[NLV] = {0};
    for (size_t i = 0; i < m->t->n; i++) {
        if (m->level[i] < 0 || m->level[i] >= NLV || m->moving_to[i] != -1)
            die("%s: content %zu ends on level %d moving to %d\n", m->cf->name, i, m->level[i],
                m->moving_to[i]);
        bytes[m->level[i]] += m->t->c[i].size;
    }
    if (m->cf->capacity && bytes[GOLD] > m->lv[GOLD].capacity_bytes)
        die("%s: gold ends over capacity\n", m->cf->name);
}

/* The views of step s: scored against where each content is now, then
 * added to its count. */
static void count_and_add(sim *m, int s, int64_t ms)
{
    const trace *t = m->t;
    for (size_t k = t->off[s]; k < t->off[s + 1]; k++) {
        uint32_t c = t->cid[k];
        if (m->scored) {
            m->sc.views += t->views[k];
            m->sc.gold_views += m->level[c] == GOLD ? t->views[k] : 0;
        }
        add_views(m, c, ms, t->views[k]);
    }
}

static result run_policy(const trace *t, const config *cf)
{
    double t0 = now_s();
    sim m;
    int first = WARM_DAYS * 86400 / STEP_S;
    int64_t plan_ms = cf->kind == SCORE_WINDOW ? cf->p.plan_interval_s * 1000 : STEP_S * 1000;
    sim_init(&m, t, cf);
    int64_t next_plan = (int64_t)(hours_of(0) * 3600000), at = next_plan;
    for (int s = 0; s < t->nsteps; s++) {
        int64_t ms = (int64_t)(hours_of(s) * 3600000), end = ms + STEP_S * 1000;
        m.scored = s >= first;
        count_and_add(&m, s, ms);
        while (next_plan < end) {
            advance(&m, at, next_plan);
            plan(&m, next_plan);
            gold_peak(&m);
            at = next_plan;
            next_plan += plan_ms;
        }
        advance(&m, at, end);
        at = end;
    }
    while (m.nheap) { /* let the moves in flight land */
        flight f = heap_pop(&m);
        complete(&m, &f);
    }
    check_final(&m);
    result r = finish(t, &m.sc, now_s() - t0);
    sim_free(&m);
    return r;
}

/* ------------------------------------------------------------ the configs */

static const char *const CONFIG_HELP =
    "window policies: gold capacity 5%% of all bytes; gold at %g and silver at %g views\n"
    "per hour of window; budgets 100 moves/s overall and 200 MB/s into bronze; 1000 in\n"
    "flight; planned every 300 s of simulated time (tierd's default is 10 s: the views\n"
    "change only every 300 s here, so a finer plan would change little but the cost)\n";

static void window_config(config *cf, const char *name, int64_t window_h, int64_t bucket_s,
                          int32_t hyst, int64_t dwell_s, int64_t capacity)
{
    tier_policy *p = &cf->p;
    memset(cf, 0, sizeof(*cf));
    cf->name = name;
    cf->kind = SCORE_WINDOW;
    cf->capacity = true;
    tier_policy_window_defaults(p);
    p->window_s = window_h * 3600;
    p->bucket_s = bucket_s;
    p->hysteresis_pct = hyst;
    p->dwell_s = dwell_s;
    p->plan_interval_s = 300;
    p->nlevels = 2;
    int64_t silver = line(gold_per_h / 2 * (double)window_h, 0);
    p->levels[0] = (tier_policy_level_rule){"silver", silver, -1, 0};
    p->levels[1] =
        (tier_policy_level_rule){"gold", line(gold_per_h * (double)window_h, silver), -1, capacity};
    p->nbudgets = 2;
    p->budgets[0] = (tier_policy_budget){"", "", 100, 0};
    p->budgets[1] = (tier_policy_budget){"", "bronze", 0, 200e6};
}

/* A decayed window: the lines are the flat window's per hour times the
 * window's weight in hours (sum of the buckets' weights at their
 * midpoints), as whole views. */
static void decay_config(config *cf, const char *name, int64_t window_h, int64_t bucket_s,
                         int64_t half_life_h, int32_t hyst, int64_t dwell_s, int64_t capacity)
{
    double eff_h = 0, bh = (double)bucket_s / 3600;
    window_config(cf, name, window_h, bucket_s, hyst, dwell_s, capacity);
    cf->p.half_life_s = half_life_h * 3600;
    for (int64_t j = 0; j < window_h * 3600 / bucket_s; j++)
        eff_h += bh * exp2(-((double)j + 0.5) * bh / (double)half_life_h);
    int64_t silver = line(gold_per_h / 2 * eff_h, 0);
    cf->p.levels[0].min_views = silver;
    cf->p.levels[1].min_views = line(gold_per_h * eff_h, silver);
}

#define NCONF 18
#define SEED_1H 1
#define JUDGED 2 /* the row the targets are judged on (chosen before the full runs) */

static void make_configs(config *cf, int64_t capacity)
{
    memset(cf, 0, NCONF * sizeof(*cf));
    cf[0].name = "seed-cum (cumulative count, 1000/2000)";
    cf[0].kind = SCORE_CUMULATIVE;
    tier_policy_default(&cf[0].p);
    cf[1].name = "seed-1h (last hour's count, lines of the window)";
    cf[1].kind = SCORE_LAST_HOUR;
    tier_policy_default(&cf[1].p);
    window_config(&cf[2], "window 6h/15min, hyst 20%, dwell 1h", 6, 900, 20, 3600, capacity);
    window_config(&cf[3], "window defaults: 7d/1h, hyst 20%, dwell 1h", 168, 3600, 20, 3600,
                  capacity);
    window_config(&cf[4], "window 24h/1h, hyst 20%, dwell 1h", 24, 3600, 20, 3600, capacity);
    window_config(&cf[5], "window 24h/1h, hyst 0%, dwell 0", 24, 3600, 0, 0, capacity);
    window_config(&cf[6], "window 6h/15min, hyst 0%, dwell 0", 6, 900, 0, 0, capacity);
    window_config(&cf[7], "window 6h/15min, hyst 40%, dwell 1h", 6, 900, 40, 3600, capacity);
    window_config(&cf[8], "window 2h/5min, hyst 20%, dwell 1h", 2, 300, 20, 3600, capacity);
    decay_config(&cf[9], "decay 24h/1h, half-life 2h, hyst 20%, dwell 1h", 24, 3600, 2, 20, 3600,
                 capacity);
    decay_config(&cf[10], "decay 24h/1h, half-life 4h, hyst 20%, dwell 1h", 24, 3600, 4, 20, 3600,
                 capacity);
    decay_config(&cf[11], "decay 24h/1h, half-life 8h, hyst 20%, dwell 1h", 24, 3600, 8, 20, 3600,
                 capacity);
    decay_config(&cf[12], "decay 48h/1h, half-life 4h, hyst 20%, dwell 1h", 48, 3600, 4, 20, 3600,
                 capacity);
    decay_config(&cf[13], "decay 48h/1h, half-life 8h, hyst 20%, dwell 1h", 48, 3600, 8, 20, 3600,
                 capacity);
    decay_config(&cf[14], "decay 6h/15min, half-life 2h, hyst 20%, dwell 1h", 6, 900, 2, 20, 3600,
                 capacity);
    /* Section 9c: the young-content scaling (tier_policy_score) on and off. */
    window_config(&cf[15], "window 6h/15min, hyst 20%, dwell 1h, no young scaling", 6, 900, 20,
                  3600, capacity);
    cf[15].no_born = true;
    window_config(&cf[16], "window 24h/1h, hyst 20%, dwell 1h, no young scaling", 24, 3600, 20,
                  3600, capacity);
    cf[16].no_born = true;
    window_config(&cf[17], "window 24h/1h, hyst 60%, dwell 1h", 24, 3600, 60, 3600, capacity);
}

/* ------------------------------------------------------------ main */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Each column's median over the runs, on its own. */
static result median(const result *r, int runs)
{
    result m;
    double *f = (double *)&m, v[64];
    for (size_t k = 0; k < sizeof(result) / sizeof(double); k++) {
        for (int i = 0; i < runs; i++)
            v[i] = ((const double *)&r[i])[k];
        qsort(v, (size_t)runs, sizeof(double), cmp_double);
        f[k] = runs % 2 ? v[runs / 2] : (v[runs / 2 - 1] + v[runs / 2]) / 2;
    }
    return m;
}

static void print_row(const char *name, const result *r, const result *oracle)
{
    printf("| %s | %.1f%% | %.2f | %.0f | %.1f | %.2f | %.0f | %.0f | %.2f | %.1f |\n", name,
           100 * r->hit, r->hit / oracle->hit, r->moved_gb, r->slice_gb, r->moves_mean,
           r->moves_max, r->backlog, r->peak_ratio, r->secs);
}

static bool chosen(const char *only, int c);

static void print_targets(const result *res, const config *cf, const result *oracle,
                          const char *only)
{
    printf("\nTargets (on the medians; oracle-rate reaches %.1f%% of the oracle's share):\n",
           100 * oracle[1].hit / oracle->hit);
    for (int i = 2; i < NCONF; i++) {
        if (!chosen(only, i))
            continue;
        double hit = res[i].hit / oracle->hit;
        /* Nothing moved on the slice: any seed figure is "infinitely" more. */
        double s1 = res[i].slice_gb > 0 ? res[SEED_1H].slice_gb / res[i].slice_gb : INFINITY;
        double s0 = res[i].slice_gb > 0 ? res[0].slice_gb / res[i].slice_gb : INFINITY;
        printf("- %s%s: gold hit share %.1f%% of the oracle's (%s), %.1f%% of oracle-rate's; "
               "slice bytes moved: seed-1h %.1fx (%s), seed-cum %.1fx (%s)\n",
               cf[i].name, i == JUDGED ? " [judged]" : "", 100 * hit, hit >= 0.9 ? "met" : "MISSED",
               100 * res[i].hit / oracle[1].hit, s1, s1 >= 5 ? "met" : "MISSED", s0,
               s0 >= 5 ? "met" : "MISSED");
    }
}

/* --only 1,2,17: the rows to run (all when absent). */
static bool chosen(const char *only, int c)
{
    char buf[16];
    size_t len;
    if (only == NULL)
        return true;
    len = (size_t)snprintf(buf, sizeof(buf), "%d", c);
    for (const char *p = only; (p = strstr(p, buf)) != NULL; p += len)
        if ((p == only || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
            return true;
    return false;
}

static void usage(void)
{
    die("usage: bench_policy [--contents N] [--days D] [--seed S] [--runs R] [--gold-per-h G] "
        "[--only I,J,...] [--quick]\n");
}

int main(int argc, char **argv)
{
    size_t n = 100000;
    const char *only = NULL;
    int days = 7, runs = 3;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            n = 3000, days = 2, runs = 1;
            continue;
        }
        if (v == NULL)
            usage();
        if (strcmp(a, "--contents") == 0)
            n = strtoul(v, NULL, 10);
        else if (strcmp(a, "--only") == 0)
            only = v;
        else if (strcmp(a, "--days") == 0)
            days = atoi(v);
        else if (strcmp(a, "--seed") == 0)
            seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--gold-per-h") == 0)
            gold_per_h = atof(v);
        else if (strcmp(a, "--runs") == 0)
            runs = atoi(v);
        else
            usage();
        i++;
    }
    if (!(gold_per_h > 0 && gold_per_h < 1e6) || n < 100 || n > UINT32_MAX || days < 1 ||
        days > 60 || runs < 1 || runs > 64)
        usage();

    result(*res)[NCONF + 2] = calloc((size_t)runs, sizeof(*res));
    config cf[NCONF];
    int64_t total = 0, cap = 0, views = 0;
    for (int r = 0; r < runs; r++) {
        trace t;
        double t0 = now_s();
        make_trace(&t, n, days, seed + (uint64_t)r);
        fprintf(stderr, "run %d (seed %llu): %zu view records, %.1f s to draw\n", r + 1,
                (unsigned long long)(seed + (uint64_t)r), t.nv, now_s() - t0);
        make_configs(cf, t.capacity);
        for (int c = 0; c < NCONF; c++)
            if (chosen(only, c))
                res[r][c] = run_policy(&t, &cf[c]);
        res[r][NCONF] = run_oracle(&t, false);
        res[r][NCONF + 1] = run_oracle(&t, true);
        total = t.total_bytes, cap = t.capacity;
        views = 0;
        for (size_t k = t.off[WARM_DAYS * 86400 / STEP_S]; k < t.nv; k++)
            views += t.views[k];
        free_trace(&t);
    }

    result med[NCONF + 2], col[64];
    for (int c = 0; c <= NCONF + 1; c++) {
        for (int r = 0; r < runs; r++)
            col[r] = res[r][c];
        med[c] = median(col, runs);
    }
    printf("bench_policy: %zu contents, %d days (+%d warm-up), seeds %llu..%llu, median of %d\n"
           "last run: %.0f GB in all, gold capacity %.0f GB, %lld views scored\n",
           n, days, WARM_DAYS, (unsigned long long)seed, (unsigned long long)(seed + runs - 1),
           runs, (double)total / 1e9, (double)cap / 1e9, (long long)views);
    printf(CONFIG_HELP, gold_per_h, gold_per_h / 2);
    printf("\n| policy | gold hit share | vs oracle | GB moved | slice GB moved | moves/content "
           "mean | max | max backlog | gold peak / capacity | s |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int c = 0; c < NCONF; c++)
        if (chosen(only, c))
            print_row(cf[c].name, &med[c], &med[NCONF]);
    print_row("oracle (next hour's views per byte, free moves)", &med[NCONF], &med[NCONF]);
    print_row("oracle-rate (next hour's expected views per byte, free moves)", &med[NCONF + 1],
              &med[NCONF]);
    print_targets(med, cf, &med[NCONF], only);
    free(res);
    return 0;
}
