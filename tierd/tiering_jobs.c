/*
 * tiering_jobs.c -- move jobs: the worker protocol (ClaimJob, RenewLease,
 * CompleteJob, FailJob), ListJobs / GetJob, the push socket, the reaper and
 * the recovery of jobs a crash left "done" but not committed.
 *
 * A job's life:  report -> "update" (pushed) -> ClaimJob -> "claimed"
 * -> CompleteJob -> "done" -> MySQL COMMIT -> deleted.  Redis holds the
 * truth (store/tier_jobs.c); the push is a hint that may be lost, so the
 * reaper re-pushes jobs nobody claimed and takes back expired leases.
 *
 * Invariant (durability): CompleteJob answers OK for a job only after the
 * level is committed in MySQL, and deletes the job in Redis only after that
 * commit.  A crash in between leaves the job "done", and a "done" job is
 * committed again (idempotent) at start-up or by the reaper's sweep.
 */
#include "tiering_int.h"

#include <nng/protocol/pipeline0/push.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_contents.h"
#include "tier_crash.h"
#include "tier_log.h"
#include "tier_methods.h"
#include "tier_time.h"

#define REPUSH_MS 1000    /* first re-push of a job nobody claimed */
#define REAP_EVERY_MS 150 /* reaper period */
#define SWEEP_EVERY_MS 2000
#define SWEEP_AGE_MS 5000 /* a "done" job this old lost its committer */
#define CHUNK 256         /* items per script call */
#define WORKER_ID_MAX 128

/* ------------------------------------------------------------ helpers */

static char *dup_s(tier_rpc_ctx *call, tier_jobs_str s)
{
    return s.p ? tier_rpc_strndup(call, s.p, s.len) : (char *)"";
}

/* also_dirs ('\n'-separated in Redis) into the repeated field. */
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
    j->status = dup_s(call, v->status);
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

static bool str_is(const redisReply *r, const char *s)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static int code_of(const redisReply *r)
{
    if (str_is(r, "OK") || str_is(r, "COMMITTED"))
        return TIER_OK;
    if (str_is(r, "NOT_FOUND"))
        return TIER_NOT_FOUND;
    if (str_is(r, "ALREADY_EXISTS"))
        return TIER_ALREADY_EXISTS;
    return TIER_FAILED_PRECONDITION;
}

static bool valid_worker(const char *w)
{
    size_t n = strlen(w);
    return n > 0 && n <= WORKER_ID_MAX;
}

/* A fixed-width decimal for argv (cids, counts, fences). */
typedef struct {
    char s[24];
} num_buf;

static const char *num(num_buf *b, long long v)
{
    snprintf(b->s, sizeof(b->s), "%lld", v);
    return b->s;
}

static const char *unum(num_buf *b, unsigned long long v)
{
    snprintf(b->s, sizeof(b->s), "%llu", v);
    return b->s;
}

