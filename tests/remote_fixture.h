/*
 * remote_fixture.h - helpers of the remote suites (test_remote.c, the
 * conformance suite every backend passes, and test_remote_dir.c, the
 * directory backend's own): opening the remote TN_REMOTE_SPEC names, fresh
 * tenants, rows as the store makes them, and reading rows back out of their
 * pages (list, changes) into copies a test can keep.
 */
#ifndef TN_REMOTE_FIXTURE_H
#define TN_REMOTE_FIXTURE_H

#include "harness.h"

#include "crypto.h"
#include "dir.h"
#include "remote_aws.h"
#include "remote.h"
#include "tenantry.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- the fixture -------------------------------------------------------------- */

static inline const char *remote_spec(void) {
    static char buf[4200];
    const char *s = getenv("TN_REMOTE_SPEC");
    if (s && *s) return s;
    if (!buf[0]) snprintf(buf, sizeof buf, "dir:%s", tn_test_tmpdir());
    return buf;
}

static inline tn_remote *open_remote(void) {
    tn_remote_register("dir", tn_remote_dir_open);
    tn_remote_register("aws", tn_remote_aws_open);
    tn_remote *r = NULL;
    char err[256] = "";
    int rc = tn_remote_open(remote_spec(), &r, err, sizeof err);
    if (rc != TN_OK) TN_FAIL_("opening the remote: %s (%s)", err, tn_errname(rc));
    const char *what = "";
    rc = r->m->init(r, &what);
    if (rc != TN_OK) TN_FAIL_("init: %s (%s)", what, tn_errname(rc));
    ASSERT(r->m->version >= 2);
    ASSERT(r->batch_rows >= 1 && r->batch_rows <= 100);
    return r;
}

static inline tn_remote_conn *open_conn(tn_remote *r) {
    tn_remote_conn *c = NULL;
    ASSERT_INT_EQ(r->m->conn_open(r, 0, &c), TN_OK);
    ASSERT(c != NULL);
    return c;
}

static inline void close_all(tn_remote *r, tn_remote_conn *c) {
    r->m->conn_close(c);
    tn_remote_close(r);
}

