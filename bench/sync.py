"""sync.py - the sync benchmark (not a test): tenantry's sync engine against the
reference AWS clients, on links emulated by bench/linkem (see sync.sh).

The backlog is the same for every client (bench_docs.py): TN_BENCH_SYNC_ITEMS
items of about 300 bytes (default 20,000) and TN_BENCH_SYNC_FILES files from
4 KiB to 4 MiB (default 500, 58 MiB).  Profiles (TN_BENCH_SYNC_PROFILES):
  direct  no emulation: the clients talk to the server on loopback
  pass    through linkem with no delay and no cap (proves linkem is not the
          bottleneck: each client should take what it takes on `direct`)
  lte     50 ms round trip, 20 Mbit/s each way
  sat     200 ms round trip, 2 Mbit/s each way
Each figure is one client draining the whole backlog into a fresh server,
through a fresh linkem:
  items  tenantry `sync --once`: default (conditional PutItem),
         TENANTRY_SYNC_TRANSACT=1 (TransactWriteItems; moto only: dynalite has
         no transactions), TENANTRY_SYNC_SINGLE_WRITER=1 (BatchWriteItem);
         against boto3 Table.batch_writer() (bench/boto3_items.py).
         Servers: moto_server, and dynalite (npm) when it is installed.
  files  tenantry `sync --once` against `aws s3 sync` of the same files; moto.
On `direct` also the project's earlier file rows: TN_BENCH_SYNC_SMALL files of
4 KiB (default 1,000) against `aws s3 sync`, one TN_BENCH_SYNC_BIG_MB MiB file
(default 256) against `aws s3 cp`.

Drain time is wall time until the client exits with everything written (the
count is read back from the server).  A client still running after
TN_BENCH_SYNC_BUDGET seconds on an emulated link (default 40; on direct and
pass TN_BENCH_SYNC_BUDGET_LOCAL, default 60; 0: no limit) is stopped, what
reached the server is counted, and time and CPU are extrapolated from that
fraction: those figures are marked "est.".  A client that fails is a loud
"!! FAILED" row.
Client CPU is the user+system time of the client process
(getrusage(RUSAGE_CHILDREN)); for boto3 only its write loop (not the
interpreter's start or building the rows), which favours the reference.
The physical limit of a link: the backlog's payload bytes (item documents,
file contents) over the link's bandwidth, plus two round trips (a connection,
the last response); headers, DynamoDB's JSON envelope and TLS are left out.

Prints tables, and one line per figure "@@ name|value|unit|goal" that
bench/run.sh collects into medians across runs (also appended to
$TN_BENCH_OUT when set).  TN_BENCH_PERF=DIR runs tenantry under
`perf record -g` into DIR (its CPU figures then include perf's).
"""
import json
from decimal import Decimal
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, HERE)
os.environ["TN_BUILD"] = sys.argv[1] if len(sys.argv) > 1 else "build"
import awslib  # noqa: E402
import bench_docs  # noqa: E402
from benchlib import aws_cli, child_cpu, log, metric  # noqa: E402

BUILD = os.environ["TN_BUILD"]
TENANTRY = os.path.abspath(os.path.join(BUILD, "tenantry"))
LINKEM = os.path.abspath(os.path.join(BUILD, "linkem"))
DYNALITE = os.path.abspath(os.path.join(BUILD, "npm", "node_modules", "dynalite", "cli.js"))
QUICK = os.environ.get("BENCH_QUICK") == "1"


def env_int(name, default, quick):
    return int(os.environ.get(name, str(quick if QUICK else default)))


N_ITEMS = env_int("TN_BENCH_SYNC_ITEMS", 20000, 2000)
N_FILES = env_int("TN_BENCH_SYNC_FILES", 500, 60)
N_SMALL = env_int("TN_BENCH_SYNC_SMALL", 1000, 200)
BIG_MB = env_int("TN_BENCH_SYNC_BIG_MB", 256, 32)
BUDGET = env_int("TN_BENCH_SYNC_BUDGET", 40, 30) or 86400
BUDGET_LOCAL = env_int("TN_BENCH_SYNC_BUDGET_LOCAL", 60, 60) or 86400
PROFILES = os.environ.get("TN_BENCH_SYNC_PROFILES", "direct,pass,lte,sat").split(",")
PERF = os.environ.get("TN_BENCH_PERF", "")

