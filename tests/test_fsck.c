/*
 * test_fsck.c -- Scrub / `tierctl fsck` against a real tierd, Redis and
 * MariaDB.  Every kind of disagreement is made by hand (files deleted,
 * copied, moved, dropped; job hashes edited in Redis), then:
 *   - a scrub without repair reports each kind and changes nothing (dirs,
 *     SQL and job hashes compared before and after);
 *   - a scrub with repair fixes the safe ones (checked on disk, in MySQL
 *     and in Redis) and still reports the unsafe ones;
 *   - a third scrub finds only the unsafe ones.
 * The background scrubber is checked on its own.
 *
 * Temporaries are aged by waiting, not with utimensat: the rule uses ctime
 * (a copy carries its source's old mtime), which no call can set back, so
 * tierd runs with a 1 s lease and the test waits out twice that.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdarg.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_db.h"
#include "tier_testenv.h"
#include "tier_time.h"

typedef struct {
    tier_test_mysql m;
    char *root;
    char prefix[64];
    tier_test_tierd td;
    tier_client *c;
    MYSQL *my;
    redisContext *rd;
} fx;

static int seq;

static void sql(fx *f, const char *q)
{
    cr_assert(mysql_query(f->my, q) == 0, "%s: %s", q, mysql_error(f->my));
    MYSQL_RES *r = mysql_store_result(f->my);
    if (r)
        mysql_free_result(r);
}

static void path(fx *f, const char *level, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/%s", f->root, level, name);
}

static void put(fx *f, const char *level, const char *name, const char *bytes)
{
    char p[1024];
    path(f, level, name, p, sizeof(p));
    cr_assert(tier_test_write_file(p, bytes, strlen(bytes)));
}

static bool exists_in(fx *f, const char *level, const char *name)
{
    char p[1024];
    struct stat sb;
    path(f, level, name, p, sizeof(p));
    return lstat(p, &sb) == 0;
}

static void move_file(fx *f, const char *from, const char *to, const char *name)
{
    char a[1024], b[1024];
    path(f, from, name, a, sizeof(a));
    path(f, to, name, b, sizeof(b));
    cr_assert(rename(a, b) == 0, "rename %s %s", a, b);
}

static void rcmd(fx *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(f->rd, fmt, ap);
    va_end(ap);
    cr_assert(r != NULL && r->type != REDIS_REPLY_ERROR, "redis: %s", r ? r->str : "no reply");
    freeReplyObject(r);
}

/* Contents 1..9, each file in its level's directory. */
static void setup(fx *f, const char *scrub_interval)
{
    static const char *const seeded[][2] = {
        {"gold", "a.mp4"},   {"bronze", "b.mp4"}, {"silver", "c.mp4"},
        {"bronze", "d.mp4"}, {"silver", "e.mp4"}, {"gold", "f.mp4"},
        {"bronze", "g.mp4"}, {"bronze", "h.mp4"}, {"bronze", "i.mp4"}};
    char dir[1024], q[512], host[64];
    int port;

    memset(f, 0, sizeof(*f));
    f->root = tier_test_tmpdir();
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->root);
    for (const char *const *l = (const char *const[]){"bronze", "silver", "gold", NULL}; *l; l++) {
        snprintf(dir, sizeof(dir), "%s/%s", f->root, *l);
        mkdir(dir, 0755);
    }
    f->my = mysql_init(NULL);
    cr_assert(mysql_real_connect(f->my, f->m.host, f->m.user, f->m.password, f->m.db,
                                 (unsigned)f->m.port, NULL, 0) != NULL,
              "%s", mysql_error(f->my));
    for (int i = 0; i < 9; i++) {
        put(f, seeded[i][0], seeded[i][1], seeded[i][1]);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%d, '%s', '%s')",
                 i + 1, seeded[i][0], seeded[i][1]);
        sql(f, q);
    }
    tier_test_redis_env(host, sizeof(host), &port);
    f->rd = redisConnect(host, port);
    cr_assert(f->rd && !f->rd->err);
    snprintf(f->prefix, sizeof(f->prefix), "tf%d_%d:", (int)getpid(), seq++);
    tier_test_tierd_init(&f->td, f->root, f->m.db, f->prefix);
    tier_test_tierd_setenv(&f->td, "TIER_THREADS=4");
    tier_test_tierd_setenv(&f->td, "TIER_SCRUB_INTERVAL_S=%s", scrub_interval);
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
    tier_client_set_timeout(f->c, 10000);
    char *extra[] = {"--lease-ms", "1000", "--scrub-rate", "500", NULL};
    tier_test_tierd_start(&f->td, extra);
}

