/*
 * pace.h - one bandwidth budget shared by every thread that sends through it:
 * at most `rate` bytes a second over all of them together, the way a link's
 * capacity is shared.  The sync engine's connections of one remote pace
 * through one of these, so the cap holds whatever mix of uploads, parts and
 * row writes is running at once.
 *
 * Each caller reserves its bytes' slot on the link in arrival order (so the
 * waiters are served first come, first served) and sleeps until the slot
 * begins, less a small burst allowance (PACE_BURST_MS): over any interval
 * T the bytes let through stay under rate x (T + the burst) plus one chunk.
 * Callers pace in chunks of tn__pace_chunk() bytes, so no wait is long.
 */
#ifndef TN_PACE_H
#define TN_PACE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tn__pace {
    pthread_mutex_t mu;
    int64_t rate;    /* bytes/s; 0: no cap */
    int64_t next_us; /* monotonic time at which the link is free again */
} tn__pace;

void tn__pace_init(tn__pace *p);
void tn__pace_destroy(tn__pace *p);
/* A new rate (bytes/s; 0 or less: no cap), from the next reservation on. */
void tn__pace_set(tn__pace *p, int64_t rate);
int64_t tn__pace_rate(tn__pace *p);
/* The most bytes worth one reservation: about a tenth of a second of the
 * rate, between 1 KiB and 64 KiB (64 KiB without a cap). */
size_t tn__pace_chunk(tn__pace *p);
/* Waits until n more bytes may go.  0; -1 when *stop (may be NULL) became
 * non-zero while waiting. */
int tn__pace_take(tn__pace *p, size_t n, const volatile int *stop);

#endif
