/*
 * testenv_invariants.c -- the invariants of tiering (I1..I7, written down in
 * docs/CRASH.md), checked from outside once a run is quiet: the files on
 * disk, the MySQL tables and the Redis keys, against what the test wrote and
 * was told (tier_test_content).  Any test that moves contents can call
 * tier_test_check_invariants(); tests/test_crash.c calls it after every
 * crash scenario.
 *
 * The checker never asserts: it returns the number of violations and one
 * line per violation, so the caller can add its own context (logs).
 */
#include "tier_testenv.h"

#include <dirent.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#if __has_include(<mysql.h>)
#include <mysql.h>
#else
#include <mysql/mysql.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tier_move.h"

#define MAX_LEVELS 16
#define MAX_DIRS 64
#define MAX_HITS 8

typedef struct {
    char name[33];
    long long min, max;
    char path[4098];
} level_row;

typedef struct {
    char path[4098];
    dev_t dev;
    ino_t ino;
} dir_ent;

/* Where one content's file was found. */
typedef struct {
    size_t n;
    size_t dir[MAX_HITS];
} hits;

typedef struct {
    char *msg;
    size_t len, used;
    int n;
} report;

static void violation(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void violation(report *r, const char *fmt, ...)
{
    va_list ap;
    int w;

    r->n++;
    if (r->len == 0 || r->used + 1 >= r->len)
        return;
    va_start(ap, fmt);
    w = vsnprintf(r->msg + r->used, r->len - r->used, fmt, ap);
    va_end(ap);
    r->used = w < 0 ? r->used : r->used + (size_t)w >= r->len ? r->len - 1 : r->used + (size_t)w;
    if (r->used + 1 < r->len)
        r->msg[r->used++] = '\n', r->msg[r->used] = '\0';
}

uint64_t tier_test_checksum(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

void tier_test_saw_fence(tier_test_content *c, uint64_t fence, bool claim)
{
    if (c->nfences >= TIER_TEST_MAX_FENCES)
        return;
    c->fences[c->nfences] = fence;
    c->claimed[c->nfences++] = claim;
}

/* ---------------------------------------------------------- MySQL */

static bool query(MYSQL *my, report *r, const char *q, MYSQL_RES **res)
{
    if (mysql_query(my, q) != 0 || (*res = mysql_store_result(my)) == NULL) {
        violation(r, "SQL %s: %s", q, mysql_error(my));
        return false;
    }
    return true;
}

static size_t load_levels(MYSQL *my, report *r, level_row *lv)
{
    MYSQL_RES *res;
    MYSQL_ROW row;
    size_t n = 0;

    if (!query(my, r, "SELECT content_level, min_counts, max_counts, path FROM level", &res))
        return 0;
    while ((row = mysql_fetch_row(res)) != NULL && n < MAX_LEVELS) {
        snprintf(lv[n].name, sizeof(lv[n].name), "%s", row[0]);
        lv[n].min = atoll(row[1]);
        lv[n].max = atoll(row[2]);
        snprintf(lv[n].path, sizeof(lv[n].path), "%s", row[3]);
        n++;
    }
    mysql_free_result(res);
    return n;
}

static void db_level(MYSQL *my, report *r, int64_t cid, char *out, size_t len)
{
    char q[128];
    MYSQL_RES *res;
    MYSQL_ROW row;

    out[0] = '\0';
    snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %lld", (long long)cid);
    if (!query(my, r, q, &res))
        return;
    if ((row = mysql_fetch_row(res)) != NULL && row[0] != NULL)
        snprintf(out, len, "%s", row[0]);
    mysql_free_result(res);
}

static const level_row *level_named(const level_row *lv, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(lv[i].name, name) == 0)
            return &lv[i];
    return NULL;
}

static const level_row *level_for(const level_row *lv, size_t n, int64_t count)
{
    for (size_t i = 0; i < n; i++)
        if (count >= lv[i].min && count <= lv[i].max)
            return &lv[i];
    return NULL;
}

/* ---------------------------------------------------------- directories */

static dir_ent *g_dirs; /* nftw has no argument */
static size_t g_ndirs;

static void add_dir(dir_ent *d, size_t *n, const char *path)
{
    struct stat sb;

    if (*n >= MAX_DIRS || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return;
    for (size_t i = 0; i < *n; i++)
        if (d[i].dev == sb.st_dev && d[i].ino == sb.st_ino)
            return;
    snprintf(d[*n].path, sizeof(d[*n].path), "%s", path);
    d[*n].dev = sb.st_dev;
    d[*n].ino = sb.st_ino;
    (*n)++;
}

static int walk_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_D)
        add_dir(g_dirs, &g_ndirs, path);
    return 0;
}

