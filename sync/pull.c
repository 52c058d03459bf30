/*
 * pull.c - the way back from the remote (see pull.h): pulling what other
 * writers pushed, restoring or joining tenants, purging deleted tenants,
 * mirroring each tenant's own row, and verifying local against remote.
 *
 * A page of rows is applied in two steps.  First, without holding the write
 * lock, each row is weighed by the conflict rule (store/apply.c) and the
 * bytes of each file row that would win are fetched into a temporary file
 * beside its target and checked against the row's SHA-256.  Then, in one
 * transaction, each row is weighed again (a local write may have come in
 * between), winning files are renamed into place, the rows are written, the
 * outbox rows they queued are dropped (no echo) and the tenant's cursor moves
 * past the page: a crash replays the page, never skips it.
 */
#include "pull.h"

#include "clock.h"
#include "conn.h"
#include "crypto.h"
#include "digest.h"
#include "json_check.h"
#include "outbox.h"
#include "remote.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE_ROWS 500

static int stopping(const tn_remote *r) { return r->stop && *r->stop; }

/* ---- files ------------------------------------------------------------------ */

static int mkdirs(char *path) {
    /* Every directory above the last '/' of path. */
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST) return TN_IO;
    }
    return TN_OK;
}

static void fsync_dir_of(const char *path) {
    char *d = strdup(path);
    char *slash = d ? strrchr(d, '/') : NULL;
    if (slash) {
        *slash = '\0';
        int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    free(d);
}

/* The object of file row f into fd, checked against the row's SHA-256:
 * TN_INVALID when the bytes are not the row's. */
static int get_checked(tn_remote *r, tn_remote_conn *c, const tn_remote_row *f, int fd) {
    int rc = r->m->get_object(c, f, fd);
    char hex[65];
    if (rc == TN_OK && (tn__digest_fd_hex(fd, hex) != TN_OK || !f->sha256 || strcmp(hex, f->sha256) != 0))
        rc = TN_INVALID;
    return rc;
}

/* The bytes of file row f, fetched into a temporary file beside its place
 * and checked: *tmp (malloc'd) is ready to be renamed to *dest. */
static int fetch_file(tn_store *st, tn_remote *r, tn_remote_conn *c, const tn_remote_row *f,
                      char **tmp, char **dest) {
    *tmp = *dest = NULL;
    tn_session *s;
    int rc = tn_session_open(st, f->tenant, &s);
    if (rc != TN_OK) return rc;
    rc = tn_session_file_path(s, f->key, dest);
    tn_session_close(s);
    if (rc != TN_OK) return rc;
    size_t n = strlen(*dest) + 16;
    *tmp = malloc(n);
    if (!*tmp) return TN_NOMEM;
    snprintf(*tmp, n, "%s.pull.XXXXXX", *dest);
    if ((rc = mkdirs(*tmp)) != TN_OK) return rc;
    int fd = mkstemp(*tmp);
    if (fd < 0) return TN_IO;
    /* Bytes that do not match their row never count. */
    rc = get_checked(r, c, f, fd);
    struct stat sb;
    if (rc == TN_OK && (fstat(fd, &sb) != 0 || sb.st_size != f->size)) rc = TN_INVALID;
    if (rc == TN_OK && fsync(fd) != 0) rc = TN_IO;
    close(fd);
    if (rc != TN_OK) unlink(*tmp);
    return rc;
}

/* Work spread over up to `workers` connections (the caller's, and more
 * opened here: downloads are bound by round trips and the server, not by
 * this CPU): fn(arg, conn, k) for each k below n, until the remote stops. */
#define MAX_FETCHERS 8

typedef void (*par_fn)(void *arg, tn_remote_conn *c, int k);

typedef struct par_job {
    tn_remote *r;
    par_fn fn;
    void *arg;
    int n;
    int next; /* atomic: the next k */
} par_job;

static void par_some(par_job *j, tn_remote_conn *c) {
    for (;;) {
        int k = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (k >= j->n || stopping(j->r)) break;
        j->fn(j->arg, c, k);
    }
}

static void *par_thread(void *arg) {
    par_job *j = arg;
    tn_remote_conn *c;
    if (j->r->m->conn_open(j->r, 0, &c) != TN_OK) return NULL; /* the others go on */
    par_some(j, c);
    j->r->m->conn_close(c);
    return NULL;
}

static void par_run(tn_remote *r, tn_remote_conn *c, int n, int workers, par_fn fn, void *arg) {
    par_job j = {r, fn, arg, n, 0};
    pthread_t th[MAX_FETCHERS];
    int nth = workers < n ? workers : n, started = 0;
    if (nth > MAX_FETCHERS) nth = MAX_FETCHERS;
    for (int t = 1; t < nth; t++) {
        if (pthread_create(&th[started], NULL, par_thread, &j) != 0) break;
        started++;
    }
    par_some(&j, c);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
}

/* Fetching the winning files of a page. */
typedef struct fetch_job {
    tn_store *st;
    tn_remote *r;
    const tn_remote_page *page;
    const int *todo; /* page rows to fetch */
    int n;
    char **tmp, **dest;
    int *frc;        /* each todo entry's result */
} fetch_job;

static void fetch_one(void *arg, tn_remote_conn *c, int k) {
    fetch_job *j = arg;
    int i = j->todo[k];
    j->frc[k] = fetch_file(j->st, j->r, c, &j->page->rows[i], &j->tmp[i], &j->dest[i]);
}

/* ---- applying a page ------------------------------------------------------------ */

static void incoming_of(const tn_remote_row *row, tn__incoming *in) {
    memset(in, 0, sizeof *in);
    in->kind = row->kind == TN_REMOTE_FILE ? TN__KIND_FILE : TN__KIND_ITEM;
    in->key = row->key;
    in->version = row->version;
    in->deleted = row->deleted;
    in->updated_at = row->updated_at;
    in->data = row->data;
    in->size = row->size;
    in->sha256 = row->sha256;
    in->content_type = row->content_type;
}

/* Whether a pulled row is one this page may apply at all. */
static int usable(const tn_remote_row *row, const char *tenant) {
    if (strcmp(row->tenant, tenant) != 0) return 0;
    if (row->kind != TN_REMOTE_ITEM && row->kind != TN_REMOTE_FILE) return 0;
    tn__remote_key k;
    int rc = tn__remote_key_build(row->tenant, row->kind, row->key, &k);
    tn__remote_key_free(&k);
    if (rc != TN_OK || row->version <= 0) return 0;
    if (row->deleted) return 1;
    if (row->kind == TN_REMOTE_ITEM) return row->data && tn__json_valid(row->data, strlen(row->data), 64);
    return row->size >= 0 && row->sha256 && strlen(row->sha256) == 64;
}

/* Applies the item and file rows of page for tenant; cursor (NULL: leave it)
 * is stored with them. */
static int apply_page(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *tenant,
                      const tn_remote_page *page, const char *cursor, int at_end, int fetchers,
                      tn__pull_stats *ps) {
    int n = page->n, rc = TN_OK;
    int64_t refused = page->refused;
    char **tmp = calloc((size_t)(n ? n : 1), sizeof *tmp);
    char **dest = calloc((size_t)(n ? n : 1), sizeof *dest);
    unsigned char *ok = calloc((size_t)(n ? n : 1), 1);
    int *todo = calloc((size_t)(n ? n : 1), sizeof *todo);
    int *frc = calloc((size_t)(n ? n : 1), sizeof *frc);
    if (!tmp || !dest || !ok || !todo || !frc) rc = TN_NOMEM;
    /* 1. Weigh, and fetch the bytes of winning files, without the lock. */
    tn__apply *a = NULL;
    if (rc == TN_OK) rc = tn__apply_begin(st, tenant, &a);
    for (int i = 0; rc == TN_OK && i < n; i++) {
        const tn_remote_row *row = &page->rows[i];
        if (row->kind == TN_REMOTE_TENANT) continue;
        if (!usable(row, tenant)) {
            refused++;
            continue;
        }
        tn__incoming in;
        incoming_of(row, &in);
        int outcome, drc = tn__apply_decide(a, &in, &outcome);
        if (drc == TN_INVALID) {
            refused++; /* a version from too far in the future */
            continue;
        }
        if (drc != TN_OK) rc = drc;
        ok[i] = outcome == TN__APPLIED;
        if (outcome == TN__KEPT_LOCAL && ps) ps->kept_local++;
    }
    tn__apply_abort(a);
    a = NULL;
    fetch_job fj = {st, r, page, todo, 0, tmp, dest, frc};
    for (int i = 0; rc == TN_OK && i < n; i++)
        if (ok[i] && page->rows[i].kind == TN_REMOTE_FILE && !page->rows[i].deleted) {
            frc[fj.n] = TN_BUSY; /* not reached: stopped */
            todo[fj.n++] = i;
        }
    if (rc == TN_OK && fj.n) par_run(r, c, fj.n, fetchers, fetch_one, &fj);
    for (int k = 0; rc == TN_OK && k < fj.n; k++) {
        int i = todo[k];
        if (frc[k] == TN_INVALID || frc[k] == TN_NOTFOUND || frc[k] == TN_TOOBIG) {
            /* Bytes that do not match the row, or no object: not applied,
             * reported.  Usually a race: a newer write replaced the object
             * after this row was read, and its own row comes next. */
            ok[i] = 0;
            refused++;
        } else if (frc[k] != TN_OK) {
            rc = frc[k]; /* the network: the page is tried again later */
        } else if (ps) {
            ps->bytes += page->rows[i].size;
        }
    }
    if (rc == TN_OK && stopping(r)) rc = TN_BUSY;
    /* 2. One transaction: weigh again, place the bytes, write the rows. */
    if (rc == TN_OK) rc = tn__apply_begin(st, tenant, &a);
    for (int i = 0; rc == TN_OK && i < n; i++) {
        if (!ok[i]) continue;
        const tn_remote_row *row = &page->rows[i];
        tn__incoming in;
        incoming_of(row, &in);
        int outcome;
        if ((rc = tn__apply_decide(a, &in, &outcome)) != TN_OK) break;
        if (outcome != TN__APPLIED) {
            ok[i] = 0;
            continue;
        }
        if (tmp[i]) {
            if (rename(tmp[i], dest[i]) != 0) {
                rc = TN_IO;
                break;
            }
            free(tmp[i]);
            tmp[i] = NULL;
            fsync_dir_of(dest[i]);
        }
        if ((rc = tn__apply_row(a, &in, &outcome)) != TN_OK) break;
        if (ps && outcome == TN__APPLIED_OVER_LOCAL) ps->conflicts++;
        if (ps) {
            if (row->kind == TN_REMOTE_FILE) ps->files++;
            else ps->items++;
        }
    }
    if (rc == TN_OK) {
        rc = tn__apply_commit(a, cursor, at_end, refused);
        a = NULL;
    }
    tn__apply_abort(a);
    if (ps) ps->refused += refused;
    /* Files deleted remotely leave this store's disk too (their row is a
     * tombstone now). */
    for (int i = 0; rc == TN_OK && i < n; i++) {
        const tn_remote_row *row = &page->rows[i];
        if (!ok[i] || row->kind != TN_REMOTE_FILE || !row->deleted) continue;
        tn_session *s;
        char *path = NULL;
        if (tn_session_open(st, tenant, &s) == TN_OK) {
            if (tn_session_file_path(s, row->key, &path) == TN_OK) unlink(path);
            tn_session_close(s);
        }
        free(path);
    }
    for (int i = 0; tmp && i < n; i++) {
        if (tmp[i]) unlink(tmp[i]);
        free(tmp[i]);
        if (dest) free(dest[i]);
    }
    free(tmp);
    free(dest);
    free(ok);
    free(todo);
    free(frc);
    return rc;
}

/* ---- tenant rows --------------------------------------------------------------- */

/* A tenant row's hash: what was last applied or pushed. */
static void row_hash(const char *json, char out[65]) { tn__sha256_hex(json, strlen(json), out); }

/* Applies a tenant row read from the remote: the name and settings, or the
 * marker of a deleted tenant (*gone). */
static int apply_tenant_row(tn_store *st, const tn_remote_row *row, int *gone) {
    *gone = row->deleted;
    if (row->deleted || !row->data) return TN_OK;
    cJSON *j = cJSON_Parse(row->data);
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(j, "name"));
    cJSON *settings = cJSON_GetObjectItem(j, "settings");
    char *stext = cJSON_IsObject(settings) ? cJSON_PrintUnformatted(settings) : NULL;
    char hash[65];
    row_hash(row->data, hash);
    int rc = name ? tn__apply_tenant(st, row->tenant, name, stext, hash) : TN_INVALID;
    free(stext);
    cJSON_Delete(j);
    return rc;
}

