/*
 * api_files.c - tenant files: PUT streams the body to a temp file beside the
 * target while hashing it, then fsync, rename into place (atomic: readers see
 * the old bytes or the new, never a mix) and record the metadata; GET streams
 * the bytes back with single-range support; DELETE; list.
 *
 * Names arrive percent-decoded by router.c and are checked with
 * tn_file_name_valid(); the on-disk path comes only from
 * tn_session_file_path(), i.e. <data>/files/<tenant id>/<name>, which a valid
 * name cannot leave.  The tenant id in that path never reaches a response.
 *
 * Uploads hold no session while bytes arrive (a slow client must not pin a
 * pooled connection): begin opens one briefly for the path and the quota, and
 * finish opens one again to record the file.
 */
#include "handlers.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIST_DEFAULT 50
#define LIST_MAX 1000
/* Suffixes (then 16 hex digits) of an upload's temporary file and of the
 * bytes it replaces, kept until the new record is committed. */
#define UPLOAD_TAG ".upload-"
#define PREV_TAG ".prev-"

static void fail(tn__req *r, int status, const char *msg) {
    tn__req_fail(r, status, msg, 0);
}

/* mkdir for every directory between the data directory and path's file. */
static int make_parents(const char *root, char *path) {
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        int rc = mkdir(path, 0700);
        int e = errno;
        *p = '/';
        if (rc != 0 && e != EEXIST) return -1;
    }
    return 0;
}

static int content_type_ok(const char *ct) {
    if (strlen(ct) > 255) return 0;
    for (const char *p = ct; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) return 0;
    return 1;
}

