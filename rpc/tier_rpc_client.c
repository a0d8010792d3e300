/*
 * tier_rpc_client.c -- the client half of the RPC layer (see tier_rpc.h).
 *
 * One req0 socket per client and a bounded pool of contexts, one per call
 * in flight (a new send on a context would cancel its earlier request, and
 * nng 1.5.2's req timers cost O(n^2) in the number of contexts, so the pool
 * is small and reused).  Calls beyond the pool wait for a free context.
 *
 * nng would resend a request on a timer and whenever its pipe drops; the
 * timer is disabled (our deadline governs instead), and with it nng 1.5.2's
 * resend on a pipe drop: the receive fails with NNG_ECONNRESET instead.  So
 * we resend ourselves (a copy of the same envelope, up to RESENDS_MAX
 * times, within the deadline): servers close idle connections, and one may
 * close ours just as a call goes out.  Every request carries (client id,
 * request id), so the server answers a resend from its dedupe cache instead
 * of running a non-idempotent call twice.
 *
 * A call that times out is UNAVAILABLE when no connection to the server
 * exists (it is down or unreachable), DEADLINE_EXCEEDED otherwise.
 */
#include "tier_rpc.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "rpc.pb-c.h"
#include "tier_rpc_net.h"
#include "tier_time.h"

typedef struct tier_rpc_client tier_rpc_client;

/* One context; for asynchronous calls also the call's state. */
typedef struct {
    nng_ctx ctx;
    nng_aio *aio;   /* synchronous calls */
    nng_aio *async; /* asynchronous calls: callback-driven */
    tier_rpc_client *c;
    bool sending;
    int64_t deadline_ms;
    nng_msg *again; /* a copy of the request, for a resend after a pipe drop */
    unsigned tries;
    tier_rpc_done_fn done;
    void *arg;
} slot;

struct tier_rpc_client {
    nng_socket sock;
    char url[1024]; /* as given: one address or several, comma-separated */
    uint64_t client_id;
    atomic_uint_fast64_t next_request;
    atomic_int npipes;
    uint32_t timeout_ms;
    size_t max_msg;
    char auth[TIER_RPC_MAX_TOKEN + 8]; /* "Bearer <token>", or "" */
    unsigned nslots;
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned *free_slots; /* stack of indexes into slots */
    unsigned nfree;
};

static void set_err(tier_rpc_error *err, int code, const char *fmt, const char *arg)
{
    char buf[1024];

    if (err == NULL)
        return;
    err->code = code;
    snprintf(buf, sizeof(buf), fmt, arg);
    snprintf(err->message, sizeof(err->message), "%.*s", (int)sizeof(err->message) - 1, buf);
    err->moved_to[0] = '\0';
}

/* The peer's Reply.moved_to into err when it is a plausible URL: printable
 * ASCII without spaces, shorter than the field.  Anything else is dropped
 * whole (a URL cut short would name another server). */
static void set_moved(tier_rpc_error *err, const char *url)
{
    size_t n = url != NULL ? strnlen(url, sizeof(err->moved_to)) : 0;

    if (err == NULL || n == 0 || n >= sizeof(err->moved_to))
        return;
    for (size_t i = 0; i < n; i++)
        if (url[i] <= ' ' || url[i] > '~')
            return;
    memcpy(err->moved_to, url, n + 1);
}

static void async_step(void *arg);

static void pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    tier_rpc_client *c = arg;
    (void)p;
    atomic_fetch_add(&c->npipes, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1);
}

/* Dials every address of a comma-separated list on one REQ socket, at most
 * TIER_RPC_MAX_URLS.  Non-blocking: a server may come up later (a standby
 * listens only once it is the writer) and nng keeps redialling each one.
 * REQ sends each request on a connected pipe, and resends it at once on
 * another when its pipe drops: failing over needs nothing more. */