# name: (one-way delay ms, kbit/s up, kbit/s down) or None for no linkem
LINKS = {
    "direct": None,
    "pass": (0, 0, 0),
    "lte": (25, 20000, 20000),
    "sat": (100, 2000, 2000),
}
LABEL = {
    "direct": "no emulation (loopback)",
    "pass": "linkem, no delay, no cap",
    "lte": "50 ms RTT, 20 Mbit/s",
    "sat": "200 ms RTT, 2 Mbit/s",
}
BOTO_TENANT = "TENANT#" + str(uuid.UUID(int=0x6F1C2A524D0E4C1B9A7E1D2C3B4A5F60))  # same length










AWS = aws_cli()


# ---- servers and the link ----------------------------------------------------------

class Dynalite:
    """dynalite (in memory) on a free loopback port; stop() kills it by PID."""

    def __init__(self):
        self.port = awslib.free_port()
        self.proc = subprocess.Popen(
            # A client stopped mid-request resets its connection; dynalite
            # would die of the unhandled socket error, so it is logged instead.
            ["node", "-e", "process.on('uncaughtException', e => console.error('dynalite:', e.message));"
             "process.argv.splice(1, 0, 'dynalite'); require(%s)" % json.dumps(DYNALITE), "--", "--port", str(self.port),
             "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=awslib._die_with_parent)
        if not awslib._wait_port(self.port):
            self.stop()
            raise RuntimeError("dynalite did not start")
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(kind):
    return awslib.Moto(isolated=False) if kind == "moto" else Dynalite()


class Link:
    """linkem in front of a server port (or nothing for `direct`)."""

    def __init__(self, profile, server, max_seconds):
        self.spec = LINKS[profile]
        self.proc = None
        self.stats = {}
        if self.spec is None:
            self.url = server.url
            return
        fd, self.stats_path = tempfile.mkstemp(prefix="tn-linkem-")
        os.close(fd)
        d, up, down = self.spec
        self.proc = subprocess.Popen(
            [LINKEM, "--target", str(server.port), "--delay-ms", str(d), "--up-kbit", str(up),
             "--down-kbit", str(down), "--max-seconds", str(int(max_seconds)), "--stats",
             self.stats_path], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "port":
            self.stop()
            raise RuntimeError("linkem did not start")
        self.url = "http://127.0.0.1:%s" % line[1]

    def stop(self):
        if self.proc is None:
            return self.stats
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        try:
            with open(self.stats_path) as f:
                self.stats = json.loads(f.read() or "{}")
        finally:
            os.unlink(self.stats_path)
        self.proc = None
        return self.stats


def clients(url):
    return awslib.clients(url)


def create_table(ddb, name):
    """The table `tenantry remote init` creates, with its change-feed index
    (every pass pulls before it pushes), for every client alike."""
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"},
                                           {"AttributeName": "feed", "AttributeType": "N"}],
                     GlobalSecondaryIndexes=[{
                         "IndexName": "feed",
                         "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "feed", "KeyType": "RANGE"}],
                         "Projection": {"ProjectionType": "ALL"}}])
    for _ in range(100):
        if ddb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE":
            return
        time.sleep(0.05)
    raise RuntimeError("table %s never became active" % name)


def count_items(ddb, table):
    """Item rows only (tenantry also mirrors each tenant's own row)."""
    n, kw = 0, {"TableName": table, "Select": "COUNT",
                "FilterExpression": "begins_with(sk, :i)",
                "ExpressionAttributeValues": {":i": {"S": "ITEM#"}}}
    while True:
        r = ddb.scan(**kw)
        n += r["Count"]
        if "LastEvaluatedKey" not in r:
            return n
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]


def object_bytes(s3, bucket, prefix=""):
    total, kw = 0, {"Bucket": bucket, "Prefix": prefix}
    while True:
        r = s3.list_objects_v2(**kw)
        total += sum(o["Size"] for o in r.get("Contents", []))
        if not r.get("IsTruncated"):
            return total
        kw["ContinuationToken"] = r["NextContinuationToken"]


# ---- the backlog, made once and copied for each client -------------------------------

