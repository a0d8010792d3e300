/*
 * tiering_policy.c -- the current tiering policy (policy/tier_policy.h)
 * and its methods: GetPolicy, SetPolicy, PlanMoves; plus the plan over
 * every content that PlanMoves, SetLevels --dry-run and the planner share.
 *
 * Where the policy lives: MySQL's tier_policy table, one row per version,
 * the body being the Policy message in protobuf's JSON mapping (the HTTP
 * gateway's encoder), so `SELECT body FROM tier_policy` is readable.  No
 * row means the built-in seed policy, version 0.  A stored policy that no
 * longer fits the level table stops tierd at start (it cannot happen
 * through the RPCs: SetLevels refuses a table the policy does not fit);
 * falling back to another policy silently would move files nobody asked
 * to move.
 *
 * Locking: `mu` guards the policy and its resolved levels; it is a leaf
 * lock (taken under a stripe mutex by tiering_policy_want, never held
 * while taking another).
 */
#include "tiering_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_crash.h"
#include "tier_log.h"
#include "tier_methods.h"
#include "tier_rpc_json.h"
#include "tier_time.h"

#define PLAN_LIMIT_DEFAULT 100
#define PLAN_LIMIT_MAX 10000

struct tl_policy {
    pthread_mutex_t mu;
    tier_policy p;
    int64_t version, set_ms;
    char set_by[64];
    tier_policy_level lv[TIER_POLICY_LEVELS_MAX]; /* resolved against the current table */
    size_t nlv;
    _Atomic int mode;
};

/* ------------------------------------------------------------ conversions */

