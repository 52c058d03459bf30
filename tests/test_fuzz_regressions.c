/*
 * test_fuzz_regressions.c - the inputs the libFuzzer targets in tests/fuzz/
 * found, and the trickiest seeds of each target, replayed through the same
 * entry points as plain unit tests (run with `unit fuzz`).
 *
 * Found by fuzzing, and fixed:
 *   - fuzz_json_check: tn__json_valid accepted unpaired UTF-16 surrogate
 *     escapes ("\uDDDD"), which cJSON refuses, so an item stored through the
 *     C API or the CLI could not be read back by the HTTP layer or the CLI.
 *   - fuzz_http_json: POST /v1/items with {"d\u0061ta":1,"data":2} stored 2
 *     (the raw text of the later, plainly spelled member) while the body was
 *     checked as cJSON reads it, with "data" = 1.
 *   - fuzz_config: a tab inside a value (cors_origins = "a,<TAB>b") was
 *     kept; a value now holds no tab (it is only a separator).
 *   - fuzz_sts: an AssumeRole <Expiration> in the year 1037 (or month 13, or
 *     a signed year) was taken: credentials that read as expired, so every
 *     request would have called STS again.  Now refused (TN_REMOTE).
 *   - fuzz_sts: an AssumeRole answer with an empty <AccessKeyId></AccessKeyId>
 *     (or secret, or token) was taken, and would have been cached and used
 *     to sign every request until its expiry.  Now refused (TN_REMOTE).
 *   - fuzz_ddb_response: a GetItem version "12abc" read as 12, "-5" as -5
 *     and 20 digits as INT64_MAX (a conflict loss for every local write);
 *     only plain decimal digits that fit count now, else "absent".
 * Expected values here are written out by hand, never computed by the code
 * under test.
 */
#include "handlers.h"
#include "aws.h"
#include "config.h"
#include "crypto.h"
#include "dynamo.h"
#include "fixture.h"
#include "json_check.h"
#include "jwt.h"
#include "sigv4.h"

#include <cjson/cJSON.h>

/* ---- json_check ----------------------------------------------------------- */

/* The crash input, as found: a lone low surrogate, a byte 0xC4, another. */
static const unsigned char json_crash_1[] = {0x22, 0x5c, 0x75, 0x44, 0x44, 0x44, 0x44, 0xc4,
                                             0x5c, 0x75, 0x44, 0x44, 0x44, 0x44, 0x22};

static int cjson_parses(const char *s, size_t n) {
    cJSON *j = cJSON_ParseWithLengthOpts(s, n, NULL, 0);
    cJSON_Delete(j);
    return j != NULL;
}

TEST(fuzz_json_lone_surrogates) {
    ASSERT_INT_EQ(tn__json_valid((const char *)json_crash_1, sizeof json_crash_1, 64), 0);
    ASSERT_INT_EQ(cjson_parses((const char *)json_crash_1, sizeof json_crash_1), 0);
    static const char *const refused[] = {
        "\"\\udc00\"",           /* lone low */
        "[\"\\ud800x\"]",        /* high, then not an escape */
        "\"\\ud800\"",           /* high at the end of the string */
        "\"\\ud800\\ud800\"",    /* high, high */
        "\"\\ud800\\u0041\"",    /* high, then not a low one */
        "\"\\ud800\\",           /* truncated after the high one */
        "{\"\\uDFFF\":1}",       /* in a member name too */
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (tn__json_valid(refused[i], strlen(refused[i]), 64))
            TN_FAIL_("accepted %s", refused[i]);
    }
    static const char *const accepted[] = {
        "\"\\ud83d\\ude00 ok\"", "\"\\uD800\\uDC00\"", "\"\\uDBFF\\uDFFF\"", "\"\\ud7ff\\ue000\"",
        "\"\\u0000\"", "{\"a\":[\"\\uD834\\uDD1E\"]}",
    };
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        if (!tn__json_valid(accepted[i], strlen(accepted[i]), 64))
            TN_FAIL_("refused %s", accepted[i]);
        if (!cjson_parses(accepted[i], strlen(accepted[i])))
            TN_FAIL_("cJSON refuses %s", accepted[i]);
    }
}

