/*
 * tier_db.h -- MySQL/MariaDB connections: configuration, connecting,
 * prepared statements cached per connection, and errors as status codes.
 *
 * Every statement that carries data is prepared (tier_db_prepare): user data
 * never becomes SQL text.  A connection is used by one thread at a time;
 * tier_db_pool_* hands them out (see common/tier_pool.h).
 */
#ifndef TIER_DB_H
#define TIER_DB_H

#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>

#include "tier_pool.h"

typedef struct {
    char host[256];
    int port;
    char user[64];
    char password[256]; /* from the environment or a config file, never argv */
    char db[64];
    /* The writer's fencing token (store/tier_writer.h): write transactions
     * check the MySQL fence still holds it.  0: no check (tools, tests). */
    long long writer_token;
    /* The shard this connection writes for (docs/CLUSTER.md): its
     * writer_fence row is shard + 1 (sql/009), and the loaders (contents,
     * views, comment minutes) return only rows of its slots.  shards 0 is
     * taken as 1: everything, row 1 -- the single coordinator, tools. */
    unsigned shard, shards;
} tier_db_config;

/* Defaults (127.0.0.1:3306, user tier, db tier) overridden by TIER_MYSQL_HOST,
 * TIER_MYSQL_PORT, TIER_MYSQL_USER, TIER_MYSQL_PASSWORD, TIER_MYSQL_DB. */
void tier_db_config_from_env(tier_db_config *cfg);

typedef struct tier_db tier_db;

/* Connects; on failure returns UNAVAILABLE (or PERMISSION_DENIED for bad
 * credentials) with the server's message in err. */
int tier_db_open(tier_db **out, const tier_db_config *cfg, char *err, size_t errlen);
void tier_db_close(tier_db *db);
MYSQL *tier_db_handle(tier_db *db);
/* cfg->writer_token of the connection (0: none). */
long long tier_db_writer_token(const tier_db *db);
/* The connection's writer_fence row: its shard + 1. */
int tier_db_fence_id(const tier_db *db);
/* The connection's slots, lo..hi inclusive (0..1023 for one shard), as
 * the two parameters of "CRC32(cid) % 1024 BETWEEN ? AND ?" (slot.h). */
void tier_db_slots(const tier_db *db, long long *lo, long long *hi);
/* Ids this connection's shard allocates (comment ids): shard, shard +
 * shards, shard + 2 shards...  so shards never collide and an id names
 * its shard (id % shards).  tier_db_id_align(db, x) is the first such id
 * >= x; tier_db_id_step(db) is shards. */
int64_t tier_db_id_align(const tier_db *db, int64_t x);
int64_t tier_db_id_step(const tier_db *db);
int tier_db_ping(tier_db *db, char *err, size_t errlen);

/* The prepared statement for sql on this connection, prepared on first use.
 * sql must be a string literal (its address is the cache key).  NULL on
 * error (see tier_db_status). */
MYSQL_STMT *tier_db_prepare(tier_db *db, const char *sql);

/* Status code for the connection's (or statement's, if not NULL) last
 * error: UNAVAILABLE for lost connections (the caller should drop the
 * connection), ALREADY_EXISTS for duplicate keys, INTERNAL otherwise.  Logs
 * the error with `what`. */
int tier_db_status(tier_db *db, MYSQL_STMT *st, const char *what);
/* True when the last error means the connection is unusable. */
bool tier_db_broken(tier_db *db);

/* Prepares (cached) and executes sql with params (may be NULL); the
 * statement, ready for binding results and fetching, in *out.  A status
 * (tier_db_status) on failure. */
int tier_db_run(tier_db *db, const char *sql, MYSQL_BIND *params, MYSQL_STMT **out);

/* Turns autocommit on or off for this connection. */
int tier_db_autocommit(tier_db *db, bool on);

/* Runs a statement without parameters or results (BEGIN, COMMIT...). */
int tier_db_exec(tier_db *db, const char *sql);

/* A pool of connections opened with cfg (which must outlive the pool). */
tier_pool *tier_db_pool_alloc(size_t size, const tier_db_config *cfg);
/* Returns a connection to the pool, dropping it if it is broken. */
void tier_db_pool_put(tier_pool *p, tier_db *db);

/* The text head + n copies of item separated by ", " + tail (malloc'ed;
 * NULL when out of memory): multi-row statements of placeholders only,
 * built once per arity and kept for the process's life (the prepared-
 * statement cache is keyed by the text's address). */
char *tier_db_sql_list(const char *head, const char *item, size_t n, const char *tail);

/* Bind helpers: fill one MYSQL_BIND. */
void tier_db_bind_i64(MYSQL_BIND *b, long long *v);
void tier_db_bind_i32(MYSQL_BIND *b, int *v);
void tier_db_bind_str(MYSQL_BIND *b, const char *s, unsigned long *len);
/* An output buffer for a string/blob column. */
void tier_db_bind_buf(MYSQL_BIND *b, char *buf, unsigned long cap, unsigned long *len,
                      my_bool *is_null);

#endif
