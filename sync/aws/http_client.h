/*
 * http_client.h - the sync engine's HTTP(S) client: one libcurl easy handle
 * per tn__http, reused across requests so connections stay open; TLS
 * verification always on; connect and stall timeouts (TENANTRY_SYNC_TIMEOUT,
 * see http_client.c); an optional bandwidth cap (bytes per second, both
 * directions).
 *
 * A tn__http belongs to one thread at a time.  Responses are collected in
 * memory (the remote's answers are small), but for tn__http_get_fd, which
 * writes an object's bytes to a file as they arrive.
 */
#ifndef TN_HTTP_CLIENT_H
#define TN_HTTP_CLIENT_H

#include "pace.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tn__http tn__http;

typedef struct tn__http_resp {
    long status;   /* 0 when no response arrived */
    char *body;    /* NUL-terminated, malloc'd (may be empty) */
    size_t len;
    char etag[256]; /* the ETag response header, if any */
} tn__http_resp;

/* timeout_s: whole-request limit (0: none, only the low-speed limit).
 * pace: the bandwidth budget the bytes sent and received are paced through,
 * shared with other handles (NULL: none).  stop: where the remote keeps its
 * stop flag (NULL: none); once the flag is set, a request in flight ends
 * and new ones do not start, as TN_TIMEOUT. */
int tn__http_new(long timeout_s, tn__pace *pace, const volatile int *const *stop, tn__http **out);
void tn__http_free(tn__http *h);

/*
 * Sends one request.  headers: "Name: value" strings.  Returns TN_OK when a
 * response arrived (any status), TN_NETWORK / TN_TIMEOUT when none did.
 * The response is in *r (free with tn__http_resp_free).
 */
int tn__http_do(tn__http *h, const char *method, const char *url, const char *const *headers,
                size_t nheaders, const void *body, size_t len, tn__http_resp *r);
void tn__http_resp_free(tn__http_resp *r);

/*
 * GETs url, writing a 2xx answer's body to fd (from its current offset) as
 * it arrives, with the stall limit and bandwidth cap of every request and a
 * deadline that grows with max (the handle's limit plus max at 16 KiB/s);
 * more than max bytes stop the transfer (TN_TOOBIG).  Any other answer's body
 * (an error document) is kept in r->body, its first 64 KiB.  *written: bytes
 * written to fd, also on failure (the caller discards them).  TN_OK when a
 * response arrived (any status); TN_TOOBIG, TN_IO or TN_FULL (writing fd),
 * TN_NETWORK or TN_TIMEOUT otherwise.
 */
int tn__http_get_fd(tn__http *h, const char *url, const char *const *headers, size_t nheaders,
                    int fd, int64_t max, int64_t *written, tn__http_resp *r);
/* Bytes sent since the handle was made (request bodies). */
int64_t tn__http_sent(const tn__http *h);
/* Requests made since the handle was made (answered or not). */
int64_t tn__http_calls(const tn__http *h);

#endif
