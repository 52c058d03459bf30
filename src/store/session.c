/*
 * session.c - tenant sessions: items, file metadata, list cursors (the SQL
 * console is in console.c).
 *
 * Every statement here runs on the session's connection with the guard closed
 * (c->trusted == 0) and names only the tenant views, so each read and write is
 * filtered by current_tenant() inside SQLite.  The session learns the outcome
 * of a write from tn_version(): the triggers call it once per row they change,
 * so c->nversions says whether a row was touched and c->last_version gives its
 * new version without a second query.
 *
 * List cursors are "<base64url(last key)>.<base64url(tag)>", tag being the first
 * 16 bytes of HMAC-SHA256(store secret, kind NUL tenant-id NUL last-key): a
 * cursor is opaque, cannot be forged, and works only for the tenant (and the
 * list) it came from.
 */
#include "store_int.h"

#include "crypto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_TAG 16

int tn__sfail(tn_session *s, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return rc;
}

/* The schema refuses a row over a tenant's quota, and a change tenant SQL
 * may not make, with these words (schema/004_quotas.sql). */
static int over_quota(tn_session *s) {
    return strncmp(sqlite3_errmsg(s->c->db), "quota exceeded", 14) == 0;
}

int tn__sfail_db(tn_session *s, int src) {
    const char *msg = sqlite3_errmsg(s->c->db);
    int rc = over_quota(s) ? TN_QUOTA
             : strncmp(msg, "not authorized", 14) == 0 ? TN_DENIED
                                                       : tn__code(src);
    return tn__sfail(s, rc, "%s", msg);
}

const char *tn_session_errmsg(tn_session *s) {
    return s && s->errmsg[0] ? s->errmsg : "no error";
}

int tn_session_open(tn_store *st, const char *tenant_id, tn_session **out) {
    *out = NULL;
    tn_session *s = calloc(1, sizeof *s);
    if (!s) return tn__fail(st, TN_NOMEM, "out of memory");
    int rc = tn__conn_get(st, 1, &s->c);
    if (rc == TN_OK) rc = tn__tenant_tid(s->c, tenant_id, &s->tid);
    if (rc != TN_OK) {
        tn__conn_put(st, s->c);
        free(s);
        return rc;
    }
    s->st = st;
    snprintf(s->tenant_id, sizeof s->tenant_id, "%s", tenant_id);
    s->c->tenant = s->tid;
    s->c->trusted = 0;
    *out = s;
    return TN_OK;
}

void tn_session_close(tn_session *s) {
    if (!s) return;
    tn__conn_put(s->st, s->c);
    free(s);
}

/* ---- validation ----------------------------------------------------------- */

