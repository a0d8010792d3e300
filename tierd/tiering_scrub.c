/*
 * tiering_scrub.c -- fsck: the Scrub method (`tierctl fsck`) and the
 * background scrubber.  It compares MySQL's levels (tierd's memory holds
 * an exact copy, tiering_int.h), the job hashes in Redis and the level
 * directories, and reports every disagreement by kind (tier.proto,
 * Finding).  With repair it fixes what is safe; without it nothing changes.
 *
 * One scan:
 *   1. snapshot the contents (cid, level, has_job) and index them by name;
 *   2. SCAN <prefix>job:* for every job hash, indexed or not;
 *   3. read every level directory: names of contents mark where they are
 *      seen, ".tier-tmp.*" are temporaries, the rest foreign candidates;
 *   4. judge every content that is not simply "one copy, in its level's
 *      directory, no job on either side";
 *   5. report jobs for cids that tierd does not know;
 *   6. judge the foreign candidates against a fresh snapshot (AddContent
 *      may have named one meanwhile).
 *
 * Races.  Workers move a file only under a claimed job, and tierd changes a
 * job's existence or a content's level only under the content's busy flag.
 * So step 4 takes the busy flag, reads the job again, stats the file again
 * in every level directory, and (when a job exists) reads the job's status
 * and fence once more: if they changed, a worker was at it and the content
 * is skipped.  A content with no job, busy held, cannot move at all, which
 * is why the file repairs are limited to contents without a job.  A content
 * whose job is claimed with a live lease (or one expired less than
 * STUCK_CLAIM_MS ago, which the reaper takes back by itself) is in flight:
 * only its has_job is judged.  A copy in one of a job's directories (src,
 * also_dirs, dst; store/tier_jobs.c, REPORT) is explained, not misplaced.
 * Temporaries and foreign files are stat'ed again before they are reported.
 *
 * Repairs (repair=true only; each says what it did in `action`):
 *   temporary   unlinked when its ctime is at least twice the lease old
 *               (tier_move_cleanup_dir's rule; ctime, because a copy
 *               carries its source's old mtime)
 *   misplaced   no job: the level whose directory holds the file is
 *               committed through the batcher, as CompleteJob does (the
 *               trigger writes the history row)
 *   duplicated  no job, identical bytes, one copy in the MySQL level's
 *               directory: the other copies are unlinked, dirs fsynced
 *   stuck_job   update (many pushes, or in no index) and claimed with a
 *               long expired lease: requeued (REQUEUE script: update, due
 *               now, the reaper pushes it); done: the start-up recovery
 *               commit (tiering_recover_cids)
 *   stale_job   memory's has_job is set to what Redis says
 * Missing files, foreign files, duplicates with different bytes, failed
 * jobs and jobs of unknown cids are reported only: an operator decides
 * (failed jobs: RetryJob / CancelJob).
 *
 * The background scrub (--scrub-interval-s, 0 = off) never repairs, reads
 * at most --scrub-rate directory entries + stats a second, keeps its
 * result for Scrub(last=true) and logs a warning when it found anything.
 * A Scrub call is not rate limited: the operator is waiting for it.
 */
#include "tiering_int.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_log.h"
#include "tier_methods.h"
#include "tier_slot.h"
#include "tier_time.h"

#define TMP_PREFIX ".tier-tmp." /* worker/tier_move.h, TIER_MOVE_TMP_PREFIX */
#define STUCK_PUSHES 20         /* ~3 min of pushes (they back off to 10 s) */
#define STUCK_DONE_MS 10000     /* the reaper commits "done" jobs 5 s old every 2 s */
#define STUCK_CLAIM_MS 10000    /* the reaper takes back expired leases every 150 ms */
#define FINDINGS_DEFAULT 1000
#define FINDINGS_MAX 100000
#define REPLY_BUDGET (3u << 20) /* rpc messages are at most 4 MiB */

enum {
    K_MISSING,
    K_DUPLICATED,
    K_MISPLACED,
    K_FOREIGN,
    K_TEMPORARY,
    K_STALE_JOB,
    K_STUCK_JOB,
    K_N
};
static const char *const KIND[K_N] = {"missing",   "duplicated", "misplaced", "foreign",
                                      "temporary", "stale_job",  "stuck_job"};

/* A finding as kept (the last background result outlives the call). */
typedef struct {
    int kind;
    bool repaired;
    int64_t cid;
    uint64_t found_in; /* bit i: level i of the result's table */
    const char *level; /* interned, or "" */
    char *filename, *detail, *action;
} finding;

typedef struct {
    const level_table *lt; /* kept until tiering_close */
    finding *v;
    size_t n, cap, max;
    uint64_t found[K_N], repaired[K_N];
    bool truncated, repair;
    int64_t started_ms, finished_ms;
    uint64_t contents, entries, jobs;
} scrub_result;

/* A finding being written, on the stack. */
typedef struct {
    int kind;
    bool repaired;
    int64_t cid;
    uint64_t found_in;
    const char *level, *filename;
    char detail[400], action[300];
} draft;

typedef struct {
    content *c;
    const char *level; /* snapshot */
    bool has_job;      /* snapshot */
    uint64_t seen;     /* level directories that listed the file */
} item;

typedef struct {
    uint64_t level; /* bit */
    char *name;
} foreign_cand;

