/*
 * tier_rpc.h -- a small gRPC-like RPC layer over nng + protobuf-c.
 *
 * A call is a protobuf message wrapped in the envelope of proto/rpc.proto
 * (method, request id, timeout, metadata) and sent over an nng req0 socket;
 * the reply comes back in an envelope with a gRPC status code.  This layer
 * knows nothing of tiers or comments: it moves messages, enforces sizes and
 * deadlines, dedupes resent requests and answers Health.
 *
 * Server: rep0 served through many nng contexts at once (16 by default),
 * driven by nng's completion callbacks.  Methods registered TIER_RPC_INLINE
 * (quick, never blocking) run right in the callback; all others are handed
 * to a pool of threads, so one slow call (MySQL, a lock) holds up only its
 * own pool thread while the rest keep being served.  Handlers fill a reply
 * that the server allocated, taking memory from the call's arena
 * (tier_rpc_alloc), which is reset after the reply is sent: handlers never
 * free what they put in a reply.
 *
 * Client: req0 with a bounded pool of contexts; safe from many threads.
 *
 * All functions return a tier_status (common/tier_status.h).
 */
#ifndef TIER_RPC_H
#define TIER_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "tier_status.h"

#define TIER_RPC_MAX_MSG_DEFAULT (4u << 20) /* like gRPC's default */
#define TIER_RPC_TIMEOUT_DEFAULT_MS 10000u
#define TIER_RPC_HEALTH_METHOD "tier.rpc.Health/Check"
/* Caps on what a peer can make the server hold (docs/LIMITS.md). */
#define TIER_RPC_MAX_DEADLINE_MS (3600u * 1000u) /* a deadline is at most 1 h away */
#define TIER_RPC_DEDUPE_ENTRIES_DEFAULT 8192u
#define TIER_RPC_DEDUPE_BYTES_DEFAULT ((size_t)64 << 20)
#define TIER_RPC_IDLE_TIMEOUT_DEFAULT_MS 10000u
#define TIER_RPC_MAX_CONNS_DEFAULT 512u
#define TIER_RPC_MAX_CONNS_PER_ADDR_DEFAULT 128u

/* TLS settings for tls+tcp:// addresses (tier_rpc_net.h says how they are
 * used); other addresses ignore them.  Paths to PEM files. */
typedef struct {
    const char *cert_file;   /* listening: our certificate (chain) */
    const char *key_file;    /* listening: its private key (mode 600) */
    const char *ca_file;     /* dialling: CAs the server's certificate must verify
                                against; NULL = the system's */
    const char *server_name; /* dialling: the name it must carry; NULL = the URL's host */
} tier_rpc_tls;

/* The metadata key of a bearer token ("Bearer <token>"), as in gRPC. */
#define TIER_RPC_AUTH_KEY "authorization"
#define TIER_RPC_MAX_METADATA 16 /* entries in one envelope; more: INVALID_ARGUMENT */
#define TIER_RPC_MAX_TOKEN 256   /* bytes of a bearer token */

/* A status with its message, as a caller sees it.  moved_to: with
 * FAILED_PRECONDITION, the URL of the server the call belongs to when the
 * server said so (Reply.moved_to), else "".  It is the peer's string: at
 * most TIER_RPC_MAX_URL - 1 printable ASCII bytes without spaces, or ""
 * when it sent anything else. */
#define TIER_RPC_MAX_URL 256
typedef struct {
    int code; /* tier_status */
    char message[256];
    char moved_to[TIER_RPC_MAX_URL];
} tier_rpc_error;

/* The completion of an asynchronous call (client and in-process). */
typedef void (*tier_rpc_done_fn)(void *arg, int code, const void *payload, size_t len,
                                 const char *message);

/* ------------------------------------------------------------------ server */

typedef struct tier_rpc_server tier_rpc_server;
typedef struct tier_rpc_ctx tier_rpc_ctx;

typedef struct {
    unsigned nthreads;       /* pool threads for blocking methods; 0 = 16 */
    unsigned ncontexts;      /* calls being served at once, deferred ones included;
                                0 = max(16, nthreads) */
    size_t max_msg;          /* largest request accepted and reply sent; 0 = 4 MiB */
    unsigned dedupe_entries; /* replies remembered for resends; 0 = 8192 */
    size_t dedupe_bytes;     /* and their total size; 0 = 64 MiB */
    /* A connection that delivers no complete request for this long (and
     * has no call running) is closed: it is idle or stuck in a partial
     * frame.  Clients redial by themselves.  0 = 10 s. */
    uint32_t idle_timeout_ms;
    unsigned max_conns;          /* connections at once; 0 = 512 */
    unsigned max_conns_per_addr; /* from one IP address; 0 = 128 */
    tier_rpc_tls tls;            /* for a tls+tcp:// url: cert_file and key_file */
    /* Where to count calls by method and status, their durations,
     * connections and the dedupe cache (docs/METRICS.md); NULL = nowhere.
     * Must outlive the server. */
    struct tier_metrics *metrics;
} tier_rpc_server_opts;

/* Method flags. */
#define TIER_RPC_INLINE 1u /* runs on nng's callback thread: must not block */

