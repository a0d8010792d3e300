/*
 * test_auth.c -- who may call what (docs/SECURITY.md), against a real
 * tierd over tls+tcp:// with tokens, as deployed:
 *
 *   - the role matrix: every method of proto/tier.proto's service x no
 *     token, an unknown token, admin, worker, client;
 *   - TLS: plain tcp, an unknown CA and a wrong server name get nowhere;
 *   - a worker holding only the worker token moves a file over TLS;
 *   - SIGHUP re-reads the tokens file (revocation), a broken file keeps the
 *     old table;
 *   - hostile envelopes: another caller replaying someone's (client id,
 *     request id), malformed authorization, too much metadata;
 *   - start-up refuses every unsafe or ambiguous access setting;
 *   - token files: tierctl refuses one others can read.
 *
 * Tokens are made here as services.sh makes them, and hashed with
 * `b2sum -l 256`, the recipe docs/SECURITY.md gives operators: that tierd
 * accepts them shows the recipe and tierd's libsodium hash agree.
 */
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpc.pb-c.h"
#include "tier_client.h"
#include "tier_methods.h"
#include "tier_rpc_net.h"
#include "tier_testenv.h"
#include "tier_time.h"

enum { NONE, UNKNOWN, ADMIN, WORKER, CLIENT, NCALLERS };
static const char *const CALLER_NAMES[NCALLERS] = {"none", "unknown", "admin", "worker", "client"};

typedef struct {
    char *dir;
    tier_test_mysql m;
    tier_test_tierd td;
    char tokens[512];       /* the tokens file */
    char tok[NCALLERS][64]; /* tok[NONE] unused */
    char tokfile[NCALLERS][512];
} fx;

static void sh(const char *cmd, char *out, size_t len)
{
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    int st = tier_test_run(argv, NULL, out, len, 10000);
    cr_assert_eq(st, 0, "%s: %s", cmd, out);
}

/* A token as services.sh makes one, its line hashed with b2sum. */
static void make_token(fx *f, int who, const char *name, const char *roles, FILE *tokens)
{
    unsigned char raw[24];
    char cmd[256], hash[256];

    cr_assert_eq(getrandom(raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
    strcpy(f->tok[who], "tier_");
    for (size_t i = 0; i < sizeof(raw); i++)
        sprintf(f->tok[who] + strlen(f->tok[who]), "%02x", raw[i]);
    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | b2sum -l 256 | cut -d' ' -f1", f->tok[who]);
    sh(cmd, hash, sizeof(hash));
    hash[strcspn(hash, "\n")] = '\0';
    fprintf(tokens, "%s %s %s\n", name, roles, hash);
    snprintf(f->tokfile[who], sizeof(f->tokfile[who]), "%s/%s.token", f->dir, name);
    cr_assert(tier_test_write_file(f->tokfile[who], f->tok[who], strlen(f->tok[who])));
    chmod(f->tokfile[who], 0600);
}

static void write_tokens(fx *f, bool with_client)
{
    FILE *t = fopen(f->tokens, "w");
    cr_assert_not_null(t);
    fprintf(t, "# name roles hash\n");
    make_token(f, ADMIN, "ops", "admin", t);
    make_token(f, WORKER, "mover", "worker", t);
    if (with_client)
        make_token(f, CLIENT, "app", "client", t);
    fclose(t);
    strcpy(f->tok[UNKNOWN], "tier_not_a_token_anyone_has");
}

static void setup(fx *f, bool start)
{
    memset(f, 0, sizeof(*f));
    f->dir = tier_test_tmpdir();
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->dir);
    snprintf(f->tokens, sizeof(f->tokens), "%s/tokens", f->dir);
    write_tokens(f, true);
    tier_test_tierd_init(&f->td, f->dir, f->m.db, NULL);
    tier_test_tierd_setenv_services(&f->td, &f->m, -1, -1);
    tier_test_tierd_secure(&f->td, f->tokens);
    if (start)
        tier_test_tierd_start(&f->td, NULL);
}

static void teardown(fx *f)
{
    if (f->td.pid > 0)
        tier_test_tierd_stop(&f->td, SIGTERM, 10000);
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->dir);
    free(f->dir);
}

