/*
 * test_guard.c - hostile SQL typed into a tenant's console.
 *
 * Each attack runs in acme's session.  It must be refused, or succeed while
 * returning only acme's rows; afterwards everything globex owns (items, files
 * and their bytes, outbox, sync state) and what no tenant may touch (tenants,
 * keys, audit, the schema) must be exactly as it was.  Output is scanned for
 * globex's marker and for both tenants' ids.
 */
#include "auth.h"
#include "fixture.h"

#include <dirent.h>
#include <sodium.h>
#include <sys/stat.h>

typedef struct capture {
    char buf[1 << 16];
    size_t len;
    int rows;
} capture;

static int grab(void *arg, int stmt, int ncol, const char *const *names,
                const char *const *values) {
    (void)stmt;
    (void)names;
    capture *c = arg;
    c->rows++;
    for (int i = 0; i < ncol; i++) {
        const char *v = values[i] ? values[i] : "NULL";
        size_t n = strlen(v);
        if (c->len + n + 2 < sizeof c->buf) {
            memcpy(c->buf + c->len, v, n);
            c->len += n;
            c->buf[c->len++] = '|';
            c->buf[c->len] = '\0';
        }
    }
    return 0;
}

/* What no statement of acme's may change: every row globex owns (items, files,
 * outbox, sync state), the tenants, keys and audit tables, the schema, and
 * the bytes of globex's files on disk.  Read by a connection of the test's own
 * (not tenantry's) and from the file system, as one text compared whole. */
typedef struct snapshot {
    char *text;
    size_t len, cap;
} snapshot;

static const char *const globex_state[] = {
    "SELECT 'item', id, data, version, created_at, updated_at, deleted FROM _items "
    "WHERE tenant = ?1 ORDER BY id",
    "SELECT 'file', name, size, sha256, content_type, version, created_at, updated_at, deleted "
    "FROM _files WHERE tenant = ?1 ORDER BY name",
    "SELECT 'outbox', seq, kind, ref FROM _outbox WHERE tenant = ?1 ORDER BY seq",
    "SELECT 'sync', * FROM _sync_state WHERE tenant = ?1",
    "SELECT 'tenant', tid, id, name, created_at, settings FROM _tenants ORDER BY tid",
    "SELECT 'key', key_id, tenant, hex(hash), hex(salt), scopes, created_at, expires_at, "
    "revoked_at FROM _api_keys ORDER BY key_id",
    "SELECT 'audit', seq, at, actor, tenant, action, detail FROM _audit ORDER BY seq",
    "SELECT 'schema', type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name",
};

static void put(snapshot *s, const void *p, size_t n) {
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *t = realloc(s->text, cap);
        ASSERT(t != NULL);
        s->text = t;
        s->cap = cap;
    }
    memcpy(s->text + s->len, p, n);
    s->len += n;
    s->text[s->len] = '\0';
}

static void put_str(snapshot *s, const char *t) {
    put(s, t, strlen(t));
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The bytes of every file under dir, in name order. */
static void put_tree(snapshot *s, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        put_str(s, "(no directory)\n");
        return;
    }
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        put_str(s, "disk ");
        put_str(s, path);
        put_str(s, "\n");
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            put_tree(s, path);
        } else {
            size_t len = 0;
            char *bytes = tn_test_slurp(path, &len);
            if (bytes) put(s, bytes, len);
            free(bytes);
            put_str(s, "\n");
        }
        free(names[i]);
    }
}

static void take(fixture *f, snapshot *s) {
    memset(s, 0, sizeof *s);
    char path[4200];
    snprintf(path, sizeof path, "%s/tenantry.db", f->dir);
    sqlite3 *db;
    ASSERT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    long long g = raw_scalar(f->dir, "SELECT tid FROM _tenants WHERE name = 'globex'");
    ASSERT(g > 0);
    for (size_t i = 0; i < sizeof globex_state / sizeof *globex_state; i++) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(db, globex_state[i], -1, &q, NULL) != SQLITE_OK)
            TN_FAIL_("snapshot: %s: %s", globex_state[i], sqlite3_errmsg(db));
        if (sqlite3_bind_parameter_count(q)) sqlite3_bind_int64(q, 1, g);
        int rc;
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(q); c++) {
                const unsigned char *v = sqlite3_column_text(q, c);
                put_str(s, v ? (const char *)v : "NULL");
                put_str(s, "|");
            }
            put_str(s, "\n");
        }
        if (rc != SQLITE_DONE) TN_FAIL_("snapshot: %s: %s", globex_state[i], sqlite3_errmsg(db));
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    char files[4300];
    snprintf(files, sizeof files, "%s/files/%s", f->dir, f->globex.id);
    put_tree(s, files);
}

