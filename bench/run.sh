#!/bin/sh
# run.sh BUILD - runs every benchmark (they are not tests) and prints their tables.
#   TN_BENCH_N      items for bench_store (default 100000)
#   TN_BENCH_ROUNDS rounds per benchmark (default 5)
#   TN_BENCH_REMOTE_N rows for bench_remote_dir (default 5000)
set -eu
build=${1:-build}
n=${TN_BENCH_N:-100000}
rounds=${TN_BENCH_ROUNDS:-5}
echo "== store: tenant session vs plain SQLite table"
"$build/bench_store" "$n" "$rounds"
echo
echo "== directory remote: put_rows, list, changes vs a durable file per row"
"$build/bench_remote_dir" "${TN_BENCH_REMOTE_N:-5000}" "$rounds"
for b in http sync; do
    if [ -x "bench/$b.sh" ]; then
        echo
        echo "== $b"
        "bench/$b.sh" "$build"
    fi
done
