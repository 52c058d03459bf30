/*
 * test_sync_unit.c - the sync layer's pure parts: JSON -> DynamoDB
 * AttributeValue conversion, the remote key builder (and the hostile names it
 * refuses), backoff bounds, the shared credentials file and STS responses.
 * Expected values are written out by hand, never computed by the code.
 */
#include "harness.h"

#include "aws.h"
#include "dynamo.h"
#include "engine.h"
#include "remote_key.h"
#include "sbuf.h"

static char *av(const char *json) {
    tn__sbuf b = {0};
    if (tn__ddb_json_to_av(json, strlen(json), &b) != TN_OK) {
        tn__sb_free(&b);
        return NULL;
    }
    return tn__sb_take(&b);
}

TEST(sync_ddb_scalars) {
    char *s;
    ASSERT_STR_EQ(s = av("\"hi\""), "{\"S\":\"hi\"}"); free(s);
    ASSERT_STR_EQ(s = av(" true "), "{\"BOOL\":true}"); free(s);
    ASSERT_STR_EQ(s = av("false"), "{\"BOOL\":false}"); free(s);
    ASSERT_STR_EQ(s = av("null"), "{\"NULL\":true}"); free(s);
    ASSERT_STR_EQ(s = av("-0.5e-7"), "{\"N\":\"-0.5e-7\"}"); free(s);
}

TEST(sync_ddb_numbers_keep_every_digit) {
    char *s = av("123456789012345678901234567890");
    ASSERT_STR_EQ(s, "{\"N\":\"123456789012345678901234567890\"}");
    free(s);
}

TEST(sync_ddb_nested_document) {
    char *s = av("{\"a\": [1, \"x\\\"y\", {}], \"b\": {\"c\": null}, \"d\": []}");
    ASSERT_STR_EQ(s, "{\"M\":{\"a\":{\"L\":[{\"N\":\"1\"},{\"S\":\"x\\\"y\"},{\"M\":{}}]},"
                     "\"b\":{\"M\":{\"c\":{\"NULL\":true}}},\"d\":{\"L\":[]}}}");
    free(s);
}

TEST(sync_ddb_refuses_non_json) {
    ASSERT(av("{\"a\":}") == NULL);
    ASSERT(av("[1,]") == NULL);
    ASSERT(av("tru") == NULL);
    ASSERT(av("1 2") == NULL);
    ASSERT(av("\"open") == NULL);
}

