/*
 * testenv_tierd.c -- one tierd process for a test (see tier_testenv.h):
 * its environment, free URLs, spawning it, waiting until it answers and
 * stopping it.  The tests that run tierd all did this the same way; the
 * differences (extra variables, flags, stop timeouts) are parameters.
 */
#include "tier_testenv.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tier_client.h"

void tier_test_tierd_setenv(tier_test_tierd *t, const char *fmt, ...)
{
    va_list ap;

    cr_assert(t->nenv < 24, "tier_test_tierd: too many variables");
    va_start(ap, fmt);
    vsnprintf(t->env[t->nenv], sizeof(t->env[0]), fmt, ap);
    va_end(ap);
    t->envp[t->nenv] = t->env[t->nenv];
    t->nenv++;
    t->envp[t->nenv] = NULL;
}

void tier_test_tierd_init(tier_test_tierd *t, const char *logdir, const char *db,
                          const char *prefix)
{
    static int seq;

    memset(t, 0, sizeof(*t));
    tier_test_tcp_url(t->listen, sizeof(t->listen));
    tier_test_tcp_url(t->push, sizeof(t->push));
    if (logdir != NULL)
        snprintf(t->log, sizeof(t->log), "%s/tierd.log", logdir);
    tier_test_tierd_setenv(t, "TIER_MYSQL_DB=%s", db);
    /* One writer per key prefix (tierd/writer.c): tierds of different tests
     * never share one, or the second would wait as a standby. */
    if (prefix != NULL)
        tier_test_tierd_setenv(t, "TIER_REDIS_PREFIX=%s", prefix);
    else
        tier_test_tierd_setenv(t, "TIER_REDIS_PREFIX=td%d_%d:", (int)getpid(), seq++);
    tier_test_tierd_setenv(t, "TIER_LOG=info");
    /* Not the shell's (.run/env exports scripts/services.sh's storage):
     * empty means the parents of the test database's level directories,
     * which is where tier_test_db_create put them.  A test that moves
     * levels elsewhere sets its own after this. */
    tier_test_tierd_setenv(t, "TIER_STORAGE_ROOT=");
    /* Access is chosen explicitly, never inherited from the shell (which
     * .run/env points at services.sh's tokens): these tierds listen on
     * loopback without tokens.  tests/test_auth.c runs them with tokens and
     * TLS (tier_test_tierd_secure). */
    tier_test_tierd_setenv(t, "TIER_AUTH_TOKENS=");
    tier_test_tierd_setenv(t, "TIER_NO_AUTH=1");
}

void tier_test_tierd_setenv_services(tier_test_tierd *t, const tier_test_mysql *m, int mysql_port,
                                     int redis_port)
{
    char host[64];
    int port;

    tier_test_redis_env(host, sizeof(host), &port);
    tier_test_tierd_setenv(t, "TIER_MYSQL_HOST=%s", m->host);
    tier_test_tierd_setenv(t, "TIER_MYSQL_PORT=%d", mysql_port >= 0 ? mysql_port : m->port);
    tier_test_tierd_setenv(t, "TIER_MYSQL_USER=%s", m->user);
    tier_test_tierd_setenv(t, "TIER_MYSQL_PASSWORD=%s", m->password);
    tier_test_tierd_setenv(t, "TIER_REDIS_HOST=%s", host);
    tier_test_tierd_setenv(t, "TIER_REDIS_PORT=%d", redis_port >= 0 ? redis_port : port);
}

/* "tcp://..." -> "tls+tcp://..." */
static void to_tls(char *url, size_t len)
{
    char tmp[128];
    cr_assert(strncmp(url, "tcp://", 6) == 0);
    snprintf(tmp, sizeof(tmp), "tls+%s", url);
    snprintf(url, len, "%s", tmp);
}

