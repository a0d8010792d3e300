/*
 * workers.c -- which tier-workers are there, and what are they doing.
 *
 * Workers send a Heartbeat when they start, every HEARTBEAT_MS while they
 * run, and a last one (stopping) when they stop cleanly (proto/tier.proto,
 * HeartbeatRequest).  This module keeps the last beat of each worker id in
 * memory and answers ListWorkers (`tierctl workers`) and a Health probe.
 *
 * Why memory and not Redis: a beat is worth 10 s.  A tierd that restarts,
 * or a standby that takes over, knows every live worker again within one
 * interval, and nothing about workers needs to survive a crash.  The table
 * is bounded (MAX_WORKERS): a hostile worker token cannot grow it without
 * end; when full, the longest-dead entry makes room, and only when every
 * entry is alive is a new worker refused.
 *
 * The Health probe: a tierd whose jobs wait while no worker is alive is
 * not doing its job, so "workers" goes down -- but only after tierd has
 * been up for a grace period, so that a tierd started before its workers
 * (scripts/run.sh, a reboot) is not reported down for that.
 */
#include "tierd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.pb-c.h"
#include "tier_methods.h"
#include "tier_time.h"

#define MAX_WORKERS 1024
#define HEARTBEAT_MS 2000u                   /* what workers are told */
#define ALIVE_MS (5 * (int64_t)HEARTBEAT_MS) /* unheard of longer: not alive */
#define GRACE_MS (3 * ALIVE_MS)              /* after start, before "no worker" is a failure */

typedef struct {
    char id[129], host[256], version[65], caller[64];
    int64_t pid, started_ms, last_seen_ms;
    uint32_t in_flight;
    uint64_t done, failed, bytes;
    bool stopping;
} worker;

struct workers {
    pthread_mutex_t mu; /* guards w[] and n */
    worker w[MAX_WORKERS];
    size_t n;
    int64_t opened_ms;
    tierd_waiting_fn waiting; /* jobs waiting for a worker */
    void *waiting_arg;
};

static bool alive(const worker *w, int64_t now)
{
    return !w->stopping && now - w->last_seen_ms < ALIVE_MS;
}

int workers_open(workers **out, tierd_waiting_fn waiting, void *arg)
{
    workers *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    pthread_mutex_init(&ws->mu, NULL);
    ws->opened_ms = tier_now_ms();
    ws->waiting = waiting;
    ws->waiting_arg = arg;
    *out = ws;
    return TIER_OK;
}

void workers_close(workers *ws)
{
    if (ws == NULL)
        return;
    pthread_mutex_destroy(&ws->mu);
    free(ws);
}

/* The entry of id, or a new one (the longest-dead evicted when full);
 * NULL when every entry is alive.  ws->mu held. */
static worker *slot_for(workers *ws, const char *id, int64_t now)
{
    size_t oldest = SIZE_MAX;

    for (size_t i = 0; i < ws->n; i++) {
        if (strcmp(ws->w[i].id, id) == 0)
            return &ws->w[i];
        if (!alive(&ws->w[i], now) &&
            (oldest == SIZE_MAX || ws->w[i].last_seen_ms < ws->w[oldest].last_seen_ms))
            oldest = i;
    }
    if (ws->n < MAX_WORKERS)
        return &ws->w[ws->n++];
    return oldest != SIZE_MAX ? &ws->w[oldest] : NULL;
}

static bool printable(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static int h_heartbeat(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                       ProtobufCMessage *out)
{
    workers *ws = arg;
    const Tier__HeartbeatRequest *req = (const Tier__HeartbeatRequest *)in;
    Tier__HeartbeatReply *rep = (Tier__HeartbeatReply *)out;
    int64_t now = tier_now_ms();
    worker *w;

    if (req->worker_id[0] == '\0' || !printable(req->worker_id, 128))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "worker_id: 1..128 printable bytes");
    if (!printable(req->host, 255) || !printable(req->version, 64))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "host (<= 255) and version (<= 64): printable bytes");
    pthread_mutex_lock(&ws->mu);
    if ((w = slot_for(ws, req->worker_id, now)) == NULL) {
        pthread_mutex_unlock(&ws->mu);
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED,
                                    "%d workers alive: no room for another", MAX_WORKERS);
    }
    snprintf(w->id, sizeof(w->id), "%s", req->worker_id);
    snprintf(w->host, sizeof(w->host), "%s", req->host);
    snprintf(w->version, sizeof(w->version), "%s", req->version);
    snprintf(w->caller, sizeof(w->caller), "%s", tier_rpc_call_caller(call)->name);
    w->pid = req->pid;
    w->started_ms = req->started_ms;
    w->in_flight = req->moves_in_flight;
    w->done = req->moves_done;
    w->failed = req->moves_failed;
    w->bytes = req->bytes_moved;
    w->stopping = req->stopping;
    w->last_seen_ms = now;
    pthread_mutex_unlock(&ws->mu);
    rep->interval_ms = HEARTBEAT_MS;
    return TIER_OK;
}

