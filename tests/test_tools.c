/*
 * test_tools.c -- the pieces around the service: tierctl's argument
 * parsing (hostile numbers a user types), and the test support's own
 * sanitizer-report detector (tier_test_sanitizer_report), which every test
 * relies on to fail when a child process hits ASan or UBSan.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tier_testenv.h"

/* tierctl refuses times it cannot represent: exit 2 (usage), before any
 * call (no server is listening on the URL given). */
Test(tools, tierctl_refuses_times_out_of_range)
{
    static const char *const bad[] = {
        "-99999999999999999d", /* days * 86400000 overflows int64 */
        "-9223372036854775807m",
        "-1x",
        "2026-13-01 10:00",
        "2026-02-30 10:00",
        "99999999999-01-01 00:00",
        "2026-11-23 24:00",
        "",
    };
    char *bin = tier_test_bin("tierctl"), out[4096], url[64];

    tier_test_dead_url(url, sizeof(url));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {bin,      "--url",        url,    "--timeout", "200", "top",
                        "--from", (char *)bad[i], "--to", "now",       NULL};
        int st = tier_test_run(argv, NULL, out, sizeof(out), 10000);
        cr_expect_eq(st, 2, "tierctl top --from '%s': exit %d: %s", bad[i], st, out);
    }
    free(bin);
}

Test(tools, sanitizer_reports_are_recognised)
{
    cr_assert_null(tier_test_sanitizer_report("INFO tierd: stopped\n"));
    cr_assert_null(tier_test_sanitizer_report(NULL));
    const char *log = "INFO x\n==12==ERROR: AddressSanitizer: heap-use-after-free on address\n";
    cr_assert_not_null(tier_test_sanitizer_report(log));
    cr_assert_eq(tier_test_sanitizer_report(log), strstr(log, "ERROR: AddressSanitizer"));
    cr_assert_not_null(
        tier_test_sanitizer_report("a.c:3:5: runtime error: signed integer overflow"));
    cr_assert_not_null(
        tier_test_sanitizer_report("==1==ERROR: LeakSanitizer: detected memory leaks"));
}
