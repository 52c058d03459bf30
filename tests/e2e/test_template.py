"""test_template - `tenantry remote template`: the CloudFormation template for
the AWS side, its quick-create link, and its IAM policy exercised in moto.

- The template passes cfn-lint (a linter that also fails on a broken copy, so
  the check can fail) and holds exactly the required properties; the partition
  keys and object prefixes in the policy are compared with the tenant ids
  `tenantry tenant list` prints.
- The quick-create link is parsed; the presigned GET inside it is signed again
  by botocore's own S3 query signer at the same time with the same
  credentials, and the two signatures must be equal.
- moto_server runs with INITIAL_NO_AUTH_ACTION_COUNT, so IAM authentication and
  authorization are on after the set-up calls.  An IAM user holding the
  template's policy (taken from the template, intrinsic functions resolved)
  writes through boto3, and `tenantry sync --once` runs through STS AssumeRole
  with the template's trust policy and external id.

What moto (5.x) enforces, found by these tests and its source
(moto/iam/access_control.py), and therefore what is asserted:
  - signatures and access keys: enforced (asserted: the set-up credentials are
    refused once auth is on);
  - actions: enforced, matched against the API operation name (asserted: calls
    outside the policy are refused; a policy without PutItem stops sync).  So
    moto wants dynamodb:TransactWriteItems, an action IAM does not have (AWS
    checks dynamodb:PutItem for each Put of a transaction): the suite adds it
    for moto only, and says so;
  - S3 resources: enforced, the object ARN arn:aws:s3:::bucket/key is matched
    (asserted: the tenant's own <id>/files/ prefix is writable, another
    tenant's prefix and paths outside files/ are refused);
  - DynamoDB resources: NOT evaluated: moto checks every DynamoDB call against
    the resource "*", which a table ARN never matches, so the exact policy is
    refused for every DynamoDB call.  The test says so loudly and continues
    with the same policy whose DynamoDB Resource is "*";
  - condition keys: only StringEquals on sts:ExternalId in trust policies
    (asserted: a wrong external id is refused; an absent one is accepted by
    moto, which real AWS refuses - printed, not asserted).  ForAllValues
    conditions such as dynamodb:LeadingKeys are ignored: another tenant's
    partition is writable in moto.  Printed loudly, never asserted;
  - presigned URLs: moto 5.2 fails (HTTP 500) on a presigned request while
    auth is on (it looks for an Authorization header), so the engine's file
    uploads are not run here; the S3 prefix rules are shown with header-signed
    calls (the same action and resource evaluation).  The suite prints what
    moto answered.
"""
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import awslib  # noqa: E402
import faultproxy  # noqa: E402
import tnlib  # noqa: E402

tn = tnlib.tn

BUILD = os.environ.get("TN_BUILD", "build")
TENANTRY = os.path.join(BUILD, "tenantry")
S = tnlib.Suite("template")
REGION = "us-east-1"
DDB_ACTIONS = {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:DeleteItem",
               "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"}
S3_ACTIONS = {"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"}


def note(text):
    print("NOTE (moto): " + text, flush=True)


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TENANTRY_"))}
    env["HOME"] = "/nonexistent"
    if os.environ.get("TN_ASAN_REEXEC"):
        env["ASAN_OPTIONS"] = os.environ.get("TN_CHILD_ASAN_OPTIONS", "")
    env.update(extra or {})
    return env


def load_yaml(text):
    try:
        import yaml
        return yaml.safe_load(text)
    except ImportError:
        from cfnlint.decode import decode_str
        tpl, errs = decode_str(text)
        if errs:
            raise AssertionError("cfn-lint could not decode the template: %r" % errs)
        return tpl


def cfn_lint_cmd():
    here = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
    if os.access(here, os.X_OK):
        return [here]
    if shutil.which("cfn-lint"):
        return [shutil.which("cfn-lint")]
    return [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())"]


def lint(text):
    d = tempfile.mkdtemp(prefix="tn-cfn-")
    try:
        path = os.path.join(d, "template.yaml")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run(cfn_lint_cmd() + ["--", path], capture_output=True, text=True,
                           timeout=300)
        return p.returncode, p.stdout + p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Store:
    """A store with tenants acme and globex; ids as `tenant list` prints them."""

    def __init__(self, tenants=("acme", "globex")):
        self.dir = tempfile.mkdtemp(prefix="tn-tpl-")
        self.data = os.path.join(self.dir, "data")
        self.env = clean_env({"TENANTRY_DATA": self.data})
        rc, _, err = tn(["init"], self.env)
        assert rc == 0, err
        for t in tenants:
            rc, _, err = tn(["tenant", "create", t], self.env)
            assert rc == 0, err
        rc, out, err = tn(["tenant", "list", "--json"], self.env)
        assert rc == 0, err
        self.ids = {t["name"]: t["id"] for t in json.loads(out)}

    def template(self, *args, env=None):
        rc, out, err = tn(["remote", "template"] + list(args), dict(self.env, **(env or {})))
        S.eq(rc, 0, "remote template %s: %s" % (" ".join(args), err))
        return out

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def role_policy(tpl):
    pols = tpl["Resources"]["ApplianceRole"]["Properties"]["Policies"]
    S.eq(len(pols), 1, "one inline policy")
    return pols[0]["PolicyDocument"]


def statements(doc, sid):
    return [s for s in doc["Statement"] if s.get("Sid") == sid]


def as_list(v):
    return v if isinstance(v, list) else [v]


# ---- usage ------------------------------------------------------------------------