static int redis_down(tier_rpc_ctx *call, int rv)
{
    return tier_rpc_set_message(call, rv, "Redis: %s",
                                rv == TIER_UNAVAILABLE ? "unavailable"
                                : rv == TIER_ABORTED   ? "this tierd is no longer the writer"
                                                       : "job script failed");
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

static void report_result(tl_report *r, const redisReply *item, tier_rpc_ctx *call)
{
    tier_jobs_view v;
    const redisReply *what = item->element[0];
    bool job = item->elements > 1 && tier_jobs_view_parse(item->element[1], &v);

    if (r->res == NULL)
        return;
    r->res->code = TIER__RPC__CODE__OK;
    if (!job) {
        r->res->status = (char *)"done";
        return;
    }
    (void)what;
    r->res->status = dup_s(call, v.status);
    r->res->worker_id = dup_s(call, v.worker_id);
}

static int report_chunk(tiering *t, tier_kv *kv, tl_report *r, size_t n, tier_rpc_ctx *call)
{
    level_table *lt = atomic_load(&t->levels);
    const char **argv = malloc((1 + 7 * n) * sizeof(*argv));
    num_buf *nb = malloc(2 * n * sizeof(*nb) + sizeof(*nb));
    redisReply *rep = NULL;
    int rv = TIER_RESOURCE_EXHAUSTED;

    if (argv == NULL || nb == NULL)
        goto out;
    argv[0] = num(&nb[2 * n], REPUSH_MS);
    for (size_t i = 0; i < n; i++) {
        const tl_level *cur = tiering_level(lt, r[i].c->level);
        const char **a = argv + 1 + 7 * i;
        a[0] = num(&nb[2 * i], r[i].c->cid);
        a[1] = num(&nb[2 * i + 1], r[i].count);
        a[2] = r[i].target->name;
        a[3] = r[i].c->level;
        a[4] = r[i].c->filename;
        a[5] = cur ? cur->path : "";
        a[6] = r[i].target->path;
    }
    TIER_CRASH_AT("report.before_script");
    rep = tier_jobs_eval(t->jobs, kv, TIER_JOBS_REPORT, tier_now_ms(), (int)(1 + 7 * n), argv, NULL,
                         &rv);
    if (rep == NULL)
        goto out;
    TIER_CRASH_AT("report.after_script");
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
        rv = TIER_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *item = rep->element[i];
        tier_jobs_view v;
        bool job = item->elements > 1 && tier_jobs_view_parse(item->element[1], &v);
        tiering_set(t, r[i].c, r[i].c->level, job);
        /* A retargeted job may have gone back from failed to update. */
        if (job && (str_is(item->element[0], "created") || str_is(item->element[0], "retargeted")))
            push_job(t, &v);
        report_result(&r[i], item, call);
    }
out:
    if (rep != NULL)
        freeReplyObject(rep);
    free(argv);
    free(nb);
    return rv;
}

int tiering_apply_reports(tiering *t, tl_report *r, size_t n, tier_rpc_ctx *call)
{
    tier_kv *kv = tier_pool_get(t->deps->kv);
    int rv = kv ? TIER_OK : TIER_UNAVAILABLE;

    for (size_t i = 0; i < n && rv == TIER_OK; i += CHUNK)
        rv = report_chunk(t, kv, r + i, n - i < CHUNK ? n - i : CHUNK, call);
    if (kv != NULL)
        tier_kv_pool_put(t->deps->kv, kv);
    if (rv != TIER_OK) {
        for (size_t i = 0; i < n; i++) {
            if (r[i].res == NULL || r[i].res->status[0] != '\0')
                continue;
            r[i].res->code = rv;
            r[i].res->message = rv == TIER_UNAVAILABLE ? (char *)"Redis: unavailable"
                                                       : (char *)"Redis: job script failed";
        }
    }
    return rv;
}

/* Runs one job script on a pooled connection, for a handler that needs
 * Redis for nothing else; NULL (message set on call, status in *rv) when
 * Redis is away or the script failed. */
static redisReply *eval_pooled(tiering *t, tier_rpc_ctx *call, tier_jobs_script s, int64_t now,
                               int argc, const char **argv, int *rv)
{
    tier_kv *kv = tier_pool_get(t->deps->kv);
    redisReply *r;

    if (kv == NULL) {
        *rv = redis_down(call, TIER_UNAVAILABLE);
        return NULL;
    }
    r = tier_jobs_eval(t->jobs, kv, s, now, argc, argv, NULL, rv);
    tier_kv_pool_put(t->deps->kv, kv);
    if (r == NULL)
        *rv = redis_down(call, *rv);
    return r;
}

/* ------------------------------------------------------------ ClaimJob */

