/*
 * server.c - the HTTP server of `tenantry serve`: listening (TCP on loopback
 * unless allowed otherwise, or a unix socket), libmicrohttpd's thread pool on
 * epoll, connection deadlines, the request's life from first call to
 * completion, and the per-request log line.  What a request means is the
 * router's business (router.h).
 *
 * A request's life (on_request, called by libmicrohttpd, always on the one
 * worker thread that owns the connection):
 *   1st call  tn__route_begin.  Nothing is queued here (see router.c), except
 *             an error on a request with a body still to come: closing is
 *             then what we want.
 *   body      tn__route_body for each chunk, at a minimum average rate.
 *   last call tn__route_dispatch, then tn__route_respond.
 *   completed on_completed(): tn__route_end, metrics, one log line, cleanup.
 */
#include "clock.h"
#include "http.h"

#include "linger.h"
#include "router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Bytes of a refused body read and discarded so the error can be sent. */
#define DRAIN_MAX (8 * 1024 * 1024)

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    tn__log("warn", msg);
}

static void client_of(tn__req *r) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    snprintf(r->client, sizeof r->client, "unknown");
    if (!sa) return;
    if (sa->sa_family == AF_UNIX) {
        r->is_unix = 1;
        snprintf(r->client, sizeof r->client, "unix");
    } else if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->client,
                  sizeof r->client);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->client,
                  sizeof r->client);
    }
}

/* ---- header deadline and connection slots ----------------------------------
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client sending one
 * byte a second never trips it and holds a connection (and a slot of
 * --max-connections) forever.  Every connection is watched from its start,
 * and again from the end of each request, until the next request's headers
 * are complete; a reaper thread shuts down the socket of one that took longer
 * than --timeout.  The list's mutex is also taken on close, and
 * libmicrohttpd reports the close before it closes the descriptor, so the
 * reaper never touches a descriptor that was reused.
 *
 * Slots.  Once three quarters of --max-connections are open, waiting for a
 * header deadline would let one program that opens connections and never
 * finishes a request (and reconnects when closed) starve everyone else:
 * libmicrohttpd stops accepting at the limit, and new clients wait in the
 * kernel's queue.  So the reaper then closes connections that hold a slot
 * without a request in progress (headers unfinished, or idle between
 * requests) until half the slots are free: first those of the client address
 * holding the most, oldest first.  A client with a complete request has it
 * read at once, so it is never among them; an idle keep-alive connection
 * closed this way costs its client a reconnect.  Per address matters when
 * --allow-remote is on; on the loopback every program shares one address,
 * and age decides.
 */
typedef struct conn_watch {
    int fd;          /* -1 once shut down by the reaper */
    int busy;        /* headers complete, request in progress */
    int64_t since;   /* monotonic ms: the start of the wait for headers */
    uint32_t addr;   /* hash of the client's address */
    int linger;      /* refused before its body: close through linger.c */
    struct conn_watch *prev, *next;
} conn_watch;

struct tn__http {
    tn__srv srv; /* first: callbacks get &srv and find the rest from it */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    conn_watch *watched;
    int nwatched;    /* connections in the list (open, or closing) */
    int reaper_started, stopping;
    int log_started;
    pthread_t reaper;
    tn__linger *linger;
};


static conn_watch *watch_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The connection will close after an early answer (linger.h). */
static void watch_linger(tn__srv *srv, struct MHD_Connection *conn) {
    struct tn__http *h = (struct tn__http *)srv;
    conn_watch *w = watch_of(conn);
    if (!w) return;
    pthread_mutex_lock(&h->mu);
    w->linger = 1;
    pthread_mutex_unlock(&h->mu);
}

/* busy 1: headers are in; busy 0: the request ended, the next wait begins. */
static void watch_mark(tn__srv *srv, struct MHD_Connection *conn, int busy) {
    struct tn__http *h = (struct tn__http *)srv;
    conn_watch *w = watch_of(conn);
    if (!w) return;
    pthread_mutex_lock(&h->mu);
    w->busy = busy;
    w->since = tn__mono_ms();
    pthread_mutex_unlock(&h->mu);
}

