#!/usr/bin/env bash
# Where the gateway's worker spends its CPU per proxied HTTP/1.1 request: perf samples the
# worker (software cpu-clock: this VM has no hardware counters, and valgrind 3.19 cannot run the
# Swift binaries) while wrk drives keep-alive GETs through it (100-byte body from an nginx origin).
# Prints CPU µs per request from /proc, the kernel / gateway / Swift runtime / libc split, and the
# functions with the most samples (self), so two binaries can be compared:
#
#   bench/profile.sh [--gateway PATH] [--conns 50] [--duration 8] [--top 30]
#
# Bounded (wrk -d, perf for a fixed time, every wait a bounded poll); loopback only; everything
# started is stopped by PID; temporary files in a mktemp directory removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAY=.build-release/release/gateway
CONNS=50
DURATION=8
TOP=30
die() { echo "profile: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --gateway) GATEWAY=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --top) TOP=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
for tool in perf wrk nginx curl; do
    command -v "$tool" >/dev/null || die "$tool missing (apt-get install linux-perf wrk nginx curl)"
done
[ -x "$GATEWAY" ] || die "no gateway binary at $GATEWAY (swift build -c release --scratch-path .build-release)"

WORK=$(mktemp -d /tmp/gateway-profile.XXXXXX)
ORIGIN_PORT=18411; PORT=18413; ADMIN_PORT=18414
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

BODY=$(printf 'x%.0s' $(seq 1 100))
cat > "$WORK/origin.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/origin.pid;
error_log $WORK/origin.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$ORIGIN_PORT; location / { return 200 "$BODY"; } }
}
CONF
cat > "$WORK/gateway.yaml" <<CONF
listen: 127.0.0.1:$PORT
admin:
  listen: 127.0.0.1:$ADMIN_PORT
threads: 1
deployments:
  - name: origin
    backends: [127.0.0.1:$ORIGIN_PORT]
CONF

nginx -p "$WORK" -c "$WORK/origin.conf" & PIDS+=($!)
"$GATEWAY" run --config "$WORK/gateway.yaml" --log-level warning > "$WORK/gateway.log" 2>&1 & PIDS+=($!)
KEEPER=$!
for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && break
    sleep 0.1
done
WORKER=$(ps --ppid "$KEEPER" -o pid=,args= | awk '/_worker/ {print $1}')
[ -n "$WORKER" ] || die "no worker process under the keeper $KEEPER"
wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$PORT/" > /dev/null

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
before=$(ticks "$WORKER")
wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PORT/" > "$WORK/wrk.txt" &
WRK=$!
sleep 1
perf record -F 2000 -g -p "$WORKER" -o "$WORK/perf.data" -- sleep $((DURATION - 2)) > /dev/null 2>&1 \
    || die "perf record failed (kernel.perf_event_paranoid?)"
wait "$WRK"
after=$(ticks "$WORKER")
requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
echo "gateway $GATEWAY, $CONNS connections, ${DURATION}s"
awk -v r="$requests" -v t=$((after - before)) -v hz="$HZ" -v d="$DURATION" \
    'BEGIN { printf "requests %d (%.0f/s), worker CPU %.2f s, %.1f us per request (perf running)\n", r, r / d, t / hz, t / hz * 1e6 / r }'
echo
echo "samples by where they ran:"
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null | awk '/^ +[0-9]/ {printf "  %8s  %s\n", $1, $2}' | head -6
echo
echo "top $TOP functions (self):"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null \
    | awk '/^ +[0-9]/ { pct=$1; $1=""; $2=""; sub(/^ +/, ""); sub(/ +- +- *$/, ""); printf "  %7s  %s\n", pct, substr($0, 1, 140) }' \
    | head -"$TOP" | swift demangle --simplified 2>/dev/null | cut -c1-150
