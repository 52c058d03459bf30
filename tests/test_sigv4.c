/*
 * test_sigv4.c - the SigV4 signer (sync/sigv4.c) against every vector we hold:
 *
 *   - tests/vectors/sigv4/suite: the 38 cases of aws-c-auth's SigV4 test suite,
 *     each signed as an Authorization header and as a presigned query;
 *   - tests/vectors/sigv4/presign-cases.json: 20 S3 presigned URLs (botocore);
 *   - tests/vectors/s3-presign: the S3 documentation's presigned URL and its
 *     four Authorization-header examples.
 *
 * Every expected value is read from those files; none is computed by the code
 * under test.  The suite tests check all cases before failing, and name each
 * case and artefact that differs, so one regression shows its whole extent.
 * The hostile-input tests at the end need no vectors: they check error codes,
 * that nothing crashes (ASan/UBSan builds), and that the secret never leaks.
 */
#include "harness.h"

#include "sigv4.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdarg.h>
#include <strings.h>
#include <time.h>

#define SUITE_CASES 38
#define PRESIGN_CASES 20

/* ---- small helpers ---------------------------------------------------------- */

static char *slurp_vec(const char *rel) {
    char path[1024];
    int n = snprintf(path, sizeof path, "%s/%s", tn_test_vectors(), rel);
    if (n < 0 || (size_t)n >= sizeof path) TN_FAIL_("path too long: %s", rel);
    size_t len;
    char *text = tn_test_slurp(path, &len);
    if (!text) TN_FAIL_("cannot read %s", path);
    return text;
}

static cJSON *load_json(const char *rel) {
    char *text = slurp_vec(rel);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) TN_FAIL_("%s is not JSON", rel);
    return j;
}

static const char *jstr(const cJSON *obj, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsString(v)) TN_FAIL_("JSON member \"%s\" missing or not a string", name);
    return v->valuestring;
}

static int jbool(const cJSON *obj, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsTrue(v);
}

static long jlong(const cJSON *obj, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(v)) TN_FAIL_("JSON member \"%s\" missing or not a number", name);
    return (long)v->valuedouble;
}

static time_t parse_time(const char *s, const char *fmt) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, fmt, &tm);
    if (!end || *end) TN_FAIL_("bad timestamp \"%s\"", s);
    return timegm(&tm);
}

/* Prints a mismatch with both texts and counts it; 1 when they differ. */
static int differ(const char *casename, const char *what, const char *want, const char *got) {
    if (want && got && strcmp(want, got) == 0) return 0;
    fprintf(stderr, "    %s: %s differs\n    --- expected\n%s\n    --- got\n%s\n", casename,
            what, want ? want : "(null)", got ? got : "(null)");
    return 1;
}

/* A heap copy of a "x" b "y" c ...; NULL ends the list. */
static char *join(const char *first, ...) {
    va_list ap;
    size_t n = 0;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) n += strlen(s);
    va_end(ap);
    char *out = malloc(n + 1);
    ASSERT(out);
    size_t o = 0;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        size_t l = strlen(s);
        memcpy(out + o, s, l);
        o += l;
    }
    va_end(ap);
    out[o] = '\0';
    return out;
}

/* ---- request.txt ---------------------------------------------------------- */

#define MAX_REQ_HEADERS 16

typedef struct parsed {
    char *method, *path, *query;
    tn__sigv4_header h[MAX_REQ_HEADERS];
    char *hbuf[2 * MAX_REQ_HEADERS];
    size_t nh;
    const char *body;
    size_t body_len;
} parsed;

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    ASSERT(d);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Line length without its "\n" or "\r\n"; *next is the start of the next line. */
static size_t line_len(const char *s, const char **next) {
    size_t n = strcspn(s, "\n");
    *next = s[n] ? s + n + 1 : s + n;
    if (n && s[n - 1] == '\r') n--;
    return n;
}

/*
 * "METHOD PATH HTTP/1.1", header lines "Name:value", continuation lines that
 * start with blanks (joined to the previous value with one space, as the
 * suite's README says), an empty line, the body.  The path may hold spaces, so
 * it is everything between the first and the last space.
 */
