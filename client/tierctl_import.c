/*
 * tierctl_import.c -- `tierctl import [DIR] [--batch N]`: registers every
 * regular file of a level directory as a content, through AddContents
 * batches (one AddContent per file took 48 s for 20,000 files: a round
 * trip and a commit each).
 *
 * DIR defaults to the default level's directory as tierd reports it; give
 * it when tierctl sees that directory under another path (an NFS mount).
 * tierd checks every file in its own default level directory anyway.
 * Files already registered come back ALREADY_EXISTS and are counted as
 * such, so an import can simply be run again after an interruption.
 * Temporary files of crashed moves (".tier-tmp.*") and names tierd would
 * refuse are skipped here.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tier_name.h"
#include "tierctl.h"

#define BATCH_DEFAULT 1000
#define BATCH_MAX 5000   /* AddContentsRequest.items (tier.proto) */
#define ERRORS_SHOWN 100 /* failures listed; all are counted */

typedef struct {
    char **names;
    size_t n, cap;
    size_t skipped; /* not regular files, temporaries, bad names */
} listing;

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool keep(const char *dir, const struct dirent *e, listing *l)
{
    char path[8192];
    struct stat sb;
    size_t len = strlen(e->d_name);

    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        return false;
    if (strncmp(e->d_name, ".tier-tmp.", 10) == 0 || !tier_name_valid(e->d_name, len)) {
        l->skipped++;
        return false;
    }
    if (e->d_type == DT_REG)
        return true;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    if (e->d_type == DT_UNKNOWN && lstat(path, &sb) == 0 && S_ISREG(sb.st_mode))
        return true;
    l->skipped++;
    return false;
}

/* The regular files of dir, sorted (so cids follow the names). */
static int list_dir(tierctl *t, const char *dir, listing *l)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d == NULL)
        return tierctl_fail(t, TIER_FAILED_PRECONDITION, "cannot read %s: %m", dir);
    while ((e = readdir(d)) != NULL) {
        if (!keep(dir, e, l))
            continue;
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 1024;
            char **nn = realloc(l->names, cap * sizeof(*nn));
            if (nn == NULL)
                break;
            l->names = nn, l->cap = cap;
        }
        if ((l->names[l->n] = strdup(e->d_name)) == NULL)
            break;
        l->n++;
    }
    closedir(d);
    if (e != NULL)
        return tierctl_fail(t, TIER_RESOURCE_EXHAUSTED, "out of memory listing %s", dir);
    qsort(l->names, l->n, sizeof(*l->names), by_str);
    return TIER_OK;
}

