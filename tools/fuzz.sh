#!/bin/sh
# fuzz.sh [TARGET...] - builds the libFuzzer targets in tests/fuzz/ and runs each.
#
# Every tests/fuzz/fuzz_<name>.c is linked with every layer's sources (main()
# left out) under clang -fsanitize=fuzzer,address,undefined, then run
# for FUZZ_SECONDS (default 30) from a copy of tests/fuzz/corpus/<name>/, so a
# run never grows the committed corpus.  A target passes when it runs its time
# without a crash, leak or timeout; on a failure the reproducer is kept under
# FUZZ_ARTIFACTS (default build/fuzz-artifacts) and its path printed.
# Replay one with: <build dir>/fuzz_<name> <reproducer>.
# Prints per target the number of inputs run, and last "N passed, N failed".
# shellcheck disable=SC2086 # SAN, CFLAGS, LIBS and objs are word lists on purpose
set -eu

cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-30}
ARTIFACTS=${FUZZ_ARTIFACTS:-build/fuzz-artifacts}
CC=${FUZZ_CC:-clang}
PKGS="sqlite3 libsodium libcjson openssl libcurl libmicrohttpd"

case $SECONDS_EACH in
'' | *[!0-9]*) echo "fuzz: FUZZ_SECONDS must be a whole number" >&2; exit 2 ;;
esac
command -v "$CC" >/dev/null 2>&1 || { echo "fuzz: $CC not found" >&2; exit 2; }

if [ $# -gt 0 ]; then
    targets=$*
else
    targets=$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c | sed 's/^fuzz_//'; done)
fi

work=$(mktemp -d -t tenantry-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$ARTIFACTS"

SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror \
  -Iinclude $(for d in src/*/ sync/ sync/*/; do printf ' -I%s' "${d%/}"; done) -I$work \
  $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"

# The library, compiled once for every target.
echo "fuzz: building the library with $CC"
tools/embed_schema.sh "$work/schema_gen.c" schema/*.sql # a glob expands sorted
objs="$work/schema_gen.o"
$CC $SAN $CFLAGS -c -o "$work/schema_gen.o" "$work/schema_gen.c"
for src in src/*/*.c sync/*.c sync/*/*.c; do
    case $src in
    src/cli/main.c | src/cli/lazylib.c) continue ;;
    esac
    obj="$work/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
    $CC $SAN $CFLAGS -c -o "$obj" "$src"
    objs="$objs $obj"
done

passed=0
failed=0
for t in $targets; do
    src=tests/fuzz/fuzz_$t.c
    if [ ! -f "$src" ]; then
        echo "fuzz: $t: no $src"
        failed=$((failed + 1))
        continue
    fi
    bin="$work/fuzz_$t"
    if ! $CC $SAN $CFLAGS -o "$bin" "$src" $objs $LIBS; then
        echo "fuzz: $t: FAILED to build"
        failed=$((failed + 1))
        continue
    fi
    corpus="$work/corpus_$t"
    mkdir -p "$corpus"
    if [ -d "tests/fuzz/corpus/$t" ]; then cp -R "tests/fuzz/corpus/$t/." "$corpus/"; fi
    log="$work/$t.log"
    mkdir -p "$work/tmp_$t"
    set +e
    TMPDIR="$work/tmp_$t" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t-" "$corpus" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ] && [ -z "$repro" ]; then
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
        echo "fuzz: $t: ok, ${execs:-?} inputs in ${SECONDS_EACH}s (${rate:-?}/s)"
        passed=$((passed + 1))
    else
        echo "fuzz: $t: FAILED (exit $rc) after ${execs:-?} inputs"
        grep -aE '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz_[a-z_]+: )' "$log" | head -n 5 | \
            sed 's/^/    /' || true
        echo "    reproducer: ${repro:-none written (see the log below)}"
        if [ -z "$repro" ]; then tail -n 20 "$log" | sed 's/^/    /'; fi
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
