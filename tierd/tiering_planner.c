/*
 * tiering_planner.c -- the thread that applies a window policy: every
 * plan_interval_s it plans every content (tiering_plan_run), lets the
 * start gate pick what may start now (budgets, capacity, max_inflight;
 * policy/tier_policy.h) and starts those moves as jobs, through the same
 * Redis script as a report's (tiering_apply_reports), so a planner's job
 * is claimed, moved, completed and recovered like any other.
 *
 * While a level migration runs (tiering_migrate.c) the thread also runs
 * about once a second (every 200 ms while contents wait for a move), under
 * any policy, to start its moves and retire it.
 *
 * Why a thread and not the report path: a window policy must also act on
 * contents nobody reports (idle demotion), on capacity (which depends on
 * every content at once) and within budgets (which spread a policy change
 * over time instead of one storm).  Under the seed policy the thread only
 * prunes old view buckets; reports move contents as before.
 *
 * A planner's job remembers its target (content.moving_to), so the next
 * round counts it where it goes and against max_inflight.  The round takes
 * the levels read lock while it creates jobs, like the report path, so no
 * job aims at a directory SetLevels is changing.
 */
#include "tiering_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_crash.h"
#include "tier_log.h"
#include "tier_time.h"

#define SEED_WAKE_MS 60000
#define SHARED_POLL_MS 1000   /* several shards: tiering_shared_poll's period */
#define MIGRATE_EVERY_MS 1000 /* rounds while a level migration runs ... */
#define MIGRATE_BUSY_MS 200   /* ... and while contents wait for their move */
#define PRUNE_EVERY_MS 3600000
#define PRUNE_KEEP_S (32 * 86400)
#define PRUNE_ROWS 10000

struct tl_planner {
    pthread_t th;
    bool started;
    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t cv;
    bool wake, stop;
    tl_planner_stats last;
    tier_policy_gate gate;
    int64_t gate_version; /* the policy version the gate's buckets belong to */
    int64_t pruned_ms;
};

/* ------------------------------------------------------------ starting jobs */

/* Starts the chosen moves as jobs; returns how many jobs exist now. */
static size_t start_jobs(tiering *t, const level_table *lt, const tl_plan *pl, const bool *start,
                         size_t k)
{
    content **sorted = calloc(k + 1, sizeof(*sorted)); /* tiering_acquire sorts it */
    tl_report *r = calloc(k + 1, sizeof(*r));
    size_t *from = calloc(k + 1, sizeof(*from)), m = 0, nr = 0, made = 0;

    if (sorted == NULL || r == NULL || from == NULL)
        goto out;
    pthread_rwlock_rdlock(&t->levels_rw);
    if (atomic_load(&t->levels) != lt) /* SetLevels ran: plan again next round */
        goto unlock;
    for (size_t i = 0; i < pl->nmoves; i++) {
        const tier_policy_move *mv = &pl->moves[i];
        content *c;
        if (!start[i] || (c = tiering_find(t, mv->cid)) == NULL)
            continue;
        sorted[m] = c;
        r[m] = (tl_report){c, mv->score, tiering_level(lt, pl->lv[mv->to].name), NULL, false};
        from[m++] = (size_t)mv->from;
    }
    tiering_acquire(t, sorted, m);
    for (size_t i = 0; i < m; i++) {
        content *c = r[i].c;
        /* Busy is ours: nothing changes its job or level until release.  A
         * content that moved or got a job since the snapshot is skipped. */
        if (c->has_job || r[i].target == NULL || c->level != pl->lv[from[i]].name)
            continue;
        r[nr++] = r[i];
    }
    if (nr > 0 && tiering_apply_reports(t, r, nr, NULL) == TIER_OK) {
        TIER_CRASH_AT("planner.after_script");
        for (size_t i = 0; i < nr; i++) {
            tiering_lock(t, r[i].c);
            if (r[i].c->has_job) {
                r[i].c->moving_to = r[i].target->name;
                made++;
            }
            tiering_unlock(t, r[i].c);
        }
    }
    tiering_release(t, sorted, m);
unlock:
    pthread_rwlock_unlock(&t->levels_rw);
out:
    free(sorted);
    free(r);
    free(from);
    return made;
}

/* ------------------------------------------------------------ metrics */

