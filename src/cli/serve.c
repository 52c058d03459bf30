/*
 * serve.c - the CLI commands of the HTTP layer:
 *
 *   tenantry serve [--listen HOST:PORT|unix:/path] [--allow-remote] [tuning]
 *   tenantry key create|list|rotate|revoke --tenant NAME ...
 *   tenantry admin-key rotate
 *
 * `serve` runs until SIGINT or SIGTERM, then stops the HTTP server (in-flight
 * requests finish) and closes the store.  Background work that belongs to
 * the daemon (the sync engine) starts and stops at the marked places in
 * cmd_serve.
 */
#include "clock.h"
#include "admin.h"
#include "auth.h"
#include "cli.h"
#include "engine.h"
#include "http.h"
#include "notify.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <sodium.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- serve's own options ---------------------------------------------------- */

typedef struct num_opt {
    const char *name;
    double min, max;
    double *d; /* one of d / i / l is set */
    int *i;
    int64_t *l;
} num_opt;

/* Takes serve's tuning options out of argv (into cfg) so the shared parser
 * sees only the common ones.  Returns 0, or 2 after a usage message. */
static int no_sync; /* --no-sync */
static char *cors_list; /* --cors-origin, joined with commas */

/* --cors-origin may be given more than once; the lists add up. */
static int add_cors(const char *v) {
    size_t old = cors_list ? strlen(cors_list) : 0;
    char *n = realloc(cors_list, old + strlen(v) + 2);
    if (!n) return -1;
    if (old) n[old++] = ',';
    strcpy(n + old, v);
    cors_list = n;
    return 0;
}

static int take_tuning(int argc, char **argv, tn__http_config *cfg, int *outc, char **outv) {
    num_opt opts[] = {
        {"--rate", 0.001, 1e6, &cfg->rate, NULL, NULL},
        {"--burst", 1, 1e6, &cfg->burst, NULL, NULL},
        {"--tenant-rate", 0, 1e6, &cfg->tenant_rate, NULL, NULL},
        {"--tenant-burst", 1, 1e6, &cfg->tenant_burst, NULL, NULL},
        {"--auth-fail-rate", 0.001, 1e6, &cfg->auth_fail_rate, NULL, NULL},
        {"--auth-fail-burst", 1, 1e6, &cfg->auth_fail_burst, NULL, NULL},
        {"--threads", 1, 256, NULL, &cfg->threads, NULL},
        {"--max-connections", 1, 65536, NULL, &cfg->max_connections, NULL},
        {"--timeout", 1, 3600, NULL, &cfg->timeout_s, NULL},
        {"--token-ttl", 1, 86400 * 7, NULL, &cfg->token_ttl, NULL},
        {"--max-item-bytes", 64, 16 * 1024 * 1024, NULL, NULL, &cfg->max_item_bytes},
        {"--max-file-bytes", 1, 1024.0 * 1024 * 1024 * 1024, NULL, NULL, &cfg->max_file_bytes},
    };
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && strcmp(argv[i], "--quiet") == 0) {
            cfg->quiet = 1;
            continue;
        }
        if (i >= 2 && strcmp(argv[i], "--no-sync") == 0) {
            no_sync = 1;
            continue;
        }
        if (i >= 2 && strcmp(argv[i], "--cors-credentials") == 0) {
            cfg->cors_credentials = 1;
            continue;
        }
        if (i >= 2 && strcmp(argv[i], "--cors-origin") == 0) {
            if (i + 1 >= argc || !*argv[i + 1]) {
                fprintf(stderr, "tenantry: --cors-origin takes an origin or a comma-separated "
                        "list (see --help)\n");
                return 2;
            }
            if (add_cors(argv[++i]) != 0) return 1;
            continue;
        }
        num_opt *o = NULL;
        for (size_t k = 0; i >= 2 && k < sizeof opts / sizeof opts[0]; k++)
            if (strcmp(argv[i], opts[k].name) == 0) o = &opts[k];
        if (!o) {
            outv[n++] = argv[i];
            continue;
        }
        char *end;
        double v = i + 1 < argc ? strtod(argv[i + 1], &end) : 0;
        if (i + 1 >= argc || *end || !(v >= o->min && v <= o->max) ||
            ((o->i || o->l) && v != (double)(int64_t)v)) {
            fprintf(stderr, "tenantry: %s takes a number from %g to %g (see --help)\n", o->name,
                    o->min, o->max);
            return 2;
        }
        if (o->d) *o->d = v;
        if (o->i) *o->i = (int)v;
        if (o->l) *o->l = (int64_t)v;
        i++;
    }
    outv[n] = NULL;
    *outc = n;
    return 0;
}