class Backlog:
    def __init__(self, root):
        self.root = root
        self.items_dir = os.path.join(root, "items-data")
        self.files_dir = os.path.join(root, "files-data")
        self.files_src = os.path.join(root, "files-src")
        self.small_dir = os.path.join(root, "small-data")
        self.small_src = os.path.join(root, "small-src")
        self.big_dir = os.path.join(root, "big-data")
        self.big_src = os.path.join(root, "big-src")
        self.item_bytes = sum(len(bench_docs.doc(i)) for i in range(N_ITEMS))
        self.sizes = bench_docs.file_sizes(N_FILES)
        self.file_bytes = sum(self.sizes)

    @staticmethod
    def _store(data):
        env = dict(os.environ, TENANTRY_DATA=data)
        subprocess.run([TENANTRY, "init"], env=env, check=True, capture_output=True)
        subprocess.run([TENANTRY, "tenant", "create", "bench"], env=env, check=True,
                       capture_output=True)

    def make_items(self):
        self._store(self.items_dir)
        sql = ["BEGIN;"] + ["INSERT INTO items (id, data) VALUES ('%s', '%s');"
                            % (bench_docs.item_id(i), bench_docs.doc(i)) for i in range(N_ITEMS)]
        sql.append("COMMIT;")
        p = subprocess.run([TENANTRY, "sql", "--data", self.items_dir, "--tenant", "bench"],
                           input="\n".join(sql) + "\n", capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("loading items: %s" % p.stderr[-300:])

    def _files(self, data, src, sizes, name):
        self._store(data)
        os.makedirs(src)
        st = awslib.Store(data)
        try:
            rnd = open("/dev/urandom", "rb")
            for i, size in enumerate(sizes):
                blob = rnd.read(size)
                fname = name % i if "%" in name else name
                st.put_file("bench", fname, blob)
                with open(os.path.join(src, fname), "wb") as f:
                    f.write(blob)
            rnd.close()
        finally:
            st.close()

    def make_files(self):
        self._files(self.files_dir, self.files_src, self.sizes, "f%04d.bin")

    def make_small(self):
        self._files(self.small_dir, self.small_src, [4096] * N_SMALL, "s%05d.bin")

    def make_big(self):
        self._files(self.big_dir, self.big_src, [BIG_MB << 20], "big.bin")


# ---- one client, one server, one link ----------------------------------------------

class Failed(Exception):
    pass


class Result:
    def __init__(self, wall, cpu, done, total, finished, stats):
        self.finished = finished
        frac = done / total if total else 1.0
        if not finished and frac <= 0:
            raise RuntimeError("no progress within the budget")
        self.wall = wall if finished else wall / frac
        self.cpu = cpu if finished else cpu / frac
        self.frac = frac
        self.stats = stats or {}

    def fmt(self):
        return "%s%.1f s" % ("" if self.finished else "est. ", self.wall)


def own_count(client, what, data, own_done, total):
    """What a stopped client says it sent: boto3's progress, or the rows and
    bytes tenantry no longer has pending."""
    if client == "boto3" and own_done is not None:
        return own_done
    if client == "tenantry" and data:
        p = subprocess.run([TENANTRY, "sync-status", "--json", "--data", data],
                           capture_output=True, text=True)
        st = json.loads(p.stdout)
        if what == "items":
            return total - st["pending"]
        return total - st["pending_bytes"]
    raise RuntimeError("no count for %s" % client)


def run_budget(args, env, budget):
    """Runs a client for at most budget seconds: (wall, cpu, finished, stdout)."""
    c0, t0 = child_cpu(), time.perf_counter()
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=budget)
        finished = True
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        finished = False
    wall, cpu = time.perf_counter() - t0, child_cpu() - c0
    if finished and p.returncode != 0:
        # Counted by the caller (what reached the server), then raised.
        return wall, cpu, False, Failed("%s exited %d after %.1f s: %s" % (
            " ".join(os.path.basename(a) for a in args[:3]), p.returncode, wall,
            (err.strip() or out.strip())[-200:]))
    return wall, cpu, finished, out


def tenantry_env(url, bucket, table, data, mode):
    env = awslib.sync_env(url, bucket, table)
    # The engine's defaults: no test overrides of attempts or backoff.
    env.pop("TENANTRY_SYNC_ATTEMPTS", None)
    env.pop("TENANTRY_SYNC_BACKOFF_MS", None)
    env["TENANTRY_DATA"] = data
    if mode == "transact":
        env["TENANTRY_SYNC_TRANSACT"] = "1"
    elif mode == "single":
        env["TENANTRY_SYNC_SINGLE_WRITER"] = "1"
    return env


