/*
 * test_crash.c -- the crash walk (docs/CRASH.md): every crash point that
 * `tierd --crash-points` and `tier-worker --crash-points` list gets one
 * scenario that reaches it, crashes there (TIER_CRASH=<point>, exit status
 * 86 proves the point was reached), restarts what crashed, lets real
 * tier-worker processes drain everything and then checks the invariants
 * I1..I7 from outside (tests/support/testenv_invariants.c).
 *
 * One Criterion test per listed point (a parameterized test over the lists
 * the binaries print), so a new point without a scenario here fails, and a
 * point the binaries do not list yet is not run.
 *
 * tierd points are steered with a scripted worker ("s1", libtier calls and
 * rename(2)); worker points run real tier-worker processes against a tierd
 * with a 1 s lease.  Every scenario has its own database, key prefix,
 * ports and directories; gold is a tmpfs mounted for the scenario, so moves
 * to and from gold cross filesystems.  A scenario that needs that mount
 * fails (it never skips) when the mount is refused.
 *
 * Contents: cids 1..4, files c<i>.bin of a few KiB, on the levels the
 * scenario names; counts 10 (bronze), 1500 (silver), 2500 (gold).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <mysql.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_testenv.h"
#include "tier_time.h"

#define NC 4          /* contents per scenario */
#define MAXW 4        /* workers per scenario */
#define LEASE_MS 1000 /* tierd's and the workers' lease */
#define CRASH_EXIT 86 /* TIER_CRASH_EXIT */
#define BRONZE 10
#define SILVER 1500
#define GOLD 2500

typedef struct {
    tier_test_mysql m;
    char *root, *logs;
    char gold[1024];
    bool mounted;
    char mount_err[1200];
    char prefix[64];
    const char *point;
    tier_test_tierd td;
    pid_t w[MAXW];
    char wlog[MAXW][600];
    int nw;
    int64_t crash_ms; /* when the last crash was seen */
    tier_client *c;
    MYSQL *my;
    redisContext *rd;
    tier_test_content ct[NC];
} fx;

static int seq;
static tier_error E; /* libtier says INTERNAL for any error without one */
/* For the cleanup after a failed assertion (which skips the teardown). */
static char mounted_at[1024];

static void kill_children(void)
{
    tier_test_kill_children();
    if (mounted_at[0] != '\0')
        umount2(mounted_at, MNT_DETACH);
    mounted_at[0] = '\0';
}

TestSuite(crash, .fini = kill_children);

/* ---------------------------------------------------------- processes */

#if defined(__x86_64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_AARCH64
#endif

/* In the child: renameat2 fails with ENOSYS, as on a kernel without it, so
 * tier_move takes its link() fallback (move.linked). */
static void no_renameat2(void)
{
#ifdef AUDIT_ARCH_HERE
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_HERE, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_renameat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(125);
#else
    _exit(125); /* no filter for this architecture: the point is not reached */
#endif
}

/* tier_test_spawn, plus TIER_CRASH=crash (if not NULL) and the seccomp
 * filter (norename). */
static pid_t spawn(fx *f, char *const argv[], const char *log, const char *crash, bool norename)
{
    char cr[128];
    pid_t pid;

    snprintf(cr, sizeof(cr), "TIER_CRASH=%s", crash ? crash : "");
    fflush(NULL);
    if ((pid = fork()) != 0) {
        cr_assert_gt(pid, 0);
        tier_test_track_child(pid, log);
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    for (int i = 0; i < f->td.nenv; i++)
        putenv(f->td.envp[i]);
    putenv(cr);
    if (norename)
        no_renameat2();
    execv(argv[0], argv);
    _exit(127);
}

static char *tail_of(const char *path, size_t max)
{
    size_t n = 0;
    char *log = tier_test_slurp(path, &n);
    if (log != NULL && n > max)
        memmove(log, log + n - max, max + 1);
    return log;
}

/* The last lines of every log of the scenario, for failure messages. */
static const char *logs_of(fx *f)
{
    static char buf[12000];
    size_t u = 0;
    for (int k = -1; k < f->nw && u + 1 < sizeof(buf); k++) {
        char *log = tail_of(k < 0 ? f->td.log : f->wlog[k], 1500);
        u += (size_t)snprintf(buf + u, sizeof(buf) - u, "\n--- %s:\n%s",
                              k < 0 ? "tierd" : f->wlog[k], log ? log : "(none)");
        free(log);
        if (u >= sizeof(buf))
            u = sizeof(buf) - 1;
    }
    return buf;
}

static void tierd_spawn(fx *f, const char *crash)
{
    char *bin = tier_test_bin("tierd");
    char *argv[] = {bin,        "--listen",   f->td.listen, "--push",
                    f->td.push, "--lease-ms", "1000",       NULL};
    f->td.pid = spawn(f, argv, f->td.log, crash, false);
    free(bin);
}

/* tierd with TIER_CRASH=crash (NULL: none), answering Health. */
static void tierd_up(fx *f, const char *crash)
{
    Tier__Rpc__HealthRequest hq = TIER__RPC__HEALTH_REQUEST__INIT;
    Tier__Rpc__HealthReply *hr = NULL;
    tier_client *c;
    bool up = false;

    tierd_spawn(f, crash);
    cr_assert_eq(tier_client_open(&c, f->td.listen), TIER_OK);
    tier_client_set_timeout(c, 500);
    for (int i = 0; i < 200 && !up && tier_test_wait(f->td.pid, 0) == -1; i++)
        if (!(up = tier_health(c, &hq, &hr, NULL) == TIER_OK))
            usleep(50 * 1000);
    tier_client_close(c);
    tier_free(hr);
    cr_assert(up, "%s: tierd did not start%s", f->point, logs_of(f));
}

/* The process crashed at its armed point: exit status 86. */
static void expect_crash(fx *f, pid_t *pid, const char *what)
{
    int st = tier_test_wait(*pid, 20000);
    if (st == -1) {
        kill(*pid, SIGKILL);
        tier_test_wait(*pid, 5000);
    }
    *pid = 0;
    f->crash_ms = tier_mono_ms();
    cr_assert_eq(st, CRASH_EXIT, "%s: %s exit status %d, not %d: crash point not reached%s",
                 f->point, what, st, CRASH_EXIT, logs_of(f));
}

static void tierd_stop(fx *f)
{
    if (f->td.pid <= 0)
        return;
    cr_assert_neq(tier_test_tierd_stop(&f->td, SIGTERM, 15000), -1, "tierd did not stop");
}

static const char *level_dir(fx *f, const char *level, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", f->root, level);
    return buf;
}

/* A real tier-worker; crash arms TIER_CRASH; norename: no renameat2. */
static pid_t worker_start(fx *f, const char *crash, bool norename)
{
    char *bin = tier_test_bin("tier-worker");
    char id[16], dirs[3400], b[1024], s[1024], g[1024], lease[16];
    int k = f->nw++;

    cr_assert_lt(k, MAXW);
    snprintf(id, sizeof(id), "w%d", k);
    snprintf(lease, sizeof(lease), "%d", LEASE_MS);
    snprintf(dirs, sizeof(dirs), "%s,%s,%s", level_dir(f, "bronze", b, sizeof(b)),
             level_dir(f, "silver", s, sizeof(s)), level_dir(f, "gold", g, sizeof(g)));
    char *argv[] = {bin,          "--tierd", f->td.listen, "--pull", f->td.push, "--id", id,
                    "--lease-ms", lease,     "--moves",    "2",      "--dirs",   dirs,   NULL};
    snprintf(f->wlog[k], sizeof(f->wlog[k]), "%s/%s.log", f->logs, id);
    f->w[k] = spawn(f, argv, f->wlog[k], crash, norename);
    free(bin);
    return f->w[k];
}

static void workers_stop(fx *f)
{
    for (int k = 0; k < f->nw; k++) {
        if (f->w[k] <= 0)
            continue;
        kill(f->w[k], SIGTERM);
        int st = tier_test_wait(f->w[k], 20000);
        f->w[k] = 0;
        cr_assert_eq(st, 0, "%s: worker w%d exit status %d%s", f->point, k, st, logs_of(f));
    }
}

/* ---------------------------------------------------------- fixture */

static unsigned char *bytes_of(long i, size_t n)
{
    unsigned char *b = malloc(n + 1);
    uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 7);
    cr_assert(b != NULL);
    for (size_t k = 0; k < n; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[k] = (unsigned char)x;
    }
    return b;
}