int tn__push_tenant_row(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *tenant,
                        tn__adapt *pace) {
    char *json = NULL, pushed[65], hash[65];
    int rc = tn__tenant_row(st, tenant, &json, pushed);
    if (rc != TN_OK) return rc;
    row_hash(json, hash);
    if (strcmp(hash, pushed) != 0) {
        tn_remote_row row;
        memset(&row, 0, sizeof row);
        snprintf(row.tenant, sizeof row.tenant, "%s", tenant);
        row.kind = TN_REMOTE_TENANT;
        row.key = "";
        row.updated_at = tn__wall_ms();
        row.version = row.updated_at << 16;
        row.data = json;
        tn_remote_put out;
        int64_t sent = pace ? tn__adapt_take(pace, r->stop, NULL) : 0;
        if (sent < 0) {
            free(json);
            return TN_BUSY;
        }
        r->m->put_rows(c, &row, 1, &out);
        if (pace)
            tn__adapt_answer(pace, sent, out.code == TN_OK || out.code == TN_CONFLICT,
                             out.code == TN_THROTTLED);
        /* A newer tenant row from another appliance wins; it comes back with
         * the next pull. */
        rc = out.code == TN_CONFLICT ? TN_OK : out.code;
        if (rc == TN_OK) rc = tn__tenant_row_pushed(st, tenant, hash);
    }
    free(json);
    return rc;
}

