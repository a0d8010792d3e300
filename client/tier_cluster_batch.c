/*
 * tier_cluster_batch.c -- batches cut by shard (tier_cluster_report_views,
 * _add_contents, _post_comments, _delete_comments, _restore_comments,
 * _edit_comments; tier_client.h).
 *
 * Generic over the request's one repeated message field (field 1, items
 * with an int64 `cid`, or for changes of comments an int64 `id`: the shard
 * that made the comment, id % shards, docs/CLUSTER.md) and the reply's
 * (field 1, one result per item):
 * the request is cut into one part per shard, plus one for items without a
 * cid (cid 0, AddContents: tierd picks one) sent to any owner.  Parts are
 * sent at once, one thread each; a part refused as moved, or whose owner is
 * unreachable, is sent again after a fresh topology (tier_cluster.c's
 * retry rules); parts that succeeded are not sent again.  The results
 * are moved, not copied, into one reply in request order, which tier_free
 * frees like any other.
 */
#include "tier_client.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_client_internal.h"
#include "tier_cluster_internal.h"
#include "tier_methods.h"
#include "tier_slot.h"

#define ANY TIER_SHARDS_MAX /* the part of items without a cid */
#define NPARTS (TIER_SHARDS_MAX + 1)

/* The message's field 1 as (count, array): it must be a repeated message. */
static bool repeated(const ProtobufCMessage *m, size_t **n, ProtobufCMessage ***items)
{
    const ProtobufCFieldDescriptor *f = &m->descriptor->fields[0];

    if (m->descriptor->n_fields < 1 || f->label != PROTOBUF_C_LABEL_REPEATED ||
        f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    *n = (size_t *)((char *)m + f->quantifier_offset);
    *items = *(ProtobufCMessage ***)((char *)m + f->offset);
    return true;
}

static void set_repeated(ProtobufCMessage *m, size_t n, ProtobufCMessage **items)
{
    const ProtobufCFieldDescriptor *f = &m->descriptor->fields[0];

    *(size_t *)((char *)m + f->quantifier_offset) = n;
    *(ProtobufCMessage ***)((char *)m + f->offset) = items;
}

/* The item's int64 field `name`; *has says whether it has one. */
static int64_t int64_field(const ProtobufCMessage *item, const char *name, bool *has)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(item->descriptor, name);

    *has = f != NULL && f->type == PROTOBUF_C_TYPE_INT64;
    return *has ? *(const int64_t *)((const char *)item + f->offset) : 0;
}

/* The part of an item: its content's shard, or its comment id's. */
static unsigned part_of(const ProtobufCMessage *item, unsigned shards)
{
    bool has;
    int64_t cid = int64_field(item, "cid", &has), id;

    if (shards <= 1)
        return 0;
    if (has)
        return cid == 0 ? ANY : tier_shard_of(cid, shards);
    id = int64_field(item, "id", &has);
    return has && id > 0 ? (unsigned)(id % shards) : ANY;
}

typedef struct {
    const char *method;
    const ProtobufCMessageDescriptor *rd;
    size_t n;
    ProtobufCMessage **items;
    unsigned *part;       /* [n]: the part of each item */
    size_t *pos;          /* [n]: its index in its part */
    size_t count[NPARTS]; /* items per part */
    ProtobufCMessage *reply[NPARTS];
} batch;

static void batch_free(batch *b)
{
    for (unsigned p = 0; p < NPARTS; p++)
        if (b->reply[p] != NULL)
            protobuf_c_message_free_unpacked(b->reply[p], NULL);
    free(b->part);
    free(b->pos);
}

/* Which part each item goes to, for `shards`. */
static void cut(batch *b, unsigned shards)
{
    memset(b->count, 0, sizeof(b->count));
    for (size_t i = 0; i < b->n; i++) {
        b->part[i] = part_of(b->items[i], shards);
        b->pos[i] = b->count[b->part[i]]++;
    }
}

/* Sends part p (a request of req's type holding only its items). */
static int send_part(tier_cluster *cl, batch *b, const ProtobufCMessage *req, unsigned p,
                     uint32_t wait_ms, tier_error *err)
{
    ProtobufCMessage **items = malloc(b->count[p] * sizeof(*items));
    ProtobufCMessage *part = malloc(req->descriptor->sizeof_message);
    size_t j = 0, *n;
    ProtobufCMessage **unused;
    int rv = TIER_RESOURCE_EXHAUSTED;

    if (items != NULL && part != NULL) {
        memcpy(part, req, req->descriptor->sizeof_message); /* any other fields too */
        for (size_t i = 0; i < b->n; i++)
            if (b->part[i] == p)
                items[j++] = b->items[i];
        set_repeated(part, j, items);
        rv = tier_cluster_call_shard(cl, p, wait_ms, b->method, part, b->rd, &b->reply[p], err);
    }
    free(items);
    free(part);
    if (rv == TIER_OK && (!repeated(b->reply[p], &n, &unused) || *n != b->count[p])) {
        snprintf(err->message, sizeof(err->message), "%s: %zu results for %zu items", b->method,
                 repeated(b->reply[p], &n, &unused) ? *n : 0, b->count[p]);
        err->code = rv = TIER_INTERNAL;
    }
    return rv;
}

/* One part's send, on a thread of its own. */
typedef struct {
    tier_cluster *cl;
    batch *b;
    const ProtobufCMessage *req;
    unsigned p;
    uint32_t wait_ms;
    int rv;
    tier_error e;
    pthread_t thread;
    bool threaded;
} part_job;

static void *part_main(void *arg)
{
    part_job *j = arg;

    j->rv = send_part(j->cl, j->b, j->req, j->p, j->wait_ms, &j->e);
    return NULL;
}

/* The parts' outcome: the first error that another go cannot mend, else
 * the first one it can (in err), else OK. */
