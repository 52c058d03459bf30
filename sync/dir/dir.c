/*
 * dir.c - the remote interface (remote.h) over a directory: a NAS share, a
 * removable disk, or a test's temp folder.
 *
 * Layout under the root (every name comes from remote_key.c, as for AWS):
 *
 *   FORMAT                           "tenantry directory remote 1"
 *   tenants/<uuid>/lock              the tenant's lock (flock)
 *   tenants/<uuid>/feed              the tenant's change feed
 *   tenants/<uuid>/rows/<h>.json     one row of partition TENANT#<uuid>; <h> is
 *                                    the SHA-256 (hex) of its sort key
 *   objects/<uuid>/files/<name>      an object's bytes, <name> encoded (below)
 *   uploads/<id>/object              an unfinished multipart upload: the object
 *   uploads/<id>/part-NNNNN          it is for, and its parts
 *   tenants/<uuid>/.tmp-*            a row being written (under the lock)
 *   objects/<uuid>/.tmp-*            an object being written
 *
 * A row file is one JSON object:
 *   {"pk":"TENANT#<uuid>","sk":"ITEM#<id>","version":"<decimal>",
 *    "feed":"<decimal>","deleted":false,"updated_at":<ms>,"expires_at":<s>,
 *    "data":"<the JSON text>"}
 * A file's row has "object", "size", "sha256" and "content_type" instead of
 * "data"; a tombstone has neither.  Versions are strings: they use 57 bits,
 * more than a JSON number keeps exactly.
 *
 * The feed is a header line {"feed":"<32 hex>"} (a random id), then one line
 * {"sk":"<sort key>","version":"<decimal>"} per accepted row write.  A cursor
 * is "<feed id>:<byte offset>"; a cursor from another feed (the directory was
 * replaced) starts again from the top, so it never skips.  A row's "feed" is
 * the offset of its line (it orders a page; nothing depends on it).
 *
 * Compaction.  Every accepted write adds a line, so a busy tenant's feed
 * would grow for ever (tens of MB a day at ten writes a second).  A writer
 * that finds the feed past feed_compact bytes and twice its size after the
 * last compaction (kept in tenants/<uuid>/compacted) rewrites it, under the
 * exclusive lock, with only each key's last line, in their order, under a
 * new feed id: a cursor into the old feed then starts again from the top of
 * the new one, so a reader re-reads each live key once (a replay, applied as
 * nothing) and skips nothing.  A feed with more than COMPACT_KEYS_MAX keys or
 * COMPACT_LINES_MAX lines (another writer's feed is untrusted) is left as it
 * is until it doubles: the memory the rewrite needs is bounded.
 *
 * Writes.  A writer holds the tenant's lock exclusively from the comparison
 * to the rename: it reads the held version, writes each winning row to a temp
 * file and fdatasyncs it, appends the rows' feed lines and fdatasyncs the
 * feed, renames the temp files into place and fsyncs the rows folder; only
 * then is a row acknowledged.  The feed line goes first, so a crash between
 * leaves a line naming an older row (read again: harmless), never a row the
 * feed does not name.  Feed readers hold the lock shared, so every line they
 * read has its row in place.  Objects and parts: temp file, fdatasync,
 * rename, fsync of the folder.  Temp files start with '.', as no encoded name
 * does; readers skip them.
 *
 * Leftovers.  A writer killed mid-write leaves its temp file, and an upload
 * nobody completes leaves its folder; each has one place where it is found
 * cheaply and removed, so a crash costs space only until the next write.  A
 * row's temp file sits in its tenant's folder, where only the holder of the
 * exclusive lock writes: that holder removes every temp file it finds
 * there.  An object's temp file sits in its tenant's objects folder, written
 * without a lock: a writer removes those untouched for TMP_STALE_S.  A new
 * upload removes the uploads untouched for UPLOAD_STALE_S (the cloud
 * storage `remote template` sets up aborts its own after 7 days too).
 *
 * Reads.  changes returns each key of the lines it passes once, at the row's
 * current state, in feed order; a key whose row is gone (purged) fills no
 * place, so an empty page means nothing more for now.  list pages through the
 * row files by name, from names read once per LIST_CHUNK; a row written
 * during a listing may or may not appear (the feed brings it).
 *
 * File names.  An object's file name is percent-encoded: every byte outside
 * [A-Za-z0-9._-], and a '.' that starts a component, becomes %XX, so "a" and
 * "a/b" ("a%2Fb") are both plain files and no component is hidden, "." or
 * "..".  An encoding longer than COMP_MAX bytes is cut into components of at
 * most COMP_MAX; each but the last is a folder with a trailing '+' (which the
 * encoding never yields, so the folder "x+" and the file "x" differ).
 *
 * Everything read back is untrusted: a row file over ROW_MAX bytes, one that
 * does not parse, sits under another name than its key's, or carries an
 * impossible field is counted in page->refused and left out; so is a feed
 * line that does not parse.
 */
#include "dir.h"

#include "clock.h"
#include "crypto.h"
#include "digest.h"
#include "json_check.h"
#include "pace.h"
#include "remote_key.h"
#include "sbuf.h"
#include "tenantry.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ROOT_MAX 1024          /* bytes of the root's path */
#define PATH_BUF 4096
#define COMP_MAX 200           /* bytes of one encoded name component */
#define ROW_MAX (4 << 20)      /* a row file, at most */
#define FEED_LINE_MAX 8192     /* a feed line, at most */
#define FEED_BUF (64 << 10)
#define FEED_HEADER_LEN 44     /* {"feed":"<32 hex>"}\n */
#define PAGE_ROWS 1000         /* rows of a list page */
#define LIST_CHUNK 20000       /* row names a connection holds for a listing */
#define LIST_FRESH_MS 60000    /* and for how long it serves pages from them */
#define PAGE_TENANTS 100       /* tenants of a tenants page */
#define CHANGES_MAX 1000       /* rows of a changes page */
#define FEED_SEEN_EXTRA 4096   /* keys without a row one changes page passes, at most */
#define PAGE_BYTES (16 << 20)  /* row bytes of one page (a first row always fits) */
#define LOCK_WAIT_MS 30000
#define PART_MIN (5 << 20)     /* every part but the last, at least (as on AWS) */
#define PARTS_MAX 10000
#define BATCH_ROWS 25
#define COPY_CHUNK (1 << 20)
#define FEED_COMPACT (64 << 20) /* a feed past this is compacted (TENANTRY_DIR_FEED_COMPACT) */
#define COMPACT_KEYS_MAX (1 << 20)   /* distinct keys a compaction holds (48 MiB of table) */
#define COMPACT_LINES_MAX (64 << 20) /* lines a compaction reads (8 MiB of bits) */
#define TMP_STALE_S 3600       /* an object's temp file untouched this long: a crash's */
#define UPLOAD_STALE_S (7 * 86400) /* an upload untouched this long: abandoned */
#define UPLOAD_ID_LEN 49       /* 16 hex of the object's hash, '-', 32 random hex */

static const char FORMAT_TEXT[] = "tenantry directory remote 1\n";

typedef struct dir_remote {
    tn_remote base;
    char root[ROOT_MAX + 1]; /* no trailing '/' ("" for the file system's root) */
    tn__pace pace;           /* the bandwidth cap, shared by the connections opened with one */
    int64_t feed_compact;    /* bytes of feed that start a compaction */
} dir_remote;

typedef char name_slot[72]; /* a row file's name, "<64 hex>.json", and its NUL */

typedef struct dir_conn {
    dir_remote *d;
    int paced;            /* opened with a cap: bytes go through d->pace */
    /* list: the next LIST_CHUNK row names of the tenant being listed, from
     * one read of its folder, so a listing reads the folder once per chunk
     * rather than once per page. */
    char list_tenant[37];
    name_slot *list_names;
    int list_n, list_pos; /* names held (LIST_CHUNK + 1 means more follow), next to serve */
    int64_t list_at;      /* when they were read (mono ms) */
} dir_conn;

#define CONN(c) ((dir_conn *)(void *)(c))
#define DIRR(r) ((dir_remote *)(void *)(r))

/* ---- small helpers ------------------------------------------------------- */

static int code_of(int e) {
    switch (e) {
    case ENOENT: case ENOTDIR: return TN_NOTFOUND;
    case EACCES: case EPERM: case EROFS: return TN_DENIED;
    case ENOSPC: case EDQUOT: return TN_FULL;
    case ENOMEM: return TN_NOMEM;
    case ENAMETOOLONG: return TN_INVALID;
    /* A share or a disk that went away may come back: retry. */
    case EIO: case ENODEV: case ENXIO: case ESTALE: case ETIMEDOUT: case ENOTCONN:
    case EHOSTDOWN: case EHOSTUNREACH: case EINTR: case EAGAIN: return TN_NETWORK;
    default: return TN_IO;
    }
}

static int stopped(const dir_remote *d) {
    return d->base.stop && *d->base.stop;
}

__attribute__((format(printf, 3, 4)))
static int mkpath(char out[PATH_BUF], const dir_remote *d, const char *fmt, ...) {
    int n = snprintf(out, PATH_BUF, "%s/", d->root);
    if (n < 0 || n >= PATH_BUF) return TN_INVALID;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(out + n, (size_t)(PATH_BUF - n), fmt, ap);
    va_end(ap);
    return m < 0 || n + m >= PATH_BUF ? TN_INVALID : TN_OK;
}

static void rand_hex(char *out, size_t bytes) {
    unsigned char b[32];
    size_t got = 0;
    while (got < bytes) {
        ssize_t r = getrandom(b + got, bytes - got, 0);
        if (r > 0) got += (size_t)r;
        else if (errno != EINTR) break;
    }
    if (got < bytes) {
        /* getrandom does not fail on Linux after boot; if it did, these
         * names need only be unique, not secret. */
        static unsigned counter;
        char seed[96];
        int n = snprintf(seed, sizeof seed, "%lld %d %u %p", (long long)tn__wall_ms(), (int)getpid(),
                         __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED), (void *)seed);
        unsigned char h[TN_SHA256_LEN];
        tn__sha256(seed, (size_t)n, h);
        memcpy(b, h, bytes);
    }
    tn__hex(b, bytes, out);
}

