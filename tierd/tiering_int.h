/*
 * tiering_int.h -- what the files of the tiering module share.
 *
 *   tiering.c       state in memory (levels, contents), open/close, the
 *                   content and level methods, ReportViews
 *   tiering_jobs.c  the job methods (claim, renew, complete, fail, list),
 *                   the push socket, the reaper, start-up recovery
 *   tiering_scrub.c fsck: the Scrub method and the background scrubber
 *   tiering_sizes.c contents and bytes per level (GetStats), the size pass
 *   tiering_views.c view counts and buckets per content, kept durable
 *   tiering_policy.c the current policy, GetPolicy/SetPolicy/PlanMoves
 *   tiering_planner.c the planner thread of window policies
 *
 * Why memory can be trusted: tierd is the only writer of the contents and
 * level tables and of the job keys (workers act only through its RPCs), and
 * only one tierd at a time is the writer of one database and key prefix:
 * it holds the writer lease, loads state only after taking it, and every
 * job script and MySQL write checks its fencing token (writer.c,
 * store/tier_writer.h); a call is served only while the lease is surely
 * held.  So the copy loaded at start stays exact, and a report where
 * nothing moves is answered from memory alone.
 *
 * Locking.  Contents live in NSTRIPES hash tables, each with a mutex, so
 * the pool threads rarely meet.  A content's `busy` flag (set and cleared
 * under its stripe's mutex, waited for on the stripe's condition) is held
 * by the one thread that changes its job's existence or its level: the
 * report slow path, completion, failure and recovery.  While a thread holds
 * busy it may read the content's fields without the mutex; it writes them
 * under the mutex.  Threads take several busy flags in increasing cid
 * order only, so they never deadlock.  Claims and renewals change a job's
 * state only inside Redis scripts and need no flag.
 *
 * The level table is immutable once published: SetLevels builds a new one
 * and swaps the pointer; old tables are kept until close, so readers need
 * no lock.  Level names are interned: equal names are equal pointers.
 */
#ifndef TIERING_INT_H
#define TIERING_INT_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "tier.pb-c.h"
#include "tier_batch.h"
#include "tier_contents.h"
#include "tier_jobs.h"
#include "tier_path.h"
#include "tier_policy.h"
#include "tier_views.h"
#include "tierd.h"

#define NSTRIPES 256

typedef struct {
    const char *name; /* interned */
    int64_t min, max;
    char *path; /* absolute, ends in '/' */
    /* While a level migration runs (tiering_migrate.c, sql/008): the
     * directory its files are being moved out of, ends in '/'; NULL when
     * none runs. */
    char *old_path;
    int64_t migrate_started_ms;
} tl_level;

typedef struct level_table {
    size_t n;
    tl_level *v; /* by min_counts */
    struct level_table *retired;
} level_table;

typedef struct {
    int64_t cid;
    const char *level; /* interned; where the file is (MySQL's value) */
    char *filename;
    /* The file's bytes (MySQL's size_bytes), -1 while not known: set by
     * AddContent(s), by a move's commit when the worker reported a size,
     * and by the size pass (tiering_sizes.c) for contents still at -1.
     * Written under the stripe mutex; capacity policies read it. */
    int64_t size;
    bool has_job; /* a job hash exists in Redis for this cid */
    bool busy;
    /* What the policy decides from (tiering_views.c; under the stripe
     * mutex).  count: the cumulative view count, -1 while unknown (the
     * seed's absolute counts are not stored, so after a restart a content
     * has one only once reported or incremented). */
    int64_t count;
    int64_t last_access_ms;   /* 0: never viewed */
    int64_t since_ms;         /* its last level change (contents.update_time) */
    int64_t born_ms;          /* when it was added (contents.generate_time) */
    tier_policy_views *views; /* window policies only; NULL: no views kept */
    int64_t views_bs;         /* the bucket_s views was built with */
    const char *moving_to;    /* interned target of a planner's job; NULL: none known */
    /* Its file is still in its level's old_path (a migration runs and has
     * not moved it yet).  Written like `level` (busy held, under the stripe
     * mutex); meaningless when the level has no old_path. */
    bool in_old;
} content;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    content **slot; /* open addressing by cid */
    size_t cap, n;
} stripe;

typedef struct interned {
    struct interned *next;
    char name[];
} interned;

#define TL_SUSPECT_MAX 4096