TEST(fuzz_json_store_refuses_lone_surrogate) {
    fixture f;
    fixture_init(&f);
    ASSERT_INT_EQ(tn_item_put(f.a, "s1", "{\"v\":\"\\udc00\"}", NULL), TN_INVALID);
    ASSERT_OK(tn_item_put(f.a, "s2", "{\"v\":\"\\ud83d\\ude00\"}", NULL));
    fixture_done(&f);
}

TEST(fuzz_json_depth_seeds) {
    char deep[2 * 65 + 1];
    for (int i = 0; i < 64; i++) deep[i] = '[', deep[64 + i] = ']';
    ASSERT_INT_EQ(tn__json_valid(deep, 128, 64), 1);
    ASSERT_INT_EQ(tn__json_valid(deep, 128, 63), 0);
    for (int i = 0; i < 65; i++) deep[i] = '[', deep[65 + i] = ']';
    ASSERT_INT_EQ(tn__json_valid(deep, 130, 64), 0);
    ASSERT_INT_EQ(tn__json_valid("{\"a\":1} x", 9, 64), 0);
    ASSERT_INT_EQ(tn__json_valid("[01]", 4, 64), 0);
    ASSERT_INT_EQ(tn__json_valid("{\"a\":\"\0\"}", 9, 64), 0);
}

/* ---- http_json: POST /v1/items -------------------------------------------- */

/* Runs tn__api_item_create on body as tenant acme; returns the status and the
 * stored data of the created item in *stored (malloc'd) on 201. */
static int post_item(fixture *f, const char *body, char **stored) {
    tn__req r;
    memset(&r, 0, sizeof r);
    r.fd = -1;
    size_t n = strlen(body);
    r.body = malloc(n + 1);
    ASSERT(r.body);
    memcpy(r.body, body, n + 1);
    r.len = n;
    r.has_body = 1;
    r.s = f->a;
    r.key.max_items = -1;
    r.key.max_file_bytes = -1;
    tn__resp out;
    memset(&out, 0, sizeof out);
    out.fd = -1;
    tn__api_item_create(&r, &out);
    *stored = NULL;
    if (out.status == 201) {
        cJSON *j = cJSON_Parse(out.body);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        ASSERT(cJSON_IsString(id));
        tn_item it = {0};
        ASSERT_OK(tn_item_get(f->a, id->valuestring, &it));
        *stored = it.data;
        it.data = NULL;
        tn_item_clear(&it);
        cJSON_Delete(j);
    }
    free(out.body);
    free(r.body);
    return out.status;
}

TEST(fuzz_http_item_escaped_data_name) {
    fixture f;
    fixture_init(&f);
    char *stored;
    /* The finding: the body says data = 1 (the first member, as cJSON reads
     * it); 2 used to be stored. */
    ASSERT_INT_EQ(post_item(&f, "{\"d\\u0061ta\":1,\"data\":2}", &stored), 201);
    ASSERT_STR_EQ(stored, "1");
    free(stored);
    ASSERT_INT_EQ(post_item(&f, "{\"data\":1,\"data\":2}", &stored), 201);
    ASSERT_STR_EQ(stored, "1");
    free(stored);
    /* Plain bodies keep the client's exact text (every digit). */
    ASSERT_INT_EQ(post_item(&f, "{\"data\":{\"n\":12345678901234567890123}}", &stored), 201);
    ASSERT_STR_EQ(stored, "{\"n\":12345678901234567890123}");
    free(stored);
    ASSERT_INT_EQ(post_item(&f, " { \"data\" : { \"a\" : \"}\" } , \"id\" : \"w\" } ", &stored),
                  201);
    ASSERT_STR_EQ(stored, "{ \"a\" : \"}\" }");
    free(stored);
    ASSERT_INT_EQ(post_item(&f, "{\"data\":\"a\\\"}b\\\\\",\"id\":\"s\"}", &stored), 201);
    ASSERT_STR_EQ(stored, "\"a\\\"}b\\\\\"");
    free(stored);
    fixture_done(&f);
}

