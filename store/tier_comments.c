/*
 * tier_comments.c -- see tier_comments.h.
 *
 * The multi-row INSERTs are the only statements whose text is generated:
 * their text holds placeholders only ("(?, ?, ...), (?, ...)"), is built
 * once per arity at first use, and its address is the prepared-statement
 * cache key like any literal's.  A fixed set of arities (1000, 256, 128,
 * 64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1 rows) keeps the number of
 * prepared statements per connection bounded (45) whatever the batch size,
 * while a typical group commit of a few dozen rows still takes two
 * statements, not six (each is a round trip inside the transaction).  The
 * edits/deletes/restores' four statements take six arities each, padded
 * (PAD_ARITIES below): 24 more, 69 in all.  Each is prepared once per
 * connection and kept (tier_db.c), so fewer arities also mean fewer
 * server-side statements.
 */
#include "tier_comments.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_crash.h"
#include "tier_slot.h"
#include "tier_status.h"
#include "tier_writer.h"

static const char SQL_MAX_ID[] = "SELECT COALESCE(MAX(id), 0) FROM comments";
#define LATEST_COLS "SELECT id, service, cid, author, body, created_ms, modified_ms FROM comments "
/* Newest first by creation time, then id (sql/013's indexes): a keyset
 * cursor (created_ms, id) written as two ranges of the index, which
 * MariaDB scans backwards without sorting; deleted comments are skipped
 * by their rows (the index leaves the flag out: deletes stay cheap). */
static const char SQL_LATEST_CREATED[] =
    LATEST_COLS "FORCE INDEX (latest_time) WHERE cid = ? AND deleted = 0 AND "
                "(created_ms < ? OR (created_ms = ? AND id < ?)) "
                "ORDER BY created_ms DESC, id DESC LIMIT ?";
static const char SQL_LATEST_CREATED_SVC[] =
    LATEST_COLS "FORCE INDEX (latest_time_svc) WHERE service = ? AND cid = ? AND deleted = 0 "
                "AND (created_ms < ? OR (created_ms = ? AND id < ?)) "
                "ORDER BY created_ms DESC, id DESC LIMIT ?";
static const char SQL_CREATED_OF[] = "SELECT created_ms FROM comments WHERE id = ?";
static const char SQL_BY_AUTHOR[] =
    "SELECT id FROM comments FORCE INDEX (author_idx) WHERE author = ? AND deleted = 0 "
    "AND created_ms <= ? AND last_transition_ms <= ? "
    "AND CRC32(cid) % 1024 BETWEEN ? AND ? ORDER BY id LIMIT ?";
static const char SQL_BY_AUTHOR_SVC[] =
    "SELECT id FROM comments FORCE INDEX (author_idx) WHERE author = ? AND deleted = 0 "
    "AND created_ms <= ? AND last_transition_ms <= ? "
    "AND service = ? AND CRC32(cid) % 1024 BETWEEN ? AND ? ORDER BY id LIMIT ?";
static const char SQL_SCAN_MINUTES[] =
    "SELECT minute, service, cid, delta, created, deleted, restored FROM comment_minute "
    "WHERE minute >= ? AND CRC32(cid) % 1024 BETWEEN ? AND ? ORDER BY minute, service, cid";
static const char SQL_PURGE_MINUTES[] = "DELETE FROM comment_minute WHERE minute < ? LIMIT ?";
static const char SQL_POST_KEYS[] = "SELECT seq, comment_id, created_ms FROM comment_post "
                                    "WHERE client_id = ? AND request_id = ?";
static const char SQL_PURGE_POSTS[] = "DELETE FROM comment_post WHERE created_ms < ? LIMIT ?";

/* ------------------------------------------------------------ helpers */

static void bind_blob(MYSQL_BIND *b, const char *s, unsigned long *len)
{
    tier_db_bind_str(b, s, len);
    b->buffer_type = MYSQL_TYPE_BLOB; /* bytes, no charset conversion */
}

void tier_comment_clear(tier_comment *c)
{
    free(c->service);
    free(c->author);
    free(c->body);
    memset(c, 0, sizeof(*c));
}

int tier_comments_max_id(tier_db *db, int64_t *out)
{
    MYSQL_BIND res[1];
    long long v = 0;
    MYSQL_STMT *st;
    int rv;

    if ((rv = tier_db_run(db, SQL_MAX_ID, NULL, &st)) != TIER_OK)
        return rv;
    tier_db_bind_i64(&res[0], &v);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "max id");
    rv = mysql_stmt_fetch(st);
    mysql_stmt_free_result(st);
    if (rv != 0)
        return tier_db_status(db, st, "max id");
    *out = v;
    return TIER_OK;
}

/* ------------------------------------------------------------ multi-row statements */

/* Powers of four (and 1000, the import batch): any n < 1000 takes at most
 * three statements per step, and a group commit of 64 posts exactly one. */
static const size_t ARITIES[] = {1000, 256, 128, 64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1};
#define NARITIES (sizeof(ARITIES) / sizeof(ARITIES[0]))
/* Rows of one statement carry at most this many bytes of strings, well
 * under max_allowed_packet (64 MiB in scripts/services.sh, 16 MiB by
 * default): a statement of 1000 bodies of 64 KiB would not fit. */
#define CHUNK_BYTES (8u << 20)

static char *insert_sql[NARITIES];
static char *upsert_sql[NARITIES];
static char *keys_sql[NARITIES];
/* The changes' statements take fewer arities, and a chunk is padded up to
 * the next one by repeating one of its rows (an id twice in an IN list, or
 * a row written twice with the same values, changes nothing): any chunk is
 * one statement, and the connection keeps few prepared statements
 * (tier_db.c). */
static const size_t PAD_ARITIES[] = {1000, 256, 64, 16, 4, 1};
#define NPAD (sizeof(PAD_ARITIES) / sizeof(PAD_ARITIES[0]))
static char *lock_sql[NPAD];      /* the changes' comments, locked */
static char *lock_body_sql[NPAD]; /* the same with their bodies (small flushes) */
static char *bodies_sql[NPAD];    /* their bodies, when a reply needs them */
static char *state_sql[NPAD];     /* deleted, last_transition_ms written back */
static char *body_sql[NPAD];      /* body, modified_ms written back */
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;

