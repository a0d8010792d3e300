/*
 * tier_http.c -- the generic HTTP server of tier_http.h, on nng's.
 *
 * nng calls a handler with an aio it must finish with a response.  We do
 * not let nng collect the body: it answers an oversized one 400 and reads
 * nothing we could cap by time.  Instead each request gets a tier_http_req;
 * its Content-Length is checked against the cap (413, and the connection
 * closed, without reading a byte of it), the body is read with a timeout
 * into a buffer of exactly that size, and the user's handler runs.  Its
 * tier_http_reply finishes nng's aio, from whatever thread.
 *
 * A count of requests in progress lets close wait for the last reply
 * before it stops nng's server (which would otherwise finish aios that a
 * deferred reply still means to use).
 */
#include "tier_http.h"
#include "tier_metrics.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tier_log.h"
#include "tier_rpc_net.h"
#include "tier_status.h"

struct tier_http_server {
    nng_http_server *srv;
    nng_url *url;
    size_t max_body;
    uint32_t body_timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight; /* requests taken and not answered yet */
    bool closing, started;
};

typedef struct {
    tier_http_server *srv;
    tier_http_fn fn;
    void *arg;
} handler;

struct tier_http_req {
    tier_http_server *srv;
    const handler *h;
    nng_aio *aio; /* nng's: finished by tier_http_reply */
    nng_aio *rd;  /* ours, reading the body */
    nng_http_req *req;
    nng_http_conn *conn;
    nng_http_res *res;
    char *path; /* up to '?' */
    const char *query;
    void *body;
    size_t len;
    bool continuing; /* rd is writing "100 Continue", the body comes next */
};

static int fail(char *err, size_t len, int code, const char *what, int rv)
{
    snprintf(err, len, "%s: %s", what, nng_strerror(rv));
    return code;
}

int tier_http_open(tier_http_server **out, const char *url, const tier_http_opts *opts, char *err,
                   size_t errlen)
{
    tier_http_server *s = calloc(1, sizeof(*s));
    int rv;

    if (s == NULL)
        return fail(err, errlen, TIER_RESOURCE_EXHAUSTED, url, NNG_ENOMEM);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->max_body = opts && opts->max_body ? opts->max_body : TIER_HTTP_MAX_BODY_DEFAULT;
    s->body_timeout_ms =
        opts && opts->body_timeout_ms ? opts->body_timeout_ms : TIER_HTTP_BODY_TIMEOUT_DEFAULT_MS;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "%s: an HTTP address is http://host:port or https://host:port", url);
        tier_http_close(s);
        return TIER_INVALID_ARGUMENT;
    }
    if ((rv = nng_url_parse(&s->url, url)) != 0 ||
        (rv = nng_http_server_hold(&s->srv, s->url)) != 0) {
        tier_http_close(s);
        return fail(err, errlen, TIER_INVALID_ARGUMENT, url, rv);
    }
    if (strncmp(url, "https://", 8) == 0) {
        nng_tls_config *cfg;
        if ((rv = tier_rpc_net_server_tls(&cfg, opts != NULL ? &opts->tls : NULL, err, errlen)) !=
            TIER_OK) {
            tier_http_close(s);
            return rv;
        }
        rv = nng_http_server_set_tls(s->srv, cfg);
        nng_tls_config_free(cfg); /* the server holds its own reference */
        if (rv != 0) {
            tier_http_close(s);
            return fail(err, errlen, TIER_INTERNAL, url, rv);
        }
    }
    *out = s;
    return TIER_OK;
}

