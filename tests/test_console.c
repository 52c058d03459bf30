/*
 * test_console.c - the budget of tenant SQL and the quotas the schema keeps.
 *
 * A console call may not keep other tenants' writes out (time), may not grow
 * without bound (rows, heap, value and statement sizes), may not leave a
 * transaction open, and may not pass its tenant's quotas, whatever SQL it
 * sends.  Each runaway here would run for minutes, hold the write lock for
 * all of it, or store rows past the quota without the budget.
 */
#include "auth.h"
#include "clock.h"
#include "fixture.h"

#include <pthread.h>
#include <unistd.h>

static tn_store *open_with(const char *dir, const tn_options *o) {
    tn_store *st = NULL;
    int rc = tn_open(dir, o, &st);
    if (rc != TN_OK) TN_FAIL_("tn_open: %s: %s", tn_errname(rc), tn_errmsg(NULL));
    return st;
}

static int count_rows(void *arg, int stmt, int ncol, const char *const *names,
                      const char *const *values) {
    (void)stmt, (void)ncol, (void)names, (void)values;
    (*(int *)arg)++;
    return 0;
}

static int first_value(void *arg, int stmt, int ncol, const char *const *names,
                       const char *const *values) {
    (void)stmt, (void)names;
    if (ncol > 0 && values[0]) *(long long *)arg = strtoll(values[0], NULL, 10);
    return 0;
}

static long long console_scalar(tn_session *s, const char *sql) {
    long long v = -1;
    if (tn_session_exec(s, sql, first_value, &v) != TN_OK) return -2;
    return v;
}

/* ---- time ----------------------------------------------------------------- */

typedef struct runaway {
    tn_store *st;
    const char *tenant, *sql;
    int rc;
    int64_t ms;
    char err[TN__ERRMSG];
} runaway;

static void *run_console(void *arg) {
    runaway *r = arg;
    tn_session *s;
    if (tn_session_open(r->st, r->tenant, &s) != TN_OK) {
        r->rc = -1;
        return NULL;
    }
    int64_t t0 = tn__mono_ms();
    r->rc = tn_session_exec(s, r->sql, NULL, NULL);
    r->ms = tn__mono_ms() - t0;
    snprintf(r->err, sizeof r->err, "%s", tn_session_errmsg(s));
    tn_session_close(s);
    return NULL;
}