static void teardown(fx *f)
{
    /* Also checks that a background scrub stops promptly. */
    cr_assert_neq(tier_test_tierd_stop(&f->td, SIGTERM, 10000), -1, "tierd did not stop");
    tier_client_close(f->c);
    mysql_close(f->my);
    redisFree(f->rd);
    tier_test_db_drop(&f->m);
    if (getenv("TIER_TEST_KEEP") == NULL)
        tier_test_rmtree(f->root);
    free(f->root);
}

static void views(fx *f, int64_t cid, int64_t count)
{
    Tier__ViewReport v = TIER__VIEW_REPORT__INIT, *list[1] = {&v};
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep;
    tier_error err;
    v.cid = cid;
    v.count = count;
    req.reports = list;
    req.n_reports = 1;
    cr_assert_eq(tier_report_views(f->c, &req, &rep, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(rep->results[0]->code, 0, "%s", rep->results[0]->message);
    cr_assert_str_eq(rep->results[0]->status, "update");
    tier_free(rep);
}

static Tier__ScrubReply *scrub(fx *f, bool repair, bool last, int *code)
{
    Tier__ScrubRequest req = TIER__SCRUB_REQUEST__INIT;
    Tier__ScrubReply *rep = NULL;
    tier_error err;
    req.repair = repair;
    req.last = last;
    int rv = tier_scrub(f->c, &req, &rep, &err);
    if (code != NULL)
        *code = rv;
    else
        cr_assert_eq(rv, TIER_OK, "scrub: %s", err.message);
    return rep;
}

static const Tier__ScrubCount *count_of(const Tier__ScrubReply *r, const char *kind)
{
    for (size_t i = 0; i < r->n_counts; i++)
        if (strcmp(r->counts[i]->kind, kind) == 0)
            return r->counts[i];
    cr_assert_fail("no count for %s", kind);
    return NULL;
}

static const Tier__Finding *find(const Tier__ScrubReply *r, const char *kind, int64_t cid,
                                 const char *fname)
{
    for (size_t i = 0; i < r->n_findings; i++) {
        const Tier__Finding *x = r->findings[i];
        if (strcmp(x->kind, kind) == 0 && x->cid == cid &&
            (fname == NULL || strcmp(x->filename, fname) == 0))
            return x;
    }
    return NULL;
}

static void dump(const Tier__ScrubReply *r, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->n_findings && o < len; i++)
        o +=
            (size_t)snprintf(buf + o, len - o, "\n  %s cid %lld %s: %s -> %s", r->findings[i]->kind,
                             (long long)r->findings[i]->cid, r->findings[i]->filename,
                             r->findings[i]->detail, r->findings[i]->action);
}

static void expect(const Tier__ScrubReply *r, const char *kind, uint64_t found, uint64_t repaired)
{
    static char all[8192];
    const Tier__ScrubCount *c = count_of(r, kind);
    dump(r, all, sizeof(all));
    cr_assert_eq(c->found, found, "%s: found %llu, want %llu;%s", kind,
                 (unsigned long long)c->found, (unsigned long long)found, all);
    cr_assert_eq(c->repaired, repaired, "%s: repaired %llu, want %llu;%s", kind,
                 (unsigned long long)c->repaired, (unsigned long long)repaired, all);
}

/* ------------------------------------------------------------ snapshots */

static size_t snap_dir(fx *f, const char *level, char *buf, size_t len)
{
    char d[1024];
    struct dirent **names;
    size_t o = 0;
    snprintf(d, sizeof(d), "%s/%s", f->root, level);
    int n = scandir(d, &names, NULL, alphasort);
    cr_assert(n >= 0);
    for (int i = 0; i < n; i++) {
        struct stat st;
        char p[1300];
        snprintf(p, sizeof(p), "%s/%s", d, names[i]->d_name);
        lstat(p, &st);
        o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%s/%s:%lld ", level,
                              names[i]->d_name, (long long)st.st_size);
        free(names[i]);
    }
    free(names);
    return o;
}