static void parse_request(const char *casename, const char *text, parsed *r) {
    memset(r, 0, sizeof *r);
    const char *next;
    size_t n = line_len(text, &next);
    const char *sp1 = memchr(text, ' ', n), *sp2 = NULL;
    for (const char *c = text + n; c > text; c--)
        if (c[-1] == ' ') { sp2 = c - 1; break; }
    if (!sp1 || sp2 <= sp1) TN_FAIL_("%s: bad request line", casename);
    r->method = dupn(text, (size_t)(sp1 - text));
    const char *target = sp1 + 1;
    size_t tlen = (size_t)(sp2 - target);
    const char *q = memchr(target, '?', tlen);
    r->path = dupn(target, q ? (size_t)(q - target) : tlen);
    r->query = q ? dupn(q + 1, tlen - (size_t)(q - target) - 1) : dupn("", 0);

    const char *line = next;
    while (*line) {
        n = line_len(line, &next);
        if (n == 0) {
            r->body = next;
            r->body_len = strlen(next);
            return;
        }
        if (line[0] == ' ' || line[0] == '\t') {
            if (r->nh == 0) TN_FAIL_("%s: continuation before any header", casename);
            size_t skip = strspn(line, " \t");
            char *prev = r->hbuf[2 * (r->nh - 1) + 1];
            char *tail = dupn(line + skip, n - skip);
            char *joined = join(prev, " ", tail, (const char *)NULL);
            free(prev);
            free(tail);
            r->hbuf[2 * (r->nh - 1) + 1] = joined;
            r->h[r->nh - 1].value = joined;
        } else {
            const char *colon = memchr(line, ':', n);
            if (!colon) TN_FAIL_("%s: header line without ':'", casename);
            if (r->nh == MAX_REQ_HEADERS) TN_FAIL_("%s: too many headers", casename);
            char *name = dupn(line, (size_t)(colon - line));
            char *value = dupn(colon + 1, n - (size_t)(colon - line) - 1);
            r->hbuf[2 * r->nh] = name;
            r->hbuf[2 * r->nh + 1] = value;
            r->h[r->nh++] = (tn__sigv4_header){name, value};
        }
        line = next;
    }
    r->body = "";
    r->body_len = 0;
}

static void parsed_free(parsed *r) {
    free(r->method);
    free(r->path);
    free(r->query);
    for (size_t i = 0; i < 2 * r->nh; i++) free(r->hbuf[i]);
}

/* ---- the aws-c-auth suite --------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The X-Amz-* parameters of a query, sorted and joined with '&'. */
static char *amz_params(const char *query) {
    char *copy = dupn(query, strlen(query));
    char *items[64];
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(copy, "&", &save); t; t = strtok_r(NULL, "&", &save))
        if (strncmp(t, "X-Amz-", 6) == 0 && n < 64) items[n++] = t;
    qsort(items, n, sizeof *items, cmp_str);
    size_t total = 1;
    for (size_t i = 0; i < n; i++) total += strlen(items[i]) + 1;
    char *out = malloc(total);
    ASSERT(out);
    out[0] = '\0';
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(items[i]);
        if (i) out[o++] = '&';
        memcpy(out + o, items[i], l);
        o += l;
        out[o] = '\0';
    }
    free(copy);
    return out;
}

/*
 * The *-signed-request.txt files are samples whose layout is not fixed (see the
 * README), so only the parts the signer produces are compared: in header mode
 * the Authorization, X-Amz-Date, X-Amz-Security-Token and x-amz-content-sha256
 * headers; in query mode the set of X-Amz-* parameters.
 */
static int check_signed_request(const char *casename, const char *text, int presign,
                                const tn__sigv4_result *out) {
    const char *next;
    size_t n = line_len(text, &next);
    if (presign) {
        const char *q = memchr(text, '?', n);
        const char *end = text + n;
        if (!q || n < 9 || strncmp(end - 9, " HTTP/1.1", 9) != 0) {
            fprintf(stderr, "    %s: unexpected query-signed-request line\n", casename);
            return 1;
        }
        char *theirs_q = dupn(q + 1, (size_t)(end - 9 - q - 1));
        char *theirs = amz_params(theirs_q), *ours = amz_params(out->query);
        int bad = differ(casename, "X-Amz-* parameters of query-signed-request.txt", theirs, ours);
        free(theirs_q);
        free(theirs);
        free(ours);
        return bad;
    }
    static const char *const names[] = {"authorization", "x-amz-date", "x-amz-security-token",
                                        "x-amz-content-sha256"};
    int bad = 0, seen = 0;
    for (const char *line = next; *line; line = next) {
        n = line_len(line, &next);
        if (n == 0) break;
        const char *colon = memchr(line, ':', n);
        if (!colon) continue;
        size_t nl = (size_t)(colon - line);
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
            if (strlen(names[k]) != nl || strncasecmp(line, names[k], nl) != 0) continue;
            char *want = dupn(colon + 1, n - nl - 1);
            const char *got = NULL;
            if (k == 0) {
                got = out->authorization;
            } else {
                for (size_t a = 0; a < out->nadd; a++)
                    if (strcmp(out->add[a].name, names[k]) == 0) got = out->add[a].value;
            }
            bad += differ(casename, names[k], want, got);
            seen++;
            free(want);
        }
    }
    if ((size_t)seen != 1 + out->nadd) {
        fprintf(stderr, "    %s: header-signed-request.txt has %d signer headers, we add %zu+1\n",
                casename, seen, out->nadd);
        bad++;
    }
    return bad;
}