static void sql(fx *f, const char *q)
{
    cr_assert(mysql_query(f->my, q) == 0, "%.200s: %s", q, mysql_error(f->my));
    MYSQL_RES *r = mysql_store_result(f->my);
    if (r)
        mysql_free_result(r);
}

/* gold on its own tmpfs: every move to or from gold crosses filesystems. */
static void mount_gold(fx *f)
{
    snprintf(f->gold, sizeof(f->gold), "%s/gold", f->root);
    if (mount("tmpfs", f->gold, "tmpfs", 0, "size=64m,mode=0755") != 0) {
        snprintf(f->mount_err, sizeof(f->mount_err), "mount -t tmpfs %s: %s", f->gold,
                 strerror(errno));
        return;
    }
    f->mounted = true;
    snprintf(mounted_at, sizeof(mounted_at), "%s", f->gold);
}

static void add_contents(fx *f, const char *const levels[NC])
{
    for (int i = 0; i < NC; i++) {
        tier_test_content *c = &f->ct[i];
        size_t n = 3000 + 1111 * (size_t)i;
        unsigned char *b = bytes_of(i + 1, n);
        char p[1200], q[256];
        c->cid = i + 1;
        snprintf(c->filename, sizeof(c->filename), "c%d.bin", i + 1);
        snprintf(c->initial_level, sizeof(c->initial_level), "%s", levels[i]);
        c->sum = tier_test_checksum(b, n);
        snprintf(p, sizeof(p), "%s/%s/%s", f->root, levels[i], c->filename);
        cr_assert(tier_test_write_file(p, b, n), "write %s", p);
        free(b);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%d, '%s', '%s')",
                 i + 1, levels[i], c->filename);
        sql(f, q);
    }
}

static void setup(fx *f, const char *point, const char *const levels[NC])
{
    char dir[1100], host[64];
    int port;

    memset(f, 0, sizeof(*f));
    f->point = point;
    cr_assert((f->root = tier_test_tmpdir()) != NULL);
    cr_assert((f->logs = tier_test_tmpdir()) != NULL);
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->root);
    for (const char *const *l = (const char *const[]){"bronze", "silver", "gold", NULL}; *l; l++) {
        snprintf(dir, sizeof(dir), "%s/%s", f->root, *l);
        cr_assert(mkdir(dir, 0755) == 0 || errno == EEXIST);
    }
    mount_gold(f);
    f->my = mysql_init(NULL);
    cr_assert(mysql_real_connect(f->my, f->m.host, f->m.user, f->m.password, f->m.db,
                                 (unsigned)f->m.port, NULL, 0) != NULL,
              "%s", mysql_error(f->my));
    add_contents(f, levels);
    tier_test_redis_env(host, sizeof(host), &port);
    f->rd = redisConnect(host, port);
    cr_assert(f->rd != NULL && !f->rd->err);
    snprintf(f->prefix, sizeof(f->prefix), "tc%d_%d:", (int)getpid(), seq++);
    tier_test_tierd_init(&f->td, f->logs, f->m.db, f->prefix);
    tier_test_tierd_setenv(&f->td, "TIER_THREADS=8");
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
    tier_client_set_timeout(f->c, 10000);
}

static void teardown(fx *f)
{
    workers_stop(f);
    tierd_stop(f);
    tier_client_close(f->c);
    mysql_close(f->my);
    redisFree(f->rd);
    tier_test_db_drop(&f->m);
    if (f->mounted) {
        umount2(f->gold, MNT_DETACH);
        mounted_at[0] = '\0';
    }
    if (getenv("TIER_TEST_KEEP") == NULL) {
        tier_test_rmtree(f->root);
        tier_test_rmtree(f->logs);
    }
    free(f->root);
    free(f->logs);
}

/* ---------------------------------------------------------- calls */

static tier_test_content *ct(fx *f, int64_t cid)
{
    cr_assert(cid >= 1 && cid <= NC);
    return &f->ct[cid - 1];
}

/* ReportViews of one count; an OK answer is remembered (I4). */
static int report(fx *f, int64_t cid, int64_t count)
{
    Tier__ViewReport v = TIER__VIEW_REPORT__INIT, *list[1] = {&v};
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep;
    int rv;

    v.cid = cid;
    v.count = count;
    req.reports = list;
    req.n_reports = 1;
    if ((rv = tier_report_views(f->c, &req, &rep, &E)) != TIER_OK)
        return rv;
    rv = rep->results[0]->code;
    tier_free(rep);
    if (rv == TIER_OK) {
        ct(f, cid)->reported = true;
        ct(f, cid)->last_count = count;
        ct(f, cid)->held_at[0] = '\0';
    }
    return rv;
}

static void report_ok(fx *f, int64_t cid, int64_t count)
{
    int rv = report(f, cid, count);
    cr_assert_eq(rv, TIER_OK, "%s: report %lld=%lld: %s %s", f->point, (long long)cid,
                 (long long)count, tier_status_name(rv), E.message);
}

/* A call to a tierd that dies on it: no answer. */
static void short_timeout(fx *f, bool on)
{
    tier_client_set_timeout(f->c, on ? 2000 : 10000);
}

static void report_lost(fx *f, int64_t cid, int64_t count)
{
    short_timeout(f, true);
    int rv = report(f, cid, count);
    short_timeout(f, false);
    cr_assert_neq(rv, TIER_OK, "%s: the report was answered", f->point);
}

/* ClaimJob by the scripted worker; the fence is recorded (I7). */
static int claim(fx *f, int64_t cid, uint32_t lease_ms, uint64_t *fence)
{
    Tier__ClaimJobRequest req = TIER__CLAIM_JOB_REQUEST__INIT;
    Tier__ClaimJobReply *rep;
    int64_t cids[1] = {cid};
    int rv;

    req.worker_id = "s1";
    req.cids = cids;
    req.n_cids = 1;
    req.lease_ms = lease_ms;
    if ((rv = tier_claim_job(f->c, &req, &rep, &E)) != TIER_OK)
        return rv;
    rv = rep->results[0]->code;
    if (rv == TIER_OK && rep->results[0]->job != NULL) {
        *fence = rep->results[0]->job->fence;
        tier_test_saw_fence(ct(f, cid), *fence, true);
    }
    tier_free(rep);
    return rv;
}