TEST(fuzz_http_item_refusals) {
    fixture f;
    fixture_init(&f);
    char *stored;
    ASSERT_INT_EQ(post_item(&f, "{\"id\":5,\"data\":1}", &stored), 400);
    ASSERT_INT_EQ(post_item(&f, "{\"id\":\"x\"}", &stored), 400);
    ASSERT_INT_EQ(post_item(&f, "[{\"data\":1}]", &stored), 400);
    ASSERT_INT_EQ(post_item(&f, "{\"id\":\"../x\",\"data\":1}", &stored), 400);
    ASSERT_INT_EQ(post_item(&f, "{\"data\":\"\\udc00\"}", &stored), 400);
    /* 33 levels: past the HTTP layer's bound of 32. */
    char deep[128] = "{\"data\":";
    size_t n = strlen(deep);
    for (int i = 0; i < 32; i++) deep[n++] = '[';
    for (int i = 0; i < 32; i++) deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    ASSERT_INT_EQ(post_item(&f, deep, &stored), 400);
    /* An id that only globex has is created fresh for acme, not globex's row. */
    ASSERT_INT_EQ(post_item(&f, "{\"id\":\"g-only\",\"data\":{\"owner\":\"acme\"}}", &stored), 201);
    ASSERT_STR_EQ(stored, "{\"owner\":\"acme\"}");
    free(stored);
    tn_item it = {0};
    ASSERT_OK(tn_item_get(f.g, "g-only", &it));
    ASSERT_STR_EQ(it.data, "{\"owner\":\"GLOBEX-SECRET\"}");
    tn_item_clear(&it);
    fixture_done(&f);
}

/* ---- file names ------------------------------------------------------------ */

