/*
 * tier_crash.h -- named crash points, compiled into every build, for the
 * tests that kill a process at one exact step of the job protocol.
 *
 * Each binary declares the list of its points once (a NULL-terminated array
 * of names, "area.step") and calls tier_crash_init() at start.  The
 * environment variable
 *
 *     TIER_CRASH=<point>[:<n>]
 *
 * arms one point: the n-th time (default 1) the process passes
 * TIER_CRASH_AT("<point>"), it writes "crash point <point> hit" to stderr
 * and _exit()s with TIER_CRASH_EXIT -- no atexit handlers, no flushing of
 * anything but that line: as close to kill -9 at that instruction as a
 * test can get.  An armed name that is not in the list is a start-up error
 * (a typo would otherwise make a crash test pass without crashing).
 *
 * `tierd --crash-points` and `tier-worker --crash-points` print the list,
 * one per line, so the crash-walk test (tests/test_crash.c) enumerates them
 * and fails for a point it has no scenario for: a new step can't be
 * forgotten.  Passing an unlisted name to TIER_CRASH_AT aborts in every
 * build (assert-like): the list and the code can't drift apart.
 *
 * Unarmed, a point costs one relaxed atomic load (after its first pass).
 */
#ifndef TIER_CRASH_H
#define TIER_CRASH_H

#include <stdio.h>

#define TIER_CRASH_EXIT 86 /* exit status of a process that hit its point */

/* Reads TIER_CRASH.  points: NULL-terminated, static storage.  Returns 0, or
 * -1 with a message on stderr when TIER_CRASH names no listed point or has
 * a bad count. */
int tier_crash_init(const char *const *points);

/* Prints the points, one per line. */
void tier_crash_list(FILE *f, const char *const *points);

/* The step `name` is about to be taken (or was just taken, as its name
 * says).  Exits the process when it is the armed point's n-th hit.  checked
 * is the call site's flag: the name is looked up in the list once per site. */
void tier_crash_at(const char *name, int *checked);

#define TIER_CRASH_AT(name)                                                                        \
    do {                                                                                           \
        static int tier_crash_checked_;                                                            \
        tier_crash_at(name, &tier_crash_checked_);                                                 \
    } while (0)

#endif
