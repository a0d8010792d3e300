/*
 * tier_views.c -- content_views, content_view_bucket and tier_policy
 * (tier_views.h).
 *
 * A batch is two multi-row upserts (states, then buckets with views) in one
 * transaction that starts with the writer-fence check, like every tiering
 * write.  Bucket rows add (views = views + VALUES(views)), so batches that
 * carry increments of the same bucket commute; states carry tierd's latest
 * value, written by one flusher at a time.
 */
#include "tier_views.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_status.h"
#include "tier_time.h"
#include "tier_writer.h"

static const size_t ARITIES[] = {256, 16, 1};
#define NARITIES (sizeof(ARITIES) / sizeof(ARITIES[0]))
static char *state_sql[NARITIES], *bucket_sql[NARITIES];
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;

static const char SQL_SCAN_SINCE[] =
    "SELECT cid, CAST(UNIX_TIMESTAMP(update_time) * 1000 AS SIGNED), "
    "CAST(UNIX_TIMESTAMP(generate_time) * 1000 AS SIGNED) FROM contents "
    "WHERE slot BETWEEN ? AND ?"; /* slot: sql/012 */
static const char SQL_SCAN_STATE[] = "SELECT cid, view_count, last_access_ms FROM content_views "
                                     "WHERE slot BETWEEN ? AND ?";
static const char SQL_SCAN_BUCKET[] =
    "SELECT cid, start_s, views FROM content_view_bucket WHERE slot BETWEEN ? AND ? "
    "AND start_s >= ?";
static const char SQL_PRUNE[] = "DELETE FROM content_view_bucket WHERE start_s < ? LIMIT ?";
static const char SQL_LATEST[] =
    "SELECT version, set_time_ms, set_by, body FROM tier_policy ORDER BY version DESC LIMIT 1";
static const char SQL_MAXV[] = "SELECT COALESCE(MAX(version), 0) FROM tier_policy FOR UPDATE";
static const char SQL_PUT[] =
    "INSERT INTO tier_policy (version, body, set_time_ms, set_by) VALUES (?, ?, ?, ?)";

static void build_sql(void)
{
    for (size_t a = 0; a < NARITIES; a++) {
        state_sql[a] =
            tier_db_sql_list("INSERT INTO content_views (cid, view_count, last_access_ms) VALUES ",
                             "(?, ?, ?)", ARITIES[a],
                             " ON DUPLICATE KEY UPDATE view_count = VALUES(view_count), "
                             "last_access_ms = GREATEST(last_access_ms, VALUES(last_access_ms))");
        bucket_sql[a] = tier_db_sql_list(
            "INSERT INTO content_view_bucket (cid, start_s, views) VALUES ", "(?, ?, ?)",
            ARITIES[a], " ON DUPLICATE KEY UPDATE views = views + VALUES(views)");
    }
}

/* One statement of sql[a] over ARITIES[a] rows, three columns each. */
static int write_chunk(tier_db *db, char *const *sql, size_t a, long long (*cols)[3])
{
    size_t n = ARITIES[a];
    MYSQL_BIND *p = calloc(3 * n, sizeof(*p));
    MYSQL_STMT *st;
    int rv;

    if (p == NULL || sql[a] == NULL) {
        free(p);
        return TIER_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < 3 * n; i++)
        tier_db_bind_i64(&p[i], &cols[i / 3][i % 3]);
    rv = tier_db_run(db, sql[a], p, &st);
    free(p);
    return rv;
}

static int write_all(tier_db *db, char *const *sql, long long (*cols)[3], size_t n)
{
    size_t done = 0;
    int rv;

    for (size_t a = 0; a < NARITIES; a++)
        for (; n - done >= ARITIES[a]; done += ARITIES[a])
            if ((rv = write_chunk(db, sql, a, cols + done)) != TIER_OK)
                return rv;
    return TIER_OK;
}

static int write_rows(tier_db *db, const tier_views_row *rows, size_t n, long long (*cols)[3])
{
    size_t nb = 0;
    int rv;

    for (size_t i = 0; i < n; i++) {
        cols[i][0] = rows[i].cid;
        cols[i][1] = rows[i].count;
        cols[i][2] = rows[i].last_access_ms;
    }
    if ((rv = write_all(db, state_sql, cols, n)) != TIER_OK)
        return rv;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].add <= 0)
            continue;
        cols[nb][0] = rows[i].cid;
        cols[nb][1] = rows[i].start_s;
        cols[nb++][2] = rows[i].add;
    }
    return write_all(db, bucket_sql, cols, nb);
}

int tier_views_write(tier_db *db, const tier_views_row *rows, size_t n)
{
    long long(*cols)[3] = malloc((n ? n : 1) * sizeof(*cols));
    int rv;

    pthread_once(&sql_once, build_sql);
    if (cols == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if ((rv = tier_db_exec(db, "BEGIN")) != TIER_OK)
        goto out;
    if ((rv = tier_writer_fence_check(db)) != TIER_OK ||
        (rv = write_rows(db, rows, n, cols)) != TIER_OK) {
        tier_db_exec(db, "ROLLBACK");
        goto out;
    }
    rv = tier_db_exec(db, "COMMIT");
out:
    free(cols);
    return rv;
}

/* Runs sql (params may be NULL) and calls fn on each row of three BIGINTs. */
static int scan3(tier_db *db, const char *sql, MYSQL_BIND *params, tier_views_fn fn, void *arg)
{
    long long v[3] = {0, 0, 0};
    MYSQL_BIND res[3];
    MYSQL_STMT *st;
    int rv;

    if ((rv = tier_db_run(db, sql, params, &st)) != TIER_OK)
        return rv;
    for (size_t i = 0; i < 3; i++)
        tier_db_bind_i64(&res[i], &v[i]);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, sql);
    rv = TIER_OK;
    while (mysql_stmt_fetch(st) == 0)
        if (fn(arg, v[0], v[1], v[2]) != 0) {
            rv = TIER_RESOURCE_EXHAUSTED;
            break;
        }
    mysql_stmt_free_result(st);
    return rv;
}

