#!/bin/sh
# http.sh BUILD - benchmark (not a test) of `tenantry serve` against nginx,
# measured in the same run.  wrk, TN_BENCH_WRK_THREADS threads (default 2),
# 32 connections, keep-alive, loopback; TN_BENCH_ROUNDS rounds (default 3) of
# TN_BENCH_SECONDS seconds (default 5); medians.  BENCH_QUICK=1: 1 round of 3 s.
#
# The daemon runs in three configurations, each started fresh every round:
#   defaults  `tenantry serve` with no flags: a JSON log line per request on
#             stderr (to a file), the per-key rate limit of 50 requests/s with
#             a burst of 100.  wrk's load is one key, so almost every answer
#             is a 429: the row shows the refusal path's rate and the 2xx rate.
#   log       the defaults (log on, default threads) except the rate limit:
#             --rate 1000000 --burst 1000000, so the requests are served.
#   quiet     log + --quiet (errors only): the earlier tuned configuration.
# Rows (settings in brackets):
#   nginx                GET of a static 300-byte JSON file, access log ON
#                        (the default combined format, to a file): the baseline
#   GET item [defaults]  GET /v1/items/{id}, bearer token
#   GET item [log]       the main throughput row
#   GET item [quiet]
#   list 50 [log]        GET /v1/items?limit=50
#   POST c32 [log]       POST /v1/items, 32 connections, each acknowledged after
#                        its fsync (group commit), against raw SQLite one-row
#                        transactions from 32 threads (bench_store --threads 32)
#   POST c1 [log]        the same with one connection (wrk -t1 -c1), against
#                        raw SQLite one-row transactions from one thread
#   operator GET [log]   GET /v1/items/{id} with an operator's token (grant
#                        lookup and an audit row per request)
# Also the daemon's RSS (fresh, peak under load, after 20 s quiet).
# Prints tables and "@@ name|value|unit|goal" lines for bench/run.sh.
# TN_BENCH_PERF=DIR: `perf record -g` on the daemon during the first round's
# GET item [log] and [quiet] rows (into DIR/http-get-log.data, -quiet.data).
# Everything started here is stopped by PID on exit.
set -eu
build=${1:-build}
if [ "${BENCH_QUICK:-}" = 1 ]; then
    rounds=${TN_BENCH_ROUNDS:-1}; secs=${TN_BENCH_SECONDS:-3}; store_n=${TN_BENCH_HTTP_STORE_N:-1000}
else
    rounds=${TN_BENCH_ROUNDS:-3}; secs=${TN_BENCH_SECONDS:-5}; store_n=${TN_BENCH_HTTP_STORE_N:-3000}
