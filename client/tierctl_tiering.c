/*
 * tierctl_tiering.c -- tierctl's tiering commands: add, views, content,
 * history, jobs, job, levels, levels set (--dry-run: its plan), workers,
 * complete, wait, watch.
 *
 * `views` prints the seed's post_sentence record, numbers as numbers:
 *   {"cid": 7, "count": 1964, "target": "silver", "db_level": "bronze",
 *    "filename": "g.mp4", "worker_id": null, "status": "update"}
 */
#include "tierctl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_time.h"

/* --flag VALUE among args; removes nothing, returns the value or NULL. */
static const char *opt(int argc, char **argv, const char *flag)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return argv[i + 1];
    return NULL;
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
        if ((rv = tier_get_job(tierctl_for(t, g.cid), &g, &gr, &t->err)) != TIER_OK)
            return rv;
        if (t->json) {
            tierctl_emit(stdout, tierctl_job_json(gr->job));
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
    rv = strcmp(verb, "retry") == 0 ? tier_retry_job(tierctl_for(t, req.cid), &req, &rep, &t->err)
                                    : tier_cancel_job(tierctl_for(t, req.cid), &req, &rep, &t->err);
    if (rv != TIER_OK)
        return rv;
    if (t->json) {
        tierctl_emit(stdout, json_pack("{s:o, s:o, s:o}", "cid", tierctl_jint(req.cid), "outcome",
                                       tierctl_jstr(rep->outcome), "job",
                                       rep->job ? tierctl_job_json(rep->job) : json_null()));
    } else {
        printf("%lld: %s\n", (long long)req.cid, rep->outcome);
        if (rep->job)
            print_job_text(rep->job);
    }
    tier_free(rep);
    return TIER_OK;
}

/* tierctl move CID LEVEL: an operator's forced move (MoveContent). */
static int cmd_move(tierctl *t, int argc, char **argv)
{
    Tier__MoveContentRequest req = TIER__MOVE_CONTENT_REQUEST__INIT;
    Tier__MoveContentReply *rep = NULL;
    int rv;

    if (argc != 3 || !tierctl_int(argv[1], &req.cid))
        return tierctl_usage(t, "usage: tierctl move CID LEVEL");
    req.level = argv[2];
    if ((rv = tier_move_content(tierctl_for(t, req.cid), &req, &rep, &t->err)) != TIER_OK)
        return rv;
    if (t->json)
        tierctl_emit(stdout, rep->job ? tierctl_job_json(rep->job) : json_null());
    else if (rep->job)
        print_job_text(rep->job);
    tier_free(rep);
    return TIER_OK;
}

static void print_content(tierctl *t, const Tier__Content *c)
{
    char g[48], u[48], s[32];
    if (c->size_bytes < 0)
        snprintf(s, sizeof(s), "unknown");
    else
        snprintf(s, sizeof(s), "%lld bytes", (long long)c->size_bytes);
    printf("cid %lld  level %s  filename %s\n  generated %s  updated %s  size %s\n",
           (long long)c->cid, c->level, c->filename,
           tierctl_time(t, c->generate_time_ms, g, sizeof(g)),
           tierctl_time(t, c->update_time_ms, u, sizeof(u)), s);
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
    if ((rv = tier_add_content(req.cid != 0 ? tierctl_for(t, req.cid) : t->client, &req, &rep,
                               &t->err)) != TIER_OK)
        return rv;
    if (t->json)
        tierctl_emit(stdout, tierctl_content_json(rep->content));
    else
        print_content(t, rep->content);
    tier_free(rep);
    return TIER_OK;
}

/* views' amount: COUNT (absolute, the seed's form), +N or --add N (views
 * since the last report).  Checked for '+' before tierctl_int, which would
 * take "+5" as the absolute count 5. */
static bool views_amount(int argc, char **argv, Tier__ViewReport *vr)
{
    if (argc == 3 && argv[2][0] == '+')
        return argv[2][1] >= '0' && argv[2][1] <= '9' && tierctl_int(argv[2] + 1, &vr->views) &&
               vr->views > 0;
    if (argc == 4 && strcmp(argv[2], "--add") == 0)
        return tierctl_int(argv[3], &vr->views) && vr->views > 0;
    return argc == 3 && tierctl_int(argv[2], &vr->count);
}

