/*
 * engine.c - the sync loop (see engine.h for its guarantees).
 *
 * One pass: fetch a batch of coalesced changes (round-robin across tenants,
 * done by tn__outbox_fetch), then
 *   1. read the remote versions of the changed files' rows (BatchGetItem, a
 *      hundred per request) and upload the bytes of those the remote does not
 *      hold in a newer version, through presigned PUT URLs, several at once,
 *   2. write the rows (items, file rows whose object is in place, and
 *      tombstones) under the version condition, in one of three modes:
 *      one conditional PutItem per row, eight in flight (the default: on a
 *      local moto the cheapest per row, since moto copies the whole table
 *      for every transaction); TransactWriteItems of <= 100 conditional Puts,
 *      four in flight (TENANTRY_SYNC_TRANSACT=1: a hundredth of the requests
 *      against AWS, at twice the write units), where a cancelled transaction
 *      settles each row by its reason and sends the others again; or
 *      BatchWriteItem of 25 without the condition, eight in flight, for an
 *      appliance that is its tenants' only writer,
 *   3. delete the objects of deleted files whose tombstone row is written,
 * then record dead letters, conflict losses and per-tenant progress, and
 * acknowledge exactly the changes the remote settled.  Whatever is not
 * settled stays in the outbox and comes back in a later batch.
 *
 * Threads: a background engine owns one thread, one HTTP handle and one
 * credentials cache (so STS AssumeRole is called once per hour, not per
 * request).  tn_sync_run_once builds its own.
 */
#include "engine.h"

#include "aws.h"
#include "dynamo.h"
#include "http_client.h"
#include "outbox.h"
#include "remote_key.h"
#include "s3.h"
#include "sbuf.h"
#include "state.h"
#include "conn.h"

#include <cjson/cJSON.h>
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

#define MAX_TRANSACT 100
#define MAX_FETCH 800
#define MAX_BATCH_WRITE 25
/* One TransactWriteItems carries at most 4 MB; stay well under it. */
#define MAX_TX_BYTES ((size_t)3 << 20)
/* An item JSON this large may be over DynamoDB's 400 KB: it goes alone. */
#define MAX_TX_ITEM ((size_t)350 << 10)
/* Requests in flight: each worker thread has its own connection. */
#define WORKERS 8
/* A JSON body this large cannot be one DynamoDB item (400 KB) in any encoding. */
#define MAX_ITEM_JSON ((size_t)4 << 20)

void tn_sync_config_init(tn_sync_config *c) {
    memset(c, 0, sizeof *c);
    c->interval_ms = 60000;
    c->early_rows = 1000;
    c->batch = 100;
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
    tn__http *h;
    sess_cache sc; /* sessions belong to one thread: one per worker */
} worker;

/* How rows are written. */
enum {
    MODE_PUT = 0, /* one conditional PutItem per row, eight in flight (the default) */
    MODE_TX,      /* TENANTRY_SYNC_TRANSACT=1: TransactWriteItems of <= 100 conditional Puts */
    MODE_BATCH    /* TENANTRY_SYNC_SINGLE_WRITER=1: BatchWriteItem, no condition */
};

typedef struct ctx {
    tn_store *st;
    tn_sync_config cfg;
    tn__aws aws;
    int aws_loaded;
    worker w[WORKERS];
    int mode;          /* how rows are written: MODE_* */
    int single_writer; /* TENANTRY_SYNC_SINGLE_WRITER=1: unconditional BatchWriteItem */
    int no_batch_get;  /* BatchGetItem was refused: file versions are asked one by one */
    volatile int *stop;     /* background: set by tn_sync_stop */
    pthread_mutex_t *mu;    /* background: sleeps wait on cv */
    pthread_cond_t *cv;
    tn_sync_stats *stats;
    int blocking;           /* a remote-wide failure (table, bucket, credentials) */
    int blocking_s3;        /* ... and it came from S3 */
    int lock_fd;            /* <data>/sync.lock, held while this engine runs */
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
    int lrc = take_lock(x);
    if (lrc != TN_OK) return lrc;
    if (cfg) x->cfg = *cfg;
    else tn_sync_config_init(&x->cfg);
    if (x->cfg.batch < 1 || x->cfg.batch > MAX_FETCH) x->cfg.batch = MAX_TRANSACT;
    if (x->cfg.max_attempts < 1) x->cfg.max_attempts = 1;
    if (x->cfg.part_size < ((int64_t)5 << 20)) x->cfg.part_size = (int64_t)5 << 20;
    if (x->cfg.multipart_threshold < x->cfg.part_size) x->cfg.multipart_threshold = x->cfg.part_size;
    /* Smaller files are read whole into memory for one PUT: bound that. */
    if (x->cfg.multipart_threshold > ((int64_t)1 << 30)) x->cfg.multipart_threshold = (int64_t)1 << 30;
    x->stats = stats;
    char err[200] = "";
    int rc = tn__aws_load(&x->aws, NULL, err, sizeof err);
    if (rc != TN_OK) {
        set_what(x, rc, err);
        return rc;
    }
    x->aws_loaded = 1;
    if (!x->aws.bucket[0]) {
        set_what(x, TN_INVALID, "TENANTRY_S3_BUCKET is not set");
        return TN_INVALID;
    }
    const char *tr = getenv("TENANTRY_SYNC_TRANSACT");
    const char *sw = getenv("TENANTRY_SYNC_SINGLE_WRITER");
    x->single_writer = sw && strcmp(sw, "1") == 0;
    x->mode = x->single_writer ? MODE_BATCH : tr && strcmp(tr, "1") == 0 ? MODE_TX : MODE_PUT;
    /* Enough rows per fetch to keep several requests in flight: eight
     * BatchWriteItems of 25, or four transactions of 100. */
    if (x->cfg.batch == MAX_TRANSACT && x->mode == MODE_BATCH) x->cfg.batch = 8 * MAX_BATCH_WRITE;
    if (x->cfg.batch == MAX_TRANSACT && x->mode == MODE_TX) x->cfg.batch = 4 * MAX_TRANSACT;
    /* The bandwidth cap is shared out between the connections. */
    int64_t cap = x->cfg.bandwidth > 0 ? (x->cfg.bandwidth + WORKERS - 1) / WORKERS : 0;
    for (int i = 0; rc == TN_OK && i < WORKERS; i++) rc = tn__http_new(300, cap, &x->w[i].h);
    if (rc != TN_OK) set_what(x, rc, NULL);
    return rc;
}

