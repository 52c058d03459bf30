/*
 * config.c - the configuration file (format and precedence in config.h).
 *
 * One table, `keys`, names every key with its kind, its range (numbers) or
 * length and shape (strings), where it lands in tn__config and which
 * environment variable it is exported to.  The parser is a single pass over
 * the buffer that checks each line whole (length, NUL, UTF-8, control
 * characters) before looking at its key, so an error always has a line.
 */
#include "config.h"

#include "http.h"

#include "tenantry.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { K_STR, K_INT, K_REAL, K_BOOL };

typedef struct key_def {
    const char *name;
    int kind;
    double min, max; /* numbers: value range; strings: length range */
    size_t off, cap; /* field in tn__config; cap for strings */
    const char *env; /* exported to this variable, or NULL */
    const char *env_alt; /* another spelling that counts as set */
    int (*shape)(const char *v, const char **why); /* strings: 0 when fine */
} key_def;

/* ---- string shapes -------------------------------------------------------- */

static int in_set(const char *v, const char *extra, int upper) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                 (upper && *p >= 'A' && *p <= 'Z') || (*p && strchr(extra, *p));
        if (!ok) return 0;
    }
    return 1;
}

static int alnum(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static int shape_bucket(const char *v, const char **why) {
    size_t n = strlen(v);
    if (!in_set(v, ".-", 0) || !alnum(v[0]) || !alnum(v[n - 1]) || strstr(v, "..")) {
        *why = "must be an S3 bucket name (a-z 0-9 . -, starting and ending with a letter "
               "or digit)";
        return -1;
    }
    return 0;
}

/* "aws", or "dir:" and an absolute path. */
static int shape_remote(const char *v, const char **why) {
    if (strcmp(v, "aws") == 0 || (strncmp(v, "dir:/", 5) == 0 && !strstr(v, "/../") &&
                                  strlen(v) > 5))
        return 0;
    *why = "must be aws or dir:/absolute/path";
    return -1;
}

static int shape_table(const char *v, const char **why) {
    if (!in_set(v, "_.-", 1)) {
        *why = "may hold only A-Z a-z 0-9 _ . -";
        return -1;
    }
    return 0;
}

static int shape_region(const char *v, const char **why) {
    size_t n = strlen(v);
    if (!in_set(v, "-", 0) || !alnum(v[0]) || !alnum(v[n - 1])) {
        *why = "must be an AWS region name such as eu-west-1";
        return -1;
    }
    return 0;
}

static int shape_arn(const char *v, const char **why) {
    if (strncmp(v, "arn:", 4) != 0 || !in_set(v, ":/_+=,.@-", 1)) {
        *why = "must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)";
        return -1;
    }
    return 0;
}

static int shape_external_id(const char *v, const char **why) {
    if (!in_set(v, "_+=,.@:/-", 1)) {
        *why = "may hold only A-Z a-z 0-9 and _ + = , . @ : / -";
        return -1;
    }
    return 0;
}

/* "HOST:PORT" (a name, IPv4 or [IPv6]; port 1-65535) or "unix:/absolute/path". */
static int shape_listen(const char *v, const char **why) {
    *why = "must be HOST:PORT (port 1 to 65535) or unix:/absolute/path";
    if (strncmp(v, "unix:", 5) == 0) return v[5] == '/' ? 0 : -1;
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || !colon[1] || strlen(colon + 1) > 5) return -1;
    long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) return -1;
    if (v[0] == '[') { /* [v6]:port */
        if (colon[-1] != ']' || colon - v < 3) return -1;
        for (const char *p = v + 1; p < colon - 1; p++)
            if (!strchr("0123456789abcdefABCDEF:.", *p)) return -1;
        return 0;
    }
    for (const char *p = v; p < colon; p++)
        if (!(alnum(*p) || (*p >= 'A' && *p <= 'Z') || *p == '.' || *p == '-')) return -1;
    return 0;
}

static int shape_origins(const char *v, const char **why) {
    return tn__cors_check(v, 0, why) == TN_OK ? 0 : -1;
}

/* ---- the keys ------------------------------------------------------------- */