/* ---- pull ------------------------------------------------------------------ */

static int key_cmp(int ka, const char *a, int kb, const char *b) {
    return ka != kb ? ka - kb : strcmp(a, b);
}

static int row_cmp(const void *x, const void *y) {
    const tn_remote_row *a = x, *b = y;
    return key_cmp(a->kind, a->key, b->kind, b->key);
}

static const tn_remote_row *find_row(const tn_remote_page *all, int kind, const char *key) {
    tn_remote_row probe;
    memset(&probe, 0, sizeof probe);
    probe.kind = kind;
    probe.key = key;
    return all->n ? bsearch(&probe, all->rows, (size_t)all->n, sizeof probe, row_cmp) : NULL;
}

/* Reads every remote row of tenant into one page, sorted by key. */
static int list_all(tn_remote *r, tn_remote_conn *c, const char *tenant, tn_remote_page *all) {
    memset(all, 0, sizeof *all);
    char token[1024] = "";
    int rc = TN_OK;
    do {
        tn_remote_page p;
        memset(&p, 0, sizeof p);
        rc = r->m->list(c, tenant, token, &p);
        for (int i = 0; rc == TN_OK && i < p.n; i++) {
            tn_remote_row *d = tn_remote_page_add(all);
            if (!d) {
                rc = TN_NOMEM;
                break;
            }
            *d = p.rows[i];
            /* Strings move into all's memory. */
            const char **fields[] = {&d->key, &d->data, &d->sha256, &d->content_type};
            for (size_t f = 0; f < sizeof fields / sizeof *fields; f++)
                if (*fields[f] && !(*fields[f] = tn_remote_page_str(all, *fields[f], strlen(*fields[f]))))
                    rc = TN_NOMEM;
        }
        all->refused += p.refused;
        snprintf(token, sizeof token, "%s", p.next);
        tn_remote_page_free(&p);
    } while (rc == TN_OK && token[0] && !stopping(r));
    if (rc == TN_OK && all->n) qsort(all->rows, (size_t)all->n, sizeof *all->rows, row_cmp);
    return rc;
}