/* FNV-1a over the address bytes (not the port). */
static uint32_t addr_hash(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    const unsigned char *p = NULL;
    size_t n = 0;
    if (sa && sa->sa_family == AF_INET) {
        p = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        n = 4;
    } else if (sa && sa->sa_family == AF_INET6) {
        p = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        n = 16;
    }
    uint32_t x = 2166136261u;
    for (size_t i = 0; i < n; i++) x = (x ^ p[i]) * 16777619u;
    return x;
}

static int high_water(const struct tn__http *h) {
    return h->srv.cfg.max_connections - h->srv.cfg.max_connections / 4;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    struct tn__http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_watch *w = ci ? calloc(1, sizeof *w) : NULL;
        if (!w) return; /* unwatched: only the idle timeout applies */
        w->fd = ci->connect_fd;
        w->since = tn__mono_ms();
        w->addr = addr_hash(conn);
        pthread_mutex_lock(&h->mu);
        w->next = h->watched;
        if (h->watched) h->watched->prev = w;
        h->watched = w;
        /* Crossing the high-water mark wakes the reaper at once. */
        if (++h->nwatched == high_water(h)) pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        *socket_context = w;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        conn_watch *w = *socket_context;
        if (w->linger) {
            /* Still open here: libmicrohttpd closes it after this call. */
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            if (ci) tn__linger_add(h->linger, fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0));
        }
        pthread_mutex_lock(&h->mu);
        if (w->prev) w->prev->next = w->next;
        else h->watched = w->next;
        if (w->next) w->next->prev = w->prev;
        h->nwatched--;
        pthread_mutex_unlock(&h->mu);
        free(w);
        *socket_context = NULL;
    }
}

typedef struct victim {
    conn_watch *w;
    int per_addr; /* waiting connections of the same address */
} victim;

static int by_addr(const void *a, const void *b) {
    uint32_t x = ((const victim *)a)->w->addr, y = ((const victim *)b)->w->addr;
    return x < y ? -1 : x > y;
}

/* Most connections of one address first, then the longest waiting. */
static int by_claim(const void *a, const void *b) {
    const victim *x = a, *y = b;
    if (x->per_addr != y->per_addr) return y->per_addr - x->per_addr;
    return x->w->since < y->w->since ? -1 : x->w->since > y->w->since;
}

/* Under h->mu: past the high-water mark, closes waiting connections (see
 * above) until half the slots are free. */
static void relieve(struct tn__http *h) {
    int open = 0, waiting = 0;
    for (conn_watch *w = h->watched; w; w = w->next) {
        if (w->fd < 0) continue;
        open++;
        if (!w->busy) waiting++;
    }
    if (open < high_water(h) || waiting == 0) return;
    victim *v = malloc((size_t)waiting * sizeof *v);
    if (!v) return;
    int n = 0;
    for (conn_watch *w = h->watched; w && n < waiting; w = w->next)
        if (w->fd >= 0 && !w->busy) v[n++] = (victim){w, 0};
    qsort(v, (size_t)n, sizeof *v, by_addr);
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].w->addr == v[i].w->addr) j++;
        for (int k = i; k < j; k++) v[k].per_addr = j - i;
        i = j;
    }
    qsort(v, (size_t)n, sizeof *v, by_claim);
    int target = h->srv.cfg.max_connections / 2;
    for (int i = 0; i < n && open > target; i++, open--) {
        shutdown(v[i].w->fd, SHUT_RDWR); /* libmicrohttpd then closes it */
        v[i].w->fd = -1;
    }
    free(v);
}

static void *reaper(void *arg) {
    struct tn__http *h = arg;
    int64_t limit = (int64_t)h->srv.cfg.timeout_s * 1000;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        int64_t now = tn__mono_ms();
        for (conn_watch *w = h->watched; w; w = w->next) {
            if (!w->busy && w->fd >= 0 && now - w->since > limit) {
                shutdown(w->fd, SHUT_RDWR); /* libmicrohttpd then closes it */
                w->fd = -1;
            }
        }
        if (h->nwatched >= high_water(h)) relieve(h);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &until);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* libmicrohttpd's timeout is an idle timeout, and the header deadline ends
 * with the headers: a body trickled a byte a second would hold a connection
 * for hours.  Once a request has taken longer than --timeout, its body must
 * have averaged MIN_BODY_RATE; otherwise the connection is closed. */
