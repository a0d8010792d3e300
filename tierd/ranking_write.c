/*
 * ranking_write.c -- the write side of ranking: PostComment, PostComments,
 * EditComment, DeleteComment, RestoreComment, and the flush that makes them
 * durable.
 *
 * A handler validates, turns the request into tier_comment_ops and submits
 * them to the one batcher; it returns (and the client gets its answer) only
 * after the flush that carried them has
 *   1. committed them to MySQL in one transaction with their per-minute
 *      count changes (store/tier_comments.c), and
 *   2. added those same changes to the in-memory rank index.
 * So an acknowledged comment is durable and already counted by TopContents.
 *
 * Ids: assigned by the flusher, the single writer, from max(id) + 1 loaded
 * at start (and reloaded after a lost connection, in case a COMMIT whose
 * answer was lost did go through).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranking_int.h"
#include "tier_crash.h"
#include "tier_log.h"
#include "tier_methods.h"
#include "tier_time.h"

/* ------------------------------------------------------------ validation */

bool ranking_service_valid(const char *s, size_t len)
{
    /* Lower-case ASCII only: comment_minute's key compares service with a
     * case- and trailing-space-insensitive collation, the index byte by
     * byte; with this alphabet both agree. */
    if (len < 1 || len > TIER_COMMENT_SERVICE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

bool ranking_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p++;
        int more = c < 0x80             ? 0
                   : (c & 0xe0) == 0xc0 ? 1
                   : (c & 0xf0) == 0xe0 ? 2
                   : (c & 0xf8) == 0xf0 ? 3
                                        : -1;
        unsigned cp = more == 0 ? c : more == 1 ? c & 0x1f : more == 2 ? c & 0x0f : c & 0x07;
        if (more < 0 || end - p < more)
            return false;
        for (int k = 0; k < more; k++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (*p & 0x3f);
        }
        static const unsigned min[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0)
            return false;
    }
    return true;
}

bool ranking_body_valid(const char *s, size_t len)
{
    return len >= 1 && len <= TIER_COMMENT_BODY_MAX && s != NULL;
}

/* Checks one comment to post and fills op; INVALID_ARGUMENT with msg. */
static int check_post(const Tier__PostCommentRequest *c, int64_t now, tier_comment_op *op,
                      char *msg, size_t len)
{
    size_t sl = c->service ? strlen(c->service) : 0, al = c->author ? strlen(c->author) : 0;
    size_t bl = c->body ? strlen(c->body) : 0;

    if (!ranking_service_valid(c->service, sl))
        snprintf(msg, len, "service must be 1..64 bytes of [a-z0-9_.-]");
    else if (c->cid <= 0)
        snprintf(msg, len, "cid must be positive");
    else if (al < 1 || al > TIER_COMMENT_AUTHOR_MAX || !ranking_utf8_valid(c->author, al))
        snprintf(msg, len, "author must be 1..255 bytes of UTF-8");
    else if (!ranking_body_valid(c->body, bl))
        snprintf(msg, len, "body must be 1..65536 bytes");
    else if (c->time_ms < 0 || c->time_ms > now + RANKING_MAX_SKEW_MS)
        snprintf(msg, len, "time_ms %lld is in the future (or negative)", (long long)c->time_ms);
    else {
        *op = (tier_comment_op){.kind = TIER_COP_POST,
                                .service = c->service,
                                .service_len = sl,
                                .cid = c->cid,
                                .author = c->author,
                                .author_len = al,
                                .body = c->body,
                                .body_len = bl,
                                .time_ms = c->time_ms ? c->time_ms : now};
        return TIER_OK;
    }
    return TIER_INVALID_ARGUMENT;
}

/* ------------------------------------------------------------ flush */

int ranking_load_next_id(ranking *r, tier_db *db)
{
    int64_t max;
    int rv = tier_comments_max_id(db, &max);

    /* Never below what is reserved already: another flusher may hold ids
     * above MySQL's max that it has not committed yet. */
    pthread_mutex_lock(&r->id_mu);
    if (rv == TIER_OK && r->next_id < max + 1)
        r->next_id = tier_db_id_align(db, max + 1); /* one of our shard's ids */
    pthread_mutex_unlock(&r->id_mu);
    return rv;
}

/* Reserves ids for the posts of one flush; returns the first. */
static int64_t reserve_ids(ranking *r, tier_comment_op **ops, size_t n)
{
    size_t posts = 0;
    int64_t first;

    for (size_t i = 0; i < n; i++)
        posts += ops[i]->kind == TIER_COP_POST;
    pthread_mutex_lock(&r->id_mu);
    first = r->next_id;
    r->next_id += (int64_t)posts * (int64_t)(r->deps->cfg->shards); /* tier_db_id_step */
    pthread_mutex_unlock(&r->id_mu);
    return first;
}

