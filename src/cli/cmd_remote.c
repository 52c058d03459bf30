/*
 * cmd_remote.c - `tenantry remote template`: the CloudFormation template (YAML)
 * for the AWS side of one appliance, and with --quick-create-url the console
 * link that creates a stack from a template the operator stored in S3.
 *
 * The template holds the DynamoDB table (pk/sk strings, on-demand, TTL on
 * expires_at, point-in-time recovery, the change feed's index "feed": hash pk,
 * range feed, all attributes), the bucket (public access blocked, default
 * encryption, incomplete multipart uploads aborted after 7 days, TLS only)
 * and the appliance's role: assumable only by one principal with the
 * appliance's external id (what sync/aws.c sends to STS), allowed exactly the
 * calls the sync engine makes at run time -
 *   DynamoDB GetItem, BatchGetItem (the remote versions of files before
 *      their upload), PutItem, BatchWriteItem (IAM has no TransactWriteItems
 *      action: each Put inside one is authorized as dynamodb:PutItem, and the
 *      engine's transactions hold only Puts), Query on the table (a tenant's
 *      full listing) and on its index feed (the change feed), DeleteItem (a
 *      purged tenant's rows)
 *   S3 PutObject (presigned PUT, multipart create / UploadPart / complete),
 *      GetObject (presigned GET: pulled and restored files), DeleteObject,
 *      AbortMultipartUpload
 * - on that table and index with dynamodb:LeadingKeys limited to the
 * partitions of the tenants this appliance holds (the index's partition key
 * is pk too), and on those tenants' object prefixes only.  `remote init`'s
 * CreateTable, DescribeTable, UpdateTable, UpdateTimeToLive and HeadBucket
 * are set-up calls and stay out of the role; so does Scan (the tenant list
 * of a full restore): no condition can limit a Scan to some partitions.
 *
 * Every partition key and object prefix comes from sync/remote_key.c.  The
 * store is opened read-only.  Tenant ids appear in this output by design: it
 * is for the operator, never an API response.
 *
 * Intrinsic functions are written in their long form (Fn::Sub, Fn::GetAtt,
 * Ref) so that any YAML parser reads the template without CloudFormation's
 * custom tags.
 */
#include "cli.h"
#include "aws.h"
#include "http_client.h"
#include "remote_key.h"
#include "s3.h"
#include "sbuf.h"
#include "sigv4.h"
#include "conn.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TTL 900  /* presigned template URL: 15 minutes */
#define MAX_TTL 1800     /* never more than 30 minutes */
#define POLICY_LIMIT 10240 /* IAM: inline role policies, all of them together */

static const char HELP[] =
    "usage: tenantry remote template [--table NAME] [--bucket NAME] [--prefix P]\n"
    "                                [--tenants all|ID,...] [--kms-key ARN]\n"
    "       tenantry remote template --quick-create-url TEMPLATE_URL [--stack-name NAME]\n"
    "                                [--ttl SECONDS]\n"
    "       (both also take --data DIR and --config PATH)\n"
    "\n"
    "Prints a CloudFormation template (YAML) for the AWS side of this appliance: the\n"
    "DynamoDB table (on-demand, TTL on expires_at, point-in-time recovery), the S3\n"
    "bucket (public access blocked, encrypted, incomplete multipart uploads aborted\n"
    "after 7 days, TLS only) and a least-privilege IAM role for the appliance: only\n"
    "the DynamoDB and S3 calls the sync engine makes, only on the partitions and\n"
    "object prefixes of the chosen tenants.  The role trusts one principal\n"
    "(parameter TrustedPrincipalArn) presenting the external id (parameter\n"
    "ExternalId, the appliance's TENANTRY_AWS_EXTERNAL_ID).\n"
    "\n"
    "Defaults come from the environment, else the configuration file (as for sync).\n"
    "  --table NAME      table name (default TENANTRY_DYNAMODB_TABLE, else tenantry)\n"
    "  --prefix P        prepended to the table name (default TENANTRY_ENV_PREFIX)\n"
    "  --bucket NAME     bucket name (default TENANTRY_S3_BUCKET; required)\n"
    "  --tenants LIST    all (default) or a comma-separated list of tenant ids or names;\n"
    "                    the store is opened read-only\n"
    "  --kms-key ARN     encrypt the bucket with this KMS key (aws:kms) instead of\n"
    "                    AES256, and let the role use the key\n"
    "\n"
    "With --quick-create-url, prints instead the CloudFormation console link that\n"
    "creates a stack from a template stored in S3 (s3://BUCKET/KEY or an https S3\n"
    "URL).  The link carries a presigned GET URL of the template, signed with the\n"
    "credentials sync uses (same environment), valid --ttl seconds (default 900, at\n"
    "most 1800).  The console opens in AWS_REGION.\n"
    "\n"
    "  --stack-name NAME default tenantry\n"
    "  --ttl SECONDS     1 to 1800";

