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