static char *build_multi(const char *head, const char *row, const char *tail, size_t n)
{
    size_t cap = strlen(head) + n * (strlen(row) + 2) + strlen(tail) + 1;
    char *s = malloc(cap), *p = s;

    if (s == NULL)
        return NULL;
    p += sprintf(p, "%s", head);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? ", " : "", row);
    sprintf(p, "%s", tail);
    return s;
}

static void build_sql(void)
{
    for (size_t a = 0; a < NARITIES; a++) {
        keys_sql[a] = build_multi("INSERT INTO comment_post (client_id, request_id, seq, "
                                  "comment_id, created_ms) VALUES ",
                                  "(?, ?, ?, ?, ?)", "", ARITIES[a]);
        insert_sql[a] =
            build_multi("INSERT INTO comments (id, service, cid, author, body, created_ms) VALUES ",
                        "(?, ?, ?, ?, ?, ?)", "", ARITIES[a]);
        upsert_sql[a] =
            build_multi("INSERT INTO comment_minute (minute, service, cid, delta, created, "
                        "deleted, restored) VALUES ",
                        "(?, ?, ?, ?, ?, ?, ?)",
                        " ON DUPLICATE KEY UPDATE delta = delta + VALUES(delta), "
                        "created = created + VALUES(created), deleted = deleted + VALUES(deleted), "
                        "restored = restored + VALUES(restored)",
                        ARITIES[a]);
    }
    for (size_t a = 0; a < NPAD; a++) {
        lock_sql[a] = build_multi("SELECT id, service, cid, author, created_ms, modified_ms, "
                                  "deleted, last_transition_ms FROM comments WHERE id IN (",
                                  "?", ") ORDER BY id FOR UPDATE", PAD_ARITIES[a]);
        lock_body_sql[a] = build_multi("SELECT id, service, cid, author, created_ms, "
                                       "modified_ms, deleted, last_transition_ms, body FROM "
                                       "comments WHERE id IN (",
                                       "?", ") ORDER BY id FOR UPDATE", PAD_ARITIES[a]);
        bodies_sql[a] =
            build_multi("SELECT id, body FROM comments WHERE id IN (", "?", ")", PAD_ARITIES[a]);
        /* The rows exist (locked above): only the UPDATE part runs; the
         * VALUES are placeholders for the NOT NULL columns. */
        state_sql[a] = build_multi("INSERT INTO comments (id, service, cid, author, body, "
                                   "created_ms, deleted, last_transition_ms) VALUES ",
                                   "(?, '', 0, '', '', 0, ?, ?)",
                                   " ON DUPLICATE KEY UPDATE deleted = VALUES(deleted), "
                                   "last_transition_ms = VALUES(last_transition_ms)",
                                   PAD_ARITIES[a]);
        body_sql[a] = build_multi("INSERT INTO comments (id, service, cid, author, body, "
                                  "created_ms, modified_ms) VALUES ",
                                  "(?, '', 0, '', ?, 0, ?)",
                                  " ON DUPLICATE KEY UPDATE body = VALUES(body), "
                                  "modified_ms = VALUES(modified_ms)",
                                  PAD_ARITIES[a]);
    }
}

/* A multi-row statement: `width` parameters per row, bound by `bind`. */
typedef struct {
    char **sql; /* per arity */
    size_t width;
    void (*bind)(const void *rows, size_t i, MYSQL_BIND *p, unsigned long *lens, long long *nums);
    size_t (*bytes)(const void *rows, size_t i);
} multi;

/* The largest arity that fits the rows left and the byte budget. */
static size_t pick_arity(const multi *m, const void *rows, size_t at, size_t left)
{
    for (size_t a = 0; a < NARITIES; a++) {
        size_t bytes = 0, k = ARITIES[a];
        if (k > left)
            continue;
        for (size_t i = 0; i < k && bytes <= CHUNK_BYTES; i++)
            bytes += m->bytes(rows, at + i);
        if (bytes <= CHUNK_BYTES || k == 1)
            return a;
    }
    return NARITIES - 1;
}

static int run_multi(tier_db *db, const multi *m, const void *rows, size_t n)
{
    size_t w = m->width, maxk = ARITIES[0];
    MYSQL_BIND *p = calloc(maxk * w, sizeof(*p));
    unsigned long *lens = calloc(maxk * w, sizeof(*lens));
    long long *nums = calloc(maxk * w, sizeof(*nums));
    MYSQL_STMT *st;
    int rv = TIER_OK;

    if (p == NULL || lens == NULL || nums == NULL)
        rv = TIER_RESOURCE_EXHAUSTED;
    for (size_t at = 0; rv == TIER_OK && at < n;) {
        size_t a = pick_arity(m, rows, at, n - at), k = ARITIES[a];
        if (m->sql[a] == NULL) {
            rv = TIER_RESOURCE_EXHAUSTED;
            break;
        }
        for (size_t i = 0; i < k; i++)
            m->bind(rows, at + i, &p[i * w], &lens[i * w], &nums[i * w]);
        rv = tier_db_run(db, m->sql[a], p, &st);
        at += k;
    }
    free(p);
    free(lens);
    free(nums);
    return rv;
}

/* One padded chunk from rows[at..at+left): *take rows (at most 1000 and
 * CHUNK_BYTES), sent as PAD_ARITIES[*a] rows, the rest copies of row
 * *pad (the chunk's smallest) -- unless the copies would break the byte
 * budget: then fewer rows, an arity exactly. */
static void pad_plan(const multi *m, const void *rows, size_t at, size_t left, size_t *take,
                     size_t *a, size_t *pad)
{
    size_t bytes = 0, k = 0, small = at;

    while (k < left && k < PAD_ARITIES[0] &&
           (k == 0 || bytes + m->bytes(rows, at + k) <= CHUNK_BYTES)) {
        size_t b = m->bytes(rows, at + k);
        if (b < m->bytes(rows, small))
            small = at + k;
        bytes += b;
        k++;
    }
    *a = 0;
    for (size_t i = 0; i < NPAD; i++) /* the smallest arity >= k */
        if (PAD_ARITIES[i] >= k)
            *a = i;
    if (bytes + (PAD_ARITIES[*a] - k) * m->bytes(rows, small) > CHUNK_BYTES) {
        while (PAD_ARITIES[*a] > k) /* the largest arity <= k, no copies */
            (*a)++;
        k = PAD_ARITIES[*a];
    }
    *take = k;
    *pad = small;
}

/* run_multi with m->sql per PAD_ARITIES; each statement is handed to
 * fetch (NULL: nothing to read). */
