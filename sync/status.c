/*
 * status.c - sync status for the CLI and the HTTP layer, and `remote init`
 * (see engine.h).  The tenant view never contains a tenant id: it is built
 * from that tenant's row only and leaves the id column out.  The admin view
 * also says whether each tenant's sync is on and shows its settings
 * (_tenant_settings; null = the default applies).
 */
#include "clock.h"
#include "engine.h"

#include "state.h"
#include "conn.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STATUS_COLS                                                                          \
    "SELECT t.id, t.name, "                                                                  \
    "  (SELECT count(*) FROM _outbox o WHERE o.tenant = t.tid), "                            \
    "  (SELECT coalesce(total(f.size), 0) FROM _outbox o JOIN _files f ON f.rowid = o.ref "    \
    "    WHERE o.tenant = t.tid AND o.kind = 2 AND f.deleted = 0), "                         \
    "  (SELECT count(*) FROM _sync_dead d WHERE d.tenant = t.tid), "                         \
    "  (SELECT count(*) FROM _sync_conflicts x WHERE x.tenant = t.tid), "                    \
    "  s.last_success, s.last_error, s.last_error_at, coalesce(s.backoff_ms, 0) "
#define SETTINGS_COLS                                                                        \
    ", coalesce(ts.sync_enabled, 1), coalesce(ts.sync_priority, 1), ts.rate_limit, "         \
    "  ts.burst, ts.max_items, ts.max_file_bytes, ts.tombstone_days "
#define STATUS_FROM "  FROM _tenants t LEFT JOIN _sync_state s ON s.tenant = t.tid "
#define SETTINGS_FROM "  LEFT JOIN _tenant_settings ts ON ts.tenant = t.tid "
static const char SQL_ALL[] = STATUS_COLS SETTINGS_COLS STATUS_FROM SETTINGS_FROM "ORDER BY t.name";
static const char SQL_ONE[] = STATUS_COLS STATUS_FROM "WHERE t.id = ?1";
/* A store opened read-only before its upgrade to schema 3 has no settings. */
static const char SQL_ALL_V2[] = STATUS_COLS STATUS_FROM "ORDER BY t.name";

static void add_time(cJSON *o, const char *name, sqlite3_stmt *s, int col) {
    if (sqlite3_column_type(s, col) == SQLITE_NULL) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    char ts[32];
    tn__rfc3339(sqlite3_column_int64(s, col), ts);
    cJSON_AddStringToObject(o, name, ts);
}

static void add_int(cJSON *o, const char *name, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    cJSON_AddItemToObject(o, name, cJSON_CreateRaw(buf));
}

/* The numbers of one status row (without id and name). */
static void fill(cJSON *o, sqlite3_stmt *s) {
    add_int(o, "pending", sqlite3_column_int64(s, 2));
    add_int(o, "pending_bytes", sqlite3_column_int64(s, 3));
    add_int(o, "failed", sqlite3_column_int64(s, 4));
    add_int(o, "conflicts", sqlite3_column_int64(s, 5));
    add_time(o, "last_success", s, 6);
    if (sqlite3_column_type(s, 7) == SQLITE_NULL) cJSON_AddNullToObject(o, "last_error");
    else cJSON_AddStringToObject(o, "last_error", (const char *)sqlite3_column_text(s, 7));
    add_time(o, "last_error_at", s, 8);
    add_int(o, "backoff_ms", sqlite3_column_int64(s, 9));
}

/* A nullable number column: null when the default applies. */
static void add_opt(cJSON *o, const char *name, sqlite3_stmt *s, int col) {
    int t = sqlite3_column_type(s, col);
    if (t == SQLITE_NULL) cJSON_AddNullToObject(o, name);
    else if (t == SQLITE_INTEGER) add_int(o, name, sqlite3_column_int64(s, col));
    else cJSON_AddNumberToObject(o, name, sqlite3_column_double(s, col));
}

/* The admin view's settings of one tenant (the names PATCH /v1/admin/tenants takes). */
static cJSON *settings(sqlite3_stmt *s) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    add_opt(o, "rate_limit", s, 12);
    add_opt(o, "burst", s, 13);
    add_opt(o, "max_items", s, 14);
    add_opt(o, "max_file_bytes", s, 15);
    cJSON_AddBoolToObject(o, "sync", sqlite3_column_int(s, 10));
    add_int(o, "sync_priority", sqlite3_column_int64(s, 11));
    add_opt(o, "tombstone_days", s, 16);
    return o;
}

/* The way back (schema 4): when the tenant's pull last reached the end, how
 * old the newest change it brought is, and what pulls failed or refused. */