/* Where two snapshots first differ, for the failure message. */
static const char *first_difference(const snapshot *a, const snapshot *b) {
    size_t i = 0;
    while (i < a->len && i < b->len && a->text[i] == b->text[i]) i++;
    while (i > 0 && a->text[i - 1] != '\n') i--;
    return a->text + i;
}

/* Gives globex a file (bytes on disk and its row) and a key, so the snapshot
 * holds every kind of thing a tenant owns. */
static void guard_fixture_init(fixture *f) {
    fixture_init(f);
    char *path = NULL;
    ASSERT_OK(tn_session_file_path(f->g, "docs/g-file.txt", &path));
    char dir[4400];
    snprintf(dir, sizeof dir, "%s/files/%s", f->dir, f->globex.id);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/files/%s/docs", f->dir, f->globex.id);
    mkdir(dir, 0700);
    static const char bytes[] = "GLOBEX-FILE-BYTES";
    FILE *fp = fopen(path, "wb");
    ASSERT(fp != NULL);
    ASSERT(fwrite(bytes, 1, sizeof bytes - 1, fp) == sizeof bytes - 1);
    fclose(fp);
    free(path);
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256(h, (const unsigned char *)bytes, sizeof bytes - 1);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    ASSERT_OK(tn_file_record(f->g, "docs/g-file.txt", (int64_t)(sizeof bytes - 1), hex, "text/plain",
                             NULL));
    tn__key_info k;
    char key[TN__API_KEY_LEN];
    ASSERT_OK(tn__key_create(f->st, f->globex.id, TN__SCOPE_ALL, 0, &k, key));
    snapshot s;
    take(f, &s);
    if (!strstr(s.text, "file|docs/g-file.txt|") || !strstr(s.text, "outbox|") ||
        !strstr(s.text, "key|") || !strstr(s.text, "audit|") ||
        !strstr(s.text, "GLOBEX-FILE-BYTES"))
        TN_FAIL_("the snapshot misses a kind of row: %s", s.text);
    free(s.text);
}

/* The outcome of the last attack: its code, message and rows returned. */
static int last_rc, last_rows;
static char last_error[256];

/* Runs one attack; returns 1 when it was refused, 0 when it ran (own rows only). */
static int attack_n(fixture *f, const char *sql, size_t len) {
    snapshot before, after;
    take(f, &before);
    capture cap = {.len = 0};
    int rc = tn__session_exec_n(f->a, sql, len, grab, &cap);
    last_rc = rc;
    last_rows = cap.rows;
    snprintf(last_error, sizeof last_error, "%s", rc == TN_OK ? "" : tn_session_errmsg(f->a));
    if (strstr(cap.buf, "GLOBEX") || strstr(cap.buf, f->globex.id) || strstr(cap.buf, f->acme.id))
        TN_FAIL_("leak from: %s\n    output: %s", sql, cap.buf);
    /* A refused statement must not leave a transaction open either. */
    tn_session_exec(f->a, "ROLLBACK", NULL, NULL);
    take(f, &after);
    if (before.len != after.len || memcmp(before.text, after.text, before.len) != 0)
        TN_FAIL_("globex's state changed after: %s\n    first difference at: %.300s", sql,
                 first_difference(&after, &before));
    free(before.text);
    free(after.text);
    return rc != TN_OK;
}

static int attack(fixture *f, const char *sql) {
    return attack_n(f, sql, strlen(sql));
}

#define REFUSED(sql)                                                         \
    do { if (!attack(&f, sql)) TN_FAIL_("not refused: %s", sql); } while (0)

