/*
 * test_tierd.c -- the tierd process and `tierctl health`: start-up with
 * real Redis and MariaDB, a clear error and non-zero exit when either is
 * down, clean shutdown on SIGTERM and SIGINT, --help everywhere.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_testenv.h"

typedef struct {
    tier_test_mysql m;
    tier_test_tierd t;
} env;

/* The environment a tierd needs, every service named explicitly;
 * mysql_port / redis_port < 0 keep the real ones, else point at that
 * (dead) port.  The log goes to dir/tierd.log (none if dir is NULL). */
static void make_env(env *e, const char *dir, int mysql_port, int redis_port)
{
    tier_test_mysql_env(&e->m);
    tier_test_db_create(&e->m, NULL);
    tier_test_tierd_init(&e->t, dir, e->m.db, NULL);
    tier_test_tierd_setenv_services(&e->t, &e->m, mysql_port, redis_port);
}

static int run_tierd(env *e, char *out, size_t outlen)
{
    char *bin = tier_test_bin("tierd");
    char *argv[] = {bin, "--listen", e->t.listen, "--push", e->t.push, NULL};
    int st = tier_test_run(argv, e->t.envp, out, outlen, 20000);
    free(bin);
    return st;
}

Test(tierd, exits_naming_redis_when_redis_is_down)
{
    env e;
    char out[8192];
    make_env(&e, NULL, -1, tier_test_free_port());
    int st = run_tierd(&e, out, sizeof(out));
    cr_assert(st > 0 && st < 128, "exit status %d", st);
    cr_assert(strstr(out, "cannot reach Redis") != NULL, "output: %s", out);
    cr_assert(strstr(out, "ERROR") != NULL, "leveled log line: %s", out);
    tier_test_db_drop(&e.m);
}

Test(tierd, exits_naming_mysql_when_mysql_is_down)
{
    env e;
    char out[8192];
    make_env(&e, NULL, tier_test_free_port(), -1);
    int st = run_tierd(&e, out, sizeof(out));
    cr_assert(st > 0 && st < 128, "exit status %d", st);
    cr_assert(strstr(out, "cannot reach MySQL") != NULL, "output: %s", out);
    tier_test_db_drop(&e.m);
}

Test(tierd, bad_flag_and_help)
{
    char out[8192];
    char *bin = tier_test_bin("tierd");
    char *help[] = {bin, "--help", NULL};
    char *bad[] = {bin, "--no-such-flag", NULL};
    cr_assert_eq(tier_test_run(help, NULL, out, sizeof(out), 5000), 0);
    cr_assert(strstr(out, "usage: tierd") != NULL);
    cr_assert(strstr(out, "TIER_MYSQL_PASSWORD") != NULL, "says where the password comes from");
    cr_assert_eq(tier_test_run(bad, NULL, out, sizeof(out), 5000), 2);
    free(bin);
    char *ctl = tier_test_bin("tierctl");
    char *ctlhelp[] = {ctl, "--help", NULL};
    cr_assert_eq(tier_test_run(ctlhelp, NULL, out, sizeof(out), 5000), 0);
    cr_assert(strstr(out, "health") != NULL);
    free(ctl);
}

/* Polls `tierctl health` until it answers (tierd is starting). */
static int health(const char *url, char *out, size_t outlen, bool json)
{
    char *ctl = tier_test_bin("tierctl");
    char *argv[] = {ctl,
                    "--url",
                    (char *)url,
                    "--timeout",
                    "1000",
                    json ? "--json" : "health",
                    json ? "health" : NULL,
                    NULL};
    int st = -1;
    for (int i = 0; i < 50; i++) {
        st = tier_test_run(argv, NULL, out, outlen, 10000);
        if (st != 64 + 14) /* UNAVAILABLE: not up yet */
            break;
        usleep(100 * 1000);
    }
    free(ctl);
    return st;
}

static void serve_and_stop(int sig)
{
    env e;
    char out[4096];
    char *dir = tier_test_tmpdir();

    make_env(&e, dir, -1, -1);
    tier_test_tierd_start(&e.t, NULL);
    const char *listen = e.t.listen;

    cr_assert_eq(health(listen, out, sizeof(out), false), 0, "tierctl health: %s", out);
    cr_assert(strstr(out, "SERVING") != NULL, "%s", out);
    cr_assert(strstr(out, "redis") != NULL && strstr(out, "mysql") != NULL, "%s", out);
    cr_assert_eq(health(listen, out, sizeof(out), true), 0);
    cr_assert(strstr(out, "\"status\": \"SERVING\"") != NULL, "%s", out);

    int st = tier_test_tierd_stop(&e.t, sig, 10000);
    char *text = tier_test_slurp(e.t.log, NULL);
    cr_assert_eq(st, 0, "clean exit on signal %d, got %d: %s", sig, st, text);
    cr_assert(text && strstr(text, "shutting down") && strstr(text, "stopped"), "%s", text);
    free(text);
    /* Gone: health now fails with UNAVAILABLE (exit 64 + 14). */
    char *ctl = tier_test_bin("tierctl");
    char *h[] = {ctl, "--url", (char *)listen, "--timeout", "300", "health", NULL};
    cr_assert_eq(tier_test_run(h, NULL, out, sizeof(out), 5000), 64 + 14, "%s", out);
    free(ctl);
    tier_test_db_drop(&e.m);
    tier_test_rmtree(dir);
    free(dir);
}

