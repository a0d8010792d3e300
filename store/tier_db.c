/*
 * tier_db.c -- see tier_db.h.
 */
#include "tier_db.h"

#include <errmsg.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_log.h"
#include "tier_slot.h"
#include "tier_status.h"

typedef struct {
    const char *sql;
    MYSQL_STMT *st;
} db_stmt;

/* The statement cache grows as needed and is never evicted from: its keys
 * are the addresses of string literals, so it holds at most one entry per
 * statement in the program (about a hundred).  A fixed cache that returned
 * uncached statements once full leaked them: nobody closed them, and the
 * server's prepared statements piled up until max_prepared_stmt_count. */
struct tier_db {
    MYSQL *my;
    db_stmt *stmts;
    int nstmts, stmt_cap;
    bool broken;
    long long writer_token;
    int fence_id;
    long long slot_lo, slot_hi;
    int64_t shard, shards;
};

static void env_str(char *dst, size_t len, const char *name)
{
    const char *v = getenv(name);
    if (v != NULL && *v != '\0')
        snprintf(dst, len, "%s", v);
}

void tier_db_config_from_env(tier_db_config *cfg)
{
    const char *port = getenv("TIER_MYSQL_PORT");

    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
    snprintf(cfg->user, sizeof(cfg->user), "tier");
    snprintf(cfg->db, sizeof(cfg->db), "tier");
    cfg->port = port ? atoi(port) : 3306;
    env_str(cfg->host, sizeof(cfg->host), "TIER_MYSQL_HOST");
    env_str(cfg->user, sizeof(cfg->user), "TIER_MYSQL_USER");
    env_str(cfg->password, sizeof(cfg->password), "TIER_MYSQL_PASSWORD");
    env_str(cfg->db, sizeof(cfg->db), "TIER_MYSQL_DB");
}

/* A writer's connection records itself (sql/010), so that the next
 * writer can kill it if this host is cut off with a transaction open.
 * Failing to is logged, not fatal: only that rescue is lost. */
static const char SQL_REGISTER[] =
    "INSERT IGNORE INTO writer_conn (fence_id, token, conn_id, host) "
    "SELECT ?, ?, ID, HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()";

static void register_conn(tier_db *db)
{
    long long id = db->fence_id, tok = db->writer_token;
    MYSQL_BIND p[2];
    MYSQL_STMT *st;

    tier_db_bind_i64(&p[0], &id);
    tier_db_bind_i64(&p[1], &tok);
    if (tier_db_run(db, SQL_REGISTER, p, &st) != TIER_OK)
        tier_warn("MySQL: cannot record this writer connection in writer_conn (sql/010)");
}

