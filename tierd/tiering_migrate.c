/*
 * tiering_migrate.c -- level migrations: SetLevels gave a level that holds
 * contents a new directory (issue 10, item 7).
 *
 * SetLevels writes the new table and a level_migration row (sql/008) in one
 * transaction; the level's tl_level.old_path names the directory its files
 * are being moved out of, and each of its contents says whether its file is
 * still there (content.in_old; tiering_content_dir gives the directory a
 * content's file is in now).  The planner thread calls
 * tiering_migrate_round about once a second while a migration runs: it
 * offers a move per content still in the old directory to the policy's
 * start gate (budgets matching from = to = the level, or "" wildcards;
 * capacity never holds a same-level move; at most max_inflight planner jobs
 * at once, TL_MIGRATE_INFLIGHT under the seed policy) and starts the
 * chosen ones as ordinary jobs (target = the content's own level, source
 * the old directory, destination the new one; the REPORT script's
 * "migrate" form), so they are claimed, moved, completed, recovered and
 * reaped like every other move.  Their commit writes the same level:
 * MySQL's trigger writes no update_history row for it.
 *
 * Retiring: when no content of the level is in the old directory and none
 * has a job (checked under the levels write lock, which keeps every job
 * creation out), the old directory is removed if empty (else left, with a
 * warning naming what is in it), then the row is deleted and the table is
 * swapped for one without old_path.  A crash anywhere in between leaves the
 * row, and the next tierd finds every file in the new directory (lstat at
 * start-up) and retires again.
 */
#include "tiering_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_contents.h"
#include "tier_crash.h"
#include "tier_log.h"
#include "tier_time.h"

#define CANDIDATES_MAX 10000 /* migration moves offered to the gate per round */

/* ------------------------------------------------------------ start-up, SetLevels */

/* Caller: tiering_each (c's stripe mutex held). */
static void locate_fn(void *arg, content *c)
{
    const level_table *lt = arg;
    const tl_level *l = tiering_level(lt, c->level);
    char path[TIER_PATH_MAX + 260];
    struct stat st;

    if (l == NULL || l->old_path == NULL) {
        c->in_old = false;
        return;
    }
    snprintf(path, sizeof(path), "%s%s", l->path, c->filename);
    c->in_old = lstat(path, &st) != 0;
}

int tiering_migrate_load(tiering *t, tier_db *db, level_table *lt)
{
    tier_migration_row *m;
    size_t n;
    bool any = false;
    int rv = tier_contents_migrations(db, &m, &n);

    if (rv != TIER_OK)
        return rv;
    if (!tiering_table_migrating(lt, m, n))
        rv = TIER_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n; i++) {
        if (tiering_level(lt, tiering_intern(t, m[i].level, strlen(m[i].level))) == NULL) {
            tier_warn("tiering: migration of level %s from %s: no such level (ignored)", m[i].level,
                      m[i].old_path);
            continue;
        }
        tier_info("tiering: level %s is migrating from %s to %s", m[i].level, m[i].old_path,
                  m[i].new_path);
        any = true;
    }
    free(m);
    if (rv == TIER_OK && any)
        tiering_each(t, locate_fn, lt);
    return rv;
}

static void mark_fn(void *arg, content *c)
{
    if (c->level == (const char *)arg)
        c->in_old = true;
}

void tiering_migrate_mark(tiering *t, const char *level)
{
    tiering_each(t, mark_fn, (void *)level);
}

bool tiering_migrating(tiering *t)
{
    const level_table *lt = atomic_load(&t->levels);
    for (size_t i = 0; i < lt->n; i++)
        if (lt->v[i].old_path != NULL)
            return true;
    return false;
}

/* ------------------------------------------------------------ one round */

typedef struct {
    const level_table *lt;
    int64_t left[TIER_POLICY_LEVELS_MAX]; /* in the old directory */
    int64_t jobs[TIER_POLICY_LEVELS_MAX]; /* contents of the level with a job */
    int64_t inflight;                     /* planner jobs (window moves and migrations) */
    tier_policy_move *mv;
    size_t nmv;
} scan;

static void scan_fn(void *arg, content *c)
{
    scan *s = arg;
    const tl_level *l = tiering_level(s->lt, c->level);
    size_t li;

    /* Planner jobs, and jobs of contents still in an old directory (a
     * restarted tierd no longer knows which of those it started). */
    if (c->has_job && (c->moving_to != NULL || (c->in_old && l != NULL && l->old_path != NULL)))
        s->inflight++;
    if (l == NULL || l->old_path == NULL || (li = (size_t)(l - s->lt->v)) >= TIER_POLICY_LEVELS_MAX)
        return;
    if (c->in_old)
        s->left[li]++;
    if (c->has_job)
        s->jobs[li]++;
    if (c->in_old && !c->has_job && !c->busy && s->nmv < CANDIDATES_MAX)
        s->mv[s->nmv++] = (tier_policy_move){.cid = c->cid,
                                             .from = (int)li,
                                             .to = (int)li,
                                             .rule = TIER_POLICY_RULE_RANGE,
                                             .score = c->count,
                                             .size = c->size < 0 ? 0 : c->size};
}