static int is_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* A non-negative decimal of 1-19 digits that fits an int64. */
static int parse_dec(const char *s, size_t n, int64_t *out) {
    if (n < 1 || n > 19) return 0;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10) return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return code_of(w < 0 ? errno : ENOSPC);
        s += w;
        n -= (size_t)w;
    }
    return TN_OK;
}

static int fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return code_of(errno);
    int rc = fsync(fd) == 0 ? TN_OK : code_of(errno);
    close(fd);
    return rc;
}

/* path's folder into out (path has a '/'). */
static void parent_of(const char *path, char out[PATH_BUF]) {
    snprintf(out, PATH_BUF, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash == out) slash[1] = '\0';
    else if (slash) *slash = '\0';
}

/* Creates the folder path when missing; a new one is made durable in its
 * parent.  TN_NOTFOUND when the parent is missing. */
static int mkdir_durable(const char *path) {
    if (mkdir(path, 0755) != 0) {
        if (errno != EEXIST) return code_of(errno);
        struct stat st;
        if (stat(path, &st) != 0) return code_of(errno);
        return S_ISDIR(st.st_mode) ? TN_OK : TN_CORRUPT;
    }
    char parent[PATH_BUF];
    parent_of(path, parent);
    return fsync_dir(parent);
}

/* Creates every folder of path after its first `from` bytes. */
static int mkdirs(char *path, size_t from) {
    for (char *p = path + from; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        int rc = mkdir_durable(path);
        *p = '/';
        if (rc != TN_OK) return rc;
    }
    return TN_OK;
}

/* TN_OK when init has built the tree (its tenants/ folder exists). */
static int tree_ready(const dir_remote *d, const char *sub) {
    char p[PATH_BUF];
    struct stat st;
    if (mkpath(p, d, "%s", sub) != TN_OK) return TN_INVALID;
    if (stat(p, &st) != 0) return errno == ENOENT || errno == ENOTDIR ? TN_NOTFOUND : code_of(errno);
    return S_ISDIR(st.st_mode) ? TN_OK : TN_NOTFOUND;
}

/* ---- pacing (the remote's bandwidth budget) -------------------------------- */

/* Waits until n bytes just moved have had their slot in the remote's
 * shared budget (pace.h), chunk by chunk. */
static int pace(dir_conn *c, size_t n) {
    if (!c->paced) return TN_OK;
    size_t chunk = tn__pace_chunk(&c->d->pace);
    for (size_t off = 0; off < n; off += chunk)
        if (tn__pace_take(&c->d->pace, n - off < chunk ? n - off : chunk, c->d->base.stop) != 0)
            return TN_TIMEOUT;
    return TN_OK;
}

/* ---- files written whole ------------------------------------------------- */

/* A new temp file in folder dir: its path into tmp, its descriptor into *fd. */
static int tmp_create(const char *dir, char tmp[PATH_BUF], int *fd) {
    char r[33];
    for (int attempt = 0; attempt < 4; attempt++) {
        rand_hex(r, 16);
        int n = snprintf(tmp, PATH_BUF, "%s/.tmp-%s", dir, r);
        if (n < 0 || n >= PATH_BUF) return TN_INVALID;
        *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (*fd >= 0) return TN_OK;
        if (errno != EEXIST) return code_of(errno);
    }
    return TN_IO;
}

/* Writes data to a durable temp file in dir (paced when c is given). */
static int tmp_write(dir_conn *c, const char *dir, const void *data, size_t n, char tmp[PATH_BUF]) {
    int fd, rc = tmp_create(dir, tmp, &fd);
    if (rc != TN_OK) return rc;
    for (size_t off = 0; rc == TN_OK && off < n; off += COPY_CHUNK) {
        size_t k = n - off < COPY_CHUNK ? n - off : COPY_CHUNK;
        rc = write_all(fd, (const char *)data + off, k);
        if (rc == TN_OK && c) rc = pace(c, k);
    }
    if (rc == TN_OK && fdatasync(fd) != 0) rc = code_of(errno);
    if (close(fd) != 0 && rc == TN_OK) rc = code_of(errno);
    if (rc != TN_OK) unlink(tmp);
    return rc;
}

/* dir/name := data, atomically and durably, through a temp file in tmpdir
 * (on the same file system). */
static int put_file_via(dir_conn *c, const char *tmpdir, const char *dir, const char *name,
                        const void *data, size_t n) {
    char tmp[PATH_BUF], final[PATH_BUF];
    int len = snprintf(final, sizeof final, "%s/%s", dir, name);
    if (len < 0 || len >= PATH_BUF) return TN_INVALID;
    int rc = tmp_write(c, tmpdir, data, n, tmp);
    if (rc != TN_OK) return rc;
    if (rename(tmp, final) != 0) {
        rc = code_of(errno);
        unlink(tmp);
        return rc;
    }
    return fsync_dir(dir);
}

static int put_file(dir_conn *c, const char *dir, const char *name, const void *data, size_t n) {
    return put_file_via(c, dir, dir, name, data, n);
}

/* Removes the temp files (".tmp-" names) in folder dir last changed before
 * `before` (0: every one).  Best effort: what cannot be removed now is
 * found again next time. */
static void sweep_tmp(const char *dir, time_t before) {
    DIR *dh = opendir(dir);
    struct dirent *e;
    while (dh && (e = readdir(dh)) != NULL) {
        char p[PATH_BUF];
        struct stat st;
        if (strncmp(e->d_name, ".tmp-", 5) != 0) continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= PATH_BUF) continue;
        if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (before && st.st_mtime >= before) continue;
        unlink(p);
    }
    if (dh) closedir(dh);
}

/* The whole of a regular file of at most cap bytes, NUL-terminated.
 * TN_NOTFOUND, TN_TOOBIG, TN_CORRUPT (not a regular file) or an I/O code. */
static int read_small(const char *path, size_t cap, char **out, size_t *len) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ELOOP ? TN_CORRUPT : code_of(errno);
    struct stat st;
    int rc = TN_OK;
    char *buf = NULL;
    size_t n = 0;
    if (fstat(fd, &st) != 0) rc = code_of(errno);
    else if (!S_ISREG(st.st_mode)) rc = TN_CORRUPT;
    else if ((uint64_t)st.st_size > cap) rc = TN_TOOBIG;
    else if (!(buf = malloc((size_t)st.st_size + 2))) rc = TN_NOMEM;
    /* Read one byte past the size: the file may have grown since fstat. */
    while (rc == TN_OK) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = code_of(errno);
        else if (r == 0) break;
        else if ((n += (size_t)r) > (size_t)st.st_size) rc = TN_TOOBIG;
    }
    close(fd);
    if (rc != TN_OK) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return TN_OK;
}

/* ---- names ---------------------------------------------------------------- */

/* A row's remote names and its file's name. */
typedef struct rowref {
    tn__remote_key k;
    char hex[65]; /* SHA-256 of k.sort */
} rowref;

static int rowref_make(const char *tenant, int kind, const char *key, rowref *out) {
    int rc = tn__remote_key_build(tenant, kind, key, &out->k);
    if (rc == TN_OK) tn__sha256_hex(out->k.sort, strlen(out->k.sort), out->hex);
    return rc;
}

/* The sort key's kind and key: TN_REMOTE_* or 0. */
static int sort_kind(const char *sk, const char **key) {
    if (strncmp(sk, "ITEM#", 5) == 0) { *key = sk + 5; return TN_REMOTE_ITEM; }
    if (strncmp(sk, "FILE#", 5) == 0) { *key = sk + 5; return TN_REMOTE_FILE; }
    if (strcmp(sk, "TENANT") == 0) { *key = ""; return TN_REMOTE_TENANT; }
    return 0;
}

static int row_path(const dir_remote *d, const char *tenant, const char *hex, char out[PATH_BUF]) {
    return mkpath(out, d, "tenants/%s/rows/%s.json", tenant, hex);
}

/* The file-system form of a file name (see the top of this file). */
static int enc_name(const char *name, char *out, size_t cap) {
    static const char hexd[] = "0123456789ABCDEF";
    size_t o = 0, comp = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        for (int again = 0; again < 2; again++) {
            int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                        (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
                        (*p == '.' && comp > 0);
            size_t need = plain ? 1 : 3;
            if (comp + need > COMP_MAX) {
                if (o + 2 >= cap) return TN_INVALID;
                out[o++] = '+';
                out[o++] = '/';
                comp = 0;
                continue; /* a '.' that now starts a component is encoded */
            }
            if (o + need >= cap) return TN_INVALID;
            if (plain) {
                out[o++] = (char)*p;
            } else {
                out[o++] = '%';
                out[o++] = hexd[*p >> 4];
                out[o++] = hexd[*p & 15];
            }
            comp += need;
            break;
        }
    }
    out[o] = '\0';
    return TN_OK;
}

/* The path of k's object; *name_at is where objects/<uuid>/files/ ends. */
static int object_path(const dir_remote *d, const tn__remote_key *k, char out[PATH_BUF], size_t *name_at) {
    /* k->object is "<uuid>/files/<name>": the prefix stays two folders. */
    size_t pre = strlen("00000000-0000-0000-0000-000000000000/files/");
    if (!k->object || strlen(k->object) <= pre || strncmp(k->object + 36, "/files/", 7) != 0)
        return TN_INVALID;
    int rc = mkpath(out, d, "objects/%.*s", (int)pre, k->object);
    if (rc != TN_OK) return rc;
    size_t n = strlen(out);
    *name_at = n;
    return enc_name(k->object + pre, out + n, PATH_BUF - n);
}

/* ---- rows: writing --------------------------------------------------------- */

static int sha_valid(const char *s) {
    return s && strlen(s) == 64 && is_hex(s, 64);
}

static int ct_valid(const char *s) {
    size_t n = strlen(s);
    if (n > 255) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return 0;
    return 1;
}

#define JSON_INT_MAX ((int64_t)1 << 53) /* what a JSON number keeps exactly */

static int row_valid(const tn_remote_row *r) {
    if (r->version < 1 || r->updated_at < 0 || r->updated_at > JSON_INT_MAX ||
        r->expires_at < 0 || r->expires_at > JSON_INT_MAX)
        return TN_INVALID;
    if (r->kind == TN_REMOTE_FILE && !r->deleted &&
        (r->size < 0 || r->size > JSON_INT_MAX || !sha_valid(r->sha256) ||
         (r->content_type && !ct_valid(r->content_type))))
        return TN_INVALID;
    if (r->kind != TN_REMOTE_FILE && !r->deleted &&
        (!r->data || !tn__json_valid(r->data, strlen(r->data), TN_JSON_MAX_DEPTH)))
        return TN_INVALID;
    rowref ref;
    int rc = rowref_make(r->tenant, r->kind, r->key, &ref);
    tn__remote_key_free(&ref.k);
    return rc;
}

