/*
 * store.c - benchmark (not a test): tenantry's tenant session against a plain
 * SQLite table, in the same run, with the same pragmas.
 *
 *   bench_store [N] [ROUNDS] [N1]  defaults: 100000 items, 5 rounds, N1 = N/10
 *
 * Baseline: one table with the same columns and primary key as _items, no
 * views, triggers or outbox; WAL, synchronous FULL, foreign keys on, the same
 * busy timeout.  Each round uses fresh databases in a temporary directory:
 *   single  N1 inserts, one transaction each (fsync per commit; a rate, so
 *           fewer rows: N of them take minutes on a slow disk)
 *   bulk    N inserts in one transaction
 *   read    N point reads by random id
 *   console N INSERT statements in one transaction, as one SQL text: through
 *           the tenant console (tn_session_exec, what `tenantry sql` runs)
 *           against sqlite3_exec into a plain two-column table (what the
 *           sqlite3 shell does with the same text)
 * Prints the median rate of each side per workload and the ratio
 * tenantry / raw (higher is better for tenantry; 1.0 is parity), then the
 * same for CPU time per row (the process's, one thread): on a machine shared
 * with other work the wall-clock rates swing from round to round, the CPU
 * each side spends per row much less.
 *
 *   bench_store --threads T N    raw SQLite only: T threads, each with its own
 *                                connection, insert N rows in all, one row per
 *                                transaction (the baseline for POST /v1/items
 *                                at T concurrent clients; bench/http.sh)
 */
#include <pthread.h>
#include "tenantry.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXROUNDS 15

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "bench_store: %s: %s\n", what, detail);
    exit(1);
}

static const char *DOC = "{\"kind\":\"sensor\",\"temp\":21.5,\"tags\":[\"a\",\"b\"],\"ok\":true}";
static const char *TENANT = "6f1c2a52-4d0e-4c1b-9a7e-1d2c3b4a5f60"; /* raw table's tenant */

static void item_id(char *buf, size_t n, int i) {
    snprintf(buf, n, "item-%08d", i);
}

/* ---- raw SQLite ------------------------------------------------------------ */

static sqlite3 *raw_open(const char *dir) {
    char path[4400];
    snprintf(path, sizeof path, "%s/raw.db", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) die("raw open", sqlite3_errmsg(db));
    const char *setup =
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
        "CREATE TABLE items (tenant_id TEXT NOT NULL, id TEXT NOT NULL, data TEXT, "
        "  version INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, "
        "  deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, id)) STRICT;";
    char *err = NULL;
    if (sqlite3_exec(db, setup, NULL, NULL, &err) != SQLITE_OK) die("raw setup", err);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void raw_insert(sqlite3 *db, int n, int one_txn) {
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db,
                       "INSERT INTO items (tenant_id, id, data, version, created_at, updated_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                       -1, &s, NULL);
    if (one_txn) sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    char id[32];
    for (int i = 0; i < n; i++) {
        item_id(id, sizeof id, i);
        sqlite3_bind_text(s, 1, TENANT, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 3, DOC, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, (int64_t)i + 1);
        sqlite3_bind_int64(s, 5, (int64_t)time(NULL) * 1000);
        if (sqlite3_step(s) != SQLITE_DONE) die("raw insert", sqlite3_errmsg(db));
        sqlite3_reset(s);
    }
    if (one_txn) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(s);
}

/* "BEGIN; INSERT INTO items (id, data) VALUES ('item-00000000', '<DOC>'); ... COMMIT;" */
static char *console_script(int n) {
    size_t cap = (size_t)n * (strlen(DOC) + 80) + 64, len = 0;
    char *sql = malloc(cap);
    if (!sql) die("malloc", "out of memory");
    len += (size_t)snprintf(sql, cap, "BEGIN;\n");
    char id[32];
    for (int i = 0; i < n; i++) {
        item_id(id, sizeof id, i);
        len += (size_t)snprintf(sql + len, cap - len,
                                "INSERT INTO items (id, data) VALUES ('%s', '%s');\n", id, DOC);
    }
    snprintf(sql + len, cap - len, "COMMIT;\n");
    return sql;
}

static void raw_console(sqlite3 *db, const char *script) {
    char *err = NULL;
    if (sqlite3_exec(db, "CREATE TABLE plain (id TEXT PRIMARY KEY, data TEXT)", NULL, NULL,
                     &err) != SQLITE_OK)
        die("raw console", err);
    /* The same text, with the plain table's name. */
    size_t n = strlen(script);
    char *sql = malloc(n + 1);
    if (!sql) die("malloc", "out of memory");
    memcpy(sql, script, n + 1);
    for (char *p = sql; (p = strstr(p, "INTO items ")) != NULL; p += 11) memcpy(p, "INTO plain ", 11);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) die("raw console", err);
    free(sql);
}

