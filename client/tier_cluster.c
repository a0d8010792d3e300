/*
 * tier_cluster.c -- libtier's cluster handle (tier_client.h, "several
 * coordinators"; docs/CLUSTER.md, Routing).
 *
 * It asks the seeds (any tierds, dialled on one socket) for the Topology,
 * keeps one tier_client per shard owner's rpc URL, and sends each cid's
 * call to its shard's owner.  Batches are cut by shard with a generic
 * walk over the request's one repeated field (every batch request of
 * tier.proto is `repeated Item items = 1` with an int64 `cid` in the item,
 * and every batch reply `repeated Result results = 1`, one per item), and
 * the parts' results are put back in request order.
 *
 * A part refused with FAILED_PRECONDITION and a moved_to (the shard moved),
 * or UNAVAILABLE (its owner died, or the shard has no owner right now), is
 * retried after a fresh Topology, at most TRIES times with a short backoff
 * and within the client's per-call timeout.
 *
 * Clients are cached by URL and freed only by tier_cluster_close, so a
 * tier_client * handed out stays valid however the topology changes.
 */
#include "tier_client.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_client_internal.h"
#include "tier_cluster_internal.h"
#include "tier_methods.h"
#include "tier_slot.h"
#include "tier_time.h"

#define TRIES 4       /* the first go and 3 retries */
#define BACKOFF_MS 50 /* doubled each retry */
#define CONNECT_WAIT_MS 1000
#define CACHE_MAX (4 * TIER_SHARDS_MAX)

typedef struct {
    char url[TIER_RPC_MAX_URL];
    tier_client *c;
} cached;

struct tier_cluster {
    pthread_mutex_t mu;
    tier_client *seeds;
    char *token, *ca_file, *server_name;
    tier_client_opts opts;      /* strings point at the copies above */
    unsigned shards;            /* 0 until the first Topology */
    int owner[TIER_SHARDS_MAX]; /* index into cache, -1: none known */
    cached cache[CACHE_MAX];
    size_t ncache;
};

static void set_error(tier_error *err, int code, const char *fmt, const char *a, unsigned n)
{
    if (err == NULL)
        return;
    err->code = code;
    snprintf(err->message, sizeof(err->message), fmt, a, n);
    err->moved_to[0] = '\0';
}

static char *dup_opt(const char *s, bool *ok)
{
    char *d = s != NULL ? strdup(s) : NULL;
    if (s != NULL && d == NULL)
        *ok = false;
    return d;
}

/* ------------------------------------------------------------ topology */

