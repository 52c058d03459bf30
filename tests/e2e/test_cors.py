"""test_cors - CORS against the running daemon: real preflight requests (the
exact requests a browser sends), the headers on actual responses, the
configuration rules, and a headless Chromium page on another origin calling
the API with fetch() (the browser decides, not our reading of the spec).

Standard library only, plus Debian's chromium for the browser part (installed
by tools/deps.sh --test; without it the browser test fails).
"""
import http.server
import os
import shutil
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnlib  # noqa: E402

S = tnlib.Suite("cors")
ALLOWED = "http://app.localhost:3000"
OTHER = "http://127.0.0.1:%d"  # filled in with the page server's port


class Env:
    pass


E = Env()


def preflight(port, path, origin, method, req_headers=None):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers:
        h["Access-Control-Request-Headers"] = req_headers
    return tnlib.Client(port).request("OPTIONS", path, headers=h)


def test_off_by_default():
    """No origins configured: no CORS header at all, preflights get none."""
    r = preflight(E.plain.port, "/v1/items", ALLOWED, "POST", "authorization, content-type")
    S.check(r.header("Access-Control-Allow-Origin") is None, "no ACAO when CORS is off")
    S.check(r.header("Access-Control-Allow-Methods") is None, "no ACAM when CORS is off")
    S.check(r.header("Vary") is None, "no Vary when CORS is off")
    r = tnlib.Client(E.plain.port).request("GET", "/healthz", headers={"Origin": ALLOWED})
    S.eq(r.status, 200, "healthz")
    S.check(r.header("Access-Control-Allow-Origin") is None, "no ACAO on a GET when off")


def test_preflight_allowed():
    r = preflight(E.d.port, "/v1/items", ALLOWED, "POST", "Authorization, Content-Type")
    S.eq(r.status, 204, "preflight from an allowed origin")
    S.eq(r.header("Access-Control-Allow-Origin"), ALLOWED, "ACAO echoes the origin")
    methods = [m.strip() for m in (r.header("Access-Control-Allow-Methods") or "").split(",")]
    S.check("POST" in methods and "GET" in methods, "ACAM lists the path's methods: %r" % methods)
    S.check("DELETE" not in methods, "ACAM lists only the path's methods: %r" % methods)
    hdrs = (r.header("Access-Control-Allow-Headers") or "").lower()
    S.check("authorization" in hdrs and "content-type" in hdrs, "ACAH: %r" % hdrs)
    S.check("x-admin-key" not in hdrs, "the admin key header is never offered to browsers")
    S.check(r.header("Access-Control-Max-Age") is not None, "preflight is cacheable")
    S.eq(r.header("Vary"), "Origin", "Vary: Origin")
    S.check(r.header("Access-Control-Allow-Credentials") is None, "no credentials by default")
    S.eq(r.body, b"", "preflight has no body")
    # The file routes take the rest of the path; the item routes one segment.
    r = preflight(E.d.port, "/v1/files/a/b.txt", ALLOWED, "PUT")
    S.eq(r.status, 204, "preflight for a file PUT")
    r = preflight(E.d.port, "/v1/items/x1", ALLOWED, "DELETE", "authorization")
    S.eq(r.status, 204, "preflight for an item DELETE")
    # Origins compare without case in scheme and host (browsers send lower case).
    r = preflight(E.d.port, "/v1/items", ALLOWED.upper().replace("HTTP", "http"), "GET")
    S.eq(r.status, 204, "origin host compared without case")


def test_preflight_refused():
    for origin in ("http://evil.example", ALLOWED + ".evil.example", ALLOWED + "/",
                   "null", "https://app.localhost:3000", ALLOWED[:-1]):
        r = preflight(E.d.port, "/v1/items", origin, "POST")
        S.eq(r.status, 403, "preflight from %r" % origin)
        S.check(r.header("Access-Control-Allow-Origin") is None, "no ACAO for %r" % origin)
        S.eq(r.header("Vary"), "Origin", "Vary: Origin on a refusal too")
    r = preflight(E.d.port, "/v1/items", ALLOWED, "DELETE")
    S.eq(r.status, 403, "a method the path does not take")
    r = preflight(E.d.port, "/v1/items", ALLOWED, "GET", "x-admin-key")
    S.eq(r.status, 403, "a request header that is not allowed")
    r = preflight(E.d.port, "/v1/items", ALLOWED, "GET", "authorization, x-tenant-id")
    S.eq(r.status, 403, "an unknown header in the list")
    r = preflight(E.d.port, "/v1/nope", ALLOWED, "GET")
    S.eq(r.status, 404, "preflight for a path that does not exist")