static int dial_all(nng_socket s, const char *list, const tier_rpc_tls *tls, tier_rpc_error *err)
{
    char buf[1024], *save = NULL, why[256];
    int n = 0;

    if (strlen(list) >= sizeof(buf)) {
        set_err(err, TIER_INVALID_ARGUMENT, "%s", "address list too long");
        return TIER_INVALID_ARGUMENT;
    }
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *u = strtok_r(buf, ",", &save); u != NULL; u = strtok_r(NULL, ",", &save)) {
        if (++n > TIER_RPC_MAX_URLS) {
            set_err(err, TIER_INVALID_ARGUMENT, "%s", "too many addresses");
            return TIER_INVALID_ARGUMENT;
        }
        int rv = tier_rpc_net_dial(s, u, tls, why, sizeof(why));
        if (rv != TIER_OK) {
            set_err(err, rv, "%s", why);
            return rv;
        }
    }
    if (n == 0)
        set_err(err, TIER_INVALID_ARGUMENT, "%s", "no address");
    return n > 0 ? TIER_OK : TIER_INVALID_ARGUMENT;
}

/* A token goes into a header-like string: printable ASCII only, so that it
 * cannot smuggle anything into logs or the server's parser. */
static bool token_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > TIER_RPC_MAX_TOKEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~')
            return false;
    return true;
}

int tier_rpc_client_open(tier_rpc_client **out, const char *url, const tier_rpc_client_opts *opts,
                         tier_rpc_error *err)
{
    tier_rpc_client *c;
    int rv;

    if (opts != NULL && opts->bearer_token != NULL && !token_ok(opts->bearer_token)) {
        set_err(err, TIER_INVALID_ARGUMENT, "%s",
                "a token is 1 to 256 printable ASCII characters without spaces");
        return TIER_INVALID_ARGUMENT;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if (opts != NULL && opts->bearer_token != NULL)
        snprintf(c->auth, sizeof(c->auth), "Bearer %s", opts->bearer_token);
    snprintf(c->url, sizeof(c->url), "%s", url);
    c->nslots = opts && opts->max_inflight ? opts->max_inflight : 64;
    c->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : TIER_RPC_TIMEOUT_DEFAULT_MS;
    c->max_msg = opts && opts->max_msg ? opts->max_msg : TIER_RPC_MAX_MSG_DEFAULT;
    if (getrandom(&c->client_id, sizeof(c->client_id), 0) != sizeof(c->client_id))
        c->client_id = (uint64_t)tier_mono_us() ^ ((uint64_t)getpid() << 40);
    c->client_id |= 1; /* 0 means "no dedupe" on the wire */
    atomic_init(&c->next_request, 1);
    atomic_init(&c->npipes, 0);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->slots = calloc(c->nslots, sizeof(slot));
    c->free_slots = calloc(c->nslots, sizeof(unsigned));
    if (c->slots == NULL || c->free_slots == NULL || nng_req0_open(&c->sock) != 0) {
        free(c->slots);
        free(c->free_slots);
        free(c);
        return TIER_RESOURCE_EXHAUSTED;
    }
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 500);
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, c->max_msg + 4096);
    nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, pipe_added, c);
    nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_added, c);
    for (unsigned i = 0; i < c->nslots; i++) {
        c->slots[i].c = c;
        if (nng_ctx_open(&c->slots[i].ctx, c->sock) != 0 ||
            nng_aio_alloc(&c->slots[i].aio, NULL, NULL) != 0 ||
            nng_aio_alloc(&c->slots[i].async, async_step, &c->slots[i]) != 0) {
            c->nslots = i;
            tier_rpc_client_close(c);
            return TIER_RESOURCE_EXHAUSTED;
        }
        nng_ctx_set_ms(c->slots[i].ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        c->free_slots[c->nfree++] = i;
    }
    if ((rv = dial_all(c->sock, url, opts != NULL ? &opts->tls : NULL, err)) != TIER_OK) {
        tier_rpc_client_close(c);
        return rv;
    }
    *out = c;
    return TIER_OK;
}

int tier_rpc_client_wait_connected(tier_rpc_client *c, uint32_t ms)
{
    /* Polled: a pipe event is rare and this runs once per tool start, so a
     * 5 ms sleep costs nothing and needs no condition variable in the
     * pipe callback. */
    for (uint32_t waited = 0;; waited += 5) {
        if (atomic_load(&c->npipes) > 0)
            return TIER_OK;
        if (waited >= ms)
            return TIER_UNAVAILABLE;
        nng_msleep(5);
    }
}

