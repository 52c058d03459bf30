#!/usr/bin/env python3
"""test_cli.py - the tenantry command line, driven as a user would.

Runs the built binary ($TN_BUILD/tenantry) against fresh data directories and
checks output, exit codes and what ends up in the store.  Prints
"N passed, N failed" last.
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnlib  # noqa: E402,F401  (every suite: the response checker under every socket)

BUILD = os.environ.get("TN_BUILD", "build")
TN = os.path.join(BUILD, "tenantry")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

EXIT_USAGE, EXIT_NOTFOUND, EXIT_EXISTS, EXIT_CHECK, EXIT_DENIED = 2, 3, 4, 5, 6

tests = []


def test(fn):
    tests.append(fn)
    return fn


def run(*args, data=None, stdin=None):
    cmd = [TN] + list(args)
    if data is not None:
        cmd += ["--data", data]
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class Store:
    """A fresh data directory with tenants acme and globex."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="tn-cli-")
        self.data = os.path.join(self.tmp, "data")
        rc, out, err = run("init", data=self.data)
        check(rc == 0, f"init failed: {err}")
        self.admin_key = out.strip()
        for name in ("acme", "globex"):
            rc, _, err = run("tenant", "create", name, data=self.data)
            check(rc == 0, f"tenant create {name}: {err}")

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@test
def help_on_every_command():
    rc, out, _ = run("--help")
    check(rc == 0 and "usage: tenantry" in out, "top-level help")
    commands = re.findall(r"^  (\S+)\s", out, re.M)
    for c in ("init", "tenant", "item", "sql", "check"):
        check(c in commands, f"{c} listed in help")
    check("Exit codes" in out, "exit codes documented")
    for c in commands:
        rc, out, err = run(c, "--help")
        check(rc == 0, f"{c} --help exits 0 ({err})")
        check("usage: tenantry " + c in out, f"{c} --help prints its usage")


@test
def unknown_commands_and_options_are_usage_errors():
    rc, _, err = run("frobnicate")
    check(rc == EXIT_USAGE and "unknown command" in err, "unknown command")
    rc, _, err = run("tenant", "list", "--bogus")
    check(rc == EXIT_USAGE and "unknown option --bogus" in err, "unknown option")
    check(err.count("\n") == 1, "one line on stderr")
    rc, _, err = run()
    check(rc == EXIT_USAGE, "no command")


@test
def init_prints_the_admin_key_once():
    tmp = tempfile.mkdtemp(prefix="tn-cli-")
    try:
        data = os.path.join(tmp, "d")
        rc, out, err = run("init", data=data)
        check(rc == 0, err)
        key = out.strip()
        check(re.fullmatch(r"tna_[A-Za-z0-9_-]{43}", key), f"admin key format: {key!r}")
        check("only this once" in err, "says the key is shown once")
        rc, out2, err2 = run("init", data=data)
        check(rc == 0 and out2 == "", "second init prints no key")
        # Only a hash is stored: the key's bytes are nowhere in the files.
        for name in os.listdir(data):
            path = os.path.join(data, name)
            if os.path.isfile(path):
                check(key.encode() not in open(path, "rb").read(), f"key found in {name}")
        db = sqlite3.connect(os.path.join(data, "tenantry.db"))
        check(db.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "WAL mode")
        db.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def commands_on_a_missing_store_fail_clearly():
    tmp = tempfile.mkdtemp(prefix="tn-cli-")
    try:
        data = os.path.join(tmp, "none")
        for args in (("tenant", "list"), ("check",), ("status",)):
            rc, out, err = run(*args, data=data)
            check(rc == EXIT_NOTFOUND, f"{args}: exit {rc}")
            check("tenantry init" in err and err.count("\n") == 1, f"{args}: {err!r}")
        check(not os.path.exists(data), "nothing created")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def tenant_lifecycle_and_exit_codes():
    with Store() as s:
        rc, _, err = run("tenant", "create", "ACME", data=s.data)
        check(rc == EXIT_EXISTS, f"duplicate name: {rc} {err}")
        rc, _, err = run("tenant", "create", "bad name", data=s.data)
        check(rc == EXIT_USAGE and "tenant name" in err, "bad name")
        rc, out, _ = run("tenant", "list", "--json", data=s.data)
        rows = json.loads(out)
        check(sorted(r["name"] for r in rows) == ["acme", "globex"], "list")
        check(all(UUID.fullmatch(r["id"]) for r in rows), "ids are UUID v4")
        rc, _, _ = run("tenant", "rename", "acme", "acme-corp", data=s.data)
        check(rc == 0, "rename")
        rc, _, err = run("tenant", "rename", "nobody", "x", data=s.data)
        check(rc == EXIT_NOTFOUND, "rename missing")
        rc, _, _ = run("tenant", "delete", "globex", data=s.data)
        check(rc == 0, "delete")
        rc, out, _ = run("tenant", "list", "--json", data=s.data)
        check([r["name"] for r in json.loads(out)] == ["acme-corp"], "after delete")
        rc, _, _ = run("tenant", "create", data=s.data)
        check(rc == EXIT_USAGE, "missing argument")


