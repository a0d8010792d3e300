/*
 * test_mariadb_ha.c -- tier on a MariaDB primary with a semi-synchronous
 * replica, and a manual failover (docs/CLUSTER.md, "The shared engines").
 *
 * Two private mariadbd processes in a temporary directory, on free ports:
 * the primary (binlog, GTID, rpl_semi_sync_master_enabled, wait point
 * AFTER_SYNC) and a replica (rpl_semi_sync_slave_enabled, read_only).
 * tierd (Redis from the services, as every test) writes to the primary
 * while two tier-workers move files; the primary is SIGKILLed in the
 * middle of the moves.  The operator's failover is played here: the
 * replica is promoted (STOP SLAVE, RESET SLAVE ALL, read_only off) and
 * tierd is restarted against it.  Checked: every row the primary showed
 * before the kill is on the replica (semi-sync AFTER_SYNC: nothing
 * committed is lost), the writer fence row came along (the restarted
 * tierd's token is above the old one), and after the drain the crash
 * invariants I1..I7 hold on the new primary.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_testenv.h"
#include "tier_time.h"

#define NC 16
#define SILVER 1500
#define GOLD 2500
#define PW "hatestpw1234"

static void kill_children(void)
{
    tier_test_kill_children();
}

TestSuite(mariadb_ha, .fini = kill_children);

typedef struct {
    char *dir;
    int port[2];
    pid_t pid[2];
    char sock[2][1100];
} pair;

static MYSQL *root_conn(pair *p, int i)
{
    MYSQL *c = mysql_init(NULL);
    unsigned int t = 5;
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    if (mysql_real_connect(c, "localhost", "root", "", NULL, 0, p->sock[i], 0) == NULL) {
        mysql_close(c);
        return NULL;
    }
    return c;
}

static void root_sql(pair *p, int i, const char *q)
{
    MYSQL *c = root_conn(p, i);
    cr_assert(c != NULL, "root connection to mariadb %d", i);
    cr_assert(mysql_query(c, q) == 0, "mariadb %d: %s: %s", i, q, mysql_error(c));
    MYSQL_RES *r = mysql_store_result(c);
    if (r)
        mysql_free_result(r);
    mysql_close(c);
}

/* One value of SHOW ... on server i ("" when none). */
static void root_value(pair *p, int i, const char *q, const char *column, char *out, size_t len)
{
    MYSQL *c = root_conn(p, i);
    out[0] = '\0';
    if (c == NULL)
        return;
    if (mysql_query(c, q) == 0) {
        MYSQL_RES *r = mysql_store_result(c);
        MYSQL_ROW row;
        if (r && (row = mysql_fetch_row(r)) != NULL) {
            unsigned n = mysql_num_fields(r);
            MYSQL_FIELD *f = mysql_fetch_fields(r);
            for (unsigned k = 0; k < n; k++)
                if (strcmp(f[k].name, column) == 0 && row[k] != NULL)
                    snprintf(out, len, "%s", row[k]);
        }
        if (r)
            mysql_free_result(r);
    }
    mysql_close(c);
}

static void mariadb_start(pair *p, int i)
{
    char data[1100], pidf[1100], err[1100], port[16], sid[16], out[4096];
    snprintf(data, sizeof(data), "%s/m%d", p->dir, i);
    snprintf(pidf, sizeof(pidf), "%s/m%d.pid", p->dir, i);
    snprintf(err, sizeof(err), "%s/m%d.err", p->dir, i);
    snprintf(p->sock[i], sizeof(p->sock[i]), "%s/m%d.sock", p->dir, i);
    snprintf(port, sizeof(port), "%d", p->port[i]);
    snprintf(sid, sizeof(sid), "%d", i + 1);
    char dd[1200], bl[1200];
    snprintf(dd, sizeof(dd), "--datadir=%s", data);
    snprintf(bl, sizeof(bl), "--log-bin=%s/bin", data);
    if (access(data, F_OK) != 0) {
        char *inst[] = {"/usr/bin/mariadb-install-db",
                        "--no-defaults",
                        dd,
                        "--user=root",
                        "--auth-root-authentication-method=normal",
                        "--skip-test-db",
                        NULL};
        int st = tier_test_run(inst, NULL, out, sizeof(out), 120000);
        cr_assert_eq(st, 0, "mariadb-install-db: %s", out);
    }
    char a[16][1200];
    int n = 0;
    snprintf(a[n++], 1200, "--port=%s", port);
    snprintf(a[n++], 1200, "--socket=%s", p->sock[i]);
    snprintf(a[n++], 1200, "--pid-file=%s", pidf);
    snprintf(a[n++], 1200, "--log-error=%s", err);
    snprintf(a[n++], 1200, "--server-id=%s", sid);
    char *argv[40] = {"/usr/sbin/mariadbd",
                      "--no-defaults",
                      "--user=root",
                      dd,
                      bl,
                      "--bind-address=127.0.0.1",
                      "--skip-name-resolve",
                      "--log-slave-updates=1",
                      "--gtid-strict-mode=1",
                      "--sync-binlog=1",
                      "--innodb-flush-log-at-trx-commit=1",
                      "--innodb-buffer-pool-size=64M",
                      "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
                      "--rpl-semi-sync-master-timeout=600000",
                      "--rpl-semi-sync-slave-enabled=1",
                      "--character-set-server=utf8mb4",
                      "--max-connections=200"};
    size_t k = 17;
    for (int j = 0; j < n; j++)
        argv[k++] = a[j];
    argv[k] = NULL;
    p->pid[i] = tier_test_spawn(argv, NULL, NULL);
    cr_assert_gt(p->pid[i], 0);
    MYSQL *c = NULL;
    for (int w = 0; w < 300 && (c = root_conn(p, i)) == NULL; w++)
        usleep(100 * 1000);
    char *log = c ? NULL : tier_test_slurp(err, NULL);
    cr_assert(c != NULL, "mariadb %d did not start: %s", i, log ? log : "");
    mysql_close(c);
}