/* 1 when some connection holds the write lock of the store in dir. */
static int write_locked(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tenantry.db", dir);
    sqlite3 *db;
    int locked = 0;
    if (sqlite3_open(path, &db) == SQLITE_OK) {
        locked = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_BUSY;
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return locked;
}

/* A console takes the write lock and then runs a statement that never ends
 * by itself.  Another tenant's write, made while the lock is held, still
 * succeeds (it waits less than the busy timeout), and the console is stopped
 * with a clear error, its transaction undone. */
static void runaway_with(const char *sql, int setup_rows) {
    fixture f;
    fixture_init(&f);
    if (setup_rows) {
        char ins[512];
        snprintf(ins, sizeof ins,
                 "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < %d) "
                 "INSERT INTO items (id, data) SELECT 'row' || n, '{}' FROM r",
                 setup_rows);
        ASSERT_OK(tn_session_exec(f.a, ins, NULL, NULL));
    }
    int64_t acme_before = 0;
    ASSERT_OK(tn_item_count(f.a, &acme_before));
    runaway r = {.st = f.st, .tenant = f.acme.id, .sql = sql};
    pthread_t t;
    ASSERT(pthread_create(&t, NULL, run_console, &r) == 0);
    int locked = 0;
    for (int i = 0; i < 400 && !locked; i++) {
        locked = write_locked(f.dir);
        if (!locked) usleep(5000);
    }
    ASSERT(locked); /* the console holds the write lock now */
    int64_t t0 = tn__mono_ms();
    int rc = tn_item_put(f.g, "written-meanwhile", "{\"ok\":true}", NULL);
    int64_t waited = tn__mono_ms() - t0;
    if (rc != TN_OK) TN_FAIL_("the other tenant's write failed after %lld ms: %s: %s",
                             (long long)waited, tn_errname(rc), tn_session_errmsg(f.g));
    ASSERT(waited < 5000); /* the busy timeout */
    pthread_join(t, NULL);
    ASSERT_INT_EQ(r.rc, TN_TIMEOUT);
    ASSERT(strstr(r.err, "time budget of 2000 ms") != NULL);
    ASSERT(r.ms >= 2000 && r.ms < 4000);
    ASSERT_OK(tn_item_get(f.g, "written-meanwhile", NULL));
    int64_t acme_after = 0;
    ASSERT_OK(tn_item_count(f.a, &acme_after));
    ASSERT_INT_EQ(acme_after, acme_before); /* the console's insert was undone */
    fixture_done(&f);
}

TEST(console_endless_recursive_cte_is_stopped_and_others_still_write) {
    runaway_with("BEGIN IMMEDIATE; INSERT INTO items (id, data) VALUES ('mine', '{}');"
                 "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
                 "SELECT count(n) FROM r; COMMIT",
                 0);
}

TEST(console_many_way_self_join_is_stopped_and_others_still_write) {
    runaway_with("BEGIN IMMEDIATE; INSERT INTO items (id, data) VALUES ('mine', '{}');"
                 "SELECT count(*) FROM items a, items b, items c, items d, items e, items f;"
                 "COMMIT",
                 300);
}

/* ---- transactions ------------------------------------------------------------ */

TEST(console_transaction_must_end_in_its_call) {
    fixture f;
    fixture_init(&f);
    ASSERT_INT_EQ(tn_session_exec(f.a, "BEGIN; INSERT INTO items (id, data) VALUES ('open', '{}')",
                                  NULL, NULL),
                  TN_INVALID);
    ASSERT(strstr(tn_session_errmsg(f.a), "transaction") != NULL);
    ASSERT_INT_EQ(tn_item_get(f.a, "open", NULL), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_session_exec(f.a, "SAVEPOINT s; INSERT INTO items (id, data) VALUES "
                                       "('open', '{}')", NULL, NULL),
                  TN_INVALID);
    ASSERT_INT_EQ(tn_item_get(f.a, "open", NULL), TN_NOTFOUND);
    /* The write lock is free again: another tenant writes at once. */
    ASSERT(!write_locked(f.dir));
    /* A failing statement inside the call's transaction undoes all of it. */
    ASSERT_INT_EQ(tn_session_exec(f.a, "BEGIN; INSERT INTO items (id, data) VALUES ('x1', '{}');"
                                       "INSERT INTO items (id, data) VALUES ('x2', 'bad json');"
                                       "COMMIT", NULL, NULL),
                  TN_INVALID);
    ASSERT_INT_EQ(tn_item_get(f.a, "x1", NULL), TN_NOTFOUND);
    /* A transaction that ends in the call is fine. */
    ASSERT_OK(tn_session_exec(f.a, "BEGIN; INSERT INTO items (id, data) VALUES ('x3', '{}');"
                                   "COMMIT", NULL, NULL));
    ASSERT_OK(tn_item_get(f.a, "x3", NULL));
    /* A program's own transaction spans calls; the console runs inside it. */
    ASSERT_OK(tn_session_begin(f.a));
    ASSERT_OK(tn_item_put(f.a, "p1", "{}", NULL));
    ASSERT_OK(tn_session_exec(f.a, "INSERT INTO items (id, data) VALUES ('p2', '{}')", NULL, NULL));
    ASSERT_OK(tn_session_rollback(f.a));
    ASSERT_INT_EQ(tn_item_get(f.a, "p1", NULL), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_item_get(f.a, "p2", NULL), TN_NOTFOUND);
    ASSERT_OK(tn_session_begin(f.a));
    ASSERT_OK(tn_session_exec(f.a, "INSERT INTO items (id, data) VALUES ('p3', '{}')", NULL, NULL));
    ASSERT_OK(tn_session_commit(f.a));
    ASSERT_OK(tn_item_get(f.a, "p3", NULL));
    ASSERT_INT_EQ(tn_session_rollback(f.a), TN_INVALID);
    fixture_done(&f);
}

/* ---- rows, heap, sizes --------------------------------------------------------- */

TEST(console_row_budget_bounds_reads_and_writes) {
    fixture f;
    fixture_init(&f);
    tn_close(f.st);
    tn_session_close(f.a);
    tn_session_close(f.g);
    tn_options o;
    tn_options_init(&o);
    o.console_rows = 1000;
    f.st = open_with(f.dir, &o);
    ASSERT_OK(tn_session_open(f.st, f.acme.id, &f.a));
    ASSERT_OK(tn_session_open(f.st, f.globex.id, &f.g));
    int rows = 0;
    ASSERT_INT_EQ(tn_session_exec(f.a, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
                                       "FROM r WHERE n < 5000) SELECT n FROM r",
                                  count_rows, &rows),
                  TN_TOOBIG);
    ASSERT_INT_EQ(rows, 1000);
    ASSERT(strstr(tn_session_errmsg(f.a), "budget of 1000 rows") != NULL);
    ASSERT_INT_EQ(tn_session_exec(f.a, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
                                       "FROM r WHERE n < 5000) INSERT INTO items (id, data) "
                                       "SELECT 'gen' || n, '{}' FROM r",
                                  NULL, NULL),
                  TN_TOOBIG);
    int64_t n = 0;
    ASSERT_OK(tn_item_count(f.a, &n));
    ASSERT_INT_EQ(n, 1); /* nothing of the stopped insert is kept */
    /* Within the budget both work, and the budget is per call. */
    ASSERT_OK(tn_session_exec(f.a, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
                                   "FROM r WHERE n < 900) INSERT INTO items (id, data) "
                                   "SELECT 'gen' || n, '{}' FROM r",
                              NULL, NULL));
    rows = 0;
    ASSERT_OK(tn_session_exec(f.a, "SELECT id FROM items", count_rows, &rows));
    ASSERT_INT_EQ(rows, 901);
    fixture_done(&f);
}

TEST(console_heap_value_and_statement_sizes_are_bounded) {
    fixture f;
    fixture_init(&f);
    tn_close(f.st);
    tn_session_close(f.a);
    tn_session_close(f.g);
    tn_options o;
    tn_options_init(&o);
    o.console_heap = 8 << 20;
    f.st = open_with(f.dir, &o);
    ASSERT_OK(tn_session_open(f.st, f.acme.id, &f.a));
    ASSERT_OK(tn_session_open(f.st, f.globex.id, &f.g));
    /* Rows of 12 MiB each: every one is under the value limit, together they
     * are over the heap budget. */
    ASSERT_INT_EQ(tn_session_exec(f.a, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
                                       "FROM r WHERE n < 100000) SELECT max(n + length(zeroblob(3145728)"
                                       " || zeroblob(3145728) || zeroblob(3145728) || "
                                       "zeroblob(3145728))) FROM r",
                                  NULL, NULL),
                  TN_TOOBIG);
    ASSERT(strstr(tn_session_errmsg(f.a), "memory budget of 8 MiB") != NULL);
    /* One value over TN_CONSOLE_VALUE_MAX. */
    ASSERT_INT_EQ(tn_session_exec(f.a, "SELECT length(randomblob(20000000))", NULL, NULL),
                  TN_TOOBIG);
    ASSERT_INT_EQ(tn_session_exec(f.a, "SELECT length(hex(zeroblob(10000000)))", NULL, NULL),
                  TN_TOOBIG);
    /* A statement over TN_CONSOLE_SQL_MAX. */
    size_t big = TN_CONSOLE_SQL_MAX + 100;
    char *sql = malloc(big + 1);
    ASSERT(sql != NULL);
    memset(sql, ' ', big);
    memcpy(sql, "SELECT 1", 8);
    sql[big - 1] = ';';
    sql[big] = '\0';
    ASSERT_INT_EQ(tn_session_exec(f.a, sql, NULL, NULL), TN_TOOBIG);
    free(sql);
    /* The store's own calls keep their larger limits afterwards. */
    char *doc = malloc(TN_CONSOLE_VALUE_MAX + 100);
    ASSERT(doc != NULL);
    memset(doc, ' ', TN_CONSOLE_VALUE_MAX + 98);
    memcpy(doc, "[1]", 3);
    doc[TN_CONSOLE_VALUE_MAX + 98] = '\0';
    ASSERT_OK(tn_item_put(f.a, "big", doc, NULL));
    free(doc);
    ASSERT_INT_EQ(console_scalar(f.a, "SELECT 41 + 1"), 42);
    fixture_done(&f);
}

/* ---- quotas -------------------------------------------------------------------- */

TEST(item_quota_holds_for_console_and_api_and_counts_every_path) {
    fixture f;
    fixture_init(&f);
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, 50, -1)); /* acme holds 1 item */
    /* An INSERT ... SELECT over a generator stops at the quota: all of it. */
    ASSERT_INT_EQ(tn_session_exec(f.a, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
                                       "FROM r WHERE n < 5000) INSERT INTO items (id, data) "
                                       "SELECT 'gen' || n, '{}' FROM r",
                                  NULL, NULL),
                  TN_QUOTA);
    int64_t n = 0;
    ASSERT_OK(tn_item_count(f.a, &n));
    ASSERT_INT_EQ(n, 1);
    /* Up to the quota is fine. */
    ASSERT_OK(tn_session_exec(f.a, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
                                   "FROM r WHERE n < 49) INSERT INTO items (id, data) "
                                   "SELECT 'gen' || n, '{}' FROM r",
                              NULL, NULL));
    ASSERT_OK(tn_item_count(f.a, &n));
    ASSERT_INT_EQ(n, 50);
    ASSERT_INT_EQ(tn_session_exec(f.a, "INSERT INTO items (id, data) VALUES ('one-more', '{}')",
                                  NULL, NULL),
                  TN_QUOTA);
    ASSERT_INT_EQ(tn_item_put(f.a, "one-more", "{}", NULL), TN_QUOTA);
    ASSERT_INT_EQ(tn_item_create(f.a, "one-more", "{}", NULL), TN_QUOTA);
    ASSERT_INT_EQ(tn_item_put(f.a, NULL, "{}", NULL), TN_QUOTA);
    /* Replacing and updating at the quota is fine; a delete makes room; a
     * tombstone brought back counts again. */
    ASSERT_OK(tn_item_put(f.a, "gen1", "{\"v\":2}", NULL));
    ASSERT_OK(tn_session_exec(f.a, "UPDATE items SET data = '{\"v\":3}' WHERE id = 'gen2'", NULL,
                              NULL));
    ASSERT_OK(tn_item_delete(f.a, "gen3", 0));
    ASSERT_OK(tn_item_put(f.a, "one-more", "{}", NULL));
    ASSERT_INT_EQ(tn_item_put(f.a, "gen3", "{}", NULL), TN_QUOTA);
    ASSERT_OK(tn_session_exec(f.a, "DELETE FROM items WHERE id IN ('gen4', 'gen5')", NULL, NULL));
    ASSERT_OK(tn_item_put(f.a, "gen3", "{}", NULL));
    ASSERT_OK(tn_item_count(f.a, &n));
    ASSERT_INT_EQ(n, 49);
    /* The other tenant has no quota and is not counted against acme's. */
    for (int i = 0; i < 60; i++) {
        char id[16];
        snprintf(id, sizeof id, "g%d", i);
        ASSERT_OK(tn_item_put(f.g, id, "{}", NULL));
    }
    /* A quota lowered below the usage refuses growth, allows shrinking. */
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, 10, -1));
    ASSERT_INT_EQ(tn_item_put(f.a, "new", "{}", NULL), TN_QUOTA);
    ASSERT_OK(tn_item_delete(f.a, "gen6", 0));
    ASSERT_OK(tn_item_put(f.a, "gen7", "{}", NULL));
    /* No quota: anything goes again. */
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, -1, -1));
    ASSERT_OK(tn_item_put(f.a, "new", "{}", NULL));
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _tenant_usage"), 0);
    char *report = NULL;
    int rc = tn_check(f.st, &report);
    if (rc != TN_OK) TN_FAIL_("check: %s", report ? report : "");
    fixture_done(&f);
}

