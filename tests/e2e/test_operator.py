"""End-to-end tests of operator access and per-tenant settings against the real
daemon: operator keys and their grants, operator tokens (bound to one tenant,
naming none), the audit log with both identities and its ?tenant= filters, and
settings changed over HTTP and by the CLI in another process while `serve`
runs (rate limit, quotas, sync on/off), applied without a restart.

Every response to a non-admin client is checked for the ids of all tenants
created (body and headers), as in test_http.py.
"""
import base64
import calendar
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnlib  # noqa: E402

S = tnlib.Suite("operator")
TENANT_IDS = set()
ALL_SCOPES = ["items:read", "items:write", "files:read", "files:write"]


class Env:
    pass


E = Env()
leak_check = tnlib.leak_checker(S, lambda: ())


def admin():
    return tnlib.Client(E.d.port, {"X-Admin-Key": E.admin_key}, leak_check)


def anon():
    return tnlib.Client(E.d.port, None, leak_check)


def bearer(token):
    return tnlib.Client(E.d.port, {"Authorization": "Bearer " + token}, leak_check)


def cli(*args):
    return tnlib.run(list(args) + ["--data", E.data])


def mk_tenant(name):
    r = E.admin.request("POST", "/v1/admin/tenants", json_body={"name": name})
    S.eq(r.status, 201, "create tenant %s" % name)
    t = r.json()
    TENANT_IDS.add(t["id"].lower())
    return t


def key_token(tid, scopes=ALL_SCOPES):
    r = E.admin.request("POST", "/v1/admin/tenants/%s/keys" % tid, json_body={"scopes": scopes})
    S.eq(r.status, 201, "create key")
    r = anon().request("POST", "/v1/auth", json_body={"api_key": r.json()["api_key"]})
    S.eq(r.status, 200, "key token")
    return r.json()["token"]


def op_auth(key, tenant, scopes=None):
    body = {"operator_key": key, "tenant": tenant}
    if scopes is not None:
        body["scopes"] = scopes
    return anon().request("POST", "/v1/auth", json_body=body)


def op_token(key, tenant, scopes=None):
    r = op_auth(key, tenant, scopes)
    S.eq(r.status, 200, "operator token for %s" % tenant)
    return r.json().get("token", "")


