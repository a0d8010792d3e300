/*
 * tier_writer.c -- see tier_writer.h.  The lease scripts run with EVAL
 * (about one call a second: no need for EVALSHA and its reloading); the
 * fence statements are prepared like every other.
 */
#include "tier_writer.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_log.h"
#include "tier_status.h"

/* KEYS[1] <prefix>writer, KEYS[2] <prefix>writer:epoch; ARGV[1] ttl ms,
 * ARGV[2] the MySQL fence.  The epoch never hands out a token at or below
 * the fence: after Redis lost its data (restart without persistence) it
 * starts again from 1, and the fence would refuse every such token. */
static const char ACQUIRE[] = "local h = redis.call('GET', KEYS[1])\n"
                              "if h then return {'TAKEN', h} end\n"
                              "local t = redis.call('INCR', KEYS[2])\n"
                              "local floor = tonumber(ARGV[2])\n"
                              "if t <= floor then t = floor + 1 end\n"
                              "local ts = string.format('%d', t)\n"
                              "redis.call('SET', KEYS[2], ts)\n"
                              "redis.call('SET', KEYS[1], ts, 'PX', ARGV[1])\n"
                              "return {'HELD', ts}\n";

/* KEYS[1] <prefix>writer; ARGV[1] token, ARGV[2] ttl ms.  A missing key is
 * taken back: the caller renews only while its lease cannot have expired,
 * so the key was lost (restart, flush, eviction), not given up.  Anyone who
 * took it meanwhile holds it now (LOST), or raised the MySQL fence past us
 * (our commits fail). */
