/*
 * test_config.c -- tierd's options (tierd/options.c, common/tier_options.c,
 * docs/CONFIG.md): --help lists every option with its variable, bad values
 * from the file, the environment and flags are refused naming where they
 * came from and the range, units are refused ("lease_ms = 30s"),
 * precedence is file < environment < flags (seen with --print-config,
 * which masks secrets), docs/CONFIG.md is what --help-markdown says,
 * redis_db puts a tierd's keys in its own Redis database, and tier-worker
 * reads its options the same way.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tier_testenv.h"
#include "tierd.h"
#include "worker_options.h"

/* The inherited environment (.run/env) may set options; these tests say
 * what they mean.  An empty variable counts as unset. */
static char *const base_env[] = {
    "TIER_NO_AUTH=1",     "TIER_AUTH_TOKENS=", "TIER_LISTEN=",
    "TIER_PUSH=",         "TIER_THREADS=",     "TIER_LEASE_MS=",
    "TIER_STORAGE_ROOT=", "TIER_CONFIG=",      "TIER_REDIS_DB=",
    "TIER_REDIS_HOST=",   "TIER_REDIS_PORT=",  "TIER_REDIS_PREFIX=",
    "TIER_TLS_CERT=",     "TIER_TLS_KEY=",     NULL,
};

/* Runs tierd with base_env, then extra_env (NULL-terminated, may be NULL),
 * and args; its exit status, its output in out. */
static int run_tierd(char *const extra_env[], char *const args[], char *out, size_t len)
{
    char *argv[32], *envp[48];
    size_t n = 0, e = 0;

    argv[n++] = tier_test_bin("tierd");
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    for (size_t i = 0; base_env[i] != NULL; i++)
        envp[e++] = base_env[i];
    for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL && e < 47; i++)
        envp[e++] = extra_env[i];
    envp[e] = NULL;
    int st = tier_test_run(argv, envp, out, len, 10000);
    free(argv[0]);
    return st;
}

/* A config file with `text` in a fresh directory; its path (malloc'ed). */
static char *conf(const char *text)
{
    static char *dir;
    static int seq;
    char path[1024];

    if (dir == NULL)
        dir = tier_test_tmpdir();
    snprintf(path, sizeof(path), "%s/c%d.conf", dir, seq++);
    cr_assert(tier_test_write_file(path, text, strlen(text)));
    return strdup(path);
}

Test(config, help_lists_every_option_with_its_variable)
{
    static char out[32768];
    const tier_opts *t = tierd_options();
    char *help[] = {"--help", NULL};

    cr_assert_eq(run_tierd(NULL, help, out, sizeof(out)), 0, "%s", out);
    for (size_t i = 0; i < t->n; i++) {
        const tier_opt *o = &t->opts[i];
        char flag[80];
        if (o->env != NULL)
            cr_expect(strstr(out, o->env) != NULL, "%s not in --help", o->env);
        if (o->key != NULL)
            cr_expect(strstr(out, o->key) != NULL, "%s not in --help", o->key);
        snprintf(flag, sizeof(flag), "--%s", o->flag ? o->flag : "");
        if (o->flag != NULL && !(o->flags & TIER_OPT_SECRET))
            cr_expect(strstr(out, flag) != NULL, "%s not in --help", flag);
    }
    static const char *const must[] = {
        "TIER_REDIS_PREFIX", "TIER_REDIS_DB", "--redis-db",           "--auth-tokens", "--no-auth",
        "--tls-cert",        "--tls-key",     "--insecure-plaintext", "--print-config"};
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        cr_expect(strstr(out, must[i]) != NULL, "%s not in --help", must[i]);
    /* Secrets are never flags. */
    cr_expect(strstr(out, "--mysql-password") == NULL && strstr(out, "--redis-password") == NULL);
}

/* Every option in the table: secrets have no flag, numbers have sane
 * bounds and their default is within them (tier_opts_defaults checks). */