typedef struct opts {
    const char *table, *bucket, *prefix, *tenants, *kms_key, *data, *config;
    const char *quick_url, *stack_name, *ttl;
    int help;
} opts;

static int parse(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    static const struct {
        const char *name;
        size_t off;
    } table[] = {
        {"--table", offsetof(opts, table)},       {"--bucket", offsetof(opts, bucket)},
        {"--prefix", offsetof(opts, prefix)},     {"--tenants", offsetof(opts, tenants)},
        {"--kms-key", offsetof(opts, kms_key)},   {"--data", offsetof(opts, data)},
        {"--config", offsetof(opts, config)},
        {"--quick-create-url", offsetof(opts, quick_url)},
        {"--stack-name", offsetof(opts, stack_name)}, {"--ttl", offsetof(opts, ttl)},
    };
    /* argv[1] is "remote", argv[2] "template". */
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = 1;
            continue;
        }
        size_t k, n = sizeof table / sizeof table[0];
        for (k = 0; k < n; k++)
            if (strcmp(a, table[k].name) == 0) break;
        if (k == n) {
            if (a[0] == '-') fprintf(stderr, "tenantry: unknown option %s (see --help)\n", a);
            else fprintf(stderr, "tenantry: remote template takes no arguments (see --help)\n");
            return EX_USAGE;
        }
        if (i + 1 >= argc || !*argv[i + 1]) {
            fprintf(stderr, "tenantry: %s needs a value (see --help)\n", a);
            return EX_USAGE;
        }
        *(const char **)((char *)o + table[k].off) = argv[++i];
    }
    return EX_OK;
}

/* ---- names ------------------------------------------------------------------ */

/* DynamoDB: 3 to 255 of A-Z a-z 0-9 _ - . */
static int table_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 3 || n > 255) return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_-.", *p)) return 0;
    return 1;
}

/* S3 (general purpose buckets): 3 to 63 of a-z 0-9 . -, starting and ending
 * with a letter or digit, no "..". */
static int bucket_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 3 || n > 63 || strstr(s, "..")) return 0;
    if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1])) return 0;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '.' || *p == '-'))
            return 0;
    return 1;
}

static int kms_arn_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 20 || n > 2048 || strncmp(s, "arn:aws", 7) != 0 || !strstr(s, ":kms:")) return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(":/_-", *p)) return 0;
    return 1;
}

static int stack_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 128 || !isalpha((unsigned char)s[0])) return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-') return 0;
    return 1;
}

static int region_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 4 || n > 32) return 0;
    for (const char *p = s; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-') return 0;
    return 1;
}

/* ---- tenants ---------------------------------------------------------------- */

typedef struct tenant_set {
    char (*ids)[37];
    size_t n, cap;
    int failed;
} tenant_set;

static void set_add(tenant_set *s, const char *id) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->ids[i], id) == 0) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        void *p = realloc(s->ids, cap * sizeof *s->ids);
        if (!p) {
            s->failed = 1;
            return;
        }
        s->ids = p;
        s->cap = cap;
    }
    snprintf(s->ids[s->n++], sizeof s->ids[0], "%s", id);
}

