/*
 * engine.c - the sync loop (see engine.h for its guarantees), over one
 * remote (sync/remote.h): it never names a backend.
 *
 * One pass: fetch a batch of coalesced changes (round-robin across tenants,
 * done by tn__outbox_fetch), then
 *   1. read the remote versions of the changed files' rows (a hundred per
 *      call) and upload the bytes of those the remote does not hold in a
 *      newer version, several at once, large ones in parts that survive a
 *      restart,
 *   2. write the rows (items, file rows whose object is in place, and
 *      tombstones) under the version condition, in chunks the backend takes
 *      (remote->batch_rows: one row per call for conditional puts, up to a
 *      hundred for transactions), several chunks in flight,
 *   3. delete the objects of deleted files whose tombstone row is written,
 * then record dead letters, conflict losses and per-tenant progress, and
 * acknowledge exactly the changes the remote settled.  Whatever is not
 * settled stays in the outbox and comes back in a later batch.
 *
 * Failures are isolated per row and per tenant: a row the remote refuses for
 * good becomes a dead letter; a tenant whose partition the remote refuses
 * (TN_DENIED, TN_NOTFOUND) is left out for the rest of the pass, so the
 * other tenants drain at full speed.
 *
 * Threads: a background engine owns one thread, one remote and one remote
 * connection per worker.  tn_sync_run_once builds its own.
 */
#include "engine.h"

#include "adapt.h"

#include "clock.h"
#include "conn.h"
#include "crypto.h"
#include "digest.h"
#include "outbox.h"
#include "pull.h"
#include "remote.h"
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FETCH 800
#define MAX_VERSIONS 100
/* Requests in flight: each worker thread has its own connection.  Rows sent
 * one per request (the default conditional mode) go on cfg.connections at
 * once (default 32, at most WORKERS): on a WAN link their time is round
 * trips, not bytes.  Files go up on at most FEW_WORKERS at once (each may
 * hold a file up to the multipart threshold in memory), and so do batched
 * rows (each request carries up to a hundred). */
#define WORKERS 64
#define FEW_WORKERS 8
/* Tenants one pass may leave out (their partition refused). */
#define MAX_SKIP 64

void tn_sync_config_init(tn_sync_config *c) {
    memset(c, 0, sizeof *c);
    c->interval_ms = 60000;
    c->early_rows = 1000;
    c->batch = 100;
    c->connections = 32;
    c->tombstone_ttl_s = 30 * 86400;
    c->max_attempts = 4;
    c->backoff_base_ms = 500;
    c->backoff_cap_ms = 300000;
    c->multipart_threshold = (int64_t)16 << 20;
    c->part_size = (int64_t)8 << 20;
}

static int env_int(const char *name, int64_t *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || x < 0) return -1;
    *out = x;
    return 1;
}

int tn_sync_config_from_env(tn_sync_config *cfg) {
    int64_t v;
    int r;
    if ((r = env_int("TENANTRY_SYNC_INTERVAL", &v)) < 0) return -1;
    if (r) cfg->interval_ms = v * 1000;
    if ((r = env_int("TENANTRY_SYNC_BANDWIDTH", &v)) < 0) return -1;
    if (r) cfg->bandwidth = v;
    if ((r = env_int("TENANTRY_SYNC_EARLY_ROWS", &v)) < 0) return -1;
    if (r) cfg->early_rows = v;
    if ((r = env_int("TENANTRY_SYNC_CONNECTIONS", &v)) < 0 || (r && (v < 1 || v > WORKERS)))
        return -1;
    if (r) cfg->connections = (int)v;
    if ((r = env_int("TENANTRY_SYNC_ATTEMPTS", &v)) < 0) return -1;
    if (r) cfg->max_attempts = (int)(v > 100 ? 100 : v);
    if ((r = env_int("TENANTRY_SYNC_BACKOFF_MS", &v)) < 0) return -1;
    if (r) cfg->backoff_base_ms = v;
    if ((r = env_int("TENANTRY_SYNC_MULTIPART_MB", &v)) < 0) return -1;
    if (r) cfg->multipart_threshold = v << 20;
    if ((r = env_int("TENANTRY_SYNC_PART_MB", &v)) < 0) return -1;
    if (r) cfg->part_size = v << 20;
    if ((r = env_int("TENANTRY_TOMBSTONE_TTL", &v)) < 0) return -1;
    if (r) cfg->tombstone_ttl_s = v;
    return 0;
}

int64_t tn__sync_backoff_ms(int attempt, int64_t base, int64_t cap, uint32_t rnd) {
    if (base < 1) base = 1;
    if (cap < base) cap = base;
    int64_t ceil_ms = base;
    for (int i = 0; i < attempt && ceil_ms < cap; i++) ceil_ms *= 2;
    if (ceil_ms > cap) ceil_ms = cap;
    return (int64_t)((uint64_t)rnd % (uint64_t)(ceil_ms + 1));
}

/* ---- context ------------------------------------------------------------------ */

/* A tenant session kept open across the files of one tenant. */
typedef struct sess_cache {
    tn_session *s;
    char tenant[37];
} sess_cache;

typedef struct worker {
    tn_remote_conn *c;
    sess_cache sc; /* sessions belong to one thread: one per worker */
} worker;

typedef struct ctx {
    tn_store *st;
    tn_sync_config cfg;
    tn_remote *r;
    int own_remote;         /* opened here (else the caller's, in cfg) */
    int row_workers;        /* threads that write rows: cfg.connections or FEW_WORKERS */
    int nconn;              /* connections open in w[] */
    worker w[WORKERS];
    volatile int *stop;     /* background: set by tn_sync_stop */
    volatile int never;     /* what stop points at otherwise */
    pthread_mutex_t *mu;    /* background: sleeps wait on cv */
    pthread_cond_t *cv;
    tn_sync_stats *stats;
    pthread_mutex_t skip_mu;
    char skip[MAX_SKIP][37]; /* tenants left out of this pass */
    int skip_code[MAX_SKIP];
    int nskip;
    int lock_fd;            /* <data>/sync.lock, held while this engine runs */
    tn__adapt pace;         /* the row writes' rate, once the remote throttled them */
    int64_t throttled;      /* atomic: row write requests throttled in this pass */
    /* Failed sends of each row in this pass, by (kind, ref): a pass that goes
     * on through throttling still sends no row more than max_attempts times. */
    uint64_t *worn_key;
    unsigned char *worn_n;
    size_t worn_cap, worn_used;
} ctx;

static void set_what(ctx *x, int code, const char *what) {
    if (!x->stats) return;
    x->stats->error = code;
    snprintf(x->stats->what, sizeof x->stats->what, "%s", what ? what : tn_strerror(code));
}

/* One engine per store at a time: two draining the same outbox would send
 * the same rows twice, and in single-writer mode (no condition) an older
 * copy could land after a newer one.  The lock is on a file beside the
 * database, so `tenantry serve` and `sync --once` exclude each other. */
