-- 007_usage.sql - a tenant's own usage and quotas, read without a scan.
--
-- 004's triggers keep _tenant_usage for every tenant with a quota.  Before an
-- upload the store checks the byte quota to refuse early what cannot fit; it
-- summed every file's size for that (a scan of the tenant's files on each
-- upload).  This view gives the session's tenant its own row and nothing
-- else, like items and files; it has no INSTEAD OF triggers, so nothing can
-- write through it.  A tenant without a quota has no row.  (The condition on
-- the quota columns, true of every row, also makes the view read a column in
-- any query, so SQLite names the view to the authorizer even for count(*).)
CREATE VIEW usage AS
    SELECT items, file_bytes, max_items, max_file_bytes
      FROM _tenant_usage
     WHERE tenant = current_tenant()
       AND (max_items IS NOT NULL OR max_file_bytes IS NOT NULL);
