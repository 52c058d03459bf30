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
#include "schema.h"

#include <pthread.h>
#include <sys/stat.h>
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

#define REFUSED_BY(s, sql)                                                   \
    do {                                                                     \
        int rc_ = tn_session_exec((s), (sql), NULL, NULL);                   \
        if (rc_ != TN_DENIED) TN_FAIL_("not refused (%s): %s", tn_errname(rc_), (sql)); \
    } while (0)

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

/* 1 when some connection holds the write lock of the store probe is open on
 * (no busy timeout: a held lock answers at once).  One connection for every
 * probe, so a probe is cheap enough to catch a short window even under
 * valgrind, which runs one thread at a time. */
static int write_locked(sqlite3 *probe) {
    int locked = sqlite3_exec(probe, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_BUSY;
    sqlite3_exec(probe, "ROLLBACK", NULL, NULL, NULL);
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
    char path[4200];
    snprintf(path, sizeof path, "%s/tenantry.db", f.dir);
    sqlite3 *probe;
    ASSERT(sqlite3_open(path, &probe) == SQLITE_OK);
    runaway r = {.st = f.st, .tenant = f.acme.id, .sql = sql};
    pthread_t t;
    ASSERT(pthread_create(&t, NULL, run_console, &r) == 0);
    int locked = 0;
    for (int i = 0; i < 4000 && !locked; i++) {
        locked = write_locked(probe);
        if (!locked) usleep(1000);
    }
    sqlite3_close(probe);
    if (!locked) { /* the console holds the write lock now, or this says why not */
        pthread_join(t, NULL);
        TN_FAIL_("never saw the console's write lock: it ended %s after %lld ms: %s",
                 tn_errname(r.rc), (long long)r.ms, r.err);
    }
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
    char path[4200];
    snprintf(path, sizeof path, "%s/tenantry.db", f.dir);
    sqlite3 *probe;
    ASSERT(sqlite3_open(path, &probe) == SQLITE_OK);
    ASSERT(!write_locked(probe));
    sqlite3_close(probe);
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
    tn_session_close(f.a);
    tn_session_close(f.g);
    tn_close(f.st);
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
    tn_session_close(f.a);
    tn_session_close(f.g);
    tn_close(f.st);
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

/* ---- files ---------------------------------------------------------------------- */

static const char SHA_ABC[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

static int file_row(void *arg, int stmt, int ncol, const char *const *names,
                    const char *const *values) {
    (void)stmt, (void)names;
    char *out = arg;
    size_t n = strlen(out);
    for (int i = 0; i < ncol; i++)
        n += (size_t)snprintf(out + n, 4096 - n, "%s|", values[i] ? values[i] : "NULL");
    return 0;
}

/* Every change tenant SQL could make to its files rows is refused, by the
 * schema, and the rows, the byte count and the quota are as before. */
TEST(console_cannot_rewrite_files) {
    fixture f;
    fixture_init(&f);
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, -1, 100));
    ASSERT_OK(tn_file_record(f.a, "doc.txt", 3, SHA_ABC, "text/plain", NULL));
    char before[4096] = "";
    ASSERT_OK(tn_session_exec(f.a, "SELECT * FROM files", file_row, before));
    const char *attacks[] = {
        "UPDATE files SET size = 0",
        "UPDATE files SET size = 9223372036854775807",
        "UPDATE files SET size = -1",
        "UPDATE files SET sha256 = 'not a checksum'",
        "UPDATE files SET name = '../../etc/passwd'",
        "UPDATE files SET content_type = 'a' || char(10) || 'b'",
        "DELETE FROM files",
        "DELETE FROM files WHERE name = 'doc.txt'",
        "INSERT INTO files (name, size, sha256) VALUES ('doc.txt', 0, "
        "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')",
        "INSERT INTO files (name, size, sha256) VALUES ('new.txt', 0, "
        "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')",
        "INSERT INTO files (name, size, sha256) VALUES ('big', 9223372036854775807, "
        "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')",
        "INSERT INTO files (name, size, sha256) VALUES ('../x', 1, "
        "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')",
        "INSERT INTO files (name, size, sha256) VALUES ('a//b', 1, '')",
        "INSERT INTO files (name, size, sha256) VALUES ('x', 1, 'ZZZZ')",
        "REPLACE INTO files (name, size, sha256) VALUES ('doc.txt', 0, '')",
        "INSERT INTO files SELECT * FROM files",
        NULL};
    for (int i = 0; attacks[i]; i++) {
        int rc = tn_session_exec(f.a, attacks[i], NULL, NULL);
        if (rc == TN_OK) TN_FAIL_("not refused: %s", attacks[i]);
        if (rc != TN_DENIED && rc != TN_INVALID)
            TN_FAIL_("%s: %s (%s)", attacks[i], tn_errname(rc), tn_session_errmsg(f.a));
    }
    ASSERT_INT_EQ(tn_session_exec(f.a, "DELETE FROM files", NULL, NULL), TN_DENIED);
    ASSERT(strstr(tn_session_errmsg(f.a), "file API") != NULL);
    char after[4096] = "";
    ASSERT_OK(tn_session_exec(f.a, "SELECT * FROM files", file_row, after));
    ASSERT_STR_EQ(after, before);
    int64_t bytes = 0;
    ASSERT_OK(tn_file_bytes(f.a, &bytes));
    ASSERT_INT_EQ(bytes, 3);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT file_bytes FROM _tenant_usage"), 3);
    /* The file calls still work, and so does the quota. */
    ASSERT_OK(tn_file_record(f.a, "doc.txt", 90, SHA_ABC, NULL, NULL));
    ASSERT_INT_EQ(tn_file_record(f.a, "other", 20, SHA_ABC, NULL, NULL), TN_QUOTA);
    ASSERT_OK(tn_file_delete(f.a, "doc.txt"));
    ASSERT_OK(tn_file_record(f.a, "other", 20, SHA_ABC, NULL, NULL));
    fixture_done(&f);
}

/* The usage view: a tenant with quotas reads its own row (what the quota
 * counts), another tenant none of it, nobody writes through it; the byte
 * count before an upload comes from it, equal to the sum of the sizes. */
TEST(usage_view_is_the_tenants_own_and_read_only) {
    fixture f;
    fixture_init(&f);
    ASSERT_INT_EQ(console_scalar(f.a, "SELECT count(*) FROM usage"), 0); /* no quota: no row */
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, 50, 1000));
    ASSERT_OK(tn_file_record(f.a, "a.bin", 300, SHA_ABC, NULL, NULL));
    ASSERT_OK(tn_file_record(f.a, "b.bin", 120, SHA_ABC, NULL, NULL));
    ASSERT_OK(tn_file_record(f.g, "g.bin", 7, SHA_ABC, NULL, NULL));
    ASSERT_OK(tn_session_exec(f.a, "INSERT INTO items (id, data) VALUES ('i1', '1')", NULL, NULL));
    ASSERT_INT_EQ(console_scalar(f.a, "SELECT count(*) FROM usage"), 1);
    ASSERT_INT_EQ(console_scalar(f.a, "SELECT file_bytes FROM usage"), 420);
    ASSERT_INT_EQ(console_scalar(f.a, "SELECT items FROM usage"),
                  console_scalar(f.a, "SELECT count(*) FROM items"));
    ASSERT(console_scalar(f.a, "SELECT items FROM usage") >= 1);
    ASSERT_INT_EQ(console_scalar(f.a, "SELECT max_file_bytes FROM usage"), 1000);
    ASSERT_INT_EQ(console_scalar(f.g, "SELECT count(*) FROM usage"), 0); /* acme's row is not globex's */
    const char *writes[] = {"UPDATE usage SET file_bytes = 0", "DELETE FROM usage",
                            "INSERT INTO usage VALUES (0, 0, NULL, NULL)",
                            "UPDATE usage SET max_file_bytes = NULL", NULL};
    for (int i = 0; writes[i]; i++)
        if (tn_session_exec(f.a, writes[i], NULL, NULL) == TN_OK) TN_FAIL_("not refused: %s", writes[i]);
    ASSERT_INT_EQ(console_scalar(f.a, "SELECT file_bytes FROM usage"), 420);
    int64_t bytes = 0;
    ASSERT_OK(tn_file_bytes(f.a, &bytes));
    ASSERT_INT_EQ(bytes, 420);
    ASSERT_OK(tn_file_bytes(f.g, &bytes)); /* no quota: the sum */
    ASSERT_INT_EQ(bytes, 7);
    ASSERT_OK(tn_file_delete(f.a, "a.bin"));
    ASSERT_OK(tn_file_bytes(f.a, &bytes));
    ASSERT_INT_EQ(bytes, 120);
    fixture_done(&f);
}