static int run_suite_case(const char *casename, int presign) {
    const char *mode = presign ? "query" : "header";
    char rel[512];
    snprintf(rel, sizeof rel, "sigv4/suite/%s/context.json", casename);
    cJSON *ctx = load_json(rel);
    snprintf(rel, sizeof rel, "sigv4/suite/%s/request.txt", casename);
    char *reqtext = slurp_vec(rel);
    parsed pr;
    parse_request(casename, reqtext, &pr);

    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(ctx, "credentials");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(cr, "token");
    int sign_body = jbool(ctx, "sign_body");
    tn__sigv4_signer s = {
        .access_key_id = jstr(cr, "access_key_id"),
        .secret_access_key = jstr(cr, "secret_access_key"),
        .session_token = cJSON_IsString(tok) ? tok->valuestring : NULL,
        .region = jstr(ctx, "region"),
        .service = jstr(ctx, "service"),
        .now = parse_time(jstr(ctx, "timestamp"), "%Y-%m-%dT%H:%M:%SZ"),
        .flags = (presign ? TN__SIGV4_PRESIGN : 0u) |
                 (jbool(ctx, "normalize") ? TN__SIGV4_NORMALIZE_PATH : 0u) |
                 (sign_body ? TN__SIGV4_CONTENT_SHA256 : 0u) |
                 (jbool(ctx, "omit_session_token") ? TN__SIGV4_OMIT_TOKEN : 0u),
        .expires = jlong(ctx, "expiration_in_seconds"),
    };
    /* sign_body false: the suite hashes the empty string whatever the body. */
    tn__sigv4_request req = {pr.method, pr.path, pr.query, pr.h, pr.nh,
                             sign_body ? pr.body : "", sign_body ? pr.body_len : 0, NULL};
    tn__sigv4_result out;
    int rc = tn__sigv4_sign(&s, &req, &out);
    int bad = 0;
    char what[64];
    if (rc != TN__SIGV4_OK) {
        fprintf(stderr, "    %s (%s): sign failed: %s\n", casename, mode, tn__sigv4_errname(rc));
        bad = 1;
    } else {
        static const char *const files[] = {"canonical-request", "string-to-sign", "signature",
                                            "signed-request"};
        const char *got[] = {out.canonical_request, out.string_to_sign, out.signature, NULL};
        for (size_t f = 0; f < 4; f++) {
            snprintf(rel, sizeof rel, "sigv4/suite/%s/%s-%s.txt", casename, mode, files[f]);
            char *want = slurp_vec(rel);
            snprintf(what, sizeof what, "%s-%s", mode, files[f]);
            if (got[f])
                bad += differ(casename, what, want, got[f]);
            else
                bad += check_signed_request(casename, want, presign, &out);
            free(want);
        }
    }
    tn__sigv4_result_free(&out);
    parsed_free(&pr);
    free(reqtext);
    cJSON_Delete(ctx);
    return bad;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every case folder, sorted; a missing or extra folder changes the count. */
static void run_suite(int presign) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sigv4/suite", tn_test_vectors());
    DIR *d = opendir(dir);
    if (!d) TN_FAIL_("cannot open %s", dir);
    char *names[128];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        DIR *c = opendir(sub);
        if (!c) continue; /* README.md */
        closedir(c);
        ASSERT(n < 128);
        names[n++] = dupn(e->d_name, strlen(e->d_name));
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_name);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        int bad = run_suite_case(names[i], presign);
        if (bad)
            fprintf(stderr, "    FAILED %s (%s mode)\n", names[i], presign ? "query" : "header");
        failed += bad != 0;
        free(names[i]);
    }
    ASSERT_INT_EQ(n, SUITE_CASES);
    ASSERT_INT_EQ(failed, 0);
}

TEST(sigv4_suite_header) { run_suite(0); }

TEST(sigv4_suite_query) { run_suite(1); }

/* ---- S3 presigned URLs ------------------------------------------------------ */

typedef struct s3_presign {
    const char *method, *bucket, *key, *region, *akid, *secret, *token, *timestamp;
    const char *scheme, *ephost, *style; /* "virtual" or "path" */
    long expires;
    const cJSON *query_params, *signed_headers; /* may be NULL */
} s3_presign;

/* Signs like the S3 code will: the key encoded by tn__sigv4_uri_encode, the
 * URL put together from the encoded path and the signer's query. */
static int check_s3_presign(const char *id, const s3_presign *in, const cJSON *expected) {
    int virt = strcmp(in->style, "virtual") == 0;
    char *host = virt ? join(in->bucket, ".", in->ephost, (const char *)NULL)
                      : join(in->ephost, (const char *)NULL);
    char *raw = virt ? join("/", in->key, (const char *)NULL)
                     : join("/", in->bucket, "/", in->key, (const char *)NULL);
    char *path = NULL;
    ASSERT_INT_EQ(tn__sigv4_uri_encode(raw, strlen(raw), 1, &path), TN__SIGV4_OK);

    char *query = join("", (const char *)NULL);
    const cJSON *qp;
    cJSON_ArrayForEach(qp, in->query_params) {
        ASSERT(cJSON_IsString(qp));
        char *en = NULL, *ev = NULL;
        ASSERT_INT_EQ(tn__sigv4_uri_encode(qp->string, strlen(qp->string), 0, &en), 0);
        ASSERT_INT_EQ(tn__sigv4_uri_encode(qp->valuestring, strlen(qp->valuestring), 0, &ev), 0);
        char *q2 = join(query, *query ? "&" : "", en, "=", ev, (const char *)NULL);
        free(query);
        free(en);
        free(ev);
        query = q2;
    }

    tn__sigv4_header h[8];
    size_t nh = 0;
    h[nh++] = (tn__sigv4_header){"host", host};
    const cJSON *sh;
    cJSON_ArrayForEach(sh, in->signed_headers) {
        ASSERT(cJSON_IsString(sh) && nh < 8);
        h[nh++] = (tn__sigv4_header){sh->string, sh->valuestring};
    }

    tn__sigv4_signer s = {in->akid, in->secret, in->token, in->region, "s3",
                          parse_time(in->timestamp, "%Y%m%dT%H%M%SZ"),
                          TN__SIGV4_PRESIGN | TN__SIGV4_S3, in->expires};
    tn__sigv4_request req = {in->method, path, query, h, nh, NULL, 0, "UNSIGNED-PAYLOAD"};
    tn__sigv4_result out;
    int rc = tn__sigv4_sign(&s, &req, &out);
    int bad = 0;
    if (rc) {
        fprintf(stderr, "    %s: sign failed: %s\n", id, tn__sigv4_errname(rc));
        bad = 1;
    } else {
        char *url = join(in->scheme, "://", host, path, "?", out.query, (const char *)NULL);
        bad += differ(id, "canonical_request", jstr(expected, "canonical_request"),
                      out.canonical_request);
        bad += differ(id, "string_to_sign", jstr(expected, "string_to_sign"), out.string_to_sign);
        bad += differ(id, "signature", jstr(expected, "signature"), out.signature);
        bad += differ(id, "url", jstr(expected, "url"), url);
        free(url);
    }
    tn__sigv4_result_free(&out);
    free(host);
    free(raw);
    free(path);
    free(query);
    return bad;
}

