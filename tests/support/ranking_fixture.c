/*
 * ranking_fixture.c -- a tierd on a fresh MariaDB database with a client
 * connected, for the suites that test ranking end to end.  See
 * ranking_fixture.h.
 */
#include "ranking_fixture.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

void ranking_fixture_start(ranking_fixture *f)
{
    tier_test_tierd_start(&f->td, f->extra);
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
    tier_client_set_timeout(f->c, 30000);
}

void ranking_fixture_kill(ranking_fixture *f, int sig)
{
    tier_client_close(f->c);
    f->c = NULL;
    cr_assert_neq(tier_test_tierd_stop(&f->td, sig, 20000), -1, "tierd did not stop");
}

void ranking_fixture_setup(ranking_fixture *f, char *const extra[])
{
    memset(f, 0, sizeof(*f));
    f->extra = extra;
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, NULL);
    f->dir = tier_test_tmpdir();
    tier_test_tierd_init(&f->td, f->dir, f->m.db, NULL);
    tier_test_tierd_setenv_services(&f->td, &f->m, -1, -1);
    ranking_fixture_start(f);
}

void ranking_fixture_teardown(ranking_fixture *f)
{
    if (f->c != NULL)
        ranking_fixture_kill(f, SIGTERM);
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->dir);
    free(f->dir);
}
