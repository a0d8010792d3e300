/*
 * tier_policy.c -- the rules of tier_policy.h: validation, view buckets,
 * the plan (where each content belongs, in which order to move) and the
 * start gate (budgets and capacity at the moment a move would start).
 *
 * Every number here may come from a peer (a SetPolicy call, a report), so
 * arithmetic on them is overflow-safe: thresholds are derived with a split
 * multiplication, sums saturate, comparisons of views per byte use 128-bit
 * products.
 */
#include "tier_policy.h"

#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_S 86400
#define ANY_LEVEL(s) ((s)[0] == '\0')

void tier_policy_default(tier_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->mode = TIER_POLICY_SEED;
}

void tier_policy_window_defaults(tier_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->mode = TIER_POLICY_WINDOW;
    p->window_s = 7 * DAY_S;
    p->bucket_s = 3600;
    p->hysteresis_pct = 20;
    p->dwell_s = 3600;
    p->plan_interval_s = 10;
    p->max_inflight = 1000;
}

/* *a += b, stopping at INT64_MAX: byte sums add peers' sizes (b >= 0). */
static void add_sat(int64_t *a, int64_t b)
{
    if (__builtin_add_overflow(*a, b, a))
        *a = INT64_MAX;
}

/* now - then (ms, or views), 0 when then is larger, INT64_MAX when it does
 * not fit (times may come from MySQL rows an operator edited). */
static int64_t elapsed(int64_t now, int64_t then)
{
    int64_t d;
    if (now <= then)
        return 0;
    return __builtin_sub_overflow(now, then, &d) ? INT64_MAX : d;
}