fi
conns=32
threads=${TN_BENCH_WRK_THREADS:-2}
perf_dir=${TN_BENCH_PERF:-}
bin="$build/tenantry"
for tool in wrk nginx python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "http.sh: $tool is missing (make bench installs it)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "http.sh: $bin is missing; build first" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tn-bench-http-XXXXXX")
dpid=""; npid=""; spid=""; ppid_perf=""
cleanup() {
    for p in $ppid_perf $spid $dpid $npid; do kill "$p" 2>/dev/null || true; done
    for p in $ppid_perf $spid $dpid $npid; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_http() { # wait_http PORT: until /healthz answers (at most 10 s)
    python3 - "$1" <<'PY'
import http.client, sys, time
for _ in range(200):
    try:
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
        c.request("GET", "/healthz"); c.getresponse().read(); sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

data="$tmp/data"
dport=$(free_port)
# start_daemon NAME [flags]: the daemon on $dport, its log in $tmp/NAME.log
start_daemon() {
    name=$1; shift
    "$bin" serve --data "$data" --listen "127.0.0.1:$dport" "$@" 2>>"$tmp/$name.log" &
    dpid=$!
    wait_http "$dport" || { echo "http.sh: the daemon did not start" >&2; exit 1; }
}
stop_daemon() {
    kill "$dpid" 2>/dev/null || true
    wait "$dpid" 2>/dev/null || true
    dpid=""
}
LIFT="--rate 1000000 --burst 1000000"

# ---- one tenant, an API key, an operator, their tokens, 1000 items ----
"$bin" init --data "$data" >/dev/null 2>&1
"$bin" tenant create --data "$data" bench >/dev/null
key=$("$bin" key create --data "$data" --tenant bench --scopes items:read,items:write 2>/dev/null)
opkey=$("$bin" operator create --data "$data" opbench --tenant bench --scopes items:read 2>/dev/null)
# shellcheck disable=SC2086
start_daemon seed $LIFT
python3 - "$dport" "$key" "$opkey" > "$tmp/tokens" <<'PY'
import http.client, json, sys
port, key, opkey = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
def post(path, body, h):
    c.request("POST", path, json.dumps(body), h)
    r = c.getresponse(); data = r.read()
    if r.status >= 300:
        sys.exit("http.sh: %s -> %d" % (path, r.status))
    return data
ct = {"Content-Type": "application/json"}
tok = json.loads(post("/v1/auth", {"api_key": key}, ct))["token"]
optok = json.loads(post("/v1/auth", {"operator_key": opkey, "tenant": "bench"}, ct))["token"]
h = dict(ct, Authorization="Bearer " + tok)
body = {"data": {"kind": "sensor", "temp": 21.5, "tags": ["a", "b"], "ok": True, "note": "x" * 180}}
for i in range(1000):
    body["id"] = "item-%04d" % i
    post("/v1/items", body, h)
print(tok)
print(optok)
PY
stop_daemon
token=$(sed -n 1p "$tmp/tokens")
optoken=$(sed -n 2p "$tmp/tokens")
export TN_TOKEN="$token"

# ---- nginx serving a 300-byte JSON file, access log on ----
mkdir -p "$tmp/www" "$tmp/nginx"
# nginx's workers may run as an unprivileged user: let them read the file and write the log.
chmod 755 "$tmp" "$tmp/www" "$tmp/nginx"
python3 -c 'import json; s=json.dumps({"id":"item-0001","data":{"kind":"sensor","note":"x"*200},"version":117671429689769984,"created_at":"2026-01-01T00:00:00.000Z"}); s=s+" "*(300-len(s)-1)+"\n"; open("'"$tmp"'/www/item.json","w").write(s)'
chmod 644 "$tmp/www/item.json"
nport=$(free_port)
cat > "$tmp/nginx/nginx.conf" <<NGX
worker_processes $(nproc);
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log $tmp/nginx/access.log combined;
    default_type application/json;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nport;
        location / { root $tmp/www; }
    }
}
NGX
touch "$tmp/nginx/access.log"; chmod 666 "$tmp/nginx/access.log"
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx/stderr" &
npid=$!
sleep 0.5