static uint64_t claim_ok(fx *f, int64_t cid, uint32_t lease_ms)
{
    uint64_t fence = 0;
    int rv = claim(f, cid, lease_ms, &fence);
    cr_assert_eq(rv, TIER_OK, "%s: claim %lld: %s", f->point, (long long)cid, tier_status_name(rv));
    return fence;
}

static int complete(fx *f, int64_t cid, uint64_t fence)
{
    Tier__CompleteJobRequest req = TIER__COMPLETE_JOB_REQUEST__INIT;
    Tier__JobRef ref = TIER__JOB_REF__INIT, *refs[1] = {&ref};
    Tier__CompleteJobReply *rep;
    int rv;

    ref.cid = cid;
    ref.fence = fence;
    req.worker_id = "s1";
    req.jobs = refs;
    req.n_jobs = 1;
    if ((rv = tier_complete_job(f->c, &req, &rep, &E)) != TIER_OK)
        return rv;
    rv = rep->results[0]->code;
    tier_free(rep);
    return rv;
}

static int fail_job(fx *f, int64_t cid, uint64_t fence)
{
    Tier__FailJobRequest req = TIER__FAIL_JOB_REQUEST__INIT;
    Tier__JobRef ref = TIER__JOB_REF__INIT;
    Tier__FailJobReply *rep = NULL;
    int rv;

    ref.cid = cid;
    ref.fence = fence;
    req.worker_id = "s1";
    req.job = &ref;
    req.reason = "EAGAIN (scripted)";
    req.retry_after_ms = 100;
    rv = tier_fail_job(f->c, &req, &rep, &E);
    tier_free(rep);
    return rv;
}

/* FailJob, permanent: the job is parked as failed. */
static int fail_permanent(fx *f, int64_t cid, uint64_t fence)
{
    Tier__FailJobRequest req = TIER__FAIL_JOB_REQUEST__INIT;
    Tier__JobRef ref = TIER__JOB_REF__INIT;
    Tier__FailJobReply *rep = NULL;
    int rv;

    ref.cid = cid;
    ref.fence = fence;
    req.worker_id = "s1";
    req.job = &ref;
    req.reason = "EIO (scripted)";
    req.permanent = true;
    rv = tier_fail_job(f->c, &req, &rep, &E);
    tier_free(rep);
    return rv;
}

/* RetryJob or CancelJob (operator control). */
static int control(fx *f, int64_t cid, bool cancel)
{
    Tier__JobControlRequest req = TIER__JOB_CONTROL_REQUEST__INIT;
    Tier__JobControlReply *rep = NULL;
    int rv;

    req.cid = cid;
    rv = cancel ? tier_cancel_job(f->c, &req, &rep, &E) : tier_retry_job(f->c, &req, &rep, &E);
    tier_free(rep);
    return rv;
}

/* GetJob: its fence is recorded (I7); status into st ("" if none). */
static void observe(fx *f, int64_t cid, char *st, size_t len)
{
    Tier__GetJobRequest req = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply *rep;

    st[0] = '\0';
    req.cid = cid;
    if (tier_get_job(f->c, &req, &rep, &E) != TIER_OK)
        return;
    tier_test_saw_fence(ct(f, cid), rep->job->fence, false);
    snprintf(st, len, "%s", rep->job->status);
    tier_free(rep);
}

static void observe_all(fx *f)
{
    char st[32];
    for (int i = 1; i <= NC; i++)
        observe(f, i, st, sizeof(st));
}

/* Waits until cid's job has status want ("" = no job). */
static void wait_job(fx *f, int64_t cid, const char *want, int timeout_ms)
{
    char st[32] = "";
    int64_t end = tier_mono_ms() + timeout_ms;
    do {
        observe(f, cid, st, sizeof(st));
        if (strcmp(st, want) == 0)
            return;
        usleep(50 * 1000);
    } while (tier_mono_ms() < end);
    cr_assert_fail("%s: job of %lld is '%s', not '%s'%s", f->point, (long long)cid, st, want,
                   logs_of(f));
}

static void db_level(fx *f, int64_t cid, char *out, size_t len)
{
    char q[128];
    snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %lld", (long long)cid);
    tier_test_sql1(f->my, q, out, len);
}

static void expect_db_level(fx *f, int64_t cid, const char *want, const char *why)
{
    char lvl[64];
    db_level(f, cid, lvl, sizeof(lvl));
    cr_assert_str_eq(lvl, want, "%s: MySQL level of %lld is %s, not %s: %s", f->point,
                     (long long)cid, lvl, want, why);
}

static void move_file(fx *f, int64_t cid, const char *from, const char *to)
{
    char a[1200], b[1200];
    snprintf(a, sizeof(a), "%s/%s/%s", f->root, from, ct(f, cid)->filename);
    snprintf(b, sizeof(b), "%s/%s/%s", f->root, to, ct(f, cid)->filename);
    cr_assert(rename(a, b) == 0, "rename %s %s: %s", a, b, strerror(errno));
}

/* ---------------------------------------------------------- quiet + check */

/* Job hashes of the prefix that may still progress (not "failed"). */
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

/* Real workers until no job is left (at most 30 s), then stopped.  They
 * start two leases after the crash, so the temporaries a crashed attempt
 * left are stale and their start-up cleanup removes them. */
static void drain(fx *f)
{
    int64_t wait = f->crash_ms + 2 * LEASE_MS + 500 - tier_mono_ms();
    if (wait > 0)
        usleep((useconds_t)wait * 1000);
    worker_start(f, NULL, false);
    worker_start(f, NULL, false);
    int64_t end = tier_mono_ms() + 30000;
    while (tier_mono_ms() < end) {
        observe_all(f);
        if (live_jobs(f) == 0)
            break;
        usleep(100 * 1000);
    }
    usleep(300 * 1000);
    workers_stop(f);
}

static void check(fx *f)
{
    static char msg[8192];
    int n =
        tier_test_check_invariants(f->my, f->rd, f->prefix, f->root, f->ct, NC, msg, sizeof(msg));
    cr_assert_eq(n, 0, "%s: %d invariant violation(s):\n%s%s", f->point, n, msg, logs_of(f));
}

/* ---------------------------------------------------------- levels */

typedef struct {
    const char *name;
    long long min, max;
    const char *dir; /* under the storage root */
} level_spec;

static int set_levels(fx *f, const level_spec *s, size_t n)
{
    Tier__SetLevelsRequest req = TIER__SET_LEVELS_REQUEST__INIT;
    Tier__Level lv[8], *lp[8];
    Tier__ListLevelsReply *rep = NULL;
    char path[8][1100];

    for (size_t i = 0; i < n; i++) {
        tier__level__init(&lv[i]);
        snprintf(path[i], sizeof(path[i]), "%s/%s/", f->root, s[i].dir);
        lv[i].name = (char *)s[i].name;
        lv[i].min_counts = s[i].min;
        lv[i].max_counts = s[i].max;
        lv[i].path = path[i];
        lp[i] = &lv[i];
    }
    req.levels = lp;
    req.n_levels = n;
    int rv = tier_set_levels(f->c, &req, &rep, &E);
    tier_free(rep);
    return rv;
}

/* "name:min:max:path;..." sorted by min, from MySQL or from tierd. */
static void levels_sql(fx *f, char *out, size_t len)
{
    tier_test_sql1(f->my,
                   "SELECT GROUP_CONCAT(CONCAT(content_level, ':', min_counts, ':', max_counts, "
                   "':', TRIM(TRAILING '/' FROM path)) ORDER BY min_counts SEPARATOR ';') FROM "
                   "level",
                   out, len);
}

