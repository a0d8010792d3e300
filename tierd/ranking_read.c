/*
 * ranking_read.c -- the read side of ranking: TopContents, answered exactly
 * from the in-memory rank index (by change over a window, or by the hot
 * score; pages after a cursor, ranking_cursor.c), and LatestComments,
 * answered from MySQL's (cid, created_ms, id) index with a keyset cursor
 * ((created_ms, id) of the cursor comment), so a page
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

/* What a TopContents call asks once its fields are checked. */
typedef struct {
    int order;        /* Tier__Order */
    int64_t from, to; /* INCREASE/DECREASE: the window, minutes */
    int64_t now;      /* HOT: the evaluation minute */
    uint32_t limit;
    ranking_cursor cur;
    bool has_cursor;
} top_query;

/* Limit and service, whatever the order.  A tierd asking its peers
 * (local) may ask one row more than a client, to learn whether a page
 * follows (ranking_h_top_contents). */
static int check_common(tier_rpc_ctx *call, const Tier__TopContentsRequest *q)
{
    if (q->limit > TIER_RANK_LIMIT_MAX + (q->local ? 1 : 0))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "limit must be 1..%d",
                                    TIER_RANK_LIMIT_MAX);
    if (q->service != NULL && q->service[0] != '\0' &&
        !ranking_service_valid(q->service, strlen(q->service)))
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "service must be 1..64 bytes of [a-z0-9_.-]");
    return TIER_OK;
}

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
    if (q->half_life_s != 0)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "half_life_s is for HOT only");
    return check_common(call, q);
}

/* HOT: from_ms 0, to_ms 0 (now) or a minute within the retention, the
 * configured half-life. */
static int check_hot(ranking *r, tier_rpc_ctx *call, const Tier__TopContentsRequest *q,
                     int64_t *now)
{
    int64_t wall = ranking_minute(tier_now_ms()), h = tier_rank_half_life(r->rank);

    if (q->from_ms != 0 || q->to_ms < 0 || q->to_ms % 60000 != 0)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "HOT: from_ms must be 0, to_ms 0 or a whole minute");
    *now = q->to_ms ? q->to_ms / 60000 : wall;
    if (*now < wall - r->retention || *now > wall + 1)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "HOT: to_ms must lie within the retention (%lld minutes)",
                                    (long long)r->retention);
    if (q->half_life_s != 0 && q->half_life_s != h)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "half_life_s must be 0 or tierd's hot_half_life_s (%lld)",
                                    (long long)h);
    return check_common(call, q);
}

/* Checks the request and decodes its cursor into t. */
static int top_parse(ranking *r, tier_rpc_ctx *call, const Tier__TopContentsRequest *q,
                     top_query *t)
{
    int rv;

    memset(t, 0, sizeof(*t));
    t->order = q->order;
    t->limit = q->limit ? q->limit : 100;
    if (q->order != TIER__ORDER__INCREASE && q->order != TIER__ORDER__DECREASE &&
        q->order != TIER__ORDER__HOT)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "unknown order %d", q->order);
    rv = q->order == TIER__ORDER__HOT ? check_hot(r, call, q, &t->now) : check_window(r, call, q);
    if (rv != TIER_OK)
        return rv;
    t->from = q->from_ms / 60000;
    t->to = q->to_ms / 60000;
    if (q->cursor == NULL || q->cursor[0] == '\0')
        return TIER_OK;
    if (!ranking_cursor_parse(q->cursor, &t->cur) || t->cur.order != (int)q->order)
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                    "cursor: not a next_cursor of this order");
    if (q->order == TIER__ORDER__HOT) {
        /* the pages of a walk are ranked at the first page's minute */
        if (q->to_ms != 0 && t->cur.minute != t->now)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                        "cursor: HOT cursor of another minute than to_ms");
        t->now = t->cur.minute;
        int64_t wall = ranking_minute(tier_now_ms());
        if (t->now < wall - r->retention || t->now > wall + 1)
            return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT,
                                        "cursor: HOT cursor older than the retention");
    }
    t->has_cursor = true;
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
    m->hot = row->hot;
    return m->service ? m : NULL;
}