# ---- wrk rounds ----
to_ms() { # wrk prints 1.23ms, 456.00us, 1.02s
    case "$1" in
        *us) echo "$1" | sed 's/us$//' | awk '{printf "%.3f", $1/1000}' ;;
        *ms) echo "$1" | sed 's/ms$//' ;;
        *s) echo "$1" | sed 's/s$//' | awk '{printf "%.3f", $1*1000}' ;;
        *) echo "$1" ;;
    esac
}
# run_wrk NAME THREADS CONNS URL [wrk args...]: appends "rps ok_rps p50_ms p99_ms" to $tmp/res_NAME
run_wrk() {
    name=$1; t=$2; c=$3; url=$4; shift 4
    out=$(wrk -t"$t" -c"$c" -d"${secs}s" --latency "$@" "$url")
    total=$(echo "$out" | awk '/requests in/ {print $1}')
    dur=$(echo "$out" | awk '/requests in/ {sub(/s,?$/, "", $4); print $4}')
    rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    ok=$(echo "${total:-0} ${non2xx:-0} ${dur:-1}" | awk '{printf "%.1f", ($1-$2)/$3}')
    echo "$rps $ok $(to_ms "$p50") $(to_ms "$p99")" >> "$tmp/res_$name"
    echo "  $name: $rps req/s ($ok/s 2xx), p50 $p50, p99 $p99" >&2
}
perf_start() { # perf_start NAME: perf record on the daemon for this row (first round only)
    if [ -n "$perf_dir" ] && [ "$r" = 1 ]; then
        mkdir -p "$perf_dir"
        perf record -g -q -p "$dpid" -o "$perf_dir/http-$1.data" -- sleep "$secs" >/dev/null 2>&1 &
        ppid_perf=$!
    fi
}
perf_stop() {
    if [ -n "$ppid_perf" ]; then wait "$ppid_perf" 2>/dev/null || true; ppid_perf=""; fi
}
rows_s() { awk '{for (i = 2; i <= NF; i++) if ($i == "rows/s") print $(i-1)}'; }
auth="Authorization: Bearer $token"
base="http://127.0.0.1:$dport"
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
r=1
while [ "$r" -le "$rounds" ]; do
    echo "round $r/$rounds" >&2
    run_wrk nginx "$threads" "$conns" "http://127.0.0.1:$nport/item.json"

    start_daemon defaults
    run_wrk get_defaults "$threads" "$conns" "$base/v1/items/item-0042" -H "$auth"
    stop_daemon

    # shellcheck disable=SC2086
    start_daemon log $LIFT
    if [ "$r" = "$rounds" ]; then
        rss_fresh=$(rss "$dpid")
        ( peak=0; while kill -0 "$dpid" 2>/dev/null; do
              v=$(awk '/VmRSS/ {print $2}' "/proc/$dpid/status" 2>/dev/null || echo 0)
              [ "${v:-0}" -gt "$peak" ] && { peak=$v; echo "$peak" > "$tmp/rss_peak"; }
              sleep 0.2
          done ) &
        spid=$!
    fi
    perf_start get-log
    run_wrk get "$threads" "$conns" "$base/v1/items/item-0042" -H "$auth"
    perf_stop
    run_wrk list "$threads" "$conns" "$base/v1/items?limit=50" -H "$auth"
    run_wrk post32 "$threads" "$conns" "$base/v1/items" -s bench/http_post.lua
    run_wrk post1 1 1 "$base/v1/items" -s bench/http_post.lua
    run_wrk opget "$threads" "$conns" "$base/v1/items/item-0042" -H "Authorization: Bearer $optoken"
    if [ "$r" = "$rounds" ]; then
        rss_load=$(cat "$tmp/rss_peak" 2>/dev/null || echo 0)
        # The daemon gives caches back after 10 s without requests (checked every 10 s).
        sleep 22
        rss_after=$(rss "$dpid")
    fi
    stop_daemon

    # shellcheck disable=SC2086
    start_daemon quiet $LIFT --quiet
    perf_start get-quiet
    run_wrk get_quiet "$threads" "$conns" "$base/v1/items/item-0042" -H "$auth"
    perf_stop
    stop_daemon

    # raw SQLite one-row transactions at the POST rows' concurrency, same round
    "$build/bench_store" --threads 32 "$store_n" | rows_s >> "$tmp/res_raw32"
    "$build/bench_store" --threads 1 "$store_n" | rows_s >> "$tmp/res_raw1"
    echo "  raw one-row transactions: $(tail -1 "$tmp/res_raw32")/s at 32 threads, $(tail -1 "$tmp/res_raw1")/s at 1" >&2
    r=$((r + 1))
done
log_lines=$(cat "$tmp"/log.log | wc -l)

# ---- report ----
median() { # median of column $2 in file $1
    awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{v[NR]=$1} END {
        if (NR % 2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2 }'
}
spread() { # min-max of column $2 in file $1
    awk -v c="$2" '{print $c}' "$1" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s-%s", lo, hi}'
}
ratio() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.4f", $1/$2; else print 0 }'; }
metric() { echo "@@ $1|$2|$3|$4"; [ -z "${TN_BENCH_OUT:-}" ] || echo "$1|$2|$3|$4" >> "$TN_BENCH_OUT"; }
n_rps=$(median "$tmp/res_nginx" 1)
echo
echo "$rounds rounds x ${secs}s, wrk -t$threads -c$conns (POST c1: -t1 -c1), keep-alive, loopback; medians (spread: min-max of the rounds)"
echo "settings: defaults = no flags (JSON log line per request to a file, --rate 50 --burst 100 per key);"
echo "          log = defaults but --rate 1000000 --burst 1000000; quiet = log + --quiet"
echo
echo "| workload | settings | req/s (2xx/s) | spread | vs nginx | p50 ms | p99 ms |"
echo "|---|---|---:|---:|---:|---:|---:|"
for w in nginx get_defaults get get_quiet list post32 post1 opget; do
    case $w in
        nginx) label="nginx, static 300-byte JSON"; set_="access log on" ;;
        get_defaults) label="GET /v1/items/{id}"; set_="defaults" ;;
        get) label="GET /v1/items/{id}"; set_="log" ;;
        get_quiet) label="GET /v1/items/{id}"; set_="quiet" ;;
        list) label="GET /v1/items?limit=50"; set_="log" ;;
        post32) label="POST /v1/items, 32 connections"; set_="log" ;;
        post1) label="POST /v1/items, 1 connection"; set_="log" ;;
        opget) label="GET /v1/items/{id}, operator token"; set_="log" ;;
    esac
    m=$(median "$tmp/res_$w" 1)
    printf "| %s | %s | %.0f (%.0f) | %s | %.2fx | %s | %s |\n" "$label" "$set_" "$m" \
        "$(median "$tmp/res_$w" 2)" "$(spread "$tmp/res_$w" 1)" "$(ratio "$m" "$n_rps")" \
        "$(median "$tmp/res_$w" 3)" "$(median "$tmp/res_$w" 4)"
