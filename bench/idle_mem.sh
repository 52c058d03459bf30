#!/bin/sh
# idle_mem.sh BUILD [OTHER_BUILD] - the idle memory of `tenantry serve` (a
# measurement, not a test).
#
# Starts the daemon on a fresh store, once with sync off and once with sync
# configured (a bucket and an endpoint nobody answers: the engine runs, fails,
# backs off), lets each sit TN_IDLE_WAIT seconds without a request (default 15:
# past the daemon's own trim after 10 idle seconds), and prints from
# /proc/PID/smaps_rollup its resident set size (RSS), proportional set size
# (PSS: shared pages divided among the processes mapping them) and unique set
# size (USS: the pages no other process maps, what its exit would free), RSS
# split into shared-library pages and the process's own (the program, heap,
# stacks, anonymous maps), and the largest mappings.
#
# The baseline row is a process that maps only libc (sleep), measured in the
# same run: RSS depends on the machine, the ratio less so.  PSS and USS also
# depend on what else runs: every other process mapping the same libraries
# lowers them.  With OTHER_BUILD (another build directory, say of an older
# commit), its daemon is measured in the same run too, for comparison.
#   TN_IDLE_WAIT    seconds of idleness before measuring (default 15)
#   TN_IDLE_TOP     mappings listed per configuration (default 8; 0: none)
set -eu
build=${1:-build}
exec python3 - "$build" "${2:-}" <<'EOF'
import os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

build, other = sys.argv[1], sys.argv[2]
wait = float(os.environ.get("TN_IDLE_WAIT", "15"))
top = int(os.environ.get("TN_IDLE_TOP", "8"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smaps(pid):
    """{mapping: [rss, pss]} in KiB, and the rollup totals."""
    per, cur = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            m = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
            if m:
                cur = m.group(1) or "[anon]"
                per.setdefault(cur, [0, 0])
                continue
            k, _, v = line.partition(":")
            if k in ("Rss", "Pss"):
                per[cur][0 if k == "Rss" else 1] += int(v.split()[0])
    roll = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
                roll[k] = int(v.split()[0])
    with open("/proc/%d/status" % pid) as f:
        threads = int(re.search(r"^Threads:\s*(\d+)", f.read(), re.M).group(1))
    return per, roll, threads


def is_lib(name):
    return name.startswith("/") and ".so" in name


def report(label, pid, rows, tops):
    per, roll, threads = smaps(pid)
    lib = sum(v[0] for k, v in per.items() if is_lib(k))
    own = roll["Rss"] - lib
    uss = roll["Private_Clean"] + roll["Private_Dirty"]
    rows.append((label, roll["Rss"], roll["Pss"], uss, lib, own, threads))
    tops.append((label, sorted(per.items(), key=lambda kv: -kv[1][0])[:top]))


def serve(tn, label, env_extra, rows, tops):
    tmp = tempfile.mkdtemp(prefix="tn-idle-")
    proc = None
    try:
        data = os.path.join(tmp, "data")
        subprocess.run([tn, "init", "--data", data], check=True, capture_output=True)
        port = free_port()
        env = dict(os.environ)
        for k in list(env):
            if k.startswith(("TENANTRY_", "AWS_")):
                del env[k]
        env.update(env_extra)
        log = open(os.path.join(tmp, "log"), "wb")
        proc = subprocess.Popen([tn, "serve", "--data", data, "--quiet",
                                 "--listen", "127.0.0.1:%d" % port],
                                stdout=log, stderr=log, env=env)
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit("serve did not start: " + open(log.name).read()[-500:])
                time.sleep(0.05)
        time.sleep(wait)
        report(label, proc.pid, rows, tops)
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


rows, tops = [], []
base = subprocess.Popen(["sleep", "60"])
try:
    time.sleep(0.3)
    report("baseline: sleep (libc only)", base.pid, rows, tops)
finally:
    base.kill()
    base.wait()
dead = free_port()  # nothing listens there: the engine fails and backs off
sync_env = {"TENANTRY_S3_BUCKET": "idle-bench", "AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % dead,
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1", "TENANTRY_SYNC_INTERVAL": "3600"}
for b, tag in ((build, ""), (other, " [%s]" % other)) if other else ((build, ""),):
    tn = os.path.join(b, "tenantry")
    serve(tn, "serve, sync off" + tag, {}, rows, tops)
    serve(tn, "serve, sync on (no remote)" + tag, sync_env, rows, tops)

print("== idle memory of tenantry serve after %g s without a request (KiB)" % wait)
w = max(len(r[0]) for r in rows)
print("%-*s %8s %8s %8s %10s %8s %8s %8s" % (w, "", "RSS", "PSS", "USS", "libraries", "own",
                                             "threads", "RSS/base"))
for label, rss, pss, uss, lib, own, threads in rows:
    print("%-*s %8d %8d %8d %10d %8d %8d %8.1f" % (w, label, rss, pss, uss, lib, own, threads,
                                                   rss / rows[0][1]))
for label, maps in tops[1:] if top > 0 else []:
    print("\nlargest mappings, %s (RSS, PSS KiB):" % label)
    for name, (rss, pss) in maps:
        print("  %6d %6d  %s" % (rss, pss, os.path.basename(name)))
EOF
