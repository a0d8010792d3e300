/*
 * tier_rpc_server.c -- the server half of the RPC layer (see tier_rpc.h).
 *
 * A rep0 socket served by `nthreads` threads, each owning one nng context
 * and looping recv -> handle -> send.  A handler that blocks (on MySQL, say)
 * holds up only its own thread; the others keep serving.
 *
 * Every frame gets an answer, whatever it holds -- a frame that is not an
 * envelope, an unknown method, a payload that does not unpack, a request
 * too large, a request already past its deadline -- and the thread goes on
 * to the next one.  Frames beyond twice the size limit are refused by nng
 * itself (it closes that pipe), so a hostile sender cannot make us buffer
 * unbounded memory.
 */
#include "tier_rpc.h"
#include "tier_rpc_int.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.pb-c.h"
#include "tier_log.h"
#include "tier_time.h"

#define DEDUPE_CAPACITY 8192

typedef struct {
    char *name;
    const ProtobufCMessageDescriptor *req, *reply;
    tier_rpc_fn fn;
    void *arg;
} method;

typedef struct {
    char *name;
    tier_rpc_health_fn fn;
    void *arg;
} health_probe;

struct tier_rpc_ctx {
    tier_rpc_arena arena;
    int64_t deadline_us; /* monotonic; 0 = none */
    Tier__Rpc__Request *req;
    char *message;
};

typedef struct {
    tier_rpc_server *srv;
    pthread_t tid;
    nng_ctx ctx;
    nng_aio *aio;
    tier_rpc_ctx call;
} worker;

struct tier_rpc_server {
    nng_socket sock;
    char *url;
    size_t max_msg;
    unsigned nthreads;
    method *methods;
    size_t nmethods;
    health_probe *probes;
    size_t nprobes;
    worker *workers;
    tier_rpc_dedupe *dedupe;
    bool started;
    atomic_uint_fast64_t served, deadline_dropped, bad_envelope, deduped;
};

/* ------------------------------------------------------------ call helpers */

void *tier_rpc_alloc(tier_rpc_ctx *call, size_t size)
{
    return tier_rpc_arena_alloc(&call->arena, size);
}

