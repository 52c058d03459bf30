/*
 * test_config.c - the configuration file parser (src/config.c): every key,
 * the syntax, each kind of bad input with the line and key it names, that no
 * message quotes a value, loading from disk, and the precedence of the
 * environment over the file.  Expected values are written out by hand.
 */
#include "config.h"
#include "harness.h"
#include "tenantry.h"

#include <sys/stat.h>
#include <unistd.h>

static int parse(const char *text, tn__config *c, tn__config_err *e) {
    return tn__config_parse(text, strlen(text), c, e);
}

/* text must be refused at line with key (or "") and a message containing want. */
static void refused(const char *text, int line, const char *key, const char *want) {
    tn__config c;
    tn__config_err e;
    int rc = parse(text, &c, &e);
    if (rc != TN_INVALID) TN_FAIL_("accepted: %s", text);
    if (e.line != line) TN_FAIL_("line %d, not %d, for: %s", e.line, line, text);
    if (strcmp(e.key, key) != 0) TN_FAIL_("key \"%s\", not \"%s\", for: %s", e.key, key, text);
    if (!strstr(e.msg, want)) TN_FAIL_("message \"%s\" lacks \"%s\"", e.msg, want);
}

TEST(config_every_key) {
    static const char text[] =
        "# tenantry.conf\n"
        "\n"
        "listen = [::1]:9000\n"
        "threads = 6\n"
        "rate = 12.5\n"
        "burst = 40\n"
        "auth_fail_rate = 0.5\n"
        "auth_fail_burst = 7\n"
        "tenant_rate = 0\n"
        "tenant_burst = 900\n"
        "cors_origins = https://app.local:8443, http://localhost:3000\n"
        "sync = off\n"
        "s3_bucket = appliance-7.backup\n"
        "dynamodb_table = Tenantry_Rows\n"
        "table_prefix = prod_\n"
        "region = eu-west-1\n"
        "role_arn = arn:aws:iam::123456789012:role/tenantry-sync\n"
        "external_id = \"Ext+id=1,2.3@a:b/c-d_e\"\n"
        "sync_interval = 15\n"
        "sync_bandwidth = 0\n"
        "sync_early_rows = 250\n"
        "sync_connections = 48\n"
        "multipart_threshold_mb = 32\n"
        "part_size_mb = 16\n"
        "tombstone_ttl = 86400\n";
    tn__config c;
    tn__config_err e;
    ASSERT_INT_EQ(parse(text, &c, &e), TN_OK);
    ASSERT_STR_EQ(c.listen, "[::1]:9000");
    ASSERT_INT_EQ(c.port, -1);
    ASSERT_INT_EQ(c.threads, 6);
    ASSERT(c.rate == 12.5 && c.burst == 40 && c.auth_fail_rate == 0.5 && c.auth_fail_burst == 7);
    ASSERT(c.tenant_rate == 0 && c.tenant_burst == 900);
    ASSERT_STR_EQ(c.cors_origins, "https://app.local:8443, http://localhost:3000");
    ASSERT_INT_EQ(c.sync, 0);
    ASSERT_STR_EQ(c.s3_bucket, "appliance-7.backup");
    ASSERT_STR_EQ(c.dynamodb_table, "Tenantry_Rows");
    ASSERT_STR_EQ(c.table_prefix, "prod_");
    ASSERT_STR_EQ(c.region, "eu-west-1");
    ASSERT_STR_EQ(c.role_arn, "arn:aws:iam::123456789012:role/tenantry-sync");
    ASSERT_STR_EQ(c.external_id, "Ext+id=1,2.3@a:b/c-d_e");
    ASSERT_INT_EQ(c.sync_interval, 15);
    ASSERT_INT_EQ(c.sync_bandwidth, 0);
    ASSERT_INT_EQ(c.sync_early_rows, 250);
    ASSERT_INT_EQ(c.sync_connections, 48);
    ASSERT_INT_EQ(c.multipart_threshold_mb, 32);
    ASSERT_INT_EQ(c.part_size_mb, 16);
    ASSERT_INT_EQ(c.tombstone_ttl, 86400);
}

