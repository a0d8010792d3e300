/*
 * tier_worker.c -- the tier-worker engine (tier_worker.h): moves content
 * files between level directories for tierd (seed 000's worker).  main.c
 * wraps it into the tier-worker program; tests run it in-process.
 *
 * Threads and the life of a job:
 *
 *   receivers  one per lane (a coordinator, below): a pull0 socket dialled
 *              to its push address.  Each MoveJob is only a hint: its
 *              (lane, cid) goes into the table of jobs this worker knows (one
 *              already there is dropped: one local attempt per job) and onto
 *              the run queue -- unless a directory it names lies under no
 *              --mount (then it is dropped, and tierd pushes it again, to
 *              another worker in turn).
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
 *   completers two threads (four with several lanes) that send everything
 *              moved so far in one CompleteJob call (OK = the level is
 *              durable in MySQL); while one waits, the next batch
 *              accumulates for the other.
 *   keepers    one per lane: renews the leases of every claimed job of its
 *              lane still in the worker every lease/3 in one RenewLease
 *              call; a lease reported lost (or run out by our own clock)
 *              makes the progress callback abort the copy, and the job is
 *              dropped: tierd gives it to someone else, whose tier_move
 *              finishes whatever we left.
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
 * Stopping (tier_worker_stop; tier-worker does it on SIGINT / SIGTERM):
 * stop taking work, abort copies in progress (no temporary is left), give
 * unstarted claimed jobs back (FailJob, transient, retry at once), send
 * pending completions (at most 10 s), then tier_worker_run returns.  A hard
 * stop (tier-worker: a second signal, which exits at once) gives up on
 * calls too; whatever was claimed comes back after its lease.
 *
 * Several tierd addresses (a hot standby listens only while it is the
 * writer): the rpc client and the pull socket dial each of them; requests
 * and pushes flow over whichever is connected.
 *
 * Lanes (several coordinators, docs/CLUSTER.md "Workers"): each lane is one
 * coordinator with its own pull socket (in its receiver) and rpc clients.
 * A job remembers its lane, and every call about it goes to that lane; the
 * movers, the run queue and the completers are shared, so --moves bounds
 * the moves of all lanes together.  A mover's ClaimJob batch and a
 * completer's CompleteJob batch hold jobs of one lane only.  With --cluster
 * the topology thread reads Topology from the seed (--tierd) every few
 * seconds, and sooner after a call failed for want of a coordinator: it
 * makes one lane per shard and, when a shard's owner has moved, points the
 * lane at the new URLs (new clients; the receiver re-dials).  Jobs in
 * flight then finish at the new owner, which serves the same shard keys.
 *
 * Locking: w->mu guards the job table, both queues and the claim fields of
 * the jobs (functions that need it assert so); a job's other fields belong
 * to the one thread that holds it (mover, then completer).  stop_mu only
 * pairs stop_cv with the stop flags.  A lane's mu guards its URLs and
 * clients (swapped by the topology thread; the clients they replace are
 * kept until close, since a call may still be using one); lanes_mu orders
 * the adding of lanes, which never go before close.
 *
 * A coordinator that is away (several lanes): its hints are dropped after
 * CLAIM_PATIENCE_MS of failed claims, its completions retried only while
 * the lease lasts and by one completer at a time, its renewals (by its own
 * keeper) and beats not retried, so the other lanes' jobs wait seconds at
 * most.
 */
#include "tier_worker.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_crash.h"
#include "tier_log.h"
#include "tier_metrics.h"
#include "tier_move.h"
#include "tier_rpc_net.h"
#include "tier_status.h"
#include "tier_time.h"

#define MAX_BATCH 64           /* jobs a mover claims at once */
#define COMPLETE_MAX 1024      /* jobs per CompleteJob call */
#define RENEW_MAX 1000         /* jobs per RenewLease call */
#define NCOMPLETERS 2          /* CompleteJob calls in flight (one coordinator) */
#define NCOMPLETERS_LANES 4    /* ... with several: a dead one holds only one */
#define CLAIM_PATIENCE_MS 3000 /* several coordinators: a dead one's hints are dropped */
#define RPC_TIMEOUT_MS 5000    /* per call */
#define BACKOFF_MIN_MS 50      /* retry of a call while tierd is away ... */
#define BACKOFF_MAX_MS 1000    /* ... doubling up to this */
#define FLUSH_TIMEOUT_MS 10000 /* completions still sent after a soft stop */
#define NBUCKETS 65536
#define TOPO_EVERY_MS 3000 /* --cluster: topology re-read ... */
#define TOPO_MIN_MS 500    /* ... and at most this often after a failed call */
#define RETIRE_MS 60000    /* a replaced client is closed after this */
#define PEER_URL_MAX 255   /* a URL from the topology: printable, 1..255 bytes */

/* ------------------------------------------------------------ state */

/* A job this worker knows: queued (a hint, or claimed and handed back),
 * being moved, or moved and waiting for its completion. */
struct lane;

typedef struct job {
    struct lane *lane; /* the coordinator it came from: every call about it goes there */
    int64_t cid;
    bool claimed;        /* we hold a lease; the fields below are valid */
    bool lost;           /* tierd says the lease is gone */
    uint64_t fence;      /* of our claim */
    int64_t lease_until; /* monotonic ms: our conservative end of the lease */
    uint32_t attempts;   /* claims so far, ours included */
    bool dirs_unsynced;  /* renamed; its directories are fsynced by the completer */
    int64_t size;        /* moved: the file's bytes at dst_dir, -1 if stat failed */
    char *filename, *src_dir, *dst_dir, *target, *from;
    char **also_dirs; /* other directories the file may be in (Job.also_dirs) */
    size_t n_also;
    struct job *qnext; /* run queue or completion queue */
    struct job *hnext; /* table chain */
} job;

typedef struct {
    char *tierd_url; /* one or more, comma-separated; with cluster: the seed */
    char *pull_url;  /* one or more, comma-separated; NULL = none */
    tier_worker_lane lanes[TIER_WORKER_LANES_MAX]; /* explicit ones, strings owned */
    size_t n_lanes;
    bool cluster;
    char *mounts[TIER_WORKER_MOUNTS_MAX]; /* without trailing '/' ("/" stays) */
    size_t n_mounts;
    char id[129];
    unsigned moves;
    uint32_t lease_ms;
    char *dirs;
    char *token, *tls_ca_file, *tls_server_name; /* NULL = none */
} config;

/* Directories whose stale temporaries were cleaned already. */
typedef struct seen_dir {
    struct seen_dir *next;
    char path[];
} seen_dir;

/* A client made before its lane moved: kept while a call may still be
 * using it (RETIRE_MS, far beyond any call's timeout), then closed at the
 * next move of the lane or at close. */
typedef struct retired {
    struct retired *next;
    tier_client *c;
    int64_t since; /* monotonic ms */
} retired;

/* One coordinator.  Its URLs change only under --cluster, when the
 * topology names a new owner of its shard (lane_set_urls). */
typedef struct lane {
    struct tier_worker *w;
    unsigned idx;
    pthread_mutex_t mu;       /* the URLs, the clients, old */
    char *rpc_url, *push_url; /* "" while none (a shard with no writer) */
    tier_client *client;      /* NULL while no rpc_url */
    /* Heartbeats go on a client of their own with a short timeout: a beat
     * to a tierd that is down must not hold up a stop for 10 s. */
    tier_client *beat_client;
    retired *old;
    atomic_uint gen;  /* bumped when the URLs change: the receiver re-dials */
    atomic_int stuck; /* completers retrying a call to it: others pass it by */
    pthread_t recv, keeper;
    bool recv_ok, keeper_ok; /* its threads run (joined in shut_down) */
    nng_socket pull;         /* dialled at open (explicit lanes), for the receiver */
    bool pull_ok;            /* pull is open and not yet the receiver's */
} lane;

struct tier_worker {
    config cfg;
    /* The lanes; lanes[0..n_lanes) never move or go before close.  Added at
     * open, or by the topology thread (lanes_mu; n_lanes is read without). */
    lane *lanes[TIER_WORKER_LANES_MAX];
    atomic_size_t n_lanes;
    pthread_mutex_t lanes_mu;
    tier_client *seed;     /* --cluster: where the topology is read */
    unsigned topo_shards;  /* --cluster: shards of the first topology (0: none yet) */
    atomic_bool topo_wake; /* a call found no coordinator: read the topology soon */
    atomic_bool running;   /* threads started: a new lane starts its receiver */
    atomic_bool fell_back; /* --cluster against a tierd without Topology */

    /* mu guards the table, both queues, movers_done and the claim fields of
     * every job (claimed, lost, fence, lease_until, attempts).  mu_owner /
     * mu_held let functions that need it assert they hold it. */
    pthread_mutex_t mu;
    pthread_t mu_owner;
    bool mu_held;
    pthread_cond_t run_cv;  /* run queue / stop */
    pthread_cond_t done_cv; /* completion queue / stop */
    job *table[NBUCKETS];
    job *qhead, *qtail; /* run queue */
    job *chead, *ctail; /* completion queue */
    bool movers_done;   /* completers may leave once their queue is empty */

    atomic_bool stopping;  /* stop asked for */
    atomic_bool hard_stop; /* give up on calls in progress */
    atomic_int denied;     /* UNAUTHENTICATED / PERMISSION_DENIED seen: we stop */
    atomic_bool ran;       /* tier_worker_run was called */
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv; /* stopping, hard_stop or finished changed */
    bool finished;          /* run is over (stop_mu): the flush timer leaves */

    seen_dir *seen_dirs;
    pthread_mutex_t seen_mu;

