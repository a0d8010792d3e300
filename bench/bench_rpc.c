/*
 * bench_rpc.c -- unary call throughput and latency of the RPC layer on
 * loopback tcp://, against bare nng req/rep + protobuf-c as the baseline.
 *
 *   bench_rpc [--seconds S] [--runs R] [--threads N] [--contexts N] [--secure]
 *
 * --secure adds two rows for what access control costs (docs/SECURITY.md):
 * the same rpc server with tierd's token check (tierd/auth.c; the client
 * sends a bearer token with every call), and that over tls+tcp:// with the
 * certificate of scripts/services.sh (TIER_TLS_CERT, TIER_TLS_KEY,
 * TIER_TLS_CA from .run/env).  --check-cost times tierd's token check
 * alone (tierd_auth_check, ns per call) with 3 and with 1,000 tokens.
 *
 * The server runs in a child process (so client and server share the
 * machine's two cores but not an allocator or a lock).  The request has two
 * fields (tier.ViewReport), the reply three (tier.ItemStatus), as in the
 * figures the issue quotes.  For each of 1, 8 and 64 calls in flight the
 * client keeps exactly that many asynchronous calls outstanding for S
 * seconds and records every call's latency; the table prints the median
 * over R runs of calls/s, p50 and p99.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tier.pb-c.h"
#include "tier_rpc.h"
#include "tier_time.h"
#include "tier_methods.h"
#include "tierd.h"

/* The echo methods go by the names of real methods a client may call, so
 * that with --secure tierd's access table lets the calls through (it
 * refuses names it does not know). */
#define BENCH_METHOD TIER_M_REPORT_VIEWS
#define BENCH_METHOD_POOLED TIER_M_GET_CONTENT

#include <sodium.h>

/* --secure: the token, the tokens file holding its hash, and TLS. */
static char g_token[64] = "tier_bench_token_0123456789abcdef0123456789abcdef";
static char g_tokens_file[64];
static tier_rpc_tls g_tls;

#define MAX_SAMPLES (4u << 20)

/* ------------------------------------------------------------ servers */

static int rpc_handler(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                       ProtobufCMessage *rep)
{
    const Tier__ViewReport *in = (const Tier__ViewReport *)req;
    Tier__ItemStatus *out = (Tier__ItemStatus *)rep;
    (void)arg;
    (void)call;
    out->cid = in->cid;
    out->code = TIER__RPC__CODE__OK;
    out->message = in->count > 0 ? "ok" : "zero";
    return TIER_OK;
}

/* secure: 0 none, 1 tokens, 2 tokens + TLS. */
static void run_rpc_server(const char *url, unsigned threads, unsigned contexts, int secure)
{
    tier_rpc_server_opts o = {.nthreads = threads, .ncontexts = contexts};
    tier_rpc_server *s;
    tierd_auth *auth = NULL;
    char err[256];
    if (secure == 2)
        o.tls = g_tls;
    if (tier_rpc_server_open(&s, url, &o) != TIER_OK)
        exit(1);
    if (secure) {
        if (tierd_auth_open(&auth, g_tokens_file, err, sizeof(err)) != TIER_OK) {
            fprintf(stderr, "%s\n", err);
            exit(1);
        }
        tier_rpc_server_set_auth(s, tierd_auth_check, auth);
    }
    tier_rpc_server_add(s, BENCH_METHOD, &tier__view_report__descriptor,
                        &tier__item_status__descriptor, rpc_handler, NULL, TIER_RPC_INLINE);
    tier_rpc_server_add(s, BENCH_METHOD_POOLED, &tier__view_report__descriptor,
                        &tier__item_status__descriptor, rpc_handler, NULL, 0);
    tier_rpc_server_start(s);
    pause();
}

typedef struct {
    nng_aio *aio;
    nng_ctx ctx;
    int receiving;
} bare_srv;