static int add_each(const tn_tenant *t, void *arg) {
    set_add(arg, t->id);
    return 0;
}

/* Fills *s from "all" or "a,b,c" (ids or names).  An exit code. */
static int pick_tenants(tn_store *st, const char *spec, tenant_set *s) {
    if (strcmp(spec, "all") == 0) {
        int rc = tn_tenant_list(st, add_each, s);
        if (rc != TN_OK) return tn__cli_error("remote template", tn_errmsg(st), rc);
    } else {
        const char *p = spec;
        while (*p) {
            size_t len = strcspn(p, ",");
            char one[TN_TENANT_NAME_MAX + 1];
            if (len == 0 || len >= sizeof one) return tn__cli_usage("--tenants takes all or id,id,...");
            memcpy(one, p, len);
            one[len] = '\0';
            tn_tenant t;
            int rc = tn__uuid_valid(one) ? tn_tenant_get(st, one, &t) : TN_NOTFOUND;
            if (rc == TN_NOTFOUND) rc = tn_tenant_find(st, one, &t);
            if (rc == TN_NOTFOUND) {
                fprintf(stderr, "tenantry: remote template: no such tenant: %s\n", one);
                return EX_NOTFOUND;
            }
            if (rc != TN_OK) return tn__cli_error("remote template", tn_errmsg(st), rc);
            set_add(s, t.id);
            p += len;
            if (*p == ',') p++;
        }
    }
    if (s->failed) return tn__cli_error("remote template", NULL, TN_NOMEM);
    if (s->n == 0) {
        fprintf(stderr, "tenantry: remote template: the store holds no tenants (a role for no "
                        "tenant would allow nothing)\n");
        return EX_FAIL;
    }
    return EX_OK;
}

/* ---- the template ----------------------------------------------------------- */

/* One tenant's partition key and object prefix, from remote_key.c: the object
 * key of a file is the prefix followed by the file's name, so the prefix is the
 * key of a one-character name without that character. */
static int tenant_names(const char *id, char **pk, char **prefix) {
    tn__remote_key k;
    int rc = tn__remote_key_build(id, TN__REMOTE_FILE, "x", &k);
    if (rc != TN_OK) return rc;
    size_t n = strlen(k.object);
    rc = TN_ERROR;
    if (n > 1 && k.object[n - 1] == 'x' && k.object[n - 2] == '/') {
        k.object[n - 1] = '\0';
        *pk = k.part;
        *prefix = k.object;
        k.part = k.object = NULL;
        rc = TN_OK;
    }
    tn__remote_key_free(&k);
    return rc;
}

