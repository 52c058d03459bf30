/*
 * linkem.c - a link emulator for the benchmarks (not a test, not part of the
 * library): a loopback TCP proxy that delays every byte by a one-way delay
 * and caps each direction's bandwidth, like a WAN link between an appliance
 * and AWS.  The kernel's netem would do this, but it is not available
 * everywhere the benchmarks run.
 *
 *   linkem --target PORT [--listen PORT] [--delay-ms D] [--up-kbit K]
 *          [--down-kbit K] [--connect-rtts N] [--buffer BYTES]
 *          [--max-seconds S] [--stats FILE]
 *
 * The model, per direction ("up" is client to server):
 *   - the link is one FIFO shared by every connection: a chunk read at time t
 *     leaves the link at max(t, link free) + bytes / bandwidth (no cap: t);
 *   - it arrives delay later; bytes of one connection stay in order, and a
 *     FIN travels like a byte;
 *   - a new connection's first bytes cannot arrive before connect-rtts round
 *     trips after the accept (default 1: the TCP handshake; TLS would add
 *     one or two more, and is not emulated unless asked);
 *   - at most --buffer bytes per connection and direction wait in the
 *     emulator (default: the bandwidth-delay product plus 64 KiB, at least
 *     256 KiB); beyond that it stops reading, so TCP's flow control pushes
 *     back on the sender as a full bottleneck queue would.
 * Not modelled: loss, slow start, TLS, MTU, reordering.  So figures through
 * it are a lower bound on what a real link of the same delay and bandwidth
 * takes, and connections are cheaper than on a real link (no slow start).
 *
 * Prints "port N" on stdout once listening.  Stops on SIGTERM or SIGINT, after
 * --max-seconds (default 3600), or when its parent dies; then writes a JSON
 * line of counters (connections, bytes each way, HTTP requests seen, and the
 * DynamoDB operations by X-Amz-Target) to --stats FILE, else stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096
#define TAIL 64
#define MAX_OPS 32

typedef struct chunk {
    struct chunk *next;
    double release; /* when it may be written to the other side */
    size_t len, off;
    int eof; /* a FIN, no bytes */
    char data[];
} chunk;

typedef struct {
    chunk *head, *tail;
    size_t queued;   /* bytes read and not yet written */
    int src_eof;     /* the source side said FIN */
    int dst_shut;    /* the FIN was passed on */
    int blocked;     /* the destination's socket is full */
    char scan[TAIL]; /* last bytes seen (up only), for matches across reads */
    size_t scan_len;
} dir;

typedef struct {
    int fd[2]; /* 0: client, 1: server */
    dir d[2];  /* d[0]: client -> server, d[1]: server -> client */
    double not_before;
    uint32_t mask[2];
    int gone[2]; /* a side that hung up after its FIN: out of the epoll set */
    int used;
} conn;

static conn conns[MAX_CONNS];
static int epfd, lfd, hi; /* hi: one past the highest slot in use */
static double delay_s, rate[2], free_at[2], rtts = 1;
static size_t buf_limit;
static volatile sig_atomic_t stop;
static unsigned long long n_conns, bytes[2], requests, max_open, open_now;
static char op_name[MAX_OPS][32];
static unsigned long long op_count[MAX_OPS];
static int n_ops;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void count_op(const char *p, size_t n) {
    if (n == 0 || n >= sizeof op_name[0]) return;
    for (int i = 0; i < n_ops; i++)
        if (strlen(op_name[i]) == n && memcmp(op_name[i], p, n) == 0) {
            op_count[i]++;
            return;
        }
    if (n_ops == MAX_OPS) return;
    memcpy(op_name[n_ops], p, n);
    op_name[n_ops][n] = 0;
    op_count[n_ops++] = 1;
}

/* Counts request lines and DynamoDB targets in the client's bytes: the last
 * TAIL bytes of the previous read are searched again, and a match counts only
 * if it ends in the new bytes. */
static void scan_up(dir *d, const char *data, size_t len) {
    static char buf[TAIL + 65536];
    size_t old = d->scan_len;
    memcpy(buf, d->scan, old);
    memcpy(buf + old, data, len);
    size_t n = old + len;
    static const char req[] = " HTTP/1.1\r\n", tgt[] = "DynamoDB_20120810.";
    for (char *p = buf; (p = memmem(p, (size_t)(buf + n - p), req, sizeof req - 1));
         p += sizeof req - 1)
        if ((size_t)(p - buf) + sizeof req - 1 > old) requests++;
    for (char *p = buf; (p = memmem(p, (size_t)(buf + n - p), tgt, sizeof tgt - 1));
         p += sizeof tgt - 1) {
        char *s = p + sizeof tgt - 1, *e = s;
        while (e < buf + n && ((*e >= 'A' && *e <= 'Z') || (*e >= 'a' && *e <= 'z'))) e++;
        if (e == buf + n) { /* the name may go on in the next read: keep it */
            if ((size_t)(e - p) < TAIL) break;
            continue;
        }
        if ((size_t)(e - buf) > old) count_op(s, (size_t)(e - s));
    }
    size_t keep = n < TAIL ? n : TAIL;
    memcpy(d->scan, buf + n - keep, keep);
    d->scan_len = keep;
}