static void bare_srv_cb(void *arg)
{
    bare_srv *w = arg;
    if (nng_aio_result(w->aio) != 0) {
        if (!w->receiving)
            nng_msg_free(nng_aio_get_msg(w->aio));
        w->receiving = 1;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    if (!w->receiving) {
        w->receiving = 1;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    nng_msg *m = nng_aio_get_msg(w->aio);
    Tier__ViewReport *in = tier__view_report__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    Tier__ItemStatus out = TIER__ITEM_STATUS__INIT;
    if (in != NULL) {
        out.cid = in->cid;
        out.message = in->count > 0 ? "ok" : "zero";
        tier__view_report__free_unpacked(in, NULL);
    }
    nng_msg_clear(m);
    nng_msg_realloc(m, tier__item_status__get_packed_size(&out));
    tier__item_status__pack(&out, nng_msg_body(m));
    w->receiving = 0;
    nng_aio_set_msg(w->aio, m);
    nng_ctx_send(w->ctx, w->aio);
}

static void run_bare_server(const char *url, unsigned nctx)
{
    nng_socket s;
    bare_srv *w = calloc(nctx, sizeof(*w));
    if (nng_rep0_open(&s) != 0 || nng_listen(s, url, NULL, 0) != 0)
        exit(1);
    for (unsigned i = 0; i < nctx; i++) {
        nng_aio_alloc(&w[i].aio, bare_srv_cb, &w[i]);
        nng_ctx_open(&w[i].ctx, s);
        w[i].receiving = 1;
        nng_ctx_recv(w[i].ctx, w[i].aio);
    }
    pause();
}

/* ------------------------------------------------------------ clients */

typedef struct {
    atomic_uint_fast64_t done;
    atomic_int errors;
    int64_t stop_us;
    uint32_t *lat; /* microseconds */
    atomic_uint_fast64_t nlat;
    atomic_int active;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} load;

static void record(load *l, int64_t start)
{
    uint64_t i = atomic_fetch_add(&l->nlat, 1);
    if (i < MAX_SAMPLES)
        l->lat[i] = (uint32_t)(tier_mono_us() - start);
    atomic_fetch_add(&l->done, 1);
}

static void finish_one(load *l)
{
    pthread_mutex_lock(&l->mu);
    if (atomic_fetch_sub(&l->active, 1) == 1)
        pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* RPC client: each "lane" reissues its call from the completion callback. */
typedef struct {
    load *l;
    tier_rpc_client *c;
    int64_t start;
    uint8_t req[32];
    size_t reqlen;
} rpc_lane;

static void rpc_issue(rpc_lane *ln);

static void rpc_done(void *arg, int code, const void *payload, size_t len, const char *msg)
{
    rpc_lane *ln = arg;
    (void)msg;
    Tier__ItemStatus *r = code == TIER_OK ? tier__item_status__unpack(NULL, len, payload) : NULL;
    if (r == NULL)
        atomic_fetch_add(&ln->l->errors, 1);
    else
        tier__item_status__free_unpacked(r, NULL);
    record(ln->l, ln->start);
    if (tier_mono_us() < ln->l->stop_us)
        rpc_issue(ln);
    else
        finish_one(ln->l);
}

static void rpc_issue(rpc_lane *ln)
{
    ln->start = tier_mono_us();
    if (tier_rpc_call_async(ln->c, BENCH_METHOD, ln->req, ln->reqlen, 5000, rpc_done, ln) != 0) {
        atomic_fetch_add(&ln->l->errors, 1);
        finish_one(ln->l);
    }
}

/* Bare client: one context + aio per lane. */
typedef struct {
    load *l;
    nng_ctx ctx;
    nng_aio *aio;
    int64_t start;
    int sending;
} bare_lane;

static void bare_issue(bare_lane *ln)
{
    Tier__ViewReport req = TIER__VIEW_REPORT__INIT;
    nng_msg *m;
    req.cid = 12345;
    req.count = 1964;
    nng_msg_alloc(&m, tier__view_report__get_packed_size(&req));
    tier__view_report__pack(&req, nng_msg_body(m));
    ln->start = tier_mono_us();
    ln->sending = 1;
    nng_aio_set_msg(ln->aio, m);
    nng_ctx_send(ln->ctx, ln->aio);
}

static void bare_cb(void *arg)
{
    bare_lane *ln = arg;
    if (ln->sending) {
        if (nng_aio_result(ln->aio) != 0) {
            nng_msg_free(nng_aio_get_msg(ln->aio));
            atomic_fetch_add(&ln->l->errors, 1);
            finish_one(ln->l);
            return;
        }
        ln->sending = 0;
        nng_ctx_recv(ln->ctx, ln->aio);
        return;
    }
    if (nng_aio_result(ln->aio) != 0) {
        atomic_fetch_add(&ln->l->errors, 1);
        finish_one(ln->l);
        return;
    }
    nng_msg *m = nng_aio_get_msg(ln->aio);
    Tier__ItemStatus *r = tier__item_status__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    if (r == NULL)
        atomic_fetch_add(&ln->l->errors, 1);
    else
        tier__item_status__free_unpacked(r, NULL);
    nng_msg_free(m);
    record(ln->l, ln->start);
    if (tier_mono_us() < ln->l->stop_us)
        bare_issue(ln);
    else
        finish_one(ln->l);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double rate, p50, p99;
} result;

static result measure(const char *url, int bare, int secure, int inflight, double seconds)
{
    load l = {0};
    result r;
    l.lat = malloc(MAX_SAMPLES * sizeof(uint32_t));
    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.cv, NULL);
    atomic_store(&l.active, inflight);
    tier_rpc_client *c = NULL;
    nng_socket s;
    rpc_lane *rl = calloc((size_t)inflight, sizeof(*rl));
    bare_lane *bl = calloc((size_t)inflight, sizeof(*bl));

    if (bare) {
        nng_req0_open(&s);
        nng_dial(s, url, NULL, 0);
        for (int i = 0; i < inflight; i++) {
            bl[i].l = &l;
            nng_ctx_open(&bl[i].ctx, s);
            nng_aio_alloc(&bl[i].aio, bare_cb, &bl[i]);
        }
    } else {
        tier_rpc_client_opts o = {.max_inflight = (unsigned)inflight};
        if (secure)
            o.bearer_token = g_token;
        if (secure == 2)
            o.tls = g_tls;
        tier_rpc_client_open(&c, url, &o, NULL);
        for (int i = 0; i < inflight; i++) {
            Tier__ViewReport req = TIER__VIEW_REPORT__INIT;
            req.cid = 12345;
            req.count = 1964;
            rl[i] = (rpc_lane){.l = &l, .c = c};
            rl[i].reqlen = tier__view_report__pack(&req, rl[i].req);
        }
    }
    usleep(200 * 1000); /* connected */
    int64_t t0 = tier_mono_us();
    l.stop_us = t0 + (int64_t)(seconds * 1e6);
    for (int i = 0; i < inflight; i++) {
        if (bare)
            bare_issue(&bl[i]);
        else
            rpc_issue(&rl[i]);
    }
    pthread_mutex_lock(&l.mu);
    while (atomic_load(&l.active) > 0)
        pthread_cond_wait(&l.cv, &l.mu);
    pthread_mutex_unlock(&l.mu);
    int64_t t1 = tier_mono_us();
    uint64_t n = atomic_load(&l.nlat);
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    qsort(l.lat, n, sizeof(uint32_t), cmp_u32);
    r.rate = (double)atomic_load(&l.done) / ((double)(t1 - t0) / 1e6);
    r.p50 = n ? l.lat[n / 2] : 0;
    r.p99 = n ? l.lat[(size_t)((double)n * 0.99)] : 0;
    if (atomic_load(&l.errors) > 0)
        fprintf(stderr, "warning: %d errors\n", atomic_load(&l.errors));
    if (bare) {
        for (int i = 0; i < inflight; i++)
            nng_aio_free(bl[i].aio);
        nng_close(s);
    } else {
        tier_rpc_client_close(c);
    }
    free(rl);
    free(bl);
    free(l.lat);
    return r;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return v[n / 2];
}

/* The tokens file with g_token's hash as an admin's; TLS from .run/env. */
static int setup_secure(void)
{
    unsigned char h[crypto_generichash_BYTES];
    char hex[2 * sizeof(h) + 1];
    FILE *f;

    g_tls.cert_file = getenv("TIER_TLS_CERT");
    g_tls.key_file = getenv("TIER_TLS_KEY");
    g_tls.ca_file = getenv("TIER_TLS_CA");
    g_tls.server_name = "localhost";
    if (!g_tls.cert_file || !g_tls.key_file || !g_tls.ca_file || sodium_init() < 0) {
        fprintf(stderr, "--secure: TIER_TLS_CERT/KEY/CA unset (. .run/env)\n");
        return -1;
    }
    crypto_generichash(h, sizeof(h), (const unsigned char *)g_token, strlen(g_token), NULL, 0);
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    snprintf(g_tokens_file, sizeof(g_tokens_file), "/tmp/bench_rpc_tokens.%d", (int)getpid());
    if ((f = fopen(g_tokens_file, "w")) == NULL)
        return -1;
    fprintf(f, "bench admin,client,worker %s\n", hex);
    fclose(f);
    return 0;
}

/* ns per tierd_auth_check with a file of n tokens (the caller's last). */
static double check_cost(unsigned n)
{
    char path[64], err[256], msg[256];
    unsigned char h[crypto_generichash_BYTES];
    char hex[2 * sizeof(h) + 1];
    tierd_auth *a;
    tier_rpc_caller who;
    FILE *f;
    const int iters = 1000000;

    snprintf(path, sizeof(path), "/tmp/bench_rpc_check.%d", (int)getpid());
    f = fopen(path, "w");
    for (unsigned i = 0; i < n; i++) {
        char tok[64];
        if (i + 1 == n)
            snprintf(tok, sizeof(tok), "%s", g_token);
        else
            snprintf(tok, sizeof(tok), "other-token-%u", i);
        crypto_generichash(h, sizeof(h), (const unsigned char *)tok, strlen(tok), NULL, 0);
        sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
        fprintf(f, "t%u client %s\n", i, hex);
    }
    fclose(f);
    if (tierd_auth_open(&a, path, err, sizeof(err)) != TIER_OK) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    int64_t t0 = tier_mono_us();
    for (int i = 0; i < iters; i++)
        if (tierd_auth_check(a, TIER_M_REPORT_VIEWS, (const uint8_t *)g_token, strlen(g_token),
                             &who, msg, sizeof(msg)) != TIER_OK)
            exit(1);
    double ns = (double)(tier_mono_us() - t0) * 1000.0 / iters;
    tierd_auth_close(a);
    unlink(path);
    return ns;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    int runs = 3;
    unsigned threads = 16, contexts = 0;
    int levels[] = {1, 8, 64};
    bool secure = false;
    char url[4][64];
    static const char *const names[4] = {"tier rpc (envelope)", "bare nng+protobuf-c",
                                         "tier rpc + token", "tier rpc + token + TLS"};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--contexts") == 0 && i + 1 < argc)
            contexts = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--secure") == 0)
            secure = true;
        else if (strcmp(argv[i], "--check-cost") == 0) {
            if (sodium_init() < 0)
                return 1;
            printf("%-10s %12s\n", "tokens", "ns/check");
            printf("%-10u %12.0f\n", 3u, check_cost(3));
            printf("%-10u %12.0f\n", 1000u, check_cost(1000));
            return 0;
        } else {
            fprintf(stderr,
                    "usage: %s [--seconds S] [--runs R] [--threads N] [--contexts N] "
                    "[--secure]\n",
                    argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (secure && setup_secure() != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    int base = 20000 + (getpid() % 20000);
    int nimpl = secure ? 4 : 2;
    pid_t srv[4];
    for (int i = 0; i < nimpl; i++) {
        snprintf(url[i], sizeof(url[i]), "%s://127.0.0.1:%d", i == 3 ? "tls+tcp" : "tcp", base + i);
        if ((srv[i] = fork()) == 0) {
            if (i == 1)
                run_bare_server(url[i], 16);
            else
                run_rpc_server(url[i], threads, contexts, i == 0 ? 0 : i - 1);
        }
    }
    usleep(300 * 1000);

    printf("%-24s %9s %12s %10s %10s\n", "server", "in flight", "calls/s", "p50 us", "p99 us");
    for (int impl = 0; impl < nimpl; impl++) {
        for (int li = 0; li < 3; li++) {
            double rate[16], p50[16], p99[16];
            for (int r = 0; r < runs && r < 16; r++) {
                result x =
                    measure(url[impl], impl == 1, impl < 2 ? 0 : impl - 1, levels[li], seconds);
                rate[r] = x.rate;
                p50[r] = x.p50;
                p99[r] = x.p99;
            }
            printf("%-24s %9d %12.0f %10.0f %10.0f\n", names[impl], levels[li], median(rate, runs),
                   median(p50, runs), median(p99, runs));
            fflush(stdout);
        }
    }
    for (int i = 0; i < nimpl; i++) {
        kill(srv[i], SIGKILL);
        waitpid(srv[i], NULL, 0);
    }
    if (secure)
        unlink(g_tokens_file);
    return 0;
}
