/*
 * tier_contents.h -- the tiering tables in MySQL: level, contents and
 * update_history (sql/001, sql/002).
 *
 * MySQL is the truth for where a file is (contents.content_level).  Every
 * statement is prepared; user data only ever travels as bound parameters.
 * Level changes are written by tier_contents_commit only, which sets
 * content_level and lets the BEFORE trigger of sql/002 stamp update_time
 * when the level really changes: committing the same level again (a
 * recovery replay) changes nothing and writes no history row.
 *
 * contents.size_bytes (sql/006) is the file's size in bytes, -1 while not
 * known: set at insert, by a move's commit and by tierd's size pass.
 */
#ifndef TIER_CONTENTS_H
#define TIER_CONTENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier_db.h"

typedef struct {
    char name[33];
    int64_t min_counts, max_counts;
    char path[4097];
} tier_level_row;

/* All levels, ordered by min_counts; *out is malloc'ed. */
int tier_contents_levels(tier_db *db, tier_level_row **out, size_t *n);

/* A level migration (sql/008): the level's files are being moved from
 * old_path to new_path (its level.path).  Paths end in '/'. */
typedef struct {
    char level[33];
    char old_path[4097], new_path[4097];
    int64_t started_ms;
} tier_migration_row;

/* Replaces the level table in one transaction, adding the level_migration
 * rows mig[0..nmig) (mig may be NULL when nmig is 0) in the same one. */
int tier_contents_set_levels(tier_db *db, const tier_level_row *rows, size_t n,
                             const tier_migration_row *mig, size_t nmig);
/* Every running migration; *out is malloc'ed (NULL when none). */
int tier_contents_migrations(tier_db *db, tier_migration_row **out, size_t *n);
/* Deletes level's migration row (fenced, in its own transaction); a row
 * already gone is fine. */
int tier_contents_migration_done(tier_db *db, const char *level);

/* Calls fn for every content (in cid order); fn returns non-zero to stop.
 * size is contents.size_bytes (-1: not known yet). */
typedef int (*tier_contents_fn)(void *arg, int64_t cid, const char *level, const char *filename,
                                size_t flen, int64_t size);
int tier_contents_scan(tier_db *db, tier_contents_fn fn, void *arg);

/* Inserts a content of size bytes (-1: not known); ALREADY_EXISTS when the
 * cid or the filename is taken. */
int tier_contents_insert(tier_db *db, int64_t cid, const char *level, const char *filename,
                         size_t flen, int64_t size);

/* Batches (tier_contents_batch.c).  taken[i] is set when MySQL already
 * holds names[i] (of lens[i] bytes), for i < n. */
int tier_contents_taken(tier_db *db, const char *const *names, const size_t *lens, size_t n,
                        bool *taken);
/* Inserts contents (cids[i], level, names[i], sizes[i]) for i < n in one
 * transaction of multi-row INSERTs (sizes[i] -1: not known); gen_ms[i] and
 * upd_ms[i] get the times MySQL stamped.  All or nothing: ALREADY_EXISTS
 * when any cid or name is taken. */
int tier_contents_insert_many(tier_db *db, const int64_t *cids, const char *level,
                              const char *const *names, const size_t *lens, const int64_t *sizes,
                              size_t n, int64_t *gen_ms, int64_t *upd_ms);

typedef struct {
    char level[33];
    char filename[256];
    size_t flen;
    int64_t generate_ms, update_ms;
    int64_t size; /* bytes; -1: not known yet */
} tier_content_row;

/* NOT_FOUND when there is no such cid. */
int tier_contents_get(tier_db *db, int64_t cid, tier_content_row *out);

typedef struct {
    int64_t old_ms, new_ms;
    char old_level[33], new_level[33];
} tier_history_row;

/* Up to limit rows, newest first, into out (caller's array of limit). */
int tier_contents_history(tier_db *db, int64_t cid, unsigned limit, tier_history_row *out,
                          size_t *n);

/* Sets content_level of cids[i] to levels[i] and size_bytes to sizes[i]
 * for i < n, in one transaction (statements of 128, 16 and 1 rows).  The
 * history rows come from the trigger.  What is not given is left as is:
 * levels NULL (or levels[i] NULL) keeps the level -- the size pass fills in
 * sizes only --, sizes NULL (or sizes[i] < 0) keeps the size -- a worker
 * that reported none. */
int tier_contents_commit(tier_db *db, const int64_t *cids, const char *const *levels,
                         const int64_t *sizes, size_t n);

#endif
