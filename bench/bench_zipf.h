/*
 * bench_zipf.h -- the deterministic random numbers and the Zipf (s = 1.0)
 * choice of content that the ranking benchmarks share, so that both draw
 * the same workload.  Header-only: each benchmark is one program.  The
 * including file defines NCID (the number of contents) first.
 */
#ifndef BENCH_ZIPF_H
#define BENCH_ZIPF_H

#include <stdint.h>
#include <stdlib.h>

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

/* xorshift64: repeatable from run to run. */
static inline uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Uniform in [0, 1). */
static inline double next_unit(void)
{
    return (double)(next_u64() >> 11) / 9007199254740992.0;
}

/* Cumulative distribution of Zipf s = 1.0 over cids 1..NCID. */
static inline double *zipf_cdf(void)
{
    double *cdf = malloc(NCID * sizeof(double)), sum = 0;
    for (int i = 0; i < NCID; i++)
        cdf[i] = (sum += 1.0 / (i + 1));
    for (int i = 0; i < NCID; i++)
        cdf[i] /= sum;
    return cdf;
}

/* A cid drawn from cdf (binary search). */
static inline int64_t zipf_cid(const double *cdf)
{
    double u = next_unit();
    size_t lo = 0, hi = NCID - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int64_t)lo + 1;
}

#endif
