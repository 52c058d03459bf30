"""test_pull - the way back: pull, restore, join, verify, tenant purge, against
every remote backend (the directory in every run; AWS through moto).

Appliances are data directories driven through the CLI (and libtenantry for
files, as the HTTP layer records them).  What the remote holds is read back
by each backend's own independent reader (boto3 for AWS, the files for the
directory), and every store is read with sqlite3.

- Two appliances share a tenant (one creates it, the other joins it) and both
  write items and files (updates, deletes) while both sync repeatedly, one of
  them killed with SIGKILL during a pull now and then; at the end both stores
  and the remote hold the same rows and bytes, each at its highest version.
- A third appliance restores every tenant: rows, files, settings and
  tombstones equal the others'; killed half way and run again it completes;
  `check` is clean; its first sync writes nothing to the remote.
- An appliance offline past the tombstone retention (the remote's tombstones
  expired) converges without resurrecting deleted rows or deleting a newer
  local change.
- `verify --remote` finds a row changed in the remote and an object deleted
  there; `--repair` fixes both.
- Hostile remote rows (another tenant's partition, malformed, bytes that do
  not match) are refused, counted in the status, and never block the rest.
- A deleted tenant is purged from the remote and no restore or join brings it
  back.
"""
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import awslib  # noqa: E402
import tnlib  # noqa: E402

BUILD = os.environ.get("TN_BUILD", "build")
TENANTRY = os.path.join(BUILD, "tenantry")
T = tnlib.Suite("pull")
ONLY = sys.argv[1] if len(sys.argv) > 1 else ""


# ---- remotes -------------------------------------------------------------------

class AwsRemote:
    """DynamoDB + S3 on moto; read back with boto3."""
    name = "aws"
    n = 0

    def __init__(self, moto):
        AwsRemote.n += 1
        self.moto = moto
        self.table = "pull%d" % AwsRemote.n
        self.bucket = "pull%d-%d" % (AwsRemote.n, os.getpid())
        self.ddb, self.s3 = awslib.clients(moto.url)
        self.s3.create_bucket(Bucket=self.bucket)

    def env(self, data):
        env = awslib.sync_env(self.moto.url, self.bucket, self.table,
                              {"TENANTRY_DATA": data, "TENANTRY_REMOTE": "aws"})
        return env

    def rows(self):
        """{(tenant, kind, key): (version, deleted, content)} of items and files."""
        out = {}
        for i in awslib.scan_all(self.ddb, self.table):
            tenant = i["pk"]["S"][len("TENANT#"):]
            kind, _, key = i["sk"]["S"].partition("#")
            deleted = i.get("deleted", {}).get("BOOL", False)
            if kind == "ITEM":
                content = None if deleted else json.loads(_av_json(i["data"]))
            else:
                content = None if deleted else i["sha256"]["S"]
            out[(tenant, kind.lower(), key)] = (int(i["version"]["N"]), deleted, content)
        return out

    def tenant_rows(self):
        return {i["pk"]["S"][len("TENANT#"):]: i for i in
                awslib.scan_all(self.ddb, self.table, tenant_rows=True) if i["sk"]["S"] == "TENANT"}

    def objects(self):
        return {k: hashlib.sha256(self.s3.get_object(Bucket=self.bucket, Key=k)["Body"].read())
                .hexdigest() for k in awslib.list_keys(self.s3, self.bucket)}

    def delete_row(self, tenant, kind, key):
        self.ddb.delete_item(TableName=self.table, Key={
            "pk": {"S": "TENANT#" + tenant}, "sk": {"S": "%s#%s" % (kind.upper(), key)}})

    def cloud_write(self, tenant, key, doc, version):
        """A cloud-side writer, following the contract: a higher version, the
        feed attribute, the condition."""
        now = int(time.time() * 1000)
        self.ddb.put_item(TableName=self.table, Item={
            "pk": {"S": "TENANT#" + tenant}, "sk": {"S": "ITEM#" + key},
            "version": {"N": str(version)}, "deleted": {"BOOL": False},
            "updated_at": {"S": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now / 1000)) +
                           ".%03dZ" % (now % 1000)},
            "feed": {"N": str(now)}, "data": _json_av(doc)},
            ConditionExpression="attribute_not_exists(pk) OR #v < :v",
            ExpressionAttributeNames={"#v": "version"},
            ExpressionAttributeValues={":v": {"N": str(version)}})

    def delete_object(self, tenant, name):
        self.s3.delete_object(Bucket=self.bucket, Key="%s/files/%s" % (tenant, name))

    def hostile(self, tenant, other):
        """Rows the pull must refuse: in tenant's feed but malformed."""
        now = int(time.time() * 1000)
        base = {"updated_at": {"S": "2026-12-06T00:00:00.000Z"}, "feed": {"N": str(now)},
                "deleted": {"BOOL": False}}
        bad = [
            dict(base, pk={"S": "TENANT#" + tenant}, sk={"S": "ITEM#bad id!"},
                 version={"N": "1"}, data={"M": {}}),
            dict(base, pk={"S": "TENANT#" + tenant}, sk={"S": "ITEM#huge"},
                 version={"N": "99999999999999999999999999"}, data={"M": {}}),
            dict(base, pk={"S": "TENANT#" + tenant}, sk={"S": "FILE#x.bin"},
                 version={"N": "5"}, size={"N": "3"}, sha256={"S": "nothex"},
                 s3_key={"S": tenant + "/files/x.bin"}),
        ]
        for item in bad:
            self.ddb.put_item(TableName=self.table, Item=item)
        return len(bad)

    def close(self):
        pass