/* What the file calls refuse, the schema refuses too, for every caller: a
 * trusted connection writing _files directly included. */
TEST(file_rows_are_checked_by_the_schema_for_every_caller) {
    fixture f;
    fixture_init(&f);
    ASSERT_INT_EQ(tn_file_record(f.a, "f", -1, SHA_ABC, NULL, NULL), TN_INVALID);
    ASSERT_INT_EQ(tn_file_record(f.a, "f", TN_FILE_SIZE_MAX + 1, SHA_ABC, NULL, NULL),
                  TN_INVALID);
    ASSERT_INT_EQ(tn_file_record(f.a, "f", 1, SHA_ABC, "a\tb", NULL), TN_INVALID);
    ASSERT_OK(tn_file_record(f.a, "f", TN_FILE_SIZE_MAX, SHA_ABC, NULL, NULL));
    tn__conn *c;
    ASSERT_OK(tn__conn_get(f.st, 1, &c));
    const char *rows[] = {
        "INSERT INTO _files (tenant, name, size, sha256, version, created_at, updated_at) "
        "VALUES (1, 'ok-name', 9223372036854775807, "
        "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 1, 1, 1)",
        "INSERT INTO _files (tenant, name, size, sha256, version, created_at, updated_at) "
        "VALUES (1, '../up', 1, "
        "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 1, 1, 1)",
        "INSERT INTO _files (tenant, name, size, sha256, version, created_at, updated_at) "
        "VALUES (1, 'ok-name', 1, '', 1, 1, 1)",
        "UPDATE _files SET size = 9223372036854775807",
        "UPDATE _files SET sha256 = upper(sha256)",
        NULL};
    for (int i = 0; rows[i]; i++) {
        char *err = NULL;
        int src = sqlite3_exec(c->db, rows[i], NULL, NULL, &err);
        if (src == SQLITE_OK) TN_FAIL_("accepted: %s", rows[i]);
        if (!err || !strstr(err, "invalid file row")) TN_FAIL_("%s: %s", rows[i], err ? err : "");
        sqlite3_free(err);
    }
    tn__conn_put(f.st, c);
    char *report = NULL;
    int rc = tn_check(f.st, &report);
    if (rc != TN_OK) TN_FAIL_("check: %s", report ? report : "");
    fixture_done(&f);
}

