"""End-to-end security suite for the HTTP daemon (the parts that need no sync
engine): CRLF in header values, oversized headers, bodies and JSON nesting, a
client that sends one byte a second, admin-key guessing, and SQL-looking input
in every field.

Every response, to a tenant or an anonymous client, is checked for the other
tenant's data (leak_check, and check_raw for raw-socket responses), and for
the ids of every tenant by tnlib's checker under every socket; every request
must fail closed with its documented status, never a 500, and the daemon must
stay up.
"""
import json
import os
import re
import shutil
import socket
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnlib  # noqa: E402

S = tnlib.Suite("security")
ALL_SCOPES = ["items:read", "items:write", "files:read", "files:write"]
# Bytes only tenant b ever stores: none may reach tenant a or an anonymous client.
B_SECRET = "bravo-secret-7f3a91"


class Env:
    pass


E = Env()


def scan(text, hdrs, what, status=None):
    # Tenant ids: every byte read from the daemon is scanned by tnlib's checker.
    S.check(B_SECRET not in text and B_SECRET not in hdrs, "tenant b's data leaked in " + what)
    S.check(status != 500, "500 for " + what)


def leak_check(resp, method, path, headers):
    if "X-Admin-Key" in headers:
        S.check(resp.status != 500, "500 for admin %s %s" % (method, path[:80]))
        return
    if headers.get("Authorization") == "Bearer " + getattr(E, "tok_b", "-"):
        S.check(resp.status != 500, "500 for b %s %s" % (method, path[:80]))
        return
    text = resp.body.decode("utf-8", "replace")
    hdrs = " ".join("%s: %s" % kv for kv in resp.headers)
    scan(text, hdrs, "%s %s -> %d" % (method, path[:80], resp.status), resp.status)
    if resp.status >= 400 and resp.body:
        try:
            j = resp.json()
            S.check(list(j) == ["error"] and isinstance(j["error"], str),
                    "error shape for %s %s: %r" % (method, path[:60], resp.body[:100]))
        except ValueError:
            S.check(False, "error body is not JSON for %s %s" % (method, path[:60]))
        S.check(not re.search(r"sqlite|syntax|constraint|errno|\.c:", text.lower()),
                "internal detail in error: %r" % resp.body[:200])


def raw(data, timeout=10, read_all=True):
    """Sends bytes on a new socket; returns everything read until close/timeout."""
    s = socket.create_connection(("127.0.0.1", E.d.port), timeout=timeout)
    out = b""
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, OSError):
                break
            if not chunk:
                break
            out += chunk
            if not read_all:
                break
    finally:
        s.close()
    return out


def raw_status(resp):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else None


def check_raw(resp, what):
    head, _, body = resp.partition(b"\r\n\r\n")
    scan(body.decode("utf-8", "replace"), head.decode("latin-1"), what, raw_status(resp))
    return head


def alive(what):
    S.check(E.d.proc.poll() is None, "daemon alive after " + what)
    r = tnlib.Client(E.d.port).request("GET", "/healthz")
    S.eq(r.status, 200, "healthz after " + what)


def tenant(tok):
    return tnlib.Client(E.d.port, {"Authorization": "Bearer " + tok}, leak_check)


def snapshot_b():
    """Tenant b's items and files, through b's own token."""
    c = tenant(E.tok_b)
    items = c.request("GET", "/v1/items?limit=1000").json()["items"]
    files = c.request("GET", "/v1/files?limit=1000").json()["files"]
    body = c.request("GET", "/v1/files/b-file.txt").body
    return json.dumps(items, sort_keys=True), json.dumps(files, sort_keys=True), body


def auth_line(tok):
    return b"Authorization: Bearer " + tok.encode() + b"\r\n"


# ---- tests -------------------------------------------------------------------

def test_crlf_in_headers():
    auth = auth_line(E.tok_a)
    cases = {
        "bare CR in a value": b"GET /v1/me HTTP/1.1\r\nHost: x\r\n" + auth +
                              b"X-Test: a\rInjected: yes\r\nConnection: close\r\n\r\n",
        "bare LF in a value": b"GET /v1/me HTTP/1.1\r\nHost: x\r\n" + auth +
                              b"X-Test: a\nInjected: yes\r\nConnection: close\r\n\r\n",
        "NUL in a value": b"GET /v1/me HTTP/1.1\r\nHost: x\r\n" + auth +
                          b"X-Test: a\x00b\r\nConnection: close\r\n\r\n",
        "obs-fold continuation": b"GET /v1/me HTTP/1.1\r\nHost: x\r\n" + auth +
                                 b"X-Test: a\r\n Injected: yes\r\nConnection: close\r\n\r\n",
        "CR in the admin key": b"GET /v1/admin/tenants HTTP/1.1\r\nHost: x\r\nX-Admin-Key: " +
                               E.admin_key.encode() + b"\rX: y\r\nConnection: close\r\n\r\n",
        "CRLF in the request target": b"GET /v1/items/a\r\nInjected: yes HTTP/1.1\r\nHost: x\r\n"
                                      + auth + b"Connection: close\r\n\r\n",
        "encoded CRLF in an item id": b"GET /v1/items/a%0d%0aInjected:%20yes HTTP/1.1\r\nHost: x\r\n"
                                      + auth + b"Connection: close\r\n\r\n",
        "encoded CRLF in a file name": b"GET /v1/files/a%0d%0aSet-Cookie:%20x HTTP/1.1\r\nHost: x\r\n"
                                       + auth + b"Connection: close\r\n\r\n",
        "CRLF in Range": b"GET /v1/files/a-file.txt HTTP/1.1\r\nHost: x\r\n" + auth +
                         b"Range: bytes=0-1\rInjected: yes\r\nConnection: close\r\n\r\n",
    }
    for what, req in cases.items():
        resp = raw(req)
        head = check_raw(resp, what)
        st = raw_status(resp)
        S.check(st is None or st in (200, 206, 400, 401, 404),
                "%s: refused or harmless, got %r" % (what, resp[:60]))
        S.check(b"\ninjected" not in head.lower() and b"\nset-cookie" not in head.lower(),
                "%s: no header injected into the response: %r" % (what, head[:300]))
        if what == "CR in the admin key":
            S.check(st != 200, "admin key with a CR appended is not accepted: %r" % resp[:40])
    # A content type with CR/LF inside is refused on upload (it would be sent back).
    resp = raw(b"PUT /v1/files/ct.txt HTTP/1.1\r\nHost: x\r\n" + auth +
               b"Content-Type: text/plain\rSet-Cookie: x=1\r\nContent-Length: 2\r\n"
               b"Connection: close\r\n\r\nhi")
    check_raw(resp, "CR in Content-Type")
    r = tenant(E.tok_a).request("GET", "/v1/files/ct.txt")
    S.check(r.status == 404 or all(k.lower() != "set-cookie" for k, _ in r.headers),
            "no Set-Cookie from a stored content type")
    alive("CRLF cases")


