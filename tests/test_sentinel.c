/*
 * test_sentinel.c -- Redis through Sentinel (store/tier_kv.h) and a
 * failover under load, against real redis-server processes: a primary,
 * two replicas and three sentinels (quorum 2), each on a free port in a
 * temporary directory of this test.
 *
 *   parse      the sentinel list: what is accepted and what is refused
 *   hostile    a "sentinel" (a socket this test serves) that answers bad
 *              ports, bad hosts, oversized hosts, errors, nothing at all,
 *              or the address of a replica: each is refused (the replica
 *              by ROLE) and the next sentinel of the list is asked; a
 *              real sentinel with requirepass needs redis_sentinel_password
 *   failover   tierd with redis_sentinels and two tier-workers moving
 *              files; the primary is SIGKILLed mid-run.  The sentinels
 *              promote a replica, tierd follows it (calls succeed again
 *              within seconds, it never steps down), the job scripts
 *              WAIT for a replica, the old primary restarted with stale
 *              data is never used and is demoted, a WAIT that times out
 *              (replicas stopped) makes the call UNAVAILABLE, every report
 *              acknowledged is carried out, and the crash invariants
 *              (docs/CRASH.md) hold.
 *
 * Two replicas, not one: tierd WAITs for one replica after each job
 * script (redis_wait_replicas 1), so after the failover the new primary
 * must have a replica again -- the sentinels point the other one at it.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_kv.h"
#include "tier_status.h"
#include "tier_testenv.h"
#include "tier_time.h"

#define MASTER "tm"
#define NREPLICAS 2
#define NSENTINELS 3

static void kill_children(void)
{
    tier_test_kill_children();
}

TestSuite(sentinel, .fini = kill_children);

/* ---------------------------------------------------------- servers */

typedef struct {
    char *dir;
    int port[1 + NREPLICAS]; /* [0] the first primary */
    pid_t pid[1 + NREPLICAS];
    int sport[NSENTINELS];
    pid_t spid[NSENTINELS];
    char sentinels[256]; /* "127.0.0.1:p,..." */
} cluster;

/* A command on a fresh connection to port (NULL: no answer). */
static redisReply *rcmd(int port, const char *fmt, ...)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r = NULL;
    va_list ap;

    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static bool pong(int port)
{
    redisReply *r = rcmd(port, "PING");
    bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ok;
}

/* The "role" ROLE reports, "" when no answer. */
static void role_of(int port, char *out, size_t len)
{
    redisReply *r = rcmd(port, "ROLE");
    out[0] = '\0';
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(out, len, "%s", r->element[0]->str);
    if (r)
        freeReplyObject(r);
}

static pid_t redis_start(cluster *cl, int i, int master_port)
{
    char port[16], dir[1100], log[1200], mport[16];
    snprintf(port, sizeof(port), "%d", cl->port[i]);
    snprintf(mport, sizeof(mport), "%d", master_port);
    snprintf(dir, sizeof(dir), "%s/r%d", cl->dir, i);
    mkdir(dir, 0755);
    snprintf(log, sizeof(log), "%s/redis%d.log", cl->dir, i);
    /* The settings docs/CLUSTER.md recommends: AOF every second, and no
     * write accepted while no replica is in sync. */
    char *argv[] = {"/usr/bin/redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    port,
                    "--dir",
                    dir,
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--min-replicas-to-write",
                    "1",
                    "--min-replicas-max-lag",
                    "10",
                    "--repl-diskless-sync-delay",
                    "0",
                    master_port > 0 ? "--replicaof" : NULL,
                    "127.0.0.1",
                    mport,
                    NULL};
    pid_t pid = tier_test_spawn(argv, NULL, log);
    cr_assert_gt(pid, 0);
    for (int k = 0; k < 100 && !pong(cl->port[i]); k++)
        usleep(50 * 1000);
    cr_assert(pong(cl->port[i]), "redis %d did not start", i);
    return pid;
}