static size_t find_dirs(const level_row *lv, size_t nl, const char *root, dir_ent *d)
{
    g_dirs = d;
    g_ndirs = 0;
    for (size_t i = 0; i < nl; i++)
        add_dir(d, &g_ndirs, lv[i].path);
    if (root != NULL)
        nftw(root, walk_one, 16, FTW_PHYS);
    return g_ndirs;
}

static long content_of(const tier_test_content *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].filename, name) == 0)
            return (long)i;
    return -1;
}

/* I3 for one directory, and where the contents' files are. */
static void scan_dir(const dir_ent *d, size_t di, const tier_test_content *v, size_t n, hits *h,
                     report *r)
{
    DIR *dir = opendir(d->path);
    struct dirent *de;
    size_t plen = strlen(TIER_MOVE_TMP_PREFIX);

    if (dir == NULL) {
        violation(r, "I1 cannot open %s", d->path);
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        long i;
        if (strncmp(de->d_name, TIER_MOVE_TMP_PREFIX, plen) == 0)
            violation(r, "I3 temporary %s left in %s", de->d_name, d->path);
        else if ((i = content_of(v, n, de->d_name)) >= 0 && h[i].n < MAX_HITS)
            h[i].dir[h[i].n++] = di;
    }
    closedir(dir);
}

static bool same_dir(const dir_ent *d, const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && sb.st_dev == d->dev && sb.st_ino == d->ino;
}

static void check_bytes(const char *dir, const tier_test_content *c, report *r)
{
    char p[4400];
    size_t len = 0;
    char *got;

    snprintf(p, sizeof(p), "%s/%s", dir, c->filename);
    if ((got = tier_test_slurp(p, &len)) == NULL) {
        violation(r, "I2 cid %lld: cannot read %s", (long long)c->cid, p);
        return;
    }
    if (tier_test_checksum(got, len) != c->sum)
        violation(r, "I2 cid %lld: %s changed (%zu bytes)", (long long)c->cid, p, len);
    free(got);
}

/* I1, I2 and I4 for one content. */
static void check_place(MYSQL *my, const level_row *lv, size_t nl, const dir_ent *d,
                        const tier_test_content *c, const hits *h, report *r)
{
    char lvl[64];
    const level_row *at, *want;

    db_level(my, r, c->cid, lvl, sizeof(lvl));
    if ((at = level_named(lv, nl, lvl)) == NULL) {
        violation(r, "I1 cid %lld: MySQL level '%s' is not in the level table", (long long)c->cid,
                  lvl);
        return;
    }
    if (h->n != 1) {
        char where[1024] = "";
        for (size_t k = 0, u = 0; k < h->n && u < sizeof(where); k++)
            u += (size_t)snprintf(where + u, sizeof(where) - u, " %s", d[h->dir[k]].path);
        violation(r, "I1 cid %lld: %s found %zu times (MySQL says %s):%s", (long long)c->cid,
                  c->filename, h->n, lvl, where);
    } else if (!same_dir(&d[h->dir[0]], at->path)) {
        violation(r, "I1 cid %lld: %s is in %s, MySQL says %s (%s)", (long long)c->cid, c->filename,
                  d[h->dir[0]].path, lvl, at->path);
    }
    if (h->n >= 1)
        check_bytes(d[h->dir[0]].path, c, r);
    want = c->held_at[0] ? level_named(lv, nl, c->held_at)
           : c->reported ? level_for(lv, nl, c->last_count)
                         : level_named(lv, nl, c->initial_level);
    if (want == NULL || strcmp(want->name, lvl) != 0)
        violation(r, "I4 cid %lld: MySQL level %s, last acknowledged %s%lld says %s",
                  (long long)c->cid, lvl, c->reported ? "count " : "(none) ",
                  (long long)(c->reported ? c->last_count : 0), want ? want->name : "?");
}

