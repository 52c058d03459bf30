/*
 * api_int.h - what every file of the HTTP layer shares: the server's state
 * (tn__srv), a request (tn__req) and its response (tn__resp), and the
 * helpers every handler uses (respond.c: responses, request headers, query
 * parameters, bodies, JSON values; throttle.c: failed authentication and
 * per-key rates).
 *
 * The files call downward only:
 *
 *   server.c  libmicrohttpd, listening, connection deadlines, request logs
 *      |
 *   router.c  route table, the one authentication entry point, CORS,
 *      |      body limits, dispatch, the response on the wire
 *      |
 *   api_*.c   one file per resource (handlers.h)
 *      |
 *   respond.c, throttle.c, log.c   helpers (this header, http.h)
 *
 * A handler is reached only through router.c, which has already routed the
 * request, authenticated the caller (r->is_admin, or r->key for a tenant
 * key), checked scopes and rate limits, read and bounded the body, and for
 * tenant routes opened r->s, a session of the key's tenant.  A handler fills
 * *out through the tn__resp_* helpers and never writes a tenant id into a
 * tenant-facing response.
 */
#ifndef TN_API_INT_H
#define TN_API_INT_H

#include "auth.h"
#include "http.h"
#include "ratelimit.h"
#include "sbuf.h"
#include "tenantry.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

struct MHD_Connection;
struct MHD_Daemon;

enum { TN__M_GET = 1, TN__M_HEAD = 2, TN__M_POST = 4, TN__M_PUT = 8, TN__M_PATCH = 16,
       TN__M_DELETE = 32, TN__M_OPTIONS = 64 };
#define TN__NMETHODS 7

typedef struct tn__srv {
    tn_store *st;
    tn__auth *auth;
    tn__rl *key_rl;  /* per API key and per tenant (throttle.c) */
    tn__rl *fail_rl; /* failed authentication, per claimed principal (throttle.c) */
    tn__http_config cfg;
    struct MHD_Daemon *d;
    int listen_fd;
    char *unix_path;
    uint32_t rid_prefix;
    atomic_ullong rid_next;
    atomic_llong by_class[6]; /* index status / 100; 0 = no response */
    atomic_llong auth_failures, rate_limited, in_flight;
    /* The two tenants that made requests last, most recent first, for "is
     * another tenant active" (throttle.c). */
    pthread_mutex_t recent_mu;
    struct { char tenant[37]; int64_t ms; } recent[2];
    /* The background sync engine (serve sets it; NULL: sync off), and the
     * threads answering POST /v1/admin/sync/run (api_sync.c), which
     * tn__http_stop waits for. */
    pthread_mutex_t jobs_mu;
    pthread_cond_t jobs_cv;
    struct tn_sync *sync;
    int jobs, stopping;
    char **cors;      /* allowed origins (NULL-terminated), or NULL */
    int cors_any;     /* "*" */
} tn__srv;

/* A body written while it is sent (stream.c), for long answers: the handler
 * makes one and puts it in the response; a thread of its own writes to it
 * and ends it.  The worker thread never waits: with nothing to send, the
 * connection is suspended until the next write. */
typedef struct tn__stream tn__stream;
tn__stream *tn__stream_new(void);
/* Appends text (dropped once the client is gone). */
void tn__stream_write(tn__stream *s, const char *text, size_t n);
/* 1 once the response is gone (sent in full, or the client left). */
int tn__stream_gone(tn__stream *s);
/* The writer is done: the body ends after what was written. */
void tn__stream_end(tn__stream *s);
/* The response's side lets go (the response is gone, or never sent). */
void tn__stream_release(tn__stream *s);

typedef struct tn__resp {
    int status;
    char *body; /* malloc'd */
    size_t len;
    const char *ctype;
    char ctype_buf[256]; /* a stored file's content type */
    char etag[32];
    char allow[48];
    char content_range[96];
    int retry_after;
    int fd;             /* >= 0: stream this file (for GET /v1/files/...) */
    uint64_t off, flen; /* the part of fd to send */
    int ranges;         /* Accept-Ranges: bytes */
    tn__stream *stream; /* set: the body is written while it is sent */
} tn__resp;

struct tn__route;

typedef struct tn__req {
    tn__srv *srv;
    struct MHD_Connection *conn;
    const struct tn__route *route;
    const char *pattern; /* the matched route pattern, NULL before routing */
    int method;
    char *arg[2]; /* percent-decoded path parameters */
    char rid[17];
    char path[256]; /* for the log: the raw path, no query, truncated */
    struct timespec t0;
    char client[64]; /* for throttling failed authentication */
    int is_unix;
    int is_admin;
    tn__key_info key; /* the caller of a tenant route */
    tn_session *s;
    /* body */
    int64_t content_length; /* -1: not given */
    int64_t body_bytes;     /* received so far (for the body's minimum rate) */
    int has_body;
    char *body;
    size_t len, cap;
    /* file upload (api_files.c) */
    int fd;
    char *tmp_path, *final_path, *ctype;
    crypto_hash_sha256_state sha;
    int64_t written, quota_left; /* quota_left -1: none */
    /* an error found before the handler ran */
    int err_status;
    const char *err_msg;
    int err_retry;
    int queued;
    int preflight; /* an OPTIONS request, answered by the router (resp.allow) */
    int status; /* for the log */
    tn__resp resp;
} tn__req;