static long info_int(int port, const char *section, const char *field)
{
    redisReply *r = rcmd(port, "INFO %s", section);
    long v = -1;
    char key[64];
    snprintf(key, sizeof(key), "%s:", field);
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, key);
        if (p)
            v = strtol(p + strlen(key), NULL, 10);
    }
    if (r)
        freeReplyObject(r);
    return v;
}

/* calls=N of INFO commandstats' cmdstat_<cmd> (0: never called). */
static long info_cmd_calls(int port, const char *cmd)
{
    char key[64];
    snprintf(key, sizeof(key), "cmdstat_%s:calls", cmd);
    redisReply *r = rcmd(port, "INFO commandstats");
    long v = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, key);
        if (p)
            v = strtol(p + strlen(key) + 1, NULL, 10);
    }
    if (r)
        freeReplyObject(r);
    return v;
}

/* Entries SENTINEL <what> tm lists on sentinel port (-1: no answer). */
static long sentinel_count(int port, const char *what)
{
    redisReply *r = rcmd(port, "SENTINEL %s %s", what, MASTER);
    long n = r && r->type == REDIS_REPLY_ARRAY ? (long)r->elements : -1;
    if (r)
        freeReplyObject(r);
    return n;
}

static void sentinels_start(cluster *cl, bool watch_master)
{
    for (int i = 0; i < NSENTINELS; i++) {
        char conf[1100], log[1100], text[1024];
        cl->sport[i] = tier_test_free_port();
        snprintf(conf, sizeof(conf), "%s/sentinel%d.conf", cl->dir, i);
        snprintf(log, sizeof(log), "%s/sentinel%d.log", cl->dir, i);
        int n = snprintf(text, sizeof(text),
                         "bind 127.0.0.1\nport %d\ndir %s\n"
                         "sentinel monitor " MASTER " 127.0.0.1 %d 2\n"
                         "sentinel down-after-milliseconds " MASTER " 1000\n"
                         "sentinel failover-timeout " MASTER " 3000\n"
                         "sentinel parallel-syncs " MASTER " 1\n",
                         cl->sport[i], cl->dir, cl->port[0]);
        cr_assert(tier_test_write_file(conf, text, (size_t)n));
        char *argv[] = {"/usr/bin/redis-server", conf, "--sentinel", NULL};
        cl->spid[i] = tier_test_spawn(argv, NULL, log);
        cr_assert_gt(cl->spid[i], 0);
    }
    int u = 0;
    for (int i = 0; i < NSENTINELS; i++)
        u += snprintf(cl->sentinels + u, sizeof(cl->sentinels) - (size_t)u, "%s127.0.0.1:%d",
                      i ? "," : "", cl->sport[i]);
    if (!watch_master)
        return;
    /* Ready for a failover: every sentinel knows both replicas and the two
     * other sentinels (hello messages, every 2 s). */
    int64_t end = tier_mono_ms() + 20000;
    bool ready = false;
    while (!ready && tier_mono_ms() < end) {
        ready = true;
        for (int i = 0; i < NSENTINELS; i++)
            ready = ready && sentinel_count(cl->sport[i], "replicas") == NREPLICAS &&
                    sentinel_count(cl->sport[i], "sentinels") == NSENTINELS - 1;
        if (!ready)
            usleep(200 * 1000);
    }
    cr_assert(ready, "the sentinels did not find each other and the replicas in 20 s (%s)",
              cl->dir);
}

/* A primary and its replicas, in sync; sentinels too when asked. */
static void cluster_start(cluster *cl, bool sentinels)
{
    memset(cl, 0, sizeof(*cl));
    cr_assert((cl->dir = tier_test_tmpdir()) != NULL);
    for (int i = 0; i <= NREPLICAS; i++)
        cl->port[i] = tier_test_free_port();
    cl->pid[0] = redis_start(cl, 0, 0);
    for (int i = 1; i <= NREPLICAS; i++)
        cl->pid[i] = redis_start(cl, i, cl->port[0]);
    int64_t end = tier_mono_ms() + 15000;
    while (info_int(cl->port[0], "replication", "connected_slaves") < NREPLICAS &&
           tier_mono_ms() < end)
        usleep(100 * 1000);
    cr_assert_eq(info_int(cl->port[0], "replication", "connected_slaves"), NREPLICAS,
                 "replicas did not connect");
    if (sentinels)
        sentinels_start(cl, true);
}