/* Dirs, contents + history, and each job's status, fence and target. */
static void snapshot(fx *f, char *buf, size_t len)
{
    size_t o = 0;
    char v[4096];
    for (const char *const *l = (const char *const[]){"bronze", "silver", "gold", NULL}; *l; l++)
        o += snap_dir(f, *l, buf + o, len - o);
    tier_test_sql1(f->my, "SELECT GROUP_CONCAT(cid, '=', content_level ORDER BY cid) FROM contents",
                   v, sizeof(v));
    o += (size_t)snprintf(buf + o, len - o, "| %s ", v);
    tier_test_sql1(f->my, "SELECT COUNT(*) FROM update_history", v, sizeof(v));
    o += (size_t)snprintf(buf + o, len - o, "| history %s |", v);
    for (int cid = 1; cid <= 999; cid++) {
        if (cid == 10)
            cid = 999;
        redisReply *r = redisCommand(f->rd, "HMGET %sjob:%d status fence target", f->prefix, cid);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        if (r->element[0]->type == REDIS_REPLY_STRING)
            o += (size_t)snprintf(buf + o, len - o, " %d:%s/%s/%s", cid, r->element[0]->str,
                                  r->element[1]->str ? r->element[1]->str : "-",
                                  r->element[2]->str ? r->element[2]->str : "-");
        freeReplyObject(r);
    }
}

static void sql1(fx *f, const char *q, char *out, size_t len)
{
    tier_test_sql1(f->my, q, out, len);
}

/* ------------------------------------------------------------ the mess */

static void make_every_kind(fx *f)
{
    char p[1024];
    int64_t now = tier_now_ms();

    /* missing: cid 1's file is gone */
    path(f, "gold", "a.mp4", p, sizeof(p));
    cr_assert(unlink(p) == 0);
    /* duplicated, identical: cid 2 also in silver (repairable) */
    put(f, "silver", "b.mp4", "b.mp4");
    /* duplicated, different bytes: cid 3 also in gold (an operator's) */
    put(f, "gold", "c.mp4", "another c");
    /* misplaced: cid 4 moved by hand to gold, no job */
    move_file(f, "bronze", "gold", "d.mp4");
    /* foreign */
    put(f, "bronze", "zzz.bin", "nobody's");
    /* temporary (aged below by waiting: twice the 1 s lease) */
    put(f, "silver", ".tier-tmp.d.mp4.123", "half a copy");
    /* stale: a job for a cid nobody has, in no index */
    rcmd(f,
         "HSET %sjob:999 cid 999 count 5 target bronze db_level gold filename ghost.mp4 "
         "worker_id %s status update fence 0 lease_expires_ms 0 attempts 0 created_ms %lld "
         "updated_ms %lld pushes 1",
         f->prefix, "", (long long)now, (long long)now);
    /* stale has_job: cid 5's job removed behind tierd's back */
    views(f, 5, 0);
    rcmd(f, "DEL %sjob:5", f->prefix);
    rcmd(f, "ZREM %sjobs:update 5", f->prefix);
    /* stuck update: cid 6 pushed many times, never claimed */
    views(f, 6, 5);
    rcmd(f, "HSET %sjob:6 pushes 100", f->prefix);
    /* stuck claimed: cid 7's lease expired a minute ago, in no index */
    views(f, 7, 1500);
    rcmd(f, "ZREM %sjobs:update 7", f->prefix);
    rcmd(f,
         "HSET %sjob:7 status claimed worker_id w1 lease_expires_ms %lld attempts 1 fence 1 "
         "updated_ms %lld",
         f->prefix, (long long)(now - 60000), (long long)(now - 61000));
    /* stuck done: cid 8 moved to silver by a worker, done a minute ago, in
     * no index (so the reaper's sweep never commits it) */
    views(f, 8, 1500);
    rcmd(f, "ZREM %sjobs:update 8", f->prefix);
    move_file(f, "bronze", "silver", "h.mp4");
    rcmd(f, "HSET %sjob:8 status done worker_id w1 attempts 1 fence 1 updated_ms %lld", f->prefix,
         (long long)(now - 60000));
    /* failed: cid 9, report only */
    views(f, 9, 1500);
    rcmd(f, "ZREM %sjobs:update 9", f->prefix);
    rcmd(f, "HSET %sjob:9 status failed reason disk-on-fire attempts 1 fence 1", f->prefix);
    rcmd(f, "SADD %sjobs:failed 9", f->prefix);
    usleep(2200 * 1000);
}

