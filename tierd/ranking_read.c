/*
 * ranking_read.c -- the read side of ranking: TopContents, answered exactly
 * from the in-memory rank index, and LatestComments, answered from MySQL's
 * (cid, created_ms, id) index with a keyset cursor ((created_ms,
 * id) of the cursor comment), so a page
 * costs the same however deep it is and concurrent posts never make a page
 * skip or repeat a comment.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ranking_int.h"
#include "tier_log.h"
#include "tier_methods.h"
#include "tier_slot.h"
#include "tier_time.h"

/* A LatestComments reply stays under this many bytes of comments, well
 * within the 4 MiB message limit, whatever n and the body sizes are; a page
 * cut short still carries a cursor. */
#define LATEST_REPLY_BUDGET (3u << 20)

/* ------------------------------------------------------------ TopContents */

/* Checks the window; INVALID_ARGUMENT with a message when it is bad. */
static int check_window(ranking *r, tier_rpc_ctx *call, const Tier__TopContentsRequest *q)
{
    int64_t now_min = ranking_minute(tier_now_ms());

    if (q->from_ms < 0 || q->from_ms % 60000 != 0 || q->to_ms % 60000 != 0)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "from_ms and to_ms must be on whole minutes");
    if (q->from_ms >= q->to_ms)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "from_ms must be < to_ms");
    if (q->to_ms / 60000 >= INT32_MAX)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "to_ms out of range");
    /* Windows reaching before the retained range would be silently cut. */
    if (q->to_ms / 60000 - q->from_ms / 60000 > r->retention ||
        q->from_ms / 60000 < now_min - r->retention)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "window must lie within the retention (%lld minutes)",
                                    (long long)r->retention);
    if (q->limit > TIER_RANK_LIMIT_MAX)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "limit must be 1..%d",
                                    TIER_RANK_LIMIT_MAX);
    if (q->service != NULL && q->service[0] != '\0' &&
        !ranking_service_valid(q->service, strlen(q->service)))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "service must be 1..64 bytes of [a-z0-9_.-]");
    return TIER_OK;
}

static Tier__TopRow *top_row(tier_rpc_ctx *call, Tier__TopRow *m, const tier_rank_row *row)
{
    tier__top_row__init(m);
    /* Copied: the index may move its names once the lock is released. */
    m->service = tier_rpc_strdup(call, row->service);
    m->cid = row->cid;
    m->change = row->change;
    m->created = row->created;
    m->deleted = row->deleted;
    m->restored = row->restored;
    return m->service ? m : NULL;
}

/* Several shards: every other shard's top (local) merged with ours into
 * the exact top (tier_rank_merge).  A shard being taken over does not
 * answer for up to about the writer ttl: asked again until the call's
 * deadline (8 s at most), never answered without it. */
