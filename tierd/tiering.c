/*
 * tiering.c -- seed 000: levels, contents and view reports.  The move jobs
 * are in tiering_jobs.c; tiering_int.h explains the state and its locks.
 *
 * ReportViews is the hot path: where nothing moves (the count's level is
 * the content's level and it has no job) the answer comes from memory under
 * one stripe mutex per report, with no Redis and no MySQL.  Only reports
 * that need a job, or meet one, go on to Redis, in one script call.
 */
#include "tiering_int.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tier_contents.h"
#include "tier_crash.h"
#include "tier_log.h"
#include "tier_methods.h"
#include "tier_name.h"
#include "tier_time.h"

/* ------------------------------------------------------------ levels */

const char *tiering_intern(tiering *t, const char *name, size_t len)
{
    interned *i;

    pthread_mutex_lock(&t->intern_mu);
    for (i = t->names; i != NULL; i = i->next)
        if (strlen(i->name) == len && memcmp(i->name, name, len) == 0)
            break;
    if (i == NULL && (i = malloc(sizeof(*i) + len + 1)) != NULL) {
        memcpy(i->name, name, len);
        i->name[len] = '\0';
        i->next = t->names;
        t->names = i;
    }
    pthread_mutex_unlock(&t->intern_mu);
    return i ? i->name : "";
}

const tl_level *tiering_level(const level_table *lt, const char *name)
{
    for (size_t i = 0; i < lt->n; i++)
        if (lt->v[i].name == name)
            return &lt->v[i];
    return NULL;
}

/* Levels are sorted and never overlap: the first whose max holds count. */
const tl_level *tiering_target(const level_table *lt, int64_t count)
{
    for (size_t i = 0; i < lt->n; i++)
        if (count >= lt->v[i].min && count <= lt->v[i].max)
            return &lt->v[i];
    return NULL;
}

level_table *tiering_table_new(tiering *t, const tier_level_row *rows, size_t n)
{
    level_table *lt = calloc(1, sizeof(*lt));
    if (lt == NULL || (lt->v = calloc(n ? n : 1, sizeof(tl_level))) == NULL) {
        free(lt);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(rows[i].path);
        bool slash = pl > 0 && rows[i].path[pl - 1] == '/';
        lt->v[i].name = tiering_intern(t, rows[i].name, strlen(rows[i].name));
        lt->v[i].min = rows[i].min_counts;
        lt->v[i].max = rows[i].max_counts;
        if ((lt->v[i].path = malloc(pl + 2)) != NULL)
            snprintf(lt->v[i].path, pl + 2, "%s%s", rows[i].path, slash ? "" : "/");
    }
    lt->n = n;
    return lt;
}

bool tiering_table_migrating(level_table *lt, const tier_migration_row *m, size_t nm)
{
    for (size_t k = 0; k < nm; k++)
        for (size_t i = 0; i < lt->n; i++) {
            if (strcmp(lt->v[i].name, m[k].level) != 0)
                continue;
            size_t pl = strlen(m[k].old_path);
            bool slash = pl > 0 && m[k].old_path[pl - 1] == '/';
            free(lt->v[i].old_path);
            if ((lt->v[i].old_path = malloc(pl + 2)) == NULL)
                return false;
            snprintf(lt->v[i].old_path, pl + 2, "%s%s", m[k].old_path, slash ? "" : "/");
            lt->v[i].migrate_started_ms = m[k].started_ms;
        }
    return true;
}

const char *tiering_level_dir(const tl_level *l, bool in_old)
{
    if (l == NULL)
        return "";
    return l->old_path != NULL && in_old ? l->old_path : l->path;
}

const char *tiering_content_dir(const level_table *lt, const content *c)
{
    return tiering_level_dir(tiering_level(lt, c->level), c->in_old);
}

void tiering_table_free(level_table *lt)
{
    while (lt != NULL) {
        level_table *next = lt->retired;
        for (size_t i = 0; i < lt->n; i++) {
            free(lt->v[i].path);
            free(lt->v[i].old_path);
        }
        free(lt->v);
        free(lt);
        lt = next;
    }
}

/* ------------------------------------------------------------ contents */

static stripe *stripe_of(tiering *t, int64_t cid)
{
    uint64_t h = (uint64_t)cid * 0x9E3779B97F4A7C15ull;
    return &t->stripes[h >> 56];
}

static size_t slot_of(const stripe *s, int64_t cid)
{
    uint64_t h = (uint64_t)cid * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h >> 20) & (s->cap - 1);
}

/* Caller holds s->mu. */
static content *stripe_find(stripe *s, int64_t cid)
{
    if (s->cap == 0)
        return NULL;
    for (size_t i = slot_of(s, cid);; i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == NULL)
            return NULL;
        if (s->slot[i]->cid == cid)
            return s->slot[i];
    }
}

static bool stripe_put(stripe *s, content *c)
{
    if ((s->n + 1) * 4 > s->cap * 3) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        content **old = s->slot, **slot = calloc(cap, sizeof(*slot));
        size_t oldcap = s->cap;
        if (slot == NULL)
            return false;
        s->slot = slot;
        s->cap = cap;
        s->n = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i] != NULL)
                stripe_put(s, old[i]);
        free(old);
    }
    size_t i = slot_of(s, c->cid);
    while (s->slot[i] != NULL)
        i = (i + 1) & (s->cap - 1);
    s->slot[i] = c;
    s->n++;
    return true;
}

static int add_content(tiering *t, int64_t cid, const char *level, const char *fname, size_t flen,
                       int64_t size)
{
    content *c = calloc(1, sizeof(*c));
    stripe *s = stripe_of(t, cid);
    bool ok;

    if (c == NULL || (c->filename = malloc(flen + 1)) == NULL) {
        free(c);
        return TIER_RESOURCE_EXHAUSTED;
    }
    memcpy(c->filename, fname, flen);
    c->filename[flen] = '\0';
    c->cid = cid;
    c->level = tiering_intern(t, level, strlen(level));
    c->count = -1;
    c->size = size < 0 ? -1 : size;
    c->since_ms = c->born_ms = tier_now_ms(); /* loading overwrites them from MySQL */
    pthread_mutex_lock(&s->mu);
    ok = stripe_put(s, c);
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        free(c->filename);
        free(c);
        return TIER_RESOURCE_EXHAUSTED;
    }
    int64_t m = atomic_load(&t->max_cid);
    while (cid > m && !atomic_compare_exchange_weak(&t->max_cid, &m, cid))
        ;
    return TIER_OK;
}

content *tiering_find(tiering *t, int64_t cid)
{
    stripe *s = stripe_of(t, cid);
    pthread_mutex_lock(&s->mu);
    content *c = stripe_find(s, cid);
    pthread_mutex_unlock(&s->mu);
    return c; /* contents are never freed while tierd runs */
}

static int by_cid(const void *a, const void *b)
{
    int64_t x = (*(content *const *)a)->cid, y = (*(content *const *)b)->cid;
    return x < y ? -1 : x > y;
}

void tiering_acquire(tiering *t, content **cs, size_t n)
{
    qsort(cs, n, sizeof(*cs), by_cid);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && cs[i] == cs[i - 1])
            continue;
        stripe *s = stripe_of(t, cs[i]->cid);
        pthread_mutex_lock(&s->mu);
        while (cs[i]->busy)
            pthread_cond_wait(&s->cv, &s->mu);
        cs[i]->busy = true;
        pthread_mutex_unlock(&s->mu);
    }
}

