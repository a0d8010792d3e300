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

static void finding_json(const Tier__Finding *f)
{
    printf("{\"kind\": \"%s\", \"cid\": %lld, \"filename\": ", f->kind, (long long)f->cid);
    tierctl_json_str(stdout, f->filename);
    printf(", \"level\": ");
    tierctl_json_str(stdout, f->level);
    printf(", \"found_in\": [");
    for (size_t i = 0; i < f->n_found_in; i++) {
        printf("%s", i ? ", " : "");
        tierctl_json_str(stdout, f->found_in[i]);
    }
    printf("], \"detail\": ");
    tierctl_json_str(stdout, f->detail);
    printf(", \"repaired\": %s, \"action\": ", f->repaired ? "true" : "false");
    tierctl_json_str(stdout, f->action);
    printf("}");
}

static void print_json(const Tier__ScrubReply *r)
{
    char a[32], b[32];
    printf("{\"started\": \"%s\", \"finished\": \"%s\", \"repair\": %s, \"truncated\": %s, "
           "\"contents\": %llu, \"entries\": %llu, \"jobs\": %llu, \"counts\": {",
           tierctl_time(r->started_ms, a, sizeof(a)), tierctl_time(r->finished_ms, b, sizeof(b)),
           r->repair ? "true" : "false", r->truncated ? "true" : "false",
           (unsigned long long)r->contents, (unsigned long long)r->entries,
           (unsigned long long)r->jobs);
    for (size_t i = 0; i < r->n_counts; i++)
        printf("%s\"%s\": {\"found\": %llu, \"repaired\": %llu}", i ? ", " : "", r->counts[i]->kind,
               (unsigned long long)r->counts[i]->found, (unsigned long long)r->counts[i]->repaired);
    printf("}, \"findings\": [");
    for (size_t i = 0; i < r->n_findings; i++) {
        printf("%s", i ? ", " : "");
        finding_json(r->findings[i]);
    }
    printf("]}\n");
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
     "compare MySQL, Redis and the level directories (exit 1: disagreements)", cmd_fsck},
    {NULL, NULL, NULL, NULL},
};
