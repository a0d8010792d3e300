/*
 * tierctl_ranking.c -- tierctl's ranking commands:
 *
 *   comment post SERVICE CID AUTHOR BODY
 *   comment edit ID BODY | comment delete ID | comment restore ID
 *   comment delete|restore ID ID... | - [--at T]   (batches: DeleteComments...)
 *   comment delete --author A [--service S] [--at T]   (DeleteByAuthor, to the end)
 *   comments CID [-n N] [--cursor C] [--service S]
 *   top --from T --to T [-n N] [--service S] [--decrease] [--cursor C] [--all]
 *   top --order hot [--at T] [-n N] [--service S] [--cursor C] [--all]
 *   top --watch ... (tierctl_watch.c)
 *
 * Times T are UTC: "2026-11-23 10:03" (or with a 'T'), milliseconds since
 * the epoch, "now", or relative to now: "-60m", "-2h", "-1d".  Windows are
 * whole minutes, so "now" means the end of the current minute (the window
 * --from -60m --to now is the last 60 minutes, the current one included).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_time.h"
#include "tierctl.h"

/* ------------------------------------------------------------ times */

/* The end of the current minute, in ms. */
static int64_t minute_end_now(void)
{
    return (tier_now_ms() / 60000 + 1) * 60000;
}

/* A time argument (tierctl_parse.c) into ms. */
static bool parse_time(const char *s, int64_t *out)
{
    return tierctl_parse_time(s, minute_end_now(), out);
}

/* ------------------------------------------------------------ output */

static json_t *comment_json(const Tier__Comment *c)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "id",
                     tierctl_jint(c->id), "service", tierctl_jstr(c->service), "cid",
                     tierctl_jint(c->cid), "author", tierctl_jstr(c->author), "body",
                     tierctl_jstr(c->body), "created", tierctl_jtime(c->created_ms), "created_ms",
                     tierctl_jint(c->created_ms), "modified", tierctl_jtime(c->modified_ms),
                     "modified_ms", tierctl_jint(c->modified_ms), "deleted", c->deleted);
}

static void print_comment(const tierctl *t, const Tier__Comment *c)
{
    char cr[48], md[48];
    printf("%lld  %s  cid %lld  %s  created %s  modified %s%s\n  %s\n", (long long)c->id,
           c->service, (long long)c->cid, c->author, tierctl_time(t, c->created_ms, cr, sizeof(cr)),
           tierctl_time(t, c->modified_ms, md, sizeof(md)), c->deleted ? "  DELETED" : "", c->body);
}

/* ------------------------------------------------------------ comment */

static int comment_post(tierctl *t, int argc, char **argv)
{
    Tier__PostCommentRequest req = TIER__POST_COMMENT_REQUEST__INIT;
    Tier__PostCommentReply *rep;
    char buf[48];
    int rv;

    if (argc != 6 || !tierctl_int(argv[3], &req.cid))
        return tierctl_usage(t, "usage: tierctl comment post SERVICE CID AUTHOR BODY");
    req.service = argv[2];
    req.author = argv[4];
    req.body = argv[5];
    if ((rv = tier_post_comment(tierctl_for(t, req.cid), &req, &rep, &t->err)) != TIER_OK)
        return rv;
    if (t->json)
        tierctl_emit(stdout, json_pack("{s:o, s:o, s:o}", "id", tierctl_jint(rep->id), "created",
                                       tierctl_jtime(rep->created_ms), "created_ms",
                                       tierctl_jint(rep->created_ms)));
    else
        printf("comment %lld at %s\n", (long long)rep->id,
               tierctl_time(t, rep->created_ms, buf, sizeof(buf)));
    tier_free(rep);
    return TIER_OK;
}