def test_help_and_usage():
    st = Store()
    empty = Store(tenants=())
    try:
        rc, out, _ = tn(["remote", "template", "--help"], st.env)
        S.eq(rc, 0, "--help exit code")
        for word in ("--table", "--bucket", "--prefix", "--tenants", "--kms-key",
                     "--quick-create-url", "--stack-name", "--ttl"):
            S.check(word in out, "--help mentions " + word)
        rc, out, _ = tn(["remote", "--help"], st.env)
        S.check(rc == 0 and "template" in out, "remote --help mentions template")
        bad = [
            ["--bogus"], ["extra"], ["--bucket"], ["--bucket", "UPPER"], ["--bucket", "ab"],
            ["--bucket", "ok-bucket", "--table", "a/b"], ["--bucket", "ok-bucket", "--prefix", "x y"],
            ["--bucket", "ok-bucket", "--kms-key", "alias/x"],
            ["--bucket", "ok-bucket", "--ttl", "60"], ["--bucket", "ok-bucket", "--stack-name", "s"],
            ["--bucket", "ok-bucket", "--tenants", ",,"],
            ["--quick-create-url", "s3://tpl-bucket/t.yaml", "--ttl", "0"],
            ["--quick-create-url", "s3://tpl-bucket/t.yaml", "--ttl", "1801"],
            ["--quick-create-url", "s3://tpl-bucket/t.yaml", "--ttl", "15m"],
            ["--quick-create-url", "s3://tpl-bucket/t.yaml", "--stack-name", "1bad"],
            ["--quick-create-url", "s3://tpl-bucket/t.yaml", "--tenants", "all"],
            ["--quick-create-url", "https://example.com/t.yaml"],
            ["--quick-create-url", "s3://tpl-bucket/"], ["--quick-create-url", "ftp://x/y"],
            ["--quick-create-url", "https://tpl-bucket.s3.amazonaws.com/t.yaml?x=1"],
            ["--quick-create-url", "https://tpl-bucket.s3.amazonaws.com/a%zzb"],
        ]
        cred = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}
        for args in bad:
            rc, out, err = tn(["remote", "template"] + args, dict(st.env, **cred))
            S.eq(rc, 2, "exit code for %r (%s)" % (args, err.strip()))
            S.check(out == "" and err.count("\n") == 1 and err.startswith("tenantry: "),
                    "one line on stderr, nothing on stdout for %r: %r %r" % (args, out, err))
            S.check("secret" not in err, "no secret in the error for %r" % (args,))
        rc, out, err = tn(["remote", "template"], st.env)
        S.check(rc == 2 and "bucket" in err, "no bucket anywhere: %d %s" % (rc, err))
        rc, out, err = tn(["remote", "template", "--bucket", "ok-bucket", "--tenants", "acme,nope"],
                          st.env)
        S.check(rc == 3 and out == "" and "nope" in err, "unknown tenant: %d %r" % (rc, err))
        rc, out, err = tn(["remote", "template", "--bucket", "ok-bucket"], empty.env)
        S.check(rc == 1 and out == "" and "no tenants" in err, "empty store: %d %r" % (rc, err))
        rc, out, err = tn(["remote", "template", "--bucket", "ok-bucket"],
                          dict(st.env, TENANTRY_DATA=os.path.join(st.dir, "missing")))
        S.check(rc != 0 and out == "", "missing store: %d %r" % (rc, err))
        S.check(not os.path.exists(os.path.join(st.dir, "missing")), "a missing store is not created")
    finally:
        st.close()
        empty.close()


# ---- the template -----------------------------------------------------------------

def test_cfn_lint():
    st = Store()
    try:
        variants = {
            "all tenants": st.template("--bucket", "tn-appliance-1"),
            "one tenant, prefix": st.template("--bucket", "tn.appliance.2", "--tenants", "acme",
                                              "--prefix", "prod_", "--table", "rows"),
            "kms": st.template("--bucket", "tn-appliance-3", "--kms-key",
                               "arn:aws:kms:eu-west-1:123456789012:key/"
                               "1234abcd-12ab-34cd-56ef-1234567890ab"),
        }
        for name, text in variants.items():
            rc, out = lint(text)
            S.check(rc == 0, "cfn-lint on the template (%s): rc %d\n%s" % (name, rc, out))
        # The linter can fail: an unknown encryption algorithm must be reported.
        broken = variants["all tenants"].replace("SSEAlgorithm: AES256", "SSEAlgorithm: ROT13")
        S.check(broken != variants["all tenants"], "the broken copy differs")
        rc, out = lint(broken)
        S.check(rc != 0, "cfn-lint refuses a broken template (rc %d)" % rc)
    finally:
        st.close()


