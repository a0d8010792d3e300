/*
 * tier_options.c -- see tier_options.h.  The strict value parser, the three
 * sources, and the generated help.
 *
 * Units: an option's unit is part of its name (lease_ms, done_retention_s,
 * retention_min, rpc_dedupe_mb) and its value is a plain whole number in
 * that unit.  A unit suffix is refused, with the number to write instead:
 * "lease_ms = 30s" -> "lease_ms is in milliseconds: write 30000".  Why not
 * accept "30s": every existing file, script and flag already writes plain
 * numbers under these names; accepting suffixes too would make "30" and
 * "30s" both valid and mean different things to a reader skimming a file,
 * while refusing them costs one edit, told exactly.
 *
 * The file (libinih): inih reads lines of at most 199 bytes and would
 * split a longer one silently into two, and it treats an indented line as
 * the continuation of the previous value, and " ;" as the start of an
 * inline comment.  Our reader (read_line) hands inih one line at a time, so
 * it refuses a longer line, strips leading blanks (every line stands alone,
 * as before inih) and refuses a ';' after a blank in a value rather than
 * cutting a password short.  It also counts lines for the messages (the
 * handler gets no line number in Debian's build).
 */
#include "tier_options.h"

#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where a value came from: what is said in messages, and per option
 * whether it was set in this source (1) or set to true (2). */
typedef struct {
    const tier_opts *t;
    void *cfg;
    const char *path; /* file only */
    int line;
    unsigned char seen[TIER_OPTS_MAX];
    char err; /* a message was printed: stop */
} layer;

static const char *unit_name(tier_opt_type type)
{
    switch (type) {
    case TIER_OPT_MS:
        return "milliseconds";
    case TIER_OPT_S:
        return "seconds";
    case TIER_OPT_MIN:
        return "minutes";
    case TIER_OPT_MIB:
        return "MiB";
    default:
        return NULL;
    }
}

static uint64_t unit_factor(tier_opt_type type)
{
    switch (type) {
    case TIER_OPT_S:
        return 1000;
    case TIER_OPT_MIN:
        return 60000;
    case TIER_OPT_MIB:
        return 1u << 20;
    default:
        return 1;
    }
}

/* Known suffixes, in the option's base (milliseconds or bytes). */
typedef struct {
    const char *s;
    uint64_t mult;
} suffix;

static const suffix time_suffixes[] = {
    {"ms", 1},      {"s", 1000},    {"sec", 1000},   {"m", 60000},
    {"min", 60000}, {"h", 3600000}, {"d", 86400000}, {NULL, 0},
};
static const suffix size_suffixes[] = {
    {"b", 1},         {"k", 1024},       {"kb", 1024},      {"kib", 1024},
    {"m", 1u << 20},  {"mb", 1u << 20},  {"mib", 1u << 20}, {"g", 1u << 30},
    {"gb", 1u << 30}, {"gib", 1u << 30}, {NULL, 0},
};

/* Whole decimal digits only: 0, -1 when s is not a number (*end: the
 * first non-digit), -2 when it does not fit 64 bits. */
static int parse_u64(const char *s, uint64_t *out, const char **end)
{
    uint64_t v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *end = p;
    *out = v;
    return p == s || *p != '\0' ? -1 : 0;
}