static int copy_name(char *dst, const char *src, const char *what, size_t i, char *err,
                     size_t errlen)
{
    size_t n = strlen(src);
    if (n > TIER_POLICY_NAME_MAX) {
        snprintf(err, errlen, "%s[%zu]: level names are at most %d bytes", what, i,
                 TIER_POLICY_NAME_MAX);
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

static int policy_from_pb(const Tier__Policy *pb, tier_policy *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (pb->mode[0] == '\0' || strcmp(pb->mode, "seed") == 0)
        p->mode = TIER_POLICY_SEED;
    else if (strcmp(pb->mode, "window") == 0)
        p->mode = TIER_POLICY_WINDOW;
    else
        return snprintf(err, errlen, "mode: \"seed\" or \"window\""), -1;
    if (pb->n_levels > TIER_POLICY_LEVELS_MAX || pb->n_budgets > TIER_POLICY_BUDGETS_MAX)
        return snprintf(err, errlen, "at most %d levels and %d budgets", TIER_POLICY_LEVELS_MAX,
                        TIER_POLICY_BUDGETS_MAX),
               -1;
    p->window_s = pb->window_s;
    p->bucket_s = pb->bucket_s;
    p->demote_after_s = pb->demote_after_s;
    p->hysteresis_pct = pb->hysteresis_pct;
    p->dwell_s = pb->dwell_s;
    p->plan_interval_s = pb->plan_interval_s;
    p->max_inflight = pb->max_inflight;
    p->half_life_s = pb->half_life_s;
    for (size_t i = 0; i < pb->n_levels; i++) {
        const Tier__LevelRule *r = pb->levels[i];
        if (copy_name(p->levels[i].level, r->level, "levels", i, err, errlen) != 0)
            return -1;
        p->levels[i].min_views = r->min_views;
        p->levels[i].demote_below = r->demote_below;
        p->levels[i].capacity_bytes = r->capacity_bytes;
    }
    p->nlevels = pb->n_levels;
    for (size_t i = 0; i < pb->n_budgets; i++) {
        const Tier__MoveBudget *b = pb->budgets[i];
        if (copy_name(p->budgets[i].from, b->from, "budgets", i, err, errlen) != 0 ||
            copy_name(p->budgets[i].to, b->to, "budgets", i, err, errlen) != 0)
            return -1;
        p->budgets[i].files_per_s = b->files_per_s;
        p->budgets[i].bytes_per_s = b->bytes_per_s;
    }
    p->nbudgets = pb->n_budgets;
    return 0;
}

/* The policy as a message; strings point into p (or into the call's arena
 * when call is not NULL). */
static Tier__Policy *policy_to_pb(tier_rpc_ctx *call, const tier_policy *p, Tier__Policy *pb,
                                  Tier__LevelRule *rules, Tier__LevelRule **rp,
                                  Tier__MoveBudget *budgets, Tier__MoveBudget **bp)
{
    tier__policy__init(pb);
    pb->mode = (char *)(p->mode == TIER_POLICY_WINDOW ? "window" : "seed");
    pb->window_s = p->window_s;
    pb->bucket_s = p->bucket_s;
    pb->demote_after_s = p->demote_after_s;
    pb->hysteresis_pct = p->hysteresis_pct;
    pb->dwell_s = p->dwell_s;
    pb->plan_interval_s = p->plan_interval_s;
    pb->max_inflight = p->max_inflight;
    pb->half_life_s = p->half_life_s;
    pb->counting_since_ms = p->counting_since_ms;
    for (size_t i = 0; i < p->nlevels; i++) {
        tier__level_rule__init(&rules[i]);
        rules[i].level =
            call ? tier_rpc_strdup(call, p->levels[i].level) : (char *)p->levels[i].level;
        rules[i].min_views = p->levels[i].min_views;
        rules[i].demote_below = p->levels[i].demote_below;
        rules[i].capacity_bytes = p->levels[i].capacity_bytes;
        rp[i] = &rules[i];
    }
    pb->levels = rp;
    pb->n_levels = p->nlevels;
    for (size_t i = 0; i < p->nbudgets; i++) {
        tier__move_budget__init(&budgets[i]);
        budgets[i].from =
            call ? tier_rpc_strdup(call, p->budgets[i].from) : (char *)p->budgets[i].from;
        budgets[i].to = call ? tier_rpc_strdup(call, p->budgets[i].to) : (char *)p->budgets[i].to;
        budgets[i].files_per_s = p->budgets[i].files_per_s;
        budgets[i].bytes_per_s = p->budgets[i].bytes_per_s;
        bp[i] = &budgets[i];
    }
    pb->budgets = bp;
    pb->n_budgets = p->nbudgets;
    return pb;
}

/* The policy as a message in the call's arena. */
static Tier__Policy *policy_reply(tier_rpc_ctx *call, const tier_policy *p, int64_t version,
                                  int64_t set_ms, const char *set_by)
{
    Tier__Policy *pb = tier_rpc_alloc(call, sizeof(*pb));
    Tier__LevelRule *rules = tier_rpc_alloc(call, (p->nlevels + 1) * sizeof(*rules));
    Tier__LevelRule **rp = tier_rpc_alloc(call, (p->nlevels + 1) * sizeof(*rp));
    Tier__MoveBudget *budgets = tier_rpc_alloc(call, (p->nbudgets + 1) * sizeof(*budgets));
    Tier__MoveBudget **bp = tier_rpc_alloc(call, (p->nbudgets + 1) * sizeof(*bp));

    if (pb == NULL || rules == NULL || rp == NULL || budgets == NULL || bp == NULL)
        return NULL;
    policy_to_pb(call, p, pb, rules, rp, budgets, bp);
    pb->version = version;
    pb->set_time_ms = set_ms;
    pb->set_by = tier_rpc_strdup(call, set_by);
    return pb;
}

/* The policy as JSON text (malloc'ed), as stored in MySQL. */
static char *policy_json(const tier_policy *p)
{
    Tier__LevelRule rules[TIER_POLICY_LEVELS_MAX], *rp[TIER_POLICY_LEVELS_MAX];
    Tier__MoveBudget budgets[TIER_POLICY_BUDGETS_MAX], *bp[TIER_POLICY_BUDGETS_MAX];
    Tier__Policy pb;
    uint8_t *buf;
    size_t len, olen;
    char *out = NULL, err[256];

    policy_to_pb(NULL, p, &pb, rules, rp, budgets, bp);
    len = tier__policy__get_packed_size(&pb);
    if ((buf = malloc(len + 1)) != NULL) {
        tier__policy__pack(&pb, buf);
        if (tier_rpc_json_from_pb(&tier__policy__descriptor, buf, len, &out, &olen, err,
                                  sizeof(err)) != TIER_OK)
            out = NULL;
        free(buf);
    }
    return out;
}

static int policy_parse_json(const char *text, tier_policy *p, char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    Tier__Policy *pb;
    int rv;

    if (tier_rpc_json_to_pb(&tier__policy__descriptor, text, strlen(text), NULL, &buf, &len, err,
                            errlen) != TIER_OK)
        return -1;
    pb = tier__policy__unpack(NULL, len, buf);
    free(buf);
    if (pb == NULL)
        return snprintf(err, errlen, "not a Policy message"), -1;
    rv = policy_from_pb(pb, p, err, errlen);
    p->counting_since_ms = pb->counting_since_ms; /* tierd's own, stored with it */
    tier__policy__free_unpacked(pb, NULL);
    return rv;
}

/* Views are counted from the switch to a window policy on; a change
 * between window policies keeps counting (the buckets are kept). */
static void carry_counting(tiering *t, tier_policy *p, int64_t now_ms)
{
    tier_policy old;
    tiering_policy_get(t, &old);
    if (p->mode != TIER_POLICY_WINDOW)
        p->counting_since_ms = 0;
    else if (old.mode == TIER_POLICY_WINDOW)
        p->counting_since_ms = old.counting_since_ms;
    else
        p->counting_since_ms = now_ms;
}

/* ------------------------------------------------------------ resolving */

static int resolve(const tier_policy *p, const level_table *lt, tier_policy_level *lv, char *err,
                   size_t errlen)
{
    const char *names[TIER_POLICY_LEVELS_MAX];
    int64_t mins[TIER_POLICY_LEVELS_MAX], maxs[TIER_POLICY_LEVELS_MAX];

    if (lt->n > TIER_POLICY_LEVELS_MAX)
        return snprintf(err, errlen, "more than %d levels", TIER_POLICY_LEVELS_MAX), -1;
    for (size_t i = 0; i < lt->n; i++) {
        names[i] = lt->v[i].name; /* interned: lv[i].name == a content's level */
        mins[i] = lt->v[i].min;
        maxs[i] = lt->v[i].max;
    }
    return tier_policy_resolve(p, names, mins, maxs, lt->n, lv, err, errlen);
}

tier_policy_mode tiering_policy_mode(tiering *t)
{
    return (tier_policy_mode)atomic_load(&t->policy->mode);
}

int64_t tiering_policy_version(tiering *t)
{
    int64_t v;
    pthread_mutex_lock(&t->policy->mu);
    v = t->policy->version;
    pthread_mutex_unlock(&t->policy->mu);
    return v;
}

int64_t tiering_level_capacity(tiering *t, const char *level)
{
    int64_t cap = 0;
    pthread_mutex_lock(&t->policy->mu);
    for (size_t i = 0; i < t->policy->nlv; i++)
        if (strcmp(t->policy->lv[i].name, level) == 0)
            cap = t->policy->lv[i].capacity_bytes;
    pthread_mutex_unlock(&t->policy->mu);
    return cap;
}

void tiering_policy_get(tiering *t, tier_policy *p)
{
    pthread_mutex_lock(&t->policy->mu);
    *p = t->policy->p;
    pthread_mutex_unlock(&t->policy->mu);
}

static int level_index(const tier_policy_level *lv, size_t nlv, const char *name)
{
    for (size_t i = 0; i < nlv; i++)
        if (lv[i].name == name)
            return (int)i;
    return -1;
}

/* The weights of a decayed score for rings of bucket_s at now (once per
 * plan: the same for every content whose ring has that shape). */
static void decay_for(tier_policy_decay *d, const tier_policy *p, int64_t bucket_s, int64_t now_ms)
{
    if (d->nwin == 0 || d->bucket_s != bucket_s)
        tier_policy_decay_init(d, bucket_s, now_ms, p->window_s, p->half_life_s);
}

/* c as the planner sees it (c's stripe mutex held).  d: the decayed
 * score's weights, filled on first use (zeroed by the caller). */
static void item_of(const tier_policy *p, const tier_policy_level *lv, size_t nlv, const content *c,
                    int64_t now_ms, tier_policy_decay *d, tier_policy_item *it)
{
    int here = level_index(lv, nlv, c->level);
    it->cid = c->cid;
    it->level = here;
    /* A job whose target we do not know (a report's, fsck's) pins the
     * content where it is: the plan leaves it alone until it is done. */
    it->moving_to = !c->has_job ? -1 : c->moving_to ? level_index(lv, nlv, c->moving_to) : here;
    if (c->has_job && it->moving_to < 0)
        it->moving_to = here;
    it->size = c->size;
    if (p->mode != TIER_POLICY_WINDOW) {
        it->score = c->count;
    } else if (p->half_life_s > 0) {
        decay_for(d, p, c->views_bs, now_ms);
        it->score = tier_policy_views_decayed(c->views, d);
    } else {
        it->score = tier_policy_views_sum(c->views, c->views_bs, now_ms, p->window_s);
    }
    it->last_access_ms = c->last_access_ms;
    it->since_ms = c->since_ms;
    it->born_ms = c->born_ms;
}

const char *tiering_policy_want(tiering *t, const content *c, int64_t now_ms)
{
    struct tl_policy *tp = t->policy;
    tier_policy_decay d;
    tier_policy_item it;
    tier_policy_rule rule;
    const char *name;
    int k;

    pthread_mutex_lock(&tp->mu);
    d.nwin = 0;
    item_of(&tp->p, tp->lv, tp->nlv, c, now_ms, &d, &it);
    k = tier_policy_want(&tp->p, tp->lv, tp->nlv, &it, now_ms, &rule);
    name = k >= 0 ? tp->lv[k].name : c->level;
    pthread_mutex_unlock(&tp->mu);
    return name;
}

/* ------------------------------------------------------------ the plan */

typedef struct {
    const tier_policy *p;
    const tier_policy_level *lv;
    size_t nlv;
    int64_t now_ms;
    tl_plan *out;
    size_t cap;
    bool oom;
    tier_policy_decay *decay; /* a half-life's weights, filled on first use */
} collect_arg;

static void collect(void *arg, content *c)
{
    collect_arg *a = arg;
    tl_plan *pl = a->out;

    if (pl->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4096;
        tier_policy_item *v = realloc(pl->items, cap * sizeof(*v));
        if (v == NULL) {
            a->oom = true;
            return;
        }
        pl->items = v;
        a->cap = cap;
    }
    item_of(a->p, a->lv, a->nlv, c, a->now_ms, a->decay, &pl->items[pl->n]);
    if (c->has_job && c->moving_to != NULL)
        pl->inflight++;
    if (a->p->mode == TIER_POLICY_SEED && c->count < 0)
        pl->unknown++;
    pl->n++;
}

int tiering_plan_run(tiering *t, const tier_policy *p, const level_table *lt, int64_t now_ms,
                     tl_plan *out, char *err, size_t errlen)
{
    tier_policy_decay d;
    collect_arg a = {p, out->lv, 0, now_ms, out, 0, false, &d};

    d.nwin = 0;
    memset(out, 0, sizeof(*out));
    if (resolve(p, lt, out->lv, err, errlen) != 0)
        return TIER_INVALID_ARGUMENT;
    out->nlv = a.nlv = lt->n;
    tiering_each(t, collect, &a);
    if (a.oom || (out->moves = malloc((out->n + 1) * sizeof(*out->moves))) == NULL ||
        tier_policy_plan(p, out->lv, out->nlv, out->items, out->n, now_ms, out->moves, &out->nmoves,
                         &out->sum) != 0) {
        tiering_plan_free(out);
        snprintf(err, errlen, "out of memory");
        return TIER_RESOURCE_EXHAUSTED;
    }
    return TIER_OK;
}

void tiering_plan_free(tl_plan *pl)
{
    free(pl->items);
    free(pl->moves);
    pl->items = NULL;
    pl->moves = NULL;
}

static void plan_pairs(tier_rpc_ctx *call, const tl_plan *pl, Tier__Plan *out)
{
    static const size_t N = TIER_POLICY_LEVELS_MAX;
    int64_t(*files)[TIER_POLICY_LEVELS_MAX] = tier_rpc_alloc(call, N * N * sizeof(int64_t));
    int64_t(*bytes)[TIER_POLICY_LEVELS_MAX] = tier_rpc_alloc(call, N * N * sizeof(int64_t));
    size_t np = 0;

    out->pairs = tier_rpc_alloc(call, (pl->nlv * pl->nlv + 1) * sizeof(*out->pairs));
    if (files == NULL || bytes == NULL || out->pairs == NULL)
        return;
    for (size_t i = 0; i < pl->nmoves; i++) {
        const tier_policy_move *m = &pl->moves[i];
        files[m->from][m->to]++;
        bytes[m->from][m->to] += m->size;
        out->total_bytes += m->size;
    }
    for (size_t f = 0; f < pl->nlv; f++)
        for (size_t to = 0; to < pl->nlv; to++) {
            Tier__PlanPair *pp;
            if (files[f][to] == 0 || (pp = tier_rpc_alloc(call, sizeof(*pp))) == NULL)
                continue;
            tier__plan_pair__init(pp);
            pp->from = (char *)pl->lv[f].name;
            pp->to = (char *)pl->lv[to].name;
            pp->files = files[f][to];
            pp->bytes = bytes[f][to];
            out->pairs[np++] = pp;
        }
    out->n_pairs = np;
}

static void plan_levels(tier_rpc_ctx *call, const tl_plan *pl, Tier__Plan *out)
{
    out->levels = tier_rpc_alloc(call, (pl->nlv + 1) * sizeof(*out->levels));
    if (out->levels == NULL)
        return;
    for (size_t i = 0; i < pl->nlv; i++) {
        Tier__PlanLevel *l = tier_rpc_alloc(call, sizeof(*l));
        if (l == NULL)
            return;
        tier__plan_level__init(l);
        l->level = (char *)pl->lv[i].name;
        l->files_now = pl->sum.files_now[i];
        l->bytes_now = pl->sum.bytes_now[i];
        l->files_after = pl->sum.files_after[i];
        l->bytes_after = pl->sum.bytes_after[i];
        l->capacity_bytes = pl->lv[i].capacity_bytes;
        out->levels[out->n_levels++] = l;
    }
}

static void plan_moves(tier_rpc_ctx *call, const tl_plan *pl, size_t limit, Tier__Plan *out)
{
    size_t n = pl->nmoves < limit ? pl->nmoves : limit;

    out->moves = tier_rpc_alloc(call, (n + 1) * sizeof(*out->moves));
    if (out->moves == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const tier_policy_move *m = &pl->moves[i];
        Tier__PlannedMove *pm = tier_rpc_alloc(call, sizeof(*pm));
        if (pm == NULL)
            return;
        tier__planned_move__init(pm);
        pm->cid = m->cid;
        pm->from = (char *)pl->lv[m->from].name;
        pm->to = (char *)pl->lv[m->to].name;
        pm->rule = (char *)tier_policy_rule_name(m->rule);
        pm->score = m->score;
        pm->size_bytes = m->size;
        out->moves[out->n_moves++] = pm;
    }
}

static Tier__Plan *plan_reply(tier_rpc_ctx *call, const tl_plan *pl, int64_t version,
                              int64_t now_ms, size_t limit)
{
    Tier__Plan *out = tier_rpc_alloc(call, sizeof(*out));

    if (out == NULL)
        return NULL;
    tier__plan__init(out);
    out->at_ms = now_ms;
    out->policy_version = version;
    out->total_moves = (int64_t)pl->nmoves;
    out->held_dwell = pl->sum.held_dwell;
    out->held_capacity = pl->sum.held_capacity;
    out->unknown_score = pl->unknown;
    plan_pairs(call, pl, out);
    plan_levels(call, pl, out);
    plan_moves(call, pl, limit, out);
    return out;
}

/* Plans p on lt and fills *out (the call's arena). */
static int plan_into(tiering *t, tier_rpc_ctx *call, const tier_policy *p, int64_t version,
                     const level_table *lt, size_t limit, Tier__Plan **out)
{
    int64_t now = tier_now_ms();
    char err[512];
    tl_plan pl;
    int rv;

    if ((rv = tiering_plan_run(t, p, lt, now, &pl, err, sizeof(err))) != TIER_OK)
        return tier_rpc_set_message(call, rv, "%s", err);
    *out = plan_reply(call, &pl, version, now, limit);
    tiering_plan_free(&pl);
    return *out ? TIER_OK : tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
}

int tiering_policy_plan_table(tiering *t, tier_rpc_ctx *call, const level_table *lt,
                              Tier__Plan **out)
{
    tier_policy p;
    int64_t version;

    pthread_mutex_lock(&t->policy->mu);
    p = t->policy->p;
    version = t->policy->version;
    pthread_mutex_unlock(&t->policy->mu);
    return plan_into(t, call, &p, version, lt, PLAN_LIMIT_DEFAULT, out);
}

/* ------------------------------------------------------------ SetLevels' part */

int tiering_policy_check_table(tiering *t, tier_rpc_ctx *call, const tier_level_row *v, size_t n)
{
    const char *names[TIER_POLICY_LEVELS_MAX];
    int64_t mins[TIER_POLICY_LEVELS_MAX], maxs[TIER_POLICY_LEVELS_MAX];
    tier_policy_level lv[TIER_POLICY_LEVELS_MAX];
    tier_policy p;
    char err[512];

    if (n > TIER_POLICY_LEVELS_MAX)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "at most 64 levels");
    for (size_t i = 0; i < n; i++) {
        names[i] = v[i].name;
        mins[i] = v[i].min_counts;
        maxs[i] = v[i].max_counts;
    }
    tiering_policy_get(t, &p);
    if (tier_policy_resolve(&p, names, mins, maxs, n, lv, err, sizeof(err)) != 0)
        return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION,
                                    "the current policy does not fit this table (%s): change "
                                    "the policy first (tierctl policy set)",
                                    err);
    return TIER_OK;
}