static void levels_tierd(fx *f, char *out, size_t len)
{
    Tier__ListLevelsRequest req = TIER__LIST_LEVELS_REQUEST__INIT;
    Tier__ListLevelsReply *rep;
    size_t u = 0;

    out[0] = '\0';
    cr_assert_eq(tier_list_levels(f->c, &req, &rep, &E), TIER_OK, "%s", E.message);
    for (size_t i = 0; i < rep->n_levels && u < len; i++) {
        const Tier__Level *l = rep->levels[i];
        size_t pl = strlen(l->path);
        while (pl > 1 && l->path[pl - 1] == '/')
            pl--;
        u += (size_t)snprintf(out + u, len - u, "%s%s:%lld:%lld:%.*s", i ? ";" : "", l->name,
                              (long long)l->min_counts, (long long)l->max_counts, (int)pl, l->path);
    }
    tier_free(rep);
}

static void spec_string(fx *f, const level_spec *s, size_t n, char *out, size_t len)
{
    size_t u = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && u < len; i++)
        u += (size_t)snprintf(out + u, len - u, "%s%s:%lld:%lld:%s/%s", i ? ";" : "", s[i].name,
                              s[i].min, s[i].max, f->root, s[i].dir);
}

/* After a crash in SetLevels: MySQL and the restarted tierd agree, on the
 * old table or on the new one.  Returns true for the new one. */
static bool levels_consistent(fx *f, const level_spec *old, size_t no, const level_spec *nw,
                              size_t nn)
{
    static char db[4096], td[4096], o[4096], n[4096];
    levels_sql(f, db, sizeof(db));
    levels_tierd(f, td, sizeof(td));
    spec_string(f, old, no, o, sizeof(o));
    spec_string(f, nw, nn, n, sizeof(n));
    cr_assert_str_eq(db, td, "%s: MySQL has levels %s, tierd %s", f->point, db, td);
    cr_assert(strcmp(db, o) == 0 || strcmp(db, n) == 0,
              "%s: levels %s are neither the old (%s) nor the new (%s) table", f->point, db, o, n);
    return strcmp(db, n) == 0;
}

#define MAXC 9223372036854775807LL
static const level_spec OLD3[] = {
    {"bronze", 0, 999, "bronze"}, {"silver", 1000, 1999, "silver"}, {"gold", 2000, MAXC, "gold"}};

/* ---------------------------------------------------------- tierd scenarios */

static const char *const B_B_S_G[NC] = {"bronze", "bronze", "silver", "gold"};
static const char *const B_B_B_G[NC] = {"bronze", "bronze", "bronze", "gold"};

/* Crash before the report's script: nothing written.  The client's retry
 * after the restart is the report that counts. */
static void sc_report_before(fx *f)
{
    tierd_up(f, "report.before_script");
    report_lost(f, 1, SILVER);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    report_ok(f, 1, SILVER);
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "bronze>silver");
}

/* Crash after the script created the job (no push, no answer); then a
 * report back to the db level cancels the unclaimed job, and another
 * content moves across filesystems. */
static void sc_report_after(fx *f)
{
    char st[32];
    tierd_up(f, "report.after_script");
    report_lost(f, 1, SILVER);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    observe(f, 1, st, sizeof(st));
    cr_assert_str_eq(st, "update", "the job the script created survives the crash");
    report_ok(f, 1, BRONZE);
    report_ok(f, 2, GOLD);
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "bronze");
    snprintf(ct(f, 2)->history, sizeof(ct(f, 2)->history), "bronze>gold");
}

/* Claimed in Redis (fence + 1) but the worker never hears; a report to a
 * third level arrives after the restart (pending or retargeted, depending
 * on the lease). */
static void sc_claim_after(fx *f)
{
    uint64_t fence;
    char st[32];
    tierd_up(f, "claim.after_script");
    report_ok(f, 1, SILVER);
    short_timeout(f, true);
    cr_assert_neq(claim(f, 1, LEASE_MS, &fence), TIER_OK, "the claim was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    observe(f, 1, st, sizeof(st));
    report_ok(f, 1, GOLD);
}

/* complete.after_done / complete.after_commit: claim, a report while
 * claimed (pending, to gold), the file moved, CompleteJob -> crash.  The
 * restart's recovery commits (again) and the pending report becomes the
 * follow-up job; the worker's retried CompleteJob is acknowledged. */
static void sc_complete(fx *f, bool committed)
{
    tierd_up(f, f->point);
    report_ok(f, 1, SILVER);
    uint64_t fence = claim_ok(f, 1, 30000);
    report_ok(f, 1, GOLD);
    move_file(f, 1, "bronze", "silver");
    short_timeout(f, true);
    cr_assert_neq(complete(f, 1, fence), TIER_OK, "CompleteJob was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    expect_db_level(f, 1, committed ? "silver" : "bronze",
                    committed ? "the crash came after the commit" : "nothing committed yet");
    tierd_up(f, NULL);
    expect_db_level(f, 1, "silver", "start-up recovery commits a done job");
    cr_assert_eq(complete(f, 1, fence), TIER_OK, "%s: the retried CompleteJob", f->point);
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "bronze>silver>gold");
}

static void sc_complete_done(fx *f)
{
    sc_complete(f, false);
}

static void sc_complete_commit(fx *f)
{
    sc_complete(f, true);
}

/* The job was finished (turned into its follow-up: a cancel back to
 * bronze came while it ran) but nothing was pushed or answered. */
static void sc_complete_finish(fx *f)
{
    char st[32];
    tierd_up(f, "complete.after_finish");
    report_ok(f, 1, SILVER);
    uint64_t fence = claim_ok(f, 1, 30000);
    report_ok(f, 1, BRONZE);
    move_file(f, 1, "bronze", "silver");
    short_timeout(f, true);
    cr_assert_neq(complete(f, 1, fence), TIER_OK, "CompleteJob was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    expect_db_level(f, 1, "silver", "committed before the finish");
    tierd_up(f, NULL);
    observe(f, 1, st, sizeof(st));
    cr_assert_str_eq(st, "update", "the follow-up job back to bronze exists");
    cr_assert_eq(complete(f, 1, fence), TIER_OK, "the retried CompleteJob");
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "bronze>silver>bronze");
}

/* FailJob (transient) with a pending report to gold: the job is back to
 * update, its pending count not applied yet. */
static void sc_fail_after(fx *f)
{
    tierd_up(f, "fail.after_script");
    report_ok(f, 1, SILVER);
    uint64_t fence = claim_ok(f, 1, 30000);
    report_ok(f, 1, GOLD);
    short_timeout(f, true);
    cr_assert_neq(fail_job(f, 1, fence), TIER_OK, "FailJob was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "bronze>silver>gold");
}

/* A worker moved the file and vanished; the reaper takes the lease back and
 * dies before pushing.  After the restart a report to a third level
 * retargets the once-claimed job: the file is in silver, MySQL says bronze,
 * the job goes to gold (also_dirs must name silver). */
static void sc_reaper_after(fx *f)
{
    tierd_up(f, "reaper.after_expire");
    report_ok(f, 1, SILVER);
    claim_ok(f, 1, 300);
    move_file(f, 1, "bronze", "silver");
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    report_ok(f, 1, GOLD);
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "bronze>gold");
}

