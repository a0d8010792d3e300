/*
 * stats.c -- the last hour of tierd's activity, and GetStats: everything
 * the dashboard (docs/DASHBOARD.md) shows that is not a list, in one call.
 *
 * Why a ring here and not the /metrics counters: Prometheus keeps history
 * by scraping; the dashboard has nothing to scrape it, and must draw the
 * last hour from the moment it opens.  So tierd keeps three series (view
 * reports received, moves committed, comment operations committed) in
 * TIERD_STATS_STEPS buckets of TIERD_STATS_STEP_MS: 360 x 10 s = 1 h,
 * 8.6 KiB.  They are bumped where the metrics counters are (tiering.c's
 * ReportViews, tiering_jobs.c's count_move, ranking_write.c's count_ops).
 *
 * A bucket is named by its step number (ms / step); a bucket whose number
 * is not the step being counted holds an older hour's counts and is zeroed
 * before use, so no timer is needed to age them out.  One mutex guards the
 * ring: it is taken once per ReportViews call, per committed move and per
 * comment batch, for a few adds.  The series start when tierd does (a
 * restarted tierd shows zeros before): they are a view, not a record.
 */
#include "tierd.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tier.pb-c.h"
#include "tier_jobs.h"
#include "tier_methods.h"
#include "tier_slot.h"
#include "tier_time.h"

#define LEVELS_MAX 64

typedef struct {
    int64_t step; /* ms / TIERD_STATS_STEP_MS of the counts below */
    uint64_t n[TIERD_STAT_N];
} bucket;

struct tierd_stats {
    pthread_mutex_t mu;
    bucket ring[TIERD_STATS_STEPS];
    tiering *t;
    workers *ws;
    tierd_peers *peers; /* several shards: GetStats sums theirs (NULL: one) */
};

int tierd_stats_open(tierd_stats **out)
{
    tierd_stats *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return TIER_OK;
}

