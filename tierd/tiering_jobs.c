/*
 * tiering_jobs.c -- move jobs: the worker protocol (ClaimJob, RenewLease,
 * CompleteJob, FailJob), the operators' calls (ListJobs, GetJob, RetryJob,
 * CancelJob), the push socket, the reaper and the recovery of jobs a crash
 * left "done" but not committed.
 *
 * A job's life:  report -> "update" (pushed) -> ClaimJob -> "claimed"
 * -> CompleteJob -> "done" -> MySQL COMMIT -> FINISH (deleted, or turned
 * into the follow-up job of a report that arrived meanwhile).  Redis holds
 * the truth; store/tier_jobs.h owns its scripts, keys and reply shapes and
 * hands back enums and views, this file makes the decisions (levels,
 * pushes, commits).  The push is a hint that may be lost, so the reaper
 * re-pushes jobs nobody claimed and takes back expired leases.
 *
 * The invariants this file keeps (docs/CRASH.md has the whole list and the
 * crash points that test them):
 *   - durability: CompleteJob answers OK only after MySQL has committed the
 *     level, and the job leaves "done" only after that commit; a crash in
 *     between leaves it "done", committed again (idempotently) at start-up
 *     or by the reaper's sweep;
 *   - an acknowledged report is never lost: while a job runs it is kept on
 *     the job (`pending`), and FINISH turns it into the follow-up job in the
 *     same script that deletes the finished one;
 *   - a job that was ever claimed may have moved its file: reports,
 *     RetryJob and CancelJob retarget it (the store keeps every directory
 *     the file may be in), never delete it;
 *   - only a thread holding a content's busy flag changes whether its job
 *     exists (asserted where relied on).
 */
#include "tiering_int.h"

#include <assert.h>
#include <nng/protocol/pipeline0/push.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_contents.h"
#include "tier_crash.h"
#include "tier_log.h"
#include "tier_slot.h"
#include "tier_rpc_net.h"
#include "tier_methods.h"
#include "tier_time.h"

#define REPUSH_MS 1000    /* first re-push of a job nobody claimed */
#define REAP_EVERY_MS 150 /* reaper period */
#define SWEEP_EVERY_MS 2000
#define SWEEP_AGE_MS 5000 /* a "done" job this old lost its committer */
#define CHUNK 256         /* items per script call */
#define WORKER_ID_MAX 128
#define REAP_MAX 2000      /* expired leases and due pushes per reaper round */
#define FINISHED_MAX 10000 /* finished jobs kept listed, whatever the retention */
/* Items per call, written in tier.proto.  Claims of one call go to Redis
 * as one script, so an unbounded list blocks Redis for everyone (1M cids
 * held it 3.9 s) and builds a reply no client accepts.  Kept above the
 * worker's own batches (tier_worker.c: 64 claims, 1000 renewals, 1024
 * completions per call). */
#define CLAIM_CIDS_MAX 1024
#define RENEW_JOBS_MAX 10000
#define COMPLETE_JOBS_MAX 10000

/* ------------------------------------------------------------ helpers */

static char *dup_s(tier_rpc_ctx *call, tier_jobs_str s)
{
    return s.p ? tier_rpc_strndup(call, s.p, s.len) : (char *)"";
}

/* also_dirs ('\n'-separated in the store) into the repeated field. */
static int split_dirs(tier_rpc_ctx *call, tier_jobs_str s, Tier__Job *j)
{
    size_t n = 0, cap = 1;

    for (size_t i = 0; i < s.len; i++)
        cap += s.p[i] == '\n';
    if (s.len == 0)
        return TIER_OK;
    if ((j->also_dirs = tier_rpc_alloc(call, cap * sizeof(*j->also_dirs))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < s.len && n < cap;) {
        const char *nl = memchr(s.p + i, '\n', s.len - i);
        size_t len = nl ? (size_t)(nl - (s.p + i)) : s.len - i;
        if (len > 0)
            j->also_dirs[n++] = tier_rpc_strndup(call, s.p + i, len);
        i += len + 1;
    }
    j->n_also_dirs = n;
    return TIER_OK;
}

int tiering_job_to_proto(tier_rpc_ctx *call, const tier_jobs_view *v, Tier__Job *j)
{
    tier__job__init(j);
    j->cid = v->cid;
    j->count = v->count;
    j->target = dup_s(call, v->target);
    j->db_level = dup_s(call, v->db_level);
    j->filename = dup_s(call, v->filename);
    j->worker_id = dup_s(call, v->worker_id);
    j->status = (char *)tier_job_state_name(v->state);
    j->fence = v->fence;
    j->lease_expires_ms = v->lease_expires_ms;
    j->attempts = v->attempts;
    j->reason = dup_s(call, v->reason);
    j->src_dir = dup_s(call, v->src_dir);
    j->dst_dir = dup_s(call, v->dst_dir);
    j->created_ms = v->created_ms;
    j->updated_ms = v->updated_ms;
    if (v->has_pending) {
        char b[24];
        snprintf(b, sizeof(b), "%lld", (long long)v->pending);
        j->pending = tier_rpc_strndup(call, b, strlen(b));
    }
    return split_dirs(call, v->also_dirs, j);
}

static Tier__Job *job_new(tier_rpc_ctx *call, const tier_jobs_view *v)
{
    Tier__Job *j = tier_rpc_alloc(call, sizeof(*j));
    if (j != NULL)
        tiering_job_to_proto(call, v, j);
    return j;
}

/* INVALID_ARGUMENT naming the field and its cap when n is over it. */
static int check_count(tier_rpc_ctx *call, const char *field, size_t n, size_t max)
{
    if (n <= max)
        return TIER_OK;
    return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "%s: at most %zu per call (got %zu)",
                                field, max, n);
}

static bool valid_worker(const char *w)
{
    size_t n = strlen(w);
    return n > 0 && n <= WORKER_ID_MAX;
}

static int redis_down(tier_rpc_ctx *call, int rv)
{
    return tier_rpc_set_message(call, rv, "Redis: %s",
                                rv == TIER_UNAVAILABLE ? "unavailable"
                                : rv == TIER_ABORTED   ? "this tierd is no longer the writer"
                                                       : "job script failed");
}

/* A pooled Redis connection for a handler; NULL (message set on call) when
 * Redis is away. */
static tier_kv *kv_get(tiering *t, tier_rpc_ctx *call)
{
    tier_kv *kv = tier_pool_get(t->deps->kv);
    if (kv == NULL && call != NULL)
        redis_down(call, TIER_UNAVAILABLE);
    return kv;
}

static void kv_put(tiering *t, tier_kv *kv)
{
    tier_kv_pool_put(t->deps->kv, kv);
}

/* ------------------------------------------------------------ push */

/* Sends a MoveJob hint; never blocks.  No worker ready: the job waits in
 * <prefix>jobs:update and the reaper pushes it again. */