static void conn_close(conn *c) {
    for (int i = 0; i < 2; i++) {
        if (c->fd[i] >= 0) {
            if (!c->gone[i]) epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd[i], NULL);
            close(c->fd[i]);
        }
        for (chunk *k = c->d[i].head, *n; k; k = n) {
            n = k->next;
            free(k);
        }
    }
    memset(c, 0, sizeof *c);
    open_now--;
}

static void push(conn *c, int di, const char *data, size_t len, int eof) {
    dir *d = &c->d[di];
    chunk *k = malloc(sizeof *k + len);
    if (!k) {
        fprintf(stderr, "linkem: out of memory\n");
        exit(1);
    }
    double t = now_s(), depart = t;
    /* Before the handshake is over the client could not have sent a byte. */
    if (di == 0 && depart < c->not_before) depart = c->not_before;
    if (!eof && rate[di] > 0) {
        depart = (depart > free_at[di] ? depart : free_at[di]) + (double)len / rate[di];
        free_at[di] = depart;
    }
    k->release = depart + delay_s;
    if (d->tail && k->release < d->tail->release) k->release = d->tail->release;
    k->len = len;
    k->off = 0;
    k->eof = eof;
    k->next = NULL;
    if (len) memcpy(k->data, data, len);
    if (d->tail) d->tail->next = k;
    else d->head = k;
    d->tail = k;
    d->queued += len;
}

/* Reads what the link may take from side `side` (0 client, 1 server). */
static int do_read(conn *c, int side) {
    dir *d = &c->d[side];
    static char buf[65536];
    size_t want = sizeof buf;
    if (rate[side] > 0) { /* about 5 ms of the link per chunk */
        double w = rate[side] * 0.005;
        want = w < 1448 ? 1448 : w > sizeof buf ? sizeof buf : (size_t)w;
    }
    if (buf_limit - d->queued < want) want = buf_limit - d->queued;
    if (want == 0) return 0; /* full (a hang-up is read once there is room) */
    ssize_t n = read(c->fd[side], buf, want);
    if (n > 0) {
        bytes[side] += (unsigned long long)n;
        if (side == 0) scan_up(d, buf, (size_t)n);
        push(c, side, buf, (size_t)n, 0);
        return 0;
    }
    if (n == 0) {
        d->src_eof = 1;
        push(c, side, NULL, 0, 1);
        return 0;
    }
    return errno == EAGAIN || errno == EINTR ? 0 : -1;
}

/* Writes the chunks of direction di whose time has come. */
static int do_write(conn *c, int di, double t) {
    dir *d = &c->d[di];
    int dst = c->fd[1 - di];
    d->blocked = 0;
    while (d->head && d->head->release <= t) {
        chunk *k = d->head;
        if (k->eof) {
            shutdown(dst, SHUT_WR);
            d->dst_shut = 1;
        } else {
            while (k->off < k->len) {
                ssize_t n = write(dst, k->data + k->off, k->len - k->off);
                if (n < 0) {
                    if (errno == EAGAIN) {
                        d->blocked = 1;
                        return 0;
                    }
                    if (errno == EINTR) continue;
                    return -1;
                }
                k->off += (size_t)n;
                d->queued -= (size_t)n;
            }
        }
        d->head = k->next;
        if (!d->head) d->tail = NULL;
        free(k);
    }
    return 0;
}

static void set_mask(conn *c, int side, uint32_t m) {
    if (c->gone[side] || c->mask[side] == m) return;
    struct epoll_event ev = {.events = m, .data.u64 = (uint64_t)(c - conns) * 2 + (uint64_t)side};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd[side], &ev);
    c->mask[side] = m;
}

static void update(conn *c) {
    for (int side = 0; side < 2; side++) {
        dir *in = &c->d[side], *out = &c->d[1 - side];
        uint32_t m = 0;
        if (!in->src_eof && in->queued < buf_limit) m |= EPOLLIN;
        if (out->blocked) m |= EPOLLOUT;
        set_mask(c, side, m);
    }
}

static void accept_one(int target_port) {
    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    if (cfd < 0) return;
    int sfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sfd < 0 || connect(sfd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (sfd >= 0) close(sfd);
        close(cfd);
        return;
    }
    fcntl(sfd, F_SETFL, fcntl(sfd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int i = 0;
    while (i < MAX_CONNS && conns[i].used) i++;
    if (i == MAX_CONNS) {
        close(cfd);
        close(sfd);
        return;
    }
    conn *c = &conns[i];
    memset(c, 0, sizeof *c);
    if (i >= hi) hi = i + 1;
    c->used = 1;
    c->fd[0] = cfd;
    c->fd[1] = sfd;
    c->not_before = now_s() + rtts * 2 * delay_s;
    for (int side = 0; side < 2; side++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i * 2 + (uint64_t)side};
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd[side], &ev);
        c->mask[side] = EPOLLIN;
    }
    n_conns++;
    if (++open_now > max_open) max_open = open_now;
}

