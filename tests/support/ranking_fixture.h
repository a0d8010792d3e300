/*
 * ranking_fixture.h -- the fixture of the suites that drive a real tierd
 * through libtier (test_ranking, test_ranking_compact, test_ranking_hot,
 * test_watch): a fresh, migrated MariaDB database and a tmpdir per test, a
 * tierd on them started with the suite's extra arguments, and a client
 * connected to it.  tierd can be killed and started again (same database,
 * same arguments) in the middle of a test.
 */
#ifndef RANKING_FIXTURE_H
#define RANKING_FIXTURE_H

#include "tier_client.h"
#include "tier_testenv.h"

typedef struct {
    tier_test_mysql m;
    tier_test_tierd td;
    char *dir;
    tier_client *c;
    char *const *extra; /* tierd's extra arguments (NULL-terminated) at every start */
} ranking_fixture;

/* A fresh database and tmpdir, then tierd started with extra (NULL: none). */
void ranking_fixture_setup(ranking_fixture *f, char *const extra[]);
/* Starts tierd with f->extra and opens f->c to it (30 s call timeout). */
void ranking_fixture_start(ranking_fixture *f);
/* Closes f->c and stops tierd with sig; fails the test if it takes 20 s. */
void ranking_fixture_kill(ranking_fixture *f, int sig);
/* Stops tierd (SIGTERM) if it runs, drops the database, removes the tmpdir. */
void ranking_fixture_teardown(ranking_fixture *f);

#endif