static int h_claim(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__ClaimJobRequest *req = (const Tier__ClaimJobRequest *)in;
    Tier__ClaimJobReply *rep = (Tier__ClaimJobReply *)out;
    size_t n = req->n_cids;
    const char **argv = tier_rpc_alloc(call, (n + 2) * sizeof(*argv));
    num_buf *nb = tier_rpc_alloc(call, (n + 1) * sizeof(*nb));
    uint32_t lease = req->lease_ms ? req->lease_ms : t->deps->cfg->lease_ms;
    redisReply *r;
    int rv;

    if (!valid_worker(req->worker_id))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "worker_id: 1..128 bytes");
    if (argv == NULL || nb == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    rep->results = tier_rpc_alloc(call, (n + 1) * sizeof(*rep->results));
    rep->n_results = n;
    if (n == 0)
        return TIER_OK;
    argv[0] = req->worker_id;
    argv[1] = num(&nb[n], lease);
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = num(&nb[i], req->cids[i]);
    r = eval_pooled(t, call, TIER_JOBS_CLAIM, tier_now_ms(), (int)(n + 2), argv, &rv);
    if (r == NULL)
        return rv;
    TIER_CRASH_AT("claim.after_script");
    for (size_t i = 0; i < n && i < r->elements; i++) {
        const redisReply *item = r->element[i];
        Tier__ClaimResult *c = tier_rpc_alloc(call, sizeof(*c));
        tier_jobs_view v;
        tier__claim_result__init(c);
        c->cid = req->cids[i];
        int code = code_of(item->element[0]);
        c->code = code;
        c->message = code == TIER_OK               ? (char *)""
                     : code == TIER_NOT_FOUND      ? (char *)"no such job"
                     : code == TIER_ALREADY_EXISTS ? (char *)"claimed by another worker"
                                                   : (char *)"not waiting for a worker";
        if (code == TIER_OK && tier_jobs_view_parse(item->element[1], &v))
            c->job = job_new(call, &v);
        rep->results[i] = c;
    }
    freeReplyObject(r);
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

static int h_renew(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__RenewLeaseRequest *req = (const Tier__RenewLeaseRequest *)in;
    Tier__RenewLeaseReply *rep = (Tier__RenewLeaseReply *)out;
    size_t n = req->n_jobs;
    const char **argv = tier_rpc_alloc(call, (2 * n + 2) * sizeof(*argv));
    num_buf *nb = tier_rpc_alloc(call, (2 * n + 1) * sizeof(*nb));
    uint32_t lease = req->lease_ms ? req->lease_ms : t->deps->cfg->lease_ms;
    int64_t now = tier_now_ms();
    redisReply *r;
    int rv;

    if (!valid_worker(req->worker_id))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "worker_id: 1..128 bytes");
    if (argv == NULL || nb == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    rep->results = tier_rpc_alloc(call, (n + 1) * sizeof(*rep->results));
    rep->n_results = n;
    rep->lease_expires_ms = now + lease;
    if (n == 0)
        return TIER_OK;
    argv[0] = req->worker_id;
    argv[1] = num(&nb[2 * n], lease);
    for (size_t i = 0; i < n; i++) {
        argv[2 + 2 * i] = num(&nb[2 * i], req->jobs[i]->cid);
        argv[3 + 2 * i] = unum(&nb[2 * i + 1], req->jobs[i]->fence);
    }
    r = eval_pooled(t, call, TIER_JOBS_RENEW, now, (int)(2 * n + 2), argv, &rv);
    if (r == NULL)
        return rv;
    for (size_t i = 0; i < n; i++) {
        int code = i < r->elements ? code_of(r->element[i]) : TIER_INTERNAL;
        rep->results[i] = item_status(call, req->jobs[i]->cid, code,
                                      code == TIER_OK ? "" : "lease not held (check your status)");
    }
    freeReplyObject(r);
    return TIER_OK;
}

/* ------------------------------------------------------------ commit */

typedef struct {
    int64_t cid;
    const char *level;
} commit_item;

/* The batcher's function: one transaction for everything that arrived. */
static int commit_batch(void *arg, unsigned flusher, void **items, size_t n)
{
    (void)flusher; /* one flusher: commits stay in order */
    tiering *t = arg;
    int64_t *cids = malloc(n * sizeof(*cids));
    const char **levels = malloc(n * sizeof(*levels));
    tier_db *db = NULL;
    int rv = TIER_RESOURCE_EXHAUSTED;

    if (cids == NULL || levels == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        cids[i] = ((commit_item *)items[i])->cid;
        levels[i] = ((commit_item *)items[i])->level;
    }
    rv = TIER_UNAVAILABLE;
    if ((db = tier_pool_get(t->deps->db)) != NULL) {
        rv = tier_contents_commit(db, cids, levels, n);
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
} fin_item;

/* One FINISH item: the follow-up job of a pending report, planned here
 * because levels live in tierd (store/tier_jobs.c, FINISH). */
typedef struct {
    num_buf cid, fence, seen;
    const char *next, *src, *dst;
} fin_plan;

static void plan_finish(const level_table *lt, const fin_item *f, fin_plan *p, const char **a)
{
    const tl_level *tl = f->has_pending ? tiering_target(lt, f->pending) : NULL;
    const tl_level *cur = tiering_level(lt, f->level);

    a[0] = num(&p->cid, f->c->cid);
    a[1] = unum(&p->fence, f->fence);
    a[2] = f->has_pending ? num(&p->seen, f->pending) : "";
    /* The follow-up is only needed when the pending count belongs on
     * another level than the one just committed. */
    if (tl != NULL && cur != NULL && tl->name != f->level) {
        a[3] = tl->name, a[4] = cur->path, a[5] = tl->path;
    } else {
        a[3] = "", a[4] = "", a[5] = "";
    }
}

/* After the commit: delete the jobs (or turn them into their follow-ups)
 * and update memory.  Busy flags of the contents are held, so no report of
 * this tierd changes `pending` meanwhile; a PENDING answer (someone did)
 * is planned again, a bounded number of times. */
static int finish_committed(tiering *t, tier_kv *kv, fin_item *f, size_t n)
{
    const char **argv = malloc((1 + 6 * n) * sizeof(*argv));
    fin_plan *plan = malloc(n * sizeof(*plan) + 1);
    size_t *idx = malloc(n * sizeof(*idx) + 1);
    level_table *lt = atomic_load(&t->levels);
    num_buf repush;
    size_t m = n;
    int rv = TIER_RESOURCE_EXHAUSTED;

    if (argv == NULL || plan == NULL || idx == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    argv[0] = num(&repush, REPUSH_MS);
    for (int round = 0; m > 0 && round < 4; round++) {
        redisReply *r;
        size_t again = 0;
        for (size_t k = 0; k < m; k++)
            plan_finish(lt, &f[idx[k]], &plan[k], argv + 1 + 6 * k);
        r = tier_jobs_eval(t->jobs, kv, TIER_JOBS_FINISH, tier_now_ms(), (int)(1 + 6 * m), argv,
                           NULL, &rv);
        if (r == NULL)
            goto out;
        for (size_t k = 0; k < m && k < r->elements; k++) {
            const redisReply *it = r->element[k];
            fin_item *fi = &f[idx[k]];
            tier_jobs_view v;
            fi->code = TIER_OK; /* committed either way */
            if (str_is(it->element[0], "OK")) {
                tiering_set(t, fi->c, fi->level, false);
            } else if (str_is(it->element[0], "NEXT") && tier_jobs_view_parse(it->element[1], &v)) {
                tiering_set(t, fi->c, fi->level, true);
                push_job(t, &v);
            } else if (str_is(it->element[0], "PENDING")) {
                fi->has_pending = it->element[1]->len > 0;
                fi->pending = fi->has_pending ? strtoll(it->element[1]->str, NULL, 10) : 0;
                idx[again++] = idx[k];
            } /* GONE: finished already by someone else */
        }
        freeReplyObject(r);
        m = again;
    }
    rv = TIER_OK;
out:
    free(argv);
    free(plan);
    free(idx);
    return rv;
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
            ci[i] = (commit_item){f[i].c->cid, f[i].level};
            items[i] = &ci[i];
        }
        rv = tier_batcher_submit_many(t->batcher, items, n);
    }
    free(ci);
    free(items);
    if (rv != TIER_OK)
        return rv;
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

/* Marks jobs done (DONE script); fills f with those to commit; sets codes
 * of the others in rep.  Returns the number to commit, or -status. */
static long mark_done(tiering *t, tier_kv *kv, tier_rpc_ctx *call,
                      const Tier__CompleteJobRequest *req, content **cs, fin_item *f,
                      Tier__CompleteJobReply *rep, size_t *which)
{
    size_t n = req->n_jobs, m = 0, nf = 0;
    const char **argv = tier_rpc_alloc(call, (2 * n + 1) * sizeof(*argv));
    num_buf *nb = tier_rpc_alloc(call, (2 * n + 1) * sizeof(*nb));
    size_t *pos = tier_rpc_alloc(call, (n + 1) * sizeof(*pos));
    redisReply *r;
    int rv;

    argv[0] = req->worker_id;
    for (size_t i = 0; i < n; i++) {
        if (cs[i] == NULL)
            continue;
        argv[1 + 2 * m] = num(&nb[2 * m], req->jobs[i]->cid);
        argv[2 + 2 * m] = unum(&nb[2 * m + 1], req->jobs[i]->fence);
        pos[m++] = i;
    }
    if (m == 0)
        return 0;
    r = tier_jobs_eval(t->jobs, kv, TIER_JOBS_DONE, tier_now_ms(), (int)(1 + 2 * m), argv, NULL,
                       &rv);
    if (r == NULL)
        return -rv;
    for (size_t k = 0; k < m && k < r->elements; k++) {
        const redisReply *it = r->element[k];
        size_t i = pos[k];
        int code = code_of(it->element[0]);
        if (code != TIER_OK) {
            rep->results[i] = item_status(call, req->jobs[i]->cid, code, "check your status again");
        } else if (str_is(it->element[0], "COMMITTED")) {
            rep->results[i] = item_status(call, req->jobs[i]->cid, TIER_OK, "");
        } else {
            const redisReply *tg = it->element[1], *pd = it->element[3];
            f[nf] = (fin_item){cs[i],
                               req->jobs[i]->fence,
                               tiering_intern(t, tg->str, tg->len),
                               pd->len > 0,
                               pd->len > 0 ? strtoll(pd->str, NULL, 10) : 0,
                               TIER_UNAVAILABLE};
            which[nf++] = i;
        }
    }
    freeReplyObject(r);
    return (long)nf;
}

static int h_complete(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                      ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__CompleteJobRequest *req = (const Tier__CompleteJobRequest *)in;
    Tier__CompleteJobReply *rep = (Tier__CompleteJobReply *)out;
    size_t n = req->n_jobs, nk = 0;
    content **cs = tier_rpc_alloc(call, (n + 1) * sizeof(*cs));
    content **held = tier_rpc_alloc(call, (n + 1) * sizeof(*held));
    fin_item *f = tier_rpc_alloc(call, (n + 1) * sizeof(*f));
    size_t *which = tier_rpc_alloc(call, (n + 1) * sizeof(*which));
    tier_kv *kv;
    long nf;

    if (!valid_worker(req->worker_id))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "worker_id: 1..128 bytes");
    rep->results = tier_rpc_alloc(call, (n + 1) * sizeof(*rep->results));
    rep->n_results = n;
    for (size_t i = 0; i < n; i++) {
        if ((cs[i] = tiering_find(t, req->jobs[i]->cid)) != NULL)
            held[nk++] = cs[i];
        else
            rep->results[i] = item_status(call, req->jobs[i]->cid, TIER_FAILED_PRECONDITION,
                                          "check your status again");
    }
    if ((kv = tier_pool_get(t->deps->kv)) == NULL)
        return redis_down(call, TIER_UNAVAILABLE);
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
    tier_kv_pool_put(t->deps->kv, kv);
    if (nf < 0)
        return redis_down(call, (int)-nf);
    return TIER_OK;
}

/* ------------------------------------------------------------ FailJob */

static int h_fail(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__FailJobRequest *req = (const Tier__FailJobRequest *)in;
    content *c;
    num_buf nb[3];
    const char *argv[6];
    char reason[256];
    redisReply *r;
    tier_kv *kv;
    int rv;
    (void)out;

    if (!valid_worker(req->worker_id) || req->job == NULL)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "worker_id and job are required");
    if ((c = tiering_find(t, req->job->cid)) == NULL)
        return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION, "check your status again");
    snprintf(reason, sizeof(reason), "%s", req->reason);
    argv[0] = req->worker_id;
    argv[1] = num(&nb[0], req->job->cid);
    argv[2] = unum(&nb[1], req->job->fence);
    argv[3] = reason;
    argv[4] = req->permanent ? "1" : "0";
    argv[5] = num(&nb[2], req->retry_after_ms);
    if ((kv = tier_pool_get(t->deps->kv)) == NULL)
        return redis_down(call, TIER_UNAVAILABLE);
    tiering_acquire(t, &c, 1);
    r = tier_jobs_eval(t->jobs, kv, TIER_JOBS_FAIL, tier_now_ms(), 6, argv, NULL, &rv);
    if (r != NULL)
        TIER_CRASH_AT("fail.after_script");
    if (r != NULL && str_is(r->element[0], "OK") && !req->permanent && r->elements > 1 &&
        r->element[1]->len > 0) {
        /* A report came while the job ran: retarget (or cancel) it now. */
        int64_t count = strtoll(r->element[1]->str, NULL, 10);
        const tl_level *tl = tiering_target(atomic_load(&t->levels), count);
        tl_report rep = {c, count, tl, NULL};
        if (tl != NULL)
            tiering_apply_reports(t, &rep, 1, NULL);
    }
    tiering_release(t, &c, 1);
    tier_kv_pool_put(t->deps->kv, kv);
    if (r == NULL)
        return redis_down(call, rv);
    rv = code_of(r->element[0]);
    freeReplyObject(r);
    if (rv != TIER_OK)
        return tier_rpc_set_message(call, rv, "check your status again");
    return TIER_OK;
}

