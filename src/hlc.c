/*
 * hlc.c - item versions from a hybrid logical clock, and the SQL functions the
 * schema's views and triggers call.
 *
 * A version is (milliseconds since the epoch << 16) | counter: it follows the
 * wall clock when the clock moves forward, and counts up from the last version
 * when the clock stalls or steps back, so versions from different appliances
 * order roughly by time and never go backwards on one store.
 *
 * Restarts.  Versions are never persisted one by one (that would cost a write
 * per write); instead _meta.hlc_lease holds an upper bound on every version
 * handed out.  Before a writing statement, tn__hlc_ensure() extends the lease to
 * a minute ahead once less than half a minute remains, in its own small
 * transaction; tn_version() refuses to pass the lease.  At open the clock starts
 * from the lease, so no restart or clock jump can reissue an old version.  A
 * row's own version is also a floor (tn_version(old)), which keeps one item's
 * versions increasing even with several processes on one file.
 */
#include "store_int.h"

#include "json_check.h"

#include <sodium.h>
#include <string.h>

#define LEASE_AHEAD ((int64_t)60000 << 16)  /* extend to a minute ahead */
#define LEASE_MARGIN ((int64_t)30000 << 16) /* once less than this is left */

static const char SQL_LEASE_GET[] = "SELECT value FROM _meta WHERE key = 'hlc_lease'";
static const char SQL_LEASE_PUT[] =
    "INSERT INTO _meta (key, value) VALUES ('hlc_lease', ?1) "
    "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)";

int tn__hlc_init(tn_store *st, sqlite3 *db) {
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, SQL_LEASE_GET, -1, &s, NULL);
    if (rc != SQLITE_OK) return tn__fail(st, tn__code(rc), "reading the clock lease: %s",
                                         sqlite3_errmsg(db));
    int64_t lease = 0;
    if (sqlite3_step(s) == SQLITE_ROW) lease = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    st->hlc_last = lease;
    st->hlc_lease = lease;
    return TN_OK;
}

int tn__hlc_ensure(tn__conn *c) {
    tn_store *st = c->st;
    pthread_mutex_lock(&st->hlc_mu);
    int64_t now = st->clock_ms() << 16;
    int64_t base = now > st->hlc_last ? now : st->hlc_last;
    int enough = st->hlc_lease >= base + LEASE_MARGIN;
    pthread_mutex_unlock(&st->hlc_mu);
    /* Inside a caller's explicit transaction the lease cannot be committed on
     * its own; the half minute of margin covers that transaction. */
    if (enough || !sqlite3_get_autocommit(c->db)) return TN_OK;

    int64_t lease = base + LEASE_AHEAD;
    int was_trusted = c->trusted;
    c->trusted = 1;
    sqlite3_stmt *s;
    int rc = tn__stmt(c, SQL_LEASE_PUT, &s);
    if (rc == TN_OK) {
        sqlite3_bind_int64(s, 1, lease);
        int src = sqlite3_step(s);
        sqlite3_reset(s);
        rc = src == SQLITE_DONE ? TN_OK : tn__fail_db(st, c, src);
    }
    c->trusted = was_trusted;
    if (rc != TN_OK) return rc;
    pthread_mutex_lock(&st->hlc_mu);
    if (lease > st->hlc_lease) st->hlc_lease = lease;
    pthread_mutex_unlock(&st->hlc_mu);
    return TN_OK;
}

static void fn_version(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    tn__conn *c = sqlite3_user_data(ctx);
    tn_store *st = c->st;
    int64_t floor = argc > 0 ? sqlite3_value_int64(argv[0]) : 0;

    pthread_mutex_lock(&st->hlc_mu);
    int64_t v = st->clock_ms() << 16;
    if (v <= st->hlc_last) v = st->hlc_last + 1;
    int from_floor = v <= floor;
    if (from_floor) v = floor + 1;
    /* A version above the lease could repeat after a crash; one derived from
     * a row's persisted version cannot, so only the clock's own is capped. */
    if (v > st->hlc_lease && !from_floor) {
        pthread_mutex_unlock(&st->hlc_mu);
        sqlite3_result_error(ctx, "version clock lease exhausted; retry", -1);
        return;
    }
    st->hlc_last = v;
    pthread_mutex_unlock(&st->hlc_mu);

    c->last_version = v;
    c->nversions++;
    sqlite3_result_int64(ctx, v);
}

static void fn_now(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    (void)argv;
    tn__conn *c = sqlite3_user_data(ctx);
    sqlite3_result_int64(ctx, c->st->clock_ms());
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
    return rc == SQLITE_OK ? TN_OK : tn__code(rc);
}
