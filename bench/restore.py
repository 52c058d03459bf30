"""restore.py - the way-back benchmark (not a test): `tenantry restore` against
the reference AWS clients reading the same data from the same moto_server,
and what a pull with nothing new and a verify cost in requests and read units.

    python3 bench/restore.py [BUILD] [quick]

Sizes (quick: BENCH_QUICK=1 or the argument `quick`):
  TN_BENCH_RESTORE_ITEMS     items of about 300 B (default 100,000; quick 10,000)
  TN_BENCH_RESTORE_MIB       MiB of files (default 200; quick 20)
  TN_BENCH_RESTORE_FILE_MIB  size of one file (default 1: 200 files of 1 MiB)
  TN_BENCH_RESTORE_RUNS      rounds of timed measurements (default 3); figures
                             are medians over the rounds, ratios the median of
                             each round's ratio (both clients of a ratio run
                             back to back in the same round)
  TN_BENCH_RESTORE_ALL       1: time a restore of the whole store in every round
                             too (default: in quick runs only; it costs as much
                             as the two others together)
  TN_BENCH_RESTORE_WAIT      1 (default): before counting the pulls, wait until
                             the fill's push is older than the feed's 5-minute
                             overlap, so "nothing new" is the steady state
                             (0: do not wait; the pulls then re-read the fill)

One moto_server on a free loopback port (stopped by its pid at the end).  The
remote is filled once by one store pushing with `tenantry sync --once`
(TENANTRY_SYNC_SINGLE_WRITER=1): the tenant "items" holds the items, the
tenant "files" the files, so each kind is restored and timed on its own
(`restore --tenant ID`), and the whole store once more (`restore`, every tenant,
what an appliance replacing a dead one runs).

Each round, back to back on the same server:
  items  `tenantry restore --tenant <items>`  against bench/boto3_query.py:
         boto3's paginated Query of the same partition (ConsistentRead, all
         attributes, 1 MB pages), in a child process
  files  `tenantry restore --tenant <files>`  against
         `aws s3 sync s3://BUCKET/<tenant id>/files/ DIR` (its defaults:
         10 concurrent requests)
  all    `tenantry restore` (both tenants) against the two references' sums
         (TN_BENCH_RESTORE_ALL; the counted restore below is timed anyway)
Wall time is the child's, from start to exit.  Client CPU is user+system of
the child (getrusage(RUSAGE_CHILDREN) deltas), interpreter start included for
the Python clients (boto3's read loop alone is shown too: it favours boto3).
moto's CPU over the same interval is read from /proc/<pid>/stat: moto is
CPU-bound Python, so where moto's CPU is close to the wall time, the figure is
moto's ceiling, not the client's.  tenantry also writes what it reads into
SQLite and checks every file's SHA-256; the references only read (boto3)
or write plain files (aws s3 sync).

Then, through a counting HTTP forwarder in front of moto (requests classified
as tests/e2e/faultproxy.py does: ddb:<Operation>, s3:get, ...), per operation: requests, bytes,
rows and read units, for
  - one counted `restore` of the whole store,
  - `sync --once` on the restored store, twice (the second is a pull with
    nothing new),
  - `verify --remote` of the restored store,
  - `sync --once` on the store that pushed the fill, twice.
Read units are estimated, not reported: tenantry does not ask for
ReturnConsumedCapacity.  Each row's DynamoDB item size is computed by the
documented rules (attribute names + values; numbers 1 byte per 2 digits + 1;
maps and lists 3 bytes + 1 per element) from a boto3 Scan of the table after
the fill; a Query or Scan costs ceil(sum of its rows' full sizes / 4 KB), at
least 1 (an empty answer is counted as one unit), a GetItem or each
BatchGetItem row ceil(size / 4 KB), halved when not
ConsistentRead (a global secondary index is always eventually consistent).
A projection does not reduce the cost (it is the full item's size); a
filtered Scan pays for every row it scanned (ScannedCount x the table's mean
item size).

Prints tables, and "@@ name|value|unit|goal" lines like the other benchmarks
(also appended to $TN_BENCH_OUT when set).
"""
import gzip
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, HERE)
ARGS = [a for a in sys.argv[1:] if a != "quick"]
os.environ["TN_BUILD"] = ARGS[0] if ARGS else os.environ.get("TN_BUILD", "build")
import awslib  # noqa: E402
import bench_docs  # noqa: E402
from benchlib import aws_cli, child_cpu, log, metric  # noqa: E402
import faultproxy  # noqa: E402