static void push_job(tiering *t, const tier_jobs_view *v)
{
    Tier__MoveJob m = TIER__MOVE_JOB__INIT;
    char f[256], src[4097], dst[4097], tg[33];
    uint8_t buf[9000];
    size_t len;

#define COPY(dstb, s)                                                                              \
    snprintf(dstb, sizeof(dstb), "%.*s", (int)((s).len < sizeof(dstb) ? (s).len : 0),              \
             (s).p ? (s).p : "")
    COPY(f, v->filename);
    COPY(src, v->src_dir);
    COPY(dst, v->dst_dir);
    COPY(tg, v->target);
#undef COPY
    m.cid = v->cid;
    m.fence = v->fence;
    m.filename = f;
    m.src_dir = src;
    m.dst_dir = dst;
    m.target = tg;
    if ((len = tier__move_job__get_packed_size(&m)) > sizeof(buf))
        return;
    tier__move_job__pack(&m, buf);
    nng_send(t->push, buf, len, NNG_FLAG_NONBLOCK);
}

/* ------------------------------------------------------------ reports */

static void report_result(tl_report *r, const tier_jobs_report_out *o, tier_rpc_ctx *call)
{
    if (r->res == NULL)
        return;
    r->res->code = TIER__RPC__CODE__OK;
    if (!o->has_job) {
        r->res->status = (char *)"done";
        return;
    }
    r->res->status = (char *)tier_job_state_name(o->job.state);
    r->res->worker_id = dup_s(call, o->job.worker_id);
}

/* A script for c answered UNAVAILABLE but may have run (its reply lost
 * with the connection, or a WAIT for a replica that timed out): a job may
 * exist now, or may not.  Memory says "may have a job", so the next report
 * of c goes to Redis rather than being answered from memory, and the
 * reaper reads the job back once Redis answers (settle_suspects).  level:
 * what memory takes as c's level (MySQL's, after a commit). */
static void suspect(tiering *t, content *c, const char *level)
{
    tiering_set(t, c, level, true);
    pthread_mutex_lock(&t->suspect_mu);
    if (t->nsuspect < TL_SUSPECT_MAX)
        t->suspect[t->nsuspect++] = c->cid;
    else /* fsck --repair (stale_job) or the next report settles it */
        tier_warn("tiering: too many contents to settle; cid %lld left to fsck", (long long)c->cid);
    pthread_mutex_unlock(&t->suspect_mu);
}

static int report_chunk(tiering *t, tier_kv *kv, tl_report *r, size_t n, tier_rpc_ctx *call)
{
    level_table *lt = atomic_load(&t->levels);
    tier_jobs_report_in *in = malloc(n * sizeof(*in));
    tier_jobs_report_out *out = malloc(n * sizeof(*out));
    tier_jobs_reply *keep = NULL;
    int rv = TIER_RESOURCE_EXHAUSTED;

    if (in == NULL || out == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        const content *c = r[i].c;
        const tl_level *cur = tiering_level(lt, c->level);
        assert(c->busy); /* the caller holds it: nobody else changes this job */
        /* A content still in its migrating level's old directory: a report
         * for its own level keeps its migration job (and the planner's
         * request creates one); the source is always where the file is. */
        bool migrate = r[i].target->name == c->level && cur != NULL && cur->old_path != NULL &&
                       c->in_old && (r[i].migrate || c->has_job);
        in[i] = (tier_jobs_report_in){c->cid,
                                      r[i].count,
                                      r[i].target->name,
                                      c->level,
                                      c->filename,
                                      tiering_content_dir(lt, c),
                                      r[i].target->path,
                                      migrate};
    }
    TIER_CRASH_AT("report.before_script");
    rv = tier_jobs_report(t->jobs, kv, tier_now_ms(), REPUSH_MS, in, n, out, &keep);
    if (rv == TIER_UNAVAILABLE) {
        /* The script may have run (a reply lost with its connection, or a
         * WAIT for a replica that timed out): a job may exist now.  Memory
         * must not answer the next report of these contents by itself, so
         * they go to Redis until a report (or fsck's stale_job) says. */
        for (size_t i = 0; i < n; i++)
            suspect(t, r[i].c, r[i].c->level);
    }
    if (rv != TIER_OK)
        goto done;
    TIER_CRASH_AT("report.after_script");
    for (size_t i = 0; i < n; i++) {
        tiering_set(t, r[i].c, r[i].c->level, out[i].has_job);
        /* New, or aimed elsewhere (maybe revived from failed): hint it. */
        if (out[i].what == TIER_JOBS_REPORT_CREATED || out[i].what == TIER_JOBS_REPORT_RETARGETED)
            push_job(t, &out[i].job);
        report_result(&r[i], &out[i], call);
    }
done:
    tier_jobs_reply_free(keep);
    free(in);
    free(out);
    return rv;
}

int tiering_apply_reports(tiering *t, tl_report *r, size_t n, tier_rpc_ctx *call)
{
    tier_kv *kv = tier_pool_get(t->deps->kv);
    int rv = kv ? TIER_OK : TIER_UNAVAILABLE;

    for (size_t i = 0; i < n && rv == TIER_OK; i += CHUNK)
        rv = report_chunk(t, kv, r + i, n - i < CHUNK ? n - i : CHUNK, call);
    if (kv != NULL)
        kv_put(t, kv);
    if (rv != TIER_OK) {
        for (size_t i = 0; i < n; i++) {
            if (r[i].res == NULL || r[i].res->status[0] != '\0')
                continue;
            r[i].res->code = rv;
            r[i].res->message = rv == TIER_UNAVAILABLE ? (char *)"Redis: unavailable"
                                : rv == TIER_ABORTED   ? (char *)"tierd is no longer the writer"
                                                       : (char *)"Redis: job script failed";
        }
    }
    return rv;
}

/* Applies a report kept on a job (FailJob, RetryJob): busy held. */
static void apply_pending(tiering *t, content *c, int64_t count)
{
    const tl_level *tl = tiering_target(atomic_load(&t->levels), count);
    tl_report rep = {c, count, tl, NULL, false};

    if (tl != NULL)
        tiering_apply_reports(t, &rep, 1, NULL);
}

/* ------------------------------------------------------------ ClaimJob */

static const char *claim_message(int code)
{
    return code == TIER_OK               ? ""
           : code == TIER_NOT_FOUND      ? "no such job"
           : code == TIER_ALREADY_EXISTS ? "claimed by another worker"
                                         : "not waiting for a worker";
}

