#!/usr/bin/env python3
"""test_appliance - what an appliance image needs: the systemd units, the
readiness notification, the manual pages, the Debian package, and the
daemon's idle footprint.

- The units: `make install` (DESTDIR and PREFIX) puts them in place;
  `systemd-analyze verify` accepts them with nothing to say (the binary and
  the man pages they name exist); `systemd-analyze security` rates the
  sandbox; the settings the brief asks for are there.
- Readiness: `tenantry serve` with NOTIFY_SOCKET pointing at a unix datagram
  socket this suite listens on (a path, and an abstract name): READY=1 comes
  only once the port answers, STOPPING=1 on SIGTERM.
- The manual pages: one per command listed by `tenantry --help`, each holding
  that command's --help text word for word, rendered by `man -l` without a
  warning.
- The package: `make deb`, `dpkg -i` into this machine, `tenantry --version`,
  a store round trip and the daemon as the package's user, `dpkg -r` and
  `dpkg --purge` leaving the data.  Needs root (or sudo -n); removes what it
  installed even when a check fails, and refuses to touch a tenantry
  installation, user or /var/lib/tenantry it did not create.
- Idle footprint: the binary does not load libcurl or libcrypto until it
  syncs, and an idle daemon stays within its resident-size budget.
- Under a real systemd: the package installed in a container (systemd as PID
  1 of its own namespaces on a throw-away overlay of this machine's root, with
  its own loopback network and a moto in it): the install starts nothing,
  the sandboxed service becomes active through READY=1, serves, syncs, stops
  cleanly, takes a unix socket in /run/tenantry; the timer's oneshot syncs;
  removal stops the daemon and keeps the data.  Needs root.

Standard library only.  Prints "N passed, N failed" last.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnlib  # noqa: E402

S = tnlib.Suite("appliance")
BUILD = tnlib.BUILD
TN = tnlib.TENANTRY
TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
UNITS = ("tenantry.service", "tenantry-sync.service", "tenantry-sync.timer")
IDLE_RSS_BUDGET_KIB = 8 * 1024
MARKER = ".tenantry-appliance-test"  # left in /var/lib/tenantry by this suite only


def sh(args, env=None, timeout=300, input=None):
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout,
                       input=input, cwd=TOP)
    return p.returncode, p.stdout, p.stderr


def make_install(**vars_):
    args = ["make", "-s", "--no-print-directory", "install", "BUILD=" + BUILD]
    args += ["%s=%s" % kv for kv in vars_.items()]
    return sh(args, timeout=900)


def needed(path):
    """The NEEDED entries of an ELF file."""
    out = sh(["readelf", "-d", path])[1]
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


# `make asan` runs this suite on a sanitizer build: a program linked against
# its library needs the same runtime, its memory is not the daemon's, and
# LeakSanitizer (which ptraces) cannot run under the service's syscall filter.
SANITIZED = any(n.startswith("libasan") for n in needed(TN)) if os.path.exists(TN) else False
SAN_FLAGS = ["-fsanitize=address,undefined"] if SANITIZED else []


def unit_settings(path):
    """{key: [values]} of a unit file (comments and sections ignored)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


# ---- the units ---------------------------------------------------------------

