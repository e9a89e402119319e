#!/usr/bin/env bash
# HTTP/1.1 proxy throughput, latency and CPU per request: the gateway beside nginx and HAProxy,
# one worker each (gateway `threads: 1`, nginx `worker_processes 1`, HAProxy `nbthread 1`), all
# in front of the same origin (one nginx worker answering every request with a fixed 100-byte
# body), driven by wrk -t1 with keep-alive connections, side by side in one run.
#
#   bench/proxy-vs-peers.sh [--rounds 5] [--duration 10] [--warmup 1] [--conns "50 200"]
#                           [--gateway PATH] [--only gateway,nginx,haproxy] [--floor] [--perf]
#
# Every round runs every target at every connection count; the targets' order rotates by one
# each round, so drift in a shared machine's load falls on all alike. Per run it prints req/s,
# p50 and p99 (wrk --latency), errors, and the proxy's CPU time per request: user + system of the
# proxying process (the gateway's worker, nginx's worker, HAProxy itself; all threads) from
# /proc/PID/stat before and after the run, divided by the requests wrk reports, in all and split
# into user and system time (the proxy's own code, and the kernel's work for it). The gateway's
# keeper (with its `_watchdog` child) is reported separately when it used any CPU. At the end,
# per connection count: the medians of each target, and the medians of the per-round paired
# ratios gateway/nginx and gateway/haproxy for req/s and CPU per request (on a noisy machine
# the paired ratios and CPU per request are the figures to quote, not single runs).
# --floor adds the target `floor`: bench/NIOFloor, a SwiftNIO proxy that only copies bytes
# between a client connection and its own origin connection (no parsing, routing or limits), on
# one event loop, built with the gateway's release settings: the CPU per request that NIO alone
# costs, so the gateway's figures can be read against what any proxy on NIO must spend; its
# paired ratios against nginx are printed too.
# --perf adds one extra run per target (at the first connection count) under
# `perf stat -e instructions -p PID` and prints instructions per request.
#
# Bounded: rounds x targets x connection counts x (warm-up + duration), each wrk under
# `timeout`; readiness waits are bounded polls. Loopback only. Temporary files in a mktemp
# directory removed at exit; everything started is stopped at exit by PID.
set -euo pipefail
BENCH=proxy-vs-peers

usage() {
    sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --rounds N       rounds (default 5)
  --duration S     measured seconds per run (default 10)
  --warmup S       unmeasured seconds of the same load before each run, 0 = none (default 1)
  --conns "A B"    wrk connection counts (default "50 200")
  --gateway PATH   gateway binary (default: build .build-release/release/gateway once;
                   GATEWAY_SCRATCH=DIR builds into DIR instead)
  --workers N      gateway threads, nginx worker_processes, HAProxy nbthread (default 1)
  --only LIST      comma-separated subset of gateway,nginx,haproxy,floor
  --floor          add the NIO floor (bench/NIOFloor) as a fourth target
  --perf           also count instructions per request with perf stat (one extra run each)
EOF
}

ROUNDS=5; DURATION=10; WARMUP=1; CONNS="50 200"; GATEWAY=""; WORKERS=1; ONLY=gateway,nginx,haproxy; PERF=0
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "$BENCH: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) need_value "$@"; ROUNDS=$2; shift 2 ;;
        --duration) need_value "$@"; DURATION=$2; shift 2 ;;
        --warmup) need_value "$@"; WARMUP=$2; shift 2 ;;
        --conns) need_value "$@"; CONNS=$2; shift 2 ;;
        --gateway) need_value "$@"; GATEWAY=$2; shift 2 ;;
        --workers) need_value "$@"; WORKERS=$2; shift 2 ;;
        --only) need_value "$@"; ONLY=$2; shift 2 ;;
        --floor) ONLY=$ONLY,floor; shift ;;
        --perf) PERF=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; echo "$BENCH: unknown argument: $1" >&2; exit 2 ;;
    esac
