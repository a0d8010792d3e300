/*
 * tierctl_fsck.c -- `tierctl fsck [--repair] [--last] [--max N]`: runs a
 * Scrub (tier.proto) and prints its findings grouped by kind, then one
 * summary line.  --last shows tierd's last background scrub instead.
 *
 * Exit status: 0 when nothing is wrong (or everything found was repaired),
 * 1 when disagreements remain, 64 + code when the call itself failed.  So
 * `tierctl fsck || alert` works in a cron job, and `tierctl fsck --repair`
 * exiting 1 means an operator has something to decide.
 */
#include "tierctl.h"

#include <stdlib.h>
#include <string.h>

static json_t *finding_json(const Tier__Finding *f)
{
    json_t *in = json_array();
    for (size_t i = 0; i < f->n_found_in; i++)
        json_array_append_new(in, tierctl_jstr(f->found_in[i]));
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:o}", "kind", tierctl_jstr(f->kind),
                     "cid", tierctl_jint(f->cid), "filename", tierctl_jstr(f->filename), "level",
                     tierctl_jstr(f->level), "found_in", in, "detail", tierctl_jstr(f->detail),
                     "repaired", f->repaired, "action", tierctl_jstr(f->action));
}

static void print_json(const Tier__ScrubReply *r)
{
    json_t *counts = json_object(), *findings = json_array();
    for (size_t i = 0; i < r->n_counts; i++)
        json_object_set_new(counts, r->counts[i]->kind,
                            json_pack("{s:I, s:I}", "found", (json_int_t)r->counts[i]->found,
                                      "repaired", (json_int_t)r->counts[i]->repaired));
    for (size_t i = 0; i < r->n_findings; i++)
        json_array_append_new(findings, finding_json(r->findings[i]));
    tierctl_emit(stdout,
                 json_pack("{s:o, s:o, s:b, s:b, s:I, s:I, s:I, s:o, s:o}", "started",
                           tierctl_jtime(r->started_ms), "finished", tierctl_jtime(r->finished_ms),
                           "repair", r->repair, "truncated", r->truncated, "contents",
                           (json_int_t)r->contents, "entries", (json_int_t)r->entries, "jobs",
                           (json_int_t)r->jobs, "counts", counts, "findings", findings));
}

static void finding_text(const Tier__Finding *f)
{
    printf("  ");
    if (f->cid != 0)
        printf("cid %lld ", (long long)f->cid);
    printf("%s", f->filename);
    if (f->level[0])
        printf(" (level %s)", f->level);
    if (f->n_found_in > 0) {
        printf(" in ");
        for (size_t i = 0; i < f->n_found_in; i++)
            printf("%s%s", i ? "," : "", f->found_in[i]);
    }
    printf(": %s", f->detail);
    if (f->action[0])
        printf(" -> %s%s", f->repaired ? "REPAIRED: " : "", f->action);
    printf("\n");
}

static void print_text(const Tier__ScrubReply *r)
{
    uint64_t found = 0, repaired = 0;

    for (size_t k = 0; k < r->n_counts; k++) {
        const Tier__ScrubCount *c = r->counts[k];
        found += c->found;
        repaired += c->repaired;
        if (c->found == 0)
            continue;
        printf("%s (%llu%s", c->kind, (unsigned long long)c->found, c->repaired ? ", " : "");
        if (c->repaired)
            printf("%llu repaired", (unsigned long long)c->repaired);
        printf("):\n");
        for (size_t i = 0; i < r->n_findings; i++)
            if (strcmp(r->findings[i]->kind, c->kind) == 0)
                finding_text(r->findings[i]);
    }
    printf("fsck: %llu disagreement(s), %llu repaired%s; %llu contents, %llu directory entries, "
           "%llu jobs checked in %lld ms%s\n",
           (unsigned long long)found, (unsigned long long)repaired, r->repair ? "" : " (read only)",
           (unsigned long long)r->contents, (unsigned long long)r->entries,
           (unsigned long long)r->jobs, (long long)(r->finished_ms - r->started_ms),
           r->truncated ? "; list truncated, counts complete" : "");
}

static int cmd_fsck(tierctl *t, int argc, char **argv)
{
    Tier__ScrubRequest req = TIER__SCRUB_REQUEST__INIT;
    Tier__ScrubReply *rep;
    uint64_t left = 0;
    int64_t max;
    int rv;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repair") == 0)
            req.repair = true;
        else if (strcmp(argv[i], "--last") == 0)
            req.last = true;
        else if (strcmp(argv[i], "--json") == 0)
            t->json = true;
        else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc && tierctl_int(argv[i + 1], &max) &&
                 max > 0 && max <= 100000)
            req.max_findings = (uint32_t)max, i++;
        else
            return tierctl_usage(t, "usage: tierctl fsck [--repair | --last] [--json] [--max N]");
    }
    if (req.repair && req.last)
        return tierctl_usage(t, "fsck: --repair and --last exclude each other");
    if ((rv = tier_scrub(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    if (t->json)
        print_json(rep);
    else
        print_text(rep);
    for (size_t k = 0; k < rep->n_counts; k++)
        left += rep->counts[k]->found - rep->counts[k]->repaired;
    tier_free(rep);
    return left > 0 ? TIERCTL_FOUND : TIER_OK;
}

const tierctl_cmd tierctl_fsck_cmds[] = {
    {"fsck", "fsck [--repair | --last] [--json] [--max N]",
     "compare MySQL, Redis and the level directories (exit 1: disagreements)", cmd_fsck, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