/* ------------------------------------------------------------ ListJobs / GetJob */

int tiering_get_job(tiering *t, tier_rpc_ctx *call, const Tier__GetJobRequest *req,
                    Tier__GetJobReply *rep)
{
    char key[128];
    const char *argv[2] = {"HGETALL", key};
    tier_kv *kv = tier_pool_get(t->deps->kv);
    tier_jobs_view v;
    redisReply *r;

    if (kv == NULL)
        return redis_down(call, TIER_UNAVAILABLE);
    tier_jobs_key(t->jobs, key, sizeof(key), req->cid);
    r = tier_kv_argv(kv, 2, argv, NULL);
    tier_kv_pool_put(t->deps->kv, kv);
    if (r == NULL)
        return redis_down(call, TIER_UNAVAILABLE);
    if (!tier_jobs_view_parse(r, &v)) {
        freeReplyObject(r);
        return tier_rpc_set_message(call, TIER_NOT_FOUND, "no job for content %lld",
                                    (long long)req->cid);
    }
    rep->job = job_new(call, &v);
    freeReplyObject(r);
    return TIER_OK;
}

static int h_get_job(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                     ProtobufCMessage *out)
{
    return tiering_get_job(arg, call, (const Tier__GetJobRequest *)in, (Tier__GetJobReply *)out);
}