static void cluster_stop(cluster *cl)
{
    for (int i = 0; i < NSENTINELS; i++)
        if (cl->spid[i] > 0) {
            kill(cl->spid[i], SIGKILL);
            tier_test_wait(cl->spid[i], 5000);
        }
    for (int i = 0; i <= NREPLICAS; i++)
        if (cl->pid[i] > 0) {
            kill(cl->pid[i], SIGKILL);
            tier_test_wait(cl->pid[i], 5000);
        }
    if (getenv("TIER_TEST_KEEP") == NULL)
        tier_test_rmtree(cl->dir);
    free(cl->dir);
}

/* ---------------------------------------------------------- parse */

Test(sentinel, parse)
{
    tier_kv_addr a[TIER_KV_MAX_SENTINELS];
    char err[256], big[400];
    size_t n;

    cr_assert_eq(tier_kv_sentinels_parse("h1:1,10.0.0.2:26379,[::1]:5", a, 16, &n, err, 256),
                 TIER_OK, "%s", err);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(a[0].host, "h1");
    cr_assert_eq(a[0].port, 1);
    cr_assert_str_eq(a[1].host, "10.0.0.2");
    cr_assert_eq(a[1].port, 26379);
    cr_assert_str_eq(a[2].host, "::1");
    cr_assert_eq(a[2].port, 5);
    cr_assert_eq(tier_kv_sentinels_parse("", a, 16, &n, err, 256), TIER_OK);
    cr_assert_eq(n, 0);

    memset(big, 'a', 300);
    snprintf(big + 300, sizeof(big) - 300, ":1");
    const char *bad[] = {"h",
                         "h:",
                         ":1",
                         "h:0",
                         "h:65536",
                         "h:1x",
                         "h:123456",
                         "h:1,",
                         ",h:1",
                         "h:1,,h:2",
                         "h;x:1",
                         "h x:1",
                         "h:-1",
                         "[h:1",
                         "h/x:1",
                         "h:+1",
                         "\x01:1",
                         big,
                         "a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1,j:1,k:1,l:1,m:1,n:1,o:1,p:1,q:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(tier_kv_sentinels_parse(bad[i], a, 16, &n, err, 256), TIER_INVALID_ARGUMENT,
                     "accepted \"%.40s\"", bad[i]);

    /* tier_kv_open: sentinels without a name; a bad list. */
    tier_kv_config c = {.port = 1};
    tier_kv *kv;
    snprintf(c.sentinels, sizeof(c.sentinels), "127.0.0.1:1");
    cr_assert_eq(tier_kv_open(&kv, &c, err, sizeof(err)), TIER_INVALID_ARGUMENT);
    snprintf(c.master_name, sizeof(c.master_name), "x");
    snprintf(c.sentinels, sizeof(c.sentinels), "127.0.0.1");
    cr_assert_eq(tier_kv_open(&kv, &c, err, sizeof(err)), TIER_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------- hostile */

/* A "sentinel" this test serves: each connection gets the next canned
 * answer (NULL: read the request, answer nothing, hold the connection
 * past the client's read timeout). */
typedef struct {
    int fd, port;
    const char *const *answers;
    size_t n;
    pthread_t th;
} fake;

static void *fake_main(void *arg)
{
    fake *f = arg;
    for (size_t i = 0; i < f->n; i++) {
        int c = accept(f->fd, NULL, NULL);
        char buf[4096];
        if (c < 0)
            break;
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 3000) == 1 && read(c, buf, sizeof(buf)) > 0) {
            if (f->answers[i] != NULL) {
                ssize_t w = write(c, f->answers[i], strlen(f->answers[i]));
                (void)w;
            } else {
                usleep(1500 * 1000);
            }
        }
        close(c);
    }
    return NULL;
}