/* edit, delete, restore: all answer with the comment after the change. */
static int comment_change(tierctl *t, int argc, char **argv)
{
    const char *op = argv[1];
    Tier__CommentReply *rep = NULL;
    tier_cluster *cl = tierctl_cluster(t); /* several shards: the comment's own */
    int64_t id;
    int rv;

    bool edit = strcmp(op, "edit") == 0;
    if (argc != (edit ? 4 : 3) || !tierctl_int(argv[2], &id))
        return tierctl_usage(t, "usage: tierctl comment %s ID%s", op, edit ? " BODY" : "");
    if (edit) {
        Tier__EditCommentRequest req = TIER__EDIT_COMMENT_REQUEST__INIT;
        req.id = id;
        req.body = argv[3];
        rv = cl ? tier_cluster_edit_comment(cl, &req, &rep, &t->err)
                : tier_edit_comment(t->client, &req, &rep, &t->err);
    } else if (strcmp(op, "delete") == 0) {
        Tier__DeleteCommentRequest req = TIER__DELETE_COMMENT_REQUEST__INIT;
        req.id = id;
        rv = cl ? tier_cluster_delete_comment(cl, &req, &rep, &t->err)
                : tier_delete_comment(t->client, &req, &rep, &t->err);
    } else {
        Tier__RestoreCommentRequest req = TIER__RESTORE_COMMENT_REQUEST__INIT;
        req.id = id;
        rv = cl ? tier_cluster_restore_comment(cl, &req, &rep, &t->err)
                : tier_restore_comment(t->client, &req, &rep, &t->err);
    }
    if (rv != TIER_OK)
        return rv;
    if (t->json)
        tierctl_emit(stdout, rep->comment ? comment_json(rep->comment) : json_null());
    else if (rep->comment != NULL)
        print_comment(t, rep->comment);
    tier_free(rep);
    return TIER_OK;
}

/* ------------------------------------------------------------ batches */

/* Up to 10,000 ids per call (tier.proto's cap). */
#define BATCH_MAX 10000

typedef struct {
    int64_t *ids;
    size_t n, cap;
    int64_t at_ms; /* --at: backfilled time; 0 = now */
    const char *author, *service;
} batch_args;

static bool add_id(batch_args *b, int64_t id)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        int64_t *ids = realloc(b->ids, cap * sizeof(*ids));
        if (ids == NULL)
            return false;
        b->ids = ids, b->cap = cap;
    }
    b->ids[b->n++] = id;
    return true;
}

/* "-": ids from stdin, one per line (or separated by blanks). */
static bool read_ids(tierctl *t, batch_args *b)
{
    char word[64];

    while (scanf("%63s", word) == 1) {
        int64_t id;
        if (!tierctl_int(word, &id)) {
            tierctl_usage(t, "comment: \"%s\" (stdin) is not a comment id", word);
            return false;
        }
        if (!add_id(b, id))
            return false;
    }
    return true;
}

static bool batch_parse(tierctl *t, int argc, char **argv, batch_args *b)
{
    for (int i = 2; i < argc; i++) {
        int64_t id;
        if (strcmp(argv[i], "--at") == 0 && i + 1 < argc) {
            if (!tierctl_parse_time(argv[++i], tier_now_ms(), &b->at_ms)) {
                tierctl_usage(t, "comment: --at \"%s\" is not a time: " TIERCTL_TIME_FORMS,
                              argv[i]);
                return false;
            }
        } else if (strcmp(argv[i], "--author") == 0 && i + 1 < argc) {
            b->author = argv[++i];
        } else if (strcmp(argv[i], "--service") == 0 && i + 1 < argc) {
            b->service = argv[++i];
        } else if (strcmp(argv[i], "-") == 0) {
            if (!read_ids(t, b))
                return false;
        } else if (tierctl_int(argv[i], &id)) {
            if (!add_id(b, id))
                return false;
        } else {
            tierctl_usage(t, "comment %s: unexpected argument \"%s\"", argv[1], argv[i]);
            return false;
        }
    }
    return true;
}

/* Sends ids[0..n) (at most BATCH_MAX) as one DeleteComments or
 * RestoreComments call. */
