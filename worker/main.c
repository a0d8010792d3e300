/*
 * main.c -- tier-worker: moves content files between level directories for
 * tierd (seed 000's worker).
 *
 *   tier-worker --tierd URL --pull URL [--id NAME] [--moves N] [--lease-ms MS]
 *               [--dirs DIR,...]
 *
 * Threads and the life of a job:
 *
 *   receiver   pull0 socket dialled to tierd's push address.  Each MoveJob is
 *              only a hint: its cid goes into the table of jobs this worker
 *              knows (a cid already there is dropped: one local attempt per
 *              job) and onto the run queue.
 *   movers     N threads.  Each takes up to 64 queued entries, claims the
 *              unclaimed ones in one ClaimJob call, and moves the files with
 *              tier_move_file_any() using the *claimed* job's fields (its
 *              src_dir, also_dirs and dst_dir: a retargeted job's file may
 *              be wherever an earlier claim left it).  Results go
 *              to the completion queue (moved) or to FailJob (failed).  When
 *              a move turns out to be long (tier_move calls the progress
 *              callback after a second), the thread hands the rest of its
 *              batch back to the queue, so a big cross-filesystem copy never
 *              holds up small renames that other threads can do.
 *   completers two threads that send everything moved so far in one
 *              CompleteJob call (OK = the level is durable in MySQL); while
 *              one waits, the next batch accumulates for the other.
 *   keeper     renews the leases of every claimed job still in the worker
 *              every lease/3 in one RenewLease call; a lease reported lost
 *              (or run out by our own clock) makes the progress callback
 *              abort the copy, and the job is dropped: tierd gives it to
 *              someone else, whose tier_move finishes whatever we left.
 *
 * Everything the worker does to a file is safe to repeat or to abandon at
 * any instruction (tier_move.h), so the worker itself keeps no state on disk:
 * a job whose worker died comes back from tierd after its lease.
 *
 * tierd away (restart): every call is retried with backoff (50 ms doubling to
 * 1 s) on UNAVAILABLE / DEADLINE_EXCEEDED; the worker never exits for it.  A
 * ClaimJob retried after a lost reply can find jobs it claimed itself
 * "ALREADY_EXISTS": those are looked up with GetJob and adopted.
 *
 * SIGINT / SIGTERM: stop taking work, abort copies in progress (no
 * temporary is left), give unstarted claimed jobs back (FailJob, transient,
 * retry at once), send pending completions (at most 10 s), exit 0.  A second
 * signal exits at once; whatever was claimed comes back after its lease.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_log.h"
#include "tier_move.h"
#include "tier_status.h"
#include "tier_time.h"

#define MAX_BATCH 64           /* jobs a mover claims at once */
#define COMPLETE_MAX 1024      /* jobs per CompleteJob call */
#define RENEW_MAX 1000         /* jobs per RenewLease call */
#define NCOMPLETERS 2          /* CompleteJob calls in flight */
#define RPC_TIMEOUT_MS 5000    /* per call */
#define BACKOFF_MIN_MS 50      /* retry of a call while tierd is away ... */
#define BACKOFF_MAX_MS 1000    /* ... doubling up to this */
#define FLUSH_TIMEOUT_MS 10000 /* completions still sent after a stop signal */
#define NBUCKETS 65536

/* ------------------------------------------------------------ state */

/* A job this worker knows: queued (a hint, or claimed and handed back),
 * being moved, or moved and waiting for its completion. */
typedef struct job {
    int64_t cid;
    bool claimed;        /* we hold a lease; the fields below are valid */
    bool lost;           /* tierd says the lease is gone */
    uint64_t fence;      /* of our claim */
    int64_t lease_until; /* monotonic ms: our conservative end of the lease */
    uint32_t attempts;   /* claims so far, ours included */
    bool dirs_unsynced;  /* renamed; its directories are fsynced by the completer */
    char *filename, *src_dir, *dst_dir, *target, *from;
    char **also_dirs; /* other directories the file may be in (Job.also_dirs) */
    size_t n_also;
    struct job *qnext; /* run queue or completion queue */
    struct job *hnext; /* table chain */
} job;

typedef struct {
    const char *tierd_url;
    const char *pull_url;
    char id[129];
    unsigned moves;
    uint32_t lease_ms;
    char *dirs;
} config;

static config cfg;
static tier_client *client;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t run_cv = PTHREAD_COND_INITIALIZER;  /* run queue / stop */
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER; /* completion queue / stop */
static job *table[NBUCKETS];
static job *qhead, *qtail;    /* run queue */
static job *chead, *ctail;    /* completion queue */
static bool movers_done;      /* completers may leave once their queue is empty */
static atomic_bool stopping;  /* stop signal received */
static atomic_bool hard_stop; /* give up on calls in progress */
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;

