/*
 * test_store.c - the store core: opening, pragmas, migrations, tenants, items,
 * cursors, versions, the outbox, check, threads and crashes.
 */
#include "fixture.h"
#include "json_check.h"
#include "auth.h"
#include "outbox.h"
#include "schema.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- errors ---- */

TEST(errors_have_names_messages_and_retry_advice) {
    ASSERT_STR_EQ(tn_errname(TN_NOTFOUND), "TN_NOTFOUND");
    ASSERT_STR_EQ(tn_strerror(TN_NOTFOUND), "not found");
    ASSERT_STR_EQ(tn_errname(TN_OK), "TN_OK");
    ASSERT_STR_EQ(tn_errname(9999), "TN_UNKNOWN");
    ASSERT_STR_EQ(tn_strerror(-1), "unknown error");
    ASSERT(tn_err_retryable(TN_BUSY));
    ASSERT(tn_err_retryable(TN_NETWORK));
    ASSERT(!tn_err_retryable(TN_INVALID));
    ASSERT(!tn_err_retryable(TN_CONFLICT));
}

/* ---- open, pragmas, migrations ---- */

TEST(open_missing_store_fails_clearly) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/nothing-here", tn_test_tmpdir());
    tn_store *st = NULL;
    ASSERT_INT_EQ(tn_open(dir, NULL, &st), TN_NOTFOUND);
    ASSERT(st == NULL);
    ASSERT(strstr(tn_errmsg(NULL), "tenantry init") != NULL);
    struct stat sb;
    ASSERT(stat(dir, &sb) != 0); /* nothing half-created */
}

TEST(open_creates_wal_database_with_current_schema) {
    fixture f;
    fixture_init(&f);
    int v = 0;
    ASSERT_OK(tn_schema_version(f.st, &v));
    ASSERT_INT_EQ(v, tn__migration_count);
    ASSERT(tn__migration_count >= 1);
    fixture_done(&f);
    /* WAL is persistent in the file: an independent connection sees it. */
    char path[4200];
    snprintf(path, sizeof path, "%s/tenantry.db", f.dir);
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    ASSERT_INT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_step(s), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
    /* Only the owner may read the store. */
    struct stat sb;
    ASSERT(stat(path, &sb) == 0);
    ASSERT_INT_EQ(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/files", f.dir);
    ASSERT(stat(path, &sb) == 0);
    ASSERT_INT_EQ(sb.st_mode & 0777, 0700);
}

static long long conn_pragma(tn_store *st, const char *sql) {
    tn__conn *c;
    if (tn__conn_get(st, 1, &c) != TN_OK) return -1;
    sqlite3_stmt *s;
    long long v = -1;
    if (sqlite3_prepare_v2(c->db, sql, -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    tn__conn_put(st, c);
    return v;
}

TEST(connections_have_durable_pragmas) {
    fixture f;
    fixture_init(&f);
    ASSERT_INT_EQ(conn_pragma(f.st, "PRAGMA synchronous"), 2); /* FULL */
    ASSERT_INT_EQ(conn_pragma(f.st, "PRAGMA foreign_keys"), 1);
    ASSERT_INT_EQ(conn_pragma(f.st, "PRAGMA trusted_schema"), 0);
    ASSERT_INT_EQ(conn_pragma(f.st, "PRAGMA busy_timeout"), 5000);
    fixture_done(&f);

    tn_options o;
    tn_options_init(&o);
    o.synchronous = TN_SYNC_NORMAL;
    o.busy_timeout_ms = 1234;
    tn_store *st;
    ASSERT_OK(tn_open(f.dir, &o, &st));
    ASSERT_INT_EQ(conn_pragma(st, "PRAGMA synchronous"), 1);
    ASSERT_INT_EQ(conn_pragma(st, "PRAGMA busy_timeout"), 1234);
    tn_close(st);
}

TEST(newer_database_is_refused_and_left_alone) {
    fixture f;
    fixture_init(&f);
    fixture_done(&f);
    ASSERT_INT_EQ(raw_scalar(f.dir, "PRAGMA user_version = 999"), 0);
    tn_store *st = NULL;
    ASSERT_INT_EQ(tn_open(f.dir, NULL, &st), TN_VERSION);
    ASSERT(strstr(tn_errmsg(NULL), "newer") != NULL);
    ASSERT_INT_EQ(raw_scalar(f.dir, "PRAGMA user_version"), 999);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _items"), 3);
}

TEST(empty_database_file_is_migrated_on_open) {
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/old", tn_test_tmpdir());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/tenantry.db", dir);
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK); /* version 0: no schema */
    ASSERT_INT_EQ(sqlite3_exec(db, "CREATE TABLE leftover(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    tn_store *st;
    ASSERT_OK(tn_open(dir, NULL, &st));
    int v = 0;
    ASSERT_OK(tn_schema_version(st, &v));
    ASSERT_INT_EQ(v, tn__migration_count);
    tn_tenant t;
    ASSERT_OK(tn_tenant_create(st, "after-migration", &t));
    tn_close(st);
}

/* Migrations beyond the shipped ones, to exercise upgrade and failure paths. */
static tn__migration *test_migrations(const char *extra2, const char *extra3, int *n) {
    static tn__migration m[64];
    int k = 0;
    for (; k < tn__migration_count; k++) m[k] = tn__migrations[k];
    m[k++] = (tn__migration){k, "test_add_column.sql", extra2};
    if (extra3) m[k++] = (tn__migration){k, "test_broken.sql", extra3};
    *n = k;
    return m;
}

TEST(older_database_is_migrated_in_place_keeping_rows) {
    fixture f;
    fixture_init(&f);
    fixture_done(&f);
    int n;
    tn__migration *m = test_migrations(
        "ALTER TABLE _items ADD COLUMN note TEXT; UPDATE _meta SET value = value WHERE 0;", NULL, &n);
    char path[4200], err[256] = "";
    snprintf(path, sizeof path, "%s/tenantry.db", f.dir);
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_OK(tn__migrate(db, m, n, err, sizeof err));
    sqlite3_close(db);
    ASSERT_INT_EQ(raw_scalar(f.dir, "PRAGMA user_version"), n);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM pragma_table_info('_items') "
                                    "WHERE name = 'note'"), 1);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _items"), 3);
}

TEST(failed_migration_leaves_the_file_untouched) {
    fixture f;
    fixture_init(&f);
    fixture_done(&f);
    int n;
    /* Migration N+1 is good, N+2 fails half way: neither may stick. */
    tn__migration *m = test_migrations("ALTER TABLE _items ADD COLUMN note TEXT;",
                                       "CREATE TABLE _half (x); SELECT no_such_function();", &n);
    char path[4200], err[256] = "";
    snprintf(path, sizeof path, "%s/tenantry.db", f.dir);
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    int rc = tn__migrate(db, m, n, err, sizeof err);
    sqlite3_close(db);
    ASSERT(rc != TN_OK);
    ASSERT(strstr(err, "test_broken.sql") != NULL);
    ASSERT_INT_EQ(raw_scalar(f.dir, "PRAGMA user_version"), tn__migration_count);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM sqlite_schema WHERE name = '_half'"), 0);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM pragma_table_info('_items') "
                                    "WHERE name = 'note'"), 0);
}

