/*
 * store.c - opening a store, its connection pool, tenants, and the checks.
 *
 * Layout of a data directory:
 *   tenantry.db (+ -wal, -shm)   the database, WAL mode
 *   files/<tenant id>/<name>     tenant files (src/session.c builds the paths)
 *
 * Locking: st->mu guards the pool (idle list, nconn); the clock uses atomics
 * (src/hlc.c).  Every connection is used by one thread at a time, so SQLite is
 * opened without its own per-connection mutex.
 */
#include "clock.h"
#include "store_int.h"

#include "schema.h"

#include <errno.h>
#include <ftw.h>
#include <malloc.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static __thread char tls_errmsg[TN__ERRMSG];

/* ---- errors --------------------------------------------------------------- */

int tn__code(int rc) {
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return TN_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return TN_BUSY;
    case SQLITE_FULL: return TN_FULL;
    case SQLITE_NOMEM: return TN_NOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return TN_CORRUPT;
    case SQLITE_READONLY: return TN_READONLY;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: return TN_IO;
    case SQLITE_AUTH: return TN_DENIED;
    case SQLITE_CONSTRAINT: return TN_INVALID;
    case SQLITE_TOOBIG: return TN_TOOBIG;
    default: return TN_ERROR;
    }
}

int tn__fail(tn_store *st, int rc, const char *fmt, ...) {
    (void)st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_errmsg, sizeof tls_errmsg, fmt, ap);
    va_end(ap);
    return rc;
}

int tn__fail_db(tn_store *st, tn__conn *c, int sqlite_rc) {
    return tn__fail(st, tn__code(sqlite_rc), "%s", sqlite3_errmsg(c->db));
}

const char *tn_errmsg(tn_store *st) {
    (void)st;
    return tls_errmsg[0] ? tls_errmsg : "no error";
}

/* ---- small helpers -------------------------------------------------------- */


int64_t tn__now_ms(tn_store *st) {
    return st->clock_ms();
}

void tn__uuid4(char out[37]) {
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Whether the write-ahead log beside path holds anything (a store whose
 * pages are all still in the log has an empty main file). */
static int wal_has_data(const char *path) {
    char wal[4096];
    struct stat sb;
    if (snprintf(wal, sizeof wal, "%s-wal", path) >= (int)sizeof wal) return 1;
    return stat(wal, &sb) == 0 && sb.st_size > 0;
}

static int mkdir_p(const char *path, mode_t mode) {
    char *p = strdup(path);
    if (!p) return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, mode) != 0 && errno != EEXIST ? -1 : 0;
    free(p);
    return rc;
}

/* ---- connections ---------------------------------------------------------- */

static void conn_free(tn__conn *c) {
    if (!c) return;
    for (int i = 0; i < TN__STMT_CACHE; i++) sqlite3_finalize(c->cache[i].stmt);
    sqlite3_close_v2(c->db);
    free(c);
}

static const char *sync_pragma(int mode) {
    switch (mode) {
    case TN_SYNC_OFF: return "PRAGMA synchronous = OFF";
    case TN_SYNC_NORMAL: return "PRAGMA synchronous = NORMAL";
    case TN_SYNC_EXTRA: return "PRAGMA synchronous = EXTRA";
    default: return "PRAGMA synchronous = FULL";
    }
}

/* What every connection disables or pins (sqlite3_db_config): */
static const struct {
    int op, value;
} conn_config[] = {
    {SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0},   /* the schema calls only innocuous functions */
    {SQLITE_DBCONFIG_DEFENSIVE, 1},        /* no writes to sqlite_schema, no raw pages */
    {SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0}, /* no code loaded from SQL or C */
    {SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0}, /* no pointers from fts3_tokenizer() */
    {SQLITE_DBCONFIG_WRITABLE_SCHEMA, 0},
    {SQLITE_DBCONFIG_LEGACY_ALTER_TABLE, 0},
    {SQLITE_DBCONFIG_TRIGGER_EQP, 0},
    {SQLITE_DBCONFIG_RESET_DATABASE, 0},
    {SQLITE_DBCONFIG_DQS_DML, 0},          /* "x" is never a string */
    {SQLITE_DBCONFIG_DQS_DDL, 0},
    {SQLITE_DBCONFIG_ENABLE_TRIGGER, 1},   /* the schema is made of them */
    {SQLITE_DBCONFIG_ENABLE_VIEW, 1},
    {SQLITE_DBCONFIG_ENABLE_FKEY, 1},
};