static int send_batch(tierctl *t, bool restore, const int64_t *ids, size_t n, int64_t at_ms,
                      Tier__CommentsReply **rep)
{
    Tier__DeleteCommentRequest *d = calloc(n + 1, sizeof(*d));
    void **p = calloc(n + 1, sizeof(*p));
    tier_cluster *cl = tierctl_cluster(t);
    int rv = TIER_RESOURCE_EXHAUSTED;

    /* Delete and Restore items have the same fields (id, time_ms). */
    Tier__RestoreCommentRequest *r = calloc(n + 1, sizeof(*r));
    if (d != NULL && p != NULL && r != NULL) {
        for (size_t i = 0; i < n; i++) {
            if (restore) {
                tier__restore_comment_request__init(&r[i]);
                r[i].id = ids[i], r[i].time_ms = at_ms, p[i] = &r[i];
            } else {
                tier__delete_comment_request__init(&d[i]);
                d[i].id = ids[i], d[i].time_ms = at_ms, p[i] = &d[i];
            }
        }
        if (restore) {
            Tier__RestoreCommentsRequest q = TIER__RESTORE_COMMENTS_REQUEST__INIT;
            q.n_items = n, q.items = (Tier__RestoreCommentRequest **)p;
            rv = cl ? tier_cluster_restore_comments(cl, &q, rep, &t->err)
                    : tier_restore_comments(t->client, &q, rep, &t->err);
        } else {
            Tier__DeleteCommentsRequest q = TIER__DELETE_COMMENTS_REQUEST__INIT;
            q.n_items = n, q.items = (Tier__DeleteCommentRequest **)p;
            rv = cl ? tier_cluster_delete_comments(cl, &q, rep, &t->err)
                    : tier_delete_comments(t->client, &q, rep, &t->err);
        }
    }
    free(d);
    free(r);
    free(p);
    return rv;
}

/* Prints a batch's results; counts the refused ones and keeps the first
 * refusal's code. */
static void print_results(tierctl *t, const Tier__CommentsReply *rep, json_t *arr, size_t *refused,
                          int *first)
{
    for (size_t i = 0; i < rep->n_results; i++) {
        const Tier__CommentResult *x = rep->results[i];
        if (x->code != 0) {
            if ((*refused)++ == 0)
                *first = (int)x->code;
        }
        if (t->json)
            json_array_append_new(arr, json_pack("{s:o, s:s, s:o}", "id", tierctl_jint(x->id),
                                                 "code", tier_status_name((int)x->code), "message",
                                                 tierctl_jstr(x->message)));
        else if (x->code == 0)
            printf("%lld  ok\n", (long long)x->id);
        else
            printf("%lld  %s  %s\n", (long long)x->id, tier_status_name((int)x->code), x->message);
    }
}

/* comment delete|restore ID ID... : batches of up to 10,000; exit status
 * the first refused item's code (0 when all were done). */
static int comment_batch(tierctl *t, bool restore, const batch_args *b)
{
    json_t *arr = t->json ? json_array() : NULL;
    size_t refused = 0;
    int first = TIER_OK, rv = TIER_OK;

    for (size_t at = 0; rv == TIER_OK && at < b->n; at += BATCH_MAX) {
        size_t k = b->n - at < BATCH_MAX ? b->n - at : BATCH_MAX;
        Tier__CommentsReply *rep = NULL;
        if ((rv = send_batch(t, restore, b->ids + at, k, b->at_ms, &rep)) == TIER_OK)
            print_results(t, rep, arr, &refused, &first);
        tier_free(rep);
    }
    if (t->json)
        tierctl_emit(stdout, json_pack("{s:o}", "results", arr));
    if (rv != TIER_OK)
        return rv;
    if (refused > 0) {
        snprintf(t->err.message, sizeof(t->err.message), "%zu of %zu comments refused", refused,
                 b->n);
        return first;
    }
    return TIER_OK;
}

