/*
 * peers.c -- calls from one shard's writer to the other shards' writers
 * (docs/CLUSTER.md).  A call that spans contents (TopContents) is answered
 * by the tierd asked: it sends the same request, marked local, to every
 * other shard's owner at once and merges their replies with its own.
 *
 * Owners come from the topology in Redis (store/tier_topology.h), read
 * again when older than REFRESH_MS or when a call to an owner failed (a
 * takeover: the new writer publishes itself within a second).  One rpc
 * client per shard, reopened when its owner's URL changes.  Peers are
 * called with this tierd's own credentials (--peer-token), not the
 * caller's: the caller was already authorised for the method here, and
 * the merge is this tierd's work.
 *
 * Invariant: a shard whose owner does not answer makes the fan-out fail
 * (UNAVAILABLE naming the shard), never a partial answer -- the callers
 * promise exact results.  They retry within their deadline, which covers
 * a takeover (about the writer ttl).
 */
#include "tierd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_log.h"
#include "tier_slot.h"
#include "tier_time.h"
#include "tier_topology.h"

#define REFRESH_MS 2000

struct tierd_peers {
    const tierd_deps *deps;
    pthread_mutex_t mu; /* the fields below */
    int64_t read_ms;    /* tier_mono_ms of the last topology read, 0 = never */
    tier_shard_owner owner[TIER_SHARDS_MAX];
    tier_rpc_client *client[TIER_SHARDS_MAX];
    char client_url[TIER_SHARDS_MAX][256];
};

int tierd_peers_open(tierd_peers **out, const tierd_deps *deps)
{
    tierd_peers *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    p->deps = deps;
    pthread_mutex_init(&p->mu, NULL);
    *out = p;
    return TIER_OK;
}

