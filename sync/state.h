/*
 * state.h - the sync engine's local bookkeeping in the store: per-tenant
 * state (_sync_state), dead letters (_sync_dead) and conflict losses
 * (_sync_conflicts) and multipart progress (_sync_uploads, _sync_upload_parts).
 * The tables are defined by the migration schema/002_sync.sql.
 *
 * Every table has a `tenant` column (an _tenants.tid), so tn_tenant_delete
 * removes a tenant's rows with everything else.
 */
#ifndef TN_SYNC_STATE_H
#define TN_SYNC_STATE_H

#include "tenantry.h"

#include <stdint.h>

typedef enum { TN__OUT_RETRY = 0, TN__OUT_OK, TN__OUT_CONFLICT, TN__OUT_DEAD } tn__outcome;

typedef struct tn__result {
    int outcome;        /* tn__outcome */
    int code;           /* tn code for DEAD / RETRY */
    int64_t remote_version;
    int superseded;     /* OK with nothing written: a newer local change replaced it */
    int sent;           /* a request went out for it in this batch (its upload or its row) */
} tn__result;

struct tn__batch;
/* Records dead letters, conflicts and per-tenant progress for batch b and
 * acknowledges the outbox rows of changes with done[i] set (none when done is
 * NULL), all in one transaction.  retry_code: the error that left rows
 * un-acknowledged (0: none); backoff_ms: the engine's current backoff. */
int tn__sync_record(tn_store *st, const struct tn__batch *b, const tn__result *res,
                    const unsigned char *done, int retry_code, int64_t backoff_ms);

/* Multipart upload progress of one file (tenant uuid, name), so a restart
 * resumes an upload instead of starting over.  etag[i] is part i + 1's ETag,
 * "" when that part is not uploaded yet. */
#define TN__MP_MAX_PARTS 1000 /* 8 GiB with 8 MiB parts */
typedef struct tn__mp {
    int64_t version;
    char upload_id[512];
    char etag[TN__MP_MAX_PARTS][72];
} tn__mp;

int tn__mp_get(tn_store *st, const char *tenant, const char *name, tn__mp *out);
/* Records a new upload (forgetting any earlier one and its parts). */
int tn__mp_begin(tn_store *st, const char *tenant, const char *name, int64_t version,
                 const char *upload_id);
int tn__mp_part(tn_store *st, const char *tenant, const char *name, int part, const char *etag);
int tn__mp_clear(tn_store *st, const char *tenant, const char *name);

#endif