TEST(sigv4_presign_cases) {
    cJSON *doc = load_json("sigv4/presign-cases.json");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases");
    ASSERT(cJSON_IsArray(cases));
    int n = 0, failed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *id = jstr(c, "id");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(c, "inputs");
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(in, "session_token");
        ASSERT_STR_EQ(jstr(in, "service"), "s3");
        const char *endpoint = jstr(in, "endpoint");
        const char *sep = strstr(endpoint, "://");
        if (!sep) TN_FAIL_("%s: endpoint without scheme", id);
        char *scheme = dupn(endpoint, (size_t)(sep - endpoint));
        s3_presign p = {
            .method = jstr(in, "method"),
            .bucket = jstr(in, "bucket"),
            .key = jstr(in, "key"),
            .region = jstr(in, "region"),
            .akid = jstr(in, "access_key_id"),
            .secret = jstr(in, "secret_access_key"),
            .token = cJSON_IsString(tok) ? tok->valuestring : NULL,
            .timestamp = jstr(in, "timestamp"),
            .scheme = scheme,
            .ephost = sep + 3,
            .style = jstr(in, "addressing_style"),
            .expires = jlong(in, "expires"),
            .query_params = cJSON_GetObjectItemCaseSensitive(in, "query_params"),
            .signed_headers = cJSON_GetObjectItemCaseSensitive(in, "signed_headers"),
        };
        int bad = check_s3_presign(id, &p, cJSON_GetObjectItemCaseSensitive(c, "expected"));
        if (bad) fprintf(stderr, "    FAILED %s\n", id);
        failed += bad != 0;
        free(scheme);
        n++;
    }
    cJSON_Delete(doc);
    ASSERT_INT_EQ(n, PRESIGN_CASES);
    ASSERT_INT_EQ(failed, 0);
}

TEST(sigv4_s3_docs_presigned_url) {
    cJSON *doc = load_json("s3-presign/presigned-url-example.json");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(doc, "inputs");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(doc, "expected");
    const char *bucket = jstr(in, "bucket"), *host = jstr(in, "host");
    ASSERT_STR_EQ(jstr(in, "addressing_style"), "virtual");
    /* The document's host is "<bucket>.<endpoint host>". */
    size_t bl = strlen(bucket);
    ASSERT(strncmp(host, bucket, bl) == 0 && host[bl] == '.');
    ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(in, "session_token")));
    s3_presign p = {
        .method = jstr(in, "method"),
        .bucket = bucket,
        .key = jstr(in, "key"),
        .region = jstr(in, "region"),
        .akid = jstr(in, "access_key_id"),
        .secret = jstr(in, "secret_access_key"),
        .timestamp = jstr(in, "timestamp"),
        .scheme = "https",
        .ephost = host + bl + 1,
        .style = "virtual",
        .expires = jlong(in, "expires"),
    };
    ASSERT_STR_EQ(jstr(in, "service"), "s3");
    ASSERT_INT_EQ(check_s3_presign("s3 docs presigned URL", &p, exp), 0);
    cJSON_Delete(doc);
}

/* The document writes "," between Authorization fields, we write ", ". */
static char *drop_comma_spaces(const char *s) {
    char *d = dupn(s, strlen(s)), *o = d;
    for (const char *c = s; *c; c++) {
        *o++ = *c;
        if (*c == ',') c += strspn(c + 1, " ");
    }
    *o = '\0';
    return d;
}

/*
 * The four Authorization-header examples, signed the way the S3 code will:
 * the signer adds x-amz-date and x-amz-content-sha256 itself (TN__SIGV4_S3),
 * so those two are taken out of the inputs and their values checked in add[].
 */