typedef struct racer {
    tn_store *st;
    const char *tenant;
    int id, rc;
    pthread_barrier_t *go;
} racer;

static void *race_put(void *arg) {
    racer *r = arg;
    tn_session *s;
    if (tn_session_open(r->st, r->tenant, &s) != TN_OK) {
        r->rc = -1;
        return NULL;
    }
    char id[16];
    snprintf(id, sizeof id, "race%d", r->id);
    pthread_barrier_wait(r->go);
    r->rc = tn_item_put(s, id, "{}", NULL);
    tn_session_close(s);
    return NULL;
}

/* Writers racing for the last free slots: exactly as many win as there are
 * slots, whatever the interleaving (group commit runs them in one
 * transaction; separate processes would serialize on the write lock). */
TEST(item_quota_is_atomic_under_concurrent_writers) {
    fixture f;
    fixture_init(&f);
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, 4, -1)); /* 1 used, 3 free */
    enum { N = 12 };
    racer r[N];
    pthread_t t[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        r[i] = (racer){f.st, f.acme.id, i, 0, &go};
        ASSERT(pthread_create(&t[i], NULL, race_put, &r[i]) == 0);
    }
    int ok = 0, quota = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ok += r[i].rc == TN_OK;
        quota += r[i].rc == TN_QUOTA;
    }
    pthread_barrier_destroy(&go);
    ASSERT_INT_EQ(ok, 3);
    ASSERT_INT_EQ(quota, N - 3);
    int64_t n = 0;
    ASSERT_OK(tn_item_count(f.a, &n));
    ASSERT_INT_EQ(n, 4);
    fixture_done(&f);
}
