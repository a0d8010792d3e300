/*
 * test_http.c -- tierd's HTTP port (docs/HTTP.md) against a real tierd
 * over real TCP, with libcurl as the client:
 *
 *   - every kind of reply comes back as JSON: Health (GET), ListLevels,
 *     AddContent, ReportViews, GetContent, PostComment (a deferred,
 *     group-committed method), TopContents, LatestComments, ClaimJob;
 *   - JSON errors are 400 naming the field's path; unknown methods 404,
 *     a wrong HTTP method 405, an oversized body 413; the method's own caps
 *     still apply;
 *   - the seed's /post_sentence and /update_sentence answer byte for byte
 *     as the seed's Flask server did;
 *   - with tokens, HTTP answers 401/403 exactly as the rpc role matrix.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpc.pb-c.h"
#include "tier.pb-c.h"
#include "tier_rpc_json.h"
#include "tier_testenv.h"
#include "tier_time.h"

typedef struct {
    char *dir;
    tier_test_mysql m;
    tier_test_tierd td;
    char http[128];
} fx;

typedef struct {
    long status;
    char body[1 << 16];
    size_t len;
    char ctype[128];
} resp;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    resp *r = arg;
    size_t k = size * n;
    if (r->len + k >= sizeof(r->body))
        k = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return size * n;
}

/* One request; body NULL = none (GET unless verb says otherwise). */
static void http(const fx *f, const char *verb, const char *path, const char *body, size_t blen,
                 const char *auth, resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[512], hdr[512];
    char *ct = NULL;

    cr_assert_not_null(c);
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", f->http, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, verb);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    if (auth != NULL) {
        snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
        h = curl_slist_append(h, hdr);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(c);
    cr_assert_eq(rc, CURLE_OK, "%s %s: %s", verb, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static json_t *post(const fx *f, const char *method, const char *json, const char *auth, long want)
{
    char path[128];
    resp r;
    json_error_t je;

    snprintf(path, sizeof(path), "/v1/%s", method);
    http(f, "POST", path, json, strlen(json), auth, &r);
    cr_assert_eq(r.status, want, "%s %s: %ld %s", method, json, r.status, r.body);
    cr_assert_str_eq(r.ctype, "application/json", "%s", r.ctype);
    json_t *j = json_loads(r.body, 0, &je);
    cr_assert_not_null(j, "%s: not JSON: %s", method, r.body);
    return j;
}

static const char *jstr(json_t *j, const char *path)
{
    json_t *v = j;
    char key[64];
    while (*path && v != NULL) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof(key), "%.*s", (int)n, path);
        v = key[0] >= '0' && key[0] <= '9' ? json_array_get(v, (size_t)atoi(key))
                                           : json_object_get(v, key);
        path += n + (path[n] == '.');
    }
    cr_assert(json_is_string(v), "not a string at %s", path);
    return json_string_value(v);
}

static void setup(fx *f, const char *tokens)
{
    memset(f, 0, sizeof(*f));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    f->dir = tier_test_tmpdir();
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->dir);
    tier_test_tierd_init(&f->td, f->dir, f->m.db, NULL);
    tier_test_tierd_setenv_services(&f->td, &f->m, -1, -1);
    if (tokens != NULL)
        tier_test_tierd_secure(&f->td, tokens);
    snprintf(f->http, sizeof(f->http), "http://127.0.0.1:%d", tier_test_free_port());
    char *extra[] = {"--http", f->http, NULL};
    tier_test_tierd_start(&f->td, extra);
}

static void teardown(fx *f)
{
    if (f->td.pid > 0)
        cr_assert_eq(tier_test_tierd_stop(&f->td, SIGTERM, 20000), 0, "tierd exits cleanly");
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->dir);
    free(f->dir);
}