#define MIN_BODY_RATE 1024 /* bytes per second */
static int body_too_slow(tn__req *r) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (int64_t)(now.tv_sec - r->t0.tv_sec) * 1000 +
                 (now.tv_nsec - r->t0.tv_nsec) / 1000000;
    if (ms <= (int64_t)r->srv->cfg.timeout_s * 1000) return 0;
    if (r->body_bytes * 1000 >= (int64_t)MIN_BODY_RATE * ms) return 0;
    r->status = 408; /* for the log; nothing can be answered mid-body */
    return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    tn__srv *srv = cls;
    tn__req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = srv;
        r->conn = conn;
        r->fd = -1;
        r->resp.fd = -1;
        r->quota_left = -1;
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        snprintf(r->rid, sizeof r->rid, "%08x%08llx", srv->rid_prefix,
                 (unsigned long long)(atomic_fetch_add(&srv->rid_next, 1) & 0xffffffffull));
        atomic_fetch_add(&srv->in_flight, 1);
        *con_cls = r;
        watch_mark(srv, conn, 1);
        client_of(r);
        snprintf(r->path, sizeof r->path, "%s", url);
        tn__route_begin(r, url, method);
        /* An early error with a body on the way: answer now and let the
         * connection close instead of reading what we will refuse. */
        if (r->err_status && r->has_body) {
            watch_linger(srv, conn);
            return (enum MHD_Result)tn__route_respond(r);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        r->body_bytes += (int64_t)n;
        if (body_too_slow(r)) return MHD_NO;
        if (r->queued) return MHD_YES;
        if (!r->err_status) {
            tn__route_body(r, upload_data, n);
            if (r->err_status) r->written = 0;
            return MHD_YES;
        }
        /* libmicrohttpd cannot queue a response while a body is arriving
         * (MHD_queue_response fails and the connection just drops, so a
         * 507 for a full disk never reached the client).  Read and discard
         * the rest, then answer on the last call; past DRAIN_MAX, close
         * without an answer.  After an error, r->written counts the bytes
         * discarded. */
        r->written += (int64_t)n;
        return r->written > DRAIN_MAX ? MHD_NO : MHD_YES;
    }
    if (r->queued) return MHD_YES;
    if (!r->err_status && !r->preflight) tn__route_dispatch(r);
    return (enum MHD_Result)tn__route_respond(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)toe;
    tn__req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    tn__srv *srv = r->srv;
    watch_mark(srv, conn, 0);
    tn__route_end(r);
    int cls_i = r->status >= 100 && r->status < 600 ? r->status / 100 : 0;
    atomic_fetch_add(&srv->by_class[cls_i], 1);
    atomic_fetch_sub(&srv->in_flight, 1);
    if (!srv->cfg.quiet || r->status >= 500) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - r->t0.tv_sec) * 1e3 +
                    (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e6;
        tn__log_request(r, ms);
    }
    tn_session_close(r->s);
    free(r->arg[0]);
    free(r->arg[1]);
    free(r->body);
    tn__resp_reset(&r->resp);
    free(r);
}

/* libmicrohttpd would decode %00 into a NUL that silently shortens the path;
 * we keep the raw path and decode each parameter ourselves (pct_decode). */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls, (void)c;
    return strlen(s);
}

/* ---- listening ------------------------------------------------------------- */

static int is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return 0;
}

static int listen_unix(tn__srv *srv, const char *path, const char **err) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) == 0 || strlen(path) >= sizeof sa.sun_path) {
        *err = "the unix socket path is empty or too long";
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode)) {
            *err = "the unix socket path exists and is not a socket";
            return -1;
        }
        unlink(path); /* a stale socket from an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = "cannot create a socket";
        return -1;
    }
    mode_t old = umask(0117); /* the socket is born 0660 */
    int b = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (b != 0 || chmod(path, 0660) != 0 || listen(fd, 1024) != 0) {
        *err = "cannot bind the unix socket";
        close(fd);
        return -1;
    }
    srv->unix_path = strdup(path);
    return fd;
}

