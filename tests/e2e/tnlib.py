"""tnlib - helpers the end-to-end suites share: free loopback ports, a store
made with `tenantry init`, the `tenantry serve` daemon started and stopped by
PID, a small HTTP client (http.client, one keep-alive connection) and a
pass/fail counter that prints the suite's last line.

Importing tnlib also installs the response checker (see "every response is
checked" below): whatever client a suite uses (this Client, http.client, a raw
socket, a unix socket, a forwarder in front of a browser), every byte this
process reads from a `tenantry serve` is scanned for the tenant ids of the
stores those daemons serve.  A leak fails the test it happens in (Suite.run),
or the process's exit status when no Suite counted it.

Standard library only.  The build directory comes from $TN_BUILD.
"""
import atexit
import http.client
import json
import os
import re
import signal
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BUILD = os.environ.get("TN_BUILD", "build")
TENANTRY = os.path.join(BUILD, "tenantry")


# ---- every response is checked for tenant ids -----------------------------------
#
# README promises that no response to a tenant, an operator or an anonymous
# client contains a tenant id.  The check is made here, below every client a
# suite may use: socket.socket is replaced by a subclass that watches each
# stream this process connects to a loopback TCP port or a unix socket, except
# the AWS side (moto and the proxies in front of it, registered with
# not_the_daemon()).  On a watched stream, the bytes sent since the last answer
# are the request; the bytes read after them are its response, scanned (with
# an overlap, so an id split between two reads is seen) for every known tenant
# id in any letter case.  Only a response with status below 400 to a request
# carrying X-Admin-Key is exempt: the admin API names tenants by id.
#
# The known ids are those of every store a `tenantry serve` started by this
# process serves (subprocess.Popen is wrapped to see them; the store is read
# read-only, and only while its daemon runs), plus any given to
# add_tenant_ids().

