/*
 * log.c - the daemon's log: one JSON object per line on stderr.
 *
 *   {"time":"<RFC 3339>","level":"info|warn|error","msg":"..."}
 *   {"time":...,"level":...,"request_id":"...","method":"GET","path":"/v1/...",
 *    "status":200,"duration_ms":0.123}
 *
 * A request line carries the method, the path without its query, the status
 * and the duration: never a header value, key, token or body.
 *
 * Cost.  A line is built on the caller's stack.  While the server runs
 * (tn__log_start .. tn__log_stop) it is copied into a buffer under a mutex
 * held for a memcpy, and one writer thread writes whatever gathered in one
 * write(2), FLUSH_MS after the first line of a batch (sooner when the buffer
 * is half full): under load that is hundreds of lines per system call and no
 * wake-up per line, and a request never waits for the disk or a pipe.  A
 * line reaches stderr within FLUSH_MS; an idle daemon's writer sleeps.  When
 * the writer falls behind and the buffer is full, the line is written by its
 * own thread (one write(2), as before the start and after the stop): a line
 * is never lost, only, under overload, out of order by a few milliseconds.
 * (stdio on the unbuffered stderr made one system call per character of
 * every string, serialized by the stream lock: 60% of a point read.)  The
 * time's date-and-second part is formatted once per second per thread:
 * gmtime_r takes a process-wide lock.
 */
#include "clock.h"
#include "api_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A line's bytes; strings are cut to fit (a path is at most 255 bytes, 6
 * bytes each once escaped, so a request line always fits whole). */
#define LINE_MAX_BYTES 4096
#define TAIL_ROOM 96 /* kept free for what follows a string */

typedef struct line {
    char b[LINE_MAX_BYTES];
    size_t n;
} line;

static void put(line *l, const char *s, size_t n) {
    if (n > sizeof l->b - l->n) n = sizeof l->b - l->n;
    memcpy(l->b + l->n, s, n);
    l->n += n;
}

static void put_s(line *l, const char *s) { put(l, s, strlen(s)); }

/* s as a JSON string, escaped; cut short rather than overflow. */
static void put_json(line *l, const char *s) {
    static const char hex[] = "0123456789abcdef";
    put(l, "\"", 1);
    size_t limit = sizeof l->b - TAIL_ROOM;
    for (; s && *s && l->n + 6 < limit; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            l->b[l->n++] = '\\';
            l->b[l->n++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(l->b + l->n, "\\u00", 4);
            l->b[l->n + 4] = hex[ch >> 4];
            l->b[l->n + 5] = hex[ch & 15];
            l->n += 6;
        } else {
            l->b[l->n++] = (char)ch;
        }
    }
    put(l, "\"", 1);
}

/* {"time":"...","level":"<level>" */
static void put_head(line *l, const char *level) {
    static _Thread_local int64_t cached_s = -1;
    static _Thread_local char cached[32]; /* "2024-05-01T12:00:00" */
    int64_t ms = tn__wall_ms();
    if (ms / 1000 != cached_s) {
        tn__rfc3339(ms, cached);
        cached[19] = '\0';
        cached_s = ms / 1000;
    }
    char frac[8];
    snprintf(frac, sizeof frac, ".%03dZ", (int)(ms % 1000));
    put_s(l, "{\"time\":\"");
    put_s(l, cached);
    put_s(l, frac);
    put_s(l, "\",\"level\":\"");
    put_s(l, level);
    put_s(l, "\"");
}

/* Writes all of b (a short write to a full pipe goes on). */
static void write_all(const char *b, size_t n) {
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(STDERR_FILENO, b + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* nowhere to log to */
        off += (size_t)w;
    }
}

/* ---- the writer ------------------------------------------------------------ */

#define BUF_BYTES (128 * 1024) /* each of two: one fills while the other is written */
#define FLUSH_MS 10

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf[2];
    size_t n;         /* bytes waiting in buf[cur] */
    int cur;
    int users;        /* tn__log_start calls not yet stopped */
    int running;      /* the writer thread takes the lines */
    int awake;        /* the writer is not waiting for a first line */
    int urged;        /* no need to signal "half full" (done, or the writer is writing) */
    int stop;
    pthread_t th;
} lw = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Waits FLUSH_MS after the first line of a batch, so a busy daemon's lines
 * go out together (at most 1000 / FLUSH_MS writes a second), and an idle one
 * never wakes. */