TEST(sync_remote_key_layout) {
    tn__remote_key k;
    const char *u = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    ASSERT_INT_EQ(tn__remote_key_build(u, TN__REMOTE_ITEM, "order:17", &k), TN_OK);
    ASSERT_STR_EQ(k.part, "TENANT#0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
    ASSERT_STR_EQ(k.sort, "ITEM#order:17");
    ASSERT(k.object == NULL);
    tn__remote_key_free(&k);
    ASSERT_INT_EQ(tn__remote_key_build(u, TN__REMOTE_FILE, "docs/a b.pdf", &k), TN_OK);
    ASSERT_STR_EQ(k.sort, "FILE#docs/a b.pdf");
    ASSERT_STR_EQ(k.object, "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/files/docs/a b.pdf");
    tn__remote_key_free(&k);
}

TEST(sync_remote_key_refuses_hostile_names) {
    const char *u = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    static const char *bad_files[] = {"", "..", "../x", "a/../../b", "/etc/passwd", "a//b",
                                      "a/", ".", "./a", "a\\..\\b", "a\nb", "a\x7f"};
    tn__remote_key k;
    for (size_t i = 0; i < sizeof bad_files / sizeof *bad_files; i++) {
        ASSERT_INT_EQ(tn__remote_key_build(u, TN__REMOTE_FILE, bad_files[i], &k), TN_INVALID);
        ASSERT(k.part == NULL && k.sort == NULL && k.object == NULL);
    }
    static const char *bad_items[] = {"", "a/b", "a#b", "a b", "../x"};
    for (size_t i = 0; i < sizeof bad_items / sizeof *bad_items; i++)
        ASSERT_INT_EQ(tn__remote_key_build(u, TN__REMOTE_ITEM, bad_items[i], &k), TN_INVALID);
    static const char *bad_uuid[] = {"", "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9",
                                     "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f", "../../../../../../../../x",
                                     "0f1e2d3c/4b5a-4978-8695-a4b3c2d1e0f9"};
    for (size_t i = 0; i < sizeof bad_uuid / sizeof *bad_uuid; i++)
        ASSERT_INT_EQ(tn__remote_key_build(bad_uuid[i], TN__REMOTE_ITEM, "a", &k), TN_INVALID);
    ASSERT_INT_EQ(tn__remote_key_build(u, 9, "a", &k), TN_INVALID);
    /* A name the remote cannot hold: "<uuid>/files/<name>" over 1,024 bytes. */
    char name[1100];
    memset(name, 'n', sizeof name);
    name[981] = '\0';
    ASSERT_INT_EQ(tn__remote_key_build(u, TN__REMOTE_FILE, name, &k), TN_OK);
    ASSERT_INT_EQ((int)strlen(k.object), 1024);
    tn__remote_key_free(&k);
    name[981] = 'n';
    name[982] = '\0';
    ASSERT_INT_EQ(tn__remote_key_build(u, TN__REMOTE_FILE, name, &k), TN_INVALID);
    /* The tenant's own row. */
    ASSERT_INT_EQ(tn__remote_key_build(u, TN__REMOTE_TENANT, NULL, &k), TN_OK);
    ASSERT_STR_EQ(k.sort, "TENANT");
    ASSERT(k.object == NULL);
    tn__remote_key_free(&k);
}

TEST(sync_item_rows) {
    tn__remote_key k;
    ASSERT_INT_EQ(tn__remote_key_build("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", TN__REMOTE_ITEM,
                                       "i1", &k), TN_OK);
    tn_remote_row ch;
    memset(&ch, 0, sizeof ch);
    ch.kind = TN_REMOTE_ITEM;
    ch.key = "i1";
    ch.data = "{\"n\":1}";
    ch.version = 117671589917294592LL;
    ch.updated_at = 1795525969197LL; /* 2026-11-24T13:12:49.197Z */
    tn__sbuf b = {0};
    ASSERT_INT_EQ(tn__ddb_item(&ch, &k, 0, &b), TN_OK);
    ASSERT_STR_EQ(b.p, "{\"pk\":{\"S\":\"TENANT#0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9\"},"
                       "\"sk\":{\"S\":\"ITEM#i1\"},\"version\":{\"N\":\"117671589917294592\"},"
                       "\"updated_at\":{\"S\":\"2026-11-24T13:12:49.197Z\"},"
                       "\"deleted\":{\"BOOL\":false},\"data\":{\"M\":{\"n\":{\"N\":\"1\"}}}}");
    tn__sb_free(&b);
    ch.deleted = 1;
    ch.data = NULL;
    ch.expires_at = 1795525969 + 86400;
    ASSERT_INT_EQ(tn__ddb_item(&ch, &k, 1795525970000LL, &b), TN_OK);
    ASSERT(strstr(b.p, "\"feed\":{\"N\":\"1795525970000\"}"));
    ASSERT(strstr(b.p, "\"deleted\":{\"BOOL\":true},\"expires_at\":{\"N\":\"1795612369\"}"));
    ASSERT(!strstr(b.p, "\"data\""));
    tn__sb_free(&b);
    tn__remote_key_free(&k);
}

TEST(sync_backoff_full_jitter_bounds) {
    /* attempt 0: [0, 100]; attempt 3: [0, 800]; large attempts: [0, cap]. */
    ASSERT_INT_EQ(tn__sync_backoff_ms(0, 100, 10000, 0), 0);
    ASSERT_INT_EQ(tn__sync_backoff_ms(0, 100, 10000, 100), 100);
    ASSERT_INT_EQ(tn__sync_backoff_ms(0, 100, 10000, 101), 0);
    ASSERT_INT_EQ(tn__sync_backoff_ms(3, 100, 10000, 800), 800);
    ASSERT_INT_EQ(tn__sync_backoff_ms(3, 100, 10000, 801), 0);
    ASSERT_INT_EQ(tn__sync_backoff_ms(60, 100, 10000, 10000), 10000);
    ASSERT_INT_EQ(tn__sync_backoff_ms(1000, 100, 10000, 0xffffffffu), 0xffffffffu % 10001);
    for (uint32_t r = 0; r < 100000; r += 7) {
        int64_t v = tn__sync_backoff_ms(5, 100, 10000, r * 2654435761u);
        ASSERT(v >= 0 && v <= 3200);
    }
}

TEST(sync_credentials_file) {
    const char *text = "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\n"
                       "aws_secret_access_key=secretdefault\n\n"
                       "[profile work]\r\naws_access_key_id=AKIDWORK\r\n"
                       "aws_secret_access_key = secretwork \r\naws_session_token = tok\r\n"
                       "[broken]\naws_access_key_id=ONLYID\n";
    tn__aws_creds c;
    ASSERT_INT_EQ(tn__aws_parse_credentials(text, "default", &c), TN_OK);
    ASSERT_STR_EQ(c.akid, "AKIDDEFAULT");
    ASSERT_STR_EQ(c.secret, "secretdefault");
    ASSERT_STR_EQ(c.token, "");
    ASSERT_INT_EQ(tn__aws_parse_credentials(text, "work", &c), TN_OK);
    ASSERT_STR_EQ(c.akid, "AKIDWORK");
    ASSERT_STR_EQ(c.secret, "secretwork");
    ASSERT_STR_EQ(c.token, "tok");
    ASSERT_INT_EQ(tn__aws_parse_credentials(text, "broken", &c), TN_NOTFOUND);
    ASSERT_STR_EQ(c.akid, "");
    ASSERT_INT_EQ(tn__aws_parse_credentials(text, "missing", &c), TN_NOTFOUND);
}

TEST(sync_sts_response) {
    const char *xml =
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn>"
        "</AssumedRoleUser><Credentials><AccessKeyId>ASIATEST</AccessKeyId>"
        "<SecretAccessKey>sekrit</SecretAccessKey><SessionToken>FwoGZX</SessionToken>"
        "<Expiration>2026-11-24T14:05:35Z</Expiration></Credentials></AssumeRoleResult>"
        "</AssumeRoleResponse>";
    tn__aws_creds c;
    ASSERT_INT_EQ(tn__aws_parse_assume_role(xml, &c), TN_OK);
    ASSERT_STR_EQ(c.akid, "ASIATEST");
    ASSERT_STR_EQ(c.secret, "sekrit");
    ASSERT_STR_EQ(c.token, "FwoGZX");
    ASSERT_INT_EQ(c.expires, 1795529135); /* date -d 2026-11-24T14:05:35Z +%s */
    ASSERT_INT_EQ(tn__aws_parse_assume_role("<Error><Code>AccessDenied</Code></Error>", &c),
                  TN_REMOTE);
    ASSERT_STR_EQ(c.akid, "");
}

static const char *fake_env(const char *name) {
    if (strcmp(name, "AWS_ENDPOINT_URL") == 0) return "http://127.0.0.1:9/";
    if (strcmp(name, "AWS_ENDPOINT_URL_S3") == 0) return "http://127.0.0.1:8";
    if (strcmp(name, "AWS_ACCESS_KEY_ID") == 0) return "AKID";
    if (strcmp(name, "AWS_SECRET_ACCESS_KEY") == 0) return "SECRET";
    if (strcmp(name, "TENANTRY_ENV_PREFIX") == 0) return "prod_";
    if (strcmp(name, "TENANTRY_S3_BUCKET") == 0) return "b1";
    return NULL;
}

static const char *dotted_bucket;
static const char *aws_env(const char *name) {
    if (strcmp(name, "AWS_ACCESS_KEY_ID") == 0) return "AKID";
    if (strcmp(name, "AWS_SECRET_ACCESS_KEY") == 0) return "SECRET";
    if (strcmp(name, "TENANTRY_S3_BUCKET") == 0) return dotted_bucket;
    return NULL;
}

/* On AWS itself (no endpoint set) buckets are virtual-hosted, except those
 * with a dot in the name: TLS would fail on their host name. */
TEST(sync_dotted_bucket_is_path_style) {
    tn__aws a;
    char err[200];
    dotted_bucket = "plain-bucket";
    ASSERT_INT_EQ(tn__aws_load(&a, aws_env, err, sizeof err), TN_OK);
    ASSERT_INT_EQ(a.path_style, 0);
    tn__aws_free(&a);
    dotted_bucket = "appliance.backup";
    ASSERT_INT_EQ(tn__aws_load(&a, aws_env, err, sizeof err), TN_OK);
    ASSERT_INT_EQ(a.path_style, 1);
    tn__aws_free(&a);
}

TEST(sync_config_from_environment) {
    tn__aws a;
    char err[200];
    ASSERT_INT_EQ(tn__aws_load(&a, fake_env, err, sizeof err), TN_OK);
    ASSERT_STR_EQ(a.region, "us-east-1");
    ASSERT_STR_EQ(a.ep_dynamodb, "http://127.0.0.1:9");
    ASSERT_STR_EQ(a.ep_s3, "http://127.0.0.1:8");
    ASSERT_STR_EQ(a.ep_sts, "http://127.0.0.1:9");
    ASSERT_INT_EQ(a.path_style, 1);
    ASSERT_STR_EQ(a.table, "prod_tenantry");
    ASSERT_STR_EQ(a.bucket, "b1");
    tn__aws_creds c;
    ASSERT_INT_EQ(tn__aws_creds_get(&a, NULL, 0, &c), TN_OK);
    ASSERT_STR_EQ(c.akid, "AKID");
    tn__aws_free(&a);
}

/* ---- reading rows back: AttributeValue -> JSON, one item -> one row -------------- */

static char *js(const char *av_text) {
    tn__sbuf b = {0};
    int rc = tn__ddb_av_to_json(av_text, strlen(av_text), &b);
    if (rc != TN_OK) {
        tn__sb_free(&b);
        return NULL;
    }
    return tn__sb_take(&b);
}

static int js_rc(const char *av_text) {
    tn__sbuf b = {0};
    int rc = tn__ddb_av_to_json(av_text, strlen(av_text), &b);
    tn__sb_free(&b);
    return rc;
}

TEST(sync_ddb_av_to_json_scalars) {
    char *s;
    ASSERT_STR_EQ(s = js("{\"S\":\"hi\"}"), "\"hi\""); free(s);
    /* The token as DynamoDB sent it: escapes kept, U+0000 too. */
    ASSERT_STR_EQ(s = js("{\"S\":\"x\\\"y\\u0000z\\u00e9\"}"), "\"x\\\"y\\u0000z\\u00e9\""); free(s);
    ASSERT_STR_EQ(s = js("{\"S\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}"), "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""); free(s);
    ASSERT_STR_EQ(s = js("{\"N\":\"123456789012345678901234567890\"}"), "123456789012345678901234567890"); free(s);
    ASSERT_STR_EQ(s = js("{\"N\":\"-0.5e-7\"}"), "-0.5e-7"); free(s);
    ASSERT_STR_EQ(s = js("{\"N\":\"1E+126\"}"), "1E+126"); free(s);
    ASSERT_STR_EQ(s = js(" { \"BOOL\" : true } "), "true"); free(s);
    ASSERT_STR_EQ(s = js("{\"BOOL\":false}"), "false"); free(s);
    ASSERT_STR_EQ(s = js("{\"NULL\":true}"), "null"); free(s);
}

TEST(sync_ddb_av_to_json_nested) {
    char *s = js("{\"M\":{\"a\":{\"L\":[{\"N\":\"1\"},{\"S\":\"x\\\"y\"},{\"M\":{}}]},"
                 " \"b\" : {\"M\":{\"c\":{\"NULL\":true}}},\"d\":{\"L\":[]},"
                 "\"big\":{\"N\":\"12345678901234567890.000000000000000001\"}}}");
    ASSERT_STR_EQ(s, "{\"a\":[1,\"x\\\"y\",{}],\"b\":{\"c\":null},\"d\":[],"
                     "\"big\":12345678901234567890.000000000000000001}");
    free(s);
    /* The inverse of tn__ddb_json_to_av: a document comes back as it went,
     * white space aside. */
    const char *doc = "{\"n\": 12345678901234567890, \"s\": \"x\\\"y\\u0001\", \"l\": [1, true, null],"
                      " \"m\": {\"deep\": {\"x\": -1.5e+300}}, \"e\": {}}";
    char *a = av(doc);
    ASSERT(a != NULL);
    ASSERT_STR_EQ(s = js(a), "{\"n\":12345678901234567890,\"s\":\"x\\\"y\\u0001\",\"l\":[1,true,null],"
                             "\"m\":{\"deep\":{\"x\":-1.5e+300}},\"e\":{}}");
    free(s);
    free(a);
}

TEST(sync_ddb_av_to_json_refusals) {
    static const char *bad[] = {
        "{\"B\":\"aGk=\"}", "{\"SS\":[\"a\"]}", "{\"NS\":[\"1\"]}", "{\"BS\":[\"aGk=\"]}",
        "{\"X\":\"1\"}", "{}", "{\"S\":\"a\",\"N\":\"1\"}", "{\"S\":1}", "{\"N\":1}",
        "{\"N\":\"1.\"}", "{\"N\":\".5\"}", "{\"N\":\"+1\"}", "{\"N\":\"01\"}", "{\"N\":\"1e\"}",
        "{\"N\":\"NaN\"}", "{\"N\":\"Infinity\"}", "{\"N\":\" 1\"}", "{\"N\":\"\"}",
        "{\"NULL\":false}", "{\"BOOL\":\"true\"}", "{\"BOOL\":1}",
        "{\"S\":\"\xff\"}", "{\"S\":\"\xc0\xaf\"}", "{\"S\":\"\xed\xa0\x80\"}",
        "{\"S\":\"\\ud800\"}", "{\"S\":\"\\udc00\\ud800\"}", "{\"S\":\"a\nb\"}", "{\"S\":\"\\x41\"}",
        "{\"S\":\"open}", "{\"M\":{\"a\":{\"N\":\"1\"},\"a\":{\"N\":\"2\"}}}",
        "{\"M\":{\"a\":{\"N\":\"1\"},\"\\u0061\":{\"N\":\"2\"}}}", "{\"M\":[]}", "{\"L\":{}}",
        "{\"L\":[{\"N\":\"1\"},]}", "{\"S\":\"a\"} x", "{\"M\":{\"a\":{\"B\":\"AA==\"}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = js_rc(bad[i]);
        if (rc != TN_INVALID) TN_FAIL_("accepted (%d): %s", rc, bad[i]);
    }
    /* 64 nested containers are a document the store holds; 65 are not. */
    tn__sbuf b = {0};
    for (int i = 0; i < 64; i++) tn__sb_str(&b, "{\"L\":[");
    tn__sb_str(&b, "{\"N\":\"7\"}");
    for (int i = 0; i < 64; i++) tn__sb_str(&b, "]}");
    char *s = js(b.p);
    ASSERT(s != NULL && strlen(s) == 129 && s[63] == '[' && s[64] == '7' && s[65] == ']');
    free(s);
    tn__sb_free(&b);
    for (int i = 0; i < 65; i++) tn__sb_str(&b, "{\"M\":{\"k\":");
    tn__sb_str(&b, "{\"N\":\"7\"}");
    for (int i = 0; i < 65; i++) tn__sb_str(&b, "}}");
    ASSERT_INT_EQ(js_rc(b.p), TN_INVALID);
    tn__sb_free(&b);
    /* More than 4 MiB of JSON: 5 strings of 1 MiB. */
    tn__sb_str(&b, "{\"L\":[");
    char *mib = malloc((1 << 20) + 1);
    memset(mib, 'x', 1 << 20);
    mib[1 << 20] = '\0';
    for (int i = 0; i < 5; i++) {
        tn__sb_str(&b, i ? ",{\"S\":\"" : "{\"S\":\"");
        tn__sb_str(&b, mib);
        tn__sb_str(&b, "\"}");
    }
    tn__sb_str(&b, "]}");
    ASSERT_INT_EQ(js_rc(b.p), TN_TOOBIG);
    free(mib);
    tn__sb_free(&b);
}

TEST(sync_ddb_time_and_numbers) {
    /* date -u -d 2026-11-24T13:12:49Z +%s = 1795525969 */
    ASSERT_INT_EQ(tn__ddb_time_parse("2026-11-24T13:12:49.197Z", 24), 1795525969197LL);
    ASSERT_INT_EQ(tn__ddb_time_parse("2026-11-24T13:12:49Z", 20), 1795525969000LL);
    ASSERT_INT_EQ(tn__ddb_time_parse("2026-11-24t13:12:49.1z", 22), 1795525969100LL);
    ASSERT_INT_EQ(tn__ddb_time_parse("2026-11-24T13:12:49.197999999Z", 30), 1795525969197LL);
    ASSERT_INT_EQ(tn__ddb_time_parse("2026-11-24T14:42:49.197+01:30", 29), 1795525969197LL);
    ASSERT_INT_EQ(tn__ddb_time_parse("2026-11-24T08:12:49.197-05:00", 29), 1795525969197LL);
    ASSERT_INT_EQ(tn__ddb_time_parse("1970-01-01T00:00:00.000Z", 24), 0);
    ASSERT_INT_EQ(tn__ddb_time_parse("2024-02-29T00:00:00Z", 20), 1709164800000LL);
    ASSERT_INT_EQ(tn__ddb_time_parse("2000-01-01T00:00:00Z", 20), 946684800000LL);
    static const char *bad[] = {"2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
                                "2026-04-31T00:00:00Z", "2026-11-24 13:12:49Z", "2026-11-24T13:12:49",
                                "2026-11-24T24:00:00Z", "2026-11-24T13:60:00Z", "2026-11-24T13:12:49.Z",
                                "2026-11-24T13:12:49.1234567890Z", "2026-11-24T13:12:49+25:00",
                                "2026-11-24T13:12:49+0100", "2026-11-24T13:12:49ZZ", "1969-12-31T23:59:59Z",
                                "+026-11-24T13:12:49Z", "2026-1-24T13:12:49Z", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (tn__ddb_time_parse(bad[i], strlen(bad[i])) != -1) TN_FAIL_("accepted %s", bad[i]);
    ASSERT_INT_EQ(tn__ddb_plain_int("9223372036854775807", 19), INT64_MAX);
    ASSERT_INT_EQ(tn__ddb_plain_int("9223372036854775808", 19), -1);
    ASSERT_INT_EQ(tn__ddb_plain_int("99999999999999999999", 20), -1);
    ASSERT_INT_EQ(tn__ddb_plain_int("007", 3), 7);
    ASSERT_INT_EQ(tn__ddb_plain_int("-1", 2), -1);
    ASSERT_INT_EQ(tn__ddb_plain_int("1.0", 3), -1);
    ASSERT_INT_EQ(tn__ddb_plain_int("", 0), -1);
}

#define U1 "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
#define U2 "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
#define PK1 "\"pk\":{\"S\":\"TENANT#" U1 "\"}"
#define COMMON "\"version\":{\"N\":\"117671589917294592\"},\"updated_at\":{\"S\":\"2026-11-24T13:12:49.197Z\"}"
#define SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static int parse1(const char *item, const char *tenant, tn_remote_page *p) {
    int64_t feed;
    return tn__ddb_row_parse(item, strlen(item), tenant, p, &feed);
}

TEST(sync_ddb_row_parse_fields) {
    tn_remote_page p = {0};
    ASSERT_INT_EQ(parse1("{" PK1 ",\"sk\":{\"S\":\"ITEM#order:17\"}," COMMON ",\"feed\":{\"N\":\"1795525970000\"},"
                         "\"deleted\":{\"BOOL\":false},\"extra\":{\"SS\":[\"ignored\"]},"
                         "\"data\":{\"M\":{\"n\":{\"N\":\"12345678901234567890\"},\"m\":{\"M\":{\"x\":{\"L\":[{\"BOOL\":true}]}}}}}}",
                         U1, &p), TN_OK);
    ASSERT_INT_EQ(p.n, 1);
    ASSERT_INT_EQ(p.refused, 0);
    tn_remote_row *r = &p.rows[0];
    ASSERT_STR_EQ(r->tenant, U1);
    ASSERT_INT_EQ(r->kind, TN_REMOTE_ITEM);
    ASSERT_STR_EQ(r->key, "order:17");
    ASSERT_INT_EQ(r->version, 117671589917294592LL);
    ASSERT_INT_EQ(r->deleted, 0);
    ASSERT_INT_EQ(r->updated_at, 1795525969197LL);
    ASSERT_INT_EQ(r->feed, 1795525970000LL);
    ASSERT_INT_EQ(r->expires_at, 0);
    ASSERT_STR_EQ(r->data, "{\"n\":12345678901234567890,\"m\":{\"x\":[true]}}");
    /* A tombstone: no data. */
    ASSERT_INT_EQ(parse1("{" PK1 ",\"sk\":{\"S\":\"ITEM#gone\"}," COMMON ",\"deleted\":{\"BOOL\":true},"
                         "\"expires_at\":{\"N\":\"1798117969\"},\"feed\":{\"N\":\"5\"}}", U1, &p), TN_OK);
    r = &p.rows[1];
    ASSERT_INT_EQ(r->deleted, 1);
    ASSERT(r->data == NULL);
    ASSERT_INT_EQ(r->expires_at, 1798117969LL);
    ASSERT_INT_EQ(r->feed, 5);
    /* A file, as tn__ddb_item writes one. */
    ASSERT_INT_EQ(parse1("{" PK1 ",\"sk\":{\"S\":\"FILE#docs/a b.pdf\"}," COMMON ",\"feed\":{\"N\":\"6\"},"
                         "\"deleted\":{\"BOOL\":false},\"s3_key\":{\"S\":\"" U1 "/files/docs/a b.pdf\"},"
                         "\"size\":{\"N\":\"4\"},\"sha256\":{\"S\":\"" SHA "\"},"
                         "\"content_type\":{\"S\":\"application/pdf; q=1\"}}", U1, &p), TN_OK);
    r = &p.rows[2];
    ASSERT_INT_EQ(r->kind, TN_REMOTE_FILE);
    ASSERT_STR_EQ(r->key, "docs/a b.pdf");
    ASSERT_INT_EQ(r->size, 4);
    ASSERT_STR_EQ(r->sha256, SHA);
    ASSERT_STR_EQ(r->content_type, "application/pdf; q=1");
    ASSERT(r->data == NULL);
    /* A file's tombstone carries no file attributes; the tenant row. */
    ASSERT_INT_EQ(parse1("{" PK1 ",\"sk\":{\"S\":\"FILE#x\"}," COMMON ",\"deleted\":{\"BOOL\":true}}", U1, &p), TN_OK);
    ASSERT_INT_EQ(parse1("{" PK1 ",\"sk\":{\"S\":\"TENANT\"}," COMMON ",\"deleted\":{\"BOOL\":false},"
                         "\"data\":{\"M\":{\"name\":{\"S\":\"acme\"},\"settings\":{\"M\":{}}}}}", NULL, &p), TN_OK);
    r = &p.rows[4];
    ASSERT_INT_EQ(r->kind, TN_REMOTE_TENANT);
    ASSERT_STR_EQ(r->key, "");
    ASSERT_STR_EQ(r->tenant, U1);
    ASSERT_STR_EQ(r->data, "{\"name\":\"acme\",\"settings\":{}}");
    ASSERT_INT_EQ(p.n, 5);
    ASSERT_INT_EQ(p.refused, 0);
    tn_remote_page_free(&p);
}

TEST(sync_ddb_row_parse_refusals) {
    static const char *bad[] = {
        /* the key */
        "{\"pk\":{\"S\":\"TENANT#" U2 "\"},\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{\"pk\":{\"S\":\"TENANT#0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9\"},\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{\"pk\":{\"S\":\"TENANT#" U1 "x\"},\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{\"pk\":{\"S\":\"tenant#" U1 "\"},\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{\"pk\":{\"N\":\"1\"},\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a/b\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"BOGUS#a\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"FILE#../x\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"FILE#/etc/passwd\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\\u0000b\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"TENANTX\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"},\"sk\":{\"S\":\"ITEM#b\"}," COMMON ",\"deleted\":{\"BOOL\":true}}",
        /* version, deleted, dates, feed */
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"},\"version\":{\"N\":\"0\"},\"updated_at\":{\"S\":\"2026-11-24T13:12:49.197Z\"},\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"},\"version\":{\"N\":\"-5\"},\"updated_at\":{\"S\":\"2026-11-24T13:12:49.197Z\"},\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"},\"version\":{\"N\":\"1.5\"},\"updated_at\":{\"S\":\"2026-11-24T13:12:49.197Z\"},\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"},\"version\":{\"N\":\"1e3\"},\"updated_at\":{\"S\":\"2026-11-24T13:12:49.197Z\"},\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"},\"version\":{\"N\":\"99999999999999999999999999999999999999\"},\"updated_at\":{\"S\":\"2026-11-24T13:12:49.197Z\"},\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"},\"version\":{\"S\":\"5\"},\"updated_at\":{\"S\":\"2026-11-24T13:12:49.197Z\"},\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"},\"version\":{\"N\":\"5\"},\"updated_at\":{\"S\":\"yesterday\"},\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"},\"version\":{\"N\":\"5\"},\"deleted\":{\"BOOL\":true}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"}," COMMON "}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"S\":\"false\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true},\"feed\":{\"N\":\"-1\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true},\"feed\":{\"N\":\"1e40\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true},\"expires_at\":{\"N\":\"1.5\"}}",
        /* data */
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":false}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"data\":{\"B\":\"AA==\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"data\":{\"M\":{\"s\":{\"SS\":[\"a\"]}}}}",
        "{" PK1 ",\"sk\":{\"S\":\"TENANT\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"data\":{\"S\":\"acme\"}}",
        /* files */
        "{" PK1 ",\"sk\":{\"S\":\"FILE#f\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"s3_key\":{\"S\":\"" U1 "/files/f\"},\"size\":{\"N\":\"4\"},\"sha256\":{\"S\":\"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\"},\"content_type\":{\"S\":\"text/plain\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"FILE#f\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"s3_key\":{\"S\":\"" U1 "/files/f\"},\"size\":{\"N\":\"4\"},\"sha256\":{\"S\":\"zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"},\"content_type\":{\"S\":\"text/plain\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"FILE#f\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"s3_key\":{\"S\":\"" U1 "/files/f\"},\"size\":{\"N\":\"4\"},\"sha256\":{\"S\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0\"},\"content_type\":{\"S\":\"text/plain\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"FILE#f\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"s3_key\":{\"S\":\"" U2 "/files/f\"},\"size\":{\"N\":\"4\"},\"sha256\":{\"S\":\"" SHA "\"},\"content_type\":{\"S\":\"text/plain\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"FILE#f\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"s3_key\":{\"S\":\"" U1 "/files/f\"},\"size\":{\"N\":\"-4\"},\"sha256\":{\"S\":\"" SHA "\"},\"content_type\":{\"S\":\"text/plain\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"FILE#f\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"s3_key\":{\"S\":\"" U1 "/files/f\"},\"size\":{\"N\":\"4\"},\"sha256\":{\"S\":\"" SHA "\"},\"content_type\":{\"S\":\"text/plain\\nX-Evil: 1\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"FILE#f\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"s3_key\":{\"S\":\"" U1 "/files/f\"},\"size\":{\"N\":\"4\"},\"sha256\":{\"S\":\"" SHA "\"},\"content_type\":{\"S\":\"\"}}",
        "{" PK1 ",\"sk\":{\"S\":\"FILE#f\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"size\":{\"N\":\"4\"},\"sha256\":{\"S\":\"" SHA "\"},\"content_type\":{\"S\":\"text/plain\"}}",
        /* not an item */
        "[]", "{", "{" PK1 ",}", "{" PK1 "} x", "",
    };
    tn_remote_page p = {0};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse1(bad[i], U1, &p);
        if (rc != TN_INVALID || p.n != 0 || p.refused != (int)i + 1)
            TN_FAIL_("row %zu: rc %d, n %d, refused %d: %s", i, rc, p.n, p.refused, bad[i]);
    }
    /* A content type of 256 characters. */
    tn__sbuf b = {0};
    tn__sb_str(&b, "{" PK1 ",\"sk\":{\"S\":\"FILE#f\"}," COMMON ",\"deleted\":{\"BOOL\":false},\"s3_key\":{\"S\":\"" U1
                   "/files/f\"},\"size\":{\"N\":\"4\"},\"sha256\":{\"S\":\"" SHA "\"},\"content_type\":{\"S\":\"");
    size_t at = b.len;
    for (int i = 0; i < 255; i++) tn__sb_str(&b, "t");
    tn__sb_str(&b, "\"}}");
    ASSERT_INT_EQ(parse1(b.p, U1, &p), TN_OK); /* 255: the limit */
    b.len = at;
    for (int i = 0; i < 256; i++) tn__sb_str(&b, "t");
    tn__sb_str(&b, "\"}}");
    ASSERT_INT_EQ(parse1(b.p, U1, &p), TN_INVALID);
    tn__sb_free(&b);
    /* The tenant list takes only tenant rows. */
    ASSERT_INT_EQ(parse1("{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true}}", NULL, &p),
                  TN_INVALID);
    ASSERT_INT_EQ(p.n, 1);
    ASSERT_INT_EQ(p.refused, (int)(sizeof bad / sizeof *bad) + 2);
    tn_remote_page_free(&p);
}