TEST(guard_refuses_direct_access_to_private_tables) {
    fixture f;
    guard_fixture_init(&f);
    const char *tables[] = {"_items", "_tenants", "_outbox", "_meta", "_api_keys", "_audit",
                            "_files", "sqlite_sequence", NULL};
    char sql[256];
    for (int i = 0; tables[i]; i++) {
        const char *forms[] = {"SELECT * FROM %s", "SELECT * FROM \"%s\"", "SELECT * FROM [%s]",
                               "SELECT * FROM `%s`", "SELECT * FROM '%s'", "SELECT * FROM main.%s",
                               "SELECT count(*) FROM %s", "SELECT 1 FROM %s LIMIT 1",
                               "DELETE FROM %s", "UPDATE %s SET rowid = rowid",
                               "INSERT INTO %s DEFAULT VALUES", "SELECT * FROM /* x */ %s", NULL};
        for (int k = 0; forms[k]; k++) {
            snprintf(sql, sizeof sql, forms[k], tables[i]);
            REFUSED(sql);
        }
    }
    /* Upper case and mixed case name the same table. */
    REFUSED("SELECT * FROM _ITEMS");
    REFUSED("SELECT * FROM _Items");
    fixture_done(&f);
}

TEST(guard_refuses_joins_subqueries_and_ctes_that_reach_private_tables) {
    fixture f;
    guard_fixture_init(&f);
    REFUSED("SELECT * FROM items JOIN _items");
    REFUSED("SELECT * FROM items, _items USING (id)");
    REFUSED("SELECT (SELECT data FROM _items LIMIT 1)");
    REFUSED("SELECT * FROM items WHERE id IN (SELECT id FROM _items)");
    REFUSED("SELECT * FROM items WHERE EXISTS (SELECT 1 FROM _tenants)");
    REFUSED("SELECT * FROM items UNION ALL SELECT id, data, version, created_at, updated_at "
            "FROM _items");
    /* A CTE named like the view (SQLite reports the CTE's name as context). */
    REFUSED("WITH items AS (SELECT * FROM _items) SELECT * FROM items");
    REFUSED("WITH items_insert AS (SELECT * FROM _items) SELECT * FROM items_insert");
    REFUSED("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
            "SELECT * FROM r, _items");
    REFUSED("WITH RECURSIVE r(x) AS (SELECT data FROM _items UNION SELECT x FROM r) "
            "SELECT * FROM r");
    REFUSED("SELECT * FROM pragma_table_info('_items')");
    REFUSED("SELECT * FROM dbstat");
    REFUSED("SELECT * FROM sqlite_stmt");
    REFUSED("SELECT * FROM pragma_database_list");
    /* Recursive CTEs over the view itself are fine and see only acme. */
    ASSERT(!attack(&f, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
                       "WHERE n < 3) SELECT n, id, data FROM r, items"));
    ASSERT(!attack(&f, "WITH x AS (SELECT * FROM items) SELECT * FROM x"));
    fixture_done(&f);
}

TEST(guard_keeps_writes_inside_the_tenant) {
    fixture f;
    guard_fixture_init(&f);
    REFUSED("UPDATE items SET tenant_id = 2");
    REFUSED("UPDATE items SET tenant = 2");
    REFUSED("INSERT INTO items (tenant, id, data) VALUES (2, 'x', '{}')");
    REFUSED("INSERT INTO items (tenant_id, id, data) VALUES (2, 'x', '{}')");
    REFUSED("UPDATE items SET id = 'g-only' WHERE id = 'shared-id'");
    REFUSED("UPDATE items SET version = 1");
    REFUSED("INSERT INTO items (id, data, version) VALUES ('v', '{}', 1)");
    REFUSED("INSERT INTO items (id, data) VALUES ('bad json', '{')");
    REFUSED("INSERT INTO items (id, data) VALUES ('x', 'not json')");
    /* These run but can only touch acme's rows. */
    ASSERT(!attack(&f, "UPDATE items SET data = '{\"pwned\":1}' WHERE id = 'g-only'"));
    ASSERT(!attack(&f, "UPDATE items SET data = '{\"pwned\":1}'"));
    ASSERT(!attack(&f, "DELETE FROM items WHERE id = 'g-only'"));
    ASSERT(!attack(&f, "INSERT INTO items (id, data) VALUES ('g-only', '{\"mine\":1}')"));
    ASSERT(!attack(&f, "DELETE FROM items"));
    ASSERT(!attack(&f, "REPLACE INTO items (id, data) VALUES ('shared-id', '{}')"));
    /* Files are changed only with their bytes, through the file calls. */
    REFUSED("INSERT INTO files (name, size, sha256) VALUES ('f', 1, '')");
    fixture_done(&f);
}

