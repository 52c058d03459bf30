/*
 * outbox.h - the store's side of sync: reading the transactional outbox and
 * acknowledging what the remote accepted.
 *
 * The schema's triggers append one _outbox row (seq, tenant, kind, ref) for
 * every insert and update of an item or a file, in the writer's transaction.
 * tn__outbox_fetch() reads the oldest rows, groups them by changed row (so ten
 * writes to one item become one change carrying the item's current state), and
 * takes rows round-robin across tenants so one tenant's backlog cannot starve
 * another.  tn__outbox_ack() deletes exactly the outbox rows a change was built
 * from, in one transaction with whatever progress the caller records there; a
 * write that happened after the fetch keeps its own row and is sent next time.
 */
#ifndef TN_OUTBOX_H
#define TN_OUTBOX_H

#include "tenantry.h"

#include <stdint.h>

typedef struct tn__change {
    int kind;           /* 1 item, 2 file */
    int64_t ref;        /* rowid in _items or _files */
    char tenant_id[37]; /* the tenant's UUID, for the remote key */
    char *key;          /* item id or file name */
    char *data;         /* item JSON; NULL for files and tombstones */
    int deleted;
    int64_t version;
    int64_t updated_at; /* ms since the epoch */
    int64_t tombstone_ttl_s; /* the tenant's tombstone retention; 0 = the engine's */
    /* files only */
    int64_t size;
    char sha256[65];
    char *content_type;
    /* the outbox rows this change stands for */
    int64_t *seqs;
    int nseqs;
} tn__change;

typedef struct tn__batch {
    tn__change *changes;
    int n;
} tn__batch;

/* Reads up to max distinct changes (scanning at most scan outbox rows). */
int tn__outbox_fetch(tn_store *st, int max, int scan, tn__batch *out);
/* The same, leaving out the rows of the nskip tenants (UUIDs) in skip: the
 * sync engine's way to keep going for the others while one tenant's rows
 * fail as a whole (a partition the remote refuses). */
int tn__outbox_fetch_skip(tn_store *st, int max, int scan, const char (*skip)[37], int nskip,
                          tn__batch *out);
/* Deletes the outbox rows of changes[i] for each i with done[i] set (all when
 * done is NULL), in a transaction of its own. */
int tn__outbox_ack(tn_store *st, const tn__batch *b, const unsigned char *done);
/* The same inside the caller's transaction on c (a trusted connection), so the
 * sync engine records its progress and acknowledges in one commit. */
struct tn__conn;
int tn__outbox_ack_in(struct tn__conn *c, const tn__batch *b, const unsigned char *done);
void tn__batch_free(tn__batch *b);
/* Pending outbox rows, for one tenant (tenant_id non-NULL), or of all the
 * tenants whose sync is on (what the engine can send). */
int tn__outbox_pending_tenant(tn_store *st, const char *tenant_id, int64_t *rows);

/* ---- the way back (apply.c) ---------------------------------------------- */

/* A row another writer pushed, as the remote sent it (strings borrowed). */
typedef struct tn__incoming {
    int kind;                 /* TN__KIND_ITEM or TN__KIND_FILE (conn.h) */
    const char *key;          /* item id or file name */
    int64_t version;
    int deleted;
    int64_t updated_at;       /* ms */
    const char *data;         /* items: JSON text */
    int64_t size;             /* files */
    const char *sha256;
    const char *content_type;
} tn__incoming;

/* A version further than this ahead of the store's clock is refused. */
#define TN__PULL_MAX_AHEAD_MS (10LL * 60 * 1000)

/* TN__APPLIED_OVER_LOCAL (from tn__apply_row only): applied, and a local
 * change not yet pushed lost to it (recorded in _sync_conflicts). */
enum { TN__APPLIED = 1, TN__KEPT_LOCAL, TN__SAME, TN__APPLIED_OVER_LOCAL };

/* One transaction (BEGIN IMMEDIATE on a trusted connection) applying rows of
 * one tenant and advancing its cursor: begin, decide/row..., commit or abort. */
typedef struct tn__apply tn__apply;
int tn__apply_begin(tn_store *st, const char *tenant_id, tn__apply **out);
/* The local copy of a row: version (0: none), deleted, files' sha256. */
int tn__apply_local(tn__apply *a, int kind, const char *key, int64_t *version, int *deleted,
                    char sha256[65]);
/* What the conflict rule makes of r (TN__APPLIED: r wins), without writing.
 * TN_INVALID for a version from too far in the future. */
int tn__apply_decide(tn__apply *a, const tn__incoming *r, int *outcome);
/* The same, and writes r when it wins (a file's bytes must be in place). */
int tn__apply_row(tn__apply *a, const tn__incoming *r, int *outcome);
/* Drops the outbox rows the applied rows queued (no echo), stores cursor
 * (NULL: leaves it; at_end: the pull reached the end now) and the counts,
 * commits, and moves the clock past every version applied.  Frees a. */
int tn__apply_commit(tn__apply *a, const char *cursor, int at_end, int64_t refused);
void tn__apply_abort(tn__apply *a);
int tn__pull_cursor(tn_store *st, const char *tenant_id, char cursor[256]);
int tn__pull_error(tn_store *st, const char *tenant_id, const char *what);

/* The tenant's own remote row: {"name":..,"settings":{..}} (malloc'd) and
 * the hash last recorded as pushed ("" none). */
int tn__tenant_row(tn_store *st, const char *tenant_id, char **json, char pushed[65]);
int tn__tenant_row_pushed(tn_store *st, const char *tenant_id, const char *hash);
/* Creates or renames the tenant id from its remote row, with its settings
 * (JSON object or NULL), recording hash as pushed (no echo). */
int tn__apply_tenant(tn_store *st, const char *id, const char *name, const char *settings_json,
                     const char *hash);

/* Tenants deleted here whose remote copy is still to purge. */
int tn__purge_list(tn_store *st, char (*ids)[37], int max, int *n);
int tn__purge_done(tn_store *st, const char *id, int64_t rows, int finished);

/* A restore in progress: `check` is not clean and nothing serves the store
 * until it finishes. */
int tn__restore_mark(tn_store *st, int incomplete);
int tn__restore_marked(tn_store *st);

/* Queues a row for sync again (verify --repair). TN_NOTFOUND when absent. */
int tn__outbox_touch(tn_store *st, const char *tenant_id, int kind, const char *key);
/* Every local row of a tenant, tombstones too, with whether it waits in the
 * outbox.  data: items' JSON or files' sha256.  fn returns non-zero to stop
 * (that value is returned). */
typedef struct tn__local_row {
    int kind;
    const char *key;
    int64_t version;
    int deleted;
    const char *data;
    int pending;
} tn__local_row;
typedef int (*tn__local_fn)(const tn__local_row *r, void *arg);
int tn__local_rows(tn_store *st, const char *tenant_id, tn__local_fn fn, void *arg);
/* Whether the tenant's last complete pull is older than its tombstones live
 * (its tombstone_days, else default_ttl_s): then deletes may have left the
 * feed, and the pull must reconcile in full. */
int tn__pull_due(tn_store *st, const char *tenant_id, int64_t default_ttl_s, int *full);

/* The tenants whose sync is on; *ids malloc'd. */
int tn__sync_tenants(tn_store *st, char (**ids)[37], int *n);

#endif
