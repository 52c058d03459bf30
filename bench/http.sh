#!/bin/sh
# http.sh BUILD - benchmark (not a test) of `tenantry serve` against nginx
# serving a static 300-byte JSON file, measured in the same run.  Both run as
# a user gets them: the daemon with its default settings (a JSON log line per
# request, the default limits), nginx with its access log on.
#
#   wrk, 32 connections, TN_BENCH_ROUNDS rounds (default 5) of
#   TN_BENCH_SECONDS seconds (default 5) for each of:
#     nginx        GET of a static 300-byte JSON file (the baseline)
#     get item     GET /v1/items/{id}   (bearer token, full auth on each request)
#     list 50      GET /v1/items?limit=50
#     post item    POST /v1/items       (one fsync'd transaction each)
#   Prints medians of req/s, p50 and p99 latency, the daemon's CPU time and
#   run-queue wait per request (the time its threads were ready but another
#   process had the CPU: on a shared machine that bounds the tail), ratios
#   against nginx, the
#   POST rate against bench_store's raw one-row-transaction rate (same run),
#   and the daemon's RSS idle and under load (peak of samples).
# Everything started here is stopped by PID on exit.
set -eu
build=${1:-build}
rounds=${TN_BENCH_ROUNDS:-5}
secs=${TN_BENCH_SECONDS:-5}
conns=32
threads=${TN_BENCH_WRK_THREADS:-4}
bin="$build/tenantry"
for tool in wrk nginx python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "http.sh: $tool is missing (make bench installs it)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "http.sh: $bin is missing; build first" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tn-bench-http-XXXXXX")
dpid=""; npid=""; spid=""
cleanup() {
    for p in $spid $dpid $npid; do kill "$p" 2>/dev/null || true; done
    for p in $spid $dpid $npid; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---- the daemon, with one tenant, a key, a token and 1000 items ----
data="$tmp/data"
"$bin" init --data "$data" >/dev/null 2>&1
"$bin" tenant create --data "$data" bench >/dev/null
key=$("$bin" key create --data "$data" --tenant bench \
      --scopes items:read,items:write 2>/dev/null)
dport=$(free_port)
"$bin" serve --data "$data" --listen "127.0.0.1:$dport" 2>"$tmp/serve.log" &
dpid=$!
sleep 0.5
rss_fresh=$(awk '/VmRSS/ {print $2}' "/proc/$dpid/status")
token=$(python3 - "$dport" "$key" <<'PY'
import http.client, json, sys, time
port, key = int(sys.argv[1]), sys.argv[2]
for _ in range(100):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/healthz"); c.getresponse().read(); break
    except OSError:
        time.sleep(0.05)
c.request("POST", "/v1/auth", json.dumps({"api_key": key}), {"Content-Type": "application/json"})
tok = json.loads(c.getresponse().read())["token"]
h = {"Content-Type": "application/json", "Authorization": "Bearer " + tok}
body = {"data": {"kind": "sensor", "temp": 21.5, "tags": ["a", "b"], "ok": True,
                 "note": "x" * 180}}
for i in range(1000):
    body["id"] = "item-%04d" % i
    c.request("POST", "/v1/items", json.dumps(body), h); c.getresponse().read()
print(tok)
PY
)
export TN_TOKEN="$token"
sleep 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
rss_idle=$(rss "$dpid")

# ---- nginx serving a 300-byte JSON file ----
mkdir -p "$tmp/www" "$tmp/nginx"
# nginx's workers may run as an unprivileged user: let them read the file.
chmod 755 "$tmp" "$tmp/www"
python3 -c 'import json; s=json.dumps({"id":"item-0001","data":{"kind":"sensor","note":"x"*200},"version":117671429689769984,"created_at":"2026-01-01T00:00:00.000Z"}); s=s+" "*(300-len(s)-1)+"\n"; open("'"$tmp"'/www/item.json","w").write(s)'
chmod 644 "$tmp/www/item.json"
nport=$(free_port)
cat > "$tmp/nginx/nginx.conf" <<NGX
worker_processes $(nproc);
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log $tmp/nginx/access.log;
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
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx/stderr" &
npid=$!
sleep 0.5

# ---- wrk rounds ----
# run_wrk NAME URL [wrk args...]: appends "rps p50_ms p99_ms" to $tmp/NAME
to_ms() { # wrk prints 1.23ms, 456.00us, 1.02s
    case "$1" in
        *us) echo "$1" | sed 's/us$//' | awk '{printf "%.3f", $1/1000}' ;;
        *ms) echo "$1" | sed 's/ms$//' ;;
        *s) echo "$1" | sed 's/s$//' | awk '{printf "%.3f", $1*1000}' ;;
        *) echo "$1" ;;
    esac
}
# The daemon's CPU time (user + system, in clock ticks) and the run-queue
# wait of its threads (ns, from schedstat).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$dpid/stat"; }
rq_ns() { cat /proc/"$dpid"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {print s + 0}'; }
hz=$(getconf CLK_TCK)
run_wrk() {
    name=$1; url=$2; shift 2
    c0=$(cpu_ticks); q0=$(rq_ns)
    out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency "$@" "$url")
    c1=$(cpu_ticks); q1=$(rq_ns)
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    [ -n "$non2xx" ] && echo "  warning: $name had $non2xx non-2xx responses" >&2
    cpu_us=$(echo "$c0 $c1 $reqs $hz" | awk '{printf "%.1f", ($2 - $1) * 1e6 / $4 / $3}')
    rq_us=$(echo "$q0 $q1 $reqs" | awk '{printf "%.1f", ($2 - $1) / 1000 / $3}')
    [ "$name" = nginx ] && cpu_us=- && rq_us=-
    echo "$rps $(to_ms "$p50") $(to_ms "$p99") $cpu_us $rq_us" >> "$tmp/res_$name"
    echo "  $name: $rps req/s, p50 $p50, p99 $p99, daemon CPU $cpu_us us/req, run-queue wait $rq_us us/req" >&2
}
auth="Authorization: Bearer $token"
base="http://127.0.0.1:$dport"
( peak=0; while kill -0 "$dpid" 2>/dev/null; do
      v=$(awk '/VmRSS/ {print $2}' "/proc/$dpid/status" 2>/dev/null || echo 0)
      [ "${v:-0}" -gt "$peak" ] && { peak=$v; echo "$peak" > "$tmp/rss_peak"; }
      sleep 0.2
  done ) &