def test_plain_options():
    r = tnlib.Client(E.d.port).request("OPTIONS", "/v1/items/abc")
    S.eq(r.status, 204, "OPTIONS without Origin")
    allow = [m.strip() for m in (r.header("Allow") or "").split(",")]
    S.eq(sorted(allow), sorted(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]), "Allow")


def test_actual_requests():
    c = tnlib.Client(E.d.port, {"Authorization": "Bearer " + E.token, "Origin": ALLOWED})
    r = c.request("PUT", "/v1/items/c1", json_body={"data": {"n": 1}})
    S.check(r.status in (200, 201), "PUT with an allowed Origin: %d" % r.status)
    S.eq(r.header("Access-Control-Allow-Origin"), ALLOWED, "ACAO on the actual response")
    expose = (r.header("Access-Control-Expose-Headers") or "").lower()
    S.check("etag" in expose and "x-request-id" in expose, "ETag is readable: %r" % expose)
    S.eq(r.header("Vary"), "Origin", "Vary on the actual response")
    r = c.request("GET", "/v1/items/nope")
    S.eq(r.status, 404, "errors keep their status")
    S.eq(r.header("Access-Control-Allow-Origin"), ALLOWED, "errors are readable by the app")
    # A wrong origin gets the answer (the server does not enforce CORS; the
    # browser does) but nothing that lets a browser hand it to the page.
    c2 = tnlib.Client(E.d.port, {"Authorization": "Bearer " + E.token,
                                 "Origin": "http://evil.example"})
    r = c2.request("GET", "/v1/items/c1")
    S.check(r.header("Access-Control-Allow-Origin") is None, "no ACAO for another origin")
    S.eq(r.header("Vary"), "Origin", "Vary for another origin")
    # A preflight never authenticates and never reaches a handler: no audit row,
    # no item created, and it works without any credential.
    r = preflight(E.d.port, "/v1/items/c2", ALLOWED, "PUT", "authorization, content-type")
    S.eq(r.status, 204, "preflight without credentials")
    r = tnlib.Client(E.d.port, {"Authorization": "Bearer " + E.token}).request(
        "GET", "/v1/items/c2")
    S.eq(r.status, 404, "the preflight created nothing")


def test_star_and_credentials():
    data = tnlib.tmpdir()
    d = None
    try:
        tnlib.init_store(data)
        d = tnlib.start_daemon(data, ["--cors-origin", "*"])
        r = preflight(d.port, "/v1/items", "http://anything.example", "GET")
        S.eq(r.status, 204, "* allows any origin")
        S.eq(r.header("Access-Control-Allow-Origin"), "*", "ACAO *")
        S.check(r.header("Access-Control-Allow-Credentials") is None, "* never with credentials")
        d.stop()
        d = tnlib.start_daemon(data, ["--cors-origin", ALLOWED, "--cors-credentials"])
        r = preflight(d.port, "/v1/items", ALLOWED, "GET")
        S.eq(r.header("Access-Control-Allow-Origin"), ALLOWED, "exact origin with credentials")
        S.eq(r.header("Access-Control-Allow-Credentials"), "true", "ACAC true")
        d.stop()
        # The environment variable, and a flag overriding it.
        d = tnlib.start_daemon(data, env={"TENANTRY_CORS_ORIGINS": "http://env.example"})
        S.eq(preflight(d.port, "/v1/items", "http://env.example", "GET").status, 204,
             "TENANTRY_CORS_ORIGINS")
        d.stop()
        d = None
    finally:
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_bad_configuration():
    """Each bad setting: one clear message, exit 2, nothing started."""
    data = tnlib.tmpdir()
    try:
        tnlib.init_store(data)
        cases = [
            (["--cors-origin", "*", "--cors-credentials"], "credentials"),
            (["--cors-origin", "*,http://a.example"], "alone"),
            (["--cors-origin", "http://a.example/path"], "scheme://host"),
            (["--cors-origin", "ftp://a.example"], "scheme://host"),
            (["--cors-origin", "http://a.example:99999"], "scheme://host"),
            (["--cors-origin", "null"], "scheme://host"),
            (["--cors-origin", "http://a.example,,http://b.example"], "scheme://host"),
            (["--cors-credentials"], "origins"),
            (["--cors-origin"], "--cors-origin"),
        ]
        for args, word in cases:
            p = tnlib.run(["serve", "--data", data, "--listen",
                           "127.0.0.1:%d" % tnlib.free_port()] + args, timeout=10)
            S.eq(p.returncode, 2, "exit code for %r" % args)
            S.check(word in p.stderr and len(p.stderr.strip().splitlines()) <= 2,
                    "clear message for %r: %r" % (args, p.stderr))
            S.check("listening" not in p.stderr, "nothing started for %r" % args)
    finally:
        shutil.rmtree(data, ignore_errors=True)