int tn__item_id_valid(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (n < 1 || n > TN_ITEM_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Length of the UTF-8 sequence at p (shortest form, no surrogates, at most
 * U+10FFFF), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t left) {
    unsigned char b = p[0];
    if (b < 0x80) return 1;
    size_t n;
    uint32_t cp;
    if (b >= 0xc2 && b <= 0xdf) { n = 2; cp = b & 0x1f; }
    else if (b >= 0xe0 && b <= 0xef) { n = 3; cp = b & 0x0f; }
    else if (b >= 0xf0 && b <= 0xf4) { n = 4; cp = b & 0x07; }
    else return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;
    if (cp >= 0x80 && cp <= 0x9f) return 0; /* C1 control characters */
    return n;
}

int tn_file_name_valid(const char *name) {
    size_t len = name ? strlen(name) : 0;
    if (len < 1 || len > TN_FILE_NAME_MAX) return 0;
    const unsigned char *p = (const unsigned char *)name;
    size_t seg = 0; /* start of the current segment */
    for (size_t i = 0; i <= len; i++) {
        if (i == len || p[i] == '/') {
            size_t n = i - seg;
            if (n == 0) return 0; /* leading, trailing or doubled '/' */
            if (n == 1 && p[seg] == '.') return 0;
            if (n == 2 && p[seg] == '.' && p[seg + 1] == '.') return 0;
            seg = i + 1;
            continue;
        }
        if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\') return 0;
        size_t k = utf8_seq(p + i, len - i);
        if (k == 0) return 0;
        i += k - 1;
    }
    return 1;
}

/* ---- cursors -------------------------------------------------------------- */

static void cursor_tag(tn_session *s, const char *kind, const char *key, size_t keylen,
                       unsigned char tag[TN_SHA256_LEN]) {
    size_t kl = strlen(kind), n = kl + 1 + 36 + 1 + keylen;
    unsigned char *msg = malloc(n);
    if (!msg) {
        memset(tag, 0, TN_SHA256_LEN);
        return;
    }
    memcpy(msg, kind, kl);
    msg[kl] = 0;
    memcpy(msg + kl + 1, s->tenant_id, 36);
    msg[kl + 37] = 0;
    memcpy(msg + kl + 38, key, keylen);
    tn__hmac_sha256(s->st->secret, sizeof s->st->secret, msg, n, tag);
    free(msg);
}

static char *cursor_make(tn_session *s, const char *kind, const char *key) {
    size_t kl = strlen(key);
    unsigned char tag[TN_SHA256_LEN];
    cursor_tag(s, kind, key, kl, tag);
    size_t a = tn__b64url_encoded_len(kl), b = tn__b64url_encoded_len(CURSOR_TAG);
    char *out = malloc(a + b + 2);
    if (!out) return NULL;
    tn__b64url_encode((const unsigned char *)key, kl, out);
    out[a] = '.';
    tn__b64url_encode(tag, CURSOR_TAG, out + a + 1);
    return out;
}

/* Decodes a cursor into *key (malloc'd).  TN_INVALID for anything not minted
 * by this store for this tenant and list. */
static int cursor_open(tn_session *s, const char *kind, const char *cursor, char **key) {
    *key = NULL;
    size_t len = strlen(cursor);
    const char *dot = strchr(cursor, '.');
    if (!dot || len > 4 * TN_FILE_NAME_MAX) return tn__sfail(s, TN_INVALID, "bad cursor");
    size_t a = (size_t)(dot - cursor), b = len - a - 1;
    unsigned char tag[CURSOR_TAG + 3], want[TN_SHA256_LEN];
    size_t taglen = 0, keylen = 0;
    char *k = malloc(a + 1);
    if (!k) return tn__sfail(s, TN_NOMEM, "out of memory");
    if (b != tn__b64url_encoded_len(CURSOR_TAG) ||
        tn__b64url_decode(dot + 1, b, tag, &taglen) != 0 || taglen != CURSOR_TAG ||
        tn__b64url_decode(cursor, a, (unsigned char *)k, &keylen) != 0 || keylen == 0 ||
        memchr(k, 0, keylen)) {
        free(k);
        return tn__sfail(s, TN_INVALID, "bad cursor");
    }
    k[keylen] = '\0';
    cursor_tag(s, kind, k, keylen, want);
    if (!tn__ct_equal(tag, want, CURSOR_TAG)) {
        free(k);
        return tn__sfail(s, TN_INVALID, "bad cursor");
    }
    *key = k;
    return TN_OK;
}

/* ---- items ---------------------------------------------------------------- */

static const char SQL_ITEM_PUT[] = "INSERT INTO items (id, data) VALUES (?1, ?2)";
static const char SQL_ITEM_GET[] =
    "SELECT id, data, version, created_at, updated_at FROM items WHERE id = ?1";
static const char SQL_ITEM_EXISTS[] = "SELECT version FROM items WHERE id = ?1";
static const char SQL_ITEM_UPDATE[] =
    "UPDATE items SET data = ?2 WHERE id = ?1 AND (?3 = 0 OR version = ?3)";
static const char SQL_ITEM_DELETE[] = "DELETE FROM items WHERE id = ?1 AND (?2 = 0 OR version = ?2)";
static const char SQL_ITEM_LIST[] =
    "SELECT id, data, version, created_at, updated_at FROM items "
    " WHERE id > ?1 ORDER BY id LIMIT ?2";
static const char SQL_ITEM_COUNT[] = "SELECT count(*) FROM items";

void tn_item_clear(tn_item *it) {
    if (!it) return;
    free(it->id);
    free(it->data);
    memset(it, 0, sizeof *it);
}

static void item_view(sqlite3_stmt *q, tn_item *it) {
    it->id = (char *)sqlite3_column_text(q, 0);
    it->data = (char *)sqlite3_column_text(q, 1);
    it->version = sqlite3_column_int64(q, 2);
    it->created_at = sqlite3_column_int64(q, 3);
    it->updated_at = sqlite3_column_int64(q, 4);
}

static int item_copy(tn_session *s, const tn_item *in, tn_item *out) {
    out->id = strdup(in->id ? in->id : "");
    out->data = strdup(in->data ? in->data : "null");
    out->version = in->version;
    out->created_at = in->created_at;
    out->updated_at = in->updated_at;
    if (!out->id || !out->data) {
        tn_item_clear(out);
        return tn__sfail(s, TN_NOMEM, "out of memory");
    }
    return TN_OK;
}

int tn_item_get(tn_session *s, const char *id, tn_item *out) {
    if (!tn__item_id_valid(id)) return tn__sfail(s, TN_NOTFOUND, "no such item");
    sqlite3_stmt *q;
    int rc = tn__stmt(s->c, SQL_ITEM_GET, &q);
    if (rc != TN_OK) return tn__sfail(s, rc, "%s", tn_errmsg(s->st));
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        tn_item v;
        item_view(q, &v);
        rc = out ? item_copy(s, &v, out) : TN_OK;
    } else {
        rc = src == SQLITE_DONE ? tn__sfail(s, TN_NOTFOUND, "no such item") : tn__sfail_db(s, src);
    }
    sqlite3_reset(q);
    return rc;
}

