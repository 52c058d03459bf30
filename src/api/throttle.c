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
 *
 * Requests.  What protects tenants from each other is a share of the server
 * while it is shared: every tenant without a rate of its own has a bucket of
 * --tenant-rate (default 2000/s, burst 4000) that refuses only while another
 * tenant has made a request within the last second.  A tenant alone, or a
 * local program well within its share, is never throttled; one that floods
 * is held to the share as soon as another tenant needs the server.  A
 * tenant's own rate setting (PATCH, `tenant set`) and --rate per key apply
 * always.
 */
#include "clock.h"
#include "api_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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
    const tn__http_config *c = &r->srv->cfg;
    int wait = c->rate > 0 ? tn__rl_take_at(r->srv->key_rl, id, c->rate, c->burst, tn__wall_ms()) : 0;
    if (!wait) return 0;
    atomic_fetch_add(&r->srv->rate_limited, 1);
    tn__resp_error(out, 429, "too many requests");
    out->retry_after = wait;
    return 1;
}

/* Records tenant as active at now; 1 when another tenant made a request
 * within the last second. */
static int others_active(tn__srv *s, const char *tenant, int64_t now) {
    pthread_mutex_lock(&s->recent_mu);
    if (strcmp(s->recent[0].tenant, tenant) != 0) {
        s->recent[1] = s->recent[0]; /* the other one seen last */
        snprintf(s->recent[0].tenant, sizeof s->recent[0].tenant, "%s", tenant);
    }
    s->recent[0].ms = now;
    int active = s->recent[1].tenant[0] && now - s->recent[1].ms <= 1000;
    pthread_mutex_unlock(&s->recent_mu);
    return active;
}

int tn__tenant_throttled(tn__req *r) {
    tn__srv *s = r->srv;
    const tn__http_config *c = &s->cfg;
    int64_t now = tn__wall_ms();
    int contended = others_active(s, r->key.tenant_id, now);
    int wait = c->rate > 0 ? tn__rl_take_at(s->key_rl, r->key.key_id, c->rate, c->burst, now) : 0;
    char k[96];
    if (!wait && r->key.rate_limit > 0) {
        /* The tenant's own rate (its settings, read with the key on this
         * very request), shared by all its keys and operators, always
         * applied.  The bucket is named after the rate too, so a changed
         * setting starts from a full bucket. */
        double burst = r->key.burst >= 1 ? r->key.burst : fmax(1, 2 * r->key.rate_limit);
        /* Valid settings keep this within the limiter's key length; past it
         * (a hand-edited row), one bucket per tenant. */
        if (snprintf(k, sizeof k, "t:%s:%g:%g", r->key.tenant_id, r->key.rate_limit, burst) >
            TN__RL_KEY_MAX)
            snprintf(k, sizeof k, "t:%s", r->key.tenant_id);
        wait = tn__rl_take_at(s->key_rl, k, r->key.rate_limit, burst, now);
    } else if (!wait && c->tenant_rate > 0) {
        /* The default share: the bucket is drained by every request, but an
         * empty one refuses only while another tenant is active, so a tenant
         * alone is never throttled, and one that was flooding is held to its
         * share as soon as someone else needs the server. */
        snprintf(k, sizeof k, "s:%s", r->key.tenant_id);
        int w = tn__rl_take_at(s->key_rl, k, c->tenant_rate, c->tenant_burst, now);
        if (w && contended) wait = w;
    }
    if (!wait) return 0;
    atomic_fetch_add(&s->rate_limited, 1);
    tn__req_fail(r, 429, "too many requests", wait);
    return 1;
}
