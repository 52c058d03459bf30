/*
 * schema.c - applies the embedded migrations (schema/NNN_*.sql) to a database.
 *
 * PRAGMA user_version is the number of the last migration applied.  Every
 * missing migration and the new user_version commit together in one IMMEDIATE
 * transaction (SQLite's DDL is transactional), so a power cut or a failing
 * migration leaves the file exactly as it was.
 */
#include "schema.h"

#include "store_int.h"

#include <stdio.h>

static int user_version(sqlite3 *db, int *v) {
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

int tn__migrate(sqlite3 *db, const tn__migration *migs, int n, char *errbuf, size_t errlen) {
    int have = 0;
    int rc = user_version(db, &have);
    if (rc != SQLITE_OK) {
        snprintf(errbuf, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db));
        return tn__code(rc);
    }
    if (have > n) {
        snprintf(errbuf, errlen,
                 "the database has schema version %d, newer than this tenantry's %d; "
                 "upgrade tenantry",
                 have, n);
        return TN_VERSION;
    }
    if (have == n) return TN_OK;

    rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(errbuf, errlen, "cannot start the migration: %s", sqlite3_errmsg(db));
        return tn__code(rc);
    }
    /* Another process may have migrated while we waited for the lock. */
    rc = user_version(db, &have);
    for (int i = have; rc == SQLITE_OK && i < n; i++) {
        rc = sqlite3_exec(db, migs[i].sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            snprintf(errbuf, errlen, "migration %s failed: %s", migs[i].name,
                     sqlite3_errmsg(db));
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return tn__code(rc) == TN_ERROR ? TN_CORRUPT : tn__code(rc);
        }
    }
    if (rc == SQLITE_OK) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", n);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(errbuf, errlen, "migration failed: %s", sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return tn__code(rc);
    }
    return TN_OK;
}