static int h_claim(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__ClaimJobRequest *req = (const Tier__ClaimJobRequest *)in;
    Tier__ClaimJobReply *rep = (Tier__ClaimJobReply *)out;
    size_t n = req->n_cids;
    uint32_t lease = req->lease_ms ? req->lease_ms : t->deps->cfg->lease_ms;
    tier_jobs_claim_out *res;
    tier_jobs_reply *keep;
    tier_kv *kv;
    int rv;

    if ((rv = check_count(call, "cids", n, CLAIM_CIDS_MAX)) != TIER_OK)
        return rv;
    if (!valid_worker(req->worker_id))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "worker_id: 1..128 bytes");
    res = tier_rpc_alloc(call, (n + 1) * sizeof(*res));
    rep->results = tier_rpc_alloc(call, (n + 1) * sizeof(*rep->results));
    if (res == NULL || rep->results == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    rep->n_results = n;
    if (n == 0)
        return TIER_OK;
    if ((kv = kv_get(t, call)) == NULL)
        return TIER_UNAVAILABLE;
    rv = tier_jobs_claim(t->jobs, kv, tier_now_ms(), req->worker_id, lease, req->cids, n, res,
                         &keep);
    kv_put(t, kv);
    if (rv != TIER_OK)
        return redis_down(call, rv);
    TIER_CRASH_AT("claim.after_script");
    for (size_t i = 0; i < n; i++) {
        Tier__ClaimResult *c = tier_rpc_alloc(call, sizeof(*c));
        tier__claim_result__init(c);
        c->cid = req->cids[i];
        c->code = res[i].code;
        c->message = (char *)claim_message(res[i].code);
        if (res[i].code == TIER_OK)
            c->job = job_new(call, &res[i].job);
        rep->results[i] = c;
    }
    tier_jobs_reply_free(keep);
    return TIER_OK;
}

/* ------------------------------------------------------------ RenewLease */

static Tier__ItemStatus *item_status(tier_rpc_ctx *call, int64_t cid, int code, const char *msg)
{
    Tier__ItemStatus *s = tier_rpc_alloc(call, sizeof(*s));
    tier__item_status__init(s);
    s->cid = cid;
    s->code = code;
    s->message = (char *)msg;
    return s;
}

/* The JobRefs of a request as store refs. */
static tier_jobs_ref *refs_of(tier_rpc_ctx *call, Tier__JobRef **jobs, size_t n)
{
    tier_jobs_ref *r = tier_rpc_alloc(call, (n + 1) * sizeof(*r));
    for (size_t i = 0; r != NULL && i < n; i++)
        r[i] = (tier_jobs_ref){jobs[i]->cid, jobs[i]->fence};
    return r;
}

static int h_renew(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__RenewLeaseRequest *req = (const Tier__RenewLeaseRequest *)in;
    Tier__RenewLeaseReply *rep = (Tier__RenewLeaseReply *)out;
    size_t n = req->n_jobs;
    uint32_t lease = req->lease_ms ? req->lease_ms : t->deps->cfg->lease_ms;
    int64_t now = tier_now_ms();
    tier_jobs_ref *refs;
    int *codes;
    tier_kv *kv;
    int rv;

    if ((rv = check_count(call, "jobs", n, RENEW_JOBS_MAX)) != TIER_OK)
        return rv;
    if (!valid_worker(req->worker_id))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "worker_id: 1..128 bytes");
    refs = refs_of(call, req->jobs, n);
    codes = tier_rpc_alloc(call, (n + 1) * sizeof(*codes));
    rep->results = tier_rpc_alloc(call, (n + 1) * sizeof(*rep->results));
    if (refs == NULL || codes == NULL || rep->results == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    rep->n_results = n;
    rep->lease_expires_ms = now + lease;
    if (n == 0)
        return TIER_OK;
    if ((kv = kv_get(t, call)) == NULL)
        return TIER_UNAVAILABLE;
    rv = tier_jobs_renew(t->jobs, kv, now, req->worker_id, lease, refs, n, codes);
    kv_put(t, kv);
    if (rv != TIER_OK)
        return redis_down(call, rv);
    for (size_t i = 0; i < n; i++)
        rep->results[i] =
            item_status(call, refs[i].cid, codes[i],
                        codes[i] == TIER_OK ? "" : "lease not held (check your status)");
    return TIER_OK;
}

/* ------------------------------------------------------------ commit */

typedef struct {
    int64_t cid;
    const char *level;
    int64_t size; /* < 0: not reported, MySQL keeps its size */
} commit_item;

/* The batcher's function: one transaction for everything that arrived. */
static int commit_batch(void *arg, unsigned flusher, void **items, size_t n)
{
    (void)flusher; /* one flusher: commits stay in order */
    tiering *t = arg;
    int64_t *cids = malloc(2 * n * sizeof(*cids)), *sizes = cids ? cids + n : NULL;
    const char **levels = malloc(n * sizeof(*levels));
    tier_db *db = NULL;
    int rv = TIER_RESOURCE_EXHAUSTED;

    if (cids == NULL || levels == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        cids[i] = ((commit_item *)items[i])->cid;
        levels[i] = ((commit_item *)items[i])->level;
        sizes[i] = ((commit_item *)items[i])->size;
    }
    rv = TIER_UNAVAILABLE;
    if ((db = tier_pool_get(t->deps->db)) != NULL) {
        rv = tier_contents_commit(db, cids, levels, sizes, n);
        tier_db_pool_put(t->deps->db, db);
    }
out:
    free(cids);
    free(levels);
    return rv;
}

/* A job whose new level is committed, to be finished in Redis. */
typedef struct {
    content *c;
    uint64_t fence;
    const char *level; /* interned target */
    bool has_pending;  /* a report arrived while the job ran ... */
    int64_t pending;   /* ... with this count */
    int code;
    int64_t size; /* the moved file's bytes as the worker reported; -1: none */
    bool in_old;  /* after the move, the file is in its (migrating) level's old directory */
} fin_item;

/* The FINISH item of f: its follow-up job is planned here, because levels
 * live in tierd.  A follow-up is needed only when the pending count
 * belongs on another level than the one just committed. */
static void plan_finish(const level_table *lt, const fin_item *f, tier_jobs_finish_in *in)
{
    const tl_level *tl = f->has_pending ? tiering_target(lt, f->pending) : NULL;
    const tl_level *cur = tiering_level(lt, f->level);

    *in =
        (tier_jobs_finish_in){{f->c->cid, f->fence}, f->has_pending, f->pending, NULL, NULL, NULL};
    if (tl != NULL && cur != NULL && tl->name != f->level) {
        in->next_target = tl->name;
        in->next_src_dir = tiering_level_dir(cur, f->in_old);
        in->next_dst_dir = tl->path;
    }
}

/* A committed move, in tier_moves_total{from, to}: memory still holds the
 * level it came from. */
static void count_move(tiering *t, const fin_item *fi)
{
    if (fi->c->level != fi->level) {
        tier_metric_add(t->deps->metrics->moves, 1, fi->c->level, fi->level);
        tierd_stats_add(t->deps->stats, TIERD_STAT_MOVES, 1);
    }
}

/* After the commit: delete the jobs (or turn them into their follow-ups)
 * and update memory.  Busy flags are held, so no report of this tierd
 * changes `pending` meanwhile; a REPLAN answer (someone did) is planned
 * again, a bounded number of times. */