static void *writer(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lw.mu);
    for (;;) {
        while (lw.n == 0 && !lw.stop) {
            lw.awake = 0;
            pthread_cond_wait(&lw.cv, &lw.mu);
        }
        if (lw.n == 0) { /* stopping, all written */
            lw.running = 0;
            break;
        }
        if (!lw.stop && lw.n < BUF_BYTES / 2) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += FLUSH_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            lw.urged = 0;
            pthread_cond_timedwait(&lw.cv, &lw.mu, &until); /* early: half full, or stop */
        }
        char *b = lw.buf[lw.cur];
        size_t n = lw.n;
        lw.cur ^= 1;
        lw.n = 0;
        lw.urged = 1; /* nobody signals the writer while it writes */
        pthread_mutex_unlock(&lw.mu);
        write_all(b, n);
        pthread_mutex_lock(&lw.mu);
    }
    pthread_mutex_unlock(&lw.mu);
    return NULL;
}

int tn__log_start(void) {
    pthread_mutex_lock(&lw.mu);
    int rc = 0;
    if (lw.users++ == 0) {
        lw.buf[0] = malloc(BUF_BYTES);
        lw.buf[1] = malloc(BUF_BYTES);
        lw.n = 0;
        lw.cur = 0;
        lw.stop = 0;
        lw.awake = 1;
        if (lw.buf[0] && lw.buf[1] && pthread_create(&lw.th, NULL, writer, NULL) == 0) {
            lw.running = 1;
        } else {
            free(lw.buf[0]);
            free(lw.buf[1]);
            lw.buf[0] = lw.buf[1] = NULL;
            lw.users--;
            rc = -1; /* lines go straight out */
        }
    }
    pthread_mutex_unlock(&lw.mu);
    return rc;
}

void tn__log_stop(void) {
    pthread_mutex_lock(&lw.mu);
    if (lw.users == 0 || --lw.users > 0) {
        pthread_mutex_unlock(&lw.mu);
        return;
    }
    lw.stop = 1;
    pthread_cond_signal(&lw.cv);
    pthread_mutex_unlock(&lw.mu);
    pthread_join(lw.th, NULL); /* it wrote everything queued */
    pthread_mutex_lock(&lw.mu);
    free(lw.buf[0]);
    free(lw.buf[1]);
    lw.buf[0] = lw.buf[1] = NULL;
    pthread_mutex_unlock(&lw.mu);
}

/* Hands a finished line to the writer, or writes it when none runs. */
static void emit(line *l) {
    pthread_mutex_lock(&lw.mu);
    if (!lw.running) {
        pthread_mutex_unlock(&lw.mu);
        write_all(l->b, l->n);
        return;
    }
    if (lw.n + l->n > BUF_BYTES) {
        /* The writer fell behind (not scheduled, or stderr is slow): this
         * line goes out from here rather than be lost. */
        pthread_mutex_unlock(&lw.mu);
        write_all(l->b, l->n);
        return;
    }
    memcpy(lw.buf[lw.cur] + lw.n, l->b, l->n);
    lw.n += l->n;
    int wake = !lw.awake || (!lw.urged && lw.n >= BUF_BYTES / 2);
    if (lw.n >= BUF_BYTES / 2) lw.urged = 1;
    lw.awake = 1;
    pthread_mutex_unlock(&lw.mu);
    if (wake) pthread_cond_signal(&lw.cv);
}

void tn__log(const char *level, const char *msg) {
    line l;
    l.n = 0;
    put_head(&l, level);
    put_s(&l, ",\"msg\":");
    put_json(&l, msg);
    put(&l, "}\n", 2);
    emit(&l);
}

void tn__log_request(const tn__req *r, double ms) {
    line l;
    l.n = 0;
    put_head(&l, r->status >= 500 || r->status == 0 ? "error" : "info");
    put_s(&l, ",\"request_id\":\"");
    put_s(&l, r->rid);
    put_s(&l, "\",\"method\":");
    put_json(&l, r->method ? tn__method_name(r->method) : "other");
    put_s(&l, ",\"path\":");
    put_json(&l, r->path);
    char tail[64];
    int n = snprintf(tail, sizeof tail, ",\"status\":%d,\"duration_ms\":%.3f}\n", r->status, ms);
    put(&l, tail, n > 0 ? (size_t)n : 0);
    emit(&l);
}