/* A local row that is not remote and not waiting to be pushed was pushed
 * once and deleted since by another writer whose tombstone has expired: it
 * is deleted here too (a tombstone of the same version: no echo). */
typedef struct gone_list {
    tn_remote_page *rows; /* tombstones to apply */
    tn_remote_page *remote;
    const char *tenant;
} gone_list;

static int collect_gone(const tn__local_row *l, void *arg) {
    gone_list *g = arg;
    if (l->deleted || l->pending) return 0;
    int kind = l->kind == TN__KIND_FILE ? TN_REMOTE_FILE : TN_REMOTE_ITEM;
    if (find_row(g->remote, kind, l->key)) return 0;
    tn_remote_row *t = tn_remote_page_add(g->rows);
    if (!t) return TN_NOMEM;
    snprintf(t->tenant, sizeof t->tenant, "%s", g->tenant);
    t->kind = kind;
    t->key = tn_remote_page_str(g->rows, l->key, strlen(l->key));
    t->version = l->version;
    t->deleted = 1;
    t->updated_at = tn__wall_ms();
    return t->key ? 0 : TN_NOMEM;
}

/* Full reconcile against all, the tenant's whole listing: every remote row
 * applied, and local rows the remote lost (deleted elsewhere, tombstone
 * expired) deleted. */
