/*
 * ranking.c -- seed 003: comments, top contents, latest comments.
 * (Being built: issue 4.  Until then it registers no methods.)
 */
#include "tierd.h"

#include <stdlib.h>

struct ranking {
    const tierd_deps *deps;
};

int ranking_open(ranking **out, const tierd_deps *deps)
{
    ranking *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    t->deps = deps;
    *out = t;
    return TIER_OK;
}

int ranking_register(ranking *t, tier_rpc_server *srv)
{
    (void)t;
    (void)srv;
    return TIER_OK;
}

void ranking_close(ranking *t)
{
    free(t);
}