static int build_template(const char *table, const char *bucket, const char *kms_key,
                          const tenant_set *ts, char **out, size_t *policy_chars) {
    *out = NULL;
    char **pks = calloc(ts->n, sizeof *pks), **prefixes = calloc(ts->n, sizeof *prefixes);
    int rc = pks && prefixes ? TN_OK : TN_NOMEM;
    for (size_t i = 0; rc == TN_OK && i < ts->n; i++) rc = tenant_names(ts->ids[i], &pks[i], &prefixes[i]);
    tn__sbuf b = {0};
    /* Characters of the role policy as IAM counts them (JSON without
     * whitespace): the fixed part measured once (465), the table's ARN twice
     * (table and index, in the longest region name: 51 characters before the
     * table's name) and "/index/feed", plus each tenant's strings. */
    size_t pol = 465 + 2 * (51 + strlen(table)) + 11 + (kms_key ? 120 + strlen(kms_key) : 0);
    if (rc == TN_OK) {
        tn__sb_fmt(&b,
            "AWSTemplateFormatVersion: \"2010-09-09\"\n"
            "Description: \"tenantry: DynamoDB table, S3 bucket and a least-privilege role for "
            "one appliance (%zu tenant%s)\"\n"
            "Parameters:\n"
            "  TrustedPrincipalArn:\n"
            "    Type: String\n"
            "    Description: \"ARN of the IAM user or role whose credentials the appliance "
            "holds; only it may assume the appliance role\"\n"
            "    AllowedPattern: \"^arn:aws[a-z-]*:iam::[0-9]{12}:(root|user/.+|role/.+)$\"\n"
            "  ExternalId:\n"
            "    Type: String\n"
            "    Description: \"The appliance's TENANTRY_AWS_EXTERNAL_ID\"\n"
            "    NoEcho: true\n"
            "    MinLength: 2\n"
            "    MaxLength: 1224\n"
            "    AllowedPattern: \"^[A-Za-z0-9+=,.@:/_-]+$\"\n"
            "Resources:\n"
            "  Table:\n"
            "    Type: AWS::DynamoDB::Table\n"
            "    DeletionPolicy: Retain\n"
            "    UpdateReplacePolicy: Retain\n"
            "    Properties:\n"
            "      TableName: \"%s\"\n"
            "      BillingMode: PAY_PER_REQUEST\n"
            "      AttributeDefinitions:\n"
            "        - AttributeName: pk\n"
            "          AttributeType: S\n"
            "        - AttributeName: sk\n"
            "          AttributeType: S\n"
            "        - AttributeName: feed\n"
            "          AttributeType: N\n"
            "      KeySchema:\n"
            "        - AttributeName: pk\n"
            "          KeyType: HASH\n"
            "        - AttributeName: sk\n"
            "          KeyType: RANGE\n"
            "      GlobalSecondaryIndexes:\n"
            "        - IndexName: feed\n"
            "          KeySchema:\n"
            "            - AttributeName: pk\n"
            "              KeyType: HASH\n"
            "            - AttributeName: feed\n"
            "              KeyType: RANGE\n"
            "          Projection:\n"
            "            ProjectionType: ALL\n"
            "      TimeToLiveSpecification:\n"
            "        AttributeName: expires_at\n"
            "        Enabled: true\n"
            "      PointInTimeRecoverySpecification:\n"
            "        PointInTimeRecoveryEnabled: true\n"
            "  Bucket:\n"
            "    Type: AWS::S3::Bucket\n"
            "    DeletionPolicy: Retain\n"
            "    UpdateReplacePolicy: Retain\n"
            "    Properties:\n"
            "      BucketName: \"%s\"\n"
            "      PublicAccessBlockConfiguration:\n"
            "        BlockPublicAcls: true\n"
            "        BlockPublicPolicy: true\n"
            "        IgnorePublicAcls: true\n"
            "        RestrictPublicBuckets: true\n"
            "      OwnershipControls:\n"
            "        Rules:\n"
            "          - ObjectOwnership: BucketOwnerEnforced\n"
            "      BucketEncryption:\n"
            "        ServerSideEncryptionConfiguration:\n"
            "          - ServerSideEncryptionByDefault:\n",
            ts->n, ts->n == 1 ? "" : "s", table, bucket);
        if (kms_key)
            tn__sb_fmt(&b,
                "              SSEAlgorithm: aws:kms\n"
                "              KMSMasterKeyID: \"%s\"\n"
                "            BucketKeyEnabled: true\n", kms_key);
        else
            tn__sb_str(&b, "              SSEAlgorithm: AES256\n");
        tn__sb_str(&b,
            "      LifecycleConfiguration:\n"
            "        Rules:\n"
            "          - Id: abort-incomplete-multipart-uploads\n"
            "            Status: Enabled\n"
            "            AbortIncompleteMultipartUpload:\n"
            "              DaysAfterInitiation: 7\n"
            "  BucketPolicy:\n"
            "    Type: AWS::S3::BucketPolicy\n"
            "    Properties:\n"
            "      Bucket:\n"
            "        Ref: Bucket\n"
            "      PolicyDocument:\n"
            "        Version: \"2012-10-17\"\n"
            "        Statement:\n"
            "          - Sid: TlsOnly\n"
            "            Effect: Deny\n"
            "            Principal: \"*\"\n"
            "            Action: \"s3:*\"\n"
            "            Resource:\n"
            "              - Fn::GetAtt: [Bucket, Arn]\n"
            "              - Fn::Sub: \"${Bucket.Arn}/*\"\n"
            "            Condition:\n"
            "              Bool:\n"
            "                aws:SecureTransport: \"false\"\n"
            "  ApplianceRole:\n"
            "    Type: AWS::IAM::Role\n"
            "    Properties:\n"
            "      Description: \"tenantry appliance: sync of its own tenants only\"\n"
            "      MaxSessionDuration: 3600\n"
            "      AssumeRolePolicyDocument:\n"
            "        Version: \"2012-10-17\"\n"
            "        Statement:\n"
            "          - Effect: Allow\n"
            "            Principal:\n"
            "              AWS:\n"
            "                Ref: TrustedPrincipalArn\n"
            "            Action: sts:AssumeRole\n"
            "            Condition:\n"
            "              StringEquals:\n"
            "                sts:ExternalId:\n"
            "                  Ref: ExternalId\n"
            "      Policies:\n"
            "        - PolicyName: tenantry-appliance\n"
            "          PolicyDocument:\n"
            "            Version: \"2012-10-17\"\n"
            "            Statement:\n"
            "              - Sid: TenantRows\n"
            "                Effect: Allow\n"
            "                Action:\n"
            "                  - dynamodb:BatchGetItem\n"
            "                  - dynamodb:BatchWriteItem\n"
            "                  - dynamodb:DeleteItem\n"
            "                  - dynamodb:GetItem\n"
            "                  - dynamodb:PutItem\n"
            "                  - dynamodb:Query\n"
            "                Resource:\n"
            "                  - Fn::GetAtt: [Table, Arn]\n"
            "                  - Fn::Sub: \"${Table.Arn}/index/feed\"\n"
            "                Condition:\n"
            "                  ForAllValues:StringEquals:\n"
            "                    dynamodb:LeadingKeys:\n");
        for (size_t i = 0; i < ts->n; i++) {
            tn__sb_fmt(&b, "                      - \"%s\"\n", pks[i]);
            pol += strlen(pks[i]) + 3;
        }
        tn__sb_str(&b,
            "              - Sid: TenantObjects\n"
            "                Effect: Allow\n"
            "                Action:\n"
            "                  - s3:AbortMultipartUpload\n"
            "                  - s3:DeleteObject\n"
            "                  - s3:GetObject\n"
            "                  - s3:PutObject\n"
            "                Resource:\n");
        for (size_t i = 0; i < ts->n; i++) {
            tn__sb_fmt(&b, "                  - Fn::Sub: \"arn:${AWS::Partition}:s3:::${Bucket}/%s*\"\n",
                       prefixes[i]);
            pol += strlen("arn:aws:s3:::") + strlen(bucket) + 1 + strlen(prefixes[i]) + 4;
        }
        if (kms_key)
            tn__sb_fmt(&b,
                "              - Sid: BucketKey\n"
                "                Effect: Allow\n"
                "                Action:\n"
                "                  - kms:Decrypt\n"
                "                  - kms:GenerateDataKey\n"
                "                Resource: \"%s\"\n", kms_key);
        tn__sb_str(&b,
            "Outputs:\n"
            "  RoleArn:\n"
            "    Description: \"AWS_ROLE_ARN for the appliance\"\n"
            "    Value:\n"
            "      Fn::GetAtt: [ApplianceRole, Arn]\n"
            "  TableName:\n"
            "    Description: \"TENANTRY_DYNAMODB_TABLE (with TENANTRY_ENV_PREFIX)\"\n"
            "    Value:\n"
            "      Ref: Table\n"
            "  BucketName:\n"
            "    Description: \"TENANTRY_S3_BUCKET\"\n"
            "    Value:\n"
            "      Ref: Bucket\n");
        *out = tn__sb_take(&b);
        if (!*out) rc = TN_NOMEM;
    }
    tn__sb_free(&b);
    for (size_t i = 0; i < ts->n; i++) {
        if (pks) free(pks[i]);
        if (prefixes) free(prefixes[i]);
    }
    free(pks);
    free(prefixes);
    *policy_chars = pol;
    return rc;
}

