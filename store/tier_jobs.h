/*
 * tier_jobs.h -- the move-job store in Redis (seed 000's Redis records).
 *
 * Redis is the truth for jobs.  One hash per active job, named by its cid:
 *
 *   <prefix>job:<cid>   cid count target db_level filename worker_id status
 *                       fence lease_expires_ms attempts reason src_dir
 *                       dst_dir also_dirs created_ms updated_ms [pending]
 *                       pushes
 *
 * (also_dirs: '\n'-separated directories where an earlier claim may have
 * left the file; see the REPORT script)
 *
 * and four indexes: <prefix>jobs:update (zset, score = next time to push),
 * <prefix>jobs:claimed (zset, score = lease expiry), <prefix>jobs:done and
 * <prefix>jobs:failed (sets).  Finished jobs stay listed for a retention
 * time as members of <prefix>jobs:finished (zset, score = finish time, one
 * "cid|fence|attempts|created_ms|db_level|target|filename" member each).  <prefix>fences (hash cid
 * -> fence) keeps the fence of the last committed job of each content, so fences never repeat for a
 * content and a retried CompleteJob of a committed job is recognised.
 *
 * Every transition is one Lua script (EVALSHA, loaded at open, reloaded on
 * NOSCRIPT), so it is atomic against every other: two workers can never
 * both claim a job, a report cannot retarget a job a worker just claimed.
 * Scripts take many cids at once; each returns one result per item.
 *
 * Writer fencing.  Every script first checks that <prefix>writer holds the
 * token set with tier_jobs_set_token() (when one is set): a tierd that lost
 * its writer lease to a standby changes no job; the script fails with
 * FENCED and tier_jobs_eval() says TIER_ABORTED (and calls
 * tier_writer_fenced()).  When <prefix>writer does not exist at all (Redis
 * lost it) it says UNAVAILABLE: the writer's renewal sets it again.
 *
 * This layer owns every script, key name and reply shape, and knows nothing
 * of RPCs or levels: callers get enums and tier_jobs_view structs.  The
 * decisions (which level, when to push, what to commit) stay in tierd.
 *
 * Leases -- the one rule.  A claim holds its job while now <
 * lease_expires_ms, by tierd's clock (the `now` every call passes; workers'
 * clocks never decide).  Only the holder of a live lease, named by worker
 * id and fence, may renew, complete or fail the job (Lua `live`).  Once
 * the lease has run out, anyone may claim the job again (CLAIM) and the
 * reaper returns it to "update" (REAP) -- whichever comes first; the old
 * holder's calls are refused from then on.  A worker must therefore stop
 * before its lease can have run out by tierd's clock: it counts its lease
 * from before it sent the claim (worker/, "lease_until").
 */
#ifndef TIER_JOBS_H
#define TIER_JOBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier_kv.h"

/* The states of a job (the hash's status field). */
typedef enum {
    TIER_JOB_NONE = 0, /* no job */
    TIER_JOB_UPDATE,   /* waiting for a worker (the seed's status) */
    TIER_JOB_CLAIMED,  /* a worker holds the lease */
    TIER_JOB_DONE,     /* the worker finished; the level is being committed */
    TIER_JOB_FAILED,   /* parked with a reason; RetryJob / CancelJob / a report revive it */
    TIER_JOB_FINISHED, /* committed and gone; kept readable for the retention time */
} tier_job_state;
#define TIER_JOB_STATES (TIER_JOB_FINISHED + 1)

const char *tier_job_state_name(tier_job_state s);
/* "" or unknown -> TIER_JOB_NONE. */
tier_job_state tier_job_state_parse(const char *s, size_t len);

typedef struct tier_jobs tier_jobs;

/* prefix: key prefix, e.g. "tier:" (copied).  Loads the scripts through kv;
 * UNAVAILABLE with a message when Redis does not answer. */
int tier_jobs_open(tier_jobs **out, tier_kv *kv, const char *prefix, char *err, size_t errlen);
void tier_jobs_close(tier_jobs *j);
const char *tier_jobs_prefix(const tier_jobs *j);
/* The writer's fencing token passed to every script ("" = none).  Set
 * before any script runs (not thread-safe against the calls below). */
void tier_jobs_set_token(tier_jobs *j, const char *token);

/* A string inside a reply (not NUL-terminated; use len). */
typedef struct {
    const char *p;
    size_t len;
} tier_jobs_str;

/* A job as stored.  Strings point into the tier_jobs_reply that returned
 * it and live as long as that reply. */