static int listen_tcp(const char *spec, int allow_remote, const char **err) {
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || strlen(colon + 1) == 0 || (size_t)(colon - spec) >= sizeof host) {
        *err = "--listen takes HOST:PORT or unix:/path";
        return -1;
    }
    /* getaddrinfo takes "99999" and wraps it to a 16-bit port: check it here. */
    char *pend;
    errno = 0;
    long port = strtol(colon + 1, &pend, 10);
    if (errno || *pend || colon[1] < '0' || colon[1] > '9' || port > 65535) {
        *err = "--listen takes a port from 0 to 65535";
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *h = host;
    size_t hl = strlen(h);
    if (h[0] == '[' && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(h, colon + 1, &hints, &ai) != 0 || !ai) {
        *err = "cannot resolve the --listen address";
        return -1;
    }
    if (!is_loopback(ai->ai_addr) && !allow_remote) {
        freeaddrinfo(ai);
        *err = "refusing to listen on a non-loopback address without --allow-remote "
               "(the API is meant for programs on this machine)";
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        *err = errno == EADDRINUSE ? "the --listen address is in use"
                                   : "cannot bind the --listen address";
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* ---- start and stop -------------------------------------------------------- */

/* Every connection slot is a descriptor: raise the soft limit to make room
 * for --max-connections and the store's own files, as far as the hard limit
 * allows (a service manager's default soft limit is often 1024). */
static void fd_room(int max_connections) {
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want) {
        char msg[160];
        snprintf(msg, sizeof msg, "the descriptor limit (%llu) is below --max-connections + 256",
                 (unsigned long long)rl.rlim_cur);
        tn__log("warn", msg);
    }
}

void tn__http_config_init(tn__http_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = "127.0.0.1:8787";
    cfg->max_connections = 1024;
    cfg->timeout_s = 30;
    cfg->max_item_bytes = 64 * 1024;
    cfg->max_file_bytes = 1024LL * 1024 * 1024;
    cfg->rate = 0; /* no per-key limit unless asked: see tenant_rate */
    cfg->burst = 0;
    cfg->tenant_rate = 2000;
    cfg->tenant_burst = 4000;
    cfg->auth_fail_rate = 0.2;
    cfg->auth_fail_burst = 20;
    cfg->token_ttl = 3600;
}

uint64_t tn__http_requests(tn__http *h) {
    return atomic_load(&h->srv.rid_next);
}

void tn__http_set_sync(tn__http *h, struct tn_sync *e) {
    pthread_mutex_lock(&h->srv.jobs_mu);
    h->srv.sync = e;
    pthread_mutex_unlock(&h->srv.jobs_mu);
}

int tn__http_address(tn__http *h, char *buf, size_t n) {
    if (h->srv.unix_path) return snprintf(buf, n, "unix:%s", h->srv.unix_path) < (int)n ? 0 : -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN];
    if (getsockname(h->srv.listen_fd, (struct sockaddr *)&ss, &sl) != 0) return -1;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        return snprintf(buf, n, "%s:%u", host, ntohs(a->sin_port)) < (int)n ? 0 : -1;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        return snprintf(buf, n, "[%s]:%u", host, ntohs(a->sin6_port)) < (int)n ? 0 : -1;
    }
    return -1;
}

void tn__http_stop(tn__http *h) {
    if (!h) return;
    tn__srv *s = &h->srv;
    /* Sync runs answered on streams end first (within a second: they look
     * at `stopping` between waits), while libmicrohttpd still runs to send
     * their last line. */
    pthread_mutex_lock(&s->jobs_mu);
    s->stopping = 1;
    while (s->jobs > 0) pthread_cond_wait(&s->jobs_cv, &s->jobs_mu);
    pthread_mutex_unlock(&s->jobs_mu);
    if (h->reaper_started) {
        pthread_mutex_lock(&h->mu);
        h->stopping = 1;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->reaper, NULL);
    }
    if (s->d) MHD_stop_daemon(s->d); /* closes the rest: on_connection frees them */
    tn__linger_stop(h->linger);
    if (h->log_started) tn__log_stop(); /* every request line written */
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    if (s->listen_fd >= 0) close(s->listen_fd);
    if (s->unix_path) unlink(s->unix_path);
    free(s->unix_path);
    tn__cors_free(s);
    tn__rl_free(s->key_rl);
    tn__rl_free(s->fail_rl);
    pthread_mutex_destroy(&s->recent_mu);
    pthread_mutex_destroy(&s->jobs_mu);
    pthread_cond_destroy(&s->jobs_cv);
    tn__auth_close(s->auth);
    free(h);
}

