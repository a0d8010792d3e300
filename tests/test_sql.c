/*
 * test_sql.c -- the migrations in sql/ against the real MariaDB of
 * scripts/services.sh: applying them twice changes nothing, the level-change
 * history trigger logs real changes only, and the sample levels sit under
 * the storage root given to scripts/migrate.sh.
 *
 * Every test creates its own database (tier_test_db_create) and drops it in
 * the fini hook, which Criterion runs after a failed assertion too.
 */
#include "tier_testenv.h"

#include <criterion/criterion.h>
#if __has_include(<mysql.h>)
#include <mysql.h>
#else
#include <mysql/mysql.h>
#endif

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static tier_test_mysql g_m;
static MYSQL *g_c;
static char *g_tmp;

static void setup(void)
{
    tier_test_mysql_env(&g_m);
    g_c = NULL;
    g_tmp = NULL;
}

static void teardown(void)
{
    if (g_c != NULL)
        mysql_close(g_c);
    g_c = NULL;
    if (strncmp(g_m.db, "tier_t_", 7) == 0)
        tier_test_db_drop(&g_m);
    if (g_tmp != NULL) {
        tier_test_rmtree(g_tmp);
        free(g_tmp);
        g_tmp = NULL;
    }
}

TestSuite(sql, .init = setup, .fini = teardown, .timeout = 300);

static MYSQL *db_connect(void)
{
    MYSQL *c = mysql_init(NULL);
    cr_assert(c != NULL);
    mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    cr_assert(mysql_real_connect(c, g_m.host, g_m.user, g_m.password, g_m.db,
                                 (unsigned int)g_m.port, NULL, 0) != NULL,
              "connect %s: %s", g_m.db, mysql_error(c));
    return c;
}

/* Creates the test's database (migrated) and connects to it. */
static void open_db(const char *storage_root)
{
    tier_test_db_create(&g_m, storage_root);
    g_c = db_connect();
}

static void exec_sqlf(const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    cr_assert(mysql_query(g_c, sql) == 0, "%s: %s", sql, mysql_error(g_c));
}

/* The whole result of a query as text: fields joined by '|', rows by '\n',
 * NULL as "\N".  malloc'ed. */
static char *query_text(const char *sql)
{
    cr_assert(mysql_query(g_c, sql) == 0, "%s: %s", sql, mysql_error(g_c));
    MYSQL_RES *res = mysql_store_result(g_c);
    cr_assert(res != NULL, "%s: no result: %s", sql, mysql_error(g_c));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f != NULL);
    unsigned nf = mysql_num_fields(res);
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        unsigned long *lens = mysql_fetch_lengths(res);
        for (unsigned i = 0; i < nf; i++) {
            if (i > 0)
                fputc('|', f);
            if (row[i] == NULL)
                fputs("\\N", f);
            else
                fwrite(row[i], 1, lens[i], f);
        }
        fputc('\n', f);
    }
    mysql_free_result(res);
    fclose(f);
    return buf;
}

static long long query_ll(const char *sql)
{
    char *t = query_text(sql);
    cr_assert(t[0] != '\0', "%s: no row", sql);
    long long v = strtoll(t, NULL, 10);
    free(t);
    return v;
}

/* Everything the migrations decide, as text: applied versions, the levels,
 * tables, columns, indexes and triggers (with their creation times, so a
 * trigger dropped and re-created shows up too). */
static char *schema_snapshot(void)
{
    static const char *const queries[] = {
        "SELECT version, name, applied_at FROM schema_version ORDER BY version",
        "SELECT content_level, min_counts, max_counts, path FROM level ORDER BY content_level",
        "SELECT table_name, engine, table_collation, create_time FROM information_schema.tables "
        "WHERE table_schema = DATABASE() ORDER BY table_name",
        "SELECT table_name, column_name, ordinal_position, column_type, is_nullable, "
        "column_default, extra, collation_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() ORDER BY table_name, ordinal_position",
        "SELECT table_name, index_name, seq_in_index, column_name, non_unique "
        "FROM information_schema.statistics WHERE table_schema = DATABASE() "
        "ORDER BY table_name, index_name, seq_in_index",
        "SELECT trigger_name, event_manipulation, event_object_table, action_timing, "
        "action_statement, created FROM information_schema.triggers "
        "WHERE trigger_schema = DATABASE() ORDER BY trigger_name",
    };
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    cr_assert(f != NULL);
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        char *t = query_text(queries[i]);
        fprintf(f, "-- %zu\n%s", i, t);
        free(t);
    }
    fclose(f);
    return out;
}

static int count_migration_files(void)
{
    DIR *d = opendir(TIER_SOURCE_DIR "/sql");
    cr_assert(d != NULL, "opendir %s/sql", TIER_SOURCE_DIR);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 8 && e->d_name[0] >= '0' && e->d_name[0] <= '9' && e->d_name[3] == '_' &&
            strcmp(e->d_name + l - 4, ".sql") == 0)
            n++;
    }
    closedir(d);
    return n;
}

Test(sql, migrate_twice_changes_nothing)
{
    open_db(NULL);
    char *before = schema_snapshot();
    cr_assert(strstr(before, "contents|") != NULL, "no contents table:\n%s", before);
    cr_assert(strstr(before, "contents_level_history|UPDATE|contents|AFTER") != NULL,
              "no history trigger:\n%s", before);
    cr_assert_eq(query_ll("SELECT COUNT(*) FROM schema_version"), count_migration_files());

    cr_assert_eq(tier_test_db_migrate(&g_m, NULL), 0);
    char *after = schema_snapshot();
    cr_assert_str_eq(after, before);
    free(before);
    free(after);
}

