-- 004_quotas.sql - the tenant quotas, and what tenant SQL may do to files,
-- kept by the schema itself.
--
-- Quotas.  max_items and max_file_bytes used to be checked by the HTTP layer
-- before a write, in a transaction of its own: two concurrent writers could
-- both pass, and tenant SQL (INSERT ... SELECT over a generator) passed no
-- check at all.  Now the triggers that count a tenant's usage refuse the row
-- that would pass its quota, in the statement that writes it, under SQLite's
-- write lock: no caller can step around them and no two writers can both pass.
-- The refusal is RAISE(ABORT, 'quota exceeded: ...'), which undoes the whole
-- statement; the store maps those words to TN_QUOTA.
--
-- _tenant_usage holds a row only for a tenant with a quota, so the writes of
-- every other tenant cost one failed primary-key probe.  The row is counted
-- afresh whenever the tenant's quotas change; a quota set below the current
-- usage refuses growth and allows everything that shrinks it.
--
-- No arithmetic here can overflow: a file's size is 0 to 5 TiB (checked
-- below; a larger size an older store may hold counts as 5 TiB), growth is
-- compared with the room left (max - used, both >= 0) before it is added,
-- shrinking stops at 0, and a recount sums with total() (a float) clamped to
-- 2^62.
--
-- Files.  Tenant SQL may read the files view and change nothing in it: a row
-- inserted, resized or deleted without its bytes would escape the byte quota,
-- leave bytes on disk that nothing counts, or name a file nobody can fetch or
-- sync.  The view's triggers let a write through only while the store's own
-- file call runs on the connection (tn_file_writer(), set by C code, never by
-- SQL), and every row written to _files, by any caller, must be one
-- tn_file_record() would write (tn_file_row_valid(): a valid name, a size of
-- 0 to 5 TiB, 64 lowercase hex digits of SHA-256, a content type of at most
-- 255 bytes without control characters).

CREATE TABLE _tenant_usage (
    tenant         INTEGER PRIMARY KEY,
    items          INTEGER NOT NULL DEFAULT 0 CHECK (items >= 0),      -- live items
    file_bytes     INTEGER NOT NULL DEFAULT 0 CHECK (file_bytes >= 0), -- live files' sizes
    max_items      INTEGER,                                            -- NULL: not counted
    max_file_bytes INTEGER                                             -- NULL: not counted
) STRICT;

-- ---- usage follows the quotas ----------------------------------------------

CREATE TRIGGER _tenant_settings_usage_insert AFTER INSERT ON _tenant_settings
BEGIN
    INSERT INTO _tenant_usage (tenant, items, file_bytes, max_items, max_file_bytes)
    SELECT NEW.tenant,
           (SELECT count(*) FROM _items WHERE tenant = NEW.tenant AND deleted = 0),
           (SELECT CAST(min(total(min(size, 5497558138880)), 4611686018427387904.0)
                        AS INTEGER)
              FROM _files WHERE tenant = NEW.tenant AND deleted = 0),
           NEW.max_items, NEW.max_file_bytes
     WHERE NEW.max_items IS NOT NULL OR NEW.max_file_bytes IS NOT NULL;
END;

CREATE TRIGGER _tenant_settings_usage_update
AFTER UPDATE OF max_items, max_file_bytes ON _tenant_settings
BEGIN
    DELETE FROM _tenant_usage WHERE tenant = OLD.tenant;
    INSERT INTO _tenant_usage (tenant, items, file_bytes, max_items, max_file_bytes)
    SELECT NEW.tenant,
           (SELECT count(*) FROM _items WHERE tenant = NEW.tenant AND deleted = 0),
           (SELECT CAST(min(total(min(size, 5497558138880)), 4611686018427387904.0)
                        AS INTEGER)
              FROM _files WHERE tenant = NEW.tenant AND deleted = 0),
           NEW.max_items, NEW.max_file_bytes
     WHERE NEW.max_items IS NOT NULL OR NEW.max_file_bytes IS NOT NULL;
END;

CREATE TRIGGER _tenant_settings_usage_delete AFTER DELETE ON _tenant_settings
BEGIN
    DELETE FROM _tenant_usage WHERE tenant = OLD.tenant;
END;

-- ---- the outbox and the usage of a change, in one trigger ------------------
--
-- 001's outbox triggers are replaced by triggers that also count the usage:
-- every trigger fired for a row costs SQLite a frame of its own, so one
-- trigger per change, not two.  The outbox rows are written exactly as before.

-- Items: one more when a row becomes live, one less when it stops being live.
DROP TRIGGER _items_queue_insert;
CREATE TRIGGER _items_queue_insert AFTER INSERT ON _items
BEGIN
    INSERT INTO _outbox (tenant, kind, ref) VALUES (NEW.tenant, 1, NEW.rowid);
    UPDATE _tenant_usage
       SET items = CASE WHEN items < max_items THEN items + 1
                        ELSE RAISE(ABORT, 'quota exceeded: items') END
     WHERE tenant = NEW.tenant AND max_items IS NOT NULL AND NEW.deleted = 0;
END;