void tier_rpc_client_close(tier_rpc_client *c)
{
    if (c == NULL)
        return;
    nng_close(c->sock);
    for (unsigned i = 0; i < c->nslots; i++) {
        nng_aio_free(c->slots[i].aio);
        nng_aio_free(c->slots[i].async);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->slots);
    free(c->free_slots);
    free(c);
}

static slot *slot_get(tier_rpc_client *c)
{
    slot *s;
    pthread_mutex_lock(&c->mu);
    while (c->nfree == 0)
        pthread_cond_wait(&c->cv, &c->mu);
    s = &c->slots[c->free_slots[--c->nfree]];
    pthread_mutex_unlock(&c->mu);
    return s;
}

static void slot_put(tier_rpc_client *c, slot *s)
{
    pthread_mutex_lock(&c->mu);
    c->free_slots[c->nfree++] = (unsigned)(s - c->slots);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Maps a failed send/recv to a status. */
static int transport_error(tier_rpc_client *c, int rv, tier_rpc_error *err)
{
    if (rv == NNG_ETIMEDOUT && atomic_load(&c->npipes) > 0) {
        set_err(err, TIER_DEADLINE_EXCEEDED, "deadline exceeded calling %s", c->url);
        return TIER_DEADLINE_EXCEEDED;
    }
    if (rv == NNG_ETIMEDOUT) {
        /* nng does not say why a TLS handshake failed; name the usual
         * causes rather than leave "no connection" a mystery. */
        set_err(err, TIER_UNAVAILABLE,
                strstr(c->url, "tls+") != NULL
                    ? "no connection to %s (down, or TLS refused: is the CA file right, and "
                      "the server name on its certificate?)"
                    : "no connection to %s",
                c->url);
        return TIER_UNAVAILABLE;
    }
    set_err(err, TIER_UNAVAILABLE, "transport: %s", nng_strerror(rv));
    return TIER_UNAVAILABLE;
}

/* Wraps a payload in a request envelope, packed into a new nng message.
 * The deadline (wall clock, for the server) is returned in *deadline_ms. */
static int envelope(tier_rpc_client *c, const char *method, const void *data, size_t len,
                    uint32_t timeout_ms, nng_msg **out, int64_t *deadline_ms, tier_rpc_error *err)
{
    Tier__Rpc__Request req = TIER__RPC__REQUEST__INIT;
    Tier__Rpc__Metadata auth = TIER__RPC__METADATA__INIT, *md[1] = {&auth};
    size_t n;

    if (c->auth[0] != '\0') {
        auth.key = TIER_RPC_AUTH_KEY;
        auth.value.data = (uint8_t *)c->auth;
        auth.value.len = strlen(c->auth);
        req.metadata = md;
        req.n_metadata = 1;
    }
    req.method = (char *)method;
    req.client_id = c->client_id;
    req.request_id = atomic_fetch_add(&c->next_request, 1);
    req.deadline_ms = tier_now_ms() + timeout_ms;
    req.payload.data = (uint8_t *)data;
    req.payload.len = len;
    n = tier__rpc__request__get_packed_size(&req);
    if (n > c->max_msg) {
        set_err(err, TIER_RESOURCE_EXHAUSTED, "request larger than the limit (%s)",
                "4 MiB default");
        return TIER_RESOURCE_EXHAUSTED;
    }
    if (nng_msg_alloc(out, n) != 0) {
        set_err(err, TIER_RESOURCE_EXHAUSTED, "%s", "out of memory");
        return TIER_RESOURCE_EXHAUSTED;
    }
    tier__rpc__request__pack(&req, nng_msg_body(*out));
    *deadline_ms = req.deadline_ms;
    return TIER_OK;
}

/* Unpacks a reply envelope; NULL with err set unless its code is OK. */
static Tier__Rpc__Reply *open_reply(tier_rpc_client *c, nng_msg *msg, tier_rpc_error *err)
{
    Tier__Rpc__Reply *rep = tier__rpc__reply__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));

    if (rep == NULL) {
        set_err(err, TIER_INTERNAL, "malformed reply envelope from %s", c->url);
        return NULL;
    }
    if (rep->code != TIER__RPC__CODE__OK) {
        set_err(err, (int)rep->code, "%s", rep->message);
        if (rep->code == TIER__RPC__CODE__FAILED_PRECONDITION)
            set_moved(err, rep->moved_to);
        tier__rpc__reply__free_unpacked(rep, NULL);
        return NULL;
    }
    if (err != NULL) {
        err->code = TIER_OK;
        err->message[0] = '\0';
        err->moved_to[0] = '\0';
    }
    return rep;
}

