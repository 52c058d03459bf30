-- 001_core.sql - tenantry's store: private base tables, tenant views, triggers.
--
-- Ownership lives here.  Tables whose names start with "_" are private: a tenant
-- session's authorizer (src/guard.c) denies every read or write of them except
-- from inside the views and triggers below.  Tenants see only the views `items`
-- and `files`, which filter on current_tenant(), an SQL function bound to each
-- connection by the store and never settable from SQL.
--
-- Functions the store registers on every connection (src/store.c):
--   current_tenant()  the session's tenant (an internal integer key), or NULL
--   tn_version(v)     next hybrid-logical-clock version, greater than v
--   tn_now()          milliseconds since the epoch
--   tn_new_id()       a random UUID v4 string, for items created without an id
--   tn_item_id_valid(x) 1 when x is 1-256 characters of [A-Za-z0-9._:-] (a
--                     C loop: a GLOB pattern costs a scan per position)
--   tn_json_valid(x)  1 when x is one JSON value (src/json_check.c; SQLite
--                     3.40's json_valid() may not be used by a schema that runs
--                     with trusted_schema OFF)
--
-- Invariants the triggers keep:
--   * a row's tenant and id never change (BEFORE UPDATE triggers abort);
--   * every insert and update of _items/_files appends one _outbox row in the
--     same statement, hence the same transaction: a committed change is always
--     queued for sync, and a rolled-back one never is;
--   * deletes through the views are tombstones (deleted = 1, data NULL) so the
--     sync engine can mirror them; hard deletes happen only when a tenant is
--     removed or a synced tombstone is purged, by trusted code.
--
-- The outbox is deliberately lean (four integers): it names the changed row,
-- and the sync engine reads the row's current state when it drains, which also
-- coalesces repeated changes to one item into one remote write.

CREATE TABLE _meta (
    key   TEXT PRIMARY KEY,
    value ANY
) STRICT;

CREATE TABLE _tenants (
    tid        INTEGER PRIMARY KEY AUTOINCREMENT, -- internal key, never shown or reused
    id         TEXT NOT NULL UNIQUE CHECK (length(id) = 36),  -- UUID v4
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE
               CHECK (length(name) BETWEEN 1 AND 128),
    created_at INTEGER NOT NULL,
    settings   TEXT NOT NULL DEFAULT '{}' CHECK (tn_json_valid(settings))
) STRICT;

-- _items.tenant and _files.tenant carry no foreign key: the tenant is always
-- current_tenant(), which a session takes from an existing _tenants row, and
-- a per-row parent lookup costs ~5% of insert speed.  `tenantry check` verifies
-- that every row's tenant exists, and tn_tenant_delete removes children first.
CREATE TABLE _items (
    tenant     INTEGER NOT NULL,
    id         TEXT NOT NULL CHECK (tn_item_id_valid(id)),
    data       TEXT CHECK (data IS NULL OR tn_json_valid(data)),
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    CHECK (deleted = 1 OR data IS NOT NULL),
    UNIQUE (tenant, id)
) STRICT;

CREATE TABLE _files (
    tenant       INTEGER NOT NULL,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 1024),
    size         INTEGER NOT NULL CHECK (size >= 0),
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64 OR sha256 = ''),
    content_type TEXT NOT NULL DEFAULT 'application/octet-stream',
    version      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    UNIQUE (tenant, name)
) STRICT;

-- kind: 1 = item, 2 = file; ref: rowid in _items or _files.
CREATE TABLE _outbox (
    seq    INTEGER PRIMARY KEY,
    tenant INTEGER NOT NULL,
    kind   INTEGER NOT NULL,
    ref    INTEGER NOT NULL
) STRICT;

CREATE TABLE _api_keys (
    key_id     TEXT PRIMARY KEY,
    tenant     INTEGER NOT NULL REFERENCES _tenants (tid),
    hash       BLOB NOT NULL,                    -- keyed BLAKE2b of the secret
    salt       BLOB NOT NULL,
    scopes     TEXT NOT NULL,                    -- space-separated
    created_at INTEGER NOT NULL,
    expires_at INTEGER,                          -- ms; NULL = never
    revoked_at INTEGER                           -- ms; NULL = live
) STRICT;