static char *row_text(const tn_remote_row *r, const rowref *ref, int64_t feed, size_t *len) {
    tn__sbuf b = {0};
    tn__sb_str(&b, "{\"pk\":");
    tn__sb_json_str(&b, ref->k.part);
    tn__sb_str(&b, ",\"sk\":");
    tn__sb_json_str(&b, ref->k.sort);
    tn__sb_fmt(&b, ",\"version\":\"%lld\",\"feed\":\"%lld\",\"deleted\":%s,"
               "\"updated_at\":%lld,\"expires_at\":%lld",
               (long long)r->version, (long long)feed, r->deleted ? "true" : "false",
               (long long)r->updated_at, (long long)r->expires_at);
    if (!r->deleted && r->kind == TN_REMOTE_FILE) {
        tn__sb_str(&b, ",\"object\":");
        tn__sb_json_str(&b, ref->k.object);
        tn__sb_fmt(&b, ",\"size\":%lld,\"sha256\":\"%s\",\"content_type\":", (long long)r->size,
                   r->sha256);
        tn__sb_json_str(&b, r->content_type ? r->content_type : "application/octet-stream");
    } else if (!r->deleted) {
        tn__sb_str(&b, ",\"data\":");
        tn__sb_json_str(&b, r->data);
    }
    tn__sb_str(&b, "}\n");
    *len = b.len;
    return tn__sb_take(&b);
}

/* ---- rows: reading --------------------------------------------------------- */

static const char *jstr(const cJSON *j, const char *name) {
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, name));
}

static int jint(const cJSON *j, const char *name, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > (double)JSON_INT_MAX)
        return 0;
    *out = (int64_t)v->valuedouble;
    return (double)*out == v->valuedouble;
}

/* Fills r from a row file's JSON (r's strings point into j) when it is a
 * well-formed row of tenant stored under the name hex; 0 otherwise. */
static int row_check(const cJSON *j, const char *tenant, const char *hex, tn_remote_row *r) {
    memset(r, 0, sizeof *r);
    const char *pk = jstr(j, "pk"), *sk = jstr(j, "sk"), *ver = jstr(j, "version"),
               *feed = jstr(j, "feed"), *key = NULL;
    const cJSON *del = cJSON_GetObjectItemCaseSensitive(j, "deleted");
    if (!cJSON_IsObject(j) || !pk || !sk || !ver || !feed || !cJSON_IsBool(del)) return 0;
    r->kind = sort_kind(sk, &key);
    if (!r->kind || !parse_dec(ver, strlen(ver), &r->version) || r->version < 1 ||
        !parse_dec(feed, strlen(feed), &r->feed) || !jint(j, "updated_at", &r->updated_at) ||
        !jint(j, "expires_at", &r->expires_at))
        return 0;
    rowref ref;
    if (rowref_make(tenant, r->kind, key, &ref) != TN_OK) return 0;
    int ok = strcmp(ref.k.part, pk) == 0 && strcmp(ref.hex, hex) == 0;
    r->deleted = cJSON_IsTrue(del);
    if (ok && !r->deleted && r->kind == TN_REMOTE_FILE) {
        const char *obj = jstr(j, "object");
        r->sha256 = jstr(j, "sha256");
        r->content_type = jstr(j, "content_type");
        ok = obj && strcmp(obj, ref.k.object) == 0 && jint(j, "size", &r->size) &&
             sha_valid(r->sha256) && r->content_type && ct_valid(r->content_type);
    } else if (ok && !r->deleted) {
        r->data = jstr(j, "data");
        ok = r->data && tn__json_valid(r->data, strlen(r->data), TN_JSON_MAX_DEPTH);
    }
    tn__remote_key_free(&ref.k);
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    r->key = key;
    return ok;
}

/* Loads the row stored under hex.  TN_OK (*j to free, r pointing into it),
 * TN_NOTFOUND, TN_CORRUPT (refused: malformed or over ROW_MAX) or the error
 * reading it. */
static int row_load(const dir_remote *d, const char *tenant, const char *hex, cJSON **j,
                    tn_remote_row *r) {
    char p[PATH_BUF], *text;
    size_t n;
    *j = NULL;
    int rc = row_path(d, tenant, hex, p);
    if (rc == TN_OK) rc = read_small(p, ROW_MAX, &text, &n);
    if (rc == TN_TOOBIG) return TN_CORRUPT;
    if (rc != TN_OK) return rc;
    *j = cJSON_ParseWithLength(text, n);
    free(text);
    if (*j && row_check(*j, tenant, hex, r)) return TN_OK;
    cJSON_Delete(*j);
    *j = NULL;
    return TN_CORRUPT;
}

static const char *page_dup(tn_remote_page *pg, const char *s, int *fail) {
    if (!s) return NULL;
    const char *c = tn_remote_page_str(pg, s, strlen(s));
    if (!c) *fail = 1;
    return c;
}

/* Adds a copy of r to the page. */
static int page_copy(tn_remote_page *pg, const tn_remote_row *r, size_t *bytes) {
    tn_remote_row *o = tn_remote_page_add(pg);
    if (!o) return TN_NOMEM;
    int fail = 0;
    *o = *r;
    o->key = page_dup(pg, r->key, &fail);
    o->data = page_dup(pg, r->data, &fail);
    o->sha256 = page_dup(pg, r->sha256, &fail);
    o->content_type = page_dup(pg, r->content_type, &fail);
    *bytes += strlen(r->key) + (r->data ? strlen(r->data) : 0) + sizeof *r;
    return fail ? TN_NOMEM : TN_OK;
}

/* ---- the tenant's lock ----------------------------------------------------- */

/* Takes tenant's lock (exclusive for writers).  create: make the tenant's
 * folders first.  TN_NOTFOUND when the tenant has no folder (readers) or the
 * tree is missing (writers). */
static int lock_tenant(dir_conn *c, const char *tenant, int excl, int create, int *fd) {
    char p[PATH_BUF];
    int rc = TN_OK;
    *fd = -1;
    if (create) {
        if ((rc = mkpath(p, c->d, "tenants/%s", tenant)) == TN_OK) rc = mkdir_durable(p);
        if (rc == TN_OK && (rc = mkpath(p, c->d, "tenants/%s/rows", tenant)) == TN_OK)
            rc = mkdir_durable(p);
        if (rc != TN_OK) return rc;
    }
    if ((rc = mkpath(p, c->d, "tenants/%s/lock", tenant)) != TN_OK) return rc;
    /* Writable for an exclusive lock: NFS emulates flock with fcntl locks,
     * which want it. */
    *fd = open(p, (excl ? O_RDWR : O_RDONLY) | (create ? O_CREAT : 0) | O_CLOEXEC, 0644);
    if (*fd < 0) return code_of(errno);
    int64_t start = tn__mono_ms(), nap_us = 100;
    while (flock(*fd, (excl ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        if (errno == EINTR) continue;
        rc = errno != EWOULDBLOCK ? code_of(errno)
             : stopped(c->d) ? TN_TIMEOUT
             : tn__mono_ms() - start > LOCK_WAIT_MS ? TN_BUSY : TN_OK;
        if (rc != TN_OK) {
            close(*fd);
            *fd = -1;
            return rc;
        }
        struct timespec ts = {0, nap_us * 1000};
        nanosleep(&ts, NULL);
        if (nap_us < 5000) nap_us *= 2;
    }
    return TN_OK;
}

static void unlock_tenant(int fd) {
    if (fd >= 0) close(fd); /* releases the flock */
}

/* ---- the feed --------------------------------------------------------------- */

/* Opens tenant's feed for appending (the lock held exclusively), creating it
 * with its header when missing.  *size: its length; *torn: it does not end
 * in a newline (a crash cut its last line), so the next line starts with one. */
static int feed_open_append(dir_conn *c, const char *tenant, int *fd, int64_t *size, int *torn) {
    char p[PATH_BUF], dir[PATH_BUF];
    int rc = mkpath(p, c->d, "tenants/%s/feed", tenant);
    if (rc != TN_OK) return rc;
    *fd = open(p, O_RDWR | O_APPEND | O_CLOEXEC);
    if (*fd < 0 && errno == ENOENT) {
        /* Created whole by a rename, so no reader sees a torn header. */
        char id[33], header[FEED_HEADER_LEN + 1];
        rand_hex(id, 16);
        snprintf(header, sizeof header, "{\"feed\":\"%s\"}\n", id);
        parent_of(p, dir);
        if ((rc = put_file(NULL, dir, "feed", header, FEED_HEADER_LEN)) != TN_OK) return rc;
        *fd = open(p, O_RDWR | O_APPEND | O_CLOEXEC);
    }
    if (*fd < 0) return code_of(errno);
    struct stat st;
    char last = '\n';
    if (fstat(*fd, &st) != 0 || (st.st_size > 0 && pread(*fd, &last, 1, st.st_size - 1) != 1)) {
        rc = code_of(errno);
        close(*fd);
        *fd = -1;
        return rc;
    }
    *size = st.st_size;
    *torn = last != '\n';
    return TN_OK;
}

static void feed_line(tn__sbuf *b, const char *sk, int64_t version) {
    tn__sb_str(b, "{\"sk\":");
    tn__sb_json_str(b, sk);
    tn__sb_fmt(b, ",\"version\":\"%lld\"}\n", (long long)version);
}

/* ---- compaction (see the top of the file) ---------------------------------- */

/* Each key's last line: a table of 16 bytes of SHA-256 of the sort key. */
typedef struct last_line {
    unsigned char h[16];
    int64_t line; /* 0: an empty slot, else the line's number + 1 */
} last_line;

typedef struct last_lines {
    last_line *t;
    size_t cap, n;
    int64_t lines; /* lines seen */
} last_lines;

static int last_set(last_lines *m, const unsigned char h[16], int64_t line) {
    if (m->n * 2 >= m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4096;
        last_line *t = calloc(cap, sizeof *t);
        if (!t) return TN_NOMEM;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->t[i].line) continue;
            size_t j;
            memcpy(&j, m->t[i].h, sizeof j);
            for (j %= cap; t[j].line; j = (j + 1) % cap) {}
            t[j] = m->t[i];
        }
        free(m->t);
        m->t = t;
        m->cap = cap;
    }
    size_t j;
    memcpy(&j, h, sizeof j);
    for (j %= m->cap; m->t[j].line && memcmp(m->t[j].h, h, 16) != 0; j = (j + 1) % m->cap) {}
    if (!m->t[j].line) {
        if (m->n >= COMPACT_KEYS_MAX) return TN_TOOBIG;
        memcpy(m->t[j].h, h, 16);
        m->n++;
    }
    m->t[j].line = line + 1;
    return TN_OK;
}

