#!/bin/sh
# run.sh TENANTRY DATA - what `make run` does: create the store in DATA on the
# first run (the admin key is printed once, on stdout), then serve the HTTP
# API in the foreground (Ctrl-C stops it).  Extra arguments go to `serve`.
set -eu
bin=${1:?usage: tools/run.sh TENANTRY DATA [serve options]}
data=${2:?usage: tools/run.sh TENANTRY DATA [serve options]}
shift 2
if [ ! -f "$data/tenantry.db" ]; then
    "$bin" init --data "$data"
fi
exec "$bin" serve --data "$data" "$@"
