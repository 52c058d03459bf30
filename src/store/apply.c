/*
 * apply.c - the store's side of the way back: rows another writer pushed,
 * applied by the conflict rule in transactions that also advance the
 * tenant's pull cursor, without echo (see outbox.h).
 *
 * The conflict rule, the same on every copy:
 *   - the higher version wins;
 *   - on equal versions with different content, the remote's copy wins: the
 *     remote keeps the first of two equal versions (its write condition is
 *     "older than"), so every copy that pulls ends with the same winner;
 *   - a version more than TN__PULL_MAX_AHEAD_MS ahead of this store's clock
 *     is refused (a broken clock elsewhere must not win every later write
 *     here for ever): counted, never applied, and it does not move the clock.
 * After a row is applied the store's clock is at least its version, so the
 * next local write wins over what it was based on.
 *
 * No echo: the base tables' triggers queue every change for sync; the rows a
 * pull applies are taken out of the outbox again in the same transaction
 * (every outbox row after the one that was last when the transaction began:
 * the transaction holds the write lock, so no other writer's rows are
 * among them).
 */
#include "outbox.h"

#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tn__apply {
    tn_store *st;
    tn__conn *c;
    int64_t tid;
    int64_t outbox_before;
    int64_t highest;  /* highest version applied */
    int64_t newest;   /* newest updated_at applied */
    int64_t applied;
};

static const char SQL_OUTBOX_LAST[] = "SELECT coalesce(max(seq), 0) FROM _outbox";
static const char SQL_OUTBOX_DROP[] = "DELETE FROM _outbox WHERE seq > ?1";
static const char SQL_ITEM_LOCAL[] =
    "SELECT version, deleted, data FROM _items WHERE tenant = ?1 AND id = ?2";
static const char SQL_FILE_LOCAL[] =
    "SELECT version, deleted, sha256 FROM _files WHERE tenant = ?1 AND name = ?2";
static const char SQL_ITEM_PUT[] =
    "INSERT INTO _items (tenant, id, data, version, created_at, updated_at, deleted) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) "
    "ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data, version = excluded.version, "
    "  updated_at = excluded.updated_at, deleted = excluded.deleted";
static const char SQL_FILE_PUT[] =
    "INSERT INTO _files (tenant, name, size, sha256, content_type, version, created_at, "
    "                    updated_at, deleted) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8) "
    "ON CONFLICT (tenant, name) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, "
    "  content_type = excluded.content_type, version = excluded.version, "
    "  updated_at = excluded.updated_at, deleted = excluded.deleted";
/* A file's tombstone keeps what the row held (the schema checks every file
 * row's name, size and digest); one never seen here holds no bytes: size 0
 * and the SHA-256 of nothing. */
static const char SQL_FILE_TOMB[] =
    "INSERT INTO _files (tenant, name, size, sha256, content_type, version, created_at, "
    "                    updated_at, deleted) "
    "VALUES (?1, ?2, 0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', "
    "        'application/octet-stream', ?3, ?4, ?4, 1) "
    "ON CONFLICT (tenant, name) DO UPDATE SET version = excluded.version, "
    "  updated_at = excluded.updated_at, deleted = 1";
static const char SQL_CURSOR_GET[] =
    "SELECT p.cursor FROM _sync_pull p JOIN _tenants t ON t.tid = p.tenant WHERE t.id = ?1";
static const char SQL_CURSOR_PUT[] =
    "INSERT INTO _sync_pull (tenant, cursor, pulled_at, last_change, applied, refused) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT (tenant) DO UPDATE SET cursor = excluded.cursor, "
    "  pulled_at = coalesce(excluded.pulled_at, pulled_at), "
    "  last_change = max(coalesce(last_change, 0), coalesce(excluded.last_change, 0)), "
    "  applied = applied + excluded.applied, refused = refused + excluded.refused, "
    "  last_error = CASE WHEN excluded.pulled_at IS NULL THEN last_error END";