/* I5: the history rows chain from the initial level to the current one:
 * one row per real change, each row's old level the previous row's new. */
static void check_history(MYSQL *my, const tier_test_content *c, report *r)
{
    char q[200], lvl[64], flat[1024], cur[64];
    MYSQL_RES *res;
    MYSQL_ROW row;
    size_t u;
    bool chained = true;

    snprintf(q, sizeof(q),
             "SELECT old_content_level, new_content_level FROM update_history WHERE cid = %lld "
             "ORDER BY id",
             (long long)c->cid);
    if (!query(my, r, q, &res))
        return;
    u = (size_t)snprintf(flat, sizeof(flat), "%s", c->initial_level);
    snprintf(cur, sizeof(cur), "%s", c->initial_level);
    while ((row = mysql_fetch_row(res)) != NULL) {
        const char *o = row[0] ? row[0] : "NULL", *nw = row[1] ? row[1] : "NULL";
        if (strcmp(o, cur) != 0 || strcmp(o, nw) == 0) {
            chained = false;
            if (u < sizeof(flat))
                u += (size_t)snprintf(flat + u, sizeof(flat) - u, " [%s->]", o);
        }
        if (u < sizeof(flat))
            u += (size_t)snprintf(flat + u, sizeof(flat) - u, ">%s", nw);
        snprintf(cur, sizeof(cur), "%s", nw);
    }
    mysql_free_result(res);
    db_level(my, r, c->cid, lvl, sizeof(lvl));
    if (!chained || strcmp(cur, lvl) != 0)
        violation(r, "I5 cid %lld: history %s does not chain from %s to %s", (long long)c->cid,
                  flat, c->initial_level, lvl);
    else if (c->history[0] != '\0' && strcmp(flat, c->history) != 0)
        violation(r, "I5 cid %lld: history %s, expected %s", (long long)c->cid, flat, c->history);
}

/* ---------------------------------------------------------- Redis */

static redisReply *rcmd(redisContext *rd, report *r, const char *fmt, ...)
{
    va_list ap;
    redisReply *x;

    va_start(ap, fmt);
    x = redisvCommand(rd, fmt, ap);
    va_end(ap);
    if (x == NULL || x->type == REDIS_REPLY_ERROR) {
        violation(r, "Redis: %s", x ? x->str : rd->errstr);
        if (x)
            freeReplyObject(x);
        return NULL;
    }
    return x;
}

static const tier_test_content *by_cid(const tier_test_content *v, size_t n, long long cid)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].cid == cid)
            return &v[i];
    return NULL;
}

static void check_job_key(redisContext *rd, const char *key, const tier_test_content *v, size_t n,
                          report *r)
{
    redisReply *x = rcmd(rd, r, "HMGET %s cid status target fence", key);
    const tier_test_content *c;

    if (x == NULL)
        return;
    const char *cid = x->element[0]->str, *st = x->element[1]->str;
    c = cid ? by_cid(v, n, atoll(cid)) : NULL;
    if (!(c != NULL && c->may_fail && st != NULL && strcmp(st, "failed") == 0))
        violation(r, "I6 job left: %s status %s target %s fence %s", key, st ? st : "?",
                  x->element[2]->str ? x->element[2]->str : "?",
                  x->element[3]->str ? x->element[3]->str : "?");
    freeReplyObject(x);
}