/* Appends the cids of one index to ids (up to limit). */
static int index_cids(tiering *t, tier_kv *kv, const char *status, redisReply **keep, size_t limit)
{
    char key[128], lim[24];
    bool zset = strcmp(status, "update") == 0 || strcmp(status, "claimed") == 0;
    const char *zargv[4] = {"ZRANGE", key, "0", lim};
    const char *sargv[2] = {"SMEMBERS", key};

    tier_jobs_index(t->jobs, key, sizeof(key), status);
    if (limit == 0)
        snprintf(lim, sizeof(lim), "-1"); /* all */
    else
        snprintf(lim, sizeof(lim), "%zu", limit - 1);
    *keep = zset ? tier_kv_argv(kv, 4, zargv, NULL) : tier_kv_argv(kv, 2, sargv, NULL);
    return *keep ? TIER_OK : TIER_UNAVAILABLE;
}

static int list_jobs(tiering *t, tier_kv *kv, tier_rpc_ctx *call, const char *const *st, size_t ns,
                     size_t limit, Tier__ListJobsReply *rep)
{
    redisReply *idx[4] = {0};
    size_t n = 0;
    int rv = TIER_OK;

    rep->jobs = tier_rpc_alloc(call, (limit + 1) * sizeof(*rep->jobs));
    for (size_t s = 0; s < ns && rv == TIER_OK; s++)
        rv = index_cids(t, kv, st[s], &idx[s], limit);
    for (size_t s = 0; s < ns && rv == TIER_OK; s++) {
        for (size_t i = 0; i < idx[s]->elements && n < limit; i++) {
            char key[128];
            const char *argv[2] = {"HGETALL", key};
            redisReply *r;
            tier_jobs_view v;
            snprintf(key, sizeof(key), "%sjob:%.*s", tier_jobs_prefix(t->jobs),
                     (int)idx[s]->element[i]->len, idx[s]->element[i]->str);
            tier_kv_append(kv, 2, argv, NULL);
            if ((r = tier_kv_read(kv)) == NULL) {
                rv = TIER_UNAVAILABLE;
                break;
            }
            if (tier_jobs_view_parse(r, &v) && v.status.len == strlen(st[s]) &&
                memcmp(v.status.p, st[s], v.status.len) == 0)
                rep->jobs[n++] = job_new(call, &v);
            freeReplyObject(r);
        }
    }
    for (size_t s = 0; s < ns; s++)
        if (idx[s] != NULL)
            freeReplyObject(idx[s]);
    rep->n_jobs = n;
    return rv;
}