int tn__apply_begin(tn_store *st, const char *tenant_id, tn__apply **out) {
    *out = NULL;
    tn__apply *a = calloc(1, sizeof *a);
    if (!a) return tn__fail(st, TN_NOMEM, "out of memory");
    a->st = st;
    int rc = tn__conn_get(st, 1, &a->c);
    if (rc != TN_OK) {
        free(a);
        return rc;
    }
    rc = tn__begin(a->c);
    if (rc == TN_OK) rc = tn__tenant_tid(a->c, tenant_id, &a->tid);
    sqlite3_stmt *s;
    if (rc == TN_OK && (rc = tn__stmt(a->c, SQL_OUTBOX_LAST, &s)) == TN_OK) {
        if (sqlite3_step(s) == SQLITE_ROW) a->outbox_before = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
    }
    if (rc != TN_OK) {
        tn__apply_abort(a);
        return rc;
    }
    *out = a;
    return TN_OK;
}

void tn__apply_abort(tn__apply *a) {
    if (!a) return;
    if (a->c) {
        tn__rollback(a->c);
        tn__conn_put(a->st, a->c);
    }
    free(a);
}

int tn__apply_local(tn__apply *a, int kind, const char *key, int64_t *version, int *deleted,
                    char sha256[65]) {
    sqlite3_stmt *s;
    *version = 0;
    *deleted = 0;
    if (sha256) sha256[0] = '\0';
    int rc = tn__stmt(a->c, kind == TN__KIND_FILE ? SQL_FILE_LOCAL : SQL_ITEM_LOCAL, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, a->tid);
    sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
    int src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        *version = sqlite3_column_int64(s, 0);
        *deleted = sqlite3_column_int(s, 1);
        const unsigned char *h = sqlite3_column_text(s, 2);
        if (sha256 && kind == TN__KIND_FILE && h) snprintf(sha256, 65, "%s", (const char *)h);
    }
    sqlite3_reset(s);
    return src == SQLITE_ROW || src == SQLITE_DONE ? TN_OK : tn__fail_db(a->st, a->c, src);
}

/* Whether r and the local row (version equal) hold the same content. */
static int same_content(tn__apply *a, const tn__incoming *r, int local_deleted) {
    if (local_deleted != (r->deleted != 0)) return 0;
    if (r->deleted) return 1;
    sqlite3_stmt *s;
    if (tn__stmt(a->c, r->kind == TN__KIND_FILE ? SQL_FILE_LOCAL : SQL_ITEM_LOCAL, &s) != TN_OK)
        return 0;
    sqlite3_bind_int64(s, 1, a->tid);
    sqlite3_bind_text(s, 2, r->key, -1, SQLITE_STATIC);
    int same = 0;
    if (sqlite3_step(s) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(s, 2);
        const char *want = r->kind == TN__KIND_FILE ? r->sha256 : r->data;
        same = v && want && strcmp(v, want) == 0;
    }
    sqlite3_reset(s);
    return same;
}

int tn__apply_decide(tn__apply *a, const tn__incoming *r, int *outcome) {
    *outcome = TN__KEPT_LOCAL;
    int64_t ahead = (tn__now_ms(a->st) + TN__PULL_MAX_AHEAD_MS) << 16;
    if (r->version <= 0 || r->version > ahead) return TN_INVALID;
    int64_t lv;
    int ld;
    int rc = tn__apply_local(a, r->kind, r->key, &lv, &ld, NULL);
    if (rc != TN_OK) return rc;
    if (lv == 0 && r->deleted) *outcome = TN__APPLIED; /* keep the tombstone: it is news */
    else if (lv < r->version) *outcome = TN__APPLIED;
    else if (lv > r->version) *outcome = TN__KEPT_LOCAL;
    else *outcome = same_content(a, r, ld) ? TN__SAME : TN__APPLIED;
    return TN_OK;
}

/* A local change still waiting to be pushed that r replaces lost to a newer
 * remote version: recorded like the push's conflict losses. */
