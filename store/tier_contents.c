/*
 * tier_contents.c -- see tier_contents.h.
 *
 * The multi-row UPDATE of tier_contents_commit is the only statement whose
 * text is generated: its text holds placeholders only ("WHEN ? THEN
 * COALESCE(?, col)", a NULL parameter keeping the column as it is), is
 * built once per arity at first use, and its address is the prepared-
 * statement cache key like any literal's.  No data is ever put in SQL text.
 *
 * Every write is a transaction that starts with the writer-fence check
 * (tier_writer_fence_check): a tierd that is no longer the writer commits
 * nothing (ABORTED).
 */
#include "tier_contents.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_status.h"
#include "tier_writer.h"

#define MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

static const char SQL_LEVELS[] =
    "SELECT content_level, min_counts, max_counts, path FROM level ORDER BY min_counts";
static const char SQL_DEL_LEVELS[] = "DELETE FROM level";
static const char SQL_INS_LEVEL[] =
    "INSERT INTO level (content_level, min_counts, max_counts, path) VALUES (?, ?, ?, ?)";
static const char SQL_SCAN[] =
    "SELECT cid, content_level, filename, size_bytes FROM contents "
    "WHERE slot BETWEEN ? AND ? ORDER BY cid"; /* the connection's shard (sql/012) */
static const char SQL_INSERT[] =
    "INSERT INTO contents (cid, content_level, filename, size_bytes) VALUES (?, ?, ?, ?)";
static const char SQL_GET[] = "SELECT content_level, filename, " MS("generate_time") ", " MS(
    "update_time") ", size_bytes FROM contents WHERE cid = ?";
static const char SQL_HISTORY[] = "SELECT COALESCE(" MS(
    "old_updated_date") ", 0), COALESCE(old_content_level, ''), "
                        "COALESCE(" MS("new_updated_date") ", 0), COALESCE(new_content_level, '') "
                                                           "FROM update_history WHERE cid = ? "
                                                           "ORDER BY id DESC LIMIT ?";

int tier_contents_levels(tier_db *db, tier_level_row **out, size_t *n)
{
    tier_level_row row, *rows = NULL;
    MYSQL_BIND res[4];
    unsigned long nl, pl;
    my_bool nn, pn;
    size_t cnt = 0, cap = 0;
    MYSQL_STMT *st;
    int rv;

    if ((rv = tier_db_run(db, SQL_LEVELS, NULL, &st)) != TIER_OK)
        return rv;
    memset(&row, 0, sizeof(row));
    tier_db_bind_buf(&res[0], row.name, sizeof(row.name) - 1, &nl, &nn);
    tier_db_bind_i64(&res[1], (long long *)&row.min_counts);
    tier_db_bind_i64(&res[2], (long long *)&row.max_counts);
    tier_db_bind_buf(&res[3], row.path, sizeof(row.path) - 1, &pl, &pn);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "levels");
    while ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED) {
        if (cnt == cap) {
            tier_level_row *r = realloc(rows, (cap = cap ? cap * 2 : 8) * sizeof(*rows));
            if (r == NULL) {
                free(rows);
                mysql_stmt_free_result(st);
                return TIER_RESOURCE_EXHAUSTED;
            }
            rows = r;
        }
        row.name[nl < sizeof(row.name) ? nl : sizeof(row.name) - 1] = '\0';
        row.path[pl < sizeof(row.path) ? pl : sizeof(row.path) - 1] = '\0';
        rows[cnt++] = row;
    }
    mysql_stmt_free_result(st);
    *out = rows;
    *n = cnt;
    return TIER_OK;
}

static const char SQL_INS_MIG[] = "INSERT INTO level_migration (content_level, old_path, "
                                  "new_path, started_ms) VALUES (?, ?, ?, ?)";
static const char SQL_MIGS[] =
    "SELECT content_level, old_path, new_path, started_ms FROM level_migration";
static const char SQL_DEL_MIG[] = "DELETE FROM level_migration WHERE content_level = ?";