static int conn_new(tn_store *st, int create, tn__conn **out) {
    tn__conn *c = calloc(1, sizeof *c);
    if (!c) return tn__fail(st, TN_NOMEM, "out of memory");
    c->st = st;
    c->trusted = 1;
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    flags |= st->opt.readonly ? SQLITE_OPEN_READONLY
                              : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(st->dbpath, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        int code = tn__fail(st, tn__code(rc), "cannot open %s: %s", st->dbpath,
                            c->db ? sqlite3_errmsg(c->db) : "out of memory");
        conn_free(c);
        return code;
    }
    /* Hardening that holds for trusted code too; each setting is read back,
     * and a connection that does not take one is not used. */
    for (size_t i = 0; i < sizeof conn_config / sizeof conn_config[0]; i++) {
        int v = -1;
        sqlite3_db_config(c->db, conn_config[i].op, conn_config[i].value, &v);
        if (v != conn_config[i].value) {
            int code = tn__fail(st, TN_ERROR, "cannot configure %s: SQLite refused setting %d",
                                st->dbpath, conn_config[i].op);
            conn_free(c);
            return code;
        }
    }
    sqlite3_limit(c->db, SQLITE_LIMIT_SQL_LENGTH, 1 << 20);
    sqlite3_limit(c->db, SQLITE_LIMIT_LENGTH, 64 << 20);
    sqlite3_limit(c->db, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_busy_timeout(c->db, st->opt.busy_timeout_ms);

    char *err = NULL;
    /* Debian's SQLite turns recursive triggers on by default; the schema's
     * triggers are written for them off. */
    rc = sqlite3_exec(c->db, "PRAGMA foreign_keys = ON; PRAGMA trusted_schema = OFF; "
                             "PRAGMA recursive_triggers = OFF", NULL, NULL, &err);
    if (rc == SQLITE_OK && !st->opt.readonly)
        rc = sqlite3_exec(c->db, sync_pragma(st->opt.synchronous), NULL, NULL, &err);
    if (rc == SQLITE_OK) rc = tn__functions_register(c) == TN_OK ? SQLITE_OK : SQLITE_ERROR;
    if (rc != SQLITE_OK) {
        int code = tn__fail(st, tn__code(rc), "cannot configure %s: %s", st->dbpath,
                            err ? err : sqlite3_errmsg(c->db));
        sqlite3_free(err);
        conn_free(c);
        return code;
    }
    tn__guard_install(c);
    *out = c;
    return TN_OK;
}

int tn__conn_get(tn_store *st, int trusted, tn__conn **out) {
    pthread_mutex_lock(&st->mu);
    tn__conn *c = st->idle;
    if (c) {
        st->idle = c->next;
    } else if (st->nconn >= st->opt.max_connections) {
        pthread_mutex_unlock(&st->mu);
        return tn__fail(st, TN_BUSY, "all %d connections are in use", st->opt.max_connections);
    } else {
        st->nconn++; /* reserve the slot before the slow open */
    }
    pthread_mutex_unlock(&st->mu);

    if (!c) {
        int rc = conn_new(st, 0, &c);
        if (rc != TN_OK) {
            pthread_mutex_lock(&st->mu);
            st->nconn--;
            pthread_mutex_unlock(&st->mu);
            return rc;
        }
    }
    c->next = NULL;
    c->tenant = 0;
    c->trusted = trusted ? 1 : 0;
    *out = c;
    return TN_OK;
}

void tn__conn_put(tn_store *st, tn__conn *c) {
    if (!c) return;
    /* Never lend out a connection in the middle of someone's transaction. */
    if (!sqlite3_get_autocommit(c->db)) {
        c->trusted = 1;
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
    c->tenant = 0;
    c->trusted = 1;
    pthread_mutex_lock(&st->mu);
    c->next = st->idle;
    st->idle = c;
    pthread_mutex_unlock(&st->mu);
}

int tn__stmt(tn__conn *c, const char *sql, sqlite3_stmt **out) {
    int free_slot = -1;
    for (int i = 0; i < TN__STMT_CACHE; i++) {
        tn__stmt_slot *sl = &c->cache[i];
        if (sl->sql == sql && sl->trusted == c->trusted) {
            sqlite3_reset(sl->stmt);
            sqlite3_clear_bindings(sl->stmt);
            *out = sl->stmt;
            return TN_OK;
        }
        if (!sl->sql && free_slot < 0) free_slot = i;
    }
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) return tn__fail_db(c->st, c, rc);
    if (free_slot < 0) {
        /* Full: evict slot 0; the cache holds only the store's own SQL, so
         * this happens only if a layer grows beyond TN__STMT_CACHE strings. */
        free_slot = 0;
        sqlite3_finalize(c->cache[0].stmt);
    }
    c->cache[free_slot] = (tn__stmt_slot){sql, c->trusted, s};
    *out = s;
    return TN_OK;
}

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

int tn__exec(tn__conn *c, const char *sql) {
    sqlite3_stmt *s;
    int rc = tn__stmt(c, sql, &s);
    return rc == TN_OK ? tn__step_done(c, s) : rc;
}

int tn__begin(tn__conn *c) { return tn__exec(c, SQL_BEGIN); }
int tn__commit(tn__conn *c) { return tn__exec(c, SQL_COMMIT); }
void tn__rollback(tn__conn *c) {
    if (!sqlite3_get_autocommit(c->db)) tn__exec(c, SQL_ROLLBACK);
}

int tn__trusted_tx(tn_store *st, tn__tx_fn body, void *arg) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    if ((rc = tn__begin(c)) == TN_OK) {
        rc = body(c, arg);
        if (rc == TN_OK) rc = tn__commit(c);
        if (rc != TN_OK) tn__rollback(c);
    }
    tn__conn_put(st, c);
    return rc;
}

