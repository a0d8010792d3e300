/*
 * bench_import.c -- registering many files: one AddContent per file (what
 * scripts did before) against AddContents batches (what `tierctl import`
 * sends).  BENCHMARKS.md section 7 has the numbers and the recipe.
 *
 *   bench_import URL DIR N one|batch
 *
 * DIR is the running tierd's default level directory; N files named
 * "<mode>-NNNNNNN.bin" are created there first (not timed), then
 * registered (timed).  The tierd must have no tokens (--no-auth) or the
 * admin token in TIER_TOKEN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_client.h"
#include "tier_time.h"

#define BATCH 1000

static int one(tier_client *c, char **names, long n)
{
    for (long i = 0; i < n; i++) {
        Tier__AddContentRequest req = TIER__ADD_CONTENT_REQUEST__INIT;
        Tier__AddContentReply *rep;
        tier_error err;
        req.filename = names[i];
        if (tier_add_content(c, &req, &rep, &err) != TIER_OK)
            return fprintf(stderr, "%s: %s\n", names[i], err.message), 1;
        tier_free(rep);
    }
    return 0;
}

static int batch(tier_client *c, char **names, long n)
{
    static Tier__AddContentRequest it[BATCH];
    static Tier__AddContentRequest *p[BATCH];
    for (long s = 0; s < n; s += BATCH) {
        Tier__AddContentsRequest req = TIER__ADD_CONTENTS_REQUEST__INIT;
        Tier__AddContentsReply *rep;
        tier_error err;
        long k = n - s < BATCH ? n - s : BATCH;
        for (long i = 0; i < k; i++) {
            tier__add_content_request__init(&it[i]);
            it[i].filename = names[s + i];
            p[i] = &it[i];
        }
        req.items = p;
        req.n_items = (size_t)k;
        if (tier_add_contents(c, &req, &rep, &err) != TIER_OK)
            return fprintf(stderr, "batch at %ld: %s\n", s, err.message), 1;
        for (size_t i = 0; i < rep->n_results; i++)
            if (rep->results[i]->code != 0)
                return fprintf(stderr, "%s: %s\n", names[s + i], rep->results[i]->message), 1;
        tier_free(rep);
    }
    return 0;
}

int main(int argc, char **argv)
{
    tier_client_opts o = {.token = getenv("TIER_TOKEN"), .timeout_ms = 60000};
    tier_client *c;
    tier_error err;
    long n = argc == 5 ? atol(argv[3]) : 0;

    if (n <= 0 || n > 10000000 || (strcmp(argv[4], "one") != 0 && strcmp(argv[4], "batch") != 0))
        return fprintf(stderr, "usage: bench_import URL DIR N one|batch\n"), 2;
    char **names = calloc((size_t)n, sizeof(*names));
    for (long i = 0; names && i < n; i++) {
        char path[8192];
        names[i] = malloc(64);
        snprintf(names[i], 64, "%s-%07ld.bin", argv[4], i);
        snprintf(path, sizeof(path), "%s/%s", argv[2], names[i]);
        FILE *f = fopen(path, "w");
        if (f == NULL || fclose(f) != 0)
            return perror(path), 1;
    }
    if (names == NULL || tier_client_open_opts(&c, argv[1], &o, &err) != TIER_OK)
        return fprintf(stderr, "cannot open %s\n", argv[1]), 1;
    int64_t t0 = tier_now_ms();
    int rv = strcmp(argv[4], "one") == 0 ? one(c, names, n) : batch(c, names, n);
    int64_t ms = tier_now_ms() - t0;
    if (rv == 0)
        printf("%s: %ld files in %.2f s (%.0f files/s)\n", argv[4], n, ms / 1000.0,
               ms > 0 ? n * 1000.0 / ms : 0.0);
    tier_client_close(c);
    return rv;
}
