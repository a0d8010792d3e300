/*
 * tier_notify.h -- telling systemd how a daemon is doing (sd_notify(3)).
 *
 * tierd and tier-worker run as Type=notify units (packaging/systemd/): they
 * say READY=1 once they serve, STATUS= lines for `systemctl status` (a
 * standby says what it waits for), STOPPING=1 when asked to stop, and ping
 * the watchdog from a thread of their own while WatchdogSec= is set.  The
 * glue is in this one file so that main.c stays short, and it is a library
 * of its own (tier_notify) so that libtier does not depend on libsystemd.
 *
 * Every function is a no-op when the process was not started by systemd
 * (no NOTIFY_SOCKET), so the daemons need no flag for it.
 */
#ifndef TIER_NOTIFY_H
#define TIER_NOTIFY_H

/* READY=1 with a STATUS= line: the daemon serves. */
void tier_notify_ready(const char *status);
/* STATUS=<printf format>: shown by `systemctl status`. */
void tier_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* STOPPING=1: a clean stop has begun. */
void tier_notify_stopping(void);

/* Starts a thread that sends WATCHDOG=1 every half of the interval
 * systemd asked for (WATCHDOG_USEC), if it asked (sd_watchdog_enabled).
 * alive (may be NULL) is asked first each time; no ping when it returns
 * false, so systemd restarts a daemon whose vital part is stuck rather
 * than one that is merely not dead.  TIER_OK, also when no watchdog is
 * wanted; TIER_INTERNAL when the thread cannot start. */
int tier_notify_watchdog_start(int (*alive)(void *arg), void *arg);
/* Stops and joins that thread (no-op when none runs). */
void tier_notify_watchdog_stop(void);

#endif