static int finish_committed(tiering *t, tier_kv *kv, fin_item *f, size_t n)
{
    tier_jobs_finish_in *in = malloc(n * sizeof(*in) + 1);
    tier_jobs_finish_out *out = malloc(n * sizeof(*out) + 1);
    size_t *idx = malloc(n * sizeof(*idx) + 1);
    level_table *lt = atomic_load(&t->levels);
    size_t m = n;
    int rv = TIER_RESOURCE_EXHAUSTED;

    if (in == NULL || out == NULL || idx == NULL)
        goto done;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (int round = 0; m > 0 && round < 4; round++) {
        tier_jobs_reply *keep;
        size_t again = 0;
        for (size_t k = 0; k < m; k++) {
            assert(f[idx[k]].c->busy);
            plan_finish(lt, &f[idx[k]], &in[k]);
        }
        rv = tier_jobs_finish(t->jobs, kv, tier_now_ms(), REPUSH_MS, t->deps->cfg->done_retention_s,
                              in, m, out, &keep);
        if (rv == TIER_UNAVAILABLE) {
            /* MySQL holds the new level; FINISH may or may not have run
             * (a lost reply, a WAIT that timed out).  Memory takes the
             * committed level and assumes the job may still be there: the
             * sweep finishes a job left "done", a report goes to Redis. */
            for (size_t k = 0; k < m; k++)
                suspect(t, f[idx[k]].c, f[idx[k]].level);
        }
        if (rv != TIER_OK)
            goto done;
        for (size_t k = 0; k < m; k++) {
            fin_item *fi = &f[idx[k]];
            fi->code = TIER_OK; /* committed either way */
            switch (out[k].what) {
            case TIER_JOBS_FINISH_DELETED:
                count_move(t, fi);
                tiering_set(t, fi->c, fi->level, false);
                break;
            case TIER_JOBS_FINISH_NEXT:
                count_move(t, fi);
                tiering_set(t, fi->c, fi->level, true);
                push_job(t, &out[k].job);
                break;
            case TIER_JOBS_FINISH_REPLAN:
                fi->has_pending = out[k].has_pending;
                fi->pending = out[k].pending;
                idx[again++] = idx[k];
                break;
            case TIER_JOBS_FINISH_GONE: /* finished already by someone else */
                break;
            }
        }
        tier_jobs_reply_free(keep);
        m = again;
    }
    rv = TIER_OK;
done:
    free(in);
    free(out);
    free(idx);
    return rv;
}

/* Whether a file of level (name) is in the level's old directory, not its
 * new one: false unless the level migrates; else by lstat of the new one. */
static bool locate_old(const level_table *lt, const char *level, const char *filename)
{
    const tl_level *l = tiering_level(lt, level);
    char path[TIER_PATH_MAX + 260];
    struct stat st;

    if (l == NULL || l->old_path == NULL)
        return false;
    snprintf(path, sizeof(path), "%s%s", l->path, filename);
    return lstat(path, &st) != 0;
}

/* Commits f[0..n) (busy held) and finishes them.  recovery: called by the
 * start-up / sweep recovery (its own crash points) instead of CompleteJob. */
static int commit_and_finish(tiering *t, tier_kv *kv, fin_item *f, size_t n, bool recovery)
{
    commit_item *ci = malloc(n * sizeof(*ci) + 1);
    void **items = malloc(n * sizeof(*items) + 1);
    int rv = TIER_RESOURCE_EXHAUSTED;

    if (recovery)
        TIER_CRASH_AT("recover.before_commit");
    if (ci != NULL && items != NULL) {
        for (size_t i = 0; i < n; i++) {
            ci[i] = (commit_item){f[i].c->cid, f[i].level, f[i].size};
            items[i] = &ci[i];
        }
        rv = tier_batcher_submit_many(t->batcher, items, n);
    }
    free(ci);
    free(items);
    if (rv != TIER_OK)
        return rv;
    /* MySQL has the sizes now, whatever FINISH says next: memory follows.
     * A migrating level's file is in its new directory once a move put it
     * there; a move that ended in the old one (a cancelled job aimed home)
     * leaves it to a later migration move. */
    for (size_t i = 0; i < n; i++) {
        tiering_set_size(t, f[i].c, f[i].size);
        f[i].in_old = locate_old(atomic_load(&t->levels), f[i].level, f[i].c->filename);
        tiering_set_in_old(t, f[i].c, f[i].in_old);
    }
    if (recovery)
        TIER_CRASH_AT("recover.after_commit");
    else
        TIER_CRASH_AT("complete.after_commit");
    rv = finish_committed(t, kv, f, n);
    if (!recovery && rv == TIER_OK)
        TIER_CRASH_AT("complete.after_finish");
    return rv;
}

/* ------------------------------------------------------------ CompleteJob */

/* Marks the jobs of known contents done; fills f with those to commit and
 * which[] with their request positions; answers the others in rep.
 * Returns the number to commit, or -status. */
static long mark_done(tiering *t, tier_kv *kv, tier_rpc_ctx *call,
                      const Tier__CompleteJobRequest *req, content **cs, fin_item *f,
                      Tier__CompleteJobReply *rep, size_t *which)
{
    size_t n = req->n_jobs, m = 0, nf = 0;
    tier_jobs_ref *refs = tier_rpc_alloc(call, (n + 1) * sizeof(*refs));
    tier_jobs_done_out *out = tier_rpc_alloc(call, (n + 1) * sizeof(*out));
    size_t *pos = tier_rpc_alloc(call, (n + 1) * sizeof(*pos));
    tier_jobs_reply *keep;
    int rv;

    if (refs == NULL || out == NULL || pos == NULL)
        return -TIER_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n; i++) {
        if (cs[i] == NULL)
            continue;
        refs[m] = (tier_jobs_ref){req->jobs[i]->cid, req->jobs[i]->fence};
        pos[m++] = i;
    }
    if (m == 0)
        return 0;
    if ((rv = tier_jobs_done(t->jobs, kv, tier_now_ms(), req->worker_id, refs, m, out, &keep)) !=
        TIER_OK)
        return -rv;
    for (size_t k = 0; k < m; k++) {
        size_t i = pos[k];
        switch (out[k].what) {
        case TIER_JOBS_DONE_REFUSED:
            rep->results[i] =
                item_status(call, refs[k].cid, TIER_FAILED_PRECONDITION, "check your status again");
            break;
        case TIER_JOBS_DONE_COMMITTED:
            rep->results[i] = item_status(call, refs[k].cid, TIER_OK, "");
            break;
        case TIER_JOBS_DONE_NOW:
            f[nf] = (fin_item){cs[i],
                               refs[k].fence,
                               tiering_intern(t, out[k].target.p, out[k].target.len),
                               out[k].has_pending,
                               out[k].pending,
                               TIER_UNAVAILABLE,
                               req->n_sizes > 0 ? req->sizes[i] : -1,
                               false};
            which[nf++] = i;
            break;
        }
    }
    tier_jobs_reply_free(keep);
    return (long)nf;
}

