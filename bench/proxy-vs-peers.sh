#!/usr/bin/env bash
# Proxy throughput and latency: gateway vs nginx (proxy_pass with upstream keepalive), both in
# front of the same origin (nginx serving a fixed 13-byte body), the same number of worker
# threads, driven by wrk in alternating rounds in one run.
#
#   bench/proxy-vs-nginx.sh [rounds] [seconds] [threads]
#
# Prints one line per round and then medians and the gateway/nginx ratio per connection count.
# Bounded: rounds x 2 proxies x 2 connection counts x seconds. Loopback only.
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-5}
THREADS=${3:-1}
cd "$(dirname "$0")/.."
for tool in nginx wrk; do
    command -v $tool >/dev/null || { echo "bench: $tool missing (apt-get install nginx wrk)" >&2; exit 1; }
done
swift build -c release --product gateway >/dev/null
GATEWAY=$(swift build -c release --show-bin-path)/gateway

WORK=$(mktemp -d /tmp/gateway-bench.XXXXXX)
ORIGIN_PORT=18101; NGINX_PORT=18102; GATEWAY_PORT=18103; ADMIN_PORT=18104
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/origin" "$WORK/proxy"
cat > "$WORK/origin/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/origin/nginx.pid;
error_log $WORK/origin/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$ORIGIN_PORT;
        location / { return 200 "hello, world\n"; }
    }
}
CONF
cat > "$WORK/proxy/nginx.conf" <<CONF
worker_processes $THREADS;
daemon off;
pid $WORK/proxy/nginx.pid;
error_log $WORK/proxy/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 256;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
cat > "$WORK/gateway.yaml" <<CONF
listen: 127.0.0.1:$GATEWAY_PORT
admin:
  listen: 127.0.0.1:$ADMIN_PORT
threads: $THREADS
deployments:
  - name: origin
    backends: [127.0.0.1:$ORIGIN_PORT]
CONF

nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" & PIDS+=($!)
nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" & PIDS+=($!)
"$GATEWAY" run --config "$WORK/gateway.yaml" --log-level warning & PIDS+=($!)
for port in $ORIGIN_PORT $NGINX_PORT $GATEWAY_PORT; do
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
done

# wrk --latency prints percentiles; take req/s, p50, p99 (converted to ms).
run_wrk() { # port conns
    wrk -t1 -c"$2" -d"${SECS}s" --latency "http://127.0.0.1:$1/" | awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
        END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}

declare -A RESULTS
for round in $(seq 1 "$ROUNDS"); do
    for conns in 50 200; do
        for target in gateway nginx; do
            port=$GATEWAY_PORT; [ $target = nginx ] && port=$NGINX_PORT
            read -r rps p50 p99 < <(run_wrk $port $conns)
            echo "round $round  $target  c=$conns  req/s=$rps  p50=${p50}ms  p99=${p99}ms"
            RESULTS[$target.$conns.rps]+="$rps "
            RESULTS[$target.$conns.p50]+="$p50 "
            RESULTS[$target.$conns.p99]+="$p99 "
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END { if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
echo
echo "medians over $ROUNDS rounds of ${SECS}s, $THREADS worker thread(s) each:"
for conns in 50 200; do
    g=$(echo "${RESULTS[gateway.$conns.rps]}" | median); n=$(echo "${RESULTS[nginx.$conns.rps]}" | median)
    gp50=$(echo "${RESULTS[gateway.$conns.p50]}" | median); np50=$(echo "${RESULTS[nginx.$conns.p50]}" | median)
    gp99=$(echo "${RESULTS[gateway.$conns.p99]}" | median); np99=$(echo "${RESULTS[nginx.$conns.p99]}" | median)
    ratio=$(awk -v g="$g" -v n="$n" 'BEGIN { printf "%.2f", g / n }')
    echo "c=$conns  gateway $g req/s p50 ${gp50}ms p99 ${gp99}ms | nginx $n req/s p50 ${np50}ms p99 ${np99}ms | throughput ratio gateway/nginx $ratio"
done
