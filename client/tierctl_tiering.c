/*
 * tierctl_tiering.c -- tierctl's tiering commands: add, views, content,
 * history, jobs, levels, levels set, complete.
 *
 * `views` prints the seed's post_sentence record:
 *   {"cid": "7", "count": "1964", "target": "silver", "db_level": "bronze",
 *    "filename": "g.mp4", "worker_id": null, "status": "update"}
 */
#include "tierctl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --flag VALUE among args; removes nothing, returns the value or NULL. */
static const char *opt(int argc, char **argv, const char *flag)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return argv[i + 1];
    return NULL;
}

static void print_job_json(const Tier__Job *j)
{
    char a[32], b[32];
    printf("{\"cid\": %lld, \"count\": %lld, \"target\": ", (long long)j->cid, (long long)j->count);
    tierctl_json_str(stdout, j->target);
    printf(", \"db_level\": ");
    tierctl_json_str(stdout, j->db_level);
    printf(", \"filename\": ");
    tierctl_json_str(stdout, j->filename);
    printf(", \"worker_id\": ");
    if (j->worker_id[0])
        tierctl_json_str(stdout, j->worker_id);
    else
        printf("null");
    printf(", \"status\": ");
    tierctl_json_str(stdout, j->status);
    printf(", \"fence\": %llu, \"lease_expires\": \"%s\", \"attempts\": %u, \"reason\": ",
           (unsigned long long)j->fence, tierctl_time(j->lease_expires_ms, a, sizeof(a)),
           j->attempts);
    tierctl_json_str(stdout, j->reason);
    printf(", \"src_dir\": ");
    tierctl_json_str(stdout, j->src_dir);
    printf(", \"dst_dir\": ");
    tierctl_json_str(stdout, j->dst_dir);
    printf(", \"also_dirs\": [");
    for (size_t i = 0; i < j->n_also_dirs; i++) {
        printf("%s", i ? ", " : "");
        tierctl_json_str(stdout, j->also_dirs[i]);
    }
    printf("], \"pending\": ");
    if (j->pending[0])
        printf("%s", j->pending);
    else
        printf("null");
    printf(", \"created\": \"%s\"", tierctl_time(j->created_ms, a, sizeof(a)));
    printf(", \"updated\": \"%s\"}", tierctl_time(j->updated_ms, b, sizeof(b)));
}

/* "12s", "5m", "3h", "2d": how long ago ms was. */
static const char *age(int64_t ms, char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t s = ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - ms) / 1000;
    if (ms <= 0 || s < 0)
        snprintf(buf, len, "-");
    else if (s < 120)
        snprintf(buf, len, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(buf, len, "%lldm", (long long)s / 60);
    else if (s < 172800)
        snprintf(buf, len, "%lldh", (long long)s / 3600);
    else
        snprintf(buf, len, "%lldd", (long long)s / 86400);
    return buf;
}

static void print_job_text(const Tier__Job *j)
{
    char a[16];
    printf("%-8lld %-8s %-10s -> %-10s %-24s fence %-4llu tries %-3u age %-4s worker %s%s%s\n",
           (long long)j->cid, j->status, j->db_level, j->target, j->filename,
           (unsigned long long)j->fence, j->attempts, age(j->updated_ms, a, sizeof(a)),
           j->worker_id[0] ? j->worker_id : "-", j->reason[0] ? "  reason: " : "", j->reason);
}

