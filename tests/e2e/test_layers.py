"""test_layers - the tree keeps the shape README draws.

- tools/layers.py finds no include of a higher layer, of another folder's
  private header, or a cycle between folders; and it does fail on a tree that
  has one (a copy of the tree with a violation planted in it).
- No file of the remote-agnostic engine (sync/ outside sync/aws/) names a
  DynamoDB or S3 concept.
- `make install` gives a libtenantry whose pkg-config link line names no HTTP
  server and no curl, and a five-line program links it and opens a store.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import tnlib  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("TN_BUILD", "build"))
T = tnlib.Suite("layers")


def layers(root):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "layers.py"), root],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def tree_is_clean():
    rc, out = layers(ROOT)
    T.eq(rc, 0, "tools/layers.py on the tree: %s" % out.strip())
    n = re.search(r"(\d+) files checked", out)
    T.check(n and int(n.group(1)) >= 60, "the check saw the whole tree: %s" % out.strip())


def check_fails_on_violations():
    """Each kind of violation, planted in a copy of the tree, is reported."""
    plants = [
        ("src/store/store.c", '#include "http.h"\n', "a header of src/api"),
        ("sync/engine.c", '#include "dynamo.h"\n', "a header of sync/aws"),
        ("src/auth/keys.c", '#include "store_int.h"\n', "private to src/store"),
        ("sync/aws/aws.c", '#include "engine.h"\n', "a backend may use only"),
    ]
    for path, line, want in plants:
        d = tempfile.mkdtemp(prefix="tn-layers-")
        try:
            for top in ("include", "src", "sync"):
                shutil.copytree(os.path.join(ROOT, top), os.path.join(d, top))
            with open(os.path.join(d, path)) as f:
                text = f.read()
            with open(os.path.join(d, path), "w") as f:
                f.write(line + text)
            rc, out = layers(d)
            T.check(rc != 0 and want in out, "%s planted in %s is refused (%s)" %
                    (line.strip(), path, out.strip()[:200]))
        finally:
            shutil.rmtree(d, ignore_errors=True)


def engine_names_no_aws_concept():
    words = re.compile(r"dynamo|\bS3\b|s3_|bucket|PutItem|BatchWrite|TransactWrite|"
                       r"presign|SigV4", re.I)
    # The engine's own folder does not even say pk and sk (the directory
    # backend stores rows under those two field names, the layout's).
    engine_words = re.compile(words.pattern + r"|\bpk\b|\bsk\b", re.I)
    found = []
    for d in ("sync", "sync/dir"):
        full = os.path.join(ROOT, d)
        if not os.path.isdir(full):
            continue
        for name in sorted(os.listdir(full)):
            if not name.endswith((".c", ".h")):
                continue
            with open(os.path.join(full, name)) as f:
                for no, line in enumerate(f, 1):
                    # The key builder documents what the AWS backend calls
                    # its names: those lines say "(DynamoDB: ...)" / "(S3: ...)".
                    w = engine_words if d == "sync" else words
                    if w.search(line) and not re.search(r"\((DynamoDB|S3): ", line):
                        found.append("%s/%s:%d: %s" % (d, name, no, line.strip()))
    T.eq(found, [], "AWS words in the remote-agnostic engine")


def library_is_the_store_alone():
    d = tempfile.mkdtemp(prefix="tn-install-")
    try:
        dest = os.path.join(d, "root")
        p = subprocess.run(["make", "--no-print-directory", "install", "PREFIX=/usr/local",
                            "DESTDIR=" + dest, "BUILD=" + BUILD],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
        T.eq(p.returncode, 0, "make install: %s" % p.stderr[-500:])
        pc = os.path.join(dest, "usr/local/lib/pkgconfig")
        env = dict(os.environ, PKG_CONFIG_PATH=pc,
                   PKG_CONFIG_SYSROOT_DIR=dest)
        libs = subprocess.run(["pkg-config", "--static", "--libs", "tenantry"], env=env,
                              capture_output=True, text=True)
        T.eq(libs.returncode, 0, "pkg-config knows tenantry: %s" % libs.stderr)
        for bad in ("microhttpd", "curl", "cjson"):
            T.check(bad not in libs.stdout, "the link line names no %s: %s" %
                    (bad, libs.stdout.strip()))
        cflags = subprocess.run(["pkg-config", "--cflags", "tenantry"], env=env,
                                capture_output=True, text=True).stdout.split()
        prog = os.path.join(d, "five.c")
        with open(prog, "w") as f:
            f.write('#include <tenantry.h>\n'
                    'int main(int c, char **v) {\n'
                    '    tn_options o; tn_options_init(&o); o.create = 1; tn_store *st;\n'
                    '    if (c < 2 || tn_open(v[1], &o, &st) != TN_OK) return 1;\n'
                    '    tn_close(st); return 0; }\n')
        exe = os.path.join(d, "five")
        # A sanitized build's library wants the program built the same way.
        lib = os.path.join(dest, "usr/local/lib/libtenantry.so")
        san = [] if "libasan" not in subprocess.run(["ldd", lib], capture_output=True,
                                                     text=True).stdout \
            else ["-fsanitize=address,undefined"]
        cc = subprocess.run(["cc", "-o", exe, prog] + san + cflags + libs.stdout.split(),
                            capture_output=True, text=True, timeout=120)
        T.eq(cc.returncode, 0, "a five-line program links libtenantry: %s" % cc.stderr[-400:])
        if cc.returncode == 0:
            run = subprocess.run([exe, os.path.join(d, "data")], capture_output=True,
                                 text=True, timeout=60,
                                 env=dict(os.environ, LD_LIBRARY_PATH=os.path.join(
                                     dest, "usr/local/lib")))
            T.eq(run.returncode, 0, "the program opens a store: %s" % run.stderr)
            T.check(os.path.exists(os.path.join(d, "data", "tenantry.db")),
                    "the store file exists")
            ldd = subprocess.run(["ldd", exe], capture_output=True, text=True,
                                 env=dict(os.environ, LD_LIBRARY_PATH=os.path.join(
                                     dest, "usr/local/lib"))).stdout
            T.check("microhttpd" not in ldd and "curl" not in ldd,
                    "the program loads neither libmicrohttpd nor libcurl")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def walked(readme_lines, path):
    """Whether README's file walk names path: in full, or by its base name on
    a line that names its folder (`src/api/api_items.c`, `api_files.c`)."""
    folder, base = os.path.split(path)
    for line in readme_lines:
        if path in line or (folder + "/") in line and re.search(r"[`/ ]" + re.escape(base) + r"`", line):
            return True
        if folder + "/`" in line and base not in (".c", ".h"):
            # a whole folder named as one row (dist/systemd/, tests/fuzz/)
            return True
    return False


def readme_walks_every_file():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    walk = text[text.index("## File walk"):]
    walk = walk[:walk.index("\n## ", 5)]
    lines = [l for l in walk.splitlines() if l.startswith("|")]
    files = subprocess.run(["git", "ls-files", "src", "sync", "include", "schema", "tools", "dist",
                            "bench", "tests"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    # A header goes with the .c of the same name (README says so).
    missing = [f for f in files
               if not f.startswith(("tests/vectors/", "tests/fuzz/")) and not walked(lines, f) and
               not (f.endswith(".h") and f[:-2] + ".c" in files and walked(lines, f[:-2] + ".c"))]
    T.eq(missing, [], "files README's walk does not name")
    named = {m for l in lines for m in re.findall(r"`((?:src|sync|include|schema|tools|dist|bench|tests)"
                                                   r"/[^`* ]+)`", l)}
    T.eq(sorted(n for n in named if not os.path.exists(os.path.join(ROOT, n))), [],
         "paths README's walk names that do not exist")


def main():
    for fn in (tree_is_clean, check_fails_on_violations, engine_names_no_aws_concept,
               library_is_the_store_alone, readme_walks_every_file):
        T.run(fn)
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
