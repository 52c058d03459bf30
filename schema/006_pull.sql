-- 004_pull.sql - the way back from the remote.
--
-- _sync_pull: per tenant, where its change feed was read up to (the remote's
-- opaque cursor, advanced in the same transaction as the rows it brought), when
-- a pull last reached the end, the newest change applied, and what pulls
-- refused.  tenant_hash: the tenant's own remote row (name and settings) as
-- last pushed, so it is sent again only when it changes.
CREATE TABLE _sync_pull (
    tenant      INTEGER PRIMARY KEY,
    cursor      TEXT NOT NULL DEFAULT '',
    pulled_at   INTEGER,
    last_change INTEGER,
    applied     INTEGER NOT NULL DEFAULT 0,
    refused     INTEGER NOT NULL DEFAULT 0,
    errors      INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    tenant_hash TEXT
) STRICT;

-- Tenants deleted here whose remote copy is still to be purged (rows, objects),
-- worked off by the sync engine; the remote keeps a deleted tenant row as the
-- marker that no restore, join or pull brings the tenant back.  Keyed by the
-- tenant's uuid: the tenant's own rows are gone.
CREATE TABLE _sync_purge (
    id         TEXT PRIMARY KEY CHECK (length(id) = 36),
    name       TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    rows_done  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TRIGGER _tenants_purge AFTER DELETE ON _tenants
BEGIN
    INSERT OR REPLACE INTO _sync_purge (id, name, started_at) VALUES (OLD.id, OLD.name, tn_now());
END;
