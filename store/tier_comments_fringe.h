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

/* Calls fn for every comment_minute row of this connection's shard in
 * minutes [from_minute, to_minute) (of `service` only when it is non-NULL
 * and non-empty), streamed in key order; m->minute is from_minute: the
 * caller sums the rows per content.  fn returning non-zero stops early. */
int tier_comments_fringe_rows(tier_db *db, const char *service, int64_t from_minute,
                              int64_t to_minute, tier_minute_fn fn, void *arg);

#endif