static void ctx_close(ctx *x) {
    if (x->lock_fd >= 0) close(x->lock_fd); /* releases the lock */
    x->lock_fd = -1;
    for (int i = 0; i < WORKERS; i++) {
        tn__http_free(x->w[i].h);
        x->w[i].h = NULL;
    }
    if (x->aws_loaded) tn__aws_free(&x->aws);
    x->aws_loaded = 0;
}

static int stopping(ctx *x) { return x->stop && *x->stop; }

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

/* ---- results -------------------------------------------------------------- */

static void settle(tn__result *r, int outcome, int code) {
    r->outcome = outcome;
    r->code = code;
}

/* A failure of the remote as a whole: no row is to blame. */
static int is_blocking(int code) { return code == TN_DENIED || code == TN_NOTFOUND; }

/* Classifies an error for one row. */
static void row_error(ctx *x, tn__result *r, int code) {
    if (tn_err_retryable(code) || is_blocking(code)) {
        settle(r, TN__OUT_RETRY, code);
        if (is_blocking(code)) __atomic_store_n(&x->blocking, code, __ATOMIC_RELAXED);
    } else {
        settle(r, TN__OUT_DEAD, code);
    }
}

/* ---- DynamoDB rows --------------------------------------------------------------- */

/* A conditional Put of item, for PutItem or one TransactItems entry; the
 * caller closes the object.  A refusal carries the remote's old item, so its
 * version needs no GetItem. */
static void put_body(ctx *x, const char *item, int64_t version, tn__sbuf *b) {
    tn__sb_str(b, "{\"TableName\":");
    tn__sb_json_str(b, x->aws.table);
    tn__sb_str(b, ",\"Item\":");
    tn__sb_str(b, item);
    tn__sb_fmt(b, ",\"ConditionExpression\":\"attribute_not_exists(pk) OR #v < :v\","
                  "\"ExpressionAttributeNames\":{\"#v\":\"version\"},"
                  "\"ExpressionAttributeValues\":{\":v\":{\"N\":\"%lld\"}},"
                  "\"ReturnValuesOnConditionCheckFailure\":\"ALL_OLD\"",
               (long long)version);
}

static int64_t remote_version(ctx *x, tn__http *h, const tn__remote_key *k, int *rc) {
    tn__sbuf b = {0};
    tn__sb_str(&b, "{\"TableName\":");
    tn__sb_json_str(&b, x->aws.table);
    tn__sb_str(&b, ",\"Key\":{\"pk\":{\"S\":");
    tn__sb_json_str(&b, k->pk);
    tn__sb_str(&b, "},\"sk\":{\"S\":");
    tn__sb_json_str(&b, k->sk);
    tn__sb_str(&b, "}},\"ConsistentRead\":true,\"ProjectionExpression\":\"#v\","
                   "\"ExpressionAttributeNames\":{\"#v\":\"version\"}}");
    if (b.failed) {
        *rc = TN_NOMEM;
        return 0;
    }
    tn__ddb_resp r;
    *rc = tn__ddb_call(&x->aws, h, "GetItem", b.p, b.len, &r);
    int64_t v = *rc == TN_OK ? tn__ddb_version_of(r.body) : 0;
    tn__ddb_resp_free(&r);
    tn__sb_free(&b);
    return v;
}