static int print_template(const opts *o) {
    char table[300];
    const char *t = o->table ? o->table : getenv("TENANTRY_DYNAMODB_TABLE");
    const char *p = o->prefix ? o->prefix : getenv("TENANTRY_ENV_PREFIX");
    snprintf(table, sizeof table, "%s%s", p ? p : "", t && *t ? t : "tenantry");
    if (!table_name_ok(table))
        return tn__cli_usage("the table name (prefix included) takes 3 to 255 of A-Z a-z 0-9 _ - .");
    const char *bucket = o->bucket ? o->bucket : getenv("TENANTRY_S3_BUCKET");
    if (!bucket || !*bucket) return tn__cli_usage("no bucket: give --bucket or set TENANTRY_S3_BUCKET");
    if (!bucket_name_ok(bucket))
        return tn__cli_usage("the bucket name takes 3 to 63 of a-z 0-9 . - (starting and ending "
                             "with a letter or digit)");
    if (o->kms_key && !kms_arn_ok(o->kms_key)) return tn__cli_usage("--kms-key takes a KMS key ARN");

    tn__cli_opts co;
    memset(&co, 0, sizeof co);
    co.data = o->data ? o->data : getenv("TENANTRY_DATA");
    if (!co.data || !*co.data) co.data = "data";
    tn_store *st;
    int ex = tn__cli_open(&co, TN__OPEN_READONLY, &st);
    if (ex != EX_OK) return ex;
    tenant_set ts = {0};
    ex = pick_tenants(st, o->tenants ? o->tenants : "all", &ts);
    tn_close(st);
    char *yaml = NULL;
    size_t pol = 0;
    if (ex == EX_OK) {
        int rc = build_template(table, bucket, o->kms_key, &ts, &yaml, &pol);
        if (rc != TN_OK) ex = tn__cli_error("remote template", NULL, rc);
    }
    if (ex == EX_OK) {
        fputs(yaml, stdout);
        if (fflush(stdout) != 0) ex = tn__cli_error("remote template", "cannot write the template", TN_IO);
        if (pol > POLICY_LIMIT)
            fprintf(stderr, "tenantry: remote template: warning: the role policy is about %zu "
                            "characters, over IAM's %d for a role's inline policies; split the "
                            "tenants across appliances or templates (--tenants)\n", pol, POLICY_LIMIT);
    }
    free(yaml);
    free(ts.ids);
    return ex;
}