#define RESENDS_MAX 3 /* pipe drops one call survives */

/* A copy of msg when a resend is still allowed after `tries` sends. */
static nng_msg *resend_copy(nng_msg *msg, unsigned tries)
{
    nng_msg *copy = NULL;
    if (tries <= RESENDS_MAX && nng_msg_dup(&copy, msg) != 0)
        copy = NULL;
    return copy;
}

static nng_duration time_left(int64_t deadline_ms)
{
    int64_t left = deadline_ms - tier_now_ms();
    return left > 0 ? (nng_duration)left : 1;
}

/* Wraps the payload in an envelope, sends it and waits for the reply
 * envelope; *rep is unpacked with the default allocator. */
static int invoke(tier_rpc_client *c, const char *method, const void *data, size_t len,
                  uint32_t timeout_ms, Tier__Rpc__Reply **rep, tier_rpc_error *err)
{
    tier_rpc_error local;
    int64_t deadline;
    nng_msg *msg;
    slot *s;
    int rv;

    if (err == NULL)
        err = &local; /* the code is needed even when the caller wants no message */
    if (timeout_ms == 0)
        timeout_ms = c->timeout_ms;
    if ((rv = envelope(c, method, data, len, timeout_ms, &msg, &deadline, err)) != TIER_OK)
        return rv;
    s = slot_get(c);
    for (unsigned tries = 1;; tries++) {
        nng_msg *again = resend_copy(msg, tries);
        nng_aio_set_timeout(s->aio, time_left(deadline));
        nng_aio_set_msg(s->aio, msg);
        nng_ctx_send(s->ctx, s->aio);
        nng_aio_wait(s->aio);
        if ((rv = nng_aio_result(s->aio)) == 0) {
            nng_aio_set_timeout(s->aio, time_left(deadline));
            nng_ctx_recv(s->ctx, s->aio);
            nng_aio_wait(s->aio);
            rv = nng_aio_result(s->aio);
        } else {
            nng_msg_free(msg);
        }
        if (rv == NNG_ECONNRESET && again != NULL && tier_now_ms() < deadline) {
            msg = again; /* the same envelope: the server dedupes it */
            continue;
        }
        if (again != NULL)
            nng_msg_free(again);
        if (rv == 0)
            break;
        slot_put(c, s);
        return transport_error(c, rv, err);
    }
    msg = nng_aio_get_msg(s->aio);
    slot_put(c, s);
    *rep = open_reply(c, msg, err);
    nng_msg_free(msg);
    return *rep != NULL ? TIER_OK : err->code;
}

int tier_rpc_call_raw(tier_rpc_client *c, const char *method, const void *data, size_t len,
                      void **out, size_t *outlen, uint32_t timeout_ms, tier_rpc_error *err)
{
    Tier__Rpc__Reply *rep = NULL;
    int rv;

    *out = NULL;
    *outlen = 0;
    if ((rv = invoke(c, method, data, len, timeout_ms, &rep, err)) != TIER_OK)
        return rv;
    *out = malloc(rep->payload.len ? rep->payload.len : 1);
    if (*out == NULL) {
        tier__rpc__reply__free_unpacked(rep, NULL);
        set_err(err, TIER_RESOURCE_EXHAUSTED, "%s", "out of memory");
        return TIER_RESOURCE_EXHAUSTED;
    }
    if (rep->payload.len > 0) /* an empty reply has no data pointer */
        memcpy(*out, rep->payload.data, rep->payload.len);
    *outlen = rep->payload.len;
    tier__rpc__reply__free_unpacked(rep, NULL);
    return TIER_OK;
}