/* ------------------------------------------------------------ validation */

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int find_name(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

/* x * (100 - h) / 100 without overflow, for 0 <= x and 0 <= h < 100. */
static int64_t scale_down(int64_t x, int32_t h)
{
    return x / 100 * (100 - h) + x % 100 * (100 - h) / 100;
}

/* A line in views as a line in 1/DECAY_SCALE views, saturating. */
static int64_t scale_line(int64_t x)
{
    return x > INT64_MAX / TIER_POLICY_DECAY_SCALE ? INT64_MAX : x * TIER_POLICY_DECAY_SCALE;
}

static int check_seed(const tier_policy *p, char *err, size_t errlen)
{
    if (p->window_s || p->bucket_s || p->demote_after_s || p->hysteresis_pct || p->dwell_s ||
        p->plan_interval_s || p->max_inflight || p->nlevels || p->nbudgets || p->half_life_s)
        return fail(err, errlen,
                    "mode seed takes no window, buckets, idle demotion, hysteresis, dwell, "
                    "plan interval, in-flight limit, level rules, budgets or half-life: use mode "
                    "window");
    return 0;
}

static int check_window(const tier_policy *p, char *err, size_t errlen)
{
    if (p->window_s < 60 || p->window_s > 31 * DAY_S)
        return fail(err, errlen, "window_s: 60 .. %d (got %lld)", 31 * DAY_S,
                    (long long)p->window_s);
    if (p->bucket_s < 60 || p->bucket_s > DAY_S || p->window_s % p->bucket_s != 0)
        return fail(err, errlen, "bucket_s: 60 .. %d and dividing window_s (got %lld)", DAY_S,
                    (long long)p->bucket_s);
    if (p->window_s / p->bucket_s > TIER_POLICY_BUCKETS_MAX)
        return fail(err, errlen, "window_s / bucket_s: at most %d buckets (got %lld)",
                    TIER_POLICY_BUCKETS_MAX, (long long)(p->window_s / p->bucket_s));
    if (p->demote_after_s < 0 || p->demote_after_s > 366 * DAY_S)
        return fail(err, errlen, "demote_after_s: 0 (off) .. %d", 366 * DAY_S);
    if (p->hysteresis_pct < 0 || p->hysteresis_pct > 99)
        return fail(err, errlen, "hysteresis_pct: 0 .. 99 (got %d)", (int)p->hysteresis_pct);
    if (p->dwell_s < 0 || p->dwell_s > 31 * DAY_S)
        return fail(err, errlen, "dwell_s: 0 (off) .. %d", 31 * DAY_S);
    if (p->plan_interval_s < 1 || p->plan_interval_s > 3600)
        return fail(err, errlen, "plan_interval_s: 1 .. 3600 (got %lld)",
                    (long long)p->plan_interval_s);
    if (p->max_inflight < 1 || p->max_inflight > 100000)
        return fail(err, errlen, "max_inflight: 1 .. 100000 (got %d)", (int)p->max_inflight);
    if (p->half_life_s != 0 && (p->half_life_s < 60 || p->half_life_s > p->window_s))
        return fail(err, errlen, "half_life_s: 0 (off) or 60 .. window_s (got %lld)",
                    (long long)p->half_life_s);
    if (p->nlevels > TIER_POLICY_LEVELS_MAX || p->nbudgets > TIER_POLICY_BUDGETS_MAX)
        return fail(err, errlen, "at most %d level rules and %d budgets", TIER_POLICY_LEVELS_MAX,
                    TIER_POLICY_BUDGETS_MAX);
    return 0;
}

static int check_rules(const tier_policy *p, const char *const *names, size_t n, char *err,
                       size_t errlen)
{
    for (size_t i = 0; i < p->nlevels; i++) {
        const tier_policy_level_rule *r = &p->levels[i];
        if (find_name(names, n, r->level) < 0)
            return fail(err, errlen, "levels[%zu]: no level named \"%s\"", i, r->level);
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->levels[j].level, r->level) == 0)
                return fail(err, errlen, "levels[%zu]: \"%s\" named twice", i, r->level);
        if (r->min_views < -1 || r->demote_below < -1 || r->capacity_bytes < 0)
            return fail(err, errlen,
                        "levels[%zu] (%s): min_views and demote_below are >= 0 (or -1: "
                        "default), capacity_bytes >= 0",
                        i, r->level);
    }
    for (size_t i = 0; i < p->nbudgets; i++) {
        const tier_policy_budget *b = &p->budgets[i];
        if ((!ANY_LEVEL(b->from) && find_name(names, n, b->from) < 0) ||
            (!ANY_LEVEL(b->to) && find_name(names, n, b->to) < 0))
            return fail(err, errlen, "budgets[%zu]: no level named \"%s\"", i,
                        find_name(names, n, b->from) < 0 && !ANY_LEVEL(b->from) ? b->from : b->to);
        if (!isfinite(b->files_per_s) || !isfinite(b->bytes_per_s) || b->files_per_s < 0 ||
            b->bytes_per_s < 0 || b->files_per_s > 1e9 || b->bytes_per_s > 1e15 ||
            (b->files_per_s == 0 && b->bytes_per_s == 0))
            return fail(err, errlen,
                        "budgets[%zu]: files_per_s 0 .. 1e9, bytes_per_s 0 .. 1e15, not both 0", i);
    }
    return 0;
}

static const tier_policy_level_rule *rule_of(const tier_policy *p, const char *name)
{
    for (size_t i = 0; i < p->nlevels; i++)
        if (strcmp(p->levels[i].level, name) == 0)
            return &p->levels[i];
    return NULL;
}

int tier_policy_resolve(const tier_policy *p, const char *const *names, const int64_t *mins,
                        const int64_t *maxs, size_t n, tier_policy_level *out, char *err,
                        size_t errlen)
{
    bool decay;

    if (n == 0 || n > TIER_POLICY_LEVELS_MAX)
        return fail(err, errlen, "the level table has %zu levels (1 .. %d)", n,
                    TIER_POLICY_LEVELS_MAX);
    if (p->mode != TIER_POLICY_SEED && p->mode != TIER_POLICY_WINDOW)
        return fail(err, errlen, "mode: seed or window");
    if ((p->mode == TIER_POLICY_SEED ? check_seed(p, err, errlen) : check_window(p, err, errlen)) ||
        check_rules(p, names, n, err, errlen))
        return -1;
    decay = p->mode == TIER_POLICY_WINDOW && p->half_life_s > 0;
    for (size_t i = 0; i < n; i++) {
        const tier_policy_level_rule *r = rule_of(p, names[i]);
        tier_policy_level *l = &out[i];
        l->name = names[i];
        l->min = mins[i];
        l->max = maxs[i];
        l->min_views = r && r->min_views >= 0 ? r->min_views : mins[i] < 0 ? 0 : mins[i];
        l->demote_below = r && r->demote_below >= 0 ? r->demote_below : -1;
        if (decay) { /* the decayed score's unit (a derived demote_below keeps the fraction) */
            l->min_views = scale_line(l->min_views);
            l->demote_below = l->demote_below >= 0 ? scale_line(l->demote_below) : -1;
        }
        if (l->demote_below < 0)
            l->demote_below = scale_down(l->min_views, p->hysteresis_pct);
        l->capacity_bytes = r ? r->capacity_bytes : 0;
        if (i == 0 && l->min_views != 0)
            return fail(err, errlen, "level %s: the bottom level's min_views must be 0", l->name);
        if (i > 0 && l->min_views <= out[i - 1].min_views)
            return fail(err, errlen, "level %s: min_views %lld must be above %s's %lld", l->name,
                        (long long)l->min_views, out[i - 1].name, (long long)out[i - 1].min_views);
        if (l->demote_below > l->min_views)
            return fail(err, errlen, "level %s: demote_below %lld is above min_views %lld", l->name,
                        (long long)l->demote_below, (long long)l->min_views);
    }
    return 0;
}