static void fake_start(fake *f, const char *const *answers, size_t n)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);

    f->answers = answers;
    f->n = n;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert((f->fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    cr_assert(bind(f->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    cr_assert(listen(f->fd, 16) == 0);
    cr_assert(getsockname(f->fd, (struct sockaddr *)&a, &len) == 0);
    f->port = ntohs(a.sin_port);
    cr_assert(pthread_create(&f->th, NULL, fake_main, f) == 0);
}

static void fake_stop(fake *f)
{
    shutdown(f->fd, SHUT_RDWR);
    close(f->fd);
    pthread_join(f->th, NULL);
}

/* "*2 $len host $len port" */
static void addr_answer(char *buf, size_t len, const char *host, const char *port)
{
    snprintf(buf, len, "*2\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(host), host, strlen(port),
             port);
}

Test(sentinel, hostile, .timeout = 60)
{
    cluster cl;
    char big[1200], bighost[600], replica[128], master[128], rp[16], mp[16], err[512];
    tier_kv *kv;

    cluster_start(&cl, false);
    memset(bighost, 'a', 300);
    bighost[300] = '\0';
    addr_answer(big, sizeof(big), bighost, "6379");
    snprintf(rp, sizeof(rp), "%d", cl.port[1]);
    snprintf(mp, sizeof(mp), "%d", cl.port[0]);
    addr_answer(replica, sizeof(replica), "127.0.0.1", rp);
    addr_answer(master, sizeof(master), "127.0.0.1", mp);
    const char *const answers[] = {
        "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n70000\r\n",       /* port out of range */
        "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n0x10\r\n",        /* not decimal */
        "*2\r\n$11\r\n127.0.0.1;x\r\n$4\r\n6379\r\n",     /* a host with ';' */
        "*2\r\n$9\r\n127.0.0.1\r\n:6379\r\n",             /* port as an integer */
        "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",        /* three elements */
        "*1\r\n$9\r\n127.0.0.1\r\n",                      /* one element */
        big,                                              /* a 300-byte host */
        "-ERR unknown command\r\n",                       /* an error */
        ":5\r\n",                                         /* an integer */
        "*-1\r\n",                                        /* no such master */
        "$-1\r\n",                                        /* nil */
        "*2\r\n$9\r\n127.0.0.1\r\n$0\r\n\r\n",            /* empty port */
        "*2\r\n$0\r\n\r\n$4\r\n6379\r\n",                 /* empty host */
        "*2\r\n$9\r\n127.0.0.1\r\n$1\r\n1\r\n",           /* nothing listens there */
        NULL,                                             /* no answer at all */
        replica,                                          /* a replica: ROLE refuses it */
        "*2\r\n$5\r\n\x01\x02\x03\x04\x05\r\n$1\r\n1\r\n" /* control bytes */
    };
    size_t na = sizeof(answers) / sizeof(answers[0]);
    fake f;
    fake_start(&f, answers, na);

    tier_kv_config c;
    memset(&c, 0, sizeof(c));
    snprintf(c.master_name, sizeof(c.master_name), MASTER);
    snprintf(c.sentinels, sizeof(c.sentinels), "127.0.0.1:%d", f.port);
    for (size_t i = 0; i < na; i++) {
        int64_t t0 = tier_mono_ms();
        int rv = tier_kv_open(&kv, &c, err, sizeof(err));
        cr_expect_eq(rv, TIER_UNAVAILABLE, "answer %zu accepted (%s)", i, tier_status_name(rv));
        if (rv == TIER_OK)
            tier_kv_close(kv);
        cr_expect_lt(tier_mono_ms() - t0, 4000, "answer %zu: %lld ms", i,
                     (long long)(tier_mono_ms() - t0));
    }
    fake_stop(&f);

    /* A list: a bad one, a replica, the master -- the third is used. */
    const char *const three[] = {"-ERR no\r\n", replica, master};
    fake_start(&f, three, 1);
    fake g, h;
    fake_start(&g, three + 1, 1);
    fake_start(&h, three + 2, 1);
    snprintf(c.sentinels, sizeof(c.sentinels), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", f.port,
             g.port, h.port);
    cr_assert_eq(tier_kv_open(&kv, &c, err, sizeof(err)), TIER_OK, "%s", err);
    cr_assert_eq(tier_kv_addr_of(kv)->port, cl.port[0]);
    cr_assert_eq(tier_kv_ping(kv, err, sizeof(err)), TIER_OK);
    tier_kv_close(kv);
    fake_stop(&f);
    fake_stop(&g);
    fake_stop(&h);

    /* A real sentinel with a password: refused without it, used with it. */
    {
        char conf[1100], log[1100], text[512];
        int sp = tier_test_free_port();
        snprintf(conf, sizeof(conf), "%s/sentinel-pw.conf", cl.dir);
        snprintf(log, sizeof(log), "%s/sentinel-pw.log", cl.dir);
        int n = snprintf(text, sizeof(text),
                         "bind 127.0.0.1\nport %d\ndir %s\nrequirepass s3cret\n"
                         "sentinel monitor " MASTER " 127.0.0.1 %d 1\n",
                         sp, cl.dir, cl.port[0]);
        cr_assert(tier_test_write_file(conf, text, (size_t)n));
        char *argv[] = {"/usr/bin/redis-server", conf, "--sentinel", NULL};
        cl.spid[0] = tier_test_spawn(argv, NULL, log);
        redisReply *pr = NULL; /* PING answers NOAUTH: any answer means it is up */
        for (int k = 0; k < 100 && (pr = rcmd(sp, "PING")) == NULL; k++)
            usleep(50 * 1000);
        cr_assert(pr != NULL, "the sentinel with a password did not start");
        freeReplyObject(pr);
        snprintf(c.sentinels, sizeof(c.sentinels), "127.0.0.1:%d", sp);
        cr_assert_eq(tier_kv_open(&kv, &c, err, sizeof(err)), TIER_UNAVAILABLE);
        cr_assert(strstr(err, "NOAUTH") != NULL || strstr(err, "auth") != NULL ||
                      strstr(err, "AUTH") != NULL,
                  "%s", err);
        snprintf(c.sentinel_password, sizeof(c.sentinel_password), "wrong");
        cr_assert_eq(tier_kv_open(&kv, &c, err, sizeof(err)), TIER_UNAVAILABLE);
        cr_assert(strstr(err, "AUTH refused") != NULL, "%s", err);
        snprintf(c.sentinel_password, sizeof(c.sentinel_password), "s3cret");
        cr_assert_eq(tier_kv_open(&kv, &c, err, sizeof(err)), TIER_OK, "%s", err);
        cr_assert_eq(tier_kv_addr_of(kv)->port, cl.port[0]);
        tier_kv_close(kv);
    }

    /* A write on a connection that turned out to be a replica: READONLY
     * marks it broken (the pool drops it and asks the sentinels again). */
    tier_kv_config d;
    memset(&d, 0, sizeof(d));
    snprintf(d.host, sizeof(d.host), "127.0.0.1");
    d.port = cl.port[1];
    cr_assert_eq(tier_kv_open(&kv, &d, err, sizeof(err)), TIER_OK, "%s", err);
    const char *set[3] = {"SET", "k", "v"};
    redisReply *r = tier_kv_argv(kv, 3, set, NULL);
    cr_assert(r != NULL && r->type == REDIS_REPLY_ERROR);
    freeReplyObject(r);
    cr_assert(tier_kv_broken(kv), "READONLY did not mark the connection broken");
    tier_kv_close(kv);
    cluster_stop(&cl);
}

/* ---------------------------------------------------------- failover */

#define NC 24
#define SILVER 1500
#define GOLD 2500

typedef struct {
    cluster cl;
    tier_test_mysql m;
    char *root;
    char prefix[64];
    MYSQL *my;
    tier_test_tierd td;
    tier_client *c;
    pid_t w[2];
    char wlog[2][1200];
    tier_test_content ct[NC];
} fx;

static void sql(fx *f, const char *q)
{
    cr_assert(mysql_query(f->my, q) == 0, "%s: %s", q, mysql_error(f->my));
    MYSQL_RES *r = mysql_store_result(f->my);
    if (r)
        mysql_free_result(r);
}

static const char *logs_of(fx *f)
{
    static char buf[16000];
    size_t u = 0;
    const char *paths[3] = {f->td.log, f->wlog[0], f->wlog[1]};
    for (int k = 0; k < 3; k++) {
        size_t n = 0;
        char *log = tier_test_slurp(paths[k], &n);
        const char *tail = log && n > 3000 ? log + n - 3000 : log;
        u += (size_t)snprintf(buf + u, sizeof(buf) - u, "\n--- %s:\n%s", paths[k],
                              tail ? tail : "(none)");
        free(log);
        if (u >= sizeof(buf))
            u = sizeof(buf) - 1;
    }
    return buf;
}

/* ReportViews of one count, retried while UNAVAILABLE (the failover) up
 * to deadline; an OK answer is remembered (I4).  The status. */
static int report(fx *f, int64_t cid, int64_t count, int64_t deadline, int *tries)
{
    Tier__ViewReport v = TIER__VIEW_REPORT__INIT, *list[1] = {&v};
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep;
    tier_error e;
    int rv;

    v.cid = cid;
    v.count = count;
    req.reports = list;
    req.n_reports = 1;
    for (*tries = 1;; (*tries)++) {
        rv = tier_report_views(f->c, &req, &rep, &e);
        if (rv == TIER_OK) {
            rv = rep->results[0]->code;
            tier_free(rep);
        }
        if (rv != TIER_UNAVAILABLE || tier_mono_ms() >= deadline)
            break;
        usleep(100 * 1000);
    }
    if (rv == TIER_OK) {
        f->ct[cid - 1].reported = true;
        f->ct[cid - 1].last_count = count;
    }
    return rv;
}

/* The current master, found as tier finds it. */
static tier_kv *master_kv(fx *f)
{
    tier_kv_config c;
    tier_kv *kv = NULL;
    char err[512];

    memset(&c, 0, sizeof(c));
    snprintf(c.sentinels, sizeof(c.sentinels), "%s", f->cl.sentinels);
    snprintf(c.master_name, sizeof(c.master_name), MASTER);
    for (int i = 0; i < 100 && tier_kv_open(&kv, &c, err, sizeof(err)) != TIER_OK; i++)
        usleep(100 * 1000);
    cr_assert(kv != NULL, "no master through the sentinels: %s", err);
    return kv;
}

/* Job hashes of the prefix not "failed": still to be carried out. */
static long live_jobs(fx *f, redisContext *rd)
{
    redisReply *x = redisCommand(rd, "KEYS %sjob:*", f->prefix);
    long n = 0;
    cr_assert(x != NULL && x->type == REDIS_REPLY_ARRAY, "Redis KEYS");
    for (size_t i = 0; i < x->elements; i++) {
        redisReply *s = redisCommand(rd, "HGET %s status", x->element[i]->str);
        n += s != NULL && !(s->type == REDIS_REPLY_STRING && strcmp(s->str, "failed") == 0);
        if (s)
            freeReplyObject(s);
    }
    freeReplyObject(x);
    return n;
}

Test(sentinel, failover, .timeout = 120)
{
    fx fx_, *f = &fx_;
    char p[1200], q[256], dirs[4000];

    memset(f, 0, sizeof(*f));
    cluster_start(&f->cl, true);

    /* A database with NC contents on bronze. */
    f->root = tier_test_tmpdir();
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->root);
    f->my = mysql_init(NULL);
    cr_assert(mysql_real_connect(f->my, f->m.host, f->m.user, f->m.password, f->m.db,
                                 (unsigned)f->m.port, NULL, 0) != NULL,
              "%s", mysql_error(f->my));
    for (int i = 1; i <= NC; i++) {
        tier_test_content *c = &f->ct[i - 1];
        char body[64];
        int n = snprintf(body, sizeof(body), "content %d", i);
        c->cid = i;
        snprintf(c->filename, sizeof(c->filename), "c%d.bin", i);
        snprintf(c->initial_level, sizeof(c->initial_level), "bronze");
        c->sum = tier_test_checksum(body, (size_t)n);
        snprintf(p, sizeof(p), "%s/bronze/%s", f->root, c->filename);
        cr_assert(tier_test_write_file(p, body, (size_t)n), "%s", p);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%d, 'bronze', "
                 "'c%d.bin')",
                 i, i);
        sql(f, q);
    }
    snprintf(f->prefix, sizeof(f->prefix), "ts%d:", (int)getpid());

    /* tierd through the sentinels only: no redis host or port of its own
     * (the services' Redis in the environment is overridden by them). */
    tier_test_tierd_init(&f->td, f->root, f->m.db, f->prefix);
    tier_test_tierd_setenv(&f->td, "TIER_REDIS_SENTINELS=%s", f->cl.sentinels);
    tier_test_tierd_setenv(&f->td, "TIER_REDIS_MASTER_NAME=" MASTER);
    tier_test_tierd_setenv(&f->td, "TIER_REDIS_PORT=1");
    tier_test_tierd_setenv(&f->td, "TIER_REDIS_WAIT_REPLICAS=1");
    tier_test_tierd_setenv(&f->td, "TIER_REDIS_WAIT_MS=500");
    /* The writer lease outlives the failover (down-after 1 s + election):
     * docs/CLUSTER.md, "The shared engines". */
    tier_test_tierd_setenv(&f->td, "TIER_WRITER_TTL_MS=15000");
    tier_test_tierd_setenv(&f->td, "TIER_LEASE_MS=2000");
    tier_test_tierd_setenv(&f->td, "TIER_THREADS=4");
    tier_test_tierd_setenv(&f->td, "TIER_WORKER_LEASE_MS=2000"); /* the workers' */
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

    /* Round 1: everything to silver, the primary alive. */
    int tries, rv;
    for (int i = 1; i <= NC; i++) {
        rv = report(f, i, SILVER, tier_mono_ms() + 10000, &tries);
        cr_assert_eq(rv, TIER_OK, "report %d: %s%s", i, tier_status_name(rv), logs_of(f));
    }
    /* Round 2: to gold, with the primary killed after a third of them
     * while the workers move the silver files. */
    int64_t killed = 0, back = 0;
    int max_tries = 0;
    for (int i = 1; i <= NC; i++) {
        if (i == NC / 3) {
            kill(f->cl.pid[0], SIGKILL);
            tier_test_wait(f->cl.pid[0], 5000);
            f->cl.pid[0] = 0;
            killed = tier_mono_ms();
        }
        rv = report(f, i, GOLD, tier_mono_ms() + 20000, &tries);
        cr_assert_eq(rv, TIER_OK, "report %d after the kill: %s%s", i, tier_status_name(rv),
                     logs_of(f));
        if (killed && !back)
            back = tier_mono_ms();
        if (tries > max_tries)
            max_tries = tries;
        usleep(50 * 1000);
    }
    cr_assert_gt(max_tries, 1, "no report saw the failover (killed too late?)");
    cr_expect_lt(back - killed, 15000, "tier followed the new master after %lld ms",
                 (long long)(back - killed));
    fprintf(stderr, "sentinel failover: calls succeeded again %lld ms after the kill\n",
            (long long)(back - killed));

    /* The sentinels promoted a replica; tier uses it. */
    tier_kv *kv = master_kv(f);
    int64_t end;
    int now_port = tier_kv_addr_of(kv)->port;
    cr_assert(now_port == f->cl.port[1] || now_port == f->cl.port[2],
              "master on port %d, not a former replica", now_port);
    char role[32];
    role_of(now_port, role, sizeof(role));
    cr_assert_str_eq(role, "master");
    cr_assert_gt(info_cmd_calls(now_port, "wait"), 0, "no WAIT after the job scripts");

    /* The old primary comes back (as systemd would restart it) with its
     * stale data, believing it is the master until the sentinels demote
     * it: tier never uses it. */
    f->cl.pid[0] = redis_start(&f->cl, 0, 0);
    end = tier_mono_ms() + 30000;
    do {
        tier_kv *k2 = master_kv(f);
        cr_assert_eq(tier_kv_addr_of(k2)->port, now_port, "the sentinels named the old master");
        tier_kv_close(k2);
        role_of(f->cl.port[0], role, sizeof(role));
        if (strcmp(role, "slave") != 0)
            usleep(250 * 1000);
    } while (strcmp(role, "slave") != 0 && tier_mono_ms() < end);
    cr_assert_str_eq(role, "slave", "the old primary was not demoted in 30 s");

    /* Quiet: every move done, cid 1 on gold with no job. */
    redisContext *rd = tier_kv_handle(kv);
    long live = 0;
    end = tier_mono_ms() + 30000;
    while (tier_mono_ms() < end && (live = live_jobs(f, rd)) != 0)
        usleep(200 * 1000);
    cr_assert_eq(live, 0, "%ld jobs left after 30 s%s", live, logs_of(f));

    /* No replica acknowledges (both stopped): the report script runs (a
     * job gold -> silver is created on the master), its WAIT times out and
     * the call is UNAVAILABLE.  The client then reports cid 1's own level
     * instead: tierd must not answer that from memory ("already there")
     * while the unacknowledged job would move it -- cid 1 ends on gold. */
    for (int i = 0; i <= NREPLICAS; i++)
        if (f->cl.port[i] != now_port)
            kill(f->cl.pid[i], SIGSTOP);
    rv = report(f, 1, SILVER, 0, &tries);
    for (int i = 0; i <= NREPLICAS; i++)
        if (f->cl.port[i] != now_port)
            kill(f->cl.pid[i], SIGCONT);
    cr_assert_eq(rv, TIER_UNAVAILABLE, "report with no replica: %s", tier_status_name(rv));
    rv = report(f, 1, GOLD, tier_mono_ms() + 15000, &tries);
    cr_assert_eq(rv, TIER_OK, "report once the replicas are back: %s%s", tier_status_name(rv),
                 logs_of(f));

    /* Drain: every acknowledged report is carried out. */
    usleep(500 * 1000);
    end = tier_mono_ms() + 30000;
    while (tier_mono_ms() < end && (live = live_jobs(f, rd)) != 0)
        usleep(200 * 1000);
    cr_assert_eq(live, 0, "%ld jobs left after 30 s%s", live, logs_of(f));
    cr_assert_eq(tier_test_wait(f->td.pid, 0), -1, "tierd exited during the failover%s",
                 logs_of(f));

    /* Nothing acknowledged is lost: I1..I7 (every content on gold). */
    static char msg[8192];
    int bad =
        tier_test_check_invariants(f->my, rd, f->prefix, f->root, f->ct, NC, msg, sizeof(msg));
    cr_assert_eq(bad, 0, "%d invariant violation(s):\n%s%s", bad, msg, logs_of(f));
    for (int i = 1; i <= NC; i++) {
        char lv[64];
        snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %d", i);
        tier_test_sql1(f->my, q, lv, sizeof(lv));
        cr_expect_str_eq(lv, "gold", "cid %d", i);
    }

    for (int k = 0; k < 2; k++) {
        kill(f->w[k], SIGTERM);
        cr_expect_eq(tier_test_wait(f->w[k], 20000), 0, "worker w%d", k);
    }
    cr_expect_neq(tier_test_tierd_stop(&f->td, SIGTERM, 15000), -1);
    tier_kv_close(kv);
    tier_client_close(f->c);
    mysql_close(f->my);
    tier_test_db_drop(&f->m);
    cluster_stop(&f->cl);
    if (getenv("TIER_TEST_KEEP") == NULL)
        tier_test_rmtree(f->root);
    free(f->root);
}