/* sizes is optional (an older worker sends none) but, when sent, one per
 * job and never negative: a size goes to MySQL and to the capacity policy
 * as is, so a bad one is refused before anything is marked done. */
static int check_sizes(tier_rpc_ctx *call, const Tier__CompleteJobRequest *req)
{
    if (req->n_sizes != 0 && req->n_sizes != req->n_jobs)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "sizes: one per job or none (got %zu for %zu jobs)",
                                    req->n_sizes, req->n_jobs);
    for (size_t i = 0; i < req->n_sizes; i++)
        if (req->sizes[i] < 0)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                        "sizes[%zu]: %lld bytes (cid %lld); a size is >= 0", i,
                                        (long long)req->sizes[i], (long long)req->jobs[i]->cid);
    return TIER_OK;
}

static int h_complete(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                      ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__CompleteJobRequest *req = (const Tier__CompleteJobRequest *)in;
    Tier__CompleteJobReply *rep = (Tier__CompleteJobReply *)out;
    size_t n = req->n_jobs, nk = 0;
    content **cs, **held;
    fin_item *f;
    size_t *which;
    tier_kv *kv;
    long nf;

    if (check_count(call, "jobs", n, COMPLETE_JOBS_MAX) != TIER_OK)
        return TIER_INVALID_ARGUMENT;
    if (!valid_worker(req->worker_id))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "worker_id: 1..128 bytes");
    if (check_sizes(call, req) != TIER_OK)
        return TIER_INVALID_ARGUMENT;
    cs = tier_rpc_alloc(call, (n + 1) * sizeof(*cs));
    held = tier_rpc_alloc(call, (n + 1) * sizeof(*held));
    f = tier_rpc_alloc(call, (n + 1) * sizeof(*f));
    which = tier_rpc_alloc(call, (n + 1) * sizeof(*which));
    rep->results = tier_rpc_alloc(call, (n + 1) * sizeof(*rep->results));
    if (cs == NULL || held == NULL || f == NULL || which == NULL || rep->results == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    rep->n_results = n;
    for (size_t i = 0; i < n; i++) {
        if ((cs[i] = tiering_find(t, req->jobs[i]->cid)) != NULL)
            held[nk++] = cs[i];
        else
            rep->results[i] = item_status(call, req->jobs[i]->cid, TIER_FAILED_PRECONDITION,
                                          "check your status again");
    }
    if ((kv = kv_get(t, call)) == NULL)
        return TIER_UNAVAILABLE;
    tiering_acquire(t, held, nk);
    nf = mark_done(t, kv, call, req, cs, f, rep, which);
    if (nf > 0) {
        TIER_CRASH_AT("complete.after_done");
        int rv = commit_and_finish(t, kv, f, (size_t)nf, false);
        for (long k = 0; k < nf; k++) {
            size_t i = which[k];
            int code = rv == TIER_OK ? f[k].code : rv;
            rep->results[i] =
                item_status(call, req->jobs[i]->cid, code,
                            code == TIER_OK          ? ""
                            : rv == TIER_UNAVAILABLE ? "MySQL or Redis unavailable; retry"
                                                     : "commit failed; retry");
        }
    }
    tiering_release(t, held, nk);
    kv_put(t, kv);
    if (nf < 0)
        return redis_down(call, (int)-nf);
    return TIER_OK;
}

/* ------------------------------------------------------------ FailJob */

static int h_fail(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__FailJobRequest *req = (const Tier__FailJobRequest *)in;
    char reason[256];
    bool has_pending;
    int64_t pending;
    content *c;
    tier_kv *kv;
    int rv;
    (void)out;

    if (!valid_worker(req->worker_id) || req->job == NULL)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "worker_id and job are required");
    if ((c = tiering_find(t, req->job->cid)) == NULL)
        return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION, "check your status again");
    snprintf(reason, sizeof(reason), "%s", req->reason);
    if ((kv = kv_get(t, call)) == NULL)
        return TIER_UNAVAILABLE;
    tiering_acquire(t, &c, 1);
    rv = tier_jobs_fail(t->jobs, kv, tier_now_ms(), req->worker_id,
                        (tier_jobs_ref){req->job->cid, req->job->fence}, reason, req->permanent,
                        req->retry_after_ms, &has_pending, &pending);
    kv_put(t, kv);
    if (rv == TIER_OK) {
        TIER_CRASH_AT("fail.after_script");
        tier_metric_add(t->deps->metrics->failures, 1, req->permanent ? "permanent" : "transient");
        if (!req->permanent)
            tier_metric_add(t->deps->metrics->retries, 1, "transient_failure");
        /* A report came while the job ran: retarget (or cancel) it now.  A
         * crash before this leaves it on the job for FINISH. */
        if (!req->permanent && has_pending)
            apply_pending(t, c, pending);
    }
    tiering_release(t, &c, 1);
    if (rv == TIER_FAILED_PRECONDITION)
        return tier_rpc_set_message(call, rv, "check your status again");
    return rv == TIER_OK ? TIER_OK : redis_down(call, rv);
}

/* ------------------------------------------------------------ RetryJob / CancelJob */

static int control_result(tiering *t, tier_rpc_ctx *call, content *c, const tier_jobs_ctl_out *o,
                          Tier__JobControlReply *rep)
{
    switch (o->what) {
    case TIER_JOBS_CTL_NO_JOB:
        return tier_rpc_set_message(call, TIER_NOT_FOUND, "content %lld has no job",
                                    (long long)c->cid);
    case TIER_JOBS_CTL_BUSY:
        return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION, "%s; try again in a moment",
                                    o->why);
    case TIER_JOBS_CTL_DELETED:
        tiering_set(t, c, c->level, false);
        rep->outcome = (char *)"deleted";
        return TIER_OK;
    case TIER_JOBS_CTL_HOME:
        rep->outcome = (char *)"home";
        rep->job = job_new(call, &o->job);
        push_job(t, &o->job);
        return TIER_OK;
    case TIER_JOBS_CTL_RETRIED:
        rep->outcome = (char *)"retried";
        if (!o->has_pending) {
            rep->job = job_new(call, &o->job);
            push_job(t, &o->job);
            return TIER_OK;
        }
        /* A report came while the job ran: it decides the target now. */
        apply_pending(t, c, o->pending);
        Tier__GetJobRequest g = TIER__GET_JOB_REQUEST__INIT;
        Tier__GetJobReply gr = TIER__GET_JOB_REPLY__INIT;
        g.cid = c->cid;
        if (tiering_get_job(t, call, &g, &gr) == TIER_OK)
            rep->job = gr.job;
        return TIER_OK;
    }
    return tier_rpc_set_message(call, TIER_INTERNAL, "unexpected job state");
}