def _json_av(v):
    if isinstance(v, dict):
        return {"M": {k: _json_av(x) for k, x in v.items()}}
    if isinstance(v, list):
        return {"L": [_json_av(x) for x in v]}
    if isinstance(v, bool):
        return {"BOOL": v}
    if v is None:
        return {"NULL": True}
    if isinstance(v, (int, float)):
        return {"N": str(v)}
    return {"S": v}


def _av_json(av):
    def conv(a):
        (t, v), = a.items()
        if t == "M":
            return {k: conv(x) for k, x in v.items()}
        if t == "L":
            return [conv(x) for x in v]
        if t == "N":
            return json.loads(v)
        if t == "NULL":
            return None
        return v
    return json.dumps(conv(av))


class DirRemote:
    """The directory backend; read back through its files (layout in
    sync/dir/dir.c: tenants/<uuid>/rows/<sha256 of the sort key>.json,
    objects/<uuid>/files/<name, percent-encoded>)."""
    name = "dir"

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="tn-pull-remote-")

    def env(self, data):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TENANTRY_"))}
        env.update({"TENANTRY_DATA": data, "TENANTRY_REMOTE": "dir:" + self.root,
                    "TENANTRY_SYNC_BACKOFF_MS": "50", "TENANTRY_SYNC_ATTEMPTS": "2",
                    "HOME": "/nonexistent"})
        if os.environ.get("TN_ASAN_REEXEC"):
            env["ASAN_OPTIONS"] = os.environ.get("TN_CHILD_ASAN_OPTIONS", "")
        return env

    def _all(self):
        base = os.path.join(self.root, "tenants")
        for tenant in (os.listdir(base) if os.path.isdir(base) else []):
            rows = os.path.join(base, tenant, "rows")
            for f in (os.listdir(rows) if os.path.isdir(rows) else []):
                if f.startswith(".") or not f.endswith(".json"):
                    continue
                p = os.path.join(rows, f)
                try:
                    with open(p) as fh:
                        yield p, tenant, json.load(fh)
                except ValueError:
                    continue

    def rows(self):
        out = {}
        for _, tenant, r in self._all():
            kind, _, key = r["sk"].partition("#")
            if kind not in ("ITEM", "FILE"):
                continue
            deleted = bool(r.get("deleted"))
            content = None if deleted else (json.loads(r["data"]) if kind == "ITEM" else r["sha256"])
            out[(tenant, kind.lower(), key)] = (int(r["version"]), deleted, content)
        return out

    def tenant_rows(self):
        return {tenant: r for _, tenant, r in self._all() if r["sk"] == "TENANT"}

    def objects(self):
        out = {}
        base = os.path.join(self.root, "objects")
        for dirpath, _, files in os.walk(base):
            for f in files:
                if f.startswith("."):
                    continue
                p = os.path.join(dirpath, f)
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, base)] = hashlib.sha256(fh.read()).hexdigest()
        return out

    def delete_row(self, tenant, kind, key):
        sk = "%s#%s" % (kind.upper(), key)
        p = os.path.join(self.root, "tenants", tenant, "rows",
                         hashlib.sha256(sk.encode()).hexdigest() + ".json")
        os.unlink(p)

    def delete_object(self, tenant, name):
        os.unlink(os.path.join(self.root, "objects", tenant, "files", name))

    def hostile(self, tenant, other):
        """Row files the pull must refuse: under the right name but malformed,
        and one in this tenant's folder that names another tenant."""
        rows = os.path.join(self.root, "tenants", tenant, "rows")
        bad = {
            "ITEM#huge": {"pk": "TENANT#" + tenant, "sk": "ITEM#huge",
                          "version": "99999999999999999999999", "feed": "1", "deleted": False,
                          "updated_at": 1, "data": "{}"},
            "FILE#x.bin": {"pk": "TENANT#" + tenant, "sk": "FILE#x.bin", "version": "5",
                           "feed": "1", "deleted": False, "updated_at": 1, "size": 3,
                           "sha256": "nothex", "content_type": "a/b",
                           "object": tenant + "/files/x.bin"},
            "ITEM#foreign": {"pk": "TENANT#" + other, "sk": "ITEM#foreign", "version": "5",
                             "feed": "1", "deleted": False, "updated_at": 1, "data": "{}"},
        }
        feed = os.path.join(self.root, "tenants", tenant, "feed")
        for sk, doc in bad.items():
            with open(os.path.join(rows, hashlib.sha256(sk.encode()).hexdigest() + ".json"),
                      "w") as f:
                json.dump(doc, f)
            with open(feed, "a") as f:
                f.write(json.dumps({"sk": sk, "version": doc["version"]}) + "\n")
        return len(bad)

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


