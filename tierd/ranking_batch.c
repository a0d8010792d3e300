/*
 * ranking_batch.c -- batches of comment changes (issue 12): DeleteComments,
 * RestoreComments, EditComments, and DeleteByAuthor.
 *
 * They ride the same group commit as every single write (ranking_write.c's
 * flush; store/tier_comments.c applies a flush's changes with a constant
 * number of statements), so 10,000 deletes cost about what 10,000 posts
 * do.  The handler validates each item alone (a bad item gets its own
 * INVALID_ARGUMENT, the others go on), hands the good ones to the batcher
 * and waits for the flushes that carry them: the reply comes after COMMIT
 * and after the index counted them.  Results keep the items' order and the
 * single calls' codes and messages.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranking_int.h"
#include "tier_methods.h"
#include "tier_slot.h"
#include "tier_time.h"

/* Checks one change and completes op (time 0 = now, then never refused
 * for its time); INVALID_ARGUMENT with msg. */
static int check_change(tier_comment_op *op, int64_t now, char *msg, size_t len)
{
    if (op->id <= 0) {
        snprintf(msg, len, "id must be positive");
        return TIER_INVALID_ARGUMENT;
    }
    if (op->time_ms < 0 || op->time_ms > now + RANKING_MAX_SKEW_MS) {
        snprintf(msg, len, "time_ms %lld is in the future (or negative)", (long long)op->time_ms);
        return TIER_INVALID_ARGUMENT;
    }
    if (op->kind == TIER_COP_EDIT && !ranking_body_valid(op->body, op->body_len)) {
        snprintf(msg, len, "body must be 1..65536 bytes");
        return TIER_INVALID_ARGUMENT;
    }
    if (op->time_ms == 0) {
        op->time_ms = now;
        op->live = true;
    }
    op->no_body = true; /* 10,000 bodies would not fit a reply */
    return TIER_OK;
}

/* Every id must be this shard's (id % N, docs/CLUSTER.md): else MOVED to
 * the first foreign id's shard, and nothing is done. */
static int check_ids(ranking *r, tier_rpc_ctx *call, const tier_comment_op *ops, size_t n)
{
    const tierd_config *cfg = r->deps->cfg;
    char url[256] = "";

    if (cfg->shards <= 1)
        return TIER_OK;
    for (size_t i = 0; i < n; i++) {
        unsigned k = ops[i].id > 0 ? (unsigned)(ops[i].id % cfg->shards) : cfg->shard;
        if (k == cfg->shard)
            continue;
        if (r->deps->peers != NULL)
            tierd_peers_owner_url(r->deps->peers, k, url, sizeof(url));
        return tier_rpc_set_moved(call, url,
                                  "moved: comment %" PRId64 " is shard %u's (%s); this tierd "
                                  "serves shard %u of %u: split the batch by id %% %u",
                                  ops[i].id, k, url[0] ? url : "no writer now", cfg->shard,
                                  cfg->shards, cfg->shards);
    }
    return TIER_OK;
}

/* Fills one item's result from its op after the flush. */
static void fill_result(tier_rpc_ctx *call, Tier__CommentResult *res, tier_comment_op *op)
{
    char msg[256];

    res->id = op->id;
    res->code = (Tier__Rpc__Code)op->code;
    if (op->code == TIER_OK) {
        res->comment = ranking_comment_reply(call, &op->after);
        if (res->comment == NULL) {
            res->code = (Tier__Rpc__Code)TIER_RESOURCE_EXHAUSTED;
            res->message = "out of memory";
        }
    } else {
        ranking_refusal_text(op, msg, sizeof(msg));
        res->message = tier_rpc_strdup(call, msg);
    }
}

/* Validates, submits and answers ops[0..n) (filled by the caller from the
 * request); frees nothing: ops is the caller's. */