static int h_list_jobs(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                       ProtobufCMessage *out)
{
    static const char *const all[] = {"update", "claimed", "done", "failed"};
    tiering *t = arg;
    const Tier__ListJobsRequest *req = (const Tier__ListJobsRequest *)in;
    size_t limit = req->limit == 0 ? 1000 : req->limit > 100000 ? 100000 : req->limit;
    const char *const *st = all;
    size_t ns = 4;
    tier_kv *kv;
    int rv;

    if (req->status[0] != '\0') {
        for (ns = 0; ns < 4 && strcmp(all[ns], req->status) != 0; ns++)
            ;
        if (ns == 4)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                        "status: update, claimed, done, failed or empty");
        st = &all[ns];
        ns = 1;
    }
    if ((kv = tier_pool_get(t->deps->kv)) == NULL)
        return redis_down(call, TIER_UNAVAILABLE);
    rv = list_jobs(t, kv, call, st, ns, limit, (Tier__ListJobsReply *)out);
    tier_kv_pool_put(t->deps->kv, kv);
    return rv == TIER_OK ? TIER_OK : redis_down(call, rv);
}

/* ------------------------------------------------------------ recovery, reaper */

/* Commits "done" jobs at least min_age_ms old: at start-up (0: every one a
 * crash left behind) and from the reaper (a committer that gave up). */