static inline void new_tenant(char out[37]) {
    unsigned char b[16];
    ASSERT(getrandom(b, sizeof b, 0) == (ssize_t)sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static inline int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A version as the store makes them: ms << 16, so 57 bits. */
static inline int64_t base_version(void) {
    return now_ms() << 16;
}

static inline tn_remote_row item_row(const char *tenant, const char *id, int64_t v,
                                     const char *data) {
    tn_remote_row r;
    memset(&r, 0, sizeof r);
    memcpy(r.tenant, tenant, strnlen(tenant, sizeof r.tenant - 1)); /* r is zeroed */
    r.kind = TN_REMOTE_ITEM;
    r.key = id;
    r.version = v;
    r.updated_at = now_ms();
    r.data = data;
    return r;
}

static inline tn_remote_row tomb_row(const char *tenant, int kind, const char *key, int64_t v) {
    tn_remote_row r = item_row(tenant, key, v, NULL);
    r.kind = kind;
    r.deleted = 1;
    r.expires_at = now_ms() / 1000 + 30 * 86400;
    return r;
}

/* sha must outlive the row. */
static inline tn_remote_row file_row(const char *tenant, const char *name, int64_t v,
                                     const void *bytes, size_t n, char sha[65]) {
    tn_remote_row r = item_row(tenant, name, v, NULL);
    r.kind = TN_REMOTE_FILE;
    tn__sha256_hex(bytes, n, sha);
    r.sha256 = sha;
    r.size = (int64_t)n;
    r.content_type = "application/octet-stream";
    return r;
}

static inline tn_remote_put put1(tn_remote *r, tn_remote_conn *c, const tn_remote_row *row) {
    tn_remote_put o = {-99, -99};
    r->m->put_rows(c, row, 1, &o);
    return o;
}

static inline int64_t version_of(tn_remote *r, tn_remote_conn *c, const tn_remote_row *row) {
    int64_t v = -99;
    ASSERT_INT_EQ(r->m->versions(c, row, 1, &v), TN_OK);
    return v;
}

/* Writes rows[0..n) in batches of the backend's size; every answer TN_OK. */
static inline void put_all_ok(tn_remote *r, tn_remote_conn *c, const tn_remote_row *rows, int n) {
    tn_remote_put *out = malloc((size_t)n * sizeof *out);
    ASSERT(out);
    for (int i = 0; i < n; i += r->batch_rows) {
        int m = n - i < r->batch_rows ? n - i : r->batch_rows;
        r->m->put_rows(c, rows + i, m, out + i);
    }
    for (int i = 0; i < n; i++)
        if (out[i].code != TN_OK) TN_FAIL_("row %d (%s): %s", i, rows[i].key, tn_errname(out[i].code));
    free(out);
}

static inline int json_same(const char *a, const char *b) {
    if (!a || !b) return 0;
    cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
    int same = x && y && cJSON_Compare(x, y, 1);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return same;
}

/* ---- rows read back, copied out of their pages ---------------------------- */

typedef struct got_row {
    char tenant[37];
    int kind, deleted;
    char *key, *data, *sha256;
    int64_t version, updated_at, expires_at, size, feed;
} got_row;

typedef struct got {
    got_row *r;
    int n, cap, refused, pages;
} got;

static inline char *dup_or_null(const char *s) {
    if (!s) return NULL;
    char *d = strdup(s);
    ASSERT(d);
    return d;
}

static inline void got_add(got *g, const tn_remote_page *p) {
    g->pages++;
    g->refused += p->refused;
    for (int i = 0; i < p->n; i++) {
        if (g->n == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 64;
            g->r = realloc(g->r, (size_t)g->cap * sizeof *g->r);
            ASSERT(g->r);
        }
        const tn_remote_row *s = &p->rows[i];
        got_row *d = &g->r[g->n++];
        memcpy(d->tenant, s->tenant, sizeof d->tenant);
        d->kind = s->kind;
        d->deleted = s->deleted;
        d->key = dup_or_null(s->key);
        d->data = dup_or_null(s->data);
        d->sha256 = dup_or_null(s->sha256);
        d->version = s->version;
        d->updated_at = s->updated_at;
        d->expires_at = s->expires_at;
        d->size = s->size;
        d->feed = s->feed;
    }
}

static inline void got_free(got *g) {
    for (int i = 0; i < g->n; i++) {
        free(g->r[i].key);
        free(g->r[i].data);
        free(g->r[i].sha256);
    }
    free(g->r);
    memset(g, 0, sizeof *g);
}

/* The last row read for (kind, key): the newest when the feed repeats one. */
static inline const got_row *got_find(const got *g, int kind, const char *key) {
    const got_row *f = NULL;
    for (int i = 0; i < g->n; i++)
        if (g->r[i].kind == kind && strcmp(g->r[i].key, key) == 0 &&
            (!f || g->r[i].version >= f->version))
            f = &g->r[i];
    return f;
}

static inline got list_all(tn_remote *r, tn_remote_conn *c, const char *tenant) {
    got g = {0};
    char token[1024] = "";
    for (int guard = 0; guard < 100000; guard++) {
        tn_remote_page p = {0};
        ASSERT_INT_EQ(r->m->list(c, tenant, token, &p), TN_OK);
        got_add(&g, &p);
        snprintf(token, sizeof token, "%s", p.next);
        tn_remote_page_free(&p);
        if (!token[0]) return g;
    }
    TN_FAIL_("list never ended");
}

/* Reads tenant's feed from cursor until the backend says it is caught up
 * (out->next empty), max rows a page; cursor advances.  Each page's rows come
 * in push order.  A row may come back more than once. */
static inline void drain(tn_remote *r, tn_remote_conn *c, const char *tenant, char cursor[256], int max,
                         got *g) {
    for (int guard = 0; guard < 100000; guard++) {
        tn_remote_page p = {0};
        char next[256] = "";
        ASSERT_INT_EQ(r->m->changes(c, tenant, cursor, max, &p, next), TN_OK);
        ASSERT(p.n <= max);
        for (int i = 0; i < p.n; i++) {
            ASSERT_STR_EQ(p.rows[i].tenant, tenant);
            /* In push order; two writers may push in the same instant. */
            if (i > 0) ASSERT(p.rows[i].feed >= p.rows[i - 1].feed);
        }
        int more = p.next[0] != '\0';
        got_add(g, &p);
        tn_remote_page_free(&p);
        ASSERT(strlen(next) < 256);
        /* "Call again now" must make progress; caught up, a backend may hand
         * the same cursor back (it re-reads an overlap window). */
        if (more && strcmp(next, cursor) == 0) TN_FAIL_("more rows announced but the cursor did not move");
        snprintf(cursor, 256, "%s", next);
        if (!more) return;
    }
    TN_FAIL_("the feed never ended");
}

static inline unsigned char *random_bytes(size_t n) {
    unsigned char *p = malloc(n ? n : 1);
    ASSERT(p);
    for (size_t off = 0; off < n;) {
        ssize_t g = getrandom(p + off, n - off > 65536 ? 65536 : n - off, 0);
        ASSERT(g > 0);
        off += (size_t)g;
    }
    return p;
}

/* get_object into a fresh file; returns its bytes (caller frees). */
static inline char *fetch(tn_remote *r, tn_remote_conn *c, const tn_remote_row *f, size_t *len,
                          int *rc) {
    char path[4200];
    static int k;
    snprintf(path, sizeof path, "%s/fetch-%d", tn_test_tmpdir(), k++);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0);
    *rc = r->m->get_object(c, f, fd);
    close(fd);
    char *text = tn_test_slurp(path, len);
    ASSERT(text);
    unlink(path);
    return text;
}

#endif
