/*
 * tier_contents_batch.c -- registering many contents at once (the
 * AddContents RPC, `tierctl import`): which file names are taken, and
 * multi-row INSERTs.  One INSERT per content cost a round trip and a
 * commit each (20,000 files: 48 s); here a batch is a few statements in
 * one transaction.
 *
 * Like tier_contents_commit, the statements are generated once per arity
 * (256, 16 and 1 rows) and hold placeholders only: no data is ever put in
 * SQL text, and each text's address is its prepared-statement cache key.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_contents.h"
#include "tier_status.h"
#include "tier_writer.h"

#define MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

static const size_t ARITIES[] = {256, 16, 1};
#define NARITIES (sizeof(ARITIES) / sizeof(ARITIES[0]))
static char *taken_sql[NARITIES], *insert_sql[NARITIES];
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;
static const char SQL_TIMES[] =
    "SELECT " MS("generate_time") ", " MS("update_time") " FROM contents WHERE cid = ?";

static void build_sql(void)
{
    for (size_t a = 0; a < NARITIES; a++) {
        taken_sql[a] = tier_db_sql_list("SELECT filename FROM contents WHERE filename IN (", "?",
                                        ARITIES[a], ")");
        insert_sql[a] = tier_db_sql_list(
            "INSERT INTO contents (cid, content_level, filename, size_bytes) VALUES ",
            "(?, ?, ?, ?)", ARITIES[a], "");
    }
}

/* Marks taken[i] for the names of one chunk that MySQL already holds. */
static int taken_chunk(tier_db *db, size_t a, const char *const *names, const size_t *lens,
                       bool *taken)
{
    size_t n = ARITIES[a];
    MYSQL_BIND *p = calloc(n, sizeof(*p)), res[1];
    unsigned long *pl = calloc(n, sizeof(*pl)), fl;
    char fname[256];
    my_bool fnul;
    MYSQL_STMT *st;
    int rv;

    if (p == NULL || pl == NULL || taken_sql[a] == NULL) {
        free(p);
        free(pl);
        return TIER_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < n; i++) {
        pl[i] = lens[i];
        tier_db_bind_str(&p[i], names[i], &pl[i]);
        p[i].buffer_type = MYSQL_TYPE_BLOB; /* VARBINARY: bytes, no charset */
    }
    rv = tier_db_run(db, taken_sql[a], p, &st);
    free(p);
    free(pl);
    if (rv != TIER_OK)
        return rv;
    tier_db_bind_buf(&res[0], fname, sizeof(fname) - 1, &fl, &fnul);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "taken filenames");
    while ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED)
        for (size_t i = 0; i < n; i++)
            if (lens[i] == fl && memcmp(names[i], fname, fl) == 0)
                taken[i] = true;
    mysql_stmt_free_result(st);
    return TIER_OK;
}

int tier_contents_taken(tier_db *db, const char *const *names, const size_t *lens, size_t n,
                        bool *taken)
{
    size_t done = 0;
    int rv;

    pthread_once(&sql_once, build_sql);
    memset(taken, 0, n * sizeof(*taken));
    for (size_t a = 0; a < NARITIES; a++)
        for (; n - done >= ARITIES[a]; done += ARITIES[a])
            if ((rv = taken_chunk(db, a, names + done, lens + done, taken + done)) != TIER_OK)
                return rv;
    return TIER_OK;
}

/* The times MySQL stamped on cid (all rows of one INSERT share NOW(3)). */
static int stamped(tier_db *db, int64_t cid, int64_t *gen, int64_t *upd)
{
    MYSQL_BIND p[1], res[2];
    long long c = cid, g = 0, u = 0;
    MYSQL_STMT *st;
    int rv;

    tier_db_bind_i64(&p[0], &c);
    if ((rv = tier_db_run(db, SQL_TIMES, p, &st)) != TIER_OK)
        return rv;
    tier_db_bind_i64(&res[0], &g);
    tier_db_bind_i64(&res[1], &u);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "inserted times");
    rv = mysql_stmt_fetch(st);
    mysql_stmt_free_result(st);
    if (rv != 0 && rv != MYSQL_DATA_TRUNCATED)
        return rv == MYSQL_NO_DATA ? TIER_INTERNAL : tier_db_status(db, st, "inserted times");
    *gen = g;
    *upd = u;
    return TIER_OK;
}

static int insert_chunk(tier_db *db, size_t a, const int64_t *cids, const char *level,
                        const char *const *names, const size_t *lens, const int64_t *sizes,
                        int64_t *gen, int64_t *upd)
{
    size_t n = ARITIES[a];
    MYSQL_BIND *p = calloc(4 * n, sizeof(*p));
    unsigned long *fl = calloc(n, sizeof(*fl)), ll = strlen(level);
    MYSQL_STMT *st;
    int rv;

    if (p == NULL || fl == NULL || insert_sql[a] == NULL) {
        free(p);
        free(fl);
        return TIER_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < n; i++) {
        fl[i] = lens[i];
        tier_db_bind_i64(&p[4 * i], (long long *)&cids[i]);
        tier_db_bind_str(&p[4 * i + 1], level, &ll);
        tier_db_bind_str(&p[4 * i + 2], names[i], &fl[i]);
        p[4 * i + 2].buffer_type = MYSQL_TYPE_BLOB;
        tier_db_bind_i64(&p[4 * i + 3], (long long *)&sizes[i]);
    }
    rv = tier_db_run(db, insert_sql[a], p, &st);
    free(p);
    free(fl);
    if (rv == TIER_OK && (rv = stamped(db, cids[0], &gen[0], &upd[0])) == TIER_OK)
        for (size_t i = 1; i < n; i++)
            gen[i] = gen[0], upd[i] = upd[0];
    return rv;
}

int tier_contents_insert_many(tier_db *db, const int64_t *cids, const char *level,
                              const char *const *names, const size_t *lens, const int64_t *sizes,
                              size_t n, int64_t *gen_ms, int64_t *upd_ms)
{
    size_t done = 0;
    int rv;

    pthread_once(&sql_once, build_sql);
    if ((rv = tier_db_exec(db, "BEGIN")) != TIER_OK)
        return rv;
    if ((rv = tier_writer_fence_check(db)) != TIER_OK)
        goto fail;
    for (size_t a = 0; a < NARITIES; a++)
        for (; n - done >= ARITIES[a]; done += ARITIES[a])
            if ((rv = insert_chunk(db, a, cids + done, level, names + done, lens + done,
                                   sizes + done, gen_ms + done, upd_ms + done)) != TIER_OK)
                goto fail;
    return tier_db_exec(db, "COMMIT");
fail:
    tier_db_exec(db, "ROLLBACK");
    return rv;
}