/* The configuration file's serve settings, over the built-in defaults (the
 * flags are applied after them). */
static void apply_file(const tn__config *f, tn__http_config *cfg) {
    if (f->listen[0]) cfg->listen = f->listen;
    if (f->threads > 0) cfg->threads = (int)f->threads;
    if (f->rate > 0) cfg->rate = f->rate;
    if (f->burst > 0) cfg->burst = f->burst;
    if (f->auth_fail_rate > 0) cfg->auth_fail_rate = f->auth_fail_rate;
    if (f->auth_fail_burst > 0) cfg->auth_fail_burst = f->auth_fail_burst;
    if (f->tenant_rate >= 0) cfg->tenant_rate = f->tenant_rate; /* 0 turns the share off */
    if (f->tenant_burst > 0) cfg->tenant_burst = f->tenant_burst;
}

/* A daemon must not start serving a damaged file: SQLite reads pages only
 * when asked, so a store whose middle pages are garbage opens fine and would
 * fail request by request.  Nor a store without an admin key (an emptied
 * database file opens as a new, empty store). */
static int startup_check(tn_store *st, const char *dir) {
    char msg[512];
    if (tn_check_quick(st) != TN_OK) {
        snprintf(msg, sizeof msg, "the database in %s is damaged; run `tenantry check`", dir);
        return tn__cli_error("serve", msg, TN_CORRUPT);
    }
    if (!tn_admin_key_exists(st)) {
        snprintf(msg, sizeof msg, "the store in %s has no admin key (create one with "
                 "`tenantry init`)", dir);
        return tn__cli_error("serve", msg, TN_NOTFOUND);
    }
    return 0;
}

