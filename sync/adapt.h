/*
 * adapt.h - the rate of row writes a remote accepts, learned from its
 * throttling answers, and the pacing of the engine's requests to it.
 *
 * Off until the remote throttles a request: then the rate is cut to 0.7 of
 * what the remote accepted over the last second (at least 5 a second; when
 * it accepted nothing, the limit goes off again: that is a refusal, paced by
 * the engine's backoff between attempts), and grows back along a
 * cubic curve (CUBIC's window, as cloud SDKs' adaptive retry modes use it):
 * slowly near the rate of the last cut, faster once well past it, until the
 * next throttling answer.  A throttling answer to a request sent before the
 * last cut says nothing new and is ignored, so thirty-two requests throttled
 * at once cut the rate once, not thirty-two times.  Every request of every
 * worker waits for its turn at the current rate, so a remote at its limit
 * (a cloud table limits the writes to one partition key, that is to one
 * tenant) is sent what it takes instead of being hammered.
 */
#ifndef TN_SYNC_ADAPT_H
#define TN_SYNC_ADAPT_H

#include <pthread.h>
#include <stdint.h>

#define TN__ADAPT_SLOTS 10 /* the accepted count over the last second, in 100 ms slots */

typedef struct tn__adapt {
    pthread_mutex_t mu;
    int on;               /* a throttling answer was seen */
    double fill;          /* requests a second now (when on) */
    double last_max;      /* the rate at the last cut */
    int64_t cut_us;       /* monotonic time of the last cut */
    int64_t first_us;     /* the first request's time */
    int64_t last_us;      /* when the last request went */
    int64_t slot_at[TN__ADAPT_SLOTS]; /* each slot's 100 ms period, and */
    int slot_n[TN__ADAPT_SLOTS];      /* requests accepted in it */
    int64_t cuts;         /* how often the rate was cut */
} tn__adapt;

void tn__adapt_init(tn__adapt *a);
void tn__adapt_destroy(tn__adapt *a);
/* Waits for the next request's turn.  Returns the time it may be sent
 * (monotonic us), to hand back with its answer; -1 when *stop or *cancel
 * (either may be NULL) became non-zero while waiting. */
int64_t tn__adapt_take(tn__adapt *a, const volatile int *stop, const int *cancel);
/* The answer to a request sent at sent_us: accepted (the remote took at
 * least one of its rows) and/or throttled (it refused at least one for its
 * rate). */
void tn__adapt_answer(tn__adapt *a, int64_t sent_us, int accepted, int throttled);
/* The current rate in requests a second; 0 while off. */
double tn__adapt_rate(tn__adapt *a);

#endif