void tiering_policy_retable(tiering *t)
{
    struct tl_policy *tp = t->policy;
    char err[512];

    pthread_mutex_lock(&tp->mu);
    if (resolve(&tp->p, atomic_load(&t->levels), tp->lv, err, sizeof(err)) != 0)
        tier_error("policy: does not fit the new level table: %s", err); /* checked before */
    else
        tp->nlv = atomic_load(&t->levels)->n;
    pthread_mutex_unlock(&tp->mu);
}

/* ------------------------------------------------------------ methods */

static int h_get_policy(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                        ProtobufCMessage *out)
{
    tiering *t = arg;
    struct tl_policy *tp = t->policy;
    Tier__GetPolicyReply *rep = (Tier__GetPolicyReply *)out;
    tier_policy p;
    int64_t version, set_ms;
    char by[64];

    (void)in;
    pthread_mutex_lock(&tp->mu);
    p = tp->p;
    version = tp->version;
    set_ms = tp->set_ms;
    memcpy(by, tp->set_by, sizeof(by));
    pthread_mutex_unlock(&tp->mu);
    if ((rep->policy = policy_reply(call, &p, version, set_ms, by)) == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    return TIER_OK;
}

/* Stores p as the next version and makes it current (admin_mu held). */
static int install(tiering *t, tier_rpc_ctx *call, const tier_policy *p,
                   const tier_policy_level *lv, size_t nlv)
{
    struct tl_policy *tp = t->policy;
    const tier_rpc_caller *who = tier_rpc_call_caller(call);
    const char *by = who && who->name[0] ? who->name : "anonymous";
    char *body = policy_json(p);
    int64_t version = 0, set_ms = 0;
    tier_policy old;
    tier_db *db;
    int rv;

    if (body == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    if ((db = tier_pool_get(t->deps->db)) == NULL) {
        free(body);
        return tier_rpc_set_message(call, TIER_UNAVAILABLE, "MySQL: unavailable");
    }
    rv = tier_policies_put(db, body, by, &version, &set_ms);
    tier_db_pool_put(t->deps->db, db);
    free(body);
    if (rv != TIER_OK)
        return tier_rpc_set_message(call, rv, "MySQL: cannot store the policy (%s)",
                                    tier_status_name(rv));
    TIER_CRASH_AT("setpolicy.after_commit");
    pthread_mutex_lock(&tp->mu);
    old = tp->p;
    tp->p = *p;
    memcpy(tp->lv, lv, nlv * sizeof(*lv));
    tp->nlv = nlv;
    tp->version = version;
    tp->set_ms = set_ms;
    snprintf(tp->set_by, sizeof(tp->set_by), "%s", by);
    atomic_store(&tp->mode, p->mode);
    pthread_mutex_unlock(&tp->mu);
    tiering_views_rebucket(t, &old, p);
    tiering_planner_wake(t);
    tier_info("policy: version %lld (mode %s) set by %s", (long long)version,
              p->mode == TIER_POLICY_WINDOW ? "window" : "seed", by);
    return TIER_OK;
}

static int h_set_policy(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                        ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__SetPolicyRequest *req = (const Tier__SetPolicyRequest *)in;
    Tier__SetPolicyReply *rep = (Tier__SetPolicyReply *)out;
    tier_policy_level lv[TIER_POLICY_LEVELS_MAX];
    const level_table *lt;
    tier_policy p;
    char err[512];
    int rv;

    if (req->policy == NULL)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "policy: required");
    if (policy_from_pb(req->policy, &p, err, sizeof(err)) != 0)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "policy: %s", err);
    carry_counting(t, &p, tier_now_ms());
    pthread_mutex_lock(&t->admin_mu); /* against SetLevels: one table, one policy */
    lt = atomic_load(&t->levels);
    if (resolve(&p, lt, lv, err, sizeof(err)) != 0)
        rv = tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "policy: %s", err);
    else if (req->dry_run)
        rv = plan_into(t, call, &p, -1, lt, PLAN_LIMIT_DEFAULT, &rep->plan);
    else
        rv = install(t, call, &p, lv, lt->n);
    pthread_mutex_unlock(&t->admin_mu);
    if (rv != TIER_OK)
        return rv;
    if (req->dry_run)
        rep->policy = policy_reply(call, &p, -1, 0, "");
    else {
        Tier__GetPolicyReply g = TIER__GET_POLICY_REPLY__INIT;
        h_get_policy(t, call, NULL, (ProtobufCMessage *)&g);
        rep->policy = g.policy;
    }
    return TIER_OK;
}

