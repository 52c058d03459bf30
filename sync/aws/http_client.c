/*
 * http_client.c - one libcurl easy handle per tn__http (see http_client.h).
 *
 * Reusing the easy handle keeps its connection cache, so a batch of requests
 * to one endpoint shares one TCP (and TLS) connection.  curl_global_init runs
 * once, under pthread_once, because it is not thread-safe.
 *
 * A request during which no byte moves either way for the stall limit
 * (TENANTRY_SYNC_TIMEOUT seconds, default 30: a peer that accepted and never
 * answers, or stopped half-way) is abandoned as TN_TIMEOUT and retried by the
 * engine with backoff; connecting gets at most 10 s (or the stall limit when
 * it is shorter).  curl's own low-speed limit averages over several seconds,
 * so it would notice a stall right after a burst only seconds late: the
 * progress callback watches the byte counters instead.
 *
 * A stopping engine (the remote's stop flag) ends a request at once, as
 * TN_TIMEOUT: its outcome is unknown, so the rows stay in the outbox and
 * the conditional write is sent again by the next run.  A daemon told to
 * stop does not wait for a remote that is slow to answer.
 *
 * A bandwidth cap is a budget shared by every handle of a remote (pace.h):
 * the body's bytes are handed to curl, and the answer's taken from it, in
 * the budget's chunks, each after its slot on the link.  (curl's own speed
 * limits are per handle: eight handles at an eighth of the cap each leave
 * most of it unused whenever fewer than eight are busy.)
 */
#include "clock.h"
#include "http_client.h"

#include "tenantry.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

struct tn__http {
    CURL *curl;
    long timeout_s;
    tn__pace *pace;
    const volatile int *const *stop; /* the remote's stop flag, read per callback */
    int64_t sent;
    int64_t requests;
};

/* When bytes last moved, for the stall limit. */
typedef struct progress {
    curl_off_t moved;
    int64_t at_ms;
    const volatile int *const *stop;
} progress;

typedef struct upload {
    const unsigned char *p;
    size_t len, off;
    tn__pace *pace;
    const volatile int *stop;
} upload;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static long stall_s = 30;

static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *v = getenv("TENANTRY_SYNC_TIMEOUT");
    char *end;
    long t = v && *v ? strtol(v, &end, 10) : 0;
    if (v && *v && !*end && t >= 1 && t <= 3600) stall_s = t;
}

int tn__http_new(long timeout_s, tn__pace *pace, const volatile int *const *stop, tn__http **out) {
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    tn__http *h = calloc(1, sizeof *h);
    if (!h) return TN_NOMEM;
    h->curl = curl_easy_init();
    if (!h->curl) {
        free(h);
        return TN_NOMEM;
    }
    h->timeout_s = timeout_s;
    h->pace = pace;
    h->stop = stop;
    *out = h;
    return TN_OK;
}

void tn__http_free(tn__http *h) {
    if (!h) return;
    curl_easy_cleanup(h->curl);
    free(h);
}

int64_t tn__http_sent(const tn__http *h) { return h ? h->sent : 0; }

int64_t tn__http_calls(const tn__http *h) { return h ? h->requests : 0; }

/* Answers are small (the largest, a refused transaction with its old items,
 * stays far below this): a peer sending more is not AWS. */
#define MAX_ANSWER ((size_t)64 << 20)

static size_t on_body(char *p, size_t sz, size_t n, void *arg) {
    tn__http_resp *r = arg;
    size_t add = sz * n;
    if (add > MAX_ANSWER - r->len) return 0; /* curl reports a write error */
    char *nb = realloc(r->body, r->len + add + 1);
    if (!nb) return 0; /* curl reports a write error */
    memcpy(nb + r->len, p, add);
    r->body = nb;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg) {
    tn__http_resp *r = arg;
    size_t len = sz * n;
    if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
        size_t i = 5;
        while (i < len && (p[i] == ' ' || p[i] == '\t')) i++;
        size_t j = len;
        while (j > i && (p[j - 1] == '\r' || p[j - 1] == '\n' || p[j - 1] == ' ')) j--;
        if (j - i < sizeof r->etag) {
            memcpy(r->etag, p + i, j - i);
            r->etag[j - i] = '\0';
        }
    }
    return len;
}