def test_template_properties():
    st = Store()
    try:
        tpl = load_yaml(st.template("--bucket", "tn-appliance-1"))
        r = tpl["Resources"]
        S.eq(set(r), {"Table", "Bucket", "BucketPolicy", "ApplianceRole"}, "resources")
        t = r["Table"]
        S.eq(t["Type"], "AWS::DynamoDB::Table", "table type")
        tp = t["Properties"]
        S.eq(tp["TableName"], "tenantry", "default table name")
        S.eq(tp["BillingMode"], "PAY_PER_REQUEST", "on-demand")
        S.eq(sorted((a["AttributeName"], a["AttributeType"]) for a in tp["AttributeDefinitions"]),
             [("feed", "N"), ("pk", "S"), ("sk", "S")], "attributes")
        S.eq([(k["AttributeName"], k["KeyType"]) for k in tp["KeySchema"]],
             [("pk", "HASH"), ("sk", "RANGE")], "key schema")
        # The change feed's index: a tenant's rows in push order.
        gsi = tp.get("GlobalSecondaryIndexes", [])
        S.eq([g["IndexName"] for g in gsi], ["feed"], "one global secondary index, feed")
        if gsi:
            S.eq([(k["AttributeName"], k["KeyType"]) for k in gsi[0]["KeySchema"]],
                 [("pk", "HASH"), ("feed", "RANGE")], "feed index key schema")
            S.eq(gsi[0]["Projection"], {"ProjectionType": "ALL"}, "feed index projects every attribute")
            S.check("ProvisionedThroughput" not in gsi[0], "on-demand index")
        S.eq(tp["TimeToLiveSpecification"], {"AttributeName": "expires_at", "Enabled": True}, "TTL")
        S.eq(tp["PointInTimeRecoverySpecification"], {"PointInTimeRecoveryEnabled": True}, "PITR")
        S.eq(t.get("DeletionPolicy"), "Retain", "table retained when the stack goes")
        b = r["Bucket"]
        S.eq(b["Type"], "AWS::S3::Bucket", "bucket type")
        bp = b["Properties"]
        S.eq(bp["BucketName"], "tn-appliance-1", "bucket name")
        S.eq(bp["PublicAccessBlockConfiguration"],
             {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
              "RestrictPublicBuckets": True}, "public access block")
        sse = bp["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        S.eq(sse[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256", "SSE")
        rules = bp["LifecycleConfiguration"]["Rules"]
        abort = [x for x in rules if "AbortIncompleteMultipartUpload" in x]
        S.check(len(abort) == 1 and abort[0]["Status"] == "Enabled" and
                1 <= abort[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] <= 30,
                "lifecycle rule aborting incomplete multipart uploads: %r" % rules)
        deny = r["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
        S.check(deny["Effect"] == "Deny" and
                deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, "TLS only")

        role = r["ApplianceRole"]["Properties"]
        trust = role["AssumeRolePolicyDocument"]["Statement"]
        S.eq(len(trust), 1, "one trust statement")
        S.eq(trust[0]["Action"], "sts:AssumeRole", "trust action")
        S.eq(trust[0]["Principal"], {"AWS": {"Ref": "TrustedPrincipalArn"}}, "trusted principal")
        S.eq(trust[0]["Condition"], {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
             "external id condition")
        S.eq(set(tpl["Parameters"]), {"TrustedPrincipalArn", "ExternalId"}, "parameters")
        S.check(tpl["Parameters"]["ExternalId"].get("NoEcho") is True, "ExternalId not echoed")

        doc = role_policy(tpl)
        S.eq(sorted(s.get("Sid") for s in doc["Statement"]), ["TenantObjects", "TenantRows"],
             "statements")
        for s in doc["Statement"]:
            S.eq(s["Effect"], "Allow", "effect")
            S.check(all("*" not in a for a in as_list(s["Action"])), "no wildcard action: %r" % s)
        rows = statements(doc, "TenantRows")[0]
        S.eq(set(rows["Action"]), DDB_ACTIONS, "DynamoDB actions")
        S.eq(rows["Resource"], [{"Fn::GetAtt": ["Table", "Arn"]}, {"Fn::Sub": "${Table.Arn}/index/feed"}],
             "DynamoDB resources: the table and its feed index, nothing else")
        want_pk = sorted("TENANT#" + i for i in st.ids.values())
        got_pk = rows["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
        S.eq(sorted(got_pk), want_pk, "LeadingKeys: exactly the tenants' partitions")
        S.eq(list(rows["Condition"]), ["ForAllValues:StringEquals"], "one condition operator")
        objs = statements(doc, "TenantObjects")[0]
        S.eq(set(objs["Action"]), S3_ACTIONS, "S3 actions")
        want_res = sorted("arn:${AWS::Partition}:s3:::${Bucket}/%s/files/*" % i
                          for i in st.ids.values())
        S.eq(sorted(x["Fn::Sub"] for x in objs["Resource"]), want_res, "S3 resources")
        S.check("Condition" not in objs, "no condition on objects")

        # One tenant, by name and by id; table name from --prefix/--table.
        acme = st.ids["acme"]
        for sel in ("acme", acme):
            tpl = load_yaml(st.template("--bucket", "tn-appliance-1", "--tenants", sel,
                                        "--prefix", "prod_", "--table", "rows"))
            S.eq(tpl["Resources"]["Table"]["Properties"]["TableName"], "prod_rows", "prefixed table")
            doc = role_policy(tpl)
            got = statements(doc, "TenantRows")[0]["Condition"]["ForAllValues:StringEquals"]
            S.eq(got["dynamodb:LeadingKeys"], ["TENANT#" + acme], "only acme's partition (%s)" % sel)
            S.eq([x["Fn::Sub"] for x in statements(doc, "TenantObjects")[0]["Resource"]],
                 ["arn:${AWS::Partition}:s3:::${Bucket}/%s/files/*" % acme], "only acme's prefix")
            S.check(st.ids["globex"] not in json.dumps(tpl), "globex nowhere (%s)" % sel)

        # Defaults from the environment sync uses.
        tpl = load_yaml(st.template(env={"TENANTRY_S3_BUCKET": "env-bucket",
                                         "TENANTRY_DYNAMODB_TABLE": "tbl",
                                         "TENANTRY_ENV_PREFIX": "dev_"}))
        S.eq(tpl["Resources"]["Table"]["Properties"]["TableName"], "dev_tbl", "table from env")
        S.eq(tpl["Resources"]["Bucket"]["Properties"]["BucketName"], "env-bucket", "bucket from env")

        # The configuration file, below the environment.
        with open(os.path.join(st.data, "tenantry.conf"), "w") as f:
            f.write("s3_bucket = conf-bucket\ndynamodb_table = conftbl\n")
        tpl = load_yaml(st.template())
        S.eq(tpl["Resources"]["Bucket"]["Properties"]["BucketName"], "conf-bucket", "bucket from file")
        S.eq(tpl["Resources"]["Table"]["Properties"]["TableName"], "conftbl", "table from file")
        tpl = load_yaml(st.template(env={"TENANTRY_S3_BUCKET": "env-bucket"}))
        S.eq(tpl["Resources"]["Bucket"]["Properties"]["BucketName"], "env-bucket", "env beats file")
        os.unlink(os.path.join(st.data, "tenantry.conf"))

        # KMS: aws:kms with the key, and the role may use exactly that key.
        key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        tpl = load_yaml(st.template("--bucket", "tn-appliance-1", "--kms-key", key))
        enc = tpl["Resources"]["Bucket"]["Properties"]["BucketEncryption"]
        d = enc["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        S.eq(d, {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}, "SSE-KMS")
        k = statements(role_policy(tpl), "BucketKey")
        S.check(len(k) == 1 and k[0]["Resource"] == key and
                set(k[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}, "KMS statement: %r" % k)
    finally:
        st.close()


# ---- quick-create link ------------------------------------------------------------

def botocore_signature(presigned, akid, secret, token):
    """Signs the same GET again with botocore's S3 query signer at the time the
    URL names, and returns botocore's X-Amz-Signature."""
    from unittest import mock
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    u = urllib.parse.urlsplit(presigned)
    q = dict(urllib.parse.parse_qsl(u.query, strict_parsing=True))
    when = datetime.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    region = q["X-Amz-Credential"].split("/")[2]
    req = AWSRequest(method="GET", url="%s://%s%s" % (u.scheme, u.netloc, u.path))
    signer = S3SigV4QueryAuth(Credentials(akid, secret, token), "s3", region,
                              expires=int(q["X-Amz-Expires"]))
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer.add_auth(req)
    mine = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req.url).query))
    return mine["X-Amz-Signature"], mine


def quick_link(url, env, *args):
    rc, out, err = tn(["remote", "template", "--quick-create-url", url] + list(args), env)
    S.eq(rc, 0, "quick-create %s: %s" % (url, err))
    S.eq(out.count("\n"), 1, "one line")
    return out.strip()


def test_quick_create_url():
    akid, secret = "AKIDEXAMPLE" + uuid.uuid4().hex[:8].upper(), uuid.uuid4().hex
    base = clean_env({"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret,
                      "AWS_REGION": "eu-west-1"})
    cases = [
        # (url, extra env, args, want host, want path, want region)
        ("s3://tpl-bucket/stacks/tenantry.yaml", {}, [], "tpl-bucket.s3.eu-west-1.amazonaws.com",
         "/stacks/tenantry.yaml", "eu-west-1"),
        ("https://tpl-bucket.s3.eu-central-1.amazonaws.com/a%20b/t+1.yaml", {}, ["--ttl", "60"],
         "tpl-bucket.s3.eu-central-1.amazonaws.com", "/a%20b/t%2B1.yaml", "eu-central-1"),
        ("https://s3.us-west-2.amazonaws.com/dotted.bucket/t.yaml", {"AWS_SESSION_TOKEN": "tok/en+="},
         ["--stack-name", "edge-7", "--ttl", "1800"], "s3.us-west-2.amazonaws.com",
         "/dotted.bucket/t.yaml", "us-west-2"),
        ("http://127.0.0.1:5999/local-bucket/t.yaml", {"AWS_ENDPOINT_URL": "http://127.0.0.1:5999"},
         [], "127.0.0.1:5999", "/local-bucket/t.yaml", "eu-west-1"),
    ]
    for url, extra, args, host, path, region in cases:
        env = dict(base, **extra)
        link = quick_link(url, env, *args)
        S.check(secret not in link, "the secret key is not in the link")
        m = re.fullmatch(r"https://console\.aws\.amazon\.com/cloudformation/home\?region=([a-z0-9-]+)"
                         r"#/stacks/quickcreate\?(.*)", link)
        if not S.check(m, "console quick-create link: %s" % link):
            continue
        S.eq(m.group(1), "eu-west-1", "console region is AWS_REGION")
        raw = m.group(2)
        S.eq([p.split("=", 1)[0] for p in raw.split("&")], ["templateURL", "stackName"], "parameters")
        enc = raw.split("&")[0].split("=", 1)[1]
        S.check(re.fullmatch(r"[A-Za-z0-9._~%-]+", enc), "templateURL fully percent-encoded: %s" % enc)
        params = dict(urllib.parse.parse_qsl(raw, strict_parsing=True))
        S.eq(params["stackName"], args[args.index("--stack-name") + 1]
             if "--stack-name" in args else "tenantry", "stack name")
        presigned = params["templateURL"]
        u = urllib.parse.urlsplit(presigned)
        S.eq(u.netloc, host, "host of the presigned URL (%s)" % url)
        S.eq(u.path, path, "path of the presigned URL (%s)" % url)
        S.eq(u.scheme, "http" if url.startswith("http:") else "https", "scheme")
        q = dict(urllib.parse.parse_qsl(u.query, strict_parsing=True))
        ttl = int(args[args.index("--ttl") + 1]) if "--ttl" in args else 900
        S.eq(int(q["X-Amz-Expires"]), ttl, "X-Amz-Expires")
        S.check(int(q["X-Amz-Expires"]) <= 1800, "at most 30 minutes")
        S.eq(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256", "algorithm")
        S.eq(q["X-Amz-SignedHeaders"], "host", "signed headers")
        cred = q["X-Amz-Credential"].split("/")
        S.eq((cred[0], cred[2], cred[3], cred[4]), (akid, region, "s3", "aws4_request"), "credential")
        signed_at = datetime.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        S.check(abs((now - signed_at).total_seconds()) < 120, "signed now")
        S.eq(q.get("X-Amz-Security-Token"), extra.get("AWS_SESSION_TOKEN"), "session token")
        theirs, bq = botocore_signature(presigned, akid, secret, extra.get("AWS_SESSION_TOKEN"))
        S.eq(q["X-Amz-Signature"], theirs, "signature equals botocore's (%s)" % url)
        S.eq({k: v for k, v in q.items() if k != "X-Amz-Signature"},
             {k: v for k, v in bq.items() if k != "X-Amz-Signature"}, "same query as botocore")
    # A signature that does not match botocore's is seen: a different secret.
    link = quick_link("s3://tpl-bucket/t.yaml", base)
    presigned = dict(urllib.parse.parse_qsl(link.split("#/stacks/quickcreate?", 1)[1]))["templateURL"]
    theirs, _ = botocore_signature(presigned, akid, secret + "x", None)
    S.check(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(presigned).query))["X-Amz-Signature"]
            != theirs, "a different secret gives a different signature")
    rc, out, err = tn(["remote", "template", "--quick-create-url", "s3://tpl-bucket/t.yaml"],
                      clean_env({"AWS_REGION": "eu-west-1"}))
    S.check(rc != 0 and out == "" and "credentials" in err, "no credentials: %d %r" % (rc, err))


# ---- IAM in moto ------------------------------------------------------------------

class AuthMoto(awslib.Moto):
    """moto_server with IAM auth on after the first `free` actions."""

    def __init__(self, free):
        super().__init__(env={"INITIAL_NO_AUTH_ACTION_COUNT": str(free)})


def resolve(node, names, account):
    """The template's intrinsic functions, as CloudFormation would resolve them."""
    if isinstance(node, list):
        return [resolve(x, names, account) for x in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return names[node["Ref"]]
    if set(node) == {"Fn::GetAtt"}:
        res, att = node["Fn::GetAtt"]
        assert (res, att) == ("Table", "Arn"), node
        return "arn:aws:dynamodb:%s:%s:table/%s" % (REGION, account, names["Table"])
    if set(node) == {"Fn::Sub"}:
        s = node["Fn::Sub"]
        table_arn = "arn:aws:dynamodb:%s:%s:table/%s" % (REGION, account, names.get("Table", ""))
        for k, v in {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": account,
                     "Table.Arn": table_arn, **names}.items():
            s = s.replace("${%s}" % k, v)
        assert "${" not in s, s
        return s
    return {k: resolve(v, names, account) for k, v in node.items()}


def client(svc, url, key):
    import boto3
    from botocore.config import Config
    return boto3.client(svc, endpoint_url=url, region_name=REGION,
                        aws_access_key_id=key["AccessKeyId"],
                        aws_secret_access_key=key["SecretAccessKey"],
                        config=Config(retries={"max_attempts": 1}))


def refused(fn):
    """True when the call was refused for authorization, False when it ran."""
    from botocore.exceptions import ClientError
    try:
        fn()
        return False
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("AccessDenied", "AccessDeniedException", "InvalidClientTokenId",
                    "UnrecognizedClientException", "InvalidAccessKeyId") or status == 403:
            return True
        raise


def test_policy_size_warning():
    """IAM caps a role's inline policies at 10,240 characters: past that the
    command still prints the template, and warns on stderr."""
    st = Store(tenants=["t%02d" % i for i in range(90)])
    try:
        for n, warn in ((60, False), (90, True)):
            sel = ",".join(sorted(st.ids.values())[:n])
            rc, out, err = tn(["remote", "template", "--bucket", "tenantry-prod-eu", "--tenants", sel],
                              st.env)
            S.eq(rc, 0, "%d tenants: %s" % (n, err))
            doc = resolve(role_policy(load_yaml(out)), {"Table": "tenantry",
                                                        "Bucket": "tenantry-prod-eu"}, "123456789012")
            size = len(json.dumps(doc, separators=(",", ":")))
            S.eq(size > 10240, warn, "%d tenants: %d characters" % (n, size))
            S.eq("warning" in err, warn, "%d tenants: warning %r" % (n, err))
    finally:
        st.close()


def test_iam_in_moto():
    table, bucket = "tenantry", "tn-iam-%d" % os.getpid()
    st = Store()
    moto = AuthMoto(free=5)
    stops = []
    try:
        import boto3
        kw = dict(endpoint_url=moto.url, region_name=REGION, aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        iam0 = boto3.client("iam", **kw)
        # The five unauthenticated set-up actions.
        boto3.client("dynamodb", **kw).create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"},
                                  {"AttributeName": "feed", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{"IndexName": "feed", "Projection": {"ProjectionType": "ALL"},
                                     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                   {"AttributeName": "feed", "KeyType": "RANGE"}]}])
        boto3.client("s3", **kw).create_bucket(Bucket=bucket)
        admin_arn = iam0.create_user(UserName="admin")["User"]["Arn"]
        account = admin_arn.split(":")[4]
        iam0.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        admin = iam0.create_access_key(UserName="admin")["AccessKey"]
        # From here on moto authenticates and authorizes every call.
        S.check(refused(lambda: boto3.client("dynamodb", **kw).list_tables()),
                "auth is on: the set-up credentials are refused now")
        iam = client("iam", moto.url, admin)
        ddb_admin, s3_admin = client("dynamodb", moto.url, admin), client("s3", moto.url, admin)
        S.check(not refused(lambda: ddb_admin.list_tables()), "the admin user may call DynamoDB")

        acme, globex = st.ids["acme"], st.ids["globex"]
        tpl = load_yaml(st.template("--bucket", bucket, "--table", table, "--tenants", "acme"))
        names = {"Table": table, "Bucket": bucket}
        policy = resolve(role_policy(tpl), names, account)
        S.check("globex" not in json.dumps(policy) and globex not in json.dumps(policy),
                "the policy names acme only")

        def user(name, doc):
            iam.create_user(UserName=name)
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(doc))
            return iam.create_access_key(UserName=name)["AccessKey"]

        # 1. The template's policy, exactly, for an IAM user.
        key = user("appliance", policy)
        s3u, ddbu = client("s3", moto.url, key), client("dynamodb", moto.url, key)
        own, other = "%s/files/report.pdf" % acme, "%s/files/report.pdf" % globex
        S.check(not refused(lambda: s3u.put_object(Bucket=bucket, Key=own, Body=b"mine")),
                "PutObject in the tenant's own prefix")
        S.check(refused(lambda: s3u.put_object(Bucket=bucket, Key=other, Body=b"x")),
                "PutObject in another tenant's prefix is refused")
        S.check(refused(lambda: s3u.put_object(Bucket=bucket, Key="%s/other/x" % acme, Body=b"x")),
                "PutObject outside the tenant's files/ prefix is refused")
        S.check(refused(lambda: s3u.put_object(Bucket=bucket, Key="x", Body=b"x")),
                "PutObject at the bucket root is refused")
        got = {}
        S.check(not refused(lambda: s3u.put_object(Bucket=bucket, Key=own, Body=b"mine")) and
                not refused(lambda: got.update(
                    body=s3u.get_object(Bucket=bucket, Key=own)["Body"].read())) and
                got.get("body") == b"mine",
                "GetObject in the tenant's own prefix (pulled and restored files)")
        s3_admin.put_object(Bucket=bucket, Key=other, Body=b"theirs")
        S.check(refused(lambda: s3u.get_object(Bucket=bucket, Key=other)),
                "GetObject in another tenant's prefix is refused")
        S.check(refused(lambda: s3u.get_object(Bucket=bucket, Key="%s/other/x" % acme)),
                "GetObject outside the tenant's files/ prefix is refused")
        S.check(refused(lambda: s3u.list_objects_v2(Bucket=bucket)), "ListBucket is not granted")
        S.check(refused(lambda: s3u.delete_bucket(Bucket=bucket)), "DeleteBucket is not granted")
        up = {}
        S.check(not refused(lambda: up.update(s3u.create_multipart_upload(Bucket=bucket, Key=own))),
                "CreateMultipartUpload (s3:PutObject) in the own prefix")
        if up:
            S.check(not refused(lambda: s3u.abort_multipart_upload(
                Bucket=bucket, Key=own, UploadId=up["UploadId"])), "AbortMultipartUpload, own prefix")
        S.check(refused(lambda: s3u.create_multipart_upload(Bucket=bucket, Key=other)),
                "CreateMultipartUpload in another tenant's prefix is refused")
        s3_admin.put_object(Bucket=bucket, Key=other, Body=b"theirs")
        S.check(refused(lambda: s3u.delete_object(Bucket=bucket, Key=other)),
                "DeleteObject in another tenant's prefix is refused")
        S.eq(s3_admin.get_object(Bucket=bucket, Key=other)["Body"].read(), b"theirs",
             "the other tenant's object is unchanged")
        S.check(not refused(lambda: s3u.delete_object(Bucket=bucket, Key=own)),
                "DeleteObject in the own prefix")

        item = lambda pk: {"pk": {"S": pk}, "sk": {"S": "ITEM#probe"}, "version": {"N": "1"}}  # noqa
        for name, call in (("Scan", lambda: ddbu.scan(TableName=table)),
                           ("DeleteTable", lambda: ddbu.delete_table(TableName=table)),
                           ("UpdateTable", lambda: ddbu.update_table(
                               TableName=table, BillingMode="PAY_PER_REQUEST"))):
            S.check(refused(call), "%s is not granted" % name)
        exact_ok = not refused(lambda: ddbu.put_item(TableName=table, Item=item("TENANT#" + acme)))
        if exact_ok:
            S.check(refused(lambda: ddbu.put_item(TableName=table, Item=item("TENANT#" + globex))),
                    "PutItem in another tenant's partition is refused")
        else:
            note("PutItem in the tenant's OWN partition was refused under the exact template "
                 "policy: moto authorizes DynamoDB calls against the resource '*', which the "
                 "policy's table ARN never matches.  Continuing with the same policy and "
                 "DynamoDB Resource '*' (action matching only).")
        ddb_policy = json.loads(json.dumps(policy))
        for s in ddb_policy["Statement"]:
            if s.get("Sid") == "TenantRows":
                s["Resource"] = "*"
        key2 = user("appliance-any-table", ddb_policy)
        ddb2 = client("dynamodb", moto.url, key2)
        S.check(not refused(lambda: ddb2.put_item(TableName=table, Item=item("TENANT#" + acme))),
                "PutItem in the own partition (DynamoDB Resource '*')")
        own_pk = {":p": {"S": "TENANT#" + acme}}
        S.check(not refused(lambda: ddb2.query(TableName=table, KeyConditionExpression="pk = :p",
                                               ExpressionAttributeValues=own_pk)),
                "Query of the own partition (a tenant's listing)")
        S.check(not refused(lambda: ddb2.query(TableName=table, IndexName="feed",
                                               KeyConditionExpression="pk = :p",
                                               ExpressionAttributeValues=own_pk)),
                "Query of the feed index (the change feed)")
        S.check(not refused(lambda: ddb2.delete_item(
            TableName=table, Key={"pk": {"S": "TENANT#" + acme}, "sk": {"S": "ITEM#gone"}})),
            "DeleteItem in the own partition")
        S.check(refused(lambda: ddb2.scan(TableName=table)), "Scan still refused")
        if refused(lambda: ddb2.put_item(TableName=table, Item=item("TENANT#" + globex))):
            note("PutItem in another tenant's partition was refused: this moto evaluates the "
                 "dynamodb:LeadingKeys condition (not asserted: moto 5 does not).")
        else:
            note("PutItem in ANOTHER tenant's partition was allowed: moto ignores the "
                 "ForAllValues:StringEquals dynamodb:LeadingKeys condition.  Partition isolation "
                 "of the policy is NOT shown by this test; on AWS it is enforced by IAM.")
            ddb_admin.delete_item(TableName=table, Key={"pk": {"S": "TENANT#" + globex},
                                                        "sk": {"S": "ITEM#probe"}})

        # 2. tenantry sync --once through AssumeRole with the template's trust policy.
        base_arn = iam.create_user(UserName="appliance-base")["User"]["Arn"]
        ext = "ext-" + uuid.uuid4().hex
        trust = resolve(tpl["Resources"]["ApplianceRole"]["Properties"]["AssumeRolePolicyDocument"],
                        {"TrustedPrincipalArn": base_arn, "ExternalId": ext}, account)
        role_arn = iam.create_role(RoleName="tenantry-appliance",
                                   AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        run_policy = json.loads(json.dumps(ddb_policy if not exact_ok else policy))
        # IAM authorizes each Put inside TransactWriteItems as dynamodb:PutItem
        # (there is no TransactWriteItems action, and cfn-lint refuses one);
        # moto names the action after the API operation instead.
        for s in run_policy["Statement"]:
            if s.get("Sid") == "TenantRows":
                s["Action"] = list(s["Action"]) + ["dynamodb:TransactWriteItems"]
        note("moto checks TransactWriteItems as the action dynamodb:TransactWriteItems, which "
             "AWS IAM does not have (it checks dynamodb:PutItem for each Put): added for moto "
             "only, for the engine's transactional mode (TENANTRY_SYNC_TRANSACT).")
        iam.put_role_policy(RoleName="tenantry-appliance", PolicyName="tenantry-appliance",
                            PolicyDocument=json.dumps(run_policy))
        iam.put_user_policy(UserName="appliance-base", PolicyName="assume", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]}))
        bkey = iam.create_access_key(UserName="appliance-base")["AccessKey"]
        # The engine reaches moto through a counting proxy: which call each
        # mode really made is read there, not from the engine's summary.
        proxy = faultproxy.FaultProxy(moto.port).start()
        stops.append(proxy.stop)
        env = dict(st.env, AWS_ENDPOINT_URL=proxy.url, AWS_REGION=REGION,
                   AWS_ACCESS_KEY_ID=bkey["AccessKeyId"], AWS_SECRET_ACCESS_KEY=bkey["SecretAccessKey"],
                   AWS_ROLE_ARN=role_arn, TENANTRY_AWS_EXTERNAL_ID=ext, TENANTRY_S3_BUCKET=bucket,
                   TENANTRY_DYNAMODB_TABLE=table, TENANTRY_SYNC_ATTEMPTS="2",
                   TENANTRY_SYNC_BACKOFF_MS="20")

        def put(tenant, n, tag):
            for i in range(n):
                rc, _, err = tn(["item", "put", "--tenant", tenant, "--id", "%s-%d" % (tag, i),
                                 json.dumps({"n": i})], env)
                S.eq(rc, 0, "item put: " + err)

        def remote_ids(tenant_id):
            got = ddb_admin.query(TableName=table, KeyConditionExpression="pk = :p",
                                  ExpressionAttributeValues={":p": {"S": "TENANT#" + tenant_id}})
            return sorted(x["sk"]["S"] for x in got["Items"]
                          if x["sk"]["S"] not in ("ITEM#probe", "TENANT"))

        def row_writes():
            """The row-writing calls moto received since the last call."""
            got = {k: v for k, v in proxy.counts("ddb:").items()
                   if k in ("ddb:TransactWriteItems", "ddb:PutItem", "ddb:BatchWriteItem")}
            proxy.clear()
            return got

        put("acme", 3, "a")
        proxy.clear()
        rc, out, err = tn(["sync", "--once"], dict(env, TENANTRY_SYNC_TRANSACT="1"))
        S.eq(rc, 0, "sync --once as the role, TENANTRY_SYNC_TRANSACT=1: %s %s" % (out, err))
        # Each tenant's own row (name, settings) goes up once, the first time,
        # alone: one PutItem per tenant.
        tenant_rows = sum(1 for x in ddb_admin.scan(TableName=table)["Items"]
                          if x["sk"]["S"] == "TENANT")
        S.check(tenant_rows >= 1, "the tenants' own rows went up: %d" % tenant_rows)
        S.eq(row_writes(), {"ddb:TransactWriteItems": 1, "ddb:PutItem": tenant_rows},
             "the transactional mode wrote the rows")
        S.eq(remote_ids(acme), ["ITEM#a-0", "ITEM#a-1", "ITEM#a-2"], "acme's rows landed")
        put("acme", 3, "p")
        rc, out, err = tn(["sync", "--once"], dict(env, TENANTRY_SYNC_TRANSACT="0"))
        S.eq(rc, 0, "sync --once with PutItem as the role: %s %s" % (out, err))
        S.eq(row_writes(), {"ddb:PutItem": 3}, "the default mode wrote the rows with PutItem")
        put("acme", 27, "b")
        rc, out, err = tn(["sync", "--once"], dict(env, TENANTRY_SYNC_SINGLE_WRITER="1"))
        S.eq(rc, 0, "sync --once with BatchWriteItem as the role: %s %s" % (out, err))
        S.eq(row_writes(), {"ddb:BatchWriteItem": 2}, "single-writer mode used BatchWriteItem")
        S.eq(len(remote_ids(acme)), 33, "acme's rows landed in all three modes")
        rc, _, err = tn(["item", "delete", "--tenant", "acme", "a-0"], env)
        S.eq(rc, 0, "item delete: " + err)
        rc, out, err = tn(["sync", "--once"], env)
        S.eq(rc, 0, "sync --once of a tombstone as the role: %s %s" % (out, err))

        put("acme", 1, "c")
        rc, out, err = tn(["sync", "--once"], dict(env, TENANTRY_AWS_EXTERNAL_ID="wrong-" + ext))
        S.check(rc != 0, "a wrong external id is refused by the trust policy: %s" % err)
        S.check(ext not in err and bkey["SecretAccessKey"] not in err, "no secret in the error")
        S.eq(len(remote_ids(acme)), 33, "nothing landed with the wrong external id")
        no_ext = {k: v for k, v in env.items() if k != "TENANTRY_AWS_EXTERNAL_ID"}
        rc, _, _ = tn(["sync", "--once"], dict(no_ext, TENANTRY_SYNC_ATTEMPTS="1"))
        if rc == 0:
            note("AssumeRole WITHOUT an external id was accepted: moto checks a StringEquals "
                 "condition only when the request carries the key.  AWS refuses it.")
        else:
            note("AssumeRole without an external id was refused, as AWS does (not asserted: "
                 "moto 5 accepts it).")

        # The action list is needed: without PutItem the engine cannot write.
        less = json.loads(json.dumps(run_policy))
        for s in less["Statement"]:
            if s.get("Sid") == "TenantRows":
                s["Action"] = [a for a in s["Action"] if a != "dynamodb:PutItem"]
        iam.put_role_policy(RoleName="tenantry-appliance", PolicyName="tenantry-appliance",
                            PolicyDocument=json.dumps(less))
        put("acme", 1, "d")
        rc, out, err = tn(["sync", "--once"], dict(env, TENANTRY_SYNC_TRANSACT="0"))
        S.check(rc != 0, "sync fails when the role lacks dynamodb:PutItem: %s" % out)
        S.check("ITEM#d-0" not in remote_ids(acme), "nothing written without PutItem")
        iam.put_role_policy(RoleName="tenantry-appliance", PolicyName="tenantry-appliance",
                            PolicyDocument=json.dumps(run_policy))
        rc, out, err = tn(["sync", "--once"], dict(env, TENANTRY_SYNC_TRANSACT="0"))
        S.eq(rc, 0, "sync again with the template's actions: %s %s" % (out, err))
        S.check("ITEM#d-0" in remote_ids(acme), "the held row landed")

        put("globex", 2, "g")
        rc, out, err = tn(["sync", "--once"], env)
        if rc == 0 and remote_ids(globex):
            note("tenantry sync wrote globex's rows although the role's LeadingKeys name only "
                 "acme: moto ignores dynamodb:LeadingKeys (not asserted).")
        else:
            S.check(remote_ids(globex) == [], "globex's rows were refused")
        # Presigned requests (the engine's file uploads) under moto's auth.
        import urllib.request
        signed = s3u.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": own},
                                            ExpiresIn=60)
        try:
            status = urllib.request.urlopen(urllib.request.Request(
                signed, data=b"x", method="PUT"), timeout=30).status
        except urllib.error.HTTPError as e:
            status = e.code
        if status >= 500:
            note("a presigned PUT fails with HTTP %d in moto while auth is on, so the file "
                 "uploads of `tenantry sync` are not run here; the prefix rules above use "
                 "header-signed calls (the same action and resource evaluation)." % status)
        else:
            note("a presigned PUT gave HTTP %d in moto with auth on; file uploads of `tenantry "
                 "sync` are still not exercised by this suite." % status)
    finally:
        for stop in stops:
            stop()
        moto.stop()
        st.close()


def main():
    awslib.asan_reexec()
    if not os.path.exists(TENANTRY):
        print("no %s: build first" % TENANTRY)
        print("0 passed, 1 failed")
        sys.exit(1)
    try:
        lint_ok = subprocess.run(cfn_lint_cmd() + ["--version"], capture_output=True,
                                 timeout=120).returncode == 0
    except OSError:
        lint_ok = False
    S.check(lint_ok, "cfn-lint is installed (tools/deps.sh --test installs it)")
    for fn in (test_help_and_usage, test_cfn_lint, test_template_properties,
               test_quick_create_url, test_policy_size_warning, test_iam_in_moto):
        S.run(fn)
    S.finish()


if __name__ == "__main__":
    main()
