/*
 * test_dashboard.c -- the dashboard (docs/DASHBOARD.md) against a real
 * tierd with tokens and TLS, a real worker, and a real headless Chromium.
 *
 * The state: four contents on bronze (one of them moved to silver by the
 * worker, one whose file is gone so the worker fails its move for good),
 * view reports and comments.  Then:
 *   - GetStats (over HTTP, as the page calls it) counts the contents and,
 *     once the size pass ran, the bytes of each level; jobs by state; the
 *     hour's series hold the reports, the move and the comments;
 *   - a client token may read GetStats, a worker token may not;
 *   - GET / and /ui/<file> answer the embedded files, with their types and
 *     a strict Content-Security-Policy, without a token; anything else
 *     under /ui is 404;
 *   - tests/browser/dashboard.mjs (Playwright driving Debian's chromium)
 *     loads the page, compares every panel with the API, sees "admin token
 *     required" when a client clicks Retry, and has the admin's Retry run
 *     the failed move again.  Its screenshot is kept in the temp dir (set
 *     TIER_DASHBOARD_SHOT to keep it elsewhere).
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

#include "tier_testenv.h"
#include "tier_time.h"

enum { ADMIN, CLIENT, WORKER, NTOK };

typedef struct {
    char *dir;
    tier_test_mysql m;
    tier_test_tierd td;
    char http[128];
    char tok[NTOK][80], tokfile[NTOK][600];
    pid_t worker;
} fx;

typedef struct {
    long status;
    char body[1 << 17];
    size_t len;
    char ctype[128], csp[512];
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

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    resp *r = arg;
    size_t k = size * n;
    if (k > 25 && strncasecmp(p, "Content-Security-Policy:", 24) == 0)
        snprintf(r->csp, sizeof(r->csp), "%.*s", (int)(k - 25), p + 25);
    return k;
}

static void http(const fx *f, const char *verb, const char *path, const char *body,
                 const char *token, resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[512], hdr[200];
    char *ct = NULL;

    cr_assert_not_null(c);
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", f->http, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, verb);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L); /* "/ui/../x" reaches tierd as sent */
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (token != NULL && token[0] != '\0') {
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, hdr);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(c);
    cr_assert_eq(rc, CURLE_OK, "%s %s: %s", verb, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static json_t *post(const fx *f, const char *method, const char *json, const char *token, long want)
{
    static resp r;
    char path[128];
    json_error_t je;

    snprintf(path, sizeof(path), "/v1/%s", method);
    http(f, "POST", path, json, token, &r);
    cr_assert_eq(r.status, want, "%s %s: %ld %s", method, json, r.status, r.body);
    json_t *j = json_loads(r.body, 0, &je);
    cr_assert_not_null(j, "%s: not JSON: %s", method, r.body);
    return j;
}

/* An int64/uint64 field (a string in proto3 JSON) of object o. */
static long long i64(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_string(v), "%s: not a string", key);
    return atoll(json_string_value(v));
}

static const char *str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_string(v), "%s: not a string", key);
    return json_string_value(v);
}

