#!/bin/sh
# console.sh BUILD - benchmark (not a test) of the SQL console's bulk load:
# TN_BENCH_CONSOLE_N inserts (default 100,000; BENCH_QUICK=1: 20,000) in one
# transaction, the same statements piped into `tenantry sql --tenant bench`
# and into the sqlite3 shell with a plain table (id TEXT PRIMARY KEY, data
# TEXT; WAL, synchronous=FULL like the store), TN_BENCH_ROUNDS rounds
# (default 3), medians.  Also the CPU (user+sys) of each process.
# Prints a table and "@@ name|value|unit|goal" lines for bench/run.sh.
set -eu
build=${1:-build}
if [ "${BENCH_QUICK:-}" = 1 ]; then n=${TN_BENCH_CONSOLE_N:-20000}; rounds=${TN_BENCH_ROUNDS:-1}
else n=${TN_BENCH_CONSOLE_N:-100000}; rounds=${TN_BENCH_ROUNDS:-3}; fi
command -v sqlite3 >/dev/null 2>&1 || { echo "console.sh: the sqlite3 shell is missing (make bench installs it)" >&2; exit 1; }
[ -x "$build/tenantry" ] || { echo "console.sh: $build/tenantry is missing; build first" >&2; exit 1; }
exec python3 - "$build/tenantry" "$n" "$rounds" <<'PY'
import json, os, resource, shutil, statistics, subprocess, sys, tempfile, time
tn, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = os.environ.get("TN_BENCH_OUT", "")

def doc(i):
    return json.dumps({"kind": "sensor", "temp": 21.5, "tags": ["a", "b"], "ok": True, "seq": i})

stmts = "BEGIN;\n" + "".join("INSERT INTO items (id, data) VALUES ('item-%08d', '%s');\n" % (i, doc(i))
                             for i in range(n)) + "COMMIT;\n"

def run(args, stdin_text):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(args, input=stdin_text, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0 or "rror" in p.stderr:
        sys.exit("console.sh: %s failed: %s" % (args[0], p.stderr[-300:]))
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)

res = {"tn": [], "raw": [], "tn_cpu": [], "raw_cpu": []}
for r in range(rounds):
    d = tempfile.mkdtemp(prefix="tn-bench-console-")
    try:
        data = os.path.join(d, "data")
        subprocess.run([tn, "init", "--data", data], check=True, capture_output=True)
        subprocess.run([tn, "tenant", "create", "--data", data, "bench"], check=True, capture_output=True)
        db = os.path.join(d, "plain.db")
        subprocess.run(["sqlite3", db], input="PRAGMA journal_mode=WAL; CREATE TABLE items "
                       "(id TEXT PRIMARY KEY, data TEXT) STRICT;\n", check=True, capture_output=True,
                       text=True)
        # Alternate which goes first, so neither always gets a warm disk.
        order = [("tn", [tn, "sql", "--data", data, "--tenant", "bench"]),
                 ("raw", ["sqlite3", "-cmd", "PRAGMA synchronous=FULL", db])]
        if r % 2:
            order.reverse()
        for name, args in order:
            wall, cpu = run(args, stmts)
            res[name].append(n / wall)
            res[name + "_cpu"].append(cpu)
        # Both hold every row (read back, not taken from the tools' output).
        got_tn = subprocess.run([tn, "sql", "--data", data, "--tenant", "bench", "--json", "-c",
                                 "SELECT count(*) AS n FROM items"], capture_output=True, text=True)
        got_raw = subprocess.run(["sqlite3", db, "SELECT count(*) FROM items"], capture_output=True,
                                 text=True)
        if int(json.loads(got_tn.stdout)[0][0]["n"]) != n or int(got_raw.stdout) != n:
            sys.exit("console.sh: rows missing: %s / %s" % (got_tn.stdout.strip(), got_raw.stdout.strip()))
        print("round %d/%d: tenantry sql %.0f rows/s, sqlite3 %.0f rows/s"
              % (r + 1, rounds, res["tn"][-1], res["raw"][-1]), file=sys.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)

m = {k: statistics.median(v) for k, v in res.items()}
ratio = m["tn"] / m["raw"]
print()
print("%d inserts in one transaction, piped to the console; %d rounds, medians (spread min-max)" % (n, rounds))
print()
print("| workload | sqlite3 shell, plain table | tenantry sql --tenant | ratio | goal |")
print("|---|---:|---:|---:|---:|")
print("| bulk load, rows/s | %.0f (%.0f-%.0f) | %.0f (%.0f-%.0f) | %.2fx | >= 0.7x |"
      % (m["raw"], min(res["raw"]), max(res["raw"]), m["tn"], min(res["tn"]), max(res["tn"]), ratio))
print("| CPU, s | %.2f | %.2f | %.2fx | |" % (m["raw_cpu"], m["tn_cpu"], m["tn_cpu"] / m["raw_cpu"]))
for line in ("console.bulk.ratio|%.4f|x|>= 0.7" % ratio, "console.bulk.rows_s|%.0f|rows/s|" % m["tn"],
             "console.bulk.sqlite3_rows_s|%.0f|rows/s|" % m["raw"]):
    print("@@ " + line)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")
PY