TEST(sigv4_s3_docs_header_auth) {
    cJSON *doc = load_json("s3-presign/header-auth-examples.json");
    const cJSON *common = cJSON_GetObjectItemCaseSensitive(doc, "common");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases");
    int n = 0, failed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *id = jstr(c, "id");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(c, "inputs");
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "expected");
        const cJSON *hs = cJSON_GetObjectItemCaseSensitive(in, "headers");
        tn__sigv4_header h[16];
        size_t nh = 0;
        const char *want_date = NULL, *want_sha = NULL;
        const cJSON *x;
        cJSON_ArrayForEach(x, hs) {
            ASSERT(cJSON_IsString(x) && nh < 16);
            if (strcmp(x->string, "x-amz-date") == 0)
                want_date = x->valuestring;
            else if (strcmp(x->string, "x-amz-content-sha256") == 0)
                want_sha = x->valuestring;
            else
                h[nh++] = (tn__sigv4_header){x->string, x->valuestring};
        }
        ASSERT(want_date && want_sha);
        ASSERT_STR_EQ(want_sha, jstr(in, "payload_hash"));
        const char *body = jstr(in, "body");
        tn__sigv4_signer s = {jstr(common, "access_key_id"), jstr(common, "secret_access_key"),
                              NULL, jstr(common, "region"), jstr(common, "service"),
                              parse_time(jstr(common, "timestamp"), "%Y%m%dT%H%M%SZ"),
                              TN__SIGV4_S3, 0};
        tn__sigv4_request req = {jstr(in, "method"), jstr(in, "canonical_uri"),
                                 jstr(in, "canonical_query"), h, nh, body, strlen(body), NULL};
        tn__sigv4_result out;
        int rc = tn__sigv4_sign(&s, &req, &out), bad = 0;
        if (rc) {
            fprintf(stderr, "    %s: sign failed: %s\n", id, tn__sigv4_errname(rc));
            bad = 1;
        } else {
            char *auth = drop_comma_spaces(out.authorization);
            bad += differ(id, "canonical_request", jstr(exp, "canonical_request"),
                          out.canonical_request);
            bad += differ(id, "string_to_sign", jstr(exp, "string_to_sign"), out.string_to_sign);
            bad += differ(id, "signature", jstr(exp, "signature"), out.signature);
            bad += differ(id, "authorization", jstr(exp, "authorization"), auth);
            bad += out.nadd != 2;
            bad += differ(id, "add[0]", "x-amz-date", out.add[0].name);
            bad += differ(id, "x-amz-date", want_date, out.add[0].value);
            bad += differ(id, "add[1]", "x-amz-content-sha256", out.add[1].name);
            bad += differ(id, "x-amz-content-sha256", want_sha, out.add[1].value);
            free(auth);
        }
        tn__sigv4_result_free(&out);
        if (bad) fprintf(stderr, "    FAILED %s\n", id);
        failed += bad != 0;
        n++;
    }
    cJSON_Delete(doc);
    ASSERT_INT_EQ(n, 4);
    ASSERT_INT_EQ(failed, 0);
}

/* The README's own encoding examples, and the S3 docs' key 'test$file.text'
 * (header-auth-examples.json, put-object) whose canonical URI the file gives. */
TEST(sigv4_uri_encode) {
    char *out = NULL;
    ASSERT_INT_EQ(tn__sigv4_uri_encode("/example space/", 15, 1, &out), 0);
    ASSERT_STR_EQ(out, "/example%20space/");
    free(out);
    ASSERT_INT_EQ(tn__sigv4_uri_encode("/\xe1\x88\xb4", 4, 1, &out), 0);
    ASSERT_STR_EQ(out, "/%E1%88%B4");
    free(out);

    cJSON *doc = load_json("s3-presign/header-auth-examples.json");
    const cJSON *c;
    int found = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        if (strcmp(jstr(c, "id"), "put-object") != 0) continue;
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(c, "inputs");
        ASSERT_INT_EQ(tn__sigv4_uri_encode("/test$file.text", 15, 1, &out), 0);
        ASSERT_STR_EQ(out, jstr(in, "canonical_uri"));
        free(out);
        found = 1;
    }
    cJSON_Delete(doc);
    ASSERT(found);

    /* keep_slash 0 encodes '/', and an embedded NUL is just a byte. */
    ASSERT_INT_EQ(tn__sigv4_uri_encode("a/b\0c", 5, 0, &out), 0);
    ASSERT_STR_EQ(out, "a%2Fb%00c");
    free(out);
    ASSERT_INT_EQ(tn__sigv4_uri_encode("", 0, 1, &out), 0);
    ASSERT_STR_EQ(out, "");
    free(out);
    ASSERT_INT_EQ(tn__sigv4_uri_encode(NULL, 0, 1, &out), TN__SIGV4_EINVAL);
    ASSERT(out == NULL);
    ASSERT_INT_EQ(tn__sigv4_uri_encode("a", 1, 1, NULL), TN__SIGV4_EINVAL);
    char *big = malloc(TN__SIGV4_MAX_FIELD + 2);
    ASSERT(big);
    memset(big, 'a', TN__SIGV4_MAX_FIELD + 1);
    ASSERT_INT_EQ(tn__sigv4_uri_encode(big, TN__SIGV4_MAX_FIELD + 1, 1, &out), TN__SIGV4_ETOOBIG);
    free(big);
}

/* ---- hostile input ----------------------------------------------------------- */

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static tn__sigv4_header host_hdr[] = {{"Host", "example.amazonaws.com"}};