/* curl calls this at least once a second while a transfer runs. */
/* The stop flag behind stop, or NULL. */
static const volatile int *stop_ptr(const volatile int *const *stop) {
    return stop ? *stop : NULL;
}

static int stop_flag(const volatile int *const *stop) {
    const volatile int *f = stop_ptr(stop);
    return f && *f;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal;
    (void)ultotal;
    progress *pr = arg;
    if (stop_flag(pr->stop)) return 1;
    int64_t now = tn__mono_ms();
    if (dlnow + ulnow != pr->moved) {
        pr->moved = dlnow + ulnow;
        pr->at_ms = now;
        return 0;
    }
    return now - pr->at_ms > (int64_t)stall_s * 1000; /* non-zero aborts */
}

static size_t on_read(char *dst, size_t sz, size_t n, void *arg) {
    upload *u = arg;
    size_t want = sz * n, left = u->len - u->off;
    if (want > left) want = left;
    if (u->pace && want) {
        size_t chunk = tn__pace_chunk(u->pace);
        if (want > chunk) want = chunk;
        if (tn__pace_take(u->pace, want, u->stop) != 0) return CURL_READFUNC_ABORT;
    }
    memcpy(dst, u->p + u->off, want);
    u->off += want;
    return want;
}

/* The options every request shares: URL, headers, TLS, timeouts, the stall
 * watch, the bandwidth cap and the header callback.  Returns the header list
 * (freed by the caller), NULL when out of memory. */
static struct curl_slist *setup(tn__http *h, const char *url, const char *const *headers,
                                size_t nheaders, progress *pr, long timeout_s, tn__http_resp *r) {
    CURL *c = h->curl;
    curl_easy_reset(c); /* keeps the connection cache */
    struct curl_slist *hl = NULL;
    for (size_t i = 0; i < nheaders; i++) {
        struct curl_slist *n = curl_slist_append(hl, headers[i]);
        if (!n) {
            curl_slist_free_all(hl);
            return NULL;
        }
        hl = n;
    }
    /* No "Expect: 100-continue" round trip; an empty Content-Type unless given. */
    struct curl_slist *n = curl_slist_append(hl, "Expect:");
    if (!n) {
        curl_slist_free_all(hl);
        return NULL;
    }
    hl = n;
    *pr = (progress){0, tn__mono_ms(), h->stop};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, stall_s < 10 ? stall_s : 10L);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, pr);
    if (timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    return hl;
}

static int curl_code(CURLcode cc) {
    return cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_ABORTED_BY_CALLBACK ? TN_TIMEOUT : TN_NETWORK;
}

int tn__http_do(tn__http *h, const char *method, const char *url, const char *const *headers,
                size_t nheaders, const void *body, size_t len, tn__http_resp *r) {
    memset(r, 0, sizeof *r);
    if (stop_flag(h->stop)) return TN_TIMEOUT;
    CURL *c = h->curl;
    progress pr;
    struct curl_slist *hl = setup(h, url, headers, nheaders, &pr, h->timeout_s, r);
    if (!hl) return TN_NOMEM;
    upload u = {body, len, 0, h->pace, stop_ptr(h->stop)};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &u);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
        /* Large writes for large bodies: far fewer syscalls per part. */
        if (len > 65536) curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        /* A request of rows: small, handed over whole, counted first. */
        if (h->pace && tn__pace_take(h->pace, len, stop_ptr(h->stop)) != 0) {
            curl_slist_free_all(hl);
            return TN_TIMEOUT;
        }
    }
    CURLcode cc = curl_easy_perform(c);
    h->requests++;
    curl_slist_free_all(hl);
    if (!r->body) {
        r->body = calloc(1, 1);
        if (!r->body) return TN_NOMEM;
    }
    if (cc != CURLE_OK) {
        tn__http_resp_free(r);
        return curl_code(cc);
    }
    h->sent += (int64_t)len;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    return TN_OK;
}

