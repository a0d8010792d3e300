/*
 * tier_comments_fringe.c -- sums of comment_minute over a minute range,
 * per content (see tier_comments_fringe.h).
 *
 * The range is scanned through the primary key (minute, service, cid), so
 * the cost is the rows of those minutes: about 11,700 per minute at 500
 * comments/s over 200k Zipf contents.  The rows are streamed as they are
 * and the caller sums them (the rank index's fringe sink sums per content
 * as rows arrive): MariaDB's GROUP BY over such a range goes through a
 * temporary table and a filesort and was measured 15-30x slower than the
 * plain scan (docs/BENCHMARKS.md 4d).  The shard filter is the one the
 * rebuild scan uses (CRC32(cid) % 1024 within the shard's slots), so a
 * shard reads only its own contents' rows.
 */
#include "tier_comments_fringe.h"

#include <string.h>

#include "tier_status.h"

#define ROWS                                                                                       \
    "SELECT service, cid, delta, created, deleted, restored FROM comment_minute "                  \
    "WHERE minute >= ? AND minute < ? AND CRC32(cid) % 1024 BETWEEN ? AND ?"

static const char SQL_ROWS_ALL[] = ROWS;
static const char SQL_ROWS_ONE[] = ROWS " AND service = ?";

int tier_comments_fringe_rows(tier_db *db, const char *service, int64_t from_minute,
                              int64_t to_minute, tier_minute_fn fn, void *arg)
{
    MYSQL_BIND p[5], res[6];
    long long from = from_minute, to = to_minute, lo, hi, cid;
    int v[4];
    char svc[TIER_COMMENT_SERVICE_MAX * 4 + 1];
    unsigned long sl, qlen = service ? strlen(service) : 0;
    my_bool sn;
    MYSQL_STMT *st;
    int rv;

    tier_db_slots(db, &lo, &hi);
    tier_db_bind_i64(&p[0], &from);
    tier_db_bind_i64(&p[1], &to);
    tier_db_bind_i64(&p[2], &lo);
    tier_db_bind_i64(&p[3], &hi);
    if (qlen > 0)
        tier_db_bind_str(&p[4], service, &qlen);
    if ((rv = tier_db_run(db, qlen > 0 ? SQL_ROWS_ONE : SQL_ROWS_ALL, p, &st)) != TIER_OK)
        return rv;
    tier_db_bind_buf(&res[0], svc, sizeof(svc) - 1, &sl, &sn);
    tier_db_bind_i64(&res[1], &cid);
    for (int i = 0; i < 4; i++)
        tier_db_bind_i32(&res[2 + i], &v[i]);
    if (mysql_stmt_bind_result(st, res) != 0)
        return tier_db_status(db, st, "fringe minutes");
    while ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED) {
        svc[sl < sizeof(svc) ? sl : sizeof(svc) - 1] = '\0';
        tier_comment_minute m = {svc, cid, from_minute, v[0], v[1], v[2], v[3]};
        if (fn(arg, &m) != 0)
            break;
    }
    rv = rv == 1 ? tier_db_status(db, st, "fringe minutes") : TIER_OK;
    mysql_stmt_free_result(st);
    return rv;
}