static void publish(tiering *t, const tl_plan *pl, const bool *start)
{
    tierd_metrics *mx = t->deps->metrics;
    int64_t backlog[TIER_POLICY_LEVELS_MAX][TIER_POLICY_LEVELS_MAX];

    if (mx == NULL)
        return;
    memset(backlog, 0, sizeof(backlog));
    for (size_t i = 0; i < pl->nmoves; i++) {
        const tier_policy_move *mv = &pl->moves[i];
        if (start[i])
            tier_metric_add(mx->plan_started, 1, pl->lv[mv->from].name, pl->lv[mv->to].name);
        else
            backlog[mv->from][mv->to]++;
    }
    for (size_t f = 0; f < pl->nlv; f++) {
        tier_metric_set(mx->level_bytes, (double)pl->sum.bytes_now[f], pl->lv[f].name);
        tier_metric_set(mx->level_capacity, (double)pl->lv[f].capacity_bytes, pl->lv[f].name);
        for (size_t to = 0; to < pl->nlv; to++)
            if (f != to)
                tier_metric_set(mx->plan_backlog, (double)backlog[f][to], pl->lv[f].name,
                                pl->lv[to].name);
    }
    tier_metric_set(mx->plan_held, (double)pl->sum.held_dwell, "dwell");
    tier_metric_set(mx->plan_held, (double)pl->sum.held_capacity, "capacity");
}

/* ------------------------------------------------------------ one round */

static void round_once(tiering *t, struct tl_planner *pn, const tier_policy *p, int64_t version)
{
    const level_table *lt = atomic_load(&t->levels);
    int64_t now = tier_now_ms();
    tier_policy_start_stats st;
    tl_planner_stats out;
    char err[512];
    bool *start;
    size_t room, k, made = 0;
    tl_plan pl;

    if (tiering_plan_run(t, p, lt, now, &pl, err, sizeof(err)) != TIER_OK) {
        tier_warn("planner: %s", err);
        return;
    }
    if ((start = calloc(pl.nmoves + 1, sizeof(*start))) == NULL) {
        tiering_plan_free(&pl);
        return;
    }
    pthread_mutex_lock(&pn->mu);
    if (pn->gate_version != version) { /* budgets are by index: a new policy, new buckets */
        tier_policy_gate_init(&pn->gate, now);
        pn->gate_version = version;
    }
    room = pl.inflight < p->max_inflight ? (size_t)(p->max_inflight - pl.inflight) : 0;
    k = tier_policy_start(p, pl.lv, pl.nlv, &pn->gate, now, pl.moves, pl.nmoves, room, &pl.sum,
                          start, &st);
    pthread_mutex_unlock(&pn->mu);
    if (k > 0)
        made = start_jobs(t, lt, &pl, start, k);
    publish(t, &pl, start);
    out = (tl_planner_stats){now,
                             (int64_t)pl.nmoves,
                             (int64_t)made,
                             (int64_t)pl.nmoves - (int64_t)made,
                             st.throttled,
                             st.waiting_capacity,
                             pl.inflight + (int64_t)made,
                             0};
    for (size_t i = 0; i < pl.nmoves; i++)
        if (!start[i])
            out.backlog_bytes += pl.moves[i].size;
    if (t->deps->metrics != NULL) {
        tier_metric_set(t->deps->metrics->plan_throttled, (double)st.throttled);
        tier_metric_set(t->deps->metrics->plan_waiting, (double)st.waiting_capacity);
    }
    pthread_mutex_lock(&pn->mu);
    pn->last = out;
    pthread_mutex_unlock(&pn->mu);
    free(start);
    tiering_plan_free(&pl);
}

/* A level migration's round (tiering_migrate.c): under the policy's
 * budgets and max_inflight (TL_MIGRATE_INFLIGHT under the seed policy,
 * which has neither), with the same gate as the window rounds. */
static size_t migrate_once(tiering *t, struct tl_planner *pn, const tier_policy *p, int64_t version)
{
    pthread_mutex_lock(&pn->mu);
    if (pn->gate_version != version) {
        tier_policy_gate_init(&pn->gate, tier_now_ms());
        pn->gate_version = version;
    }
    pthread_mutex_unlock(&pn->mu);
    bool waiting;
    size_t made = tiering_migrate_round(
        t, p, &pn->gate, &pn->mu,
        p->mode == TIER_POLICY_WINDOW ? p->max_inflight : TL_MIGRATE_INFLIGHT, &waiting);
    return made > 0 || waiting;
}