static const char serve_help[] =
    "usage: tenantry serve [--data DIR] [--listen HOST:PORT | --listen unix:/path]\n"
    "                      [--allow-remote] [--quiet] [--no-sync] [--config PATH]\n"
    "                      [tuning options]\n"
    "\n"
    "Serves the local HTTP API (see docs/openapi.yaml) until SIGINT or SIGTERM.\n"
    "The default address is 127.0.0.1:8787.  A non-loopback address is refused\n"
    "unless --allow-remote is given; a unix socket is created with mode 0660.\n"
    "Logs are JSON lines on stderr (--quiet: errors only).\n"
    "When TENANTRY_S3_BUCKET (or TENANTRY_REMOTE=dir:PATH) is set, the sync engine\n"
    "runs in the background and mirrors every change to the remote (see\n"
    "`tenantry sync --help`);\n"
    "--no-sync keeps it off.\n"
    "Settings may also come from DIR/tenantry.conf (or --config PATH; see README,\n"
    "Configuration); flags beat the environment, which beats the file.\n"
    "\n"
    "Tuning (defaults in brackets):\n"
    "  --tenant-rate N      a tenant's share while another tenant is active too,\n"
    "                       in requests per second [2000]; 0: none\n"
    "  --tenant-burst N     requests above that share first [4000]\n"
    "                       A tenant alone is never throttled.  2000/s is a tenth of\n"
    "                       the point reads and under half the durable writes a\n"
    "                       2-CPU appliance serves (about 20,000 and 4,400 a second\n"
    "                       measured), so a flooding tenant leaves the others most\n"
    "                       of the server, while a program sending one request at a\n"
    "                       time (about 400 writes a second, each waits for its\n"
    "                       fsync) stays well within it.  A tenant's own rate\n"
    "                       (`tenant set --rate`) replaces the share and always applies.\n"
    "  --rate N             requests per second per API key, always [none]\n"
    "  --burst N            burst per API key [2 x --rate]\n"
    "  --auth-fail-rate N   failed authentications per second, per credential\n"
    "                       guessed at (one key id, the admin key, or all\n"
    "                       anonymous and made-up ones together) [0.2]\n"
    "  --auth-fail-burst N  failures before 429s start, per credential [20];\n"
    "                       a valid credential is never refused for failures\n"
    "  --threads N          worker threads [four per CPU, 4 to 32]\n"
    "  --max-connections N  open connections [1024]; once three quarters are\n"
    "                       open, connections without a request in progress\n"
    "                       (headers unfinished, or idle) are closed until half\n"
    "                       are free, the address holding most first, oldest first\n"
    "  --timeout SECONDS    idle timeout and header deadline; after it a request\n"
    "                       body must average 1 KiB/s [30]\n"
    "  --token-ttl SECONDS  lifetime of tokens from POST /v1/auth [3600]\n"
    "  --max-item-bytes N   JSON request body limit [65536]\n"
    "  --max-file-bytes N   file upload limit [1073741824]\n"
    "\n"
    "Browser apps (CORS; default: no origin allowed):\n"
    "  --cors-origin LIST   allowed origins, scheme://host[:port], comma-separated,\n"
    "                       repeatable; or * alone (TENANTRY_CORS_ORIGINS)\n"
    "  --cors-credentials   send Access-Control-Allow-Credentials (refuses *)";

static void purge_tombstones(tn_store *st, int64_t ttl_s) {
    int64_t n = 0;
    char msg[160];
    if (tn_tombstones_purge(st, ttl_s, &n) != TN_OK) {
        tn__log("error", "cannot purge old tombstones (will retry in an hour)");
    } else if (n > 0) {
        snprintf(msg, sizeof msg, "purged %lld synced tombstones past retention", (long long)n);
        tn__log("info", msg);
    }
}

/* <data>/serve.addr: where this daemon listens ("127.0.0.1:8787" or
 * "unix:/path" and a newline), so that `sync --once` can hand its run to the
 * daemon that holds the sync lock.  Written at start (temp file, fsync,
 * rename), removed at stop; one left by a crash names an address nobody
 * answers on, which the reader reports. */
static void addr_path(tn_store *st, const char *suffix, char *buf, size_t n) {
    snprintf(buf, n, "%s/serve.addr%s", tn_store_dir(st), suffix);
}

static void addr_write(tn_store *st, tn__http *h) {
    char addr[300], tmp[4200], path[4200];
    if (tn__http_address(h, addr, sizeof addr) != 0) return;
    addr_path(st, ".tmp", tmp, sizeof tmp);
    addr_path(st, "", path, sizeof path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%s\n", addr) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f) ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        tn__log("warn", "cannot write serve.addr in the data directory (sync --once will not "
                        "find this daemon)");
    }
}

