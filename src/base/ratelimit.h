/*
 * ratelimit.h - token buckets keyed by a short string (an API key id, or a
 * client address for failed-authentication throttling).
 *
 * A table has a fixed number of slots, so memory is bounded whatever a client
 * sends: a key hashes to a slot and probes a few neighbours; when all are taken
 * the least recently used bucket is replaced (it restarts full, which only
 * favours the client whose bucket was evicted, never an attacker flooding
 * distinct keys into the same table, who pays with its own buckets).
 * Thread-safe (one mutex; each call holds it for a few dozen instructions).
 * The clock is an argument so tests are deterministic.
 */
#ifndef TN_RATELIMIT_H
#define TN_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define TN__RL_KEY_MAX 63

typedef struct tn__rl tn__rl;

/* rate: tokens per second added back; burst: bucket size (>= 1).  NULL on
 * bad arguments or out of memory. */
tn__rl *tn__rl_new(double rate, double burst, size_t slots);
void tn__rl_free(tn__rl *rl);
/* Takes one token for key at now_ms.  0 when allowed, else the whole seconds
 * (>= 1) to wait before the next token. */
int tn__rl_take(tn__rl *rl, const char *key, int64_t now_ms);
/* The same with this bucket's own rate and burst (a tenant's setting, which
 * may change between calls); rate <= 0 or burst < 1 take the table's. */
int tn__rl_take_at(tn__rl *rl, const char *key, double rate, double burst, int64_t now_ms);
/* Like tn__rl_take but only looks: 0 when a token is available. */
int tn__rl_check(tn__rl *rl, const char *key, int64_t now_ms);

#endif
