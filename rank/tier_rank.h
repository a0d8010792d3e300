/*
 * tier_rank.h -- the in-memory ranking index: exact top-K contents by
 * comment-count change over any window of minutes.
 *
 * Every comment event is a signed change to one content, identified by
 * (service, cid), in the minute it happened: a creation is +1 (created=1),
 * a soft delete -1 (deleted=1), a restore +1 (restored=1).  tier_rank_top()
 * answers "which `limit` contents changed most (or least) between
 * from_minute (inclusive) and to_minute (exclusive)", exactly, ties broken
 * by cid ascending and then service name ascending.  Only contents with at
 * least one event in the window are candidates.
 *
 * Minutes are integers (minutes since the Unix epoch in tier) in
 * [0, INT32_MAX).  The index keeps `retention_minutes` of history: a window
 * may be at most that long, and events older than the retained range are
 * ignored.  The "open" minute is max(tier_rank_set_now(), the latest event
 * minute); minutes before it are complete and get their sorted lists built.
 *
 * Thread safety: every function may be called from any thread; adds take an
 * exclusive lock, queries a shared one.
 *
 * Exactness: per content and window, each of change/created/deleted/restored
 * is exact while its magnitude stays below 2^31 (more than 800 events per
 * second on one content for 30 days).
 */
#ifndef TIER_RANK_H
#define TIER_RANK_H

#include <stddef.h>
#include <stdint.h>

#define TIER_RANK_LIMIT_MAX 1000

typedef struct tier_rank tier_rank;

typedef struct {
    const char *service; /* non-empty */
    int64_t cid;
    int64_t minute; /* [0, INT32_MAX) */
    int32_t delta, created, deleted, restored;
} tier_rank_event;

typedef struct {
    const char *service; /* points into the index, valid while it lives */
    int64_t cid;
    int64_t change, created, deleted, restored;
    double hot; /* tier_rank_hot() only (rank_hot.c); 0 otherwise */
} tier_rank_row;

/* A position in a ranking order (a paging cursor): rows strictly after it
 * in the order are returned.  change is used by INCREASE/DECREASE, hot by
 * HOT; service is non-empty. */
typedef struct {
    int64_t change;
    double hot;
    int64_t cid;
    const char *service;
} tier_rank_key;

/* Default half-life of the hot order, seconds (6 hours). */
#define TIER_RANK_HOT_HALF_LIFE_S 21600
#define TIER_RANK_HOT_HALF_LIFE_MIN_S 60

/* retention_minutes in [1, 2^26]; TIER_INVALID_ARGUMENT otherwise. */
int tier_rank_alloc(tier_rank **out, int64_t retention_minutes);
void tier_rank_free(tier_rank *r);

/* Applies n events.  The whole batch is validated first (TIER_INVALID_ARGUMENT
 * and nothing applied if any event is malformed).  Events older than the
 * retained range are skipped.  Events whose four numbers are all zero are
 * no-ops.  TIER_RESOURCE_EXHAUSTED if memory runs out (events before the
 * failing one stay applied). */
int tier_rank_add_batch(tier_rank *r, const tier_rank_event *ev, size_t n);

/* Merges the tops of disjoint indexes (several shards, docs/CLUSTER.md)
 * into rows[0..*nrows), at most limit, in tier_rank_top's order: change
 * (descending, or ascending when decrease), then cid, then service,
 * ascending.  Each content is in one index only, so the top of the union
 * is the top of the union of each index's top `limit`: exact.  rows may
 * hold every input row; in is not changed. */
void tier_rank_merge(const tier_rank_row *in, size_t n, int decrease, uint32_t limit,
                     tier_rank_row *rows, size_t *nrows);

/* Merges the HOT tops of disjoint indexes evaluated at the same minute, in
 * tier_rank_hot's order: hot descending, then cid, then service. */
void tier_rank_merge_hot(const tier_rank_row *in, size_t n, uint32_t limit, tier_rank_row *rows,
                         size_t *nrows);

/* Whether row comes strictly after key in the order (decrease: DECREASE;
 * hot: HOT, which ignores decrease). */
int tier_rank_row_after(const tier_rank_row *row, const tier_rank_key *key, int decrease, int hot);

/* Moves the open minute forward (never back); minutes < it are complete. */
void tier_rank_set_now(tier_rank *r, int64_t minute);