struct tiering {
    const tierd_deps *deps;
    stripe stripes[NSTRIPES];
    _Atomic(level_table *) levels;
    pthread_mutex_t admin_mu; /* AddContent, SetLevels */
    /* Read: the report slow path while it may create jobs.  Write:
     * SetLevels from its "no jobs" check to the table swap. */
    pthread_rwlock_t levels_rw;
    pthread_mutex_t intern_mu;
    interned *names;
    _Atomic int64_t max_cid;
    tier_jobs *jobs;
    tier_batcher *batcher;
    nng_socket push;
    bool push_open;
    pthread_t reaper;
    bool reaper_started;
    atomic_bool stopping;
    struct tl_scrub *scrub;     /* tiering_scrub.c */
    struct tl_sizes *sizes;     /* tiering_sizes.c */
    struct tl_views *views;     /* tiering_views.c */
    struct tl_policy *policy;   /* tiering_policy.c */
    struct tl_planner *planner; /* tiering_planner.c */
    /* Contents left in each migrating level's old directory, as of the
     * last migration round (ListLevels reads it; tiering_migrate.c). */
    pthread_mutex_t mig_mu;
    size_t mig_n;
    const char *mig_name[TIER_POLICY_LEVELS_MAX]; /* interned */
    int64_t mig_left[TIER_POLICY_LEVELS_MAX];
    /* Canonical; SetLevels accepts level directories only under these. */
    char roots[TIERD_MAX_ROOTS][TIER_PATH_MAX];
    size_t nroots;
    /* Contents whose report or FINISH script answered UNAVAILABLE (it
     * may have run): memory says "may have a job" until the reaper reads
     * the job back (tiering_jobs.c, settle_suspects). */
    pthread_mutex_t suspect_mu;
    size_t nsuspect;
    int64_t suspect[TL_SUSPECT_MAX];
};

/* A report to apply to Redis for a content whose busy flag is held. */
typedef struct {
    content *c;
    int64_t count;
    const tl_level *target;
    Tier__ViewResult *res; /* filled when not NULL */
    /* A level migration's move: target is c's own level and c->in_old, so
     * the job moves the file from the old directory to the new one
     * (otherwise a report for the content's own level creates no job). */
    bool migrate;
} tl_report;

/* tiering.c */
const char *tiering_intern(tiering *t, const char *name, size_t len);
const tl_level *tiering_level(const level_table *lt, const char *name);
const tl_level *tiering_target(const level_table *lt, int64_t count);
content *tiering_find(tiering *t, int64_t cid); /* NULL if unknown */
/* The directory c's file is in now: its level's directory, or the level's
 * old one while a migration has not moved it (c's busy flag or stripe
 * mutex held).  "" when c's level is not in lt. */
const char *tiering_content_dir(const level_table *lt, const content *c);
/* The same for a content of level l whose file is (in_old) or is not
 * still in the old directory. */
const char *tiering_level_dir(const tl_level *l, bool in_old);
/* Takes the busy flags of cs[0..n) (sorted in place, duplicates allowed). */
void tiering_acquire(tiering *t, content **cs, size_t n);
void tiering_release(tiering *t, content **cs, size_t n);
void tiering_set(tiering *t, content *c, const char *level, bool has_job);
void tiering_set_in_old(tiering *t, content *c, bool in_old); /* busy held */
void tiering_lock(tiering *t, const content *c);              /* c's stripe mutex */
void tiering_unlock(tiering *t, const content *c);
/* Calls fn(arg, c) for every content, under its stripe's mutex (so fn
 * must not take another). */
void tiering_each(tiering *t, void (*fn)(void *arg, content *c), void *arg);
/* Sets c's size when size >= 0 (a negative one is "not known": kept). */
void tiering_set_size(tiering *t, content *c, int64_t size);
/* c's size under its stripe's mutex (-1: not known yet). */
int64_t tiering_size(tiering *t, const content *c);

/* tiering_jobs.c */
int tiering_jobs_open(tiering *t, char *err, size_t errlen);
void tiering_jobs_close(tiering *t);
int tiering_jobs_register(tiering *t, tier_rpc_server *srv);
/* Applies reports (busy held) in one script call; fills res; returns
 * UNAVAILABLE when Redis is down (res then say so). */
int tiering_apply_reports(tiering *t, tl_report *r, size_t n, tier_rpc_ctx *call);
int tiering_get_job(tiering *t, tier_rpc_ctx *call, const Tier__GetJobRequest *req,
                    Tier__GetJobReply *rep);
int tiering_job_to_proto(tier_rpc_ctx *call, const tier_jobs_view *v, Tier__Job *out);
/* fsck: commits the "done" jobs of cids older than min_age_ms (the start-up
 * recovery path; takes the busy flags itself). */
int tiering_recover_cids(tiering *t, tier_kv *kv, const int64_t *cids, size_t n,
                         int64_t min_age_ms);
/* fsck: commits c's level through the batcher (c's busy flag held); the
 * size is left as is. */
int tiering_commit_level(tiering *t, content *c, const char *level);

/* tiering_scrub.c (fsck): the background scrubber and the Scrub method. */
int tiering_scrub_open(tiering *t);
void tiering_scrub_close(tiering *t);
int tiering_scrub_register(tiering *t, tier_rpc_server *srv);

/* tiering_sizes.c: the background size pass (tiering_level_stats in
 * tierd.h reads its result). */
int tiering_sizes_open(tiering *t);
void tiering_sizes_close(tiering *t);

/* tiering.c: the SetLevels checks, for PlanMoves' proposed tables. */
int tiering_parse_levels(tiering *t, tier_rpc_ctx *call, Tier__Level **levels, size_t n,
                         tier_level_row *v);