/* ---- quick-create link ------------------------------------------------------ */

/* %XX-decodes in into out (n bytes); 0, or -1 on a malformed escape, a
 * control character or no room. */
static int pct_decode(const char *in, size_t len, char *out, size_t n) {
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)in[i + 1]) ||
                !isxdigit((unsigned char)in[i + 2]))
                return -1;
            char hex[3] = {in[i + 1], in[i + 2], 0};
            c = (unsigned char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || j + 1 >= n) return -1;
        out[j++] = (char)c;
    }
    out[j] = '\0';
    return 0;
}

typedef struct s3_loc {
    char bucket[64];
    char key[1025];
    char region[40]; /* from the host name, "" when it names none */
} s3_loc;

/* "s3.amazonaws.com", "s3.REGION.amazonaws.com", "s3-REGION.amazonaws.com",
 * "s3.dualstack.REGION.amazonaws.com": 1 and the region (maybe ""), else 0. */
static int s3_host(const char *h, size_t n, char *region, size_t rn) {
    static const char *const sfx[] = {".amazonaws.com", ".amazonaws.com.cn"};
    for (int i = 0; i < 2; i++) {
        size_t sl = strlen(sfx[i]);
        if (n <= sl + 2 || strncmp(h + n - sl, sfx[i], sl) != 0 || strncmp(h, "s3", 2) != 0)
            continue;
        size_t mid = n - sl;
        region[0] = '\0';
        if (mid == 2) return 1;
        if (h[2] != '.' && h[2] != '-') return 0;
        const char *r = h + 3;
        size_t rl = mid - 3;
        if (rl > 10 && strncmp(r, "dualstack.", 10) == 0) r += 10, rl -= 10;
        if (rl == 0 || rl >= rn) return 0;
        memcpy(region, r, rl);
        region[rl] = '\0';
        return region_ok(region) || strcmp(region, "external-1") == 0;
    }
    return 0;
}

