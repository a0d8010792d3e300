/*
 * tier_http.h -- a small generic HTTP/1.1 server on nng's own (nng ships
 * one: <nng/supplemental/http/http.h>), for every HTTP endpoint of tier:
 * tierd's JSON gateway, and /metrics and static pages that other modules
 * add the same way.  It knows nothing of tiers or of JSON.
 *
 * What it adds to nng's server:
 *   - a request body cap answered 413 (nng alone answers 400), read with
 *     a timeout so a peer that stops sending is dropped;
 *   - handlers that answer later, from any thread: a handler gets a
 *     tier_http_req and must call tier_http_reply on it exactly once, at
 *     once or after some asynchronous work (an RPC deferred to a group
 *     commit, say);
 *   - close waits for every request still being answered, so the handlers'
 *     owners may be freed right after it;
 *   - https:// with a certificate and key, checked like the rpc layer's
 *     (tier_rpc_net.h).
 *
 * Usage: tier_http_open, tier_http_add (any number), tier_http_start, ...,
 * tier_http_close.  Handlers run on nng's threads: they must not block for
 * long (hand slow work elsewhere and reply from there).
 */
#ifndef TIER_HTTP_H
#define TIER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "tier_rpc.h"

#define TIER_HTTP_MAX_BODY_DEFAULT (4u << 20)
#define TIER_HTTP_BODY_TIMEOUT_DEFAULT_MS 30000u

typedef struct tier_http_server tier_http_server;
typedef struct tier_http_req tier_http_req;

typedef struct {
    size_t max_body;          /* request body cap, larger: 413; 0 = 4 MiB */
    uint32_t body_timeout_ms; /* to receive a body; 0 = 30 s */
    tier_rpc_tls tls;         /* https://: cert_file and key_file */
} tier_http_opts;

/* A handler.  Must call tier_http_reply(req, ...) exactly once, now or
 * later from any thread; req is freed by it. */
typedef void (*tier_http_fn)(void *arg, tier_http_req *req);

/* url: http://host:port or https://host:port.  Returns a tier_status, the
 * reason in err. */
int tier_http_open(tier_http_server **out, const char *url, const tier_http_opts *opts, char *err,
                   size_t errlen);

#define TIER_HTTP_PREFIX 1u /* path is a prefix: it and everything under path/ */
/* Before tier_http_start.  method: "GET" (HEAD is served by it too),
 * "POST", ..., or NULL for every method.  A path no handler has: 404; a
 * method no handler of that path takes: 405. */
int tier_http_add(tier_http_server *s, const char *method, const char *path, unsigned flags,
                  tier_http_fn fn, void *arg);
int tier_http_start(tier_http_server *s);
/* The TCP port listened on (useful after a :0 url), or -1. */
int tier_http_port(tier_http_server *s);
/* Stops taking requests (new ones are answered 503), waits until every
 * request in progress is answered, then closes the listener and its
 * connections. */
void tier_http_close(tier_http_server *s);

/* ---- within a handler (valid until tier_http_reply) */

const char *tier_http_method(const tier_http_req *r);
/* The path without the query string, as the client sent it (not decoded). */
const char *tier_http_path(const tier_http_req *r);
/* After '?', or "". */
const char *tier_http_query(const tier_http_req *r);
const char *tier_http_header(const tier_http_req *r, const char *name); /* NULL: absent */
const void *tier_http_body(const tier_http_req *r, size_t *len);
/* Adds a response header (before tier_http_reply). */
int tier_http_set_header(tier_http_req *r, const char *name, const char *value);
/* Answers: status, Content-Type (NULL: none), body copied.  Frees r. */
void tier_http_reply(tier_http_req *r, uint16_t status, const char *content_type, const void *body,
                     size_t len);

/* GET /metrics: m in Prometheus's text format (common/tier_metrics.h),
 * rendered per request.  Before tier_http_start. */
struct tier_metrics;
int tier_http_add_metrics(tier_http_server *s, struct tier_metrics *m);

#endif