TEST(fuzz_file_name_seeds) {
    static const char *const refused[] = {
        "a/../b", "./a", "..", "/etc/passwd", "a\\b", "a\xc0\xaf", "\xed\xa0\x80",
        "dir/", "a//b", "a\x7f" "b", "a\x01", "\xf4\x90\x80\x80", "\xe0\x80\xaf", "",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (tn_file_name_valid(refused[i])) TN_FAIL_("accepted name #%zu", i);
    static const char *const accepted[] = {
        "report.pdf", "a/b/c.txt", "a..b/.hidden/...", "caf\xc3\xa9/\xe2\x82\xac.txt",
        "\xf4\x8f\xbf\xbf", "...",
    };
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        if (!tn_file_name_valid(accepted[i])) TN_FAIL_("refused \"%s\"", accepted[i]);
    char name[1026];
    memset(name, 'a', 1025);
    name[1025] = '\0';
    ASSERT_INT_EQ(tn_file_name_valid(name), 0);
    name[1024] = '\0';
    ASSERT_INT_EQ(tn_file_name_valid(name), 1);
}

/* ---- cursors --------------------------------------------------------------- */

static int count_row(const tn_item *it, void *arg) {
    if (strstr(it->data, "GLOBEX")) TN_FAIL_("acme's list returned %s", it->id);
    (*(int *)arg)++;
    return 0;
}

static int any_row(const tn_item *it, void *arg) {
    (void)it, (void)arg;
    return 0;
}

static int no_file(const tn_file *fl, void *arg) {
    (void)arg;
    TN_FAIL_("acme has no files, yet %s was listed", fl->name);
}

/* rows listed in acme's session from cursor c, or -1 when it is refused. */
static int acme_rows(fixture *f, const char *c) {
    int rows = 0;
    char *next = NULL;
    int rc = tn_item_list(f->a, c, 10, count_row, &rows, &next);
    free(next);
    if (rc == TN_OK) return rows;
    ASSERT_INT_EQ(rc, TN_INVALID);
    ASSERT_INT_EQ(rows, 0);
    return -1;
}

TEST(fuzz_cursor_seeds) {
    fixture f;
    fixture_init(&f);
    ASSERT_OK(tn_item_put(f.a, "a-01", "{}", NULL));
    ASSERT_OK(tn_item_put(f.a, "a-02", "{}", NULL));
    /* acme: a-01, a-02, shared-id; globex: g-only, shared-id */
    char *ca = NULL, *cg = NULL;
    int rows = 0;
    ASSERT_OK(tn_item_list(f.a, NULL, 1, count_row, &rows, &ca));
    ASSERT_OK(tn_item_list(f.g, NULL, 1, any_row, NULL, &cg));
    ASSERT(ca && cg);
    /* "a-01" is YS0wMQ in base64url; the tag is 16 bytes, 22 characters. */
    ASSERT(strncmp(ca, "YS0wMQ.", 7) == 0 && strlen(ca) == 7 + 22);
    ASSERT_INT_EQ(acme_rows(&f, ca), 2);  /* a-02, shared-id */
    ASSERT_INT_EQ(acme_rows(&f, ""), 3);
    ASSERT_INT_EQ(acme_rows(&f, cg), -1); /* globex's cursor */
    char buf[64];
    snprintf(buf, sizeof buf, "%s", ca);
    buf[7] = buf[7] == 'A' ? 'B' : 'A'; /* the tag changed */
    ASSERT_INT_EQ(acme_rows(&f, buf), -1);
    snprintf(buf, sizeof buf, "YS0wMR%s", ca + 6); /* same bytes, non-canonical */
    ASSERT_INT_EQ(acme_rows(&f, buf), -1);
    ASSERT_INT_EQ(acme_rows(&f, "YS0wMQ.AAAAAAAAAAAAAAAAAAAAAA"), -1);
    ASSERT_INT_EQ(acme_rows(&f, "YS0wMQ"), -1);
    ASSERT_INT_EQ(acme_rows(&f, "YS0w*Q.AAAAAAAAAAAAAAAAAAAAAA"), -1);
    ASSERT_INT_EQ(acme_rows(&f, "."), -1);
    /* an item cursor is no file cursor */
    char *next = NULL;
    ASSERT_INT_EQ(tn_file_list(f.a, ca, 10, no_file, NULL, &next), TN_INVALID);
    ASSERT(next == NULL);
    free(ca);
    free(cg);
    fixture_done(&f);
}

/* ---- JWT ------------------------------------------------------------------- */

static const unsigned char K1[32] = "fuzz-key-one-0123456789abcdefghi";
static const unsigned char K2[32] = "fuzz-key-two-0123456789abcdefghi";
#define NOW 1700000000

/* base64url(header) "." base64url(payload) "." base64url(HMAC(key, ...)),
 * built here from crypto.c's primitives, not by jwt.c. */
static char *make_token(const unsigned char *key, const char *h, const char *p) {
    size_t hl = strlen(h), pl = strlen(p);
    size_t a = tn__b64url_encoded_len(hl), b = tn__b64url_encoded_len(pl);
    size_t c = tn__b64url_encoded_len(TN_SHA256_LEN);
    char *tok = malloc(a + b + c + 3);
    ASSERT(tok);
    tn__b64url_encode((const unsigned char *)h, hl, tok);
    tok[a] = '.';
    tn__b64url_encode((const unsigned char *)p, pl, tok + a + 1);
    unsigned char mac[TN_SHA256_LEN];
    tn__hmac_sha256(key, 32, tok, a + 1 + b, mac);
    tok[a + 1 + b] = '.';
    tn__b64url_encode(mac, sizeof mac, tok + a + b + 2);
    tok[a + b + c + 2] = '\0';
    return tok;
}

static int verify(const unsigned char *key, const char *h, const char *p, int leeway,
                  tn__jwt_claims *c) {
    char *tok = make_token(K1, h, p);
    int rc = tn__jwt_verify(key, 32, tok, NOW, leeway, c);
    free(tok);
    return rc;
}

#define HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define GOOD                                                                             \
    "{\"sub\":\"k1\",\"iat\":1699999990,\"nbf\":1699999990,\"exp\":1700003600,"        \
    "\"jti\":\"0123456789abcdef0123456789abcdef\"}"

TEST(fuzz_jwt_seeds) {
    tn__jwt_claims c;
    ASSERT_INT_EQ(verify(K1, HDR, GOOD, 0, &c), TN__JWT_OK);
    ASSERT_STR_EQ(c.sub, "k1");
    ASSERT_INT_EQ(c.exp, 1700003600);
    ASSERT_INT_EQ(verify(K2, HDR, GOOD, 0, &c), TN__JWT_ESIG);
    ASSERT_INT_EQ(c.exp, 0); /* zeroed on failure */
    ASSERT_INT_EQ(verify(K1, "{\"alg\":\"none\"}", GOOD, 0, &c), TN__JWT_EALG);
    ASSERT_INT_EQ(verify(K1, "{\"alg\":\"HS256\",\"crit\":[\"x\"]}", GOOD, 0, &c),
                  TN__JWT_EHEADER);
    ASSERT_INT_EQ(verify(K1, HDR,
                         "{\"sub\":\"a\",\"sub\":\"b\",\"iat\":1,\"nbf\":1,\"exp\":2000000000,"
                         "\"jti\":\"j\"}",
                         0, &c),
                  TN__JWT_EPAYLOAD);
    ASSERT_INT_EQ(verify(K1, HDR,
                         "{\"sub\":\"a\\u0000b\",\"iat\":1,\"nbf\":1,\"exp\":2000000000,"
                         "\"jti\":\"j\"}",
                         0, &c),
                  TN__JWT_EPAYLOAD);
    ASSERT_INT_EQ(verify(K1, HDR,
                         "{\"sub\":\"a\",\"iat\":1,\"nbf\":1,\"exp\":2000000000.5,\"jti\":\"j\"}",
                         0, &c),
                  TN__JWT_ECLAIMS);
    /* exp == now: expired, unless the leeway covers it. */
    static const char at_now[] = "{\"sub\":\"k1\",\"iat\":1699999990,\"nbf\":1699999990,"
                                 "\"exp\":1700000000,\"jti\":\"j\"}";
    ASSERT_INT_EQ(verify(K1, HDR, at_now, 0, &c), TN__JWT_EEXPIRED);
    ASSERT_INT_EQ(verify(K1, HDR, at_now, 1, &c), TN__JWT_OK);
    /* What the fuzzer met: exp == nbf (a token tn__jwt_sign would not issue)
     * verifies within the leeway, and only under the key that signed it. */
    static const char flat[] = "{\"sub\":\"k1\",\"iat\":1699999990,\"nbf\":1699999991,"
                               "\"exp\":1699999991,\"jti\":\"0123456789abdcf\"}";
    ASSERT_INT_EQ(verify(K1, HDR, flat, 10, &c), TN__JWT_OK);
    ASSERT_INT_EQ(verify(K2, HDR, flat, 10, &c), TN__JWT_ESIG);
    ASSERT_INT_EQ(tn__jwt_sign(K1, 32, &c, &(char *){NULL}), TN__JWT_EINVAL);
}

/* ---- SigV4 ----------------------------------------------------------------- */

static int sign(unsigned flags, const char *query, const tn__sigv4_header *h, size_t nh,
                tn__sigv4_result *r) {
    tn__sigv4_request req = {"POST", "/", query, h, nh, "{}", 2, NULL};
    tn__sigv4_signer s = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL,
                          "us-east-1", "service", 1440938160, flags, 60};
    return tn__sigv4_sign(&s, &req, r);
}