/* comment delete --author A: DeleteByAuthor until nothing is left. */
static int comment_delete_author(tierctl *t, const batch_args *b)
{
    Tier__DeleteByAuthorRequest q = TIER__DELETE_BY_AUTHOR_REQUEST__INIT;
    tier_cluster *cl = tierctl_cluster(t);
    uint64_t total = 0, remaining = 1;
    int rv = TIER_OK;

    q.author = (char *)b->author;
    q.service = (char *)(b->service ? b->service : "");
    q.time_ms = b->at_ms;
    while (rv == TIER_OK && remaining != 0) {
        Tier__DeleteByAuthorReply *rep = NULL;
        rv = cl ? tier_cluster_delete_by_author(cl, &q, &rep, &t->err)
                : tier_delete_by_author(t->client, &q, &rep, &t->err);
        if (rv == TIER_OK) {
            total += rep->deleted;
            /* Nothing deleted yet something left: others' changes race us;
             * stop rather than spin. */
            remaining = rep->deleted == 0 ? 0 : rep->remaining;
        }
        tier_free(rep);
    }
    if (rv != TIER_OK)
        return rv;
    if (t->json)
        tierctl_emit(stdout, json_pack("{s:s, s:o}", "author", b->author, "deleted",
                                       tierctl_jint((int64_t)total)));
    else
        printf("%llu comments of %s deleted\n", (unsigned long long)total, b->author);
    return TIER_OK;
}

/* delete/restore with several ids, "-", --at or --author. */
static bool is_batch(int argc, char **argv)
{
    if (strcmp(argv[1], "delete") != 0 && strcmp(argv[1], "restore") != 0)
        return false;
    return argc != 3 || strcmp(argv[2], "-") == 0;
}

static int cmd_batch(tierctl *t, int argc, char **argv)
{
    batch_args b = {0};
    bool restore = strcmp(argv[1], "restore") == 0;
    int rv;

    if (!batch_parse(t, argc, argv, &b)) {
        free(b.ids);
        return TIERCTL_USAGE;
    }
    if (b.author != NULL && !restore && b.n == 0)
        rv = comment_delete_author(t, &b);
    else if (b.author == NULL && b.service == NULL && b.n > 0)
        rv = comment_batch(t, restore, &b);
    else
        rv = tierctl_usage(t, "usage: tierctl comment %s ID... | - [--at T]%s", argv[1],
                           restore ? "" : " | --author A [--service S] [--at T]");
    free(b.ids);
    return rv;
}

static int cmd_comment(tierctl *t, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "post") == 0)
        return comment_post(t, argc, argv);
    if (argc >= 3 && is_batch(argc, argv))
        return cmd_batch(t, argc, argv);
    if (argc >= 2 && (strcmp(argv[1], "edit") == 0 || strcmp(argv[1], "delete") == 0 ||
                      strcmp(argv[1], "restore") == 0))
        return comment_change(t, argc, argv);
    return tierctl_usage(t, "usage: tierctl comment post|edit|delete|restore ...");
}

/* ------------------------------------------------------------ comments */

static int print_latest(tierctl *t, const Tier__LatestCommentsReply *rep)
{
    if (t->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < rep->n_comments; i++)
            json_array_append_new(arr, comment_json(rep->comments[i]));
        tierctl_emit(stdout, json_pack("{s:o, s:o}", "comments", arr, "next_cursor",
                                       tierctl_jint(rep->next_cursor)));
        return TIER_OK;
    }
    for (size_t i = 0; i < rep->n_comments; i++)
        print_comment(t, rep->comments[i]);
    if (rep->n_comments == 0)
        tierctl_none();
    if (rep->next_cursor != 0)
        printf("(more: --cursor %lld)\n", (long long)rep->next_cursor);
    return TIER_OK;
}

