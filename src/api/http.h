/*
 * http.h - the local HTTP API server (`tenantry serve`) as the CLI sees it:
 * start, stop, the log.  Inside: server.c (libmicrohttpd, a thread pool on
 * epoll), router.c (routes and the one authentication entry point), one
 * api_*.c per resource, and the helpers (see api_int.h for how they call).
 * See docs/openapi.yaml for the endpoints.
 */
#ifndef TN_HTTP_H
#define TN_HTTP_H

#include "tenantry.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tn__http_config {
    const char *listen;       /* "HOST:PORT" or "unix:/path"; default 127.0.0.1:8787 */
    int allow_remote;         /* permit a non-loopback address */
    int threads;              /* worker threads; 0 = four per CPU (4 to 32) */
    int max_connections;      /* default 1024 */
    int timeout_s;            /* idle connection timeout; default 30 */
    int64_t max_item_bytes;   /* request body limit for JSON; default 64 KiB */
    int64_t max_file_bytes;   /* upload limit; default 1 GiB */
    double rate, burst;       /* per API key, always; 0 = none (default) */
    /* A tenant's share while another tenant is active too (throttle.c):
     * default 2000/s, burst 4000; 0 = none.  A tenant's own rate setting
     * replaces it and applies always. */
    double tenant_rate, tenant_burst;
    double auth_fail_rate, auth_fail_burst; /* failed auth per claimed credential; 0.2/s, 20 */
    int token_ttl;            /* seconds; default 3600 */
    int quiet;                /* no per-request log lines */
    /* CORS: allowed origins, comma-separated ("https://a.example,
     * http://localhost:3000"), or "*" alone; NULL or "" = none (default).
     * With cors_credentials, responses carry Access-Control-Allow-Credentials
     * and "*" is refused: an allowed origin is always echoed exactly. */
    const char *cors_origins;
    int cors_credentials;
} tn__http_config;

typedef struct tn__http tn__http;

/* Checks a CORS origin list (see cors_origins); on error *err (static text)
 * says why.  tn__http_start checks it too. */
int tn__cors_check(const char *origins, int credentials, const char **err);

void tn__http_config_init(tn__http_config *cfg);
/* Binds and starts serving; returns at once (the workers run in threads).
 * On failure *err (static text) says why. */
int tn__http_start(tn_store *st, const tn__http_config *cfg, tn__http **out, const char **err);
/* Stops accepting, finishes nothing further, joins the workers, frees. */
void tn__http_stop(tn__http *h);
/* The background sync engine, for POST /v1/admin/sync/run (NULL: none).
 * Stop the server before the engine: its runs wait on it. */
struct tn_sync;
void tn__http_set_sync(tn__http *h, struct tn_sync *e);
/* The address it listens on, as --listen takes it ("127.0.0.1:8787", with
 * the port actually bound, or "unix:/path"); 0, or -1. */
int tn__http_address(tn__http *h, char *buf, size_t n);
/* Requests received so far (for idle detection). */
uint64_t tn__http_requests(tn__http *h);
/* A JSON log line on stderr: {"time":...,"level":...,"msg":...}. */
void tn__log(const char *level, const char *msg);
/* Between these, log lines go through a writer thread (log.c); tn__http_start
 * and tn__http_stop call them.  -1: no thread, lines are written directly. */
int tn__log_start(void);
void tn__log_stop(void);
/* At start, before serving: finishes what a crash interrupted in the files
 * folders (an upload's leftovers go; bytes replaced but never recorded go
 * back).  api_files.c. */
int tn__files_recover(tn_store *st);

#endif
