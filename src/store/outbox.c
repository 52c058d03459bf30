/*
 * outbox.c - reading and acknowledging the transactional outbox (see outbox.h).
 *
 * Fairness: see tn__outbox_fetch.  Per-tenant settings (_tenant_settings) are
 * read by every fetch, so a change made by any process applies to the next
 * batch: a tenant with sync off is left out (its rows stay queued), and
 * sync_priority weighs its share of a batch.
 */
#include "outbox.h"

#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The subquery is not correlated: SQLite evaluates it once per statement. */
#define SYNC_OFF "(SELECT tenant FROM _tenant_settings WHERE sync_enabled = 0)"
static const char SQL_WINDOW[] =
    "SELECT seq, tenant, kind, ref FROM _outbox WHERE seq > ?1 AND tenant NOT IN " SYNC_OFF
    " ORDER BY seq LIMIT ?2";
static const char SQL_TENANT_ID[] =
    "SELECT t.id, coalesce(s.sync_priority, 1), coalesce(s.tombstone_days, 0) "
    "  FROM _tenants t LEFT JOIN _tenant_settings s ON s.tenant = t.tid WHERE t.tid = ?1";
static const char SQL_ITEM[] =
    "SELECT id, data, deleted, version, updated_at FROM _items WHERE rowid = ?1 AND tenant = ?2";
static const char SQL_FILE[] =
    "SELECT name, size, sha256, content_type, deleted, version, updated_at "
    "  FROM _files WHERE rowid = ?1 AND tenant = ?2";
static const char SQL_DELETE[] = "DELETE FROM _outbox WHERE seq = ?1";
static const char SQL_COUNT[] = "SELECT count(*) FROM _outbox";
static const char SQL_COUNT_SYNCING[] =
    "SELECT count(*) FROM _outbox WHERE tenant NOT IN " SYNC_OFF;
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

typedef struct row {
    int64_t seq, tenant, ref;
    int kind;
} row;

typedef struct rows {
    row *v;
    int n, cap;
} rows;

/* Appends up to limit outbox rows after seq `after`; returns the last seq read
 * (or -1 when there were none). */
static int read_window(tn__conn *c, int64_t after, int limit, rows *r, int64_t *last) {
    sqlite3_stmt *s;
    int rc = tn__stmt(c, SQL_WINDOW, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, limit);
    *last = -1;
    int src;
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        if (r->n == r->cap) {
            int cap = r->cap ? r->cap * 2 : 256;
            row *nv = realloc(r->v, (size_t)cap * sizeof *nv);
            if (!nv) {
                sqlite3_reset(s);
                return tn__fail(c->st, TN_NOMEM, "out of memory");
            }
            r->v = nv;
            r->cap = cap;
        }
        row *x = &r->v[r->n++];
        x->seq = sqlite3_column_int64(s, 0);
        x->tenant = sqlite3_column_int64(s, 1);
        x->kind = sqlite3_column_int(s, 2);
        x->ref = sqlite3_column_int64(s, 3);
        *last = x->seq;
    }
    sqlite3_reset(s);
    return src == SQLITE_DONE ? TN_OK : tn__fail_db(c->st, c, src);
}