/* A row whose condition failed: the remote holds version rv (-1: unknown,
 * ask).  Equal is our own earlier write (a replay after a crash); higher is
 * a conflict loss; lower means it changed under us: try again. */
static void condition_failed(ctx *x, tn__http *h, const tn__change *ch, const tn__remote_key *k,
                             int64_t rv, tn__result *res) {
    int rc = TN_OK;
    if (rv < 0) rv = remote_version(x, h, k, &rc);
    if (rc != TN_OK) {
        row_error(x, res, rc);
    } else if (rv == ch->version) {
        settle(res, TN__OUT_OK, 0);
    } else if (rv > ch->version) {
        settle(res, TN__OUT_CONFLICT, TN_CONFLICT);
        res->remote_version = rv;
    } else {
        settle(res, TN__OUT_RETRY, TN_CONFLICT);
    }
}

#define MAX_BATCH_GET 100

/*
 * The remote versions of the rows of changes idx[0..n) (n <= 100) with one
 * BatchGetItem of consistent reads: rv[idx[j]] = the version, 0 when the row
 * is absent, -1 when the answer did not say (that row is asked alone later,
 * with GetItem).
 */
static void remote_versions(ctx *x, tn__http *h, const tn__remote_key *keys, const int *idx, int n,
                            int64_t *rv) {
    tn__sbuf b = {0};
    tn__sb_str(&b, "{\"RequestItems\":{");
    tn__sb_json_str(&b, x->aws.table);
    tn__sb_str(&b, ":{\"Keys\":[");
    for (int j = 0; j < n; j++) {
        tn__sb_str(&b, j ? ",{\"pk\":{\"S\":" : "{\"pk\":{\"S\":");
        tn__sb_json_str(&b, keys[idx[j]].pk);
        tn__sb_str(&b, "},\"sk\":{\"S\":");
        tn__sb_json_str(&b, keys[idx[j]].sk);
        tn__sb_str(&b, "}}");
    }
    tn__sb_str(&b, "],\"ConsistentRead\":true,\"ProjectionExpression\":\"pk,sk,#v\","
                   "\"ExpressionAttributeNames\":{\"#v\":\"version\"}}}}");
    tn__ddb_resp r;
    int rc = b.failed ? TN_NOMEM : tn__ddb_call(&x->aws, h, "BatchGetItem", b.p, b.len, &r);
    tn__sb_free(&b);
    if (rc == TN_NOMEM) return;
    /* A role without dynamodb:BatchGetItem: ask row by row from now on. */
    if (rc == TN_DENIED) x->no_batch_get = 1;
    cJSON *j = rc == TN_OK ? cJSON_Parse(r.body) : NULL;
    tn__ddb_resp_free(&r);
    cJSON *got = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Responses"), x->aws.table);
    cJSON *un = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "UnprocessedKeys"), x->aws.table);
    if (cJSON_IsArray(got) && (!un || cJSON_GetArraySize(cJSON_GetObjectItem(un, "Keys")) == 0)) {
        for (int q = 0; q < n; q++) rv[idx[q]] = 0;
        cJSON *e;
        cJSON_ArrayForEach(e, got) {
            const char *pk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "pk"), "S"));
            const char *sk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "sk"), "S"));
            for (int q = 0; pk && sk && q < n; q++)
                if (strcmp(keys[idx[q]].sk, sk) == 0 && strcmp(keys[idx[q]].pk, pk) == 0)
                    rv[idx[q]] = tn__ddb_item_version(e);
        }
    }
    cJSON_Delete(j);
}

/* One row alone, with a conditional PutItem. */
static void put_one(ctx *x, tn__http *h, const tn__change *ch, const tn__remote_key *k, const char *item,
                    tn__result *res) {
    tn__sbuf b = {0};
    put_body(x, item, ch->version, &b);
    tn__sb_str(&b, "}");
    if (b.failed) {
        tn__sb_free(&b);
        settle(res, TN__OUT_RETRY, TN_NOMEM);
        return;
    }
    tn__ddb_resp r;
    int rc = tn__ddb_call(&x->aws, h, "PutItem", b.p, b.len, &r);
    tn__sb_free(&b);
    if (rc == TN_OK) {
        settle(res, TN__OUT_OK, 0);
    } else if (rc == TN_CONFLICT) {
        /* The old item comes with the refusal (ReturnValuesOnConditionCheckFailure). */
        condition_failed(x, h, ch, k, tn__ddb_refusal_version(r.body), res);
    } else {
        row_error(x, res, rc);
    }
    tn__ddb_resp_free(&r);
}

/*
 * Writes the rows idx[0..n) (n <= 100) with TransactWriteItems, every row
 * under its version condition.  A cancelled transaction names each row's
 * reason: a failed condition settles that row (a replay of our own write, or
 * a conflict loss; the remote's old item comes with the refusal), a
 * validation error sends that row alone so it can become a dead letter, and
 * the rows that were not at fault go again in the next transaction.
 */