static void raw_read(sqlite3 *db, int n, const int *order) {
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db,
                       "SELECT id, data, version, created_at, updated_at FROM items "
                       "WHERE tenant_id = ?1 AND id = ?2 AND deleted = 0",
                       -1, &s, NULL);
    char id[32];
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        item_id(id, sizeof id, order[i]);
        sqlite3_bind_text(s, 1, TENANT, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s) != SQLITE_ROW) die("raw read", "missing row");
        /* Copy out what tn_item_get copies, so both sides do the same work. */
        char *a = strdup((const char *)sqlite3_column_text(s, 0));
        char *b = strdup((const char *)sqlite3_column_text(s, 1));
        bytes += strlen(a) + strlen(b);
        free(a);
        free(b);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    if (bytes == 0) die("raw read", "nothing read");
}

static void rm_rf(const char *dir);

/* T writers at once, each its own connection and its own rows, one
 * transaction (one fsync) per row; SQLite's busy handler serializes them. */
typedef struct {
    sqlite3 *db;
    int from, n;
} writer;

static void *writer_run(void *arg) {
    writer *w = arg;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(w->db,
                           "INSERT INTO items (tenant_id, id, data, version, created_at, updated_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                           -1, &s, NULL) != SQLITE_OK)
        die("prepare", sqlite3_errmsg(w->db));
    char id[32];
    for (int i = w->from; i < w->from + w->n; i++) {
        item_id(id, sizeof id, i);
        sqlite3_bind_text(s, 1, TENANT, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 3, DOC, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, (int64_t)i + 1);
        sqlite3_bind_int64(s, 5, (int64_t)time(NULL) * 1000);
        if (sqlite3_step(s) != SQLITE_DONE) die("threaded insert", sqlite3_errmsg(w->db));
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    return NULL;
}

static int threads_main(int t, int n) {
    if (t < 1 || t > 256 || n < t) die("usage", "bench_store --threads T(1-256) N(>=T)");
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tn-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) die("mkdtemp", "failed");
    sqlite3 *first = raw_open(dir); /* creates the table */
    writer *w = calloc((size_t)t, sizeof *w);
    pthread_t *th = calloc((size_t)t, sizeof *th);
    if (!w || !th) die("calloc", "out of memory");
    char path[4400];
    snprintf(path, sizeof path, "%s/raw.db", dir);
    for (int i = 0; i < t; i++) {
        if (sqlite3_open(path, &w[i].db) != SQLITE_OK) die("open", sqlite3_errmsg(w[i].db));
        sqlite3_exec(w[i].db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", NULL, NULL, NULL);
        sqlite3_busy_timeout(w[i].db, 60000);
        w[i].from = i * (n / t);
        w[i].n = i == t - 1 ? n - i * (n / t) : n / t;
    }
    double t0 = now_s();
    for (int i = 0; i < t; i++) pthread_create(&th[i], NULL, writer_run, &w[i]);
    for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
    double dt = now_s() - t0;
    for (int i = 0; i < t; i++) sqlite3_close(w[i].db);
    sqlite3_close(first);
    free(w);
    free(th);
    rm_rf(dir);
    printf("raw one-row transactions, %d threads: %.0f rows/s (%d rows, synchronous=FULL, WAL)\n", t,
           n / dt, n);
    return 0;
}

/* ---- tenantry ---------------------------------------------------------------- */

static tn_store *tn_setup(const char *dir, tn_session **s) {
    char path[4400];
    snprintf(path, sizeof path, "%s/tn", dir);
    tn_options o;
    tn_options_init(&o);
    o.create = 1;
    /* The console's time budget does not change its speed; a loaded machine
     * must not stop the measurement. */
    o.busy_timeout_ms = 60000;
    o.console_ms = 30000;
    tn_store *st;
    if (tn_open(path, &o, &st) != TN_OK) die("tn_open", tn_errmsg(NULL));
    tn_tenant t, other;
    if (tn_tenant_create(st, "bench", &t) != TN_OK) die("tenant", tn_errmsg(st));
    /* A second tenant, so the views really filter. */
    if (tn_tenant_create(st, "other", &other) != TN_OK) die("tenant", tn_errmsg(st));
    if (tn_session_open(st, t.id, s) != TN_OK) die("session", tn_errmsg(st));
    return st;
}

static void tn_insert(tn_session *s, int n, int one_txn) {
    char id[32];
    if (one_txn && tn_session_begin(s) != TN_OK) die("begin", "");
    for (int i = 0; i < n; i++) {
        item_id(id, sizeof id, i);
        if (tn_item_put(s, id, DOC, NULL) != TN_OK) die("put", tn_session_errmsg(s));
    }
    if (one_txn && tn_session_commit(s) != TN_OK) die("commit", "");
}

static void tn_read(tn_session *s, int n, const int *order) {
    char id[32];
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        item_id(id, sizeof id, order[i]);
        tn_item it = {0};
        if (tn_item_get(s, id, &it) != TN_OK) die("get", tn_session_errmsg(s));
        bytes += strlen(it.id) + strlen(it.data);
        tn_item_clear(&it);
    }
    if (bytes == 0) die("tn read", "nothing read");
}

/* ---- driver ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void rm_rf(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_store: could not remove %s\n", dir);
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--threads") == 0)
        return threads_main((int)strtol(argv[2], NULL, 10), (int)strtol(argv[3], NULL, 10));
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 100000;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    int n1 = argc > 3 ? (int)strtol(argv[3], NULL, 10) : n / 10;
    if (n1 < 100 || n1 > n) die("usage", "bench_store [N] [ROUNDS] [N1: 100..N]");
    if (n < 100 || rounds < 1 || rounds > MAXROUNDS) die("usage", "bench_store [N>=100] [ROUNDS 1-15]");
    int *order = malloc((size_t)n * sizeof *order);
    if (!order) die("malloc", "out of memory");
    for (int i = 0; i < n; i++) order[i] = i;
    srand(42);
    for (int i = n - 1; i > 0; i--) {
        int j = rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }

    const char *names[4] = {"single", "bulk", "read", "console"};
    double raw[4][MAXROUNDS], tn[4][MAXROUNDS];
    double rawc[4][MAXROUNDS], tnc[4][MAXROUNDS]; /* CPU microseconds per row */
    char *script = console_script(n);
    const char *tmp = getenv("TMPDIR");
    for (int r = 0; r < rounds; r++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/tn-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) die("mkdtemp", "failed");
        for (int w = 0; w < 2; w++) {
            /* Alternate which side goes first, so neither always gets a warm disk. */
            for (int side = 0; side < 2; side++) {
                int is_tn = (side + r) % 2;
                char sub[4200];
                snprintf(sub, sizeof sub, "%s/%s-%s", dir, is_tn ? "t" : "r", names[w]);
                if (mkdir(sub, 0700) != 0) die("mkdir", sub);
                double t0, c0, dt;
                if (is_tn) {
                    tn_session *s;
                    tn_store *st = tn_setup(sub, &s);
                    t0 = now_s();
                    c0 = cpu_s();
                    tn_insert(s, w == 1 ? n : n1, w == 1);
                    dt = now_s() - t0;
                    tn[w][r] = (w == 1 ? n : n1) / dt;
                    tnc[w][r] = (cpu_s() - c0) / (w == 1 ? n : n1) * 1e6;
                    if (w == 1) { /* reads on the bulk-loaded store */
                        t0 = now_s();
                        c0 = cpu_s();
                        tn_read(s, n, order);
                        tn[2][r] = n / (now_s() - t0);
                        tnc[2][r] = (cpu_s() - c0) / n * 1e6;
                    }
                    tn_session_close(s);
                    tn_close(st);
                } else {
                    sqlite3 *db = raw_open(sub);
                    t0 = now_s();
                    c0 = cpu_s();
                    raw_insert(db, w == 1 ? n : n1, w == 1);
                    dt = now_s() - t0;
                    raw[w][r] = (w == 1 ? n : n1) / dt;
                    rawc[w][r] = (cpu_s() - c0) / (w == 1 ? n : n1) * 1e6;
                    if (w == 1) {
                        t0 = now_s();
                        c0 = cpu_s();
                        raw_read(db, n, order);
                        raw[2][r] = n / (now_s() - t0);
                        rawc[2][r] = (cpu_s() - c0) / n * 1e6;
                    }
                    sqlite3_close(db);
                }
            }
        }
        for (int side = 0; side < 2; side++) {
            int is_tn = (side + r) % 2;
            char sub[4200];
            snprintf(sub, sizeof sub, "%s/%s-%s", dir, is_tn ? "t" : "r", names[3]);
            if (mkdir(sub, 0700) != 0) die("mkdir", sub);
            double t0, c0;
            if (is_tn) {
                tn_session *s;
                tn_store *st = tn_setup(sub, &s);
                t0 = now_s();
                c0 = cpu_s();
                if (tn_session_exec(s, script, NULL, NULL) != TN_OK)
                    die("console", tn_session_errmsg(s));
                tn[3][r] = n / (now_s() - t0);
                tnc[3][r] = (cpu_s() - c0) / n * 1e6;
                tn_session_close(s);
                tn_close(st);
            } else {
                sqlite3 *db = raw_open(sub);
                t0 = now_s();
                c0 = cpu_s();
                raw_console(db, script);
                raw[3][r] = n / (now_s() - t0);
                rawc[3][r] = (cpu_s() - c0) / n * 1e6;
                sqlite3_close(db);
            }
        }
        rm_rf(dir);
        fprintf(stderr, "round %d/%d: single %.0f/%.0f  bulk %.0f/%.0f  read %.0f/%.0f  "
                "console %.0f/%.0f (tenantry/raw per s)\n",
                r + 1, rounds, tn[0][r], raw[0][r], tn[1][r], raw[1][r], tn[2][r], raw[2][r],
                tn[3][r], raw[3][r]);
    }
    free(script);

    const char *label[4] = {"one-row transactions (insert)", "one bulk transaction (insert)",
                            "point reads", "console: INSERT statements, one transaction"};
    const double target[4] = {0.90, 0.70, 0.90, 0.70};
    printf("\n%d items (one-row transactions: %d), %d rounds, medians (rows/s); synchronous=FULL, WAL\n\n",
           n, n1, rounds);
    printf("| workload | raw SQLite | tenantry | ratio | target |\n|---|---:|---:|---:|---:|\n");
    for (int w = 0; w < 4; w++) {
        double mr = median(raw[w], rounds), mt = median(tn[w], rounds);
        printf("| %s | %.0f | %.0f | %.2fx | >= %.2fx |\n", label[w], mr, mt, mt / mr, target[w]);
    }
    printf("\nCPU per row (microseconds, medians; ratio raw / tenantry, higher is better)\n\n");
    printf("| workload | raw SQLite | tenantry | ratio |\n|---|---:|---:|---:|\n");
    for (int w = 0; w < 4; w++) {
        double mr = median(rawc[w], rounds), mt = median(tnc[w], rounds);
        printf("| %s | %.2f | %.2f | %.2fx |\n", label[w], mr, mt, mr / mt);
    }
    free(order);
    return 0;
}
