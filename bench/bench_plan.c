/*
 * bench_plan.c -- what one planner round costs: tier_policy_plan and
 * tier_policy_start over N contents (the pure code tierd's planner thread
 * runs every plan_interval_s), and the window sums that score them.
 *
 *   bench_plan [--runs R]
 *
 * Contents: random levels (70% bronze, 20% silver, 10% gold), sizes
 * log-uniform 100 KiB .. 1 GiB, scores Zipf-like; a window policy of 7 days
 * of hours with gold at 5% of the bytes.  Prints the median of R runs per
 * row as a table (docs/BENCHMARKS.md section 10).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_policy.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double unit(void)
{
    return (double)(next_u64() >> 11) / 9007199254740992.0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void make_items(tier_policy_item *it, size_t n, int64_t now_ms, int64_t *total)
{
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        double u = unit();
        it[i] = (tier_policy_item){
            (int64_t)i + 1,
            u < 0.7   ? 0
            : u < 0.9 ? 1
                      : 2,
            -1,
            (int64_t)(102400.0 * pow(10485.76, unit())),
            (int64_t)(1000.0 / pow(1.0 + (double)(next_u64() % n), 0.9) * (double)n / 1000.0),
            now_ms - (int64_t)(next_u64() % 86400000),
            now_ms - 7200000,
            0};
        *total += it[i].size;
    }
}

static void policy(tier_policy *p, tier_policy_level *lv, int64_t gold_cap)
{
    static const char *names[] = {"bronze", "silver", "gold"};
    static const int64_t mins[] = {0, 100, 1000}, maxs[] = {99, 999, INT64_MAX};
    char err[256];

    tier_policy_window_defaults(p);
    p->nlevels = 1;
    p->levels[0] = (tier_policy_level_rule){"gold", -1, -1, gold_cap};
    p->nbudgets = 1;
    p->budgets[0] = (tier_policy_budget){"", "", 100, 0};
    if (tier_policy_resolve(p, names, mins, maxs, 3, lv, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_plan: %s\n", err);
        exit(1);
    }
}

/* Seconds of one plan + start round over n contents. */
static double one_round(size_t n, bool capacity, size_t *moves)
{
    tier_policy_item *it = malloc(n * sizeof(*it));
    tier_policy_move *mv = malloc(n * sizeof(*mv));
    bool *go = malloc(n * sizeof(*go));
    int64_t now = 1800000000000, total;
    tier_policy_level lv[3];
    tier_policy_summary sum;
    tier_policy_start_stats st;
    tier_policy_gate g;
    tier_policy p;
    size_t nm = 0;
    double t0;

    make_items(it, n, now, &total);
    policy(&p, lv, capacity ? total / 20 : 0);
    tier_policy_gate_init(&g, now);
    t0 = now_s();
    if (tier_policy_plan(&p, lv, 3, it, n, now, mv, &nm, &sum) != 0)
        exit(1);
    tier_policy_start(&p, lv, 3, &g, now, mv, nm, 1000, &sum, go, &st);
    t0 = now_s() - t0;
    *moves = nm;
    free(it);
    free(mv);
    free(go);
    return t0;
}

/* Nanoseconds per window sum of a full 168-bucket ring. */
static double sum_cost(void)
{
    tier_policy_views *v = tier_policy_views_alloc(168);
    int64_t now = 1800000000000, acc = 0;
    double t0;

    for (int h = 0; h < 168; h++)
        tier_policy_views_add(v, 3600, now - (int64_t)h * 3600000, 1 + h % 7);
    t0 = now_s();
    for (int i = 0; i < 1000000; i++)
        acc += tier_policy_views_sum(v, 3600, now + i % 1000, 7 * 86400);
    t0 = now_s() - t0;
    tier_policy_views_free(v);
    if (acc == 42)
        printf("(never)\n");
    return t0 * 1e9 / 1e6;
}

int main(int argc, char **argv)
{
    int runs = 5;
    static const size_t NS[] = {100000, 1000000};

    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
    if (runs < 1 || runs > 50)
        runs = 5;
    printf("one planner round (tier_policy_plan + tier_policy_start), median of %d runs\n", runs);
    printf("| contents | gold capacity | moves planned | round (ms) | per content (ns) |\n");
    printf("|---:|---|---:|---:|---:|\n");
    for (size_t k = 0; k < 2; k++)
        for (int cap = 0; cap < 2; cap++) {
            double v[50];
            size_t moves = 0;
            for (int r = 0; r < runs; r++)
                v[r] = one_round(NS[k], cap, &moves);
            qsort(v, (size_t)runs, sizeof(double), cmp);
            printf("| %zu | %s | %zu | %.1f | %.0f |\n", NS[k], cap ? "5% of bytes" : "none", moves,
                   v[runs / 2] * 1e3, v[runs / 2] * 1e9 / (double)NS[k]);
        }
    printf("\nwindow sum of a 168-bucket ring (7 days of hours): %.0f ns\n", sum_cost());
    return 0;
}