typedef int (*stmt_fn)(tier_db *db, MYSQL_STMT *st, void *arg);

static int run_padded(tier_db *db, const multi *m, const void *rows, size_t n, stmt_fn fetch,
                      void *arg)
{
    size_t w = m->width, maxk = PAD_ARITIES[0];
    MYSQL_BIND *p = calloc(maxk * w, sizeof(*p));
    unsigned long *lens = calloc(maxk * w, sizeof(*lens));
    long long *nums = calloc(maxk * w, sizeof(*nums));
    MYSQL_STMT *st;
    int rv = p && lens && nums ? TIER_OK : TIER_RESOURCE_EXHAUSTED;

    for (size_t at = 0; rv == TIER_OK && at < n;) {
        size_t take, a, pad;
        pad_plan(m, rows, at, n - at, &take, &a, &pad);
        if (m->sql[a] == NULL) {
            rv = TIER_RESOURCE_EXHAUSTED;
            break;
        }
        for (size_t i = 0; i < PAD_ARITIES[a]; i++)
            m->bind(rows, i < take ? at + i : pad, &p[i * w], &lens[i * w], &nums[i * w]);
        if ((rv = tier_db_run(db, m->sql[a], p, &st)) == TIER_OK && fetch != NULL)
            rv = fetch(db, st, arg);
        at += take;
    }
    free(p);
    free(lens);
    free(nums);
    return rv;
}

/* comments rows: the POST ops. */
static void bind_comment(const void *rows, size_t i, MYSQL_BIND *p, unsigned long *lens,
                         long long *nums)
{
    const tier_comment_op *op = ((tier_comment_op *const *)rows)[i];
    nums[0] = op->id;
    nums[1] = op->cid;
    nums[2] = op->time_ms;
    lens[0] = op->service_len;
    lens[1] = op->author_len;
    lens[2] = op->body_len;
    tier_db_bind_i64(&p[0], &nums[0]);
    tier_db_bind_str(&p[1], op->service, &lens[0]);
    tier_db_bind_i64(&p[2], &nums[1]);
    tier_db_bind_str(&p[3], op->author, &lens[1]);
    bind_blob(&p[4], op->body, &lens[2]);
    tier_db_bind_i64(&p[5], &nums[2]);
}

static size_t comment_bytes(const void *rows, size_t i)
{
    const tier_comment_op *op = ((tier_comment_op *const *)rows)[i];
    return op->service_len + op->author_len + op->body_len + 64;
}

static void bind_minute(const void *rows, size_t i, MYSQL_BIND *p, unsigned long *lens,
                        long long *nums)
{
    const tier_comment_minute *m = &((const tier_comment_minute *)rows)[i];
    nums[0] = m->minute;
    nums[1] = m->cid;
    nums[2] = m->delta;
    nums[3] = m->created;
    nums[4] = m->deleted;
    nums[5] = m->restored;
    lens[0] = strlen(m->service);
    tier_db_bind_i64(&p[0], &nums[0]);
    tier_db_bind_str(&p[1], m->service, &lens[0]);
    tier_db_bind_i64(&p[2], &nums[1]);
    for (int k = 3; k < 7; k++)
        tier_db_bind_i64(&p[k], &nums[k - 1]);
}

static size_t minute_bytes(const void *rows, size_t i)
{
    (void)rows;
    (void)i;
    return 128;
}

/* comment_post rows: the keyed posts (sql/011). */
static void bind_key(const void *rows, size_t i, MYSQL_BIND *p, unsigned long *lens,
                     long long *nums)
{
    const tier_comment_op *op = ((tier_comment_op *const *)rows)[i];
    (void)lens;
    nums[0] = (long long)op->client_id;
    nums[1] = (long long)op->request_id;
    nums[2] = op->seq;
    nums[3] = op->id;
    nums[4] = op->time_ms;
    for (int k = 0; k < 5; k++)
        tier_db_bind_i64(&p[k], &nums[k]);
    p[0].is_unsigned = p[1].is_unsigned = true;
}

static size_t key_bytes(const void *rows, size_t i)
{
    (void)rows;
    (void)i;
    return 64;
}

static const multi INSERT_COMMENTS = {insert_sql, 6, bind_comment, comment_bytes};
static const multi INSERT_KEYS = {keys_sql, 5, bind_key, key_bytes};
static const multi UPSERT_MINUTES = {upsert_sql, 7, bind_minute, minute_bytes};

/* ------------------------------------------------------------ per-minute aggregation */

/* (minute, service, cid): comment_minute's primary key order. */
static int minute_cmp(const void *a, const void *b)
{
    const tier_comment_minute *x = a, *y = b;
    int c;

    if (x->minute != y->minute)
        return x->minute < y->minute ? -1 : 1;
    if ((c = strcmp(x->service, y->service)) != 0)
        return c;
    return x->cid < y->cid ? -1 : x->cid > y->cid;
}

/* Open addressing over (minute, service, cid); `cap` a power of two at
 * least twice the number of changes, so it never fills. */
typedef struct {
    tier_comment_minute *rows;
    size_t n;
    uint32_t *slot; /* index + 1 into rows, 0 = empty */
    size_t cap;
} agg;

static uint64_t agg_hash(const char *s, int64_t cid, int64_t minute)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h ^= (uint64_t)cid * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)minute * 0xc2b2ae3d27d4eb4full;
    return h ^ (h >> 29);
}

static int agg_init(agg *g, size_t changes)
{
    g->cap = 16;
    while (g->cap < 2 * changes)
        g->cap *= 2;
    g->n = 0;
    g->rows = malloc((changes + 1) * sizeof(*g->rows));
    g->slot = calloc(g->cap, sizeof(*g->slot));
    return g->rows && g->slot ? TIER_OK : TIER_RESOURCE_EXHAUSTED;
}

static void agg_add(agg *g, const char *service, int64_t cid, int64_t ms, int kind)
{
    int64_t minute = ms / 60000;
    size_t i = agg_hash(service, cid, minute) & (g->cap - 1);
    tier_comment_minute *m;

    for (; g->slot[i] != 0; i = (i + 1) & (g->cap - 1)) {
        m = &g->rows[g->slot[i] - 1];
        if (m->cid == cid && m->minute == minute && strcmp(m->service, service) == 0)
            goto found;
    }
    m = &g->rows[g->n++];
    *m = (tier_comment_minute){service, cid, minute, 0, 0, 0, 0};
    g->slot[i] = (uint32_t)g->n;
found:
    if (kind == TIER_COP_POST)
        m->delta++, m->created++;
    else if (kind == TIER_COP_DELETE)
        m->delta--, m->deleted++;
    else if (kind == TIER_COP_RESTORE)
        m->delta++, m->restored++;
}