TEST(guard_refuses_schema_attach_pragma_and_extensions) {
    fixture f;
    guard_fixture_init(&f);
    char sql[4500];
    snprintf(sql, sizeof sql, "ATTACH '%s/tenantry.db' AS other", f.dir);
    REFUSED(sql);
    REFUSED("ATTACH ':memory:' AS m");
    REFUSED("DETACH main");
    snprintf(sql, sizeof sql, "VACUUM INTO '%s/copy.db'", f.dir);
    REFUSED(sql);
    REFUSED("VACUUM");
    REFUSED("PRAGMA writable_schema = ON");
    REFUSED("PRAGMA writable_schema");
    REFUSED("PRAGMA foreign_keys = OFF");
    REFUSED("PRAGMA trusted_schema = ON");
    REFUSED("PRAGMA journal_mode = DELETE");
    REFUSED("PRAGMA table_info(items)");
    REFUSED("PRAGMA user_version = 7");
    REFUSED("DROP VIEW items");
    REFUSED("DROP TRIGGER items_insert");
    REFUSED("DROP TABLE _items");
    REFUSED("ALTER TABLE items RENAME TO x");
    REFUSED("CREATE TABLE t (x)");
    REFUSED("CREATE TEMP TABLE t (x)");
    REFUSED("CREATE INDEX i ON items (id)");
    REFUSED("CREATE TEMP VIEW items AS SELECT 'x' AS id, 'y' AS data");
    REFUSED("CREATE TEMP VIEW v AS SELECT * FROM items");
    REFUSED("CREATE TEMP TRIGGER t INSTEAD OF INSERT ON items BEGIN SELECT 1; END");
    REFUSED("CREATE TEMP TRIGGER t AFTER INSERT ON _items BEGIN SELECT 1; END");
    REFUSED("CREATE VIRTUAL TABLE v USING fts5(x)");
    REFUSED("REINDEX");
    REFUSED("ANALYZE");
    REFUSED("SELECT load_extension('libc.so.6')");
    REFUSED("SELECT current_tenant()");
    REFUSED("SELECT current_tenant(1)");
    REFUSED("SELECT * FROM items WHERE current_tenant(2) = 2");
    REFUSED("SELECT tn_version(0)");
    REFUSED("INSERT INTO sqlite_master VALUES ('table', 'x', 'x', 0, 'CREATE TABLE x(y)')");
    REFUSED("UPDATE sqlite_schema SET sql = ''");
    /* The store still works, and the schema is intact. */
    ASSERT_OK(tn_item_put(f.a, "after", "{}", NULL));
    char *report = NULL;
    int rc = tn_check(f.st, &report);
    if (rc != TN_OK) TN_FAIL_("check: %s", report ? report : "");
    fixture_done(&f);
}