typedef struct file_racer {
    tn_store *st;
    const char *tenant;
    int id, rc;
    pthread_barrier_t *go;
} file_racer;

static void *race_record(void *arg) {
    file_racer *r = arg;
    tn_session *s;
    if (tn_session_open(r->st, r->tenant, &s) != TN_OK) {
        r->rc = -1;
        return NULL;
    }
    char name[16];
    snprintf(name, sizeof name, "up%d", r->id);
    pthread_barrier_wait(r->go);
    r->rc = tn_file_record(s, name, 60, SHA_ABC, NULL, NULL);
    tn_session_close(s);
    return NULL;
}

/* Uploads racing for one quota: the check and the record are one step, so
 * only as many pass as fit.  The byte arithmetic never overflows, whatever
 * the quota and the sizes. */
TEST(file_quota_is_atomic_and_cannot_overflow) {
    fixture f;
    fixture_init(&f);
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, -1, 100));
    enum { N = 8 };
    file_racer r[N];
    pthread_t t[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        r[i] = (file_racer){f.st, f.acme.id, i, 0, &go};
        ASSERT(pthread_create(&t[i], NULL, race_record, &r[i]) == 0);
    }
    int ok = 0, quota = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ok += r[i].rc == TN_OK;
        quota += r[i].rc == TN_QUOTA;
    }
    pthread_barrier_destroy(&go);
    ASSERT_INT_EQ(ok, 1);
    ASSERT_INT_EQ(quota, N - 1);
    /* The largest quota and the largest files: refused or stored, never an
     * arithmetic error. */
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, -1, INT64_MAX));
    char name[32];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "huge%d", i);
        ASSERT_OK(tn_file_record(f.a, name, TN_FILE_SIZE_MAX, SHA_ABC, NULL, NULL));
    }
    int64_t bytes = 0;
    ASSERT_OK(tn_file_bytes(f.a, &bytes));
    ASSERT_INT_EQ(bytes, 20 * TN_FILE_SIZE_MAX + 60);
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, -1, 20 * TN_FILE_SIZE_MAX + 100));
    ASSERT_INT_EQ(tn_file_record(f.a, "one-more", TN_FILE_SIZE_MAX, SHA_ABC, NULL, NULL),
                  TN_QUOTA);
    ASSERT_OK(tn_file_record(f.a, "fits", 40, SHA_ABC, NULL, NULL));
    ASSERT_OK(tn_file_record(f.a, "empty", 0, SHA_ABC, NULL, NULL));
    fixture_done(&f);
}