static tn__sigv4_signer good_signer(unsigned flags) {
    tn__sigv4_signer s = {"AKIDEXAMPLE", SECRET, NULL, "us-east-1", "service", 1440938160,
                          flags, 3600};
    return s;
}

static tn__sigv4_request good_req(void) {
    tn__sigv4_request r = {"GET", "/", "", host_hdr, 1, NULL, 0, NULL};
    return r;
}

/* Signs and checks the code; a failure must leave the result zeroed. */
#define expect_rc(s, r, want) expect_rc_at((s), (r), (want), __LINE__)
static void expect_rc_at(const tn__sigv4_signer *s, const tn__sigv4_request *r, int want,
                         int line) {
    tn__sigv4_result out;
    memset(&out, 0x5a, sizeof out);
    int rc = tn__sigv4_sign(s, r, &out);
    if (rc != want)
        TN_FAIL_("(line %d) sign returned %s, expected %s", line, tn__sigv4_errname(rc),
                 tn__sigv4_errname(want));
    if (rc) {
        ASSERT(out.canonical_request == NULL && out.query == NULL && out.authorization == NULL);
        ASSERT(out.nadd == 0);
    }
    tn__sigv4_result_free(&out);
}

TEST(sigv4_rejects_null_and_empty) {
    tn__sigv4_signer s = good_signer(0);
    tn__sigv4_request r = good_req();
    tn__sigv4_result out;
    expect_rc(&s, &r, TN__SIGV4_OK);
    ASSERT_INT_EQ(tn__sigv4_sign(NULL, &r, &out), TN__SIGV4_EINVAL);
    ASSERT_INT_EQ(tn__sigv4_sign(&s, NULL, &out), TN__SIGV4_EINVAL);
    ASSERT_INT_EQ(tn__sigv4_sign(&s, &r, NULL), TN__SIGV4_EINVAL);
    tn__sigv4_result_free(NULL);

    for (int i = 0; i < 4; i++) {
        for (int empty = 0; empty < 2; empty++) {
            tn__sigv4_signer t = s;
            const char *v = empty ? "" : NULL;
            if (i == 0) t.access_key_id = v;
            if (i == 1) t.secret_access_key = v;
            if (i == 2) t.region = v;
            if (i == 3) t.service = v;
            expect_rc(&t, &r, TN__SIGV4_EINVAL);
        }
    }
    tn__sigv4_signer slash = s;
    slash.access_key_id = "AKID/EXAMPLE"; /* would forge a credential scope */
    expect_rc(&slash, &r, TN__SIGV4_EINVAL);
    tn__sigv4_request t = r;
    t.method = NULL;
    expect_rc(&s, &t, TN__SIGV4_EINVAL);
    t.method = "";
    expect_rc(&s, &t, TN__SIGV4_EINVAL);
    t.method = "GET /x";
    expect_rc(&s, &t, TN__SIGV4_EINVAL);
    t = r;
    t.path = NULL;
    expect_rc(&s, &t, TN__SIGV4_EINVAL);
    t.path = "no-leading-slash";
    expect_rc(&s, &t, TN__SIGV4_EINVAL);
    t = r;
    t.headers = NULL; /* no host */
    t.nheaders = 0;
    expect_rc(&s, &t, TN__SIGV4_EINVAL);
    t.nheaders = 1;
    expect_rc(&s, &t, TN__SIGV4_EINVAL);
    t = r;
    t.body = NULL;
    t.body_len = 5;
    expect_rc(&s, &t, TN__SIGV4_EINVAL);
    t = r;
    t.payload_hash = "";
    expect_rc(&s, &t, TN__SIGV4_EINVAL);
    t.payload_hash = "UNSIGNED PAYLOAD";
    expect_rc(&s, &t, TN__SIGV4_EINVAL);
}