static const char RENEW[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 'HELD'\n"
    "elseif not v then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]); return 'REGAINED'\n"
    "end\n"
    "return 'LOST'\n";

static const char RELEASE[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                              "  return redis.call('DEL', KEYS[1])\n"
                              "end\n"
                              "return 0\n";

static redisReply *eval(tier_kv *kv, const char *script, const char *prefix, int nkeys,
                        const char *a1, const char *a2)
{
    char k1[128], k2[128];
    const char *argv[7] = {"EVAL", script, nkeys == 2 ? "2" : "1", k1, k2, a1, a2};
    const char **v = argv;
    redisReply *r;

    snprintf(k1, sizeof(k1), "%swriter", prefix);
    snprintf(k2, sizeof(k2), "%swriter:epoch", prefix);
    if (nkeys == 1) { /* drop KEYS[2] */
        argv[4] = a1;
        argv[5] = a2;
    }
    r = tier_kv_argv(kv, nkeys == 2 ? 7 : 6, v, NULL);
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        tier_error("redis: writer lease script: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static bool is(const redisReply *r, const char *s)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           strcmp(r->str, s) == 0;
}

tier_writer_state tier_writer_acquire(tier_kv *kv, const char *prefix, uint32_t ttl_ms,
                                      int64_t floor, int64_t *token)
{
    char ttl[16], fl[24];
    tier_writer_state st = TIER_WRITER_ERROR;
    redisReply *r;

    snprintf(ttl, sizeof(ttl), "%u", ttl_ms);
    snprintf(fl, sizeof(fl), "%lld", (long long)floor);
    if ((r = eval(kv, ACQUIRE, prefix, 2, ttl, fl)) == NULL)
        return TIER_WRITER_ERROR;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        *token = strtoll(r->element[1]->str, NULL, 10);
        st = is(r->element[0], "HELD") ? TIER_WRITER_HELD : TIER_WRITER_TAKEN;
    }
    freeReplyObject(r);
    return st;
}

tier_writer_state tier_writer_renew(tier_kv *kv, const char *prefix, int64_t token, uint32_t ttl_ms)
{
    char tok[24], ttl[16];
    tier_writer_state st = TIER_WRITER_ERROR;
    redisReply *r;

    snprintf(tok, sizeof(tok), "%lld", (long long)token);
    snprintf(ttl, sizeof(ttl), "%u", ttl_ms);
    if ((r = eval(kv, RENEW, prefix, 1, tok, ttl)) == NULL)
        return TIER_WRITER_ERROR;
    if (is(r, "HELD")) {
        st = TIER_WRITER_HELD;
    } else if (is(r, "REGAINED")) {
        tier_warn("writer lease: the key was gone from Redis (restart or flush?); set again");
        st = TIER_WRITER_HELD;
    } else if (is(r, "LOST")) {
        st = TIER_WRITER_LOST;
    }
    freeReplyObject(r);
    return st;
}

int tier_writer_release(tier_kv *kv, const char *prefix, int64_t token)
{
    char tok[24];
    redisReply *r;

    snprintf(tok, sizeof(tok), "%lld", (long long)token);
    if ((r = eval(kv, RELEASE, prefix, 1, tok, "")) == NULL)
        return TIER_UNAVAILABLE;
    freeReplyObject(r);
    return TIER_OK;
}

/* ------------------------------------------------------------ old connections */

static const char SQL_OLD_CONNS[] =
    "SELECT w.conn_id FROM writer_conn w JOIN information_schema.PROCESSLIST p "
    "ON p.ID = w.conn_id AND p.HOST = w.host WHERE w.fence_id = ? AND w.token < ? "
    "AND w.conn_id <> CONNECTION_ID()";
static const char SQL_FORGET[] = "DELETE FROM writer_conn WHERE fence_id = ? AND token < ?";

#define KILL_MAX 1024 /* connections of older writers killed at one takeover */

int tier_writer_conns_kill(tier_db *db, int64_t token)
{
    long long id = tier_db_fence_id(db), tok = token, conn;
    unsigned long long ids[KILL_MAX];
    MYSQL_BIND p[2], res[1];
    MYSQL_STMT *st;
    size_t n = 0;
    int killed = 0;

    tier_db_bind_i64(&p[0], &id);
    tier_db_bind_i64(&p[1], &tok);
    if (tier_db_run(db, SQL_OLD_CONNS, p, &st) != TIER_OK)
        return -1;
    tier_db_bind_i64(&res[0], &conn);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "writer_conn"), -1;
    while (n < KILL_MAX && mysql_stmt_fetch(st) == 0)
        ids[n++] = (unsigned long long)conn;
    mysql_stmt_free_result(st);
    for (size_t i = 0; i < n; i++) {
        char q[64];
        /* A number of ours, never input: KILL takes no placeholder. */
        snprintf(q, sizeof(q), "KILL CONNECTION %llu", ids[i]);
        if (mysql_query(tier_db_handle(db), q) == 0)
            killed++;
    }
    if (killed > 0)
        tier_warn("writer fence: killed %d MySQL connection(s) of an older writer", killed);
    tier_db_run(db, SQL_FORGET, p, &st);
    return killed;
}

/* ------------------------------------------------------------ home */

int tier_writer_home_set(tier_kv *kv, const char *prefix, const char *node, uint32_t ttl_ms)
{
    char key[128], px[16];
    const char *argv[5] = {"SET", key, node, "PX", px};
    redisReply *r;

    snprintf(key, sizeof(key), "%shome", prefix);
    snprintf(px, sizeof(px), "%u", ttl_ms);
    if ((r = tier_kv_argv(kv, 5, argv, NULL)) == NULL)
        return TIER_UNAVAILABLE;
    freeReplyObject(r);
    return TIER_OK;
}

int tier_writer_home_get(tier_kv *kv, const char *prefix, char *node, size_t len)
{
    char key[128];
    const char *argv[2] = {"GET", key};
    redisReply *r;
    int rv = TIER_NOT_FOUND;

    snprintf(key, sizeof(key), "%shome", prefix);
    if ((r = tier_kv_argv(kv, 2, argv, NULL)) == NULL)
        return TIER_UNAVAILABLE;
    if (r->type == REDIS_REPLY_STRING) {
        snprintf(node, len, "%.*s", (int)(r->len < len ? r->len : len - 1), r->str);
        rv = TIER_OK;
    }
    freeReplyObject(r);
    return rv;
}

/* ------------------------------------------------------------ MySQL fence */

/* One row per shard: id = shard + 1 (tier_db_fence_id; row 1 is the
 * single coordinator's). */
static const char SQL_READ[] = "SELECT token FROM writer_fence WHERE id = ?";
static const char SQL_ROW[] = "INSERT IGNORE INTO writer_fence (id, token) VALUES (?, 0)";
static const char SQL_LOCK_X[] = "SELECT token FROM writer_fence WHERE id = ? FOR UPDATE";
static const char SQL_LOCK_S[] = "SELECT token FROM writer_fence WHERE id = ? LOCK IN SHARE MODE";
static const char SQL_RAISE[] = "UPDATE writer_fence SET token = ? WHERE id = ?";

/* Runs a one-value query on our fence row; *out = 0 when there is no row. */
static int select_token(tier_db *db, const char *sql, int64_t *out)
{
    MYSQL_BIND res[1], p[1];
    long long v = 0, id = tier_db_fence_id(db);
    MYSQL_STMT *st;
    int rv;

    *out = 0;
    tier_db_bind_i64(&p[0], &id);
    if ((rv = tier_db_run(db, sql, p, &st)) != TIER_OK)
        return rv;
    tier_db_bind_i64(&res[0], &v);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "writer fence");
    rv = mysql_stmt_fetch(st);
    mysql_stmt_free_result(st);
    if (rv == 0)
        *out = v;
    else if (rv != MYSQL_NO_DATA)
        return tier_db_status(db, st, "writer fence");
    return TIER_OK;
}

