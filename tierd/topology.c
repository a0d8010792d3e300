/*
 * topology.c -- this tierd in the cluster's topology (docs/CLUSTER.md):
 *
 *   check     at start, after the writer lease and before loading: the
 *             cluster_config row must say our --shards (the first tierd of
 *             a database writes it), else tierd refuses to start
 *   publish   once it listens, its ShardInfo (node, advertised URLs, writer
 *             token, since) into <prefix>topology, and again every second
 *             on its own Redis connection, so a Redis that lost its data
 *             gets it back; the store's script refuses a deposed writer
 *   Topology  the RPC: every shard's owner from Redis, our own shard from
 *             ourselves (we hold its lease: the gate says so)
 */
#include "tierd.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.pb-c.h"
#include "tier_log.h"
#include "tier_methods.h"
#include "tier_slot.h"
#include "tier_time.h"
#include "tier_topology.h"

#define PUBLISH_EVERY_MS 1000

struct tierd_topology {
    const tierd_config *cfg;
    tier_pool *kv_pool; /* the handler's connections */
    tier_shard_owner self;
    tier_kv *kv; /* the publisher's own, NULL when broken */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    bool stop;
    int last; /* status of the last publish, to log changes only */
};

int tierd_topology_check_cluster(const tierd_config *cfg)
{
    tier_db_config c = cfg->db;
    unsigned stored = 0;
    char err[512];
    tier_db *db;
    int rv;

    c.writer_token = 0;
    if ((rv = tier_db_open(&db, &c, err, sizeof(err))) != TIER_OK) {
        tier_error("cluster_config: %s", err);
        return rv;
    }
    rv = tier_cluster_config_check(db, cfg->shards, &stored);
    tier_db_close(db);
    if (rv == TIER_FAILED_PRECONDITION)
        tier_error("this database's cluster has %u shards (cluster_config), not --shards %u: "
                   "every tierd of a cluster must be started with the same --shards",
                   stored, cfg->shards);
    else if (rv != TIER_OK)
        tier_error("cluster_config: cannot read it (%s); is sql/009 applied?",
                   tier_status_name(rv));
    return rv;
}

int tierd_topology_open(tierd_topology **out, const tierd_config *cfg, tier_pool *kv_pool,
                        int64_t token, int64_t since_ms)
{
    tierd_topology *t = calloc(1, sizeof(*t));
    tier_shard_owner *o;

    if (t == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    t->cfg = cfg;
    t->kv_pool = kv_pool;
    t->last = -1;
    o = &t->self;
    o->shard = cfg->shard;
    snprintf(o->node, sizeof(o->node), "%s", cfg->node);
    snprintf(o->rpc_url, sizeof(o->rpc_url), "%s", cfg->advertise);
    snprintf(o->push_url, sizeof(o->push_url), "%s", cfg->advertise_push);
    snprintf(o->http_url, sizeof(o->http_url), "%s", cfg->advertise_http);
    o->token = token;
    o->since_ms = since_ms;
    o->alive = true;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = t;
    return TIER_OK;
}

/* ------------------------------------------------------------ publishing */

static void publish_once(tierd_topology *t)
{
    char err[512];
    int rv;

    if (t->kv == NULL && tier_kv_open(&t->kv, &t->cfg->kv, err, sizeof(err)) != TIER_OK) {
        t->kv = NULL;
        rv = TIER_UNAVAILABLE;
    } else {
        struct timeval tv = {1, 0}; /* never hold the loop longer */
        redisSetTimeout(tier_kv_handle(t->kv), tv);
        rv = tier_topology_publish(t->kv, t->cfg->redis_prefix, t->cfg->shard_prefix, &t->self);
        if (tier_kv_broken(t->kv)) {
            tier_kv_close(t->kv);
            t->kv = NULL;
        }
    }
    if (rv != t->last && rv == TIER_OK)
        tier_info("topology: published shard %u/%u at %s", t->self.shard, t->cfg->shards,
                  t->self.rpc_url);
    else if (rv != t->last)
        tier_warn("topology: cannot publish shard %u (%s)", t->self.shard,
                  rv == TIER_ABORTED ? "the writer lease is not ours" : tier_status_name(rv));
    t->last = rv;
}

/* Waits until mono ms `until` or stop; true on stop. */
static bool sleep_until(tierd_topology *t, int64_t until)
{
    struct timespec ts = {until / 1000, (long)(until % 1000) * 1000000L};
    bool stop;

    pthread_mutex_lock(&t->mu);
    while (!t->stop && tier_mono_ms() < until)
        if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) == ETIMEDOUT)
            break;
    stop = t->stop;
    pthread_mutex_unlock(&t->mu);
    return stop;
}