/* "" signs as "/", and normalization cannot climb above the root. */
TEST(sigv4_path_edges) {
    static const struct {
        const char *path;
        unsigned flags;
        const char *uri;
    } cases[] = {
        {"", 0, "/"},
        {"", TN__SIGV4_NORMALIZE_PATH, "/"},
        {"/..", TN__SIGV4_NORMALIZE_PATH, "/"},
        {"/../../a", TN__SIGV4_NORMALIZE_PATH, "/a"},
        {"/a/b/..", TN__SIGV4_NORMALIZE_PATH, "/a/"},
        {"/a/./b/.", TN__SIGV4_NORMALIZE_PATH, "/a/b/"},
        {"/%2E%2E/a%20b", 0, "/%252E%252E/a%2520b"},
        {"/a%20b/", TN__SIGV4_PATH_ENCODED, "/a%20b/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tn__sigv4_signer s = good_signer(cases[i].flags);
        tn__sigv4_request r = good_req();
        r.path = cases[i].path;
        tn__sigv4_result out;
        int rc = tn__sigv4_sign(&s, &r, &out);
        if (rc) TN_FAIL_("path \"%s\": %s", cases[i].path, tn__sigv4_errname(rc));
        const char *uri = strchr(out.canonical_request, '\n') + 1;
        size_t len = strcspn(uri, "\n");
        if (len != strlen(cases[i].uri) || strncmp(uri, cases[i].uri, len) != 0)
            TN_FAIL_("path \"%s\": canonical URI \"%.*s\", expected \"%s\"", cases[i].path,
                     (int)len, uri, cases[i].uri);
        tn__sigv4_result_free(&out);
    }
    /* S3 paths must already be encoded: no raw space, no broken escape. */
    tn__sigv4_signer s = good_signer(TN__SIGV4_S3);
    tn__sigv4_request r = good_req();
    const char *bad[] = {"/a b", "/a%2", "/a%G0", "/%", "/a?b", "/\xe1\x88\xb4"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r.path = bad[i];
        expect_rc(&s, &r, TN__SIGV4_EINVAL);
    }
}

TEST(sigv4_rejects_bad_query) {
    tn__sigv4_signer s = good_signer(0);
    tn__sigv4_request r = good_req();
    const char *bad[] = {"a=%", "a=%4", "a=%G1", "%zz=1", "a=1&b=%%"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r.query = bad[i];
        expect_rc(&s, &r, TN__SIGV4_EINVAL);
    }
    const char *fine[] = {"&&&", "a", "=", "a=%00", "a==b&a=&&b"};
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        r.query = fine[i];
        expect_rc(&s, &r, TN__SIGV4_OK);
    }
    /* A presigned query may not smuggle in the signer's own parameters. */
    s = good_signer(TN__SIGV4_PRESIGN);
    const char *taken[] = {"X-Amz-Signature=00", "x-amz-date=1", "a=1&X-Amz-Security-Token=t",
                           "X%2DAmz-Credential=x"};
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++) {
        r.query = taken[i];
        expect_rc(&s, &r, TN__SIGV4_EINVAL);
    }
}