/* Flusher i's own connection, reopened when it broke. */
static tier_db *writer_db(ranking *r, unsigned i)
{
    char err[512];

    if (r->wdb[i] != NULL && !tier_db_broken(r->wdb[i]))
        return r->wdb[i];
    tier_db_close(r->wdb[i]);
    r->wdb[i] = NULL;
    if (tier_db_open(&r->wdb[i], &r->deps->cfg->db, err, sizeof(err)) != TIER_OK) {
        tier_error("ranking: writer: %s", err);
        r->wdb[i] = NULL;
        return NULL;
    }
    /* A COMMIT whose answer was lost may have gone through.  Then
     * autocommit off: tier_comments_apply's transactions begin by
     * themselves. */
    if (ranking_load_next_id(r, r->wdb[i]) != TIER_OK ||
        tier_db_autocommit(r->wdb[i], false) != TIER_OK) {
        tier_db_close(r->wdb[i]);
        r->wdb[i] = NULL;
    }
    return r->wdb[i];
}

static void feed_index(ranking *r, const tier_comment_minute *m, size_t n)
{
    tier_rank_event *ev = malloc((n + 1) * sizeof(*ev));
    int rv = TIER_RESOURCE_EXHAUSTED;

    if (ev != NULL) {
        for (size_t i = 0; i < n; i++)
            ev[i] = (tier_rank_event){m[i].service, m[i].cid,     m[i].minute,  m[i].delta,
                                      m[i].created, m[i].deleted, m[i].restored};
        rv = tier_rank_add_batch(r->rank, ev, n);
    }
    free(ev);
    ranking_watch_poke(r->watch); /* WatchTop: lists may have changed */
    /* Committed but not counted: only a restart (rebuild) heals this. */
    if (rv != TIER_OK)
        tier_error("ranking: index update failed (%s); restart tierd to rebuild it",
                   tier_status_name(rv));
}

/* tier_comments_total{op}: the committed ones (code OK) of a batch. */
static void count_ops(ranking *r, tier_comment_op **ops, size_t n)
{
    static const char *const names[] = {"post", "edit", "delete", "restore"};
    size_t by[4] = {0};

    for (size_t i = 0; i < n; i++)
        if (ops[i]->code == TIER_OK && (unsigned)ops[i]->kind < 4)
            by[ops[i]->kind]++;
    for (int k = 0; k < 4; k++) {
        if (by[k] > 0)
            tier_metric_add(r->deps->metrics->comments, (double)by[k], names[k]);
        tierd_stats_add(r->deps->stats, TIERD_STAT_COMMENTS, by[k]);
    }
}