Test(config, table_is_consistent)
{
    const tier_opts *t = tierd_options();
    tierd_config c;

    memset(&c, 0, sizeof(c));
    cr_assert_eq(tier_opts_defaults(t, &c), 0);
    cr_assert_leq(t->n, TIER_OPTS_MAX);
    for (size_t i = 0; i < t->n; i++) {
        const tier_opt *o = &t->opts[i];
        cr_expect(o->help != NULL && o->help[0] != '\0');
        cr_expect(o->type == TIER_OPT_ACTION || o->min <= o->max, "%s", o->key ? o->key : o->flag);
        for (size_t j = 0; j < i; j++) {
            const tier_opt *p = &t->opts[j];
            cr_expect(!(o->key && p->key && strcmp(o->key, p->key) == 0), "dup %s", o->key);
            cr_expect(!(o->env && p->env && strcmp(o->env, p->env) == 0), "dup %s", o->env);
            cr_expect(!(o->flag && p->flag && strcmp(o->flag, p->flag) == 0), "dup %s", o->flag);
        }
    }
    cr_assert_eq(c.threads, 16);
    cr_assert_eq(c.lease_ms, 30000);
    cr_assert_str_eq(c.redis_prefix, "tier:");
    cr_assert_eq(c.kv.db, 0);
}

typedef struct {
    const char *text;       /* the file */
    const char *const *say; /* what the message must contain */
} bad_file;

Test(config, bad_file_values_are_refused_with_line_key_value_and_range)
{
    static const char *const s1[] = {":2: threads = \"16x\"", "1..1024", NULL};
    static const char *const s2[] = {":1: threads = \"99999999999\"", "1..1024", NULL};
    static const char *const s3[] = {"threads = \"184467440737095516160\"", "1..1024", NULL};
    static const char *const s4[] = {":1: lease_ms = \"30s\"",
                                     "lease_ms is in milliseconds: "
                                     "write 30000",
                                     NULL};
    static const char *const s5[] = {"rpc_dedupe_mb = \"64MB\"", "in MiB: write 64", NULL};
    static const char *const s6[] = {"no_auth = \"maybe\"", "true, false", NULL};
    static const char *const s7[] = {":3: unknown key \"thread\"", NULL};
    static const char *const s8[] = {"listen = \"127.0.0.1:7400\"", "tcp://", NULL};
    static const char *const s9[] = {"redis = \"h:70000\"", "1..65535", NULL};
    static const char *const s10[] = {":1: line longer than", NULL};
    static const char *const s11[] = {":1: a ';' after a blank", NULL};
    static const char *const s12[] = {"unknown section [worker]", NULL};
    static const char *const s13[] = {":1: expected key = value", NULL};
    static const char *const s14[] = {"storage_root = \"rel/dir\"", "absolute", NULL};
    static const char *const s15[] = {"done_retention_s = \"-1\"", "0..31536000", NULL};
    static const char *const s16[] = {"no_auth and auth_tokens exclude each other", NULL};
    char longline[400];
    snprintf(longline, sizeof(longline), "listen = tcp://127.0.0.1:7400/%0300d\n", 0);
    const bad_file bad[] = {
        {"# ok\nthreads = 16x\n", s1},
        {"threads = 99999999999\n", s2},
        {"threads = 184467440737095516160\n", s3},
        {"lease_ms = 30s\n", s4},
        {"rpc_dedupe_mb = 64MB\n", s5},
        {"no_auth = maybe\n", s6},
        {"threads = 4\n\nthread = 4\n", s7},
        {"listen = 127.0.0.1:7400\n", s8},
        {"redis = h:70000\n", s9},
        {longline, s10},
        {"mysql_password = abc ;def\n", s11},
        {"[worker]\nthreads = 4\n", s12},
        {"threads\n", s13},
        {"storage_root = rel/dir\n", s14},
        {"done_retention_s = -1\n", s15},
        {"no_auth = 1\nauth_tokens = /etc/tier/tokens\n", s16},
    };
    char out[4096];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *path = conf(bad[i].text);
        char *args[] = {"--config", path, "--print-config", NULL};
        char *noauth[] = {"TIER_NO_AUTH=", NULL};
        int st = run_tierd(noauth, args, out, sizeof(out));
        cr_expect_eq(st, 2, "%s: exit %d: %s", bad[i].text, st, out);
        cr_expect(strstr(out, path) != NULL, "%s: names the file: %s", bad[i].text, out);
        for (size_t j = 0; bad[i].say[j] != NULL; j++)
            cr_expect(strstr(out, bad[i].say[j]) != NULL, "%s: wants \"%s\" in: %s", bad[i].text,
                      bad[i].say[j], out);
        free(path);
    }
}