static int reconcile_with(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *tenant,
                          tn_remote_page *all_rows, int fetchers, tn__pull_stats *ps) {
    tn_remote_page all = *all_rows;
    int rc = TN_OK;
    for (int k = 0; rc == TN_OK && k < all.n; k += PAGE_ROWS) {
        tn_remote_page part = all;
        part.rows = all.rows + k;
        part.n = all.n - k < PAGE_ROWS ? all.n - k : PAGE_ROWS;
        part.refused = k == 0 ? all.refused : 0;
        rc = apply_page(st, r, c, tenant, &part, NULL, 0, fetchers, ps);
    }
    if (rc == TN_OK) {
        tn_remote_page gone;
        memset(&gone, 0, sizeof gone);
        gone_list g = {&gone, &all, tenant};
        rc = tn__local_rows(st, tenant, collect_gone, &g);
        if (rc == TN_OK && gone.n) {
            rc = apply_page(st, r, c, tenant, &gone, NULL, 0, 1, NULL);
            if (ps) ps->removed += gone.n;
        }
        tn_remote_page_free(&gone);
    }
    return rc;
}

static int reconcile_full(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *tenant,
                          int fetchers, tn__pull_stats *ps) {
    tn_remote_page all;
    int rc = list_all(r, c, tenant, &all);
    if (rc == TN_OK) rc = reconcile_with(st, r, c, tenant, &all, fetchers, ps);
    tn_remote_page_free(&all);
    return rc;
}

int tn__pull_tenant(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *tenant,
                    int64_t default_ttl_s, int fetchers, tn__pull_stats *ps) {
    if (r->m->version < 2 || !r->m->changes) return TN_OK; /* a push-only remote */
    char cursor[256];
    int rc = tn__pull_cursor(st, tenant, cursor);
    int full = 0;
    if (rc == TN_OK && cursor[0]) rc = tn__pull_due(st, tenant, default_ttl_s, &full);
    if (rc == TN_OK && full) rc = reconcile_full(st, r, c, tenant, fetchers, ps);
    while (rc == TN_OK && !stopping(r)) {
        tn_remote_page page;
        memset(&page, 0, sizeof page);
        char next[256] = "";
        rc = r->m->changes(c, tenant, cursor, PAGE_ROWS, &page, next);
        if (rc == TN_OK && ps) ps->read += page.n;
        int gone = 0;
        for (int i = 0; rc == TN_OK && i < page.n; i++)
            if (page.rows[i].kind == TN_REMOTE_TENANT && strcmp(page.rows[i].tenant, tenant) == 0)
                apply_tenant_row(st, &page.rows[i], &gone);
        if (rc == TN_OK) rc = apply_page(st, r, c, tenant, &page, next, !page.next[0], fetchers, ps);
        int more = page.next[0] != '\0';
        tn_remote_page_free(&page);
        if (rc != TN_OK) break;
        if (gone && ps) ps->gone++;
        snprintf(cursor, sizeof cursor, "%s", next);
        if (!more) break;
    }
    if (rc != TN_OK && rc != TN_BUSY) tn__pull_error(st, tenant, tn_strerror(rc));
    return rc;
}