static int cmp_seq(const void *a, const void *b) {
    const row *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static tn__change *find_change(tn__batch *b, int kind, int64_t ref) {
    for (int i = 0; i < b->n; i++)
        if (b->changes[i].kind == kind && b->changes[i].ref == ref) return &b->changes[i];
    return NULL;
}

/* The tenant's UUID, its sync priority and its tombstone TTL (0: default). */
static int tenant_uuid(tn__conn *c, int64_t tid, char out[37], int *weight, int64_t *ttl_s) {
    sqlite3_stmt *s;
    int rc = tn__stmt(c, SQL_TENANT_ID, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, tid);
    int src = sqlite3_step(s);
    *weight = 1;
    *ttl_s = 0;
    if (src == SQLITE_ROW) {
        snprintf(out, 37, "%s", (const char *)sqlite3_column_text(s, 0));
        int w = sqlite3_column_int(s, 1);
        *weight = w < 1 ? 1 : w;
        *ttl_s = sqlite3_column_int64(s, 2) * 86400;
    } else {
        out[0] = '\0'; /* tenant gone: its rows are skipped */
    }
    sqlite3_reset(s);
    return src == SQLITE_ROW || src == SQLITE_DONE ? TN_OK : tn__fail_db(c->st, c, src);
}

/*
 * Fairness without an index on the outbox (which would cost every write):
 * each fetch reads the head of the queue plus a probe window that walks
 * through the rest of it a window per fetch, so a tenant queued behind another
 * tenant's large backlog is reached within (backlog / window) fetches.  The
 * rows found are shared out round-robin: every tenant seen gets a quota of new
 * changes in proportion to its sync priority (all equal by default), then what
 * is left of the batch goes to the oldest rows.
 */
static int64_t probe_after; /* the probe window starts after this seq */
static pthread_mutex_t probe_mu = PTHREAD_MUTEX_INITIALIZER;

int tn__outbox_fetch(tn_store *st, int max, int scan, tn__batch *out) {
    return tn__outbox_fetch_skip(st, max, scan, NULL, 0, out);
}

static int skipped(const char (*skip)[37], int nskip, const char *uuid) {
    for (int i = 0; i < nskip; i++)
        if (strcmp(skip[i], uuid) == 0) return 1;
    return 0;
}

int tn__outbox_fetch_skip(tn_store *st, int max, int scan, const char (*skip)[37], int nskip,
                          tn__batch *out) {
    memset(out, 0, sizeof *out);
    if (max < 1) return tn__fail(st, TN_INVALID, "batch size must be positive");
    if (scan < max) scan = max;
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    out->changes = calloc((size_t)max, sizeof *out->changes);
    rows r = {0};
    int64_t *tids = NULL;
    int *given = NULL;
    if (!out->changes) rc = tn__fail(st, TN_NOMEM, "out of memory");

    /* One read transaction, so the rows and the row contents agree. */
    if (rc == TN_OK) sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);
    int64_t head_last = -1, probe_last = -1;
    if (rc == TN_OK) rc = read_window(c, 0, scan, &r, &head_last);
    if (rc == TN_OK && head_last >= 0) {
        pthread_mutex_lock(&probe_mu);
        int64_t from = probe_after > head_last ? probe_after : head_last;
        pthread_mutex_unlock(&probe_mu);
        rc = read_window(c, from, scan, &r, &probe_last);
        pthread_mutex_lock(&probe_mu);
        probe_after = probe_last >= 0 ? probe_last : 0; /* past the end: start over */
        pthread_mutex_unlock(&probe_mu);
    }
    if (rc == TN_OK && r.n > 0) {
        qsort(r.v, (size_t)r.n, sizeof *r.v, cmp_seq);
        /* Distinct tenants in the rows read, in order of their oldest row. */
        tids = calloc((size_t)r.n, sizeof *tids);
        given = calloc((size_t)r.n, sizeof *given);
        if (!tids || !given) rc = tn__fail(st, TN_NOMEM, "out of memory");
        int nt = 0;
        for (int i = 0; rc == TN_OK && i < r.n; i++) {
            int k = 0;
            while (k < nt && tids[k] != r.v[i].tenant) k++;
            if (k == nt) tids[nt++] = r.v[i].tenant;
        }
        char (*uuid)[37] = nt ? calloc((size_t)nt, sizeof *uuid) : NULL;
        int64_t *ttl = nt ? calloc((size_t)nt, sizeof *ttl) : NULL;
        int *quota = nt ? calloc((size_t)nt, sizeof *quota) : NULL;
        if (nt && (!uuid || !ttl || !quota)) rc = tn__fail(st, TN_NOMEM, "out of memory");
        int64_t wsum = 0;
        for (int k = 0; rc == TN_OK && k < nt; k++) {
            rc = tenant_uuid(c, tids[k], uuid[k], &quota[k], &ttl[k]);
            if (skipped(skip, nskip, uuid[k])) uuid[k][0] = '\0'; /* left out: not this time */
            wsum += quota[k];
        }
        /* Weights become shares of the batch, rounded up (at least one). */
        for (int k = 0; rc == TN_OK && k < nt; k++)
            quota[k] = (int)(((int64_t)max * quota[k] + wsum - 1) / wsum);
        /* Pass 0 within each tenant's quota; pass 1 fills the rest in seq order. */
        for (int pass = 0; rc == TN_OK && pass < 2; pass++) {
            for (int i = 0; rc == TN_OK && i < r.n; i++) {
                row *x = &r.v[i];
                if (x->seq < 0) continue; /* taken in pass 0 */
                int k = 0;
                while (tids[k] != x->tenant) k++;
                if (!uuid[k][0]) continue;
                tn__change *ch = find_change(out, x->kind, x->ref);
                if (!ch) {
                    if (out->n >= max || (pass == 0 && given[k] >= quota[k])) continue;
                    ch = &out->changes[out->n++];
                    memset(ch, 0, sizeof *ch);
                    ch->kind = x->kind;
                    ch->ref = x->ref;
                    ch->tombstone_ttl_s = ttl[k];
                    memcpy(ch->tenant_id, uuid[k], sizeof ch->tenant_id);
                    given[k]++;
                }
                rc = add_seq(ch, x->seq);
                x->seq = -1;
            }
        }
        /* Load the current state of every change. */
        for (int i = 0; rc == TN_OK && i < out->n; i++) {
            tn__change *ch = &out->changes[i];
            int k = 0;
            while (strcmp(uuid[k], ch->tenant_id) != 0) k++;
            rc = load_row(c, tids[k], ch);
            /* A row that no longer exists (a purged tombstone) is sent as a
             * delete, which the remote applies idempotently. */
            if (rc == TN_NOTFOUND) {
                ch->deleted = 1;
                rc = TN_OK;
            }
        }
        free(uuid);
        free(ttl);
        free(quota);
    }
    if (!sqlite3_get_autocommit(c->db)) sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    free(r.v);
    free(tids);
    free(given);
    tn__conn_put(st, c);
    if (rc != TN_OK) tn__batch_free(out);
    return rc;
}

int tn__outbox_ack_in(tn__conn *c, const tn__batch *b, const unsigned char *done) {
    sqlite3_stmt *s;
    int rc = tn__stmt(c, SQL_DELETE, &s);
    for (int i = 0; rc == TN_OK && i < b->n; i++) {
        if (done && !done[i]) continue;
        for (int k = 0; rc == TN_OK && k < b->changes[i].nseqs; k++) {
            sqlite3_bind_int64(s, 1, b->changes[i].seqs[k]);
            rc = tn__step_done(c, s);
        }
    }
    return rc;
}

typedef struct ack_args {
    const tn__batch *b;
    const unsigned char *done;
} ack_args;

static int ack_body(tn__conn *c, void *arg) {
    const ack_args *a = arg;
    return tn__outbox_ack_in(c, a->b, a->done);
}

int tn__outbox_ack(tn_store *st, const tn__batch *b, const unsigned char *done) {
    ack_args a = {b, done};
    return tn__trusted_tx(st, ack_body, &a);
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
    return tenant_id ? count(st, SQL_COUNT_TENANT, tenant_id, rows)
                     : count(st, SQL_COUNT_SYNCING, NULL, rows);
}