int tn__step_done(tn__conn *c, sqlite3_stmt *s) {
    int src = sqlite3_step(s);
    sqlite3_reset(s);
    return src == SQLITE_DONE ? TN_OK : tn__fail_db(c->st, c, src);
}

/* ---- open and close ------------------------------------------------------- */

void tn_options_init(tn_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->synchronous = TN_SYNC_FULL;
    opt->busy_timeout_ms = 5000;
    opt->max_connections = 64;
    opt->console_ms = 2000;
    opt->console_rows = 1000000;
    opt->console_heap = 64 << 20;
}

static int load_secret(tn_store *st, tn__conn *c) {
    static const char get[] = "SELECT value FROM _meta WHERE key = 'cursor_secret'";
    static const char put[] = "INSERT OR IGNORE INTO _meta (key, value) VALUES ('cursor_secret', ?1)";
    sqlite3_stmt *s;
    if (!st->opt.readonly) {
        unsigned char fresh[32];
        randombytes_buf(fresh, sizeof fresh);
        int rc = tn__stmt(c, put, &s);
        if (rc != TN_OK) return rc;
        sqlite3_bind_blob(s, 1, fresh, sizeof fresh, SQLITE_TRANSIENT);
        int src = sqlite3_step(s);
        sqlite3_reset(s);
        sodium_memzero(fresh, sizeof fresh);
        if (src != SQLITE_DONE) return tn__fail_db(st, c, src);
    }
    int rc = tn__stmt(c, get, &s);
    if (rc != TN_OK) return rc;
    int src = sqlite3_step(s);
    if (src == SQLITE_ROW && sqlite3_column_bytes(s, 0) == (int)sizeof st->secret)
        memcpy(st->secret, sqlite3_column_blob(s, 0), sizeof st->secret);
    sqlite3_reset(s);
    return TN_OK;
}