int ranking_flush(void *arg, unsigned flusher, void **items, size_t n)
{
    ranking *r = arg;
    tier_comment_op **ops = (tier_comment_op **)items;
    tier_comment_minute *mins;
    size_t nmins;
    int rv = TIER_UNAVAILABLE;
    int64_t t0 = tier_mono_us();

    /* Two flushers may still deadlock on comment rows (deletes of the same
     * comments in opposite orders): InnoDB aborts one, which runs again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        tier_db *db = writer_db(r, flusher);
        int64_t next = reserve_ids(r, ops, n);
        if (db == NULL)
            return TIER_UNAVAILABLE;
        rv = tier_comments_apply(db, ops, n, &next, &mins, &nmins);
        if (rv != TIER_ABORTED)
            break;
    }
    if (rv != TIER_OK)
        return rv;
    TIER_CRASH_AT("comments.after_commit");
    int64_t t1 = tier_mono_us();
    count_ops(r, ops, n);
    if (nmins > 0)
        feed_index(r, mins, nmins);
    free(mins);
    tier_debug("ranking: flushed %zu items (%zu minute rows): mysql %lld us, index %lld us", n,
               nmins, (long long)(t1 - t0), (long long)(tier_mono_us() - t1));
    return TIER_OK;
}

/* ------------------------------------------------------------ posts */

/*
 * One write in flight: PostComment, EditComment, DeleteComment and
 * RestoreComment are answered with deferred replies.  The handler (INLINE:
 * it only validates and queues) hands the op to the batcher and returns at
 * once; the flusher, after the COMMIT and the index update, fills the reply
 * and finishes the call.  So a thousand writes waiting for their group
 * commit hold no thread at all, only their rpc contexts.  Lives in the
 * call's arena, which lasts until the reply is sent.
 */
typedef struct {
    tier_comment_op op;
    tier_rpc_ctx *call;
    ProtobufCMessage *reply;
    const tierd_deps *deps; /* changes: to name another shard's owner */
} pending_write;

static void post_done(void *arg, int status)
{
    pending_write *w = arg;
    Tier__PostCommentReply *rep = (Tier__PostCommentReply *)w->reply;

    if (status == TIER_OK) {
        rep->id = w->op.id;
        rep->created_ms = w->op.time_ms;
    } else {
        tier_rpc_set_message(w->call, status, "comment not stored");
    }
    tier_rpc_finish(w->call, status);
}

/* Queues w for the next flush; the call is finished by done. */
static int submit_deferred(ranking *r, pending_write *w, tier_batch_done_fn done)
{
    int rv;

    /* Deferred first: the flusher may finish the call before submit returns. */
    tier_rpc_defer(w->call);
    if ((rv = tier_batcher_submit_async(r->batcher, &w->op, done, w)) != TIER_OK) {
        tier_rpc_set_message(w->call, rv, "ranking is stopping");
        tier_rpc_finish(w->call, rv);
    }
    return TIER_RPC_DEFERRED;
}

static pending_write *pending_new(tier_rpc_ctx *call, ProtobufCMessage *reply)
{
    pending_write *w = tier_rpc_alloc(call, sizeof(*w));
    if (w != NULL) {
        w->call = call;
        w->reply = reply;
    }
    return w;
}

int ranking_h_post_comment(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                           ProtobufCMessage *reply)
{
    const Tier__PostCommentRequest *q = (const Tier__PostCommentRequest *)req;
    pending_write *w = pending_new(call, reply);
    char msg[128];

    if (w == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    if (check_post(q, tier_now_ms(), &w->op, msg, sizeof(msg)) != TIER_OK)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "%s", msg);
    tier_rpc_call_ids(call, &w->op.client_id, &w->op.request_id); /* sql/011 */
    if (!tierd_shard_owns(((ranking *)arg)->deps->cfg, q->cid))
        return tierd_shard_moved(call, ((ranking *)arg)->deps, q->cid);
    return submit_deferred(arg, w, post_done);
}

/* Allocates the reply's results, one per comment. */
static Tier__PostCommentResult **alloc_results(tier_rpc_ctx *call, size_t n)
{
    Tier__PostCommentResult **res = tier_rpc_alloc(call, (n + 1) * sizeof(*res));
    Tier__PostCommentResult *cells = tier_rpc_alloc(call, (n + 1) * sizeof(*cells));

    if (res == NULL || cells == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        tier__post_comment_result__init(&cells[i]);
        res[i] = &cells[i];
    }
    return res;
}

int ranking_h_post_comments(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                            ProtobufCMessage *reply)
{
    ranking *r = arg;
    const Tier__PostCommentsRequest *q = (const Tier__PostCommentsRequest *)req;
    Tier__PostCommentsReply *rep = (Tier__PostCommentsReply *)reply;
    size_t n = q->n_comments, nops = 0;
    int64_t now = tier_now_ms();
    char msg[128];

    if (n > RANKING_MAX_POSTS)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "comments: at most %d per call (got %zu)", RANKING_MAX_POSTS,
                                    n);
    for (size_t i = 0; i < n; i++) /* a batch is one shard's, whole */
        if (!tierd_shard_owns(r->deps->cfg, q->comments[i]->cid))
            return tierd_shard_moved(call, r->deps, q->comments[i]->cid);
    Tier__PostCommentResult **res = alloc_results(call, n);
    tier_comment_op *ops = malloc((n + 1) * sizeof(*ops));
    void **items = malloc((n + 1) * sizeof(*items));
    if (res == NULL || ops == NULL || items == NULL) {
        free(ops);
        free(items);
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        int code = check_post(q->comments[i], now, &ops[i], msg, sizeof(msg));
        tier_rpc_call_ids(call, &ops[i].client_id, &ops[i].request_id); /* sql/011 */
        ops[i].seq = (uint32_t)i;
        res[i]->code = (Tier__Rpc__Code)code;
        if (code != TIER_OK)
            res[i]->message = tier_rpc_strdup(call, msg);
        else
            items[nops++] = &ops[i];
    }
    int rv = tier_batcher_submit_many(r->batcher, items, nops);
    for (size_t i = 0; rv == TIER_OK && i < n; i++) {
        if ((int)res[i]->code == TIER_OK) {
            res[i]->id = ops[i].id;
            res[i]->created_ms = ops[i].time_ms;
        }
    }
    free(ops);
    free(items);
    if (rv != TIER_OK)
        return tier_rpc_set_message(call, rv, "comments not stored");
    rep->n_results = n;
    rep->results = res;
    return TIER_OK;
}

/* ------------------------------------------------------------ edit, delete, restore */