/* ---- tenants ---- */

static int is_uuid4(const char *s) {
    if (strlen(s) != 36 || s[14] != '4') return 0;
    if (!strchr("89ab", s[19])) return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (!strchr("0123456789abcdef", s[i])) {
            return 0;
        }
    }
    return 1;
}

TEST(tenants_get_generated_uuid4_ids) {
    fixture f;
    fixture_init(&f);
    ASSERT(is_uuid4(f.acme.id));
    ASSERT(is_uuid4(f.globex.id));
    ASSERT(strcmp(f.acme.id, f.globex.id) != 0);
    tn_tenant t;
    ASSERT_OK(tn_tenant_find(f.st, "ACME", &t)); /* names are case-insensitive */
    ASSERT_STR_EQ(t.id, f.acme.id);
    ASSERT_OK(tn_tenant_get(f.st, f.globex.id, &t));
    ASSERT_STR_EQ(t.name, "globex");
    fixture_done(&f);
}

TEST(tenant_names_are_validated_and_unique) {
    fixture f;
    fixture_init(&f);
    tn_tenant t;
    ASSERT_INT_EQ(tn_tenant_create(f.st, "Acme", &t), TN_EXISTS);
    const char *bad[] = {"", "-lead", ".dot", "has space", "semi;colon", "quote'", "slash/x",
                         "ünicode", NULL};
    for (int i = 0; bad[i]; i++) ASSERT_INT_EQ(tn_tenant_create(f.st, bad[i], &t), TN_INVALID);
    ASSERT_INT_EQ(tn_tenant_create(f.st, NULL, &t), TN_INVALID);
    char longname[TN_TENANT_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ASSERT_INT_EQ(tn_tenant_create(f.st, longname, &t), TN_INVALID);
    longname[TN_TENANT_NAME_MAX] = '\0';
    ASSERT_OK(tn_tenant_create(f.st, longname, &t));
    ASSERT_INT_EQ(tn_tenant_get(f.st, "not-a-uuid", &t), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_tenant_get(f.st, "00000000-0000-4000-8000-000000000000", &t), TN_NOTFOUND);
    fixture_done(&f);
}

static int count_cb(const tn_tenant *t, void *arg) {
    (void)t;
    (*(int *)arg)++;
    return 0;
}

TEST(tenant_rename_and_delete) {
    fixture f;
    fixture_init(&f);
    ASSERT_INT_EQ(tn_tenant_rename(f.st, f.acme.id, "globex"), TN_EXISTS);
    ASSERT_OK(tn_tenant_rename(f.st, f.acme.id, "acme-2"));
    tn_tenant t;
    ASSERT_INT_EQ(tn_tenant_find(f.st, "acme", &t), TN_NOTFOUND);
    ASSERT_OK(tn_tenant_find(f.st, "acme-2", &t));
    ASSERT_STR_EQ(t.id, f.acme.id); /* the id never changes */

    /* A tenant with files on disk and pending outbox rows. */
    char *path = NULL;
    ASSERT_OK(tn_session_file_path(f.g, "doc.txt", &path));
    char dirp[4300];
    snprintf(dirp, sizeof dirp, "%s/files/%s", f.dir, f.globex.id);
    mkdir(dirp, 0700);
    FILE *fp = fopen(path, "w");
    ASSERT(fp != NULL);
    fputs("x", fp);
    fclose(fp);
    free(path);
    tn_session_close(f.g);
    f.g = NULL;
    ASSERT_OK(tn_tenant_delete(f.st, f.globex.id));
    ASSERT_INT_EQ(tn_tenant_get(f.st, f.globex.id, &t), TN_NOTFOUND);
    int n = 0;
    ASSERT_OK(tn_tenant_list(f.st, count_cb, &n));
    ASSERT_INT_EQ(n, 1);
    struct stat sb;
    ASSERT(stat(dirp, &sb) != 0);
    ASSERT_INT_EQ(tn_tenant_delete(f.st, f.globex.id), TN_NOTFOUND);
    char *report = NULL;
    ASSERT_OK(tn_check(f.st, &report));
    fixture_done(&f);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _items"), 1);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _outbox WHERE tenant NOT IN "
                                    "(SELECT tid FROM _tenants)"), 0);
    /* The audit log keeps the history. */
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _audit WHERE action = 'tenant.delete'"), 1);
}

TEST(session_needs_a_real_tenant) {
    fixture f;
    fixture_init(&f);
    tn_session *s = NULL;
    ASSERT_INT_EQ(tn_session_open(f.st, "00000000-0000-4000-8000-000000000000", &s), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_session_open(f.st, "acme", &s), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_session_open(f.st, "' OR 1=1 --", &s), TN_NOTFOUND);
    ASSERT(s == NULL);
    fixture_done(&f);
}

/* ---- items ---- */

TEST(item_put_get_update_delete) {
    fixture f;
    fixture_init(&f);
    tn_item it = {0};
    ASSERT_OK(tn_item_put(f.a, "doc:1", "{\"n\":1}", &it));
    ASSERT_STR_EQ(it.id, "doc:1");
    ASSERT_STR_EQ(it.data, "{\"n\":1}");
    int64_t v1 = it.version;
    ASSERT(v1 > 0);
    ASSERT(it.created_at > 0 && it.updated_at == it.created_at);
    tn_item_clear(&it);

    ASSERT_OK(tn_item_put(f.a, "doc:1", "{\"n\":2}", &it));
    ASSERT(it.version > v1);
    int64_t v2 = it.version;
    tn_item_clear(&it);

    ASSERT_INT_EQ(tn_item_create(f.a, "doc:1", "{}", NULL), TN_EXISTS);
    ASSERT_INT_EQ(tn_item_update(f.a, "doc:1", "{\"n\":3}", v1, NULL), TN_CONFLICT);
    ASSERT_OK(tn_item_update(f.a, "doc:1", "{\"n\":3}", v2, &it));
    ASSERT(it.version > v2);
    int64_t v3 = it.version;
    tn_item_clear(&it);
    ASSERT_INT_EQ(tn_item_update(f.a, "missing", "{}", 0, NULL), TN_NOTFOUND);

    ASSERT_INT_EQ(tn_item_delete(f.a, "doc:1", v2), TN_CONFLICT);
    ASSERT_OK(tn_item_delete(f.a, "doc:1", v3));
    ASSERT_INT_EQ(tn_item_get(f.a, "doc:1", &it), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_item_delete(f.a, "doc:1", 0), TN_NOTFOUND);
    /* A tombstoned id can be created again, with a higher version. */
    ASSERT_OK(tn_item_create(f.a, "doc:1", "{\"n\":4}", &it));
    ASSERT(it.version > v3);
    tn_item_clear(&it);
    fixture_done(&f);
}

