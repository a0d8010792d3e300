/*
 * tiering.c -- seed 000: levels, contents, view reports and move jobs.
 * (Being built: issue 3.  Until then it registers no methods.)
 */
#include "tierd.h"

#include <stdlib.h>

struct tiering {
    const tierd_deps *deps;
};

int tiering_open(tiering **out, const tierd_deps *deps)
{
    tiering *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    t->deps = deps;
    *out = t;
    return TIER_OK;
}

int tiering_register(tiering *t, tier_rpc_server *srv)
{
    (void)t;
    (void)srv;
    return TIER_OK;
}

void tiering_close(tiering *t)
{
    free(t);
}
