/*
 * tier_rpc_conns.c -- the server's connections: how many, from where, and
 * whether they still deliver requests.
 *
 * Why: nng 1.5.2 has no timeout for a half-received frame, nor any cap on
 * accepted connections.  A peer that sends a header and stops holds its
 * pipe and fd forever; about a thousand of them exhaust the fd limit and
 * everyone else is refused.  So the server keeps its own table of pipes,
 * filled from nng's pipe notifications:
 *
 *   - ADD_PRE refuses (closes) a pipe over max_conns in total or over
 *     max_per_addr from one IP address;
 *   - every complete request received (tier_rpc_conns_recv) and reply sent
 *     (tier_rpc_conns_sent) marks its pipe alive;
 *   - a reaper thread closes pipes with no call running that delivered no
 *     complete request for idle_ms.  nng cannot tell us a pipe is in the
 *     middle of a frame, so idle pipes are closed too: our client redials
 *     by itself, and a request caught by the close is resent by req0.
 *
 * The table is a plain array scanned linearly: it holds at most max_conns
 * entries (hundreds), and a scan of that under an uncontended lock costs
 * less than the call it accounts for.
 */
#include "tier_rpc_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_time.h"

#define ADDR_LEN 17 /* a family tag, then up to 16 address bytes */

typedef struct {
    uint32_t id;
    uint8_t addr[ADDR_LEN]; /* addr[0] == 0: not an IP peer (ipc), no per-address cap */
    unsigned inflight;      /* requests received, replies not yet sent */
    int64_t last_us;        /* last complete request or reply (monotonic) */
} conn;

struct tier_rpc_conns {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    conn *conns;
    unsigned n, max, max_per_addr;
    int64_t idle_us;
    bool stopping, started;
    nng_socket sock;
    pthread_t reaper;
    atomic_uint_fast64_t refused, timed_out;
};

tier_rpc_conns *tier_rpc_conns_alloc(unsigned max, unsigned max_per_addr, uint32_t idle_ms)
{
    tier_rpc_conns *c = calloc(1, sizeof(*c));
    pthread_condattr_t ca;

    if (c == NULL || (c->conns = calloc(max, sizeof(conn))) == NULL) {
        free(c);
        return NULL;
    }
    c->max = max;
    c->max_per_addr = max_per_addr;
    c->idle_us = (int64_t)idle_ms * 1000;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    return c;
}

/* The peer's IP address without its port: what the per-address cap counts. */
static void peer_addr(nng_pipe p, uint8_t addr[ADDR_LEN])
{
    nng_sockaddr sa;

    memset(addr, 0, ADDR_LEN);
    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
        return;
    if (sa.s_family == NNG_AF_INET) {
        addr[0] = 4;
        memcpy(addr + 1, &sa.s_in.sa_addr, sizeof(sa.s_in.sa_addr));
    } else if (sa.s_family == NNG_AF_INET6) {
        addr[0] = 6;
        memcpy(addr + 1, sa.s_in6.sa_addr, sizeof(sa.s_in6.sa_addr));
    }
}

static unsigned count_addr(const tier_rpc_conns *c, const uint8_t addr[ADDR_LEN])
{
    unsigned k = 0;
    for (unsigned i = 0; i < c->n; i++)
        k += memcmp(c->conns[i].addr, addr, ADDR_LEN) == 0;
    return k;
}

static conn *find(tier_rpc_conns *c, uint32_t id)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->conns[i].id == id)
            return &c->conns[i];
    return NULL;
}

/* ADD_PRE: admit the pipe, or close it (nng then never adds it). */
static void on_add(nng_pipe p, tier_rpc_conns *c)
{
    conn e = {.id = (uint32_t)nng_pipe_id(p), .last_us = tier_mono_us()};
    bool ok;

    peer_addr(p, e.addr);
    pthread_mutex_lock(&c->mu);
    ok = c->n < c->max && (e.addr[0] == 0 || count_addr(c, e.addr) < c->max_per_addr);
    if (ok)
        c->conns[c->n++] = e;
    pthread_mutex_unlock(&c->mu);
    if (!ok) {
        atomic_fetch_add(&c->refused, 1);
        nng_pipe_close(p);
    }
}