/* ---- purge ----------------------------------------------------------------- */

int tn__purge_tenants(tn_store *st, tn_remote *r, tn_remote_conn *c, int64_t *rows) {
    if (r->m->version < 2 || !r->m->list || !r->m->delete_row) return TN_OK;
    char ids[16][37];
    int n = 0, rc = tn__purge_list(st, ids, 16, &n);
    for (int t = 0; rc == TN_OK && t < n && !stopping(r); t++) {
        /* The marker first: from now on no restore, join or pull brings the
         * tenant back, even if the purge stops half way. */
        tn_remote_row marker;
        memset(&marker, 0, sizeof marker);
        memcpy(marker.tenant, ids[t], sizeof marker.tenant);
        marker.kind = TN_REMOTE_TENANT;
        marker.key = "";
        marker.deleted = 1;
        marker.updated_at = tn__wall_ms();
        marker.version = (int64_t)0x7fffffffffff << 16; /* no tenant row can pass it */
        tn_remote_put out;
        r->m->put_rows(c, &marker, 1, &out);
        if (out.code != TN_OK && out.code != TN_CONFLICT) {
            rc = out.code;
            break;
        }
        char token[1024] = "";
        int64_t done = 0;
        do {
            tn_remote_page p;
            memset(&p, 0, sizeof p);
            rc = r->m->list(c, ids[t], token, &p);
            for (int i = 0; rc == TN_OK && i < p.n; i++) {
                const tn_remote_row *row = &p.rows[i];
                if (row->kind == TN_REMOTE_TENANT) continue;
                if (row->kind == TN_REMOTE_FILE) rc = r->m->delete_object(c, row);
                if (rc == TN_OK) rc = r->m->delete_row(c, row);
                if (rc == TN_OK) done++;
            }
            snprintf(token, sizeof token, "%s", p.next);
            tn_remote_page_free(&p);
        } while (rc == TN_OK && token[0] && !stopping(r));
        if (rc == TN_OK) rc = tn__purge_done(st, ids[t], done, !stopping(r));
        else tn__purge_done(st, ids[t], done, 0);
        if (rows) *rows += done;
    }
    return rc;
}

/* ---- restore and join ------------------------------------------------------------ */

int tn__join_tenant(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *id,
                    tn__pull_stats *ps) {
    if (r->m->version < 2 || !r->m->list) return TN_INVALID;
    /* The feed's end first, so nothing pushed during the copy is missed;
     * then the partition, read once: the tenant row is one of its rows. */
    char cursor[256] = "";
    int rc = r->m->feed_end ? r->m->feed_end(c, id, cursor) : TN_OK;
    tn_remote_page all;
    memset(&all, 0, sizeof all);
    if (rc == TN_OK) rc = list_all(r, c, id, &all);
    const tn_remote_row *row = rc == TN_OK ? find_row(&all, TN_REMOTE_TENANT, "") : NULL;
    if (rc == TN_OK && !row) rc = TN_NOTFOUND;       /* the remote holds no such tenant */
    if (rc == TN_OK && row->deleted) rc = TN_EXISTS; /* the marker of a deleted tenant */
    int gone = 0;
    /* A restore that stopped half way finds the tenant here already. */
    if (rc == TN_OK) rc = apply_tenant_row(st, row, &gone);
    if (rc == TN_OK) rc = reconcile_with(st, r, c, id, &all, MAX_FETCHERS, ps);
    tn_remote_page_free(&all);
    if (rc == TN_OK && ps) ps->tenants++;
    if (rc == TN_OK && cursor[0]) {
        tn__apply *a;
        rc = tn__apply_begin(st, id, &a);
        if (rc == TN_OK) rc = tn__apply_commit(a, cursor, 1, 0);
    } else if (rc == TN_OK) {
        /* No shortcut to the end: walk the feed (rows are already here). */
        rc = tn__pull_tenant(st, r, c, id, 0, MAX_FETCHERS, NULL);
    }
    return rc;
}