typedef struct {
    tiering *t;
    tier_kv *kv;
    const level_table *lt;
    bool repair;
    uint32_t rate;
    int64_t t0_us;
    uint64_t ops;
    const atomic_bool *stop;
    item *items;
    size_t n;
    size_t *ht; /* filename -> items index + 1 */
    size_t htcap;
    int64_t *jobs; /* cids of the job hashes, sorted */
    size_t njobs;
    foreign_cand *fc;
    size_t nfc, fccap;
    scrub_result *res;
    int rv;
} scan;

struct tl_scrub {
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    scrub_result *last; /* under mu */
};

/* ------------------------------------------------------------ results */

static void result_free(scrub_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].filename);
        free(r->v[i].detail);
        free(r->v[i].action);
    }
    free(r->v);
    free(r);
}

static char *dup0(const char *s)
{
    return strdup(s ? s : "");
}

/* Counts d and keeps it while there is room. */
static void record(scrub_result *r, const draft *d)
{
    r->found[d->kind]++;
    r->repaired[d->kind] += d->repaired;
    if (r->n == r->max) {
        r->truncated = true;
        return;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        finding *v = realloc(r->v, cap * sizeof(*v));
        if (v == NULL) {
            r->truncated = true;
            return;
        }
        r->v = v;
        r->cap = cap;
    }
    finding *f = &r->v[r->n++];
    f->kind = d->kind;
    f->repaired = d->repaired;
    f->cid = d->cid;
    f->found_in = d->found_in;
    f->level = d->level ? d->level : "";
    f->filename = dup0(d->filename);
    f->detail = dup0(d->detail);
    f->action = dup0(d->action);
}

static void draft_init(draft *d, int kind, int64_t cid, const char *fname, const char *level,
                       uint64_t found_in)
{
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    d->cid = cid;
    d->filename = fname;
    d->level = level;
    d->found_in = found_in;
}

static void say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ pacing, files */

/* Counts ops against the rate (0: none); false when tierd is stopping. */
static bool tick(scan *s, uint64_t ops)
{
    if (atomic_load(s->stop)) {
        s->rv = TIER_CANCELLED;
        return false;
    }
    if (s->rate == 0)
        return true;
    s->ops += ops;
    for (;;) {
        int64_t due = s->t0_us + (int64_t)(s->ops * 1000000 / s->rate);
        int64_t now = tier_mono_us();
        if (now >= due)
            return true;
        if (atomic_load(s->stop)) {
            s->rv = TIER_CANCELLED;
            return false;
        }
        usleep((useconds_t)(due - now < 100000 ? due - now : 100000));
    }
}

static void path_of(const tl_level *l, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", l->path, name); /* l->path ends in '/' */
}

static int stat_in(scan *s, size_t li, const char *name, struct stat *st)
{
    char p[4096 + 260];
    path_of(&s->lt->v[li], name, p, sizeof(p));
    tick(s, 1);
    return lstat(p, st) == 0 ? 0 : errno;
}

/* Levels whose directory holds name now. */
static uint64_t locate(scan *s, const char *name)
{
    uint64_t m = 0;
    struct stat st;
    for (size_t i = 0; i < s->lt->n; i++)
        if (stat_in(s, i, name, &st) == 0)
            m |= 1ull << i;
    return m;
}

static int level_index(const level_table *lt, const char *name)
{
    const tl_level *l = tiering_level(lt, name);
    return l ? (int)(l - lt->v) : -1;
}

/* The level whose directory is p (trailing '/' or not); -1 if none. */
static int dir_level(const level_table *lt, const char *p, size_t len)
{
    while (len > 1 && p[len - 1] == '/')
        len--;
    for (size_t i = 0; i < lt->n; i++) {
        size_t pl = strlen(lt->v[i].path);
        while (pl > 1 && lt->v[i].path[pl - 1] == '/')
            pl--;
        if (pl == len && memcmp(lt->v[i].path, p, len) == 0)
            return (int)i;
    }
    return -1;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rv = 0;
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        rv = errno;
    if (fd >= 0)
        close(fd);
    return rv;
}

/* True when the files at a and b hold the same bytes. */
static bool same_bytes(const char *a, const char *b)
{
    enum { CHUNK = 65536 };
    int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
    char *x = malloc(2 * CHUNK), *y = x ? x + CHUNK : NULL;
    struct stat sa, sb;
    bool same = x != NULL && fa >= 0 && fb >= 0 && fstat(fa, &sa) == 0 && fstat(fb, &sb) == 0 &&
                S_ISREG(sa.st_mode) && S_ISREG(sb.st_mode) && sa.st_size == sb.st_size;

    while (same) {
        ssize_t n = read(fa, x, CHUNK), m = n > 0 ? read(fb, y, (size_t)n) : 0;
        if (n <= 0) {
            same = n == 0;
            break;
        }
        same = m == n && memcmp(x, y, (size_t)n) == 0;
    }
    free(x);
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return same;
}

/* ------------------------------------------------------------ snapshot */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static item *lookup(scan *s, const char *name)
{
    if (s->htcap == 0)
        return NULL;
    for (size_t i = hash_name(name) & (s->htcap - 1);; i = (i + 1) & (s->htcap - 1)) {
        if (s->ht[i] == 0)
            return NULL;
        if (strcmp(s->items[s->ht[i] - 1].c->filename, name) == 0)
            return &s->items[s->ht[i] - 1];
    }
}