def payload(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def audit(client, path):
    r = client.request("GET", path)
    S.eq(r.status, 200, "GET " + path)
    return r.json()["events"] if r.status == 200 else []


def spec_check(path, method, status, r):
    """The live response matches docs/openapi.yaml."""
    try:
        import jsonschema
        import yaml
    except ImportError as e:
        S.check(False, "yaml / jsonschema missing: %s" % e)
        return
    if not hasattr(E, "spec"):
        E.spec = yaml.safe_load(open("docs/openapi.yaml"))
    op = E.spec["paths"].get(path, {}).get(method)
    if not S.check(op is not None, "openapi documents %s %s" % (method, path)):
        return
    resp = op["responses"].get(str(status))
    if not S.check(resp is not None, "openapi documents %s %s %d" % (method, path, status)):
        return
    if "$ref" in resp:
        resp = E.spec["components"]["responses"][resp["$ref"].split("/")[-1]]
    if "content" not in resp:
        # The spec says this answer has no body: then it has none.
        S.eq(r.body, b"", "%s %s %d has no body, as documented" % (method, path, status))
        return
    doc = {"components": E.spec["components"]}
    doc.update(resp["content"]["application/json"]["schema"])
    try:
        jsonschema.validate(r.json(), doc)
    except jsonschema.ValidationError as e:
        S.check(False, "%s %s %d does not match the spec: %s" % (method, path, status, e.message))


# ---- operators -------------------------------------------------------------------

def setup():
    E.data = tnlib.tmpdir()
    E.admin_key = tnlib.init_store(E.data)
    E.d = tnlib.start_daemon(E.data, ["--quiet", "--no-sync"])
    E.admin = admin()
    E.a = mk_tenant("op-a")
    E.b = mk_tenant("op-b")
    E.c = mk_tenant("op-c")
    r = E.admin.request("POST", "/v1/admin/operators", json_body={
        "name": "msp-one",
        "grants": [{"tenant": E.a["id"], "scopes": ALL_SCOPES},
                   {"tenant": E.b["id"], "scopes": ["items:read"]}]})
    S.eq(r.status, 201, "create operator")
    spec_check("/v1/admin/operators", "post", 201, r)
    E.op = r.json()
    E.op_key = E.op["operator_key"]
    # Tenant C has its own data the operator must never reach.
    c = bearer(key_token(E.c["id"]))
    S.eq(c.request("PUT", "/v1/items/secret", json_body={"data": {"c": 1}}).status, 201,
         "tenant C writes its item")
    b = bearer(key_token(E.b["id"]))
    S.eq(b.request("PUT", "/v1/items/b-item", json_body={"data": {"b": 1}}).status, 201,
         "tenant B writes its item")


def test_operator_key_and_listing():
    S.check(re.fullmatch(r"tno_[0-9a-f]{24}_[A-Za-z0-9_-]{43}", E.op_key) is not None,
            "operator key format: %r" % E.op_key[:8])
    S.eq(E.op_key[4:28], E.op["operator_id"], "the key names the operator id")
    S.eq(sorted(g["tenant_name"] for g in E.op["grants"]), ["op-a", "op-b"], "grants on create")
    r = E.admin.request("GET", "/v1/admin/operators")
    S.eq(r.status, 200, "list operators")
    spec_check("/v1/admin/operators", "get", 200, r)
    ops = [o for o in r.json()["operators"] if o["operator_id"] == E.op["operator_id"]]
    S.check(len(ops) == 1 and "operator_key" not in ops[0] and E.op_key not in r.body.decode(),
            "the listing never shows the key")
    r = E.admin.request("POST", "/v1/admin/operators", json_body={"name": "msp-one"})
    S.eq(r.status, 409, "a second operator with the same name")
    for bad in [{}, {"name": ""}, {"name": "x y"}, {"name": "ok", "extra": 1},
                {"name": "ok", "grants": [{"tenant": E.a["id"]}]},
                {"name": "ok", "grants": [{"tenant": E.a["id"], "scopes": ["admin"]}]},
                {"name": "ok", "grants": "all"}]:
        S.eq(E.admin.request("POST", "/v1/admin/operators", json_body=bad).status, 400,
             "bad operator body %r" % bad)
    r = E.admin.request("POST", "/v1/admin/operators", json_body={
        "name": "ok", "grants": [{"tenant": "0c7e3f9a-1b2c-4d5e-8f90-123456789abc",
                                  "scopes": ["items:read"]}]})
    S.eq(r.status, 404, "a grant on an unknown tenant")
    names = [o["name"] for o in E.admin.request("GET", "/v1/admin/operators").json()["operators"]]
    S.check("ok" not in names, "refused creations left nothing behind")
    S.eq(anon().request("GET", "/v1/admin/operators").status, 401, "operators are admin-only")


def test_operator_token_is_bound_and_names_no_tenant():
    tok = op_token(E.op_key, "op-a")
    p = payload(tok)
    text = json.dumps(p).lower()
    S.check(all(t not in text for t in TENANT_IDS), "token payload names no tenant id: %r" % p)
    S.eq(p.get("sub"), "tno." + E.op["operator_id"], "token subject is the operator")
    S.check("tenant" not in p, "no tenant claim")
    a = bearer(tok)
    r = a.request("PUT", "/v1/items/from-op", json_body={"data": {"by": "operator"}})
    S.eq(r.status, 201, "operator writes in granted tenant A")
    me = a.request("GET", "/v1/me")
    S.eq(me.status, 200, "GET /v1/me with an operator token")
    S.eq(me.json().get("tenant"), "op-a", "the session is tenant A's")
    # The write landed in A, as seen by A's own key.
    own = bearer(key_token(E.a["id"]))
    S.eq(own.request("GET", "/v1/items/from-op").status, 200, "A sees the operator's item")
    r = a.request("PUT", "/v1/files/op.txt", body=b"by operator",
                  headers={"Content-Type": "text/plain"})
    S.eq(r.status, 201, "operator uploads a file in A")
    r = own.request("GET", "/v1/files/op.txt")
    S.eq((r.status, r.body), (200, b"by operator"), "A reads the operator's file")
    # Other tenants' data stays out of reach with this token.
    S.eq(a.request("GET", "/v1/items/secret").status, 404, "C's item is a plain 404 from A")
    S.eq(a.request("GET", "/v1/items/b-item").status, 404, "B's item is a plain 404 from A")
    # B is granted items:read only.
    b = bearer(op_token(E.op_key, "op-b"))
    S.eq(b.request("GET", "/v1/items/b-item").status, 200, "operator reads in B")
    S.eq(b.request("PUT", "/v1/items/x", json_body={"data": {}}).status, 403,
         "items:write is outside the grant on B")
    S.eq(b.request("GET", "/v1/files").status, 403, "files:read is outside the grant on B")
    ids = [i["id"] for i in b.request("GET", "/v1/items").json()["items"]]
    S.eq(ids, ["b-item"], "listing in B shows only B's items")
    # Narrower scopes on request; scopes beyond the grant are refused.
    ro = bearer(op_token(E.op_key, "op-a", ["items:read"]))
    S.eq(ro.request("GET", "/v1/items/from-op").status, 200, "read-only operator token reads")
    S.eq(ro.request("DELETE", "/v1/items/from-op").status, 403, "read-only token cannot delete")
    S.eq(op_auth(E.op_key, "op-b", ["items:write"]).status, 401, "scopes outside the grant")
    # No grant, unknown tenant, bad keys: the same 401.
    S.eq(op_auth(E.op_key, "op-c").status, 401, "no grant on C")
    S.eq(op_auth(E.op_key, "no-such-tenant").status, 401, "unknown tenant")
    S.eq(op_auth(E.op_key, E.a["id"]).status, 401, "tenants are named by name, not id")
    bad = E.op_key[:-4] + ("AAAA" if E.op_key[-4:] != "AAAA" else "BBBB")
    S.eq(op_auth(bad, "op-a").status, 401, "wrong operator secret")
    S.eq(op_auth("tnk_" + E.op_key[4:], "op-a").status, 401, "an operator key is not an API key")
    S.eq(anon().request("POST", "/v1/auth", json_body={"api_key": E.op_key}).status, 401,
         "operator key in api_key")
    S.eq(anon().request("POST", "/v1/auth", json_body={"operator_key": E.op_key}).status, 400,
         "operator key without a tenant")
    r = op_auth(E.op_key, "op-a")
    spec_check("/v1/auth", "post", 200, r)
    # A tenant token cannot use the operator routes.
    S.eq(own.request("GET", "/v1/operator/audit").status, 403, "tenant token on operator route")


def test_audit_has_both_identities_and_filters():
    a = bearer(op_token(E.op_key, "op-a"))
    S.eq(a.request("GET", "/v1/items/from-op").status, 200, "an operator request to audit")
    time.sleep(0.2)  # the audit row is written as the request completes
    ev = audit(E.admin, "/v1/admin/audit?tenant=%s&limit=1000" % E.a["id"])
    S.check(len(ev) > 0, "A has audit events")
    S.check(all(e["tenant_id"] == E.a["id"] for e in ev), "?tenant= keeps only A's events")
    reqs = [e for e in ev if e["action"] == "operator.request"]
    S.check(any("GET /v1/items/from-op 200" in (e["detail"] or "") for e in reqs),
            "the operator's GET is audited: %r" % [e["detail"] for e in reqs][-3:])
    S.check(all(e["operator_id"] == E.op["operator_id"] and
                e["actor"] == "operator:" + E.op["operator_id"] for e in reqs),
            "operator requests carry the operator id and the tenant")
    S.check(any(e["action"] == "operator.token" for e in ev), "token issue is audited")
    evb = audit(E.admin, "/v1/admin/audit?tenant=%s&limit=1000" % E.b["id"])
    S.check(evb and all(e["tenant_id"] == E.b["id"] for e in evb), "?tenant=B keeps only B's")
    S.check(not any("from-op" in (e["detail"] or "") for e in evb), "A's requests not in B's log")
    r = E.admin.request("GET", "/v1/admin/audit?tenant=0c7e3f9a-1b2c-4d5e-8f90-123456789abc")
    S.eq(r.status, 404, "audit of an unknown tenant")
    S.eq(E.admin.request("GET", "/v1/admin/audit?tenant=").status, 400, "empty ?tenant=")
    r = E.admin.request("GET", "/v1/admin/audit?tenant=%s&limit=2" % E.a["id"])
    spec_check("/v1/admin/audit", "get", 200, r)
    nxt = r.json()["next_cursor"]
    S.check(nxt is not None, "paging within one tenant")
    r2 = E.admin.request("GET", "/v1/admin/audit?tenant=%s&cursor=%s" % (E.a["id"], nxt))
    S.check(all(e["tenant_id"] == E.a["id"] and e["seq"] > int(nxt) for e in r2.json()["events"]),
            "the next page is still A's")


def test_operator_reads_only_granted_audit():
    a = bearer(op_token(E.op_key, "op-a"))
    r = a.request("GET", "/v1/operator/audit?limit=1000")
    S.eq(r.status, 200, "operator audit of its token's tenant")
    spec_check("/v1/operator/audit", "get", 200, r)
    ev = r.json()["events"]
    S.check(ev and all("tenant_id" not in e for e in ev), "operator audit names no tenant id")
    S.check(any(e["action"] == "operator.request" for e in ev), "its own requests are there")
    r = a.request("GET", "/v1/operator/audit?tenant=op-b&limit=1000")
    S.eq(r.status, 200, "audit of another granted tenant")
    S.check(not any("from-op" in (e["detail"] or "") for e in r.json()["events"]),
            "B's audit holds nothing of A's")
    r_c = a.request("GET", "/v1/operator/audit?tenant=op-c")
    r_x = a.request("GET", "/v1/operator/audit?tenant=nobody")
    S.eq((r_c.status, r_c.body), (404, r_x.body if r_x.status == 404 else None),
         "ungranted and unknown tenants get the same 404")
    S.eq(a.request("GET", "/v1/operator/audit?tenant=" + E.c["id"]).status, 404,
         "an id does not name a tenant here")
    S.eq(anon().request("GET", "/v1/operator/audit").status, 401, "no token")


def test_grant_removal_and_revocation_take_effect_next_request():
    r = E.admin.request("POST", "/v1/admin/operators", json_body={
        "name": "msp-two", "grants": [{"tenant": E.a["id"], "scopes": ALL_SCOPES}]})
    S.eq(r.status, 201, "create a second operator")
    op = r.json()
    a = bearer(op_token(op["operator_key"], "op-a"))
    S.eq(a.request("GET", "/v1/me").status, 200, "token works")
    # Add a grant with PUT, narrow it, then remove it.
    path = "/v1/admin/operators/%s/grants/%s" % (op["operator_id"], E.b["id"])
    r = E.admin.request("PUT", path, json_body={"scopes": ALL_SCOPES})
    S.eq(r.status, 201, "grant B")
    spec_check("/v1/admin/operators/{operator_id}/grants/{tenant_id}", "put", 201, r)
    b = bearer(op_token(op["operator_key"], "op-b"))
    S.eq(b.request("PUT", "/v1/items/two", json_body={"data": {}}).status, 201, "writes in B")
    r = E.admin.request("PUT", path, json_body={"scopes": ["items:read"]})
    S.eq(r.status, 200, "narrow the grant on B")
    S.eq(b.request("PUT", "/v1/items/two", json_body={"data": {}}).status, 403,
         "a narrowed grant applies to a token already issued")
    S.eq(b.request("GET", "/v1/items/two").status, 200, "reading still allowed")
    S.eq(E.admin.request("PUT", path, json_body={"scopes": ["root"]}).status, 400, "bad scopes")
    r = E.admin.request("DELETE", path)
    S.eq(r.status, 204, "remove the grant on B")
    spec_check("/v1/admin/operators/{operator_id}/grants/{tenant_id}", "delete", 204, r)
    S.eq(b.request("GET", "/v1/items/two").status, 401, "removed grant: next request is 401")
    S.eq(E.admin.request("DELETE", path).status, 404, "the grant is gone")
    S.eq(op_auth(op["operator_key"], "op-b").status, 401, "no new token for B")
    S.eq(a.request("GET", "/v1/me").status, 200, "A is unaffected")
    r = E.admin.request("DELETE", "/v1/admin/operators/" + op["operator_id"])
    S.eq(r.status, 204, "revoke the operator")
    S.eq(a.request("GET", "/v1/me").status, 401, "revoked operator: next request is 401")
    S.eq(op_auth(op["operator_key"], "op-a").status, 401, "revoked operator gets no token")
    S.eq(E.admin.request("DELETE", "/v1/admin/operators/" + op["operator_id"]).status, 404,
         "revoking twice")
    r = E.admin.request("PUT", path, json_body={"scopes": ALL_SCOPES})
    S.eq(r.status, 404, "a revoked operator cannot be granted again")
    S.eq(E.admin.request("DELETE", "/v1/admin/operators/nope").status, 404, "unknown operator")


def test_cli_operator_while_serving():
    p = cli("operator", "--help")
    S.check(p.returncode == 0 and "grant" in p.stdout, "operator --help")
    p = cli("operator", "create", "msp-cli", "--tenant", "op-a,op-c", "--scopes", "items:read")
    S.eq(p.returncode, 0, "operator create: %s" % p.stderr.strip())
    key = p.stdout.strip()
    S.check(key.startswith("tno_") and key not in p.stderr, "the key on stdout only")
    c = bearer(op_token(key, "op-c"))
    S.eq(c.request("GET", "/v1/items/secret").status, 200, "CLI grant works in the daemon")
    p = cli("operator", "list", "--json")
    ops = {o["name"]: o for o in json.loads(p.stdout)}
    S.eq(sorted(g["tenant"] for g in ops["msp-cli"]["grants"]), ["op-a", "op-c"], "list --json")
    S.check(key not in p.stdout, "list never prints a key")
    p = cli("operator", "ungrant", "msp-cli", "--tenant", "op-c")
    S.eq(p.returncode, 0, "operator ungrant: %s" % p.stderr.strip())
    S.eq(c.request("GET", "/v1/items/secret").status, 401,
         "CLI ungrant: the running daemon refuses the next request")
    p = cli("operator", "grant", "msp-cli", "--tenant", "op-c", "--scopes", "items:read")
    S.eq(p.returncode, 0, "operator grant")
    S.eq(c.request("GET", "/v1/items/secret").status, 401,
         "grant again: the token of the removed grant stays ended")
    c = bearer(op_token(key, "op-c"))
    S.eq(c.request("GET", "/v1/items/secret").status, 200, "a token of the new grant works")
    S.eq(cli("operator", "revoke", "msp-cli").returncode, 0, "operator revoke")
    S.eq(c.request("GET", "/v1/items/secret").status, 401, "CLI revoke applies at once")
    S.eq(cli("operator", "revoke", "msp-cli").returncode, 3, "revoke twice: not found")
    S.eq(cli("operator", "grant", "nobody", "--tenant", "op-a", "--scopes", "items:read")
         .returncode, 3, "grant for an unknown operator")
    S.eq(cli("operator", "create", "x", "--tenant", "nope", "--scopes", "items:read").returncode,
         3, "create with an unknown tenant")
    S.eq(cli("operator", "create", "y", "--tenant", "op-a").returncode, 2, "grant without scopes")
    S.eq(cli("operator", "frob").returncode, 2, "unknown subcommand")
    p = cli("sql", "--tenant", "op-a", "-c", "SELECT * FROM _operators")
    S.check(p.returncode != 0 and "tno_" not in p.stdout, "the console cannot read _operators")
    p = cli("sql", "--tenant", "op-a", "-c", "SELECT * FROM _tenant_settings")
    S.check(p.returncode != 0, "the console cannot read _tenant_settings")


# ---- settings ----------------------------------------------------------------------

def tenant_row(tid):
    for t in E.admin.request("GET", "/v1/admin/tenants").json()["tenants"]:
        if t["id"] == tid:
            return t
    return None


def test_patch_settings_and_bad_bodies():
    t = mk_tenant("set-a")
    path = "/v1/admin/tenants/" + t["id"]
    r = E.admin.request("PATCH", path, json_body={"settings": {
        "rate_limit": 5, "burst": 7, "max_items": 10, "max_file_bytes": 4096, "sync": False,
        "sync_priority": 4, "tombstone_days": 9}})
    S.eq(r.status, 200, "PATCH settings")
    spec_check("/v1/admin/tenants/{id}", "patch", 200, r)
    want = {"rate_limit": 5, "burst": 7, "max_items": 10, "max_file_bytes": 4096, "sync": False,
            "sync_priority": 4, "tombstone_days": 9}
    S.eq(r.json().get("settings"), want, "PATCH answers the new settings")
    S.eq(r.json().get("quotas"), {"max_items": 10, "max_file_bytes": 4096}, "quotas agree")
    row = tenant_row(t["id"])
    S.eq(row and row.get("settings"), want, "GET /v1/admin/tenants shows them")
    before = json.dumps(row, sort_keys=True)
    bad_bodies = [
        {"settings": {"rate_limit": 1, "colour": "red"}},
        {"settings": {"rate_limit": -1}},
        {"settings": {"rate_limit": "fast"}},
        {"settings": {"burst": 0.5}},
        {"settings": {"max_items": -5}},
        {"settings": {"max_items": 1.5}},
        {"settings": {"max_file_bytes": "1k"}},
        {"settings": {"sync": "off"}},
        {"settings": {"sync": 0}},
        {"settings": {"sync_priority": 0}},
        {"settings": {"sync_priority": 101}},
        {"settings": {"tombstone_days": 0}},
        {"settings": {"tombstone_days": 3651}},
        {"settings": []},
        {"settings": {"max_items": 1}, "quotas": {"max_items": 2}},
        {"quotas": {"rate_limit": 1}},
        {"name": "set-renamed", "settings": {"sync_priority": 500}},
        {"name": 5},
        {"nmae": "typo"},
        {"tenant_id": t["id"]},
    ]
    for body in bad_bodies:
        r = E.admin.request("PATCH", path, json_body=body)
        S.eq(r.status, 400, "bad PATCH %r" % body)
    r = E.admin.request("PATCH", path, json_body={"settings": {"colour": 1}})
    S.eq(r.json(), {"error": "unknown field"}, "unknown fields are named as such")
    r = E.admin.request("PATCH", path, body=b"{not json",
                        headers={"Content-Type": "application/json"})
    S.eq(r.status, 400, "PATCH with broken JSON")
    S.eq(json.dumps(tenant_row(t["id"]), sort_keys=True), before, "nothing changed by bad PATCHes")
    r = E.admin.request("PATCH", path, json_body={"settings": {
        "rate_limit": None, "burst": None, "max_items": None, "max_file_bytes": None,
        "sync": True, "sync_priority": None, "tombstone_days": None}})
    S.eq(r.status, 200, "null resets every setting")
    S.eq(r.json().get("settings"), {"rate_limit": None, "burst": None, "max_items": None,
                                    "max_file_bytes": None, "sync": True, "sync_priority": 1,
                                    "tombstone_days": None}, "defaults after reset")
    r = E.admin.request("PATCH", path, json_body={"quotas": {"max_items": 3}})
    S.eq(r.status, 200, "the older quotas object still works")
    S.eq(tenant_row(t["id"])["settings"]["max_items"], 3, "quotas write the same setting")
    ev = audit(E.admin, "/v1/admin/audit?tenant=%s&limit=1000" % t["id"])
    S.check(sum(e["action"] == "tenant.settings" for e in ev) == 3,
            "each accepted change is audited once: %r" % [e["action"] for e in ev])


def burst_statuses(c, n):
    return [c.request("GET", "/v1/me").status for _ in range(n)]


def test_rate_limit_applies_without_restart():
    t = mk_tenant("set-rate")
    c = bearer(key_token(t["id"]))
    S.check(all(s == 200 for s in burst_statuses(c, 10)), "default limits allow 10 requests")
    r = E.admin.request("PATCH", "/v1/admin/tenants/" + t["id"],
                        json_body={"settings": {"rate_limit": 0.2, "burst": 3}})
    S.eq(r.status, 200, "PATCH rate limit")
    st = burst_statuses(c, 6)
    S.check(st[:3] == [200] * 3 and all(s == 429 for s in st[3:]),
            "PATCHed rate: 3 then 429: %r" % st)
    # The tenant's limit covers operators acting in it too.
    E.admin.request("PUT", "/v1/admin/operators/%s/grants/%s" % (E.op["operator_id"], t["id"]),
                    json_body={"scopes": ALL_SCOPES})
    o = bearer(op_token(E.op_key, "set-rate"))
    S.eq(o.request("GET", "/v1/me").status, 429, "an operator shares the tenant's bucket")
    p = cli("tenant", "set", "set-rate", "--rate-limit", "default", "--burst", "default")
    S.eq(p.returncode, 0, "tenant set --rate-limit default: %s" % p.stderr.strip())
    S.check(all(s == 200 for s in burst_statuses(c, 10)), "CLI reset applies to the daemon")
    p = cli("tenant", "set", t["id"], "--rate-limit", "0.1", "--burst", "1")
    S.eq(p.returncode, 0, "tenant set by id")
    st = burst_statuses(c, 3)
    S.check(st[0] == 200 and st[1:] == [429, 429], "CLI rate 1 burst: %r" % st)
    other = bearer(key_token(E.a["id"]))
    S.check(all(s == 200 for s in burst_statuses(other, 5)), "other tenants are not limited")
    cli("tenant", "set", "set-rate", "--rate-limit", "default", "--burst", "default")


def test_quotas_apply_without_restart():
    t = mk_tenant("set-quota")
    c = bearer(key_token(t["id"]))
    p = cli("tenant", "set", "set-quota", "--max-items", "2", "--max-file-bytes", "10")
    S.eq(p.returncode, 0, "tenant set quotas: %s" % p.stderr.strip())
    S.check("max-items 2" in p.stdout, "tenant set prints the result: %r" % p.stdout)
    S.eq(c.request("PUT", "/v1/items/q1", json_body={"data": {}}).status, 201, "item 1")
    S.eq(c.request("PUT", "/v1/items/q2", json_body={"data": {}}).status, 201, "item 2")
    r = c.request("PUT", "/v1/items/q3", json_body={"data": {}})
    S.eq((r.status, r.json()), (507, {"error": "quota exceeded"}), "item 3 passes the quota")
    r = c.request("PUT", "/v1/files/big.bin", body=b"x" * 20,
                  headers={"Content-Type": "application/octet-stream"})
    S.eq(r.status, 507, "a file over the byte quota")
    S.eq(c.request("PUT", "/v1/files/small.bin", body=b"x" * 10,
                   headers={"Content-Type": "application/octet-stream"}).status, 201,
         "a file within the byte quota")
    r = E.admin.request("PATCH", "/v1/admin/tenants/" + t["id"],
                        json_body={"settings": {"max_items": None, "max_file_bytes": None}})
    S.eq(r.status, 200, "PATCH removes the quotas")
    S.eq(c.request("PUT", "/v1/items/q3", json_body={"data": {}}).status, 201,
         "item 3 after the quota is removed")
    for bad in (["--max-items", "-1"], ["--max-items", "two"], ["--sync", "maybe"],
                ["--sync-priority", "0"], ["--tombstone-days", "4000"], ["--rate-limit"],
                ["--burst", "0.5"], ["--max-items", "1", "--max-items", "2"], []):
        S.eq(cli("tenant", "set", "set-quota", *bad).returncode, 2, "tenant set %r" % bad)
    S.eq(cli("tenant", "set", "nobody", "--max-items", "1").returncode, 3, "unknown tenant")
    S.eq(tenant_row(t["id"])["settings"]["max_items"], None, "refused sets changed nothing")
    S.check(cli("tenant", "set", "--help").returncode == 0, "tenant set --help")


def test_sync_settings_in_status():
    t = mk_tenant("set-sync")
    c = bearer(key_token(t["id"]))
    for i in range(3):
        c.request("PUT", "/v1/items/s%d" % i, json_body={"data": {"i": i}})
    p = cli("tenant", "set", "set-sync", "--sync", "off", "--sync-priority", "7",
            "--tombstone-days", "3")
    S.eq(p.returncode, 0, "tenant set --sync off")
    p = cli("status", "--json")
    S.eq(p.returncode, 0, "status --json beside the daemon")
    rows = {x["name"]: x for x in json.loads(p.stdout)["sync"]["tenants"]}
    row = rows.get("set-sync", {})
    S.eq(row.get("sync"), False, "status shows sync off")
    S.eq(row.get("pending"), 3, "its rows stay pending")
    S.eq(row.get("settings", {}).get("sync_priority"), 7, "status shows the priority")
    S.eq(row.get("settings", {}).get("tombstone_days"), 3, "status shows tombstone days")
    txt = cli("status").stdout
    S.check(re.search(r"set-sync\s+off\s+3", txt) is not None, "text status: %r" % txt[-400:])
    r = E.admin.request("GET", "/v1/admin/sync")
    S.eq(r.status, 200, "GET /v1/admin/sync")
    rows = {x["name"]: x for x in r.json()["tenants"]}
    S.eq(rows["set-sync"]["settings"]["sync"], False, "/v1/admin/sync shows the settings")
    r = c.request("GET", "/v1/sync/status")
    S.eq((r.status, r.json().get("pending")), (200, 3), "the tenant sees its backlog")
    S.check("settings" not in r.json() and "sync" not in r.json(),
            "the tenant view is unchanged (no settings)")


def test_sync_settings_reach_dynamodb():
    """Against moto: sync off keeps a tenant's rows local until it is turned on
    again; tombstone_days sets the expires_at of that tenant's tombstones."""
    import awslib
    moto = awslib.Moto()
    try:
        data = os.path.join(tnlib.tmpdir(), "data")
        env = awslib.sync_env(moto.url, "op-bucket", "op-table", {"TENANTRY_DATA": data})
        ddb, s3 = awslib.clients(moto.url)

        def tn(*args, stdin=None):
            import subprocess
            p = subprocess.run([tnlib.TENANTRY] + list(args), capture_output=True, text=True,
                               env=env, input=stdin, timeout=120)
            S.eq(p.returncode, 0, "tenantry %s: %s" % (" ".join(args), p.stderr.strip()))
            return p.stdout

        tn("init")
        tn("tenant", "create", "keep")
        tn("tenant", "create", "later")
        s3.create_bucket(Bucket="op-bucket")
        tn("remote", "init")
        ids = {t["name"]: t["id"] for t in json.loads(tn("tenant", "list", "--json"))}
        TENANT_IDS.update(i.lower() for i in ids.values())
        tn("item", "put", "--tenant", "keep", "--id", "gone", stdin="{}")
        tn("item", "put", "--tenant", "later", "--id", "held", stdin="{}")
        tn("tenant", "set", "later", "--sync", "off")
        tn("tenant", "set", "keep", "--tombstone-days", "2")
        tn("item", "delete", "--tenant", "keep", "gone")
        tn("sync", "--once")
        rows = {(i["pk"]["S"], i["sk"]["S"]): i for i in awslib.scan_all(ddb, "op-table")}
        S.check(not any(pk.endswith(ids["later"]) for pk, _ in rows),
                "sync off: nothing of the tenant reached DynamoDB")
        tomb = rows.get(("TENANT#" + ids["keep"], "ITEM#gone"))
        S.check(tomb is not None and tomb["deleted"]["BOOL"], "the tombstone was written")
        if tomb:
            upd = calendar.timegm(time.strptime(tomb["updated_at"]["S"][:19], "%Y-%m-%dT%H:%M:%S"))
            S.eq(int(tomb["expires_at"]["N"]) - int(upd), 2 * 86400,
                 "expires_at is deletion time + tombstone_days")
        st = json.loads(tn("status", "--json"))
        later = [t for t in st["sync"]["tenants"] if t["name"] == "later"]
        S.check(later and later[0]["pending"] == 1 and later[0]["sync"] is False,
                "the held row stays pending: %r" % later)
        tn("tenant", "set", "later", "--sync", "on")
        tn("sync", "--once")
        rows = {(i["pk"]["S"], i["sk"]["S"]) for i in awslib.scan_all(ddb, "op-table")}
        S.check(("TENANT#" + ids["later"], "ITEM#held") in rows, "sync on again: the row lands")
    finally:
        moto.stop()


def main():
    try:
        setup()
        for t in (test_operator_key_and_listing, test_operator_token_is_bound_and_names_no_tenant,
                  test_audit_has_both_identities_and_filters,
                  test_operator_reads_only_granted_audit,
                  test_grant_removal_and_revocation_take_effect_next_request,
                  test_cli_operator_while_serving, test_patch_settings_and_bad_bodies,
                  test_rate_limit_applies_without_restart, test_quotas_apply_without_restart,
                  test_sync_settings_in_status, test_sync_settings_reach_dynamodb):
            S.run(t)
    finally:
        if getattr(E, "d", None):
            S.eq(E.d.stop(), 0, "SIGTERM stops the daemon")
    S.finish()


if __name__ == "__main__":
    main()