def tenantry_cmd(tag):
    cmd = [TENANTRY, "sync", "--once"]
    if PERF:
        os.makedirs(PERF, exist_ok=True)
        cmd = ["perf", "record", "-g", "-q", "-o", os.path.join(PERF, "sync-%s.data" % tag),
               "--"] + cmd
    return cmd


def measure(profile, server_kind, client, backlog, what, mode="default"):
    """what: items, files, small, big.  client: tenantry, boto3, awscli."""
    budget = BUDGET if LINKS[profile] and any(LINKS[profile]) else BUDGET_LOCAL
    server = start_server(server_kind)
    work = tempfile.mkdtemp(prefix="tn-bench-sync-")
    link = None
    own_done = None
    data = None
    try:
        ddb, s3 = clients(server.url)
        table, bucket = "bench", "bench-%d" % os.getpid()
        create_table(ddb, table)
        if server_kind == "moto":
            s3.create_bucket(Bucket=bucket)
        src = {"items": backlog.items_dir, "files": backlog.files_dir,
               "small": backlog.small_dir, "big": backlog.big_dir}[what]
        files_src = {"files": backlog.files_src, "small": backlog.small_src,
                     "big": backlog.big_src}.get(what)
        total = {"items": N_ITEMS, "files": backlog.file_bytes, "small": N_SMALL * 4096,
                 "big": BIG_MB << 20}[what]
        link = Link(profile, server, budget + 600)
        if client == "tenantry":
            data = os.path.join(work, "data")
            shutil.copytree(src, data)
            env = tenantry_env(link.url, bucket, table, data, mode)
            if server_kind != "moto":  # no S3 on dynalite: items only
                env["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9"
            wall, cpu, finished, out = run_budget(
                tenantry_cmd("%s-%s-%s-%s" % (profile, server_kind, what, mode)), env, budget)
        elif client == "boto3":
            prog = os.path.join(work, "progress")
            wall0, cpu0, finished, out = run_budget(
                [sys.executable, os.path.join(HERE, "boto3_items.py"), link.url, table,
                 str(N_ITEMS), prog], dict(os.environ), budget)
            try:
                with open(prog) as f:
                    state, wall, cpu = f.read().split()
                wall, cpu = float(wall), float(cpu)
            except (OSError, ValueError):
                state, wall, cpu = "0", wall0, cpu0
            finished = finished and state == "done"
            # Stopped early: its own count goes with its own clock.
            own_done = None if finished or not state.isdigit() else int(state)
        else:  # the aws CLI
            verb = "cp" if what == "big" else "sync"
            source = os.path.join(files_src, "big.bin") if what == "big" else files_src
            dest = "s3://%s/awscli/%s" % (bucket, "big.bin" if what == "big" else "")
            env = awslib.sync_env(link.url, bucket, table)
            wall, cpu, finished, out = run_budget(
                [AWS, "s3", verb, source, dest, "--endpoint-url", link.url, "--only-show-errors"],
                env, budget)
        stats = link.stop()
        # What reached the server, read back directly (not through the link).
        try:
            done = count_items(ddb, table) if what == "items" else object_bytes(s3, bucket)
        except Exception as e:  # the server did not survive the stop
            if finished:
                raise
            done = own_count(client, what, data if client == "tenantry" else None, own_done, total)
            log("  server unreadable after the stop (%s): the client's own count, %d" % (
                type(e).__name__, done))
        if isinstance(out, Failed):
            raise Failed("%s; %d of %d %s had reached the server" % (
                out, done, total, "items" if what == "items" else "bytes"))
        if client == "boto3" and own_done is not None:
            done = min(done, own_done)
        if finished and done != total:
            raise Failed("%s %s on %s: %d of %d reached the server"
                               % (client, what, profile, done, total))
        return Result(wall, cpu, min(done, total), total, finished, stats)
    finally:
        if link:
            link.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


# ---- write units per request, as each server reports them ----------------------------

def write_units(server_kind):
    """ConsumedCapacity per item for each request form, as the server reports
    it (ReturnConsumedCapacity=TOTAL), for items of the benchmark's size."""
    server = start_server(server_kind)
    out = {}
    try:
        ddb, _ = clients(server.url)
        create_table(ddb, "units")
        from boto3.dynamodb.types import TypeSerializer
        ser = TypeSerializer()

        def item(i):
            return {"pk": {"S": BOTO_TENANT}, "sk": {"S": "ITEM#" + bench_docs.item_id(i)},
                    "version": {"N": str(i + 1)}, "updated_at": {"S": "2026-01-01T00:00:00.000Z"},
                    "deleted": {"BOOL": False}, "data": ser.serialize(json.loads(bench_docs.doc(i), parse_float=Decimal))}
        cond = {"ConditionExpression": "attribute_not_exists(pk) OR version < :v"}

        def units(r):
            cc = r.get("ConsumedCapacity")
            if isinstance(cc, list):
                return sum(c.get("CapacityUnits", 0) for c in cc) if cc else None
            return cc.get("CapacityUnits") if cc else None

        r = ddb.put_item(TableName="units", Item=item(0), ReturnConsumedCapacity="TOTAL",
                         ExpressionAttributeValues={":v": {"N": "1"}}, **cond)
        out["PutItem (conditional)"] = units(r)
        r = ddb.batch_write_item(RequestItems={"units": [{"PutRequest": {"Item": item(i)}}
                                                         for i in range(100, 125)]},
                                 ReturnConsumedCapacity="TOTAL")
        u = units(r)
        out["BatchWriteItem (25)"] = None if u is None else u / 25
        try:
            r = ddb.transact_write_items(
                TransactItems=[{"Put": dict(TableName="units", Item=item(i),
                                            ExpressionAttributeValues={":v": {"N": str(i + 1)}},
                                            **cond)} for i in range(200, 225)],
                ReturnConsumedCapacity="TOTAL")
            u = units(r)
            out["TransactWriteItems (25)"] = None if u is None else u / 25
        except Exception as e:  # dynalite: no transactions
            out["TransactWriteItems (25)"] = "unsupported (%s)" % type(e).__name__
    finally:
        server.stop()
    return out


# ---- the report --------------------------------------------------------------------------

RESULTS = {}


def remember(profile, key, r):
    RESULTS[(profile, key)] = r


def calibrate(profile):
    """Measures the emulated link itself against a trivial sink: the time of
    a 1-byte request on a new connection (expected: two round trips, the
    handshake and the request) and the rate of a bulk upload."""
    import socket
    import threading
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    port = ls.getsockname()[1]

    def serve():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            with c:
                hdr = c.recv(16)
                if not hdr:
                    continue
                want, got = int(hdr.split(b" ")[0]), len(hdr)
                while got < want:
                    b = c.recv(1 << 20)
                    if not b:
                        break
                    got += len(b)
                c.sendall(b"k")
    threading.Thread(target=serve, daemon=True).start()

    class Sink:
        pass
    sink = Sink()
    sink.port, sink.url = port, None
    link = Link(profile, sink, 300)
    lport = int(link.url.rsplit(":", 1)[1])

    def one(nbytes):
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", lport)) as c:
            c.sendall(("%015d " % nbytes).encode()[:16] + b"x" * max(0, nbytes - 16))
            c.recv(1)
        return time.perf_counter() - t0

    try:
        small = min(one(16) for _ in range(3))
        d, up, _ = LINKS[profile]
        size = int(up * 1000 / 8 * 4) if up else 64 << 20  # about 4 s of the link
        bulk = one(size)
        rtt = 4 * d / 1000.0
        rate = size * 8 / max(bulk - small, 1e-6) / 1e6
        print("  link check: 1-byte request on a new connection %.1f ms (expected %.0f); "
              "%.1f MB upload %.2f s = %.1f Mbit/s%s" % (
                  small * 1000, rtt * 1000, size / 1e6, bulk, rate,
                  " (expected %.1f)" % (up / 1000.0) if up else " (loopback, no cap)"))
        metric("%s.link.request_ms" % profile, small * 1000, "ms")
        metric("%s.link.mbit_s" % profile, rate, "Mbit/s")
    finally:
        link.stop()
        ls.close()


def physical_limit(profile, nbytes):
    d, up, _ = LINKS[profile]
    return nbytes * 8 / (up * 1000) + 4 * d / 1000.0


def wire(r):
    s = r.stats
    if not s:
        return ""
    ops = ",".join("%s %d" % kv for kv in sorted(s.get("ops", {}).items()))
    return "%d conns, %d req%s, up %.1f MB, down %.1f MB; linkem CPU %.2f s" % (
        s.get("connections", 0), s.get("requests", 0), " (" + ops + ")" if ops else "",
        s.get("up_bytes", 0) / 1e6, s.get("down_bytes", 0) / 1e6, s.get("cpu_s", 0))


def main():
    have_dynalite = os.path.exists(DYNALITE) and shutil.which("node")
    log("sync benchmark: profiles %s; budget %d s per client on an emulated link"
        % (",".join(PROFILES), BUDGET))
    root = tempfile.mkdtemp(prefix="tn-bench-backlog-")
    try:
        bl = Backlog(root)
        print("backlog: %d items, %.2f MB of JSON documents; %d files from 4 KiB to 4 MiB, %.1f MiB"
              % (N_ITEMS, bl.item_bytes / 1e6, N_FILES, bl.file_bytes / 2**20))
        if not have_dynalite:
            print("!! SKIPPED: the dynalite rows (dynalite is not installed: `npm install dynalite` "
                  "into %s/npm failed or npm is missing); items are measured on moto only"
                  % BUILD)
        if N_ITEMS:
            bl.make_items()
        if N_FILES:
            bl.make_files()
        for profile in PROFILES:
            if profile not in LINKS:
                raise SystemExit("unknown profile %s" % profile)
            print("\n== sync, %s%s" % (profile, ": " + LABEL[profile]))
            run_profile(profile, bl, have_dynalite)
        if "direct" in PROFILES and (N_SMALL or BIG_MB):
            print("\n== sync, direct: the earlier file rows (moto)")
            if N_SMALL:
                bl.make_small()
                t = measure("direct", "moto", "tenantry", bl, "small")
                a = measure("direct", "moto", "awscli", bl, "small")
                row("%d x 4 KiB files" % N_SMALL, "tenantry", t, "aws s3 sync", a)
                metric("direct.moto.small4k.speed", a.wall / t.wall, "x", ">= 1.5")
                metric("direct.moto.small4k.cpu", t.cpu / a.cpu, "x", "")
            if BIG_MB:
                bl.make_big()
                t = measure("direct", "moto", "tenantry", bl, "big")
                a = measure("direct", "moto", "awscli", bl, "big")
                row("one %d MiB file" % BIG_MB, "tenantry", t, "aws s3 cp", a)
                metric("direct.moto.big.speed", a.wall / t.wall, "x", ">= 1.0")
                metric("direct.moto.big.mibs", BIG_MB / t.wall, "MiB/s", "")
                metric("direct.moto.big.cpu", t.cpu / a.cpu, "x", "")
        if "pass" in PROFILES and "direct" in PROFILES:
            print("\n== linkem pass-through (no delay, no cap) against direct, same clients: "
                  "time through linkem / time direct (1.00 = no cost)")
            for (profile, key), r in sorted(RESULTS.items()):
                d = RESULTS.get(("direct", key))
                if profile != "pass" or d is None:
                    continue
                print("  %-34s direct %-12s pass %-12s %.2fx   (client CPU %.2f / %.2f s; "
                      "linkem CPU %.2f s)" % (key, d.fmt(), r.fmt(), r.wall / d.wall, d.cpu, r.cpu,
                                              r.stats.get("cpu_s", 0)))
                metric("linkem.pass_vs_direct.%s" % key.replace(" ", "_"), r.wall / d.wall, "x")
        if N_ITEMS:
            print("\n== write units per item, as each server reports them (ReturnConsumedCapacity)")
            for kind in ["moto"] + (["dynalite"] if have_dynalite else []):
                for form, u in write_units(kind).items():
                    print("  %-9s %-26s %s" % (kind, form, u if u is not None else
                                                "not reported"))
            print("  AWS (documented): 1 write unit per standard write of up to 1 KB "
                  "(PutItem, each BatchWriteItem put), 2 per transactional write")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def row(what, name, t, ref_name, ref):
    print("  %-34s %-9s %-13s cpu %6.2f s | %-18s %-13s cpu %6.2f s | speed %.2fx cpu %.2fx"
          % (what, name, t.fmt(), t.cpu, ref_name, ref.fmt(), ref.cpu, ref.wall / t.wall,
             t.cpu / ref.cpu if ref.cpu else 0))
    if t.stats:
        print("      tenantry wire: %s" % wire(t))
    if ref.stats:
        print("      %s wire: %s" % (ref_name, wire(ref)))


def run_profile(profile, bl, have_dynalite):
    link = LINKS[profile]
    if link is not None:
        calibrate(profile)
    emulated = link is not None and any(link)
    goal_speed = ">= 1.5" if emulated else ""
    if N_ITEMS:
        servers = ["moto"] + (["dynalite"] if have_dynalite and profile != "pass" else [])
        for kind in servers:
            try:
                ref = measure(profile, kind, "boto3", bl, "items")
            except Exception as e:
                print("  !! FAILED: %d items, boto3 batch_writer, %s: %s; the %s rows are skipped"
                      % (N_ITEMS, kind, e, kind))
                continue
            remember(profile, "%s items boto3" % kind, ref)
            log("  %s %s boto3 %s" % (profile, kind, ref.fmt()))
            metric("%s.%s.items.boto3.s" % (profile, kind), ref.wall, "s")
            metric("%s.%s.items.boto3.cpu" % (profile, kind), ref.cpu, "s")
            modes = ["default", "transact", "single"] if kind == "moto" else ["default", "single"]
            if profile == "pass":  # the proof needs each client once, not every mode
                modes = ["default", "single"] if kind == "moto" else []
            for mode in modes:
                label = {"default": "default (conditional)", "transact": "TRANSACT=1",
                         "single": "SINGLE_WRITER=1"}[mode]
                try:
                    t = measure(profile, kind, "tenantry", bl, "items", mode)
                except Exception as e:  # Failed, or the harness: loud, and go on
                    print("  !! FAILED: %d items %s, %s: %s" % (N_ITEMS, label, kind, e))
                    continue
                remember(profile, "%s items tenantry %s" % (kind, mode), t)
                row("%d items %s, %s" % (N_ITEMS, label, kind), "tenantry", t,
                    "boto3 batch_writer", ref)
                key = "%s.%s.items.%s" % (profile, kind, mode)
                metric(key + ".s", t.wall, "s")
                metric(key + ".speed", ref.wall / t.wall, "x",
                       goal_speed if mode == "default" else "")
                metric(key + ".cpu", t.cpu / ref.cpu, "x", "<= 0.1")
                metric(key + ".cpu_us_per_item", t.cpu / N_ITEMS * 1e6, "us")
            if kind == "dynalite" and profile != "pass":
                print("  !! SKIPPED on dynalite: TENANTRY_SYNC_TRANSACT=1 (dynalite has no "
                      "TransactWriteItems)")
        if emulated:
            lim = physical_limit(profile, bl.item_bytes)
            print("  physical limit for the items: %.2f MB / %d kbit/s + 2 RTT = %.1f s"
                  % (bl.item_bytes / 1e6, link[1], lim))
            metric("%s.items.limit.s" % profile, lim, "s")
    if N_FILES:
        try:
            t = measure(profile, "moto", "tenantry", bl, "files")
            a = measure(profile, "moto", "awscli", bl, "files")
        except Exception as e:
            print("  !! FAILED: %d files: %s" % (N_FILES, e))
            return
        remember(profile, "moto files tenantry", t)
        remember(profile, "moto files aws s3 sync", a)
        row("%d files, 4 KiB-4 MiB, moto" % N_FILES, "tenantry", t, "aws s3 sync", a)
        key = "%s.moto.files" % profile
        metric(key + ".s", t.wall, "s")
        metric(key + ".awscli.s", a.wall, "s")
        metric(key + ".speed", a.wall / t.wall, "x", goal_speed)
        metric(key + ".cpu", t.cpu / a.cpu, "x", "<= 0.1")
        if emulated:
            lim = physical_limit(profile, bl.file_bytes)
            print("  physical limit for the files: %.1f MiB / %d kbit/s + 2 RTT = %.1f s; "
                  "tenantry %.2fx of it, aws s3 sync %.2fx"
                  % (bl.file_bytes / 2**20, link[1], lim, t.wall / lim, a.wall / lim))
            metric("%s.files.limit.s" % profile, lim, "s")
            metric(key + ".vs_limit", t.wall / lim, "x", "<= 1.5")


if __name__ == "__main__":
    main()
