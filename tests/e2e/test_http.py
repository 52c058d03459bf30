"""End-to-end tests of `tenantry serve`: the real daemon on a free loopback
port, driven over HTTP with http.client.

Every response a tenant or an anonymous client receives is checked
automatically (Checker) for the ids of all tenants created so far, in the
body and in every header.  Tokens are forged here with Python's own hmac to
test the verifier independently of the code that mints them.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnlib  # noqa: E402

S = tnlib.Suite("http")
TENANT_IDS = set()
ALL_SCOPES = ["items:read", "items:write", "files:read", "files:write"]
UNAUTH = {"error": "unauthorized"}


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def forge(key, header, payload, raw_payload=None):
    h = b64u(json.dumps(header, separators=(",", ":")).encode())
    p = b64u(raw_payload if raw_payload is not None
             else json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(key, ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64u(sig))


class Env:
    pass


E = Env()
leak_check = tnlib.leak_checker(S, lambda: (E.data,))


def admin_client():
    return tnlib.Client(E.d.port, {"X-Admin-Key": E.admin_key}, leak_check)


def tenant_client(token):
    return tnlib.Client(E.d.port, {"Authorization": "Bearer " + token}, leak_check)


def anon():
    return tnlib.Client(E.d.port, None, leak_check)


def mk_tenant(name):
    r = E.admin.request("POST", "/v1/admin/tenants", json_body={"name": name})
    S.eq(r.status, 201, "create tenant %s" % name)
    t = r.json()
    TENANT_IDS.add(t["id"].lower())
    return t


def mk_key(tid, scopes=ALL_SCOPES, **extra):
    body = {"scopes": scopes}
    body.update(extra)
    r = E.admin.request("POST", "/v1/admin/tenants/%s/keys" % tid, json_body=body)
    S.eq(r.status, 201, "create key")
    return r.json()


def token_for(api_key, client=None):
    r = (client or anon()).request("POST", "/v1/auth", json_body={"api_key": api_key})
    S.eq(r.status, 200, "POST /v1/auth")
    return r.json()["token"]


# ---- tests -------------------------------------------------------------------

def test_health_and_keepalive():
    c = anon()
    r1 = c.request("GET", "/healthz")
    sock1 = c.conn.sock
    port1 = sock1.getsockname()[1]
    r2 = c.request("GET", "/healthz")
    S.eq(r1.status, 200, "healthz")
    S.eq(r1.json(), {"status": "ok"}, "healthz body")
    S.check(c.conn is not None and c.conn.sock is sock1 and
            c.conn.sock.getsockname()[1] == port1, "keep-alive: same socket for two requests")
    S.check((r1.header("Connection") or "").lower() != "close", "no Connection: close on GET")
    S.eq(r2.status, 200, "second request on the kept-alive connection")
    # Keep-alive also for an authenticated JSON POST followed by a GET.
    t = tenant_client(E.tok_a)
    t.request("POST", "/v1/items", json_body={"id": "ka", "data": {}})
    s = t.conn.sock
    r = t.request("GET", "/v1/items/ka")
    S.check(t.conn is not None and t.conn.sock is s and r.status == 200,
            "keep-alive after a POST with a body")
    S.check(r.header("X-Request-Id") is not None, "X-Request-Id header")


def test_admin_auth_and_tenants():
    a = anon()
    r = a.request("GET", "/v1/admin/tenants")
    S.eq((r.status, r.json()), (401, UNAUTH), "admin without key")
    r = a.request("GET", "/v1/admin/tenants", headers={"X-Admin-Key": "tna_" + "A" * 43})
    S.eq((r.status, r.json()), (401, UNAUTH), "admin with a wrong key")
    r = a.request("GET", "/v1/admin/tenants",
                  headers={"Authorization": "Bearer " + E.tok_a})
    S.eq(r.status, 401, "tenant token on an admin route")
    r = E.admin.request("POST", "/v1/admin/tenants", json_body={"name": "acme"})
    S.eq(r.status, 409, "duplicate tenant name")
    r = E.admin.request("POST", "/v1/admin/tenants", json_body={"name": "../bad name"})
    S.eq(r.status, 400, "bad tenant name")
    r = E.admin.request("POST", "/v1/admin/tenants", body=b'{"name": "x"',
                        headers={"Content-Type": "application/json"})
    S.eq(r.status, 400, "bad JSON")
    r = E.admin.request("POST", "/v1/admin/tenants", body=b'{"name":"x"}',
                        headers={"Content-Type": "text/plain"})
    S.eq(r.status, 415, "wrong content type")
    r = E.admin.request("GET", "/v1/admin/tenants")
    S.eq(r.status, 200, "list tenants")
    names = sorted(t["name"] for t in r.json()["tenants"])
    S.check("acme" in names and "bravo" in names, "list has both tenants: %r" % names)
    r = E.admin.request("PUT", "/v1/admin/tenants")
    S.eq(r.status, 405, "405 on a wrong method")
    S.check("GET" in (r.header("Allow") or "") and "POST" in (r.header("Allow") or ""),
            "Allow header lists the methods")
    r = E.admin.request("PATCH", "/v1/admin/tenants/00000000-0000-4000-8000-000000000000",
                        json_body={"name": "zz"})
    S.eq(r.status, 404, "PATCH unknown tenant")
    # Rename and back.
    tid = E.ta["id"]
    r = E.admin.request("PATCH", "/v1/admin/tenants/" + tid, json_body={"name": "acme2"})
    S.eq((r.status, r.json().get("name")), (200, "acme2"), "rename tenant")
    r = E.admin.request("PATCH", "/v1/admin/tenants/" + tid, json_body={"name": "acme"})
    S.eq(r.status, 200, "rename back")
    r = E.admin.request("PATCH", "/v1/admin/tenants/" + tid,
                        json_body={"quotas": {"max_items": -5}})
    S.eq(r.status, 400, "negative quota")
    r = anon().request("GET", "/nope")
    S.eq(r.status, 404, "unknown path")


def test_keys_admin():
    r = E.admin.request("POST", "/v1/admin/tenants/%s/keys" % E.ta["id"],
                        json_body={"scopes": ["items:read", "root"]})
    S.eq(r.status, 400, "unknown scope")
    r = E.admin.request("POST", "/v1/admin/tenants/%s/keys" % E.ta["id"],
                        json_body={"scopes": []})
    S.eq(r.status, 400, "no scopes")
    r = E.admin.request("POST", "/v1/admin/tenants/nope/keys", json_body={"scopes": ["items:read"]})
    S.eq(r.status, 404, "key for an unknown tenant")
    S.check(re.fullmatch(r"tnk_[0-9a-f]{24}_[A-Za-z0-9_-]{43}", E.key_a["api_key"]) is not None,
            "key format tnk_<id>_<secret>: %r" % E.key_a["api_key"][:30])
    S.check(E.key_a["api_key"].startswith("tnk_" + E.key_a["key_id"] + "_"), "key id in the key")
    r = E.admin.request("GET", "/v1/admin/tenants/%s/keys" % E.ta["id"])
    S.eq(r.status, 200, "list keys")
    keys = r.json()["keys"]
    S.check(any(k["key_id"] == E.key_a["key_id"] for k in keys), "created key is listed")
    S.check(all("api_key" not in k and "hash" not in k for k in keys), "listing has no secrets")
    S.check(E.key_a["api_key"].split("_", 2)[2] not in r.body.decode(), "secret not in listing")


def test_auth_tokens():
    a = anon()
    r = a.request("POST", "/v1/auth", json_body={"api_key": "tnk_" + "0" * 24 + "_" + "A" * 43})
    S.eq((r.status, r.json()), (401, UNAUTH), "unknown key")
    wrong = E.key_a["api_key"][:-4] + ("AAAA" if not E.key_a["api_key"].endswith("AAAA") else "BBBB")
    r = a.request("POST", "/v1/auth", json_body={"api_key": wrong})
    S.eq((r.status, r.json()), (401, UNAUTH), "wrong secret")
    r = a.request("POST", "/v1/auth", json_body={"key": "x"})
    S.eq(r.status, 400, "auth without api_key")
    r = a.request("POST", "/v1/auth", json_body={"api_key": E.key_a["api_key"]})
    j = r.json()
    S.eq((r.status, j.get("expires_in")), (200, 3600), "token response")
    S.check(j["token"].count(".") == 2, "token is a JWT")
    hdr = json.loads(base64.urlsafe_b64decode(j["token"].split(".")[0] + "=="))
    S.eq(hdr.get("alg"), "HS256", "alg")
    payload = json.loads(base64.urlsafe_b64decode(j["token"].split(".")[1] + "=="))
    S.eq(payload.get("sub"), E.key_a["key_id"], "token subject is the key id")
    S.check(all(t not in json.dumps(payload).lower() for t in TENANT_IDS), "token names no tenant")
    # Bearer variants.
    for h, what in [({}, "no Authorization"), ({"Authorization": "Bearer "}, "empty bearer"),
                    ({"Authorization": "Basic abc"}, "basic auth"),
                    ({"Authorization": "Bearer " + E.key_a["api_key"]}, "API key as bearer"),
                    ({"Authorization": "Bearer x.y.z"}, "garbage token")]:
        r = a.request("GET", "/v1/me", headers=h)
        S.eq((r.status, r.json()), (401, UNAUTH), what)
    # Forged tokens, signed here with the server's own key where relevant.
    key = open(os.path.join(E.data, "jwt.key"), "rb").read()
    now = int(time.time())
    good = {"sub": E.key_a["key_id"], "iat": now, "nbf": now, "exp": now + 600,
            "jti": "0123456789abcdef0123456789abcdef"}
    r = tenant_client(forge(key, {"alg": "HS256", "typ": "JWT"}, good)).request("GET", "/v1/me")
    S.eq(r.status, 200, "a token forged with the real key and good claims is accepted "
                        "(the verifier is independent of the minting code)")
    cases = {
        "alg none": "%s.%s." % (b64u(b'{"alg":"none","typ":"JWT"}'),
                                b64u(json.dumps(good).encode())),
        "HS512 header": forge(key, {"alg": "HS512", "typ": "JWT"}, good),
        "wrong key": forge(b"k" * 32, {"alg": "HS256", "typ": "JWT"}, good),
        "expired": forge(key, {"alg": "HS256", "typ": "JWT"},
                         dict(good, iat=now - 7200, nbf=now - 7200, exp=now - 3600)),
        "not yet valid": forge(key, {"alg": "HS256", "typ": "JWT"},
                               dict(good, nbf=now + 3600, exp=now + 7200)),
        "unknown key id": forge(key, {"alg": "HS256", "typ": "JWT"},
                                dict(good, sub="f" * 24)),
        "padded": forge(key, {"alg": "HS256", "typ": "JWT"}, good) + "=",
    }
    tok = j["token"]
    parts = tok.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(parts[1] + "=="))
    tampered["sub"] = E.key_b["key_id"]
    cases["tampered payload"] = parts[0] + "." + b64u(json.dumps(tampered).encode()) + "." + parts[2]
    for what, t in cases.items():
        r = tenant_client(t).request("GET", "/v1/me")
        S.eq((r.status, r.json()), (401, UNAUTH), "forged token: " + what)


def test_me_and_sync():
    c = tenant_client(E.tok_a)
    r = c.request("GET", "/v1/me")
    j = r.json()
    S.eq(r.status, 200, "/v1/me")
    S.eq(j.get("tenant"), "acme", "me.tenant is the name")
    S.eq(j.get("key_id"), E.key_a["key_id"], "me.key_id")
    S.eq(sorted(j.get("scopes", [])), sorted(ALL_SCOPES), "me.scopes")
    S.check("id" not in j and "tenant_id" not in j, "me has no tenant id")
    r = c.request("GET", "/v1/sync/status")
    S.eq(r.status, 200, "sync status")
    j = r.json()
    S.check(set(j) == {"pending", "pending_bytes", "failed", "conflicts", "last_success",
                       "last_error", "last_error_at", "backoff_ms", "pull"} and
            set(j["pull"]) == {"last_pull", "lag_ms", "errors", "refused", "last_error"} and
            isinstance(j["pending"], int) and j["pending"] >= 1 and j["failed"] == 0,
            "sync status shape: %r" % j)
    # The admin view lists every tenant with its id; the tenant view is its own.
    r = E.admin.request("GET", "/v1/admin/sync")
    S.eq(r.status, 200, "admin sync status")
    rows = {t["name"]: t for t in r.json()["tenants"]}
    S.check({"acme", "bravo"} <= set(rows) and rows["acme"]["id"] == E.ta["id"],
            "admin sync lists tenants: %r" % rows.keys())
    S.eq(rows["acme"]["pending"], j["pending"], "tenant view equals its admin row")
    S.eq(anon().request("GET", "/v1/admin/sync").status, 401, "admin sync needs the admin key")


def test_items():
    c = tenant_client(E.tok_a)
    r = c.request("POST", "/v1/items", json_body={"id": "i1", "data": {"n": 1}})
    S.eq(r.status, 201, "create item")
    it = r.json()
    S.eq(set(it), {"id", "data", "version", "created_at", "updated_at"}, "item members")
    S.check(isinstance(it["version"], str) and re.fullmatch(r"[1-9][0-9]*", it["version"])
            and int(it["version"]) > 2**53,
            "version is a decimal string (exact in JavaScript too): %r" % it["version"])
    S.eq(r.header("ETag"), '"%s"' % it["version"], "ETag is the quoted version")
    S.check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", it["created_at"]) is not None,
            "created_at is RFC 3339 UTC")
    r = c.request("POST", "/v1/items", json_body={"id": "i1", "data": {"n": 2}})
    S.eq(r.status, 409, "create an existing id")
    r = c.request("POST", "/v1/items", json_body={"data": [1, 2]})
    S.eq(r.status, 201, "create with a generated id")
    S.check(re.fullmatch(r"[0-9a-f-]{36}", r.json()["id"]) is not None, "generated id")
    big = b'{"id":"big","data":{"n":12345678901234567890123,"f":1.5e300}}'
    r = c.request("POST", "/v1/items", body=big, headers={"Content-Type": "application/json"})
    S.eq(r.status, 201, "create with big numbers")
    r = c.request("GET", "/v1/items/big")
    S.check(b'"n":12345678901234567890123' in r.body, "big integer kept exactly: %r" % r.body)
    r = c.request("GET", "/v1/items/i1")
    S.eq((r.status, r.json()["data"]), (200, {"n": 1}), "get item")
    v1 = int(r.json()["version"])
    r = c.request("PUT", "/v1/items/i1", json_body={"data": {"n": 2}},
                  headers={"If-Match": '"%d"' % (v1 - 1)})
    S.eq(r.status, 412, "PUT with a stale If-Match")
    r = c.request("PUT", "/v1/items/i1", json_body={"data": {"n": 2}},
                  headers={"If-Match": '"%d"' % v1})
    S.eq(r.status, 200, "PUT with the current If-Match")
    v2 = int(r.json()["version"])
    S.check(v2 > v1, "version grows")
    S.eq(r.header("ETag"), '"%d"' % v2, "new ETag")
    r = c.request("PUT", "/v1/items/i1", json_body={"data": {"n": 3}},
                  headers={"If-Match": str(v2)})
    S.eq(r.status, 200, "If-Match takes the version as read from JSON, unquoted")
    r = c.request("PUT", "/v1/items/i1", json_body={"data": {"n": 3}})
    S.eq(r.status, 200, "PUT without If-Match replaces")
    r = c.request("PUT", "/v1/items/fresh", json_body={"data": {"n": 3}})
    S.eq(r.status, 201, "PUT of a new id creates")
    r = c.request("PUT", "/v1/items/nothere", json_body={"data": 1}, headers={"If-Match": '"5"'})
    S.eq(r.status, 412, "If-Match on an absent item")
    r = c.request("PUT", "/v1/items/i1", json_body={"nodata": 1})
    S.eq(r.status, 400, "PUT without data")
    r = c.request("DELETE", "/v1/items/fresh", headers={"If-Match": '"1"'})
    S.eq(r.status, 412, "DELETE with a stale If-Match")
    r = c.request("DELETE", "/v1/items/fresh")
    S.eq((r.status, r.body), (204, b""), "DELETE")
    r = c.request("GET", "/v1/items/fresh")
    S.eq(r.status, 404, "GET after DELETE")
    r = c.request("DELETE", "/v1/items/fresh")
    S.eq(r.status, 404, "DELETE twice")
    # Errors.
    r = c.request("POST", "/v1/items", json_body={"id": "bad id!", "data": 1})
    S.eq(r.status, 400, "invalid item id")
    r = c.request("POST", "/v1/items", json_body={"id": 5, "data": 1})
    S.eq(r.status, 400, "non-string id")
    r = c.request("POST", "/v1/items", body=b'{"data": {"a": }', headers={"Content-Type": "application/json"})
    S.eq(r.status, 400, "bad JSON")
    r = c.request("POST", "/v1/items", body=b'[1,2]', headers={"Content-Type": "application/json"})
    S.eq(r.status, 400, "body not an object")
    deep = b'{"data":' + b"[" * 200 + b"]" * 200 + b"}"
    r = c.request("POST", "/v1/items", body=deep, headers={"Content-Type": "application/json"})
    S.eq(r.status, 400, "nesting too deep")
    r = c.request("POST", "/v1/items", body=b'{"data":1}', headers={"Content-Type": "text/plain"})
    S.eq(r.status, 415, "wrong content type")
    r = c.request("POST", "/v1/items", body=b'{"data":1}')
    S.eq(r.status, 415, "no content type")
    huge = json.dumps({"data": "x" * (70 * 1024)}).encode()
    r = c.request("POST", "/v1/items", body=huge, headers={"Content-Type": "application/json"})
    S.eq(r.status, 413, "item body over 64 KiB")
    ok = json.dumps({"id": "near", "data": "x" * (60 * 1024)}).encode()
    r = c.request("POST", "/v1/items", body=ok, headers={"Content-Type": "application/json"})
    S.eq(r.status, 201, "item body under the limit")
    r = c.request("DELETE", "/v1/items")
    S.eq(r.status, 405, "DELETE on the collection")
    r = c.request("GET", "/v1/items/" + "a" * 300)
    S.eq(r.status, 404, "overlong id is just absent")
    r = c.request("GET", "/v1/items/a%ZZ")
    S.eq(r.status, 404, "malformed escape in an id")


def test_list_and_cursors():
    c = tenant_client(E.tok_b)
    ids = ["L%03d" % i for i in range(7)]
    for i in ids:
        c.request("POST", "/v1/items", json_body={"id": i, "data": {"i": i}})
    seen, cursor, pages = [], None, 0
    while pages < 20:
        q = "/v1/items?limit=3" + ("&cursor=" + cursor if cursor else "")
        r = c.request("GET", q)
        S.eq(r.status, 200, "list page")
        j = r.json()
        S.check(len(j["items"]) <= 3, "page within limit")
        seen += [x["id"] for x in j["items"]]
        pages += 1
        cursor = j["next_cursor"]
        if cursor is None:
            break
    S.check(all(i in seen for i in ids) and len(seen) == len(set(seen)), "paging sees every item once")
    for q, what in [("/v1/items?limit=0", "limit 0"), ("/v1/items?limit=1001", "limit 1001"),
                    ("/v1/items?limit=abc", "limit abc"), ("/v1/items?cursor=garbage", "bad cursor")]:
        S.eq(c.request("GET", q).status, 400, what)
    r = c.request("GET", "/v1/items?limit=1000")
    S.eq(r.status, 200, "limit 1000")
    r = c.request("GET", "/v1/items")
    S.check(len(r.json()["items"]) <= 50, "default limit 50")
    E.cursor_b = c.request("GET", "/v1/items?limit=2").json()["next_cursor"]


def test_isolation():
    a, b = tenant_client(E.tok_a), tenant_client(E.tok_b)
    a.request("PUT", "/v1/items/secret", json_body={"data": {"owner": "acme"}})
    absent = b.request("GET", "/v1/items/definitely-absent")
    other = b.request("GET", "/v1/items/secret")
    S.eq((other.status, other.body), (absent.status, absent.body),
         "another tenant's item looks exactly absent")
    S.eq(other.status, 404, "another tenant's item is 404")
    r = b.request("DELETE", "/v1/items/secret")
    S.eq(r.status, 404, "DELETE another tenant's item")
    r = b.request("PUT", "/v1/items/secret", json_body={"data": {"owner": "bravo"}},
                  headers={"If-Match": "*"})
    S.eq(r.status, 412, "If-Match: * on another tenant's item")
    r = b.request("PUT", "/v1/items/secret", json_body={"data": {"owner": "bravo"}})
    S.eq(r.status, 201, "PUT the same id in another tenant creates its own")
    r = a.request("GET", "/v1/items/secret")
    S.eq(r.json()["data"], {"owner": "acme"}, "first tenant's item untouched")
    r = b.request("GET", "/v1/items?limit=1000")
    S.check(all(x["data"] != {"owner": "acme"} for x in r.json()["items"]), "no foreign data in list")
    r = a.request("GET", "/v1/items?cursor=" + E.cursor_b)
    S.eq(r.status, 400, "another tenant's cursor is refused")
    b.request("DELETE", "/v1/items/secret")
    # Files.
    a.request("PUT", "/v1/files/private.txt", body=b"acme only")
    S.eq(b.request("GET", "/v1/files/private.txt").status, 404, "another tenant's file")
    S.eq(b.request("DELETE", "/v1/files/private.txt").status, 404, "DELETE another tenant's file")
    S.eq(a.request("GET", "/v1/files/private.txt").body, b"acme only", "file untouched")
    r = b.request("GET", "/v1/files")
    S.check(all(f["name"] != "private.txt" for f in r.json()["files"]), "no foreign file listed")


def test_scopes():
    k = mk_key(E.ta["id"], ["items:read"])
    c = tenant_client(token_for(k["api_key"]))
    S.eq(c.request("GET", "/v1/items").status, 200, "read scope reads")
    r = c.request("POST", "/v1/items", json_body={"data": 1})
    S.eq((r.status, r.json()), (403, {"error": "forbidden"}), "write without items:write")
    S.eq(c.request("DELETE", "/v1/items/i1").status, 403, "delete without items:write")
    S.eq(c.request("GET", "/v1/files").status, 403, "files without files:read")
    S.eq(c.request("PUT", "/v1/files/x", body=b"x").status, 403, "upload without files:write")


def test_files():
    c = tenant_client(E.tok_a)
    data = bytes(range(256)) * 40
    r = c.request("PUT", "/v1/files/docs/report.bin", body=data,
                  headers={"Content-Type": "application/x-test"})
    S.eq(r.status, 201, "upload")
    j = r.json()
    S.eq((j["name"], j["size"], j["sha256"]),
         ("docs/report.bin", len(data), hashlib.sha256(data).hexdigest()), "upload result")
    disk = os.path.join(E.data, "files", E.ta["id"], "docs", "report.bin")
    S.check(os.path.isfile(disk) and open(disk, "rb").read() == data,
            "bytes under files/<tenant id>/")
    S.check(not [n for n in os.listdir(os.path.dirname(disk)) if ".upload-" in n], "no temp left")
    r = c.request("GET", "/v1/files/docs/report.bin")
    S.eq((r.status, r.body), (200, data), "download")
    S.eq(r.header("Content-Type"), "application/x-test", "content type kept")
    S.eq(r.header("Accept-Ranges"), "bytes", "Accept-Ranges")
    for rng, want, cr in [("bytes=2-4", data[2:5], "bytes 2-4/%d" % len(data)),
                          ("bytes=-3", data[-3:], "bytes %d-%d/%d" % (len(data) - 3, len(data) - 1, len(data))),
                          ("bytes=10235-", data[10235:], "bytes 10235-10239/%d" % len(data))]:
        r = c.request("GET", "/v1/files/docs/report.bin", headers={"Range": rng})
        S.eq((r.status, r.body, r.header("Content-Range")), (206, want, cr), "Range " + rng)
    r = c.request("GET", "/v1/files/docs/report.bin", headers={"Range": "bytes=99999-"})
    S.eq((r.status, r.header("Content-Range")), (416, "bytes */%d" % len(data)), "unsatisfiable range")
    # Replace, list, delete.
    r = c.request("PUT", "/v1/files/docs/report.bin", body=b"v2")
    S.eq(r.status, 201, "replace")
    S.eq(c.request("GET", "/v1/files/docs/report.bin").body, b"v2", "replaced bytes")
    r = c.request("PUT", "/v1/files/%E2%9C%93%20ok.txt", body=b"utf8")
    S.eq((r.status, r.json().get("name")), (201, "\u2713 ok.txt"), "percent-encoded UTF-8 name")
    r = c.request("GET", "/v1/files?limit=1")
    S.eq(r.status, 200, "list files")
    S.check(r.json()["next_cursor"] is not None and len(r.json()["files"]) == 1, "files paging")
    r2 = c.request("GET", "/v1/files?limit=10&cursor=" + r.json()["next_cursor"])
    S.eq(r2.status, 200, "files second page")
    r = c.request("DELETE", "/v1/files/docs/report.bin")
    S.eq(r.status, 204, "delete file")
    S.eq(c.request("GET", "/v1/files/docs/report.bin").status, 404, "deleted file is gone")
    S.check(not os.path.exists(disk), "bytes removed")
    S.eq(c.request("DELETE", "/v1/files/docs/report.bin").status, 404, "delete twice")
    # Size limit (the suite's daemon runs with --max-file-bytes 1048576).
    # Over the limit: a client that asks first (Expect: 100-continue) gets the
    # 413 before sending a byte of the body.
    s = socket.create_connection(("127.0.0.1", E.d.port), timeout=10)
    s.sendall(b"PUT /v1/files/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + E.tok_a.encode() + b"\r\nContent-Length: 1048577\r\n"
              b"Expect: 100-continue\r\n\r\n")
    head = s.recv(4096)
    s.close()
    S.check(head.startswith(b"HTTP/1.1 413"), "upload over the limit: %r" % head[:40])
    S.check(b'{"error":"too large"}' in head, "413 body")
    S.eq(c.request("GET", "/v1/files/big.bin").status, 404, "refused upload left nothing")
    r = c.request("PUT", "/v1/files/edge.bin", body=b"z" * 1048576)
    S.eq(r.status, 201, "upload at the limit")
    # A name that is a directory of other files.
    c.request("PUT", "/v1/files/d1/inner", body=b"x")
    S.eq(c.request("PUT", "/v1/files/d1", body=b"y").status, 409, "file over a directory")


def test_traversal():
    c = tenant_client(E.tok_a)
    names = ["../escape", "a/../../escape", "./x", "a//b", "a/", "a\\b", "..",
             "%2e%2e/escape", "%2E%2E%2Fescape", "a%2F..%2F..%2Fescape", "a/%2e%2e/b",
             "x%00y", "x%5cy", "%c0%ae%c0%ae/escape", "x%01y", "x%7fy", "%2Fabs", "x%zz",
             "x%", "%ff", "a%2F%2Fb"]
    for n in names:
        for m, body in (("PUT", b"evil"), ("GET", None), ("DELETE", None)):
            # http.client sends the path as given (no normalisation).
            r = c.request(m, "/v1/files/" + n, body=body)
            S.eq(r.status, 400, "%s traversal name %r" % (m, n))
    # Nothing was written outside the tenant's folder.
    root = E.data
    S.check(not os.path.exists(os.path.join(root, "escape")) and
            not os.path.exists(os.path.join(root, "files", "escape")), "no escape file on disk")
    # Raw traversal at the socket level (no client normalisation at all).
    s = socket.create_connection(("127.0.0.1", E.d.port))
    s.sendall(b"GET /v1/files/../../tenantry.db HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + E.tok_a.encode() + b"\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    S.check(data.startswith(b"HTTP/1.1 400"), "raw socket traversal is 400: %r" % data[:40])
    S.check(b"SQLite" not in data, "no database bytes served")


def test_revocation_and_rotation():
    a = anon()
    k = mk_key(E.ta["id"])
    tok = token_for(k["api_key"])
    c = tenant_client(tok)
    S.eq(c.request("GET", "/v1/me").status, 200, "token works before revocation")
    r = E.admin.request("DELETE", "/v1/admin/keys/" + k["key_id"])
    S.eq(r.status, 204, "revoke")
    r = c.request("GET", "/v1/me")
    S.eq((r.status, r.json()), (401, UNAUTH), "token from a revoked key fails on the next request")
    r = a.request("POST", "/v1/auth", json_body={"api_key": k["api_key"]})
    S.eq(r.status, 401, "revoked key cannot mint")
    S.eq(E.admin.request("DELETE", "/v1/admin/keys/" + k["key_id"]).status, 404, "revoke twice")
    S.eq(E.admin.request("DELETE", "/v1/admin/keys/" + "0" * 24).status, 404, "revoke unknown")
    # Rotation with the default overlap: both keys work.
    k = mk_key(E.ta["id"])
    old_tok = token_for(k["api_key"])
    r = E.admin.request("POST", "/v1/admin/keys/%s/rotate" % k["key_id"], body=b"",
                        headers={"Content-Type": "application/json"})
    S.eq(r.status, 201, "rotate (default overlap)")
    new = r.json()
    S.check(new["key_id"] != k["key_id"] and new["api_key"] != k["api_key"], "a new key")
    S.eq(new["previous"]["key_id"], k["key_id"], "rotation names the previous key")
    S.eq(tenant_client(old_tok).request("GET", "/v1/me").status, 200, "old token valid in overlap")
    S.eq(tenant_client(token_for(new["api_key"])).request("GET", "/v1/me").status, 200, "new key works")
    # Rotation with a 1-second overlap: the old key and its tokens end.
    r = E.admin.request("POST", "/v1/admin/keys/%s/rotate" % new["key_id"],
                        json_body={"overlap_seconds": 1})
    S.eq(r.status, 201, "rotate with a short overlap")
    newer = r.json()
    tok2 = token_for(new["api_key"])
    S.eq(tenant_client(tok2).request("GET", "/v1/me").status, 200, "old key works inside the overlap")
    time.sleep(1.3)
    r = tenant_client(tok2).request("GET", "/v1/me")
    S.eq((r.status, r.json()), (401, UNAUTH), "token of a rotated key fails after the overlap")
    S.eq(a.request("POST", "/v1/auth", json_body={"api_key": new["api_key"]}).status, 401,
         "rotated key fails after the overlap")
    S.eq(tenant_client(token_for(newer["api_key"])).request("GET", "/v1/me").status, 200,
         "replacement works")
    # overlap 0 ends it at once.
    r = E.admin.request("POST", "/v1/admin/keys/%s/rotate" % newer["key_id"],
                        json_body={"overlap_seconds": 0})
    S.eq(r.status, 201, "rotate with overlap 0")
    S.eq(a.request("POST", "/v1/auth", json_body={"api_key": newer["api_key"]}).status, 401,
         "overlap 0 ends the old key at once")
    S.eq(E.admin.request("POST", "/v1/admin/keys/%s/rotate" % newer["key_id"],
                         json_body={}).status, 404, "rotating an ended key")
    # Expiring key.
    k = mk_key(E.ta["id"], expires_in=1)
    S.check(k["expires_at"] is not None, "expires_at set")
    tok = token_for(k["api_key"])
    time.sleep(1.2)
    S.eq(tenant_client(tok).request("GET", "/v1/me").status, 401, "token of an expired key")


def test_quotas():
    tc = mk_tenant("quota-t")
    k = mk_key(tc["id"])
    c = tenant_client(token_for(k["api_key"]))
    r = E.admin.request("PATCH", "/v1/admin/tenants/" + tc["id"],
                        json_body={"quotas": {"max_items": 2, "max_file_bytes": 10}})
    S.eq(r.status, 200, "set quotas")
    S.eq(r.json()["quotas"], {"max_items": 2, "max_file_bytes": 10}, "quotas echoed")
    S.eq(c.request("POST", "/v1/items", json_body={"data": 1}).status, 201, "item 1")
    S.eq(c.request("PUT", "/v1/items/two", json_body={"data": 1}).status, 201, "item 2")
    r = c.request("POST", "/v1/items", json_body={"data": 1})
    S.eq((r.status, r.json()), (507, {"error": "quota exceeded"}), "item quota -> 507")
    r = c.request("PUT", "/v1/items/three", json_body={"data": 3})
    S.eq((r.status, r.json()), (507, {"error": "quota exceeded"}), "a PUT that creates -> 507")
    S.eq(c.request("GET", "/v1/items/three").status, 404, "nothing written past the quota")
    S.eq(len(c.request("GET", "/v1/items").json()["items"]), 2, "still two items")
    S.eq(c.request("PUT", "/v1/items/two", json_body={"data": 2}).status, 200,
         "replacing within quota still works")
    S.eq(c.request("PUT", "/v1/files/a", body=b"12345678").status, 201, "file within quota")
    S.eq(c.request("PUT", "/v1/files/b", body=b"123").status, 507, "file bytes quota -> 507")
    S.eq(c.request("PUT", "/v1/files/a", body=b"1234567890").status, 201,
         "replacing a file counts its old size out")
    r = E.admin.request("PATCH", "/v1/admin/tenants/" + tc["id"],
                        json_body={"quotas": {"max_items": None}})
    S.eq(r.json()["quotas"], {"max_items": None, "max_file_bytes": 10}, "quota removed")
    S.eq(c.request("POST", "/v1/items", json_body={"data": 1}).status, 201, "no item quota")
    # Deleting the tenant ends its keys' tokens.
    r = E.admin.request("DELETE", "/v1/admin/tenants/" + tc["id"])
    S.eq(r.status, 204, "delete tenant")
    S.eq(c.request("GET", "/v1/me").status, 401, "token of a deleted tenant")
    S.eq(E.admin.request("DELETE", "/v1/admin/tenants/" + tc["id"]).status, 404, "delete twice")
    S.check(not os.path.exists(os.path.join(E.data, "files", tc["id"])), "tenant files removed")


def test_metrics_and_audit():
    r = anon().request("GET", "/metrics")
    S.eq(r.status, 401, "metrics need the admin key")
    r = E.admin.request("GET", "/metrics")
    S.eq(r.status, 200, "metrics")
    text = r.body.decode()
    for name in ("tenantry_http_requests_total{class=\"2xx\"}", "tenantry_http_auth_failures_total",
                 "tenantry_http_in_flight", "tenantry_http_rate_limited_total"):
        S.check(name in text, "metric " + name)
    m = re.search(r"tenantry_http_auth_failures_total (\d+)", text)
    S.check(m and int(m.group(1)) > 0, "auth failures counted")
    r = E.admin.request("GET", "/v1/admin/audit?limit=1000")
    S.eq(r.status, 200, "audit")
    ev = r.json()["events"]
    actions = {e["action"] for e in ev}
    for a in ("tenant.create", "key.create", "key.revoke", "key.rotate", "auth.failure"):
        S.check(a in actions, "audit has " + a)
    blob = r.body.decode()
    S.check(E.key_a["api_key"] not in blob and E.admin_key not in blob, "no secrets in audit")
    r = E.admin.request("GET", "/v1/admin/audit?limit=2")
    nc = r.json()["next_cursor"]
    S.check(nc is not None and len(r.json()["events"]) == 2, "audit paging")
    r2 = E.admin.request("GET", "/v1/admin/audit?limit=2&cursor=" + nc)
    S.check(r2.json()["events"][0]["seq"] > r.json()["events"][1]["seq"], "audit cursor advances")
    S.eq(E.admin.request("GET", "/v1/admin/audit?cursor=x").status, 400, "bad audit cursor")


def test_openapi():
    try:
        import openapi_spec_validator
        import yaml
    except ImportError as e:
        S.check(False, "openapi-spec-validator / yaml missing: %s" % e)
        return
    spec = yaml.safe_load(open("docs/openapi.yaml"))
    invalid = None
    try:
        openapi_spec_validator.validate(spec)
    except Exception as e:  # noqa: BLE001
        invalid = e
    if not S.check(invalid is None, "docs/openapi.yaml is a valid OpenAPI document: %s" % invalid):
        return
    paths = spec["paths"]
    for p in ["/healthz", "/metrics", "/v1/auth", "/v1/me", "/v1/items", "/v1/items/{id}",
              "/v1/files", "/v1/files/{name}", "/v1/sync/status", "/v1/admin/tenants",
              "/v1/admin/tenants/{id}", "/v1/admin/tenants/{id}/keys",
              "/v1/admin/keys/{key_id}/rotate", "/v1/admin/keys/{key_id}", "/v1/admin/audit"]:
        S.check(p in paths, "openapi documents " + p)
    try:
        import jsonschema
    except ImportError:
        S.check(False, "jsonschema missing")
        return

    def schema_of(path, method, status):
        op = paths[path][method]
        resp = op["responses"][str(status)]
        if "$ref" in resp:
            resp = spec["components"]["responses"][resp["$ref"].split("/")[-1]]
        s = resp["content"]["application/json"]["schema"]
        return {"$ref": s["$ref"]} if "$ref" in s else s

    def conforms(path, method, status, r):
        S.eq(r.status, status, "%s %s: the status whose schema is checked" % (method, path))
        doc = {"components": spec["components"]}
        doc.update(schema_of(path, method, status))
        mismatch = None
        try:
            jsonschema.validate(r.json(), doc)
        except jsonschema.ValidationError as e:
            mismatch = e.message
        S.check(mismatch is None, "%s %s %d matches the spec: %s" % (method, path, status,
                                                                    mismatch))

    c = tenant_client(E.tok_a)
    r = c.request("POST", "/v1/items", json_body={"id": "spec", "data": {"a": 1}})
    conforms("/v1/items", "post", 201, r)
    conforms("/v1/items/{id}", "get", 200, c.request("GET", "/v1/items/spec"))
    conforms("/v1/items", "get", 200, c.request("GET", "/v1/items?limit=2"))
    conforms("/v1/items/{id}", "get", 404, c.request("GET", "/v1/items/nope"))
    conforms("/v1/me", "get", 200, c.request("GET", "/v1/me"))
    conforms("/v1/sync/status", "get", 200, c.request("GET", "/v1/sync/status"))
    conforms("/v1/files", "get", 200, c.request("GET", "/v1/files"))
    conforms("/v1/files/{name}", "put", 201, c.request("PUT", "/v1/files/spec.txt", body=b"x"))
    conforms("/v1/auth", "post", 200,
             anon().request("POST", "/v1/auth", json_body={"api_key": E.key_a["api_key"]}))
    conforms("/v1/auth", "post", 401, anon().request("POST", "/v1/auth", json_body={"api_key": "x"}))
    conforms("/v1/admin/tenants", "get", 200, E.admin.request("GET", "/v1/admin/tenants"))
    conforms("/v1/admin/tenants/{id}/keys", "get", 200,
             E.admin.request("GET", "/v1/admin/tenants/%s/keys" % E.ta["id"]))
    conforms("/v1/admin/audit", "get", 200, E.admin.request("GET", "/v1/admin/audit?limit=5"))
    r = E.admin.request("POST", "/v1/admin/tenants", json_body={"name": "spec-t"})
    TENANT_IDS.add(r.json()["id"])
    conforms("/v1/admin/tenants", "post", 201, r)
    r = E.admin.request("POST", "/v1/admin/tenants/%s/keys" % r.json()["id"],
                        json_body={"scopes": ["items:read"]})
    conforms("/v1/admin/tenants/{id}/keys", "post", 201, r)
    r = E.admin.request("POST", "/v1/admin/keys/%s/rotate" % r.json()["key_id"], json_body={})
    conforms("/v1/admin/keys/{key_id}/rotate", "post", 201, r)


def test_rate_limits():
    """A second daemon with small limits: per-key 429 and brute-force 429, and
    valid credentials still served."""
    data = tnlib.tmpdir()
    d = None
    try:
        ak = tnlib.init_store(data)
        d = tnlib.start_daemon(data, ["--rate", "1", "--burst", "3", "--auth-fail-burst", "5",
                                      "--auth-fail-rate", "0.01", "--quiet"])
        adm = tnlib.Client(d.port, {"X-Admin-Key": ak})
        t = adm.request("POST", "/v1/admin/tenants", json_body={"name": "rl"}).json()
        TENANT_IDS.add(t["id"])
        k = adm.request("POST", "/v1/admin/tenants/%s/keys" % t["id"],
                        json_body={"scopes": ALL_SCOPES}).json()
        tok = tnlib.Client(d.port, None, leak_check).request(
            "POST", "/v1/auth", json_body={"api_key": k["api_key"]}).json()["token"]
        c = tnlib.Client(d.port, {"Authorization": "Bearer " + tok}, leak_check)
        codes = [c.request("GET", "/v1/me") for _ in range(8)]
        limited = [r for r in codes if r.status == 429]
        S.check(len(limited) >= 3, "per-key rate limit gives 429s: %r" % [r.status for r in codes])
        S.check(all(r.header("Retry-After") and int(r.header("Retry-After")) >= 1 for r in limited),
                "429 has Retry-After")
        S.check(all(r.json() == {"error": "too many requests"} for r in limited), "429 body")
        # Guessing with made-up key ids: after 5 failures, 429 (one shared
        # budget, so new ids open no new buckets).
        k2 = adm.request("POST", "/v1/admin/tenants/%s/keys" % t["id"],
                         json_body={"scopes": ALL_SCOPES}).json()
        bad = tnlib.Client(d.port, None, leak_check)
        st = [bad.request("POST", "/v1/auth", json_body={"api_key": "tnk_%024d_%s" % (i, "A" * 43)}).status
              for i in range(8)]
        S.check(st[:5] == [401] * 5 and all(s == 429 for s in st[5:]),
                "brute force: 401 x5 then 429: %r" % st)
        r = bad.request("POST", "/v1/auth", json_body={"api_key": "tnk_%024d_%s" % (99, "A" * 43)})
        S.check(r.status == 429 and r.header("Retry-After") is not None,
                "brute-force 429 has Retry-After: %r" % r)
        # A valid key from the same client is never refused for those failures.
        r = bad.request("POST", "/v1/auth", json_body={"api_key": k2["api_key"]})
        S.eq(r.status, 200, "a good key is served while guessing is throttled")
        r = bad.request("GET", "/v1/admin/tenants", headers={"X-Admin-Key": "tna_x"})
        S.eq(r.status, 429, "a malformed admin key shares the anonymous budget")
        r = bad.request("GET", "/v1/admin/tenants", headers={"X-Admin-Key": ak})
        S.eq(r.status, 200, "the admin key is served while guessing is throttled")
        S.eq(d.stop(), 0, "SIGTERM stops the daemon cleanly")
        d = None
    finally:
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(data + ".serve.log", ignore_errors=True)


def test_tenant_share():
    """The default request limits: a tenant alone is never throttled, however
    fast it sends; while another tenant is active, a flooding tenant is held
    to its share (--tenant-rate), and the other one is served in full."""
    import threading
    data = tnlib.tmpdir()
    d = None

    def flood(tok, seconds, threads, statuses):
        stop = time.time() + seconds

        def one():
            c = tnlib.Client(d.port, {"Authorization": "Bearer " + tok})
            while time.time() < stop:
                statuses.append(c.request("GET", "/v1/me").status)
        ts = [threading.Thread(target=one) for _ in range(threads)]
        for t in ts:
            t.start()
        return ts

    try:
        ak = tnlib.init_store(data)
        toks = {}
        for share in (None, 100):
            if d:
                d.stop()
            d = tnlib.start_daemon(data, ["--quiet"] + (["--tenant-rate", str(share),
                                                          "--tenant-burst", str(2 * share)]
                                                         if share else []))
            adm = tnlib.Client(d.port, {"X-Admin-Key": ak})
            for name in ("alone", "other"):
                if name not in toks:
                    t = adm.request("POST", "/v1/admin/tenants", json_body={"name": name}).json()
                    TENANT_IDS.add(t["id"])
                    k = adm.request("POST", "/v1/admin/tenants/%s/keys" % t["id"],
                                    json_body={"scopes": ALL_SCOPES}).json()["api_key"]
                    toks[name] = k
            tok = {n: tnlib.Client(d.port).request("POST", "/v1/auth", json_body={"api_key": k})
                   .json()["token"] for n, k in toks.items()}
            alone = []
            for t in flood(tok["alone"], 2.5, 6, alone):
                t.join()
            print("share %r: a tenant alone sent %d requests in 2.5 s" % (share, len(alone)),
                  flush=True)
            S.check(len(alone) > (600 if share else 200) and set(alone) == {200},
                    "a tenant alone is never throttled (share %r): %d requests, %r"
                    % (share, len(alone), sorted(set(alone))))
        # share 100/s: "alone" floods while "other" sends 20 requests a second.
        flooder, other = [], []
        ts = flood(tok["alone"], 3, 4, flooder)
        c = tnlib.Client(d.port, {"Authorization": "Bearer " + tok["other"]})
        t0 = time.time()
        while time.time() - t0 < 2.8:
            other.append(c.request("GET", "/v1/me").status)
            time.sleep(0.05)
        for t in ts:
            t.join()
        print("while shared: flooder %d requests (%d refused), other %d" %
              (len(flooder), flooder.count(429), len(other)), flush=True)
        S.check(set(other) == {200} and len(other) >= 20,
                "the other tenant is served in full: %r" % sorted(set(other)))
        S.check(flooder.count(429) > len(flooder) // 2,
                "the flooding tenant is held to its share while the other is active: %d of %d"
                % (flooder.count(429), len(flooder)))
        S.check(flooder.count(200) <= 100 * 3 + 200 + 50,
                "at most its share went through: %d" % flooder.count(200))
        time.sleep(1.5)
        again = []
        for t in flood(tok["alone"], 1, 4, again):
            t.join()
        S.check(set(again) == {200}, "alone again, not throttled: %r" % sorted(set(again)))
        S.eq(d.stop(), 0, "daemon stops cleanly")
        d = None
    finally:
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_listen_rules():
    data = tnlib.tmpdir()
    d = None
    try:
        tnlib.init_store(data)
        p = tnlib.run(["serve", "--data", data, "--listen", "0.0.0.0:%d" % tnlib.free_port()],
                      timeout=10)
        S.check(p.returncode != 0 and "--allow-remote" in p.stderr,
                "non-loopback refused, naming --allow-remote: %r" % p.stderr)
        sock = os.path.join(data, "api.sock")
        d = tnlib.start_daemon(data, listen="unix:" + sock)
        S.eq(stat.S_IMODE(os.stat(sock).st_mode), 0o660, "unix socket mode 0660")
        c = tnlib.UnixHTTPConnection(sock)
        c.request("GET", "/metrics")
        r = c.getresponse()
        S.check(r.status == 200 and b"tenantry_http_in_flight" in r.read(),
                "metrics over the unix socket without a key")
        c.request("GET", "/v1/me")
        r = c.getresponse()
        r.read()
        S.eq(r.status, 401, "tenant routes still need a token over the unix socket")
        c.close()
    finally:
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_cli_keys():
    p = tnlib.run(["key", "create", "--data", E.data, "--tenant", "bravo",
                   "--scopes", "items:read,files:read"])
    S.eq(p.returncode, 0, "key create (CLI): " + p.stderr)
    key = p.stdout.strip()
    S.check(re.fullmatch(r"tnk_[0-9a-f]{24}_[A-Za-z0-9_-]{43}", key) is not None, "CLI key format")
    kid = key.split("_")[1]
    S.eq(tenant_client(token_for(key)).request("GET", "/v1/items").status, 200, "CLI key works")
    p = tnlib.run(["key", "list", "--data", E.data, "--tenant", "bravo", "--json"])
    S.check(p.returncode == 0 and kid in p.stdout and key.split("_", 2)[2] not in p.stdout,
            "key list (CLI)")
    p = tnlib.run(["key", "revoke", "--data", E.data, "--tenant", "acme", kid])
    S.eq(p.returncode, 3, "revoke with the wrong tenant is not found")
    p = tnlib.run(["key", "rotate", "--data", E.data, "--tenant", "bravo", kid, "--overlap", "0"])
    S.eq(p.returncode, 0, "key rotate (CLI)")
    new = p.stdout.strip()
    S.eq(anon().request("POST", "/v1/auth", json_body={"api_key": key}).status, 401,
         "CLI rotation with overlap 0 ends the old key")
    p = tnlib.run(["key", "revoke", "--data", E.data, "--tenant", "bravo", new.split("_")[1]])
    S.eq(p.returncode, 0, "key revoke (CLI)")
    S.eq(anon().request("POST", "/v1/auth", json_body={"api_key": new}).status, 401,
         "CLI-revoked key refused by the running daemon")
    # admin-key rotate: the running daemon accepts only the new key.
    p = tnlib.run(["admin-key", "rotate", "--data", E.data])
    S.eq(p.returncode, 0, "admin-key rotate")
    old = E.admin_key
    E.admin_key = p.stdout.strip()
    r = anon().request("GET", "/v1/admin/tenants", headers={"X-Admin-Key": old})
    S.eq(r.status, 401, "old admin key refused")
    E.admin = admin_client()
    S.eq(E.admin.request("GET", "/v1/admin/tenants").status, 200, "new admin key works")


def test_logs():
    log = E.d.log()
    lines = [l for l in log.splitlines() if l.strip()]
    ok = True
    for l in lines:
        try:
            j = json.loads(l)
            ok = ok and "time" in j and "level" in j
        except ValueError:
            ok = False
    S.check(ok and lines, "every log line is JSON")
    S.check(any('"request_id"' in l and '"status"' in l and '"duration_ms"' in l for l in lines),
            "request lines have id, status, duration")
    S.check(E.key_a["api_key"] not in log and E.key_a["api_key"].split("_", 2)[2] not in log,
            "no API key in logs")
    S.check(E.tok_a not in log and "eyJ" not in log, "no token in logs")
    S.check(E.admin_key not in log, "no admin key in logs")
    S.check("cursor=" not in log and "limit=" not in log, "no query strings in logs")
    S.check('"owner"' not in log, "no bodies in logs")


def test_file_name_limit():
    """A file name the remote cannot hold is refused on upload with a clear
    400: S3 keys are "<36-character tenant uuid>/files/<name>", at most 1024
    bytes, so a name has at most 981 bytes (UTF-8 bytes, not characters)."""
    import urllib.parse as up
    c = tenant_client(E.tok_a)

    def name_of(n, tail="x"):
        seg = "d" * 199 + "/"  # path segments stay under the file system's 255
        body = (seg * 6)[:n - len(tail.encode())]
        if body.endswith("/"):
            body = body[:-1] + "e"
        return body + tail

    ok = name_of(981)
    S.eq(len(ok.encode()), 981, "981-byte name built")
    r = c.request("PUT", "/v1/files/" + up.quote(ok), body=b"fits")
    S.eq(r.status, 201, "a 981-byte name is stored")
    S.eq(c.request("GET", "/v1/files/" + up.quote(ok)).body, b"fits", "and read back")
    for n, tail in ((982, "x"), (983, "\u2713"), (1024, "x")):
        name = name_of(n, tail)
        S.eq(len(name.encode()), n, "%d-byte name built" % n)
        r = c.request("PUT", "/v1/files/" + up.quote(name), body=b"too long")
        S.eq((r.status, r.json()), (400, {"error": "file name too long"}),
             "a %d-byte name is refused" % n)
        S.eq(c.request("GET", "/v1/files/" + up.quote(name)).status, 404, "nothing stored")
    S.eq(c.request("DELETE", "/v1/files/" + up.quote(ok)).status, 204, "tidy up")


def syscw(pid):
    """Write-type system calls the process made so far (/proc/PID/io).  The
    daemon answers on sockets with sendmsg, which this does not count, and a
    point read writes nothing to the database: what it counts is the log."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("syscw:"):
                return int(line.split()[1])
    raise RuntimeError("no syscw in /proc/%d/io" % pid)


