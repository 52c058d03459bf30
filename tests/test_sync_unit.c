/*
 * test_sync_unit.c - the sync layer's pure parts: JSON <-> DynamoDB
 * AttributeValue conversion, the remote key builder (and the hostile names it
 * refuses), backoff bounds, the shared credentials file and STS responses,
 * reading rows back (the pulled-row parser, the change feed's cursor).
 * Expected values are written out by hand, never computed by the code.
 *
 * The tests named sync_aws_moto_* run the AWS backend's way back (changes,
 * list, get_object, delete_row, tenants) against moto_server.  They are
 * registered only when TN_MOTO_URL names one (tests/e2e/test_remote_aws.py
 * starts it and runs `unit sync_aws_moto`); without it each prints a
 * "not run" line and counts neither as passed nor as failed.
 */
#include "harness.h"

#include "adapt.h"
#include "aws.h"
#include "clock.h"
#include "crypto.h"
#include "dynamo.h"
#include "digest.h"
#include "engine.h"
#include "pace.h"
#include "remote_aws.h"
#include "remote_key.h"
#include "sbuf.h"

#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* The engine's knobs: requests in flight for rows, within 1..64. */
TEST(sync_engine_connections_from_environment) {
    tn_sync_config c;
    tn_sync_config_init(&c);
    ASSERT_INT_EQ(c.connections, 32);
    setenv("TENANTRY_SYNC_CONNECTIONS", "48", 1);
    ASSERT_INT_EQ(tn_sync_config_from_env(&c), 0);
    ASSERT_INT_EQ(c.connections, 48);
    static const char *bad[] = {"0", "65", "-1", "8x", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("TENANTRY_SYNC_CONNECTIONS", bad[i], 1);
        if (tn_sync_config_from_env(&c) != -1) TN_FAIL_("accepted %s", bad[i]);
    }
    ASSERT_INT_EQ(c.connections, 48);
    unsetenv("TENANTRY_SYNC_CONNECTIONS");
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
    ASSERT(mib != NULL);
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

TEST(sync_ddb_index_errors) {
    /* As DynamoDB words them. */
    const char *missing = "{\"__type\":\"com.amazon.coral.validate#ValidationException\","
                          "\"message\":\"The table does not have the specified index: feed\"}";
    const char *building = "{\"__type\":\"com.amazon.coral.validate#ValidationException\","
                           "\"message\":\"Cannot read from backfilling global secondary index: feed\"}";
    const char *other = "{\"__type\":\"com.amazon.coral.validate#ValidationException\","
                        "\"message\":\"Invalid KeyConditionExpression\"}";
    char type[TN__DDB_TYPE_MAX];
    int rc = tn__ddb_response("Query", "{}", 2, 400, missing, strlen(missing), type);
    ASSERT_INT_EQ(rc, TN_INVALID);
    ASSERT_INT_EQ(tn__ddb_index_error(rc, missing), TN_NOTFOUND);
    ASSERT_INT_EQ(tn__ddb_index_error(TN_INVALID, building), TN_THROTTLED);
    ASSERT_INT_EQ(tn__ddb_index_error(TN_INVALID, other), TN_INVALID);
    ASSERT_INT_EQ(tn__ddb_index_error(TN_DENIED, missing), TN_DENIED);
    ASSERT_INT_EQ(tn__ddb_index_error(TN_INVALID, NULL), TN_INVALID);
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
    memcpy(c.feed, "7", 2);
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

/* ---- the AWS backend against moto_server (TN_MOTO_URL) --------------------------- */

#define MOTO_TEST(name)                                                               \
    static void test_##name(void);                                                    \
    static tn_test tdesc_##name = {#name, __FILE__, test_##name, NULL};               \
    __attribute__((constructor)) static void treg_##name(void) {                      \
        const char *u = getenv("TN_MOTO_URL");                                         \
        if (u && *u) tn_test_register(&tdesc_##name);                                  \
        else printf("not run: %s (needs TN_MOTO_URL)\n", #name);                       \
    }                                                                                 \
    static void test_##name(void)

typedef struct moto {
    tn_remote *r;
    tn_remote_conn *c;
    tn__aws aws; /* for writes the backend would never make */
    tn__http *h;
    char table[64];
} moto;

/* The environment the AWS backend reads, for moto and table. */
static void moto_env(const char *table) {
    const char *bucket = getenv("TN_MOTO_BUCKET");
    if (!bucket || !*bucket) TN_FAIL_("TN_MOTO_BUCKET must name a bucket in moto");
    static const char *const drop[] = {"AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "TENANTRY_AWS_ROLE_ARN",
                                       "TENANTRY_ENV_PREFIX", "TENANTRY_SYNC_TRANSACT",
                                       "TENANTRY_SYNC_SINGLE_WRITER", "AWS_ENDPOINT_URL_DYNAMODB",
                                       "AWS_ENDPOINT_URL_S3"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++) unsetenv(drop[i]);
    setenv("AWS_ENDPOINT_URL", getenv("TN_MOTO_URL"), 1);
    setenv("AWS_ACCESS_KEY_ID", "testing", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "testing", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("TENANTRY_S3_BUCKET", bucket, 1);
    setenv("TENANTRY_DYNAMODB_TABLE", table, 1);
}

/* The AWS backend on table (as it is when init is 0; else a table of this
 * test's own, made by remote init). */
static void moto_open_table(moto *m, const char *table, int init) {
    memset(m, 0, sizeof *m);
    if (init) snprintf(m->table, sizeof m->table, "%s_%d", table, (int)getpid());
    else snprintf(m->table, sizeof m->table, "%s", table);
    moto_env(m->table);
    char err[256];
    ASSERT_INT_EQ(tn_remote_aws_open("", &m->r, err, sizeof err), TN_OK);
    ASSERT_INT_EQ(m->r->m->version, 2);
    const char *what = NULL;
    int rc = init ? m->r->m->init(m->r, &what) : TN_OK;
    if (rc != TN_OK) TN_FAIL_("remote init: %d %s", rc, what ? what : "");
    ASSERT_INT_EQ(m->r->m->conn_open(m->r, 0, &m->c), TN_OK);
    ASSERT_INT_EQ(tn__aws_load(&m->aws, NULL, err, sizeof err), TN_OK);
    ASSERT_INT_EQ(tn__http_new(60, NULL, NULL, &m->h), TN_OK);
}

static void moto_open(moto *m, const char *table) { moto_open_table(m, table, 1); }

static void moto_close(moto *m) {
    m->r->m->conn_close(m->c);
    tn_remote_close(m->r);
    tn__http_free(m->h);
    tn__aws_free(&m->aws);
}

static tn_remote_row mrow(const char *tenant, int kind, const char *key, int64_t version,
                          const char *data) {
    tn_remote_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    r.kind = kind;
    r.key = key;
    r.version = version;
    r.updated_at = 1795525969197LL;
    r.data = data;
    r.deleted = data == NULL && kind != TN_REMOTE_FILE;
    if (r.deleted) r.expires_at = 1798117969;
    return r;
}

/* Through the backend's own write path (a fresh feed per row). */
static void mput(moto *m, tn_remote_row row) {
    tn_remote_put out;
    m->r->m->put_rows(m->c, &row, 1, &out);
    if (out.code != TN_OK) TN_FAIL_("put_rows %s: %d", row.key, out.code);
}

/* Straight to DynamoDB with a feed of the test's choosing (another writer,
 * its clock off by as much as the test says). */
static void mput_feed(moto *m, tn_remote_row row, int64_t feed) {
    tn__remote_key k;
    ASSERT_INT_EQ(tn__remote_key_build(row.tenant, row.kind, row.kind == TN_REMOTE_TENANT ? NULL : row.key, &k), TN_OK);
    tn__sbuf item = {0}, b = {0};
    ASSERT_INT_EQ(tn__ddb_item(&row, &k, feed, &item), TN_OK);
    tn__sb_str(&b, "{\"TableName\":");
    tn__sb_json_str(&b, m->table);
    tn__sb_str(&b, ",\"Item\":");
    tn__sb_str(&b, item.p);
    tn__sb_str(&b, "}");
    tn__ddb_resp resp;
    int rc = tn__ddb_call(&m->aws, m->h, "PutItem", b.p, b.len, &resp);
    tn__ddb_resp_free(&resp);
    if (rc != TN_OK) TN_FAIL_("PutItem: %d", rc);
    tn__sb_free(&item);
    tn__sb_free(&b);
    tn__remote_key_free(&k);
}

/* Every row of the walk from cursor until caught up (bounded), appended
 * to all (its strings copied), the last cursor in cur. */
typedef struct seen {
    char key[300];
    int kind;
    int64_t version, feed;
    int deleted;
    char data[200];
} seen;

static int walk(moto *m, const char *tenant, char cur[256], int max, seen *all, int cap, int *pages,
                int *refused) {
    int n = 0;
    *pages = 0;
    if (refused) *refused = 0;
    for (int guard = 0; guard < 200; guard++) {
        tn_remote_page p = {0};
        char next[256];
        int rc = m->r->m->changes(m->c, tenant, cur, max, &p, next);
        if (rc != TN_OK) TN_FAIL_("changes: %d", rc);
        if (p.n > max) TN_FAIL_("changes returned %d rows for max %d", p.n, max);
        for (int i = 0; i < p.n && n < cap; i++, n++) {
            snprintf(all[n].key, sizeof all[n].key, "%s", p.rows[i].key);
            all[n].kind = p.rows[i].kind;
            all[n].version = p.rows[i].version;
            all[n].feed = p.rows[i].feed;
            all[n].deleted = p.rows[i].deleted;
            snprintf(all[n].data, sizeof all[n].data, "%s", p.rows[i].data ? p.rows[i].data : "");
        }
        if (refused) *refused += p.refused;
        (*pages)++;
        ASSERT(strlen(next) <= 255 && next[0]);
        memcpy(cur, next, strlen(next) + 1);
        int more = p.next[0] != 0;
        tn_remote_page_free(&p);
        if (!more) return n;
    }
    TN_FAIL_("the walk did not end");
}

static int count_key(const seen *all, int n, const char *key) {
    int c = 0;
    for (int i = 0; i < n; i++) c += strcmp(all[i].key, key) == 0;
    return c;
}

#define MT1 "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
#define MT2 "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
#define MT3 "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901"

MOTO_TEST(sync_aws_moto_init_makes_the_feed_index) {
    moto m;
    moto_open(&m, "ix");
    tn__sbuf b = {0};
    tn__sb_fmt(&b, "{\"TableName\":\"%s\"}", m.table);
    tn__ddb_resp resp;
    ASSERT_INT_EQ(tn__ddb_call(&m.aws, m.h, "DescribeTable", b.p, b.len, &resp), TN_OK);
    ASSERT(strstr(resp.body, "\"IndexName\": \"feed\"") || strstr(resp.body, "\"IndexName\":\"feed\""));
    tn__ddb_resp_free(&resp);
    tn__sb_free(&b);
    /* Again: nothing to do, still fine. */
    const char *what = NULL;
    ASSERT_INT_EQ(m.r->m->init(m.r, &what), TN_OK);
    /* Rows sent in one request (a transaction, built within a millisecond)
     * still get distinct feed values, increasing in the order sent. */
    setenv("TENANTRY_SYNC_TRANSACT", "1", 1);
    tn_remote *tx;
    tn_remote_conn *txc;
    char err[256];
    ASSERT_INT_EQ(tn_remote_aws_open("", &tx, err, sizeof err), TN_OK);
    ASSERT(tx->batch_rows >= 6);
    ASSERT_INT_EQ(tx->m->conn_open(tx, 0, &txc), TN_OK);
    tn_remote_row rows[6];
    tn_remote_put res[6];
    static const char *ids[] = {"r0", "r1", "r2", "r3", "r4", "r5"};
    for (int i = 0; i < 6; i++) rows[i] = mrow(MT1, TN_REMOTE_ITEM, ids[i], 10 + i, "{}");
    tx->m->put_rows(txc, rows, 6, res);
    for (int i = 0; i < 6; i++) ASSERT_INT_EQ(res[i].code, TN_OK);
    tx->m->conn_close(txc);
    tn_remote_close(tx);
    tn_remote_page p = {0};
    ASSERT_INT_EQ(m.r->m->list(m.c, MT1, "", &p), TN_OK);
    ASSERT_INT_EQ(p.n, 6);
    for (int i = 1; i < 6; i++) ASSERT(p.rows[i].feed > p.rows[i - 1].feed); /* r0..r5 sort in order */
    int64_t now = tn__wall_ms();
    ASSERT(p.rows[0].feed > now - 60000 && p.rows[5].feed <= now + 1000);
    tn_remote_page_free(&p);
    moto_close(&m);
}

MOTO_TEST(sync_aws_moto_changes_and_cursor) {
    moto m;
    moto_open(&m, "ch");
    int64_t now = tn__wall_ms();
    /* Two rows of a writer long ago, then three of ours, one of another tenant. */
    mput_feed(&m, mrow(MT1, TN_REMOTE_ITEM, "old1", 5, "{\"o\":1}"), now - 7200000);
    mput_feed(&m, mrow(MT1, TN_REMOTE_ITEM, "old2", 6, "{\"o\":2}"), now - 3600000);
    mput(&m, mrow(MT1, TN_REMOTE_ITEM, "n1", 117671589917294592LL, "{\"big\":123456789012345678901234567890}"));
    mput(&m, mrow(MT1, TN_REMOTE_ITEM, "n2", 8, NULL));
    mput(&m, mrow(MT2, TN_REMOTE_ITEM, "theirs", 9, "{}"));
    mput(&m, mrow(MT1, TN_REMOTE_ITEM, "n3", 10, "[1,{\"a\":null}]"));
    seen all[64];
    char cur[256] = "";
    int pages;
    int n = walk(&m, MT1, cur, 100, all, 64, &pages, NULL);
    ASSERT_INT_EQ(n, 5);
    ASSERT_INT_EQ(pages, 1);
    static const char *order[] = {"old1", "old2", "n1", "n2", "n3"};
    for (int i = 0; i < 5; i++) ASSERT_STR_EQ(all[i].key, order[i]);
    ASSERT_INT_EQ(all[2].version, 117671589917294592LL);
    ASSERT_STR_EQ(all[2].data, "{\"big\":123456789012345678901234567890}");
    ASSERT(all[3].deleted && all[3].data[0] == '\0');
    ASSERT_STR_EQ(all[4].data, "[1,{\"a\":null}]");
    ASSERT(cur[0] == 'c');
    int64_t high = tn__ddb_plain_int(cur + 1, strlen(cur + 1));
    /* Caught up: this reader's clock when the last page was asked for. */
    ASSERT(high >= all[4].feed && high >= now && high <= tn__wall_ms());

    /* After the cursor: a writer 200 s behind is still seen, one 400 s
     * behind is not (the window is 300 s), nor the old rows; a writer a day
     * ahead is seen but does not drag the cursor past this clock. */
    mput_feed(&m, mrow(MT1, TN_REMOTE_ITEM, "late", 11, "{}"), high - 200000);
    mput_feed(&m, mrow(MT1, TN_REMOTE_ITEM, "too_late", 12, "{}"), high - 400000);
    mput_feed(&m, mrow(MT1, TN_REMOTE_ITEM, "future", 13, "{}"), now + 86400000);
    char cur2[256];
    memcpy(cur2, cur, sizeof cur2);
    n = walk(&m, MT1, cur2, 100, all, 64, &pages, NULL);
    ASSERT_INT_EQ(count_key(all, n, "late"), 1);
    ASSERT_INT_EQ(count_key(all, n, "future"), 1);
    ASSERT_INT_EQ(count_key(all, n, "too_late"), 0);
    ASSERT_INT_EQ(count_key(all, n, "old1") + count_key(all, n, "old2"), 0);
    for (int i = 0; i < n; i++) ASSERT(all[i].feed > high - 300000); /* only the overlap or newer */
    ASSERT_INT_EQ(n, 5); /* n1 n2 n3 again, late, future */
    int64_t high2 = tn__ddb_plain_int(cur2 + 1, strlen(cur2 + 1));
    ASSERT(cur2[0] == 'c' && high2 >= high && high2 <= tn__wall_ms());

    /* Caught up, nothing new: one request per call (a Query of the index),
     * the overlap rows only. */
    for (int k = 0; k < 3; k++) {
        tn_remote_page q = {0};
        char nx[256];
        int64_t before = tn__remote_aws_requests(m.c);
        ASSERT_INT_EQ(m.r->m->changes(m.c, MT1, cur2, 100, &q, nx), TN_OK);
        ASSERT_INT_EQ(tn__remote_aws_requests(m.c) - before, 1);
        ASSERT_INT_EQ(q.n, 5);
        ASSERT(q.next[0] == 0 && nx[0] == 'c');
        tn_remote_page_free(&q);
    }

    /* A newer row: seen from the last cursor. */
    mput(&m, mrow(MT1, TN_REMOTE_ITEM, "n4", 14, "{}"));
    n = walk(&m, MT1, cur2, 100, all, 64, &pages, NULL);
    ASSERT_INT_EQ(count_key(all, n, "n4"), 1);
    ASSERT_INT_EQ(count_key(all, n, "old1") + count_key(all, n, "too_late"), 0);

    /* A partition whose newest row is older than the overlap: once caught
     * up, an idle call reads none of it again (the high mark is this
     * reader's clock, not the last row's feed). */
    static const char *quiet[] = {"quiet0", "quiet1", "quiet2", "quiet3"};
    for (int i = 0; i < 4; i++)
        mput_feed(&m, mrow(MT3, TN_REMOTE_ITEM, quiet[i], 20 + i, "{}"), now - 3600000 + i);
    char cur3[256] = "";
    n = walk(&m, MT3, cur3, 100, all, 64, &pages, NULL);
    ASSERT_INT_EQ(n, 4);
    for (int k = 0; k < 2; k++) {
        tn_remote_page q = {0};
        char nx[256];
        ASSERT_INT_EQ(m.r->m->changes(m.c, MT3, cur3, 100, &q, nx), TN_OK);
        ASSERT_INT_EQ(q.n, 0);
        ASSERT(q.next[0] == 0 && nx[0] == 'c');
        tn_remote_page_free(&q);
        memcpy(cur3, nx, sizeof cur3);
    }
    /* And a writer up to five minutes behind this reader is still seen. */
    mput_feed(&m, mrow(MT3, TN_REMOTE_ITEM, "behind", 30, "{}"), tn__wall_ms() - 240000);
    n = walk(&m, MT3, cur3, 100, all, 64, &pages, NULL);
    ASSERT_INT_EQ(n, 1);
    ASSERT_INT_EQ(count_key(all, n, "behind"), 1);

    /* A table without the feed index (remote init not run since): not set up. */
    tn__sbuf ct = {0};
    tn__sb_fmt(&ct, "{\"TableName\":\"%s_noix\",\"BillingMode\":\"PAY_PER_REQUEST\","
                    "\"AttributeDefinitions\":[{\"AttributeName\":\"pk\",\"AttributeType\":\"S\"},"
                    "{\"AttributeName\":\"sk\",\"AttributeType\":\"S\"}],\"KeySchema\":["
                    "{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"sk\",\"KeyType\":\"RANGE\"}]}",
               m.table);
    tn__ddb_resp cresp;
    ASSERT_INT_EQ(tn__ddb_call(&m.aws, m.h, "CreateTable", ct.p, ct.len, &cresp), TN_OK);
    tn__ddb_resp_free(&cresp);
    tn__sb_free(&ct);
    char noix[80];
    snprintf(noix, sizeof noix, "%s_noix", m.table);
    moto plain;
    moto_open_table(&plain, noix, 0);
    tn_remote_page q = {0};
    char qc[256];
    ASSERT_INT_EQ(plain.r->m->changes(plain.c, MT1, "", 10, &q, qc), TN_NOTFOUND);
    moto_close(&plain);

    /* A cursor this backend never wrote. */
    tn_remote_page p = {0};
    char out[256];
    ASSERT_INT_EQ(m.r->m->changes(m.c, MT1, "c12x", 10, &p, out), TN_INVALID);
    ASSERT_INT_EQ(m.r->m->changes(m.c, "not-a-tenant", "", 10, &p, out), TN_INVALID);
    ASSERT_INT_EQ(p.n, 0);
    moto_close(&m);
}

MOTO_TEST(sync_aws_moto_changes_pages) {
    moto m;
    moto_open(&m, "pg");
    static const char *ids[] = {"p1", "p2", "p3", "p4", "p5"};
    for (int i = 0; i < 5; i++) mput(&m, mrow(MT1, TN_REMOTE_ITEM, ids[i], 100 + i, "{}"));
    seen all[64];
    char cur[256] = "";
    int pages;
    int n = walk(&m, MT1, cur, 2, all, 64, &pages, NULL);
    ASSERT_INT_EQ(n, 5);
    ASSERT(pages >= 3);
    for (int i = 0; i < 5; i++) ASSERT_STR_EQ(all[i].key, ids[i]);

    /* A crash after the first page: the saved cursor resumes the walk, as
     * often as it is used, where it was. */
    tn_remote_page p = {0};
    char first[256], again[2][256];
    ASSERT_INT_EQ(m.r->m->changes(m.c, MT1, "", 2, &p, first), TN_OK);
    ASSERT(p.n == 2 && p.next[0] && first[0] == 'w');
    tn_remote_page_free(&p);
    for (int k = 0; k < 2; k++) {
        ASSERT_INT_EQ(m.r->m->changes(m.c, MT1, first, 2, &p, again[k]), TN_OK);
        ASSERT_INT_EQ(p.n, 2);
        ASSERT_STR_EQ(p.rows[0].key, "p3");
        ASSERT_STR_EQ(p.rows[1].key, "p4");
        tn_remote_page_free(&p);
    }
    ASSERT_STR_EQ(again[0], again[1]);

    /* Ids of 256 characters: the cursor cannot hold the sort key, cuts it,
     * and the walk repeats a row rather than skip one. */
    char longid[5][260];
    for (int i = 0; i < 5; i++) {
        memset(longid[i], 'x', 255);
        longid[i][255] = (char)('a' + i);
        longid[i][256] = '\0';
        mput(&m, mrow(MT1, TN_REMOTE_ITEM, longid[i], 200 + i, "{}"));
    }
    n = walk(&m, MT1, cur, 2, all, 64, &pages, NULL);
    int sum = 0;
    for (int i = 0; i < 5; i++) {
        int c = count_key(all, n, longid[i]);
        if (c < 1 || c > 2) TN_FAIL_("long id %d seen %d times", i, c);
        sum += c;
    }
    ASSERT(sum > 5); /* a page ended on a long id: the cut cursor ran */
    for (int i = 1; i < n; i++) ASSERT(all[i].feed >= all[i - 1].feed || all[i].feed > 0);
    moto_close(&m);
}

MOTO_TEST(sync_aws_moto_list_every_row) {
    moto m;
    moto_open(&m, "ls");
    mput(&m, mrow(MT1, TN_REMOTE_ITEM, "a", 1, "{\"a\":1}"));
    mput(&m, mrow(MT1, TN_REMOTE_ITEM, "b", 2, NULL)); /* a tombstone */
    tn_remote_row f = mrow(MT1, TN_REMOTE_FILE, "docs/r\xc3\xa9sum\xc3\xa9.pdf", 3, NULL);
    f.size = 4;
    f.sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    f.content_type = "application/pdf";
    mput(&m, f);
    mput(&m, mrow(MT1, TN_REMOTE_TENANT, NULL, 4, "{\"name\":\"acme\",\"settings\":{}}"));
    mput(&m, mrow(MT1, TN_REMOTE_ITEM, "c", 5, "{}"));
    mput(&m, mrow(MT2, TN_REMOTE_ITEM, "theirs", 6, "{}"));
    /* A file name of 300 two-byte characters: its page token is cut. */
    char longname[700];
    for (int i = 0; i < 300; i++) memcpy(longname + 2 * i, "\xc3\xa9", 2);
    longname[600] = '\0';
    tn_remote_row lf = f;
    lf.key = longname;
    lf.version = 7;
    mput(&m, lf);
    tn__remote_aws_page_rows(m.r, 2);
    char token[1024] = "";
    int got[8] = {0}, pages = 0, total = 0;
    static const char *want[] = {"a", "b", "docs/r\xc3\xa9sum\xc3\xa9.pdf", "", "c"};
    for (; pages < 50; pages++) {
        tn_remote_page p = {0};
        ASSERT_INT_EQ(m.r->m->list(m.c, MT1, token, &p), TN_OK);
        ASSERT(p.n <= 2);
        for (int i = 0; i < p.n; i++, total++) {
            ASSERT_STR_EQ(p.rows[i].tenant, MT1);
            int hit = 0;
            for (int w = 0; w < 5; w++)
                if (strcmp(p.rows[i].key, want[w]) == 0) got[w]++, hit = 1;
            if (strcmp(p.rows[i].key, longname) == 0) got[5]++, hit = 1;
            ASSERT(hit);
            if (strcmp(p.rows[i].key, "b") == 0) ASSERT(p.rows[i].deleted && p.rows[i].version == 2);
            if (p.rows[i].kind == TN_REMOTE_FILE && p.rows[i].version == 3)
                ASSERT(p.rows[i].size == 4 && strcmp(p.rows[i].content_type, "application/pdf") == 0);
        }
        ASSERT(p.next[0] == 0 || p.next[0] == 'l');
        snprintf(token, sizeof token, "%s", p.next);
        tn_remote_page_free(&p);
        if (!token[0]) break;
    }
    for (int w = 0; w < 5; w++) if (got[w] != 1) TN_FAIL_("row %s listed %d times", want[w], got[w]);
    /* The page ending on it got a cut token: it comes again, never skipped. */
    ASSERT_INT_EQ(got[5], 2);
    ASSERT(pages >= 3);
    ASSERT_INT_EQ(total, 5 + got[5]);
    tn_remote_page p = {0};
    ASSERT_INT_EQ(m.r->m->list(m.c, MT1, "x", &p), TN_INVALID);
    ASSERT_INT_EQ(m.r->m->list(m.c, MT1, "l%zz", &p), TN_INVALID);
    moto_close(&m);
}

static char *slurp_fd(int fd, size_t *n) {
    struct stat st;
    fstat(fd, &st);
    char *b = malloc((size_t)st.st_size + 1);
    ASSERT(b != NULL);
    *n = (size_t)pread(fd, b, (size_t)st.st_size, 0);
    return b;
}

MOTO_TEST(sync_aws_moto_get_object_bytes) {
    moto m;
    moto_open(&m, "obj");
    size_t big = (1 << 20) + 17;
    unsigned char *bytes = malloc(big);
    ASSERT(bytes != NULL);
    for (size_t i = 0; i < big; i++) bytes[i] = (unsigned char)(i * 2654435761u >> 13);
    char sha[65], sha0[65];
    tn__sha256_hex(bytes, big, sha);
    tn__sha256_hex("", 0, sha0);
    tn_remote_row f = mrow(MT1, TN_REMOTE_FILE, "dir/blob.bin", 1, NULL);
    f.size = (int64_t)big;
    f.sha256 = sha;
    f.content_type = "application/octet-stream";
    ASSERT_INT_EQ(m.r->m->put_object(m.c, &f, bytes, big), TN_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/got", tn_test_tmpdir());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0);
    ASSERT_INT_EQ(write(fd, "HDR", 3), 3); /* the bytes land from the current offset */
    ASSERT_INT_EQ(m.r->m->get_object(m.c, &f, fd), TN_OK);
    size_t n;
    char *back = slurp_fd(fd, &n);
    ASSERT_INT_EQ(n, big + 3);
    ASSERT(memcmp(back, "HDR", 3) == 0 && memcmp(back + 3, bytes, big) == 0);
    free(back);
    /* Recorded smaller than the object: refused, no byte past the size written. */
    ASSERT_INT_EQ(ftruncate(fd, 0), 0);
    lseek(fd, 0, SEEK_SET);
    tn_remote_row small = f;
    small.size = 1000;
    ASSERT_INT_EQ(m.r->m->get_object(m.c, &small, fd), TN_TOOBIG);
    struct stat st;
    fstat(fd, &st);
    ASSERT(st.st_size <= 1000);
    /* An empty object; one that is not there. */
    tn_remote_row e = mrow(MT1, TN_REMOTE_FILE, "empty", 1, NULL);
    e.size = 0;
    e.sha256 = sha0;
    e.content_type = "text/plain";
    ASSERT_INT_EQ(m.r->m->put_object(m.c, &e, "", 0), TN_OK);
    ASSERT_INT_EQ(ftruncate(fd, 0), 0);
    lseek(fd, 0, SEEK_SET);
    ASSERT_INT_EQ(m.r->m->get_object(m.c, &e, fd), TN_OK);
    fstat(fd, &st);
    ASSERT_INT_EQ(st.st_size, 0);
    tn_remote_row missing = f;
    missing.key = "not/there";
    ASSERT_INT_EQ(m.r->m->get_object(m.c, &missing, fd), TN_NOTFOUND);
    tn_remote_row hostile = f;
    hostile.key = "../../x";
    ASSERT_INT_EQ(m.r->m->get_object(m.c, &hostile, fd), TN_INVALID);
    close(fd);
    free(bytes);
    moto_close(&m);
}

MOTO_TEST(sync_aws_moto_tenants_and_delete_row) {
    moto m;
    moto_open(&m, "tn");
    mput(&m, mrow(MT1, TN_REMOTE_TENANT, NULL, 1, "{\"name\":\"acme\",\"settings\":{}}"));
    mput(&m, mrow(MT2, TN_REMOTE_TENANT, NULL, 2, "{\"name\":\"globex\",\"settings\":{\"a\":1}}"));
    mput(&m, mrow(MT3, TN_REMOTE_TENANT, NULL, 3, "{\"name\":\"initech\",\"settings\":{}}"));
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "i%d", i);
        mput(&m, mrow(i % 2 ? MT1 : MT2, TN_REMOTE_ITEM, id, 10 + i, "{}"));
    }
    for (int round = 0; round < 2; round++) {
        tn__remote_aws_page_rows(m.r, 1);
        char token[1024] = "";
        int seen1 = 0, seen2 = 0, seen3 = 0, pages = 0;
        do {
            tn_remote_page p = {0};
            ASSERT_INT_EQ(m.r->m->tenants(m.c, token, &p), TN_OK);
            for (int i = 0; i < p.n; i++) {
                ASSERT_INT_EQ(p.rows[i].kind, TN_REMOTE_TENANT);
                seen1 += strcmp(p.rows[i].tenant, MT1) == 0;
                seen2 += strcmp(p.rows[i].tenant, MT2) == 0;
                seen3 += strcmp(p.rows[i].tenant, MT3) == 0;
                if (strcmp(p.rows[i].tenant, MT2) == 0)
                    ASSERT_STR_EQ(p.rows[i].data, "{\"name\":\"globex\",\"settings\":{\"a\":1}}");
            }
            ASSERT_INT_EQ(p.refused, 0);
            snprintf(token, sizeof token, "%s", p.next);
            tn_remote_page_free(&p);
        } while (token[0] && ++pages < 100);
        ASSERT_INT_EQ(seen1, 1);
        ASSERT_INT_EQ(seen2, round == 0 ? 1 : 0);
        ASSERT_INT_EQ(seen3, 1);
        ASSERT(pages >= 2);
        if (round == 0) {
            tn_remote_row t2 = mrow(MT2, TN_REMOTE_TENANT, NULL, 2, NULL);
            ASSERT_INT_EQ(m.r->m->delete_row(m.c, &t2), TN_OK);
            ASSERT_INT_EQ(m.r->m->delete_row(m.c, &t2), TN_OK); /* again: nothing there, fine */
        }
    }
    tn_remote_page p = {0};
    tn__remote_aws_page_rows(m.r, 0);
    ASSERT_INT_EQ(m.r->m->list(m.c, MT2, "", &p), TN_OK);
    ASSERT_INT_EQ(p.n, 2); /* i0 and i2; its tenant row is gone */
    tn_remote_page_free(&p);
    tn_remote_row bad = mrow("../x", TN_REMOTE_ITEM, "a", 1, NULL);
    ASSERT_INT_EQ(m.r->m->delete_row(m.c, &bad), TN_INVALID);
    moto_close(&m);
}

/* What test_remote_aws.py wrote with boto3, described in the environment:
 * TN_MOTO_HOSTILE="<table>;<tenant>;<good ids, comma-separated>;<refused by
 * list>;<refused by changes>;<tenant ids of good tenant rows>;<refused by tenants>". */
static int field(const char *s, int k, char *out, size_t n) {
    for (int i = 0; i < k && s; i++) s = strchr(s, ';') ? strchr(s, ';') + 1 : NULL;
    if (!s) return 0;
    size_t l = strcspn(s, ";");
    if (l >= n) return 0;
    memcpy(out, s, l);
    out[l] = '\0';
    return 1;
}

static int in_list(const char *list, const char *key) {
    size_t kl = strlen(key);
    for (const char *p = list; *p;) {
        size_t l = strcspn(p, ",");
        if (l == kl && memcmp(p, key, l) == 0) return 1;
        p += l + (p[l] == ',');
    }
    return 0;
}

/* A count written in the spec (plain digits). */
static int num(const char *s) {
    int64_t v = tn__ddb_plain_int(s, strlen(s));
    if (v < 0 || v > 1000000) TN_FAIL_("not a count: %s", s);
    return (int)v;
}

static int list_count(const char *list) {
    int n = *list ? 1 : 0;
    for (const char *p = list; *p; p++) n += *p == ',';
    return n;
}

MOTO_TEST(sync_aws_moto_hostile_rows_refused) {
    const char *spec = getenv("TN_MOTO_HOSTILE");
    if (!spec) TN_FAIL_("TN_MOTO_HOSTILE is not set (tests/e2e/test_remote_aws.py sets it)");
    char table[128], tenant[64], good[1024], lref[16], cref[16], tgood[512], tref[16];
    ASSERT(field(spec, 0, table, sizeof table) && field(spec, 1, tenant, sizeof tenant) &&
           field(spec, 2, good, sizeof good) && field(spec, 3, lref, sizeof lref) &&
           field(spec, 4, cref, sizeof cref) && field(spec, 5, tgood, sizeof tgood) &&
           field(spec, 6, tref, sizeof tref));
    moto m; /* on the table the suite filled */
    moto_open_table(&m, table, 0);

    tn_remote_page p = {0};
    ASSERT_INT_EQ(m.r->m->list(m.c, tenant, "", &p), TN_OK);
    ASSERT_INT_EQ(p.n, list_count(good));
    for (int i = 0; i < p.n; i++) ASSERT(in_list(good, p.rows[i].key));
    ASSERT_INT_EQ(p.refused, num(lref));
    ASSERT(p.next[0] == 0);
    tn_remote_page_free(&p);

    seen all[64];
    char cur[256] = "";
    int pages, refused;
    int n = walk(&m, tenant, cur, 3, all, 64, &pages, &refused);
    ASSERT_INT_EQ(n, list_count(good));
    for (int i = 0; i < n; i++) ASSERT(in_list(good, all[i].key));
    ASSERT_INT_EQ(refused, num(cref));

    char token[1024] = "";
    int tn = 0, trefused = 0, guard = 0;
    do {
        ASSERT_INT_EQ(m.r->m->tenants(m.c, token, &p), TN_OK);
        for (int i = 0; i < p.n; i++, tn++) ASSERT(in_list(tgood, p.rows[i].tenant));
        trefused += p.refused;
        snprintf(token, sizeof token, "%s", p.next);
        tn_remote_page_free(&p);
    } while (token[0] && ++guard < 100);
    ASSERT_INT_EQ(tn, list_count(tgood));
    ASSERT_INT_EQ(trefused, num(tref));
    moto_close(&m);
}

/* Rows `tenantry sync --once` pushed, as boto3 read them back
 * (test_remote_aws.py): TN_MOTO_SYNCED="<table>;<tenant>;<sort key>=<version>
 * (+ "~" for a tombstone),...;<file name>;<hex of the file's bytes>;<item
 * id>=<its data, compact JSON>". */
MOTO_TEST(sync_aws_moto_reads_what_sync_pushed) {
    const char *spec = getenv("TN_MOTO_SYNCED");
    if (!spec) TN_FAIL_("TN_MOTO_SYNCED is not set (tests/e2e/test_remote_aws.py sets it)");
    char table[128], tenant[64], rows[2048], fname[300], hex[8192], doc[512];
    ASSERT(field(spec, 0, table, sizeof table) && field(spec, 1, tenant, sizeof tenant) &&
           field(spec, 2, rows, sizeof rows) && field(spec, 3, fname, sizeof fname) &&
           field(spec, 4, hex, sizeof hex) && field(spec, 5, doc, sizeof doc));
    moto m;
    moto_open_table(&m, table, 0);
    seen all[64];
    char cur[256] = "";
    int pages, refused;
    int n = walk(&m, tenant, cur, 100, all, 64, &pages, &refused);
    ASSERT_INT_EQ(refused, 0);
    ASSERT_INT_EQ(n, list_count(rows));
    char *eq = strchr(doc, '=');
    ASSERT(eq != NULL);
    *eq = '\0';
    int doc_seen = 0;
    for (int i = 0; i < n; i++) {
        char entry[400];
        snprintf(entry, sizeof entry, "%s%.300s=%lld%s",
                 all[i].kind == TN_REMOTE_ITEM ? "ITEM#" : all[i].kind == TN_REMOTE_FILE ? "FILE#" : "TENANT",
                 all[i].key, (long long)all[i].version, all[i].deleted ? "~" : "");
        if (!in_list(rows, entry)) TN_FAIL_("a row boto3 did not see: %s", entry);
        if (count_key(all, n, all[i].key) != 1) TN_FAIL_("%s twice", all[i].key);
        if (all[i].kind == TN_REMOTE_ITEM && strcmp(all[i].key, doc) == 0) {
            ASSERT_STR_EQ(all[i].data, eq + 1);
            doc_seen = 1;
        }
    }
    ASSERT(doc_seen);
    /* The file's bytes, through a presigned GET. */
    tn_remote_page p = {0};
    ASSERT_INT_EQ(m.r->m->list(m.c, tenant, "", &p), TN_OK);
    const tn_remote_row *f = NULL;
    for (int i = 0; i < p.n; i++)
        if (p.rows[i].kind == TN_REMOTE_FILE && strcmp(p.rows[i].key, fname) == 0) f = &p.rows[i];
    ASSERT(f != NULL);
    size_t blen = strlen(hex) / 2;
    unsigned char *bytes = malloc(blen + 1);
    ASSERT(bytes != NULL);
    for (size_t i = 0; i < blen; i++) {
        unsigned v;
        ASSERT(sscanf(hex + 2 * i, "%2x", &v) == 1);
        bytes[i] = (unsigned char)v;
    }
    ASSERT_INT_EQ(f->size, (int64_t)blen);
    char path[600];
    snprintf(path, sizeof path, "%s/synced", tn_test_tmpdir());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT_INT_EQ(m.r->m->get_object(m.c, f, fd), TN_OK);
    size_t got;
    char *back = slurp_fd(fd, &got);
    ASSERT_INT_EQ(got, blen);
    ASSERT(memcmp(back, bytes, blen) == 0);
    free(back);
    free(bytes);
    close(fd);
    tn_remote_page_free(&p);
    moto_close(&m);
}

/* FIPS 180-2 vectors; then a file over several read chunks against the
 * store's own (independent, libsodium) SHA-256. */
TEST(sync_digest_vectors_and_files) {
    char hex[65];
    ASSERT_INT_EQ(tn__digest_hex("abc", 3, hex), TN_OK);
    ASSERT_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ASSERT_INT_EQ(tn__digest_hex("", 0, hex), TN_OK);
    ASSERT_STR_EQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    size_t n = 1000000;
    char *a = malloc(n);
    ASSERT(a != NULL);
    memset(a, 'a', n);
    char path[512];
    snprintf(path, sizeof path, "%s/a.bin", tn_test_tmpdir());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0);
    ASSERT_INT_EQ(write(fd, a, n), (ssize_t)n);
    ASSERT_INT_EQ(tn__digest_fd_hex(fd, hex), TN_OK);
    ASSERT_STR_EQ(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
    size_t big = (3u << 20) + 12345;
    unsigned char *b = malloc(big);
    ASSERT(b != NULL);
    randombytes_buf(b, big);
    ASSERT_INT_EQ(ftruncate(fd, 0), 0);
    ASSERT_INT_EQ(pwrite(fd, b, big, 0), (ssize_t)big);
    char want[65];
    tn__sha256_hex(b, big, want);
    ASSERT_INT_EQ(tn__digest_fd_hex(fd, hex), TN_OK);
    ASSERT_STR_EQ(hex, want);
    ASSERT_INT_EQ(tn__digest_hex(b, big, hex), TN_OK);
    ASSERT_STR_EQ(hex, want);
    free(b);
    close(fd);
}

/* ---- the shared bandwidth budget (src/base/pace.c) ---- */

typedef struct pace_arg {
    tn__pace *p;
    size_t bytes;
} pace_arg;

static void *pace_sender(void *arg) {
    pace_arg *a = arg;
    size_t chunk = tn__pace_chunk(a->p);
    for (size_t off = 0; off < a->bytes; off += chunk)
        tn__pace_take(a->p, a->bytes - off < chunk ? a->bytes - off : chunk, NULL);
    return NULL;
}

/* Four senders of 512 KiB through one budget of 4 MiB/s: together they take
 * at least (2 MiB - the 50 ms burst - a chunk) / 4 MiB/s; each alone would
 * have been let through at once had the budget been per sender. */
TEST(sync_pace_is_one_budget_for_every_sender) {
    tn__pace p;
    tn__pace_init(&p);
    volatile int stop = 0;
    int64_t t0 = tn__mono_ms();
    ASSERT_INT_EQ(tn__pace_take(&p, 1 << 30, &stop), 0); /* no cap: no wait */
    ASSERT(tn__mono_ms() - t0 < 50);
    ASSERT_INT_EQ((int64_t)tn__pace_chunk(&p), 65536);
    tn__pace_set(&p, 4 << 20);
    ASSERT_INT_EQ(tn__pace_rate(&p), 4 << 20);
    ASSERT_INT_EQ((int64_t)tn__pace_chunk(&p), 65536);
    pthread_t th[4];
    pace_arg a = {&p, 512 << 10};
    t0 = tn__mono_ms();
    for (int i = 0; i < 4; i++) ASSERT(pthread_create(&th[i], NULL, pace_sender, &a) == 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    int64_t took = tn__mono_ms() - t0;
    int64_t least = ((2 << 20) - (4 << 20) / 20 - 65536) * 1000 / (4 << 20);
    if (took < least) TN_FAIL_("2 MiB through 4 MiB/s in %lld ms, under %lld", (long long)took,
                               (long long)least);
    if (took > 5000) TN_FAIL_("2 MiB through 4 MiB/s took %lld ms", (long long)took);
    /* A slow budget: small chunks, and a wait that a stop ends. */
    tn__pace_set(&p, 2000);
    ASSERT_INT_EQ((int64_t)tn__pace_chunk(&p), 1024);
    ASSERT_INT_EQ(tn__pace_take(&p, 1024, &stop), 0); /* the link is busy for ~3 s now */
    stop = 1;
    t0 = tn__mono_ms();
    ASSERT_INT_EQ(tn__pace_take(&p, 1024, &stop), -1);
    ASSERT(tn__mono_ms() - t0 < 1000);
    tn__pace_destroy(&p);
}

/* The learned rate: off until a throttling answer; then 0.7 of what the
 * remote accepted over the last second (a throttling with nothing accepted
 * leaves it off); a throttled answer to a request sent before the cut
 * changes nothing; later ones cut again; accepted
 * answers let it grow back, staying under the rate of the last cut at
 * first (the cubic curve is flat near it). */
TEST(sync_adapt_cuts_once_per_throttling_and_grows_back) {
    tn__adapt a;
    tn__adapt_init(&a);
    int64_t t0 = tn__mono_us();
    int64_t sent = tn__adapt_take(&a, NULL, NULL);
    ASSERT(sent >= t0);
    ASSERT(tn__adapt_rate(&a) == 0);
    for (int i = 0; i < 100; i++) tn__adapt_answer(&a, sent, 1, 0);
    ASSERT(tn__adapt_rate(&a) == 0); /* accepted answers alone do not turn it on */
    int64_t before_cut = tn__mono_us();
    tn__adapt_answer(&a, sent, 0, 1);
    /* 100 accepted over at least 20 ms and at most the wall time since. */
    double first = tn__adapt_rate(&a);
    int64_t span_us = tn__mono_us() - t0;
    double most = 0.7 * 100 * 1e6 / 20000,
           least = 0.7 * 100 * 1e6 / (double)(span_us > 20000 ? span_us : 20000);
    if (first > most + 1e-6 || first < least - 1e-6)
        TN_FAIL_("first cut to %.1f, want between %.1f and %.1f", first, least, most);
    /* Thirty more throttled answers of requests sent before the cut. */
    for (int i = 0; i < 30; i++) tn__adapt_answer(&a, before_cut - 1, 0, 1);
    ASSERT(tn__adapt_rate(&a) == first);
    /* A request sent after the cut and throttled: cut again. */
    int64_t later = tn__adapt_take(&a, NULL, NULL);
    tn__adapt_answer(&a, later, 0, 1);
    double second = tn__adapt_rate(&a);
    if (!(second <= 0.7 * first + 1e-6)) TN_FAIL_("second cut to %.1f after %.1f", second, first);
    ASSERT(second >= 5.0); /* the floor */
    /* Accepted answers: the rate grows with the time since the cut. */
    double last = second;
    for (int i = 0; i < 3; i++) {
        struct timespec ts = {0, 60 * 1000000};
        nanosleep(&ts, NULL);
        tn__adapt_answer(&a, tn__mono_us(), 1, 0);
        double r = tn__adapt_rate(&a);
        if (!(r > last)) TN_FAIL_("rate %.3f after %.3f: no growth", r, last);
        last = r;
    }
    double w = second / 0.7; /* the rate at the last cut */
    if (!(last < w)) TN_FAIL_("rate %.3f passed the last cut's %.3f within 0.2 s", last, w);
    /* Requests wait for their turns (no burst): the next one would wait, and
     * a stop ends that wait at once. */
    volatile int stop = 1;
    int64_t t1 = tn__mono_ms(), got = 0;
    for (int i = 0; i < 100000 && got >= 0; i++) got = tn__adapt_take(&a, &stop, NULL);
    ASSERT_INT_EQ(got, -1);
    ASSERT(tn__mono_ms() - t1 < 500);
    tn__adapt_destroy(&a);
    /* Throttled with nothing accepted: a refusal, not a rate; it stays off. */
    tn__adapt_init(&a);
    sent = tn__adapt_take(&a, NULL, NULL);
    tn__adapt_answer(&a, sent, 0, 1);
    ASSERT(tn__adapt_rate(&a) == 0);
    tn__adapt_destroy(&a);
}