/* tierctl job show|retry|cancel CID */
static int cmd_job(tierctl *t, int argc, char **argv)
{
    Tier__JobControlRequest req = TIER__JOB_CONTROL_REQUEST__INIT;
    Tier__JobControlReply *rep = NULL;
    const char *verb = argc == 3 ? argv[1] : "";
    int rv;

    if (argc != 3 || !tierctl_int(argv[2], &req.cid) ||
        (strcmp(verb, "show") != 0 && strcmp(verb, "retry") != 0 && strcmp(verb, "cancel") != 0))
        return tierctl_usage(t, "usage: tierctl job show|retry|cancel CID");
    if (strcmp(verb, "show") == 0) {
        Tier__GetJobRequest g = TIER__GET_JOB_REQUEST__INIT;
        Tier__GetJobReply *gr;
        g.cid = req.cid;
        if ((rv = tier_get_job(t->client, &g, &gr, &t->err)) != TIER_OK)
            return rv;
        if (t->json) {
            print_job_json(gr->job);
            printf("\n");
        } else {
            print_job_text(gr->job);
            for (size_t i = 0; i < gr->job->n_also_dirs; i++)
                printf("  may also be in %s\n", gr->job->also_dirs[i]);
            if (gr->job->pending[0])
                printf("  pending report: count %s\n", gr->job->pending);
        }
        tier_free(gr);
        return TIER_OK;
    }
    rv = strcmp(verb, "retry") == 0 ? tier_retry_job(t->client, &req, &rep, &t->err)
                                    : tier_cancel_job(t->client, &req, &rep, &t->err);
    if (rv != TIER_OK)
        return rv;
    if (t->json) {
        printf("{\"cid\": %lld, \"outcome\": ", (long long)req.cid);
        tierctl_json_str(stdout, rep->outcome);
        printf(", \"job\": ");
        if (rep->job)
            print_job_json(rep->job);
        else
            printf("null");
        printf("}\n");
    } else {
        printf("%lld: %s\n", (long long)req.cid, rep->outcome);
        if (rep->job)
            print_job_text(rep->job);
    }
    tier_free(rep);
    return TIER_OK;
}

static void print_content(tierctl *t, const Tier__Content *c)
{
    char g[32], u[32];
    if (t->json) {
        printf("{\"cid\": %lld, \"level\": ", (long long)c->cid);
        tierctl_json_str(stdout, c->level);
        printf(", \"filename\": ");
        tierctl_json_str(stdout, c->filename);
        printf(", \"generate_time\": \"%s\", \"update_time\": \"%s\"",
               tierctl_time(c->generate_time_ms, g, sizeof(g)),
               tierctl_time(c->update_time_ms, u, sizeof(u)));
    } else {
        printf("cid %lld  level %s  filename %s\n  generated %s  updated %s\n", (long long)c->cid,
               c->level, c->filename, tierctl_time(c->generate_time_ms, g, sizeof(g)),
               tierctl_time(c->update_time_ms, u, sizeof(u)));
    }
}