/* Starts the chosen moves (levels read lock taken here); returns how many
 * jobs were made. */
static size_t start_moves(tiering *t, const level_table *lt, const scan *s, const bool *start)
{
    content **cs = calloc(s->nmv + 1, sizeof(*cs));
    tl_report *r = calloc(s->nmv + 1, sizeof(*r));
    size_t m = 0, nr = 0, made = 0;

    if (cs == NULL || r == NULL)
        goto out;
    pthread_rwlock_rdlock(&t->levels_rw);
    if (atomic_load(&t->levels) != lt) /* SetLevels or a retirement ran: next round */
        goto unlock;
    for (size_t i = 0; i < s->nmv; i++) {
        content *c;
        if (start[i] && (c = tiering_find(t, s->mv[i].cid)) != NULL)
            cs[m++] = c;
    }
    tiering_acquire(t, cs, m);
    for (size_t i = 0; i < m; i++) {
        content *c = cs[i];
        const tl_level *l;
        if (i > 0 && c == cs[i - 1])
            continue;
        l = tiering_level(lt, c->level);
        /* Busy is ours: skip what moved, got a job or was migrated since. */
        if (l == NULL || l->old_path == NULL || !c->in_old || c->has_job)
            continue;
        r[nr++] = (tl_report){c, c->count < 0 ? l->min : c->count, l, NULL, true};
    }
    if (nr > 0 && tiering_apply_reports(t, r, nr, NULL) == TIER_OK)
        for (size_t i = 0; i < nr; i++) {
            tiering_lock(t, r[i].c);
            if (r[i].c->has_job) {
                r[i].c->moving_to = r[i].target->name; /* counted against max_inflight */
                made++;
            }
            tiering_unlock(t, r[i].c);
        }
    tiering_release(t, cs, m);
unlock:
    pthread_rwlock_unlock(&t->levels_rw);
out:
    free(cs);
    free(r);
    return made;
}

/* What is left in a retired migration's old directory, for the warning. */
static void describe_left(const char *dir, char *buf, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t u = 0, n = 0;

    buf[0] = '\0';
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n++ < 5 && u < len)
            u += (size_t)snprintf(buf + u, len - u, "%s%s", n > 1 ? ", " : "", de->d_name);
    }
    closedir(d);
    if (n > 5 && u < len)
        snprintf(buf + u, len - u, " and %zu more", n - 5);
}

typedef struct {
    const char *level;
    bool busy; /* some content of the level is in the old directory or has a job */
} still;

static void still_fn(void *arg, content *c)
{
    still *s = arg;
    if (c->level == s->level && (c->in_old || c->has_job || c->busy))
        s->busy = true;
}

/* Ends level li's migration if nothing is left (admin mutex and levels
 * write lock taken here, so no job can start meanwhile). */
