/*
 * writer.c -- tierd is the writer of its database and key prefix, or it
 * waits.  The lease and the fences are store/tier_writer.h; this file is
 * their lifetime in the process:
 *
 *   standby   poll the lease every ttl/10 (no listening, no state loaded)
 *   acquire   lease in Redis, then the MySQL fence raised to our token
 *   renew     a thread, every ttl/3, on its own Redis connection
 *   step down exit(TIERD_EXIT_NOT_WRITER) at once when a renewal says lost,
 *             when no renewal succeeded for ttl (Redis away: the lease may
 *             be someone else's by now), or when a job script or a commit
 *             finds us fenced off.  Nothing is cleaned up: the state in
 *             Redis and MySQL is crash-safe, and our memory is what can no
 *             longer be trusted.
 *
 * home      (--home, docs/CLUSTER.md) the standby on a shard's home host
 *           keeps <prefix>home set; other standbys let it take a free
 *           lease first (for about 2 s), and a writer elsewhere that sees
 *           it on two renewals in a row hands the shard back: it stops
 *           as on SIGTERM (calls finish, the lease is released) and exits
 *           with TIERD_EXIT_NOT_WRITER, so its supervisor restarts it as a
 *           standby.  That is how shards go home after a host comes back.
 *
 * `deadline` (monotonic ms) is when the lease may expire at the earliest:
 * the time a successful acquire or renewal was *sent* plus the ttl, so it
 * is never later than Redis's own expiry.  Every call is gated on it (the
 * fast paths answer from memory without touching Redis or MySQL, so the
 * fences alone would not stop a paused-and-resumed tierd from answering a
 * stale "nothing to do").
 */
#include "tierd.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_crash.h"
#include "tier_log.h"
#include "tier_notify.h"
#include "tier_time.h"
#include "tier_writer.h"

struct tierd_writer {
    const tierd_config *cfg;
    char prefix[80];
    int64_t token;
    _Atomic int64_t deadline; /* monotonic ms */
    tier_kv *kv;              /* the renewing thread's, NULL when broken */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    bool stop;
    pthread_mutex_t renew_mu; /* one renewal at a time, on kv */
    bool reconnecting;        /* renew_locked's one retry on a new connection */
    int home_seen;            /* renewals in a row that saw another host's home standby */
};

#define YIELD_MS 2000 /* a standby lets the home standby take a free lease first */

/* Set when the writer hands its shard back to the home host. */
static atomic_bool handed_over;

bool tierd_writer_handed_over(void)
{
    return atomic_load(&handed_over);
}

static _Noreturn void step_down(const char *why)
{
    tier_error("not the writer any more (%s): exiting with status %d", why, TIERD_EXIT_NOT_WRITER);
    _exit(TIERD_EXIT_NOT_WRITER);
}

static void on_fenced(const char *what)
{
    step_down(what);
}

/* ------------------------------------------------------------ standby */

/* Sleeps ms, or returns true at once when a stop signal came. */
static bool wait_or_stop(const sigset_t *stop, uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    if (stop == NULL) {
        nanosleep(&ts, NULL);
        return false;
    }
    return sigtimedwait(stop, NULL, &ts) > 0;
}

/* Whether this standby should not try for the lease this round: the home
 * standby says it is waiting too (for at most YIELD_MS in a row).  The
 * home standby itself refreshes its key here. */
static bool yield_to_home(tierd_writer *w, tier_kv *kv, uint32_t every, uint32_t *yielded)
{
    char node[64];

    if (w->cfg->home) {
        tier_writer_home_set(kv, w->prefix, w->cfg->node, every * 5 > 1000 ? every * 5 : 1000);
        return false;
    }
    if (tier_writer_home_get(kv, w->prefix, node, sizeof(node)) != TIER_OK ||
        strcmp(node, w->cfg->node) == 0) {
        *yielded = 0;
        return false;
    }
    if (*yielded >= YIELD_MS)
        return false;
    *yielded += every;
    return true;
}