static void pair_start(pair *p)
{
    char v[64];
    memset(p, 0, sizeof(*p));
    cr_assert((p->dir = tier_test_tmpdir()) != NULL);
    for (int i = 0; i < 2; i++) {
        p->port[i] = tier_test_free_port();
        mariadb_start(p, i);
    }
    /* Users first (binlogged, so the replica gets them), semi-sync on
     * once the replica is connected. */
    root_sql(p, 0, "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY '" PW "'");
    root_sql(p, 0, "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'");
    root_sql(p, 0, "CREATE USER 'tier'@'127.0.0.1' IDENTIFIED BY '" PW "'");
    root_sql(p, 0, "GRANT ALL ON *.* TO 'tier'@'127.0.0.1'");
    root_sql(p, 1, "SET GLOBAL read_only = 1");
    char q[512];
    snprintf(q, sizeof(q),
             "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %d, MASTER_USER = "
             "'repl', MASTER_PASSWORD = '" PW "', MASTER_USE_GTID = slave_pos",
             p->port[0]);
    root_sql(p, 1, q);
    root_sql(p, 1, "START SLAVE");
    root_sql(p, 0, "SET GLOBAL rpl_semi_sync_master_enabled = 1");
    int64_t end = tier_mono_ms() + 20000;
    do {
        root_value(p, 0, "SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'", "Value", v, sizeof(v));
        if (strcmp(v, "1") != 0)
            usleep(100 * 1000);
    } while (strcmp(v, "1") != 0 && tier_mono_ms() < end);
    cr_assert_str_eq(v, "1", "the replica did not connect semi-synchronously");
}

static void pair_stop(pair *p)
{
    for (int i = 0; i < 2; i++)
        if (p->pid[i] > 0) {
            kill(p->pid[i], SIGKILL);
            tier_test_wait(p->pid[i], 10000);
        }
    if (getenv("TIER_TEST_KEEP") == NULL)
        tier_test_rmtree(p->dir);
    free(p->dir);
}

typedef struct {
    pair p;
    tier_test_mysql m;
    char *root;
    char prefix[64];
    tier_test_tierd td;
    tier_client *c;
    pid_t w[2];
    char wlog[2][1200];
    tier_test_content ct[NC];
    redisContext *rd;
} fx;

static const char *logs_of(fx *f)
{
    static char buf[12000];
    size_t u = 0;
    const char *paths[3] = {f->td.log, f->wlog[0], f->wlog[1]};
    for (int k = 0; k < 3; k++) {
        size_t n = 0;
        char *log = tier_test_slurp(paths[k], &n);
        const char *tail = log && n > 2500 ? log + n - 2500 : log;
        u += (size_t)snprintf(buf + u, sizeof(buf) - u, "\n--- %s:\n%s", paths[k],
                              tail ? tail : "(none)");
        free(log);
        if (u >= sizeof(buf))
            u = sizeof(buf) - 1;
    }
    return buf;
}