Test(tierd, serves_health_and_stops_on_sigterm)
{
    serve_and_stop(SIGTERM);
}

Test(tierd, stops_on_sigint)
{
    serve_and_stop(SIGINT);
}

/* ---- a dependency dying while tierd runs */

static pid_t start_redis(int port, const char *dir)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    char *argv[] = {
        "/usr/bin/redis-server", "--port", p,       "--bind",    "127.0.0.1", "--save", "",
        "--appendonly",          "no",     "--dir", (char *)dir, NULL};
    char log[1024];
    snprintf(log, sizeof(log), "%s/redis.log", dir);
    pid_t pid = tier_test_spawn(argv, NULL, log);
    char *cli[] = {"/usr/bin/redis-cli", "-p", p, "ping", NULL};
    char out[64];
    for (int i = 0; i < 100; i++) {
        if (tier_test_run(cli, NULL, out, sizeof(out), 2000) == 0 && strstr(out, "PONG"))
            return pid;
        usleep(50 * 1000);
    }
    cr_assert_fail("redis-server on port %d did not start", port);
    return -1;
}

/* tierctl with args; its exit status, output in out. */
static int ctl(const char *url, char *out, size_t len, const char *a1, const char *a2,
               const char *a3)
{
    char *bin = tier_test_bin("tierctl");
    char *argv[] = {bin,        "--url",    (char *)url, "--timeout", "3000",
                    (char *)a1, (char *)a2, (char *)a3,  NULL};
    int st = tier_test_run(argv, NULL, out, len, 10000);
    free(bin);
    return st;
}

/* Redis dies under a running tierd: calls that need it answer UNAVAILABLE
 * naming it, Health says NOT_SERVING (redis), everything else keeps being
 * served; when Redis is back, so is tierd, without a restart. */
Test(tierd, redis_dying_at_runtime)
{
    env e;
    char out[4096];
    char *dir = tier_test_tmpdir();
    int port = tier_test_free_port();

    make_env(&e, dir, -1, port);
    pid_t redis = start_redis(port, dir);
    tier_test_tierd_start(&e.t, NULL);
    char *listen = e.t.listen;
    cr_assert_eq(health(listen, out, sizeof(out), false), 0, "%s", out);

    /* A content on bronze (the sample levels live under the test db's
     * storage root: tier_test_db_create(NULL) used TIER_STORAGE_ROOT). */
    cr_assert_eq(ctl(listen, out, sizeof(out), "levels", NULL, NULL), 0, "%s", out);
    char bronze[1024] = "";
    sscanf(strstr(out, "bronze"), "bronze %*d %*d %1000s", bronze);
    char file[1100];
    snprintf(file, sizeof(file), "%sx.mp4", bronze);
    cr_assert(tier_test_write_file(file, "x", 1), "%s", file);
    cr_assert_eq(ctl(listen, out, sizeof(out), "add", "x.mp4", NULL), 0, "%s", out);

    kill(redis, SIGKILL);
    tier_test_wait(redis, 5000);

    /* Needs Redis (a job): that item is UNAVAILABLE, the call still answers. */
    char *ctlbin = tier_test_bin("tierctl");
    char *views[] = {ctlbin, "--url", listen, "--timeout", "3000", "views", "1", "1500", NULL};
    int st = tier_test_run(views, NULL, out, sizeof(out), 10000);
    cr_assert_eq(st, 64 + 14, "status %d: %s", st, out);
    cr_assert(strstr(out, "Redis") != NULL, "names Redis: %s", out);
    /* Needs nothing but memory: served. */
    char *same[] = {ctlbin, "--url", listen, "--timeout", "3000", "views", "1", "5", NULL};
    cr_assert_eq(tier_test_run(same, NULL, out, sizeof(out), 10000), 0, "%s", out);
    /* MySQL-backed calls: served. */
    cr_assert_eq(ctl(listen, out, sizeof(out), "content", "1", NULL), 0, "%s", out);
    cr_assert_eq(ctl(listen, out, sizeof(out), "comments", "1", NULL), 0, "%s", out);
    /* Health names the one that is down. */
    cr_assert_eq(ctl(listen, out, sizeof(out), "health", NULL, NULL), 64 + 14, "%s", out);
    cr_assert(strstr(out, "NOT_SERVING") && strstr(out, "redis    DOWN"), "%s", out);

    /* Back again: served again, no restart. */
    redis = start_redis(port, dir);
    cr_assert_eq(ctl(listen, out, sizeof(out), "health", NULL, NULL), 0, "%s", out);
    st = tier_test_run(views, NULL, out, sizeof(out), 10000);
    cr_assert_eq(st, 0, "status %d: %s", st, out);
    cr_assert(strstr(out, "\"target\": \"silver\"") != NULL, "%s", out);

    cr_assert_eq(tier_test_tierd_stop(&e.t, SIGTERM, 10000), 0);
    kill(redis, SIGKILL);
    tier_test_wait(redis, 5000);
    /* The sample levels are shared with scripts/run.sh: leave nothing there
     * (the job may have moved the file to silver). */
    unlink(file);
    char moved[1200];
    snprintf(moved, sizeof(moved), "%.*ssilver/x.mp4", (int)(strlen(bronze) - strlen("bronze/")),
             bronze);
    unlink(moved);
    tier_test_db_drop(&e.m);
    tier_test_rmtree(dir);
    free(dir);
    free(ctlbin);
}