static void retire(tiering *t, const char *level)
{
    level_table *lt, *nt = NULL;
    const tl_level *l;
    tier_level_row *rows = NULL;
    tier_migration_row *mig = NULL;
    size_t nm = 0;
    still s = {level, false};
    char left[512], old[TIER_PATH_MAX + 2];
    tier_db *db;
    int rv;

    pthread_mutex_lock(&t->admin_mu);
    pthread_rwlock_wrlock(&t->levels_rw);
    lt = atomic_load(&t->levels);
    if ((l = tiering_level(lt, level)) == NULL || l->old_path == NULL)
        goto out;
    tiering_each(t, still_fn, &s);
    if (s.busy)
        goto out;
    snprintf(old, sizeof(old), "%s", l->old_path);
    TIER_CRASH_AT("migrate.before_retire");
    if (rmdir(old) != 0 && errno != ENOENT) {
        int e = errno;
        describe_left(old, left, sizeof(left));
        tier_warn("tiering: migration of level %s: the old directory %s is left (%s)%s%s", level,
                  old, strerror(e), left[0] ? ": it holds " : "", left);
    }
    TIER_CRASH_AT("migrate.after_rmdir");
    if ((db = tier_pool_get(t->deps->db)) == NULL)
        goto out; /* next round */
    rv = tier_contents_migration_done(db, level);
    tier_db_pool_put(t->deps->db, db);
    if (rv != TIER_OK) {
        tier_warn("tiering: migration of level %s: cannot end it in MySQL (%s); retrying", level,
                  tier_status_name(rv));
        goto out;
    }
    rows = calloc(lt->n + 1, sizeof(*rows));
    mig = calloc(lt->n + 1, sizeof(*mig));
    if (rows == NULL || mig == NULL)
        goto out; /* memory keeps old_path: the next round retires again */
    for (size_t i = 0; i < lt->n; i++) {
        const tl_level *x = &lt->v[i];
        snprintf(rows[i].name, sizeof(rows[i].name), "%s", x->name);
        rows[i].min_counts = x->min;
        rows[i].max_counts = x->max;
        snprintf(rows[i].path, sizeof(rows[i].path), "%s", x->path);
        if (x->old_path != NULL && x != l) {
            snprintf(mig[nm].level, sizeof(mig[nm].level), "%s", x->name);
            snprintf(mig[nm].old_path, sizeof(mig[nm].old_path), "%s", x->old_path);
            snprintf(mig[nm].new_path, sizeof(mig[nm].new_path), "%s", x->path);
            mig[nm++].started_ms = x->migrate_started_ms;
        }
    }
    if ((nt = tiering_table_new(t, rows, lt->n)) == NULL || !tiering_table_migrating(nt, mig, nm)) {
        tiering_table_free(nt);
        goto out;
    }
    tier_info("tiering: level %s migrated to %s in %lld s", level, l->path,
              (long long)((tier_now_ms() - l->migrate_started_ms) / 1000));
    nt->retired = lt; /* readers may still hold it: freed at close */
    atomic_store(&t->levels, nt);
    tiering_policy_retable(t);
out:
    pthread_rwlock_unlock(&t->levels_rw);
    pthread_mutex_unlock(&t->admin_mu);
    free(rows);
    free(mig);
}

size_t tiering_migrate_round(tiering *t, const tier_policy *p, tier_policy_gate *gate,
                             pthread_mutex_t *gate_mu, int max_inflight, bool *waiting)
{
    const level_table *lt = atomic_load(&t->levels);
    tier_policy_level lv[TIER_POLICY_LEVELS_MAX];
    tier_policy_summary sum;
    tier_policy_start_stats st;
    const char *done[TIER_POLICY_LEVELS_MAX];
    size_t nl = lt->n < TIER_POLICY_LEVELS_MAX ? lt->n : TIER_POLICY_LEVELS_MAX, nd = 0, k,
           made = 0, room;
    scan *s = calloc(1, sizeof(*s));
    bool *start = NULL;

    *waiting = false;
    if (s == NULL || (s->mv = calloc(CANDIDATES_MAX, sizeof(*s->mv))) == NULL ||
        (start = calloc(CANDIDATES_MAX, sizeof(*start))) == NULL)
        goto out;
    s->lt = lt;
    tiering_each(t, scan_fn, s);
    *waiting = s->nmv > 0;
    /* Progress for ListLevels and the metrics. */
    pthread_mutex_lock(&t->mig_mu);
    t->mig_n = 0;
    for (size_t i = 0; i < nl; i++)
        if (lt->v[i].old_path != NULL) {
            t->mig_name[t->mig_n] = lt->v[i].name;
            t->mig_left[t->mig_n++] = s->left[i];
            if (s->left[i] == 0 && s->jobs[i] == 0)
                done[nd++] = lt->v[i].name;
        }
    pthread_mutex_unlock(&t->mig_mu);
    if (t->deps->metrics != NULL && t->deps->metrics->migrate_left != NULL)
        for (size_t i = 0; i < nl; i++)
            if (lt->v[i].old_path != NULL)
                tier_metric_set(t->deps->metrics->migrate_left, (double)s->left[i], lt->v[i].name);
    if (s->nmv > 0) {
        memset(lv, 0, sizeof(lv));
        memset(&sum, 0, sizeof(sum));
        for (size_t i = 0; i < nl; i++) {
            lv[i].name = lt->v[i].name;
            lv[i].min = lt->v[i].min;
            lv[i].max = lt->v[i].max;
        }
        room = s->inflight < max_inflight ? (size_t)(max_inflight - s->inflight) : 0;
        pthread_mutex_lock(gate_mu);
        k = tier_policy_start(p, lv, nl, gate, tier_now_ms(), s->mv, s->nmv, room, &sum, start,
                              &st);
        pthread_mutex_unlock(gate_mu);
        if (k > 0)
            made = start_moves(t, lt, s, start);
        if (made > 0 && t->deps->metrics != NULL && t->deps->metrics->migrate_started != NULL)
            tier_metric_add(t->deps->metrics->migrate_started, (double)made);
    }
    for (size_t i = 0; i < nd; i++)
        retire(t, done[i]);
out:
    if (s != NULL)
        free(s->mv);
    free(s);
    free(start);
    return made;
}
