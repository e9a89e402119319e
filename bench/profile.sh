#!/usr/bin/env bash
# Where the gateway's worker spends its CPU per proxied HTTP/1.1 request: perf samples the
# worker (software cpu-clock: this VM has no hardware counters, and valgrind 3.19 cannot run the
# Swift binaries) while wrk drives keep-alive GETs through it (100-byte body from an nginx origin).
# Prints CPU µs per request from /proc, the kernel / gateway / Swift runtime / libc split, and the
# functions with the most samples (self), so two binaries can be compared:
#
#   bench/profile.sh [--gateway PATH] [--conns 50] [--duration 8] [--top 30]
# (without --gateway: the release build in .build-release, built if needed)
#
# Bounded (wrk -d, perf for a fixed time, every wait a bounded poll); loopback only; everything
# started is stopped by PID; temporary files in a mktemp directory removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAY=""
CONNS=50
DURATION=8
TOP=30
while [ $# -gt 0 ]; do
    case "$1" in
        --gateway) GATEWAY=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --top) TOP=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "profile: unknown argument: $1" >&2; exit 1 ;;
    esac
done
BENCH=profile
. bench/lib/peers.sh
need_tools perf:linux-perf wrk:wrk nginx:nginx curl:curl python3:python3
GATEWAY=$(gateway_binary "$GATEWAY")

WORK=$(mktemp -d /tmp/gateway-profile.XXXXXX)
cleanup() { stop_started; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r ORIGIN_PORT PORT ADMIN_PORT < <(free_ports 3)
start_origin "$WORK/origin" "$ORIGIN_PORT"
gateway_proxy_conf "$WORK/gateway.yaml" 1 "listen: 127.0.0.1:$PORT"
"$GATEWAY" run --config "$WORK/gateway.yaml" --log-level warning > "$WORK/gateway.log" 2>&1 &
KEEPER=$!; remember $KEEPER
wait_http gateway "$KEEPER" "http://127.0.0.1:$PORT/" "$WORK/gateway.log"
WORKER=$(gateway_worker "$KEEPER")
[ -n "$WORKER" ] || die "no worker process under the keeper $KEEPER"
wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$PORT/" > /dev/null

before=$(cpu_ticks "$WORKER")
wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PORT/" > "$WORK/wrk.txt" &
WRK=$!; remember "$WRK"
sleep 1
perf record -F 2000 -g -p "$WORKER" -o "$WORK/perf.data" -- sleep $((DURATION - 2)) > /dev/null 2>&1 \
    || die "perf record failed (kernel.perf_event_paranoid?)"
wait "$WRK"
after=$(cpu_ticks "$WORKER")
requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
echo "gateway $GATEWAY, $CONNS connections, ${DURATION}s"
awk -v r="$requests" -v us=$(((after - before) * TICK_US)) -v d="$DURATION" \
    'BEGIN { printf "requests %d (%.0f/s), worker CPU %.2f s, %.1f us per request (perf running)\n", r, r / d, us / 1e6, us / r }'
echo
echo "samples by where they ran:"
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null | awk '/^ +[0-9]/ {printf "  %8s  %s\n", $1, $2}' | head -6
echo
echo "top $TOP functions (self):"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null \
    | awk '/^ +[0-9]/ { pct=$1; $1=""; $2=""; sub(/^ +/, ""); sub(/ +- +- *$/, ""); printf "  %7s  %s\n", pct, substr($0, 1, 140) }' \
    | head -"$TOP" | swift demangle --simplified 2>/dev/null | cut -c1-150