static void stub_fn(sqlite3_context *c, int n, sqlite3_value **v) {
    (void)n, (void)v;
    sqlite3_result_int(c, 1);
}

/* A store from before this schema may hold rows the console rewrote (a size
 * near 2^63) and have quotas set: it opens, counts usage without
 * overflowing, keeps refusing growth past the quota, and `check` names the
 * bad row. */
TEST(older_store_with_rewritten_file_rows_upgrades) {
    char dir[3800], path[4000], err[256] = "";
    snprintf(dir, sizeof dir, "%s/v3", tn_test_tmpdir());
    ASSERT(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/tenantry.db", dir);
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    static const char *const fns[] = {"tn_json_valid", "tn_item_id_valid", "current_tenant",
                                      "tn_version", "tn_now", "tn_new_id"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        ASSERT_INT_EQ(sqlite3_create_function(db, fns[i], -1, SQLITE_UTF8, NULL, stub_fn, NULL,
                                              NULL),
                      SQLITE_OK);
    int mrc = tn__migrate(db, tn__migrations, 3, err, sizeof err);
    if (mrc != TN_OK) TN_FAIL_("migrate to 3: %s", err);
    ASSERT_INT_EQ(sqlite3_exec(db,
                               "INSERT INTO _tenants (id, name, created_at) VALUES "
                               "('0c7e3f9a-1b2c-4d5e-8f90-123456789abc', 'old', 1);"
                               "INSERT INTO _files (tenant, name, size, sha256, version, "
                               "created_at, updated_at) VALUES "
                               "(1, 'huge', 9223372036854775807, '', 1, 1, 1),"
                               "(1, 'small', 5, '', 2, 1, 1);"
                               "INSERT INTO _tenant_settings (tenant, max_file_bytes) "
                               "VALUES (1, 1000)",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    sqlite3_close(db);
    tn_store *st;
    ASSERT_OK(tn_open(dir, NULL, &st));
    tn_session *s;
    ASSERT_OK(tn_session_open(st, "0c7e3f9a-1b2c-4d5e-8f90-123456789abc", &s));
    int64_t bytes = 0;
    ASSERT_OK(tn_file_bytes(s, &bytes));
    ASSERT(bytes > 0);
    ASSERT_INT_EQ(tn_file_record(s, "new", 10, SHA_ABC, NULL, NULL), TN_QUOTA);
    /* Replacing the bad row with a real one is allowed, and frees the room. */
    ASSERT_OK(tn_file_record(s, "huge", 10, SHA_ABC, NULL, NULL));
    ASSERT_OK(tn_file_record(s, "new", 10, SHA_ABC, NULL, NULL));
    ASSERT_INT_EQ(raw_scalar(dir, "SELECT file_bytes FROM _tenant_usage"), 25);
    ASSERT_OK(tn_file_bytes(s, &bytes));
    ASSERT_INT_EQ(bytes, 25);
    char *report = NULL;
    ASSERT_INT_EQ(tn_check(st, &report), TN_CORRUPT); /* 'small' has no checksum */
    ASSERT(report && strstr(report, "1 files have a name, size, checksum") != NULL);
    free(report);
    tn_session_close(s);
    tn_close(st);
}

/* ---- shapes --------------------------------------------------------------------- */

typedef struct rows_text {
    char buf[1 << 20];
    size_t len;
} rows_text;

static int append_rows(void *arg, int stmt, int ncol, const char *const *names,
                       const char *const *values) {
    (void)stmt, (void)names;
    rows_text *r = arg;
    for (int i = 0; i < ncol; i++)
        r->len += (size_t)snprintf(r->buf + r->len, sizeof r->buf - r->len, "%s%s",
                                   values[i] ? values[i] : "NULL", i + 1 < ncol ? "|" : "\n");
    return 0;
}

static int raw_rows(void *arg, int ncol, char **values, char **names) {
    return append_rows(arg, 0, ncol, (const char *const *)names, (const char *const *)values);
}

/* Bulk statements share a compiled shape with their literals bound: each
 * bound value must be exactly what SQLite makes of the literal.  The oracle
 * is SQLite itself, running the same statements as written against a plain
 * table. */
TEST(console_shapes_bind_exactly_what_the_literals_meant) {
    fixture f;
    fixture_init(&f);
    ASSERT_OK(tn_session_exec(f.a, "DELETE FROM items", NULL, NULL));
    sqlite3 *oracle;
    ASSERT_INT_EQ(sqlite3_open(":memory:", &oracle), SQLITE_OK);
    /* The oracle's items upsert like the store's. */
    ASSERT_INT_EQ(sqlite3_exec(oracle,
                               "CREATE TABLE t (id TEXT PRIMARY KEY, data TEXT);"
                               "CREATE VIEW items AS SELECT id, data FROM t;"
                               "CREATE TRIGGER i INSTEAD OF INSERT ON items BEGIN "
                               "  INSERT INTO t VALUES (NEW.id, NEW.data) "
                               "  ON CONFLICT (id) DO UPDATE SET data = excluded.data; END;"
                               "CREATE TRIGGER u INSTEAD OF UPDATE ON items BEGIN "
                               "  UPDATE t SET data = NEW.data WHERE id = OLD.id; END;"
                               "CREATE TRIGGER d INSTEAD OF DELETE ON items BEGIN "
                               "  DELETE FROM t WHERE id = OLD.id; END;",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    static const char *const pieces[] = {"''", ";", "--", "/*", "*/", "\"", "?", ":a", "$b",
                                         "@c", "#d", "x", " ", "\n", "\xc3\xa9", "\\", "[",
                                         "]", "`", "0", "items", "-", "''''", "%", NULL};
    int npieces = 0;
    while (pieces[npieces]) npieces++;
    size_t cap = 4 << 20, len = 6;
    char *sql = malloc(cap), *one = malloc(4096);
    ASSERT(sql && one);
    memcpy(sql, "BEGIN;", 7); /* one commit: 600 fsyncs would take the budget */
    unsigned seed = 12345;
    for (int i = 0; i < 600; i++) {
        char content[512] = "";
        size_t cl = 0;
        int n = (int)((seed = seed * 1103515245 + 12345) >> 16) % 12;
        for (int k = 0; k < n; k++) {
            const char *pc = pieces[((seed = seed * 1103515245 + 12345) >> 16) % (unsigned)npieces];
            cl += (size_t)snprintf(content + cl, sizeof content - cl, "%s", pc);
        }
        switch (i % 6) {
        case 0:
        case 1:
        case 2:
            snprintf(one, 4096, "INSERT INTO items (id, data) VALUES ('k%d', json_quote('%s'));",
                     i % 250, content);
            break;
        case 3:
            snprintf(one, 4096, "UPDATE items SET data = json_quote('%s' || 'u') WHERE id = 'k%d';",
                     content, (i * 7) % 250);
            break;
        case 4:
            snprintf(one, 4096, "/* c */ DELETE FROM items WHERE id = 'k%d' AND '%s' <> '';\n",
                     (i * 13) % 250, content);
            break;
        default:
            /* A string literal where SQLite takes it as a name: no shape. */
            snprintf(one, 4096, "INSERT INTO 'items' ('id', \"data\") VALUES ('n%d', "
                                "json_quote('%s')) -- done\n;",
                     i, content);
        }
        size_t ol = strlen(one);
        ASSERT(len + ol + 1 < cap);
        memcpy(sql + len, one, ol + 1);
        len += ol;
        /* The oracle runs each statement on its own, as written. */
        char *err = NULL;
        if (sqlite3_exec(oracle, one, NULL, NULL, &err) != SQLITE_OK)
            TN_FAIL_("oracle: %s: %s", one, err ? err : "");
    }
    ASSERT(len + 8 < cap);
    memcpy(sql + len, "COMMIT;", 8);
    int64_t shaped = f.st->console_shaped;
    ASSERT_OK(tn_session_exec(f.a, sql, NULL, NULL));
    /* Five in six statements ran as a shape; the sixth has names in quotes. */
    ASSERT_INT_EQ(f.st->console_shaped - shaped, 500);
    static rows_text got, want;
    got.len = want.len = 0;
    ASSERT_OK(tn_session_exec(f.a, "SELECT id, data FROM items ORDER BY id", append_rows, &got));
    ASSERT_INT_EQ(sqlite3_exec(oracle, "SELECT id, data FROM items ORDER BY id", raw_rows, &want,
                               NULL),
                  SQLITE_OK);
    ASSERT(want.len > 1000);
    ASSERT_STR_EQ(got.buf, want.buf);
    sqlite3_close(oracle);
    free(sql);
    free(one);
    fixture_done(&f);
}

/* A shape is checked by the authorizer like the statement, and statements
 * that are no shape run as written: parameters, rows returned, a refused
 * function, a failing row in the middle of a bulk load. */
TEST(console_shapes_keep_the_guard_and_the_errors) {
    fixture f;
    fixture_init(&f);
    REFUSED_BY(f.a, "INSERT INTO items (id, data) VALUES ('a', fts3_tokenizer('simple'))");
    REFUSED_BY(f.a, "INSERT INTO items (id, data) VALUES ('a', '{}');"
                    "INSERT INTO items (id, data) VALUES ('b', fts3_tokenizer('simple'))");
    ASSERT_INT_EQ(tn_item_get(f.a, "a", NULL), TN_OK); /* the first ran; no transaction */
    /* A parameter is NULL, as it always was: the id is generated. */
    int64_t n0 = 0, n1 = 0;
    ASSERT_OK(tn_item_count(f.a, &n0));
    ASSERT_OK(tn_session_exec(f.a, "INSERT INTO items (id, data) VALUES (?, '{}')", NULL, NULL));
    ASSERT_OK(tn_item_count(f.a, &n1));
    ASSERT_INT_EQ(n1, n0 + 1);
    /* A bad row in the middle of a transaction: all of it is undone. */
    ASSERT_INT_EQ(tn_session_exec(f.a, "BEGIN;"
                                       "INSERT INTO items (id, data) VALUES ('s1', '{}');"
                                       "INSERT INTO items (id, data) VALUES ('s2', '{bad');"
                                       "INSERT INTO items (id, data) VALUES ('s3', '{}');"
                                       "COMMIT",
                                  NULL, NULL),
                  TN_INVALID);
    ASSERT_INT_EQ(tn_item_get(f.a, "s1", NULL), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_item_get(f.a, "s3", NULL), TN_NOTFOUND);
    /* The same shape with a valid row works after a failed one. */
    ASSERT_OK(tn_session_exec(f.a, "INSERT INTO items (id, data) VALUES ('s4', '{bad');", NULL,
                              NULL) == TN_INVALID
                  ? tn_session_exec(f.a, "INSERT INTO items (id, data) VALUES ('s4', '[1]');"
                                         "INSERT INTO items (id, data) VALUES ('s5', '[2]')",
                                    NULL, NULL)
                  : TN_ERROR);
    ASSERT_OK(tn_item_get(f.a, "s5", NULL));
    /* Statements that return rows keep their own column names. */
    rows_text *r = calloc(1, sizeof *r);
    ASSERT(r != NULL);
    ASSERT_OK(tn_session_exec(f.a, "SELECT 'lit' AS name, 'x'", append_rows, r));
    ASSERT_STR_EQ(r->buf, "lit|x\n");
    free(r);
    fixture_done(&f);
}