static void write_tx(ctx *x, tn__http *h, tn__batch *b, tn__remote_key *keys, char **items,
                     const int *idx, int n, tn__result *res) {
    int left[MAX_TRANSACT], nleft = n;
    memcpy(left, idx, (size_t)n * sizeof *left);
    for (int attempt = 0; nleft > 0 && attempt < 6; attempt++) {
        if (stopping(x) || __atomic_load_n(&x->blocking, __ATOMIC_RELAXED)) break;
        if (attempt) nap(x, tn__sync_backoff_ms(attempt, 50, 2000, randombytes_random()));
        if (nleft == 1) {
            int i = left[0];
            put_one(x, h, &b->changes[i], &keys[i], items[i], &res[i]);
            return;
        }
        tn__sbuf body = {0};
        tn__sb_str(&body, "{\"TransactItems\":[");
        for (int j = 0; j < nleft; j++) {
            tn__sb_str(&body, j ? ",{\"Put\":" : "{\"Put\":");
            put_body(x, items[left[j]], b->changes[left[j]].version, &body);
            tn__sb_str(&body, "}}");
        }
        tn__sb_str(&body, "]}");
        tn__ddb_resp r;
        int rc = body.failed ? TN_NOMEM
                             : tn__ddb_call(&x->aws, h, "TransactWriteItems", body.p, body.len, &r);
        tn__sb_free(&body);
        if (rc == TN_OK) {
            tn__ddb_resp_free(&r);
            for (int j = 0; j < nleft; j++) settle(&res[left[j]], TN__OUT_OK, 0);
            return;
        }
        if (rc == TN_NOMEM || tn_err_retryable(rc) || is_blocking(rc)) {
            if (rc != TN_NOMEM) tn__ddb_resp_free(&r);
            for (int j = 0; j < nleft; j++) row_error(x, &res[left[j]], rc);
            return;
        }
        int why[MAX_TRANSACT];
        int64_t ver[MAX_TRANSACT];
        int listed = strcmp(r.type, "TransactionCanceledException") == 0 &&
                     tn__ddb_cancel_reasons(r.body, nleft, why, ver) == 0;
        tn__ddb_resp_free(&r);
        if (!listed) {
            /* Refused as a whole (a validation error): settle each row alone. */
            for (int k = 0; k < nleft && !x->blocking && !stopping(x); k++) {
                int i = left[k];
                put_one(x, h, &b->changes[i], &keys[i], items[i], &res[i]);
            }
            return;
        }
        int keep = 0;
        for (int k = 0; k < nleft; k++) {
            int i = left[k];
            if (why[k] == TN__DDB_REASON_RETRY)
                left[keep++] = i; /* not this row's fault, or try it again */
            else if (why[k] == TN__DDB_REASON_CONDITION)
                condition_failed(x, h, &b->changes[i], &keys[i], ver[k], &res[i]);
            else
                put_one(x, h, &b->changes[i], &keys[i], items[i], &res[i]);
        }
        nleft = keep;
    }
    for (int j = 0; j < nleft; j++) settle(&res[left[j]], TN__OUT_RETRY, TN_THROTTLED);
}

/* ---- S3 ------------------------------------------------------------------------ */

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
    const tn__remote_key *k;
    int fd;
    tn__mp *mp;
    int64_t nparts;
    int next; /* atomic: next part number */
    int rc;   /* first failure */
} part_job;

static void *part_worker(void *arg) {
    part_job *j = arg;
    ctx *x = j->x;
    tn__http *h = NULL;
    unsigned char *buf = malloc((size_t)x->cfg.part_size);
    int rc = buf ? tn__http_new(300, x->cfg.bandwidth, &h) : TN_NOMEM;
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
        rc = tn__s3_mp_part(&x->aws, h, j->k->s3_key, j->mp->upload_id, p, buf, len,
                            j->mp->etag[p - 1], sizeof j->mp->etag[0]);
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
    tn__http_free(h);
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
    j->rc = tn__fd_sha256_hex(j->fd, j->hex);
    return NULL;
}

/*
 * Uploads f in parts, resuming an upload recorded for this file and version:
 * every finished part is persisted before the next begins, so a restart sends
 * only the parts that were missing.  An upload for an older version is
 * aborted first.
 */