/* Several shards: every other shard's top (local) merged with ours into
 * the exact top (tier_rank_merge).  With a cursor each shard answers its
 * best rows after it, and the best of their union after it is the best of
 * the union's rows after it: still exact.  HOT: every shard ranks at the
 * same minute (to_ms), so the scores compare.  A shard being taken over
 * does not answer for up to about the writer ttl: asked again until the
 * call's deadline (8 s at most), never answered without it. */
static int merge_shards(ranking *r, tier_rpc_ctx *call, const Tier__TopContentsRequest *q,
                        const top_query *t, uint32_t limit, tier_rank_row **rows, size_t *n)
{
    const tierd_config *cfg = r->deps->cfg;
    Tier__TopContentsRequest sub = *q;
    ProtobufCMessage *rep[TIER_SHARDS_MAX] = {0};
    char err[256];
    int rv;

    sub.base.descriptor = &tier__top_contents_request__descriptor;
    sub.local = true;
    sub.limit = limit;
    if (t->order == TIER__ORDER__HOT)
        sub.to_ms = t->now * 60000;
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
                                           .restored = x->restored,
                                           .hot = x->hot};
        }
    }
    if (t->order == TIER__ORDER__HOT)
        tier_rank_merge_hot(all, total, limit, all, n);
    else
        tier_rank_merge(all, total, q->order == TIER__ORDER__DECREASE, limit, all, n);
    *rows = all;
    return TIER_OK;
}

/* This shard's best `want` rows (after the cursor). */
static int top_local(ranking *r, const Tier__TopContentsRequest *q, const top_query *t,
                     uint32_t want, tier_rank_row *rows, size_t *n)
{
    const tier_rank_key *after = t->has_cursor ? &t->cur.key : NULL;

    if (t->order == TIER__ORDER__HOT)
        return tier_rank_hot(r->rank, q->service, t->now, after, want, rows, n);
    return tier_rank_top_after(r->rank, q->service, t->from, t->to,
                               t->order == TIER__ORDER__DECREASE, after, want, rows, n);
}

int ranking_h_top_contents(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                           ProtobufCMessage *reply)
{
    ranking *r = arg;
    const Tier__TopContentsRequest *q = (const Tier__TopContentsRequest *)req;
    Tier__TopContentsReply *rep = (Tier__TopContentsReply *)reply;
    top_query t;
    size_t n = 0;
    int rv;

    if ((rv = top_parse(r, call, q, &t)) != TIER_OK)
        return rv;
    /* One row more than the page tells whether another page follows; a
     * peer's answer (local) is only material for the asker's merge. */
    uint32_t want = q->local ? t.limit : t.limit + 1;
    tier_rank_row *rows = tier_rpc_alloc(call, want * sizeof(*rows));
    Tier__TopRow *cells = tier_rpc_alloc(call, want * sizeof(*cells));
    rep->rows = tier_rpc_alloc(call, want * sizeof(*rep->rows));
    if (rows == NULL || cells == NULL || rep->rows == NULL)
        return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    if ((rv = top_local(r, q, &t, want, rows, &n)) != TIER_OK)
        return tier_rpc_set_message(call, rv, "ranking failed");
    if (r->deps->peers != NULL && !q->local &&
        (rv = merge_shards(r, call, q, &t, want, &rows, &n)) != TIER_OK)
        return rv;
    if (n > t.limit) {
        n = t.limit;
        if ((rep->next_cursor = ranking_cursor_format(call, t.order, t.now, &rows[n - 1])) == NULL)
            return tier_rpc_set_message(call, TIER_RESOURCE_EXHAUSTED, "out of memory");
    }
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