static tier_rpc_client *rpc_as(fx *f, int who)
{
    tier_rpc_client *c;
    tier_client_opts o = tier_test_tierd_opts(&f->td, who == NONE ? NULL : f->tok[who]);
    tier_rpc_client_opts ro = {.bearer_token = o.token,
                               .timeout_ms = 5000,
                               .tls = {.ca_file = o.tls_ca_file, .server_name = o.tls_server_name}};
    tier_rpc_error err;
    cr_assert_eq(tier_rpc_client_open(&c, f->td.listen, &ro, &err), TIER_OK, "%s", err.message);
    return c;
}

/* ------------------------------------------------------------ role matrix */

#define A (1u << ADMIN)
#define W (1u << WORKER)
#define C (1u << CLIENT)
#define ALL (A | W | C | (1u << NONE) | (1u << UNKNOWN))

/* Written from docs/SECURITY.md, not from tierd/auth.c. */
static const struct {
    const char *method;
    unsigned allowed;
} MATRIX[] = {
    {"tier.rpc.Health/Check", ALL},
    {TIER_M_ADD_CONTENT, A},
    {TIER_M_ADD_CONTENTS, A},
    {TIER_M_SET_LEVELS, A},
    {TIER_M_RETRY_JOB, A},
    {TIER_M_CANCEL_JOB, A},
    {TIER_M_SCRUB, A},
    {TIER_M_CLAIM_JOB, W},
    {TIER_M_RENEW_LEASE, W},
    {TIER_M_COMPLETE_JOB, W},
    {TIER_M_FAIL_JOB, W},
    {TIER_M_REPORT_VIEWS, A | C},
    {TIER_M_GET_CONTENT, A | C},
    {TIER_M_GET_HISTORY, A | C},
    {TIER_M_LIST_LEVELS, A | C},
    {TIER_M_LIST_JOBS, A | C},
    {TIER_M_GET_JOB, A | C | W},
    {TIER_M_POST_COMMENT, A | C},
    {TIER_M_POST_COMMENTS, A | C},
    {TIER_M_EDIT_COMMENT, A | C},
    {TIER_M_DELETE_COMMENT, A | C},
    {TIER_M_DELETE_COMMENTS, A | C},
    {TIER_M_RESTORE_COMMENTS, A | C},
    {TIER_M_EDIT_COMMENTS, A | C},
    {TIER_M_DELETE_BY_AUTHOR, A | C},
    {TIER_M_RESTORE_COMMENT, A | C},
    {TIER_M_TOP_CONTENTS, A | C},
    {TIER_M_WATCH_TOP, A | C},
    {TIER_M_LATEST_COMMENTS, A | C},
    {TIER_M_HEARTBEAT, W},
    {TIER_M_LIST_WORKERS, A | C},
    {TIER_M_GET_STATS, A | C},
    {TIER_M_GET_POLICY, A | C},
    {TIER_M_SET_POLICY, A},
    {TIER_M_PLAN_MOVES, A | C},
    {TIER_M_MOVE_CONTENT, A},
    {TIER_M_TOPOLOGY, A | C | W},
};
#define NMATRIX (sizeof(MATRIX) / sizeof(MATRIX[0]))

/* Every `rpc X(` of proto/tier.proto's service is in MATRIX, with the roles
 * its comment there gives: a method added later cannot slip past this test,
 * and the contract in tier.proto is the one enforced. */
Test(auth, matrix_covers_every_method)
{
    char *proto = tier_test_slurp(TIER_SOURCE_DIR "/proto/tier.proto", NULL);
    size_t n = 0;

    cr_assert_not_null(proto);
    for (char *p = proto; (p = strstr(p, "\n  rpc ")) != NULL; p++) {
        char name[64], full[96];
        cr_assert_eq(sscanf(p + 7, "%63[A-Za-z]", name), 1);
        snprintf(full, sizeof(full), "%s%s",
                 strcmp(name, "Health") == 0 ? "tier.rpc.Health/" : "tier.Tier/",
                 strcmp(name, "Health") == 0 ? "Check" : name);
        /* The roles written after it in tier.proto: the same as here. */
        char *eol = strchr(p + 1, '\n'), *cmt = strstr(p + 1, "//");
        cr_assert(cmt != NULL && eol != NULL && cmt < eol, "%s: no roles comment", full);
        char line[128];
        snprintf(line, sizeof(line), "%.*s", (int)(eol - cmt), cmt);
        unsigned roles = (strstr(line, "admin") ? A : 0) | (strstr(line, "worker") ? W : 0) |
                         (strstr(line, "client") ? C : 0) | (strstr(line, "anyone") ? ALL : 0);
        bool found = false;
        for (size_t i = 0; i < NMATRIX; i++)
            if (strcmp(MATRIX[i].method, full) == 0) {
                found = true;
                cr_assert_eq(MATRIX[i].allowed, roles, "%s: tier.proto says \"%s\"", full, line);
            }
        cr_assert(found, "%s is not in the role matrix", full);
        n++;
    }
    cr_assert_eq(n, NMATRIX, "tier.proto has %zu methods, the matrix %zu", n, NMATRIX);
    free(proto);
}