@test
def items_through_the_cli():
    with Store() as s:
        rc, out, err = run("item", "put", "--tenant", "acme", "--id", "a1", '{"n": 1}', data=s.data)
        check(rc == 0, err)
        item = json.loads(out)
        check(item["id"] == "a1" and item["data"] == {"n": 1}, f"put output {out}")
        check(isinstance(item["version"], str) and re.fullmatch(r"[1-9][0-9]*", item["version"])
              and int(item["version"]) > 2**53,
              "the 57-bit version as a decimal string, as the HTTP API gives it: %r" % item["version"])
        rc, out, err = run("item", "put", "--tenant", "acme", data=s.data, stdin='{"from": "stdin"}')
        check(rc == 0 and UUID.fullmatch(json.loads(out)["id"]), "generated id, data from stdin")
        rc, out, _ = run("item", "get", "--tenant", "acme", "a1", data=s.data)
        check(json.loads(out)["data"] == {"n": 1}, "get")
        rc, _, _ = run("item", "get", "--tenant", "globex", "a1", data=s.data)
        check(rc == EXIT_NOTFOUND, "another tenant's item is not found")
        rc, out, _ = run("item", "list", "--tenant", "acme", "--json", data=s.data)
        check(len(json.loads(out)) == 2, "list")
        rc, _, _ = run("item", "delete", "--tenant", "acme", "a1", data=s.data)
        check(rc == 0, "delete")
        rc, _, _ = run("item", "get", "--tenant", "acme", "a1", data=s.data)
        check(rc == EXIT_NOTFOUND, "deleted")
        rc, _, err = run("item", "get", "--tenant", "nobody", "a1", data=s.data)
        check(rc == EXIT_NOTFOUND and "no such tenant" in err, "unknown tenant")
        rc, _, err = run("item", "get", "a1", data=s.data)
        check(rc == EXIT_USAGE and "--tenant" in err, "tenant required")


@test
def bad_input_is_refused_and_nothing_is_half_written():
    with Store() as s:
        for bad in ('{"n": ', "not json", "", '{"a":1} trailing'):
            rc, _, err = run("item", "put", "--tenant", "acme", "--id", "x", bad, data=s.data)
            check(rc == EXIT_USAGE, f"bad json {bad!r}: {rc}")
            check(err.startswith("tenantry: ") and err.count("\n") == 1, f"one line: {err!r}")
        rc, _, err = run("item", "put", "--tenant", "acme", "--id", "bad/id", "{}", data=s.data)
        check(rc == EXIT_USAGE and "item id" in err, "bad id")
        rc, out, _ = run("sql", "--tenant", "acme", "-c", "SELECT count(*) AS n FROM items",
                         "--json", data=s.data)
        check(json.loads(out) == [[{"n": "0"}]], f"nothing written: {out}")
        db = sqlite3.connect(os.path.join(s.data, "tenantry.db"))
        check(db.execute("SELECT count(*) FROM _outbox").fetchone()[0] == 0, "no outbox rows")
        db.close()


@test
def sql_console_is_scoped_to_one_tenant():
    with Store() as s:
        run("item", "put", "--tenant", "globex", "--id", "g", '{"secret": "GLOBEX"}', data=s.data)
        script = ("INSERT INTO items (id, data) VALUES ('a', '{\"v\":1}');\n"
                  "INSERT INTO items (id, data) VALUES ('b', '{\"v\":2}');\n"
                  "SELECT id, json_extract(data, '$.v') AS v FROM items ORDER BY id;\n")
        rc, out, err = run("sql", "--tenant", "acme", data=s.data, stdin=script)
        check(rc == 0, err)
        lines = out.splitlines()
        check(lines[0].split("|")[0].strip() == "id" and "v" in lines[0], f"header: {out}")
        check(set(lines[1]) <= set("-+"), "rule under the header")
        check([l.split("|")[0].strip() for l in lines[2:]] == ["a", "b"], f"rows: {out}")
        rc, out, _ = run("sql", "--tenant", "acme", "--json", "-c", "SELECT id FROM items ORDER BY id",
                         data=s.data)
        check(json.loads(out) == [[{"id": "a"}, {"id": "b"}]], f"json: {out}")
        for hostile in ("SELECT * FROM _items", "ATTACH 'x.db' AS x", "PRAGMA writable_schema=ON",
                        "WITH items AS (SELECT * FROM _items) SELECT * FROM items", "DROP VIEW items"):
            rc, out, err = run("sql", "--tenant", "acme", "-c", hostile, data=s.data)
            check(rc != 0 and "GLOBEX" not in out + err, f"hostile: {hostile}")
            check("not authorized" in err or "authorization" in err, f"says why: {err!r}")
        rc, out, _ = run("sql", "--tenant", "acme", "-c", "SELECT * FROM items", data=s.data)
        check("GLOBEX" not in out, "no cross-tenant rows")