int tn_open(const char *dir, const tn_options *opt, tn_store **out) {
    *out = NULL;
    if (!dir || !*dir) return tn__fail(NULL, TN_INVALID, "no data directory given");
    if (sodium_init() < 0) return tn__fail(NULL, TN_ERROR, "libsodium failed to start");

    tn_store *st = calloc(1, sizeof *st);
    if (!st) return tn__fail(NULL, TN_NOMEM, "out of memory");
    if (opt)
        st->opt = *opt;
    else
        tn_options_init(&st->opt);
    if (st->opt.busy_timeout_ms <= 0) st->opt.busy_timeout_ms = 5000;
    if (st->opt.max_connections <= 0) st->opt.max_connections = 64;
    /* A console call must end well inside the busy timeout: a writer waiting
     * behind it then still gets the lock in time. */
    if (st->opt.console_ms <= 0) st->opt.console_ms = 2000;
    if (st->opt.console_ms > st->opt.busy_timeout_ms / 2)
        st->opt.console_ms = st->opt.busy_timeout_ms / 2 > 0 ? st->opt.busy_timeout_ms / 2 : 1;
    if (st->opt.console_rows <= 0) st->opt.console_rows = 1000000;
    if (st->opt.console_heap <= 0) st->opt.console_heap = 64 << 20;
    st->clock_ms = tn__wall_ms;
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->gc_mu, NULL);
    pthread_cond_init(&st->gc_cv, NULL);
    int rc = TN_NOMEM;
    tn__conn *c = NULL;
    st->dir = strdup(dir);
    st->dbpath = path_join(dir, "tenantry.db");
    if (!st->dir || !st->dbpath) goto fail;

    struct stat sb;
    if (st->opt.create && !st->opt.readonly) {
        char *files = path_join(dir, "files");
        int ok = files && mkdir_p(files, 0700) == 0;
        free(files);
        if (!ok) {
            rc = tn__fail(st, TN_IO, "cannot create the data directory %s: %s", dir,
                          strerror(errno));
            goto fail;
        }
    } else if (stat(st->dbpath, &sb) != 0) {
        rc = tn__fail(st, TN_NOTFOUND, "no store in %s (create one with `tenantry init`)", dir);
        goto fail;
    } else if (sb.st_size == 0 && !wal_has_data(st->dbpath)) {
        /* An emptied file (a truncation, a botched copy) would otherwise open
         * as a brand-new store and silently lose every tenant. */
        rc = tn__fail(st, TN_CORRUPT, "%s is empty: not a tenantry store (restore it from a "
                      "backup, or remove it and run `tenantry init`)", st->dbpath);
        goto fail;
    }

    rc = conn_new(st, st->opt.create, &c);
    if (rc != TN_OK) goto fail;
    st->nconn = 1;
    /* Tenant data and key hashes: owner only.  SQLite gives the -wal and -shm
     * files the database file's mode. */
    if (st->opt.create && chmod(st->dbpath, 0600) != 0) {
        rc = tn__fail(st, TN_IO, "cannot restrict %s: %s", st->dbpath, strerror(errno));
        goto fail;
    }
    if (!st->opt.readonly) {
        char *err = NULL;
        int src = sqlite3_exec(c->db, "PRAGMA journal_mode = WAL", NULL, NULL, &err);
        if (src != SQLITE_OK) {
            rc = tn__fail(st, tn__code(src), "cannot enable WAL in %s: %s", st->dbpath,
                          err ? err : "unknown");
            sqlite3_free(err);
            goto fail;
        }
        char why[TN__ERRMSG];
        rc = tn__migrate(c->db, tn__migrations, tn__migration_count, why, sizeof why);
        if (rc != TN_OK) {
            tn__fail(st, rc, "%s: %s", st->dbpath, why);
            goto fail;
        }
    } else {
        int v = 0;
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
            sqlite3_step(q) == SQLITE_ROW)
            v = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
        if (v > tn__migration_count) {
            rc = tn__fail(st, TN_VERSION, "%s has schema version %d, newer than this "
                          "tenantry's %d; upgrade tenantry", st->dbpath, v, tn__migration_count);
            goto fail;
        }
    }
    if ((rc = tn__guard_load(st, c->db)) != TN_OK) goto fail;
    if ((rc = tn__hlc_init(st, c->db)) != TN_OK) goto fail;
    if ((rc = load_secret(st, c)) != TN_OK) goto fail;

    st->idle = c;
    *out = st;
    return TN_OK;

fail:
    conn_free(c);
    st->nconn = 0;
    tn_close(st);
    return rc;
}

void tn_close(tn_store *st) {
    if (!st) return;
    tn__conn *c = st->idle;
    while (c) {
        tn__conn *next = c->next;
        conn_free(c);
        c = next;
    }
    tn__guard_free(st);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->gc_mu);
    pthread_cond_destroy(&st->gc_cv);
    sodium_memzero(st->secret, sizeof st->secret);
    free(st->dir);
    free(st->dbpath);
    free(st);
}

void tn_store_trim(tn_store *st) {
    pthread_mutex_lock(&st->mu);
    for (tn__conn *c = st->idle; c; c = c->next) sqlite3_db_release_memory(c->db);
    pthread_mutex_unlock(&st->mu);
    malloc_trim(0);
}

