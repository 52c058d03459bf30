"""faultproxy - an HTTP-aware, fault-injecting proxy on loopback between the
sync engine and moto_server.

The engine reaches moto through it (AWS_ENDPOINT_URL = proxy.url).  Every
request is read whole, classified by kind, counted, and then either forwarded
to moto and answered with moto's response, or answered with a fault, by the
first rule of the plan that matches it:

    kind         "ddb:<operation>" from X-Amz-Target ("ddb:PutItem",
                 "ddb:BatchWriteItem", ...), or "s3:<what>" for S3: "s3:put"
                 (object), "s3:part" (UploadPart), "s3:create" and
                 "s3:complete" (multipart), "s3:abort", "s3:delete", "s3:head",
                 "s3:get"
    rule         Rule(match, fault, count=N | prob=p, seed=s, forward=...)
                 match is a kind prefix ("ddb:", "s3:put", "" for all) or a
                 callable(kind, request) -> bool; count bounds how many
                 requests get the fault, prob picks requests with a seeded
                 random source (reproducible).

Faults:
    reset        RST (SO_LINGER 0) before or (forward=True) after moto saw it
    hang         read the request, never answer (until the proxy stops)
    stall        forward, answer after `delay` seconds
    http500      500 with the service's error document
    http503      503 (S3: SlowDown, DynamoDB: ServiceUnavailable)
    throttle     400 ThrottlingException (DynamoDB JSON __type)
    ptee         400 ProvisionedThroughputExceededException
    unprocessed  BatchWriteItem: forward only the first half of the items,
                 report the rest back as UnprocessedItems
    fake_unprocessed  BatchWriteItem: forward all, but report the second
                 half as UnprocessedItems anyway (a resend is idempotent)
    truncate     Content-Length larger than the bytes sent, then close
                 (forward=True: of moto's real answer; False: of a fake 200)
    garbage      200 with a body that is not the service's format (non-JSON
                 for DynamoDB, wrong XML for S3); forward=False by default,
                 so believing it would mark unwritten rows as written
    empty200     200 with an empty body, without forwarding
    tx_throttled TransactWriteItems: not forwarded, cancelled with a
                 ThrottlingError reason for the first item and None for the rest
    html400      400 with a proxy's HTML page instead of the service's error
    bad_unprocessed  BatchWriteItem: not forwarded, answered 200 with an
                 UnprocessedItems entry that names no row
    slow         forward, then trickle the answer `chunk` bytes every `delay`
    denied       not forwarded: DynamoDB's 400 AccessDeniedException, S3's 403
                 AccessDenied (a role whose policy leaves out these keys)

proxy.log holds (time, kind, fault or None) for every request; counts() and
faults() count them per kind.  All traffic stays on 127.0.0.1.
"""
import json
import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import awslib  # noqa: E402

DDB_PREFIX = "com.amazonaws.dynamodb.v20120810#"


class Rule:
    def __init__(self, match, fault, count=None, prob=None, seed=1, forward=None, delay=0.0,
                 chunk=1):
        self.match = match
        self.fault = fault
        self.left = count
        self.prob = prob
        self.rng = random.Random(seed)
        self.forward = forward
        self.delay = delay
        self.chunk = chunk
        self.hits = 0

    def applies(self, kind, req):
        if self.left is not None and self.left <= 0:
            return False
        if callable(self.match):
            if not self.match(kind, req):
                return False
        elif not kind.startswith(self.match):
            return False
        if self.prob is not None and self.rng.random() >= self.prob:
            return False
        if self.left is not None:
            self.left -= 1
        self.hits += 1
        return True