static int outcome(const part_job *jobs, size_t n, tier_error *err)
{
    int rv = TIER_OK;

    for (size_t i = 0; i < n; i++) {
        if (jobs[i].rv == TIER_OK)
            continue;
        if (!tier_cluster_retryable(jobs[i].rv, &jobs[i].e)) {
            *err = jobs[i].e;
            return jobs[i].rv; /* the owner's answer: no point in another go */
        }
        if (rv == TIER_OK) {
            *err = jobs[i].e;
            rv = jobs[i].rv;
        }
    }
    return rv;
}

/* Sends every part not answered yet, all at once (one thread per part but
 * the last, which is sent from this one); OK when all are answered. */
static int send_parts(tier_cluster *cl, batch *b, const ProtobufCMessage *req, uint32_t wait_ms,
                      tier_error *err)
{
    part_job *jobs = calloc(NPARTS, sizeof(*jobs));
    size_t n = 0;
    int rv;

    if (jobs == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    for (unsigned p = 0; p < NPARTS; p++)
        if (b->count[p] != 0 && b->reply[p] == NULL)
            jobs[n++] = (part_job){.cl = cl, .b = b, .req = req, .p = p, .wait_ms = wait_ms};
    for (size_t i = 0; i < n; i++) {
        jobs[i].threaded =
            i + 1 < n && pthread_create(&jobs[i].thread, NULL, part_main, &jobs[i]) == 0;
        if (!jobs[i].threaded) /* the last one, or no thread to be had */
            part_main(&jobs[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (jobs[i].threaded)
            pthread_join(jobs[i].thread, NULL);
    rv = outcome(jobs, n, err);
    free(jobs);
    return rv;
}

/* Moves every part's results into one reply, in request order. */
static int assemble(batch *b, ProtobufCMessage **out)
{
    ProtobufCMessage *rep = malloc(b->rd->sizeof_message);
    ProtobufCMessage **res = malloc((b->n ? b->n : 1) * sizeof(*res));
    ProtobufCMessage **from = NULL;
    size_t *n;

    if (rep == NULL || res == NULL) {
        free(rep);
        free(res);
        return TIER_RESOURCE_EXHAUSTED;
    }
    b->rd->message_init(rep);
    for (size_t i = 0; i < b->n; i++) {
        repeated(b->reply[b->part[i]], &n, &from);
        res[i] = from[b->pos[i]];
    }
    for (unsigned p = 0; p < NPARTS; p++)
        if (b->reply[p] != NULL && repeated(b->reply[p], &n, &from))
            *n = 0; /* moved out: freeing the part frees the array only */
    set_repeated(rep, b->n, res);
    *out = rep;
    return TIER_OK;
}

static int route_batch(tier_cluster *cl, const char *method, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *rd, ProtobufCMessage **out,
                       tier_error *err)
{
    batch b = {.method = method, .rd = rd};
    tier_cluster_retry r;
    tier_error local;
    size_t *n;
    int rv;

    *out = NULL;
    if (err == NULL)
        err = &local;
    if (!repeated(req, &n, &b.items))
        return TIER_INVALID_ARGUMENT;
    b.n = *n;
    b.part = malloc((b.n ? b.n : 1) * sizeof(*b.part));
    b.pos = malloc((b.n ? b.n : 1) * sizeof(*b.pos));
    if (b.part == NULL || b.pos == NULL) {
        batch_free(&b);
        return TIER_RESOURCE_EXHAUSTED;
    }
    cut(&b, tier_cluster_shards(cl));
    tier_cluster_retry_begin(cl, &r);
    while ((rv = send_parts(cl, &b, req, tier_cluster_connect_wait(cl, &r), err)) != TIER_OK &&
           tier_cluster_retryable(rv, err) && tier_cluster_retry_again(cl, &r))
        ;
    if (rv == TIER_OK && (rv = assemble(&b, out)) == TIER_OK)
        memset(err, 0, sizeof(*err)); /* no failure of an earlier go left in it */
    batch_free(&b);
    return rv;
}

#define TIER_CLUSTER_BATCH(fn, name, Req, Rep, desc)                                               \
    int fn(tier_cluster *cl, const Req *req, Rep **reply, tier_error *err)                         \
    {                                                                                              \
        return route_batch(cl, name, &req->base, &desc, (ProtobufCMessage **)reply, err);          \
    }

TIER_CLUSTER_BATCH(tier_cluster_report_views, TIER_M_REPORT_VIEWS, Tier__ReportViewsRequest,
                   Tier__ReportViewsReply, tier__report_views_reply__descriptor)
TIER_CLUSTER_BATCH(tier_cluster_add_contents, TIER_M_ADD_CONTENTS, Tier__AddContentsRequest,
                   Tier__AddContentsReply, tier__add_contents_reply__descriptor)
TIER_CLUSTER_BATCH(tier_cluster_post_comments, TIER_M_POST_COMMENTS, Tier__PostCommentsRequest,
                   Tier__PostCommentsReply, tier__post_comments_reply__descriptor)
TIER_CLUSTER_BATCH(tier_cluster_delete_comments, TIER_M_DELETE_COMMENTS,
                   Tier__DeleteCommentsRequest, Tier__CommentsReply,
                   tier__comments_reply__descriptor)
TIER_CLUSTER_BATCH(tier_cluster_restore_comments, TIER_M_RESTORE_COMMENTS,
                   Tier__RestoreCommentsRequest, Tier__CommentsReply,
                   tier__comments_reply__descriptor)
TIER_CLUSTER_BATCH(tier_cluster_edit_comments, TIER_M_EDIT_COMMENTS, Tier__EditCommentsRequest,
                   Tier__CommentsReply, tier__comments_reply__descriptor)