/* Runs a prepared write through the views; *touched says whether any row was
 * changed.  Maps constraint failures to TN_INVALID with a readable reason. */
static int run_write(tn_session *s, sqlite3_stmt *q, int *touched) {
    s->c->nversions = 0;
    int src = sqlite3_step(q);
    sqlite3_reset(q);
    if (touched) *touched = s->c->nversions > 0;
    if (src == SQLITE_DONE) return TN_OK;
    /* A CHECK constraint: the only one a valid id can fail is the JSON's.
     * The schema's triggers say what they refuse (quota, rules). */
    if ((src & 0xff) == SQLITE_CONSTRAINT && src != SQLITE_CONSTRAINT_TRIGGER)
        return tn__sfail(s, TN_INVALID, "data is not valid JSON");
    return tn__sfail_db(s, src);
}

static int item_prepare(tn_session *s, const char *sql, sqlite3_stmt **q) {
    int rc = tn__hlc_ensure(s->c);
    if (rc == TN_OK) rc = tn__stmt(s->c, sql, q);
    return rc == TN_OK ? TN_OK : tn__sfail(s, rc, "%s", tn_errmsg(s->st));
}

/* The arguments of a write, for the group-commit leader (src/group.c). */
typedef struct write_args {
    const char *id, *json, *sha256, *content_type;
    int64_t expected, size;
    tn_item *item;
    tn_file *file;
    int filled; /* item or file holds a result */
} write_args;

/* The leader may run a write again when its group's transaction was lost
 * (src/group.c): the result of the earlier run goes first. */
static void write_again(write_args *a) {
    if (!a->filled) return;
    if (a->item) tn_item_clear(a->item);
    if (a->file) tn_file_clear(a->file);
    a->filled = 0;
}

static int put_body(tn_session *s, void *arg) {
    write_args *a = arg;
    write_again(a);
    sqlite3_stmt *q;
    int rc = item_prepare(s, SQL_ITEM_PUT, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, a->json, -1, SQLITE_STATIC);
    rc = run_write(s, q, NULL);
    if (rc == TN_OK && a->item) a->filled = (rc = tn_item_get(s, a->id, a->item)) == TN_OK;
    return rc;
}

static int create_body(tn_session *s, void *arg) {
    write_args *a = arg;
    int rc = tn_item_get(s, a->id, NULL);
    if (rc == TN_OK) return tn__sfail(s, TN_EXISTS, "an item with that id exists");
    return rc == TN_NOTFOUND ? put_body(s, a) : rc;
}