/* A token as services.sh makes them: its BLAKE2b-256 hash in the file. */
static void make_token(fx *f, int who, const char *name, const char *roles, FILE *tokens)
{
    unsigned char raw[24];
    char cmd[256], hash[256];
    cr_assert_eq(getrandom(raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
    strcpy(f->tok[who], "tier_");
    for (size_t i = 0; i < sizeof(raw); i++)
        sprintf(f->tok[who] + strlen(f->tok[who]), "%02x", raw[i]);
    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | b2sum -l 256 | cut -d' ' -f1", f->tok[who]);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(tier_test_run(argv, NULL, hash, sizeof(hash), 10000), 0, "%s", hash);
    hash[strcspn(hash, "\n")] = '\0';
    fprintf(tokens, "%s %s %s\n", name, roles, hash);
    snprintf(f->tokfile[who], sizeof(f->tokfile[who]), "%s/%s.token", f->dir, name);
    cr_assert(tier_test_write_file(f->tokfile[who], f->tok[who], strlen(f->tok[who])));
    chmod(f->tokfile[who], 0600);
}

/* tierd answers Health on its rpc port before its HTTP port listens
 * (server.c opens HTTP last): wait for the HTTP port too. */
static void wait_http(const fx *f)
{
    char url[256];
    CURLcode rc = CURLE_COULDNT_CONNECT;
    snprintf(url, sizeof(url), "%s/v1/Health", f->http);
    for (int i = 0; i < 400 && rc != CURLE_OK; i++) {
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
        if ((rc = curl_easy_perform(c)) != CURLE_OK)
            usleep(50 * 1000);
        curl_easy_cleanup(c);
    }
    cr_assert_eq(rc, CURLE_OK, "HTTP port %s: %s", f->http, curl_easy_strerror(rc));
}

/* secure: tokens and TLS as deployed; else --no-auth (tokens ""). */
static void setup(fx *f, bool secure)
{
    char tokens[600];

    memset(f, 0, sizeof(*f));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    f->dir = tier_test_tmpdir();
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->dir);
    tier_test_tierd_init(&f->td, f->dir, f->m.db, NULL);
    tier_test_tierd_setenv_services(&f->td, &f->m, -1, -1);
    snprintf(f->http, sizeof(f->http), "http://127.0.0.1:%d", tier_test_free_port());
    char *extra[] = {"--http", f->http, NULL};
    if (!secure) {
        tier_test_tierd_setenv(&f->td, "TIER_NO_AUTH=1");
        tier_test_tierd_start(&f->td, extra);
        wait_http(f);
        return;
    }
    snprintf(tokens, sizeof(tokens), "%s/tokens", f->dir);
    FILE *t = fopen(tokens, "w");
    cr_assert_not_null(t);
    make_token(f, ADMIN, "ops", "admin", t);
    make_token(f, CLIENT, "app", "client", t);
    make_token(f, WORKER, "mover", "worker", t);
    fclose(t);
    tier_test_tierd_secure(&f->td, tokens);
    tier_test_tierd_start(&f->td, extra);
    wait_http(f);
}

static void teardown(fx *f)
{
    if (f->worker > 0) {
        kill(f->worker, SIGTERM);
        tier_test_wait(f->worker, 20000);
    }
    if (f->td.pid > 0)
        cr_assert_eq(tier_test_tierd_stop(&f->td, SIGTERM, 20000), 0, "tierd exits cleanly");
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->dir);
    free(f->dir);
}

/* The directory of a level, from ListLevels. */
static void level_dir(const fx *f, const char *name, char *out, size_t len)
{
    json_t *j = post(f, "ListLevels", "{}", f->tok[CLIENT], 200), *l;
    size_t i;
    out[0] = '\0';
    json_array_foreach(json_object_get(j, "levels"), i, l)
    {
        if (strcmp(str(l, "name"), name) == 0)
            snprintf(out, len, "%s", str(l, "path"));
    }
    json_decref(j);
    cr_assert(out[0], "level %s listed", name);
}

/* A content on bronze whose file has `size` bytes: its cid. */
static long long add_content(const fx *f, const char *name, size_t size)
{
    char dir[512], file[1024], body[256];
    char *bytes = malloc(size + 1);
    memset(bytes, 'x', size);
    level_dir(f, "bronze", dir, sizeof(dir));
    snprintf(file, sizeof(file), "%s/%s", dir, name);
    cr_assert(tier_test_write_file(file, bytes, size), "%s", file);
    free(bytes);
    snprintf(body, sizeof(body), "{\"filename\": \"%s\"}", name);
    json_t *j = post(f, "AddContent", body, f->tok[ADMIN], 200);
    long long cid = i64(json_object_get(j, "content"), "cid");
    json_decref(j);
    return cid;
}

static void report(const fx *f, long long cid, long long count)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"reports\": [{\"cid\": %lld, \"count\": %lld}]}", cid, count);
    json_decref(post(f, "ReportViews", body, f->tok[CLIENT], 200));
}

static const char *level_of(const fx *f, long long cid, char *out, size_t len)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"cid\": %lld}", cid);
    json_t *j = post(f, "GetContent", body, f->tok[CLIENT], 200);
    snprintf(out, len, "%s", str(json_object_get(j, "content"), "level"));
    json_decref(j);
    return out;
}

static long long failed_jobs(const fx *f)
{
    json_t *j = post(f, "ListJobs", "{\"status\": \"failed\"}", f->tok[CLIENT], 200);
    long long n = (long long)json_array_size(json_object_get(j, "jobs"));
    json_decref(j);
    return n;
}

static long long sum(json_t *a)
{
    long long s = 0;
    json_t *v;
    size_t i;
    json_array_foreach(a, i, v) s += atoll(json_string_value(v));
    return s;
}

/* The level named `name` of a GetStats reply. */
static json_t *stats_level(json_t *st, const char *name)
{
    json_t *l;
    size_t i;
    json_array_foreach(json_object_get(st, "levels"), i,
                       l) if (strcmp(str(l, "name"), name) == 0) return l;
    cr_assert_fail("no level %s in GetStats", name);
    return NULL;
}