typedef void (*tn__handler)(tn__req *r, tn__resp *out);

/* The longest file name a tenant may upload, in bytes: what the remote can
 * hold.  S3 takes keys of at most 1024 bytes and the object key is
 * "<36-character tenant uuid>/files/<name>" (1024 - 36 - 7 = 981); the
 * DynamoDB sort key "FILE#<name>" allows 1019.  Longer names (the store takes
 * up to TN_FILE_NAME_MAX) could never sync.  Checked on upload only: a file
 * stored before stays readable and deletable. */
#define TN__FILE_NAME_REMOTE_MAX 981

/* ---- respond.c ---- */
void tn__resp_json(tn__resp *o, int status, cJSON *j); /* takes j (may be NULL: 500) */
void tn__resp_error(tn__resp *o, int status, const char *msg);
void tn__resp_empty(tn__resp *o, int status); /* 204 */
/* Frees what o holds (body, file) and empties it. */
void tn__resp_reset(tn__resp *o);
/* The response for a tn_code from the store: generic words only. */
void tn__resp_code(tn__resp *o, int rc);
/* Records an error found before the handler runs (the first one wins);
 * router.c answers it instead of dispatching.  msg: fixed words. */
void tn__req_fail(tn__req *r, int status, const char *msg, int retry_after);
/* A request header, or NULL. */
const char *tn__req_header(tn__req *r, const char *name);
/* A query parameter, percent-decoded into a malloc'd *out (NULL when absent).
 * -1 for a malformed encoding. */
int tn__req_query(tn__req *r, const char *name, char **out);
/* limit=N: def when absent; -1 when not an integer in 1..max. */
int tn__req_limit(tn__req *r, int def, int max);
/* The body parsed as a JSON object (after the nesting check), or NULL after
 * setting a 400 in *out. */
cJSON *tn__req_json(tn__req *r, tn__resp *out);
/* Percent-decodes s[0..n) into a malloc'd *out: 0, -1 for a bad escape or an
 * encoded NUL (a C string would end there and mean something else), -2 out
 * of memory. */
int tn__pct_decode(const char *s, size_t n, char **out);
/* "GET", "POST", ... for one TN__M_* bit; "other" for anything else. */
const char *tn__method_name(int method);
cJSON *tn__json_int(int64_t v);
/* A version as the API writes it: a decimal string, since versions pass 2^53
 * and JavaScript's JSON.parse rounds numbers that large. */
cJSON *tn__json_version(int64_t v);
/* RFC 3339 UTC with milliseconds ("2024-05-01T12:00:00.123Z"); 0 -> null. */
cJSON *tn__json_time(int64_t ms);
/* The same two written into a text buffer. */
void tn__sb_time(tn__sbuf *b, int64_t ms);
/* Takes the JSON text built in b as the response body (503 when b failed). */
void tn__resp_sbuf(tn__resp *o, int status, tn__sbuf *b);

/* ---- list pages (respond.c) ----
 * A page is capped by count (limit=) and by bytes, like a DynamoDB Query
 * page: entries stop once the body would pass TN__PAGE_BYTES (at least one
 * entry always), and next_cursor continues after the last one sent.  The
 * body is written straight into one buffer, never a tree of the page. */
#define TN__PAGE_BYTES (1024 * 1024)
typedef struct tn__page {
    tn__sbuf b;
    size_t cap;   /* bytes of entries */
    int n;        /* entries kept */
    int full;     /* an entry did not fit: the page ends before it */
    size_t mark;  /* where the entry being written began */
} tn__page;
/* Around each entry: begin, write its JSON into p->b, then end, which
 * returns non-zero to stop the listing (cap reached, or out of memory). */
void tn__page_begin(tn__page *p);
int tn__page_end(tn__page *p);
/* One listing call: cursor (or NULL) and limit as given; fills p through
 * tn__page_begin/end and sets *next as the store does. */
typedef int (*tn__page_fn)(tn_session *s, const char *cursor, int limit, tn__page *p,
                           char **next);
/* GET of a list: limit= (def, 1..max) and cursor= from the query, then
 * {"<member>":[...],"next_cursor":...} in *out. */
void tn__list(tn__req *r, const char *member, int def, int max, tn__page_fn fn, tn__resp *out);

/* ---- log.c (tn__log is in http.h) ---- */
/* The request's log line; ms: its duration. */
void tn__log_request(const tn__req *r, double ms);

/* ---- throttle.c ---- */
/* Charges a failed authentication to the bucket of principal (what the
 * credential claimed to be: "admin", "k:<id>", "o:<id>", "stale", "anon"; see
 * throttle.c).  0 when within the budget (audited: answer 401), else the
 * seconds to wait (answer 429).  why: for the audit row, never the client. */
int tn__auth_failed(tn__req *r, const char *why, const char *principal);
/* The same, recording the 401 or 429 as r's early error. */
void tn__auth_refuse(tn__req *r, const char *why, const char *principal);
/* 429 in *out when the key (or operator) id has used up its requests. */
int tn__key_throttled(tn__req *r, const char *id, tn__resp *out);
/* 1 after setting a 429 when r->key's key or its tenant used up its rate. */
int tn__tenant_throttled(tn__req *r);

#endif