Test(config, bad_environment_and_flag_values_are_refused)
{
    char out[4096];
    char *env_threads[] = {"TIER_THREADS=16x", NULL};
    char *env_db[] = {"TIER_REDIS_DB=1024", NULL};
    char *env_lease[] = {"TIER_LEASE_MS=30s", NULL};
    char *print[] = {"--print-config", NULL};

    cr_assert_eq(run_tierd(env_threads, print, out, sizeof(out)), 2, "%s", out);
    cr_expect(strstr(out, "TIER_THREADS=\"16x\": threads is a whole number in 1..1024"), "%s", out);
    cr_assert_eq(run_tierd(env_db, print, out, sizeof(out)), 2, "%s", out);
    cr_expect(strstr(out, "TIER_REDIS_DB=\"1024\": redis_db must be in 0..1023"), "%s", out);
    cr_assert_eq(run_tierd(env_lease, print, out, sizeof(out)), 2, "%s", out);
    cr_expect(strstr(out, "write 30000"), "%s", out);

    char *f1[] = {"--threads", "99999999999", "--print-config", NULL};
    cr_assert_eq(run_tierd(NULL, f1, out, sizeof(out)), 2, "%s", out);
    cr_expect(strstr(out, "--threads \"99999999999\": threads must be in 1..1024"), "%s", out);
    char *f2[] = {"--lease-ms", "30s", NULL};
    cr_assert_eq(run_tierd(NULL, f2, out, sizeof(out)), 2, "%s", out);
    cr_expect(strstr(out, "--lease-ms \"30s\": lease_ms is in milliseconds: write 30000"), "%s",
              out);
    char *f3[] = {"--writer-ttl-ms", "50", NULL};
    cr_assert_eq(run_tierd(NULL, f3, out, sizeof(out)), 2, "%s", out);
    cr_expect(strstr(out, "100..600000"), "%s", out);
    char *f4[] = {"--threads", "", NULL};
    cr_assert_eq(run_tierd(NULL, f4, out, sizeof(out)), 2, "%s", out);
    char *f5[] = {"--contexts", "+5", NULL};
    cr_assert_eq(run_tierd(NULL, f5, out, sizeof(out)), 2, "%s", out);
    char *f6[] = {"--mysql", "db:port", NULL};
    cr_assert_eq(run_tierd(NULL, f6, out, sizeof(out)), 2, "%s", out);
    /* Secrets are not flags, and a bad one is not echoed. */
    char *f7[] = {"--mysql-password", "x", NULL};
    cr_assert_eq(run_tierd(NULL, f7, out, sizeof(out)), 2, "%s", out);
    char longpw[400], *env_pw[] = {longpw, NULL};
    snprintf(longpw, sizeof(longpw), "TIER_MYSQL_PASSWORD=%0300d", 7);
    cr_assert_eq(run_tierd(env_pw, print, out, sizeof(out)), 2, "%s", out);
    cr_expect(strstr(out, "(not shown)") && strstr(out, "at most 255") && !strstr(out, "0007"),
              "%s", out);
}

/* The value of "key = " in --print-config's output. */
static const char *value_of(const char *out, const char *key, char *buf, size_t len)
{
    char pat[80];
    snprintf(pat, sizeof(pat), "\n%s = ", key);
    const char *p = strstr(out, pat);
    cr_assert(p != NULL, "%s not printed: %s", key, out);
    p += strlen(pat);
    snprintf(buf, len, "%.*s", (int)strcspn(p, "\n"), p);
    return buf;
}