static int cmd_views(tierctl *t, int argc, char **argv)
{
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ViewReport vr = TIER__VIEW_REPORT__INIT, *list[1] = {&vr};
    Tier__ReportViewsReply *rep;
    int rv;

    if (argc < 3 || !tierctl_int(argv[1], &vr.cid) || !views_amount(argc, argv, &vr))
        return tierctl_usage(t, "usage: tierctl views CID COUNT | views CID +N | views CID --add N "
                                "(N > 0)");
    req.reports = list;
    req.n_reports = 1;
    if ((rv = tier_report_views(tierctl_for(t, vr.cid), &req, &rep, &t->err)) != TIER_OK)
        return rv;
    const Tier__ViewResult *r = rep->results[0];
    if (r->code != 0) {
        t->err.code = r->code;
        snprintf(t->err.message, sizeof(t->err.message), "%s", r->message);
        rv = r->code;
    } else {
        /* The seed's record (JSON with or without --json). */
        tierctl_emit(stdout,
                     json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "cid", tierctl_jint(r->cid),
                               "count", tierctl_jint(r->count), "target", tierctl_jstr(r->target),
                               "db_level", tierctl_jstr(r->db_level), "filename",
                               tierctl_jstr(r->filename), "worker_id",
                               r->worker_id[0] ? tierctl_jstr(r->worker_id) : json_null(), "status",
                               tierctl_jstr(r->status)));
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
    if ((rv = tier_get_content(tierctl_for(t, req.cid), &req, &rep, &t->err)) != TIER_OK)
        return rv;
    if (t->json) {
        json_t *o = tierctl_content_json(rep->content);
        json_object_set_new(o, "job", rep->job ? tierctl_job_json(rep->job) : json_null());
        tierctl_emit(stdout, o);
    } else if (print_content(t, rep->content), rep->job) {
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
    char a[48], b[48];
    int rv;

    if (argc != 2 || !tierctl_int(argv[1], &req.cid))
        return tierctl_usage(t, "usage: tierctl history CID");
    if ((rv = tier_get_history(tierctl_for(t, req.cid), &req, &rep, &t->err)) != TIER_OK)
        return rv;
    json_t *arr = json_array();
    for (size_t i = 0; i < rep->n_entries; i++) {
        const Tier__HistoryEntry *e = rep->entries[i];
        if (t->json)
            json_array_append_new(
                arr, json_pack("{s:o, s:o, s:o, s:o, s:o}", "cid", tierctl_jint(e->cid),
                               "old_updated_date", tierctl_jtime(e->old_update_time_ms),
                               "old_content_level", tierctl_jstr(e->old_level), "new_updated_date",
                               tierctl_jtime(e->new_update_time_ms), "new_content_level",
                               tierctl_jstr(e->new_level)));
        else
            printf("%lld  %s %-10s -> %s %s\n", (long long)e->cid,
                   tierctl_time(t, e->old_update_time_ms, a, sizeof(a)), e->old_level,
                   tierctl_time(t, e->new_update_time_ms, b, sizeof(b)), e->new_level);
    }
    if (t->json)
        tierctl_emit(stdout, arr);
    else
        json_decref(arr);
    if (!t->json && rep->n_entries == 0)
        tierctl_none();
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
    json_t *arr = json_array();
    for (size_t i = 0; i < rep->n_jobs; i++) {
        if (t->json)
            json_array_append_new(arr, tierctl_job_json(rep->jobs[i]));
        else
            print_job_text(rep->jobs[i]);
    }
    if (t->json)
        tierctl_emit(stdout, arr);
    else
        json_decref(arr);
    if (!t->json && rep->n_jobs == 0)
        tierctl_none();
    if (!t->json && rep->planner != NULL) {
        const Tier__PlannerState *p = rep->planner;
        char at[48];
        printf("planner (round at %s): planned %lld, started %lld, backlog %lld (%lld bytes), "
               "throttled %lld, waiting for capacity %lld, in flight %lld\n",
               tierctl_time(t, p->at_ms, at, sizeof(at)), (long long)p->planned,
               (long long)p->started, (long long)p->backlog, (long long)p->backlog_bytes,
               (long long)p->throttled, (long long)p->waiting_capacity, (long long)p->inflight);
    }
    tier_free(rep);
    return TIER_OK;
}

static void print_levels(tierctl *t, const Tier__ListLevelsReply *rep)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < rep->n_levels; i++) {
        const Tier__Level *l = rep->levels[i];
        bool mig = l->migrating_from != NULL && l->migrating_from[0] != '\0';
        if (t->json) {
            json_t *o = json_pack("{s:o, s:o, s:o, s:o}", "name", tierctl_jstr(l->name),
                                  "min_counts", tierctl_jint(l->min_counts), "max_counts",
                                  tierctl_jint(l->max_counts), "path", tierctl_jstr(l->path));
            if (mig) {
                json_object_set_new(o, "migrating_from", tierctl_jstr(l->migrating_from));
                json_object_set_new(o, "migrating_remaining", tierctl_jint(l->migrating_remaining));
            }
            json_array_append_new(arr, o);
        } else if (mig) {
            printf("%-10s %12lld %20lld  %s  (migrating from %s, %lld left)\n", l->name,
                   (long long)l->min_counts, (long long)l->max_counts, l->path, l->migrating_from,
                   (long long)l->migrating_remaining);
        } else {
            printf("%-10s %12lld %20lld  %s\n", l->name, (long long)l->min_counts,
                   (long long)l->max_counts, l->path);
        }
    }
    if (t->json)
        tierctl_emit(stdout, arr);
    else
        json_decref(arr);
    if (!t->json && rep->n_levels == 0)
        tierctl_none();
}

