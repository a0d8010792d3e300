/*
 * tier_options.h -- a program's options as one table, and everything
 * derived from it: defaults, the config file (libinih), the environment,
 * the command line (getopt_long), --help, --help-markdown and
 * --print-config.
 *
 * Why one table: before it, tierd had a hand-written file parser, an
 * environment map and a getopt table that each knew part of the options,
 * and atoi() read "16x" as 16.  Here an option is written once with its
 * three names, its type, unit, bounds, default and help line, and every
 * source goes through the same strict parser, so a value means the same
 * wherever it comes from and --help cannot forget one.
 *
 * Precedence: defaults < file < environment < flags.  An empty environment
 * variable counts as unset (scripts clear one with VAR=); an empty flag or
 * file value is a value (an empty string, or refused for a number).
 */
#ifndef TIER_OPTIONS_H
#define TIER_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    TIER_OPT_STRING,   /* text, at most size-1 bytes */
    TIER_OPT_PATH,     /* a file or directory name: the same, documented as such */
    TIER_OPT_URL,      /* scheme://..., e.g. tcp://127.0.0.1:7400 */
    TIER_OPT_BOOL,     /* 1/0/true/false/yes/no/on/off; a flag without argument */
    TIER_OPT_INT,      /* a whole decimal number in min..max */
    TIER_OPT_MS,       /* a whole number of milliseconds in min..max */
    TIER_OPT_S,        /* ... of seconds */
    TIER_OPT_MIN,      /* ... of minutes */
    TIER_OPT_MIB,      /* a whole number of MiB */
    TIER_OPT_LIST,     /* ':'-separated absolute paths; off: char[max][size] (size: one
                          path), off2: unsigned count */
    TIER_OPT_HOSTPORT, /* HOST[:PORT]: host into off (char[size]), port into off2 (int) */
    TIER_OPT_ACTION,   /* a flag that does something and exits (--help); min is its code */
} tier_opt_type;

/* Read from the file and the environment only, never a flag (a command
 * line is visible to every user of the machine), and masked when printed. */
#define TIER_OPT_SECRET 1u
/* Shown by --help but not by --print-config (a shorthand for others). */
#define TIER_OPT_ALIAS 2u
/* STRING: may be given more than once; the values of one source are kept
 * separated by single spaces (the first value of a source replaces the
 * lower sources' ones, as TIER_OPT_LIST does).  For values without spaces. */
#define TIER_OPT_REPEAT 4u

typedef struct {
    const char *key;  /* config file key; NULL: not in the file */
    const char *env;  /* environment variable; NULL: none */
    const char *flag; /* long flag without "--"; NULL: none */
    tier_opt_type type;
    size_t off, size; /* the field: offset, and sizeof (buffer or integer width) */
    size_t off2;      /* LIST: the count (unsigned); HOSTPORT: the port (int) */
    uint64_t min, max;
    const char *def; /* default as text, parsed like any value; NULL: empty */
    const char *arg; /* metavariable in --help: "URL", "N" */
    const char *help;
    unsigned flags;           /* TIER_OPT_SECRET, TIER_OPT_ALIAS */
    const char *excludes;     /* key of an option this one may not be set with in one
                                 source (both given: refused) */
    void (*after)(void *cfg); /* called after a value is stored (e.g. clears another) */
} tier_opt;

typedef struct {
    const char *prog;    /* "tierd": message prefix and usage */
    const char *section; /* the one [section] the file may use besides none */
    const char *usage;   /* "tierd [options]" */
    const char *about;   /* one line: what the program is */
    const char *epilog;  /* last lines of --help */
    const tier_opt *opts;
    size_t n;
} tier_opts;

/* At most this many options in one table. */
#define TIER_OPTS_MAX 96
/* Longest config file line (inih's INI_MAX_LINE less "\r\n\0"): longer
 * ones are refused rather than split. */
#define TIER_OPTS_LINE_MAX 197

/* Every option's default.  0, or -1 if a default is invalid (a bug). */
int tier_opts_defaults(const tier_opts *t, void *cfg);
/* Applies one value of option o from `where` (for messages: "f.conf:3",
 * "TIER_X", "--x").  0, or -1 with the message printed. */
int tier_opts_set(const tier_opts *t, void *cfg, const tier_opt *o, const char *value,
                  const char *where);
/* The config file: "key = value" lines, '#' or ';' comments on their own
 * lines, no section or [t->section].  0, or -1 with the message printed. */
int tier_opts_load_file(const tier_opts *t, void *cfg, const char *path);
/* Every option's environment variable that is set and not empty. */
int tier_opts_load_env(const tier_opts *t, void *cfg);
/* Parses argv.  apply false: only finds the first action flag (its code in
 * *action, else 0) and the value of the option whose key is NULL and flag is
 * "config" (in *config), silently; apply true: applies every flag, 0 or -1
 * with the message printed. */
int tier_opts_load_flags(const tier_opts *t, void *cfg, int argc, char **argv, bool apply,
                         int *action, const char **config);

void tier_opts_help(const tier_opts *t, FILE *f);
void tier_opts_markdown(const tier_opts *t, FILE *f);
/* The effective configuration as a config file, secrets masked. */
void tier_opts_print(const tier_opts *t, const void *cfg, FILE *f);

/* The option with file key `key`, or NULL. */
const tier_opt *tier_opts_find(const tier_opts *t, const char *key);

#endif
