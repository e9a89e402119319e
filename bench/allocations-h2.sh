#!/usr/bin/env bash
# Heap allocations per proxied HTTP/2 request in the gateway's worker: h2load (50 clients x 10
# streams, as h2-vs-peers.sh) over h2c or TLS, in front of the same 100-byte nginx origin as the
# other benchmarks (HTTP/1.1 keep-alive to it), counted by the LD_PRELOAD counter of
# bench/allocations.sh (bench/allocations/count-allocs.c, built here with cc).
#
#   bench/allocations-h2.sh [--tls] [--rounds 3] [--requests 100000] [--gateway PATH]
#
# The gateway only: nginx and HAProxy allocate from pools of their own, so counting their trips
# to malloc says little (allocations.sh shows theirs for HTTP/1.1). Per round: the worker's
# counters, exactly --requests requests (a run that did not get them all is reported and not
# counted), the counters again; allocations and bytes per request, and the medians.
# Bounded (h2load under `timeout`, readiness polls bounded); loopback only; temporary files (the
# library, the certificate, the counter files) in a mktemp directory removed at exit; everything
# started is stopped by PID.
set -euo pipefail
BENCH=allocations-h2

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --tls            TLS with ALPN h2 (TLS_AES_128_GCM_SHA256), instead of h2c
  --rounds N       rounds (default 3)
  --requests N     requests per round (default 100000)
  --gateway PATH   gateway binary (default: build .build-release/release/gateway once;
                   GATEWAY_SCRATCH=DIR builds into DIR instead)
EOF
}

TLS=0; ROUNDS=3; REQUESTS=100000; GATEWAY=""
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "$BENCH: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --tls) TLS=1; shift ;;
        --rounds) need_value "$@"; ROUNDS=$2; shift 2 ;;
        --requests) need_value "$@"; REQUESTS=$2; shift 2 ;;
        --gateway) need_value "$@"; GATEWAY=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; echo "$BENCH: unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [ -n "$GATEWAY" ] && [[ $GATEWAY != /* ]]; then GATEWAY=$PWD/$GATEWAY; fi
cd "$(dirname "$0")/.."
. bench/lib/peers.sh

for pair in "rounds:$ROUNDS" "requests:$REQUESTS"; do
    [[ ${pair#*:} =~ ^[1-9][0-9]*$ ]] || die "--${pair%%:*} must be a positive integer, got '${pair#*:}'"
done
[ "$REQUESTS" -ge 500 ] || die "--requests must be at least 500 (50 clients x 10 streams)"
tools=(cc:gcc curl:curl h2load:nghttp2-client timeout:coreutils od:coreutils nginx:nginx python3:python3)
[ $TLS = 1 ] && tools+=(openssl:openssl)
need_tools "${tools[@]}"
GATEWAY=$(gateway_binary "$GATEWAY")

WORK=$(mktemp -d /tmp/allocations-h2.XXXXXX)
trap 'set +e; stop_started; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

LIB=$(build_alloc_counter "$WORK")

read -r ORIGIN_PORT GATEWAY_PORT ADMIN_PORT < <(free_ports 3)
start_origin "$WORK/origin" "$ORIGIN_PORT"   # not counted: no LD_PRELOAD

if [ $TLS = 1 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 || die "openssl could not make a certificate"
    gateway_proxy_conf "$WORK/gateway.yaml" 1 "listeners:
  - listen: 127.0.0.1:$GATEWAY_PORT
    tls: {cert: $WORK/cert.pem, key: $WORK/key.pem}"
    URL=https://127.0.0.1:$GATEWAY_PORT/
    H2LOAD=(h2load --tls13-ciphers=TLS_AES_128_GCM_SHA256)
else
    gateway_proxy_conf "$WORK/gateway.yaml" 1 "listeners:
  - listen: 127.0.0.1:$GATEWAY_PORT
    protocols: [http1, h2c]"
    URL=http://127.0.0.1:$GATEWAY_PORT/
    H2LOAD=(h2load)
fi
mkdir -p "$WORK/counts"
ALLOC_COUNT_DIR=$WORK/counts LD_PRELOAD=$LIB "$GATEWAY" run --config "$WORK/gateway.yaml" --log-level warning \
    > "$WORK/gateway.log" 2>&1 &
MAIN=$!; remember "$MAIN"
wait_http gateway "$MAIN" "$URL" "$WORK/gateway.log" 20
WORKER=$(gateway_worker "$MAIN")
[ -n "$WORKER" ] || die "no gateway worker found (keeper pid $MAIN)"
COUNTS=$WORK/counts/$WORKER
[ -s "$COUNTS" ] || die "the worker $WORKER has no counter file: LD_PRELOAD did not reach it"

echo "$BENCH  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg); $(h2load --version 2>&1 | head -1)"
echo "gateway $("$GATEWAY" --version 2>&1 | head -1) ($GATEWAY), worker pid $WORKER; $([ $TLS = 1 ] && echo "TLS, h2 by ALPN" || echo h2c)"
echo "load: h2load -n $REQUESTS -c 50 -m 10 -t 1 per round, after a 20000-request warm-up"
echo
timeout 120 "${H2LOAD[@]}" -n 20000 -c 50 -m 10 -t 1 "$URL" > "$WORK/warm.txt" 2>&1 || true

printf '%-5s %10s %12s %12s  %s\n' round requests 'allocs/req' 'bytes/req' note
PER=""; BYTES=""
for ((round = 1; round <= ROUNDS; round++)); do
    read -r a0 _ b0 _ < <(alloc_counters "$COUNTS")
    timeout 300 "${H2LOAD[@]}" -n "$REQUESTS" -c 50 -m 10 -t 1 "$URL" > "$WORK/h2load.txt" 2>&1 || true
    read -r a1 _ b1 _ < <(alloc_counters "$COUNTS")
    done_ok=$(awk '/^requests:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^succeeded/) print $i }' "$WORK/h2load.txt")
    if [ "${done_ok:-0}" != "$REQUESTS" ]; then
        printf '%-5s %10s %12s %12s  %s\n' "$round" "${done_ok:-0}" n/a n/a "not all succeeded: $(grep -m1 '^requests:' "$WORK/h2load.txt" || tail -n1 "$WORK/h2load.txt")"
        continue
    fi
    per=$(ratio $((a1 - a0)) "$REQUESTS" %.2f); bytes=$(ratio $((b1 - b0)) "$REQUESTS" %.0f)
    printf '%-5s %10s %12s %12s\n' "$round" "$REQUESTS" "$per" "$bytes"
    PER+="$per "; BYTES+="$bytes "
done
echo
echo "medians: $(echo "$PER" | median %.2f) allocations and $(echo "$BYTES" | median %.0f) bytes per request in the gateway's worker"