static int h_plan_moves(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                        ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__PlanMovesRequest *req = (const Tier__PlanMovesRequest *)in;
    size_t limit = req->limit == 0               ? PLAN_LIMIT_DEFAULT
                   : req->limit > PLAN_LIMIT_MAX ? PLAN_LIMIT_MAX
                                                 : req->limit;
    level_table *proposed = NULL;
    const level_table *lt = atomic_load(&t->levels);
    tier_level_row *v = NULL;
    Tier__Plan *plan = NULL;
    int64_t version = -1;
    tier_policy p;
    char err[512];
    int rv;

    if (req->policy != NULL && policy_from_pb(req->policy, &p, err, sizeof(err)) != 0)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "policy: %s", err);
    if (req->policy != NULL)
        carry_counting(t, &p, tier_now_ms()); /* as SetPolicy would */
    if (req->policy == NULL) {
        pthread_mutex_lock(&t->policy->mu);
        p = t->policy->p;
        version = t->policy->version;
        pthread_mutex_unlock(&t->policy->mu);
    }
    if (req->n_levels > TIER_POLICY_LEVELS_MAX)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "at most 64 levels");
    if (req->n_levels > 0) {
        if ((v = calloc(req->n_levels, sizeof(*v))) == NULL)
            return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
        rv = tiering_parse_levels(t, call, req->levels, req->n_levels, v);
        if (rv == TIER_OK && (lt = proposed = tiering_table_new(t, v, req->n_levels)) == NULL)
            rv = tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
        free(v);
        if (rv != TIER_OK)
            return rv;
    }
    rv = plan_into(t, call, &p, version, lt, limit, &plan);
    tiering_table_free(proposed);
    if (rv == TIER_OK)
        *(Tier__Plan *)out = *plan;
    return rv;
}

