#!/usr/bin/env bash
# Heap allocations per proxied HTTP/1.1 request (keep-alive, 100-byte body from the same nginx
# origin as proxy-vs-peers.sh): the gateway, with nginx and HAProxy beside it for reference (both
# allocate from pools of their own, so theirs count only the pools' trips to malloc).
#
#   bench/allocations.sh [--rounds 3] [--requests 20000] [--conns "1 10"] [--idle 2]
#                        [--gateway PATH] [--only gateway,nginx,haproxy]
#
# bench/allocations/count-allocs.c, built here with cc, is LD_PRELOADed into each proxy (the
# gateway's keeper, whose worker inherits it; nginx's master, whose worker it follows across
# fork); it counts malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc and
# free per process into a shared file the script reads (its header says why it is not ordo-one's
# malloc-interposer). The script checks that the proxying process (the gateway's worker,
# nginx's worker, HAProxy) has its counter file, warms each target up, and then per round and
# connection count reads the worker's counters, sends exactly --requests GETs over that many
# keep-alive connections (bench/idle-connections/client.py, one request at a time on each) and
# reads them again. Allocations per request = the difference / requests; "net" also takes off
# what the idle process allocated in the same time (measured for --idle seconds just before:
# timers, statistics). Prints per run and the medians.
# Bounded (each client run under `timeout`); loopback only; temporary files (the library and the
# counter files) in a mktemp directory removed at exit; everything started is stopped by PID.
set -euo pipefail
BENCH=allocations

usage() {
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --rounds N       rounds (default 3)
  --requests N     requests per run (default 20000)
  --conns "A B"    keep-alive connections per run (default "1 10")
  --idle S         seconds of idle counting before each target's runs in a round (default 2)
  --gateway PATH   gateway binary (default: build .build-release/release/gateway once;
                   GATEWAY_SCRATCH=DIR builds into DIR instead)
  --only LIST      comma-separated subset of gateway,nginx,haproxy
EOF
}

ROUNDS=3; REQUESTS=20000; CONNS="1 10"; IDLE=2; GATEWAY=""; ONLY=gateway,nginx,haproxy
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "$BENCH: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) need_value "$@"; ROUNDS=$2; shift 2 ;;
        --requests) need_value "$@"; REQUESTS=$2; shift 2 ;;
        --conns) need_value "$@"; CONNS=$2; shift 2 ;;
        --idle) need_value "$@"; IDLE=$2; shift 2 ;;
        --gateway) need_value "$@"; GATEWAY=$2; shift 2 ;;
        --only) need_value "$@"; ONLY=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; echo "$BENCH: unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [ -n "$GATEWAY" ] && [[ $GATEWAY != /* ]]; then GATEWAY=$PWD/$GATEWAY; fi
cd "$(dirname "$0")/.."
. bench/lib/peers.sh
CLIENT=$PWD/bench/idle-connections/client.py

