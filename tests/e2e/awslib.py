"""awslib - what the sync suites share: moto_server on a free loopback port
(started and stopped by PID), a TCP proxy in front of it that can be taken
down and brought back on the same port (an appliance going offline without
losing moto's in-memory state), boto3 clients as the independent reader, and
a ctypes binding to libtenantry for recording files (the CLI has no file
command).

Fake credentials only; all traffic stays on 127.0.0.1.
"""
import ctypes
import os
import select
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnlib  # noqa: E402

BUILD = os.environ.get("TN_BUILD", "build")
REGION = "us-east-1"


def asan_reexec():
    """A sanitizer build of libtenantry.so can only be loaded (ctypes) into a
    process whose first library is the ASan runtime: re-run this script with
    it preloaded.  Leak checking stays on for tenantry itself (children get
    the caller's ASAN_OPTIONS back), off for the Python interpreter."""
    lib = os.path.join(BUILD, "libtenantry.so")
    if os.environ.get("TN_ASAN_REEXEC") or not os.path.exists(lib):
        return
    with open(lib, "rb") as f:
        if b"__asan_init" not in f.read():
            return
    rt = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True,
                        text=True).stdout.strip()
    if not rt or not os.path.exists(rt):
        return
    env = dict(os.environ, TN_ASAN_REEXEC="1", LD_PRELOAD=rt,
               TN_CHILD_ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", ""),
               ASAN_OPTIONS="detect_leaks=0")
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _die_with_parent():
    """In the child: SIGTERM when the test process dies, even without its
    `finally` (a crash), so no moto_server is left behind."""
    try:
        ctypes.CDLL(None).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
    except (OSError, AttributeError):
        pass


class Moto:
    """moto_server on 127.0.0.1:port (env: extra environment, e.g.
    INITIAL_NO_AUTH_ACTION_COUNT); stop() kills it by PID.  Its answers name
    tenants by design, so tnlib's response checker leaves its port alone.
    isolated: its DynamoDB writes take one lock (moto_serial.py: moto undoes
    other threads' writes when a transaction is cancelled); the benchmarks
    run it as it ships."""

    def __init__(self, port=None, env=None, isolated=True):
        self.port = port or free_port()
        tnlib.not_the_daemon(self.port)
        entry = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_serial.py")] \
            if isolated else ["-m", "moto.server"]
        self.proc = subprocess.Popen(
            [sys.executable] + entry + ["-p", str(self.port), "-H", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            env=dict(os.environ, **env) if env else None)
        self.pid = self.proc.pid
        if not _wait_port(self.port):
            self.stop()
            raise RuntimeError("moto_server did not start")
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, 9)
                self.proc.wait(5)
        tnlib.not_the_daemon(self.port, on=False)


def accept_loop(lsock, running, handle, poll=0.1):
    """Accepts connections on lsock while running() holds, handing each to
    handle(sock); returns once the listening socket is closed."""
    while running():
        try:
            r, _, _ = select.select([lsock], [], [], poll)
            if not r:
                continue
            c, _ = lsock.accept()
        except (OSError, ValueError):
            return
        handle(c)


class Proxy:
    """A TCP forwarder 127.0.0.1:port -> 127.0.0.1:target.  stop() closes the
    listener and every open connection (the network is gone); start() listens
    again on the same port."""

    def __init__(self, target, port=None):
        self.target = target
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.lsock = None
        self.conns = []
        self.lock = threading.Lock()
        self.running = False
        self.thread = None

    def start(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self.lsock = ls
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        accept_loop(self.lsock, lambda: self.running, self._connect)

    def _connect(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            c.close()
            return
        with self.lock:
            self.conns += [c, u]
        threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, a, b):
        socks = [a, b]
        try:
            while self.running:
                r, _, _ = select.select(socks, [], [], 0.1)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            for s in socks:
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self):
        self.running = False
        if self.thread:
            self.thread.join(2)
        if self.lsock:
            self.lsock.close()
            self.lsock = None
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass
            self.conns = []