void tierd_peers_close(tierd_peers *p)
{
    if (p == NULL)
        return;
    for (unsigned k = 0; k < TIER_SHARDS_MAX; k++)
        tier_rpc_client_close(p->client[k]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Reads the topology (mu held) when stale or forced. */
static int refresh_locked(tierd_peers *p, bool force)
{
    const tierd_config *cfg = p->deps->cfg;
    tier_kv *kv;
    int rv;

    if (!force && p->read_ms != 0 && tier_mono_ms() - p->read_ms < REFRESH_MS)
        return TIER_OK;
    if ((kv = tier_pool_get(p->deps->kv)) == NULL)
        return TIER_UNAVAILABLE;
    rv = tier_topology_read(kv, cfg->redis_prefix, cfg->shards, p->owner);
    tier_kv_pool_put(p->deps->kv, kv);
    if (rv == TIER_OK)
        p->read_ms = tier_mono_ms();
    return rv;
}

/* Shard k's client (mu held), opened for its owner's URL; NULL when the
 * shard has no live owner or the URL is refused. */
static tier_rpc_client *client_locked(tierd_peers *p, unsigned k)
{
    const tierd_config *cfg = p->deps->cfg;
    const tier_shard_owner *o = &p->owner[k];
    tier_rpc_client_opts opts = {.timeout_ms = 5000};
    tier_rpc_error err;

    if (!o->alive || o->rpc_url[0] == '\0')
        return NULL;
    if (p->client[k] != NULL && strcmp(p->client_url[k], o->rpc_url) == 0)
        return p->client[k];
    tier_rpc_client_close(p->client[k]);
    p->client[k] = NULL;
    opts.bearer_token = cfg->peer_token[0] ? cfg->peer_token : NULL;
    opts.tls.ca_file = cfg->peer_tls_ca[0] ? cfg->peer_tls_ca : NULL;
    if (tier_rpc_client_open(&p->client[k], o->rpc_url, &opts, &err) != TIER_OK) {
        tier_warn("peers: shard %u at %s: %s", k, o->rpc_url, err.message);
        p->client[k] = NULL;
        return NULL;
    }
    memcpy(p->client_url[k], o->rpc_url, sizeof(p->client_url[k])); /* same size, NUL-ended */
    return p->client[k];
}

/* One fan-out in flight: the replies land in its slots. */
typedef struct fan fan;

typedef struct {
    fan *fan;
    int code;
    char message[160];
    uint8_t *payload; /* malloc'ed copy of the reply, unpacked by the caller's thread */
    size_t len;
} fan_slot;

struct fan {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned pending;
    fan_slot slot[TIER_SHARDS_MAX];
};

static void on_reply(void *arg, int code, const void *payload, size_t len, const char *message)
{
    fan_slot *s = arg;
    fan *f = s->fan;

    s->code = code;
    if (code == TIER_OK && (s->payload = malloc(len + 1)) == NULL) {
        s->code = TIER_RESOURCE_EXHAUSTED;
        message = "out of memory";
    } else if (code == TIER_OK) {
        if (len > 0) /* an empty reply may come as a NULL payload */
            memcpy(s->payload, payload, len);
        s->len = len;
    }
    if (s->code != TIER_OK)
        snprintf(s->message, sizeof(s->message), "%s", message ? message : "");
    pthread_mutex_lock(&f->mu);
    f->pending--;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Sends to every other shard (mu held while the clients are used). */
static void send_all(tierd_peers *p, fan *f, const char *method, const uint8_t *buf, size_t len,
                     uint32_t timeout_ms)
{
    const tierd_config *cfg = p->deps->cfg;

    for (unsigned k = 0; k < cfg->shards; k++) {
        fan_slot *s = &f->slot[k];
        tier_rpc_client *c;
        if (k == cfg->shard)
            continue;
        s->fan = f;
        if ((c = client_locked(p, k)) == NULL) {
            s->code = TIER_UNAVAILABLE;
            snprintf(s->message, sizeof(s->message), "shard %u has no writer now", k);
            continue;
        }
        pthread_mutex_lock(&f->mu);
        f->pending++;
        pthread_mutex_unlock(&f->mu);
        if ((s->code = tier_rpc_call_async(c, method, buf, len, timeout_ms, on_reply, s)) !=
            TIER_OK) {
            snprintf(s->message, sizeof(s->message), "cannot send to shard %u", k);
            pthread_mutex_lock(&f->mu);
            f->pending--;
            pthread_mutex_unlock(&f->mu);
        }
    }
}

/* protobuf-c's allocator on the call's arena: replies live until the
 * call's own reply is sent, and nothing needs freeing. */
static void *arena_alloc(void *call, size_t size)
{
    return tier_rpc_alloc(call, size);
}

static void arena_free(void *call, void *p)
{
    (void)call, (void)p;
}

int tierd_peers_fanout(tierd_peers *p, tier_rpc_ctx *call, const char *method,
                       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                       ProtobufCMessage **replies, uint32_t timeout_ms, char *err, size_t errlen)
{
    ProtobufCAllocator arena = {.alloc = arena_alloc, .free = arena_free, .allocator_data = call};
    const tierd_config *cfg = p->deps->cfg;
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(len + 1);
    fan *f = calloc(1, sizeof(*f));
    int rv = TIER_OK;

    if (buf == NULL || f == NULL) {
        free(buf);
        free(f);
        return TIER_RESOURCE_EXHAUSTED;
    }
    protobuf_c_message_pack(req, buf);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    pthread_mutex_lock(&p->mu);
    if ((rv = refresh_locked(p, false)) == TIER_OK)
        send_all(p, f, method, buf, len, timeout_ms);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&f->mu);
    while (f->pending > 0)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    for (unsigned k = 0; k < cfg->shards; k++) {
        fan_slot *s = &f->slot[k];
        replies[k] = NULL;
        if (s->code == TIER_OK && s->payload != NULL &&
            (replies[k] = protobuf_c_message_unpack(rd, &arena, s->len, s->payload)) == NULL) {
            s->code = TIER_INTERNAL;
            snprintf(s->message, sizeof(s->message), "malformed reply");
        }
        free(s->payload);
        if (k != cfg->shard && rv == TIER_OK && s->code != TIER_OK) {
            rv = s->code == TIER_DEADLINE_EXCEEDED ? TIER_DEADLINE_EXCEEDED : TIER_UNAVAILABLE;
            snprintf(err, errlen, "shard %u: %s", k, s->message);
        }
    }
    if (rv != TIER_OK) { /* an owner changed, probably: read the topology again next time */
        pthread_mutex_lock(&p->mu);
        p->read_ms = 0;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
    free(buf);
    return rv;
}

void tierd_peers_owner_url(tierd_peers *p, unsigned shard, char *buf, size_t len)
{
    buf[0] = '\0';
    if (shard >= p->deps->cfg->shards)
        return;
    pthread_mutex_lock(&p->mu);
    if (refresh_locked(p, false) == TIER_OK && p->owner[shard].alive)
        snprintf(buf, len, "%s", p->owner[shard].rpc_url);
    pthread_mutex_unlock(&p->mu);
}

#define WAIT_MS 8000 /* a takeover is about the writer ttl (3 s) plus a load */

int tierd_peers_fanout_wait(tierd_peers *p, tier_rpc_ctx *call, const char *method,
                            const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                            ProtobufCMessage **replies, char *err, size_t errlen)
{
    int64_t until = tier_mono_ms() + WAIT_MS, dl = tier_rpc_deadline_mono_us(call) / 1000;
    int rv;

    if (dl > 0 && dl < until)
        until = dl;
    while ((rv = tierd_peers_fanout(p, call, method, req, rd, replies, 2000, err, errlen)) !=
               TIER_OK &&
           tier_mono_ms() + 250 < until)
        usleep(250 * 1000);
    return rv;
}

uint32_t tierd_peers_time_left(tier_rpc_ctx *call, uint32_t fallback_ms)
{
    int64_t dl = tier_rpc_deadline_mono_us(call) / 1000, left;

    if (dl <= 0)
        return fallback_ms;
    left = dl - tier_mono_ms();
    return left <= 0 ? 1 : left > (int64_t)fallback_ms ? fallback_ms : (uint32_t)left;
}