static int cmd_serve(int argc, char **argv) {
    tn__http_config cfg;
    tn__http_config_init(&cfg);
    char **av = calloc((size_t)argc + 1, sizeof *av);
    if (!av) return 1;
    int ac = 0, ex = take_tuning(argc, argv, &cfg, &ac, av);
    tn__cli_opts o;
    if (ex == 0) ex = tn__cli_parse(ac, av, 2, &o);
    free(av);
    if (ex != 0) return ex;
    if (o.help) {
        puts(serve_help);
        return 0;
    }
    if (o.nargs) return tn__cli_usage("serve takes no arguments");
    /* Precedence: flag > environment > file > default.  The data directory
     * (where the file is) comes from the flags, so the flags are taken once
     * more over the file's values. */
    tn__config conf;
    if ((ex = tn__cli_config(&o, &conf)) != 0) return ex;
    tn__http_config_init(&cfg);
    apply_file(&conf, &cfg);
    free(cors_list);
    cors_list = NULL;
    av = calloc((size_t)argc + 1, sizeof *av);
    if (!av || take_tuning(argc, argv, &cfg, &ac, av) != 0) {
        free(av);
        return 1;
    }
    free(av);
    const char *bucket = getenv("TENANTRY_S3_BUCKET"), *remote = getenv("TENANTRY_REMOTE");
    int want_sync = !no_sync && conf.sync != 0 &&
                    ((bucket && *bucket) || (remote && strncmp(remote, "dir:", 4) == 0));
    if (!no_sync && conf.sync == 1 && !want_sync)
        return tn__cli_usage("sync = on in the configuration file needs s3_bucket (or "
                             "TENANTRY_S3_BUCKET)");
    if (o.listen) cfg.listen = o.listen;
    cfg.allow_remote = o.allow_remote;
    cfg.cors_origins = cors_list ? cors_list : getenv("TENANTRY_CORS_ORIGINS");
    const char *cors_err;
    if (tn__cors_check(cfg.cors_origins, cfg.cors_credentials, &cors_err) != TN_OK)
        return tn__cli_usage(cors_err);

    /* Signals are taken synchronously by this thread; every thread started
     * from here on (HTTP workers, sync) inherits the blocked mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    tn_store *st;
    if ((ex = tn__cli_open(&o, 0, &st)) != 0) return ex;
    if ((ex = startup_check(st, o.data)) != 0) {
        tn_close(st);
        return ex;
    }
    if (tn__files_recover(st) != TN_OK) tn__log("error", "cannot tidy the files folder");
    tn__http *h;
    const char *err = NULL;
    int rc = tn__http_start(st, &cfg, &h, &err);
    if (rc != TN_OK) {
        ex = tn__cli_error("serve", err, rc);
        tn_close(st);
        return ex;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "listening on %s", cfg.listen);
    tn__log("info", msg);
    addr_write(st, h);

    /* The sync engine runs in the background when a bucket is configured
     * (TENANTRY_S3_BUCKET and the AWS variables, see README). */
    tn_sync *sync = NULL;
    int64_t tomb_ttl = 30 * 86400; /* the engine's default tombstone TTL */
    if (want_sync) {
        tn_sync_config sc;
        tn_sync_config_init(&sc);
        rc = tn_sync_config_from_env(&sc);
        if (rc == TN_OK) rc = tn_sync_start(st, &sc, &sync);
        if (sc.tombstone_ttl_s > 0) tomb_ttl = sc.tombstone_ttl_s;
        if (rc != TN_OK) {
            ex = tn__cli_error("serve", "cannot start the sync engine (check the "
                               "TENANTRY_* and AWS_* settings)", rc);
            tn__http_stop(h);
            tn_close(st);
            return ex;
        }
        snprintf(msg, sizeof msg, "sync engine started (every %lld s)",
                 (long long)(sc.interval_ms / 1000));
        tn__log("info", msg);
        tn__http_set_sync(h, sync); /* POST /v1/admin/sync/run, sync --once */
    } else {
        tn__log("info", no_sync          ? "sync off (--no-sync)"
                        : conf.sync == 0 ? "sync off (sync = off in the configuration file)"
                                         : "sync off (TENANTRY_S3_BUCKET not set)");
    }

    /* Ready: tell the service manager (Type=notify), when there is one. */
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=listening on %s", cfg.listen);
    if (tn__notify(msg) < 0) tn__log("error", "cannot notify the service manager");

    /* Wait for SIGINT/SIGTERM; every 10 s without a request, give the
     * SQLite page caches and free heap back to the system; every hour (and
     * now), remove synced tombstones past their retention. */
    int sig = -1;
    uint64_t seen = tn__http_requests(h);
    int trimmed = 0, ticks = 0;
    while (sig < 0) {
        if (ticks++ % 360 == 0) purge_tombstones(st, tomb_ttl);
        struct timespec tick = {10, 0};
        int got = sigtimedwait(&set, NULL, &tick);
        if (got == SIGINT || got == SIGTERM) {
            sig = got;
            break;
        }
        uint64_t now = tn__http_requests(h);
        if (now == seen && !trimmed) {
            tn_store_trim(st);
            trimmed = 1;
        } else if (now != seen) {
            trimmed = 0;
        }
        seen = now;
    }
    snprintf(msg, sizeof msg, "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    tn__log("info", msg);
    tn__notify("STOPPING=1\nSTATUS=shutting down");

    char path[4200];
    addr_path(st, "", path, sizeof path);
    unlink(path);
    /* The server first: its sync runs wait on the engine. */
    tn__http_stop(h);
    tn_sync_stop(sync);
    tn_close(st);
    tn__log("info", "stopped");
    return 0;
}

/* ---- key ------------------------------------------------------------------- */


/* Whole seconds from an option value: -1 when absent, -2 when bad. */
static int64_t opt_seconds(const char *v, int64_t min) {
    if (!v) return -1;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || !*v || n < min || n > 100LL * 365 * 86400) return -2;
    return n;
}