static int upload_parts(ctx *x, worker *w, const tn__change *ch, const tn__remote_key *k, FILE *f) {
    tn__mp *mp = malloc(sizeof *mp);
    int rc = mp ? tn__mp_get(x->st, ch->tenant_id, ch->key, mp) : TN_NOMEM;
    int64_t nparts = (ch->size + x->cfg.part_size - 1) / x->cfg.part_size;
    if (rc == TN_OK && nparts > TN__MP_MAX_PARTS) rc = TN_TOOBIG;
    if (rc == TN_OK && mp->upload_id[0] && mp->version != ch->version) {
        rc = tn__s3_mp_abort(&x->aws, w->h, k->s3_key, mp->upload_id);
        if (rc == TN_OK) rc = tn__mp_clear(x->st, ch->tenant_id, ch->key);
        memset(mp->upload_id, 0, sizeof mp->upload_id);
        mp->version = 0;
    }
    if (rc == TN_OK && !mp->upload_id[0]) {
        /* A record without an id: a crash came between creating an upload
         * and recording its id, so whatever is open for this key is ours. */
        int64_t cut_off = mp->version;
        memset(mp, 0, sizeof *mp);
        if (cut_off) rc = tn__s3_mp_abort_all(&x->aws, w->h, k->s3_key);
        /* Recorded before the upload exists, so a crash cannot lose it. */
        if (rc == TN_OK) rc = tn__mp_begin(x->st, ch->tenant_id, ch->key, ch->version, "");
        if (rc == TN_OK)
            rc = tn__s3_mp_create(&x->aws, w->h, k->s3_key, mp->upload_id, sizeof mp->upload_id);
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
        part_job pj = {x, ch, k, fileno(f), mp, nparts, 1, TN_OK};
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
            tn__s3_mp_abort(&x->aws, w->h, k->s3_key, mp->upload_id);
            tn__mp_clear(x->st, ch->tenant_id, ch->key);
            free(mp);
            return TN_IO;
        }
    }
    if (rc == TN_OK && stopping(x)) rc = TN_BUSY;
    if (rc == TN_OK)
        rc = tn__s3_mp_complete(&x->aws, w->h, k->s3_key, mp->upload_id,
                                (const char (*)[72])mp->etag, (int)nparts);
    if (rc == TN_OK) {
        tn__mp_clear(x->st, ch->tenant_id, ch->key);
    } else if (rc == TN_NOTFOUND || rc == TN_INVALID) {
        /* The upload is gone (expired, aborted) or refused its parts: start
         * over on the next pass rather than dead-letter the file. */
        if (mp && mp->upload_id[0]) tn__s3_mp_abort(&x->aws, w->h, k->s3_key, mp->upload_id);
        tn__mp_clear(x->st, ch->tenant_id, ch->key);
        rc = TN_THROTTLED;
    }
    free(mp);
    return rc;
}

/* Aborts and forgets an unfinished multipart upload recorded for ch's file
 * when ch does not go up through it: a replay of a version already remote, a
 * conflict loss, a new version small enough for one PUT. */
static int drop_upload(ctx *x, tn__http *h, const tn__change *ch, const tn__remote_key *k) {
    tn__mp *mp = malloc(sizeof *mp);
    int rc = mp ? tn__mp_get(x->st, ch->tenant_id, ch->key, mp) : TN_NOMEM;
    if (rc == TN_OK && (mp->upload_id[0] || mp->version)) {
        /* (No id recorded: see upload_parts.) */
        rc = mp->upload_id[0] ? tn__s3_mp_abort(&x->aws, h, k->s3_key, mp->upload_id)
                              : tn__s3_mp_abort_all(&x->aws, h, k->s3_key);
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

static void upload(ctx *x, worker *w, const tn__change *ch, const tn__remote_key *k, int64_t known,
                   tn__result *res) {
    char *path = NULL;
    int rc = file_path(x, &w->sc, ch, &path);
    if (rc != TN_OK) {
        row_error(x, res, rc == TN_NOTFOUND ? TN_IO : rc);
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
    /* The object's key has no version in it, so uploading an older file
     * would replace a newer appliance's bytes even though the FILE# row's
     * condition then keeps the newer row.  Ask the row first: a newer remote
     * version is a conflict loss (no upload), an equal one a replay.  (A write
     * racing this check from another appliance can still interleave.) */
    int64_t rv = x->single_writer ? 0 : known >= 0 ? known : remote_version(x, w->h, k, &rc);
    if (rc != TN_OK) {
        fclose(f);
        row_error(x, res, rc);
        return;
    }
    int parts = ch->size >= x->cfg.multipart_threshold;
    if ((rv >= ch->version || !parts) && (rc = drop_upload(x, w->h, ch, k)) != TN_OK) {
        fclose(f);
        row_error(x, res, rc);
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
        rc = upload_parts(x, w, ch, k, f);
    } else {
        unsigned char *buf = malloc(ch->size ? (size_t)ch->size : 1);
        if (!buf) rc = TN_NOMEM;
        else if (ch->size && fread(buf, 1, (size_t)ch->size, f) != (size_t)ch->size) rc = TN_IO;
        else rc = tn__s3_put(&x->aws, w->h, k->s3_key, buf, (size_t)ch->size, ch->sha256,
                             ch->content_type);
        free(buf);
    }
    fclose(f);
    if (rc == TN_OK) {
        settle(res, TN__OUT_OK, 0); /* stage 1 done; the row comes next */
        if (x->stats && !parts) __atomic_fetch_add(&x->stats->bytes, ch->size, __ATOMIC_RELAXED);
    } else if (!is_blocking(rc) && !tn_err_retryable(rc) && replaced(x, &w->sc, ch)) {
        settle(res, TN__OUT_OK, 0); /* e.g. the bytes changed under a newer record */
        res->superseded = 1;
    } else {
        row_error(x, res, rc);
        if (is_blocking(rc)) __atomic_store_n(&x->blocking_s3, 1, __ATOMIC_RELAXED);
    }
}

/* ---- single-writer mode ------------------------------------------------------- */

/* The pk/sk pairs listed under UnprocessedItems, as "pk\nsk" strings. */
static int unprocessed(const char *body, const char *table, char ***out) {
    *out = NULL;
    cJSON *j = cJSON_Parse(body);
    cJSON *list = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "UnprocessedItems"), table), *e;
    int n = 0, cap = cJSON_GetArraySize(list);
    if (cap > 0) *out = calloc((size_t)cap, sizeof **out);
    cJSON_ArrayForEach(e, list) {
        cJSON *item = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "PutRequest"), "Item");
        const char *pk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(item, "pk"), "S"));
        const char *sk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(item, "sk"), "S"));
        if (!*out || !pk || !sk || n >= cap) continue;
        tn__sbuf b = {0};
        tn__sb_fmt(&b, "%s\n%s", pk, sk);
        (*out)[n] = tn__sb_take(&b);
        if ((*out)[n]) n++;
    }
    cJSON_Delete(j);
    return n;
}

