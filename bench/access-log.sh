#!/usr/bin/env bash
# The access log's cost on the HTTP/1.1 proxy path: two gateways in front of the same origin
# (nginx serving a fixed 13-byte body), one writing a JSON access log to a file, one without,
# driven by wrk in alternating rounds (the order flips every round, so drift in the machine's
# load falls on both alike).
#
#   bench/access-log.sh [rounds] [seconds] [connections] [threads]
#
# Prints one line per run, then the median req/s and p99 of each, and the median of the
# per-round ratios with/without (1.00 = free; 0.95 = 5 % cost). Throughput moves with whatever
# else runs on the machine, so each run also reports the worker process's CPU time per request
# (user + system, all its threads, the log writer's included, from /proc), which contention
# disturbs far less; its paired ratio is the log's cost in CPU. The log's line count is checked
# against wrk's request count, so a log that dropped lines cannot look cheap.
# SCRATCH_PATH picks the release build's directory (default .build); ACCESS_LOG_PATH where the
# log goes (default a file in the bench's temporary directory; /dev/null separates the cost of
# the gateway's own work from the filesystem's); NO_LOG_CONTROL=1 runs the same rounds with no
# access log on either side (an A/A control: how far apart two identical gateways come out). Loopback only; bounded:
# rounds x 2 x seconds.
set -euo pipefail
ROUNDS=${1:-5}
SECS=${2:-5}
CONNS=${3:-50}
THREADS=${4:-1}
cd "$(dirname "$0")/.."
SCRATCH_PATH=${SCRATCH_PATH:-.build}
for tool in nginx wrk curl; do
    command -v $tool >/dev/null || { echo "bench: $tool missing (apt-get install nginx wrk curl)" >&2; exit 1; }
done
swift build -c release --product gateway --scratch-path "$SCRATCH_PATH" >/dev/null
GATEWAY=$(swift build -c release --scratch-path "$SCRATCH_PATH" --show-bin-path)/gateway

WORK=$(mktemp -d /tmp/gateway-bench.XXXXXX)
ORIGIN_PORT=18111; PLAIN_PORT=18112; PLAIN_ADMIN=18113; LOGGED_PORT=18114; LOGGED_ADMIN=18115
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/origin"
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
gateway_config() { # port admin [access_log line]
    printf 'listen: 127.0.0.1:%s\nadmin:\n  listen: 127.0.0.1:%s\nthreads: %s\n%s\ndeployments:\n  - name: origin\n    backends: [127.0.0.1:%s]\n' \
        "$1" "$2" "$THREADS" "${3:-}" "$ORIGIN_PORT"
}
gateway_config $PLAIN_PORT $PLAIN_ADMIN > "$WORK/plain.yaml"
ACCESS_LOG_PATH=${ACCESS_LOG_PATH:-$WORK/access.log}
if [ -n "${NO_LOG_CONTROL:-}" ]; then
    # A/A control: the second gateway has no access log either, so its ratio shows the noise floor.
    gateway_config $LOGGED_PORT $LOGGED_ADMIN > "$WORK/logged.yaml"
else
    gateway_config $LOGGED_PORT $LOGGED_ADMIN "access_log: {path: $ACCESS_LOG_PATH, format: json}" > "$WORK/logged.yaml"
fi

nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" & PIDS+=($!)
"$GATEWAY" run --config "$WORK/plain.yaml" --log-level warning & PIDS+=($!); PLAIN_KEEPER=$!
"$GATEWAY" run --config "$WORK/logged.yaml" --log-level warning & PIDS+=($!); LOGGED_KEEPER=$!
for port in $ORIGIN_PORT $PLAIN_PORT $LOGGED_PORT; do
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
done