void tn__upload_begin(tn__req *r) {
    tn__srv *srv = r->srv;
    const char *name = r->arg[0];
    if (!name || !tn_file_name_valid(name)) return fail(r, 400, "bad request");
    if (strlen(name) > TN__FILE_NAME_REMOTE_MAX) return fail(r, 400, "file name too long");
    if (r->content_length > srv->cfg.max_file_bytes) return fail(r, 413, "too large");
    const char *ct = tn__req_header(r, "Content-Type");
    if (ct && !content_type_ok(ct)) return fail(r, 400, "bad request");
    if (ct && !(r->ctype = strdup(ct))) return fail(r, 503, "unavailable");

    tn_session *s;
    int rc = tn_session_open(srv->st, r->key.tenant_id, &s);
    if (rc != TN_OK) return fail(r, 503, "unavailable");
    rc = tn_session_file_path(s, name, &r->final_path);
    if (rc == TN_OK && r->key.max_file_bytes >= 0) {
        int64_t used = 0;
        tn_file old = {0};
        rc = tn_file_bytes(s, &used);
        if (rc == TN_OK && tn_file_get(s, name, &old) == TN_OK) used -= old.size;
        tn_file_clear(&old);
        r->quota_left = r->key.max_file_bytes - used;
        if (r->quota_left < 0) r->quota_left = 0;
    }
    tn_session_close(s);
    if (rc != TN_OK) return fail(r, rc == TN_INVALID ? 400 : 500,
                                 rc == TN_INVALID ? "bad request" : "internal error");
    if (r->quota_left >= 0 && r->content_length > r->quota_left)
        return fail(r, 507, "quota exceeded");

    size_t n = strlen(r->final_path) + 32;
    if (!(r->tmp_path = malloc(n))) return fail(r, 503, "unavailable");
    unsigned char rnd[8];
    char hex[17];
    randombytes_buf(rnd, sizeof rnd);
    for (int i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(r->tmp_path, n, "%s" UPLOAD_TAG "%s", r->final_path, hex);
    if (make_parents(tn_store_dir(srv->st), r->tmp_path) != 0)
        return fail(r, errno == ENOSPC ? 507 : 409, errno == ENOSPC ? "insufficient storage"
                                                                    : "conflict");
    r->fd = open(r->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (r->fd < 0)
        return fail(r, errno == ENOSPC ? 507 : 500,
                    errno == ENOSPC ? "insufficient storage" : "internal error");
    crypto_hash_sha256_init(&r->sha);
}

void tn__upload_data(tn__req *r, const char *data, size_t n) {
    if (r->fd < 0) return fail(r, 500, "internal error");
    r->written += (int64_t)n;
    if (r->written > r->srv->cfg.max_file_bytes) return fail(r, 413, "too large");
    if (r->quota_left >= 0 && r->written > r->quota_left) return fail(r, 507, "quota exceeded");
    crypto_hash_sha256_update(&r->sha, (const unsigned char *)data, n);
    while (n > 0) {
        ssize_t w = write(r->fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        /* EFBIG: the file-size limit of the process or the filesystem. */
        int full = w < 0 && (errno == ENOSPC || errno == EDQUOT || errno == EFBIG);
        if (w <= 0)
            return fail(r, full ? 507 : 500, full ? "insufficient storage" : "internal error");
        data += w;
        n -= (size_t)w;
    }
}

/* Makes the rename durable. */
static void sync_parent(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    free(dir);
}

void tn__api_file_put(tn__req *r, tn__resp *out) {
    if (r->fd < 0) {
        tn__resp_error(out, 500, "internal error");
        return;
    }
    int ok = fsync(r->fd) == 0;
    int e = errno;
    ok = close(r->fd) == 0 && ok;
    r->fd = -1;
    if (!ok) {
        tn__resp_code(out, e == ENOSPC || e == EDQUOT ? TN_FULL : TN_IO);
        return;
    }
    /* The bytes being replaced stay linked as <name>.prev-<hex> until the new
     * record is committed: a failed record, or a crash before it
     * (tn__files_recover), goes back to them, so a file's bytes always match
     * its record. */
    char *prev = NULL;
    const char *suffix = strrchr(r->tmp_path, '-');
    if (!suffix || !(prev = malloc(strlen(r->final_path) + 32))) {
        tn__resp_code(out, TN_NOMEM);
        return;
    }
    snprintf(prev, strlen(r->final_path) + 32, "%s%s%s", r->final_path, PREV_TAG, suffix + 1);
    if (link(r->final_path, prev) == 0) {
        sync_parent(prev);
    } else {
        int le = errno;
        free(prev);
        prev = NULL;
        if (le != ENOENT && le != EPERM && le != EISDIR) {
            tn__resp_code(out, le == ENOSPC || le == EDQUOT ? TN_FULL : TN_IO);
            return;
        }
    }
    if (rename(r->tmp_path, r->final_path) != 0) {
        /* e.g. the name is a directory of other files ("a" while "a/b" exists) */
        int re = errno;
        if (prev) unlink(prev);
        free(prev);
        tn__resp_error(out, re == EISDIR || re == ENOTDIR || re == ENOTEMPTY ? 409 : 500,
                       re == EISDIR || re == ENOTDIR || re == ENOTEMPTY
                           ? "conflict" : "internal error");
        return;
    }
    free(r->tmp_path);
    r->tmp_path = NULL;
    sync_parent(r->final_path);

    unsigned char digest[32];
    char hex[65];
    crypto_hash_sha256_final(&r->sha, digest);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    tn_session *s;
    int rc = tn_session_open(r->srv->st, r->key.tenant_id, &s);
    tn_file f = {0};
    if (rc == TN_OK) rc = tn_file_record(s, r->arg[0], r->written, hex, r->ctype, &f);
    tn_session_close(s);
    if (prev) {
        /* Not recorded: the old bytes go back (or, for a new name, the
         * unrecorded ones go). */
        if (rc != TN_OK) rename(prev, r->final_path);
        else unlink(prev);
        free(prev);
    } else if (rc != TN_OK) {
        unlink(r->final_path);
    }
    if (rc != TN_OK) {
        tn__resp_code(out, rc);
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", f.name);
    cJSON_AddItemToObject(j, "size", tn__json_int(f.size));
    cJSON_AddStringToObject(j, "sha256", f.sha256);
    cJSON_AddItemToObject(j, "version", tn__json_version(f.version));
    tn__resp_json(out, 201, j);
    snprintf(out->etag, sizeof out->etag, "\"%lld\"", (long long)f.version);
    tn_file_clear(&f);
}

void tn__upload_abort(tn__req *r) {
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    if (r->tmp_path) unlink(r->tmp_path);
    free(r->tmp_path);
    free(r->final_path);
    free(r->ctype);
    r->tmp_path = r->final_path = r->ctype = NULL;
}

/* ---- read, delete, list ---------------------------------------------------- */

/* Parses a single "bytes=a-b" range against size.  0: serve it all (no or an
 * unsupported Range header), 1: [*from, *to], -1: unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to) {
    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ',')) return 0;
    const char *p = h + 6;
    char *end;
    if (*p == '-') { /* the last N bytes */
        if (p[1] < '0' || p[1] > '9') return 0;
        unsigned long long n = strtoull(p + 1, &end, 10);
        if (*end || n == 0) return n == 0 && !*end ? -1 : 0;
        if (size == 0) return -1;
        *from = n >= size ? 0 : size - n;
        *to = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9') return 0;
    unsigned long long a = strtoull(p, &end, 10), b = size ? size - 1 : 0;
    if (*end != '-') return 0;
    p = end + 1;
    if (*p) {
        if (*p < '0' || *p > '9') return 0;
        b = strtoull(p, &end, 10);
        if (*end || b < a) return 0;
        if (b >= size) b = size - 1;
    }
    if (a >= size) return -1;
    *from = a;
    *to = b;
    return 1;
}

void tn__api_file_get(tn__req *r, tn__resp *out) {
    tn_file f = {0};
    char *path = NULL;
    int rc = tn_file_get(r->s, r->arg[0], &f);
    if (rc == TN_OK) rc = tn_session_file_path(r->s, r->arg[0], &path);
    if (rc != TN_OK) {
        tn__resp_code(out, rc == TN_INVALID ? TN_NOTFOUND : rc);
        tn_file_clear(&f);
        return;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    free(path);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0) close(fd);
        tn_file_clear(&f);
        tn__resp_code(out, TN_NOTFOUND); /* metadata without bytes: a racing delete */
        return;
    }
    uint64_t size = (uint64_t)sb.st_size, from = 0, to = size ? size - 1 : 0;
    int range = parse_range(tn__req_header(r, "Range"), size, &from, &to);
    if (range < 0) {
        close(fd);
        tn__resp_error(out, 416, "range not satisfiable");
        snprintf(out->content_range, sizeof out->content_range, "bytes */%llu",
                 (unsigned long long)size);
        tn_file_clear(&f);
        return;
    }
    tn__resp_empty(out, range ? 206 : 200);
    out->fd = fd;
    out->off = range ? from : 0;
    out->flen = range ? to - from + 1 : size;
    out->ranges = 1;
    out->ctype = "application/octet-stream";
    if (f.content_type && *f.content_type) { /* validated on upload */
        snprintf(out->ctype_buf, sizeof out->ctype_buf, "%s", f.content_type);
        out->ctype = out->ctype_buf;
    }
    if (range)
        snprintf(out->content_range, sizeof out->content_range, "bytes %llu-%llu/%llu",
                 (unsigned long long)from, (unsigned long long)to, (unsigned long long)size);
    snprintf(out->etag, sizeof out->etag, "\"%lld\"", (long long)f.version);
    tn_file_clear(&f);
}

void tn__api_file_delete(tn__req *r, tn__resp *out) {
    char *path = NULL;
    int rc = tn_session_file_path(r->s, r->arg[0], &path);
    if (rc == TN_OK) rc = tn_file_delete(r->s, r->arg[0]);
    if (rc == TN_OK) {
        unlink(path);
        tn__resp_empty(out, 204);
    } else {
        tn__resp_code(out, rc == TN_INVALID ? TN_NOTFOUND : rc);
    }
    free(path);
}

static int add_file(const tn_file *f, void *arg) {
    tn__page *p = arg;
    tn__page_begin(p);
    tn__sbuf *b = &p->b;
    tn__sb_str(b, "{\"name\":");
    tn__sb_json_str(b, f->name);
    tn__sb_fmt(b, ",\"size\":%lld,\"sha256\":", (long long)f->size);
    tn__sb_json_str(b, f->sha256);
    tn__sb_str(b, ",\"content_type\":");
    tn__sb_json_str(b, f->content_type ? f->content_type : "");
    tn__sb_fmt(b, ",\"version\":\"%lld\",\"created_at\":", (long long)f->version);
    tn__sb_time(b, f->created_at);
    tn__sb_str(b, ",\"updated_at\":");
    tn__sb_time(b, f->updated_at);
    tn__sb_add(b, "}", 1);
    return tn__page_end(p);
}

static int file_page(tn_session *s, const char *cursor, int limit, tn__page *p, char **next) {
    return tn_file_list(s, cursor, limit, add_file, p, next);
}

void tn__api_files_list(tn__req *r, tn__resp *out) {
    tn__list(r, "files", LIST_DEFAULT, LIST_MAX, file_page, out);
}

/* ---- recovery after a crash ------------------------------------------------ */

static int hash_path(const char *path, char hex[65]) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[65536], d[32];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) crypto_hash_sha256_update(&st, buf, (size_t)n);
    close(fd);
    if (n < 0) return -1;
    crypto_hash_sha256_final(&st, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

/* The length of tag + 16 hex digits ending name, or 0. */
static size_t tagged(const char *name, const char *tag) {
    size_t n = strlen(name), t = strlen(tag);
    if (n < t + 16 + 1 || memcmp(name + n - 16 - t, tag, t) != 0) return 0;
    for (size_t i = n - 16; i < n; i++)
        if (!strchr("0123456789abcdef", name[i])) return 0;
    return t + 16;
}

static tn_store *recover_st;
static size_t recover_root; /* length of "<data>/files/" */

static int recover_one(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    if (type != FTW_F || strlen(path) < recover_root + 38 || path[recover_root + 36] != '/')
        return 0;
    const char *rel = path + recover_root + 37; /* the name inside the tenant's folder */
    size_t up = tagged(rel, UPLOAD_TAG), pv = tagged(rel, PREV_TAG);
    if (!up && !pv) return 0;
    char tenant[37];
    memcpy(tenant, path + recover_root, 36);
    tenant[36] = '\0';
    tn_session *s;
    if (tn_session_open(recover_st, tenant, &s) != TN_OK) return 0;
    /* A tenant's own file that happens to be named like this stays. */
    if (tn_file_get(s, rel, NULL) == TN_OK) {
        tn_session_close(s);
        return 0;
    }
    if (up) {
        unlink(path); /* an upload that never finished */
    } else {
        size_t fl = strlen(path) - pv;
        char *final = strndup(path, fl), *base = strndup(rel, strlen(rel) - pv);
        tn_file f = {0};
        char now[65], old[65];
        /* Killed between the rename and the record: the record still names
         * the old bytes, which go back in place. */
        if (final && base && tn_file_get(s, base, &f) == TN_OK &&
            (hash_path(final, now) != 0 || strcmp(now, f.sha256) != 0) &&
            hash_path(path, old) == 0 && strcmp(old, f.sha256) == 0) {
            if (rename(path, final) == 0) sync_parent(final);
        } else {
            unlink(path);
        }
        tn_file_clear(&f);
        free(final);
        free(base);
    }
    tn_session_close(s);
    return 0;
}

int tn__files_recover(tn_store *st) {
    const char *dir = tn_store_dir(st);
    size_t n = strlen(dir) + 8;
    char *root = malloc(n);
    if (!root) return TN_NOMEM;
    snprintf(root, n, "%s/files/", dir);
    recover_st = st;
    recover_root = strlen(root);
    int rc = nftw(root, recover_one, 16, FTW_PHYS) == 0 || errno == ENOENT ? TN_OK : TN_IO;
    free(root);
    return rc;
}
