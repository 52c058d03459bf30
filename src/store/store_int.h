/*
 * store_int.h - the store's private structures, shared by the files of
 * src/store/ only.  The layers above use conn.h.
 */
#ifndef TN_STORE_INT_H
#define TN_STORE_INT_H

#include "conn.h"
#include "tenantry.h"

#include <pthread.h>
#include <sqlite3.h>

/* A set of names compared ignoring ASCII case (guard.c); read-only once built. */
typedef struct tn__nameset {
    char **slot;              /* lowercased names; NULL: empty */
    size_t mask;              /* slots - 1, a power of two minus one */
    size_t maxlen;            /* the longest name */
    unsigned char first[256]; /* 1 for each byte a name starts with, either case */
} tn__nameset;

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
    int gc_queued;                /* writes waiting in the queue */
    int64_t gc_groups, gc_writes; /* transactions led, writes they carried */
    int64_t console_shaped;       /* console statements run as a shape (atomic) */

    unsigned char secret[32]; /* keys list cursors; from _meta */
    tn__nameset guard_ctx;    /* names of the schema's views and triggers */
    tn__nameset guard_words;  /* words tenant SQL may not contain (guard.c) */
    char **guard_odd;         /* forbidden names that are no single word */
    int guard_nodd;
};

struct tn_session {
    tn_store *st;
    tn__conn *c;
    int64_t tid;
    char tenant_id[37];
    char errmsg[TN__ERRMSG];
};

/* The budget of one tn_session_exec() call (session.c), checked by its
 * progress handler and by tn_version() (hlc.c) for every row it writes. */
typedef enum { TN__OVER_NONE, TN__OVER_TIME, TN__OVER_HEAP, TN__OVER_ROWS } tn__over;
typedef struct tn__console {
    int64_t deadline_ms; /* tn__mono_ms() */
    int64_t heap_limit;  /* sqlite3_memory_used() ceiling */
    int64_t rows_left;   /* rows it may still return or write */
    tn__over over;       /* which budget stopped it */
} tn__console;

/* ---- session.c ---- */
/* Records detail for tn_session_errmsg(s); returns rc. */
int tn__sfail(tn_session *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same from the connection's last SQLite error: TN_QUOTA and TN_DENIED for
 * the schema's refusals (their words), else tn__code(src). */
int tn__sfail_db(tn_session *s, int src);

/* ---- group.c ---- */
typedef int (*tn__op_fn)(tn_session *s, void *arg);
/* Runs fn(s, arg) as one atomic write: part of s's transaction when s is in
 * one, else committed together with concurrent writes (group commit). */
int tn__group_write(tn_session *s, tn__op_fn fn, void *arg);


/* ---- session.c ---- */
/* tn_session_exec on len bytes of text, which need not end in a NUL; a NUL
 * byte inside them is refused (TN_INVALID) before anything runs. */
int tn__session_exec_n(tn_session *s, const char *text, size_t len, tn_row_fn fn, void *arg);

/* ---- guard.c ---- */
void tn__guard_install(tn__conn *c);
/* TN_OK when sql names no private table or internal function; else TN_DENIED. */
int tn__guard_text(const tn_store *st, const char *sql);
/* The functions tenant SQL may call (sorted), for the test that pins them. */
const char *const *tn__guard_allowed_functions(size_t *n);
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