void tierd_stats_close(tierd_stats *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void tierd_stats_add(tierd_stats *s, int series, uint64_t n)
{
    int64_t step = tier_now_ms() / TIERD_STATS_STEP_MS;

    if (s == NULL || n == 0 || series < 0 || series >= TIERD_STAT_N)
        return;
    pthread_mutex_lock(&s->mu);
    bucket *b = &s->ring[step % TIERD_STATS_STEPS];
    if (b->step != step) {
        memset(b, 0, sizeof(*b));
        b->step = step;
    }
    b->n[series] += n;
    pthread_mutex_unlock(&s->mu);
}

static int oom(tier_rpc_ctx *call)
{
    return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
}

/* The series, oldest step first; the last is the current step. */
static int fill_series(tierd_stats *s, tier_rpc_ctx *call, int64_t now, Tier__GetStatsReply *rep)
{
    int64_t last = now / TIERD_STATS_STEP_MS, first = last - TIERD_STATS_STEPS + 1;
    uint64_t *v[TIERD_STAT_N];

    for (int k = 0; k < TIERD_STAT_N; k++)
        if ((v[k] = tier_rpc_alloc(call, TIERD_STATS_STEPS * sizeof(uint64_t))) == NULL)
            return oom(call);
    pthread_mutex_lock(&s->mu);
    for (int64_t step = first; step <= last; step++) {
        const bucket *b = &s->ring[step % TIERD_STATS_STEPS];
        for (int k = 0; k < TIERD_STAT_N; k++)
            v[k][step - first] = b->step == step ? b->n[k] : 0;
    }
    pthread_mutex_unlock(&s->mu);
    rep->series_start_ms = first * TIERD_STATS_STEP_MS;
    rep->step_ms = TIERD_STATS_STEP_MS;
    rep->reports = v[TIERD_STAT_REPORTS];
    rep->moves = v[TIERD_STAT_MOVES];
    rep->comments = v[TIERD_STAT_COMMENTS];
    rep->n_reports = rep->n_moves = rep->n_comments = TIERD_STATS_STEPS;
    return TIER_OK;
}

static int fill_levels(tierd_stats *s, tier_rpc_ctx *call, Tier__GetStatsReply *rep)
{
    tierd_level_stat ls[LEVELS_MAX];
    size_t n = tiering_level_stats(s->t, ls, LEVELS_MAX, &rep->bytes_as_of_ms);
    Tier__LevelStats *o = tier_rpc_alloc(call, (n + 1) * sizeof(*o));

    rep->levels = tier_rpc_alloc(call, (n + 1) * sizeof(*rep->levels));
    if (o == NULL || rep->levels == NULL)
        return oom(call);
    for (size_t i = 0; i < n; i++) {
        tier__level_stats__init(&o[i]);
        o[i].name = tier_rpc_strdup(call, ls[i].name);
        o[i].path = tier_rpc_strdup(call, ls[i].path);
        o[i].min_counts = ls[i].min_counts;
        o[i].max_counts = ls[i].max_counts;
        o[i].contents = ls[i].contents;
        o[i].bytes = ls[i].bytes;
        o[i].files = ls[i].files;
        o[i].missing = ls[i].missing;
        o[i].capacity_bytes = tiering_level_capacity(s->t, ls[i].name);
        rep->levels[i] = &o[i];
    }
    rep->n_levels = n;
    return TIER_OK;
}

static int fill_jobs(tierd_stats *s, tier_rpc_ctx *call, Tier__GetStatsReply *rep)
{
    uint64_t counts[TIER_JOB_STATES];
    size_t n = 0;
    int rv;

    if ((rv = tiering_jobs_counts(s->t, counts)) != TIER_OK)
        return tier_rpc_set_message(call, rv, "cannot count jobs (Redis)");
    Tier__JobStateCount *o = tier_rpc_alloc(call, TIER_JOB_STATES * sizeof(*o));
    rep->jobs = tier_rpc_alloc(call, TIER_JOB_STATES * sizeof(*rep->jobs));
    if (o == NULL || rep->jobs == NULL)
        return oom(call);
    for (int st = TIER_JOB_UPDATE; st < TIER_JOB_STATES; st++, n++) {
        tier__job_state_count__init(&o[n]);
        o[n].state = (char *)tier_job_state_name((tier_job_state)st);
        o[n].count = counts[st];
        rep->jobs[n] = &o[n];
    }
    rep->n_jobs = n;
    return TIER_OK;
}

/* ---- several shards: every shard's counts summed (docs/CLUSTER.md) */

static void add_levels(Tier__GetStatsReply *rep, const Tier__GetStatsReply *x)
{
    for (size_t i = 0; i < x->n_levels; i++)
        for (size_t j = 0; j < rep->n_levels; j++) {
            Tier__LevelStats *a = rep->levels[j];
            const Tier__LevelStats *b = x->levels[i];
            if (strcmp(a->name, b->name) != 0)
                continue;
            a->contents += b->contents, a->bytes += b->bytes;
            a->files += b->files, a->missing += b->missing;
        }
    if (x->bytes_as_of_ms < rep->bytes_as_of_ms) /* the oldest pass */
        rep->bytes_as_of_ms = x->bytes_as_of_ms;
}

static void add_jobs(Tier__GetStatsReply *rep, const Tier__GetStatsReply *x)
{
    for (size_t i = 0; i < x->n_jobs; i++)
        for (size_t j = 0; j < rep->n_jobs; j++)
            if (strcmp(rep->jobs[j]->state, x->jobs[i]->state) == 0)
                rep->jobs[j]->count += x->jobs[i]->count;
}

/* Series of the same step length, aligned on their start (steps are
 * absolute: ms / step_ms); a step outside ours is dropped. */
static void add_series(uint64_t *to, size_t n, int64_t start, uint32_t step, const uint64_t *v,
                       size_t vn, int64_t vstart)
{
    for (size_t i = 0; i < vn; i++) {
        int64_t at = (vstart - start) / (int64_t)step + (int64_t)i;
        if (at >= 0 && (size_t)at < n)
            to[at] += v[i];
    }
}

static int merge_shards(tierd_stats *s, tier_rpc_ctx *call, Tier__GetStatsReply *rep)
{
    Tier__GetStatsRequest sub = TIER__GET_STATS_REQUEST__INIT;
    ProtobufCMessage *r[TIER_SHARDS_MAX] = {0};
    char err[256];
    int rv;

    sub.local = true;
    if ((rv = tierd_peers_fanout_wait(s->peers, call, TIER_M_GET_STATS, &sub.base,
                                      &tier__get_stats_reply__descriptor, r, err, sizeof(err))) !=
        TIER_OK)
        return tier_rpc_set_message(call, rv, "GetStats across shards: %s", err);
    for (unsigned k = 0; k < TIER_SHARDS_MAX; k++) {
        const Tier__GetStatsReply *x = (const Tier__GetStatsReply *)r[k];
        if (x == NULL)
            continue;
        add_levels(rep, x);
        add_jobs(rep, x);
        if (x->step_ms == rep->step_ms) {
            add_series(rep->reports, rep->n_reports, rep->series_start_ms, rep->step_ms, x->reports,
                       x->n_reports, x->series_start_ms);
            add_series(rep->moves, rep->n_moves, rep->series_start_ms, rep->step_ms, x->moves,
                       x->n_moves, x->series_start_ms);
            add_series(rep->comments, rep->n_comments, rep->series_start_ms, rep->step_ms,
                       x->comments, x->n_comments, x->series_start_ms);
        }
        /* A worker serves every shard (a lane each): the largest count, not
         * the sum, is the number of workers. */
        if (x->workers_alive > rep->workers_alive)
            rep->workers_alive = x->workers_alive;
    }
    return TIER_OK;
}

static int h_get_stats(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                       ProtobufCMessage *out)
{
    tierd_stats *s = arg;
    const Tier__GetStatsRequest *req = (const Tier__GetStatsRequest *)in;
    Tier__GetStatsReply *rep = (Tier__GetStatsReply *)out;
    int rv;

    rep->now_ms = tier_now_ms();
    if ((rv = fill_levels(s, call, rep)) != TIER_OK || (rv = fill_jobs(s, call, rep)) != TIER_OK ||
        (rv = fill_series(s, call, rep->now_ms, rep)) != TIER_OK)
        return rv;
    rep->workers_alive = workers_alive(s->ws);
    if (s->peers != NULL && (req == NULL || !req->local))
        return merge_shards(s, call, rep);
    return TIER_OK;
}

int tierd_stats_register(tierd_stats *s, tier_rpc_server *srv, tiering *t, workers *ws,
                         tierd_peers *peers)
{
    s->t = t;
    s->ws = ws;
    s->peers = peers;
    /* Pooled, not INLINE: the job counts ask Redis. */
    return tier_rpc_server_add(srv, TIER_M_GET_STATS, &tier__get_stats_request__descriptor,
                               &tier__get_stats_reply__descriptor, h_get_stats, s, 0);
}