Test(config, precedence_is_file_then_environment_then_flags)
{
    char out[8192], v[256];
    char *path = conf("# tierd\n[tierd]\nthreads = 3\ncontexts = 30\n  lease_ms = 1000\n"
                      "storage_root = /a:/b\nstorage_root = /c\nredis = rhost:1234\n"
                      "mysql_password = sekrit-file\nredis_prefix = p_file:\n");
    char *file_only[] = {"--config", path, "--print-config", NULL};
    cr_assert_eq(run_tierd(NULL, file_only, out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(value_of(out, "threads", v, sizeof(v)), "3");
    cr_assert_str_eq(value_of(out, "contexts", v, sizeof(v)), "30");
    /* an indented line is a line of its own, not a continuation */
    cr_assert_str_eq(value_of(out, "lease_ms", v, sizeof(v)), "1000");
    cr_assert_str_eq(value_of(out, "redis_host", v, sizeof(v)), "rhost");
    cr_assert_str_eq(value_of(out, "redis_port", v, sizeof(v)), "1234");
    cr_assert(strstr(out, "storage_root = /a\nstorage_root = /b\nstorage_root = /c\n"), "%s", out);
    cr_assert(strstr(out, "sekrit") == NULL && strstr(out, "mysql_password = (set, not shown)"),
              "%s", out);

    char *env[] = {"TIER_THREADS=5", "TIER_STORAGE_ROOT=/e", "TIER_REDIS_PREFIX=p_env:", NULL};
    cr_assert_eq(run_tierd(env, file_only, out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(value_of(out, "threads", v, sizeof(v)), "5");
    cr_assert_str_eq(value_of(out, "contexts", v, sizeof(v)), "30");
    cr_assert_str_eq(value_of(out, "redis_prefix", v, sizeof(v)), "p_env:");
    cr_assert(strstr(out, "storage_root = /e\n") && !strstr(out, "storage_root = /a"), "%s", out);

    char *flags[] = {"--config",       path, "--threads", "7",   "--storage-root", "/f",
                     "--storage-root", "/g", "--redis",   "rh2", "--print-config", NULL};
    cr_assert_eq(run_tierd(env, flags, out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(value_of(out, "threads", v, sizeof(v)), "7");
    cr_assert_str_eq(value_of(out, "redis_host", v, sizeof(v)), "rh2");
    cr_assert_str_eq(value_of(out, "redis_port", v, sizeof(v)), "1234");
    cr_assert(strstr(out, "storage_root = /f\nstorage_root = /g\n") &&
                  !strstr(out, "storage_root = /e"),
              "%s", out);

    /* TIER_CONFIG names the file too; --config wins over it. */
    char cfg_env[1100], *env2[] = {cfg_env, NULL};
    char *print[] = {"--print-config", NULL};
    snprintf(cfg_env, sizeof(cfg_env), "TIER_CONFIG=%s", path);
    cr_assert_eq(run_tierd(env2, print, out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(value_of(out, "threads", v, sizeof(v)), "3");
    char *other = conf("threads = 9\n");
    char *flag_file[] = {"--config", other, "--print-config", NULL};
    cr_assert_eq(run_tierd(env2, flag_file, out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(value_of(out, "threads", v, sizeof(v)), "9");
    free(other);
    free(path);
}

/* Access rules still span sources: a file's no_auth yields to the
 * environment's tokens, and --print-config says when tierd would refuse. */
Test(config, access_choice_follows_precedence)
{
    char out[8192], v[64];
    char *path = conf("no_auth = yes\n");
    char *env[] = {"TIER_NO_AUTH=", "TIER_AUTH_TOKENS=/nonexistent/tokens", NULL};
    char *args[] = {"--config", path, "--print-config", NULL};

    cr_assert_eq(run_tierd(env, args, out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(value_of(out, "no_auth", v, sizeof(v)), "false");
    char *none[] = {"TIER_NO_AUTH=", NULL};
    char *print[] = {"--print-config", NULL};
    cr_assert_eq(run_tierd(none, print, out, sizeof(out)), 2, "%s", out);
    cr_assert(strstr(out, "say who may call") != NULL, "%s", out);
    char *both[] = {"--no-auth", "--auth-tokens", "x", NULL};
    cr_assert_eq(run_tierd(NULL, both, out, sizeof(out)), 2, "%s", out);
    cr_assert(strstr(out, "--no-auth and --auth-tokens exclude each other"), "%s", out);
    free(path);
}

/* docs/CONFIG.md holds `<prog> --help-markdown` between two markers. */
static void check_md(const char *prog)
{
    static char out[65536];
    char begin[96], end[96];
    char *argv[] = {tier_test_bin(prog), "--help-markdown", NULL};
    char *doc = tier_test_slurp(TIER_SOURCE_DIR "/docs/CONFIG.md", NULL);

    snprintf(begin, sizeof(begin), "<!-- BEGIN %s --help-markdown -->\n", prog);
    snprintf(end, sizeof(end), "<!-- END %s --help-markdown -->\n", prog);
    cr_assert_eq(tier_test_run(argv, NULL, out, sizeof(out), 10000), 0, "%s", out);
    cr_assert(doc != NULL, "docs/CONFIG.md missing");
    char *b = strstr(doc, begin), *e = b ? strstr(b, end) : NULL;
    cr_assert(b != NULL && e != NULL, "docs/CONFIG.md: %s markers missing", prog);
    b += strlen(begin);
    *e = '\0';
    cr_assert_str_eq(b, out,
                     "docs/CONFIG.md is not what %s --help-markdown prints: regenerate the "
                     "part between the markers",
                     prog);
    free(doc);
    free(argv[0]);
}

Test(config, config_md_is_up_to_date)
{
    check_md("tierd");
    check_md("tier-worker");
}

/* tier-worker reads its options through the same table mechanism. */
Test(config, worker_options_are_strict_and_listed)
{
    static char out[16384];
    char *bin = tier_test_bin("tier-worker"), v[64];
    char *help[] = {bin, "--help", NULL};
    char *env[] = {"TIER_URL=", "TIER_PULL=", "TIER_WORKER_MOVES=", "TIER_WORKER_CONFIG=", NULL};
    const tier_opts *t = worker_options();

    cr_assert_eq(tier_test_run(help, env, out, sizeof(out), 10000), 0, "%s", out);
    for (size_t i = 0; i < t->n; i++)
        if (t->opts[i].env != NULL)
            cr_expect(strstr(out, t->opts[i].env) != NULL, "%s not in --help", t->opts[i].env);

    char *path = conf("tierd = tcp://127.0.0.1:1\npull = tcp://127.0.0.1:2\nlease_ms = 5s\n");
    char *bad[] = {bin, "--config", path, NULL};
    cr_assert_eq(tier_test_run(bad, env, out, sizeof(out), 10000), 2, "%s", out);
    cr_expect(strstr(out, ":3: lease_ms = \"5s\": lease_ms is in milliseconds: write 5000"), "%s",
              out);
    char *moves[] = {
        bin, "--tierd", "tcp://127.0.0.1:1", "--pull", "tcp://127.0.0.1:2", "--moves", "257", NULL};
    cr_assert_eq(tier_test_run(moves, env, out, sizeof(out), 10000), 2, "%s", out);
    cr_expect(strstr(out, "--moves \"257\": moves must be in 1..256"), "%s", out);
    free(path);

    path = conf("[worker]\ntierd = tcp://127.0.0.1:1\npull = tcp://127.0.0.1:2\nmoves = 3\n");
    char *env2[] = {"TIER_URL=", "TIER_PULL=", "TIER_WORKER_MOVES=5", "TIER_WORKER_CONFIG=", NULL};
    char *print[] = {bin, "--config", path, "--lease-ms", "900", "--print-config", NULL};
    cr_assert_eq(tier_test_run(print, env2, out, sizeof(out), 10000), 0, "%s", out);
    cr_assert_str_eq(value_of(out, "moves", v, sizeof(v)), "5");
    cr_assert_str_eq(value_of(out, "lease_ms", v, sizeof(v)), "900");
    cr_assert_str_eq(value_of(out, "tierd", v, sizeof(v)), "tcp://127.0.0.1:1");
    free(path);
    free(bin);
}

/* ---- redis_db, against the real Redis and MariaDB */

static bool has_key(redisContext *rd, int db, const char *key)
{
    redisReply *r = redisCommand(rd, "SELECT %d", db);
    cr_assert(r && r->type != REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = redisCommand(rd, "EXISTS %s", key);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    bool yes = r->integer == 1;
    freeReplyObject(r);
    return yes;
}

static void drop_prefix(redisContext *rd, int db, const char *prefix)
{
    redisReply *r = redisCommand(rd, "SELECT %d", db);
    freeReplyObject(r);
    r = redisCommand(rd, "KEYS %s*", prefix);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        freeReplyObject(redisCommand(rd, "DEL %s", r->element[i]->str));
    freeReplyObject(r);
}

/* Two tierds with one key prefix on different Redis databases do not see
 * each other: both become the writer (on one database the second would
 * wait as a standby and never answer), each lease key in its own db. */
Test(config, redis_db_keeps_keys_apart, .timeout = 120)
{
    tier_test_mysql m1, m2;
    tier_test_tierd a, b;
    char host[64], prefix[64], key[96], out[8192];
    int port;
    char *root = tier_test_tmpdir();

    tier_test_mysql_env(&m1);
    tier_test_mysql_env(&m2);
    tier_test_db_create(&m1, root);
    tier_test_db_create(&m2, root);
    snprintf(prefix, sizeof(prefix), "tc%d:", (int)getpid());
    snprintf(key, sizeof(key), "%swriter", prefix);
    tier_test_redis_env(host, sizeof(host), &port);
    redisContext *rd = redisConnect(host, port);
    cr_assert(rd && !rd->err);

    tier_test_tierd_init(&a, root, m1.db, prefix);
    tier_test_tierd_setenv(&a, "TIER_THREADS=2");
    tier_test_tierd_setenv(&a, "TIER_REDIS_DB=7");
    tier_test_tierd_start(&a, NULL);
    tier_test_tierd_init(&b, NULL, m2.db, prefix);
    tier_test_tierd_setenv(&b, "TIER_THREADS=2");
    char *db8[] = {"--redis-db", "8", NULL};
    tier_test_tierd_start(&b, db8);

    cr_expect(has_key(rd, 7, key), "tierd a's lease is not in db 7");
    cr_expect(has_key(rd, 8, key), "tierd b's lease is not in db 8");
    cr_expect(!has_key(rd, 0, key), "a lease landed in db 0");

    /* A database the server does not have: refused at start, said why. */
    tier_test_tierd c;
    tier_test_tierd_init(&c, NULL, m1.db, "tc_none:");
    tier_test_tierd_setenv(&c, "TIER_REDIS_DB=1000");
    char *bin = tier_test_bin("tierd");
    char *argv[] = {bin, "--listen", c.listen, "--push", c.push, NULL};
    int st = tier_test_run(argv, c.envp, out, sizeof(out), 20000);
    cr_expect(st == 1 && strstr(out, "SELECT 1000") != NULL, "exit %d: %s", st, out);
    free(bin);

    cr_expect_eq(tier_test_tierd_stop(&a, SIGTERM, 20000), 0);
    cr_expect_eq(tier_test_tierd_stop(&b, SIGTERM, 20000), 0);
    drop_prefix(rd, 7, prefix);
    drop_prefix(rd, 8, prefix);
    redisFree(rd);
    tier_test_db_drop(&m1);
    tier_test_db_drop(&m2);
    tier_test_rmtree(root);
    free(root);
}