/* ------------------------------------------------------------ view buckets */

struct tier_policy_views {
    int64_t head; /* index (time / bucket_s) of the newest bucket */
    uint32_t nb;
    uint32_t b[]; /* bucket k lives at b[k % nb] */
};

tier_policy_views *tier_policy_views_alloc(unsigned nb)
{
    tier_policy_views *v;

    if (nb == 0 || nb > TIER_POLICY_BUCKETS_MAX)
        return NULL;
    if ((v = calloc(1, sizeof(*v) + nb * sizeof(uint32_t))) != NULL) {
        v->nb = nb;
        v->head = INT64_MIN;
    }
    return v;
}

void tier_policy_views_free(tier_policy_views *v)
{
    free(v);
}

unsigned tier_policy_views_nb(const tier_policy_views *v)
{
    return v->nb;
}

static int64_t bucket_of(int64_t t_ms, int64_t bucket_s)
{
    int64_t s = t_ms / 1000 - (t_ms % 1000 < 0);
    return s / bucket_s - (s % bucket_s < 0);
}

static uint32_t *slot(const tier_policy_views *v, int64_t k)
{
    int64_t i = k % (int64_t)v->nb;
    return (uint32_t *)&v->b[i < 0 ? i + v->nb : i];
}

void tier_policy_views_add(tier_policy_views *v, int64_t bucket_s, int64_t t_ms, int64_t views)
{
    int64_t k = bucket_of(t_ms, bucket_s);
    uint32_t *b;

    if (views <= 0)
        return;
    if (v->head == INT64_MIN || k - v->head >= (int64_t)v->nb) {
        memset(v->b, 0, v->nb * sizeof(uint32_t));
        v->head = k;
    } else if (k > v->head) {
        for (int64_t j = v->head + 1; j <= k; j++)
            *slot(v, j) = 0;
        v->head = k;
    } else if (v->head - k >= (int64_t)v->nb) {
        return; /* older than the ring */
    }
    b = slot(v, k);
    *b = (uint64_t)*b + (uint64_t)views > UINT32_MAX ? UINT32_MAX : *b + (uint32_t)views;
}

int64_t tier_policy_views_sum(const tier_policy_views *v, int64_t bucket_s, int64_t now_ms,
                              int64_t window_s)
{
    int64_t kn, nwin, sum = 0, lo, hi;

    if (v == NULL || v->head == INT64_MIN || bucket_s <= 0 || (nwin = window_s / bucket_s) <= 0)
        return 0;
    kn = bucket_of(now_ms, bucket_s);
    hi = kn < v->head ? kn : v->head;
    lo = kn - nwin + 1;
    if (lo < v->head - (int64_t)v->nb + 1)
        lo = v->head - (int64_t)v->nb + 1;
    for (int64_t k = lo; k <= hi; k++)
        sum += *slot(v, k); /* <= 744 * UINT32_MAX: no overflow */
    return sum;
}