static int take_lock(ctx *x) {
    char path[4200];
    snprintf(path, sizeof path, "%s/sync.lock", tn_store_dir(x->st));
    x->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (x->lock_fd < 0) {
        set_what(x, TN_IO, "cannot open the sync lock in the data directory");
        return TN_IO;
    }
    if (flock(x->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        set_what(x, TN_BUSY, "another sync engine is running on this store (tenantry serve "
                             "with sync on, or sync --once)");
        return TN_BUSY;
    }
    return TN_OK;
}

static int ctx_open(ctx *x, tn_store *st, const tn_sync_config *cfg, tn_sync_stats *stats) {
    memset(x, 0, sizeof *x);
    x->st = st;
    x->lock_fd = -1;
    x->stats = stats;
    x->stop = &x->never;
    pthread_mutex_init(&x->skip_mu, NULL);
    tn__adapt_init(&x->pace);
    int rc = take_lock(x);
    if (rc != TN_OK) return rc;
    if (cfg) x->cfg = *cfg;
    else tn_sync_config_init(&x->cfg);
    if (x->cfg.max_attempts < 1) x->cfg.max_attempts = 1;
    if (x->cfg.part_size < ((int64_t)5 << 20)) x->cfg.part_size = (int64_t)5 << 20;
    if (x->cfg.multipart_threshold < x->cfg.part_size) x->cfg.multipart_threshold = x->cfg.part_size;
    /* Smaller files are read whole into memory for one PUT: bound that. */
    if (x->cfg.multipart_threshold > ((int64_t)1 << 30)) x->cfg.multipart_threshold = (int64_t)1 << 30;
    if (x->cfg.remote) {
        x->r = x->cfg.remote;
    } else {
        char err[200] = "";
        rc = tn_remote_open(getenv("TENANTRY_REMOTE"), &x->r, err, sizeof err);
        if (rc != TN_OK) {
            set_what(x, rc, err[0] ? err : NULL);
            return rc;
        }
        x->own_remote = 1;
    }
    x->r->stop = x->stop;
    if (x->r->batch_rows > 100) x->r->batch_rows = 100; /* the interface's bound */
    /* Enough rows per fetch to keep every worker busy with a full chunk. */
    int per = x->r->batch_rows;
    if (x->cfg.connections < 1 || x->cfg.connections > WORKERS) x->cfg.connections = 32;
    x->row_workers = per == 1 ? x->cfg.connections : FEW_WORKERS;
    x->nconn = x->row_workers > FEW_WORKERS ? x->row_workers : FEW_WORKERS;
    if (x->cfg.batch < 1 || x->cfg.batch > MAX_FETCH) x->cfg.batch = 100;
    if (x->cfg.batch == 100 && per > 1) x->cfg.batch = per * (per > 25 ? 4 : FEW_WORKERS);
    if (x->cfg.batch == 100 && per == 1 && x->row_workers > 12) x->cfg.batch = x->row_workers * 8;
    if (x->cfg.batch > MAX_FETCH) x->cfg.batch = MAX_FETCH;
    /* One bandwidth budget for every connection (remote.h, conn_open). */
    for (int i = 0; rc == TN_OK && i < x->nconn; i++)
        rc = x->r->m->conn_open(x->r, x->cfg.bandwidth, &x->w[i].c);
    if (rc != TN_OK) set_what(x, rc, NULL);
    return rc;
}

static void ctx_close(ctx *x) {
    if (x->lock_fd >= 0) close(x->lock_fd); /* releases the lock */
    x->lock_fd = -1;
    for (int i = 0; i < WORKERS; i++) {
        if (x->r && x->w[i].c) x->r->m->conn_close(x->w[i].c);
        x->w[i].c = NULL;
    }
    if (x->own_remote) tn_remote_close(x->r);
    x->r = NULL;
    x->own_remote = 0;
    pthread_mutex_destroy(&x->skip_mu);
    tn__adapt_destroy(&x->pace);
    free(x->worn_key);
    free(x->worn_n);
    x->worn_key = NULL;
    x->worn_n = NULL;
}

/* One more failed send of ch in this pass; returns how many it has had
 * (255 when the table cannot grow: the row counts as worn). */
static int worn_bump(ctx *x, const tn__change *ch) {
    if (x->worn_used * 2 >= x->worn_cap) {
        size_t cap = x->worn_cap ? x->worn_cap * 2 : 256;
        uint64_t *k = calloc(cap, sizeof *k);
        unsigned char *n = calloc(cap, 1);
        if (!k || !n) {
            free(k);
            free(n);
            return 255;
        }
        for (size_t i = 0; i < x->worn_cap; i++) {
            if (!x->worn_key[i]) continue;
            size_t j = (size_t)(x->worn_key[i] * 0x9E3779B97F4A7C15ull) & (cap - 1);
            while (k[j]) j = (j + 1) & (cap - 1);
            k[j] = x->worn_key[i];
            n[j] = x->worn_n[i];
        }
        free(x->worn_key);
        free(x->worn_n);
        x->worn_key = k;
        x->worn_n = n;
        x->worn_cap = cap;
    }
    uint64_t key = ((uint64_t)ch->kind << 60 ^ (uint64_t)ch->ref) + 1;
    size_t j = (size_t)(key * 0x9E3779B97F4A7C15ull) & (x->worn_cap - 1);
    while (x->worn_key[j] && x->worn_key[j] != key) j = (j + 1) & (x->worn_cap - 1);
    if (!x->worn_key[j]) {
        x->worn_key[j] = key;
        x->worn_used++;
    }
    if (x->worn_n[j] < 255) x->worn_n[j]++;
    return x->worn_n[j];
}

static void worn_clear(ctx *x) {
    if (x->worn_cap) {
        memset(x->worn_key, 0, x->worn_cap * sizeof *x->worn_key);
        memset(x->worn_n, 0, x->worn_cap);
    }
    x->worn_used = 0;
}

static int stopping(ctx *x) { return *x->stop; }

/* Sleeps ms, waking early when the engine is stopped. */
static void nap(ctx *x, int64_t ms) {
    if (ms <= 0) return;
    if (x->mu) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
        pthread_mutex_lock(x->mu);
        while (!*x->stop) {
            if (pthread_cond_timedwait(x->cv, x->mu, &ts) == ETIMEDOUT) break;
        }
        pthread_mutex_unlock(x->mu);
        return;
    }
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ---- tenants left out ------------------------------------------------------- */

/* The remote refused a tenant's partition as a whole (no such table, no
 * access to these keys): not one row's fault, and nothing a retry within
 * this pass changes. */
static int is_blocking(int code) { return code == TN_DENIED || code == TN_NOTFOUND; }

static void skip_tenant(ctx *x, const char *tenant, int code) {
    pthread_mutex_lock(&x->skip_mu);
    int i = 0;
    while (i < x->nskip && strcmp(x->skip[i], tenant) != 0) i++;
    if (i == x->nskip && x->nskip < MAX_SKIP) {
        snprintf(x->skip[i], sizeof x->skip[i], "%s", tenant);
        x->skip_code[i] = code;
        x->nskip++;
    }
    pthread_mutex_unlock(&x->skip_mu);
}

static int skipping(ctx *x, const char *tenant) {
    pthread_mutex_lock(&x->skip_mu);
    int found = 0;
    for (int i = 0; i < x->nskip && !found; i++) found = strcmp(x->skip[i], tenant) == 0;
    pthread_mutex_unlock(&x->skip_mu);
    return found;
}

/* ---- results -------------------------------------------------------------- */

static void settle(tn__result *r, int outcome, int code) {
    r->outcome = outcome;
    r->code = code;
}

/* Classifies an error for one row of tenant. */
static void row_error(ctx *x, const tn__change *ch, tn__result *r, int code) {
    if (tn_err_retryable(code) || is_blocking(code) || code == TN_NOMEM) {
        settle(r, TN__OUT_RETRY, code);
        if (is_blocking(code)) skip_tenant(x, ch->tenant_id, code);
    } else {
        settle(r, TN__OUT_DEAD, code);
    }
}

/* The row a change stands for, pointing into ch. */
static void row_of(ctx *x, const tn__change *ch, tn_remote_row *row) {
    memset(row, 0, sizeof *row);
    memcpy(row->tenant, ch->tenant_id, sizeof row->tenant);
    row->kind = ch->kind == TN__KIND_FILE ? TN_REMOTE_FILE : TN_REMOTE_ITEM;
    row->key = ch->key;
    row->version = ch->version;
    row->deleted = ch->deleted;
    row->updated_at = ch->updated_at;
    if (ch->deleted) {
        /* The tenant's own tombstone retention, else the engine's. */
        int64_t ttl = ch->tombstone_ttl_s > 0 ? ch->tombstone_ttl_s : x->cfg.tombstone_ttl_s;
        row->expires_at = ch->updated_at / 1000 + ttl;
    } else if (ch->kind == TN__KIND_FILE) {
        row->size = ch->size;
        row->sha256 = ch->sha256;
        row->content_type = ch->content_type;
    } else {
        row->data = ch->data;
    }
}

/* A row whose condition failed: the remote holds version rv (-1: unknown,
 * ask).  Equal is our own earlier write (a replay after a crash); higher is
 * a conflict loss; lower means it changed under us: try again. */
static void condition_failed(ctx *x, worker *w, const tn__change *ch, const tn_remote_row *row,
                             int64_t rv, tn__result *res) {
    int rc = TN_OK;
    if (rv < 0) rc = x->r->m->versions(w->c, row, 1, &rv);
    if (rc == TN_OK && rv < 0) rc = TN_NETWORK;
    if (rc != TN_OK) {
        row_error(x, ch, res, rc);
    } else if (rv == ch->version) {
        settle(res, TN__OUT_OK, 0);
    } else if (rv > ch->version) {
        settle(res, TN__OUT_CONFLICT, TN_CONFLICT);
        res->remote_version = rv;
    } else {
        settle(res, TN__OUT_RETRY, TN_CONFLICT);
    }
}

/* ---- files ------------------------------------------------------------------ */

static int file_path(ctx *x, sess_cache *sc, const tn__change *ch, char **path) {
    if (!sc->s || strcmp(sc->tenant, ch->tenant_id) != 0) {
        tn_session_close(sc->s);
        sc->s = NULL;
        int rc = tn_session_open(x->st, ch->tenant_id, &sc->s);
        if (rc != TN_OK) return rc;
        memcpy(sc->tenant, ch->tenant_id, sizeof sc->tenant);
    }
    return tn_session_file_path(sc->s, ch->key, path);
}

#define PART_THREADS 8

typedef struct part_job {
    ctx *x;
    const tn__change *ch;
    const tn_remote_row *row;
    int fd;
    tn__mp *mp;
    int64_t nparts;
    int next; /* atomic: next part number */
    int rc;   /* first failure */
} part_job;

static void *part_worker(void *arg) {
    part_job *j = arg;
    ctx *x = j->x;
    tn_remote_conn *c = NULL;
    unsigned char *buf = malloc((size_t)x->cfg.part_size);
    int rc = buf ? x->r->m->conn_open(x->r, x->cfg.bandwidth, &c) : TN_NOMEM;
    while (rc == TN_OK && !stopping(x) && __atomic_load_n(&j->rc, __ATOMIC_RELAXED) == TN_OK) {
        int p = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (p > j->nparts) break;
        if (j->mp->etag[p - 1][0]) continue; /* sent before a restart */
        int64_t off = (p - 1) * x->cfg.part_size;
        size_t len = (size_t)(j->ch->size - off < x->cfg.part_size ? j->ch->size - off
                                                                   : x->cfg.part_size);
        size_t got = 0;
        while (got < len) {
            ssize_t n = pread(j->fd, buf + got, len - got, (off_t)(off + (int64_t)got));
            if (n <= 0) break;
            got += (size_t)n;
        }
        if (got != len) {
            rc = TN_IO;
            break;
        }
        rc = x->r->m->mp_part(c, j->row, j->mp->upload_id, p, buf, len, j->mp->etag[p - 1],
                              sizeof j->mp->etag[0]);
        /* Persisted before the next part: a restart resumes after it. */
        if (rc == TN_OK) rc = tn__mp_part(x->st, j->ch->tenant_id, j->ch->key, p, j->mp->etag[p - 1]);
        if (rc == TN_OK && x->stats) {
            __atomic_fetch_add(&x->stats->parts, 1, __ATOMIC_RELAXED);
            __atomic_fetch_add(&x->stats->bytes, (int64_t)len, __ATOMIC_RELAXED);
        }
    }
    if (rc != TN_OK) {
        int ok = TN_OK;
        __atomic_compare_exchange_n(&j->rc, &ok, rc, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    if (c) x->r->m->conn_close(c);
    free(buf);
    return NULL;
}

typedef struct hash_job {
    int fd;
    int rc;
    char hex[65];
} hash_job;

static void *hash_worker(void *arg) {
    hash_job *j = arg;
    j->rc = tn__digest_fd_hex(j->fd, j->hex);
    return NULL;
}

/*
 * Uploads f in parts, resuming an upload recorded for this file and version:
 * every finished part is persisted before the next begins, so a restart sends
 * only the parts that were missing.  An upload for an older version is
 * aborted first.
 */
static int upload_parts(ctx *x, worker *w, const tn__change *ch, const tn_remote_row *row, FILE *f) {
    const tn_remote_methods *m = x->r->m;
    tn__mp *mp = malloc(sizeof *mp);
    int rc = mp ? tn__mp_get(x->st, ch->tenant_id, ch->key, mp) : TN_NOMEM;
    int64_t nparts = (ch->size + x->cfg.part_size - 1) / x->cfg.part_size;
    if (rc == TN_OK && nparts > TN__MP_MAX_PARTS) rc = TN_TOOBIG;
    if (rc == TN_OK && mp->upload_id[0] && mp->version != ch->version) {
        rc = m->mp_abort(w->c, row, mp->upload_id);
        if (rc == TN_OK) rc = tn__mp_clear(x->st, ch->tenant_id, ch->key);
        memset(mp->upload_id, 0, sizeof mp->upload_id);
        mp->version = 0;
    }
    if (rc == TN_OK && !mp->upload_id[0]) {
        /* A record without an id: a crash came between creating an upload
         * and recording its id, so whatever is open for this name is ours. */
        int64_t cut_off = mp->version;
        memset(mp, 0, sizeof *mp);
        if (cut_off) rc = m->mp_abort_all(w->c, row);
        /* Recorded before the upload exists, so a crash cannot lose it. */
        if (rc == TN_OK) rc = tn__mp_begin(x->st, ch->tenant_id, ch->key, ch->version, "");
        if (rc == TN_OK) rc = m->mp_create(w->c, row, mp->upload_id, sizeof mp->upload_id);
        if (rc == TN_OK) rc = tn__mp_begin(x->st, ch->tenant_id, ch->key, ch->version, mp->upload_id);
    }
    /* The whole file must match its recorded SHA-256; hash it on a thread of
     * its own while the parts go up, and complete only when it matches. */
    hash_job hj = {fileno(f), TN_OK, {0}};
    pthread_t hth;
    int hashing = rc == TN_OK && pthread_create(&hth, NULL, hash_worker, &hj) == 0;
    if (rc == TN_OK && !hashing) rc = TN_NOMEM;
    if (rc == TN_OK) {
        /* Parts go up on several connections of their own, unless a
         * bandwidth cap asks for one stream. */
        part_job pj = {x, ch, row, fileno(f), mp, nparts, 1, TN_OK};
        int nth = x->cfg.bandwidth > 0 ? 1 : PART_THREADS;
        if (nth > nparts) nth = (int)nparts;
        pthread_t th[PART_THREADS];
        int started = 0;
        for (int t = 1; t < nth; t++) {
            if (pthread_create(&th[t], NULL, part_worker, &pj) != 0) break;
            started = t;
        }
        part_worker(&pj);
        for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
        rc = pj.rc;
    }
    if (hashing) {
        pthread_join(hth, NULL);
        if (rc == TN_OK && hj.rc != TN_OK) rc = hj.rc;
        if (rc == TN_OK && strcmp(hj.hex, ch->sha256) != 0) {
            /* Changed or damaged on disk: never complete this object. */
            m->mp_abort(w->c, row, mp->upload_id);
            tn__mp_clear(x->st, ch->tenant_id, ch->key);
            free(mp);
            return TN_IO;
        }
    }
    if (rc == TN_OK && stopping(x)) rc = TN_BUSY;
    if (rc == TN_OK) rc = m->mp_complete(w->c, row, mp->upload_id, (const char (*)[72])mp->etag, (int)nparts);
    if (rc == TN_OK) {
        tn__mp_clear(x->st, ch->tenant_id, ch->key);
    } else if (rc == TN_NOTFOUND || rc == TN_INVALID) {
        /* The upload is gone (expired, aborted) or refused its parts: start
         * over on the next pass rather than dead-letter the file. */
        if (mp && mp->upload_id[0]) m->mp_abort(w->c, row, mp->upload_id);
        tn__mp_clear(x->st, ch->tenant_id, ch->key);
        rc = TN_THROTTLED;
    }
    free(mp);
    return rc;
}

/* Aborts and forgets an unfinished multipart upload recorded for ch's file
 * when ch does not go up through it: a replay of a version already remote, a
 * conflict loss, a new version small enough for one PUT. */
static int drop_upload(ctx *x, worker *w, const tn__change *ch, const tn_remote_row *row) {
    tn__mp *mp = malloc(sizeof *mp);
    int rc = mp ? tn__mp_get(x->st, ch->tenant_id, ch->key, mp) : TN_NOMEM;
    if (rc == TN_OK && (mp->upload_id[0] || mp->version)) {
        /* (No id recorded: see upload_parts.) */
        rc = mp->upload_id[0] ? x->r->m->mp_abort(w->c, row, mp->upload_id)
                              : x->r->m->mp_abort_all(w->c, row);
        if (rc == TN_OK) rc = tn__mp_clear(x->st, ch->tenant_id, ch->key);
    }
    free(mp);
    return rc;
}

/* Whether the file's record has moved past ch (a newer version or a delete). */
static int superseded(sess_cache *sc, const tn__change *ch) {
    tn_file f = {0};
    int rc = tn_file_get(sc->s, ch->key, &f);
    int newer = rc == TN_NOTFOUND || (rc == TN_OK && f.version > ch->version);
    tn_file_clear(&f);
    return newer;
}

/* superseded(), allowing for an upload that replaced the bytes and is about
 * to record them: a moment's grace before calling the file damaged. */
static int replaced(ctx *x, sess_cache *sc, const tn__change *ch) {
    if (superseded(sc, ch)) return 1;
    nap(x, 250);
    return superseded(sc, ch);
}

/* Stage 1 for one file: its bytes, unless the remote holds this version or
 * a newer one (rv: the remote row's version, known before). */
static void upload(ctx *x, worker *w, const tn__change *ch, const tn_remote_row *row, int64_t rv,
                   tn__result *res) {
    char *path = NULL;
    int rc = file_path(x, &w->sc, ch, &path);
    if (rc != TN_OK) {
        row_error(x, ch, res, rc == TN_NOTFOUND ? TN_IO : rc);
        return;
    }
    FILE *f = fopen(path, "rb");
    free(path);
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0 || sb.st_size != ch->size || strlen(ch->sha256) != 64) {
        if (f) fclose(f);
        if (replaced(x, &w->sc, ch)) {
            /* A newer upload or a delete replaced these bytes after the
             * change was read: that change syncs itself, nothing to send. */
            settle(res, TN__OUT_OK, 0);
            res->superseded = 1;
            return;
        }
        /* The bytes are gone or were replaced without a new record. */
        settle(res, TN__OUT_DEAD, TN_IO);
        return;
    }
    /* The object's name has no version in it, so uploading an older file
     * would replace a newer writer's bytes even though the row's condition
     * then keeps the newer row.  A newer remote version is a conflict loss
     * (no upload), an equal one a replay.  (A write racing this check from
     * another writer can still interleave.) */
    int parts = ch->size >= x->cfg.multipart_threshold;
    if ((rv >= ch->version || !parts) && (rc = drop_upload(x, w, ch, row)) != TN_OK) {
        fclose(f);
        row_error(x, ch, res, rc);
        return;
    }
    if (rv > ch->version) {
        fclose(f);
        settle(res, TN__OUT_CONFLICT, TN_CONFLICT);
        res->remote_version = rv;
        return;
    }
    if (rv == ch->version) {
        rc = TN_OK; /* a replay: the object and the row are already there */
    } else if (parts) {
        rc = upload_parts(x, w, ch, row, f);
    } else {
        unsigned char *buf = malloc(ch->size ? (size_t)ch->size : 1);
        if (!buf) rc = TN_NOMEM;
        else if (ch->size && fread(buf, 1, (size_t)ch->size, f) != (size_t)ch->size) rc = TN_IO;
        else rc = x->r->m->put_object(w->c, row, buf, (size_t)ch->size);
        free(buf);
    }
    fclose(f);
    if (rc == TN_OK) {
        settle(res, TN__OUT_OK, 0); /* stage 1 done; the row comes next */
        if (x->stats && !parts) __atomic_fetch_add(&x->stats->bytes, ch->size, __ATOMIC_RELAXED);
    } else if (!is_blocking(rc) && !tn_err_retryable(rc) && rc != TN_NOMEM &&
               replaced(x, &w->sc, ch)) {
        settle(res, TN__OUT_OK, 0); /* e.g. the bytes changed under a newer record */
        res->superseded = 1;
    } else {
        row_error(x, ch, res, rc);
    }
}

/* ---- parallel work ------------------------------------------------------- */

typedef struct job {
    ctx *x;
    tn__batch *b;
    tn_remote_row *rows;
    const int *idx;   /* stage 1: the files; stage 2: every row to write, chunk by chunk */
    int n;            /* stage 1: files; stage 2: chunks */
    int next;         /* atomic: next file or chunk */
    int stage;        /* 1 upload, 2 rows */
    tn__result *res;
    const int *start; /* stage 2: each chunk's first index into idx ... */
    const int *cnt;   /* ... and its length */
    const int64_t *rv; /* stage 1: remote versions */
    int held_back;    /* atomic: a request failed in a way worth waiting out (the network,
                       * a timeout, throttling): the workers take no more of this job, its
                       * untried rows wait for the batch's backoff with the failed ones */
} job;

typedef struct job_arg {
    job *j;
    worker *w;
} job_arg;

/* Writes one chunk of rows and settles each by its answer. */
static void write_chunk(ctx *x, worker *w, job *j, const int *idx, int n) {
    tn_remote_row rows[100];
    tn_remote_put out[100];
    memset(rows, 0, sizeof rows);
    memset(out, 0, sizeof out);
    for (int k = 0; k < n; k++) rows[k] = j->rows[idx[k]];
    /* Its turn at the rate the remote takes; a batch held back meanwhile
     * (another request failed) leaves these rows untried. */
    int64_t sent = tn__adapt_take(&x->pace, x->stop, &j->held_back);
    if (sent < 0) return;
    x->r->m->put_rows(w->c, rows, n, out);
    for (int k = 0; k < n; k++) j->res[idx[k]].sent = 1;
    int accepted = 0, throttled = 0;
    for (int k = 0; k < n; k++) {
        if (tn_err_retryable(out[k].code)) __atomic_store_n(&j->held_back, 1, __ATOMIC_RELAXED);
        accepted |= out[k].code == TN_OK || out[k].code == TN_CONFLICT;
        throttled |= out[k].code == TN_THROTTLED;
    }
    tn__adapt_answer(&x->pace, sent, accepted, throttled);
    if (throttled) __atomic_add_fetch(&x->throttled, 1, __ATOMIC_RELAXED);
    for (int k = 0; k < n; k++) {
        int i = idx[k];
        const tn__change *ch = &j->b->changes[i];
        if (out[k].code == TN_OK) settle(&j->res[i], TN__OUT_OK, 0);
        else if (out[k].code == TN_CONFLICT) condition_failed(x, w, ch, &rows[k], out[k].remote, &j->res[i]);
        else row_error(x, ch, &j->res[i], out[k].code);
    }
}

static void *job_worker(void *arg) {
    job_arg *a = arg;
    job *j = a->j;
    ctx *x = j->x;
    for (;;) {
        int k = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (k >= j->n || stopping(x) || __atomic_load_n(&j->held_back, __ATOMIC_RELAXED)) break;
        if (j->stage == 1) {
            int i = j->idx[k];
            const tn__change *ch = &j->b->changes[i];
            if (skipping(x, ch->tenant_id)) continue;
            upload(x, a->w, ch, &j->rows[i], j->rv[i], &j->res[i]);
            j->res[i].sent = 1;
            if (j->res[i].outcome == TN__OUT_RETRY && tn_err_retryable(j->res[i].code))
                __atomic_store_n(&j->held_back, 1, __ATOMIC_RELAXED);
        } else {
            /* A chunk holds one tenant's rows only: see process(). */
            if (skipping(x, j->b->changes[j->idx[j->start[k]]].tenant_id)) continue;
            write_chunk(x, a->w, j, j->idx + j->start[k], j->cnt[k]);
        }
    }
    return NULL;
}

/* Runs the job on up to WORKERS threads (uploads: FEW_WORKERS; rows: the
 * remote's), each with its own connection.  The bandwidth cap is one budget
 * the remote shares between every connection (remote.h, conn_open), so the
 * busy ones get all of it, whatever mix of uploads and parts is running. */
static void run_job(job *j) {
    pthread_t th[WORKERS];
    job_arg args[WORKERS];
    int most = j->stage == 1 ? FEW_WORKERS : j->x->row_workers;
    int nth = j->n < most ? j->n : most, started = 0;
    for (int t = 1; t < nth; t++) {
        args[t] = (job_arg){j, &j->x->w[t]};
        if (pthread_create(&th[t], NULL, job_worker, &args[t]) != 0) break;
        started = t;
    }
    args[0] = (job_arg){j, &j->x->w[0]};
    job_worker(&args[0]);
    for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
}

/* ---- one batch -------------------------------------------------------------- */

static size_t row_bytes(const tn_remote_row *r) {
    return 256 + (r->data ? strlen(r->data) : 0) + (r->key ? strlen(r->key) : 0);
}

static int process(ctx *x, tn__batch *b, tn__result *res) {
    const tn_remote_methods *m = x->r->m;
    int n = b->n, rc = TN_OK;
    tn_remote_row *rows = calloc((size_t)n, sizeof *rows);
    int *idx = calloc((size_t)n, sizeof *idx);
    int *starts = calloc((size_t)n, sizeof *starts), *cnt = calloc((size_t)n, sizeof *cnt);
    int64_t *rv = calloc((size_t)n, sizeof *rv);
    if (!rows || !idx || !starts || !cnt || !rv) {
        rc = TN_NOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        tn__change *ch = &b->changes[i];
        settle(&res[i], TN__OUT_RETRY, 0);
        if (!ch->key) {
            /* The row was purged before we saw it: nothing names it remotely. */
            settle(&res[i], TN__OUT_OK, 0);
            continue;
        }
        row_of(x, ch, &rows[i]);
        /* What the remote could never hold is a dead letter now. */
        tn__remote_key k;
        int krc = tn__remote_key_build(ch->tenant_id, rows[i].kind, ch->key, &k);
        tn__remote_key_free(&k);
        if (krc == TN_NOMEM) {
            rc = krc;
            goto done;
        }
        if (krc != TN_OK) settle(&res[i], TN__OUT_DEAD, TN_INVALID);
        rv[i] = 0;
    }
    /* 1. Objects first: a file's row never points at a missing object. */
    int nf = 0, held = 0; /* held: a request failed in a way worth waiting out */
    for (int i = 0; i < n; i++) {
        tn__change *ch = &b->changes[i];
        if (ch->kind == TN__KIND_FILE && !ch->deleted && ch->key && res[i].outcome != TN__OUT_DEAD)
            idx[nf++] = i;
    }
    if (nf) {
        /* The remote versions of these files' rows, so a file a newer writer
         * replaced is not uploaded (not needed without the condition). */
        for (int k = 0; !(x->r->caps & TN_REMOTE_UNCONDITIONAL) && k < nf; k += MAX_VERSIONS) {
            int cnt_k = nf - k < MAX_VERSIONS ? nf - k : MAX_VERSIONS;
            tn_remote_row q[MAX_VERSIONS];
            int64_t v[MAX_VERSIONS];
            for (int j = 0; j < cnt_k; j++) q[j] = rows[idx[k + j]];
            int vrc = m->versions(x->w[0].c, q, cnt_k, v);
            if (tn_err_retryable(vrc)) held = 1;
            for (int j = 0; j < cnt_k; j++) {
                int i = idx[k + j];
                if (v[j] >= 0) {
                    rv[i] = v[j];
                } else {
                    row_error(x, &b->changes[i], &res[i], vrc != TN_OK ? vrc : TN_NETWORK);
                    res[i].sent = 1; /* its version was asked for */
                }
            }
        }
        int m2 = 0;
        for (int k = 0; k < nf; k++)
            if (!(res[idx[k]].outcome == TN__OUT_RETRY && res[idx[k]].code)) idx[m2++] = idx[k];
        job j = {x, b, rows, idx, m2, 0, 1, res, NULL, NULL, rv, held};
        run_job(&j);
        held = j.held_back;
    }
    /* 2. Rows. */
    int nr = 0;
    for (int i = 0; i < n; i++) {
        tn__change *ch = &b->changes[i];
        if (!ch->key || res[i].outcome == TN__OUT_DEAD || res[i].outcome == TN__OUT_CONFLICT ||
            res[i].superseded)
            continue;
        if (ch->kind == TN__KIND_FILE && !ch->deleted && res[i].outcome != TN__OUT_OK) continue;
        if (skipping(x, ch->tenant_id)) continue;
        settle(&res[i], TN__OUT_RETRY, 0);
        idx[nr++] = i;
    }
    if (nr && !held) {
        /* Chunks the backend takes in one call: at most batch_rows rows and
         * batch_bytes of data, one tenant each (so a tenant refused as a
         * whole never takes another's rows with it), a key at most once, a
         * row over alone_bytes alone.  Rows of one tenant are next to each
         * other in idx, in fetch order otherwise. */
        int *sorted = calloc((size_t)nr, sizeof *sorted), ns = 0;
        if (!sorted) {
            rc = TN_NOMEM;
            goto done;
        }
        for (int k = 0; k < nr; k++) {
            if (idx[k] < 0) continue;
            const char *t = b->changes[idx[k]].tenant_id;
            for (int q = k; q < nr; q++)
                if (idx[q] >= 0 && strcmp(b->changes[idx[q]].tenant_id, t) == 0) {
                    sorted[ns++] = idx[q];
                    idx[q] = -1;
                }
        }
        for (int k = 0; k < nr; k++) idx[k] = sorted[k];
        free(sorted);
        int nch = 0, cur = 0, cur_alone = 0;
        size_t bytes = 0;
        for (int k = 0; k < nr; k++) {
            int i = idx[k], dup = 0;
            size_t len = row_bytes(&rows[i]);
            int alone = x->r->alone_bytes && len > x->r->alone_bytes;
            for (int q = k - cur; q < k && !dup; q++)
                dup = rows[idx[q]].kind == rows[i].kind && strcmp(rows[idx[q]].key, rows[i].key) == 0;
            int other = cur && strcmp(b->changes[idx[k - 1]].tenant_id, b->changes[i].tenant_id) != 0;
            int full = cur == x->r->batch_rows ||
                       (x->r->batch_bytes && bytes + len > x->r->batch_bytes);
            if (cur && (full || dup || other || alone || cur_alone)) {
                cnt[nch++] = cur;
                cur = 0;
                bytes = 0;
            }
            if (!cur) starts[nch] = k;
            cur++;
            bytes += len;
            cur_alone = alone;
        }
        if (cur) cnt[nch++] = cur;
        job j = {x, b, rows, idx, nch, 0, 2, res, starts, cnt, NULL, 0};
        run_job(&j);
    }
    /* 3. Objects of deleted files, once their tombstone is written. */
    for (int i = 0; i < n; i++) {
        tn__change *ch = &b->changes[i];
        if (ch->kind != TN__KIND_FILE || !ch->deleted || res[i].outcome != TN__OUT_OK || !ch->key ||
            skipping(x, ch->tenant_id))
            continue;
        /* An upload left unfinished for this file is abandoned now. */
        int drc = drop_upload(x, &x->w[0], ch, &rows[i]);
        if (drc == TN_OK) drc = m->delete_object(x->w[0].c, &rows[i]);
        if (drc != TN_OK) row_error(x, ch, &res[i], drc);
    }
done:
    for (int t = 0; t < WORKERS; t++) {
        tn_session_close(x->w[t].sc.s);
        x->w[t].sc.s = NULL;
    }
    free(rows);
    free(idx);
    free(starts);
    free(cnt);
    free(rv);
    return rc;
}

/* ---- passes ------------------------------------------------------------------ */

static const char *describe(int code) {
    if (code == TN_NOTFOUND)
        return "the remote table or file store was not found (run `tenantry remote init`)";
    if (code == TN_DENIED) return "the remote refused the credentials for a tenant's rows";
    return tn_strerror(code);
}

/* Drains the outbox; gives up after max_attempts retryable failures in a row.
 * Tenants the remote refuses as a whole are left out as they are found; the
 * pass then ends with that error once the others are drained. */
/* Before the push: what other writers pushed, tenant by tenant (a tenant
 * whose pull fails is reported in its status; the others go on). */
static int pull_all(ctx *x) {
    if (x->r->m->version < 2) return TN_OK;
    char (*ids)[37] = NULL;
    int n = 0, rc = tn__sync_tenants(x->st, &ids, &n), first = TN_OK;
    tn__pull_stats ps;
    memset(&ps, 0, sizeof ps);
    for (int i = 0; rc == TN_OK && i < n && !stopping(x); i++) {
        int prc = tn__pull_tenant(x->st, x->r, x->w[0].c, ids[i], x->cfg.tombstone_ttl_s,
                                  x->cfg.bandwidth > 0 ? 1 : FEW_WORKERS, &ps);
        if (is_blocking(prc)) skip_tenant(x, ids[i], prc);
        else if (prc != TN_OK && first == TN_OK && prc != TN_BUSY) first = prc;
    }
    free(ids);
    if (x->stats) {
        x->stats->pulled += ps.items + ps.files;
        x->stats->conflicts += ps.conflicts;
        x->stats->pull_refused += ps.refused;
        x->stats->pull_read += ps.read;
    }
    return rc != TN_OK ? rc : first;
}

/* A tenant's own row, at the rate the remote takes; throttled, it goes
 * again after a backoff, up to max_attempts times. */
static int push_tenant(ctx *x, const char *id, int max_attempts) {
    int trc = TN_OK;
    for (int attempt = 0; attempt < max_attempts && !stopping(x); attempt++) {
        if (attempt)
            nap(x, tn__sync_backoff_ms(attempt, x->cfg.backoff_base_ms, x->cfg.backoff_cap_ms,
                                       randombytes_random()));
        trc = tn__push_tenant_row(x->st, x->r, x->w[0].c, id, &x->pace);
        if (trc != TN_THROTTLED) break;
        __atomic_add_fetch(&x->throttled, 1, __ATOMIC_RELAXED);
    }
    return trc;
}

/* After the push: each tenant's own row when it changed, and the purge of
 * tenants deleted here. */
static int tenants_up(ctx *x, int max_attempts) {
    char (*ids)[37] = NULL;
    int n = 0, rc = tn__sync_tenants(x->st, &ids, &n);
    for (int i = 0; rc == TN_OK && i < n && !stopping(x); i++)
        if (!skipping(x, ids[i])) {
            int trc = push_tenant(x, ids[i], max_attempts);
            if (is_blocking(trc)) skip_tenant(x, ids[i], trc);
            else if (trc != TN_OK && trc != TN_BUSY) rc = trc; /* BUSY: stopping */
        }
    free(ids);
    int64_t purged = 0;
    if (rc == TN_OK) rc = tn__purge_tenants(x->st, x->r, x->w[0].c, &purged);
    if (x->stats) x->stats->purged += purged;
    return rc;
}

static int pass(ctx *x, int max_attempts) {
    tn_sync_stats *s = x->stats;
    int attempt = 0, rc = TN_OK, empty_scans = 0;
    x->nskip = 0;
    x->throttled = 0;
    worn_clear(x);
    int pull_rc = pull_all(x);
    tn__outbox_pending_tenant(x->st, NULL, s ? &s->pending_start : &(int64_t){0});
    while (!stopping(x)) {
        tn__batch b;
        pthread_mutex_lock(&x->skip_mu);
        char skip[MAX_SKIP][37];
        int nskip = x->nskip;
        memcpy(skip, x->skip, sizeof skip);
        pthread_mutex_unlock(&x->skip_mu);
        rc = tn__outbox_fetch_skip(x->st, x->cfg.batch, x->cfg.batch * 4,
                                   (const char (*)[37])skip, nskip, &b);
        if (rc != TN_OK) {
            set_what(x, rc, "cannot read the outbox");
            break;
        }
        if (b.n == 0) {
            tn__batch_free(&b);
            /* With tenants left out, the fetch's probe window may need a few
             * more turns to reach the others' rows behind theirs. */
            int64_t pending = 0;
            tn__outbox_pending_tenant(x->st, NULL, &pending);
            if (nskip && pending && empty_scans++ < 2 + pending / (x->cfg.batch * 4)) continue;
            break;
        }
        empty_scans = 0;
        tn__result *res = calloc((size_t)b.n, sizeof *res);
        unsigned char *done = calloc((size_t)b.n, 1);
        rc = res && done ? process(x, &b, res) : TN_NOMEM;
        int retry_code = 0, any_done = 0, throttled = 0, other = 0, worn = 0, took = 0;
        for (int i = 0; rc == TN_OK && i < b.n; i++) {
            done[i] = res[i].outcome != TN__OUT_RETRY;
            any_done |= done[i];
            took |= res[i].outcome == TN__OUT_OK || res[i].outcome == TN__OUT_CONFLICT;
            if (!done[i] && !is_blocking(res[i].code) && !skipping(x, b.changes[i].tenant_id)) {
                retry_code = res[i].code ? res[i].code : TN_NETWORK;
                if (res[i].code == TN_THROTTLED) throttled = 1;
                else if (res[i].code) other = 1; /* 0: held back untried */
                /* Every change a request went out for counts, also a file
                 * whose upload went and whose row was then held back. */
                if (res[i].sent && worn_bump(x, &b.changes[i]) >= max_attempts) worn = 1;
            }
            if (!s) continue;
            if (res[i].outcome == TN__OUT_OK) {
                if (b.changes[i].kind == TN__KIND_ITEM) s->items++;
                else s->files++;
            } else if (res[i].outcome == TN__OUT_CONFLICT) {
                s->conflicts++;
            } else if (res[i].outcome == TN__OUT_DEAD) {
                s->dead++;
            }
        }
        int64_t backoff = 0;
        if (rc == TN_OK && retry_code)
            backoff = tn__sync_backoff_ms(attempt, x->cfg.backoff_base_ms, x->cfg.backoff_cap_ms,
                                          randombytes_random());
        /* Bookkeeping and the acknowledgement in one transaction. */
        if (rc == TN_OK)
            rc = tn__sync_record(x->st, &b, res, any_done ? done : NULL, retry_code, backoff);
        free(res);
        free(done);
        tn__batch_free(&b);
        if (rc != TN_OK) {
            set_what(x, rc, "cannot record sync progress");
            break;
        }
        if (x->cfg.progress && s) {
            tn__outbox_pending_tenant(x->st, NULL, &s->pending);
            x->cfg.progress(s, x->cfg.progress_arg);
        }
        /* A batch the remote took some of and throttled the rest of is paced,
         * not failed: the rate is cut (adapt.h) and the pass goes on while
         * rows get through, each sent at most max_attempts times. */
        int paced = retry_code && throttled && !other && !worn && took;
        if (paced) {
            nap(x, backoff);
        } else if (retry_code) {
            if (worn) attempt = max_attempts; /* a row refused that often ends the pass */
            if (++attempt >= max_attempts) {
                rc = retry_code;
                set_what(x, rc, describe(rc));
                break;
            }
            nap(x, backoff);
        } else {
            attempt = 0;
        }
    }
    if (rc == TN_OK && !stopping(x)) {
        int trc = tenants_up(x, max_attempts);
        if (trc != TN_OK && !is_blocking(trc)) {
            rc = trc;
            set_what(x, rc, "cannot send the tenants' own rows");
        }
    }
    if (rc == TN_OK && pull_rc != TN_OK) {
        rc = pull_rc;
        set_what(x, rc, "cannot pull other writers' changes");
    }
    if (rc == TN_OK && x->nskip) {
        rc = x->skip_code[0];
        set_what(x, rc, describe(rc));
    }
    if (s) {
        tn__outbox_pending_tenant(x->st, NULL, &s->pending);
        s->throttled = __atomic_load_n(&x->throttled, __ATOMIC_RELAXED);
    }
    return rc;
}

int tn_sync_run_once(tn_store *st, const tn_sync_config *cfg, tn_sync_stats *stats) {
    tn_sync_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    ctx x;
    int rc = ctx_open(&x, st, cfg, stats);
    if (rc == TN_OK) rc = pass(&x, x.cfg.max_attempts);
    ctx_close(&x);
    if (rc == TN_OK) stats->error = 0;
    return rc;
}

int tn_sync_remote_init(tn_store *st, const char **what) {
    (void)st;
    *what = NULL;
    tn_remote *r;
    static char err[200];
    int rc = tn_remote_open(getenv("TENANTRY_REMOTE"), &r, err, sizeof err);
    if (rc != TN_OK) {
        *what = err[0] ? err : "cannot open the remote";
        return rc;
    }
    rc = r->m->init(r, what);
    tn_remote_close(r);
    return rc;
}

/* ---- background thread --------------------------------------------------------- */

struct tn_sync {
    tn_store *st;
    tn_sync_config cfg;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    volatile int stop;
    int kick;
    /* Passes on demand (tn_sync_run_request/_wait, at the end of this file);
     * all under mu. */
    uint64_t begun, ended;  /* passes started and finished so far */
    tn_sync_stats live;     /* the running pass's progress */
    tn_sync_stats last;     /* the last finished pass's result */
};

static void run_begin(tn_sync *e);
static void run_progress(const tn_sync_stats *s, void *arg);
static void run_end(tn_sync *e, int rc, const tn_sync_stats *s);

static void *thread_main(void *arg) {
    tn_sync *e = arg;
    tn_sync_stats stats;
    ctx x;
    int attempt = 0, have_ctx = 0;
    while (!e->stop) {
        memset(&stats, 0, sizeof stats);
        if (!have_ctx) {
            have_ctx = ctx_open(&x, e->st, &e->cfg, &stats) == TN_OK;
            x.stop = &e->stop;
            if (x.r) x.r->stop = &e->stop;
            x.mu = &e->mu;
            x.cv = &e->cv;
            if (!have_ctx) ctx_close(&x);
        }
        x.cfg.progress = run_progress;
        x.cfg.progress_arg = e;
        run_begin(e);
        int rc = have_ctx ? pass(&x, 1) : TN_INVALID;
        run_end(e, rc, &stats);
        int64_t wait_ms = e->cfg.interval_ms;
        if (rc != TN_OK) {
            int64_t cap = e->cfg.backoff_cap_ms;
            wait_ms = tn__sync_backoff_ms(attempt, e->cfg.backoff_base_ms * 4, cap,
                                          randombytes_random());
            if (wait_ms < e->cfg.backoff_base_ms) wait_ms = e->cfg.backoff_base_ms;
            if (attempt < 30) attempt++;
        } else {
            attempt = 0;
        }
        /* Sleep in ticks, so a full outbox can start the next run early. */
        int64_t slept = 0;
        pthread_mutex_lock(&e->mu);
        while (!e->stop && !e->kick && slept < wait_ms) {
            int64_t tick = wait_ms - slept < 2000 ? wait_ms - slept : 2000;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += tick / 1000;
            ts.tv_nsec += (tick % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
            slept += tick;
            if (rc == TN_OK && e->cfg.early_rows > 0) {
                pthread_mutex_unlock(&e->mu);
                int64_t rows = 0;
                tn__outbox_pending_tenant(e->st, NULL, &rows);
                pthread_mutex_lock(&e->mu);
                if (rows >= e->cfg.early_rows) break;
            }
        }
        e->kick = 0;
        pthread_mutex_unlock(&e->mu);
    }
    if (have_ctx) ctx_close(&x);
    return NULL;
}

int tn_sync_start(tn_store *st, const tn_sync_config *cfg, tn_sync **out) {
    *out = NULL;
    tn_sync *e = calloc(1, sizeof *e);
    if (!e) return TN_NOMEM;
    e->st = st;
    if (cfg) e->cfg = *cfg;
    else tn_sync_config_init(&e->cfg);
    if (e->cfg.interval_ms < 1000) e->cfg.interval_ms = 1000;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    int rc = pthread_create(&e->th, NULL, thread_main, e) != 0 ? TN_NOMEM : TN_OK;
    if (rc != TN_OK) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        free(e);
        return rc;
    }
    *out = e;
    return TN_OK;
}

void tn_sync_kick(tn_sync *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->kick = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void tn_sync_stop(tn_sync *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stop = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->th, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

/* ---- passes on demand ---------------------------------------------------------
 *
 * `sync --once` next to a running daemon hands the run to the daemon's engine
 * (the lock file allows one engine per store): it asks for a pass that starts
 * after the request and waits for that pass's end, seeing its progress on
 * the way.  The engine thread marks each pass's start and end; everything
 * is under e->mu. */

static void run_begin(tn_sync *e) {
    pthread_mutex_lock(&e->mu);
    e->begun++;
    memset(&e->live, 0, sizeof e->live);
    pthread_mutex_unlock(&e->mu);
}

static void run_progress(const tn_sync_stats *s, void *arg) {
    tn_sync *e = arg;
    pthread_mutex_lock(&e->mu);
    e->live = *s;
    pthread_mutex_unlock(&e->mu);
}

static void run_end(tn_sync *e, int rc, const tn_sync_stats *s) {
    pthread_mutex_lock(&e->mu);
    e->last = *s;
    e->last.error = rc;
    if (rc != TN_OK && !e->last.what[0])
        snprintf(e->last.what, sizeof e->last.what, "%s", tn_strerror(rc));
    e->ended++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

uint64_t tn_sync_run_request(tn_sync *e) {
    pthread_mutex_lock(&e->mu);
    uint64_t ticket = e->begun + 1; /* the next pass to start */
    e->kick = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return ticket;
}

int tn_sync_run_wait(tn_sync *e, uint64_t ticket, int64_t timeout_ms, tn_sync_stats *out) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
    pthread_mutex_lock(&e->mu);
    int rc = TN_TIMEOUT;
    while (!e->stop && e->ended < ticket) {
        if (pthread_cond_timedwait(&e->cv, &e->mu, &until) == ETIMEDOUT) break;
    }
    if (e->ended >= ticket) rc = TN_OK;
    else if (e->stop) rc = TN_BUSY;
    /* Ended: the last finished pass's result (the one asked for, or a later
     * one, which also began after the request).  Else the progress so far. */
    if (out) {
        if (rc == TN_OK) *out = e->last;
        else if (e->begun >= ticket) *out = e->live;
        else memset(out, 0, sizeof *out);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}