static int merge_shards(ranking *r, tier_rpc_ctx *call, const Tier__TopContentsRequest *q,
                        uint32_t limit, tier_rank_row **rows, size_t *n)
{
    const tierd_config *cfg = r->deps->cfg;
    Tier__TopContentsRequest sub = *q;
    ProtobufCMessage *rep[TIER_SHARDS_MAX] = {0};
    char err[256];
    int rv;

    sub.base.descriptor = &tier__top_contents_request__descriptor;
    sub.local = true;
    rv = tierd_peers_fanout_wait(r->deps->peers, call, TIER_M_TOP_CONTENTS, &sub.base,
                                 &tier__top_contents_reply__descriptor, rep, err, sizeof(err));
    if (rv != TIER_OK)
        return tier_rpc_set_message(call, rv, "TopContents across shards: %s", err);
    size_t total = *n;
    for (unsigned k = 0; k < cfg->shards; k++)
        if (rep[k] != NULL)
            total += ((Tier__TopContentsReply *)rep[k])->n_rows;
    tier_rank_row *all = tier_rpc_alloc(call, (total + 1) * sizeof(*all));
    if (all == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(all, *rows, *n * sizeof(*all));
    total = *n;
    for (unsigned k = 0; k < cfg->shards; k++) {
        Tier__TopContentsReply *tr = (Tier__TopContentsReply *)rep[k];
        for (size_t i = 0; tr != NULL && i < tr->n_rows && i < limit; i++) {
            const Tier__TopRow *x = tr->rows[i];
            all[total++] = (tier_rank_row){.service = x->service, /* in the call's arena */
                                           .cid = x->cid,
                                           .change = x->change,
                                           .created = x->created,
                                           .deleted = x->deleted,
                                           .restored = x->restored};
        }
    }
    tier_rank_merge(all, total, q->order == TIER__ORDER__DECREASE, limit, all, n);
    *rows = all;
    return TIER_OK;
}

int ranking_h_top_contents(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                           ProtobufCMessage *reply)
{
    ranking *r = arg;
    const Tier__TopContentsRequest *q = (const Tier__TopContentsRequest *)req;
    Tier__TopContentsReply *rep = (Tier__TopContentsReply *)reply;
    uint32_t limit = q->limit ? q->limit : 100;
    size_t n = 0;
    int rv;

    if ((rv = check_window(r, call, q)) != TIER_OK)
        return rv;
    tier_rank_row *rows = tier_rpc_alloc(call, limit * sizeof(*rows));
    Tier__TopRow *cells = tier_rpc_alloc(call, limit * sizeof(*cells));
    rep->rows = tier_rpc_alloc(call, limit * sizeof(*rep->rows));
    if (rows == NULL || cells == NULL || rep->rows == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    rv = tier_rank_top(r->rank, q->service, q->from_ms / 60000, q->to_ms / 60000,
                       q->order == TIER__ORDER__DECREASE, limit, rows, &n);
    if (rv != TIER_OK)
        return tier_rpc_set_message(call, rv, "ranking failed");
    if (r->deps->peers != NULL && !q->local &&
        (rv = merge_shards(r, call, q, limit, &rows, &n)) != TIER_OK)
        return rv;
    for (size_t i = 0; i < n; i++)
        if ((rep->rows[i] = top_row(call, &cells[i], &rows[i])) == NULL)
            return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    rep->n_rows = n;
    return TIER_OK;
}

/* ------------------------------------------------------------ LatestComments */

typedef struct {
    tier_rpc_ctx *call;
    Tier__LatestCommentsReply *rep;
    uint32_t n;   /* page size asked for */
    size_t bytes; /* of comments put in the reply */
    bool more;    /* a further page exists */
    bool oom;
} latest_page;

static int latest_row(void *arg, const tier_comment *c)
{
    latest_page *pg = arg;
    size_t sz = c->body_len + strlen(c->author) + strlen(c->service) + 64;
    Tier__Comment *m;

    if (pg->rep->n_comments == pg->n ||
        (pg->rep->n_comments > 0 && pg->bytes + sz > LATEST_REPLY_BUDGET)) {
        pg->more = true;
        return 1;
    }
    if ((m = tier_rpc_alloc(pg->call, sizeof(*m))) == NULL) {
        pg->oom = true;
        return 1;
    }
    tier__comment__init(m);
    m->id = c->id;
    m->service = tier_rpc_strdup(pg->call, c->service);
    m->cid = c->cid;
    m->author = tier_rpc_strdup(pg->call, c->author);
    m->body = tier_rpc_strndup(pg->call, c->body, c->body_len);
    m->created_ms = c->created_ms;
    m->modified_ms = c->modified_ms;
    pg->oom = m->service == NULL || m->author == NULL || m->body == NULL;
    pg->rep->comments[pg->rep->n_comments++] = m;
    pg->bytes += sz;
    return pg->oom;
}

int ranking_h_latest_comments(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                              ProtobufCMessage *reply)
{
    ranking *r = arg;
    const Tier__LatestCommentsRequest *q = (const Tier__LatestCommentsRequest *)req;
    Tier__LatestCommentsReply *rep = (Tier__LatestCommentsReply *)reply;
    size_t sl = q->service ? strlen(q->service) : 0;
    latest_page pg = {call, rep, q->n ? q->n : 20, 0, false, false};
    int64_t before_ms = INT64_MAX;
    tier_db *db;
    int rv;

    if (q->cid <= 0 || q->n > 1000 || q->cursor < 0 ||
        (sl > 0 && !ranking_service_valid(q->service, sl)))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "need cid > 0, n 0..1000, cursor >= 0, a valid service");
    if ((rep->comments = tier_rpc_alloc(call, (pg.n + 1) * sizeof(*rep->comments))) == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    if ((db = tier_pool_get(r->deps->db)) == NULL)
        return tier_rpc_set_message(call, TIER_UNAVAILABLE, "MySQL unavailable");
    /* The cursor comment's (created_ms, id) is where the page starts; its
     * created_ms never changes (a delete is a mark). */
    if (q->cursor > 0 && (rv = tier_comments_created_of(db, q->cursor, &before_ms)) != TIER_OK) {
        tier_db_pool_put(r->deps->db, db);
        if (rv == TIER_NOT_FOUND)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "cursor %lld names no comment",
                                        (long long)q->cursor);
        return tier_rpc_set_message(call, rv, "cannot read comments");
    }
    /* n + 1 rows: the extra one only tells whether a further page exists. */
    rv = tier_comments_latest(db, q->cid, q->service, sl, before_ms,
                              q->cursor ? q->cursor : INT64_MAX, pg.n + 1, latest_row, &pg);
    tier_db_pool_put(r->deps->db, db);
    if (rv != TIER_OK)
        return tier_rpc_set_message(call, rv, "cannot read comments");
    if (pg.oom)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    if (pg.more && rep->n_comments > 0)
        rep->next_cursor = rep->comments[rep->n_comments - 1]->id;
    return TIER_OK;
}