/* What stays after a repair: the unsafe ones. */
static void expect_unsafe_only(const Tier__ScrubReply *r)
{
    expect(r, "missing", 1, 0);
    expect(r, "duplicated", 1, 0);
    expect(r, "misplaced", 0, 0);
    expect(r, "foreign", 1, 0);
    expect(r, "temporary", 0, 0);
    expect(r, "stale_job", 1, 0);
    expect(r, "stuck_job", 1, 0);
    cr_assert(find(r, "duplicated", 3, "c.mp4"));
    cr_assert(find(r, "stale_job", 999, "ghost.mp4"));
    cr_assert(find(r, "stuck_job", 9, "i.mp4"));
}

Test(fsck, every_kind_reported_repaired_and_rechecked, .timeout = 120)
{
    static char before[16384], after[16384];
    char v[256], out[16384];
    fx f;
    int code;

    setup(&f, "0");
    /* No background scrub: nothing to show yet. */
    cr_assert_null(scrub(&f, false, true, &code));
    cr_assert_eq(code, TIER_NOT_FOUND);
    /* A clean tree is clean (and tierctl exits 0). */
    Tier__ScrubReply *r = scrub(&f, false, false, NULL);
    for (size_t i = 0; i < r->n_counts; i++)
        cr_assert_eq(r->counts[i]->found, 0, "%s on a clean tree", r->counts[i]->kind);
    cr_assert_eq(r->contents, 9);
    tier_free(r);

    make_every_kind(&f);

    /* 1. Read only: everything reported, nothing changed. */
    snapshot(&f, before, sizeof(before));
    r = scrub(&f, false, false, NULL);
    snapshot(&f, after, sizeof(after));
    cr_assert_str_eq(before, after);
    expect(r, "missing", 1, 0);
    expect(r, "duplicated", 2, 0);
    expect(r, "misplaced", 1, 0);
    expect(r, "foreign", 1, 0);
    expect(r, "temporary", 1, 0);
    expect(r, "stale_job", 2, 0);
    expect(r, "stuck_job", 4, 0);
    cr_assert(find(r, "missing", 1, "a.mp4"));
    const Tier__Finding *x = find(r, "misplaced", 4, "d.mp4");
    cr_assert(x && x->n_found_in == 1 && strcmp(x->found_in[0], "gold") == 0);
    cr_assert_str_eq(x->level, "bronze");
    x = find(r, "duplicated", 2, "b.mp4");
    cr_assert(x && x->n_found_in == 2 && strstr(x->detail, "identical"));
    cr_assert(find(r, "stale_job", 5, NULL));
    for (int cid = 6; cid <= 9; cid++)
        cr_assert(find(r, "stuck_job", cid, NULL), "stuck_job %d", cid);
    tier_free(r);

    /* tierctl says the same, and exits 1. */
    char *bin = tier_test_bin("tierctl");
    char *argv[] = {bin, "--url", f.td.listen, "fsck", NULL};
    cr_assert_eq(tier_test_run(argv, NULL, out, sizeof(out), 20000), 1, "%s", out);
    cr_assert(strstr(out, "missing (1)") && strstr(out, "stuck_job (4)"), "%s", out);
    cr_assert(strstr(out, "read only"), "%s", out);
    cr_log_info("tierctl fsck:\n%s", out);
    char *jargv[] = {bin, "--url", f.td.listen, "--json", "fsck", NULL};
    cr_assert_eq(tier_test_run(jargv, NULL, out, sizeof(out), 20000), 1, "%s", out);
    cr_assert(strstr(out, "\"kind\": \"foreign\"") && strstr(out, "\"zzz.bin\""), "%s", out);

    /* 2. Repair: the safe ones are fixed, the others still reported. */
    r = scrub(&f, true, false, NULL);
    expect(r, "missing", 1, 0);
    expect(r, "duplicated", 2, 1);
    expect(r, "misplaced", 1, 1);
    expect(r, "foreign", 1, 0);
    expect(r, "temporary", 1, 1);
    expect(r, "stale_job", 2, 1);
    expect(r, "stuck_job", 4, 3);
    cr_assert(r->repair);
    tier_free(r);
    cr_assert(exists_in(&f, "bronze", "b.mp4") && !exists_in(&f, "silver", "b.mp4"));
    cr_assert(exists_in(&f, "gold", "c.mp4") && exists_in(&f, "silver", "c.mp4"));
    cr_assert(!exists_in(&f, "silver", ".tier-tmp.d.mp4.123"));
    cr_assert(exists_in(&f, "bronze", "zzz.bin"));
    sql1(&f, "SELECT content_level FROM contents WHERE cid = 4", v, sizeof(v));
    cr_assert_str_eq(v, "gold");
    sql1(&f,
         "SELECT COUNT(*) FROM update_history WHERE cid = 4 AND old_content_level = 'bronze' "
         "AND new_content_level = 'gold'",
         v, sizeof(v));
    cr_assert_str_eq(v, "1");
    sql1(&f, "SELECT content_level FROM contents WHERE cid = 8", v, sizeof(v));
    cr_assert_str_eq(v, "silver");
    redisReply *rr = redisCommand(f.rd, "EXISTS %sjob:8", f.prefix);
    cr_assert_eq(rr->integer, 0, "the done job is finished");
    freeReplyObject(rr);
    rr = redisCommand(f.rd, "HGET %sjob:7 status", f.prefix);
    cr_assert_str_eq(rr->str, "update");
    freeReplyObject(rr);
    rr = redisCommand(f.rd, "ZSCORE %sjobs:update 7", f.prefix);
    cr_assert_eq(rr->type, REDIS_REPLY_STRING, "requeued jobs are indexed");
    freeReplyObject(rr);
    rr = redisCommand(f.rd, "EXISTS %sjob:999", f.prefix);
    cr_assert_eq(rr->integer, 1, "unknown jobs are left to an operator");
    freeReplyObject(rr);

    /* 3. Again: only what an operator must decide. */
    r = scrub(&f, false, false, NULL);
    expect_unsafe_only(r);
    tier_free(r);
    /* And repairing again changes nothing more. */
    r = scrub(&f, true, false, NULL);
    expect_unsafe_only(r);
    tier_free(r);
    free(bin);
    teardown(&f);
}