int tier_rpc_call(tier_rpc_client *c, const char *method, const ProtobufCMessage *msg,
                  const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply_out,
                  uint32_t timeout_ms, tier_rpc_error *err)
{
    Tier__Rpc__Reply *rep = NULL;
    uint8_t stackbuf[512];
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
    int rv;

    *reply_out = NULL;
    if (buf == NULL) {
        set_err(err, TIER_RESOURCE_EXHAUSTED, "%s", "out of memory");
        return TIER_RESOURCE_EXHAUSTED;
    }
    protobuf_c_message_pack(msg, buf);
    rv = invoke(c, method, buf, n, timeout_ms, &rep, err);
    if (buf != stackbuf)
        free(buf);
    if (rv != TIER_OK)
        return rv;
    *reply_out = protobuf_c_message_unpack(reply_desc, NULL, rep->payload.len, rep->payload.data);
    tier__rpc__reply__free_unpacked(rep, NULL);
    if (*reply_out == NULL) {
        set_err(err, TIER_INTERNAL, "malformed %s in reply", reply_desc->name);
        return TIER_INTERNAL;
    }
    return TIER_OK;
}

/* Finishes an asynchronous call: unpacks the envelope, calls back, frees
 * the context for the next call. */
static void async_finish(slot *s, int rv, nng_msg *msg)
{
    tier_rpc_client *c = s->c;
    tier_rpc_error err = {.code = TIER_OK};
    Tier__Rpc__Reply *rep = NULL;
    tier_rpc_done_fn done = s->done;
    void *arg = s->arg;

    if (rv != 0)
        transport_error(c, rv, &err);
    else
        rep = open_reply(c, msg, &err);
    if (msg != NULL)
        nng_msg_free(msg);
    if (s->again != NULL)
        nng_msg_free(s->again);
    s->again = NULL;
    slot_put(c, s);
    if (err.code == TIER_OK)
        done(arg, TIER_OK, rep->payload.data, rep->payload.len, "");
    else
        done(arg, err.code, NULL, 0, err.message);
    if (rep != NULL)
        tier__rpc__reply__free_unpacked(rep, NULL);
}

/* Sends msg on the slot, keeping a copy for a resend. */
static void async_send(slot *s, nng_msg *msg)
{
    s->again = resend_copy(msg, ++s->tries);
    s->sending = true;
    nng_aio_set_timeout(s->async, time_left(s->deadline_ms));
    nng_aio_set_msg(s->async, msg);
    nng_ctx_send(s->ctx, s->async);
}

static void async_step(void *arg)
{
    slot *s = arg;
    int rv = nng_aio_result(s->async);

    if (s->sending) {
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(s->async));
            async_finish(s, rv, NULL);
            return;
        }
        s->sending = false;
        nng_aio_set_timeout(s->async, time_left(s->deadline_ms));
        nng_ctx_recv(s->ctx, s->async);
        return;
    }
    if (rv == NNG_ECONNRESET && s->again != NULL && tier_now_ms() < s->deadline_ms) {
        async_send(s, s->again); /* the same envelope: the server dedupes it */
        return;
    }
    async_finish(s, rv, rv == 0 ? nng_aio_get_msg(s->async) : NULL);
}

int tier_rpc_call_async(tier_rpc_client *c, const char *method, const void *data, size_t len,
                        uint32_t timeout_ms, tier_rpc_done_fn done, void *arg)
{
    int64_t deadline;
    nng_msg *msg;
    slot *s;
    int rv;

    if (timeout_ms == 0)
        timeout_ms = c->timeout_ms;
    if ((rv = envelope(c, method, data, len, timeout_ms, &msg, &deadline, NULL)) != TIER_OK)
        return rv;
    s = slot_get(c);
    s->done = done;
    s->arg = arg;
    s->deadline_ms = deadline;
    s->tries = 0;
    async_send(s, msg);
    return TIER_OK;
}