/* The directory of a level, from ListLevels. */
static void level_dir(const fx *f, const char *name, const char *auth, char *out, size_t len)
{
    json_t *j = post(f, "ListLevels", "{}", auth, 200);
    json_t *levels = json_object_get(j, "levels"), *l;
    size_t i;
    out[0] = '\0';
    json_array_foreach(levels, i,
                       l) if (strcmp(json_string_value(json_object_get(l, "name")), name) == 0)
        snprintf(out, len, "%s", json_string_value(json_object_get(l, "path")));
    json_decref(j);
    cr_assert(out[0], "level %s listed", name);
}

/* A content "name" on bronze, added over HTTP: its cid. */
static long long add_content(const fx *f, const char *name, const char *auth)
{
    char dir[512], file[1024], body[256];
    level_dir(f, "bronze", auth, dir, sizeof(dir));
    snprintf(file, sizeof(file), "%s/%s", dir, name);
    cr_assert(tier_test_write_file(file, "x", 1), "%s", file);
    snprintf(body, sizeof(body), "{\"filename\": \"%s\"}", name);
    json_t *j = post(f, "AddContent", body, auth, 200);
    long long cid = atoll(jstr(j, "content.cid")); /* int64: a string */
    cr_assert_str_eq(jstr(j, "content.level"), "bronze");
    json_decref(j);
    return cid;
}

Test(http, every_reply_type_round_trips, .timeout = 120)
{
    fx f;
    resp r;
    char body[512];
    setup(&f, NULL);

    http(&f, "GET", "/v1/Health", NULL, 0, NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"status\":\"SERVING\"") != NULL, "%s", r.body);

    long long cid = add_content(&f, "a.mp4", NULL);
    cr_assert_eq(cid, 1);

    /* camelCase and proto names, numbers and strings for int64 */
    json_t *j =
        post(&f, "ReportViews", "{\"reports\": [{\"cid\": \"1\", \"count\": 1500}]}", NULL, 200);
    cr_assert_str_eq(jstr(j, "results.0.code"), "OK");
    cr_assert_str_eq(jstr(j, "results.0.target"), "silver");
    cr_assert_str_eq(jstr(j, "results.0.dbLevel"), "bronze");
    cr_assert_str_eq(jstr(j, "results.0.status"), "update");
    cr_assert_str_eq(jstr(j, "results.0.count"), "1500");
    cr_assert_str_eq(jstr(j, "results.0.workerId"), "", "defaults are emitted");
    json_decref(j);

    j = post(&f, "GetContent", "{\"cid\": 1}", NULL, 200);
    cr_assert_str_eq(jstr(j, "content.filename"), "a.mp4");
    cr_assert_str_eq(jstr(j, "job.status"), "update");
    json_decref(j);
    j = post(&f, "GetContent", "{\"cid\": 2}", NULL, 404);
    cr_assert_eq(json_integer_value(json_object_get(j, "code")), 5);
    cr_assert_str_eq(jstr(j, "status"), "NOT_FOUND");
    json_decref(j);

    /* PostComment defers its reply to a group commit. */
    j = post(&f, "PostComment",
             "{\"service\": \"news\", \"cid\": 1, \"author\": \"kim\", \"body\": \"\xec\x95\x88\"}",
             NULL, 200);
    cr_assert(atoll(jstr(j, "id")) > 0);
    json_decref(j);
    j = post(&f, "LatestComments", "{\"cid\": \"1\"}", NULL, 200);
    cr_assert_str_eq(jstr(j, "comments.0.body"), "\xec\x95\x88");
    cr_assert_str_eq(jstr(j, "comments.0.author"), "kim");
    json_decref(j);

    long long now = tier_now_ms() / 60000 * 60000;
    snprintf(body, sizeof(body), "{\"from_ms\": %lld, \"toMs\": \"%lld\", \"order\": \"INCREASE\"}",
             now - 3600000, now + 60000);
    j = post(&f, "TopContents", body, NULL, 200);
    cr_assert_str_eq(jstr(j, "rows.0.cid"), "1");
    cr_assert_str_eq(jstr(j, "rows.0.created"), "1");
    json_decref(j);

    j = post(&f, "ClaimJob", "{\"workerId\": \"w1\", \"cids\": [\"1\"]}", NULL, 200);
    cr_assert_str_eq(jstr(j, "results.0.code"), "OK");
    cr_assert_str_eq(jstr(j, "results.0.job.status"), "claimed");
    json_decref(j);
    teardown(&f);
}