static int run_changes(ranking *r, tier_rpc_ctx *call, tier_comment_op *ops, size_t n,
                       Tier__CommentsReply *rep)
{
    Tier__CommentResult **res = tier_rpc_alloc(call, (n + 1) * sizeof(*res));
    Tier__CommentResult *cells = tier_rpc_alloc(call, (n + 1) * sizeof(*cells));
    void **items = malloc((n + 1) * sizeof(*items));
    int64_t now = tier_now_ms();
    size_t nitems = 0;
    char msg[128];
    int rv;

    if (res == NULL || cells == NULL || items == NULL) {
        free(items);
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    }
    if ((rv = check_ids(r, call, ops, n)) != TIER_OK) {
        free(items);
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        tier__comment_result__init(&cells[i]);
        res[i] = &cells[i];
        res[i]->id = ops[i].id;
        if (check_change(&ops[i], now, msg, sizeof(msg)) != TIER_OK) {
            ops[i].code = TIER_INVALID_ARGUMENT;
            res[i]->code = (Tier__Rpc__Code)TIER_INVALID_ARGUMENT;
            res[i]->message = tier_rpc_strdup(call, msg);
        } else {
            items[nitems++] = &ops[i];
        }
    }
    rv = tier_batcher_submit_many(r->batcher, items, nitems);
    for (size_t i = 0; i < nitems; i++) {
        tier_comment_op *op = items[i];
        if (rv == TIER_OK)
            fill_result(call, res[op - ops], op);
        tier_comment_clear(&op->after);
    }
    free(items);
    if (rv != TIER_OK)
        return tier_rpc_set_message(call, rv, "changes not stored");
    rep->n_results = n;
    rep->results = res;
    return TIER_OK;
}

static int too_many(tier_rpc_ctx *call, size_t n)
{
    return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "items: at most %d per call (got %zu)",
                                RANKING_MAX_CHANGES, n);
}

/* DeleteComments, RestoreComments (items of (id, time_ms)) and
 * EditComments (items of (id, body)): req is the request of kind's call. */
static int change_batch(ranking *r, tier_rpc_ctx *call, tier_comment_op_kind kind,
                        const ProtobufCMessage *req, ProtobufCMessage *reply)
{
    const Tier__DeleteCommentsRequest *del = (const Tier__DeleteCommentsRequest *)req;
    const Tier__RestoreCommentsRequest *res = (const Tier__RestoreCommentsRequest *)req;
    const Tier__EditCommentsRequest *ed = (const Tier__EditCommentsRequest *)req;
    size_t n = kind == TIER_COP_DELETE    ? del->n_items
               : kind == TIER_COP_RESTORE ? res->n_items
                                          : ed->n_items;
    tier_comment_op *ops;
    int rv;

    if (n > RANKING_MAX_CHANGES)
        return too_many(call, n);
    if ((ops = calloc(n + 1, sizeof(*ops))) == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++) {
        tier_comment_op *op = &ops[i];
        op->kind = kind;
        if (kind == TIER_COP_DELETE) {
            op->id = del->items[i]->id;
            op->time_ms = del->items[i]->time_ms;
        } else if (kind == TIER_COP_RESTORE) {
            op->id = res->items[i]->id;
            op->time_ms = res->items[i]->time_ms;
        } else {
            op->id = ed->items[i]->id;
            op->body = ed->items[i]->body;
            op->body_len = op->body ? strlen(op->body) : 0;
        }
    }
    rv = run_changes(r, call, ops, n, (Tier__CommentsReply *)reply);
    free(ops);
    return rv;
}

int ranking_h_delete_comments(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                              ProtobufCMessage *reply)
{
    return change_batch(arg, call, TIER_COP_DELETE, req, reply);
}

int ranking_h_restore_comments(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                               ProtobufCMessage *reply)
{
    return change_batch(arg, call, TIER_COP_RESTORE, req, reply);
}

int ranking_h_edit_comments(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                            ProtobufCMessage *reply)
{
    return change_batch(arg, call, TIER_COP_EDIT, req, reply);
}

/* ------------------------------------------------------------ DeleteByAuthor */

/* This shard's part: up to limit of the author's live comments deleted;
 * *more when some are left. */