    /* Counters for the exit line and the heartbeat. */
    atomic_uint_fast64_t n_moved, n_completed, n_failed, n_lost, n_claim_refused;
    atomic_uint_fast64_t n_bytes; /* bytes of the files moved */
    atomic_uint n_in_flight;      /* moves running now */
    int64_t started_ms;
    int64_t beat_ms; /* heartbeat period, as tierd last asked */

    /* /metrics (tier_worker_metrics); the families may be NULL. */
    tier_metrics *metrics;
    tier_metric *m_moves, *m_bytes, *m_failures, *m_lost, *m_refused, *m_in_flight;
};

/* ------------------------------------------------------------ the lock */

static void lock(tier_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->mu_owner = pthread_self();
    w->mu_held = true;
}

static void unlock(tier_worker *w)
{
    assert(w->mu_held && pthread_equal(w->mu_owner, pthread_self()));
    w->mu_held = false;
    pthread_mutex_unlock(&w->mu);
}

/* pthread_cond_wait on w->mu, keeping the owner record true. */
static void wait_on(tier_worker *w, pthread_cond_t *cv)
{
    assert(w->mu_held && pthread_equal(w->mu_owner, pthread_self()));
    w->mu_held = false;
    pthread_cond_wait(cv, &w->mu);
    w->mu_owner = pthread_self();
    w->mu_held = true;
}

/* For functions whose callers must hold w->mu.  Only the holder reads
 * mu_held/mu_owner here, and only the holder writes them. */
static void assert_locked(tier_worker *w)
{
    assert(w->mu_held && pthread_equal(w->mu_owner, pthread_self()));
    (void)w;
}

/* ------------------------------------------------------------ helpers */

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#define BEAT_TIMEOUT_MS 1500 /* per heartbeat call */

/* Size of dir/name, -1 when it cannot be read: the bytes metric, and the
 * size CompleteJob reports so that tierd knows it without a stat. */
static int64_t file_size(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;

    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        stat(path, &st) != 0)
        return -1;
    return (int64_t)st.st_size;
}

static bool retryable(int rv)
{
    return rv == TIER_UNAVAILABLE || rv == TIER_DEADLINE_EXCEEDED;
}

/* One step of the retry loop of a call that failed with rv: logs, sleeps,
 * doubles *backoff.  Returns false when the caller should give up. */
static bool retry_wait(tier_worker *w, const char *what, int rv, const tier_error *err, int *tries,
                       int64_t *backoff, bool give_up_on_stop)
{
    /* A token tierd refuses (revoked, or not a worker's) will not start
     * working by retrying: say so once and stop, so a supervisor shows the
     * failure instead of a worker that idles forever.  Claimed jobs come
     * back after their lease. */
    int none = 0;
    if ((rv == TIER_UNAUTHENTICATED || rv == TIER_PERMISSION_DENIED) &&
        atomic_compare_exchange_strong(&w->denied, &none, rv)) {
        tier_error("%s: %s (%s): tierd refuses this worker's token; stopping", what,
                   tier_status_name(rv), err->message);
        tier_worker_stop(w, true);
    }
    if (!retryable(rv))
        return false;
    atomic_store(&w->topo_wake, true); /* --cluster: has the coordinator moved? */
    if (atomic_load(&w->hard_stop) || (give_up_on_stop && atomic_load(&w->stopping)))
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

/* The table (mu held: asserted). */
static size_t bucket(int64_t cid)
{
    uint64_t h = (uint64_t)cid * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 48) % NBUCKETS;
}

/* Keyed by (lane, cid): two unrelated coordinators may use the same cid. */
static job *tab_find(tier_worker *w, const lane *l, int64_t cid)
{
    assert_locked(w);
    for (job *j = w->table[bucket(cid)]; j != NULL; j = j->hnext)
        if (j->cid == cid && j->lane == l)
            return j;
    return NULL;
}

static void tab_add(tier_worker *w, job *j)
{
    assert_locked(w);
    size_t b = bucket(j->cid);
    j->hnext = w->table[b];
    w->table[b] = j;
}

static void tab_del(tier_worker *w, job *j)
{
    assert_locked(w);
    for (job **pp = &w->table[bucket(j->cid)]; *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == j) {
            *pp = j->hnext;
            return;
        }
    }
}

/* Forgets a job (not on any queue). */
static void forget(tier_worker *w, job *j)
{
    lock(w);
    tab_del(w, j);
    unlock(w);
    job_free(j);
}

static void enqueue_run_locked(tier_worker *w, job *j, bool front)
{
    assert_locked(w);
    j->qnext = NULL;
    if (w->qhead == NULL) {
        w->qhead = w->qtail = j;
    } else if (front) {
        j->qnext = w->qhead;
        w->qhead = j;
    } else {
        w->qtail->qnext = j;
        w->qtail = j;
    }
}

static void enqueue_done(tier_worker *w, job *j)
{
    lock(w);
    j->qnext = NULL;
    if (w->chead == NULL)
        w->chead = w->ctail = j;
    else
        w->ctail = w->ctail->qnext = j;
    pthread_cond_signal(&w->done_cv);
    unlock(w);
}

/* Whether we may still act on j: lease neither reported lost nor run out by
 * our clock (measured from before the call that granted it). */
static bool lease_ok(tier_worker *w, job *j)
{
    bool ok;
    lock(w);
    ok = j->claimed && !j->lost && tier_mono_ms() < j->lease_until;
    unlock(w);
    return ok;
}

/* Cleans stale temporaries of dir once per run of the worker.  A temporary
 * of a live attempt is rewritten (ctime) continuously, so anything untouched
 * for two leases belongs to a dead attempt. */
static void clean_dir_once(tier_worker *w, const char *dir)
{
    seen_dir *d;
    int rv;

    if (dir == NULL || dir[0] != '/')
        return;
    pthread_mutex_lock(&w->seen_mu);
    for (d = w->seen_dirs; d != NULL; d = d->next)
        if (strcmp(d->path, dir) == 0)
            break;
    if (d == NULL && (d = malloc(sizeof(*d) + strlen(dir) + 1)) != NULL) {
        strcpy(d->path, dir);
        d->next = w->seen_dirs;
        w->seen_dirs = d;
        d = NULL; /* new: clean it */
    } else {
        d = (seen_dir *)1; /* seen (or out of memory): skip */
    }
    pthread_mutex_unlock(&w->seen_mu);
    if (d != NULL)
        return;
    rv = tier_move_cleanup_dir(dir, 2 * (int64_t)w->cfg.lease_ms);
    if (rv != TIER_OK)
        tier_warn("cleaning temporaries of %s: %s", dir, tier_status_name(rv));
    else
        tier_debug("cleaned stale temporaries of %s", dir);
}

/* ------------------------------------------------------------ lanes, mounts */

/* l's rpc client (beat: the heartbeat one) now, or NULL with err filled
 * (UNAVAILABLE) while the lane has no coordinator. */
static tier_client *lane_rpc(lane *l, bool beat, tier_error *err)
{
    tier_client *c;

    pthread_mutex_lock(&l->mu);
    c = beat ? l->beat_client : l->client;
    pthread_mutex_unlock(&l->mu);
    if (c == NULL) {
        err->code = TIER_UNAVAILABLE;
        snprintf(err->message, sizeof(err->message), "lane %u has no coordinator", l->idx);
    }
    return c;
}

/* The current push URL(s) of l, malloc'ed ("" = none). */
static char *lane_push_url(lane *l)
{
    char *u;

    pthread_mutex_lock(&l->mu);
    u = xstrdup(l->push_url);
    pthread_mutex_unlock(&l->mu);
    return u;
}

static size_t lane_count(tier_worker *w)
{
    return atomic_load(&w->n_lanes);
}

/* Several coordinators: whether a call to one may be given up on while it
 * is away (the others' work must go on). */
static bool several(tier_worker *w)
{
    return w->cfg.cluster || lane_count(w) > 1;
}

/* Whether dir lies in mount (a path without trailing '/', or "/"), by
 * name: symbolic links are not followed. */
static bool under(const char *dir, const char *mount)
{
    size_t n = strlen(mount);

    if (strcmp(mount, "/") == 0)
        return true;
    return strncmp(dir, mount, n) == 0 && (dir[n] == '\0' || dir[n] == '/');
}

/* Whether this host can reach dir (--mount; none: every directory).  A
 * relative name or one with a ".." component is reachable nowhere: it could
 * leave the mount it names. */
static bool reachable(const tier_worker *w, const char *dir)
{
    size_t n;

    if (w->cfg.n_mounts == 0)
        return true;
    if (dir == NULL || dir[0] != '/' || strstr(dir, "/../") != NULL)
        return false;
    n = strlen(dir);
    if (n >= 3 && strcmp(dir + n - 3, "/..") == 0)
        return false;
    for (size_t i = 0; i < w->cfg.n_mounts; i++)
        if (under(dir, w->cfg.mounts[i]))
            return true;
    return false;
}

/* Whether every directory a job names is reachable here. */
static bool job_reachable(const tier_worker *w, const char *src, const char *dst, char *const *also,
                          size_t n_also)
{
    if (!reachable(w, src) || !reachable(w, dst))
        return false;
    for (size_t i = 0; i < n_also; i++)
        if (!reachable(w, also[i]))
            return false;
    return true;
}

/* ------------------------------------------------------------ receivers */

static int dial_one(void *arg, const char *url);
static int each_item(const char *s, int (*fn)(void *arg, const char *item), void *arg);

typedef struct {
    lane *l;
    nng_socket s;
} dial_arg;

