"""End-to-end tests of tenantry against hostile disks and files: a data
directory on a small filesystem that fills up, a read-only or missing data
directory, corrupt, random and truncated database files, and bad option
values for `tenantry serve`.

The full-disk test needs a small filesystem: a 4 MiB tmpfs when mounting is
allowed (CI runs as root), else a loop-mounted ext4 image, else a file-size
limit on the daemon (RLIMIT_FSIZE).  The method used is printed.

Every refusal must be one line on stderr and a non-zero exit, never a signal
or a sanitizer report; every write acknowledged with a 2xx must stay readable.
"""
import hashlib
import json
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnlib  # noqa: E402

S = tnlib.Suite("disk")
ALL_SCOPES = ["items:read", "items:write", "files:read", "files:write"]
leak_check = tnlib.leak_checker(S, lambda: ())
CRASH_WORDS = ("sanitizer", "runtime error", "segmentation", "core dumped", "abort",
               "assert", "leaksanitizer")


def one_line_failure(p, what):
    """A refusal: non-zero exit (not a signal), exactly one line on stderr."""
    err = p.stderr.strip()
    S.check(p.returncode > 0, "%s: exit code %d (want > 0, not a signal)" % (what, p.returncode))
    S.check(len(err.splitlines()) == 1, "%s: one line on stderr, got %r" % (what, err[:600]))
    S.check(err.startswith("tenantry:"), "%s: message starts with 'tenantry:': %r" % (what, err[:200]))
    low = (p.stderr + p.stdout).lower()
    S.check(not any(w in low for w in CRASH_WORDS), "%s: crash words in output: %r" % (what, low[:400]))


def serve_once(data, args=(), timeout=10, preexec=None):
    """Runs `tenantry serve` expecting it to refuse; kills it if it serves."""
    cmd = [tnlib.TENANTRY, "serve", "--data", data] + list(args)
    if not any(a == "--listen" for a in args):
        cmd += ["--listen", "127.0.0.1:%d" % tnlib.free_port()]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=preexec)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        err = "(still serving after %ds) " % timeout + err
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def new_store():
    data = os.path.join(tnlib.tmpdir(), "data")
    ak = tnlib.init_store(data)
    return data, ak


def provision(d, ak, name):
    adm = tnlib.Client(d.port, {"X-Admin-Key": ak})
    r = adm.request("POST", "/v1/admin/tenants", json_body={"name": name})
    S.eq(r.status, 201, "create tenant " + name)
    t = r.json()
    r = adm.request("POST", "/v1/admin/tenants/%s/keys" % t["id"], json_body={"scopes": ALL_SCOPES})
    S.eq(r.status, 201, "create key for " + name)
    k = r.json()["api_key"]
    r = tnlib.Client(d.port, None, leak_check).request("POST", "/v1/auth", json_body={"api_key": k})
    S.eq(r.status, 200, "token for " + name)
    return tnlib.Client(d.port, {"Authorization": "Bearer " + r.json()["token"]}, leak_check)


# ---- a small filesystem ------------------------------------------------------

