/*
 * http.c -- tierd's HTTP port (docs/HTTP.md): every RPC as JSON over
 * HTTP, and the seed's two Flask endpoints, so its users switch without
 * changing a client.
 *
 *   POST /v1/<Method>   the method's request as JSON (proto3 mapping,
 *                       rpc/tier_rpc_json.h) -> its reply as JSON; GET too
 *                       for /v1/Health.  Errors: grpc-gateway's body
 *                       {"code", "status", "message"} with its HTTP status.
 *   POST /post_sentence    form cid, count -> ReportViews; answers the
 *                          seed's JSON record.
 *   POST /update_sentence  form cid -> the claimed job's CompleteJob;
 *                          answers the cid, or "check your status again".
 *
 * Nothing here bypasses the rpc layer: each request becomes an in-process
 * call (tier_rpc_server_call) carrying the HTTP bearer token, so the auth
 * hook, the writer gate, the NUL scan, the method's caps and its deferred
 * reply all apply exactly as to a call over nng.  Replies come back on
 * whichever thread finished the call, which answers the HTTP request.
 */
#include "tierd.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tier.pb-c.h"
#include "tier_http.h"
#include "tier_log.h"
#include "tier_methods.h"
#include "tier_rpc_json.h"

#define JSON_TYPE "application/json"
#define SEED_TEXT_TYPE "text/html; charset=utf-8" /* what Flask sends for a str */
#define SEED_RETRY "check your status again"
#define METHOD_NAME_MAX 64

struct tierd_http {
    tier_http_server *http;
    tier_rpc_server *srv;
};

/* One HTTP request on its way through the rpc layer. */
typedef struct {
    tierd_http *h;
    tier_http_req *r;
    const ProtobufCMessageDescriptor *reply;
    char token[TIER_RPC_MAX_TOKEN + 2];
    bool has_token;
    int64_t cid, count;
} pending;

/* gRPC code -> HTTP status, as grpc-gateway maps them. */
static uint16_t http_status(int code)
{
    static const uint16_t map[] = {
        [TIER_OK] = 200,
        [TIER_CANCELLED] = 499,
        [TIER_UNKNOWN] = 500,
        [TIER_INVALID_ARGUMENT] = 400,
        [TIER_DEADLINE_EXCEEDED] = 504,
        [TIER_NOT_FOUND] = 404,
        [TIER_ALREADY_EXISTS] = 409,
        [TIER_PERMISSION_DENIED] = 403,
        [TIER_RESOURCE_EXHAUSTED] = 429,
        [TIER_FAILED_PRECONDITION] = 400,
        [TIER_ABORTED] = 409,
        [TIER_OUT_OF_RANGE] = 400,
        [TIER_UNIMPLEMENTED] = 501,
        [TIER_INTERNAL] = 500,
        [TIER_UNAVAILABLE] = 503,
        [TIER_DATA_LOSS] = 500,
        [TIER_UNAUTHENTICATED] = 401,
    };
    return code >= 0 && (size_t)code < sizeof(map) / sizeof(map[0]) ? map[code] : 500;
}

static void reply_json(tier_http_req *r, uint16_t status, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;

    json_decref(j);
    if (text == NULL) {
        static const char oom[] = "{\"code\":8,\"status\":\"RESOURCE_EXHAUSTED\"}";
        tier_http_reply(r, 500, JSON_TYPE, oom, sizeof(oom) - 1);
        return;
    }
    tier_http_reply(r, status, JSON_TYPE, text, strlen(text));
    free(text);
}

/* grpc-gateway's error body, with its HTTP status. */
static void reply_error(tier_http_req *r, int code, const char *message)
{
    json_t *j = json_object();

    if (code == TIER_UNAUTHENTICATED)
        tier_http_set_header(r, "WWW-Authenticate", "Bearer");
    message = message != NULL ? message : "";
    json_object_set_new(j, "code", json_integer(code));
    json_object_set_new(j, "status", json_string(tier_status_name(code)));
    json_object_set_new(j, "message", tier_rpc_json_string(message, strlen(message)));
    reply_json(r, http_status(code), j);
}

/* The bearer token of a request into p: false (and answered 401) for an
 * Authorization header that is not "Bearer <token>" of a sane length. */
static bool take_token(pending *p)
{
    const char *a = tier_http_header(p->r, "Authorization");

    p->has_token = a != NULL;
    if (a == NULL)
        return true;
    if (strncasecmp(a, "Bearer ", 7) != 0 || strlen(a + 7) > TIER_RPC_MAX_TOKEN) {
        reply_error(p->r, TIER_UNAUTHENTICATED,
                    "Authorization must be \"Bearer <token>\", token at most 256 bytes");
        return false;
    }
    snprintf(p->token, sizeof(p->token), "%s", a + 7);
    return true;
}