/* ------------------------------------------------------------ edits, deletes, restores */

/*
 * A flush's edits, deletes and restores take a fixed handful of statements
 * however many there are (issue 12): every comment they name is read and
 * locked by one `SELECT ... WHERE id IN (...) FOR UPDATE` per chunk of up
 * to 1000 ids (ascending: two flushers lock in the same order), the ops are
 * then judged and applied in memory in submission order (a delete then a
 * restore of one comment in one flush behaves exactly as the two calls one
 * after the other), and the final state of every changed comment is written
 * back with multi-row INSERT ... ON DUPLICATE KEY UPDATE (the rows exist and
 * are locked: only the UPDATE part ever runs).
 */

/* One comment named by a flush's changes: as locked, then as changed. */
typedef struct {
    int64_t id;
    bool found;
    char *service, *author;
    int64_t cid, created, modified, last; /* last: last delete/restore, 0 none */
    int deleted;
    const char *body; /* the flush's last edit of it (borrowed); NULL: stored */
    size_t body_len;
    char *stored; /* its stored body, read only when a reply needs it */
    size_t stored_len;
    bool want_stored, state_dirty, body_dirty;
} crow;

/* Result buffers of the lock query. */
typedef struct {
    char service[TIER_COMMENT_SERVICE_MAX * 4 + 1];
    char author[TIER_COMMENT_AUTHOR_MAX * 4 + 1];
    unsigned long sl, al;
    my_bool sn, an;
    long long id, cid, created, modified, last;
    int deleted;
    bool with_body; /* lock_body_sql: the bodies too */
    unsigned long bl;
    my_bool bn;
    char body[TIER_COMMENT_BODY_MAX + 1];
} lock_buf;

/* A flush of at most this many comments whose replies want bodies (single
 * calls) reads them with the lock, saving a statement: 4 MiB at most. */
#define LOCK_BODIES_MAX 64

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static size_t clamp(unsigned long len, size_t cap)
{
    return len < cap ? len : cap - 1;
}

static int crow_cmp(const void *a, const void *b)
{
    const crow *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static crow *crow_find(crow *rows, size_t n, int64_t id)
{
    crow key = {.id = id};
    return bsearch(&key, rows, n, sizeof(*rows), crow_cmp);
}

static void crows_free(crow *rows, size_t n)
{
    for (size_t i = 0; rows != NULL && i < n; i++) {
        free(rows[i].service);
        free(rows[i].author);
        free(rows[i].stored);
    }
    free(rows);
}

/* The distinct ids of the changes among ops, ascending; *out malloc'ed. */
static int crows_collect(tier_comment_op **ops, size_t n, crow **out, size_t *nout)
{
    crow *rows = calloc(n + 1, sizeof(*rows));
    size_t k = 0, u = 0;

    if (rows == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n; i++)
        if (ops[i]->kind != TIER_COP_POST)
            rows[k++].id = ops[i]->id;
    qsort(rows, k, sizeof(*rows), crow_cmp);
    for (size_t i = 0; i < k; i++)
        if (u == 0 || rows[u - 1].id != rows[i].id)
            rows[u++].id = rows[i].id;
    *out = rows;
    *nout = u;
    return TIER_OK;
}

/* Ids as rows of a padded statement. */
static void bind_id(const void *rows, size_t i, MYSQL_BIND *p, unsigned long *lens, long long *nums)
{
    (void)lens;
    nums[0] = ((const long long *)rows)[i];
    tier_db_bind_i64(&p[0], &nums[0]);
}

static size_t id_bytes(const void *rows, size_t i)
{
    (void)rows;
    (void)i;
    return 8;
}

/* Reads one statement's rows into the crows. */
typedef int (*chunk_fetch)(tier_db *db, MYSQL_STMT *st, crow *rows, size_t n, void *buf);

typedef struct {
    chunk_fetch fetch;
    crow *rows;
    size_t n;
    void *buf;
} fetch_arg;

static int fetch_chunk(tier_db *db, MYSQL_STMT *st, void *arg)
{
    fetch_arg *f = arg;
    return f->fetch(db, st, f->rows, f->n, f->buf);
}

/* Runs sqls (per PAD_ARITIES) over the ids of rows[i] for which pick(rows[i])
 * holds, in chunks of up to 1000; each chunk's result goes to fetch. */
static int select_in(tier_db *db, char **sqls, crow *rows, size_t n, bool (*pick)(const crow *),
                     chunk_fetch fetch, void *buf)
{
    long long *ids = calloc(n + 1, sizeof(*ids));
    multi m = {sqls, 1, bind_id, id_bytes};
    fetch_arg fa = {fetch, rows, n, buf};
    size_t k = 0;
    int rv;

    if (ids == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n; i++)
        if (pick == NULL || pick(&rows[i]))
            ids[k++] = rows[i].id;
    rv = run_padded(db, &m, ids, k, fetch_chunk, &fa);
    free(ids);
    return rv;
}

static int fetch_locked(tier_db *db, MYSQL_STMT *st, crow *rows, size_t n, void *buf)
{
    lock_buf *lb = buf;
    MYSQL_BIND res[9];
    int rv;

    tier_db_bind_i64(&res[0], &lb->id);
    tier_db_bind_buf(&res[1], lb->service, sizeof(lb->service) - 1, &lb->sl, &lb->sn);
    tier_db_bind_i64(&res[2], &lb->cid);
    tier_db_bind_buf(&res[3], lb->author, sizeof(lb->author) - 1, &lb->al, &lb->an);
    tier_db_bind_i64(&res[4], &lb->created);
    tier_db_bind_i64(&res[5], &lb->modified);
    tier_db_bind_i32(&res[6], &lb->deleted);
    tier_db_bind_i64(&res[7], &lb->last);
    tier_db_bind_buf(&res[8], lb->body, sizeof(lb->body) - 1, &lb->bl, &lb->bn);
    res[8].buffer_type = MYSQL_TYPE_BLOB;
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "lock comments");
    while ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED) {
        crow *c = crow_find(rows, n, lb->id);
        if (c == NULL || c->found)
            continue;
        c->found = true;
        c->service = dup_n(lb->service, clamp(lb->sl, sizeof(lb->service)));
        c->author = dup_n(lb->author, clamp(lb->al, sizeof(lb->author)));
        c->cid = lb->cid;
        c->created = lb->created;
        c->modified = lb->modified;
        c->deleted = lb->deleted;
        c->last = lb->last;
        if (lb->with_body) {
            c->stored_len = clamp(lb->bl, sizeof(lb->body));
            c->stored = dup_n(lb->body, c->stored_len);
        }
        if (c->service == NULL || c->author == NULL || (lb->with_body && c->stored == NULL)) {
            mysql_stmt_free_result(st);
            return TIER_RESOURCE_EXHAUSTED;
        }
    }
    mysql_stmt_free_result(st);
    return rv == 1 ? tier_db_status(db, st, "lock comments") : TIER_OK;
}