void tiering_release(tiering *t, content **cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && cs[i] == cs[i - 1])
            continue;
        stripe *s = stripe_of(t, cs[i]->cid);
        pthread_mutex_lock(&s->mu);
        assert(cs[i]->busy); /* released only by the thread that acquired it */
        cs[i]->busy = false;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

void tiering_set(tiering *t, content *c, const char *level, bool has_job)
{
    stripe *s = stripe_of(t, c->cid);
    pthread_mutex_lock(&s->mu);
    if (c->level != level)
        c->since_ms = tier_now_ms(); /* the dwell time counts from here */
    c->level = level;
    c->has_job = has_job;
    if (!has_job)
        c->moving_to = NULL;
    pthread_mutex_unlock(&s->mu);
}

void tiering_set_in_old(tiering *t, content *c, bool in_old)
{
    stripe *s = stripe_of(t, c->cid);
    pthread_mutex_lock(&s->mu);
    c->in_old = in_old;
    pthread_mutex_unlock(&s->mu);
}

void tiering_lock(tiering *t, const content *c)
{
    pthread_mutex_lock(&stripe_of(t, c->cid)->mu);
}

void tiering_unlock(tiering *t, const content *c)
{
    pthread_mutex_unlock(&stripe_of(t, c->cid)->mu);
}

void tiering_each(tiering *t, void (*fn)(void *arg, content *c), void *arg)
{
    for (size_t i = 0; i < NSTRIPES; i++) {
        stripe *s = &t->stripes[i];
        pthread_mutex_lock(&s->mu);
        for (size_t j = 0; j < s->cap; j++)
            if (s->slot[j] != NULL)
                fn(arg, s->slot[j]);
        pthread_mutex_unlock(&s->mu);
    }
}

void tiering_set_size(tiering *t, content *c, int64_t size)
{
    stripe *s = stripe_of(t, c->cid);
    if (size < 0)
        return;
    pthread_mutex_lock(&s->mu);
    c->size = size;
    pthread_mutex_unlock(&s->mu);
}

int64_t tiering_size(tiering *t, const content *c)
{
    stripe *s = stripe_of(t, c->cid);
    pthread_mutex_lock(&s->mu);
    int64_t size = c->size;
    pthread_mutex_unlock(&s->mu);
    return size;
}

static int load_content(void *arg, int64_t cid, const char *level, const char *fname, size_t flen,
                        int64_t size)
{
    return add_content(arg, cid, level, fname, flen, size) != TIER_OK;
}

/* Levels and contents from MySQL. */
static int load_state(tiering *t)
{
    tier_db *db = tier_pool_get(t->deps->db);
    tier_level_row *rows = NULL;
    size_t n = 0;
    int rv;

    if (db == NULL) {
        tier_error("MySQL: cannot connect to load levels and contents");
        return TIER_UNAVAILABLE;
    }
    if ((rv = tier_contents_levels(db, &rows, &n)) == TIER_OK) {
        atomic_store(&t->levels, tiering_table_new(t, rows, n));
        if (atomic_load(&t->levels) == NULL)
            rv = TIER_RESOURCE_EXHAUSTED;
    }
    free(rows);
    if (rv == TIER_OK)
        rv = tier_contents_scan(db, load_content, t);
    if (rv == TIER_OK)
        rv = tiering_migrate_load(t, db, atomic_load(&t->levels));
    tier_db_pool_put(t->deps->db, db);
    return rv;
}

/* ------------------------------------------------------------ helpers */

static const char *status_name(int code)
{
    return tier_status_name(code);
}

static tier_db *get_db(tiering *t, tier_rpc_ctx *call)
{
    tier_db *db = tier_pool_get(t->deps->db);
    if (db == NULL)
        tier_rpc_set_message(call, TIER_UNAVAILABLE, "MySQL: cannot connect");
    return db;
}

static int db_error(tier_rpc_ctx *call, int rv, const char *what)
{
    if (rv == TIER_UNAVAILABLE)
        return tier_rpc_set_message(call, rv, "MySQL: unavailable (%s)", what);
    return tier_rpc_set_message(call, rv, "MySQL: %s failed (%s)", what, status_name(rv));
}

/* ------------------------------------------------------------ AddContent */

/* max_cid + 1, or 0 when that would overflow (caller holds admin_mu). */
static int64_t next_cid(tiering *t)
{
    return tierd_shard_next_cid(t->deps->cfg, atomic_load(&t->max_cid));
}

static int do_add(tiering *t, tier_rpc_ctx *call, const Tier__AddContentRequest *req,
                  Tier__AddContentReply *rep)
{
    level_table *lt = atomic_load(&t->levels);
    const tl_level *dl = tiering_target(lt, 0);
    size_t flen = strlen(req->filename);
    char path[4096 + 512];
    struct stat sb;
    int64_t cid = req->cid;
    tier_content_row row;
    tier_db *db;
    int rv;

    if (dl == NULL || dl->min != 0)
        return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION, "no default level");
    snprintf(path, sizeof(path), "%s%s", dl->path, req->filename);
    errno = 0;
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION,
                                    "%s is not a regular file in level %s (%s)", req->filename,
                                    dl->name, errno ? strerror(errno) : "not a file");
    /* Picking max + 1 keeps cids dense and is O(1); max == INT64_MAX (an
     * operator chose it) leaves no cid above it, and we do not search for
     * holes below: the caller can still name a free cid itself. */
    if (cid == 0 && (cid = next_cid(t)) == 0)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED,
                                    "no cid left above %lld: give a cid", (long long)INT64_MAX);
    if (req->cid != 0 && tiering_find(t, cid) != NULL)
        return tier_rpc_set_message(call, TIER_ALREADY_EXISTS, "cid %lld is taken", (long long)cid);
    if ((db = get_db(t, call)) == NULL)
        return TIER_UNAVAILABLE;
    rv = tier_contents_insert(db, cid, dl->name, req->filename, flen, (int64_t)sb.st_size);
    if (rv == TIER_OK)
        rv = tier_contents_get(db, cid, &row);
    tier_db_pool_put(t->deps->db, db);
    if (rv == TIER_ALREADY_EXISTS) /* not in memory, so the cid is free: the name is not */
        return tier_rpc_set_message(call, rv, "filename %s is taken", req->filename);
    if (rv != TIER_OK)
        return db_error(call, rv, "insert content");
    if ((rv = add_content(t, cid, dl->name, req->filename, flen, (int64_t)sb.st_size)) != TIER_OK)
        return tier_rpc_set_message(call, rv, "out of memory");
    rep->content = tier_rpc_alloc(call, sizeof(Tier__Content));
    tier__content__init(rep->content);
    rep->content->cid = cid;
    rep->content->level = (char *)dl->name;
    rep->content->filename = tier_rpc_strdup(call, req->filename);
    rep->content->generate_time_ms = row.generate_ms;
    rep->content->update_time_ms = row.update_ms;
    rep->content->size_bytes = row.size;
    return TIER_OK;
}

static int h_add_content(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                         ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__AddContentRequest *req = (const Tier__AddContentRequest *)in;
    int rv;

    /* strlen is the wire length: the rpc server refused any string field
     * holding a NUL before this runs (common/tier_wire.h). */
    if (!tier_name_valid(req->filename, strlen(req->filename)))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "bad filename: 1..255 bytes of UTF-8, no '/', no control "
                                    "character, not . or ..");
    if (req->cid < 0)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "cid must be > 0 (0: pick)");
    if (req->cid != 0 && !tierd_shard_owns(t->deps->cfg, req->cid))
        return tierd_shard_moved(call, t->deps, req->cid);
    pthread_mutex_lock(&t->admin_mu); /* serialises cid picking and SetLevels */
    rv = do_add(t, call, req, (Tier__AddContentReply *)out);
    pthread_mutex_unlock(&t->admin_mu);
    return rv;
}

