/*
 * linger.c - lingering close for refused requests (see linger.h): one thread,
 * one epoll set, a fixed table of descriptors.
 */
#include "clock.h"
#include "linger.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINGER_MAX 64
#define LINGER_MS 5000
#define LINGER_BYTES ((int64_t)64 << 20)

typedef struct slot {
    int fd;          /* -1: free */
    int64_t until;   /* monotonic ms */
    int64_t bytes;
} slot;

struct tn__linger {
    pthread_mutex_t mu;
    int ep, wake;    /* epoll set; eventfd that stops the thread */
    int stop;
    slot s[LINGER_MAX];
    pthread_t th;
};

static void drop(tn__linger *l, slot *s) {
    epoll_ctl(l->ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
}

/* Reads and discards what is there; 1 when the slot is done. */
static int drain(slot *s) {
    static char sink[65536]; /* contents never looked at */
    for (;;) {
        ssize_t n = recv(s->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n > 0) {
            s->bytes += n;
            if (s->bytes > LINGER_BYTES) return 1;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)); /* EOF or error */
    }
}

static void *run(void *arg) {
    tn__linger *l = arg;
    struct epoll_event ev[16];
    for (;;) {
        int n = epoll_wait(l->ep, ev, 16, 250);
        pthread_mutex_lock(&l->mu);
        if (l->stop) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        for (int i = 0; i < n; i++) {
            slot *s = ev[i].data.ptr;
            if (s && s->fd >= 0 && drain(s)) drop(l, s);
        }
        int64_t now = tn__mono_ms();
        for (int i = 0; i < LINGER_MAX; i++)
            if (l->s[i].fd >= 0 && now > l->s[i].until) drop(l, &l->s[i]);
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

tn__linger *tn__linger_start(void) {
    tn__linger *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    for (int i = 0; i < LINGER_MAX; i++) l->s[i].fd = -1;
    pthread_mutex_init(&l->mu, NULL);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (l->ep < 0 || l->wake < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake, &ev) != 0 ||
        pthread_create(&l->th, NULL, run, l) != 0) {
        if (l->ep >= 0) close(l->ep);
        if (l->wake >= 0) close(l->wake);
        pthread_mutex_destroy(&l->mu);
        free(l);
        return NULL;
    }
    return l;
}

void tn__linger_add(tn__linger *l, int fd) {
    if (fd < 0) return;
    if (!l) {
        close(fd);
        return;
    }
    pthread_mutex_lock(&l->mu);
    slot *s = NULL;
    for (int i = 0; i < LINGER_MAX && !s && !l->stop; i++)
        if (l->s[i].fd < 0) s = &l->s[i];
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
    /* The answer is out: end our side, so the client sees its end. */
    if (!s || shutdown(fd, SHUT_WR) != 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd); /* no room: closed as before */
    } else {
        s->fd = fd;
        s->until = tn__mono_ms() + LINGER_MS;
        s->bytes = 0;
    }
    pthread_mutex_unlock(&l->mu);
}

void tn__linger_stop(tn__linger *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_mutex_unlock(&l->mu);
    uint64_t one = 1;
    if (write(l->wake, &one, sizeof one) < 0) { /* the 250 ms timeout ends it too */ }
    pthread_join(l->th, NULL);
    for (int i = 0; i < LINGER_MAX; i++)
        if (l->s[i].fd >= 0) close(l->s[i].fd);
    close(l->ep);
    close(l->wake);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