void tier_test_tierd_secure(tier_test_tierd *t, const char *tokens_file)
{
    const char *cert = getenv("TIER_TLS_CERT"), *key = getenv("TIER_TLS_KEY"),
               *ca = getenv("TIER_TLS_CA");

    cr_assert(cert && key && ca && *cert && *key && *ca,
              "TIER_TLS_CERT/KEY/CA unset: run under scripts/test.sh (. .run/env)");
    to_tls(t->listen, sizeof(t->listen));
    to_tls(t->push, sizeof(t->push));
    snprintf(t->ca, sizeof(t->ca), "%s", ca);
    tier_test_tierd_setenv(t, "TIER_NO_AUTH=0");
    tier_test_tierd_setenv(t, "TIER_AUTH_TOKENS=%s", tokens_file);
    tier_test_tierd_setenv(t, "TIER_TLS_CERT=%s", cert);
    tier_test_tierd_setenv(t, "TIER_TLS_KEY=%s", key);
}

tier_client_opts tier_test_tierd_opts(const tier_test_tierd *t, const char *token)
{
    /* services.sh's certificate names localhost (mbedTLS matches DNS
     * names only), while the tests dial 127.0.0.1. */
    tier_client_opts o = {.token = token};
    if (t->ca[0] != '\0') {
        o.tls_ca_file = t->ca;
        o.tls_server_name = "localhost";
    }
    return o;
}

/* True once something accepts TCP connections on 127.0.0.1:port. */
static bool port_open(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* tierd answers Health once its rpc server runs, and starts its HTTP port
 * just after: a test that goes on to HTTP waits for that port too (an
 * early request was refused on a loaded machine). */
static void wait_http(char *const extra[])
{
    for (size_t i = 0; extra != NULL && extra[i] != NULL && extra[i + 1] != NULL; i++) {
        const char *colon;
        if (strcmp(extra[i], "--http") != 0 || (colon = strrchr(extra[i + 1], ':')) == NULL)
            continue;
        int port = atoi(colon + 1);
        for (int k = 0; k < 200 && port > 0 && !port_open(port); k++)
            usleep(50 * 1000);
    }
}

void tier_test_tierd_start(tier_test_tierd *t, char *const extra[])
{
    char *argv[16] = {tier_test_bin("tierd"), "--listen", t->listen, "--push", t->push};
    size_t n = 5;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        cr_assert(n < 15, "tier_test_tierd_start: too many arguments");
        argv[n++] = extra[i];
    }
    t->pid = tier_test_spawn(argv, t->envp, t->log[0] ? t->log : NULL);
    free(argv[0]);
    cr_assert_gt(t->pid, 0);

    /* tierd loads its state before it listens, so any Health answer means
     * it is ready for every call.  A short per-call timeout keeps the poll
     * moving while nothing listens yet. */
    Tier__Rpc__HealthRequest hq = TIER__RPC__HEALTH_REQUEST__INIT;
    Tier__Rpc__HealthReply *hr = NULL;
    tier_client *c;
    tier_client_opts o = tier_test_tierd_opts(t, NULL);
    o.timeout_ms = 500;
    cr_assert_eq(tier_client_open_opts(&c, t->listen, &o, NULL), TIER_OK);
    bool up = false;
    for (int i = 0; i < 200 && !(up = tier_health(c, &hq, &hr, NULL) == TIER_OK); i++)
        usleep(50 * 1000);
    tier_client_close(c);
    if (up) {
        tier_free(hr);
        wait_http(extra);
        return;
    }
    char *log = t->log[0] ? tier_test_slurp(t->log, NULL) : NULL;
    /* Do not leave it running behind the failed test. */
    tier_test_tierd_stop(t, SIGKILL, 5000);
    cr_assert_fail("tierd did not start: %s", log ? log : "");
}

int tier_test_tierd_stop(tier_test_tierd *t, int sig, int timeout_ms)
{
    kill(t->pid, sig);
    int st = tier_test_wait(t->pid, timeout_ms);
    if (st != -1)
        t->pid = 0;
    return st;
}

pid_t tier_test_worker_start(const tier_test_tierd *t, const char *id, const char *dirs,
                             const char *logpath)
{
    char *bin = tier_test_bin("tier-worker");
    char *argv[] = {bin,    "--tierd",  (char *)t->listen, "--pull",     (char *)t->push,
                    "--id", (char *)id, "--dirs",          (char *)dirs, NULL};
    pid_t pid = tier_test_spawn(argv, t->envp, logpath);
    free(bin);
    cr_assert_gt(pid, 0);
    return pid;
}