/* ------------------------------------------------------------ AddContents */

#define ADDS_MAX 5000 /* AddContents items per call (tier.proto) */

typedef struct {
    Tier__AddContentResult **res;
    const Tier__AddContentsRequest *req;
    int64_t *sizes; /* of each item's file, from the precheck's lstat */
} adds;

__attribute__((format(printf, 4, 5))) static int
fail_item(tier_rpc_ctx *call, Tier__AddContentResult *r, int code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    r->code = code;
    r->message = tier_rpc_strdup(call, buf);
    return code;
}

static bool item_ok(const Tier__AddContentResult *r)
{
    return (int)r->code == TIER_OK;
}

/* Order item indexes by filename / by cid, then index (qsort_r). */
static int by_name(const void *a, const void *b, void *arg)
{
    const Tier__AddContentsRequest *req = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(req->items[x]->filename, req->items[y]->filename);
    return c ? c : (x > y) - (x < y);
}

static int by_item_cid(const void *a, const void *b, void *arg)
{
    const Tier__AddContentsRequest *req = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int64_t p = req->items[x]->cid, q = req->items[y]->cid;
    return p != q ? (p > q) - (p < q) : (x > y) - (x < y);
}

static bool same_key(const Tier__AddContentsRequest *req, size_t x, size_t y, bool cid)
{
    return cid ? req->items[x]->cid == req->items[y]->cid
               : strcmp(req->items[x]->filename, req->items[y]->filename) == 0;
}

/* Marks ALREADY_EXISTS every item whose filename (or named cid) an earlier
 * OK item of the call has: sorted, so O(n log n) for a hostile 5,000. */
static void adds_dups(tier_rpc_ctx *call, adds *a, size_t *idx, bool cid)
{
    size_t n = a->req->n_items, prev = SIZE_MAX;

    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), cid ? by_item_cid : by_name, (void *)a->req);
    for (size_t k = 0; k < n; k++) {
        size_t i = idx[k];
        if (!item_ok(a->res[i]) || (cid && a->req->items[i]->cid == 0))
            continue;
        if (prev != SIZE_MAX && same_key(a->req, idx[prev], i, cid))
            fail_item(call, a->res[i], TIER_ALREADY_EXISTS,
                      "%s is taken (by an earlier item of this call)", cid ? "cid" : "filename");
        else
            prev = k;
    }
}

/* AddContent's checks that need no database, item by item; a filename or
 * cid that an earlier item of the call also has is ALREADY_EXISTS. */
static void adds_precheck(tiering *t, tier_rpc_ctx *call, const tl_level *dl, adds *a, size_t *idx)
{
    size_t n = a->req->n_items;
    char path[4096 + 512];
    struct stat sb;

    for (size_t i = 0; i < n; i++) {
        const Tier__AddContentRequest *it = a->req->items[i];
        Tier__AddContentResult *r = a->res[i];
        idx[i] = i;
        if (!tier_name_valid(it->filename, strlen(it->filename)))
            fail_item(call, r, TIER_INVALID_ARGUMENT,
                      "bad filename: 1..255 bytes of UTF-8, no '/', no control character, not "
                      ". or ..");
        else if (it->cid < 0)
            fail_item(call, r, TIER_INVALID_ARGUMENT, "cid must be > 0 (0: pick)");
        else if (snprintf(path, sizeof(path), "%s%s", dl->path, it->filename) < 0 ||
                 lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            fail_item(call, r, TIER_FAILED_PRECONDITION,
                      "%s is not a regular file in the default level", it->filename);
        else if (it->cid != 0 && tiering_find(t, it->cid) != NULL)
            fail_item(call, r, TIER_ALREADY_EXISTS, "cid %lld is taken", (long long)it->cid);
        else
            a->sizes[i] = (int64_t)sb.st_size;
    }
    adds_dups(call, a, idx, false);
    adds_dups(call, a, idx, true);
}

/* Picks cids for items without one: above memory's max and every cid the
 * call names, so picked and named cids never meet (AddContent's rule). */
static void adds_pick(tiering *t, tier_rpc_ctx *call, adds *a, int64_t *cids)
{
    int64_t m = atomic_load(&t->max_cid);
    size_t n = a->req->n_items;

    for (size_t i = 0; i < n; i++)
        if (item_ok(a->res[i]) && a->req->items[i]->cid > m)
            m = a->req->items[i]->cid;
    for (size_t i = 0; i < n; i++) {
        if (!item_ok(a->res[i]))
            continue;
        cids[i] = a->req->items[i]->cid;
        if (cids[i] == 0 && (cids[i] = tierd_shard_next_cid(t->deps->cfg, m)) == 0)
            fail_item(call, a->res[i], TIER_RESOURCE_EXHAUSTED,
                      "no cid left above %lld: give a cid", (long long)INT64_MAX);
        else if (a->req->items[i]->cid == 0)
            m = cids[i];
    }
}

/* The database part: taken names first (so no cid is picked for them),
 * then cids, then one transaction of INSERTs. */
static int adds_write(tiering *t, tier_rpc_ctx *call, const tl_level *dl, adds *a, int64_t *cids)
{
    size_t n = a->req->n_items, m = 0, k = 0;
    const char **names = tier_rpc_alloc(call, n * sizeof(*names) + 1);
    size_t *lens = tier_rpc_alloc(call, n * sizeof(*lens) + 1),
           *pos = tier_rpc_alloc(call, n * sizeof(*pos) + 1);
    int64_t *mc = tier_rpc_alloc(call, 4 * n * sizeof(*mc) + 1), *gen = mc + n, *upd = gen + n,
            *sz = upd + n;
    bool *taken = tier_rpc_alloc(call, n + 1);
    tier_db *db;
    int rv;

    if (!names || !lens || !pos || !mc || !taken)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (item_ok(a->res[i])) {
            names[m] = a->req->items[i]->filename;
            lens[m] = strlen(names[m]);
            pos[m++] = i;
        }
    if ((db = get_db(t, call)) == NULL)
        return TIER_UNAVAILABLE;
    if ((rv = tier_contents_taken(db, names, lens, m, taken)) != TIER_OK) {
        tier_db_pool_put(t->deps->db, db);
        return db_error(call, rv, "look up filenames");
    }
    for (size_t j = 0; j < m; j++)
        if (taken[j])
            fail_item(call, a->res[pos[j]], TIER_ALREADY_EXISTS, "filename %s is taken", names[j]);
    adds_pick(t, call, a, cids);
    for (size_t j = 0; j < m; j++) {
        if (!item_ok(a->res[pos[j]]))
            continue;
        names[k] = names[j], lens[k] = lens[j], mc[k] = cids[pos[j]];
        sz[k] = a->sizes[pos[j]], pos[k++] = pos[j];
    }
    rv = tier_contents_insert_many(db, mc, dl->name, names, lens, sz, k, gen, upd);
    tier_db_pool_put(t->deps->db, db);
    if (rv != TIER_OK)
        return db_error(call, rv, "insert contents");
    for (size_t j = 0; j < k; j++) {
        Tier__AddContentResult *r = a->res[pos[j]];
        if (add_content(t, mc[j], dl->name, names[j], lens[j], sz[j]) != TIER_OK) {
            fail_item(call, r, TIER_RESOURCE_EXHAUSTED, "out of memory");
            continue; /* in MySQL, not in memory: the next start loads it */
        }
        r->content = tier_rpc_alloc(call, sizeof(Tier__Content));
        tier__content__init(r->content);
        r->content->cid = mc[j];
        r->content->level = (char *)dl->name;
        r->content->filename = (char *)names[j]; /* the request outlives the reply */
        r->content->generate_time_ms = gen[j];
        r->content->update_time_ms = upd[j];
        r->content->size_bytes = sz[j];
    }
    return TIER_OK;
}

static int h_add_contents(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                          ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__AddContentsRequest *req = (const Tier__AddContentsRequest *)in;
    Tier__AddContentsReply *rep = (Tier__AddContentsReply *)out;
    size_t n = req->n_items;
    adds a = {.req = req};
    int rv;

    /* A result is at most ~700 bytes (a 255-byte name in the content or in
     * the message): 5000 of them fit the 4 MiB reply. */
    if (n > ADDS_MAX)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "items: at most %d per call (got %zu)", ADDS_MAX, n);
    for (size_t i = 0; i < n; i++) /* a batch is one shard's, whole */
        if (req->items[i]->cid > 0 && !tierd_shard_owns(t->deps->cfg, req->items[i]->cid))
            return tierd_shard_moved(call, t->deps, req->items[i]->cid);
    Tier__AddContentResult *rs = tier_rpc_alloc(call, n * sizeof(*rs) + 1);
    size_t *idx = tier_rpc_alloc(call, n * sizeof(*idx) + 1);
    int64_t *cids = tier_rpc_alloc(call, n * sizeof(*cids) + 1);
    a.res = tier_rpc_alloc(call, n * sizeof(*a.res) + 1);
    a.sizes = tier_rpc_alloc(call, n * sizeof(*a.sizes) + 1);
    if (rs == NULL || idx == NULL || cids == NULL || a.res == NULL || a.sizes == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++) {
        a.sizes[i] = -1;
        tier__add_content_result__init(&rs[i]);
        rs[i].message = (char *)"";
        a.res[i] = &rs[i];
    }
    rep->results = a.res;
    rep->n_results = n;
    pthread_mutex_lock(&t->admin_mu); /* serialises cid picking and SetLevels */
    const tl_level *dl = tiering_target(atomic_load(&t->levels), 0);
    if (dl == NULL || dl->min != 0) {
        rv = tier_rpc_set_message(call, TIER_FAILED_PRECONDITION, "no default level");
    } else {
        adds_precheck(t, call, dl, &a, idx);
        rv = adds_write(t, call, dl, &a, cids);
    }
    pthread_mutex_unlock(&t->admin_mu);
    return rv;
}