/*
 * Writes rows idx[0..n) (n <= 25) with BatchWriteItem, without the version
 * condition: only for an appliance that is the only writer of its tenants'
 * rows (opt-in).  UnprocessedItems are sent again with backoff; a refused
 * batch falls back to one conditional PutItem per row.
 */
static void batch_write(ctx *x, tn__http *h, tn__batch *b, tn__remote_key *keys, char **items,
                        const int *idx, int n, tn__result *res) {
    int left[MAX_BATCH_WRITE], nleft = n;
    memcpy(left, idx, (size_t)n * sizeof *left);
    for (int attempt = 0; nleft > 0 && attempt < 6 && !stopping(x); attempt++) {
        if (attempt) nap(x, tn__sync_backoff_ms(attempt, 50, 2000, randombytes_random()));
        tn__sbuf body = {0};
        tn__sb_str(&body, "{\"RequestItems\":{");
        tn__sb_json_str(&body, x->aws.table);
        tn__sb_str(&body, ":[");
        for (int j = 0; j < nleft; j++) {
            tn__sb_str(&body, j ? ",{\"PutRequest\":{\"Item\":" : "{\"PutRequest\":{\"Item\":");
            tn__sb_str(&body, items[left[j]]);
            tn__sb_str(&body, "}}");
        }
        tn__sb_str(&body, "]}}");
        tn__ddb_resp r;
        int rc = body.failed ? TN_NOMEM
                             : tn__ddb_call(&x->aws, h, "BatchWriteItem", body.p, body.len, &r);
        tn__sb_free(&body);
        if (rc != TN_OK) {
            if (rc != TN_NOMEM) tn__ddb_resp_free(&r);
            if (tn_err_retryable(rc) || is_blocking(rc)) {
                for (int j = 0; j < nleft; j++) row_error(x, &res[left[j]], rc);
            } else {
                for (int j = 0; j < nleft && !x->blocking; j++)
                    put_one(x, h, &b->changes[left[j]], &keys[left[j]], items[left[j]],
                            &res[left[j]]);
            }
            return;
        }
        char **un = NULL;
        int nu = unprocessed(r.body, x->aws.table, &un);
        tn__ddb_resp_free(&r);
        int keep = 0;
        for (int j = 0; j < nleft; j++) {
            int i = left[j], again = 0;
            size_t pl = strlen(keys[i].pk);
            for (int u = 0; u < nu && !again; u++)
                again = strncmp(un[u], keys[i].pk, pl) == 0 && un[u][pl] == '\n' &&
                        strcmp(un[u] + pl + 1, keys[i].sk) == 0;
            if (again) left[keep++] = i;
            else settle(&res[i], TN__OUT_OK, 0);
        }
        for (int u = 0; u < nu; u++) free(un[u]);
        free(un);
        nleft = keep;
    }
    for (int j = 0; j < nleft; j++) settle(&res[left[j]], TN__OUT_RETRY, TN_THROTTLED);
}

/* ---- parallel requests ------------------------------------------------------- */

