/*
 * ranking_model.h -- the brute-force side of the end-to-end ranking suites
 * (test_ranking, test_ranking_compact, and the model of test_ranking_hot):
 * what a tierd should answer, kept by the test itself.
 *
 * A model holds every comment the test posted (with its state) and every
 * event it caused: a create in the minute of the comment's time, a delete
 * or restore in the minute it was charged to.  brute_top sums those events
 * per (service, cid) over a window and sorts them as TopContents does;
 * check_window asks tierd for a window and compares row for row.  The
 * random helpers draw from the caller's rand_r seed, so a suite's seed
 * fixes its whole stream.
 */
#ifndef RANKING_MODEL_H
#define RANKING_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier_client.h"

#define NSVC 3
#define MAXCID 300

extern const char *const SVCS[NSVC]; /* {"news", "sports", "blog"} */

typedef struct {
    int svc; /* index into SVCS */
    int64_t cid;
    int64_t minute;
    int kind; /* 0 create, 1 delete, 2 restore */
} event;

typedef struct {
    int64_t id;
    int svc;
    int64_t cid;
    bool deleted;
    int64_t last_ms; /* creation, or the last delete or restore */
} live;

typedef struct {
    event *ev;
    size_t nev, evcap;
    live *cm;
    size_t ncm, cmcap;
} model;

void add_event(model *m, int svc, int64_t cid, int64_t minute, int kind);
void add_comment(model *m, int64_t id, int svc, int64_t cid, int64_t created_ms);

typedef struct {
    int svc;
    int64_t cid;
    int64_t change, created, deleted, restored;
} row;

/* Brute force: sums per (service, cid) over [from, to); only contents with
 * an event in the window take part.  Returns the number of rows. */
size_t brute_top(const model *m, int svc, int64_t from, int64_t to, bool dec, row *out);

/* Posts cs[0..n) (backfilled time_ms set, service one of SVCS) in one
 * PostComments, checks each is stored at its time, and records it in m. */
void post_built(tier_client *c, model *m, Tier__PostCommentRequest *cs, size_t n);

/* Posts n comments with backfilled times in [lo_min, hi_min]. */
void post_random(tier_client *c, model *m, size_t n, int64_t lo_min, int64_t hi_min,
                 unsigned *seed);

typedef struct {
    int64_t from, to; /* minutes */
    int svc;          /* -1 = all */
    bool dec;
    uint32_t limit; /* as sent; 0 = 100 */
} window;

/* TopContents of w equals brute_top (buf: NSVC * (MAXCID + 1) rows). */
void check_window(tier_client *c, const model *m, const window *w, row *buf);
/* n random windows in [lo, hi] (calloc'ed): short mostly, some very long. */
window *random_windows(size_t n, int64_t lo, int64_t hi, unsigned *seed);

/* Deletes (restore false) or restores comment id at time_ms (0: now). */
int change_at(tier_client *c, int64_t id, int64_t time_ms, bool restore, tier_error *err);
/* Backfilled deletes and restores at random times, some before the
 * comment's last transition (refused) and some at it exactly (accepted),
 * the accepted ones recorded as events. */
void change_backfilled(tier_client *c, model *m, size_t n, int64_t hi_ms, unsigned *seed);

#endif
