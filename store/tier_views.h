/*
 * tier_views.h -- contents' view counts and view buckets in MySQL
 * (sql/007_policy.sql), and the versioned tiering policies.
 *
 * Storage only: tierd/views.c decides what to write and when; this file
 * turns rows into fenced transactions and back.
 */
#ifndef TIER_VIEWS_H
#define TIER_VIEWS_H

#include <stddef.h>
#include <stdint.h>

#include "tier_db.h"

/* One content's state (absolute) and one bucket's increment (added). */
typedef struct {
    int64_t cid;
    int64_t count;          /* written as is */
    int64_t last_access_ms; /* the larger of stored and this is kept */
    int64_t start_s;        /* the bucket; ignored when add == 0 */
    int64_t add;            /* views added to the bucket (>= 0) */
} tier_views_row;

/* Writes rows[0..n) in one fenced transaction: OK, ABORTED (not the
 * writer), UNAVAILABLE or INTERNAL. */
int tier_views_write(tier_db *db, const tier_views_row *rows, size_t n);

/* Calls since(cid, update_ms, generate_ms) for every content (its last level
 * change, and when it was added),
 * state(cid, count, last_access_ms) for every content_views row, then
 * bucket(cid, start_s, views) for every bucket at or after min_start_s.
 * A callback returning non-zero stops the scan with RESOURCE_EXHAUSTED. */
typedef int (*tier_views_fn)(void *arg, int64_t cid, int64_t a, int64_t b);
int tier_views_scan(tier_db *db, int64_t min_start_s, tier_views_fn since, tier_views_fn state,
                    tier_views_fn bucket, void *arg);

/* Deletes up to `limit` buckets older than before_s; *deleted says how many. */
int tier_views_prune(tier_db *db, int64_t before_s, unsigned limit, uint64_t *deleted);

/* ------------------------------------------------------------ policies */

typedef struct {
    int64_t version; /* 0: none stored (the built-in seed policy) */
    int64_t set_time_ms;
    char set_by[256];
    char *body; /* JSON, malloc'ed (NULL when version 0) */
} tier_policy_row;

/* The newest stored policy into out (free out->body). */
int tier_policies_latest(tier_db *db, tier_policy_row *out);
/* Stores body as the next version in a fenced transaction; fills
 * *version and *set_time_ms. */
int tier_policies_put(tier_db *db, const char *body, const char *set_by, int64_t *version,
                      int64_t *set_time_ms);

#endif