int tn__http_start(tn_store *st, const tn__http_config *cfg, tn__http **out, const char **err) {
    *out = NULL;
    *err = "out of memory";
    tn__http *h = calloc(1, sizeof *h);
    if (!h) return TN_NOMEM;
    tn__srv *s = &h->srv;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    pthread_mutex_init(&s->recent_mu, NULL);
    pthread_mutex_init(&s->jobs_mu, NULL);
    pthread_cond_init(&s->jobs_cv, NULL);
    s->st = st;
    s->cfg = *cfg;
    s->listen_fd = -1;
    randombytes_buf(&s->rid_prefix, sizeof s->rid_prefix);
    h->log_started = tn__log_start() == 0;
    h->linger = tn__linger_start(); /* NULL: refused connections just close */
    int rc = tn__cors_setup(s, err);
    if (rc != TN_OK) goto fail;
    rc = tn__auth_open(st, &s->auth);
    if (rc != TN_OK) {
        *err = tn_errmsg(st);
        goto fail;
    }
    /* Every bucket of this table is taken with its own rate (throttle.c);
     * the table's own pair only has to be valid. */
    s->key_rl = tn__rl_new(1, 1, 4096);
    if (s->cfg.rate > 0 && !(s->cfg.burst >= 1)) s->cfg.burst = s->cfg.rate * 2 >= 1 ? s->cfg.rate * 2 : 1;
    if (s->cfg.tenant_rate > 0 && !(s->cfg.tenant_burst >= 1)) {
        tn__rl_free(s->key_rl);
        s->key_rl = NULL;
    }
    s->fail_rl = tn__rl_new(cfg->auth_fail_rate, cfg->auth_fail_burst, 4096);
    rc = TN_INVALID;
    if (!s->key_rl || !s->fail_rl) {
        *err = "bad rate limit settings";
        goto fail;
    }
    const char *l = cfg->listen ? cfg->listen : "127.0.0.1:8787";
    s->listen_fd = strncmp(l, "unix:", 5) == 0 ? listen_unix(s, l + 5, err)
                                               : listen_tcp(l, cfg->allow_remote, err);
    if (s->listen_fd < 0) goto fail;
    int threads = cfg->threads;
    if (threads <= 0) {
        /* A worker blocks while its write waits for the group commit, so
         * more workers than CPUs let writes share fsyncs: measured on 2 CPUs,
         * 8 workers gave 2.1x the POST and 1.7x the GET rate of 2 (16: less). */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n = 4 * (n < 1 ? 1 : n);
        threads = n < 4 ? 4 : n > 32 ? 32 : (int)n;
    }
    fd_room(cfg->max_connections);
    /* MHD_USE_ITC: a worker at its share of the connection limit no longer
     * watches the listening socket, so only the inter-thread channel wakes
     * it to stop (without it, stopping under a connection flood waited for
     * the idle timeout). */
    s->d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_USE_ERROR_LOG | MHD_USE_ITC |
            MHD_ALLOW_SUSPEND_RESUME, /* streamed answers (stream.c) */
        0, NULL, NULL,
        on_request, s,
        /* The logger first, or libmicrohttpd warns on every start. */
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL, MHD_OPTION_END);
    if (!s->d) {
        *err = "cannot start the HTTP server";
        rc = TN_ERROR;
        goto fail;
    }
    if (pthread_create(&h->reaper, NULL, reaper, h) != 0) {
        *err = "cannot start the HTTP server";
        rc = TN_ERROR;
        goto fail;
    }
    h->reaper_started = 1;
    *out = h;
    return TN_OK;
fail:
    tn__http_stop(h);
    return rc;
}