typedef struct {
    int64_t cid, count, lease_expires_ms, created_ms, updated_ms;
    uint64_t fence;
    uint32_t attempts;
    tier_job_state state;
    bool has_pending;
    int64_t pending;
    tier_jobs_str target, db_level, filename, worker_id, status, reason, src_dir, dst_dir;
    tier_jobs_str also_dirs; /* '\n'-separated */
    int64_t pushes;          /* hints sent since it last waited for a worker */
} tier_jobs_view;

/* Owns the Redis replies that views point into. */
typedef struct tier_jobs_reply tier_jobs_reply;
void tier_jobs_reply_free(tier_jobs_reply *r); /* NULL is fine */

/* Every call below returns TIER_OK, UNAVAILABLE (Redis away; kv is then
 * broken), ABORTED (fenced: this tierd is not the writer), RESOURCE_EXHAUSTED
 * or INTERNAL (a reply of an unexpected shape, logged).  On success, views
 * stay valid until *keep is freed; on failure *keep is NULL. */

/* ---- reports (REPORT) */

typedef struct {
    int64_t cid, count;
    const char *target, *db_level, *filename;
    const char *src_dir, *dst_dir; /* of db_level and target */
    /* A level migration's move (target == db_level, src_dir != dst_dir):
     * created or kept like a move to another level, where a plain report
     * for its own db level would create none (or cancel one never claimed). */
    bool migrate;
} tier_jobs_report_in;

typedef enum {
    TIER_JOBS_REPORT_NONE,       /* no job, none needed */
    TIER_JOBS_REPORT_CREATED,    /* a new job (push it) */
    TIER_JOBS_REPORT_RETARGETED, /* an unclaimed job aimed elsewhere (push it) */
    TIER_JOBS_REPORT_CANCELLED,  /* a never-claimed job deleted */
    TIER_JOBS_REPORT_PENDING,    /* running or committing: kept as `pending` */
} tier_jobs_report_what;

typedef struct {
    tier_jobs_report_what what;
    bool has_job; /* job is valid (every what but NONE and CANCELLED) */
    tier_jobs_view job;
} tier_jobs_report_out;

int tier_jobs_report(tier_jobs *j, tier_kv *kv, int64_t now, uint32_t repush_ms,
                     const tier_jobs_report_in *in, size_t n, tier_jobs_report_out *out,
                     tier_jobs_reply **keep);

/* ---- the worker protocol (CLAIM, RENEW, DONE, FAIL) */

typedef struct {
    int64_t cid;
    uint64_t fence;
} tier_jobs_ref;

/* Per cid: code OK (job valid, now claimed by worker), NOT_FOUND,
 * ALREADY_EXISTS (another live lease) or FAILED_PRECONDITION. */
typedef struct {
    int code;
    tier_jobs_view job;
} tier_jobs_claim_out;

int tier_jobs_claim(tier_jobs *j, tier_kv *kv, int64_t now, const char *worker, uint32_t lease_ms,
                    const int64_t *cids, size_t n, tier_jobs_claim_out *out,
                    tier_jobs_reply **keep);

/* codes[i]: OK or FAILED_PRECONDITION (lease not held). */
int tier_jobs_renew(tier_jobs *j, tier_kv *kv, int64_t now, const char *worker, uint32_t lease_ms,
                    const tier_jobs_ref *refs, size_t n, int *codes);

typedef enum {
    TIER_JOBS_DONE_NOW,       /* claimed -> done: commit target, then finish */
    TIER_JOBS_DONE_COMMITTED, /* this fence was committed already (a retry) */
    TIER_JOBS_DONE_REFUSED,   /* not this worker's live lease */
} tier_jobs_done_what;

typedef struct {
    tier_jobs_done_what what;
    tier_jobs_str target; /* NOW only */
    bool has_pending;     /* NOW only: a report kept while it ran */
    int64_t pending;
} tier_jobs_done_out;

int tier_jobs_done(tier_jobs *j, tier_kv *kv, int64_t now, const char *worker,
                   const tier_jobs_ref *refs, size_t n, tier_jobs_done_out *out,
                   tier_jobs_reply **keep);

/* FAILED_PRECONDITION when the lease is not held.  On OK, *has_pending /
 * *pending say whether a report waits to be applied (it stays on the job
 * until a report replaces it). */
int tier_jobs_fail(tier_jobs *j, tier_kv *kv, int64_t now, const char *worker, tier_jobs_ref ref,
                   const char *reason, bool permanent, uint32_t retry_after_ms, bool *has_pending,
                   int64_t *pending);

/* ---- finishing committed jobs (FINISH) */

typedef struct {
    tier_jobs_ref ref;
    bool has_pending; /* the pending report the caller planned for */
    int64_t pending;
    /* The follow-up job of the pending report, or next_target NULL for none. */
    const char *next_target, *next_src_dir, *next_dst_dir;
} tier_jobs_finish_in;