/* Old view buckets go, a bounded number per call, so the table stays the
 * size of the longest window. */
static void prune(tiering *t, struct tl_planner *pn, int64_t now)
{
    uint64_t deleted = 0;
    tier_db *db;

    if (now - pn->pruned_ms < PRUNE_EVERY_MS || (db = tier_pool_get(t->deps->db)) == NULL)
        return;
    if (tier_views_prune(db, now / 1000 - PRUNE_KEEP_S, PRUNE_ROWS, &deleted) == TIER_OK &&
        deleted < PRUNE_ROWS)
        pn->pruned_ms = now; /* done; else go on next round */
    tier_db_pool_put(t->deps->db, db);
}

static void *run(void *arg)
{
    tiering *t = arg;
    struct tl_planner *pn = t->planner;

    int64_t window_due = 0; /* tier_mono_ms of the next window round */
    bool woke = true;

    pthread_mutex_lock(&pn->mu);
    while (!pn->stop) {
        tier_policy p;
        int64_t version, wait_ms, now;
        struct timespec ts;
        bool migrating;
        bool busy; /* the migration has moves to start */

        pthread_mutex_unlock(&pn->mu);
        if (t->deps->cfg->shards > 1) /* another shard's writer may have changed them */
            tiering_shared_poll(t);
        tiering_policy_get(t, &p);
        version = tiering_policy_version(t);
        /* Window rounds keep their plan_interval_s (or a wake: the policy
         * or the table changed), however often migration rounds run. */
        if (p.mode == TIER_POLICY_WINDOW && (woke || tier_mono_ms() >= window_due)) {
            round_once(t, pn, &p, version);
            window_due = tier_mono_ms() + p.plan_interval_s * 1000;
        }
        migrating = tiering_migrating(t);
        busy = migrating && migrate_once(t, pn, &p, version);
        prune(t, pn, tier_now_ms());
        now = tier_mono_ms();
        wait_ms =
            p.mode == TIER_POLICY_WINDOW ? (window_due > now ? window_due - now : 0) : SEED_WAKE_MS;
        if (t->deps->cfg->shards > 1 && wait_ms > SHARED_POLL_MS)
            wait_ms = SHARED_POLL_MS;
        if (migrating) {
            int64_t m = busy ? MIGRATE_BUSY_MS : MIGRATE_EVERY_MS;
            if (wait_ms > m)
                wait_ms = m;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&pn->mu);
        while (!pn->stop && !pn->wake)
            if (pthread_cond_timedwait(&pn->cv, &pn->mu, &ts) != 0)
                break;
        woke = pn->wake;
        pn->wake = false;
    }
    pthread_mutex_unlock(&pn->mu);
    return NULL;
}

int tiering_planner_open(tiering *t)
{
    struct tl_planner *pn = calloc(1, sizeof(*pn));

    if (pn == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    pthread_mutex_init(&pn->mu, NULL);
    pthread_cond_init(&pn->cv, NULL);
    pn->gate_version = -1;
    t->planner = pn;
    if (pthread_create(&pn->th, NULL, run, t) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    pn->started = true;
    return TIER_OK;
}

void tiering_planner_close(tiering *t)
{
    struct tl_planner *pn = t->planner;

    if (pn == NULL)
        return;
    if (pn->started) {
        pthread_mutex_lock(&pn->mu);
        pn->stop = true;
        pthread_cond_broadcast(&pn->cv);
        pthread_mutex_unlock(&pn->mu);
        pthread_join(pn->th, NULL);
    }
    pthread_mutex_destroy(&pn->mu);
    pthread_cond_destroy(&pn->cv);
    free(pn);
    t->planner = NULL;
}

void tiering_planner_wake(tiering *t)
{
    struct tl_planner *pn = t->planner;

    if (pn == NULL)
        return;
    pthread_mutex_lock(&pn->mu);
    pn->wake = true;
    pthread_cond_broadcast(&pn->cv);
    pthread_mutex_unlock(&pn->mu);
}

void tiering_planner_stats(tiering *t, tl_planner_stats *st)
{
    struct tl_planner *pn = t->planner;

    memset(st, 0, sizeof(*st));
    if (pn == NULL)
        return;
    pthread_mutex_lock(&pn->mu);
    *st = pn->last;
    pthread_mutex_unlock(&pn->mu);
}