/* Opens a pull socket dialled to every push address of l; false when l
 * has none (yet) or the socket cannot be made. */
static bool open_pull(lane *l, nng_socket *s)
{
    char *urls = lane_push_url(l);
    int rv = TIER_UNAVAILABLE;

    if (urls[0] != '\0' && (rv = nng_pull0_open(s)) != 0) {
        tier_error("lane %u: pull socket: %s", l->idx, nng_strerror(rv));
        rv = TIER_RESOURCE_EXHAUSTED;
    } else if (urls[0] != '\0') {
        nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, 64 * 1024);
        nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 200);
        nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 50);
        nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 1000);
        nng_socket_set_int(*s, NNG_OPT_RECVBUF, 8192);
        dial_arg da = {l, *s};
        if ((rv = each_item(urls, dial_one, &da)) != TIER_OK)
            nng_close(*s);
        else
            tier_info("lane %u: pulling move jobs from %s", l->idx, urls);
    }
    free(urls);
    return rv == TIER_OK;
}

/* One hint: whether this worker takes it (its directories are reachable). */
static bool want_hint(tier_worker *w, const lane *l, const Tier__MoveJob *mj)
{
    if (mj->cid <= 0)
        return false;
    if (job_reachable(w, mj->src_dir, mj->dst_dir, NULL, 0))
        return true;
    tier_debug("lane %u: cid %lld (%s -> %s) is not under any --mount; left for another worker",
               l->idx, (long long)mj->cid, mj->src_dir, mj->dst_dir);
    return false;
}

/* Waits for one hint on s, then takes whatever else has arrived: their
 * cids into cids (at most 256).  Returns how many; *rv the last nng error. */
static size_t recv_hints(tier_worker *w, lane *l, nng_socket s, int64_t *cids, int *rv)
{
    size_t n = 0;
    int flags = 0;

    while (n < 256) {
        nng_msg *m;
        Tier__MoveJob *mj;
        if ((*rv = nng_recvmsg(s, &m, flags)) != 0)
            break;
        flags = NNG_FLAG_NONBLOCK;
        mj = tier__move_job__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
        nng_msg_free(m);
        if (mj == NULL) {
            tier_warn("lane %u: dropped a malformed MoveJob", l->idx);
            continue;
        }
        if (want_hint(w, l, mj))
            cids[n++] = mj->cid;
        tier__move_job__free_unpacked(mj, NULL);
    }
    return n;
}

/* Queues the hints cids[0..n) of lane l that are not known yet. */
static void queue_hints(tier_worker *w, lane *l, const int64_t *cids, size_t n)
{
    lock(w);
    for (size_t i = 0; i < n; i++) {
        job *j;
        if (tab_find(w, l, cids[i]) != NULL)
            continue; /* queued or in progress here already */
        if ((j = calloc(1, sizeof(*j))) == NULL)
            break;
        j->cid = cids[i];
        j->lane = l;
        tab_add(w, j);
        enqueue_run_locked(w, j, false);
    }
    pthread_cond_broadcast(&w->run_cv);
    unlock(w);
}

/* A lane's receiver.  Its socket is its own: when the lane's URLs change
 * (gen), it closes it and dials the new push address. */
static void *receiver_main(void *arg)
{
    lane *l = arg;
    tier_worker *w = l->w;
    nng_socket s = l->pull;
    bool open = l->pull_ok; /* dialled at open: bad addresses were refused there */
    unsigned gen = atomic_load(&l->gen) + (open ? 0 : 1); /* differs: open at once */

    l->pull_ok = false;

    while (!atomic_load(&w->stopping)) {
        int64_t cids[256];
        int rv = 0;
        size_t n;

        if (atomic_load(&l->gen) != gen) {
            gen = atomic_load(&l->gen);
            if (open)
                nng_close(s);
            open = open_pull(l, &s);
        }
        if (!open) {
            sleep_ms(200);
            continue;
        }
        if ((n = recv_hints(w, l, s, cids, &rv)) == 0) {
            if (rv != NNG_ETIMEDOUT && rv != 0)
                sleep_ms(10);
            continue;
        }
        queue_hints(w, l, cids, n);
    }
    /* No more pushes to us: tierd's push goes to the other workers. */
    if (open)
        nng_close(s);
    return NULL;
}

/* ------------------------------------------------------------ claims */