/* Calls fn for each whole line of fd after the header, with its number. */
static int each_line(int fd, int (*fn)(void *arg, const char *line, size_t len, int64_t no),
                     void *arg) {
    char *buf = malloc(FEED_BUF + FEED_LINE_MAX);
    if (!buf) return TN_NOMEM;
    int64_t off = FEED_HEADER_LEN, no = 0;
    size_t have = 0;
    int rc = TN_OK;
    for (;;) {
        ssize_t got = pread(fd, buf + have, FEED_BUF, off);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) rc = code_of(errno);
        if (got <= 0) break;
        off += got;
        have += (size_t)got;
        size_t i = 0;
        char *nl;
        while (rc == TN_OK && (nl = memchr(buf + i, '\n', have - i)) != NULL) {
            rc = fn(arg, buf + i, (size_t)(nl - (buf + i)), no++);
            i = (size_t)(nl - buf) + 1;
        }
        if (rc != TN_OK) break;
        memmove(buf, buf + i, have - i);
        have -= i;
        if (have > FEED_LINE_MAX) have = 0; /* a line past any line's size: dropped */
    }
    free(buf);
    return rc;
}

static int line_hash(const char *line, size_t len, unsigned char h[16]) {
    cJSON *j = cJSON_ParseWithLength(line, len);
    const char *sk = jstr(j, "sk"), *key;
    int ok = sk && sort_kind(sk, &key);
    if (ok) {
        unsigned char d[TN_SHA256_LEN];
        tn__sha256(sk, strlen(sk), d);
        memcpy(h, d, 16);
    }
    cJSON_Delete(j);
    return ok;
}

static int note_line(void *arg, const char *line, size_t len, int64_t no) {
    last_lines *m = arg;
    unsigned char h[16];
    m->lines = no + 1;
    if (m->lines > COMPACT_LINES_MAX) return TN_TOOBIG;
    return line_hash(line, len, h) ? last_set(m, h, no) : TN_OK;
}

typedef struct keep_lines {
    const unsigned char *keep; /* a bit per line */
    int64_t lines;             /* lines the bits cover */
    tn__sbuf out;
    int fd;
} keep_lines;

static int copy_line(void *arg, const char *line, size_t len, int64_t no) {
    keep_lines *k = arg;
    if (no >= k->lines || !(k->keep[no / 8] & (1u << (no % 8)))) return TN_OK;
    tn__sb_add(&k->out, line, len);
    tn__sb_str(&k->out, "\n");
    if (k->out.failed) return TN_NOMEM;
    if (k->out.len < FEED_BUF) return TN_OK;
    int rc = write_all(k->fd, k->out.p, k->out.len);
    k->out.len = 0;
    return rc;
}

/* Records in tenant folder dir the feed's size after a compaction (the next
 * is due when the feed has doubled). */
static void note_compacted(const char *dir, int64_t size) {
    char num[24];
    int len = snprintf(num, sizeof num, "%lld", (long long)size);
    put_file(NULL, dir, "compacted", num, (size_t)len);
}

/* Rewrites tenant's feed (size bytes; the lock held exclusively) when it is
 * due.  Best effort: on any failure the old feed stays, whole. */
static void feed_compact(dir_conn *c, const char *tenant, int64_t size) {
    char p[PATH_BUF], dir[PATH_BUF], tmp[PATH_BUF], *text = NULL;
    size_t n;
    int64_t last = 0;
    if (size < c->d->feed_compact || mkpath(dir, c->d, "tenants/%s", tenant) != TN_OK ||
        mkpath(p, c->d, "tenants/%s/compacted", tenant) != TN_OK)
        return;
    if (read_small(p, 32, &text, &n) == TN_OK && !parse_dec(text, n, &last)) last = 0;
    free(text);
    if (size < 2 * last) return;
    if (mkpath(p, c->d, "tenants/%s/feed", tenant) != TN_OK) return;
    int fd = open(p, O_RDONLY | O_CLOEXEC), out = -1;
    if (fd < 0) return;
    last_lines m = {0};
    keep_lines k = {NULL, 0, {0}, -1};
    int rc = each_line(fd, note_line, &m);
    if (rc == TN_TOOBIG) note_compacted(dir, size); /* too many keys or lines: not before it doubles */
    int64_t lines = m.lines;
    unsigned char *keep = rc == TN_OK ? calloc((size_t)lines / 8 + 1, 1) : NULL;
    if (rc == TN_OK && !keep) rc = TN_NOMEM;
    for (size_t i = 0; rc == TN_OK && i < m.cap; i++)
        if (m.t[i].line) keep[(m.t[i].line - 1) / 8] |= (unsigned char)(1u << ((m.t[i].line - 1) % 8));
    free(m.t);
    if (rc == TN_OK) rc = tmp_create(dir, tmp, &out);
    if (rc == TN_OK) {
        char id[33], header[FEED_HEADER_LEN + 1];
        rand_hex(id, 16);
        snprintf(header, sizeof header, "{\"feed\":\"%s\"}\n", id);
        k = (keep_lines){keep, lines, {0}, out};
        rc = write_all(out, header, FEED_HEADER_LEN);
        if (rc == TN_OK) rc = each_line(fd, copy_line, &k);
        if (rc == TN_OK && k.out.len) rc = write_all(out, k.out.p, k.out.len);
        struct stat st;
        if (rc == TN_OK && (fdatasync(out) != 0 || fstat(out, &st) != 0)) rc = code_of(errno);
        if (close(out) != 0 && rc == TN_OK) rc = code_of(errno);
        if (rc == TN_OK && rename(tmp, p) != 0) rc = code_of(errno);
        if (rc != TN_OK) unlink(tmp);
        if (rc == TN_OK) rc = fsync_dir(dir);
        if (rc == TN_OK) note_compacted(dir, st.st_size);
        tn__sb_free(&k.out);
    }
    free(keep);
    close(fd);
}

/* ---- put_rows -------------------------------------------------------------- */

typedef struct pending {
    rowref ref;
    int made;        /* ref built */
    int accepted;    /* the row won its comparison and has a temp file */
    char *tmp;       /* its temp file */
    int64_t version;
} pending;

/* The version this call or the directory holds under p->ref (0: none; a
 * corrupt row counts as none, so a good write heals it). */
static int held_version(dir_conn *c, const char *tenant, pending *ps, int k, int64_t *held) {
    *held = 0;
    for (int i = k - 1; i >= 0; i--)
        if (ps[i].accepted && strcmp(ps[i].ref.hex, ps[k].ref.hex) == 0) {
            *held = ps[i].version;
            return TN_OK;
        }
    cJSON *j;
    tn_remote_row r;
    int rc = row_load(c->d, tenant, ps[k].ref.hex, &j, &r);
    if (rc == TN_OK) *held = r.version;
    cJSON_Delete(j);
    return rc == TN_OK || rc == TN_NOTFOUND || rc == TN_CORRUPT ? TN_OK : rc;
}

/* Writes the rows idx[0..m) of one tenant under one hold of its lock. */
static void put_tenant(dir_conn *c, const tn_remote_row *rows, const int *idx, int m, tn_remote_put *out) {
    const char *tenant = rows[idx[0]].tenant;
    pending *ps = calloc((size_t)m, sizeof *ps);
    char rowsdir[PATH_BUF], tdir[PATH_BUF], final[PATH_BUF];
    int lockfd = -1, feedfd = -1, torn = 0, naccepted = 0;
    int64_t size = 0;
    tn__sbuf lines = {0};
    int rc = ps ? TN_OK : TN_NOMEM;
    if (rc == TN_OK) rc = mkpath(rowsdir, c->d, "tenants/%s/rows", tenant);
    if (rc == TN_OK) rc = mkpath(tdir, c->d, "tenants/%s", tenant);
    if (rc == TN_OK) rc = lock_tenant(c, tenant, 1, 1, &lockfd);
    /* Only the lock's holder writes temp files here: any found now is a
     * killed writer's. */
    if (rc == TN_OK) sweep_tmp(tdir, 0);
    if (rc == TN_OK) rc = feed_open_append(c, tenant, &feedfd, &size, &torn);
    if (rc != TN_OK) {
        for (int i = 0; i < m; i++) out[idx[i]].code = rc;
        goto done;
    }
    if (torn) tn__sb_str(&lines, "\n");
    int64_t off = size + torn;
    for (int i = 0; i < m; i++) {
        const tn_remote_row *r = &rows[idx[i]];
        tn_remote_put *o = &out[idx[i]];
        int64_t held;
        if ((o->code = rowref_make(r->tenant, r->kind, r->key, &ps[i].ref)) != TN_OK) continue;
        ps[i].made = 1;
        if ((o->code = held_version(c, tenant, ps, i, &held)) != TN_OK) continue;
        if (held >= r->version) {
            o->code = TN_CONFLICT;
            o->remote = held;
            continue;
        }
        size_t len;
        char *text = row_text(r, &ps[i].ref, off, &len);
        char tmp[PATH_BUF];
        o->code = !text ? TN_NOMEM : len > ROW_MAX ? TN_TOOBIG : tmp_write(NULL, tdir, text, len, tmp);
        free(text);
        if (o->code == TN_OK && !(ps[i].tmp = strdup(tmp))) {
            unlink(tmp);
            o->code = TN_NOMEM;
        }
        if (o->code != TN_OK) continue;
        size_t before = lines.len;
        feed_line(&lines, ps[i].ref.k.sort, r->version);
        off += (int64_t)(lines.len - before);
        ps[i].accepted = 1;
        ps[i].version = r->version;
        naccepted++;
    }
    if (naccepted == 0) goto done;
    /* The feed first (see the top of the file), then the rows. */
    rc = lines.failed ? TN_NOMEM : write_all(feedfd, lines.p, lines.len);
    if (rc == TN_OK && fdatasync(feedfd) != 0) rc = code_of(errno);
    /* Undo a partial append. */
    if (rc != TN_OK && ftruncate(feedfd, size) != 0) {
        /* The lines left behind name rows that did not change: a reader
         * reads them again, harmlessly. */
    }
    for (int i = 0; i < m; i++) {
        if (!ps[i].accepted) continue;
        tn_remote_put *o = &out[idx[i]];
        o->code = rc;
        if (rc == TN_OK && (o->code = row_path(c->d, tenant, ps[i].ref.hex, final)) == TN_OK &&
            rename(ps[i].tmp, final) != 0)
            o->code = code_of(errno);
        if (o->code != TN_OK) {
            unlink(ps[i].tmp);
            ps[i].accepted = 0;
        }
    }
    /* Acknowledged only once the renames are durable. */
    rc = fsync_dir(rowsdir);
    for (int i = 0; rc != TN_OK && i < m; i++)
        if (ps[i].accepted) out[idx[i]].code = rc;
    if (rc == TN_OK) feed_compact(c, tenant, off);
done:
    if (feedfd >= 0) close(feedfd);
    unlock_tenant(lockfd);
    for (int i = 0; ps && i < m; i++) {
        if (ps[i].made) tn__remote_key_free(&ps[i].ref.k);
        free(ps[i].tmp);
    }
    free(ps);
    tn__sb_free(&lines);
}