void tier_policy_decay_init(tier_policy_decay *d, int64_t bucket_s, int64_t now_ms,
                            int64_t window_s, int64_t half_life_s)
{
    int64_t nwin = bucket_s > 0 ? window_s / bucket_s : 0;

    memset(d, 0, offsetof(tier_policy_decay, w));
    if (nwin <= 0)
        return;
    if (nwin > TIER_POLICY_BUCKETS_MAX)
        nwin = TIER_POLICY_BUCKETS_MAX;
    d->bucket_s = bucket_s;
    d->kn = bucket_of(now_ms, bucket_s);
    d->nwin = (unsigned)nwin;
    for (unsigned j = 0; j < d->nwin; j++) {
        /* now - the midpoint of bucket kn - j, in ms */
        double age = (double)now_ms - ((double)(d->kn - j) + 0.5) * (double)bucket_s * 1000.0;
        d->w[j] = half_life_s > 0 && age > 0
                      ? TIER_POLICY_DECAY_SCALE * exp2(-age / (1000.0 * (double)half_life_s))
                      : TIER_POLICY_DECAY_SCALE;
    }
}

int64_t tier_policy_views_decayed(const tier_policy_views *v, const tier_policy_decay *d)
{
    int64_t hi, lo;
    double sum = 0;

    if (v == NULL || v->head == INT64_MIN || d->nwin == 0)
        return 0;
    hi = d->kn < v->head ? d->kn : v->head;
    lo = d->kn - (int64_t)d->nwin + 1;
    if (lo < v->head - (int64_t)v->nb + 1)
        lo = v->head - (int64_t)v->nb + 1;
    for (int64_t k = lo; k <= hi; k++)
        sum += (double)*slot(v, k) * d->w[d->kn - k];
    return (int64_t)sum; /* <= 744 * UINT32_MAX * 1000 < 2^62 */
}

void tier_policy_views_each(const tier_policy_views *v, int64_t bucket_s,
                            void (*fn)(void *arg, int64_t start_s, int64_t views), void *arg)
{
    if (v->head == INT64_MIN)
        return;
    for (int64_t k = v->head - (int64_t)v->nb + 1; k <= v->head; k++)
        if (*slot(v, k) != 0)
            fn(arg, k * bucket_s, *slot(v, k));
}

/* ------------------------------------------------------------ planning */

const char *tier_policy_rule_name(tier_policy_rule r)
{
    return r == TIER_POLICY_RULE_IDLE       ? "idle"
           : r == TIER_POLICY_RULE_CAPACITY ? "capacity"
                                            : "range";
}

/* The seed rule: the level whose [min, max] holds the count. */
static int seed_level(const tier_policy_level *lv, size_t nlv, int64_t count)
{
    for (size_t i = 0; i < nlv; i++)
        if (count >= lv[i].min && count <= lv[i].max)
            return (int)i;
    return -1;
}

/* The highest level whose promotion line the score reaches. */
static int score_level(const tier_policy_level *lv, size_t nlv, int64_t score)
{
    int k = 0;
    for (size_t i = 1; i < nlv; i++)
        if (score >= lv[i].min_views)
            k = (int)i;
    return k;
}

/* Idle since its last view, its last move, or the start of counting --
 * whichever is latest: views before counting began are unknown. */
static int64_t idle_ms(const tier_policy *p, const tier_policy_item *it, int64_t now_ms)
{
    int64_t last = it->last_access_ms > it->since_ms ? it->last_access_ms : it->since_ms;
    if (p->counting_since_ms > last)
        last = p->counting_since_ms;
    return elapsed(now_ms, last);
}

/* Has a whole window been counted?  Before that a low score proves
 * nothing (its views fell before counting began), so nothing is demoted
 * for it -- else switching to a window policy would demote every content
 * at once. */
static bool window_counted(const tier_policy *p, int64_t now_ms)
{
    return p->counting_since_ms <= 0 || elapsed(now_ms, p->counting_since_ms) >= p->window_s * 1000;
}

int64_t tier_policy_score(const tier_policy *p, const tier_policy_item *it, int64_t now_ms)
{
    int64_t from = it->born_ms > p->counting_since_ms ? it->born_ms : p->counting_since_ms;
    int64_t seen_s, scaled;

    if (p->mode != TIER_POLICY_WINDOW || p->half_life_s > 0 || it->score <= 0 || from <= 0)
        return it->score;
    seen_s = elapsed(now_ms, from) / 1000;
    if (seen_s >= p->window_s)
        return it->score;
    if (seen_s < p->bucket_s)
        seen_s = p->bucket_s;
    if (seen_s >= p->window_s)
        return it->score;
    scaled = (int64_t)((__int128)it->score * p->window_s / seen_s > INT64_MAX
                           ? INT64_MAX
                           : (__int128)it->score * p->window_s / seen_s);
    return scaled;
}