def sync_env(endpoint, bucket="tenantry-test", table="tenantry", extra=None):
    """The environment for a tenantry process talking to endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TENANTRY_"))}
    env.update({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "TENANTRY_S3_BUCKET": bucket,
        "TENANTRY_DYNAMODB_TABLE": table,
        "TENANTRY_SYNC_BACKOFF_MS": "50",
        "TENANTRY_SYNC_ATTEMPTS": "2",
        "HOME": "/nonexistent",
    })
    if os.environ.get("TN_ASAN_REEXEC"):
        env["ASAN_OPTIONS"] = os.environ.get("TN_CHILD_ASAN_OPTIONS", "")
    env.update(extra or {})
    return env


def clients(endpoint):
    import boto3
    kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
              aws_secret_access_key="testing")
    return boto3.client("dynamodb", **kw), boto3.client("s3", **kw)


def scan_all(ddb, table, tenant_rows=False):
    """Every item and file row of the table; each tenant's own row (sk
    "TENANT": name and settings) only with tenant_rows."""
    items, kw = [], {"TableName": table, "ConsistentRead": True}
    while True:
        r = ddb.scan(**kw)
        items += [i for i in r["Items"] if tenant_rows or i["sk"]["S"] != "TENANT"]
        if "LastEvaluatedKey" not in r:
            return items
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]


def list_keys(s3, bucket):
    keys, kw = [], {"Bucket": bucket}
    while True:
        r = s3.list_objects_v2(**kw)
        keys += [o["Key"] for o in r.get("Contents", [])]
        if not r.get("IsTruncated"):
            return keys
        kw["ContinuationToken"] = r["NextContinuationToken"]


# ---- libtenantry through ctypes (file records) ---------------------------------

class _Tenant(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char * 37), ("name", ctypes.c_char * 129),
                ("created_at", ctypes.c_int64), ("items", ctypes.c_int64)]


class Store:
    """tn_open on a data directory, to record and delete files as the API does:
    the bytes go to tn_session_file_path, then tn_file_record."""

    def __init__(self, data_dir):
        self.lib = ctypes.CDLL(os.path.join(BUILD, "libtenantry.so"))
        self.lib.tn_open.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        self.lib.tn_close.argtypes = [ctypes.c_void_p]
        self.lib.tn_tenant_find.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(_Tenant)]
        self.lib.tn_session_open.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                             ctypes.POINTER(ctypes.c_void_p)]
        self.lib.tn_session_close.argtypes = [ctypes.c_void_p]
        self.lib.tn_session_file_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                  ctypes.POINTER(ctypes.c_void_p)]
        self.lib.tn_file_record.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64,
                                            ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
        self.lib.tn_file_delete.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.libc = ctypes.CDLL(None)
        self.libc.free.argtypes = [ctypes.c_void_p]
        self.st = ctypes.c_void_p()
        rc = self.lib.tn_open(data_dir.encode(), None, ctypes.byref(self.st))
        if rc != 0:
            raise RuntimeError("tn_open failed: %d" % rc)

    def tenant_id(self, name):
        t = _Tenant()
        rc = self.lib.tn_tenant_find(self.st, name.encode(), ctypes.byref(t))
        if rc != 0:
            raise RuntimeError("no tenant %s" % name)
        return t.id.decode()

    def _session(self, tenant):
        s = ctypes.c_void_p()
        rc = self.lib.tn_session_open(self.st, self.tenant_id(tenant).encode(), ctypes.byref(s))
        if rc != 0:
            raise RuntimeError("session: %d" % rc)
        return s

    def put_file(self, tenant, name, data, content_type="application/octet-stream"):
        import hashlib
        s = self._session(tenant)
        try:
            p = ctypes.c_void_p()
            rc = self.lib.tn_session_file_path(s, name.encode(), ctypes.byref(p))
            if rc != 0:
                raise RuntimeError("file path: %d" % rc)
            path = ctypes.string_at(p).decode()
            self.libc.free(p)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            rc = self.lib.tn_file_record(s, name.encode(), len(data),
                                         hashlib.sha256(data).hexdigest().encode(),
                                         content_type.encode(), None)
            if rc != 0:
                raise RuntimeError("file record: %d" % rc)
        finally:
            self.lib.tn_session_close(s)

    def put_items(self, tenant, items):
        """items: iterable of (id, json text), written in one session."""
        self.lib.tn_item_put.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                         ctypes.c_void_p]
        s = self._session(tenant)
        try:
            for id_, doc in items:
                rc = self.lib.tn_item_put(s, id_.encode(), doc.encode(), None)
                if rc != 0:
                    raise RuntimeError("item put: %d" % rc)
        finally:
            self.lib.tn_session_close(s)

    def delete_file(self, tenant, name):
        s = self._session(tenant)
        try:
            rc = self.lib.tn_file_delete(s, name.encode())
            if rc != 0:
                raise RuntimeError("file delete: %d" % rc)
        finally:
            self.lib.tn_session_close(s)

    def close(self):
        if self.st:
            self.lib.tn_close(self.st)
            self.st = None


class CountingProxy:
    """An HTTP forwarder to moto that counts the requests it forwards (to
    prove STS AssumeRole is called once, not per request)."""

    def __init__(self, target):
        import http.client
        import http.server

        outer = self
        self.count = 0

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                outer.count += 1
                c = http.client.HTTPConnection("127.0.0.1", target, timeout=30)
                hdrs = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                hdrs["Host"] = self.headers.get("Host", "")
                c.request("POST", self.path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                c.close()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
