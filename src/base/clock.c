/*
 * clock.c - clocks and RFC 3339 formatting (see clock.h).
 */
#include "clock.h"

#include <stdio.h>
#include <time.h>

static int64_t read_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tn__wall_ms(void) { return read_ms(CLOCK_REALTIME); }

int64_t tn__mono_ms(void) { return read_ms(CLOCK_MONOTONIC); }

int64_t tn__mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void tn__rfc3339(int64_t ms, char out[32]) {
    if (ms < 0) ms = 0;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[24];
    if (strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0) day[0] = '\0';
    snprintf(out, 32, "%.19s.%03dZ", day, (int)(ms % 1000));
}
