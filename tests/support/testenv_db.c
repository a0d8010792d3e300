/*
 * testenv_db.c -- the databases part of tier_testenv.h: service addresses
 * from the environment, and one fresh, migrated MariaDB database per test.
 *
 * The services come from scripts/services.sh; their addresses reach us
 * through TIER_* variables (scripts/test.sh exports them from .run/env).  A
 * missing address fails the test: a test that silently skips would hide a
 * broken setup.
 *
 * Each test's database is named tier_t_<pid>_<counter>.  Criterion runs
 * every test in its own process, so the pid alone separates tests running
 * at once; the counter separates databases of one test.  The tier user may
 * create them because services.sh grants it `tier%`.*.
 */
#include "tier_testenv.h"

#include <criterion/criterion.h>
/* libmariadb-dev installs mysql.h under /usr/include/mariadb (found through
 * pkg-config's include path); libmariadb-dev-compat adds /usr/include/mysql. */
#if __has_include(<mysql.h>)
#include <mysql.h>
#else
#include <mysql/mysql.h>
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIGRATE_TIMEOUT_MS 120000

static void copy_env(const char *name, char *dst, size_t len)
{
    const char *v = getenv(name);
    cr_assert(v != NULL && v[0] != '\0',
              "%s is not set: start the services (scripts/services.sh start) and "
              "source .run/env, or run scripts/test.sh",
              name);
    cr_assert(strlen(v) < len, "%s is too long (%zu bytes)", name, strlen(v));
    memcpy(dst, v, strlen(v) + 1);
}

static int env_port(const char *name)
{
    char buf[16];
    copy_env(name, buf, sizeof(buf));
    char *end = NULL;
    long p = strtol(buf, &end, 10);
    cr_assert(end != buf && *end == '\0' && p > 0 && p < 65536, "%s=%s is not a port", name, buf);
    return (int)p;
}

void tier_test_mysql_env(tier_test_mysql *out)
{
    memset(out, 0, sizeof(*out));
    copy_env("TIER_MYSQL_HOST", out->host, sizeof(out->host));
    out->port = env_port("TIER_MYSQL_PORT");
    copy_env("TIER_MYSQL_USER", out->user, sizeof(out->user));
    /* An empty password is legal (someone else's server); unset is not. */
    const char *pw = getenv("TIER_MYSQL_PASSWORD");
    cr_assert(pw != NULL, "TIER_MYSQL_PASSWORD is not set");
    cr_assert(strlen(pw) < sizeof(out->password), "TIER_MYSQL_PASSWORD is too long");
    memcpy(out->password, pw, strlen(pw) + 1);
    copy_env("TIER_MYSQL_DB", out->db, sizeof(out->db));
}

void tier_test_redis_env(char *host, size_t hostlen, int *port)
{
    copy_env("TIER_REDIS_HOST", host, hostlen);
    *port = env_port("TIER_REDIS_PORT");
}

/* A connection without a default database (db may be NULL). */
static MYSQL *connect_server(const tier_test_mysql *m, const char *db)
{
    MYSQL *c = mysql_init(NULL);
    cr_assert(c != NULL, "mysql_init failed");
    unsigned int timeout = 10;
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (mysql_real_connect(c, m->host, m->user, m->password, db, (unsigned int)m->port, NULL, 0) ==
        NULL) {
        char err[512];
        snprintf(err, sizeof(err), "%s", mysql_error(c));
        mysql_close(c);
        cr_assert_fail("cannot connect to MariaDB %s@%s:%d: %s", m->user, m->host, m->port, err);
    }
    return c;
}

static void exec_sql(MYSQL *c, const char *sql)
{
    if (mysql_query(c, sql) != 0) {
        char err[512];
        snprintf(err, sizeof(err), "%s", mysql_error(c));
        mysql_close(c);
        cr_assert_fail("%s: %s", sql, err);
    }
}

/* Database names go into SQL as identifiers: keep them to [A-Za-z0-9_]. */
static void check_db_name(const char *db)
{
    size_t n = strlen(db);
    cr_assert(n > 0 && n <= 64, "bad database name length: '%s'", db);
    for (size_t i = 0; i < n; i++) {
        char ch = db[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_';
        cr_assert(ok, "bad database name '%s'", db);
    }
}

void tier_test_db_create(tier_test_mysql *m, const char *storage_root)
{
    static unsigned counter;
    cr_assert(m->port > 0, "tier_test_db_create: call tier_test_mysql_env first");
    snprintf(m->db, sizeof(m->db), "tier_t_%ld_%u", (long)getpid(), ++counter);

    MYSQL *c = connect_server(m, NULL);
    char sql[256];
    /* A test that crashed earlier under a since-reused pid may have left
     * this name behind. */
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS `%s`", m->db);
    exec_sql(c, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE `%s` CHARACTER SET utf8mb4", m->db);
    exec_sql(c, sql);
    mysql_close(c);

    int rc = tier_test_db_migrate(m, storage_root);
    cr_assert(rc == 0, "scripts/migrate.sh --db %s failed with status %d", m->db, rc);
}

void tier_test_db_drop(const tier_test_mysql *m)
{
    if (m->db[0] == '\0')
        return;
    check_db_name(m->db);
    MYSQL *c = connect_server(m, NULL);
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS `%s`", m->db);
    exec_sql(c, sql);
    mysql_close(c);
}

/* Child side of tier_test_db_migrate: only setenv/exec, then _exit. */
static void exec_migrate(const tier_test_mysql *m, const char *storage_root)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", m->port);
    /* The password travels in the environment; migrate.sh moves it into a
     * mode-600 defaults file, so it never shows up in a command line. */
    if (setenv("TIER_MYSQL_HOST", m->host, 1) != 0 || setenv("TIER_MYSQL_PORT", port, 1) != 0 ||
        setenv("TIER_MYSQL_USER", m->user, 1) != 0 ||
        setenv("TIER_MYSQL_PASSWORD", m->password, 1) != 0 ||
        setenv("TIER_MYSQL_DB", m->db, 1) != 0)
        _exit(126);
    if (storage_root != NULL && setenv("TIER_STORAGE_ROOT", storage_root, 1) != 0)
        _exit(126);
    char *argv[] = {"bash", TIER_SOURCE_DIR "/scripts/migrate.sh", "--db", (char *)m->db, NULL};
    execvp("bash", argv);
    fprintf(stderr, "exec bash: %s\n", strerror(errno));
    _exit(127);
}

int tier_test_db_migrate(const tier_test_mysql *m, const char *storage_root)
{
    check_db_name(m->db);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        exec_migrate(m, storage_root);

    struct timespec step = {0, 10 * 1000 * 1000};
    for (int waited = 0; waited < MIGRATE_TIMEOUT_MS; waited += 10) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            return 128 + WTERMSIG(st);
        }
        cr_assert(r == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        nanosleep(&step, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_fail("scripts/migrate.sh --db %s took longer than %d ms", m->db, MIGRATE_TIMEOUT_MS);
    return -1;
}

void tier_test_sql1(void *my, const char *q, char *out, size_t len)
{
    cr_assert(mysql_query(my, q) == 0, "%s: %s", q, mysql_error(my));
    MYSQL_RES *r = mysql_store_result(my);
    MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
    snprintf(out, len, "%s", row && row[0] ? row[0] : "");
    if (r)
        mysql_free_result(r);
}