/* ------------------------------------------------------------ ReportViews */

static void result_init(Tier__ViewResult *r, int64_t cid, int64_t count)
{
    tier__view_result__init(r);
    r->cid = cid;
    r->count = count;
    r->target = r->db_level = r->filename = r->worker_id = r->status = (char *)"";
}

#define VIEWS_MAX ((int64_t)1 << 40) /* one increment (tier.proto) */

static bool report_valid(const Tier__ViewReport *in, Tier__ViewResult *r)
{
    const char *why = in->count < 0                            ? "count must be >= 0"
                      : in->views < 0 || in->views > VIEWS_MAX ? "views: 0 .. 2^40"
                      : in->count != 0 && in->views != 0 ? "count and views: give one, not both"
                                                         : NULL;
    if (why != NULL) {
        r->code = TIER__RPC__CODE__INVALID_ARGUMENT;
        r->message = (char *)why;
    }
    return why == NULL;
}

/* Under a window policy a report only feeds the buckets: the planner
 * moves.  r says where the content belongs now. */
static void report_window(tiering *t, content *c, int64_t now, Tier__ViewResult *r)
{
    const char *want = tiering_policy_want(t, c, now);
    r->target = (char *)want;
    r->status = (char *)(c->has_job || c->busy ? "moving" : want == c->level ? "done" : "planned");
}

/* Fast path for one report: fills r (and *rec, *persist: views to make
 * durable first); returns the content when the report needs Redis (a job
 * is needed or exists), else NULL. */