/* The default level's directory (min_counts 0). */
static int default_dir(tierctl *t, char *out, size_t len)
{
    Tier__ListLevelsRequest req = TIER__LIST_LEVELS_REQUEST__INIT;
    Tier__ListLevelsReply *rep;
    int rv;

    if ((rv = tier_list_levels(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    rv = tierctl_fail(t, TIER_FAILED_PRECONDITION, "tierd has no default level");
    for (size_t i = 0; i < rep->n_levels; i++)
        if (rep->levels[i]->min_counts == 0) {
            snprintf(out, len, "%s", rep->levels[i]->path);
            rv = TIER_OK;
        }
    tier_free(rep);
    return rv;
}

typedef struct {
    size_t added, already, failed;
    int first_code;
    json_t *errors;
} tally;

static int send_batch(tierctl *t, char **names, size_t n, tally *s)
{
    Tier__AddContentsRequest req = TIER__ADD_CONTENTS_REQUEST__INIT;
    Tier__AddContentRequest *items = calloc(n, sizeof(*items)), **ptrs = calloc(n, sizeof(*ptrs));
    Tier__AddContentsReply *rep;
    int rv;

    if (items == NULL || ptrs == NULL) {
        free(items);
        free(ptrs);
        return tierctl_fail(t, TIER_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        tier__add_content_request__init(&items[i]);
        items[i].filename = names[i];
        ptrs[i] = &items[i];
    }
    req.items = ptrs;
    req.n_items = n;
    rv = tier_add_contents(t->client, &req, &rep, &t->err);
    free(items);
    free(ptrs);
    if (rv != TIER_OK)
        return rv;
    for (size_t i = 0; i < rep->n_results && i < n; i++) {
        const Tier__AddContentResult *r = rep->results[i];
        int code = (int)r->code;
        if (code == TIER_OK) {
            s->added++;
        } else if (code == TIER_ALREADY_EXISTS) {
            s->already++;
        } else {
            if (s->failed++ == 0)
                s->first_code = code;
            if (json_array_size(s->errors) < ERRORS_SHOWN)
                json_array_append_new(s->errors, json_pack("{s:o, s:s, s:o}", "filename",
                                                           tierctl_jstr(names[i]), "code",
                                                           tier_status_name(code), "message",
                                                           tierctl_jstr(r->message)));
        }
    }
    tier_free(rep);
    return TIER_OK;
}

static void print_tally(tierctl *t, const char *dir, const listing *l, const tally *s)
{
    if (t->json) {
        tierctl_emit(stdout,
                     json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:O}", "dir", tierctl_jstr(dir),
                               "files", (json_int_t)l->n, "added", (json_int_t)s->added, "already",
                               (json_int_t)s->already, "failed", (json_int_t)s->failed, "skipped",
                               (json_int_t)l->skipped, "errors", s->errors));
        return;
    }
    for (size_t i = 0; i < json_array_size(s->errors); i++) {
        json_t *e = json_array_get(s->errors, i);
        printf("  %s: %s: %s\n", json_string_value(json_object_get(e, "filename")),
               json_string_value(json_object_get(e, "code")),
               json_string_value(json_object_get(e, "message")));
    }
    printf("import %s: %zu files: %zu added, %zu already registered, %zu failed; %zu entries "
           "skipped (not regular files, temporaries or bad names)\n",
           dir, l->n, s->added, s->already, s->failed, l->skipped);
}

static int cmd_import(tierctl *t, int argc, char **argv)
{
    const char *dir = NULL;
    char ddir[4200];
    int64_t batch = BATCH_DEFAULT;
    listing l = {0};
    tally s = {.errors = json_array()};
    int rv = TIER_OK;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            if (!tierctl_int(argv[++i], &batch) || batch < 1 || batch > BATCH_MAX)
                rv = tierctl_usage(t, "import: --batch: files per call, 1..%d (default %d)",
                                   BATCH_MAX, BATCH_DEFAULT);
        } else if (dir == NULL && argv[i][0] != '-') {
            dir = argv[i];
        } else {
            rv = tierctl_usage(t, "usage: tierctl import [DIR] [--batch N]");
        }
    }
    if (rv == TIER_OK && dir == NULL && (rv = default_dir(t, ddir, sizeof(ddir))) == TIER_OK)
        dir = ddir;
    if (rv == TIER_OK)
        rv = list_dir(t, dir, &l);
    for (size_t i = 0; rv == TIER_OK && i < l.n; i += (size_t)batch)
        rv = send_batch(t, l.names + i, l.n - i < (size_t)batch ? l.n - i : (size_t)batch, &s);
    if (rv == TIER_OK) {
        print_tally(t, dir, &l, &s);
        if (s.failed > 0)
            rv = tierctl_fail(t, s.first_code, "%zu of %zu files failed", s.failed, l.n);
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.names[i]);
    free(l.names);
    json_decref(s.errors);
    return rv;
}

const tierctl_cmd tierctl_import_cmds[] = {
    {"import", "import [DIR] [--batch N]", "register every file of the default level's directory",
     cmd_import,
     "  DIR: that directory as this machine sees it (default: the path tierd reports).\n"
     "  Files already registered are counted, not errors: run it again after an\n"
     "  interruption.  --batch N: files per AddContents call, 1..5000 (default 1000).\n"
     "  Exit 0 when every file is registered, else 64 + the first failure's code."},
    {NULL, NULL, NULL, NULL, NULL},
};