/* Copies every content's level and has_job and indexes them by filename
 * (filenames never change and contents are never freed). */
static int snapshot(scan *s)
{
    size_t cap = 0;

    free(s->items);
    free(s->ht);
    s->items = NULL, s->ht = NULL, s->n = 0, s->htcap = 0;
    for (size_t i = 0; i < NSTRIPES; i++) {
        stripe *st = &s->t->stripes[i];
        pthread_mutex_lock(&st->mu);
        for (size_t j = 0; j < st->cap; j++) {
            content *c = st->slot[j];
            if (c == NULL)
                continue;
            if (s->n == cap) {
                item *v = realloc(s->items, (cap = cap ? cap * 2 : 1024) * sizeof(*v));
                if (v == NULL) {
                    pthread_mutex_unlock(&st->mu);
                    return TIER_RESOURCE_EXHAUSTED;
                }
                s->items = v;
            }
            s->items[s->n++] = (item){c, c->level, c->has_job, 0};
        }
        pthread_mutex_unlock(&st->mu);
    }
    for (s->htcap = 64; s->htcap < 2 * s->n; s->htcap *= 2)
        ;
    if ((s->ht = calloc(s->htcap, sizeof(*s->ht))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    for (size_t k = 0; k < s->n; k++) {
        size_t i = hash_name(s->items[k].c->filename) & (s->htcap - 1);
        while (s->ht[i] != 0)
            i = (i + 1) & (s->htcap - 1);
        s->ht[i] = k + 1;
    }
    return TIER_OK;
}

static int by_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The cids of every job hash (indexed or not), sorted. */
static int scan_jobs(scan *s)
{
    int rv = tier_jobs_scan_cids(s->t->jobs, s->kv, s->stop, &s->jobs, &s->njobs);

    if (rv != TIER_OK)
        return rv;
    if (s->njobs > 0) /* jobs is NULL when there are none */
        qsort(s->jobs, s->njobs, sizeof(*s->jobs), by_i64);
    s->res->jobs = s->njobs;
    return TIER_OK;
}

static bool has_job_hash(const scan *s, int64_t cid)
{
    return s->njobs > 0 && bsearch(&cid, s->jobs, s->njobs, sizeof(cid), by_i64) != NULL;
}

/* ------------------------------------------------------------ directories */

static void temporary(scan *s, size_t li, const char *name)
{
    const tl_level *l = &s->lt->v[li];
    int64_t limit = 2 * (int64_t)s->t->deps->cfg->lease_ms, age;
    struct stat st;
    char p[4096 + 260];
    draft d;

    if (stat_in(s, li, name, &st) != 0)
        return; /* gone: its move finished with it */
    age = tier_now_ms() - ((int64_t)st.st_ctim.tv_sec * 1000 + st.st_ctim.tv_nsec / 1000000);
    draft_init(&d, K_TEMPORARY, 0, name, "", 1ull << li);
    say(d.detail, sizeof(d.detail), "a move's temporary, last changed %lld s ago",
        (long long)(age / 1000));
    if (s->repair && age < limit) {
        say(d.action, sizeof(d.action), "kept: younger than twice the lease (%lld ms)",
            (long long)limit);
    } else if (s->repair) {
        path_of(l, name, p, sizeof(p));
        if (unlink(p) == 0 || errno == ENOENT) {
            sync_dir(l->path);
            d.repaired = true;
            say(d.action, sizeof(d.action), "removed");
        } else {
            say(d.action, sizeof(d.action), "cannot remove: %s", strerror(errno));
        }
    }
    record(s->res, &d);
}

static void foreign_add(scan *s, size_t li, const char *name)
{
    if (s->nfc == s->fccap) {
        size_t cap = s->fccap ? s->fccap * 2 : 64;
        foreign_cand *v = realloc(s->fc, cap * sizeof(*v));
        if (v == NULL)
            return;
        s->fc = v;
        s->fccap = cap;
    }
    if ((s->fc[s->nfc].name = strdup(name)) != NULL)
        s->fc[s->nfc++].level = li;
}

static int read_level(scan *s, size_t li)
{
    const tl_level *l = &s->lt->v[li];
    const size_t tl = strlen(TMP_PREFIX);
    struct dirent *de;
    DIR *d = opendir(l->path);

    if (d == NULL) {
        tier_warn("fsck: cannot read level %s's directory %s: %s", l->name, l->path,
                  strerror(errno));
        return TIER_OK; /* its contents show up as missing */
    }
    while ((de = readdir(d)) != NULL && tick(s, 1)) {
        item *it;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        s->res->entries++;
        if (strncmp(de->d_name, TMP_PREFIX, tl) == 0)
            temporary(s, li, de->d_name);
        else if ((it = lookup(s, de->d_name)) != NULL)
            it->seen |= 1ull << li;
        else
            foreign_add(s, li, de->d_name);
    }
    closedir(d);
    return s->rv;
}

/* With several shards the level directories hold every shard's files,
 * and memory knows only ours: a candidate that MySQL names is another
 * shard's content, not foreign (its own writer judges it).  taken[k] is
 * set for those; false everywhere when MySQL cannot say (then they are
 * reported, which is wrong but never destructive: foreign files are
 * never repaired). */
static void others_names(scan *s, bool *taken)
{
    const char **names;
    size_t *lens;
    tier_db *db;

    if (s->t->deps->cfg->shards <= 1 || s->nfc == 0)
        return;
    names = malloc(s->nfc * sizeof(*names));
    lens = malloc(s->nfc * sizeof(*lens));
    if (names != NULL && lens != NULL && (db = tier_pool_get(s->t->deps->db)) != NULL) {
        for (size_t k = 0; k < s->nfc; k++)
            names[k] = s->fc[k].name, lens[k] = strlen(s->fc[k].name);
        if (tier_contents_taken(db, names, lens, s->nfc, taken) != TIER_OK)
            memset(taken, 0, s->nfc * sizeof(*taken));
        tier_db_pool_put(s->t->deps->db, db);
    }
    free(names);
    free(lens);
}

static void foreign(scan *s)
{
    bool *taken = calloc(s->nfc + 1, sizeof(*taken));

    if (taken == NULL)
        return;
    others_names(s, taken);
    for (size_t k = 0; k < s->nfc && tick(s, 0); k++) {
        struct stat st;
        draft d;
        if (taken[k] || lookup(s, s->fc[k].name) != NULL ||
            stat_in(s, s->fc[k].level, s->fc[k].name, &st))
            continue; /* another shard's, named meanwhile, or gone */
        draft_init(&d, K_FOREIGN, 0, s->fc[k].name, "", 1ull << s->fc[k].level);
        say(d.detail, sizeof(d.detail), "no content names it (%s, %lld bytes)",
            S_ISREG(st.st_mode)   ? "a file"
            : S_ISDIR(st.st_mode) ? "a directory"
                                  : "not a regular file",
            (long long)st.st_size);
        if (s->repair)
            say(d.action, sizeof(d.action), "none: never deleted; an operator decides");
        record(s->res, &d);
    }
    free(taken);
}

/* ------------------------------------------------------------ jobs */

typedef struct {
    tier_jobs_reply *keep; /* v points into it */
    tier_jobs_view v;
    bool exists, indexed;
    int64_t pushes;
} job_info;

/* The job hash of cid and whether its status's index names it. */
static int job_read(scan *s, int64_t cid, job_info *j)
{
    int rv;

    memset(j, 0, sizeof(*j));
    rv = tier_jobs_get(s->t->jobs, s->kv, cid, &j->v, &j->keep);
    if (rv == TIER_NOT_FOUND)
        return TIER_OK;
    if (rv != TIER_OK)
        return rv;
    j->exists = true;
    j->pushes = j->v.pushes;
    return tier_jobs_indexed(s->t->jobs, s->kv, &j->v, &j->indexed);
}

/* Still the job read before (state and fence)? */
static bool job_same(scan *s, int64_t cid, const job_info *j)
{
    tier_jobs_view v;
    tier_jobs_reply *keep;
    bool same;

    if (tier_jobs_get(s->t->jobs, s->kv, cid, &v, &keep) != TIER_OK)
        return false;
    same = v.state == j->v.state && v.fence == j->v.fence;
    tier_jobs_reply_free(keep);
    return same;
}

/* Levels of the directories the job's file may be in. */
static uint64_t job_dirs(const level_table *lt, const tier_jobs_view *v)
{
    uint64_t m = 0;
    int i;
    if ((i = dir_level(lt, v->src_dir.p, v->src_dir.len)) >= 0)
        m |= 1ull << i;
    if ((i = dir_level(lt, v->dst_dir.p, v->dst_dir.len)) >= 0)
        m |= 1ull << i;
    for (size_t a = 0; a < v->also_dirs.len;) {
        const char *p = v->also_dirs.p + a, *nl = memchr(p, '\n', v->also_dirs.len - a);
        size_t len = nl ? (size_t)(nl - p) : v->also_dirs.len - a;
        if ((i = dir_level(lt, p, len)) >= 0)
            m |= 1ull << i;
        a += len + 1;
    }
    return m;
}

static bool requeue(scan *s, int64_t cid, const job_info *j)
{
    bool ok = false;

    (void)cid;
    return tier_jobs_requeue(s->t->jobs, s->kv, tier_now_ms(), &j->v, &ok) == TIER_OK && ok;
}

/* Judges c's job (busy held).  Returns true when c's file is in flight (not
 * to be judged); sets *recover for a stuck done job (committed by the
 * caller once busy is released: the recovery takes the flag itself). */
static bool judge_job(scan *s, content *c, const job_info *j, draft *d, bool *recover)
{
    int64_t now = tier_now_ms();
    const char *ix = j->indexed ? "" : "; in no index, so the reaper never sees it";
    bool stuck = false, again = false;

    draft_init(d, K_STUCK_JOB, c->cid, c->filename, c->level, 0);
    if (j->v.state == TIER_JOB_CLAIMED) {
        if (j->v.lease_expires_ms > now - STUCK_CLAIM_MS)
            return true;
        stuck = again = true;
        say(d->detail, sizeof(d->detail), "claimed (fence %llu), lease expired %lld s ago%s",
            (unsigned long long)j->v.fence, (long long)(now - j->v.lease_expires_ms) / 1000, ix);
    } else if (j->v.state == TIER_JOB_UPDATE) {
        stuck = again = !j->indexed || j->pushes >= STUCK_PUSHES;
        say(d->detail, sizeof(d->detail), "update, pushed %lld times, never claimed%s",
            (long long)j->pushes, ix);
    } else if (j->v.state == TIER_JOB_DONE) {
        stuck = !j->indexed || now - j->v.updated_ms >= STUCK_DONE_MS;
        *recover = stuck && s->repair;
        say(d->detail, sizeof(d->detail), "done %lld s ago, level not committed%s",
            (long long)(now - j->v.updated_ms) / 1000, ix);
    } else {
        stuck = true;
        say(d->detail, sizeof(d->detail), "%.*s: %.*s", (int)j->v.status.len, j->v.status.p,
            (int)j->v.reason.len, j->v.reason.p);
        if (s->repair)
            say(d->action, sizeof(d->action), "none: RetryJob or CancelJob decide");
    }
    if (stuck && again && s->repair) {
        d->repaired = requeue(s, c->cid, j);
        say(d->action, sizeof(d->action), "%s",
            d->repaired ? "requeued: due now, the reaper pushes it"
                        : "not requeued: the job changed meanwhile (or Redis failed)");
    }
    if (stuck && !*recover)
        record(s->res, d);
    return false;
}

/* ------------------------------------------------------------ contents */

static void judge_stale(scan *s, content *c, const job_info *j)
{
    draft d;
    if (c->has_job == j->exists)
        return;
    draft_init(&d, K_STALE_JOB, c->cid, c->filename, c->level, 0);
    if (j->exists)
        say(d.detail, sizeof(d.detail), "Redis has a %.*s job; tierd's memory says none",
            (int)j->v.status.len, j->v.status.p);
    else
        say(d.detail, sizeof(d.detail), "tierd's memory says a job exists; Redis has none");
    if (s->repair) {
        tiering_set(s->t, c, c->level, j->exists);
        d.repaired = true;
        say(d.action, sizeof(d.action), "memory corrected");
    }
    record(s->res, &d);
}

/* Unlinks the copies of c's file outside its level's directory. */
static bool drop_copies(scan *s, content *c, uint64_t where, int dbi, char *what, size_t len)
{
    char p[4096 + 260];
    bool ok = true;
    size_t o = 0;

    what[0] = '\0';
    for (size_t i = 0; i < s->lt->n; i++) {
        if (!(where & (1ull << i)) || (int)i == dbi)
            continue;
        path_of(&s->lt->v[i], c->filename, p, sizeof(p));
        if (unlink(p) != 0 && errno != ENOENT) {
            ok = false;
            continue;
        }
        sync_dir(s->lt->v[i].path);
        o += (size_t)snprintf(what + o, o < len ? len - o : 0, "%s%s", o ? ", " : "",
                              s->lt->v[i].name);
    }
    return ok;
}

static void judge_dup(scan *s, content *c, const job_info *j, uint64_t where, int dbi)
{
    char a[4096 + 260], b[4096 + 260], names[256];
    int first = __builtin_ctzll(where);
    bool same = true;
    draft d;

    path_of(&s->lt->v[first], c->filename, a, sizeof(a));
    for (size_t i = (size_t)first + 1; i < s->lt->n && same; i++) {
        if (!(where & (1ull << i)))
            continue;
        path_of(&s->lt->v[i], c->filename, b, sizeof(b));
        same = same_bytes(a, b);
    }
    draft_init(&d, K_DUPLICATED, c->cid, c->filename, c->level, where);
    say(d.detail, sizeof(d.detail), "%d copies, %s", __builtin_popcountll(where),
        same ? "identical bytes" : "different bytes");
    if (!s->repair) {
    } else if (j->exists) {
        say(d.action, sizeof(d.action), "none: a job is active for it");
    } else if (!same) {
        say(d.action, sizeof(d.action), "none: the copies differ; an operator decides");
    } else if (dbi < 0 || !(where & (1ull << dbi))) {
        say(d.action, sizeof(d.action), "none: no copy is in level %s's directory", c->level);
    } else {
        d.repaired = drop_copies(s, c, where, dbi, names, sizeof(names));
        say(d.action, sizeof(d.action), "removed the copies in %s; kept %s's", names, c->level);
    }
    record(s->res, &d);
}

static void judge_misplaced(scan *s, content *c, const job_info *j, uint64_t where)
{
    const tl_level *l = &s->lt->v[__builtin_ctzll(where)];
    const char *was = c->level;
    draft d;
    int rv;

    draft_init(&d, K_MISPLACED, c->cid, c->filename, c->level, where);
    say(d.detail, sizeof(d.detail), "in %s's directory; MySQL says %s", l->name, c->level);
    if (s->repair && j->exists) {
        say(d.action, sizeof(d.action), "none: its job names other directories");
    } else if (s->repair) {
        rv = tiering_commit_level(s->t, c, l->name);
        d.repaired = rv == TIER_OK;
        say(d.action, sizeof(d.action), "%s level %s (was %s)%s%s",
            d.repaired ? "committed" : "could not commit", l->name, was, d.repaired ? "" : ": ",
            d.repaired ? "" : tier_status_name(rv));
    }
    record(s->res, &d);
}

/* The file of c (busy held): missing, duplicated, misplaced or fine. */
static void judge_file(scan *s, content *c, const job_info *j, uint64_t where)
{
    int dbi = level_index(s->lt, c->level);
    uint64_t explain = j->exists ? job_dirs(s->lt, &j->v) : 0;
    draft d;

    if (where == 0) {
        draft_init(&d, K_MISSING, c->cid, c->filename, c->level, 0);
        say(d.detail, sizeof(d.detail), "in no level directory%s",
            j->exists ? " (its job cannot move it either)" : "");
        if (s->repair)
            say(d.action, sizeof(d.action), "none: an operator restores the file");
        record(s->res, &d);
    } else if (__builtin_popcountll(where) > 1) {
        /* Both copies in the job's directories: a move stopped between
         * "destination in place" and "source removed"; its retry ends it. */
        if (!(j->exists && (where & ~explain) == 0))
            judge_dup(s, c, j, where, dbi);
    } else if (dbi < 0 || where != 1ull << dbi) {
        if (!(j->exists && (where & explain)))
            judge_misplaced(s, c, j, where);
    }
}

/* Steps 4's judgement of one content; see the top of the file. */
static void judge(scan *s, item *it)
{
    content *c = it->c;
    bool recover = false, skip = false;
    uint64_t where;
    job_info j;
    draft d;

    tiering_acquire(s->t, &c, 1);
    if ((s->rv = job_read(s, c->cid, &j)) == TIER_OK) {
        where = locate(s, c->filename);
        if (j.exists && !job_same(s, c->cid, &j))
            skip = true; /* a worker claimed or finished it while we looked */
        /* A level migration started while the walk ran: its files are
         * between two directories this walk's table does not both know. */
        if (tiering_migrating(s->t))
            skip = true;
        if (!skip) {
            judge_stale(s, c, &j);
            if (!(j.exists && judge_job(s, c, &j, &d, &recover)))
                judge_file(s, c, &j, where);
        }
    }
    tiering_release(s->t, &c, 1);
    tier_jobs_reply_free(j.keep);
    if (recover) {
        int rv = tiering_recover_cids(s->t, s->kv, &c->cid, 1, 0);
        d.repaired = rv == TIER_OK;
        say(d.action, sizeof(d.action), "%s",
            d.repaired ? "committed by the recovery path" : "recovery commit failed");
        record(s->res, &d);
    }
}

static void judge_contents(scan *s)
{
    for (size_t k = 0; k < s->n && s->rv == TIER_OK && tick(s, 0); k++) {
        item *it = &s->items[k];
        int dbi = level_index(s->lt, it->level);
        bool fine =
            dbi >= 0 && it->seen == 1ull << dbi && !it->has_job && !has_job_hash(s, it->c->cid);
        s->res->contents++;
        if (!fine)
            judge(s, it);
    }
}

/* Step 5: job hashes whose cid tierd does not know.  Report only: no
 * content, no busy flag, nothing of ours to fix. */
static void unknown_jobs(scan *s)
{
    for (size_t k = 0; k < s->njobs && s->rv == TIER_OK; k++) {
        char fname[256];
        job_info j;
        draft d;
        if (tiering_find(s->t, s->jobs[k]) != NULL)
            continue;
        if ((s->rv = job_read(s, s->jobs[k], &j)) == TIER_OK && j.exists) {
            snprintf(fname, sizeof(fname), "%.*s", (int)j.v.filename.len, j.v.filename.p);
            draft_init(&d, K_STALE_JOB, s->jobs[k], fname, "", 0);
            say(d.detail, sizeof(d.detail), "a job (status %.*s) for a content tierd does not know",
                (int)j.v.status.len, j.v.status.p);
            if (s->repair)
                say(d.action, sizeof(d.action), "none: an operator deletes it");
            record(s->res, &d);
        }
        tier_jobs_reply_free(j.keep);
    }
}

/* ------------------------------------------------------------ one scan */

static void scan_free(scan *s)
{
    for (size_t i = 0; i < s->nfc; i++)
        free(s->fc[i].name);
    free(s->fc);
    free(s->items);
    free(s->ht);
    free(s->jobs);
}

static int scan_run(scan *s)
{
    int rv;
    if ((rv = snapshot(s)) != TIER_OK || (rv = scan_jobs(s)) != TIER_OK)
        return rv;
    for (size_t i = 0; i < s->lt->n && s->rv == TIER_OK; i++)
        read_level(s, i);
    if (s->rv == TIER_OK)
        judge_contents(s);
    if (s->rv == TIER_OK)
        unknown_jobs(s);
    if (s->rv == TIER_OK && s->nfc > 0 && (rv = snapshot(s)) != TIER_OK)
        return rv;
    if (s->rv == TIER_OK)
        foreign(s);
    return s->rv;
}

/* One scrub; *out is the result (also on errors: what was found so far). */
static int scrub(tiering *t, bool repair, uint32_t rate, size_t max, scrub_result **out)
{
    scrub_result *r = calloc(1, sizeof(*r));
    scan s = {.t = t, .repair = repair, .rate = rate, .stop = &t->scrub->stop};
    int rv;

    if (r == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if ((s.kv = tier_pool_get(t->deps->kv)) == NULL) {
        free(r);
        return TIER_UNAVAILABLE;
    }
    s.lt = r->lt = atomic_load(&t->levels);
    assert(s.lt->n <= 64); /* SetLevels: at most 64 levels, one bit each */
    r->max = max;
    r->repair = repair;
    r->started_ms = tier_now_ms();
    s.res = r;
    s.t0_us = tier_mono_us();
    rv = scan_run(&s);
    r->finished_ms = tier_now_ms();
    tier_kv_pool_put(t->deps->kv, s.kv);
    scan_free(&s);
    *out = r;
    return rv;
}

/* ------------------------------------------------------------ the method */

static void to_proto(tier_rpc_ctx *call, const scrub_result *r, size_t max, Tier__ScrubReply *rep)
{
    size_t n = r->n < max ? r->n : max, budget = 0;

    rep->findings = tier_rpc_alloc(call, (n + 1) * sizeof(*rep->findings));
    for (size_t i = 0; i < n && budget < REPLY_BUDGET; i++) {
        const finding *f = &r->v[i];
        Tier__Finding *p = tier_rpc_alloc(call, sizeof(*p));
        tier__finding__init(p);
        p->kind = (char *)KIND[f->kind];
        p->cid = f->cid;
        p->filename = tier_rpc_strdup(call, f->filename);
        p->level = (char *)f->level;
        p->detail = tier_rpc_strdup(call, f->detail);
        p->action = tier_rpc_strdup(call, f->action);
        p->repaired = f->repaired;
        p->found_in = tier_rpc_alloc(call, (r->lt->n + 1) * sizeof(*p->found_in));
        for (size_t l = 0; l < r->lt->n; l++)
            if (f->found_in & (1ull << l))
                p->found_in[p->n_found_in++] = (char *)r->lt->v[l].name;
        budget +=
            64 + strlen(f->filename) + strlen(f->detail) + strlen(f->action) + 16 * p->n_found_in;
        rep->findings[rep->n_findings++] = p;
    }
    rep->truncated = r->truncated || rep->n_findings < r->n;
    rep->counts = tier_rpc_alloc(call, K_N * sizeof(*rep->counts));
    for (size_t k = 0; k < K_N; k++) {
        Tier__ScrubCount *c = tier_rpc_alloc(call, sizeof(*c));
        tier__scrub_count__init(c);
        c->kind = (char *)KIND[k];
        c->found = r->found[k];
        c->repaired = r->repaired[k];
        rep->counts[rep->n_counts++] = c;
    }
    rep->started_ms = r->started_ms;
    rep->finished_ms = r->finished_ms;
    rep->repair = r->repair;
    rep->contents = r->contents;
    rep->entries = r->entries;
    rep->jobs = r->jobs;
}

/* ---- several shards: every shard's fsck in one answer */

static void add_counts(Tier__ScrubReply *rep, const Tier__ScrubReply *x)
{
    for (size_t i = 0; i < x->n_counts; i++)
        for (size_t j = 0; j < rep->n_counts; j++)
            if (strcmp(rep->counts[j]->kind, x->counts[i]->kind) == 0) {
                rep->counts[j]->found += x->counts[i]->found;
                rep->counts[j]->repaired += x->counts[i]->repaired;
            }
}

/* Each shard scrubs its own contents (fsck of the others' files is theirs,
 * see others_names); their findings follow ours, at most max in all. */
static int scrub_shards(tiering *t, tier_rpc_ctx *call, const Tier__ScrubRequest *req,
                        Tier__ScrubReply *rep, size_t max)
{
    Tier__ScrubRequest sub = *req;
    ProtobufCMessage *r[TIER_SHARDS_MAX] = {0};
    size_t total = rep->n_findings;
    char err[256];
    int rv;

    sub.local = true;
    rv = tierd_peers_fanout(t->deps->peers, call, TIER_M_SCRUB, &sub.base,
                            &tier__scrub_reply__descriptor, r, tierd_peers_time_left(call, 600000),
                            err, sizeof(err));
    if (rv != TIER_OK)
        return tier_rpc_set_message(call, rv, "fsck across shards: %s", err);
    for (unsigned k = 0; k < TIER_SHARDS_MAX; k++)
        if (r[k] != NULL)
            total += ((Tier__ScrubReply *)r[k])->n_findings;
    Tier__Finding **all = tier_rpc_alloc(call, (total + 1) * sizeof(*all));
    if (all == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(all, rep->findings, rep->n_findings * sizeof(*all));
    total = rep->n_findings;
    for (unsigned k = 0; k < TIER_SHARDS_MAX; k++) {
        const Tier__ScrubReply *x = (const Tier__ScrubReply *)r[k];
        if (x == NULL)
            continue;
        for (size_t i = 0; i < x->n_findings && total < max; i++)
            all[total++] = x->findings[i];
        rep->truncated = rep->truncated || x->truncated || x->n_findings > max;
        add_counts(rep, x);
        rep->contents += x->contents, rep->entries += x->entries, rep->jobs += x->jobs;
        if (x->started_ms < rep->started_ms)
            rep->started_ms = x->started_ms;
        if (x->finished_ms > rep->finished_ms)
            rep->finished_ms = x->finished_ms;
    }
    rep->findings = all;
    rep->n_findings = total;
    return TIER_OK;
}

static int h_scrub(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__ScrubRequest *req = (const Tier__ScrubRequest *)in;
    Tier__ScrubReply *rep = (Tier__ScrubReply *)out;
    size_t max = req->max_findings == 0             ? FINDINGS_DEFAULT
                 : req->max_findings > FINDINGS_MAX ? FINDINGS_MAX
                                                    : req->max_findings;
    scrub_result *r = NULL;
    int rv;

    if (req->last) {
        pthread_mutex_lock(&t->scrub->mu);
        if (t->scrub->last != NULL)
            to_proto(call, t->scrub->last, max, rep);
        rv = t->scrub->last != NULL ? TIER_OK : TIER_NOT_FOUND;
        pthread_mutex_unlock(&t->scrub->mu);
        return rv == TIER_OK ? rv
                             : tier_rpc_set_message(call, rv, "no background scrub has run yet");
    }
    /* A level migration moves files between a level's old and new
     * directories: the walk would find them "misplaced" and "missing" and a
     * repair would undo the migration.  fsck waits for it to end. */
    if (tiering_migrating(t))
        return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION,
                                    "a level migration is running (tierctl levels shows it); "
                                    "fsck runs once it ends");
    rv = scrub(t, req->repair, 0, max, &r);
    if (rv == TIER_OK)
        to_proto(call, r, max, rep);
    else
        rv = tier_rpc_set_message(call, rv, "scrub stopped: %s", tier_status_name(rv));
    result_free(r);
    if (rv == TIER_OK && t->deps->peers != NULL && !req->local)
        rv = scrub_shards(t, call, req, rep, max);
    return rv;
}

int tiering_scrub_register(tiering *t, tier_rpc_server *srv)
{
    return tier_rpc_server_add(srv, TIER_M_SCRUB, &tier__scrub_request__descriptor,
                               &tier__scrub_reply__descriptor, h_scrub, t, 0);
}

/* ------------------------------------------------------------ background */

static void log_result(const scrub_result *r)
{
    char line[512];
    uint64_t total = 0;
    size_t o = 0;

    for (size_t k = 0; k < K_N; k++) {
        total += r->found[k];
        if (r->found[k] > 0 && o < sizeof(line))
            o += (size_t)snprintf(line + o, sizeof(line) - o, " %s=%llu", KIND[k],
                                  (unsigned long long)r->found[k]);
    }
    if (total > 0)
        tier_warn("fsck: %llu disagreement(s):%s (tierctl fsck lists them)",
                  (unsigned long long)total, line);
    else
        tier_info("fsck: clean (%llu contents, %llu entries, %llu jobs, %lld ms)",
                  (unsigned long long)r->contents, (unsigned long long)r->entries,
                  (unsigned long long)r->jobs, (long long)(r->finished_ms - r->started_ms));
}

static void *scrub_main(void *arg)
{
    tiering *t = arg;
    struct tl_scrub *sc = t->scrub;
    uint32_t every = t->deps->cfg->scrub_interval_s;

    pthread_mutex_lock(&sc->mu);
    while (!atomic_load(&sc->stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += every;
        while (!atomic_load(&sc->stop) && pthread_cond_timedwait(&sc->cv, &sc->mu, &ts) == 0)
            ;
        if (atomic_load(&sc->stop))
            break;
        pthread_mutex_unlock(&sc->mu);
        scrub_result *r = NULL;
        int rv = tiering_migrating(t)
                     ? TIER_CANCELLED /* h_scrub says why */
                     : scrub(t, false, t->deps->cfg->scrub_rate, FINDINGS_DEFAULT, &r);
        if (rv == TIER_OK)
            log_result(r);
        else if (rv != TIER_CANCELLED)
            tier_warn("fsck: background scrub failed: %s", tier_status_name(rv));
        pthread_mutex_lock(&sc->mu);
        if (rv == TIER_OK) {
            result_free(sc->last);
            sc->last = r;
        } else {
            result_free(r);
        }
    }
    pthread_mutex_unlock(&sc->mu);
    return NULL;
}

int tiering_scrub_open(tiering *t)
{
    struct tl_scrub *sc = calloc(1, sizeof(*sc));

    if (sc == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    pthread_mutex_init(&sc->mu, NULL);
    pthread_cond_init(&sc->cv, NULL);
    t->scrub = sc;
    if (t->deps->cfg->scrub_interval_s == 0)
        return TIER_OK;
    if (pthread_create(&sc->th, NULL, scrub_main, t) != 0)
        return TIER_RESOURCE_EXHAUSTED;
    sc->started = true;
    tier_info("fsck: background scrub every %u s, %u entries/s", t->deps->cfg->scrub_interval_s,
              t->deps->cfg->scrub_rate);
    return TIER_OK;
}

void tiering_scrub_close(tiering *t)
{
    struct tl_scrub *sc = t->scrub;

    if (sc == NULL)
        return;
    pthread_mutex_lock(&sc->mu);
    atomic_store(&sc->stop, true);
    pthread_cond_broadcast(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
    if (sc->started)
        pthread_join(sc->th, NULL);
    result_free(sc->last);
    pthread_mutex_destroy(&sc->mu);
    pthread_cond_destroy(&sc->cv);
    free(sc);
    t->scrub = NULL;
}