/* Directories whose stale temporaries were cleaned already. */
typedef struct seen_dir {
    struct seen_dir *next;
    char path[];
} seen_dir;
static seen_dir *seen_dirs;
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;

/* Counters for the exit line. */
static atomic_uint_fast64_t n_moved, n_completed, n_failed, n_lost, n_claim_refused;

/* ------------------------------------------------------------ helpers */

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool retryable(int rv)
{
    return rv == TIER_UNAVAILABLE || rv == TIER_DEADLINE_EXCEEDED;
}

/* One step of the retry loop of a call that failed with rv: logs, sleeps,
 * doubles *backoff.  Returns false when the caller should give up. */
static bool retry_wait(const char *what, int rv, const tier_error *err, int *tries,
                       int64_t *backoff, bool give_up_on_stop)
{
    if (!retryable(rv))
        return false;
    if (atomic_load(&hard_stop) || (give_up_on_stop && atomic_load(&stopping)))
        return false;
    if (*tries == 0 || *tries % 20 == 0)
        tier_warn("%s: %s (%s); retrying", what, tier_status_name(rv), err->message);
    (*tries)++;
    sleep_ms(*backoff);
    *backoff = *backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff * 2;
    return true;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s != NULL ? s : "");
    if (p == NULL) {
        tier_error("out of memory");
        abort();
    }
    return p;
}

/* Frees the fields copied from a claimed Job (take_job). */
static void job_fields_free(job *j)
{
    free(j->filename);
    free(j->src_dir);
    free(j->dst_dir);
    free(j->target);
    free(j->from);
    for (size_t i = 0; i < j->n_also; i++)
        free(j->also_dirs[i]);
    free(j->also_dirs);
    j->also_dirs = NULL;
    j->n_also = 0;
}

static void job_free(job *j)
{
    if (j == NULL)
        return;
    job_fields_free(j);
    free(j);
}

/* The table (mu held). */
static size_t bucket(int64_t cid)
{
    uint64_t h = (uint64_t)cid * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 48) % NBUCKETS;
}

static job *tab_find(int64_t cid)
{
    for (job *j = table[bucket(cid)]; j != NULL; j = j->hnext)
        if (j->cid == cid)
            return j;
    return NULL;
}

static void tab_add(job *j)
{
    size_t b = bucket(j->cid);
    j->hnext = table[b];
    table[b] = j;
}

static void tab_del(job *j)
{
    for (job **pp = &table[bucket(j->cid)]; *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == j) {
            *pp = j->hnext;
            return;
        }
    }
}

/* Forgets a job (not on any queue). */
static void forget(job *j)
{
    pthread_mutex_lock(&mu);
    tab_del(j);
    pthread_mutex_unlock(&mu);
    job_free(j);
}

static void enqueue_run_locked(job *j, bool front)
{
    j->qnext = NULL;
    if (qhead == NULL) {
        qhead = qtail = j;
    } else if (front) {
        j->qnext = qhead;
        qhead = j;
    } else {
        qtail->qnext = j;
        qtail = j;
    }
}

static void enqueue_done(job *j)
{
    pthread_mutex_lock(&mu);
    j->qnext = NULL;
    if (chead == NULL)
        chead = ctail = j;
    else
        ctail = ctail->qnext = j;
    pthread_cond_signal(&done_cv);
    pthread_mutex_unlock(&mu);
}

/* Whether we may still act on j: lease neither reported lost nor run out by
 * our clock (measured from before the call that granted it). */
static bool lease_ok(job *j)
{
    bool ok;
    pthread_mutex_lock(&mu);
    ok = j->claimed && !j->lost && tier_mono_ms() < j->lease_until;
    pthread_mutex_unlock(&mu);
    return ok;
}

/* Cleans stale temporaries of dir once per run of the worker.  A temporary
 * of a live attempt is rewritten (ctime) continuously, so anything untouched
 * for two leases belongs to a dead attempt. */
static void clean_dir_once(const char *dir)
{
    seen_dir *d;
    int rv;

    if (dir == NULL || dir[0] != '/')
        return;
    pthread_mutex_lock(&seen_mu);
    for (d = seen_dirs; d != NULL; d = d->next)
        if (strcmp(d->path, dir) == 0)
            break;
    if (d == NULL && (d = malloc(sizeof(*d) + strlen(dir) + 1)) != NULL) {
        strcpy(d->path, dir);
        d->next = seen_dirs;
        seen_dirs = d;
        d = NULL; /* new: clean it */
    } else {
        d = (seen_dir *)1; /* seen (or out of memory): skip */
    }
    pthread_mutex_unlock(&seen_mu);
    if (d != NULL)
        return;
    rv = tier_move_cleanup_dir(dir, 2 * (int64_t)cfg.lease_ms);
    if (rv != TIER_OK)
        tier_warn("cleaning temporaries of %s: %s", dir, tier_status_name(rv));
    else
        tier_debug("cleaned stale temporaries of %s", dir);
}