/* tier_policy_want on an item whose score is already the rules' score. */
static int want_scored(const tier_policy *p, const tier_policy_level *lv, size_t nlv,
                       const tier_policy_item *it, int64_t now_ms, tier_policy_rule *rule)
{
    int k;

    *rule = TIER_POLICY_RULE_RANGE;
    if (it->score < 0 || it->level < 0 || it->level >= (int)nlv)
        return it->level; /* nothing known: left alone */
    if (p->mode == TIER_POLICY_SEED)
        return (k = seed_level(lv, nlv, it->score)) < 0 ? it->level : k;
    if (p->demote_after_s > 0 && it->level > 0 &&
        idle_ms(p, it, now_ms) / 1000 >= p->demote_after_s) {
        *rule = TIER_POLICY_RULE_IDLE;
        return 0;
    }
    k = score_level(lv, nlv, it->score);
    if (k > it->level || (it->score < lv[it->level].demote_below && window_counted(p, now_ms)))
        return k;
    return it->level;
}

int tier_policy_want(const tier_policy *p, const tier_policy_level *lv, size_t nlv,
                     const tier_policy_item *it, int64_t now_ms, tier_policy_rule *rule)
{
    tier_policy_item scored = *it;
    scored.score = tier_policy_score(p, it, now_ms);
    return want_scored(p, lv, nlv, &scored, now_ms, rule);
}

typedef struct {
    tier_policy_item *it;
    int want, final;
    tier_policy_rule rule;
    bool fixed;
    int64_t rank; /* the score used for capacity order (incumbents boosted) */
} slot_t;

static int64_t size_of(const tier_policy_item *it)
{
    return it->size > 0 ? it->size : 0;
}

/* More views per byte first; then higher current level; then cid. */
static int by_density(const void *a, const void *b)
{
    const slot_t *x = a, *y = b;
    __int128 l = (__int128)x->rank * (size_of(y->it) > 0 ? size_of(y->it) : 1);
    __int128 r = (__int128)y->rank * (size_of(x->it) > 0 ? size_of(x->it) : 1);
    if (l != r)
        return l > r ? -1 : 1;
    if (x->it->level != y->it->level)
        return x->it->level > y->it->level ? -1 : 1;
    return x->it->cid < y->it->cid ? -1 : x->it->cid > y->it->cid;
}

static bool any_capacity(const tier_policy_level *lv, size_t nlv)
{
    for (size_t i = 0; i < nlv; i++)
        if (lv[i].capacity_bytes > 0)
            return true;
    return false;
}

static bool fits(const tier_policy_level *l, int64_t used, int64_t size)
{
    return l->capacity_bytes == 0 ||
           (used <= l->capacity_bytes - size && size <= l->capacity_bytes);
}

/* x * 100 / (100 - h), saturating at INT64_MAX: a score near INT64_MAX
 * (from a peer) must not wrap into a negative rank.  Unknown (negative)
 * scores get no boost. */
static int64_t scale_up(int64_t x, int32_t h)
{
    int64_t d = 100 - h, q = x / d, t = x % d * 100 / d;
    if (x < 0)
        return x;
    return q > (INT64_MAX - t) / 100 ? INT64_MAX : q * 100 + t;
}

/* Places the movable items, most views per byte first, each on the highest
 * level at or below where it wants to be that has room; fixed items took
 * their room first.  An item with no room anywhere stays put. */