static pending *pending_new(tierd_http *h, tier_http_req *r)
{
    pending *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        reply_error(r, TIER_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    p->h = h;
    p->r = r;
    if (!take_token(p)) {
        free(p);
        return NULL;
    }
    return p;
}

/* Starts an in-process call; on failure answers and frees p. */
static void call(pending *p, const char *method, const void *pb, size_t len, tier_rpc_done_fn done)
{
    int rv =
        tier_rpc_server_call(p->h->srv, method, pb, len, p->has_token ? p->token : NULL, done, p);
    if (rv != TIER_OK) {
        reply_error(p->r, rv, "cannot start the call");
        free(p);
    }
}

/* ------------------------------------------------------------ /v1/<Method> */

static void v1_done(void *arg, int code, const void *payload, size_t len, const char *message)
{
    pending *p = arg;
    char err[512], *text;
    size_t tlen;

    if (code != TIER_OK) {
        reply_error(p->r, code, message);
    } else if ((code = tier_rpc_json_from_pb(p->reply, payload, len, &text, &tlen, err,
                                             sizeof(err))) != TIER_OK) {
        reply_error(p->r, TIER_INTERNAL, err);
    } else {
        tier_http_reply(p->r, 200, JSON_TYPE, text, tlen);
        free(text);
    }
    free(p);
}

/* "tier.Tier/<name>" for a path /v1/<name>, or false. */
static bool v1_method(const char *path, char *full, size_t len)
{
    const char *name = path + strlen("/v1/");
    size_t n = strlen(name);

    if (strncmp(path, "/v1/", 4) != 0 || n == 0 || n > METHOD_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]))
            return false;
    if (strcmp(name, "Health") == 0)
        snprintf(full, len, "%s", TIER_RPC_HEALTH_METHOD);
    else
        snprintf(full, len, "tier.Tier/%s", name);
    return true;
}

static void on_v1(void *arg, tier_http_req *r)
{
    tierd_http *h = arg;
    const ProtobufCMessageDescriptor *reqd;
    char full[METHOD_NAME_MAX + 16], err[512];
    const char *verb = tier_http_method(r);
    const void *body;
    uint8_t *pb;
    size_t blen, pblen;
    pending *p;
    int rv;

    if (!v1_method(tier_http_path(r), full, sizeof(full)) ||
        tier_rpc_server_method(h->srv, full, &reqd, NULL) != TIER_OK) {
        reply_error(r, TIER_NOT_FOUND, "no such method (POST /v1/<Method>, e.g. /v1/ReportViews)");
        return;
    }
    if (strcmp(verb, "POST") != 0 && !(strcmp(full, TIER_RPC_HEALTH_METHOD) == 0 &&
                                       (strcmp(verb, "GET") == 0 || strcmp(verb, "HEAD") == 0))) {
        tier_http_set_header(r, "Allow", "POST");
        static const char body[] = "{\"code\":12,\"status\":\"UNIMPLEMENTED\","
                                   "\"message\":\"methods are called with POST\"}";
        tier_http_reply(r, 405, JSON_TYPE, body, sizeof(body) - 1);
        return;
    }
    if ((p = pending_new(h, r)) == NULL)
        return;
    tier_rpc_server_method(h->srv, full, NULL, &p->reply);
    body = tier_http_body(r, &blen);
    if ((rv = tier_rpc_json_to_pb(reqd, body, blen, NULL, &pb, &pblen, err, sizeof(err))) !=
        TIER_OK) {
        reply_error(r, rv, err);
        free(p);
        return;
    }
    call(p, full, pb, pblen, v1_done);
    free(pb);
}

/* ------------------------------------------------------------ form fields */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The value of `key` in an application/x-www-form-urlencoded body,
 * decoded into out: false when absent, malformed or longer than len-1. */
static bool form_get(const char *body, size_t blen, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key);

    for (size_t i = 0; i < blen;) {
        size_t end = i;
        while (end < blen && body[end] != '&')
            end++;
        if (end - i > klen && memcmp(body + i, key, klen) == 0 && body[i + klen] == '=') {
            size_t o = 0;
            for (size_t j = i + klen + 1; j < end; j++) {
                int c = body[j];
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    if (j + 2 >= end || hexval(body[j + 1]) < 0 || hexval(body[j + 2]) < 0)
                        return false;
                    c = hexval(body[j + 1]) * 16 + hexval(body[j + 2]);
                    j += 2;
                }
                if (o + 1 >= len)
                    return false;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            return true;
        }
        i = end + 1;
    }
    return false;
}