-- Append-only: the triggers below refuse UPDATE and DELETE.
CREATE TABLE _audit (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    tenant INTEGER,
    action TEXT NOT NULL,
    detail TEXT
);
CREATE TRIGGER _audit_no_update BEFORE UPDATE ON _audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER _audit_no_delete BEFORE DELETE ON _audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Base-table triggers: frozen identity, and the outbox row for every change.
CREATE TRIGGER _items_frozen BEFORE UPDATE OF tenant, id ON _items
BEGIN SELECT RAISE(ABORT, 'an item''s tenant and id are immutable'); END;
CREATE TRIGGER _items_queue_insert AFTER INSERT ON _items
BEGIN INSERT INTO _outbox (tenant, kind, ref) VALUES (NEW.tenant, 1, NEW.rowid); END;
CREATE TRIGGER _items_queue_update AFTER UPDATE ON _items
BEGIN INSERT INTO _outbox (tenant, kind, ref) VALUES (NEW.tenant, 1, NEW.rowid); END;

CREATE TRIGGER _files_frozen BEFORE UPDATE OF tenant, name ON _files
BEGIN SELECT RAISE(ABORT, 'a file''s tenant and name are immutable'); END;
CREATE TRIGGER _files_queue_insert AFTER INSERT ON _files
BEGIN INSERT INTO _outbox (tenant, kind, ref) VALUES (NEW.tenant, 2, NEW.rowid); END;
CREATE TRIGGER _files_queue_update AFTER UPDATE ON _files
BEGIN INSERT INTO _outbox (tenant, kind, ref) VALUES (NEW.tenant, 2, NEW.rowid); END;

-- The tenant views.  Only live rows of the session's tenant are visible.
CREATE VIEW items AS
    SELECT id, data, version, created_at, updated_at
      FROM _items
     WHERE tenant = current_tenant() AND deleted = 0;

-- Insert is an upsert: a new id creates the item, an existing id replaces its
-- data, and a tombstoned id comes back to life.  The tenant comes from the
-- session, never from the statement (the view has no tenant column).
CREATE TRIGGER items_insert INSTEAD OF INSERT ON items
BEGIN
    SELECT RAISE(ABORT, 'version and timestamps are assigned by the store')
     WHERE NEW.version IS NOT NULL OR NEW.created_at IS NOT NULL
        OR NEW.updated_at IS NOT NULL;
    INSERT INTO _items (tenant, id, data, version, created_at, updated_at)
    VALUES (current_tenant(), coalesce(NEW.id, tn_new_id()), NEW.data,
            tn_version(0), tn_now(), tn_now())
    ON CONFLICT (tenant, id) DO UPDATE
       SET data = excluded.data,
           version = tn_version(version),
           created_at = CASE WHEN deleted THEN excluded.created_at ELSE created_at END,
           updated_at = excluded.updated_at,
           deleted = 0;
END;

CREATE TRIGGER items_update INSTEAD OF UPDATE ON items
BEGIN
    SELECT RAISE(ABORT, 'an item''s id is immutable') WHERE NEW.id IS NOT OLD.id;
    SELECT RAISE(ABORT, 'version and timestamps are assigned by the store')
     WHERE NEW.version IS NOT OLD.version OR NEW.created_at IS NOT OLD.created_at
        OR NEW.updated_at IS NOT OLD.updated_at;
    UPDATE _items
       SET data = NEW.data, version = tn_version(version), updated_at = tn_now()
     WHERE tenant = current_tenant() AND id = OLD.id AND deleted = 0;
END;

CREATE TRIGGER items_delete INSTEAD OF DELETE ON items
BEGIN
    UPDATE _items
       SET deleted = 1, data = NULL, version = tn_version(version), updated_at = tn_now()
     WHERE tenant = current_tenant() AND id = OLD.id AND deleted = 0;
END;

CREATE VIEW files AS
    SELECT name, size, sha256, content_type, version, created_at, updated_at
      FROM _files
     WHERE tenant = current_tenant() AND deleted = 0;

CREATE TRIGGER files_insert INSTEAD OF INSERT ON files
BEGIN
    INSERT INTO _files (tenant, name, size, sha256, content_type, version,
                        created_at, updated_at)
    VALUES (current_tenant(), NEW.name, NEW.size, NEW.sha256,
            coalesce(NEW.content_type, 'application/octet-stream'),
            tn_version(0), tn_now(), tn_now())
    ON CONFLICT (tenant, name) DO UPDATE
       SET size = excluded.size, sha256 = excluded.sha256,
           content_type = excluded.content_type,
           version = tn_version(version),
           created_at = CASE WHEN deleted THEN excluded.created_at ELSE created_at END,
           updated_at = excluded.updated_at,
           deleted = 0;
END;

CREATE TRIGGER files_update INSTEAD OF UPDATE ON files
BEGIN
    SELECT RAISE(ABORT, 'file metadata is written by the store');
END;

CREATE TRIGGER files_delete INSTEAD OF DELETE ON files
BEGIN
    UPDATE _files
       SET deleted = 1, version = tn_version(version), updated_at = tn_now()
     WHERE tenant = current_tenant() AND name = OLD.name AND deleted = 0;
END;