static void add_pull(tn__conn *c, cJSON *o, const char *tenant_id) {
    static const char sql[] =
        "SELECT p.pulled_at, p.last_change, p.errors, p.refused, p.last_error "
        "  FROM _sync_pull p JOIN _tenants t ON t.tid = p.tenant WHERE t.id = ?1";
    sqlite3_stmt *s;
    if (tn__stmt(c, sql, &s) != TN_OK) return;
    sqlite3_bind_text(s, 1, tenant_id, -1, SQLITE_STATIC);
    cJSON *p = cJSON_CreateObject();
    if (sqlite3_step(s) == SQLITE_ROW) {
        add_time(p, "last_pull", s, 0);
        if (sqlite3_column_type(s, 1) == SQLITE_NULL) cJSON_AddNullToObject(p, "lag_ms");
        else add_int(p, "lag_ms", tn__wall_ms() - sqlite3_column_int64(s, 1));
        add_int(p, "errors", sqlite3_column_int64(s, 2));
        add_int(p, "refused", sqlite3_column_int64(s, 3));
        if (sqlite3_column_type(s, 4) == SQLITE_NULL) cJSON_AddNullToObject(p, "last_error");
        else cJSON_AddStringToObject(p, "last_error", (const char *)sqlite3_column_text(s, 4));
    } else {
        cJSON_AddNullToObject(p, "last_pull");
        cJSON_AddNullToObject(p, "lag_ms");
        add_int(p, "errors", 0);
        add_int(p, "refused", 0);
        cJSON_AddNullToObject(p, "last_error");
    }
    sqlite3_reset(s);
    cJSON_AddItemToObject(o, "pull", p);
}

static int64_t purges_pending(tn__conn *c) {
    static const char sql[] = "SELECT count(*) FROM _sync_purge";
    sqlite3_stmt *s;
    int64_t n = 0;
    if (tn__stmt(c, sql, &s) != TN_OK) return 0;
    if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return n;
}

int tn_sync_status_json(tn_store *st, const char *tenant_id, char **json) {
    *json = NULL;
    int version = 0;
    int rc = tn_schema_version(st, &version);
    if (rc != TN_OK) return rc;
    int with_settings = version >= 3;
    tn__conn *c;
    if ((rc = tn__conn_get(st, 1, &c)) != TN_OK) return rc;
    sqlite3_stmt *s;
    cJSON *root = cJSON_CreateObject(), *list = NULL;
    int64_t tot[4] = {0};
    if (!root) rc = TN_NOMEM;
    if (rc == TN_OK)
        rc = tn__stmt(c, tenant_id ? SQL_ONE : with_settings ? SQL_ALL : SQL_ALL_V2, &s);
    if (rc == TN_OK) {
        if (tenant_id) sqlite3_bind_text(s, 1, tenant_id, -1, SQLITE_STATIC);
        else list = cJSON_CreateArray();
        int src, found = 0;
        while ((src = sqlite3_step(s)) == SQLITE_ROW) {
            found = 1;
            if (tenant_id) {
                fill(root, s);
                continue;
            }
            cJSON *t = cJSON_CreateObject();
            if (!t) continue;
            cJSON_AddStringToObject(t, "id", (const char *)sqlite3_column_text(s, 0));
            cJSON_AddStringToObject(t, "name", (const char *)sqlite3_column_text(s, 1));
            fill(t, s);
            if (with_settings) {
                cJSON_AddBoolToObject(t, "sync", sqlite3_column_int(s, 10));
                cJSON_AddItemToObject(t, "settings", settings(s));
            }
            cJSON_AddItemToArray(list, t);
            for (int k = 0; k < 4; k++) tot[k] += sqlite3_column_int64(s, 2 + k);
        }
        if (src != SQLITE_DONE) rc = tn__fail_db(st, c, src);
        else if (tenant_id && !found) rc = TN_NOTFOUND;
        sqlite3_reset(s);
    }
    if (rc == TN_OK && version >= 4) {
        if (tenant_id) {
            add_pull(c, root, tenant_id);
        } else {
            cJSON *t;
            cJSON_ArrayForEach(t, list)
                add_pull(c, t, cJSON_GetStringValue(cJSON_GetObjectItem(t, "id")));
            add_int(root, "purges_pending", purges_pending(c));
        }
    }
    tn__conn_put(st, c);
    if (rc == TN_OK && !tenant_id) {
        add_int(root, "pending", tot[0]);
        add_int(root, "pending_bytes", tot[1]);
        add_int(root, "failed", tot[2]);
        add_int(root, "conflicts", tot[3]);
        cJSON_AddItemToObject(root, "tenants", list);
        list = NULL;
    }
    cJSON_Delete(list);
    if (rc == TN_OK) {
        *json = cJSON_PrintUnformatted(root);
        if (!*json) rc = TN_NOMEM;
    }
    cJSON_Delete(root);
    return rc;
}
