/*
 * remote.h - what the sync engine asks of "a remote", as one versioned method
 * table (after SQLite's sqlite3_io_methods and curl's Curl_ssl).  The engine
 * knows nothing else about where rows and bytes go; sync/aws/ (the AWS backend)
 * and sync/dir/ (a directory: a NAS, a removable disk) implement it, and
 * tests/test_remote.c runs one conformance suite against every backend.
 *
 * Layout (the same for every backend; built by remote_key.c only):
 *   a tenant's rows live in partition "TENANT#<tenant uuid>", each under a
 *   sort key "ITEM#<item id>", "FILE#<file name>" or "TENANT" (the tenant's
 *   own row: name and settings); a file's bytes are the object
 *   "<tenant uuid>/files/<file name>".
 *
 * Rows.  A row carries its version (57-bit, from the writing store's clock).
 * put_rows writes each row only when the remote has none under that key or an
 * older version (unless the backend was opened unconditional: one writer).
 * A refused row's answer says the version the remote holds, so the engine
 * can tell a replay of its own write (equal) from a lost conflict (higher).
 *
 * Errors are tn codes.  Retryable ones (tn_err_retryable: network, timeout,
 * throttling) leave nothing half-done that a retry cannot finish; TN_DENIED
 * and TN_NOTFOUND say the remote refused this tenant's partition or is not
 * set up; anything else is permanent for that row.
 *
 * Threads.  A tn_remote is shared; each thread works through its own
 * tn_remote_conn (conn_open / conn_close).  Every method is safe for several
 * processes writing the same remote at once.
 *
 * Versions of this table:
 *   1  rows, versions, objects whole and in parts, object delete, init
 *   2  the way back: a tenant's change feed since a cursor, a tenant's full
 *      row listing, object download, row delete, the tenant list
 */
#ifndef TN_REMOTE_H
#define TN_REMOTE_H

#include "remote_key.h"

#include <stddef.h>
#include <stdint.h>

#define TN_REMOTE_VERSION 2

/* Row kinds (also remote_key.h's). */
enum { TN_REMOTE_ITEM = TN__REMOTE_ITEM, TN_REMOTE_FILE = TN__REMOTE_FILE,
       TN_REMOTE_TENANT = TN__REMOTE_TENANT };

typedef struct tn_remote_row {
    char tenant[37];          /* the tenant's uuid */
    int kind;                 /* TN_REMOTE_* */
    const char *key;          /* item id or file name; "" for the tenant row */
    int64_t version;
    int deleted;              /* a tombstone */
    int64_t updated_at;       /* ms since the epoch */
    int64_t expires_at;       /* tombstones: s since the epoch it may vanish; 0 never */
    const char *data;         /* items: the JSON text; tenant row: {"name":..,"settings":{..}};
                               * NULL for files and tombstones */
    int64_t size;             /* files: bytes */
    const char *sha256;       /* files: 64 lowercase hex digits */
    const char *content_type; /* files */
    int64_t feed;             /* read back only: the row's place in its tenant's change
                               * feed (backend-defined, increasing per push) */
} tn_remote_row;

/* The answer to one row of put_rows. */
typedef struct tn_remote_put {
    int code;       /* TN_OK: written.  TN_CONFLICT: the remote holds a version >= this
                     * row's: `remote` says which (-1 not known).  Else the error. */
    int64_t remote;
} tn_remote_put;

/* A page of rows read back (changes, list).  Strings belong to the page. */
typedef struct tn_remote_page {
    tn_remote_row *rows;
    int n;
    char next[1024]; /* "" at the end; else pass it back to continue */
    int refused;     /* rows the backend could not parse and left out */
    void *mem;       /* backend-owned storage, freed by tn_remote_page_free */
} tn_remote_page;
void tn_remote_page_free(tn_remote_page *p);
/* For backends: appends a zeroed row (NULL when out of memory), and copies
 * s[0..n) into the page's memory (NUL-terminated). */
tn_remote_row *tn_remote_page_add(tn_remote_page *p);
const char *tn_remote_page_str(tn_remote_page *p, const char *s, size_t n);

typedef struct tn_remote tn_remote;
typedef struct tn_remote_conn tn_remote_conn;

/* Capabilities. */
#define TN_REMOTE_UNCONDITIONAL 0x1 /* rows are written without the version condition */
#define TN_REMOTE_ATOMIC_BATCH  0x2 /* a put_rows call is all-or-nothing */

