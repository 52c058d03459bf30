/*
 * cmd_sync.c - the sync commands: `sync` (one pass with --once, else the
 * engine in the foreground until SIGINT/SIGTERM), `remote init` (first set-up
 * of the DynamoDB table and the bucket check) and `sync-status`.
 *
 * Output: `sync --once` draws a progress bar on stderr when stderr is a TTY
 * and always ends with one JSON summary line on stdout; it exits non-zero when
 * anything failed (a persistent remote error, or changes moved to the
 * dead-letter table) and says what on stderr.  Never prints credentials.
 */
#include "cli.h"
#include "engine.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct bar {
    double t0;
    int drawn;
} bar;

static void draw(const tn_sync_stats *s, void *arg) {
    bar *b = arg;
    double el = now_s() - b->t0;
    int64_t done = s->items + s->files + s->conflicts + s->dead;
    int64_t total = done + s->pending;
    if (total < 1) total = 1;
    double rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 ? (double)s->pending / rate : 0;
    int w = (int)(30 * done / total);
    char line[31];
    for (int i = 0; i < 30; i++) line[i] = i < w ? '#' : '.';
    line[30] = '\0';
    fprintf(stderr, "\r[%s] %lld items %lld files %.1f MiB  %.0f/s  ETA %.0fs ", line,
            (long long)s->items, (long long)s->files, (double)s->bytes / 1048576.0, rate, eta);
    b->drawn = 1;
}

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) {
    (void)sig;
    got_signal = 1;
}

static const char SYNC_HELP[] =
    "usage: tenantry sync [--once [--admin-key KEY]] [--data DIR] [--config PATH]\n"
    "\n"
    "Mirrors every tenant's items and files to the remote: DynamoDB and S3 (the\n"
    "default, TENANTRY_REMOTE=aws) or a directory (TENANTRY_REMOTE=dir:/path, e.g. a\n"
    "NAS or a removable disk, same layout and guarantees).  With --once, drains\n"
    "the outbox and exits (non-zero when anything failed); otherwise runs until\n"
    "interrupted, every TENANTRY_SYNC_INTERVAL seconds (default 60).\n"
    "\n"
    "When `tenantry serve` runs on this data directory with sync on, its engine holds\n"
    "the store's sync lock: `sync --once` then asks the daemon for a pass now (POST\n"
    "/v1/admin/sync/run at the address in DIR/serve.addr), shows its progress and\n"
    "exits with its result.  Over TCP that takes the admin key (--admin-key KEY, or\n"
    "TENANTRY_ADMIN_KEY, better: a flag shows in the process list); on a unix\n"
    "socket (serve --listen unix:/path) none.\n"
    "\n"
    "Environment: AWS_REGION, AWS_ENDPOINT_URL[_DYNAMODB|_S3|_STS], AWS_ACCESS_KEY_ID,\n"
    "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE,\n"
    "AWS_ROLE_ARN (or TENANTRY_AWS_ROLE_ARN), TENANTRY_AWS_EXTERNAL_ID,\n"
    "TENANTRY_DYNAMODB_TABLE (default tenantry), TENANTRY_ENV_PREFIX, TENANTRY_S3_BUCKET,\n"
    "TENANTRY_SYNC_BANDWIDTH (bytes/s), TENANTRY_SYNC_EARLY_ROWS, TENANTRY_SYNC_CONNECTIONS\n"
    "(rows in flight, default 32), TENANTRY_SYNC_ATTEMPTS,\n"
    "TENANTRY_SYNC_BACKOFF_MS, TENANTRY_SYNC_MULTIPART_MB (default 16), TENANTRY_SYNC_PART_MB\n"
    "(default 8), TENANTRY_SYNC_TRANSACT=1 (TransactWriteItems instead of parallel PutItem),\n"
    "TENANTRY_TOMBSTONE_TTL (seconds).  Each may also be set in DIR/tenantry.conf (or\n"
    "--config PATH; see README, Configuration); the environment beats the file.";

/* ---- handing the run to the daemon ---------------------------------------------- */

typedef struct daemon_run {
    bar *b;
    int draw;
    char line[8192];
    size_t n;
    int overflow;
    cJSON *result; /* the last line */
} daemon_run;

