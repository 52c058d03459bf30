"""test_remote_aws - the AWS backend's way back (sync/aws, remote interface
version 2) against moto_server, read and written independently with boto3.

- `tenantry remote init` creates the table with the change feed's index
  (feed: hash pk, range feed N, all attributes), adds it to a table made
  before it existed (on-demand or provisioned, rows already there indexed),
  and refuses a table whose index named feed is something else.
- The CLI does not call changes/list/get_object/delete_row/tenants yet, so
  the C unit tests named sync_aws_moto_* exercise them: this suite starts
  moto, prepares what they read (rows pushed by `tenantry sync --once` from a
  real store, and hostile items put directly with boto3), runs
  `unit sync_aws_moto` with TN_MOTO_URL set, and requires every one of those
  tests to have run and passed.  The expectations handed to them are written
  here by hand (the hostile set) or read back with boto3 (what sync pushed).

moto runs once for the suite on a free loopback port and is stopped by PID.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import awslib  # noqa: E402
import tnlib  # noqa: E402

tn = tnlib.tn

BUILD = os.environ.get("TN_BUILD", "build")
UNIT = os.path.join(BUILD, "unit")
S = tnlib.Suite("remote_aws")
MOTO = None
BUCKET = "tn-remote-aws-%d" % os.getpid()
# The C tests the unit binary runs against moto (tests/test_sync_unit.c).
MOTO_TESTS = 8


def env_for(table, data=None):
    env = awslib.sync_env(MOTO.url, BUCKET, table)
    if data:
        env["TENANTRY_DATA"] = data
    return env


def describe(ddb, table):
    return ddb.describe_table(TableName=table)["Table"]


def feed_index(t):
    ix = [g for g in t.get("GlobalSecondaryIndexes", []) if g["IndexName"] == "feed"]
    return ix[0] if ix else None


def make_store():
    d = tempfile.mkdtemp(prefix="tn-remote-aws-")
    data = os.path.join(d, "data")
    rc, _, err = tn(["init", "--data", data])
    assert rc == 0, err
    return d, data


def test_init_creates_the_feed_index():
    ddb, _ = awslib.clients(MOTO.url)
    d, data = make_store()
    try:
        env = env_for("fresh", data)
        rc, out, err = tn(["remote", "init"], env)
        S.eq(rc, 0, "remote init on a fresh table: %s %s" % (out, err))
        t = describe(ddb, "fresh")
        S.eq(sorted((a["AttributeName"], a["AttributeType"]) for a in t["AttributeDefinitions"]),
             [("feed", "N"), ("pk", "S"), ("sk", "S")], "attributes")
        ix = feed_index(t)
        if S.check(ix, "the table has an index named feed: %r" % t.get("GlobalSecondaryIndexes")):
            S.eq([(k["AttributeName"], k["KeyType"]) for k in ix["KeySchema"]],
                 [("pk", "HASH"), ("feed", "RANGE")], "feed index keys")
            S.eq(ix["Projection"], {"ProjectionType": "ALL"}, "feed index projection")
            S.eq(ix["IndexStatus"], "ACTIVE", "feed index status")
        S.eq(len(t.get("GlobalSecondaryIndexes", [])), 1, "one index")
        ttl = ddb.describe_time_to_live(TableName="fresh")["TimeToLiveDescription"]
        S.eq((ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")), ("ENABLED", "expires_at"), "TTL")
        rc, out, err = tn(["remote", "init"], env)
        S.eq(rc, 0, "remote init again: %s %s" % (out, err))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def old_table(ddb, name, provisioned=False, index=None):
    kw = dict(TableName=name,
              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                    {"AttributeName": "sk", "AttributeType": "S"}],
              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                         {"AttributeName": "sk", "KeyType": "RANGE"}])
    if provisioned:
        kw["ProvisionedThroughput"] = {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4}
    else:
        kw["BillingMode"] = "PAY_PER_REQUEST"
    if index:
        kw["GlobalSecondaryIndexes"] = [index]
    ddb.create_table(**kw)


def test_init_adds_the_index_to_an_older_table():
    ddb, _ = awslib.clients(MOTO.url)
    d, data = make_store()
    try:
        tenant = "TENANT#" + str(uuid.uuid4())
        old_table(ddb, "older")
        ddb.put_item(TableName="older", Item={"pk": {"S": tenant}, "sk": {"S": "ITEM#before"},
                                              "version": {"N": "7"}, "feed": {"N": "1795525970000"}})
        old_table(ddb, "older_prov", provisioned=True)
        for table, cap in (("older", None), ("older_prov", (3, 4))):
            S.check(feed_index(describe(ddb, table)) is None, "%s starts without the index" % table)
            rc, out, err = tn(["remote", "init"], env_for(table, data))
            S.eq(rc, 0, "remote init on %s: %s %s" % (table, out, err))
            ix = feed_index(describe(ddb, table))
            if not S.check(ix, "%s has the feed index now" % table):
                continue
            S.eq([(k["AttributeName"], k["KeyType"]) for k in ix["KeySchema"]],
                 [("pk", "HASH"), ("feed", "RANGE")], "%s: index keys" % table)
            S.eq(ix["IndexStatus"], "ACTIVE", "%s: init waited for the index" % table)
            if cap:
                pt = ix.get("ProvisionedThroughput", {})
                S.eq((pt.get("ReadCapacityUnits"), pt.get("WriteCapacityUnits")), cap,
                     "a provisioned table's index gets the table's capacity")
        got = ddb.query(TableName="older", IndexName="feed", KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": {"S": tenant}})["Items"]
        S.eq([x["sk"]["S"] for x in got], ["ITEM#before"], "a row written before the index is in it")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_init_refuses_an_index_of_another_shape():
    ddb, _ = awslib.clients(MOTO.url)
    d, data = make_store()
    try:
        old_table(ddb, "other_ix", index={
            "IndexName": "feed", "KeySchema": [{"AttributeName": "sk", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}})
        rc, out, err = tn(["remote", "init"], env_for("other_ix", data))
        S.check(rc != 0, "remote init refuses a foreign index named feed: rc %d" % rc)
        S.check("index" in err and err.count("\n") == 1, "one line says why: %r" % err)
        ix = feed_index(describe(ddb, "other_ix"))
        S.eq([(k["AttributeName"], k["KeyType"]) for k in ix["KeySchema"]], [("sk", "HASH")],
             "the foreign index is left as it was")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- data for the C tests ---------------------------------------------------------

def synced_rows():
    """A store pushes items, a tombstone and a file with `tenantry sync --once`;
    returns TN_MOTO_SYNCED for the C test, from what boto3 reads back."""
    ddb, _ = awslib.clients(MOTO.url)
    d, data = make_store()
    table = "synced"
    env = env_for(table, data)
    try:
        rc, _, err = tn(["tenant", "create", "acme"], env)
        assert rc == 0, err
        rc, out, err = tn(["remote", "init"], env)
        assert rc == 0, out + err
        tid = json.loads(tn(["tenant", "list", "--json"], env)[1])[0]["id"]
        for id_, doc in (("a1", '{"n": 12345678901234567890}'), ("a2", '{"k": "v", "l": [1, true, null]}'),
                         ("a3", '{"gone": 1}')):
            rc, _, err = tn(["item", "put", "--tenant", "acme", "--id", id_], env, stdin=doc)
            assert rc == 0, err
        rc, _, err = tn(["item", "delete", "--tenant", "acme", "a3"], env)
        assert rc == 0, err
        blob = bytes(range(256)) * 3 + b"\x00end"
        fname = "docs/r\u00e9sum\u00e9 1.bin"
        st = awslib.Store(data)
        try:
            st.put_file("acme", fname, blob)
        finally:
            st.close()
        rc, out, err = tn(["sync", "--once"], env)
        assert rc == 0, out + err
        items = ddb.query(TableName=table, KeyConditionExpression="pk = :p", ConsistentRead=True,
                          ExpressionAttributeValues={":p": {"S": "TENANT#" + tid}})["Items"]
        entries = ["%s=%s%s" % (x["sk"]["S"], x["version"]["N"], "~" if x["deleted"]["BOOL"] else "")
                   for x in items]
        S.check(any(e.startswith("ITEM#a3=") and e.endswith("~") for e in entries),
                "the tombstone reached DynamoDB: %r" % entries)
        S.check(any(e.startswith("FILE#" + fname + "=") for e in entries), "the file row reached DynamoDB")
        for e in entries:
            assert not re.search(r"[,;]", e), e
        return ";".join([table, tid, ",".join(entries), fname, blob.hex(),
                         'a1={"n":12345678901234567890}'])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def hostile_rows():
    """Items put straight into DynamoDB with boto3, most of them hostile;
    returns TN_MOTO_HOSTILE for the C test (the expectations are these lists)."""
    ddb, _ = awslib.clients(MOTO.url)
    d, data = make_store()
    table = "hostile"
    try:
        rc, out, err = tn(["remote", "init"], env_for(table, data))
        assert rc == 0, out + err
    finally:
        shutil.rmtree(d, ignore_errors=True)
    t, other = str(uuid.uuid4()), str(uuid.uuid4())
    pk = {"S": "TENANT#" + t}
    sha = hashlib.sha256(b"x").hexdigest()
    common = {"version": {"N": "117671589917294592"}, "updated_at": {"S": "2026-11-24T13:12:49.197Z"},
              "deleted": {"BOOL": False}}
    feed = [1795525970000]

    def put(item, with_feed=True):
        if with_feed:
            feed[0] += 1
            item = dict(item, feed={"N": str(feed[0])})
        ddb.put_item(TableName=table, Item=item)

    def item(sk, **kw):
        return dict(common, pk=pk, sk={"S": sk}, **kw)

    def file(name, **kw):
        base = dict(common, pk=pk, sk={"S": "FILE#" + name}, size={"N": "1"}, sha256={"S": sha},
                    content_type={"S": "text/plain"}, s3_key={"S": "%s/files/%s" % (t, name)})
        base.update(kw)
        return base

    # Good rows of tenant t: an item, a tombstone, a file.
    put(item("ITEM#good1", data={"M": {"n": {"N": "1"}}}))
    put(dict(item("ITEM#good2"), deleted={"BOOL": True}, expires_at={"N": "1798117969"}))
    put(file("good3.txt"))
    # Hostile rows in t's partition, each with a feed (so in the index too).
    hostile = [
        item("ITEM#a/b", data={"M": {}}),                                    # a name the store refuses
        item("BOGUS#x", data={"M": {}}),                                     # an unknown kind
        item("ITEM#../../etc", data={"M": {}}),                              # an escape
        dict(item("ITEM#huge", data={"M": {}}), version={"N": "99999999999999999999999999"}),
        dict(item("ITEM#neg", data={"M": {}}), version={"N": "-5"}),
        item("ITEM#bin", data={"M": {"b": {"B": b"\x00\x01"}}}),            # a type JSON cannot hold
        item("ITEM#set", data={"SS": ["a", "b"]}),
        file("badsha.txt", sha256={"S": "Z" * 64}),                          # non-hex digest
        file("short.txt", sha256={"S": sha[:63]}),
        file("elsewhere.txt", s3_key={"S": "%s/files/elsewhere.txt" % other}),  # another tenant's object
        file("ctype.txt", content_type={"S": "text/plain\r\nX-Evil: 1"}),
        {k: v for k, v in item("ITEM#nodel", data={"M": {}}).items() if k != "deleted"},
        dict(item("ITEM#baddate", data={"M": {}}), updated_at={"S": "yesterday"}),
        item("TENANT", data={"S": "not an object"}),
    ]
    for h in hostile:
        put(h)
    # One more without a feed: in the partition, not in the index.
    put(dict(item("ITEM#nofeed", data={"M": {}}), version={"N": "1.5"}), with_feed=False)
    # Tenant rows: one good (another tenant), and partitions that name no tenant.
    tenant_row = dict(common, sk={"S": "TENANT"},
                      data={"M": {"name": {"S": "globex"}, "settings": {"M": {}}}})
    put(dict(tenant_row, pk={"S": "TENANT#" + other}))
    put(dict(tenant_row, pk={"S": "TENANT#" + other.upper()}))
    put(dict(tenant_row, pk={"S": "TENANT#../../x"}))
    put(dict(tenant_row, pk={"S": "tenant#" + other}))
    # Expected: list sees the 14 hostile + nofeed; changes the 14; tenants
    # refuses t's bad tenant row and the 3 bad partitions.
    return ";".join([table, t, "good1,good2,good3.txt", str(len(hostile) + 1), str(len(hostile)),
                     other, "4"])


def test_backend_methods_in_c():
    """The C tests of changes, list, get_object, delete_row and tenants."""
    env = dict(os.environ, TN_MOTO_URL=MOTO.url, TN_MOTO_BUCKET=BUCKET,
               TN_MOTO_SYNCED=synced_rows(), TN_MOTO_HOSTILE=hostile_rows())
    for k in list(env):
        if k.startswith(("AWS_", "TENANTRY_")):
            del env[k]
    env["HOME"] = "/nonexistent"
    p = subprocess.run([UNIT, "sync_aws_moto"], capture_output=True, text=True, env=env, timeout=900)
    # Indented: the unit's own "N passed" line is not this suite's.
    print("".join("  " + line for line in (p.stdout + p.stderr).splitlines(True)), end="", flush=True)
    ran = re.findall(r"^ok   (sync_aws_moto_\w+)$", p.stdout, re.M)
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    S.eq(p.returncode, 0, "unit sync_aws_moto exit status")
    S.eq(last, "%d passed, 0 failed" % MOTO_TESTS, "every moto test ran and passed")
    S.eq(len(set(ran)), MOTO_TESTS, "distinct moto tests passed: %r" % ran)
    S.check("not run" not in p.stdout, "none left out")


def main():
    global MOTO
    awslib.asan_reexec()
    for path in (os.path.join(BUILD, "tenantry"), UNIT):
        if not os.path.exists(path):
            print("no %s: build first" % path)
            print("0 passed, 1 failed")
            sys.exit(1)
    MOTO = awslib.Moto()
    try:
        awslib.clients(MOTO.url)[1].create_bucket(Bucket=BUCKET)
        for fn in (test_init_creates_the_feed_index, test_init_adds_the_index_to_an_older_table,
                   test_init_refuses_an_index_of_another_shape, test_backend_methods_in_c):
            S.run(fn)
    finally:
        MOTO.stop()
    S.finish()


if __name__ == "__main__":
    main()
