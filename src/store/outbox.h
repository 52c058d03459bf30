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

#endif