static bool wants_stored(const crow *c)
{
    return c->found && c->want_stored;
}

/* Stored bodies, for replies that carry the whole comment (single calls). */
static int fetch_bodies(tier_db *db, MYSQL_STMT *st, crow *rows, size_t n, void *buf)
{
    char *body = buf;
    unsigned long bl;
    my_bool bn;
    long long id;
    MYSQL_BIND res[2];
    int rv;

    tier_db_bind_i64(&res[0], &id);
    tier_db_bind_buf(&res[1], body, TIER_COMMENT_BODY_MAX, &bl, &bn);
    res[1].buffer_type = MYSQL_TYPE_BLOB;
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "comment bodies");
    while ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED) {
        crow *c = crow_find(rows, n, id);
        if (c == NULL || c->stored != NULL)
            continue;
        c->stored_len = clamp(bl, TIER_COMMENT_BODY_MAX + 1);
        if ((c->stored = dup_n(body, c->stored_len)) == NULL) {
            mysql_stmt_free_result(st);
            return TIER_RESOURCE_EXHAUSTED;
        }
    }
    mysql_stmt_free_result(st);
    return rv == 1 ? tier_db_status(db, st, "comment bodies") : TIER_OK;
}

/*
 * Whether op's time fits the comment's timeline; else op is refused
 * (FAILED_PRECONDITION, op->floor_ms and op->floor say what it had to
 * follow).  A change cannot predate the comment, and a delete or restore
 * cannot predate its last delete or restore: a restore charged before the
 * delete it undoes would make some window count the comment twice.  Equal
 * times are fine (the same minute sees both).  A live op (time_ms is the
 * server's now) is never refused for this: it is charged to the floor when
 * a backfill within the clock skew, or a clock step back, put the floor
 * after now.
 */
static bool in_order(tier_comment_op *op, const crow *c)
{
    bool transition = op->kind != TIER_COP_EDIT && c->last > c->created;
    int64_t floor = transition ? c->last : c->created;

    if (op->time_ms >= floor)
        return true;
    if (op->live) {
        op->time_ms = floor;
        return true;
    }
    op->code = TIER_FAILED_PRECONDITION;
    op->floor_ms = floor;
    op->floor = !transition                    ? TIER_FLOOR_CREATED
                : op->kind == TIER_COP_RESTORE ? TIER_FLOOR_DELETE
                                               : TIER_FLOOR_RESTORE;
    return false;
}

/* cid is in the slots of the connection's shard (tier_db_slots). */
static bool in_slots(const tier_db *db, int64_t cid)
{
    long long lo, hi, s = tier_slot_of(cid);

    tier_db_slots(db, &lo, &hi);
    return s >= lo && s <= hi;
}

/* Judges op against c as the earlier ops left it; sets op->code. */
static bool judge(tier_db *db, tier_comment_op *op, const crow *c)
{
    op->code = TIER_OK;
    if (c == NULL || !c->found) {
        op->code = TIER_NOT_FOUND;
        return false;
    }
    /* Another shard's comment: its writer keeps its content's minutes in
     * memory, so it must be the one to change it. */
    if (!in_slots(db, c->cid)) {
        op->code = TIER_FAILED_PRECONDITION;
        op->floor = TIER_FLOOR_SHARD;
        op->cid = c->cid; /* the caller names its shard's owner */
        return false;
    }
    /* A deleted comment can only be restored: editing it would change
     * what nobody can see. */
    if ((op->kind != TIER_COP_RESTORE && c->deleted) ||
        (op->kind == TIER_COP_RESTORE && !c->deleted)) {
        op->code = TIER_FAILED_PRECONDITION;
        return false;
    }
    return in_order(op, c);
}

/* Applies an accepted op to c in memory and fills op->after (its body:
 * the flush's edit, or the stored one filled in later, or none). */
static int apply_mem(tier_comment_op *op, crow *c)
{
    tier_comment *a = &op->after;

    if (op->kind == TIER_COP_EDIT) {
        c->body = op->body;
        c->body_len = op->body_len;
        c->modified = op->time_ms;
        c->body_dirty = true;
    } else {
        c->deleted = op->kind == TIER_COP_DELETE;
        c->last = op->time_ms;
        c->state_dirty = true;
    }
    *a = (tier_comment){op->id, NULL, c->cid, NULL, NULL, 0, c->created, c->modified, c->deleted};
    a->service = dup_n(c->service, strlen(c->service));
    a->author = dup_n(c->author, strlen(c->author));
    if (!op->no_body && c->body != NULL) {
        a->body = dup_n(c->body, c->body_len);
        a->body_len = c->body_len;
    } else if (!op->no_body) {
        c->want_stored = true; /* filled by fill_stored */
    } else {
        a->body = dup_n("", 0);
    }
    if (a->service == NULL || a->author == NULL || (a->body == NULL && !c->want_stored))
        return TIER_RESOURCE_EXHAUSTED;
    return TIER_OK;
}

/* The replies still missing their body get the stored one. */
static int fill_stored(tier_comment_op **ops, size_t n, crow *rows, size_t nr)
{
    for (size_t i = 0; i < n; i++) {
        tier_comment_op *op = ops[i];
        crow *c;
        if (op->kind == TIER_COP_POST || op->code != TIER_OK || op->after.body != NULL)
            continue;
        c = crow_find(rows, nr, op->id);
        op->after.body = dup_n(c && c->stored ? c->stored : "", c ? c->stored_len : 0);
        op->after.body_len = c && c->stored ? c->stored_len : 0;
        if (op->after.body == NULL)
            return TIER_RESOURCE_EXHAUSTED;
    }
    return TIER_OK;
}