TEST(fuzz_sigv4_seeds) {
    tn__sigv4_result r;
    const tn__sigv4_header multi[] = {{"Host", "h"},
                                      {"My-Header1", "  a   b  "},
                                      {"my-header1", "c"},
                                      {"X-Amz-Target", "DynamoDB_20120810.PutItem"}};
    ASSERT_INT_EQ(sign(TN__SIGV4_AWS, NULL, multi, 4, &r), TN__SIGV4_OK);
    ASSERT_STR_EQ(r.canonical_request,
                  "POST\n/\n\n"
                  "host:h\nmy-header1:a b,c\nx-amz-date:20150830T123600Z\n"
                  "x-amz-target:DynamoDB_20120810.PutItem\n\n"
                  "host;my-header1;x-amz-date;x-amz-target\n"
                  "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    tn__sigv4_result_free(&r);
    /* CR/LF (or any control byte) in a value would add a canonical line. */
    static const char *const bad_values[] = {"a\r\nInjected: 1", "a\nb", "a\rb", "a\x01", "\x7f"};
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        tn__sigv4_header h[2] = {{"Host", "h"}, {"X", bad_values[i]}};
        for (unsigned presign = 0; presign <= 1; presign++) {
            ASSERT_INT_EQ(sign(TN__SIGV4_AWS | presign, NULL, h, 2, &r), TN__SIGV4_EINVAL);
            ASSERT(r.canonical_request == NULL && r.authorization == NULL && r.query == NULL);
        }
    }
    tn__sigv4_header crlf_name[2] = {{"Host", "h"}, {"X\r\nY", "1"}};
    ASSERT_INT_EQ(sign(TN__SIGV4_AWS, NULL, crlf_name, 2, &r), TN__SIGV4_EINVAL);
    ASSERT_INT_EQ(sign(TN__SIGV4_AWS, "a=%zz", multi, 1, &r), TN__SIGV4_EINVAL);
    ASSERT_INT_EQ(sign(TN__SIGV4_AWS, "b=%4", multi, 1, &r), TN__SIGV4_EINVAL);
    /* A raw CR/LF in the query is encoded, never copied. */
    ASSERT_INT_EQ(sign(TN__SIGV4_AWS | TN__SIGV4_PRESIGN, "a=x\r\ny", multi, 1, &r),
                  TN__SIGV4_OK);
    ASSERT(strncmp(r.canonical_request, "POST\n/\nX-Amz-Algorithm=", 23) == 0);
    ASSERT(strstr(r.canonical_request, "&a=x%0D%0Ay\nhost:h\n\nhost\n") != NULL);
    ASSERT(strstr(r.query, "a=x%0D%0Ay") != NULL);
    tn__sigv4_result_free(&r);
}

