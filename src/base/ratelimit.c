/*
 * ratelimit.c - bounded tables of token buckets (see ratelimit.h).
 *
 * Buckets store the token count as of `last`; refilling happens lazily on
 * each call: tokens = min(burst, tokens + rate * elapsed).
 */
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PROBES 8

typedef struct bucket {
    char key[TN__RL_KEY_MAX + 1]; /* "" = free */
    double tokens;
    int64_t last; /* ms */
} bucket;

struct tn__rl {
    pthread_mutex_t mu;
    double rate, burst;
    size_t n;
    bucket *b;
};

tn__rl *tn__rl_new(double rate, double burst, size_t slots) {
    if (!(rate > 0) || !(burst >= 1) || slots < PROBES) return NULL;
    tn__rl *rl = calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->b = calloc(slots, sizeof *rl->b);
    if (!rl->b) {
        free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->mu, NULL);
    rl->rate = rate;
    rl->burst = burst;
    rl->n = slots;
    return rl;
}

void tn__rl_free(tn__rl *rl) {
    if (!rl) return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->b);
    free(rl);
}

/* FNV-1a: keys are short and not attacker-chosen in a way that matters, since
 * a collision only shares probing, never a bucket. */
static size_t hash(const char *k) {
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++) h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return (size_t)h;
}

/* The bucket for key, refilled to now at rate up to burst; created (full)
 * when absent. */
static bucket *find(tn__rl *rl, const char *key, int64_t now, double rate, double burst) {
    size_t h = hash(key), oldest = h % rl->n;
    for (int i = 0; i < PROBES; i++) {
        bucket *b = &rl->b[(h + (size_t)i) % rl->n];
        if (b->key[0] && strcmp(b->key, key) == 0) {
            if (now > b->last) {
                b->tokens = fmin(burst, b->tokens + rate * (double)(now - b->last) / 1000.0);
                b->last = now;
            }
            return b;
        }
        if (!b->key[0] || b->last < rl->b[oldest].last) oldest = (h + (size_t)i) % rl->n;
        if (!b->key[0]) break;
    }
    bucket *b = &rl->b[oldest];
    size_t kl = strnlen(key, TN__RL_KEY_MAX);
    memcpy(b->key, key, kl);
    b->key[kl] = '\0';
    b->tokens = burst;
    b->last = now;
    return b;
}

static int wait_s(double rate, const bucket *b) {
    double s = ceil((1.0 - b->tokens) / rate);
    return s < 1 ? 1 : s > 86400 ? 86400 : (int)s;
}

int tn__rl_take_at(tn__rl *rl, const char *key, double rate, double burst, int64_t now_ms) {
    if (!(rate > 0)) rate = rl->rate;
    if (!(burst >= 1)) burst = rl->burst;
    pthread_mutex_lock(&rl->mu);
    bucket *b = find(rl, key, now_ms, rate, burst);
    /* A bucket made under a larger burst: clamp it when the burst shrinks. */
    if (b->tokens > burst) b->tokens = burst;
    int wait = 0;
    if (b->tokens >= 1.0)
        b->tokens -= 1.0;
    else
        wait = wait_s(rate, b);
    pthread_mutex_unlock(&rl->mu);
    return wait;
}

int tn__rl_take(tn__rl *rl, const char *key, int64_t now_ms) {
    return tn__rl_take_at(rl, key, rl->rate, rl->burst, now_ms);
}

int tn__rl_check(tn__rl *rl, const char *key, int64_t now_ms) {
    pthread_mutex_lock(&rl->mu);
    bucket *b = find(rl, key, now_ms, rl->rate, rl->burst);
    int wait = b->tokens >= 1.0 ? 0 : wait_s(rl->rate, b);
    pthread_mutex_unlock(&rl->mu);
    return wait;
}
