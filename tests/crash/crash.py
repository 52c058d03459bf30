#!/usr/bin/env python3
"""crash.py - the crash-cycle driver: `tenantry serve` with the sync engine on
against moto_server, client threads writing items and files for several
tenants at a steady rate, and SIGKILL at random moments, again and again.

Between the daemon and moto sits a small HTTP-aware forwarder that knows which
request is in flight (a DynamoDB write, an S3 PutObject, an UploadPart ...),
so a kill can be aimed: when a request of a kind arrives (before the remote
sees it), or when the remote's answer arrives (the remote applied it, the
daemon never learns).  Other kills come from a plain timer.

A second appliance (its own data directory, the same remote, through the
same forwarder) has joined the tenants; after each of the first appliance's
cycles it writes items of its own through its CLI while `sync --once` (a pull,
then a push) runs, SIGKILLed when a feed Query or an object GET reaches the
forwarder, or on a timer.  Then `check` is clean there and its acknowledged
writes are there exactly; both sync to completion and must hold the same rows
(versions, contents, tombstones) and bytes.  Every third cycle, and at the
end, a third data directory runs `tenantry restore`, SIGKILLed half way
(`check` must then exit 5 and say so), runs it again to completion, and must
equal the first appliance's store.

After every cycle: the daemon died by the SIGKILL this driver sent, not by
itself before it (a crash, a sanitizer's abort: its exit status or signal is
reported and fails the cycle); `tenantry check` is clean; every write
acknowledged with a 2xx is present through the HTTP API with exactly that
content and version (a write whose answer never came may be present or
absent; an acknowledged delete stays deleted); and the daemon restarted for
those checks exits 0 on SIGTERM.  At the end, after a final sync, DynamoDB and S3 are
read back with boto3 and compared with the store's rows exactly.

    tests/crash/crash.py --cycles N [--seed S]

The build directory comes from $TN_BUILD (default build).  The last line is
`N passed, N failed`: one test per cycle, plus the final comparison.
TN_CRASH_MODES=default,transact,single_writer narrows the sync modes drawn
from, TN_CRASH_KEEP=1 keeps the data directory, TN_CRASH_DEBUG=1 prints the
multipart requests of an upload left open.
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import awslib  # noqa: E402
import tnlib  # noqa: E402

TENANTS = ("acme", "globex", "initech")
SCOPES = "items:read,items:write,files:read,files:write"
MB = 1 << 20
PART_MB = 5                    # the smallest part S3 (and the engine) accept
BIG_FILE = 2 * PART_MB * MB + 123457   # three parts
DDB_WRITES = ("ddb:PutItem", "ddb:TransactWriteItems", "ddb:BatchWriteItem")
S3_UPLOADS = ("s3:put", "s3:part")
MODES = ("default", "transact", "single_writer")
PULL_READS = ("ddb:Query", "s3:get")   # a pull's feed page, a pulled file's bytes
B_IDS = 8                              # the second appliance's item ids per tenant


# ---- a forwarder in front of moto that knows what is in flight ------------------

def classify(method, target, headers):
    """What a request to the remote is: ddb:<Operation> or s3:<what>."""
    t = headers.get("x-amz-target", "")
    if t.startswith("DynamoDB_"):
        return "ddb:" + t.split(".", 1)[-1]
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query, keep_blank_values=True)
    if method == "PUT":
        return "s3:part" if "partNumber" in q else "s3:put"
    if method == "POST" and "uploads" in q:
        return "s3:create"
    if method == "POST" and "uploadId" in q:
        return "s3:complete"
    if method == "GET" and "uploads" in q:
        return "s3:list-uploads"
    if method == "DELETE":
        return "s3:abort" if "uploadId" in q else "s3:delete"
    if "x-amz-target" in headers:
        return "other:" + t
    return "s3:" + method.lower()


class Forwarder:
    """127.0.0.1:port -> moto.  Parses request heads (Content-Length bodies;
    libcurl sends one request at a time per connection), counts requests by
    kind, tracks the ones waiting for their answer, and can fire a trigger
    once: on the nth request of some kinds (before forwarding it) or on the
    first bytes of the nth answer to one (before passing them on)."""

    def __init__(self, target):
        self.target = target
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.counts = {}
        self.created = {}        # multipart upload id -> when the remote answered
        self.events = []         # (time, kind, target) of multipart requests
        self.waiting = {}        # conn id -> kind of its request awaiting an answer
        self.trigger = None      # (when, kinds, nth, fire)
        self.fired = None        # (when, kind) once the trigger went off
        self.running = True
        self.next_id = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, when, kinds, nth, fire):
        with self.lock:
            self.trigger = [when, tuple(kinds), nth, fire]
            self.fired = None

    def disarm(self):
        with self.lock:
            self.trigger = None
            fired, self.fired = self.fired, None
            return fired

    def in_flight(self):
        with self.lock:
            return sorted(set(self.waiting.values()))

    def _hit(self, when, kind):
        """True when the armed trigger fires on this event (fired under the lock,
        so nothing else is forwarded meanwhile)."""
        with self.lock:
            t = self.trigger
            if not t or t[0] != when or kind not in t[1]:
                return False
            t[2] -= 1
            if t[2] > 0:
                return False
            self.trigger = None
            self.fired = (when, kind)
            t[3]()
            return True

    def stop(self):
        self.running = False
        try:
            self.lsock.close()
        except OSError:
            pass

    def _accept(self):
        awslib.accept_loop(self.lsock, lambda: self.running, self._start, poll=0.2)

    def _start(self, c):
        with self.lock:
            self.next_id += 1
            cid = self.next_id
        threading.Thread(target=self._conn, args=(cid, c), daemon=True).start()

    def _conn(self, cid, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            c.close()
            return
        head = b""
        body_left = 0
        opaque = False   # a body without Content-Length: stop parsing
        kind = None      # the request awaiting its answer
        try:
            while self.running:
                r, _, _ = select.select([c, u], [], [], 0.5)
                if c in r:
                    data = c.recv(262144)
                    if not data:
                        return
                    while data:
                        if opaque or body_left:
                            n = len(data) if opaque else min(body_left, len(data))
                            u.sendall(data[:n])
                            body_left -= 0 if opaque else n
                            data = data[n:]
                            continue
                        head += data
                        data = b""
                        end = head.find(b"\r\n\r\n")
                        if end < 0:
                            continue
                        raw, data, head = head[:end + 4], head[end + 4:], b""
                        lines = raw.decode("latin-1").split("\r\n")
                        method, target = (lines[0].split(" ") + ["", ""])[:2]
                        hdrs = {}
                        for ln in lines[1:]:
                            if ":" in ln:
                                k, v = ln.split(":", 1)
                                hdrs[k.strip().lower()] = v.strip()
                        kind = classify(method, target, hdrs)
                        if "content-length" in hdrs:
                            body_left = int(hdrs["content-length"])
                        elif hdrs.get("transfer-encoding"):
                            opaque = True
                        with self.lock:
                            self.counts[kind] = self.counts.get(kind, 0) + 1
                            if kind in ("s3:create", "s3:part", "s3:complete", "s3:abort"):
                                self.events.append((time.time(), kind, target))
                            self.waiting[cid] = kind
                        if self._hit("request", kind):
                            return
                        u.sendall(raw)
                if u in r:
                    data = u.recv(262144)
                    if not data:
                        return
                    with self.lock:
                        answered = self.waiting.pop(cid, None)
                    if answered == "s3:create":
                        m = re.search(rb"<UploadId>([^<]+)</UploadId>", data)
                        if m:
                            with self.lock:
                                self.created[m.group(1).decode()] = time.time()
                    if answered and self._hit("answer", answered):
                        return
                    c.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            with self.lock:
                self.waiting.pop(cid, None)
            for s in (c, u):
                try:
                    s.close()
                except OSError:
                    pass


# ---- the model of what the clients wrote ------------------------------------------

class Key:
    """One item id or file name of one tenant, written by one thread only.
    base: the state verified after the last cycle (None: absent, else
    (version, content)); acked: the last acknowledged write since then
    (same shape, or "absent"); unknown: contents of writes after it whose
    answer never came ("absent" for a delete)."""

    def __init__(self):
        self.base = None
        self.acked = None
        self.unknown = []

    def believed(self):
        """The state the clients must assume (None when it may be absent)."""
        if self.unknown:
            return None
        st = self.acked if self.acked is not None else self.base
        return None if st == "absent" else st

    def last_version(self):
        for st in (self.acked, self.base):
            if st is not None and st != "absent":
                return st[0]
        return 0


class Tenant:
    def __init__(self, name, key):
        self.name = name
        self.key = key
        self.id = None
        self.token = None
        self.items = {}   # id -> Key
        self.files = {}   # name -> Key
        self.blobs = {}   # sha256 -> bytes (the contents the clients sent)
        self.new_seq = 0
        self.sent = {}    # item id -> every content the clients sent for it
        self.b = {}       # the second appliance's item ids -> BKey


class BKey:
    """One item id the second appliance writes (through the CLI, so every
    write is acknowledged): state None (never written), "absent", or
    (version, content); versions: every (version, content) it wrote."""

    def __init__(self):
        self.state = None
        self.versions = {}


def sha(b):
    return hashlib.sha256(b).hexdigest()


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class Writer(threading.Thread):
    """One tenant's client: a steady stream of item puts (the same ids again,
    so versions climb), creates, deletes, file uploads (some big enough for a
    multipart upload) and file deletes, until stopped or the daemon dies."""

    def __init__(self, drv, t, port, rnd, big_ok):
        """big_ok: how many multipart-sized uploads this writer may send."""
        super().__init__(daemon=True)
        self.drv, self.t, self.port, self.rnd, self.big_ok = drv, t, port, rnd, big_ok
        self.stop = threading.Event()
        self.busy = False        # a write in flight
        self.busy_at_kill = False
        self.acked = self.unknown = 0
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        """(status, body bytes), or None when no answer came."""
        h = {"Authorization": "Bearer " + self.t.token}
        h.update(headers or {})
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
            data = r.read()
            if r.will_close:
                self.conn.close()
                self.conn = None
            return r.status, data
        except (OSError, http.client.HTTPException):
            if self.conn:
                self.conn.close()
            self.conn = None
            return None

    def write(self, k, method, path, body, headers, content):
        """One write: content is what the key holds if it succeeded (None:
        absent).  Returns False once the daemon is gone."""
        k.unknown.append("absent" if content is None else content)
        self.busy = True
        got = self.request(method, path, body, headers)
        self.busy = False
        if got is None:
            self.unknown += 1
            with self.drv.lock:
                self.drv.unknown_writes += 1
            return False
        status, data = got
        k.unknown.pop()
        if content is None:
            if status == 404 and k.believed() is not None:
                self.drv.violation("%s %s: 404, but the acknowledged write %r is not there" % (
                    self.t.name, path, k.believed()[1][:80]))
            if status in (204, 404):
                k.acked, k.unknown = "absent", []
            else:
                self.drv.violation("%s %s %s: %d %r" % (self.t.name, method, path, status, data[:200]))
                return True
        elif status in (200, 201):
            v = int(json.loads(data)["version"])  # a decimal string
            if v <= k.last_version():
                self.drv.violation("%s %s: version %d not above %d" % (self.t.name, path, v,
                                                                       k.last_version()))
            k.acked, k.unknown = (v, content), []
        else:
            self.drv.violation("%s %s %s: %d %r" % (self.t.name, method, path, status, data[:200]))
            return True
        self.acked += 1
        with self.drv.lock:
            self.drv.acked_writes += 1
        return True

    def one(self):
        r, t = self.rnd, self.t
        op = r.random()
        if op < 0.45:       # replace one of a few ids: versions climb
            iid = "i%02d" % r.randrange(24)
            doc = {"t": t.name, "id": iid, "n": r.randrange(10 ** 12),
                   "pad": "x" * r.randrange(300), "l": [r.randrange(9), {"k": "v"}]}
            k = t.items.setdefault(iid, Key())
            t.sent.setdefault(iid, set()).add(canon(doc))
            return self.write(k, "PUT", "/v1/items/" + iid, json.dumps({"data": doc}),
                              {"Content-Type": "application/json"}, canon(doc))
        if op < 0.55:       # a new id
            t.new_seq += 1
            iid = "n%05d" % t.new_seq
            doc = {"t": t.name, "new": t.new_seq}
            k = t.items.setdefault(iid, Key())
            t.sent.setdefault(iid, set()).add(canon(doc))
            return self.write(k, "POST", "/v1/items", json.dumps({"id": iid, "data": doc}),
                              {"Content-Type": "application/json"}, canon(doc))
        if op < 0.68:       # delete an item that is (or may be) there
            ids = [i for i, k in t.items.items() if k.believed() is not None or k.unknown]
            if not ids:
                return True
            iid = r.choice(sorted(ids))
            return self.write(t.items[iid], "DELETE", "/v1/items/" + iid, None, None, None)
        if op < 0.90:       # upload a file
            if self.big_ok and r.random() < 0.15:
                self.big_ok -= 1
                name, size = "big/%d.bin" % r.randrange(2), BIG_FILE + r.randrange(4096)
            else:
                name, size = "f/%02d.dat" % r.randrange(12), r.choice((0, 1, 100, 5000, 70000))
            data = r.randbytes(size)
            digest = sha(data)
            t.blobs[digest] = data
            k = t.files.setdefault(name, Key())
            return self.write(k, "PUT", "/v1/files/" + name, data,
                              {"Content-Type": "application/octet-stream"}, digest)
        names = [n for n, k in t.files.items() if k.believed() is not None or k.unknown]
        if not names:
            return True
        name = r.choice(sorted(names))
        return self.write(t.files[name], "DELETE", "/v1/files/" + name, None, None, None)

    def run(self):
        while not self.stop.is_set():
            if not self.one():
                break
            self.stop.wait(self.rnd.uniform(0.002, 0.012))
        if self.conn:
            self.conn.close()


# ---- the driver ---------------------------------------------------------------------

class Driver:
    def __init__(self, seed, log=print):
        self.seed = seed
        self.rnd = random.Random(seed)
        self.log = log
        self.lock = threading.Lock()
        self.violations = []
        self.acked_writes = self.unknown_writes = 0
        # Each count goes up only when its event was seen: "kills" when the
        # daemon was found dead by the SIGKILL this driver sent, "clean_stops"
        # when it exited 0 on SIGTERM, "cycles" when a cycle ran to its end.
        self.stats = {"cycles": 0, "kills": 0, "self_deaths": 0, "clean_stops": 0,
                      "kill_http": 0, "kill_ddb": 0, "kill_upload": 0,
                      "kill_answered": 0, "kill_multipart_open": 0, "kill_timer": 0,
                      "rows_compared": 0, "objects_compared": 0, "orphan_temp_files": 0,
                      "kill_pull": 0,
                      # The second appliance: "b_kills" when its sync was found dead
                      # by our SIGKILL (by what the forwarder saw in flight:
                      # b_kill_query, b_kill_get, else b_kill_timer), "b_synced"
                      # when one finished before any kill, "b_writes" acknowledged.
                      "b_cycles": 0, "b_kills": 0, "b_kill_query": 0, "b_kill_get": 0,
                      "b_kill_timer": 0, "b_synced": 0, "b_writes": 0, "ab_rows_equal": 0,
                      # Restores: "restore_kills" when killed by us, "restore_unfinished"
                      # when check then said so (exit 5), "restore_killed_after_the_end"
                      # when the kill came after its last step, "restores" when one
                      # completed and equalled the others.
                      "restores": 0, "restore_kills": 0, "restore_unfinished": 0,
                      "restore_killed_after_the_end": 0,
                      "restored_rows_compared": 0}
        self.sigkilled = set()   # pids this driver sent SIGKILL
        self.modes = {}
        self.kill_times = []
        self.t0 = time.time()
        # TN_CRASH_MODES=default,transact narrows the sync modes drawn from.
        self.allowed_modes = [m for m in os.environ.get("TN_CRASH_MODES", ",".join(MODES))
                              .split(",") if m in MODES] or list(MODES)
        self.dir = tnlib.tmpdir("tn-crash-")
        self.data = os.path.join(self.dir, "data")
        self.moto = awslib.Moto()
        self.fwd = Forwarder(self.moto.port)
        self.table, self.bucket = "crash", "crash-%d" % os.getpid()
        self.env = awslib.sync_env(self.fwd.url, self.bucket, self.table, {
            "TENANTRY_DATA": self.data,
            "TENANTRY_SYNC_INTERVAL": "1",
            "TENANTRY_SYNC_EARLY_ROWS": "20",
            "TENANTRY_SYNC_MULTIPART_MB": str(PART_MB),
            "TENANTRY_SYNC_PART_MB": str(PART_MB),
            # One stream for the parts, each about a quarter of a second.
            "TENANTRY_SYNC_BANDWIDTH": str(24 * MB),
        })
        # The second appliance (its own store, the same remote, through the
        # forwarder) and the directory restores go to.
        self.data_b = os.path.join(self.dir, "data-b")
        self.env_b = dict(self.env, TENANTRY_DATA=self.data_b)
        self.data_c = os.path.join(self.dir, "data-c")
        self.env_c = dict(self.env, TENANTRY_DATA=self.data_c)
        self.ddb, self.s3 = awslib.clients(self.moto.url)
        self.daemon = None
        self.tenants = []

    def violation(self, what):
        with self.lock:
            self.violations.append(what)

    def tn(self, args, env=None, timeout=120):
        return subprocess.run([tnlib.TENANTRY] + list(args), capture_output=True, text=True,
                              env=env or self.env, timeout=timeout)

    def setup(self):
        p = self.tn(["init"])
        if p.returncode:
            raise RuntimeError("init: " + p.stderr)
        for name in TENANTS:
            p = self.tn(["tenant", "create", name])
            if p.returncode:
                raise RuntimeError("tenant create: " + p.stderr)
            p = self.tn(["key", "create", "--tenant", name, "--scopes", SCOPES])
            if p.returncode:
                raise RuntimeError("key create: " + p.stderr)
            self.tenants.append(Tenant(name, p.stdout.strip()))
        p = self.tn(["tenant", "list", "--json"])
        ids = {t["name"]: t["id"] for t in json.loads(p.stdout)}
        for t in self.tenants:
            t.id = ids[t.name]
        self.s3.create_bucket(Bucket=self.bucket)
        p = self.tn(["remote", "init"])
        if p.returncode:
            raise RuntimeError("remote init: " + p.stdout + p.stderr)
        # The first sync sends each tenant's own row; then the second
        # appliance joins them.
        p = self.tn(["sync", "--once"])
        if p.returncode:
            raise RuntimeError("first sync: " + p.stdout + p.stderr)
        p = self.tn(["init"], env=self.env_b)
        if p.returncode:
            raise RuntimeError("init b: " + p.stderr)
        for t in self.tenants:
            p = self.tn(["tenant", "join", t.id], env=self.env_b)
            if p.returncode:
                raise RuntimeError("tenant join: " + p.stdout + p.stderr)

    def start(self, mode):
        env = dict(self.env)
        if mode == "transact":
            env["TENANTRY_SYNC_TRANSACT"] = "1"
        elif mode == "single_writer":
            env["TENANTRY_SYNC_SINGLE_WRITER"] = "1"
        self.daemon = tnlib.start_daemon(self.data, ["--quiet", "--rate", "100000", "--burst",
                                                     "100000"], env=env, wait=30)
        for t in self.tenants:
            c = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=30)
            c.request("POST", "/v1/auth", body=json.dumps({"api_key": t.key}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status != 200:
                raise RuntimeError("auth: %d %r" % (r.status, body))
            t.token = json.loads(body)["token"]

    def kill(self):
        """SIGKILL by pid (also called from the forwarder, under its lock)."""
        d = self.daemon
        if d and d.proc.poll() is None:
            self.kill_times.append(time.time())
            try:
                os.kill(d.pid, signal.SIGKILL)
                self.sigkilled.add(d.pid)
            except ProcessLookupError:
                pass

    def how_it_ended(self, d):
        """None when the daemon d (waited for) died by this driver's SIGKILL,
        else what ended it: an exit status or another signal (a crash, a
        sanitizer's abort, the kernel's OOM kill), with the end of its log."""
        rc = d.proc.returncode
        if rc == -signal.SIGKILL and d.pid in self.sigkilled:
            return None
        if rc is None:
            why = "still running"
        elif rc < 0:
            why = "signal %s" % signal.Signals(-rc).name
        else:
            why = "exit status %d" % rc
        if rc == -signal.SIGKILL:
            why += ", not sent by this driver"
        return "%s; log: %s" % (why, d.log()[-800:].replace("\n", " | "))

    # -- one cycle --

    def cycle(self, n, suite, crash_signal=None, stop_signal=None, break_cursor=False):
        """One cycle: start, write, SIGKILL, check, restart, verify, SIGTERM.
        The daemon must die by the SIGKILL (not by itself before it) and exit 0
        on the SIGTERM.  For the driver's own test: crash_signal is sent to the
        daemon as if it crashed by itself during the writes, stop_signal just
        before the SIGTERM; either must fail the cycle.  Then the second
        appliance's turn (pull_cycle; break_cursor makes it skip a pull, which
        must fail the cycle), and every third cycle a restore."""
        r = self.rnd
        mode = r.choice(self.allowed_modes)
        self.modes[mode] = self.modes.get(mode, 0) + 1
        self.start(mode)
        d = self.daemon
        writers = [Writer(self, t, self.daemon.port, random.Random(r.random()), n % 2 == 1)
                   for t in self.tenants]
        for w in writers:
            w.start()
        try:
            self.run_until_kill(n, mode, writers, crash_signal)
        finally:
            self.kill()
            self.fwd.disarm()
            for w in writers:
                w.stop.set()
            for w in writers:
                w.join(60)
            if self.daemon:
                self.daemon.proc.wait(10)
                self.daemon = None
        why = self.how_it_ended(d)
        if why is None:
            self.stats["kills"] += 1
        else:
            self.stats["self_deaths"] += 1
        suite.check(why is None, "cycle %d: the daemon died by itself, not by our SIGKILL: %s"
                    % (n, why))
        self.check_store(suite)
        self.start(mode)
        try:
            self.verify_local(suite)
        finally:
            if stop_signal:
                os.kill(self.daemon.pid, stop_signal)
                self.daemon.proc.wait(10)
            rc = self.daemon.stop()
            if rc == 0:
                self.stats["clean_stops"] += 1
            suite.eq(rc, 0, "cycle %d: exit status of the daemon on SIGTERM after the checks (%s)"
                     % (n, self.daemon.log()[-400:].replace("\n", " | ")))
            self.daemon = None
        self.pull_cycle(n, suite, break_cursor=break_cursor)
        # A restore every third cycle, every ninth after the ninth (a restore
        # reads the whole remote, which grows with every cycle).
        if n % 3 == 0 and (n <= 9 or n % 9 == 0):
            self.restore_cycle(suite, "cycle %d" % n)
        self.stats["cycles"] += 1

    def run_until_kill(self, n, mode, writers, crash_signal=None):
        r = self.rnd
        # Where to aim the kill.
        aim = r.choice(("timer", "timer", "ddb-request", "ddb-answer", "upload-request",
                        "upload-answer", "part-answer", "complete-answer", "query-answer",
                        "get-request"))
        budget = r.uniform(0.3, 3.0)
        if aim != "timer":
            what, when = aim.split("-")
            kinds = {"ddb": DDB_WRITES, "upload": S3_UPLOADS, "part": ("s3:part",),
                     "complete": ("s3:complete",), "query": PULL_READS[:1],
                     "get": PULL_READS[1:]}[what]
            self.fwd.arm(when, kinds, r.randint(1, 3), self.kill)
            budget += 3.0
        end = time.time() + budget
        crash_at = time.time() + min(budget / 2, 0.5) if crash_signal else None
        while time.time() < end and self.daemon.proc.poll() is None:
            if crash_at and time.time() >= crash_at:
                os.kill(self.daemon.pid, crash_signal)  # not self.kill(): a crash of its own
                crash_at = None
            time.sleep(0.01)
        in_flight = self.fwd.in_flight()
        busy = any(w.busy for w in writers)
        self.kill()
        fired = self.fwd.disarm()
        self.daemon.proc.wait(10)
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(60)
        if fired:
            in_flight = sorted(set(in_flight) | {fired[1]})
            if fired[0] == "answer":
                self.stats["kill_answered"] += 1
        else:
            self.stats["kill_timer"] += 1
        if busy:
            self.stats["kill_http"] += 1
        if any(k in DDB_WRITES for k in in_flight):
            self.stats["kill_ddb"] += 1
        if any(k in S3_UPLOADS for k in in_flight):
            self.stats["kill_upload"] += 1
        if any(k in PULL_READS for k in in_flight):
            self.stats["kill_pull"] += 1
        open_uploads = self.sql("SELECT count(*) FROM _sync_uploads")[0][0]
        if open_uploads:
            self.stats["kill_multipart_open"] += 1
        self.log("%.3f cycle %d: mode %s, aim %s, fired %s, in flight %s, writes acked %d unknown %d%s"
                 % (time.time() - self.t0, n, mode, aim, fired, in_flight or "-", sum(w.acked for w in writers),
                    sum(w.unknown for w in writers),
                    ", multipart upload open" if open_uploads else ""))

    def sql(self, q, args=()):
        c = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "tenantry.db"), uri=True,
                            timeout=10)
        try:
            return c.execute(q, args).fetchall()
        finally:
            c.close()

    def check_store(self, suite):
        p = self.tn(["check"])
        suite.check(p.returncode == 0, "tenantry check: rc %d %s %s" % (p.returncode, p.stdout,
                                                                         p.stderr))

    def get(self, t, path):
        c = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=60)
        try:
            c.request("GET", path, headers={"Authorization": "Bearer " + t.token})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def listing(self, t, what):
        out, cursor = {}, None
        while True:
            path = "/v1/%s?limit=1000" % what
            if cursor:
                path += "&cursor=" + urllib.parse.quote(cursor, safe="")
            status, body = self.get(t, path)
            if status != 200:
                raise RuntimeError("list %s: %d" % (what, status))
            j = json.loads(body)
            for e in j[what]:
                out[e["id" if what == "items" else "name"]] = e
            cursor = j["next_cursor"]
            if not cursor:
                return out

    def verify_local(self, suite):
        """Every acknowledged write is there, exactly; unknown writes either way."""
        with self.lock:
            bad, self.violations = self.violations, []
        for v in bad:
            suite.check(False, v)
        for t in self.tenants:
            items = self.listing(t, "items")
            files = self.listing(t, "files")
            for iid, e in items.items():
                if iid in t.b:   # the second appliance's, pulled: one of its writes
                    got = (int(e["version"]), canon(e["data"]))
                    suite.check(t.b[iid].versions.get(got[0]) == got[1],
                                "%s: item %s of the second appliance is %s, which it never "
                                "wrote" % (t.name, iid, short(got)))
                elif iid not in t.items:
                    suite.check(False, "%s: item %s that nobody wrote" % (t.name, iid))
            for name in files:
                if name not in t.files:
                    suite.check(False, "%s: file %s that nobody wrote" % (t.name, name))
            for iid, k in t.items.items():
                e = items.get(iid)
                got = None if e is None else (int(e["version"]), canon(e["data"]))
                self.settle(suite, t, "item " + iid, k, got)
            for name, k in t.files.items():
                e = files.get(name)
                got = None
                if e is not None:
                    status, body = self.get(t, "/v1/files/" + urllib.parse.quote(name))
                    suite.check(status == 200, "%s: GET file %s: %d" % (t.name, name, status))
                    suite.check(sha(body) == e["sha256"] and len(body) == e["size"],
                                "%s: file %s bytes (%d, %s) differ from its record (%d, %s)" % (
                                    t.name, name, len(body), sha(body)[:12], e["size"],
                                    e["sha256"][:12]))
                    got = (int(e["version"]), sha(body))
                self.settle(suite, t, "file " + name, k, got)

    def settle(self, suite, t, what, k, got):
        """Compares the key's local state with the model, then makes it the base."""
        prev = k.acked if k.acked is not None else k.base
        prev = None if prev == "absent" else prev
        allowed = [prev]
        allowed += [None if u == "absent" else ("new", u) for u in k.unknown]
        ok = False
        for a in allowed:
            if a is None:
                ok = got is None
            elif a[0] == "new":
                ok = got is not None and got[1] == a[1] and got[0] > k.last_version()
            else:
                ok = got == a
            if ok:
                break
        suite.check(ok, "%s: %s is %s, want one of %s" % (
            t.name, what, short(got), ", ".join(short(a) for a in allowed)))
        if got is not None and got[0] < k.last_version():
            suite.check(False, "%s: %s went back from version %d to %d" % (
                t.name, what, k.last_version(), got[0]))
        k.base, k.acked, k.unknown = got, None, []

    # -- the second appliance and the restores --

    def rows(self, data):
        """{(tenant id, kind, key): (version, deleted, content)} of a store:
        content is the canonical JSON of an item, the SHA-256 of a file."""
        c = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "tenantry.db"), uri=True,
                            timeout=10)
        try:
            out = {}
            for tid, iid, v, d, doc in c.execute(
                    "SELECT t.id, i.id, i.version, i.deleted, i.data FROM _items i "
                    "JOIN _tenants t ON t.tid = i.tenant"):
                out[(tid, "item", iid)] = (v, bool(d), None if d else canon(json.loads(doc)))
            for tid, name, v, d, digest in c.execute(
                    "SELECT t.id, f.name, f.version, f.deleted, f.sha256 FROM _files f "
                    "JOIN _tenants t ON t.tid = f.tenant"):
                out[(tid, "file", name)] = (v, bool(d), None if d else digest)
            return out
        finally:
            c.close()

    def same_rows(self, suite, got, want, what):
        """Two row sets equal exactly; names at most five differing keys."""
        bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        suite.check(not bad, "%s: %d rows differ, e.g. %s" % (what, len(bad), "; ".join(
            "%r: %r vs %r" % (k, got.get(k), want.get(k)) for k in bad[:5])))
        return not bad

    def file_bytes_match(self, suite, data, rows, who):
        for (tid, kind, name), (_, deleted, digest) in sorted(rows.items()):
            if kind == "file" and not deleted:
                with open(os.path.join(data, "files", tid, name), "rb") as f:
                    got = sha(f.read())
                suite.check(got == digest, "%s: bytes of %s/%s are %s, the row says %s" % (
                    who, tid[:8], name, got[:12], digest[:12]))

    def b_writes(self, rnd, stop, out):
        """The second appliance's own writes, through its CLI while its sync
        runs: puts and deletes of a few ids per tenant; every one is
        acknowledged (exit 0 with the item, or 3 for a delete of nothing)."""
        for _ in range(8):
            if stop.is_set():
                break
            t = rnd.choice(self.tenants)
            iid = "b%02d" % rnd.randrange(B_IDS)
            k = t.b.setdefault(iid, BKey())
            if rnd.random() < 0.75:
                doc = {"by": "b", "t": t.name, "id": iid, "n": rnd.randrange(10 ** 9)}
                p = self.tn(["item", "put", "--tenant", t.name, "--id", iid, canon(doc)],
                            env=self.env_b)
                if p.returncode != 0:
                    out.append("b: item put %s %s: %d %s" % (t.name, iid, p.returncode, p.stderr))
                    continue
                v = int(json.loads(p.stdout)["version"])
                if k.versions and v <= max(k.versions):
                    out.append("b: %s %s: version %d not above %d" % (t.name, iid, v,
                                                                      max(k.versions)))
                k.versions[v] = canon(doc)
                k.state = (v, canon(doc))
            else:
                p = self.tn(["item", "delete", "--tenant", t.name, iid], env=self.env_b)
                if p.returncode == 3 and k.state not in (None, "absent"):
                    out.append("b: delete %s %s: not found, but %s was acknowledged" % (
                        t.name, iid, short(k.state)))
                elif p.returncode not in (0, 3):
                    out.append("b: item delete %s %s: %d %s" % (t.name, iid, p.returncode,
                                                                p.stderr))
                    continue
                k.state = "absent"
            with self.lock:
                self.stats["b_writes"] += 1
            stop.wait(rnd.uniform(0.0, 0.05))

    def b_model(self, suite, rows, who):
        """Every write acknowledged to the second appliance, exactly, in rows
        (its own store's, or the first appliance's after they converged); the
        first appliance's items hold contents its clients sent."""
        for t in self.tenants:
            for iid, k in t.b.items():
                got = rows.get((t.id, "item", iid))
                if k.state == "absent":
                    suite.check(got is None or got[1], "%s: %s %s deleted by b is %r" % (
                        who, t.name, iid, got))
                elif k.state is not None:
                    suite.check(got is not None and (got[0], got[2]) == k.state,
                                "%s: %s %s is %r, b acknowledged %s" % (
                                    who, t.name, iid, got, short(k.state)))
        by_id = {t.id: t for t in self.tenants}
        for (tid, kind, key), (v, deleted, content) in rows.items():
            t = by_id.get(tid)
            if t is None:
                suite.check(False, "%s: a row of a tenant nobody made: %s" % (who, tid))
            elif kind == "item" and not deleted and key not in t.b:
                suite.check(content in t.sent.get(key, ()),
                            "%s: %s item %s holds content its clients never sent" % (
                                who, t.name, key))
            elif kind == "file" and not deleted:
                suite.check(content in t.blobs, "%s: %s file %s holds bytes nobody sent" % (
                    who, t.name, key))

    def killed_run(self, args, env, aim, nth, budget):
        """Runs tenantry args, SIGKILLed when the forwarder sees the aimed
        request (aim: (when, kinds)) or after budget seconds.  Returns (return
        code, what the forwarder fired on or None, whether we sent the kill)."""
        p = subprocess.Popen([tnlib.TENANTRY] + args, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        sent = []

        def kill():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                sent.append(p.pid)
        if aim:
            self.fwd.arm(aim[0], aim[1], nth, kill)
        end = time.time() + budget
        while p.poll() is None and time.time() < end:
            time.sleep(0.005)
        kill()
        fired = self.fwd.disarm()
        rc = p.wait(30)
        return rc, fired, bool(sent) and rc == -signal.SIGKILL

    def sync_b(self, suite, who, env=None):
        p = self.tn(["sync", "--once"], env=env or self.env_b)
        lines = p.stdout.strip().splitlines()
        ok = p.returncode == 0 and lines and json.loads(lines[-1]).get("ok")
        suite.check(ok, "%s sync --once: rc %d %s %s" % (who, p.returncode, p.stdout[-300:],
                                                        p.stderr[-300:]))

    def check_dir(self, suite, env, who):
        p = self.tn(["check"], env=env)
        suite.check(p.returncode == 0, "%s: tenantry check: rc %d %s %s" % (
            who, p.returncode, p.stdout[-300:], p.stderr[-300:]))

    def pull_cycle(self, n, suite, break_cursor=False):
        """The second appliance: its own writes while `sync --once` (a pull,
        then a push) runs and is SIGKILLed when a feed Query or an object GET
        reaches the forwarder, or on a timer.  Then: check clean, its writes
        there exactly; then both sync to completion and hold the same rows."""
        r = self.rnd
        if break_cursor:   # the driver's own test: a pull that skips what is new
            db = sqlite3.connect(os.path.join(self.data_b, "tenantry.db"), timeout=10)
            db.execute("UPDATE _sync_pull SET cursor = ?1", ("c%d" % (time.time() * 1000 + 6e5),))
            db.commit()
            db.close()
        aim = r.choice(("query-request", "query-answer", "get-request", "get-answer", "timer"))
        nth = r.randint(1, 4 if aim.startswith("query") else 2)
        kinds = {"query": PULL_READS[:1], "get": PULL_READS[1:]}
        stop, problems = threading.Event(), []
        w = threading.Thread(target=self.b_writes, args=(random.Random(r.random()), stop,
                                                         problems), daemon=True)
        w.start()
        if aim == "timer":
            rc, fired, ours = self.killed_run(["sync", "--once"], self.env_b, None, 0,
                                              r.uniform(0.05, 0.8))
        else:
            what, when = aim.split("-")
            rc, fired, ours = self.killed_run(["sync", "--once"], self.env_b,
                                              (when, kinds[what]), nth, 10.0)
        w.join(10)
        stop.set()
        w.join(60)
        for v in problems:
            suite.check(False, v)
        if ours:
            self.stats["b_kills"] += 1
            self.stats[{"ddb:Query": "b_kill_query", "s3:get": "b_kill_get"}.get(
                fired and fired[1], "b_kill_timer")] += 1
        elif rc == 0:
            self.stats["b_synced"] += 1
        else:
            suite.check(False, "cycle %d: b's sync ended by itself with %d" % (n, rc))
        self.check_dir(suite, self.env_b, "b after its kill")
        self.b_model(suite, self.rows(self.data_b), "b after its kill")
        # Both to completion: b pushes its writes, a pushes its rest and
        # pulls b's, b pulls a's.
        self.sync_b(suite, "b")
        self.sync_b(suite, "a", env=self.env)
        self.sync_b(suite, "b")
        self.check_dir(suite, self.env, "a")
        self.check_dir(suite, self.env_b, "b")
        ra, rb = self.rows(self.data), self.rows(self.data_b)
        if self.same_rows(suite, rb, ra, "cycle %d: a and b" % n):
            self.stats["ab_rows_equal"] += 1
        self.b_model(suite, rb, "b")
        self.b_model(suite, ra, "a")
        self.file_bytes_match(suite, self.data_b, rb, "b")
        self.log("%.3f cycle %d: b's sync aimed %s %d, fired %s, rc %d%s; %d rows alike" % (
            time.time() - self.t0, n, aim, nth, fired, rc, " (our kill)" if ours else "",
            len(ra)))
        self.stats["b_cycles"] += 1

    @staticmethod
    def has_tenants(db):
        """The store file at db exists and holds at least one tenant."""
        if not os.path.exists(db):
            return False
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
        try:
            return c.execute("SELECT count(*) FROM _tenants").fetchone()[0] > 0
        except sqlite3.Error:
            return False  # killed before its schema was in
        finally:
            c.close()

    def restore_cycle(self, suite, label):
        """A third data directory restored from the remote, SIGKILLed half way
        (while `check` must call it unfinished), run again to completion, then
        equal to the first appliance's store, row by row and byte by byte."""
        r = self.rnd
        shutil.rmtree(self.data_c, ignore_errors=True)
        aim = r.choice(("scan-answer", "query-request", "query-answer", "get-request",
                        "get-answer", "timer"))
        kinds = {"scan": ("ddb:Scan",), "query": PULL_READS[:1], "get": PULL_READS[1:]}
        if aim == "timer":
            rc, fired, ours = self.killed_run(["restore"], self.env_c, None, 0,
                                              r.uniform(0.05, 0.6))
        else:
            what, when = aim.split("-")
            rc, fired, ours = self.killed_run(["restore"], self.env_c, (when, kinds[what]),
                                              r.randint(1, 3), 20.0)
        db = os.path.join(self.data_c, "tenantry.db")
        finished = False  # the kill came after the restore's last step
        if ours:
            self.stats["restore_kills"] += 1
            marked = os.path.exists(db) and sqlite3.connect(db).execute(
                "SELECT count(*) FROM _meta WHERE key = 'restore_incomplete'").fetchone()[0]
            finished = not marked and self.has_tenants(db)
            if finished:
                self.stats["restore_killed_after_the_end"] += 1
            if marked:
                p = self.tn(["check"], env=self.env_c)
                if p.returncode == 5 and "restore" in p.stdout + p.stderr:
                    self.stats["restore_unfinished"] += 1
                suite.check(p.returncode == 5 and "restore" in p.stdout + p.stderr,
                            "%s: check of a restore killed half way: rc %d %s" % (
                                label, p.returncode, (p.stdout + p.stderr)[-300:]))
        elif rc != 0:
            suite.check(False, "%s: restore ended by itself with %d" % (label, rc))
        if rc != 0:
            p = self.tn(["restore"], env=self.env_c)
            lines = p.stdout.strip().splitlines()
            if finished:
                # Unmarked with its tenants in: a whole store, which no
                # restore may overwrite (and the comparisons below check it
                # is whole).
                suite.check(p.returncode == 4 and "restore needs an empty one" in p.stderr,
                            "%s: a restore run over a finished one is refused: rc %d %s %s"
                            % (label, p.returncode, p.stdout[-300:], p.stderr[-300:]))
            else:
                suite.check(p.returncode == 0 and lines and json.loads(lines[-1]).get("ok"),
                            "%s: restore run again: rc %d %s %s" % (label, p.returncode,
                                                                    p.stdout[-300:], p.stderr[-300:]))
        self.check_dir(suite, self.env_c, "restored, " + label)
        rc_, ra = self.rows(self.data_c), self.rows(self.data)
        if self.same_rows(suite, rc_, ra, "%s: the restored store and a" % label):
            self.stats["restores"] += 1
            self.stats["restored_rows_compared"] += len(rc_)
        self.file_bytes_match(suite, self.data_c, rc_, "restored")
        self.log("%.3f %s: restore aimed %s, fired %s, rc %d%s; %d rows" % (
            time.time() - self.t0, label, aim, fired, rc, " (our kill)" if ours else "",
            len(rc_)))
        shutil.rmtree(self.data_c, ignore_errors=True)

    # -- the end --

    def drain(self, suite):
        """The last sync, until nothing is pending."""
        p = self.tn(["sync", "--once"], env=dict(self.env, AWS_ENDPOINT_URL=self.moto.url))
        lines = p.stdout.strip().splitlines()
        summary = json.loads(lines[-1]) if lines else {}
        suite.check(p.returncode == 0 and summary.get("ok"), "final sync: rc %d %s %s" % (
            p.returncode, p.stdout[-500:], p.stderr[-500:]))
        p = self.tn(["status", "--json"])
        st = json.loads(p.stdout)["sync"]
        suite.eq((st["pending"], st["failed"], st["conflicts"]), (0, 0, 0),
                 "sync status pending, failed (dead letters), conflicts")
        for row in self.sql("SELECT t.name, d.kind, d.key, d.version, d.error FROM _sync_dead d "
                            "JOIN _tenants t ON t.tid = d.tenant"):
            suite.check(False, "dead letter %r" % (row,))
        for row in self.sql("SELECT t.name, c.kind, c.key, c.version, c.remote_version "
                            "FROM _sync_conflicts c JOIN _tenants t ON t.tid = c.tenant"):
            suite.check(False, "conflict %r" % (row,))
        return summary

    def compare_remote(self, suite):
        """DynamoDB and S3 equal the store's rows, exactly."""
        tid = {t.id: t for t in self.tenants}
        want_rows, want_objs = {}, {}
        for tenant, iid, data, version, deleted in self.sql(
                "SELECT t.id, i.id, i.data, i.version, i.deleted FROM _items i "
                "JOIN _tenants t ON t.tid = i.tenant"):
            want_rows[("TENANT#" + tenant, "ITEM#" + iid)] = (
                "item", version, bool(deleted), None if deleted else json.loads(data))
        for tenant, name, size, digest, version, deleted in self.sql(
                "SELECT t.id, f.name, f.size, f.sha256, f.version, f.deleted FROM _files f "
                "JOIN _tenants t ON t.tid = f.tenant"):
            want_rows[("TENANT#" + tenant, "FILE#" + name)] = (
                "file", version, bool(deleted), None if deleted else (size, digest))
            if not deleted:
                key = "%s/files/%s" % (tenant, name)
                with open(os.path.join(self.data, "files", tenant, name), "rb") as f:
                    disk = sha(f.read())
                suite.check(disk == digest, "local file %s: bytes %s, record %s" % (
                    key, disk[:12], digest[:12]))
                want_objs[key] = digest
        scanned = awslib.scan_all(self.ddb, self.table)
        got_rows = {}
        for it in scanned:
            k = (it["pk"]["S"], it["sk"]["S"])
            suite.check(k not in got_rows, "duplicate remote key %r" % (k,))
            got_rows[k] = it
        suite.eq(sorted(set(got_rows) - set(want_rows)), [], "remote rows that are not local")
        suite.eq(sorted(set(want_rows) - set(got_rows)), [], "local rows missing remotely")
        for k in sorted(set(want_rows) & set(got_rows)):
            kind, version, deleted, what = want_rows[k]
            it = got_rows[k]
            self.stats["rows_compared"] += 1
            rv = int(it["version"]["N"])
            if rv < version:
                suite.check(False, "%r: remote version %d older than local %d" % (k, rv, version))
            suite.eq(rv, version, "%r version" % (k,))
            suite.eq(it.get("deleted"), {"BOOL": deleted}, "%r deleted" % (k,))
            suite.check(k[0][7:] in tid, "%r: a tenant of this store" % (k,))
            if deleted:
                suite.check("expires_at" in it, "%r: tombstone has expires_at" % (k,))
                suite.check("data" not in it, "%r: tombstone has no data" % (k,))
            elif kind == "item":
                suite.eq(from_ddb(it.get("data")), what, "%r data" % (k,))
            else:
                key = "%s/files/%s" % (k[0][7:], k[1][5:])
                suite.eq((it["s3_key"]["S"], int(it["size"]["N"]), it["sha256"]["S"]),
                         (key, what[0], what[1]), "%r file row" % (k,))
        keys = awslib.list_keys(self.s3, self.bucket)
        suite.eq(len(keys), len(set(keys)), "no duplicate object keys")
        suite.eq(sorted(set(keys) - set(want_objs)), [], "objects that are not live local files")
        suite.eq(sorted(set(want_objs) - set(keys)), [], "live local files missing in S3")
        for key in sorted(set(keys) & set(want_objs)):
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            self.stats["objects_compared"] += 1
            suite.eq(sha(body), want_objs[key], "bytes of %s" % key)
        ups = self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        for u in ups:
            parts = self.s3.list_parts(Bucket=self.bucket, Key=u["Key"],
                                       UploadId=u["UploadId"]).get("Parts", [])
            at = self.fwd.created.get(u["UploadId"])
            after = [k - at for k in self.kill_times if at and k >= at]
            suite.check(False, "multipart upload left open: %s (%s, %d parts, %s)" % (
                u["Key"], u["UploadId"][:12], len(parts),
                "the daemon was killed %.3f s after the remote created it" % min(after)
                if after else "created with no kill after it"))
            if os.environ.get("TN_CRASH_DEBUG"):
                for e in self.fwd.events:
                    if urllib.parse.quote(u["Key"]) in e[2] or u["Key"] in e[2]:
                        self.log("  %.3f %s %s" % (e[0] - self.t0, e[1], e[2][-60:]))
                self.log("  created at %.3f; kills at %s" % (
                    (at or 0) - self.t0, ["%.3f" % (k - self.t0) for k in self.kill_times[-3:]]))
        left = self.sql("SELECT count(*) FROM _sync_uploads")[0][0]
        suite.eq(left, 0, "multipart uploads still recorded locally")

    def count_temp_files(self):
        n = 0
        for root, _, names in os.walk(os.path.join(self.data, "files")):
            n += sum(1 for f in names if ".upload-" in f or ".prev-" in f)
        self.stats["orphan_temp_files"] = n

    def close(self):
        if self.daemon:
            self.kill()
            self.daemon.proc.wait(10)
        self.fwd.stop()
        self.moto.stop()
        if os.environ.get("TN_CRASH_KEEP"):
            self.log("kept the data directory: " + self.data)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def short(st):
    if st is None:
        return "absent"
    if st[0] == "new":
        return "new:%s" % st[1][:16]
    return "v%d:%s" % (st[0], st[1][:16])


def from_ddb(v):
    """A DynamoDB attribute value as plain JSON values."""
    if v is None:
        return None
    (t, x), = v.items()
    if t == "M":
        return {k: from_ddb(e) for k, e in x.items()}
    if t == "L":
        return [from_ddb(e) for e in x]
    if t == "N":
        return float(x) if any(c in x for c in ".eE") else int(x)
    if t == "NULL":
        return None
    return x  # S, BOOL


def run(suite, cycles, seed, log=print):
    """Runs the whole driver as tests of suite: one per cycle, then the final
    comparison.  Returns the counts."""
    drv = Driver(seed, log)
    t0 = time.time()
    try:
        drv.setup()
        for n in range(1, cycles + 1):
            def one_cycle(n=n):
                drv.cycle(n, suite)
            one_cycle.__name__ = "cycle_%d" % n
            suite.run(one_cycle)

        def final_sync_and_remote_equal_local():
            drv.start("default")
            drv.count_temp_files()
            suite.eq(drv.stats["orphan_temp_files"], 0,
                     "upload leftovers in the files folder after a restart")
            drv.verify_local(suite)
            suite.eq(drv.daemon.stop(), 0, "daemon exits 0 on SIGTERM")
            drv.daemon = None
            drv.check_store(suite)
            drv.drain(suite)
            drv.compare_remote(suite)

        def the_second_appliance_and_a_restore_equal_it():
            # a's drain pulled b's last writes and pushed a's; b pulls them.
            drv.sync_b(suite, "b")
            drv.check_dir(suite, drv.env_b, "b")
            ra, rb = drv.rows(drv.data), drv.rows(drv.data_b)
            if drv.same_rows(suite, rb, ra, "at the end: a and b"):
                drv.stats["ab_rows_equal"] += 1
            drv.b_model(suite, rb, "b at the end")
            drv.file_bytes_match(suite, drv.data_b, rb, "b at the end")
            drv.restore_cycle(suite, "at the end")
        suite.run(final_sync_and_remote_equal_local)
        suite.run(the_second_appliance_and_a_restore_equal_it)
    finally:
        drv.close()
    s = dict(drv.stats, acked_writes=drv.acked_writes, unknown_writes=drv.unknown_writes,
             requests=dict(sorted(drv.fwd.counts.items())), modes=drv.modes,
             seconds=round(time.time() - t0, 1))
    log("counts: " + json.dumps(s, sort_keys=True))
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    print("crash: %d cycles, seed %d (--seed %d repeats the choices)" % (a.cycles, seed, seed),
          flush=True)
    suite = tnlib.Suite("crash")
    try:
        run(suite, a.cycles, seed, log=lambda s: print(s, flush=True))
    except Exception as e:  # noqa: BLE001
        suite.check(False, "driver: %r" % e)
    suite.finish()


if __name__ == "__main__":
    main()
