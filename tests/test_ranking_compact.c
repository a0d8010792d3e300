/*
 * test_ranking_compact.c -- ranking over compacted history, end to end: a
 * real tierd with a short detail horizon (--rank-detail-min 30) and small
 * granules (--rank-coarse-level 2: 16 minutes), so nearly all of three days
 * of backfilled comments sit in compacted granules and window edges inside
 * them are completed from comment_minute in MariaDB (the fringe).
 * TopContents over random windows (unaligned edges, minutes to days long,
 * both orders, one service and all) equals brute force over the events the
 * test made, before and after a kill -9 (the rebuild compacts as it
 * streams) and after backfilling into compacted granules.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ranking_fixture.h"
#include "ranking_model.h"
#include "tier_client.h"
#include "tier_testenv.h"
#include "tier_time.h"

/* ------------------------------------------------------------ a tierd */

/* tierd's arguments at every start (ranking_fixture.h).  The model, the
 * brute force and the random streams are in ranking_model.h. */
static char *const TIERD_ARGS[] = {
    "--threads", "16", "--rank-detail-min", "30", "--rank-coarse-level", "2", NULL};

/* ------------------------------------------------------------ windows */

/* Windows with edges anywhere in [lo, hi], biased to unaligned old edges
 * and multi-day lengths. */
static window *old_windows(size_t n, int64_t lo, int64_t hi, unsigned *seed)
{
    window *w = random_windows(n, lo, hi, seed);
    for (size_t i = 0; i < n; i++) {
        int64_t len;
        switch (rand_r(seed) % 4) {
        case 0:
            len = 1 + rand_r(seed) % 40;
            break;
        case 1:
            len = 1 + rand_r(seed) % 600;
            break;
        default:
            len = 1 + rand_r(seed) % (hi - lo);
            break;
        }
        w[i].from = lo + rand_r(seed) % (hi - lo);
        w[i].to = w[i].from + len;
    }
    return w;
}

Test(ranking_compact, old_windows_equal_brute_force_across_restart, .timeout = 600)
{
    ranking_fixture f;
    model m = {0};
    unsigned seed = 20261201;
    row *buf = calloc(NSVC * (MAXCID + 1), sizeof(*buf));
    const size_t NWIN = 400;

    ranking_fixture_setup(&f, TIERD_ARGS);
    int64_t now_min = tier_now_ms() / 60000, lo = now_min - 3 * 1440;
    for (int round = 0; round < 4; round++) {
        post_random(f.c, &m, 800, lo, now_min - 1, &seed);
        change_backfilled(f.c, &m, 300, (now_min - 1) * 60000, &seed);
    }
    window *w = old_windows(NWIN, lo - 5, now_min + 1, &seed);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);

    ranking_fixture_kill(&f, SIGKILL);
    ranking_fixture_start(&f);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);

    /* backfills into compacted granules after the rebuild */
    post_random(f.c, &m, 600, lo, now_min - 60, &seed);
    change_backfilled(f.c, &m, 200, (now_min - 1) * 60000, &seed);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);

    free(w);
    free(buf);
    free(m.ev);
    free(m.cm);
    ranking_fixture_teardown(&f);
}