def test_oversized_headers():
    auth = auth_line(E.tok_a)
    for what, hdr in [("one 64 KiB header", b"X-Big: " + b"a" * 65536 + b"\r\n"),
                      ("2000 small headers", b"".join(b"X-H%d: v\r\n" % i for i in range(2000))),
                      ("1 MiB Authorization", b"Authorization: Bearer " + b"a" * (1 << 20) + b"\r\n"),
                      ("64 KiB URL", None)]:
        if hdr is None:
            req = b"GET /v1/items/" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"
        else:
            req = b"GET /v1/me HTTP/1.1\r\nHost: x\r\n" + auth + hdr + b"\r\n"
        t0 = time.time()
        resp = raw(req, timeout=10)
        check_raw(resp, what)
        st = raw_status(resp)
        S.check(st in (None, 400, 413, 414, 431), "%s: 431/400/414 or close, got %r" % (what, resp[:60]))
        S.check(time.time() - t0 < 9, "%s: answered or closed promptly" % what)
    alive("oversized headers")


def test_oversized_bodies():
    c = tenant(E.tok_a)
    limit = 65536
    # With Content-Length over the JSON limit: 413 before the body is read.
    resp = raw(b"POST /v1/items HTTP/1.1\r\nHost: x\r\n" + auth_line(E.tok_a) +
               b"Content-Type: application/json\r\nContent-Length: 999999999999\r\n\r\n", timeout=5)
    check_raw(resp, "huge Content-Length")
    S.eq(raw_status(resp), 413, "JSON body with a huge Content-Length")
    resp = raw(b"POST /v1/items HTTP/1.1\r\nHost: x\r\n" + auth_line(E.tok_a) +
               b"Content-Type: application/json\r\nContent-Length: 99999999999999999999999\r\n\r\n",
               timeout=5)
    check_raw(resp, "overflowing Content-Length")
    S.check(raw_status(resp) in (None, 400, 413), "overflowing Content-Length: %r" % resp[:40])
    resp = raw(b"POST /v1/items HTTP/1.1\r\nHost: x\r\n" + auth_line(E.tok_a) +
               b"Content-Type: application/json\r\nContent-Length: -5\r\n\r\n", timeout=5)
    check_raw(resp, "negative Content-Length")
    S.check(raw_status(resp) in (None, 400), "negative Content-Length: %r" % resp[:40])
    # Without Content-Length (chunked): refused while streaming.
    body = json.dumps({"data": "x" * (limit * 4)}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192])
                      for i in range(0, len(body), 8192)) + b"0\r\n\r\n"
    resp = raw(b"POST /v1/items HTTP/1.1\r\nHost: x\r\n" + auth_line(E.tok_a) +
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + chunks, timeout=10)
    check_raw(resp, "chunked JSON over the limit")
    S.check(raw_status(resp) in (None, 413), "chunked JSON over the limit: 413 or close: %r" % resp[:40])
    # A file upload over --max-file-bytes (262144 here), chunked.
    blob = b"z" * (300 * 1024)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(blob[i:i + 16384]), blob[i:i + 16384])
                      for i in range(0, len(blob), 16384)) + b"0\r\n\r\n"
    resp = raw(b"PUT /v1/files/huge.bin HTTP/1.1\r\nHost: x\r\n" + auth_line(E.tok_a) +
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks, timeout=10)
    check_raw(resp, "chunked file over the limit")
    S.check(raw_status(resp) in (None, 413), "chunked file over the limit: %r" % resp[:40])
    # The same with Content-Length: 413.
    r = c.request("PUT", "/v1/files/huge.bin", body=blob)
    S.eq(r.status, 413, "file over the limit with Content-Length")
    S.eq(c.request("GET", "/v1/files/huge.bin").status, 404, "refused uploads left nothing")
    # Bodies on routes that take none are bounded too.
    r = c.request("GET", "/v1/me", body=b"x" * (limit + 10))
    S.eq(r.status, 413, "a large body on GET")
    alive("oversized bodies")


def read_head(s, timeout=5):
    """Reads from socket s until the end of one response head (or EOF)."""
    s.settimeout(timeout)
    got = b""
    while b"\r\n\r\n" not in got:
        try:
            chunk = s.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    return got