/* ------------------------------------------------------------ MoveContent */

/* The level named name in lt (not interned: a caller's name must not grow
 * the intern list). */
static const tl_level *level_named(const level_table *lt, const char *name)
{
    for (size_t i = 0; i < lt->n; i++)
        if (strcmp(lt->v[i].name, name) == 0)
            return &lt->v[i];
    return NULL;
}

/* The job for c to tl (busy held, levels read-locked). */
static int force_move(tiering *t, tier_rpc_ctx *call, content *c, const tl_level *tl)
{
    tl_report r = {c, c->count < 0 ? 0 : c->count, tl, NULL, false};
    int rv;

    assert(c->busy);
    if (c->has_job)
        return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION,
                                    "cid %lld has a job: cancel it first (tierctl cancel)",
                                    (long long)c->cid);
    if (c->level == tl->name)
        return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION, "cid %lld is on %s already",
                                    (long long)c->cid, tl->name);
    if ((rv = tiering_apply_reports(t, &r, 1, NULL)) != TIER_OK)
        return tier_rpc_set_message(call, rv, "Redis: cannot create the job (%s)",
                                    tier_status_name(rv));
    tiering_lock(t, c);
    if (c->has_job)
        c->moving_to = tl->name; /* the planner counts it where it goes */
    tiering_unlock(t, c);
    return TIER_OK;
}