# ---- a real browser ------------------------------------------------------------

PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
const api = "http://127.0.0.1:%(api)d";
async function go() {
  const out = [];
  try {
    const r = await fetch(api + "/v1/items/browser1", {method: "PUT",
      headers: {"Authorization": "Bearer %(token)s", "Content-Type": "application/json"},
      body: JSON.stringify({data: {from: "browser"}})});
    out.push("put:" + r.status + ":etag=" + (r.headers.get("ETag") ? "yes" : "no"));
    const g = await fetch(api + "/v1/items/browser1",
      {headers: {"Authorization": "Bearer %(token)s"}});
    const j = await g.json();
    out.push("get:" + g.status + ":" + j.data.from);
  } catch (e) { out.push("error:" + e.name); }
  try {
    // A version above 2^53 read from JSON, sent back with If-Match.
    const g = await fetch(api + "/v1/items/browserv", {headers: {"Authorization": "Bearer %(token)s"}});
    const etag = g.headers.get("ETag");
    const j = await g.json();
    const v = String(j.version);
    out.push("ver:" + (etag === '"' + v + '"' ? "exact" : "differs(" + v + " vs " + etag + ")"));
    const p = await fetch(api + "/v1/items/browserv", {method: "PUT",
      headers: {"Authorization": "Bearer %(token)s", "Content-Type": "application/json",
                "If-Match": '"' + v + '"'},
      body: JSON.stringify({data: {from: "browser", round: 2}})});
    out.push("ifmatch:" + p.status);
  } catch (e) { out.push("ver-error:" + e.name); }
  try {
    const r = await fetch("http://127.0.0.1:%(other)d/v1/items/browser1",
      {headers: {"Authorization": "Bearer %(token)s"}});
    out.push("other:" + r.status);
  } catch (e) { out.push("other:blocked"); }
  document.getElementById("out").textContent = out.join(" ");
}
go();
</script></body></html>"""


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_browser():
    """The browser's requests reach the daemons through tnlib.Forwarder, so
    what the browser reads is scanned by the response checker like every
    other answer.  No browser, or one that cannot run, fails this test:
    tools/deps.sh --test installs Debian's chromium."""
    chromium = find_chromium()
    if not S.check(chromium, "chromium is installed (tools/deps.sh --test installs it)"):
        return
    # The page's origin: a static server on another port.  The daemon E.d allows
    # that origin; E.plain (CORS off) stands for an API that does not.
    api, other = tnlib.Forwarder(E.d.port), tnlib.Forwarder(E.plain.port)
    page_dir = tnlib.tmpdir()
    with open(os.path.join(page_dir, "index.html"), "w") as f:
        f.write(PAGE % {"api": api.port, "other": other.port, "token": E.token})

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=page_dir, **k)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", E.page_port), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    # An item whose version JavaScript cannot hold as a number: the store's
    # versions are (ms << 16) | counter, exact in a double only while the
    # counter's low 4 bits are zero, so give it one that is not (a minute
    # ahead of the clock, as another appliance's write could be).
    import sqlite3
    import time
    c = tnlib.Client(E.d.port, {"Authorization": "Bearer " + E.token})
    S.eq(c.request("PUT", "/v1/items/browserv", json_body={"data": {"n": 1}}).status, 201,
         "item for the version round trip")
    odd = ((int(time.time() * 1000) + 60000) << 16) | 7
    db = sqlite3.connect(os.path.join(E.data, "tenantry.db"), timeout=10)
    db.execute("UPDATE _items SET version = ? WHERE id = 'browserv'", (odd,))
    db.commit()
    db.close()
    S.check(odd > 2**53 and float(odd) != odd, "the version is not exact as a double")
    S.eq(c.request("GET", "/v1/items/browserv").header("ETag"), '"%d"' % odd, "seeded version")
    prof = tnlib.tmpdir()
    scanned = tnlib.CHECKER.responses
    try:
        p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            "--no-first-run", "--user-data-dir=" + prof,
                            "--virtual-time-budget=10000", "--dump-dom",
                            "http://127.0.0.1:%d/index.html" % E.page_port],
                           capture_output=True, text=True, timeout=60)
        out = p.stdout
        i = out.find('<pre id="out">')
        S.check(p.returncode == 0 and i >= 0,
                "the browser ran and printed the page: exit %d, %r" % (p.returncode,
                                                                       p.stderr[-600:]))
        out = out[i:out.find("</pre>", i)] if i >= 0 else out[-400:]
        S.check("put:201:etag=yes" in out or "put:200:etag=yes" in out,
                "the browser's PUT passed the preflight and read ETag: %r" % out)
        S.check("get:200:browser" in out, "the browser read the item back: %r" % out)
        S.check("ver:exact" in out,
                "the browser read the version exactly as the ETag says: %r" % out)
        S.check("ifmatch:200" in out,
                "the browser sent back the version it read with If-Match: 200: %r" % out)
        r = c.request("GET", "/v1/items/browserv")
        S.check(r.json()["data"] == {"from": "browser", "round": 2} and
                int(r.json()["version"]) > odd, "the browser's conditional write landed")
        S.check("other:blocked" in out,
                "the browser blocked an API without CORS: %r" % out)
        # preflight, PUT and GET to E.d, and the preflight to E.plain at least.
        S.check(tnlib.CHECKER.responses - scanned >= 4,
                "the browser's answers were scanned for tenant ids: %d" % (
                    tnlib.CHECKER.responses - scanned))
    finally:
        srv.shutdown()
        srv.server_close()
        api.stop()
        other.stop()
        shutil.rmtree(page_dir, ignore_errors=True)
        shutil.rmtree(prof, ignore_errors=True)


