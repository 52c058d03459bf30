/*
 * throttle.c - the request budgets of the authentication entry point:
 * failed authentications (throttled so guessing stays slow) and requests per
 * API key and per tenant (token buckets, src/base/ratelimit.h).
 */
#include "clock.h"
#include "api_int.h"

#include <math.h>
#include <stdio.h>

void tn__auth_failed(tn__req *r, const char *why) {
    atomic_fetch_add(&r->srv->auth_failures, 1);
    tn__rl_take(r->srv->fail_rl, r->client, tn__wall_ms());
    char detail[160];
    snprintf(detail, sizeof detail, "%s %s: %s", tn__method_name(r->method),
             r->pattern ? r->pattern : "?", why);
    char actor[80];
    snprintf(actor, sizeof actor, "client:%s", r->client);
    tn__auth_audit(r->srv->st, actor, NULL, "auth.failure", detail);
}

/* Throttled clients get 429 before any credential is even looked at. */
int tn__auth_throttled(tn__req *r) {
    int wait = tn__rl_check(r->srv->fail_rl, r->client, tn__wall_ms());
    if (!wait) return 0;
    atomic_fetch_add(&r->srv->rate_limited, 1);
    tn__req_fail(r, 429, "too many requests", wait);
    return 1;
}

int tn__key_throttled(tn__req *r, const char *id, tn__resp *out) {
    int wait = tn__rl_take(r->srv->key_rl, id, tn__wall_ms());
    if (!wait) return 0;
    atomic_fetch_add(&r->srv->rate_limited, 1);
    tn__resp_error(out, 429, "too many requests");
    out->retry_after = wait;
    return 1;
}

int tn__tenant_throttled(tn__req *r) {
    int wait = tn__rl_take(r->srv->key_rl, r->key.key_id, tn__wall_ms());
    /* The tenant's own rate (its settings, read with the key on this very
     * request), shared by all its keys and operators.  The bucket is named
     * after the rate too, so a changed setting starts from a full bucket. */
    if (!wait && r->key.rate_limit > 0) {
        double burst = r->key.burst >= 1 ? r->key.burst : fmax(1, 2 * r->key.rate_limit);
        char k[96];
        /* Valid settings keep this within the limiter's key length; past it
         * (a hand-edited row), one bucket per tenant. */
        if (snprintf(k, sizeof k, "t:%s:%g:%g", r->key.tenant_id, r->key.rate_limit, burst) >
            TN__RL_KEY_MAX)
            snprintf(k, sizeof k, "t:%s", r->key.tenant_id);
        wait = tn__rl_take_at(r->srv->key_rl, k, r->key.rate_limit, burst, tn__wall_ms());
    }
    if (!wait) return 0;
    atomic_fetch_add(&r->srv->rate_limited, 1);
    tn__req_fail(r, 429, "too many requests", wait);
    return 1;
}