/* A URL a peer sent: printable ASCII without spaces that fits. */
static bool url_ok(const char *u)
{
    size_t n = u != NULL ? strnlen(u, TIER_RPC_MAX_URL) : TIER_RPC_MAX_URL;

    if (n == 0 || n >= TIER_RPC_MAX_URL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (u[i] <= ' ' || u[i] > '~')
            return false;
    return true;
}

/* The peer's reply is believed only when it is whole and consistent. */
static bool topology_ok(const Tier__TopologyReply *t)
{
    if (t->slots != TIER_SLOTS || t->shards == 0 || t->shards > TIER_SHARDS_MAX ||
        t->n_owners != t->shards)
        return false;
    for (unsigned k = 0; k < t->shards; k++)
        if (t->owners[k] == NULL || t->owners[k]->shard != k)
            return false;
    return true;
}

/* The cached client of url, opened if new (mu held); -1 when full or it
 * cannot be opened. */
static int client_index(tier_cluster *cl, const char *url)
{
    for (size_t i = 0; i < cl->ncache; i++)
        if (strcmp(cl->cache[i].url, url) == 0)
            return (int)i;
    if (cl->ncache == CACHE_MAX ||
        tier_client_open_opts(&cl->cache[cl->ncache].c, url, &cl->opts, NULL) != TIER_OK)
        return -1;
    snprintf(cl->cache[cl->ncache].url, sizeof(cl->cache[0].url), "%s", url);
    return (int)cl->ncache++;
}

/* Takes a checked reply as the current topology (mu held). */
static int apply(tier_cluster *cl, const Tier__TopologyReply *t, tier_error *err)
{
    if (cl->shards != 0 && cl->shards != t->shards) {
        set_error(err, TIER_FAILED_PRECONDITION, "the cluster changed its shard count%s (to %u)",
                  "", t->shards);
        return TIER_FAILED_PRECONDITION;
    }
    cl->shards = t->shards;
    for (unsigned k = 0; k < t->shards; k++) {
        const Tier__ShardInfo *o = t->owners[k];
        cl->owner[k] = o->alive && url_ok(o->rpc_url) ? client_index(cl, o->rpc_url) : -1;
    }
    return TIER_OK;
}

/* Asks c for the topology. */
static int ask(tier_cluster *cl, tier_client *c, tier_error *err)
{
    Tier__TopologyRequest req = TIER__TOPOLOGY_REQUEST__INIT;
    Tier__TopologyReply *t;
    int rv;

    if ((rv = tier_topology(c, &req, &t, err)) != TIER_OK)
        return rv;
    if (!topology_ok(t)) {
        tier_free(t);
        set_error(err, TIER_INTERNAL, "malformed Topology reply%s (%u shards)", "", 0);
        return TIER_INTERNAL;
    }
    pthread_mutex_lock(&cl->mu);
    rv = apply(cl, t, err);
    pthread_mutex_unlock(&cl->mu);
    tier_free(t);
    return rv;
}

/* How long to wait for a connection to a seed or an owner before giving
 * it up for this go. */
static uint32_t connect_default(const tier_cluster *cl)
{
    return cl->opts.connect_timeout_ms ? cl->opts.connect_timeout_ms : CONNECT_WAIT_MS;
}

/* Asks the owners we know (connected ones only): the seeds are down. */
static int ask_owners(tier_cluster *cl, tier_error *err)
{
    tier_client *known[TIER_SHARDS_MAX];
    unsigned n = 0;
    int rv = TIER_UNAVAILABLE;

    set_error(err, TIER_UNAVAILABLE, "no seed and no owner answers Topology%s%.0u", "", 0);
    pthread_mutex_lock(&cl->mu);
    for (unsigned k = 0; k < cl->shards; k++)
        if (cl->owner[k] >= 0)
            known[n++] = cl->cache[cl->owner[k]].c;
    pthread_mutex_unlock(&cl->mu);
    for (unsigned i = 0; i < n; i++) {
        if (tier_client_wait_connected(known[i], 0) != TIER_OK)
            continue;
        if ((rv = ask(cl, known[i], err)) == TIER_OK || rv == TIER_FAILED_PRECONDITION)
            return rv;
    }
    return rv;
}

/* first: at open, the seeds are asked with the whole call timeout (they
 * may still be connecting); later a seed with no connection within the
 * connect wait is passed over for the owners. */
static int refresh(tier_cluster *cl, bool first, tier_error *err)
{
    int rv;

    if (first || tier_client_wait_connected(cl->seeds, connect_default(cl)) == TIER_OK) {
        rv = ask(cl, cl->seeds, err);
        if (first || rv == TIER_OK || rv == TIER_FAILED_PRECONDITION)
            return rv;
    }
    return ask_owners(cl, err);
}

int tier_cluster_refresh(tier_cluster *cl, tier_error *err)
{
    return refresh(cl, false, err);
}

int tier_cluster_open(tier_cluster **out, const char *seeds, const tier_client_opts *opts,
                      tier_error *err)
{
    tier_cluster *cl = calloc(1, sizeof(*cl));
    bool ok = true;
    int rv;

    *out = NULL;
    if (cl == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    pthread_mutex_init(&cl->mu, NULL);
    if (opts != NULL)
        cl->opts = *opts;
    cl->opts.token = cl->token = dup_opt(cl->opts.token, &ok);
    cl->opts.tls_ca_file = cl->ca_file = dup_opt(cl->opts.tls_ca_file, &ok);
    cl->opts.tls_server_name = cl->server_name = dup_opt(cl->opts.tls_server_name, &ok);
    for (unsigned k = 0; k < TIER_SHARDS_MAX; k++)
        cl->owner[k] = -1;
    rv = ok ? tier_client_open_opts(&cl->seeds, seeds, &cl->opts, err) : TIER_RESOURCE_EXHAUSTED;
    if (rv == TIER_OK)
        rv = refresh(cl, true, err);
    if (rv != TIER_OK) {
        tier_cluster_close(cl);
        return rv;
    }
    *out = cl;
    return TIER_OK;
}

void tier_cluster_close(tier_cluster *cl)
{
    if (cl == NULL)
        return;
    for (size_t i = 0; i < cl->ncache; i++)
        tier_client_close(cl->cache[i].c);
    tier_client_close(cl->seeds);
    free(cl->token);
    free(cl->ca_file);
    free(cl->server_name);
    pthread_mutex_destroy(&cl->mu);
    free(cl);
}

unsigned tier_cluster_shards(tier_cluster *cl)
{
    pthread_mutex_lock(&cl->mu);
    unsigned n = cl->shards;
    pthread_mutex_unlock(&cl->mu);
    return n;
}

/* Shard k's owner; the seeds when the cluster is one shard; NULL when the
 * shard has no owner we know (url: its URL, or ""). */
static tier_client *owner_of(tier_cluster *cl, unsigned k, char *url, size_t len)
{
    tier_client *c = NULL;

    pthread_mutex_lock(&cl->mu);
    if (cl->shards <= 1) {
        c = cl->seeds;
        snprintf(url, len, "the seeds");
    } else if (k < cl->shards && cl->owner[k] >= 0) {
        c = cl->cache[cl->owner[k]].c;
        snprintf(url, len, "%s", cl->cache[cl->owner[k]].url);
    } else if (len > 0) {
        url[0] = '\0';
    }
    pthread_mutex_unlock(&cl->mu);
    return c;
}

tier_client *tier_cluster_client_for(tier_cluster *cl, int64_t cid)
{
    char url[TIER_RPC_MAX_URL];
    unsigned shards = tier_cluster_shards(cl);

    return owner_of(cl, shards > 1 ? tier_shard_of(cid, shards) : 0, url, sizeof(url));
}

int tier_cluster_owner_url(tier_cluster *cl, int64_t cid, char *buf, size_t len)
{
    unsigned shards = tier_cluster_shards(cl);

    if (owner_of(cl, shards > 1 ? tier_shard_of(cid, shards) : 0, buf, len) == NULL)
        return TIER_UNAVAILABLE;
    return TIER_OK;
}

tier_client *tier_cluster_any(tier_cluster *cl)
{
    tier_client *c = cl->seeds;

    pthread_mutex_lock(&cl->mu);
    for (unsigned k = 0; cl->shards > 1 && k < cl->shards; k++)
        if (cl->owner[k] >= 0) {
            c = cl->cache[cl->owner[k]].c;
            break;
        }
    pthread_mutex_unlock(&cl->mu);
    return c;
}

/* ------------------------------------------------------------ calling */

/* Calls shard k's owner (k == TIER_SHARDS_MAX: any owner), failing fast
 * with UNAVAILABLE when it has none or no connection comes within wait_ms. */
int tier_cluster_call_shard(tier_cluster *cl, unsigned k, uint32_t wait_ms, const char *method,
                            const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                            ProtobufCMessage **rep, tier_error *err)
{
    char url[TIER_RPC_MAX_URL];
    tier_client *c;

    *rep = NULL;
    if (k == TIER_SHARDS_MAX) {
        c = tier_cluster_any(cl);
        snprintf(url, sizeof(url), "any owner");
    } else if ((c = owner_of(cl, k, url, sizeof(url))) == NULL) {
        set_error(err, TIER_UNAVAILABLE, "shard %.0s%u has no owner now", "", k);
        return TIER_UNAVAILABLE;
    }
    if (tier_client_wait_connected(c, wait_ms) != TIER_OK) {
        set_error(err, TIER_UNAVAILABLE, "no connection to %.200s (shard %u)", url, k);
        return TIER_UNAVAILABLE;
    }
    return tier_client_call(c, method, req, rd, rep, err);
}

/* Worth a fresh topology and another go. */
bool tier_cluster_retryable(int rv, const tier_error *err)
{
    return rv == TIER_UNAVAILABLE || (rv == TIER_FAILED_PRECONDITION && err->moved_to[0] != '\0');
}

void tier_cluster_retry_begin(tier_cluster *cl, tier_cluster_retry *r)
{
    r->start_ms = tier_mono_ms();
    r->budget_ms = tier_client_timeout(cl->seeds);
    r->attempt = 0;
}

/* ms left of the call's budget, at least 1. */
static uint32_t retry_left(const tier_cluster_retry *r)
{
    int64_t left = r->budget_ms - (tier_mono_ms() - r->start_ms);
    return left > 0 ? (uint32_t)left : 1;
}

uint32_t tier_cluster_connect_wait(const tier_cluster *cl, const tier_cluster_retry *r)
{
    uint32_t w = connect_default(cl), left = retry_left(r);
    return w < left ? w : left;
}

/* After a retryable failure: backs off, refreshes the topology and says
 * whether another go fits the tries and the budget. */
bool tier_cluster_retry_again(tier_cluster *cl, tier_cluster_retry *r)
{
    int64_t pause = (int64_t)BACKOFF_MS << r->attempt;

    if (++r->attempt >= TRIES || tier_mono_ms() - r->start_ms + pause >= r->budget_ms)
        return false;
    struct timespec ts = {pause / 1000, (long)(pause % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    tier_cluster_refresh(cl, NULL);
    return true;
}

/* The shard whose owner is url (after a MOVED), or `guess` when none is. */
static unsigned shard_at(tier_cluster *cl, const char *url, unsigned guess)
{
    unsigned k = guess;

    pthread_mutex_lock(&cl->mu);
    for (unsigned i = 0; i < cl->shards; i++)
        if (cl->owner[i] >= 0 && strcmp(cl->cache[cl->owner[i]].url, url) == 0)
            k = i;
    pthread_mutex_unlock(&cl->mu);
    return k;
}

/* Which shard a call goes to first, of `shards`. */
typedef unsigned (*shard_pick)(unsigned shards, int64_t key);

/* A cid's call: its content's shard. */
static unsigned pick_cid(unsigned shards, int64_t cid)
{
    return shards > 1 ? tier_shard_of(cid, shards) : 0;
}

/* A comment's change, by its id: ids are the shard's that made them (id %
 * shards, docs/CLUSTER.md); a comment from before the cluster had several
 * shards may live elsewhere, and its tierd's MOVED names the owner. */
static unsigned pick_id(unsigned shards, int64_t id)
{
    return shards > 1 && id > 0 ? (unsigned)(id % shards) : 0;
}

/* One call to the shard pick(key) names, picked again after every
 * topology refresh, until a MOVED names an owner: then to that one. */
static int route(tier_cluster *cl, shard_pick pick, int64_t key, const char *method,
                 const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                 ProtobufCMessage **rep, tier_error *err)
{
    tier_error local;
    tier_cluster_retry r;
    bool moved = false;
    unsigned k = 0;
    int rv;

    if (err == NULL)
        err = &local;
    tier_cluster_retry_begin(cl, &r);
    for (;;) {
        if (!moved)
            k = pick(tier_cluster_shards(cl), key);
        rv = tier_cluster_call_shard(cl, k, tier_cluster_connect_wait(cl, &r), method, req, rd, rep,
                                     err);
        if (rv == TIER_OK || !tier_cluster_retryable(rv, err) || !tier_cluster_retry_again(cl, &r))
            return rv;
        if (err->moved_to[0] != '\0') {
            k = shard_at(cl, err->moved_to, k);
            moved = true;
        }
    }
}

#define TIER_CLUSTER_COMMENT(fn, name, Req)                                                        \
    int fn(tier_cluster *cl, const Req *req, Tier__CommentReply **reply, tier_error *err)          \
    {                                                                                              \
        return route(cl, pick_id, req->id, name, &req->base, &tier__comment_reply__descriptor,     \
                     (ProtobufCMessage **)reply, err);                                             \
    }

TIER_CLUSTER_COMMENT(tier_cluster_edit_comment, TIER_M_EDIT_COMMENT, Tier__EditCommentRequest)
TIER_CLUSTER_COMMENT(tier_cluster_delete_comment, TIER_M_DELETE_COMMENT, Tier__DeleteCommentRequest)
TIER_CLUSTER_COMMENT(tier_cluster_restore_comment, TIER_M_RESTORE_COMMENT,
                     Tier__RestoreCommentRequest)

/* Any tierd: it asks the others (local) and sums. */
int tier_cluster_delete_by_author(tier_cluster *cl, const Tier__DeleteByAuthorRequest *req,
                                  Tier__DeleteByAuthorReply **reply, tier_error *err)
{
    return route(cl, pick_id, 0, TIER_M_DELETE_BY_AUTHOR, &req->base,
                 &tier__delete_by_author_reply__descriptor, (ProtobufCMessage **)reply, err);
}

#define TIER_CLUSTER_ONE(fn, name, Req, Rep, desc)                                                 \
    int fn(tier_cluster *cl, const Req *req, Rep **reply, tier_error *err)                         \
    {                                                                                              \
        return route(cl, pick_cid, req->cid, name, &req->base, &desc, (ProtobufCMessage **)reply,  \
                     err);                                                                         \
    }

TIER_CLUSTER_ONE(tier_cluster_get_content, TIER_M_GET_CONTENT, Tier__GetContentRequest,
                 Tier__GetContentReply, tier__get_content_reply__descriptor)
TIER_CLUSTER_ONE(tier_cluster_get_history, TIER_M_GET_HISTORY, Tier__GetHistoryRequest,
                 Tier__GetHistoryReply, tier__get_history_reply__descriptor)
TIER_CLUSTER_ONE(tier_cluster_get_job, TIER_M_GET_JOB, Tier__GetJobRequest, Tier__GetJobReply,
                 tier__get_job_reply__descriptor)
TIER_CLUSTER_ONE(tier_cluster_retry_job, TIER_M_RETRY_JOB, Tier__JobControlRequest,
                 Tier__JobControlReply, tier__job_control_reply__descriptor)
TIER_CLUSTER_ONE(tier_cluster_cancel_job, TIER_M_CANCEL_JOB, Tier__JobControlRequest,
                 Tier__JobControlReply, tier__job_control_reply__descriptor)
TIER_CLUSTER_ONE(tier_cluster_move_content, TIER_M_MOVE_CONTENT, Tier__MoveContentRequest,
                 Tier__MoveContentReply, tier__move_content_reply__descriptor)
TIER_CLUSTER_ONE(tier_cluster_post_comment, TIER_M_POST_COMMENT, Tier__PostCommentRequest,
                 Tier__PostCommentReply, tier__post_comment_reply__descriptor)
TIER_CLUSTER_ONE(tier_cluster_latest_comments, TIER_M_LATEST_COMMENTS, Tier__LatestCommentsRequest,
                 Tier__LatestCommentsReply, tier__latest_comments_reply__descriptor)