TEST(sync_ddb_page_parse) {
    const char *body =
        "{\"Count\":3,\"Items\":[{" PK1 ",\"sk\":{\"S\":\"ITEM#a\"}," COMMON ",\"deleted\":{\"BOOL\":true},"
        "\"feed\":{\"N\":\"100\"}},"
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#b/c\"}," COMMON ",\"deleted\":{\"BOOL\":true},\"feed\":{\"N\":\"300\"}},"
        "{" PK1 ",\"sk\":{\"S\":\"ITEM#d\"}," COMMON ",\"deleted\":{\"BOOL\":true},\"feed\":{\"N\":\"200\"}}],"
        "\"ScannedCount\":3,\"LastEvaluatedKey\":{\"pk\":{\"S\":\"TENANT#" U1 "\"},\"sk\":{\"S\":\"ITEM#d\"},"
        "\"feed\":{\"N\":\"200\"}}}";
    tn_remote_page p = {0};
    const char *lek;
    size_t lek_len;
    int64_t maxf;
    ASSERT_INT_EQ(tn__ddb_page_parse(body, strlen(body), U1, &p, &lek, &lek_len, &maxf), TN_OK);
    ASSERT_INT_EQ(p.n, 2);
    ASSERT_INT_EQ(p.refused, 1);
    ASSERT_STR_EQ(p.rows[0].key, "a");
    ASSERT_STR_EQ(p.rows[1].key, "d");
    ASSERT_INT_EQ(maxf, 300); /* a refused row still moves the feed on */
    char got[300];
    snprintf(got, sizeof got, "%.*s", (int)lek_len, lek);
    ASSERT_STR_EQ(got, "{\"pk\":{\"S\":\"TENANT#" U1 "\"},\"sk\":{\"S\":\"ITEM#d\"},\"feed\":{\"N\":\"200\"}}");
    tn__ddb_key k;
    ASSERT_INT_EQ(tn__ddb_key_parse(lek, lek_len, &k), TN_OK);
    ASSERT(k.pk.len == 43 && memcmp(k.pk.p, "TENANT#" U1, 43) == 0);
    ASSERT(k.sk.len == 6 && memcmp(k.sk.p, "ITEM#d", 6) == 0);
    ASSERT(k.feed.len == 3 && memcmp(k.feed.p, "200", 3) == 0);
    tn__ddb_key_free(&k);
    tn_remote_page_free(&p);
    /* Not a Query answer: no Items, Items twice, truncated, garbage. */
    static const char *bad[] = {"{\"Count\":0}", "{\"Items\":[],\"Items\":[]}", "{\"Items\":[{}", "<html>",
                                "{\"Items\":[]} {}", "{\"Items\":{}}", "{\"Items\":[],\"LastEvaluatedKey\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ASSERT_INT_EQ(tn__ddb_page_parse(bad[i], strlen(bad[i]), U1, &p, &lek, &lek_len, &maxf), TN_NETWORK);
        tn_remote_page_free(&p);
    }
    /* An element that is not an object is a refused row, not a broken answer. */
    const char *odd = "{\"Items\":[1,{}]}";
    ASSERT_INT_EQ(tn__ddb_page_parse(odd, strlen(odd), U1, &p, &lek, &lek_len, &maxf), TN_OK);
    ASSERT_INT_EQ(p.n, 0);
    ASSERT_INT_EQ(p.refused, 2);
    ASSERT(lek == NULL);
    tn_remote_page_free(&p);
}