typedef struct purge_arg {
    int64_t cutoff_default, now, purged;
} purge_arg;

static int purge_body(tn__conn *c, void *arg) {
    /* A row still named by the outbox is not synced yet; the NOT IN list is
     * built once per statement (the outbox has no index on ref). */
    static const char *const sql[] = {
        "DELETE FROM _items WHERE deleted = 1"
        "   AND updated_at < coalesce(?2 - (SELECT tombstone_days FROM _tenant_settings"
        "                                    WHERE tenant = _items.tenant) * 86400000, ?1)"
        "   AND rowid NOT IN (SELECT ref FROM _outbox WHERE kind = 1)",
        "DELETE FROM _files WHERE deleted = 1"
        "   AND updated_at < coalesce(?2 - (SELECT tombstone_days FROM _tenant_settings"
        "                                    WHERE tenant = _files.tenant) * 86400000, ?1)"
        "   AND rowid NOT IN (SELECT ref FROM _outbox WHERE kind = 2)",
    };
    purge_arg *a = arg;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *s;
        int rc = tn__stmt(c, sql[i], &s);
        if (rc != TN_OK) return rc;
        sqlite3_bind_int64(s, 1, a->cutoff_default);
        sqlite3_bind_int64(s, 2, a->now);
        rc = tn__step_done(c, s);
        if (rc != TN_OK) return rc;
        a->purged += sqlite3_changes64(c->db);
    }
    return TN_OK;
}

int tn_tombstones_purge(tn_store *st, int64_t default_ttl_s, int64_t *purged) {
    if (purged) *purged = 0;
    if (default_ttl_s < 1 || default_ttl_s > 100LL * 365 * 86400)
        return tn__fail(st, TN_INVALID, "tombstone retention must be 1 s to 100 years");
    purge_arg a = {0, tn__now_ms(st), 0};
    a.cutoff_default = a.now - default_ttl_s * 1000;
    int rc = tn__trusted_tx(st, purge_body, &a);
    if (rc == TN_OK && purged) *purged = a.purged;
    return rc;
}

const char *tn_store_dir(tn_store *st) {
    return st->dir;
}

int tn_schema_version(tn_store *st, int *version) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    static const char sql[] = "PRAGMA user_version";
    sqlite3_stmt *s;
    rc = tn__stmt(c, sql, &s);
    if (rc == TN_OK) {
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW)
            *version = sqlite3_column_int(s, 0);
        else
            rc = tn__fail_db(st, c, src);
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

/* ---- audit ---------------------------------------------------------------- */

int tn__audit(tn__conn *c, const char *actor, int64_t tid, const char *action,
              const char *detail) {
    static const char sql[] =
        "INSERT INTO _audit (at, actor, tenant, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)";
    int was = c->trusted;
    c->trusted = 1;
    sqlite3_stmt *s;
    int rc = tn__stmt(c, sql, &s);
    if (rc == TN_OK) {
        sqlite3_bind_int64(s, 1, tn__now_ms(c->st));
        sqlite3_bind_text(s, 2, actor ? actor : "system", -1, SQLITE_STATIC);
        if (tid > 0) sqlite3_bind_int64(s, 3, tid);
        sqlite3_bind_text(s, 4, action, -1, SQLITE_STATIC);
        if (detail) sqlite3_bind_text(s, 5, detail, -1, SQLITE_STATIC);
        int src = sqlite3_step(s);
        sqlite3_reset(s);
        if (src != SQLITE_DONE) rc = tn__fail_db(c->st, c, src);
    }
    c->trusted = was;
    return rc;
}

/* ---- tenants -------------------------------------------------------------- */

static int name_valid(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > TN_TENANT_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '-'))) return 0;
    }
    return 1;
}