spid=$!
r=1
while [ "$r" -le "$rounds" ]; do
    echo "round $r/$rounds" >&2
    run_wrk nginx "http://127.0.0.1:$nport/item.json"
    run_wrk get "$base/v1/items/item-0042" -H "$auth"
    run_wrk list "$base/v1/items?limit=50" -H "$auth"
    run_wrk post "$base/v1/items" -s bench/http_post.lua
    r=$((r + 1))
done
rss_load=$(cat "$tmp/rss_peak" 2>/dev/null || echo 0)
# The daemon gives caches back after 10 s without requests (checked every 10 s).
sleep 22
rss_after=$(rss "$dpid")

# ---- bench_store's raw one-row-transaction rate, same machine, same run ----
store_n=${TN_BENCH_HTTP_STORE_N:-3000}
raw_single=$("$build/bench_store" "$store_n" 3 2>/dev/null |
             awk -F'|' '/one-row transactions/ {gsub(/ /, "", $3); print $3}')

# ---- report ----
median() { # median of column $2 in file $1
    awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{v[NR]=$1} END {
        if (NR % 2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2 }'
}
n_rps=$(median "$tmp/res_nginx" 1)
echo
echo "$rounds rounds x ${secs}s, wrk $threads threads, $conns connections, loopback; medians"
echo
echo "| workload | req/s | vs nginx | p50 ms | p99 ms | daemon CPU us/req | run-queue wait us/req |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for w in nginx get list post; do
    label=$w
    case $w in
        nginx) label="nginx, static 300-byte JSON, access log on" ;;
        get) label="GET /v1/items/{id} (default settings)" ;;
        list) label="GET /v1/items?limit=50" ;;
        post) label="POST /v1/items" ;;
    esac
    m=$(median "$tmp/res_$w" 1)
    cu=-; rq=-
    [ "$w" != nginx ] && cu=$(median "$tmp/res_$w" 4) && rq=$(median "$tmp/res_$w" 5)
    printf "| %s | %.0f | %.2fx | %s | %s | %s | %s |\n" "$label" "$m" \
        "$(echo "$m $n_rps" | awk '{printf "%.4f", $1/$2}')" "$(median "$tmp/res_$w" 2)" "$(median "$tmp/res_$w" 3)" "$cu" "$rq"
done
p_rps=$(median "$tmp/res_post" 1)
echo
if [ -n "$raw_single" ]; then
    printf "POST vs bench_store raw one-row transactions (%s rows/s, synchronous=FULL): %.2fx (target >= 0.80x)\n" \
        "$raw_single" "$(echo "$p_rps $raw_single" | awk '{printf "%.4f", $1/$2}')"
fi
printf "point read vs nginx: %.2fx (target >= 0.50x, p99 < 5 ms)\n" \
    "$(echo "$(median "$tmp/res_get" 1) $n_rps" | awk '{printf "%.4f", $1/$2}')"
printf "daemon RSS: fresh %.1f MiB, idle after warm-up %.1f MiB, idle after the load and 20 s quiet %.1f MiB (target <= 8); under load %.1f MiB peak (target <= 32)\n" \
    "$(echo "$rss_fresh" | awk '{print $1/1024}')" "$(echo "$rss_idle" | awk '{print $1/1024}')" \
    "$(echo "$rss_after" | awk '{print $1/1024}')" "$(echo "$rss_load" | awk '{print $1/1024}')"