static int h_move_content(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                          ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__MoveContentRequest *req = (const Tier__MoveContentRequest *)in;
    Tier__MoveContentReply *rep = (Tier__MoveContentReply *)out;
    Tier__GetJobRequest gq = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply gr = TIER__GET_JOB_REPLY__INIT;
    content *c = tiering_find(t, req->cid);
    const tl_level *tl;
    int rv;

    if (!tierd_shard_owns(t->deps->cfg, req->cid))
        return tierd_shard_moved(call, t->deps, req->cid);
    if (c == NULL)
        return tier_rpc_set_message(call, TIER_NOT_FOUND, "no such content");
    /* Like a report's job: created under the read lock, so SetLevels never
     * changes a directory a job aims at. */
    pthread_rwlock_rdlock(&t->levels_rw);
    if ((tl = level_named(atomic_load(&t->levels), req->level)) == NULL) {
        pthread_rwlock_unlock(&t->levels_rw);
        return tier_rpc_set_message(call, TIER_NOT_FOUND, "no level named %.32s", req->level);
    }
    tiering_acquire(t, &c, 1);
    rv = force_move(t, call, c, tl);
    tiering_release(t, &c, 1);
    pthread_rwlock_unlock(&t->levels_rw);
    if (rv != TIER_OK)
        return rv;
    tier_info("move: cid %lld to %s, forced by %s", (long long)c->cid, tl->name,
              tier_rpc_call_caller(call) ? tier_rpc_call_caller(call)->name : "anonymous");
    gq.cid = c->cid;
    if (tiering_get_job(t, call, &gq, &gr) == TIER_OK)
        rep->job = gr.job;
    return TIER_OK;
}

