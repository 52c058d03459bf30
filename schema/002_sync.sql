-- 002_sync.sql - the sync engine's bookkeeping (sync/state.c).  Every table
-- has a `tenant` column (an _tenants.tid), so tn_tenant_delete cleans it.
--   _sync_state        per tenant: last success, last (generic) error, backoff,
--                      rows sent, conflict losses
--   _sync_dead         dead letters: changes that failed permanently
--   _sync_conflicts    local writes that lost to a newer remote version
--   _sync_uploads      multipart uploads in progress (resumed after a restart)
--   _sync_upload_parts their finished parts
CREATE TABLE _sync_state (
    tenant       INTEGER PRIMARY KEY,
    last_success INTEGER,
    last_error   TEXT,
    last_error_at INTEGER,
    backoff_ms   INTEGER NOT NULL DEFAULT 0,
    sent         INTEGER NOT NULL DEFAULT 0,
    conflicts    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE _sync_dead (
    tenant  INTEGER NOT NULL,
    kind    INTEGER NOT NULL,
    key     TEXT NOT NULL,
    version INTEGER NOT NULL,
    error   TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, key, version)
) STRICT;
CREATE TABLE _sync_conflicts (
    tenant         INTEGER NOT NULL,
    kind           INTEGER NOT NULL,
    key            TEXT NOT NULL,
    version        INTEGER NOT NULL,
    remote_version INTEGER NOT NULL,
    at             INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, key, version)
) STRICT;
CREATE TABLE _sync_uploads (
    tenant    INTEGER NOT NULL,
    name      TEXT NOT NULL,
    version   INTEGER NOT NULL,
    upload_id TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
) STRICT;
CREATE TABLE _sync_upload_parts (
    tenant INTEGER NOT NULL,
    name   TEXT NOT NULL,
    part   INTEGER NOT NULL,
    etag   TEXT NOT NULL,
    PRIMARY KEY (tenant, name, part)
) STRICT;