/* One try: lease, then fence.  HELD, TAKEN (*holder set) or ERROR. */
static tier_writer_state try_once(tierd_writer *w, tier_kv *kv, tier_db *db, int64_t *holder)
{
    uint32_t ttl = w->cfg->writer_ttl_ms;
    int64_t floor, tok = 0, sent;
    tier_writer_state st;

    if (tier_writer_fence_read(db, &floor) != TIER_OK)
        return TIER_WRITER_ERROR;
    sent = tier_mono_ms();
    if ((st = tier_writer_acquire(kv, w->prefix, ttl, floor, &tok)) != TIER_WRITER_HELD) {
        *holder = tok;
        return st;
    }
    /* An old writer cut off mid-transaction still holds the fence row's
     * lock on the server: its connections go first (sql/010). */
    tier_writer_conns_kill(db, tok);
    st = tier_writer_fence_raise(db, tok);
    /* The raise may have waited for a commit of the old writer: renew once
     * so the deadline starts after it. */
    if (st == TIER_WRITER_HELD) {
        sent = tier_mono_ms();
        st = tier_writer_renew(kv, w->prefix, tok, ttl);
    }
    if (st != TIER_WRITER_HELD) {
        /* A newer writer raised the fence first: give the lease back. */
        tier_writer_release(kv, w->prefix, tok);
        *holder = 0;
        return st == TIER_WRITER_LOST ? TIER_WRITER_TAKEN : TIER_WRITER_ERROR;
    }
    w->token = tok;
    atomic_store(&w->deadline, sent + ttl);
    return TIER_WRITER_HELD;
}

/* Connections of our own, reopened after a failure; a standby outlives
 * outages of either store. */
static bool connect_both(tierd_writer *w, tier_kv **kv, tier_db **db)
{
    char err[512];

    if (*kv == NULL && tier_kv_open(kv, &w->cfg->kv, err, sizeof(err)) != TIER_OK) {
        *kv = NULL;
        tier_warn("writer lease: %s", err);
        return false;
    }
    if (*db == NULL) {
        tier_db_config c = w->cfg->db;
        c.writer_token = 0;
        if (tier_db_open(db, &c, err, sizeof(err)) != TIER_OK) {
            *db = NULL;
            tier_warn("writer fence: %s", err);
            return false;
        }
        /* A fence raise waits for a commit of the old writer holding the
         * row; never for InnoDB's default 50 s. */
        tier_db_exec(*db, "SET SESSION innodb_lock_wait_timeout = 1");
    }
    return true;
}

static void drop_broken(tier_kv **kv, tier_db **db)
{
    if (*kv != NULL && tier_kv_broken(*kv)) {
        tier_kv_close(*kv);
        *kv = NULL;
    }
    if (*db != NULL && tier_db_broken(*db)) {
        tier_db_close(*db);
        *db = NULL;
    }
}

