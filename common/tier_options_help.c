/*
 * tier_options_help.c -- what an options table says about itself: --help
 * (for a terminal), --help-markdown (docs/CONFIG.md is its output, checked
 * by the config_doc test) and --print-config (the effective values as a
 * config file, secrets masked).  Generated, so they cannot drift from
 * what the parser accepts.
 */
#include "tier_options.h"

#include <inttypes.h>
#include <string.h>

static const char *type_name(const tier_opt *o)
{
    switch (o->type) {
    case TIER_OPT_STRING:
        return "string";
    case TIER_OPT_PATH:
        return "path";
    case TIER_OPT_URL:
        return "URL";
    case TIER_OPT_BOOL:
        return "bool";
    case TIER_OPT_INT:
        return "integer";
    case TIER_OPT_MS:
        return "milliseconds";
    case TIER_OPT_S:
        return "seconds";
    case TIER_OPT_MIN:
        return "minutes";
    case TIER_OPT_MIB:
        return "MiB";
    case TIER_OPT_LIST:
        return "paths, ':'-separated";
    case TIER_OPT_HOSTPORT:
        return "HOST:PORT";
    case TIER_OPT_ACTION:
        return "action";
    }
    return "?";
}

static bool numeric(const tier_opt *o)
{
    return o->type == TIER_OPT_INT || o->type == TIER_OPT_MS || o->type == TIER_OPT_S ||
           o->type == TIER_OPT_MIN || o->type == TIER_OPT_MIB;
}

/* "1..1024", "at most 16", or "". */
static const char *range(const tier_opt *o, char *buf, size_t len)
{
    buf[0] = '\0';
    if (numeric(o))
        snprintf(buf, len, "%" PRIu64 "..%" PRIu64, o->min, o->max);
    else if (o->type == TIER_OPT_LIST)
        snprintf(buf, len, "at most %" PRIu64, o->max);
    else if (o->type == TIER_OPT_HOSTPORT)
        snprintf(buf, len, "port 1..65535");
    return buf;
}

static void help_one(const tier_opt *o, FILE *f)
{
    char head[64], r[48];
    const char *unit = numeric(o) && o->type != TIER_OPT_INT ? type_name(o) : NULL;

    if (o->flag != NULL && !(o->flags & TIER_OPT_SECRET))
        snprintf(head, sizeof(head), "--%s%s%s", o->flag,
                 o->type == TIER_OPT_BOOL || o->type == TIER_OPT_ACTION ? "" : " ",
                 o->type == TIER_OPT_BOOL || o->type == TIER_OPT_ACTION ? "" : o->arg);
    else
        snprintf(head, sizeof(head), "(secret: no flag)");
    fprintf(f, "  %-28s %s\n", head, o->help);
    if (o->type == TIER_OPT_ACTION)
        return;
    fprintf(f, "  %-28s ", "");
    if (o->env != NULL)
        fprintf(f, "%s%s", o->env, o->key != NULL ? ", " : "");
    if (o->key != NULL)
        fprintf(f, "%s = %s", o->key,
                o->flags & TIER_OPT_SECRET ? "..." : (o->def && o->def[0] ? o->def : "(none)"));
    range(o, r, sizeof(r));
    if (r[0] != '\0' || unit != NULL)
        fprintf(f, "  [%s%s%s]", r, unit && r[0] ? " " : "", unit ? unit : "");
    fputc('\n', f);
}

void tier_opts_help(const tier_opts *t, FILE *f)
{
    fprintf(f, "usage: %s\n\n%s\n\n", t->usage, t->about);
    fprintf(f, "Each option: its flag, then its environment variable and config file key\n"
               "with the default.  Precedence: defaults < file < environment < flags.\n"
               "Numbers are whole and in the range shown; the unit is the one in the name\n"
               "(lease_ms = 30000, never 30s).  docs/CONFIG.md has the details.\n\n");
    for (size_t i = 0; i < t->n; i++)
        help_one(&t->opts[i], f);
    if (t->epilog != NULL)
        fprintf(f, "\n%s", t->epilog);
}