Test(http, errors_are_json_with_paths, .timeout = 120)
{
    fx f;
    resp r;
    setup(&f, NULL);

    json_t *j =
        post(&f, "ReportViews", "{\"reports\": [{\"cid\": 1}, {\"cid\": \"x\"}]}", NULL, 400);
    cr_assert_eq(json_integer_value(json_object_get(j, "code")), 3);
    cr_assert_str_eq(jstr(j, "status"), "INVALID_ARGUMENT");
    cr_assert(strstr(jstr(j, "message"), "reports[1].cid: expected an integer"), "%s",
              jstr(j, "message"));
    json_decref(j);
    j = post(&f, "GetContent", "{\"cid\": 1, \"nope\": 2}", NULL, 400);
    cr_assert(strstr(jstr(j, "message"), "nope: unknown field"), "%s", jstr(j, "message"));
    json_decref(j);
    j = post(&f, "GetContent", "{\"cid\": \"9223372036854775808\"}", NULL, 400);
    cr_assert(strstr(jstr(j, "message"), "cid: out of range"), "%s", jstr(j, "message"));
    json_decref(j);
    j = post(&f, "GetContent", "{\"cid\": 1.5}", NULL, 400);
    json_decref(j);
    j = post(&f, "GetContent", "{\"cid\": 1, \"cid\": 2}", NULL, 400); /* duplicate key */
    json_decref(j);
    j = post(&f, "GetContent", "[1]", NULL, 400);
    json_decref(j);
    j = post(&f, "GetContent", "{\"cid\": ", NULL, 400);
    cr_assert(strstr(jstr(j, "message"), "invalid JSON"), "%s", jstr(j, "message"));
    json_decref(j);
    j = post(&f, "TopContents", "{\"order\": \"SIDEWAYS\"}", NULL, 400);
    cr_assert(strstr(jstr(j, "message"), "order: not a value of tier.Order"), "%s",
              jstr(j, "message"));
    json_decref(j);
    /* A NUL in a string never reaches the method. */
    j = post(&f, "AddContent", "{\"filename\": \"a\\u0000b\"}", NULL, 400);
    json_decref(j);
    /* The method's own caps apply after the translation. */
    j = post(&f, "TopContents", "{\"fromMs\": 60000, \"toMs\": 120000, \"limit\": 5000}", NULL,
             400);
    json_decref(j);

    j = post(&f, "NoSuchMethod", "{}", NULL, 404);
    json_decref(j);
    j = post(&f, "..%2fHealth", "{}", NULL, 404);
    json_decref(j);
    http(&f, "GET", "/v1/ListLevels", NULL, 0, NULL, &r);
    cr_assert_eq(r.status, 405, "%s", r.body);
    http(&f, "GET", "/nothing/here", NULL, 0, NULL, &r);
    cr_assert_eq(r.status, 404);

    /* Over the 4 MiB body cap: 413 before a byte of it is read. */
    size_t big = (4u << 20) + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    http(&f, "POST", "/v1/ReportViews", huge, big, NULL, &r);
    cr_assert_eq(r.status, 413, "%ld %s", r.status, r.body);
    /* Just under it: read (1 MiB of spaces is valid JSON around {}). */
    memcpy(huge, "{}", 2);
    http(&f, "POST", "/v1/ListLevels", huge, 1u << 20, NULL, &r);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    free(huge);
    teardown(&f);
}