/* ---- config --------------------------------------------------------------- */

TEST(fuzz_config_tab_in_value) {
    /* As found (shortened): a tab after a comma of cors_origins. */
    static const char found[] = "#ap 20\ncors_origins = https://pp.local:8443, "
                                "http://l.local:8442,\thttp://loa\t";
    tn__config c;
    tn__config_err e;
    ASSERT_INT_EQ(tn__config_parse(found, sizeof found - 1, &c, &e), TN_INVALID);
    ASSERT_INT_EQ(e.line, 2);
    ASSERT_STR_EQ(e.key, "cors_origins");
    ASSERT_STR_EQ(e.msg, "contains a tab");
    static const char quoted[] = "listen = \"unix:/a\tb\"\n";
    ASSERT_INT_EQ(tn__config_parse(quoted, sizeof quoted - 1, &c, &e), TN_INVALID);
    ASSERT_STR_EQ(e.msg, "contains a tab");
    /* Tabs around the value and the '=' are spacing, not part of it. */
    static const char spaced[] = "\tregion\t=\teu-west-1\t\n";
    ASSERT_INT_EQ(tn__config_parse(spaced, sizeof spaced - 1, &c, &e), TN_OK);
    ASSERT_STR_EQ(c.region, "eu-west-1");
}

/* ---- sts ------------------------------------------------------------------ */

