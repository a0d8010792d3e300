/*
 * tier_rpc_server.c -- the server half of the RPC layer (see tier_rpc.h).
 *
 * A rep0 socket with `ncontexts` nng contexts, each a small state machine
 * driven by its aio callback: RECV completes -> check the envelope ->
 * either run an INLINE method right there, or queue the context for the
 * pool -> SEND -> its completion re-arms RECV.  Pool threads take queued
 * contexts, run the (possibly blocking) method and send; they never wait
 * for the send to finish.  A slow method thus holds one pool thread and one
 * context, and everything else keeps moving.  Running quick methods inline
 * avoids two thread hand-offs per call, which is most of the cost of a
 * small call on a 2-core machine.
 *
 * Every frame gets an answer, whatever it holds -- a frame that is not an
 * envelope, an unknown method, a payload that does not unpack, a request
 * too large, a request already past its deadline -- and the thread goes on
 * to the next one.  Frames beyond twice the size limit are refused by nng
 * itself (it closes that pipe), so a hostile sender cannot make us buffer
 * unbounded memory; replies beyond the limit are refused too.  Connections
 * are capped and idle or stalled ones closed (tier_rpc_conns.c).
 */
#include "tier_rpc.h"
#include "tier_rpc_int.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.pb-c.h"
#include "tier_log.h"
#include "tier_metrics.h"
#include "tier_rpc_net.h"
#include "tier_time.h"
#include "tier_wire.h"

typedef struct {
    char *name;
    const ProtobufCMessageDescriptor *req, *reply;
    tier_rpc_fn fn;
    void *arg;
    unsigned flags;
} method;

typedef struct {
    char *name;
    tier_rpc_health_fn fn;
    void *arg;
} health_probe;

/* One nng context and the call it is serving. */
struct tier_rpc_ctx {
    tier_rpc_server *srv;
    nng_ctx ctx;
    nng_aio *aio;
    bool sending;
    nng_msg *msg;
    tier_rpc_arena arena;
    int64_t deadline_us; /* monotonic; 0 = none */
    Tier__Rpc__Request *req;
    const method *m;
    tier_rpc_caller caller; /* who, as the auth hook said */
    char *message;
    char *moved_to;          /* tier_rpc_set_moved, NULL: none */
    ProtobufCMessage *reply; /* the handler's reply, kept for a deferred call */
    bool deduping;           /* registered in the dedupe cache: finish it */
    uint32_t pipe_id;        /* the connection the request came on */
    tier_rpc_ctx *next;      /* in the pool's queue */
    /* An in-process call (tier_rpc_server_call): no nng context; its reply
     * goes to local_done and the context is freed. */
    tier_rpc_done_fn local_done;
    void *local_arg;
    int code;         /* of the reply put in msg (put_reply) */
    int64_t start_us; /* monotonic, when the request arrived: for the metrics */
};