# ---- appliances ---------------------------------------------------------------

class Appliance:
    def __init__(self, remote, label):
        self.remote = remote
        self.dir = tempfile.mkdtemp(prefix="tn-pull-%s-" % label)
        self.data = os.path.join(self.dir, "data")
        self.env = remote.env(self.data)
        self.store = None

    def tn(self, *args, check=True, timeout=180):
        p = subprocess.run([TENANTRY] + list(args), env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("tenantry %s: %d %s %s" % (" ".join(args), p.returncode,
                                                          p.stdout[-300:], p.stderr[-500:]))
        return p

    def init(self):
        self.tn("init")
        self.tn("remote", "init")

    def lib(self):
        if not self.store:
            self.store = awslib.Store(self.data)
        return self.store

    def sync(self, check=True):
        p = self.tn("sync", "--once", check=False)
        if check and p.returncode != 0:
            st = self.tn("sync-status", "--json", check=False).stdout
            raise AssertionError("sync --once: %d %s %s; status %s" % (
                p.returncode, p.stdout[-300:], p.stderr[-300:], st[-800:]))
        lines = p.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else {}

    def rows(self):
        """{(tenant, kind, key): (version, deleted, content)} of the store."""
        c = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "tenantry.db"), uri=True,
                            timeout=10)
        try:
            out = {}
            for tid, id_, v, d, data in c.execute(
                    "SELECT t.id, i.id, i.version, i.deleted, i.data FROM _items i "
                    "JOIN _tenants t ON t.tid = i.tenant"):
                out[(tid, "item", id_)] = (v, bool(d), None if d else json.loads(data))
            for tid, name, v, d, sha in c.execute(
                    "SELECT t.id, f.name, f.version, f.deleted, f.sha256 FROM _files f "
                    "JOIN _tenants t ON t.tid = f.tenant"):
                out[(tid, "file", name)] = (v, bool(d), None if d else sha)
            return out
        finally:
            c.close()

    def sql(self, query):
        c = sqlite3.connect(os.path.join(self.data, "tenantry.db"), timeout=10)
        try:
            r = c.execute(query).fetchall()
            c.commit()
            return r
        finally:
            c.close()

    def file_bytes(self, tenant, name):
        with open(os.path.join(self.data, "files", tenant, name), "rb") as f:
            return f.read()

    def close(self):
        if self.store:
            self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def same(got, want, what):
    """T.eq for row sets, naming at most five differing keys."""
    bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    T.check(not bad, "%s: %d rows differ, e.g. %s" % (
        what, len(bad), "; ".join("%r: %r vs %r" % (k, got.get(k), want.get(k)) for k in bad[:5])))


def live(rows):
    return {k: v for k, v in rows.items() if not v[1]}


def highest(*row_sets):
    """Each key at its highest version across the sets."""
    out = {}
    for rows in row_sets:
        for k, v in rows.items():
            if k not in out or v[0] > out[k][0]:
                out[k] = v
    return out


# ---- scenarios --------------------------------------------------------------------

