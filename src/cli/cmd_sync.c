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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    "usage: tenantry sync [--once] [--data DIR] [--config PATH]\n"
    "\n"
    "Mirrors every tenant's items and files to the remote: DynamoDB and S3 (the\n"
    "default, TENANTRY_REMOTE=aws) or a directory (TENANTRY_REMOTE=dir:/path, e.g. a\n"
    "NAS or a removable disk, same layout and guarantees).  With --once, drains\n"
    "the outbox and exits (non-zero when anything failed); otherwise runs until\n"
    "interrupted, every TENANTRY_SYNC_INTERVAL seconds (default 60).\n"
    "\n"
    "Environment: AWS_REGION, AWS_ENDPOINT_URL[_DYNAMODB|_S3|_STS], AWS_ACCESS_KEY_ID,\n"
    "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE,\n"
    "AWS_ROLE_ARN (or TENANTRY_AWS_ROLE_ARN), TENANTRY_AWS_EXTERNAL_ID,\n"
    "TENANTRY_DYNAMODB_TABLE (default tenantry), TENANTRY_ENV_PREFIX, TENANTRY_S3_BUCKET,\n"
    "TENANTRY_SYNC_BANDWIDTH (bytes/s), TENANTRY_SYNC_EARLY_ROWS, TENANTRY_SYNC_ATTEMPTS,\n"
    "TENANTRY_SYNC_BACKOFF_MS, TENANTRY_SYNC_MULTIPART_MB (default 16), TENANTRY_SYNC_PART_MB\n"
    "(default 8), TENANTRY_SYNC_TRANSACT=1 (TransactWriteItems instead of parallel PutItem),\n"
    "TENANTRY_TOMBSTONE_TTL (seconds).  Each may also be set in DIR/tenantry.conf (or\n"
    "--config PATH; see README, Configuration); the environment beats the file.";

int tn__cmd_sync(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
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
    if (tn_sync_config_from_env(&cfg) != 0) return tn__cli_usage("a TENANTRY_SYNC_* variable is not a number");
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