static void write_stats(const char *path) {
    FILE *f = path ? fopen(path, "w") : stderr;
    if (!f) f = stderr;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    fprintf(f, "{\"connections\":%llu,\"max_open\":%llu,\"up_bytes\":%llu,\"down_bytes\":%llu,"
               "\"requests\":%llu,\"cpu_s\":%.3f,\"ops\":{",
            n_conns, max_open, bytes[0], bytes[1], requests, cpu);
    for (int i = 0; i < n_ops; i++)
        fprintf(f, "%s\"%s\":%llu", i ? "," : "", op_name[i], op_count[i]);
    fprintf(f, "}}\n");
    if (f != stderr) fclose(f);
}

static double arg_num(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "linkem: %s needs a value\n", argv[*i]);
        exit(2);
    }
    char *end;
    double v = strtod(argv[++*i], &end);
    if (*end || v < 0) {
        fprintf(stderr, "linkem: bad value for %s\n", argv[*i - 1]);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    int target = 0, port = 0;
    double max_s = 3600, delay_ms = 0, buffer = 0;
    const char *stats = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--target")) target = (int)arg_num(argc, argv, &i);
        else if (!strcmp(a, "--listen")) port = (int)arg_num(argc, argv, &i);
        else if (!strcmp(a, "--delay-ms")) delay_ms = arg_num(argc, argv, &i);
        else if (!strcmp(a, "--up-kbit")) rate[0] = arg_num(argc, argv, &i) * 1000 / 8;
        else if (!strcmp(a, "--down-kbit")) rate[1] = arg_num(argc, argv, &i) * 1000 / 8;
        else if (!strcmp(a, "--connect-rtts")) rtts = arg_num(argc, argv, &i);
        else if (!strcmp(a, "--buffer")) buffer = arg_num(argc, argv, &i);
        else if (!strcmp(a, "--max-seconds")) max_s = arg_num(argc, argv, &i);
        else if (!strcmp(a, "--stats") && i + 1 < argc) stats = argv[++i];
        else {
            fprintf(stderr, "usage: linkem --target PORT [--listen PORT] [--delay-ms D] [--up-kbit K]\n"
                            "       [--down-kbit K] [--connect-rtts N] [--buffer BYTES]\n"
                            "       [--max-seconds S] [--stats FILE]\n");
            return 2;
        }
    }
    if (target <= 0 || target > 65535 || port > 65535 || max_s <= 0) {
        fprintf(stderr, "linkem: --target PORT is required\n");
        return 2;
    }
    delay_s = delay_ms / 1000;
    double bdp = (rate[0] > rate[1] ? rate[0] : rate[1]) * 2 * delay_s;
    buf_limit = buffer > 0 ? (size_t)buffer : (size_t)(bdp + 65536);
    if (buffer <= 0 && buf_limit < 262144) buf_limit = 262144;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 512) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0) {
        perror("linkem: listen");
        return 1;
    }
    epfd = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);

    double end = now_s() + max_s;
    struct epoll_event evs[256];
    while (!stop) {
        double t = now_s();
        if (t >= end) break;
        /* Sleep until the next chunk is due, at most 100 ms. */
        double next = t + 0.1;
        for (int i = 0; i < hi; i++) {
            if (!conns[i].used) continue;
            for (int di = 0; di < 2; di++) {
                chunk *h = conns[i].d[di].head;
                if (h && !conns[i].d[di].blocked && h->release < next) next = h->release;
            }
        }
        int ms = (int)((next - t) * 1000 + 0.999);
        if (ms < 0) ms = 0;
        int n = epoll_wait(epfd, evs, 256, ms);
        for (int e = 0; e < n; e++) {
            if (evs[e].data.u64 == UINT64_MAX) {
                for (int k = 0; k < 64 && !stop; k++) {
                    int before = (int)n_conns;
                    accept_one(target);
                    if ((int)n_conns == before) break;
                }
                continue;
            }
            conn *c = &conns[evs[e].data.u64 / 2];
            int side = (int)(evs[e].data.u64 % 2);
            if (!c->used) continue;
            if ((evs[e].events & (EPOLLHUP | EPOLLERR)) && c->d[side].src_eof) {
                /* Hung up after its FIN: nothing more to read, and epoll
                 * would report the hang-up again on every call. */
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd[side], NULL);
                c->gone[side] = 1;
            } else if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (do_read(c, side) != 0) {
                    conn_close(c);
                    continue;
                }
            }
            if (evs[e].events & EPOLLOUT) c->d[1 - side].blocked = 0;
        }
        t = now_s();
        for (int i = 0; i < hi; i++) {
            conn *c = &conns[i];
            if (!c->used) continue;
            int bad = 0;
            for (int di = 0; di < 2 && !bad; di++)
                if (!c->d[di].blocked) bad = do_write(c, di, t) != 0;
            if (bad || (c->d[0].dst_shut && c->d[1].dst_shut)) {
                conn_close(c);
                continue;
            }
            update(c);
        }
        while (hi > 0 && !conns[hi - 1].used) hi--;
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].used) conn_close(&conns[i]);
    close(lfd);
    write_stats(stats);
    return 0;
}