static int recover_done(tiering *t, tier_kv *kv, int64_t min_age_ms)
{
    char key[128];
    const char *argv[2] = {"SMEMBERS", key};
    redisReply *ids;
    content **cs;
    fin_item *f;
    size_t nc = 0, nf = 0;
    int64_t now = tier_now_ms();
    int rv = TIER_OK;

    tier_jobs_index(t->jobs, key, sizeof(key), "done");
    if ((ids = tier_kv_argv(kv, 2, argv, NULL)) == NULL)
        return TIER_UNAVAILABLE;
    cs = calloc(ids->elements + 1, sizeof(*cs));
    f = calloc(ids->elements + 1, sizeof(*f));
    for (size_t i = 0; cs && f && i < ids->elements; i++) {
        content *c = tiering_find(t, strtoll(ids->element[i]->str, NULL, 10));
        if (c != NULL)
            cs[nc++] = c;
    }
    tiering_acquire(t, cs, nc);
    for (size_t i = 0; i < nc; i++) {
        const char *hv[2] = {"HGETALL", key};
        tier_jobs_view v;
        redisReply *r;
        if (i > 0 && cs[i] == cs[i - 1])
            continue;
        tier_jobs_key(t->jobs, key, sizeof(key), cs[i]->cid);
        if ((r = tier_kv_argv(kv, 2, hv, NULL)) == NULL)
            break;
        if (tier_jobs_view_parse(r, &v) && v.status.len == 4 &&
            memcmp(v.status.p, "done", 4) == 0 && now - v.updated_ms >= min_age_ms)
            f[nf++] =
                (fin_item){cs[i],         v.fence,   tiering_intern(t, v.target.p, v.target.len),
                           v.has_pending, v.pending, TIER_UNAVAILABLE};
        freeReplyObject(r);
    }
    if (nf > 0) {
        rv = commit_and_finish(t, kv, f, nf, true);
        tier_info("tiering: committed %zu job(s) left done (%s)", nf, tier_status_name(rv));
    }
    tiering_release(t, cs, nc);
    free(cs);
    free(f);
    freeReplyObject(ids);
    return rv;
}

