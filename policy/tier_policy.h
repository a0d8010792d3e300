/*
 * tier_policy.h -- the tiering policy: which level each content belongs on,
 * which moves to make first, and which of them may start now.
 *
 * Pure code: no I/O, no locks, no clock (every call is given `now`).  The
 * same functions run inside tierd (the planner thread, PlanMoves) and in
 * bench_policy, which replays a week of simulated time through them; so
 * what the benchmark scores is the code that runs.
 *
 * Two modes (docs/POLICY.md has the rules with examples):
 *
 *   seed    the seed's rule and today's default: a content belongs on the
 *           level whose [min, max] holds its cumulative view count, and it
 *           moves as soon as a report says so.  No window, capacity,
 *           hysteresis, dwell or budget: a seed policy that sets one is
 *           refused, so nothing that works today changes.
 *
 *   window  a content's score is its views in the last window_s seconds
 *           (kept in buckets of bucket_s, tier_policy_views).  It belongs on
 *           the highest level whose min_views its score reaches; it leaves a
 *           level downwards only when its score falls below that level's
 *           demote_below (hysteresis), or when it has not been viewed for
 *           demote_after_s (then to the bottom level).  It does not move
 *           again within dwell_s of its last move.  A level with a capacity
 *           keeps the contents with the most views per byte; the rest wait
 *           one level down.  Moves are planned by tierd's planner thread
 *           every plan_interval_s and started within the budgets.
 */
#ifndef TIER_POLICY_H
#define TIER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIER_POLICY_LEVELS_MAX 64    /* a level table has at most 64 levels */
#define TIER_POLICY_BUDGETS_MAX 64   /* budgets per policy */
#define TIER_POLICY_BUCKETS_MAX 744  /* window_s / bucket_s: 31 days of hours */
#define TIER_POLICY_NAME_MAX 32      /* level names, as in the level table */
#define TIER_POLICY_DECAY_SCALE 1000 /* decayed scores are in 1/1000 views */

typedef enum { TIER_POLICY_SEED = 0, TIER_POLICY_WINDOW = 1 } tier_policy_mode;

/* Per level (by name; levels the policy does not name take the defaults). */
typedef struct {
    char level[TIER_POLICY_NAME_MAX + 1];
    int64_t min_views;      /* promote onto it at this score; -1: the level table's min */
    int64_t demote_below;   /* leave it below this score; -1: min_views * (100 - h) / 100 */
    int64_t capacity_bytes; /* 0: no limit */
} tier_policy_level_rule;

/* Start-rate limits for moves from level `from` to level `to` ("" = any).
 * Every budget that matches a move must have room for it. */
typedef struct {
    char from[TIER_POLICY_NAME_MAX + 1], to[TIER_POLICY_NAME_MAX + 1];
    double files_per_s; /* 0: no limit */
    double bytes_per_s; /* 0: no limit */
} tier_policy_budget;

typedef struct {
    tier_policy_mode mode;
    int64_t window_s;        /* 60 .. 31 days */
    int64_t bucket_s;        /* 60 .. 86400, divides window_s, <= BUCKETS_MAX buckets */
    int64_t demote_after_s;  /* 0: off */
    int32_t hysteresis_pct;  /* 0 .. 99 */
    int64_t dwell_s;         /* 0: off; at most 31 days */
    int64_t plan_interval_s; /* 1 .. 3600 */
    int32_t max_inflight;    /* jobs the planner keeps started at once, 1 .. 100000 */
    /* 0: off, the flat window.  Else 60 .. window_s: the score weighs each
     * bucket's views by 2^(-age / half_life_s), age = now - the bucket's
     * midpoint (at least 0), and is in 1/TIER_POLICY_DECAY_SCALE views
     * (tier_policy_views_decayed); min_views and demote_below stay in views
     * and are scaled by tier_policy_resolve. */
    int64_t half_life_s;
    size_t nlevels;
    tier_policy_level_rule levels[TIER_POLICY_LEVELS_MAX];
    size_t nbudgets;
    tier_policy_budget budgets[TIER_POLICY_BUDGETS_MAX];
    /* Not a setting: when views began to be counted for this window (tierd:
     * the switch from seed to window, kept across window changes; 0: since
     * always).  Until a whole window has been counted nothing is demoted
     * for a low score, and idle time counts from here at the earliest. */
    int64_t counting_since_ms;
} tier_policy;