/* ReportViews, retried while UNAVAILABLE; OK is remembered (I4). */
static int report(fx *f, int64_t cid, int64_t count)
{
    Tier__ViewReport v = TIER__VIEW_REPORT__INIT, *list[1] = {&v};
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep;
    int64_t end = tier_mono_ms() + 15000;
    int rv;

    v.cid = cid;
    v.count = count;
    req.reports = list;
    req.n_reports = 1;
    do {
        rv = tier_report_views(f->c, &req, &rep, NULL);
        if (rv == TIER_OK) {
            rv = rep->results[0]->code;
            tier_free(rep);
        }
    } while (rv == TIER_UNAVAILABLE && tier_mono_ms() < end && usleep(100 * 1000) == 0);
    if (rv == TIER_OK) {
        f->ct[cid - 1].reported = true;
        f->ct[cid - 1].last_count = count;
    }
    return rv;
}

static long live_jobs(fx *f)
{
    redisReply *x = redisCommand(f->rd, "KEYS %sjob:*", f->prefix);
    long n = 0;
    cr_assert(x != NULL && x->type == REDIS_REPLY_ARRAY, "Redis KEYS");
    for (size_t i = 0; i < x->elements; i++) {
        redisReply *s = redisCommand(f->rd, "HGET %s status", x->element[i]->str);
        n += s != NULL && !(s->type == REDIS_REPLY_STRING && strcmp(s->str, "failed") == 0);
        if (s)
            freeReplyObject(s);
    }
    freeReplyObject(x);
    return n;
}

static void drain(fx *f, int ms)
{
    int64_t end = tier_mono_ms() + ms;
    long live = 0;
    while (tier_mono_ms() < end && (live = live_jobs(f)) != 0)
        usleep(200 * 1000);
    cr_assert_eq(live, 0, "%ld jobs left after %d ms%s", live, ms, logs_of(f));
}

static MYSQL *tier_conn(fx *f, int port)
{
    MYSQL *my = mysql_init(NULL);
    cr_assert(mysql_real_connect(my, "127.0.0.1", "tier", PW, f->m.db, (unsigned)port, NULL, 0) !=
                  NULL,
              "%s", mysql_error(my));
    return my;
}

/* "cid:level,..." of every content, and the history rows, as one string. */
static void snapshot(MYSQL *my, char *out, size_t len, long *history)
{
    char n[32];
    size_t u = 0;
    out[0] = '\0';
    cr_assert(mysql_query(my, "SELECT cid, content_level FROM contents ORDER BY cid") == 0, "%s",
              mysql_error(my));
    MYSQL_RES *r = mysql_store_result(my);
    MYSQL_ROW row;
    while (r && (row = mysql_fetch_row(r)) != NULL && u < len)
        u += (size_t)snprintf(out + u, len - u, "%s:%s,", row[0], row[1]);
    if (r)
        mysql_free_result(r);
    tier_test_sql1(my, "SELECT COUNT(*) FROM update_history", n, sizeof(n));
    *history = atol(n);
}