static int put_or_create(tn_session *s, const char *id, const char *json, tn_item *out,
                         tn__op_fn body) {
    char fresh[37];
    if (!id) {
        tn__uuid4(fresh);
        id = fresh;
    }
    if (!tn__item_id_valid(id))
        return tn__sfail(s, TN_INVALID, "an item id is 1-%d characters of A-Z a-z 0-9 . _ : -",
                     TN_ITEM_ID_MAX);
    if (!json) return tn__sfail(s, TN_INVALID, "no data");
    write_args a = {.id = id, .json = json, .item = out};
    return tn__group_write(s, body, &a);
}

int tn_item_put(tn_session *s, const char *id, const char *json, tn_item *out) {
    return put_or_create(s, id, json, out, put_body);
}

int tn_item_create(tn_session *s, const char *id, const char *json, tn_item *out) {
    return put_or_create(s, id, json, out, create_body);
}

/* After a conditional write touched nothing: stale version, or no item? */
static int why_untouched(tn_session *s, const char *id) {
    sqlite3_stmt *q;
    int rc = tn__stmt(s->c, SQL_ITEM_EXISTS, &q);
    if (rc != TN_OK) return tn__sfail(s, rc, "%s", tn_errmsg(s->st));
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int src = sqlite3_step(q);
    sqlite3_reset(q);
    if (src == SQLITE_ROW) return tn__sfail(s, TN_CONFLICT, "the item has a newer version");
    if (src == SQLITE_DONE) return tn__sfail(s, TN_NOTFOUND, "no such item");
    return tn__sfail_db(s, src);
}

static int item_conditional(tn_session *s, const char *sql, const char *id, const char *json,
                            int64_t expected) {
    if (!tn__item_id_valid(id)) return tn__sfail(s, TN_NOTFOUND, "no such item");
    if (expected < 0) return tn__sfail(s, TN_INVALID, "bad version");
    sqlite3_stmt *q;
    int rc = item_prepare(s, sql, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int vpos = 2;
    if (json) sqlite3_bind_text(q, vpos++, json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, vpos, expected);
    int touched = 0;
    rc = run_write(s, q, &touched);
    if (rc == TN_OK && !touched) rc = why_untouched(s, id);
    return rc;
}

static int update_body(tn_session *s, void *arg) {
    write_args *a = arg;
    write_again(a);
    int rc = item_conditional(s, SQL_ITEM_UPDATE, a->id, a->json, a->expected);
    if (rc == TN_OK && a->item) a->filled = (rc = tn_item_get(s, a->id, a->item)) == TN_OK;
    return rc;
}

static int delete_body(tn_session *s, void *arg) {
    write_args *a = arg;
    return item_conditional(s, SQL_ITEM_DELETE, a->id, NULL, a->expected);
}

int tn_item_update(tn_session *s, const char *id, const char *json, int64_t expected_version,
                   tn_item *out) {
    if (!json) return tn__sfail(s, TN_INVALID, "no data");
    write_args a = {.id = id, .json = json, .expected = expected_version, .item = out};
    return tn__group_write(s, update_body, &a);
}

int tn_item_delete(tn_session *s, const char *id, int64_t expected_version) {
    write_args a = {.id = id, .expected = expected_version};
    return tn__group_write(s, delete_body, &a);
}

int tn_item_count(tn_session *s, int64_t *count) {
    sqlite3_stmt *q;
    int rc = tn__stmt(s->c, SQL_ITEM_COUNT, &q);
    if (rc != TN_OK) return tn__sfail(s, rc, "%s", tn_errmsg(s->st));
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) *count = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return src == SQLITE_ROW ? TN_OK : tn__sfail_db(s, src);
}

/*
 * One page of a keyset listing: rows with key > the cursor's, in key order.
 * Reads limit+1 rows so it knows whether a next page exists.
 */