typedef enum {
    TIER_JOBS_FINISH_DELETED, /* gone (kept as "finished" for the retention) */
    TIER_JOBS_FINISH_NEXT,    /* turned into its follow-up job (push it) */
    TIER_JOBS_FINISH_REPLAN,  /* pending is not what was planned: plan again */
    TIER_JOBS_FINISH_GONE,    /* not done with this fence (finished already) */
} tier_jobs_finish_what;

typedef struct {
    tier_jobs_finish_what what;
    tier_jobs_view job; /* NEXT */
    bool has_pending;   /* REPLAN: the pending report now on the job */
    int64_t pending;
} tier_jobs_finish_out;

int tier_jobs_finish(tier_jobs *j, tier_kv *kv, int64_t now, uint32_t repush_ms,
                     uint32_t retention_s, const tier_jobs_finish_in *in, size_t n,
                     tier_jobs_finish_out *out, tier_jobs_reply **keep);

/* ---- the reaper (REAP) */

/* Expired leases back to update (*expired counts them); up to max due
 * update jobs returned for a push (only cid, fence, filename, src_dir,
 * dst_dir, target are set); finished jobs older than retention_s (or past
 * the newest keep_finished) dropped. */
int tier_jobs_reap(tier_jobs *j, tier_kv *kv, int64_t now, size_t max, uint32_t retention_s,
                   size_t keep_finished, size_t *expired, tier_jobs_view **due, size_t *ndue,
                   tier_jobs_reply **keep);

/* ---- operators (RETRY, CANCEL) */

typedef enum {
    TIER_JOBS_CTL_RETRIED, /* back to update now (push it; apply pending) */
    TIER_JOBS_CTL_DELETED, /* cancel of a never-claimed job */
    TIER_JOBS_CTL_HOME,    /* cancel: aimed back at db_level (push it) */
    TIER_JOBS_CTL_NO_JOB,
    TIER_JOBS_CTL_BUSY, /* claimed or done: why says which */
} tier_jobs_ctl_what;

typedef struct {
    tier_jobs_ctl_what what;
    const char *why; /* BUSY */
    tier_jobs_view job;
    bool has_pending; /* RETRIED */
    int64_t pending;
} tier_jobs_ctl_out;

int tier_jobs_retry(tier_jobs *j, tier_kv *kv, int64_t now, int64_t cid, tier_jobs_ctl_out *out,
                    tier_jobs_reply **keep);
int tier_jobs_cancel(tier_jobs *j, tier_kv *kv, int64_t now, int64_t cid, tier_jobs_ctl_out *out,
                     tier_jobs_reply **keep);

/* ---- reads */

/* NOT_FOUND when cid has no job. */
int tier_jobs_get(tier_jobs *j, tier_kv *kv, int64_t cid, tier_jobs_view *out,
                  tier_jobs_reply **keep);

/* Up to limit (0 = all) jobs of one state (FINISHED: newest first), in
 * *out (owned by *keep). */
int tier_jobs_list(tier_jobs *j, tier_kv *kv, tier_job_state st, size_t limit, tier_jobs_view **out,
                   size_t *n, tier_jobs_reply **keep);

/* How many jobs each state's index holds now (counts[TIER_JOB_NONE] = 0);
 * UNAVAILABLE when Redis does not answer. */
int tier_jobs_count(tier_jobs *j, tier_kv *kv, uint64_t counts[TIER_JOB_STATES]);

/* Only the cids of one state's index (for start-up: which contents have a
 * job); *cids malloc'ed. */
int tier_jobs_index_cids(tier_jobs *j, tier_kv *kv, tier_job_state st, int64_t **cids, size_t *n);

/* ---- fsck (tierd/tiering_scrub.c) */

/* Back to update, due now, if the job is still as seen (state and fence;
 * a claimed one only with its lease run out).  *requeued false: it moved
 * on by itself meanwhile. */
int tier_jobs_requeue(tier_jobs *j, tier_kv *kv, int64_t now, const tier_jobs_view *seen,
                      bool *requeued);
/* Whether the index of v's state names v's cid. */
int tier_jobs_indexed(tier_jobs *j, tier_kv *kv, const tier_jobs_view *v, bool *indexed);
/* The cids of every job hash, indexed or not (SCAN; stops early when *stop
 * becomes true).  *cids malloc'ed. */
int tier_jobs_scan_cids(tier_jobs *j, tier_kv *kv, const atomic_bool *stop, int64_t **cids,
                        size_t *n);

#endif