struct tier_rpc_server {
    nng_socket sock;
    char *url;
    size_t max_msg;
    unsigned nthreads;
    unsigned ncontexts;
    method *methods;
    size_t nmethods;
    method health;
    health_probe *probes;
    size_t nprobes;
    health_probe gate;     /* fn NULL: none */
    tier_rpc_auth_fn auth; /* NULL: everyone may call everything */
    void *auth_arg;
    tier_rpc_ctx *ctxs;
    pthread_t *threads;
    unsigned nstarted;  /* pool threads running */
    pthread_mutex_t mu; /* guards the queue and `closing` */
    pthread_cond_t cv;
    tier_rpc_ctx *qhead, *qtail;
    unsigned ndeferred; /* deferred calls not finished yet (guarded by mu) */
    bool closing;
    tier_rpc_dedupe *dedupe;
    tier_rpc_conns *conns;
    bool started;
    atomic_uint_fast64_t served, deadline_dropped, bad_envelope, deduped;
    atomic_uint_fast64_t unauthenticated, permission_denied;
    /* opts.metrics: NULL families when none */
    tier_metric *m_calls, *m_duration, *m_conns, *m_cached;
    /* nng 1.5.2 can crash when nng_ctx_send runs while the socket closes
     * (the send's release of its context races the close): close raises
     * `shutting` and waits until no send is under way; later sends drop
     * their reply. */
    atomic_bool shutting;
    atomic_uint nsending;
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

int tier_rpc_set_moved(tier_rpc_ctx *call, const char *url, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    call->message = tier_rpc_strdup(call, buf);
    if (url == NULL || strnlen(url, TIER_RPC_MAX_URL) >= TIER_RPC_MAX_URL)
        url = "";
    call->moved_to = tier_rpc_strdup(call, url);
    return TIER_FAILED_PRECONDITION;
}

int64_t tier_rpc_deadline_mono_us(const tier_rpc_ctx *call)
{
    return call->deadline_us;
}

const tier_rpc_caller *tier_rpc_call_caller(const tier_rpc_ctx *call)
{
    return &call->caller;
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

void tier_rpc_call_ids(const tier_rpc_ctx *call, uint64_t *client_id, uint64_t *request_id)
{
    *client_id = call->req != NULL ? call->req->client_id : 0;
    *request_id = call->req != NULL ? call->req->request_id : 0;
}

/* ------------------------------------------------------------- setup */

/* Connections and cached replies, as of the scrape. */
static void scrape(void *arg)
{
    tier_rpc_server *s = arg;
    tier_rpc_server_stats st;

    tier_rpc_server_get_stats(s, &st);
    tier_metric_set(s->m_conns, (double)st.conns);
    tier_metric_set(s->m_cached, (double)st.cached_bytes);
}

static void add_metrics(tier_rpc_server *s, tier_metrics *m)
{
    s->m_duration = tier_metrics_histogram(
        m, "tier_rpc_call_duration_seconds",
        "From a request's arrival to its reply, queueing and group commits included.", "method",
        tier_metrics_seconds, tier_metrics_nseconds);
    s->m_conns = tier_metrics_gauge(m, "tier_rpc_connections", "Connections open now.", NULL);
    s->m_cached = tier_metrics_gauge(m, "tier_rpc_dedupe_bytes",
                                     "Bytes of replies kept to answer resends.", NULL);
    tier_metrics_on_scrape(m, scrape, s);
    s->m_calls = tier_metrics_counter(m, "tier_rpc_calls_total",
                                      "Calls answered, by method and status.", "method,code");
}

int tier_rpc_server_open(tier_rpc_server **out, const char *url, const tier_rpc_server_opts *opts)
{
    tier_rpc_server *s = calloc(1, sizeof(*s));
    int rv;

    if (s == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    s->nthreads = opts && opts->nthreads ? opts->nthreads : 16;
    /* 16 contexts serve small calls fastest here (more make nng busier than
     * they help: see docs/BENCHMARKS.md); servers with deferred replies
     * want more, since each waiting call holds one. */
    s->ncontexts = opts && opts->ncontexts ? opts->ncontexts : 16;
    if (s->ncontexts < s->nthreads)
        s->ncontexts = s->nthreads;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->max_msg = opts && opts->max_msg ? opts->max_msg : TIER_RPC_MAX_MSG_DEFAULT;
    s->url = strdup(url);
    s->dedupe = tier_rpc_dedupe_alloc(
        opts && opts->dedupe_entries ? opts->dedupe_entries : TIER_RPC_DEDUPE_ENTRIES_DEFAULT,
        opts && opts->dedupe_bytes ? opts->dedupe_bytes : TIER_RPC_DEDUPE_BYTES_DEFAULT);
    s->conns = tier_rpc_conns_alloc(
        opts && opts->max_conns ? opts->max_conns : TIER_RPC_MAX_CONNS_DEFAULT,
        opts && opts->max_conns_per_addr ? opts->max_conns_per_addr
                                         : TIER_RPC_MAX_CONNS_PER_ADDR_DEFAULT,
        opts && opts->idle_timeout_ms ? opts->idle_timeout_ms : TIER_RPC_IDLE_TIMEOUT_DEFAULT_MS);
    if (opts != NULL && opts->metrics != NULL)
        add_metrics(s, opts->metrics);
    if (s->url == NULL || s->dedupe == NULL || s->conns == NULL) {
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
    if ((rv = tier_rpc_conns_watch(s->conns, s->sock)) != 0) {
        tier_error("rpc: pipe notify: %s", nng_strerror(rv));
        tier_rpc_server_close(s);
        return TIER_INTERNAL;
    }
    char why[512];
    if ((rv = tier_rpc_net_listen(s->sock, url, opts != NULL ? &opts->tls : NULL, why,
                                  sizeof(why))) != TIER_OK) {
        tier_error("rpc: %s", why);
        tier_rpc_server_close(s);
        return rv;
    }
    *out = s;
    return TIER_OK;
}

int tier_rpc_server_add(tier_rpc_server *s, const char *name, const ProtobufCMessageDescriptor *req,
                        const ProtobufCMessageDescriptor *reply, tier_rpc_fn fn, void *arg,
                        unsigned flags)
{
    method *m;

    if (s->started)
        return TIER_FAILED_PRECONDITION;
    m = realloc(s->methods, (s->nmethods + 1) * sizeof(*m));
    if (m == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    s->methods = m;
    m[s->nmethods] = (method){strdup(name), req, reply, fn, arg, flags};
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

int tier_rpc_server_set_gate(tier_rpc_server *s, tier_rpc_health_fn fn, void *arg)
{
    if (s->started)
        return TIER_FAILED_PRECONDITION;
    s->gate = (health_probe){NULL, fn, arg};
    return TIER_OK;
}

int tier_rpc_server_set_auth(tier_rpc_server *s, tier_rpc_auth_fn fn, void *arg)
{
    if (s->started)
        return TIER_FAILED_PRECONDITION;
    s->auth = fn;
    s->auth_arg = arg;
    return TIER_OK;
}

static int method_cmp(const void *a, const void *b)
{
    return strcmp(((const method *)a)->name, ((const method *)b)->name);
}

static const method *method_find(const tier_rpc_server *s, const char *name)
{
    method key = {.name = (char *)name};
    const method *m = bsearch(&key, s->methods, s->nmethods, sizeof(method), method_cmp);
    if (m == NULL && strcmp(name, TIER_RPC_HEALTH_METHOD) == 0)
        m = &s->health;
    return m;
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
static void put_reply(tier_rpc_ctx *call, uint64_t request_id, int code, const char *message,
                      const void *payload, size_t plen)
{
    nng_msg *msg = call->msg;
    Tier__Rpc__Reply rep = TIER__RPC__REPLY__INIT;
    size_t n;

    call->code = code;
    rep.request_id = request_id;
    rep.code = (Tier__Rpc__Code)code;
    rep.message = (char *)(message ? message : "");
    /* Only with the code it was set for: a handler that set it and then
     * failed otherwise (or a reply too large) sends none. */
    if (code == TIER_FAILED_PRECONDITION && call->moved_to != NULL)
        rep.moved_to = call->moved_to;
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

/* Size of the reply envelope put_reply would pack. */
static size_t reply_size(uint64_t request_id, int code, const char *message, size_t plen)
{
    Tier__Rpc__Reply rep = TIER__RPC__REPLY__INIT;

    rep.request_id = request_id;
    rep.code = (Tier__Rpc__Code)code;
    rep.message = (char *)(message ? message : "");
    rep.payload.len = plen;
    return tier__rpc__reply__get_packed_size(&rep);
}

/* Packs the reply of a call whose handler returned `code` into its msg and
 * remembers it for resends. */
static void complete(tier_rpc_server *s, tier_rpc_ctx *call, int code)
{
    Tier__Rpc__Request *req = call->req;
    uint8_t *payload = NULL;
    size_t plen = 0;

    if (code == TIER_OK) {
        plen = protobuf_c_message_get_packed_size(call->reply);
        /* Peers never receive (and the dedupe cache never holds) more
         * than the message limit: a handler's reply can be far larger than
         * its request (many empty items in, many results out). */
        if (reply_size(req->request_id, code, call->message, plen) > s->max_msg)
            code = tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED,
                                        "reply of %zu bytes larger than the limit of %zu", plen,
                                        s->max_msg);
        else if ((payload = tier_rpc_alloc(call, plen + 1)) == NULL)
            code = tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "reply too large");
        else
            protobuf_c_message_pack(call->reply, payload);
        if (code != TIER_OK)
            plen = 0;
    }
    put_reply(call, req->request_id, code, call->message, payload, plen);
    if (call->deduping)
        tier_rpc_dedupe_finish(s->dedupe, req->client_id, req->request_id, call->caller.id,
                               nng_msg_body(call->msg), nng_msg_len(call->msg));
}

/* Runs the method of an accepted envelope; returns its status, or
 * TIER_RPC_DEFERRED when the handler will finish the call later. */
static int dispatch(tier_rpc_ctx *call)
{
    const method *m = call->m;
    Tier__Rpc__Request *req = call->req;
    ProtobufCMessage *in;

    in = protobuf_c_message_unpack(m->req, &call->arena.pbc, req->payload.len, req->payload.data);
    call->reply = tier_rpc_alloc(call, m->reply->sizeof_message);
    if (in == NULL)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "malformed %s", m->req->name);
    /* protobuf-c cut any string at an embedded NUL: only the packed bytes
     * still show it (common/tier_wire.h). */
    const char *bad;
    if (!tier_wire_strings_clean(m->req, req->payload.data, req->payload.len, &bad))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "%s: field %s holds a NUL byte",
                                    m->req->name, bad);
    if (call->reply == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    m->reply->message_init(call->reply);
    if (call->srv->gate.fn != NULL && m != &call->srv->health) {
        char msg[256] = "";
        int rv = call->srv->gate.fn(call->srv->gate.arg, msg, sizeof(msg));
        if (rv != TIER_OK)
            return tier_rpc_set_message(call, rv, "%s", msg);
    }
    return m->fn(m->arg, call, in, call->reply);
}

/* Dedupe around dispatch.  Returns true when the reply is in call->msg,
 * false when the handler deferred it.  may_wait: a duplicate of a call
 * still running may be waited for (never on nng's callback threads). */
static bool run_call(tier_rpc_server *s, tier_rpc_ctx *call, bool may_wait)
{
    Tier__Rpc__Request *req = call->req;
    nng_msg *msg = call->msg;
    void *cached;
    size_t clen;
    int64_t now = tier_mono_us();
    /* deadline_us is clamped (deadline_to_mono_us), so no sum here overflows. */
    int64_t wait = !may_wait ? now : call->deadline_us ? call->deadline_us : now + 10 * 1000000;
    int code;

    call->deduping = false;
    if (req->client_id != 0) {
        switch (tier_rpc_dedupe_begin(s->dedupe, req->client_id, req->request_id, call->caller.id,
                                      call->m->name, wait, &cached, &clen)) {
        case TIER_DEDUPE_CACHED:
            atomic_fetch_add(&s->deduped, 1);
            nng_msg_clear(msg);
            if (nng_msg_append(msg, cached, clen) != 0)
                nng_msg_clear(msg);
            free(cached);
            return true;
        case TIER_DEDUPE_BUSY:
            put_reply(call, req->request_id, TIER_UNAVAILABLE, "same request still running", NULL,
                      0);
            return true;
        case TIER_DEDUPE_MISMATCH:
            put_reply(call, req->request_id, TIER_INVALID_ARGUMENT,
                      "request id reused for another method", NULL, 0);
            return true;
        case TIER_DEDUPE_NEW:
            call->deduping = true;
            break;
        }
    }
    if ((code = dispatch(call)) == TIER_RPC_DEFERRED)
        return false;
    complete(s, call, code);
    return true;
}

static void send_reply(tier_rpc_ctx *call);

int tier_rpc_defer(tier_rpc_ctx *call)
{
    tier_rpc_server *s = call->srv;
    pthread_mutex_lock(&s->mu);
    s->ndeferred++;
    pthread_mutex_unlock(&s->mu);
    return TIER_RPC_DEFERRED;
}

void tier_rpc_finish(tier_rpc_ctx *call, int code)
{
    tier_rpc_server *s = call->srv;

    complete(s, call, code);
    send_reply(call);
    pthread_mutex_lock(&s->mu);
    if (--s->ndeferred == 0)
        pthread_cond_broadcast(&s->cv); /* close may be waiting for it */
    pthread_mutex_unlock(&s->mu);
}

typedef enum { REPLY_READY, REPLY_QUEUED, REPLY_DEFERRED } accept_result;

/* The monotonic time of a wall-clock deadline later than now_ms.  The
 * deadline is the peer's number: anything from now to INT64_MAX.  It is
 * clamped to TIER_RPC_MAX_DEADLINE_MS away, which also keeps every later
 * sum on it (waits, timespecs) far from overflow; the subtraction is
 * checked because now_ms may be negative on a badly set clock. */
static int64_t deadline_to_mono_us(int64_t deadline_ms, int64_t now_ms)
{
    int64_t left_ms;

    if (__builtin_sub_overflow(deadline_ms, now_ms, &left_ms) ||
        left_ms > (int64_t)TIER_RPC_MAX_DEADLINE_MS)
        left_ms = TIER_RPC_MAX_DEADLINE_MS;
    return tier_mono_us() + left_ms * 1000;
}

/* Runs the auth hook for an accepted envelope: OK, or an error with
 * call->message set.  Health is open to all (probes of load balancers and
 * supervisors carry no token), and shows no data. */
static int authorize(tier_rpc_server *s, tier_rpc_ctx *call)
{
    const Tier__Rpc__Request *req = call->req;
    const ProtobufCBinaryData *auth = NULL;
    char msg[256] = "";
    int code;

    memset(&call->caller, 0, sizeof(call->caller));
    if (s->auth == NULL || call->m == &s->health)
        return TIER_OK;
    for (size_t i = 0; i < req->n_metadata; i++) {
        if (strcmp(req->metadata[i]->key, TIER_RPC_AUTH_KEY) != 0)
            continue;
        if (auth != NULL) {
            atomic_fetch_add(&s->unauthenticated, 1);
            return tier_rpc_set_message(call, TIER_UNAUTHENTICATED,
                                        "more than one authorization entry");
        }
        auth = &req->metadata[i]->value;
    }
    if (auth != NULL && (auth->len < 8 || auth->len > 7 + TIER_RPC_MAX_TOKEN ||
                         memcmp(auth->data, "Bearer ", 7) != 0)) {
        atomic_fetch_add(&s->unauthenticated, 1);
        return tier_rpc_set_message(call, TIER_UNAUTHENTICATED,
                                    "authorization must be \"Bearer <token>\", token at most %u "
                                    "bytes",
                                    TIER_RPC_MAX_TOKEN);
    }
    code = s->auth(s->auth_arg, call->m->name, auth != NULL ? auth->data + 7 : NULL,
                   auth != NULL ? auth->len - 7 : 0, &call->caller, msg, sizeof(msg));
    if (code == TIER_OK)
        return TIER_OK;
    atomic_fetch_add(code == TIER_PERMISSION_DENIED ? &s->permission_denied : &s->unauthenticated,
                     1);
    if (code != TIER_PERMISSION_DENIED)
        code = TIER_UNAUTHENTICATED; /* the hook may not make it look like anything else */
    return tier_rpc_set_message(call, code, "%s", msg);
}

/* Checks a received frame.  READY: the reply is in call->msg (an error, or
 * an INLINE method that ran); QUEUED: the call must go to the pool;
 * DEFERRED: an INLINE handler will finish it later. */
static accept_result accept_call(tier_rpc_server *s, tier_rpc_ctx *call)
{
    nng_msg *msg = call->msg;
    size_t len = nng_msg_len(msg);
    Tier__Rpc__Request *req;
    int64_t now_ms;

    if (len > s->max_msg) {
        put_reply(call, 0, TIER_RESOURCE_EXHAUSTED, "request larger than the server's limit", NULL,
                  0);
        return REPLY_READY;
    }
    req = tier__rpc__request__unpack(&call->arena.pbc, len, nng_msg_body(msg));
    if (req == NULL) {
        atomic_fetch_add(&s->bad_envelope, 1);
        put_reply(call, 0, TIER_INVALID_ARGUMENT, "not a request envelope", NULL, 0);
        return REPLY_READY;
    }
    /* A method name "tier.Tier/X\0junk" would otherwise be served as X. */
    if (!tier_wire_strings_clean(&tier__rpc__request__descriptor, nng_msg_body(msg), len, NULL)) {
        atomic_fetch_add(&s->bad_envelope, 1);
        put_reply(call, req->request_id, TIER_INVALID_ARGUMENT,
                  "envelope: a string field holds a NUL byte", NULL, 0);
        return REPLY_READY;
    }
    call->req = req;
    if (req->n_metadata > TIER_RPC_MAX_METADATA) {
        atomic_fetch_add(&s->bad_envelope, 1);
        put_reply(call, req->request_id, TIER_INVALID_ARGUMENT,
                  "envelope: more than 16 metadata entries", NULL, 0);
        return REPLY_READY;
    }
    now_ms = tier_now_ms();
    if (req->deadline_ms != 0) {
        if (req->deadline_ms <= now_ms) { /* negative ones too: long past */
            atomic_fetch_add(&s->deadline_dropped, 1);
            put_reply(call, req->request_id, TIER_DEADLINE_EXCEEDED,
                      "deadline passed before the call started", NULL, 0);
            return REPLY_READY;
        }
        call->deadline_us = deadline_to_mono_us(req->deadline_ms, now_ms);
    }
    call->m = method_find(s, req->method);
    if (call->m == NULL) {
        tier_rpc_set_message(call, TIER_UNIMPLEMENTED, "unknown method \"%.200s\"", req->method);
        put_reply(call, req->request_id, TIER_UNIMPLEMENTED, call->message, NULL, 0);
        return REPLY_READY;
    }
    /* Before the dedupe cache: a resend is answered only to whom it may
     * be, and only to the caller who made the first call. */
    int code = authorize(s, call);
    if (code != TIER_OK) {
        put_reply(call, req->request_id, code, call->message, NULL, 0);
        return REPLY_READY;
    }
    if (call->m->flags & TIER_RPC_INLINE)
        return run_call(s, call, false) ? REPLY_READY : REPLY_DEFERRED;
    return REPLY_QUEUED;
}

/* Hands the reply envelope packed in call->msg to an in-process caller,
 * then frees the call: it was allocated for this one call. */
static void deliver_local(tier_rpc_ctx *call)
{
    tier_rpc_server *s = call->srv;
    Tier__Rpc__Reply *rep =
        tier__rpc__reply__unpack(&call->arena.pbc, nng_msg_len(call->msg), nng_msg_body(call->msg));

    if (rep == NULL) /* put_reply could not allocate it */
        call->local_done(call->local_arg, TIER_INTERNAL, NULL, 0, "reply lost: out of memory");
    else
        call->local_done(call->local_arg, (int)rep->code, rep->payload.data, rep->payload.len,
                         rep->message);
    atomic_fetch_add(&s->served, 1);
    nng_msg_free(call->msg);
    tier_rpc_arena_fini(&call->arena);
    free(call);
}

/* tier_rpc_calls_total{method, code} and the call's duration.  A frame
 * naming no registered method counts as "(unknown)": method names from
 * peers must not become label values. */
static void observe(tier_rpc_server *s, const tier_rpc_ctx *call)
{
    const char *method = call->m != NULL ? call->m->name : "(unknown)";

    if (s->m_calls == NULL)
        return;
    tier_metric_add(s->m_calls, 1, method, tier_status_name(call->code));
    tier_metric_observe(s->m_duration, (double)(tier_mono_us() - call->start_us) / 1e6, method);
}

static void send_reply(tier_rpc_ctx *call)
{
    tier_rpc_server *s = call->srv;

    observe(s, call);
    if (call->local_done != NULL) {
        deliver_local(call);
        return;
    }
    atomic_fetch_add(&s->nsending, 1);
    if (atomic_load(&s->shutting)) { /* nobody will read it */
        nng_msg_free(call->msg);
        call->msg = NULL;
        tier_rpc_arena_reset(&call->arena);
    } else {
        call->sending = true;
        nng_aio_set_msg(call->aio, call->msg);
        nng_ctx_send(call->ctx, call->aio);
    }
    atomic_fetch_sub(&s->nsending, 1);
}

static void enqueue(tier_rpc_server *s, tier_rpc_ctx *call)
{
    pthread_mutex_lock(&s->mu);
    call->next = NULL;
    if (s->qtail != NULL)
        s->qtail->next = call;
    else
        s->qhead = call;
    s->qtail = call;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* The envelope of an in-process call, in its arena, as if it had come off
 * the wire: authorize and dispatch then see no difference. */
static int local_request(tier_rpc_ctx *call, const char *method, const void *payload, size_t len,
                         const char *token)
{
    Tier__Rpc__Request *req = tier_rpc_alloc(call, sizeof(*req));
    Tier__Rpc__Metadata **md = tier_rpc_alloc(call, sizeof(*md));
    Tier__Rpc__Metadata *auth = tier_rpc_alloc(call, sizeof(*auth));
    size_t tlen = token != NULL ? strlen(token) : 0;
    uint8_t *value = tier_rpc_alloc(call, 7 + tlen + 1);

    if (req == NULL || md == NULL || auth == NULL || value == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    tier__rpc__request__init(req);
    req->method = tier_rpc_strdup(call, method);
    req->payload.len = len;
    req->payload.data = tier_rpc_alloc(call, len + 1);
    if (req->method == NULL || req->payload.data == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if (len > 0)
        memcpy(req->payload.data, payload, len);
    if (token != NULL) {
        tier__rpc__metadata__init(auth);
        auth->key = TIER_RPC_AUTH_KEY;
        memcpy(value, "Bearer ", 7);
        memcpy(value + 7, token, tlen);
        auth->value = (ProtobufCBinaryData){7 + tlen, value};
        md[0] = auth;
        req->metadata = md;
        req->n_metadata = 1;
    }
    call->req = req;
    return TIER_OK;
}

/* accept_call for an in-process call: the reply is sent (delivered) here,
 * or by the pool, or by whoever finishes a deferred call. */
static void local_accept(tier_rpc_server *s, tier_rpc_ctx *call)
{
    const Tier__Rpc__Request *req = call->req;
    int code;

    if (req->payload.len > s->max_msg) {
        put_reply(call, 0, TIER_RESOURCE_EXHAUSTED, "request larger than the server's limit", NULL,
                  0);
    } else if ((call->m = method_find(s, req->method)) == NULL) {
        tier_rpc_set_message(call, TIER_UNIMPLEMENTED, "unknown method \"%.200s\"", req->method);
        put_reply(call, 0, TIER_UNIMPLEMENTED, call->message, NULL, 0);
    } else if ((code = authorize(s, call)) != TIER_OK) {
        put_reply(call, 0, code, call->message, NULL, 0);
    } else if (call->m->flags & TIER_RPC_INLINE) {
        if (!run_call(s, call, false))
            return; /* deferred */
    } else {
        pthread_mutex_lock(&s->mu);
        if (!s->closing) { /* under mu: the pool is still there to take it */
            call->next = NULL;
            if (s->qtail != NULL)
                s->qtail->next = call;
            else
                s->qhead = call;
            s->qtail = call;
            pthread_cond_signal(&s->cv);
            pthread_mutex_unlock(&s->mu);
            return;
        }
        pthread_mutex_unlock(&s->mu);
        put_reply(call, 0, TIER_UNAVAILABLE, "server closing", NULL, 0);
    }
    send_reply(call);
}

int tier_rpc_server_call(tier_rpc_server *s, const char *method, const void *payload, size_t len,
                         const char *bearer_token, tier_rpc_done_fn done, void *arg)
{
    tier_rpc_ctx *call;

    if (s == NULL || !s->started || method == NULL || done == NULL || (payload == NULL && len > 0))
        return TIER_INVALID_ARGUMENT;
    if ((call = calloc(1, sizeof(*call))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    call->srv = s;
    tier_rpc_arena_init(&call->arena);
    call->local_done = done;
    call->start_us = tier_mono_us();
    call->local_arg = arg;
    if (nng_msg_alloc(&call->msg, 0) != 0 ||
        local_request(call, method, payload, len, bearer_token) != TIER_OK) {
        if (call->msg != NULL)
            nng_msg_free(call->msg);
        tier_rpc_arena_fini(&call->arena);
        free(call);
        return TIER_RESOURCE_EXHAUSTED;
    }
    local_accept(s, call);
    return TIER_OK;
}

int tier_rpc_server_method(const tier_rpc_server *s, const char *name,
                           const ProtobufCMessageDescriptor **req,
                           const ProtobufCMessageDescriptor **reply)
{
    const method *m = s->started ? method_find(s, name) : NULL;

    if (m == NULL)
        return TIER_NOT_FOUND;
    if (req != NULL)
        *req = m->req;
    if (reply != NULL)
        *reply = m->reply;
    return TIER_OK;
}

/* The state machine of one context: RECV done -> accept -> (pool) -> SEND
 * done -> RECV. */
static void ctx_cb(void *arg)
{
    tier_rpc_ctx *call = arg;
    tier_rpc_server *s = call->srv;
    int rv = nng_aio_result(call->aio);

    if (call->sending) {
        call->sending = false;
        tier_rpc_conns_sent(s->conns, call->pipe_id);
        if (rv != 0)
            nng_msg_free(call->msg);
        else
            atomic_fetch_add(&s->served, 1);
        call->msg = NULL;
        tier_rpc_arena_reset(&call->arena);
    } else if (rv == 0) {
        call->msg = nng_aio_get_msg(call->aio);
        call->pipe_id = (uint32_t)nng_pipe_id(nng_msg_get_pipe(call->msg));
        tier_rpc_conns_recv(s->conns, call->pipe_id);
        call->deadline_us = 0;
        call->start_us = tier_mono_us();
        call->code = TIER_OK;
        call->req = NULL;
        call->m = NULL;
        call->message = NULL;
        call->moved_to = NULL;
        switch (accept_call(s, call)) {
        case REPLY_READY:
            send_reply(call);
            break;
        case REPLY_QUEUED:
            enqueue(s, call);
            break;
        case REPLY_DEFERRED:
            break; /* tier_rpc_finish sends it */
        }
        return;
    }
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
        return;
    nng_ctx_recv(call->ctx, call->aio);
}

static void *pool_main(void *arg)
{
    tier_rpc_server *s = arg;

    for (;;) {
        tier_rpc_ctx *call;

        pthread_mutex_lock(&s->mu);
        while (s->qhead == NULL && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->qhead == NULL) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        call = s->qhead;
        s->qhead = call->next;
        if (s->qhead == NULL)
            s->qtail = NULL;
        pthread_mutex_unlock(&s->mu);
        if (call->deadline_us != 0 && tier_mono_us() >= call->deadline_us) {
            /* It waited in the queue until nobody wants the answer. */
            atomic_fetch_add(&s->deadline_dropped, 1);
            put_reply(call, call->req->request_id, TIER_DEADLINE_EXCEEDED,
                      "deadline passed while queued", NULL, 0);
        } else if (!run_call(s, call, true)) {
            continue; /* deferred: tier_rpc_finish sends it */
        }
        send_reply(call);
    }
}

int tier_rpc_server_start(tier_rpc_server *s)
{
    qsort(s->methods, s->nmethods, sizeof(method), method_cmp);
    s->health = (method){TIER_RPC_HEALTH_METHOD,
                         &tier__rpc__health_request__descriptor,
                         &tier__rpc__health_reply__descriptor,
                         health_check,
                         s,
                         0};
    s->ctxs = calloc(s->ncontexts, sizeof(tier_rpc_ctx));
    s->threads = calloc(s->nthreads, sizeof(pthread_t));
    if (s->ctxs == NULL || s->threads == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    s->started = true;
    if (tier_rpc_conns_start(s->conns) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    for (; s->nstarted < s->nthreads; s->nstarted++)
        if (pthread_create(&s->threads[s->nstarted], NULL, pool_main, s) != 0)
            return TIER_RESOURCE_EXHAUSTED;
    for (unsigned i = 0; i < s->ncontexts; i++) {
        tier_rpc_ctx *call = &s->ctxs[i];
        call->srv = s;
        tier_rpc_arena_init(&call->arena);
        if (nng_ctx_open(&call->ctx, s->sock) != 0 ||
            nng_aio_alloc(&call->aio, ctx_cb, call) != 0) {
            tier_error("rpc: cannot open server context %u", i);
            return TIER_RESOURCE_EXHAUSTED;
        }
        nng_ctx_recv(call->ctx, call->aio);
    }
    return TIER_OK;
}

void tier_rpc_server_close(tier_rpc_server *s)
{
    if (s == NULL)
        return;
    if (s->conns != NULL)
        tier_rpc_conns_unwatch(s->conns);
    atomic_store(&s->shutting, true);
    while (atomic_load(&s->nsending) > 0)
        sched_yield();
    nng_close(s->sock); /* every pending recv/send fails with NNG_ECLOSED */
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->nstarted; i++)
        pthread_join(s->threads[i], NULL); /* they drain the queue first */
    /* Deferred calls still use their contexts' memory: wait for them (their
     * finishers, e.g. a group commit, are still running). */
    pthread_mutex_lock(&s->mu);
    while (s->ndeferred > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; s->ctxs != NULL && i < s->ncontexts; i++) {
        if (s->ctxs[i].aio != NULL)
            nng_aio_free(s->ctxs[i].aio); /* waits for a running callback */
        tier_rpc_arena_fini(&s->ctxs[i].arena);
    }
    for (tier_rpc_ctx *c = s->qhead; c != NULL; c = c->next) /* queued after the pool left */
        nng_msg_free(c->msg);
    for (size_t i = 0; i < s->nmethods; i++)
        free(s->methods[i].name);
    for (size_t i = 0; i < s->nprobes; i++)
        free(s->probes[i].name);
    free(s->methods);
    free(s->probes);
    free(s->ctxs);
    free(s->threads);
    tier_rpc_dedupe_free(s->dedupe);
    tier_rpc_conns_free(s->conns);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->url);
    free(s);
}

void tier_rpc_server_get_stats(tier_rpc_server *s, tier_rpc_server_stats *out)
{
    out->served = atomic_load(&s->served);
    out->deadline_dropped = atomic_load(&s->deadline_dropped);
    out->bad_envelope = atomic_load(&s->bad_envelope);
    out->deduped = atomic_load(&s->deduped);
    tier_rpc_dedupe_stats(s->dedupe, &out->cached_bytes, &out->cached_entries);
    tier_rpc_conns_stats(s->conns, &out->conns, &out->conns_refused, &out->conns_timed_out);
    out->unauthenticated = atomic_load(&s->unauthenticated);
    out->permission_denied = atomic_load(&s->permission_denied);
}
