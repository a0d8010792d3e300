/*
 * main.c -- tierd, the tier coordinator.  See tierd.h for the map.
 *
 * Under systemd (packaging/systemd/tierd.service, Type=notify) it says
 * READY=1 once it serves as the writer; until then STATUS= says what it
 * waits for (a standby can wait for hours), and the watchdog is pinged
 * from the start (common/tier_notify.h).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "tier_crash.h"
#include "tier_log.h"
#include "tier_notify.h"
#include "tierd.h"

int main(int argc, char **argv)
{
    tierd_config cfg;
    sigset_t set;
    tierd *d;
    int sig, rv;

    tier_log_init("tierd", TIER_LOG_INFO);
    rv = tierd_config_load(&cfg, argc, argv);
    if (rv != 0)
        return rv > 0 ? 0 : 2;
    if (tier_crash_init(tierd_crash_points) != 0)
        return 2;
    /* Block the stop signals in every thread; main waits for them.  SIGHUP
     * (re-read the tokens file) is blocked too, so that it does not kill a
     * standby, but does not stop one. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigset_t all = set;
    sigaddset(&all, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    signal(SIGPIPE, SIG_IGN);
    tier_notify_status("starting: connecting to Redis and MySQL");
    if (tier_notify_watchdog_start(NULL, NULL) != TIER_OK)
        return 1;
    if ((rv = tierd_open(&d, &cfg, &set)) != TIER_OK) {
        tier_notify_watchdog_stop();
        if (rv == TIER_CANCELLED) { /* stopped while a standby */
            tier_notify_stopping();
            tier_info("stopped");
            return 0;
        }
        tier_error("not started: %s", tier_status_name(rv));
        return 1;
    }
    char status[300];
    snprintf(status, sizeof(status), "writer: serving on %s", cfg.listen);
    tier_notify_ready(status);
    while (sigwait(&all, &sig) == 0 && sig == SIGHUP)
        tierd_reload(d);
    tier_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    tier_notify_stopping();
    tierd_close(d);
    tier_notify_watchdog_stop();
    if (tierd_writer_handed_over()) {
        tier_info("stopped: the shard went home; exiting %d to come back as a standby",
                  TIERD_EXIT_NOT_WRITER);
        return TIERD_EXIT_NOT_WRITER;
    }
    tier_info("stopped");
    return 0;
}