/* ---- download into a file descriptor ---- */

/* An error answer's body (S3's error document) is kept up to this much. */
#define MAX_ERROR_BODY ((size_t)64 << 10)
/* Whole-download deadline: the usual limit plus the object's size at this
 * rate (or half the bandwidth cap, when that is lower), so a peer dripping
 * bytes just fast enough to dodge the stall limit still ends. */
#define MIN_RATE ((int64_t)16 << 10)

typedef struct sink {
    CURL *c;
    tn__pace *pace;
    const volatile int *stop;
    int fd;
    int64_t max, written;
    int known, ok; /* the status was read; it is a 2xx */
    int err;       /* why the write callback stopped the transfer */
    tn__http_resp *r;
} sink;

static size_t on_fd(char *p, size_t sz, size_t n, void *arg) {
    sink *s = arg;
    size_t len = sz * n;
    if (!s->known) {
        long st = 0;
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &st);
        s->ok = st >= 200 && st < 300;
        s->known = 1;
    }
    if (!s->ok) { /* an error document: kept in memory, a bounded prefix */
        tn__http_resp *r = s->r;
        size_t keep = len;
        if (r->len + keep > MAX_ERROR_BODY) keep = MAX_ERROR_BODY - r->len;
        if (keep) {
            char *nb = realloc(r->body, r->len + keep + 1);
            if (!nb) {
                s->err = TN_NOMEM;
                return 0;
            }
            memcpy(nb + r->len, p, keep);
            r->body = nb;
            r->len += keep;
            r->body[r->len] = '\0';
        }
        return len;
    }
    if ((int64_t)len > s->max - s->written) {
        s->err = TN_TOOBIG;
        return 0;
    }
    /* curl hands over at most 16 KiB at a time: each waits for its slot. */
    if (s->pace && tn__pace_take(s->pace, len, s->stop) != 0) {
        s->err = TN_TIMEOUT;
        return 0;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(s->fd, p + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            s->err = w < 0 && (errno == ENOSPC || errno == EDQUOT) ? TN_FULL : TN_IO;
            return 0;
        }
        off += (size_t)w;
    }
    s->written += (int64_t)len;
    return len;
}

int tn__http_get_fd(tn__http *h, const char *url, const char *const *headers, size_t nheaders,
                    int fd, int64_t max, int64_t *written, tn__http_resp *r) {
    memset(r, 0, sizeof *r);
    *written = 0;
    if (max < 0) return TN_INVALID;
    if (stop_flag(h->stop)) return TN_TIMEOUT;
    CURL *c = h->curl;
    int64_t cap = h->pace ? tn__pace_rate(h->pace) : 0;
    int64_t rate = cap > 0 && cap / 2 < MIN_RATE ? (cap / 2 > 0 ? cap / 2 : 1) : MIN_RATE;
    long timeout = h->timeout_s > 0 ? h->timeout_s + (long)(max / rate) : 0;
    progress pr;
    struct curl_slist *hl = setup(h, url, headers, nheaders, &pr, timeout, r);
    if (!hl) return TN_NOMEM;
    sink s = {c, h->pace, stop_ptr(h->stop), fd, max, 0, 0, 0, 0, r};
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_fd);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    /* The bytes as stored: no transfer decoding asked for, none applied. */
    curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    CURLcode cc = curl_easy_perform(c);
    h->requests++;
    curl_slist_free_all(hl);
    *written = s.written;
    if (!r->body) r->body = calloc(1, 1);
    if (!r->body) return TN_NOMEM;
    if (cc != CURLE_OK) {
        tn__http_resp_free(r);
        return s.err ? s.err : curl_code(cc);
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    return TN_OK;
}

void tn__http_resp_free(tn__http_resp *r) {
    if (!r) return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