TEST(config_empty_and_defaults) {
    tn__config c;
    tn__config_err e;
    ASSERT_INT_EQ(tn__config_parse("", 0, &c, &e), TN_OK);
    ASSERT_STR_EQ(c.listen, "");
    ASSERT_INT_EQ(c.threads, -1);
    ASSERT_INT_EQ(c.sync, -1);
    ASSERT_INT_EQ(c.sync_interval, -1);
    ASSERT(c.rate == -1);
    ASSERT_INT_EQ(parse("\n\n   \n\t# only comments\n#x=y\n", &c, &e), TN_OK);
    ASSERT_STR_EQ(c.s3_bucket, "");
}

TEST(config_syntax) {
    tn__config c;
    tn__config_err e;
    /* CRLF, spaces around =, a comment after a value, no final newline. */
    ASSERT_INT_EQ(parse("port=8788\r\n  region  =\tus-east-2   # where\r\nsync = on", &c, &e), TN_OK);
    ASSERT_INT_EQ(c.port, 8788);
    ASSERT_STR_EQ(c.listen, "127.0.0.1:8788");
    ASSERT_STR_EQ(c.region, "us-east-2");
    ASSERT_INT_EQ(c.sync, 1);
    /* Quotes keep '#' and spaces; \" and \\ are the escapes. */
    ASSERT_INT_EQ(parse("listen = \"unix:/run/t n/#api.sock\"  # c\n", &c, &e), TN_OK);
    ASSERT_STR_EQ(c.listen, "unix:/run/t n/#api.sock");
    ASSERT_INT_EQ(parse("listen = \"unix:/a\\\\b\\\"c\"\n", &c, &e), TN_OK);
    ASSERT_STR_EQ(c.listen, "unix:/a\\b\"c");
    /* '#' not after a space is part of the value. */
    ASSERT_INT_EQ(parse("listen = unix:/x#y\n", &c, &e), TN_OK);
    ASSERT_STR_EQ(c.listen, "unix:/x#y");
    ASSERT_INT_EQ(parse("sync = false\nthreads = \"3\"\n", &c, &e), TN_OK);
    ASSERT_INT_EQ(c.sync, 0);
    ASSERT_INT_EQ(c.threads, 3);
    /* UTF-8 is fine in comments and quoted unix paths. */
    ASSERT_INT_EQ(parse("# caf\xc3\xa9 \xf0\x9f\x98\x80\nlisten = \"unix:/tmp/\xc3\xa9\"\n", &c, &e), TN_OK);
}

TEST(config_refuses_bad_lines) {
    refused("port = 1\nport 2\n", 2, "", "missing '='");
    refused("just some text\n", 1, "", "missing '='");
    refused("Port = 1\n", 1, "", "lower-case");
    refused("\n\nthreds = 4\n", 3, "threds", "unknown key");
    refused("aws_secret_access_key = x\n", 1, "aws_secret_access_key", "credentials belong");
    refused("port = 1\n# x\nport = 1\n", 3, "port", "given twice (first on line 1)");
    refused("listen = 127.0.0.1:1\nport = 2\n", 2, "port", "not both (the other is on line 1)");
    refused("port = 2\nlisten = 127.0.0.1:1\n", 2, "listen", "not both");
    refused("region =\n", 1, "region", "needs a value");
    refused("region = # nothing\n", 1, "region", "needs a value");
    refused("region = \"\"\n", 1, "region", "needs a value");
    refused("region = \"eu-west-1\n", 1, "region", "closing quote");
    refused("region = \"eu\" west\n", 1, "region", "only a comment");
    refused("region = eu\"west\n", 1, "region", "quote inside");
    refused("region = \"eu\\n\"\n", 1, "region", "escapes");
    refused("region = eu-west-1\x01\n", 1, "", "control character");
    refused("region = eu\rwest\n", 1, "", "control character");
    refused("\n\x7f\n", 2, "", "control character");
}