def test_refused_body_answer():
    """A body over the limit is answered 413 with Connection: close at once,
    from its Content-Length, without waiting for it; a client that writes
    the whole body before reading still gets that answer (not a reset); and
    Expect: 100-continue is honoured: no 100 for a body that will be refused,
    a 100 for one that will be taken."""
    import http.client
    big = json.dumps({"data": "x" * (10 << 20)}).encode()
    for attempt in range(3):
        c = http.client.HTTPConnection("127.0.0.1", E.d.port, timeout=20)
        t0 = time.time()
        try:
            c.request("POST", "/v1/items", body=big,
                      headers={"Authorization": "Bearer " + E.tok_a,
                               "Content-Type": "application/json"})
            r = c.getresponse()
            got = (r.status, (r.getheader("Connection") or "").lower(), json.loads(r.read()))
        except OSError as e:
            got = ("network error", repr(e))
        c.close()
        S.eq(got, (413, "close", {"error": "too large"}),
             "10 MiB item body written whole: 413 and Connection: close (try %d)" % attempt)
        S.check(time.time() - t0 < 10, "answered promptly")
    # The same for a file over --max-file-bytes.
    c = http.client.HTTPConnection("127.0.0.1", E.d.port, timeout=20)
    try:
        c.request("PUT", "/v1/files/too-big.bin", body=b"z" * (4 << 20),
                  headers={"Authorization": "Bearer " + E.tok_a})
        got = c.getresponse().status
    except OSError as e:
        got = repr(e)
    c.close()
    S.eq(got, 413, "a file over the limit written whole: 413")
    # The answer comes before any of the body is sent.
    s = socket.create_connection(("127.0.0.1", E.d.port), timeout=5)
    s.sendall(b"POST /v1/items HTTP/1.1\r\nHost: x\r\n" + auth_line(E.tok_a) +
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(big))
    head = read_head(s)
    s.close()
    S.check(head.startswith(b"HTTP/1.1 413") and b"connection: close" in head.lower(),
            "413 from the Content-Length alone, before the body: %r" % head[:120])
    # Expect: 100-continue with a body that will be refused: no 100, a 413.
    s = socket.create_connection(("127.0.0.1", E.d.port), timeout=5)
    s.sendall(b"POST /v1/items HTTP/1.1\r\nHost: x\r\n" + auth_line(E.tok_a) +
              b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
              b"Content-Length: %d\r\n\r\n" % len(big))
    head = read_head(s)
    s.close()
    S.check(head.startswith(b"HTTP/1.1 413") and b"100 Continue" not in head,
            "Expect: 100-continue and a body over the limit: 413, no 100: %r" % head[:120])
    # ... and with an acceptable body: 100, then the body, then 201.
    body = json.dumps({"id": "expect-ok", "data": {"n": 1}}).encode()
    s = socket.create_connection(("127.0.0.1", E.d.port), timeout=5)
    s.sendall(b"POST /v1/items HTTP/1.1\r\nHost: x\r\n" + auth_line(E.tok_a) +
              b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
    head = read_head(s)
    S.check(head.startswith(b"HTTP/1.1 100"), "100 Continue for a body that will be taken: %r"
            % head[:60])
    s.sendall(body)
    rest = head.split(b"\r\n\r\n", 1)[1] + read_head(s)
    s.close()
    S.check(rest.startswith(b"HTTP/1.1 201"), "then 201: %r" % rest[:60])
    # An unauthenticated upload with Expect: 401 at once, no 100.
    s = socket.create_connection(("127.0.0.1", E.d.port), timeout=5)
    s.sendall(b"PUT /v1/files/x.bin HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              b"Content-Length: 1000000\r\n\r\n")
    head = read_head(s)
    s.close()
    S.check(head.startswith(b"HTTP/1.1 401"), "Expect on an upload without a token: 401, no 100: %r"
            % head[:60])
    alive("refused bodies")


def test_deep_json():
    c = tenant(E.tok_a)
    deep = b'{"data":' + b"[" * 100000 + b"]" * 100000 + b"}"
    for path, m in (("/v1/items", "POST"), ("/v1/items/deep", "PUT")):
        r = c.request(m, path, body=deep, headers={"Content-Type": "application/json"})
        S.check(r.status in (400, 413), "%s %s with 100k nesting: %d" % (m, path, r.status))
    deep_obj = b'{"data":' + b'{"a":' * 30000 + b"1" + b"}" * 30000 + b"}"
    r = c.request("POST", "/v1/items", body=deep_obj, headers={"Content-Type": "application/json"})
    S.check(r.status in (400, 413), "100k nested objects: %d" % r.status)
    unclosed = b'{"data":' + b"[" * 60000
    r = c.request("POST", "/v1/items", body=unclosed, headers={"Content-Type": "application/json"})
    S.eq(r.status, 400, "unclosed nesting")
    adm = tnlib.Client(E.d.port, {"X-Admin-Key": E.admin_key}, leak_check)
    r = adm.request("POST", "/v1/admin/tenants", body=b'{"name":' + b"[" * 30000 + b"]" * 30000 + b"}",
                    headers={"Content-Type": "application/json"})
    S.eq(r.status, 400, "deep JSON on an admin route")
    r = tnlib.Client(E.d.port, None, leak_check).request(
        "POST", "/v1/auth", body=b'{"api_key":' + b"[" * 30000 + b"]" * 30000 + b"}",
        headers={"Content-Type": "application/json"})
    S.eq(r.status, 400, "deep JSON on /v1/auth")
    alive("deep JSON")


def test_slow_client():
    """A client sending one byte a second is cut off by --timeout 2."""
    data = tnlib.tmpdir()
    d = None
    try:
        admin_key = tnlib.init_store(data)
        d = tnlib.start_daemon(data, ["--timeout", "2", "--quiet"])
        admin = tnlib.Client(d.port, {"X-Admin-Key": admin_key})
        t = admin.request("POST", "/v1/admin/tenants", json_body={"name": "slow"}).json()
        k = admin.request("POST", "/v1/admin/tenants/%s/keys" % t["id"],
                          json_body={"scopes": ["items:write", "files:write"]}).json()
        token = tnlib.Client(d.port).request("POST", "/v1/auth",
                                             json_body={"api_key": k["api_key"]}).json()["token"]
        results = []
        for label, prefix in (("new connection", b""),
                              ("after a request on a kept-alive connection",
                               b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=1)
            if prefix:
                s.sendall(prefix)
                time.sleep(0.2)
                s.recv(4096)
            req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60
            t0 = time.time()
            closed_at = None
            for ch in req:
                try:
                    s.send(bytes([ch]))
                    got = s.recv(1024)
                    if got == b"":
                        closed_at = time.time() - t0
                        break
                except socket.timeout:
                    pass
                except OSError:
                    closed_at = time.time() - t0
                    break
                if time.time() - t0 > 12:
                    break
            s.close()
            results.append((label, closed_at))
            S.check(closed_at is not None and closed_at < 6,
                    "one byte a second (%s): closed within 6 s (took %r)" % (label, closed_at))
        print("slow client closed after: %r" % results, flush=True)
        # The body too: headers at once, then a byte every half second.  After
        # --timeout the body must have averaged 1 KiB/s, or the connection goes.
        for method, path, ctype in (("POST", "/v1/items", "application/json"),
                                    ("PUT", "/v1/files/slow.bin", "application/octet-stream")):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=0.5)
            s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       "Content-Type: %s\r\nContent-Length: 4000\r\n\r\n"
                       % (method, path, token, ctype)).encode())
            t0 = time.time()
            closed_at = None
            while time.time() - t0 < 12:
                try:
                    s.send(b" ")
                    if s.recv(1024) == b"":
                        closed_at = time.time() - t0
                        break
                except socket.timeout:
                    pass
                except OSError:
                    closed_at = time.time() - t0
                    break
            s.close()
            S.check(closed_at is not None and 1.5 < closed_at < 6,
                    "a body trickled to %s %s: closed after --timeout (took %r)"
                    % (method, path, closed_at))
        # A slow but steady body (about 20 KiB/s for 3 s) is served.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        body = b'{"data": {"pad": "' + b"x" * 60000 + b'"}}'
        s.sendall(("POST /v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n"
                   % (token, len(body))).encode())
        for i in range(0, len(body), 2048):
            s.sendall(body[i:i + 2048])
            time.sleep(0.1)
        got = s.recv(4096)
        s.close()
        S.check(got.startswith(b"HTTP/1.1 201"),
                "a steady 20 KiB/s body is stored: %r" % got[:40])
        # A normal client on the same daemon is unaffected.
        c = tnlib.Client(d.port)
        S.eq(c.request("GET", "/healthz").status, 200, "a normal client still served")
        time.sleep(1)
        S.eq(c.request("GET", "/healthz").status, 200, "keep-alive under the timeout still works")
        S.eq(d.stop(), 0, "daemon stops cleanly")
        d = None
    finally:
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_admin_key_guessing():
    data = tnlib.tmpdir()
    d = None
    try:
        ak = tnlib.init_store(data)
        d = tnlib.start_daemon(data, ["--auth-fail-burst", "10", "--auth-fail-rate", "0.01",
                                      "--quiet"])
        c = tnlib.Client(d.port, None, leak_check)
        guesses = [ak[:-1] + ("A" if ak[-1] != "A" else "B"), "", "tna_", ak + "x", ak.upper(),
                   "' OR '1'='1", ak[:10]] + ["tna_%043d" % i for i in range(23)]
        statuses = []
        for g in guesses:
            r = c.request("GET", "/v1/admin/tenants", headers={"X-Admin-Key": g})
            statuses.append(r.status)
            if r.status == 429:
                S.check(r.header("Retry-After") is not None and int(r.header("Retry-After")) >= 1,
                        "429 has Retry-After")
                S.eq(r.json(), {"error": "too many requests"}, "429 body")
            elif r.status == 401:
                S.eq(r.json(), {"error": "unauthorized"}, "401 body")
        # Well-formed guesses share the admin key's budget; malformed ones the
        # anonymous budget.  In each, 10 failures, then 429.
        for formed in (True, False):
            st = [s for g, s in zip(guesses, statuses)
                  if (len(g) == len(ak) and g.startswith("tna_")) == formed]
            n = min(10, len(st))
            S.check(st[:n] == [401] * n and all(s == 429 for s in st[n:]),
                    "%s admin keys: 10 wrong, then 429: %r" % ("well-formed" if formed else
                                                              "malformed", st))
        S.check(statuses.count(429) >= 14, "guessing the admin key is throttled: %r" % statuses)
        r = c.request("GET", "/v1/admin/tenants", headers={"X-Admin-Key": ak})
        S.eq(r.status, 200, "the right key is still served while guessing is throttled")
        S.eq(d.stop(), 0, "daemon stops cleanly")
        d = None
        # Audited: read the store directly (independent of the API).
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "tenantry.db"), uri=True)
        rows = con.execute("SELECT actor, detail FROM _audit WHERE action = 'auth.failure'").fetchall()
        con.close()
        S.check(len(rows) >= 10, "failed admin keys audited: %d rows" % len(rows))
        S.check(all(ak not in (a or "") + (dt or "") and "tna_0000" not in (dt or "")
                    for a, dt in rows), "no key material in the audit")
    finally:
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_auth_flood():
    """Credential-less and wrong-key requests from 127.0.0.1, as fast as four
    clients can send them, while a valid token, an API key and the admin key
    are used from the same address: those get 200 promptly, every time; the
    guessing gets 429 past the failure budget, and the audit log does not
    take a row per failed request."""
    import threading
    data = tnlib.tmpdir()
    d = None
    try:
        ak = tnlib.init_store(data)
        d = tnlib.start_daemon(data, ["--quiet"])  # default failure budget: 20, then 0.2/s
        adm = tnlib.Client(d.port, {"X-Admin-Key": ak})
        t = adm.request("POST", "/v1/admin/tenants", json_body={"name": "flooded"}).json()
        key = adm.request("POST", "/v1/admin/tenants/%s/keys" % t["id"],
                          json_body={"scopes": ALL_SCOPES}).json()["api_key"]
        tok = tnlib.Client(d.port).request("POST", "/v1/auth",
                                           json_body={"api_key": key}).json()["token"]
        wrong_secret = key[:-8] + ("A" * 8 if not key.endswith("A" * 8) else "B" * 8)
        attacks = {
            "no credential": ("GET", "/v1/me", None, {}),
            "garbage token": ("GET", "/v1/me", None, {"Authorization": "Bearer x.y.z"}),
            "wrong admin key": ("GET", "/v1/admin/tenants", None,
                                {"X-Admin-Key": "tna_" + "A" * 43}),
            "unknown key id": ("POST", "/v1/auth", {"api_key": "tnk_%024d_%s" % (7, "A" * 43)}, {}),
            "known id, wrong secret": ("POST", "/v1/auth", {"api_key": wrong_secret}, {}),
        }
        seen = {k: [] for k in attacks}
        stop = time.time() + 4

        def flood(names):
            c = tnlib.Client(d.port, None, leak_check)
            while time.time() < stop:
                for n in names:
                    m, path, body, h = attacks[n]
                    seen[n].append(c.request(m, path, json_body=body, headers=h).status)
        names = list(attacks)
        threads = [threading.Thread(target=flood, args=(names[i:] + names[:i],)) for i in range(4)]
        for th in threads:
            th.start()
        good = {"token": tnlib.Client(d.port, {"Authorization": "Bearer " + tok}),
                "admin key": tnlib.Client(d.port, {"X-Admin-Key": ak}),
                "API key": tnlib.Client(d.port)}
        served = {k: [] for k in good}
        time.sleep(0.3)
        while time.time() < stop - 0.2:
            for name, c in good.items():
                t0 = time.time()
                if name == "token":
                    r = c.request("GET", "/v1/me")
                elif name == "admin key":
                    r = c.request("GET", "/v1/admin/tenants")
                else:
                    r = c.request("POST", "/v1/auth", json_body={"api_key": key})
                served[name].append((r.status, time.time() - t0))
            time.sleep(0.1)
        for th in threads:
            th.join()
        for name, got in served.items():
            S.check(len(got) >= 10, "%s used during the flood (%d times)" % (name, len(got)))
            S.check(all(st == 200 for st, _ in got),
                    "%s served during the flood: %r" % (name, sorted({st for st, _ in got})))
            S.check(max(dt for _, dt in got) < 2.0,
                    "%s answered promptly (slowest %.2f s)" % (name, max(dt for _, dt in got)))
        counts = {n: (len(v), v.count(401), v.count(429)) for n, v in seen.items()}
        print("flood (requests, 401, 429): %r" % counts, flush=True)
        for n, v in seen.items():
            S.check(v.count(429) > 0 and set(v) <= {401, 429},
                    "%s: throttled (429 past the budget), nothing else: %r" % (n, sorted(set(v))))
            S.check(v[0] == 401, "%s: the first failure is a plain 401" % n)
        S.eq(d.stop(), 0, "daemon stops cleanly")
        d = None
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "tenantry.db"), uri=True)
        rows = con.execute("SELECT count(*) FROM _audit WHERE action = 'auth.failure'").fetchone()[0]
        con.close()
        # Four buckets (anon, admin, the known key, ...) of 20 plus 0.2/s each.
        S.check(rows <= 4 * (20 + 2) and sum(c[0] for c in counts.values()) > 200,
                "audit rows bounded by the budget, not the flood: %d rows for %d requests"
                % (rows, sum(c[0] for c in counts.values())))
    finally:
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)