Test(auth, role_matrix)
{
    fx f;
    setup(&f, true);
    for (int who = 0; who < NCALLERS; who++) {
        tier_rpc_client *c = rpc_as(&f, who);
        for (size_t i = 0; i < NMATRIX; i++) {
            void *out = NULL;
            size_t outlen = 0;
            tier_rpc_error err = {0};
            /* An empty payload is a valid (empty) request of every type:
             * what matters is whether the call gets past access control. */
            int rv = tier_rpc_call_raw(c, MATRIX[i].method, "", 0, &out, &outlen, 5000, &err);
            free(out);
            bool allowed = MATRIX[i].allowed & (1u << who);
            if (allowed)
                cr_assert(rv != TIER_UNAUTHENTICATED && rv != TIER_PERMISSION_DENIED &&
                              rv != TIER_UNAVAILABLE && rv != TIER_DEADLINE_EXCEEDED,
                          "%s as %s: %s %s", MATRIX[i].method, CALLER_NAMES[who],
                          tier_status_name(rv), err.message);
            else if (who == NONE || who == UNKNOWN)
                cr_assert_eq(rv, TIER_UNAUTHENTICATED, "%s as %s: %s %s", MATRIX[i].method,
                             CALLER_NAMES[who], tier_status_name(rv), err.message);
            else
                cr_assert_eq(rv, TIER_PERMISSION_DENIED, "%s as %s: %s %s", MATRIX[i].method,
                             CALLER_NAMES[who], tier_status_name(rv), err.message);
        }
        tier_rpc_client_close(c);
    }
    /* The log names callers, never their tokens. */
    char *log = tier_test_slurp(f.td.log, NULL);
    for (int who = ADMIN; who < NCALLERS; who++)
        cr_assert(log == NULL || strstr(log, f.tok[who]) == NULL, "a token in the log");
    free(log);
    teardown(&f);
}

/* ------------------------------------------------------------------- TLS */

static int health_with(const char *url, const char *ca, const char *name)
{
    tier_client *c;
    /* Long enough for a handshake on a loaded machine; the refusals take
     * the whole timeout (nng gives no reason, see SECURITY.md). */
    tier_client_opts o = {.tls_ca_file = ca, .tls_server_name = name, .timeout_ms = 5000};
    Tier__Rpc__HealthRequest hq = TIER__RPC__HEALTH_REQUEST__INIT;
    Tier__Rpc__HealthReply *hr = NULL;
    tier_error err;
    if (tier_client_open_opts(&c, url, &o, &err) != TIER_OK)
        return -1;
    int rv = tier_health(c, &hq, &hr, &err);
    tier_free(hr);
    tier_client_close(c);
    return rv;
}

Test(auth, tls_is_verified)
{
    fx f;
    char plain[160];
    setup(&f, true);
    cr_assert_eq(health_with(f.td.listen, f.td.ca, "localhost"), TIER_OK);
    /* Plain tcp to the TLS port: no handshake, no call. */
    snprintf(plain, sizeof(plain), "%.150s", f.td.listen + 4); /* drop "tls+" */
    cr_assert_eq(health_with(plain, NULL, NULL), TIER_UNAVAILABLE);
    /* The system's CAs do not know services.sh's private CA. */
    cr_assert_eq(health_with(f.td.listen, NULL, "localhost"), TIER_UNAVAILABLE);
    /* The right CA, a name the certificate does not carry. */
    cr_assert_eq(health_with(f.td.listen, f.td.ca, "tier.example.com"), TIER_UNAVAILABLE);
    /* A CA file that is not one is refused when the client is opened. */
    tier_client *c;
    tier_client_opts o = {.tls_ca_file = f.tokens};
    tier_error err;
    cr_assert_neq(tier_client_open_opts(&c, f.td.listen, &o, &err), TIER_OK);
    teardown(&f);
}

/* --------------------------------------------- a worker with its own token */