static void *publish_main(void *arg)
{
    tierd_topology *t = arg;

    while (!sleep_until(t, tier_mono_ms() + PUBLISH_EVERY_MS))
        publish_once(t);
    return NULL;
}

int tierd_topology_start(tierd_topology *t)
{
    publish_once(t); /* at once: clients may ask right after we listen */
    if (pthread_create(&t->thread, NULL, publish_main, t) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    t->started = true;
    return TIER_OK;
}

void tierd_topology_close(tierd_topology *t)
{
    if (t == NULL)
        return;
    if (t->started) {
        pthread_mutex_lock(&t->mu);
        t->stop = true;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
    }
    tier_kv_close(t->kv);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

/* ------------------------------------------------------------ Topology */

/* Reads every shard's owner into owners (shards entries); our own shard
 * is ourselves whatever Redis says.  TIER_OK or UNAVAILABLE. */
static int read_owners(tierd_topology *t, tier_shard_owner *owners)
{
    unsigned shards = t->cfg->shards;
    tier_kv *kv = tier_pool_get(t->kv_pool);
    int rv = TIER_UNAVAILABLE;

    if (kv != NULL) {
        rv = tier_topology_read(kv, t->cfg->redis_prefix, shards, owners);
        tier_kv_pool_put(t->kv_pool, kv);
    }
    if (rv != TIER_OK && shards > 1)
        return TIER_UNAVAILABLE;
    if (rv != TIER_OK)
        memset(owners, 0, sizeof(*owners));
    owners[t->self.shard] = t->self;
    return TIER_OK;
}

static Tier__ShardInfo *shard_info(tier_rpc_ctx *call, const tier_shard_owner *o, unsigned shards)
{
    Tier__ShardInfo *si = tier_rpc_alloc(call, sizeof(*si));
    unsigned lo, hi;

    if (si == NULL)
        return NULL;
    tier__shard_info__init(si);
    si->shard = o->shard;
    si->node = tier_rpc_strdup(call, o->node);
    si->rpc_url = tier_rpc_strdup(call, o->rpc_url);
    si->push_url = tier_rpc_strdup(call, o->push_url);
    si->http_url = tier_rpc_strdup(call, o->http_url);
    si->token = o->token;
    si->since_ms = o->since_ms;
    si->alive = o->alive;
    tier_shard_slots(o->shard, shards, &lo, &hi);
    si->first_slot = lo;
    si->last_slot = hi;
    if (si->node == NULL || si->rpc_url == NULL || si->push_url == NULL || si->http_url == NULL)
        return NULL;
    return si;
}

static int on_topology(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                       ProtobufCMessage *reply)
{
    tierd_topology *t = arg;
    Tier__TopologyReply *out = (Tier__TopologyReply *)reply;
    unsigned shards = t->cfg->shards;
    tier_shard_owner owners[TIER_SHARDS_MAX];

    (void)req;
    if (read_owners(t, owners) != TIER_OK)
        return tier_rpc_set_message(call, TIER_UNAVAILABLE, "topology: Redis did not answer");
    out->slots = TIER_SLOTS;
    out->shards = shards;
    out->owners = tier_rpc_alloc(call, shards * sizeof(*out->owners));
    if (out->owners == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    for (unsigned k = 0; k < shards; k++)
        if ((out->owners[k] = shard_info(call, &owners[k], shards)) == NULL)
            return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    out->n_owners = shards;
    return TIER_OK;
}

int tierd_topology_register(tierd_topology *t, tier_rpc_server *srv)
{
    return tier_rpc_server_add(srv, TIER_M_TOPOLOGY, &tier__topology_request__descriptor,
                               &tier__topology_reply__descriptor, on_topology, t, 0);
}
