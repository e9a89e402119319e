#!/usr/bin/env bash
# HTTP/2 throughput and CPU per request: the gateway beside nginx (`http2`) and HAProxy (`bind
# ... ssl crt PEM alpn h2`, or `proto h2` for h2c), one worker each, on the same self-signed
# certificate, all in front of the same origin as proxy-vs-peers.sh (one nginx worker answering
# every request with a fixed 100-byte body over HTTP/1.1 keep-alive, so the figures of the two
# scripts compare), driven by h2load in rotating order in one run.
#
#   bench/h2-vs-peers.sh [--gateway PATH] [--rounds 5] [--duration 10] [--clients 50]
#                        [--streams 10] [--workers 1] [--threads 1] [--path /]
#                        [--h2c] [--cipher SUITE] [--only gateway,nginx,haproxy]
#
# With TLS, h2load offers only TLS_AES_128_GCM_SHA256 (--cipher), so all three encrypt alike
# (left to choose, nginx and HAProxy pick AES-256 and the gateway AES-128).
# Each run is a 1 s h2load warm-up (not counted) and then the measured h2load -D run; the
# proxying process's CPU time (the gateway's worker, nginx's worker, HAProxy; from /proc) is read
# around the measured run. Prints one line per round and target (req/s, CPU us per request,
# failures), then the medians over the clean rounds and the medians of the per-round paired
# ratios gateway/nginx and gateway/haproxy. Raw h2load outputs and configs go to
# bench/out/h2-vs-peers-<time>-<mode>.XXXX/. Bounded: rounds x targets x (1 + duration) s, each
# h2load under `timeout`; every readiness wait is a bounded poll. Loopback only. Everything
# started is stopped at exit by PID; the key and scratch files are in a mktemp directory removed
# at exit.
set -euo pipefail
BENCH=h2-vs-peers

usage() {
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --gateway PATH   gateway binary (default: build .build-release/release/gateway once;
                   GATEWAY_SCRATCH=DIR builds into DIR instead)
  --rounds N       rounds; each runs every target, the order rotating by one (default 5)
  --duration S     measured seconds per run, h2load -D, after a 1 s warm-up run (default 10)
  --clients N      h2load -c: connections (default 50)
  --streams N      h2load -m: concurrent streams per connection (default 10)
  --workers N      gateway threads, nginx worker_processes, HAProxy nbthread (default 1)
  --threads N      h2load -t (default 1)
  --path P         request path (default /)
  --h2c            cleartext HTTP/2 with prior knowledge instead of TLS
  --cipher SUITE   the TLS 1.3 suite h2load offers (default TLS_AES_128_GCM_SHA256; "any" = h2load's list)
  --only LIST      comma-separated subset of gateway,nginx,haproxy
EOF
}

GATEWAY=""; ROUNDS=5; DURATION=10; CLIENTS=50; STREAMS=10; WORKERS=1; THREADS=1
REQ_PATH=/; MODE=tls; ONLY=gateway,nginx,haproxy; CIPHER=TLS_AES_128_GCM_SHA256
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "$BENCH: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --gateway) need_value "$@"; GATEWAY=$2; shift 2 ;;
        --rounds) need_value "$@"; ROUNDS=$2; shift 2 ;;
        --duration) need_value "$@"; DURATION=$2; shift 2 ;;
        --clients) need_value "$@"; CLIENTS=$2; shift 2 ;;
        --streams) need_value "$@"; STREAMS=$2; shift 2 ;;
        --workers) need_value "$@"; WORKERS=$2; shift 2 ;;
        --threads) need_value "$@"; THREADS=$2; shift 2 ;;
        --path) need_value "$@"; REQ_PATH=$2; shift 2 ;;
        --h2c) MODE=h2c; shift ;;
        --cipher) need_value "$@"; CIPHER=$2; shift 2 ;;
        --only) need_value "$@"; ONLY=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; echo "$BENCH: unknown argument: $1" >&2; exit 2 ;;
    esac