int tn__remote_tenants(tn_remote *r, tn_remote_conn *c, char (**ids)[37], int *n) {
    *ids = NULL;
    *n = 0;
    if (r->m->version < 2 || !r->m->tenants) return TN_INVALID;
    char token[1024] = "";
    int rc, cap = 0;
    do {
        tn_remote_page p;
        memset(&p, 0, sizeof p);
        rc = r->m->tenants(c, token, &p);
        for (int i = 0; rc == TN_OK && i < p.n; i++) {
            if (p.rows[i].deleted) continue; /* purged: never brought back */
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                char (*nv)[37] = realloc(*ids, (size_t)cap * sizeof **ids);
                if (!nv) {
                    rc = TN_NOMEM;
                    break;
                }
                *ids = nv;
            }
            snprintf((*ids)[(*n)++], 37, "%s", p.rows[i].tenant);
        }
        snprintf(token, sizeof token, "%s", p.next);
        tn_remote_page_free(&p);
    } while (rc == TN_OK && token[0]);
    return rc;
}

/* ---- verify ------------------------------------------------------------------ */

typedef struct verify_ctx {
    tn_store *st;
    tn_remote_page *remote;
    cJSON *diffs;
    int64_t local;
    unsigned char *seen; /* remote rows matched by a local row */
    int *objects;        /* remote file rows whose object is to be read back ... */
    int nobjects;
    unsigned char *bad;  /* ... and which of them were missing or damaged */
    tn_remote *r;
    tn_remote_conn *c;
    const char *tenant;
    int repair;
    int64_t repaired;
    int rc;
} verify_ctx;

static void diff(verify_ctx *v, int kind, const char *key, const char *what) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "kind", kind == TN__KIND_FILE ? "file" : "item");
    cJSON_AddStringToObject(d, "key", key);
    cJSON_AddStringToObject(d, "what", what);
    cJSON_AddItemToArray(v->diffs, d);
}

/* Reads back the object of remote file row objects[k]: bad[k] when the
 * remote does not hold its bytes. */
static void object_check(void *arg, tn_remote_conn *c, int k) {
    verify_ctx *v = arg;
    const tn_remote_row *f = &v->remote->rows[v->objects[k]];
    char path[] = "/tmp/tenantry-verify-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return; /* cannot tell: not a difference */
    unlink(path);
    v->bad[k] = get_checked(v->r, c, f, fd) != TN_OK;
    close(fd);
}

/* Reports a difference; with repair, the local row is pushed again when it
 * wins (rr: the remote row, or NULL).  The remote's winners are applied at
 * the end, like a pull. */
static void differs(verify_ctx *v, int kind, const char *key, const char *what, int local_wins,
                    const tn_remote_row *rr, int64_t version) {
    diff(v, kind, key, what);
    if (!v->repair) return;
    int rc = TN_OK;
    if (local_wins) {
        /* Pushed again; a remote row of the same version (its object lost)
         * is removed first, or the push would take it for a replay. */
        if (rr && rr->version == version) rc = v->r->m->delete_row(v->c, rr);
        if (rc == TN_OK) rc = tn__outbox_touch(v->st, v->tenant, kind, key);
    }
    if (rc == TN_OK) v->repaired++;
    else v->rc = rc;
}

static int verify_local(const tn__local_row *l, void *arg) {
    verify_ctx *v = arg;
    v->local++;
    int kind = l->kind == TN__KIND_FILE ? TN_REMOTE_FILE : TN_REMOTE_ITEM;
    const tn_remote_row *rr = find_row(v->remote, kind, l->key);
    if (rr) v->seen[rr - v->remote->rows] = 1;
    const char *what = NULL;
    int local_wins = 0;
    if (!rr) {
        if (l->deleted) return 0; /* a tombstone that expired remotely */
        what = l->pending ? NULL : "missing remotely";
        local_wins = 1;
    } else if (rr->version != l->version) {
        what = rr->version > l->version ? "older locally" : "older remotely";
        local_wins = l->version > rr->version;
        if (local_wins && l->pending) what = NULL; /* on its way */
    } else if (rr->deleted != l->deleted) {
        what = "deleted on one side only";
    } else if (!l->deleted && l->kind == TN__KIND_FILE &&
               (!rr->sha256 || !l->data || strcmp(rr->sha256, l->data) != 0)) {
        what = "different bytes";
    } else if (!l->deleted && l->kind == TN__KIND_ITEM) {
        /* Same version: the same document, compared as JSON values. */
        cJSON *a = cJSON_Parse(l->data ? l->data : ""), *b = cJSON_Parse(rr->data ? rr->data : "");
        if (!cJSON_Compare(a, b, 1)) what = "different content";
        cJSON_Delete(a);
        cJSON_Delete(b);
    } else if (!l->deleted && l->kind == TN__KIND_FILE) {
        /* The same file row on both sides: its object is read back after
         * the walk, several at a time, outside the store's read. */
        v->objects[v->nobjects++] = (int)(rr - v->remote->rows);
    }
    if (what) differs(v, l->kind, l->key, what, local_wins, rr, l->version);
    return 0;
}