TEST(config_refuses_bad_numbers) {
    refused("port = 0\n", 1, "port", "from 1 to 65535");
    refused("port = 65536\n", 1, "port", "from 1 to 65535");
    refused("port = -1\n", 1, "port", "negative");
    refused("port = 80x\n", 1, "port", "whole number");
    refused("port = 8.5\n", 1, "port", "whole number");
    refused("port = +80\n", 1, "port", "whole number");
    refused("port = 1e3\n", 1, "port", "whole number");
    refused("port = 0x50\n", 1, "port", "whole number");
    refused("port = 99999999999999999999999\n", 1, "port", "from 1 to 65535");
    refused("threads = 257\n", 1, "threads", "from 1 to 256");
    refused("rate = 0\n", 1, "rate", "from 0.001 to 1000000");
    refused("rate = 1.\n", 1, "rate", "number");
    refused("rate = .5\n", 1, "rate", "number");
    refused("burst = -3.5\n", 1, "burst", "negative");
    refused("sync_interval = 0\n", 1, "sync_interval", "from 1 to 604800");
    refused("part_size_mb = 4\n", 1, "part_size_mb", "from 5 to 5120");
    refused("multipart_threshold_mb = 1025\n", 1, "multipart_threshold_mb", "from 5 to 1024");
    refused("sync_bandwidth = -1\n", 1, "sync_bandwidth", "negative");
    refused("sync = yes\n", 1, "sync", "on or off");
    tn__config c;
    tn__config_err e;
    ASSERT_INT_EQ(parse("port = 65535\nthreads = 256\nsync_interval = 604800\n", &c, &e), TN_OK);
    ASSERT_INT_EQ(c.port, 65535);
    ASSERT_INT_EQ(c.threads, 256);
    ASSERT_INT_EQ(c.sync_interval, 604800);
    ASSERT_INT_EQ(parse("rate = 0.001\nsync_bandwidth = 1000000000000\nport = 007\n", &c, &e), TN_OK);
    ASSERT(c.rate == 0.001);
    ASSERT_INT_EQ(c.sync_bandwidth, 1000000000000LL);
    ASSERT_INT_EQ(c.port, 7);
}

TEST(config_refuses_bad_strings) {
    refused("s3_bucket = ab\n", 1, "s3_bucket", "3 to 63");
    refused("s3_bucket = My-Bucket\n", 1, "s3_bucket", "bucket name");
    refused("s3_bucket = -bucket\n", 1, "s3_bucket", "bucket name");
    refused("s3_bucket = a..b\n", 1, "s3_bucket", "bucket name");
    refused("dynamodb_table = a b c\n", 1, "dynamodb_table", "A-Z a-z");
    refused("region = EU-WEST-1\n", 1, "region", "region");
    refused("role_arn = role/tenantry-sync-is-long\n", 1, "role_arn", "ARN");
    refused("external_id = \"a b\"\n", 1, "external_id", "may hold only");
    refused("listen = localhost\n", 1, "listen", "HOST:PORT");
    refused("listen = localhost:0\n", 1, "listen", "HOST:PORT");
    refused("listen = localhost:65536\n", 1, "listen", "HOST:PORT");
    refused("listen = unix:relative\n", 1, "listen", "unix:/");
    refused("listen = [zz]:80\n", 1, "listen", "HOST:PORT");
    refused("listen = a/b:80\n", 1, "listen", "HOST:PORT");
    /* CORS: scheme://host[:port], no path, * alone. */
    refused("cors_origins = https://a.example/\n", 1, "cors_origins", "no path");
    refused("cors_origins = ftp://a.example\n", 1, "cors_origins", "scheme://host");
    refused("cors_origins = https://a.example:99999\n", 1, "cors_origins", "scheme://host");
    refused("cors_origins = https://a.example,*\n", 1, "cors_origins", "stand alone");
    refused("cors_origins = https://a.example,,https://b.example\n", 1, "cors_origins", "scheme");
    tn__config c;
    tn__config_err e;
    ASSERT_INT_EQ(parse("cors_origins = *\n", &c, &e), TN_OK);
    ASSERT_STR_EQ(c.cors_origins, "*");
    ASSERT_INT_EQ(parse("cors_origins = http://[::1]:8080,https://x-y.local\n", &c, &e), TN_OK);
    ASSERT_STR_EQ(c.cors_origins, "http://[::1]:8080,https://x-y.local");
}

