/*
 * stream.c - response bodies written while they are sent (see api_int.h):
 * a long answer, such as the progress of a sync pass, whose text a thread of
 * the handler's produces over seconds or minutes.
 *
 * The worker thread never waits for it: when libmicrohttpd asks for bytes and
 * none are ready, the connection is suspended, and the writer resumes it
 * with its next bytes (or its end).  Both sides hold a reference; the last
 * one to let go frees the stream.  After the response is gone (sent, or the
 * client left), conn is NULL and writes are dropped.
 */
#include "api_int.h"
#include "router.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct tn__stream {
    pthread_mutex_t mu;
    tn__sbuf buf;
    size_t off;       /* bytes of buf already sent */
    int ended;        /* the writer is done */
    int refs;
    int suspended;
    struct MHD_Connection *conn; /* NULL until queued, and once the response is gone */
    int gone;         /* the response is gone */
};

tn__stream *tn__stream_new(void) {
    tn__stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->refs = 2;
    return s;
}

/* Under s->mu: the connection may go on. */
static void wake(tn__stream *s) {
    if (s->suspended && s->conn) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
}

static void unref(tn__stream *s) {
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (!last) return;
    pthread_mutex_destroy(&s->mu);
    tn__sb_free(&s->buf);
    free(s);
}

void tn__stream_write(tn__stream *s, const char *text, size_t n) {
    pthread_mutex_lock(&s->mu);
    if (!s->gone && !s->ended) {
        tn__sb_add(&s->buf, text, n);
        wake(s);
    }
    pthread_mutex_unlock(&s->mu);
}

int tn__stream_gone(tn__stream *s) {
    pthread_mutex_lock(&s->mu);
    int gone = s->gone;
    pthread_mutex_unlock(&s->mu);
    return gone;
}

void tn__stream_end(tn__stream *s) {
    pthread_mutex_lock(&s->mu);
    s->ended = 1;
    wake(s);
    unref(s);
}

void tn__stream_release(tn__stream *s) {
    pthread_mutex_lock(&s->mu);
    s->gone = 1;
    s->conn = NULL;
    unref(s);
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    tn__stream *s = cls;
    pthread_mutex_lock(&s->mu);
    ssize_t n;
    if (s->buf.failed) {
        n = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (s->buf.len > s->off) {
        size_t c = s->buf.len - s->off < max ? s->buf.len - s->off : max;
        memcpy(out, s->buf.p + s->off, c);
        s->off += c;
        if (s->off == s->buf.len) s->off = s->buf.len = 0; /* reuse the buffer */
        n = (ssize_t)c;
    } else if (s->ended) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        s->suspended = 1; /* the writer resumes it */
        MHD_suspend_connection(s->conn);
        n = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void response_gone(void *cls) {
    tn__stream_release(cls);
}

struct MHD_Response *tn__stream_response(tn__stream *s, struct MHD_Connection *conn) {
    pthread_mutex_lock(&s->mu);
    s->conn = conn;
    pthread_mutex_unlock(&s->mu);
    return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, s, response_gone);
}
