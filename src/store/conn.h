/*
 * conn.h - what the layers above the store (auth, sync) may use of it: a
 * connection borrowed from the store's pool, its statement cache, trusted
 * transactions, audit rows and tenant lookups.  The store's own structures
 * (struct tn_store, struct tn_session) stay in store_int.h, private to
 * src/store/.
 *
 * Connections.  A tn_store owns a pool of SQLite connections to one database
 * file.  A connection is lent to one thread at a time (a session, or a trusted
 * borrower such as the admin calls or the sync engine) and returned after.
 * Each connection has the guard (an authorizer) installed for its whole life;
 * the guard lets everything through only while c->trusted is set, which only
 * C code inside the store layers does, never SQL.
 *
 * Statements.  tn__stmt() caches prepared statements per connection, keyed by
 * the address of a static SQL string and by the trusted flag, so a statement
 * prepared under the trusted guard is never stepped by a tenant session.
 */
#ifndef TN_CONN_H
#define TN_CONN_H

#include "tenantry.h"

#include <sqlite3.h>

#define TN__STMT_CACHE 48
#define TN__ERRMSG 256

enum { TN__KIND_ITEM = 1, TN__KIND_FILE = 2 };

typedef struct tn__stmt_slot {
    const char *sql; /* identity: the static string's address */
    int trusted;
    sqlite3_stmt *stmt;
} tn__stmt_slot;

typedef struct tn__conn {
    sqlite3 *db;
    struct tn_store *st;
    int64_t tenant;       /* current_tenant(): an _tenants.tid, 0 for none */
    int trusted;          /* guard open: internal statements only */
    int64_t last_version; /* last value tn_version() returned */
    int64_t nversions;    /* tn_version() calls since the counter was reset */
    int64_t now_ms;       /* clock reading of the row being written, 0 = none */
    struct tn__console *console; /* the running console call's budget, or NULL */
    int file_write;       /* tn_file_writer(): the store's own file call runs */
    tn__stmt_slot cache[TN__STMT_CACHE];
    struct tn__conn *next; /* pool free list */
} tn__conn;

/* ---- store.c ---- */
/* Borrows a connection (trusted when trusted != 0) and returns it. */
int tn__conn_get(tn_store *st, int trusted, tn__conn **out);
void tn__conn_put(tn_store *st, tn__conn *c);
/* A cached, reset statement for sql (a string with static storage). */
int tn__stmt(tn__conn *c, const char *sql, sqlite3_stmt **out);
/* Runs a cached statement that returns no rows (sql has static storage). */
int tn__exec(tn__conn *c, const char *sql);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK on c. */
int tn__begin(tn__conn *c);
int tn__commit(tn__conn *c);
void tn__rollback(tn__conn *c);
/* Runs body(c, arg) on a trusted connection inside BEGIN IMMEDIATE; commits
 * when it returns TN_OK, rolls back otherwise. */
typedef int (*tn__tx_fn)(tn__conn *c, void *arg);
int tn__trusted_tx(tn_store *st, tn__tx_fn body, void *arg);
/* Steps s, resets it, and maps anything but SQLITE_DONE to a recorded error. */
int tn__step_done(tn__conn *c, sqlite3_stmt *s);
/* Maps an SQLite result code to a tn_code. */
int tn__code(int sqlite_rc);
/* Records detail for tn_errmsg() on this thread; returns rc. */
int tn__fail(tn_store *st, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, taking the detail from the connection's last SQLite error. */
int tn__fail_db(tn_store *st, tn__conn *c, int sqlite_rc);
int64_t tn__now_ms(tn_store *st);
/* 1 when id has the form of a lowercase UUID (8-4-4-4-12 hex digits). */
int tn__uuid_valid(const char *id);
/* 1 when id is 1-TN_ITEM_ID_MAX bytes of [A-Za-z0-9._:-] (session.c). */
int tn__item_id_valid(const char *id);
/* Writes a random UUID v4 into out. */
void tn__uuid4(char out[37]);
/* Appends an audit event in c's current transaction (or its own). */
int tn__audit(tn__conn *c, const char *actor, int64_t tid, const char *action,
              const char *detail);
/* Looks a tenant's internal key up by its id. */
int tn__tenant_tid(tn__conn *c, const char *id, int64_t *tid);

#endif