/*
 * A method.  `req` is the unpacked request; `reply` is an initialised,
 * empty reply message of the method's reply type.  Return TIER_OK and fill
 * `reply`, or return an error code (tier_rpc_set_message says why); the
 * reply is then not sent.
 */
typedef int (*tier_rpc_fn)(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                           ProtobufCMessage *reply);

/* A dependency probe for Health: return TIER_OK, or an error with a
 * reason written into msg. */
typedef int (*tier_rpc_health_fn)(void *arg, char *msg, size_t msglen);

int tier_rpc_server_open(tier_rpc_server **out, const char *url, const tier_rpc_server_opts *opts);
/* Register methods and health probes before tier_rpc_server_start. */
int tier_rpc_server_add(tier_rpc_server *s, const char *method,
                        const ProtobufCMessageDescriptor *req,
                        const ProtobufCMessageDescriptor *reply, tier_rpc_fn fn, void *arg,
                        unsigned flags);
int tier_rpc_server_add_health(tier_rpc_server *s, const char *name, tier_rpc_health_fn fn,
                               void *arg);
/* A gate in front of every method but Health: fn runs before each call (on
 * the thread that runs it, so it must be quick); an error is the call's
 * answer.  tierd uses it to answer nothing once it may not be the writer. */
int tier_rpc_server_set_gate(tier_rpc_server *s, tier_rpc_health_fn fn, void *arg);
/*
 * Access control, in front of every method but Health.  Before a call runs
 * (and before a resend is answered from the dedupe cache), fn gets the
 * method and the caller's bearer token -- the bytes after "Bearer " in the
 * TIER_RPC_AUTH_KEY metadata, or NULL when the call carries none -- and
 * answers TIER_OK with *who filled in, or UNAUTHENTICATED (no or unknown
 * token) or PERMISSION_DENIED (a known caller, a method not theirs) with a
 * reason in msg.  It runs on nng's callback threads: it must be quick.
 * Without fn every call is allowed and the caller is anonymous.
 */
typedef struct {
    uint64_t id;    /* stable per credential, 0 = anonymous: replies cached for
                       resends are only ever given back to the same id */
    unsigned roles; /* meaning left to fn's owner */
    char name[64];
} tier_rpc_caller;
typedef int (*tier_rpc_auth_fn)(void *arg, const char *method, const uint8_t *token, size_t len,
                                tier_rpc_caller *who, char *msg, size_t msglen);
int tier_rpc_server_set_auth(tier_rpc_server *s, tier_rpc_auth_fn fn, void *arg);
int tier_rpc_server_start(tier_rpc_server *s);
/* Stops serving, waits for calls in progress, frees everything. */
void tier_rpc_server_close(tier_rpc_server *s);

/*
 * In-process calls: runs a registered method for a caller that is not an
 * nng peer (tierd's HTTP gateway), through the same checks as a call off
 * the wire -- size cap, the auth hook (token = the bytes after "Bearer ",
 * NULL for none), the gate, the NUL scan of strings, dispatch inline or on
 * the pool, deferred replies -- but without dedupe or deadline.  Call it
 * after tier_rpc_server_start and never during or after
 * tier_rpc_server_close (close the feeder first).  done(arg, code,
 * payload, len, message) runs exactly once, on whatever thread finished
 * the call (this one, a pool thread, or a deferred call's finisher, even
 * before tier_rpc_server_call returns); payload and message are valid only
 * during it.  Returns TIER_OK when done will run, or an error (bad
 * arguments, out of memory, closing) and done never runs.
 */
int tier_rpc_server_call(tier_rpc_server *s, const char *method, const void *payload, size_t len,
                         const char *bearer_token, tier_rpc_done_fn done, void *arg);
/* The request and reply types of a method (Health included), after
 * tier_rpc_server_start: TIER_OK, or NOT_FOUND. */
int tier_rpc_server_method(const tier_rpc_server *s, const char *method,
                           const ProtobufCMessageDescriptor **req,
                           const ProtobufCMessageDescriptor **reply);

/* Counters, for tests and logs. */
typedef struct {
    uint64_t served;           /* replies sent */
    uint64_t deadline_dropped; /* requests found past their deadline */
    uint64_t bad_envelope;     /* garbage frames answered INVALID_ARGUMENT */
    uint64_t deduped;          /* resent requests answered from the cache */
    uint64_t cached_bytes;     /* replies held by the dedupe cache, now */
    uint64_t cached_entries;
    uint64_t conns;             /* connections open now */
    uint64_t conns_refused;     /* over max_conns or max_conns_per_addr */
    uint64_t conns_timed_out;   /* closed for idle_timeout_ms */
    uint64_t unauthenticated;   /* calls refused UNAUTHENTICATED */
    uint64_t permission_denied; /* calls refused PERMISSION_DENIED */
} tier_rpc_server_stats;
void tier_rpc_server_get_stats(tier_rpc_server *s, tier_rpc_server_stats *out);