BUILD = os.environ["TN_BUILD"]
TENANTRY = os.path.abspath(os.path.join(BUILD, "tenantry"))
QUICK = os.environ.get("BENCH_QUICK") == "1" or "quick" in sys.argv[1:]


def env_num(name, default, quick, conv=int):
    return conv(os.environ.get(name, str(quick if QUICK else default)))


N_ITEMS = env_num("TN_BENCH_RESTORE_ITEMS", 100000, 10000)
MIB = env_num("TN_BENCH_RESTORE_MIB", 200, 20, float)
FILE_MIB = env_num("TN_BENCH_RESTORE_FILE_MIB", 1, 1, float)
RUNS = env_num("TN_BENCH_RESTORE_RUNS", 3, 3)
WAIT = env_num("TN_BENCH_RESTORE_WAIT", 1, 1) == 1
ALL = env_num("TN_BENCH_RESTORE_ALL", 0, 1) == 1
FILE_BYTES = int(FILE_MIB * 2**20)
N_FILES = int(round(MIB * 2**20 / FILE_BYTES)) if FILE_BYTES else 0
OVERLAP_S = 300  # the feed's overlap window (docs/sync.md, "A feed that cannot miss")
TABLE = "bench"
BUCKET = "bench-restore-%d" % os.getpid()
LIMIT = 7200  # seconds any one child may take








