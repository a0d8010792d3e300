/*
 * tierctl_policy_parse.c -- the arguments of `tierctl policy set` and
 * `tierctl plan` (tierctl_policy.h): durations, sizes, level rules,
 * budgets, the flags form of a Policy and a Policy as JSON.
 *
 * Strict on purpose: a policy moves files, so "7x", "1.5h" or a size that
 * does not fit int64 is an error naming the argument, not a guess.  Range
 * checks that need the level table are tierd's (SetPolicy validates the
 * whole policy); the ones here only keep values inside their proto types.
 */
#include "tierctl_policy.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_rpc_json.h"

static bool fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

/* Leading digits (at least one) as int64; *end after them.  False on none
 * or overflow.  Not strtoll: it takes signs, spaces and "0x". */
static bool digits(const char *s, const char **end, int64_t *out)
{
    int64_t v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
            return false;
    *end = p;
    *out = v;
    return p != s;
}

/* digits then at most one unit character from units (its factor in mul). */
static bool scaled(const char *s, const char *units, const int64_t *mul, int64_t *out)
{
    const char *end, *u;
    int64_t v, f = 1;

    if (!digits(s, &end, &v))
        return false;
    if (*end != '\0') {
        if (end[1] != '\0' || (u = strchr(units, *end)) == NULL)
            return false;
        f = mul[u - units];
    }
    return !__builtin_mul_overflow(v, f, out);
}

bool tierctl_duration(const char *s, int64_t *out)
{
    static const int64_t mul[] = {1, 60, 3600, 86400};
    return scaled(s, "smhd", mul, out);
}

bool tierctl_size(const char *s, int64_t *out)
{
    static const int64_t mul[] = {1LL << 10, 1LL << 20, 1LL << 30, 1LL << 40,
                                  1LL << 10, 1LL << 20, 1LL << 30, 1LL << 40};
    return scaled(s, "KMGTkmgt", mul, out);
}

const char *tierctl_fmt_duration(int64_t s, char *buf, size_t len)
{
    if (s != 0 && s % 86400 == 0)
        snprintf(buf, len, "%lldd", (long long)(s / 86400));
    else if (s != 0 && s % 3600 == 0)
        snprintf(buf, len, "%lldh", (long long)(s / 3600));
    else if (s != 0 && s % 60 == 0)
        snprintf(buf, len, "%lldm", (long long)(s / 60));
    else
        snprintf(buf, len, "%llds", (long long)s);
    return s == 0 ? (snprintf(buf, len, "0"), buf) : buf;
}

const char *tierctl_fmt_size(int64_t b, char *buf, size_t len)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0; /* b >= 1024^(u+1): shown in unit[u] */

    if (b < 0)
        return snprintf(buf, len, "-"), buf;
    if (b < 1024)
        return snprintf(buf, len, "%lld B", (long long)b), buf;
    while (u < 5 && (b >> (10 * (u + 2))) > 0)
        u++;
    int shift = 10 * (u + 1);
    if ((b & ((1LL << shift) - 1)) == 0)
        snprintf(buf, len, "%lld %s", (long long)(b >> shift), unit[u]);
    else
        snprintf(buf, len, "%.1f %s", (double)b / (double)(1LL << shift), unit[u]);
    return buf;
}

/* A level name into dst (at most TIERCTL_POLICY_NAME_MAX bytes); "" ok
 * when any_ok ("*" too: both mean any level). */