static int parse_s3_url(const char *url, const tn__aws *a, s3_loc *l) {
    memset(l, 0, sizeof *l);
    const char *path;
    if (strncmp(url, "s3://", 5) == 0) {
        const char *b = url + 5;
        size_t bl = strcspn(b, "/");
        if (bl == 0 || bl >= sizeof l->bucket || b[bl] != '/') return -1;
        memcpy(l->bucket, b, bl);
        const char *k = b + bl + 1;
        size_t kl = strlen(k);
        if (kl == 0 || kl >= sizeof l->key) return -1;
        for (const char *p = k; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) return -1;
        memcpy(l->key, k, kl + 1);
        return bucket_name_ok(l->bucket) ? 0 : -1;
    }
    const char *h;
    if (strncmp(url, "https://", 8) == 0) h = url + 8;
    else if (strncmp(url, "http://", 7) == 0) h = url + 7;
    else return -1;
    size_t hl = strcspn(h, "/?#");
    path = h + hl;
    if (*path != '/' || strpbrk(path, "?#")) return -1;
    char host[300];
    if (hl == 0 || hl >= sizeof host) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char dec[1200];
    if (pct_decode(path + 1, strlen(path + 1), dec, sizeof dec) != 0) return -1;
    char ephost[300];
    int path_style = 0;
    if (a->path_style && tn__aws_host(a->ep_s3, ephost, sizeof ephost) == TN_OK &&
        strcmp(ephost, host) == 0) {
        path_style = 1; /* the configured endpoint (a local S3) */
    } else if (s3_host(host, hl, l->region, sizeof l->region)) {
        path_style = 1;
    } else {
        /* BUCKET.s3[.-]... : the bucket is everything before the last ".s3" that
         * starts an S3 host name. */
        const char *s = NULL;
        for (const char *q = strstr(host, ".s3"); q; q = strstr(q + 1, ".s3"))
            if (s3_host(q + 1, strlen(q + 1), l->region, sizeof l->region)) s = q;
        if (!s || (size_t)(s - host) >= sizeof l->bucket) return -1;
        s3_host(s + 1, strlen(s + 1), l->region, sizeof l->region);
        memcpy(l->bucket, host, (size_t)(s - host));
        l->bucket[s - host] = '\0';
    }
    const char *k = dec;
    if (path_style) {
        size_t bl = strcspn(dec, "/");
        if (bl == 0 || bl >= sizeof l->bucket || dec[bl] != '/') return -1;
        memcpy(l->bucket, dec, bl);
        l->bucket[bl] = '\0';
        k = dec + bl + 1;
    }
    size_t kl = strlen(k);
    if (kl == 0 || kl >= sizeof l->key) return -1;
    memcpy(l->key, k, kl + 1);
    if (strcmp(l->region, "external-1") == 0) snprintf(l->region, sizeof l->region, "us-east-1");
    return bucket_name_ok(l->bucket) ? 0 : -1;
}