TEST(item_ids_and_data_are_validated) {
    fixture f;
    fixture_init(&f);
    const char *bad_ids[] = {"", "has space", "slash/x", "quote'", "nul", "ü", NULL};
    for (int i = 0; bad_ids[i]; i++) {
        const char *id = strcmp(bad_ids[i], "nul") == 0 ? "" : bad_ids[i];
        ASSERT_INT_EQ(tn_item_put(f.a, id, "{}", NULL), TN_INVALID);
    }
    char longid[TN_ITEM_ID_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    ASSERT_INT_EQ(tn_item_put(f.a, longid, "{}", NULL), TN_INVALID);
    longid[TN_ITEM_ID_MAX] = '\0';
    ASSERT_OK(tn_item_put(f.a, longid, "{}", NULL));

    const char *bad_json[] = {"", "{", "{'a':1}", "[1,]", "nul", "{\"a\":1} x", NULL};
    for (int i = 0; bad_json[i]; i++)
        ASSERT_INT_EQ(tn_item_put(f.a, "j", bad_json[i], NULL), TN_INVALID);
    ASSERT_INT_EQ(tn_item_get(f.a, "j", NULL), TN_NOTFOUND); /* nothing half-written */
    ASSERT_INT_EQ(tn_item_put(f.a, "j", NULL, NULL), TN_INVALID);

    /* A generated id when none is given. */
    tn_item it = {0};
    ASSERT_OK(tn_item_put(f.a, NULL, "[1,2,3]", &it));
    ASSERT(is_uuid4(it.id));
    tn_item_clear(&it);
    fixture_done(&f);
}

TEST(tenants_cannot_see_or_touch_each_others_items) {
    fixture f;
    fixture_init(&f);
    tn_item it = {0};
    ASSERT_INT_EQ(tn_item_get(f.a, "g-only", &it), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_item_update(f.a, "g-only", "{\"pwned\":1}", 0, NULL), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_item_delete(f.a, "g-only", 0), TN_NOTFOUND);
    ASSERT_OK(tn_item_get(f.a, "shared-id", &it));
    ASSERT_STR_EQ(it.data, "{\"owner\":\"acme\"}");
    tn_item_clear(&it);
    /* Same id in another tenant is another item. */
    ASSERT_OK(tn_item_put(f.a, "shared-id", "{\"owner\":\"acme2\"}", NULL));
    ASSERT_OK(tn_item_get(f.g, "shared-id", &it));
    ASSERT_STR_EQ(it.data, "{\"owner\":\"GLOBEX-SECRET\"}");
    tn_item_clear(&it);
    ASSERT_OK(tn_item_get(f.g, "g-only", &it));
    tn_item_clear(&it);
    int64_t n = 0;
    ASSERT_OK(tn_item_count(f.a, &n));
    ASSERT_INT_EQ(n, 1);
    ASSERT_OK(tn_item_count(f.g, &n));
    ASSERT_INT_EQ(n, 2);
    fixture_done(&f);
}

/* A cached statement reused by sessions of different tenants on one pooled
 * connection must see the current session's tenant every time. */
TEST(pooled_connection_reuse_follows_the_session_tenant) {
    fixture f;
    fixture_init(&f);
    tn_session_close(f.a);
    tn_session_close(f.g);
    for (int round = 0; round < 20; round++) {
        tn_session *s;
        const tn_tenant *t = round % 2 ? &f.globex : &f.acme;
        ASSERT_OK(tn_session_open(f.st, t->id, &s));
        tn_item it = {0};
        ASSERT_OK(tn_item_get(s, "shared-id", &it));
        ASSERT(strstr(it.data, round % 2 ? "GLOBEX" : "acme") != NULL);
        tn_item_clear(&it);
        tn_session_close(s);
    }
    f.a = f.g = NULL;
    fixture_done(&f);
}

/* ---- listing ---- */

typedef struct seen {
    char ids[2000][16];
    int n;
} seen;

static int collect(const tn_item *it, void *arg) {
    seen *s = arg;
    if (s->n < 2000) snprintf(s->ids[s->n++], 16, "%s", it->id);
    return 0;
}

TEST(list_pages_with_opaque_cursors) {
    fixture f;
    fixture_init(&f);
    char id[16];
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof id, "k%03d", i);
        ASSERT_OK(tn_item_put(f.a, id, "{}", NULL));
    }
    seen s = {0};
    char *cursor = NULL, *next = NULL;
    int pages = 0;
    do {
        ASSERT_OK(tn_item_list(f.a, cursor, 10, collect, &s, &next));
        free(cursor);
        cursor = next;
        pages++;
    } while (cursor);
    ASSERT_INT_EQ(pages, 3); /* 26 items: 10 + 10 + 6 */
    ASSERT_INT_EQ(s.n, 26);
    for (int i = 1; i < s.n; i++) ASSERT(strcmp(s.ids[i - 1], s.ids[i]) < 0);
    ASSERT_INT_EQ(tn_item_list(f.a, NULL, 0, collect, &s, &next), TN_INVALID);
    fixture_done(&f);
}

TEST(cursor_is_bound_to_its_tenant_and_unforgeable) {
    fixture f;
    fixture_init(&f);
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", i);
        ASSERT_OK(tn_item_put(f.a, id, "{}", NULL));
        ASSERT_OK(tn_item_put(f.g, id, "{}", NULL));
    }
    seen s = {0};
    char *next = NULL;
    ASSERT_OK(tn_item_list(f.a, NULL, 2, collect, &s, &next));
    ASSERT(next != NULL);
    char *dummy = NULL;
    ASSERT_INT_EQ(tn_item_list(f.g, next, 2, collect, &s, &dummy), TN_INVALID);
    /* Any change to a cursor breaks it. */
    for (size_t i = 0; i < strlen(next); i++) {
        char *bad = strdup(next);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        ASSERT_INT_EQ(tn_item_list(f.a, bad, 2, collect, &s, &dummy), TN_INVALID);
        free(bad);
    }
    /* A forged cursor for an id of our choosing is refused. */
    const char *forged[] = {"Zy1vbmx5.AAAAAAAAAAAAAAAAAAAAAA", "garbage", ".", "a.", ".b",
                            "Zy1vbmx5", NULL};
    for (int i = 0; forged[i]; i++)
        ASSERT_INT_EQ(tn_item_list(f.a, forged[i], 2, collect, &s, &dummy), TN_INVALID);
    ASSERT_OK(tn_item_list(f.a, next, 2, collect, &s, &dummy));
    free(dummy);
    free(next);
    fixture_done(&f);
}

