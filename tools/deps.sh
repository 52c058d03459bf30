#!/bin/sh
# deps.sh - installs the Debian packages tenantry builds and tests with, when missing.
# Fast when everything is present (one pkg-config call per library); otherwise runs
# apt-get update once, then apt-get install.  Needs root (or sudo) only to install.
set -eu

pkgs=""
need() { pkgs="$pkgs $1"; }

command -v pkg-config >/dev/null 2>&1 || need pkg-config
for pair in sqlite3:libsqlite3-dev libsodium:libsodium-dev libcjson:libcjson-dev \
            openssl:libssl-dev libcurl:libcurl4-openssl-dev libmicrohttpd:libmicrohttpd-dev; do
    pc=${pair%%:*}
    deb=${pair#*:}
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$pc"; then
        need "$deb"
    fi
done
command -v cc >/dev/null 2>&1 || need gcc
command -v make >/dev/null 2>&1 || need make
if [ "${1:-}" = "--test" ]; then
    # Tools the test suites drive: the sqlite3 shell (migration fixtures), curl.
    command -v sqlite3 >/dev/null 2>&1 || need sqlite3
    command -v curl >/dev/null 2>&1 || need curl
    # The appliance suite: systemd-analyze for the units, man and groff for the
    # manual pages, adduser for the package's postinst.
    command -v systemd-analyze >/dev/null 2>&1 || need systemd
    command -v man >/dev/null 2>&1 || need man-db
    command -v nroff >/dev/null 2>&1 || need groff-base
    command -v adduser >/dev/null 2>&1 || need adduser
    # A real browser for the CORS suite (headless; Debian's chromium).
    command -v chromium >/dev/null 2>&1 || need chromium
    # cfn-lint checks `remote template` (tests/e2e/test_template.py).  Debian
    # does not package it: it comes from PyPI, for the python3 the suites run.
    if ! python3 -c 'import cfnlint, yaml' >/dev/null 2>&1; then
        echo "deps: installing cfn-lint and PyYAML with pip" >&2
        python3 -m pip install --quiet cfn-lint pyyaml ||
            python3 -m pip install --quiet --break-system-packages cfn-lint pyyaml
    fi
fi
if [ "${1:-}" = "--fuzz" ]; then
    # clang with libFuzzer's runtime (Debian 12: libclang-rt-14-dev).
    command -v clang >/dev/null 2>&1 || need clang
    ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 ||
        need libclang-rt-14-dev
fi
if [ "${1:-}" = "--bench" ]; then
    command -v wrk >/dev/null 2>&1 || need wrk
    command -v nginx >/dev/null 2>&1 || need nginx-light
    # The console benchmark's baseline; node and npm install dynalite (a
    # DynamoDB peer for the sync benchmark) into the build folder.
    command -v sqlite3 >/dev/null 2>&1 || need sqlite3
    command -v node >/dev/null 2>&1 || need nodejs
    command -v npm >/dev/null 2>&1 || need npm
fi

[ -z "$pkgs" ] && exit 0
echo "deps: installing$pkgs" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
