/*
 * tiering_sizes.c -- how many contents each level holds and how many bytes
 * their files take, for GetStats (the dashboard, docs/DASHBOARD.md).
 *
 * Counts come from memory at the moment of the call: every content's MySQL
 * level is there (tiering_int.h), so counting is a walk of the stripes,
 * one stripe mutex at a time -- exact, and cheap next to a 2 s poll.
 *
 * Bytes are not in memory and not in MySQL: only the file system knows
 * them.  Stat'ing every file on every call would put a dashboard's polling
 * on the disks, so a background pass does it instead: it snapshots
 * (level, filename) of every content, stats each file in its level's
 * directory at most --scrub-rate times a second (the fsck walk's budget,
 * tiering_scrub.c, so an operator tunes one number for both), sums the
 * sizes by level and publishes the sums with the time the pass ended
 * ("as of").  The next pass starts PASS_PAUSE_S after that.  So bytes lag
 * moves by up to one pass; a file being moved while the pass looks for it
 * is counted missing for that pass.  A separate pass, not the fsck walk,
 * because fsck runs hourly (or never: --scrub-interval-s 0) while the
 * dashboard wants sizes within seconds on a small store.
 *
 * The pass also backfills contents.size_bytes (sql/006): a content whose
 * size is still -1 (registered before that migration) gets the size the
 * pass just stat'ed, in MySQL first (tier_contents_commit with no levels,
 * BACKFILL_BATCH rows a transaction) and then in memory, so an upgraded
 * database gets every size within one pass and no operator acts.  A batch
 * MySQL refuses (down, fence lost) is simply left at -1 for the next pass.
 * A move may commit a content's size meanwhile; both are the same file's
 * bytes (a move never changes them), so which write lands last is moot.
 */
#include "tiering_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tier_contents.h"
#include "tier_log.h"
#include "tier_time.h"

#define PASS_PAUSE_S 10
#define LEVELS_MAX 64 /* tier.proto: a level table has at most 64 levels */
#define BACKFILL_BATCH 512

typedef struct {
    const char *level; /* interned */
    char *filename;
    int64_t cid;
    bool unsized; /* size -1 when snapshotted: to backfill */
    bool in_old;  /* still in its migrating level's old directory */
} snap;

/* Sizes found for unsized contents, written BACKFILL_BATCH at a time. */
typedef struct {
    int64_t cids[BACKFILL_BATCH], sizes[BACKFILL_BATCH];
    size_t n;
} backfill;

typedef struct {
    const char *level; /* interned */
    uint64_t bytes, files, missing;
} sums;

struct tl_sizes {
    pthread_t th;
    bool started;
    pthread_mutex_t mu; /* guards what follows, and the pause */
    pthread_cond_t cv;
    atomic_bool stop;
    sums last[LEVELS_MAX];
    size_t nlast;
    int64_t as_of_ms; /* 0: no pass has ended yet */
};

/* Every content's (level, filename); NULL on no memory. */
static snap *snapshot(tiering *t, size_t *n)
{
    size_t cap = 1024, k = 0;
    snap *v = malloc(cap * sizeof(*v));

    for (size_t i = 0; v != NULL && i < NSTRIPES; i++) {
        stripe *s = &t->stripes[i];
        pthread_mutex_lock(&s->mu);
        for (size_t j = 0; v != NULL && j < s->cap; j++) {
            content *c = s->slot[j];
            if (c == NULL)
                continue;
            if (k == cap) {
                snap *nv = realloc(v, 2 * cap * sizeof(*v));
                if (nv == NULL) {
                    for (size_t x = 0; x < k; x++)
                        free(v[x].filename);
                    free(v);
                    v = NULL;
                    break;
                }
                v = nv;
                cap *= 2;
            }
            v[k].level = c->level;
            v[k].cid = c->cid;
            v[k].unsized = c->size < 0;
            v[k].in_old = c->in_old;
            if ((v[k].filename = strdup(c->filename)) != NULL)
                k++;
        }
        pthread_mutex_unlock(&s->mu);
    }
    *n = k;
    return v;
}

/* Writes the batch to MySQL, then to memory where the size is still
 * unknown (a move's commit may have set it since the snapshot). */
static void backfill_flush(tiering *t, backfill *b)
{
    tier_db *db;
    int rv = TIER_UNAVAILABLE;

    if (b->n == 0)
        return;
    if ((db = tier_pool_get(t->deps->db)) != NULL) {
        rv = tier_contents_commit(db, b->cids, NULL, b->sizes, b->n);
        tier_db_pool_put(t->deps->db, db);
    }
    if (rv != TIER_OK) {
        tier_warn("size pass: cannot record %zu size(s) in MySQL (%s); next pass", b->n,
                  tier_status_name(rv));
        b->n = 0;
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        content *c = tiering_find(t, b->cids[i]);
        if (c != NULL && tiering_size(t, c) < 0)
            tiering_set_size(t, c, b->sizes[i]);
    }
    b->n = 0;
}

static void backfill_add(tiering *t, backfill *b, int64_t cid, int64_t size)
{
    b->cids[b->n] = cid;
    b->sizes[b->n++] = size;
    if (b->n == BACKFILL_BATCH)
        backfill_flush(t, b);
}