TEST(listing_is_stable_under_concurrent_inserts) {
    fixture f;
    fixture_init(&f);
    tn_session *w;
    ASSERT_OK(tn_session_open(f.st, f.acme.id, &w));
    char id[16];
    for (int i = 0; i < 100; i += 2) {
        snprintf(id, sizeof id, "m%03d", i);
        ASSERT_OK(tn_item_put(f.a, id, "{}", NULL));
    }
    seen s = {0};
    char *cursor = NULL, *next = NULL;
    int k = 1;
    do {
        ASSERT_OK(tn_item_list(f.a, cursor, 7, collect, &s, &next));
        free(cursor);
        cursor = next;
        /* Between pages another writer adds items on both sides of the cursor. */
        for (int j = 0; j < 3 && k < 100; j++, k += 2) {
            snprintf(id, sizeof id, "m%03d", k);
            ASSERT_OK(tn_item_put(w, id, "{}", NULL));
        }
    } while (cursor);
    /* No id twice; every item that existed at the start was seen. */
    for (int i = 1; i < s.n; i++) ASSERT(strcmp(s.ids[i - 1], s.ids[i]) < 0);
    for (int i = 0; i < 100; i += 2) {
        snprintf(id, sizeof id, "m%03d", i);
        int found = 0;
        for (int j = 0; j < s.n; j++) found |= strcmp(s.ids[j], id) == 0;
        ASSERT(found);
    }
    tn_session_close(w);
    fixture_done(&f);
}

/* ---- versions (hybrid logical clock) ---- */

static int64_t fake_now = 1700000000000;
static int64_t fake_clock(void) { return fake_now; }

TEST(versions_never_go_backwards_when_the_clock_does) {
    fixture f;
    fixture_init(&f);
    f.st->clock_ms = fake_clock;
    int64_t last = 0;
    tn_item it = {0};
    for (int i = 0; i < 50; i++) {
        fake_now += (i % 3 == 0) ? -100000 : 1; /* jumps back 100 s every third write */
        ASSERT_OK(tn_item_put(f.a, "clock", "{}", &it));
        ASSERT(it.version > last);
        last = it.version;
        tn_item_clear(&it);
    }
    fixture_done(&f);

    /* Restart with the clock a day behind: still no older version. */
    fake_now -= 86400000;
    tn_store *st;
    ASSERT_OK(tn_open(f.dir, NULL, &st));
    st->clock_ms = fake_clock;
    tn_session *s;
    ASSERT_OK(tn_session_open(st, f.acme.id, &s));
    ASSERT_OK(tn_item_put(s, "other-item", "{}", &it));
    ASSERT(it.version > last);
    tn_item_clear(&it);
    tn_session_close(s);
    char *report = NULL;
    int rc = tn_check(st, &report);
    if (rc != TN_OK) TN_FAIL_("check: %s", report ? report : tn_errmsg(st));
    tn_close(st);
}

TEST(versions_follow_the_wall_clock) {
    fixture f;
    fixture_init(&f);
    f.st->clock_ms = fake_clock;
    fake_now = 1800000000000;
    tn_item it = {0};
    ASSERT_OK(tn_item_put(f.a, "wall", "{}", &it));
    ASSERT_INT_EQ(it.version >> 16, fake_now);
    ASSERT_INT_EQ(it.updated_at, fake_now);
    tn_item_clear(&it);
    fixture_done(&f);
}

/* ---- tombstone purge ---- */

static void ack_all(tn_store *st) {
    tn__batch b;
    for (;;) {
        ASSERT_OK(tn__outbox_fetch(st, 100, 1000, &b));
        int n = b.n;
        if (n) ASSERT_OK(tn__outbox_ack(st, &b, NULL));
        tn__batch_free(&b);
        if (!n) return;
    }
}

TEST(tombstones_are_purged_only_when_synced_and_past_retention) {
    fixture f;
    fixture_init(&f);
    f.st->clock_ms = fake_clock;
    fake_now = 1800000000000;
    const int64_t day = 86400000;
    ASSERT_OK(tn_item_put(f.a, "old", "{}", NULL));
    ASSERT_OK(tn_item_delete(f.a, "old", 0));
    ASSERT_OK(tn_item_put(f.a, "kept", "{}", NULL));
    ASSERT_OK(tn_file_record(f.a, "gone.txt", 3,
                             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                             "text/plain", NULL));
    ASSERT_OK(tn_file_delete(f.a, "gone.txt"));
    ASSERT_OK(tn_item_put(f.g, "g-old", "{}", NULL));
    ASSERT_OK(tn_item_delete(f.g, "g-old", 0));
    const char *tombs = "SELECT (SELECT count(*) FROM _items WHERE deleted = 1) + "
                        "(SELECT count(*) FROM _files WHERE deleted = 1)";
    ASSERT_INT_EQ(raw_scalar(f.dir, tombs), 3);

    /* Past retention but not synced: kept (the remote never saw the delete). */
    fake_now += 31 * day;
    int64_t n = -1;
    ASSERT_OK(tn_tombstones_purge(f.st, 30 * 86400, &n));
    ASSERT_INT_EQ(n, 0);
    ASSERT_INT_EQ(raw_scalar(f.dir, tombs), 3);

    /* Synced, but globex keeps tombstones 60 days: only acme's two go. */
    tn__tenant_settings set;
    tn__tenant_settings_default(&set);
    set.tombstone_days = 60;
    ASSERT_OK(tn__tenant_settings_update(f.st, f.globex.id, &set, TN__SET_TOMBSTONE, NULL));
    ack_all(f.st);
    ASSERT_OK(tn_tombstones_purge(f.st, 30 * 86400, &n));
    ASSERT_INT_EQ(n, 2);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _items WHERE id = 'old'"), 0);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _files WHERE name = 'gone.txt'"), 0);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _items WHERE id = 'g-old'"), 1);
    ASSERT_OK(tn_item_get(f.a, "kept", NULL)); /* live rows are never touched */

    /* A tombstone deleted again after the purge is just absent; the id can be
     * written again with a version above the purged one. */
    ASSERT_INT_EQ(tn_item_get(f.a, "old", NULL), TN_NOTFOUND);
    tn_item it = {0};
    ASSERT_OK(tn_item_put(f.a, "old", "{\"again\":1}", &it));
    ASSERT(it.version >> 16 == fake_now);
    tn_item_clear(&it);

    fake_now += 30 * day;
    ASSERT_OK(tn_tombstones_purge(f.st, 30 * 86400, &n));
    ASSERT_INT_EQ(n, 1); /* globex's, at 61 days */
    ASSERT_INT_EQ(tn_tombstones_purge(f.st, 0, &n), TN_INVALID);
    char *report = NULL;
    int rc = tn_check(f.st, &report);
    if (rc != TN_OK) TN_FAIL_("check: %s", report ? report : tn_errmsg(f.st));
    fixture_done(&f);
}