TEST(guard_handles_hostile_identifiers) {
    fixture f;
    guard_fixture_init(&f);
    /* A very long identifier. */
    size_t n = 200000;
    char *sql = malloc(n + 64);
    ASSERT(sql != NULL);
    memcpy(sql, "SELECT * FROM \"", 15);
    memset(sql + 15, 'x', n);
    memcpy(sql + 15 + n, "\"", 2);
    REFUSED(sql);
    /* A long identifier ending in a private name, and a private name padded. */
    memcpy(sql + 15 + n - 6, "_items", 6);
    REFUSED(sql);
    free(sql);
    /* A NUL byte inside the SQL, given whole with its length (as the console
     * reads stdin): refused as such before anything runs, neither cut short
     * nor taken for a syntax error.  Without the refusal the first would run
     * its first statement and the last would insert a row. */
    static const char nul[] = "SELECT id FROM items\0; SELECT * FROM _items";
    static const char quoted[] = "SELECT * FROM \"_items\0\"";
    static const char insert[] = "INSERT INTO items (id, data) VALUES ('nul', '{}');\0--";
    const char *texts[] = {nul, quoted, insert};
    const size_t lens[] = {sizeof nul - 1, sizeof quoted - 1, sizeof insert - 1};
    for (int i = 0; i < 3; i++) {
        ASSERT(memchr(texts[i], '\0', lens[i]) != NULL);
        if (!attack_n(&f, texts[i], lens[i])) TN_FAIL_("not refused: %s", texts[i]);
        ASSERT_INT_EQ(last_rc, TN_INVALID);
        ASSERT_STR_EQ(last_error, "the SQL contains a NUL byte");
        ASSERT_INT_EQ(last_rows, 0);
    }
    ASSERT_INT_EQ(tn_item_get(f.a, "nul", NULL), TN_NOTFOUND);
    /* The same texts as C strings end at the NUL: what runs is the part before. */
    ASSERT(!attack(&f, nul));
    ASSERT_INT_EQ(last_rows, 1);
    /* Quoting games with embedded quotes do not reach the table. */
    REFUSED("SELECT * FROM \"_it\"\"ems\"");
    REFUSED("SELECT * FROM \"\"\"_items\"\"\"");
    /* Unicode look-alikes name no table. */
    REFUSED("SELECT * FROM \"\xef\xbc\xbfitems\"");
    fixture_done(&f);
}

TEST(guard_allows_ordinary_tenant_sql) {
    fixture f;
    guard_fixture_init(&f);
    capture cap = {.len = 0};
    ASSERT_OK(tn_session_exec(f.a, "SELECT id, json_extract(data, '$.owner') FROM items", grab,
                              &cap));
    ASSERT_INT_EQ(cap.rows, 1);
    ASSERT_STR_EQ(cap.buf, "shared-id|acme|");
    cap = (capture){.len = 0};
    ASSERT_OK(tn_session_exec(f.a,
                              "BEGIN; INSERT INTO items (id, data) VALUES ('c1', '{\"n\":1}');"
                              "INSERT INTO items (id, data) VALUES ('c2', '{\"n\":2}');"
                              "UPDATE items SET data = json_set(data, '$.n', 9) WHERE id = 'c1';"
                              "DELETE FROM items WHERE id = 'c2'; COMMIT;"
                              "SELECT id, data FROM items WHERE id LIKE 'c%' ORDER BY id;"
                              "SELECT count(*) FROM items, json_each(items.data);"
                              "PRAGMA data_version",
                              grab, &cap));
    ASSERT(strstr(cap.buf, "c1|{\"n\":9}|") == cap.buf);
    ASSERT(strstr(cap.buf, "c2|") == NULL);
    /* Identifiers that merely contain a private name are fine. */
    ASSERT_OK(tn_session_exec(f.a, "SELECT json_extract(data, '$.my_items') AS x_items FROM items",
                              NULL, NULL));
    fixture_done(&f);
}

TEST(guard_refuses_the_schema_table) {
    fixture f;
    guard_fixture_init(&f);
    REFUSED("SELECT * FROM sqlite_schema");
    REFUSED("SELECT * FROM sqlite_master");
    REFUSED("SELECT * FROM temp.sqlite_master");
    REFUSED("SELECT * FROM sqlite_temp_schema");
    REFUSED("UPDATE sqlite_master SET sql = '' WHERE name = 'items'");
    REFUSED("WITH q AS (SELECT sql FROM sqlite_schema) SELECT * FROM q");
    fixture_done(&f);
}