static int cmd_add(tierctl *t, int argc, char **argv)
{
    Tier__AddContentRequest req = TIER__ADD_CONTENT_REQUEST__INIT;
    Tier__AddContentReply *rep;
    const char *cid = opt(argc, argv, "--cid");
    int rv;

    if (argc != 2 && !(argc == 4 && cid != NULL))
        return tierctl_usage(t, "usage: tierctl add FILENAME [--cid N]");
    req.filename = strcmp(argv[1], "--cid") == 0 ? argv[3] : argv[1];
    if (cid != NULL && (!tierctl_int(cid, &req.cid) || req.cid <= 0))
        return tierctl_usage(t, "--cid: a positive integer");
    if ((rv = tier_add_content(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    print_content(t, rep->content);
    if (t->json)
        printf("}\n");
    tier_free(rep);
    return TIER_OK;
}

static int cmd_views(tierctl *t, int argc, char **argv)
{
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ViewReport vr = TIER__VIEW_REPORT__INIT, *list[1] = {&vr};
    Tier__ReportViewsReply *rep;
    int rv;

    if (argc != 3 || !tierctl_int(argv[1], &vr.cid) || !tierctl_int(argv[2], &vr.count))
        return tierctl_usage(t, "usage: tierctl views CID COUNT");
    req.reports = list;
    req.n_reports = 1;
    if ((rv = tier_report_views(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    const Tier__ViewResult *r = rep->results[0];
    if (r->code != 0) {
        t->err.code = r->code;
        snprintf(t->err.message, sizeof(t->err.message), "%s", r->message);
        rv = r->code;
    } else {
        /* The seed's record, strings as the seed printed them. */
        printf("{\"cid\": \"%lld\", \"count\": \"%lld\", \"target\": ", (long long)r->cid,
               (long long)r->count);
        tierctl_json_str(stdout, r->target);
        printf(", \"db_level\": ");
        tierctl_json_str(stdout, r->db_level);
        printf(", \"filename\": ");
        tierctl_json_str(stdout, r->filename);
        printf(", \"worker_id\": ");
        if (r->worker_id[0])
            tierctl_json_str(stdout, r->worker_id);
        else
            printf("null");
        printf(", \"status\": ");
        tierctl_json_str(stdout, r->status);
        printf("}\n");
    }
    tier_free(rep);
    return rv;
}

static int cmd_content(tierctl *t, int argc, char **argv)
{
    Tier__GetContentRequest req = TIER__GET_CONTENT_REQUEST__INIT;
    Tier__GetContentReply *rep;
    int rv;

    if (argc != 2 || !tierctl_int(argv[1], &req.cid))
        return tierctl_usage(t, "usage: tierctl content CID");
    if ((rv = tier_get_content(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    print_content(t, rep->content);
    if (t->json) {
        printf(", \"job\": ");
        if (rep->job)
            print_job_json(rep->job);
        else
            printf("null");
        printf("}\n");
    } else if (rep->job) {
        printf("  job: ");
        print_job_text(rep->job);
    }
    tier_free(rep);
    return TIER_OK;
}

static int cmd_history(tierctl *t, int argc, char **argv)
{
    Tier__GetHistoryRequest req = TIER__GET_HISTORY_REQUEST__INIT;
    Tier__GetHistoryReply *rep;
    char a[32], b[32];
    int rv;

    if (argc != 2 || !tierctl_int(argv[1], &req.cid))
        return tierctl_usage(t, "usage: tierctl history CID");
    if ((rv = tier_get_history(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    if (t->json)
        printf("[");
    for (size_t i = 0; i < rep->n_entries; i++) {
        const Tier__HistoryEntry *e = rep->entries[i];
        tierctl_time(e->old_update_time_ms, a, sizeof(a));
        tierctl_time(e->new_update_time_ms, b, sizeof(b));
        if (t->json) {
            printf("%s{\"cid\": %lld, \"old_updated_date\": \"%s\", \"old_content_level\": ",
                   i ? ", " : "", (long long)e->cid, a);
            tierctl_json_str(stdout, e->old_level);
            printf(", \"new_updated_date\": \"%s\", \"new_content_level\": ", b);
            tierctl_json_str(stdout, e->new_level);
            printf("}");
        } else {
            printf("%lld  %s %-10s -> %s %s\n", (long long)e->cid, a, e->old_level, b,
                   e->new_level);
        }
    }
    if (t->json)
        printf("]\n");
    tier_free(rep);
    return TIER_OK;
}

static int cmd_jobs(tierctl *t, int argc, char **argv)
{
    Tier__ListJobsRequest req = TIER__LIST_JOBS_REQUEST__INIT;
    Tier__ListJobsReply *rep;
    const char *st = opt(argc, argv, "--status");
    int rv;

    if (argc != 1 && !(argc == 3 && st != NULL))
        return tierctl_usage(t,
                             "usage: tierctl jobs [--status update|claimed|done|failed|finished]");
    req.status = (char *)(st ? st : "");
    if ((rv = tier_list_jobs(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    if (t->json)
        printf("[");
    for (size_t i = 0; i < rep->n_jobs; i++) {
        if (t->json) {
            printf("%s", i ? ", " : "");
            print_job_json(rep->jobs[i]);
        } else {
            print_job_text(rep->jobs[i]);
        }
    }
    if (t->json)
        printf("]\n");
    tier_free(rep);
    return TIER_OK;
}

static void print_levels(tierctl *t, const Tier__ListLevelsReply *rep)
{
    if (t->json)
        printf("[");
    for (size_t i = 0; i < rep->n_levels; i++) {
        const Tier__Level *l = rep->levels[i];
        if (t->json) {
            printf("%s{\"name\": ", i ? ", " : "");
            tierctl_json_str(stdout, l->name);
            printf(", \"min_counts\": %lld, \"max_counts\": %lld, \"path\": ",
                   (long long)l->min_counts, (long long)l->max_counts);
            tierctl_json_str(stdout, l->path);
            printf("}");
        } else {
            printf("%-10s %12lld %20lld  %s\n", l->name, (long long)l->min_counts,
                   (long long)l->max_counts, l->path);
        }
    }
    if (t->json)
        printf("]\n");
}

/* NAME:MIN:MAX:PATH (the path may hold ':'). */
static bool parse_level(char *s, Tier__Level *l)
{
    char *a = strchr(s, ':'), *b = a ? strchr(a + 1, ':') : NULL,
         *c = b ? strchr(b + 1, ':') : NULL;
    if (c == NULL)
        return false;
    *a = *b = *c = '\0';
    l->name = s;
    l->path = c + 1;
    return tierctl_int(a + 1, &l->min_counts) && tierctl_int(b + 1, &l->max_counts);
}

static int cmd_levels(tierctl *t, int argc, char **argv)
{
    Tier__ListLevelsReply *rep;
    int rv;

    if (argc == 1) {
        Tier__ListLevelsRequest req = TIER__LIST_LEVELS_REQUEST__INIT;
        rv = tier_list_levels(t->client, &req, &rep, &t->err);
    } else if (argc >= 3 && strcmp(argv[1], "set") == 0) {
        Tier__SetLevelsRequest req = TIER__SET_LEVELS_REQUEST__INIT;
        size_t n = (size_t)argc - 2;
        Tier__Level *lv = calloc(n, sizeof(*lv));
        Tier__Level **lp = calloc(n, sizeof(*lp));
        for (size_t i = 0; lv && lp && i < n; i++) {
            tier__level__init(&lv[i]);
            lp[i] = &lv[i];
            if (!parse_level(argv[2 + i], &lv[i])) {
                free(lv);
                free(lp);
                return tierctl_usage(t, "level: NAME:MIN:MAX:PATH");
            }
        }
        req.levels = lp;
        req.n_levels = n;
        rv = tier_set_levels(t->client, &req, &rep, &t->err);
        free(lv);
        free(lp);
    } else {
        return tierctl_usage(t, "usage: tierctl levels [set NAME:MIN:MAX:PATH ...]");
    }
    if (rv != TIER_OK)
        return rv;
    print_levels(t, rep);
    tier_free(rep);
    return TIER_OK;
}

static int cmd_complete(tierctl *t, int argc, char **argv)
{
    Tier__CompleteJobRequest req = TIER__COMPLETE_JOB_REQUEST__INIT;
    Tier__JobRef ref = TIER__JOB_REF__INIT, *refs[1] = {&ref};
    Tier__CompleteJobReply *rep;
    const char *w = opt(argc, argv, "--worker");
    int64_t fence;
    int rv;

    if (argc != 5 || w == NULL || !tierctl_int(argv[1], &ref.cid) ||
        !tierctl_int(argv[2], &fence) || fence < 0)
        return tierctl_usage(t, "usage: tierctl complete CID FENCE --worker ID");
    ref.fence = (uint64_t)fence;
    req.worker_id = (char *)w;
    req.jobs = refs;
    req.n_jobs = 1;
    if ((rv = tier_complete_job(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    const Tier__ItemStatus *s = rep->results[0];
    rv = s->code;
    if (rv != TIER_OK) {
        t->err.code = rv;
        snprintf(t->err.message, sizeof(t->err.message), "%s", s->message);
    } else if (t->json) {
        printf("{\"cid\": %lld, \"status\": \"committed\"}\n", (long long)s->cid);
    } else {
        printf("%lld\n", (long long)s->cid); /* the seed printed the cid */
    }
    tier_free(rep);
    return rv;
}

const tierctl_cmd tierctl_tiering_cmds[] = {
    {"add", "add FILENAME [--cid N]", "register a file of the default level", cmd_add},
    {"views", "views CID COUNT", "report a view count; prints the job record", cmd_views},
    {"content", "content CID", "a content, its level and its job", cmd_content},
    {"history", "history CID", "level changes of a content, newest first", cmd_history},
    {"jobs", "jobs [--status S]", "move jobs (update, claimed, done, failed, finished)", cmd_jobs},
    {"job", "job show|retry|cancel CID", "one job; retry a failed one; leave a content where it is",
     cmd_job},
    {"levels", "levels [set NAME:MIN:MAX:PATH ...]", "show or replace the level table", cmd_levels},
    {"complete", "complete CID FENCE --worker ID", "report a move done (as a worker would)",
     cmd_complete},
    {NULL, NULL, NULL, NULL},
};