/* ------------------------------------------------------------ module */

/* The stored policy, resolved against the loaded table. */
static int load(tiering *t, struct tl_policy *tp)
{
    tier_policy_row row;
    tier_db *db = tier_pool_get(t->deps->db);
    char err[512];
    int rv;

    if (db == NULL)
        return TIER_UNAVAILABLE;
    rv = tier_policies_latest(db, &row);
    tier_db_pool_put(t->deps->db, db);
    if (rv != TIER_OK)
        return rv;
    if (row.version > 0 && policy_parse_json(row.body, &tp->p, err, sizeof(err)) != 0) {
        tier_error("policy: version %lld in MySQL does not parse: %s", (long long)row.version, err);
        free(row.body);
        return TIER_FAILED_PRECONDITION;
    }
    free(row.body);
    if (resolve(&tp->p, atomic_load(&t->levels), tp->lv, err, sizeof(err)) != 0) {
        tier_error("policy: version %lld does not fit the level table: %s (fix tier_policy or "
                   "the level table in MySQL)",
                   (long long)row.version, err);
        return TIER_FAILED_PRECONDITION;
    }
    tp->nlv = atomic_load(&t->levels)->n;
    tp->version = row.version;
    tp->set_ms = row.set_time_ms;
    snprintf(tp->set_by, sizeof(tp->set_by), "%.63s", row.set_by);
    atomic_store(&tp->mode, tp->p.mode);
    return TIER_OK;
}