/* Copies a comment into the call's arena. */
Tier__Comment *ranking_comment_reply(tier_rpc_ctx *call, const tier_comment *c)
{
    Tier__Comment *m = tier_rpc_alloc(call, sizeof(*m));

    if (m == NULL)
        return NULL;
    tier__comment__init(m);
    m->id = c->id;
    m->service = tier_rpc_strdup(call, c->service);
    m->cid = c->cid;
    m->author = tier_rpc_strdup(call, c->author);
    m->body = tier_rpc_strndup(call, c->body, c->body_len);
    m->created_ms = c->created_ms;
    m->modified_ms = c->modified_ms;
    m->deleted = c->deleted;
    return m->service && m->author && m->body ? m : NULL;
}

static const char *refusal(const tier_comment_op *op)
{
    if (op->code == TIER_NOT_FOUND)
        return "no such comment";
    if (op->floor == TIER_FLOOR_CREATED)
        return "time_ms is before the comment was created";
    if (op->floor == TIER_FLOOR_DELETE)
        return "time_ms is before the comment's last delete";
    if (op->floor == TIER_FLOOR_RESTORE)
        return "time_ms is before the comment's last restore";
    if (op->floor == TIER_FLOOR_SHARD)
        return "moved: the comment's content is another shard's (ask Topology for its owner)";
    if (op->kind == TIER_COP_RESTORE)
        return "comment is not deleted";
    if (op->kind == TIER_COP_DELETE)
        return "comment is already deleted";
    return "comment is deleted (restore it first)";
}

void ranking_refusal_text(const tier_comment_op *op, char *buf, size_t len)
{
    if (op->floor == TIER_FLOOR_NONE || op->floor == TIER_FLOOR_SHARD)
        snprintf(buf, len, "%s: %lld", refusal(op), (long long)op->id);
    else
        snprintf(buf, len, "%s: %lld (time_ms %lld, must be >= %lld)", refusal(op),
                 (long long)op->id, (long long)op->time_ms, (long long)op->floor_ms);
}

static int refusal_message(tier_rpc_ctx *call, const tier_comment_op *op)
{
    char msg[256];

    ranking_refusal_text(op, msg, sizeof(msg));
    return tier_rpc_set_message(call, op->code, "%s", msg);
}

static void change_done(void *arg, int status)
{
    pending_write *w = arg;
    Tier__CommentReply *rep = (Tier__CommentReply *)w->reply;
    tier_comment_op *op = &w->op;
    int code = status;

    if (status != TIER_OK) {
        tier_rpc_set_message(w->call, status, "change not stored");
    } else if (op->code != TIER_OK && op->floor == TIER_FLOOR_SHARD) {
        code = tierd_shard_moved(w->call, w->deps, op->cid);
    } else if (op->code != TIER_OK) {
        code = refusal_message(w->call, op);
    } else {
        rep->comment = ranking_comment_reply(w->call, &op->after);
        if (rep->comment == NULL)
            code = tier_rpc_set_message(w->call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    }
    tier_comment_clear(&op->after);
    tier_rpc_finish(w->call, code);
}

/* Queues one edit/delete/restore; the reply is the comment after it.
 * op->time_ms: 0 = now, else a backfilled time (delete, restore). */
static int change(ranking *r, tier_rpc_ctx *call, const tier_comment_op *op,
                  ProtobufCMessage *reply)
{
    pending_write *w = pending_new(call, reply);
    int64_t now = tier_now_ms();

    if (op->id <= 0)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "id must be positive");
    if (op->time_ms < 0 || op->time_ms > now + RANKING_MAX_SKEW_MS)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "time_ms %lld is in the future (or negative)",
                                    (long long)op->time_ms);
    if (w == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    w->op = *op;
    w->deps = r->deps;
    if (w->op.time_ms == 0) {
        w->op.time_ms = now;
        w->op.live = true;
    }
    return submit_deferred(r, w, change_done);
}

int ranking_h_edit_comment(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                           ProtobufCMessage *reply)
{
    const Tier__EditCommentRequest *q = (const Tier__EditCommentRequest *)req;
    size_t bl = q->body ? strlen(q->body) : 0;
    tier_comment_op op = {.kind = TIER_COP_EDIT, .id = q->id, .body = q->body, .body_len = bl};

    if (!ranking_body_valid(q->body, bl))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "body must be 1..65536 bytes");
    return change(arg, call, &op, reply);
}

int ranking_h_delete_comment(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                             ProtobufCMessage *reply)
{
    const Tier__DeleteCommentRequest *q = (const Tier__DeleteCommentRequest *)req;
    tier_comment_op op = {.kind = TIER_COP_DELETE, .id = q->id, .time_ms = q->time_ms};
    return change(arg, call, &op, reply);
}

int ranking_h_restore_comment(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                              ProtobufCMessage *reply)
{
    const Tier__RestoreCommentRequest *q = (const Tier__RestoreCommentRequest *)req;
    tier_comment_op op = {.kind = TIER_COP_RESTORE, .id = q->id, .time_ms = q->time_ms};
    return change(arg, call, &op, reply);
}
