/*
 * engine.h - the sync engine: drains the store's outbox to a remote (rows
 * and file bytes, through the method table of remote.h: AWS or a directory),
 * as a background thread of `tenantry serve` or one pass for
 * `tenantry sync --once`.
 *
 * Guarantees:
 *   - An outbox row is acknowledged (deleted) only after the remote
 *     acknowledged that version, or after the remote proved to hold a newer
 *     version (a conflict loss: counted, recorded in _sync_conflicts), or after
 *     the change was moved to the dead-letter table (_sync_dead) for a
 *     permanent error.  A crash at any point replays at most idempotent writes.
 *   - A remote row is only replaced by a higher version (the backend's
 *     conditional write).
 *   - A file's row is written only after its object is in place; a deleted
 *     file's row is tombstoned first, then its object deleted.
 *   - A tenant the remote refuses as a whole is left out of the pass; the
 *     other tenants go on.
 *   - Retryable failures (network, timeouts, throttling, 5xx) back off
 *     exponentially with full jitter; the thread sleeps, it never spins.
 *
 * Configuration: tn_sync_config, and the environment: TENANTRY_REMOTE names
 * the remote (tn_remote_open: "aws", the default, or "dir:PATH"), each
 * backend reads its own settings.
 */
#ifndef TN_ENGINE_H
#define TN_ENGINE_H

#include "tenantry.h"

#include <stdint.h>

typedef struct tn_sync_stats {
    int64_t items;     /* item rows written (puts and tombstones) */
    int64_t files;     /* file rows written */
    int64_t bytes;     /* file bytes uploaded */
    int64_t conflicts; /* local writes that lost to a newer remote version */
    int64_t dead;      /* changes moved to the dead-letter table */
    int64_t pending;   /* outbox rows left when the run ended */
    int64_t pending_start;
    int64_t parts;     /* multipart parts uploaded */
    int64_t pulled;    /* rows other writers pushed, applied here */
    int64_t pull_refused; /* pulled rows refused (malformed, foreign, damaged bytes) */
    int64_t pull_read; /* rows the remotes' change feeds sent (what a pull costs) */
    int64_t purged;    /* remote rows of deleted tenants removed */
    int64_t throttled; /* row write requests the remote throttled (the pass slowed to its rate) */
    int error;         /* 0, or the tn code that stopped the run */
    char what[128];    /* generic description of that error (no secrets) */
} tn_sync_stats;

typedef struct tn_sync_config {
    int64_t interval_ms;      /* background: time between runs (default 60 s) */
    int64_t early_rows;       /* background: an outbox this long starts a run early (1000) */
    int connections;          /* requests in flight for rows sent one per request
                               * (1-64, default 32); files and batched rows: 8 */
    int batch;                /* changes per fetch, at most 800; the default 100 grows
                                 * to keep every worker busy: 256 when rows go one per
                                 * request (32 in flight), more when the remote takes
                                 * several rows per call */
    int64_t bandwidth;        /* bytes per second, 0 = no cap */
    int64_t tombstone_ttl_s;  /* expires_at = deletion time + this (default 30 days) */
    int max_attempts;         /* run_once: retryable failures in a row before giving up (4) */
    int64_t backoff_base_ms;  /* first backoff ceiling (default 500 ms) */
    int64_t backoff_cap_ms;   /* largest backoff (default 300 s) */
    /* Called after every batch (may be NULL). */
    void (*progress)(const tn_sync_stats *s, void *arg);
    void *progress_arg;
    int64_t multipart_threshold; /* files this large go up in parts (default 16 MiB) */
    int64_t part_size;           /* bytes per part, at least 5 MiB (default 8 MiB) */
    /* The remote to use (borrowed, left open); NULL: tn_remote_open of
     * TENANTRY_REMOTE. */
    struct tn_remote *remote;
} tn_sync_config;

void tn_sync_config_init(tn_sync_config *cfg);
/* Overrides from TENANTRY_SYNC_INTERVAL (s), TENANTRY_SYNC_BANDWIDTH (bytes/s),
 * TENANTRY_SYNC_EARLY_ROWS, TENANTRY_SYNC_CONNECTIONS, TENANTRY_SYNC_ATTEMPTS,
 * TENANTRY_SYNC_BACKOFF_MS,
 * TENANTRY_SYNC_MULTIPART_MB, TENANTRY_SYNC_PART_MB, TENANTRY_TOMBSTONE_TTL (s).
 * -1 when one is not a non-negative number. */
int tn_sync_config_from_env(tn_sync_config *cfg);

/* One pass: drains the outbox until it is empty or a failure persists
 * max_attempts times.  TN_OK when everything pending was handled (dead letters
 * and conflict losses are handled, and counted in *stats); else the error.
 * stats may be NULL. */
int tn_sync_run_once(tn_store *st, const tn_sync_config *cfg, tn_sync_stats *stats);

/* Background thread. */
typedef struct tn_sync tn_sync;
int tn_sync_start(tn_store *st, const tn_sync_config *cfg, tn_sync **out);
void tn_sync_kick(tn_sync *e); /* run now */
/* A pass on demand (`sync --once` handed to a running daemon): asks for a
 * pass now and returns its ticket, the first pass to start after this call. */
uint64_t tn_sync_run_request(tn_sync *e);
/* Waits up to timeout_ms for pass `ticket` to end.  TN_OK: it (or a later
 * one) ended, *out is its result (out->error: 0, or the code that stopped
 * it; out->what says why).  TN_TIMEOUT: not yet, *out is its progress so far
 * (zero before it starts).  TN_BUSY: the engine is stopping.  Waiters must
 * be gone before tn_sync_stop returns: call it only once none can wait. */
int tn_sync_run_wait(tn_sync *e, uint64_t ticket, int64_t timeout_ms, tn_sync_stats *out);
void tn_sync_stop(tn_sync *e); /* waits for the thread; NULL is fine */

/* Sync status as JSON (malloc'd).  tenant_id NULL: the admin view, with every
 * tenant (ids included) and totals.  tenant_id set: that tenant's numbers
 * only, never an id: {"pending":N,"failed":N,"conflicts":N,"last_success":
 * "...",  "last_error":"...", "backoff_ms":N}. */
int tn_sync_status_json(tn_store *st, const char *tenant_id, char **json);

/* Sets up the remote TENANTRY_REMOTE names (its methods' init: for AWS its
 * table and a reachability check, for a directory its tree).
 * *what gets a generic line about what failed (static string). */
int tn_sync_remote_init(tn_store *st, const char **what);

/* Full-jitter backoff: a value in [0, min(cap, base * 2^attempt)] picked with
 * rnd (any 32-bit random value). */
int64_t tn__sync_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t rnd);

#endif
