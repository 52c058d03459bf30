"""tnlib - helpers the end-to-end suites share: free loopback ports, a store
made with `tenantry init`, the `tenantry serve` daemon started and stopped by
PID, a small HTTP client (http.client, one keep-alive connection) and a
pass/fail counter that prints the suite's last line.

Standard library only.  The build directory comes from $TN_BUILD.
"""
import atexit
import http.client
import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILD = os.environ.get("TN_BUILD", "build")
TENANTRY = os.path.join(BUILD, "tenantry")


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


def leak_checker(suite, tenant_ids, secrets=()):
    """An on_response hook for Client: no tenant id (from the set tenant_ids,
    lower case) in the body or headers of any non-admin response, and error
    bodies exactly {"error": "<words>"} with no internal detail (SQLite's or
    the system's words, a full disk's, source locations, the strings in
    secrets)."""
    import re

    def check(resp, method, path, headers):
        if "X-Admin-Key" in headers:
            return
        text = resp.body.decode("utf-8", "replace").lower()
        hdrs = " ".join("%s: %s" % kv for kv in resp.headers).lower()
        for tid in tenant_ids:
            suite.check(tid not in text and tid not in hdrs,
                        "tenant id leaked in %s %s -> %d" % (method, path, resp.status))
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
        ok = True
        try:
            fn(*args)
        except Exception:
            ok = False
            print("FAIL: %s raised:" % fn.__name__, flush=True)
            traceback.print_exc(file=sys.stdout)
        self._count(fn.__name__, ok and self.bad == 0)
        self.bad = outside

    def finish(self):
        if self.bad:
            self._count("set-up and shutdown checks", False)
        print("(%d checks)" % self.checks, flush=True)
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed else 0)


def tmpdir(prefix="tn-e2e-"):
    return tempfile.mkdtemp(prefix=prefix)
