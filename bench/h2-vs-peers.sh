#!/usr/bin/env bash
# HTTP/2 throughput: gateway vs nginx, both in front of the same origin (the gateway's own
# demo-backend, HTTP/1.1), on the same self-signed certificate, with the same number of workers,
# driven by h2load in alternating rounds in one run.
#
#   bench/h2-vs-nginx.sh [--gateway PATH] [--rounds 5] [--duration 10] [--clients 32]
#                        [--streams 10] [--workers 1] [--threads 1] [--path /]
#                        [--h2c] [--only gateway|nginx]
#
# Prints one line per round and target, then the medians over the clean rounds and the ratio
# gateway/nginx. Raw h2load outputs, configs and server logs go to bench/out/h2-vs-nginx-<time>-<mode>.XXXX/.
# Bounded: rounds x targets x (1 s warm-up + duration), each h2load under `timeout`; every
# readiness wait is a bounded poll. Loopback only. Everything started is stopped at exit by PID.
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --gateway PATH   gateway binary (default .build/release/gateway, built if missing)
  --rounds N       rounds; each runs both targets, alternating which goes first (default 5)
  --duration S     measured seconds per run, h2load -D, after 1 s of warm-up (default 10)
  --clients N      h2load -c: connections (default 32)
  --streams N      h2load -m: concurrent streams per connection (default 10)
  --workers N      gateway threads and nginx worker_processes (default 1)
  --threads N      h2load -t (default 1)
  --path P         request path (default /)
  --h2c            cleartext HTTP/2 with prior knowledge instead of TLS
  --only T         run only one target: gateway or nginx
EOF
}

GATEWAY=""
ROUNDS=5
DURATION=10
CLIENTS=32
STREAMS=10
WORKERS=1
THREADS=1
REQ_PATH=/
MODE=tls
ONLY=both

die() { echo "h2-vs-nginx: $*" >&2; exit 1; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }
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
        --only) need_value "$@"; ONLY=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