static void dir_put_rows(tn_remote_conn *cn, const tn_remote_row *rows, int n, tn_remote_put *out) {
    dir_conn *c = CONN(cn);
    int *idx = n > 0 ? malloc((size_t)n * sizeof *idx) : NULL;
    char *todo = n > 0 ? calloc((size_t)n, 1) : NULL;
    int ready = tree_ready(c->d, "tenants");
    for (int i = 0; i < n; i++) {
        out[i].remote = -1;
        out[i].code = !idx || !todo ? TN_NOMEM : ready != TN_OK ? ready : row_valid(&rows[i]);
        if (out[i].code == TN_OK) todo[i] = 1;
    }
    /* Each tenant's rows under one hold of its lock, in the order given. */
    for (int i = 0; i < n; i++) {
        if (!todo[i]) continue;
        int m = 0;
        for (int j = i; j < n; j++)
            if (todo[j] && strcmp(rows[j].tenant, rows[i].tenant) == 0) {
                idx[m++] = j;
                todo[j] = 0;
            }
        put_tenant(c, rows, idx, m, out);
    }
    free(idx);
    free(todo);
}

static int dir_versions(tn_remote_conn *cn, const tn_remote_row *rows, int n, int64_t *ver) {
    dir_conn *c = CONN(cn);
    int rc = tree_ready(c->d, "tenants");
    if (rc != TN_OK) return rc;
    for (int i = 0; i < n; i++) {
        rowref ref;
        cJSON *j = NULL;
        tn_remote_row r;
        ver[i] = -1;
        if (rowref_make(rows[i].tenant, rows[i].kind, rows[i].key, &ref) != TN_OK) continue;
        rc = row_load(c->d, rows[i].tenant, ref.hex, &j, &r);
        tn__remote_key_free(&ref.k);
        cJSON_Delete(j);
        if (rc == TN_OK) ver[i] = r.version;
        else if (rc == TN_NOTFOUND) ver[i] = 0;
        else if (rc != TN_CORRUPT) return rc;
    }
    return TN_OK;
}

static int dir_delete_row(tn_remote_conn *cn, const tn_remote_row *row) {
    dir_conn *c = CONN(cn);
    rowref ref;
    char p[PATH_BUF], dir[PATH_BUF];
    int lockfd, rc = tree_ready(c->d, "tenants");
    if (rc != TN_OK) return rc;
    if ((rc = rowref_make(row->tenant, row->kind, row->key, &ref)) != TN_OK) return rc;
    rc = row_path(c->d, row->tenant, ref.hex, p);
    tn__remote_key_free(&ref.k);
    if (rc != TN_OK) return rc;
    rc = lock_tenant(c, row->tenant, 1, 0, &lockfd);
    if (rc == TN_NOTFOUND) return TN_OK; /* no such tenant: nothing to delete */
    if (rc != TN_OK) return rc;
    if (unlink(p) == 0) {
        parent_of(p, dir);
        rc = fsync_dir(dir);
    } else if (errno != ENOENT) {
        rc = code_of(errno);
    }
    unlock_tenant(lockfd);
    return rc;
}

/* ---- reading pages ---------------------------------------------------------- */

typedef int (*name_filter)(const char *name);

static void slot_swap(name_slot a, name_slot b) {
    name_slot t;
    memcpy(t, a, sizeof t);
    memcpy(a, b, sizeof t);
    memcpy(b, t, sizeof t);
}

static void heap_down(name_slot *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, big = i;
        if (l < n && strcmp(h[l], h[big]) > 0) big = l;
        if (r < n && strcmp(h[r], h[big]) > 0) big = r;
        if (big == i) return;
        slot_swap(h[i], h[big]);
        i = big;
    }
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(a, b);
}

/* The cap smallest names in folder dir that pass keep() and sort after
 * `after`, ascending, into names (cap + 1 slots: one more tells there are
 * more).  *count: how many, at most cap + 1. */
static int smallest_names(const char *dir, name_filter keep, const char *after, int cap,
                          name_slot *names, int *count) {
    DIR *dh = opendir(dir);
    *count = 0;
    if (!dh) return code_of(errno);
    int n = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(dh)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len >= sizeof(name_slot) || !keep(e->d_name) || strcmp(e->d_name, after) <= 0) continue;
        if (n < cap + 1) {
            /* Sift up into the max-heap. */
            memcpy(names[n], e->d_name, len + 1);
            for (int i = n++; i > 0 && strcmp(names[(i - 1) / 2], names[i]) < 0; i = (i - 1) / 2)
                slot_swap(names[i], names[(i - 1) / 2]);
        } else if (strcmp(e->d_name, names[0]) < 0) {
            memcpy(names[0], e->d_name, len + 1);
            heap_down(names, n, 0);
        }
    }
    int rc = errno ? code_of(errno) : TN_OK;
    closedir(dh);
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    *count = n;
    return rc;
}

/* Row files: <64 hex>.json, kept without the suffix. */
static int row_file_name(const char *name) {
    return strlen(name) == 69 && is_hex(name, 64) && strcmp(name + 64, ".json") == 0;
}

static int tenant_dir_name(const char *name) {
    tn__remote_key k;
    int ok = tn__remote_key_build(name, TN_REMOTE_TENANT, "", &k) == TN_OK;
    tn__remote_key_free(&k);
    return ok;
}

/* Makes c's held names continue after page_token (refilling them from the
 * folder unless they already do). */
static int list_names(dir_conn *c, const char *tenant, const char *page_token, const char *rowsdir) {
    int held = c->list_n < LIST_CHUNK + 1 ? c->list_n : LIST_CHUNK;
    if (*page_token && strcmp(c->list_tenant, tenant) == 0 && c->list_pos > 0 &&
        c->list_pos < held && strncmp(c->list_names[c->list_pos - 1], page_token, 64) == 0 &&
        tn__mono_ms() - c->list_at < LIST_FRESH_MS)
        return TN_OK;
    char after[70];
    /* Names compare with their ".json": "<token>.json" orders like the token. */
    snprintf(after, sizeof after, "%s%s", page_token, *page_token ? ".json" : "");
    if (!c->list_names && !(c->list_names = malloc((LIST_CHUNK + 1) * sizeof *c->list_names)))
        return TN_NOMEM;
    snprintf(c->list_tenant, sizeof c->list_tenant, "%s", tenant);
    c->list_pos = 0;
    c->list_at = tn__mono_ms();
    int rc = smallest_names(rowsdir, row_file_name, after, LIST_CHUNK, c->list_names, &c->list_n);
    if (rc != TN_OK) c->list_n = 0;
    return rc == TN_NOTFOUND ? TN_OK : rc; /* no folder: a tenant with no row yet */
}

static int dir_list(tn_remote_conn *cn, const char *tenant, const char *page_token, tn_remote_page *out) {
    dir_conn *c = CONN(cn);
    memset(out, 0, sizeof *out);
    char p[PATH_BUF];
    if (!tenant_dir_name(tenant) || !page_token ||
        (*page_token && (strlen(page_token) != 64 || !is_hex(page_token, 64))))
        return TN_INVALID;
    int rc = tree_ready(c->d, "tenants");
    if (rc == TN_OK) rc = mkpath(p, c->d, "tenants/%s/rows", tenant);
    if (rc == TN_OK) rc = list_names(c, tenant, page_token, p);
    if (rc != TN_OK) return rc;
    int held = c->list_n < LIST_CHUNK + 1 ? c->list_n : LIST_CHUNK, start = c->list_pos;
    size_t bytes = 0;
    int i;
    for (i = start; rc == TN_OK && i < held && i - start < PAGE_ROWS && (i == start || bytes < PAGE_BYTES);
         i++) {
        cJSON *j;
        tn_remote_row r;
        char hex[65];
        memcpy(hex, c->list_names[i], 64);
        hex[64] = '\0';
        int lrc = row_load(c->d, tenant, hex, &j, &r);
        if (lrc == TN_OK) rc = page_copy(out, &r, &bytes);
        else if (lrc == TN_CORRUPT) out->refused++;
        else if (lrc != TN_NOTFOUND) rc = lrc; /* NOTFOUND: deleted meanwhile */
        cJSON_Delete(j);
    }
    c->list_pos = i;
    if (rc == TN_OK && i < c->list_n) snprintf(out->next, sizeof out->next, "%.64s", c->list_names[i - 1]);
    if (rc != TN_OK) {
        tn_remote_page_free(out);
        c->list_tenant[0] = '\0';
    }
    return rc;
}

