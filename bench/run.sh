#!/bin/sh
# run.sh BUILD - runs every benchmark (they are not tests) and prints their
# tables, then every figure with its goal.
#   BENCH_RUNS=N    run everything N times (default 1); the summary gives the
#                   median of the N runs and their spread (min-max)
#   BENCH_QUICK=1   a short run (smaller backlogs, one round each)
#   BENCH_ONLY=LIST a comma-separated subset of store,remote,restore,console,http,sync
#   TN_BENCH_REMOTE_N rows for bench_remote_dir (default 5000)
#   TN_BENCH_N      items for bench_store (default 100000; quick 20000)
#   TN_BENCH_ROUNDS rounds inside each benchmark (store 3, http 3, console 3)
# Each script's own settings are described at its top.
set -eu
build=${1:-build}
runs=${BENCH_RUNS:-1}
only=${BENCH_ONLY:-store,remote,restore,console,http,sync}
if [ "${BENCH_QUICK:-}" = 1 ]; then n=${TN_BENCH_N:-20000}; srounds=${TN_BENCH_ROUNDS:-1}
else n=${TN_BENCH_N:-100000}; srounds=${TN_BENCH_ROUNDS:-3}; fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tn-bench-run-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
want() { case ",$only," in *",$1,"*) return 0 ;; esac; return 1; }
load() { awk '{print $1, $2, $3}' /proc/loadavg; }
start=$(date +%s)
failed=0
i=1
while [ "$i" -le "$runs" ]; do
    export TN_BENCH_OUT="$tmp/run$i"
    : > "$TN_BENCH_OUT"
    echo "######## run $i/$runs (load average $(load), $(nproc) CPUs)"
    if want store; then
        echo "== store: tenant session vs plain SQLite table (C API)"
        "$build/bench_store" "$n" "$srounds" > "$tmp/store.out" || { echo "!! FAILED: bench_store"; failed=1; }
        cat "$tmp/store.out"
        awk -F'|' -v out="$TN_BENCH_OUT" '
            /one-row transactions/ {k="store.single.ratio"; g=">= 0.9"}
            /one bulk transaction/ {k="store.bulk.ratio"; g=">= 0.7"}
            /point reads/ {k="store.read.ratio"; g=">= 0.9"}
            k != "" { r=$5; gsub(/[ x]/, "", r); print k "|" r "|x|" g >> out; print "@@ " k "|" r "|x|" g; k="" }
        ' "$tmp/store.out"
    fi
    if want remote; then
        echo
        echo "== directory remote: put_rows, list, changes vs a durable file per row"
        "$build/bench_remote_dir" "${TN_BENCH_REMOTE_N:-5000}" "$srounds"
    fi
    if want restore && [ -f bench/restore.py ]; then
        echo
        echo "== restore, pull and verify against moto vs boto3 and the aws CLI"
        TN_BUILD="$build" python3 bench/restore.py
    fi
    for b in console http sync; do
        if want "$b"; then
            echo
            echo "== $b"
            "bench/$b.sh" "$build" || { echo "!! FAILED: bench/$b.sh (exit $?)"; failed=1; }
        fi
    done
    echo "######## run $i/$runs done (load average $(load))"
    i=$((i + 1))
done

echo
echo "######## summary: $runs run(s), $(( ($(date +%s) - start) / 60 )) min; median (min-max) of the runs"
echo
echo "| figure | median | spread | unit | goal | |"
echo "|---|---:|---:|---|---|---|"
cat "$tmp"/run* | awk -F'|' '
    function f(x) { return (x >= 1000 || x <= -1000) ? sprintf("%.0f", x) : sprintf("%.3g", x) }
    { if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
      v[$1] = v[$1] " " $2; unit[$1] = $3; goal[$1] = $4 }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]; m = split(substr(v[k], 2), a, " ")
            for (x = 1; x <= m; x++) for (y = x + 1; y <= m; y++) if (a[y] + 0 < a[x] + 0) { t = a[x]; a[x] = a[y]; a[y] = t }
            med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
            g = goal[k]; ok = ""
            if (g != "") {
                split(g, gp, " "); lim = gp[2] + 0
                if (gp[1] == ">=") ok = (med >= lim) ? "met" : "MISSED"
                else if (gp[1] == "<=") ok = (med <= lim) ? "met" : "MISSED"
                else if (gp[1] == "<") ok = (med < lim) ? "met" : "MISSED"
            }
            printf "| %s | %s | %s-%s | %s | %s | %s |\n", k, f(med), f(a[1]), f(a[m]), unit[k], g, ok
        }
    }'
exit "$failed"