/* ---- outbox ---- */

TEST(every_change_appends_one_outbox_row_atomically) {
    fixture f;
    fixture_init(&f);
    long long before = raw_scalar(f.dir, "SELECT count(*) FROM _outbox");
    ASSERT_INT_EQ(before, 3);
    ASSERT_OK(tn_item_put(f.a, "o1", "{}", NULL));         /* insert */
    ASSERT_OK(tn_item_put(f.a, "o1", "{\"b\":1}", NULL));  /* update */
    ASSERT_OK(tn_item_delete(f.a, "o1", 0));               /* tombstone */
    ASSERT_INT_EQ(tn_item_put(f.a, "o2", "{bad", NULL), TN_INVALID); /* rolled back */
    ASSERT_INT_EQ(tn_item_update(f.a, "o1", "{}", 0, NULL), TN_NOTFOUND);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _outbox"), before + 3);
    ASSERT_OK(tn_file_record(f.a, "a/b.txt", 3,
                             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                             "text/plain", NULL));
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _outbox WHERE kind = 2"), 1);
    /* A transaction that rolls back leaves neither rows nor outbox rows. */
    ASSERT_INT_EQ(tn_session_exec(f.a, "BEGIN; INSERT INTO items (id, data) VALUES ('rb', '{}'); "
                                        "ROLLBACK;", NULL, NULL), TN_OK);
    ASSERT_INT_EQ(tn_item_get(f.a, "rb", NULL), TN_NOTFOUND);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _outbox"), before + 4);
    fixture_done(&f);
}

TEST(outbox_fetch_coalesces_and_ack_removes_exactly_what_was_sent) {
    fixture f;
    fixture_init(&f);
    for (int i = 0; i < 5; i++) ASSERT_OK(tn_item_put(f.a, "hot", "{\"n\":1}", NULL));
    tn__batch b;
    ASSERT_OK(tn__outbox_fetch(f.st, 100, 1000, &b));
    int hot = -1;
    for (int i = 0; i < b.n; i++)
        if (b.changes[i].key && strcmp(b.changes[i].key, "hot") == 0) hot = i;
    ASSERT(hot >= 0);
    ASSERT_INT_EQ(b.changes[hot].nseqs, 5);
    ASSERT_STR_EQ(b.changes[hot].tenant_id, f.acme.id);
    ASSERT_INT_EQ(b.n, 4); /* acme: shared-id, hot; globex: shared-id, g-only */
    /* A write after the fetch must survive the ack. */
    ASSERT_OK(tn_item_put(f.a, "hot", "{\"n\":2}", NULL));
    ASSERT_OK(tn__outbox_ack(f.st, &b, NULL));
    tn__batch_free(&b);
    int64_t pending = 0;
    ASSERT_OK(tn__outbox_pending_tenant(f.st, f.acme.id, &pending));
    ASSERT_INT_EQ(pending, 1);
    ASSERT_OK(tn__outbox_pending_tenant(f.st, f.globex.id, &pending));
    ASSERT_INT_EQ(pending, 0);
    ASSERT_OK(tn__outbox_fetch(f.st, 100, 1000, &b));
    ASSERT_INT_EQ(b.n, 1);
    ASSERT_STR_EQ(b.changes[0].data, "{\"n\":2}");
    tn__batch_free(&b);
    fixture_done(&f);
}

TEST(outbox_fetch_is_fair_across_tenants) {
    fixture f;
    fixture_init(&f);
    /* acme has a large backlog written first; globex a small one after. */
    char id[16];
    ASSERT_OK(tn_session_begin(f.a));
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "bulk%03d", i);
        ASSERT_OK(tn_item_put(f.a, id, "{}", NULL));
    }
    ASSERT_OK(tn_session_commit(f.a));
    tn__batch b;
    ASSERT_OK(tn__outbox_fetch(f.st, 25, 1000, &b));
    int g = 0;
    for (int i = 0; i < b.n; i++) g += strcmp(b.changes[i].tenant_id, f.globex.id) == 0;
    ASSERT_INT_EQ(b.n, 25);
    ASSERT_INT_EQ(g, 2); /* both of globex's rows made it into the first batch */
    tn__batch_free(&b);
    fixture_done(&f);
}

/* A writer process is killed at random moments.  Afterwards every write it
 * reported as committed is present, and items and outbox rows match one to one:
 * the row and its outbox entry appear together or not at all. */