class SmallFs:
    """A ~4 MiB filesystem at self.root, made the first way that works."""

    def __init__(self):
        self.base = tnlib.tmpdir("tn-disk-")
        self.root = os.path.join(self.base, "mnt")
        os.mkdir(self.root)
        self.method = None
        self.image = None
        self.mounted = False

    def _mount(self, args):
        p = subprocess.run(["mount"] + args + [self.root], capture_output=True, text=True,
                           timeout=20)
        return p.returncode == 0

    def make(self):
        if os.geteuid() == 0 and self._mount(["-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs"]):
            self.method, self.mounted = "tmpfs (4 MiB)", True
            return
        if os.geteuid() == 0 and shutil.which("mkfs.ext4"):
            self.image = os.path.join(self.base, "fs.img")
            with open(self.image, "wb") as f:
                f.truncate(8 * 1024 * 1024)
            p = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", self.image],
                               capture_output=True, timeout=30)
            if p.returncode == 0 and self._mount(["-o", "loop", self.image]):
                self.method, self.mounted = "loop-mounted ext4 image (8 MiB)", True
                return
        self.method = "file-size limit (RLIMIT_FSIZE on the daemon; no mount allowed)"

    def fsize_limited(self):
        return not self.mounted

    def free(self):
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def destroy(self):
        if self.mounted:
            for _ in range(20):
                if subprocess.run(["umount", self.root], capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
        shutil.rmtree(self.base, ignore_errors=True)


FSIZE_LIMIT = 3 * 1024 * 1024


def fsize_preexec():
    # The kernel would kill the daemon with SIGXFSZ; ignored, writes get EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


def start_limited(data, fs):
    """start_daemon, with the file-size limit when no small fs could be mounted."""
    args = ["--rate", "100000", "--burst", "100000", "--quiet"]
    d = tnlib.start_daemon(data, args)
    if fs.fsize_limited():
        resource.prlimit(d.pid, resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))
    return d