def two_appliances_converge(remote):
    a, b = Appliance(remote, "a"), Appliance(remote, "b")
    try:
        a.init()
        b.init()
        a.tn("tenant", "create", "shared")
        a.tn("tenant", "create", "solo")
        tid = a.lib().tenant_id("shared")
        a.lib().put_items("shared", [("seed-%d" % i, json.dumps({"i": i})) for i in range(20)])
        a.lib().put_file("shared", "seed.bin", os.urandom(3000))
        a.sync()
        j = json.loads(b.tn("tenant", "join", tid).stdout)
        T.check(j["ok"] and j["items"] >= 20 and j["files"] == 1, "join brought the tenant: %r" % j)
        T.eq(b.file_bytes(tid, "seed.bin"), a.file_bytes(tid, "seed.bin"), "joined file bytes")
        rng = random.Random(7)
        kills = 0
        for rnd in range(4):
            for app, who in ((a, "a"), (b, "b")):
                app.lib().put_items("shared", [("k-%d" % rng.randrange(30),
                                                json.dumps({"by": who, "r": rnd, "n": rng.random()}))
                                               for _ in range(15)])
                app.lib().put_file("shared", "f-%d.bin" % rng.randrange(4), os.urandom(2000 + rnd))
                app.tn("item", "delete", "--tenant", "shared", "seed-%d" % (rnd * 2 + (who == "b")),
                       check=False)
            # b is killed during its pull now and then: nothing may change by it.
            if rnd % 2 == 1:
                p = subprocess.Popen([TENANTRY, "sync", "--once"], env=b.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.05 + rng.random() * 0.2)
                p.send_signal(signal.SIGKILL)
                p.wait(timeout=30)
                kills += 1
            a.sync()
            b.sync()
        # A file deleted on one appliance is deleted on the other (its
        # tombstone pulled), and a file never seen there arrives as one.
        a.lib().delete_file("shared", "seed.bin")
        a.lib().put_file("shared", "gone.bin", b"short-lived")
        a.lib().delete_file("shared", "gone.bin")
        for _ in range(2):
            a.sync()
            b.sync()
        ra, rb, rr = a.rows(), b.rows(), remote.rows()
        T.check(rb.get((tid, "file", "seed.bin"), (0, False))[1] is True and
                not os.path.exists(os.path.join(b.data, "files", tid, "seed.bin")),
                "a file deleted on a is deleted on b, bytes too")
        T.check(rb.get((tid, "file", "gone.bin"), (0, False))[1] is True,
                "a file b never saw arrives as its tombstone")
        shared = lambda rows: {k: v for k, v in rows.items() if k[0] == tid}  # noqa: E731
        same(shared(ra), shared(rb), "both appliances hold the same rows")
        same(shared(rr), shared(highest(ra, rb)), "the remote holds each row at its highest version")
        for k, v in shared(ra).items():
            if k[1] == "file" and not v[1]:
                T.eq(hashlib.sha256(b.file_bytes(tid, k[2])).hexdigest(), v[2],
                     "b's bytes of %s match their row" % k[2])
        T.check(kills == 2, "b was killed during a sync twice")
        T.eq(b.tn("check").returncode, 0, "b's store is clean")
        return a, b
    except Exception:
        a.close()
        b.close()
        raise


def has_schema(c):
    """The store file exists and its schema is in place (a restore killed in its
    first milliseconds may leave a file without tables)."""
    return os.path.exists(os.path.join(c.data, "tenantry.db")) and c.sql(
        "SELECT count(*) FROM sqlite_master WHERE name IN ('_meta', '_tenants')")[0][0] == 2


def restored_whole(c):
    """A killed restore had already finished: no marker left and tenants present."""
    return has_schema(c) and not c.sql(
        "SELECT count(*) FROM _meta WHERE key = 'restore_incomplete'")[0][0] and \
        c.sql("SELECT count(*) FROM _tenants")[0][0] > 0


