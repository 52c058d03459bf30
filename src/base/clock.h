/*
 * clock.h - the clocks and the one time format every layer uses.
 *
 *   tn__wall_ms()  milliseconds since the Unix epoch (CLOCK_REALTIME)
 *   tn__mono_ms()  milliseconds of CLOCK_MONOTONIC: intervals and deadlines
 *   tn__mono_us()  the same in microseconds (pacing a link)
 *   tn__rfc3339()  2026-11-24T13:05:35.123Z, always 24 characters, UTC
 */
#ifndef TN_CLOCK_H
#define TN_CLOCK_H

#include <stdint.h>

int64_t tn__wall_ms(void);
int64_t tn__mono_ms(void);
int64_t tn__mono_us(void);
/* Negative times print as the epoch. */
void tn__rfc3339(int64_t ms, char out[32]);

#endif