static int64_t num(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static void on_line(daemon_run *d, const char *text) {
    cJSON *j = cJSON_Parse(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "progress");
    if (p) {
        if (d->draw) {
            tn_sync_stats s;
            memset(&s, 0, sizeof s);
            s.items = num(p, "items");
            s.files = num(p, "files");
            s.bytes = num(p, "bytes");
            s.conflicts = num(p, "conflicts");
            s.dead = num(p, "dead_letters");
            s.pending = num(p, "pending");
            draw(&s, d->b);
        }
        cJSON_Delete(j);
        return;
    }
    cJSON_Delete(d->result);
    d->result = j;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg) {
    daemon_run *d = arg;
    size_t n = size * nmemb;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (d->n + 1 < sizeof d->line) d->line[d->n++] = p[i];
            else d->overflow = 1;
            continue;
        }
        d->line[d->n] = '\0';
        if (!d->overflow) on_line(d, d->line);
        d->n = 0;
        d->overflow = 0;
    }
    return n;
}

/* Reads DIR/serve.addr into addr; 0, or -1 when absent or unreadable. */
static int serve_addr(tn_store *st, char *addr, size_t n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/serve.addr", tn_store_dir(st));
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fgets(addr, (int)n, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    addr[strcspn(addr, "\r\n")] = '\0';
    return addr[0] ? 0 : -1;
}

/* POST /v1/admin/sync/run on the daemon at addr; the last line's object in
 * *result.  EX_OK, or an exit code after a message. */
static int run_on_daemon(const char *addr, const char *admin_key, bar *b, cJSON **result) {
    *result = NULL;
    int is_unix = strncmp(addr, "unix:", 5) == 0;
    if (!is_unix && (!admin_key || !*admin_key))
        return tn__cli_error("sync", "the running daemon holds the sync lock; asking it for a "
                             "pass takes the admin key (--admin-key or TENANTRY_ADMIN_KEY)",
                             TN_DENIED);
    char url[400];
    snprintf(url, sizeof url, "http://%s/v1/admin/sync/run", is_unix ? "localhost" : addr);
    CURL *c = curl_easy_init();
    if (!c) return tn__cli_error("sync", NULL, TN_NOMEM);
    struct curl_slist *h = NULL;
    char hdr[160];
    if (!is_unix) {
        snprintf(hdr, sizeof hdr, "X-Admin-Key: %s", admin_key);
        h = curl_slist_append(h, hdr);
    }
    daemon_run d;
    memset(&d, 0, sizeof d);
    d.b = b;
    d.draw = isatty(2);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (is_unix) curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, addr + 5);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    /* The daemon writes a line at least every 5 s while its pass runs. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    sodium_memzero(hdr, sizeof hdr);
    if (d.draw && b->drawn) fputc('\n', stderr);
    char msg[512];
    int ex = EX_OK;
    if (cc != CURLE_OK) {
        snprintf(msg, sizeof msg, "the sync lock is held, but the daemon at %s (serve.addr) does "
                 "not answer: %s", addr, curl_easy_strerror(cc));
        ex = tn__cli_error("sync", msg, TN_NETWORK);
    } else if (status == 401 || status == 429) {
        ex = tn__cli_error("sync", "the running daemon refused the admin key", TN_DENIED);
    } else if (status == 409) {
        ex = tn__cli_error("sync", "the sync lock is held, but the daemon at serve.addr runs no "
                           "sync engine (another sync --once?)", TN_BUSY);
    } else if (status != 200 || !d.result || !cJSON_GetObjectItemCaseSensitive(d.result, "ok")) {
        snprintf(msg, sizeof msg, "the daemon at %s gave no result (HTTP %ld)", addr, status);
        ex = tn__cli_error("sync", msg, TN_ERROR);
    }
    if (ex != EX_OK) {
        cJSON_Delete(d.result);
        return ex;
    }
    *result = d.result;
    return EX_OK;
}

/* sync --once when the daemon holds the lock: its pass, reported as ours. */
static int once_on_daemon(tn_store *st, const char *admin_key, bar *b) {
    char addr[300];
    if (serve_addr(st, addr, sizeof addr) != 0) return -1;
    fprintf(stderr, "tenantry: sync: the running daemon (%s) holds the sync lock; asking it for "
                    "a pass\n", addr);
    cJSON *r;
    int ex = run_on_daemon(addr, admin_key, b, &r);
    if (ex != EX_OK) return ex;
    double el = now_s() - b->t0;
    cJSON *j = cJSON_CreateObject();
    const char *keys[] = {"items", "files", "bytes", "parts", "conflicts", "dead_letters",
                          "pending", "pulled", "pull_read", "throttled"};
    cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
    cJSON_AddBoolToObject(j, "ok", cJSON_IsTrue(ok));
    char n[32];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        snprintf(n, sizeof n, "%lld", (long long)num(r, keys[i]));
        cJSON_AddItemToObject(j, keys[i], cJSON_CreateRaw(n));
    }
    cJSON_AddItemToObject(j, "tombstones_purged", cJSON_CreateRaw("0")); /* the daemon's, hourly */
    cJSON_AddNumberToObject(j, "seconds", (double)(long long)(el * 1000) / 1000.0);
    const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "error"));
    if (err) cJSON_AddStringToObject(j, "error", err);
    else cJSON_AddNullToObject(j, "error");
    int64_t conflicts = num(r, "conflicts"), dead = num(r, "dead_letters");
    int good = cJSON_IsTrue(ok);
    char what[300];
    snprintf(what, sizeof what, "%s", err ? err : "");
    cJSON_Delete(r);
    tn__cli_print_json(j);
    if (conflicts)
        fprintf(stderr, "tenantry: sync: %lld local change(s) lost to newer remote versions "
                        "(see sync-status)\n", (long long)conflicts);
    if (good) return EX_OK;
    if (what[0]) return tn__cli_error("sync", what, TN_ERROR);
    fprintf(stderr, "tenantry: sync: %lld change(s) failed permanently and were moved to the "
                    "dead-letter table (see sync-status)\n", (long long)dead);
    return EX_FAIL;
}