static void place(const tier_policy *p, const tier_policy_level *lv, size_t nlv, slot_t *s,
                  size_t n, tier_policy_summary *sum)
{
    int64_t used[TIER_POLICY_LEVELS_MAX] = {0};

    for (size_t i = 0; i < n; i++)
        if (s[i].fixed && s[i].final >= 0)
            add_sat(&used[s[i].final], size_of(s[i].it));
    for (size_t i = 0; i < n; i++) {
        /* An incumbent competes with its score raised by the hysteresis, so
         * two contents of nearly equal popularity do not swap places. */
        bool inc = s[i].it->level == s[i].want && p->hysteresis_pct > 0;
        s[i].rank = inc ? scale_up(s[i].it->score, p->hysteresis_pct) : s[i].it->score;
    }
    qsort(s, n, sizeof(*s), by_density);
    for (size_t i = 0; i < n; i++) {
        int64_t sz = size_of(s[i].it);
        int l = s[i].want;
        if (s[i].fixed || l < 0)
            continue;
        while (l >= 0 && !fits(&lv[l], used[l], sz))
            l--;
        if (l < 0)
            l = s[i].it->level; /* nowhere has room: stay (tier's moves overfill nothing) */
        if (l < s[i].want) {
            sum->held_capacity++;
            if (l != s[i].it->level)
                s[i].rule = TIER_POLICY_RULE_CAPACITY;
        }
        s[i].final = l;
        add_sat(&used[l], sz);
    }
    (void)nlv;
}

static int64_t gap_of(const tier_policy *p, const tier_policy_level *lv, const slot_t *s,
                      int64_t now_ms)
{
    const tier_policy_item *it = s->it;
    int64_t g;

    if (s->rule == TIER_POLICY_RULE_IDLE)
        return idle_ms(p, it, now_ms) / 1000;
    if (s->final > it->level)
        g = elapsed(it->score,
                    p->mode == TIER_POLICY_SEED ? lv[s->final].min : lv[s->final].min_views);
    else
        g = elapsed(p->mode == TIER_POLICY_SEED ? lv[it->level].min : lv[it->level].demote_below,
                    it->score);
    return g;
}

/* Promotions first, larger gap first, then cid. */
static int by_order(const void *a, const void *b)
{
    const tier_policy_move *x = a, *y = b;
    bool px = x->to > x->from, py = y->to > y->from;
    if (px != py)
        return px ? -1 : 1;
    if (x->gap != y->gap)
        return x->gap > y->gap ? -1 : 1;
    return x->cid < y->cid ? -1 : x->cid > y->cid;
}

static void count_now(const tier_policy_item *it, tier_policy_summary *sum)
{
    if (it->level >= 0) {
        sum->files_now[it->level]++;
        add_sat(&sum->bytes_now[it->level], size_of(it));
    }
    if (it->moving_to >= 0 && it->moving_to != it->level) {
        sum->files_now[it->moving_to]++;
        add_sat(&sum->bytes_now[it->moving_to], size_of(it));
    }
}

int tier_policy_plan(const tier_policy *p, const tier_policy_level *lv, size_t nlv,
                     tier_policy_item *items, size_t n, int64_t now_ms, tier_policy_move *moves,
                     size_t *nmoves, tier_policy_summary *sum)
{
    slot_t *s = calloc(n ? n : 1, sizeof(*s));
    size_t m = 0;

    if (s == NULL)
        return -1;
    memset(sum, 0, sizeof(*sum));
    for (size_t i = 0; i < n; i++) {
        tier_policy_item *it = &items[i];
        if (it->level >= (int)nlv || it->moving_to >= (int)nlv)
            it->level = it->moving_to = -1; /* not of this table: left alone */
        s[i].it = it;
        count_now(it, sum);
        s[i].fixed = it->level < 0 || it->moving_to >= 0;
        s[i].want = s[i].final = it->moving_to >= 0 ? it->moving_to : it->level;
        if (s[i].fixed)
            continue;
        it->score = tier_policy_score(p, it, now_ms); /* capacity and gaps use it too */
        s[i].want = want_scored(p, lv, nlv, it, now_ms, &s[i].rule);
        if (s[i].want != it->level && p->dwell_s > 0 &&
            elapsed(now_ms, it->since_ms) < p->dwell_s * 1000) {
            sum->held_dwell++;
            s[i].want = it->level;
            s[i].fixed = true;
        }
        s[i].final = s[i].want;
    }
    if (p->mode == TIER_POLICY_WINDOW && any_capacity(lv, nlv))
        place(p, lv, nlv, s, n, sum);
    for (size_t i = 0; i < n; i++) {
        tier_policy_item *it = s[i].it;
        if (s[i].final >= 0) {
            sum->files_after[s[i].final]++;
            add_sat(&sum->bytes_after[s[i].final], size_of(it));
        }
        if (s[i].fixed || s[i].final == it->level || s[i].final < 0)
            continue;
        moves[m++] = (tier_policy_move){it->cid,
                                        it->level,
                                        s[i].final,
                                        s[i].rule,
                                        it->score,
                                        size_of(it),
                                        gap_of(p, lv, &s[i], now_ms)};
    }
    free(s);
    qsort(moves, m, sizeof(*moves), by_order);
    *nmoves = m;
    return 0;
}

