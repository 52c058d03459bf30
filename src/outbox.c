/*
 * outbox.c - reading and acknowledging the transactional outbox (see outbox.h).
 *
 * Fairness: each fetch asks which tenants have pending rows (an index on
 * _outbox(tenant, seq) keeps that cheap), gives each the same share of the
 * batch, and starts the round after the tenant that led the previous one.
 */
#include "outbox.h"

#include "cli.h"
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_TENANTS[] =
    "SELECT t.tid, t.id FROM _tenants t "
    " WHERE EXISTS (SELECT 1 FROM _outbox o WHERE o.tenant = t.tid) ORDER BY t.tid";
static const char SQL_ROWS[] =
    "SELECT seq, kind, ref FROM _outbox WHERE tenant = ?1 AND seq > ?3 ORDER BY seq LIMIT ?2";
static const char SQL_ITEM[] =
    "SELECT id, data, deleted, version, updated_at FROM _items WHERE rowid = ?1 AND tenant = ?2";
static const char SQL_FILE[] =
    "SELECT name, size, sha256, content_type, deleted, version, updated_at "
    "  FROM _files WHERE rowid = ?1 AND tenant = ?2";
static const char SQL_DELETE[] = "DELETE FROM _outbox WHERE seq = ?1";
static const char SQL_COUNT[] = "SELECT count(*) FROM _outbox";
static const char SQL_COUNT_TENANT[] =
    "SELECT count(*) FROM _outbox WHERE tenant = (SELECT tid FROM _tenants WHERE id = ?1)";

void tn__batch_free(tn__batch *b) {
    if (!b) return;
    for (int i = 0; i < b->n; i++) {
        free(b->changes[i].key);
        free(b->changes[i].data);
        free(b->changes[i].content_type);
        free(b->changes[i].seqs);
    }
    free(b->changes);
    b->changes = NULL;
    b->n = 0;
}

static char *dup_col(sqlite3_stmt *s, int i) {
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? strdup((const char *)t) : NULL;
}

/* Fills ch from its row; TN_NOTFOUND when the row is gone. */
static int load_row(tn__conn *c, int64_t tid, tn__change *ch) {
    sqlite3_stmt *s;
    int rc = tn__stmt(c, ch->kind == TN__KIND_ITEM ? SQL_ITEM : SQL_FILE, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, ch->ref);
    sqlite3_bind_int64(s, 2, tid);
    int src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        ch->key = dup_col(s, 0);
        if (ch->kind == TN__KIND_ITEM) {
            ch->data = dup_col(s, 1);
            ch->deleted = sqlite3_column_int(s, 2);
            ch->version = sqlite3_column_int64(s, 3);
            ch->updated_at = sqlite3_column_int64(s, 4);
        } else {
            ch->size = sqlite3_column_int64(s, 1);
            const unsigned char *h = sqlite3_column_text(s, 2);
            snprintf(ch->sha256, sizeof ch->sha256, "%s", h ? (const char *)h : "");
            ch->content_type = dup_col(s, 3);
            ch->deleted = sqlite3_column_int(s, 4);
            ch->version = sqlite3_column_int64(s, 5);
            ch->updated_at = sqlite3_column_int64(s, 6);
        }
        rc = ch->key ? TN_OK : tn__fail(c->st, TN_NOMEM, "out of memory");
    } else {
        rc = src == SQLITE_DONE ? TN_NOTFOUND : tn__fail_db(c->st, c, src);
    }
    sqlite3_reset(s);
    return rc;
}

static int add_seq(tn__change *ch, int64_t seq) {
    int64_t *ns = realloc(ch->seqs, (size_t)(ch->nseqs + 1) * sizeof *ns);
    if (!ns) return TN_NOMEM;
    ch->seqs = ns;
    ch->seqs[ch->nseqs++] = seq;
    return TN_OK;
}

/*
 * Reads one tenant's share: up to quota new distinct changes from its oldest
 * rows after *after_seq, which it advances past the rows it took.
 */
static int fetch_tenant(tn__conn *c, int64_t tid, const char *tenant_id, int quota, int scan,
                        tn__batch *b, int cap, int64_t *after_seq) {
    sqlite3_stmt *s;
    int rc = tn__stmt(c, SQL_ROWS, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, tid);
    sqlite3_bind_int(s, 2, scan);
    sqlite3_bind_int64(s, 3, *after_seq);
    int first = b->n, src, added = 0;
    while (rc == TN_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(s, 0), ref = sqlite3_column_int64(s, 2);
        int kind = sqlite3_column_int(s, 1);
        tn__change *ch = NULL;
        for (int i = 0; i < b->n; i++)
            if (b->changes[i].kind == kind && b->changes[i].ref == ref) ch = &b->changes[i];
        if (!ch) {
            /* Stop at the first new row past the quota: it stays for next time. */
            if (added >= quota || b->n >= cap) break;
            added++;
            ch = &b->changes[b->n++];
            memset(ch, 0, sizeof *ch);
            ch->kind = kind;
            ch->ref = ref;
            snprintf(ch->tenant_id, sizeof ch->tenant_id, "%s", tenant_id);
        }
        rc = add_seq(ch, seq);
        *after_seq = seq;
    }
    sqlite3_reset(s);
    for (int i = first; rc == TN_OK && i < b->n; i++) {
        tn__change *ch = &b->changes[i];
        rc = load_row(c, tid, ch);
        /* A row that no longer exists (a purged tombstone) needs no sync; it
         * is sent as a delete, which the remote applies idempotently. */
        if (rc == TN_NOTFOUND) {
            ch->deleted = 1;
            rc = TN_OK;
        }
    }
    return rc;
}