static void print_time(FILE *f, const char *label, int64_t ms) {
    if (!ms) {
        fprintf(f, "%s never\n", label);
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(f, "%s %s\n", label, buf);
}

static int print_key(const tn__key_info *k, void *arg) {
    cJSON *list = arg;
    char scopes[TN__SCOPES_TEXT_MAX];
    tn__scopes_format(k->scopes, scopes);
    const char *state = k->revoked_at ? "revoked"
                        : k->expires_at && k->expires_at <= tn__wall_ms() ? "expired" : "active";
    if (list) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "key_id", k->key_id);
        cJSON_AddStringToObject(j, "scopes", scopes);
        cJSON_AddStringToObject(j, "state", state);
        char b[24];
        snprintf(b, sizeof b, "%lld", (long long)k->created_at);
        cJSON_AddRawToObject(j, "created_at", b);
        snprintf(b, sizeof b, "%lld", (long long)k->expires_at);
        if (k->expires_at) cJSON_AddRawToObject(j, "expires_at", b);
        else cJSON_AddNullToObject(j, "expires_at");
        cJSON_AddItemToArray(list, j);
    } else {
        printf("%s  %-8s  %s\n", k->key_id, state, scopes);
    }
    return 0;
}

static const char key_help[] =
    "usage: tenantry key create --tenant NAME --scopes LIST [--expires-in SECONDS]\n"
    "       tenantry key list --tenant NAME [--json]\n"
    "       tenantry key rotate --tenant NAME KEY_ID [--overlap SECONDS]\n"
    "       tenantry key revoke --tenant NAME KEY_ID\n"
    "\n"
    "API keys for the HTTP API.  Scopes: items:read items:write files:read\n"
    "files:write (separated by commas or spaces).  create and rotate print the\n"
    "new key once; only its hash is kept.  rotate keeps the old key valid for\n"
    "--overlap seconds (default 14 days); revoke ends a key at once.";