static int record_loss(tn__apply *a, const tn__incoming *r, int *lost) {
    static const char pending[] =
        "SELECT i.version FROM _outbox o JOIN _items i ON i.rowid = o.ref "
        " WHERE o.kind = 1 AND o.seq <= ?3 AND i.tenant = ?1 AND i.id = ?2 "
        "UNION ALL "
        "SELECT f.version FROM _outbox o JOIN _files f ON f.rowid = o.ref "
        " WHERE o.kind = 2 AND o.seq <= ?3 AND f.tenant = ?1 AND f.name = ?2 LIMIT 1";
    static const char loss[] =
        "INSERT OR REPLACE INTO _sync_conflicts (tenant, kind, key, version, remote_version, at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    sqlite3_stmt *s;
    *lost = 0;
    int rc = tn__stmt(a->c, pending, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, a->tid);
    sqlite3_bind_text(s, 2, r->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, a->outbox_before);
    int64_t mine = 0;
    if (sqlite3_step(s) == SQLITE_ROW) mine = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    /* Only a local row of this kind counts (an item and a file may share a key). */
    int64_t lv;
    int ld;
    if ((rc = tn__apply_local(a, r->kind, r->key, &lv, &ld, NULL)) != TN_OK) return rc;
    if (!mine || lv != mine || lv >= r->version) return TN_OK;
    if ((rc = tn__stmt(a->c, loss, &s)) != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, a->tid);
    sqlite3_bind_int(s, 2, r->kind);
    sqlite3_bind_text(s, 3, r->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, lv);
    sqlite3_bind_int64(s, 5, r->version);
    sqlite3_bind_int64(s, 6, tn__now_ms(a->st));
    rc = tn__step_done(a->c, s);
    *lost = rc == TN_OK;
    return rc;
}

int tn__apply_row(tn__apply *a, const tn__incoming *r, int *outcome) {
    int rc = tn__apply_decide(a, r, outcome);
    if (rc != TN_OK || *outcome != TN__APPLIED) return rc;
    int lost = 0;
    if ((rc = record_loss(a, r, &lost)) != TN_OK) return rc;
    sqlite3_stmt *s;
    if (r->kind == TN__KIND_FILE && r->deleted) {
        if ((rc = tn__stmt(a->c, SQL_FILE_TOMB, &s)) != TN_OK) return rc;
        sqlite3_bind_int64(s, 1, a->tid);
        sqlite3_bind_text(s, 2, r->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, r->version);
        sqlite3_bind_int64(s, 4, r->updated_at);
    } else if (r->kind == TN__KIND_FILE) {
        if ((rc = tn__stmt(a->c, SQL_FILE_PUT, &s)) != TN_OK) return rc;
        sqlite3_bind_int64(s, 1, a->tid);
        sqlite3_bind_text(s, 2, r->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, r->size);
        sqlite3_bind_text(s, 4, r->sha256 ? r->sha256 : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, r->content_type ? r->content_type : "application/octet-stream", -1,
                          SQLITE_STATIC);
        sqlite3_bind_int64(s, 6, r->version);
        sqlite3_bind_int64(s, 7, r->updated_at);
        sqlite3_bind_int(s, 8, 0);
    } else {
        if ((rc = tn__stmt(a->c, SQL_ITEM_PUT, &s)) != TN_OK) return rc;
        sqlite3_bind_int64(s, 1, a->tid);
        sqlite3_bind_text(s, 2, r->key, -1, SQLITE_STATIC);
        if (r->deleted || !r->data) sqlite3_bind_null(s, 3);
        else sqlite3_bind_text(s, 3, r->data, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, r->version);
        sqlite3_bind_int64(s, 5, r->updated_at);
        sqlite3_bind_int(s, 6, r->deleted != 0);
    }
    if ((rc = tn__step_done(a->c, s)) != TN_OK) return rc;
    if (lost) *outcome = TN__APPLIED_OVER_LOCAL;
    if (r->version > a->highest) a->highest = r->version;
    if (r->updated_at > a->newest) a->newest = r->updated_at;
    a->applied++;
    return TN_OK;
}

