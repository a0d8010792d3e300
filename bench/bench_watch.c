/*
 * bench_watch.c -- WatchTop (live top lists) against a running tierd.
 *
 *   1. Wake-up latency: one watcher follows the top 10 of the last 5
 *      minutes of a service of its own; CHANGES times, a PostComment to
 *      the same content (so every post changes the list) is sent while the
 *      watcher is held, and the time from sending the post to the
 *      watcher's reply showing it is recorded (and PostComment's own round
 *      trip, for scale).  Median and p99.  The post is sent --gap-ms after
 *      the watcher asked again (default 150: longer than tierd's 100 ms
 *      between two computations of a list, so each change is isolated;
 *      with a shorter gap the wake-up waits for that pacing).
 *   2. Many watchers: WATCHERS threads (one connection each) follow the
 *      same list.  tierd's CPU (from /proc/PID/stat, so --pid is needed)
 *      over SECONDS while they are held and nothing changes, then while a
 *      comment is posted every 100 ms (each wakes all of them; they share
 *      one computation); wake-ups counted.
 *
 * usage: bench_watch --url URL [--pid TIERD_PID] [--changes N (200)]
 *                    [--watchers N (100)] [--seconds S (10)] [--gap-ms G (150)]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_time.h"

static const char *url;
static int gap_ms = 150;
static char service[64];

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_i64);
    return n ? v[(size_t)(p * (double)(n - 1))] / 1000.0 : 0;
}

static tier_client *open_client(void)
{
    tier_client *c;
    if (tier_client_open(&c, url) != TIER_OK) {
        fprintf(stderr, "bench_watch: cannot open %s\n", url);
        exit(1);
    }
    tier_client_set_timeout(c, 30000);
    return c;
}

static void post(tier_client *c, int64_t cid)
{
    Tier__PostCommentRequest q = TIER__POST_COMMENT_REQUEST__INIT;
    Tier__PostCommentReply *rep;
    tier_error err;

    q.service = service;
    q.cid = cid;
    q.author = "bench";
    q.body = "a comment of about the size of a short remark, to be counted by the watchers";
    if (tier_post_comment(c, &q, &rep, &err) != TIER_OK) {
        fprintf(stderr, "bench_watch: PostComment: %s\n", err.message);
        exit(1);
    }
    tier_free(rep);
}

/* ------------------------------------------------------------ watchers */

typedef struct {
    tier_client *c;
    Tier__TopContentsRequest top;
    Tier__WatchTopRequest req;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t seen;    /* change of cid 1 in the last list */
    int64_t woke_us; /* tier_mono_us when it was got */
    bool held;       /* a call is out (set just before it is sent) */
    atomic_bool stop;
    atomic_long wakeups;
} watcher;