TEST(crash_between_write_and_commit_keeps_rows_and_outbox_together) {
    fixture f;
    fixture_init(&f);
    tn_session_close(f.a);
    tn_session_close(f.g);
    f.a = f.g = NULL;
    tn_close(f.st);
    f.st = NULL;
    int acked = 0;
    for (int round = 0; round < 6; round++) {
        int pfd[2];
        ASSERT(pipe(pfd) == 0);
        pid_t pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            tn_store *st;
            tn_session *s;
            if (tn_open(f.dir, NULL, &st) != TN_OK) _exit(3);
            if (tn_session_open(st, f.acme.id, &s) != TN_OK) _exit(4);
            for (int i = 0;; i++) {
                char id[32];
                snprintf(id, sizeof id, "r%d-%d", round, i);
                /* Multi-row transactions too: the crash may land inside one. */
                if (tn_session_begin(s) != TN_OK) _exit(5);
                if (tn_item_put(s, id, "{\"crash\":true}", NULL) != TN_OK) _exit(6);
                if (tn_item_put(s, "counter", "{\"crash\":true}", NULL) != TN_OK) _exit(6);
                if (tn_session_commit(s) != TN_OK) _exit(7);
                if (write(pfd[1], &i, sizeof i) != sizeof i) _exit(8);
            }
        }
        close(pfd[1]);
        /* Wait for the writer's first commit (it may be slow under valgrind),
         * then let it run a varying while before the kill. */
        int last = -1, v;
        if (read(pfd[0], &v, sizeof v) == sizeof v) last = v;
        usleep(5000 + (useconds_t)(round * 17000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        ASSERT(WIFSIGNALED(status));
        while (read(pfd[0], &v, sizeof v) == sizeof v) last = v;
        close(pfd[0]);
        ASSERT(last >= 0); /* the writer got going before the kill */
        acked += last + 1;

        tn_store *st;
        ASSERT_OK(tn_open(f.dir, NULL, &st));
        tn_session *s;
        ASSERT_OK(tn_session_open(st, f.acme.id, &s));
        for (int i = 0; i <= last; i++) {
            char id[32];
            snprintf(id, sizeof id, "r%d-%d", round, i);
            ASSERT_OK(tn_item_get(s, id, NULL));
        }
        tn_session_close(s);
        char *report = NULL;
        int rc = tn_check(st, &report);
        if (rc != TN_OK) TN_FAIL_("check after crash: %s", report ? report : tn_errmsg(st));
        tn_close(st);
    }
    /* Each committed transaction wrote two rows changes and two outbox rows;
     * the outbox also holds the fixture's 3 rows. */
    long long items = raw_scalar(f.dir, "SELECT count(*) FROM _items WHERE id LIKE 'r%'");
    long long queued = raw_scalar(f.dir, "SELECT count(*) FROM _outbox o JOIN _items i "
                                         "ON i.rowid = o.ref WHERE o.kind = 1 AND i.id LIKE 'r%'");
    long long counter = raw_scalar(f.dir, "SELECT count(*) FROM _outbox o JOIN _items i "
                                          "ON i.rowid = o.ref WHERE i.id = 'counter'");
    ASSERT(items >= acked);
    ASSERT_INT_EQ(queued, items);
    ASSERT_INT_EQ(counter, items);
}

/* ---- check ---- */

TEST(check_reports_broken_invariants) {
    fixture f;
    fixture_init(&f);
    char *report = NULL;
    ASSERT_OK(tn_check(f.st, &report));
    ASSERT(report == NULL);
    fixture_done(&f);
    ASSERT_INT_EQ(raw_scalar(f.dir, "INSERT INTO _outbox (tenant, kind, ref) VALUES (1, 1, 987654)"), 0);
    tn_store *st;
    ASSERT_OK(tn_open(f.dir, NULL, &st));
    ASSERT_INT_EQ(tn_check(st, &report), TN_CORRUPT);
    ASSERT(report && strstr(report, "outbox") != NULL);
    free(report);
    tn_close(st);
}

TEST(readonly_open_can_check_but_not_write) {
    fixture f;
    fixture_init(&f);
    fixture_done(&f);
    tn_options o;
    tn_options_init(&o);
    o.readonly = 1;
    tn_store *st;
    ASSERT_OK(tn_open(f.dir, &o, &st));
    char *report = NULL;
    ASSERT_OK(tn_check(st, &report));
    tn_session *s;
    ASSERT_OK(tn_session_open(st, f.acme.id, &s));
    ASSERT_OK(tn_item_get(s, "shared-id", NULL));
    ASSERT(tn_item_put(s, "x", "{}", NULL) != TN_OK);
    tn_session_close(s);
    tn_close(st);
}

/* ---- connection hardening ---- */

/* The flags and limits store.c sets on every connection, read back from
 * SQLite itself (sqlite3_db_config with -1 reads without changing). */
static void expect_hardened(sqlite3 *db, const char *which) {
    static const struct {
        int op, want;
        const char *name;
    } flags[] = {
        {SQLITE_DBCONFIG_DEFENSIVE, 1, "DEFENSIVE"},
        {SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, "TRUSTED_SCHEMA"},
        {SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, "ENABLE_LOAD_EXTENSION"},
        {SQLITE_DBCONFIG_DQS_DML, 0, "DQS_DML"},
        {SQLITE_DBCONFIG_DQS_DDL, 0, "DQS_DDL"},
    };
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        int v = -1;
        ASSERT_INT_EQ(sqlite3_db_config(db, flags[i].op, -1, &v), SQLITE_OK);
        if (v != flags[i].want)
            TN_FAIL_("%s connection: SQLITE_DBCONFIG_%s is %d, want %d", which, flags[i].name, v,
                     flags[i].want);
    }
    static const struct {
        int id, want;
        const char *name;
    } limits[] = {
        {SQLITE_LIMIT_SQL_LENGTH, 1 << 20, "SQL_LENGTH"},
        {SQLITE_LIMIT_LENGTH, 64 << 20, "LENGTH"},
        {SQLITE_LIMIT_ATTACHED, 0, "ATTACHED"},
    };
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        int v = sqlite3_limit(db, limits[i].id, -1);
        if (v != limits[i].want)
            TN_FAIL_("%s connection: SQLITE_LIMIT_%s is %d, want %d", which, limits[i].name, v,
                     limits[i].want);
    }
    /* Extension loading through the C interface is refused too. */
    char *err = NULL;
    ASSERT(sqlite3_load_extension(db, "libc.so.6", NULL, &err) != SQLITE_OK);
    sqlite3_free(err);
}