/* A form field holding a decimal integer in [min, INT64_MAX]. */
static bool form_int(tier_http_req *r, const char *key, int64_t min, int64_t *out)
{
    const char *body;
    size_t blen;
    char v[32], *end;
    long long n;

    body = tier_http_body(r, &blen);
    if (!form_get(body, blen, key, v, sizeof(v)) || v[0] == '\0' ||
        !(isdigit((unsigned char)v[0]) || v[0] == '-')) {
        char msg[128];
        snprintf(msg, sizeof(msg), "form field %s: a decimal integer is required", key);
        reply_error(r, TIER_INVALID_ARGUMENT, msg);
        return false;
    }
    errno = 0;
    n = strtoll(v, &end, 10);
    if (*end != '\0' || errno != 0 || n < min) {
        char msg[128];
        snprintf(msg, sizeof(msg), "form field %s: an integer from %lld is required", key,
                 (long long)min);
        reply_error(r, TIER_INVALID_ARGUMENT, msg);
        return false;
    }
    *out = n;
    return true;
}

/* ------------------------------------------------------------ /post_sentence */

/* The seed's record: {"cid": "7", "count": "1964", "target": "silver",
 * "db_level": "bronze", "filename": "g.mp4", "worker_id": null,
 * "status": "update"} -- in that order, spaced as Python's json.dumps. */