done
raw32=$(median "$tmp/res_raw32" 1); raw1=$(median "$tmp/res_raw1" 1)
echo
printf "POST, 32 connections vs raw SQLite one-row transactions from 32 threads (%s rows/s): %.2fx (goal >= 2x with group commit)\n" \
    "$raw32" "$(ratio "$(median "$tmp/res_post32" 1)" "$raw32")"
printf "POST, 1 connection vs raw SQLite one-row transactions from 1 thread (%s rows/s): %.2fx\n" \
    "$raw1" "$(ratio "$(median "$tmp/res_post1" 1)" "$raw1")"
printf "point read [log] vs nginx: %.2fx (goal >= 0.5x, p99 < 5 ms); [quiet]: %.2fx (goal >= 0.7x, p99 < 5 ms)\n" \
    "$(ratio "$(median "$tmp/res_get" 1)" "$n_rps")" "$(ratio "$(median "$tmp/res_get_quiet" 1)" "$n_rps")"
echo "JSON log lines written by the [log] daemon (all rounds): $log_lines"
printf "daemon RSS [log]: fresh %.1f MiB, under load %.1f MiB peak (target <= 32), after the load and 20 s quiet %.1f MiB (target <= 8)\n" \
    "$(echo "$rss_fresh" | awk '{print $1/1024}')" "$(echo "$rss_load" | awk '{print $1/1024}')" \
    "$(echo "$rss_after" | awk '{print $1/1024}')"
metric http.nginx.rps "$n_rps" "req/s" ""
metric http.get.defaults.ok_rps "$(median "$tmp/res_get_defaults" 2)" "req/s" ""
metric http.get.defaults.rps "$(median "$tmp/res_get_defaults" 1)" "req/s" ""
for w in get get_quiet list post32 post1; do
    metric "http.$w.rps" "$(median "$tmp/res_$w" 1)" "req/s" ""
done
metric http.nginx.p99 "$(median "$tmp/res_nginx" 4)" ms ""
metric http.raw32.rows_s "$raw32" "rows/s" ""
metric http.raw1.rows_s "$raw1" "rows/s" ""
metric http.get.log.ratio "$(ratio "$(median "$tmp/res_get" 1)" "$n_rps")" x ">= 0.5"
metric http.get.log.p99 "$(median "$tmp/res_get" 4)" ms "< 5"
metric http.get.quiet.ratio "$(ratio "$(median "$tmp/res_get_quiet" 1)" "$n_rps")" x ">= 0.7"
metric http.get.quiet.p99 "$(median "$tmp/res_get_quiet" 4)" ms "< 5"
metric http.list.log.ratio "$(ratio "$(median "$tmp/res_list" 1)" "$n_rps")" x ""
metric http.post32.vs_raw32 "$(ratio "$(median "$tmp/res_post32" 1)" "$raw32")" x ">= 2"
metric http.post32.p99 "$(median "$tmp/res_post32" 4)" ms ""
metric http.post1.vs_raw1 "$(ratio "$(median "$tmp/res_post1" 1)" "$raw1")" x ""
metric http.operator_get.rps "$(median "$tmp/res_opget" 1)" "req/s" ""
metric http.operator_get.ratio "$(ratio "$(median "$tmp/res_opget" 1)" "$n_rps")" x ""
metric http.rss.after_mib "$(echo "$rss_after" | awk '{printf "%.1f", $1/1024}')" MiB "<= 8"
metric http.rss.peak_mib "$(echo "$rss_load" | awk '{printf "%.1f", $1/1024}')" MiB "<= 32"
