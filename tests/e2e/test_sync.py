"""test_sync - the sync engine against moto_server, read back with boto3.

Each test gets its own store, DynamoDB table and S3 bucket, so "exactly these
rows and objects, nothing else" is checkable.  moto runs once for the suite on
a free loopback port and is stopped by PID in `finally`.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(__file__))
import awslib  # noqa: E402
import faultproxy  # noqa: E402
import tnlib  # noqa: E402

tn = tnlib.tn

BUILD = os.environ.get("TN_BUILD", "build")
TENANTRY = os.path.join(BUILD, "tenantry")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

TESTS = []
passed = failed = 0
MOTO = None


def test(fn):
    TESTS.append(fn)
    return fn


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class Setup:
    """A store with tenants, a table and a bucket of their own."""
    n = 0

    def __init__(self, tenants=("acme", "globex"), endpoint=None):
        Setup.n += 1
        self.dir = tempfile.mkdtemp(prefix="tn-sync-")
        self.data = os.path.join(self.dir, "data")
        self.table = "t%d" % Setup.n
        self.bucket = "b%d-%d" % (Setup.n, os.getpid())
        self.endpoint = endpoint or MOTO.url
        self.env = awslib.sync_env(self.endpoint, self.bucket, self.table)
        self.env["TENANTRY_DATA"] = self.data
        self.ddb, self.s3 = awslib.clients(MOTO.url)
        rc, _, err = tn(["init"], self.env)
        check(rc == 0, "init: " + err)
        for t in tenants:
            rc, _, err = tn(["tenant", "create", t], self.env)
            check(rc == 0, "tenant create: " + err)
        self.s3.create_bucket(Bucket=self.bucket)
        rc, out, err = tn(["remote", "init"], self.env)
        check(rc == 0, "remote init: %s %s" % (out, err))
        self._store = None

    def store(self):
        if self._store is None:
            self._store = awslib.Store(self.data)
        return self._store

    def tenant_id(self, name):
        rc, out, err = tn(["tenant", "list", "--json"], self.env)
        check(rc == 0, err)
        for line in out.splitlines():
            for t in (json.loads(line) if line.startswith("[") else [json.loads(line)]):
                if t["name"] == name:
                    return t["id"]
        raise AssertionError("no tenant " + name)

    def put(self, tenant, id_, doc):
        rc, out, err = tn(["item", "put", "--tenant", tenant, "--id", id_], self.env,
                          stdin=json.dumps(doc))
        check(rc == 0, "item put: " + err)
        return int(json.loads(out)["version"])

    def delete(self, tenant, id_):
        rc, _, err = tn(["item", "delete", "--tenant", tenant, id_], self.env)
        check(rc == 0, "item delete: " + err)

    def sync(self, expect_ok=True, env=None):
        rc, out, err = tn(["sync", "--once"], env or self.env)
        lines = out.strip().splitlines()
        check(lines, "sync printed nothing: " + err)
        summary = json.loads(lines[-1])
        if expect_ok:
            check(rc == 0 and summary["ok"], "sync failed: rc=%d %s %s" % (rc, out, err))
        return rc, summary, err

    def rows(self):
        return {(i["pk"]["S"], i["sk"]["S"]): i for i in awslib.scan_all(self.ddb, self.table)}

    def close(self):
        if self._store:
            self._store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@test
def items_of_two_tenants_land_under_their_keys():
    # The engine reaches moto through a proxy that counts what it forwards.
    proxy = faultproxy.FaultProxy(MOTO.port).start()
    s = None
    try:
        s = Setup(endpoint=proxy.url)
        va = s.put("acme", "a1", {"n": 12345678901234567890, "s": "x\"y", "l": [1, True, None],
                                   "m": {"deep": {"x": 1.5}}})
        vb = s.put("acme", "a2", {"gone": 1})
        vg = s.put("globex", "g1", {"k": "v"})
        s.delete("acme", "a2")
        _, summary, _ = s.sync()
        check(summary["items"] == 3 and summary["pending"] == 0, "summary %r" % summary)
        acme, globex = s.tenant_id("acme"), s.tenant_id("globex")
        rows = s.rows()
        check(set(rows) == {("TENANT#" + acme, "ITEM#a1"), ("TENANT#" + acme, "ITEM#a2"),
                            ("TENANT#" + globex, "ITEM#g1")}, "keys %r" % sorted(rows))
        a1 = rows[("TENANT#" + acme, "ITEM#a1")]
        check(a1["data"] == {"M": {"n": {"N": "12345678901234567890"}, "s": {"S": "x\"y"},
                                   "l": {"L": [{"N": "1"}, {"BOOL": True}, {"NULL": True}]},
                                   "m": {"M": {"deep": {"M": {"x": {"N": "1.5"}}}}}}},
              "a1 data %r" % a1["data"])
        check(a1["version"] == {"N": str(va)}, "a1 version")
        check(a1["deleted"] == {"BOOL": False}, "a1 deleted")
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", a1["updated_at"]["S"]),
              "updated_at")
        a2 = rows[("TENANT#" + acme, "ITEM#a2")]
        check(a2["deleted"] == {"BOOL": True} and "data" not in a2, "tombstone %r" % a2)
        check(int(a2["version"]["N"]) > vb, "tombstone version above the put")
        check(abs(int(a2["expires_at"]["N"]) - (time.time() + 30 * 86400)) < 600, "expires_at")
        g1 = rows[("TENANT#" + globex, "ITEM#g1")]
        check(g1["data"] == {"M": {"k": {"S": "v"}}} and g1["version"] == {"N": str(vg)}, "g1")
        # A second pass has nothing to send: no write reaches moto, only the
        # pull's one Query of the change feed per tenant.
        check(sum(proxy.counts().values()) > 0, "the first pass went through the proxy")
        proxy.clear()
        _, summary, _ = s.sync()
        check(proxy.counts() == {"ddb:Query": 2}, "requests of the second sync: %r" % proxy.counts())
        check(summary["items"] == 0 and summary["files"] == 0, "second sync %r" % summary)
        check(len(s.rows()) == 3, "no new rows")
    finally:
        proxy.stop()
        if s:
            s.close()


@test
def a_newer_remote_version_is_never_overwritten():
    s = Setup(tenants=("acme",))
    try:
        acme = s.tenant_id("acme")
        v = s.put("acme", "x", {"local": 1})
        s.put("acme", "y", {"local": 2})
        newer = v + 1000000
        s.ddb.put_item(TableName=s.table, Item={
            "pk": {"S": "TENANT#" + acme}, "sk": {"S": "ITEM#x"}, "version": {"N": str(newer)},
            "data": {"M": {"remote": {"BOOL": True}}}, "deleted": {"BOOL": False}})
        rc, summary, err = s.sync()
        check(summary["conflicts"] == 1 and summary["items"] == 1, "summary %r" % summary)
        check("newer remote" in err, "conflict reported: " + err)
        x = s.rows()[("TENANT#" + acme, "ITEM#x")]
        check(x["version"] == {"N": str(newer)} and x["data"] == {"M": {"remote": {"BOOL": True}}},
              "remote kept %r" % x)
        check(s.rows()[("TENANT#" + acme, "ITEM#y")]["data"] == {"M": {"local": {"N": "2"}}},
              "the other row still written")
        rc, out, err = tn(["sync-status", "--tenant", "acme"], s.env)
        st = json.loads(out)
        check(rc == 0 and st["conflicts"] == 1 and st["pending"] == 0, "status %r" % st)
        check(not UUID_RE.search(out), "tenant status shows no tenant id")
        # Not retried forever.
        _, summary, _ = s.sync()
        check(summary["conflicts"] == 0 and summary["items"] == 0, "settled %r" % summary)
        # A later local write with a higher version does win (versions are
        # hybrid-clock readings: wait until the clock has passed the remote one).
        time.sleep(0.1)
        v2 = s.put("acme", "x", {"local": 3})
        check(v2 > newer, "the local clock moved past the remote version")
        _, summary, _ = s.sync()
        x = s.rows()[("TENANT#" + acme, "ITEM#x")]
        check(summary["conflicts"] == 0 and x["data"] == {"M": {"local": {"N": "3"}}},
              "higher local version wins")
    finally:
        s.close()


@test
def replaying_an_acknowledged_write_is_idempotent():
    # The same version already remote (a crash after the write, before the
    # acknowledgement) is not a conflict.
    s = Setup(tenants=("acme",))
    try:
        acme = s.tenant_id("acme")
        v = s.put("acme", "x", {"a": 1})
        s.ddb.put_item(TableName=s.table, Item={
            "pk": {"S": "TENANT#" + acme}, "sk": {"S": "ITEM#x"}, "version": {"N": str(v)},
            "data": {"M": {"a": {"N": "1"}}}, "deleted": {"BOOL": False}})
        _, summary, _ = s.sync()
        check(summary["conflicts"] == 0 and summary["items"] == 1, "summary %r" % summary)
    finally:
        s.close()


@test
def files_go_to_s3_before_their_rows_and_deletes_remove_them():
    s = Setup()
    try:
        st = s.store()
        blobs = {("acme", "docs/report.pdf"): os.urandom(70000),
                 ("acme", "a b/c+d?.txt"): b"hello world\n",
                 ("globex", "empty.bin"): b"",
                 ("globex", "img/\u00e9t\u00e9.png"): os.urandom(1234)}
        for (t, name), data in blobs.items():
            st.put_file(t, name, data, "image/png" if name.endswith(".png") else
                        "application/octet-stream")
        s.put("acme", "i1", {"x": 1})
        _, summary, _ = s.sync()
        check(summary["files"] == 4 and summary["items"] == 1, "summary %r" % summary)
        check(summary["bytes"] == sum(len(d) for d in blobs.values()), "bytes")
        ids = {t: s.tenant_id(t) for t in ("acme", "globex")}
        keys = sorted(awslib.list_keys(s.s3, s.bucket))
        want = sorted("%s/files/%s" % (ids[t], n) for (t, n) in blobs)
        check(keys == want, "objects %r != %r" % (keys, want))
        rows = s.rows()
        for (t, name), data in blobs.items():
            obj = s.s3.get_object(Bucket=s.bucket, Key="%s/files/%s" % (ids[t], name))
            body = obj["Body"].read()
            check(body == data, "bytes of " + name)
            row = rows[("TENANT#" + ids[t], "FILE#" + name)]
            check(row["s3_key"]["S"] == "%s/files/%s" % (ids[t], name), "s3_key")
            check(row["size"]["N"] == str(len(data)), "size")
            check(row["sha256"]["S"] == hashlib.sha256(data).hexdigest(), "sha256")
            check(row["deleted"] == {"BOOL": False}, "live")
        check(rows[("TENANT#" + ids["globex"], "FILE#img/\u00e9t\u00e9.png")]["content_type"]["S"]
              == "image/png", "content type")
        check(len(rows) == 5, "nothing else in the table")
        st.delete_file("acme", "docs/report.pdf")
        _, summary, _ = s.sync()
        check(summary["files"] == 1, "delete synced %r" % summary)
        keys = awslib.list_keys(s.s3, s.bucket)
        check("%s/files/docs/report.pdf" % ids["acme"] not in keys and len(keys) == 3,
              "object deleted %r" % keys)
        row = s.rows()[("TENANT#" + ids["acme"], "FILE#docs/report.pdf")]
        check(row["deleted"] == {"BOOL": True} and "expires_at" in row, "file tombstone %r" % row)
    finally:
        s.close()


@test
def offline_then_online_converges_without_loss_or_duplicates():
    proxy = awslib.Proxy(MOTO.port)
    proxy.start()
    s = None
    try:
        s = Setup(endpoint=proxy.url)
        expected = {}
        for i in range(300):
            t = "acme" if i % 2 else "globex"
            expected[(t, "k%d" % i)] = s.put(t, "k%d" % i, {"i": i})
        # Offline: the network goes away before the sync.
        proxy.stop()
        t0 = time.time()
        rc, summary, err = s.sync(expect_ok=False)
        check(rc != 0 and not summary["ok"] and summary["error"], "offline sync fails: %r" % summary)
        check(summary["pending"] >= 300, "nothing acknowledged offline %r" % summary)
        check(time.time() - t0 < 30, "gives up in bounded time")
        rc, out, _ = tn(["sync-status", "--json"], s.env)
        st = json.loads(out)
        check(st["pending"] >= 300 and any(t["last_error"] for t in st["tenants"]), "status")
        check("testing" not in out, "no credentials in the status")
        # Keep writing while offline.
        for i in range(300, 400):
            expected[("acme", "k%d" % i)] = s.put("acme", "k%d" % i, {"i": i})
        expected[("acme", "k1")] = s.put("acme", "k1", {"i": "rewritten"})
        proxy.start()
        # Now cut the network in the middle of a sync.
        p = subprocess.Popen([TENANTRY, "sync", "--once"], env=s.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        proxy.stop()
        p.communicate(timeout=120)
        proxy.start()
        s.sync()
        ids = {t: s.tenant_id(t) for t in ("acme", "globex")}
        rows = s.rows()
        want = {("TENANT#" + ids[t], "ITEM#" + k): v for (t, k), v in expected.items()}
        check(set(rows) == set(want), "exactly the expected rows (%d vs %d)" % (len(rows), len(want)))
        for key, v in want.items():
            check(rows[key]["version"]["N"] == str(v), "latest version of %r" % (key,))
        check(rows[("TENANT#" + ids["acme"], "ITEM#k1")]["data"]["M"]["i"] == {"S": "rewritten"},
              "the rewrite won")
        _, summary, _ = s.sync()
        check(summary["items"] == 0, "nothing left")
    finally:
        proxy.stop()
        if s:
            s.close()


@test
def a_permanent_error_goes_to_dead_letters_without_blocking():
    s = Setup(tenants=("acme",))
    try:
        s.put("acme", "big", {"blob": "x" * (420 * 1024)})
        s.put("acme", "small", {"ok": True})
        rc, summary, err = s.sync(expect_ok=False)
        check(rc != 0 and summary["dead_letters"] == 1 and summary["items"] == 1,
              "summary %r" % summary)
        check("dead-letter" in err, "says what failed: " + err)
        acme = s.tenant_id("acme")
        rows = s.rows()
        check(set(rows) == {("TENANT#" + acme, "ITEM#small")}, "only the small row %r" % rows.keys())
        rc, out, _ = tn(["sync-status", "--tenant", "acme"], s.env)
        st = json.loads(out)
        check(st["failed"] == 1 and st["pending"] == 0, "status %r" % st)
        # Not retried: the next pass is clean.
        _, summary, _ = s.sync()
        check(summary["dead_letters"] == 0, "second pass clean")
    finally:
        s.close()


@test
def two_appliances_sharing_a_tenant_keep_the_highest_version():
    """Two data directories hold the same tenant (the second provisioned with
    the first one's id) and write the same item ids.  Whatever order they
    sync in, DynamoDB ends with the higher version of every id, and each
    appliance counts the writes it lost."""
    a = Setup(tenants=("acme",))
    bdir = tempfile.mkdtemp(prefix="tn-sync-b-")
    try:
        acme = a.tenant_id("acme")
        benv = dict(a.env, TENANTRY_DATA=os.path.join(bdir, "data"))
        rc, _, err = tn(["init"], benv)
        check(rc == 0, "init b: " + err)
        rc, _, err = tn(["tenant", "create", "acme", "--id", acme], benv)
        check(rc == 0, "provision acme on b: " + err)

        def put(env, id_, who):
            time.sleep(0.005)  # one writer after the other, on the wall clock
            rc, out, err = tn(["item", "put", "--tenant", "acme", "--id", id_], env,
                              stdin=json.dumps({"from": who}))
            check(rc == 0, "put: " + err)
            return int(json.loads(out)["version"])

        def sync(env):
            rc, out, err = tn(["sync", "--once"], env)
            check(rc == 0, "sync: %s %s" % (out, err))
            return json.loads(out.strip().splitlines()[-1])

        versions = {}
        versions["k1"] = (put(a.env, "k1", "a"), put(benv, "k1", "b"))  # b newer
        versions["k2"] = (put(benv, "k2", "b"), put(a.env, "k2", "a"))  # a newer
        sa, sb = sync(a.env), sync(benv)  # a first: b overwrites k1, loses k2
        check(sa["conflicts"] == 0 and sb["conflicts"] == 1, "losses %r %r" % (sa, sb))
        versions["k3"] = (put(a.env, "k3", "a"), put(benv, "k3", "b"))  # b newer
        sb, sa = sync(benv), sync(a.env)  # b first: a loses k3
        check(sa["conflicts"] == 1 and sb["conflicts"] == 0, "losses %r %r" % (sa, sb))
        rows = a.rows()
        want = {"k1": "b", "k2": "a", "k3": "b"}
        for k, who in want.items():
            row = rows[("TENANT#" + acme, "ITEM#" + k)]
            check(row["data"] == {"M": {"from": {"S": who}}}, "%s holds %r" % (k, row["data"]))
            check(int(row["version"]["N"]) == max(versions[k]), "%s has the highest version" % k)
        check(len(rows) == 3, "nothing else in the table: %r" % sorted(rows))
        for env, lost in ((a.env, 1), (benv, 1)):
            rc, out, err = tn(["sync-status", "--tenant", "acme", "--json"], env)
            st = json.loads(out)
            check(rc == 0 and st["conflicts"] == lost and st["pending"] == 0,
                  "each appliance reports its losses: %r" % st)
    finally:
        a.close()
        shutil.rmtree(bdir, ignore_errors=True)


@test
def a_file_with_a_newer_remote_version_is_not_uploaded():
    """Another appliance already wrote a newer version of the file: its bytes
    and its row stay; ours is a counted conflict loss, not an overwrite."""
    s = Setup(tenants=("acme",))
    try:
        st = s.store()
        st.put_file("acme", "shared.txt", b"local, older")
        st.put_file("acme", "mine.txt", b"only here")
        acme = s.tenant_id("acme")
        rc, out, err = tn(["sql", "--tenant", "acme", "--json", "-c",
                           "SELECT version FROM files WHERE name = 'shared.txt'"], s.env)
        check(rc == 0, err)
        local_v = int(json.loads(out)[0][0]["version"])
        key = "%s/files/shared.txt" % acme
        s.s3.put_object(Bucket=s.bucket, Key=key, Body=b"remote, newer")
        s.ddb.put_item(TableName=s.table, Item={
            "pk": {"S": "TENANT#" + acme}, "sk": {"S": "FILE#shared.txt"},
            "version": {"N": str(local_v + 1000000)}, "s3_key": {"S": key},
            "deleted": {"BOOL": False}})
        rc, summary, err = s.sync()
        check(summary["conflicts"] == 1, "summary %r" % summary)
        body = s.s3.get_object(Bucket=s.bucket, Key=key)["Body"].read()
        check(body == b"remote, newer", "the newer object was overwritten: %r" % body)
        row = s.rows()[("TENANT#" + acme, "FILE#shared.txt")]
        check(row["version"] == {"N": str(local_v + 1000000)}, "the newer row kept %r" % row)
        mine = s.s3.get_object(Bucket=s.bucket, Key="%s/files/mine.txt" % acme)["Body"].read()
        check(mine == b"only here", "the other file still uploaded")
    finally:
        s.close()


@test
def a_file_damaged_on_disk_is_not_mirrored():
    s = Setup(tenants=("acme",))
    try:
        st = s.store()
        st.put_file("acme", "ok.txt", b"fine")
        st.put_file("acme", "bad.txt", b"abc")
        acme = s.tenant_id("acme")
        with open(os.path.join(s.data, "files", acme, "bad.txt"), "wb") as f:
            f.write(b"abd")  # same size, other bytes than recorded
        rc, summary, _ = s.sync(expect_ok=False)
        check(rc != 0 and summary["dead_letters"] == 1 and summary["files"] == 1,
              "summary %r" % summary)
        check(awslib.list_keys(s.s3, s.bucket) == ["%s/files/ok.txt" % acme], "only ok.txt uploaded")
        check(set(s.rows()) == {("TENANT#" + acme, "FILE#ok.txt")}, "only ok.txt's row")
    finally:
        s.close()


@test
def missing_table_fails_clearly_and_keeps_everything():
    s = Setup(tenants=("acme",))
    try:
        s.put("acme", "a", {"x": 1})
        env = dict(s.env, TENANTRY_DYNAMODB_TABLE="no-such-table")
        rc, summary, err = s.sync(expect_ok=False, env=env)
        check(rc != 0 and "table" in summary["error"], "error %r" % summary)
        check(summary["pending"] == 1 and summary["dead_letters"] == 0, "kept %r" % summary)
        s.sync()
    finally:
        s.close()


@test
def assume_role_is_called_once_for_many_requests():
    sts = awslib.CountingProxy(MOTO.port)
    s = None
    try:
        s = Setup(tenants=("acme", "globex"))
        for i in range(250):
            s.put("acme" if i % 2 else "globex", "r%d" % i, {"i": i})
        env = dict(s.env, AWS_ROLE_ARN="arn:aws:iam::123456789012:role/tenantry-sync",
                   TENANTRY_AWS_EXTERNAL_ID="ext-42", AWS_ENDPOINT_URL_STS=sts.url)
        _, summary, _ = s.sync(env=env)
        check(summary["items"] == 250, "summary %r" % summary)
        check(sts.count == 1, "AssumeRole calls: %d" % sts.count)
        check(len(s.rows()) == 250, "rows")
        # Without STS there are no credentials to sign with: nothing is sent.
        s.put("acme", "late", {"x": 1})
        env["AWS_ENDPOINT_URL_STS"] = "http://127.0.0.1:%d" % awslib.free_port()
        rc, summary, _ = s.sync(expect_ok=False, env=env)
        check(rc != 0 and summary["items"] == 0 and summary["pending"] == 1, "no STS %r" % summary)
    finally:
        sts.stop()
        if s:
            s.close()


@test
def a_stopping_engine_does_not_wait_for_a_remote_that_never_answers():
    """SIGTERM while a request is in flight to a remote that read it and never
    answers: the engine ends the request (its rows stay pending) and the
    process exits 0 within a few seconds, not after the 30 s stall limit."""
    proxy = faultproxy.FaultProxy(MOTO.port).start()
    s = p = None
    try:
        s = Setup(tenants=("acme",), endpoint=proxy.url)
        for i in range(3):
            s.put("acme", "h%d" % i, {"i": i})
        s.store().put_file("acme", "h.bin", os.urandom(64 * 1024))
        for kind in ("ddb:", "s3:put"):
            proxy.clear()
            proxy.plan(faultproxy.Rule(kind, "hang"))
            env = dict(s.env, TENANTRY_SYNC_INTERVAL="1")
            p = subprocess.Popen([TENANTRY, "sync"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
            end = time.time() + 20
            while time.time() < end and not proxy.faults(kind):
                time.sleep(0.05)
            if not proxy.faults(kind):
                os.kill(p.pid, 9)
                p.wait(5)
                check(False, "a %s request reached the proxy and hangs: %r %s"
                      % (kind, proxy.counts(), p.stderr.read()[-2000:]))
            time.sleep(0.5)
            t0 = time.time()
            os.kill(p.pid, 15)
            try:
                rc = p.wait(8)
            except subprocess.TimeoutExpired:
                rc = None
            check(rc == 0, "%s hangs: exit status %r %.1f s after SIGTERM" % (kind, rc, time.time() - t0))
            if p.poll() is None:
                os.kill(p.pid, 9)
                p.wait(5)
            p = None
        proxy.plan()
        _, summary, _ = s.sync()
        check(summary["items"] == 3 and summary["files"] == 1 and summary["pending"] == 0,
              "what the stopped passes left is sent by the next: %r" % summary)
    finally:
        if p and p.poll() is None:
            os.kill(p.pid, 9)
            p.wait(5)
        proxy.stop()
        if s:
            s.close()


@test
def the_background_engine_syncs_and_stops_on_signal():
    s = Setup(tenants=("acme",))
    p = None
    try:
        env = dict(s.env, TENANTRY_SYNC_INTERVAL="1")
        p = subprocess.Popen([TENANTRY, "sync"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        acme = s.tenant_id("acme")
        s.put("acme", "bg1", {"x": 1})
        end = time.time() + 20
        while time.time() < end and ("TENANT#" + acme, "ITEM#bg1") not in s.rows():
            time.sleep(0.2)
        check(("TENANT#" + acme, "ITEM#bg1") in s.rows(), "first write synced in the background")
        s.put("acme", "bg2", {"x": 2})
        end = time.time() + 20
        while time.time() < end and ("TENANT#" + acme, "ITEM#bg2") not in s.rows():
            time.sleep(0.2)
        check(("TENANT#" + acme, "ITEM#bg2") in s.rows(), "a later write synced on the interval")
        os.kill(p.pid, 15)
        check(p.wait(15) == 0, "stops cleanly on SIGTERM")
    finally:
        if p and p.poll() is None:
            os.kill(p.pid, 9)
            p.wait(5)
        s.close()


@test
def transaction_mode_keeps_the_same_guarantees():
    # TENANTRY_SYNC_TRANSACT=1 writes rows with TransactWriteItems (<= 100);
    # a cancelled transaction settles each row by its reason (a newer remote
    # version: a conflict loss; the same version: written; too large: alone,
    # then a dead letter) and sends the others again.
    s = Setup(tenants=("acme",))
    try:
        acme = s.tenant_id("acme")
        st = s.store()
        st.put_items("acme", (("t%03d" % i, '{"i": %d}' % i) for i in range(150)))
        s.put("acme", "huge", {"blob": "y" * (420 * 1024)})
        rows = {}
        _, out, _ = tn(["item", "get", "--tenant", "acme", "t007"], s.env)
        v7 = int(json.loads(out)["version"])
        s.ddb.put_item(TableName=s.table, Item={
            "pk": {"S": "TENANT#" + acme}, "sk": {"S": "ITEM#t007"},
            "version": {"N": str(v7 + 10**9)}, "deleted": {"BOOL": False}})
        # t011 is already remote at its own version (a replay after a crash):
        # its refused condition settles it as written, not as a conflict.
        _, out, _ = tn(["item", "get", "--tenant", "acme", "t011"], s.env)
        s.ddb.put_item(TableName=s.table, Item={
            "pk": {"S": "TENANT#" + acme}, "sk": {"S": "ITEM#t011"},
            "version": {"N": str(json.loads(out)["version"])}, "deleted": {"BOOL": False}})
        env = dict(s.env, TENANTRY_SYNC_TRANSACT="1")
        rc, summary, err = s.sync(expect_ok=False, env=env)
        check(rc != 0 and summary["items"] == 149 and summary["conflicts"] == 1 and
              summary["dead_letters"] == 1 and summary["pending"] == 0, "summary %r" % summary)
        rows = s.rows()
        check(len(rows) == 150 and ("TENANT#" + acme, "ITEM#huge") not in rows,
              "rows: %d %r %r" % (len(rows), sorted(k[1] for k in rows)[:3], summary))
        check(rows[("TENANT#" + acme, "ITEM#t007")]["version"]["N"] == str(v7 + 10**9),
              "the newer remote row kept")
        check(rows[("TENANT#" + acme, "ITEM#t149")]["data"] == {"M": {"i": {"N": "149"}}}, "t149")
    finally:
        s.close()


@test
def a_killed_multipart_upload_resumes_with_fewer_parts():
    import sqlite3
    s = Setup(tenants=("acme",))
    p = None
    try:
        data = os.urandom(40 * 1024 * 1024 + 12345)  # 6 parts of 8 MiB (the last short)
        s.store().put_file("acme", "big/video.bin", data)
        # A bandwidth cap (one stream for the parts) makes each part take ~0.5 s.
        env = dict(s.env, TENANTRY_SYNC_BANDWIDTH=str(16 * 1024 * 1024))
        p = subprocess.Popen([TENANTRY, "sync", "--once"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        db = os.path.join(s.data, "tenantry.db")
        done = 0
        end = time.time() + 60
        while time.time() < end and p.poll() is None:
            try:
                c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=1)
                done = c.execute("SELECT count(*) FROM _sync_upload_parts").fetchone()[0]
                c.close()
            except sqlite3.Error:
                done = 0
            if done >= 2:
                os.kill(p.pid, 9)  # power loss between parts
                break
            time.sleep(0.05)
        p.wait(10)
        check(2 <= done < 6, "killed between parts (%d done)" % done)
        acme = s.tenant_id("acme")
        check(("TENANT#" + acme, "FILE#big/video.bin") not in s.rows(), "no row before the object")
        _, summary, _ = s.sync()
        check(summary["files"] == 1 and summary["parts"] <= 6 - done and summary["parts"] >= 1,
              "resumed with fewer parts: %r (done before: %d)" % (summary, done))
        obj = s.s3.get_object(Bucket=s.bucket, Key="%s/files/big/video.bin" % acme)["Body"].read()
        check(len(obj) == len(data) and hashlib.sha256(obj).digest() == hashlib.sha256(data).digest(),
              "object bytes and SHA-256")
        row = s.rows()[("TENANT#" + acme, "FILE#big/video.bin")]
        check(row["sha256"]["S"] == hashlib.sha256(data).hexdigest(), "row sha256")
        ups = s.s3.list_multipart_uploads(Bucket=s.bucket).get("Uploads", [])
        check(ups == [], "no upload left open: %r" % ups)
    finally:
        if p and p.poll() is None:
            os.kill(p.pid, 9)
            p.wait(5)
        s.close()


@test
def single_writer_mode_batches_rows():
    # TENANTRY_SYNC_SINGLE_WRITER=1: BatchWriteItem (25 rows) without the
    # version condition, for an appliance that is its tenants' only writer.
    s = Setup(tenants=("acme", "globex"))
    try:
        st = s.store()
        st.put_items("acme", (("s%03d" % i, '{"i": %d}' % i) for i in range(260)))
        st.put_items("globex", (("g%03d" % i, '{"g": %d}' % i) for i in range(40)))
        s.put("acme", "huge", {"blob": "z" * (420 * 1024)})
        s.delete("globex", "g000")
        env = dict(s.env, TENANTRY_SYNC_SINGLE_WRITER="1")
        rc, summary, _ = s.sync(expect_ok=False, env=env)
        check(rc != 0 and summary["items"] == 300 and summary["dead_letters"] == 1 and
              summary["pending"] == 0, "summary %r" % summary)
        ids = {t: s.tenant_id(t) for t in ("acme", "globex")}
        rows = s.rows()
        want = {("TENANT#" + ids["acme"], "ITEM#s%03d" % i) for i in range(260)} | \
               {("TENANT#" + ids["globex"], "ITEM#g%03d" % i) for i in range(40)}
        check(set(rows) == want, "exactly the rows (%d)" % len(rows))
        check(rows[("TENANT#" + ids["globex"], "ITEM#g000")]["deleted"] == {"BOOL": True},
              "tombstone")
        check(rows[("TENANT#" + ids["acme"], "ITEM#s259")]["data"] == {"M": {"i": {"N": "259"}}},
              "data")
    finally:
        s.close()


@test
def serve_runs_the_engine_in_the_background():
    """`tenantry serve` with a bucket configured mirrors what the HTTP API
    writes, without any `sync --once`, and reports it in the status views."""
    import tnlib
    s = Setup()
    d = None
    try:
        env = dict(s.env, TENANTRY_SYNC_INTERVAL="1")
        rc, key, err = tn(["key", "create", "--tenant", "acme", "--scopes",
                           "items:read,items:write"], env)
        check(rc == 0, "key create: " + err)
        d = tnlib.start_daemon(s.data, ["--quiet"], env=env)
        c = tnlib.Client(d.port)
        r = c.request("POST", "/v1/auth", json_body={"api_key": key.strip()})
        check(r.status == 200, "auth %d" % r.status)
        c = tnlib.Client(d.port, {"Authorization": "Bearer " + r.json()["token"]})
        for i in range(5):
            r = c.request("PUT", "/v1/items/bg%d" % i, json_body={"data": {"i": i}})
            check(r.status in (200, 201), "put %d" % r.status)
        acme = s.tenant_id("acme")
        want = {("TENANT#" + acme, "ITEM#bg%d" % i) for i in range(5)}
        deadline = time.time() + 30
        while time.time() < deadline and not want <= set(s.rows()):
            time.sleep(0.3)
        check(want <= set(s.rows()), "rows mirrored by the daemon: %r" % sorted(s.rows()))
        deadline = time.time() + 10
        while time.time() < deadline and c.request("GET", "/v1/sync/status").json()["pending"]:
            time.sleep(0.3)
        st = c.request("GET", "/v1/sync/status").json()
        check(st["pending"] == 0 and st["failed"] == 0 and st["last_success"], "status %r" % st)
        check(d.stop() == 0, "daemon exits 0 with the engine running")
        d = None
    finally:
        if d:
            d.stop()
        s.close()


@test
def the_bandwidth_cap_limits_the_upload_rate():
    """TENANTRY_SYNC_BANDWIDTH (bytes/s) bounds the whole engine, every
    connection together: with fewer files than the engine's 8 connections (3),
    with more (20), and with a file going up in parts on connections of its
    own beside small files (an 11 MiB file in 5 MiB parts and 12 of 512 KiB).
    The upload phase is timed at a proxy in front of moto, from the read of
    the files' remote versions to the first row write after the uploads; its
    rate (bytes / time) must stay under the cap (with 10% for timing) and
    reach half of it.  The same files without a cap go up far faster."""
    cap = 2 * 1024 * 1024
    big = 11 * 1024 * 1024
    uploads = ("s3:put", "s3:create", "s3:part", "s3:complete")
    proxy = faultproxy.FaultProxy(MOTO.port).start()
    try:
        for what, sizes, extra in (
                ("3 files of 1024 KiB (fewer than 8 connections)", [1024 * 1024] * 3, {}),
                ("20 files of 256 KiB (more than 8 connections)", [256 * 1024] * 20, {}),
                ("11 MiB in parts beside 12 files of 512 KiB", [big] + [512 * 1024] * 12,
                 {"TENANTRY_SYNC_MULTIPART_MB": "5", "TENANTRY_SYNC_PART_MB": "5"})):
            n, total = len(sizes), sum(sizes)
            blobs = [os.urandom(size) for size in sizes]
            requests = sum(3 + (size - 1) // (5 << 20) if size >= (5 << 20) else 1 for size in sizes)
            took = {}
            for capped in (True, False):
                s = Setup(tenants=("acme",), endpoint=proxy.url)
                try:
                    for i, b in enumerate(blobs):
                        s.store().put_file("acme", "cap/f%d.bin" % i, b)
                    env = dict(s.env, **extra)
                    if capped:
                        env["TENANTRY_SYNC_BANDWIDTH"] = str(cap)
                    proxy.clear()
                    _, summary, _ = s.sync(env=env)
                    check(summary["files"] == n and summary["bytes"] == total,
                          "summary %r" % summary)
                    puts = proxy.times(uploads)
                    check(len(puts) == requests, "%d upload requests reached moto: %d"
                          % (requests, len(puts)))
                    began = max(proxy.times(("ddb:BatchGetItem", "ddb:GetItem")))
                    ended = min(proxy.times(("ddb:PutItem",)))
                    check(began < min(puts) and max(puts) <= ended,
                          "reads, uploads, rows in that order")
                    took[capped] = ended - began
                    acme = s.tenant_id("acme")
                    for i, b in enumerate(blobs):
                        obj = s.s3.get_object(Bucket=s.bucket, Key="%s/files/cap/f%d.bin" % (acme, i))
                        check(obj["Body"].read() == b, "object %d bytes" % i)
                finally:
                    s.close()
            rate = total / took[True]
            print("  %s: %.2f s capped = %.2f MiB/s (%.2f of the cap), %.2f s uncapped" % (
                what, took[True], rate / 2 ** 20, rate / cap, took[False]), flush=True)
            check(rate <= 1.1 * cap, "%s: %.2f MiB/s over a %.2f MiB/s cap" % (
                what, rate / 2 ** 20, cap / 2 ** 20))
            check(rate >= 0.5 * cap, "%s: %.2f MiB/s, under half the %.2f MiB/s cap" % (
                what, rate / 2 ** 20, cap / 2 ** 20))
            check(took[False] < took[True] * 0.8, "%s: uncapped %.2fs vs capped %.2fs" % (
                what, took[False], took[True]))
    finally:
        proxy.stop()


@test
def a_full_outbox_starts_a_run_before_the_interval():
    # A background engine with an hour's interval: a few writes wait for it,
    # but an outbox over TENANTRY_SYNC_EARLY_ROWS starts a run within seconds.
    s = Setup(tenants=("acme",))
    p = None
    try:
        acme = s.tenant_id("acme")
        s.put("acme", "first", {"x": 0})
        env = dict(s.env, TENANTRY_SYNC_INTERVAL="3600", TENANTRY_SYNC_EARLY_ROWS="20")
        p = subprocess.Popen([TENANTRY, "sync"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        end = time.time() + 20
        while time.time() < end and ("TENANT#" + acme, "ITEM#first") not in s.rows():
            time.sleep(0.2)
        check(("TENANT#" + acme, "ITEM#first") in s.rows(), "the first run at start")
        s.store().put_items("acme", (("few%d" % i, '{"i": %d}' % i) for i in range(5)))
        time.sleep(4.5)  # two of the engine's 2 s checks
        check(len(s.rows()) == 1, "5 rows (under 20) wait for the interval: %d rows" % len(s.rows()))
        s.store().put_items("acme", (("many%d" % i, '{"i": %d}' % i) for i in range(20)))
        end = time.time() + 15
        while time.time() < end and len(s.rows()) < 26:
            time.sleep(0.2)
        check(len(s.rows()) == 26, "25 pending rows (over 20) ran early: %d rows" % len(s.rows()))
        # One engine per store: a second one is refused while this one runs.
        s.put("acme", "after", {"x": 1})
        rc, out, err = tn(["sync", "--once"], s.env)
        check(rc != 0 and "another sync engine" in err, "a second engine is refused: %d %r"
              % (rc, err))
        os.kill(p.pid, 15)
        check(p.wait(15) == 0, "stops cleanly on SIGTERM")
        _, summary, _ = s.sync()
        check(summary["items"] == 1 and len(s.rows()) == 27, "then it runs: %r" % summary)
    finally:
        if p and p.poll() is None:
            os.kill(p.pid, 9)
            p.wait(5)
        s.close()


@test
def sync_once_next_to_serve_hands_the_run_to_the_daemon():
    """`sync --once` while `serve` runs with sync on: the daemon's engine holds
    the lock, so the command asks the daemon for a pass (POST
    /v1/admin/sync/run), shows its result as its own and exits with it: over
    TCP with the admin key, on a unix socket without one."""
    import tnlib
    s = Setup(tenants=("acme",))
    d = None
    try:
        acme = s.tenant_id("acme")
        env = dict(s.env, TENANTRY_SYNC_INTERVAL="3600", TENANTRY_SYNC_EARLY_ROWS="100000")
        p = tnlib.run(["admin-key", "rotate", "--data", s.data])
        check(p.returncode == 0, "admin key: " + p.stderr)
        ak = p.stdout.strip()
        for listen in (None, "unix:" + os.path.join(s.dir, "api.sock")):
            d = tnlib.start_daemon(s.data, ["--quiet"], env=env, listen=listen)
            time.sleep(1.5)  # the engine's first pass, at start, finds nothing
            before = len(s.rows())
            tag = "u" if listen else "t"
            s.store().put_items("acme", (("%s%d" % (tag, i), '{"i": %d}' % i) for i in range(30)))
            s.store().put_file("acme", "%s/f.bin" % tag, b"daemon-run")
            time.sleep(1)
            check(len(s.rows()) == before, "nothing synced before asking (interval 3600 s)")
            if not listen:
                rc, out, err = tn(["sync", "--once"], s.env)
                check(rc != 0 and "admin key" in err, "over TCP without the admin key: %d %r"
                      % (rc, err))
                rc, out, err = tn(["sync", "--once", "--admin-key", "tna_" + "A" * 43], s.env)
                check(rc != 0 and "refused" in err, "a wrong admin key: %d %r" % (rc, err))
                run_env = dict(s.env, TENANTRY_ADMIN_KEY=ak)
            else:
                run_env = s.env  # the unix socket is the credential
            t0 = time.time()
            rc, out, err = tn(["sync", "--once"], run_env)
            summary = json.loads(out.strip().splitlines()[-1])
            check(rc == 0 and summary["ok"] and summary["items"] == 30 and summary["files"] == 1
                  and summary["error"] is None,
                  "the daemon's pass, reported: rc=%d %r %r" % (rc, summary, err))
            check(set(summary) == {"ok", "items", "files", "bytes", "parts", "conflicts",
                                   "dead_letters", "pending", "pulled", "pull_read", "throttled",
                                   "tombstones_purged", "seconds", "error"},
                  "the summary has sync --once's keys: %r" % summary)
            check("asking it for a pass" in err, "says it asked the daemon: %r" % err)
            rows = s.rows()
            check(all(("TENANT#" + acme, "ITEM#%s%d" % (tag, i)) in rows for i in range(30)) and
                  ("TENANT#" + acme, "FILE#%s/f.bin" % tag) in rows,
                  "the rows landed in %.1f s" % (time.time() - t0))
            obj = s.s3.get_object(Bucket=s.bucket, Key="%s/files/%s/f.bin" % (acme, tag))
            check(obj["Body"].read() == b"daemon-run", "the file landed")
            if not listen:
                # The endpoint itself: JSON lines, the last one the result.
                c = tnlib.Client(d.port, {"X-Admin-Key": ak})
                r = c.request("POST", "/v1/admin/sync/run")
                lines = [json.loads(l) for l in r.body.decode().splitlines() if l.strip()]
                check(r.status == 200 and r.header("Content-Type") == "application/x-ndjson"
                      and lines and lines[-1]["ok"] is True and lines[-1]["items"] == 0,
                      "POST /v1/admin/sync/run: %d %r" % (r.status, r.body[:300]))
                check(all(set(l) == {"progress"} for l in lines[:-1]), "progress lines first")
                r = tnlib.Client(d.port).request("POST", "/v1/admin/sync/run")
                check(r.status == 401, "the endpoint takes the admin key: %d" % r.status)
            check(d.stop() == 0, "daemon exits 0")
            d = None
            check(not os.path.exists(os.path.join(s.data, "serve.addr")),
                  "serve.addr removed at stop")
    finally:
        if d:
            d.stop()
        s.close()


@test
def synced_tombstones_past_retention_are_purged_locally():
    # TENANTRY_TOMBSTONE_TTL is the remote expires_at and the local retention:
    # once a tombstone is synced and older than that, `sync --once` removes it
    # from the store (tests/test_store.c shows one not yet synced stays).
    import sqlite3
    s = Setup()
    try:
        env = dict(s.env, TENANTRY_TOMBSTONE_TTL="1")
        s.put("acme", "keep", {"n": 1})
        s.put("acme", "old", {"n": 2})
        s.delete("acme", "old")
        _, summary, _ = s.sync(env=env)
        check(summary["items"] == 2, "first sync %r" % summary)
        acme = s.tenant_id("acme")
        row = s.rows()[("TENANT#" + acme, "ITEM#old")]
        check(row["deleted"] == {"BOOL": True} and
              abs(int(row["expires_at"]["N"]) - time.time()) < 30, "remote tombstone %r" % row)
        time.sleep(1.2)
        s.put("acme", "later", {"n": 3})
        _, summary, _ = s.sync(env=dict(env, TENANTRY_TOMBSTONE_TTL="3600"))
        check(summary["tombstones_purged"] == 0, "an hour's retention keeps it: %r" % summary)
        _, summary, _ = s.sync(env=env)
        check(summary["tombstones_purged"] == 1, "purged %r" % summary)
        db = sqlite3.connect(os.path.join(s.data, "tenantry.db"))
        ids = sorted(r[0] for r in db.execute("SELECT id FROM _items"))
        db.close()
        check(ids == ["keep", "later"], "local rows after the purge: %r" % ids)
        rc, _, err = tn(["check"], s.env)
        check(rc == 0, "check after the purge: " + err)
        # The id can be written again, and it syncs over the remote tombstone.
        v = s.put("acme", "old", {"n": 4})
        _, summary, _ = s.sync(env=env)
        row = s.rows()[("TENANT#" + acme, "ITEM#old")]
        check(int(row["version"]["N"]) == v and row.get("deleted") != {"BOOL": True},
              "rewritten after the purge %r" % row)
    finally:
        s.close()


def main():
    global MOTO, passed, failed
    awslib.asan_reexec()
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        MOTO = awslib.Moto()
    except Exception as e:  # noqa: BLE001
        print("moto_server unavailable: %s" % e)
        print("0 passed, 1 failed")
        return 1
    try:
        for fn in TESTS:
            if only not in fn.__name__:
                continue
            t0 = time.time()
            try:
                fn()
                passed += 1
                print("ok   %s (%.1fs)" % (fn.__name__, time.time() - t0))
            except Exception:  # noqa: BLE001
                failed += 1
                print("FAIL %s" % fn.__name__)
                traceback.print_exc()
    finally:
        MOTO.stop()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