/* recover.*: crash at complete.after_done (job left done), restart with the
 * recovery point armed (hit during start-up), then restart clean.  With
 * cancel, a report back to bronze is pending on the done job. */
static void sc_recover(fx *f, bool committed, bool cancel)
{
    tierd_up(f, "complete.after_done");
    report_ok(f, 1, SILVER);
    uint64_t fence = claim_ok(f, 1, 30000);
    if (cancel)
        report_ok(f, 1, BRONZE);
    move_file(f, 1, "bronze", "silver");
    short_timeout(f, true);
    cr_assert_neq(complete(f, 1, fence), TIER_OK, "CompleteJob was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_spawn(f, f->point);
    expect_crash(f, &f->td.pid, "tierd (start-up recovery)");
    expect_db_level(f, 1, committed ? "silver" : "bronze", "crash in the recovery");
    tierd_up(f, NULL);
    cr_assert_eq(complete(f, 1, fence), TIER_OK, "the retried CompleteJob");
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "%s",
             cancel ? "bronze>silver>bronze" : "bronze>silver");
}

static void sc_recover_before(fx *f)
{
    sc_recover(f, false, false);
}

static void sc_recover_after(fx *f)
{
    sc_recover(f, true, true);
}

/* SetLevels adding platinum, no jobs: crash after mkdir.  The table after
 * the restart is the old or the new one, in MySQL and tierd alike; nothing
 * moved.  Then SetLevels again and a content to platinum. */