static int dir_tenants(tn_remote_conn *cn, const char *page_token, tn_remote_page *out) {
    dir_conn *c = CONN(cn);
    memset(out, 0, sizeof *out);
    char p[PATH_BUF];
    if (!page_token || (*page_token && !tenant_dir_name(page_token))) return TN_INVALID;
    int rc = mkpath(p, c->d, "tenants");
    name_slot *names = malloc((PAGE_TENANTS + 1) * sizeof *names);
    int count = 0;
    if (rc == TN_OK)
        rc = names ? smallest_names(p, tenant_dir_name, page_token, PAGE_TENANTS, names, &count) : TN_NOMEM;
    size_t bytes = 0;
    int i;
    for (i = 0; rc == TN_OK && i < count && i < PAGE_TENANTS; i++) {
        rowref ref;
        cJSON *j = NULL;
        tn_remote_row r;
        int lrc = rowref_make(names[i], TN_REMOTE_TENANT, "", &ref);
        if (lrc == TN_OK) lrc = row_load(c->d, names[i], ref.hex, &j, &r);
        tn__remote_key_free(&ref.k);
        if (lrc == TN_OK) rc = page_copy(out, &r, &bytes);
        else if (lrc == TN_CORRUPT) out->refused++;
        else if (lrc != TN_NOTFOUND) rc = lrc; /* NOTFOUND: a tenant without its row */
        cJSON_Delete(j);
    }
    if (rc == TN_OK && i < count) snprintf(out->next, sizeof out->next, "%s", names[i - 1]);
    free(names);
    if (rc != TN_OK) tn_remote_page_free(out);
    return rc;
}

/* ---- changes ----------------------------------------------------------------- */

typedef struct feed_key {
    char hex[65];
    int row; /* its row in the page, or -1 (no row: purged) */
} feed_key;

typedef struct feed_scan {
    dir_conn *c;
    const char *tenant;
    tn_remote_page *out;
    feed_key *seen; /* the keys of this page's lines, each once */
    int nseen, seen_cap, max;
    size_t bytes;
} feed_scan;

static int cmp_feed(const void *a, const void *b) {
    const tn_remote_row *x = a, *y = b;
    return x->feed < y->feed ? -1 : x->feed > y->feed;
}

/* One feed line, at offset at.  1: consumed; 0: the page is full (not
 * consumed); <0: an error (negated code).  A row's place in the page is its
 * key's last line in this scan (so pages follow the feed being read, a
 * compacted one too, not the offset the row file was written with). */
static int scan_line(feed_scan *s, const char *line, size_t len, int64_t at) {
    if (len > FEED_LINE_MAX) {
        s->out->refused++;
        return 1;
    }
    cJSON *j = cJSON_ParseWithLength(line, len);
    const char *sk = jstr(j, "sk"), *ver = jstr(j, "version"), *key = NULL;
    int64_t v;
    int kind = sk ? sort_kind(sk, &key) : 0;
    rowref ref;
    int ok = kind && ver && parse_dec(ver, strlen(ver), &v) &&
             rowref_make(s->tenant, kind, key, &ref) == TN_OK;
    cJSON_Delete(j);
    if (!ok) {
        s->out->refused++;
        return 1;
    }
    tn__remote_key_free(&ref.k);
    for (int i = 0; i < s->nseen; i++)
        if (memcmp(s->seen[i].hex, ref.hex, 64) == 0) { /* already read, at its newest */
            if (s->seen[i].row >= 0) s->out->rows[s->seen[i].row].feed = at;
            return 1;
        }
    if (s->out->n == s->max || (s->out->n > 0 && s->bytes >= PAGE_BYTES) || s->nseen == s->seen_cap)
        return 0;
    feed_key *fk = &s->seen[s->nseen++];
    memcpy(fk->hex, ref.hex, 65);
    fk->row = -1;
    tn_remote_row r;
    int rc = row_load(s->c->d, s->tenant, ref.hex, &j, &r);
    if (rc == TN_OK) {
        r.feed = at;
        fk->row = s->out->n;
        rc = page_copy(s->out, &r, &s->bytes);
    }
    else if (rc == TN_CORRUPT) s->out->refused++;
    /* TN_NOTFOUND: a purged row, or a write that never landed. */
    if (rc == TN_CORRUPT || rc == TN_NOTFOUND) rc = TN_OK;
    cJSON_Delete(j);
    return rc == TN_OK ? 1 : -rc;
}

/* Scans the feed from *off, consuming whole lines until the page is full or
 * the end (a last line without its newline is a write in progress, or one a
 * crash cut: it is left for later). */
static int scan_feed(feed_scan *s, int fd, int64_t *off) {
    char *buf = malloc(FEED_BUF);
    if (!buf) return TN_NOMEM;
    int rc = TN_OK, full = 0;
    while (rc == TN_OK && !full) {
        ssize_t got = pread(fd, buf, FEED_BUF, *off);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) rc = code_of(errno);
        if (got <= 0) break;
        size_t i = 0;
        char *nl;
        while (!full && (nl = memchr(buf + i, '\n', (size_t)got - i)) != NULL) {
            size_t len = (size_t)(nl - (buf + i));
            int r = scan_line(s, buf + i, len, *off);
            if (r < 0) rc = -r;
            if (r <= 0) {
                full = 1;
                break;
            }
            i += len + 1;
            *off += (int64_t)len + 1;
        }
        if (i > 0 || full) continue;
        if (got < FEED_BUF) break;
        /* No newline in a whole buffer: far past any line's size; skip it. */
        int64_t end = *off + got;
        for (;;) {
            ssize_t g = pread(fd, buf, FEED_BUF, end);
            if (g < 0 && errno == EINTR) continue;
            if (g <= 0) break;
            if ((nl = memchr(buf, '\n', (size_t)g)) != NULL) {
                s->out->refused++;
                *off = end + (nl - buf) + 1;
                break;
            }
            end += g;
        }
        if (*off < end) break; /* no newline up to the end: leave it */
    }
    free(buf);
    return rc;
}

/* "<32 hex>:<offset>" into id and *off; "" gives id "". */
static int parse_cursor(const char *cursor, char id[33], int64_t *off) {
    id[0] = '\0';
    *off = 0;
    if (!*cursor) return 1;
    size_t n = strlen(cursor);
    if (n < 34 || cursor[32] != ':' || !is_hex(cursor, 32) || !parse_dec(cursor + 33, n - 33, off))
        return 0;
    memcpy(id, cursor, 32);
    id[32] = '\0';
    return 1;
}