static int assume(const char *expiration, tn__aws_creds *c) {
    char xml[600];
    snprintf(xml, sizeof xml,
             "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
             "<AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>s3cr3t</SecretAccessKey>"
             "<SessionToken>tok</SessionToken><Expiration>%s</Expiration>"
             "</Credentials></AssumeRoleResult></AssumeRoleResponse>", expiration);
    return tn__aws_parse_assume_role(xml, c);
}

TEST(fuzz_sts_expiration_in_range) {
    tn__aws_creds c;
    ASSERT_INT_EQ(assume("2026-11-24T15:05:35Z", &c), TN_OK);
    ASSERT_INT_EQ(c.expires, 1795532735); /* date -u -d 2026-11-24T15:05:35Z +%s */
    ASSERT_STR_EQ(c.akid, "ASIAEXAMPLE");
    ASSERT_INT_EQ(assume("2026-11-24T15:05:35.123Z", &c), TN_OK);
    ASSERT_INT_EQ(c.expires, 1795532735);
    static const char *const refused[] = {
        "1037-11-24T15:05:35Z", /* as found */
        "1969-12-31T23:59:59Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z",
        "2026-11-32T00:00:00Z", "2026-11-24T24:00:00Z", "2026-11-24T15:60:00Z",
        "-001-11-24T15:05:35Z", "+202-11-24T15:05:35Z", "2026-11-24", "",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (assume(refused[i], &c) != TN_REMOTE) TN_FAIL_("accepted expiry %s", refused[i]);
        ASSERT(c.akid[0] == '\0' && c.secret[0] == '\0' && c.expires == 0);
    }
}

TEST(fuzz_sts_empty_fields) {
    /* As found, reduced: an empty AccessKeyId. */
    static const char found[] =
        "<=\"h\n    <Credentials>\n     %<AccessKeyId></AccessKeyId>\n"
        "      <SecretAccessKey>wJbPxRfzEXAMPLEKEY</SecretAccessKey>\n"
        "      <SessionToken>FwoGN</SessionToken>\n"
        "     !<Expiration>7120-1-24T15:05:35R</Expiration>";
    tn__aws_creds c;
    ASSERT_INT_EQ(tn__aws_parse_assume_role(found, &c), TN_REMOTE);
    ASSERT(c.secret[0] == '\0' && c.expires == 0);
    static const char *const empty[] = {
        "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey></SecretAccessKey>"
        "<SessionToken>T</SessionToken><Expiration>2026-11-24T15:05:35Z</Expiration></Credentials>",
        "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
        "<SessionToken></SessionToken><Expiration>2026-11-24T15:05:35Z</Expiration></Credentials>",
    };
    for (size_t i = 0; i < 2; i++) ASSERT_INT_EQ(tn__aws_parse_assume_role(empty[i], &c), TN_REMOTE);
    ASSERT_INT_EQ(tn__aws_parse_assume_role(
                      "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
                      "<SessionToken>T</SessionToken><Expiration>2026-11-24T15:05:35Z</Expiration>"
                      "</Credentials>", &c), TN_OK);
    ASSERT_STR_EQ(c.token, "T");
}

/* ---- ddb_response --------------------------------------------------------- */