/* I6: no job hash left (but expected failures); no index entry left. */
static void check_jobs(redisContext *rd, const char *prefix, const tier_test_content *v, size_t n,
                       report *r)
{
    char cursor[32] = "0";
    static const char *const idx[] = {"update", "claimed", "done"};

    do {
        redisReply *x = rcmd(rd, r, "SCAN %s MATCH %sjob:* COUNT 1000", cursor, prefix);
        if (x == NULL)
            return;
        snprintf(cursor, sizeof(cursor), "%s", x->element[0]->str);
        for (size_t i = 0; i < x->element[1]->elements; i++)
            check_job_key(rd, x->element[1]->element[i]->str, v, n, r);
        freeReplyObject(x);
    } while (strcmp(cursor, "0") != 0);
    for (size_t i = 0; i < 3; i++) {
        redisReply *x = rcmd(rd, r, i < 2 ? "ZCARD %sjobs:%s" : "SCARD %sjobs:%s", prefix, idx[i]);
        if (x != NULL && x->integer != 0)
            violation(r, "I6 index %sjobs:%s still has %lld entries", prefix, idx[i], x->integer);
        if (x)
            freeReplyObject(x);
    }
}

/* I7: claims strictly increase, everything seen never goes back, and the
 * fences hash is at least every fence seen. */
static void check_fences(redisContext *rd, const char *prefix, const tier_test_content *c,
                         report *r)
{
    uint64_t last = 0, last_claim = 0, max = 0, kept;
    bool any_claim = false;
    redisReply *x;

    for (size_t i = 0; i < c->nfences; i++) {
        uint64_t f = c->fences[i];
        if (f < last)
            violation(r, "I7 cid %lld: fence %llu seen after %llu", (long long)c->cid,
                      (unsigned long long)f, (unsigned long long)last);
        if (c->claimed[i] && any_claim && f <= last_claim)
            violation(r, "I7 cid %lld: claim with fence %llu after a claim with %llu",
                      (long long)c->cid, (unsigned long long)f, (unsigned long long)last_claim);
        if (c->claimed[i])
            last_claim = f, any_claim = true;
        last = f > last ? f : last;
        max = f > max ? f : max;
    }
    /* Where the next job starts: the job hash if one is left, else fences. */
    if ((x = rcmd(rd, r, "HGET %sfences %lld", prefix, (long long)c->cid)) == NULL)
        return;
    kept = x->type == REDIS_REPLY_STRING ? strtoull(x->str, NULL, 10) : 0;
    freeReplyObject(x);
    if ((x = rcmd(rd, r, "HGET %sjob:%lld fence", prefix, (long long)c->cid)) == NULL)
        return;
    if (x->type == REDIS_REPLY_STRING && strtoull(x->str, NULL, 10) > kept)
        kept = strtoull(x->str, NULL, 10);
    freeReplyObject(x);
    if (kept < max)
        violation(r, "I7 cid %lld: the next fence starts at %llu, a fence %llu was seen",
                  (long long)c->cid, (unsigned long long)kept, (unsigned long long)max);
}

/* ---------------------------------------------------------- all */

int tier_test_check_invariants(void *my, void *redis, const char *prefix, const char *root,
                               const tier_test_content *v, size_t n, char *msg, size_t len)
{
    report r = {msg, len, 0, 0};
    level_row lv[MAX_LEVELS];
    dir_ent d[MAX_DIRS];
    hits *h = calloc(n + 1, sizeof(*h));
    size_t nl, nd;

    if (len > 0)
        msg[0] = '\0';
    nl = load_levels(my, &r, lv);
    nd = find_dirs(lv, nl, root, d);
    for (size_t i = 0; h != NULL && i < nd; i++)
        scan_dir(&d[i], i, v, n, h, &r);
    for (size_t i = 0; h != NULL && i < n; i++) {
        check_place(my, lv, nl, d, &v[i], &h[i], &r);
        check_history(my, &v[i], &r);
        check_fences(redis, prefix, &v[i], &r);
    }
    check_jobs(redis, prefix, v, n, &r);
    free(h);
    return r.n;
}