static int cmd_comments(tierctl *t, int argc, char **argv)
{
    Tier__LatestCommentsRequest req = TIER__LATEST_COMMENTS_REQUEST__INIT;
    Tier__LatestCommentsReply *rep;
    int64_t v;
    int rv;

    if (argc < 2 || !tierctl_int(argv[1], &req.cid))
        return tierctl_usage(t, "usage: tierctl comments CID [-n N] [--cursor C] [--service S]");
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc && tierctl_int(argv[i + 1], &v) && v >= 0)
            req.n = (uint32_t)v, i++;
        else if (strcmp(argv[i], "--cursor") == 0 && i + 1 < argc &&
                 tierctl_int(argv[i + 1], &req.cursor))
            i++;
        else if (strcmp(argv[i], "--service") == 0 && i + 1 < argc)
            req.service = argv[++i];
        else
            return tierctl_usage(t, "comments: unexpected argument \"%s\"", argv[i]);
    }
    if ((rv = tier_latest_comments(tierctl_for(t, req.cid), &req, &rep, &t->err)) != TIER_OK)
        return rv;
    print_latest(t, rep);
    tier_free(rep);
    return TIER_OK;
}

/* ------------------------------------------------------------ top */

json_t *tierctl_top_rows_json(Tier__TopRow *const *rows, size_t n, bool hot)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++) {
        const Tier__TopRow *r = rows[i];
        json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "service", tierctl_jstr(r->service),
                              "cid", tierctl_jint(r->cid), "change", tierctl_jint(r->change),
                              "created", tierctl_jint(r->created), "deleted",
                              tierctl_jint(r->deleted), "restored", tierctl_jint(r->restored));
        if (hot)
            json_object_set_new(o, "hot", json_real(r->hot));
        json_array_append_new(arr, o);
    }
    return arr;
}

void tierctl_top_rows_print(Tier__TopRow *const *rows, size_t n, size_t first, bool hot,
                            bool header)
{
    if (header)
        printf("%-5s %-16s %-20s %8s %8s %8s %8s%s\n", "rank", "service", "cid", "change",
               "created", "deleted", "restored", hot ? "         hot" : "");
    for (size_t i = 0; i < n; i++) {
        const Tier__TopRow *r = rows[i];
        char rank[24] = "-";
        if (first > 0)
            snprintf(rank, sizeof(rank), "%zu", first + i);
        printf("%-5s %-16s %-20lld %8lld %8lld %8lld %8lld", rank, r->service, (long long)r->cid,
               (long long)r->change, (long long)r->created, (long long)r->deleted,
               (long long)r->restored);
        if (hot)
            printf(" %12.6g", r->hot);
        printf("\n");
    }
}

/* Prints one page; `first` is the rank of its first row (1 on the first
 * page of --all, 0 when unknown: a page fetched with --cursor). */
static void print_top(tierctl *t, const Tier__TopContentsRequest *req,
                      const Tier__TopContentsReply *rep, size_t first, bool header)
{
    char f[48], to[48];
    bool hot = req->order == TIER__ORDER__HOT;

    if (t->json) {
        json_t *arr = tierctl_top_rows_json(rep->rows, rep->n_rows, hot);
        json_t *o = hot ? json_pack("{s:s, s:o}", "order", "hot", "rows", arr)
                        : json_pack("{s:s, s:o, s:o, s:o}", "order",
                                    req->order == TIER__ORDER__DECREASE ? "decrease" : "increase",
                                    "from", tierctl_jtime(req->from_ms), "to",
                                    tierctl_jtime(req->to_ms), "rows", arr);
        if (hot && req->to_ms != 0)
            json_object_set_new(o, "at", tierctl_jtime(req->to_ms));
        json_object_set_new(o, "next_cursor", tierctl_jstr(rep->next_cursor));
        tierctl_emit(stdout, o);
        return;
    }
    if (header && hot)
        printf("hot at %s\n", req->to_ms ? tierctl_time(t, req->to_ms, to, sizeof(to)) : "now");
    else if (header)
        printf("window [%s, %s)\n", tierctl_time(t, req->from_ms, f, sizeof(f)),
               tierctl_time(t, req->to_ms, to, sizeof(to)));
    if (rep->n_rows == 0) {
        if (header)
            tierctl_none();
        return;
    }
    tierctl_top_rows_print(rep->rows, rep->n_rows, first, hot, header);
}