static long long pragma_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *q;
    long long v = -1;
    ASSERT_INT_EQ(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    if (sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

TEST(every_connection_carries_the_hardening_flags) {
    fixture f;
    fixture_init(&f);
    /* Two connections held at once are two different ones from the pool. */
    tn__conn *trusted, *tenant;
    ASSERT_OK(tn__conn_get(f.st, 1, &trusted));
    ASSERT_OK(tn__conn_get(f.st, 0, &tenant));
    ASSERT(trusted != tenant && trusted->db != tenant->db);
    expect_hardened(trusted->db, "trusted");
    expect_hardened(tenant->db, "untrusted");
    expect_hardened(f.a->c->db, "tenant session");
    /* The pragmas set with them (read on the trusted connection: a tenant's
     * guard refuses PRAGMA). */
    ASSERT_INT_EQ(pragma_int(trusted->db, "PRAGMA foreign_keys"), 1);
    ASSERT_INT_EQ(pragma_int(trusted->db, "PRAGMA trusted_schema"), 0);
    ASSERT_INT_EQ(pragma_int(trusted->db, "PRAGMA synchronous"), 2); /* FULL, the default */
    /* DQS off: a double-quoted name that is no column is an error, not a string. */
    sqlite3_stmt *q = NULL;
    ASSERT(sqlite3_prepare_v2(trusted->db, "SELECT \"no_such_column\"", -1, &q, NULL) != SQLITE_OK);
    sqlite3_finalize(q);
    tn__conn_put(f.st, tenant);
    tn__conn_put(f.st, trusted);
    fixture_done(&f);
    /* A read-only store's connections too. */
    tn_options o;
    tn_options_init(&o);
    o.readonly = 1;
    tn_store *st;
    ASSERT_OK(tn_open(f.dir, &o, &st));
    tn__conn *c;
    ASSERT_OK(tn__conn_get(st, 1, &c));
    expect_hardened(c->db, "read-only store");
    tn__conn_put(st, c);
    tn_close(st);
}

/* ---- threads ---- */

typedef struct writer {
    tn_store *st;
    const char *tenant_id, *marker;
    int failures;
} writer;

static void *write_loop(void *arg) {
    writer *w = arg;
    char id[16], data[64];
    snprintf(data, sizeof data, "{\"owner\":\"%s\"}", w->marker);
    for (int i = 0; i < 300; i++) {
        tn_session *s;
        if (tn_session_open(w->st, w->tenant_id, &s) != TN_OK) {
            w->failures++;
            continue;
        }
        snprintf(id, sizeof id, "t%d", i % 50); /* both threads use the same ids */
        int rc;
        do rc = tn_item_put(s, id, data, NULL);
        while (rc == TN_BUSY);
        if (rc != TN_OK) w->failures++;
        tn_item it = {0};
        if (tn_item_get(s, id, &it) != TN_OK || !strstr(it.data, w->marker)) w->failures++;
        tn_item_clear(&it);
        tn_session_close(s);
    }
    return NULL;
}

static int owner_check(const tn_item *it, void *arg) {
    const char *marker = arg;
    if (!strstr(it->data, marker) && strncmp(it->id, "t", 1) == 0)
        TN_FAIL_("item %s crossed over: %s", it->id, it->data);
    return 0;
}

TEST(two_threads_two_tenants_no_row_crosses_over) {
    fixture f;
    fixture_init(&f);
    writer wa = {f.st, f.acme.id, "acme", 0}, wg = {f.st, f.globex.id, "globex", 0};
    pthread_t ta, tg;
    pthread_create(&ta, NULL, write_loop, &wa);
    pthread_create(&tg, NULL, write_loop, &wg);
    pthread_join(ta, NULL);
    pthread_join(tg, NULL);
    ASSERT_INT_EQ(wa.failures, 0);
    ASSERT_INT_EQ(wg.failures, 0);
    char *next = NULL;
    ASSERT_OK(tn_item_list(f.a, NULL, 1000, owner_check, "acme", &next));
    ASSERT_OK(tn_item_list(f.g, NULL, 1000, owner_check, "globex", &next));
    int64_t n;
    ASSERT_OK(tn_item_count(f.a, &n));
    ASSERT_INT_EQ(n, 51);
    fixture_done(&f);
}

/* ---- file names and JSON ---- */

TEST(file_names_are_validated) {
    const char *good[] = {"a", "a/b/c.txt", "Ω/日本.txt", "..a", "a..", ".hidden", "a b", "x~y",
                          NULL};
    const char *bad[] = {"", "/abs", "a//b", "a/", ".", "..", "a/../b", "a/./b", "../x",
                         "a\\b", "a\tb", "a\x7f", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
                         "\xc2\x85", "\xff", "a\xc3", NULL};
    for (int i = 0; good[i]; i++)
        if (!tn_file_name_valid(good[i])) TN_FAIL_("refused a good name: %s", good[i]);
    for (int i = 0; bad[i]; i++)
        if (tn_file_name_valid(bad[i])) TN_FAIL_("accepted bad name #%d", i);
    ASSERT(!tn_file_name_valid(NULL));
    char big[TN_FILE_NAME_MAX + 2];
    memset(big, 'f', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT(!tn_file_name_valid(big));
    big[TN_FILE_NAME_MAX] = '\0';
    ASSERT(tn_file_name_valid(big));
}

TEST(file_paths_stay_inside_the_tenant_folder) {
    fixture f;
    fixture_init(&f);
    char *p = NULL;
    ASSERT_OK(tn_session_file_path(f.a, "x/y.bin", &p));
    char want[4300];
    snprintf(want, sizeof want, "%s/files/%s/x/y.bin", f.dir, f.acme.id);
    ASSERT_STR_EQ(p, want);
    free(p);
    ASSERT_INT_EQ(tn_session_file_path(f.a, "../globex", &p), TN_INVALID);
    ASSERT(p == NULL);
    fixture_done(&f);
}

TEST(file_metadata_roundtrip_and_isolation) {
    fixture f;
    fixture_init(&f);
    const char *h = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    tn_file fl = {0};
    ASSERT_OK(tn_file_record(f.a, "docs/a.txt", 3, h, "text/plain", &fl));
    ASSERT_STR_EQ(fl.name, "docs/a.txt");
    ASSERT_INT_EQ(fl.size, 3);
    ASSERT_STR_EQ(fl.sha256, h);
    tn_file_clear(&fl);
    ASSERT_INT_EQ(tn_file_get(f.g, "docs/a.txt", &fl), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_file_delete(f.g, "docs/a.txt"), TN_NOTFOUND);
    ASSERT_INT_EQ(tn_file_record(f.a, "bad/../x", 3, h, NULL, NULL), TN_INVALID);
    ASSERT_INT_EQ(tn_file_record(f.a, "ok", 3, "XYZ", NULL, NULL), TN_INVALID);
    int64_t bytes = 0;
    ASSERT_OK(tn_file_bytes(f.a, &bytes));
    ASSERT_INT_EQ(bytes, 3);
    ASSERT_OK(tn_file_delete(f.a, "docs/a.txt"));
    ASSERT_INT_EQ(tn_file_get(f.a, "docs/a.txt", &fl), TN_NOTFOUND);
    fixture_done(&f);
}

TEST(json_check_is_strict_and_bounded) {
    const char *good[] = {"{}", "[]", "0", "-0.5e+10", "\"\\u00e9\\n\"", " {\"a\" : [1, true, null]} ",
                          "\"\xc3\xa9\"", NULL};
    const char *bad[] = {"", " ", "{", "[1,]", "{\"a\"}", "01", "1.", ".5", "+1", "'x'", "\"\x01\"",
                         "\"\\x\"", "\"\\u12\"", "tru", "nul", "[1] [2]", "{\"a\":1,}", "NaN", NULL};
    for (int i = 0; good[i]; i++)
        if (!tn__json_valid(good[i], strlen(good[i]), 64)) TN_FAIL_("refused %s", good[i]);
    for (int i = 0; bad[i]; i++)
        if (tn__json_valid(bad[i], strlen(bad[i]), 64)) TN_FAIL_("accepted bad #%d", i);
    char deep[300];
    for (int i = 0; i < 150; i++) {
        deep[i] = '[';
        deep[299 - i] = ']';
    }
    ASSERT(!tn__json_valid(deep, 300, 64));
    ASSERT(tn__json_valid(deep, 300, 150));
    ASSERT(!tn__json_valid("{\"a\":1}\0x", 9, 64)); /* NUL is not white space */
}

/* A tenant queued behind another tenant's large backlog, beyond the head
 * window, is still reached by the probe window within a bounded number of
 * fetches (without any of the backlog being acknowledged). */
TEST(outbox_fetch_reaches_a_tenant_behind_a_large_backlog) {
    fixture f;
    fixture_init(&f);
    tn__batch b;
    ASSERT_OK(tn__outbox_fetch(f.st, 100, 1000, &b)); /* clear the fixture's rows */
    ASSERT_OK(tn__outbox_ack(f.st, &b, NULL));
    tn__batch_free(&b);
    char id[16];
    ASSERT_OK(tn_session_begin(f.a));
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "bulk%04d", i);
        ASSERT_OK(tn_item_put(f.a, id, "{}", NULL));
    }
    ASSERT_OK(tn_session_commit(f.a));
    ASSERT_OK(tn_item_put(f.g, "late", "{}", NULL));
    int found_at = -1;
    for (int k = 0; k < 40 && found_at < 0; k++) {
        ASSERT_OK(tn__outbox_fetch(f.st, 25, 200, &b));
        ASSERT_INT_EQ(b.n, 25);
        for (int i = 0; i < b.n; i++)
            if (strcmp(b.changes[i].tenant_id, f.globex.id) == 0) found_at = k;
        tn__batch_free(&b);
    }
    ASSERT(found_at >= 0);
    ASSERT(found_at <= 3000 / 200 + 1);
    fixture_done(&f);
}

/* ---- group commit ---- */

typedef struct gwriter {
    tn_store *st;
    const char *tenant_id, *marker;
    int index, ok, refused, wrong;
} gwriter;

static void *group_loop(void *arg) {
    gwriter *w = arg;
    tn_session *s;
    if (tn_session_open(w->st, w->tenant_id, &s) != TN_OK) return NULL;
    char id[32], data[64];
    for (int i = 0; i < 150; i++) {
        snprintf(id, sizeof id, "g%d-%d", w->index, i);
        int bad = i % 5 == 0; /* every fifth write is invalid and must fail alone */
        snprintf(data, sizeof data, bad ? "{\"owner\":" : "{\"owner\":\"%s\"}", w->marker);
        tn_item it = {0};
        int rc = tn_item_put(s, id, data, &it);
        if (bad) {
            if (rc == TN_INVALID) w->refused++;
            else w->wrong++;
        } else if (rc == TN_OK && strstr(it.data, w->marker) && it.version > 0) {
            w->ok++;
        } else {
            w->wrong++;
        }
        tn_item_clear(&it);
    }
    tn_session_close(s);
    return NULL;
}

TEST(group_commit_shares_transactions_and_keeps_writes_apart) {
    fixture f;
    fixture_init(&f);
    int64_t groups0 = f.st->gc_groups, writes0 = f.st->gc_writes;
    enum { N = 8 };
    gwriter w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (gwriter){f.st, i % 2 ? f.globex.id : f.acme.id, i % 2 ? "globex" : "acme", i, 0, 0, 0};
        pthread_create(&t[i], NULL, group_loop, &w[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        ASSERT_INT_EQ(w[i].wrong, 0);
        ASSERT_INT_EQ(w[i].ok, 120);
        ASSERT_INT_EQ(w[i].refused, 30);
    }
    int64_t groups = f.st->gc_groups - groups0, writes = f.st->gc_writes - writes0;
    ASSERT_INT_EQ(writes, N * 150);
    ASSERT(groups < writes); /* some transactions carried several writes */
    /* Every acknowledged write is there, in its own tenant only. */
    char id[32];
    for (int i = 0; i < N; i++)
        for (int k = 1; k < 150; k += 7) {
            if (k % 5 == 0) continue;
            snprintf(id, sizeof id, "g%d-%d", i, k);
            tn_item it = {0};
            ASSERT_OK(tn_item_get(i % 2 ? f.g : f.a, id, &it));
            ASSERT(strstr(it.data, w[i].marker) != NULL);
            tn_item_clear(&it);
            ASSERT_INT_EQ(tn_item_get(i % 2 ? f.a : f.g, id, NULL), TN_NOTFOUND);
        }
    char *report = NULL;
    int rc = tn_check(f.st, &report);
    if (rc != TN_OK) TN_FAIL_("check: %s", report ? report : "");
    fixture_done(&f);
}

TEST(a_tenant_can_be_provisioned_under_an_existing_id) {
    fixture f;
    fixture_init(&f);
    char dir2[4200];
    snprintf(dir2, sizeof dir2, "%s/second", tn_test_tmpdir());
    tn_store *st2 = fixture_open(dir2);
    tn_tenant t;
    ASSERT_OK(tn_tenant_provision(st2, "acme", f.acme.id, &t));
    ASSERT_STR_EQ(t.id, f.acme.id);
    ASSERT_INT_EQ(tn_tenant_provision(st2, "acme-again", f.acme.id, &t), TN_EXISTS);
    const char *bad[] = {"", "not-a-uuid", "6F1C2A52-4D0E-4C1B-9A7E-1D2C3B4A5F60",
                         "6f1c2a52-4d0e-1c1b-9a7e-1d2c3b4a5f60", /* version 1 */
                         "6f1c2a52-4d0e-4c1b-ca7e-1d2c3b4a5f60", /* wrong variant */
                         "6f1c2a52-4d0e-4c1b-9a7e-1d2c3b4a5f6", NULL};
    for (int i = 0; bad[i]; i++) ASSERT_INT_EQ(tn_tenant_provision(st2, "x", bad[i], &t), TN_INVALID);
    ASSERT_OK(tn_tenant_provision(st2, "fresh", NULL, &t));
    ASSERT(is_uuid4(t.id) && strcmp(t.id, f.acme.id) != 0);
    tn_close(st2);
    fixture_done(&f);
}

/* A restart must not push versions ahead of the wall clock: otherwise the
 * appliance that restarts more often would win conflicts it should lose. */
TEST(restarts_do_not_move_the_clock_ahead) {
    fixture f;
    fixture_init(&f);
    fixture_done(&f);
    fake_now = 1900000000000;
    int64_t last = 0;
    for (int i = 0; i < 5; i++) {
        tn_store *st;
        ASSERT_OK(tn_open(f.dir, NULL, &st));
        st->clock_ms = fake_clock;
        tn_session *s;
        ASSERT_OK(tn_session_open(st, f.acme.id, &s));
        tn_item it = {0};
        char id[32];
        snprintf(id, sizeof id, "restart-%d", i);
        fake_now += 1;
        ASSERT_OK(tn_item_put(s, id, "{}", &it));
        ASSERT_INT_EQ(it.version, fake_now << 16); /* exactly the wall clock */
        ASSERT(it.version > last);
        last = it.version;
        tn_item_clear(&it);
        tn_session_close(s);
        tn_close(st);
    }
}