class Request:
    def __init__(self, method, target, headers, body):
        self.method = method
        self.target = target
        self.headers = headers  # list of (name, value), as received
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def raw(self, body=None):
        body = self.body if body is None else body
        lines = ["%s %s HTTP/1.1" % (self.method, self.target)]
        for k, v in self.headers:
            if k.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            lines.append("%s: %s" % (k, v))
        lines.append("Content-Length: %d" % len(body))
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def raw(self, content_length=None):
        lines = ["HTTP/1.1 %d %s" % (self.status, self.reason)]
        for k, v in self.headers:
            if k.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            lines.append("%s: %s" % (k, v))
        n = len(self.body) if content_length is None else content_length
        lines.append("Content-Length: %d" % n)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def kind_of(req):
    target = req.header("X-Amz-Target")
    if target:
        return "ddb:" + target.split(".")[-1]
    _, _, query = req.target.partition("?")
    if req.method == "POST" and req.body.startswith(b"Action="):
        return "sts:" + req.body.decode("latin-1")[7:].split("&")[0]
    m = req.method
    if m == "PUT":
        return "s3:part" if "partNumber=" in query else "s3:put"
    if m == "POST":
        return "s3:create" if "uploads" in query.split("&")[0] else "s3:complete"
    if m == "DELETE":
        return "s3:abort" if "uploadId=" in query else "s3:delete"
    if m == "HEAD":
        return "s3:head"
    return "s3:" + m.lower()


def _keys_of(kind, req):
    """The rows (PutItem, GetItem, BatchWriteItem) or object a request names."""
    try:
        if kind.startswith("s3:"):
            path, _, query = req.target.partition("?")
            part = [q for q in query.split("&") if q.startswith("partNumber=")]
            return [path + ("#" + part[0][11:] if part else "")]
        doc = json.loads(req.body)
        if kind == "ddb:PutItem":
            items = [doc["Item"]]
        elif kind == "ddb:GetItem":
            items = [doc["Key"]]
        elif kind == "ddb:BatchWriteItem":
            items = [r["PutRequest"]["Item"] for reqs in doc["RequestItems"].values()
                     for r in reqs]
        elif kind == "ddb:TransactWriteItems":
            items = [t["Put"]["Item"] for t in doc["TransactItems"]]
        else:
            return []
        return ["%s %s" % (i["pk"]["S"], i["sk"]["S"]) for i in items]
    except (ValueError, KeyError, TypeError):
        return []


