/*
 * tier_crash.c -- see tier_crash.h.
 */
#include "tier_crash.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const *registered; /* the binary's list */
static _Atomic(const char *) armed;   /* NULL: no point armed */
static atomic_long hits_left;         /* hits of `armed` until the exit */

static int listed(const char *name)
{
    for (size_t i = 0; registered != NULL && registered[i] != NULL; i++)
        if (strcmp(registered[i], name) == 0)
            return 1;
    return 0;
}

int tier_crash_init(const char *const *points)
{
    const char *env = getenv("TIER_CRASH");
    static char name[128];
    const char *colon;
    long n = 1;

    registered = points;
    if (env == NULL || *env == '\0')
        return 0;
    colon = strchr(env, ':');
    snprintf(name, sizeof(name), "%.*s", (int)(colon ? colon - env : (long)strlen(env)), env);
    if (colon != NULL) {
        char *end;
        n = strtol(colon + 1, &end, 10);
        if (*end != '\0' || n < 1) {
            fprintf(stderr, "TIER_CRASH=%s: the count after ':' must be >= 1\n", env);
            return -1;
        }
    }
    if (!listed(name)) {
        fprintf(stderr, "TIER_CRASH=%s: no such crash point (--crash-points lists them)\n", env);
        return -1;
    }
    atomic_store(&hits_left, n);
    atomic_store(&armed, name);
    return 0;
}

void tier_crash_list(FILE *f, const char *const *points)
{
    for (size_t i = 0; points[i] != NULL; i++)
        fprintf(f, "%s\n", points[i]);
}

void tier_crash_at(const char *name, int *checked)
{
    const char *a = atomic_load_explicit(&armed, memory_order_relaxed);

    /* Once per call site (a benign race: two threads may both look). */
    if (!__atomic_load_n(checked, __ATOMIC_RELAXED) && registered != NULL) {
        __atomic_store_n(checked, 1, __ATOMIC_RELAXED);
        if (!listed(name)) {
            /* The code names a step its binary's list lacks: a bug, caught
             * on the first run of that path in any test. */
            fprintf(stderr, "TIER_CRASH_AT(\"%s\"): not in this binary's crash-point list\n", name);
            abort();
        }
    }
    if (a == NULL || strcmp(a, name) != 0)
        return;
    if (atomic_fetch_sub(&hits_left, 1) != 1)
        return;
    char line[200];
    int len = snprintf(line, sizeof(line), "crash point %s hit\n", name);
    if (len > 0 && write(2, line, (size_t)len) < 0)
        _exit(TIER_CRASH_EXIT);
    _exit(TIER_CRASH_EXIT);
}