REQUEST_LINE = re.compile(
    r'\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","level":"(info|error)",'
    r'"request_id":"[0-9a-f]{16}","method":"(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|other)",'
    r'"path":"((?:[^"\\\x00-\x1f]|\\["\\]|\\u00[0-9a-f]{2})*)","status":(\d{3}),'
    r'"duration_ms":\d+\.\d{3}\}')


def new_request_lines(skip, want, timeout=5):
    """The request lines after the first `skip` lines of the log, once there
    are `want` of them (the log is written by a thread, a little later)."""
    deadline = time.time() + timeout
    while True:
        lines = E.d.log().splitlines()[skip:]
        req = [l for l in lines if '"request_id"' in l]
        if len(req) >= want or time.time() > deadline:
            return req
        time.sleep(0.05)


def test_log_cost():
    """The request log at the default settings: one line per request in the
    exact format, at most one write(2) per line, lines from concurrent
    requests never mixed."""
    c = tenant_client(E.tok_a)
    S.check(c.request("PUT", "/v1/items/log-probe", json_body={"data": 1}).status in (200, 201),
            "probe item")
    time.sleep(0.3)
    n = 300
    skip = len(E.d.log().splitlines())
    w0 = syscw(E.d.pid)
    paths = []
    for i in range(n):
        # Every other path has a quote and a backslash, which the log escapes.
        path = "/v1/items/log-probe" if i % 2 == 0 else '/v1/items/log"x\\y'
        paths.append(path)
        c.request("GET", path)
    lines = new_request_lines(skip, n)
    w1 = syscw(E.d.pid)
    print("log: %d write calls for %d request lines" % (w1 - w0, n), flush=True)
    S.check(w1 - w0 <= n, "at most one write per log line: %d writes for %d requests"
            % (w1 - w0, n))
    S.eq(len(lines), n, "one request line per request")
    got = []
    for l in lines:
        m = REQUEST_LINE.fullmatch(l)
        S.check(m is not None, "request line format: %r" % l[:200])
        if m:
            got.append(json.loads(l)["path"])
    S.eq(got, paths, "paths logged in order, escaped and read back exactly")
    # Concurrent clients: every line whole.
    import threading
    skip = len(E.d.log().splitlines())

    def worker():
        cc = tenant_client(E.tok_a)
        for _ in range(100):
            cc.request("GET", "/v1/items/log-probe")
    ts = [threading.Thread(target=worker) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lines = new_request_lines(skip, 600)
    S.eq(len(lines), 600, "600 concurrent requests, 600 lines")
    S.check(all(REQUEST_LINE.fullmatch(l) for l in lines), "no line mixed with another")


def main():
    E.data = tnlib.tmpdir()
    E.d = None
    try:
        E.admin_key = tnlib.init_store(E.data)
        E.d = tnlib.start_daemon(E.data, ["--auth-fail-burst", "10000", "--rate", "10000",
                                          "--burst", "10000", "--max-file-bytes", "1048576"])
        E.admin = admin_client()
        E.ta = mk_tenant("acme")
        E.tb = mk_tenant("bravo")
        E.key_a = mk_key(E.ta["id"])
        E.key_b = mk_key(E.tb["id"])
        E.tok_a = token_for(E.key_a["api_key"])
        E.tok_b = token_for(E.key_b["api_key"])
        E.cursor_b = ""
        for t in (test_health_and_keepalive, test_admin_auth_and_tenants, test_keys_admin,
                  test_auth_tokens, test_me_and_sync, test_items, test_list_and_cursors,
                  test_isolation, test_scopes, test_files, test_traversal,
                  test_revocation_and_rotation, test_quotas, test_metrics_and_audit,
                  test_openapi, test_rate_limits, test_tenant_share, test_listen_rules, test_cli_keys, test_logs,
                  test_log_cost, test_file_name_limit):
            S.run(t)
        rc = E.d.stop()
        E.d = None
        S.eq(rc, 0, "daemon exits 0 on SIGTERM")
    finally:
        if E.d:
            E.d.stop()
        shutil.rmtree(E.data, ignore_errors=True)
    S.finish()


if __name__ == "__main__":
    main()
