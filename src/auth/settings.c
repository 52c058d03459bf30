/*
 * settings.c - tenant settings and the operator's audit rows (see auth.h).
 *
 * Locking: none of its own; every call borrows a trusted pooled connection.
 */
#include "auth.h"

#include "conn.h"
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SALT_LEN TN__SALT_LEN
#define HASH_LEN TN__HASH_LEN
#define SECRET_LEN 32
#define JWT_KEY_LEN 32

/* ---- tenant settings ------------------------------------------------------ */

static const char SQL_SETTINGS_GET[] =
    "SELECT s.rate_limit, s.burst, s.max_items, s.max_file_bytes, s.sync_enabled, "
    "       s.sync_priority, s.tombstone_days "
    "  FROM _tenant_settings s WHERE s.tenant = ?1";
static const char SQL_SETTINGS_PUT[] =
    "INSERT INTO _tenant_settings (tenant, rate_limit, burst, max_items, max_file_bytes, "
    "                              sync_enabled, sync_priority, tombstone_days) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
    "ON CONFLICT (tenant) DO UPDATE SET rate_limit = excluded.rate_limit, "
    "  burst = excluded.burst, max_items = excluded.max_items, "
    "  max_file_bytes = excluded.max_file_bytes, sync_enabled = excluded.sync_enabled, "
    "  sync_priority = excluded.sync_priority, tombstone_days = excluded.tombstone_days";

void tn__tenant_settings_default(tn__tenant_settings *s) {
    memset(s, 0, sizeof *s);
    s->max_items = s->max_file_bytes = -1;
    s->sync_enabled = 1;
    s->sync_priority = 1;
}

int tn__tenant_settings_valid(const tn__tenant_settings *s) {
    return s->rate_limit >= 0 && s->rate_limit <= 1e6 && (s->burst == 0 || s->burst >= 1) &&
           s->burst <= 1e6 && s->max_items >= -1 && s->max_file_bytes >= -1 &&
           (s->sync_enabled == 0 || s->sync_enabled == 1) && s->sync_priority >= 1 &&
           s->sync_priority <= TN__PRIORITY_MAX && s->tombstone_days >= 0 &&
           s->tombstone_days <= TN__TOMBSTONE_DAYS_MAX;
}

static int settings_read(tn__conn *c, int64_t tid, tn__tenant_settings *out) {
    tn__tenant_settings_default(out);
    sqlite3_stmt *q;
    int rc = tn__stmt(c, SQL_SETTINGS_GET, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(q, 1, tid);
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        out->rate_limit = sqlite3_column_double(q, 0); /* NULL reads as 0 = default */
        out->burst = sqlite3_column_double(q, 1);
        out->max_items = tn__col_quota(q, 2);
        out->max_file_bytes = tn__col_quota(q, 3);
        out->sync_enabled = sqlite3_column_int(q, 4);
        out->sync_priority = sqlite3_column_int(q, 5);
        out->tombstone_days = sqlite3_column_int(q, 6);
    } else if (src != SQLITE_DONE) {
        rc = tn__fail_db(c->st, c, src);
    }
    sqlite3_reset(q);
    return rc;
}

int tn__tenant_settings_get(tn_store *st, const char *tenant_id, tn__tenant_settings *out) {
    tn__tenant_settings_default(out);
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    int64_t tid = 0;
    rc = tn__tenant_tid(c, tenant_id, &tid);
    if (rc == TN_OK) rc = settings_read(c, tid, out);
    tn__conn_put(st, c);
    return rc;
}

typedef struct settings_args {
    const char *tenant_id;
    const tn__tenant_settings *v;
    unsigned mask;
    tn__tenant_settings now;
} settings_args;

static void bind_pos(sqlite3_stmt *q, int i, double v) {
    if (v > 0) sqlite3_bind_double(q, i, v);
    else sqlite3_bind_null(q, i);
}

static void bind_quota(sqlite3_stmt *q, int i, int64_t v) {
    if (v >= 0) sqlite3_bind_int64(q, i, v);
    else sqlite3_bind_null(q, i);
}

/* Reads the row, changes the masked fields, writes it back and audits the
 * result, all in the caller's transaction. */
