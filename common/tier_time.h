/*
 * tier_time.h -- the two clocks: wall time for what is stored and shown
 * (ms since the Unix epoch, UTC) and monotonic time for timeouts.
 */
#ifndef TIER_TIME_H
#define TIER_TIME_H

#include <stdint.h>
#include <time.h>

static inline int64_t tier_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t tier_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t tier_mono_ms(void)
{
    return tier_mono_us() / 1000;
}

#endif