/* comments rows written back: (id, deleted, last_transition_ms) ... */
static void bind_state(const void *rows, size_t i, MYSQL_BIND *p, unsigned long *lens,
                       long long *nums)
{
    const crow *c = ((crow *const *)rows)[i];
    (void)lens;
    nums[0] = c->id;
    nums[1] = c->deleted;
    nums[2] = c->last;
    for (int k = 0; k < 3; k++)
        tier_db_bind_i64(&p[k], &nums[k]);
}

/* ... and (id, body, modified_ms) of the edited ones. */
static void bind_body(const void *rows, size_t i, MYSQL_BIND *p, unsigned long *lens,
                      long long *nums)
{
    const crow *c = ((crow *const *)rows)[i];
    nums[0] = c->id;
    nums[1] = c->modified;
    lens[0] = c->body_len;
    tier_db_bind_i64(&p[0], &nums[0]);
    bind_blob(&p[1], c->body, &lens[0]);
    tier_db_bind_i64(&p[2], &nums[1]);
}

static size_t state_bytes(const void *rows, size_t i)
{
    (void)rows;
    (void)i;
    return 64;
}

static size_t body_bytes(const void *rows, size_t i)
{
    return ((crow *const *)rows)[i]->body_len + 64;
}

static const multi SET_STATE = {state_sql, 3, bind_state, state_bytes};
static const multi SET_BODY = {body_sql, 3, bind_body, body_bytes};

/* Writes the final state of every changed comment: two statements (per
 * 1000 rows) at most. */
static int write_back(tier_db *db, crow *rows, size_t n)
{
    crow **st = malloc((n + 1) * sizeof(*st)), **bd = malloc((n + 1) * sizeof(*bd));
    size_t ns = 0, nb = 0;
    int rv = st && bd ? TIER_OK : TIER_RESOURCE_EXHAUSTED;

    for (size_t i = 0; rv == TIER_OK && i < n; i++) {
        if (rows[i].state_dirty)
            st[ns++] = &rows[i];
        if (rows[i].body_dirty)
            bd[nb++] = &rows[i];
    }
    if (rv == TIER_OK && ns > 0)
        rv = run_padded(db, &SET_STATE, st, ns, NULL, NULL);
    if (rv == TIER_OK && nb > 0)
        rv = run_padded(db, &SET_BODY, bd, nb, NULL, NULL);
    free(st);
    free(bd);
    return rv;
}

/* Every edit/delete/restore of ops: per-item outcomes go into op->code,
 * the accepted count changes into g; the return value is a failure of the
 * whole transaction. */
static int apply_changes(tier_db *db, tier_comment_op **ops, size_t n, agg *g)
{
    crow *rows = NULL;
    size_t nr = 0;
    bool stored = false;
    void *buf = NULL;
    lock_buf *lb;
    int rv = crows_collect(ops, n, &rows, &nr);

    if (rv != TIER_OK || nr == 0)
        goto out;
    if ((buf = malloc(sizeof(lock_buf))) == NULL) { /* also fetch_bodies' buffer */
        rv = TIER_RESOURCE_EXHAUSTED;
        goto out;
    }
    lb = buf;
    lb->with_body = false;
    for (size_t i = 0; i < n && nr <= LOCK_BODIES_MAX; i++)
        lb->with_body = lb->with_body || (ops[i]->kind != TIER_COP_POST && !ops[i]->no_body);
    rv = select_in(db, lb->with_body ? lock_body_sql : lock_sql, rows, nr, NULL, fetch_locked, buf);
    if (rv != TIER_OK)
        goto out;
    TIER_CRASH_AT("comments.after_lock");
    for (size_t i = 0; rv == TIER_OK && i < n; i++) {
        tier_comment_op *op = ops[i];
        crow *c;
        if (op->kind == TIER_COP_POST)
            continue;
        c = crow_find(rows, nr, op->id);
        if (!judge(db, op, c))
            continue;
        rv = apply_mem(op, c);
        stored = stored || c->want_stored;
        /* An edit changes no count: it writes no comment_minute row. */
        if (rv == TIER_OK && op->kind != TIER_COP_EDIT)
            agg_add(g, op->after.service, op->after.cid, op->time_ms, op->kind);
    }
    /* Read before write_back: a later edit in this flush must not show. */
    if (rv == TIER_OK && stored && !lb->with_body)
        rv = select_in(db, bodies_sql, rows, nr, wants_stored, fetch_bodies, lb->body);
    if (rv == TIER_OK && stored)
        rv = fill_stored(ops, n, rows, nr);
    if (rv == TIER_OK)
        rv = write_back(db, rows, nr);
out:
    free(buf);
    crows_free(rows, nr);
    return rv;
}

/* ------------------------------------------------------------ apply */

/* The body of the transaction; `posts` is scratch for n pointers. */
static int apply_ops(tier_db *db, tier_comment_op **ops, size_t n, int64_t *next,
                     tier_comment_op **posts, agg *g)
{
    size_t np = 0, nk = 0;
    int rv;

    for (size_t i = 0; i < n; i++) {
        if (ops[i]->kind != TIER_COP_POST)
            continue;
        ops[i]->code = TIER_OK;
        if (ops[i]->replayed) /* stored by an earlier writer: answered, not counted */
            continue;
        ops[i]->id = *next, *next += tier_db_id_step(db);
        posts[np++] = ops[i];
        agg_add(g, ops[i]->service, ops[i]->cid, ops[i]->time_ms, TIER_COP_POST);
    }
    if (np > 0 && (rv = run_multi(db, &INSERT_COMMENTS, posts, np)) != TIER_OK)
        return rv;
    for (size_t i = 0; i < np; i++) /* keyed ones first, in place */
        if (posts[i]->client_id != 0)
            posts[nk++] = posts[i];
    /* ALREADY_EXISTS here: a resend of a post already stored (sql/011). */
    if (nk > 0 && (rv = run_multi(db, &INSERT_KEYS, posts, nk)) != TIER_OK)
        return rv;
    if ((rv = apply_changes(db, ops, n, g)) != TIER_OK)
        return rv;
    /* Rows locked in one global order: two transactions upserting the same
     * hot minutes (two flushers) then wait for each other, never deadlock. */
    qsort(g->rows, g->n, sizeof(*g->rows), minute_cmp);
    return g->n > 0 ? run_multi(db, &UPSERT_MINUTES, g->rows, g->n) : TIER_OK;
}