/* Top `limit` (1..1000) contents over [from_minute, to_minute), best first.
 * service NULL or "" ranks all services together.  decrease != 0 ranks by
 * smallest change first.  rows must hold `limit` rows; *nrows gets the count.
 * TIER_INVALID_ARGUMENT when from >= to, to - from > retention, limit is 0 or
 * above 1000, or a pointer is NULL.  With compaction on, a window with an
 * edge inside a compacted granule calls the fringe provider (see below):
 * TIER_FAILED_PRECONDITION when none is set, its status when it fails. */
int tier_rank_top(tier_rank *r, const char *service, int64_t from_minute, int64_t to_minute,
                  int decrease, uint32_t limit, tier_rank_row *rows, size_t *nrows);

/* tier_rank_top restricted to the rows strictly after *after in the order
 * (after NULL: from the best).  Paging: pass the last row of a page as the
 * key of the next; over fixed data no row repeats or is skipped.  limit may
 * be up to TIER_RANK_LIMIT_MAX + 1 (one more tells whether a page follows). */
int tier_rank_top_after(tier_rank *r, const char *service, int64_t from_minute, int64_t to_minute,
                        int decrease, const tier_rank_key *after, uint32_t limit,
                        tier_rank_row *rows, size_t *nrows);

/* ---- the hot order (rank_hot.c) ----
 *
 * hot(c) at minute now = sum over retained minutes m of
 *     change(c, m) * 2^(-(now - m) * 60 / H)
 * with H the half-life in seconds.  Every content with a retained event is
 * a candidate.  Rows: hot descending, then cid, then service ascending;
 * change/created/deleted/restored are the totals over the retained minutes.
 * hot equals the formula up to double rounding (the order is exact except
 * between scores within a few ulps of each other). */

/* Sets H (seconds, 60..2^31); recomputes every score.  Default
 * TIER_RANK_HOT_HALF_LIFE_S.  TIER_INVALID_ARGUMENT when out of range. */
int tier_rank_set_half_life(tier_rank *r, int64_t half_life_s);
int64_t tier_rank_half_life(tier_rank *r);

/* Top `limit` (1..TIER_RANK_LIMIT_MAX + 1) contents by hot at minute now
 * (0..INT32_MAX), strictly after *after when not NULL.  service NULL or ""
 * ranks all services.  O((limit + rows skipped by after) log). */
int tier_rank_hot(tier_rank *r, const char *service, int64_t now_minute, const tier_rank_key *after,
                  uint32_t limit, tier_rank_row *rows, size_t *nrows);

/* Drops everything about minutes < before_minute.  Windows starting earlier
 * are afterwards computed from before_minute on. */
void tier_rank_expire(tier_rank *r, int64_t before_minute);

/* Bytes held by the index (allocations it made, by capacity). */
/* Builds up to budget complete blocks not built yet or made stale by
 * backfilled events (a background tick calls it, so queries find them
 * ready); returns how many it built. */
int tier_rank_refresh(tier_rank *r, int budget);

size_t tier_rank_memory(const tier_rank *r);

/*
 * Bounded memory over long retention (rank_compact.c).  With compaction on,
 * minutes older than open - detail_minutes (rounded down to a granule of
 * 4^coarse_level minutes) are kept at granule resolution only.  Windows
 * stay exact: a window edge that falls inside a compacted granule needs the
 * per-content sums of the "fringe" minutes between the edge and the
 * granule boundary, which the index asks a fringe provider for (tierd
 * reads them from comment_minute).  Answers of tier_rank_top() are the
 * same as without compaction as long as the provider answers the truth.
 *
 * tier_rank_set_compaction: call before any event; detail_minutes >= 1
 * (0 turns compaction off, the default), coarse_level in [1, levels) where
 * 4^levels > retention.  TIER_INVALID_ARGUMENT otherwise.
 */
int tier_rank_set_compaction(tier_rank *r, int64_t detail_minutes, int coarse_level);

/* The provider's sink: rows of per-content sums over the asked range
 * (ev->minute is ignored; rows of one content may come split, they add). */
typedef struct tier_rank_fringe tier_rank_fringe;
int tier_rank_fringe_add(tier_rank_fringe *f, const tier_rank_event *ev);

/* Called by tier_rank_top() WITHOUT the index lock held, for each fringe
 * range [from, to) of a query over `service` (NULL: all services): adds
 * every content's sums over those minutes with tier_rank_fringe_add() and
 * returns TIER_OK or a status that tier_rank_top() then returns. */
typedef int (*tier_rank_fringe_fn)(void *ctx, const char *service, int64_t from, int64_t to,
                                   tier_rank_fringe *sink);
void tier_rank_set_fringe_provider(tier_rank *r, tier_rank_fringe_fn fn, void *ctx);

#endif
