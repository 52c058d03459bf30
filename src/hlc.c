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
 * row's own version is also a floor (tn_version(old)), so one item's versions
 * always increase; when that floor lies above our lease (another process wrote
 * the row), the statement fails once, the lease is renewed past it, and the
 * store retries.
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
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/* The clock state is read on every write, so it is kept in atomics, not
 * behind a mutex: hlc_last only grows (compare-and-swap), hlc_lease too. */
static int64_t load(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

static void raise_to(int64_t *p, int64_t v) {
    int64_t cur = load(p);
    while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, 0, __ATOMIC_ACQ_REL,
                                                   __ATOMIC_ACQUIRE)) {
    }
}

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

/*
 * Extends the lease in its own transaction.  The stored lease may be ahead of
 * ours when another process shares the file: then every version up to it may
 * be in use there, so our clock jumps past it.  That keeps the ranges two
 * processes hand out disjoint, and versions unique per file.
 */
static int renew(tn__conn *c, int64_t base) {
    tn_store *st = c->st;
    int was_trusted = c->trusted;
    c->trusted = 1;
    sqlite3_stmt *s;
    int64_t stored = 0, lease = 0;
    int rc = tn__begin(c);
    if (rc == TN_OK && (rc = tn__stmt(c, SQL_LEASE_GET, &s)) == TN_OK) {
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW) stored = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (src != SQLITE_ROW && src != SQLITE_DONE) rc = tn__fail_db(st, c, src);
    }
    if (rc == TN_OK && (rc = tn__stmt(c, SQL_LEASE_PUT, &s)) == TN_OK) {
        lease = (stored > base ? stored : base) + LEASE_AHEAD;
        sqlite3_bind_int64(s, 1, lease);
        int src = sqlite3_step(s);
        sqlite3_reset(s);
        if (src != SQLITE_DONE) rc = tn__fail_db(st, c, src);
    }
    if (rc == TN_OK) rc = tn__commit(c);
    if (rc != TN_OK) tn__rollback(c);
    c->trusted = was_trusted;
    if (rc != TN_OK) return rc;
    if (stored > load(&st->hlc_lease)) raise_to(&st->hlc_last, stored);
    raise_to(&st->hlc_lease, lease);
    return TN_OK;
}

int tn__hlc_ensure(tn__conn *c) {
    tn_store *st = c->st;
    c->now_ms = 0; /* a new statement reads the clock afresh */
    int64_t now = st->clock_ms() << 16, last = load(&st->hlc_last);
    int64_t base = now > last ? now : last;
    if (c->lease_short) {
        /* The last statement found a row version above our lease. */
        int64_t need = c->lease_short;
        c->lease_short = 0;
        if (need > base) base = need;
        if (sqlite3_get_autocommit(c->db)) return renew(c, base);
    }
    /* Inside a caller's explicit transaction the lease cannot be committed on
     * its own; the half minute of margin covers that transaction. */
    if (load(&st->hlc_lease) >= base + LEASE_MARGIN || !sqlite3_get_autocommit(c->db))
        return TN_OK;
    return renew(c, base);
}

static void fn_version(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    tn__conn *c = sqlite3_user_data(ctx);
    tn_store *st = c->st;
    int64_t floor = argc > 0 ? sqlite3_value_int64(argv[0]) : 0;
    int64_t now = st->clock_ms();
    int64_t last = load(&st->hlc_last), v;
    do {
        v = now << 16;
        if (v <= last) v = last + 1;
        if (v <= floor) v = floor + 1;
        /* Nothing above the lease: it could repeat after a crash, or collide
         * with another process's range.  The caller renews and retries. */
        if (v > load(&st->hlc_lease)) {
            c->lease_short = v;
            sqlite3_result_error(ctx, "version clock lease exhausted; retry", -1);
            return;
        }
    } while (!__atomic_compare_exchange_n(&st->hlc_last, &last, v, 0, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
    c->now_ms = now;
    c->last_version = v;
    c->nversions++;
    sqlite3_result_int64(ctx, v);
}

/* The timestamp of the row being written: the clock reading its version was
 * made from, so one row costs one clock read. */
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