static content *report_fast(tiering *t, const level_table *lt, tier_rpc_ctx *call,
                            const Tier__ViewReport *in, Tier__ViewResult *r, int64_t now,
                            tl_viewrec *rec, bool *persist)
{
    const tl_level *tl = NULL;
    content *c;
    stripe *s;
    bool done;

    result_init(r, in->cid, in->count);
    *persist = false;
    if (!report_valid(in, r))
        return NULL;
    s = stripe_of(t, in->cid);
    pthread_mutex_lock(&s->mu);
    if ((c = stripe_find(s, in->cid)) == NULL) {
        pthread_mutex_unlock(&s->mu);
        r->code = TIER__RPC__CODE__NOT_FOUND;
        r->message = (char *)"no such content";
        return NULL;
    }
    *persist = tiering_views_note(t, c, in->count, in->views, now, rec);
    r->count = c->count; /* an increment's new total */
    r->db_level = (char *)c->level;
    r->filename = c->filename;
    if (tiering_policy_mode(t) == TIER_POLICY_WINDOW) {
        report_window(t, c, now, r);
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    if ((tl = tiering_target(lt, r->count)) == NULL) {
        pthread_mutex_unlock(&s->mu);
        r->code = TIER__RPC__CODE__OUT_OF_RANGE;
        r->message = tier_rpc_strdup(call, "count is above the top level");
        return NULL;
    }
    r->target = (char *)tl->name;
    done = !c->busy && !c->has_job && tl->name == c->level;
    pthread_mutex_unlock(&s->mu);
    if (done)
        r->status = (char *)"done";
    return done ? NULL : c;
}

static int report_slow(tiering *t, tier_rpc_ctx *call, Tier__ViewResult **res, size_t *idx,
                       content **cs, size_t n)
{
    tl_report *r = tier_rpc_alloc(call, n * sizeof(*r));
    content **sorted = tier_rpc_alloc(call, n * sizeof(*sorted));
    const level_table *lt;
    size_t m = 0;

    if (r == NULL || sorted == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(sorted, cs, n * sizeof(*cs));
    /* Jobs are created only under the read lock, against the table current
     * then: SetLevels (write lock) checks "no jobs" and swaps the table with
     * no report in between, so no job ever aims at a directory SetLevels
     * just changed. */
    pthread_rwlock_rdlock(&t->levels_rw);
    lt = atomic_load(&t->levels);
    tiering_acquire(t, sorted, n);
    for (size_t i = 0; i < n; i++) {
        content *c = cs[i];
        Tier__ViewResult *x = res[idx[i]];
        const tl_level *tl = tiering_target(lt, x->count);
        if (tl == NULL) { /* the table changed while we waited */
            x->code = TIER__RPC__CODE__OUT_OF_RANGE;
            x->message = (char *)"count is above the top level";
            continue;
        }
        x->target = (char *)tl->name;
        x->db_level = (char *)c->level; /* may have changed while we waited */
        if (!c->has_job && tl->name == c->level) {
            x->status = (char *)"done";
            continue;
        }
        r[m++] = (tl_report){c, x->count, tl, x, false};
    }
    if (m > 0)
        tiering_apply_reports(t, r, m, call); /* per-item codes say how it went */
    tiering_release(t, sorted, n);
    pthread_rwlock_unlock(&t->levels_rw);
    return TIER_OK;
}

#define REPORTS_MAX 8000 /* ReportViews items per call (tier.proto) */

/* Makes the noted views durable; the reports whose views could not be
 * written say so (and start no move). */
static void report_persist(tiering *t, tl_viewrec *recs, size_t *at, size_t n,
                           Tier__ViewResult **res, content **slow, size_t *idx, size_t *nslow)
{
    int rv = tiering_views_persist(t, recs, n);
    size_t k = 0;

    if (rv == TIER_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        res[at[i]]->code = rv;
        res[at[i]]->message = rv == TIER_ABORTED ? (char *)"tierd is no longer the writer"
                                                 : (char *)"MySQL: views not recorded";
        res[at[i]]->status = (char *)"";
    }
    for (size_t i = 0; i < *nslow; i++) /* drop them from the slow path */
        if (res[idx[i]]->code == TIER__RPC__CODE__OK) {
            slow[k] = slow[i];
            idx[k++] = idx[i];
        }
    *nslow = k;
}

static int h_report_views(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                          ProtobufCMessage *out)
{
    tiering *t = arg;
    Tier__ReportViewsRequest *req = (Tier__ReportViewsRequest *)in;
    Tier__ReportViewsReply *rep = (Tier__ReportViewsReply *)out;
    level_table *lt = atomic_load(&t->levels);
    size_t n = req->n_reports, nslow = 0, nrec = 0;
    int64_t now = tier_now_ms();
    Tier__ViewResult *rs, **res;
    content **slow = NULL;
    size_t *idx = NULL, *at = NULL;
    tl_viewrec *recs = NULL, rec;

    /* The reply has a ViewResult per report, at most ~500 bytes (255-byte
     * file name, 128-byte worker id): 8000 of them fit the 4 MiB limit. */
    if (n > REPORTS_MAX)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "reports: at most %d per call (got %zu)", REPORTS_MAX, n);
    for (size_t i = 0; i < n; i++) /* a batch is one shard's, whole */
        if (!tierd_shard_owns(t->deps->cfg, req->reports[i]->cid))
            return tierd_shard_moved(call, t->deps, req->reports[i]->cid);
    tierd_stats_add(t->deps->stats, TIERD_STAT_REPORTS, n);
    rs = tier_rpc_alloc(call, n * sizeof(*rs) + 1);
    res = tier_rpc_alloc(call, n * sizeof(*res) + 1);
    if (rs == NULL || res == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    /* The other arrays only when a report needs them: the seed's hot path
     * (absolute counts, nothing moves) allocates nothing more. */
    for (size_t i = 0; i < n; i++) {
        content *c;
        bool persist;
        res[i] = &rs[i];
        c = report_fast(t, lt, call, req->reports[i], res[i], now, &rec, &persist);
        if (persist && recs == NULL &&
            ((recs = tier_rpc_alloc(call, n * sizeof(*recs))) == NULL ||
             (at = tier_rpc_alloc(call, n * sizeof(*at))) == NULL))
            return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
        if (persist) {
            recs[nrec] = rec;
            at[nrec++] = i;
        }
        if (c == NULL)
            continue;
        if (slow == NULL && ((slow = tier_rpc_alloc(call, n * sizeof(*slow))) == NULL ||
                             (idx = tier_rpc_alloc(call, n * sizeof(*idx))) == NULL))
            return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
        slow[nslow] = c;
        idx[nslow++] = i;
    }
    rep->results = res;
    rep->n_results = n;
    if (nrec > 0)
        report_persist(t, recs, at, nrec, res, slow, idx, &nslow);
    if (nslow > 0)
        return report_slow(t, call, res, idx, slow, nslow);
    return TIER_OK;
}

/* ------------------------------------------------------------ GetContent / GetHistory */

static int h_get_content(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                         ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__GetContentRequest *req = (const Tier__GetContentRequest *)in;
    Tier__GetContentReply *rep = (Tier__GetContentReply *)out;
    content *c = tiering_find(t, req->cid);
    tier_content_row row;
    tier_db *db;
    int rv;

    if (!tierd_shard_owns(t->deps->cfg, req->cid))
        return tierd_shard_moved(call, t->deps, req->cid);
    if (c == NULL)
        return tier_rpc_set_message(call, TIER_NOT_FOUND, "no content %lld", (long long)req->cid);
    if ((db = get_db(t, call)) == NULL)
        return TIER_UNAVAILABLE;
    rv = tier_contents_get(db, req->cid, &row);
    tier_db_pool_put(t->deps->db, db);
    if (rv != TIER_OK)
        return db_error(call, rv, "read content");
    rep->content = tier_rpc_alloc(call, sizeof(Tier__Content));
    tier__content__init(rep->content);
    rep->content->cid = req->cid;
    rep->content->level = tier_rpc_strdup(call, row.level);
    rep->content->filename = tier_rpc_strndup(call, row.filename, row.flen);
    rep->content->generate_time_ms = row.generate_ms;
    rep->content->update_time_ms = row.update_ms;
    rep->content->size_bytes = row.size;
    if (!c->has_job)
        return TIER_OK;
    /* The job, if any: a GetJob of our own. */
    Tier__GetJobRequest jr = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply jrep = TIER__GET_JOB_REPLY__INIT;
    jr.cid = req->cid;
    rv = tiering_get_job(t, call, &jr, &jrep);
    if (rv == TIER_OK)
        rep->job = jrep.job;
    return rv == TIER_NOT_FOUND ? TIER_OK : rv;
}

static int h_get_history(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                         ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__GetHistoryRequest *req = (const Tier__GetHistoryRequest *)in;
    Tier__GetHistoryReply *rep = (Tier__GetHistoryReply *)out;
    unsigned limit = req->limit == 0 ? 100 : req->limit > 10000 ? 10000 : req->limit;
    tier_history_row *rows;
    size_t n = 0;
    tier_db *db;
    int rv;

    if (tiering_find(t, req->cid) == NULL)
        return tier_rpc_set_message(call, TIER_NOT_FOUND, "no content %lld", (long long)req->cid);
    if ((rows = malloc(limit * sizeof(*rows))) == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    if ((db = get_db(t, call)) == NULL) {
        free(rows);
        return TIER_UNAVAILABLE;
    }
    rv = tier_contents_history(db, req->cid, limit, rows, &n);
    tier_db_pool_put(t->deps->db, db);
    if (rv != TIER_OK) {
        free(rows);
        return db_error(call, rv, "read history");
    }
    rep->entries = tier_rpc_alloc(call, (n + 1) * sizeof(*rep->entries));
    for (size_t i = 0; i < n; i++) {
        Tier__HistoryEntry *e = tier_rpc_alloc(call, sizeof(*e));
        tier__history_entry__init(e);
        e->cid = req->cid;
        e->old_update_time_ms = rows[i].old_ms;
        e->old_level = tier_rpc_strdup(call, rows[i].old_level);
        e->new_update_time_ms = rows[i].new_ms;
        e->new_level = tier_rpc_strdup(call, rows[i].new_level);
        rep->entries[i] = e;
    }
    rep->n_entries = n;
    free(rows);
    return TIER_OK;
}

/* ------------------------------------------------------------ levels */

static void fill_levels(tier_rpc_ctx *call, const level_table *lt, Tier__ListLevelsReply *rep,
                        const tiering *t)
{
    rep->levels = tier_rpc_alloc(call, (lt->n + 1) * sizeof(*rep->levels));
    for (size_t i = 0; i < lt->n; i++) {
        Tier__Level *l = tier_rpc_alloc(call, sizeof(*l));
        tier__level__init(l);
        l->name = (char *)lt->v[i].name;
        l->min_counts = lt->v[i].min;
        l->max_counts = lt->v[i].max;
        l->path = tier_rpc_strdup(call, lt->v[i].path);
        if (lt->v[i].old_path != NULL)
            l->migrating_from = tier_rpc_strdup(call, lt->v[i].old_path);
        if (lt->v[i].old_path != NULL && t != NULL) {
            pthread_mutex_lock((pthread_mutex_t *)&t->mig_mu);
            l->migrating_remaining = -1; /* no round has counted it yet */
            for (size_t k = 0; k < t->mig_n; k++)
                if (t->mig_name[k] == lt->v[i].name)
                    l->migrating_remaining = t->mig_left[k];
            pthread_mutex_unlock((pthread_mutex_t *)&t->mig_mu);
        }
        rep->levels[i] = l;
    }
    rep->n_levels = lt->n;
}

static int h_list_levels(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                         ProtobufCMessage *out)
{
    tiering *t = arg;
    (void)in;
    fill_levels(call, atomic_load(&t->levels), (Tier__ListLevelsReply *)out, t);
    return TIER_OK;
}

static int by_min(const void *a, const void *b)
{
    const tier_level_row *x = a, *y = b;
    return x->min_counts < y->min_counts ? -1 : x->min_counts > y->min_counts;
}

/* The checks of SetLevels on rows sorted by min_counts. */
static int check_levels(tier_rpc_ctx *call, const tier_level_row *v, size_t n)
{
    if (n == 0)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "no levels");
    if (v[0].min_counts != 0)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "no level starts at 0");
    for (size_t i = 0; i < n; i++) {
        if (v[i].min_counts > v[i].max_counts)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "level %s: min > max",
                                        v[i].name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[i].name, v[j].name) == 0)
                return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "level %s twice",
                                            v[i].name);
        if (i == 0)
            continue;
        if (v[i].min_counts <= v[i - 1].max_counts)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "levels %s and %s overlap",
                                        v[i - 1].name, v[i].name);
        /* No overflow: min > the previous max >= 0 here. */
        if (v[i].min_counts - 1 != v[i - 1].max_counts)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "gap between levels %s and %s",
                                        v[i - 1].name, v[i].name);
    }
    return TIER_OK;
}