TEST(open_transaction_is_rolled_back_when_the_session_ends) {
    fixture f;
    guard_fixture_init(&f);
    ASSERT_OK(tn_session_begin(f.a));
    ASSERT_OK(tn_session_exec(f.a, "INSERT INTO items (id, data) VALUES ('pending', '{}')",
                              NULL, NULL));
    tn_session_close(f.a);
    ASSERT_OK(tn_session_open(f.st, f.acme.id, &f.a));
    ASSERT_INT_EQ(tn_item_get(f.a, "pending", NULL), TN_NOTFOUND);
    /* The connection is usable by the next tenant, with no leftovers. */
    ASSERT_OK(tn_item_put(f.g, "next", "{}", NULL));
    fixture_done(&f);
}

/* ---- functions and connection settings --------------------------------------- */

/* The functions tenant SQL may call, pinned: a change to the list in
 * src/store/guard.c must change this test too. */
static const char *const expected_functions[] = {
    "->", "->>", "abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "avg",
    "ceil", "ceiling", "char", "coalesce", "concat", "concat_ws", "cos", "cosh", "count",
    "cume_dist", "current_date", "current_time", "current_timestamp", "date", "datetime",
    "degrees", "dense_rank", "exp", "first_value", "floor", "format", "glob", "group_concat",
    "hex", "ifnull", "iif", "instr", "json", "json_array", "json_array_length",
    "json_error_position", "json_extract", "json_group_array", "json_group_object",
    "json_insert", "json_object", "json_patch", "json_pretty", "json_quote", "json_remove",
    "json_replace", "json_set", "json_type", "json_valid", "julianday", "lag", "last_value",
    "lead", "length", "like", "likelihood", "likely", "ln", "log", "log10", "log2", "lower",
    "ltrim", "max", "min", "mod", "nth_value", "ntile", "nullif", "octet_length",
    "percent_rank", "pi", "pow", "power", "printf", "quote", "radians", "random", "randomblob",
    "rank", "replace", "round", "row_number", "rtrim", "sign", "sin", "sinh", "soundex",
    "sqrt", "strftime", "string_agg", "substr", "substring", "sum", "tan", "tanh", "time",
    "timediff", "total", "trim", "trunc", "typeof", "unhex", "unicode", "unixepoch",
    "unlikely", "upper", "zeroblob", NULL};

static int expected_function(const char *name) {
    for (int i = 0; expected_functions[i]; i++)
        if (strcmp(expected_functions[i], name) == 0) return 1;
    return 0;
}

/* Calls name with narg arguments in acme's console; 1 when it was refused. */
static int function_refused(fixture *f, const char *name, int narg) {
    char sql[400];
    int n = snprintf(sql, sizeof sql, "SELECT %.63s(", name);
    if (strcmp(name, "->") == 0 || strcmp(name, "->>") == 0)
        snprintf(sql, sizeof sql, "SELECT '{}' %.3s '$'", name);
    else {
        for (int i = 0; i < (narg < 0 ? 1 : narg); i++)
            n += snprintf(sql + n, sizeof sql - (size_t)n, "%s'1'", i ? ", " : "");
        snprintf(sql + n, sizeof sql - (size_t)n, ")");
    }
    int rc = tn_session_exec(f->a, sql, NULL, NULL);
    return rc != TN_OK && (rc == TN_DENIED || strstr(tn_session_errmsg(f->a), "not authorized"));
}

static void null_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc, (void)argv;
    sqlite3_result_null(ctx);
}