/* Within a handler. */
void *tier_rpc_alloc(tier_rpc_ctx *call, size_t size); /* zeroed; lives until the reply is sent */
char *tier_rpc_strdup(tier_rpc_ctx *call, const char *s);
char *tier_rpc_strndup(tier_rpc_ctx *call, const char *s, size_t n);
int tier_rpc_set_message(tier_rpc_ctx *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3,
                          4))); /* returns code, for `return tier_rpc_set_message(...)` */
/* The call belongs to another server: FAILED_PRECONDITION with the
 * message, and the reply's moved_to = url (that server's address, "" when
 * none is known; NULL is ""; longer than TIER_RPC_MAX_URL - 1: ""), which
 * the caller finds in tier_rpc_error.moved_to.  Returns
 * TIER_FAILED_PRECONDITION, for `return tier_rpc_set_moved(...)`; the
 * handler must return that code (or finish a deferred call with it). */
int tier_rpc_set_moved(tier_rpc_ctx *call, const char *url, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int64_t tier_rpc_deadline_mono_us(const tier_rpc_ctx *call); /* 0 = none */
/*
 * Deferred replies.  A handler that waits for something done elsewhere (a
 * group commit, say) need not hold a thread while it waits: it returns
 * tier_rpc_defer(call), and whoever finishes the work fills the reply
 * (still valid, as is all of the call's arena) and calls tier_rpc_finish
 * exactly once, from any thread.  tier_rpc_server_close waits for every
 * deferred call to be finished.
 */
#define TIER_RPC_DEFERRED (-1)
int tier_rpc_defer(tier_rpc_ctx *call); /* returns TIER_RPC_DEFERRED */
void tier_rpc_finish(tier_rpc_ctx *call, int code);

/* Who made the call (anonymous without an auth hook). */
const tier_rpc_caller *tier_rpc_call_caller(const tier_rpc_ctx *call);
/* Metadata value sent by the client under key, or NULL. */
const ProtobufCBinaryData *tier_rpc_metadata(const tier_rpc_ctx *call, const char *key);
/* The call's (client_id, request_id) of rpc.proto: a resend carries the
 * same pair.  0, 0 for an in-process call. */
void tier_rpc_call_ids(const tier_rpc_ctx *call, uint64_t *client_id, uint64_t *request_id);

/* ------------------------------------------------------------------ client */

typedef struct tier_rpc_client tier_rpc_client;

typedef struct {
    unsigned max_inflight; /* calls in flight at once; 0 = 64; more wait */
    uint32_t timeout_ms;   /* default per call; 0 = TIER_RPC_TIMEOUT_DEFAULT_MS */
    size_t max_msg;        /* largest reply accepted and request sent; 0 = 4 MiB */
    /* Sent with every call as "authorization: Bearer <token>"; NULL = none.
     * Printable ASCII, at most TIER_RPC_MAX_TOKEN bytes. */
    const char *bearer_token;
    tier_rpc_tls tls; /* for tls+tcp:// urls: ca_file, server_name */
} tier_rpc_client_opts;

/* url: one address, or several separated by commas (at most
 * TIER_RPC_MAX_URLS), all dialled on one socket: each call goes to a
 * connected one, and is resent at once to another when its connection
 * drops.  INVALID_ARGUMENT for a bad, empty or too long list, a bad token
 * or TLS setting (the reason in err, which may be NULL). */
#define TIER_RPC_MAX_URLS 8
int tier_rpc_client_open(tier_rpc_client **out, const char *url, const tier_rpc_client_opts *opts,
                         tier_rpc_error *err);
void tier_rpc_client_close(tier_rpc_client *c);
/* Waits up to ms for a connection to any of the client's addresses: TIER_OK
 * once one is up, TIER_UNAVAILABLE if none came (nothing listening, or a
 * TLS handshake refused).  Calls wait for a connection anyway; this lets a
 * command-line tool say "nothing listening" at once instead of after its
 * whole call timeout. */
int tier_rpc_client_wait_connected(tier_rpc_client *c, uint32_t ms);

/*
 * One call.  On TIER_OK *reply_out holds the unpacked reply: free it with
 * protobuf_c_message_free_unpacked(*reply_out, NULL).  On error *reply_out
 * is NULL and err (if not NULL) holds the code and message.
 * timeout_ms 0 = the client's default.  A dead server gives UNAVAILABLE,
 * a live one too slow DEADLINE_EXCEEDED.
 */
int tier_rpc_call(tier_rpc_client *c, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply_out,
                  uint32_t timeout_ms, tier_rpc_error *err);

/* Same with raw bytes in and out (tests and benchmarks use it).  *out is
 * malloc'ed; free() it. */
int tier_rpc_call_raw(tier_rpc_client *c, const char *method, const void *req, size_t reqlen,
                      void **out, size_t *outlen, uint32_t timeout_ms, tier_rpc_error *err);

/*
 * Asynchronous raw call: returns at once (after waiting for a free context
 * if all max_inflight are busy); done(arg, code, payload, len, message) runs
 * later on an nng thread with the reply payload (valid only during the
 * callback).  Must not block for long.
 */
int tier_rpc_call_async(tier_rpc_client *c, const char *method, const void *req, size_t reqlen,
                        uint32_t timeout_ms, tier_rpc_done_fn done, void *arg);

#endif
