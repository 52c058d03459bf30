#!/bin/sh
# run.sh BUILD - runs every suite and prints the total as the last line.
#
# Suites: BUILD/unit (the C unit tests), then every tests/e2e/test_*.py with the
# system python3.  Each suite ends with "N passed, N failed[, N skipped]"; this
# script adds them up.  A suite that dies without that line counts as one failure.
# TN_SUITE=name runs only the suites whose file name contains name.
set -u
build=${1:-build}
export TN_BUILD="$build"
total_p=0; total_f=0; total_s=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run_suite() {
    name=$1; shift
    case "$name" in *"${TN_SUITE:-}"*) ;; *) return ;; esac
    echo "== $name"
    "$@" 2>&1 | tee "$log"
    line=$(grep -E '^[a-z]*:? ?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "!! $name ended without a result line: counted as 1 failure"
        total_f=$((total_f + 1))
        return
    fi
    p=$(echo "$line" | sed -E 's/^[^0-9]*([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
    total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + ${s:-0}))
}

run_suite unit "$build/unit"
for py in tests/e2e/test_*.py; do
    [ -e "$py" ] || continue
    run_suite "$(basename "$py")" python3 "$py"
done

echo
if [ "$total_s" -gt 0 ]; then
    echo "$total_p passed, $total_f failed, $total_s skipped"
else
    echo "$total_p passed, $total_f failed"
fi
[ "$total_f" -eq 0 ]