for pair in "rounds:$ROUNDS" "requests:$REQUESTS" "idle:$IDLE"; do
    [[ ${pair#*:} =~ ^[1-9][0-9]*$ ]] || die "--${pair%%:*} must be a positive integer, got '${pair#*:}'"
done
[ -n "${CONNS// /}" ] || die "--conns is empty"
for c in $CONNS; do [[ $c =~ ^[1-9][0-9]*$ ]] && [ "$c" -le 1000 ] && [ "$c" -le "$REQUESTS" ] \
    || die "--conns: '$c' is not a count from 1 to 1000 (and at most --requests)"; done
for t in ${ONLY//,/ }; do case $t in gateway|nginx|haproxy) ;; *) die "--only: unknown target '$t'" ;; esac; done
TARGETS=()
for t in gateway nginx haproxy; do [[ ,$ONLY, == *,$t,* ]] && TARGETS+=("$t"); done
[ ${#TARGETS[@]} -gt 0 ] || die "--only names no target"
has() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }

tools=(cc:gcc curl:curl python3:python3 timeout:coreutils od:coreutils nginx:nginx)
has haproxy && tools+=(haproxy:haproxy)
need_tools "${tools[@]}"
has gateway && GATEWAY=$(gateway_binary "$GATEWAY")

WORK=$(mktemp -d /tmp/allocations.XXXXXX)
trap 'set +e; stop_started; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

LIB=$(build_alloc_counter "$WORK")

read -r ORIGIN_PORT GATEWAY_PORT ADMIN_PORT NGINX_PORT HAPROXY_PORT < <(free_ports 5)
declare -A PORT=([gateway]=$GATEWAY_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT) MAIN PID COUNTS
start_origin "$WORK/origin" "$ORIGIN_PORT"   # not counted: no LD_PRELOAD

for t in "${TARGETS[@]}"; do
    dir=$WORK/$t; mkdir -p "$dir/counts"
    case $t in
    gateway)
        gateway_proxy_conf "$dir/gateway.yaml" 1 "listen: 127.0.0.1:$GATEWAY_PORT"
        ALLOC_COUNT_DIR=$dir/counts LD_PRELOAD=$LIB "$GATEWAY" run --config "$dir/gateway.yaml" --log-level warning > "$dir/out.log" 2>&1 & ;;
    nginx)
        nginx_proxy_conf "$dir" 1 4096 "listen 127.0.0.1:$NGINX_PORT;"
        ALLOC_COUNT_DIR=$dir/counts LD_PRELOAD=$LIB nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" > "$dir/out.log" 2>&1 & ;;
    haproxy)
        haproxy_proxy_conf "$dir" 1 4000 "bind 127.0.0.1:$HAPROXY_PORT"
        ALLOC_COUNT_DIR=$dir/counts LD_PRELOAD=$LIB haproxy -db -f "$dir/haproxy.cfg" > "$dir/out.log" 2>&1 & ;;
    esac
    MAIN[$t]=$!; remember "${MAIN[$t]}"
    log=$dir/out.log; [ "$t" = nginx ] && log=$dir/error.log
    wait_http "$t" "${MAIN[$t]}" "http://127.0.0.1:${PORT[$t]}/" "$log" 20
    PID[$t]=$(proxy_pids "$t" "${MAIN[$t]}" | head -1)
    [ -n "${PID[$t]}" ] || die "no proxying process found for $t (main pid ${MAIN[$t]})"
    COUNTS[$t]=$dir/counts/${PID[$t]}
    [ -s "${COUNTS[$t]}" ] || die "$t: its proxying process ${PID[$t]} has no counter file (${COUNTS[$t]}): LD_PRELOAD did not reach it; files there: $(ls "$dir/counts" | tr '\n' ' ')"
done

now() { date +%s.%N; }

echo "$BENCH  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $(nginx -v 2>&1 | sed 's/.*: //')$(has haproxy && echo "; $(haproxy -v | head -1 | cut -d' ' -f1-3)")$(has gateway && echo "; gateway $("$GATEWAY" --version 2>&1 | head -1) ($GATEWAY)")"
for t in "${TARGETS[@]}"; do echo "  $t: port ${PORT[$t]}, counting pid ${PID[$t]} (main ${MAIN[$t]}); at start: $(alloc_counters "${COUNTS[$t]}" | cut -d' ' -f1) allocations"; done
echo "load: $REQUESTS GETs per run, keep-alive, one at a time per connection, connections {$CONNS}; $ROUNDS rounds; idle baseline ${IDLE}s"
for t in "${TARGETS[@]}"; do   # warm-up: pools, caches, upstream connections
    timeout 120 python3 "$CLIENT" warm --port "${PORT[$t]}" --requests 2000 --conns 10 > "$WORK/warm.txt" 2>&1 \
        || die "$t: warm-up failed: $(tail -n 3 "$WORK/warm.txt")"
done
echo
printf '%-5s %-8s %5s %9s %10s %9s %10s %9s  %s\n' round target conns requests 'allocs/req' 'net/req' 'frees/req' 'bytes/req' \
    'per request: malloc calloc realloc aligned; idle allocations/s'

declare -A ALLOC NET
for round in $(seq 1 "$ROUNDS"); do
    order=()
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do order+=("${TARGETS[$(((i + round - 1) % ${#TARGETS[@]}))]}"); done
    for t in "${order[@]}"; do
        kill -0 "${PID[$t]}" 2>/dev/null || die "$t (pid ${PID[$t]}) has exited"
        read -r a0 _ < <(alloc_counters "${COUNTS[$t]}"); t0=$(now)
        sleep "$IDLE"
        read -r a1 _ < <(alloc_counters "${COUNTS[$t]}"); t1=$(now)
        idle_rate=$(awk -v a=$((a1 - a0)) -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", a / (e - s) }')
        for conns in $CONNS; do
            read -r a0 f0 b0 m0 c0 r0 al0 < <(alloc_counters "${COUNTS[$t]}"); t0=$(now)
            timeout 300 python3 "$CLIENT" warm --port "${PORT[$t]}" --requests "$REQUESTS" --conns "$conns" > "$WORK/run.txt" 2>&1 \
                || die "$t: load failed: $(tail -n 3 "$WORK/run.txt")"
            read -r a1 f1 b1 m1 c1 r1 al1 < <(alloc_counters "${COUNTS[$t]}"); t1=$(now)
            grep -q ", 0 not 200" "$WORK/run.txt" || die "$t: not every response was a 200: $(cat "$WORK/run.txt")"
            per() { ratio "$1" "$REQUESTS" "${2:-%.2f}"; }
            net=$(awk -v a=$((a1 - a0)) -v r="$idle_rate" -v s="$t0" -v e="$t1" -v n="$REQUESTS" \
                'BEGIN { printf "%.2f", (a - r * (e - s)) / n }')
            printf '%-5s %-8s %5s %9s %10s %9s %10s %9s  %s %s %s %s; %s\n' "$round" "$t" "$conns" "$REQUESTS" \
                "$(per $((a1 - a0)))" "$net" "$(per $((f1 - f0)))" "$(per $((b1 - b0)) %.0f)" \
                "$(per $((m1 - m0)))" "$(per $((c1 - c0)))" "$(per $((r1 - r0)))" "$(per $((al1 - al0)))" "$idle_rate"
            ALLOC[$t.$conns]+="$(per $((a1 - a0))) "; NET[$t.$conns]+="$net "
        done
    done
done

echo
echo "medians over $ROUNDS rounds (heap allocation calls per proxied request, in the proxying process):"
for conns in $CONNS; do
    for t in "${TARGETS[@]}"; do
        printf '  %-8s c=%-4s %8s allocations/request  (net of idle: %s)\n' "$t" "$conns" \
            "$(echo "${ALLOC[$t.$conns]}" | median %.2f)" "$(echo "${NET[$t.$conns]}" | median %.2f)"
    done
done
echo "nginx and HAProxy serve requests from memory pools of their own; their figures count only"
echo "the pools' calls to malloc, not the work the pools do."