int tier_views_scan(tier_db *db, int64_t min_start_s, tier_views_fn since, tier_views_fn state,
                    tier_views_fn bucket, void *arg)
{
    long long min = min_start_s, lo, hi;
    MYSQL_BIND p[3];
    int rv;

    /* Only the connection's shard's contents (tier_db_slots). */
    tier_db_slots(db, &lo, &hi);
    tier_db_bind_i64(&p[0], &lo);
    tier_db_bind_i64(&p[1], &hi);
    tier_db_bind_i64(&p[2], &min);
    if ((rv = scan3(db, SQL_SCAN_SINCE, p, since, arg)) != TIER_OK ||
        (rv = scan3(db, SQL_SCAN_STATE, p, state, arg)) != TIER_OK)
        return rv;
    return scan3(db, SQL_SCAN_BUCKET, p, bucket, arg);
}

int tier_views_prune(tier_db *db, int64_t before_s, unsigned limit, uint64_t *deleted)
{
    long long b = before_s, l = limit;
    MYSQL_BIND p[2];
    MYSQL_STMT *st;
    int rv;

    tier_db_bind_i64(&p[0], &b);
    tier_db_bind_i64(&p[1], &l);
    *deleted = 0;
    if ((rv = tier_db_run(db, SQL_PRUNE, p, &st)) != TIER_OK)
        return rv;
    *deleted = mysql_stmt_affected_rows(st);
    return TIER_OK;
}

/* ------------------------------------------------------------ policies */

int tier_policies_latest(tier_db *db, tier_policy_row *out)
{
    long long v = 0, t = 0;
    unsigned long bl = 0, body_len = 0;
    my_bool bn = 0, tn = 0;
    MYSQL_BIND res[4];
    MYSQL_STMT *st;
    int rv;

    memset(out, 0, sizeof(*out));
    if ((rv = tier_db_run(db, SQL_LATEST, NULL, &st)) != TIER_OK)
        return rv;
    tier_db_bind_i64(&res[0], &v);
    tier_db_bind_i64(&res[1], &t);
    tier_db_bind_buf(&res[2], out->set_by, sizeof(out->set_by) - 1, &bl, &bn);
    tier_db_bind_buf(&res[3], NULL, 0, &body_len, &tn);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "latest policy");
    rv = mysql_stmt_fetch(st);
    if (rv == MYSQL_NO_DATA) {
        mysql_stmt_free_result(st);
        return TIER_OK;
    }
    if (rv != 0 && rv != MYSQL_DATA_TRUNCATED) {
        mysql_stmt_free_result(st);
        return tier_db_status(db, st, "latest policy");
    }
    /* The body's length is known only now: fetch it into a buffer of that size. */
    if ((out->body = calloc(1, body_len + 1)) == NULL) {
        mysql_stmt_free_result(st);
        return TIER_RESOURCE_EXHAUSTED;
    }
    res[3].buffer = out->body;
    res[3].buffer_length = body_len;
    if (body_len > 0 && mysql_stmt_fetch_column(st, &res[3], 3, 0) != 0) {
        mysql_stmt_free_result(st);
        free(out->body);
        out->body = NULL;
        return tier_db_status(db, st, "policy body");
    }
    out->set_by[bl < sizeof(out->set_by) ? bl : sizeof(out->set_by) - 1] = '\0';
    out->version = v;
    out->set_time_ms = t;
    mysql_stmt_free_result(st);
    return TIER_OK;
}

static int put_row(tier_db *db, const char *body, const char *set_by, int64_t *version,
                   int64_t *set_time_ms)
{
    long long v = 0, t = tier_now_ms();
    unsigned long bl = strlen(body), sl = strlen(set_by);
    MYSQL_BIND p[4], res[1];
    MYSQL_STMT *st;
    int rv;

    if ((rv = tier_db_run(db, SQL_MAXV, NULL, &st)) != TIER_OK)
        return rv;
    tier_db_bind_i64(&res[0], &v);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "policy version");
    mysql_stmt_fetch(st);
    mysql_stmt_free_result(st);
    v++;
    tier_db_bind_i64(&p[0], &v);
    tier_db_bind_str(&p[1], body, &bl);
    tier_db_bind_i64(&p[2], &t);
    tier_db_bind_str(&p[3], set_by, &sl);
    if ((rv = tier_db_run(db, SQL_PUT, p, &st)) != TIER_OK)
        return rv;
    *version = v;
    *set_time_ms = t;
    return TIER_OK;
}

int tier_policies_put(tier_db *db, const char *body, const char *set_by, int64_t *version,
                      int64_t *set_time_ms)
{
    int rv;

    if ((rv = tier_db_exec(db, "BEGIN")) != TIER_OK)
        return rv;
    if ((rv = tier_writer_fence_check(db)) != TIER_OK ||
        (rv = put_row(db, body, set_by, version, set_time_ms)) != TIER_OK) {
        tier_db_exec(db, "ROLLBACK");
        return rv;
    }
    return tier_db_exec(db, "COMMIT");
}