Test(auth, worker_with_worker_token_moves_over_tls)
{
    fx f;
    char path[1024], out[4096];
    setup(&f, true);
    snprintf(path, sizeof(path), "%s/bronze/w.mp4", f.dir);
    cr_assert(tier_test_write_file(path, "0123456789", 10));

    tier_client *admin, *client;
    tier_client_opts ao = tier_test_tierd_opts(&f.td, f.tok[ADMIN]);
    tier_client_opts co = tier_test_tierd_opts(&f.td, f.tok[CLIENT]);
    cr_assert_eq(tier_client_open_opts(&admin, f.td.listen, &ao, NULL), TIER_OK);
    cr_assert_eq(tier_client_open_opts(&client, f.td.listen, &co, NULL), TIER_OK);
    Tier__AddContentRequest aq = TIER__ADD_CONTENT_REQUEST__INIT;
    Tier__AddContentReply *ar;
    tier_error err;
    aq.filename = "w.mp4";
    cr_assert_eq(tier_add_content(admin, &aq, &ar, &err), TIER_OK, "%s", err.message);
    int64_t cid = ar->content->cid;
    tier_free(ar);
    Tier__ViewReport item = TIER__VIEW_REPORT__INIT, *items[1] = {&item};
    Tier__ReportViewsRequest rq = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rr;
    item.cid = cid;
    item.count = 1500; /* silver */
    rq.reports = items;
    rq.n_reports = 1;
    cr_assert_eq(tier_report_views(client, &rq, &rr, &err), TIER_OK, "%s", err.message);
    tier_free(rr);

    /* The worker gets only its token, in a mode-600 file, and the CA. */
    char *bin = tier_test_bin("tier-worker"), wlog[600];
    snprintf(wlog, sizeof(wlog), "%s/worker.log", f.dir);
    char *argv[] = {bin,       "--tierd",           f.td.listen,       "--pull",
                    f.td.push, "--token-file",      f.tokfile[WORKER], "--tls-ca",
                    f.td.ca,   "--tls-server-name", "localhost",       NULL};
    char *envp[] = {"TIER_TOKEN=", "TIER_TOKEN_FILE=", NULL};
    pid_t w = tier_test_spawn(argv, envp, wlog);
    free(bin);

    Tier__GetContentRequest gq = TIER__GET_CONTENT_REQUEST__INIT;
    Tier__GetContentReply *gr = NULL;
    gq.cid = cid;
    bool moved = false;
    for (int i = 0; i < 200 && !moved; i++) {
        cr_assert_eq(tier_get_content(client, &gq, &gr, &err), TIER_OK, "%s", err.message);
        moved = strcmp(gr->content->level, "silver") == 0;
        tier_free(gr);
        if (!moved)
            usleep(50 * 1000);
    }
    kill(w, SIGTERM);
    tier_test_wait(w, 10000);
    char *log = tier_test_slurp(wlog, NULL);
    cr_assert(moved, "not moved; worker log:\n%s", log ? log : "");
    free(log);
    snprintf(path, sizeof(path), "%s/silver/w.mp4", f.dir);
    cr_assert_eq(access(path, F_OK), 0);
    (void)out;
    tier_client_close(admin);
    tier_client_close(client);
    teardown(&f);
}

/* A worker given a token tierd refuses says so and stops by itself,
 * rather than idle forever looking alive. */