/* REM_POST: forget it (refused pipes were never in the table). */
static void on_remove(nng_pipe p, tier_rpc_conns *c)
{
    conn *e;

    pthread_mutex_lock(&c->mu);
    if ((e = find(c, (uint32_t)nng_pipe_id(p))) != NULL)
        *e = c->conns[--c->n];
    pthread_mutex_unlock(&c->mu);
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    if (ev == NNG_PIPE_EV_ADD_PRE)
        on_add(p, arg);
    else if (ev == NNG_PIPE_EV_REM_POST)
        on_remove(p, arg);
}

/* Closes the pipes idle past the timeout; returns how many. */
static unsigned reap(tier_rpc_conns *c, uint32_t *ids)
{
    int64_t now = tier_mono_us();
    unsigned k = 0;

    for (unsigned i = 0; i < c->n; i++) {
        conn *e = &c->conns[i];
        if (e->inflight == 0 && now - e->last_us >= c->idle_us) {
            ids[k++] = e->id;
            e->last_us = now; /* closing: not again until REM_POST drops it */
        }
    }
    return k;
}

static void *reaper_main(void *arg)
{
    tier_rpc_conns *c = arg;
    /* A quarter of the timeout between scans: a pipe lives at most 1.25x
     * the timeout; at most a second, at least 10 ms. */
    int64_t period = c->idle_us / 4 > 1000000 ? 1000000 : c->idle_us / 4;
    uint32_t *ids = malloc(c->max * sizeof(*ids));

    if (period < 10000)
        period = 10000;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        int64_t until = tier_mono_us() + period;
        struct timespec ts = {.tv_sec = until / 1000000, .tv_nsec = (until % 1000000) * 1000};
        unsigned k;

        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        if (c->stopping || ids == NULL)
            continue;
        k = reap(c, ids);
        pthread_mutex_unlock(&c->mu); /* nng_pipe_close may call on_remove */
        for (unsigned i = 0; i < k; i++) {
            nng_pipe p = NNG_PIPE_INITIALIZER;
            p.id = ids[i];
            if (nng_pipe_close(p) == 0)
                atomic_fetch_add(&c->timed_out, 1);
        }
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    free(ids);
    return NULL;
}

int tier_rpc_conns_watch(tier_rpc_conns *c, nng_socket sock)
{
    int rv = 0;

    c->sock = sock;
    for (int ev = NNG_PIPE_EV_ADD_PRE; ev <= NNG_PIPE_EV_REM_POST && rv == 0; ev++)
        rv = nng_pipe_notify(sock, (nng_pipe_ev)ev, pipe_cb, c);
    return rv;
}

int tier_rpc_conns_start(tier_rpc_conns *c)
{
    if (pthread_create(&c->reaper, NULL, reaper_main, c) != 0)
        return -1;
    c->started = true;
    return 0;
}

void tier_rpc_conns_unwatch(tier_rpc_conns *c)
{
    for (int ev = NNG_PIPE_EV_ADD_PRE; ev <= NNG_PIPE_EV_REM_POST; ev++)
        nng_pipe_notify(c->sock, (nng_pipe_ev)ev, NULL, NULL);
}

static void stop(tier_rpc_conns *c)
{
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->started)
        pthread_join(c->reaper, NULL);
    c->started = false;
}

void tier_rpc_conns_free(tier_rpc_conns *c)
{
    if (c == NULL)
        return;
    stop(c);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->conns);
    free(c);
}

/* A complete request arrived on pipe id (delta 1), or its reply left it
 * (delta -1). */
static void touch(tier_rpc_conns *c, uint32_t id, int delta)
{
    conn *e;

    pthread_mutex_lock(&c->mu);
    if ((e = find(c, id)) != NULL) {
        e->last_us = tier_mono_us();
        if (delta > 0)
            e->inflight++;
        else if (e->inflight > 0)
            e->inflight--;
    }
    pthread_mutex_unlock(&c->mu);
}

void tier_rpc_conns_recv(tier_rpc_conns *c, uint32_t pipe_id)
{
    touch(c, pipe_id, 1);
}

void tier_rpc_conns_sent(tier_rpc_conns *c, uint32_t pipe_id)
{
    touch(c, pipe_id, -1);
}

void tier_rpc_conns_stats(tier_rpc_conns *c, uint64_t *open, uint64_t *refused, uint64_t *timed_out)
{
    pthread_mutex_lock(&c->mu);
    *open = c->n;
    pthread_mutex_unlock(&c->mu);
    *refused = atomic_load(&c->refused);
    *timed_out = atomic_load(&c->timed_out);
}