def test_units_install_and_verify():
    """make install places the units (DESTDIR kept, ExecStart rewritten to the
    installed binary); systemd-analyze verify accepts them silently."""
    tmp = tempfile.mkdtemp(prefix="tn-units-")
    try:
        dest = os.path.join(tmp, "dest")
        rc, _, err = make_install(DESTDIR=dest, PREFIX="/usr")
        S.eq(rc, 0, "make install DESTDIR: " + err[-1500:])
        for u in UNITS:
            p = os.path.join(dest, "usr/lib/systemd/system", u)
            S.check(os.path.isfile(p), "DESTDIR install has " + u)
        s = unit_settings(os.path.join(dest, "usr/lib/systemd/system/tenantry.service"))
        S.check(s.get("ExecStart", [""])[0].startswith("/usr/bin/tenantry serve "),
                "packaged ExecStart: %r" % s.get("ExecStart"))
        S.check(os.path.isfile(os.path.join(dest, "usr/share/man/man1/tenantry.1")),
                "DESTDIR install has the man pages")

        # A PREFIX install: the units name a binary that exists, so verify
        # can check ExecStart, and man: links resolve through MANPATH.
        prefix = os.path.join(tmp, "prefix")
        rc, _, err = make_install(PREFIX=prefix)
        S.eq(rc, 0, "make install PREFIX: " + err[-1500:])
        unitdir = os.path.join(prefix, "lib/systemd/system")
        s = unit_settings(os.path.join(unitdir, "tenantry.service"))
        S.check(s.get("ExecStart", [""])[0].startswith(prefix + "/bin/tenantry serve "),
                "ExecStart follows BINDIR: %r" % s.get("ExecStart"))
        env = dict(os.environ, MANPATH=os.path.join(prefix, "share/man"))
        rc, out, err = sh(["systemd-analyze", "verify"] + [os.path.join(unitdir, u)
                                                            for u in UNITS], env=env)
        S.eq(rc, 0, "systemd-analyze verify exit status (%s)" % err.strip())
        S.eq((out + err).strip(), "", "systemd-analyze verify has nothing to say")

        # The sandbox, rated offline; 10 is a unit without any.
        rc, out, err = sh(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                           os.path.join(unitdir, "tenantry.service")], env=env)
        m = re.search(r"Overall exposure level for tenantry.service: ([0-9.]+)", out + err)
        S.check(m is not None, "security rating printed: %r" % (out + err)[-300:])
        S.check(rc == 0 and m and float(m.group(1)) <= 2.0,
                "exposure within 2.0: %s" % (m.group(1) if m else "?"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_unit_settings():
    """The service is Type=notify with the sandbox the appliance relies on; the
    sync job is a oneshot `sync --once` under the same sandbox, on a timer."""
    d = os.path.join(TOP, "dist/systemd")
    serve = unit_settings(os.path.join(d, "tenantry.service"))
    sync = unit_settings(os.path.join(d, "tenantry-sync.service"))
    timer = unit_settings(os.path.join(d, "tenantry-sync.timer"))
    want = {"User": "tenantry", "StateDirectory": "tenantry", "ProtectSystem": "strict",
            "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectHome": "yes",
            "EnvironmentFile": "-/etc/default/tenantry",
            "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "CapabilityBoundingSet": ""}
    for name, s in (("tenantry.service", serve), ("tenantry-sync.service", sync)):
        for k, v in want.items():
            S.eq(s.get(k), [v], "%s %s" % (name, k))
        S.check("ReadWritePaths" not in s and "ReadWriteDirectories" not in s,
                "%s: the state directory is the only writable path" % name)
        S.check("--data ${STATE_DIRECTORY}" in s["ExecStart"][0], name + " uses the state dir")
    S.eq(serve.get("Type"), ["notify"], "serve Type")
    S.eq(serve.get("Restart"), ["on-failure"], "serve Restart")
    S.check(serve["ExecStart"][0].split()[1] == "serve", "serve ExecStart")
    S.eq(sync.get("Type"), ["oneshot"], "sync Type")
    S.check(sync["ExecStart"][0].split()[1:3] == ["sync", "--once"], "sync ExecStart")
    S.check("OnCalendar" in timer or "OnUnitActiveSec" in timer, "timer has a schedule")
    S.eq(timer.get("WantedBy"), ["timers.target"], "timer WantedBy")


# ---- readiness ---------------------------------------------------------------

def notify_listener(abstract):
    """A bound datagram socket and the NOTIFY_SOCKET value naming it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = "tn-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
        s.bind("\0" + name)
        return s, "@" + name, None
    d = tempfile.mkdtemp(prefix="tn-notify-")
    path = os.path.join(d, "notify.sock")
    s.bind(path)
    return s, path, d


def port_answers(port):
    try:
        c = tnlib.http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/healthz")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def check_notifications(abstract):
    data = tnlib.tmpdir()
    sock, addr, sockdir = notify_listener(abstract)
    proc = None
    try:
        tnlib.init_store(data)
        port = tnlib.free_port()
        env = dict(os.environ, NOTIFY_SOCKET=addr)
        proc = subprocess.Popen([TN, "serve", "--data", data, "--no-sync", "--quiet",
                                 "--listen", "127.0.0.1:%d" % port],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        sock.settimeout(20)
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            msg = ""
        # The moment READY=1 is read, the port must already answer.
        answered = port_answers(port)
        S.check(msg.split("\n")[0] == "READY=1", "first notification is READY=1: %r" % msg)
        S.check("STATUS=listening on 127.0.0.1:%d" % port in msg.split("\n"),
                "READY carries a status: %r" % msg)
        S.check(answered, "the port answers when READY=1 arrives")
        os.kill(proc.pid, signal.SIGTERM)
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            msg = ""
        S.check(msg.split("\n")[0] == "STOPPING=1", "SIGTERM gives STOPPING=1: %r" % msg)
        S.eq(proc.wait(30), 0, "serve exits 0 after SIGTERM")
        err = proc.stderr.read().decode()
        S.check("notify" not in err, "no notification error: %r" % err[-300:])
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
        if sockdir:
            shutil.rmtree(sockdir, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


def test_notify_path_socket():
    check_notifications(abstract=False)


def test_notify_abstract_socket():
    check_notifications(abstract=True)


def test_notify_bad_socket_still_serves():
    """A NOTIFY_SOCKET that is neither a path nor '@name' is reported once and
    the daemon serves on (nothing listens, nothing to wait for)."""
    data = tnlib.tmpdir()
    d = None
    try:
        tnlib.init_store(data)
        d = tnlib.start_daemon(data, ["--no-sync"], env={"NOTIFY_SOCKET": "relative/sock"})
        S.check(port_answers(d.port), "serves with a bad NOTIFY_SOCKET")
        S.eq(d.stop(), 0, "exit status")
        S.check("cannot notify the service manager" in d.log(), "the failure is logged")
    finally:
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)


# ---- the manual pages --------------------------------------------------------

def words(text):
    return " ".join(text.split())


def render(page):
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
    p = subprocess.run(["man", "--warnings=w", "-l", page], capture_output=True, env=env,
                       timeout=60)
    out = re.sub(rb".\x08", b"", p.stdout).decode("utf-8", "replace")
    return p.returncode, out, p.stderr.decode("utf-8", "replace")


def contains_in_order(haystack, help_text, what):
    """Every line of help_text (usage: prefix dropped) occurs in haystack,
    in order, whitespace aside."""
    pos = 0
    for line in help_text.splitlines():
        line = words(re.sub(r"^usage: ", "", line))
        if not line:
            continue
        i = haystack.find(line, pos)
        if not S.check(i >= 0, "%s: missing or out of order: %r" % (what, line)):
            return
        pos = i + len(line)


def help_of(*args):
    p = subprocess.run([TN] + list(args) + ["--help"], capture_output=True, text=True,
                       timeout=30)
    S.eq(p.returncode, 0, "%s --help exit status" % " ".join(args))
    return p.stdout


def test_man_pages_match_help():
    mandir = os.path.join(BUILD, "man")
    top = help_of()
    commands = [l.split()[0] for l in top.split("\n\n")[1].splitlines() if l.startswith("  ")]
    S.check(len(commands) >= 10, "commands found in --help: %r" % commands)
    want = {"tenantry.1"} | {"tenantry-%s.1" % c for c in commands}
    S.eq(set(os.listdir(mandir)), want, "one page per command, and no other")
    rc, out, err = render(os.path.join(mandir, "tenantry.1"))
    S.check(rc == 0 and not err, "man -l tenantry.1: %r" % err)
    contains_in_order(words(out), top, "tenantry.1")
    for c in commands:
        page = os.path.join(mandir, "tenantry-%s.1" % c)
        if not S.check(os.path.exists(page), "page for " + c):
            continue
        rc, out, err = render(page)
        S.check(rc == 0 and not err, "man -l %s: rc %d, %r" % (page, rc, err))
        S.check(out.isascii(), "%s renders as plain ASCII (escaped)" % page)
        text = words(out)
        h = help_of(c)
        contains_in_order(text, h, "tenantry-%s.1" % c)
        S.check(("tenantry-%s - " % c) in text, "%s NAME line" % page)
        for sub in sorted(set(re.findall(r"\(see (?:%s )?([a-z][a-z-]*) --help\)" % c, h))):
            contains_in_order(text, help_of(c, sub), "tenantry-%s.1 (%s)" % (c, sub))


# ---- idle footprint ----------------------------------------------------------

def rss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        return int(re.search(r"^Rss:\s+(\d+) kB", f.read(), re.M).group(1))


def mapped_libs(pid):
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(l.split()[-1]) for l in f if ".so" in l}


def test_sync_libraries_load_late():
    """The binary is linked without libcurl and libcrypto; a daemon that does
    not sync never maps them, also after authenticated requests (JWTs and
    key hashes are libsodium's), and idles within its RSS budget."""
    libs = needed(TN)
    S.check(libs, "readelf lists NEEDED: %r" % libs)
    S.check(not any(n.startswith(("libcurl", "libcrypto", "libssl")) for n in libs),
            "binary NEEDED has no curl/OpenSSL: %r" % libs)
    data = tnlib.tmpdir()
    d = None
    try:
        key = tnlib.init_store(data)
        # Eight workers, as on a 2-CPU appliance: the budget is for the libraries.
        d = tnlib.start_daemon(data, ["--no-sync", "--quiet", "--threads", "8"])
        admin = tnlib.Client(d.port, {"X-Admin-Key": key})
        t = admin.request("POST", "/v1/admin/tenants", json_body={"name": "idle"}).json()
        k = admin.request("POST", "/v1/admin/tenants/%s/keys" % t["id"],
                          json_body={"scopes": ["items:read", "items:write"]}).json()
        c = tnlib.Client(d.port)
        tok = c.request("POST", "/v1/auth", json_body={"api_key": k["api_key"]}).json()["token"]
        c.base_headers["Authorization"] = "Bearer " + tok
        S.check(c.request("PUT", "/v1/items/a", json_body={"data": {"v": 1}}).status in (200, 201),
                "put")
        S.eq(c.request("GET", "/v1/items?limit=10").status, 200, "list (HMAC cursor)")
        admin.close()
        c.close()
        libs = mapped_libs(d.pid)
        S.check("libsqlite3.so.0" in " ".join(libs), "maps read (sqlite is there): %r" % libs)
        S.check(not any(l.startswith(("libcurl", "libcrypto", "libssl")) for l in libs),
                "no curl/OpenSSL mapped: %r" % sorted(l for l in libs if "lib" in l))
        # The daemon trims after 10 idle seconds.
        time.sleep(12)
        rss = rss_kib(d.pid)
        if SANITIZED:
            print("idle RSS %d KiB: a sanitizer build, not held to the budget" % rss, flush=True)
        else:
            print("idle RSS %d KiB (budget %d)" % (rss, IDLE_RSS_BUDGET_KIB), flush=True)
            S.check(rss <= IDLE_RSS_BUDGET_KIB, "idle RSS %d KiB within budget" % rss)
    finally:
        if d:
            d.stop()
        shutil.rmtree(data, ignore_errors=True)

    # sync --once still reaches the network code: a closed port is a network
    # failure, not a missing library.
    data = tnlib.tmpdir()
    try:
        tnlib.init_store(data)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TENANTRY_"))}
        env.update(TENANTRY_S3_BUCKET="tn-late", AWS_ACCESS_KEY_ID="test",
                   AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
                   AWS_ENDPOINT_URL="http://127.0.0.1:%d" % tnlib.free_port(),
                   TENANTRY_SYNC_ATTEMPTS="1", TENANTRY_SYNC_BACKOFF_MS="10")
        rc, out, err = tnlib.tn(["remote", "init", "--data", data], env=env, timeout=120)
        S.check(rc != 0, "remote init against a closed port fails")
        S.check("cannot load" not in err, "libcurl loads: %r" % err[-300:])
    finally:
        shutil.rmtree(data, ignore_errors=True)


# ---- the Debian package ------------------------------------------------------

PRIV = [] if os.geteuid() == 0 else ["sudo", "-n"]


def priv(args, **kw):
    return sh(PRIV + list(args), **kw)


def dpkg(args):
    """dpkg, waiting (bounded) while another apt or dpkg holds the lock."""
    deadline = time.time() + 300
    while True:
        rc, out, err = priv(["dpkg"] + args, timeout=600)
        if rc == 0 or "lock" not in err or time.time() > deadline:
            return rc, out, err
        time.sleep(2)


def installed(pkg="tenantry"):
    rc, out, _ = sh(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg])
    return rc == 0 and out.startswith(("ii", "iF", "iU", "rc"))


def user_exists(name="tenantry"):
    return sh(["getent", "passwd", name])[0] == 0


class Machine:
    """What existed before the suite touched the machine, so clean-up removes
    exactly what it created (or what an earlier, interrupted run left, known
    by the marker file)."""

    def __init__(self):
        leftover = os.path.exists("/var/lib/tenantry/" + MARKER)
        self.foreign = not leftover and (installed() or user_exists() or
                                         os.path.exists("/var/lib/tenantry"))
        self.had_user = user_exists() and not leftover

    def clean(self):
        if self.foreign:
            return
        if installed():
            dpkg(["--purge", "tenantry"])
        priv(["rm", "-rf", "/var/lib/tenantry"])
        if not self.had_user and user_exists():
            priv(["userdel", "tenantry"])
        if sh(["getent", "group", "tenantry"])[0] == 0 and not self.had_user:
            priv(["groupdel", "tenantry"])


def as_user(args, timeout=60):
    return priv(["runuser", "-u", "tenantry", "--", "tenantry"] + list(args), timeout=timeout)


def test_debian_package():
    if PRIV and sh(["sudo", "-n", "true"])[0] != 0:
        S.check(False, "the package test needs root or sudo -n (dpkg -i)")
        return
    m = Machine()
    if not S.check(not m.foreign, "this machine has its own tenantry package, user or "
                                  "/var/lib/tenantry: the suite leaves them alone"):
        return
    m.clean()  # an interrupted earlier run
    try:
        package_checks()
    finally:
        m.clean()
    S.check(not installed() and not os.path.exists("/var/lib/tenantry") and
            (m.had_user or not user_exists()), "clean-up left the machine as it was")


def package_checks():
    rc, out, err = sh(["make", "-s", "--no-print-directory", "deb", "BUILD=" + BUILD],
                      timeout=900)
    if not S.eq(rc, 0, "make deb: " + err[-1500:]):
        return
    deb = out.strip().splitlines()[-1]
    rc, depends, _ = sh(["dpkg-deb", "-f", deb, "Depends"])
    for pkg in ("libsqlite3-0", "libsodium23", "libcjson1", "libssl3", "libcurl4",
                "libmicrohttpd12", "adduser"):
        S.check(re.search(r"(^|, )%s( |,|$)" % re.escape(pkg), depends.strip()),
                "Depends names %s: %r" % (pkg, depends))
    rc, listing, _ = sh(["dpkg-deb", "-c", deb])
    for f in ("./usr/bin/tenantry", "/libtenantry.so.0 -> ", "/libtenantry.a",
              "./usr/include/tenantry.h", "/pkgconfig/tenantry.pc",
              "./lib/systemd/system/tenantry.service", "./lib/systemd/system/tenantry-sync.timer",
              "./lib/systemd/system/tenantry-sync.service",
              "./usr/share/man/man1/tenantry.1.gz", "./usr/share/man/man1/tenantry-serve.1.gz",
              "./etc/default/tenantry"):
        S.check(f in listing, "package holds " + f)
    S.check("var/lib/tenantry" not in listing, "the data directory is not a package file")

    rc, out, err = dpkg(["-i", deb])
    if not S.eq(rc, 0, "dpkg -i: " + (out + err)[-2000:]):
        return
    rc, out, _ = sh(["/usr/bin/tenantry", "--version"])
    S.eq((rc, out.strip()), (0, "tenantry 0.1.0"), "tenantry --version")

    # The user and the data directory; nothing enabled, nothing running.
    rc, pw, _ = sh(["getent", "passwd", "tenantry"])
    fields = pw.strip().split(":")
    S.check(rc == 0 and len(fields) == 7 and int(fields[2]) < 1000 and
            fields[6] in ("/usr/sbin/nologin", "/sbin/nologin"),
            "system user without a shell: %r" % pw)
    st = os.stat("/var/lib/tenantry")
    S.eq((st.st_uid, oct(st.st_mode & 0o777)), (int(fields[2]) if len(fields) > 2 else -1,
                                                 "0o700"), "/var/lib/tenantry owner and mode")
    rc, out, _ = sh(["systemctl", "is-enabled", "tenantry.service"])
    S.eq(out.strip(), "disabled", "tenantry.service not enabled")
    rc, out, _ = sh(["systemctl", "is-enabled", "tenantry-sync.timer"])
    S.eq(out.strip(), "disabled", "tenantry-sync.timer not enabled")
    S.check(sh(["pgrep", "-u", "tenantry"])[0] != 0, "no process of the user tenantry")
    st = os.stat("/etc/default/tenantry")
    S.eq(oct(st.st_mode & 0o777), "0o600", "/etc/default/tenantry mode (credentials)")

    # The installed units and man pages, as systemd and man see them.
    rc, out, err = sh(["systemd-analyze", "verify"] + ["/lib/systemd/system/" + u
                                                        for u in UNITS])
    S.eq((rc, (out + err).strip()), (0, ""), "systemd-analyze verify of the installed units")
    rc, out, _ = sh(["man", "-w", "tenantry-serve"])
    S.eq((rc, out.strip()), (0, "/usr/share/man/man1/tenantry-serve.1.gz"), "man -w")

    # The library: pkg-config finds it, a program links and runs without
    # LD_LIBRARY_PATH (ldconfig's trigger ran).
    tmp = tempfile.mkdtemp(prefix="tn-deb-")
    try:
        rc, flags, err = sh(["pkg-config", "--cflags", "--libs", "tenantry"])
        S.eq(rc, 0, "pkg-config tenantry: " + err)
        src, exe = os.path.join(tmp, "use.c"), os.path.join(tmp, "use")
        with open(src, "w") as f:
            f.write('#include <tenantry.h>\n#include <stdio.h>\n'
                    'int main(void) { puts(tn_errname(TN_CONFLICT)); return 0; }\n')
        rc, _, err = sh(["cc", src, "-o", exe] + SAN_FLAGS + flags.split())
        S.eq(rc, 0, "link against the packaged library: " + err)
        rc, out, err = sh([exe])
        S.eq((rc, out.strip()), (0, "TN_CONFLICT"), "runs against it: " + err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # A store round trip as the package's user.
    rc, key, err = as_user(["init", "--data", "/var/lib/tenantry"])
    S.check(rc == 0 and key.strip().startswith("tna_"), "init as tenantry: %r" % err)
    key = key.strip()
    priv(["runuser", "-u", "tenantry", "--", "touch", "/var/lib/tenantry/" + MARKER])
    rc, _, err = as_user(["tenant", "create", "acme", "--data", "/var/lib/tenantry"])
    S.eq(rc, 0, "tenant create: " + err)
    rc, out, err = as_user(["item", "put", "--tenant", "acme", "--id", "sensor:1",
                            '{"temp":21.5}', "--data", "/var/lib/tenantry"])
    S.eq(rc, 0, "item put: " + err)
    rc, out, err = as_user(["item", "get", "--tenant", "acme", "sensor:1",
                            "--data", "/var/lib/tenantry"])
    S.check(rc == 0 and json.loads(out or "{}").get("data") == {"temp": 21.5},
            "item get: %r %r" % (out, err))
    rc, out, err = as_user(["sql", "--tenant", "acme", "-c", "SELECT id FROM items",
                            "--json", "--data", "/var/lib/tenantry"])
    S.eq((rc, out.strip()), (0, '[[{"id":"sensor:1"}]]'), "sql: " + err)
    for name in os.listdir("/var/lib/tenantry"):
        st = os.stat(os.path.join("/var/lib/tenantry", name))
        S.check(st.st_uid == int(fields[2]), "%s belongs to tenantry" % name)

    # The installed daemon as the package's user (setpriv execs: the pid is
    # the daemon's), with the notification socket systemd would pass.
    port = tnlib.free_port()
    proc = subprocess.Popen(PRIV + ["setpriv", "--reuid=tenantry", "--regid=tenantry",
                                    "--init-groups", "--", "/usr/bin/tenantry", "serve",
                                    "--data", "/var/lib/tenantry", "--no-sync", "--quiet",
                                    "--listen", "127.0.0.1:%d" % port],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not port_answers(port) and proc.poll() is None:
            time.sleep(0.1)
        S.check(port_answers(port), "packaged serve answers /healthz")
        req = urllib.request.Request("http://127.0.0.1:%d/v1/admin/tenants" % port,
                                     headers={"X-Admin-Key": key})
        try:
            body = json.loads(urllib.request.urlopen(req, timeout=10).read())
        except (OSError, ValueError) as e:
            body = {"error": str(e)}
        names = [t.get("name") for t in body.get("tenants", [])]
        S.check("acme" in names, "admin API lists the tenant: %r" % body)
    finally:
        if proc.poll() is None:
            priv(["kill", "-TERM", str(proc.pid)])
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                priv(["kill", "-KILL", str(proc.pid)])
                proc.wait(10)
    S.eq(proc.returncode, 0, "packaged serve stops cleanly: " + proc.stderr.read().decode()[-500:])

    # Removal leaves the data; so does purge (and the user, see postrm).
    rc, out, err = dpkg(["-r", "tenantry"])
    S.eq(rc, 0, "dpkg -r: " + (out + err)[-1500:])
    S.check(not os.path.exists("/usr/bin/tenantry"), "binary removed")
    S.check(not os.path.exists("/lib/systemd/system/tenantry.service"), "units removed")
    S.check(os.path.exists("/etc/default/tenantry"), "conffile kept until purge")
    store_intact("after dpkg -r")
    rc, out, err = dpkg(["--purge", "tenantry"])
    S.eq(rc, 0, "dpkg --purge: " + (out + err)[-1500:])
    S.check(not os.path.exists("/etc/default/tenantry"), "purge removes the conffile")
    S.check("left in place" in err, "purge says the data stays: %r" % err[-300:])
    store_intact("after dpkg --purge")
    S.check(user_exists(), "purge leaves the user that owns the data")


# ---- the units under a real systemd ------------------------------------------

BOOT = r"""#!/bin/sh
# Boots systemd as PID 1 of new namespaces (mount, PID, UTS, IPC, network and
# cgroup: only loopback, nothing shared with the machine's processes), on an
# overlay of the machine's root whose writes land in a tmpfs: installing the
# package in there leaves the machine untouched.  Killing PID 1 ends it all.
set -e
echo $$ > "$1/cgroup.procs"     # the cgroup namespace's root: removed afterwards
exec unshare --mount --pid --fork --uts --ipc --net --cgroup --propagation private \
     /bin/sh -c '
set -e
R=$0
mount -t tmpfs tmpfs "$R.rw"
mkdir "$R.rw/upper" "$R.rw/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$R.rw/upper,workdir=$R.rw/work" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
exec chroot "$R" /lib/systemd/systemd --system --unit=basic.target
' "$2"
"""


class Container:
    """systemd in namespaces of its own (see BOOT); run() executes a command
    inside, as root, and returns (code, stdout, stderr)."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="tn-systemd-")
        unified = "/sys/fs/cgroup/unified"
        base = unified if os.path.isdir(unified) else "/sys/fs/cgroup"
        self.cgroup = os.path.join(base, "tn-appliance-%d" % os.getpid())
        self.pid1 = None
        root = os.path.join(self.tmp, "root")
        os.mkdir(root)
        os.mkdir(root + ".rw")
        boot = os.path.join(self.tmp, "boot.sh")
        with open(boot, "w") as f:
            f.write(BOOT)
        self.log = open(os.path.join(self.tmp, "boot.log"), "wb")
        os.mkdir(self.cgroup)
        try:
            self.proc = subprocess.Popen(["/bin/sh", boot, self.cgroup, root], stdout=self.log,
                                         stderr=self.log, stdin=subprocess.DEVNULL)
        except OSError:
            os.rmdir(self.cgroup)
            self.log.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        deadline = time.time() + 20
        while self.pid1 is None and time.time() < deadline and self.proc.poll() is None:
            try:
                with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                    kids = f.read().split()
                if kids:
                    with open("/proc/%s/comm" % kids[0]) as f:
                        if f.read().strip() == "systemd":
                            self.pid1 = int(kids[0])
            except OSError:
                pass
            time.sleep(0.1)

    def run(self, cmd, timeout=120):
        return sh(["nsenter", "-t", str(self.pid1), "-a", "-r", "-w", "--",
                   "/bin/sh", "-c", cmd], timeout=timeout)

    def wait_running(self, timeout=60):
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            state = self.run("systemctl is-system-running || true")[1].strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        return state

    def stop(self):
        if self.pid1:
            try:
                os.kill(self.pid1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        # The cgroups the container's systemd made, deepest first.
        for d, _, _ in sorted(os.walk(self.cgroup), key=lambda w: -w[0].count("/")):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # processes still leaving
        shutil.rmtree(self.tmp, ignore_errors=True)


AWS_ENV = ("TENANTRY_S3_BUCKET=tn-systemd AWS_ENDPOINT_URL=http://127.0.0.1:5000 "
           "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 "
           "AWS_DEFAULT_REGION=us-east-1")


def test_units_under_systemd():
    """The package's units run under a real systemd, sandbox and all: the
    install starts nothing; tenantry.service becomes active only through
    READY=1, serves, syncs an item to a moto in the container, stops cleanly;
    tenantry-sync.service syncs the next one; removal stops the service and
    keeps the data."""
    if not S.check(os.geteuid() == 0, "a container needs root"):
        return
    rc, out, err = sh(["make", "-s", "--no-print-directory", "deb", "BUILD=" + BUILD],
                      timeout=900)
    if not S.eq(rc, 0, "make deb: " + err[-1500:]):
        return
    deb = os.path.abspath(out.strip().splitlines()[-1])
    c = Container()
    try:
        if not S.check(c.pid1, "systemd started in a container: " + open(
                c.log.name, errors="replace").read()[-1500:]):
            return
        state = c.wait_running()
        S.check(state in ("running", "degraded"), "container system state %r" % state)
        # The container's /tmp is its own: the package goes in through its root.
        inside = "/var/cache/tenantry-under-test.deb"
        shutil.copyfile(deb, "/proc/%d/root%s" % (c.pid1, inside))
        rc, out, err = c.run("dpkg -i %s" % inside, timeout=300)
        if not S.eq(rc, 0, "dpkg -i in the container: " + (out + err)[-1500:]):
            return
        S.eq(c.run("systemctl is-active tenantry.service")[1].strip(), "inactive",
             "the install started nothing")
        S.eq(c.run("systemctl is-enabled tenantry.service")[1].strip(), "disabled",
             "the install enabled nothing")
        # moto inside the container's own network, a table and a bucket.
        c.run("cd /tmp && nohup python3 -m moto.server -H 127.0.0.1 -p 5000 "
              ">/tmp/moto.log 2>&1 &")
        rc, out, err = c.run(
            "for i in $(seq 100); do curl -s -o /dev/null 127.0.0.1:5000 && break; sleep 0.2; done;"
            " env %s aws --endpoint-url http://127.0.0.1:5000 s3 mb s3://tn-systemd" % AWS_ENV)
        S.eq(rc, 0, "moto and the bucket: " + err[-500:])
        rc, out, err = c.run(
            "runuser -u tenantry -- tenantry init --data /var/lib/tenantry >/dev/null &&"
            " runuser -u tenantry -- env %s tenantry remote init --data /var/lib/tenantry &&"
            " runuser -u tenantry -- tenantry tenant create acme --data /var/lib/tenantry &&"
            " runuser -u tenantry -- tenantry item put --tenant acme --id s1 '{\"n\":1}'"
            " --data /var/lib/tenantry" % AWS_ENV)
        S.eq(rc, 0, "store set up as tenantry: " + err[-500:])
        c.run("printf '%%s\\n' %s TENANTRY_SYNC_INTERVAL=1 %s > /etc/default/tenantry"
              % (AWS_ENV, "ASAN_OPTIONS=detect_leaks=0" if SANITIZED else ""))

        rc, out, err = c.run("systemctl start tenantry.service", timeout=120)
        S.eq(rc, 0, "systemctl start tenantry (returns once READY=1 came): " + err)
        rc, out, _ = c.run("systemctl show tenantry.service -p ActiveState -p StatusText "
                           "-p NRestarts")
        S.check("ActiveState=active" in out and
                "StatusText=listening on 127.0.0.1:8787" in out, "service state: %r" % out)
        rc, out, _ = c.run("curl -s 127.0.0.1:8787/healthz")
        S.eq(out.strip(), '{"status":"ok"}', "the sandboxed daemon serves")
        scan = ("env %s aws --endpoint-url http://127.0.0.1:5000 dynamodb scan "
                "--table-name tenantry --query 'Items[].sk.S' --output text" % AWS_ENV)
        # Bounded in time and count (each scan starts the aws CLI).
        rc, out, _ = c.run("end=$(($(date +%%s) + 60)); for i in $(seq 100); do"
                           " %s | grep -q 'ITEM#s1' && exit 0; [ $(date +%%s) -lt $end ] ||"
                           " exit 1; sleep 0.5; done; exit 1" % scan, timeout=120)
        S.eq(rc, 0, "the sandboxed daemon synced s1 to DynamoDB")
        rc, out, err = c.run("systemctl stop tenantry.service; systemctl show tenantry.service"
                             " -p Result -p ExecMainStatus; journalctl -u tenantry.service"
                             " --no-pager -o cat")
        S.check("Result=success" in out and "ExecMainStatus=0" in out,
                "clean stop: %r" % out[-800:])
        S.check("received SIGTERM, shutting down" in out and '"stopped"' in out,
                "the journal has the shutdown")

        rc, out, err = c.run(
            "runuser -u tenantry -- tenantry item put --tenant acme --id s2 '{\"n\":2}'"
            " --data /var/lib/tenantry >/dev/null && systemctl start tenantry-sync.service;"
            " systemctl show tenantry-sync.service -p Result -p ExecMainStatus; " + scan,
            timeout=180)
        S.check("Result=success" in out and "ExecMainStatus=0" in out and "ITEM#s2" in out,
                "tenantry-sync.service synced s2: %r %r" % (out[-800:], err[-300:]))
        rc, out, _ = c.run("systemctl start tenantry-sync.timer &&"
                           " systemctl show tenantry-sync.timer -p ActiveState")
        S.check("ActiveState=active" in out, "the timer runs: %r" % out)

        # TENANTRY_SERVE_OPTS reaches serve; /run/tenantry takes a unix socket.
        rc, out, err = c.run(
            "echo 'TENANTRY_SERVE_OPTS=--listen unix:/run/tenantry/api.sock --no-sync'"
            " >> /etc/default/tenantry && systemctl start tenantry.service &&"
            " curl -s --unix-socket /run/tenantry/api.sock http://x/healthz && echo &&"
            " stat -c '%a %U %G' /run/tenantry/api.sock")
        S.eq((rc, out.split()), (0, ['{"status":"ok"}', "660", "tenantry", "tenantry"]),
             "serve on /run/tenantry/api.sock: " + err[-300:])

        # Removal with the daemon running: prerm stops it, the data stays.
        rc, out, err = c.run("dpkg -r tenantry", timeout=300)
        S.eq(rc, 0, "dpkg -r in the container: " + (out + err)[-800:])
        rc, out, _ = c.run("systemctl is-active tenantry.service; pgrep -u tenantry -c;"
                           " ls /var/lib/tenantry")
        S.check(out.split()[:2] == ["inactive", "0"] and "tenantry.db" in out,
                "removed: stopped, no process left, data kept: %r" % out)
    finally:
        c.stop()
    S.check(not os.path.exists(c.cgroup), "the container's cgroups are gone")


def store_intact(when):
    """The store is still there and whole (read with the build's binary,
    read-only)."""
    S.check(os.path.exists("/var/lib/tenantry/tenantry.db"), "store kept " + when)
    rc, out, err = sh([TN, "check", "--data", "/var/lib/tenantry"])
    S.eq((rc, out.strip()), (0, "ok"), "check %s: %s" % (when, err))
    rc, out, err = sh([TN, "status", "--json", "--data", "/var/lib/tenantry"])
    try:
        j = json.loads(out)
    except ValueError:
        j = {}
    S.eq((j.get("tenants"), j.get("items")), (1, 1), "tenant and item %s" % when)


def main():
    for fn in (test_unit_settings, test_units_install_and_verify, test_notify_path_socket,
               test_notify_abstract_socket, test_notify_bad_socket_still_serves,
               test_man_pages_match_help, test_sync_libraries_load_late, test_debian_package,
               test_units_under_systemd):
        S.run(fn)
    S.finish()


if __name__ == "__main__":
    main()