TEST(guard_functions_are_an_allow_list) {
    fixture f;
    fixture_init(&f);
    /* The list itself. */
    size_t n = 0;
    const char *const *list = tn__guard_allowed_functions(&n);
    size_t want = 0;
    while (expected_functions[want]) want++;
    ASSERT_INT_EQ(n, want);
    for (size_t i = 0; i < n; i++) ASSERT_STR_EQ(list[i], expected_functions[i]);
    /* Every function this SQLite and this store know, as the connection
     * sees them: those on the list run, every other one is refused. */
    tn__conn *c;
    ASSERT_OK(tn__conn_get(f.st, 1, &c));
    sqlite3_stmt *q;
    ASSERT_INT_EQ(sqlite3_prepare_v2(c->db, "SELECT DISTINCT name, narg FROM pragma_function_list "
                                            "ORDER BY name", -1, &q, NULL),
                  SQLITE_OK);
    static char names[400][64];
    int nargs[400], count = 0;
    while (sqlite3_step(q) == SQLITE_ROW && count < 400) {
        snprintf(names[count], sizeof names[count], "%s", (const char *)sqlite3_column_text(q, 0));
        nargs[count++] = sqlite3_column_int(q, 1);
    }
    sqlite3_finalize(q);
    tn__conn_put(f.st, c);
    ASSERT(count > 100);
    int allowed = 0, refused = 0, saw_tokenizer = 0;
    for (int i = 0; i < count; i++) {
        int no = function_refused(&f, names[i], nargs[i]);
        if (expected_function(names[i]) && no)
            TN_FAIL_("%s/%d refused: %s", names[i], nargs[i], tn_session_errmsg(f.a));
        if (!expected_function(names[i]) && !no) TN_FAIL_("%s/%d allowed", names[i], nargs[i]);
        allowed += !no;
        refused += no;
        saw_tokenizer |= strcmp(names[i], "fts3_tokenizer") == 0;
    }
    ASSERT(allowed > 80 && refused > 10);
    ASSERT(saw_tokenizer); /* this SQLite has it: the refusal above is real */
    /* By name, the dangerous ones, in every disguise. */
    REFUSED("SELECT fts3_tokenizer('simple')");
    REFUSED("SELECT hex(fts3_tokenizer('simple'))");
    REFUSED("SELECT fts3_tokenizer('mine', x'0000000000000000')");
    REFUSED("WITH items AS (SELECT fts3_tokenizer('simple') AS id) SELECT * FROM items");
    REFUSED("SELECT * FROM (SELECT fts3_tokenizer('porter')) AS items_insert");
    REFUSED("SELECT load_extension('libc.so.6')");
    REFUSED("SELECT LOAD_EXTENSION('libc.so.6', 'system')");
    REFUSED("SELECT sqlite_version()");
    REFUSED("SELECT last_insert_rowid()");
    REFUSED("SELECT total_changes()");
    REFUSED("SELECT tn_json_valid('{}')");
    REFUSED("SELECT no_such_function(1)");
    /* A function registered after this list was written (as a later SQLite
     * or a program could) is refused until someone adds it. */
    ASSERT_INT_EQ(sqlite3_create_function(f.a->c->db, "shiny_new", 0, SQLITE_UTF8, NULL,
                                          null_fn, NULL, NULL),
                  SQLITE_OK);
    REFUSED("SELECT shiny_new()");
    /* Ordinary SQL keeps working. */
    capture cap = {.len = 0};
    ASSERT_OK(tn_session_exec(f.a, "SELECT upper(id), json_extract(data, '$.owner'), "
                                   "data ->> '$.owner', length(data), datetime(0, 'unixepoch'), "
                                   "round(pi(), 2), coalesce(NULL, 'x') FROM items",
                              grab, &cap));
    ASSERT_STR_EQ(cap.buf, "SHARED-ID|acme|acme|16|1970-01-01 00:00:00|3.14|x|");
    fixture_done(&f);
}

static int db_config(sqlite3 *db, int op) {
    int v = -1;
    sqlite3_db_config(db, op, -1, &v);
    return v;
}

TEST(connections_disable_what_the_store_does_not_need) {
    fixture f;
    fixture_init(&f);
    sqlite3 *db = f.a->c->db;
    ASSERT_INT_EQ(db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER), 0);
    ASSERT_INT_EQ(db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION), 0);
    ASSERT_INT_EQ(db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA), 0);
    ASSERT_INT_EQ(db_config(db, SQLITE_DBCONFIG_DEFENSIVE), 1);
    ASSERT_INT_EQ(db_config(db, SQLITE_DBCONFIG_WRITABLE_SCHEMA), 0);
    ASSERT_INT_EQ(db_config(db, SQLITE_DBCONFIG_LEGACY_ALTER_TABLE), 0);
    ASSERT_INT_EQ(db_config(db, SQLITE_DBCONFIG_DQS_DML), 0);
    ASSERT_INT_EQ(db_config(db, SQLITE_DBCONFIG_DQS_DDL), 0);
    ASSERT_INT_EQ(sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, -1), 0);
    tn__conn *c;
    ASSERT_OK(tn__conn_get(f.st, 1, &c));
    sqlite3_stmt *q;
    ASSERT_INT_EQ(sqlite3_prepare_v2(c->db, "PRAGMA recursive_triggers", -1, &q, NULL), SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_step(q), SQLITE_ROW);
    ASSERT_INT_EQ(sqlite3_column_int(q, 0), 0); /* Debian's default is on */
    sqlite3_finalize(q);
    tn__conn_put(f.st, c);
    /* And a console cannot turn any of it back on. */
    REFUSED("PRAGMA recursive_triggers = ON");
    REFUSED("PRAGMA trusted_schema = ON");
    REFUSED("PRAGMA recursive_triggers");
    fixture_done(&f);
}