int tn__uuid_valid(const char *id) {
    if (!id || strlen(id) != 36) return 0;
    for (int i = 0; i < 36; i++) {
        char ch = id[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-') return 0;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static void tenant_row(sqlite3_stmt *s, tn_tenant *t) {
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(t->name, sizeof t->name, "%s", (const char *)sqlite3_column_text(s, 1));
    t->created_at = sqlite3_column_int64(s, 2);
    if (sqlite3_column_count(s) > 3) t->items = sqlite3_column_int64(s, 3);
}

int tn__tenant_tid(tn__conn *c, const char *id, int64_t *tid) {
    static const char sql[] = "SELECT tid FROM _tenants WHERE id = ?1";
    if (!tn__uuid_valid(id)) return tn__fail(c->st, TN_NOTFOUND, "no such tenant");
    int was = c->trusted;
    c->trusted = 1;
    sqlite3_stmt *s;
    int rc = tn__stmt(c, sql, &s);
    if (rc == TN_OK) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW)
            *tid = sqlite3_column_int64(s, 0);
        else
            rc = src == SQLITE_DONE ? tn__fail(c->st, TN_NOTFOUND, "no such tenant")
                                    : tn__fail_db(c->st, c, src);
        sqlite3_reset(s);
    }
    c->trusted = was;
    return rc;
}

static int tenant_lookup(tn_store *st, const char *sql, const char *key, tn_tenant *out) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    rc = tn__stmt(c, sql, &s);
    if (rc == TN_OK) {
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW) {
            if (out) tenant_row(s, out);
        } else {
            rc = src == SQLITE_DONE ? tn__fail(st, TN_NOTFOUND, "no such tenant")
                                    : tn__fail_db(st, c, src);
        }
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

int tn_tenant_get(tn_store *st, const char *id, tn_tenant *out) {
    static const char sql[] = "SELECT id, name, created_at FROM _tenants WHERE id = ?1";
    if (!tn__uuid_valid(id)) return tn__fail(st, TN_NOTFOUND, "no such tenant");
    return tenant_lookup(st, sql, id, out);
}

int tn_tenant_find(tn_store *st, const char *name, tn_tenant *out) {
    static const char sql[] = "SELECT id, name, created_at FROM _tenants WHERE name = ?1";
    if (!name_valid(name)) return tn__fail(st, TN_NOTFOUND, "no such tenant");
    return tenant_lookup(st, sql, name, out);
}

static const char NAME_RULE[] =
    "a tenant name is 1-128 characters of A-Z a-z 0-9 . _ - and starts with a letter or digit";

static int create_body(tn__conn *c, void *arg) {
    static const char sql[] =
        "INSERT INTO _tenants (id, name, created_at) VALUES (?1, ?2, ?3) RETURNING tid";
    const tn_tenant *t = arg;
    sqlite3_stmt *s;
    int rc = tn__stmt(c, sql, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, t->created_at);
    int src = sqlite3_step(s);
    int64_t tid = src == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    if (src == SQLITE_ROW) src = sqlite3_step(s);
    sqlite3_reset(s);
    if ((src & 0xff) == SQLITE_CONSTRAINT)
        return tn__fail(c->st, TN_EXISTS, "a tenant with that name or id already exists");
    if (src != SQLITE_DONE) return tn__fail_db(c->st, c, src);
    return tn__audit(c, "admin", tid, "tenant.create", t->name);
}

int tn_tenant_create(tn_store *st, const char *name, tn_tenant *out) {
    return tn_tenant_provision(st, name, NULL, out);
}

/* A UUID v4 as the store generates them: version nibble 4, RFC 4122 variant. */
static int uuid4_valid(const char *id) {
    return tn__uuid_valid(id) && id[14] == '4' && strchr("89ab", id[19]) != NULL;
}

int tn_tenant_provision(tn_store *st, const char *name, const char *id, tn_tenant *out) {
    if (!name_valid(name)) return tn__fail(st, TN_INVALID, "%s", NAME_RULE);
    if (id && !uuid4_valid(id))
        return tn__fail(st, TN_INVALID, "a tenant id is a lowercase UUID v4 made by tenantry");
    tn_tenant t = {0};
    if (id)
        snprintf(t.id, sizeof t.id, "%s", id);
    else
        tn__uuid4(t.id);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.created_at = tn__now_ms(st);
    int rc = tn__trusted_tx(st, create_body, &t);
    if (rc == TN_OK && out) *out = t;
    return rc;
}

