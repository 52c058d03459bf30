/*
 * fixture.h - a store in the test's temporary directory with two tenants,
 * "acme" and "globex", each holding a marker item, for the store suites.
 */
#ifndef TN_FIXTURE_H
#define TN_FIXTURE_H

#include "harness.h"
#include "store_int.h"
#include "tenantry.h"

#include <stdio.h>
#include <string.h>

typedef struct fixture {
    tn_store *st;
    tn_tenant acme, globex;
    tn_session *a, *g;
    char dir[4096];
} fixture;

#define ASSERT_OK(expr)                                                     \
    do {                                                                    \
        int rc_ = (expr);                                                   \
        if (rc_ != TN_OK) TN_FAIL_("%s: %s", #expr, tn_errname(rc_));       \
    } while (0)

static inline tn_store *fixture_open(const char *dir) {
    tn_options o;
    tn_options_init(&o);
    o.create = 1;
    tn_store *st = NULL;
    int rc = tn_open(dir, &o, &st);
    if (rc != TN_OK) TN_FAIL_("tn_open(%s): %s: %s", dir, tn_errname(rc), tn_errmsg(NULL));
    return st;
}

static inline void fixture_init(fixture *f) {
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/data", tn_test_tmpdir());
    f->st = fixture_open(f->dir);
    ASSERT_OK(tn_tenant_create(f->st, "acme", &f->acme));
    ASSERT_OK(tn_tenant_create(f->st, "globex", &f->globex));
    ASSERT_OK(tn_session_open(f->st, f->acme.id, &f->a));
    ASSERT_OK(tn_session_open(f->st, f->globex.id, &f->g));
    ASSERT_OK(tn_item_put(f->a, "shared-id", "{\"owner\":\"acme\"}", NULL));
    ASSERT_OK(tn_item_put(f->g, "shared-id", "{\"owner\":\"GLOBEX-SECRET\"}", NULL));
    ASSERT_OK(tn_item_put(f->g, "g-only", "{\"owner\":\"GLOBEX-SECRET\"}", NULL));
}

static inline void fixture_done(fixture *f) {
    tn_session_close(f->a);
    tn_session_close(f->g);
    tn_close(f->st);
}

/* Runs a query on the raw database file, outside tenantry (for inspection and
 * for damaging it on purpose); returns the first column of the first row as a
 * number, or -1 on error. */
static inline long long raw_scalar(const char *dir, const char *sql) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tenantry.db", dir);
    sqlite3 *db;
    long long v = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK) {
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
            int rc = sqlite3_step(s);
            if (rc == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
            else if (rc == SQLITE_DONE) v = 0;
            sqlite3_finalize(s);
        }
    }
    sqlite3_close(db);
    return v;
}

#endif
