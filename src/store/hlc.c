/*
 * hlc.c - item versions from a hybrid logical clock, and the SQL functions the
 * schema's views and triggers call.
 *
 * A version is (milliseconds since the epoch << 16) | counter: it follows the
 * wall clock when the clock moves forward, and counts up from the last version
 * when the clock stalls or steps back, so versions from different appliances
 * order by time and never go backwards on one store.
 *
 * Restarts.  Every version the store handed out that matters is in a row
 * (items and files, tombstones included), so at open the clock starts from
 * the highest version in _items and _files: no restart or clock jump can
 * reissue an older one, and a restart does not move the clock ahead of the
 * wall clock either (it only follows it).  A row's own version is also a floor
 * (tn_version(old)), which keeps one item's versions increasing when several
 * processes share the file.
 *
 * The clock state is read on every write, so it is an atomic, not a mutex:
 * hlc_last only grows (compare-and-swap).
 */
#include "store_int.h"

#include "json_check.h"

#include <sodium.h>
#include <string.h>

static const char SQL_HIGHEST[] =
    "SELECT max(coalesce((SELECT max(version) FROM _items), 0), "
    "           coalesce((SELECT max(version) FROM _files), 0))";

int tn__hlc_init(tn_store *st, sqlite3 *db) {
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, SQL_HIGHEST, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return tn__fail(st, tn__code(rc), "reading the clock: %s", sqlite3_errmsg(db));
    int64_t highest = 0;
    if (sqlite3_step(s) == SQLITE_ROW) highest = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    st->hlc_last = highest;
    return TN_OK;
}

int tn__hlc_ensure(tn__conn *c) {
    c->now_ms = 0; /* a new statement reads the clock afresh */
    return TN_OK;
}

static void fn_version(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    tn__conn *c = sqlite3_user_data(ctx);
    tn_store *st = c->st;
    /* Every row tenant SQL writes draws a version: the console's row budget. */
    if (c->console && --c->console->rows_left < 0) {
        c->console->over = TN__OVER_ROWS;
        sqlite3_result_error(ctx, "row budget exceeded", -1);
        return;
    }
    int64_t floor = argc > 0 ? sqlite3_value_int64(argv[0]) : 0;
    int64_t now = st->clock_ms();
    int64_t last = __atomic_load_n(&st->hlc_last, __ATOMIC_ACQUIRE), v;
    do {
        v = now << 16;
        if (v <= last) v = last + 1;
        if (v <= floor) v = floor + 1;
    } while (!__atomic_compare_exchange_n(&st->hlc_last, &last, v, 0, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
    c->now_ms = now;
    c->last_version = v;
    c->nversions++;
    sqlite3_result_int64(ctx, v);
}

static void fn_now(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    (void)argv;
    tn__conn *c = sqlite3_user_data(ctx);
    sqlite3_result_int64(ctx, c->now_ms ? c->now_ms : c->st->clock_ms());
}

static void fn_new_id(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    (void)argv;
    char id[37];
    tn__uuid4(id);
    sqlite3_result_text(ctx, id, 36, SQLITE_TRANSIENT);
}

static void fn_current_tenant(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    (void)argv;
    tn__conn *c = sqlite3_user_data(ctx);
    if (c->tenant > 0)
        sqlite3_result_int64(ctx, c->tenant);
    else
        sqlite3_result_null(ctx); /* matches no row: trusted code sees nothing */
}

static void fn_json_valid(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const char *text = (const char *)sqlite3_value_text(argv[0]);
    if (!text) {
        sqlite3_result_null(ctx);
        return;
    }
    int n = sqlite3_value_bytes(argv[0]);
    sqlite3_result_int(ctx, tn__json_valid(text, (size_t)n, TN_JSON_MAX_DEPTH));
}

static void fn_item_id_valid(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const unsigned char *id = sqlite3_value_text(argv[0]);
    sqlite3_result_int(ctx, id && tn__item_id_valid((const char *)id));
}

/* 1 while the store's own file call (tn_file_record, tn_file_delete) runs on
 * this connection: the files view's triggers refuse every other writer. */
static void fn_file_writer(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    (void)argv;
    tn__conn *c = sqlite3_user_data(ctx);
    sqlite3_result_int(ctx, c->file_write);
}

static int sha256_hex(const unsigned char *h, int n) {
    if (!h || n != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) return 0;
    return 1;
}

/* tn_file_row_valid(name, size, sha256, content_type): 1 when a file row is
 * one tn_file_record() would write. */
static void fn_file_row_valid(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const char *name = (const char *)sqlite3_value_text(argv[0]);
    const unsigned char *sha = sqlite3_value_text(argv[2]);
    const unsigned char *ct = sqlite3_value_text(argv[3]);
    int ok = name && (int)strlen(name) == sqlite3_value_bytes(argv[0]) &&
             tn_file_name_valid(name) && sqlite3_value_type(argv[1]) == SQLITE_INTEGER &&
             sqlite3_value_int64(argv[1]) >= 0 &&
             sqlite3_value_int64(argv[1]) <= TN_FILE_SIZE_MAX &&
             sha256_hex(sha, sqlite3_value_bytes(argv[2])) && ct &&
             sqlite3_value_bytes(argv[3]) <= 255;
    for (int i = 0; ok && ct[i]; i++)
        if (ct[i] < 0x20 || ct[i] == 0x7f) ok = 0;
    sqlite3_result_int(ctx, ok);
}

int tn__functions_register(tn__conn *c) {
    /* INNOCUOUS: callable from the schema's views and triggers while
     * trusted_schema is OFF.  current_tenant() is constant within a statement,
     * so it is also DETERMINISTIC, letting SQLite evaluate it once per run. */
    const int inno = SQLITE_UTF8 | SQLITE_INNOCUOUS;
    int rc = sqlite3_create_function(c->db, "current_tenant", 0, inno | SQLITE_DETERMINISTIC, c,
                                     fn_current_tenant, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(c->db, "tn_version", 1, inno, c, fn_version, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(c->db, "tn_now", 0, inno, c, fn_now, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(c->db, "tn_new_id", 0, inno, c, fn_new_id, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(c->db, "tn_item_id_valid", 1, inno | SQLITE_DETERMINISTIC,
                                     c, fn_item_id_valid, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(c->db, "tn_json_valid", 1, inno | SQLITE_DETERMINISTIC, c,
                                     fn_json_valid, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(c->db, "tn_file_writer", 0, inno, c, fn_file_writer, NULL,
                                     NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(c->db, "tn_file_row_valid", 4, inno | SQLITE_DETERMINISTIC,
                                     c, fn_file_row_valid, NULL, NULL);
    return rc == SQLITE_OK ? TN_OK : tn__code(rc);
}