static void watcher_init(watcher *w)
{
    memset(w, 0, sizeof(*w));
    w->c = open_client();
    tier__top_contents_request__init(&w->top);
    tier__watch_top_request__init(&w->req);
    w->top.service = service;
    w->top.limit = 10;
    w->req.top = &w->top;
    w->req.window_min = 5;
    w->req.wait_ms = 20000;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void *watch_main(void *arg)
{
    watcher *w = arg;
    Tier__WatchTopReply *rep;
    tier_error err;

    while (!atomic_load(&w->stop)) {
        pthread_mutex_lock(&w->mu);
        w->held = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        if (tier_watch_top(w->c, &w->req, &rep, &err) != TIER_OK) {
            fprintf(stderr, "bench_watch: WatchTop: %s\n", err.message);
            exit(1);
        }
        int64_t now = tier_mono_us(), change = 0;
        for (size_t i = 0; i < rep->n_rows; i++)
            if (rep->rows[i]->cid == 1)
                change = rep->rows[i]->change;
        pthread_mutex_lock(&w->mu);
        w->held = false;
        if (rep->changed) {
            w->seen = change;
            w->woke_us = now;
            atomic_fetch_add(&w->wakeups, 1);
        }
        w->req.version = rep->version;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        tier_free(rep);
    }
    return NULL;
}

/* ------------------------------------------------------------ 1. latency */

static void latency(int changes)
{
    tier_client *c = open_client();
    watcher w;
    pthread_t th;
    int64_t *lat = calloc((size_t)changes, sizeof(*lat));
    int64_t *rtt = calloc((size_t)changes, sizeof(*rtt));
    int64_t base = 0;

    watcher_init(&w);
    pthread_create(&th, NULL, watch_main, &w);
    /* The first list (version 0 is answered at once). */
    pthread_mutex_lock(&w.mu);
    while (atomic_load(&w.wakeups) == 0)
        pthread_cond_wait(&w.cv, &w.mu);
    base = w.seen;
    pthread_mutex_unlock(&w.mu);
    for (int i = 0; i < changes; i++) {
        /* Held: its call is out, and tierd has had time to park it. */
        pthread_mutex_lock(&w.mu);
        while (!w.held)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        usleep((useconds_t)gap_ms * 1000);
        int64_t t0 = tier_mono_us();
        post(c, 1);
        rtt[i] = tier_mono_us() - t0;
        pthread_mutex_lock(&w.mu);
        while (w.seen < base + i + 1)
            pthread_cond_wait(&w.cv, &w.mu);
        lat[i] = w.woke_us - t0;
        pthread_mutex_unlock(&w.mu);
    }
    atomic_store(&w.stop, true);
    post(c, 2); /* wakes the watcher so that it sees stop */
    pthread_join(th, NULL);
    printf("wake-up, post sent -> watcher has the list: median %.2f ms, p99 %.2f ms (%d changes, "
           "gap %d ms)\n",
           pct(lat, (size_t)changes, 0.5), pct(lat, (size_t)changes, 0.99), changes, gap_ms);
    printf("PostComment round trip (for scale):      median %.2f ms, p99 %.2f ms\n",
           pct(rtt, (size_t)changes, 0.5), pct(rtt, (size_t)changes, 0.99));
    tier_client_close(w.c);
    tier_client_close(c);
    free(lat);
    free(rtt);
}

/* ------------------------------------------------------------ 2. many */

static double cpu_s(int pid)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) == NULL || fgets(buf, sizeof(buf), f) == NULL) {
        if (f)
            fclose(f);
        return 0;
    }
    fclose(f);
    const char *p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long rss_kib(int pid)
{
    char path[64], line[256];
    long kib = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static long total_wakeups(watcher *w, int n)
{
    long t = 0;
    for (int i = 0; i < n; i++)
        t += atomic_load(&w[i].wakeups);
    return t;
}

static void many(int n, int pid, int seconds)
{
    tier_client *c = open_client();
    watcher *w = calloc((size_t)n, sizeof(*w));
    pthread_t *th = calloc((size_t)n, sizeof(*th));
    long rss0 = rss_kib(pid);

    for (int i = 0; i < n; i++) {
        watcher_init(&w[i]);
        pthread_create(&th[i], NULL, watch_main, &w[i]);
    }
    sleep(2); /* all have their first list and are held */
    long k0 = total_wakeups(w, n);
    double c0 = cpu_s(pid);
    sleep((unsigned)seconds);
    double c1 = cpu_s(pid);
    long k1 = total_wakeups(w, n);
    printf("%d watchers held, nothing changes: tierd CPU %.1f%% of a core, %ld wake-ups in %d s "
           "(minute rolls)\n",
           n, 100.0 * (c1 - c0) / seconds, k1 - k0, seconds);
    int64_t end = tier_mono_ms() + seconds * 1000LL;
    int posts = 0;
    while (tier_mono_ms() < end) {
        post(c, 1);
        posts++;
        usleep(100 * 1000);
    }
    double c2 = cpu_s(pid);
    long k2 = total_wakeups(w, n);
    printf("%d watchers, a post every 100 ms (%d posts): tierd CPU %.1f%% of a core, %ld wake-ups "
           "(%.0f/s)\n",
           n, posts, 100.0 * (c2 - c1) / seconds, k2 - k1, (double)(k2 - k1) / seconds);
    printf("tierd RSS %ld MiB before the watchers, %ld MiB after %ld wake-ups\n", rss0 / 1024,
           rss_kib(pid) / 1024, k2);
    for (int i = 0; i < n; i++)
        atomic_store(&w[i].stop, true);
    post(c, 2);
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        tier_client_close(w[i].c);
    }
    tier_client_close(c);
    free(w);
    free(th);
}

int main(int argc, char **argv)
{
    int changes = 200, watchers = 100, pid = 0, seconds = 10;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--pid") == 0)
            pid = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--changes") == 0)
            changes = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--watchers") == 0)
            watchers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--gap-ms") == 0)
            gap_ms = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(argv[i + 1]);
    }
    if (url == NULL || changes < 1 || watchers < 1 || seconds < 1) {
        fprintf(stderr, "usage: bench_watch --url URL [--pid TIERD_PID] [--changes N] "
                        "[--watchers N] [--seconds S]\n");
        return 2;
    }
    /* A service of this run's own: its list starts empty. */
    snprintf(service, sizeof(service), "watchbench%lld", (long long)(tier_now_ms() % 1000000000));
    latency(changes);
    if (pid > 0)
        many(watchers, pid, seconds);
    else
        printf("(no --pid: the many-watchers part is skipped)\n");
    return 0;
}
