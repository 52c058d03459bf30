/*
 * state.c - the engine's bookkeeping tables (see state.h).
 */
#include "state.h"

#include "outbox.h"
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_DEAD[] =
    "INSERT OR REPLACE INTO _sync_dead (tenant, kind, key, version, error, at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char SQL_CONFLICT[] =
    "INSERT OR REPLACE INTO _sync_conflicts (tenant, kind, key, version, remote_version, at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char SQL_STATE_OK[] =
    "INSERT INTO _sync_state (tenant, last_success, sent, conflicts, backoff_ms) "
    "VALUES (?1, ?2, ?3, ?4, 0) ON CONFLICT (tenant) DO UPDATE SET "
    "last_success = excluded.last_success, sent = sent + excluded.sent, "
    "conflicts = conflicts + excluded.conflicts, backoff_ms = 0";
static const char SQL_STATE_ERR[] =
    "INSERT INTO _sync_state (tenant, last_error, last_error_at, backoff_ms) "
    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tenant) DO UPDATE SET "
    "last_error = excluded.last_error, last_error_at = excluded.last_error_at, "
    "backoff_ms = excluded.backoff_ms";

typedef struct rec_arg {
    const tn__batch *b;
    const tn__result *res;
    const unsigned char *done; /* outbox rows to acknowledge; NULL: none */
    int retry_code;
    int64_t backoff_ms, now;
} rec_arg;

static int record_body(tn__conn *c, void *arg) {
    rec_arg *a = arg;
    const tn__batch *b = a->b;
    int rc = TN_OK;
    /* Tenants of this batch, each handled once. */
    for (int i = 0; rc == TN_OK && i < b->n; i++) {
        int seen = 0;
        for (int k = 0; k < i && !seen; k++)
            seen = strcmp(b->changes[k].tenant_id, b->changes[i].tenant_id) == 0;
        if (seen) continue;
        int64_t tid;
        if (tn__tenant_tid(c, b->changes[i].tenant_id, &tid) != TN_OK) continue; /* deleted */
        int64_t sent = 0, conflicts = 0;
        int retry = 0;
        sqlite3_stmt *s;
        for (int k = i; rc == TN_OK && k < b->n; k++) {
            const tn__change *ch = &b->changes[k];
            if (strcmp(ch->tenant_id, b->changes[i].tenant_id) != 0) continue;
            const tn__result *r = &a->res[k];
            if (r->outcome == TN__OUT_OK) sent++;
            else if (r->outcome == TN__OUT_RETRY && !retry) retry = r->code ? r->code : -1;
            else if (r->outcome == TN__OUT_DEAD || r->outcome == TN__OUT_CONFLICT) {
                int dead = r->outcome == TN__OUT_DEAD;
                if (!dead) conflicts++;
                if ((rc = tn__stmt(c, dead ? SQL_DEAD : SQL_CONFLICT, &s)) != TN_OK) break;
                sqlite3_bind_int64(s, 1, tid);
                sqlite3_bind_int(s, 2, ch->kind);
                sqlite3_bind_text(s, 3, ch->key ? ch->key : "", -1, SQLITE_STATIC);
                sqlite3_bind_int64(s, 4, ch->version);
                if (dead) sqlite3_bind_text(s, 5, tn_strerror(r->code), -1, SQLITE_STATIC);
                else sqlite3_bind_int64(s, 5, r->remote_version);
                sqlite3_bind_int64(s, 6, a->now);
                rc = tn__step_done(c, s);
            }
        }
        if (rc != TN_OK) break;
        if (sent || conflicts || !retry) {
            if ((rc = tn__stmt(c, SQL_STATE_OK, &s)) != TN_OK) break;
            sqlite3_bind_int64(s, 1, tid);
            sqlite3_bind_int64(s, 2, a->now);
            sqlite3_bind_int64(s, 3, sent);
            sqlite3_bind_int64(s, 4, conflicts);
            rc = tn__step_done(c, s);
        }
        if (rc == TN_OK && retry) {
            if ((rc = tn__stmt(c, SQL_STATE_ERR, &s)) != TN_OK) break;
            sqlite3_bind_int64(s, 1, tid);
            /* This tenant's own error: another tenant's rows may fail otherwise. */
            int code = retry > 0 ? retry : a->retry_code ? a->retry_code : TN_REMOTE;
            sqlite3_bind_text(s, 2, tn_strerror(code), -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 3, a->now);
            sqlite3_bind_int64(s, 4, a->backoff_ms);
            rc = tn__step_done(c, s);
        }
    }
    /* The acknowledgement commits with the records: a crash leaves both or
     * neither, and replays at most idempotent remote writes. */
    if (rc == TN_OK && a->done) rc = tn__outbox_ack_in(c, b, a->done);
    return rc;
}