Test(http, seed_endpoints_answer_as_the_seed, .timeout = 120)
{
    fx f;
    resp r;
    char form[] = "cid=1&count=1500";
    setup(&f, NULL);
    add_content(&f, "g.mp4", NULL);

    http(&f, "POST", "/post_sentence", form, strlen(form), NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.body, "{\"cid\": \"1\", \"count\": \"1500\", \"target\": \"silver\", "
                             "\"db_level\": \"bronze\", \"filename\": \"g.mp4\", "
                             "\"worker_id\": null, \"status\": \"update\"}");
    /* Not moved yet: the seed's answer. */
    http(&f, "POST", "/update_sentence", "cid=1", 5, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "check your status again");

    /* A worker claims it and moves the file; update_sentence commits. */
    json_t *j = post(&f, "ClaimJob", "{\"worker_id\": \"w1\", \"cids\": [1]}", NULL, 200);
    char src[1024], dst[1024];
    snprintf(src, sizeof(src), "%s/g.mp4", jstr(j, "results.0.job.srcDir"));
    snprintf(dst, sizeof(dst), "%s/g.mp4", jstr(j, "results.0.job.dstDir"));
    json_decref(j);
    cr_assert_eq(rename(src, dst), 0, "%s -> %s", src, dst);
    http(&f, "POST", "/post_sentence", form, strlen(form), NULL, &r);
    cr_assert(strstr(r.body, "\"worker_id\": \"w1\", \"status\": \"claimed\"}"), "%s", r.body);
    http(&f, "POST", "/update_sentence", "cid=1", 5, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "1");
    cr_assert_str_eq(r.ctype, "text/html; charset=utf-8");
    j = post(&f, "GetContent", "{\"cid\": 1}", NULL, 200);
    cr_assert_str_eq(jstr(j, "content.level"), "silver");
    json_decref(j);
    http(&f, "POST", "/post_sentence", form, strlen(form), NULL, &r);
    cr_assert(strstr(r.body, "\"db_level\": \"silver\", \"filename\": \"g.mp4\", \"worker_id\": "
                             "null, \"status\": \"done\"}"),
              "%s", r.body);

    /* Unknown content, bad forms. */
    http(&f, "POST", "/update_sentence", "cid=8", 5, NULL, &r);
    cr_assert_str_eq(r.body, "check your status again");
    http(&f, "POST", "/post_sentence", "cid=8&count=1", 13, NULL, &r);
    cr_assert_eq(r.status, 404, "%s", r.body);
    http(&f, "POST", "/post_sentence", "cid=1", 5, NULL, &r);
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert(strstr(r.body, "count"), "%s", r.body);
    http(&f, "POST", "/post_sentence", "cid=1&count=%zz", 15, NULL, &r);
    cr_assert_eq(r.status, 400, "%s", r.body);
    http(&f, "POST", "/post_sentence", "cid=99999999999999999999&count=1", 32, NULL, &r);
    cr_assert_eq(r.status, 400, "%s", r.body);
    teardown(&f);
}

/* ---- access control: tokens as services.sh makes them (see test_auth.c) */

enum { NONE, UNKNOWN, ADMIN, WORKER, CLIENT, NCALLERS };