Test(mariadb_ha, semisync_failover, .timeout = 240)
{
    fx fx_, *f = &fx_;
    char path[1200], q[256], dirs[4000], tok0[32], tok1[32];

    memset(f, 0, sizeof(*f));
    pair_start(&f->p);
    snprintf(f->m.host, sizeof(f->m.host), "127.0.0.1");
    f->m.port = f->p.port[0];
    snprintf(f->m.user, sizeof(f->m.user), "tier");
    snprintf(f->m.password, sizeof(f->m.password), PW);
    f->root = tier_test_tmpdir();
    tier_test_db_create(&f->m, f->root);
    MYSQL *my = tier_conn(f, f->p.port[0]);
    for (int i = 1; i <= NC; i++) {
        tier_test_content *c = &f->ct[i - 1];
        char body[64];
        int n = snprintf(body, sizeof(body), "content %d", i);
        c->cid = i;
        snprintf(c->filename, sizeof(c->filename), "c%d.bin", i);
        snprintf(c->initial_level, sizeof(c->initial_level), "bronze");
        c->sum = tier_test_checksum(body, (size_t)n);
        snprintf(path, sizeof(path), "%s/bronze/%s", f->root, c->filename);
        cr_assert(tier_test_write_file(path, body, (size_t)n), "%s", path);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%d, 'bronze', "
                 "'c%d.bin')",
                 i, i);
        cr_assert(mysql_query(my, q) == 0, "%s", mysql_error(my));
    }
    char host[64];
    int rport;
    tier_test_redis_env(host, sizeof(host), &rport);
    f->rd = redisConnect(host, rport);
    cr_assert(f->rd != NULL && !f->rd->err);
    snprintf(f->prefix, sizeof(f->prefix), "tha%d:", (int)getpid());

    tier_test_tierd_init(&f->td, f->root, f->m.db, f->prefix);
    tier_test_tierd_setenv_services(&f->td, &f->m, -1, -1);
    tier_test_tierd_setenv(&f->td, "TIER_WORKER_LEASE_MS=2000");
    tier_test_tierd_setenv(&f->td, "TIER_THREADS=4");
    tier_test_tierd_start(&f->td, NULL);
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
    tier_client_set_timeout(f->c, 5000);
    snprintf(dirs, sizeof(dirs), "%s/bronze,%s/silver,%s/gold", f->root, f->root, f->root);
    for (int k = 0; k < 2; k++) {
        char id[8];
        snprintf(id, sizeof(id), "w%d", k);
        snprintf(f->wlog[k], sizeof(f->wlog[k]), "%s/%s.log", f->root, id);
        f->w[k] = tier_test_worker_start(&f->td, id, dirs, f->wlog[k]);
    }

    /* Round 1 commits on the primary, semi-synchronously. */
    for (int i = 1; i <= NC; i++)
        cr_assert_eq(report(f, i, SILVER), TIER_OK, "report %d%s", i, logs_of(f));
    drain(f, 30000);
    tier_test_sql1(my, "SELECT token FROM writer_fence WHERE id = 1", tok0, sizeof(tok0));

    /* Round 2: the primary dies while these moves commit (half of the
     * reports are in, the workers are moving).  What it showed just before
     * is what it had committed (AFTER_SYNC: on the replica too).  The
     * reports after the kill still succeed: they only touch Redis. */
    char before[2048], after[2048];
    long hist_before = 0, hist_after;
    for (int i = 1; i <= NC; i++) {
        if (i == NC / 2 + 1) {
            usleep(100 * 1000);
            snapshot(my, before, sizeof(before), &hist_before);
            mysql_close(my);
            kill(f->p.pid[0], SIGKILL);
            tier_test_wait(f->p.pid[0], 10000);
            f->p.pid[0] = 0;
        }
        cr_assert_eq(report(f, i, GOLD), TIER_OK, "report %d%s", i, logs_of(f));
    }

    /* The operator's failover: promote the replica, restart tierd on it. */
    root_sql(&f->p, 1, "STOP SLAVE");
    root_sql(&f->p, 1, "RESET SLAVE ALL");
    root_sql(&f->p, 1, "SET GLOBAL rpl_semi_sync_master_enabled = 0");
    root_sql(&f->p, 1, "SET GLOBAL read_only = 0");
    my = tier_conn(f, f->p.port[1]);
    snapshot(my, after, sizeof(after), &hist_after);
    cr_assert_geq(hist_after, hist_before, "history rows lost: %ld on the primary, %ld promoted",
                  hist_before, hist_after);
    /* Every content the primary showed on gold is on gold on the replica. */
    for (int i = 1; i <= NC; i++) {
        char want[32];
        snprintf(want, sizeof(want), ",%d:gold,", i);
        char b[2100], a2[2100];
        snprintf(b, sizeof(b), ",%s", before);
        snprintf(a2, sizeof(a2), ",%s", after);
        if (strstr(b, want) != NULL)
            cr_assert(strstr(a2, want) != NULL, "cid %d: gold on the primary, lost (%s)", i, after);
    }
    fprintf(stderr, "mariadb failover: %ld history rows before the kill, %ld promoted\n",
            hist_before, hist_after);

    int st = tier_test_tierd_stop(&f->td, SIGKILL, 15000);
    cr_assert_neq(st, -1, "tierd did not stop");
    f->m.port = f->p.port[1];
    tier_test_tierd_setenv(&f->td, "TIER_MYSQL_PORT=%d", f->p.port[1]);
    /* The killed tierd's writer lease runs out first (ttl 3 s). */
    tier_test_tierd_start(&f->td, NULL);
    drain(f, 45000);
    tier_test_sql1(my, "SELECT token FROM writer_fence WHERE id = 1", tok1, sizeof(tok1));
    cr_assert_gt(atol(tok1), atol(tok0), "the fence row did not come along (%s -> %s)", tok0, tok1);

    static char msg[8192];
    int bad =
        tier_test_check_invariants(my, f->rd, f->prefix, f->root, f->ct, NC, msg, sizeof(msg));
    cr_assert_eq(bad, 0, "%d invariant violation(s):\n%s%s", bad, msg, logs_of(f));

    for (int k = 0; k < 2; k++) {
        kill(f->w[k], SIGTERM);
        cr_expect_eq(tier_test_wait(f->w[k], 20000), 0, "worker w%d", k);
    }
    cr_expect_neq(tier_test_tierd_stop(&f->td, SIGTERM, 15000), -1);
    tier_client_close(f->c);
    mysql_close(my);
    redisFree(f->rd);
    pair_stop(&f->p);
    if (getenv("TIER_TEST_KEEP") == NULL)
        tier_test_rmtree(f->root);
    free(f->root);
}