#define STR(name, lo, hi, env, alt, shape) \
    {#name, K_STR, lo, hi, offsetof(tn__config, name), sizeof(((tn__config *)0)->name), env, alt, shape}
#define NUM(name, kind, lo, hi, env) \
    {#name, kind, lo, hi, offsetof(tn__config, name), 0, env, NULL, NULL}

static const key_def keys[] = {
    STR(listen, 1, 300, NULL, NULL, shape_listen),
    NUM(port, K_INT, 1, 65535, NULL),
    NUM(threads, K_INT, 1, 256, NULL),
    NUM(rate, K_REAL, 0.001, 1e6, NULL),
    NUM(burst, K_REAL, 1, 1e6, NULL),
    NUM(auth_fail_rate, K_REAL, 0.001, 1e6, NULL),
    NUM(auth_fail_burst, K_REAL, 1, 1e6, NULL),
    NUM(tenant_rate, K_REAL, 0, 1e6, NULL),
    NUM(tenant_burst, K_REAL, 1, 1e6, NULL),
    STR(cors_origins, 1, 1000, "TENANTRY_CORS_ORIGINS", NULL, shape_origins),
    NUM(sync, K_BOOL, 0, 1, NULL),
    STR(remote, 3, 1000, "TENANTRY_REMOTE", NULL, shape_remote),
    STR(s3_bucket, 3, 63, "TENANTRY_S3_BUCKET", NULL, shape_bucket),
    STR(dynamodb_table, 3, 255, "TENANTRY_DYNAMODB_TABLE", NULL, shape_table),
    STR(table_prefix, 1, 64, "TENANTRY_ENV_PREFIX", NULL, shape_table),
    STR(region, 1, 32, "AWS_REGION", "AWS_DEFAULT_REGION", shape_region),
    STR(role_arn, 20, 511, "TENANTRY_AWS_ROLE_ARN", "AWS_ROLE_ARN", shape_arn),
    STR(external_id, 2, 255, "TENANTRY_AWS_EXTERNAL_ID", NULL, shape_external_id),
    NUM(sync_interval, K_INT, 1, 7 * 86400, "TENANTRY_SYNC_INTERVAL"),
    NUM(sync_bandwidth, K_INT, 0, 1e12, "TENANTRY_SYNC_BANDWIDTH"),
    NUM(sync_early_rows, K_INT, 1, 1e9, "TENANTRY_SYNC_EARLY_ROWS"),
    NUM(sync_connections, K_INT, 1, 64, "TENANTRY_SYNC_CONNECTIONS"),
    NUM(multipart_threshold_mb, K_INT, 5, 1024, "TENANTRY_SYNC_MULTIPART_MB"),
    NUM(part_size_mb, K_INT, 5, 5120, "TENANTRY_SYNC_PART_MB"),
    NUM(tombstone_ttl, K_INT, 1, 10 * 366 * 86400.0, "TENANTRY_TOMBSTONE_TTL"),
};
#define NKEYS (sizeof keys / sizeof keys[0])

void tn__config_init(tn__config *c) {
    memset(c, 0, sizeof *c);
    c->port = c->threads = -1;
    c->rate = c->burst = c->auth_fail_rate = c->auth_fail_burst = -1;
    c->tenant_rate = c->tenant_burst = -1;
    c->sync = -1;
    c->sync_interval = c->sync_bandwidth = c->sync_early_rows = c->sync_connections = -1;
    c->multipart_threshold_mb = c->part_size_mb = c->tombstone_ttl = -1;
}

static size_t key_index(const char *key) {
    size_t i = 0;
    while (i < NKEYS && strcmp(keys[i].name, key) != 0) i++;
    return i;
}

const char *tn__config_env_name(const char *key) {
    size_t i = key_index(key);
    return i < NKEYS ? keys[i].env : NULL;
}

/* ---- parsing -------------------------------------------------------------- */

static int fail(tn__config_err *e, int line, const char *key, size_t keylen, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));
static int fail(tn__config_err *e, int line, const char *key, size_t keylen, const char *fmt,
                ...) {
    e->line = line;
    /* The key as written is echoed only when it looks like a key (it has
     * already been checked to be [a-z0-9_]); it is cut at a bound. */
    size_t n = keylen < sizeof e->key - 4 ? keylen : sizeof e->key - 4;
    memcpy(e->key, key ? key : "", key ? n : 0);
    if (key && keylen > n) memcpy(e->key + n, "...", 3), n += 3;
    e->key[key ? n : 0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return TN_INVALID;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_ok(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char b = s[i];
        size_t k;
        unsigned cp;
        if (b < 0x80) { i++; continue; }
        if (b >= 0xC2 && b <= 0xDF) k = 1, cp = b & 0x1Fu;
        else if (b >= 0xE0 && b <= 0xEF) k = 2, cp = b & 0x0Fu;
        else if (b >= 0xF0 && b <= 0xF4) k = 3, cp = b & 0x07u;
        else return 0;
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += k + 1;
    }
    return 1;
}

static int secretish(const char *k, size_t n) {
    static const char *const words[] = {"secret", "password", "token", "access_key", "passwd"};
    char tmp[TN__CONF_LINE_MAX + 1];
    memcpy(tmp, k, n);
    tmp[n] = '\0';
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(tmp, words[i])) return 1;
    return 0;
}

/* Decimal digits with an optional fraction (allow_frac): 0, or -1 when the
 * text is not such a number, -2 when it is negative.  The shape is checked
 * here; strtod, which rounds correctly, only converts it. */
static int number(const char *v, int allow_frac, double *out) {
    const char *p = v + (*v == '-');
    size_t digits = strspn(p, "0123456789");
    if (digits == 0) return -1;
    p += digits;
    if (allow_frac && *p == '.') {
        size_t frac = strspn(p + 1, "0123456789");
        if (frac == 0) return -1;
        p += 1 + frac;
    }
    if (*p) return -1;
    if (*v == '-') return -2;
    *out = strtod(v, NULL);
    return 0;
}

/* Stores value v (NUL-terminated, n bytes) of key d into c. */
static int store(const key_def *d, const char *v, size_t n, tn__config *c, tn__config_err *e,
                 int line) {
    const char *k = d->name;
    size_t kl = strlen(k);
    char *field = (char *)c + d->off;
    if (d->kind == K_STR) {
        const char *why = NULL;
        if (n < d->min || n > d->max)
            return fail(e, line, k, kl, "must be %g to %g characters", d->min, d->max);
        if (d->shape(v, &why) != 0) return fail(e, line, k, kl, "%s", why);
        memcpy(field, v, n + 1);
        return TN_OK;
    }
    if (d->kind == K_BOOL) {
        int b = strcmp(v, "on") == 0 || strcmp(v, "true") == 0 ? 1
                : strcmp(v, "off") == 0 || strcmp(v, "false") == 0 ? 0 : -1;
        if (b < 0) return fail(e, line, k, kl, "must be on or off");
        *(int *)(void *)field = b;
        return TN_OK;
    }
    double x;
    int r = number(v, d->kind == K_REAL, &x);
    if (r == -2) return fail(e, line, k, kl, "must not be negative");
    if (r < 0 || x < d->min || x > d->max)
        return fail(e, line, k, kl, "must be a %s from %.15g to %.15g",
                    d->kind == K_INT ? "whole number" : "number", d->min, d->max);
    if (d->kind == K_INT) *(int64_t *)(void *)field = (int64_t)x;
    else *(double *)(void *)field = x;
    return TN_OK;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t'; }

/* One line (no line end), already known to be clean text. */
static int parse_line(const char *l, size_t n, int line, tn__config *c, int *seen,
                      tn__config_err *e) {
    size_t i = 0;
    while (i < n && is_space(l[i])) i++;
    if (i == n || l[i] == '#') return TN_OK;
    size_t k0 = i;
    while (i < n && ((l[i] >= 'a' && l[i] <= 'z') || (l[i] >= '0' && l[i] <= '9') || l[i] == '_'))
        i++;
    size_t kl = i - k0;
    while (i < n && is_space(l[i])) i++;
    /* Without '=' the line may be anything (a pasted secret): quote none of it. */
    if (kl == 0 || i == n || l[i] != '=') {
        if (memchr(l, '=', n))
            return fail(e, line, NULL, 0, "a key is lower-case letters, digits and _");
        return fail(e, line, NULL, 0, "missing '=' (lines are key = value)");
    }
    const key_def *d = NULL;
    for (size_t j = 0; j < NKEYS; j++)
        if (strlen(keys[j].name) == kl && memcmp(keys[j].name, l + k0, kl) == 0) d = &keys[j];
    if (!d)
        return fail(e, line, l + k0, kl, secretish(l + k0, kl)
                    ? "unknown key (credentials belong in the environment or the AWS "
                      "credentials file, never here)"
                    : "unknown key");
    int idx = (int)(d - keys);
    if (seen[idx]) return fail(e, line, l + k0, kl, "given twice (first on line %d)", seen[idx]);
    seen[idx] = line;

    char v[TN__CONF_LINE_MAX + 1];
    size_t vn = 0;
    for (i++; i < n && is_space(l[i]); i++) {}
    if (i < n && l[i] == '"') {
        for (i++; i < n && l[i] != '"'; i++) {
            if (l[i] == '\\') {
                if (i + 1 == n || (l[i + 1] != '"' && l[i + 1] != '\\'))
                    return fail(e, line, l + k0, kl, "in quotes only \\\" and \\\\ are escapes");
                i++;
            }
            v[vn++] = l[i];
        }
        if (i == n) return fail(e, line, l + k0, kl, "the closing quote is missing");
        for (i++; i < n && is_space(l[i]); i++) {}
        if (i < n && l[i] != '#')
            return fail(e, line, l + k0, kl, "only a comment may follow the closing quote");
    } else {
        /* The value runs to the end of the line or to a comment that follows
         * a space; trailing spaces are not part of it. */
        size_t start = i, end = i;
        for (; i < n && !(l[i] == '#' && is_space(l[i - 1])); i++) {
            if (l[i] == '"') return fail(e, line, l + k0, kl, "a quote inside an unquoted value");
            if (!is_space(l[i])) end = i + 1;
        }
        vn = end - start;
        memcpy(v, l + start, vn);
    }
    v[vn] = '\0';
    if (vn == 0) return fail(e, line, l + k0, kl, "needs a value");
    if (memchr(v, '\t', vn)) return fail(e, line, l + k0, kl, "contains a tab");
    return store(d, v, vn, c, e, line);
}

int tn__config_parse(const char *buf, size_t len, tn__config *c, tn__config_err *e) {
    tn__config_init(c);
    memset(e, 0, sizeof *e);
    int seen[NKEYS] = {0};
    if (len > TN__CONF_FILE_MAX) return fail(e, 0, NULL, 0, "larger than 1 MiB");
    size_t pos = 0;
    for (int line = 1; pos < len; line++) {
        const char *l = buf + pos, *nl = memchr(l, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - l) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n > 0 && l[n - 1] == '\r') n--;
        if (n > TN__CONF_LINE_MAX)
            return fail(e, line, NULL, 0, "longer than %d bytes", TN__CONF_LINE_MAX);
        if (memchr(l, '\0', n)) return fail(e, line, NULL, 0, "contains a NUL byte");
        if (!utf8_ok((const unsigned char *)l, n)) return fail(e, line, NULL, 0, "not valid UTF-8");
        for (size_t i = 0; i < n; i++)
            if (((unsigned char)l[i] < 0x20 && l[i] != '\t') || l[i] == 0x7f)
                return fail(e, line, NULL, 0, "contains a control character");
        int rc = parse_line(l, n, line, c, seen, e);
        if (rc != TN_OK) return rc;
    }
    int ll = seen[key_index("listen")], pl = seen[key_index("port")];
    if (pl && ll)
        return fail(e, pl > ll ? pl : ll, pl > ll ? "port" : "listen", pl > ll ? 4 : 6,
                    "give listen or port, not both (the other is on line %d)", pl > ll ? ll : pl);
    if (pl) snprintf(c->listen, sizeof c->listen, "127.0.0.1:%lld", (long long)c->port);
    return TN_OK;
}

/* ---- the file ------------------------------------------------------------- */

int tn__config_load(const char *path, tn__config *c, char *msg, size_t msglen) {
    tn__config_init(c);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat sb;
    if (fd < 0 && errno == ENOENT) {
        snprintf(msg, msglen, "%s: no such file", path);
        return TN_NOTFOUND;
    }
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(msg, msglen, "%s: cannot read the configuration file%s", path,
                 fd >= 0 ? " (not a regular file)" : errno == EACCES ? " (permission denied)" : "");
        if (fd >= 0) close(fd);
        return TN_IO;
    }
    if (sb.st_size > TN__CONF_FILE_MAX) {
        close(fd);
        snprintf(msg, msglen, "%s: larger than 1 MiB, not a configuration file", path);
        return TN_IO;
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (buf && n < (size_t)sb.st_size &&
           ((r = read(fd, buf + n, (size_t)sb.st_size - n)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0) n += (size_t)r;
    close(fd);
    if (!buf || r < 0) {
        free(buf);
        snprintf(msg, msglen, "%s: cannot read the configuration file", path);
        return buf ? TN_IO : TN_NOMEM;
    }
    tn__config_err e;
    int rc = tn__config_parse(buf, n, c, &e);
    free(buf);
    if (rc != TN_OK) {
        char where[16] = "";
        if (e.line) snprintf(where, sizeof where, "%d:", e.line);
        snprintf(msg, msglen, "%s:%s %s%s%s", path, where, e.key, e.key[0] ? ": " : "", e.msg);
        return rc;
    }
    snprintf(c->file, sizeof c->file, "%s", path);
    return TN_OK;
}

/* ---- the environment ------------------------------------------------------ */

static int env_set(const char *name) {
    const char *v = name ? getenv(name) : NULL;
    return v && *v;
}

int tn__config_export(const tn__config *c) {
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def *d = &keys[i];
        if (!d->env || env_set(d->env) || env_set(d->env_alt)) continue;
        const char *field = (const char *)c + d->off;
        char num[32];
        const char *v = field;
        if (d->kind == K_INT) {
            int64_t x = *(const int64_t *)(const void *)field;
            if (x < 0) continue;
            snprintf(num, sizeof num, "%lld", (long long)x);
            v = num;
        }
        if (!*v) continue;
        if (setenv(d->env, v, 1) != 0) return TN_NOMEM;
    }
    return TN_OK;
}