int tier_db_open(tier_db **out, const tier_db_config *cfg, char *err, size_t errlen)
{
    tier_db *db = calloc(1, sizeof(*db));
    unsigned int timeout = 3;
    my_bool off = 0;

    if (db == NULL || (db->my = mysql_init(NULL)) == NULL) {
        free(db);
        snprintf(err, errlen, "out of memory");
        return TIER_RESOURCE_EXHAUSTED;
    }
    mysql_options(db->my, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    timeout = 30;
    mysql_options(db->my, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_options(db->my, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
    /* Reconnecting silently would lose prepared statements and session
     * state; the pool reopens broken connections instead. */
    mysql_options(db->my, MYSQL_OPT_RECONNECT, &off);
    mysql_options(db->my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (mysql_real_connect(db->my, cfg->host, cfg->user, cfg->password, cfg->db,
                           (unsigned)cfg->port, NULL, 0) == NULL) {
        unsigned e = mysql_errno(db->my);
        snprintf(err, errlen, "MySQL at %s:%d: %s", cfg->host, cfg->port, mysql_error(db->my));
        mysql_close(db->my);
        free(db);
        return e == ER_ACCESS_DENIED_ERROR || e == ER_DBACCESS_DENIED_ERROR ? TIER_PERMISSION_DENIED
                                                                            : TIER_UNAVAILABLE;
    }
    tier_db_exec(db, "SET time_zone = '+00:00'");
    db->writer_token = cfg->writer_token;
    {
        unsigned shards = cfg->shards ? cfg->shards : 1, lo, hi;
        tier_shard_slots(cfg->shard, shards, &lo, &hi);
        db->fence_id = (int)cfg->shard + 1;
        db->shard = cfg->shard;
        db->shards = shards;
        db->slot_lo = lo;
        db->slot_hi = hi;
    }
    if (db->writer_token != 0)
        register_conn(db);
    *out = db;
    return TIER_OK;
}

void tier_db_close(tier_db *db)
{
    if (db == NULL)
        return;
    for (int i = 0; i < db->nstmts; i++)
        mysql_stmt_close(db->stmts[i].st);
    free(db->stmts);
    mysql_close(db->my);
    free(db);
}

MYSQL *tier_db_handle(tier_db *db)
{
    return db->my;
}

long long tier_db_writer_token(const tier_db *db)
{
    return db->writer_token;
}

int tier_db_fence_id(const tier_db *db)
{
    return db->fence_id;
}

int64_t tier_db_id_align(const tier_db *db, int64_t x)
{
    int64_t r;

    if (x < 1)
        x = 1;
    r = ((x % db->shards) + db->shards) % db->shards;
    return x + (db->shard - r + db->shards) % db->shards;
}

int64_t tier_db_id_step(const tier_db *db)
{
    return db->shards;
}

void tier_db_slots(const tier_db *db, long long *lo, long long *hi)
{
    *lo = db->slot_lo;
    *hi = db->slot_hi;
}

int tier_db_ping(tier_db *db, char *err, size_t errlen)
{
    if (mysql_ping(db->my) != 0) {
        snprintf(err, errlen, "%s", mysql_error(db->my));
        db->broken = true;
        return TIER_UNAVAILABLE;
    }
    return TIER_OK;
}

static bool lost(unsigned e)
{
    return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONNECTION_ERROR ||
           e == CR_CONN_HOST_ERROR || e == CR_SERVER_LOST_EXTENDED || e == ER_SERVER_SHUTDOWN;
}

int tier_db_status(tier_db *db, MYSQL_STMT *st, const char *what)
{
    unsigned e = st ? mysql_stmt_errno(st) : mysql_errno(db->my);
    const char *msg = st ? mysql_stmt_error(st) : mysql_error(db->my);

    if (e == ER_DUP_ENTRY)
        return TIER_ALREADY_EXISTS;
    tier_error("mysql: %s: %s (%u)", what, msg, e);
    if (lost(e) || e == 0) {
        db->broken = true;
        return TIER_UNAVAILABLE;
    }
    if (e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT)
        return TIER_ABORTED;
    return TIER_INTERNAL;
}

bool tier_db_broken(tier_db *db)
{
    return db->broken;
}

MYSQL_STMT *tier_db_prepare(tier_db *db, const char *sql)
{
    MYSQL_STMT *st;

    for (int i = 0; i < db->nstmts; i++)
        if (db->stmts[i].sql == sql)
            return db->stmts[i].st;
    st = mysql_stmt_init(db->my);
    if (st == NULL)
        return NULL;
    if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0) {
        tier_db_status(db, st, "prepare");
        mysql_stmt_close(st);
        return NULL;
    }
    if (db->nstmts == db->stmt_cap) {
        int cap = db->stmt_cap ? db->stmt_cap * 2 : 64;
        db_stmt *v = realloc(db->stmts, (size_t)cap * sizeof(*v));
        if (v == NULL) {
            mysql_stmt_close(st);
            return NULL;
        }
        db->stmts = v;
        db->stmt_cap = cap;
    }
    db->stmts[db->nstmts].sql = sql;
    db->stmts[db->nstmts].st = st;
    db->nstmts++;
    return st;
}

int tier_db_run(tier_db *db, const char *sql, MYSQL_BIND *params, MYSQL_STMT **out)
{
    MYSQL_STMT *st = tier_db_prepare(db, sql);

    if (st == NULL)
        return tier_db_status(db, NULL, "prepare");
    if ((params != NULL && mysql_stmt_bind_param(st, params) != 0) || mysql_stmt_execute(st) != 0)
        return tier_db_status(db, st, sql);
    *out = st;
    return TIER_OK;
}

int tier_db_autocommit(tier_db *db, bool on)
{
    if (mysql_autocommit(db->my, on) != 0)
        return tier_db_status(db, NULL, "autocommit");
    return TIER_OK;
}

int tier_db_exec(tier_db *db, const char *sql)
{
    if (mysql_real_query(db->my, sql, strlen(sql)) != 0)
        return tier_db_status(db, NULL, sql);
    MYSQL_RES *r = mysql_store_result(db->my);
    if (r != NULL)
        mysql_free_result(r);
    return TIER_OK;
}

static void *pool_open(void *arg)
{
    const tier_db_config *cfg = arg;
    tier_db *db;
    char err[512];

    if (tier_db_open(&db, cfg, err, sizeof(err)) != TIER_OK) {
        tier_error("%s", err);
        return NULL;
    }
    return db;
}

static void pool_close(void *conn)
{
    tier_db_close(conn);
}

tier_pool *tier_db_pool_alloc(size_t size, const tier_db_config *cfg)
{
    return tier_pool_alloc(size, pool_open, pool_close, (void *)cfg);
}

void tier_db_pool_put(tier_pool *p, tier_db *db)
{
    if (db != NULL && db->broken) {
        tier_db_close(db);
        db = NULL;
    }
    tier_pool_put(p, db);
}

void tier_db_bind_i64(MYSQL_BIND *b, long long *v)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = v;
}

void tier_db_bind_i32(MYSQL_BIND *b, int *v)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = MYSQL_TYPE_LONG;
    b->buffer = v;
}

void tier_db_bind_str(MYSQL_BIND *b, const char *s, unsigned long *len)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = (void *)s;
    b->buffer_length = *len;
    b->length = len;
}

void tier_db_bind_buf(MYSQL_BIND *b, char *buf, unsigned long cap, unsigned long *len,
                      my_bool *is_null)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = buf;
    b->buffer_length = cap;
    b->length = len;
    b->is_null = is_null;
}

char *tier_db_sql_list(const char *head, const char *item, size_t n, const char *tail)
{
    size_t cap = strlen(head) + n * (strlen(item) + 2) + strlen(tail) + 1, len = 0;
    char *s = malloc(cap);
    if (s == NULL)
        return NULL;
    len += (size_t)snprintf(s + len, cap - len, "%s", head);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? ", " : "", item);
    snprintf(s + len, cap - len, "%s", tail);
    return s;
}