static int settings_body(tn__conn *c, void *arg) {
    settings_args *a = arg;
    const tn__tenant_settings *v = a->v;
    tn__tenant_settings *s = &a->now;
    int64_t tid = 0;
    int rc = tn__tenant_tid(c, a->tenant_id, &tid);
    if (rc == TN_OK) rc = settings_read(c, tid, s);
    if (rc != TN_OK) return rc;
    if (a->mask & TN__SET_RATE) s->rate_limit = v->rate_limit;
    if (a->mask & TN__SET_BURST) s->burst = v->burst;
    if (a->mask & TN__SET_MAX_ITEMS) s->max_items = v->max_items;
    if (a->mask & TN__SET_MAX_FILE_BYTES) s->max_file_bytes = v->max_file_bytes;
    if (a->mask & TN__SET_SYNC) s->sync_enabled = v->sync_enabled;
    if (a->mask & TN__SET_PRIORITY) s->sync_priority = v->sync_priority;
    if (a->mask & TN__SET_TOMBSTONE) s->tombstone_days = v->tombstone_days;
    if (!tn__tenant_settings_valid(s))
        return tn__fail(c->st, TN_INVALID, "a setting is out of range");
    sqlite3_stmt *q;
    if ((rc = tn__stmt(c, SQL_SETTINGS_PUT, &q)) != TN_OK) return rc;
    sqlite3_bind_int64(q, 1, tid);
    bind_pos(q, 2, s->rate_limit);
    bind_pos(q, 3, s->burst);
    bind_quota(q, 4, s->max_items);
    bind_quota(q, 5, s->max_file_bytes);
    sqlite3_bind_int(q, 6, s->sync_enabled);
    sqlite3_bind_int(q, 7, s->sync_priority);
    if (s->tombstone_days > 0) sqlite3_bind_int(q, 8, s->tombstone_days);
    else sqlite3_bind_null(q, 8);
    if ((rc = tn__step_done(c, q)) != TN_OK) return rc;
    char detail[256];
    snprintf(detail, sizeof detail,
             "{\"rate_limit\":%g,\"burst\":%g,\"max_items\":%lld,\"max_file_bytes\":%lld,"
             "\"sync\":%d,\"sync_priority\":%d,\"tombstone_days\":%d}",
             s->rate_limit, s->burst, (long long)s->max_items, (long long)s->max_file_bytes,
             s->sync_enabled, s->sync_priority, s->tombstone_days);
    return tn__audit(c, "admin", tid, "tenant.settings", detail);
}

int tn__tenant_settings_update(tn_store *st, const char *tenant_id, const tn__tenant_settings *v,
                               unsigned mask, tn__tenant_settings *out) {
    settings_args a = {.tenant_id = tenant_id, .v = v, .mask = mask & TN__SET_ALL};
    int rc = tn__trusted_tx(st, settings_body, &a);
    if (rc == TN_OK && out) *out = a.now;
    return rc;
}

int tn__tenant_quotas_get(tn_store *st, const char *tenant_id, int64_t *max_items,
                          int64_t *max_file_bytes) {
    tn__tenant_settings s;
    int rc = tn__tenant_settings_get(st, tenant_id, &s);
    *max_items = s.max_items;
    *max_file_bytes = s.max_file_bytes;
    return rc;
}

int tn__tenant_quotas_set(tn_store *st, const char *tenant_id, int64_t max_items,
                          int64_t max_file_bytes) {
    tn__tenant_settings v;
    tn__tenant_settings_default(&v);
    v.max_items = max_items < 0 ? -1 : max_items;
    v.max_file_bytes = max_file_bytes < 0 ? -1 : max_file_bytes;
    return tn__tenant_settings_update(st, tenant_id, &v, TN__SET_MAX_ITEMS | TN__SET_MAX_FILE_BYTES,
                                      NULL);
}

/* ---- audit ---------------------------------------------------------------- */

int tn__auth_audit(tn_store *st, const char *actor, const char *tenant_id, const char *action,
                   const char *detail) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    int64_t tid = 0;
    if (tenant_id) rc = tn__tenant_tid(c, tenant_id, &tid);
    if (rc == TN_OK) rc = tn__audit(c, actor, tid, action, detail);
    tn__conn_put(st, c);
    return rc;
}

/* The operator's audit row: like tn__audit (store.c) plus the operator
 * column, which only this layer knows about. */