Test(fsck, background_scrub_counts_and_keeps_its_result, .timeout = 60)
{
    fx f;
    int code = TIER_NOT_FOUND;
    Tier__ScrubReply *r = NULL;

    setup(&f, "1");
    put(&f, "silver", "stray.bin", "x");
    move_file(&f, "bronze", "silver", "d.mp4");
    /* Wait for a run that saw both (an earlier one may have missed them). */
    for (int i = 0; i < 100; i++) {
        r = scrub(&f, false, true, &code);
        if (code == TIER_OK && count_of(r, "foreign")->found == 1 &&
            count_of(r, "misplaced")->found == 1)
            break;
        tier_free(r);
        r = NULL;
        usleep(100 * 1000);
    }
    cr_assert_not_null(r, "no background result with both findings");
    cr_assert(!r->repair);
    cr_assert(find(r, "foreign", 0, "stray.bin"));
    tier_free(r);
    /* It never repairs. */
    cr_assert(exists_in(&f, "silver", "d.mp4") && exists_in(&f, "silver", "stray.bin"));
    char v[64];
    sql1(&f, "SELECT content_level FROM contents WHERE cid = 4", v, sizeof(v));
    cr_assert_str_eq(v, "bronze");
    char *log = tier_test_slurp(f.td.log, NULL);
    cr_assert(log && strstr(log, "fsck: 2 disagreement(s)"), "%s", log ? log : "");
    free(log);
    teardown(&f);
}