DROP TRIGGER _items_queue_update;
CREATE TRIGGER _items_queue_update AFTER UPDATE ON _items
BEGIN
    INSERT INTO _outbox (tenant, kind, ref) VALUES (NEW.tenant, 1, NEW.rowid);
    UPDATE _tenant_usage
       SET items = CASE WHEN NEW.deleted = 1 THEN max(items - 1, 0)
                        WHEN items < max_items THEN items + 1
                        ELSE RAISE(ABORT, 'quota exceeded: items') END
     WHERE tenant = NEW.tenant AND max_items IS NOT NULL AND NEW.deleted <> OLD.deleted;
END;

CREATE TRIGGER _items_usage_delete AFTER DELETE ON _items WHEN OLD.deleted = 0
BEGIN
    UPDATE _tenant_usage SET items = max(items - 1, 0)
     WHERE tenant = OLD.tenant AND max_items IS NOT NULL;
END;

-- Files: the live size moves by live(NEW) - live(OLD), live(r) being 0 for a
-- tombstone, else r.size (at most 5 TiB, see above).
DROP TRIGGER _files_queue_insert;
CREATE TRIGGER _files_queue_insert AFTER INSERT ON _files
BEGIN
    INSERT INTO _outbox (tenant, kind, ref) VALUES (NEW.tenant, 2, NEW.rowid);
    UPDATE _tenant_usage
       SET file_bytes = CASE WHEN NEW.size = 0 OR NEW.size <= max_file_bytes - file_bytes
                             THEN file_bytes + NEW.size
                             ELSE RAISE(ABORT, 'quota exceeded: file bytes') END
     WHERE tenant = NEW.tenant AND max_file_bytes IS NOT NULL AND NEW.deleted = 0;
END;

DROP TRIGGER _files_queue_update;
CREATE TRIGGER _files_queue_update AFTER UPDATE ON _files
BEGIN
    INSERT INTO _outbox (tenant, kind, ref) VALUES (NEW.tenant, 2, NEW.rowid);
    UPDATE _tenant_usage
       SET file_bytes = CASE
           -- shrinking or unchanged: used - (live(OLD) - live(NEW)), at least 0
           WHEN iif(NEW.deleted, 0, NEW.size)
                <= iif(OLD.deleted, 0, min(OLD.size, 5497558138880))
           THEN max(file_bytes - (iif(OLD.deleted, 0, min(OLD.size, 5497558138880))
                                  - iif(NEW.deleted, 0, NEW.size)), 0)
           -- growing: only into the room left
           WHEN iif(NEW.deleted, 0, NEW.size)
                - iif(OLD.deleted, 0, min(OLD.size, 5497558138880))
                <= max_file_bytes - file_bytes
           THEN file_bytes + (iif(NEW.deleted, 0, NEW.size)
                              - iif(OLD.deleted, 0, min(OLD.size, 5497558138880)))
           ELSE RAISE(ABORT, 'quota exceeded: file bytes') END
     WHERE tenant = NEW.tenant AND max_file_bytes IS NOT NULL;
END;

CREATE TRIGGER _files_usage_delete AFTER DELETE ON _files WHEN OLD.deleted = 0
BEGIN
    UPDATE _tenant_usage SET file_bytes = max(file_bytes - min(OLD.size, 5497558138880), 0)
     WHERE tenant = OLD.tenant AND max_file_bytes IS NOT NULL;
END;

-- ---- files: valid rows only, written by the store's file calls only --------

CREATE TRIGGER _files_valid_insert BEFORE INSERT ON _files
WHEN NOT tn_file_row_valid(NEW.name, NEW.size, NEW.sha256, NEW.content_type)
BEGIN
    SELECT RAISE(ABORT, 'invalid file row: name, size, sha256 or content type');
END;

CREATE TRIGGER _files_valid_update BEFORE UPDATE OF name, size, sha256, content_type ON _files
WHEN NOT tn_file_row_valid(NEW.name, NEW.size, NEW.sha256, NEW.content_type)
BEGIN
    SELECT RAISE(ABORT, 'invalid file row: name, size, sha256 or content type');
END;

DROP TRIGGER files_insert;
CREATE TRIGGER files_insert INSTEAD OF INSERT ON files
BEGIN
    SELECT RAISE(ABORT, 'not authorized: files are written through the file API')
     WHERE NOT tn_file_writer();
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

DROP TRIGGER files_update;
CREATE TRIGGER files_update INSTEAD OF UPDATE ON files
BEGIN
    SELECT RAISE(ABORT, 'not authorized: files are written through the file API');
END;

DROP TRIGGER files_delete;
CREATE TRIGGER files_delete INSTEAD OF DELETE ON files
BEGIN
    SELECT RAISE(ABORT, 'not authorized: files are deleted through the file API')
     WHERE NOT tn_file_writer();
    UPDATE _files
       SET deleted = 1, version = tn_version(version), updated_at = tn_now()
     WHERE tenant = current_tenant() AND name = OLD.name AND deleted = 0;
END;

-- Stores that already have quotas start counting now.
INSERT INTO _tenant_usage (tenant, items, file_bytes, max_items, max_file_bytes)
SELECT s.tenant,
       (SELECT count(*) FROM _items i WHERE i.tenant = s.tenant AND i.deleted = 0),
       (SELECT CAST(min(total(min(f.size, 5497558138880)), 4611686018427387904.0)
                    AS INTEGER)
          FROM _files f WHERE f.tenant = s.tenant AND f.deleted = 0),
       s.max_items, s.max_file_bytes
  FROM _tenant_settings s
 WHERE s.max_items IS NOT NULL OR s.max_file_bytes IS NOT NULL;