class _Conn:
    """Buffered reads from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise EOFError
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def rest(self):
        try:
            while True:
                self._fill()
        except (EOFError, OSError):
            pass
        data, self.buf = self.buf, b""
        return data

    def headers(self):
        hs = []
        while True:
            line = self.line()
            if not line:
                return hs
            k, _, v = line.partition(":")
            hs.append((k.strip(), v.strip()))

    def body(self, hs, until_close=False):
        get = {k.lower(): v for k, v in hs}
        if get.get("transfer-encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(self.line().split(";")[0], 16)
                if n == 0:
                    while self.line():
                        pass
                    return out
                out += self.exactly(n)
                self.line()
        if "content-length" in get:
            return self.exactly(int(get["content-length"]))
        return self.rest() if until_close else b""


def _rst(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    """proxy = FaultProxy(moto_port); proxy.start(); proxy.plan(Rule(...), ...)."""

    def __init__(self, target, port=None):
        self.target = target
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port or 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.rules = []
        self.log = []  # (time, kind, fault or None)
        self.keys = []  # per log entry: the rows or object the request names
        self.socks = set()
        self.stopping = threading.Event()
        self.thread = None

    # ---- the plan and the counters ----

    def plan(self, *rules):
        """Replaces the plan (no rules: forward everything)."""
        with self.lock:
            self.rules = list(rules)

    def clear(self):
        with self.lock:
            self.rules = []
            self.log = []
            self.keys = []

    def forget(self):
        """Clears the log, keeping the plan and what is left of each rule."""
        with self.lock:
            self.log = []
            self.keys = []

    def counts(self, prefix=""):
        with self.lock:
            out = {}
            for _, k, _ in self.log:
                if k.startswith(prefix):
                    out[k] = out.get(k, 0) + 1
            return out

    def faults(self, prefix=""):
        with self.lock:
            out = {}
            for _, k, f in self.log:
                if f and k.startswith(prefix):
                    out[f] = out.get(f, 0) + 1
            return out

    def per_key(self, kinds):
        """How many requests of kinds (a tuple) named each row ("pk sk"),
        object path or part ("path#N")."""
        with self.lock:
            out = {}
            for (_, k, _), keys in zip(self.log, self.keys):
                if k in kinds:
                    for key in keys:
                        out[key] = out.get(key, 0) + 1
            return out

    def times(self, kinds):
        """When each request of kinds (a tuple) arrived."""
        with self.lock:
            return [t for t, k, _ in self.log if k in kinds]

    # ---- serving ----

    def start(self):
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        if self.thread:
            self.thread.join(2)
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self):
        awslib.accept_loop(self.lsock, lambda: not self.stopping.is_set(), self._start)

    def _start(self, c):
        with self.lock:
            self.socks.add(c)
        threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        conn = _Conn(c)
        try:
            while not self.stopping.is_set():
                line = conn.line()
                if not line:
                    continue
                method, target, _ = line.split(" ", 2)
                hs = conn.headers()
                req = Request(method, target, hs, conn.body(hs))
                if not self._handle(c, req):
                    return
        except (EOFError, OSError, ValueError):
            pass
        finally:
            with self.lock:
                self.socks.discard(c)
            try:
                c.close()
            except OSError:
                pass

    def _pick(self, kind, req):
        with self.lock:
            rule = None
            for r in self.rules:
                if r.applies(kind, req):
                    rule = r
                    break
            self.log.append((time.time(), kind, rule.fault if rule else None))
            self.keys.append(_keys_of(kind, req))
            return rule

    def _forward(self, req, body=None):
        u = socket.create_connection(("127.0.0.1", self.target), timeout=30)
        try:
            u.sendall(req.raw(body))
            uc = _Conn(u)
            status = uc.line().split(" ", 2)
            hs = uc.headers()
            data = b"" if req.method == "HEAD" else uc.body(hs, until_close=True)
            return Response(int(status[1]), status[2] if len(status) > 2 else "", hs, data)
        finally:
            u.close()

    def _handle(self, c, req):
        """Answers one request; False when the client connection is done."""
        kind = kind_of(req)
        rule = self._pick(kind, req)
        f = rule.fault if rule else None
        ddb = kind.startswith("ddb:")
        if f is None:
            c.sendall(self._forward(req).raw())
            return True
        if f == "reset":
            if rule.forward:
                self._forward(req)
            _rst(c)
            return False
        if f == "hang":
            self.stopping.wait(120)
            _rst(c)
            return False
        if f == "stall":
            resp = self._forward(req)
            if self.stopping.wait(rule.delay):
                return False
            c.sendall(resp.raw())
            return True
        if f in ("http500", "http503"):
            if rule.forward:
                self._forward(req)
            c.sendall(_error(500 if f == "http500" else 503, ddb).raw())
            return True
        if f in ("throttle", "ptee"):
            t = "ThrottlingException" if f == "throttle" else \
                "ProvisionedThroughputExceededException"
            body = json.dumps({"__type": DDB_PREFIX + t,
                               "message": "The level of configured provisioned throughput "
                                          "for the table was exceeded."}).encode()
            c.sendall(Response(400, "Bad Request",
                               [("Content-Type", "application/x-amz-json-1.0")], body).raw())
            return True
        if f in ("unprocessed", "fake_unprocessed"):
            doc = json.loads(req.body)
            (table, reqs), = doc["RequestItems"].items()
            half = max(1, len(reqs) // 2) if len(reqs) > 1 else 0
            sent, held = reqs[:half], reqs[half:]
            if f == "fake_unprocessed":
                resp = self._forward(req)
            else:
                resp = self._forward(req, json.dumps(
                    {"RequestItems": {table: sent}}).encode()) if sent else None
            if resp is not None and resp.status != 200:
                c.sendall(resp.raw())
                return True
            body = json.dumps({"UnprocessedItems": {table: held} if held else {}}).encode()
            c.sendall(Response(200, "OK", [("Content-Type", "application/x-amz-json-1.0")],
                               body).raw())
            return True
        if f == "truncate":
            if rule.forward:
                resp = self._forward(req)
            else:
                resp = Response(200, "OK", [("Content-Type", "application/x-amz-json-1.0")],
                                b'{"UnprocessedItems":{}}' if ddb else b"")
            full = resp.body or b"{}"
            resp.body = full[:len(full) // 2]
            c.sendall(resp.raw(content_length=len(full) + 100))
            _rst(c)
            return False
        if f == "garbage":
            if rule.forward:
                self._forward(req)
            if ddb:
                body, ct = b"<html><body>502 upstream gone</body></html>", "text/html"
            else:
                body, ct = (b'<?xml version="1.0"?><Unexpected><Nothing>here</Nothing>'
                            b'</Unexpected>'), "application/xml"
            c.sendall(Response(200, "OK", [("Content-Type", ct)], body).raw())
            return True
        if f == "tx_throttled":
            n = len(json.loads(req.body)["TransactItems"])
            reasons = [{"Code": "ThrottlingError", "Message": "Throughput exceeds the current "
                        "capacity for one or more global secondary indexes."}] + \
                [{"Code": "None"}] * (n - 1)
            body = json.dumps({"__type": DDB_PREFIX + "TransactionCanceledException",
                               "message": "Transaction cancelled, please refer cancellation "
                                          "reasons for specific reasons",
                               "CancellationReasons": reasons}).encode()
            c.sendall(Response(400, "Bad Request",
                               [("Content-Type", "application/x-amz-json-1.0")], body).raw())
            return True
        if f == "denied":
            if ddb:
                body = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException",
                                   "message": "not authorized to perform this action"}).encode()
                c.sendall(Response(400, "Bad Request",
                                   [("Content-Type", "application/x-amz-json-1.0")], body).raw())
            else:
                body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied"
                        b"</Code><Message>Access Denied</Message></Error>")
                c.sendall(Response(403, "Forbidden", [("Content-Type", "application/xml")],
                                   body).raw())
            return True
        if f == "html400":
            body = b"<html><head><title>400 Bad Request</title></head><body>nginx</body></html>"
            c.sendall(Response(400, "Bad Request", [("Content-Type", "text/html")], body).raw())
            return True
        if f == "bad_unprocessed":
            (table, _), = json.loads(req.body)["RequestItems"].items()
            body = json.dumps({"UnprocessedItems": {table: [{"PutRequest": {"Item": {}}}]}})
            c.sendall(Response(200, "OK", [("Content-Type", "application/x-amz-json-1.0")],
                               body.encode()).raw())
            return True
        if f == "empty200":
            c.sendall(Response(200, "OK", [], b"").raw())
            return True
        if f == "slow":
            raw = self._forward(req).raw()
            for i in range(0, len(raw), rule.chunk):
                if self.stopping.wait(rule.delay):
                    return False
                c.sendall(raw[i:i + rule.chunk])
            return True
        raise ValueError("unknown fault " + f)


def _error(status, ddb):
    reason = "Internal Server Error" if status == 500 else "Service Unavailable"
    if ddb:
        t = "InternalServerError" if status == 500 else "ServiceUnavailable"
        body = json.dumps({"__type": DDB_PREFIX + t, "message": reason}).encode()
        return Response(status, reason, [("Content-Type", "application/x-amz-json-1.0")], body)
    code = "InternalError" if status == 500 else "SlowDown"
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code>"
            "<Message>%s</Message></Error>" % (code, reason)).encode()
    return Response(status, reason, [("Content-Type", "application/xml")], body)