int tier_writer_fence_read(tier_db *db, int64_t *token)
{
    return select_token(db, SQL_READ, token);
}

tier_writer_state tier_writer_fence_raise(tier_db *db, int64_t token)
{
    MYSQL_BIND p[2];
    long long t = token, id = tier_db_fence_id(db);
    int64_t cur;
    MYSQL_STMT *st;

    if (tier_db_exec(db, "BEGIN") != TIER_OK)
        return TIER_WRITER_ERROR;
    tier_db_bind_i64(&p[0], &id);
    if (tier_db_run(db, SQL_ROW, p, &st) != TIER_OK ||
        select_token(db, SQL_LOCK_X, &cur) != TIER_OK)
        goto fail;
    if (cur >= token) {
        tier_db_exec(db, "ROLLBACK");
        tier_warn("writer fence: MySQL holds token %lld >= ours (%lld)", (long long)cur,
                  (long long)token);
        return TIER_WRITER_LOST;
    }
    tier_db_bind_i64(&p[0], &t);
    tier_db_bind_i64(&p[1], &id);
    if (tier_db_run(db, SQL_RAISE, p, &st) != TIER_OK || tier_db_exec(db, "COMMIT") != TIER_OK)
        goto fail;
    return TIER_WRITER_HELD;
fail:
    tier_db_exec(db, "ROLLBACK");
    return TIER_WRITER_ERROR;
}

int tier_writer_fence_check(tier_db *db)
{
    int64_t mine = tier_db_writer_token(db), cur;
    int rv;

    if (mine == 0)
        return TIER_OK;
    if ((rv = select_token(db, SQL_LOCK_S, &cur)) != TIER_OK)
        return rv;
    if (cur == mine)
        return TIER_OK;
    tier_error("writer fence: MySQL holds token %lld, ours is %lld: not the writer", (long long)cur,
               (long long)mine);
    tier_writer_fenced("MySQL writer fence");
    return TIER_ABORTED;
}

/* ------------------------------------------------------------ fenced hook */

static _Atomic(tier_writer_fenced_fn) fenced_fn;

void tier_writer_on_fenced(tier_writer_fenced_fn fn)
{
    atomic_store(&fenced_fn, fn);
}

void tier_writer_fenced(const char *what)
{
    tier_writer_fenced_fn fn = atomic_load(&fenced_fn);
    if (fn != NULL)
        fn(what);
}

static _Atomic(tier_writer_missing_fn) missing_fn;
static void *_Atomic missing_arg;

void tier_writer_on_missing(tier_writer_missing_fn fn, void *arg)
{
    atomic_store(&missing_arg, arg);
    atomic_store(&missing_fn, fn);
}

bool tier_writer_missing(void)
{
    tier_writer_missing_fn fn = atomic_load(&missing_fn);
    return fn != NULL && fn(atomic_load(&missing_arg));
}