/* The directory of each level: canonical, not a system directory, under a
 * storage root, and neither shared with nor nested in another level's.
 * Nothing is created before all of this holds. */
static int check_dirs(tiering *t, tier_rpc_ctx *call, const tier_level_row *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = tier_path_forbidden(v[i].path);
        bool rooted = false;
        if (why != NULL)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "level %s: %s %s", v[i].name,
                                        v[i].path, why);
        for (size_t r = 0; r < t->nroots && !rooted; r++)
            rooted = tier_path_under(v[i].path, t->roots[r]);
        if (!rooted)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                        "level %s: %s is under no storage root (tierd "
                                        "--storage-root)",
                                        v[i].name, v[i].path);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(v[i].path, v[j].path) == 0)
                return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                            "levels %s and %s share the directory %s", v[j].name,
                                            v[i].name, v[i].path);
            if (tier_path_under(v[i].path, v[j].path) || tier_path_under(v[j].path, v[i].path))
                return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                            "levels %s and %s: one directory is inside the other",
                                            v[j].name, v[i].name);
        }
    }
    return TIER_OK;
}

static int parse_level(tier_rpc_ctx *call, const Tier__Level *l, tier_level_row *row)
{
    size_t nl = strlen(l->name);
    const char *why;

    if (!tier_level_name_valid(l->name, nl))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "bad level name: 1..32 of [A-Za-z0-9_-]");
    if (l->min_counts < 0 || l->max_counts < 0)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "level %s: negative count",
                                    l->name);
    if ((why = tier_path_canon(l->path, row->path, sizeof(row->path))) != NULL)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "level %s: path %s", l->name, why);
    memcpy(row->name, l->name, nl + 1);
    row->min_counts = l->min_counts;
    row->max_counts = l->max_counts;
    return TIER_OK;
}

int tiering_parse_levels(tiering *t, tier_rpc_ctx *call, Tier__Level **levels, size_t n,
                         tier_level_row *v)
{
    int rv;
    for (size_t i = 0; i < n; i++)
        if ((rv = parse_level(call, levels[i], &v[i])) != TIER_OK)
            return rv;
    qsort(v, n, sizeof(*v), by_min);
    if ((rv = check_levels(call, v, n)) != TIER_OK)
        return rv;
    return check_dirs(t, call, v, n);
}

static bool level_in_use(tiering *t, const char *name)
{
    bool used = false;
    for (size_t i = 0; i < NSTRIPES && !used; i++) {
        stripe *s = &t->stripes[i];
        pthread_mutex_lock(&s->mu);
        for (size_t j = 0; j < s->cap && !used; j++)
            used = s->slot[j] != NULL && s->slot[j]->level == name;
        pthread_mutex_unlock(&s->mu);
    }
    return used;
}