done
# A --gateway path is taken relative to where the script was started, not the repository.
if [ -n "$GATEWAY" ] && [[ $GATEWAY != /* ]]; then GATEWAY=$PWD/$GATEWAY; fi
cd "$(dirname "$0")/.."
. bench/lib/peers.sh
HERE=$PWD/bench/h2-vs-peers

for pair in "rounds:$ROUNDS" "duration:$DURATION" "clients:$CLIENTS" "streams:$STREAMS" \
    "workers:$WORKERS" "threads:$THREADS"; do
    [[ ${pair#*:} =~ ^[1-9][0-9]*$ ]] || die "--${pair%%:*} must be a positive integer, got '${pair#*:}'"
done
[ "$THREADS" -le "$CLIENTS" ] || die "--threads ($THREADS) must not exceed --clients ($CLIENTS)"
[[ $REQ_PATH == /* ]] || die "--path must start with /, got '$REQ_PATH'"
for t in ${ONLY//,/ }; do case $t in gateway|nginx|haproxy) ;; *) die "--only: unknown target '$t'" ;; esac; done
TARGETS=()
for t in gateway nginx haproxy; do [[ ,$ONLY, == *,$t,* ]] && TARGETS+=("$t"); done
[ ${#TARGETS[@]} -gt 0 ] || die "--only names no target"
has() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }

tools=(h2load:nghttp2-client curl:curl openssl:openssl python3:python3 timeout:coreutils nginx:nginx)
has haproxy && tools+=(haproxy:haproxy)
need_tools "${tools[@]}"
has gateway && GATEWAY=$(gateway_binary "$GATEWAY")

mkdir -p bench/out
OUT=$(mktemp -d "$PWD/bench/out/h2-vs-peers-$(date +%Y%m%d-%H%M%S)-$MODE.XXXX")
WORK=$(mktemp -d /tmp/h2-vs-peers.XXXXXX)
SUMMARY=$OUT/summary.txt
cleanup() {
    set +e
    stop_started
    # Keep what explains the run; the key stays behind in $WORK and goes with it.
    cp "$WORK"/gateway.yaml "$WORK"/gateway.log "$OUT"/ 2>/dev/null || true
    for t in origin nginx haproxy; do
        for f in "$WORK/$t"/*.conf "$WORK/$t"/*.cfg "$WORK/$t"/*.log; do
            [ -f "$f" ] && cp "$f" "$OUT/$t-$(basename "$f")"
        done
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "$*" | tee -a "$SUMMARY"; }

# probe URL -> "CODE VERSION" (e.g. "200 2"); "000 0" when nothing answered.
probe() {
    local opts=(-s -o /dev/null --max-time 2 -w '%{http_code} %{http_version}')
    if [ "$MODE" = h2c ]; then opts+=(--http2-prior-knowledge); else opts+=(-k --http2); fi
    curl "${opts[@]}" "$1" 2>/dev/null || true
}
# wait_h2 NAME PID URL LOG: poll until the URL answers 200 over HTTP/2 (at most 10 s).
wait_h2() {
    local name=$1 pid=$2 url=$3 log=$4 answer=""
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2 || true; die "$name exited before it was ready (log above)"; }
        answer=$(probe "$url")
        [ "$answer" = "200 2" ] && return 0
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$name not ready at $url after 10 s (last answer: code and HTTP version '$answer'; want '200 2')"
}

read -r ORIGIN_PORT GATEWAY_PORT ADMIN_PORT NGINX_PORT HAPROXY_PORT < <(free_ports 5)
declare -A PORT MAIN
PORT=([gateway]=$GATEWAY_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)
SCHEME=https; [ "$MODE" = h2c ] && SCHEME=http

# One certificate for all: EC P-256, CN localhost, valid two days.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 \
    || die "openssl could not make a certificate"
cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/both.pem"   # HAProxy wants both in one file

start_origin "$WORK/origin" "$ORIGIN_PORT"
curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$ORIGIN_PORT$REQ_PATH" \
    || die "origin does not answer $REQ_PATH with 2xx"

if has nginx; then
    mkdir -p "$WORK/nginx"
    if [ "$MODE" = h2c ]; then
        LISTEN="listen 127.0.0.1:$NGINX_PORT http2 backlog=4096;"; TLS_LINES=""
    else
        LISTEN="listen 127.0.0.1:$NGINX_PORT ssl http2 backlog=4096;"
        TLS_LINES="ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    # keepalive_requests: nginx ends an HTTP/2 connection with GOAWAY after that many streams
    # (default 1000) and h2load does not reconnect, so the default would stop every client a
    # fraction of a second into the run. Upstream: the same idle-connection budget as the
    # gateway's pool (256 per backend) and no cap on requests per upstream connection.
    nginx_proxy_conf "$WORK/nginx" "$WORKERS" 4096 "$LISTEN
        $TLS_LINES"
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" > "$WORK/nginx/out.log" 2>&1 &
    MAIN[nginx]=$!; remember $!
    wait_h2 nginx "${MAIN[nginx]}" "$SCHEME://127.0.0.1:$NGINX_PORT$REQ_PATH" "$WORK/nginx/error.log"
fi

if has haproxy; then
    mkdir -p "$WORK/haproxy"
    if [ "$MODE" = h2c ]; then BIND="bind 127.0.0.1:$HAPROXY_PORT proto h2"
    else BIND="bind 127.0.0.1:$HAPROXY_PORT ssl crt $WORK/both.pem alpn h2"; fi
    # -db: one foreground process (no master), our child. HTTP/1.1 to the origin, idle server
    # connections shared between client connections (`http-reuse always`). No log lines.
    haproxy_proxy_conf "$WORK/haproxy" "$WORKERS" 8000 "$BIND" 60 "ssl-default-bind-options ssl-min-ver TLSv1.2"
    haproxy -db -f "$WORK/haproxy/haproxy.cfg" > "$WORK/haproxy/haproxy.log" 2>&1 &
    MAIN[haproxy]=$!; remember $!
    wait_h2 haproxy "${MAIN[haproxy]}" "$SCHEME://127.0.0.1:$HAPROXY_PORT$REQ_PATH" "$WORK/haproxy/haproxy.log"
fi

if has gateway; then
    if [ "$MODE" = h2c ]; then LISTENER="    protocols: [http1, h2c]"
    else LISTENER="    tls: {cert: $WORK/cert.pem, key: $WORK/key.pem}"; fi
    gateway_proxy_conf "$WORK/gateway.yaml" "$WORKERS" "listeners:
  - listen: 127.0.0.1:$GATEWAY_PORT
$LISTENER"
    "$GATEWAY" run --config "$WORK/gateway.yaml" --log-level warning > "$WORK/gateway.log" 2>&1 &
    MAIN[gateway]=$!; remember $!
    wait_h2 gateway "${MAIN[gateway]}" "$SCHEME://127.0.0.1:$GATEWAY_PORT$REQ_PATH" "$WORK/gateway.log"
fi
declare -A PIDS
for t in "${TARGETS[@]}"; do
    PIDS[$t]=$(proxy_pids "$t" "${MAIN[$t]}" | tr '\n' ' ')
    [ -n "${PIDS[$t]// /}" ] || die "no proxying process found for $t (main pid ${MAIN[$t]})"
done

H2LOAD_TLS=()
[ "$MODE" = tls ] && [ "$CIPHER" != any ] && H2LOAD_TLS=(--tls13-ciphers="$CIPHER")
version_line() { "$@" 2>&1 | head -1 | sed 's/ *$//'; }
say "$BENCH  $(date -u +%Y-%m-%dT%H:%M:%SZ)  mode=$MODE  path=$REQ_PATH"
say "machine: nproc $(nproc), load average before $(cut -d' ' -f1-3 /proc/loadavg)"
say "h2load: $(version_line h2load --version); nginx: $(nginx -v 2>&1 | sed 's/.*: //')$(has haproxy && echo "; $(version_line haproxy -v | cut -d' ' -f1-3)")"
has gateway && say "gateway: $(version_line "$GATEWAY" --version)  ($GATEWAY)"
say "load: h2load ${H2LOAD_TLS[*]:+${H2LOAD_TLS[*]} }-D $DURATION -c $CLIENTS -m $STREAMS -t $THREADS after a 1 s warm-up run; workers $WORKERS; rounds $ROUNDS"
say "origin: nginx, 1 worker, 100-byte body, HTTP/1.1 keep-alive from every proxy"
for t in "${TARGETS[@]}"; do say "  $t: port ${PORT[$t]}, proxying pid(s) ${PIDS[$t]}(main ${MAIN[$t]})"; done
say "raw output: $OUT"
say ""
say "$(printf '%-5s  %-7s  %12s  %10s  %7s  %7s  %7s  %10s  %10s  %s' round target 'req/s' succeeded failed errored timeout 2xx 'CPU us/req' result)"

declare -A CLEAN_RPS CLEAN_CPU CLEAN_ROUNDS RATIO
for t in "${TARGETS[@]}"; do CLEAN_RPS[$t]=""; CLEAN_CPU[$t]=""; CLEAN_ROUNDS[$t]=0; done
H2LOAD_LIMIT=$((DURATION + 30))
for round in $(seq 1 "$ROUNDS"); do
    order=()
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do order+=("${TARGETS[$(((i + round - 1) % ${#TARGETS[@]}))]}"); done
    declare -A THIS=()
    for target in "${order[@]}"; do
        raw="$OUT/round$round-$target.txt"
        if ! kill -0 "${MAIN[$target]}" 2>/dev/null; then
            say "$(printf '%-5s  %-7s  %s' "$round" "$target" "not run: $target has exited (see its log in $OUT)")"
            continue
        fi
        url="$SCHEME://127.0.0.1:${PORT[$target]}$REQ_PATH"
        timeout 31 h2load "${H2LOAD_TLS[@]}" -D 1 -c "$CLIENTS" -m "$STREAMS" -t "$THREADS" "$url" > "$OUT/round$round-$target-warmup.txt" 2>&1 || true
        # shellcheck disable=SC2086
        before=$(cpu_ticks ${PIDS[$target]})
        timeout "$H2LOAD_LIMIT" h2load "${H2LOAD_TLS[@]}" -D "$DURATION" -c "$CLIENTS" -m "$STREAMS" -t "$THREADS" "$url" > "$raw" 2>&1 \
            && status=0 || status=$?
        # shellcheck disable=SC2086
        after=$(cpu_ticks ${PIDS[$target]})
        read -r rps total ok failed errored tmo s2 s3 s4 s5 < <(awk -f "$HERE/parse-h2load.awk" "$raw")
        cpu=n/a
        if [ "$status" -eq 124 ]; then
            result="h2load killed after ${H2LOAD_LIMIT}s"
        elif [ "$rps" = - ] || [ "$total" = - ]; then
            result="no result (h2load exit $status)"
        elif [ "$total" -eq 0 ] || [ "$ok" -eq 0 ]; then
            result="no requests completed"
        elif [ "$failed" != 0 ] || [ "$errored" != 0 ] || [ "$tmo" != 0 ]; then
            result="FAILURES"
        elif [ "$s3" != 0 ] || [ "$s4" != 0 ] || [ "$s5" != 0 ]; then
            # Not "2xx != succeeded": h2load counts a status when the headers come and a success
            # when the stream ends, so responses at the end of the run make them differ by a few.
            result="NON-2XX (3xx $s3, 4xx $s4, 5xx $s5)"
        else
            result=ok
            cpu=$(ratio $(((after - before) * TICK_US)) "$ok" %.2f)
            CLEAN_RPS[$target]+="$rps "; CLEAN_CPU[$target]+="$cpu "
            CLEAN_ROUNDS[$target]=$((CLEAN_ROUNDS[$target] + 1))
            THIS[$target.rps]=$rps; THIS[$target.cpu]=$cpu
        fi
        kill -0 "${MAIN[$target]}" 2>/dev/null || result="$result; $target exited"
        say "$(printf '%-5s  %-7s  %12s  %10s  %7s  %7s  %7s  %10s  %10s  %s' \
            "$round" "$target" "$rps" "$ok" "$failed" "$errored" "$tmo" "$s2" "$cpu" "$result")"
    done
    if has gateway && [ -n "${THIS[gateway.rps]:-}" ]; then
        for peer in nginx haproxy; do
            [ -n "${THIS[$peer.rps]:-}" ] || continue
            RATIO[$peer.rps]+="$(ratio "${THIS[gateway.rps]}" "${THIS[$peer.rps]}") "
            RATIO[$peer.cpu]+="$(ratio "${THIS[gateway.cpu]}" "${THIS[$peer.cpu]}") "
        done
    fi
    unset THIS
done

say ""
say "medians over clean rounds (no failed, errored or timed-out requests, all 2xx):"
declare -A MEDIAN
for t in "${TARGETS[@]}"; do
    MEDIAN[$t]=$(echo "${CLEAN_RPS[$t]}" | median %.0f)
    say "$(printf '  %-7s  %12s req/s  %8s us CPU/req  (%d of %d rounds clean)' "$t" "${MEDIAN[$t]}" \
        "$(echo "${CLEAN_CPU[$t]}" | median %.2f)" "${CLEAN_ROUNDS[$t]}" "$ROUNDS")"
done
if has gateway && { has nginx || has haproxy; }; then
    say "paired ratios (per round gateway/peer over rounds where both were clean, then the median):"
    for peer in nginx haproxy; do
        has $peer || continue
        say "$(printf '  gateway/%-8s req/s %6s  CPU/req %6s   [per round: req/s %s, CPU/req %s]' "$peer" \
            "$(echo "${RATIO[$peer.rps]:-}" | median %.3f)" "$(echo "${RATIO[$peer.cpu]:-}" | median %.3f)" \
            "$(echo ${RATIO[$peer.rps]:-none})" "$(echo ${RATIO[$peer.cpu]:-none})")"
    done
fi
for t in "${TARGETS[@]}"; do
    tls=$(grep -E '^(TLS Protocol|Cipher|Application protocol):' "$OUT/round1-$t.txt" 2>/dev/null | tr '\n' ' ' | sed 's/ *$//' || true)
    [ -z "$tls" ] || say "  $t: $tls"
done
say "machine: load average after $(cut -d' ' -f1-3 /proc/loadavg)"
for t in "${TARGETS[@]}"; do
    [ "${MEDIAN[$t]}" != n/a ] || die "$t had no clean round; see $OUT"
done
