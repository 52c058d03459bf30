#!/bin/sh
# sync.sh BUILD - the sync benchmark (not a test): tenantry's sync engine
# against boto3 and the aws CLI, the same moto_server in the same run.
#   TN_BENCH_SYNC_ITEMS  items (default 20000)
#   TN_BENCH_SYNC_FILES  small files (default 1000 of 4 KiB)
#   TN_BENCH_SYNC_BIG_MB the big file in MiB (default 256; 0 skips it)
#   TN_BENCH_ROUNDS      rounds (default 3); medians are printed
set -eu
build=${1:-build}
exec python3 "$(dirname "$0")/sync.py" "$build"