/* ------------------------------------------------------------ starting moves */

void tier_policy_gate_init(tier_policy_gate *g, int64_t now_ms)
{
    memset(g, 0, sizeof(*g));
    g->at_ms = now_ms; /* primed false: the first refill fills every bucket */
}

static void refill(const tier_policy *p, tier_policy_gate *g, int64_t now_ms)
{
    double dt = (double)elapsed(now_ms, g->at_ms) / 1000.0;

    for (size_t j = 0; j < p->nbudgets; j++) {
        const tier_policy_budget *b = &p->budgets[j];
        double fb = b->files_per_s > 1 ? b->files_per_s : 1; /* a second's worth */
        double bb = b->bytes_per_s;
        g->files[j] = g->primed ? g->files[j] + b->files_per_s * dt : fb;
        g->bytes[j] = g->primed ? g->bytes[j] + b->bytes_per_s * dt : bb;
        if (g->files[j] > fb)
            g->files[j] = fb;
        if (g->bytes[j] > bb)
            g->bytes[j] = bb;
    }
    g->primed = true;
    g->at_ms = now_ms > g->at_ms ? now_ms : g->at_ms;
}

static bool matches(const tier_policy_budget *b, const tier_policy_level *lv,
                    const tier_policy_move *m)
{
    return (ANY_LEVEL(b->from) || strcmp(b->from, lv[m->from].name) == 0) &&
           (ANY_LEVEL(b->to) || strcmp(b->to, lv[m->to].name) == 0);
}

static bool budget_room(const tier_policy *p, const tier_policy_level *lv,
                        const tier_policy_gate *g, const tier_policy_move *m)
{
    for (size_t j = 0; j < p->nbudgets; j++) {
        const tier_policy_budget *b = &p->budgets[j];
        if (!matches(b, lv, m))
            continue;
        if ((b->files_per_s > 0 && g->files[j] < 1) || (b->bytes_per_s > 0 && g->bytes[j] <= 0))
            return false;
    }
    return true;
}

static void budget_take(const tier_policy *p, const tier_policy_level *lv, tier_policy_gate *g,
                        const tier_policy_move *m)
{
    for (size_t j = 0; j < p->nbudgets; j++) {
        if (!matches(&p->budgets[j], lv, m))
            continue;
        if (p->budgets[j].files_per_s > 0)
            g->files[j] -= 1;
        if (p->budgets[j].bytes_per_s > 0)
            g->bytes[j] -= (double)m->size; /* may go into debt by this one move */
    }
}

size_t tier_policy_start(const tier_policy *p, const tier_policy_level *lv, size_t nlv,
                         tier_policy_gate *g, int64_t now_ms, const tier_policy_move *moves,
                         size_t n, size_t room, tier_policy_summary *sum, bool *start,
                         tier_policy_start_stats *st)
{
    size_t k = 0;

    memset(st, 0, sizeof(*st));
    refill(p, g, now_ms);
    for (size_t i = 0; i < n; i++) {
        const tier_policy_move *m = &moves[i];
        start[i] = false;
        if (m->to < 0 || m->to >= (int)nlv || m->from < 0 || m->from >= (int)nlv)
            continue;
        if (k >= room) {
            st->throttled++;
            add_sat(&st->throttled_bytes, m->size);
            continue;
        }
        /* A move within one level (a level migration: the same level, a
         * new directory) adds no bytes to it: capacity never holds it. */
        if (m->from != m->to && !fits(&lv[m->to], sum->bytes_now[m->to], m->size)) {
            st->waiting_capacity++;
            continue;
        }
        if (!budget_room(p, lv, g, m)) {
            st->throttled++;
            add_sat(&st->throttled_bytes, m->size);
            continue;
        }
        budget_take(p, lv, g, m);
        if (m->from != m->to) {
            add_sat(&sum->bytes_now[m->to], m->size);
            sum->files_now[m->to]++;
        }
        start[i] = true;
        k++;
    }
    st->started = (int64_t)k;
    return k;
}