class _Checker:
    def __init__(self):
        self.lock = threading.Lock()
        self.stores = {}       # abs data dir -> {"procs": [Popen], "sig": ..., "ids": set()}
        self.extra = set()     # ids added by hand
        self.exempt = set()    # loopback ports that are not a daemon (moto and proxies)
        self.leaks = []        # messages, in order
        self.counted = 0       # leaks a Suite has counted
        self.responses = 0     # responses scanned
        self.caught = None     # a list while a self-test expects leaks

    # -- what is known --

    def add_store(self, data_dir, proc):
        d = os.path.abspath(data_dir)
        with self.lock:
            st = self.stores.setdefault(d, {"procs": [], "sig": None, "ids": set()})
            st["procs"].append(proc)

    @staticmethod
    def _sig(db):
        out = []
        for p in (db, db + "-wal"):
            try:
                s = os.stat(p)
                out.append((s.st_mtime_ns, s.st_size, s.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def ids(self):
        """Every known tenant id (lower case), the stores of running daemons
        read again when their files changed."""
        with self.lock:
            stores = list(self.stores.items())
            out = set(self.extra)
        for d, st in stores:
            db = os.path.join(d, "tenantry.db")
            if any(p.poll() is None for p in st["procs"]):
                sig = self._sig(db)
                if sig != st["sig"] and sig[0] is not None:
                    try:
                        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=2)
                        try:
                            got = {r[0].lower() for r in c.execute("SELECT id FROM _tenants")}
                        finally:
                            c.close()
                        with self.lock:
                            st["ids"] |= got
                            st["sig"] = sig
                    except (sqlite3.Error, AttributeError):
                        pass  # not a store yet, or being damaged on purpose
            out |= st["ids"]
        return out

    # -- what was found --

    def leak(self, what):
        with self.lock:
            if self.caught is not None:
                self.caught.append(what)
                return
            self.leaks.append(what)
        print("FAIL: %s" % what, flush=True)

    def uncounted(self):
        with self.lock:
            n = len(self.leaks) - self.counted
            self.counted = len(self.leaks)
            return n


CHECKER = _Checker()


def add_tenant_ids(ids):
    """Ids to look for besides those of the served stores."""
    with CHECKER.lock:
        CHECKER.extra |= {i.lower() for i in ids}


def not_the_daemon(port, on=True):
    """Marks a loopback port as the AWS side (moto, or a proxy in front of
    it), whose answers name tenants by design; on=False ends that."""
    with CHECKER.lock:
        (CHECKER.exempt.add if on else CHECKER.exempt.discard)(port)


class expect_leaks:
    """with expect_leaks() as caught: leaks found inside are listed in caught
    instead of failing anything (for the checker's own tests)."""

    def __enter__(self):
        with CHECKER.lock:
            CHECKER.caught = []
            return CHECKER.caught

    def __exit__(self, *exc):
        with CHECKER.lock:
            CHECKER.caught = None


_ADMIN = re.compile(rb"(?:^|\r?\n)x-admin-key[ \t]*:", re.I)
_REQ_LINE = re.compile(rb"(?:^|\r?\n)[A-Z]+ [^ \r\n]+ HTTP/1\.[01]\r?\n")
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")


class _Watch:
    """One watched stream: the request being answered and the scan state."""

    def __init__(self, where):
        self.where = where
        self.req = bytearray()   # bytes sent since the last answer began (first 64 KiB)
        self.answering = False   # bytes were read since the last send
        self.head = b""          # the answer's first bytes, until its status is known
        self.exempt = None       # None until the status is known
        self.tail = b""          # the last bytes scanned (overlap)
        self.ids = ()
        self.reported = set()

    def sent(self, data):
        if self.answering:
            self.req, self.answering = bytearray(), False
        if len(self.req) < 65536:
            self.req += bytes(data[:65536 - len(self.req)])

    def got(self, data):
        if not data:
            return
        if not self.answering:
            self.answering = True
            self.head, self.exempt, self.tail, self.reported = b"", None, b"", set()
            self.ids = tuple(i.encode() for i in CHECKER.ids())
            with CHECKER.lock:
                CHECKER.responses += 1
        data = bytes(data)
        if self.exempt is None:
            self.head += data
            m = _STATUS.match(self.head)
            if m is None and len(self.head) < 16 and b"\n" not in self.head:
                return  # the status line is not complete yet
            admin = (_ADMIN.search(bytes(self.req)) is not None and
                     len(_REQ_LINE.findall(bytes(self.req))) <= 1)
            self.exempt = bool(admin and m and int(m.group(1)) < 400)
            data, self.head = self.head, b""
        if self.exempt:
            return
        text = self.tail + data.lower()
        for tid in self.ids:
            if tid in text and tid not in self.reported:
                self.reported.add(tid)
                line = bytes(self.req).split(b"\r\n", 1)[0][:100].decode("latin-1")
                CHECKER.leak("tenant id %s... in the response to %r from %s" % (
                    tid[:8].decode(), line, self.where))
        self.tail = text[-40:]


def _loopback(family, address):
    if family == socket.AF_UNIX:
        return True
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = address[0]
        return host in ("localhost", "::1") or str(host).startswith("127.")
    return False


class CheckedSocket(socket.socket):
    """socket.socket, with the streams it connects to a daemon watched."""
    _tn_watch = None

    def _tn_connected(self, address):
        if self.type != socket.SOCK_STREAM or not _loopback(self.family, address):
            return
        if self.family != socket.AF_UNIX:
            with CHECKER.lock:
                if address[1] in CHECKER.exempt:
                    return
            where = "%s:%d" % (address[0], address[1])
        else:
            where = "unix:%s" % (address.decode() if isinstance(address, bytes) else address)
        self._tn_watch = _Watch(where)

    def connect(self, address):
        super().connect(address)
        self._tn_connected(address)

    def connect_ex(self, address):
        rc = super().connect_ex(address)
        if rc == 0:
            self._tn_connected(address)
        return rc

    def send(self, data, *flags):
        n = super().send(data, *flags)
        if self._tn_watch:
            self._tn_watch.sent(memoryview(data)[:n])
        return n

    def sendall(self, data, *flags):
        super().sendall(data, *flags)
        if self._tn_watch:
            self._tn_watch.sent(memoryview(data))

    def recv(self, n, *flags):
        data = super().recv(n, *flags)
        if self._tn_watch:
            self._tn_watch.got(data)
        return data

    def recv_into(self, buf, nbytes=0, *flags):
        n = super().recv_into(buf, nbytes, *flags)
        if self._tn_watch and n:
            self._tn_watch.got(memoryview(buf)[:n])
        return n


socket.socket = CheckedSocket


def _is_tenantry(args):
    try:
        return os.path.basename(str(args[0])) == "tenantry"
    except (IndexError, TypeError):
        return False


class _Popen(subprocess.Popen):
    """subprocess.Popen that notes every store a `tenantry serve` serves."""

    def __init__(self, args, *a, **kw):
        super().__init__(args, *a, **kw)
        if isinstance(args, (list, tuple)) and _is_tenantry(args) and "serve" in args:
            data = None
            for i, x in enumerate(args):
                if x == "--data" and i + 1 < len(args):
                    data = args[i + 1]
                elif isinstance(x, str) and x.startswith("--data="):
                    data = x[7:]
            env = kw.get("env") if kw.get("env") is not None else os.environ
            data = data or env.get("TENANTRY_DATA") or "data"
            CHECKER.add_store(os.path.join(kw.get("cwd") or os.getcwd(), data), self)


subprocess.Popen = _Popen
_PID = os.getpid()


def _fail_uncounted_leaks():
    """A leak no Suite counted (a suite with its own counters) fails the
    process: its exit status is what tests/run.sh reads."""
    if os.getpid() != _PID:
        return
    n = CHECKER.uncounted()
    if n:
        print("FAIL: %d response(s) carried a tenant id (see above); exit status 1" % n,
              flush=True)
        sys.stdout.flush()
        os._exit(1)


atexit.register(_fail_uncounted_leaks)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, input=None, timeout=30):
    """Runs `tenantry args...`; returns CompletedProcess (text)."""
    return subprocess.run([TENANTRY] + list(args), input=input, capture_output=True,
                          text=True, timeout=timeout)