@test
def a_nul_byte_in_stdin_is_refused_whole():
    """SQL and JSON read from stdin reach tenantry with their NUL bytes (the
    bytes are sent as they are); a NUL would end the text early for the guard
    and SQLite alike, so the whole input is refused and nothing runs."""
    with Store() as s:
        for script in (b"INSERT INTO items (id, data) VALUES ('before', '{}');\0"
                       b"SELECT * FROM _items;",
                       b"SELECT * FROM \"_items\0\";",
                       b"INSERT INTO items (id, data) VALUES ('tail', '{}');\0"):
            p = subprocess.run([TN, "sql", "--tenant", "acme", "--data", s.data], input=script,
                               capture_output=True, timeout=60)
            err = p.stderr.decode()
            check(p.returncode == EXIT_USAGE and "NUL byte" in err and err.count("\n") == 1,
                  f"refused with one line: {p.returncode} {err!r} for {script!r}")
            check(p.stdout == b"", f"nothing ran: {p.stdout!r}")
        rc, out, _ = run("sql", "--tenant", "acme", "--json", "-c", "SELECT id FROM items",
                         data=s.data)
        check(rc == 0 and json.loads(out) == [], f"no row written: {out}")
        p = subprocess.run([TN, "item", "put", "--tenant", "acme", "--id", "j", "--data", s.data],
                           input=b'{"a": 1}\0{"b": 2}', capture_output=True, timeout=60)
        check(p.returncode == EXIT_USAGE and b"NUL byte" in p.stderr,
              f"JSON with a NUL refused: {p.returncode} {p.stderr!r}")
        rc, _, _ = run("item", "get", "--tenant", "acme", "j", data=s.data)
        check(rc == EXIT_NOTFOUND, "no item written from JSON with a NUL")


@test
def check_and_status():
    with Store() as s:
        run("item", "put", "--tenant", "acme", "--id", "a", "{}", data=s.data)
        rc, out, _ = run("check", data=s.data)
        check(rc == 0 and out.strip() == "ok", f"check: {out}")
        rc, out, _ = run("status", "--json", data=s.data)
        st = json.loads(out)
        check(st["tenants"] == 2 and st["items"] == 1 and st["pending"] == 1, f"status {st}")
        # Damage the store behind tenantry's back: check must say so, exit 5.
        db = sqlite3.connect(os.path.join(s.data, "tenantry.db"))
        db.execute("INSERT INTO _outbox (tenant, kind, ref) VALUES (1, 1, 999999)")
        db.commit()
        db.close()
        rc, out, _ = run("check", data=s.data)
        check(rc == EXIT_CHECK and "outbox" in out, f"check finds damage: {rc} {out}")


@test
def synchronous_option_is_validated():
    with Store() as s:
        rc, _, err = run("tenant", "list", "--synchronous", "sometimes", data=s.data)
        check(rc == EXIT_USAGE and "--synchronous" in err, "bad synchronous")
        rc, _, _ = run("tenant", "list", "--synchronous", "normal", data=s.data)
        check(rc == 0, "synchronous normal")


@test
def make_install_gives_a_usable_library():
    """make install PREFIX=...: the binary, both libraries, the header and a
    pkg-config file that a program can build against."""
    tmp = tempfile.mkdtemp(prefix="tn-install-")
    try:
        prefix, build = os.path.join(tmp, "prefix"), os.path.join(tmp, "build")
        p = subprocess.run(["make", "-s", "-j2", "install", "PREFIX=" + prefix, "BUILD=" + build],
                           capture_output=True, text=True, timeout=600)
        check(p.returncode == 0, f"make install: {p.stderr[-2000:]}")
        for rel in ("bin/tenantry", "include/tenantry.h", "lib/libtenantry.a", "lib/libtenantry.so",
                    "lib/libtenantry.so.0", "lib/pkgconfig/tenantry.pc"):
            check(os.path.exists(os.path.join(prefix, rel)), f"installed {rel}")
        src = os.path.join(tmp, "use.c")
        with open(src, "w") as f:
            f.write('#include <tenantry.h>\n#include <stdio.h>\n'
                    'int main(void) { puts(tn_errname(TN_CONFLICT)); return 0; }\n')
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "tenantry"], env=env,
                               capture_output=True, text=True).stdout.split()
        exe = os.path.join(tmp, "use")
        p = subprocess.run(["cc", src, "-o", exe] + flags, capture_output=True, text=True)
        check(p.returncode == 0, f"build against the installed library: {p.stderr}")
        p = subprocess.run([exe], capture_output=True, text=True,
                           env=dict(os.environ, LD_LIBRARY_PATH=os.path.join(prefix, "lib")))
        check(p.stdout.strip() == "TN_CONFLICT", f"runs: {p.stdout!r} {p.stderr!r}")
        p = subprocess.run([os.path.join(prefix, "bin", "tenantry"), "--help"],
                           capture_output=True, text=True)
        check(p.returncode == 0, "installed binary runs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    passed = failed = 0
    for fn in tests:
        try:
            fn()
            passed += 1
            print(f"ok   {fn.__name__}")
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {fn.__name__}: {e}")
            if not isinstance(e, AssertionError):
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