# The worker each keeper started (`gateway _worker`), and its CPU time so far in clock ticks.
worker_of() { pgrep -P "$1" -f _worker | head -1; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
PLAIN_WORKER=$(worker_of $PLAIN_KEEPER); LOGGED_WORKER=$(worker_of $LOGGED_KEEPER)
[ -n "$PLAIN_WORKER" ] && [ -n "$LOGGED_WORKER" ] || { echo "bench: no worker process found" >&2; exit 1; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# req/s, p99 (ms) and the request count of one wrk run.
run_wrk() { # port
    wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$1/" | awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 } / requests in / { n = $1 }
        END { printf "%.0f %.3f %d\n", rps, p99, n }'
}

PLAIN_RPS=(); LOGGED_RPS=(); PLAIN_P99=(); LOGGED_P99=(); RATIOS=(); LOGGED_REQUESTS=0
PLAIN_CPU=(); LOGGED_CPU=(); CPU_RATIOS=()
for round in $(seq 1 "$ROUNDS"); do
    order="plain logged"; [ $((round % 2)) -eq 0 ] && order="logged plain"
    for target in $order; do
        port=$PLAIN_PORT; worker=$PLAIN_WORKER
        [ $target = logged ] && { port=$LOGGED_PORT; worker=$LOGGED_WORKER; }
        before=$(cpu_ticks "$worker")
        read -r rps p99 count < <(run_wrk $port)
        after=$(cpu_ticks "$worker")
        cpu=$(awk -v t=$((after - before)) -v us=$TICK_US -v n="$count" 'BEGIN { printf "%.2f", t * us / n }')
        echo "round $round  ${target/plain/without}  req/s=$rps  p99=${p99}ms  requests=$count  worker CPU/request=${cpu}us"
        if [ $target = plain ]; then plain=$rps; plaincpu=$cpu; PLAIN_RPS+=("$rps"); PLAIN_P99+=("$p99"); PLAIN_CPU+=("$cpu")
        else logged=$rps; loggedcpu=$cpu; LOGGED_RPS+=("$rps"); LOGGED_P99+=("$p99"); LOGGED_CPU+=("$cpu"); LOGGED_REQUESTS=$((LOGGED_REQUESTS + count)); fi
    done
    RATIOS+=("$(awk -v a="$logged" -v b="$plain" 'BEGIN { printf "%.4f", a / b }')")
    CPU_RATIOS+=("$(awk -v a="$loggedcpu" -v b="$plaincpu" 'BEGIN { printf "%.4f", a / b }')")
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
# The last batch is written within 50 ms of the last line; wait (bounded) for the count to settle.
lines=0
for _ in $(seq 1 50); do
    [ -f "$ACCESS_LOG_PATH" ] || break
    lines=$(wc -l < "$ACCESS_LOG_PATH")
    [ "$lines" -ge $((LOGGED_REQUESTS + 1)) ] && break
    sleep 0.1
done
echo
echo "medians over $ROUNDS rounds of ${SECS}s, c=$CONNS, $THREADS worker thread(s):"
echo "without access log: $(median "${PLAIN_RPS[@]}") req/s  p99 $(median "${PLAIN_P99[@]}")ms  worker CPU/request $(median "${PLAIN_CPU[@]}")us"
echo "with access log:    $(median "${LOGGED_RPS[@]}") req/s  p99 $(median "${LOGGED_P99[@]}")ms  worker CPU/request $(median "${LOGGED_CPU[@]}")us"
echo "paired throughput ratio with/without (median of per-round ratios): $(median "${RATIOS[@]}")  [${RATIOS[*]}]"
echo "paired CPU/request ratio with/without (median of per-round ratios): $(median "${CPU_RATIOS[@]}")  [${CPU_RATIOS[*]}]"
# wrk's count leaves out requests still in flight when it stops; the warm-up curl adds one line.
if [ -f "$ACCESS_LOG_PATH" ]; then
    echo "access log: $lines lines for $LOGGED_REQUESTS requests wrk completed (+1 warm-up), $(du -h "$ACCESS_LOG_PATH" | cut -f1)"
else
    echo "access log: written to $ACCESS_LOG_PATH (not counted)"
fi