def proc_cpu(pid):
    """user+system seconds of a running process, from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")




class Failed(Exception):
    pass


def tenantry_env(url, data, extra=None):
    env = awslib.sync_env(url, BUCKET, TABLE, {"TENANTRY_DATA": data, "TENANTRY_REMOTE": "aws"})
    # The engine's defaults: no test overrides of attempts or backoff.
    env.pop("TENANTRY_SYNC_ATTEMPTS", None)
    env.pop("TENANTRY_SYNC_BACKOFF_MS", None)
    env.update(extra or {})
    return env


class Run:
    """One child process: wall, client CPU (rusage), moto CPU, output."""

    def __init__(self, args, env, moto_pid, ok=(0,)):
        c0, m0, t0 = child_cpu(), proc_cpu(moto_pid), time.perf_counter()
        p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=LIMIT)
        self.wall = time.perf_counter() - t0
        self.cpu = child_cpu() - c0
        self.moto = proc_cpu(moto_pid) - m0
        self.out, self.err, self.rc = p.stdout, p.stderr, p.returncode
        if p.returncode not in ok:
            raise Failed("%s exited %d after %.1f s: %s" % (
                " ".join(os.path.basename(a) for a in args[:3]), p.returncode, self.wall,
                (p.stderr.strip() or p.stdout.strip())[-400:]))


def tn(args, env, ok=(0,)):
    p = subprocess.run([TENANTRY] + args, env=env, capture_output=True, text=True, timeout=LIMIT)
    if p.returncode not in ok:
        raise Failed("tenantry %s exited %d: %s" % (" ".join(args[:2]), p.returncode,
                                                    (p.stderr.strip() or p.stdout.strip())[-400:]))
    return p


def dir_bytes(root, sub=None):
    """(count, bytes) of the regular files under root (or root/sub)."""
    n = total = 0
    for dirpath, _, files in os.walk(os.path.join(root, sub) if sub else root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            n += 1
            total += st.st_size
    return n, total


def sql_one(data, tenant, query):
    p = tn(["sql", "--data", data, "--tenant", tenant, "--json", "-c", query], dict(
        os.environ, TENANTRY_DATA=data))
    rows = json.loads(p.stdout)
    rows = rows[0] if rows and isinstance(rows[0], list) else rows
    return list(rows[0].values())


# ---- DynamoDB item sizes (the documented rules) ---------------------------------

def _num_size(s):
    digits = s.lstrip("-").replace(".", "")
    if "e" in digits.lower():
        digits = digits.lower().split("e")[0]
    digits = digits.strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def av_size(av):
    (t, v), = av.items()
    if t == "S":
        return len(v.encode())
    if t == "N":
        return _num_size(v)
    if t == "B":
        return (len(v) * 3) // 4
    if t in ("BOOL", "NULL"):
        return 1
    if t == "M":
        return 3 + sum(1 + len(k.encode()) + av_size(x) for k, x in v.items())
    if t == "L":
        return 3 + sum(1 + av_size(x) for x in v)
    if t == "SS":
        return sum(len(x.encode()) for x in v)
    if t == "NS":
        return sum(_num_size(x) for x in v)
    if t == "BS":
        return sum((len(x) * 3) // 4 for x in v)
    return len(json.dumps(v))


def item_size(item):
    return sum(len(k.encode()) + av_size(v) for k, v in item.items())


def units(nbytes, consistent):
    """A read's units: its bytes rounded up to 4 KB, at least one unit (an
    empty answer too), halved when eventually consistent."""
    u = max(1, math.ceil(nbytes / 4096))
    return u if consistent else u / 2


# ---- the counting forwarder -------------------------------------------------------

class Counter(faultproxy.FaultProxy):
    """Forwards every request to moto and counts it per kind: requests, bytes
    each way, rows returned, estimated read units (see the top of the file)."""

    def __init__(self, target, sizes, mean_size):
        super().__init__(target)
        self.sizes = sizes          # (pk, sk) -> full item size
        self.mean = mean_size
        self.reset()

    def reset(self):
        with self.lock:
            self.conns = 0
            self.stats = {}
            self.log = []
            self.keys = []

    def _start(self, c):
        with self.lock:
            self.conns += 1
        super()._start(c)

    def _handle(self, c, req):
        kind = faultproxy.kind_of(req)
        resp = self._forward(req)
        rows = rcu = 0
        if kind.startswith("ddb:") and resp.status == 200:
            try:
                rows, rcu = self._reads(kind, req, resp)
            except (ValueError, KeyError, TypeError):
                pass
        with self.lock:
            s = self.stats.setdefault(kind, {"requests": 0, "req_bytes": 0, "resp_bytes": 0,
                                             "rows": 0, "rcu": 0.0, "errors": 0})
            s["requests"] += 1
            s["req_bytes"] += len(req.body)
            s["resp_bytes"] += len(resp.body)
            s["rows"] += rows
            s["rcu"] += rcu
            s["errors"] += resp.status >= 400
        # Counted before the answer goes back: the client may exit at once.
        c.sendall(resp.raw())
        return True

    def _reads(self, kind, req, resp):
        body = resp.body
        if any(k.lower() == "content-encoding" and "gzip" in v.lower() for k, v in resp.headers):
            body = gzip.decompress(body)
        q, a = json.loads(req.body), json.loads(body)
        consistent = bool(q.get("ConsistentRead")) and "IndexName" not in q

        def full(i):
            k = (i.get("pk", {}).get("S"), i.get("sk", {}).get("S"))
            return self.sizes.get(k, item_size(i))
        if kind in ("ddb:Query", "ddb:Scan"):
            items = a.get("Items", [])
            nbytes = sum(full(i) for i in items)
            scanned = a.get("ScannedCount", len(items))
            if kind == "ddb:Scan" and scanned > len(items):
                nbytes += (scanned - len(items)) * self.mean
            return len(items), units(nbytes, consistent)
        if kind == "ddb:GetItem":
            i = a.get("Item")
            return (1, units(full(i), consistent)) if i else (0, units(0, consistent))
        if kind == "ddb:BatchGetItem":
            n, u = 0, 0.0
            for tname, items in a.get("Responses", {}).items():
                cons = bool(q.get("RequestItems", {}).get(tname, {}).get("ConsistentRead"))
                for i in items:
                    n += 1
                    u += units(full(i), cons)
            return n, u
        return 0, 0

    def take(self):
        with self.lock:
            out, self.stats = self.stats, {}
            out["connections"] = self.conns
            self.log, self.keys, self.conns = [], [], 0
        return out


def counts_table(title, st):
    print("  %s" % title)
    conns = st.get("connections", 0)
    st = {k: v for k, v in st.items() if k != "connections"}
    if not st:
        print("      (no requests)")
        return
    print("      %-22s %8s %10s %12s %9s %10s" % ("operation", "requests", "sent", "received",
                                                   "rows", "est. RCU"))
    tot = {"requests": 0, "req_bytes": 0, "resp_bytes": 0, "rows": 0, "rcu": 0.0}
    for kind in sorted(st):
        s = st[kind]
        for k in tot:
            tot[k] += s[k]
        print("      %-22s %8d %10s %12s %9d %10s%s" % (
            kind, s["requests"], human(s["req_bytes"]), human(s["resp_bytes"]), s["rows"],
            ("%.1f" % s["rcu"]) if kind.startswith("ddb:") else "-",
            "  (%d errors)" % s["errors"] if s["errors"] else ""))
    print("      %-22s %8d %10s %12s %9d %10.1f   (%d TCP connections)"
          % ("total", tot["requests"], human(tot["req_bytes"]), human(tot["resp_bytes"]),
             tot["rows"], tot["rcu"], conns))


def human(n):
    for unit, div in (("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return "%.1f %s" % (n / div, unit)
    return "%d B" % n


def total(st, key, prefix=""):
    return sum(s[key] for k, s in st.items() if k != "connections" and k.startswith(prefix))


# ---- the benchmark ----------------------------------------------------------------

class Bench:
    def __init__(self, root, moto):
        self.root = root
        self.moto = moto
        self.ddb, self.s3 = awslib.clients(moto.url)
        self.src = os.path.join(root, "source")
        self.aws = aws_cli()
        self.n = 0

    def fresh(self, name):
        self.n += 1
        return os.path.join(self.root, "%s-%d" % (name, self.n))

    def fill(self):
        env = tenantry_env(self.moto.url, self.src, {"TENANTRY_SYNC_SINGLE_WRITER": "1"})
        tn(["init"], env)
        tn(["tenant", "create", "items"], env)
        tn(["tenant", "create", "files"], env)
        t0 = time.perf_counter()
        # In slices: the SQL console has a time budget per run.
        for lo in range(0, N_ITEMS, 5000):
            sql = ["BEGIN;"] + ["INSERT INTO items (id, data) VALUES ('%s', '%s');"
                                % (bench_docs.item_id(i), bench_docs.doc(i))
                                for i in range(lo, min(N_ITEMS, lo + 5000))]
            sql.append("COMMIT;")
            p = subprocess.run([TENANTRY, "sql", "--data", self.src, "--tenant", "items"],
                               input="\n".join(sql) + "\n", capture_output=True, text=True,
                               env=env)
            if p.returncode != 0:
                raise Failed("loading items: %s" % p.stderr[-300:])
        st = awslib.Store(self.src)
        try:
            self.items_id = st.tenant_id("items")
            self.files_id = st.tenant_id("files")
            with open("/dev/urandom", "rb") as rnd:
                for i in range(N_FILES):
                    st.put_file("files", "f%04d.bin" % i, rnd.read(FILE_BYTES))
        finally:
            st.close()
        self.doc_bytes = sum(len(bench_docs.doc(i)) for i in range(N_ITEMS))
        log("  store filled in %.1f s" % (time.perf_counter() - t0))
        self.s3.create_bucket(Bucket=BUCKET)
        tn(["remote", "init"], env)
        r = Run([TENANTRY, "sync", "--once"], env, self.moto.pid)
        self.last_push = time.time()
        self.fill_run = r
        # What the remote holds, read back directly.
        self.items_rows = self.count_partition(self.items_id)
        self.files_rows = self.count_partition(self.files_id)
        if self.items_rows != N_ITEMS + 1 or self.files_rows != N_FILES + 1:
            raise Failed("the remote holds %d and %d rows, expected %d and %d (with the tenant rows)"
                         % (self.items_rows, self.files_rows, N_ITEMS + 1, N_FILES + 1))
        keys, nbytes = self.objects("%s/files/" % self.files_id)
        if keys != N_FILES or nbytes != N_FILES * FILE_BYTES:
            raise Failed("the bucket holds %d objects, %d bytes; expected %d, %d"
                         % (keys, nbytes, N_FILES, N_FILES * FILE_BYTES))
        # Every row's full DynamoDB size, for the read-unit estimates.
        self.sizes = {}
        for i in awslib.scan_all(self.ddb, TABLE, tenant_rows=True):
            self.sizes[(i["pk"]["S"], i["sk"]["S"])] = item_size(i)
        self.table_bytes = sum(self.sizes.values())
        isz = [v for (pk, sk), v in self.sizes.items() if sk.startswith("ITEM#")]
        self.item_mean = statistics.mean(isz) if isz else 0

    def count_partition(self, tenant):
        n, kw = 0, {"TableName": TABLE, "Select": "COUNT", "ConsistentRead": True,
                    "KeyConditionExpression": "pk = :p",
                    "ExpressionAttributeValues": {":p": {"S": "TENANT#" + tenant}}}
        while True:
            r = self.ddb.query(**kw)
            n += r["Count"]
            if "LastEvaluatedKey" not in r:
                return n
            kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]

    def objects(self, prefix):
        n = total_ = 0
        kw = {"Bucket": BUCKET, "Prefix": prefix}
        while True:
            r = self.s3.list_objects_v2(**kw)
            for o in r.get("Contents", []):
                n += 1
                total_ += o["Size"]
            if not r.get("IsTruncated"):
                return n, total_
            kw["ContinuationToken"] = r["NextContinuationToken"]

    # -- the measured clients --

    def restore(self, tenants, url=None):
        """tenants: list of ids ([] = all).  Returns (Run, data dir)."""
        data = self.fresh("restore")
        args = [TENANTRY, "restore", "--data", data]
        for t in tenants:
            args += ["--tenant", t]
        r = Run(args, tenantry_env(url or self.moto.url, data), self.moto.pid)
        j = json.loads(r.out)
        if not j.get("ok"):
            raise Failed("restore: %r" % j)
        want_items = N_ITEMS if not tenants or self.items_id in tenants else 0
        want_files = N_FILES if not tenants or self.files_id in tenants else 0
        if want_items:
            got = int(sql_one(data, "items", "SELECT count(*) FROM items")[0])
            if got != want_items:
                raise Failed("restore: %d of %d items in the store" % (got, want_items))
        if want_files:
            n, nbytes = dir_bytes(data, "files")
            if n != want_files or nbytes != want_files * FILE_BYTES:
                raise Failed("restore: %d files, %d bytes on disk; expected %d, %d"
                             % (n, nbytes, want_files, want_files * FILE_BYTES))
        r.restored = j
        return r, data

    def boto3_query(self):
        r = Run([sys.executable, os.path.join(HERE, "boto3_query.py"), self.moto.url, TABLE,
                 "TENANT#" + self.items_id], dict(os.environ), self.moto.pid)
        j = json.loads(r.out.strip().splitlines()[-1])
        if j["rows"] != self.items_rows:
            raise Failed("boto3 read %d of %d rows" % (j["rows"], self.items_rows))
        r.detail = j
        return r

    def s3_sync(self):
        dest = self.fresh("awscli")
        env = awslib.sync_env(self.moto.url, BUCKET, TABLE)
        r = Run([self.aws, "s3", "sync", "s3://%s/%s/files/" % (BUCKET, self.files_id), dest,
                 "--endpoint-url", self.moto.url, "--only-show-errors"], env, self.moto.pid)
        n, nbytes = dir_bytes(dest)
        if n != N_FILES or nbytes != N_FILES * FILE_BYTES:
            raise Failed("aws s3 sync: %d files, %d bytes; expected %d, %d"
                         % (n, nbytes, N_FILES, N_FILES * FILE_BYTES))
        shutil.rmtree(dest, ignore_errors=True)
        return r


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    return "%.3g-%.3g" % (min(xs), max(xs)) if xs else "-"


def main():
    log("restore benchmark: %d items, %d files of %g MiB, %d rounds" % (N_ITEMS, N_FILES, FILE_MIB,
                                                                       RUNS))
    root = tempfile.mkdtemp(prefix="tn-bench-restore-")
    moto = awslib.Moto(isolated=False)
    counter = None
    try:
        b = Bench(root, moto)
        b.fill()
        mib = N_FILES * FILE_BYTES / 2**20
        print("== restore: %d items (%.0f B of JSON each), %d files of %g MiB (%.0f MiB); "
              "moto_server %s on loopback; %d round(s); load average %s, %d CPUs"
              % (N_ITEMS, b.doc_bytes / max(1, N_ITEMS), N_FILES, FILE_MIB, mib,
                 moto_version(), RUNS, load(), os.cpu_count()))
        f = b.fill_run
        print("fill: `sync --once` (SINGLE_WRITER=1) pushed %d rows and %.0f MiB in %.1f s "
              "(client CPU %.1f s, moto CPU %.1f s); DynamoDB item size: mean %.0f B per item, "
              "table %.1f MB" % (N_ITEMS + N_FILES + 2, mib, f.wall, f.cpu, f.moto, b.item_mean,
                                 b.table_bytes / 1e6))
        res = {k: [] for k in ("ri", "bq", "rf", "s3", "ra")}
        print("\nrounds (wall s / client CPU s / moto CPU s):")
        for rnd in range(RUNS):
            ri, d = b.restore([b.items_id])
            shutil.rmtree(d, ignore_errors=True)
            bq = b.boto3_query()
            rf, d = b.restore([b.files_id])
            shutil.rmtree(d, ignore_errors=True)
            s3 = b.s3_sync()
            ra = None
            if ALL:
                ra, d = b.restore([])
                shutil.rmtree(d, ignore_errors=True)
            for k, r in zip(("ri", "bq", "rf", "s3", "ra"), (ri, bq, rf, s3, ra)):
                if r:
                    res[k].append(r)
            print("  %d: restore items %s | boto3 Query %s (loop %.2f/%.2f, %d pages) | "
                  "restore files %s | aws s3 sync %s%s | load %s"
                  % (rnd + 1, fmt(ri), fmt(bq), bq.detail["loop_wall"], bq.detail["loop_cpu"],
                     bq.detail["pages"], fmt(rf), fmt(s3),
                     " | restore all %s" % fmt(ra) if ra else "", load()), flush=True)
        report(b, res, mib)

        # ---- cost in requests and read units ----
        counter = Counter(moto.port, b.sizes, b.table_bytes / max(1, len(b.sizes)))
        counter.start()
        age = time.time() - b.last_push
        if WAIT and age < OVERLAP_S + 10:
            log("  waiting %.0f s until the fill's push is older than the feed's overlap"
                % (OVERLAP_S + 10 - age))
            time.sleep(OVERLAP_S + 10 - age)
        age = time.time() - b.last_push
        print("\n== requests and estimated read units (through a counting forwarder; the fill "
              "was pushed %.0f s earlier; the feed re-reads %d s before its cursor)"
              % (age, OVERLAP_S))
        counter.reset()
        r, data = b.restore([], counter.url)
        c_restore = counter.take()
        counts_table("restore of the whole store (%d tenants, %d rows, %.0f MiB): %.1f s, "
                     "moto CPU %.1f s" % (2, N_ITEMS + N_FILES, mib, r.wall, r.moto), c_restore)
        env_r = tenantry_env(counter.url, data)
        runs = {}
        for label, env in (("restored", env_r),
                           ("source", tenantry_env(counter.url, b.src))):
            for k in (1, 2):
                counter.reset()
                p = Run([TENANTRY, "sync", "--once"], env, moto.pid)
                runs[(label, k)] = counter.take()
                who = ("the restored store" if label == "restored" else
                       "the store that pushed the fill")
                counts_table("`sync --once` #%d on %s (nothing new anywhere): %.2f s, "
                             "moto CPU %.2f s" % (k, who, p.wall, p.moto), runs[(label, k)])
            if label == "restored":
                counter.reset()
                v = Run([TENANTRY, "verify", "--remote", "--json"], env_r, moto.pid)
                c_verify = counter.take()
                counts_table("`verify --remote` of the restored store (%d items, %d files): "
                             "%.1f s, moto CPU %.1f s, exit %d; %s"
                             % (N_ITEMS, N_FILES, v.wall, v.moto, v.rc, verify_rows(v.out)),
                             c_verify)
        cost_report(b, c_restore, runs, c_verify, mib)
    finally:
        if counter:
            counter.stop()
        moto.stop()
        shutil.rmtree(root, ignore_errors=True)


def verify_rows(out):
    """What verify says it compared, per tenant."""
    try:
        j = json.loads(out)
        return ", ".join("%s: %d local / %d remote rows, %d differences" % (
            t["tenant"], t["local_rows"], t["remote_rows"], len(t["differences"]))
            for t in j["tenants"])
    except (ValueError, KeyError, TypeError):
        return "unreadable output"


def fmt(r):
    return "%.2f/%.2f/%.2f" % (r.wall, r.cpu, r.moto)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def moto_version():
    try:
        import moto
        return moto.__version__
    except Exception:  # noqa: BLE001 - only for the header
        return "?"


def report(b, res, mib):
    n = N_ITEMS
    print("\n== figures: median over %d round(s) (spread min-max)" % RUNS)
    print("  %-44s %10s %14s %10s %16s %10s" % ("", "wall s", "rate", "client CPU s", "CPU per unit",
                                                 "moto CPU s"))

    def line(label, rs, amount, unit):
        w = [r.wall for r in rs]
        c = [r.cpu for r in rs]
        m = [r.moto for r in rs]
        rate = [amount / r.wall for r in rs]
        per = [r.cpu / amount * (1e6 if unit == "items" else 1e3) for r in rs]
        print("  %-44s %10.2f %9.4g %-4s %12.2f %11.2f %-4s %10.2f   (wall %s, moto busy %.0f%%)"
              % (label, med(w), med(rate), unit[:5] + "/s" if unit == "items" else "MiB/s", med(c),
                 med(per), "us" if unit == "items" else "ms/M", med(m), spread(w),
                 100 * med(m) / med(w)))
        return med(rate)
    ri = line("tenantry restore --tenant items", res["ri"], n, "items")
    bq = line("boto3 paginated Query (whole process)", res["bq"], n, "items")
    loop_cpu = [r.detail["loop_cpu"] for r in res["bq"]]
    loop_wall = [r.detail["loop_wall"] for r in res["bq"]]
    print("  %-44s %10.2f %9.0f items/s %9.2f   (its read loop alone, without interpreter start "
          "and import)" % ("boto3 paginated Query (loop only)", med(loop_wall), n / med(loop_wall),
                           med(loop_cpu)))
    rf = line("tenantry restore --tenant files", res["rf"], mib, "MiB")
    s3 = line("aws s3 sync (10 concurrent GETs)", res["s3"], mib, "MiB")
    if res["ra"]:
        line("tenantry restore (whole store)", res["ra"], mib, "MiB")

    def ratios(a, bk, f):
        return [f(x, y) for x, y in zip(res[a], res[bk])]
    speed_i = ratios("ri", "bq", lambda t, r: r.wall / t.wall)
    cpu_i = ratios("ri", "bq", lambda t, r: t.cpu / r.cpu)
    cpu_il = [t.cpu / r.detail["loop_cpu"] for t, r in zip(res["ri"], res["bq"])]
    speed_f = ratios("rf", "s3", lambda t, r: r.wall / t.wall)
    cpu_f = ratios("rf", "s3", lambda t, r: t.cpu / r.cpu)
    speed_a = [(q.wall + s.wall) / a.wall for a, q, s in zip(res["ra"], res["bq"], res["s3"])]
    cpu_a = [a.cpu / (q.cpu + s.cpu) for a, q, s in zip(res["ra"], res["bq"], res["s3"])]
    moto_i = ratios("ri", "bq", lambda t, r: t.moto / r.moto)
    print("\n== ratios: median of each round's ratio (spread); goal: rate >= 1x the reference's "
          "at <= 0.1x its CPU")
    print("  items/s   restore / boto3 Query          %.2fx (%s)" % (med(speed_i), spread(speed_i)))
    print("  CPU       restore / boto3 Query process  %.3fx (%s)   (/ its loop alone: %.3fx)"
          % (med(cpu_i), spread(cpu_i), med(cpu_il)))
    print("  MiB/s     restore / aws s3 sync          %.2fx (%s)" % (med(speed_f), spread(speed_f)))
    print("  CPU       restore / aws s3 sync          %.3fx (%s)" % (med(cpu_f), spread(cpu_f)))
    print("  moto CPU  restore / boto3 Query          %.2fx (%s)   (the server's work for the same "
          "rows)" % (med(moto_i), spread(moto_i)))
    if speed_a:
        print("  whole store: restore against boto3 + aws s3 sync one after the other: speed %.2fx, "
              "CPU %.3fx" % (med(speed_a), med(cpu_a)))
    metric("restore.items.per_s", ri, "items/s")
    metric("restore.items.boto3_per_s", bq, "items/s")
    metric("restore.items.speed", med(speed_i), "x", ">= 1")
    metric("restore.items.cpu", med(cpu_i), "x", "<= 0.1")
    metric("restore.files.mib_s", rf, "MiB/s")
    metric("restore.files.awscli_mib_s", s3, "MiB/s")
    metric("restore.files.speed", med(speed_f), "x", ">= 1")
    metric("restore.files.cpu", med(cpu_f), "x", "<= 0.1")
    metric("restore.items.moto_cpu", med(moto_i), "x")
    if speed_a:
        metric("restore.all.speed", med(speed_a), "x")
        metric("restore.all.cpu", med(cpu_a), "x")


def cost_report(b, c_restore, runs, c_verify, mib):
    idle = runs[("restored", 2)]
    src = runs[("source", 2)]
    print("\n== cost summary (read units estimated from item sizes, see the top of the file; "
          "DynamoDB bills 1 RCU per 4 KB read consistently, 0.5 eventually)")
    print("  pull with nothing new (restored store):  %d requests, %.1f RCU, %d rows re-read"
          % (total(idle, "requests"), total(idle, "rcu"), total(idle, "rows")))
    print("  pull with nothing new (the fill's writer): %d requests, %.1f RCU, %d rows re-read"
          % (total(src, "requests"), total(src, "rcu"), total(src, "rows")))
    print("  verify --remote:  %d requests (%d DynamoDB, %d S3 GET), %.0f RCU, %.1f MB of rows, "
          "%.0f MiB of objects"
          % (total(c_verify, "requests"), total(c_verify, "requests", "ddb:"),
             total(c_verify, "requests", "s3:get"), total(c_verify, "rcu"),
             total(c_verify, "resp_bytes", "ddb:") / 1e6,
             total(c_verify, "resp_bytes", "s3:get") / 2**20))
    print("  restore (whole store):  %d requests, %.0f RCU (%.0f of them the tenants' Scan); "
          "its Queries returned %d rows for the %d rows of the two partitions"
          % (total(c_restore, "requests"), total(c_restore, "rcu"),
             c_restore.get("ddb:Scan", {}).get("rcu", 0),
             c_restore.get("ddb:Query", {}).get("rows", 0), b.items_rows + b.files_rows))
    metric("pull.idle.requests", total(idle, "requests"), "requests")
    metric("pull.idle.rcu", total(idle, "rcu"), "RCU")
    metric("pull.idle_writer.rcu", total(src, "rcu"), "RCU")
    metric("verify.requests", total(c_verify, "requests"), "requests")
    metric("verify.rcu", total(c_verify, "rcu"), "RCU")
    metric("restore.requests", total(c_restore, "requests"), "requests")
    metric("restore.rcu", total(c_restore, "rcu"), "RCU")


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print("!! FAILED: %s" % e, flush=True)
        sys.exit(1)