def vm(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024  # MiB
    return 0


def test_list_memory():
    """Concurrent lists of large items: a page is capped by bytes as well as
    by count (about 1 MiB, like a DynamoDB Query page), the cursor goes on
    where it stopped, and the daemon's peak resident size stays bounded."""
    import threading
    data = tnlib.tmpdir()
    d = None
    try:
        ak = tnlib.init_store(data)
        # Under AddressSanitizer freed memory is held in a quarantine (256 MiB
        # by default), which would count as resident: keep it small.
        asan = ":".join(x for x in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=4")
                        if x)
        d = tnlib.start_daemon(data, ["--quiet", "--rate", "100000", "--burst", "100000"],
                               env={"ASAN_OPTIONS": asan})
        adm = tnlib.Client(d.port, {"X-Admin-Key": ak})
        t = adm.request("POST", "/v1/admin/tenants", json_body={"name": "big"}).json()
        key = adm.request("POST", "/v1/admin/tenants/%s/keys" % t["id"],
                          json_body={"scopes": ALL_SCOPES}).json()["api_key"]
        tok = tnlib.Client(d.port).request("POST", "/v1/auth",
                                           json_body={"api_key": key}).json()["token"]
        c = tnlib.Client(d.port, {"Authorization": "Bearer " + tok})
        n_items = 200
        for i in range(n_items):  # 200 items of 60 KiB: 12 MiB in all
            r = c.request("PUT", "/v1/items/big-%03d" % i,
                          json_body={"data": {"i": i, "pad": "%03d" % i * 20000}})
            S.check(r.status == 201, "large item %d stored: %d" % (i, r.status))
        base = vm(d.pid, "VmHWM")
        errors = []
        sizes = []

        def lister():
            cc = tnlib.Client(d.port, {"Authorization": "Bearer " + tok}, timeout=60)
            for _ in range(3):
                seen, cursor, pages = [], None, 0
                while pages < 500:
                    q = "/v1/items?limit=1000" + ("&cursor=" + cursor if cursor else "")
                    r = cc.request("GET", q)
                    if r.status != 200:
                        errors.append(r.status)
                        return
                    sizes.append(len(r.body))
                    j = r.json()
                    seen += [it["id"] for it in j["items"]]
                    cursor, pages = j["next_cursor"], pages + 1
                    if not cursor:
                        break
                if seen != ["big-%03d" % i for i in range(n_items)]:
                    errors.append("listing incomplete: %d ids" % len(seen))
        ts = [threading.Thread(target=lister) for _ in range(24)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        peak = vm(d.pid, "VmHWM")
        print("list memory: peak RSS %d MiB (%d MiB before), largest page %d bytes"
              % (peak, base, max(sizes or [0])), flush=True)
        S.check(not errors, "every listing complete and in order: %r" % errors[:5])
        S.check(max(sizes or [0]) <= (1 << 20) + 70000,
                "a page is at most about 1 MiB (largest %d bytes)" % max(sizes or [0]))
        # AddressSanitizer's allocator and shadow memory roughly double it.
        with open(tnlib.TENANTRY, "rb") as f:
            bound = 96 if b"__asan_init" in f.read() else 48
        S.check(peak - base <= bound, "peak RSS bounded under concurrent large lists: +%d MiB "
                "(bound %d; 12 MiB lists without a page cap took +300 MiB)" % (peak - base, bound))
        S.eq(d.stop(), 0, "daemon stops cleanly")
        d = None
    finally:
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_half_open_flood():
    """1,100 connections from one local program that never finish their
    headers (and reconnect when closed) must not starve a client that sends a
    complete request: it is answered within a second."""
    import resource
    import select
    import threading
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1500, hard), hard))
    data = tnlib.tmpdir()
    d = None
    socks = []
    done = threading.Event()
    try:
        tnlib.init_store(data)
        d = tnlib.start_daemon(data, ["--quiet"])  # 1024 connections, 30 s header deadline
        opened = [0]

        def flood():
            while not done.is_set():
                while len(socks) < 1100 and not done.is_set():
                    s = socket.socket()
                    s.settimeout(0.3)
                    try:
                        s.connect(("127.0.0.1", d.port))
                        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Wait: ")
                        socks.append(s)
                        opened[0] += 1
                    except OSError:
                        s.close()
                        break  # the backlog is full: try again shortly
                # Whatever the server closed is reopened (a reconnecting client).
                if socks:
                    p = select.poll()
                    by_fd = {s.fileno(): s for s in socks}
                    for fd in by_fd:
                        p.register(fd, select.POLLIN)
                    for fd, _ in p.poll(50):
                        s = by_fd[fd]
                        try:
                            gone = s.recv(4096) == b""
                        except OSError:
                            gone = True
                        if gone:
                            socks.remove(s)
                            s.close()
                else:
                    time.sleep(0.05)
        th = threading.Thread(target=flood)
        th.start()
        deadline = time.time() + 20
        while opened[0] < 1100 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        print("half-open flood: %d connections opened, %d held" % (opened[0], len(socks)),
              flush=True)
        S.check(opened[0] >= 1024, "the flood filled the server's connection slots (%d)"
                % opened[0])
        waits = []
        for i in range(5):
            t0 = time.time()
            try:
                c = socket.create_connection(("127.0.0.1", d.port), timeout=5)
                c.settimeout(5)
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                got = b""
                while b"\r\n\r\n" not in got:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                c.close()
                ok = got.startswith(b"HTTP/1.1 200")
            except OSError:
                ok = False
            waits.append((ok, round(time.time() - t0, 3)))
            time.sleep(0.3)
        print("complete requests during the flood (ok, seconds): %r" % waits, flush=True)
        S.check(all(ok and dt < 1.0 for ok, dt in waits),
                "a complete request is answered within a second: %r" % waits)
        done.set()
        th.join()
        alive_d = d.proc.poll() is None
        S.check(alive_d, "daemon alive after the flood")
        S.eq(d.stop(), 0, "daemon stops cleanly")
        d = None
    finally:
        done.set()
        for s in socks:
            s.close()
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)