def test_disk_full():
    fs = SmallFs()
    d = None
    try:
        fs.make()
        print("*** disk-full test uses: %s ***" % fs.method, flush=True)
        if fs.fsize_limited():
            # The daemon ignores SIGXFSZ only if started that way: set it up
            # for this process so the child inherits it.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        data = os.path.join(fs.root, "data")
        ak = tnlib.init_store(data)
        d = start_limited(data, fs)
        a = provision(d, ak, "filler-a")
        b = provision(d, ak, "filler-b")
        r = b.request("PUT", "/v1/items/b-own", json_body={"data": {"owner": "b"}})
        S.eq(r.status, 201, "tenant b writes before the disk fills")
        filler = os.path.join(fs.root, "filler")
        if not fs.fsize_limited():
            # Leave about 1.2 MiB free for the store to fill.
            with open(filler, "wb") as f:
                f.write(b"\0" * max(0, fs.free() - 1200 * 1024))
            S.check(fs.free() < 1500 * 1024, "filler left little space: %d" % fs.free())

        acked_items, acked_files, statuses = {}, {}, {}
        full_items = full_files = dropped = 0
        deadline = time.time() + 40
        for i in range(600):
            if time.time() > deadline or (full_items >= 3 and full_files >= 3):
                break
            body = {"data": {"i": i, "pad": "%06d" % i * 3000}}
            try:
                r = a.request("PUT", "/v1/items/it%04d" % i, json_body=body)
            except OSError:
                dropped += 1
                a.close()
                continue
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status in (200, 201):
                acked_items["it%04d" % i] = body["data"]
            elif r.status == 507:
                full_items += 1
                S.eq(r.json(), {"error": "insufficient storage"}, "507 body for an item")
            blob = hashlib.sha256(b"%d" % i).digest() * 1500  # 48000 bytes
            try:
                r = a.request("PUT", "/v1/files/f/%04d.bin" % i, body=blob)
            except OSError:
                dropped += 1
                a.close()
                continue
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status in (200, 201):
                acked_files["f/%04d.bin" % i] = blob
            elif r.status == 507:
                full_files += 1
                S.eq(r.json(), {"error": "insufficient storage"}, "507 body for a file")
        print("disk full: statuses %r, %d items and %d files acknowledged, %d dropped connections"
              % (statuses, len(acked_items), len(acked_files), dropped), flush=True)
        S.check(set(statuses) <= {200, 201, 507}, "only 2xx and 507 while filling: %r" % statuses)
        S.check(full_items >= 1, "an item write got 507 on the full disk")
        S.check(full_files >= 1, "a file upload got 507 on the full disk")
        S.eq(dropped, 0, "no connection dropped without an answer")
        S.check(d.proc.poll() is None, "daemon alive on the full disk")
        r = tnlib.Client(d.port).request("GET", "/healthz")
        S.eq(r.status, 200, "healthz on the full disk")
        # Reads still work while full, and nothing of tenant a reaches b.
        r = b.request("GET", "/v1/items/b-own")
        S.eq((r.status, r.json().get("data")), (200, {"owner": "b"}), "tenant b reads on a full disk")
        S.eq(b.request("GET", "/v1/items/it0000").status, 404, "b cannot see a's item")
        p = tnlib.run(["check", "--data", data], timeout=60)
        S.eq(p.returncode, 0, "tenantry check clean on the full disk: %s %s" % (p.stdout, p.stderr))
        S.check(not [n for n in os.listdir(os.path.join(data, "files")) if ".upload-" in n],
                "no upload temp files left at the top")

        # Free space: writes succeed again.
        if fs.fsize_limited():
            resource.prlimit(d.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        else:
            os.unlink(filler)
        r = a.request("PUT", "/v1/items/after-free", json_body={"data": {"ok": True}})
        S.eq(r.status, 201, "item write after freeing space")
        if r.status == 201:
            acked_items["after-free"] = {"ok": True}
        blob = b"after free" * 1000
        r = a.request("PUT", "/v1/files/after-free.bin", body=blob)
        S.eq(r.status, 201, "file upload after freeing space")
        if r.status == 201:
            acked_files["after-free.bin"] = blob

        def verify(client, what):
            bad = [k for k, v in acked_items.items()
                   if (lambda r: r.status != 200 or r.json().get("data") != v)(
                       client.request("GET", "/v1/items/" + k))]
            S.check(not bad, "%s: acknowledged items readable and equal (bad: %r)" % (what, bad[:5]))
            bad = [k for k, v in acked_files.items()
                   if (lambda r: r.status != 200 or r.body != v)(client.request("GET", "/v1/files/" + k))]
            S.check(not bad, "%s: acknowledged files readable and equal (bad: %r)" % (what, bad[:5]))

        verify(a, "after freeing")
        tmp_left = []
        for root, _dirs, files in os.walk(os.path.join(data, "files")):
            tmp_left += [f for f in files if ".upload-" in f]
        S.eq(tmp_left, [], "no upload temp files left anywhere")
        S.eq(d.stop(), 0, "daemon exits 0 after the full disk")
        d = None
        p = tnlib.run(["check", "--data", data], timeout=60)
        S.eq(p.returncode, 0, "tenantry check clean after: %s %s" % (p.stdout, p.stderr))
        d = start_limited(data, fs)
        # New tokens: the old ones are still valid, but a new client proves it.
        a2 = tnlib.Client(d.port, a.base_headers, leak_check)
        verify(a2, "after a restart")
        S.eq(d.stop(), 0, "daemon exits 0")
        d = None
    finally:
        if d:
            d.stop()
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        fs.destroy()


# ---- refused stores -----------------------------------------------------------

def test_missing_data_dir():
    base = tnlib.tmpdir()
    try:
        missing = os.path.join(base, "nope")
        p = serve_once(missing)
        one_line_failure(p, "serve on a missing data directory")
        S.check("nope" in p.stderr, "message names the directory: %r" % p.stderr)
        S.check(not os.path.exists(missing), "serve did not create the directory")
        p = tnlib.run(["check", "--data", missing])
        one_line_failure(p, "check on a missing data directory")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_readonly_data_dir():
    data, _ = new_store()
    base = os.path.dirname(data)
    try:
        # 1. Permissions: root ignores modes, so the daemon runs as nobody.
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            nobody = None
        if os.geteuid() == 0 and nobody:
            os.chmod(base, 0o755)
            for root, dirs, files in os.walk(data):
                for n in dirs + files:
                    os.chown(os.path.join(root, n), nobody.pw_uid, nobody.pw_gid)
            os.chown(data, nobody.pw_uid, nobody.pw_gid)
            os.chmod(os.path.join(data, "tenantry.db"), 0o400)
            os.chmod(os.path.join(data, "files"), 0o500)
            os.chmod(data, 0o500)

            def as_nobody():
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            p = serve_once(data, preexec=as_nobody)
            print("read-only by permissions (as nobody): %r" % p.stderr.strip(), flush=True)
            one_line_failure(p, "serve on a 0500 directory with a 0400 database")
        else:
            p = None
            os.chmod(os.path.join(data, "tenantry.db"), 0o400)
            os.chmod(data, 0o500)
            p = serve_once(data)
            one_line_failure(p, "serve on a 0500 directory with a 0400 database")
        for root, dirs, files in os.walk(data):
            for n in dirs:
                os.chmod(os.path.join(root, n), 0o700)
        os.chmod(data, 0o700)
        os.chmod(os.path.join(data, "tenantry.db"), 0o600)
        # 2. A read-only bind mount: refused even for root.
        if os.geteuid() == 0:
            ok = subprocess.run(["mount", "--bind", data, data], capture_output=True).returncode == 0
            if ok:
                try:
                    ro = subprocess.run(["mount", "-o", "remount,bind,ro", data],
                                        capture_output=True).returncode == 0
                    S.check(ro, "read-only remount")
                    print("read-only bind mount: %s" % ("yes" if ro else "refused"), flush=True)
                    if ro:
                        p = serve_once(data)
                        one_line_failure(p, "serve on a read-only mount")
                finally:
                    subprocess.run(["umount", data], capture_output=True)
            else:
                print("read-only bind mount: mount refused, only the permission case ran",
                      flush=True)
        # The store is intact afterwards.
        p = tnlib.run(["check", "--data", data])
        S.eq(p.returncode, 0, "store intact after the read-only runs: %s" % p.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def populated_store():
    """A store with a few hundred rows (so the file has middle pages)."""
    data, ak = new_store()
    d = tnlib.start_daemon(data, ["--quiet", "--rate", "100000", "--burst", "100000"])
    try:
        c = provision(d, ak, "pop")
        for i in range(300):
            c.request("PUT", "/v1/items/p%03d" % i, json_body={"data": {"v": "x" * 200, "i": i}})
    finally:
        S.eq(d.stop(), 0, "populating daemon stops cleanly")
    # Fold the WAL into the main file so damage there is what SQLite reads.
    p = tnlib.run(["check", "--data", data])
    S.eq(p.returncode, 0, "populated store is clean: %s" % p.stderr)
    for ext in ("-wal", "-shm"):
        path = os.path.join(data, "tenantry.db" + ext)
        if os.path.exists(path) and os.path.getsize(path) > 0 and ext == "-wal":
            import sqlite3
            con = sqlite3.connect(os.path.join(data, "tenantry.db"))
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
    return data


def check_reports_corrupt(data, what):
    p = tnlib.run(["check", "--data", data], timeout=60)
    S.eq(p.returncode, 5, "%s: tenantry check exits 5 (%r)" % (what, (p.stdout + p.stderr)[:300]))
    S.check((p.stdout + p.stderr).strip() != "", "%s: check prints a report" % what)
    low = (p.stdout + p.stderr).lower()
    S.check(not any(w in low for w in CRASH_WORDS), "%s: check did not crash" % what)


def test_corrupt_middle():
    data = populated_store()
    try:
        db = os.path.join(data, "tenantry.db")
        n = os.path.getsize(db)
        S.check(n >= 16 * 4096, "store has middle pages (%d bytes)" % n)
        with open(db, "r+b") as f:
            f.seek((n // 2) // 4096 * 4096)
            f.write(os.urandom(8192))
        p = serve_once(data)
        print("corrupt middle -> serve: %r" % p.stderr.strip(), flush=True)
        one_line_failure(p, "serve on a database damaged in the middle")
        check_reports_corrupt(data, "damaged in the middle")
    finally:
        shutil.rmtree(os.path.dirname(data), ignore_errors=True)


def test_random_bytes_database():
    data, _ = new_store()
    try:
        for ext in ("", "-wal", "-shm"):
            path = os.path.join(data, "tenantry.db" + ext)
            if os.path.exists(path):
                os.unlink(path)
        with open(os.path.join(data, "tenantry.db"), "wb") as f:
            f.write(os.urandom(64 * 1024))
        p = serve_once(data)
        one_line_failure(p, "serve on a file of random bytes")
        check_reports_corrupt(data, "random bytes")
    finally:
        shutil.rmtree(os.path.dirname(data), ignore_errors=True)


def test_truncated_database():
    data = populated_store()
    try:
        db = os.path.join(data, "tenantry.db")
        n = os.path.getsize(db)
        with open(db, "r+b") as f:
            f.truncate(n // 2 + 100)  # mid-page, well short of the page count
        p = serve_once(data)
        one_line_failure(p, "serve on a truncated database")
        check_reports_corrupt(data, "truncated")
        # Truncated to nothing: an empty file must not be served as a store.
        with open(db, "r+b") as f:
            f.truncate(0)
        p = serve_once(data)
        one_line_failure(p, "serve on an emptied database")
        # Nor opened as a new store by any other command: that would hide the
        # loss of every tenant behind an empty, working store.
        check_reports_corrupt(data, "emptied")
        p = tnlib.run(["tenant", "create", "late", "--data", data])
        S.check(p.returncode != 0, "tenant create on an emptied store fails")
        S.check("empty" in p.stderr, "the message says the file is empty: %r" % p.stderr)
        S.eq(os.path.getsize(db), 0, "the emptied file is left as it was")
    finally:
        shutil.rmtree(os.path.dirname(data), ignore_errors=True)


def test_bad_serve_options():
    data, _ = new_store()
    try:
        sock_dir = os.path.dirname(data)
        cases = [
            (["--rate", "-1"], "--rate"),
            (["--rate", "nan"], "--rate"),
            (["--threads", "0x"], "--threads"),
            (["--threads", "0"], "--threads"),
            (["--max-file-bytes", "abc"], "--max-file-bytes"),
            (["--timeout", ""], "--timeout"),
            (["--burst"], "--burst"),
            (["--listen", "999.1.1.1:99999"], "listen"),
            (["--listen", "127.0.0.1:99999"], "listen"),
            (["--listen", "127.0.0.1:"], "listen"),
            (["--listen", "127.0.0.1"], "listen"),
            (["--listen", "unix:"], "unix"),
            (["--listen", "unix:" + os.path.join(sock_dir, "no", "such", "dir", "s")], "unix"),
            (["--listen", "unix:" + "/x" * 100], "unix"),
            (["--synchronous", "sometimes"], "--synchronous"),
            (["--no-such-option"], "--no-such-option"),
            (["extra-arg"], "argument"),
        ]
        for args, word in cases:
            p = serve_once(data, args)
            what = "serve " + " ".join(args)[:60]
            one_line_failure(p, what)
            S.check(word in p.stderr, "%s: message mentions %r: %r" % (what, word, p.stderr.strip()))
        # A port already in use.
        d = tnlib.start_daemon(data, ["--quiet"])
        try:
            p = serve_once(data, ["--listen", "127.0.0.1:%d" % d.port])
            one_line_failure(p, "serve on a port in use")
            S.check("in use" in p.stderr, "port in use named: %r" % p.stderr)
        finally:
            S.eq(d.stop(), 0, "daemon stops")
        # A unix socket path that exists and is not a socket is left alone.
        f = os.path.join(sock_dir, "regular")
        with open(f, "w") as fh:
            fh.write("keep me")
        p = serve_once(data, ["--listen", "unix:" + f])
        one_line_failure(p, "serve on a regular file as socket path")
        S.eq(open(f).read(), "keep me", "regular file untouched")
    finally:
        shutil.rmtree(os.path.dirname(data), ignore_errors=True)


def main():
    for t in (test_bad_serve_options, test_missing_data_dir, test_readonly_data_dir,
              test_corrupt_middle, test_random_bytes_database, test_truncated_database,
              test_disk_full):
        S.run(t)
    S.finish()


if __name__ == "__main__":
    main()