void tiering_policy_follow(tiering *t)
{
    struct tl_policy *tp = t->policy, *fresh = calloc(1, sizeof(*fresh));
    tier_policy old;

    if (fresh == NULL)
        return;
    tier_policy_default(&fresh->p);
    pthread_mutex_lock(&t->admin_mu); /* against SetPolicy and SetLevels */
    if (load(t, fresh) == TIER_OK && fresh->version != tiering_policy_version(t)) {
        pthread_mutex_lock(&tp->mu);
        old = tp->p;
        tp->p = fresh->p;
        memcpy(tp->lv, fresh->lv, fresh->nlv * sizeof(*fresh->lv));
        tp->nlv = fresh->nlv;
        tp->version = fresh->version;
        tp->set_ms = fresh->set_ms;
        memcpy(tp->set_by, fresh->set_by, sizeof(tp->set_by));
        atomic_store(&tp->mode, fresh->p.mode);
        pthread_mutex_unlock(&tp->mu);
        pthread_mutex_unlock(&t->admin_mu);
        tiering_views_rebucket(t, &old, &fresh->p);
        tiering_planner_wake(t);
        tier_info("policy: version %lld set through another shard's writer",
                  (long long)fresh->version);
        free(fresh);
        return;
    }
    pthread_mutex_unlock(&t->admin_mu);
    free(fresh);
}

int tiering_policy_open(tiering *t)
{
    struct tl_policy *tp = calloc(1, sizeof(*tp));
    int rv;

    if (tp == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    pthread_mutex_init(&tp->mu, NULL);
    tier_policy_default(&tp->p);
    t->policy = tp;
    if ((rv = load(t, tp)) != TIER_OK) {
        tier_error("tiering: cannot load the tiering policy (%s)", tier_status_name(rv));
        return rv;
    }
    tier_info("policy: version %lld, mode %s", (long long)tp->version,
              tp->p.mode == TIER_POLICY_WINDOW ? "window" : "seed");
    return TIER_OK;
}

void tiering_policy_close(tiering *t)
{
    if (t->policy == NULL)
        return;
    pthread_mutex_destroy(&t->policy->mu);
    free(t->policy);
    t->policy = NULL;
}

int tiering_policy_register(tiering *t, tier_rpc_server *srv)
{
    int rv;

    if ((rv = tier_rpc_server_add(srv, TIER_M_GET_POLICY, &tier__get_policy_request__descriptor,
                                  &tier__get_policy_reply__descriptor, h_get_policy, t,
                                  TIER_RPC_INLINE)) != TIER_OK ||
        (rv = tier_rpc_server_add(srv, TIER_M_SET_POLICY, &tier__set_policy_request__descriptor,
                                  &tier__set_policy_reply__descriptor, h_set_policy, t, 0)) !=
            TIER_OK)
        return rv;
    if ((rv = tier_rpc_server_add(srv, TIER_M_MOVE_CONTENT, &tier__move_content_request__descriptor,
                                  &tier__move_content_reply__descriptor, h_move_content, t, 0)) !=
        TIER_OK)
        return rv;
    return tier_rpc_server_add(srv, TIER_M_PLAN_MOVES, &tier__plan_moves_request__descriptor,
                               &tier__plan__descriptor, h_plan_moves, t, 0);
}