/* Takes --admin-key KEY out of argv (the shared parser does not know it). */
static int take_admin_key(int *argc, char **argv, const char **key) {
    int n = 0;
    for (int i = 0; i < *argc; i++) {
        if (i >= 2 && strcmp(argv[i], "--admin-key") == 0) {
            if (i + 1 >= *argc) return tn__cli_usage("--admin-key takes the admin key");
            *key = argv[++i];
            continue;
        }
        argv[n++] = argv[i];
    }
    argv[n] = NULL;
    *argc = n;
    return EX_OK;
}

int tn__cmd_sync(int argc, char **argv) {
    tn__cli_opts o;
    const char *admin_key = getenv("TENANTRY_ADMIN_KEY");
    int ex = take_admin_key(&argc, argv, &admin_key);
    if (ex != EX_OK) return ex;
    ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts(SYNC_HELP);
        return EX_OK;
    }
    if (o.nargs) return tn__cli_usage("sync takes no arguments");
    tn__config conf; /* its values land in the environment read below */
    if ((ex = tn__cli_config(&o, &conf)) != EX_OK) return ex;
    tn_sync_config cfg;
    tn_sync_config_init(&cfg);
    if (tn_sync_config_from_env(&cfg) != 0) return tn__cli_usage("a TENANTRY_SYNC_* variable is not a number in its range");
    tn_store *st;
    if ((ex = tn__cli_open(&o, 0, &st)) != EX_OK) return ex;
    if (!o.once) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        tn_sync *e;
        int rc = tn_sync_start(st, &cfg, &e);
        if (rc != TN_OK) {
            tn_close(st);
            return tn__cli_error("sync", NULL, rc);
        }
        while (!got_signal) pause();
        tn_sync_stop(e);
        tn_close(st);
        return EX_OK;
    }
    bar b = {now_s(), 0};
    if (isatty(2)) {
        cfg.progress = draw;
        cfg.progress_arg = &b;
    }
    tn_sync_stats s;
    int rc = tn_sync_run_once(st, &cfg, &s);
    if (b.drawn) fputc('\n', stderr);
    /* Another engine holds the lock: when it is a running daemon's, ask it. */
    if (rc == TN_BUSY && s.items == 0 && s.files == 0) {
        ex = once_on_daemon(st, admin_key, &b);
        if (ex >= 0) {
            tn_close(st);
            return ex;
        }
    }
    /* Tombstones the remote now holds, past their retention, go locally. */
    int64_t purged = 0;
    if (rc == TN_OK &&
        tn_tombstones_purge(st, cfg.tombstone_ttl_s > 0 ? cfg.tombstone_ttl_s : 1, &purged) != TN_OK)
        fprintf(stderr, "tenantry: sync: cannot purge old tombstones: %s\n", tn_errmsg(st));
    double el = now_s() - b.t0;
    cJSON *j = cJSON_CreateObject();
    char num[32];