level_table *tiering_table_new(tiering *t, const tier_level_row *rows, size_t n);
/* Sets old_path (and the start) of the levels named in m[0..nm); false when
 * out of memory. */
bool tiering_table_migrating(level_table *lt, const tier_migration_row *m, size_t nm);
void tiering_table_free(level_table *lt);

/* tiering_views.c */
typedef tier_views_row tl_viewrec;
int tiering_views_open(tiering *t);
void tiering_views_close(tiering *t);
/* Notes a report on c (its stripe mutex held): count (absolute, views == 0)
 * or views (an increment).  Returns true when *rec must be made durable
 * before the report is answered (tiering_views_persist). */
bool tiering_views_note(tiering *t, content *c, int64_t count, int64_t views, int64_t now_ms,
                        tl_viewrec *rec);
int tiering_views_persist(tiering *t, tl_viewrec *recs, size_t n);
/* Rebuilds every content's buckets for a policy's bucket_s and window
 * (or frees them: seed). */
void tiering_views_rebucket(tiering *t, const tier_policy *old, const tier_policy *p);

/* tiering_policy.c */
int tiering_policy_open(tiering *t);
void tiering_policy_close(tiering *t);
int tiering_policy_register(tiering *t, tier_rpc_server *srv);
tier_policy_mode tiering_policy_mode(tiering *t);
/* The current policy (a copy) and its version. */
void tiering_policy_get(tiering *t, tier_policy *p);
int64_t tiering_policy_version(tiering *t);
/* The level c belongs on now under a window policy (c's stripe mutex held). */
const char *tiering_policy_want(tiering *t, const content *c, int64_t now_ms);
/* SetLevels: the current policy must resolve against the new table. */
int tiering_policy_check_table(tiering *t, tier_rpc_ctx *call, const tier_level_row *v, size_t n);
/* SetLevels dry run: the plan of the current policy on table lt. */
int tiering_policy_plan_table(tiering *t, tier_rpc_ctx *call, const level_table *lt,
                              Tier__Plan **out);
/* After SetLevels swapped the table. */
void tiering_policy_retable(tiering *t);
/* With several shards (tiering_shared.c): installs the policy MySQL holds
 * when its version is not ours (another shard's writer set it). */
void tiering_policy_follow(tiering *t);

/* tiering_shared.c: every second with several shards, the level table and
 * the policy another shard's writer changed; and what SetLevels may
 * change then (FAILED_PRECONDITION set on call otherwise). */
void tiering_shared_poll(tiering *t);
int tiering_shared_check(tiering *t, tier_rpc_ctx *call, const tier_level_row *v, size_t n);

/* A plan over every content: shared by PlanMoves and the planner. */
typedef struct {
    tier_policy_item *items;
    size_t n;
    tier_policy_move *moves;
    size_t nmoves;
    tier_policy_summary sum;
    tier_policy_level lv[TIER_POLICY_LEVELS_MAX];
    size_t nlv;
    int64_t inflight; /* planner jobs still active */
    int64_t unknown;  /* seed: contents with no count */
} tl_plan;
int tiering_plan_run(tiering *t, const tier_policy *p, const level_table *lt, int64_t now_ms,
                     tl_plan *out, char *err, size_t errlen);
void tiering_plan_free(tl_plan *pl);

/* tiering_migrate.c: level migrations (a level's directory changed while
 * it held contents; docs/CRASH.md, README's SetLevels). */
#define TL_MIGRATE_INFLIGHT 64 /* migration jobs at once under the seed policy */
/* Start-up: the running migrations from MySQL onto lt, and in_old of every
 * content of a migrating level, decided by lstat (the file in the new
 * directory: moved; else still in the old one). */
int tiering_migrate_load(tiering *t, tier_db *db, level_table *lt);
/* SetLevels (levels write lock held): marks every content of level in_old. */
void tiering_migrate_mark(tiering *t, const char *level);
/* True while some level of the current table migrates. */
bool tiering_migrating(tiering *t);
/* One round (the planner thread): starts up to room migration moves that
 * pass the gate of policy p (gate under gate_mu), retires migrations with
 * nothing left.  Returns the moves started; *waiting: some content still
 * waits for its move to start. */
size_t tiering_migrate_round(tiering *t, const tier_policy *p, tier_policy_gate *gate,
                             pthread_mutex_t *gate_mu, int max_inflight, bool *waiting);

/* tiering_planner.c */
int tiering_planner_open(tiering *t);
void tiering_planner_close(tiering *t);
void tiering_planner_wake(tiering *t); /* the policy changed */
/* Backlog and throttling of the last round, for ListJobs and metrics. */
typedef struct {
    int64_t at_ms, planned, started, backlog, throttled, waiting_capacity, inflight;
    int64_t backlog_bytes;
} tl_planner_stats;
void tiering_planner_stats(tiering *t, tl_planner_stats *st);

#endif