static void seed_record(tier_http_req *r, const Tier__ViewResult *v)
{
    json_t *j = json_object();
    char cid[24], count[24], *text;

    snprintf(cid, sizeof(cid), "%lld", (long long)v->cid);
    snprintf(count, sizeof(count), "%lld", (long long)v->count);
    json_object_set_new(j, "cid", json_string(cid));
    json_object_set_new(j, "count", json_string(count));
    json_object_set_new(j, "target", tier_rpc_json_string(v->target, strlen(v->target)));
    json_object_set_new(j, "db_level", tier_rpc_json_string(v->db_level, strlen(v->db_level)));
    json_object_set_new(j, "filename", tier_rpc_json_string(v->filename, strlen(v->filename)));
    json_object_set_new(j, "worker_id",
                        v->worker_id[0] ? tier_rpc_json_string(v->worker_id, strlen(v->worker_id))
                                        : json_null());
    json_object_set_new(j, "status", tier_rpc_json_string(v->status, strlen(v->status)));
    text = json_dumps(j, JSON_PRESERVE_ORDER); /* ", " and ": " like json.dumps */
    json_decref(j);
    if (text == NULL) {
        reply_error(r, TIER_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    tier_http_reply(r, 200, JSON_TYPE, text, strlen(text));
    free(text);
}

static void post_done(void *arg, int code, const void *payload, size_t len, const char *message)
{
    pending *p = arg;
    Tier__ReportViewsReply *rep = NULL;

    if (code != TIER_OK)
        reply_error(p->r, code, message);
    else if ((rep = tier__report_views_reply__unpack(NULL, len, payload)) == NULL ||
             rep->n_results != 1)
        reply_error(p->r, TIER_INTERNAL, "unexpected ReportViews reply");
    else if (rep->results[0]->code != TIER__RPC__CODE__OK)
        reply_error(p->r, (int)rep->results[0]->code, rep->results[0]->message);
    else
        seed_record(p->r, rep->results[0]);
    if (rep != NULL)
        tier__report_views_reply__free_unpacked(rep, NULL);
    free(p);
}

static void on_post_sentence(void *arg, tier_http_req *r)
{
    Tier__ViewReport vr = TIER__VIEW_REPORT__INIT, *vrs[1] = {&vr};
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    uint8_t buf[64];
    pending *p;

    if (!form_int(r, "cid", 1, &vr.cid) || !form_int(r, "count", 0, &vr.count) ||
        (p = pending_new(arg, r)) == NULL)
        return;
    req.n_reports = 1;
    req.reports = vrs;
    call(p, TIER_M_REPORT_VIEWS, buf, tier__report_views_request__pack(&req, buf), post_done);
}

/* ------------------------------------------------------------ /update_sentence */

static void seed_text(tier_http_req *r, const char *text)
{
    tier_http_reply(r, 200, SEED_TEXT_TYPE, text, strlen(text));
}

static void update_done(void *arg, int code, const void *payload, size_t len, const char *message)
{
    pending *p = arg;
    Tier__CompleteJobReply *rep = NULL;
    char cid[24];

    if (code != TIER_OK && code != TIER_FAILED_PRECONDITION) {
        reply_error(p->r, code, message);
    } else if (code == TIER_OK &&
               (rep = tier__complete_job_reply__unpack(NULL, len, payload)) != NULL &&
               rep->n_results == 1 && rep->results[0]->code == TIER__RPC__CODE__OK) {
        snprintf(cid, sizeof(cid), "%lld", (long long)p->cid);
        seed_text(p->r, cid);
    } else {
        seed_text(p->r, SEED_RETRY);
    }
    if (rep != NULL)
        tier__complete_job_reply__free_unpacked(rep, NULL);
    free(p);
}

/* The job as GetJob saw it: a claimed one is completed for its holder (what
 * the seed's worker asked for: "the file is moved, commit it"); one being
 * committed already answers the cid; anything else is not done. */
static void getjob_done(void *arg, int code, const void *payload, size_t len, const char *message)
{
    pending *p = arg;
    Tier__GetJobReply *rep = NULL;
    char cid[24];

    if (code == TIER_NOT_FOUND) {
        seed_text(p->r, SEED_RETRY);
        free(p);
        return;
    }
    if (code != TIER_OK || (rep = tier__get_job_reply__unpack(NULL, len, payload)) == NULL ||
        rep->job == NULL) {
        if (code != TIER_OK)
            reply_error(p->r, code, message);
        else
            seed_text(p->r, SEED_RETRY);
        if (rep != NULL)
            tier__get_job_reply__free_unpacked(rep, NULL);
        free(p);
        return;
    }
    if (strcmp(rep->job->status, "claimed") == 0) {
        Tier__JobRef ref = TIER__JOB_REF__INIT, *refs[1] = {&ref};
        Tier__CompleteJobRequest req = TIER__COMPLETE_JOB_REQUEST__INIT;
        uint8_t buf[256];
        req.worker_id = rep->job->worker_id;
        ref.cid = p->cid;
        ref.fence = rep->job->fence;
        req.n_jobs = 1;
        req.jobs = refs;
        if (tier__complete_job_request__get_packed_size(&req) <= sizeof(buf))
            call(p, TIER_M_COMPLETE_JOB, buf, tier__complete_job_request__pack(&req, buf),
                 update_done);
        else
            update_done(p, TIER_INTERNAL, NULL, 0, "worker id too long");
    } else if (strcmp(rep->job->status, "done") == 0) {
        snprintf(cid, sizeof(cid), "%lld", (long long)p->cid);
        seed_text(p->r, cid);
        free(p);
    } else {
        seed_text(p->r, SEED_RETRY);
        free(p);
    }
    tier__get_job_reply__free_unpacked(rep, NULL);
}

static void on_update_sentence(void *arg, tier_http_req *r)
{
    Tier__GetJobRequest req = TIER__GET_JOB_REQUEST__INIT;
    uint8_t buf[32];
    pending *p;

    if (!form_int(r, "cid", 1, &req.cid) || (p = pending_new(arg, r)) == NULL)
        return;
    p->cid = req.cid;
    call(p, TIER_M_GET_JOB, buf, tier__get_job_request__pack(&req, buf), getjob_done);
}

/* ------------------------------------------------------------ assembly */

int tierd_http_open(tierd_http **out, const char *url, tier_rpc_server *srv,
                    const tier_rpc_tls *tls, char *err, size_t errlen)
{
    tierd_http *h = calloc(1, sizeof(*h));
    tier_http_opts opts = {.tls = *tls};
    int rv;

    if (h == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    h->srv = srv;
    if ((rv = tier_http_open(&h->http, url, &opts, err, errlen)) != TIER_OK) {
        free(h);
        return rv;
    }
    if ((rv = tier_http_add(h->http, NULL, "/v1", TIER_HTTP_PREFIX, on_v1, h)) != TIER_OK ||
        (rv = tier_http_add(h->http, "POST", "/post_sentence", 0, on_post_sentence, h)) !=
            TIER_OK ||
        (rv = tier_http_add(h->http, "POST", "/update_sentence", 0, on_update_sentence, h)) !=
            TIER_OK) {
        snprintf(err, errlen, "%s: cannot add handlers", url);
        tierd_http_close(h);
        return rv;
    }
    *out = h;
    return TIER_OK;
}

tier_http_server *tierd_http_server(tierd_http *h)
{
    return h->http;
}

int tierd_http_start(tierd_http *h)
{
    return tier_http_start(h->http);
}

void tierd_http_close(tierd_http *h)
{
    if (h == NULL)
        return;
    tier_http_close(h->http);
    free(h);
}