def tn(args, env=None, timeout=120, stdin=None):
    """Runs `tenantry args...` with env (default: ours); returns (code, stdout, stderr)."""
    p = subprocess.run([TENANTRY] + list(args), capture_output=True, text=True, env=env,
                       timeout=timeout, input=stdin)
    return p.returncode, p.stdout, p.stderr


def leak_checker(suite, secrets=()):
    """An on_response hook for Client: error bodies of non-admin responses are
    exactly {"error": "<words>"} with no internal detail (SQLite's or the
    system's words, a full disk's, source locations, the strings secrets()
    returns).  Tenant ids are looked for in every response by the checker
    below every socket (CHECKER), not here."""

    def check(resp, method, path, headers):
        if "X-Admin-Key" in headers:
            return
        text = resp.body.decode("utf-8", "replace").lower()
        if resp.status >= 400 and method != "HEAD" and resp.body:
            try:
                j = resp.json()
            except ValueError:
                suite.check(False, "error body is not JSON for %s %s" % (method, path))
                return
            suite.check(list(j.keys()) == ["error"] and isinstance(j["error"], str),
                        "error shape for %s %s: %r" % (method, path, resp.body[:100]))
            suite.check(not re.search(r"sqlite|constraint|errno|\.c:|no space|disk i/o|"
                                      r"database or disk", text) and
                        not any(x.lower() in text for x in secrets()),
                        "internal detail in error: %r" % resp.body[:200])
    return check


def init_store(data_dir):
    """Creates a store in data_dir and returns its admin key."""
    p = run(["init", "--data", data_dir])
    if p.returncode != 0:
        raise RuntimeError("tenantry init failed: " + p.stderr)
    return p.stdout.strip()