static int list_page(tn_session *s, const char *kind, const char *sql, const char *cursor,
                     int limit, int (*row)(sqlite3_stmt *q, void *fn, void *arg), void *fn,
                     void *arg, char **next_cursor) {
    if (next_cursor) *next_cursor = NULL;
    if (limit < 1 || limit > 10000) return tn__sfail(s, TN_INVALID, "limit must be 1-10000");
    char *after = NULL;
    if (cursor && *cursor) {
        int rc = cursor_open(s, kind, cursor, &after);
        if (rc != TN_OK) return rc;
    }
    sqlite3_stmt *q;
    int rc = tn__stmt(s->c, sql, &q);
    if (rc != TN_OK) {
        free(after);
        return tn__sfail(s, rc, "%s", tn_errmsg(s->st));
    }
    sqlite3_bind_text(q, 1, after ? after : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 2, limit + 1);
    free(after);
    int n = 0, src, stopped = 0;
    char *last = NULL;
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == limit) break; /* the extra row: there is a next page */
        free(last);
        last = strdup((const char *)sqlite3_column_text(q, 0));
        n++;
        if (row(q, fn, arg)) {
            stopped = 1;
            break;
        }
    }
    int more = src == SQLITE_ROW && !stopped;
    sqlite3_reset(q);
    if (src != SQLITE_ROW && src != SQLITE_DONE) {
        free(last);
        return tn__sfail_db(s, src);
    }
    if (more && next_cursor && last) {
        *next_cursor = cursor_make(s, kind, last);
        if (!*next_cursor) rc = tn__sfail(s, TN_NOMEM, "out of memory");
    }
    free(last);
    return rc;
}

static int item_row(sqlite3_stmt *q, void *fn, void *arg) {
    tn_item it;
    item_view(q, &it);
    return ((tn_item_fn)fn)(&it, arg);
}

int tn_item_list(tn_session *s, const char *cursor, int limit, tn_item_fn fn, void *arg,
                 char **next_cursor) {
    return list_page(s, "items", SQL_ITEM_LIST, cursor, limit, item_row, (void *)fn, arg,
                     next_cursor);
}

/* ---- files ---------------------------------------------------------------- */

static const char SQL_FILE_PUT[] =
    "INSERT INTO files (name, size, sha256, content_type) VALUES (?1, ?2, ?3, ?4)";
static const char SQL_FILE_GET[] =
    "SELECT name, size, sha256, content_type, version, created_at, updated_at "
    "  FROM files WHERE name = ?1";
static const char SQL_FILE_DELETE[] = "DELETE FROM files WHERE name = ?1";
static const char SQL_FILE_LIST[] =
    "SELECT name, size, sha256, content_type, version, created_at, updated_at "
    "  FROM files WHERE name > ?1 ORDER BY name LIMIT ?2";
/* The tenant's usage row when it has a quota (kept by the schema: no scan);
 * else the sum, with total(), a float that cannot overflow whatever rows an
 * older store holds.  coalesce() runs the second subquery only when needed. */
static const char SQL_FILE_BYTES[] =
    "SELECT coalesce((SELECT file_bytes FROM usage),"
    "                (SELECT min(total(size), 9.2e18) FROM files))";

void tn_file_clear(tn_file *f) {
    if (!f) return;
    free(f->name);
    free(f->content_type);
    memset(f, 0, sizeof *f);
}

static void file_view(sqlite3_stmt *q, tn_file *f) {
    memset(f, 0, sizeof *f);
    f->name = (char *)sqlite3_column_text(q, 0);
    f->size = sqlite3_column_int64(q, 1);
    snprintf(f->sha256, sizeof f->sha256, "%s", (const char *)sqlite3_column_text(q, 2));
    f->content_type = (char *)sqlite3_column_text(q, 3);
    f->version = sqlite3_column_int64(q, 4);
    f->created_at = sqlite3_column_int64(q, 5);
    f->updated_at = sqlite3_column_int64(q, 6);
}

int tn_file_get(tn_session *s, const char *name, tn_file *out) {
    if (!tn_file_name_valid(name)) return tn__sfail(s, TN_NOTFOUND, "no such file");
    sqlite3_stmt *q;
    int rc = tn__stmt(s->c, SQL_FILE_GET, &q);
    if (rc != TN_OK) return tn__sfail(s, rc, "%s", tn_errmsg(s->st));
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        if (out) {
            tn_file v;
            file_view(q, &v);
            *out = v;
            out->name = strdup(v.name);
            out->content_type = strdup(v.content_type ? v.content_type : "");
            if (!out->name || !out->content_type) {
                tn_file_clear(out);
                rc = tn__sfail(s, TN_NOMEM, "out of memory");
            }
        }
    } else {
        rc = src == SQLITE_DONE ? tn__sfail(s, TN_NOTFOUND, "no such file") : tn__sfail_db(s, src);
    }
    sqlite3_reset(q);
    return rc;
}