Test(auth, worker_with_a_client_token_stops)
{
    fx f;
    char path[1024], wlog[600];
    setup(&f, true);
    snprintf(path, sizeof(path), "%s/bronze/c.mp4", f.dir);
    cr_assert(tier_test_write_file(path, "x", 1));
    tier_client *admin;
    tier_client_opts ao = tier_test_tierd_opts(&f.td, f.tok[ADMIN]);
    cr_assert_eq(tier_client_open_opts(&admin, f.td.listen, &ao, NULL), TIER_OK);
    Tier__AddContentRequest aq = TIER__ADD_CONTENT_REQUEST__INIT;
    Tier__AddContentReply *ar;
    aq.filename = "c.mp4";
    cr_assert_eq(tier_add_content(admin, &aq, &ar, NULL), TIER_OK);
    Tier__ViewReport item = TIER__VIEW_REPORT__INIT, *items[1] = {&item};
    Tier__ReportViewsRequest rq = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rr;
    item.cid = ar->content->cid;
    item.count = 2500;
    rq.reports = items;
    rq.n_reports = 1;
    tier_free(ar);
    cr_assert_eq(tier_report_views(admin, &rq, &rr, NULL), TIER_OK);
    tier_free(rr);

    char *bin = tier_test_bin("tier-worker");
    snprintf(wlog, sizeof(wlog), "%s/worker.log", f.dir);
    char *argv[] = {bin,       "--tierd",           f.td.listen,       "--pull",
                    f.td.push, "--token-file",      f.tokfile[CLIENT], "--tls-ca",
                    f.td.ca,   "--tls-server-name", "localhost",       NULL};
    char *envp[] = {"TIER_TOKEN=", "TIER_TOKEN_FILE=", NULL};
    pid_t w = tier_test_spawn(argv, envp, wlog);
    free(bin);
    int st = tier_test_wait(w, 20000);
    char *log = tier_test_slurp(wlog, NULL);
    if (st == -1)
        kill(w, SIGKILL);
    cr_assert(st > 0 && st < 128, "worker status %d; log:\n%s", st, log ? log : "");
    cr_assert(strstr(log, "refuses this worker's token") != NULL, "%s", log);
    cr_assert(strstr(log, "PERMISSION_DENIED") != NULL, "%s", log);
    free(log);
    tier_client_close(admin);
    teardown(&f);
}

/* ------------------------------------------------------- SIGHUP, revoking */

static int list_levels_as(fx *f, int who)
{
    tier_rpc_client *c = rpc_as(f, who);
    void *out = NULL;
    size_t len;
    int rv = tier_rpc_call_raw(c, TIER_M_LIST_LEVELS, "", 0, &out, &len, 5000, NULL);
    free(out);
    tier_rpc_client_close(c);
    return rv;
}

Test(auth, sighup_reloads_tokens)
{
    fx f;
    setup(&f, true);
    cr_assert_eq(list_levels_as(&f, CLIENT), TIER_OK);
    char old_admin[64];
    strcpy(old_admin, f.tok[ADMIN]);

    /* Revoke: a new file without the client's line; admin and worker get
     * new tokens too. */
    write_tokens(&f, false);
    char client_tok[64];
    strcpy(client_tok, f.tok[CLIENT]);
    kill(f.td.pid, SIGHUP);
    int rv = TIER_OK;
    for (int i = 0; i < 200 && (rv = list_levels_as(&f, CLIENT)) == TIER_OK; i++)
        usleep(50 * 1000);
    cr_assert_eq(rv, TIER_UNAUTHENTICATED, "revoked token still works: %s", tier_status_name(rv));
    cr_assert_eq(list_levels_as(&f, ADMIN), TIER_OK, "the new admin token");
    strcpy(f.tok[ADMIN], old_admin);
    cr_assert_eq(list_levels_as(&f, ADMIN), TIER_UNAUTHENTICATED, "the old admin token");

    /* A file that does not parse keeps the table in force. */
    write_tokens(&f, true); /* new tokens, then break the file */
    FILE *t = fopen(f.tokens, "a");
    fprintf(t, "broken line\n");
    fclose(t);
    char good_admin_before[64];
    strcpy(good_admin_before, f.tok[ADMIN]);
    kill(f.td.pid, SIGHUP);
    char *log = NULL;
    for (int i = 0; i < 200; i++) { /* until tierd has read (and refused) it */
        free(log);
        log = tier_test_slurp(f.td.log, NULL);
        if (log != NULL && strstr(log, "previous tokens stay in force") != NULL)
            break;
        usleep(50 * 1000);
    }
    cr_assert(log && strstr(log, "previous tokens stay in force"), "%s", log ? log : "");
    cr_assert_eq(list_levels_as(&f, ADMIN), TIER_UNAUTHENTICATED,
                 "a token of the broken file must not be in force");
    cr_assert(strstr(log, "tokens:") != NULL, "names the file and line");
    free(log);
    cr_assert(tier_test_wait(f.td.pid, 0) == -1, "tierd died on SIGHUP");
    (void)good_admin_before;
    (void)client_tok;
    teardown(&f);
}

/* ------------------------------------------------------ hostile envelopes */

typedef struct {
    nng_socket s;
} raw;