static void sc_setlevels_mkdir(fx *f)
{
    static const level_spec nw[] = {{"bronze", 0, 999, "bronze"},
                                    {"silver", 1000, 1999, "silver"},
                                    {"gold", 2000, 99999, "gold"},
                                    {"platinum", 100000, MAXC, "platinum"}};
    tierd_up(f, "setlevels.after_mkdir");
    short_timeout(f, true);
    cr_assert_neq(set_levels(f, nw, 4), TIER_OK, "SetLevels was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    if (!levels_consistent(f, OLD3, 3, nw, 4))
        cr_assert_eq(set_levels(f, nw, 4), TIER_OK, "%s", E.message);
    report_ok(f, 3, 200000);
    for (int i = 0; i < NC; i++)
        snprintf(f->ct[i].history, sizeof(f->ct[i].history), "%s", f->ct[i].initial_level);
    snprintf(ct(f, 3)->history, sizeof(ct(f, 3)->history), "silver>platinum");
}

/* SetLevels moving the empty silver level to another directory: crash
 * after the commit (memory still old).  The restarted tierd loads the new
 * table; a content then moves to silver's new directory. */
static void sc_setlevels_commit(fx *f)
{
    static const level_spec nw[] = {{"bronze", 0, 999, "bronze"},
                                    {"silver", 1000, 1999, "silver2"},
                                    {"gold", 2000, MAXC, "gold"}};
    tierd_up(f, "setlevels.after_commit");
    short_timeout(f, true);
    cr_assert_neq(set_levels(f, nw, 3), TIER_OK, "SetLevels was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    cr_assert(levels_consistent(f, OLD3, 3, nw, 3), "the commit is the new table");
    report_ok(f, 1, SILVER);
    for (int i = 0; i < NC; i++)
        snprintf(f->ct[i].history, sizeof(f->ct[i].history), "%s", f->ct[i].initial_level);
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "bronze>silver");
}

/* ---------------------------------------------------------- the policy */

/* An increment of views to cid (not remembered for I4: it moves nothing
 * under the seed's table at these counts); its item's code, or the call's. */
static int add_views(fx *f, int64_t cid, int64_t views, int64_t *count)
{
    Tier__ViewReport v = TIER__VIEW_REPORT__INIT, *list[1] = {&v};
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep;
    int rv;

    v.cid = cid;
    v.views = views;
    req.reports = list;
    req.n_reports = 1;
    if ((rv = tier_report_views(f->c, &req, &rep, &E)) != TIER_OK)
        return rv;
    rv = rep->results[0]->code;
    if (count != NULL)
        *count = rep->results[0]->count;
    tier_free(rep);
    return rv;
}

/* A window policy: silver from 5 views, gold from 10, planned every second. */
static int set_window_policy(fx *f)
{
    static const char *names[] = {"bronze", "silver", "gold"};
    static const int64_t mins[] = {0, 5, 10};
    Tier__Policy p = TIER__POLICY__INIT;
    Tier__LevelRule r[3], *rp[3];
    Tier__SetPolicyRequest req = TIER__SET_POLICY_REQUEST__INIT;
    Tier__SetPolicyReply *rep = NULL;
    int rv;

    p.mode = "window";
    p.window_s = 3600;
    p.bucket_s = 60;
    p.plan_interval_s = 1;
    p.max_inflight = 10;
    for (int i = 0; i < 3; i++) {
        tier__level_rule__init(&r[i]);
        r[i].level = (char *)names[i];
        r[i].min_views = mins[i];
        r[i].demote_below = -1;
        rp[i] = &r[i];
    }
    p.levels = rp;
    p.n_levels = 3;
    req.policy = &p;
    rv = tier_set_policy(f->c, &req, &rep, &E);
    tier_free(rep);
    return rv;
}

/* Waits (at most 10 s) until cid has a job or has left `from`. */
static void wait_planned(fx *f, int64_t cid, const char *from)
{
    for (int i = 0; i < 100; i++) {
        Tier__GetContentRequest q = TIER__GET_CONTENT_REQUEST__INIT;
        Tier__GetContentReply *r = NULL;
        bool moved = false;
        q.cid = cid;
        if (tier_get_content(f->c, &q, &r, &E) == TIER_OK)
            moved = r->job != NULL || strcmp(r->content->level, from) != 0;
        tier_free(r);
        if (moved)
            return;
        usleep(100 * 1000);
    }
    cr_assert_fail("%s: the planner never moved cid %lld%s", f->point, (long long)cid, logs_of(f));
}

static void histories_initial(fx *f)
{
    for (int i = 0; i < NC; i++)
        snprintf(f->ct[i].history, sizeof(f->ct[i].history), "%s", f->ct[i].initial_level);
}

/* An increment committed to MySQL, tierd dead before the reply.  The
 * restarted tierd has it (at least once: a client that resends counts it
 * twice, the dedupe cache being gone with the process). */
static void sc_views_commit(fx *f)
{
    int64_t count = 0;
    tierd_up(f, "views.after_commit");
    short_timeout(f, true);
    cr_assert_neq(add_views(f, 1, 5, NULL), TIER_OK, "the increment was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    cr_assert_eq(add_views(f, 1, 1, &count), TIER_OK, "%s", E.message);
    cr_assert_eq(count, 6, "%s: the committed increment is lost (count %lld)", f->point,
                 (long long)count);
    histories_initial(f);
}

/* A comment committed, tierd dead before the reply; the client's call is
 * still waiting, and its library resends it (same client and request id)
 * once a tierd listens again.  The restarted tierd finds the post's key
 * (sql/011) and answers with the stored id: one comment, counted once. */
typedef struct {
    fx *f;
    int rv;
    int64_t id;
} post_call;

static void *post_thread(void *arg)
{
    post_call *pc = arg;
    Tier__PostCommentRequest q = TIER__POST_COMMENT_REQUEST__INIT;
    Tier__PostCommentReply *r = NULL;
    tier_client *c;

    if ((pc->rv = tier_client_open(&c, pc->f->td.listen)) != TIER_OK)
        return NULL;
    tier_client_set_timeout(c, 30000);
    q.service = "news";
    q.cid = 1;
    q.author = "crash";
    q.body = "once";
    if ((pc->rv = tier_post_comment(c, &q, &r, NULL)) == TIER_OK)
        pc->id = r->id;
    tier_free(r);
    tier_client_close(c);
    return NULL;
}

static void sc_comments_commit(fx *f)
{
    post_call pc = {.f = f};
    pthread_t th;
    char n[32], id[32];

    tierd_up(f, "comments.after_commit");
    cr_assert_eq(pthread_create(&th, NULL, post_thread, &pc), 0);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    pthread_join(th, NULL);
    cr_assert_eq(pc.rv, TIER_OK, "%s: the resent post was not answered", f->point);
    tier_test_sql1(f->my, "SELECT COUNT(*) FROM comments WHERE body = 'once'", n, sizeof(n));
    cr_assert_str_eq(n, "1", "%s: the resent post was stored again", f->point);
    tier_test_sql1(f->my, "SELECT id FROM comments WHERE body = 'once'", id, sizeof(id));
    cr_assert_eq(strtoll(id, NULL, 10), pc.id, "%s: answered %lld, stored %s", f->point,
                 (long long)pc.id, id);
    Tier__TopContentsRequest tq = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *tr = NULL;
    int64_t now = tier_now_ms() / 60000 * 60000;
    tq.from_ms = now - 5 * 60000;
    tq.to_ms = now + 60000;
    cr_assert_eq(tier_top_contents(f->c, &tq, &tr, &E), TIER_OK, "%s", E.message);
    cr_assert_eq(tr->n_rows, 1);
    cr_assert_eq(tr->rows[0]->change, 1, "%s: counted %lld times", f->point,
                 (long long)tr->rows[0]->change);
    tier_free(tr);
    histories_initial(f);
}

/* A batch of 200 deletes, tierd dead with their comments locked and
 * nothing written: the transaction is gone with the connection.  Every
 * comment is live still, and comment_minute agrees with the comments
 * table; the client's call, resent by its library to the restarted tierd,
 * completes it (every item OK), and a second resend changes nothing
 * (every item "already deleted", counts unchanged). */
typedef struct {
    fx *f;
    int64_t ids[200];
    int rv, ok, refused;
} delete_call;

static void *delete_thread(void *arg)
{
    delete_call *dc = arg;
    Tier__DeleteCommentRequest items[200], *ptrs[200];
    Tier__DeleteCommentsRequest q = TIER__DELETE_COMMENTS_REQUEST__INIT;
    Tier__CommentsReply *r = NULL;
    tier_client *c;

    if ((dc->rv = tier_client_open(&c, dc->f->td.listen)) != TIER_OK)
        return NULL;
    tier_client_set_timeout(c, 30000);
    for (int i = 0; i < 200; i++) {
        tier__delete_comment_request__init(&items[i]);
        items[i].id = dc->ids[i];
        ptrs[i] = &items[i];
    }
    q.n_items = 200;
    q.items = ptrs;
    dc->ok = dc->refused = 0;
    if ((dc->rv = tier_delete_comments(c, &q, &r, NULL)) == TIER_OK)
        for (size_t i = 0; i < r->n_results; i++)
            r->results[i]->code == 0 ? dc->ok++ : dc->refused++;
    tier_free(r);
    tier_client_close(c);
    return NULL;
}

/* comment_minute's sum for cid equals its live comments. */
static long long minute_sum_checked(fx *f, int cid)
{
    char q[256], a[32], b[32];

    snprintf(q, sizeof(q), "SELECT COALESCE(SUM(delta), 0) FROM comment_minute WHERE cid = %d",
             cid);
    tier_test_sql1(f->my, q, a, sizeof(a));
    snprintf(q, sizeof(q), "SELECT COUNT(*) FROM comments WHERE cid = %d AND deleted = 0", cid);
    tier_test_sql1(f->my, q, b, sizeof(b));
    cr_assert_str_eq(a, b, "%s: cid %d: comment_minute says %s, comments %s", f->point, cid, a, b);
    return atoll(b);
}

static void sc_comments_lock(fx *f)
{
    delete_call dc = {.f = f};
    Tier__PostCommentRequest items[200], *ptrs[200];
    Tier__PostCommentsRequest pq = TIER__POST_COMMENTS_REQUEST__INIT;
    Tier__PostCommentsReply *pr = NULL;
    pthread_t th;

    tierd_up(f, "comments.after_lock"); /* posts alone never reach it */
    for (int i = 0; i < 200; i++) {
        tier__post_comment_request__init(&items[i]);
        items[i].service = "news";
        items[i].cid = 1 + i % 2;
        items[i].author = "crash";
        items[i].body = "batch";
        ptrs[i] = &items[i];
    }
    pq.n_comments = 200;
    pq.comments = ptrs;
    cr_assert_eq(tier_post_comments(f->c, &pq, &pr, &E), TIER_OK, "%s", E.message);
    for (int i = 0; i < 200; i++)
        dc.ids[i] = pr->results[i]->id;
    tier_free(pr);
    cr_assert_eq(pthread_create(&th, NULL, delete_thread, &dc), 0);
    expect_crash(f, &f->td.pid, "tierd");
    cr_assert_eq(minute_sum_checked(f, 1) + minute_sum_checked(f, 2), 200,
                 "%s: a delete survived the crash uncommitted", f->point);
    tierd_up(f, NULL);
    pthread_join(th, NULL);
    cr_assert_eq(dc.rv, TIER_OK, "%s: the resent batch was not answered", f->point);
    cr_assert_eq(dc.ok, 200, "%s: %d of 200 deleted by the resend", f->point, dc.ok);
    cr_assert_eq(minute_sum_checked(f, 1) + minute_sum_checked(f, 2), 0);
    delete_thread(&dc); /* a client's own retry: nothing changes */
    cr_assert_eq(dc.rv, TIER_OK);
    cr_assert_eq(dc.refused, 200, "%s: a second delete was accepted", f->point);
    cr_assert_eq(minute_sum_checked(f, 1) + minute_sum_checked(f, 2), 0);
    Tier__TopContentsRequest tq = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *tr = NULL;
    int64_t now = tier_now_ms() / 60000 * 60000;
    tq.from_ms = now - 5 * 60000;
    tq.to_ms = now + 60000;
    cr_assert_eq(tier_top_contents(f->c, &tq, &tr, &E), TIER_OK, "%s", E.message);
    for (size_t i = 0; i < tr->n_rows; i++)
        cr_assert_eq(tr->rows[i]->change, 0, "%s: cid %lld counted %lld", f->point,
                     (long long)tr->rows[i]->cid, (long long)tr->rows[i]->change);
    tier_free(tr);
    histories_initial(f);
}

/* SetPolicy committed, tierd dead before the reply: the restarted tierd
 * runs the new policy (version 1), and its planner moves a hot content. */
static void sc_setpolicy_commit(fx *f)
{
    tierd_up(f, "setpolicy.after_commit");
    short_timeout(f, true);
    cr_assert_neq(set_window_policy(f), TIER_OK, "SetPolicy was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    Tier__GetPolicyRequest q = TIER__GET_POLICY_REQUEST__INIT;
    Tier__GetPolicyReply *r = NULL;
    cr_assert_eq(tier_get_policy(f->c, &q, &r, &E), TIER_OK, "%s", E.message);
    cr_assert_eq(r->policy->version, 1, "%s: the committed policy is lost", f->point);
    tier_free(r);
    cr_assert_eq(add_views(f, 1, 12, NULL), TIER_OK, "%s", E.message);
    wait_planned(f, 1, "bronze");
    histories_initial(f);
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "bronze>gold");
    /* I4's expected level: the policy's, not a count's. */
    snprintf(ct(f, 1)->held_at, sizeof(ct(f, 1)->held_at), "gold");
}

/* The planner's job is in Redis, tierd dead before it noted where the job
 * goes.  The restarted tierd finds the job (start-up recovery), leaves the
 * content to it, and the move completes once. */
static void sc_planner_script(fx *f)
{
    tierd_up(f, "planner.after_script");
    cr_assert_eq(set_window_policy(f), TIER_OK, "%s", E.message);
    cr_assert_eq(add_views(f, 1, 12, NULL), TIER_OK, "%s", E.message);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    histories_initial(f);
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "bronze>gold");
    /* I4's expected level: the policy's, not a count's. */
    snprintf(ct(f, 1)->held_at, sizeof(ct(f, 1)->held_at), "gold");
}

/* ---------------------------------------------------------- level migrations */

/* bronze (c1, c2) moves to bronze2: a level migration (tiering_migrate.c). */
static const level_spec MIGRATED[] = {
    {"bronze", 0, 999, "bronze2"}, {"silver", 1000, 1999, "silver"}, {"gold", 2000, MAXC, "gold"}};

static bool migrating(fx *f)
{
    Tier__ListLevelsRequest req = TIER__LIST_LEVELS_REQUEST__INIT;
    Tier__ListLevelsReply *rep;
    bool any = false;

    cr_assert_eq(tier_list_levels(f->c, &req, &rep, &E), TIER_OK, "%s", E.message);
    for (size_t i = 0; i < rep->n_levels; i++)
        any = any || rep->levels[i]->migrating_from[0] != '\0';
    tier_free(rep);
    return any;
}

/* A worker until the migration is over (MySQL has no row left, the old
 * directory is gone); no file changed level, so no history. */
static void finish_migration(fx *f)
{
    char old[1100], n[32];
    int64_t end = tier_mono_ms() + 30000;
    struct stat st;

    worker_start(f, NULL, false);
    while (migrating(f) && tier_mono_ms() < end)
        usleep(100 * 1000);
    cr_assert(!migrating(f), "%s: the migration did not end%s", f->point, logs_of(f));
    tier_test_sql1(f->my, "SELECT COUNT(*) FROM level_migration", n, sizeof(n));
    cr_assert_str_eq(n, "0", "%s: level_migration rows left", f->point);
    level_dir(f, "bronze", old, sizeof(old));
    cr_assert(lstat(old, &st) != 0, "%s: the old directory %s is left", f->point, old);
    for (int i = 0; i < NC; i++)
        snprintf(f->ct[i].history, sizeof(f->ct[i].history), "%s", f->ct[i].initial_level);
}

/* SetLevels moving bronze (holding c1, c2): crash after the commit of the
 * new table and the migration row, before memory changes.  The restarted
 * tierd loads both, finds every file in the old directory and migrates. */
static void sc_migrate_commit(fx *f)
{
    tierd_up(f, "migrate.after_setlevels_commit");
    short_timeout(f, true);
    cr_assert_neq(set_levels(f, MIGRATED, 3), TIER_OK, "SetLevels was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    cr_assert(levels_consistent(f, OLD3, 3, MIGRATED, 3), "the commit is the new table");
    finish_migration(f);
}

/* Every file moved, no job left: crash before the old directory is removed
 * and the row deleted (armed: retire), or after the rmdir (armed: rmdir).
 * The restarted tierd finds every file in the new directory and retires. */
static void sc_migrate_retire(fx *f, const char *point)
{
    tierd_up(f, point);
    cr_assert_eq(set_levels(f, MIGRATED, 3), TIER_OK, "%s", E.message);
    worker_start(f, NULL, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    finish_migration(f);
}

static void sc_migrate_before_retire(fx *f)
{
    sc_migrate_retire(f, "migrate.before_retire");
}

static void sc_migrate_after_rmdir(fx *f)
{
    sc_migrate_retire(f, "migrate.after_rmdir");
}

/* RetryJob of a failed job that has a pending report (to gold): crash
 * after the script put it back to update, before the pending report is
 * applied or anything is pushed. */
static void sc_retry_after(fx *f)
{
    tierd_up(f, "retry.after_script");
    report_ok(f, 1, SILVER);
    uint64_t fence = claim_ok(f, 1, 30000);
    report_ok(f, 1, GOLD);
    cr_assert_eq(fail_permanent(f, 1, fence), TIER_OK, "%s", E.message);
    wait_job(f, 1, "failed", 2000);
    short_timeout(f, true);
    cr_assert_neq(control(f, 1, false), TIER_OK, "RetryJob was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
}

/* CancelJob of a once-claimed job whose worker moved the file to silver and
 * vanished: aimed home (bronze, also silver), crash before memory and push
 * are updated.  The operator's retry after the restart is acknowledged;
 * the content must end on bronze. */
static void sc_cancel_after(fx *f)
{
    tierd_up(f, "cancel.after_script");
    report_ok(f, 1, SILVER);
    claim_ok(f, 1, 300);
    move_file(f, 1, "bronze", "silver");
    wait_job(f, 1, "update", 5000);
    short_timeout(f, true);
    cr_assert_neq(control(f, 1, true), TIER_OK, "CancelJob was answered");
    short_timeout(f, false);
    expect_crash(f, &f->td.pid, "tierd");
    tierd_up(f, NULL);
    int rv = control(f, 1, true);
    cr_assert(rv == TIER_OK || rv == TIER_NOT_FOUND, "the retried CancelJob: %s %s",
              tier_status_name(rv), E.message);
    snprintf(ct(f, 1)->held_at, sizeof(ct(f, 1)->held_at), "bronze");
}

/* ---------------------------------------------------------- worker scenarios */

/* A real worker armed at f->point: content 2 to silver and content 1 to
 * first (gold crosses filesystems), until the worker dies at the point. */
static void worker_crash(fx *f, int64_t first, bool norename)
{
    tierd_up(f, NULL);
    pid_t w = worker_start(f, f->point, norename);
    usleep(300 * 1000); /* connected, so the first push reaches it */
    report_ok(f, 2, SILVER);
    report_ok(f, 1, first);
    expect_crash(f, &f->w[f->nw - 1], "tier-worker");
    (void)w;
}

/* writer.after_acquire: the previous writer acknowledged a report and was
 * stopped; the next one dies right after taking the writer lease, before
 * loading any state.  A third one waits out the dead one's lease, loads
 * everything and serves: the acknowledged report's job still runs. */
static void sc_writer_after_acquire(fx *f)
{
    tierd_up(f, NULL);
    report_ok(f, 1, SILVER);
    kill(f->td.pid, SIGTERM);
    cr_assert_neq(tier_test_wait(f->td.pid, 10000), -1, "tierd did not stop");
    tierd_spawn(f, "writer.after_acquire");
    expect_crash(f, &f->td.pid, "tierd (taking the writer lease)");
    tierd_up(f, NULL);
    report_ok(f, 2, GOLD);
    snprintf(ct(f, 1)->history, sizeof(ct(f, 1)->history), "bronze>silver");
    snprintf(ct(f, 2)->history, sizeof(ct(f, 2)->history), "bronze>gold");
}

static void sc_w_after_claim(fx *f)
{
    worker_crash(f, SILVER, false);
    report_ok(f, 1, GOLD); /* to a third level while the dead worker's claim lasts */
}

static void sc_w_renamed(fx *f)
{
    worker_crash(f, SILVER, false);
    report_ok(f, 1, BRONZE); /* cancel: the file may already be in silver */
}

static void sc_w_linked(fx *f)
{
    worker_crash(f, SILVER, true);
    report_ok(f, 1, GOLD);
}

static void sc_w_copied(fx *f)
{
    worker_crash(f, GOLD, false);
    report_ok(f, 1, SILVER); /* a temporary in gold, the file in bronze */
}

/* The copy is in gold under its real name, the source still in bronze; the
 * lease runs out, then a report retargets the job to silver. */
static void sc_w_installed(fx *f)
{
    worker_crash(f, GOLD, false);
    wait_job(f, 1, "update", 5000);
    report_ok(f, 1, SILVER);
}

static void sc_w_src_unlinked(fx *f)
{
    worker_crash(f, GOLD, false);
    report_ok(f, 1, BRONZE);
}

static void sc_w_before_dir_sync(fx *f)
{
    worker_crash(f, SILVER, false);
    report_ok(f, 1, GOLD);
}

static void sc_w_before_complete(fx *f)
{
    worker_crash(f, SILVER, false);
    report_ok(f, 1, BRONZE);
}

/* Completed and answered: a new report then starts a fresh job. */
static void sc_w_after_complete(fx *f)
{
    worker_crash(f, SILVER, false);
    report_ok(f, 1, GOLD);
}

/* ---------------------------------------------------------- the walk */

typedef struct {
    const char *point;
    void (*run)(fx *f);
    const char *const *levels;
    bool cross_fs; /* needs gold on another filesystem */
} scenario;

static const scenario SCENARIOS[] = {
    {"report.before_script", sc_report_before, B_B_S_G, false},
    {"report.after_script", sc_report_after, B_B_S_G, true},
    {"claim.after_script", sc_claim_after, B_B_S_G, true},
    {"complete.after_done", sc_complete_done, B_B_S_G, true},
    {"complete.after_commit", sc_complete_commit, B_B_S_G, true},
    {"complete.after_finish", sc_complete_finish, B_B_S_G, false},
    {"fail.after_script", sc_fail_after, B_B_S_G, true},
    {"retry.after_script", sc_retry_after, B_B_S_G, true},
    {"cancel.after_script", sc_cancel_after, B_B_S_G, false},
    {"reaper.after_expire", sc_reaper_after, B_B_S_G, true},
    {"recover.before_commit", sc_recover_before, B_B_S_G, false},
    {"recover.after_commit", sc_recover_after, B_B_S_G, false},
    {"setlevels.after_mkdir", sc_setlevels_mkdir, B_B_S_G, false},
    {"setlevels.after_commit", sc_setlevels_commit, B_B_B_G, false},
    {"migrate.after_setlevels_commit", sc_migrate_commit, B_B_S_G, false},
    {"migrate.before_retire", sc_migrate_before_retire, B_B_S_G, false},
    {"migrate.after_rmdir", sc_migrate_after_rmdir, B_B_S_G, false},
    {"views.after_commit", sc_views_commit, B_B_S_G, false},
    {"comments.after_lock", sc_comments_lock, B_B_S_G, false},
    {"comments.after_commit", sc_comments_commit, B_B_S_G, false},
    {"setpolicy.after_commit", sc_setpolicy_commit, B_B_S_G, false},
    {"planner.after_script", sc_planner_script, B_B_S_G, false},
    {"writer.after_acquire", sc_writer_after_acquire, B_B_S_G, false},
    {"worker.after_claim", sc_w_after_claim, B_B_S_G, true},
    {"move.renamed", sc_w_renamed, B_B_S_G, false},
    {"move.linked", sc_w_linked, B_B_S_G, true},
    {"move.copied", sc_w_copied, B_B_S_G, true},
    {"move.installed", sc_w_installed, B_B_S_G, true},
    {"move.src_unlinked", sc_w_src_unlinked, B_B_S_G, true},
    {"worker.before_dir_sync", sc_w_before_dir_sync, B_B_S_G, true},
    {"worker.before_complete", sc_w_before_complete, B_B_S_G, false},
    {"worker.after_complete", sc_w_after_complete, B_B_S_G, true},
};

typedef struct {
    char name[64];
    char bin[16];
} point;

/* The points bin lists; 0 when it has no --crash-points (yet). */
static size_t list_points(const char *bin, point *out, size_t max)
{
    char *path = tier_test_bin(bin), buf[8192];
    char *argv[] = {path, "--crash-points", NULL};
    size_t n = 0;
    int st = tier_test_run(argv, NULL, buf, sizeof(buf), 10000);

    free(path);
    if (st != 0)
        return 0;
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l != NULL && n < max;
         l = strtok_r(NULL, "\n", &save)) {
        snprintf(out[n].name, sizeof(out[n].name), "%s", l);
        snprintf(out[n].bin, sizeof(out[n].bin), "%s", bin);
        n++;
    }
    return n;
}

static void free_points(struct criterion_test_params *crp)
{
    cr_free(crp->params);
}

ParameterizedTestParameters(crash, walk)
{
    point tmp[128];
    size_t n = list_points("tierd", tmp, 128);
    n += list_points("tier-worker", tmp + n, 128 - n);
    point *p = cr_malloc(sizeof(*p) * (n ? n : 1));
    memcpy(p, tmp, sizeof(*p) * n);
    return cr_make_param_array(point, p, n, free_points);
}

ParameterizedTest(point *p, crash, walk, .timeout = 150)
{
    const scenario *s = NULL;
    int64_t t0 = tier_mono_ms();
    const char *only = getenv("TIER_CRASH_ONLY"); /* one point, while working on it */
    char logs[600];
    fx f;

    if (only != NULL && strcmp(only, p->name) != 0)
        cr_skip_test("TIER_CRASH_ONLY=%s", only);
    for (size_t i = 0; i < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]) && s == NULL; i++)
        if (strcmp(SCENARIOS[i].point, p->name) == 0)
            s = &SCENARIOS[i];
    cr_assert(s != NULL, "%s lists crash point %s, and tests/test_crash.c has no scenario for it",
              p->bin, p->name);
    setup(&f, s->point, s->levels);
    cr_assert(!s->cross_fs || f.mounted,
              "%s needs gold on another filesystem and none could be made (%s): the point "
              "cannot be tested here",
              s->point, f.mount_err);
    s->run(&f);
    drain(&f);
    check(&f);
    snprintf(logs, sizeof(logs), "%s", getenv("TIER_TEST_KEEP") ? f.logs : "removed");
    teardown(&f);
    cr_log_info("%s: passed in %lld ms (logs: %s)", p->name, (long long)(tier_mono_ms() - t0),
                logs);
}

/* The walk itself cannot pass empty: tierd must list its points. */
Test(crash, tierd_lists_points)
{
    point tmp[128];
    size_t n = list_points("tierd", tmp, 128);
    cr_assert_geq(n, 14, "tierd --crash-points listed %zu points", n);
}