typedef struct tn_remote_methods {
    int version;      /* TN_REMOTE_VERSION this table fills */
    const char *name; /* "aws", "dir" */

    /* Creates what the layout needs when missing (a table and its index, a
     * directory tree) and checks the rest is reachable.  *what: a generic
     * line about what failed (static). */
    int (*init)(tn_remote *r, const char **what);
    /* bandwidth: bytes/s, 0 no cap.  The connections of one remote opened
     * with a cap share one budget of that many bytes/s between them (the
     * last cap given sets it), however many are busy at once. */
    int (*conn_open)(tn_remote *r, int64_t bandwidth, tn_remote_conn **out);
    void (*conn_close)(tn_remote_conn *c);

    /* Writes rows[0..n) (n <= r->batch_rows), each under the version
     * condition; out[i] answers rows[i].  Always fills every out[i]. */
    void (*put_rows)(tn_remote_conn *c, const tn_remote_row *rows, int n, tn_remote_put *out);
    /* The versions the remote holds for rows[0..n) (n <= 100): ver[i] = the
     * version, 0 when there is no such row, -1 when the answer did not say.
     * TN_OK, or the error that stopped every row. */
    int (*versions)(tn_remote_conn *c, const tn_remote_row *rows, int n, int64_t *ver);

    /* Objects: f names the file (tenant, key, sha256, size, content_type). */
    int (*put_object)(tn_remote_conn *c, const tn_remote_row *f, const void *data, size_t len);
    /* In parts (5 MiB and up, but the last): create, upload each, complete.
     * upload_id and etag are what later calls get back, so an upload
     * survives a restart; mp_abort_all drops every unfinished upload of f. */
    int (*mp_create)(tn_remote_conn *c, const tn_remote_row *f, char *upload_id, size_t n);
    int (*mp_part)(tn_remote_conn *c, const tn_remote_row *f, const char *upload_id, int part,
                   const void *data, size_t len, char *etag, size_t etag_n);
    int (*mp_complete)(tn_remote_conn *c, const tn_remote_row *f, const char *upload_id,
                       const char (*etags)[72], int nparts);
    int (*mp_abort)(tn_remote_conn *c, const tn_remote_row *f, const char *upload_id);
    int (*mp_abort_all)(tn_remote_conn *c, const tn_remote_row *f);
    /* Deleting what is not there is TN_OK. */
    int (*delete_object)(tn_remote_conn *c, const tn_remote_row *f);

    void (*close)(tn_remote *r);

    /* ---- version 2 ---- */
    /* Rows of tenant pushed after cursor (opaque text, "" = from the start),
     * in push order, at most max; *cursor_out (<= 255 chars) resumes after
     * the last row returned, also when the page is empty.  A row may come
     * back more than once (then with the same or a newer version); none
     * pushed after the cursor is ever skipped. */
    int (*changes)(tn_remote_conn *c, const char *tenant, const char *cursor, int max,
                   tn_remote_page *out, char cursor_out[256]);
    /* Every row of tenant (tombstones too), page by page: start with
     * page_token "" and pass out->next back. */
    int (*list)(tn_remote_conn *c, const char *tenant, const char *page_token, tn_remote_page *out);
    /* The bytes of f's object into fd (from its current offset).  The caller
     * checks them against f->sha256. */
    int (*get_object)(tn_remote_conn *c, const tn_remote_row *f, int fd);
    /* Removes a row whatever its version (a purged tenant). */
    int (*delete_row)(tn_remote_conn *c, const tn_remote_row *row);
    /* The tenant rows (kind TN_REMOTE_TENANT) of every tenant, page by page. */
    int (*tenants)(tn_remote_conn *c, const char *page_token, tn_remote_page *out);
    /* A cursor at the end of tenant's feed now (a restore reads every row
     * with list, then pulls from here).  May be NULL: the caller then walks
     * the feed from the start. */
    int (*feed_end)(tn_remote_conn *c, const char *tenant, char cursor_out[256]);
} tn_remote_methods;

/* Every backend's object starts with this. */
struct tn_remote {
    const tn_remote_methods *m;
    unsigned caps;       /* TN_REMOTE_* capabilities */
    int batch_rows;      /* rows one put_rows call takes (1..100) */
    size_t batch_bytes;  /* their data, at most (0: no limit) */
    size_t alone_bytes;  /* a row with more data than this goes alone (0: none) */
    const volatile int *stop; /* set by the engine: long waits inside a call end early */
};

/* Opens the remote that spec names:
 *   "dir:/path"        the directory backend, rooted at /path
 *   "aws" or NULL/""   the AWS backend, configured from the environment
 * *err gets a generic message (no secrets) on failure. */
typedef int (*tn_remote_open_fn)(const char *arg, tn_remote **out, char *err, size_t errlen);
int tn_remote_open(const char *spec, tn_remote **out, char *err, size_t errlen);
void tn_remote_close(tn_remote *r);

/* The backends tn_remote_open knows: set once by the program (the CLI
 * registers sync/aws and sync/dir), so the engine never names one. */
int tn_remote_register(const char *scheme, tn_remote_open_fn open);

#endif