static int audit_op(tn__conn *c, const char *actor, const char *op_id, int64_t tid,
                    const char *action, const char *detail) {
    static const char sql[] = "INSERT INTO _audit (at, actor, tenant, action, detail, operator) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    sqlite3_stmt *s;
    int rc = tn__stmt(c, sql, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, tn__now_ms(c->st));
    sqlite3_bind_text(s, 2, actor, -1, SQLITE_STATIC);
    if (tid > 0) sqlite3_bind_int64(s, 3, tid);
    sqlite3_bind_text(s, 4, action, -1, SQLITE_STATIC);
    if (detail) sqlite3_bind_text(s, 5, detail, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, op_id, -1, SQLITE_STATIC);
    return tn__step_done(c, s);
}

/* The connection's PRAGMA synchronous (0 off .. 3 extra), or -1. */
static int sync_level(tn__conn *c) {
    sqlite3_stmt *q;
    int level = -1;
    if (sqlite3_prepare_v2(c->db, "PRAGMA synchronous", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        level = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return level;
}

int tn__auth_audit_op(tn_store *st, const char *actor, const char *operator_id,
                      const char *tenant_id, const char *action, const char *detail) {
    return tn__auth_audit_op_lazy(st, actor, operator_id, tenant_id, action, detail, 0);
}

int tn__auth_audit_op_lazy(tn_store *st, const char *actor, const char *operator_id,
                           const char *tenant_id, const char *action, const char *detail,
                           int lazy) {
    if (!operator_id) return tn__auth_audit(st, actor, tenant_id, action, detail);
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    /* A lazy row is appended to the log without its own fsync: the next
     * durable commit (any write, or a checkpoint) carries it to disk, and
     * the log keeps rows in order, so a power cut can only lose the newest
     * lazy rows, never reorder or damage anything.  With an fsync each, an
     * operator's reads ran at a tenth of a key's (6k against 67k req/s). */
    int level = lazy ? sync_level(c) : -1;
    if (level > 1) sqlite3_exec(c->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    int64_t tid = 0;
    if (tenant_id) rc = tn__tenant_tid(c, tenant_id, &tid);
    if (rc == TN_OK) rc = audit_op(c, actor, operator_id, tid, action, detail);
    if (level > 1) {
        char sql[40];
        snprintf(sql, sizeof sql, "PRAGMA synchronous = %d", level);
        sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    }
    tn__conn_put(st, c);
    return rc;
}

int tn__audit_list(tn_store *st, const char *tenant_id, int64_t after, int limit, tn__audit_fn fn,
                   void *arg, int64_t *last, int *more) {
    static const char sql[] =
        "SELECT a.seq, a.at, a.actor, t.id, a.action, a.detail, a.operator "
        "  FROM _audit a LEFT JOIN _tenants t ON t.tid = a.tenant "
        " WHERE a.seq > ?1 ORDER BY a.seq LIMIT ?2";
    static const char sql_tenant[] =
        "SELECT a.seq, a.at, a.actor, t.id, a.action, a.detail, a.operator "
        "  FROM _audit a JOIN _tenants t ON t.tid = a.tenant "
        " WHERE a.seq > ?1 AND a.tenant = ?3 ORDER BY a.seq LIMIT ?2";
    *last = after;
    *more = 0;
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *q;
    int64_t tid = 0;
    if (tenant_id) rc = tn__tenant_tid(c, tenant_id, &tid);
    if (rc == TN_OK && (rc = tn__stmt(c, tenant_id ? sql_tenant : sql, &q)) == TN_OK) {
        sqlite3_bind_int64(q, 1, after);
        sqlite3_bind_int(q, 2, limit + 1);
        if (tenant_id) sqlite3_bind_int64(q, 3, tid);
        int src, n = 0;
        while ((src = sqlite3_step(q)) == SQLITE_ROW) {
            if (n == limit) {
                *more = 1;
                break;
            }
            tn__audit_event e = {
                .seq = sqlite3_column_int64(q, 0),
                .at = sqlite3_column_int64(q, 1),
                .actor = (const char *)sqlite3_column_text(q, 2),
                .tenant_id = (const char *)sqlite3_column_text(q, 3),
                .action = (const char *)sqlite3_column_text(q, 4),
                .detail = (const char *)sqlite3_column_text(q, 5),
                .operator_id = (const char *)sqlite3_column_text(q, 6),
            };
            *last = e.seq;
            n++;
            if (fn(&e, arg)) break;
        }
        if (src != SQLITE_ROW && src != SQLITE_DONE) rc = tn__fail_db(st, c, src);
        sqlite3_reset(q);
    }
    tn__conn_put(st, c);
    return rc;
}