static void insert_content(long long cid, const char *level, const char *filename,
                           const char *update_time)
{
    exec_sqlf("INSERT INTO contents (cid, content_level, filename, generate_time, update_time) "
              "VALUES (%lld, '%s', '%s', '2018-07-29 15:31:24.000', '%s')",
              cid, level, filename, update_time);
}

Test(sql, level_change_writes_one_history_row)
{
    open_db(NULL);
    insert_content(12, "silver", "l.mp4", "2018-08-02 18:30:19.000");
    insert_content(13, "bronze", "m.mp4", "2018-08-02 18:30:19.000");

    exec_sqlf("UPDATE contents SET content_level = 'gold', update_time = '2018-08-07 "
              "14:27:44.123' WHERE cid = 12");
    cr_assert_eq(mysql_affected_rows(g_c), 1);
    char *h = query_text("SELECT cid, old_updated_date, old_content_level, new_updated_date, "
                         "new_content_level FROM update_history ORDER BY id");
    cr_assert_str_eq(h, "12|2018-08-02 18:30:19.000|silver|2018-08-07 14:27:44.123|gold\n");
    free(h);

    /* A writer that changes only the level still gets a fresh update_time
     * (the BEFORE trigger) and a history row carrying it. */
    exec_sqlf("UPDATE contents SET content_level = 'silver' WHERE cid = 12");
    h = query_text("SELECT c.update_time > '2018-08-07 14:27:44.123', "
                   "c.update_time = h.new_updated_date, h.old_updated_date, "
                   "h.old_content_level, h.new_content_level "
                   "FROM contents c JOIN update_history h ON h.cid = c.cid "
                   "WHERE c.cid = 12 ORDER BY h.id DESC LIMIT 1");
    cr_assert_str_eq(h, "1|1|2018-08-07 14:27:44.123|gold|silver\n");
    free(h);
    cr_assert_eq(query_ll("SELECT COUNT(*) FROM update_history WHERE cid = 12"), 2);
    cr_assert_eq(query_ll("SELECT COUNT(*) FROM update_history WHERE cid = 13"), 0);
}

Test(sql, update_without_level_change_writes_nothing)
{
    open_db(NULL);
    insert_content(12, "silver", "l.mp4", "2018-08-02 18:30:19.000");
    insert_content(13, "bronze", "m.mp4", "2018-08-02 18:30:19.000");

    /* The seed's trigger logged this silver -> silver update; ours must not. */
    exec_sqlf("UPDATE contents SET content_level = 'silver', update_time = '2018-08-06 "
              "12:34:08.000' WHERE cid = 12");
    exec_sqlf("UPDATE contents SET update_time = NOW(3) WHERE cid = 12");
    exec_sqlf("UPDATE contents SET content_level = 'silver' WHERE cid = 12");
    exec_sqlf("UPDATE contents SET filename = 'l2.mp4' WHERE cid = 12");
    cr_assert_eq(query_ll("SELECT COUNT(*) FROM update_history"), 0);

    /* Without a level change the stamp trigger leaves update_time alone. */
    exec_sqlf("UPDATE contents SET filename = 'm2.mp4' WHERE cid = 13");
    char *t = query_text("SELECT update_time FROM contents WHERE cid = 13");
    cr_assert_str_eq(t, "2018-08-02 18:30:19.000\n");
    free(t);

    /* One statement over both rows: only the row whose level changes. */
    exec_sqlf("UPDATE contents SET content_level = 'bronze' WHERE cid IN (12, 13)");
    t = query_text("SELECT cid, old_content_level, new_content_level FROM update_history");
    cr_assert_str_eq(t, "12|silver|bronze\n");
    free(t);
}

Test(sql, filename_unique_across_levels)
{
    open_db(NULL);
    insert_content(1, "bronze", "a.mp4", "2018-08-02 18:30:19.000");
    int rc = mysql_query(g_c, "INSERT INTO contents (cid, content_level, filename) "
                              "VALUES (2, 'gold', 'a.mp4')");
    cr_assert_neq(rc, 0, "a second content named a.mp4 was accepted");
    cr_assert_eq(mysql_errno(g_c), 1062u, "expected ER_DUP_ENTRY, got %u: %s", mysql_errno(g_c),
                 mysql_error(g_c));
}

static void assert_dir(const char *path)
{
    struct stat st;
    cr_assert(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "%s is not a directory", path);
}

static void assert_sample_levels(const char *root)
{
    char want[4096];
    snprintf(want, sizeof(want),
             "bronze|0|999|%s/bronze/\n"
             "silver|1000|1999|%s/silver/\n"
             "gold|2000|9223372036854775807|%s/gold/\n",
             root, root, root);
    char *t = query_text("SELECT content_level, min_counts, max_counts, path FROM level "
                         "ORDER BY min_counts");
    cr_assert_str_eq(t, want);
    free(t);
    static const char *const names[] = {"bronze", "silver", "gold"};
    for (int i = 0; i < 3; i++) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", root, names[i]);
        assert_dir(p);
    }
}

Test(sql, sample_levels_under_given_storage_root)
{
    g_tmp = tier_test_tmpdir();
    cr_assert(g_tmp != NULL);
    /* A quote, a backslash and a space: the root must reach the SQL intact. */
    char root[1024];
    snprintf(root, sizeof(root), "%s/st'o re\\x", g_tmp);
    char given[1100];
    snprintf(given, sizeof(given), "%s/", root); /* trailing '/' is dropped */
    open_db(given);
    assert_sample_levels(root);
}

Test(sql, sample_levels_default_to_env_storage_root)
{
    const char *root = getenv("TIER_STORAGE_ROOT");
    cr_assert(root != NULL && root[0] == '/', "TIER_STORAGE_ROOT is not set");
    open_db(NULL);
    assert_sample_levels(root);
}