static int cmd_key(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != 0) return ex;
    const char *sub = o.nargs ? o.args[0] : NULL;
    if (o.help || !sub) {
        puts(key_help);
        return o.help ? 0 : 2;
    }
    int needs_id = strcmp(sub, "rotate") == 0 || strcmp(sub, "revoke") == 0;
    if (!needs_id && strcmp(sub, "create") && strcmp(sub, "list"))
        return tn__cli_usage("key takes create, list, rotate or revoke");
    if (o.nargs != (needs_id ? 2 : 1)) return tn__cli_usage("wrong number of arguments");
    if (!o.tenant) return tn__cli_usage("--tenant NAME is required");
    unsigned scopes = 0;
    int64_t expires = opt_seconds(o.expires_in, 1), overlap = opt_seconds(o.overlap, 0);
    if (strcmp(sub, "create") == 0 && tn__scopes_parse(o.scopes, &scopes) != TN_OK)
        return tn__cli_usage("--scopes takes items:read items:write files:read files:write");
    if (expires == -2) return tn__cli_usage("--expires-in takes a number of seconds");
    if (overlap == -2) return tn__cli_usage("--overlap takes a number of seconds");

    tn_store *st;
    if ((ex = tn__cli_open(&o, 0, &st)) != 0) return ex;
    tn_tenant t;
    int rc = tn_tenant_find(st, o.tenant, &t);
    if (rc != TN_OK) {
        ex = tn__cli_error(o.tenant, rc == TN_NOTFOUND ? "no such tenant" : tn_errmsg(st), rc);
        tn_close(st);
        return ex;
    }
    char key[TN__API_KEY_LEN];
    tn__key_info k;
    if (strcmp(sub, "create") == 0) {
        rc = tn__key_create(st, t.id, scopes, expires > 0 ? tn__wall_ms() + expires * 1000 : 0, &k, key);
        if (rc == TN_OK) {
            fprintf(stderr, "tenantry: key %s created; it is shown only this once:\n", k.key_id);
            printf("%s\n", key);
        }
    } else if (strcmp(sub, "list") == 0) {
        cJSON *list = o.json ? cJSON_CreateArray() : NULL;
        rc = tn__key_list(st, t.id, print_key, list);
        if (list) tn__cli_print_json(list);
    } else {
        /* The key must belong to --tenant: a typo never touches another tenant. */
        rc = tn__key_get(st, o.args[1], &k);
        if (rc == TN_OK && strcmp(k.tenant_id, t.id) != 0) rc = TN_NOTFOUND;
        if (rc == TN_OK && strcmp(sub, "revoke") == 0) {
            rc = tn__key_revoke(st, o.args[1]);
            if (rc == TN_OK) printf("revoked %s\n", o.args[1]);
        } else if (rc == TN_OK) {
            int64_t old_end = 0;
            rc = tn__key_rotate(st, o.args[1],
                                (overlap >= 0 ? overlap : TN__OVERLAP_DEFAULT_S) * 1000,
                                expires > 0 ? tn__wall_ms() + expires * 1000 : 0, &k, key, &old_end);
            if (rc == TN_OK) {
                fprintf(stderr, "tenantry: key %s replaces %s; the new key is shown only this "
                                "once:\n", k.key_id, o.args[1]);
                printf("%s\n", key);
                print_time(stderr, "tenantry: the old key stays valid until", old_end);
            }
        }
    }
    sodium_memzero(key, sizeof key);
    if (rc != TN_OK) ex = tn__cli_error(sub, rc == TN_NOTFOUND ? "no such key" : tn_errmsg(st), rc);
    tn_close(st);
    return ex;
}

/* ---- admin-key ------------------------------------------------------------ */

static int cmd_admin_key(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != 0) return ex;
    if (o.help || o.nargs != 1 || strcmp(o.args[0], "rotate") != 0) {
        puts("usage: tenantry admin-key rotate [--data DIR]\n"
             "\n"
             "Replaces the admin key (X-Admin-Key) and prints the new one once; the old\n"
             "key stops working at once, also for a running server.");
        return o.help ? 0 : 2;
    }
    tn_store *st;
    if ((ex = tn__cli_open(&o, 0, &st)) != 0) return ex;
    char key[TN_ADMIN_KEY_LEN];
    int rc = tn_admin_key_rotate(st, key);
    if (rc == TN_OK) {
        fprintf(stderr, "tenantry: new admin key; it is shown only this once:\n");
        printf("%s\n", key);
    } else {
        ex = tn__cli_error("admin-key rotate", tn_errmsg(st), rc);
    }
    sodium_memzero(key, sizeof key);
    tn_close(st);
    return ex;
}

int tn__cmd_serve(int argc, char **argv) { return cmd_serve(argc, argv); }
int tn__cmd_key(int argc, char **argv) { return cmd_key(argc, argv); }
int tn__cmd_admin_key(int argc, char **argv) { return cmd_admin_key(argc, argv); }