TEST(config_refuses_bad_bytes) {
    static const char nul[] = "port = 1\nregion = eu\0west\n";
    tn__config c;
    tn__config_err e;
    ASSERT_INT_EQ(tn__config_parse(nul, sizeof nul - 1, &c, &e), TN_INVALID);
    ASSERT_INT_EQ(e.line, 2);
    ASSERT(strstr(e.msg, "NUL") != NULL);
    refused("# \xc0\x80 overlong NUL\n", 1, "", "UTF-8");
    refused("# \xed\xa0\x80 surrogate\n", 1, "", "UTF-8");
    refused("# \xf4\x90\x80\x80 above U+10FFFF\n", 1, "", "UTF-8");
    refused("x = 1\n", 1, "x", "unknown"); /* the key is checked after the bytes */
    refused("# \xe2\x82\n", 1, "", "UTF-8"); /* truncated sequence at the line end */
    refused("port = 1\n#\xff\n", 2, "", "UTF-8");
}

TEST(config_line_length) {
    char line[TN__CONF_LINE_MAX + 3];
    memset(line, ' ', sizeof line);
    memcpy(line, "# ", 2);
    tn__config c;
    tn__config_err e;
    line[TN__CONF_LINE_MAX] = '\n'; /* exactly the limit */
    ASSERT_INT_EQ(tn__config_parse(line, TN__CONF_LINE_MAX + 1, &c, &e), TN_OK);
    line[TN__CONF_LINE_MAX] = ' ';
    line[TN__CONF_LINE_MAX + 1] = '\n'; /* one over */
    ASSERT_INT_EQ(tn__config_parse(line, TN__CONF_LINE_MAX + 2, &c, &e), TN_INVALID);
    ASSERT_INT_EQ(e.line, 1);
    ASSERT(strstr(e.msg, "longer than 1024 bytes") != NULL);
    /* A CR before the LF does not count. */
    line[TN__CONF_LINE_MAX] = '\r';
    ASSERT_INT_EQ(tn__config_parse(line, TN__CONF_LINE_MAX + 2, &c, &e), TN_OK);
    /* A very long unknown key is named, cut short. */
    char key[200 + 8];
    memset(key, 'k', 200);
    memcpy(key + 200, " = 1\n", 6);
    ASSERT_INT_EQ(parse(key, &c, &e), TN_INVALID);
    ASSERT_INT_EQ((long long)strlen(e.key), (long long)sizeof e.key - 1);
    ASSERT(strcmp(e.key + strlen(e.key) - 3, "...") == 0);
}