static int print_quick_create(const opts *o) {
    if (o->table || o->bucket || o->prefix || o->tenants || o->kms_key)
        return tn__cli_usage("--quick-create-url takes only --stack-name, --ttl, --data and --config");
    const char *stack = o->stack_name ? o->stack_name : "tenantry";
    if (!stack_name_ok(stack))
        return tn__cli_usage("--stack-name takes 1 to 128 of A-Z a-z 0-9 -, starting with a letter");
    long ttl = DEFAULT_TTL;
    if (o->ttl) {
        char *end;
        ttl = strtol(o->ttl, &end, 10);
        if (*end || end == o->ttl || ttl < 1 || ttl > MAX_TTL)
            return tn__cli_usage("--ttl takes 1 to 1800 seconds");
    }
    tn__aws a;
    char err[200];
    int rc = tn__aws_load(&a, NULL, err, sizeof err);
    if (rc != TN_OK) return tn__cli_error("remote template", "no AWS credentials", rc);
    int ex = EX_OK;
    s3_loc l;
    tn__http *h = NULL;
    char *url = NULL, *enc = NULL;
    if (!region_ok(a.region)) {
        ex = tn__cli_usage("AWS_REGION is not a region name");
        goto done;
    }
    if (parse_s3_url(o->quick_url, &a, &l) != 0) {
        ex = tn__cli_usage("--quick-create-url takes s3://BUCKET/KEY or an https S3 URL of the template");
        goto done;
    }
    /* The console opens in the configured region (the stack's); the URL is
     * signed for its bucket and, on AWS itself, the region it names. */
    char region[64];
    snprintf(region, sizeof region, "%s", a.region);
    snprintf(a.bucket, sizeof a.bucket, "%s", l.bucket);
    if (!a.path_style && l.region[0]) {
        snprintf(a.region, sizeof a.region, "%s", l.region);
        snprintf(a.ep_s3, sizeof a.ep_s3, "https://s3.%s.amazonaws.com%s", l.region,
                 strncmp(l.region, "cn-", 3) == 0 ? ".cn" : "");
    }
    /* A bucket name with dots does not match the TLS certificate of a
     * virtual-hosted name. */
    if (strchr(l.bucket, '.')) a.path_style = 1;
    if ((rc = tn__http_new(60, NULL, NULL, &h)) == TN_OK)
        rc = tn__s3_presign(&a, h, "GET", l.key, NULL, NULL, ttl, &url);
    if (rc == TN_OK && tn__sigv4_uri_encode(url, strlen(url), 0, &enc) != 0) rc = TN_NOMEM;
    if (rc != TN_OK) {
        ex = tn__cli_error("remote template", "cannot presign the template URL", rc);
        goto done;
    }
    const char *console = strncmp(region, "cn-", 3) == 0 ? "console.amazonaws.cn"
                          : strncmp(region, "us-gov-", 7) == 0 ? "console.amazonaws-us-gov.com"
                                                               : "console.aws.amazon.com";
    printf("https://%s/cloudformation/home?region=%s#/stacks/quickcreate?templateURL=%s"
           "&stackName=%s\n", console, region, enc, stack);
    if (fflush(stdout) != 0) ex = tn__cli_error("remote template", "cannot write the link", TN_IO);
done:
    free(enc);
    free(url);
    tn__http_free(h);
    tn__aws_free(&a);
    return ex;
}

int tn__cmd_remote_template(int argc, char **argv) {
    opts o;
    int ex = parse(argc, argv, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts(HELP);
        return EX_OK;
    }
    if (!o.quick_url && (o.stack_name || o.ttl))
        return tn__cli_usage("--stack-name and --ttl go with --quick-create-url");
    /* The configuration file's bucket, table, prefix, region and credentials
     * settings land in the environment read below. */
    tn__cli_opts co;
    memset(&co, 0, sizeof co);
    co.data = o.data ? o.data : getenv("TENANTRY_DATA");
    if (!co.data || !*co.data) co.data = "data";
    co.config = o.config;
    tn__config conf;
    if ((ex = tn__cli_config(&co, &conf)) != EX_OK) return ex;
    return o.quick_url ? print_quick_create(&o) : print_template(&o);
}