int tierd_writer_acquire(tierd_writer **out, const tierd_config *cfg, const sigset_t *stop)
{
    tierd_writer *w = calloc(1, sizeof(*w));
    uint32_t every = cfg->writer_ttl_ms / 10 ? cfg->writer_ttl_ms / 10 : 1;
    int64_t holder, logged = -1;
    uint32_t yielded = 0;
    tier_kv *kv = NULL;
    tier_db *db = NULL;
    tier_writer_state st = TIER_WRITER_ERROR;

    if (w == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    w->cfg = cfg;
    snprintf(w->prefix, sizeof(w->prefix), "%s", cfg->shard_prefix);
    for (;;) {
        if (connect_both(w, &kv, &db) && !yield_to_home(w, kv, every, &yielded) &&
            (st = try_once(w, kv, db, &holder)) == TIER_WRITER_HELD)
            break;
        if (st == TIER_WRITER_TAKEN && holder != logged) {
            tier_info("standby: waiting for the writer lease held by token %lld",
                      (long long)holder);
            tier_notify_status("standby: waiting for the writer lease (held by token %lld)",
                               (long long)holder);
            logged = holder;
        }
        drop_broken(&kv, &db);
        if (wait_or_stop(stop, every)) {
            tier_kv_close(kv);
            tier_db_close(db);
            free(w);
            return TIER_CANCELLED;
        }
    }
    tier_db_close(db);
    w->kv = kv;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->renew_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    tier_info("writer: lease and MySQL fence taken with token %lld (ttl %u ms, prefix %s)",
              (long long)w->token, cfg->writer_ttl_ms, w->prefix);
    *out = w;
    return TIER_OK;
}

int64_t tierd_writer_token(const tierd_writer *w)
{
    return w->token;
}

/* ------------------------------------------------------------ renewing */

/* Waits until mono ms `until` or stop; returns true on stop. */
static bool sleep_until(tierd_writer *w, int64_t until)
{
    struct timespec ts = {until / 1000, (long)(until % 1000) * 1000000L};
    bool stop;

    pthread_mutex_lock(&w->mu);
    while (!w->stop && tier_mono_ms() < until)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

/* A writer away from the shard's home hands it back once the home
 * standby has been seen on two renewals in a row (one sighting may be a
 * standby about to stop). */
static void check_home(tierd_writer *w)
{
    char node[64];

    if (w->cfg->home || atomic_load(&handed_over))
        return;
    if (tier_writer_home_get(w->kv, w->prefix, node, sizeof(node)) != TIER_OK ||
        strcmp(node, w->cfg->node) == 0) {
        w->home_seen = 0;
        return;
    }
    if (++w->home_seen < 2)
        return;
    tier_info("writer: the shard's home %s is up: handing the shard back", node);
    atomic_store(&handed_over, true);
    kill(getpid(), SIGTERM); /* main stops as on SIGTERM, then exits NOT_WRITER */
}

/* One renewal (renew_mu held); returns when to try next.  Never returns
 * when the lease is lost or may have expired. */
static int64_t renew_locked(tierd_writer *w)
{
    uint32_t ttl = w->cfg->writer_ttl_ms;
    int64_t now = tier_mono_ms(), left = atomic_load(&w->deadline) - now;
    char err[512];
    tier_writer_state st;

    if (left <= 0)
        step_down("no lease renewal for a whole ttl: it may be someone else's now");
    if (w->kv == NULL && tier_kv_open(&w->kv, &w->cfg->kv, err, sizeof(err)) != TIER_OK) {
        w->kv = NULL;
        tier_warn("writer lease: cannot renew: %s", err);
        return now + ttl / 10;
    }
    /* Never block past the deadline waiting for an answer. */
    struct timeval tv = {left / 1000, (left % 1000) * 1000};
    redisSetTimeout(tier_kv_handle(w->kv), tv);
    st = tier_writer_renew(w->kv, w->prefix, w->token, ttl);
    if (st == TIER_WRITER_LOST)
        step_down("the writer lease is held by another tierd");
    if (st == TIER_WRITER_HELD) {
        atomic_store(&w->deadline, now + ttl);
        check_home(w);
        return now + ttl / 3;
    }
    if (tier_kv_broken(w->kv)) {
        tier_kv_close(w->kv);
        w->kv = NULL;
        /* A connection from before a Redis restart: one more go on a new
         * one, so the call that noticed the missing key need not fail. */
        if (!w->reconnecting) {
            w->reconnecting = true;
            int64_t next = renew_locked(w);
            w->reconnecting = false;
            return next;
        }
    }
    tier_warn("writer lease: renewal failed; %lld ms left", (long long)left);
    return tier_mono_ms() + ttl / 10;
}

static int64_t renew_once(tierd_writer *w)
{
    int64_t next;

    pthread_mutex_lock(&w->renew_mu);
    next = renew_locked(w);
    pthread_mutex_unlock(&w->renew_mu);
    return next;
}

/* A job script found no lease key (Redis came back empty): renew now
 * rather than at the next tick, so the call that noticed can go on. */
static bool on_missing(void *arg)
{
    tierd_writer *w = arg;
    int64_t before = atomic_load(&w->deadline);

    renew_once(w);
    return atomic_load(&w->deadline) != before;
}

static void *renew_main(void *arg)
{
    tierd_writer *w = arg;
    int64_t next = tier_mono_ms() + w->cfg->writer_ttl_ms / 3;

    for (;;) {
        int64_t d = atomic_load(&w->deadline);
        if (sleep_until(w, next < d ? next : d))
            break;
        next = renew_once(w);
    }
    return NULL;
}

int tierd_writer_start(tierd_writer *w)
{
    tier_writer_on_fenced(on_fenced);
    tier_writer_on_missing(on_missing, w);
    if (pthread_create(&w->thread, NULL, renew_main, w) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    w->started = true;
    return TIER_OK;
}

int tierd_writer_gate(void *arg, char *msg, size_t len)
{
    tierd_writer *w = arg;

    (void)msg, (void)len;
    if (tier_mono_ms() >= atomic_load(&w->deadline))
        step_down("the writer lease may have expired");
    return TIER_OK;
}

int tierd_writer_probe(void *arg, char *msg, size_t len)
{
    tierd_writer *w = arg;
    int64_t left = atomic_load(&w->deadline) - tier_mono_ms();

    snprintf(msg, len, "token %lld", (long long)w->token);
    return left > 0 ? TIER_OK : TIER_UNAVAILABLE;
}

void tierd_writer_release(tierd_writer *w)
{
    if (w == NULL)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    /* Nothing writes any more: let a standby take over now. */
    if (w->kv != NULL && tier_writer_release(w->kv, w->prefix, w->token) == TIER_OK)
        tier_info("writer: lease released");
    tier_writer_on_fenced(NULL);
    tier_writer_on_missing(NULL, NULL);
    tier_kv_close(w->kv);
    pthread_mutex_destroy(&w->renew_mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