SQLISH = ["' OR '1'='1", "1; DROP TABLE _items; --", "\" OR \"\"=\"", "x') UNION SELECT * FROM _tenants --",
          "%27%20OR%201%3D1--", "items WHERE 1=1", "*", "%", "_", "0 OR 1", "'); DELETE FROM items; --",
          "$(id)", "`x`", "NULL", "-1", "1e999", "9223372036854775808"]


def test_sql_looking_input():
    import urllib.parse as up
    before = snapshot_b()
    a = tenant(E.tok_a)
    adm = tnlib.Client(E.d.port, {"X-Admin-Key": E.admin_key}, leak_check)
    for s in SQLISH:
        q = up.quote(s, safe="")
        # Item ids: valid-looking ids are just absent; invalid ones 400 on create.
        r = a.request("GET", "/v1/items/" + q)
        S.check(r.status in (400, 404), "GET item %r: %d" % (s, r.status))
        r = a.request("DELETE", "/v1/items/" + q)
        S.check(r.status in (400, 404), "DELETE item %r: %d" % (s, r.status))
        r = a.request("PUT", "/v1/items/" + q, json_body={"data": {"v": s}})
        S.check(r.status in (200, 201, 400, 404), "PUT item %r: %d" % (s, r.status))
        r = a.request("POST", "/v1/items", json_body={"id": s, "data": s})
        ok = re.fullmatch(r"[A-Za-z0-9._:-]{1,256}", s) is not None
        S.check(r.status in ((201, 409) if ok else (400,)), "POST item id %r: %d" % (s, r.status))
        # JSON values are stored verbatim and come back as given.
        r = a.request("POST", "/v1/items", json_body={"data": {s: s, "n": [s]}})
        S.eq(r.status, 201, "SQL-looking JSON value %r" % s)
        if r.status == 201:
            got = a.request("GET", "/v1/items/" + r.json()["id"]).json()["data"]
            S.eq(got, {s: s, "n": [s]}, "value kept verbatim")
        # File names.
        r = a.request("PUT", "/v1/files/" + q, body=b"sqlish")
        S.check(r.status in (201, 400), "PUT file %r: %d" % (s, r.status))
        r = a.request("GET", "/v1/files/" + q)
        S.check(r.status in (200, 400, 404), "GET file %r: %d" % (s, r.status))
        # Cursor and limit.
        for path in ("/v1/items", "/v1/files"):
            r = a.request("GET", path + "?cursor=" + q)
            S.eq(r.status, 400, "%s cursor %r" % (path, s))
            r = a.request("GET", path + "?limit=" + q)
            S.eq(r.status, 400, "%s limit %r" % (path, s))
        r = adm.request("GET", "/v1/admin/audit?cursor=" + q)
        S.eq(r.status, 400, "audit cursor %r" % s)
        # Tenant names and ids in the admin API.
        r = adm.request("POST", "/v1/admin/tenants", json_body={"name": s})
        S.check(r.status in (201, 400, 409), "tenant name %r: %d" % (s, r.status))
        if r.status == 201:
            adm.request("DELETE", "/v1/admin/tenants/" + r.json()["id"])
        r = adm.request("PATCH", "/v1/admin/tenants/" + q, json_body={"name": "renamed"})
        S.check(r.status in (400, 404), "PATCH tenant id %r: %d" % (s, r.status))
        r = adm.request("PATCH", "/v1/admin/tenants/" + E.tb["id"], json_body={"name": s})
        S.check(r.status in (200, 400, 409), "rename b to %r: %d" % (s, r.status))
        if r.status == 200:
            adm.request("PATCH", "/v1/admin/tenants/" + E.tb["id"], json_body={"name": "bravo"})
        r = adm.request("DELETE", "/v1/admin/tenants/" + q)
        S.check(r.status in (400, 404), "DELETE tenant id %r: %d" % (s, r.status))
        r = adm.request("POST", "/v1/admin/tenants/%s/keys" % q, json_body={"scopes": ["items:read"]})
        S.check(r.status in (400, 404), "keys for tenant id %r: %d" % (s, r.status))
        r = adm.request("POST", "/v1/admin/tenants/%s/keys" % E.ta["id"], json_body={"scopes": [s]})
        S.eq(r.status, 400, "scope %r" % s)
        r = adm.request("DELETE", "/v1/admin/keys/" + q)
        S.check(r.status in (400, 404), "revoke key id %r: %d" % (s, r.status))
        r = adm.request("POST", "/v1/admin/keys/%s/rotate" % q, json_body={})
        S.check(r.status in (400, 404), "rotate key id %r: %d" % (s, r.status))
        r = tnlib.Client(E.d.port, None, leak_check).request("POST", "/v1/auth",
                                                              json_body={"api_key": s})
        S.check(r.status in (400, 401), "api_key %r: %d" % (s, r.status))
        r = tnlib.Client(E.d.port, {"Authorization": "Bearer " + s}, leak_check).request(
            "GET", "/v1/me")
        S.eq(r.status, 401, "bearer %r" % s)
    after = snapshot_b()
    S.check(before == after, "tenant b's items and files unchanged")
    S.eq(tenant(E.tok_b).request("GET", "/v1/items/b-item").json()["data"], {"secret": B_SECRET},
         "b's item intact")
    alive("SQL-looking input")