/* One pass; false when tierd is stopping (nothing published). */
static bool pass(tiering *t, struct tl_sizes *sz)
{
    const level_table *lt = atomic_load(&t->levels);
    uint32_t rate = t->deps->cfg->scrub_rate;
    sums acc[LEVELS_MAX] = {{0}};
    size_t nl = lt->n < LEVELS_MAX ? lt->n : LEVELS_MAX, n = 0;
    int64_t t0 = tier_mono_us();
    bool ok = true;
    snap *v = snapshot(t, &n);
    backfill *b = calloc(1, sizeof(*b));

    if (v == NULL || b == NULL) {
        free(b);
        for (size_t i = 0; v != NULL && i < n; i++)
            free(v[i].filename);
        free(v);
        return true; /* out of memory: try again next time */
    }
    for (size_t l = 0; l < nl; l++)
        acc[l].level = lt->v[l].name;
    for (size_t i = 0; i < n && ok; i++) {
        const tl_level *l = tiering_level(lt, v[i].level);
        char path[TIER_PATH_MAX + 256];
        struct stat st;

        if (l == NULL || l - lt->v >= (ptrdiff_t)nl)
            continue; /* a level SetLevels just replaced: the next pass counts it */
        snprintf(path, sizeof(path), "%s%s", tiering_level_dir(l, v[i].in_old), v[i].filename);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            acc[l - lt->v].bytes += (uint64_t)st.st_size;
            acc[l - lt->v].files++;
            if (v[i].unsized)
                backfill_add(t, b, v[i].cid, (int64_t)st.st_size);
        } else {
            acc[l - lt->v].missing++;
        }
        /* The rate: sleep until the next stat is due, waking for a stop. */
        while (ok && rate > 0) {
            int64_t due = t0 + (int64_t)((i + 1) * 1000000 / rate), now = tier_mono_us();
            if (now >= due)
                break;
            usleep((useconds_t)(due - now < 100000 ? due - now : 100000));
            ok = !atomic_load(&sz->stop);
        }
        ok = ok && !atomic_load(&sz->stop);
    }
    if (ok)
        backfill_flush(t, b);
    free(b);
    for (size_t i = 0; i < n; i++)
        free(v[i].filename);
    free(v);
    if (!ok)
        return false;
    pthread_mutex_lock(&sz->mu);
    memcpy(sz->last, acc, sizeof(acc));
    sz->nlast = nl;
    sz->as_of_ms = tier_now_ms();
    pthread_mutex_unlock(&sz->mu);
    return true;
}

static void *sizes_main(void *arg)
{
    tiering *t = arg;
    struct tl_sizes *sz = t->sizes;

    while (pass(t, sz)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += PASS_PAUSE_S;
        pthread_mutex_lock(&sz->mu);
        while (!atomic_load(&sz->stop) && pthread_cond_timedwait(&sz->cv, &sz->mu, &ts) == 0)
            ;
        pthread_mutex_unlock(&sz->mu);
        if (atomic_load(&sz->stop))
            break;
    }
    return NULL;
}

int tiering_sizes_open(tiering *t)
{
    struct tl_sizes *sz = calloc(1, sizeof(*sz));

    if (sz == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    pthread_mutex_init(&sz->mu, NULL);
    pthread_cond_init(&sz->cv, NULL);
    t->sizes = sz;
    if (pthread_create(&sz->th, NULL, sizes_main, t) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    sz->started = true;
    return TIER_OK;
}

void tiering_sizes_close(tiering *t)
{
    struct tl_sizes *sz = t->sizes;

    if (sz == NULL)
        return;
    pthread_mutex_lock(&sz->mu);
    atomic_store(&sz->stop, true);
    pthread_cond_broadcast(&sz->cv);
    pthread_mutex_unlock(&sz->mu);
    if (sz->started)
        pthread_join(sz->th, NULL);
    pthread_mutex_destroy(&sz->mu);
    pthread_cond_destroy(&sz->cv);
    free(sz);
    t->sizes = NULL;
}

size_t tiering_level_stats(tiering *t, tierd_level_stat *out, size_t max, int64_t *as_of_ms)
{
    const level_table *lt = atomic_load(&t->levels);
    struct tl_sizes *sz = t->sizes;
    size_t n = lt->n < max ? lt->n : max;

    for (size_t l = 0; l < n; l++) {
        memset(&out[l], 0, sizeof(out[l]));
        out[l].name = lt->v[l].name;
        out[l].path = lt->v[l].path;
        out[l].min_counts = lt->v[l].min;
        out[l].max_counts = lt->v[l].max;
    }
    for (size_t i = 0; i < NSTRIPES; i++) {
        stripe *s = &t->stripes[i];
        pthread_mutex_lock(&s->mu);
        for (size_t j = 0; j < s->cap; j++) {
            const content *c = s->slot[j];
            for (size_t l = 0; c != NULL && l < n; l++)
                if (out[l].name == c->level) {
                    out[l].contents++;
                    break;
                }
        }
        pthread_mutex_unlock(&s->mu);
    }
    *as_of_ms = 0;
    if (sz != NULL) {
        pthread_mutex_lock(&sz->mu);
        /* Levels are matched by name: the pass may have seen an older table. */
        for (size_t k = 0; k < sz->nlast; k++)
            for (size_t l = 0; l < n; l++)
                if (out[l].name == sz->last[k].level) {
                    out[l].bytes = sz->last[k].bytes;
                    out[l].files = sz->last[k].files;
                    out[l].missing = sz->last[k].missing;
                }
        *as_of_ms = sz->as_of_ms;
        pthread_mutex_unlock(&sz->mu);
    }
    return n;
}