int tn__apply_commit(tn__apply *a, const char *cursor, int at_end, int64_t refused) {
    sqlite3_stmt *s;
    int rc = tn__stmt(a->c, SQL_OUTBOX_DROP, &s);
    if (rc == TN_OK) {
        sqlite3_bind_int64(s, 1, a->outbox_before);
        rc = tn__step_done(a->c, s);
    }
    if (rc == TN_OK && cursor && (rc = tn__stmt(a->c, SQL_CURSOR_PUT, &s)) == TN_OK) {
        sqlite3_bind_int64(s, 1, a->tid);
        sqlite3_bind_text(s, 2, cursor, -1, SQLITE_STATIC);
        if (at_end) sqlite3_bind_int64(s, 3, tn__now_ms(a->st));
        else sqlite3_bind_null(s, 3);
        if (a->newest) sqlite3_bind_int64(s, 4, a->newest);
        else sqlite3_bind_null(s, 4);
        sqlite3_bind_int64(s, 5, a->applied);
        sqlite3_bind_int64(s, 6, refused);
        rc = tn__step_done(a->c, s);
    }
    if (rc == TN_OK) rc = tn__commit(a->c);
    if (rc == TN_OK) {
        /* The clock is ahead of every version this store has seen. */
        int64_t last = __atomic_load_n(&a->st->hlc_last, __ATOMIC_ACQUIRE);
        while (a->highest > last &&
               !__atomic_compare_exchange_n(&a->st->hlc_last, &last, a->highest, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {}
        tn__conn_put(a->st, a->c);
        a->c = NULL;
    }
    tn__apply_abort(a);
    return rc;
}

int tn__pull_cursor(tn_store *st, const char *tenant_id, char cursor[256]) {
    cursor[0] = '\0';
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    if ((rc = tn__stmt(c, SQL_CURSOR_GET, &s)) == TN_OK) {
        sqlite3_bind_text(s, 1, tenant_id, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW)
            snprintf(cursor, 256, "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

/* ---- the pull's bookkeeping and the tenant's own row --------------------- */

/* Runs one statement on a borrowed trusted connection with ?1 = a and, when
 * b is not NULL, ?2 = b.  *changes: rows it changed (may be NULL). */
static int write1(tn_store *st, const char *sql, const char *a, const char *b, int *changes) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    if ((rc = tn__stmt(c, sql, &s)) == TN_OK) {
        if (a) sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
        if (b) sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
        rc = tn__step_done(c, s);
        if (changes) *changes = sqlite3_changes(c->db);
    }
    tn__conn_put(st, c);
    return rc;
}

int tn__pull_error(tn_store *st, const char *tenant_id, const char *what) {
    static const char sql[] =
        "INSERT INTO _sync_pull (tenant, errors, last_error) "
        "SELECT tid, 1, ?2 FROM _tenants WHERE id = ?1 "
        "ON CONFLICT (tenant) DO UPDATE SET errors = errors + 1, last_error = excluded.last_error";
    return write1(st, sql, tenant_id, what, NULL);
}

/* {"name":..., "settings":{...}}: what a tenant's remote row carries. */
static const char SQL_TENANT_JSON[] =
    "SELECT json_object('name', t.name, 'settings', json_object("
    "  'rate_limit', s.rate_limit, 'burst', s.burst, 'max_items', s.max_items, "
    "  'max_file_bytes', s.max_file_bytes, 'sync_enabled', coalesce(s.sync_enabled, 1), "
    "  'sync_priority', coalesce(s.sync_priority, 1), 'tombstone_days', s.tombstone_days)), "
    "  p.tenant_hash "
    "  FROM _tenants t LEFT JOIN _tenant_settings s ON s.tenant = t.tid "
    "  LEFT JOIN _sync_pull p ON p.tenant = t.tid WHERE t.id = ?1";

int tn__tenant_row(tn_store *st, const char *tenant_id, char **json, char pushed[65]) {
    *json = NULL;
    pushed[0] = '\0';
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    if ((rc = tn__stmt(c, SQL_TENANT_JSON, &s)) == TN_OK) {
        sqlite3_bind_text(s, 1, tenant_id, -1, SQLITE_STATIC);
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW) {
            const char *j = (const char *)sqlite3_column_text(s, 0);
            const char *h = (const char *)sqlite3_column_text(s, 1);
            *json = j ? strdup(j) : NULL;
            if (h) snprintf(pushed, 65, "%s", h);
            if (!*json) rc = tn__fail(st, TN_NOMEM, "out of memory");
        } else {
            rc = src == SQLITE_DONE ? TN_NOTFOUND : tn__fail_db(st, c, src);
        }
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

static const char SQL_PUSHED[] =
    "INSERT INTO _sync_pull (tenant, tenant_hash) SELECT tid, ?2 FROM _tenants WHERE id = ?1 "
    "ON CONFLICT (tenant) DO UPDATE SET tenant_hash = excluded.tenant_hash";

int tn__tenant_row_pushed(tn_store *st, const char *tenant_id, const char *hash) {
    return write1(st, SQL_PUSHED, tenant_id, hash, NULL);
}

/* Settings from a tenant row's JSON, into _tenant_settings (absent keys: NULL). */
static const char SQL_SETTINGS_FROM_JSON[] =
    "INSERT INTO _tenant_settings (tenant, rate_limit, burst, max_items, max_file_bytes, "
    "                              sync_enabled, sync_priority, tombstone_days) "
    "SELECT t.tid, json_extract(?2, '$.rate_limit'), json_extract(?2, '$.burst'), "
    "       json_extract(?2, '$.max_items'), json_extract(?2, '$.max_file_bytes'), "
    "       coalesce(json_extract(?2, '$.sync_enabled'), 1), "
    "       coalesce(json_extract(?2, '$.sync_priority'), 1), "
    "       json_extract(?2, '$.tombstone_days') FROM _tenants t WHERE t.id = ?1 "
    "ON CONFLICT (tenant) DO UPDATE SET rate_limit = excluded.rate_limit, burst = excluded.burst, "
    "  max_items = excluded.max_items, max_file_bytes = excluded.max_file_bytes, "
    "  sync_enabled = excluded.sync_enabled, sync_priority = excluded.sync_priority, "
    "  tombstone_days = excluded.tombstone_days";

typedef struct tenant_arg {
    const char *id, *name, *settings, *hash;
    int64_t now;
} tenant_arg;

static int tenant_body(tn__conn *c, void *arg) {
    tenant_arg *t = arg;
    static const char ins[] =
        "INSERT INTO _tenants (id, name, created_at) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (id) DO UPDATE SET name = excluded.name";
    sqlite3_stmt *s;
    int rc = tn__stmt(c, ins, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, t->now);
    if ((rc = tn__step_done(c, s)) != TN_OK) return rc;
    if (t->settings) {
        if ((rc = tn__stmt(c, SQL_SETTINGS_FROM_JSON, &s)) != TN_OK) return rc;
        sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, t->settings, -1, SQLITE_STATIC);
        if ((rc = tn__step_done(c, s)) != TN_OK) return rc;
    }
    if ((rc = tn__stmt(c, SQL_PUSHED, &s)) != TN_OK) return rc;
    sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, t->hash, -1, SQLITE_STATIC);
    if ((rc = tn__step_done(c, s)) != TN_OK) return rc;
    int64_t tid = 0;
    tn__tenant_tid(c, t->id, &tid);
    return tn__audit(c, "sync", tid, "tenant.pulled", NULL);
}

int tn__apply_tenant(tn_store *st, const char *id, const char *name, const char *settings_json,
                     const char *hash) {
    if (!tn__uuid_valid(id) || !name || !*name || strlen(name) > 128)
        return tn__fail(st, TN_INVALID, "a tenant row needs an id and a name");
    tenant_arg t = {id, name, settings_json, hash, tn__now_ms(st)};
    return tn__trusted_tx(st, tenant_body, &t);
}

/* ---- deleted tenants -------------------------------------------------------- */

int tn__purge_list(tn_store *st, char (*ids)[37], int max, int *n) {
    static const char sql[] = "SELECT id FROM _sync_purge ORDER BY started_at LIMIT ?1";
    *n = 0;
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    if ((rc = tn__stmt(c, sql, &s)) == TN_OK) {
        sqlite3_bind_int(s, 1, max);
        while (*n < max && sqlite3_step(s) == SQLITE_ROW)
            snprintf(ids[(*n)++], 37, "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

int tn__purge_done(tn_store *st, const char *id, int64_t rows, int finished) {
    static const char upd[] =
        "UPDATE _sync_purge SET rows_done = rows_done + CAST(?2 AS INTEGER) WHERE id = ?1";
    static const char del[] = "DELETE FROM _sync_purge WHERE id = ?1";
    char n[24];
    snprintf(n, sizeof n, "%lld", (long long)rows);
    return write1(st, finished ? del : upd, id, finished ? NULL : n, NULL);
}

/* ---- restore ---------------------------------------------------------------- */


int tn__restore_mark(tn_store *st, int incomplete) {
    static const char set[] =
        "INSERT OR REPLACE INTO _meta (key, value) VALUES ('restore_incomplete', 1)";
    static const char clear[] = "DELETE FROM _meta WHERE key = 'restore_incomplete'";
    return write1(st, incomplete ? set : clear, NULL, NULL, NULL);
}

int tn__restore_marked(tn_store *st) {
    static const char sql[] = "SELECT 1 FROM _meta WHERE key = 'restore_incomplete'";
    tn__conn *c;
    if (tn__conn_get(st, 1, &c) != TN_OK) return 0;
    sqlite3_stmt *s;
    int marked = 0;
    if (tn__stmt(c, sql, &s) == TN_OK) {
        marked = sqlite3_step(s) == SQLITE_ROW;
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return marked;
}

/* ---- verify --------------------------------------------------------------- */

int tn__outbox_touch(tn_store *st, const char *tenant_id, int kind, const char *key) {
    static const char item[] =
        "INSERT INTO _outbox (tenant, kind, ref) SELECT i.tenant, 1, i.rowid FROM _items i "
        " JOIN _tenants t ON t.tid = i.tenant WHERE t.id = ?1 AND i.id = ?2";
    static const char file[] =
        "INSERT INTO _outbox (tenant, kind, ref) SELECT f.tenant, 2, f.rowid FROM _files f "
        " JOIN _tenants t ON t.tid = f.tenant WHERE t.id = ?1 AND f.name = ?2";
    int changed = 0;
    int rc = write1(st, kind == TN__KIND_FILE ? file : item, tenant_id, key, &changed);
    return rc == TN_OK && !changed ? TN_NOTFOUND : rc;
}

int tn__local_rows(tn_store *st, const char *tenant_id, tn__local_fn fn, void *arg) {
    static const char sql[] =
        "SELECT 1, i.id, i.version, i.deleted, i.data, "
        "       EXISTS (SELECT 1 FROM _outbox o WHERE o.kind = 1 AND o.ref = i.rowid) "
        "  FROM _items i JOIN _tenants t ON t.tid = i.tenant WHERE t.id = ?1 "
        "UNION ALL "
        "SELECT 2, f.name, f.version, f.deleted, f.sha256, "
        "       EXISTS (SELECT 1 FROM _outbox o WHERE o.kind = 2 AND o.ref = f.rowid) "
        "  FROM _files f JOIN _tenants t ON t.tid = f.tenant WHERE t.id = ?1";
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    if ((rc = tn__stmt(c, sql, &s)) == TN_OK) {
        sqlite3_bind_text(s, 1, tenant_id, -1, SQLITE_STATIC);
        int src;
        while (rc == TN_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
            tn__local_row r = {sqlite3_column_int(s, 0), (const char *)sqlite3_column_text(s, 1),
                               sqlite3_column_int64(s, 2), sqlite3_column_int(s, 3),
                               (const char *)sqlite3_column_text(s, 4),
                               sqlite3_column_int(s, 5)};
            rc = fn(&r, arg);
        }
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

int tn__pull_due(tn_store *st, const char *tenant_id, int64_t default_ttl_s, int *full) {
    static const char sql[] =
        "SELECT p.pulled_at, coalesce(s.tombstone_days * 86400, ?2) "
        "  FROM _tenants t LEFT JOIN _sync_pull p ON p.tenant = t.tid "
        "  LEFT JOIN _tenant_settings s ON s.tenant = t.tid WHERE t.id = ?1";
    *full = 0;
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    if ((rc = tn__stmt(c, sql, &s)) == TN_OK) {
        sqlite3_bind_text(s, 1, tenant_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, default_ttl_s);
        if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_INTEGER) {
            int64_t pulled = sqlite3_column_int64(s, 0), ttl_ms = sqlite3_column_int64(s, 1) * 1000;
            /* Offline longer than a tombstone lives: deletes may be lost from
             * the feed; reconcile in full.  (A margin of a tenth for clocks.) */
            *full = tn__now_ms(st) - pulled > ttl_ms - ttl_ms / 10;
        }
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

int tn__sync_tenants(tn_store *st, char (**ids)[37], int *n) {
    static const char sql[] =
        "SELECT t.id FROM _tenants t LEFT JOIN _tenant_settings s ON s.tenant = t.tid "
        " WHERE coalesce(s.sync_enabled, 1) = 1 ORDER BY t.tid";
    *ids = NULL;
    *n = 0;
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    int cap = 0;
    if ((rc = tn__stmt(c, sql, &s)) == TN_OK) {
        while (rc == TN_OK && sqlite3_step(s) == SQLITE_ROW) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                char (*nv)[37] = realloc(*ids, (size_t)cap * sizeof **ids);
                if (!nv) {
                    rc = tn__fail(st, TN_NOMEM, "out of memory");
                    break;
                }
                *ids = nv;
            }
            snprintf((*ids)[(*n)++], 37, "%s", (const char *)sqlite3_column_text(s, 0));
        }
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}