TEST(sync_ddb_cursor_codec) {
    tn__ddb_cursor c;
    ASSERT_INT_EQ(tn__ddb_cursor_parse("", &c), TN_OK);
    ASSERT(c.high == 0 && !c.walking);
    ASSERT_INT_EQ(tn__ddb_cursor_parse("c1795525969197", &c), TN_OK);
    ASSERT(c.high == 1795525969197LL && !c.walking);
    ASSERT_INT_EQ(tn__ddb_cursor_parse("w1795525969197!1795525969200!FILE#a%20b%21%C3%A9", &c), TN_OK);
    ASSERT(c.high == 1795525969197LL && c.walking);
    ASSERT_STR_EQ(c.feed, "1795525969200");
    ASSERT(c.sk.len == 11 && memcmp(c.sk.p, "FILE#a b!\xc3\xa9", 11) == 0);
    char out[256];
    ASSERT_INT_EQ(tn__ddb_cursor_format(&c, out), TN_OK);
    ASSERT_STR_EQ(out, "w1795525969197!1795525969200!FILE#a%20b%21%C3%A9");
    tn__ddb_cursor_free(&c);
    static const char *bad[] = {"x", "c", "c-1", "c12a", "c99999999999999999999", "w1!1!", "w1!abc!ITEM#a",
                                "w1!1!%zz", "w1!1!%61", "w1!1!%c3%a9", "w1!!ITEM#a", "w!1!ITEM#a", "w1!1",
                                "w1!1!a b", "w1!1!%2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (tn__ddb_cursor_parse(bad[i], &c) != TN_INVALID) TN_FAIL_("accepted cursor %s", bad[i]);
    }
    /* A sort key too long for 255 characters is cut at a character boundary:
     * "w5!7!" leaves 250, each e-acute costs 6 ("%C3%A9"): 41 of them. */
    memset(&c, 0, sizeof c);
    c.high = 5;
    c.walking = 1;
    strcpy(c.feed, "7");
    for (int i = 0; i < 300; i++) tn__sb_str(&c.sk, "\xc3\xa9");
    ASSERT_INT_EQ(tn__ddb_cursor_format(&c, out), TN_OK);
    ASSERT_INT_EQ((int)strlen(out), 5 + 41 * 6);
    tn__ddb_cursor_free(&c);
    ASSERT_INT_EQ(tn__ddb_cursor_parse(out, &c), TN_OK);
    ASSERT_INT_EQ((int)c.sk.len, 82);
    for (int i = 0; i < 82; i += 2) ASSERT(memcmp(c.sk.p + i, "\xc3\xa9", 2) == 0);
    tn__ddb_cursor_free(&c);
    c = (tn__ddb_cursor){.high = 42};
    ASSERT_INT_EQ(tn__ddb_cursor_format(&c, out), TN_OK);
    ASSERT_STR_EQ(out, "c42");
}