char *tier_rpc_strndup(tier_rpc_ctx *call, const char *s, size_t n)
{
    char *p = tier_rpc_arena_alloc(&call->arena, n + 1);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

char *tier_rpc_strdup(tier_rpc_ctx *call, const char *s)
{
    return tier_rpc_strndup(call, s, strlen(s));
}

int tier_rpc_set_message(tier_rpc_ctx *call, int code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    call->message = tier_rpc_strdup(call, buf);
    return code;
}

int64_t tier_rpc_deadline_mono_us(const tier_rpc_ctx *call)
{
    return call->deadline_us;
}

const ProtobufCBinaryData *tier_rpc_metadata(const tier_rpc_ctx *call, const char *key)
{
    if (call->req == NULL)
        return NULL;
    for (size_t i = 0; i < call->req->n_metadata; i++)
        if (strcmp(call->req->metadata[i]->key, key) == 0)
            return &call->req->metadata[i]->value;
    return NULL;
}

/* ------------------------------------------------------------- setup */

int tier_rpc_server_open(tier_rpc_server **out, const char *url, const tier_rpc_server_opts *opts)
{
    tier_rpc_server *s = calloc(1, sizeof(*s));
    int rv;

    if (s == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    s->nthreads = opts && opts->nthreads ? opts->nthreads : 16;
    s->max_msg = opts && opts->max_msg ? opts->max_msg : TIER_RPC_MAX_MSG_DEFAULT;
    s->url = strdup(url);
    s->dedupe = tier_rpc_dedupe_alloc(DEDUPE_CAPACITY);
    if (s->url == NULL || s->dedupe == NULL) {
        tier_rpc_server_close(s);
        return TIER_RESOURCE_EXHAUSTED;
    }
    if ((rv = nng_rep0_open(&s->sock)) != 0) {
        tier_error("rpc: rep0 open: %s", nng_strerror(rv));
        tier_rpc_server_close(s);
        return TIER_INTERNAL;
    }
    /* Twice the limit: requests between the two are answered
     * RESOURCE_EXHAUSTED; beyond it nng drops the pipe. */
    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, s->max_msg * 2);
    if ((rv = nng_listen(s->sock, url, NULL, 0)) != 0) {
        tier_error("rpc: cannot listen on %s: %s", url, nng_strerror(rv));
        tier_rpc_server_close(s);
        return rv == NNG_EADDRINUSE ? TIER_ALREADY_EXISTS : TIER_INVALID_ARGUMENT;
    }
    *out = s;
    return TIER_OK;
}

int tier_rpc_server_add(tier_rpc_server *s, const char *name, const ProtobufCMessageDescriptor *req,
                        const ProtobufCMessageDescriptor *reply, tier_rpc_fn fn, void *arg)
{
    method *m;

    if (s->started)
        return TIER_FAILED_PRECONDITION;
    m = realloc(s->methods, (s->nmethods + 1) * sizeof(*m));
    if (m == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    s->methods = m;
    m[s->nmethods] = (method){strdup(name), req, reply, fn, arg};
    if (m[s->nmethods].name == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    s->nmethods++;
    return TIER_OK;
}

int tier_rpc_server_add_health(tier_rpc_server *s, const char *name, tier_rpc_health_fn fn,
                               void *arg)
{
    health_probe *p;

    if (s->started)
        return TIER_FAILED_PRECONDITION;
    p = realloc(s->probes, (s->nprobes + 1) * sizeof(*p));
    if (p == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    s->probes = p;
    p[s->nprobes] = (health_probe){strdup(name), fn, arg};
    if (p[s->nprobes].name == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    s->nprobes++;
    return TIER_OK;
}

static int method_cmp(const void *a, const void *b)
{
    return strcmp(((const method *)a)->name, ((const method *)b)->name);
}

static const method *method_find(const tier_rpc_server *s, const char *name)
{
    method key = {.name = (char *)name};
    return bsearch(&key, s->methods, s->nmethods, sizeof(method), method_cmp);
}

/* ------------------------------------------------------------- health */

static int health_check(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                        ProtobufCMessage *reply)
{
    tier_rpc_server *s = arg;
    Tier__Rpc__HealthReply *hr = (Tier__Rpc__HealthReply *)reply;

    (void)req;
    hr->status = TIER__RPC__HEALTH_REPLY__STATUS__SERVING;
    hr->n_dependencies = s->nprobes;
    hr->dependencies = tier_rpc_alloc(call, s->nprobes * sizeof(*hr->dependencies) + 1);
    for (size_t i = 0; i < s->nprobes; i++) {
        Tier__Rpc__HealthReply__Dependency *d = tier_rpc_alloc(call, sizeof(*d));
        char msg[256] = "";
        if (hr->dependencies == NULL || d == NULL)
            return TIER_RESOURCE_EXHAUSTED;
        tier__rpc__health_reply__dependency__init(d);
        d->name = s->probes[i].name;
        d->ok = s->probes[i].fn(s->probes[i].arg, msg, sizeof(msg)) == TIER_OK;
        d->message = tier_rpc_strdup(call, msg);
        if (!d->ok)
            hr->status = TIER__RPC__HEALTH_REPLY__STATUS__NOT_SERVING;
        hr->dependencies[i] = d;
    }
    return TIER_OK;
}

/* ------------------------------------------------------------- serving */

/* Packs the reply envelope into msg's body. */
static void put_reply(nng_msg *msg, uint64_t request_id, int code, const char *message,
                      const void *payload, size_t plen)
{
    Tier__Rpc__Reply rep = TIER__RPC__REPLY__INIT;
    size_t n;

    rep.request_id = request_id;
    rep.code = (Tier__Rpc__Code)code;
    rep.message = (char *)(message ? message : "");
    rep.payload.data = (uint8_t *)payload;
    rep.payload.len = plen;
    n = tier__rpc__reply__get_packed_size(&rep);
    nng_msg_clear(msg);
    if (nng_msg_realloc(msg, n) != 0) {
        nng_msg_clear(msg); /* an empty body: the client reports INTERNAL */
        return;
    }
    tier__rpc__reply__pack(&rep, nng_msg_body(msg));
}

/* Runs a method on an unpacked envelope; leaves the reply in msg. */
static void dispatch(tier_rpc_server *s, worker *w, Tier__Rpc__Request *req, nng_msg *msg)
{
    tier_rpc_ctx *call = &w->call;
    ProtobufCMessage *in, *out;
    const method *m = method_find(s, req->method);
    method health = {TIER_RPC_HEALTH_METHOD, &tier__rpc__health_request__descriptor,
                     &tier__rpc__health_reply__descriptor, health_check, s};
    uint8_t *payload = NULL;
    size_t plen = 0;
    int code;

    if (m == NULL && strcmp(req->method, TIER_RPC_HEALTH_METHOD) == 0)
        m = &health;
    if (m == NULL) {
        tier_rpc_set_message(call, TIER_UNIMPLEMENTED, "unknown method \"%.200s\"", req->method);
        put_reply(msg, req->request_id, TIER_UNIMPLEMENTED, call->message, NULL, 0);
        return;
    }
    in = protobuf_c_message_unpack(m->req, &call->arena.pbc, req->payload.len, req->payload.data);
    out = tier_rpc_alloc(call, m->reply->sizeof_message);
    if (in == NULL) {
        code = tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "malformed %s", m->req->name);
    } else if (out == NULL) {
        code = tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        m->reply->message_init(out);
        code = m->fn(m->arg, call, in, out);
    }
    if (code == TIER_OK) {
        plen = protobuf_c_message_get_packed_size(out);
        payload = tier_rpc_alloc(call, plen + 1);
        if (payload == NULL)
            code = tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "reply too large");
        else
            protobuf_c_message_pack(out, payload);
    }
    put_reply(msg, req->request_id, code, call->message, payload, plen);
}

/* Deadline and dedupe around dispatch. */
static void handle(tier_rpc_server *s, worker *w, nng_msg *msg)
{
    tier_rpc_ctx *call = &w->call;
    size_t len = nng_msg_len(msg);
    Tier__Rpc__Request *req;
    int64_t now_ms;

    if (len > s->max_msg) {
        put_reply(msg, 0, TIER_RESOURCE_EXHAUSTED, "request larger than the server's limit", NULL,
                  0);
        return;
    }
    req = tier__rpc__request__unpack(&call->arena.pbc, len, nng_msg_body(msg));
    if (req == NULL) {
        atomic_fetch_add(&s->bad_envelope, 1);
        put_reply(msg, 0, TIER_INVALID_ARGUMENT, "not a request envelope", NULL, 0);
        return;
    }
    call->req = req;
    now_ms = tier_now_ms();
    if (req->deadline_ms != 0) {
        if (req->deadline_ms <= now_ms) {
            atomic_fetch_add(&s->deadline_dropped, 1);
            put_reply(msg, req->request_id, TIER_DEADLINE_EXCEEDED,
                      "deadline passed before the call started", NULL, 0);
            return;
        }
        call->deadline_us = tier_mono_us() + (req->deadline_ms - now_ms) * 1000;
    }
    if (req->client_id == 0) {
        dispatch(s, w, req, msg);
        return;
    }
    void *cached;
    size_t clen;
    int64_t wait = call->deadline_us ? call->deadline_us : tier_mono_us() + 10 * 1000000;
    switch (tier_rpc_dedupe_begin(s->dedupe, req->client_id, req->request_id, wait, &cached,
                                  &clen)) {
    case TIER_DEDUPE_CACHED:
        atomic_fetch_add(&s->deduped, 1);
        nng_msg_clear(msg);
        if (nng_msg_append(msg, cached, clen) != 0)
            nng_msg_clear(msg);
        free(cached);
        return;
    case TIER_DEDUPE_BUSY:
        put_reply(msg, req->request_id, TIER_UNAVAILABLE, "same request still running", NULL, 0);
        return;
    case TIER_DEDUPE_NEW:
        break;
    }
    dispatch(s, w, req, msg);
    tier_rpc_dedupe_finish(s->dedupe, req->client_id, req->request_id, nng_msg_body(msg),
                           nng_msg_len(msg));
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    tier_rpc_server *s = w->srv;

    for (;;) {
        nng_msg *msg;
        int rv;

        nng_ctx_recv(w->ctx, w->aio);
        nng_aio_wait(w->aio);
        rv = nng_aio_result(w->aio);
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
            break;
        if (rv != 0)
            continue;
        msg = nng_aio_get_msg(w->aio);
        w->call.deadline_us = 0;
        w->call.req = NULL;
        w->call.message = NULL;
        handle(s, w, msg);
        tier_rpc_arena_reset(&w->call.arena);
        nng_aio_set_msg(w->aio, msg);
        nng_ctx_send(w->ctx, w->aio);
        nng_aio_wait(w->aio);
        if (nng_aio_result(w->aio) != 0)
            nng_msg_free(msg);
        else
            atomic_fetch_add(&s->served, 1);
    }
    return NULL;
}

int tier_rpc_server_start(tier_rpc_server *s)
{
    qsort(s->methods, s->nmethods, sizeof(method), method_cmp);
    s->workers = calloc(s->nthreads, sizeof(worker));
    if (s->workers == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    s->started = true;
    for (unsigned i = 0; i < s->nthreads; i++) {
        worker *w = &s->workers[i];
        w->srv = s;
        tier_rpc_arena_init(&w->call.arena);
        if (nng_ctx_open(&w->ctx, s->sock) != 0 || nng_aio_alloc(&w->aio, NULL, NULL) != 0 ||
            pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            tier_error("rpc: cannot start server thread %u", i);
            s->nthreads = i; /* close joins only those started */
            if (w->aio)
                nng_aio_free(w->aio);
            return TIER_RESOURCE_EXHAUSTED;
        }
    }
    return TIER_OK;
}

void tier_rpc_server_close(tier_rpc_server *s)
{
    if (s == NULL)
        return;
    nng_close(s->sock); /* fails every pending recv with NNG_ECLOSED */
    if (s->workers != NULL) {
        for (unsigned i = 0; i < s->nthreads; i++) {
            pthread_join(s->workers[i].tid, NULL);
            nng_aio_free(s->workers[i].aio);
            tier_rpc_arena_fini(&s->workers[i].call.arena);
        }
    }
    for (size_t i = 0; i < s->nmethods; i++)
        free(s->methods[i].name);
    for (size_t i = 0; i < s->nprobes; i++)
        free(s->probes[i].name);
    free(s->methods);
    free(s->probes);
    free(s->workers);
    tier_rpc_dedupe_free(s->dedupe);
    free(s->url);
    free(s);
}

void tier_rpc_server_get_stats(tier_rpc_server *s, tier_rpc_server_stats *out)
{
    out->served = atomic_load(&s->served);
    out->deadline_dropped = atomic_load(&s->deadline_dropped);
    out->bad_envelope = atomic_load(&s->bad_envelope);
    out->deduped = atomic_load(&s->deduped);
}