static long long job_count(json_t *st, const char *state)
{
    json_t *j;
    size_t i;
    json_array_foreach(json_object_get(st, "jobs"), i,
                       j) if (strcmp(str(j, "state"), state) == 0) return i64(j, "count");
    cr_assert_fail("no state %s in GetStats", state);
    return -1;
}

/* npm ci when the driver's node_modules are missing (a fresh clone). */
static void browser_deps(void)
{
    char dir[1024], mods[1100], out[8192];
    struct stat st;

    snprintf(dir, sizeof(dir), "%s/tests/browser", TIER_SOURCE_DIR);
    snprintf(mods, sizeof(mods), "%s/node_modules/playwright-core", dir);
    if (stat(mods, &st) == 0)
        return;
    char *argv[] = {"/usr/bin/npm", "ci",         "--prefix", dir, "--no-audit",
                    "--no-fund",    "--loglevel", "error",    NULL};
    int rc = tier_test_run(argv, NULL, out, sizeof(out), 300000);
    cr_assert_eq(rc, 0, "npm ci --prefix %s: %d\n%s", dir, rc, out);
}

static void scenario(bool secure)
{
    fx f;
    resp r;
    char lvl[64], wlog[700];
    setup(&f, secure);

    /* ---- the static files: no token needed, strict CSP */
    http(&f, "GET", "/", NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.ctype, "text/html; charset=utf-8");
    cr_assert(strstr(r.body, "/ui/dashboard.js") != NULL);
    cr_assert(strstr(r.body, "<script>") == NULL, "no inline script");
    cr_assert(strstr(r.csp, "default-src 'none'") && strstr(r.csp, "script-src 'self'"), "CSP: %s",
              r.csp);
    http(&f, "GET", "/ui/dashboard.js", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.ctype, "text/javascript; charset=utf-8");
    http(&f, "GET", "/ui/uPlot.min.css", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.ctype, "text/css; charset=utf-8");
    http(&f, "GET", "/ui/nothing.js", NULL, NULL, &r);
    cr_assert_eq(r.status, 404);
    http(&f, "GET", "/ui/../v1/Health", NULL, NULL, &r);
    cr_assert_neq(r.status, 200, "no way out of /ui");
    if (secure) {
        http(&f, "POST", "/v1/GetStats", "{}", NULL, &r);
        cr_assert_eq(r.status, 401, "data needs a token: %s", r.body);
        http(&f, "POST", "/v1/GetStats", "{}", f.tok[WORKER], &r);
        cr_assert_eq(r.status, 403, "a worker may not read: %s", r.body);
    }

    /* ---- state: a.mp4 1000 B, b.mp4 2000 B stay on bronze; c.mp4
     * 3000 B moves to silver; gone.mp4's file is removed, so its move
     * fails for good. */
    long long a = add_content(&f, "a.mp4", 1000), b = add_content(&f, "b.mp4", 2000);
    long long c = add_content(&f, "c.mp4", 3000), gone = add_content(&f, "gone.mp4", 10);
    char dir[512], path[1024];
    level_dir(&f, "bronze", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/gone.mp4", dir);
    cr_assert_eq(unlink(path), 0);

    snprintf(wlog, sizeof(wlog), "%s/worker.log", f.dir);
    char *bin = tier_test_bin("tier-worker");
    /* Without auth the worker stops after --id: no token, plain tcp. */
    char *wargv[] = {bin,
                     "--tierd",
                     f.td.listen,
                     "--pull",
                     f.td.push,
                     "--id",
                     "w1",
                     secure ? "--token-file" : NULL,
                     f.tokfile[WORKER],
                     "--tls-ca",
                     f.td.ca,
                     "--tls-server-name",
                     "localhost",
                     NULL};
    char *wenv[] = {"TIER_TOKEN=", "TIER_TOKEN_FILE=", NULL};
    f.worker = tier_test_spawn(wargv, wenv, wlog);
    free(bin);
    cr_assert_gt(f.worker, 0);

    report(&f, a, 10);
    report(&f, b, 20);
    report(&f, c, 1500);
    report(&f, gone, 1500);
    bool settled = false;
    for (int i = 0; i < 400 && !settled; i++) {
        settled = strcmp(level_of(&f, c, lvl, sizeof(lvl)), "silver") == 0 && failed_jobs(&f) == 1;
        if (!settled)
            usleep(50 * 1000);
    }
    cr_assert(settled, "c moved and gone failed (c on %s, %lld failed)", lvl, failed_jobs(&f));

    const char *posts[][2] = {{"news", "first!"}, {"news", "<b>not bold</b>"}, {"blog", "hello"}};
    for (size_t i = 0; i < 3; i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"service\": \"%s\", \"cid\": %lld, \"author\": \"alice\", \"body\": \"%s\"}",
                 posts[i][0], a, posts[i][1]);
        json_decref(post(&f, "PostComment", body, f.tok[CLIENT], 200));
    }
    char body[256];
    snprintf(body, sizeof(body),
             "{\"service\": \"news\", \"cid\": %lld, \"author\": \"bob\", \"body\": \"hi\"}", b);
    json_decref(post(&f, "PostComment", body, f.tok[CLIENT], 200));

    /* ---- GetStats: counts now, bytes once a pass saw the move (passes
     * run every 10 s, so within a few) */
    json_t *st = NULL;
    bool sized = false;
    for (int i = 0; i < 300 && !sized; i++) {
        json_decref(st);
        st = post(&f, "GetStats", "{}", f.tok[CLIENT], 200);
        sized = i64(stats_level(st, "bronze"), "bytes") == 3000 &&
                i64(stats_level(st, "silver"), "bytes") == 3000;
        if (!sized)
            usleep(100 * 1000);
    }
    cr_assert(sized, "size pass: %s", json_dumps(st, 0));
    json_t *bronze = stats_level(st, "bronze"), *silver = stats_level(st, "silver");
    cr_assert_eq(i64(bronze, "contents"), 3);
    cr_assert_eq(i64(bronze, "files"), 2);
    cr_assert_eq(i64(bronze, "missing"), 1, "gone.mp4");
    cr_assert_eq(i64(silver, "contents"), 1);
    cr_assert_eq(i64(silver, "files"), 1);
    cr_assert_eq(i64(stats_level(st, "gold"), "contents"), 0);
    cr_assert_gt(i64(st, "bytesAsOfMs"), 0);
    cr_assert_eq(job_count(st, "failed"), 1);
    cr_assert_eq(job_count(st, "update"), 0);
    cr_assert_eq(json_integer_value(json_object_get(st, "workersAlive")), 1);
    cr_assert_eq(json_integer_value(json_object_get(st, "stepMs")), 10000);
    cr_assert_eq(json_array_size(json_object_get(st, "moves")), 360);
    cr_assert_eq(sum(json_object_get(st, "reports")), 4);
    cr_assert_eq(sum(json_object_get(st, "moves")), 1);
    cr_assert_eq(sum(json_object_get(st, "comments")), 4);
    long long start = i64(st, "seriesStartMs"), now = i64(st, "nowMs");
    cr_assert(start <= now - 3590000 && start > now - 3600000, "an hour: %lld %lld", start, now);
    json_decref(st);
    json_decref(post(&f, "GetStats", "{}", f.tok[ADMIN], 200));

    /* ---- the page, in Chromium */
    browser_deps();
    char shot[1024], script[1024], out[1 << 15];
    const char *keep = getenv("TIER_DASHBOARD_SHOT");
    snprintf(shot, sizeof(shot), "%s", keep && *keep ? keep : "");
    if (shot[0] == '\0')
        snprintf(shot, sizeof(shot), "%s/dashboard.png", f.dir);
    snprintf(script, sizeof(script), "%s/tests/browser/dashboard.mjs", TIER_SOURCE_DIR);
    char *nargv[] = {"/usr/bin/node", script, f.http, f.tok[ADMIN], shot, f.tok[CLIENT], NULL};
    int rc = tier_test_run(nargv, NULL, out, sizeof(out), 240000);
    char *log = tier_test_slurp(wlog, NULL);
    cr_assert_eq(rc, 0, "dashboard.mjs: %d\n%s\nworker log:\n%s", rc, out, log ? log : "");
    free(log);
    struct stat ss;
    cr_assert(stat(shot, &ss) == 0 && ss.st_size > 10000, "screenshot %s", shot);
    cr_assert_str_eq(level_of(&f, gone, lvl, sizeof(lvl)), "silver", "the retried move ran");

    teardown(&f);
}

/* Tokens: a client reads, sees "admin token required" on Retry; the admin
 * retries. */
Test(dashboard, with_tokens, .timeout = 420)
{
    scenario(true);
}

/* A --no-auth tierd: the page works without a token. */
Test(dashboard, without_auth, .timeout = 420)
{
    scenario(false);
}
