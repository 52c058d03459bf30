#!/bin/sh
# sync.sh BUILD - the sync benchmark (not a test): tenantry's sync engine
# against boto3 and the aws CLI, each through the same emulated link
# (bench/linkem.c) to the same kind of server; see bench/sync.py for the
# profiles, the backlog and every setting (TN_BENCH_SYNC_*, BENCH_QUICK=1).
# dynalite, a faster DynamoDB peer, is installed from npm into BUILD/npm on
# first use; when that fails its rows are skipped with a loud line.
set -eu
build=${1:-build}
here=$(dirname "$0")
make --no-print-directory -C "$here/.." "BUILD=$(cd "$build" && pwd)" "$(cd "$build" && pwd)/linkem" >&2
if [ ! -f "$build/npm/node_modules/dynalite/cli.js" ]; then
    if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
        mkdir -p "$build/npm"
        echo "sync.sh: installing dynalite with npm into $build/npm" >&2
        npm install --silent --no-audit --no-fund --prefix "$build/npm" dynalite >&2 ||
            echo "sync.sh: !! npm install dynalite failed: the dynalite rows will be skipped" >&2
    else
        echo "sync.sh: !! npm or node is missing: the dynalite rows will be skipped" >&2
    fi
fi
exec python3 "$here/sync.py" "$build"
