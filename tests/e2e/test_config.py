"""End-to-end tests of the configuration file (<data>/tenantry.conf or
--config PATH) as `serve`, `sync --once`, `remote init` and `status` read it.

- Bad files (unknown key, bad or negative or out-of-range number, duplicate
  key, missing '=', overlong line, NUL byte, bad UTF-8, unreadable or missing
  file): one line on stderr naming file:line and key, never the value, a
  non-zero exit, no signal, and nothing started (the port the file names stays
  closed).
- A good file applies: serve listens on its port, its CORS origins answer a
  preflight, its bucket and sync interval start the sync engine; `sync = off`
  keeps the engine off; status names the file.
- Precedence: a flag beats the file (--listen, --no-sync), the environment
  beats the file (TENANTRY_SYNC_INTERVAL).

No AWS is needed: the sync engine is pointed at a closed loopback port, and
only what it was configured with is checked (its start line in the log).
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnlib  # noqa: E402

S = tnlib.Suite("config")
SECRET = "VeRy-SeCrEt-VaLuE-0042"
CRASH_WORDS = ("sanitizer", "runtime error", "segmentation", "core dumped", "abort")


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    return tnlib.free_port()


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TENANTRY_") and not k.startswith("AWS_")}
    env.update(extra)
    return env


def write_conf(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def run(args, env=None, timeout=30):
    return subprocess.run([tnlib.TENANTRY] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env if env is not None else clean_env(),
                          errors="replace")


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def one_line_refusal(p, what, where, key, code=2):
    err = p.stderr.strip()
    S.eq(p.returncode, code, "%s: exit code" % what)
    S.check(len(err.splitlines()) == 1, "%s: one line on stderr, got %r" % (what, err[:400]))
    S.check(err.startswith("tenantry: "), "%s: starts with 'tenantry: ': %r" % (what, err[:200]))
    S.check(where in err, "%s: names %r: %r" % (what, where, err[:300]))
    if key:
        S.check((": %s: " % key) in err, "%s: names the key %s: %r" % (what, key, err[:300]))
    S.check(SECRET not in err and SECRET not in p.stdout, "%s: a value was echoed" % what)
    S.check(not any(w in err.lower() for w in CRASH_WORDS), "%s: crash words: %r" % (what, err))


def start_serve(data, args=(), env=None, port=None, wait=10):
    """serve with the given flags; waits for /healthz on port.  Returns the
    Popen and its log path."""
    log = os.path.join(data, "..", "serve-%d.log" % time.monotonic_ns())
    logf = open(log, "ab")
    proc = subprocess.Popen([tnlib.TENANTRY, "serve", "--data", data] + list(args), stdout=logf,
                            stderr=logf, env=env if env is not None else clean_env())
    logf.close()
    deadline = time.time() + wait
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                c.close()
                return proc, log
        except OSError:
            pass
        time.sleep(0.05)
    stop(proc)
    with open(log, errors="replace") as f:
        raise RuntimeError("serve did not come up on %d: %s" % (port, f.read()[-1500:]))


def stop(proc):
    if proc.poll() is None:
        proc.terminate()  # by its pid
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


ROOT = tnlib.tmpdir("tn-config-")
DATA = os.path.join(ROOT, "data")
ADMIN = tnlib.init_store(DATA)
CONF = os.path.join(DATA, "tenantry.conf")

# (what, file bytes, line it must name, key it must name)
BAD = [
    ("unknown key", "port = 8787\nthreds = 4\n", 2, "threds"),
    ("bad number", "threads = four\n", 1, "threads"),
    ("negative", "# ok\nsync_interval = -5\n", 2, "sync_interval"),
    ("out of range", "port = 70000\n", 1, "port"),
    ("zero interval", "sync_interval = 0\n", 1, "sync_interval"),
    ("duplicate key", "region = eu-west-1\n\nregion = eu-west-2\n", 3, "region"),
    ("missing =", "port 8787\n", 1, None),
    ("pasted secret", "s3_bucket = ok-bucket\n%s\n" % SECRET, 2, None),
    ("secret-looking key", "aws_secret_access_key = %s\n" % SECRET, 1, "aws_secret_access_key"),
    ("bad secret value", "external_id = %s!\n" % SECRET, 1, "external_id"),
    ("overlong line", "# " + "x" * 2000 + "\n", 1, None),
    ("NUL byte", b"port = 80\x0081\n", 1, None),
    ("bad UTF-8", b"# \xc3\x28\n", 1, None),
    ("CORS path", "cors_origins = https://app.local/x\n", 1, "cors_origins"),
    ("CORS star with others", "cors_origins = *, https://app.local\n", 1, "cors_origins"),
    ("listen and port", "listen = 127.0.0.1:9\nport = 10\n", 2, "port"),
    ("unterminated quote", "external_id = \"%s\n" % SECRET, 1, "external_id"),
]


def test_bad_files_refused_everywhere():
    env = clean_env(AWS_ENDPOINT_URL="http://127.0.0.1:%d" % closed_port(),
                    AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="x" * 20)
    for what, body, line, key in BAD:
        write_conf(CONF, body)
        where = "%s:%d:" % (CONF, line)
        for cmd in (["status"], ["sync", "--once"], ["remote", "init"]):
            p = run(cmd + ["--data", DATA], env=env)
            one_line_refusal(p, "%s (%s)" % (what, " ".join(cmd)), where, key)
    os.remove(CONF)


def test_bad_file_starts_nothing():
    port = closed_port()
    write_conf(CONF, "port = %d\nthreads = 0\n" % port)
    p = run(["serve", "--data", DATA], timeout=20)
    one_line_refusal(p, "serve with threads = 0", "%s:2:" % CONF, "threads")
    S.check(not port_open(port), "the file's port is not listening after a refusal")
    # The same through --config, and a flag does not make a bad file good.
    other = os.path.join(ROOT, "other.conf")
    write_conf(other, "sync = maybe\n")
    p = run(["serve", "--data", DATA, "--config", other, "--listen", "127.0.0.1:%d" % port,
             "--no-sync"], timeout=20)
    one_line_refusal(p, "serve --config with sync = maybe", "%s:1:" % other, "sync")
    S.check(not port_open(port), "the flag's port is not listening after a refusal")
    os.remove(CONF)


def test_unreadable_or_missing_file():
    p = run(["status", "--data", DATA, "--config", os.path.join(ROOT, "absent.conf")])
    one_line_refusal(p, "--config missing", "absent.conf", None, code=2)
    p = run(["serve", "--data", DATA, "--config", ROOT])
    one_line_refusal(p, "--config a directory", "cannot read", None, code=1)
    # The default file is optional: no file, no error.
    p = run(["status", "--data", DATA])
    S.eq(p.returncode, 0, "status without a configuration file")
    S.check("config     none" in p.stdout, "status says no file: %r" % p.stdout[:300])


def test_good_file_applies_port_and_cors():
    port = closed_port()
    write_conf(CONF, "# appliance settings\r\nport = %d   # the API\r\nthreads = 4\r\n"
                     "cors_origins = \"http://app.local:8080\"\r\n" % port)
    proc, log = start_serve(DATA, ["--no-sync"], port=port)
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("OPTIONS", "/v1/items", headers={
            "Origin": "http://app.local:8080", "Access-Control-Request-Method": "GET"})
        r = c.getresponse()
        r.read()
        S.eq(r.status, 204, "preflight from the file's origin")
        S.eq(r.getheader("Access-Control-Allow-Origin"), "http://app.local:8080",
             "allowed origin from the file")
        c.request("OPTIONS", "/v1/items", headers={
            "Origin": "http://evil.local:8080", "Access-Control-Request-Method": "GET"})
        r = c.getresponse()
        r.read()
        S.eq(r.status, 403, "preflight from another origin")
        c.close()
    finally:
        S.eq(stop(proc), 0, "serve exit code after SIGTERM")
    S.check(("listening on 127.0.0.1:%d" % port) in read(log), "log names the file's port")
    p = run(["status", "--data", DATA, "--json"])
    S.eq(p.returncode, 0, "status --json")
    S.eq(json.loads(p.stdout).get("config"), CONF, "status --json names the file")
    os.remove(CONF)


def test_flag_beats_file():
    fport, flag_port = closed_port(), closed_port()
    write_conf(CONF, "port = %d\ncors_origins = http://file.local\n" % fport)
    proc, log = start_serve(DATA, ["--no-sync", "--listen", "127.0.0.1:%d" % flag_port,
                                   "--cors-origin", "http://flag.local"], port=flag_port)
    try:
        S.check(not port_open(fport), "the file's port is not used when --listen is given")
        c = http.client.HTTPConnection("127.0.0.1", flag_port, timeout=5)
        for origin, want in (("http://flag.local", 204), ("http://file.local", 403)):
            c.request("OPTIONS", "/v1/items", headers={
                "Origin": origin, "Access-Control-Request-Method": "GET"})
            r = c.getresponse()
            r.read()
            S.eq(r.status, want, "preflight from %s with --cors-origin given" % origin)
        c.close()
    finally:
        stop(proc)
    os.remove(CONF)


def sync_env(**extra):
    return clean_env(AWS_ENDPOINT_URL="http://127.0.0.1:%d" % closed_port(),
                     AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="x" * 20, **extra)


def test_sync_interval_and_precedence():
    port = closed_port()
    write_conf(CONF, "port = %d\ns3_bucket = file-bucket\nsync_interval = 7\n" % port)
    # File only: the engine starts with the file's bucket and interval.
    proc, log = start_serve(DATA, port=port, env=sync_env())
    stop(proc)
    S.check("sync engine started (every 7 s)" in read(log),
            "engine runs every 7 s from the file: %r" % read(log)[-600:])
    # The environment beats the file.
    proc, log = start_serve(DATA, port=port, env=sync_env(TENANTRY_SYNC_INTERVAL="11"))
    stop(proc)
    S.check("sync engine started (every 11 s)" in read(log),
            "TENANTRY_SYNC_INTERVAL beats the file: %r" % read(log)[-600:])
    # A flag beats the file: --no-sync.
    proc, log = start_serve(DATA, ["--no-sync"], port=port, env=sync_env())
    stop(proc)
    S.check("sync off (--no-sync)" in read(log) and "sync engine started" not in read(log),
            "--no-sync beats the file's bucket")
    # sync = off keeps the engine off even with a bucket.
    write_conf(CONF, "port = %d\ns3_bucket = file-bucket\nsync = off\n" % port)
    proc, log = start_serve(DATA, port=port, env=sync_env())
    stop(proc)
    S.check("sync = off" in read(log) and "sync engine started" not in read(log),
            "sync = off keeps the engine off: %r" % read(log)[-600:])
    # sync = on without a bucket anywhere is refused before anything starts.
    write_conf(CONF, "port = %d\nsync = on\n" % port)
    p = run(["serve", "--data", DATA], env=sync_env(), timeout=20)
    S.eq(p.returncode, 2, "sync = on without a bucket: exit code")
    S.check("s3_bucket" in p.stderr and len(p.stderr.strip().splitlines()) == 1,
            "sync = on without a bucket: one line naming s3_bucket: %r" % p.stderr)
    S.check(not port_open(port), "nothing listens after that refusal")
    os.remove(CONF)


def test_sync_once_reads_the_file():
    env = sync_env(TENANTRY_SYNC_ATTEMPTS="1")
    p = run(["sync", "--once", "--data", DATA], env=env)
    S.check(p.returncode != 0 and "TENANTRY_S3_BUCKET is not set" in p.stderr,
            "without file or variable there is no bucket: %r" % p.stderr[-300:])
    write_conf(CONF, "s3_bucket = file-bucket\n")
    p = run(["sync", "--once", "--data", DATA], env=env)
    S.check("TENANTRY_S3_BUCKET is not set" not in p.stderr,
            "sync --once takes the bucket from the file: %r" % p.stderr[-300:])
    # The store has nothing pending, so the pass succeeds without calling AWS.
    S.eq(p.returncode, 0, "sync --once with the file's bucket: exit code")
    S.check(p.stdout.strip().startswith('{"ok":true'), "summary: %r" % p.stdout[:200])
    os.remove(CONF)


def test_file_sets_the_tenant_share():
    """tenant_rate and tenant_burst from the file: with a share of 1 request/s
    and a burst of 3, a tenant sending while another is active is served its
    first three requests and refused after them; with tenant_rate = 0 (no
    share) it is not refused."""
    toks = {}
    port = closed_port()
    for conf, want_refused in (("tenant_rate = 1\ntenant_burst = 3\n", True),
                               ("tenant_rate = 0\n", False)):
        write_conf(CONF, "port = %d\n%s" % (port, conf))
        proc, _ = start_serve(DATA, ["--no-sync", "--quiet"], port=port)
        try:
            adm = tnlib.Client(port, {"X-Admin-Key": ADMIN})
            for name in ("share-a", "share-b"):
                if name not in toks:
                    t = adm.request("POST", "/v1/admin/tenants", json_body={"name": name}).json()
                    tnlib.add_tenant_ids([t["id"]])
                    toks[name] = adm.request("POST", "/v1/admin/tenants/%s/keys" % t["id"],
                                             json_body={"scopes": ["items:read"]}).json()["api_key"]
            bearer = {n: tnlib.Client(port).request("POST", "/v1/auth", json_body={
                "api_key": k}).json()["token"] for n, k in toks.items()}
            a = tnlib.Client(port, {"Authorization": "Bearer " + bearer["share-a"]})
            b = tnlib.Client(port, {"Authorization": "Bearer " + bearer["share-b"]})
            S.eq(b.request("GET", "/v1/me").status, 200, "the other tenant is active")
            got = [a.request("GET", "/v1/me").status for _ in range(6)]
            S.eq(got[:3], [200] * 3, "%r: the first three requests are served" % conf)
            S.eq(got[3:], [429 if want_refused else 200] * 3,
                 "%r: the next three, sent at once" % conf)
        finally:
            S.eq(stop(proc), 0, "serve exit code after SIGTERM")
    os.remove(CONF)


S.run(test_bad_files_refused_everywhere)
S.run(test_bad_file_starts_nothing)
S.run(test_unreadable_or_missing_file)
S.run(test_good_file_applies_port_and_cors)
S.run(test_flag_beats_file)
S.run(test_sync_interval_and_precedence)
S.run(test_sync_once_reads_the_file)
S.run(test_file_sets_the_tenant_share)
tnlib.shutil.rmtree(ROOT, True)
S.finish()
