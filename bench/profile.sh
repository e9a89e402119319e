#!/usr/bin/env bash
# Where the gateway's worker spends its CPU per proxied request: perf samples the worker
# (software cpu-clock: this VM has no hardware counters, and valgrind 3.19 cannot run the Swift
# binaries) while wrk drives keep-alive HTTP/1.1 GETs through it, or h2load HTTP/2 streams
# (--h2c: cleartext with prior knowledge; --tls: h2 over TLS 1.3, TLS_AES_128_GCM_SHA256, as
# h2-vs-peers.sh), 100-byte body from an nginx origin. Prints CPU µs per request from /proc, the
# kernel / gateway / Swift runtime / libc split, and the functions with the most samples (self),
# so two binaries can be compared:
#
#   bench/profile.sh [--gateway PATH] [--conns 50] [--streams 10] [--duration 8] [--top 30]
#                    [--h2c | --tls] [--callers SYMBOL] [--save FILE] [--dwarf]
# (without --gateway: the release build in .build-release, built if needed; --streams is
# h2load -m; --callers prints the call chains into the functions matching SYMBOL as well;
# --save keeps the perf data in FILE for more `perf report`s; --dwarf unwinds with DWARF
# (some 100 MB of data, 1000 Hz) where frame pointers lose the callers, as in malloc and the
# Swift runtime)
#
# Bounded (wrk -d, perf for a fixed time, every wait a bounded poll); loopback only; everything
# started is stopped by PID; temporary files in a mktemp directory removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAY=""
CONNS=50
DURATION=8
TOP=30
MODE=http1
STREAMS=10
CALLERS=""
SAVE=""
CALLGRAPH=(-F 2000 -g)
while [ $# -gt 0 ]; do
    case "$1" in
        --gateway) GATEWAY=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --top) TOP=$2; shift 2 ;;
        --streams) STREAMS=$2; shift 2 ;;
        --h2c) MODE=h2c; shift ;;
        --tls) MODE=tls; shift ;;
        --callers) CALLERS=$2; shift 2 ;;
        --save) SAVE=$2; shift 2 ;;
        --dwarf) CALLGRAPH=(-F 1000 --call-graph dwarf,16384); shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "profile: unknown argument: $1" >&2; exit 1 ;;
    esac
done
BENCH=profile
. bench/lib/peers.sh
need_tools perf:linux-perf nginx:nginx curl:curl python3:python3
if [ "$MODE" = http1 ]; then need_tools wrk:wrk; else need_tools h2load:nghttp2-client openssl:openssl; fi
GATEWAY=$(gateway_binary "$GATEWAY")

WORK=$(mktemp -d /tmp/gateway-profile.XXXXXX)
cleanup() { stop_started; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r ORIGIN_PORT PORT ADMIN_PORT < <(free_ports 3)
start_origin "$WORK/origin" "$ORIGIN_PORT"
URL=http://127.0.0.1:$PORT/
case $MODE in
    http1) LISTENER="listen: 127.0.0.1:$PORT" ;;
    h2c) LISTENER="listeners:
  - listen: 127.0.0.1:$PORT
    protocols: [http1, h2c]" ;;
    tls)
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj /CN=localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 \
            || die "openssl could not make a certificate"
        LISTENER="listeners:
  - listen: 127.0.0.1:$PORT
    tls: {cert: $WORK/cert.pem, key: $WORK/key.pem}"
        URL=https://127.0.0.1:$PORT/ ;;
esac
gateway_proxy_conf "$WORK/gateway.yaml" 1 "$LISTENER"
"$GATEWAY" run --config "$WORK/gateway.yaml" --log-level warning > "$WORK/gateway.log" 2>&1 &
KEEPER=$!; remember $KEEPER
if [ "$MODE" = tls ]; then
    # wait_http's curl does not take the self-signed certificate: poll here (bounded, 10 s).
    for _ in $(seq 1 100); do
        kill -0 "$KEEPER" 2>/dev/null || die "gateway exited before it was ready ($(tail -n 5 "$WORK/gateway.log"))"
        [ "$(curl -sk -o /dev/null --max-time 2 -w '%{http_code}' "$URL" || true)" = 200 ] && break
        sleep 0.1
    done
else
    wait_http gateway "$KEEPER" "$URL" "$WORK/gateway.log"
fi
WORKER=$(gateway_worker "$KEEPER")
[ -n "$WORKER" ] || die "no worker process under the keeper $KEEPER"
# load SECONDS OUTPUT: the load generator of the mode, in the foreground, bounded by `timeout`.
load() {
    if [ "$MODE" = http1 ]; then
        timeout $(($1 + 30)) wrk -t1 -c"$CONNS" -d"$1s" "$URL" > "$2"
    else
        timeout $(($1 + 30)) h2load --tls13-ciphers=TLS_AES_128_GCM_SHA256 -D "$1" -c "$CONNS" -m "$STREAMS" -t 1 "$URL" > "$2"
    fi
}
load 2 /dev/null

before=$(cpu_ticks "$WORKER")
load "$DURATION" "$WORK/load.txt" &
LOAD=$!; remember "$LOAD"
sleep 1
perf record "${CALLGRAPH[@]}" -p "$WORKER" -o "$WORK/perf.data" -- sleep $((DURATION - 2)) > /dev/null 2>&1 \
    || die "perf record failed (kernel.perf_event_paranoid?)"
wait "$LOAD"
after=$(cpu_ticks "$WORKER")
[ -z "$SAVE" ] || cp "$WORK/perf.data" "$SAVE"
if [ "$MODE" = http1 ]; then
    requests=$(awk '/requests in/ {print $1}' "$WORK/load.txt")
else
    requests=$(awk '/^requests:/ {print $8}' "$WORK/load.txt")
    grep -q '^status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx' "$WORK/load.txt" || die "h2load saw failures: $(grep -E '^(requests|status codes):' "$WORK/load.txt")"
fi
echo "gateway $GATEWAY, $MODE, $CONNS connections$([ "$MODE" = http1 ] || echo " x $STREAMS streams"), ${DURATION}s"
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
if [ -n "$CALLERS" ]; then
    echo
    echo "call chains into functions matching $CALLERS:"
    perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -G --symbol-filter="$CALLERS" 2>/dev/null \
        | grep -v '^#' | awk 'NF' | head -80 | swift demangle --simplified 2>/dev/null | cut -c1-160
fi