typedef struct job {
    ctx *x;
    tn__batch *b;
    tn__remote_key *keys;
    char **items;
    const int *idx; /* the changes to handle */
    int n;
    int next;       /* atomic: next index into idx */
    int stage;      /* 1 upload, 2 row, 3 batch of rows, 4 transaction of rows */
    tn__result *res;
    const int *rows; /* stages 3 and 4: every row; idx holds chunk starts */
    const int *cnt;  /* ... and cnt the rows in each chunk */
    const int64_t *rv; /* stage 1: remote versions known (-1: ask) */
} job;

typedef struct job_arg {
    job *j;
    worker *w;
} job_arg;

static void *job_worker(void *arg) {
    job_arg *a = arg;
    job *j = a->j;
    ctx *x = j->x;
    for (;;) {
        int k = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (k >= j->n || __atomic_load_n(&x->blocking, __ATOMIC_RELAXED) || stopping(x)) break;
        int i = j->idx[k];
        if (j->stage == 1) upload(x, a->w, &j->b->changes[i], &j->keys[i], j->rv[i], &j->res[i]);
        else if (j->stage == 3)
            batch_write(x, a->w->h, j->b, j->keys, j->items, j->rows + i, j->cnt[k], j->res);
        else if (j->stage == 4)
            write_tx(x, a->w->h, j->b, j->keys, j->items, j->rows + i, j->cnt[k], j->res);
        else put_one(x, a->w->h, &j->b->changes[i], &j->keys[i], j->items[i], &j->res[i]);
    }
    return NULL;
}