/* Taking a request: false once closing (it is then answered 503). */
static bool begin(tier_http_server *s)
{
    bool ok;

    pthread_mutex_lock(&s->mu);
    ok = !s->closing;
    if (ok)
        s->inflight++;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void end(tier_http_server *s)
{
    pthread_mutex_lock(&s->mu);
    if (--s->inflight == 0)
        pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void req_free(tier_http_req *r)
{
    if (r->rd != NULL)
        nng_aio_reap(r->rd); /* we may be in its callback: nng frees it later */
    if (r->res != NULL)
        nng_http_res_free(r->res);
    free(r->path);
    free(r->body);
    free(r);
}

/* Answers without a handler (errors found before one runs). */
static void reply_plain(tier_http_req *r, uint16_t status, const char *text)
{
    tier_http_reply(r, status, "text/plain; charset=utf-8", text, strlen(text));
}

static void read_body(tier_http_req *r)
{
    nng_iov iov = {.iov_buf = r->body, .iov_len = r->len};

    nng_aio_set_iov(r->rd, 1, &iov);
    nng_aio_set_timeout(r->rd, (nng_duration)r->srv->body_timeout_ms);
    nng_http_conn_read_all(r->conn, r->rd);
}

static void body_read(void *arg)
{
    tier_http_req *r = arg;
    int rv = nng_aio_result(r->rd);

    if (rv == 0 && r->continuing) {
        r->continuing = false;
        read_body(r);
        return;
    }
    if (rv != 0) { /* timed out or dropped: nothing to answer to */
        tier_http_server *s = r->srv;
        nng_aio_finish(r->aio, rv); /* nng closes the connection */
        req_free(r);
        end(s);
        return;
    }
    r->h->fn(r->h->arg, r);
}

/* The declared body length: -1 for a bad Content-Length; chunked bodies
 * (which nng cannot read) count as bad too. */
static long long body_length(nng_http_req *req)
{
    const char *cl = nng_http_req_get_header(req, "Content-Length");
    long long n = 0;

    if (nng_http_req_get_header(req, "Transfer-Encoding") != NULL)
        return -1;
    if (cl == NULL)
        return 0;
    if (*cl == '\0' || strlen(cl) > 18)
        return -1;
    for (; *cl != '\0'; cl++) {
        if (*cl < '0' || *cl > '9')
            return -1;
        n = n * 10 + (*cl - '0');
    }
    return n;
}

/* Reads the request's body, then runs the handler. */
static void start_body(tier_http_req *r)
{
    tier_http_server *s = r->srv;
    long long n = body_length(r->req);

    if (n < 0) {
        tier_http_set_header(r, "Connection", "close");
        reply_plain(r, 411, "a body needs a valid Content-Length (no chunked encoding)\n");
        return;
    }
    if ((unsigned long long)n > s->max_body) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request body of %lld bytes larger than the limit of %zu\n", n,
                 s->max_body);
        tier_http_set_header(r, "Connection", "close"); /* its body is never read */
        reply_plain(r, 413, msg);
        return;
    }
    if (n == 0) {
        r->h->fn(r->h->arg, r);
        return;
    }
    r->len = (size_t)n;
    if ((r->body = malloc(r->len + 1)) == NULL || nng_aio_alloc(&r->rd, body_read, r) != 0) {
        tier_http_set_header(r, "Connection", "close");
        reply_plain(r, 503, "out of memory\n");
        return;
    }
    ((char *)r->body)[r->len] = '\0'; /* handlers may treat it as a string */
    /* curl and others wait (a second) for this before sending a body over
     * 1 KiB; nng does not send it by itself. */
    const char *expect = nng_http_req_get_header(r->req, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        nng_iov iov = {.iov_buf = cont, .iov_len = sizeof(cont) - 1};
        r->continuing = true;
        nng_aio_set_iov(r->rd, 1, &iov);
        nng_aio_set_timeout(r->rd, (nng_duration)s->body_timeout_ms);
        nng_http_conn_write_all(r->conn, r->rd);
        return;
    }
    read_body(r);
}

