#!/bin/sh
# run.sh BUILD - runs every suite and prints the total as the last line.
#
# The suites that must run are listed below (SUITES): BUILD/unit (the C unit
# tests) and tests/e2e/<name> with the system python3.  Each suite ends with
# "N passed, N failed[, N skipped]"; this script adds them up.  A suite fails
# the run, counted as one more failure, when
#   - it is listed but its file is missing,
#   - its file is there but not listed (add it to SUITES),
#   - it ends without a result line, or its line says it ran no test,
#   - it exits non-zero (or by a signal) although its line counts no failure,
#     e.g. a crash, a teardown exception or a sanitizer report after the line.
# TN_SUITE=name runs only the listed suites whose name contains name; then only
# those are expected, and a name that selects nothing is a failure.
#
# tests/e2e/test_runner.py runs this script on fake suites; it points it at
# them with TN_SELFTEST_DIR (instead of tests/e2e) and TN_SELFTEST_SUITES
# (instead of the list below).  Nothing else should set those.
set -u
build=${1:-build}
export TN_BUILD="$build"

SUITES="unit
test_runner.py
test_harness.py
test_appliance.py
test_cli.py
test_config.py
test_cors.py
test_crash.py
test_disk.py
test_faults.py
test_http.py
test_layers.py
test_operator.py
test_pull.py
test_remote_aws.py
test_remote_conformance.py
test_security.py
test_sync.py
test_template.py"
dir=tests/e2e
if [ -n "${TN_SELFTEST_DIR:-}" ]; then
    dir=$TN_SELFTEST_DIR
    SUITES=${TN_SELFTEST_SUITES:-}
fi

total_p=0; total_f=0; total_s=0; ran=0
problems=""
log=$(mktemp)
rcfile=$(mktemp)
trap 'rm -f "$log" "$rcfile"' EXIT

problem() {
    echo "!! $1"
    problems="$problems
!! $1"
    total_f=$((total_f + 1))
}

listed() {
    for s in $SUITES; do [ "$s" = "$1" ] && return 0; done
    return 1
}

selected() {
    case "$1" in *"${TN_SUITE:-}"*) return 0 ;; esac
    return 1
}

run_suite() {
    name=$1; shift
    ran=$((ran + 1))
    echo "== $name"
    # The suite's own exit status, read back after the pipe (sh has no pipefail).
    : >"$rcfile"
    { "$@" 2>&1; echo $? >"$rcfile"; } | tee "$log"
    rc=$(cat "$rcfile")
    line=$(grep -E '^[a-z]*:? ?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        problem "$name ended without a result line (exit status $rc): counted as 1 failure"
        return
    fi
    p=$(echo "$line" | sed -E 's/^[^0-9]*([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
    total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + ${s:-0}))
    if [ $((p + f)) -eq 0 ]; then
        problem "$name ran no test: counted as 1 failure"
    fi
    if [ "${rc:-x}" != 0 ] && [ "$f" -eq 0 ]; then
        if [ "${rc:-x}" -gt 128 ] 2>/dev/null; then
            why="was killed by signal $((rc - 128))"
        else
            why="exited with status ${rc:-unknown}"
        fi
        problem "$name $why after \"$line\": counted as 1 failure"
    fi
}

# Files that are suites but not in the list.
for path in "$dir"/test_*.py; do
    [ -e "$path" ] || continue
    name=$(basename "$path")
    listed "$name" || { selected "$name" && problem "$name is a suite file but not listed in tests/run.sh"; }
done

for name in $SUITES; do
    selected "$name" || continue
    if [ "$name" = unit ]; then
        if [ -x "$build/unit" ]; then
            run_suite unit "$build/unit"
        else
            ran=$((ran + 1))
            problem "unit is expected but $build/unit is missing"
        fi
    elif [ -e "$dir/$name" ]; then
        run_suite "$name" python3 "$dir/$name"
    else
        ran=$((ran + 1))
        problem "$name is expected but $dir/$name is missing"
    fi
done
if [ "$ran" -eq 0 ]; then
    problem "TN_SUITE=${TN_SUITE:-} selects no listed suite"
fi

echo
[ -n "$problems" ] && echo "suites that failed the run:$problems"
if [ "$total_s" -gt 0 ]; then
    echo "$total_p passed, $total_f failed, $total_s skipped"
else
    echo "$total_p passed, $total_f failed"
fi
[ "$total_f" -eq 0 ]