done
# A --gateway path is taken relative to where the script was started, not the repository.
if [ -n "$GATEWAY" ] && [[ $GATEWAY != /* ]]; then GATEWAY=$PWD/$GATEWAY; fi
cd "$(dirname "$0")/.."
. bench/lib/peers.sh

for pair in "rounds:$ROUNDS" "duration:$DURATION" "workers:$WORKERS"; do
    [[ ${pair#*:} =~ ^[1-9][0-9]*$ ]] || die "--${pair%%:*} must be a positive integer, got '${pair#*:}'"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "--warmup must be a whole number of seconds, got '$WARMUP'"
for c in $CONNS; do [[ $c =~ ^[1-9][0-9]*$ ]] && [ "$c" -le 10000 ] || die "--conns: '$c' is not a count from 1 to 10000"; done
[ -n "${CONNS// /}" ] || die "--conns is empty"
TARGETS=()
for t in gateway nginx haproxy floor; do [[ ,$ONLY, == *,$t,* ]] && TARGETS+=("$t"); done
for t in ${ONLY//,/ }; do case $t in gateway|nginx|haproxy|floor) ;; *) die "--only: unknown target '$t'" ;; esac; done
[ ${#TARGETS[@]} -gt 0 ] || die "--only names no target"
has() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }

tools=(wrk:wrk curl:curl python3:python3 timeout:coreutils nginx:nginx)
has haproxy && tools+=(haproxy:haproxy)
[ $PERF = 1 ] && tools+=(perf:linux-perf)
need_tools "${tools[@]}"
has gateway && GATEWAY=$(gateway_binary "$GATEWAY")
if has floor; then
    FLOOR_SCRATCH=${GATEWAY_SCRATCH:-$PWD/.build-release}
    echo "$BENCH: building the NIO floor (swift build -c release --scratch-path $FLOOR_SCRATCH --product nio-floor)" >&2
    swift build -c release --scratch-path "$FLOOR_SCRATCH" --product nio-floor >&2 || die "nio-floor did not build"
    FLOOR=$FLOOR_SCRATCH/release/nio-floor
fi

WORK=$(mktemp -d /tmp/proxy-vs-peers.XXXXXX)
trap 'set +e; stop_started; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r ORIGIN_PORT GATEWAY_PORT ADMIN_PORT NGINX_PORT HAPROXY_PORT FLOOR_PORT < <(free_ports 6)
start_origin "$WORK/origin" "$ORIGIN_PORT"

declare -A PORT MAIN
PORT=([gateway]=$GATEWAY_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT [floor]=$FLOOR_PORT)
if has nginx; then
    mkdir -p "$WORK/nginx"
    nginx_proxy_conf "$WORK/nginx" "$WORKERS" 4096 "listen 127.0.0.1:$NGINX_PORT backlog=4096;"
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" > "$WORK/nginx/out.log" 2>&1 &
    MAIN[nginx]=$!; remember $!
    wait_http nginx "${MAIN[nginx]}" "http://127.0.0.1:$NGINX_PORT/" "$WORK/nginx/error.log"
fi
if has haproxy; then
    mkdir -p "$WORK/haproxy"
    # -db keeps it in the foreground as one process (no master), our child. No log lines.
    haproxy_proxy_conf "$WORK/haproxy" "$WORKERS" 8000 "bind 127.0.0.1:$HAPROXY_PORT"
    haproxy -db -f "$WORK/haproxy/haproxy.cfg" > "$WORK/haproxy/out.log" 2>&1 &
    MAIN[haproxy]=$!; remember $!
    wait_http haproxy "${MAIN[haproxy]}" "http://127.0.0.1:$HAPROXY_PORT/" "$WORK/haproxy/out.log"
fi
if has floor; then
    "$FLOOR" "$FLOOR_PORT" "$ORIGIN_PORT" > "$WORK/floor.log" 2>&1 &
    MAIN[floor]=$!; remember $!
    wait_http floor "${MAIN[floor]}" "http://127.0.0.1:$FLOOR_PORT/" "$WORK/floor.log"
fi
if has gateway; then
    gateway_proxy_conf "$WORK/gateway.yaml" "$WORKERS" "listen: 127.0.0.1:$GATEWAY_PORT"
    "$GATEWAY" run --config "$WORK/gateway.yaml" --log-level warning > "$WORK/gateway.log" 2>&1 &
    MAIN[gateway]=$!; remember $!
    wait_http gateway "${MAIN[gateway]}" "http://127.0.0.1:$GATEWAY_PORT/" "$WORK/gateway.log"
fi
declare -A PIDS
SUPERVISORS=""; has gateway && SUPERVISORS=$(gateway_supervisors "${MAIN[gateway]}" | tr '\n' ' ')
for t in "${TARGETS[@]}"; do
    PIDS[$t]=$(proxy_pids "$t" "${MAIN[$t]}" | tr '\n' ' ')
    [ -n "${PIDS[$t]// /}" ] || die "no proxying process found for $t (main pid ${MAIN[$t]})"
    size=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:${PORT[$t]}/")
    [ "$size" = 100 ] || die "$t answers with $size bytes, not the origin's 100"
done

# run_wrk PORT CONNS SECONDS FILE: wrk's output into FILE (in the foreground).
run_wrk() { timeout $(($3 + 30)) wrk -t1 -c"$2" -d"${3}s" --latency "http://127.0.0.1:$1/" > "$4" 2>&1 || true; }
# parse_wrk FILE: "rps p50 p99 requests errors" (latencies in ms; errors = socket errors +
# non-2xx/3xx responses).
parse_wrk() {
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
        /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
        / requests in / { n = $1 }
        /^ +Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        /^ +Non-2xx or 3xx responses:/ { err += $NF }
        END { if (n == "") print "n/a n/a n/a 0 0"; else printf "%.0f %.3f %.3f %d %d\n", rps, p50, p99, n, err }' "$1"
}

echo "$BENCH  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); $(nginx -v 2>&1 | sed 's/.*: //')$(has haproxy && echo "; $(haproxy -v | head -1 | cut -d' ' -f1-3)")$(has gateway && echo "; gateway $("$GATEWAY" --version 2>&1 | head -1) ($GATEWAY)")"
echo "load: wrk -t1 -c{$CONNS} -d$DURATION (after ${WARMUP}s warm-up), $ROUNDS rounds, $WORKERS worker(s) each; origin: nginx, 1 worker, 100-byte body"
for t in "${TARGETS[@]}"; do echo "  $t: port ${PORT[$t]}, proxying pid(s) ${PIDS[$t]}(main ${MAIN[$t]})"; done
has gateway && echo "  gateway keeper and its other children (CPU reported apart): $SUPERVISORS"
echo
printf '%-5s %-8s %5s %9s %9s %9s %9s %6s %10s %11s  %s\n' round target conns 'req/s' 'p50 ms' 'p99 ms' requests errors 'CPU us/req' 'user/sys us' note

declare -A R   # R[target.conns.metric]="v v v"; R[ratio.conns.peer.metric]
KEEPER_TICKS=0; KEEPER_REQUESTS=0
for round in $(seq 1 "$ROUNDS"); do
    order=()
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do order+=("${TARGETS[$(((i + round - 1) % ${#TARGETS[@]}))]}"); done
    for conns in $CONNS; do
        declare -A THIS=()
        for t in "${order[@]}"; do
            kill -0 "${MAIN[$t]}" 2>/dev/null || die "$t (pid ${MAIN[$t]}) has exited"
            [ "$WARMUP" -gt 0 ] && run_wrk "${PORT[$t]}" "$conns" "$WARMUP" "$WORK/warm.txt"
            # shellcheck disable=SC2086
            read -r ubefore sbefore < <(cpu_split ${PIDS[$t]})
            # shellcheck disable=SC2086
            kbefore=0; [ "$t" = gateway ] && kbefore=$(cpu_ticks $SUPERVISORS)
            run_wrk "${PORT[$t]}" "$conns" "$DURATION" "$WORK/wrk.txt"
            # shellcheck disable=SC2086
            read -r uafter safter < <(cpu_split ${PIDS[$t]})
            read -r rps p50 p99 n err < <(parse_wrk "$WORK/wrk.txt")
            note=""
            if [ "$t" = gateway ]; then
                # shellcheck disable=SC2086
                kt=$(($(cpu_ticks $SUPERVISORS) - kbefore))
                KEEPER_TICKS=$((KEEPER_TICKS + kt)); KEEPER_REQUESTS=$((KEEPER_REQUESTS + n))
                [ "$kt" -gt 0 ] && note="keeper+watchdog $((kt * TICK_US)) us"
            fi
            cpu=$(ratio $(((uafter - ubefore + safter - sbefore) * TICK_US)) "$n" %.2f)
            ucpu=$(ratio $(((uafter - ubefore) * TICK_US)) "$n" %.1f)
            scpu=$(ratio $(((safter - sbefore) * TICK_US)) "$n" %.1f)
            [ "$n" -gt 0 ] || note="$note no requests (wrk output: $(tr '\n' ' ' < "$WORK/wrk.txt" | cut -c1-200))"
            printf '%-5s %-8s %5s %9s %9s %9s %9s %6s %10s %11s  %s\n' "$round" "$t" "$conns" "$rps" "$p50" "$p99" "$n" "$err" "$cpu" "$ucpu/$scpu" "$note"
            R[$t.$conns.rps]+="$rps "; R[$t.$conns.p50]+="$p50 "; R[$t.$conns.p99]+="$p99 "; R[$t.$conns.cpu]+="$cpu "
            R[$t.$conns.ucpu]+="$ucpu "; R[$t.$conns.scpu]+="$scpu "
            THIS[$t.rps]=$rps; THIS[$t.cpu]=$cpu
        done
        for pair in gateway/nginx gateway/haproxy floor/nginx gateway/floor; do
            has "${pair%/*}" && has "${pair#*/}" || continue
            R[ratio.$conns.$pair.rps]+="$(ratio "${THIS[${pair%/*}.rps]}" "${THIS[${pair#*/}.rps]}") "
            R[ratio.$conns.$pair.cpu]+="$(ratio "${THIS[${pair%/*}.cpu]}" "${THIS[${pair#*/}.cpu]}") "
        done
        unset THIS
    done
done

echo
echo "medians over $ROUNDS rounds of ${DURATION}s:"
printf '%-8s %5s %9s %9s %9s %10s %11s\n' target conns 'req/s' 'p50 ms' 'p99 ms' 'CPU us/req' 'user/sys us'
for conns in $CONNS; do
    for t in "${TARGETS[@]}"; do
        printf '%-8s %5s %9s %9s %9s %10s %11s\n' "$t" "$conns" "$(echo "${R[$t.$conns.rps]}" | median %.0f)" \
            "$(echo "${R[$t.$conns.p50]}" | median %.3f)" "$(echo "${R[$t.$conns.p99]}" | median %.3f)" "$(echo "${R[$t.$conns.cpu]}" | median %.2f)" \
            "$(echo "${R[$t.$conns.ucpu]}" | median %.1f)/$(echo "${R[$t.$conns.scpu]}" | median %.1f)"
    done
done
if [ ${#TARGETS[@]} -gt 1 ]; then
    echo
    echo "paired ratios (per round A/B, then the median; req/s > 1 and CPU/req < 1 favour A):"
    for conns in $CONNS; do
        for pair in gateway/nginx gateway/haproxy floor/nginx gateway/floor; do
            has "${pair%/*}" && has "${pair#*/}" || continue
            printf 'c=%-5s %-16s req/s %6s  CPU/req %6s   [per round: req/s %s, CPU/req %s]\n' "$conns" "$pair" \
                "$(echo "${R[ratio.$conns.$pair.rps]}" | median %.3f)" "$(echo "${R[ratio.$conns.$pair.cpu]}" | median %.3f)" \
                "${R[ratio.$conns.$pair.rps]% }" "${R[ratio.$conns.$pair.cpu]% }"
        done
    done
fi
if has gateway; then
    [ "$KEEPER_TICKS" -gt 0 ] && echo "gateway keeper and watchdog: $((KEEPER_TICKS * TICK_US)) us of CPU over all gateway runs, $(ratio $((KEEPER_TICKS * TICK_US)) "$KEEPER_REQUESTS" %.3f) us per request (not in the worker's figures)"
fi

if [ $PERF = 1 ]; then
    conns=${CONNS%% *}; conns=${conns:-50}
    echo
    echo "instructions per request (perf stat -e instructions -p PID, one extra ${DURATION}s run each at c=$conns, after the warm-up):"
    for t in "${TARGETS[@]}"; do
        [ "$WARMUP" -gt 0 ] && run_wrk "${PORT[$t]}" "$conns" "$WARMUP" "$WORK/warm.txt"
        pids=$(echo ${PIDS[$t]} | tr ' ' ',')
        timeout $((DURATION + 30)) perf stat -x, -e instructions -p "$pids" -o "$WORK/perf.txt" -- sleep "$((DURATION + 1))" > "$WORK/perf.out" 2>&1 &
        perf_pid=$!; remember $perf_pid
        sleep 0.5
        run_wrk "${PORT[$t]}" "$conns" "$DURATION" "$WORK/wrk.txt"
        read -r rps _ _ n _ < <(parse_wrk "$WORK/wrk.txt")
        wait "$perf_pid" 2>/dev/null && status=0 || status=$?
        stop_pid "$perf_pid"
        # The counting window is 0.5 s + the run + up to 0.5 s; an idle proxy executes next to nothing then.
        ins=$(awk -F, '$3 ~ /^instructions/ { print $1 }' "$WORK/perf.txt" 2>/dev/null | head -1)
        if [[ $ins =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ]; then
            printf '  %-8s %s instructions / %s requests = %s per request (%s req/s)\n' "$t" "$ins" "$n" "$(ratio "$ins" "$n" %.0f)" "$rps"
        else
            said=$(cat "$WORK/perf.txt" "$WORK/perf.out" 2>/dev/null | grep -v '^#' | awk 'NF' | head -3 | tr '\n' ' ')
            why="perf may not be permitted here (kernel.perf_event_paranoid $(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null), a container's seccomp)"
            [[ $said == *"<not supported>"* ]] && why="the kernel offers no instructions counter (no hardware PMU, as in many VMs)"
            echo "  $t: no instruction count: $why; perf said: $said(exit $status); going on"
        fi
    done
fi
echo
echo "machine: load average after $(cut -d' ' -f1-3 /proc/loadavg)"