/* levels set's arguments (argv[0] = "set"): the table, and --dry-run
 * anywhere among them. */
static int levels_set(tierctl *t, int argc, char **argv, Tier__ListLevelsReply **rep)
{
    Tier__SetLevelsRequest req = TIER__SET_LEVELS_REQUEST__INIT;
    Tier__Level *lv = calloc((size_t)argc, sizeof(*lv));
    Tier__Level **lp = calloc((size_t)argc, sizeof(*lp));
    int rv = TIER_OK;

    for (int i = 1; lv && lp && i < argc && rv == TIER_OK; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) {
            req.dry_run = true;
            continue;
        }
        tier__level__init(&lv[req.n_levels]);
        lp[req.n_levels] = &lv[req.n_levels];
        if (!tierctl_level(argv[i], &lv[req.n_levels++]))
            rv = tierctl_usage(t, "level: NAME:MIN:MAX:PATH");
    }
    if (lv == NULL || lp == NULL)
        rv = tierctl_fail(t, TIER_RESOURCE_EXHAUSTED, "out of memory");
    else if (rv == TIER_OK && req.n_levels == 0)
        rv = tierctl_usage(t, "usage: tierctl levels set NAME:MIN:MAX:PATH ... [--dry-run]");
    req.levels = lp;
    if (rv == TIER_OK)
        rv = tier_set_levels(t->client, &req, rep, &t->err);
    free(lv);
    free(lp);
    /* A tierd that ignored dry_run has applied the table: say so loudly. */
    if (rv == TIER_OK && req.dry_run && (*rep)->plan == NULL) {
        tier_free(*rep);
        return tierctl_fail(t, TIER_INTERNAL,
                            "tierd answered a dry run without a plan: it may not know dry_run "
                            "and have applied the table (tierctl levels shows it)");
    }
    return rv;
}

static int cmd_levels(tierctl *t, int argc, char **argv)
{
    Tier__ListLevelsReply *rep;
    int rv;

    if (argc == 1) {
        Tier__ListLevelsRequest req = TIER__LIST_LEVELS_REQUEST__INIT;
        rv = tier_list_levels(t->client, &req, &rep, &t->err);
    } else if (argc >= 3 && strcmp(argv[1], "set") == 0) {
        rv = levels_set(t, argc - 1, argv + 1, &rep);
    } else {
        return tierctl_usage(t, "usage: tierctl levels [set NAME:MIN:MAX:PATH ... [--dry-run]]");
    }
    if (rv != TIER_OK)
        return rv;
    if (rep->plan != NULL) {
        tierctl_print_plan(t, rep->plan);
        for (size_t i = 0; !t->json && i < rep->n_levels; i++)
            if (rep->levels[i]->migrating_from != NULL && rep->levels[i]->migrating_from[0])
                printf("level %s would migrate its files from %s to %s\n", rep->levels[i]->name,
                       rep->levels[i]->migrating_from, rep->levels[i]->path);
        if (!t->json)
            printf("dry run: the level table was not changed\n");
    } else {
        print_levels(t, rep);
    }
    tier_free(rep);
    return TIER_OK;
}

static json_t *worker_json(const Tier__WorkerInfo *w)
{
    json_t *o = json_object();
    json_object_set_new(o, "worker_id", tierctl_jstr(w->worker_id));
    json_object_set_new(o, "host", tierctl_jstr(w->host));
    json_object_set_new(o, "pid", tierctl_jint(w->pid));
    json_object_set_new(o, "alive", json_boolean(w->alive));
    json_object_set_new(o, "moves_in_flight", tierctl_jint(w->moves_in_flight));
    json_object_set_new(o, "moves_done", tierctl_jint((int64_t)w->moves_done));
    json_object_set_new(o, "moves_failed", tierctl_jint((int64_t)w->moves_failed));
    json_object_set_new(o, "bytes_moved", tierctl_jint((int64_t)w->bytes_moved));
    json_object_set_new(o, "version", tierctl_jstr(w->version));
    json_object_set_new(o, "caller", tierctl_jstr(w->caller));
    json_object_set_new(o, "started", tierctl_jtime(w->started_ms));
    json_object_set_new(o, "last_seen", tierctl_jtime(w->last_seen_ms));
    json_object_set_new(o, "last_seen_ms", tierctl_jint(w->last_seen_ms));
    return o;
}

