/*
 * tier_comments_fringe.h -- per-content sums of comment_minute over a
 * range of minutes: the "fringe" the ranking index asks for when a window
 * edge falls inside its compacted history (rank/rank_compact.c).
 */
#ifndef TIER_COMMENTS_FRINGE_H
#define TIER_COMMENTS_FRINGE_H

#include <stdint.h>

#include "tier_comments.h"
#include "tier_db.h"

/* Calls fn once per (service, cid) of this connection's shard with rows in
 * minutes [from_minute, to_minute), service only when service is non-NULL
 * and non-empty; m->minute is from_minute and m's counts are the sums.
 * Streamed, in no particular order.  fn returning non-zero stops early. */
int tier_comments_sum_minutes(tier_db *db, const char *service, int64_t from_minute,
                              int64_t to_minute, tier_minute_fn fn, void *arg);

#endif
