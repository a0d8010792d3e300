/*
 * tier_notify.c -- sd_notify glue for tierd and tier-worker (tier_notify.h).
 *
 * The watchdog thread waits on a condition variable (CLOCK_MONOTONIC) for
 * half the interval, so tier_notify_watchdog_stop wakes it at once instead
 * of waiting out a sleep.
 */
#include "tier_notify.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "tier_log.h"
#include "tier_status.h"

/* STATUS= is for people: one short line is plenty. */
#define STATUS_MAX 256
/* A ping interval below this is a misconfiguration; do not spin on it. */
#define MIN_PING_USEC 10000u

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running, stop;
    uint64_t every_usec;
    int (*alive)(void *);
    void *arg;
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER};

void tier_notify_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status != NULL ? status : "ready");
}

void tier_notify_status(const char *fmt, ...)
{
    char line[STATUS_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", line);
}

void tier_notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

/* now + usec on CLOCK_MONOTONIC, overflow-safe for any usec systemd sends. */
static struct timespec after_usec(uint64_t usec)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(usec / 1000000u);
    ts.tv_nsec += (long)(usec % 1000000u) * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void *watchdog_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&wd.mu);
    while (!wd.stop) {
        pthread_mutex_unlock(&wd.mu);
        if (wd.alive == NULL || wd.alive(wd.arg))
            sd_notify(0, "WATCHDOG=1");
        else
            tier_warn("watchdog: not alive, no ping (systemd restarts us after WatchdogSec)");
        pthread_mutex_lock(&wd.mu);
        struct timespec until = after_usec(wd.every_usec);
        while (!wd.stop && pthread_cond_timedwait(&wd.cv, &wd.mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&wd.mu);
    return NULL;
}

int tier_notify_watchdog_start(int (*alive)(void *arg), void *arg)
{
    uint64_t usec = 0;
    pthread_condattr_t ca;

    /* unset_environment = 0: children (none today) may not ping for us
     * anyway, since WATCHDOG_PID names us when it is set. */
    if (sd_watchdog_enabled(0, &usec) <= 0 || wd.running)
        return TIER_OK;
    wd.every_usec = usec / 2 > MIN_PING_USEC ? usec / 2 : MIN_PING_USEC;
    wd.alive = alive;
    wd.arg = arg;
    wd.stop = false;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&wd.thread, NULL, watchdog_main, NULL) != 0) {
        tier_error("watchdog: cannot start its thread");
        return TIER_INTERNAL;
    }
    wd.running = true;
    tier_info("watchdog: pinging systemd every %llu ms", (unsigned long long)wd.every_usec / 1000);
    return TIER_OK;
}

void tier_notify_watchdog_stop(void)
{
    if (!wd.running)
        return;
    pthread_mutex_lock(&wd.mu);
    wd.stop = true;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
    pthread_join(wd.thread, NULL);
    pthread_cond_destroy(&wd.cv);
    wd.running = false;
}