static bool level_name(const char *s, size_t n, bool any_ok, char *dst, const char *what, char *err,
                       size_t errlen)
{
    if (any_ok && n == 1 && s[0] == '*')
        n = 0;
    if (n == 0 && !any_ok)
        return fail(err, errlen, "%s: a level name is needed", what);
    if (n > TIERCTL_POLICY_NAME_MAX)
        return fail(err, errlen, "%s: level name longer than %d bytes", what,
                    TIERCTL_POLICY_NAME_MAX);
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

/* A signed integer key value ("-1" allowed: tier.proto's "derive it"). */
static bool key_int(const char *v, int64_t *out)
{
    int64_t x;
    const char *end;
    bool neg = v[0] == '-';

    if (!digits(v + neg, &end, &x) || *end != '\0')
        return false;
    *out = neg ? -x : x;
    return true;
}

/* "k=v:k=v..." (what follows the name): each key one of keys[] (at most
 * 8), at most once -- a key given twice is an error: which was meant? --
 * and fn(dst, key index, value) for each. */
typedef bool (*kv_fn)(void *dst, int key, const char *val, char *err, size_t errlen);

static bool each_kv(const char *s, const char *what, const char *const *keys, kv_fn fn, void *dst,
                    char *err, size_t errlen)
{
    char buf[256], list[128] = "";
    unsigned seen = 0;

    for (int k = 0; keys[k] != NULL; k++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", k ? ", " : "", keys[k]);
    while (*s != '\0') {
        const char *next = strchr(s, ':');
        size_t n = next ? (size_t)(next - s) : strlen(s);
        char *eq;
        int k = 0;
        if (n >= sizeof(buf))
            return fail(err, errlen, "%s: \"%.40s...\" is too long", what, s);
        memcpy(buf, s, n);
        buf[n] = '\0';
        if ((eq = strchr(buf, '=')) == NULL || eq == buf)
            return fail(err, errlen, "%s: \"%s\" is not KEY=VALUE (keys: %s)", what, buf, list);
        *eq = '\0';
        while (keys[k] != NULL && strcmp(keys[k], buf) != 0)
            k++;
        if (keys[k] == NULL)
            return fail(err, errlen, "%s: unknown key \"%s\" (keys: %s)", what, buf, list);
        if (seen & (1u << k))
            return fail(err, errlen, "%s: %s given twice", what, buf);
        seen |= 1u << k;
        if (!fn(dst, k, eq + 1, err, errlen))
            return false;
        s = next ? next + 1 : s + n;
    }
    return true;
}

static const char *const rule_keys[] = {"min_views", "demote_below", "capacity", NULL};

static bool rule_kv(void *dst, int key, const char *v, char *err, size_t errlen)
{
    Tier__LevelRule *r = dst;
    int64_t *n = key == 0 ? &r->min_views : &r->demote_below;

    if (key == 2) {
        if (!tierctl_size(v, &r->capacity_bytes))
            return fail(err, errlen,
                        "--level: capacity: a size, digits with K/M/G/T (binary), e.g. 10G "
                        "(got \"%s\")",
                        v);
    } else if (!key_int(v, n) || *n < -1) {
        return fail(err, errlen, "--level: %s: a count >= 0, or -1 (got \"%s\")", rule_keys[key],
                    v);
    }
    return true;
}

bool tierctl_level_rule(const char *s, Tier__LevelRule *r, char *name, char *err, size_t errlen)
{
    const char *colon = strchr(s, ':');

    tier__level_rule__init(r);
    r->min_views = -1; /* not given: tier.proto's defaults, not 0 */
    r->demote_below = -1;
    if (!level_name(s, colon ? (size_t)(colon - s) : strlen(s), false, name, "--level", err,
                    errlen))
        return false;
    r->level = name;
    return each_kv(colon ? colon + 1 : "", "--level", rule_keys, rule_kv, r, err, errlen);
}

static const char *const budget_keys[] = {"files", "bytes", NULL};

/* files=N (a rate: decimals allowed, finite, >= 0) or bytes=SIZE. */
static bool budget_kv(void *dst, int key, const char *v, char *err, size_t errlen)
{
    Tier__MoveBudget *b = dst;
    int64_t n;
    char *end;

    if (key == 1) {
        if (!tierctl_size(v, &n))
            return fail(err, errlen,
                        "--budget: bytes: a size per second, digits with K/M/G/T (binary), e.g. "
                        "100M (got \"%s\")",
                        v);
        b->bytes_per_s = (double)n;
        return true;
    }
    errno = 0;
    b->files_per_s = strtod(v, &end);
    /* strtod takes " 5", "-5", "inf", "0x5": a rate is digits first. */
    if (errno != 0 || end == v || *end != '\0' || !(v[0] >= '0' && v[0] <= '9') ||
        !isfinite(b->files_per_s))
        return fail(err, errlen, "--budget: files: moves per second, >= 0 (got \"%s\")", v);
    return true;
}

bool tierctl_budget(const char *s, Tier__MoveBudget *b, char *from, char *to, char *err,
                    size_t errlen)
{
    const char *gt = strchr(s, '>');
    const char *colon = gt ? strchr(gt, ':') : NULL;

    tier__move_budget__init(b);
    if (gt == NULL)
        return fail(err, errlen, "--budget: FROM>TO:files=N:bytes=SIZE (got \"%s\")", s);
    if (!level_name(s, (size_t)(gt - s), true, from, "--budget FROM", err, errlen) ||
        !level_name(gt + 1, colon ? (size_t)(colon - gt - 1) : strlen(gt + 1), true, to,
                    "--budget TO", err, errlen))
        return false;
    b->from = from;
    b->to = to;
    /* A budget limiting nothing is a typo more often than a wish. */
    if (colon == NULL || colon[1] == '\0')
        return fail(err, errlen, "--budget %s: give files=N, bytes=SIZE or both", s);
    return each_kv(colon + 1, "--budget", budget_keys, budget_kv, b, err, errlen);
}

/* ------------------------------------------------------------ policy set */

enum {
    F_MODE,
    F_WINDOW,
    F_BUCKET,
    F_DEMOTE,
    F_HYST,
    F_DWELL,
    F_INTERVAL,
    F_INFLIGHT,
    F_LEVEL,
    F_BUDGET,
    F_NFLAGS
};
static const char *const set_flags[F_NFLAGS] = {
    "--mode",  "--window",   "--bucket",       "--demote-after", "--hysteresis",
    "--dwell", "--interval", "--max-inflight", "--level",        "--budget"};

/* The flag arg names ("--window" or "--window=7d"), its inline value. */
static int set_flag_of(const char *arg, const char **inline_val)
{
    for (int f = 0; f < F_NFLAGS; f++) {
        size_t n = strlen(set_flags[f]);
        if (strncmp(arg, set_flags[f], n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
            *inline_val = arg[n] == '=' ? arg + n + 1 : NULL;
            return f;
        }
    }
    return -1;
}

/* tier_policy_window_defaults (policy/), which docs/POLICY.md documents. */
static void window_defaults(Tier__Policy *p)
{
    p->mode = (char *)"window";
    p->window_s = 7 * 86400;
    p->bucket_s = 3600;
    p->hysteresis_pct = 20;
    p->dwell_s = 3600;
    p->plan_interval_s = 10;
    p->max_inflight = 1000;
}

static bool duration_flag(const char *flag, const char *v, int64_t *out, char *err, size_t errlen)
{
    if (!tierctl_duration(v, out))
        return fail(err, errlen, "%s: a duration, digits with s, m, h or d, e.g. 7d (got \"%s\")",
                    flag, v);
    return true;
}

static bool int_flag(const char *flag, const char *v, int64_t lo, int64_t hi, int32_t *out,
                     char *err, size_t errlen)
{
    int64_t n;
    const char *end;
    if (!digits(v, &end, &n) || *end != '\0' || n < lo || n > hi)
        return fail(err, errlen, "%s: an integer %lld..%lld (got \"%s\")", flag, (long long)lo,
                    (long long)hi, v);
    *out = (int32_t)n;
    return true;
}

/* One flag's value into a. */
static bool set_flag(tierctl_policy_args *a, int f, const char *v, char *err, size_t errlen)
{
    Tier__Policy *p = &a->p;
    size_t i;

    switch (f) {
    case F_MODE:
        if (strcmp(v, "seed") != 0 && strcmp(v, "window") != 0)
            return fail(err, errlen, "--mode: seed or window (got \"%s\")", v);
        p->mode = (char *)(strcmp(v, "seed") == 0 ? "seed" : "window");
        return true;
    case F_WINDOW:
        return duration_flag(set_flags[f], v, &p->window_s, err, errlen);
    case F_BUCKET:
        return duration_flag(set_flags[f], v, &p->bucket_s, err, errlen);
    case F_DEMOTE:
        return duration_flag(set_flags[f], v, &p->demote_after_s, err, errlen);
    case F_DWELL:
        return duration_flag(set_flags[f], v, &p->dwell_s, err, errlen);
    case F_INTERVAL:
        return duration_flag(set_flags[f], v, &p->plan_interval_s, err, errlen);
    case F_HYST:
        return int_flag(set_flags[f], v, 0, 99, &p->hysteresis_pct, err, errlen);
    case F_INFLIGHT:
        return int_flag(set_flags[f], v, 1, 100000, &p->max_inflight, err, errlen);
    case F_LEVEL:
        if ((i = p->n_levels) == TIERCTL_POLICY_RULES_MAX)
            return fail(err, errlen, "--level: at most %d", TIERCTL_POLICY_RULES_MAX);
        a->rulep[i] = &a->rules[i];
        p->n_levels++;
        return tierctl_level_rule(v, &a->rules[i], a->rule_names[i], err, errlen);
    default: /* F_BUDGET */
        if ((i = p->n_budgets) == TIERCTL_POLICY_BUDGETS_MAX)
            return fail(err, errlen, "--budget: at most %d", TIERCTL_POLICY_BUDGETS_MAX);
        a->budgetp[i] = &a->budgets[i];
        p->n_budgets++;
        return tierctl_budget(v, &a->budgets[i], a->budget_from[i], a->budget_to[i], err, errlen);
    }
}

static void args_init(tierctl_policy_args *a)
{
    memset(a, 0, sizeof(*a));
    tier__policy__init(&a->p);
    a->p.levels = a->rulep;
    a->p.budgets = a->budgetp;
}

int tierctl_policy_set_args(int argc, char **argv, tierctl_policy_args *a, char *err, size_t errlen)
{
    const char *val[F_NFLAGS] = {0}; /* scalars: the value given */
    bool given = false;              /* any flag but --dry-run */

    args_init(a);
    for (int i = 0; i < argc; i++) {
        const char *iv;
        int f = set_flag_of(argv[i], &iv);
        if (strcmp(argv[i], "--dry-run") == 0) {
            a->dry_run = true;
        } else if (f < 0 && (strncmp(argv[i], "--", 2) == 0 || a->file != NULL)) {
            return fail(err, errlen, "policy set: unexpected \"%s\"", argv[i]), -1;
        } else if (f < 0) {
            a->file = argv[i];
        } else if (iv == NULL && i + 1 >= argc) {
            return fail(err, errlen, "%s needs a value", set_flags[f]), -1;
        } else if (f < F_LEVEL && val[f] != NULL) {
            return fail(err, errlen, "%s given twice", set_flags[f]), -1;
        } else {
            val[f] = iv ? iv : argv[++i];
            given = true;
            if (f >= F_LEVEL && !set_flag(a, f, val[f], err, errlen))
                return -1;
        }
    }
    if (a->file != NULL && given)
        return fail(err, errlen, "policy set: a FILE or flags, not both"), -1;
    if (a->file != NULL)
        return 0;
    if (val[F_MODE] == NULL)
        return fail(err, errlen, "policy set: FILE (JSON, - for stdin) or --mode seed|window"), -1;
    if (!set_flag(a, F_MODE, val[F_MODE], err, errlen))
        return -1;
    if (strcmp(a->p.mode, "seed") == 0) {
        for (int f = F_MODE + 1; f < F_NFLAGS; f++)
            if (val[f] != NULL)
                return fail(err, errlen, "--mode seed takes no other option (got %s)",
                            set_flags[f]),
                       -1;
        return 0;
    }
    window_defaults(&a->p);
    for (int f = F_MODE + 1; f < F_LEVEL; f++)
        if (val[f] != NULL && !set_flag(a, f, val[f], err, errlen))
            return -1;
    return 0;
}

int tierctl_policy_from_json(const char *text, size_t len, Tier__Policy **out, char *err,
                             size_t errlen)
{
    uint8_t *pb = NULL;
    size_t pblen = 0;

    if (tier_rpc_json_to_pb(&tier__policy__descriptor, text, len, NULL, &pb, &pblen, err, errlen) !=
        0) {
        free(pb);
        return -1;
    }
    *out = tier__policy__unpack(NULL, pblen, pb);
    free(pb);
    if (*out == NULL)
        return fail(err, errlen, "the policy does not unpack"), -1;
    return 0;
}