int tier_contents_set_levels(tier_db *db, const tier_level_row *rows, size_t n,
                             const tier_migration_row *mig, size_t nmig)
{
    MYSQL_STMT *st;
    int rv;

    if ((rv = tier_db_exec(db, "BEGIN")) != TIER_OK)
        return rv;
    if ((rv = tier_writer_fence_check(db)) != TIER_OK ||
        (rv = tier_db_run(db, SQL_DEL_LEVELS, NULL, &st)) != TIER_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        MYSQL_BIND p[4];
        unsigned long nl = strlen(rows[i].name), pl = strlen(rows[i].path);
        long long lo = rows[i].min_counts, hi = rows[i].max_counts;
        tier_db_bind_str(&p[0], rows[i].name, &nl);
        tier_db_bind_i64(&p[1], &lo);
        tier_db_bind_i64(&p[2], &hi);
        tier_db_bind_str(&p[3], rows[i].path, &pl);
        if ((rv = tier_db_run(db, SQL_INS_LEVEL, p, &st)) != TIER_OK)
            goto fail;
    }
    for (size_t i = 0; i < nmig; i++) {
        MYSQL_BIND p[4];
        unsigned long nl = strlen(mig[i].level), ol = strlen(mig[i].old_path),
                      wl = strlen(mig[i].new_path);
        long long at = mig[i].started_ms;
        tier_db_bind_str(&p[0], mig[i].level, &nl);
        tier_db_bind_str(&p[1], mig[i].old_path, &ol);
        tier_db_bind_str(&p[2], mig[i].new_path, &wl);
        tier_db_bind_i64(&p[3], &at);
        if ((rv = tier_db_run(db, SQL_INS_MIG, p, &st)) != TIER_OK)
            goto fail;
    }
    return tier_db_exec(db, "COMMIT");
fail:
    tier_db_exec(db, "ROLLBACK");
    return rv;
}

int tier_contents_migrations(tier_db *db, tier_migration_row **out, size_t *n)
{
    tier_migration_row row, *rows = NULL;
    MYSQL_BIND res[4];
    unsigned long nl, ol, wl;
    my_bool nn, on, wn;
    size_t cnt = 0, cap = 0;
    MYSQL_STMT *st;
    int rv;

    *out = NULL;
    *n = 0;
    if ((rv = tier_db_run(db, SQL_MIGS, NULL, &st)) != TIER_OK)
        return rv;
    memset(&row, 0, sizeof(row));
    tier_db_bind_buf(&res[0], row.level, sizeof(row.level) - 1, &nl, &nn);
    tier_db_bind_buf(&res[1], row.old_path, sizeof(row.old_path) - 1, &ol, &on);
    tier_db_bind_buf(&res[2], row.new_path, sizeof(row.new_path) - 1, &wl, &wn);
    tier_db_bind_i64(&res[3], (long long *)&row.started_ms);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "level migrations");
    while ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED) {
        if (cnt == cap) {
            tier_migration_row *r = realloc(rows, (cap = cap ? cap * 2 : 4) * sizeof(*rows));
            if (r == NULL) {
                free(rows);
                mysql_stmt_free_result(st);
                return TIER_RESOURCE_EXHAUSTED;
            }
            rows = r;
        }
        row.level[nl < sizeof(row.level) ? nl : sizeof(row.level) - 1] = '\0';
        row.old_path[ol < sizeof(row.old_path) ? ol : sizeof(row.old_path) - 1] = '\0';
        row.new_path[wl < sizeof(row.new_path) ? wl : sizeof(row.new_path) - 1] = '\0';
        rows[cnt++] = row;
    }
    mysql_stmt_free_result(st);
    *out = rows;
    *n = cnt;
    return TIER_OK;
}

int tier_contents_migration_done(tier_db *db, const char *level)
{
    MYSQL_BIND p[1];
    unsigned long nl = strlen(level);
    MYSQL_STMT *st;
    int rv;

    if ((rv = tier_db_exec(db, "BEGIN")) != TIER_OK)
        return rv;
    tier_db_bind_str(&p[0], level, &nl);
    if ((rv = tier_writer_fence_check(db)) != TIER_OK ||
        (rv = tier_db_run(db, SQL_DEL_MIG, p, &st)) != TIER_OK) {
        tier_db_exec(db, "ROLLBACK");
        return rv;
    }
    return tier_db_exec(db, "COMMIT");
}

int tier_contents_scan(tier_db *db, tier_contents_fn fn, void *arg)
{
    long long cid, size, lo, hi;
    MYSQL_BIND p[2];
    char level[33], fname[256];
    unsigned long ll, fl;
    my_bool ln, fnul;
    MYSQL_BIND res[4];
    MYSQL_STMT *st;
    int rv;

    tier_db_slots(db, &lo, &hi);
    tier_db_bind_i64(&p[0], &lo);
    tier_db_bind_i64(&p[1], &hi);
    if ((rv = tier_db_run(db, SQL_SCAN, p, &st)) != TIER_OK)
        return rv;
    tier_db_bind_i64(&res[0], &cid);
    tier_db_bind_buf(&res[1], level, sizeof(level) - 1, &ll, &ln);
    tier_db_bind_buf(&res[2], fname, sizeof(fname) - 1, &fl, &fnul);
    tier_db_bind_i64(&res[3], &size);
    if (mysql_stmt_bind_result(st, res) != 0)
        return tier_db_status(db, st, "scan");
    /* Streamed (no store_result): a million rows need no client buffer. */
    while ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED) {
        level[ll < sizeof(level) ? ll : sizeof(level) - 1] = '\0';
        fl = fl < sizeof(fname) - 1 ? fl : sizeof(fname) - 1;
        fname[fl] = '\0';
        if (fn(arg, cid, level, fname, fl, size) != 0)
            break;
    }
    if (rv == 1) {
        rv = tier_db_status(db, st, "scan");
        mysql_stmt_free_result(st);
        return rv;
    }
    mysql_stmt_free_result(st);
    return TIER_OK;
}