/* Runs the job on up to WORKERS threads, each with its own connection. */
static void run_job(job *j) {
    pthread_t th[WORKERS];
    job_arg args[WORKERS];
    int nth = j->n < WORKERS ? j->n : WORKERS, started = 0;
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

static int process(ctx *x, tn__batch *b, tn__result *res) {
    int n = b->n, rc = TN_OK;
    tn__remote_key *keys = calloc((size_t)n, sizeof *keys);
    char **items = calloc((size_t)n, sizeof *items);
    int *idx = calloc((size_t)n, sizeof *idx);
    int *starts = calloc((size_t)n, sizeof *starts), *cnt = calloc((size_t)n, sizeof *cnt);
    int64_t *rv = calloc((size_t)n, sizeof *rv);
    if (!keys || !items || !idx || !starts || !cnt || !rv) {
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
        int krc = tn__remote_key_build(ch->tenant_id, ch->kind, ch->key, &keys[i]);
        if (krc == TN_NOMEM) {
            rc = krc;
            goto done;
        }
        if (krc != TN_OK) settle(&res[i], TN__OUT_DEAD, TN_INVALID);
    }
    /* 1. Objects first: a FILE# row never points at a missing object. */
    int m = 0;
    for (int i = 0; i < n; i++) {
        tn__change *ch = &b->changes[i];
        if (ch->kind == TN__KIND_FILE && !ch->deleted && keys[i].pk) idx[m++] = i;
    }
    if (m) {
        /* The remote versions of these files' rows, a hundred per request,
         * so a file a newer appliance replaced is not uploaded. */
        for (int i = 0; i < n; i++) rv[i] = -1;
        for (int k = 0; !x->single_writer && !x->no_batch_get && k < m && !x->blocking;
             k += MAX_BATCH_GET)
            remote_versions(x, x->w[0].h, keys, idx + k, m - k < MAX_BATCH_GET ? m - k : MAX_BATCH_GET, rv);
        job j = {x, b, keys, items, idx, m, 0, 1, res, NULL, NULL, rv};
        run_job(&j);
    }
    /* 2. Rows. */
    m = 0;
    for (int i = 0; i < n; i++) {
        tn__change *ch = &b->changes[i];
        if (!keys[i].pk || res[i].outcome == TN__OUT_DEAD || res[i].superseded) continue;
        if (ch->kind == TN__KIND_FILE && !ch->deleted && res[i].outcome != TN__OUT_OK) continue;
        tn__sbuf item = {0};
        /* The tenant's own tombstone retention, else the engine's. */
        int64_t ttl = ch->tombstone_ttl_s > 0 ? ch->tombstone_ttl_s : x->cfg.tombstone_ttl_s;
        int irc = tn__ddb_item(ch, &keys[i], ttl, &item);
        if (irc == TN_OK && item.len > MAX_ITEM_JSON) irc = TN_TOOBIG;
        if (irc == TN_NOMEM) {
            tn__sb_free(&item);
            rc = irc;
            goto done;
        }
        if (irc != TN_OK) {
            settle(&res[i], TN__OUT_DEAD, irc);
            tn__sb_free(&item);
            continue;
        }
        items[i] = tn__sb_take(&item);
        settle(&res[i], TN__OUT_RETRY, 0);
        idx[m++] = i;
    }
    if (m && x->mode == MODE_PUT) {
        /* Independent conditional PutItems, several in flight. */
        job j = {x, b, keys, items, idx, m, 0, 2, res, NULL, NULL, NULL};
        run_job(&j);
    } else if (m) {
        /* Chunks of rows, several in flight: BatchWriteItem of <= 25, or
         * TransactWriteItems of <= 100 rows and <= MAX_TX_BYTES, a key at
         * most once per transaction, and an item too large for DynamoDB
         * alone (its PutItem makes it a dead letter). */
        int ns = 0, cur = 0, chunk_alone = 0;
        size_t bytes = 0;
        for (int k = 0; k < m; k++) {
            int i = idx[k], dup = 0;
            size_t len = strlen(items[i]);
            int alone = x->mode == MODE_TX && len > MAX_TX_ITEM;
            for (int q = k - cur; x->mode == MODE_TX && q < k && !dup; q++)
                dup = strcmp(keys[idx[q]].sk, keys[i].sk) == 0 && strcmp(keys[idx[q]].pk, keys[i].pk) == 0;
            int full = x->mode == MODE_BATCH ? cur == MAX_BATCH_WRITE
                                             : cur == MAX_TRANSACT || bytes + len > MAX_TX_BYTES;
            if (cur && (full || dup || alone || (k && chunk_alone))) {
                cnt[ns++] = cur;
                cur = 0;
                bytes = 0;
            }
            if (!cur) starts[ns] = k;
            cur++;
            bytes += len;
            chunk_alone = alone;
        }
        if (cur) cnt[ns++] = cur;
        job j = {x, b, keys, items, starts, ns, 0, x->mode == MODE_BATCH ? 3 : 4, res, idx, cnt, NULL};
        run_job(&j);
    }
    /* 3. Objects of deleted files, once their tombstone is written. */
    for (int i = 0; i < n && !x->blocking; i++) {
        tn__change *ch = &b->changes[i];
        if (ch->kind != TN__KIND_FILE || !ch->deleted || res[i].outcome != TN__OUT_OK ||
            !keys[i].s3_key)
            continue;
        /* An upload left unfinished for this file is abandoned now. */
        int drc = drop_upload(x, x->w[0].h, ch, &keys[i]);
        if (drc == TN_OK) drc = tn__s3_delete(&x->aws, x->w[0].h, keys[i].s3_key);
        if (drc != TN_OK) row_error(x, &res[i], drc);
        if (is_blocking(drc)) x->blocking_s3 = 1;
    }
done:
    for (int t = 0; t < WORKERS; t++) {
        tn_session_close(x->w[t].sc.s);
        x->w[t].sc.s = NULL;
    }
    for (int i = 0; keys && i < n; i++) tn__remote_key_free(&keys[i]);
    for (int i = 0; items && i < n; i++) free(items[i]);
    free(keys);
    free(items);
    free(idx);
    free(starts);
    free(cnt);
    free(rv);
    return rc;
}

/* ---- passes ------------------------------------------------------------------ */

static const char *describe(int code, int s3) {
    if (code == TN_NOTFOUND)
        return s3 ? "S3 bucket not found" : "DynamoDB table not found "
                                                             "(run `tenantry remote init`)";
    if (code == TN_DENIED) return "the remote refused the credentials";
    return tn_strerror(code);
}

/* Drains the outbox; gives up after max_attempts retryable failures in a row. */
static int pass(ctx *x, int max_attempts) {
    tn_sync_stats *s = x->stats;
    int attempt = 0, rc = TN_OK;
    x->blocking = x->blocking_s3 = 0;
    tn__outbox_pending_tenant(x->st, NULL, s ? &s->pending_start : &(int64_t){0});
    while (!stopping(x)) {
        tn__batch b;
        rc = tn__outbox_fetch(x->st, x->cfg.batch, x->cfg.batch * 4, &b);
        if (rc != TN_OK) {
            set_what(x, rc, "cannot read the outbox");
            break;
        }
        if (b.n == 0) {
            tn__batch_free(&b);
            break;
        }
        tn__result *res = calloc((size_t)b.n, sizeof *res);
        unsigned char *done = calloc((size_t)b.n, 1);
        rc = res && done ? process(x, &b, res) : TN_NOMEM;
        int retry_code = 0, any_done = 0;
        for (int i = 0; rc == TN_OK && i < b.n; i++) {
            done[i] = res[i].outcome != TN__OUT_RETRY;
            any_done |= done[i];
            if (!done[i]) {
                retry_code = res[i].code ? res[i].code : TN_NETWORK;
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
        if (retry_code) {
            if (is_blocking(retry_code)) attempt = max_attempts;
            if (++attempt >= max_attempts) {
                rc = retry_code;
                set_what(x, rc, describe(rc, x->blocking_s3));
                break;
            }
            nap(x, backoff);
            x->blocking = x->blocking_s3 = 0;
        } else {
            attempt = 0;
        }
    }
    if (s) tn__outbox_pending_tenant(x->st, NULL, &s->pending);
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