static void md_cell(FILE *f, const char *s)
{
    fputs("| ", f);
    for (; s != NULL && *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else
            fputc(*s, f);
    }
    fputc(' ', f);
}

/* `s` as a markdown code cell, or "" when s is NULL or empty. */
static void code_cell(char *buf, size_t len, const char *s)
{
    if (s != NULL && s[0] != '\0')
        snprintf(buf, len, "`%s`", s);
    else
        buf[0] = '\0';
}

void tier_opts_markdown(const tier_opts *t, FILE *f)
{
    char flag[64], r[48], key[64], env[64], def[128];

    fprintf(f, "## %s\n\n`%s`: %s\n\n", t->prog, t->usage, t->about);
    fprintf(f, "| File key | Environment | Flag | Type | Default | Range | What |\n"
               "|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < t->n; i++) {
        const tier_opt *o = &t->opts[i];
        code_cell(key, sizeof(key), o->key);
        code_cell(env, sizeof(env), o->env);
        if (o->flag == NULL || (o->flags & TIER_OPT_SECRET))
            snprintf(flag, sizeof(flag), "never (secret)");
        else if (o->type == TIER_OPT_BOOL || o->type == TIER_OPT_ACTION)
            snprintf(flag, sizeof(flag), "`--%s`", o->flag);
        else
            snprintf(flag, sizeof(flag), "`--%s %s`", o->flag, o->arg);
        code_cell(def, sizeof(def), o->def);
        md_cell(f, key);
        md_cell(f, env);
        md_cell(f, flag);
        md_cell(f, type_name(o));
        md_cell(f, def);
        md_cell(f, range(o, r, sizeof(r)));
        md_cell(f, o->help);
        fputs("|\n", f);
    }
    if (t->epilog != NULL)
        fprintf(f, "\n```\n%s```\n", t->epilog);
    fputc('\n', f);
}

static void print_one(const tier_opt *o, const void *cfg, FILE *f)
{
    const char *p = (const char *)cfg + o->off;
    unsigned count;

    if (o->flags & TIER_OPT_SECRET) {
        fprintf(f, "# %s = %s\n", o->key, p[0] ? "(set, not shown)" : "(not set)");
        return;
    }
    switch (o->type) {
    case TIER_OPT_STRING:
    case TIER_OPT_PATH:
    case TIER_OPT_URL:
        fprintf(f, "%s = %s\n", o->key, p);
        break;
    case TIER_OPT_BOOL:
        fprintf(f, "%s = %s\n", o->key, *(const bool *)p ? "true" : "false");
        break;
    case TIER_OPT_LIST:
        memcpy(&count, (const char *)cfg + o->off2, sizeof(count));
        if (count == 0)
            fprintf(f, "# %s = (none)\n", o->key);
        for (unsigned i = 0; i < count; i++)
            fprintf(f, "%s = %s\n", o->key, p + (size_t)i * o->size);
        break;
    default: {
        uint64_t v = 0;
        if (o->size == 8)
            memcpy(&v, p, 8);
        else if (o->size == 4) {
            uint32_t x;
            memcpy(&x, p, 4);
            v = x;
        } else if (o->size == 2) {
            uint16_t x;
            memcpy(&x, p, 2);
            v = x;
        } else {
            v = *(const uint8_t *)p;
        }
        fprintf(f, "%s = %" PRIu64 "\n", o->key, v);
    }
    }
}

void tier_opts_print(const tier_opts *t, const void *cfg, FILE *f)
{
    fprintf(f, "# %s: the effective configuration (defaults < file < environment < flags)\n",
            t->prog);
    for (size_t i = 0; i < t->n; i++) {
        const tier_opt *o = &t->opts[i];
        if (o->type == TIER_OPT_ACTION || (o->flags & TIER_OPT_ALIAS))
            continue;
        if (o->key == NULL) {
            fprintf(f, "# --%s: %s\n", o->flag, (const char *)cfg + o->off);
            continue;
        }
        print_one(o, cfg, f);
    }
}