static int dir_changes(tn_remote_conn *cn, const char *tenant, const char *cursor, int max,
                       tn_remote_page *out, char cursor_out[256]) {
    dir_conn *c = CONN(cn);
    memset(out, 0, sizeof *out);
    char id[33], p[PATH_BUF], header[FEED_HEADER_LEN + 1];
    int64_t off;
    if (!tenant_dir_name(tenant) || !cursor || !parse_cursor(cursor, id, &off) || max < 1)
        return TN_INVALID;
    snprintf(cursor_out, 256, "%s", cursor);
    if (max > CHANGES_MAX) max = CHANGES_MAX;
    int lockfd, fd = -1, rc = tree_ready(c->d, "tenants");
    if (rc != TN_OK) return rc;
    rc = lock_tenant(c, tenant, 0, 0, &lockfd);
    if (rc == TN_NOTFOUND) return TN_OK; /* no tenant yet: nothing changed */
    if (rc != TN_OK) return rc;
    if ((rc = mkpath(p, c->d, "tenants/%s/feed", tenant)) == TN_OK &&
        (fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
        rc = errno == ENOENT ? TN_NOTFOUND : code_of(errno);
    struct stat st;
    if (rc == TN_OK && (fstat(fd, &st) != 0 || pread(fd, header, FEED_HEADER_LEN, 0) != FEED_HEADER_LEN))
        rc = TN_CORRUPT;
    header[FEED_HEADER_LEN] = '\0';
    if (rc == TN_OK && (strncmp(header, "{\"feed\":\"", 9) != 0 || !is_hex(header + 9, 32) ||
                        strcmp(header + 41, "\"}\n") != 0))
        rc = TN_CORRUPT;
    /* Keys whose row is gone (purged) do not fill the page, so an empty
     * page means the end; seen_cap bounds a long run of them. */
    feed_scan s = {c, tenant, out, NULL, 0, max + FEED_SEEN_EXTRA, max, 0};
    if (rc == TN_OK) {
        /* Another feed's cursor, or one past the end (the feed was replaced):
         * from the top, so nothing is skipped. */
        if (strncmp(id, header + 9, 32) != 0 || off < FEED_HEADER_LEN || off > st.st_size)
            off = FEED_HEADER_LEN;
        s.seen = malloc((size_t)s.seen_cap * sizeof *s.seen);
        rc = s.seen ? scan_feed(&s, fd, &off) : TN_NOMEM;
        snprintf(cursor_out, 256, "%.32s:%lld", header + 9, (long long)off);
        /* A full page with lines left after it: the caller should call again
         * now.  (A partial last line, a writer's append in progress, is not
         * "more": it is read once it ends.) */
        if (rc == TN_OK && out->n >= max && off < st.st_size)
            snprintf(out->next, sizeof out->next, "more");
    }
    if (fd >= 0) close(fd);
    unlock_tenant(lockfd);
    free(s.seen);
    if (rc == TN_NOTFOUND) rc = TN_OK; /* a tenant folder whose feed was never written */
    if (rc != TN_OK) tn_remote_page_free(out);
    else if (out->n > 1) qsort(out->rows, (size_t)out->n, sizeof *out->rows, cmp_feed);
    return rc;
}

/* ---- objects ------------------------------------------------------------------ */

/* The object's path, its folders created when make_dirs. */
static int object_at(dir_conn *c, const tn_remote_row *f, char path[PATH_BUF], int make_dirs) {
    tn__remote_key k;
    size_t name_at;
    int rc = tn__remote_key_build(f->tenant, TN_REMOTE_FILE, f->key, &k);
    if (rc != TN_OK) return rc;
    rc = object_path(c->d, &k, path, &name_at);
    tn__remote_key_free(&k);
    if (rc == TN_OK) rc = tree_ready(c->d, "objects");
    /* From the tenant's folder down (objects/ itself is init's). */
    if (rc == TN_OK && make_dirs)
        rc = mkdirs(path, name_at - strlen("00000000-0000-0000-0000-000000000000/files/"));
    return rc;
}

/* The tenant's objects folder, where its objects' temp files are written,
 * with the stale ones left by crashes removed. */
static int object_tmpdir(dir_conn *c, const tn_remote_row *f, char tmpdir[PATH_BUF]) {
    int rc = mkpath(tmpdir, c->d, "objects/%s", f->tenant); /* checked by object_at */
    if (rc == TN_OK) sweep_tmp(tmpdir, time(NULL) - TMP_STALE_S);
    return rc;
}

static int dir_put_object(tn_remote_conn *cn, const tn_remote_row *f, const void *data, size_t len) {
    dir_conn *c = CONN(cn);
    char path[PATH_BUF], dir[PATH_BUF], tmpdir[PATH_BUF], sha[65];
    int rc = object_at(c, f, path, 1);
    if (rc == TN_OK) rc = object_tmpdir(c, f, tmpdir);
    if (rc != TN_OK) return rc;
    if (tn__digest_hex(data, len, sha) != TN_OK) return TN_NOMEM;
    if (!f->sha256 || strcmp(sha, f->sha256) != 0) return TN_IO; /* the recorded digest, as AWS checks it */
    parent_of(path, dir);
    return put_file_via(c, tmpdir, dir, strrchr(path, '/') + 1, data, len);
}

static int dir_get_object(tn_remote_conn *cn, const tn_remote_row *f, int out) {
    dir_conn *c = CONN(cn);
    char path[PATH_BUF];
    int rc = object_at(c, f, path, 0);
    if (rc != TN_OK) return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return code_of(errno);
    char *buf = malloc(COPY_CHUNK);
    rc = buf ? TN_OK : TN_NOMEM;
    while (rc == TN_OK) {
        ssize_t r = read(fd, buf, COPY_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = code_of(errno);
        if (r <= 0) break;
        rc = write_all(out, buf, (size_t)r);
        if (rc == TN_OK) rc = pace(c, (size_t)r);
    }
    free(buf);
    close(fd);
    return rc;
}

static int dir_delete_object(tn_remote_conn *cn, const tn_remote_row *f) {
    dir_conn *c = CONN(cn);
    char path[PATH_BUF], dir[PATH_BUF];
    int rc = object_at(c, f, path, 0);
    if (rc != TN_OK) return rc;
    if (unlink(path) != 0) return errno == ENOENT || errno == ENOTDIR ? TN_OK : code_of(errno);
    parent_of(path, dir);
    return fsync_dir(dir);
}

/* ---- multipart uploads ----------------------------------------------------------- */

/* The first 16 hex digits of the object name's SHA-256: every upload id of
 * an object starts with them, so mp_abort_all reads only its own. */
static void object_tag(const char *object, char tag[17]) {
    char h[65];
    tn__sha256_hex(object, strlen(object), h);
    memcpy(tag, h, 16);
    tag[16] = '\0';
}

static int upload_id_valid(const char *id) {
    return id && strlen(id) == UPLOAD_ID_LEN && id[16] == '-' && is_hex(id, 16) && is_hex(id + 17, 32);
}

/* Checks that upload id exists and is for f's object; its folder into dir. */
static int upload_open(dir_conn *c, const tn_remote_row *f, const char *id, char dir[PATH_BUF]) {
    tn__remote_key k;
    char tag[17], p[PATH_BUF], *obj = NULL;
    size_t n;
    if (!upload_id_valid(id)) return TN_INVALID;
    int rc = tn__remote_key_build(f->tenant, TN_REMOTE_FILE, f->key, &k);
    if (rc != TN_OK) return rc;
    object_tag(k.object, tag);
    if (memcmp(tag, id, 16) != 0) rc = TN_INVALID;
    if (rc == TN_OK) rc = tree_ready(c->d, "uploads");
    if (rc == TN_OK) rc = mkpath(dir, c->d, "uploads/%s", id);
    if (rc == TN_OK) rc = mkpath(p, c->d, "uploads/%s/object", id);
    if (rc == TN_OK) rc = read_small(p, TN__REMOTE_NAME_MAX, &obj, &n);
    if (rc == TN_OK && strcmp(obj, k.object) != 0) rc = TN_INVALID;
    if (rc == TN_TOOBIG || rc == TN_CORRUPT) rc = TN_INVALID;
    free(obj);
    tn__remote_key_free(&k);
    return rc;
}

/* Removes folder dir and the files in it (an upload's folder holds no
 * folders). */
static int remove_flat(const char *dir) {
    DIR *dh = opendir(dir);
    struct dirent *e;
    while (dh && (e = readdir(dh)) != NULL) {
        char f[PATH_BUF];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (snprintf(f, sizeof f, "%s/%s", dir, e->d_name) < PATH_BUF) unlink(f);
    }
    if (dh) closedir(dh);
    return rmdir(dir) == 0 ? TN_OK : code_of(errno);
}

/* Removes an upload's folder: renamed away first, so no reader sees half of it. */
static int upload_remove(dir_conn *c, const char *id) {
    char p[PATH_BUF], gone[PATH_BUF], r[33], up[PATH_BUF];
    rand_hex(r, 8);
    int rc = mkpath(p, c->d, "uploads/%s", id);
    if (rc == TN_OK) rc = mkpath(gone, c->d, "uploads/.gone-%s-%s", id, r);
    if (rc != TN_OK) return rc;
    if (rename(p, gone) != 0) return errno == ENOENT ? TN_OK : code_of(errno);
    rc = remove_flat(gone);
    parent_of(gone, up);
    int src = fsync_dir(up);
    return rc != TN_OK ? rc : src;
}

/* Removes the uploads nobody touched for UPLOAD_STALE_S (a part written,
 * or the upload begun, changes its folder), and what a killed removal left
 * (".gone-" folders) as soon as it is as old as that too. */
static void sweep_uploads(dir_conn *c) {
    char p[PATH_BUF];
    if (mkpath(p, c->d, "uploads") != TN_OK) return;
    time_t before = time(NULL) - UPLOAD_STALE_S;
    DIR *dh = opendir(p);
    if (!dh) return;
    /* Collected first: removing renames entries of the folder being read. */
    char (*old)[UPLOAD_ID_LEN + 64] = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        char q[PATH_BUF];
        struct stat st;
        int gone = strncmp(e->d_name, ".gone-", 6) == 0;
        if ((!gone && !upload_id_valid(e->d_name)) || strlen(e->d_name) >= sizeof old[0]) continue;
        if (snprintf(q, sizeof q, "%s/%s", p, e->d_name) >= PATH_BUF) continue;
        if (lstat(q, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_mtime >= before) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            void *m = realloc(old, (size_t)cap * sizeof *old);
            if (!m) break;
            old = m;
        }
        memcpy(old[n++], e->d_name, strlen(e->d_name) + 1); /* checked: it fits */
    }
    closedir(dh);
    for (int i = 0; i < n; i++) {
        char q[PATH_BUF];
        if (old[i][0] != '.') upload_remove(c, old[i]);
        else if (snprintf(q, sizeof q, "%s/%s", p, old[i]) < PATH_BUF) remove_flat(q);
    }
    free(old);
}

static int dir_mp_create(tn_remote_conn *cn, const tn_remote_row *f, char *upload_id, size_t n) {
    dir_conn *c = CONN(cn);
    tn__remote_key k;
    char tag[17], rnd[33], id[UPLOAD_ID_LEN + 1], dir[PATH_BUF];
    if (n < sizeof id) return TN_INVALID;
    int rc = tn__remote_key_build(f->tenant, TN_REMOTE_FILE, f->key, &k);
    if (rc != TN_OK) return rc;
    object_tag(k.object, tag);
    rand_hex(rnd, 16);
    snprintf(id, sizeof id, "%s-%s", tag, rnd);
    rc = tree_ready(c->d, "uploads");
    if (rc == TN_OK) sweep_uploads(c);
    if (rc == TN_OK) rc = mkpath(dir, c->d, "uploads/%s", id);
    if (rc == TN_OK) rc = mkdir_durable(dir);
    if (rc == TN_OK) rc = put_file(NULL, dir, "object", k.object, strlen(k.object));
    tn__remote_key_free(&k);
    if (rc == TN_OK) snprintf(upload_id, n, "%s", id);
    return rc;
}

static int dir_mp_part(tn_remote_conn *cn, const tn_remote_row *f, const char *upload_id, int part,
                       const void *data, size_t len, char *etag, size_t etag_n) {
    dir_conn *c = CONN(cn);
    char dir[PATH_BUF], name[32], sha[65];
    if (part < 1 || part > PARTS_MAX || etag_n < sizeof sha) return TN_INVALID;
    int rc = upload_open(c, f, upload_id, dir);
    if (rc != TN_OK) return rc;
    if (tn__digest_hex(data, len, sha) != TN_OK) return TN_NOMEM;
    snprintf(name, sizeof name, "part-%05d", part);
    rc = put_file(c, dir, name, data, len);
    if (rc == TN_OK) snprintf(etag, etag_n, "%s", sha);
    return rc;
}

/* Appends part `path` to fd, checking its SHA-256 against etag. */
static int append_part(int fd, const char *path, const char *etag, int last) {
    int in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0) return errno == ENOENT ? TN_INVALID : code_of(errno);
    struct stat st;
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    char *buf = malloc(COPY_CHUNK);
    int rc = !h || !buf || !EVP_DigestInit_ex(h, EVP_sha256(), NULL) ? TN_NOMEM : TN_OK;
    if (rc == TN_OK && fstat(in, &st) != 0) rc = code_of(errno);
    if (rc == TN_OK && (!S_ISREG(st.st_mode) || (!last && st.st_size < PART_MIN))) rc = TN_INVALID;
    while (rc == TN_OK) {
        ssize_t r = read(in, buf, COPY_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = code_of(errno);
        if (r <= 0) break;
        if (!EVP_DigestUpdate(h, buf, (size_t)r)) rc = TN_NOMEM;
        if (rc == TN_OK) rc = write_all(fd, buf, (size_t)r);
    }
    unsigned char md[TN_SHA256_LEN];
    char hex[65];
    if (rc == TN_OK && !EVP_DigestFinal_ex(h, md, NULL)) rc = TN_NOMEM;
    if (rc == TN_OK) {
        tn__hex(md, sizeof md, hex);
        if (strcmp(hex, etag) != 0) rc = TN_INVALID;
    }
    EVP_MD_CTX_free(h);
    free(buf);
    close(in);
    return rc;
}

static int dir_mp_complete(tn_remote_conn *cn, const tn_remote_row *f, const char *upload_id,
                           const char (*etags)[72], int nparts) {
    dir_conn *c = CONN(cn);
    char updir[PATH_BUF], path[PATH_BUF], dir[PATH_BUF], tmpdir[PATH_BUF], tmp[PATH_BUF];
    char part[PATH_BUF];
    if (nparts < 1 || nparts > PARTS_MAX) return TN_INVALID;
    int fd = -1, rc = upload_open(c, f, upload_id, updir);
    if (rc == TN_OK) rc = object_at(c, f, path, 1);
    if (rc == TN_OK) rc = object_tmpdir(c, f, tmpdir);
    if (rc != TN_OK) return rc;
    parent_of(path, dir);
    if ((rc = tmp_create(tmpdir, tmp, &fd)) != TN_OK) return rc;
    for (int i = 1; rc == TN_OK && i <= nparts; i++) {
        rc = snprintf(part, sizeof part, "%s/part-%05d", updir, i) < PATH_BUF ? TN_OK : TN_INVALID;
        if (rc == TN_OK) rc = append_part(fd, part, etags[i - 1], i == nparts);
    }
    if (rc == TN_OK && fdatasync(fd) != 0) rc = code_of(errno);
    if (close(fd) != 0 && rc == TN_OK) rc = code_of(errno);
    if (rc == TN_OK && rename(tmp, path) != 0) rc = code_of(errno);
    if (rc != TN_OK) {
        unlink(tmp);
        return rc;
    }
    if ((rc = fsync_dir(dir)) != TN_OK) return rc;
    upload_remove(c, upload_id); /* the object is in place; a leftover folder is only space */
    return TN_OK;
}

static int dir_mp_abort(tn_remote_conn *cn, const tn_remote_row *f, const char *upload_id) {
    dir_conn *c = CONN(cn);
    char dir[PATH_BUF];
    int rc = upload_open(c, f, upload_id, dir);
    if (rc == TN_NOTFOUND && tree_ready(c->d, "uploads") == TN_OK) return TN_OK; /* gone already */
    return rc == TN_OK ? upload_remove(c, upload_id) : rc;
}

static int dir_mp_abort_all(tn_remote_conn *cn, const tn_remote_row *f) {
    dir_conn *c = CONN(cn);
    tn__remote_key k;
    char tag[17], p[PATH_BUF];
    int rc = tn__remote_key_build(f->tenant, TN_REMOTE_FILE, f->key, &k);
    if (rc != TN_OK) return rc;
    object_tag(k.object, tag);
    tn__remote_key_free(&k);
    if ((rc = mkpath(p, c->d, "uploads")) != TN_OK) return rc;
    DIR *dh = opendir(p);
    if (!dh) return code_of(errno);
    /* Collected first: removing renames entries of the folder being read. */
    char (*ids)[UPLOAD_ID_LEN + 1] = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while (rc == TN_OK && (e = readdir(dh)) != NULL) {
        if (!upload_id_valid(e->d_name) || memcmp(e->d_name, tag, 16) != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            void *m = realloc(ids, (size_t)cap * sizeof *ids);
            if (!m) { rc = TN_NOMEM; break; }
            ids = m;
        }
        memcpy(ids[n++], e->d_name, sizeof ids[0]); /* checked: UPLOAD_ID_LEN and its NUL */
    }
    closedir(dh);
    for (int i = 0; rc == TN_OK && i < n; i++) {
        char dir[PATH_BUF];
        int orc = upload_open(c, f, ids[i], dir);
        if (orc == TN_OK) rc = upload_remove(c, ids[i]);
        else if (orc != TN_NOTFOUND && orc != TN_INVALID) rc = orc; /* INVALID: another object's */
    }
    free(ids);
    return rc;
}

/* ---- the remote ---------------------------------------------------------------- */

/* The root may hold these besides the tree: what a fresh file system or a
 * desktop puts on a removable disk. */
static int foreign_entry(const char *name) {
    return name[0] != '.' && strcmp(name, "FORMAT") != 0 && strcmp(name, "tenants") != 0 &&
           strcmp(name, "objects") != 0 && strcmp(name, "uploads") != 0 &&
           strcmp(name, "lost+found") != 0;
}

static int dir_init(tn_remote *r, const char **what) {
    dir_remote *d = DIRR(r);
    char p[PATH_BUF], root[PATH_BUF], *text = NULL;
    size_t n;
    struct stat st;
    *what = "the remote directory is not usable";
    if (mkpath(root, d, "%s", "") != TN_OK) return TN_INVALID;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *what = "the remote directory does not exist (create it, or mount the disk)";
        return TN_NOTFOUND;
    }
    int rc = mkpath(p, d, "FORMAT");
    if (rc != TN_OK) return rc;
    rc = read_small(p, 256, &text, &n);
    if (rc == TN_OK) {
        int same = strcmp(text, FORMAT_TEXT) == 0;
        free(text);
        if (!same) {
            *what = "the remote directory holds another format";
            return TN_VERSION;
        }
    } else if (rc == TN_NOTFOUND) {
        /* Never spread the tree over a folder that holds something else. */
        DIR *dh = opendir(root);
        struct dirent *e;
        while (dh && rc == TN_NOTFOUND && (e = readdir(dh)) != NULL)
            if (foreign_entry(e->d_name)) rc = TN_EXISTS;
        if (dh) closedir(dh);
        if (rc == TN_EXISTS) {
            *what = "the remote directory is not empty and is not a tenantry remote";
            return rc;
        }
    } else {
        return rc;
    }
    const char *subs[] = {"tenants", "objects", "uploads"};
    for (size_t i = 0; i < 3; i++) {
        if ((rc = mkpath(p, d, "%s", subs[i])) == TN_OK) rc = mkdir_durable(p);
        if (rc != TN_OK) {
            *what = rc == TN_DENIED ? "the remote directory is not writable"
                                    : "creating the remote's folders failed";
            return rc;
        }
    }
    rc = put_file(NULL, d->root[0] ? d->root : "/", "FORMAT", FORMAT_TEXT, strlen(FORMAT_TEXT));
    if (rc != TN_OK) *what = "writing the remote's FORMAT file failed";
    return rc;
}

static int dir_conn_open(tn_remote *r, int64_t bandwidth, tn_remote_conn **out) {
    dir_conn *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return TN_NOMEM;
    c->d = DIRR(r);
    c->paced = bandwidth > 0;
    if (c->paced) tn__pace_set(&c->d->pace, bandwidth);
    *out = (tn_remote_conn *)(void *)c;
    return TN_OK;
}

static void dir_conn_close(tn_remote_conn *cn) {
    dir_conn *c = CONN(cn);
    if (c) free(c->list_names);
    free(c);
}

static void dir_close(tn_remote *r) {
    if (r) tn__pace_destroy(&DIRR(r)->pace);
    free(r);
}

/* The end of tenant's feed now: the feed's id and its length ("" when the
 * tenant has no feed yet: the next pull starts at the top). */
static int dir_feed_end(tn_remote_conn *cn, const char *tenant, char cursor_out[256]) {
    dir_conn *c = CONN(cn);
    char p[PATH_BUF], header[FEED_HEADER_LEN + 1];
    cursor_out[0] = '\0';
    if (!tenant_dir_name(tenant)) return TN_INVALID;
    int lockfd, fd = -1, rc = tree_ready(c->d, "tenants");
    if (rc != TN_OK) return rc;
    rc = lock_tenant(c, tenant, 0, 0, &lockfd);
    if (rc == TN_NOTFOUND) return TN_OK;
    if (rc != TN_OK) return rc;
    if ((rc = mkpath(p, c->d, "tenants/%s/feed", tenant)) == TN_OK &&
        (fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
        rc = errno == ENOENT ? TN_NOTFOUND : code_of(errno);
    struct stat st;
    if (rc == TN_OK && (fstat(fd, &st) != 0 || pread(fd, header, FEED_HEADER_LEN, 0) != FEED_HEADER_LEN))
        rc = TN_CORRUPT;
    header[FEED_HEADER_LEN] = '\0';
    if (rc == TN_OK && (strncmp(header, "{\"feed\":\"", 9) != 0 || !is_hex(header + 9, 32)))
        rc = TN_CORRUPT;
    if (rc == TN_OK) snprintf(cursor_out, 256, "%.32s:%lld", header + 9, (long long)st.st_size);
    if (fd >= 0) close(fd);
    unlock_tenant(lockfd);
    return rc == TN_NOTFOUND ? TN_OK : rc;
}

static const tn_remote_methods dir_methods = {
    .version = 2,
    .name = "dir",
    .init = dir_init,
    .conn_open = dir_conn_open,
    .conn_close = dir_conn_close,
    .put_rows = dir_put_rows,
    .versions = dir_versions,
    .put_object = dir_put_object,
    .mp_create = dir_mp_create,
    .mp_part = dir_mp_part,
    .mp_complete = dir_mp_complete,
    .mp_abort = dir_mp_abort,
    .mp_abort_all = dir_mp_abort_all,
    .delete_object = dir_delete_object,
    .close = dir_close,
    .changes = dir_changes,
    .list = dir_list,
    .get_object = dir_get_object,
    .delete_row = dir_delete_row,
    .tenants = dir_tenants,
    .feed_end = dir_feed_end,
};

int tn_remote_dir_open(const char *path, tn_remote **out, char *err, size_t errlen) {
    *out = NULL;
    if (!path || path[0] != '/') {
        snprintf(err, errlen, "a directory remote needs an absolute path (dir:/mnt/backup)");
        return TN_INVALID;
    }
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] == '/') n--;
    if (n > ROOT_MAX) {
        snprintf(err, errlen, "the remote directory's path is too long");
        return TN_INVALID;
    }
    dir_remote *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return TN_NOMEM;
    }
    memcpy(d->root, path, n);
    tn__pace_init(&d->pace);
    const char *fc = getenv("TENANTRY_DIR_FEED_COMPACT");
    int64_t fcv = 0;
    d->feed_compact = fc && parse_dec(fc, strlen(fc), &fcv) && fcv >= 4096 ? fcv : FEED_COMPACT;
    d->base.m = &dir_methods;
    d->base.batch_rows = BATCH_ROWS;
    *out = &d->base;
    return TN_OK;
}