/* No message or key ever carries a value: secrets stay out of logs. */
TEST(config_messages_never_quote_values) {
    static const char *const texts[] = {
        "external_id = sEcReT-VaLuE-42 extra\n",
        "external_id = \"sEcReT-VaLuE-42\n",
        "external_id = sEcReT-VaLuE-42 \"\n",
        "external_id = sEcReT/VaLuE/42!\n",
        "sEcReT-VaLuE-42\n",
        "role_arn = sEcReT-VaLuE-42\n",
        "external_id = x\nexternal_id = sEcReT-VaLuE-42\n",
        "port = sEcReT-VaLuE-42\n",
        "cors_origins = https://sEcReT-VaLuE-42/\n",
        "sEcReT-VaLuE-42 = 1\n",
        "aws_secret = sEcReT-VaLuE-42\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        tn__config c;
        tn__config_err e;
        if (parse(texts[i], &c, &e) != TN_INVALID) TN_FAIL_("accepted %s", texts[i]);
        if (strstr(e.msg, "VaLuE") || strstr(e.key, "VaLuE") || strstr(e.msg, "sEcReT"))
            TN_FAIL_("message quotes the value: %s: %s", e.key, e.msg);
    }
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

TEST(config_load) {
    char path[4096], msg[1024];
    tn__config c;
    snprintf(path, sizeof path, "%s/tenantry.conf", tn_test_tmpdir());
    ASSERT_INT_EQ(tn__config_load(path, &c, msg, sizeof msg), TN_NOTFOUND);
    write_file(path, "# ok\nsync_interval = 9\n");
    ASSERT_INT_EQ(tn__config_load(path, &c, msg, sizeof msg), TN_OK);
    ASSERT_INT_EQ(c.sync_interval, 9);
    ASSERT_STR_EQ(c.file, path);
    write_file(path, "sync_interval = 9\n\nsync_interval = 8\n");
    ASSERT_INT_EQ(tn__config_load(path, &c, msg, sizeof msg), TN_INVALID);
    char want[4200];
    snprintf(want, sizeof want, "%s:3: sync_interval: given twice (first on line 1)", path);
    ASSERT_STR_EQ(msg, want);
    write_file(path, "nothing here\n");
    ASSERT_INT_EQ(tn__config_load(path, &c, msg, sizeof msg), TN_INVALID);
    snprintf(want, sizeof want, "%s:1: missing '=' (lines are key = value)", path);
    ASSERT_STR_EQ(msg, want);
    ASSERT_INT_EQ(tn__config_load(tn_test_tmpdir(), &c, msg, sizeof msg), TN_IO);
    ASSERT(strstr(msg, "cannot read") != NULL);
    if (geteuid() != 0) { /* root reads anything */
        chmod(path, 0);
        ASSERT_INT_EQ(tn__config_load(path, &c, msg, sizeof msg), TN_IO);
    }
}

TEST(config_environment_wins) {
    tn__config c;
    tn__config_err e;
    static const char text[] = "s3_bucket = from-file\nsync_interval = 7\nregion = eu-north-1\n"
                               "role_arn = arn:aws:iam::123456789012:role/file\n"
                               "cors_origins = https://file.example\ntombstone_ttl = 60\n";
    ASSERT_INT_EQ(parse(text, &c, &e), TN_OK);
    setenv("TENANTRY_SYNC_INTERVAL", "30", 1);
    setenv("TENANTRY_S3_BUCKET", "", 1); /* empty counts as not set */
    setenv("AWS_DEFAULT_REGION", "ap-south-1", 1); /* the other spelling counts */
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/env", 1);
    unsetenv("AWS_REGION");
    unsetenv("TENANTRY_AWS_ROLE_ARN");
    unsetenv("TENANTRY_CORS_ORIGINS");
    unsetenv("TENANTRY_TOMBSTONE_TTL");
    unsetenv("TENANTRY_SYNC_PART_MB");
    ASSERT_INT_EQ(tn__config_export(&c), TN_OK);
    ASSERT_STR_EQ(getenv("TENANTRY_SYNC_INTERVAL"), "30");
    ASSERT_STR_EQ(getenv("TENANTRY_S3_BUCKET"), "from-file");
    ASSERT(getenv("AWS_REGION") == NULL);
    ASSERT(getenv("TENANTRY_AWS_ROLE_ARN") == NULL);
    ASSERT_STR_EQ(getenv("TENANTRY_CORS_ORIGINS"), "https://file.example");
    ASSERT_STR_EQ(getenv("TENANTRY_TOMBSTONE_TTL"), "60");
    ASSERT(getenv("TENANTRY_SYNC_PART_MB") == NULL); /* not in the file */
    ASSERT_STR_EQ(tn__config_env_name("part_size_mb"), "TENANTRY_SYNC_PART_MB");
    ASSERT(tn__config_env_name("threads") == NULL);
}