TEST(sigv4_rejects_bad_headers) {
    tn__sigv4_signer s = good_signer(0);
    tn__sigv4_request r = good_req();
    static const tn__sigv4_header bad[][2] = {
        {{"Host", "example.amazonaws.com"}, {"X-Evil", "a\r\nx-amz-date:1"}},
        {{"Host", "example.amazonaws.com"}, {"X-Evil", "a\nb"}},
        {{"Host", "example.amazonaws.com"}, {"X Evil", "a"}},
        {{"Host", "example.amazonaws.com"}, {"X-Evil:", "a"}},
        {{"Host", "example.amazonaws.com"}, {"", "a"}},
        {{"Host", "example.amazonaws.com"}, {NULL, "a"}},
        {{"Host", "example.amazonaws.com"}, {"X-Evil", NULL}},
        {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
        {{"Host", "example.amazonaws.com"}, {"Authorization", "x"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r.headers = bad[i];
        r.nheaders = 2;
        expect_rc(&s, &r, TN__SIGV4_EINVAL);
    }
    /* The token header belongs to the signer when there is a token. */
    static const tn__sigv4_header tokh[] = {{"host", "h"}, {"X-Amz-Security-Token", "t"}};
    r.headers = tokh;
    expect_rc(&s, &r, TN__SIGV4_OK);
    s.session_token = "t";
    expect_rc(&s, &r, TN__SIGV4_EINVAL);
}

TEST(sigv4_rejects_overlong) {
    /* "/" and MAX_FIELD + 1 letters: longs + 1 is one byte over every limit. */
    size_t big = TN__SIGV4_MAX_FIELD + 2;
    char *longs = malloc(big + 1);
    ASSERT(longs);
    longs[0] = '/';
    memset(longs + 1, 'a', big - 1);
    longs[big] = '\0';
    tn__sigv4_signer s = good_signer(TN__SIGV4_PRESIGN);
    tn__sigv4_request r = good_req();
    r.path = longs;
    expect_rc(&s, &r, TN__SIGV4_ETOOBIG);
    r = good_req();
    r.query = longs + 1;
    expect_rc(&s, &r, TN__SIGV4_ETOOBIG);
    r = good_req();
    tn__sigv4_header h[2] = {{"host", "h"}, {"x-big", longs + 1}};
    r.headers = h;
    r.nheaders = 2;
    expect_rc(&s, &r, TN__SIGV4_ETOOBIG);
    r = good_req();
    s.session_token = longs + 1;
    expect_rc(&s, &r, TN__SIGV4_ETOOBIG);
    s = good_signer(0);
    s.secret_access_key = longs + 1;
    expect_rc(&s, &r, TN__SIGV4_ETOOBIG);
    s = good_signer(0);
    s.region = longs + 1;
    expect_rc(&s, &r, TN__SIGV4_ETOOBIG);

    /* At the limit, a path of multi-byte characters triples when encoded. */
    longs[TN__SIGV4_MAX_FIELD] = '\0';
    memset(longs + 1, '\xff', TN__SIGV4_MAX_FIELD - 1);
    r = good_req();
    r.path = longs;
    r.query = "";
    s = good_signer(TN__SIGV4_PRESIGN | TN__SIGV4_NORMALIZE_PATH);
    expect_rc(&s, &r, TN__SIGV4_OK);
    free(longs);

    tn__sigv4_header many[TN__SIGV4_MAX_HEADERS + 1];
    for (size_t i = 0; i < TN__SIGV4_MAX_HEADERS + 1; i++)
        many[i] = (tn__sigv4_header){"host", "h"};
    r = good_req();
    r.headers = many;
    r.nheaders = TN__SIGV4_MAX_HEADERS;
    expect_rc(&s, &r, TN__SIGV4_OK);
    r.nheaders = TN__SIGV4_MAX_HEADERS + 1;
    expect_rc(&s, &r, TN__SIGV4_ETOOBIG);
}

TEST(sigv4_rejects_bad_clock_and_expiry) {
    tn__sigv4_request r = good_req();
    tn__sigv4_signer s = good_signer(0);
    s.now = -1;
    expect_rc(&s, &r, TN__SIGV4_EINVAL);
    s.now = (time_t)400000000000LL; /* year ~14650 */
    expect_rc(&s, &r, TN__SIGV4_EINVAL);
    s = good_signer(TN__SIGV4_PRESIGN);
    long bad[] = {0, -1, TN__SIGV4_MAX_EXPIRES + 1};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s.expires = bad[i];
        expect_rc(&s, &r, TN__SIGV4_EINVAL);
    }
    s.expires = TN__SIGV4_MAX_EXPIRES;
    expect_rc(&s, &r, TN__SIGV4_OK);
    /* Header mode ignores expires. */
    s = good_signer(0);
    s.expires = -5;
    expect_rc(&s, &r, TN__SIGV4_OK);
}

/* Whatever is signed, no output carries the secret; results are deterministic. */
TEST(sigv4_no_secret_in_output) {
    static const char *const secrets[] = {SECRET, "q"};
    for (size_t k = 0; k < sizeof secrets / sizeof *secrets; k++) {
        for (unsigned presign = 0; presign < 2; presign++) {
            tn__sigv4_signer s = good_signer(presign ? TN__SIGV4_PRESIGN : TN__SIGV4_S3);
            s.secret_access_key = secrets[k];
            s.session_token = "token/with+chars=";
            tn__sigv4_request r = good_req();
            r.query = "z=1&a=2";
            tn__sigv4_result a, b;
            ASSERT_INT_EQ(tn__sigv4_sign(&s, &r, &a), 0);
            ASSERT_INT_EQ(tn__sigv4_sign(&s, &r, &b), 0);
            ASSERT_STR_EQ(a.signature, b.signature);
            ASSERT_STR_EQ(a.canonical_request, b.canonical_request);
            if (strlen(secrets[k]) > 4) {
                const char *outs[] = {a.canonical_request, a.string_to_sign, a.authorization,
                                      a.query, a.add[0].value, a.add[1].value, a.add[2].value};
                for (size_t i = 0; i < sizeof outs / sizeof *outs; i++)
                    ASSERT(!outs[i] || !strstr(outs[i], secrets[k]));
            }
            tn__sigv4_result_free(&a);
            tn__sigv4_result_free(&b);
        }
    }
}

/*
 * Random paths, queries and header values built from the characters that
 * matter to the parsers ('%', '/', '.', '&', '=', blanks, UTF-8 bytes, and
 * now and then a CR or LF in the header value)
 * under every flag combination.  Seeded, so a failure reproduces.  Each call
 * must end in OK, EINVAL or ETOOBIG; on OK the canonical request must have its
 * fixed shape and a canonical URI that starts with '/'.
 */
TEST(sigv4_random_input) {
    static const char alphabet[] = "%//..&&== \taZ09AF-_~+?#\xe1\x88\xb4\xff";
    uint64_t x = 0x9e3779b97f4a7c15u;
    char path[64], query[64], value[64];
    for (int iter = 0; iter < 20000; iter++) {
        char *bufs[3] = {path, query, value};
        for (int b = 0; b < 3; b++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t len = x % 40;
            for (size_t i = 0; i < len; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                bufs[b][i] = alphabet[x % (sizeof alphabet - 1)];
            }
            bufs[b][len] = '\0';
        }
        if (iter % 4) path[0] = '/';
        size_t vl = strlen(value);
        if (iter % 7 == 0 && vl) value[x % vl] = iter % 2 ? '\r' : '\n';
        tn__sigv4_header h[2] = {{"host", "h"}, {"x-v", value}};
        tn__sigv4_signer s = good_signer((unsigned)iter & 0x1f);
        if (iter % 3 == 0) s.session_token = "tok";
        tn__sigv4_request r = {"PUT", path, query, h, 2, value, strlen(value), NULL};
        tn__sigv4_result out;
        int rc = tn__sigv4_sign(&s, &r, &out);
        if (rc != TN__SIGV4_OK && rc != TN__SIGV4_EINVAL && rc != TN__SIGV4_ETOOBIG)
            TN_FAIL_("iteration %d: %s", iter, tn__sigv4_errname(rc));
        if (rc == TN__SIGV4_OK) {
            const char *c = out.canonical_request;
            size_t lines = 0;
            for (; *c; c++) lines += *c == '\n';
            ASSERT(!strchr(out.canonical_request, '\r'));
            ASSERT(strncmp(out.canonical_request, "PUT\n/", 5) == 0);
            /* method, URI, query, >= 1 header, blank, signed names, hash */
            ASSERT(lines >= 6);
            ASSERT_INT_EQ(strlen(out.signature), 64);
        }
        tn__sigv4_result_free(&out);
    }
}