static void make_token(const char *dir, const char *name, const char *roles, FILE *tokens,
                       char *tok)
{
    unsigned char raw[24];
    char cmd[256], hash[256];
    cr_assert_eq(getrandom(raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
    strcpy(tok, "tier_");
    for (size_t i = 0; i < sizeof(raw); i++)
        sprintf(tok + strlen(tok), "%02x", raw[i]);
    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | b2sum -l 256 | cut -d' ' -f1", tok);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(tier_test_run(argv, NULL, hash, sizeof(hash), 10000), 0, "%s", hash);
    hash[strcspn(hash, "\n")] = '\0';
    fprintf(tokens, "%s %s %s\n", name, roles, hash);
    (void)dir;
}

Test(http, auth_answers_as_the_role_matrix, .timeout = 120)
{
    fx f;
    resp r;
    char tok[NCALLERS][80] = {"", "tier_not_a_token_anyone_has"}, auth[NCALLERS][128];
    char *dir = tier_test_tmpdir(), tokens[512];
    snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
    FILE *t = fopen(tokens, "w");
    cr_assert_not_null(t);
    make_token(dir, "ops", "admin", t, tok[ADMIN]);
    make_token(dir, "mover", "worker", t, tok[WORKER]);
    make_token(dir, "app", "client", t, tok[CLIENT]);
    fclose(t);
    for (int i = UNKNOWN; i < NCALLERS; i++)
        snprintf(auth[i], sizeof(auth[i]), "Bearer %s", tok[i]);
    setup(&f, tokens);

    /* method x caller: the HTTP status (the rpc matrix of test_auth). */
    static const struct {
        const char *method, *body;
        long want[NCALLERS];
    } matrix[] = {
        {"ListLevels", "{}", {401, 401, 200, 403, 200}},
        {"AddContent", "{\"filename\": \"none.mp4\"}", {401, 401, 400, 403, 403}},
        {"ClaimJob", "{\"workerId\": \"w\", \"cids\": [5]}", {401, 401, 403, 200, 403}},
        {"GetJob", "{\"cid\": 5}", {401, 401, 404, 404, 404}},
        {"Health", "{}", {200, 200, 200, 200, 200}},
    };
    for (size_t m = 0; m < sizeof(matrix) / sizeof(matrix[0]); m++)
        for (int who = NONE; who < NCALLERS; who++) {
            json_t *j = post(&f, matrix[m].method, matrix[m].body, who == NONE ? NULL : auth[who],
                             matrix[m].want[who]);
            if (matrix[m].want[who] == 401 || matrix[m].want[who] == 403)
                cr_assert_str_eq(jstr(j, "status"), matrix[m].want[who] == 401
                                                        ? "UNAUTHENTICATED"
                                                        : "PERMISSION_DENIED");
            json_decref(j);
        }
    /* Not a bearer token at all. */
    json_t *j = post(&f, "ListLevels", "{}", "Basic dXNlcjpwYXNz", 401);
    json_decref(j);
    /* The seed's endpoints: a token like everything else. */
    http(&f, "POST", "/post_sentence", "cid=1&count=1", 13, NULL, &r);
    cr_assert_eq(r.status, 401, "%s", r.body);
    http(&f, "POST", "/post_sentence", "cid=1&count=1", 13, auth[CLIENT], &r);
    cr_assert_eq(r.status, 404, "passes access, no such content: %s", r.body);
    http(&f, "POST", "/update_sentence", "cid=1", 5, NULL, &r);
    cr_assert_eq(r.status, 401, "%s", r.body);
    /* The seed's worker endpoint: a worker token is enough. */
    http(&f, "POST", "/update_sentence", "cid=1", 5, auth[WORKER], &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.body, "check your status again");
    /* Without a claimed job it only reads, which a client may too; the
     * commit itself (CompleteJob) is the worker's: see seed_endpoints. */
    http(&f, "POST", "/update_sentence", "cid=1", 5, auth[CLIENT], &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    teardown(&f);
    tier_test_rmtree(dir);
    free(dir);
}

/* ---- the JSON mapping itself, on messages no tierd reply carries */

Test(http, json_mapping_edges)
{
    uint8_t buf[256], *pb;
    size_t len, pblen;
    char *text, err[256];

    /* bytes: base64 out, either alphabet in */
    Tier__Rpc__Metadata md = TIER__RPC__METADATA__INIT;
    md.key = "k";
    md.value = (ProtobufCBinaryData){2, (uint8_t *)"\xfb\xff"};
    len = tier__rpc__metadata__pack(&md, buf);
    cr_assert_eq(tier_rpc_json_from_pb(&tier__rpc__metadata__descriptor, buf, len, &text, &len, err,
                                       sizeof(err)),
                 0, "%s", err);
    cr_assert_str_eq(text, "{\"key\":\"k\",\"value\":\"+/8=\"}");
    free(text);
    const char *in[] = {"{\"value\": \"+/8=\"}", "{\"value\": \"+/8\"}", "{\"value\": \"-_8\"}"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tier_rpc_json_to_pb(&tier__rpc__metadata__descriptor, in[i], strlen(in[i]),
                                         NULL, &pb, &pblen, err, sizeof(err)),
                     0, "%s: %s", in[i], err);
        Tier__Rpc__Metadata *back = tier__rpc__metadata__unpack(NULL, pblen, pb);
        cr_assert(back->value.len == 2 && back->value.data[0] == 0xfb &&
                      back->value.data[1] == 0xff,
                  "%s", in[i]);
        tier__rpc__metadata__free_unpacked(back, NULL);
        free(pb);
    }

    /* invalid UTF-8 from the server never makes invalid JSON */
    Tier__Comment c = TIER__COMMENT__INIT;
    c.body = "a\xff\xc0\xafz";
    len = tier__comment__pack(&c, buf);
    cr_assert_eq(
        tier_rpc_json_from_pb(&tier__comment__descriptor, buf, len, &text, &len, err, sizeof(err)),
        0);
    cr_assert(strstr(text, "\"body\":\"a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\""), "%s", text);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    cr_assert_not_null(j, "valid JSON: %s", text);
    json_decref(j);
    free(text);

    /* uint64 extremes */
    const char *max = "{\"fence\": \"18446744073709551615\"}";
    cr_assert_eq(tier_rpc_json_to_pb(&tier__job__descriptor, max, strlen(max), NULL, &pb, &pblen,
                                     err, sizeof(err)),
                 0, "%s", err);
    Tier__Job *job = tier__job__unpack(NULL, pblen, pb);
    cr_assert_eq(job->fence, UINT64_MAX);
    tier__job__free_unpacked(job, NULL);
    cr_assert_eq(
        tier_rpc_json_from_pb(&tier__job__descriptor, pb, pblen, &text, &len, err, sizeof(err)), 0);
    cr_assert(strstr(text, "\"fence\":\"18446744073709551615\""), "%s", text);
    free(text);
    free(pb);
    const char *bad[] = {"{\"fence\": \"18446744073709551616\"}", "{\"fence\": -1}",
                         "{\"attempts\": 4294967296}", "{\"cid\": true}"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(tier_rpc_json_to_pb(&tier__job__descriptor, bad[i], strlen(bad[i]), NULL, &pb,
                                         &pblen, err, sizeof(err)),
                     3, "%s", bad[i]);

    /* caps */
    tier_rpc_json_limits lim = {.max_array = 2};
    const char *three = "{\"reports\": [{}, {}, {}]}";
    cr_assert_eq(tier_rpc_json_to_pb(&tier__report_views_request__descriptor, three, strlen(three),
                                     &lim, &pb, &pblen, err, sizeof(err)),
                 3);
    cr_assert(strstr(err, "reports: at most 2 elements (got 3)"), "%s", err);
    lim = (tier_rpc_json_limits){.max_parse = 4096};
    char big[20000] = "{\"reports\": [";
    for (int i = 0; i < 1500; i++)
        strcat(big, "{},");
    strcat(big, "{}]}");
    cr_assert_eq(tier_rpc_json_to_pb(&tier__report_views_request__descriptor, big, strlen(big),
                                     &lim, &pb, &pblen, err, sizeof(err)),
                 3);
    cr_assert(strstr(err, "too large to parse"), "%s", err);
}

/* ------------------------------------------------------------- /metrics */

static void has_line(const char *text, const char *line)
{
    cr_assert(strstr(text, line) != NULL, "no \"%s\" in:\n%.6000s", line, text);
}

/* GET /metrics of tierd and of a worker with --http, after a call, a
 * failed call and a move: the counters say what happened. */
Test(http, metrics_of_tierd_and_a_worker, .timeout = 120)
{
    fx f;
    resp r;
    char body[256], wurl[128], wlog[600];
    setup(&f, NULL);
    long long cid = add_content(&f, "m.mp4", NULL);
    json_decref(post(&f, "ListLevels", "{}", NULL, 200));
    json_decref(post(&f, "GetContent", "{\"cid\": 999999}", NULL, 404));
    snprintf(body, sizeof(body), "{\"reports\": [{\"cid\": %lld, \"count\": 1500}]}", cid);
    json_decref(post(&f, "ReportViews", body, NULL, 200));

    snprintf(wurl, sizeof(wurl), "http://127.0.0.1:%d", tier_test_free_port());
    snprintf(wlog, sizeof(wlog), "%s/worker.log", f.dir);
    char *bin = tier_test_bin("tier-worker");
    char *argv[] = {bin,    "--tierd", f.td.listen, "--pull", f.td.push,
                    "--id", "mw",      "--http",    wurl,     NULL};
    pid_t w = tier_test_spawn(argv, NULL, wlog);
    free(bin);
    snprintf(body, sizeof(body), "{\"cid\": %lld}", cid);
    bool moved = false;
    for (int i = 0; i < 200 && !moved; i++) {
        json_t *j = post(&f, "GetContent", body, NULL, 200);
        moved = strcmp(jstr(j, "content.level"), "silver") == 0;
        json_decref(j);
        if (!moved)
            usleep(50 * 1000);
    }
    cr_assert(moved, "not moved");

    http(&f, "GET", "/metrics", NULL, 0, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strncmp(r.ctype, "text/plain; version=0.0.4", 25) == 0, "%s", r.ctype);
    has_line(r.body, "# TYPE tier_rpc_calls_total counter\n");
    has_line(r.body, "tier_rpc_calls_total{method=\"tier.Tier/ListLevels\",code=\"OK\"} ");
    has_line(r.body,
             "tier_rpc_calls_total{method=\"tier.Tier/GetContent\",code=\"NOT_FOUND\"} 1\n");
    has_line(r.body, "tier_rpc_calls_total{method=\"tier.Tier/ClaimJob\",code=\"OK\"} ");
    has_line(
        r.body,
        "tier_rpc_call_duration_seconds_bucket{method=\"tier.Tier/ReportViews\",le=\"+Inf\"} 1\n");
    has_line(r.body, "tier_moves_total{from=\"bronze\",to=\"silver\"} 1\n");
    has_line(r.body, "tier_jobs{state=\"update\"} 0\n");
    has_line(r.body, "tier_dependency_up{name=\"redis\"} 1\n");
    has_line(r.body, "tier_dependency_up{name=\"mysql\"} 1\n");
    has_line(r.body, "tier_batch_size_count{batcher=\"levels\"} ");
    has_line(r.body, "tier_workers_alive 1\n");
    has_line(r.body, "# TYPE tier_rank_index_bytes gauge\n");

    /* The worker's own. */
    fx wf = f;
    snprintf(wf.http, sizeof(wf.http), "%s", wurl);
    http(&wf, "GET", "/metrics", NULL, 0, NULL, &r);
    cr_assert_eq(r.status, 200);
    has_line(r.body, "tier_worker_moves_total{from=\"bronze\",to=\"silver\"} 1\n");
    has_line(r.body, "tier_worker_moved_bytes_total{from=\"bronze\",to=\"silver\"} 1\n");
    has_line(r.body, "tier_worker_moves_in_flight 0\n");
    kill(w, SIGTERM);
    cr_assert_eq(tier_test_wait(w, 20000), 0);
    teardown(&f);
}