def main():
    E.data = tnlib.tmpdir()
    E.d = E.plain = None
    E.page_port = tnlib.free_port()
    page_origin = "http://127.0.0.1:%d" % E.page_port
    try:
        admin_key = tnlib.init_store(E.data)
        E.d = tnlib.start_daemon(E.data, ["--cors-origin", ALLOWED,
                                          "--cors-origin", page_origin, "--no-sync"])
        E.plain = tnlib.start_daemon(E.data, ["--no-sync"])
        admin = tnlib.Client(E.d.port, {"X-Admin-Key": admin_key})
        t = admin.request("POST", "/v1/admin/tenants", json_body={"name": "web"}).json()
        k = admin.request("POST", "/v1/admin/tenants/%s/keys" % t["id"],
                          json_body={"scopes": ["items:read", "items:write"]}).json()
        r = tnlib.Client(E.d.port).request("POST", "/v1/auth",
                                           json_body={"api_key": k["api_key"]})
        E.token = r.json()["token"]
        for fn in (test_off_by_default, test_preflight_allowed, test_preflight_refused,
                   test_plain_options, test_actual_requests, test_star_and_credentials,
                   test_bad_configuration, test_browser):
            S.run(fn)
    finally:
        for d in (E.d, E.plain):
            if d:
                d.stop()
        shutil.rmtree(E.data, ignore_errors=True)
    S.finish()


if __name__ == "__main__":
    main()