static int delete_author_local(ranking *r, tier_rpc_ctx *call, const Tier__DeleteByAuthorRequest *q,
                               uint32_t limit, uint64_t *deleted, bool *more)
{
    size_t sl = q->service ? strlen(q->service) : 0, n = 0;
    int64_t *ids = malloc(((size_t)limit + 2) * sizeof(*ids));
    tier_comment_op *ops = NULL;
    void **items = NULL;
    tier_db *db;
    int rv;

    *deleted = 0;
    *more = false;
    if (ids == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if ((db = tier_pool_get(r->deps->db)) == NULL) {
        free(ids);
        return TIER_UNAVAILABLE;
    }
    /* limit + 1: the extra one only tells whether more are left. */
    rv = tier_comments_by_author(db, q->author, strlen(q->author), q->service, sl, q->time_ms,
                                 limit + 1, ids, &n);
    tier_db_pool_put(r->deps->db, db);
    if (rv == TIER_OK && n > limit) {
        *more = true;
        n = limit;
    }
    ops = calloc(n + 1, sizeof(*ops));
    items = malloc((n + 1) * sizeof(*items));
    if (rv == TIER_OK && (ops == NULL || items == NULL))
        rv = TIER_RESOURCE_EXHAUSTED;
    for (size_t i = 0; rv == TIER_OK && i < n; i++) {
        char msg[128];
        ops[i] = (tier_comment_op){.kind = TIER_COP_DELETE, .id = ids[i], .time_ms = q->time_ms};
        check_change(&ops[i], tier_now_ms(), msg, sizeof(msg)); /* time checked by the caller */
        items[i] = &ops[i];
    }
    if (rv == TIER_OK)
        rv = tier_batcher_submit_many(r->batcher, items, n);
    for (size_t i = 0; ops != NULL && i < n; i++) {
        *deleted += rv == TIER_OK && ops[i].code == TIER_OK;
        tier_comment_clear(&ops[i].after);
    }
    (void)call;
    free(ids);
    free(ops);
    free(items);
    return rv;
}

/* Every other shard's part (local requests), summed into *deleted and
 * *remaining. */
static int delete_author_peers(ranking *r, tier_rpc_ctx *call, const Tier__DeleteByAuthorRequest *q,
                               uint64_t *deleted, uint64_t *remaining)
{
    const tierd_config *cfg = r->deps->cfg;
    Tier__DeleteByAuthorRequest sub = *q;
    ProtobufCMessage *rep[TIER_SHARDS_MAX] = {0};
    char err[256];
    int rv;

    sub.base.descriptor = &tier__delete_by_author_request__descriptor;
    sub.local = true;
    rv = tierd_peers_fanout_wait(r->deps->peers, call, TIER_M_DELETE_BY_AUTHOR, &sub.base,
                                 &tier__delete_by_author_reply__descriptor, rep, err, sizeof(err));
    if (rv != TIER_OK)
        return tier_rpc_set_message(call, rv, "DeleteByAuthor across shards: %s", err);
    for (unsigned k = 0; k < cfg->shards; k++) {
        const Tier__DeleteByAuthorReply *x = (const Tier__DeleteByAuthorReply *)rep[k];
        if (x != NULL) {
            *deleted += x->deleted;
            *remaining += x->remaining;
        }
    }
    return TIER_OK;
}

int ranking_h_delete_by_author(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                               ProtobufCMessage *reply)
{
    ranking *r = arg;
    const Tier__DeleteByAuthorRequest *q = (const Tier__DeleteByAuthorRequest *)req;
    Tier__DeleteByAuthorReply *rep = (Tier__DeleteByAuthorReply *)reply;
    size_t al = q->author ? strlen(q->author) : 0, sl = q->service ? strlen(q->service) : 0;
    uint32_t limit = q->limit ? q->limit : RANKING_MAX_CHANGES;
    uint64_t deleted = 0;
    bool more = false;
    int rv;

    if (al < 1 || al > TIER_COMMENT_AUTHOR_MAX || !ranking_utf8_valid(q->author, al))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "author must be 1..255 bytes of UTF-8");
    if (sl > 0 && !ranking_service_valid(q->service, sl))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "service must be 1..64 bytes of [a-z0-9_.-]");
    if (limit > RANKING_MAX_CHANGES)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "limit: 1..%d (0 = %d)",
                                    RANKING_MAX_CHANGES, RANKING_MAX_CHANGES);
    if (q->time_ms < 0 || q->time_ms > tier_now_ms() + RANKING_MAX_SKEW_MS)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "time_ms %lld is in the future (or negative)",
                                    (long long)q->time_ms);
    if ((rv = delete_author_local(r, call, q, limit, &deleted, &more)) != TIER_OK)
        return tier_rpc_set_message(call, rv, "comments not deleted");
    rep->deleted = deleted;
    rep->remaining = more;
    if (!q->local && r->deps->cfg->shards > 1 && r->deps->peers != NULL)
        return delete_author_peers(r, call, q, &rep->deleted, &rep->remaining);
    return TIER_OK;
}