def restore_everything(remote, a):
    c = Appliance(remote, "c")
    try:
        tid = a.lib().tenant_id("shared")
        a.tn("tenant", "set", "shared", "--max-items", "5000")
        a.sync()
        # Killed half way, then run again (sooner each time the restore was
        # faster than the kill).
        for delay in (0.15, 0.05, 0.02, 0.01, 0.005):
            p = subprocess.Popen([TENANTRY, "restore"], env=c.env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
            done = p.returncode == 0 or restored_whole(c)
            if p.returncode == -signal.SIGKILL and not done:
                break
            shutil.rmtree(c.data, ignore_errors=True)
        T.check(p.returncode == -signal.SIGKILL, "a restore was killed half way")
        marked = has_schema(c) and c.sql(
            "SELECT count(*) FROM _meta WHERE key = 'restore_incomplete'")[0][0] == 1
        if marked:
            chk = c.tn("check", check=False)
            T.check(chk.returncode == 5 and "restore" in chk.stdout + chk.stderr,
                    "a half restore is not clean: %d %s" % (chk.returncode, chk.stdout[-200:]))
        else:
            print("  note: the restore was killed before it began (no marker yet)")
        j = json.loads(c.tn("restore").stdout)
        T.check(j["ok"], "restore completes: %r" % j)
        T.eq(c.tn("check").returncode, 0, "the restored store is clean")
        same(c.rows(), a.rows(), "items, files and tombstones equal the source's")
        names = json.loads(c.tn("tenant", "list", "--json").stdout)
        T.check(sorted(t["name"] for t in names) == ["shared", "solo"], "tenants: %r" % names)
        before = remote.rows()
        j = c.sync()
        T.check(j.get("ok") and j.get("items") == 0 and j.get("files") == 0,
                "the first sync after a restore sends nothing: %r" % j)
        same(remote.rows(), before, "and the remote is unchanged")
        for k, v in c.rows().items():
            if k[1] == "file" and not v[1]:
                T.eq(hashlib.sha256(c.file_bytes(k[0], k[2])).hexdigest(), v[2], "restored bytes")
        T.check(c.tn("restore", check=False).returncode != 0,
                "restore refuses a store that holds data")
        _ = tid
    finally:
        c.close()


def verify_and_repair(remote, a):
    tid = a.lib().tenant_id("shared")
    # Objects are read back several at a time: twelve files, three lost.
    names = ["v.bin"] + ["w%02d.bin" % i for i in range(11)]
    lost = ["v.bin", "w03.bin", "w10.bin"]
    for n in names:
        a.lib().put_file("shared", n, os.urandom(4000))
    a.lib().put_items("shared", [("v-1", json.dumps({"v": 1}))])
    a.sync()
    p = a.tn("verify", "--remote", check=False)
    T.eq(p.returncode, 0, "verify: equal after a sync: %s" % p.stdout[-400:])
    for n in lost:
        remote.delete_object(tid, n)
    remote.delete_row(tid, "item", "v-1")
    p = a.tn("verify", "--remote", "--json", check=False)
    T.eq(p.returncode, 5, "verify exits 5 on differences")
    j = json.loads(p.stdout)
    diffs = sorted((d["kind"], d["key"], d["what"]) for t in j["tenants"] for d in t["differences"])
    T.eq(diffs, sorted([("file", n, "object missing or damaged remotely") for n in lost] +
                       [("item", "v-1", "missing remotely")]),
         "verify finds exactly the lost objects and the lost row")
    p = a.tn("verify", "--remote", "--repair", check=False)
    T.eq(p.returncode, 0, "repair: %s %s" % (p.stdout[-300:], p.stderr[-300:]))
    p = a.tn("verify", "--remote", check=False)
    T.eq(p.returncode, 0, "equal after the repair: %s" % p.stdout[-400:])
    for n in lost:
        T.check(("%s/files/%s" % (tid, n)) in remote.objects(), "the object %s is back" % n)


def hostile_rows(remote, a):
    if not hasattr(remote, "hostile"):
        print("  note: the %s remote's reader plants no hostile rows" % remote.name)
        return
    tid = a.lib().tenant_id("shared")
    n = remote.hostile(tid, a.lib().tenant_id("solo"))
    a.lib().put_items("shared", [("after-hostile", json.dumps({"ok": True}))])
    j = a.sync()
    T.check(j.get("ok"), "sync goes on past hostile rows: %r" % j)
    st = json.loads(a.tn("sync-status", "--json").stdout)
    mine = [t for t in st["tenants"] if t["id"] == tid][0]
    T.check(mine["pull"]["refused"] >= n, "the hostile rows are counted: %r" % mine["pull"])
    rows = a.rows()
    T.check((tid, "item", "huge") not in rows and (tid, "file", "x.bin") not in rows,
            "and never applied")
    T.check((tid, "item", "after-hostile") in remote.rows(), "the rest went on")


def cloud_side_writer(remote, a):
    """A service in AWS writing by the documented contract reaches appliances."""
    if not hasattr(remote, "cloud_write"):
        print("  note: the %s remote has no cloud-side writer" % remote.name)
        return
    tid = a.lib().tenant_id("shared")
    version = (int(time.time() * 1000) << 16) | 7
    remote.cloud_write(tid, "from-cloud", {"source": "lambda", "n": 12345678901234567}, version)
    j = a.sync()
    T.check(j.get("ok"), "sync: %r" % j)
    T.check(j.get("pulled", 0) >= 1 and j.get("pull_read", 0) >= j.get("pulled", 0),
            "the pass reports what it pulled and what the feed sent: %r" % j)
    got = a.rows().get((tid, "item", "from-cloud"))
    T.check(got and got[0] == version and got[2] == {"source": "lambda", "n": 12345678901234567},
            "the cloud writer's row arrived with its version and exact digits: %r" % (got,))
    a.lib().put_items("shared", [("from-cloud", json.dumps({"edited": "here"}))])
    a.sync()
    mine = a.rows()[(tid, "item", "from-cloud")]
    T.check(mine[0] > version and remote.rows()[(tid, "item", "from-cloud")][0] == mine[0],
            "a local edit of it wins and goes up")


def deleted_tenant_stays_deleted(remote, a):
    solo = a.lib().tenant_id("solo")
    a.lib().put_items("solo", [("s-%d" % i, "{}") for i in range(5)])
    a.lib().put_file("solo", "s.bin", b"solo bytes")
    a.sync()
    T.check(any(k[0] == solo for k in remote.rows()), "solo is remote")
    a.tn("tenant", "delete", "solo")
    a.sync()
    T.check(not any(k[0] == solo for k in remote.rows()), "solo's rows are purged remotely")
    T.check(not any(k.startswith(solo) for k in remote.objects()), "and its objects")
    marker = remote.tenant_rows().get(solo)
    T.check(marker is not None, "a marker stays")
    d = Appliance(remote, "d")
    try:
        d.init()
        p = d.tn("tenant", "join", solo, check=False)
        T.check(p.returncode != 0, "join refuses a deleted tenant")
    finally:
        d.close()
    e = Appliance(remote, "e")
    try:
        j = json.loads(e.tn("restore").stdout)
        T.check(j["ok"], "restore: %r" % j)
        names = [t["name"] for t in json.loads(e.tn("tenant", "list", "--json").stdout)]
        T.check("solo" not in names, "restore does not bring back a deleted tenant: %r" % names)
    finally:
        e.close()


def offline_past_retention(remote, a, b):
    tid = a.lib().tenant_id("shared")
    a.lib().put_items("shared", [("gone-1", "{}"), ("gone-2", "{}"), ("kept", "{}")])
    a.sync()
    b.sync()
    T.check((tid, "item", "gone-1") in live(b.rows()), "b has the rows")
    # b goes offline; a deletes two rows and their tombstones expire remotely.
    a.tn("item", "delete", "--tenant", "shared", "gone-1")
    a.tn("item", "delete", "--tenant", "shared", "gone-2")
    a.sync()
    remote.delete_row(tid, "item", "gone-1")
    remote.delete_row(tid, "item", "gone-2")
    # b was away longer than the tombstones live, and changed a row meanwhile.
    b.sql("UPDATE _sync_pull SET pulled_at = 1 WHERE tenant = "
          "(SELECT tid FROM _tenants WHERE id = '%s')" % tid)
    b.lib().put_items("shared", [("kept", json.dumps({"b": "newer"}))])
    j = b.sync()
    T.check(j.get("ok"), "b syncs: %r" % j)
    rb = live(b.rows())
    T.check((tid, "item", "gone-1") not in rb and (tid, "item", "gone-2") not in rb,
            "rows deleted elsewhere while b was away are not resurrected")
    T.check(rb.get((tid, "item", "kept"), (0, 0, None))[2] == {"b": "newer"},
            "b's newer local change survives")
    T.check((tid, "item", "gone-1") not in live(remote.rows()), "nor are they back remotely")


def run_backend(remote):
    a = b = None
    try:
        a, b = two_appliances_converge(remote)
        for fn in (restore_everything, verify_and_repair, hostile_rows, cloud_side_writer,
                   deleted_tenant_stays_deleted):
            if ONLY in fn.__name__:
                T.run(fn, remote, a)
        T.run(offline_past_retention, remote, a, b)
    finally:
        for x in (a, b):
            if x:
                x.close()
        remote.close()


def main():
    awslib.asan_reexec()
    T.run(run_backend, DirRemote())
    try:
        moto = awslib.Moto()
    except Exception as e:  # noqa: BLE001
        print("moto_server unavailable: %s" % e)
        print("0 passed, 1 failed")
        return 1
    try:
        T.run(run_backend, AwsRemote(moto))
    finally:
        moto.stop()
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