#define RAW(name, v)                                                     \
    snprintf(num, sizeof num, "%lld", (long long)(v));                  \
    cJSON_AddItemToObject(j, name, cJSON_CreateRaw(num))
    cJSON_AddBoolToObject(j, "ok", rc == TN_OK && s.dead == 0);
    RAW("items", s.items);
    RAW("files", s.files);
    RAW("bytes", s.bytes);
    RAW("parts", s.parts);
    RAW("conflicts", s.conflicts);
    RAW("dead_letters", s.dead);
    RAW("pending", s.pending);
    RAW("pulled", s.pulled);
    RAW("pull_read", s.pull_read);
    RAW("throttled", s.throttled);
    RAW("tombstones_purged", purged);
#undef RAW
    cJSON_AddNumberToObject(j, "seconds", (double)(long long)(el * 1000) / 1000.0);
    if (rc != TN_OK) cJSON_AddStringToObject(j, "error", s.what[0] ? s.what : tn_strerror(rc));
    else cJSON_AddNullToObject(j, "error");
    tn__cli_print_json(j);
    if (s.conflicts)
        fprintf(stderr, "tenantry: sync: %lld local change(s) lost to newer remote versions "
                        "(see sync-status)\n", (long long)s.conflicts);
    if (rc != TN_OK) ex = tn__cli_error("sync", s.what[0] ? s.what : NULL, rc);
    if (rc != TN_OK && ex == EX_OK) ex = EX_FAIL;
    if (rc == TN_OK && s.dead) {
        fprintf(stderr, "tenantry: sync: %lld change(s) failed permanently and were moved to the "
                        "dead-letter table (see sync-status)\n", (long long)s.dead);
        ex = EX_FAIL;
    }
    tn_close(st);
    return ex;
}

int tn__cmd_remote(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[2], "template") == 0) return tn__cmd_remote_template(argc, argv);
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts("usage: tenantry remote init\n"
             "       tenantry remote template [options]   (see remote template --help)\n"
             "\n"
             "Creates the DynamoDB table (on-demand capacity, TTL on expires_at) when it is\n"
             "missing and checks that the S3 bucket is reachable.  Same environment as sync.\n"
             "`remote template` prints a CloudFormation template for the AWS side.");
        return EX_OK;
    }
    if (o.nargs != 1 || strcmp(o.args[0], "init") != 0) return tn__cli_usage("remote takes: init or template");
    tn__config conf;
    if ((ex = tn__cli_config(&o, &conf)) != EX_OK) return ex;
    const char *what = NULL;
    int rc = tn_sync_remote_init(NULL, &what);
    if (rc != TN_OK) return tn__cli_error("remote init", what, rc);
    puts("remote ready");
    return EX_OK;
}

int tn__cmd_sync_status(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts("usage: tenantry sync-status [--tenant NAME] [--json] [--data DIR]\n"
             "\n"
             "Per tenant: pending outbox rows and bytes, dead letters (failed), conflict\n"
             "losses, last success, last error and current backoff.");
        return EX_OK;
    }
    tn_store *st;
    if ((ex = tn__cli_open(&o, 0, &st)) != EX_OK) return ex;
    tn_tenant t;
    int rc = TN_OK;
    if (o.tenant) rc = tn_tenant_find(st, o.tenant, &t);
    char *json = NULL;
    if (rc == TN_OK) rc = tn_sync_status_json(st, o.tenant ? t.id : NULL, &json);
    if (rc != TN_OK) {
        ex = tn__cli_error("sync-status", rc == TN_NOTFOUND ? "no such tenant" : tn_errmsg(st), rc);
    } else if (o.json || o.tenant) {
        puts(json);
    } else {
        cJSON *j = cJSON_Parse(json);
        cJSON *list = cJSON_GetObjectItem(j, "tenants"), *t2;
        printf("%-24s %9s %9s %9s %-24s %s\n", "TENANT", "PENDING", "FAILED", "CONFLICTS",
               "LAST SUCCESS", "LAST ERROR");
        cJSON_ArrayForEach(t2, list) {
            const char *ls = cJSON_GetStringValue(cJSON_GetObjectItem(t2, "last_success"));
            const char *le = cJSON_GetStringValue(cJSON_GetObjectItem(t2, "last_error"));
            printf("%-24s %9.0f %9.0f %9.0f %-24s %s\n",
                   cJSON_GetStringValue(cJSON_GetObjectItem(t2, "name")),
                   cJSON_GetNumberValue(cJSON_GetObjectItem(t2, "pending")),
                   cJSON_GetNumberValue(cJSON_GetObjectItem(t2, "failed")),
                   cJSON_GetNumberValue(cJSON_GetObjectItem(t2, "conflicts")), ls ? ls : "-",
                   le ? le : "-");
        }
        cJSON_Delete(j);
    }
    free(json);
    tn_close(st);
    return ex;
}