#define TOP_DEFAULT 100 /* TopContentsRequest.limit 0 */
#define TOP_MAX 1000
#define TOP_USAGE                                                                                  \
    "top --from T --to T [-n N] [--service S] [--decrease] [--cursor C] [--all]\n"                 \
    "       tierctl top --order hot [--at T] [-n N] [--service S] [--cursor C] [--all]"

/* One of --from/--to/--at into *ms, or a message naming the argument. */
static bool top_time(tierctl *t, const char *flag, const char *v, int64_t *ms)
{
    if (v == NULL) {
        tierctl_usage(t, "top: %s needs a time: " TIERCTL_TIME_FORMS, flag);
        return false;
    }
    if (!parse_time(v, ms)) {
        tierctl_usage(t, "top: %s \"%s\" is not a time: " TIERCTL_TIME_FORMS, flag, v);
        return false;
    }
    /* tierd counts whole minutes up to minute INT32_MAX (year 6053). */
    if (*ms < 0 || *ms % 60000 != 0 || *ms / 60000 >= INT32_MAX) {
        tierctl_usage(t, "top: %s \"%s\" must be a whole minute between 1970 and 6053", flag, v);
        return false;
    }
    return true;
}

static bool top_order(tierctl *t, const char *v, Tier__TopContentsRequest *req)
{
    if (v != NULL && strcmp(v, "increase") == 0)
        req->order = TIER__ORDER__INCREASE;
    else if (v != NULL && strcmp(v, "decrease") == 0)
        req->order = TIER__ORDER__DECREASE;
    else if (v != NULL && strcmp(v, "hot") == 0)
        req->order = TIER__ORDER__HOT;
    else {
        tierctl_usage(t, "top: --order: increase, decrease or hot");
        return false;
    }
    return true;
}

/* Checks the combination of options: a window for change orders, none
 * for hot. */
static bool top_check(tierctl *t, Tier__TopContentsRequest *req, bool from, bool to, bool at)
{
    char f[48], o[48];

    if (req->order == TIER__ORDER__HOT) {
        if (from || to) {
            tierctl_usage(t, "top: --order hot takes no window (--at T: evaluate at T)");
            return false;
        }
        return true;
    }
    if (!from || !to || at) {
        tierctl_usage(t, "usage: tierctl " TOP_USAGE);
        return false;
    }
    if (req->from_ms >= req->to_ms) {
        tierctl_usage(t, "top: --from (%s) must be before --to (%s)",
                      tierctl_time(t, req->from_ms, f, sizeof(f)),
                      tierctl_time(t, req->to_ms, o, sizeof(o)));
        return false;
    }
    return true;
}

/* Parses top's options into req; false on a usage error (t->err set). */
static bool top_args(tierctl *t, int argc, char **argv, Tier__TopContentsRequest *req, bool *all)
{
    bool from = false, to = false, at = false;
    int64_t v;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--from") == 0) {
            if (!(from = top_time(t, a, next, &req->from_ms)))
                return false;
            i++;
        } else if (strcmp(a, "--to") == 0) {
            if (!(to = top_time(t, a, next, &req->to_ms)))
                return false;
            i++;
        } else if (strcmp(a, "--at") == 0) {
            if (!(at = top_time(t, a, next, &req->to_ms)))
                return false;
            i++;
        } else if (strcmp(a, "-n") == 0) {
            if (next == NULL || !tierctl_int(next, &v) || v < 1 || v > TOP_MAX) {
                tierctl_usage(t, "top: -n: rows, 1..%d (default %d)", TOP_MAX, TOP_DEFAULT);
                return false;
            }
            req->limit = (uint32_t)v, i++;
        } else if (strcmp(a, "--service") == 0 && next) {
            req->service = argv[++i];
        } else if (strcmp(a, "--decrease") == 0) {
            req->order = TIER__ORDER__DECREASE;
        } else if (strcmp(a, "--order") == 0) {
            if (!top_order(t, next, req))
                return false;
            i++;
        } else if (strcmp(a, "--cursor") == 0 && next) {
            req->cursor = argv[++i];
        } else if (strcmp(a, "--all") == 0) {
            *all = true;
        } else {
            tierctl_usage(t, "top: unexpected argument \"%s\" (tierctl help top)", a);
            return false;
        }
    }
    return top_check(t, req, from, to, at);
}