for pair in "rounds:$ROUNDS" "duration:$DURATION" "clients:$CLIENTS" "streams:$STREAMS" \
    "workers:$WORKERS" "threads:$THREADS"; do
    [[ ${pair#*:} =~ ^[1-9][0-9]*$ ]] || die "--${pair%%:*} must be a positive integer, got '${pair#*:}'"
done
[ "$THREADS" -le "$CLIENTS" ] || die "--threads ($THREADS) must not exceed --clients ($CLIENTS)"
[[ $REQ_PATH == /* ]] || die "--path must start with /, got '$REQ_PATH'"
case "$ONLY" in both|gateway|nginx) ;; *) die "--only must be gateway or nginx, got '$ONLY'" ;; esac
TARGETS=()
[ "$ONLY" = nginx ] || TARGETS+=(gateway)
[ "$ONLY" = gateway ] || TARGETS+=(nginx)

# A --gateway path is taken relative to where the script was started, not the repository.
if [ -n "$GATEWAY" ] && [[ $GATEWAY != /* ]]; then GATEWAY=$PWD/$GATEWAY; fi
cd "$(dirname "$0")/.."
HERE=$PWD/bench/h2-vs-peers

for tool in h2load curl openssl python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool missing (apt-get install nghttp2-client curl openssl python3 coreutils)"
done
if [ "$ONLY" != gateway ]; then
    command -v nginx >/dev/null || die "nginx missing (apt-get install nginx)"
fi

# The origin is the gateway's demo-backend, so the binary is needed even with --only nginx.
if [ -z "$GATEWAY" ]; then
    GATEWAY=.build/release/gateway
    if [ ! -x "$GATEWAY" ]; then
        echo "h2-vs-nginx: building the gateway (swift build -c release --product gateway)" >&2
        swift build -c release --product gateway >&2
    fi
fi
[ -x "$GATEWAY" ] || die "gateway binary not found or not executable: $GATEWAY"
GATEWAY=$(cd "$(dirname "$GATEWAY")" && pwd)/$(basename "$GATEWAY")

mkdir -p bench/out
OUT=$(mktemp -d "$PWD/bench/out/h2-vs-nginx-$(date +%Y%m%d-%H%M%S)-$MODE.XXXX")
WORK=$(mktemp -d /tmp/h2-vs-nginx.XXXXXX)
SUMMARY=$OUT/summary.txt

ORIGIN_PID=""
NGINX_PID=""
GATEWAY_PID=""
# Stop one process we started: SIGTERM, a bounded wait, then SIGKILL.
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$GATEWAY_PID"
    stop_pid "$NGINX_PID"
    stop_pid "$ORIGIN_PID"
    # Keep what explains the run; the key material stays behind in $WORK and goes with it.
    cp "$WORK"/*.conf "$WORK"/*.yaml "$OUT"/ 2>/dev/null || true
    [ -f "$WORK/nginx/error.log" ] && cp "$WORK/nginx/error.log" "$OUT/nginx-error.log"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "$*" | tee -a "$SUMMARY"; }

# Four distinct free loopback ports (all bound at once, so none is handed out twice).
free_ports() {
    python3 -c 'import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))'
}

# probe URL -> "CODE VERSION" (e.g. "200 2"); "000 0" when nothing answered.
probe() {
    local opts=(-s -o /dev/null --max-time 2 -w '%{http_code} %{http_version}')
    if [ "$MODE" = h2c ]; then opts+=(--http2-prior-knowledge); else opts+=(-k --http2); fi
    curl "${opts[@]}" "$1" 2>/dev/null || true
}

# wait_ready NAME PID URL LOG: poll until the URL answers 200 over HTTP/2 (at most 10 s).
wait_ready() {
    local name=$1 pid=$2 url=$3 log=$4 answer=""
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "h2-vs-nginx: $name exited before it was ready; last lines of $log:" >&2
            tail -n 20 "$log" >&2 || true
            return 1
        fi
        answer=$(probe "$url")
        [ "$answer" = "200 2" ] && return 0
        sleep 0.1
    done
    echo "h2-vs-nginx: $name not ready at $url after 10 s (last answer: code and HTTP version '$answer'; want '200 2'); last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    return 1
}

read -r ORIGIN_PORT NGINX_PORT GATEWAY_PORT ADMIN_PORT < <(free_ports)
SCHEME=https; [ "$MODE" = h2c ] && SCHEME=http

# One certificate for both: EC P-256, CN localhost, valid two days.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 \
    || die "openssl could not make a certificate"

# --- origin ---------------------------------------------------------------------------------
"$GATEWAY" demo-backend --port "$ORIGIN_PORT" --name origin >"$OUT/origin.log" 2>&1 &
ORIGIN_PID=$!
for _ in $(seq 1 100); do
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$ORIGIN_PORT/" && break
    kill -0 "$ORIGIN_PID" 2>/dev/null || { tail -n 20 "$OUT/origin.log" >&2; die "origin exited"; }
    sleep 0.1
done
curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$ORIGIN_PORT$REQ_PATH" \
    || die "origin does not answer $REQ_PATH with 2xx (http://127.0.0.1:$ORIGIN_PORT$REQ_PATH)"

# --- nginx ----------------------------------------------------------------------------------
if [ "$ONLY" != gateway ]; then
    mkdir -p "$WORK/nginx/logs"
    if [ "$MODE" = h2c ]; then
        LISTEN="listen 127.0.0.1:$NGINX_PORT http2;"
        TLS_LINES=""
    else
        LISTEN="listen 127.0.0.1:$NGINX_PORT ssl http2;"
        TLS_LINES="ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    # keepalive_requests: nginx ends an HTTP/2 connection with GOAWAY after that many streams
    # (default 1000) and h2load does not reconnect, so the default would stop every client a
    # fraction of a second into the run. The temp paths keep nginx inside $WORK.
    cat >"$WORK/nginx.conf" <<CONF
worker_processes $WORKERS;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    # The same idle-connection budget as the gateway's upstream pool (256 per backend), and no
    # cap on requests per upstream connection (the gateway has none), so neither proxy pays
    # for new origin connections the other does not.
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        $LISTEN
        $TLS_LINES
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
    nginx -p "$WORK/nginx" -c "$WORK/nginx.conf" -e "$WORK/nginx/error.log" >"$OUT/nginx.log" 2>&1 &
    NGINX_PID=$!
    wait_ready nginx "$NGINX_PID" "$SCHEME://127.0.0.1:$NGINX_PORT$REQ_PATH" "$WORK/nginx/error.log" \
        || die "nginx did not come up"
fi

# --- gateway --------------------------------------------------------------------------------
if [ "$ONLY" != nginx ]; then
    if [ "$MODE" = h2c ]; then
        LISTENER="    protocols: [http1, h2c]"
    else
        LISTENER="    tls: {cert: $WORK/cert.pem, key: $WORK/key.pem}"
    fi
    cat >"$WORK/gateway.yaml" <<CONF
threads: $WORKERS
admin: {listen: 127.0.0.1:$ADMIN_PORT}
listeners:
  - listen: 127.0.0.1:$GATEWAY_PORT
$LISTENER
deployments:
  - name: origin
    backends: [127.0.0.1:$ORIGIN_PORT]
CONF
    "$GATEWAY" run --config "$WORK/gateway.yaml" --log-level warning >"$OUT/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    wait_ready gateway "$GATEWAY_PID" "$SCHEME://127.0.0.1:$GATEWAY_PORT$REQ_PATH" "$OUT/gateway.log" \
        || die "the gateway did not come up over HTTP/2 ($MODE); nginx alone: --only nginx"
fi

# --- rounds ---------------------------------------------------------------------------------
pid_of() { if [ "$1" = gateway ]; then echo "$GATEWAY_PID"; else echo "$NGINX_PID"; fi; }
port_of() { if [ "$1" = gateway ]; then echo "$GATEWAY_PORT"; else echo "$NGINX_PORT"; fi; }

version_line() { "$@" 2>&1 | tr '\n' ' ' | sed 's/ *$//'; }
say "h2-vs-nginx  $(date -u +%Y-%m-%dT%H:%M:%SZ)  mode=$MODE  path=$REQ_PATH"
say "machine: nproc $(nproc), load average before $(cut -d' ' -f1-3 /proc/loadavg)"
say "h2load: $(version_line h2load --version)"
[ "$ONLY" = gateway ] || say "nginx: $(version_line nginx -v)"
say "gateway: $(version_line "$GATEWAY" version)  ($GATEWAY)"
say "load: h2load -D $DURATION --warm-up-time 1 -c $CLIENTS -m $STREAMS -t $THREADS; workers $WORKERS; rounds $ROUNDS"
say "raw output: $OUT"
say ""
say "$(printf '%-5s  %-7s  %12s  %10s  %7s  %7s  %7s  %10s  %s' round target 'req/s' succeeded failed errored timeout 2xx result)"

declare -A CLEAN_RPS=([gateway]="" [nginx]="")
declare -A CLEAN_ROUNDS=([gateway]=0 [nginx]=0)
H2LOAD_LIMIT=$((DURATION + 1 + 30))
for round in $(seq 1 "$ROUNDS"); do
    order=("${TARGETS[@]}")
    if [ ${#TARGETS[@]} -eq 2 ] && [ $((round % 2)) -eq 0 ]; then order=("${TARGETS[1]}" "${TARGETS[0]}"); fi
    for target in "${order[@]}"; do
        raw="$OUT/round$round-$target.txt"
        pid=$(pid_of "$target")
        if ! kill -0 "$pid" 2>/dev/null; then
            say "$(printf '%-5s  %-7s  %s' "$round" "$target" "not run: $target has exited (see its log in $OUT)")"
            continue
        fi
        timeout "$H2LOAD_LIMIT" h2load -D "$DURATION" --warm-up-time 1 -c "$CLIENTS" -m "$STREAMS" \
            -t "$THREADS" "$SCHEME://127.0.0.1:$(port_of "$target")$REQ_PATH" >"$raw" 2>&1 \
            && status=0 || status=$?
        read -r rps total ok failed errored tmo s2 s3 s4 s5 < <(awk -f "$HERE/parse-h2load.awk" "$raw")
        if [ "$status" -eq 124 ]; then
            result="h2load killed after ${H2LOAD_LIMIT}s"
        elif [ "$rps" = - ] || [ "$total" = - ]; then
            result="no result (h2load exit $status)"
        elif [ "$total" -eq 0 ]; then
            result="no requests completed"
        elif [ "$failed" != 0 ] || [ "$errored" != 0 ] || [ "$tmo" != 0 ]; then
            result="FAILURES"
        elif [ "$s3" != 0 ] || [ "$s4" != 0 ] || [ "$s5" != 0 ]; then
            # Not "2xx != succeeded": h2load counts a status when the headers come and a success
            # when the stream ends, so responses across the warm-up edge make them differ by a few.
            result="NON-2XX (3xx $s3, 4xx $s4, 5xx $s5)"
        else
            result=ok
            CLEAN_RPS[$target]+="$rps "
            CLEAN_ROUNDS[$target]=$((CLEAN_ROUNDS[$target] + 1))
        fi
        kill -0 "$pid" 2>/dev/null || result="$result; $target exited"
        say "$(printf '%-5s  %-7s  %12s  %10s  %7s  %7s  %7s  %10s  %s' \
            "$round" "$target" "$rps" "$ok" "$failed" "$errored" "$tmo" "$s2" "$result")"
    done
done

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END {
    if (NR == 0) print "n/a"; else if (NR % 2) printf "%.2f\n", a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
say ""
say "medians over clean rounds (no failed, errored or timed-out requests, all 2xx):"
declare -A MEDIAN
for target in "${TARGETS[@]}"; do
    MEDIAN[$target]=$(echo "${CLEAN_RPS[$target]}" | median)
    say "$(printf '  %-7s  %12s req/s  (%d of %d rounds clean)' "$target" "${MEDIAN[$target]}" "${CLEAN_ROUNDS[$target]}" "$ROUNDS")"
done
if [ ${#TARGETS[@]} -eq 2 ]; then
    if [ "${MEDIAN[gateway]}" != n/a ] && [ "${MEDIAN[nginx]}" != n/a ]; then
        say "ratio gateway/nginx: $(awk -v g="${MEDIAN[gateway]}" -v n="${MEDIAN[nginx]}" 'BEGIN { printf "%.2f", g / n }')"
    else
        say "ratio gateway/nginx: n/a (a target has no clean round)"
    fi
fi
say "machine: load average after $(cut -d' ' -f1-3 /proc/loadavg)"
for target in "${TARGETS[@]}"; do
    [ "${MEDIAN[$target]}" != n/a ] || die "$target had no clean round; see $OUT"
done