static int sha_valid(const char *h) {
    if (!h || strlen(h) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) return 0;
    return 1;
}

/* At most 255 bytes, no control characters. */
static int content_type_valid(const char *ct) {
    size_t n = strlen(ct);
    if (n > 255) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ct[i] < 0x20 || ct[i] == 0x7f) return 0;
    return 1;
}

static int file_record_body(tn_session *s, void *arg) {
    write_args *a = arg;
    write_again(a);
    sqlite3_stmt *q;
    int rc = item_prepare(s, SQL_FILE_PUT, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, a->size);
    sqlite3_bind_text(q, 3, a->sha256, -1, SQLITE_STATIC);
    if (a->content_type) sqlite3_bind_text(q, 4, a->content_type, -1, SQLITE_STATIC);
    s->c->file_write = 1;
    rc = run_write(s, q, NULL);
    s->c->file_write = 0;
    if (rc == TN_OK && a->file) a->filled = (rc = tn_file_get(s, a->id, a->file)) == TN_OK;
    return rc;
}

int tn_file_record(tn_session *s, const char *name, int64_t size, const char *sha256_hex,
                   const char *content_type, tn_file *out) {
    if (!tn_file_name_valid(name)) return tn__sfail(s, TN_INVALID, "bad file name");
    if (size < 0 || size > TN_FILE_SIZE_MAX || !sha_valid(sha256_hex))
        return tn__sfail(s, TN_INVALID, "bad size or checksum");
    if (content_type && !content_type_valid(content_type))
        return tn__sfail(s, TN_INVALID, "bad content type");
    write_args a = {.id = name, .size = size, .sha256 = sha256_hex,
                    .content_type = content_type, .file = out};
    return tn__group_write(s, file_record_body, &a);
}

static int file_delete_body(tn_session *s, void *arg) {
    write_args *a = arg;
    sqlite3_stmt *q;
    int rc = item_prepare(s, SQL_FILE_DELETE, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, a->id, -1, SQLITE_STATIC);
    int touched = 0;
    s->c->file_write = 1;
    rc = run_write(s, q, &touched);
    s->c->file_write = 0;
    if (rc == TN_OK && !touched) rc = tn__sfail(s, TN_NOTFOUND, "no such file");
    return rc;
}

int tn_file_delete(tn_session *s, const char *name) {
    if (!tn_file_name_valid(name)) return tn__sfail(s, TN_NOTFOUND, "no such file");
    write_args a = {.id = name};
    return tn__group_write(s, file_delete_body, &a);
}

static int file_row(sqlite3_stmt *q, void *fn, void *arg) {
    tn_file f;
    file_view(q, &f);
    return ((tn_file_fn)fn)(&f, arg);
}

int tn_file_list(tn_session *s, const char *cursor, int limit, tn_file_fn fn, void *arg,
                 char **next_cursor) {
    return list_page(s, "files", SQL_FILE_LIST, cursor, limit, file_row, (void *)fn, arg,
                     next_cursor);
}

int tn_file_bytes(tn_session *s, int64_t *bytes) {
    sqlite3_stmt *q;
    int rc = tn__stmt(s->c, SQL_FILE_BYTES, &q);
    if (rc != TN_OK) return tn__sfail(s, rc, "%s", tn_errmsg(s->st));
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) *bytes = (int64_t)sqlite3_column_double(q, 0);
    sqlite3_reset(q);
    return src == SQLITE_ROW ? TN_OK : tn__sfail_db(s, src);
}

int tn_session_file_path(tn_session *s, const char *name, char **path) {
    *path = NULL;
    if (!tn_file_name_valid(name)) return tn__sfail(s, TN_INVALID, "bad file name");
    size_t n = strlen(s->st->dir) + strlen(name) + 64;
    char *p = malloc(n);
    if (!p) return tn__sfail(s, TN_NOMEM, "out of memory");
    snprintf(p, n, "%s/files/%s/%s", s->st->dir, s->tenant_id, name);
    *path = p;
    return TN_OK;
}
