/*
 * tierctl_watch.c -- `tierctl top --watch`: follows a top list (WatchTop)
 * and prints it each time it changes, and at least once a minute (a new
 * minute is a new version of the list), until Ctrl-C or --count lists.
 *
 *   top --watch [--window-min N] [--count K] [-n N] [--service S] [--decrease | --order O]
 *
 * Each step is one long poll (tier_watch_top) sending the version printed
 * last; tierd answers when its list differs.  A slow terminal costs
 * nothing on tierd's side: it never queues lists, the next step just gets
 * the newest one.  Under --json every list is one JSON document on a line
 * of its own (JSON lines); its version is a decimal string, as in the HTTP
 * gateway's JSON (a uint64 does not fit a JSON integer everywhere).
 */
#include <stdlib.h>
#include <string.h>

#include "tierctl.h"

#define ROWS_MAX 1000
#define WINDOW_DEFAULT 60

typedef struct {
    Tier__TopContentsRequest top;
    Tier__WatchTopRequest req;
    int64_t count; /* lists to print; 0 = until interrupted */
} watch_args;

static void print_list(tierctl *t, const watch_args *a, const Tier__WatchTopReply *rep)
{
    char m[48];
    bool hot = a->top.order == TIER__ORDER__HOT;

    if (t->json) {
        json_t *arr = tierctl_top_rows_json(rep->rows, rep->n_rows, hot);
        tierctl_emit(
            stdout, json_pack("{s:o, s:o, s:o, s:o}", "minute", tierctl_jtime(rep->minute_ms),
                              "window_min", tierctl_jint(a->req.window_min), "version",
                              json_sprintf("%llu", (unsigned long long)rep->version), "rows", arr));
        fflush(stdout);
        return;
    }
    if (hot)
        printf("hot at %s, version %016llx\n", tierctl_time(t, rep->minute_ms, m, sizeof(m)),
               (unsigned long long)rep->version);
    else
        printf("last %u minutes to %s, version %016llx\n", a->req.window_min,
               tierctl_time(t, rep->minute_ms + 60000, m, sizeof(m)),
               (unsigned long long)rep->version);
    if (rep->n_rows == 0)
        tierctl_none();
    else
        tierctl_top_rows_print(rep->rows, rep->n_rows, 1, hot, true);
    printf("\n");
    fflush(stdout);
}

/* One positive number option into *v, or a usage error. */
static bool number(tierctl *t, const char *flag, const char *s, int64_t max, int64_t *v)
{
    if (s == NULL || !tierctl_int(s, v) || *v < 1 || *v > max) {
        tierctl_usage(t, "top --watch: %s: 1..%lld", flag, (long long)max);
        return false;
    }
    return true;
}

/* --order increase|decrease|hot into *order, or a usage error. */
static bool order_arg(tierctl *t, const char *s, Tier__Order *order)
{
    if (strcmp(s, "increase") == 0)
        *order = TIER__ORDER__INCREASE;
    else if (strcmp(s, "decrease") == 0)
        *order = TIER__ORDER__DECREASE;
    else if (strcmp(s, "hot") == 0)
        *order = TIER__ORDER__HOT;
    else {
        tierctl_usage(t, "top --watch: --order: increase, decrease or hot");
        return false;
    }
    return true;
}

static bool watch_args_parse(tierctl *t, int argc, char **argv, watch_args *a)
{
    int64_t v;

    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(s, "--watch") == 0)
            continue;
        if (strcmp(s, "--window-min") == 0) {
            if (!number(t, s, next, UINT32_MAX, &v))
                return false;
            a->req.window_min = (uint32_t)v, i++;
        } else if (strcmp(s, "--count") == 0) {
            if (!number(t, s, next, INT64_MAX, &a->count))
                return false;
            i++;
        } else if (strcmp(s, "-n") == 0) {
            if (!number(t, s, next, ROWS_MAX, &v))
                return false;
            a->top.limit = (uint32_t)v, i++;
        } else if (strcmp(s, "--service") == 0 && next) {
            a->top.service = argv[++i];
        } else if (strcmp(s, "--decrease") == 0) {
            a->top.order = TIER__ORDER__DECREASE;
        } else if (strcmp(s, "--order") == 0 && next) {
            if (!order_arg(t, argv[++i], &a->top.order))
                return false;
        } else {
            tierctl_usage(t, "top --watch: unexpected argument \"%s\" (tierctl help top)", s);
            return false;
        }
    }
    return true;
}

int tierctl_top_watch(tierctl *t, int argc, char **argv)
{
    watch_args a = {.top = TIER__TOP_CONTENTS_REQUEST__INIT, .req = TIER__WATCH_TOP_REQUEST__INIT};
    Tier__WatchTopReply *rep;
    int64_t printed = 0;
    int rv;

    a.req.window_min = WINDOW_DEFAULT;
    if (!watch_args_parse(t, argc, argv, &a))
        return TIERCTL_USAGE;
    a.req.top = &a.top;
    while (a.count == 0 || printed < a.count) {
        if ((rv = tier_watch_top(t->client, &a.req, &rep, &t->err)) != TIER_OK)
            return rv;
        if (rep->changed) {
            print_list(t, &a, rep);
            printed++;
        }
        a.req.version = rep->version;
        tier_free(rep);
    }
    return TIER_OK;
}