/* ---- the text check reads each statement once ----------------------------------- */

/* The check as it was: every forbidden name searched for as a whole word at
 * every byte.  The word-set version must refuse exactly what this refuses. */
static int old_ident_byte(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '$' || ch >= 0x80;
}

static int old_names(const char *sql, const char *name) {
    size_t n = strlen(name), len = strlen(sql);
    for (size_t i = 0; i + n <= len; i++) {
        if (strncasecmp(sql + i, name, n) != 0) continue;
        if (i > 0 && old_ident_byte((unsigned char)sql[i - 1])) continue;
        if (i + n < len && old_ident_byte((unsigned char)sql[i + n])) continue;
        return 1;
    }
    return 0;
}

TEST(guard_text_refuses_exactly_what_the_byte_by_byte_search_refused) {
    fixture f;
    fixture_init(&f);
    static const char *const internal[] = {
        "current_tenant", "tn_version", "tn_now", "tn_new_id", "tn_file_writer",
        "tn_file_row_valid", "tn_item_id_valid", "tn_json_valid", "load_extension",
        "sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema", NULL};
    char names[64][64];
    int nn = 0;
    for (int i = 0; internal[i]; i++) snprintf(names[nn++], sizeof names[0], "%s", internal[i]);
    char path[4200];
    snprintf(path, sizeof path, "%s/tenantry.db", f.dir);
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    ASSERT_INT_EQ(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type = 'table' "
                                         "AND substr(name, 1, 1) = '_'", -1, &q, NULL),
                  SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW && nn < 64)
        snprintf(names[nn++], sizeof names[0], "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
    ASSERT(nn > 20);
    static const char *const bits[] = {
        "_items", "_ITEMS", "_Items", "_item", "_itemsx", "x_items", "items", "sqlite_master",
        "SQLITE_SCHEMA", "sqlite_schemata", "current_tenant", "Current_Tenant", "tn_now",
        "tn_nowx", "$", "_", "a", "1", " ", "'", "\"", "[", "]", "`", ".", "(", ")", ",",
        ";", "--", "/*", "*/", "\n", "\xc3\xa9", "\xef\xbc\xbf", "\x80", "_tenant_usage",
        "_tenant_usages", "_outbox", "-_outbox", "$_outbox", "load_extension", "tn_json_valid",
        NULL};
    int nbits = 0;
    while (bits[nbits]) nbits++;
    unsigned seed = 777;
    int refused = 0;
    char sql[512];
    for (int i = 0; i < 20000; i++) {
        size_t len = 0;
        int parts = 1 + (int)(((seed = seed * 1103515245 + 12345) >> 16) % 8);
        for (int k = 0; k < parts; k++) {
            const char *b = bits[((seed = seed * 1103515245 + 12345) >> 16) % (unsigned)nbits];
            len += (size_t)snprintf(sql + len, sizeof sql - len, "%s", b);
        }
        int old = 0;
        for (int k = 0; k < nn && !old; k++) old = old_names(sql, names[k]);
        int now = tn__guard_text(f.st, sql) != TN_OK;
        if (old != now) TN_FAIL_("%s: the old check %s, the new one %s", sql,
                                 old ? "refused" : "allowed", now ? "refused" : "allowed");
        refused += now;
    }
    ASSERT(refused > 2000 && refused < 18000); /* both verdicts were exercised */
    fixture_done(&f);
}
