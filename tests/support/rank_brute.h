/*
 * rank_brute.h -- what the in-memory ranking index suites (test_rank,
 * test_rank_compact, test_rank_hot) share: a seeded xorshift generator,
 * random create/delete/restore events over three services, the log of the
 * events fed to an index, and the brute-force oracle of tier_rank_top
 * (sum the window's events per (service, cid), sort by change, then cid,
 * then service, cut at the limit) with its random windows and limits.
 *
 * Each suite defines rng_state itself, with its own seed: Criterion runs
 * every test in a fresh process, so every test starts from that seed.
 */
#ifndef RANK_BRUTE_H
#define RANK_BRUTE_H

#include <stddef.h>
#include <stdint.h>

#include "tier_rank.h"

#define NSVC 3
#define NCID 300
#define BASE_MINUTE 28000000

extern const char *svc_names[NSVC]; /* {"beta", "alpha", "gamma"} */

typedef struct {
    tier_rank_event *ev;
    size_t n, cap;
} event_log;

/* The generator's state: defined (and seeded) by each suite. */
extern uint64_t rng_state;

uint64_t rnd(void);
int64_t rnd_range(int64_t lo, int64_t hi); /* [lo, hi] */

void log_push(event_log *lg, tier_rank_event e);
/* A random create/delete/restore; skewed cids so some entities dominate. */
tier_rank_event random_event(int64_t minute);
/* Index of name in svc_names, -1 if none. */
int svc_index(const char *name);

/* ---- oracle ---- */

typedef struct {
    int svc;
    int64_t cid;
    int64_t change, created, deleted, restored;
    int seen;
} agg;

/* The rows of [from, to) (minutes before min_minute left out; service NULL
 * or "" is all) in order, into out; returns their number cut at limit. */
size_t oracle(const event_log *lg, int64_t min_minute, const char *service, int64_t from,
              int64_t to, int dec, uint32_t limit, agg *out);
/* tier_rank_top's answer equals the oracle's, row for row. */
void check_query(tier_rank *r, const event_log *lg, int64_t min_minute, const char *service,
                 int64_t from, int64_t to, int dec, uint32_t limit);

uint32_t random_limit(void);
/* A window somewhere around [lo, hi): tiny, medium, huge, or past the data. */
void random_window(int64_t lo, int64_t hi, int64_t retention, int64_t *from, int64_t *to);
/* One of the services, NULL or "". */
const char *random_service(void);

/* Adds a batch to the index and to the log. */
void feed(tier_rank *r, event_log *lg, tier_rank_event *batch, size_t n);
/* Generates one batch: mostly the current minute, some backfill. */
size_t make_batch(tier_rank_event *batch, size_t max, int64_t now, int64_t start);

#endif
