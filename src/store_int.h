/*
 * store_int.h - the store's private structures, shared by src/store.c,
 * src/session.c, src/guard.c, src/hlc.c and the layers built on the store
 * (src/auth*.c, sync/).  Nothing here is public API.
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
#ifndef TN_STORE_INT_H
#define TN_STORE_INT_H

#include "tenantry.h"

#include <pthread.h>
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
    tn__stmt_slot cache[TN__STMT_CACHE];
    struct tn__conn *next; /* pool free list */
} tn__conn;

struct tn_store {
    char *dir;
    char *dbpath;
    tn_options opt;

    pthread_mutex_t mu; /* guards idle and nconn */
    tn__conn *idle;
    int nconn;

    /* Hybrid logical clock (src/hlc.c); atomics, see there. */
    int64_t hlc_last;  /* last version handed out */
    int64_t (*clock_ms)(void);

    /* Group commit (src/group.c). */
    pthread_mutex_t gc_mu;
    pthread_cond_t gc_cv;
    struct tn__op *gc_head, *gc_tail;
    int gc_leader;
    int64_t gc_groups, gc_writes; /* transactions led, writes they carried */

    unsigned char secret[32]; /* keys list cursors; from _meta */
    char **guard_ctx;         /* names of the schema's views and triggers */
    int guard_nctx;
    char **guard_private;     /* schema tables whose names start with '_' */
    int guard_nprivate;
};

struct tn_session {
    tn_store *st;
    tn__conn *c;
    int64_t tid;
    char tenant_id[37];
    char errmsg[TN__ERRMSG];
};

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
/* Writes a random UUID v4 into out. */
void tn__uuid4(char out[37]);
/* Appends an audit event in c's current transaction (or its own). */
int tn__audit(tn__conn *c, const char *actor, int64_t tid, const char *action,
              const char *detail);
/* Looks a tenant's internal key up by its id. */
int tn__tenant_tid(tn__conn *c, const char *id, int64_t *tid);

/* ---- group.c ---- */
typedef int (*tn__op_fn)(tn_session *s, void *arg);
/* Runs fn(s, arg) as one atomic write: part of s's transaction when s is in
 * one, else committed together with concurrent writes (group commit). */
int tn__group_write(tn_session *s, tn__op_fn fn, void *arg);

/* ---- session.c ---- */
/* 1 when id is 1-TN_ITEM_ID_MAX bytes of [A-Za-z0-9._:-]. */
int tn__item_id_valid(const char *id);
/* tn_session_exec on len bytes of text, which need not end in a NUL; a NUL
 * byte inside them is refused (TN_INVALID) before anything runs. */
int tn__session_exec_n(tn_session *s, const char *text, size_t len, tn_row_fn fn, void *arg);

/* ---- guard.c ---- */
void tn__guard_install(tn__conn *c);
/* TN_OK when sql names no private table or internal function; else TN_DENIED. */
int tn__guard_text(const tn_store *st, const char *sql);
/* Loads the names of the schema's views, triggers and private tables. */
int tn__guard_load(tn_store *st, sqlite3 *db);
void tn__guard_free(tn_store *st);

/* ---- hlc.c ---- */
/* Registers tn_version(), tn_now(), tn_new_id() and current_tenant() on c. */
int tn__functions_register(tn__conn *c);
/* Starts the clock from the highest version in the store, at open. */
int tn__hlc_init(tn_store *st, sqlite3 *db);
/* Call before every statement that may write versions: the rows it writes
 * read the clock afresh. */
int tn__hlc_ensure(tn__conn *c);

#endif