static int by_alive_then_id(const void *a, const void *b)
{
    const Tier__WorkerInfo *x = *(Tier__WorkerInfo *const *)a, *y = *(Tier__WorkerInfo *const *)b;
    if (x->alive != y->alive)
        return x->alive ? -1 : 1;
    return strcmp(x->worker_id, y->worker_id);
}

static int h_list_workers(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                          ProtobufCMessage *out)
{
    workers *ws = arg;
    Tier__ListWorkersReply *rep = (Tier__ListWorkersReply *)out;
    int64_t now = tier_now_ms();
    (void)in;

    pthread_mutex_lock(&ws->mu);
    rep->workers = tier_rpc_alloc(call, (ws->n + 1) * sizeof(*rep->workers));
    Tier__WorkerInfo *infos = tier_rpc_alloc(call, (ws->n + 1) * sizeof(*infos));
    if (rep->workers == NULL || infos == NULL) {
        pthread_mutex_unlock(&ws->mu);
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < ws->n; i++) {
        const worker *w = &ws->w[i];
        Tier__WorkerInfo *o = &infos[i];
        tier__worker_info__init(o);
        o->worker_id = tier_rpc_strdup(call, w->id);
        o->host = tier_rpc_strdup(call, w->host);
        o->version = tier_rpc_strdup(call, w->version);
        o->caller = tier_rpc_strdup(call, w->caller);
        o->pid = w->pid;
        o->started_ms = w->started_ms;
        o->moves_in_flight = w->in_flight;
        o->moves_done = w->done;
        o->moves_failed = w->failed;
        o->bytes_moved = w->bytes;
        o->last_seen_ms = w->last_seen_ms;
        o->alive = alive(w, now);
        rep->alive += o->alive;
        rep->workers[rep->n_workers++] = o;
    }
    pthread_mutex_unlock(&ws->mu);
    if (rep->n_workers > 1)
        qsort(rep->workers, rep->n_workers, sizeof(*rep->workers), by_alive_then_id);
    return TIER_OK;
}

unsigned workers_alive(workers *ws)
{
    int64_t now = tier_now_ms();
    unsigned n = 0;

    pthread_mutex_lock(&ws->mu);
    for (size_t i = 0; i < ws->n; i++)
        n += alive(&ws->w[i], now);
    pthread_mutex_unlock(&ws->mu);
    return n;
}

/* Health: "N alive"; down when jobs wait, nobody is alive to take them,
 * and the start-up grace is over. */
static int probe(void *arg, char *msg, size_t len)
{
    workers *ws = arg;
    unsigned n = workers_alive(ws);
    uint64_t waiting = 0;

    if (ws->waiting(ws->waiting_arg, &waiting) != TIER_OK) {
        snprintf(msg, len, "%u alive (jobs unknown: Redis)", n);
        return TIER_OK; /* the redis probe reports Redis */
    }
    snprintf(msg, len, "%u alive, %llu jobs waiting", n, (unsigned long long)waiting);
    if (n == 0 && waiting > 0 && tier_now_ms() - ws->opened_ms > GRACE_MS) {
        snprintf(msg, len, "no worker alive, %llu jobs waiting", (unsigned long long)waiting);
        return TIER_UNAVAILABLE;
    }
    return TIER_OK;
}

int workers_register(workers *ws, tier_rpc_server *srv)
{
    int rv;

    /* Memory only, never blocks. */
    if ((rv = tier_rpc_server_add(srv, TIER_M_HEARTBEAT, &tier__heartbeat_request__descriptor,
                                  &tier__heartbeat_reply__descriptor, h_heartbeat, ws,
                                  TIER_RPC_INLINE)) != TIER_OK ||
        (rv = tier_rpc_server_add(srv, TIER_M_LIST_WORKERS, &tier__list_workers_request__descriptor,
                                  &tier__list_workers_reply__descriptor, h_list_workers, ws,
                                  TIER_RPC_INLINE)) != TIER_OK)
        return rv;
    return tier_rpc_server_add_health(srv, "workers", probe, ws);
}