int tier_contents_insert(tier_db *db, int64_t cid, const char *level, const char *filename,
                         size_t flen, int64_t size)
{
    MYSQL_BIND p[4];
    long long c = cid, sz = size < 0 ? -1 : size;
    unsigned long ll = strlen(level), fl = flen;
    MYSQL_STMT *st;

    int rv;

    tier_db_bind_i64(&p[0], &c);
    tier_db_bind_str(&p[1], level, &ll);
    tier_db_bind_str(&p[2], filename, &fl);
    p[2].buffer_type = MYSQL_TYPE_BLOB; /* VARBINARY: bytes, no charset */
    tier_db_bind_i64(&p[3], &sz);
    if ((rv = tier_db_exec(db, "BEGIN")) != TIER_OK)
        return rv;
    if ((rv = tier_writer_fence_check(db)) != TIER_OK ||
        (rv = tier_db_run(db, SQL_INSERT, p, &st)) != TIER_OK) {
        tier_db_exec(db, "ROLLBACK");
        return rv;
    }
    return tier_db_exec(db, "COMMIT");
}

int tier_contents_get(tier_db *db, int64_t cid, tier_content_row *out)
{
    MYSQL_BIND p[1], res[5];
    long long c = cid, g, u, sz;
    unsigned long ll, fl;
    my_bool ln, fnul;
    MYSQL_STMT *st;
    int rv;

    memset(out, 0, sizeof(*out));
    tier_db_bind_i64(&p[0], &c);
    if ((rv = tier_db_run(db, SQL_GET, p, &st)) != TIER_OK)
        return rv;
    tier_db_bind_buf(&res[0], out->level, sizeof(out->level) - 1, &ll, &ln);
    tier_db_bind_buf(&res[1], out->filename, sizeof(out->filename) - 1, &fl, &fnul);
    tier_db_bind_i64(&res[2], &g);
    tier_db_bind_i64(&res[3], &u);
    tier_db_bind_i64(&res[4], &sz);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "get content");
    rv = mysql_stmt_fetch(st);
    mysql_stmt_free_result(st);
    if (rv != 0 && rv != MYSQL_DATA_TRUNCATED)
        return rv == MYSQL_NO_DATA ? TIER_NOT_FOUND : tier_db_status(db, st, "get content");
    out->level[ll < sizeof(out->level) ? ll : sizeof(out->level) - 1] = '\0';
    out->flen = fl < sizeof(out->filename) ? fl : sizeof(out->filename) - 1;
    out->filename[out->flen] = '\0';
    out->generate_ms = g;
    out->update_ms = u;
    out->size = sz;
    return TIER_OK;
}

int tier_contents_history(tier_db *db, int64_t cid, unsigned limit, tier_history_row *out,
                          size_t *n)
{
    MYSQL_BIND p[2], res[4];
    long long c = cid, lim = limit, o, w;
    tier_history_row row;
    unsigned long ol, nl;
    my_bool on, nn;
    MYSQL_STMT *st;
    int rv;

    *n = 0;
    tier_db_bind_i64(&p[0], &c);
    tier_db_bind_i64(&p[1], &lim);
    if ((rv = tier_db_run(db, SQL_HISTORY, p, &st)) != TIER_OK)
        return rv;
    memset(&row, 0, sizeof(row));
    tier_db_bind_i64(&res[0], &o);
    tier_db_bind_buf(&res[1], row.old_level, sizeof(row.old_level) - 1, &ol, &on);
    tier_db_bind_i64(&res[2], &w);
    tier_db_bind_buf(&res[3], row.new_level, sizeof(row.new_level) - 1, &nl, &nn);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "history");
    while (*n < limit && ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED)) {
        row.old_level[ol < sizeof(row.old_level) ? ol : sizeof(row.old_level) - 1] = '\0';
        row.new_level[nl < sizeof(row.new_level) ? nl : sizeof(row.new_level) - 1] = '\0';
        row.old_ms = o;
        row.new_ms = w;
        out[(*n)++] = row;
    }
    mysql_stmt_free_result(st);
    return TIER_OK;
}

