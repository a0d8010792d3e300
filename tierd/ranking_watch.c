/*
 * ranking_watch.c -- WatchTop: live top lists as a long poll (tier.proto
 * says the contract).
 *
 * nng's req/rep cannot push, so a watcher asks with the version of the list
 * it has, and the call is held (a deferred reply, tier_rpc_defer) until the
 * list has another version or the hold ends.  Nothing is ever queued for a
 * reader: a slow reader gets the newest list when it asks again, which is
 * the back-pressure -- a reader costs one held call, however slow it is.
 *
 * Watches asking for the same list (same TopContents fields and window) form
 * a group and share one computation.  The list is computed by TopContents
 * itself, called in-process (tier_rpc_server_call) with the window's bounds
 * filled in: so a watch gets exactly what TopContents answers (its orders,
 * its merge across shards), and this file needs no ranking code of its own.
 *
 * One thread re-evaluates the groups: when the index changed
 * (ranking_watch_poke, after each flush), when the minute rolled, and with
 * several shards once a second (peers' changes are not signalled here).
 * Each group is paced like a token bucket (GCRA): on average at most one
 * computation per EVAL_MIN_MS, with bursts of EVAL_BURST, so a change that
 * follows a quiet spell is computed at once, while a stream of changes
 * costs at most 10 computations a second per list, however many flushes
 * there are (the versions between are coalesced).  The thread also ends
 * the holds that reached their time (changed = false).
 *
 * A held call occupies one of the rpc server's contexts (tier_rpc.h: "calls
 * being served at once, deferred ones included"): with all contexts held
 * nothing else would be served.  So at most `max` calls are held at once
 * (--watch-max), RESOURCE_EXHAUSTED beyond.  ranking_watch_stop answers every
 * held call UNAVAILABLE and must run before the rpc server closes (which
 * waits for deferred calls).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranking_int.h"
#include "tier_log.h"
#include "tier_methods.h"
#include "tier_time.h"

#define EVAL_MIN_MS 100    /* a group is computed at most this often, on average */
#define EVAL_BURST 3       /* computations allowed back to back after a quiet spell */
#define PEERS_EVAL_MS 1000 /* several shards: computed again this often */
#define WAIT_DEFAULT_MS 30000
#define WAIT_MAX_MS 60000
#define DEADLINE_SLACK_MS 500 /* the reply must reach the client in time */
#define WINDOW_DEFAULT_MIN 60

typedef struct watch_group watch_group;

/* One held call; in the call's arena (lives until it is finished). */
typedef struct watcher {
    tier_rpc_ctx *call;
    Tier__WatchTopReply *rep;
    uint64_t version; /* the client's */
    int64_t until_ms; /* tier_mono_ms when the hold ends */
    int code;         /* when finished: the call's status */
    struct watcher *next;
} watcher;

struct watch_group {
    ranking_watch *w;
    uint8_t *key; /* the packed TopContentsRequest (no bounds) */
    size_t keylen;
    uint32_t window_min;
    char token[TIER_RPC_MAX_TOKEN + 1]; /* a member's bearer token, "" = none */
    watcher *watchers;
    /* The last list computed. */
    bool valid;
    uint8_t *payload; /* packed TopContentsReply */
    size_t len;
    uint64_t version;
    int64_t minute;
    uint64_t gen;      /* of the index it was computed at */
    bool computing;    /* an in-process TopContents is under way */
    uint64_t comp_gen; /* what the one under way was started at */
    int64_t comp_minute;
    int64_t started_ms; /* tier_mono_ms of the last start */
    int64_t tat_ms;     /* the pacing's theoretical arrival time (GCRA) */
    watch_group *next;
};

struct ranking_watch {
    ranking *r;
    tier_rpc_server *srv;
    unsigned max;
    bool peers; /* several shards */
    atomic_uint_fast64_t gen;
    pthread_mutex_t mu; /* everything below, and the groups */
    pthread_cond_t cv;
    watch_group *groups;
    unsigned held;
    unsigned long long computed; /* lists computed, ever (Health) */
    bool stopping;
    bool running;
    pthread_t thread;
};

/* ------------------------------------------------------------ versions */