int tn__verify_tenant(tn_store *st, tn_remote *r, tn_remote_conn *c, const char *tenant, int repair,
                      cJSON *out, tn__pull_stats *ps) {
    if (r->m->version < 2 || !r->m->list) return TN_INVALID;
    tn_remote_page all;
    int rc = list_all(r, c, tenant, &all);
    verify_ctx v = {st, &all, cJSON_CreateArray(), 0, calloc((size_t)all.n + 1, 1),
                    calloc((size_t)all.n + 1, sizeof(int)), 0, calloc((size_t)all.n + 1, 1),
                    r, c, tenant, repair, 0, TN_OK};
    if (rc == TN_OK && (!v.diffs || !v.seen || !v.objects || !v.bad)) rc = TN_NOMEM;
    if (rc == TN_OK) rc = tn__local_rows(st, tenant, verify_local, &v);
    if (rc == TN_OK) rc = v.rc;
    if (rc == TN_OK && v.nobjects) {
        par_run(r, c, v.nobjects, MAX_FETCHERS, object_check, &v);
        for (int k = 0; k < v.nobjects && v.rc == TN_OK; k++) {
            const tn_remote_row *rr = &all.rows[v.objects[k]];
            if (v.bad[k])
                differs(&v, TN__KIND_FILE, rr->key, "object missing or damaged remotely", 1, rr,
                        rr->version);
        }
        rc = v.rc;
    }
    /* Remote rows this store does not have. */
    tn_remote_page missing;
    memset(&missing, 0, sizeof missing);
    for (int i = 0; rc == TN_OK && i < all.n; i++) {
        const tn_remote_row *rr = &all.rows[i];
        if (v.seen[i] || rr->kind == TN_REMOTE_TENANT || rr->deleted) continue;
        diff(&v, rr->kind == TN_REMOTE_FILE ? TN__KIND_FILE : TN__KIND_ITEM, rr->key,
             "missing locally");
        if (repair) {
            tn_remote_row *m = tn_remote_page_add(&missing);
            if (!m) rc = TN_NOMEM;
            else *m = *rr;
        }
    }
    /* Remote rows that win (newer, or missing here) are applied like a pull. */
    if (rc == TN_OK && repair) {
        for (int i = 0; i < all.n; i++) {
            const tn_remote_row *rr = &all.rows[i];
            if (rr->kind == TN_REMOTE_TENANT || !v.seen[i]) continue;
            tn_remote_row *m = tn_remote_page_add(&missing);
            if (!m) {
                rc = TN_NOMEM;
                break;
            }
            *m = *rr; /* apply_page weighs each by the rule: only winners land */
        }
        if (rc == TN_OK && missing.n) rc = apply_page(st, r, c, tenant, &missing, NULL, 0, MAX_FETCHERS, ps);
    }
    tn_remote_page_free(&missing); /* its rows' strings belong to all */
    cJSON_AddNumberToObject(out, "local_rows", (double)v.local);
    cJSON_AddNumberToObject(out, "remote_rows", (double)all.n);
    cJSON_AddNumberToObject(out, "remote_refused", (double)all.refused);
    cJSON_AddNumberToObject(out, "repaired", (double)v.repaired);
    cJSON_AddItemToObject(out, "differences", v.diffs);
    free(v.seen);
    free(v.objects);
    free(v.bad);
    tn_remote_page_free(&all);
    return rc;
}
