/*
 * api_health.c - GET /healthz (no authentication) and GET /metrics (the
 * admin, or any caller on the unix socket): request counters in the
 * Prometheus text format.
 */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tn__health(tn__req *r, tn__resp *out) {
    (void)r;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    tn__resp_json(out, 200, j);
}

void tn__metrics(tn__req *r, tn__resp *out) {
    tn__srv *s = r->srv;
    char buf[2048];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "# HELP tenantry_http_requests_total Requests answered, by status class.\n"
                          "# TYPE tenantry_http_requests_total counter\n");
    for (int c = 1; c <= 5; c++)
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "tenantry_http_requests_total{class=\"%dxx\"} %lld\n", c,
                              (long long)atomic_load(&s->by_class[c]));
    n += (size_t)snprintf(
        buf + n, sizeof buf - n,
        "# HELP tenantry_http_auth_failures_total Failed authentications.\n"
        "# TYPE tenantry_http_auth_failures_total counter\n"
        "tenantry_http_auth_failures_total %lld\n"
        "# HELP tenantry_http_rate_limited_total Requests refused by a rate limit.\n"
        "# TYPE tenantry_http_rate_limited_total counter\n"
        "tenantry_http_rate_limited_total %lld\n"
        "# HELP tenantry_http_in_flight Requests being processed.\n"
        "# TYPE tenantry_http_in_flight gauge\n"
        "tenantry_http_in_flight %lld\n",
        (long long)atomic_load(&s->auth_failures), (long long)atomic_load(&s->rate_limited),
        (long long)atomic_load(&s->in_flight));
    tn__resp_reset(out);
    out->body = strdup(buf);
    out->len = out->body ? strlen(out->body) : 0;
    out->status = out->body ? 200 : 500;
    out->ctype = "text/plain; version=0.0.4";
}
