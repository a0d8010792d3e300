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
 * <prefix>jobs:failed (sets).  <prefix>fences (hash cid -> fence) keeps the
 * fence of the last committed job of each content, so fences never repeat
 * for a content and a retried CompleteJob of a committed job is recognised.
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
 * This layer knows the scripts and the key layout, nothing of RPCs: replies
 * are hiredis replies the caller reads with tier_jobs_view().
 */
#ifndef TIER_JOBS_H
#define TIER_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier_kv.h"

typedef enum {
    TIER_JOBS_REPORT, /* create / retarget / cancel / remember a report */
    TIER_JOBS_CLAIM,  /* update -> claimed, fence + 1 */
    TIER_JOBS_RENEW,  /* extend a live lease */
    TIER_JOBS_DONE,   /* claimed -> done (the worker finished) */
    TIER_JOBS_FINISH, /* done -> deleted, after the MySQL commit */
    TIER_JOBS_FAIL,   /* claimed -> failed or back to update */
    TIER_JOBS_REAP,   /* expired leases -> update; due pushes */
    TIER_JOBS_NSCRIPTS
} tier_jobs_script;

typedef struct tier_jobs tier_jobs;

/* prefix: key prefix, e.g. "tier:" (copied).  Loads the scripts through kv;
 * UNAVAILABLE with a message when Redis does not answer. */
int tier_jobs_open(tier_jobs **out, tier_kv *kv, const char *prefix, char *err, size_t errlen);
void tier_jobs_close(tier_jobs *j);
/* The writer's fencing token passed to every script ("" = none).  Set
 * before any script runs (not thread-safe against tier_jobs_eval). */
void tier_jobs_set_token(tier_jobs *j, const char *token);
const char *tier_jobs_prefix(const tier_jobs *j);

/*
 * Runs a script with ARGV = prefix, now_ms, token, argv[0..argc).  Returns the
 * reply (free with freeReplyObject) or NULL when Redis is unreachable (kv
 * is then broken) or answered an error (logged; *status says which:
 * UNAVAILABLE, ABORTED when fenced off, INTERNAL).
 */
redisReply *tier_jobs_eval(tier_jobs *j, tier_kv *kv, tier_jobs_script s, int64_t now_ms, int argc,
                           const char **argv, const size_t *lens, int *status);

/* A job as stored: pointers into a reply (not NUL-terminated; use len). */
typedef struct {
    const char *p;
    size_t len;
} tier_jobs_str;

typedef struct {
    int64_t cid, count, lease_expires_ms, created_ms, updated_ms;
    uint64_t fence;
    uint32_t attempts;
    bool has_pending;
    int64_t pending;
    tier_jobs_str target, db_level, filename, worker_id, status, reason, src_dir, dst_dir;
    tier_jobs_str also_dirs; /* '\n'-separated */
} tier_jobs_view;

/* Reads an HGETALL-shaped array (field, value, ...) into v.  False when the
 * array is empty (no such job). */
bool tier_jobs_view_parse(const redisReply *r, tier_jobs_view *v);

/* The key names, for reads done with plain commands (ListJobs, GetJob). */
void tier_jobs_key(const tier_jobs *j, char *buf, size_t len, int64_t cid);
void tier_jobs_index(const tier_jobs *j, char *buf, size_t len, const char *status);

#endif