static int mkdirs(const char *path)
{
    char buf[4098];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* True when some content has a move job (unclaimed, running or done). */
static bool any_job(tiering *t)
{
    bool found = false;
    for (size_t i = 0; i < NSTRIPES && !found; i++) {
        stripe *s = &t->stripes[i];
        pthread_mutex_lock(&s->mu);
        for (size_t j = 0; j < s->cap && !found; j++)
            found = s->slot[j] != NULL && s->slot[j]->has_job;
        pthread_mutex_unlock(&s->mu);
    }
    return found;
}

/* The same directory, however each is spelled (b is canonical). */
static bool same_dir(const char *a, const char *b)
{
    char ca[TIER_PATH_MAX];
    return tier_path_canon(a, ca, sizeof(ca)) == NULL && strcmp(ca, b) == 0;
}

/* True when directories a and b (canonical or not, '/' at the end or not)
 * are the same or one is inside the other. */
static bool dirs_meet(const char *a, const char *b)
{
    char ca[TIER_PATH_MAX], cb[TIER_PATH_MAX];
    if (tier_path_canon(a, ca, sizeof(ca)) != NULL || tier_path_canon(b, cb, sizeof(cb)) != NULL)
        return strcmp(a, b) == 0;
    return strcmp(ca, cb) == 0 || tier_path_under(ca, cb) || tier_path_under(cb, ca);
}

/*
 * What a new level table may not do to the old one, and the level
 * migrations it starts (mig[0..*nmig), the caller's array of old->n):
 *   - a level that holds contents, or migrates, cannot be removed;
 *   - while any move job exists, no level is removed or moved (the job
 *     carries the source and destination directories of the old table);
 *   - a level that holds contents may get a new directory: a migration
 *     (tiering_migrate.c) moves its files there; not a second time while
 *     its migration runs, and not into (or around) its old directory;
 *   - no level's directory may be, hold or lie in a migrating level's old
 *     directory (its files are still there).
 * Changing count ranges is always fine: contents move by themselves.
 */
static int check_level_change(tiering *t, tier_rpc_ctx *call, const level_table *old,
                              const tier_level_row *v, size_t n, tier_migration_row *mig,
                              size_t *nmig)
{
    int64_t now = tier_now_ms();

    *nmig = 0;
    /* A running migration's old directory still holds files. */
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < old->n; i++)
            if (old->v[i].old_path != NULL && dirs_meet(old->v[i].old_path, v[j].path))
                return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION,
                                            "level %s: %s meets %s, the old directory of level "
                                            "%s's migration",
                                            v[j].name, v[j].path, old->v[i].old_path,
                                            old->v[i].name);
    for (size_t i = 0; i < old->n; i++) {
        const tl_level *o = &old->v[i];
        const tier_level_row *nw = NULL;
        for (size_t j = 0; j < n && nw == NULL; j++)
            if (strcmp(o->name, v[j].name) == 0)
                nw = &v[j];
        if (nw != NULL && same_dir(o->path, nw->path))
            continue;
        if (o->old_path != NULL)
            return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION,
                                        nw ? "level %s is migrating from %s: its directory cannot "
                                             "change until that ends"
                                           : "level %s is migrating from %s: it cannot be removed "
                                             "until that ends",
                                        o->name, o->old_path);
        bool used = level_in_use(t, o->name);
        if (used && nw == NULL)
            return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION, "level %s holds contents",
                                        o->name);
        if (any_job(t))
            return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION,
                                        "move jobs in progress: level %s cannot be %s until "
                                        "`tierctl jobs` is empty",
                                        o->name, nw ? "moved" : "removed");
        if (!used)
            continue;
        if (dirs_meet(o->path, nw->path))
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                        "level %s: the new directory %s and the old one %s are "
                                        "inside each other",
                                        o->name, nw->path, o->path);
        tier_migration_row *m = &mig[(*nmig)++];
        memset(m, 0, sizeof(*m));
        snprintf(m->level, sizeof(m->level), "%s", o->name);
        snprintf(m->old_path, sizeof(m->old_path), "%s", o->path);
        size_t pl = strlen(nw->path);
        if (pl + 2 > sizeof(m->new_path))
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "level %s: path too long",
                                        o->name);
        memcpy(m->new_path, nw->path, pl);
        if (pl == 0 || nw->path[pl - 1] != '/')
            m->new_path[pl++] = '/';
        m->new_path[pl] = '\0';
        m->started_ms = now;
    }
    /* The old directories of new migrations stay out of every level's new
     * directory. */
    for (size_t j = 0; j < n; j++) {
        for (size_t k = 0; k < *nmig; k++)
            if (dirs_meet(mig[k].old_path, v[j].path))
                return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                            "level %s: %s meets %s, level %s's directory until "
                                            "now (its files move out of it)",
                                            v[j].name, v[j].path, mig[k].old_path, mig[k].level);
    }
    return TIER_OK;
}

/* The migrations of old that go on in the new table (same level, same
 * directory) after mig[0..nmig): the whole list the new table carries. */
static size_t carry_migrations(const level_table *old, const tier_level_row *v, size_t n,
                               tier_migration_row *mig, size_t nmig)
{
    for (size_t i = 0; i < old->n; i++) {
        if (old->v[i].old_path == NULL)
            continue;
        for (size_t j = 0; j < n; j++)
            if (strcmp(old->v[i].name, v[j].name) == 0) {
                tier_migration_row *m = &mig[nmig++];
                memset(m, 0, sizeof(*m));
                snprintf(m->level, sizeof(m->level), "%s", old->v[i].name);
                snprintf(m->old_path, sizeof(m->old_path), "%s", old->v[i].old_path);
                snprintf(m->new_path, sizeof(m->new_path), "%s", old->v[i].path);
                m->started_ms = old->v[i].migrate_started_ms;
                break;
            }
    }
    return nmig;
}

