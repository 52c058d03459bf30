/*
 * pace.c - the shared bandwidth budget (see pace.h).
 *
 * The link is modelled by the time it is next free (next_us), as a virtual
 * scheduler does: a reservation of n bytes starts at max(next_us, now) and
 * moves next_us on by n / rate.  The caller sleeps until its start less the
 * burst allowance; an idle link earns no more than that allowance.
 */
#include "pace.h"

#include "clock.h"

#include <time.h>

#define PACE_BURST_MS 50
#define CHUNK_MIN 1024
#define CHUNK_MAX 65536

void tn__pace_init(tn__pace *p) {
    pthread_mutex_init(&p->mu, NULL);
    p->rate = 0;
    p->next_us = 0;
}

void tn__pace_destroy(tn__pace *p) { pthread_mutex_destroy(&p->mu); }

void tn__pace_set(tn__pace *p, int64_t rate) {
    pthread_mutex_lock(&p->mu);
    p->rate = rate > 0 ? rate : 0;
    pthread_mutex_unlock(&p->mu);
}

int64_t tn__pace_rate(tn__pace *p) {
    pthread_mutex_lock(&p->mu);
    int64_t r = p->rate;
    pthread_mutex_unlock(&p->mu);
    return r;
}

size_t tn__pace_chunk(tn__pace *p) {
    int64_t r = tn__pace_rate(p);
    if (r <= 0) return CHUNK_MAX;
    int64_t c = r / 10;
    return (size_t)(c < CHUNK_MIN ? CHUNK_MIN : c > CHUNK_MAX ? CHUNK_MAX : c);
}

int tn__pace_take(tn__pace *p, size_t n, const volatile int *stop) {
    pthread_mutex_lock(&p->mu);
    if (p->rate <= 0) {
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    int64_t now = tn__mono_us();
    int64_t start = p->next_us > now ? p->next_us : now;
    /* n / rate in microseconds, without overflow for any size_t n. */
    int64_t cost = (int64_t)(n / (size_t)p->rate) * 1000000 +
                   (int64_t)(n % (size_t)p->rate) * 1000000 / p->rate;
    p->next_us = start + cost;
    pthread_mutex_unlock(&p->mu);
    int64_t until = start - PACE_BURST_MS * 1000;
    while ((now = tn__mono_us()) < until) {
        if (stop && *stop) return -1;
        int64_t us = until - now < 100000 ? until - now : 100000;
        struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}