/* The workers tierd heard from (heartbeats): alive first. */
static int cmd_workers(tierctl *t, int argc, char **argv)
{
    Tier__ListWorkersRequest req = TIER__LIST_WORKERS_REQUEST__INIT;
    Tier__ListWorkersReply *rep;
    char seen[64];
    int rv;
    (void)argv;

    if (argc != 1)
        return tierctl_usage(t, "usage: tierctl workers");
    if ((rv = tier_list_workers(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    if (t->json) {
        json_t *o = json_object(), *a = json_array();
        for (size_t i = 0; i < rep->n_workers; i++)
            json_array_append_new(a, worker_json(rep->workers[i]));
        json_object_set_new(o, "alive", tierctl_jint(rep->alive));
        json_object_set_new(o, "workers", a);
        tierctl_emit(stdout, o);
    } else if (rep->n_workers == 0) {
        tierctl_none();
    } else {
        printf("%-20s %-16s %8s %5s %8s %8s %7s %12s  %s\n", "ID", "HOST", "PID", "ALIVE",
               "IN-FLIGHT", "DONE", "FAILED", "BYTES", "LAST SEEN");
        for (size_t i = 0; i < rep->n_workers; i++) {
            const Tier__WorkerInfo *w = rep->workers[i];
            printf("%-20s %-16s %8lld %5s %8u %8llu %7llu %12llu  %s\n", w->worker_id, w->host,
                   (long long)w->pid, w->alive ? "yes" : "no", w->moves_in_flight,
                   (unsigned long long)w->moves_done, (unsigned long long)w->moves_failed,
                   (unsigned long long)w->bytes_moved,
                   tierctl_time(t, w->last_seen_ms, seen, sizeof(seen)));
        }
        printf("%u alive\n", rep->alive);
    }
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
    if ((rv = tier_complete_job(tierctl_for(t, ref.cid), &req, &rep, &t->err)) != TIER_OK)
        return rv;
    const Tier__ItemStatus *s = rep->results[0];
    rv = s->code;
    if (rv != TIER_OK) {
        t->err.code = rv;
        snprintf(t->err.message, sizeof(t->err.message), "%s", s->message);
    } else if (t->json) {
        tierctl_emit(stdout,
                     json_pack("{s:o, s:s}", "cid", tierctl_jint(s->cid), "status", "committed"));
    } else {
        printf("%lld\n", (long long)s->cid); /* the seed printed the cid */
    }
    tier_free(rep);
    return rv;
}

/* ------------------------------------------------------------ wait, watch */

#define POLL_MS 200 /* how often wait/watch ask; a move takes far longer */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A job's state worth reporting: changes when any of these does. */
static void job_state(const Tier__Job *j, char *buf, size_t len)
{
    if (j == NULL)
        snprintf(buf, len, "settled");
    else
        snprintf(buf, len, "%s %s->%s fence %llu worker %s", j->status, j->db_level, j->target,
                 (unsigned long long)j->fence, j->worker_id[0] ? j->worker_id : "-");
}

static void show_change(tierctl *t, const Tier__GetContentReply *r)
{
    char now[48];
    tierctl_time(t, tier_now_ms(), now, sizeof(now));
    if (t->json) {
        json_t *o = json_pack("{s:o, s:o, s:o}", "time", tierctl_jtime(tier_now_ms()), "level",
                              tierctl_jstr(r->content->level), "job",
                              r->job ? tierctl_job_json(r->job) : json_null());
        tierctl_emit(stdout, o);
    } else if (r->job) {
        printf("%s  ", now);
        print_job_text(r->job);
    } else {
        printf("%s  %lld settled on %s\n", now, (long long)r->content->cid, r->content->level);
    }
    fflush(stdout);
}

/* wait and watch: polls GetContent until the content has no active job
 * (OK), its job failed (FAILED_PRECONDITION with the reason), or max_ms
 * passed (DEADLINE_EXCEEDED; 0 = no limit). */
static int follow(tierctl *t, int64_t cid, int64_t max_ms, bool watch)
{
    Tier__GetContentRequest req = TIER__GET_CONTENT_REQUEST__INIT;
    int64_t start = tier_now_ms();
    char last[512] = "", cur[512];
    int rv;

    req.cid = cid;
    for (;;) {
        Tier__GetContentReply *rep;
        if ((rv = tier_get_content(tierctl_for(t, req.cid), &req, &rep, &t->err)) != TIER_OK)
            return rv;
        job_state(rep->job, cur, sizeof(cur));
        if (watch && strcmp(cur, last) != 0)
            show_change(t, rep);
        snprintf(last, sizeof(last), "%s", cur);
        if (rep->job == NULL) {
            if (!watch && t->json)
                tierctl_emit(stdout, tierctl_content_json(rep->content));
            else if (!watch)
                printf("%lld settled on %s\n", (long long)cid, rep->content->level);
            tier_free(rep);
            return TIER_OK;
        }
        if (strcmp(rep->job->status, "failed") == 0) {
            rv = tierctl_fail(t, TIER_FAILED_PRECONDITION,
                              "the move of %lld to %s failed: %s (tierctl job retry|cancel %lld)",
                              (long long)cid, rep->job->target,
                              rep->job->reason[0] ? rep->job->reason : "no reason given",
                              (long long)cid);
            tier_free(rep);
            return rv;
        }
        tier_free(rep);
        if (max_ms > 0 && tier_now_ms() - start >= max_ms)
            return tierctl_fail(t, TIER_DEADLINE_EXCEEDED, "%lld still has a job after %lld s (%s)",
                                (long long)cid, (long long)(max_ms / 1000), cur);
        sleep_ms(POLL_MS);
    }
}

static int cmd_follow(tierctl *t, int argc, char **argv)
{
    bool watch = strcmp(argv[0], "watch") == 0;
    const char *m = opt(argc, argv, "--max-wait");
    int64_t cid, secs = 0;

    if ((argc != 2 && !(argc == 4 && m != NULL)) || !tierctl_int(argv[1], &cid) || cid <= 0)
        return tierctl_usage(t, "usage: tierctl %s CID [--max-wait SECONDS]", argv[0]);
    if (m != NULL && (!tierctl_int(m, &secs) || secs <= 0 || secs > 86400 * 365))
        return tierctl_usage(t, "--max-wait: seconds, 1..31536000 (got \"%s\")", m);
    return follow(t, cid, secs * 1000, watch);
}

const tierctl_cmd tierctl_tiering_cmds[] = {
    {"add", "add FILENAME [--cid N]", "register a file of the default level", cmd_add, NULL},
    {"views", "views CID COUNT|+N", "report a view count (+N: N more views); prints the job record",
     cmd_views,
     "  COUNT is the content's whole view count (the seed's form); +N, or --add N, adds\n"
     "  N views since your last report to it (and to the policy's view window)."},
    {"content", "content CID", "a content, its level and its job", cmd_content, NULL},
    {"history", "history CID", "level changes of a content, newest first", cmd_history, NULL},
    {"jobs", "jobs [--status S]", "move jobs (update, claimed, done, failed, finished)", cmd_jobs,
     NULL},
    {"job", "job show|retry|cancel CID", "one job; retry a failed one; leave a content where it is",
     cmd_job, NULL},
    {"move", "move CID LEVEL", "move a content now, whatever the policy says (admin)", cmd_move,
     NULL},
    {"levels", "levels [set N:MIN:MAX:PATH ... [--dry-run]]", "show or replace the level table",
     cmd_levels,
     "  --dry-run: nothing changes; prints the plan -- which contents the new table\n"
     "  would move where under the current policy (as `tierctl plan --levels`)."},
    {"workers", "workers", "the workers tierd hears from: alive, moves in flight, done, failed",
     cmd_workers,
     "  From their heartbeats (every 2 s; a worker unheard of for 10 s is not alive,\n"
     "  one that stopped cleanly is not alive at once)."},
    {"complete", "complete CID FENCE --worker ID", "report a move done (as a worker would)",
     cmd_complete, NULL},
    {"wait", "wait CID [--max-wait S]", "until the content's move settles (exit 73: it failed)",
     cmd_follow,
     "  Polls every 0.2 s.  Exit 0 once the content has no active job (prints where it\n"
     "  is), 64+9=73 when its job failed (the reason is printed), 64+4=68 after --max-wait\n"
     "  seconds (default: no limit).  Not --timeout: that is the per-call timeout."},
    {"watch", "watch CID [--max-wait S]", "print each state change of a content's move", cmd_follow,
     "  Like wait, printing a line at every change of the job's status, target, fence\n"
     "  or worker (with --json one JSON document per line), until it settles or Ctrl-C."},
    {NULL, NULL, NULL, NULL, NULL},
};