int tn_tenant_list(tn_store *st, tn_tenant_fn fn, void *arg) {
    static const char sql[] =
        "SELECT t.id, t.name, t.created_at, "
        "       (SELECT count(*) FROM _items i WHERE i.tenant = t.tid AND i.deleted = 0) "
        "  FROM _tenants t ORDER BY t.name";
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    if ((rc = tn__stmt(c, sql, &s)) == TN_OK) {
        int src;
        while ((src = sqlite3_step(s)) == SQLITE_ROW) {
            tn_tenant t;
            tenant_row(s, &t);
            if (fn(&t, arg)) break;
        }
        if (src != SQLITE_ROW && src != SQLITE_DONE) rc = tn__fail_db(st, c, src);
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

typedef struct rename_args {
    const char *id, *name;
} rename_args;

static int rename_body(tn__conn *c, void *arg) {
    static const char sql[] = "UPDATE _tenants SET name = ?2 WHERE tid = ?1";
    const rename_args *a = arg;
    int64_t tid = 0;
    sqlite3_stmt *s;
    int rc = tn__tenant_tid(c, a->id, &tid);
    if (rc == TN_OK) rc = tn__stmt(c, sql, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, tid);
    sqlite3_bind_text(s, 2, a->name, -1, SQLITE_STATIC);
    int src = sqlite3_step(s);
    sqlite3_reset(s);
    if ((src & 0xff) == SQLITE_CONSTRAINT)
        return tn__fail(c->st, TN_EXISTS, "a tenant named %s already exists", a->name);
    if (src != SQLITE_DONE) return tn__fail_db(c->st, c, src);
    return tn__audit(c, "admin", tid, "tenant.rename", a->name);
}

int tn_tenant_rename(tn_store *st, const char *id, const char *new_name) {
    if (!name_valid(new_name)) return tn__fail(st, TN_INVALID, "%s", NAME_RULE);
    rename_args a = {id, new_name};
    return tn__trusted_tx(st, rename_body, &a);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/*
 * Deletes the tenant's rows from every table with a `tenant` column (so tables
 * later migrations add are covered too), except the append-only audit log,
 * then the tenant, in one transaction.
 */
static int delete_body(tn__conn *c, void *arg) {
    static const char tables[] =
        "SELECT m.name FROM sqlite_schema m, pragma_table_info(m.name) p "
        " WHERE m.type = 'table' AND p.name = 'tenant' AND m.name NOT IN ('_audit', '_tenants') "
        " ORDER BY m.name = '_outbox' DESC, m.name";
    static const char del_tenant[] = "DELETE FROM _tenants WHERE tid = ?1";
    int64_t tid = 0;
    sqlite3_stmt *s;
    int rc = tn__tenant_tid(c, arg, &tid);
    if (rc == TN_OK) rc = tn__stmt(c, tables, &s);
    if (rc != TN_OK) return rc;
    int src;
    while (rc == TN_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        char sql[160];
        /* Table names come from our own schema and start with '_'. */
        snprintf(sql, sizeof sql, "DELETE FROM \"%s\" WHERE tenant = ?1",
                 (const char *)sqlite3_column_text(s, 0));
        sqlite3_stmt *d;
        int drc = sqlite3_prepare_v2(c->db, sql, -1, &d, NULL);
        if (drc == SQLITE_OK) {
            sqlite3_bind_int64(d, 1, tid);
            drc = sqlite3_step(d);
            if (drc == SQLITE_DONE) drc = SQLITE_OK;
        }
        if (drc != SQLITE_OK) rc = tn__fail_db(c->st, c, drc);
        sqlite3_finalize(d);
    }
    sqlite3_reset(s);
    if (rc == TN_OK) rc = tn__stmt(c, del_tenant, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(s, 1, tid);
    if ((rc = tn__step_done(c, s)) != TN_OK) return rc;
    return tn__audit(c, "admin", tid, "tenant.delete", NULL);
}

/* The rows go in one transaction; then the tenant's files directory. */
int tn_tenant_delete(tn_store *st, const char *id) {
    int rc = tn__trusted_tx(st, delete_body, (void *)id);
    if (rc == TN_OK) {
        char rel[64];
        snprintf(rel, sizeof rel, "files/%s", id);
        char *p = path_join(st->dir, rel);
        if (p) nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(p);
    }
    return rc;
}

/* ---- check ---------------------------------------------------------------- */

typedef struct report {
    char *buf;
    size_t len, cap;
    int problems;
} report;

static void report_add(report *r, const char *line) {
    size_t n = strlen(line);
    if (r->len + n + 2 > r->cap) {
        size_t cap = (r->cap + n + 2) * 2;
        char *nb = realloc(r->buf, cap);
        if (!nb) return;
        r->buf = nb;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, line, n);
    r->len += n;
    r->buf[r->len++] = '\n';
    r->buf[r->len] = '\0';
    r->problems++;
}

static const struct {
    const char *sql;
    const char *what;
} invariants[] = {
    {"SELECT count(*) FROM _items WHERE tenant NOT IN (SELECT tid FROM _tenants)",
     "items belong to no tenant"},
    {"SELECT count(*) FROM _files WHERE tenant NOT IN (SELECT tid FROM _tenants)",
     "files belong to no tenant"},
    {"SELECT count(*) FROM _api_keys WHERE tenant NOT IN (SELECT tid FROM _tenants)",
     "API keys belong to no tenant"},
    {"SELECT count(*) FROM _outbox o WHERE NOT ("
     "  (o.kind = 1 AND EXISTS (SELECT 1 FROM _items i WHERE i.rowid = o.ref AND i.tenant = o.tenant))"
     "  OR (o.kind = 2 AND EXISTS (SELECT 1 FROM _files f WHERE f.rowid = o.ref AND f.tenant = o.tenant)))",
     "pending outbox rows point at no row"},
    {"SELECT count(*) FROM _items WHERE deleted = 0 AND NOT tn_json_valid(data)",
     "items hold invalid JSON"},
    {"SELECT count(*) FROM _meta WHERE key = 'restore_incomplete'",
     "a restore has not finished (run tenantry restore again)"},
    {"SELECT count(*) FROM _files WHERE deleted = 0 "
     "   AND NOT tn_file_row_valid(name, size, sha256, content_type)",
     "files have a name, size, checksum or content type the file calls refuse"},
};

int tn_check_quick(tn_store *st) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *q;
    int src = sqlite3_prepare_v2(c->db, "PRAGMA quick_check(1)", -1, &q, NULL);
    if (src == SQLITE_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(q, 0);
        if (!v || strcmp(v, "ok") != 0)
            rc = tn__fail(st, TN_CORRUPT, "%s is damaged: %s", st->dbpath, v ? v : "?");
    } else {
        rc = tn__fail(st, TN_CORRUPT, "%s is damaged: %s", st->dbpath, sqlite3_errmsg(c->db));
    }
    sqlite3_finalize(q);
    tn__conn_put(st, c);
    return rc;
}

int tn_check(tn_store *st, char **out) {
    if (out) *out = NULL;
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    report r = {0};
    char line[512];
    sqlite3_stmt *s;

    int src = sqlite3_prepare_v2(c->db, "PRAGMA integrity_check", -1, &s, NULL);
    while (src == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        const char *msg = (const char *)sqlite3_column_text(s, 0);
        if (msg && strcmp(msg, "ok") != 0) {
            snprintf(line, sizeof line, "integrity: %s", msg);
            report_add(&r, line);
        }
    }
    if (src != SQLITE_OK) {
        snprintf(line, sizeof line, "integrity: %s", sqlite3_errmsg(c->db));
        report_add(&r, line);
    }
    sqlite3_finalize(s);

    src = sqlite3_prepare_v2(c->db, "PRAGMA foreign_key_check", -1, &s, NULL);
    while (src == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        snprintf(line, sizeof line, "foreign key: a row of %s points at no %s",
                 (const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 2));
        report_add(&r, line);
    }
    sqlite3_finalize(s);

    for (size_t i = 0; i < sizeof invariants / sizeof invariants[0]; i++) {
        src = sqlite3_prepare_v2(c->db, invariants[i].sql, -1, &s, NULL);
        if (src == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
            int64_t n = sqlite3_column_int64(s, 0);
            if (n > 0) {
                snprintf(line, sizeof line, "invariant: %lld %s", (long long)n, invariants[i].what);
                report_add(&r, line);
            }
        } else {
            snprintf(line, sizeof line, "invariant check failed: %s", sqlite3_errmsg(c->db));
            report_add(&r, line);
        }
        sqlite3_finalize(s);
    }
    tn__conn_put(st, c);

    if (r.problems == 0) {
        free(r.buf);
        return TN_OK;
    }
    if (out)
        *out = r.buf;
    else
        free(r.buf);
    return tn__fail(st, TN_CORRUPT, "%d problem%s found", r.problems, r.problems == 1 ? "" : "s");
}