static void raw_open(fx *f, raw *r)
{
    tier_rpc_tls tls = {.ca_file = f->td.ca, .server_name = "localhost"};
    char err[256];
    cr_assert_eq(nng_req0_open(&r->s), 0);
    nng_socket_set_ms(r->s, NNG_OPT_RECVTIMEO, 5000);
    nng_socket_set_ms(r->s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    cr_assert_eq(tier_rpc_net_dial(r->s, f->td.listen, &tls, err, sizeof(err)), TIER_OK, "%s", err);
}

/* Sends req (metadata as given) and returns the reply's code; payload of
 * an OK reply into *payload (malloc'ed) when not NULL. */
static int raw_call(raw *r, Tier__Rpc__Request *req, ProtobufCBinaryData *payload)
{
    size_t n = tier__rpc__request__get_packed_size(req);
    uint8_t *buf = malloc(n);
    tier__rpc__request__pack(req, buf);
    cr_assert_eq(nng_send(r->s, buf, n, 0), 0);
    free(buf);
    void *in;
    size_t inlen;
    cr_assert_eq(nng_recv(r->s, &in, &inlen, NNG_FLAG_ALLOC), 0, "no reply");
    Tier__Rpc__Reply *rep = tier__rpc__reply__unpack(NULL, inlen, in);
    nng_free(in, inlen);
    cr_assert_not_null(rep);
    int code = rep->code;
    if (payload != NULL) {
        payload->len = rep->payload.len;
        payload->data = malloc(rep->payload.len + 1);
        memcpy(payload->data, rep->payload.data, rep->payload.len);
    }
    tier__rpc__reply__free_unpacked(rep, NULL);
    return code;
}

static void bearer(Tier__Rpc__Metadata *md, char *buf, size_t len, const char *token)
{
    tier__rpc__metadata__init(md);
    snprintf(buf, len, "Bearer %s", token);
    md->key = "authorization";
    md->value.data = (uint8_t *)buf;
    md->value.len = strlen(buf);
}

Test(auth, replayed_ids_answer_only_their_caller)
{
    fx f;
    raw r;
    char path[1024], hdr[128];
    setup(&f, true);
    raw_open(&f, &r);
    snprintf(path, sizeof(path), "%s/bronze/r.mp4", f.dir);
    cr_assert(tier_test_write_file(path, "x", 1));

    Tier__AddContentRequest aq = TIER__ADD_CONTENT_REQUEST__INIT;
    aq.filename = "r.mp4";
    uint8_t pl[256];
    Tier__Rpc__Request req = TIER__RPC__REQUEST__INIT;
    Tier__Rpc__Metadata md, *mds[1] = {&md};
    req.method = TIER_M_ADD_CONTENT;
    req.client_id = 0x1234567;
    req.request_id = 42;
    req.deadline_ms = tier_now_ms() + 10000;
    req.payload.data = pl;
    req.payload.len = tier__add_content_request__pack(&aq, pl);
    req.metadata = mds;
    req.n_metadata = 1;
    bearer(&md, hdr, sizeof(hdr), f.tok[ADMIN]);
    ProtobufCBinaryData p1, p2;
    cr_assert_eq(raw_call(&r, &req, &p1), TIER_OK);
    /* The admin's resend is answered from the cache: the same reply. */
    cr_assert_eq(raw_call(&r, &req, &p2), TIER_OK);
    cr_assert(p1.len == p2.len && memcmp(p1.data, p2.data, p1.len) == 0);
    free(p1.data);
    free(p2.data);
    /* The same ids from a client token, or none, get no cached reply. */
    bearer(&md, hdr, sizeof(hdr), f.tok[CLIENT]);
    cr_assert_eq(raw_call(&r, &req, NULL), TIER_PERMISSION_DENIED);
    req.n_metadata = 0;
    cr_assert_eq(raw_call(&r, &req, NULL), TIER_UNAUTHENTICATED);
    /* A read both may make: the client's answer is its own call, not the
     * cached one of another caller (ListLevels with admin's ids). */
    req.method = TIER_M_LIST_LEVELS;
    req.request_id = 43;
    req.payload.len = 0;
    req.n_metadata = 1;
    bearer(&md, hdr, sizeof(hdr), f.tok[ADMIN]);
    cr_assert_eq(raw_call(&r, &req, NULL), TIER_OK);
    bearer(&md, hdr, sizeof(hdr), f.tok[CLIENT]);
    cr_assert_eq(raw_call(&r, &req, NULL), TIER_OK);
    nng_close(r.s);
    teardown(&f);
}

Test(auth, malformed_authorization)
{
    fx f;
    raw r;
    setup(&f, true);
    raw_open(&f, &r);
    Tier__Rpc__Request req = TIER__RPC__REQUEST__INIT;
    Tier__Rpc__Metadata md[20], *mds[20];
    char hdr[2][512];
    req.method = TIER_M_LIST_LEVELS;
    req.metadata = mds;
    for (int i = 0; i < 20; i++)
        mds[i] = &md[i];

    /* Not "Bearer ". */
    bearer(&md[0], hdr[0], sizeof(hdr[0]), f.tok[ADMIN]);
    md[0].value.data = (uint8_t *)"Basic YWRtaW46YWRtaW4=";
    md[0].value.len = strlen("Basic YWRtaW46YWRtaW4=");
    req.n_metadata = 1;
    cr_assert_eq(raw_call(&r, &req, NULL), TIER_UNAUTHENTICATED);
    /* Two authorization entries, one of them good. */
    bearer(&md[0], hdr[0], sizeof(hdr[0]), f.tok[ADMIN]);
    bearer(&md[1], hdr[1], sizeof(hdr[1]), f.tok[CLIENT]);
    req.n_metadata = 2;
    cr_assert_eq(raw_call(&r, &req, NULL), TIER_UNAUTHENTICATED);
    /* A token longer than any: refused before it is hashed. */
    memset(hdr[1], 'a', sizeof(hdr[1]) - 1);
    hdr[1][sizeof(hdr[1]) - 1] = '\0';
    memcpy(hdr[1], "Bearer ", 7);
    md[0].value.data = (uint8_t *)hdr[1];
    md[0].value.len = strlen(hdr[1]);
    req.n_metadata = 1;
    cr_assert_eq(raw_call(&r, &req, NULL), TIER_UNAUTHENTICATED);
    /* The good token in other metadata keys counts for nothing. */
    bearer(&md[0], hdr[0], sizeof(hdr[0]), f.tok[ADMIN]);
    md[0].key = "Authorization ";
    cr_assert_eq(raw_call(&r, &req, NULL), TIER_UNAUTHENTICATED);
    /* More than 16 metadata entries: refused whatever they hold. */
    for (int i = 0; i < 20; i++) {
        tier__rpc__metadata__init(&md[i]);
        md[i].key = "x-trace";
    }
    bearer(&md[0], hdr[0], sizeof(hdr[0]), f.tok[ADMIN]);
    req.n_metadata = 17;
    cr_assert_eq(raw_call(&r, &req, NULL), TIER_INVALID_ARGUMENT);
    req.n_metadata = 16;
    cr_assert_eq(raw_call(&r, &req, NULL), TIER_OK);
    nng_close(r.s);
    teardown(&f);
}

/* ------------------------------------------------------- start-up refusals */

static int tierd_exits(fx *f, char *const extra[], char *out, size_t len)
{
    char *bin = tier_test_bin("tierd");
    char *argv[24] = {bin, "--listen", f->td.listen, "--push", f->td.push};
    size_t n = 5;
    for (size_t i = 0; extra[i] != NULL; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int st = tier_test_run(argv, f->td.envp, out, len, 20000);
    free(bin);
    return st;
}

Test(auth, unsafe_settings_are_refused_at_start)
{
    fx f;
    char out[8192];
    setup(&f, false);
    char *cert = getenv("TIER_TLS_CERT"), *key = getenv("TIER_TLS_KEY");

    /* No choice at all. */
    char *none[] = {"--auth-tokens", "", NULL};
    cr_assert_eq(tierd_exits(&f, none, out, sizeof(out)), 2, "%s", out);
    cr_assert(strstr(out, "--no-auth") != NULL, "%s", out);
    /* Both. */
    char *both[] = {"--no-auth", "--auth-tokens", f.tokens, NULL};
    cr_assert_eq(tierd_exits(&f, both, out, sizeof(out)), 2, "%s", out);
    /* --no-auth on an address other machines reach. */
    char wide[64];
    snprintf(wide, sizeof(wide), "tcp://0.0.0.0:%d", tier_test_free_port());
    char *open_to_all[] = {"--no-auth", "--listen", wide, NULL};
    cr_assert_eq(tierd_exits(&f, open_to_all, out, sizeof(out)), 2, "%s", out);
    cr_assert(strstr(out, "loopback") != NULL, "%s", out);
    /* Tokens in clear over the network. */
    char *clear[] = {"--listen", wide, NULL};
    cr_assert_eq(tierd_exits(&f, clear, out, sizeof(out)), 2, "%s", out);
    cr_assert(strstr(out, "in clear") != NULL, "%s", out);
    /* TLS without a certificate. */
    char *nocert[] = {"--tls-cert", "", "--tls-key", "", NULL};
    cr_assert_eq(tierd_exits(&f, nocert, out, sizeof(out)), 2, "%s", out);
    /* A key others can read. */
    char key644[600];
    snprintf(key644, sizeof(key644), "%s/key644.pem", f.dir);
    char *k = tier_test_slurp(key, NULL);
    cr_assert(tier_test_write_file(key644, k, strlen(k)));
    free(k);
    chmod(key644, 0644);
    char *loose[] = {"--tls-cert", cert, "--tls-key", key644, NULL};
    int st = tierd_exits(&f, loose, out, sizeof(out));
    cr_assert(st > 0 && st < 128 && strstr(out, "chmod 600"), "%d %s", st, out);
    /* A tokens file with a bad line: named, with its line number. */
    char bad[600];
    snprintf(bad, sizeof(bad), "%s/bad-tokens", f.dir);
    cr_assert(tier_test_write_file(bad, "ops admin nothex\n", 17));
    char *badtok[] = {"--auth-tokens", bad, NULL};
    st = tierd_exits(&f, badtok, out, sizeof(out));
    cr_assert(st > 0 && st < 128 && strstr(out, "bad-tokens:1"), "%d %s", st, out);
    char *role[] = {"--auth-tokens", bad, NULL};
    cr_assert(tier_test_write_file(bad, "ops root 00\n", 12));
    st = tierd_exits(&f, role, out, sizeof(out));
    cr_assert(st > 0 && st < 128 && strstr(out, "roles are"), "%d %s", st, out);
    /* The same token twice: the file would not say who calls. */
    char *dup = tier_test_slurp(f.tokens, NULL), line[256];
    char *admin_line = strstr(dup, "ops admin ");
    cr_assert_not_null(admin_line);
    snprintf(line, sizeof(line), "%.*s", (int)strcspn(admin_line, "\n"), admin_line);
    FILE *t = fopen(bad, "w");
    fprintf(t, "%s\nops2 client %s\n", line, line + strlen("ops admin "));
    fclose(t);
    free(dup);
    st = tierd_exits(&f, role, out, sizeof(out));
    cr_assert(st > 0 && st < 128 && strstr(out, "the same token"), "%d %s", st, out);
    teardown(&f);
}

Test(auth, tierctl_refuses_a_readable_token_file)
{
    fx f;
    char out[4096];
    setup(&f, true);
    char *ctl = tier_test_bin("tierctl");
    char *argv[] = {
        ctl,         "--url",        f.td.listen,       "--tls-ca", f.td.ca, "--tls-server-name",
        "localhost", "--token-file", f.tokfile[CLIENT], "levels",   NULL};
    char *envp[] = {"TIER_TOKEN=", "TIER_TOKEN_FILE=", NULL};
    cr_assert_eq(tier_test_run(argv, envp, out, sizeof(out), 10000), 0, "%s", out);
    cr_assert(strstr(out, "bronze") != NULL, "%s", out);
    chmod(f.tokfile[CLIENT], 0644);
    cr_assert_eq(tier_test_run(argv, envp, out, sizeof(out), 10000), 2, "%s", out);
    cr_assert(strstr(out, "chmod 600") != NULL, "%s", out);
    /* The worker's token cannot list levels: exit 64 + PERMISSION_DENIED. */
    argv[8] = f.tokfile[WORKER];
    cr_assert_eq(tier_test_run(argv, envp, out, sizeof(out), 10000), 64 + TIER_PERMISSION_DENIED,
                 "%s", out);
    /* TIER_TOKEN carries the token itself. */
    char tokenv[128];
    snprintf(tokenv, sizeof(tokenv), "TIER_TOKEN=%s", f.tok[ADMIN]);
    char *envp2[] = {tokenv, "TIER_TOKEN_FILE=", NULL};
    char *argv2[] = {ctl,         "--url",  f.td.listen, "--tls-ca", f.td.ca, "--tls-server-name",
                     "localhost", "levels", NULL};
    cr_assert_eq(tier_test_run(argv2, envp2, out, sizeof(out), 10000), 0, "%s", out);
    free(ctl);
    teardown(&f);
}

TestSuite(auth, .fini = tier_test_kill_children);
