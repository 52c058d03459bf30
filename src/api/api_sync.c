/*
 * api_sync.c - the sync engine's numbers: GET /v1/sync/status (the caller's
 * tenant only, without its id) and GET /v1/admin/sync (every tenant); and
 * POST /v1/admin/sync/run, a pass of the daemon's engine on demand (what
 * `tenantry sync --once` asks for when the daemon holds the sync lock).
 *
 * The run's answer is 200 with JSON lines (application/x-ndjson), written
 * while the pass goes on:
 *   {"progress":{"items":N,"files":N,"bytes":N,"conflicts":N,"dead_letters":N,
 *                "pending":N}}                      about every second, changed
 *   {"ok":B,"items":N,"files":N,"bytes":N,"parts":N,"conflicts":N,
 *    "dead_letters":N,"pending":N,"pulled":N,"pull_read":N,"throttled":N,
 *    "error":null|"..."}                               last, once
 * "ok" is as for `sync --once`: the pass ended without error and moved
 * nothing to the dead letters.  409 when the daemon runs no engine.
 */
#include "clock.h"
#include "engine.h"
#include "handlers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Answers with tn_sync_status_json(st, tenant_id) (NULL: the admin view). */
static void sync_json(tn_store *st, const char *tenant_id, tn__resp *out) {
    char *text = NULL;
    int rc = tn_sync_status_json(st, tenant_id, &text);
    cJSON *j = rc == TN_OK ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) {
        tn__resp_code(out, rc == TN_OK ? TN_ERROR : rc);
        return;
    }
    tn__resp_json(out, 200, j);
}

/* The tenant's own sync numbers (sync/status.c builds them from that
 * tenant's row alone, without its id). */
void tn__api_sync_status(tn__req *r, tn__resp *out) {
    sync_json(r->srv->st, r->key.tenant_id, out);
}

/* GET /v1/admin/sync: every tenant's backlog, failures and last errors. */
void tn__api_admin_sync(tn__req *r, tn__resp *out) {
    sync_json(r->srv->st, NULL, out);
}

/* ---- POST /v1/admin/sync/run ---------------------------------------------------- */

typedef struct run_job {
    tn__srv *srv;
    tn_sync *engine;
    tn__stream *out;
} run_job;

static void line(tn__stream *out, tn__sbuf *b) {
    tn__sb_add(b, "\n", 1);
    if (!b->failed) tn__stream_write(out, b->p, b->len);
    tn__sb_free(b);
}

static void progress_line(tn__stream *out, const tn_sync_stats *s) {
    tn__sbuf b = {0};
    tn__sb_fmt(&b, "{\"progress\":{\"items\":%lld,\"files\":%lld,\"bytes\":%lld,"
                   "\"conflicts\":%lld,\"dead_letters\":%lld,\"pending\":%lld}}",
               (long long)s->items, (long long)s->files, (long long)s->bytes,
               (long long)s->conflicts, (long long)s->dead, (long long)s->pending);
    line(out, &b);
}

static void result_line(tn__stream *out, const tn_sync_stats *s, int rc) {
    tn__sbuf b = {0};
    int failed = rc != TN_OK || s->error != 0;
    tn__sb_fmt(&b, "{\"ok\":%s,\"items\":%lld,\"files\":%lld,\"bytes\":%lld,\"parts\":%lld,"
                   "\"conflicts\":%lld,\"dead_letters\":%lld,\"pending\":%lld,\"pulled\":%lld,"
                   "\"pull_read\":%lld,\"throttled\":%lld,\"error\":",
               !failed && s->dead == 0 ? "true" : "false", (long long)s->items,
               (long long)s->files, (long long)s->bytes, (long long)s->parts,
               (long long)s->conflicts, (long long)s->dead, (long long)s->pending,
               (long long)s->pulled, (long long)s->pull_read, (long long)s->throttled);
    if (rc == TN_BUSY) tn__sb_json_str(&b, "the daemon is stopping");
    else if (failed) tn__sb_json_str(&b, s->what[0] ? s->what : tn_strerror(s->error));
    else tn__sb_str(&b, "null");
    tn__sb_add(&b, "}", 1);
    line(out, &b);
}

static void *run_job_main(void *arg) {
    run_job *j = arg;
    uint64_t ticket = tn_sync_run_request(j->engine);
    tn_sync_stats st, shown;
    memset(&shown, 0, sizeof shown);
    int64_t last_line = tn__mono_ms();
    int rc;
    for (;;) {
        rc = tn_sync_run_wait(j->engine, ticket, 1000, &st);
        if (rc != TN_TIMEOUT) break;
        pthread_mutex_lock(&j->srv->jobs_mu);
        int stopping = j->srv->stopping;
        pthread_mutex_unlock(&j->srv->jobs_mu);
        if (stopping) {
            rc = TN_BUSY;
            break;
        }
        /* A line when something moved, and at least every 5 s (the client
         * knows the daemon is alive; a client that left is noticed). */
        if (memcmp(&st, &shown, sizeof st) != 0 || tn__mono_ms() - last_line >= 5000) {
            progress_line(j->out, &st);
            shown = st;
            last_line = tn__mono_ms();
        }
        if (tn__stream_gone(j->out)) break; /* the pass goes on without a listener */
    }
    if (rc != TN_TIMEOUT) result_line(j->out, &st, rc);
    tn__stream_end(j->out);
    tn__srv *srv = j->srv;
    free(j);
    pthread_mutex_lock(&srv->jobs_mu);
    srv->jobs--;
    pthread_cond_broadcast(&srv->jobs_cv);
    pthread_mutex_unlock(&srv->jobs_mu);
    return NULL;
}

void tn__api_sync_run(tn__req *r, tn__resp *out) {
    tn__srv *srv = r->srv;
    run_job *j = calloc(1, sizeof *j);
    tn__stream *s = j ? tn__stream_new() : NULL;
    if (!s) {
        free(j);
        tn__resp_code(out, TN_NOMEM);
        return;
    }
    j->srv = srv;
    j->out = s;
    pthread_mutex_lock(&srv->jobs_mu);
    j->engine = srv->stopping ? NULL : srv->sync;
    if (j->engine) srv->jobs++;
    pthread_mutex_unlock(&srv->jobs_mu);
    pthread_t th;
    pthread_attr_t at;
    int started = 0;
    if (j->engine && pthread_attr_init(&at) == 0) {
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&th, &at, run_job_main, j) == 0;
        pthread_attr_destroy(&at);
    }
    if (!started) {
        int had_engine = j->engine != NULL;
        if (had_engine) {
            pthread_mutex_lock(&srv->jobs_mu);
            srv->jobs--;
            pthread_cond_broadcast(&srv->jobs_cv);
            pthread_mutex_unlock(&srv->jobs_mu);
        }
        tn__stream_release(s); /* both sides: nothing was started */
        tn__stream_end(s);
        free(j);
        if (had_engine) tn__resp_code(out, TN_NOMEM);
        else tn__resp_error(out, 409, "sync is off");
        return;
    }
    tn__resp_empty(out, 200);
    out->ctype = "application/x-ndjson";
    out->stream = s;
}