/* FNV-1a over the packed list, then the minute; never 0 (0 = "none"). */
static uint64_t list_version(const uint8_t *p, size_t n, int64_t minute)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    for (int i = 0; i < 8; i++)
        h = (h ^ (uint8_t)((uint64_t)minute >> (8 * i))) * 1099511628211ull;
    return h != 0 ? h : 1;
}

/* ------------------------------------------------------------ replies */

static void *arena_alloc(void *call, size_t size)
{
    return tier_rpc_alloc(call, size);
}

static void arena_free(void *call, void *p)
{
    (void)call, (void)p;
}

/* Fills x's reply with g's list: TIER_OK, or RESOURCE_EXHAUSTED. */
static int fill_changed(watcher *x, const watch_group *g)
{
    ProtobufCAllocator a = {.alloc = arena_alloc, .free = arena_free, .allocator_data = x->call};
    Tier__TopContentsReply *top = (Tier__TopContentsReply *)protobuf_c_message_unpack(
        &tier__top_contents_reply__descriptor, &a, g->len, g->payload);

    if (top == NULL)
        return tier_rpc_set_message(x->call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    x->rep->rows = top->rows;
    x->rep->n_rows = top->n_rows;
    x->rep->version = g->version;
    x->rep->minute_ms = g->minute * 60000;
    x->rep->changed = true;
    return TIER_OK;
}

static void fill_unchanged(watcher *x, const watch_group *g)
{
    x->rep->version = x->version;
    x->rep->minute_ms = (g->valid ? g->minute : ranking_minute(tier_now_ms())) * 60000;
    x->rep->changed = false;
}

/* Unlinks x from g (mu held) onto *done, to be finished once mu is
 * released (finishing runs the rpc layer's send, or an in-process
 * caller's callback: not under our lock). */
static void retire(ranking_watch *w, watcher **link, watcher **done, int code)
{
    watcher *x = *link;

    *link = x->next;
    x->code = code;
    x->next = *done;
    *done = x;
    w->held--;
}

static void finish_all(watcher *done)
{
    while (done != NULL) {
        watcher *next = done->next; /* x dies with its call */
        tier_rpc_finish(done->call, done->code);
        done = next;
    }
}

/* ------------------------------------------------------------ computing */

static void group_free(watch_group *g)
{
    free(g->key);
    free(g->payload);
    free(g);
}

/* The in-process TopContents finished: keep its list, answer the watchers
 * whose version it is not. */
static void computed(void *arg, int code, const void *payload, size_t len, const char *message)
{
    watch_group *g = arg;
    ranking_watch *w = g->w;
    watcher *done = NULL;
    uint8_t *copy = code == TIER_OK ? malloc(len + 1) : NULL;

    pthread_mutex_lock(&w->mu);
    g->computing = false;
    w->computed++;
    if (code == TIER_OK && copy == NULL)
        code = TIER_RESOURCE_EXHAUSTED, message = "out of memory";
    if (code == TIER_OK) {
        if (len > 0)
            memcpy(copy, payload, len);
        free(g->payload);
        g->payload = copy, copy = NULL;
        g->len = len;
        g->version = list_version(g->payload, len, g->comp_minute);
        g->minute = g->comp_minute;
        g->gen = g->comp_gen;
        g->valid = true;
    }
    for (watcher **p = &g->watchers; *p != NULL;) {
        watcher *x = *p;
        if (code != TIER_OK)
            retire(w, p, &done,
                   tier_rpc_set_message(x->call, code, "%s", message ? message : "failed"));
        else if (x->version != g->version)
            retire(w, p, &done, fill_changed(x, g));
        else
            p = &x->next;
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    free(copy);
    finish_all(done);
}

/* The TopContents request of g for minute now_min, packed (malloc'ed). */
static uint8_t *group_request(const watch_group *g, int64_t now_min, size_t *len)
{
    Tier__TopContentsRequest *q = (Tier__TopContentsRequest *)protobuf_c_message_unpack(
        &tier__top_contents_request__descriptor, NULL, g->keylen, g->key);
    uint8_t *buf = NULL;

    if (q == NULL)
        return NULL;
    /* HOT has no window: it is scored at tierd's current minute (to_ms 0),
     * over the whole retention, and window_min only names the group. */
    if (q->order != TIER__ORDER__HOT) {
        q->from_ms = (now_min - (int64_t)g->window_min + 1) * 60000;
        q->to_ms = (now_min + 1) * 60000;
    }
    *len = protobuf_c_message_get_packed_size(&q->base);
    if ((buf = malloc(*len + 1)) != NULL)
        protobuf_c_message_pack(&q->base, buf);
    protobuf_c_message_free_unpacked(&q->base, NULL);
    return buf;
}

/* When g's pacing lets it be computed again (tier_mono_ms). */
static int64_t due_ms(const watch_group *g)
{
    return g->tat_ms - (int64_t)(EVAL_BURST - 1) * EVAL_MIN_MS;
}

/* Does g need computing now (mu held)? */
static bool group_due(const ranking_watch *w, const watch_group *g, uint64_t gen, int64_t now_min,
                      int64_t now_ms)
{
    if (g->computing || g->watchers == NULL)
        return false;
    if (!g->valid)
        return true;
    if (now_ms < due_ms(g))
        return false;
    return g->gen != gen || g->minute != now_min ||
           (w->peers && now_ms - g->started_ms >= PEERS_EVAL_MS);
}

/* Starts g's computation (mu not held; g->computing was set under it). */
static void group_start(ranking_watch *w, watch_group *g, int64_t now_min)
{
    size_t len = 0;
    uint8_t *req = group_request(g, now_min, &len);
    int rv = req == NULL ? TIER_RESOURCE_EXHAUSTED
                         : tier_rpc_server_call(w->srv, TIER_M_TOP_CONTENTS, req, len,
                                                g->token[0] ? g->token : NULL, computed, g);

    free(req);
    if (rv != TIER_OK)
        computed(g, rv, NULL, 0, "cannot compute the list");
}

/* ------------------------------------------------------------ the thread */

/* Ends the holds that are over and frees the groups nobody watches (mu
 * held); returns the earliest hold end left (INT64_MAX: none). */
static int64_t sweep(ranking_watch *w, int64_t now_ms, watcher **done)
{
    int64_t next = INT64_MAX;

    for (watch_group **gp = &w->groups; *gp != NULL;) {
        watch_group *g = *gp;
        for (watcher **p = &g->watchers; *p != NULL;) {
            watcher *x = *p;
            if (x->until_ms <= now_ms) {
                fill_unchanged(x, g);
                retire(w, p, done, TIER_OK);
                continue;
            }
            if (x->until_ms < next)
                next = x->until_ms;
            p = &x->next;
        }
        if (g->watchers == NULL && !g->computing) {
            *gp = g->next;
            group_free(g);
        } else {
            gp = &g->next;
        }
    }
    return next;
}

/* How long the thread may sleep (mu held): until the next hold ends, at
 * most EVAL_MIN_MS (minute rolls, peers); when the index changed since
 * round `gen`, until the first group may be computed again. */
static int64_t next_wait(const ranking_watch *w, uint64_t gen, int64_t next_hold)
{
    int64_t now = tier_mono_ms(), wait = EVAL_MIN_MS;

    if (next_hold != INT64_MAX && next_hold - now < wait)
        wait = next_hold - now;
    if (atomic_load(&w->gen) != gen)
        for (const watch_group *g = w->groups; g != NULL; g = g->next)
            if (!g->computing && g->watchers != NULL && due_ms(g) - now < wait)
                wait = due_ms(g) - now;
    return wait;
}

#define MAX_STARTS 64 /* per round; the rest next round */

static void *watch_main(void *arg)
{
    ranking_watch *w = arg;

    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        int64_t now_ms = tier_mono_ms(), now_min = ranking_minute(tier_now_ms());
        uint64_t gen = atomic_load(&w->gen);
        watch_group *start[MAX_STARTS];
        size_t nstart = 0;
        watcher *done = NULL;
        int64_t next = sweep(w, now_ms, &done);

        for (watch_group *g = w->groups; g != NULL && nstart < MAX_STARTS; g = g->next)
            if (group_due(w, g, gen, now_min, now_ms)) {
                g->computing = true;
                g->comp_gen = gen;
                g->comp_minute = now_min;
                g->started_ms = now_ms;
                g->tat_ms = (g->tat_ms > now_ms ? g->tat_ms : now_ms) + EVAL_MIN_MS;
                start[nstart++] = g;
            }
        pthread_mutex_unlock(&w->mu);
        finish_all(done);
        for (size_t i = 0; i < nstart; i++)
            group_start(w, start[i], now_min);
        pthread_mutex_lock(&w->mu);
        if (w->stopping)
            break;
        /* Idle without watchers; else look again when a group may be
         * due or a hold ends. */
        if (w->groups == NULL) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        int64_t wait = next_wait(w, gen, next);
        if (wait > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)wait * 1000000;
            ts.tv_sec += ts.tv_nsec / 1000000000;
            ts.tv_nsec %= 1000000000;
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ------------------------------------------------------------ module */

int ranking_watch_open(ranking_watch **out, ranking *r, unsigned max)
{
    ranking_watch *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    w->r = r;
    w->max = max;
    w->peers = r->deps->peers != NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        ranking_watch_free(w);
        return TIER_RESOURCE_EXHAUSTED;
    }
    w->running = true;
    *out = w;
    return TIER_OK;
}

void ranking_watch_set_server(ranking_watch *w, tier_rpc_server *srv)
{
    w->srv = srv;
}

void ranking_watch_poke(ranking_watch *w)
{
    if (w == NULL)
        return;
    atomic_fetch_add(&w->gen, 1);
    /* Unlocked: a lost wake-up costs at most EVAL_MIN_MS. */
    pthread_cond_signal(&w->cv);
}

void ranking_watch_stop(ranking_watch *w)
{
    watcher *done = NULL;

    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    for (watch_group *g = w->groups; g != NULL; g = g->next)
        while (g->watchers != NULL)
            retire(w, &g->watchers, &done,
                   tier_rpc_set_message(g->watchers->call, TIER_UNAVAILABLE,
                                        "tierd is shutting down"));
    pthread_mutex_unlock(&w->mu);
    finish_all(done);
    if (w->running) {
        pthread_join(w->thread, NULL);
        w->running = false;
    }
    /* The computations under way end on the rpc server's threads. */
    pthread_mutex_lock(&w->mu);
    for (;;) {
        bool busy = false;
        for (watch_group *g = w->groups; g != NULL; g = g->next)
            busy |= g->computing;
        if (!busy)
            break;
        pthread_cond_wait(&w->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
}

void ranking_watch_free(ranking_watch *w)
{
    if (w == NULL)
        return;
    ranking_watch_stop(w);
    while (w->groups != NULL) {
        watch_group *g = w->groups;
        w->groups = g->next;
        group_free(g);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* ------------------------------------------------------------ the handler */

/* Checks q; INVALID_ARGUMENT with a message when it is bad.  The rest of
 * the list's fields are TopContents's to check (its error is the answer). */
static int check_watch(ranking *r, tier_rpc_ctx *call, const Tier__WatchTopRequest *q,
                       const Tier__TopContentsRequest *top)
{
    if (top->from_ms != 0 || top->to_ms != 0 || top->local)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "top.from_ms, top.to_ms and top.local must be unset: "
                                    "the window is window_min");
    if (q->window_min > r->retention)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "window_min must be 1..the retention (%lld minutes)",
                                    (long long)r->retention);
    if (top->limit > TIER_RANK_LIMIT_MAX)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "top.limit must be 1..%d",
                                    TIER_RANK_LIMIT_MAX);
    if (top->service != NULL && top->service[0] != '\0' &&
        !ranking_service_valid(top->service, strlen(top->service)))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "service must be 1..64 bytes of [a-z0-9_.-]");
    return TIER_OK;
}

/* The window asked for: 0 = WINDOW_DEFAULT_MIN, or the retention when
 * shorter. */
static uint32_t window_of(const ranking *r, const Tier__WatchTopRequest *q)
{
    if (q->window_min != 0)
        return q->window_min;
    return r->retention < WINDOW_DEFAULT_MIN ? (uint32_t)r->retention : WINDOW_DEFAULT_MIN;
}

/* The caller's bearer token into buf ("" = none). */
static void caller_token(tier_rpc_ctx *call, char *buf, size_t len)
{
    const ProtobufCBinaryData *v = tier_rpc_metadata(call, TIER_RPC_AUTH_KEY);

    buf[0] = '\0';
    if (v != NULL && v->len > 7 && v->len - 7 < len && memcmp(v->data, "Bearer ", 7) == 0) {
        memcpy(buf, v->data + 7, v->len - 7);
        buf[v->len - 7] = '\0';
    }
}

/* When the hold of call ends, as tier_mono_ms. */
static int64_t hold_until(tier_rpc_ctx *call, uint32_t wait_ms)
{
    int64_t now = tier_mono_ms(), dl = tier_rpc_deadline_mono_us(call) / 1000;
    int64_t until = now + (wait_ms == 0            ? WAIT_DEFAULT_MS
                           : wait_ms > WAIT_MAX_MS ? WAIT_MAX_MS
                                                   : wait_ms);

    if (dl > 0 && dl - DEADLINE_SLACK_MS < until)
        until = dl - DEADLINE_SLACK_MS;
    return until;
}

/* g of this key (mu held), created when missing; NULL: out of memory. */
static watch_group *group_find(ranking_watch *w, const uint8_t *key, size_t keylen,
                               uint32_t window_min)
{
    watch_group *g;

    for (g = w->groups; g != NULL; g = g->next)
        if (g->window_min == window_min && g->keylen == keylen && memcmp(g->key, key, keylen) == 0)
            return g;
    if ((g = calloc(1, sizeof(*g))) == NULL || (g->key = malloc(keylen + 1)) == NULL) {
        free(g);
        return NULL;
    }
    memcpy(g->key, key, keylen);
    g->keylen = keylen;
    g->window_min = window_min;
    g->w = w;
    g->next = w->groups;
    w->groups = g;
    return g;
}

/* g's list is the one of now (mu held): no flush, no minute since; with
 * several shards, also computed within PEERS_EVAL_MS (the staleness
 * every watcher of a cluster accepts anyway). */
static bool group_current(const ranking_watch *w, const watch_group *g)
{
    return g->valid && g->gen == atomic_load(&w->gen) &&
           g->minute == ranking_minute(tier_now_ms()) &&
           (!w->peers || tier_mono_ms() - g->started_ms < PEERS_EVAL_MS);
}

/* Holds the call (mu held): deferred, watched by g. */
static int hold(ranking_watch *w, watch_group *g, watcher *x)
{
    tier_rpc_defer(x->call);
    x->next = g->watchers;
    g->watchers = x;
    w->held++;
    pthread_cond_signal(&w->cv);
    return TIER_RPC_DEFERRED;
}

int ranking_h_watch_top(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                        ProtobufCMessage *reply)
{
    ranking *r = arg;
    ranking_watch *w = r->watch;
    const Tier__WatchTopRequest *q = (const Tier__WatchTopRequest *)req;
    Tier__TopContentsRequest top = TIER__TOP_CONTENTS_REQUEST__INIT;
    watcher *x = tier_rpc_alloc(call, sizeof(*x));
    uint8_t *key;
    size_t keylen;
    int rv;

    if (q->top != NULL)
        top = *q->top;
    if ((rv = check_watch(r, call, q, &top)) != TIER_OK)
        return rv;
    keylen = protobuf_c_message_get_packed_size(&top.base);
    if (x == NULL || (key = tier_rpc_alloc(call, keylen + 1)) == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    protobuf_c_message_pack(&top.base, key);
    *x = (watcher){call,       (Tier__WatchTopReply *)reply,
                   q->version, hold_until(call, q->wait_ms),
                   TIER_OK,    NULL};

    pthread_mutex_lock(&w->mu);
    watch_group *g = NULL;
    if (w->stopping || w->srv == NULL)
        rv = tier_rpc_set_message(call, TIER_UNAVAILABLE, "tierd is shutting down");
    else if (w->held >= w->max)
        rv = tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED,
                                  "%u watches held already (--watch-max)", w->max);
    else if ((g = group_find(w, key, keylen, window_of(r, q))) == NULL)
        rv = tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    else if (group_current(w, g) && g->version != q->version)
        rv = fill_changed(x, g);
    else {
        caller_token(call, g->token, sizeof(g->token));
        rv = hold(w, g, x);
    }
    pthread_mutex_unlock(&w->mu);
    return rv;
}

void ranking_watch_describe(ranking_watch *w, char *buf, size_t len)
{
    unsigned lists = 0;

    pthread_mutex_lock(&w->mu);
    for (const watch_group *g = w->groups; g != NULL; g = g->next)
        lists++;
    snprintf(buf, len, "%u watches held on %u lists, %llu lists computed", w->held, lists,
             w->computed);
    pthread_mutex_unlock(&w->mu);
}