/* The keyed posts of ops whose key is stored already (a resend after a
 * takeover): marked replayed, with the stored id and time.  One query per
 * call (client_id, request_id); it runs only after a key met a duplicate. */
static int find_replayed(tier_db *db, tier_comment_op **ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tier_comment_op *op = ops[i];
        unsigned long long cid = op->client_id, rid = op->request_id;
        long long seq, id, created;
        MYSQL_BIND p[2], res[3];
        MYSQL_STMT *st;
        bool first = true;
        int rv;
        if (op->kind != TIER_COP_POST || op->client_id == 0 || op->replayed)
            continue;
        for (size_t j = 0; j < i && first; j++) /* this call's keys were read already */
            first = !(ops[j]->kind == TIER_COP_POST && ops[j]->client_id == op->client_id &&
                      ops[j]->request_id == op->request_id);
        if (!first)
            continue;
        tier_db_bind_i64(&p[0], (long long *)&cid);
        tier_db_bind_i64(&p[1], (long long *)&rid);
        p[0].is_unsigned = p[1].is_unsigned = true;
        if ((rv = tier_db_run(db, SQL_POST_KEYS, p, &st)) != TIER_OK)
            return rv;
        tier_db_bind_i64(&res[0], &seq);
        tier_db_bind_i64(&res[1], &id);
        tier_db_bind_i64(&res[2], &created);
        if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
            return tier_db_status(db, st, "comment_post");
        while (mysql_stmt_fetch(st) == 0)
            for (size_t j = i; j < n; j++) {
                tier_comment_op *o = ops[j];
                if (o->kind == TIER_COP_POST && o->client_id == op->client_id &&
                    o->request_id == op->request_id && (long long)o->seq == seq) {
                    o->replayed = true;
                    o->id = id;
                    o->time_ms = created;
                }
            }
        mysql_stmt_free_result(st);
    }
    return TIER_OK;
}

/* One try of the group commit's transaction. */
static int apply_once(tier_db *db, tier_comment_op **ops, size_t n, int64_t *next,
                      tier_comment_op **posts, agg *g)
{
    int rv = tier_writer_fence_check(db); /* autocommit is off: this begins it */

    rv = rv == TIER_OK ? apply_ops(db, ops, n, next, posts, g) : rv;
    rv = rv == TIER_OK ? tier_db_exec(db, "COMMIT") : rv;
    if (rv != TIER_OK)
        tier_db_exec(db, "ROLLBACK");
    return rv;
}

int tier_comments_apply(tier_db *db, tier_comment_op **ops, size_t n, int64_t *next_id,
                        tier_comment_minute **mins, size_t *nmins)
{
    tier_comment_op **posts = malloc((n + 1) * sizeof(*posts));
    int64_t next = *next_id, first = *next_id;
    agg g;
    int rv;

    pthread_once(&sql_once, build_sql);
    *mins = NULL;
    *nmins = 0;
    rv = agg_init(&g, n);
    if (rv == TIER_OK && posts == NULL)
        rv = TIER_RESOURCE_EXHAUSTED;
    if (rv == TIER_OK && (rv = apply_once(db, ops, n, &next, posts, &g)) == TIER_ALREADY_EXISTS) {
        /* A resend of a stored post (or an id taken: never, ids are ours).
         * Mark what is stored, then the whole batch again without it; the
         * ids handed out in the failed try are simply not used. */
        g.n = 0;
        memset(g.slot, 0, g.cap * sizeof(*g.slot));
        for (size_t i = 0; i < n; i++) /* the changes are judged again */
            tier_comment_clear(&ops[i]->after);
        rv = find_replayed(db, ops, n);
        tier_db_exec(db, "ROLLBACK"); /* the lookup's read view */
        next = first;                 /* rolled back: the caller's reserved ids are free again */
        if (rv == TIER_OK)
            rv = apply_once(db, ops, n, &next, posts, &g);
    }
    free(posts);
    free(g.slot);
    if (rv != TIER_OK) {
        for (size_t i = 0; i < n; i++)
            tier_comment_clear(&ops[i]->after);
        free(g.rows);
        return rv;
    }
    *next_id = next;
    *mins = g.rows;
    *nmins = g.n;
    return TIER_OK;
}

/* ------------------------------------------------------------ reads */

/* Result buffers of a LatestComments row. */
typedef struct {
    char service[TIER_COMMENT_SERVICE_MAX * 4 + 1];
    char author[TIER_COMMENT_AUTHOR_MAX * 4 + 1];
    char body[TIER_COMMENT_BODY_MAX + 1];
    unsigned long sl, al, bl;
    my_bool sn, an, bn;
} row_buf;

int tier_comments_latest(tier_db *db, int64_t cid, const char *service, size_t service_len,
                         int64_t before_ms, int64_t before_id, uint32_t limit, tier_comment_fn fn,
                         void *arg)
{
    MYSQL_BIND p[6], res[7];
    long long lcid = cid, lms = before_ms, lbefore = before_id, llimit = limit, id, rcid, created,
              modified;
    unsigned long sl = service_len;
    row_buf *rb = malloc(sizeof(*rb));
    const char *sql = service_len > 0 ? SQL_LATEST_CREATED_SVC : SQL_LATEST_CREATED;
    MYSQL_STMT *st;
    size_t k = 0;
    int rv;

    if (rb == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if (service_len > 0)
        tier_db_bind_str(&p[k++], service, &sl);
    tier_db_bind_i64(&p[k++], &lcid);
    tier_db_bind_i64(&p[k++], &lms);
    tier_db_bind_i64(&p[k++], &lms);
    tier_db_bind_i64(&p[k++], &lbefore);
    tier_db_bind_i64(&p[k++], &llimit);
    if ((rv = tier_db_run(db, sql, p, &st)) != TIER_OK)
        goto out;
    tier_db_bind_i64(&res[0], &id);
    tier_db_bind_buf(&res[1], rb->service, sizeof(rb->service) - 1, &rb->sl, &rb->sn);
    tier_db_bind_i64(&res[2], &rcid);
    tier_db_bind_buf(&res[3], rb->author, sizeof(rb->author) - 1, &rb->al, &rb->an);
    tier_db_bind_buf(&res[4], rb->body, sizeof(rb->body) - 1, &rb->bl, &rb->bn);
    res[4].buffer_type = MYSQL_TYPE_BLOB;
    tier_db_bind_i64(&res[5], &created);
    tier_db_bind_i64(&res[6], &modified);
    if (mysql_stmt_bind_result(st, res) != 0) {
        rv = tier_db_status(db, st, "latest");
        goto out;
    }
    while ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED) {
        size_t bl = clamp(rb->bl, sizeof(rb->body));
        rb->service[clamp(rb->sl, sizeof(rb->service))] = '\0';
        rb->author[clamp(rb->al, sizeof(rb->author))] = '\0';
        rb->body[bl] = '\0';
        tier_comment c = {id, rb->service, rcid,     rb->author, rb->body,
                          bl, created,     modified, false};
        if (fn(arg, &c) != 0)
            break;
    }
    rv = rv == 1 ? tier_db_status(db, st, "latest") : TIER_OK;
    mysql_stmt_free_result(st); /* also drains rows left after an early stop */
out:
    free(rb);
    return rv;
}