class Daemon:
    def __init__(self, proc, port, log_path, unix_path=None):
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.log_path = log_path
        self.unix_path = unix_path

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def stop(self, timeout=10):
        """SIGTERM by PID, then SIGKILL if it does not exit; returns the exit code."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


def start_daemon(data_dir, extra_args=(), env=None, listen=None, wait=10):
    """Starts `tenantry serve` on a free loopback port (or `listen`), waits for
    /healthz, and returns a Daemon.  Its stdout and stderr go to d.log_path."""
    port = None
    if listen is None:
        port = free_port()
        listen = "127.0.0.1:%d" % port
    unix_path = listen[5:] if listen.startswith("unix:") else None
    # The log lives in a directory of its own, removed when the test process
    # exits (tests may read it after stopping the daemon).
    log_dir = tempfile.mkdtemp(prefix="tn-serve-log-")
    atexit.register(shutil.rmtree, log_dir, True)
    log_path = os.path.join(log_dir, "serve.log")
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    logf = open(log_path, "ab")
    proc = subprocess.Popen([TENANTRY, "serve", "--data", data_dir, "--listen", listen]
                            + list(extra_args), stdout=logf, stderr=logf, env=full_env)
    logf.close()
    d = Daemon(proc, port, log_path, unix_path)
    deadline = time.time() + wait
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("tenantry serve exited: " + d.log()[-2000:])
        try:
            if unix_path:
                c = UnixHTTPConnection(unix_path, timeout=2)
            else:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                c.close()
                return d
        except OSError:
            pass
        time.sleep(0.05)
    d.stop()
    raise RuntimeError("tenantry serve did not answer /healthz")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Forwarder:
    """127.0.0.1:port -> 127.0.0.1:target, for a client outside this process
    (a browser): the forwarder's own connections to the daemon are watched by
    the response checker like any other.  stop() closes everything."""

    def __init__(self, target):
        self.target = target
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.running = True
        self.socks = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import select
        while self.running:
            try:
                r, _, _ = select.select([self.lsock], [], [], 0.2)
                if r:
                    c, _ = self.lsock.accept()
                    u = socket.create_connection(("127.0.0.1", self.target), timeout=30)
                    with self.lock:
                        self.socks += [c, u]
                    threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            except (OSError, ValueError):
                if not self.running:
                    return

    def _pump(self, c, u):
        import select
        try:
            while self.running:
                r, _, _ = select.select([c, u], [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (u if s is c else c).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            for s in (c, u):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self):
        self.running = False
        with self.lock:
            socks, self.socks = self.socks + [self.lsock], []
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:200])


class Client:
    """One keep-alive connection; reconnects when the server closed it.
    on_response(resp, method, path, headers) runs after every response."""

    def __init__(self, port, headers=None, on_response=None, timeout=30):
        self.port = port
        self.base_headers = dict(headers or {})
        self.on_response = on_response
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None, json_body=None):
        h = dict(self.base_headers)
        if json_body is not None:
            body = json.dumps(json_body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                resp = Response(r.status, r.getheaders(), data)
                if r.will_close:
                    self.close()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
        if self.on_response:
            self.on_response(resp, method, path, h)
        return resp


class Suite:
    """Runs test functions; a test passes when every check in it holds.

    check()/eq() record failures (and keep going, so one run shows them all);
    run(fn) counts fn as one test, failed if any check failed or it raised.
    Checks made outside run() (set-up, shutdown) count as one more test.
    The last line printed is "N passed, N failed" in tests, with the number of
    checks said on the line before it.
    """

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.checks = 0
        self.bad = 0  # failed checks in the current test

    def check(self, cond, what):
        self.checks += 1
        if not cond:
            self.bad += 1
            print("FAIL: %s" % what, flush=True)
        return bool(cond)

    def eq(self, got, want, what):
        return self.check(got == want, "%s: got %r, want %r" % (what, got, want))

    def _count(self, name, ok):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print("%s %s" % ("ok  " if ok else "FAIL", name), flush=True)

    def run(self, fn, *args):
        outside, self.bad = self.bad, 0
        self.bad += CHECKER.uncounted()  # leaks before this test: set-up's
        outside, self.bad = outside + self.bad, 0
        ok = True
        try:
            fn(*args)
        except Exception:
            ok = False
            print("FAIL: %s raised:" % fn.__name__, flush=True)
            traceback.print_exc(file=sys.stdout)
        self.bad += CHECKER.uncounted()  # responses that carried a tenant id
        self._count(fn.__name__, ok and self.bad == 0)
        self.bad = outside

    def finish(self):
        self.bad += CHECKER.uncounted()
        if self.bad:
            self._count("set-up and shutdown checks", False)
        print("(%d checks; %d responses scanned for %d tenant ids)" % (
            self.checks, CHECKER.responses, len(CHECKER.ids())), flush=True)
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed else 0)


def tmpdir(prefix="tn-e2e-"):
    return tempfile.mkdtemp(prefix=prefix)
