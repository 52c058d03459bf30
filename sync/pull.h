/*
 * pull.h - the way back from the remote: what other writers pushed comes into
 * this store (pull, restore, join), deleted tenants leave the remote (purge),
 * each tenant's own row (name, settings) goes up, and local and remote are
 * compared (verify).  The store's half is store/apply.c (outbox.h).
 *
 * Every function takes the remote and one connection of the caller's; each
 * needs version 2 of the method table, except tn__push_tenant_row.
 */
#ifndef TN_PULL_H
#define TN_PULL_H

#include "adapt.h"
#include "remote.h"
#include "tenantry.h"

#include <stdint.h>

typedef struct tn__pull_stats {
    int64_t items, files, bytes; /* rows applied, file bytes fetched */
    int64_t kept_local;          /* pulled rows older than the local copy */
    int64_t conflicts;           /* local changes not yet pushed that a newer pulled row replaced */
    int64_t refused;             /* rows refused (malformed, foreign, damaged bytes) */
    int64_t removed;             /* local rows deleted by a full reconcile */
    int64_t tenants;             /* tenants restored or joined */
    int64_t gone;                /* tenants the remote says were deleted */
    int64_t read;                /* rows the change feed sent (held ones too) */
} tn__pull_stats;

/* Pulls tenant's changes since its cursor (a full reconcile when it was
 * offline longer than its tombstones live, default_ttl_s by default).
 * Files are fetched on up to `fetchers` connections (1: only c, which keeps
 * c's bandwidth cap; more open connections of their own, uncapped). */
int tn__pull_tenant(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *tenant,
                    int64_t default_ttl_s, int fetchers, tn__pull_stats *ps);
/* Pushes the tenant's own row when its name or settings changed, at pace's
 * rate (may be NULL: at once).  TN_BUSY when the engine stopped meanwhile. */
int tn__push_tenant_row(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *tenant,
                        tn__adapt *pace);
/* Works off the purge of deleted tenants: the marker, then every object and
 * row.  *rows += rows removed. */
int tn__purge_tenants(tn_store *st, tn_remote *r, tn_remote_conn *c, int64_t *rows);
/* Brings tenant id with every row and file into this store (restore, join).
 * TN_NOTFOUND: the remote has no such tenant; TN_EXISTS: it was deleted. */
int tn__join_tenant(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *id,
                    tn__pull_stats *ps);
/* Every tenant the remote holds (deleted ones left out); *ids malloc'd. */
int tn__remote_tenants(tn_remote *r, tn_remote_conn *c, char (**ids)[37], int *n);
/* Compares tenant's rows and files, local against remote, into out
 * ({"local_rows","remote_rows","differences":[{kind,key,what}],...}); with
 * repair, settles each difference by the conflict rule. */
struct cJSON;
int tn__verify_tenant(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *tenant,
                      int repair, struct cJSON *out, tn__pull_stats *ps);

#endif