static int64_t round_start; /* tid after which the next round begins */
static pthread_mutex_t round_mu = PTHREAD_MUTEX_INITIALIZER;

int tn__outbox_fetch(tn_store *st, int max, int scan, tn__batch *out) {
    memset(out, 0, sizeof *out);
    if (max < 1) return tn__fail(st, TN_INVALID, "batch size must be positive");
    if (scan < max) scan = max;
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    out->changes = calloc((size_t)max, sizeof *out->changes);
    if (!out->changes) {
        tn__conn_put(st, c);
        return tn__fail(st, TN_NOMEM, "out of memory");
    }

    /* Tenants with pending rows, in tid order. */
    int nt = 0, capt = 16;
    int64_t *tids = malloc((size_t)capt * sizeof *tids);
    char (*ids)[37] = malloc((size_t)capt * sizeof *ids);
    sqlite3_stmt *s;
    if (!tids || !ids) rc = tn__fail(st, TN_NOMEM, "out of memory");
    if (rc == TN_OK) rc = tn__stmt(c, SQL_TENANTS, &s);
    if (rc == TN_OK) {
        /* One read transaction, so the tenant list and rows agree. */
        sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);
        int src;
        while (rc == TN_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
            if (nt == capt) {
                capt *= 2;
                int64_t *nt_ = realloc(tids, (size_t)capt * sizeof *tids);
                char(*ni)[37] = realloc(ids, (size_t)capt * sizeof *ids);
                if (nt_) tids = nt_;
                if (ni) ids = ni;
                if (!nt_ || !ni) {
                    rc = tn__fail(st, TN_NOMEM, "out of memory");
                    break;
                }
            }
            tids[nt] = sqlite3_column_int64(s, 0);
            snprintf(ids[nt], sizeof ids[nt], "%s", (const char *)sqlite3_column_text(s, 1));
            nt++;
        }
        sqlite3_reset(s);
    }
    if (rc == TN_OK && nt > 0) {
        pthread_mutex_lock(&round_mu);
        int start = 0;
        while (start < nt && tids[start] <= round_start) start++;
        if (start == nt) start = 0;
        round_start = tids[start];
        pthread_mutex_unlock(&round_mu);
        /* Round one: an equal share each.  Round two: what is left of the
         * batch goes to the tenants that still have rows, in the same order. */
        int64_t *after = calloc((size_t)nt, sizeof *after);
        if (!after) rc = tn__fail(st, TN_NOMEM, "out of memory");
        int quota = (max + nt - 1) / nt;
        int per_scan = scan / nt > quota ? scan / nt : quota;
        for (int round = 0; rc == TN_OK && round < 2; round++) {
            for (int k = 0; rc == TN_OK && k < nt && out->n < max; k++) {
                int i = (start + k) % nt;
                rc = fetch_tenant(c, tids[i], ids[i], round ? max - out->n : quota, per_scan,
                                  out, max, &after[i]);
            }
        }
        free(after);
    }
    if (!sqlite3_get_autocommit(c->db)) sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    free(tids);
    free(ids);
    tn__conn_put(st, c);
    if (rc != TN_OK) tn__batch_free(out);
    return rc;
}

int tn__outbox_ack(tn_store *st, const tn__batch *b, const unsigned char *done) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    if ((rc = tn__begin(c)) == TN_OK) rc = tn__stmt(c, SQL_DELETE, &s);
    for (int i = 0; rc == TN_OK && i < b->n; i++) {
        if (done && !done[i]) continue;
        for (int k = 0; rc == TN_OK && k < b->changes[i].nseqs; k++) {
            sqlite3_bind_int64(s, 1, b->changes[i].seqs[k]);
            int src = sqlite3_step(s);
            sqlite3_reset(s);
            if (src != SQLITE_DONE) rc = tn__fail_db(st, c, src);
        }
    }
    if (rc == TN_OK) rc = tn__commit(c);
    if (rc != TN_OK) tn__rollback(c);
    tn__conn_put(st, c);
    return rc;
}

static int count(tn_store *st, const char *sql, const char *arg, int64_t *rows) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    if ((rc = tn__stmt(c, sql, &s)) == TN_OK) {
        if (arg) sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW)
            *rows = sqlite3_column_int64(s, 0);
        else
            rc = tn__fail_db(st, c, src);
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

int tn__outbox_pending(tn_store *st, int64_t *rows) {
    return count(st, SQL_COUNT, NULL, rows);
}

int tn__outbox_pending_tenant(tn_store *st, const char *tenant_id, int64_t *rows) {
    return tenant_id ? count(st, SQL_COUNT_TENANT, tenant_id, rows) : count(st, SQL_COUNT, NULL, rows);
}
