"""test_harness - the response checker in tnlib, shown to catch what it must.

Every suite's claim "no response carries a tenant id" rests on tnlib's
checker under socket.socket.  Here a real store with a real tenant is served
by a real daemon (so the checker learns the id the way it does in every
suite); then a fake server answers with that id, and each path a suite may
read a daemon by must report it: a raw socket, http.client, tnlib.Client, a
unix socket, urllib, and a forwarder in front of a client in another process
(the browser's path).  Also: the id split across two reads, in upper case, in
a header; an admin answer is exempt only when it succeeded; the AWS side is
left alone; and a suite process that keeps its own counters fails by its exit
status when a leak happened in it.
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tnlib  # noqa: E402

S = tnlib.Suite("harness")


class Env:
    pass


E = Env()


class FakeServer:
    """Answers every request on a loopback port (or a unix socket) with
    answer(request bytes) -> list of byte chunks, sent with a pause between."""

    def __init__(self, answer, unix_path=None):
        self.answer = answer
        if unix_path:
            self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.lsock.bind(unix_path)
        else:
            self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.lsock.bind(("127.0.0.1", 0))
            self.port = self.lsock.getsockname()[1]
        self.lsock.listen(16)
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.running:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        try:
            c.settimeout(5)
            buf = b""
            while True:  # requests without bodies, one after the other
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                req, buf = buf.split(b"\r\n\r\n", 1)
                chunks = self.answer(req + b"\r\n\r\n")
                for i, chunk in enumerate(chunks):
                    if i:
                        time.sleep(0.05)
                    c.sendall(chunk)
                if b"Connection: keep-alive" not in chunks[0]:
                    return
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.running = False
        self.lsock.close()


def http_answer(body, status="200 OK", headers=()):
    head = "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        status, len(body))
    head += "".join("%s: %s\r\n" % h for h in headers) + "Connection: close\r\n\r\n"
    return head.encode() + body


def leaking(kind="body"):
    """An answer function that puts E.tid into the response."""
    def answer(req):
        if kind == "split":
            body = json.dumps({"owner": E.tid}).encode()
            whole = http_answer(body)
            cut = whole.index(E.tid.encode()) + 18
            return [whole[:cut], whole[cut:]]
        if kind == "upper":
            return [http_answer(json.dumps({"owner": E.tid.upper()}).encode())]
        if kind == "header":
            return [http_answer(b"{}", headers=[("X-Owner", E.tid)])]
        if kind == "admin-404":
            return [http_answer(json.dumps({"error": E.tid}).encode(), "404 Not Found")]
        return [http_answer(json.dumps({"owner": E.tid}).encode())]
    return answer


def caught_by(what, fn, want=True):
    """Runs fn (which reads from a fake server) with leaks captured; checks
    that one was found (want) or none."""
    with tnlib.expect_leaks() as caught:
        try:
            fn()
        except OSError as e:
            S.check(False, "%s: the request itself failed: %r" % (what, e))
    if want:
        S.check(len(caught) >= 1 and E.tid[:8] in caught[0],
                "%s: a response carrying a tenant id is caught: %r" % (what, caught))
    else:
        S.eq(caught, [], "%s: nothing reported" % what)


# ---- tests ------------------------------------------------------------------------

def the_checker_learns_the_ids_of_the_served_store():
    S.check(E.tid in tnlib.CHECKER.ids(), "the tenant created by the CLI is known: %s" % E.tid)
    # A tenant created through the admin API while the daemon runs is learnt too.
    adm = tnlib.Client(E.d.port, {"X-Admin-Key": E.admin_key})
    r = adm.request("POST", "/v1/admin/tenants", json_body={"name": "later"})
    S.eq(r.status, 201, "create a tenant over HTTP")
    S.check(r.json()["id"] in tnlib.CHECKER.ids(), "a tenant created later is known")
    before = tnlib.CHECKER.responses
    r = adm.request("GET", "/v1/admin/tenants")
    S.check(r.status == 200 and E.tid in r.body.decode(), "the admin API lists ids")
    S.check(tnlib.CHECKER.responses > before, "admin answers go through the checker too")


def a_raw_socket_is_checked():
    srv = FakeServer(leaking())
    try:
        def raw():
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"GET /v1/me HTTP/1.1\r\nHost: x\r\n\r\n")
            while s.recv(4096):
                pass
            s.close()
        caught_by("raw socket", raw)
    finally:
        srv.stop()


def http_client_and_tnlib_client_are_checked():
    srv = FakeServer(leaking())
    try:
        def plain():
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
            c.request("GET", "/v1/items")
            c.getresponse().read()
            c.close()
        caught_by("http.client", plain)
        caught_by("tnlib.Client", lambda: tnlib.Client(srv.port).request("GET", "/v1/items"))
        caught_by("urllib", lambda: urllib.request.urlopen(
            "http://127.0.0.1:%d/v1/items" % srv.port, timeout=5).read())
    finally:
        srv.stop()


def a_unix_socket_is_checked():
    d = tnlib.tmpdir()
    path = os.path.join(d, "api.sock")
    srv = FakeServer(leaking(), unix_path=path)
    try:
        def unix():
            c = tnlib.UnixHTTPConnection(path, timeout=5)
            c.request("GET", "/metrics")
            c.getresponse().read()
            c.close()
        caught_by("unix socket", unix)
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def a_client_in_another_process_behind_the_forwarder_is_checked():
    """The browser's path in test_cors: a process we do not control reads the
    daemon through tnlib.Forwarder."""
    srv = FakeServer(leaking())
    fwd = tnlib.Forwarder(srv.port)
    try:
        def other_process():
            code = ("import urllib.request; urllib.request.urlopen("
                    "'http://127.0.0.1:%d/v1/items', timeout=10).read()" % fwd.port)
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30,
                               env={"PATH": os.environ.get("PATH", "")})
            S.eq(p.returncode, 0, "the other process read the answer: %r" % p.stderr[-300:])
            time.sleep(0.2)  # the forwarder's thread scans as it passes the bytes on
        caught_by("forwarder", other_process)
    finally:
        fwd.stop()
        srv.stop()


def an_id_split_in_upper_case_or_in_a_header_is_caught():
    for kind in ("split", "upper", "header"):
        srv = FakeServer(leaking(kind))
        try:
            caught_by(kind, lambda: tnlib.Client(srv.port).request("GET", "/v1/items"))
        finally:
            srv.stop()


def only_a_successful_admin_answer_is_exempt():
    srv = FakeServer(leaking())
    try:
        caught_by("admin 200", lambda: tnlib.Client(srv.port, {"X-Admin-Key": "k"}).request(
            "GET", "/v1/admin/tenants"), want=False)
    finally:
        srv.stop()
    srv = FakeServer(leaking("admin-404"))
    try:
        caught_by("admin 404", lambda: tnlib.Client(srv.port, {"X-Admin-Key": "k"}).request(
            "GET", "/v1/admin/tenants/x"))
    finally:
        srv.stop()
    # The admin key on one request does not exempt the next one on the same connection.
    srv = FakeServer(lambda req: [http_answer(json.dumps({"owner": E.tid}).encode()).replace(
        b"Connection: close", b"Connection: keep-alive")] if b"x-admin-key" in req.lower()
        else [http_answer(json.dumps({"owner": E.tid}).encode())])
    try:
        def two():
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"GET /v1/admin/tenants HTTP/1.1\r\nHost: x\r\nX-Admin-Key: k\r\n\r\n")
            first = s.recv(65536)
            S.check(b"keep-alive" in first, "the first answer keeps the connection")
            s.sendall(b"GET /v1/me HTTP/1.1\r\nHost: x\r\n\r\n")
            while s.recv(65536):
                pass
            s.close()
        caught_by("tenant request after an admin one", two)
    finally:
        srv.stop()


def the_aws_side_is_left_alone():
    srv = FakeServer(leaking())
    tnlib.not_the_daemon(srv.port)
    try:
        caught_by("moto's port", lambda: tnlib.Client(srv.port).request("GET", "/"), want=False)
    finally:
        tnlib.not_the_daemon(srv.port, on=False)
        srv.stop()


def the_real_daemon_answers_tenants_without_ids():
    adm = tnlib.Client(E.d.port, {"X-Admin-Key": E.admin_key})
    r = adm.request("POST", "/v1/admin/tenants/%s/keys" % E.tid,
                    json_body={"scopes": ["items:read", "items:write"]})
    S.eq(r.status, 201, "key")
    with tnlib.expect_leaks() as caught:
        tok = tnlib.Client(E.d.port).request("POST", "/v1/auth",
                                             json_body={"api_key": r.json()["api_key"]})
        c = tnlib.Client(E.d.port, {"Authorization": "Bearer " + tok.json()["token"]})
        for m, p, b in (("PUT", "/v1/items/x", {"data": {"a": 1}}), ("GET", "/v1/items", None),
                        ("GET", "/v1/me", None), ("GET", "/v1/sync/status", None),
                        ("GET", "/v1/items/nope", None)):
            c.request(m, p, json_body=b)
    S.eq(caught, [], "the daemon's answers to a tenant")


def a_suite_with_its_own_counters_fails_by_its_exit_status():
    """A leak in a process whose suite never asks the checker: the process
    exits 1 after its clean line, which tests/run.sh counts as a failure."""
    srv = FakeServer(leaking())
    try:
        code = ("import sys; sys.path.insert(0, %r); import tnlib\n"
                "tnlib.add_tenant_ids([%r])\n"
                "tnlib.Client(%d).request('GET', '/v1/me')\n"
                "print('1 passed, 0 failed')\n" % (HERE, E.tid, srv.port))
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60)
        S.eq(p.returncode, 1, "exit status of a process that saw a leak: %r" % p.stdout)
        S.check("carried a tenant id" in p.stdout, "says why: %r" % p.stdout)
        code = ("import sys; sys.path.insert(0, %r); import tnlib\n"
                "tnlib.add_tenant_ids([%r]); S = tnlib.Suite('x')\n"
                "def t(): tnlib.Client(%d).request('GET', '/v1/me')\n"
                "S.run(t); S.finish()\n" % (HERE, E.tid, srv.port))
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60)
        S.check(p.returncode == 1 and p.stdout.strip().endswith("0 passed, 1 failed"),
                "a Suite counts the leak in the test it happened in: %r" % p.stdout)
    finally:
        srv.stop()


def main():
    data = tnlib.tmpdir()
    E.d = None
    try:
        E.admin_key = tnlib.init_store(data)
        p = tnlib.run(["tenant", "create", "acme", "--data", data])
        S.eq(p.returncode, 0, "tenant create: " + p.stderr)
        p = tnlib.run(["tenant", "list", "--json", "--data", data])
        E.tid = {t["name"]: t["id"] for t in json.loads(p.stdout)}["acme"]
        E.d = tnlib.start_daemon(data, ["--quiet", "--no-sync"])
        for fn in (the_checker_learns_the_ids_of_the_served_store, a_raw_socket_is_checked,
                   http_client_and_tnlib_client_are_checked, a_unix_socket_is_checked,
                   a_client_in_another_process_behind_the_forwarder_is_checked,
                   an_id_split_in_upper_case_or_in_a_header_is_caught,
                   only_a_successful_admin_answer_is_exempt, the_aws_side_is_left_alone,
                   the_real_daemon_answers_tenants_without_ids,
                   a_suite_with_its_own_counters_fails_by_its_exit_status):
            S.run(fn)
        S.eq(E.d.stop(), 0, "daemon exits 0 on SIGTERM")
        E.d = None
    finally:
        if E.d:
            E.d.stop()
        shutil.rmtree(data, ignore_errors=True)
    S.finish()


if __name__ == "__main__":
    main()