/* The seed policy (mode seed, nothing else set). */
void tier_policy_default(tier_policy *p);
/* A window policy with the documented defaults: 7-day window of hourly
 * buckets, 20% hysteresis, 1 h dwell, 10 s plan interval, 1000 in flight. */
void tier_policy_window_defaults(tier_policy *p);

/* One level of the table the policy is applied to, resolved: thresholds and
 * capacity filled in from the policy (tier_policy_resolve). */
typedef struct {
    const char *name;
    int64_t min, max;       /* the level table's range (seed mode) */
    int64_t min_views;      /* window mode: the promotion line, in the score's unit:
                             * views, or 1/TIER_POLICY_DECAY_SCALE views with a
                             * half-life (the rule's views scaled, saturating) */
    int64_t demote_below;   /* window mode: the demotion line (<= min_views), same unit */
    int64_t capacity_bytes; /* 0: none */
} tier_policy_level;

/*
 * Validates p against a level table (names[i], mins[i], maxs[i]; sorted by
 * min, i < n) and fills out[0..n) with the resolved levels.  Returns 0, or
 * -1 with a message in err naming the field.  Nothing is applied by the
 * caller unless this returns 0: a policy is checked whole.
 */
int tier_policy_resolve(const tier_policy *p, const char *const *names, const int64_t *mins,
                        const int64_t *maxs, size_t n, tier_policy_level *out, char *err,
                        size_t errlen);

/* ------------------------------------------------------------ view buckets */

/*
 * A content's views in buckets of bucket_s seconds, the newest `nb`
 * buckets (a ring).  Memory: 16 + 4 * nb bytes.  Counts saturate at
 * UINT32_MAX per bucket.
 */
typedef struct tier_policy_views tier_policy_views;

tier_policy_views *tier_policy_views_alloc(unsigned nb);
void tier_policy_views_free(tier_policy_views *v);
unsigned tier_policy_views_nb(const tier_policy_views *v);
/* Adds views at time t_ms (older than the ring: dropped; newer: the ring
 * advances, forgetting its oldest buckets). */
void tier_policy_views_add(tier_policy_views *v, int64_t bucket_s, int64_t t_ms, int64_t views);
/* Views in the buckets that overlap (now - window_s, now]. */
int64_t tier_policy_views_sum(const tier_policy_views *v, int64_t bucket_s, int64_t now_ms,
                              int64_t window_s);

/* The weights of a decayed score at one instant: computed once per plan
 * (tier_policy_decay_init), then used for every content. */
typedef struct {
    int64_t bucket_s, kn;              /* kn: the bucket that holds now */
    unsigned nwin;                     /* buckets in the window */
    double w[TIER_POLICY_BUCKETS_MAX]; /* w[j]: bucket kn - j, times DECAY_SCALE */
} tier_policy_decay;

/* Weights for the buckets that overlap (now - window_s, now]: bucket k
 * weighs 2^(-max(0, now - its midpoint) / half_life_s).  half_life_s <= 0:
 * every weight 1 (the flat window, in 1/DECAY_SCALE views). */
void tier_policy_decay_init(tier_policy_decay *d, int64_t bucket_s, int64_t now_ms,
                            int64_t window_s, int64_t half_life_s);
/* The decayed score: sum of views * weight over the window's buckets, in
 * 1/TIER_POLICY_DECAY_SCALE views, rounded down.  At most 744 * UINT32_MAX
 * * 1000 (< 2^62): no overflow. */
int64_t tier_policy_views_decayed(const tier_policy_views *v, const tier_policy_decay *d);
/* Calls fn(arg, bucket_start_s, views) for every non-empty bucket. */
void tier_policy_views_each(const tier_policy_views *v, int64_t bucket_s,
                            void (*fn)(void *arg, int64_t start_s, int64_t views), void *arg);

/* ------------------------------------------------------------ planning */

/* One content as the planner sees it. */
typedef struct {
    int64_t cid;
    int level;              /* index into the levels; -1: on none (left alone) */
    int moving_to;          /* a job is active towards this index; -1: none */
    int64_t size;           /* bytes; < 0 unknown (counted as 0) */
    int64_t score;          /* seed: the count; window: views in the window, or with a
                             * half-life the decayed score (1/1000 views); < 0 unknown
                             * (seed: never reported since start -- left alone) */
    int64_t last_access_ms; /* 0: never viewed */
    int64_t since_ms;       /* when it reached its level (its last move) */
    int64_t born_ms;        /* when it was added (AddContent); 0: unknown */
} tier_policy_item;

