-- 003_operators.sql - operators (service providers acting for the tenants they
-- manage) and per-tenant settings (src/operator.c, src/auth.c).
--
--   _operators          operator keys: "tno_" <op_id> "_" <secret>; only a keyed
--                       BLAKE2b of the key is stored, as for API keys
--   _operator_grants    operator -> tenant, with the scopes it may use there;
--                       removing the row ends the operator's tokens for that
--                       tenant on their next request
--   _operator_tokens    every token issued to an operator: bound to one
--                       (operator, tenant) pair, looked up by its jti on every
--                       request; the token itself names neither
--   _tenant_settings    one optional row per tenant; NULL = the global default
--   _audit.operator     the operator key id behind an event, NULL otherwise
--
-- Every table that names a tenant has a `tenant` column (an _tenants.tid), so
-- tn_tenant_delete removes a tenant's grants, tokens and settings with it.
CREATE TABLE _operators (
    op_id      TEXT PRIMARY KEY CHECK (length(op_id) = 24),
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(name) BETWEEN 1 AND 128),
    hash       BLOB NOT NULL,
    salt       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER                               -- ms; NULL = live
) STRICT;

CREATE TABLE _operator_grants (
    op_id      TEXT NOT NULL REFERENCES _operators (op_id),
    tenant     INTEGER NOT NULL,
    scopes     TEXT NOT NULL,                        -- space-separated
    created_at INTEGER NOT NULL,
    PRIMARY KEY (op_id, tenant)
) STRICT;

CREATE TABLE _operator_tokens (
    jti        TEXT PRIMARY KEY,
    op_id      TEXT NOT NULL REFERENCES _operators (op_id),
    tenant     INTEGER NOT NULL,
    scopes     TEXT NOT NULL,                        -- asked for at issue, within the grant
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE _tenant_settings (
    tenant          INTEGER PRIMARY KEY,
    rate_limit      REAL CHECK (rate_limit IS NULL OR rate_limit > 0),    -- requests/s
    burst           REAL CHECK (burst IS NULL OR burst >= 1),
    max_items       INTEGER CHECK (max_items IS NULL OR max_items >= 0),
    max_file_bytes  INTEGER CHECK (max_file_bytes IS NULL OR max_file_bytes >= 0),
    sync_enabled    INTEGER NOT NULL DEFAULT 1 CHECK (sync_enabled IN (0, 1)),
    sync_priority   INTEGER NOT NULL DEFAULT 1 CHECK (sync_priority BETWEEN 1 AND 100),
    tombstone_days  INTEGER CHECK (tombstone_days IS NULL OR tombstone_days BETWEEN 1 AND 3650)
) STRICT;

-- Quotas used to live in _tenants.settings (JSON); they move here.
INSERT INTO _tenant_settings (tenant, max_items, max_file_bytes)
SELECT tid, json_extract(settings, '$.max_items'), json_extract(settings, '$.max_file_bytes')
  FROM _tenants
 WHERE json_extract(settings, '$.max_items') IS NOT NULL
    OR json_extract(settings, '$.max_file_bytes') IS NOT NULL;
UPDATE _tenants SET settings = json_remove(settings, '$.max_items', '$.max_file_bytes')
 WHERE settings <> '{}';

ALTER TABLE _audit ADD COLUMN operator TEXT;