static void take_job(tier_worker *w, job *j, const Tier__Job *src, int64_t t0)
{
    lock(w);
    j->claimed = true;
    j->lost = false;
    j->fence = src->fence;
    j->attempts = src->attempts;
    j->lease_until = t0 + w->cfg.lease_ms;
    unlock(w);
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
static bool adopt(tier_worker *w, job *j, int64_t t0)
{
    Tier__GetJobRequest req = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply *rep = NULL;
    tier_error err;
    bool ok = false;

    tier_client *c = lane_rpc(j->lane, false, &err);

    req.cid = j->cid;
    if (c == NULL || tier_get_job(c, &req, &rep, &err) != TIER_OK)
        return false;
    if (rep->job != NULL && strcmp(rep->job->status, "claimed") == 0 &&
        strcmp(rep->job->worker_id, w->cfg.id) == 0) {
        take_job(w, j, rep->job, t0);
        ok = true;
        tier_info("cid %lld: adopted our own claim (fence %llu) after a lost reply",
                  (long long)j->cid, (unsigned long long)j->fence);
    }
    tier_free(rep);
    return ok;
}

static void fail_job(tier_worker *w, job *j, const char *reason, bool permanent,
                     uint32_t retry_after_ms);

/* After the claim: a job whose claimed directories (a retargeted job's may
 * differ from its hint's) this host cannot reach goes back at once. */
static bool keep_claimed(tier_worker *w, job *j)
{
    if (job_reachable(w, j->src_dir, j->dst_dir, j->also_dirs, j->n_also))
        return true;
    tier_info("cid %lld: %s, %s or another of its directories is not under any --mount; "
              "given back for another worker",
              (long long)j->cid, j->src_dir, j->dst_dir);
    fail_job(w, j, "not under this worker's mounts: given back", false, 1);
    return false;
}

/* Claims the unclaimed entries of b[0..n) (all of one lane) at that lane;
 * drops the refused ones.  Returns the new n (claimed jobs only, order
 * kept). */
static size_t claim_batch(tier_worker *w, job **b, size_t n)
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
    req.worker_id = w->cfg.id;
    req.cids = cids;
    req.n_cids = na;
    req.lease_ms = w->cfg.lease_ms;
    int64_t start = tier_mono_ms();
    do {
        tier_client *c = lane_rpc(b[0]->lane, false, &err);
        t0 = tier_mono_ms();
        rv = c != NULL ? tier_claim_job(c, &req, &rep, &err) : TIER_UNAVAILABLE;
        /* Several coordinators: hints of one that is away are dropped soon
         * (it pushes them again), the others' jobs must not wait. */
    } while (rv != TIER_OK && !(several(w) && tier_mono_ms() - start > CLAIM_PATIENCE_MS) &&
             retry_wait(w, "ClaimJob", rv, &err, &tries, &backoff, true));
    if (rv == TIER_OK)
        TIER_CRASH_AT("worker.after_claim"); /* claimed in tierd; no file touched */
    for (size_t a = 0; a < na; a++) {
        job *j = b[pos[a]];
        const Tier__ClaimResult *r = rv == TIER_OK && a < rep->n_results ? rep->results[a] : NULL;
        if (r != NULL && (int)r->code == TIER_OK && r->job != NULL) {
            take_job(w, j, r->job, t0);
            keep[pos[a]] = keep_claimed(w, j);
            continue;
        }
        if (r != NULL && (int)r->code == TIER_ALREADY_EXISTS && tries > 0 && adopt(w, j, t0)) {
            keep[pos[a]] = keep_claimed(w, j);
            continue;
        }
        if (r != NULL) {
            /* The seed's "status is not update and worker_id is not null". */
            tier_debug("cid %lld: not claimed: %s", (long long)j->cid,
                       r->message[0] ? r->message : tier_status_name(r->code));
            tier_metric_add(w->m_refused, 1);
            atomic_fetch_add(&w->n_claim_refused, 1);
        }
        keep[pos[a]] = false;
        forget(w, j);
    }
    if (rv != TIER_OK && !atomic_load(&w->stopping))
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

static void fail_job(tier_worker *w, job *j, const char *reason, bool permanent,
                     uint32_t retry_after_ms)
{
    Tier__FailJobRequest req = TIER__FAIL_JOB_REQUEST__INIT;
    Tier__JobRef ref = TIER__JOB_REF__INIT;
    Tier__FailJobReply *rep = NULL;
    int64_t backoff = BACKOFF_MIN_MS;
    int tries = 0, rv;
    tier_error err;

    ref.cid = j->cid;
    ref.fence = j->fence;
    req.worker_id = w->cfg.id;
    req.job = &ref;
    req.reason = (char *)reason;
    req.permanent = permanent;
    req.retry_after_ms = retry_after_ms;
    do {
        tier_client *c = lane_rpc(j->lane, false, &err);
        rv = c != NULL ? tier_fail_job(c, &req, &rep, &err) : TIER_UNAVAILABLE;
        /* Past our lease the call is pointless: tierd takes the job back. */
    } while (rv != TIER_OK && lease_ok(w, j) &&
             retry_wait(w, "FailJob", rv, &err, &tries, &backoff, false));
    tier_free(rep);
    if (rv == TIER_FAILED_PRECONDITION && tries > 0)
        rv = TIER_OK; /* a retry after a lost reply: done already */
    if (rv != TIER_OK)
        tier_warn("cid %lld: FailJob: %s (%s); the job comes back after its lease",
                  (long long)j->cid, tier_status_name(rv), err.message);
    forget(w, j);
}

/* Gives a claimed job back unstarted (stopping): due again at once. */
static void release_job(tier_worker *w, job *j)
{
    /* After a hard stop nobody waits for FailJob: the lease brings it back. */
    if (j->claimed && lease_ok(w, j) && !atomic_load(&w->hard_stop))
        fail_job(w, j, "released unstarted: worker stopping", false, 1);
    else
        forget(w, j);
}

/* 200 ms x 2^(attempts-1), at most 30 s. */
static uint32_t backoff_ms(uint32_t attempts)
{
    uint32_t a = attempts > 0 ? attempts - 1 : 0;
    uint64_t d = 200ULL << (a > 10 ? 10 : a);
    return d > 30000 ? 30000 : (uint32_t)d;
}

/* ------------------------------------------------------------ movers */

/* Unlinks from the queue *head..*tail (mu held) its first job (skip_stuck:
 * of a lane no completer is stuck on) and up to max - 1 more of the same
 * lane, in order, into out; returns how many (0: every job's lane is
 * stuck).  One call to a coordinator holds jobs of that coordinator only. */
static size_t take_lane(job **head, job **tail, job **out, size_t max, bool skip_stuck)
{
    const lane *l = NULL;
    job *prev = NULL;
    size_t n = 0;

    for (job *j = *head; j != NULL && l == NULL; j = j->qnext)
        if (!skip_stuck || atomic_load(&j->lane->stuck) == 0)
            l = j->lane;
    for (job *j = *head, *next; j != NULL && n < max; j = next) {
        next = j->qnext;
        if (j->lane != l) {
            prev = j;
            continue;
        }
        out[n++] = j;
        if (prev == NULL)
            *head = next;
        else
            prev->qnext = next;
        if (*tail == j)
            *tail = prev;
    }
    return n;
}

typedef struct {
    tier_worker *w;
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
    tier_worker *w = c->w;

    if (!c->handed && c->next < *c->n) {
        /* Let other threads do the rest of the batch meanwhile. */
        lock(w);
        for (size_t i = *c->n; i > c->next; i--)
            enqueue_run_locked(w, c->batch[i - 1], true);
        pthread_cond_broadcast(&w->run_cv);
        unlock(w);
        tier_debug("long move of %s: handed %zu job(s) back to the queue", c->j->filename,
                   *c->n - c->next);
        *c->n = c->next;
        c->handed = true;
    }
    if (atomic_load(&w->stopping))
        return 1;
    return lease_ok(w, c->j) ? 0 : 1;
}

static void move_one(tier_worker *w, job *j, move_ctx *ctx)
{
    /* Directory fsyncs of plain renames are done once per CompleteJob
     * batch by the completer (sync_batch_dirs), not twice per file. */
    tier_move_spec spec = {j->src_dir, j->dst_dir, j->filename, 1};
    tier_move_result res;
    int rc;

    if (!lease_ok(w, j)) {
        tier_warn("%s: lease lost before the move (cid %lld); dropped", j->filename,
                  (long long)j->cid);
        atomic_fetch_add(&w->n_lost, 1);
        tier_metric_add(w->m_lost, 1);
        forget(w, j);
        return;
    }
    clean_dir_once(w, j->dst_dir);
    atomic_fetch_add(&w->n_in_flight, 1);
    tier_metric_add(w->m_in_flight, 1);
    rc = tier_move_file_any(&spec, (const char *const *)j->also_dirs, j->n_also, on_progress, ctx,
                            &res);
    atomic_fetch_sub(&w->n_in_flight, 1);
    tier_metric_add(w->m_in_flight, -1);
    if (rc == TIER_OK) {
        j->dirs_unsynced = res.dirs_unsynced != 0;
        j->size = file_size(j->dst_dir, j->filename);
        uint64_t size = j->size < 0 ? 0 : (uint64_t)j->size;
        atomic_fetch_add(&w->n_moved, 1);
        atomic_fetch_add(&w->n_bytes, size);
        tier_metric_add(w->m_moves, 1, j->from, j->target);
        tier_metric_add(w->m_bytes, (double)size, j->from, j->target);
        if (strstr(res.reason, "already") != NULL || strstr(res.reason, "earlier") != NULL)
            tier_info("%s moves %s to %s (%s)", j->filename, j->from, j->target, res.reason);
        else
            tier_info("%s moves %s to %s%s", j->filename, j->from, j->target,
                      res.crossed_fs ? " (copied across filesystems)" : "");
        enqueue_done(w, j);
        return;
    }
    if (rc == TIER_ABORTED) {
        if (atomic_load(&w->stopping)) {
            tier_info("%s: move abandoned (stopping); the job comes back", j->filename);
            release_job(w, j);
        } else {
            tier_warn("%s: move stopped, lease lost (cid %lld); dropped", j->filename,
                      (long long)j->cid);
            atomic_fetch_add(&w->n_lost, 1);
            tier_metric_add(w->m_lost, 1);
            forget(w, j);
        }
        return;
    }
    atomic_fetch_add(&w->n_failed, 1);
    tier_metric_add(w->m_failures, 1, res.permanent ? "permanent" : "transient");
    if (res.permanent) {
        tier_warn("%s (cid %lld, %s: job parked as failed)", res.reason, (long long)j->cid,
                  tier_status_name(rc));
        fail_job(w, j, res.reason, true, 0);
    } else {
        uint32_t d = backoff_ms(j->attempts);
        tier_warn("%s (cid %lld, %s: retry in %u ms)", res.reason, (long long)j->cid,
                  tier_status_name(rc), d);
        fail_job(w, j, res.reason, false, d);
    }
}

/* ------------------------------------------------------------ heartbeat */

/* Tells lane l's tierd who we are and what we do (tierd/workers.c): at
 * start, every interval tierd asks for, and once more, stopping, at the
 * end.  The counts are the worker's, all lanes together.  A beat that fails
 * is only logged: moving files does not depend on it (under --cluster it
 * makes the topology be read again soon). */
static void beat_lane(tier_worker *w, lane *l, bool stopping)
{
    Tier__HeartbeatRequest req = TIER__HEARTBEAT_REQUEST__INIT;
    Tier__HeartbeatReply *rep = NULL;
    char host[256] = "";
    tier_error err;
    int rv;

    gethostname(host, sizeof(host) - 1);
    req.worker_id = w->cfg.id;
    req.host = host;
    req.pid = (int64_t)getpid();
    req.moves_in_flight = atomic_load(&w->n_in_flight);
    req.moves_done = atomic_load(&w->n_completed);
    req.moves_failed = atomic_load(&w->n_failed);
    req.bytes_moved = atomic_load(&w->n_bytes);
    req.started_ms = w->started_ms;
    req.version = TIER_VERSION;
    req.stopping = stopping;
    tier_client *c = lane_rpc(l, true, &err);
    if (c == NULL)
        return;
    if ((rv = tier_heartbeat(c, &req, &rep, &err)) == TIER_OK) {
        if (rep->interval_ms >= 100 && rep->interval_ms <= 60000)
            w->beat_ms = rep->interval_ms;
        tier_free(rep);
    } else if (rv == TIER_UNAUTHENTICATED || rv == TIER_PERMISSION_DENIED) {
        int tries = 0;
        int64_t backoff = 0;
        retry_wait(w, "Heartbeat", rv, &err, &tries, &backoff, true); /* stops us */
    } else {
        tier_debug("lane %u: heartbeat: %s (%s)", l->idx, tier_status_name(rv), err.message);
        if (retryable(rv))
            atomic_store(&w->topo_wake, true);
    }
}

/* A beat to every lane. */
static void beat(tier_worker *w, bool stopping)
{
    size_t n = lane_count(w);

    for (size_t i = 0; i < n && (stopping || !atomic_load(&w->stopping)); i++)
        beat_lane(w, w->lanes[i], stopping);
}

static void *beater_main(void *arg)
{
    tier_worker *w = arg;

    while (!atomic_load(&w->stopping)) {
        beat(w, false);
        for (int64_t slept = 0; slept < w->beat_ms && !atomic_load(&w->stopping); slept += 50)
            sleep_ms(50);
    }
    return NULL;
}

static void *mover_main(void *arg)
{
    tier_worker *w = arg;
    job *b[MAX_BATCH];

    for (;;) {
        size_t n = 0;

        lock(w);
        while (w->qhead == NULL && !atomic_load(&w->stopping))
            wait_on(w, &w->run_cv);
        if (atomic_load(&w->stopping)) {
            unlock(w);
            break;
        }
        n = take_lane(&w->qhead, &w->qtail, b, MAX_BATCH, false);
        if (w->qhead != NULL)
            pthread_cond_signal(&w->run_cv); /* more for another thread */
        unlock(w);

        n = claim_batch(w, b, n);
        move_ctx ctx = {w, NULL, b, 0, &n, false};
        for (size_t i = 0; i < n; i++) {
            if (atomic_load(&w->stopping)) {
                release_job(w, b[i]);
                continue;
            }
            ctx.j = b[i];
            ctx.next = i + 1;
            move_one(w, b[i], &ctx);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ completers */

/* Makes the renames of a batch durable before they are reported: each
 * distinct directory once.  Jobs whose directory cannot be synced are
 * dropped (they come back after their lease, and the retry, finding the
 * file in place, syncs on its own).  Returns the jobs kept, compacted. */
static size_t sync_batch_dirs(tier_worker *w, job **js, size_t n)
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
            TIER_CRASH_AT("worker.before_dir_sync"); /* renamed, not yet durable */
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
            forget(w, js[i]);
        }
    }
    return kept;
}

/* The sizes of js[0..n) into sizes, or 0 when one is unknown: tierd takes
 * one per job or none, and none keeps the sizes it had (a move does not
 * change a file's bytes). */
static size_t batch_sizes(job *const *js, size_t n, int64_t *sizes)
{
    for (size_t i = 0; i < n; i++)
        if ((sizes[i] = js[i]->size) < 0)
            return 0;
    return n;
}

/* pthread_cond_timedwait on w->mu for about ms (done_cv: realtime clock). */
static void wait_on_ms(tier_worker *w, pthread_cond_t *cv, int64_t ms)
{
    struct timespec until;

    assert_locked(w);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    until.tv_sec += ms / 1000 + until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    w->mu_held = false;
    pthread_cond_timedwait(cv, &w->mu, &until);
    w->mu_owner = pthread_self();
    w->mu_held = true;
}

/* The next batch to complete, of one lane, into js; 0 when the completers
 * are done.  With several lanes a lane another completer is stuck on is
 * passed by, so one coordinator that is away holds up only one completer. */
static size_t take_done(tier_worker *w, job **js)
{
    size_t n = 0;

    lock(w);
    for (;;) {
        while (w->chead == NULL && !w->movers_done)
            wait_on(w, &w->done_cv);
        if (w->chead == NULL)
            break;
        /* Once the movers are done, stuck lanes' jobs are taken too. */
        if ((n = take_lane(&w->chead, &w->ctail, js, COMPLETE_MAX, several(w) && !w->movers_done)) >
            0)
            break;
        wait_on_ms(w, &w->done_cv, 100);
    }
    if (w->chead != NULL)
        pthread_cond_signal(&w->done_cv);
    unlock(w);
    return n;
}

/* CompleteJob for req (jobs of j's lane), retried while the coordinator is
 * away: until a hard stop, or with several coordinators only while j's
 * lease lasts (after it the job is someone else's; the others must not
 * wait for this one). */
static int complete_call(tier_worker *w, job *j, Tier__CompleteJobRequest *req,
                         Tier__CompleteJobReply **rep, tier_error *err)
{
    int64_t backoff = BACKOFF_MIN_MS;
    bool stuck = false;
    int tries = 0, rv;

    for (;;) {
        tier_client *c = lane_rpc(j->lane, false, err);
        rv = c != NULL ? tier_complete_job(c, req, rep, err) : TIER_UNAVAILABLE;
        if (rv == TIER_OK || (several(w) && !lease_ok(w, j)))
            break;
        if (!stuck && (stuck = true))
            atomic_fetch_add(&j->lane->stuck, 1);
        if (!retry_wait(w, "CompleteJob", rv, err, &tries, &backoff, false))
            break;
    }
    if (stuck)
        atomic_fetch_sub(&j->lane->stuck, 1);
    return rv;
}

static void *completer_main(void *arg)
{
    Tier__JobRef refs[COMPLETE_MAX], *refp[COMPLETE_MAX];
    int64_t sizes[COMPLETE_MAX];
    job *js[COMPLETE_MAX];
    tier_worker *w = arg;

    for (;;) {
        Tier__CompleteJobRequest req = TIER__COMPLETE_JOB_REQUEST__INIT;
        Tier__CompleteJobReply *rep = NULL;
        tier_error err;
        size_t n;
        int rv;

        if ((n = take_done(w, js)) == 0)
            break;
        if ((n = sync_batch_dirs(w, js, n)) == 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            tier__job_ref__init(&refs[i]);
            refs[i].cid = js[i]->cid;
            refs[i].fence = js[i]->fence;
            refp[i] = &refs[i];
        }
        req.worker_id = w->cfg.id;
        req.jobs = refp;
        req.n_jobs = n;
        req.sizes = sizes;
        req.n_sizes = batch_sizes(js, n, sizes);
        TIER_CRASH_AT("worker.before_complete"); /* moves durable; tierd not told */
        rv = complete_call(w, js[0], &req, &rep, &err);
        if (rv == TIER_OK)
            TIER_CRASH_AT("worker.after_complete"); /* committed; jobs still held here */
        if (rv != TIER_OK) {
            tier_warn("CompleteJob: %s (%s): %zu job(s) left to tierd (they come back after "
                      "their lease and finish as \"already at destination\")",
                      tier_status_name(rv), err.message, n);
            for (size_t i = 0; i < n; i++)
                forget(w, js[i]);
            continue;
        }
        bool again = false;
        for (size_t i = 0; i < n; i++) {
            const Tier__ItemStatus *s = i < rep->n_results ? rep->results[i] : NULL;
            int code = s ? s->code : TIER_INTERNAL;
            if (code == TIER_OK) {
                atomic_fetch_add(&w->n_completed, 1);
                tier_debug("cid %lld: %s committed at %s", (long long)js[i]->cid, js[i]->filename,
                           js[i]->target);
                forget(w, js[i]);
            } else if (retryable(code) && !atomic_load(&w->hard_stop)) {
                enqueue_done(w, js[i]); /* MySQL or Redis busy: again */
                again = true;
            } else {
                /* FAILED_PRECONDITION: the lease was lost; whoever holds the
                 * job now finds the file in place and completes it. */
                tier_warn("cid %lld: CompleteJob: %s (%s); dropped", (long long)js[i]->cid,
                          tier_status_name(code), s ? s->message : "no result");
                atomic_fetch_add(&w->n_lost, 1);
                tier_metric_add(w->m_lost, 1);
                forget(w, js[i]);
            }
        }
        tier_free(rep);
        if (again)
            sleep_ms(100);
    }
    return NULL;
}

/* ------------------------------------------------------------ lease keeper */

/* The claimed jobs' refs of one lane, as its keeper collects them. */
typedef struct {
    Tier__JobRef *refs;
    Tier__JobRef **refp;
    size_t n, cap;
} held;

static bool held_grow(held *h)
{
    size_t nc = h->cap ? 2 * h->cap : 256;
    Tier__JobRef *r = realloc(h->refs, nc * sizeof(*r));
    if (r != NULL)
        h->refs = r;
    Tier__JobRef **p = realloc(h->refp, nc * sizeof(*p));
    if (p != NULL)
        h->refp = p;
    if (r == NULL || p == NULL)
        return false;
    h->cap = nc;
    return true;
}

/* Every claimed job of lane l still held (lease not lost) into h. */
static void collect_held(tier_worker *w, const lane *l, held *h)
{
    h->n = 0;
    lock(w);
    for (size_t b = 0; b < NBUCKETS; b++) {
        for (job *j = w->table[b]; j != NULL; j = j->hnext) {
            if (j->lane != l || !j->claimed || j->lost)
                continue;
            if (h->n == h->cap && !held_grow(h))
                break;
            tier__job_ref__init(&h->refs[h->n]);
            h->refs[h->n].cid = j->cid;
            h->refs[h->n].fence = j->fence;
            h->n++;
        }
    }
    unlock(w);
    for (size_t i = 0; i < h->n; i++)
        h->refp[i] = &h->refs[i];
}

/* One RenewLease call for refp[0..n) of lane l; applies the answers. */
static int renew_some(tier_worker *w, lane *l, Tier__JobRef **refp, size_t n)
{
    Tier__RenewLeaseRequest req = TIER__RENEW_LEASE_REQUEST__INIT;
    Tier__RenewLeaseReply *rep = NULL;
    tier_error err;
    int64_t t0 = tier_mono_ms();
    tier_client *c = lane_rpc(l, false, &err);
    int rv;

    req.worker_id = w->cfg.id;
    req.jobs = refp;
    req.n_jobs = n;
    req.lease_ms = w->cfg.lease_ms;
    /* No retry loop: the next round comes soon, and our own clock stops
     * the work if the lease runs out meanwhile. */
    if ((rv = c != NULL ? tier_renew_lease(c, &req, &rep, &err) : TIER_UNAVAILABLE) != TIER_OK) {
        tier_warn("lane %u: RenewLease: %s (%s)", l->idx, tier_status_name(rv), err.message);
        if (retryable(rv))
            atomic_store(&w->topo_wake, true);
        return rv;
    }
    lock(w);
    for (size_t i = 0; i < rep->n_results && i < n; i++) {
        job *j = tab_find(w, l, refp[i]->cid);
        if (j == NULL || !j->claimed || j->fence != refp[i]->fence)
            continue;
        if ((int)rep->results[i]->code == TIER_OK)
            j->lease_until = t0 + w->cfg.lease_ms;
        else if ((int)rep->results[i]->code == TIER_FAILED_PRECONDITION)
            j->lost = true; /* or done: then nobody looks at it again */
    }
    unlock(w);
    tier_free(rep);
    return TIER_OK;
}

/* A lane's keeper: one per lane, so a coordinator that does not answer
 * delays no other lane's renewals. */
static void *keeper_main(void *arg)
{
    lane *l = arg;
    tier_worker *w = l->w;
    int64_t period = w->cfg.lease_ms / 3;
    held h = {0};

    if (period < 50)
        period = 50;
    while (!atomic_load(&w->stopping)) {
        for (int64_t slept = 0; slept < period && !atomic_load(&w->stopping); slept += 50)
            sleep_ms(50);
        if (atomic_load(&w->stopping))
            break;
        collect_held(w, l, &h);
        for (size_t off = 0; off < h.n && !atomic_load(&w->stopping); off += RENEW_MAX)
            if (renew_some(w, l, h.refp + off, h.n - off < RENEW_MAX ? h.n - off : RENEW_MAX) !=
                TIER_OK)
                break;
    }
    free(h.refs);
    free(h.refp);
    return NULL;
}

/* ------------------------------------------------------------ start, stop */

/* Wakes every thread that waits on a condition of w. */
static void wake_all(tier_worker *w)
{
    pthread_mutex_lock(&w->stop_mu);
    pthread_cond_broadcast(&w->stop_cv);
    pthread_mutex_unlock(&w->stop_mu);
    lock(w);
    pthread_cond_broadcast(&w->run_cv);
    pthread_cond_broadcast(&w->done_cv);
    unlock(w);
}

void tier_worker_stop(tier_worker *w, bool hard)
{
    if (hard)
        atomic_store(&w->hard_stop, true);
    atomic_store(&w->stopping, true);
    wake_all(w);
}

/* Sets hard_stop if the completers have not finished within the flush
 * timeout after the stop; leaves early when run is over. */
static void *flush_timer_main(void *arg)
{
    tier_worker *w = arg;
    struct timespec until;
    bool fire;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += FLUSH_TIMEOUT_MS / 1000;
    until.tv_nsec += (long)(FLUSH_TIMEOUT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->stop_mu);
    while (!w->finished && !atomic_load(&w->hard_stop))
        if (pthread_cond_timedwait(&w->stop_cv, &w->stop_mu, &until) == ETIMEDOUT)
            break;
    fire = !w->finished && !atomic_load(&w->hard_stop);
    pthread_mutex_unlock(&w->stop_mu);
    if (fire)
        tier_worker_stop(w, true);
    return NULL;
}

/* The comma-separated list s, each item passed to fn until one fails. */
static int each_item(const char *s, int (*fn)(void *arg, const char *item), void *arg)
{
    char *copy = xstrdup(s), *save = NULL;
    int rv = TIER_OK;

    for (char *it = strtok_r(copy, ",", &save); it != NULL && rv == TIER_OK;
         it = strtok_r(NULL, ",", &save))
        rv = fn(arg, it);
    free(copy);
    return rv;
}

static int check_dir(void *arg, const char *d)
{
    (void)arg;
    if (d[0] == '/')
        return TIER_OK;
    tier_error("dirs: %s is not an absolute path", d);
    return TIER_INVALID_ARGUMENT;
}

static int clean_dir(void *arg, const char *d)
{
    clean_dir_once(arg, d);
    return TIER_OK;
}

static int dial_one(void *arg, const char *url)
{
    dial_arg *a = arg;
    tier_worker *w = a->l->w;
    /* Non-blocking: tierd may come up later (or a standby only when it
     * becomes the writer); nng keeps redialling. */
    tier_rpc_tls tls = {.ca_file = w->cfg.tls_ca_file, .server_name = w->cfg.tls_server_name};
    char err[512];
    int rv = tier_rpc_net_dial(a->s, url, &tls, err, sizeof(err));

    if (rv != TIER_OK)
        tier_error("lane %u: %s", a->l->idx, err);
    return rv;
}

/* The worker's metric families (its /metrics; docs/METRICS.md).  Level
 * names come from tierd's level table: a bounded set. */
static void open_metrics(tier_worker *w)
{
    tier_metrics *m = w->metrics = tier_metrics_alloc();

    w->m_moves = tier_metrics_counter(m, "tier_worker_moves_total",
                                      "Files moved by this worker, by level pair.", "from,to");
    w->m_bytes = tier_metrics_counter(m, "tier_worker_moved_bytes_total",
                                      "Bytes of the files moved, by level pair.", "from,to");
    w->m_failures = tier_metrics_counter(m, "tier_worker_failures_total",
                                         "Moves that failed, by kind.", "kind");
    w->m_lost = tier_metrics_counter(m, "tier_worker_leases_lost_total",
                                     "Jobs dropped because their lease was lost.", NULL);
    w->m_refused = tier_metrics_counter(m, "tier_worker_claims_refused_total",
                                        "Claims tierd refused (taken by another worker).", NULL);
    w->m_in_flight =
        tier_metrics_gauge(m, "tier_worker_moves_in_flight", "Moves running now.", NULL);
}

tier_metrics *tier_worker_metrics(tier_worker *w)
{
    return w->metrics;
}

/* A URL list from a peer or an option: not empty, bounded. */
static bool url_ok(const char *u)
{
    return u != NULL && u[0] != '\0' && strlen(u) < 1024;
}

/* Which coordinators: lanes, cluster, the --tierd/--pull pair. */
static int set_lanes(config *c, const tier_worker_config *cfg)
{
    bool pair = cfg->tierd_url != NULL && *cfg->tierd_url;
    bool pull = cfg->pull_url != NULL && *cfg->pull_url;

    if (cfg->n_lanes > TIER_WORKER_LANES_MAX - 1 || (cfg->n_lanes > 0 && cfg->lanes == NULL)) {
        tier_error("lanes: at most %d", TIER_WORKER_LANES_MAX - 1);
        return TIER_INVALID_ARGUMENT;
    }
    if (cfg->cluster && (!pair || cfg->n_lanes > 0)) {
        tier_error("cluster: needs the address of a tierd (--tierd) and no explicit lanes");
        return TIER_INVALID_ARGUMENT;
    }
    if (!cfg->cluster && (pair != pull || (!pair && cfg->n_lanes == 0))) {
        tier_error("tierd and pull addresses are required (both, or lanes, or cluster)");
        return TIER_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < cfg->n_lanes; i++) {
        if (!url_ok(cfg->lanes[i].rpc_url) || !url_ok(cfg->lanes[i].push_url)) {
            tier_error("lane %zu: an rpc and a push address are required", i + 1);
            return TIER_INVALID_ARGUMENT;
        }
        c->lanes[i].rpc_url = xstrdup(cfg->lanes[i].rpc_url);
        c->lanes[i].push_url = xstrdup(cfg->lanes[i].push_url);
        c->n_lanes = i + 1;
    }
    c->cluster = cfg->cluster;
    c->tierd_url = pair ? xstrdup(cfg->tierd_url) : NULL;
    c->pull_url = pull ? xstrdup(cfg->pull_url) : NULL;
    return TIER_OK;
}

/* --mount: absolute, kept without trailing '/'. */
static int set_mounts(config *c, const tier_worker_config *cfg)
{
    if (cfg->n_mounts > TIER_WORKER_MOUNTS_MAX || (cfg->n_mounts > 0 && cfg->mounts == NULL)) {
        tier_error("mounts: at most %d", TIER_WORKER_MOUNTS_MAX);
        return TIER_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        const char *m = cfg->mounts[i];
        if (m == NULL || m[0] != '/' || strlen(m) >= PATH_MAX) {
            tier_error("mount %s: an absolute directory name", m != NULL ? m : "(null)");
            return TIER_INVALID_ARGUMENT;
        }
        char *d = xstrdup(m);
        for (size_t n = strlen(d); n > 1 && d[n - 1] == '/'; n--)
            d[n - 1] = '\0';
        c->mounts[c->n_mounts++] = d;
    }
    return TIER_OK;
}

/* Checks cfg into w->cfg; logs what is wrong. */
static int set_config(tier_worker *w, const tier_worker_config *cfg)
{
    config *c = &w->cfg;
    int rv;

    if ((rv = set_lanes(c, cfg)) != TIER_OK || (rv = set_mounts(c, cfg)) != TIER_OK)
        return rv;
    c->moves = cfg->moves ? cfg->moves : 4;
    c->lease_ms = cfg->lease_ms ? cfg->lease_ms : 30000;
    if (c->moves > 256 || c->lease_ms < 200 || c->lease_ms > 3600000) {
        tier_error("moves: 1..256, lease: 200..3600000 ms");
        return TIER_INVALID_ARGUMENT;
    }
    if (cfg->id != NULL && *cfg->id) {
        if (strlen(cfg->id) > 128) {
            tier_error("worker id: at most 128 bytes");
            return TIER_INVALID_ARGUMENT;
        }
        snprintf(c->id, sizeof(c->id), "%s", cfg->id);
    } else {
        char host[64] = "worker";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(c->id, sizeof(c->id), "%s-%d", host, (int)getpid());
    }
    c->dirs = cfg->dirs != NULL ? xstrdup(cfg->dirs) : NULL;
    c->token = cfg->token != NULL ? xstrdup(cfg->token) : NULL;
    c->tls_ca_file = cfg->tls_ca_file != NULL ? xstrdup(cfg->tls_ca_file) : NULL;
    c->tls_server_name = cfg->tls_server_name != NULL ? xstrdup(cfg->tls_server_name) : NULL;
    return c->dirs != NULL ? each_item(c->dirs, check_dir, NULL) : TIER_OK;
}

/* A client for rpc, with the worker's access options; timeout_ms per call. */
static int open_client(tier_worker *w, const char *rpc, uint32_t timeout_ms, tier_client **out)
{
    tier_client_opts co = {.token = w->cfg.token,
                           .tls_ca_file = w->cfg.tls_ca_file,
                           .tls_server_name = w->cfg.tls_server_name,
                           .timeout_ms = timeout_ms};
    tier_error err;
    int rv;

    if ((rv = tier_client_open_opts(out, rpc, &co, &err)) != TIER_OK) {
        tier_error("cannot use tierd address %s: %s", rpc, err.message);
        *out = NULL;
    }
    return rv;
}

/* The call client and the heartbeat client of rpc ("" = none: both NULL). */
static int open_clients(tier_worker *w, const char *rpc, tier_client **c, tier_client **b)
{
    int rv;

    *c = *b = NULL;
    if (rpc[0] == '\0')
        return TIER_OK;
    if ((rv = open_client(w, rpc, RPC_TIMEOUT_MS, c)) != TIER_OK)
        return rv;
    if ((rv = open_client(w, rpc, BEAT_TIMEOUT_MS, b)) != TIER_OK) {
        tier_client_close(*c);
        *c = NULL;
    }
    return rv;
}

/* A lane's receiver and keeper. */
static bool start_lane(lane *l)
{
    l->recv_ok = pthread_create(&l->recv, NULL, receiver_main, l) == 0;
    l->keeper_ok = l->recv_ok && pthread_create(&l->keeper, NULL, keeper_main, l) == 0;
    return l->keeper_ok;
}

/* Adds lane number n_lanes for rpc/push ("" = none yet) and, while the
 * worker runs, starts its receiver.  Only tier_worker_open and the
 * topology thread add lanes.  The lane is added even when its clients
 * cannot be made (rv says so): lane K stays shard K's. */
static int lane_add(tier_worker *w, const char *rpc, const char *push)
{
    lane *l = calloc(1, sizeof(*l));
    int rv;

    if (l == NULL || lane_count(w) >= TIER_WORKER_LANES_MAX) {
        free(l);
        tier_error("cannot add a lane (at most %d)", TIER_WORKER_LANES_MAX);
        return TIER_RESOURCE_EXHAUSTED;
    }
    l->w = w;
    pthread_mutex_init(&l->mu, NULL);
    /* Without clients the lane pulls nothing either (no job it could not
     * claim); the next topology read tries the URLs again. */
    rv = open_clients(w, rpc, &l->client, &l->beat_client);
    l->rpc_url = xstrdup(rv == TIER_OK ? rpc : "");
    l->push_url = xstrdup(rv == TIER_OK ? push : "");
    pthread_mutex_lock(&w->lanes_mu);
    l->idx = (unsigned)lane_count(w);
    w->lanes[l->idx] = l;
    atomic_store(&w->n_lanes, l->idx + 1);
    pthread_mutex_unlock(&w->lanes_mu);
    tier_info("lane %u: tierd %s, push %s", l->idx, rpc[0] ? rpc : "(none yet)",
              push[0] ? push : "(none yet)");
    if (atomic_load(&w->running))
        start_lane(l);
    return rv;
}

/* Keeps c aside (l->mu held) while a call may still use it. */
static void retire(lane *l, tier_client *c, retired *r)
{
    if (c == NULL) {
        free(r);
        return;
    }
    r->c = c;
    r->since = tier_mono_ms();
    r->next = l->old;
    l->old = r;
}

/* Unlinks (l->mu held) the retired clients no call can be using any more. */
static retired *unlink_stale(lane *l)
{
    retired *stale = NULL;

    for (retired **pp = &l->old; *pp != NULL;) {
        retired *r = *pp;
        if (tier_mono_ms() - r->since < RETIRE_MS) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        r->next = stale;
        stale = r;
    }
    return stale;
}

static void free_retired(retired *r)
{
    for (retired *next; r != NULL; r = next) {
        next = r->next;
        tier_client_close(r->c);
        free(r);
    }
}

/* --cluster: shard l's owner is now at rpc/push.  New clients are made
 * before the old ones are put aside, so a lane never lacks one; if they
 * cannot be made the lane keeps its old URLs (and the next topology read
 * tries again).  Only the topology thread calls this. */
static void lane_set_urls(tier_worker *w, lane *l, const char *rpc, const char *push)
{
    tier_client *c, *b;
    retired *r1, *r2;
    bool same;

    pthread_mutex_lock(&l->mu);
    same = strcmp(l->rpc_url, rpc) == 0 && strcmp(l->push_url, push) == 0;
    pthread_mutex_unlock(&l->mu);
    if (same || open_clients(w, rpc, &c, &b) != TIER_OK)
        return;
    r1 = malloc(sizeof(*r1));
    r2 = malloc(sizeof(*r2));
    if (r1 == NULL || r2 == NULL) {
        free(r1);
        free(r2);
        tier_client_close(c);
        tier_client_close(b);
        return;
    }
    char *nrpc = xstrdup(rpc), *npush = xstrdup(push);
    pthread_mutex_lock(&l->mu);
    retired *stale = unlink_stale(l);
    retire(l, l->client, r1);
    retire(l, l->beat_client, r2);
    l->client = c;
    l->beat_client = b;
    free(l->rpc_url);
    free(l->push_url);
    l->rpc_url = nrpc;
    l->push_url = npush;
    pthread_mutex_unlock(&l->mu);
    free_retired(stale);
    atomic_fetch_add(&l->gen, 1); /* its receiver re-dials */
    tier_info("lane %u: shard's coordinator is now %s (push %s)", l->idx, rpc, push);
}

static void lane_free(lane *l)
{
    if (l->pull_ok)
        nng_close(l->pull);
    tier_client_close(l->client);
    tier_client_close(l->beat_client);
    free_retired(l->old);
    free(l->rpc_url);
    free(l->push_url);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* ------------------------------------------------------------ topology */

/* --cluster against a tierd that does not know Topology (an older,
 * single coordinator): --tierd and --pull become the one lane. */
static void fall_back(tier_worker *w)
{
    if (atomic_load(&w->fell_back) || lane_count(w) > 0)
        return;
    atomic_store(&w->fell_back, true);
    if (w->cfg.pull_url == NULL) {
        tier_warn("%s does not answer Topology and no --pull is given: no lanes until it "
                  "does",
                  w->cfg.tierd_url);
        return;
    }
    tier_warn("%s does not answer Topology (UNIMPLEMENTED): serving it as the one coordinator, "
              "pulling from %s",
              w->cfg.tierd_url, w->cfg.pull_url);
    lane_add(w, w->cfg.tierd_url, w->cfg.pull_url);
}

static int is_tls_item(void *arg, const char *url)
{
    (void)arg;
    return tier_rpc_net_is_tls(url) ? TIER_OK : TIER_INVALID_ARGUMENT;
}

/* A URL list from the topology: 1..PEER_URL_MAX bytes of printable ASCII
 * without spaces (as libtier believes them, docs/LIMITS.md). */
static bool peer_url_ok(const char *u)
{
    size_t n = u != NULL ? strlen(u) : 0;

    if (n == 0 || n > PEER_URL_MAX || strstr(u, "://") == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (u[i] <= ' ' || u[i] > '~')
            return false;
    return true;
}

/* An owner to follow: alive (a shard being taken over keeps its lane's
 * URLs), plausible URLs, and TLS when the seed is (a peer never makes the
 * worker send its token in clear). */
static bool owner_ok(tier_worker *w, const Tier__ShardInfo *o, unsigned k)
{
    if (o == NULL || o->shard != k || !o->alive || !peer_url_ok(o->rpc_url) ||
        !peer_url_ok(o->push_url))
        return false;
    if (each_item(w->cfg.tierd_url, is_tls_item, NULL) != TIER_OK)
        return true;
    if (each_item(o->rpc_url, is_tls_item, NULL) == TIER_OK &&
        each_item(o->push_url, is_tls_item, NULL) == TIER_OK)
        return true;
    tier_warn("topology: shard %u at %s / %s is not tls+tcp:// like %s: ignored", k, o->rpc_url,
              o->push_url, w->cfg.tierd_url);
    return false;
}

/* Lane K follows shard K's owner.  A shard with no writer (takeover under
 * way) keeps its lane's URLs: jobs in flight wait for the new writer. */
static int apply_topology(tier_worker *w, const Tier__TopologyReply *rep)
{
    if (rep->slots != 1024 || rep->shards < 1 || rep->shards > TIER_WORKER_LANES_MAX ||
        rep->n_owners != rep->shards) {
        tier_warn("topology: %u slots, %u shard(s), %zu owner(s): ignored", rep->slots, rep->shards,
                  rep->n_owners);
        return TIER_INVALID_ARGUMENT;
    }
    if (w->topo_shards == 0) {
        w->topo_shards = rep->shards;
        tier_info("cluster of %u shard(s): one lane each", rep->shards);
    } else if (rep->shards != w->topo_shards) {
        tier_error("topology: %u shards, %u before: ignored (restart the worker)", rep->shards,
                   w->topo_shards);
        return TIER_FAILED_PRECONDITION;
    }
    for (unsigned k = 0; k < rep->shards; k++) {
        const Tier__ShardInfo *o = rep->owners[k];
        bool ok = owner_ok(w, o, k);
        if (k >= lane_count(w))
            lane_add(w, ok ? o->rpc_url : "", ok ? o->push_url : "");
        else if (ok)
            lane_set_urls(w, w->lanes[k], o->rpc_url, o->push_url);
    }
    return TIER_OK;
}

/* One Topology call to the seed; *fails counts failures in a row (logs). */
static void read_topology(tier_worker *w, int *fails)
{
    Tier__TopologyRequest req = TIER__TOPOLOGY_REQUEST__INIT;
    Tier__TopologyReply *rep = NULL;
    tier_error err;
    int rv = tier_topology(w->seed, &req, &rep, &err);

    if (rv == TIER_OK) {
        apply_topology(w, rep);
        tier_free(rep);
        *fails = 0;
    } else if (rv == TIER_UNIMPLEMENTED) {
        fall_back(w);
    } else if (rv == TIER_UNAUTHENTICATED || rv == TIER_PERMISSION_DENIED) {
        int tries = 0;
        int64_t backoff = 0;
        retry_wait(w, "Topology", rv, &err, &tries, &backoff, true); /* stops us */
    } else if ((*fails)++ % 20 == 0) {
        tier_warn("Topology from %s: %s (%s); lanes unchanged", w->cfg.tierd_url,
                  tier_status_name(rv), err.message);
    }
}

/* --cluster: reads the topology at start, every TOPO_EVERY_MS, and (at
 * most every TOPO_MIN_MS) when a call found no coordinator. */
static void *topology_main(void *arg)
{
    tier_worker *w = arg;
    int64_t last = 0, next = 0;
    int fails = 0;

    while (!atomic_load(&w->stopping)) {
        int64_t now = tier_mono_ms();
        bool wake = atomic_load(&w->topo_wake) && now - last >= TOPO_MIN_MS;
        if (now >= next || wake) {
            atomic_store(&w->topo_wake, false);
            read_topology(w, &fails);
            last = tier_mono_ms();
            next = last + TOPO_EVERY_MS;
        }
        sleep_ms(50);
    }
    return NULL;
}

/* ------------------------------------------------------------ open, run */

/* The lanes of a worker without --cluster: the pair, then explicit ones. */
static int open_lanes(tier_worker *w)
{
    int rv = TIER_OK;

    if (w->cfg.cluster)
        return open_client(w, w->cfg.tierd_url, RPC_TIMEOUT_MS, &w->seed);
    if (w->cfg.tierd_url != NULL)
        rv = lane_add(w, w->cfg.tierd_url, w->cfg.pull_url);
    for (size_t i = 0; i < w->cfg.n_lanes && rv == TIER_OK; i++)
        rv = lane_add(w, w->cfg.lanes[i].rpc_url, w->cfg.lanes[i].push_url);
    /* Dialled now, as one coordinator's always was: a push address nng
     * refuses stops the worker at start rather than leaving a lane deaf. */
    for (size_t i = 0, n = lane_count(w); i < n && rv == TIER_OK; i++) {
        lane *l = w->lanes[i];
        if (!(l->pull_ok = open_pull(l, &l->pull)))
            rv = TIER_INVALID_ARGUMENT;
    }
    return rv;
}

int tier_worker_open(tier_worker **out, const tier_worker_config *cfg)
{
    tier_worker *w = calloc(1, sizeof(*w));
    pthread_condattr_t ca;
    int rv;

    *out = NULL;
    if (w == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->stop_mu, NULL);
    pthread_mutex_init(&w->seen_mu, NULL);
    pthread_mutex_init(&w->lanes_mu, NULL);
    pthread_cond_init(&w->run_cv, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    /* The flush timer waits on stop_cv with a monotonic deadline. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((rv = set_config(w, cfg)) != TIER_OK)
        goto fail;
    if (w->cfg.dirs != NULL)
        each_item(w->cfg.dirs, clean_dir, w);
    if ((rv = open_lanes(w)) != TIER_OK)
        goto fail;
    w->started_ms = tier_now_ms();
    w->beat_ms = 2000; /* until tierd says otherwise */
    open_metrics(w);
    tier_info("worker %s: %s, %u moves at once, lease %u ms, %zu mount(s)", w->cfg.id,
              w->cfg.cluster ? "the cluster's shards" : "the lanes above", w->cfg.moves,
              w->cfg.lease_ms, w->cfg.n_mounts);
    for (size_t i = 0; i < w->cfg.n_mounts; i++)
        tier_info("mount %s", w->cfg.mounts[i]);
    *out = w;
    return TIER_OK;
fail:
    tier_worker_close(w);
    return rv;
}

/* Joins the threads that started (movers[0..nm), completers[0..nc), the
 * receiver and keeper when their flags say so), in the order that lets
 * each finish its part of the shutdown. */
typedef struct {
    pthread_t topo, beater, *movers, completers[NCOMPLETERS_LANES];
    unsigned nm, nc;
    bool lanes_ok, topo_ok, beater_ok;
} threads;

/* The threads of the lanes there are; later ones start their own. */
static bool start_lanes(tier_worker *w)
{
    bool ok = true;

    for (size_t i = 0, n = lane_count(w); i < n; i++)
        ok = start_lane(w->lanes[i]) && ok;
    atomic_store(&w->running, true);
    return ok;
}

static bool start_threads(tier_worker *w, threads *t)
{
    if ((t->movers = calloc(w->cfg.moves, sizeof(*t->movers))) == NULL)
        return false;
    t->lanes_ok = start_lanes(w);
    t->topo_ok =
        t->lanes_ok && w->cfg.cluster && pthread_create(&t->topo, NULL, topology_main, w) == 0;
    t->beater_ok = t->lanes_ok && (t->topo_ok || !w->cfg.cluster) &&
                   pthread_create(&t->beater, NULL, beater_main, w) == 0;
    if (!t->beater_ok)
        return false;
    for (; t->nm < w->cfg.moves; t->nm++)
        if (pthread_create(&t->movers[t->nm], NULL, mover_main, w) != 0)
            return false;
    for (unsigned nc = several(w) ? NCOMPLETERS_LANES : NCOMPLETERS; t->nc < nc; t->nc++)
        if (pthread_create(&t->completers[t->nc], NULL, completer_main, w) != 0)
            return false;
    return true;
}

/* After the stop: movers done, queued jobs given back, completions sent
 * (the flush timer bounds that), keeper done. */
static void shut_down(tier_worker *w, threads *t)
{
    pthread_t timer;
    bool timer_ok;

    if (t->topo_ok)
        pthread_join(t->topo, NULL); /* no lane is added after this */
    for (size_t i = 0, n = lane_count(w); i < n; i++)
        if (w->lanes[i]->recv_ok)
            pthread_join(w->lanes[i]->recv, NULL);
    for (unsigned i = 0; i < t->nm; i++)
        pthread_join(t->movers[i], NULL);
    timer_ok = pthread_create(&timer, NULL, flush_timer_main, w) == 0;
    /* Jobs still queued: hints are forgotten, claimed ones given back. */
    for (;;) {
        job *j;
        lock(w);
        if ((j = w->qhead) != NULL && (w->qhead = j->qnext) == NULL)
            w->qtail = NULL;
        unlock(w);
        if (j == NULL)
            break;
        release_job(w, j);
    }
    lock(w);
    w->movers_done = true;
    pthread_cond_broadcast(&w->done_cv);
    unlock(w);
    for (unsigned i = 0; i < t->nc; i++)
        pthread_join(t->completers[i], NULL);
    for (size_t i = 0, n = lane_count(w); i < n; i++)
        if (w->lanes[i]->keeper_ok)
            pthread_join(w->lanes[i]->keeper, NULL);
    if (t->beater_ok) {
        pthread_join(t->beater, NULL);
        if (!atomic_load(&w->hard_stop))
            beat(w, true); /* tierd hears we left, rather than waiting 10 s */
    }
    pthread_mutex_lock(&w->stop_mu);
    w->finished = true;
    pthread_cond_broadcast(&w->stop_cv);
    pthread_mutex_unlock(&w->stop_mu);
    if (timer_ok)
        pthread_join(timer, NULL);
    free(t->movers);
}

int tier_worker_run(tier_worker *w)
{
    threads t;
    bool started;

    if (atomic_exchange(&w->ran, true))
        return TIER_FAILED_PRECONDITION; /* once per object */
    memset(&t, 0, sizeof(t));
    if (!(started = start_threads(w, &t))) {
        tier_error("cannot start threads");
        tier_worker_stop(w, true);
    }
    pthread_mutex_lock(&w->stop_mu);
    while (!atomic_load(&w->stopping))
        pthread_cond_wait(&w->stop_cv, &w->stop_mu);
    pthread_mutex_unlock(&w->stop_mu);
    shut_down(w, &t);
    tier_info("stopped: %llu moved, %llu completed, %llu failed, %llu lost leases, %llu claims "
              "refused",
              (unsigned long long)atomic_load(&w->n_moved),
              (unsigned long long)atomic_load(&w->n_completed),
              (unsigned long long)atomic_load(&w->n_failed),
              (unsigned long long)atomic_load(&w->n_lost),
              (unsigned long long)atomic_load(&w->n_claim_refused));
    if (atomic_load(&w->denied) != 0)
        return atomic_load(&w->denied);
    return started ? TIER_OK : TIER_RESOURCE_EXHAUSTED;
}

void tier_worker_close(tier_worker *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0, n = lane_count(w); i < n; i++)
        lane_free(w->lanes[i]);
    tier_client_close(w->seed);
    /* Normally empty after run: every job was completed, given back or
     * forgotten. */
    for (size_t b = 0; b < NBUCKETS; b++)
        for (job *j = w->table[b], *next; j != NULL; j = next) {
            next = j->hnext;
            job_free(j);
        }
    for (seen_dir *d = w->seen_dirs, *next; d != NULL; d = next) {
        next = d->next;
        free(d);
    }
    free(w->cfg.tierd_url);
    free(w->cfg.pull_url);
    for (size_t i = 0; i < w->cfg.n_lanes; i++) {
        free((char *)w->cfg.lanes[i].rpc_url);
        free((char *)w->cfg.lanes[i].push_url);
    }
    for (size_t i = 0; i < w->cfg.n_mounts; i++)
        free(w->cfg.mounts[i]);
    free(w->cfg.dirs);
    free(w->cfg.token);
    free(w->cfg.tls_ca_file);
    free(w->cfg.tls_server_name);
    tier_metrics_free(w->metrics);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->stop_mu);
    pthread_mutex_destroy(&w->seen_mu);
    pthread_mutex_destroy(&w->lanes_mu);
    pthread_cond_destroy(&w->run_cv);
    pthread_cond_destroy(&w->done_cv);
    pthread_cond_destroy(&w->stop_cv);
    free(w);
}