/* has_job for every content named in an index. */
static int load_index(tiering *t, tier_kv *kv)
{
    static const char *const st[] = {"update", "claimed", "done", "failed"};
    for (size_t s = 0; s < 4; s++) {
        redisReply *r;
        if (index_cids(t, kv, st[s], &r, 0) != TIER_OK)
            return TIER_UNAVAILABLE;
        for (size_t i = 0; i < r->elements; i++) {
            content *c = tiering_find(t, strtoll(r->element[i]->str, NULL, 10));
            if (c != NULL)
                tiering_set(t, c, c->level, true);
        }
        freeReplyObject(r);
    }
    return TIER_OK;
}

static void reap_once(tiering *t, tier_kv *kv)
{
    const char *argv[1] = {"2000"};
    redisReply *r;
    int rv;

    r = tier_jobs_eval(t->jobs, kv, TIER_JOBS_REAP, tier_now_ms(), 1, argv, NULL, &rv);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        if (r != NULL)
            freeReplyObject(r);
        return;
    }
    if (r->element[0]->integer > 0) {
        TIER_CRASH_AT("reaper.after_expire");
        tier_info("tiering: %lld expired lease(s) back to update", r->element[0]->integer);
    }
    for (size_t i = 0; i < r->element[1]->elements; i++) {
        const redisReply *e = r->element[1]->element[i];
        tier_jobs_view v;
        memset(&v, 0, sizeof(v));
        v.cid = strtoll(e->element[0]->str, NULL, 10);
        v.fence = strtoull(e->element[1]->str, NULL, 10);
        v.filename = (tier_jobs_str){e->element[2]->str, e->element[2]->len};
        v.src_dir = (tier_jobs_str){e->element[3]->str, e->element[3]->len};
        v.dst_dir = (tier_jobs_str){e->element[4]->str, e->element[4]->len};
        v.target = (tier_jobs_str){e->element[5]->str, e->element[5]->len};
        push_job(t, &v);
    }
    freeReplyObject(r);
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
        if (tier_mono_ms() - last_sweep >= SWEEP_EVERY_MS) {
            recover_done(t, kv, SWEEP_AGE_MS);
            last_sweep = tier_mono_ms();
        }
        tier_kv_pool_put(t->deps->kv, kv);
    }
    return NULL;
}

/* ------------------------------------------------------------ module */

static const char *key_prefix(void)
{
    /* Tests and side-by-side deployments on one Redis use their own. */
    const char *p = getenv("TIER_REDIS_PREFIX");
    return p != NULL && *p != '\0' ? p : "tier:";
}

static int open_push(tiering *t, char *err, size_t errlen)
{
    int rv;
    if ((rv = nng_push0_open(&t->push)) != 0) {
        snprintf(err, errlen, "push socket: %s", nng_strerror(rv));
        return TIER_INTERNAL;
    }
    t->push_open = true;
    nng_setopt_int(t->push, NNG_OPT_SENDBUF, 8192);
    if ((rv = nng_listen(t->push, t->deps->cfg->push, NULL, 0)) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", t->deps->cfg->push, nng_strerror(rv));
        return TIER_UNAVAILABLE;
    }
    return TIER_OK;
}

int tiering_jobs_open(tiering *t, char *err, size_t errlen)
{
    tier_kv *kv = tier_pool_get(t->deps->kv);
    int rv;

    if (kv == NULL) {
        snprintf(err, errlen, "Redis: cannot connect");
        return TIER_UNAVAILABLE;
    }
    rv = tier_jobs_open(&t->jobs, kv, key_prefix(), err, errlen);
    if (rv == TIER_OK) /* before any script runs: a fenced tierd changes no job */
        tier_jobs_set_token(t->jobs, t->deps->writer_token);
    if (rv == TIER_OK && (t->batcher = tier_batcher_alloc(1024, 1, commit_batch, t)) == NULL)
        rv = TIER_RESOURCE_EXHAUSTED;
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
    };
    int rv;

    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if ((rv = tier_rpc_server_add(srv, m[i].name, m[i].req, m[i].rep, m[i].fn, t, 0)) !=
            TIER_OK)
            return rv;
    return TIER_OK;
}