def test_cross_tenant_reads_never_leak():
    a = tenant(E.tok_a)
    for m, p in (("GET", "/v1/items/b-item"), ("GET", "/v1/files/b-file.txt"),
                 ("DELETE", "/v1/items/b-item"), ("DELETE", "/v1/files/b-file.txt"),
                 ("GET", "/v1/items?limit=1000"), ("GET", "/v1/files?limit=1000")):
        r = a.request(m, p)
        S.check(r.status in (200, 404), "%s %s as a: %d" % (m, p, r.status))
    r = a.request("GET", "/v1/items?cursor=" + E.cursor_b)
    S.eq(r.status, 400, "b's cursor refused for a")
    S.eq(tenant(E.tok_b).request("GET", "/v1/files/b-file.txt").body, B_SECRET.encode(),
         "b's file intact")


def console(sql, timeout=60):
    """`tenantry sql --tenant acme -c sql` beside the running daemon."""
    return tnlib.tn(["sql", "--data", E.data, "--tenant", "acme", "--json", "-c", sql],
                    timeout=timeout)


def write_locked():
    """True while some connection holds the store's write lock."""
    db = sqlite3.connect(os.path.join(E.data, "tenantry.db"), timeout=0,
                         isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        db.close()


def test_console_runaway_does_not_lock_others_out():
    """A console that takes the write lock and runs a statement with no end
    (a recursive CTE, a six-way self-join) is stopped by its time budget; a
    write of tenant b through the daemon, made while the lock is held,
    succeeds in time; nothing of the console's transaction is kept."""
    import subprocess
    a = tenant(E.tok_a)
    for i in range(200):
        a.request("PUT", "/v1/items/join-%d" % i, json_body={"data": i})
    for n, endless in enumerate((
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
            "SELECT count(n) FROM r",
            "SELECT count(*) FROM items a, items b, items c, items d, items e, items f")):
        sql = ("BEGIN IMMEDIATE; INSERT INTO items (id, data) VALUES ('console-%d', '{}'); "
               "%s; COMMIT" % (n, endless))
        t0 = time.monotonic()
        p = subprocess.Popen([tnlib.TENANTRY, "sql", "--data", E.data, "--tenant", "acme",
                              "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            deadline = time.monotonic() + 5
            while not write_locked() and time.monotonic() < deadline and p.poll() is None:
                time.sleep(0.01)
            S.check(write_locked(), "the console holds the write lock")
            t1 = time.monotonic()
            r = tenant(E.tok_b).request("PUT", "/v1/items/during-console-%d" % n,
                                        json_body={"data": {"s": B_SECRET}})
            waited = time.monotonic() - t1
            S.eq(r.status, 201, "b's write while a console holds the lock")
            S.check(waited < 5.0, "b's write waited %.2f s, less than the busy timeout" % waited)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        took = time.monotonic() - t0
        S.check(p.returncode != 0, "the runaway console fails")
        S.check("time budget" in err, "a clear error: %r" % err[-200:])
        S.check(took < 10, "stopped after %.1f s" % took)
        S.eq(a.request("GET", "/v1/items/console-%d" % n).status, 404,
             "the console's transaction was undone")
    alive("a runaway console")


def test_console_quota_and_files():
    """The item quota holds for tenant SQL (an INSERT ... SELECT over a
    generator) and for the API at once; the console cannot rewrite files."""
    adm = tnlib.Client(E.d.port, {"X-Admin-Key": E.admin_key})
    a = tenant(E.tok_a)
    have = len(a.request("GET", "/v1/items?limit=1000").json()["items"])
    r = adm.request("PATCH", "/v1/admin/tenants/" + E.ta["id"],
                    json_body={"settings": {"max_items": have + 5}})
    S.eq(r.status, 200, "set acme's item quota")
    code, out, err = console("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
                             "WHERE n < 100000) INSERT INTO items (id, data) "
                             "SELECT 'gen-' || n, '{}' FROM r")
    S.check(code != 0 and "quota exceeded" in err, "generator insert refused: %r" % err[-200:])
    S.eq(len(a.request("GET", "/v1/items?limit=1000").json()["items"]), have,
         "nothing of it was stored")
    code, out, err = console("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
                             "WHERE n < 5) INSERT INTO items (id, data) "
                             "SELECT 'gen-' || n, '{}' FROM r")
    S.eq(code, 0, "up to the quota: %r" % err[-200:])
    r = a.request("POST", "/v1/items", json_body={"data": 1})
    S.eq((r.status, r.json()), (507, {"error": "quota exceeded"}), "API at the quota")
    r = a.request("PUT", "/v1/items/gen-1", json_body={"data": 2})
    S.eq(r.status, 200, "replacing at the quota")
    r = adm.request("PATCH", "/v1/admin/tenants/" + E.ta["id"],
                    json_body={"settings": {"max_items": None}})
    S.eq(r.status, 200, "quota removed")

    # Files: the console may read them and change nothing.
    sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    before = a.request("GET", "/v1/files?limit=1000").json()["files"]
    for sql in ("UPDATE files SET size = 0",
                "UPDATE files SET size = 9223372036854775807",
                "DELETE FROM files WHERE name = 'a-file.txt'",
                "INSERT INTO files (name, size, sha256) VALUES ('a-file.txt', 0, '%s')" % sha,
                "INSERT INTO files (name, size, sha256) VALUES ('x', 9223372036854775807, '%s')"
                % sha,
                "INSERT INTO files (name, size, sha256) VALUES ('../x', 1, '%s')" % sha,
                "INSERT INTO files (name, size, sha256) VALUES ('ok', 1, 'not-a-sha')"):
        code, out, err = console(sql)
        S.check(code != 0, "console file rewrite refused: " + sql)
    after = a.request("GET", "/v1/files?limit=1000").json()["files"]
    S.check(after == before, "files rows unchanged: %r" % [
        (f["name"], f["size"]) for f in after if f not in before])
    S.eq(a.request("GET", "/v1/files/a-file.txt").body, b"0123456789", "a's file intact")
    code, out, err = console("SELECT name, size FROM files ORDER BY name")
    S.check(code == 0 and "a-file.txt" in out, "the console reads files")

    # The byte quota: checked with the record, so a second upload that passed
    # the check at its start still cannot pass the quota; never a 500.
    used = sum(f["size"] for f in before)
    r = adm.request("PATCH", "/v1/admin/tenants/" + E.ta["id"],
                    json_body={"settings": {"max_file_bytes": used + 100}})
    S.eq(r.status, 200, "set acme's byte quota")
    import http.client
    slow = http.client.HTTPConnection("127.0.0.1", E.d.port, timeout=30)
    slow.putrequest("PUT", "/v1/files/race-1")
    slow.putheader("Authorization", "Bearer " + E.tok_a)
    slow.putheader("Content-Length", "60")
    slow.endheaders()
    slow.send(b"x" * 30)
    time.sleep(0.3)
    r = a.request("PUT", "/v1/files/race-2", body=b"y" * 60)
    S.eq(r.status, 201, "the second upload, finished first")
    slow.send(b"x" * 30)
    resp = slow.getresponse()
    body = resp.read()
    slow.close()
    S.eq((resp.status, json.loads(body)), (507, {"error": "quota exceeded"}),
         "the first upload, over the quota when it is recorded")
    S.eq(a.request("GET", "/v1/files/race-1").status, 404, "its bytes were not kept")
    r = a.request("PUT", "/v1/files/race-2", body=b"z" * 100)
    S.eq(r.status, 201, "a replacement counts the old size out")
    r = a.request("PUT", "/v1/files/race-3", body=b"z")
    S.eq(r.status, 507, "over the quota by one byte")
    S.eq(a.request("DELETE", "/v1/files/race-2").status, 204, "delete")
    r = adm.request("PATCH", "/v1/admin/tenants/" + E.ta["id"],
                    json_body={"settings": {"max_file_bytes": None}})
    S.eq(r.status, 200, "byte quota removed")
    alive("console quota")


def main():
    data = tnlib.tmpdir()
    E.data = data
    E.d = None
    try:
        E.admin_key = tnlib.init_store(data)
        E.d = tnlib.start_daemon(data, ["--auth-fail-burst", "100000", "--rate", "100000",
                                        "--burst", "100000", "--max-file-bytes", "262144",
                                        "--quiet"])
        adm = tnlib.Client(E.d.port, {"X-Admin-Key": E.admin_key})
        ids = []
        for name in ("acme", "bravo"):
            t = adm.request("POST", "/v1/admin/tenants", json_body={"name": name}).json()
            k = adm.request("POST", "/v1/admin/tenants/%s/keys" % t["id"],
                            json_body={"scopes": ALL_SCOPES}).json()["api_key"]
            tok = tnlib.Client(E.d.port).request("POST", "/v1/auth",
                                                 json_body={"api_key": k}).json()["token"]
            ids.append((t, tok))
        (E.ta, E.tok_a), (E.tb, E.tok_b) = ids
        b = tenant(E.tok_b)
        S.eq(b.request("PUT", "/v1/items/b-item", json_body={"data": {"secret": B_SECRET}}).status,
             201, "b's item")
        for i in range(3):
            b.request("PUT", "/v1/items/b-%d" % i, json_body={"data": {"s": B_SECRET}})
        S.eq(b.request("PUT", "/v1/files/b-file.txt", body=B_SECRET.encode()).status, 201, "b's file")
        E.cursor_b = b.request("GET", "/v1/items?limit=1").json()["next_cursor"]
        a = tenant(E.tok_a)
        a.request("PUT", "/v1/files/a-file.txt", body=b"0123456789")
        for t in (test_crlf_in_headers, test_oversized_headers, test_oversized_bodies,
                  test_refused_body_answer,
                  test_deep_json, test_sql_looking_input, test_cross_tenant_reads_never_leak,
                  test_console_runaway_does_not_lock_others_out, test_console_quota_and_files,
                  test_slow_client, test_admin_key_guessing, test_auth_flood, test_list_memory,
                  test_half_open_flood):
            S.run(t)
        rc = E.d.stop()
        E.d = None
        S.eq(rc, 0, "daemon exits 0 on SIGTERM")
    finally:
        if E.d:
            E.d.stop()
        shutil.rmtree(data, ignore_errors=True)
    S.finish()


if __name__ == "__main__":
    main()