static int do_set_levels(tiering *t, tier_rpc_ctx *call, const tier_level_row *v, size_t n)
{
    level_table *old = atomic_load(&t->levels), *lt;
    tier_migration_row *mig = calloc(old->n + 1, sizeof(*mig));
    size_t nmig = 0, nall;
    tier_db *db;
    int rv;

    if (mig == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    if ((rv = check_level_change(t, call, old, v, n, mig, &nmig)) != TIER_OK)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (mkdirs(v[i].path) != 0) {
            rv = tier_rpc_set_message(call, TIER_FAILED_PRECONDITION, "cannot create %s: %s",
                                      v[i].path, strerror(errno));
            goto out;
        }
    TIER_CRASH_AT("setlevels.after_mkdir");
    if ((db = get_db(t, call)) == NULL) {
        rv = TIER_UNAVAILABLE;
        goto out;
    }
    /* The new table and its new migrations in one transaction: MySQL never
     * has a level in a new directory without knowing its files are not. */
    rv = tier_contents_set_levels(db, v, n, mig, nmig);
    tier_db_pool_put(t->deps->db, db);
    if (rv != TIER_OK) {
        rv = db_error(call, rv, "replace levels");
        goto out;
    }
    if (nmig > 0)
        TIER_CRASH_AT("migrate.after_setlevels_commit");
    TIER_CRASH_AT("setlevels.after_commit");
    nall = carry_migrations(old, v, n, mig, nmig);
    if ((lt = tiering_table_new(t, v, n)) == NULL || !tiering_table_migrating(lt, mig, nall)) {
        tiering_table_free(lt);
        rv = tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* No job exists when a migration starts (checked above, and the write
     * lock keeps new ones out): every content of the level is in the old
     * directory. */
    for (size_t k = 0; k < nmig; k++) {
        tier_info("tiering: level %s migrates from %s to %s", mig[k].level, mig[k].old_path,
                  mig[k].new_path);
        tiering_migrate_mark(t, tiering_intern(t, mig[k].level, strlen(mig[k].level)));
    }
    lt->retired = old; /* readers may still hold it: freed at close */
    atomic_store(&t->levels, lt);
    tiering_policy_retable(t);
    if (nmig > 0)
        tiering_planner_wake(t);
out:
    free(mig);
    return rv;
}

/* SetLevels --dry-run: the proposed table and what the current policy
 * would move under it; nothing changes.  Levels that would migrate (or go
 * on migrating) show the old directory in migrating_from; the refusals of
 * the real call are not checked. */
static int dry_set_levels(tiering *t, tier_rpc_ctx *call, const tier_level_row *v, size_t n,
                          Tier__ListLevelsReply *rep)
{
    level_table *lt = tiering_table_new(t, v, n);
    int rv;

    if (lt == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    fill_levels(call, lt, rep, NULL);
    /* The migrations it would start (or keep): migrating_from set. */
    const level_table *cur = atomic_load(&t->levels);
    for (size_t i = 0; i < rep->n_levels; i++) {
        const tl_level *o = tiering_level(cur, lt->v[i].name);
        if (o == NULL)
            continue;
        if (o->old_path != NULL && same_dir(o->path, v[i].path))
            rep->levels[i]->migrating_from = tier_rpc_strdup(call, o->old_path);
        else if (!same_dir(o->path, v[i].path) && level_in_use(t, o->name))
            rep->levels[i]->migrating_from = tier_rpc_strdup(call, o->path);
    }
    rv = tiering_policy_plan_table(t, call, lt, &rep->plan);
    tiering_table_free(lt);
    return rv;
}

static int h_set_levels(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                        ProtobufCMessage *out)
{
    tiering *t = arg;
    const Tier__SetLevelsRequest *req = (const Tier__SetLevelsRequest *)in;
    tier_level_row *v;
    int rv;

    if (req->n_levels > 64)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "at most 64 levels");
    if ((v = calloc(req->n_levels + 1, sizeof(*v))) == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    if ((rv = tiering_parse_levels(t, call, req->levels, req->n_levels, v)) == TIER_OK)
        rv = tiering_policy_check_table(t, call, v, req->n_levels);
    if (rv == TIER_OK)
        rv = tiering_shared_check(t, call, v, req->n_levels);
    if (rv == TIER_OK && req->dry_run) {
        rv = dry_set_levels(t, call, v, req->n_levels, (Tier__ListLevelsReply *)out);
        free(v);
        return rv;
    }
    if (rv == TIER_OK) {
        pthread_mutex_lock(&t->admin_mu);
        pthread_rwlock_wrlock(&t->levels_rw);
        rv = do_set_levels(t, call, v, req->n_levels);
        pthread_rwlock_unlock(&t->levels_rw);
        pthread_mutex_unlock(&t->admin_mu);
    }
    free(v);
    if (rv == TIER_OK)
        fill_levels(call, atomic_load(&t->levels), (Tier__ListLevelsReply *)out, t);
    return rv;
}

/* ------------------------------------------------------------ module */

static void add_root(tiering *t, const char *dir)
{
    char c[TIER_PATH_MAX];
    const char *why = tier_path_canon(dir, c, sizeof(c));
    if (why != NULL) {
        tier_warn("storage root %s %s: ignored", dir, why);
        return;
    }
    for (size_t i = 0; i < t->nroots; i++)
        if (strcmp(t->roots[i], c) == 0)
            return;
    if (t->nroots < TIERD_MAX_ROOTS)
        memcpy(t->roots[t->nroots++], c, strlen(c) + 1);
}

/* The configured roots, else the parents of today's level directories:
 * a deployment started before --storage-root existed keeps working, and
 * its levels can still be moved beside each other, but not anywhere. */
static void init_roots(tiering *t)
{
    const tierd_config *cfg = t->deps->cfg;
    const level_table *lt = atomic_load(&t->levels);

    for (unsigned i = 0; cfg != NULL && i < cfg->n_storage_roots; i++)
        add_root(t, cfg->storage_roots[i]);
    if (cfg != NULL && cfg->n_storage_roots > 0)
        return;
    for (size_t i = 0; i < lt->n; i++) {
        char parent[TIER_PATH_MAX];
        snprintf(parent, sizeof(parent), "%s..", lt->v[i].path); /* path ends in '/' */
        add_root(t, parent);
    }
    if (t->nroots == 0)
        tier_warn("no storage root: SetLevels refuses every directory until tierd runs with "
                  "--storage-root");
}

int tiering_open(tiering **out, const tierd_deps *deps)
{
    tiering *t = calloc(1, sizeof(*t));
    char err[512];
    int rv;

    if (t == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    t->deps = deps;
    pthread_mutex_init(&t->admin_mu, NULL);
    pthread_rwlock_init(&t->levels_rw, NULL);
    pthread_mutex_init(&t->intern_mu, NULL);
    pthread_mutex_init(&t->mig_mu, NULL);
    pthread_mutex_init(&t->suspect_mu, NULL);
    for (size_t i = 0; i < NSTRIPES; i++) {
        pthread_mutex_init(&t->stripes[i].mu, NULL);
        pthread_cond_init(&t->stripes[i].cv, NULL);
    }
    if ((rv = load_state(t)) != TIER_OK) {
        tier_error("tiering: cannot load levels and contents from MySQL (%s)", status_name(rv));
        tiering_close(t);
        return rv;
    }
    if ((rv = tiering_policy_open(t)) != TIER_OK || (rv = tiering_views_open(t)) != TIER_OK) {
        tiering_close(t);
        return rv;
    }
    init_roots(t);
    for (size_t i = 0; i < t->nroots; i++)
        tier_info("tiering: storage root %s", t->roots[i]);
    if ((rv = tiering_jobs_open(t, err, sizeof(err))) != TIER_OK) {
        tier_error("tiering: %s", err);
        tiering_close(t);
        return rv;
    }
    if ((rv = tiering_scrub_open(t)) != TIER_OK || (rv = tiering_sizes_open(t)) != TIER_OK ||
        (rv = tiering_planner_open(t)) != TIER_OK) {
        tiering_close(t);
        return rv;
    }
    tier_info("tiering: %zu levels, %lld max cid", atomic_load(&t->levels)->n,
              (long long)atomic_load(&t->max_cid));
    *out = t;
    return TIER_OK;
}

int tiering_register(tiering *t, tier_rpc_server *srv)
{
    static const struct {
        const char *name;
        const ProtobufCMessageDescriptor *req, *rep;
        tier_rpc_fn fn;
    } m[] = {
        {TIER_M_ADD_CONTENT, &tier__add_content_request__descriptor,
         &tier__add_content_reply__descriptor, h_add_content},
        {TIER_M_ADD_CONTENTS, &tier__add_contents_request__descriptor,
         &tier__add_contents_reply__descriptor, h_add_contents},
        /* Pooled, not INLINE: a report that needs a job waits for Redis. */
        {TIER_M_REPORT_VIEWS, &tier__report_views_request__descriptor,
         &tier__report_views_reply__descriptor, h_report_views},
        {TIER_M_GET_CONTENT, &tier__get_content_request__descriptor,
         &tier__get_content_reply__descriptor, h_get_content},
        {TIER_M_GET_HISTORY, &tier__get_history_request__descriptor,
         &tier__get_history_reply__descriptor, h_get_history},
        {TIER_M_SET_LEVELS, &tier__set_levels_request__descriptor,
         &tier__list_levels_reply__descriptor, h_set_levels},
    };
    int rv;

    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if ((rv = tier_rpc_server_add(srv, m[i].name, m[i].req, m[i].rep, m[i].fn, t, 0)) !=
            TIER_OK)
            return rv;
    /* Memory only, never blocks. */
    if ((rv = tier_rpc_server_add(srv, TIER_M_LIST_LEVELS, &tier__list_levels_request__descriptor,
                                  &tier__list_levels_reply__descriptor, h_list_levels, t,
                                  TIER_RPC_INLINE)) != TIER_OK)
        return rv;
    if ((rv = tiering_scrub_register(t, srv)) != TIER_OK ||
        (rv = tiering_policy_register(t, srv)) != TIER_OK)
        return rv;
    return tiering_jobs_register(t, srv);
}

void tiering_close(tiering *t)
{
    if (t == NULL)
        return;
    tiering_planner_close(t); /* first: they use the contents (and the */
    tiering_sizes_close(t);   /* scrub jobs and the batcher) */
    tiering_scrub_close(t);
    tiering_jobs_close(t);
    tiering_views_close(t);
    tiering_policy_close(t);
    for (size_t i = 0; i < NSTRIPES; i++) {
        stripe *s = &t->stripes[i];
        for (size_t j = 0; j < s->cap; j++) {
            if (s->slot[j] != NULL) {
                tier_policy_views_free(s->slot[j]->views);
                free(s->slot[j]->filename);
                free(s->slot[j]);
            }
        }
        free(s->slot);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
    tiering_table_free(atomic_load(&t->levels));
    while (t->names != NULL) {
        interned *next = t->names->next;
        free(t->names);
        t->names = next;
    }
    pthread_mutex_destroy(&t->admin_mu);
    pthread_rwlock_destroy(&t->levels_rw);
    pthread_mutex_destroy(&t->intern_mu);
    pthread_mutex_destroy(&t->mig_mu);
    pthread_mutex_destroy(&t->suspect_mu);
    free(t);
}