/* ------------------------------------------------------------ commit */

static const size_t ARITIES[] = {128, 16, 1};
#define NARITIES (sizeof(ARITIES) / sizeof(ARITIES[0]))
static char *commit_sql[NARITIES];
static pthread_once_t commit_once = PTHREAD_ONCE_INIT;

/* Appends " WHEN ? THEN COALESCE(?, col)" n times: a NULL keeps col. */
static size_t when_list(char *s, size_t cap, size_t n, const char *col)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, " WHEN ? THEN COALESCE(?, %s)", col);
    return len;
}

/* "UPDATE ... content_level = CASE cid WHEN ? THEN COALESCE(?, content_level)
 * ... END, size_bytes = CASE cid ... END WHERE cid IN (?, ...)" */
static void build_commit_sql(void)
{
    for (size_t a = 0; a < NARITIES; a++) {
        size_t n = ARITIES[a], cap = 256 + n * 100, len = 0;
        char *s = malloc(cap);
        if (s == NULL)
            continue;
        len += (size_t)snprintf(s + len, cap - len, "UPDATE contents SET content_level = CASE cid");
        len += when_list(s + len, cap - len, n, "content_level");
        len += (size_t)snprintf(s + len, cap - len, " END, size_bytes = CASE cid");
        len += when_list(s + len, cap - len, n, "size_bytes");
        len += (size_t)snprintf(s + len, cap - len, " END WHERE cid IN (");
        for (size_t i = 0; i < n; i++)
            len += (size_t)snprintf(s + len, cap - len, i ? ", ?" : "?");
        snprintf(s + len, cap - len, ")");
        commit_sql[a] = s;
    }
}

/* Binds what is given, else NULL (the column is kept). */
static void bind_level(MYSQL_BIND *b, const char *level, unsigned long *len)
{
    if (level == NULL) {
        b->buffer_type = MYSQL_TYPE_NULL;
        return;
    }
    *len = strlen(level);
    tier_db_bind_str(b, level, len);
}

static void bind_size(MYSQL_BIND *b, const int64_t *size)
{
    if (size == NULL || *size < 0)
        b->buffer_type = MYSQL_TYPE_NULL;
    else
        tier_db_bind_i64(b, (long long *)size);
}

/* Parameters: n level pairs, n size pairs, then the n cids of IN. */
static int commit_chunk(tier_db *db, size_t a, const int64_t *cids, const char *const *levels,
                        const int64_t *sizes)
{
    size_t n = ARITIES[a];
    MYSQL_BIND *p = calloc(5 * n, sizeof(*p));
    unsigned long *lens = calloc(n, sizeof(*lens));
    MYSQL_STMT *st;
    int rv;

    if (p == NULL || lens == NULL || commit_sql[a] == NULL) {
        free(p);
        free(lens);
        return TIER_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < n; i++) {
        tier_db_bind_i64(&p[2 * i], (long long *)&cids[i]);
        bind_level(&p[2 * i + 1], levels ? levels[i] : NULL, &lens[i]);
        tier_db_bind_i64(&p[2 * n + 2 * i], (long long *)&cids[i]);
        bind_size(&p[2 * n + 2 * i + 1], sizes ? &sizes[i] : NULL);
        tier_db_bind_i64(&p[4 * n + i], (long long *)&cids[i]);
    }
    rv = tier_db_run(db, commit_sql[a], p, &st);
    free(p);
    free(lens);
    return rv;
}

int tier_contents_commit(tier_db *db, const int64_t *cids, const char *const *levels,
                         const int64_t *sizes, size_t n)
{
    size_t done = 0;
    int rv;

    pthread_once(&commit_once, build_commit_sql);
    if ((rv = tier_db_exec(db, "BEGIN")) != TIER_OK)
        return rv;
    if ((rv = tier_writer_fence_check(db)) != TIER_OK) {
        tier_db_exec(db, "ROLLBACK");
        return rv;
    }
    for (size_t a = 0; a < NARITIES; a++) {
        while (n - done >= ARITIES[a]) {
            if ((rv = commit_chunk(db, a, cids + done, levels ? levels + done : NULL,
                                   sizes ? sizes + done : NULL)) != TIER_OK) {
                tier_db_exec(db, "ROLLBACK");
                return rv;
            }
            done += ARITIES[a];
        }
    }
    return tier_db_exec(db, "COMMIT");
}