int tn__sync_record(tn_store *st, const tn__batch *b, const tn__result *res,
                    const unsigned char *done, int retry_code, int64_t backoff_ms) {
    rec_arg a = {b, res, done, retry_code, backoff_ms, tn__now_ms(st)};
    return tn__trusted_tx(st, record_body, &a);
}

/* ---- multipart uploads ---------------------------------------------------------- */

static const char SQL_MP_GET[] =
    "SELECT version, upload_id FROM _sync_uploads WHERE tenant = ?1 AND name = ?2";
static const char SQL_MP_PARTS[] =
    "SELECT part, etag FROM _sync_upload_parts WHERE tenant = ?1 AND name = ?2";
static const char SQL_MP_BEGIN[] =
    "INSERT OR REPLACE INTO _sync_uploads (tenant, name, version, upload_id, at) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
static const char SQL_MP_PART[] =
    "INSERT OR REPLACE INTO _sync_upload_parts (tenant, name, part, etag) VALUES (?1, ?2, ?3, ?4)";
static const char SQL_MP_CLEAR[] = "DELETE FROM _sync_uploads WHERE tenant = ?1 AND name = ?2";
static const char SQL_MP_CLEAR_PARTS[] =
    "DELETE FROM _sync_upload_parts WHERE tenant = ?1 AND name = ?2";

int tn__mp_get(tn_store *st, const char *tenant, const char *name, tn__mp *out) {
    memset(out, 0, sizeof *out);
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    int64_t tid;
    sqlite3_stmt *s;
    if ((rc = tn__tenant_tid(c, tenant, &tid)) == TN_OK && (rc = tn__stmt(c, SQL_MP_GET, &s)) == TN_OK) {
        sqlite3_bind_int64(s, 1, tid);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW) {
            out->version = sqlite3_column_int64(s, 0);
            snprintf(out->upload_id, sizeof out->upload_id, "%s", sqlite3_column_text(s, 1));
        } else if (src != SQLITE_DONE) {
            rc = tn__fail_db(st, c, src);
        }
        sqlite3_reset(s);
    }
    if (rc == TN_OK && out->upload_id[0] && (rc = tn__stmt(c, SQL_MP_PARTS, &s)) == TN_OK) {
        sqlite3_bind_int64(s, 1, tid);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
        while (sqlite3_step(s) == SQLITE_ROW) {
            int part = sqlite3_column_int(s, 0);
            if (part < 1 || part > TN__MP_MAX_PARTS) continue;
            snprintf(out->etag[part - 1], sizeof out->etag[0], "%s", sqlite3_column_text(s, 1));
        }
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

typedef struct mp_arg {
    const char *tenant, *name, *text;
    int64_t num;
    int op; /* 0 begin, 1 part, 2 clear */
    int64_t now;
} mp_arg;

static int mp_body(tn__conn *c, void *arg) {
    mp_arg *a = arg;
    int64_t tid;
    sqlite3_stmt *s;
    int rc = tn__tenant_tid(c, a->tenant, &tid);
    if (rc != TN_OK) return rc;
    if (a->op == 2 || a->op == 0) {
        /* A new upload starts with no parts. */
        for (int k = 0; rc == TN_OK && k < 2; k++) {
            if ((rc = tn__stmt(c, k ? SQL_MP_CLEAR_PARTS : SQL_MP_CLEAR, &s)) != TN_OK) break;
            sqlite3_bind_int64(s, 1, tid);
            sqlite3_bind_text(s, 2, a->name, -1, SQLITE_STATIC);
            rc = tn__step_done(c, s);
        }
        if (rc != TN_OK || a->op == 2) return rc;
    }
    if ((rc = tn__stmt(c, a->op == 0 ? SQL_MP_BEGIN : SQL_MP_PART, &s)) != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, tid);
    sqlite3_bind_text(s, 2, a->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, a->num);
    sqlite3_bind_text(s, 4, a->text, -1, SQLITE_STATIC);
    if (a->op == 0) sqlite3_bind_int64(s, 5, a->now);
    return tn__step_done(c, s);
}

int tn__mp_begin(tn_store *st, const char *tenant, const char *name, int64_t version,
                 const char *upload_id) {
    mp_arg a = {tenant, name, upload_id, version, 0, tn__now_ms(st)};
    return tn__trusted_tx(st, mp_body, &a);
}

int tn__mp_part(tn_store *st, const char *tenant, const char *name, int part, const char *etag) {
    mp_arg a = {tenant, name, etag, part, 1, 0};
    return tn__trusted_tx(st, mp_body, &a);
}

int tn__mp_clear(tn_store *st, const char *tenant, const char *name) {
    mp_arg a = {tenant, name, NULL, 0, 2, 0};
    return tn__trusted_tx(st, mp_body, &a);
}