typedef enum {
    TIER_POLICY_RULE_RANGE,    /* its score's level (with hysteresis) */
    TIER_POLICY_RULE_IDLE,     /* not viewed for demote_after_s */
    TIER_POLICY_RULE_CAPACITY, /* its level is full of more popular contents */
} tier_policy_rule;

const char *tier_policy_rule_name(tier_policy_rule r);

/*
 * The score the rules use.  Under a flat window (half_life_s 0) a content
 * seen for less than a window -- added, or counted since, less than
 * window_s ago -- has its views scaled to a whole window: views * window_s
 * / seen, seen at least one bucket.  Its views so far are a rate; without
 * the scaling a new content's burst would trail older contents' full
 * windows until a window had passed (docs/POLICY.md; BENCHMARKS 9c).
 * Otherwise the item's score.
 */
int64_t tier_policy_score(const tier_policy *p, const tier_policy_item *it, int64_t now_ms);

/* Where one item belongs by its own numbers: its score's level with
 * hysteresis, or the bottom when idle -- no dwell, no capacity (those need
 * every item: tier_policy_plan).  An item on no level (-1) stays there. */
int tier_policy_want(const tier_policy *p, const tier_policy_level *lv, size_t nlv,
                     const tier_policy_item *it, int64_t now_ms, tier_policy_rule *rule);

typedef struct {
    int64_t cid;
    int from, to; /* level indexes */
    tier_policy_rule rule;
    int64_t score, size;
    int64_t gap; /* how far the score is past the line that fired (seconds idle for IDLE) */
} tier_policy_move;

typedef struct {
    /* Per level: the files on it or on their way to it (a moving file
     * counts at both ends until its move is done: that is the room it
     * takes), and what would be on it once every planned move is done. */
    int64_t files_now[TIER_POLICY_LEVELS_MAX], bytes_now[TIER_POLICY_LEVELS_MAX];
    int64_t files_after[TIER_POLICY_LEVELS_MAX], bytes_after[TIER_POLICY_LEVELS_MAX];
    int64_t held_dwell;    /* contents whose move waits for its dwell time */
    int64_t held_capacity; /* contents kept below their level by capacity */
} tier_policy_summary;

/*
 * Plans every move: fills moves[0..*nmoves) (room for n) in the order they
 * should start -- promotions before demotions, larger gaps first, then cid
 * -- and sum.  Items with a job stay where the job takes them.  Reorders
 * items.  Returns 0, or -1 when out of memory.
 */
int tier_policy_plan(const tier_policy *p, const tier_policy_level *lv, size_t nlv,
                     tier_policy_item *items, size_t n, int64_t now_ms, tier_policy_move *moves,
                     size_t *nmoves, tier_policy_summary *sum);

/* ------------------------------------------------------------ starting moves */

/*
 * The start-rate state of a policy's budgets: a token bucket per budget,
 * holding up to one second of its rate (or one move, if larger), allowed to
 * go into debt by one move so a file bigger than a second's bytes still
 * starts.
 */
typedef struct {
    double files[TIER_POLICY_BUDGETS_MAX], bytes[TIER_POLICY_BUDGETS_MAX];
    int64_t at_ms;
    bool primed;
} tier_policy_gate;

/* Full buckets at the first start; again after the policy changes (the
 * buckets are by budget index). */
void tier_policy_gate_init(tier_policy_gate *g, int64_t now_ms);

typedef struct {
    int64_t started, throttled, waiting_capacity; /* of the moves offered */
    int64_t throttled_bytes;
} tier_policy_start_stats;

/*
 * Picks which of moves[0..n) (in plan order) may start now: within every
 * matching budget, at most `room` of them, and only where the target
 * level's bytes_now plus the move stays within its capacity (a level never
 * goes over its capacity because of tier's own moves; a move out of a full
 * level frees its room only once done).  A move with from == to (a level
 * migration: same level, new directory) is never held by capacity and
 * adds nothing to bytes_now; budgets matching from=to=that level (or ""
 * wildcards) do hold it.  Sets start[i]; updates bytes_now
 * (sum) for what starts.  Returns how many start.
 */
size_t tier_policy_start(const tier_policy *p, const tier_policy_level *lv, size_t nlv,
                         tier_policy_gate *g, int64_t now_ms, const tier_policy_move *moves,
                         size_t n, size_t room, tier_policy_summary *sum, bool *start,
                         tier_policy_start_stats *st);

#endif