/* ------------------------------------------------------------ receiver */

static void *receiver_main(void *arg)
{
    nng_socket s;
    int rv;
    (void)arg;

    if ((rv = nng_pull0_open(&s)) != 0) {
        tier_error("pull socket: %s", nng_strerror(rv));
        exit(1);
    }
    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 64 * 1024);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 200);
    nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 50);
    nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 1000);
    nng_socket_set_int(s, NNG_OPT_RECVBUF, 8192);
    /* Non-blocking: tierd may come up later; nng keeps redialling. */
    if ((rv = nng_dial(s, cfg.pull_url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
        tier_error("cannot dial %s: %s", cfg.pull_url, nng_strerror(rv));
        exit(2);
    }
    tier_info("pulling move jobs from %s", cfg.pull_url);
    while (!atomic_load(&stopping)) {
        int64_t cids[256];
        size_t n = 0;
        int flags = 0;

        /* Wait for one hint, then take whatever else has arrived. */
        while (n < 256) {
            nng_msg *m;
            Tier__MoveJob *mj;
            if ((rv = nng_recvmsg(s, &m, flags)) != 0)
                break;
            flags = NNG_FLAG_NONBLOCK;
            mj = tier__move_job__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
            nng_msg_free(m);
            if (mj == NULL) {
                tier_warn("dropped a malformed MoveJob");
                continue;
            }
            if (mj->cid > 0)
                cids[n++] = mj->cid;
            tier__move_job__free_unpacked(mj, NULL);
        }
        if (n == 0) {
            if (rv != NNG_ETIMEDOUT && rv != 0)
                sleep_ms(10);
            continue;
        }
        pthread_mutex_lock(&mu);
        for (size_t i = 0; i < n; i++) {
            job *j;
            if (tab_find(cids[i]) != NULL)
                continue; /* queued or in progress here already */
            if ((j = calloc(1, sizeof(*j))) == NULL)
                break;
            j->cid = cids[i];
            tab_add(j);
            enqueue_run_locked(j, false);
        }
        pthread_cond_broadcast(&run_cv);
        pthread_mutex_unlock(&mu);
    }
    nng_close(s);
    return NULL;
}

/* ------------------------------------------------------------ claims */

static void take_job(job *j, const Tier__Job *src, int64_t t0)
{
    pthread_mutex_lock(&mu);
    j->claimed = true;
    j->lost = false;
    j->fence = src->fence;
    j->attempts = src->attempts;
    j->lease_until = t0 + cfg.lease_ms;
    pthread_mutex_unlock(&mu);
    job_fields_free(j);
    j->filename = xstrdup(src->filename);
    j->src_dir = xstrdup(src->src_dir);
    j->dst_dir = xstrdup(src->dst_dir);
    j->target = xstrdup(src->target);
    j->from = xstrdup(src->db_level);
    /* More than tier_move_file_any takes is refused by it (permanent). */
    if (src->n_also_dirs > 0) {
        if ((j->also_dirs = calloc(src->n_also_dirs, sizeof(*j->also_dirs))) == NULL) {
            tier_error("out of memory");
            abort();
        }
        for (size_t i = 0; i < src->n_also_dirs; i++)
            j->also_dirs[i] = xstrdup(src->also_dirs[i]);
        j->n_also = src->n_also_dirs;
    }
}

/* After a retried ClaimJob, "ALREADY_EXISTS" may be our own claim whose
 * reply was lost: adopt it if GetJob says we hold it. */
static bool adopt(job *j, int64_t t0)
{
    Tier__GetJobRequest req = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply *rep = NULL;
    tier_error err;
    bool ok = false;

    req.cid = j->cid;
    if (tier_get_job(client, &req, &rep, &err) != TIER_OK)
        return false;
    if (rep->job != NULL && strcmp(rep->job->status, "claimed") == 0 &&
        strcmp(rep->job->worker_id, cfg.id) == 0) {
        take_job(j, rep->job, t0);
        ok = true;
        tier_info("cid %lld: adopted our own claim (fence %llu) after a lost reply",
                  (long long)j->cid, (unsigned long long)j->fence);
    }
    tier_free(rep);
    return ok;
}

/* Claims the unclaimed entries of b[0..n); drops the refused ones.
 * Returns the new n (claimed jobs only, order kept). */
static size_t claim_batch(job **b, size_t n)
{
    Tier__ClaimJobRequest req = TIER__CLAIM_JOB_REQUEST__INIT;
    Tier__ClaimJobReply *rep = NULL;
    int64_t cids[MAX_BATCH];
    size_t pos[MAX_BATCH]; /* batch position of each cid asked for */
    bool keep[MAX_BATCH];
    size_t na = 0, out = 0;
    int64_t backoff = BACKOFF_MIN_MS, t0 = 0;
    int tries = 0, rv;
    tier_error err;

    for (size_t i = 0; i < n; i++) {
        keep[i] = true;
        if (!b[i]->claimed) {
            pos[na] = i;
            cids[na++] = b[i]->cid;
        }
    }
    if (na == 0)
        return n;
    req.worker_id = cfg.id;
    req.cids = cids;
    req.n_cids = na;
    req.lease_ms = cfg.lease_ms;
    do {
        t0 = tier_mono_ms();
        rv = tier_claim_job(client, &req, &rep, &err);
    } while (rv != TIER_OK && retry_wait("ClaimJob", rv, &err, &tries, &backoff, true));
    for (size_t a = 0; a < na; a++) {
        job *j = b[pos[a]];
        const Tier__ClaimResult *r = rv == TIER_OK && a < rep->n_results ? rep->results[a] : NULL;
        if (r != NULL && (int)r->code == TIER_OK && r->job != NULL) {
            take_job(j, r->job, t0);
            continue;
        }
        if (r != NULL && (int)r->code == TIER_ALREADY_EXISTS && tries > 0 && adopt(j, t0))
            continue;
        if (r != NULL) {
            /* The seed's "status is not update and worker_id is not null". */
            tier_debug("cid %lld: not claimed: %s", (long long)j->cid,
                       r->message[0] ? r->message : tier_status_name(r->code));
            atomic_fetch_add(&n_claim_refused, 1);
        }
        keep[pos[a]] = false;
        forget(j);
    }
    if (rv != TIER_OK && !atomic_load(&stopping))
        tier_warn("ClaimJob: %s (%s); dropped %zu hint(s), tierd pushes them again",
                  tier_status_name(rv), err.message, na);
    if (rv == TIER_OK)
        tier_free(rep);
    for (size_t i = 0; i < n; i++)
        if (keep[i])
            b[out++] = b[i];
    return out;
}

/* ------------------------------------------------------------ fail / release */

static void fail_job(job *j, const char *reason, bool permanent, uint32_t retry_after_ms)
{
    Tier__FailJobRequest req = TIER__FAIL_JOB_REQUEST__INIT;
    Tier__JobRef ref = TIER__JOB_REF__INIT;
    Tier__FailJobReply *rep = NULL;
    int64_t backoff = BACKOFF_MIN_MS;
    int tries = 0, rv;
    tier_error err;

    ref.cid = j->cid;
    ref.fence = j->fence;
    req.worker_id = cfg.id;
    req.job = &ref;
    req.reason = (char *)reason;
    req.permanent = permanent;
    req.retry_after_ms = retry_after_ms;
    do {
        rv = tier_fail_job(client, &req, &rep, &err);
        /* Past our lease the call is pointless: tierd takes the job back. */
    } while (rv != TIER_OK && lease_ok(j) &&
             retry_wait("FailJob", rv, &err, &tries, &backoff, false));
    tier_free(rep);
    if (rv == TIER_FAILED_PRECONDITION && tries > 0)
        rv = TIER_OK; /* a retry after a lost reply: done already */
    if (rv != TIER_OK)
        tier_warn("cid %lld: FailJob: %s (%s); the job comes back after its lease",
                  (long long)j->cid, tier_status_name(rv), err.message);
    forget(j);
}

/* Gives a claimed job back unstarted (stopping): due again at once. */
static void release_job(job *j)
{
    if (j->claimed && lease_ok(j))
        fail_job(j, "released unstarted: worker stopping", false, 1);
    else
        forget(j);
}

/* 200 ms x 2^(attempts-1), at most 30 s. */
static uint32_t backoff_ms(uint32_t attempts)
{
    uint32_t a = attempts > 0 ? attempts - 1 : 0;
    uint64_t d = 200ULL << (a > 10 ? 10 : a);
    return d > 30000 ? 30000 : (uint32_t)d;
}

/* ------------------------------------------------------------ movers */

typedef struct {
    job *j;
    job **batch;
    size_t next; /* first unstarted entry of batch */
    size_t *n;   /* batch length (cut when the rest is handed back) */
    bool handed;
} move_ctx;

/* tier_move's progress callback: a long move is under way. */
static int on_progress(void *arg)
{
    move_ctx *c = arg;

    if (!c->handed && c->next < *c->n) {
        /* Let other threads do the rest of the batch meanwhile. */
        pthread_mutex_lock(&mu);
        for (size_t i = *c->n; i > c->next; i--)
            enqueue_run_locked(c->batch[i - 1], true);
        pthread_cond_broadcast(&run_cv);
        pthread_mutex_unlock(&mu);
        tier_debug("long move of %s: handed %zu job(s) back to the queue", c->j->filename,
                   *c->n - c->next);
        *c->n = c->next;
        c->handed = true;
    }
    if (atomic_load(&stopping))
        return 1;
    return lease_ok(c->j) ? 0 : 1;
}

static void move_one(job *j, move_ctx *ctx)
{
    /* Directory fsyncs of plain renames are done once per CompleteJob
     * batch by the completer (sync_batch_dirs), not twice per file. */
    tier_move_spec spec = {j->src_dir, j->dst_dir, j->filename, 1};
    tier_move_result res;
    int rc;

    if (!lease_ok(j)) {
        tier_warn("%s: lease lost before the move (cid %lld); dropped", j->filename,
                  (long long)j->cid);
        atomic_fetch_add(&n_lost, 1);
        forget(j);
        return;
    }
    clean_dir_once(j->dst_dir);
    rc = tier_move_file_any(&spec, (const char *const *)j->also_dirs, j->n_also, on_progress, ctx,
                            &res);
    if (rc == TIER_OK) {
        j->dirs_unsynced = res.dirs_unsynced != 0;
        atomic_fetch_add(&n_moved, 1);
        if (strstr(res.reason, "already") != NULL || strstr(res.reason, "earlier") != NULL)
            tier_info("%s moves %s to %s (%s)", j->filename, j->from, j->target, res.reason);
        else
            tier_info("%s moves %s to %s%s", j->filename, j->from, j->target,
                      res.crossed_fs ? " (copied across filesystems)" : "");
        enqueue_done(j);
        return;
    }
    if (rc == TIER_ABORTED) {
        if (atomic_load(&stopping)) {
            tier_info("%s: move abandoned (stopping); the job comes back", j->filename);
            release_job(j);
        } else {
            tier_warn("%s: move stopped, lease lost (cid %lld); dropped", j->filename,
                      (long long)j->cid);
            atomic_fetch_add(&n_lost, 1);
            forget(j);
        }
        return;
    }
    atomic_fetch_add(&n_failed, 1);
    if (res.permanent) {
        tier_warn("%s (cid %lld, %s: job parked as failed)", res.reason, (long long)j->cid,
                  tier_status_name(rc));
        fail_job(j, res.reason, true, 0);
    } else {
        uint32_t d = backoff_ms(j->attempts);
        tier_warn("%s (cid %lld, %s: retry in %u ms)", res.reason, (long long)j->cid,
                  tier_status_name(rc), d);
        fail_job(j, res.reason, false, d);
    }
}

static void *mover_main(void *arg)
{
    job *b[MAX_BATCH];
    (void)arg;

    for (;;) {
        size_t n = 0;

        pthread_mutex_lock(&mu);
        while (qhead == NULL && !atomic_load(&stopping))
            pthread_cond_wait(&run_cv, &mu);
        if (atomic_load(&stopping)) {
            pthread_mutex_unlock(&mu);
            break;
        }
        while (qhead != NULL && n < MAX_BATCH) {
            b[n++] = qhead;
            qhead = qhead->qnext;
        }
        if (qhead == NULL)
            qtail = NULL;
        else
            pthread_cond_signal(&run_cv); /* more for another thread */
        pthread_mutex_unlock(&mu);

        n = claim_batch(b, n);
        move_ctx ctx = {NULL, b, 0, &n, false};
        for (size_t i = 0; i < n; i++) {
            if (atomic_load(&stopping)) {
                release_job(b[i]);
                continue;
            }
            ctx.j = b[i];
            ctx.next = i + 1;
            move_one(b[i], &ctx);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ completers */

/* Makes the renames of a batch durable before they are reported: each
 * distinct directory once.  Jobs whose directory cannot be synced are
 * dropped (they come back after their lease, and the retry, finding the
 * file in place, syncs on its own).  Returns the jobs kept, compacted. */
static size_t sync_batch_dirs(job **js, size_t n)
{
    const char *done[2 * COMPLETE_MAX], *bad[2 * COMPLETE_MAX];
    size_t ndone = 0, nbad = 0, kept = 0;

    for (size_t i = 0; i < n; i++) {
        const char *dirs[2] = {js[i]->dst_dir, js[i]->src_dir}; /* destination first */
        bool ok = true;
        for (int d = 0; js[i]->dirs_unsynced && d < 2; d++) {
            bool seen = false;
            for (size_t k = 0; k < ndone && !seen; k++)
                seen = strcmp(done[k], dirs[d]) == 0;
            for (size_t k = 0; k < nbad && ok; k++)
                ok = strcmp(bad[k], dirs[d]) != 0;
            if (seen || !ok)
                continue;
            char why[256];
            if (tier_move_sync_dir(dirs[d], why, sizeof(why)) == TIER_OK) {
                done[ndone++] = dirs[d];
            } else {
                tier_warn("%s", why);
                bad[nbad++] = dirs[d];
                ok = false;
            }
        }
        if (ok) {
            js[i]->dirs_unsynced = false;
            js[kept++] = js[i];
        } else {
            forget(js[i]);
        }
    }
    return kept;
}

static void *completer_main(void *arg)
{
    Tier__JobRef refs[COMPLETE_MAX], *refp[COMPLETE_MAX];
    job *js[COMPLETE_MAX];
    (void)arg;

    for (;;) {
        Tier__CompleteJobRequest req = TIER__COMPLETE_JOB_REQUEST__INIT;
        Tier__CompleteJobReply *rep = NULL;
        int64_t backoff = BACKOFF_MIN_MS;
        int tries = 0, rv;
        tier_error err;
        size_t n = 0;

        pthread_mutex_lock(&mu);
        while (chead == NULL && !movers_done)
            pthread_cond_wait(&done_cv, &mu);
        if (chead == NULL) {
            pthread_mutex_unlock(&mu);
            break;
        }
        while (chead != NULL && n < COMPLETE_MAX) {
            js[n++] = chead;
            chead = chead->qnext;
        }
        if (chead == NULL)
            ctail = NULL;
        else
            pthread_cond_signal(&done_cv);
        pthread_mutex_unlock(&mu);

        if ((n = sync_batch_dirs(js, n)) == 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            tier__job_ref__init(&refs[i]);
            refs[i].cid = js[i]->cid;
            refs[i].fence = js[i]->fence;
            refp[i] = &refs[i];
        }
        req.worker_id = cfg.id;
        req.jobs = refp;
        req.n_jobs = n;
        do {
            rv = tier_complete_job(client, &req, &rep, &err);
        } while (rv != TIER_OK && retry_wait("CompleteJob", rv, &err, &tries, &backoff, false));
        if (rv != TIER_OK) {
            tier_warn("CompleteJob: %s (%s): %zu job(s) left to tierd (they come back after "
                      "their lease and finish as \"already at destination\")",
                      tier_status_name(rv), err.message, n);
            for (size_t i = 0; i < n; i++)
                forget(js[i]);
            continue;
        }
        bool again = false;
        for (size_t i = 0; i < n; i++) {
            const Tier__ItemStatus *s = i < rep->n_results ? rep->results[i] : NULL;
            int code = s ? s->code : TIER_INTERNAL;
            if (code == TIER_OK) {
                atomic_fetch_add(&n_completed, 1);
                tier_debug("cid %lld: %s committed at %s", (long long)js[i]->cid, js[i]->filename,
                           js[i]->target);
                forget(js[i]);
            } else if (retryable(code) && !atomic_load(&hard_stop)) {
                enqueue_done(js[i]); /* MySQL or Redis busy: again */
                again = true;
            } else {
                /* FAILED_PRECONDITION: the lease was lost; whoever holds the
                 * job now finds the file in place and completes it. */
                tier_warn("cid %lld: CompleteJob: %s (%s); dropped", (long long)js[i]->cid,
                          tier_status_name(code), s ? s->message : "no result");
                atomic_fetch_add(&n_lost, 1);
                forget(js[i]);
            }
        }
        tier_free(rep);
        if (again)
            sleep_ms(100);
    }
    return NULL;
}

/* ------------------------------------------------------------ lease keeper */

static void *keeper_main(void *arg)
{
    int64_t period = cfg.lease_ms / 3;
    Tier__JobRef *refs = NULL, **refp = NULL;
    size_t cap = 0;
    (void)arg;

    if (period < 50)
        period = 50;
    while (!atomic_load(&stopping)) {
        size_t n = 0;

        for (int64_t slept = 0; slept < period && !atomic_load(&stopping); slept += 50)
            sleep_ms(50);
        if (atomic_load(&stopping))
            break;
        pthread_mutex_lock(&mu);
        for (size_t b = 0; b < NBUCKETS; b++) {
            for (job *j = table[b]; j != NULL; j = j->hnext) {
                if (!j->claimed || j->lost)
                    continue;
                if (n == cap) {
                    size_t nc = cap ? 2 * cap : 256;
                    Tier__JobRef *r = realloc(refs, nc * sizeof(*r));
                    if (r == NULL)
                        break;
                    refs = r;
                    cap = nc;
                }
                tier__job_ref__init(&refs[n]);
                refs[n].cid = j->cid;
                refs[n].fence = j->fence;
                n++;
            }
        }
        pthread_mutex_unlock(&mu);
        if (n == 0)
            continue;
        free(refp);
        if ((refp = malloc(n * sizeof(*refp))) == NULL)
            continue;
        for (size_t i = 0; i < n; i++)
            refp[i] = &refs[i];
        for (size_t off = 0; off < n && !atomic_load(&stopping); off += RENEW_MAX) {
            Tier__RenewLeaseRequest req = TIER__RENEW_LEASE_REQUEST__INIT;
            Tier__RenewLeaseReply *rep = NULL;
            tier_error err;
            int64_t t0 = tier_mono_ms();
            int rv;

            req.worker_id = cfg.id;
            req.jobs = refp + off;
            req.n_jobs = n - off < RENEW_MAX ? n - off : RENEW_MAX;
            req.lease_ms = cfg.lease_ms;
            /* No retry loop: the next round comes soon, and our own clock
             * stops the work if the lease runs out meanwhile. */
            if ((rv = tier_renew_lease(client, &req, &rep, &err)) != TIER_OK) {
                tier_warn("RenewLease: %s (%s)", tier_status_name(rv), err.message);
                break;
            }
            pthread_mutex_lock(&mu);
            for (size_t i = 0; i < rep->n_results && i < req.n_jobs; i++) {
                const Tier__JobRef *r = req.jobs[i];
                job *j = tab_find(r->cid);
                if (j == NULL || !j->claimed || j->fence != r->fence)
                    continue;
                if ((int)rep->results[i]->code == TIER_OK)
                    j->lease_until = t0 + cfg.lease_ms;
                else if ((int)rep->results[i]->code == TIER_FAILED_PRECONDITION)
                    j->lost = true; /* or done: then nobody looks at it again */
            }
            pthread_mutex_unlock(&mu);
            tier_free(rep);
        }
    }
    free(refs);
    free(refp);
    return NULL;
}

/* ------------------------------------------------------------ start, stop */

static void usage(FILE *f)
{
    fprintf(f, "usage: tier-worker --tierd URL --pull URL [options]\n"
               "\n"
               "Moves content files between level directories for tierd: pulls move jobs,\n"
               "claims them, moves the files (crash-safe), reports them done.\n"
               "\n"
               "  --tierd URL       tierd's rpc address       (TIER_URL)\n"
               "  --pull URL        tierd's push address      (TIER_PULL)\n"
               "  --id NAME         worker id                 (TIER_WORKER_ID, hostname-pid)\n"
               "  --moves N         moves at once             (TIER_WORKER_MOVES, 4)\n"
               "  --lease-ms MS     lease asked for per job   (TIER_WORKER_LEASE_MS, 30000)\n"
               "  --dirs DIR,...    level directories whose stale temporaries are removed\n"
               "                    at start (others: when first met in a job)\n"
               "  --help\n"
               "\n"
               "Logs go to stderr; TIER_LOG=debug|info|warn|error sets the level.\n"
               "SIGINT/SIGTERM stop it cleanly; unfinished jobs go back to tierd.\n");
}

static int parse(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tierd", required_argument, NULL, 't'},    {"pull", required_argument, NULL, 'p'},
        {"id", required_argument, NULL, 'i'},       {"moves", required_argument, NULL, 'm'},
        {"lease-ms", required_argument, NULL, 'l'}, {"dirs", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *id = getenv("TIER_WORKER_ID"), *moves = getenv("TIER_WORKER_MOVES");
    const char *lease = getenv("TIER_WORKER_LEASE_MS");
    char *end;
    int c;

    cfg.tierd_url = getenv("TIER_URL");
    cfg.pull_url = getenv("TIER_PULL");
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            cfg.tierd_url = optarg;
            break;
        case 'p':
            cfg.pull_url = optarg;
            break;
        case 'i':
            id = optarg;
            break;
        case 'm':
            moves = optarg;
            break;
        case 'l':
            lease = optarg;
            break;
        case 'd':
            cfg.dirs = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc || cfg.tierd_url == NULL || cfg.pull_url == NULL || !*cfg.tierd_url ||
        !*cfg.pull_url) {
        fprintf(stderr, "tier-worker: --tierd and --pull (or TIER_URL, TIER_PULL) are required\n");
        usage(stderr);
        return -1;
    }
    cfg.moves = 4;
    if (moves != NULL && *moves) {
        long v = strtol(moves, &end, 10);
        if (*end != '\0' || v < 1 || v > 256) {
            fprintf(stderr, "tier-worker: --moves: 1..256\n");
            return -1;
        }
        cfg.moves = (unsigned)v;
    }
    cfg.lease_ms = 30000;
    if (lease != NULL && *lease) {
        long v = strtol(lease, &end, 10);
        if (*end != '\0' || v < 200 || v > 3600000) {
            fprintf(stderr, "tier-worker: --lease-ms: 200..3600000\n");
            return -1;
        }
        cfg.lease_ms = (uint32_t)v;
    }
    if (id != NULL && *id) {
        if (strlen(id) > 128) {
            fprintf(stderr, "tier-worker: --id: at most 128 bytes\n");
            return -1;
        }
        snprintf(cfg.id, sizeof(cfg.id), "%s", id);
    } else {
        char host[64] = "worker";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(cfg.id, sizeof(cfg.id), "%s-%d", host, (int)getpid());
    }
    return 0;
}

/* Handles the stop signals: the first stops cleanly, a second at once. */
static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig;

    sigwait(set, &sig);
    tier_info("%s: stopping (a second signal exits at once)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_mutex_lock(&stop_mu);
    atomic_store(&stopping, true);
    pthread_cond_broadcast(&stop_cv);
    pthread_mutex_unlock(&stop_mu);
    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&run_cv);
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&mu);
    sigwait(set, &sig);
    tier_warn("second signal: exiting now; claimed jobs come back after their lease");
    _exit(1);
}

/* Sets hard_stop if the completers have not finished within the flush
 * timeout after the stop. */
static void *flush_timer_main(void *arg)
{
    (void)arg;
    sleep_ms(FLUSH_TIMEOUT_MS);
    atomic_store(&hard_stop, true);
    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&mu);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t recv_t, keeper_t, sig_t, timer_t_;
    pthread_t *movers, completers[NCOMPLETERS];
    sigset_t set;
    int rv;

    tier_log_init("tier-worker", TIER_LOG_INFO);
    if ((rv = parse(argc, argv)) != 0)
        return rv > 0 ? 0 : 2;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg.dirs != NULL) {
        char *copy = xstrdup(cfg.dirs), *save = NULL;
        for (char *d = strtok_r(copy, ",", &save); d != NULL; d = strtok_r(NULL, ",", &save)) {
            if (d[0] != '/') {
                tier_error("--dirs: %s is not an absolute path", d);
                return 2;
            }
            clean_dir_once(d);
        }
        free(copy);
    }
    if ((rv = tier_client_open(&client, cfg.tierd_url)) != TIER_OK) {
        tier_error("cannot use tierd address %s: %s", cfg.tierd_url, tier_status_name(rv));
        return 2;
    }
    tier_client_set_timeout(client, RPC_TIMEOUT_MS);
    tier_info("worker %s: tierd %s, %u moves at once, lease %u ms", cfg.id, cfg.tierd_url,
              cfg.moves, cfg.lease_ms);

    if ((movers = calloc(cfg.moves, sizeof(*movers))) == NULL)
        return 1;
    if (pthread_create(&sig_t, NULL, signal_main, &set) != 0 ||
        pthread_create(&recv_t, NULL, receiver_main, NULL) != 0 ||
        pthread_create(&keeper_t, NULL, keeper_main, NULL) != 0) {
        tier_error("cannot start threads");
        return 1;
    }
    for (unsigned i = 0; i < cfg.moves; i++)
        if (pthread_create(&movers[i], NULL, mover_main, NULL) != 0) {
            tier_error("cannot start threads");
            return 1;
        }
    for (unsigned i = 0; i < NCOMPLETERS; i++)
        if (pthread_create(&completers[i], NULL, completer_main, NULL) != 0) {
            tier_error("cannot start threads");
            return 1;
        }

    pthread_mutex_lock(&stop_mu);
    while (!atomic_load(&stopping))
        pthread_cond_wait(&stop_cv, &stop_mu);
    pthread_mutex_unlock(&stop_mu);

    pthread_join(recv_t, NULL);
    for (unsigned i = 0; i < cfg.moves; i++)
        pthread_join(movers[i], NULL);
    pthread_create(&timer_t_, NULL, flush_timer_main, NULL);
    pthread_detach(timer_t_);
    /* Jobs still queued: hints are forgotten, claimed ones given back. */
    for (;;) {
        job *j;
        pthread_mutex_lock(&mu);
        if ((j = qhead) != NULL && (qhead = j->qnext) == NULL)
            qtail = NULL;
        pthread_mutex_unlock(&mu);
        if (j == NULL)
            break;
        release_job(j);
    }
    pthread_mutex_lock(&mu);
    movers_done = true;
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&mu);
    for (unsigned i = 0; i < NCOMPLETERS; i++)
        pthread_join(completers[i], NULL);
    pthread_join(keeper_t, NULL);
    tier_client_close(client);
    tier_info("stopped: %llu moved, %llu completed, %llu failed, %llu lost leases, %llu claims "
              "refused",
              (unsigned long long)atomic_load(&n_moved),
              (unsigned long long)atomic_load(&n_completed),
              (unsigned long long)atomic_load(&n_failed), (unsigned long long)atomic_load(&n_lost),
              (unsigned long long)atomic_load(&n_claim_refused));
    free(movers);
    return 0;
}
