/*
 * adapt.c - the rate a remote accepts, learned from its throttling (see
 * adapt.h).
 *
 * The cubic curve: after a cut at rate W (the last maximum), the rate at t
 * seconds is C (t - K)^3 + W with K = cbrt(W (1 - BETA) / C), so it starts
 * at BETA W, flattens as it nears W (where the remote refused last time),
 * and probes past it ever faster once it holds there.
 */
#include "adapt.h"

#include "clock.h"

#include <math.h>
#include <time.h>
#include <string.h>

#define BETA 0.7
#define CUBIC_C 0.4
#define MIN_RATE 5.0      /* requests a second: below this the backoff between attempts paces */
#define MAX_RATE 100000.0 /* beyond this the pacing is off in all but name */
#define SLOT_US 100000
#define MIN_SPAN_US 20000
#define POLL_US 20000     /* a waiter looks again at least this often: a new rate applies at once */

void tn__adapt_init(tn__adapt *a) {
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
}

void tn__adapt_destroy(tn__adapt *a) { pthread_mutex_destroy(&a->mu); }

/* Requests accepted a second over the last second (or since the first
 * request, when that is shorter, but at least over 20 ms: early in a run the
 * estimate errs high, which the next cut corrects within a round trip, where
 * one that errs low takes seconds of growth).  Under a->mu. */
static double accepted_rate(const tn__adapt *a, int64_t now) {
    int64_t period = now / SLOT_US, n = 0;
    for (int i = 0; i < TN__ADAPT_SLOTS; i++)
        if (period - a->slot_at[i] < TN__ADAPT_SLOTS) n += a->slot_n[i];
    int64_t span = now - a->first_us;
    if (span > (int64_t)TN__ADAPT_SLOTS * SLOT_US) span = (int64_t)TN__ADAPT_SLOTS * SLOT_US;
    if (span < MIN_SPAN_US) span = MIN_SPAN_US;
    return (double)n * 1e6 / (double)span;
}

static void set_rate(tn__adapt *a, double r) {
    if (r < MIN_RATE) r = MIN_RATE;
    if (r > MAX_RATE) r = MAX_RATE;
    a->fill = r;
}

/* No reservations ahead and no burst: each request goes 1/rate after the
 * one before, at the rate of the moment it goes.  (Slots reserved at the
 * rate before a cut would keep the old rate for as long as the queue of
 * waiters is; a burst after each cut would meet a remote that has just
 * refused, and cut again.) */
int64_t tn__adapt_take(tn__adapt *a, const volatile int *stop, const int *cancel) {
    for (;;) {
        pthread_mutex_lock(&a->mu);
        int64_t now = tn__mono_us();
        if (!a->first_us) a->first_us = now;
        int64_t at = a->on ? a->last_us + (int64_t)(1e6 / a->fill) : now;
        if (at <= now) {
            a->last_us = now;
            pthread_mutex_unlock(&a->mu);
            return now;
        }
        pthread_mutex_unlock(&a->mu);
        if ((stop && *stop) || (cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED))) return -1;
        int64_t us = at - now < POLL_US ? at - now : POLL_US;
        struct timespec ts = {0, us * 1000};
        nanosleep(&ts, NULL);
    }
}

void tn__adapt_answer(tn__adapt *a, int64_t sent_us, int accepted, int throttled) {
    pthread_mutex_lock(&a->mu);
    int64_t now = tn__mono_us();
    if (accepted) {
        int64_t period = now / SLOT_US;
        int i = (int)(period % TN__ADAPT_SLOTS);
        if (a->slot_at[i] != period) {
            a->slot_at[i] = period;
            a->slot_n[i] = 0;
        }
        a->slot_n[i]++;
    }
    double took = throttled ? accepted_rate(a, now) : 0;
    if (throttled && took == 0) {
        /* Nothing got through for a second: not a rate the remote holds us
         * to but a refusal, which the engine's backoff between attempts
         * paces; the rate is learned again from the next answers. */
        a->on = 0;
    } else if (throttled && (!a->on || sent_us >= a->cut_us)) {
        double base = took;
        if (a->on && a->fill < base) base = a->fill;
        if (base < MIN_RATE) base = MIN_RATE;
        a->last_max = base;
        a->cut_us = now;
        a->on = 1;
        a->cuts++;
        set_rate(a, base * BETA);
    } else if (a->on && !throttled) {
        double t = (double)(now - a->cut_us) / 1e6;
        double k = cbrt(a->last_max * (1 - BETA) / CUBIC_C);
        set_rate(a, CUBIC_C * (t - k) * (t - k) * (t - k) + a->last_max);
    }
    pthread_mutex_unlock(&a->mu);
}

double tn__adapt_rate(tn__adapt *a) {
    pthread_mutex_lock(&a->mu);
    double r = a->on ? a->fill : 0;
    pthread_mutex_unlock(&a->mu);
    return r;
}