static int job_control(tiering *t, tier_rpc_ctx *call, int64_t cid, bool cancel,
                       Tier__JobControlReply *rep)
{
    content *c = tiering_find(t, cid);
    tier_jobs_ctl_out o;
    tier_jobs_reply *keep;
    tier_kv *kv;
    int rv;

    if (!tierd_shard_owns(t->deps->cfg, cid))
        return tierd_shard_moved(call, t->deps, cid);
    if (c == NULL)
        return tier_rpc_set_message(call, TIER_NOT_FOUND, "no content %lld", (long long)cid);
    if ((kv = kv_get(t, call)) == NULL)
        return TIER_UNAVAILABLE;
    tiering_acquire(t, &c, 1);
    rv = cancel ? tier_jobs_cancel(t->jobs, kv, tier_now_ms(), cid, &o, &keep)
                : tier_jobs_retry(t->jobs, kv, tier_now_ms(), cid, &o, &keep);
    kv_put(t, kv);
    if (rv == TIER_OK) {
        if (cancel)
            TIER_CRASH_AT("cancel.after_script");
        else
            TIER_CRASH_AT("retry.after_script");
        rv = control_result(t, call, c, &o, rep);
        if (!cancel && rv == TIER_OK)
            tier_metric_add(t->deps->metrics->retries, 1, "operator");
        tier_jobs_reply_free(keep);
    } else {
        rv = redis_down(call, rv);
    }
    tiering_release(t, &c, 1);
    return rv;
}

static int h_retry_job(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                       ProtobufCMessage *out)
{
    return job_control(arg, call, ((const Tier__JobControlRequest *)in)->cid, false,
                       (Tier__JobControlReply *)out);
}

static int h_cancel_job(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                        ProtobufCMessage *out)
{
    return job_control(arg, call, ((const Tier__JobControlRequest *)in)->cid, true,
                       (Tier__JobControlReply *)out);
}

/* ------------------------------------------------------------ ListJobs / GetJob */

int tiering_get_job(tiering *t, tier_rpc_ctx *call, const Tier__GetJobRequest *req,
                    Tier__GetJobReply *rep)
{
    tier_jobs_view v;
    tier_jobs_reply *keep;
    tier_kv *kv;
    int rv;

    if (!tierd_shard_owns(t->deps->cfg, req->cid))
        return tierd_shard_moved(call, t->deps, req->cid);
    if ((kv = kv_get(t, call)) == NULL)
        return TIER_UNAVAILABLE;
    rv = tier_jobs_get(t->jobs, kv, req->cid, &v, &keep);
    kv_put(t, kv);
    if (rv == TIER_NOT_FOUND)
        return tier_rpc_set_message(call, TIER_NOT_FOUND, "no job for content %lld",
                                    (long long)req->cid);
    if (rv != TIER_OK)
        return redis_down(call, rv);
    rep->job = job_new(call, &v);
    tier_jobs_reply_free(keep);
    return TIER_OK;
}

static int h_get_job(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                     ProtobufCMessage *out)
{
    return tiering_get_job(arg, call, (const Tier__GetJobRequest *)in, (Tier__GetJobReply *)out);
}

static Tier__PlannerState *planner_state(tiering *t, tier_rpc_ctx *call)
{
    Tier__PlannerState *ps = tier_rpc_alloc(call, sizeof(*ps));
    tl_planner_stats st;

    if (ps == NULL)
        return NULL;
    tiering_planner_stats(t, &st);
    tier__planner_state__init(ps);
    ps->at_ms = st.at_ms;
    ps->planned = st.planned;
    ps->started = st.started;
    ps->backlog = st.backlog;
    ps->backlog_bytes = st.backlog_bytes;
    ps->throttled = st.throttled;
    ps->waiting_capacity = st.waiting_capacity;
    ps->inflight = st.inflight;
    return ps;
}

/* ListJobs' order across shards: by status as listed (update, claimed,
 * done, failed), finished ones newest first, then by cid. */
static int status_rank(const char *s)
{
    static const char *order[] = {"update", "claimed", "done", "failed", "finished"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, order[i]) == 0)
            return i;
    return 5;
}

static int by_list_order(const void *pa, const void *pb)
{
    const Tier__Job *a = *(Tier__Job *const *)pa, *b = *(Tier__Job *const *)pb;
    int ra = status_rank(a->status), rb = status_rank(b->status);

    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (ra == 4 && a->updated_ms != b->updated_ms)
        return a->updated_ms > b->updated_ms ? -1 : 1;
    return a->cid < b->cid ? -1 : a->cid > b->cid;
}

static void add_planner(Tier__PlannerState *to, const Tier__PlannerState *x)
{
    to->at_ms = to->at_ms > x->at_ms ? to->at_ms : x->at_ms;
    to->planned += x->planned;
    to->started += x->started;
    to->backlog += x->backlog;
    to->backlog_bytes += x->backlog_bytes;
    to->throttled += x->throttled;
    to->waiting_capacity += x->waiting_capacity;
    to->inflight += x->inflight;
}

/* Several shards: every shard's jobs (asked local) with ours, in list
 * order, at most limit; the planners' counts summed. */
