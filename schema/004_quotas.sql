-- 004_quotas.sql - the tenant quotas, kept by the schema itself.
--
-- max_items (and max_file_bytes, below) used to be checked by the HTTP layer
-- before a write, in a transaction of its own: two concurrent writers could
-- both pass, and tenant SQL (INSERT ... SELECT over a generator) passed no
-- check at all.  Now the triggers that count a tenant's usage refuse the row
-- that would pass its quota, in the statement that writes it, under SQLite's
-- write lock: no caller can step around them and no two writers can both pass.
-- The refusal is RAISE(ABORT, 'quota exceeded: ...'), which undoes the whole
-- statement; the store maps that message to TN_QUOTA.
--
-- _tenant_usage holds a row only for a tenant with a quota, so the writes of
-- every other tenant cost one failed primary-key probe.  The row is rebuilt
-- (counted afresh) whenever the tenant's quotas change; a quota set below the
-- current usage refuses growth and allows everything that shrinks it.

CREATE TABLE _tenant_usage (
    tenant    INTEGER PRIMARY KEY,
    items     INTEGER NOT NULL DEFAULT 0 CHECK (items >= 0),  -- live items
    max_items INTEGER                                         -- NULL: not counted
) STRICT;

CREATE TRIGGER _tenant_settings_usage_insert AFTER INSERT ON _tenant_settings
BEGIN
    INSERT INTO _tenant_usage (tenant, items, max_items)
    SELECT NEW.tenant,
           (SELECT count(*) FROM _items WHERE tenant = NEW.tenant AND deleted = 0),
           NEW.max_items
     WHERE NEW.max_items IS NOT NULL;
END;

CREATE TRIGGER _tenant_settings_usage_update AFTER UPDATE OF max_items ON _tenant_settings
BEGIN
    DELETE FROM _tenant_usage WHERE tenant = OLD.tenant;
    INSERT INTO _tenant_usage (tenant, items, max_items)
    SELECT NEW.tenant,
           (SELECT count(*) FROM _items WHERE tenant = NEW.tenant AND deleted = 0),
           NEW.max_items
     WHERE NEW.max_items IS NOT NULL;
END;

CREATE TRIGGER _tenant_settings_usage_delete AFTER DELETE ON _tenant_settings
BEGIN
    DELETE FROM _tenant_usage WHERE tenant = OLD.tenant;
END;

-- Items: one more when a row becomes live, one less when it stops being live.
CREATE TRIGGER _items_usage_insert AFTER INSERT ON _items WHEN NEW.deleted = 0
BEGIN
    UPDATE _tenant_usage
       SET items = CASE WHEN items < max_items THEN items + 1
                        ELSE RAISE(ABORT, 'quota exceeded: items') END
     WHERE tenant = NEW.tenant AND max_items IS NOT NULL;
END;

CREATE TRIGGER _items_usage_update AFTER UPDATE OF deleted ON _items
WHEN NEW.deleted <> OLD.deleted
BEGIN
    UPDATE _tenant_usage
       SET items = CASE WHEN NEW.deleted = 1 THEN max(items - 1, 0)
                        WHEN items < max_items THEN items + 1
                        ELSE RAISE(ABORT, 'quota exceeded: items') END
     WHERE tenant = NEW.tenant AND max_items IS NOT NULL;
END;

CREATE TRIGGER _items_usage_delete AFTER DELETE ON _items WHEN OLD.deleted = 0
BEGIN
    UPDATE _tenant_usage SET items = max(items - 1, 0)
     WHERE tenant = OLD.tenant AND max_items IS NOT NULL;
END;

-- Stores that already have quotas start counting now.
INSERT INTO _tenant_usage (tenant, items, max_items)
SELECT s.tenant,
       (SELECT count(*) FROM _items i WHERE i.tenant = s.tenant AND i.deleted = 0),
       s.max_items
  FROM _tenant_settings s
 WHERE s.max_items IS NOT NULL;