int tier_comments_created_of(tier_db *db, int64_t id, int64_t *created_ms)
{
    MYSQL_BIND p[1], res[1];
    long long lid = id, v = 0;
    MYSQL_STMT *st;
    int rv;

    tier_db_bind_i64(&p[0], &lid);
    if ((rv = tier_db_run(db, SQL_CREATED_OF, p, &st)) != TIER_OK)
        return rv;
    tier_db_bind_i64(&res[0], &v);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "created of");
    rv = mysql_stmt_fetch(st);
    mysql_stmt_free_result(st);
    if (rv == MYSQL_NO_DATA)
        return TIER_NOT_FOUND;
    if (rv != 0)
        return tier_db_status(db, st, "created of");
    *created_ms = v;
    return TIER_OK;
}

int tier_comments_by_author(tier_db *db, const char *author, size_t author_len, const char *service,
                            size_t service_len, int64_t at_ms, uint32_t limit, int64_t *ids,
                            size_t *n)
{
    MYSQL_BIND p[7], res[1];
    unsigned long al = author_len, sl = service_len;
    long long lo, hi, lim = limit, id, at = at_ms > 0 ? at_ms : INT64_MAX;
    MYSQL_STMT *st;
    size_t k = 0;
    int rv;

    *n = 0;
    tier_db_slots(db, &lo, &hi); /* this shard's contents only */
    tier_db_bind_str(&p[k++], author, &al);
    tier_db_bind_i64(&p[k++], &at);
    tier_db_bind_i64(&p[k++], &at);
    if (service_len > 0)
        tier_db_bind_str(&p[k++], service, &sl);
    tier_db_bind_i64(&p[k++], &lo);
    tier_db_bind_i64(&p[k++], &hi);
    tier_db_bind_i64(&p[k++], &lim);
    if ((rv = tier_db_run(db, service_len > 0 ? SQL_BY_AUTHOR_SVC : SQL_BY_AUTHOR, p, &st)) !=
        TIER_OK)
        return rv;
    tier_db_bind_i64(&res[0], &id);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "by author");
    while ((rv = mysql_stmt_fetch(st)) == 0 && *n < limit)
        ids[(*n)++] = id;
    mysql_stmt_free_result(st);
    return rv == 1 ? tier_db_status(db, st, "by author") : TIER_OK;
}

int tier_comments_scan_minutes(tier_db *db, int64_t from_minute, tier_minute_fn fn, void *arg)
{
    MYSQL_BIND p[3], res[7];
    long long from = from_minute, minute, cid, lo, hi;
    int delta, created, deleted, restored;
    char service[TIER_COMMENT_SERVICE_MAX * 4 + 1];
    unsigned long sl;
    my_bool sn;
    MYSQL_STMT *st;
    int rv;

    tier_db_slots(db, &lo, &hi); /* the connection's shard's contents only */
    tier_db_bind_i64(&p[0], &from);
    tier_db_bind_i64(&p[1], &lo);
    tier_db_bind_i64(&p[2], &hi);
    if ((rv = tier_db_run(db, SQL_SCAN_MINUTES, p, &st)) != TIER_OK)
        return rv;
    tier_db_bind_i64(&res[0], &minute);
    tier_db_bind_buf(&res[1], service, sizeof(service) - 1, &sl, &sn);
    tier_db_bind_i64(&res[2], &cid);
    tier_db_bind_i32(&res[3], &delta);
    tier_db_bind_i32(&res[4], &created);
    tier_db_bind_i32(&res[5], &deleted);
    tier_db_bind_i32(&res[6], &restored);
    if (mysql_stmt_bind_result(st, res) != 0)
        return tier_db_status(db, st, "scan minutes");
    /* Streamed (no store_result): millions of rows need no client buffer. */
    while ((rv = mysql_stmt_fetch(st)) == 0 || rv == MYSQL_DATA_TRUNCATED) {
        service[clamp(sl, sizeof(service))] = '\0';
        tier_comment_minute m = {service, cid, minute, delta, created, deleted, restored};
        if (fn(arg, &m) != 0)
            break;
    }
    rv = rv == 1 ? tier_db_status(db, st, "scan minutes") : TIER_OK;
    mysql_stmt_free_result(st);
    return rv;
}

int tier_comments_purge_posts(tier_db *db, int64_t before_ms, unsigned limit,
                              unsigned long long *deleted)
{
    MYSQL_BIND p[2];
    long long before = before_ms, lim = limit;
    MYSQL_STMT *st;
    int rv;

    tier_db_bind_i64(&p[0], &before);
    tier_db_bind_i64(&p[1], &lim);
    *deleted = 0;
    if ((rv = tier_db_run(db, SQL_PURGE_POSTS, p, &st)) == TIER_OK)
        *deleted = mysql_stmt_affected_rows(st);
    return rv;
}

int tier_comments_purge_minutes(tier_db *db, int64_t before_minute, unsigned limit,
                                unsigned long long *deleted)
{
    MYSQL_BIND p[2];
    long long before = before_minute, lim = limit;
    MYSQL_STMT *st;
    int rv;

    tier_db_bind_i64(&p[0], &before);
    tier_db_bind_i64(&p[1], &lim);
    if ((rv = tier_db_run(db, SQL_PURGE_MINUTES, p, &st)) != TIER_OK)
        return rv;
    *deleted = mysql_stmt_affected_rows(st);
    return TIER_OK;
}