static void fail(const layer *l, const tier_opt *o, const char *name, const char *v,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "tierd: f.conf:3: threads = "16x": <reason>" (file), "TIER_X="v": ..."
 * (environment), "--x "v": ..." (flag), "default "v": ..." (a bug). */
static void fail(const layer *l, const tier_opt *o, const char *name, const char *v,
                 const char *fmt, ...)
{
    va_list ap;
    char shown[81];
    size_t i = 0;

    /* Hostile text goes to a terminal: printable bytes only, and short. */
    if (o->flags & TIER_OPT_SECRET)
        snprintf(shown, sizeof(shown), "(not shown)");
    else {
        for (; v[i] != '\0' && i < sizeof(shown) - 1; i++)
            shown[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
        shown[i] = '\0';
    }

    if (l->path != NULL)
        fprintf(stderr, "%s: %s:%d: %s = \"%s\": ", l->t->prog, l->path, l->line, name, shown);
    else if (name[0] == '-')
        fprintf(stderr, "%s: %s \"%s\": ", l->t->prog, name, shown);
    else
        fprintf(stderr, "%s: %s=\"%s\": ", l->t->prog, name, shown);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* What a unit suffix should have been: "write 30000". */
static int refuse_suffix(const layer *l, const tier_opt *o, const char *name, const char *v,
                         uint64_t n, const char *sfx)
{
    const suffix *tab = o->type == TIER_OPT_MIB ? size_suffixes : time_suffixes;
    uint64_t base = unit_factor(o->type);

    while (*sfx == ' ')
        sfx++;
    for (; tab->s != NULL; tab++) {
        if (strcasecmp(sfx, tab->s) != 0)
            continue;
        if (n <= UINT64_MAX / tab->mult && (n * tab->mult) % base == 0) {
            fail(l, o, name, v, "%s is in %s: write %llu", o->key ? o->key : o->flag,
                 unit_name(o->type), (unsigned long long)(n * tab->mult / base));
            return -1;
        }
        break;
    }
    fail(l, o, name, v, "%s is in %s: write a whole number of them, no unit",
         o->key ? o->key : o->flag, unit_name(o->type));
    return -1;
}

static void store_uint(void *cfg, const tier_opt *o, uint64_t n)
{
    char *p = (char *)cfg + o->off;

    if (o->size == 8) {
        uint64_t x = n;
        memcpy(p, &x, 8);
    } else if (o->size == 4) {
        uint32_t x = (uint32_t)n;
        memcpy(p, &x, 4);
    } else if (o->size == 2) {
        uint16_t x = (uint16_t)n;
        memcpy(p, &x, 2);
    } else {
        uint8_t x = (uint8_t)n;
        memcpy(p, &x, 1);
    }
}

static int set_number(const layer *l, const tier_opt *o, const char *name, const char *v)
{
    const char *key = o->key ? o->key : o->flag, *end;
    const char *unit = unit_name(o->type);
    uint64_t n;
    int rv = parse_u64(v, &n, &end);

    if (rv == -1 && unit != NULL && end != v)
        return refuse_suffix(l, o, name, v, n, end);
    if (rv == -1) {
        fail(l, o, name, v, "%s is a whole number%s%s in %llu..%llu", key, unit ? " of " : "",
             unit ? unit : "", (unsigned long long)o->min, (unsigned long long)o->max);
        return -1;
    }
    if (rv == -2 || n < o->min || n > o->max) {
        fail(l, o, name, v, "%s must be in %llu..%llu%s%s", key, (unsigned long long)o->min,
             (unsigned long long)o->max, unit ? " " : "", unit ? unit : "");
        return -1;
    }
    store_uint(l->cfg, o, n);
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no",
                                                                                "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

static int set_string(const layer *l, const tier_opt *o, const char *name, const char *v,
                      size_t off, size_t size, size_t len)
{
    if (len >= size) {
        fail(l, o, name, v, "%s is at most %zu bytes", o->key ? o->key : o->flag, size - 1);
        return -1;
    }
    memcpy((char *)l->cfg + off, v, len);
    ((char *)l->cfg)[off + len] = '\0';
    return 0;
}

/* TIER_OPT_REPEAT: " v" after the value a source gave already. */
static int add_word(const layer *l, const tier_opt *o, const char *name, const char *v)
{
    char *dst = (char *)l->cfg + o->off;
    size_t have = strlen(dst), len = strlen(v);

    if (have + 1 + len >= o->size) {
        fail(l, o, name, v, "%s: at most %zu bytes in all", o->key ? o->key : o->flag, o->size - 1);
        return -1;
    }
    dst[have] = ' ';
    memcpy(dst + have + 1, v, len + 1);
    return 0;
}

static int set_url(const layer *l, const tier_opt *o, const char *name, const char *v)
{
    const char *sep = strstr(v, "://");

    if (sep == NULL || sep == v || sep[3] == '\0') {
        fail(l, o, name, v, "%s is an address such as tcp://127.0.0.1:7400 or ipc:///path",
             o->key ? o->key : o->flag);
        return -1;
    }
    return set_string(l, o, name, v, o->off, o->size, strlen(v));
}

/* HOST[:PORT]; the port is the text after the last ':'. */
static int set_hostport(const layer *l, const tier_opt *o, const char *name, const char *v)
{
    const char *colon = strrchr(v, ':'), *end;
    uint64_t port;
    int port_i;

    if (colon == NULL)
        return set_string(l, o, name, v, o->off, o->size, strlen(v));
    if (colon == v || parse_u64(colon + 1, &port, &end) != 0 || port < 1 || port > 65535) {
        fail(l, o, name, v, "%s is HOST:PORT, the port a whole number in 1..65535",
             o->key ? o->key : o->flag);
        return -1;
    }
    if (set_string(l, o, name, v, o->off, o->size, (size_t)(colon - v)) != 0)
        return -1;
    port_i = (int)port;
    memcpy((char *)l->cfg + o->off2, &port_i, sizeof(port_i));
    return 0;
}

/* Appends each ':'-separated absolute path of v. */
static int add_list(const layer *l, const tier_opt *o, const char *name, const char *v)
{
    unsigned count;
    char *base = (char *)l->cfg + o->off;

    memcpy(&count, (char *)l->cfg + o->off2, sizeof(count));
    for (const char *p = v; *p != '\0';) {
        size_t n = strcspn(p, ":");
        if (n > 0) {
            if (p[0] != '/' || n >= o->size || count >= o->max) {
                fail(l, o, name, v, "%s: absolute paths under %zu bytes, at most %llu of them",
                     o->key ? o->key : o->flag, o->size, (unsigned long long)o->max);
                return -1;
            }
            memcpy(base + (size_t)count * o->size, p, n);
            base[(size_t)count * o->size + n] = '\0';
            count++;
        }
        p += n;
        if (*p == ':')
            p++;
    }
    memcpy((char *)l->cfg + o->off2, &count, sizeof(count));
    return 0;
}

/* Stores one value: the heart of every source. */
static int set_value(layer *l, const tier_opt *o, const char *name, const char *v)
{
    size_t i = (size_t)(o - l->t->opts);
    bool b = false;
    int rv = 0;

    switch (o->type) {
    case TIER_OPT_STRING:
    case TIER_OPT_PATH:
        if ((o->flags & TIER_OPT_REPEAT) && l->seen[i])
            rv = add_word(l, o, name, v);
        else
            rv = set_string(l, o, name, v, o->off, o->size, strlen(v));
        break;
    case TIER_OPT_URL:
        rv = set_url(l, o, name, v);
        break;
    case TIER_OPT_BOOL:
        if (parse_bool(v, &b) != 0) {
            fail(l, o, name, v, "%s is one of 1, 0, true, false, yes, no, on, off",
                 o->key ? o->key : o->flag);
            return -1;
        }
        *(bool *)((char *)l->cfg + o->off) = b;
        break;
    case TIER_OPT_INT:
    case TIER_OPT_MS:
    case TIER_OPT_S:
    case TIER_OPT_MIN:
    case TIER_OPT_MIB:
        rv = set_number(l, o, name, v);
        break;
    case TIER_OPT_LIST:
        /* The first value of a source replaces the lower sources' list;
         * more in the same source add to it. */
        if (!l->seen[i]) {
            unsigned zero = 0;
            memcpy((char *)l->cfg + o->off2, &zero, sizeof(zero));
        }
        rv = add_list(l, o, name, v);
        break;
    case TIER_OPT_HOSTPORT:
        rv = set_hostport(l, o, name, v);
        break;
    case TIER_OPT_ACTION:
        return 0;
    }
    if (rv != 0)
        return -1;
    l->seen[i] = (o->type == TIER_OPT_BOOL && b) ? 2 : 1;
    if (o->after != NULL)
        o->after(l->cfg);
    return 0;
}

const tier_opt *tier_opts_find(const tier_opts *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->opts[i].key != NULL && strcmp(t->opts[i].key, key) == 0)
            return &t->opts[i];
    return NULL;
}

static bool is_set(const layer *l, const tier_opt *o)
{
    unsigned char s = l->seen[o - l->t->opts];
    return o->type == TIER_OPT_BOOL ? s == 2 : s != 0;
}

/* Two options that exclude each other, both given in one source. */
static int check_excludes(const layer *l, int how)
{
    for (size_t i = 0; i < l->t->n; i++) {
        const tier_opt *o = &l->t->opts[i], *e;
        if (o->excludes == NULL || (e = tier_opts_find(l->t, o->excludes)) == NULL)
            continue;
        if (!is_set(l, o) || !is_set(l, e))
            continue;
        if (how == 'f')
            fprintf(stderr, "%s: --%s and --%s exclude each other\n", l->t->prog, o->flag, e->flag);
        else if (how == 'e')
            fprintf(stderr, "%s: %s and %s exclude each other\n", l->t->prog, o->env, e->env);
        else
            fprintf(stderr, "%s: %s: %s and %s exclude each other\n", l->t->prog, l->path, o->key,
                    e->key);
        return -1;
    }
    return 0;
}

static void layer_init(layer *l, const tier_opts *t, void *cfg, const char *path)
{
    memset(l, 0, sizeof(*l));
    l->t = t;
    l->cfg = cfg;
    l->path = path;
}

int tier_opts_set(const tier_opts *t, void *cfg, const tier_opt *o, const char *value,
                  const char *where)
{
    layer l;

    layer_init(&l, t, cfg, NULL);
    return set_value(&l, o, where, value);
}

int tier_opts_defaults(const tier_opts *t, void *cfg)
{
    layer l;

    if (t->n > TIER_OPTS_MAX)
        return -1;
    layer_init(&l, t, cfg, NULL);
    for (size_t i = 0; i < t->n; i++) {
        const tier_opt *o = &t->opts[i];
        if (o->def != NULL && o->type != TIER_OPT_ACTION && !(o->flags & TIER_OPT_ALIAS) &&
            set_value(&l, o, "default", o->def) != 0)
            return -1;
    }
    return 0;
}

/* ---- the file */

typedef struct {
    FILE *f;
    layer *l;
} reader;

/* inih's reader: one whole line, its leading blanks removed; a line too
 * long for inih, or a ';' after a blank (inih would cut the value there),
 * ends the parse with a message. */
static char *read_line(char *buf, int num, void *stream)
{
    reader *r = stream;
    char line[TIER_OPTS_LINE_MAX + 3];
    size_t len;
    const char *p, *eq;

    if (r->l->err || fgets(line, sizeof(line), r->f) == NULL)
        return NULL;
    r->l->line++;
    len = strlen(line);
    if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
        fprintf(stderr, "%s: %s:%d: line longer than %d bytes\n", r->l->t->prog, r->l->path,
                r->l->line, TIER_OPTS_LINE_MAX);
        r->l->err = 1;
        return NULL;
    }
    for (p = line; *p == ' ' || *p == '\t'; p++)
        ;
    eq = strpbrk(p, "=:"); /* inih takes either as the separator */
    if (*p != '#' && *p != ';' && eq != NULL && (strstr(eq, " ;") || strstr(eq, "\t;"))) {
        fprintf(stderr,
                "%s: %s:%d: a ';' after a blank would start a comment here: put comments on "
                "their own line\n",
                r->l->t->prog, r->l->path, r->l->line);
        r->l->err = 1;
        return NULL;
    }
    if ((size_t)num <= strlen(p)) /* inih's buffer is smaller than ours: a bug */
        return NULL;
    memcpy(buf, p, strlen(p) + 1);
    return buf;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    layer *l = user;
    const tier_opt *o;

    if (l->err)
        return 0;
    if (section[0] != '\0' && (l->t->section == NULL || strcmp(section, l->t->section) != 0)) {
        fprintf(stderr, "%s: %s:%d: unknown section [%s] (none, or [%s])\n", l->t->prog, l->path,
                l->line, section, l->t->section ? l->t->section : "");
        l->err = 1;
        return 0;
    }
    if ((o = tier_opts_find(l->t, name)) == NULL || o->type == TIER_OPT_ACTION) {
        fprintf(stderr, "%s: %s:%d: unknown key \"%s\"\n", l->t->prog, l->path, l->line, name);
        l->err = 1;
        return 0;
    }
    if (set_value(l, o, name, value) != 0) {
        l->err = 1;
        return 0;
    }
    return 1;
}

int tier_opts_load_file(const tier_opts *t, void *cfg, const char *path)
{
    layer l;
    reader r;
    int rv;

    layer_init(&l, t, cfg, path);
    if ((r.f = fopen(path, "r")) == NULL) {
        fprintf(stderr, "%s: cannot read config file %s: %s\n", t->prog, path, strerror(errno));
        return -1;
    }
    r.l = &l;
    rv = ini_parse_stream(read_line, &r, on_pair, &l);
    fclose(r.f);
    if (l.err)
        return -1;
    if (rv != 0) {
        fprintf(stderr, "%s: %s:%d: expected key = value\n", t->prog, path, rv > 0 ? rv : l.line);
        return -1;
    }
    return check_excludes(&l, 'c');
}

/* ---- the environment and the command line */

int tier_opts_load_env(const tier_opts *t, void *cfg)
{
    layer l;
    const char *v;

    layer_init(&l, t, cfg, NULL);
    for (size_t i = 0; i < t->n; i++) {
        const tier_opt *o = &t->opts[i];
        if (o->env == NULL || o->type == TIER_OPT_ACTION || (v = getenv(o->env)) == NULL ||
            *v == '\0')
            continue;
        if (set_value(&l, o, o->env, v) != 0)
            return -1;
    }
    return check_excludes(&l, 'e');
}

int tier_opts_load_flags(const tier_opts *t, void *cfg, int argc, char **argv, bool apply,
                         int *action, const char **config)
{
    struct option lo[TIER_OPTS_MAX + 1];
    size_t n = 0;
    layer l;
    int c;

    layer_init(&l, t, cfg, NULL);
    for (size_t i = 0; i < t->n && i < TIER_OPTS_MAX; i++) {
        const tier_opt *o = &t->opts[i];
        if (o->flag == NULL || (o->flags & TIER_OPT_SECRET))
            continue;
        lo[n].name = o->flag;
        lo[n].has_arg = o->type == TIER_OPT_BOOL || o->type == TIER_OPT_ACTION ? no_argument
                                                                               : required_argument;
        lo[n].flag = NULL;
        lo[n].val = 0x100 + (int)i;
        n++;
    }
    memset(&lo[n], 0, sizeof(lo[n]));
    if (action != NULL)
        *action = 0;
    optind = 0; /* glibc: start over, as for a new argv */
    opterr = apply;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        const tier_opt *o = c >= 0x100 ? &t->opts[c - 0x100] : NULL;
        char name[80];
        if (o == NULL) {
            if (!apply)
                continue;
            fprintf(stderr, "%s: see %s --help\n", t->prog, t->prog);
            return -1;
        }
        if (!apply) {
            if (o->type == TIER_OPT_ACTION && action != NULL && *action == 0)
                *action = (int)o->min;
            if (o->key == NULL && strcmp(o->flag, "config") == 0 && config != NULL)
                *config = optarg;
            continue;
        }
        snprintf(name, sizeof(name), "--%s", o->flag);
        if (o->type != TIER_OPT_ACTION && set_value(&l, o, name, optarg ? optarg : "1") != 0)
            return -1;
    }
    if (apply && optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\n", t->prog, argv[optind]);
        return -1;
    }
    return apply ? check_excludes(&l, 'f') : 0;
}
