/*
 * tier_comments_fringe.c -- sums of comment_minute over a minute range,
 * per content (see tier_comments_fringe.h).
 *
 * The range is scanned through the primary key (minute, service, cid), so
 * the cost is the rows of those minutes: about 11,700 per minute at 500
 * comments/s over 200k Zipf contents.  The shard filter is the one the
 * rebuild scan uses (CRC32(cid) % 1024 within the shard's slots), so a
 * shard sums only its own contents.  Sums are cast to BIGINT: SUM() of an
 * INT is a DECIMAL, which the integer binding would not take as is.
 */
#include "tier_comments_fringe.h"

#include <string.h>

#include "tier_status.h"

#define SUMS                                                                                       \
    "SELECT service, cid, CAST(SUM(delta) AS SIGNED), CAST(SUM(created) AS SIGNED), "              \
    "CAST(SUM(deleted) AS SIGNED), CAST(SUM(restored) AS SIGNED) FROM comment_minute "             \
    "WHERE minute >= ? AND minute < ? AND CRC32(cid) % 1024 BETWEEN ? AND ? "

static const char SQL_SUM_ALL[] = SUMS "GROUP BY service, cid";
static const char SQL_SUM_ONE[] = SUMS "AND service = ? GROUP BY service, cid";

int tier_comments_sum_minutes(tier_db *db, const char *service, int64_t from_minute,
                              int64_t to_minute, tier_minute_fn fn, void *arg)
{
    MYSQL_BIND p[5], res[6];
    long long from = from_minute, to = to_minute, lo, hi, cid, sum[4];
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
    if ((rv = tier_db_run(db, qlen > 0 ? SQL_SUM_ONE : SQL_SUM_ALL, p, &st)) != TIER_OK)
        return rv;
    tier_db_bind_buf(&res[0], svc, sizeof(svc) - 1, &sl, &sn);
    tier_db_bind_i64(&res[1], &cid);
    for (int i = 0; i < 4; i++)
        tier_db_bind_i64(&res[2 + i], &sum[i]);
    if (mysql_stmt_bind_result(st, res) != 0)
        return tier_db_status(db, st, "sum minutes");
    while ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED) {
        svc[sl < sizeof(svc) ? sl : sizeof(svc) - 1] = '\0';
        tier_comment_minute m = {svc,
                                 cid,
                                 from_minute,
                                 (int32_t)sum[0],
                                 (int32_t)sum[1],
                                 (int32_t)sum[2],
                                 (int32_t)sum[3]};
        if (fn(arg, &m) != 0)
            break;
    }
    rv = rv == 1 ? tier_db_status(db, st, "sum minutes") : TIER_OK;
    mysql_stmt_free_result(st);
    return rv;
}