/* nng's handler callback, for every handler. */
static void on_request(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    const handler *h = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
    tier_http_req *r = calloc(1, sizeof(*r));
    const char *uri = nng_http_req_get_uri(req);
    const char *q = strchr(uri, '?');

    if (r == NULL || nng_http_res_alloc(&r->res) != 0 ||
        (r->path = strndup(uri, q != NULL ? (size_t)(q - uri) : strlen(uri))) == NULL) {
        if (r != NULL)
            req_free(r);
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    r->srv = h->srv;
    r->h = h;
    r->aio = aio;
    r->req = req;
    r->conn = nng_aio_get_input(aio, 2);
    r->query = q != NULL ? q + 1 : "";
    if (!begin(r->srv)) {
        nng_http_res_set_status(r->res, 503);
        nng_http_res_set_header(r->res, "Connection", "close");
        nng_aio_set_output(aio, 0, r->res);
        r->res = NULL; /* nng frees it */
        nng_aio_finish(aio, 0);
        req_free(r);
        return;
    }
    start_body(r);
}

int tier_http_add(tier_http_server *s, const char *method, const char *path, unsigned flags,
                  tier_http_fn fn, void *arg)
{
    nng_http_handler *nh;
    handler *h;
    int rv;

    if (s->started || fn == NULL || path == NULL || path[0] != '/')
        return TIER_INVALID_ARGUMENT;
    if ((h = malloc(sizeof(*h))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    *h = (handler){s, fn, arg};
    if ((rv = nng_http_handler_alloc(&nh, path, on_request)) != 0) {
        free(h);
        return TIER_RESOURCE_EXHAUSTED;
    }
    if ((rv = nng_http_handler_set_data(nh, h, free)) != 0) {
        free(h);
        nng_http_handler_free(nh);
        return TIER_RESOURCE_EXHAUSTED;
    }
    if ((rv = nng_http_handler_set_method(nh, method)) != 0 ||
        (rv = nng_http_handler_collect_body(nh, false, 0)) != 0 ||
        ((flags & TIER_HTTP_PREFIX) && (rv = nng_http_handler_set_tree(nh)) != 0) ||
        (rv = nng_http_server_add_handler(s->srv, nh)) != 0) {
        nng_http_handler_free(nh); /* frees h too */
        return rv == NNG_EADDRINUSE ? TIER_ALREADY_EXISTS : TIER_INVALID_ARGUMENT;
    }
    return TIER_OK;
}

int tier_http_start(tier_http_server *s)
{
    int rv = nng_http_server_start(s->srv);

    if (rv != 0) {
        tier_error("http: cannot listen: %s", nng_strerror(rv));
        return rv == NNG_EADDRINUSE ? TIER_ALREADY_EXISTS : TIER_INVALID_ARGUMENT;
    }
    s->started = true;
    return TIER_OK;
}

int tier_http_port(tier_http_server *s)
{
    nng_sockaddr sa;

    if (s == NULL || nng_http_server_get_addr(s->srv, &sa) != 0)
        return -1;
    if (sa.s_family == NNG_AF_INET)
        return ((sa.s_in.sa_port & 0xff) << 8) | (sa.s_in.sa_port >> 8); /* network order */
    if (sa.s_family == NNG_AF_INET6)
        return ((sa.s_in6.sa_port & 0xff) << 8) | (sa.s_in6.sa_port >> 8);
    return -1;
}

void tier_http_close(tier_http_server *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    while (s->inflight > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (s->srv != NULL) {
        if (s->started)
            nng_http_server_stop(s->srv);
        nng_http_server_release(s->srv); /* frees the handlers (and their data) */
    }
    if (s->url != NULL)
        nng_url_free(s->url);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

const char *tier_http_method(const tier_http_req *r)
{
    return nng_http_req_get_method(r->req);
}

const char *tier_http_path(const tier_http_req *r)
{
    return r->path;
}

const char *tier_http_query(const tier_http_req *r)
{
    return r->query;
}

const char *tier_http_header(const tier_http_req *r, const char *name)
{
    return nng_http_req_get_header(r->req, name);
}

const void *tier_http_body(const tier_http_req *r, size_t *len)
{
    *len = r->len;
    return r->body != NULL ? r->body : "";
}

int tier_http_set_header(tier_http_req *r, const char *name, const char *value)
{
    return nng_http_res_set_header(r->res, name, value) == 0 ? TIER_OK : TIER_RESOURCE_EXHAUSTED;
}

void tier_http_reply(tier_http_req *r, uint16_t status, const char *content_type, const void *body,
                     size_t len)
{
    tier_http_server *s = r->srv;
    nng_http_res *res = r->res;

    if (nng_http_res_set_status(res, status) != 0 ||
        (content_type != NULL && nng_http_res_set_header(res, "Content-Type", content_type) != 0) ||
        nng_http_res_copy_data(res, body, len) != 0) {
        nng_http_res_reset(res);
        nng_http_res_set_status(res, 500);
        nng_http_res_set_header(res, "Connection", "close");
    }
    r->res = NULL; /* nng frees it once written */
    nng_aio_set_output(r->aio, 0, res);
    nng_aio_finish(r->aio, 0);
    req_free(r);
    end(s);
}

/* ------------------------------------------------------------- /metrics */

static void serve_metrics(void *arg, tier_http_req *r)
{
    size_t len = 0;
    char *text = tier_metrics_render(arg, &len);

    if (text == NULL) {
        tier_http_reply(r, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    tier_http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

int tier_http_add_metrics(tier_http_server *s, tier_metrics *m)
{
    return tier_http_add(s, "GET", "/metrics", 0, serve_metrics, m);
}