/* Fetches and prints pages: one, or with --all every page until
 * next_cursor is empty.  A HOT walk keeps the first page's minute (the
 * cursor carries it). */
static int cmd_top(tierctl *t, int argc, char **argv)
{
    Tier__TopContentsRequest req = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *rep;
    bool all = false;
    size_t rank = 1;
    char *cursor = NULL;
    int rv = TIER_OK;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--watch") == 0)
            return tierctl_top_watch(t, argc, argv);
    if (!top_args(t, argc, argv, &req, &all))
        return TIERCTL_USAGE;
    if (req.cursor[0] != '\0')
        rank = 0; /* unknown */
    for (bool first = true;; first = false) {
        if ((rv = tier_top_contents(t->client, &req, &rep, &t->err)) != TIER_OK)
            break;
        print_top(t, &req, rep, rank, first || t->json);
        rank = rank ? rank + rep->n_rows : 0;
        free(cursor);
        cursor = rep->next_cursor[0] ? strdup(rep->next_cursor) : NULL;
        tier_free(rep);
        if (!all || cursor == NULL)
            break;
        req.cursor = cursor;
    }
    if (rv == TIER_OK && !all && cursor != NULL && !t->json)
        printf("(more: --cursor %s)\n", cursor);
    free(cursor);
    return rv;
}

const tierctl_cmd tierctl_ranking_cmds[] = {
    {"comment", "comment post SERVICE CID AUTHOR BODY", "post a comment (durable when it returns)",
     cmd_comment, NULL},
    {"comment", "comment edit ID BODY | delete ID | restore ID",
     "edit, soft-delete or restore a comment", cmd_comment, NULL},
    {"comment", "comment delete|restore ID ID...|- [--at T] | delete --author A [--service S]",
     "delete or restore many comments (batches of 10,000), or all of an author's", cmd_comment,
     "  IDs on the command line, or - to read them from stdin (one per line); --at T:\n"
     "  a backfilled time (default now).  One line per comment: ok or why not; the\n"
     "  exit status is the first refusal's (0 when all were done).  --author A: every\n"
     "  live comment of A (of service S), in calls of 10,000 until none is left."},
    {"comments", "comments CID [-n N] [--cursor C] [--service S]",
     "newest live comments of a content, paged", cmd_comments,
     "  Newest first by creation time (backfilled comments at their time), id among\n"
     "  equal times.\n"
     "  -n N: comments per page, 1..1000 (default 20); --cursor C: the next page, as\n"
     "  printed after the last one (\"(more: --cursor C)\", or next_cursor in JSON)."},
    {"top", TOP_USAGE,
     "contents by comment-count change over [from, to) (T: \"2026-11-23 10:03\", -60m, now), "
     "or by hot score",
     cmd_top,
     "  T: " TIERCTL_TIME_FORMS ".\n"
     "  Windows are whole minutes; \"now\" is the end of the current minute, so\n"
     "  --from -60m --to now is the last 60 minutes, the current one included.\n"
     "  -n N: rows per page, 1..1000 (default 100).  --decrease (--order decrease):\n"
     "  most negative change first.  The window must lie within tierd's retention.\n"
     "  --order hot: by sum of change * 2^(-age / half-life) (tierd's\n"
     "  --hot-half-life-s), at the current minute or --at T; no window.\n"
     "  Ties: cid, then service.  --cursor C: the page after the one that printed\n"
     "  \"(more: --cursor C)\" (next_cursor in JSON); --all: every page.\n"
     "top --watch [--window-min N] [--count K] [-n N] [--service S] [--decrease | --order O]:\n"
     "  follows the top of the last N minutes (default 60, the current one\n"
     "  included; WatchTop): prints it each time it changes and at least once a\n"
     "  minute, until Ctrl-C or K lists.  Under --json one document per line."},
    {NULL, NULL, NULL, NULL, NULL},
};