static int list_jobs_shards(tiering *t, tier_rpc_ctx *call, const Tier__ListJobsRequest *req,
                            Tier__ListJobsReply *rep, size_t limit)
{
    const tierd_config *cfg = t->deps->cfg;
    Tier__ListJobsRequest sub = *req;
    ProtobufCMessage *r[TIER_SHARDS_MAX] = {0};
    size_t total = rep->n_jobs;
    char err[256];
    int rv;

    sub.local = true;
    if ((rv = tierd_peers_fanout_wait(t->deps->peers, call, TIER_M_LIST_JOBS, &sub.base,
                                      &tier__list_jobs_reply__descriptor, r, err, sizeof(err))) !=
        TIER_OK)
        return tier_rpc_set_message(call, rv, "ListJobs across shards: %s", err);
    for (unsigned k = 0; k < cfg->shards; k++)
        if (r[k] != NULL)
            total += ((Tier__ListJobsReply *)r[k])->n_jobs;
    Tier__Job **all = tier_rpc_alloc(call, (total + 1) * sizeof(*all));
    if (all == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(all, rep->jobs, rep->n_jobs * sizeof(*all));
    total = rep->n_jobs;
    for (unsigned k = 0; k < cfg->shards; k++) {
        Tier__ListJobsReply *x = (Tier__ListJobsReply *)r[k];
        for (size_t i = 0; x != NULL && i < x->n_jobs && i < limit; i++)
            all[total++] = x->jobs[i];
        if (x != NULL && x->planner != NULL) {
            if (rep->planner == NULL)
                rep->planner = x->planner;
            else
                add_planner(rep->planner, x->planner);
        }
    }
    qsort(all, total, sizeof(*all), by_list_order);
    rep->jobs = all;
    rep->n_jobs = total < limit ? total : limit;
    return TIER_OK;
}

static int h_list_jobs(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                       ProtobufCMessage *out)
{
    static const tier_job_state active[] = {TIER_JOB_UPDATE, TIER_JOB_CLAIMED, TIER_JOB_DONE,
                                            TIER_JOB_FAILED};
    tiering *t = arg;
    const Tier__ListJobsRequest *req = (const Tier__ListJobsRequest *)in;
    Tier__ListJobsReply *rep = (Tier__ListJobsReply *)out;
    size_t limit = req->limit == 0 ? 1000 : req->limit > 100000 ? 100000 : req->limit;
    tier_job_state one[1];
    const tier_job_state *st = active;
    size_t ns = 4;
    tier_kv *kv;
    int rv = TIER_OK;

    if (req->status[0] != '\0') {
        if ((one[0] = tier_job_state_parse(req->status, strlen(req->status))) == TIER_JOB_NONE)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                        "status: update, claimed, done, failed, finished or empty");
        st = one, ns = 1;
    }
    if ((rep->jobs = tier_rpc_alloc(call, (limit + 1) * sizeof(*rep->jobs))) == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    if ((kv = kv_get(t, call)) == NULL)
        return TIER_UNAVAILABLE;
    for (size_t s = 0; s < ns && rv == TIER_OK && rep->n_jobs < limit; s++) {
        tier_jobs_view *v;
        tier_jobs_reply *keep;
        size_t n;
        rv = tier_jobs_list(t->jobs, kv, st[s], limit - rep->n_jobs, &v, &n, &keep);
        for (size_t i = 0; rv == TIER_OK && i < n; i++)
            rep->jobs[rep->n_jobs++] = job_new(call, &v[i]);
        if (rv == TIER_OK)
            tier_jobs_reply_free(keep);
    }
    kv_put(t, kv);
    if (rv == TIER_OK && tiering_policy_mode(t) == TIER_POLICY_WINDOW)
        rep->planner = planner_state(t, call);
    if (rv != TIER_OK)
        return redis_down(call, rv);
    if (t->deps->peers != NULL && !req->local)
        return list_jobs_shards(t, call, req, rep, limit);
    return TIER_OK;
}

/* ------------------------------------------------------------ recovery, reaper */

/* Commits the "done" jobs of cids[0..n) that are at least min_age_ms old
 * (the others are left alone); takes the busy flags itself.  Shared by the
 * start-up recovery, the reaper's sweep and fsck. */
int tiering_recover_cids(tiering *t, tier_kv *kv, const int64_t *cids, size_t n, int64_t min_age_ms)
{
    content **cs = calloc(n + 1, sizeof(*cs));
    fin_item *f = calloc(n + 1, sizeof(*f));
    size_t nc = 0, nf = 0;
    int64_t now = tier_now_ms();
    int rv = cs == NULL || f == NULL ? TIER_RESOURCE_EXHAUSTED : TIER_OK;

    for (size_t i = 0; rv == TIER_OK && i < n; i++)
        if ((cs[nc] = tiering_find(t, cids[i])) != NULL)
            nc++;
    tiering_acquire(t, cs, nc);
    /* Read under the busy flags: CompleteJob may have finished some. */
    for (size_t i = 0; i < nc; i++) {
        tier_jobs_view j;
        tier_jobs_reply *keep;
        int r;
        if (i > 0 && cs[i] == cs[i - 1])
            continue;
        if ((r = tier_jobs_get(t->jobs, kv, cs[i]->cid, &j, &keep)) == TIER_NOT_FOUND)
            continue;
        if (r != TIER_OK) {
            rv = r;
            break;
        }
        if (j.state == TIER_JOB_DONE && now - j.updated_ms >= min_age_ms)
            f[nf++] = (fin_item){cs[i],
                                 j.fence,
                                 tiering_intern(t, j.target.p, j.target.len),
                                 j.has_pending,
                                 j.pending,
                                 TIER_UNAVAILABLE,
                                 -1,
                                 false};
        tier_jobs_reply_free(keep);
    }
    if (nf > 0) {
        rv = commit_and_finish(t, kv, f, nf, true);
        tier_info("tiering: committed %zu job(s) left done (%s)", nf, tier_status_name(rv));
    }
    tiering_release(t, cs, nc);
    free(cs);
    free(f);
    return rv;
}

/* Commits "done" jobs at least min_age_ms old: at start-up (0: every one a
 * crash left behind) and from the reaper (a committer that gave up). */
static int recover_done(tiering *t, tier_kv *kv, int64_t min_age_ms)
{
    int64_t *cids;
    size_t n;
    int rv = tier_jobs_index_cids(t->jobs, kv, TIER_JOB_DONE, &cids, &n);

    if (rv == TIER_OK)
        rv = tiering_recover_cids(t, kv, cids, n, min_age_ms);
    free(cids);
    return rv;
}

/* fsck: commits c's level (busy held by the caller) through the batcher,
 * as CompleteJob does, so the history row comes from the same trigger. */
int tiering_commit_level(tiering *t, content *c, const char *level)
{
    commit_item ci = {c->cid, level, -1};
    int rv;

    assert(c->busy);
    if ((rv = tier_batcher_submit(t->batcher, &ci)) == TIER_OK)
        tiering_set(t, c, level, c->has_job);
    return rv;
}

/* has_job for every content named in an index. */
static int load_index(tiering *t, tier_kv *kv)
{
    static const tier_job_state st[] = {TIER_JOB_UPDATE, TIER_JOB_CLAIMED, TIER_JOB_DONE,
                                        TIER_JOB_FAILED};
    for (size_t s = 0; s < 4; s++) {
        int64_t *cids;
        size_t n;
        int rv = tier_jobs_index_cids(t->jobs, kv, st[s], &cids, &n);
        if (rv != TIER_OK)
            return rv;
        for (size_t i = 0; i < n; i++) {
            content *c = tiering_find(t, cids[i]);
            if (c != NULL)
                tiering_set(t, c, c->level, true);
        }
        free(cids);
    }
    return TIER_OK;
}

static void reap_once(tiering *t, tier_kv *kv)
{
    tier_jobs_view *due;
    tier_jobs_reply *keep;
    size_t expired, n;

    if (tier_jobs_reap(t->jobs, kv, tier_now_ms(), REAP_MAX, t->deps->cfg->done_retention_s,
                       FINISHED_MAX, &expired, &due, &n, &keep) != TIER_OK)
        return;
    if (expired > 0) {
        TIER_CRASH_AT("reaper.after_expire");
        tier_metric_add(t->deps->metrics->lease_expiries, (double)expired);
        tier_info("tiering: %zu expired lease(s) back to update", expired);
    }
    for (size_t i = 0; i < n; i++)
        push_job(t, &due[i]);
    tier_jobs_reply_free(keep);
}

/* Reads back the jobs of the suspected contents: has_job is what Redis
 * says.  Under each content's busy flag, so no report races it.  Left for
 * the next round when Redis does not answer. */
static void settle_suspects(tiering *t, tier_kv *kv)
{
    int64_t cids[64];
    size_t n;

    pthread_mutex_lock(&t->suspect_mu);
    n = t->nsuspect < 64 ? t->nsuspect : 64;
    memcpy(cids, t->suspect + t->nsuspect - n, n * sizeof(*cids));
    t->nsuspect -= n;
    pthread_mutex_unlock(&t->suspect_mu);
    for (size_t i = 0; i < n; i++) {
        content *c = tiering_find(t, cids[i]);
        tier_jobs_view j;
        tier_jobs_reply *keep = NULL;
        int rv;
        if (c == NULL)
            continue;
        tiering_acquire(t, &c, 1);
        rv = tier_jobs_get(t->jobs, kv, c->cid, &j, &keep);
        if (rv == TIER_OK || rv == TIER_NOT_FOUND)
            tiering_set(t, c, c->level, rv == TIER_OK);
        tier_jobs_reply_free(keep);
        tiering_release(t, &c, 1);
        if (rv != TIER_OK && rv != TIER_NOT_FOUND) {
            pthread_mutex_lock(&t->suspect_mu);
            for (size_t k = i; k < n && t->nsuspect < TL_SUSPECT_MAX; k++)
                t->suspect[t->nsuspect++] = cids[k];
            pthread_mutex_unlock(&t->suspect_mu);
            return;
        }
    }
}

static void *reaper_main(void *arg)
{
    tiering *t = arg;
    int64_t last_sweep = tier_mono_ms();

    while (!atomic_load(&t->stopping)) {
        usleep(REAP_EVERY_MS * 1000);
        tier_kv *kv = tier_pool_get(t->deps->kv);
        if (kv == NULL)
            continue;
        reap_once(t, kv);
        settle_suspects(t, kv);
        if (tier_mono_ms() - last_sweep >= SWEEP_EVERY_MS) {
            recover_done(t, kv, SWEEP_AGE_MS);
            last_sweep = tier_mono_ms();
        }
        kv_put(t, kv);
    }
    return NULL;
}

/* ------------------------------------------------------------ module */

static int open_push(tiering *t, char *err, size_t errlen)
{
    int rv;
    if ((rv = nng_push0_open(&t->push)) != 0) {
        snprintf(err, errlen, "push socket: %s", nng_strerror(rv));
        return TIER_INTERNAL;
    }
    t->push_open = true;
    nng_setopt_int(t->push, NNG_OPT_SENDBUF, 8192);
    /* Same TLS as the rpc address: hints name contents and files. */
    const tierd_config *cfg = t->deps->cfg;
    tier_rpc_tls tls = {.cert_file = cfg->tls_cert[0] ? cfg->tls_cert : NULL,
                        .key_file = cfg->tls_key[0] ? cfg->tls_key : NULL};
    if ((rv = tier_rpc_net_listen(t->push, cfg->push, &tls, err, errlen)) != TIER_OK)
        return TIER_UNAVAILABLE;
    return TIER_OK;
}

int tiering_jobs_counts(tiering *t, uint64_t counts[])
{
    tier_kv *kv = tier_pool_get(t->deps->kv);
    int rv;

    if (kv == NULL)
        return TIER_UNAVAILABLE;
    rv = tier_jobs_count(t->jobs, kv, counts);
    tier_kv_pool_put(t->deps->kv, kv);
    return rv;
}

int tiering_jobs_waiting(void *arg, uint64_t *n)
{
    uint64_t counts[TIER_JOB_STATES];
    int rv = tiering_jobs_counts(arg, counts);

    *n = rv == TIER_OK ? counts[TIER_JOB_UPDATE] : 0;
    return rv;
}

int tiering_jobs_open(tiering *t, char *err, size_t errlen)
{
    tier_kv *kv = tier_pool_get(t->deps->kv);
    int rv;

    if (kv == NULL) {
        snprintf(err, errlen, "Redis: cannot connect");
        return TIER_UNAVAILABLE;
    }
    rv = tier_jobs_open(&t->jobs, kv, t->deps->cfg->shard_prefix, err, errlen);
    if (rv == TIER_OK) /* before any script runs: a fenced tierd changes no job */
        tier_jobs_set_token(t->jobs, t->deps->writer_token);
    if (rv == TIER_OK && (t->batcher = tier_batcher_alloc(1024, 1, commit_batch, t)) == NULL)
        rv = TIER_RESOURCE_EXHAUSTED;
    if (rv == TIER_OK) {
        tierd_metrics *m = t->deps->metrics;
        tier_batcher_set_metrics(t->batcher, "levels", m->batch_size, m->batch_wait,
                                 m->batch_flush);
    }
    if (rv == TIER_OK && (rv = load_index(t, kv)) != TIER_OK)
        snprintf(err, errlen, "Redis: cannot read the job indexes");
    if (rv == TIER_OK && (rv = recover_done(t, kv, 0)) != TIER_OK)
        snprintf(err, errlen, "cannot commit jobs left done (%s)", tier_status_name(rv));
    tier_kv_pool_put(t->deps->kv, kv);
    if (rv == TIER_OK)
        rv = open_push(t, err, errlen);
    if (rv == TIER_OK) {
        if (pthread_create(&t->reaper, NULL, reaper_main, t) != 0)
            return TIER_RESOURCE_EXHAUSTED;
        t->reaper_started = true;
    }
    return rv;
}

void tiering_jobs_close(tiering *t)
{
    atomic_store(&t->stopping, true);
    if (t->reaper_started)
        pthread_join(t->reaper, NULL);
    if (t->push_open)
        nng_close(t->push);
    tier_batcher_free(t->batcher);
    tier_jobs_close(t->jobs);
}

int tiering_jobs_register(tiering *t, tier_rpc_server *srv)
{
    static const struct {
        const char *name;
        const ProtobufCMessageDescriptor *req, *rep;
        tier_rpc_fn fn;
    } m[] = {
        {TIER_M_CLAIM_JOB, &tier__claim_job_request__descriptor, &tier__claim_job_reply__descriptor,
         h_claim},
        {TIER_M_RENEW_LEASE, &tier__renew_lease_request__descriptor,
         &tier__renew_lease_reply__descriptor, h_renew},
        {TIER_M_COMPLETE_JOB, &tier__complete_job_request__descriptor,
         &tier__complete_job_reply__descriptor, h_complete},
        {TIER_M_FAIL_JOB, &tier__fail_job_request__descriptor, &tier__fail_job_reply__descriptor,
         h_fail},
        {TIER_M_LIST_JOBS, &tier__list_jobs_request__descriptor, &tier__list_jobs_reply__descriptor,
         h_list_jobs},
        {TIER_M_GET_JOB, &tier__get_job_request__descriptor, &tier__get_job_reply__descriptor,
         h_get_job},
        {TIER_M_RETRY_JOB, &tier__job_control_request__descriptor,
         &tier__job_control_reply__descriptor, h_retry_job},
        {TIER_M_CANCEL_JOB, &tier__job_control_request__descriptor,
         &tier__job_control_reply__descriptor, h_cancel_job},
    };
    int rv;

    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if ((rv = tier_rpc_server_add(srv, m[i].name, m[i].req, m[i].rep, m[i].fn, t, 0)) !=
            TIER_OK)
            return rv;
    return TIER_OK;
}