TEST(fuzz_ddb_version_strict) {
    ASSERT_INT_EQ(tn__ddb_version_of("{\"Item\":{\"version\":{\"N\":\"12abc\"}}}"), 0);
    ASSERT_INT_EQ(tn__ddb_version_of("{\"Item\":{\"version\":{\"N\":\"-5\"}}}"), 0);
    ASSERT_INT_EQ(tn__ddb_version_of("{\"Item\":{\"version\":{\"N\":\" 7\"}}}"), 0);
    ASSERT_INT_EQ(tn__ddb_version_of("{\"Item\":{\"version\":{\"N\":\"99999999999999999999\"}}}"), 0);
    ASSERT_INT_EQ(tn__ddb_version_of("{\"Item\":{\"version\":{\"N\":\"9223372036854775807\"}}}"),
                  INT64_MAX);
    ASSERT_INT_EQ(tn__ddb_version_of("{\"Item\":{\"version\":{\"N\":\"0000836451317\"}}}"),
                  836451317);
    ASSERT_INT_EQ(tn__ddb_version_of("{\"Item\":{\"version\":{\"N\":\"281474976710656\"}}}"),
                  281474976710656LL);
    ASSERT_INT_EQ(tn__ddb_version_of("{}"), 0);
    ASSERT_INT_EQ(tn__ddb_version_of(NULL), 0);
    ASSERT_INT_EQ(tn__ddb_refusal_version("{\"Item\":{\"version\":{\"N\":\"12abc\"}}}"), -1);
    ASSERT_INT_EQ(tn__ddb_refusal_version("{\"Item\":{\"version\":{\"N\":\"0\"}}}"), 0);
    ASSERT_INT_EQ(tn__ddb_refusal_version("{\"message\":\"x\"}"), -1);
}

TEST(fuzz_ddb_cancel_reasons_seed) {
    static const char body[] =
        "{\"__type\":\"com.amazonaws.dynamodb.v20120810#TransactionCanceledException\","
        "\"CancellationReasons\":[{\"Code\":\"None\"},{\"Code\":\"ConditionalCheckFailed\","
        "\"Item\":{\"version\":{\"N\":\"9\"}}},{\"Code\":\"ThrottlingError\"},"
        "{\"Code\":\"ValidationError\"},{},{\"Code\":\"ConditionalCheckFailed\"}]}";
    int why[6];
    int64_t ver[6];
    ASSERT_INT_EQ(tn__ddb_cancel_reasons(body, 6, why, ver), 0);
    ASSERT_INT_EQ(why[0], TN__DDB_REASON_RETRY);
    ASSERT_INT_EQ(why[1], TN__DDB_REASON_CONDITION);
    ASSERT_INT_EQ(ver[1], 9);
    ASSERT_INT_EQ(why[2], TN__DDB_REASON_RETRY);
    ASSERT_INT_EQ(why[3], TN__DDB_REASON_ALONE);
    ASSERT_INT_EQ(why[4], TN__DDB_REASON_RETRY);
    ASSERT_INT_EQ(why[5], TN__DDB_REASON_CONDITION);
    ASSERT_INT_EQ(ver[5], -1);
    ASSERT_INT_EQ(tn__ddb_cancel_reasons(body, 5, why, ver), -1);
    ASSERT_INT_EQ(tn__ddb_cancel_reasons("{\"__type\":\"x\"}", 0, why, ver), -1);
    ASSERT_INT_EQ(tn__ddb_cancel_reasons(NULL, 1, why, ver), -1);
    /* A 2xx that is not DynamoDB's answer is retried, never taken as written. */
    char type[TN__DDB_TYPE_MAX];
    ASSERT_INT_EQ(tn__ddb_response("PutItem", "{}", 2, 200, "<html>", 6, type), TN_NETWORK);
    ASSERT_INT_EQ(tn__ddb_response("PutItem", "{}", 2, 200, "{}", 2, type), TN_OK);
    static const char refusal[] = "{\"__type\":\"a#b#ConditionalCheckFailedException\"}";
    ASSERT_INT_EQ(tn__ddb_response("PutItem", "{}", 2, 400, refusal, sizeof refusal - 1, type),
                  TN_CONFLICT);
    ASSERT_STR_EQ(type, "ConditionalCheckFailedException");
}
