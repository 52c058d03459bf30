/*
 * throttle.c - the request budgets of the authentication entry point:
 * failed authentications (throttled so guessing stays slow) and requests per
 * API key and per tenant (token buckets, src/base/ratelimit.h).
 *
 * Failed authentication.  Every local caller is 127.0.0.1 or the unix
 * socket, so a budget per client address let anyone on the box lock every
 * tenant and the admin out.  Instead a credential is always checked first:
 * one that holds is never refused because of others' failures.  Only a
 * failure is charged, to a bucket named after what it claimed to be:
 *   "admin"     a well-formed admin key that is wrong (all admin-key guesses)
 *   "k:<id>"    an API key whose id exists, with a wrong secret (or revoked,
 *               expired): the guesses at that one key
 *   "o:<id>"    the same for an operator key
 *   "stale"     a bearer token we signed that no longer holds (expired, key
 *               revoked): a client that must re-authenticate, not a guess
 *   "anon"      everything else: no credential, malformed ones, unknown ids,
 *               forged tokens (so made-up ids cannot open fresh buckets)
 * Within a bucket's budget (--auth-fail-rate, --auth-fail-burst) a failure
 * is audited and answered 401; past it, 429 with Retry-After and no audit
 * row.  The cost of a flood falls on the failing requests alone; a guesser
 * stays at the bucket's rate.
 */
#include "clock.h"
#include "api_int.h"

#include <math.h>
#include <stdio.h>

int tn__auth_failed(tn__req *r, const char *why, const char *principal) {
    atomic_fetch_add(&r->srv->auth_failures, 1);
    char bucket[TN__RL_KEY_MAX + 1];
    snprintf(bucket, sizeof bucket, "%s", principal);
    int wait = tn__rl_take(r->srv->fail_rl, bucket, tn__wall_ms());
    if (wait) {
        /* Past the budget: refused, and not audited one by one (the flood
         * would otherwise fill the audit log). */
        atomic_fetch_add(&r->srv->rate_limited, 1);
        return wait;
    }
    char detail[200];
    snprintf(detail, sizeof detail, "%s %s: %s (%s)", tn__method_name(r->method),
             r->pattern ? r->pattern : "?", why, principal);
    char actor[80];
    snprintf(actor, sizeof actor, "client:%s", r->client);
    tn__auth_audit(r->srv->st, actor, NULL, "auth.failure", detail);
    return 0;
}

void tn__auth_refuse(tn__req *r, const char *why, const char *principal) {
    int wait = tn__auth_failed(r, why, principal);
    if (wait) tn__req_fail(r, 429, "too many requests", wait);
    else tn__req_fail(r, 401, "unauthorized", 0);
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
